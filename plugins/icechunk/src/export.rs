//! `GET /datasets/{id}/icechunk/{path}`: any dataset of the server as a read-only Icechunk
//! repository, laid out as icechunk's HTTP storage reads one (`repo`, `snapshots/…`,
//! `manifests/…`, `chunks/…`). Its chunks are virtual references to the bytes stored in the
//! dataset's files at this server's `/files` (remote sources keep their own URLs), so a
//! client with icechunk reads the archive at one snapshot per metadata generation. The
//! repository is written once per generation and base URL into icechunk's in-memory
//! storage, with the `/files` prefix as its virtual chunk container.

use std::{collections::BTreeMap, sync::Arc, time::SystemTime};

use bytes::Bytes;
use cloudify_sdk::{Error, ErrorKind, Host, HostExt, Request, Response};
use cloudify_zarr_store::{
    file_names, file_url, parse_range, precondition_failed, with_validators, ByteRange, CodecName, HostChunks,
    ServedCodec, Store as ZarrStore,
};
use futures::TryStreamExt;
use icechunk::{
    config::HttpConfig,
    format::manifest::{Checksum, SecondsSinceEpoch},
    virtual_chunks::VirtualChunkContainer,
    ObjectStoreConfig, Repository, Store,
};
use serde_json::json;
use tokio::{runtime::Handle, sync::RwLock};

use crate::{
    virtualize::{store_for, INLINE_THRESHOLD},
    write::write_array,
};

/// Repositories kept (the most recently used datasets' ones).
const KEPT: u64 = 32;

/// A dataset written as a repository in memory.
struct Exported {
    repo: Repository,
    /// The snapshot's id (the entity tag of every object).
    snapshot: String,
    /// The virtual chunk containers clients authorize.
    containers: Vec<String>,
    last_modified: Option<SystemTime>,
}

/// The repositories of datasets asked for, per dataset, metadata generation and base URL.
pub(crate) struct Exports {
    repos: moka::future::Cache<(String, u64, String), Arc<Exported>>,
    runtime: Handle,
}

impl Exports {
    pub(crate) fn new(runtime: Handle) -> Self {
        Self { repos: moka::future::Cache::new(KEPT), runtime }
    }

    /// Answers `GET /datasets/{id}/icechunk/{path}`: an object of the repository (single
    /// `Range`s honoured), or at the bare `/icechunk/` how to open it.
    pub(crate) async fn answer(&self, host: &Host, req: &Request) -> Response {
        self.try_answer(host, req).await.unwrap_or_else(Response::from)
    }

    async fn try_answer(&self, host: &Host, req: &Request) -> Result<Response, Error> {
        let id = req.dataset_id().unwrap_or_default().to_owned();
        // Clients given the repository's URL with its trailing slash ask for `/icechunk//repo`.
        let path = req.param("path").unwrap_or_default().trim_start_matches('/').to_owned();
        let valid = path.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
            && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
        if !path.is_empty() && !valid {
            return Err(Error::not_found(format!("'{path}' is no object of an icechunk repository")));
        }
        let store = ZarrStore::from_host(host, &id, ServedCodec::new(CodecName::Source, None), None)?;
        let base = req.base_url();
        let key = (id.clone(), store.generation, base.clone());
        let (host_ref, runtime) = (host.clone(), self.runtime.clone());
        let exported = self
            .repos
            .try_get_with(key, async move {
                let built = runtime.spawn(async move { export(&host_ref, &id, &base, &store).await });
                built.await.map_err(|e| Error::internal(format!("writing the repository: {e}")))?.map(Arc::new)
            })
            .await
            .map_err(|shared| Error::new(shared.kind(), shared.to_string()))?;
        if path.is_empty() {
            return Ok(Response::json(
                200,
                &json!({
                    "snapshot_id": exported.snapshot,
                    "virtual_chunk_containers": exported.containers,
                    "open": "icechunk.Repository.open(icechunk.http_storage(URL), authorize_virtual_chunk_access={prefix: icechunk.credentials.HttpAccess for prefix in virtual_chunk_containers})",
                }),
            ));
        }
        let object = {
            let exported = Arc::clone(&exported);
            let path = path.clone();
            let read = self.runtime.spawn(async move { read_object(&exported.repo, &path).await });
            read.await.map_err(|e| Error::internal(e.to_string()))??
        };
        let etag = format!("\"{}-{:x}\"", exported.snapshot, xxhash_rust::xxh3::xxh3_64(path.as_bytes()));
        let modified = exported.last_modified;
        if precondition_failed(req, &etag, modified) {
            return Err(Error::new(
                ErrorKind::PRECONDITION_FAILED,
                format!("'{path}' does not match the precondition"),
            ));
        }
        let size = object.len() as u64;
        let answer = |status: u16| {
            with_validators(Response::new(status), &etag, modified, "no-cache")
                .with_header("content-type", "application/octet-stream")
                .with_header("accept-ranges", "bytes")
        };
        Ok(match parse_range(req.header("range"), size) {
            ByteRange::Whole => answer(200).with_body(object.to_vec()),
            ByteRange::Part { start, length } => {
                let (from, to) = (start as usize, (start + length) as usize);
                answer(206)
                    .with_header("content-range", &format!("bytes {start}-{}/{size}", start + length - 1))
                    .with_body(object[from..to].to_vec())
            }
            ByteRange::Unsatisfiable => {
                let outside = Error::new(ErrorKind::RANGE_NOT_SATISFIABLE, format!("range outside the {size} bytes"));
                Response::from(outside).with_header("content-range", &format!("bytes */{size}"))
            }
        })
    }
}

/// Object `path` of the repository's storage, whole.
async fn read_object(repo: &Repository, path: &str) -> Result<Bytes, Error> {
    let context = repo.storage_context();
    let missing = |_| Error::not_found(format!("no object '{path}' in this repository"));
    let (stream, _) = repo.storage().get_object_range(&context, path, None).await.map_err(missing)?;
    let pieces: Vec<Bytes> = stream.try_collect().await.map_err(|e| Error::internal(e.to_string()))?;
    Ok(pieces.concat().into())
}

fn failed(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("writing the icechunk repository: {e}"))
}

/// Dataset `id` (rendered as `store`) written as a repository: its Zarr v3 documents, a
/// virtual reference per stored chunk (to `/files` at `base` for the server's files, to the
/// source URL for remote ones), small chunks and chunks without stored bytes native.
async fn export(host: &Host, id: &str, base: &str, store: &ZarrStore) -> Result<Exported, Error> {
    let targets = Targets::new(host.dataset_files(id)?, base, id, store.last_modified);
    // The containers first: references are checked against them as they are written.
    let mut config = icechunk::RepositoryConfig::default();
    for (prefix, object_store) in targets.containers()? {
        let container = VirtualChunkContainer::new(prefix, object_store).map_err(failed)?;
        config.set_virtual_chunk_container(container).map_err(failed)?;
    }
    let storage = icechunk::new_in_memory_storage().await.map_err(failed)?;
    let repo = Repository::create(storage).config(config).execute().await.map_err(failed)?;
    let session = repo.writable_session("main").await.map_err(failed)?;
    let writer = Store::from_session(Arc::new(RwLock::new(session))).await;
    let root = store.docs.get(".zattrs").map(|doc| doc.body.to_vec()).unwrap_or_else(|| b"{}".to_vec());
    let attributes: serde_json::Value = serde_json::from_slice(&root).map_err(failed)?;
    let group = json!({"zarr_format": 3, "node_type": "group", "attributes": attributes});
    writer.set("zarr.json", Bytes::from(group.to_string())).await.map_err(failed)?;
    let chunks = HostChunks { host, id, store };
    for name in store.arrays.keys() {
        let doc =
            store.docs.get(&format!("{name}/zarr.json")).ok_or_else(|| failed(format!("no metadata of '{name}'")))?;
        writer.set(&format!("{name}/zarr.json"), Bytes::copy_from_slice(&doc.body)).await.map_err(failed)?;
        let mut place = |url: String| Ok(targets.locate(url));
        write_array(&writer, store, name, &chunks, &mut place, None, INLINE_THRESHOLD).await.map_err(failed)?;
    }
    let snapshot =
        writer.session().write().await.commit(format!("dataset '{id}' by cloudify")).execute().await.map_err(failed)?;
    repo.save_config().await.map_err(failed)?;
    Ok(Exported {
        repo,
        snapshot: snapshot.to_string(),
        containers: targets.containers()?.into_keys().collect(),
        last_modified: store.last_modified,
    })
}

/// Where references point: the server's files at its `/files`, remote ones where they are.
struct Targets {
    files: Vec<String>,
    names: Vec<String>,
    base: String,
    id: String,
    /// `{base}/datasets/{id}/files/`.
    files_url: String,
    /// The files' latest modification time: reads through a reference fail once a file changed.
    checksum: Option<Checksum>,
}

impl Targets {
    fn new(files: Vec<String>, base: &str, id: &str, last_modified: Option<SystemTime>) -> Self {
        let names = file_names(&files);
        let checksum = last_modified
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .and_then(|d| u32::try_from(d.as_secs()).ok())
            .map(|secs| Checksum::LastModified(SecondsSinceEpoch(secs)));
        let files_url = format!("{}/", file_url(base, id, "").trim_end_matches('/'));
        let (base, id) = (base.to_owned(), id.to_owned());
        Self { files, names, base, id, files_url, checksum }
    }

    /// The location and checksum of a reference into `url`; none for an object that is not
    /// one of the dataset's files (a Zarr store's chunk), whose bytes are copied instead.
    fn locate(&self, url: String) -> Option<(String, Option<Checksum>)> {
        let i = self.files.iter().position(|f| *f == url)?;
        Some(if is_remote(&url) {
            (url, None)
        } else {
            (file_url(&self.base, &self.id, &self.names[i]), self.checksum.clone())
        })
    }

    /// The virtual chunk containers of every location handed out, by URL prefix.
    fn containers(&self) -> Result<BTreeMap<String, ObjectStoreConfig>, Error> {
        let mut containers = BTreeMap::new();
        for file in &self.files {
            if !is_remote(file) {
                containers.insert(self.files_url.clone(), ObjectStoreConfig::Http(HttpConfig::default()));
                continue;
            }
            let prefix = file.rsplit_once('/').map_or(file.clone(), |(dir, _)| format!("{dir}/"));
            let store = store_for(&prefix).map_err(failed)?;
            containers.insert(prefix, store);
        }
        Ok(containers)
    }
}

/// Whether a URL names a remote object (clients elsewhere can reach it as it is).
fn is_remote(url: &str) -> bool {
    url.contains("://") && !url.starts_with("file://")
}
