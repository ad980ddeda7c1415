//! CF aggregation files ("CFA"): a small netCDF file whose scalar *aggregation variables*
//! say how fragment files stitch together into one array (CF-1.13 §2.8, and the CFA-0.6
//! conventions written before it).
//!
//! * [`describe`] reads what an aggregation file says: every aggregation variable, its
//!   dimensions, the fragment sizes along each (`map`, or `location` in CFA-0.6) and per
//!   fragment its file and variable (`uris` + `identifiers`; `file` + `address`) or its
//!   constant (`unique_values`), URIs resolved against the aggregation file as CF says.
//! * [`assemble`] builds the aggregated dataset from the fragments' chunk tables: each
//!   fragment's stored chunks become the aggregate's, so nothing is copied and every plugin
//!   (`/kerchunk`, `kerchunk.json`, STAC) works over an aggregation as over a multi-file
//!   dataset. A variable whose fragments do not fit (another type, units or packing, a
//!   missing file) is refused with the fragment named; the rest is served.
//! * [`mod@write`] is the way back: the aggregation file of a dataset served from files.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod assemble;
mod read;
pub mod write;

pub use assemble::{assemble, Assembled, Fragments};
pub use read::{describe, is_aggregation, resolve, Aggregation, Description, Fragment};
