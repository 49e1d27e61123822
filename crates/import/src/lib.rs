//! Lead import: turns a CSV export from a CRM (HubSpot, Apollo, Salesforce, or our own template)
//! into validated, normalised [`LeadRecord`]s, one row at a time.
//!
//! ```
//! use leadgen_import::{Limits, Reader};
//!
//! let csv = "First Name,Last Name,Email,Website\nAna,Núñez, ana@acme.example ,https://www.acme.example/\n";
//! let (mut reader, mapping) = Reader::new(csv.as_bytes(), Limits::default())?;
//! mapping.validate()?;
//! let row = reader.next_row().transpose()?.ok_or("no row")?;
//! let lead = row.record.ok_or("rejected")?;
//! assert_eq!(lead.email.as_deref(), Some("ana@acme.example"));
//! assert_eq!(lead.company_domain.as_deref(), Some("acme.example"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Problems are reported per row as [`Issue`]s with the physical line the record starts on (the
//! header is line 1), the column's header and a reason: [`Severity::Reject`] rows are not
//! imported (an invalid email address, neither email nor name, the wrong number of fields, text
//! that is not UTF-8); [`Severity::Warn`] rows are imported without the offending value. Only what
//! makes the rest of the file untrustworthy stops the import with an [`ImportError`].
//!
//! Files in other encodings (UTF-16, Windows-1252…) are read through [`Decoded`], after
//! [`detect_encoding`] has said which.
//!
//! The crate does no I/O beyond reading the given [`std::io::Read`], and its memory is bounded by
//! [`Limits`]. Its throughput is a benchmark: `cargo bench -p leadgen-bench --bench import`
//! (figures in `docs/performance.md`).

mod encoding;
mod mapping;
pub mod normalise;
mod reader;
mod record;

pub use encoding::{Decoded, TextEncoding, detect as detect_encoding};
pub use mapping::{Dialect, Field, Mapping, MappingError};
pub use normalise::{EmployeeRange, Seniority};
pub use reader::{ImportError, Limits, Preview, Reader, preview};
pub use record::{Issue, LeadRecord, RowOutcome, Severity};
