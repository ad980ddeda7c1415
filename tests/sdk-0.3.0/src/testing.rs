//! Testing a plugin without a server (feature `testing`, for `[dev-dependencies]`).
//!
//! [`MockHost`] is an in-memory host: datasets built from arrays and attributes in a few lines
//! ([`MockDataset`], [`MockVariable`]), the plugin's config table, a log that tests can read.
//! [`MockHost::load`] runs a plugin's `init` exactly as the server does (through its root
//! module) and gives a [`TestPlugin`], which routes requests to the plugin's handlers as the
//! server would (path parameters, dataset-scoped routes answering 404 for unknown ids, `HEAD`
//! on `GET` routes). [`TestPlugin::assert_conformance`] runs the checks every plugin must pass.
//!
//! ```
//! use cloudify_sdk::testing::{MockDataset, MockHost, MockVariable};
//! # use cloudify_sdk::{Host, HostExt, Plugin, Request, Response, Route, Scope};
//! # cloudify_sdk::declare_plugin!(name: "count", init: init);
//! # fn init(_host: Host) -> Plugin {
//! #     Plugin::new("count", "0.1.0").route(Route::get(Scope::Dataset, "/count", count))
//! # }
//! # async fn count(host: Host, req: Request) -> Response {
//! #     match host.metadata(req.dataset_id().unwrap_or_default()) {
//! #         Ok(meta) => Response::json(200, &meta.variables.len()),
//! #         Err(err) => err.into(),
//! #     }
//! # }
//! let tas = MockVariable::new("tas", &[("time", 2), ("lat", 3)], [1f32, 2., 3., 4., 5., 6.])
//!     .chunks(&[1, 3])
//!     .attr("units", "K");
//! let plugin = MockHost::new().dataset(MockDataset::new("demo").variable(tas)).load(plugin_module()).unwrap();
//! futures::executor::block_on(async {
//!     assert_eq!(plugin.get("/datasets/demo/count").await.json(), 1);
//!     assert_eq!(plugin.get("/datasets/nope/count").await.status, 404);
//!     plugin.assert_conformance().await;
//! });
//! ```
//!
//! The mock is runtime-agnostic: blocking tasks and timers run on threads of their own, so a
//! test may drive it with `futures::executor::block_on` or any async runtime.

use std::{
    sync::{Arc, Mutex, OnceLock},
    thread,
    time::Duration,
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RResult, RStr, RString, RVec},
};
use async_ffi::{FfiFuture, FutureExt as _};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::{
    abi::{
        BlockingTaskBox, Body, ChunkKey, ChunkRef, DatasetSourceBox, ErrorKind, FileStat, Host, HostApi, HostApi_TO,
        HostError, LogLevel, PluginDecl, PluginModRef, Region, Request, RouteSpec, Scope, KV,
    },
    hyperslab::{self, Layout},
    meta::{DataType, DatasetMeta, VariableMeta},
    strings, BASE_URL_HEADER,
};

/// A number type a [`MockVariable`] can hold.
pub trait Element: Copy {
    /// Its element type in the metadata.
    const DTYPE: DataType;
    /// Appends its little-endian bytes.
    fn put_le(self, out: &mut Vec<u8>);
}

macro_rules! elements {
    ($($t:ty => $dtype:ident),*) => {$(
        impl Element for $t {
            const DTYPE: DataType = DataType::$dtype;
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}

elements!(i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64, u8 => Uint8, u16 => Uint16, u32 => Uint32,
          u64 => Uint64, f32 => Float32, f64 => Float64);

impl Element for bool {
    const DTYPE: DataType = DataType::Bool;
    fn put_le(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
}

/// The values of a variable, in C order.
#[derive(Clone, Debug)]
enum Values {
    /// Fixed-size elements, little-endian.
    Fixed(Vec<u8>),
    /// Variable-length strings.
    Strings(Vec<String>),
}

/// One variable of a [`MockDataset`]: its dimensions, values, chunking and attributes.
#[derive(Clone, Debug)]
pub struct MockVariable {
    name: String,
    dimensions: Vec<(String, u64)>,
    dtype: DataType,
    values: Values,
    chunks: Option<Vec<u64>>,
    attributes: Map<String, Value>,
    fill_value: Value,
}

impl MockVariable {
    /// A variable over `dimensions` (name, size) holding `values` in C order, in one chunk.
    ///
    /// # Panics
    /// When the number of values is not the product of the dimension sizes.
    pub fn new<T: Element>(name: &str, dimensions: &[(&str, u64)], values: impl IntoIterator<Item = T>) -> Self {
        let mut bytes = Vec::new();
        let mut count = 0u64;
        for value in values {
            value.put_le(&mut bytes);
            count += 1;
        }
        Self::with_values(name, dimensions, T::DTYPE, Values::Fixed(bytes), count)
    }

    /// A variable of variable-length strings.
    ///
    /// # Panics
    /// As [`MockVariable::new`].
    pub fn strings<S: Into<String>>(
        name: &str,
        dimensions: &[(&str, u64)],
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        let count = values.len() as u64;
        Self::with_values(name, dimensions, DataType::String, Values::Strings(values), count)
    }

    fn with_values(name: &str, dimensions: &[(&str, u64)], dtype: DataType, values: Values, count: u64) -> Self {
        let dimensions: Vec<(String, u64)> = dimensions.iter().map(|(d, n)| ((*d).to_owned(), *n)).collect();
        let expected: u64 = dimensions.iter().map(|(_, n)| n).product();
        assert_eq!(count, expected, "variable {name}: {count} values for dimensions {dimensions:?}");
        Self {
            name: name.to_owned(),
            dimensions,
            dtype,
            values,
            chunks: None,
            attributes: Map::new(),
            fill_value: Value::Null,
        }
    }

    /// Splits the variable into chunks of `chunks` elements (edge chunks padded with the fill
    /// value, as Zarr and the server do).
    ///
    /// # Panics
    /// When `chunks` has another rank than the variable or a zero.
    pub fn chunks(mut self, chunks: &[u64]) -> Self {
        assert_eq!(chunks.len(), self.dimensions.len(), "variable {}: chunk rank", self.name);
        assert!(!chunks.contains(&0), "variable {}: zero chunk extent", self.name);
        self.chunks = Some(chunks.to_vec());
        self
    }

    /// Sets attribute `name`.
    pub fn attr(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.attributes.insert(name.to_owned(), value.into());
        self
    }

    /// Sets the fill value (a number, a bool, or `"NaN"`/`"Infinity"`/`"-Infinity"`).
    pub fn fill_value(mut self, value: impl Into<Value>) -> Self {
        self.fill_value = value.into();
        self
    }

    fn shape(&self) -> Vec<u64> {
        self.dimensions.iter().map(|(_, n)| *n).collect()
    }

    fn chunk_shape(&self) -> Vec<u64> {
        self.chunks.clone().unwrap_or_else(|| self.shape().iter().map(|&n| n.max(1)).collect())
    }

    fn meta(&self) -> VariableMeta {
        VariableMeta {
            dtype: self.dtype,
            dimensions: self.dimensions.iter().map(|(d, _)| d.clone()).collect(),
            shape: self.shape(),
            chunks: self.chunk_shape(),
            attributes: self.attributes.clone(),
            fill_value: self.fill_value.clone(),
            codecs: source_codecs(self.dtype),
        }
    }

    /// The fill value as one element's bytes (zero when there is none).
    fn fill_bytes(&self) -> Vec<u8> {
        let value = &self.fill_value;
        let float = match value {
            Value::String(s) if s == "NaN" => Some(f64::NAN),
            Value::String(s) if s == "Infinity" => Some(f64::INFINITY),
            Value::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.as_f64(),
        };
        let int = value.as_i64().unwrap_or(0);
        let uint = value.as_u64().unwrap_or(0);
        match self.dtype {
            DataType::Float32 => (float.unwrap_or(0.0) as f32).to_le_bytes().to_vec(),
            DataType::Float64 => float.unwrap_or(0.0).to_le_bytes().to_vec(),
            DataType::Bool => vec![u8::from(value.as_bool().unwrap_or(false))],
            DataType::Int8 => (int as i8).to_le_bytes().to_vec(),
            DataType::Int16 => (int as i16).to_le_bytes().to_vec(),
            DataType::Int32 => (int as i32).to_le_bytes().to_vec(),
            DataType::Int64 => int.to_le_bytes().to_vec(),
            DataType::Uint8 | DataType::Char => (uint as u8).to_le_bytes().to_vec(),
            DataType::Uint16 => (uint as u16).to_le_bytes().to_vec(),
            DataType::Uint32 => (uint as u32).to_le_bytes().to_vec(),
            DataType::Uint64 => uint.to_le_bytes().to_vec(),
            DataType::String => Vec::new(),
        }
    }

    /// The `extent` elements from `origin`, in C order; positions past the variable's end hold
    /// the fill value.
    fn gather(&self, origin: &[u64], extent: &[u64]) -> Vec<u8> {
        let shape = self.shape();
        let count: u64 = extent.iter().product();
        let source_index = |flat: u64| -> Option<usize> {
            let local = hyperslab::unravel(flat, extent);
            let mut index = 0u64;
            for d in 0..shape.len() {
                let at = origin[d] + local[d];
                if at >= shape[d] {
                    return None;
                }
                index = index * shape[d] + at;
            }
            Some(index as usize)
        };
        match &self.values {
            Values::Fixed(bytes) => {
                let size = self.dtype.size();
                let fill = self.fill_bytes();
                let mut out = Vec::with_capacity(count as usize * size);
                for flat in 0..count {
                    match source_index(flat) {
                        Some(i) => out.extend_from_slice(&bytes[i * size..(i + 1) * size]),
                        None => out.extend_from_slice(&fill),
                    }
                }
                out
            }
            Values::Strings(items) => {
                strings::encode((0..count).map(|flat| source_index(flat).map_or("", |i| items[i].as_str())))
            }
        }
    }

    fn chunk(&self, index: &[u64]) -> Result<Vec<u8>, HostError> {
        let (shape, chunks) = (self.shape(), self.chunk_shape());
        if index.len() != shape.len() {
            return Err(invalid(format!(
                "chunk index of {} dimensions for {} of {}",
                index.len(),
                self.name,
                shape.len()
            )));
        }
        let origin: Vec<u64> = index.iter().zip(&chunks).map(|(i, c)| i.saturating_mul(*c)).collect();
        if origin.iter().zip(&shape).any(|(o, n)| o >= n) {
            return Err(not_found(format!("chunk {index:?} of {} is outside its grid", self.name)));
        }
        Ok(self.gather(&origin, &chunks))
    }

    fn region(&self, start: &[u64], count: &[u64], max_bytes: u64) -> Result<Vec<u8>, HostError> {
        let shape = self.shape();
        let fits = start.len() == shape.len()
            && count.len() == shape.len()
            && start.iter().zip(count).zip(&shape).all(|((s, c), n)| s.checked_add(*c).is_some_and(|end| end <= *n));
        if !fits {
            return Err(invalid(format!("region {start:?}+{count:?} outside {} of shape {shape:?}", self.name)));
        }
        let elements = count.iter().try_fold(1u64, |n, c| n.checked_mul(*c));
        if elements.and_then(|n| n.checked_mul(self.dtype.size().max(1) as u64)).is_none_or(|bytes| bytes > max_bytes) {
            return Err(HostError::new(ErrorKind::TOO_LARGE, format!("region over {max_bytes} bytes")));
        }
        Ok(self.gather(start, count))
    }
}

/// The codec chain of a mock's stored chunks: values as they are, little-endian.
fn source_codecs(dtype: DataType) -> Vec<Value> {
    let codec = if dtype == DataType::String {
        serde_json::json!({"name": "vlen-utf8"})
    } else {
        serde_json::json!({"name": "bytes", "configuration": {"endian": "little"}})
    };
    vec![codec]
}

/// An in-memory dataset for [`MockHost`].
#[derive(Clone, Debug)]
pub struct MockDataset {
    id: String,
    attributes: Map<String, Value>,
    dimensions: IndexMap<String, u64>,
    variables: IndexMap<String, MockVariable>,
    files: IndexMap<String, Vec<u8>>,
    last_modified: Option<i64>,
}

impl MockDataset {
    /// An empty dataset called `id`.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            attributes: Map::new(),
            dimensions: IndexMap::new(),
            variables: IndexMap::new(),
            files: IndexMap::new(),
            last_modified: None,
        }
    }

    /// Sets global attribute `name`.
    pub fn attr(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.attributes.insert(name.to_owned(), value.into());
        self
    }

    /// Adds a variable; its dimensions join the dataset's.
    ///
    /// # Panics
    /// When a dimension already has another size.
    pub fn variable(mut self, variable: MockVariable) -> Self {
        for (dim, size) in &variable.dimensions {
            let known = *self.dimensions.entry(dim.clone()).or_insert(*size);
            assert_eq!(known, *size, "dimension {dim} of {} is {size}, was {known}", variable.name);
        }
        self.variables.insert(variable.name.clone(), variable);
        self
    }

    /// Adds a source file (what [`crate::HostExt::dataset_files`] lists and
    /// [`crate::HostExt::read_file`] reads).
    pub fn file(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.insert(path.to_owned(), bytes.into());
        self
    }

    /// When the source last changed (Unix seconds).
    pub fn last_modified(mut self, seconds: i64) -> Self {
        self.last_modified = Some(seconds);
        self
    }

    fn meta(&self) -> DatasetMeta {
        DatasetMeta {
            id: self.id.clone(),
            attributes: self.attributes.clone(),
            dimensions: self.dimensions.clone(),
            unlimited: Vec::new(),
            variables: self.variables.iter().map(|(name, v)| (name.clone(), v.meta())).collect(),
            last_modified: self.last_modified,
        }
    }

    fn variable_named(&self, name: &str) -> Result<&MockVariable, HostError> {
        self.variables.get(name).ok_or_else(|| not_found(format!("no variable {name} in {}", self.id)))
    }

    fn file_named(&self, path: &str) -> Result<&[u8], HostError> {
        self.files.get(path).map(Vec::as_slice).ok_or_else(|| not_found(format!("{path} is not a file of {}", self.id)))
    }
}

fn not_found(message: String) -> HostError {
    HostError::new(ErrorKind::NOT_FOUND, message)
}

fn invalid(message: String) -> HostError {
    HostError::new(ErrorKind::INVALID_INPUT, message)
}

/// An in-memory host to load one plugin into: datasets, the plugin's config table, the names
/// of the other plugins "loaded", and a log.
pub struct MockHost {
    datasets: IndexMap<String, MockDataset>,
    config: Value,
    plugins: Vec<String>,
    max_region_bytes: u64,
    base_url: String,
}

impl Default for MockHost {
    fn default() -> Self {
        Self::new()
    }
}

impl MockHost {
    /// A host with no datasets, an empty config table, regions up to 64 MiB and the base URL
    /// `http://localhost`.
    pub fn new() -> Self {
        Self {
            datasets: IndexMap::new(),
            config: Value::Object(Map::new()),
            plugins: Vec::new(),
            max_region_bytes: 64 << 20,
            base_url: "http://localhost".to_owned(),
        }
    }

    /// Adds a dataset.
    pub fn dataset(mut self, dataset: MockDataset) -> Self {
        self.datasets.insert(dataset.id.clone(), dataset);
        self
    }

    /// The plugin's config table (`[plugin.<name>]` of the server's config), as JSON.
    pub fn config(mut self, table: Value) -> Self {
        self.config = table;
        self
    }

    /// Names of the other plugins the host reports as loaded (the plugin itself is added).
    pub fn plugins(mut self, names: &[&str]) -> Self {
        self.plugins = names.iter().map(|&n| n.to_owned()).collect();
        self
    }

    /// The largest region a plugin may read, in bytes (`server.max_region_bytes`).
    pub fn max_region_bytes(mut self, bytes: u64) -> Self {
        self.max_region_bytes = bytes;
        self
    }

    /// The URL the plugin is told it is reached at (no trailing slash).
    pub fn base_url(mut self, url: &str) -> Self {
        url.trim_end_matches('/').clone_into(&mut self.base_url);
        self
    }

    /// Loads the plugin whose root module is `module` (what `declare_plugin!` generates:
    /// `plugin_module()`), calling its `init` as the server does.
    ///
    /// # Errors
    /// The reason the plugin refused to load (its `init` failed or panicked).
    pub fn load(self, module: PluginModRef) -> Result<TestPlugin, String> {
        let name = module.name()().as_str().to_owned();
        let mut plugins = self.plugins;
        plugins.push(name.clone());
        let state = Arc::new(State {
            name,
            datasets: self.datasets,
            config: self.config.to_string(),
            plugins,
            max_region_bytes: self.max_region_bytes,
            logs: Mutex::new(Vec::new()),
            provider: OnceLock::new(),
        });
        let host: Host = HostApi_TO::from_ptr(RArc::new(Mock(Arc::clone(&state))), TD_Opaque);
        let decl = module.init()(host.clone()).into_result().map_err(RString::into_string)?;
        let PluginDecl { name, routes, dataset_source, .. } = decl;
        if let Some(provider) = dataset_source.into_option() {
            let _ = state.provider.set(provider);
        }
        Ok(TestPlugin { state, host, name: name.into_string(), routes: routes.into_vec(), base_url: self.base_url })
    }
}

struct State {
    name: String,
    datasets: IndexMap<String, MockDataset>,
    config: String,
    plugins: Vec<String>,
    max_region_bytes: u64,
    logs: Mutex<Vec<(LogLevel, String)>>,
    provider: OnceLock<DatasetSourceBox>,
}

impl State {
    fn dataset(&self, id: &str) -> Result<&MockDataset, HostError> {
        self.datasets.get(id).ok_or_else(|| not_found(format!("Dataset '{id}' not found")))
    }

    /// The provider serving `id`, as the server finds it: listing it, or describing it when
    /// asked (anything but `NOT_FOUND` or `INTERNAL`).
    fn provided(&self, id: &str) -> Option<&DatasetSourceBox> {
        let serves = |p: &&DatasetSourceBox| {
            p.list().iter().any(|d| d == id)
                || (!self.datasets.contains_key(id)
                    && !matches!(p.metadata(id.into()).into_result(),
                        Err(err) if err.kind == ErrorKind::NOT_FOUND || err.kind == ErrorKind::INTERNAL))
        };
        self.provider.get().filter(serves)
    }

    fn exists(&self, id: &str) -> bool {
        self.datasets.contains_key(id) || self.provided(id).is_some()
    }

    /// A region of a provider's dataset, assembled from its chunks as the server does.
    async fn provided_region(&self, provider: &DatasetSourceBox, region: &Region) -> Result<Vec<u8>, HostError> {
        let meta: DatasetMeta = serde_json::from_str(&provider.metadata(region.dataset.as_rstr()).into_result()?)
            .map_err(|err| HostError::new(ErrorKind::INTERNAL, err.to_string()))?;
        let var = meta.variables.get(region.variable.as_str()).ok_or_else(|| not_found("no such variable".into()))?;
        let (start, count) = (region.start.as_slice(), region.shape.as_slice());
        let fits = start.len() == var.shape.len()
            && count.len() == var.shape.len()
            && start.iter().zip(count).zip(&var.shape).all(|((s, c), n)| s.checked_add(*c).is_some_and(|e| e <= *n));
        if !fits || var.dtype.is_variable_length() {
            return Err(invalid(format!("region {start:?}+{count:?} of {} cannot be read", region.variable)));
        }
        let elem = var.dtype.size();
        let bytes = count.iter().try_fold(elem as u64, |n, c| n.checked_mul(*c));
        if bytes.is_none_or(|b| b > self.max_region_bytes) {
            return Err(HostError::new(ErrorKind::TOO_LARGE, format!("region over {} bytes", self.max_region_bytes)));
        }
        let mut out = vec![0u8; bytes.unwrap_or(0) as usize];
        if count.contains(&0) {
            return Ok(out);
        }
        let first: Vec<u64> = start.iter().zip(&var.chunks).map(|(s, c)| s / c).collect();
        let last: Vec<u64> = start.iter().zip(count).zip(&var.chunks).map(|((s, n), c)| (s + n - 1) / c).collect();
        let span: Vec<u64> = first.iter().zip(&last).map(|(f, l)| l - f + 1).collect();
        for flat in 0..span.iter().product::<u64>() {
            let index: Vec<u64> = hyperslab::unravel(flat, &span).iter().zip(&first).map(|(i, f)| i + f).collect();
            let key = ChunkKey {
                dataset: region.dataset.clone(),
                variable: region.variable.clone(),
                index: index.clone().into(),
            };
            let chunk = provider.read_chunk(key).await.into_result()?;
            let chunk_origin: Vec<u64> = index.iter().zip(&var.chunks).map(|(i, c)| i * c).collect();
            let lo: Vec<u64> = chunk_origin.iter().zip(start).map(|(o, s)| *o.max(s)).collect();
            let hi: Vec<u64> =
                (0..index.len()).map(|d| (chunk_origin[d] + var.chunks[d]).min(start[d] + count[d])).collect();
            let block: Vec<u64> = lo.iter().zip(&hi).map(|(l, h)| h - l).collect();
            let in_chunk: Vec<u64> = lo.iter().zip(&chunk_origin).map(|(l, o)| l - o).collect();
            let in_region: Vec<u64> = lo.iter().zip(start).map(|(l, s)| l - s).collect();
            hyperslab::copy_block(
                &chunk,
                Layout { shape: &var.chunks, elem },
                &in_chunk,
                &mut out,
                Layout { shape: count, elem },
                &in_region,
                &block,
            );
        }
        Ok(out)
    }
}

/// The [`HostApi`] of a [`MockHost`].
#[derive(Clone)]
struct Mock(Arc<State>);

fn ready<T: Send + 'static>(value: T) -> FfiFuture<T> {
    async move { value }.into_ffi()
}

/// Runs `job` on a thread of its own and resolves with its outcome.
fn on_thread<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> FfiFuture<T> {
    let (tx, rx) = futures::channel::oneshot::channel();
    thread::spawn(move || {
        let _ = tx.send(job());
    });
    async move { rx.await.expect("MockHost: a blocking task's thread ended without an answer") }.into_ffi()
}

impl HostApi for Mock {
    fn list_datasets(&self) -> RVec<RString> {
        let provided = self.0.provider.get().map(|p| p.list().into_vec()).unwrap_or_default();
        self.0.datasets.keys().map(|id| RString::from(id.as_str())).chain(provided).collect()
    }

    fn dataset_metadata(&self, dataset: RStr<'_>) -> RResult<RString, HostError> {
        if let Some(provider) = self.0.provided(dataset.as_str()) {
            return provider.metadata(dataset);
        }
        let meta = self.0.dataset(dataset.as_str()).map(MockDataset::meta);
        meta.and_then(|m| serde_json::to_string(&m).map_err(|err| HostError::new(ErrorKind::INTERNAL, err.to_string())))
            .map(RString::from)
            .into()
    }

    fn read_chunk(&self, key: ChunkKey) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        if let Some(provider) = self.0.provided(key.dataset.as_str()) {
            return provider.read_chunk(key);
        }
        let chunk = self.0.dataset(&key.dataset).and_then(|d| d.variable_named(&key.variable)?.chunk(&key.index));
        ready(chunk.map(RVec::from).into())
    }

    fn read_raw_chunk(&self, key: ChunkKey) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        if let Some(provider) = self.0.provided(key.dataset.as_str()) {
            return provider.read_raw_chunk(key);
        }
        // The mock stores chunks with the `bytes` (or `vlen-utf8`) codec alone: as decoded.
        self.read_chunk(key)
    }

    fn chunk_reference(&self, key: ChunkKey) -> FfiFuture<RResult<ChunkRef, HostError>> {
        if let Some(provider) = self.0.provided(key.dataset.as_str()) {
            return provider.chunk_reference(key);
        }
        let chunk = self.0.dataset(&key.dataset).and_then(|d| d.variable_named(&key.variable)?.chunk(&key.index));
        ready(chunk.map(|bytes| ChunkRef::Inline(bytes.into())).into())
    }

    fn read_region(&self, region: Region) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        let state = Arc::clone(&self.0);
        async move {
            let outcome = match state.provided(&region.dataset) {
                Some(provider) => state.provided_region(provider, &region).await,
                None => state.dataset(&region.dataset).and_then(|d| {
                    d.variable_named(&region.variable)?.region(&region.start, &region.shape, state.max_region_bytes)
                }),
            };
            outcome.map(RVec::from).into()
        }
        .into_ffi()
    }

    fn plugin_config(&self) -> RString {
        self.0.config.as_str().into()
    }

    fn plugin_name(&self) -> RString {
        self.0.name.as_str().into()
    }

    fn write_log(&self, level: LogLevel, message: RStr<'_>) {
        self.0.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((level, message.into()));
    }

    fn spawn_blocking(&self, mut task: BlockingTaskBox) -> FfiFuture<()> {
        on_thread(move || task.run())
    }

    fn sleep_ms(&self, ms: u64) -> FfiFuture<()> {
        on_thread(move || thread::sleep(Duration::from_millis(ms)))
    }

    fn source_files(&self, dataset: RStr<'_>) -> RResult<RVec<RString>, HostError> {
        if self.0.provided(dataset.as_str()).is_some() {
            return RResult::ROk(RVec::new());
        }
        self.0.dataset(dataset.as_str()).map(|d| d.files.keys().map(|f| RString::from(f.as_str())).collect()).into()
    }

    fn stat_source_file(&self, dataset: RStr<'_>, file: RStr<'_>) -> FfiFuture<RResult<FileStat, HostError>> {
        let stat = self.0.dataset(dataset.as_str()).and_then(|d| {
            let bytes = d.file_named(file.as_str())?;
            Ok(FileStat { size: bytes.len() as u64, modified: d.last_modified.unwrap_or(0) })
        });
        ready(stat.into())
    }

    fn read_source_file(
        &self,
        dataset: RStr<'_>,
        file: RStr<'_>,
        offset: u64,
        length: u64,
    ) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        let range = self.0.dataset(dataset.as_str()).and_then(|d| {
            let bytes = d.file_named(file.as_str())?;
            let end = offset.checked_add(length).filter(|&end| end <= bytes.len() as u64);
            let end = end.ok_or_else(|| invalid(format!("{offset}+{length} is past the end of {file}")))?;
            Ok(RVec::from(&bytes[offset as usize..end as usize]))
        });
        ready(range.into())
    }

    fn loaded_plugins(&self) -> RVec<RString> {
        self.0.plugins.iter().map(|p| RString::from(p.as_str())).collect()
    }
}

/// A request to send to a [`TestPlugin`].
#[derive(Clone, Debug)]
pub struct TestRequest {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl TestRequest {
    /// A request with `method` for `uri` (a path with an optional `?query`).
    pub fn new(method: &str, uri: &str) -> Self {
        Self { method: method.to_ascii_uppercase(), uri: uri.to_owned(), headers: Vec::new(), body: Vec::new() }
    }

    /// `GET uri`.
    pub fn get(uri: &str) -> Self {
        Self::new("GET", uri)
    }

    /// `HEAD uri`.
    pub fn head(uri: &str) -> Self {
        Self::new("HEAD", uri)
    }

    /// `POST uri` with `body`.
    pub fn post(uri: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::new("POST", uri).body(body)
    }

    /// Adds a header (the name is lower-cased, as the server hands headers to plugins).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// A plugin's answer, body collected.
#[derive(Clone, Debug)]
pub struct TestResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers as the plugin set them.
    pub headers: Vec<(String, String)>,
    /// The body (empty for `HEAD`).
    pub body: Vec<u8>,
}

impl TestResponse {
    /// The first header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    ///
    /// # Panics
    /// When it is not JSON (with the body in the message).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("{} answer is not JSON ({err}): {}", self.status, self.text()))
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error message of an error answer: the `error` field of its JSON body.
    pub fn error_message(&self) -> Option<String> {
        let body: Value = serde_json::from_slice(&self.body).ok()?;
        body.get("error")?.as_str().map(str::to_owned)
    }
}

/// A plugin loaded into a [`MockHost`].
pub struct TestPlugin {
    state: Arc<State>,
    host: Host,
    name: String,
    routes: Vec<RouteSpec>,
    base_url: String,
}

impl TestPlugin {
    /// The name the plugin declared.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host handle the plugin was given (to call its helpers directly).
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// `(method, full path template)` of every route, dataset routes under `/datasets/{id}`.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.routes.iter().map(|r| (r.method.to_string(), full_template(r))).collect()
    }

    /// What the plugin has logged through the host, in order.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.state.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// `GET uri`.
    pub async fn get(&self, uri: &str) -> TestResponse {
        self.send(TestRequest::get(uri)).await
    }

    /// Sends `request` to the route the server would pick; 404/405 as the server answers
    /// them when none matches, 404 for a dataset route with an unknown id.
    pub async fn send(&self, request: TestRequest) -> TestResponse {
        let (path, query) = request.uri.split_once('?').unwrap_or((&request.uri, ""));
        let head = request.method == "HEAD";
        let candidates: Vec<(&RouteSpec, Vec<(String, String)>)> =
            self.routes.iter().filter_map(|r| Some((r, match_path(&full_template(r), path)?))).collect();
        if candidates.is_empty() {
            return error_response(404, &format!("no route for {path}"));
        }
        let chosen = candidates
            .iter()
            .filter(|(r, _)| r.method == request.method || (head && r.method == "GET"))
            .max_by_key(|(r, _)| literal_segments(&full_template(r)));
        let Some((route, raw_params)) = chosen else {
            return error_response(405, "method not allowed");
        };
        let mut params = Vec::with_capacity(raw_params.len());
        for (name, raw) in raw_params {
            match percent_encoding::percent_decode_str(raw).decode_utf8() {
                Ok(value) => params.push(KV::from((name.as_str().into(), value.as_ref().into()))),
                Err(_) => return error_response(400, &format!("path parameter {name} is not UTF-8")),
            }
        }
        if route.scope == Scope::Dataset {
            let id = params.iter().find(|kv| kv.0 == "id").map(|kv| kv.1.to_string()).unwrap_or_default();
            if !self.state.exists(&id) {
                return error_response(404, &format!("Dataset '{id}' not found"));
            }
        }
        let body = if matches!(request.method.as_str(), "GET" | "HEAD") { Vec::new() } else { request.body };
        let headers = std::iter::once((BASE_URL_HEADER.to_owned(), self.base_url.clone()))
            .chain(request.headers)
            .map(|(n, v)| KV::from((n.into(), v.into())))
            .collect();
        let req = Request {
            method: request.method.as_str().into(),
            path: path.into(),
            params: params.into(),
            query: query.into(),
            headers,
            body: body.into(),
            extensions: RVec::new(),
        };
        let response = route.handler.call(self.host.clone(), req).await;
        let mut body = Vec::new();
        match response.body {
            Body::Bytes(bytes) => body = bytes.into_vec(),
            Body::Stream(mut stream) => {
                while let Some(piece) = stream.next_chunk().await.into_option() {
                    body.extend_from_slice(&piece);
                }
            }
        }
        if head {
            body.clear();
        }
        let headers = response.headers.into_iter().map(|kv| (kv.0.into_string(), kv.1.into_string())).collect();
        TestResponse { status: response.status, headers, body }
    }

    /// Runs the checks every plugin must pass and returns what failed (empty: conforms).
    ///
    /// Each route is called with the first dataset (dataset routes), with an unknown dataset,
    /// and with hostile path parameters (traversal, percent-encoded, very long, control
    /// characters, many dimensions); `POST` routes also with an empty and a malformed body.
    /// Checked: every status is a valid HTTP status; errors are `application/json` bodies
    /// `{"error": "..."}`; hostile input is refused with a 4xx, never a 5xx; unknown datasets
    /// are 404; `HEAD` answers as `GET` does; headers are valid HTTP; and no handler panicked.
    pub async fn conformance(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let dataset = self.state.datasets.keys().next().cloned();
        for route in &self.routes {
            let template = full_template(route);
            let datasets = match (route.scope, &dataset) {
                (Scope::Dataset, Some(id)) => vec![id.clone(), "no-such-dataset".to_owned()],
                (Scope::Dataset, None) => vec!["no-such-dataset".to_owned()],
                (Scope::App, _) => vec![String::new()],
            };
            for id in &datasets {
                for probe in probes(&template) {
                    let uri = instantiate(&template, id, &probe);
                    let requests: Vec<TestRequest> = if route.method == "POST" {
                        vec![TestRequest::post(&uri, ""), TestRequest::post(&uri, "{\"not\": valid json")]
                    } else {
                        vec![TestRequest::new(&route.method, &uri)]
                    };
                    for request in requests {
                        let what = format!("{} {}", request.method, truncate(&uri));
                        let response = self.send(request.clone()).await;
                        check_response(&what, &response, &mut failures);
                        let unknown_dataset = id == "no-such-dataset";
                        if unknown_dataset && response.status != 404 {
                            failures.push(format!("{what}: unknown dataset answered {}", response.status));
                        }
                        let hostile = probe != Probe::Plain;
                        if hostile && response.status >= 500 {
                            failures.push(format!("{what}: hostile input answered {}", response.status));
                        }
                        if request.method == "GET" {
                            let head = self.send(TestRequest::head(&uri)).await;
                            if head.status != response.status {
                                failures
                                    .push(format!("{what}: HEAD answered {}, GET {}", head.status, response.status));
                            }
                        }
                    }
                }
            }
        }
        for (level, line) in self.logs() {
            if line.contains("panicked") {
                failures.push(format!("a handler panicked ({level:?}): {line}"));
            }
        }
        failures
    }

    /// [`TestPlugin::conformance`], panicking with every failure.
    ///
    /// # Panics
    /// When any check fails.
    pub async fn assert_conformance(&self) {
        let failures = self.conformance().await;
        assert!(failures.is_empty(), "plugin {} fails {} conformance checks:\n{}", self.name, failures.len(), {
            failures.join("\n")
        });
    }
}

fn full_template(route: &RouteSpec) -> String {
    match route.scope {
        Scope::Dataset => format!("/datasets/{{id}}{}", route.path),
        Scope::App => route.path.to_string(),
    }
}

fn literal_segments(template: &str) -> usize {
    template.split('/').filter(|s| !s.starts_with('{')).count()
}

/// The raw (still percent-encoded) parameters of `path` if it matches `template` (axum syntax:
/// `{name}` one segment, `{*name}` the non-empty rest).
fn match_path(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut params = Vec::new();
    let parts: Vec<&str> = template.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if let Some(name) = part.strip_prefix("{*").and_then(|p| p.strip_suffix('}')) {
            let rest = segments.get(i..)?.join("/");
            if rest.is_empty() {
                return None;
            }
            params.push((name.to_owned(), rest));
            return Some(params);
        }
        let segment = *segments.get(i)?;
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !segment.is_empty() => params.push((name.to_owned(), segment.to_owned())),
            Some(_) => return None,
            None if *part == segment => {}
            None => return None,
        }
    }
    (segments.len() == parts.len()).then_some(params)
}

/// The value each non-`id` parameter gets in one conformance request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Probe {
    Plain,
    Traversal,
    Encoded,
    Long,
    Control,
    ManyDimensions,
}

fn probes(template: &str) -> Vec<Probe> {
    let has_params = template.split('/').any(|s| s.starts_with('{') && s != "{id}");
    if has_params {
        vec![Probe::Plain, Probe::Traversal, Probe::Encoded, Probe::Long, Probe::Control, Probe::ManyDimensions]
    } else {
        vec![Probe::Plain]
    }
}

fn probe_value(probe: Probe, rest: bool) -> String {
    match probe {
        Probe::Plain => "x".to_owned(),
        Probe::Traversal if rest => "../../../../etc/passwd".to_owned(),
        Probe::Traversal => "..".to_owned(),
        Probe::Encoded => "%2e%2e%2f%2e%2e%2fetc%2fpasswd%00".to_owned(),
        Probe::Long => "a".repeat(16 << 10),
        Probe::Control => "%0d%0aset-cookie:%20x".to_owned(),
        Probe::ManyDimensions if rest => format!("x/{}", vec!["99999999999999999999"; 64].join(".")),
        Probe::ManyDimensions => "18446744073709551615".to_owned(),
    }
}

fn instantiate(template: &str, dataset: &str, probe: &Probe) -> String {
    template
        .split('/')
        .map(|part| match part {
            "{id}" => dataset.to_owned(),
            p if p.starts_with("{*") => probe_value(*probe, true),
            p if p.starts_with('{') => probe_value(*probe, false),
            p => p.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn truncate(uri: &str) -> String {
    if uri.len() <= 120 {
        return uri.to_owned();
    }
    let cut = (0..=120).rev().find(|&i| uri.is_char_boundary(i)).unwrap_or(0);
    format!("{}... ({} bytes)", &uri[..cut], uri.len())
}

fn check_response(what: &str, response: &TestResponse, failures: &mut Vec<String>) {
    if !(100..=599).contains(&response.status) {
        failures.push(format!("{what}: status {} is not an HTTP status", response.status));
    }
    for (name, value) in &response.headers {
        let valid_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        let valid_value = value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
        if !valid_name || !valid_value {
            failures.push(format!("{what}: invalid header {name:?}: {value:?}"));
        }
    }
    let is_head = what.starts_with("HEAD");
    if response.status >= 400 && !is_head {
        let json = response.header("content-type").is_some_and(|t| t.starts_with("application/json"));
        if !json || response.error_message().is_none() {
            failures.push(format!(
                "{what}: error {} is not {{\"error\": \"...\"}} JSON: {}",
                response.status,
                truncate(&response.text())
            ));
        }
    }
}

fn error_response(status: u16, message: &str) -> TestResponse {
    TestResponse {
        status,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: serde_json::json!({ "error": message }).to_string().into_bytes(),
    }
}
