//! Opening what an operator names as dataset sources: a NetCDF file (its sub-groups as
//! datasets of their own), a glob of files joined along a dimension, a Zarr store, a kerchunk
//! reference set, any of them at a URL, and the files of a folder. Each file is scanned once
//! (through the reference cache) into chunk references; a variable that cannot be served is
//! left out with a warning, a file that cannot be served is an error for its entry only.
//!
//! [`catalog`] turns intake catalog trees into entries.
//!
//! [`references`] is the way back: kerchunk reference sets written from files (`cloudify refs
//! scan`).

pub mod catalog;
pub mod references;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use cloudify_cfa::{Fragment, Fragments};
use cloudify_dataset::{concat, Limits, SharedSource, VirtualDataset, VirtualSource};
use cloudify_netcdf::{fallback_for, group_id, is_cached, scan_cached, scan_remote, Origin, Scan};
use cloudify_store::{Confinement, Stores};
use cloudify_zarr::ZarrSource;

/// `(id, path)` of every file under `folder` (and its sub-folders when `recursive`) whose
/// extension is one of `extensions`, and of every Zarr store, in path order; the id is the
/// file stem.
pub fn folder_files(folder: &Path, recursive: bool, extensions: &[String]) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    {
        let depth = if recursive { usize::MAX } else { 1 };
        // A Zarr store is one dataset: taken whole, not descended into.
        let mut files: Vec<PathBuf> = walkdir::WalkDir::new(folder)
            .max_depth(depth)
            .follow_links(true)
            .into_iter()
            .filter_entry(|entry| entry.depth() == 0 || !entry.path().parent().is_some_and(is_zarr))
            .filter_map(|entry| match entry {
                Ok(entry) => Some(entry),
                Err(err) => {
                    tracing::warn!(folder = %folder.display(), "{err}");
                    None
                }
            })
            .filter(|entry| entry.file_type().is_file() || (entry.depth() > 0 && is_zarr(entry.path())))
            .map(walkdir::DirEntry::into_path)
            .filter(|path| {
                is_zarr(path)
                    || path.extension().and_then(|e| e.to_str()).is_some_and(|ext| extensions.iter().any(|x| x == ext))
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

/// What one dataset entry names: a file, a glob of files (in path order), a Zarr store, a
/// reference set, or a URL of one.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The dataset id (sub-groups get ids derived from it).
    pub id: String,
    /// Path, glob or URL.
    pub path: PathBuf,
    /// The dimension files of a glob are joined along (default: their unlimited one).
    pub concat_dim: Option<String>,
    /// Where a reference set's targets may point besides its own place.
    pub allow_targets: Vec<String>,
}

impl Entry {
    /// An entry for one file.
    pub fn file(id: String, path: PathBuf) -> Self {
        Self { id, path, concat_dim: None, allow_targets: Vec::new() }
    }
}

/// What a location holds, when its name does not tell (a product of a STAC catalogue names
/// its format beside a URL such as `/datasets/x/zarr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A Zarr store (v2 or v3).
    Zarr,
    /// A kerchunk reference set (JSON, or a parquet folder).
    References,
    /// A NetCDF file: classic or NetCDF4, a CF aggregation file among them.
    NetCdf,
}

/// What opening every entry shares: the reference cache folder, the byte stores, the limits.
pub struct Opener {
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
    location.ends_with(".json") || cloudify_kerchunk::source::is_parquet(location)
}

impl Opener {
    /// An opener keeping scans in `cache`, reading through `stores`, within `limits`.
    pub fn new(cache: PathBuf, stores: Arc<Stores>, limits: Limits) -> Self {
        Self { cache, stores, limits }
    }

    /// A kerchunk reference set served as the dataset it describes, its targets confined.
    fn references(&self, entry: &Entry, location: &str) -> Result<SharedSource, String> {
        let confinement = Confinement::of_set(location, &entry.allow_targets)?;
        let opened = cloudify_kerchunk::source::open(location, &entry.id, &self.stores, &self.limits, &confinement);
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
    /// file (classic read by its header, NetCDF4 scanned from a temporary copy).
    fn remote(&self, entry: &Entry, location: &str) -> Result<SharedSource, String> {
        if is_reference_set(location) {
            return self.references(entry, location);
        }
        if location.trim_end_matches('/').ends_with(".zarr") {
            return self.zarr(entry, location);
        }
        self.remote_file(entry, location)
    }

    /// A NetCDF file at a URL, a CF aggregation file stitched from its fragments.
    fn remote_file(&self, entry: &Entry, location: &str) -> Result<SharedSource, String> {
        let scanned = scan_remote(location, &entry.id, &self.stores, &self.limits);
        let scan = tokio::runtime::Handle::current().block_on(scanned).map_err(|e| e.to_string())?;
        warn_skipped(&entry.id, &scan.skipped);
        let mut dataset = scan.dataset;
        if cloudify_cfa::is_aggregation(&dataset.meta) {
            dataset = self.aggregation(entry, location, dataset)?;
        }
        let source =
            VirtualSource::new(dataset, Arc::clone(&self.stores), None, &self.limits).map_err(|e| e.to_string())?;
        Ok(Arc::new(source))
    }

    /// The dataset a CF aggregation file describes: its aggregation variables stitched from
    /// their fragments, each fragment file scanned once (through the cache for local files)
    /// and confined as a reference set's targets are (the aggregation file's folder or host,
    /// and the entry's `allow_targets`).
    fn aggregation(&self, entry: &Entry, location: &str, file: VirtualDataset) -> Result<VirtualDataset, String> {
        let handle = tokio::runtime::Handle::current();
        let fallback = fallback_for(&file, None);
        let source = VirtualSource::new(file.clone(), Arc::clone(&self.stores), fallback, &self.limits)
            .map_err(|e| e.to_string())?;
        let description = handle.block_on(cloudify_cfa::describe(&source, location)).map_err(|e| e.to_string())?;
        let confinement = Confinement::of_set(location, &entry.allow_targets)?;
        let mut fragments = Fragments::new();
        for fragment in description.aggregations.iter().flat_map(|a| &a.fragments) {
            let Fragment::File { location, .. } = fragment else { continue };
            if !fragments.contains_key(location) {
                let scanned = confinement.check(location).and_then(|target| self.fragment(&entry.id, &target));
                fragments.insert(location.clone(), scanned);
            }
        }
        let assembled = cloudify_cfa::assemble(file, description, &fragments, &self.stores, &self.limits);
        let assembled = handle.block_on(assembled).map_err(|e| e.to_string())?;
        warn_skipped(&entry.id, &assembled.refused);
        Ok(assembled.dataset)
    }

    /// One fragment of an aggregation, scanned.
    fn fragment(&self, id: &str, target: &str) -> Result<VirtualDataset, String> {
        let scan = if Stores::is_remote(target) {
            tokio::runtime::Handle::current().block_on(scan_remote(target, id, &self.stores, &self.limits))
        } else {
            return self.scan_local(Path::new(target), id).map(|(scan, _)| scan.dataset).map_err(|e| e.to_string());
        };
        scan.map(|scan| scan.dataset).map_err(|e| e.to_string())
    }

    /// A local NetCDF file scanned, through the reference cache. A file on a slow tier is
    /// scanned only once it is online: until then its staging is started and the scan
    /// refused with the store's `Staging` error.
    fn scan_local(&self, file: &Path, id: &str) -> Result<(Scan, Origin), OpenError> {
        if !is_cached(file, &self.cache, &self.limits) {
            let location = file.to_string_lossy();
            match tokio::runtime::Handle::current().block_on(self.stores.ready(&location)) {
                Ok(()) => {}
                Err(cloudify_store::Error::Staging { retry_after_secs, .. }) => {
                    return Err(OpenError::Staging { retry_after_secs })
                }
                Err(err) => return Err(err.to_string().into()),
            }
        }
        Ok(scan_cached(file, id, &self.cache, &self.limits).map_err(|e| e.to_string())?)
    }

    /// The datasets of one entry (a NetCDF4 file's sub-groups follow its root, with the ids
    /// [`group_id`] gives), and whether anything was scanned. Blocking: call it on a blocking
    /// thread of a tokio runtime (remote reads wait on the runtime).
    ///
    /// # Errors
    /// Why the entry cannot be served (unreadable, unknown format, files that do not join).
    pub fn open(&self, entry: &Entry) -> Result<Opened, OpenError> {
        let location = entry.path.to_string_lossy();
        let one = |source: SharedSource| (vec![(entry.id.clone(), source)], Origin::Scanned);
        if Stores::is_remote(&location) {
            return self.remote(entry, &location).map(one).map_err(OpenError::from);
        }
        if is_reference_set(&location) {
            return self.references(entry, &location).map(one).map_err(OpenError::from);
        }
        if is_zarr(&entry.path) {
            return self.zarr(entry, &location).map(one).map_err(OpenError::from);
        }
        let mut origin = Origin::Cached;
        let mut parts = Vec::new();
        let mut groups = Vec::new();
        for file in files_of(&entry.path)? {
            let (scan, from) = self.scan_local(&file, &entry.id)?;
            warn_skipped(&entry.id, &scan.skipped);
            if from == Origin::Scanned {
                origin = Origin::Scanned;
            }
            parts.push(scan.dataset);
            groups = scan.groups;
        }
        let dataset = if parts.len() == 1 {
            let file = parts.remove(0);
            if cloudify_cfa::is_aggregation(&file.meta) {
                let canonical = file.files.first().cloned().unwrap_or_else(|| location.to_string());
                self.aggregation(entry, &canonical, file)?
            } else {
                file
            }
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

    /// The one dataset at `entry`'s path or URL, read as `format` whatever its name (the root
    /// group of a NetCDF4 file). Blocking, as [`Opener::open`].
    ///
    /// # Errors
    /// Why it cannot be served (unreachable, not of that format, targets outside the set's
    /// place and `allow_targets`).
    pub fn open_as(&self, entry: &Entry, format: Format) -> Result<SharedSource, String> {
        let location = entry.path.to_string_lossy();
        match format {
            Format::Zarr => self.zarr(entry, &location),
            Format::References => self.references(entry, &location),
            Format::NetCdf if Stores::is_remote(&location) => self.remote_file(entry, &location),
            Format::NetCdf => {
                let (mut opened, _) = self.open(entry).map_err(|e| e.to_string())?;
                Ok(opened.swap_remove(0).1)
            }
        }
    }

    /// A scanned dataset (the root, or the group at `group`) served from its references.
    fn scanned(&self, dataset: VirtualDataset, group: Option<&str>) -> Result<SharedSource, String> {
        let fallback = fallback_for(&dataset, group);
        let source =
            VirtualSource::new(dataset, Arc::clone(&self.stores), fallback, &self.limits).map_err(|e| e.to_string())?;
        Ok(Arc::new(source))
    }
}

/// Why an entry is not served, now or at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A file of the entry is being staged from a slow tier to be scanned: it opens once the
    /// file is online.
    #[error("a file is being staged from a slow tier; retry after {retry_after_secs} s")]
    Staging {
        /// Seconds a client should wait before asking again.
        retry_after_secs: u64,
    },
    /// The entry cannot be served (unreadable, unknown format, files that do not join).
    #[error("{0}")]
    Failed(String),
}

impl From<String> for OpenError {
    fn from(reason: String) -> Self {
        Self::Failed(reason)
    }
}

impl From<&str> for OpenError {
    fn from(reason: &str) -> Self {
        Self::Failed(reason.to_owned())
    }
}

/// The datasets of one entry, and whether anything was scanned.
pub type Opened = (Vec<(String, SharedSource)>, Origin);

fn warn_skipped(id: &str, skipped: &[(String, String)]) {
    for (variable, reason) in skipped {
        tracing::warn!(dataset = id, variable, "variable not served: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_yield_files_by_extension_and_zarr_stores_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(root.join("store.zarr/tas")).unwrap();
        std::fs::write(root.join("store.zarr/.zgroup"), "{}").unwrap();
        std::fs::write(root.join("store.zarr/tas/0.0"), "").unwrap();
        for file in ["b.nc", "a.nc", "notes.txt", "sub/c.nc4", "sub/deeper/d.nc"] {
            std::fs::write(root.join(file), "").unwrap();
        }
        let ids = |recursive, extensions: &[&str]| -> Vec<String> {
            let extensions: Vec<String> = extensions.iter().map(|e| (*e).to_owned()).collect();
            folder_files(root, recursive, &extensions).into_iter().map(|(id, _)| id).collect()
        };
        assert_eq!(ids(false, &["nc"]), ["a", "b", "store"]);
        assert_eq!(ids(true, &["nc", "nc4"]), ["a", "b", "store", "c", "d"]);
    }

    #[test]
    fn globs_expand_in_path_order_and_must_match() {
        let dir = tempfile::tempdir().unwrap();
        for file in ["tas_2001.nc", "tas_2000.nc", "pr_2000.nc"] {
            std::fs::write(dir.path().join(file), "").unwrap();
        }
        let files = files_of(&dir.path().join("tas_*.nc")).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["tas_2000.nc", "tas_2001.nc"]);
        assert!(files_of(&dir.path().join("uas_*.nc")).unwrap_err().contains("no file matches"));
        assert_eq!(files_of(Path::new("/data/one.nc")).unwrap(), [PathBuf::from("/data/one.nc")]);
    }

    #[test]
    fn formats_are_told_by_name() {
        assert!(is_reference_set("https://host/refs/tas.json"));
        assert!(!is_reference_set("/data/tas.nc"));
        let dir = tempfile::tempdir().unwrap();
        assert!(is_zarr(&dir.path().join("x.zarr")));
        std::fs::write(dir.path().join("zarr.json"), "{}").unwrap();
        assert!(is_zarr(dir.path()), "a folder with zarr.json is a store whatever its name");
    }
}
