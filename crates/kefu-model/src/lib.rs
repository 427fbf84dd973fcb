//! kefu's canonical event model: the Arrow schemas of the five canonical tables (`calls`,
//! `tickets`, `callbacks`, `visits`, `customers`), the closed vocabularies of their enum
//! columns with Chinese labels, and the documentation of every field.
//!
//! This is the contract between the crates: ingest writes these schemas, queries and
//! reports read them, and the generator produces them. It performs no I/O and knows
//! nothing about files, encodings or storage. `kefu model` prints it as Markdown.
//!
//! It is also the home of what every crate shares below the tables: the warehouse's
//! calendar ([`calendar`]: its zone, periods, months, date expressions), numbers as
//! people read them ([`number`]) and the kinds of failure callers act on ([`ErrorKind`]).

pub mod calendar;
pub mod doc;
pub mod error;
pub mod number;
pub mod table;
pub mod vocab;

pub use error::{BoxError, Classify, ErrorKind};
pub use table::{Column, ColumnKind, Table, UnknownTable, VersionPart};
pub use vocab::{Term, UnknownTerm, Vocabulary};
