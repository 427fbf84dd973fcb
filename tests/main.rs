//! End-to-end tests of the `kefu` binary, in one test binary (one link step on 2 cores).

mod common;
mod generate;
mod model;
