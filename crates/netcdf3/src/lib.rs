//! A pure-Rust parser of NetCDF classic headers (CDF-1 classic, CDF-2 64-bit offset, CDF-5
//! 64-bit data): dimensions, attributes, variables, and where each variable's bytes are.
//!
//! Data in these files is big-endian and uncompressed, so a variable is a set of byte ranges:
//! one range for a non-record variable, one per record for a record variable, record `r` at
//! `begin + r * record_size`. Spec: NetCDF Users Guide, "File Format Specifications".

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod header;

pub use header::{parse, AttrValue, Attribute, Dimension, Header, NcType, Variable};

/// What can be wrong with a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file does not start with `CDF\x01`, `CDF\x02` or `CDF\x05`.
    #[error("not a NetCDF classic file (magic {0:?})")]
    NotNetcdf3([u8; 4]),
    /// The header ends before it should.
    #[error("truncated header: needed {needed} bytes at offset {at}")]
    Truncated {
        /// Offset where the read began.
        at: usize,
        /// Bytes that were missing.
        needed: usize,
    },
    /// A value in the header that the format does not allow.
    #[error("corrupt header at offset {at}: {what}")]
    Corrupt {
        /// Offset of the bad value.
        at: usize,
        /// What was wrong.
        what: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
