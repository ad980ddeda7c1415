//! Byte-range access for cloudify's data plane: a location is a local path or a URL
//! (`file://`, `http(s)://`, `s3://`), read through `object_store`, whose churn stays behind
//! this crate. S3 settings (endpoint, credentials, region) come from the usual `AWS_*`
//! environment variables, and nothing else in the environment configures a store.
//!
//! Remote reads are bounded: a timeout per request, two retries, at most
//! [`REMOTE_READS`] at once, and every request names this server ([`INSTANCE_HEADER`]) so that
//! a reference set pointing back at the server that reads it is refused instead of looping.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::{
    collections::HashMap,
    fs::File,
    path::{Path as FsPath, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use object_store::{
    aws::AmazonS3Builder, http::HttpBuilder, local::LocalFileSystem, path::Path, ClientOptions, ObjectStore,
    ObjectStoreExt, RetryConfig,
};
use url::Url;

mod client;
mod confine;
mod staging;

pub use confine::{is_internal, Confinement};
pub use staging::{FileState, Tier};

/// The request header naming the server instance a remote read comes from.
pub const INSTANCE_HEADER: &str = "x-cloudify-instance";

/// This process's instance id (random, fixed for its lifetime), sent as [`INSTANCE_HEADER`]
/// on every remote read: a request that carries it came from this very process.
pub fn instance_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher
            .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        format!("{:016x}", hasher.finish())
    })
}

/// Remote requests in flight at once, over all stores; further reads wait.
pub const REMOTE_READS: usize = 64;

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
    /// The object is larger than the caller accepts.
    #[error("{location} holds {size} bytes, over the limit of {max}")]
    TooLarge {
        /// Path or URL.
        location: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The location is on a slow tier and not online: it is being staged, ask again later.
    #[error("{location} is being staged from a slow tier; retry after {retry_after_secs} s")]
    Staging {
        /// Path or URL.
        location: String,
        /// Seconds a client should wait before asking again.
        retry_after_secs: u64,
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
    /// Permits for remote requests ([`REMOTE_READS`]).
    remote: tokio::sync::Semaphore,
    /// Local files kept open, so that reading a chunk is one `pread` on the blocking pool
    /// instead of object_store's open, stat, seek and read: +30 % small-chunk requests per
    /// second on /kerchunk. Closed after a minute unused (a replaced file is then reopened).
    files: moka::sync::Cache<PathBuf, Arc<File>>,
    /// Slow tiers: files read only once staged.
    staging: staging::Staging,
}

impl Default for Stores {
    fn default() -> Self {
        let files = moka::sync::Cache::builder().max_capacity(OPEN_FILES).time_to_idle(Duration::from_secs(60)).build();
        Self {
            open: Mutex::default(),
            remote: tokio::sync::Semaphore::new(REMOTE_READS),
            files,
            staging: staging::Staging::default(),
        }
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

/// The object store at `url`'s scheme and authority. S3 settings come from `AWS_*` variables
/// only; plain HTTP is allowed because the operator (or a confined reference set) named it.
fn open_store(url: &Url) -> Result<Arc<dyn ObjectStore>, String> {
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = instance_id().parse() {
        headers.insert(INSTANCE_HEADER, value);
    }
    let retry = RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(20), ..RetryConfig::default() };
    let base = format!("{}://{}", url.scheme(), url.authority());
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "file" => Arc::new(LocalFileSystem::new()),
        "http" | "https" => Arc::new(
            HttpBuilder::new()
                .with_url(base)
                .with_http_connector(client::SameHostClient::new(headers))
                .with_retry(retry)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        "s3" | "s3a" => Arc::new(
            AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_client_options(
                    ClientOptions::new()
                        .with_allow_http(true)
                        .with_connect_timeout(client::CONNECT_TIMEOUT)
                        .with_timeout(client::REQUEST_TIMEOUT)
                        .with_default_headers(headers),
                )
                .with_retry(retry)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        other => return Err(format!("scheme {other} is not supported (file, http, https, s3)")),
    };
    Ok(store)
}

impl Stores {
    /// An empty set of stores.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores whose files under the prefixes of `tiers` are read only once staged.
    pub fn with_tiers(tiers: Vec<Tier>) -> Self {
        Self { staging: staging::Staging::new(tiers), ..Self::default() }
    }

    /// The name a slow tier knows `location` by: a local file's path, else the URL.
    fn tier_name(location: &str) -> String {
        local_path(location).map_or_else(|| location.to_owned(), |path| path.to_string_lossy().into_owned())
    }

    /// Ok when `location` may be read now. A file on a slow tier that is not online is
    /// staged (once, in the background) and refused meanwhile.
    ///
    /// # Errors
    /// [`Error::Staging`].
    pub async fn ready(&self, location: &str) -> Result<()> {
        // The path of every chunk read: nothing to work out without tiers.
        if self.staging.is_empty() {
            return Ok(());
        }
        self.staging.ready(&Self::tier_name(location)).await
    }

    /// Where `location` stands on its slow tier (`None`: on no tier).
    pub async fn tier_state(&self, location: &str) -> Option<FileState> {
        self.staging.state(&Self::tier_name(location)).await
    }

    /// The seconds clients are told to wait for `location`, if it is on a slow tier.
    pub fn tier_retry_after(&self, location: &str) -> Option<u64> {
        self.staging.retry_after(&Self::tier_name(location))
    }

    /// Where `location` stands on its slow tier as far as known, without running a command
    /// (`None`: on no tier).
    pub fn known_tier_state(&self, location: &str) -> Option<FileState> {
        self.staging.known_state(&Self::tier_name(location))
    }

    /// Starts staging `location` unless it is online or being staged; where it stands then
    /// (`None`: on no tier).
    pub async fn stage(&self, location: &str) -> Option<FileState> {
        self.staging.stage(&Self::tier_name(location)).await
    }

    /// Changes each time a staging finishes (or fails).
    pub fn stagings_finished(&self) -> tokio::sync::watch::Receiver<u64> {
        self.staging.finished()
    }

    /// Local files held open for reads.
    pub fn open_files(&self) -> u64 {
        self.files.entry_count()
    }

    /// The object store holding `location`, and the path of `location` inside it.
    ///
    /// # Errors
    /// [`Error::BadLocation`].
    pub fn resolve(&self, location: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let url = to_url(location)?;
        let key = format!("{}://{}", url.scheme(), url.authority());
        let bad = |reason: String| Error::BadLocation { location: location.to_owned(), reason };
        let path = Path::from_url_path(url.path()).map_err(|e| bad(e.to_string()))?;
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = open.get(&key) {
            return Ok((Arc::clone(store), path));
        }
        let store = open_store(&url).map_err(bad)?;
        open.insert(key, Arc::clone(&store));
        Ok((store, path))
    }

    /// Waits for a remote-request permit.
    async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        // The semaphore is never closed.
        self.remote.acquire().await.unwrap_or_else(|_| unreachable!("the remote-read semaphore is never closed"))
    }

    /// `length` bytes at `offset` of `location`.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::BadLocation`], [`Error::Read`] (also when the object is
    /// shorter than the range: a truncated file), [`Error::Staging`].
    pub async fn read_range(&self, location: &str, offset: u64, length: u64) -> Result<Bytes> {
        self.ready(location).await?;
        if let Some(path) = local_path(location) {
            return self.read_local(location, path, offset, length).await;
        }
        let (store, path) = self.resolve(location)?;
        let end = offset
            .checked_add(length)
            .ok_or_else(|| Error::Read { location: location.to_owned(), reason: "range overflows".to_owned() })?;
        let _permit = self.permit().await;
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
            // The range comes from a file or a reference set: check it against the file
            // before sizing a buffer by it.
            let file_len = file.metadata().map_err(|e| io_error(&owned, &e))?.len();
            if offset.checked_add(length).is_none_or(|end| end > file_len) {
                let reason =
                    format!("expected {length} bytes at offset {offset}, the file holds {file_len} (truncated?)");
                return Err(read_error(&owned, reason));
            }
            // Read into spare capacity: no zeroing of buffers that can be tens of MB.
            let mut bytes = Vec::with_capacity(size);
            while bytes.len() < size {
                let at = offset + bytes.len() as u64;
                match rustix::io::pread(&*file, rustix::buffer::spare_capacity(&mut bytes), at) {
                    Ok(0) => {
                        let reason =
                            format!("expected {length} bytes at offset {offset}, the file ends before (truncated?)");
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

    /// The whole object at `location`, if it holds at most `max` bytes.
    ///
    /// # Errors
    /// As [`Stores::read_range`]; [`Error::TooLarge`] over `max`.
    pub async fn read_all_at_most(&self, location: &str, max: u64) -> Result<Bytes> {
        self.ready(location).await?;
        let (store, path) = self.resolve(location)?;
        let _permit = self.permit().await;
        // The size the answer declares is checked before its body is read.
        let result = store.get(&path).await.map_err(|e| map_err(location, e))?;
        if result.meta.size > max {
            return Err(Error::TooLarge { location: location.to_owned(), size: result.meta.size, max });
        }
        result.bytes().await.map_err(|e| map_err(location, e))
    }

    /// Size and modification time of `location`.
    ///
    /// # Errors
    /// As [`Stores::read_range`].
    pub async fn stat(&self, location: &str) -> Result<Stat> {
        let (store, path) = self.resolve(location)?;
        let _permit = self.permit().await;
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
        assert_eq!(&stores.read_all_at_most(&url, 10).await.unwrap()[..], b"0123456789");
        assert!(matches!(stores.read_all_at_most(&url, 9).await, Err(Error::TooLarge { size: 10, max: 9, .. })));
        // A range past the end of the file is refused before a buffer is sized by it.
        assert!(matches!(stores.read_range(path, 0, 1 << 40).await, Err(Error::Read { .. })));
        assert!(matches!(stores.read_range(path, 8, 4).await, Err(Error::Read { .. })));
        let missing = dir.path().join("missing.bin");
        assert!(matches!(stores.read_range(missing.to_str().unwrap(), 0, 1).await, Err(Error::NotFound { .. })));
        assert!(matches!(stores.read_range("ftp://x/y", 0, 1).await, Err(Error::BadLocation { .. })));
    }

    /// An HTTP server on loopback answering every request with `answer(path)`; counts requests.
    async fn serve(
        answer: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (answer, counted) = (Arc::new(answer), Arc::clone(&hits));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = Arc::clone(&answer);
                tokio::spawn(async move {
                    let mut request = vec![0; 4096];
                    let n = socket.read(&mut request).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&request[..n]).into_owned();
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let _ = socket.write_all(answer(&path).as_bytes()).await;
                });
            }
        });
        (port, hits)
    }

    #[tokio::test]
    async fn redirects_are_followed_on_the_same_host_only() {
        let (secret_port, secret_hits) =
            serve(|_| "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nSECRET".to_owned()).await;
        let (port, _) = serve(move |path| match path {
            "/moved" => "HTTP/1.1 302 Found\r\nLocation: /data\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
            "/elsewhere" => format!(
                "HTTP/1.1 302 Found\r\nLocation: http://localhost:{secret_port}/latest/meta-data\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
            _ => "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-3/10\r\nContent-Length: 4\r\nConnection: close\r\n\r\n0123".to_owned(),
        })
        .await;
        let stores = Stores::new();
        let same = stores.read_range(&format!("http://127.0.0.1:{port}/moved"), 0, 4).await.unwrap();
        assert_eq!(&same[..], b"0123");
        let other = stores.read_range(&format!("http://127.0.0.1:{port}/elsewhere"), 0, 4).await;
        assert!(other.is_err(), "a redirect to another host is refused");
        assert_eq!(secret_hits.load(std::sync::atomic::Ordering::SeqCst), 0, "the other host was never asked");
    }
}
