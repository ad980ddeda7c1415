//! kerchunk reference sets (spec version 1): a store's Zarr v2 metadata documents as JSON
//! text, and per chunk where its stored bytes are (`[url, offset, length]`) or the bytes
//! themselves (`"base64:..."`). fsspec's `ReferenceFileSystem` opens them.

use std::future::Future;

use base64::Engine as _;
use cloudify_sdk::{hyperslab::unravel, ChunkRef, Error, ErrorKind};
use indexmap::IndexMap;
use serde_json::{json, Value};

use crate::store::Store;

/// Where one chunk's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `length` bytes at `offset` of `url` (a path or URL).
    Range {
        /// Path or URL.
        url: String,
        /// Byte offset.
        offset: u64,
        /// Byte count.
        length: u64,
    },
    /// The chunk's bytes.
    Inline(Vec<u8>),
}

/// A reference set being built: metadata first, then chunks.
#[derive(Debug, Clone, Default)]
pub struct ReferenceSet {
    refs: IndexMap<String, Value>,
}

/// The v2 key of chunk `index` (`tas/0.1.2`; `0` for a scalar).
pub fn v2_chunk_key(var: &str, index: &[u64]) -> String {
    if index.is_empty() {
        return format!("{var}/0");
    }
    let index: Vec<String> = index.iter().map(u64::to_string).collect();
    format!("{var}/{}", index.join("."))
}

impl ReferenceSet {
    /// A set holding `store`'s Zarr v2 metadata (consolidated `.zmetadata` included).
    pub fn new(store: &Store) -> Self {
        let mut refs = IndexMap::new();
        let mut consolidated = serde_json::Map::new();
        let mut add = |key: String, refs: &mut IndexMap<String, Value>| {
            if let Some(doc) = store.docs.get(&key) {
                let text = String::from_utf8_lossy(&doc.body).into_owned();
                consolidated.insert(key.clone(), serde_json::from_str(&text).unwrap_or(Value::Null));
                refs.insert(key, Value::from(text));
            }
        };
        add(".zgroup".to_owned(), &mut refs);
        add(".zattrs".to_owned(), &mut refs);
        for name in store.arrays.keys() {
            add(format!("{name}/.zarray"), &mut refs);
            add(format!("{name}/.zattrs"), &mut refs);
        }
        let zmetadata = json!({"metadata": consolidated, "zarr_consolidated_format": 1});
        refs.insert(".zmetadata".to_owned(), Value::from(zmetadata.to_string()));
        Self { refs }
    }

    /// Adds chunk `index` of `var`.
    pub fn insert_chunk(&mut self, var: &str, index: &[u64], reference: Reference) {
        let value = match reference {
            Reference::Range { url, offset, length } => json!([url, offset, length]),
            Reference::Inline(bytes) => {
                Value::from(format!("base64:{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
            }
        };
        self.refs.insert(v2_chunk_key(var, index), value);
    }

    /// The keys and references so far.
    pub fn refs(&self) -> &IndexMap<String, Value> {
        &self.refs
    }

    /// The set as kerchunk JSON, version 1.
    pub fn to_json(&self) -> Vec<u8> {
        json!({"version": 1, "refs": self.refs}).to_string().into_bytes()
    }
}

/// What building a reference set needs from the data plane (the host's API in a plugin,
/// the sources themselves in the command line tool).
pub trait ChunkAccess: Sync {
    /// Where chunk `index` of `var` is stored.
    fn locate(&self, var: &str, index: &[u64]) -> impl Future<Output = Result<ChunkRef, Error>> + Send;
    /// The stored bytes of chunk `index` of `var`.
    fn stored(&self, var: &str, index: &[u64]) -> impl Future<Output = Result<Vec<u8>, Error>> + Send;
    /// Chunk `index` of `var` decoded, then encoded with the store's declared v2 chain.
    fn encoded(&self, var: &str, index: &[u64]) -> impl Future<Output = Result<Vec<u8>, Error>> + Send;
}

/// How chunks enter a reference set.
#[derive(Debug, Clone, Copy)]
pub struct Inlining {
    /// Stored chunks smaller than this are inlined.
    pub threshold: u64,
    /// Most bytes inlined for chunks without stored bytes; beyond, the set is refused (409).
    pub max_encoded_bytes: u64,
}

/// Every chunk index of a grid, in C order.
fn grid_indices(grid: &[u64]) -> impl Iterator<Item = Vec<u64>> + '_ {
    (0..grid.iter().product::<u64>()).map(|flat| unravel(flat, grid))
}

/// Whether the array's v2 metadata declares a fill value (else Zarr fills absent chunks with
/// zeros, not with what the source library reads).
fn has_fill_value(store: &Store, var: &str) -> bool {
    let zarray = store.docs.get(&format!("{var}/.zarray"));
    let fill = zarray.and_then(|doc| serde_json::from_slice::<Value>(&doc.body).ok()).map(|z| z["fill_value"].clone());
    !matches!(fill, None | Some(Value::Null))
}

/// The reference set of `store` (rendered with the `source` codec): stored chunks as ranges
/// with their URLs mapped by `target`, small ones inlined; chunks without stored bytes (and
/// never-written chunks of arrays without a declared fill value) inlined as encoded.
///
/// # Errors
/// What `access` fails with; 409 when more than `max_encoded_bytes` would be inlined.
pub async fn reference_set(
    store: &Store,
    access: &impl ChunkAccess,
    inlining: Inlining,
    target: impl Fn(String) -> String,
) -> Result<ReferenceSet, Error> {
    let mut set = ReferenceSet::new(store);
    let mut encoded_bytes = 0u64;
    for (var, array) in &store.arrays {
        let fills_missing = has_fill_value(store, var);
        for index in grid_indices(&array.grid()) {
            let reference = match access.locate(var, &index).await? {
                ChunkRef::Range { length, .. } if array.stored_bytes && length < inlining.threshold => {
                    Reference::Inline(access.stored(var, &index).await?)
                }
                ChunkRef::Range { url, offset, length } if array.stored_bytes => {
                    Reference::Range { url: target(url.into_string()), offset, length }
                }
                ChunkRef::Inline(bytes) if array.stored_bytes => Reference::Inline(bytes.into_vec()),
                // Zarr fills absent keys with the declared fill value.
                ChunkRef::Missing if fills_missing => continue,
                _ => {
                    let bytes = access.encoded(var, &index).await?;
                    encoded_bytes += bytes.len() as u64;
                    if encoded_bytes > inlining.max_encoded_bytes {
                        let message = format!(
                            "chunks of '{var}' have no stored bytes and inlining them would pass {} bytes; read them from /zarr",
                            inlining.max_encoded_bytes
                        );
                        return Err(Error::new(ErrorKind::UNSUPPORTED, message));
                    }
                    Reference::Inline(bytes)
                }
            };
            set.insert_chunk(var, &index, reference);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use cloudify_sdk::meta::DatasetMeta;

    use super::*;
    use crate::codecs::{CodecName, ServedCodec};

    #[test]
    fn metadata_as_text_and_chunks_as_ranges_or_base64() {
        let meta: DatasetMeta = serde_json::from_value(json!({
            "id": "d", "attributes": {"title": "t"}, "dimensions": {"x": 4},
            "variables": {
                "a": {"dtype": "int16", "dimensions": ["x"], "shape": [4], "chunks": [2],
                      "codecs": [{"name": "bytes", "configuration": {"endian": "big"}}]},
                "h": {"dtype": "float64", "dimensions": [], "shape": [], "chunks": []},
            }
        }))
        .unwrap();
        let store = Store::new(&meta, 1, ServedCodec::new(CodecName::Source, None), None).unwrap();
        let mut set = ReferenceSet::new(&store);
        set.insert_chunk("a", &[1], Reference::Range { url: "/data/f.nc".to_owned(), offset: 100, length: 4 });
        set.insert_chunk("h", &[], Reference::Inline(vec![0, 1, 255]));
        let doc: Value = serde_json::from_slice(&set.to_json()).unwrap();
        assert_eq!(doc["version"], 1);
        let zarray: Value = serde_json::from_str(doc["refs"]["a/.zarray"].as_str().unwrap()).unwrap();
        assert_eq!(zarray["dtype"], ">i2");
        assert!(doc["refs"]["h/.zarray"].is_string());
        assert_eq!(doc["refs"]["a/1"], json!(["/data/f.nc", 100, 4]));
        assert_eq!(doc["refs"]["h/0"], "base64:AAH/");
        let zmetadata: Value = serde_json::from_str(doc["refs"][".zmetadata"].as_str().unwrap()).unwrap();
        assert_eq!(zmetadata["metadata"]["a/.zarray"], zarray);
        assert_eq!(zmetadata["metadata"][".zattrs"]["title"], "t");
    }
}
