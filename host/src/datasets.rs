//! Opening the configured datasets at start-up: the demo file, `[[datasets]]` and
//! `[[folders]]`, each scanned once (through the reference cache) on a blocking thread. A file
//! that cannot be served is skipped with a warning; the others are served.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use cloudify_dataset::{concat, demo_dataset, ChunkCache, Limits, SharedSource, VirtualDataset, VirtualSource};
use cloudify_netcdf::{fallback_for, group_id, scan_cached, scan_remote, write_netcdf4, Origin};
use cloudify_store::{Confinement, Stores};
use cloudify_zarr::ZarrSource;

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

/// `(id, path)` of every file under the configured folders.
fn folder_files(config: &Config) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for folder in &config.folders {
        let depth = if folder.recursive { usize::MAX } else { 1 };
        // A Zarr store is one dataset: taken whole, not descended into.
        let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&folder.path)
            .max_depth(depth)
            .follow_links(true)
            .into_iter()
            .filter_entry(|entry| entry.depth() == 0 || !entry.path().parent().is_some_and(is_zarr))
            .filter_map(|entry| match entry {
                Ok(entry) => Some(entry),
                Err(err) => {
                    tracing::warn!(folder = %folder.path.display(), "{err}");
                    None
                }
            })
            .filter(|entry| entry.file_type().is_file() || (entry.depth() > 0 && is_zarr(entry.path())))
            .map(walkdir::DirEntry::into_path)
            .filter(|path| {
                is_zarr(path)
                    || path
                        .extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|ext| folder.extensions.iter().any(|x| x == ext))
            })
            .collect();
        files.sort();
        for path in files {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                found.push((stem.to_owned(), path));
            }
        }
    }
    found
}

/// What one dataset entry names: a file, or the files of a glob in path order.
struct Entry {
    id: String,
    path: PathBuf,
    concat_dim: Option<String>,
    /// Where a reference set's targets may point besides its own place.
    allow_targets: Vec<String>,
}

impl Entry {
    fn file(id: String, path: PathBuf) -> Self {
        Self { id, path, concat_dim: None, allow_targets: Vec::new() }
    }
}

/// What opening every entry shares.
struct Opener {
    cache: PathBuf,
    stores: Arc<Stores>,
    limits: Limits,
}

fn files_of(path: &Path) -> Result<Vec<PathBuf>, String> {
    let text = path.to_string_lossy();
    if !text.contains(['*', '?', '[']) {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = glob::glob(&text).map_err(|e| e.to_string())?.filter_map(Result::ok).collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no file matches {text}"));
    }
    Ok(files)
}

/// Whether `path` is a Zarr store: a `.zarr` folder, or one holding Zarr group metadata.
fn is_zarr(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "zarr") || [".zgroup", "zarr.json"].iter().any(|f| path.join(f).is_file())
}

/// Whether `location` is a kerchunk reference set (JSON, or a parquet folder).
fn is_reference_set(location: &str) -> bool {
    location.ends_with(".json") || cloudify_refs::is_parquet(location)
}

impl Opener {
    /// A kerchunk reference set served as the dataset it describes, its targets confined.
    fn references(&self, entry: &Entry, location: &str) -> Result<SharedSource, String> {
        let confinement = Confinement::of_set(location, &entry.allow_targets)?;
        let opened = cloudify_refs::open(location, &entry.id, &self.stores, &self.limits, &confinement);
        let dataset = tokio::runtime::Handle::current().block_on(opened).map_err(|e| e.to_string())?;
        let source =
            VirtualSource::new(dataset, Arc::clone(&self.stores), None, &self.limits).map_err(|e| e.to_string())?;
        Ok(Arc::new(source))
    }

    /// A Zarr store, local or at a URL.
    fn zarr(&self, entry: &Entry, location: &str) -> Result<SharedSource, String> {
        let opened = ZarrSource::open(location, &entry.id, Arc::clone(&self.stores), &self.limits);
        let source = tokio::runtime::Handle::current().block_on(opened).map_err(|e| e.to_string())?;
        Ok(Arc::new(source))
    }

    /// A dataset at a URL (HTTP, S3): a Zarr store, a kerchunk reference set, or a NetCDF
    /// classic file read by its header.
    fn remote(&self, entry: &Entry, location: &str) -> Result<SharedSource, String> {
        if is_reference_set(location) {
            return self.references(entry, location);
        }
        if location.trim_end_matches('/').ends_with(".zarr") {
            return self.zarr(entry, location);
        }
        let scanned = scan_remote(location, &entry.id, &self.stores, &self.limits);
        let scan = tokio::runtime::Handle::current().block_on(scanned).map_err(|e| e.to_string())?;
        warn_skipped(&entry.id, &scan.skipped);
        let source = VirtualSource::new(scan.dataset, Arc::clone(&self.stores), None, &self.limits)
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(source))
    }

    /// The datasets of one entry (a NetCDF4 file's sub-groups follow its root, with the ids
    /// [`group_id`] gives), and whether anything was scanned.
    fn open(&self, entry: &Entry) -> Result<Opened, String> {
        let location = entry.path.to_string_lossy();
        let one = |source: SharedSource| (vec![(entry.id.clone(), source)], Origin::Scanned);
        if Stores::is_remote(&location) {
            return self.remote(entry, &location).map(one);
        }
        if is_reference_set(&location) {
            return self.references(entry, &location).map(one);
        }
        if is_zarr(&entry.path) {
            return self.zarr(entry, &location).map(one);
        }
        let mut origin = Origin::Cached;
        let mut parts = Vec::new();
        let mut groups = Vec::new();
        for file in files_of(&entry.path)? {
            let (scan, from) = scan_cached(&file, &entry.id, &self.cache, &self.limits).map_err(|e| e.to_string())?;
            warn_skipped(&entry.id, &scan.skipped);
            if from == Origin::Scanned {
                origin = Origin::Scanned;
            }
            parts.push(scan.dataset);
            groups = scan.groups;
        }
        let dataset = if parts.len() == 1 {
            parts.remove(0)
        } else {
            if !groups.is_empty() {
                tracing::warn!(dataset = entry.id, "sub-groups of multi-file datasets are not served");
                groups.clear();
            }
            let dim = entry
                .concat_dim
                .clone()
                .or_else(|| parts[0].meta.unlimited.first().cloned())
                .ok_or("the files have no unlimited dimension: set concat_dim")?;
            // A blocking thread of the runtime: wait here for the reads the join may need.
            let joined = concat(parts, &dim, &self.stores, &self.limits);
            tokio::runtime::Handle::current().block_on(joined).map_err(|e| e.to_string())?
        };
        let mut opened = vec![(entry.id.clone(), self.scanned(dataset, None)?)];
        for (path, dataset) in groups {
            let id = group_id(&entry.id, &path);
            match self.scanned(dataset, Some(&path)) {
                Ok(source) => opened.push((id, source)),
                Err(reason) => tracing::warn!(dataset = id, "group skipped: {reason}"),
            }
        }
        Ok((opened, origin))
    }

    /// A scanned dataset (the root, or the group at `group`) served from its references.
    fn scanned(&self, dataset: VirtualDataset, group: Option<&str>) -> Result<SharedSource, String> {
        let fallback = fallback_for(&dataset, group);
        let source =
            VirtualSource::new(dataset, Arc::clone(&self.stores), fallback, &self.limits).map_err(|e| e.to_string())?;
        Ok(Arc::new(source))
    }
}

/// The datasets of one entry, and whether anything was scanned.
type Opened = (Vec<(String, SharedSource)>, Origin);

fn warn_skipped(id: &str, skipped: &[(String, String)]) {
    for (variable, reason) in skipped {
        tracing::warn!(dataset = id, variable, "variable not served: {reason}");
    }
}

/// Opens every dataset the config names into `registry`, one after the other (each is
/// served as soon as it is open), then marks the registry opened.
pub async fn open_all(config: &Config, stores: Arc<Stores>, registry: &Registry) {
    let started = Instant::now();
    let opener = Arc::new(Opener { cache: config.cache.dir().join("scans"), stores, limits: config.limits.clone() });
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
    entries.extend(folder_files(config).into_iter().map(|(id, path)| Entry::file(id, path)));

    let chunk_cache = (config.cache.chunk_bytes > 0).then(|| ChunkCache::new(config.cache.chunk_bytes));
    let (mut scanned, mut cached) = (0, 0);
    for entry in entries {
        let (id, path) = (entry.id.clone(), entry.path.clone());
        if registry.contains(&id) {
            tracing::warn!(dataset = id, file = %path.display(), "dataset id already taken; file skipped");
            continue;
        }
        let opener = Arc::clone(&opener);
        let opened = tokio::task::spawn_blocking(move || opener.open(&entry))
            .await
            .unwrap_or_else(|e| Err(format!("scan task failed: {e}")));
        match opened {
            Ok((sources, origin)) => {
                match origin {
                    Origin::Cached => cached += 1,
                    Origin::Scanned => scanned += 1,
                }
                for (id, source) in sources {
                    if registry.contains(&id) {
                        tracing::warn!(dataset = id, file = %path.display(), "dataset id already taken; group skipped");
                        continue;
                    }
                    let source = match &chunk_cache {
                        Some(chunks) => Arc::new(chunks.wrap(&id, source)),
                        None => source,
                    };
                    registry.insert(id, source);
                }
            }
            Err(reason) => tracing::warn!(dataset = id, file = %path.display(), "dataset skipped: {reason}"),
        }
    }
    tracing::info!(scanned, cached, elapsed_ms = started.elapsed().as_millis() as u64, "datasets opened");
    registry.mark_opened();
}
