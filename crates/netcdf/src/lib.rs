//! Scans NetCDF files into cloudify's virtual datasets: metadata plus the byte range of every
//! chunk, so the data plane reads files without the NetCDF library on the hot path.
//!
//! * NetCDF classic / 64-bit offset / CDF-5: a pure-Rust header parser (`cloudify-netcdf3`).
//! * NetCDF4 / HDF5: metadata through libnetcdf (the `netcdf` crate), chunk addresses from
//!   one walk of each chunk index (`hdf5-reader`; libhdf5's lookups where it cannot walk
//!   one); compact-layout data (inside the object header) is kept inline. Variables whose chunks cannot be expressed as byte ranges (szip,
//!   scale-offset, n-bit, chunks with skipped filters, variable-length strings) are read
//!   through libnetcdf instead ([`NetcdfFallback`]). libnetcdf and libhdf5 share one global
//!   lock: scans are meant for a blocking thread, and their results for a cache.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod attrs;
mod cache;
mod chunk_index;
mod classic;
mod fallback;
mod hdf;
mod write;

use std::{io::Read, path::Path, sync::Arc};

use cloudify_dataset::{hyperslab::unravel, FallbackReader, Limits, StoredChunk, VariableChunks, VirtualDataset};

pub use cache::{is_cached, scan_cached, Origin};
pub use fallback::NetcdfFallback;
pub use write::write_netcdf4;

/// Holds libnetcdf's and libhdf5's (shared, reentrant) lock for a whole open-read-close.
///
/// libhdf5 shares an open dataset between the handles of one file, and a dataset whose fill
/// value is a variable-length string keeps a pointer to the handle that opened it first: when
/// that handle closes while another still reads (two fallback reads, or a read and a scan, of
/// the same file), libhdf5 dereferences freed memory. Each call is locked anyway, so holding
/// the lock across the sequence costs little and leaves one handle per file at a time.
pub(crate) fn one_handle_at_a_time() -> impl Drop {
    netcdf_sys::libnetcdf_lock.lock()
}

/// What can go wrong scanning a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file cannot be read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Neither NetCDF classic nor HDF5.
    #[error("{path} is not a NetCDF file")]
    NotNetcdf {
        /// The file.
        path: String,
    },
    /// The file is NetCDF but damaged or truncated.
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What the reader said.
        reason: String,
    },
    /// The file is over a configured cap ([`Limits`]).
    #[error("{path} is over a limit: {reason}")]
    OverLimit {
        /// The file.
        path: String,
        /// Which limit.
        reason: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A scanned file.
pub struct Scan {
    /// Metadata and chunk locations of the root group.
    pub dataset: VirtualDataset,
    /// Variables left out, with the reason (types not served yet), named by their path.
    pub skipped: Vec<(String, String)>,
    /// The NetCDF4 sub-groups by path (`forecast/members`), each a dataset of its own with
    /// the id [`group_id`] gives (xpublish serves one xarray Dataset per id; xarray opens a
    /// group as one with `group=`).
    pub groups: Vec<(String, VirtualDataset)>,
}

impl Scan {
    /// The reader for root variables that need libnetcdf, if any does.
    pub fn fallback(&self) -> Option<Arc<dyn FallbackReader>> {
        fallback_for(&self.dataset, None)
    }
}

/// The id of the sub-group at `path` of the file served as `id`: `id.forecast.members`.
pub fn group_id(id: &str, path: &str) -> String {
    format!("{id}.{}", path.replace('/', "."))
}

/// The fallback reader `dataset` (the group at `group`, or the root) needs, for a cached scan
/// as for a fresh one.
pub fn fallback_for(dataset: &VirtualDataset, group: Option<&str>) -> Option<Arc<dyn FallbackReader>> {
    let needed = dataset.chunks.values().any(|c| matches!(c, VariableChunks::Fallback { .. }));
    let path = dataset.files.first()?;
    needed.then(|| Arc::new(NetcdfFallback::new(path, group)) as Arc<dyn FallbackReader>)
}

/// The largest NetCDF4/HDF5 file at a URL scanned (from a temporary copy).
pub const MAX_REMOTE_HDF5_BYTES: u64 = 4 << 30;

/// Scans the NetCDF file at the URL `location` (HTTP, S3) as dataset `id`. A classic file is
/// read by its header; a NetCDF4/HDF5 one (libhdf5 reads local files only) is copied to a
/// temporary file, scanned, and its chunks referenced at the URL.
///
/// # Errors
/// [`Error::Io`] when the object cannot be read (or is a NetCDF4 file over
/// [`MAX_REMOTE_HDF5_BYTES`]), [`Error::NotNetcdf`], [`Error::Corrupt`].
pub async fn scan_remote(location: &str, id: &str, stores: &cloudify_store::Stores, limits: &Limits) -> Result<Scan> {
    let io = |e: cloudify_store::Error| Error::Io { path: location.to_owned(), reason: e.to_string() };
    let stat = stores.stat(location).await.map_err(io)?;
    let size = stat.size;
    let mut want = size.min(64 * 1024);
    loop {
        let head = stores.read_range(location, 0, want).await.map_err(io)?;
        if head.starts_with(b"\x89HDF\r\n\x1a\n") {
            let mut scan = scan_copy(location, id, size, stores, limits).await?;
            scan.dataset.meta.last_modified = Some(stat.modified);
            return Ok(scan);
        }
        if !head.starts_with(b"CDF") {
            return Err(Error::NotNetcdf { path: location.to_owned() });
        }
        match cloudify_netcdf3::parse(&head) {
            Err(cloudify_netcdf3::Error::Truncated { at, needed }) => {
                want = classic::grow_header_read(location, want, at, needed, size)?
            }
            Err(err) => return Err(Error::Corrupt { path: location.to_owned(), reason: err.to_string() }),
            Ok(header) => return classic::from_header(&header, size, location, id, limits),
        }
    }
}

/// A NetCDF4 file at a URL scanned from a temporary copy: its chunks point at the URL;
/// variables that need libnetcdf to read them (which reads local files) are read from the
/// copy and held in memory while they are small ([`MAX_REMOTE_VALUES_BYTES`]), left out
/// otherwise.
async fn scan_copy(
    location: &str,
    id: &str,
    size: u64,
    stores: &cloudify_store::Stores,
    limits: &Limits,
) -> Result<Scan> {
    let failed = |reason: String| Error::Io { path: location.to_owned(), reason };
    if size > MAX_REMOTE_HDF5_BYTES {
        return Err(failed(format!(
            "a NetCDF4 file at a URL is scanned from a copy, and this one is over {MAX_REMOTE_HDF5_BYTES} bytes"
        )));
    }
    let mut copy = tempfile::NamedTempFile::new().map_err(|e| failed(e.to_string()))?;
    const PIECE: u64 = 16 << 20;
    let mut offset = 0;
    while offset < size {
        let piece =
            stores.read_range(location, offset, PIECE.min(size - offset)).await.map_err(|e| failed(e.to_string()))?;
        std::io::Write::write_all(&mut copy, &piece).map_err(|e| failed(e.to_string()))?;
        offset += piece.len() as u64;
        if piece.is_empty() {
            return Err(failed("the file ended early".to_owned()));
        }
    }
    let (id_owned, limits) = (id.to_owned(), limits.clone());
    // The copy lives until the scan has read what only libnetcdf reads.
    let scanned = tokio::task::spawn_blocking(move || -> Result<Scan> {
        let mut scanned = scan(copy.path(), &id_owned, &limits)?;
        let mut budget = MAX_REMOTE_VALUES_BYTES;
        for (group, dataset) in std::iter::once((None, &mut scanned.dataset))
            .chain(scanned.groups.iter_mut().map(|(path, dataset)| (Some(path.clone()), dataset)))
        {
            let reader = NetcdfFallback::new(copy.path(), group.as_deref());
            let held = hold_values(dataset, &reader, &mut budget);
            scanned.skipped.extend(held.into_iter().map(|(name, reason)| match &group {
                Some(group) => (format!("{group}/{name}"), reason),
                None => (name, reason),
            }));
        }
        Ok(scanned)
    });
    let mut scanned = scanned.await.map_err(|e| failed(e.to_string()))??;
    for dataset in std::iter::once(&mut scanned.dataset).chain(scanned.groups.iter_mut().map(|(_, dataset)| dataset)) {
        dataset.files = vec![location.to_owned()];
    }
    Ok(scanned)
}

/// The most bytes of values held in memory for the variables of a NetCDF4 file at a URL that
/// only libnetcdf reads (variable-length strings, such as an aggregation file's fragment
/// URIs; filters without byte ranges).
const MAX_REMOTE_VALUES_BYTES: u64 = 64 << 20;

/// Reads the chunks of `dataset`'s variables that only libnetcdf reads (through `reader`, on
/// a local copy) and holds them inline, as stored chunks of their values (strings in the
/// `vlen-utf8` layout, numbers little-endian), while `budget` lasts; the variables left over
/// are removed and returned with why.
fn hold_values(dataset: &mut VirtualDataset, reader: &dyn FallbackReader, budget: &mut u64) -> Vec<(String, String)> {
    let names: Vec<String> = dataset
        .chunks
        .iter()
        .filter(|(_, chunks)| matches!(chunks, VariableChunks::Fallback { .. }))
        .map(|(name, _)| name.clone())
        .collect();
    let mut left_out = Vec::new();
    for name in names {
        let var = &dataset.meta.variables[&name];
        let mut read = || -> std::result::Result<Vec<StoredChunk>, String> {
            let grid = var.chunk_grid();
            let count: u64 = grid.iter().product();
            let mut chunks = Vec::new();
            for i in 0..count {
                let chunk = reader.read_chunk(&name, var, &unravel(i, &grid)).map_err(|e| e.to_string())?;
                *budget = budget.checked_sub(chunk.len() as u64).ok_or("its values are too large to hold")?;
                chunks.push(StoredChunk::Inline(chunk));
            }
            Ok(chunks)
        };
        match read() {
            Ok(chunks) => {
                let codec = if var.dtype.is_variable_length() {
                    serde_json::json!({"name": "vlen-utf8", "configuration": {}})
                } else {
                    serde_json::json!({"name": "bytes", "configuration": {"endian": "little"}})
                };
                if let Some(var) = dataset.meta.variables.get_mut(&name) {
                    var.codecs = vec![codec];
                }
                dataset.chunks.insert(name, VariableChunks::Stored(chunks));
            }
            Err(reason) => {
                dataset.meta.variables.shift_remove(&name);
                dataset.chunks.shift_remove(&name);
                left_out.push((name, format!("read through libnetcdf, which reads local files only: {reason}")));
            }
        }
    }
    left_out
}

/// Scans the NetCDF file at `path` as dataset `id`. Blocking (file IO, library calls).
/// Variables over `limits` are left out ([`Scan::skipped`]).
///
/// # Errors
/// [`Error::Io`], [`Error::NotNetcdf`], [`Error::Corrupt`]; [`Error::OverLimit`] when the
/// file holds more chunks than `limits` allow.
pub fn scan(path: &Path, id: &str, limits: &Limits) -> Result<Scan> {
    let shown = path.display().to_string();
    let io = |e: std::io::Error| Error::Io { path: shown.clone(), reason: e.to_string() };
    let mut magic = [0u8; 8];
    let mut file = std::fs::File::open(path).map_err(io)?;
    let n = file.read(&mut magic).map_err(io)?;
    let location = std::fs::canonicalize(path).map_err(io)?.display().to_string();
    let modified = file.metadata().and_then(|m| m.modified()).ok();
    let mut scan = match &magic[..n.min(8)] {
        [b'C', b'D', b'F', 1 | 2 | 5, ..] => classic::scan(path, &location, id, limits),
        b"\x89HDF\r\n\x1a\n" => hdf::scan(path, &location, id, limits),
        _ => Err(Error::NotNetcdf { path: shown }),
    }?;
    let modified = modified
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    for dataset in std::iter::once(&mut scan.dataset).chain(scan.groups.iter_mut().map(|(_, group)| group)) {
        dataset.meta.last_modified = modified;
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz target (`cargo bolero test -p cloudify-netcdf fuzz_classic_scan`): a NetCDF classic
    /// file of any content scans into a dataset within the limits, or is refused; never a
    /// panic, an abort or an allocation sized by the file.
    #[test]
    fn fuzz_classic_scan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.nc");
        let limits = Limits {
            max_chunk_bytes: 1 << 20,
            max_chunks_per_variable: 1 << 12,
            max_chunks_per_dataset: 1 << 14,
            ..Limits::default()
        };
        bolero::check!().for_each(|input: &[u8]| {
            let version = [1u8, 2, 5][usize::from(input.first().copied().unwrap_or(0)) % 3];
            let mut bytes = vec![b'C', b'D', b'F', version];
            bytes.extend_from_slice(input.get(1..).unwrap_or_default());
            std::fs::write(&path, &bytes).unwrap();
            if let Ok(scan) = scan(&path, "fuzz", &limits) {
                for (name, var) in &scan.dataset.meta.variables {
                    assert!(limits.check_variable(name, var).is_ok(), "{name} passed the scan");
                }
            }
        });
    }
}
