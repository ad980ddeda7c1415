//! `/kerchunk.json` and `/kerchunk.parq/`: the dataset as a kerchunk reference set (JSON, and
//! parquet in fsspec's `LazyReferenceMapper` layout), each chunk pointing at its bytes in the
//! source files (at their own URLs, or at this server's `/files`), small ones inlined.

use std::{collections::HashMap, sync::Arc};

use cloudify_kerchunk::{parquet::RECORD_SIZE, reference_set, Inlining};
use cloudify_sdk::{Error, Host, HostExt, Request, Response};
use cloudify_zarr_store::{file_names, file_url, reply, Document, HostChunks, Store};

use crate::{config::Targets, serve::KerchunkService};

/// Whether a URL names a remote object (clients elsewhere can reach it as it is).
fn is_remote(url: &str) -> bool {
    url.contains("://") && !url.starts_with("file://")
}

/// A dataset's reference set in both forms, built once per metadata generation and base URL.
pub(crate) struct Export {
    json: Arc<Document>,
    /// `.zmetadata` and `{var}/refs.{k}.parq`.
    parquet: HashMap<String, Arc<Document>>,
}

impl Export {
    /// Bytes held, for the cache's bound.
    pub(crate) fn bytes(&self) -> usize {
        self.json.body.len() + self.parquet.values().map(|doc| doc.body.len()).sum::<usize>()
    }
}

/// Names one export: dataset, metadata generation, and the URL clients reach the server at.
pub(crate) type ExportId = (String, u64, String);

impl KerchunkService {
    /// Answers `GET /datasets/{id}/kerchunk.json`.
    pub(crate) async fn reference_set(&self, host: &Host, req: &Request) -> Response {
        let answer = async {
            let (store, export) = self.export(host, req).await?;
            Ok::<_, Error>(reply(
                req,
                Arc::clone(&export.json),
                store.last_modified,
                &self.config.cache_control,
                "application/json",
            ))
        };
        answer.await.unwrap_or_else(Response::from)
    }

    /// Answers `GET /datasets/{id}/kerchunk.parq/{key}`: the parquet reference set's
    /// `.zmetadata` and `{var}/refs.{k}.parq` files.
    pub(crate) async fn parquet_file(&self, host: &Host, req: &Request) -> Response {
        let answer = async {
            let key = req.param("key").unwrap_or_default();
            let (store, export) = self.export(host, req).await?;
            let doc = export
                .parquet
                .get(key)
                .ok_or_else(|| Error::not_found(format!("no '{key}' in the parquet reference set")))?;
            let kind = if key == ".zmetadata" { "application/json" } else { "application/vnd.apache.parquet" };
            Ok::<_, Error>(reply(req, Arc::clone(doc), store.last_modified, &self.config.cache_control, kind))
        };
        answer.await.unwrap_or_else(Response::from)
    }

    /// `GET /datasets/{id}/kerchunk.parq`: the keys of the parquet reference set (what a
    /// folder listing would show), so the set's URL itself answers.
    pub(crate) async fn parquet_listing(&self, host: &Host, req: &Request) -> Response {
        match self.export(host, req).await {
            Ok((_, export)) => {
                let mut keys: Vec<&String> = export.parquet.keys().collect();
                keys.sort_unstable();
                Response::json(200, &serde_json::json!({"keys": keys}))
            }
            Err(failure) => Response::from(failure),
        }
    }

    /// The dataset's reference set, from the cache or built.
    async fn export(&self, host: &Host, req: &Request) -> Result<(Arc<Store>, Arc<Export>), Error> {
        let id = req.dataset_id().unwrap_or_default();
        let store = self.store(host, id)?;
        let base = req.base_url();
        let key = (id.to_owned(), store.generation, base.clone());
        if let Some(export) = self.exports.get(&key) {
            return Ok((store, export));
        }
        let files = host.dataset_files(id)?;
        let names = file_names(&files);
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
        let inlining =
            Inlining { threshold: self.config.inline_threshold, max_encoded_bytes: self.config.max_inline_bytes };
        let chunks = HostChunks { host, id, store: &store };
        let set = reference_set(&store, &chunks, inlining, target).await?;
        let json = set.to_json();
        let parquet = host.run_blocking(move || set.to_parquet(RECORD_SIZE)).await?;
        let parquet = parquet.map_err(|e| Error::internal(e.to_string()))?;
        let document = |bytes: Vec<u8>| Arc::new(Document::new(bytes.into()));
        let mut files: HashMap<String, Arc<Document>> =
            parquet.files.into_iter().map(|(k, v)| (k, document(v))).collect();
        files.insert(".zmetadata".to_owned(), document(parquet.zmetadata));
        let export = Arc::new(Export { json: document(json), parquet: files });
        self.exports.insert(key, Arc::clone(&export));
        Ok((store, export))
    }
}
