//! kefu-gen's integration tests, in one binary (one link step on 2 cores).

mod messy;
mod realism;
