//! The on-disk reference cache: a scan is stored as JSON under a key made of the file's path,
//! size and modification time, so a restart does not rescan unchanged files.

use std::{
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use cloudify_dataset::Limits;

use crate::{scan, Error, Result, Scan};

/// Bumped whenever the cached layout or the scan's output changes.
const FORMAT: &str = "cloudify-scan-3";

#[derive(Serialize, Deserialize)]
struct Entry {
    dataset: cloudify_dataset::VirtualDataset,
    skipped: Vec<(String, String)>,
    groups: Vec<(String, cloudify_dataset::VirtualDataset)>,
}

fn key(path: &Path, limits: &Limits) -> Result<String> {
    let io = |e: std::io::Error| Error::Io { path: path.display().to_string(), reason: e.to_string() };
    let canonical = std::fs::canonicalize(path).map_err(io)?;
    let meta = std::fs::metadata(&canonical).map_err(io)?;
    let modified = meta.modified().map_err(io)?.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let mut hash = Sha256::new();
    hash.update(FORMAT);
    hash.update(env!("CARGO_PKG_VERSION"));
    hash.update(canonical.as_os_str().as_encoded_bytes());
    hash.update(meta.len().to_le_bytes());
    hash.update(modified.to_le_bytes());
    // A scan leaves out what is over the limits: other limits, another scan.
    hash.update(serde_json::to_vec(limits).unwrap_or_default());
    Ok(format!("{:x}", hash.finalize()))
}

/// Whether a scan came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Read from the cache.
    Cached,
    /// Scanned now (and stored, when the cache is writable).
    Scanned,
}

/// Whether the cache in `dir` holds a scan of `path` as it is now (no need to read the file).
pub fn is_cached(path: &Path, dir: &Path, limits: &Limits) -> bool {
    key(path, limits).is_ok_and(|key| dir.join(format!("{key}.json")).is_file())
}

/// [`scan`], through the cache in `dir`: an unchanged file is not scanned again. A cache that
/// cannot be read or written is passed over (with a warning), never an error.
///
/// # Errors
/// As [`scan`].
pub fn scan_cached(path: &Path, id: &str, dir: &Path, limits: &Limits) -> Result<(Scan, Origin)> {
    let key = key(path, limits)?;
    let file: PathBuf = dir.join(format!("{key}.json"));
    if let Ok(text) = std::fs::read(&file) {
        match serde_json::from_slice::<Entry>(&text) {
            Ok(mut entry) => {
                id.clone_into(&mut entry.dataset.meta.id);
                for (path, group) in &mut entry.groups {
                    group.meta.id = crate::group_id(id, path);
                }
                return Ok((
                    Scan { dataset: entry.dataset, skipped: entry.skipped, groups: entry.groups },
                    Origin::Cached,
                ));
            }
            Err(err) => tracing::warn!(cache = %file.display(), "ignoring unreadable cache entry: {err}"),
        }
    }
    let fresh = scan(path, id, limits)?;
    let entry = Entry { dataset: fresh.dataset, skipped: fresh.skipped, groups: fresh.groups };
    let stored = std::fs::create_dir_all(dir).and_then(|()| {
        let tmp = dir.join(format!("{key}.json.tmp{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(&entry).unwrap_or_default())?;
        std::fs::rename(&tmp, &file)
    });
    if let Err(err) = stored {
        tracing::warn!(cache = %dir.display(), "reference cache not writable: {err}");
    }
    Ok((Scan { dataset: entry.dataset, skipped: entry.skipped, groups: entry.groups }, Origin::Scanned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.nc");
        std::fs::write(&file, b"one").unwrap();
        let limits = Limits::default();
        let first = key(&file, &limits).unwrap();
        assert_eq!(first, key(&file, &limits).unwrap());
        assert_ne!(first, key(&file, &Limits { max_chunk_bytes: 1, ..Limits::default() }).unwrap());
        std::fs::write(&file, b"longer").unwrap();
        assert_ne!(first, key(&file, &limits).unwrap());
    }
}
