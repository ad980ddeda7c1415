//! Opening the configured datasets: the demo file, `[[datasets]]`, `[[folders]]` and the
//! entries of `[[catalogs]]`, each opened by `cloudify-open` on a blocking thread. A file that
//! cannot be served is skipped with a warning; the others are served. Later, on `SIGHUP` and
//! when a watched folder changes, [`Datasets::reconcile`] brings them in step again.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use cloudify_dataset::{demo_dataset, ChunkCache};
use cloudify_netcdf::{write_netcdf4, Origin};
use cloudify_open::{
    catalog::{catalog_entries, Catalog},
    folder_files, Entry, OpenError, Opener,
};
use cloudify_store::Stores;

use crate::{config::Config, registry::Registry};

/// File name of the demo dataset in the cache folder; versioned so a changed demo is rewritten.
const DEMO_FILE: &str = "demo-v1.nc";

/// Writes the demo NetCDF4 file on first start; `None` when it cannot be written.
fn demo_file(config: &Config) -> Option<PathBuf> {
    let dir = config.cache.dir().join("demo");
    let path = dir.join(DEMO_FILE);
    if path.is_file() {
        return Some(path);
    }
    let demo = match demo_dataset(&config.demo.id) {
        Ok(demo) => demo,
        Err(err) => {
            tracing::error!("demo dataset unavailable: {err}");
            return None;
        }
    };
    let tmp = dir.join(format!("{DEMO_FILE}.tmp{}", std::process::id()));
    let written = std::fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            let meta = cloudify_dataset::Source::metadata(&demo).map_err(|e| e.to_string())?;
            write_netcdf4(&tmp, &meta, demo.arrays()).map_err(|e| e.to_string())
        })
        .and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| e.to_string()));
    match written {
        Ok(()) => {
            tracing::info!(file = %path.display(), "wrote the demo dataset");
            Some(path)
        }
        Err(err) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(dir = %dir.display(), "cannot write the demo file ({err}); serving it from memory");
            None
        }
    }
}

/// A file's size and modification time: when either changes, the file is scanned again.
type Stamp = Option<(u64, std::time::SystemTime)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// What one entry was opened as.
struct Opened {
    path: PathBuf,
    stamp: Stamp,
    /// The dataset ids it serves (several for a file with groups).
    ids: Vec<String>,
}

/// The configured datasets, opened and kept in step with the configuration and the files:
/// [`Datasets::reconcile`] opens new entries, scans changed files again and drops what is
/// gone, each change served at once (the registry swaps sources; requests in flight finish
/// on the source they started with).
pub struct Datasets {
    registry: Arc<Registry>,
    opener: Arc<Opener>,
    chunk_cache: Option<ChunkCache>,
    /// Opened entries by entry id.
    opened: tokio::sync::Mutex<HashMap<String, Opened>>,
}

/// Every entry `config` names: the demo file, `[[datasets]]`, the files of `[[folders]]` and
/// the entries of `[[catalogs]]`.
async fn entries(config: &Config, stores: &Arc<Stores>, registry: &Registry) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    if config.demo.enabled {
        let demo_config = config.clone();
        match tokio::task::spawn_blocking(move || demo_file(&demo_config)).await.ok().flatten() {
            Some(path) => entries.push(Entry::file(config.demo.id.clone(), path)),
            None => match demo_dataset(&config.demo.id) {
                Ok(demo) => registry.insert(config.demo.id.clone(), Arc::new(demo)),
                Err(err) => tracing::error!("demo dataset unavailable: {err}"),
            },
        }
    }
    entries.extend(config.datasets.iter().map(|d| Entry {
        id: d.id.clone(),
        path: d.path.clone(),
        concat_dim: d.concat_dim.clone(),
        allow_targets: d.allow_targets.clone(),
    }));
    for folder in &config.folders {
        let files = folder_files(&folder.path, folder.recursive, &folder.extensions);
        entries.extend(files.into_iter().map(|(id, path)| Entry::file(id, path)));
    }
    for catalog in &config.catalogs {
        let tree = Catalog {
            path: catalog.path.clone(),
            prefix: catalog.prefix.clone(),
            include: catalog.include.clone(),
            exclude: catalog.exclude.clone(),
            allow_targets: catalog.allow_targets.clone(),
        };
        let catalog_stores = Arc::clone(stores);
        let walked = tokio::task::spawn_blocking(move || catalog_entries(&tree, &catalog_stores)).await;
        let (found, warnings) = walked.unwrap_or_else(|e| (Vec::new(), vec![format!("catalog task failed: {e}")]));
        for warning in warnings {
            tracing::warn!(catalog = %catalog.path.display(), "{warning}");
        }
        entries.extend(found);
    }
    entries
}

/// Opens every dataset `config` names into `registry`, one after the other (each is served as
/// soon as it is open), then marks the registry opened; the result keeps them in step later.
pub async fn open_all(config: &Config, stores: Arc<Stores>, registry: Arc<Registry>) -> Arc<Datasets> {
    let opener = Arc::new(Opener::new(config.cache.dir().join("scans"), Arc::clone(&stores), config.limits.clone()));
    let chunk_cache = (config.cache.chunk_bytes > 0).then(|| ChunkCache::new(config.cache.chunk_bytes));
    let datasets = Arc::new(Datasets { registry, opener, chunk_cache, opened: Default::default() });
    datasets.reconcile(config, &stores).await;
    datasets.registry.mark_opened();
    datasets
}

/// What a reconciliation changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Entries opened for the first time.
    pub added: usize,
    /// Entries whose file changed, scanned again.
    pub rescanned: usize,
    /// Entries no longer configured or whose file is gone, no longer served.
    pub removed: usize,
    /// Entries waiting for a file to be staged from a slow tier before they can be opened.
    pub staging: usize,
}

impl Datasets {
    /// Whether a dataset waits for its files to be staged before it can be opened.
    pub fn any_staging(&self) -> bool {
        self.registry.any_staging()
    }

    /// Brings the served datasets in step with `config` and the files it names.
    pub async fn reconcile(&self, config: &Config, stores: &Arc<Stores>) -> Changes {
        let started = Instant::now();
        let wanted = entries(config, stores, &self.registry).await;
        let mut opened = self.opened.lock().await;
        let mut changes = Changes::default();
        let wanted_ids: HashSet<&str> = wanted.iter().map(|e| e.id.as_str()).collect();
        let gone: Vec<String> = opened.keys().filter(|id| !wanted_ids.contains(id.as_str())).cloned().collect();
        for id in gone {
            if let Some(old) = opened.remove(&id) {
                old.ids.iter().for_each(|id| self.registry.remove(id));
                changes.removed += 1;
            }
        }
        let (mut scanned, mut cached) = (0, 0);
        let mut seen = HashSet::new();
        let mut staging = HashMap::new();
        for entry in wanted {
            let (id, path) = (entry.id.clone(), entry.path.clone());
            // The first entry of an id wins, as at every pass (else two would take turns).
            if !seen.insert(id.clone()) {
                tracing::warn!(dataset = id, file = %path.display(), "dataset id already taken; file skipped");
                continue;
            }
            let now = stamp(&path);
            let previous = opened.get(&id);
            if previous.is_some_and(|old| old.path == path && old.stamp == now) {
                continue;
            }
            let was_open = previous.is_some();
            let owned: Vec<String> = previous.map(|old| old.ids.clone()).unwrap_or_default();
            if !was_open && self.registry.contains(&id) {
                tracing::warn!(dataset = id, file = %path.display(), "dataset id already taken; file skipped");
                continue;
            }
            let opener = Arc::clone(&self.opener);
            let result = tokio::task::spawn_blocking(move || opener.open(&entry))
                .await
                .unwrap_or_else(|e| Err(OpenError::Failed(format!("scan task failed: {e}"))));
            let (sources, origin) = match result {
                Ok(opened) => opened,
                Err(OpenError::Staging { retry_after_secs }) => {
                    // Opened when its staging ends (`Datasets::on_stagings`); a 503 until then.
                    tracing::info!(dataset = id, file = %path.display(), "dataset waits for its file to be staged");
                    staging.insert(id, retry_after_secs);
                    continue;
                }
                Err(reason) => {
                    tracing::warn!(dataset = id, file = %path.display(), "dataset skipped: {reason}");
                    // A file that went or broke is served no more.
                    if let Some(old) = opened.remove(&id) {
                        old.ids.iter().for_each(|id| self.registry.remove(id));
                        changes.removed += 1;
                    }
                    continue;
                }
            };
            let result = match origin {
                Origin::Cached => {
                    cached += 1;
                    "hit"
                }
                Origin::Scanned => {
                    scanned += 1;
                    "miss"
                }
            };
            metrics::counter!("cloudify_reference_cache_requests_total", "result" => result).increment(1);
            let mut ids = Vec::new();
            for (id, source) in sources {
                if !owned.contains(&id) && self.registry.contains(&id) {
                    tracing::warn!(dataset = id, file = %path.display(), "dataset id already taken; group skipped");
                    continue;
                }
                let source = match &self.chunk_cache {
                    Some(chunks) => Arc::new(chunks.wrap(&id, source)),
                    None => source,
                };
                self.registry.insert(id.clone(), source);
                ids.push(id);
            }
            for old in owned.iter().filter(|old| !ids.contains(old)) {
                self.registry.remove(old);
            }
            if was_open {
                changes.rescanned += 1;
            } else {
                changes.added += 1;
            }
            opened.insert(id, Opened { path, stamp: now, ids });
        }
        changes.staging = staging.len();
        self.registry.set_staging(staging);
        tracing::info!(
            scanned,
            cached,
            staging = changes.staging,
            added = changes.added,
            rescanned = changes.rescanned,
            removed = changes.removed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "datasets opened"
        );
        changes
    }
}
