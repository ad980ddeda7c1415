//! The types that cross the plugin boundary. All are `#[repr(C)]` and `StableAbi`, so the host
//! verifies their layout when it loads a plugin.
//!
//! Plugins rarely need this module: the crate root offers the safe layer over it ([`crate::Plugin`],
//! [`crate::handler`], [`crate::HostExt`], [`Response::stream`]), which keeps panics on the
//! plugin's side. The raw traits here are for the host, the export macros and tests; a plugin
//! that implements one of them itself must not let a panic escape it (the process aborts).

pub use abi_stable;
pub use async_ffi;

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RArc, RBox, ROption, RResult, RStr, RString, RVec, Tuple2},
    StableAbi,
};
use async_ffi::FfiFuture;

/// A header, path parameter or query pair.
pub type KV = Tuple2<RString, RString>;

/// An HTTP request as a plugin handler sees it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default)]
pub struct Request {
    /// `GET`, `HEAD`, `POST`, ...
    pub method: RString,
    /// The full request path, e.g. `/datasets/air/zarr/.zmetadata`.
    pub path: RString,
    /// Matched path parameters, e.g. `("id", "air")`, `("key", ".zmetadata")`.
    pub params: RVec<KV>,
    /// The raw query string without `?`; the plugin parses it.
    pub query: RString,
    /// Headers with lower-case names.
    pub headers: RVec<KV>,
    /// The request body.
    pub body: RVec<u8>,
    /// What the host tells a handler beyond the fields above, by name: the way this struct
    /// grows within an ABI version (a new piece of information is a key first, a field at the
    /// next bump). Handlers ignore keys they do not know.
    pub extensions: RVec<KV>,
}

/// An HTTP response from a plugin.
#[repr(C)]
#[derive(StableAbi)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: RVec<KV>,
    /// The body: bytes, or a stream the host pulls from.
    pub body: Body,
}

/// A response body.
#[repr(C, u8)]
#[derive(StableAbi)]
pub enum Body {
    /// The whole body at once; the host sends it without copying.
    Bytes(RVec<u8>),
    /// A body produced piece by piece (large downloads).
    Stream(BodyStreamBox),
}

/// A pull-based response body stream.
#[sabi_trait]
pub trait BodyStream: Send {
    /// The next piece of the body, or `None` at the end.
    #[sabi(last_prefix_field)]
    fn next_chunk(&mut self) -> FfiFuture<ROption<RVec<u8>>>;
}

/// An owned [`BodyStream`] trait object.
pub type BodyStreamBox = BodyStream_TO<'static, RBox<()>>;

/// A route handler. Build one with [`crate::handler`], which catches panics.
#[sabi_trait]
pub trait Handler: Send + Sync {
    /// Answers one request.
    #[sabi(last_prefix_field)]
    fn call(&self, host: Host, req: Request) -> FfiFuture<Response>;
}

/// An owned [`Handler`] trait object.
pub type HandlerBox = Handler_TO<'static, RBox<()>>;

/// Where a route is mounted.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Mounted as is, like xpublish's `app_router` (e.g. `/intake.yaml`).
    App,
    /// Mounted under `/datasets/{id}`, like xpublish's `dataset_router`; the host answers 404
    /// for an unknown `{id}` before the handler runs.
    Dataset,
}

/// One route a plugin offers.
#[repr(C)]
#[derive(StableAbi)]
pub struct RouteSpec {
    /// HTTP method; `GET` routes also answer `HEAD`.
    pub method: RString,
    /// Path in axum syntax (`/zarr/{*key}`), relative to the scope's mount point.
    pub path: RString,
    /// Where the route is mounted.
    pub scope: Scope,
    /// One line for the OpenAPI document.
    pub summary: RString,
    /// Media type of a successful response.
    pub content_type: RString,
    /// Optional OpenAPI operation object as JSON text (empty: the host derives one).
    pub openapi: RString,
    /// The handler.
    pub handler: HandlerBox,
    /// What a plugin declares about the route beyond the fields above, by name (the way this
    /// struct grows within an ABI version). The host ignores keys it does not know.
    pub extensions: RVec<KV>,
}

/// What a plugin declares at start-up.
#[repr(C)]
#[derive(StableAbi)]
pub struct PluginDecl {
    /// Unique plugin name (`zarr`, `stac`, ...).
    pub name: RString,
    /// The plugin's own version.
    pub version: RString,
    /// One line on what the plugin offers.
    pub description: RString,
    /// Routes to mount.
    pub routes: RVec<RouteSpec>,
    /// Datasets this plugin provides (xpublish `get_datasets`/`get_dataset`).
    pub dataset_source: ROption<DatasetSourceBox>,
    /// What a plugin declares about itself beyond the fields above, by name (the way this
    /// struct grows within an ABI version). The host ignores keys it does not know.
    pub extensions: RVec<KV>,
}

/// The kind of a [`HostError`]. Kept as a plain number so new kinds need no ABI break.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorKind(pub u8);

impl ErrorKind {
    /// No such dataset, variable or chunk.
    pub const NOT_FOUND: Self = Self(1);
    /// The request is malformed (bad chunk key, wrong rank, bad selection).
    pub const INVALID_INPUT: Self = Self(2);
    /// The request would read or produce more than the configured limit.
    pub const TOO_LARGE: Self = Self(3);
    /// The source cannot answer this kind of request (e.g. no byte-range references).
    pub const UNSUPPORTED: Self = Self(4);
    /// The source failed (unreadable or corrupt file, upstream error).
    pub const INTERNAL: Self = Self(5);
    /// A precondition of the request (`If-Match`, `If-Unmodified-Since`) does not hold.
    pub const PRECONDITION_FAILED: Self = Self(6);
    /// The requested byte range lies outside the resource.
    pub const RANGE_NOT_SATISFIABLE: Self = Self(7);
    /// The data lies where the operator did not allow reads (e.g. a virtual chunk outside
    /// the authorized containers).
    pub const FORBIDDEN: Self = Self(8);
    /// The data is not readable yet (a file being staged from tape): ask again later.
    pub const UNAVAILABLE: Self = Self(9);

    /// The HTTP status this kind maps to: the one table from error kinds to statuses, used
    /// by the host and by plugins. Kinds this SDK does not know are 500.
    pub fn status(self) -> u16 {
        match self {
            Self::NOT_FOUND => 404,
            Self::INVALID_INPUT => 400,
            Self::TOO_LARGE => 413,
            Self::UNSUPPORTED => 409,
            Self::PRECONDITION_FAILED => 412,
            Self::RANGE_NOT_SATISFIABLE => 416,
            Self::FORBIDDEN => 403,
            Self::UNAVAILABLE => 503,
            _ => 500,
        }
    }
}

/// An error answered by the host (or a dataset source) across the boundary.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct HostError {
    /// What went wrong, as a category.
    pub kind: ErrorKind,
    /// A message fit for the client for 4xx kinds, for the log otherwise.
    pub message: RString,
}

impl HostError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: RString::from(message.into()) }
    }
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HostError {}

/// Names one chunk of one variable of one dataset.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct ChunkKey {
    /// Dataset id.
    pub dataset: RString,
    /// Variable (array) name.
    pub variable: RString,
    /// Chunk grid index, one entry per dimension (empty for scalars).
    pub index: RVec<u64>,
}

/// A hyperslab of one variable: `shape` elements from `start`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// Dataset id.
    pub dataset: RString,
    /// Variable (array) name.
    pub variable: RString,
    /// First element, one entry per dimension.
    pub start: RVec<u64>,
    /// Number of elements, one entry per dimension.
    pub shape: RVec<u64>,
}

/// Where the stored bytes of a chunk are.
#[repr(C, u8)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub enum ChunkRef {
    /// `length` bytes at `offset` of the file or object at `url` (a path or a URL).
    Range {
        /// Path or URL.
        url: RString,
        /// Byte offset.
        offset: u64,
        /// Byte count.
        length: u64,
    },
    /// The encoded bytes themselves (small chunks, in-memory sources).
    Inline(RVec<u8>),
    /// Never written: every element is the fill value.
    Missing,
    /// Computed on request (aggregations, derived variables): no stored bytes.
    Computed,
}

/// Size and modification time of a dataset's source file.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// Bytes.
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub modified: i64,
}

/// Log levels for [`crate::HostExt::log`].
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Errors.
    Error,
    /// Warnings.
    Warn,
    /// Information.
    Info,
    /// Debugging detail.
    Debug,
    /// Very fine detail.
    Trace,
}

/// A unit of blocking work the host runs on its blocking thread pool.
#[sabi_trait]
pub trait BlockingTask: Send {
    /// Runs the task once; it must not panic (the SDK's wrapper catches panics).
    #[sabi(last_prefix_field)]
    fn run(&mut self);
}

/// An owned [`BlockingTask`] trait object.
pub type BlockingTaskBox = BlockingTask_TO<'static, RBox<()>>;

/// Services the host offers to every plugin (xpublish: the `Dependencies` object).
///
/// Each plugin receives its own handle, which knows the plugin's name and config table.
/// Decoded chunks and regions are little-endian, C order, the variable's full chunk shape
/// (edge chunks padded with the fill value).
#[sabi_trait]
pub trait HostApi: Send + Sync + Clone {
    /// Ids of every dataset served, host-configured and plugin-provided.
    fn list_datasets(&self) -> RVec<RString>;
    /// The dataset's metadata as JSON text ([`crate::meta::DatasetMeta`]).
    fn dataset_metadata(&self, dataset: RStr<'_>) -> RResult<RString, HostError>;
    /// One chunk decoded to little-endian C-order values. The host's decoded-chunk cache
    /// answers it when it holds the chunk but does not keep it for this read: a plugin that
    /// serves chunks keeps what it makes of them (regions go through the cache).
    fn read_chunk(&self, key: ChunkKey) -> FfiFuture<RResult<RVec<u8>, HostError>>;
    /// One chunk as stored, still encoded with the variable's source codecs.
    fn read_raw_chunk(&self, key: ChunkKey) -> FfiFuture<RResult<RVec<u8>, HostError>>;
    /// Where one chunk's stored bytes are.
    fn chunk_reference(&self, key: ChunkKey) -> FfiFuture<RResult<ChunkRef, HostError>>;
    /// A hyperslab across chunks, decoded to little-endian C-order values.
    fn read_region(&self, region: Region) -> FfiFuture<RResult<RVec<u8>, HostError>>;
    /// This plugin's table from the config file, as JSON text (`{}` when absent).
    fn plugin_config(&self) -> RString;
    /// The name of the plugin this handle was given to.
    fn plugin_name(&self) -> RString;
    /// Writes a line to the host's log, tagged with the plugin name.
    fn write_log(&self, level: LogLevel, message: RStr<'_>);
    /// Runs `task` on the host's blocking pool; resolves when it has finished.
    fn spawn_blocking(&self, task: BlockingTaskBox) -> FfiFuture<()>;
    /// Resolves after `ms` milliseconds (the plugin's own tokio has no timer driver).
    #[sabi(last_prefix_field)]
    fn sleep_ms(&self, ms: u64) -> FfiFuture<()>;
    /// Paths or URLs of the files a dataset's stored chunks are read from (what chunk
    /// references name); empty for datasets without files.
    fn source_files(&self, dataset: RStr<'_>) -> RResult<RVec<RString>, HostError>;
    /// Size and modification time of `file`, one of the dataset's source files.
    fn stat_source_file(&self, dataset: RStr<'_>, file: RStr<'_>) -> FfiFuture<RResult<FileStat, HostError>>;
    /// `length` bytes at `offset` of `file`, one of the dataset's source files.
    fn read_source_file(
        &self,
        dataset: RStr<'_>,
        file: RStr<'_>,
        offset: u64,
        length: u64,
    ) -> FfiFuture<RResult<RVec<u8>, HostError>>;
    /// Names of the plugins loaded, in load order; complete once the host has loaded them
    /// all (so from any request handler, not from `init`).
    fn loaded_plugins(&self) -> RVec<RString>;
}

/// The handle to the host's services that every handler receives.
pub type Host = HostApi_TO<'static, RArc<()>>;

/// A dataset provider (xpublish's `get_datasets` / `get_dataset` hooks).
#[sabi_trait]
pub trait DatasetSource: Send + Sync {
    /// Ids this provider serves.
    fn list(&self) -> RVec<RString>;
    /// Metadata of one dataset as JSON text ([`crate::meta::DatasetMeta`]).
    fn metadata(&self, dataset: RStr<'_>) -> RResult<RString, HostError>;
    /// One chunk decoded to little-endian C-order values.
    fn read_chunk(&self, key: ChunkKey) -> FfiFuture<RResult<RVec<u8>, HostError>>;
    /// Where one chunk's stored bytes are (since 0.3.0).
    fn chunk_reference(&self, key: ChunkKey) -> FfiFuture<RResult<ChunkRef, HostError>>;
    /// One chunk's stored bytes, encoded as the metadata's `codecs` declare (since 0.3.0).
    #[sabi(last_prefix_field)]
    fn read_raw_chunk(&self, key: ChunkKey) -> FfiFuture<RResult<RVec<u8>, HostError>>;
}

/// An owned [`DatasetSource`] trait object.
pub type DatasetSourceBox = DatasetSource_TO<'static, RBox<()>>;

/// The root module every plugin exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// The plugin's name, readable before `init` (for enable/disable lists).
    pub name: extern "C" fn() -> RStr<'static>,
    /// Builds the plugin's declaration; `Err` refuses the plugin with that reason.
    #[sabi(last_prefix_field)]
    pub init: extern "C" fn(host: Host) -> RResult<PluginDecl, RString>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "cloudify_plugin";
    const NAME: &'static str = "cloudify plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
