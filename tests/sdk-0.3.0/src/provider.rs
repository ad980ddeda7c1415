//! [`Provider`]: the safe way for a plugin to serve datasets of its own.

use std::{
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RResult, RStr, RString, RVec},
};
use async_ffi::{FfiFuture, FutureExt as _};
use futures::FutureExt as _;

use crate::{
    abi::{ChunkKey, ChunkRef, DatasetSource, DatasetSourceBox, DatasetSource_TO, ErrorKind, HostError},
    handler::panic_message,
    meta::DatasetMeta,
};

/// A dataset provider, xpublish's `get_datasets`/`get_dataset` hooks in Rust.
pub trait Provider: Send + Sync + 'static {
    /// Ids this provider lists in `/datasets`.
    fn list(&self) -> Vec<String>;
    /// The metadata of `dataset`. The host also asks for ids no one lists (a provider may
    /// serve datasets on demand, such as results named by their id), and calls this where
    /// blocking is allowed: a provider may wait on the host's reads here (e.g. with
    /// `futures::executor::block_on`).
    ///
    /// # Errors
    /// A [`HostError`] of kind `NOT_FOUND` for an id this provider does not serve (an
    /// `INTERNAL` error for an unlisted id counts as not served too).
    fn metadata(&self, dataset: &str) -> Result<DatasetMeta, HostError>;
    /// One chunk decoded to little-endian C-order values of the full chunk shape.
    ///
    /// # Errors
    /// A [`HostError`] saying what was wrong with the key or the read.
    fn read_chunk(
        &self,
        dataset: &str,
        variable: &str,
        index: &[u64],
    ) -> impl Future<Output = Result<Vec<u8>, HostError>> + Send + 'static;
    /// Where one chunk's stored bytes are, for reference sets (`kerchunk.json`); by default
    /// computed: no stored bytes to point at.
    ///
    /// # Errors
    /// A [`HostError`] saying what was wrong with the key or the lookup.
    fn chunk_ref(
        &self,
        dataset: &str,
        variable: &str,
        index: &[u64],
    ) -> impl Future<Output = Result<ChunkRef, HostError>> + Send + 'static {
        let _ = (dataset, variable, index);
        async { Ok(ChunkRef::Computed) }
    }
    /// One chunk's stored bytes, encoded as the metadata's `codecs` declare (`/kerchunk`
    /// serves them as they are); by default `UNSUPPORTED`.
    ///
    /// # Errors
    /// A [`HostError`] saying what was wrong with the key or the read.
    fn read_raw_chunk(
        &self,
        dataset: &str,
        variable: &str,
        index: &[u64],
    ) -> impl Future<Output = Result<Vec<u8>, HostError>> + Send + 'static {
        let _ = (dataset, variable, index);
        async { Err(HostError::new(ErrorKind::UNSUPPORTED, "this dataset's chunks have no stored bytes")) }
    }
}

/// Wraps a [`Provider`] for [`crate::Plugin::dataset_source`], with every call panic-safe.
pub fn dataset_source(provider: impl Provider) -> DatasetSourceBox {
    DatasetSource_TO::from_value(Guarded(provider), TD_Opaque)
}

struct Guarded<P>(P);

fn panicked(panic: &(dyn std::any::Any + Send)) -> HostError {
    HostError::new(ErrorKind::INTERNAL, format!("dataset provider panicked: {}", panic_message(panic)))
}

impl<P: Provider> DatasetSource for Guarded<P> {
    fn list(&self) -> RVec<RString> {
        catch_unwind(AssertUnwindSafe(|| self.0.list())).unwrap_or_default().into_iter().map(RString::from).collect()
    }

    fn metadata(&self, dataset: RStr<'_>) -> RResult<RString, HostError> {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.0.metadata(dataset.as_str())))
            .unwrap_or_else(|panic| Err(panicked(&*panic)))
            .and_then(|meta| {
                serde_json::to_string(&meta)
                    .map(RString::from)
                    .map_err(|err| HostError::new(ErrorKind::INTERNAL, err.to_string()))
            });
        outcome.into()
    }

    fn read_chunk(&self, key: ChunkKey) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        guarded(|| self.0.read_chunk(&key.dataset, &key.variable, &key.index), RVec::from)
    }

    fn chunk_reference(&self, key: ChunkKey) -> FfiFuture<RResult<ChunkRef, HostError>> {
        guarded(|| self.0.chunk_ref(&key.dataset, &key.variable, &key.index), |found| found)
    }

    fn read_raw_chunk(&self, key: ChunkKey) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        guarded(|| self.0.read_raw_chunk(&key.dataset, &key.variable, &key.index), RVec::from)
    }
}

/// The future `call` makes, run with its panics (making it, and polling it) as errors.
fn guarded<T, R, F>(
    call: impl FnOnce() -> F,
    convert: impl FnOnce(T) -> R + Send + 'static,
) -> FfiFuture<RResult<R, HostError>>
where
    F: Future<Output = Result<T, HostError>> + Send + 'static,
    T: 'static,
    R: Send + 'static,
{
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(fut) => AssertUnwindSafe(fut)
            .catch_unwind()
            .map(|outcome| outcome.unwrap_or_else(|panic| Err(panicked(&*panic))).map(convert).into())
            .into_ffi(),
        Err(panic) => {
            let err = panicked(&*panic);
            async move { RResult::RErr(err) }.into_ffi()
        }
    }
}
