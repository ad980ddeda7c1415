//! [`HostExt`]: the idiomatic face of the [`Host`] handle.

use std::{
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    time::Duration,
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RStr, RString, RVec},
};
use serde::de::DeserializeOwned;

use crate::{
    abi::{BlockingTask, BlockingTask_TO, ChunkKey, ChunkRef, FileStat, Host, HostApi, LogLevel, Region},
    error::{Error, Result},
    handler::panic_message,
    meta::DatasetMeta,
};

/// Safe, idiomatic access to the host's services; implemented for [`Host`].
pub trait HostExt {
    /// Ids of every dataset served.
    fn datasets(&self) -> Vec<String>;
    /// A dataset's metadata.
    ///
    /// # Errors
    /// [`Error::Host`] (not found) or [`Error::Json`].
    fn metadata(&self, dataset: &str) -> Result<DatasetMeta>;
    /// A dataset's metadata as the JSON text the host sends: equal texts are equal datasets,
    /// so a hash of it tells when a dataset changed.
    ///
    /// # Errors
    /// [`Error::Host`] (not found).
    fn metadata_json(&self, dataset: &str) -> Result<String>;
    /// One chunk decoded to little-endian C-order values.
    ///
    /// # Errors
    /// [`Error::Host`] for an unknown dataset/variable/chunk or a failed read.
    fn chunk(&self, dataset: &str, variable: &str, index: &[u64]) -> impl Future<Output = Result<RVec<u8>>> + Send;
    /// One chunk as stored (encoded with the source codecs).
    ///
    /// # Errors
    /// As [`HostExt::chunk`].
    fn raw_chunk(&self, dataset: &str, variable: &str, index: &[u64]) -> impl Future<Output = Result<RVec<u8>>> + Send;
    /// Where one chunk's stored bytes are.
    ///
    /// # Errors
    /// As [`HostExt::chunk`].
    fn chunk_ref(&self, dataset: &str, variable: &str, index: &[u64]) -> impl Future<Output = Result<ChunkRef>> + Send;
    /// `shape` elements from `start`, decoded to little-endian C-order values.
    ///
    /// # Errors
    /// As [`HostExt::chunk`]; also too large or out-of-range selections.
    fn region(
        &self,
        dataset: &str,
        variable: &str,
        start: &[u64],
        shape: &[u64],
    ) -> impl Future<Output = Result<RVec<u8>>> + Send;
    /// Paths or URLs of the files the dataset's stored chunks are read from.
    ///
    /// # Errors
    /// [`Error::Host`] (not found).
    fn dataset_files(&self, dataset: &str) -> Result<Vec<String>>;
    /// Size and modification time of `file`, one of [`HostExt::dataset_files`].
    ///
    /// # Errors
    /// [`Error::Host`]: not one of the dataset's files, or unreachable.
    fn file_stat(&self, dataset: &str, file: &str) -> impl Future<Output = Result<FileStat>> + Send;
    /// `length` bytes at `offset` of `file`, one of [`HostExt::dataset_files`].
    ///
    /// # Errors
    /// As [`HostExt::file_stat`]; also a range past the end.
    fn read_file(
        &self,
        dataset: &str,
        file: &str,
        offset: u64,
        length: u64,
    ) -> impl Future<Output = Result<RVec<u8>>> + Send;
    /// Names of the plugins loaded (to link only to endpoints that exist); complete from
    /// request handlers on.
    fn plugins(&self) -> Vec<String>;
    /// This plugin's config table parsed as `T`.
    ///
    /// # Errors
    /// [`Error::Config`] when the table does not fit `T`.
    fn config<T: DeserializeOwned>(&self) -> Result<T>;
    /// Logs `message` in the host's log.
    fn log(&self, level: LogLevel, message: &str);
    /// Runs `f` on the host's blocking pool (CPU-heavy work: decoding, plotting).
    ///
    /// # Errors
    /// [`Error::Panicked`] when `f` panics.
    fn run_blocking<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static;
    /// Waits for `duration` on the host's timer.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

fn key(dataset: &str, variable: &str, index: &[u64]) -> ChunkKey {
    ChunkKey { dataset: dataset.into(), variable: variable.into(), index: index.into() }
}

impl HostExt for Host {
    fn datasets(&self) -> Vec<String> {
        self.list_datasets().into_iter().map(RString::into_string).collect()
    }

    fn metadata_json(&self, dataset: &str) -> Result<String> {
        Ok(self.dataset_metadata(RStr::from_str(dataset)).into_result()?.into_string())
    }

    fn metadata(&self, dataset: &str) -> Result<DatasetMeta> {
        let json = self.dataset_metadata(RStr::from_str(dataset)).into_result()?;
        serde_json::from_str(&json).map_err(Error::Json)
    }

    fn chunk(&self, dataset: &str, variable: &str, index: &[u64]) -> impl Future<Output = Result<RVec<u8>>> + Send {
        let fut = self.read_chunk(key(dataset, variable, index));
        async move { fut.await.into_result().map_err(Error::Host) }
    }

    fn raw_chunk(&self, dataset: &str, variable: &str, index: &[u64]) -> impl Future<Output = Result<RVec<u8>>> + Send {
        let fut = self.read_raw_chunk(key(dataset, variable, index));
        async move { fut.await.into_result().map_err(Error::Host) }
    }

    fn chunk_ref(&self, dataset: &str, variable: &str, index: &[u64]) -> impl Future<Output = Result<ChunkRef>> + Send {
        let fut = self.chunk_reference(key(dataset, variable, index));
        async move { fut.await.into_result().map_err(Error::Host) }
    }

    fn region(
        &self,
        dataset: &str,
        variable: &str,
        start: &[u64],
        shape: &[u64],
    ) -> impl Future<Output = Result<RVec<u8>>> + Send {
        let region =
            Region { dataset: dataset.into(), variable: variable.into(), start: start.into(), shape: shape.into() };
        let fut = self.read_region(region);
        async move { fut.await.into_result().map_err(Error::Host) }
    }

    fn dataset_files(&self, dataset: &str) -> Result<Vec<String>> {
        let files = HostApi::source_files(self, RStr::from_str(dataset)).into_result()?;
        Ok(files.into_iter().map(RString::into_string).collect())
    }

    fn file_stat(&self, dataset: &str, file: &str) -> impl Future<Output = Result<FileStat>> + Send {
        let fut = HostApi::stat_source_file(self, RStr::from_str(dataset), RStr::from_str(file));
        async move { fut.await.into_result().map_err(Error::Host) }
    }

    fn read_file(
        &self,
        dataset: &str,
        file: &str,
        offset: u64,
        length: u64,
    ) -> impl Future<Output = Result<RVec<u8>>> + Send {
        let fut = HostApi::read_source_file(self, RStr::from_str(dataset), RStr::from_str(file), offset, length);
        async move { fut.await.into_result().map_err(Error::Host) }
    }

    fn plugins(&self) -> Vec<String> {
        self.loaded_plugins().into_iter().map(RString::into_string).collect()
    }

    fn config<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.plugin_config()).map_err(Error::Config)
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.write_log(level, RStr::from_str(message));
    }

    fn run_blocking<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = futures::channel::oneshot::channel();
        // The task runs on a host thread but executes plugin code: the panic must be caught
        // here, on this side of the boundary.
        let job = move || {
            let outcome = catch_unwind(AssertUnwindSafe(f)).map_err(|p| Error::Panicked(panic_message(&*p)));
            let _ = tx.send(outcome);
        };
        let done = self.spawn_blocking(BlockingTask_TO::from_value(OnceTask(Some(Box::new(job))), TD_Opaque));
        async move {
            done.await;
            rx.await.unwrap_or_else(|_| Err(Error::Panicked("blocking task was dropped".to_owned())))
        }
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        self.sleep_ms(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }
}

struct OnceTask(Option<Box<dyn FnOnce() + Send>>);

impl BlockingTask for OnceTask {
    fn run(&mut self) {
        if let Some(job) = self.0.take() {
            job();
        }
    }
}
