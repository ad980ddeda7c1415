//! The configured repositories: opened, their `ref` resolved to a snapshot, and each group
//! holding arrays opened as a dataset; re-resolved on a schedule, so a commit to a branch is
//! served without a restart (the snapshot id is in the metadata: the dataset's generation,
//! and every cache and ETag of it, follow).

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use cloudify_dataset::{DatasetMeta, Limits, Source};
use cloudify_sdk::{ChunkRef, Host, HostExt, LogLevel};
use cloudify_zarr::{Storage, ZarrSource};
use icechunk::{
    config::{Credentials, S3Credentials, S3Options},
    format::{manifest::ChunkPayload, snapshot::NodeData, ChunkIndices, SnapshotId},
    repository::VersionInfo,
    session::Session,
    Repository, Store,
};
use serde_json::Value;
use tokio::runtime::Handle;

use crate::{config::RepoConfig, storage::SnapshotStorage};

/// Where a dataset comes from, in the attributes DKRZ's cloudify marks icechunk datasets with
/// (its STAC plugin, and ours, describe such datasets by them): the repository and the
/// snapshot; ours adds whether chunks are virtual and the S3 storage scheme.
const HREF_ATTRIBUTE: &str = "_icechunk_href";
const SNAPSHOT_ATTRIBUTE: &str = "_icechunk_snapshot_id";
const VIRTUAL_ATTRIBUTE: &str = "_icechunk_virtual";
const STORAGE_ATTRIBUTE: &str = "_icechunk_storage";

/// One repository at one snapshot: its datasets, by id.
struct Snapshot {
    id: String,
    /// When it was committed (Unix seconds): the datasets' `Last-Modified`.
    committed: Option<i64>,
    /// Whether the repository declares virtual chunk containers.
    virtual_chunks: bool,
    datasets: Vec<(String, Arc<ZarrSource>)>,
    /// The group of each dataset, by id.
    groups: HashMap<String, String>,
    /// The snapshot's session, for where chunks are stored.
    session: Arc<tokio::sync::RwLock<Session>>,
}

/// A configured repository and what is served of it.
struct Repo {
    config: RepoConfig,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    /// Whether the last attempt failed (one warning per failure streak).
    failing: std::sync::atomic::AtomicBool,
}

/// Every configured repository.
pub(crate) struct Repos {
    repos: Vec<Arc<Repo>>,
    runtime: Handle,
    host: Host,
}

/// A repository's storage from its URL.
pub(crate) async fn storage(url: &str) -> Result<Arc<dyn icechunk::Storage + Send + Sync>, String> {
    let failed = |e: &dyn std::fmt::Display| format!("{url}: {e}");
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let env = |names: &[&str]| names.iter().find_map(|n| std::env::var(n).ok()).filter(|v| !v.is_empty());
        let mut options = S3Options::default();
        if let Some(region) = env(&["AWS_REGION", "AWS_DEFAULT_REGION"]) {
            options = options.with_region(region);
        }
        if let Some(endpoint) = env(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]) {
            let http = endpoint.starts_with("http://");
            options = options.with_endpoint_url(endpoint).with_allow_http(http).with_force_path_style(true);
        }
        let prefix = (!prefix.is_empty()).then(|| prefix.trim_end_matches('/').to_owned());
        let credentials = Some(S3Credentials::FromEnv);
        return icechunk::new_s3_object_store_storage(options, bucket.to_owned(), prefix, credentials, vec![], vec![])
            .await
            .map_err(|e| failed(&e));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return icechunk::storage::new_http_storage(url, None, None).map_err(|e| failed(&e));
    }
    let path = url.strip_prefix("file://").unwrap_or(url);
    icechunk::new_local_filesystem_storage(std::path::Path::new(path)).await.map_err(|e| failed(&e))
}

/// The repository's URL as clients open it: local folders as absolute `file://` URLs.
fn href(url: &str) -> String {
    if url.contains("://") {
        return url.to_owned();
    }
    let path = std::path::Path::new(url);
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("file://{}", absolute.display())
}

/// The STAC storage extension's scheme of an `s3://` repository (`custom-s3` with the
/// endpoint the server reads it from, `aws-s3` otherwise).
fn storage_scheme(url: &str) -> Option<Value> {
    let bucket = url.strip_prefix("s3://")?.split('/').next()?;
    let env = |names: &[&str]| names.iter().find_map(|n| std::env::var(n).ok()).filter(|v| !v.is_empty());
    let region = env(&["AWS_REGION", "AWS_DEFAULT_REGION"]).unwrap_or_else(|| "us-east-1".to_owned());
    Some(match env(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]) {
        Some(endpoint) => {
            serde_json::json!({"type": "custom-s3", "platform": endpoint, "bucket": bucket, "region": region})
        }
        None => serde_json::json!({
            "type": "aws-s3",
            "platform": "https://{bucket}.s3.{region}.amazonaws.com",
            "bucket": bucket,
            "region": region,
        }),
    })
}

/// The credentials that authorize a container of URL prefix `prefix`.
fn authorization(prefix: &str) -> Option<Credentials> {
    if prefix.starts_with("s3://") {
        Some(Credentials::S3(S3Credentials::FromEnv))
    } else if prefix.starts_with("http://") || prefix.starts_with("https://") {
        Some(Credentials::HttpAccess)
    } else {
        Some(Credentials::LocalFileSystemAccess)
    }
}

async fn open(config: &RepoConfig) -> Result<Repository, String> {
    let storage = storage(&config.url).await?;
    let authorized: HashMap<String, Option<Credentials>> =
        config.authorize_virtual.iter().map(|prefix| (prefix.clone(), authorization(prefix))).collect();
    Repository::open(storage)
        .authorize_virtual_chunk_access(authorized)
        .execute()
        .await
        .map_err(|e| format!("{}: {e}", config.url))
}

/// What `reference` names in `repo`: a branch, else a tag, else a snapshot id.
async fn version(repo: &Repository, reference: &str) -> Result<VersionInfo, String> {
    if repo.lookup_branch(reference).await.is_ok() {
        return Ok(VersionInfo::BranchTipRef(reference.to_owned()));
    }
    if repo.lookup_tag(reference).await.is_ok() {
        return Ok(VersionInfo::TagRef(reference.to_owned()));
    }
    SnapshotId::try_from(reference)
        .map(VersionInfo::SnapshotId)
        .map_err(|_| format!("'{reference}' is no branch, tag or snapshot id"))
}

/// The dataset id of group `path` of the repository served as `id`.
fn dataset_id(id: &str, path: &str) -> String {
    let path = path.trim_matches('/');
    if path.is_empty() {
        id.to_owned()
    } else {
        format!("{id}.{}", path.replace('/', "."))
    }
}

/// The snapshot `version` names: each group holding arrays opened as a dataset.
async fn snapshot(
    repo: &Repository,
    config: &RepoConfig,
    version: &VersionInfo,
    runtime: Handle,
) -> Result<Snapshot, String> {
    let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", config.url);
    let session = repo.readonly_session(version).await.map_err(|e| failed(&e))?;
    let id = session.snapshot_id().to_string();
    let mut groups = BTreeSet::new();
    for node in session.list_nodes(&icechunk::format::Path::root()).await.map_err(|e| failed(&e))? {
        let node = node.map_err(|e| failed(&e))?;
        if matches!(node.node_data, NodeData::Array { .. }) {
            let path = node.path.to_string();
            let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
            groups.insert(if parent.is_empty() { "/".to_owned() } else { parent.to_owned() });
        }
    }
    let committed = match SnapshotId::try_from(id.as_str()) {
        Ok(snapshot) => repo.lookup_snapshot(&snapshot).await.ok().map(|info| info.flushed_at.timestamp()),
        Err(_) => None,
    };
    let virtual_chunks = repo.config().virtual_chunk_containers.as_ref().is_some_and(|c| !c.is_empty());
    let session = Arc::new(tokio::sync::RwLock::new(session));
    let store = Store::from_session(Arc::clone(&session)).await;
    let storage: Storage = Arc::new(SnapshotStorage::new(store, runtime));
    let mut datasets = Vec::new();
    let mut dataset_groups = HashMap::new();
    for group in groups {
        let dataset = dataset_id(&config.id, &group);
        let location = format!("{}@{id}", config.url);
        let source = ZarrSource::from_storage(Arc::clone(&storage), &group, &location, &dataset, &Limits::default())
            .await
            .map_err(|e| failed(&e))?;
        dataset_groups.insert(dataset.clone(), group);
        datasets.push((dataset, Arc::new(source)));
    }
    Ok(Snapshot { id, committed, virtual_chunks, datasets, groups: dataset_groups, session })
}

impl Repo {
    /// Opens the repository (again: an open repository keeps the branch tips it read),
    /// resolves its `ref`, and reads the snapshot when it changed. Failures leave what was
    /// served.
    async fn refresh(&self, runtime: Handle) -> Result<(), String> {
        let repo = open(&self.config).await?;
        let repo = &repo;
        let version = version(repo, self.config.reference.as_deref().unwrap_or("main")).await?;
        let current = self.snapshot.read().unwrap_or_else(PoisonError::into_inner).as_ref().map(|s| s.id.clone());
        let resolved = match &version {
            VersionInfo::SnapshotId(id) => Some(id.to_string()),
            _ => repo.resolve_version(&version).await.ok().map(|id| id.to_string()),
        };
        if resolved.is_some() && resolved == current {
            return Ok(());
        }
        let snapshot = snapshot(repo, &self.config, &version, runtime).await?;
        *self.snapshot.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(snapshot));
        Ok(())
    }
}

impl Repos {
    pub(crate) fn new(configs: Vec<RepoConfig>, runtime: Handle, host: Host) -> Self {
        let repos = configs
            .into_iter()
            .map(|config| Arc::new(Repo { config, snapshot: RwLock::new(None), failing: false.into() }))
            .collect();
        Self { repos, runtime, host }
    }

    /// Refreshes every repository once (on the plugin's runtime); one warning line per
    /// repository that starts failing.
    pub(crate) async fn refresh_all(&self) {
        for repo in &self.repos {
            let outcome = repo.refresh(self.runtime.clone()).await;
            let was_failing = repo.failing.swap(outcome.is_err(), std::sync::atomic::Ordering::Relaxed);
            match outcome {
                Err(reason) if !was_failing => {
                    self.host
                        .log(LogLevel::Warn, &format!("icechunk repository '{}' not served: {reason}", repo.config.id));
                }
                Ok(()) if was_failing => {
                    self.host.log(LogLevel::Info, &format!("icechunk repository '{}' served again", repo.config.id));
                }
                _ => {}
            }
        }
    }

    /// Refreshes each repository every `refresh_secs` (the shortest configured), forever.
    pub(crate) async fn refresh_forever(self: Arc<Self>) {
        let every = self.repos.iter().map(|r| r.config.refresh_secs).min().unwrap_or(60).max(1);
        loop {
            tokio::time::sleep(Duration::from_secs(every)).await;
            self.refresh_all().await;
        }
    }

    /// Every dataset served, in configuration order.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.repos
            .iter()
            .filter_map(|repo| repo.snapshot.read().unwrap_or_else(PoisonError::into_inner).clone())
            .flat_map(|snapshot| snapshot.datasets.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>())
            .collect()
    }

    /// Dataset `id`, its repository and the snapshot it is read from.
    fn find(&self, id: &str) -> Option<(Arc<ZarrSource>, &Repo, Arc<Snapshot>)> {
        self.repos.iter().find_map(|repo| {
            let snapshot = repo.snapshot.read().unwrap_or_else(PoisonError::into_inner).clone()?;
            let source = snapshot.datasets.iter().find(|(dataset, _)| dataset == id)?.1.clone();
            Some((source, &**repo, snapshot))
        })
    }

    /// Dataset `id`.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<ZarrSource>> {
        self.find(id).map(|(source, _, _)| source)
    }

    /// Where chunk `index` of `variable` of dataset `id` is stored: virtual chunks at their
    /// location, small inline ones as their bytes; native chunks (objects of the repository)
    /// as computed, to be read through the dataset.
    pub(crate) async fn chunk_ref(&self, id: &str, variable: &str, index: &[u64]) -> Result<ChunkRef, String> {
        let (_, _, snapshot) = self.find(id).ok_or_else(|| format!("no icechunk dataset '{id}'"))?;
        let group = snapshot.groups.get(id).map(|g| g.trim_end_matches('/')).unwrap_or_default();
        let path = icechunk::format::Path::new(&format!("{group}/{variable}")).map_err(|e| e.to_string())?;
        let coords =
            index.iter().map(|&i| u32::try_from(i).map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>()?;
        let lookup = async move {
            let session = snapshot.session.read().await;
            session.get_chunk_ref(&path, &ChunkIndices(coords)).await.map_err(|e| e.to_string())
        };
        let found = self.runtime.spawn(lookup).await.map_err(|e| e.to_string())??;
        Ok(match found {
            None => ChunkRef::Missing,
            Some(ChunkPayload::Virtual(chunk)) => {
                ChunkRef::Range { url: chunk.location.url().into(), offset: chunk.offset, length: chunk.length }
            }
            Some(ChunkPayload::Inline(bytes)) => ChunkRef::Inline(bytes.to_vec().into()),
            Some(_) => ChunkRef::Computed,
        })
    }

    /// Dataset `id`'s metadata, with where it comes from (repository, snapshot, commit time).
    pub(crate) fn metadata(&self, id: &str) -> Option<Result<DatasetMeta, cloudify_dataset::Error>> {
        let (source, repo, snapshot) = self.find(id)?;
        Some(source.metadata().map(|meta| {
            let mut meta = DatasetMeta::clone(&meta);
            let attributes = &mut meta.attributes;
            attributes.insert(HREF_ATTRIBUTE.to_owned(), Value::from(href(&repo.config.url)));
            attributes.insert(SNAPSHOT_ATTRIBUTE.to_owned(), Value::from(snapshot.id.clone()));
            if snapshot.virtual_chunks {
                attributes.insert(VIRTUAL_ATTRIBUTE.to_owned(), Value::from(true));
            }
            if let Some(scheme) = storage_scheme(&repo.config.url) {
                attributes.insert(STORAGE_ATTRIBUTE.to_owned(), scheme);
            }
            meta.last_modified = snapshot.committed;
            meta
        }))
    }
}
