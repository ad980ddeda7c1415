//! `/kerchunk.json`: the dataset as a kerchunk reference set, each chunk pointing at its
//! bytes in the source files (at their own URLs, or at this server's `/files`), small ones
//! inlined.

use std::sync::Arc;

use cloudify_sdk::{ChunkRef, Host, HostExt, Request, Response};
use cloudify_zarr_store::{reply, Document, Failure, Reference, ReferenceSet, Store};
use serde_json::Value;

use crate::{
    config::Targets,
    files::{file_names, file_url},
    serve::{encode_values, not_stored, KerchunkService},
};

/// Every chunk index of a grid, in C order.
fn grid_indices(grid: &[u64]) -> impl Iterator<Item = Vec<u64>> + '_ {
    let total: u64 = grid.iter().product();
    (0..total).map(move |mut flat| {
        let mut index = vec![0; grid.len()];
        for axis in (0..grid.len()).rev() {
            index[axis] = flat % grid[axis];
            flat /= grid[axis];
        }
        index
    })
}

/// Whether a URL names a remote object (clients elsewhere can reach it as it is).
fn is_remote(url: &str) -> bool {
    url.contains("://") && !url.starts_with("file://")
}

impl KerchunkService {
    /// Answers `GET /datasets/{id}/kerchunk.json`.
    pub(crate) async fn reference_set(&self, host: &Host, req: &Request) -> Response {
        let id = req.dataset_id().unwrap_or_default();
        let outcome = async {
            let store = self.store(host, id)?;
            let set = self.build(host, req, id, &store).await?;
            Ok::<_, Failure>((store, Arc::new(Document::new(set.to_json().into()))))
        };
        match outcome.await {
            Ok((store, doc)) => reply(req, &doc, store.last_modified, &self.config.cache_control, "application/json"),
            Err(failure) => failure.into(),
        }
    }

    async fn build(&self, host: &Host, req: &Request, id: &str, store: &Store) -> Result<ReferenceSet, Failure> {
        let files = host.dataset_files(id)?;
        let names = file_names(&files);
        let base = req.base_url();
        let target = |url: String| -> String {
            let served = match self.config.targets {
                Targets::Source => false,
                Targets::Server => true,
                Targets::Auto => !is_remote(&url),
            };
            match files.iter().position(|f| *f == url) {
                Some(i) if served => file_url(&base, id, &names[i]),
                _ => url,
            }
        };
        let mut set = ReferenceSet::new(store, None);
        let mut inlined = 0u64;
        for (var, array) in &store.arrays {
            let fills_missing = has_fill_value(store, var);
            for index in grid_indices(&array.grid()) {
                let reference = host.chunk_ref(id, var, &index).await?;
                let stored = match reference {
                    ChunkRef::Range { url, offset, length } if array.stored_bytes => {
                        if length < self.config.inline_threshold {
                            Reference::Inline(host.raw_chunk(id, var, &index).await?.into_vec())
                        } else {
                            Reference::Range { url: target(url.into_string()), offset, length }
                        }
                    }
                    ChunkRef::Inline(bytes) if array.stored_bytes => Reference::Inline(bytes.into_vec()),
                    // Zarr fills keys that are absent with the declared fill value.
                    ChunkRef::Missing if fills_missing => continue,
                    // Library reads, computed chunks, codecs v2 cannot declare, and
                    // never-written chunks of arrays whose fill Zarr does not know: inlined
                    // as the declared chain encodes them.
                    _ => {
                        let bytes = encode_values(host, id, var, array, &index).await?;
                        inlined += bytes.len() as u64;
                        if inlined > self.config.max_inline_bytes {
                            return Err(not_stored(id, var, "would have to be inlined beyond max_inline_bytes"));
                        }
                        Reference::Inline(bytes)
                    }
                };
                set.insert_chunk(var, &index, stored);
            }
        }
        Ok(set)
    }
}

/// Whether the array's v2 metadata declares a fill value (else Zarr would fill absent chunks
/// with zeros, not with what the source library reads).
fn has_fill_value(store: &Store, var: &str) -> bool {
    let zarray = store.docs.get(&format!("{var}/.zarray"));
    let fill = zarray.and_then(|doc| serde_json::from_slice::<Value>(&doc.body).ok()).map(|z| z["fill_value"].clone());
    !matches!(fill, None | Some(Value::Null))
}

