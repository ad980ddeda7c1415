//! A cloudify dataset rendered as a Zarr store, shared by the plugins that serve one (zarr,
//! kerchunk): the v2 and v3 metadata documents, chunk key parsing, the codecs chunks are
//! served with (re-encoded or as stored), rechunking, and the HTTP validators of answers.
//! Reference sets built from a store are `cloudify-kerchunk`'s.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod chunks;
mod codecs;
mod files;
mod http;
mod keys;
mod metrics;
mod rechunk;
mod rendered;
mod store;

pub use chunks::{encode_values, ChunkAccess, HostChunks};
pub use codecs::{v2_declaration, CodecName, ServedCodec};
pub use files::{file_names, file_url, parse_range, Range as ByteRange};
pub use http::{not_modified, precondition_failed, range_applies, reply, with_validators};
pub use keys::{chunk_index, parse as parse_key, Format, Key};
pub use metrics::CacheMetrics;
pub use rechunk::Rechunk;
pub use rendered::{Described, DescribedDatasets, RenderedStores, METADATA_CHECK, METADATA_TTL};
pub use store::{request_key, Array, Document, Resolved, Store};
