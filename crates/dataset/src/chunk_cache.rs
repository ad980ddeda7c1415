//! [`CachedSource`]: decoded chunks kept in a cache shared by every dataset and bounded in
//! bytes. Concurrent requests for the same chunk wait for one read instead of each reading it.

use std::sync::Arc;

use async_trait::async_trait;
use moka::future::Cache;

use crate::{check_chunk_index, variable, ChunkRef, DatasetMeta, Error, FileStat, Result, SharedSource, Source};

type Key = (Arc<str>, Arc<str>, Vec<u64>);

/// Decoded chunks of all datasets, least recently used evicted past `max_bytes`.
#[derive(Clone)]
pub struct ChunkCache {
    chunks: Cache<Key, Arc<Vec<u8>>>,
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCache").field("bytes", &self.chunks.weighted_size()).finish()
    }
}

impl ChunkCache {
    /// A cache holding at most `max_bytes` of decoded chunks.
    pub fn new(max_bytes: u64) -> Self {
        let chunks = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &Key, value: &Arc<Vec<u8>>| u32::try_from(value.len()).unwrap_or(u32::MAX))
            .build();
        Self { chunks }
    }

    /// Serves `inner` (dataset `id`) through this cache. Each source gets keys of its own:
    /// when a changed file's new source replaces the old one under the same id, the old
    /// chunks are never answered for it (they age out).
    pub fn wrap(&self, id: &str, inner: SharedSource) -> CachedSource {
        static SOURCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let serial = SOURCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        CachedSource { key: format!("{id}#{serial}").into(), inner, cache: self.clone() }
    }
}

/// A source whose decoded chunks go through a [`ChunkCache`].
pub struct CachedSource {
    /// The start of this source's keys in the cache.
    key: Arc<str>,
    inner: SharedSource,
    cache: ChunkCache,
}

#[async_trait]
impl Source for CachedSource {
    fn metadata(&self) -> Result<Arc<DatasetMeta>> {
        self.inner.metadata()
    }

    async fn read_chunk(&self, name: &str, index: &[u64]) -> Result<Vec<u8>> {
        // Bad keys are answered here, so that only read failures come out of the cache.
        let meta = self.inner.metadata()?;
        check_chunk_index(name, variable(&meta, name)?, index)?;
        let key = (Arc::clone(&self.key), Arc::from(name), index.to_vec());
        let missed = std::sync::atomic::AtomicBool::new(false);
        let load = async {
            missed.store(true, std::sync::atomic::Ordering::Relaxed);
            self.inner.read_chunk(name, index).await.map(Arc::new)
        };
        let chunk = self.cache.chunks.try_get_with(key, load).await.map_err(Error::Shared)?;
        let result = if missed.into_inner() { "miss" } else { "hit" };
        metrics::counter!("cloudify_decoded_cache_requests_total", "result" => result).increment(1);
        Ok(chunk.as_ref().clone())
    }

    async fn read_chunk_once(&self, name: &str, index: &[u64]) -> Result<Vec<u8>> {
        let key = (Arc::clone(&self.key), Arc::from(name), index.to_vec());
        let cached = self.cache.chunks.get(&key).await;
        let result = if cached.is_some() { "hit" } else { "miss" };
        metrics::counter!("cloudify_decoded_cache_requests_total", "result" => result).increment(1);
        match cached {
            Some(chunk) => Ok(chunk.as_ref().clone()),
            None => self.inner.read_chunk(name, index).await,
        }
    }

    async fn read_raw_chunk(&self, name: &str, index: &[u64]) -> Result<Vec<u8>> {
        self.inner.read_raw_chunk(name, index).await
    }

    async fn chunk_ref(&self, name: &str, index: &[u64]) -> Result<ChunkRef> {
        self.inner.chunk_ref(name, index).await
    }

    fn files(&self) -> Vec<String> {
        self.inner.files()
    }

    async fn stat_file(&self, file: &str) -> Result<FileStat> {
        self.inner.stat_file(file).await
    }

    async fn read_file(&self, file: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.inner.read_file(file, offset, length).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::demo_dataset;

    /// Counts the chunk reads that reach the inner source.
    struct Counting(SharedSource, AtomicUsize);

    #[async_trait]
    impl Source for Counting {
        fn metadata(&self) -> Result<Arc<DatasetMeta>> {
            self.0.metadata()
        }
        async fn read_chunk(&self, name: &str, index: &[u64]) -> Result<Vec<u8>> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.read_chunk(name, index).await
        }
    }

    #[tokio::test]
    async fn repeated_reads_hit_the_cache_within_its_bound() {
        let counting = Arc::new(Counting(Arc::new(demo_dataset("demo").unwrap()), AtomicUsize::new(0)));
        // Room for two chunks of pr (45 x 90 float32 = 16 200 bytes each).
        let cache = ChunkCache::new(2 * 16_200);
        let source = cache.wrap("demo", counting.clone());
        let first = source.read_chunk("pr", &[0, 0, 0]).await.unwrap();
        assert_eq!(source.read_chunk("pr", &[0, 0, 0]).await.unwrap(), first);
        assert_eq!(counting.1.load(Ordering::SeqCst), 1);
        for t in 1..10 {
            source.read_chunk("pr", &[t, 0, 0]).await.unwrap();
        }
        cache.chunks.run_pending_tasks().await;
        assert!(cache.chunks.weighted_size() <= 2 * 16_200);
        assert!(matches!(source.read_chunk("pr", &[99, 0, 0]).await, Err(Error::ChunkOutOfRange { .. })));
        assert_eq!(counting.1.load(Ordering::SeqCst), 10);
    }

    #[tokio::test]
    async fn reads_for_callers_that_keep_their_own_copy_are_answered_but_not_kept() {
        let counting = Arc::new(Counting(Arc::new(demo_dataset("demo").unwrap()), AtomicUsize::new(0)));
        let cache = ChunkCache::new(1 << 20);
        let source = cache.wrap("demo", counting.clone());
        let once = source.read_chunk_once("pr", &[0, 0, 0]).await.unwrap();
        cache.chunks.run_pending_tasks().await;
        assert_eq!(cache.chunks.entry_count(), 0, "not kept");
        // A chunk the cache holds (a region read put it there) answers without a read.
        assert_eq!(source.read_chunk("pr", &[0, 0, 0]).await.unwrap(), once);
        assert_eq!(source.read_chunk_once("pr", &[0, 0, 0]).await.unwrap(), once);
        assert_eq!(counting.1.load(Ordering::SeqCst), 2);
    }
}
