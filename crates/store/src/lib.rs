//! Byte-range access for cloudify's data plane: a location is a local path or a URL
//! (`file://`, `http(s)://`, `s3://`), read through `object_store`, whose churn stays behind
//! this crate. S3 settings (endpoint, credentials, region) come from the usual `AWS_*`
//! environment variables.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::{
    collections::HashMap,
    fs::File,
    path::{Path as FsPath, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use object_store::{path::Path, ObjectStore, ObjectStoreExt};
use url::Url;

/// What can go wrong reading a location.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The location does not exist.
    #[error("{location} not found")]
    NotFound {
        /// Path or URL.
        location: String,
    },
    /// The location is neither an absolute path nor a URL of a supported scheme.
    #[error("unsupported location {location}: {reason}")]
    BadLocation {
        /// Path or URL.
        location: String,
        /// Why.
        reason: String,
    },
    /// The read failed, or returned fewer bytes than asked.
    #[error("reading {location} failed: {reason}")]
    Read {
        /// Path or URL.
        location: String,
        /// Why.
        reason: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Size and modification time of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Bytes.
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub modified: i64,
}

/// Local files kept open at once.
const OPEN_FILES: u64 = 256;

/// Opens stores on demand, one per scheme and authority, and reads byte ranges.
pub struct Stores {
    open: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
    /// Local files kept open, so that reading a chunk is one `pread` on the blocking pool
    /// instead of object_store's open, stat, seek and read: +30 % small-chunk requests per
    /// second on /kerchunk. Closed after a minute unused (a replaced file is then reopened).
    files: moka::sync::Cache<PathBuf, Arc<File>>,
}

impl Default for Stores {
    fn default() -> Self {
        let files = moka::sync::Cache::builder().max_capacity(OPEN_FILES).time_to_idle(Duration::from_secs(60)).build();
        Self { open: Mutex::default(), files }
    }
}

/// Ranges up to this size are first tried without leaving the async worker.
const IN_PLACE_READ: u64 = 1 << 20;

fn read_error(location: &str, reason: String) -> Error {
    Error::Read { location: location.to_owned(), reason }
}

fn io_error(location: &str, err: &std::io::Error) -> Error {
    match err.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound { location: location.to_owned() },
        _ => read_error(location, err.to_string()),
    }
}

/// The file a location names, if it is local.
fn local_path(location: &str) -> Option<PathBuf> {
    let url = to_url(location).ok()?;
    (url.scheme() == "file").then(|| url.to_file_path().ok()).flatten()
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

fn to_url(location: &str) -> Result<Url> {
    let bad = |reason: String| Error::BadLocation { location: location.to_owned(), reason };
    if location.contains("://") {
        return Url::parse(location).map_err(|e| bad(e.to_string()));
    }
    let path = FsPath::new(location);
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(|e| bad(e.to_string()))?.join(path)
    };
    Url::from_file_path(&absolute).map_err(|()| bad("not a valid file path".to_owned()))
}

fn map_err(location: &str, err: object_store::Error) -> Error {
    match err {
        object_store::Error::NotFound { .. } => Error::NotFound { location: location.to_owned() },
        other => Error::Read { location: location.to_owned(), reason: other.to_string() },
    }
}

impl Stores {
    /// An empty set of stores.
    pub fn new() -> Self {
        Self::default()
    }

    /// The object store holding `location`, and the path of `location` inside it.
    ///
    /// # Errors
    /// [`Error::BadLocation`].
    pub fn resolve(&self, location: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let url = to_url(location)?;
        let key = format!("{}://{}", url.scheme(), url.authority());
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = open.get(&key) {
            let path = Path::from_url_path(url.path())
                .map_err(|e| Error::BadLocation { location: location.to_owned(), reason: e.to_string() })?;
            return Ok((Arc::clone(store), path));
        }
        // Settings come from the environment as object_store names them (AWS_ENDPOINT,
        // AWS_ACCESS_KEY_ID, ...); plain-HTTP URLs are allowed because the operator wrote them.
        let mut options: Vec<(String, String)> = std::env::vars().collect();
        if url.scheme() == "http" {
            options.push(("allow_http".to_owned(), "true".to_owned()));
        }
        let (store, path) = object_store::parse_url_opts(&url, options)
            .map_err(|e| Error::BadLocation { location: location.to_owned(), reason: e.to_string() })?;
        let store: Arc<dyn ObjectStore> = Arc::from(store);
        open.insert(key, Arc::clone(&store));
        Ok((store, path))
    }

    /// `length` bytes at `offset` of `location`.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::BadLocation`], [`Error::Read`] (also when the object is
    /// shorter than the range: a truncated file).
    pub async fn read_range(&self, location: &str, offset: u64, length: u64) -> Result<Bytes> {
        if let Some(path) = local_path(location) {
            return self.read_local(location, path, offset, length).await;
        }
        let (store, path) = self.resolve(location)?;
        let end = offset.checked_add(length).ok_or_else(|| Error::Read {
            location: location.to_owned(),
            reason: "range overflows".to_owned(),
        })?;
        let bytes = store.get_range(&path, offset..end).await.map_err(|e| map_err(location, e))?;
        if bytes.len() as u64 != length {
            return Err(Error::Read {
                location: location.to_owned(),
                reason: format!("expected {length} bytes at offset {offset}, got {} (truncated?)", bytes.len()),
            });
        }
        Ok(bytes)
    }

    /// `length` bytes at `offset` of the local file `path`, through the open-file cache.
    /// Small ranges the page cache holds are read right here (`preadv2` with `RWF_NOWAIT`
    /// never blocks); anything else is read on the blocking pool.
    async fn read_local(&self, location: &str, path: PathBuf, offset: u64, length: u64) -> Result<Bytes> {
        let cached = self.files.get(&path);
        let key = path.clone();
        let size = usize::try_from(length).map_err(|_| read_error(location, "range too large".to_owned()))?;
        if let Some(file) = cached.as_deref().filter(|_| length <= IN_PLACE_READ) {
            let mut bytes = vec![0; size];
            let flags = rustix::io::ReadWriteFlags::NOWAIT;
            if let Ok(n) = rustix::io::preadv2(file, &mut [std::io::IoSliceMut::new(&mut bytes)], offset, flags) {
                if n == size {
                    return Ok(Bytes::from(bytes));
                }
            }
        }
        let owned = location.to_owned();
        let read = tokio::task::spawn_blocking(move || -> Result<(Arc<File>, Vec<u8>, bool)> {
            let opened = cached.is_none();
            let file = match cached {
                Some(file) => file,
                None => Arc::new(File::open(&path).map_err(|e| io_error(&owned, &e))?),
            };
            // Read into spare capacity: no zeroing of buffers that can be tens of MB.
            let mut bytes = Vec::with_capacity(size);
            while bytes.len() < size {
                let at = offset + bytes.len() as u64;
                match rustix::io::pread(&*file, rustix::buffer::spare_capacity(&mut bytes), at) {
                    Ok(0) => {
                        let reason = format!("expected {length} bytes at offset {offset}, the file ends before (truncated?)");
                        return Err(read_error(&owned, reason));
                    }
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(errno) => return Err(io_error(&owned, &errno.into())),
                }
            }
            Ok((file, bytes, opened))
        });
        let (file, bytes, opened) = read.await.map_err(|e| read_error(location, e.to_string()))??;
        if opened {
            self.files.insert(key, file);
        }
        Ok(Bytes::from(bytes))
    }

    /// Whether `location` names a remote object (a URL other than `file://`).
    pub fn is_remote(location: &str) -> bool {
        location.contains("://") && !location.starts_with("file://")
    }

    /// The whole object at `location`.
    ///
    /// # Errors
    /// As [`Stores::read_range`].
    pub async fn read_all(&self, location: &str) -> Result<Bytes> {
        let (store, path) = self.resolve(location)?;
        let result = store.get(&path).await.map_err(|e| map_err(location, e))?;
        result.bytes().await.map_err(|e| map_err(location, e))
    }

    /// Size and modification time of `location`.
    ///
    /// # Errors
    /// As [`Stores::read_range`].
    pub async fn stat(&self, location: &str) -> Result<Stat> {
        let (store, path) = self.resolve(location)?;
        let meta = store.head(&path).await.map_err(|e| map_err(location, e))?;
        Ok(Stat { size: meta.size, modified: meta.last_modified.timestamp() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_ranges_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.bin");
        std::fs::write(&file, b"0123456789").unwrap();
        let stores = Stores::new();
        let path = file.to_str().unwrap();
        assert_eq!(&stores.read_range(path, 3, 4).await.unwrap()[..], b"3456");
        assert_eq!(stores.stat(path).await.unwrap().size, 10);
        let url = format!("file://{path}");
        assert_eq!(&stores.read_all(&url).await.unwrap()[..], b"0123456789");
        assert!(matches!(stores.read_range(path, 8, 4).await, Err(Error::Read { .. })));
        let missing = dir.path().join("missing.bin");
        assert!(matches!(stores.read_range(missing.to_str().unwrap(), 0, 1).await, Err(Error::NotFound { .. })));
        assert!(matches!(stores.read_range("ftp://x/y", 0, 1).await, Err(Error::BadLocation { .. })));
    }
}
