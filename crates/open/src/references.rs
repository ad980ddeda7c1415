//! Kerchunk reference sets written from files without a server (`cloudify refs scan`), the
//! equivalent of kerchunk's `SingleHdf5ToZarr` / `NetCDF3ToZarr` and, for several files,
//! `MultiZarrToZarr`.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use cloudify_dataset::{concat, Limits, Source, VirtualSource};
use cloudify_kerchunk::{parquet::RECORD_SIZE, reference_set, Inlining, ReferenceSet};
use cloudify_netcdf::{fallback_for, scan};
use cloudify_sdk::{ChunkRef, Error};
use cloudify_store::Stores;
use cloudify_zarr_store::{ChunkAccess, CodecName, Format, ServedCodec, Store};

/// Files scanned into one dataset, rendered as a Zarr store whose chunks are the files'
/// stored bytes (the `source` codec): what reference sets and virtual repositories are
/// written from.
pub struct ScannedFiles {
    /// The dataset, read from its files.
    pub source: VirtualSource,
    /// Its Zarr documents (v2 and v3) and arrays.
    pub store: Store,
}

fn failure(err: impl std::fmt::Display) -> Error {
    Error::internal(err.to_string())
}

impl ChunkAccess for ScannedFiles {
    async fn locate(&self, var: &str, index: &[u64]) -> Result<ChunkRef, Error> {
        self.source.chunk_ref(var, index).await.map_err(failure)
    }

    async fn stored(&self, var: &str, index: &[u64]) -> Result<Vec<u8>, Error> {
        self.source.read_raw_chunk(var, index).await.map_err(failure)
    }

    async fn encoded(&self, var: &str, index: &[u64], format: Format) -> Result<Vec<u8>, Error> {
        let values = self.source.read_chunk(var, index).await.map_err(failure)?;
        let array = self.store.arrays.get(var).ok_or_else(|| failure(format!("no variable '{var}'")))?;
        array.encoder(format).encode(&values).map_err(failure)
    }
}

/// Writes `set` as kerchunk JSON (version 1) to `path`.
///
/// # Errors
/// The file cannot be written.
pub fn write_json(set: &ReferenceSet, path: &Path) -> Result<(), String> {
    std::fs::write(path, set.to_json()).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `set` as a parquet reference set into the folder `path` (replacing its contents).
///
/// # Errors
/// The files cannot be written.
pub fn write_parquet(set: &ReferenceSet, path: &Path) -> Result<(), String> {
    let parquet = set.to_parquet(RECORD_SIZE).map_err(|e| e.to_string())?;
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    if path.exists() {
        std::fs::remove_dir_all(path).map_err(fail)?;
    }
    std::fs::create_dir_all(path).map_err(fail)?;
    std::fs::write(path.join(".zmetadata"), &parquet.zmetadata).map_err(fail)?;
    for (name, bytes) in &parquet.files {
        let file = path.join(name);
        if let Some(folder) = file.parent() {
            std::fs::create_dir_all(folder).map_err(fail)?;
        }
        std::fs::write(&file, bytes).map_err(fail)?;
    }
    Ok(())
}

/// The reference set of `files` (NetCDF3 or NetCDF4), joined along `concat_dim` (default:
/// the unlimited dimension) when there are several. Targets are the files' absolute paths;
/// chunks under `inline_threshold` bytes are inlined.
///
/// # Errors
/// A file that cannot be scanned, files that do not join, or a failed read.
pub async fn scan_references(
    files: &[PathBuf],
    concat_dim: Option<&str>,
    inline_threshold: u64,
    limits: &Limits,
) -> Result<ReferenceSet, String> {
    let scanned = scan_files(files, concat_dim, "a reference set", limits).await?;
    let inlining = Inlining { threshold: inline_threshold, max_encoded_bytes: u64::MAX };
    let set = reference_set(&scanned.store, &scanned, inlining, |url| url).await;
    set.map_err(|failure| failure.to_string())
}

/// `files` (NetCDF3 or NetCDF4) scanned and joined along `concat_dim` (default: the
/// unlimited dimension) when there are several. What is left out (variables that cannot be
/// served, groups other than the root, which `product` does not describe) is said on stderr.
///
/// # Errors
/// A file that cannot be scanned, or files that do not join.
pub async fn scan_files(
    files: &[PathBuf],
    concat_dim: Option<&str>,
    product: &str,
    limits: &Limits,
) -> Result<ScannedFiles, String> {
    let stores = Arc::new(Stores::new());
    let mut parts = Vec::new();
    for file in files {
        let (path, id) = (file.clone(), file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
        let owned = limits.clone();
        let scanned = tokio::task::spawn_blocking(move || scan(&path, &id, &owned)).await.map_err(|e| e.to_string())?;
        let scanned = scanned.map_err(|e| e.to_string())?;
        for (variable, reason) in &scanned.skipped {
            eprintln!("cloudify: {}: variable '{variable}' left out: {reason}", file.display());
        }
        for (group, _) in &scanned.groups {
            eprintln!("cloudify: {}: group '{group}' left out: {product} describes the root group", file.display());
        }
        parts.push(scanned.dataset);
    }
    let dataset = match parts.len() {
        0 => return Err("no file given".to_owned()),
        1 => parts.remove(0),
        _ => {
            let dim = concat_dim
                .map(str::to_owned)
                .or_else(|| parts[0].meta.unlimited.first().cloned())
                .ok_or("the files have no unlimited dimension: give --concat-dim")?;
            concat(parts, &dim, &stores, limits).await.map_err(|e| e.to_string())?
        }
    };
    let fallback = fallback_for(&dataset, None);
    let source = VirtualSource::new(dataset, stores, fallback, limits).map_err(|e| e.to_string())?;
    let meta = source.metadata().map_err(|e| e.to_string())?;
    let store = Store::new(&meta, 0, ServedCodec::new(CodecName::Source, None), None)?;
    Ok(ScannedFiles { source, store })
}
