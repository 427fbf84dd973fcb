//! kefu's canonical event model: the Arrow schemas of the five canonical tables (`calls`,
//! `tickets`, `callbacks`, `visits`, `customers`), the closed vocabularies of their enum
//! columns with Chinese labels, and the documentation of every field.
//!
//! This is the contract between the crates: ingest writes these schemas, queries and
//! reports read them, and the generator produces them. It performs no I/O and knows
//! nothing about files, encodings or storage. `kefu model` prints it as Markdown.

pub mod doc;
pub mod table;
pub mod vocab;

pub use table::{Column, ColumnKind, Table, UnknownTable, VersionPart};
pub use vocab::{Term, UnknownTerm, Vocabulary};
