//! kerchunk reference sets, in and out, around one type: a [`ReferenceSet`] maps Zarr keys to
//! [`Reference`]s (the bytes themselves, or a byte range of another object).
//!
//! * [`ReferenceSet::from_json`] / [`ReferenceSet::to_json`]: kerchunk JSON of spec version 0
//!   and 1 (templates and `gen` entries expanded; inline data as text or `base64:`).
//! * [`parquet`]: fsspec's `LazyReferenceMapper` layout, written from and read into sets.
//! * [`build`]: the set of a dataset served as a Zarr store (`cloudify-zarr-store`), chunk by
//!   chunk, as the kerchunk plugin and `cloudify refs scan` write it.
//! * `source` (feature `source`): a set, JSON or parquet, local or remote, opened as a
//!   cloudify dataset.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod build;
mod json;
pub mod parquet;
#[cfg(feature = "source")]
pub mod source;

use indexmap::IndexMap;

pub use build::{reference_set, Inlining};
pub use json::ReadLimits;

/// What can go wrong reading or writing a reference set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that are no reference set of the expected form, or a set over the limits.
    #[error("not a usable kerchunk reference set: {reason}")]
    Invalid {
        /// Why.
        reason: String,
    },
    /// A set that cannot be opened as a dataset.
    #[error("{location} is not a usable kerchunk reference set: {reason}")]
    Open {
        /// Path or URL of the reference set.
        location: String,
        /// Why.
        reason: String,
    },
    /// The parquet writer failed.
    #[error("writing parquet references: {reason}")]
    Write {
        /// Why.
        reason: String,
    },
}

impl Error {
    fn invalid(reason: impl Into<String>) -> Self {
        Self::Invalid { reason: reason.into() }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the bytes of one key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// The bytes themselves (metadata documents, small chunks).
    Inline(Vec<u8>),
    /// `length` bytes at `offset` of another object; the whole object when `length` is `None`.
    Range {
        /// Path or URL.
        url: String,
        /// Byte offset.
        offset: u64,
        /// Byte count; `None` for the whole object.
        length: Option<u64>,
    },
}

/// A reference set: Zarr keys (metadata documents first, as kerchunk writes them) and where
/// their bytes are. A chunk without a key is absent (the array's fill value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferenceSet {
    refs: IndexMap<String, Reference>,
}

impl ReferenceSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `reference`, replacing what it had.
    pub fn insert(&mut self, key: impl Into<String>, reference: Reference) {
        self.refs.insert(key.into(), reference);
    }

    /// The reference of `key`.
    pub fn get(&self, key: &str) -> Option<&Reference> {
        self.refs.get(key)
    }

    /// The inline bytes of `key` (a metadata document, for one).
    pub fn inline(&self, key: &str) -> Option<&[u8]> {
        match self.refs.get(key) {
            Some(Reference::Inline(bytes)) => Some(bytes),
            _ => None,
        }
    }

    /// Keys and references in the set's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Reference)> {
        self.refs.iter().map(|(key, reference)| (key.as_str(), reference))
    }

    /// How many keys the set has.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    /// Whether the set has no keys.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }
}

/// Names of the Zarr v2 and v3 metadata documents.
pub const DOCUMENTS: [&str; 5] = [".zgroup", ".zattrs", ".zarray", ".zmetadata", "zarr.json"];

/// Whether `key` names a metadata document (`.zarray`, `tas/zarr.json`, ...).
pub fn is_document(key: &str) -> bool {
    key.rsplit('/').next().is_some_and(|last| DOCUMENTS.contains(&last))
}

/// The Zarr v2 key of chunk `index` of `var` with `separator` between the indices (`tas/0.1.2`;
/// `tas/0` for a scalar, as Zarr names its one chunk).
pub fn v2_chunk_key(var: &str, index: &[u64], separator: &str) -> String {
    if index.is_empty() {
        return format!("{var}/0");
    }
    let index: Vec<String> = index.iter().map(u64::to_string).collect();
    format!("{var}/{}", index.join(separator))
}
