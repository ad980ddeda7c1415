//! Answering store keys: metadata documents, chunks through the encoded-chunk cache, and the
//! HTTP caching headers of both.

use std::sync::Arc;

use cloudify_sdk::{hyperslab::pad, Error, ErrorKind, Host, HostExt, RVec, Request, Response};
use cloudify_zarr_store::{
    reply, request_key, Array, CacheMetrics, Document, Format, RenderedStores, Resolved, ServedCodec, Store,
};

use crate::config::Config;

/// Names one encoded chunk in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ChunkId {
    dataset: String,
    generation: u64,
    var: String,
    index: Vec<u64>,
    /// v3 bytes that differ from the v2 bytes of the same chunk.
    v3_only: bool,
}

/// Unit of the in-flight budget.
const MIB: u64 = 1 << 20;

/// The plugin's state: config, rendered stores, the encoded-chunk cache, and the budget of
/// decoded bytes in flight (MiB permits).
pub(crate) struct ZarrService {
    config: Config,
    codec: ServedCodec,
    stores: RenderedStores,
    chunks: moka::future::Cache<ChunkId, Arc<Document>>,
    /// The encoded-chunk cache's hits and misses (`/metrics/zarr`).
    pub(crate) metrics: Arc<CacheMetrics>,
    inflight: tokio::sync::Semaphore,
    inflight_permits: u32,
}

impl ZarrService {
    pub(crate) fn new(config: Config) -> Self {
        let chunks = moka::future::Cache::builder()
            .max_capacity(config.cache_bytes)
            .weigher(|_, doc: &Arc<Document>| u32::try_from(doc.body.len()).unwrap_or(u32::MAX))
            .build();
        let inflight_permits = u32::try_from(config.max_inflight_bytes / MIB).unwrap_or(u32::MAX).max(2);
        Self {
            codec: ServedCodec::new(config.codec, config.level),
            stores: RenderedStores::default(),
            chunks,
            metrics: Arc::new(CacheMetrics::new(
                "cloudify_zarr_encoded_cache_requests_total",
                "Encoded-chunk cache lookups of the zarr plugin: hit or miss",
            )),
            inflight: tokio::sync::Semaphore::new(inflight_permits as usize),
            inflight_permits,
            config,
        }
    }

    /// Answers `GET`/`HEAD /datasets/{id}/zarr/{key}`.
    pub(crate) async fn answer(&self, host: &Host, req: &Request) -> Response {
        self.try_answer(host, req).await.unwrap_or_else(Response::from)
    }

    async fn try_answer(&self, host: &Host, req: &Request) -> Result<Response, Error> {
        let id = req.dataset_id().unwrap_or_default();
        let key = request_key(req);
        let store = self.store(host, id)?;
        match store.resolve(id, &key)? {
            Resolved::Document(doc) => Ok(self.reply(req, &store, Arc::clone(doc), "application/json")),
            Resolved::Chunk { var, array, index, format } => {
                let doc = self.chunk(host, id, &store, var, array, index, format).await?;
                Ok(self.reply(req, &store, doc, "application/octet-stream"))
            }
        }
    }

    /// The dataset `id` as a store, rendered from the host's metadata at most every
    /// [`METADATA_TTL`](cloudify_zarr_store::METADATA_TTL).
    fn store(&self, host: &Host, id: &str) -> Result<Arc<Store>, Error> {
        self.stores.get(host, id, self.codec, self.config.rechunk_for(id))
    }

    /// One encoded chunk, from the cache or read, encoded and cached; concurrent requests
    /// for the same chunk share one read.
    #[allow(clippy::too_many_arguments)]
    async fn chunk(
        &self,
        host: &Host,
        id: &str,
        store: &Store,
        var: &str,
        array: &Array,
        index: Vec<u64>,
        format: Format,
    ) -> Result<Arc<Document>, Error> {
        let encoder = Arc::clone(array.encoder(format));
        let chunk_mib = u32::try_from(array.chunk_bytes() / MIB).unwrap_or(u32::MAX);
        let produce = async {
            let _permit = self.inflight.acquire_many(chunk_mib.clamp(1, self.inflight_permits / 2)).await;
            if array.stored_bytes {
                match host.raw_chunk(id, var, &index).await {
                    Ok(stored) => return Ok(Arc::new(Document::new(stored))),
                    // Never written, or read through the source library: encode its values.
                    Err(Error::Host(err)) if err.kind == ErrorKind::UNSUPPORTED => {}
                    Err(err) => return Err(err),
                }
            }
            let values = read_values(host, id, var, array, &index).await?;
            let encoded = host.run_blocking(move || encoder.encode(&values)).await?;
            let encoded = encoded.map_err(|err| Error::internal(format!("chunk of '{var}': {err}")))?;
            Ok::<_, Error>(Arc::new(Document::new(encoded.into())))
        };
        if self.config.cache_bytes == 0 {
            return produce.await;
        }
        let key = ChunkId {
            dataset: id.to_owned(),
            generation: store.generation,
            var: var.to_owned(),
            index: index.clone(),
            v3_only: format == Format::V3 && !array.formats_share_bytes(),
        };
        let entry = self.chunks.entry(key).or_try_insert_with(produce).await.map_err(|failure| (*failure).clone())?;
        self.metrics.looked_up(!entry.is_fresh());
        Ok(entry.into_value())
    }

    fn reply(&self, req: &Request, store: &Store, doc: Arc<Document>, content_type: &str) -> Response {
        reply(req, doc, store.last_modified, &self.config.cache_control, content_type)
    }
}

/// The decoded values of one served chunk: a stored chunk, or for rechunked arrays the
/// region it covers, padded to the full chunk shape.
async fn read_values(host: &Host, id: &str, var: &str, array: &Array, index: &[u64]) -> Result<RVec<u8>, Error> {
    if !array.rechunked {
        return host.chunk(id, var, index).await;
    }
    let start: Vec<u64> = index.iter().zip(&array.chunks).map(|(i, c)| i * c).collect();
    let count: Vec<u64> =
        start.iter().zip(&array.chunks).zip(&array.shape).map(|((s, c), n)| (*c).min(n - s)).collect();
    let block = host.region(id, var, &start, &count).await?;
    if count == array.chunks {
        return Ok(block);
    }
    // Zarr edge chunks have the full shape; what lies outside the array is never read.
    Ok(pad(&block, &count, &array.chunks, &vec![0; array.dtype.size()]).into())
}
