//! NetCDF files written into an Icechunk repository as virtual chunks (`cloudify icechunk
//! virtualize`), what VirtualiZarr's `to_icechunk` does: each variable's Zarr v3 metadata
//! (dimension names, fill value, attributes, the file's codecs), one virtual reference per
//! stored chunk pointing into its file (with the file's modification time as checksum),
//! dimension coordinates and small chunks as native chunks, the files' container in the
//! repository's config, one commit. `--append` adds later files along the concatenated
//! dimension as a new snapshot.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use cloudify_dataset::{read_region, Limits, Source};
use cloudify_open::references::{scan_files, ScannedFiles};
use icechunk::{
    config::{HttpConfig, S3Options},
    format::{
        manifest::{Checksum, SecondsSinceEpoch},
        snapshot::NodeData,
    },
    virtual_chunks::VirtualChunkContainer,
    ObjectStoreConfig, Repository, Store,
};
use serde_json::{json, Value};
use tokio::sync::RwLock;

use crate::{
    repos::storage,
    write::{chunk_key, write_array},
};

/// Stored chunks smaller than this are written as native chunks (`refs scan`'s inlining).
pub const INLINE_THRESHOLD: u64 = 500;

/// What to write where.
#[derive(Debug, Clone)]
pub struct Job {
    /// NetCDF3 or NetCDF4 files, in the order they join.
    pub files: Vec<PathBuf>,
    /// The repository: a local folder or `s3://bucket/prefix`.
    pub repo: String,
    /// The dimension several files join along (default: their unlimited dimension).
    pub concat_dim: Option<String>,
    /// The branch committed to (created from `main` when missing).
    pub branch: String,
    /// The commit message (a default names the files).
    pub message: Option<String>,
    /// Local path prefixes mapped to the URL prefixes readers fetch the files from
    /// (`/data/=s3://bucket/data/`); files outside every prefix are referenced as `file://`.
    pub containers: Vec<(String, String)>,
    /// Add the files along the concatenated dimension to what the branch holds.
    pub append: bool,
    /// Stored chunks under this many bytes become native chunks.
    pub inline_threshold: u64,
}

/// What a run wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The new snapshot's id.
    pub snapshot: String,
    /// Arrays written.
    pub arrays: usize,
    /// Virtual chunk references written.
    pub virtual_chunks: u64,
    /// Native chunks written (dimension coordinates, small chunks, chunks without stored bytes).
    pub native_chunks: u64,
    /// The URL prefixes of the virtual chunk containers readers must authorize.
    pub containers: Vec<String>,
}

/// Where the files' chunks are referenced: each file's URL, its container's prefix, and the
/// checksum that makes reads fail once the file changed.
struct Locations {
    containers: Vec<(String, String)>,
    /// URL and checksum seconds per file path seen.
    seen: HashMap<String, (String, u32)>,
    /// Container prefix → its store.
    used: BTreeMap<String, ObjectStoreConfig>,
}

impl Locations {
    fn new(containers: &[(String, String)]) -> Self {
        Self { containers: containers.to_vec(), seen: HashMap::new(), used: BTreeMap::new() }
    }

    /// The URL and checksum of the chunks of the file at `path`.
    fn of(&mut self, path: &str) -> Result<(String, u32), String> {
        if let Some(known) = self.seen.get(path) {
            return Ok(known.clone());
        }
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).map_err(|e| format!("{path}: {e}"))?;
        let mapped = self.containers.iter().find(|(prefix, _)| path.starts_with(prefix.as_str()));
        let (url, checksum) = match mapped {
            Some((prefix, url_prefix)) => {
                let url_prefix = with_slash(url_prefix);
                let rest = path[prefix.len()..].trim_start_matches('/');
                self.used.insert(url_prefix.clone(), store_for(&url_prefix)?);
                // A copy elsewhere was made after the file: the time of writing is the
                // checksum (VirtualiZarr's default), later changes there fail reads.
                (format!("{url_prefix}{rest}"), unix_seconds(SystemTime::now() + Duration::from_secs(1))?)
            }
            None => {
                let url = url::Url::from_file_path(path).map_err(|()| format!("{path}: not an absolute path"))?;
                let folder = Path::new(path).parent().unwrap_or(Path::new("/"));
                let prefix = url::Url::from_directory_path(folder).map_err(|()| format!("{path}: no folder"))?;
                self.used.insert(prefix.to_string(), ObjectStoreConfig::LocalFileSystem(folder.to_path_buf()));
                // Rounded up: the file system keeps sub-second times, the checksum seconds.
                (url.to_string(), unix_seconds(modified + Duration::from_millis(999))?)
            }
        };
        self.seen.insert(path.to_owned(), (url.clone(), checksum));
        Ok((url, checksum))
    }
}

fn with_slash(prefix: &str) -> String {
    if prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

fn unix_seconds(time: SystemTime) -> Result<u32, String> {
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
    u32::try_from(secs).map_err(|_| format!("time {secs} does not fit icechunk's checksum"))
}

/// The object store a container of URL prefix `prefix` reads with.
pub(crate) fn store_for(prefix: &str) -> Result<ObjectStoreConfig, String> {
    if prefix.starts_with("s3://") {
        let env = |names: &[&str]| names.iter().find_map(|n| std::env::var(n).ok()).filter(|v| !v.is_empty());
        let mut options = S3Options::default();
        if let Some(region) = env(&["AWS_REGION", "AWS_DEFAULT_REGION"]) {
            options = options.with_region(region);
        }
        return Ok(match env(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]) {
            Some(endpoint) => {
                let http = endpoint.starts_with("http://");
                let options = options.with_endpoint_url(endpoint).with_allow_http(http).with_force_path_style(true);
                ObjectStoreConfig::S3Compatible(options)
            }
            None => ObjectStoreConfig::S3(options),
        });
    }
    if prefix.starts_with("http://") || prefix.starts_with("https://") {
        return Ok(ObjectStoreConfig::Http(HttpConfig::default()));
    }
    match prefix.strip_prefix("file://") {
        Some(path) => Ok(ObjectStoreConfig::LocalFileSystem(PathBuf::from(path))),
        None => Err(format!("container '{prefix}': give an s3://, http(s):// or file:// URL prefix")),
    }
}

fn failed(context: &str) -> impl Fn(&dyn std::fmt::Display) -> String + '_ {
    move |e| format!("{context}: {e}")
}

/// Scans `job.files` and writes them into the repository as one commit.
///
/// # Errors
/// A file that cannot be scanned, a repository that cannot be opened or written, appended
/// files that do not continue what the branch holds.
pub async fn virtualize(job: &Job, limits: &Limits) -> Result<Written, String> {
    let files = job
        .files
        .iter()
        .map(|f| std::path::absolute(f).map_err(|e| format!("{}: {e}", f.display())))
        .collect::<Result<Vec<_>, _>>()?;
    let scanned = scan_files(&files, job.concat_dim.as_deref(), "an icechunk repository", limits).await?;
    let storage = storage(&job.repo).await?;
    let repo_failed = failed(&job.repo);
    let exists = Repository::exists(Arc::clone(&storage), None).await.map_err(|e| repo_failed(&e))?;
    if job.append && !exists {
        return Err(format!("{}: no repository to append to", job.repo));
    }
    let repo =
        if exists { Repository::open(storage).execute().await } else { Repository::create(storage).execute().await }
            .map_err(|e| repo_failed(&e))?;
    // The files' containers go into the repository's config first (references are checked
    // against them as they are written); saved with the commit, readers inherit them.
    let mut locations = Locations::new(&job.containers);
    for file in &files {
        locations.of(&file.to_string_lossy())?;
    }
    let mut config = repo.config().clone();
    for (prefix, object_store) in &locations.used {
        let container = VirtualChunkContainer::new(prefix.clone(), object_store.clone())?;
        config.set_virtual_chunk_container(container)?;
    }
    let repo = repo.reopen(Some(config), None).await.map_err(|e| repo_failed(&e))?;

    if repo.lookup_branch(&job.branch).await.is_err() {
        let main = repo.lookup_branch("main").await.map_err(|e| repo_failed(&e))?;
        repo.create_branch(&job.branch, &main).await.map_err(|e| repo_failed(&e))?;
    }
    let session = repo.writable_session(&job.branch).await.map_err(|e| repo_failed(&e))?;
    let store = Store::from_session(Arc::new(RwLock::new(session))).await;
    let plan = if job.append {
        append_plan(&store, &scanned, job.concat_dim.as_deref()).await?
    } else {
        if holds_arrays(&store).await.map_err(|e| repo_failed(&e))? {
            return Err(format!(
                "{}: branch '{}' already holds arrays: --append adds files to them, or write to a new repository",
                job.repo, job.branch
            ));
        }
        write_group(&store, &scanned).await?
    };
    let mut written = Written {
        snapshot: String::new(),
        arrays: 0,
        virtual_chunks: 0,
        native_chunks: 0,
        containers: locations.used.keys().cloned().collect(),
    };
    for array in &plan {
        store.set(&format!("{}/zarr.json", array.name), array.metadata.clone()).await.map_err(|e| repo_failed(&e))?;
        write_chunks(&store, &scanned, array, &mut locations, job.inline_threshold, &mut written).await?;
        written.arrays += 1;
    }

    let message = job.message.clone().unwrap_or_else(|| {
        let names: Vec<_> = files.iter().filter_map(|f| f.file_name()).map(|n| n.to_string_lossy()).collect();
        let verb = if job.append { "appended" } else { "virtualized" };
        format!("{verb} {} by cloudify", names.join(", "))
    });
    let session = store.session();
    let mut session = session.write().await;
    let snapshot = session.commit(message).execute().await.map_err(|e| repo_failed(&e))?;
    written.snapshot = snapshot.to_string();
    repo.save_config().await.map_err(|e| repo_failed(&e))?;
    Ok(written)
}

/// Whether the store's branch holds an array.
async fn holds_arrays(store: &Store) -> Result<bool, String> {
    let session = store.session();
    let session = session.read().await;
    for node in session.list_nodes(&icechunk::format::Path::root()).await.map_err(|e| e.to_string())? {
        if matches!(node.map_err(|e| e.to_string())?.node_data, NodeData::Array { .. }) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One array to write: its metadata document and its chunks.
struct ArrayPlan {
    name: String,
    metadata: Bytes,
    chunks: Chunks,
}

/// Where an array's chunks come from.
enum Chunks {
    /// The files' chunks (virtual, or native when small or without stored bytes), shifted
    /// by a number of chunks along an axis when appended.
    Files { offset: Option<(usize, u64)> },
    /// A dimension coordinate loaded whole (VirtualiZarr's loadable variables): one native
    /// chunk of little-endian values, rewritten whole when files are appended.
    Loaded(Vec<u8>),
}

/// The codecs of loaded coordinates.
fn loaded_codecs() -> Value {
    json!([{"name": "bytes", "configuration": {"endian": "little"}}])
}

/// `meta` turned into a loaded coordinate's of `len` values: one chunk, plain bytes.
fn loaded_metadata(mut meta: Value, len: u64) -> Bytes {
    meta["shape"] = json!([len]);
    meta["chunk_grid"] = json!({"name": "regular", "configuration": {"chunk_shape": [len.max(1)]}});
    meta["codecs"] = loaded_codecs();
    Bytes::from(meta.to_string())
}

/// The values of dimension coordinate `name` (native byte order, little-endian here).
async fn coordinate_values(scanned: &ScannedFiles, name: &str) -> Result<Vec<u8>, String> {
    let array = scanned.store.arrays.get(name).ok_or_else(|| format!("no array '{name}'"))?;
    let limit = MAX_LOADED_BYTES;
    read_region(&scanned.source, name, &[0], &array.shape, limit).await.map_err(|e| format!("'{name}': {e}"))
}

/// The most bytes of a dimension coordinate loaded into the repository.
const MAX_LOADED_BYTES: u64 = 256 << 20;

/// Whether `name` is a dimension coordinate of the scanned dataset.
fn is_dimension_coordinate(scanned: &ScannedFiles, name: &str) -> bool {
    scanned.store.arrays.get(name).is_some_and(|a| a.shape.len() == 1 && !a.dtype.is_variable_length())
        && array_json(scanned, name)
            .is_ok_and(|meta| meta["dimension_names"].as_array().is_some_and(|dims| dims.len() == 1 && dims[0] == name))
}

fn array_json(scanned: &ScannedFiles, name: &str) -> Result<Value, String> {
    let doc = scanned.store.docs.get(&format!("{name}/zarr.json")).ok_or_else(|| format!("no metadata of '{name}'"))?;
    serde_json::from_slice(&doc.body).map_err(|e| format!("metadata of '{name}': {e}"))
}

/// A new repository's root group (the global attributes), and every array whole.
async fn write_group(store: &Store, scanned: &ScannedFiles) -> Result<Vec<ArrayPlan>, String> {
    let root = scanned.store.docs.get(".zattrs").ok_or("no global attributes")?;
    let attributes: Value = serde_json::from_slice(&root.body).map_err(|e| e.to_string())?;
    // No consolidated metadata: icechunk lists its nodes itself.
    let group = json!({"zarr_format": 3, "node_type": "group", "attributes": attributes});
    store.set("zarr.json", Bytes::from(group.to_string())).await.map_err(|e| e.to_string())?;
    let mut plan = Vec::new();
    for name in scanned.store.arrays.keys() {
        let meta = array_json(scanned, name)?;
        plan.push(if is_dimension_coordinate(scanned, name) {
            let values = coordinate_values(scanned, name).await?;
            let len = meta["shape"][0].as_u64().unwrap_or_default();
            ArrayPlan { name: name.clone(), metadata: loaded_metadata(meta, len), chunks: Chunks::Loaded(values) }
        } else {
            let metadata = Bytes::from(meta.to_string());
            ArrayPlan { name: name.clone(), metadata, chunks: Chunks::Files { offset: None } }
        });
    }
    Ok(plan)
}

/// The arrays of `scanned` along the concatenated dimension, each checked to continue the
/// branch's array of that name (same type, codecs, chunks, fill, units, calendar; whole
/// chunks so far along the dimension) and given its grown shape. Arrays without the
/// dimension are the branch's already.
async fn append_plan(
    store: &Store,
    scanned: &ScannedFiles,
    concat_dim: Option<&str>,
) -> Result<Vec<ArrayPlan>, String> {
    let dim = match concat_dim {
        Some(dim) => dim.to_owned(),
        None => {
            let meta = scanned.source.metadata().map_err(|e| e.to_string())?;
            meta.unlimited.first().cloned().ok_or("the files have no unlimited dimension: give --concat-dim")?
        }
    };
    let mut plan = Vec::new();
    for name in scanned.store.arrays.keys() {
        let new = array_json(scanned, name)?;
        let Some(axis) = axis_of(&new, &dim) else { continue };
        let key = format!("{name}/zarr.json");
        let existing = store
            .get(&key, &icechunk::format::ByteRange::ALL)
            .await
            .map_err(|_| format!("'{name}' is not in the repository: appending cannot add arrays"))?;
        let existing: Value = serde_json::from_slice(&existing).map_err(|e| format!("{key}: {e}"))?;
        let loaded = is_dimension_coordinate(scanned, name);
        let fields: &[&str] = if loaded {
            &["data_type", "fill_value", "dimension_names"]
        } else {
            &["data_type", "chunk_grid", "codecs", "fill_value", "dimension_names"]
        };
        for &field in fields {
            if existing[field] != new[field] {
                return Err(format!(
                    "'{name}': the files' {field} {} differs from the repository's {}",
                    new[field], existing[field]
                ));
            }
        }
        for attribute in ["units", "calendar", "scale_factor", "add_offset"] {
            if existing["attributes"][attribute] != new["attributes"][attribute] {
                return Err(format!("'{name}': attribute '{attribute}' differs from the repository's"));
            }
        }
        let shape = |meta: &Value| -> Vec<u64> {
            meta["shape"].as_array().map(|s| s.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
        };
        let (old_shape, new_shape) = (shape(&existing), shape(&new));
        let done = old_shape[axis];
        let grown_len = done.checked_add(new_shape[axis]).ok_or("shape overflow")?;
        if loaded {
            if existing["codecs"] != loaded_codecs() {
                return Err(format!("'{name}' was not written by cloudify (a loaded coordinate): cannot append to it"));
            }
            let mut values = if done == 0 {
                Vec::new()
            } else {
                let old = store.get(&format!("{name}/c/0"), &icechunk::format::ByteRange::ALL).await;
                old.map_err(|e| format!("'{name}': {e}"))?.to_vec()
            };
            values.extend(coordinate_values(scanned, name).await?);
            let metadata = loaded_metadata(existing, grown_len);
            plan.push(ArrayPlan { name: name.clone(), metadata, chunks: Chunks::Loaded(values) });
            continue;
        }
        let chunk = new["chunk_grid"]["configuration"]["chunk_shape"][axis]
            .as_u64()
            .filter(|c| *c > 0)
            .ok_or("no chunk shape")?;
        if done % chunk != 0 {
            return Err(format!(
                "'{name}' holds {done} steps along '{dim}', not whole chunks of {chunk}: appending needs chunk-aligned arrays"
            ));
        }
        let mut grown = old_shape.clone();
        grown[axis] = grown_len;
        if old_shape.iter().zip(&new_shape).enumerate().any(|(i, (o, n))| i != axis && o != n) {
            return Err(format!(
                "'{name}': the files' shape {new_shape:?} does not continue {old_shape:?} along '{dim}'"
            ));
        }
        let mut metadata = existing;
        metadata["shape"] = json!(grown);
        plan.push(ArrayPlan {
            name: name.clone(),
            metadata: Bytes::from(metadata.to_string()),
            chunks: Chunks::Files { offset: Some((axis, done / chunk)) },
        });
    }
    if plan.is_empty() {
        return Err(format!("no array of the files lies along '{dim}'"));
    }
    Ok(plan)
}

fn axis_of(meta: &Value, dim: &str) -> Option<usize> {
    meta["dimension_names"].as_array()?.iter().position(|d| d == dim)
}

/// Every chunk of one array: a loaded coordinate's one native chunk, or the files' chunks.
async fn write_chunks(
    store: &Store,
    scanned: &ScannedFiles,
    plan: &ArrayPlan,
    locations: &mut Locations,
    inline_threshold: u64,
    written: &mut Written,
) -> Result<(), String> {
    let name = plan.name.as_str();
    match &plan.chunks {
        Chunks::Loaded(values) if values.is_empty() => {}
        Chunks::Loaded(values) => {
            let key = chunk_key(name, &[0]);
            store.set(&key, Bytes::copy_from_slice(values)).await.map_err(|e| format!("'{name}': {e}"))?;
            written.native_chunks += 1;
        }
        Chunks::Files { offset } => {
            let mut place = |url: String| {
                let (location, seconds) = locations.of(&url)?;
                Ok(Some((location, Some(Checksum::LastModified(SecondsSinceEpoch(seconds))))))
            };
            let counts =
                write_array(store, &scanned.store, name, scanned, &mut place, *offset, inline_threshold).await?;
            written.virtual_chunks += counts.virtual_chunks;
            written.native_chunks += counts.native_chunks;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_files_point_into_their_container() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a b.nc");
        std::fs::write(&file, b"x").unwrap();
        let prefix = format!("{}/", dir.path().display());
        let mut mapped = Locations::new(&[(prefix, "https://example.org/files".to_owned())]);
        let (url, _) = mapped.of(file.to_str().unwrap()).unwrap();
        assert_eq!(url, "https://example.org/files/a b.nc");
        assert_eq!(mapped.used.keys().collect::<Vec<_>>(), ["https://example.org/files/"]);

        let mut local = Locations::new(&[]);
        let (url, checksum) = local.of(file.to_str().unwrap()).unwrap();
        assert!(url.starts_with("file:///") && url.ends_with("/a%20b.nc"), "{url}");
        let modified = unix_seconds(std::fs::metadata(&file).unwrap().modified().unwrap()).unwrap();
        assert!(checksum >= modified && checksum <= modified + 1);
        assert!(matches!(local.used.values().next(), Some(ObjectStoreConfig::LocalFileSystem(_))));
    }

    #[test]
    fn containers_need_a_known_scheme() {
        assert!(matches!(
            store_for("s3://bucket/x/"),
            Ok(ObjectStoreConfig::S3(_) | ObjectStoreConfig::S3Compatible(_))
        ));
        assert!(matches!(store_for("https://h/files/"), Ok(ObjectStoreConfig::Http(_))));
        assert!(store_for("ftp://h/").is_err());
    }
}
