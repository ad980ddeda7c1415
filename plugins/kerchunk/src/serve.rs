//! `/kerchunk/{key}`: metadata documents declaring the source codecs, and chunks as stored
//! (through a bytes-bounded cache when `cache_bytes` is set).

use std::sync::Arc;

use cloudify_sdk::{ChunkRef, Error, ErrorKind, Host, HostExt, RVec, Request, Response};
use cloudify_zarr_store::{
    encode_values, reply, request_key, Array, CacheMetrics, CodecName, Document, Format, RenderedStores, Resolved,
    ServedCodec, Store, METADATA_TTL,
};

use crate::{
    config::Config,
    export::{Export, ExportId},
};

/// Bytes of reference sets (JSON and parquet) kept at once. One is built per base URL, so
/// the bound is in bytes: clients choose how many base URLs there are (`localhost:N`).
const EXPORT_BYTES: u64 = 256 << 20;

/// Names one stored chunk in the cache (v2 and v3 keys share the bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ChunkId {
    dataset: String,
    generation: u64,
    var: String,
    index: Vec<u64>,
}

/// The plugin's state: config, rendered stores and the stored-chunk cache.
pub(crate) struct KerchunkService {
    pub(crate) config: Config,
    stores: RenderedStores,
    chunks: moka::future::Cache<ChunkId, Arc<Document>>,
    /// The stored-chunk cache's hits and misses (`/metrics/kerchunk`).
    pub(crate) metrics: Arc<CacheMetrics>,
    /// Reference sets built, reused while the metadata stays the same.
    pub(crate) exports: moka::sync::Cache<ExportId, Arc<Export>>,
}

/// The 409 of chunks that have no stored bytes to pass on.
pub(crate) fn not_stored(id: &str, var: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::UNSUPPORTED,
        format!("chunks of '{var}' {why}, so they cannot be served as stored; read them re-encoded from /datasets/{id}/zarr/"),
    )
}

impl KerchunkService {
    pub(crate) fn new(config: Config) -> Self {
        let chunks = moka::future::Cache::builder()
            .max_capacity(config.cache_bytes)
            .weigher(|_, doc: &Arc<Document>| u32::try_from(doc.body.len()).unwrap_or(u32::MAX))
            .build();
        let exports = moka::sync::Cache::builder()
            .weigher(|_key, export: &Arc<Export>| u32::try_from(export.bytes()).unwrap_or(u32::MAX))
            .max_capacity(EXPORT_BYTES)
            .time_to_live(METADATA_TTL)
            .build();
        let metrics = Arc::new(CacheMetrics::new(
            "cloudify_kerchunk_stored_cache_requests_total",
            "Stored-chunk cache lookups of the kerchunk plugin (with cache_bytes > 0): hit or miss",
        ));
        Self { stores: RenderedStores::default(), chunks, metrics, exports, config }
    }

    /// Answers `GET`/`HEAD /datasets/{id}/kerchunk/{key}`.
    pub(crate) async fn answer(&self, host: &Host, req: &Request) -> Response {
        self.try_answer(host, req).await.unwrap_or_else(Response::from)
    }

    async fn try_answer(&self, host: &Host, req: &Request) -> Result<Response, Error> {
        let id = req.dataset_id().unwrap_or_default();
        let key = request_key(req);
        let store = self.store(host, id)?;
        let cache_control = &self.config.cache_control;
        match store.resolve(id, &key)? {
            Resolved::Document(doc) => {
                Ok(reply(req, Arc::clone(doc), store.last_modified, cache_control, "application/json"))
            }
            Resolved::Chunk { var, array, index, .. } => {
                let doc = self.chunk(host, id, &store, var, array, index).await?;
                Ok(reply(req, doc, store.last_modified, cache_control, "application/octet-stream"))
            }
        }
    }

    /// The dataset `id` as a store of its stored chunks, rendered at most every
    /// [`METADATA_TTL`].
    pub(crate) fn store(&self, host: &Host, id: &str) -> Result<Arc<Store>, Error> {
        self.stores.get(host, id, ServedCodec::new(CodecName::Source, None), None)
    }

    /// One stored chunk, from the cache or read; concurrent requests share one read.
    async fn chunk(
        &self,
        host: &Host,
        id: &str,
        store: &Store,
        var: &str,
        array: &Array,
        index: Vec<u64>,
    ) -> Result<Arc<Document>, Error> {
        if !array.stored_bytes {
            return Err(not_stored(id, var, "are stored with codecs that Zarr v2 cannot declare"));
        }
        let read = async {
            let bytes = stored_chunk(host, id, var, array, &index).await?;
            // Stored bytes change only with the file, and so with the metadata generation:
            // the ETag names the chunk instead of hashing megabytes per request.
            let etag = xxhash_rust::xxh3::xxh3_64(format!("{}/{var}/{index:?}", store.generation).as_bytes());
            Ok::<_, Error>(Arc::new(Document::with_etag(bytes, format!("\"{etag:016x}\""))))
        };
        if self.config.cache_bytes == 0 {
            return read.await;
        }
        let key =
            ChunkId { dataset: id.to_owned(), generation: store.generation, var: var.to_owned(), index: index.clone() };
        let entry = self.chunks.entry(key).or_try_insert_with(read).await.map_err(|failure| (*failure).clone())?;
        self.metrics.looked_up(!entry.is_fresh());
        Ok(entry.into_value())
    }
}

/// The bytes of one chunk as stored; a never-written chunk is its fill value encoded with
/// the source chain (the same bytes the library would have written), and a chunk without
/// stored bytes its values encoded so. Kept in the host's
/// `RVec`: turning it into a `Vec` would copy it (another binary's allocation).
pub(crate) async fn stored_chunk(
    host: &Host,
    id: &str,
    var: &str,
    array: &Array,
    index: &[u64],
) -> Result<RVec<u8>, Error> {
    match host.raw_chunk(id, var, index).await {
        Ok(bytes) => return Ok(bytes),
        Err(Error::Host(err)) if err.kind == ErrorKind::UNSUPPORTED => {}
        Err(err) => return Err(err),
    }
    let reference = match host.chunk_ref(id, var, index).await {
        Err(Error::Host(err)) if err.kind == ErrorKind::UNSUPPORTED => ChunkRef::Computed,
        other => other?,
    };
    match reference {
        ChunkRef::Missing => Ok(encode_values(host, id, var, array, index, Format::V2).await?.into()),
        ChunkRef::Inline(bytes) => Ok(bytes),
        ChunkRef::Range { .. } => Err(Error::internal(format!("chunk {index:?} of '{var}' could not be read"))),
        // No stored bytes to pass on (strings read through libnetcdf, computed datasets): the
        // values encoded with the chain the array declares, as kerchunk.json inlines them, so
        // that a whole /kerchunk store opens.
        ChunkRef::Computed => Ok(encode_values(host, id, var, array, index, Format::V2).await?.into()),
    }
}
