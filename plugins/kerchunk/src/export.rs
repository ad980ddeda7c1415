//! `/kerchunk.json`: the dataset as a kerchunk reference set, each chunk pointing at its
//! bytes in the source files (at their own URLs, or at this server's `/files`), small ones
//! inlined.

use std::{future::Future, sync::Arc};

use cloudify_sdk::{ChunkRef, Host, HostExt, Request, Response};
use cloudify_zarr_store::{reference_set, reply, ChunkAccess, Document, Failure, Inlining, Located, Store};

use crate::{
    config::Targets,
    files::{file_names, file_url},
    serve::{encode_values, KerchunkService},
};

/// Whether a URL names a remote object (clients elsewhere can reach it as it is).
fn is_remote(url: &str) -> bool {
    url.contains("://") && !url.starts_with("file://")
}

/// The chunks of one dataset, through the host.
struct HostChunks<'a> {
    host: &'a Host,
    id: &'a str,
    store: &'a Store,
}

impl ChunkAccess for HostChunks<'_> {
    fn locate(&self, var: &str, index: &[u64]) -> impl Future<Output = Result<Located, Failure>> + Send {
        let reference = self.host.chunk_ref(self.id, var, index);
        async move {
            Ok(match reference.await? {
                ChunkRef::Range { url, offset, length } => Located::Range { url: url.into_string(), offset, length },
                ChunkRef::Inline(bytes) => Located::Inline(bytes.into_vec()),
                ChunkRef::Missing => Located::Missing,
                ChunkRef::Computed => Located::NotStored,
            })
        }
    }

    fn stored(&self, var: &str, index: &[u64]) -> impl Future<Output = Result<Vec<u8>, Failure>> + Send {
        let bytes = self.host.raw_chunk(self.id, var, index);
        async move { Ok(bytes.await?.into_vec()) }
    }

    fn encoded(&self, var: &str, index: &[u64]) -> impl Future<Output = Result<Vec<u8>, Failure>> + Send {
        let (var, index) = (var.to_owned(), index.to_vec());
        async move {
            let array = self.store.arrays.get(&var).ok_or_else(|| Failure::not_found(format!("no variable '{var}'")))?;
            encode_values(self.host, self.id, &var, array, &index).await
        }
    }
}

impl KerchunkService {
    /// Answers `GET /datasets/{id}/kerchunk.json`.
    pub(crate) async fn reference_set(&self, host: &Host, req: &Request) -> Response {
        let id = req.dataset_id().unwrap_or_default();
        let outcome = async {
            let store = self.store(host, id)?;
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
            let inlining = Inlining { threshold: self.config.inline_threshold, max_encoded_bytes: self.config.max_inline_bytes };
            let chunks = HostChunks { host, id, store: &store };
            let set = reference_set(&store, &chunks, inlining, target).await?;
            Ok::<_, Failure>((Arc::clone(&store), Arc::new(Document::new(set.to_json().into()))))
        };
        match outcome.await {
            Ok((store, doc)) => reply(req, &doc, store.last_modified, &self.config.cache_control, "application/json"),
            Err(failure) => failure.into(),
        }
    }
}
