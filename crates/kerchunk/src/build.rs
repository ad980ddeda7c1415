//! The reference set of a dataset served as a Zarr store: the store's Zarr v2 metadata
//! documents, and per chunk where its stored bytes are, or the bytes themselves.

use cloudify_sdk::{hyperslab::unravel, ChunkRef, Error, ErrorKind};
use cloudify_zarr_store::{ChunkAccess, Format, Store};
use serde_json::{json, Value};

use crate::{v2_chunk_key, Reference, ReferenceSet};

/// How chunks enter a reference set.
#[derive(Debug, Clone, Copy)]
pub struct Inlining {
    /// Stored chunks smaller than this are inlined.
    pub threshold: u64,
    /// Most bytes inlined for chunks without stored bytes; beyond, the set is refused (409).
    pub max_encoded_bytes: u64,
}

/// A set holding `store`'s Zarr v2 metadata documents (consolidated `.zmetadata` included).
fn metadata_of(store: &Store) -> ReferenceSet {
    let mut set = ReferenceSet::new();
    let mut consolidated = serde_json::Map::new();
    let mut keys = vec![".zgroup".to_owned(), ".zattrs".to_owned()];
    for name in store.arrays.keys() {
        keys.extend([format!("{name}/.zarray"), format!("{name}/.zattrs")]);
    }
    for key in keys {
        if let Some(doc) = store.docs.get(&key) {
            consolidated.insert(key.clone(), serde_json::from_slice(&doc.body).unwrap_or(Value::Null));
            set.insert(key, Reference::Inline(doc.body.to_vec()));
        }
    }
    let zmetadata = json!({"metadata": consolidated, "zarr_consolidated_format": 1});
    set.insert(".zmetadata", Reference::Inline(zmetadata.to_string().into_bytes()));
    set
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
    let mut set = metadata_of(store);
    let mut encoded_bytes = 0u64;
    for (var, array) in &store.arrays {
        let fills_missing = has_fill_value(store, var);
        let grid = array.grid();
        for flat in 0..grid.iter().product::<u64>() {
            let index = unravel(flat, &grid);
            let reference = match access.locate(var, &index).await? {
                ChunkRef::Range { length, .. } if array.stored_bytes && length < inlining.threshold => {
                    Reference::Inline(access.stored(var, &index).await?)
                }
                ChunkRef::Range { url, offset, length } if array.stored_bytes => {
                    Reference::Range { url: target(url.into_string()), offset, length: Some(length) }
                }
                ChunkRef::Inline(bytes) if array.stored_bytes => Reference::Inline(bytes.into_vec()),
                // Zarr fills absent keys with the declared fill value.
                ChunkRef::Missing if fills_missing => continue,
                _ => {
                    let bytes = access.encoded(var, &index, Format::V2).await?;
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
            set.insert(v2_chunk_key(var, &index, "."), reference);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use cloudify_sdk::meta::DatasetMeta;
    use cloudify_zarr_store::{CodecName, ServedCodec};

    use super::*;

    /// Chunks of `a` stored at offset 100 + 10 × index (4 bytes); `h` has none.
    struct Chunks;

    impl ChunkAccess for Chunks {
        async fn locate(&self, var: &str, index: &[u64]) -> Result<ChunkRef, Error> {
            Ok(match (var, index) {
                ("a", [i]) => ChunkRef::Range { url: "/data/f.nc".into(), offset: 100 + 10 * i, length: 4 },
                _ => ChunkRef::Missing,
            })
        }
        async fn stored(&self, _: &str, _: &[u64]) -> Result<Vec<u8>, Error> {
            Ok(vec![9, 9, 9, 9])
        }
        async fn encoded(&self, _: &str, _: &[u64], _: Format) -> Result<Vec<u8>, Error> {
            Ok(vec![0, 1, 255])
        }
    }

    fn store() -> Store {
        let meta: DatasetMeta = serde_json::from_value(json!({
            "id": "d", "attributes": {"title": "t"}, "dimensions": {"x": 4},
            "variables": {
                "a": {"dtype": "int16", "dimensions": ["x"], "shape": [4], "chunks": [2],
                      "codecs": [{"name": "bytes", "configuration": {"endian": "big"}}]},
                "h": {"dtype": "float64", "dimensions": [], "shape": [], "chunks": []},
            }
        }))
        .unwrap();
        Store::new(&meta, 1, ServedCodec::new(CodecName::Source, None), None).unwrap()
    }

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    #[test]
    fn metadata_as_text_chunks_as_ranges_or_inline() {
        let store = store();
        let inlining = Inlining { threshold: 0, max_encoded_bytes: 1 << 20 };
        let set = block_on(reference_set(&store, &Chunks, inlining, |url| format!("http://h{url}"))).unwrap();
        let doc: Value = serde_json::from_slice(&set.to_json()).unwrap();
        let zarray: Value = serde_json::from_str(doc["refs"]["a/.zarray"].as_str().unwrap()).unwrap();
        assert_eq!(zarray["dtype"], ">i2");
        assert!(doc["refs"]["h/.zarray"].is_string());
        assert_eq!(doc["refs"]["a/1"], json!(["http://h/data/f.nc", 110, 4]));
        // `h` declares no fill value: its missing chunk is inlined as encoded.
        assert_eq!(doc["refs"]["h/0"], "base64:AAH/");
        let zmetadata: Value = serde_json::from_str(doc["refs"][".zmetadata"].as_str().unwrap()).unwrap();
        assert_eq!(zmetadata["metadata"]["a/.zarray"], zarray);
        assert_eq!(zmetadata["metadata"][".zattrs"]["title"], "t");

        // Small stored chunks are inlined; too many encoded bytes refuse the set.
        let inlining = Inlining { threshold: 5, max_encoded_bytes: 1 << 20 };
        let set = block_on(reference_set(&store, &Chunks, inlining, |url| url)).unwrap();
        assert_eq!(set.inline("a/0"), Some([9u8, 9, 9, 9].as_slice()));
        let inlining = Inlining { threshold: 0, max_encoded_bytes: 2 };
        let refused = block_on(reference_set(&store, &Chunks, inlining, |url| url)).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::UNSUPPORTED);
    }
}
