//! The stable-ABI plugin SDK of cloudify: the only crate the host and its plugins share.
//!
//! A plugin is a Rust `cdylib` that exports one root module ([`abi::PluginMod`]). The host
//! `dlopen`s every `libcloudify_plugin_*.so` it finds, checks that the plugin was built
//! against a compatible SDK (abi_stable compares the version and the layout of every type
//! reachable from the root module), then calls `init` with a [`Host`] handle. `init`
//! answers a [`Plugin`] (sent as an [`abi::PluginDecl`]): the plugin's routes (xpublish's
//! `app_router` and `dataset_router`) and optionally a dataset source ([`Provider`],
//! xpublish's `get_datasets` / `get_dataset` hooks).
//!
//! # Writing a plugin
//!
//! ```ignore
//! use cloudify_sdk::{Host, Plugin, Request, Response, Route, Scope};
//!
//! cloudify_sdk::declare_plugin!(name: "hello", init: init);
//!
//! fn init(_host: Host) -> Plugin {
//!     Plugin::new("hello", env!("CARGO_PKG_VERSION"))
//!         .route(Route::get(Scope::App, "/hello", hello).summary("Say hello"))
//! }
//!
//! async fn hello(_host: Host, _req: Request) -> Response {
//!     Response::text(200, "hello")
//! }
//! ```
//!
//! and, in the crate that is built as the `cdylib` (it may be the same crate):
//!
//! ```ignore
//! cloudify_sdk::export_plugin!(plugin_module);
//! ```
//!
//! Handlers are plain `async fn(Host, Request) -> Response`; [`handler`] wraps them so that a
//! panic, in the synchronous part or inside the future, becomes a `500 {"error": ...}` response
//! instead of aborting the server. The safe helpers of [`HostExt`] spare plugin authors the
//! `RString` types of the raw ABI; [`RVec`] is the byte buffer that crosses without a copy.
//!
//! # Testing a plugin
//!
//! With the feature `testing` (as a dev-dependency), `testing::MockHost` loads a plugin
//! into an in-memory host with datasets built from arrays, routes requests to its handlers
//! as the server does, and runs the conformance checks every plugin must pass
//! (`TestPlugin::assert_conformance`).
//!
//! # Rules that follow from loading code into another process
//!
//! * A plugin has its own copy of std, tokio, the tracing subscriber and the panic hook. Do
//!   not rely on the host's tokio runtime: use the host services ([`HostExt::sleep`],
//!   [`HostExt::run_blocking`], the chunk readers) or a runtime the plugin owns.
//! * Log through [`HostExt::log`], which reaches the host's subscriber.
//! * Build plugins with `panic = "unwind"` (the default), so that panics can be caught.
//! * Metadata crosses the boundary as JSON text (schema: [`meta`]), never as Rust structs.
//!
//! # Versioning policy
//!
//! The package version of this crate is the ABI version, `0.x.y`:
//!
//! * `y` is bumped for prefix-compatible additions only: a new field appended after the
//!   last prefix field of [`abi::PluginMod`]. Plugins built against `0.x.y` load in any host
//!   `0.x.z` with `z >= y` that knows the fields they use; a host checks with the prefix
//!   accessors. Not a method appended to a `#[sabi_trait]`, although abi_stable documents it:
//!   its layout check then refuses plugins built before (abi_stable#118; the frozen-SDK test
//!   caught it), so that is a bump of `x`.
//! * Within `0.x`, `Request`, `RouteSpec` and `PluginDecl` grow through their `extensions`
//!   (name/value pairs both sides ignore when unknown); a key becomes a field at the next bump.
//! * `x` is bumped for anything else (a changed struct, a new enum variant, a changed
//!   signature). Every plugin must then be rebuilt; the host refuses older ones with one line
//!   naming the file, the expected and the found version.
//!
//! Versions:
//!
//! * 0.3.1: [`ErrorKind::UNAVAILABLE`] (503): data not readable yet, a file being staged from
//!   a slow tier; the host adds `Retry-After` to a plugin's 503 that stems from it (plugins
//!   built before answer 500 for the kind).
//! * 0.3.0: a dataset provider also answers where a chunk's stored bytes are and the bytes
//!   themselves (`DatasetSource::chunk_reference`, `read_raw_chunk`; [`Provider::chunk_ref`]
//!   and [`Provider::read_raw_chunk`] with defaults), so `/kerchunk` and `kerchunk.json` work
//!   over datasets of plugins (icechunk repositories).
//! * 0.2.0: the raw ABI (the `#[sabi_trait]`s, `PluginMod`, `abi_stable`, `async_ffi`) moved
//!   under [`abi`]; the crate root is the safe layer. [`Response::stream`] replaces
//!   hand-built `BodyStream`s and catches panics while producing the body; the host's services
//!   catch their own panics. [`HostExt::metadata_json`]. [`Error`] carries the plugin's own
//!   refusals (`Error::not_found`, `Error::new(kind, ...)`) and is the one conversion to an
//!   error answer; [`ErrorKind`] gained `PRECONDITION_FAILED` (412) and
//!   `RANGE_NOT_SATISFIABLE` (416) (a kind is a number: older hosts answer 500 for it).
//!   `Request`, `RouteSpec` and `PluginDecl` carry `extensions` (name/value pairs), so what
//!   they must say next can be added within 0.2 without a bump.
//!   Feature `testing` (`MockHost`, the conformance suite): no ABI change.
//! * 0.1.0: the first ABI.

#![warn(missing_docs, unreachable_pub)]
#![deny(unsafe_code)]

// abi_stable's derives and #[sabi_trait] expand to unsafe impls (vtables, Send/Sync);
// that generated code is the only unsafe in the SDK.
#[allow(unsafe_code)]
// ...and to impls inside generated consts, which this lint flags on recent rustc.
#[allow(non_local_definitions)]
pub mod abi;
mod error;
mod handler;
mod host;
mod http;
pub mod hyperslab;
pub mod meta;
mod plugin;
mod provider;
pub mod strings;
#[cfg(feature = "testing")]
pub mod testing;

pub use abi::{ChunkRef, ErrorKind, FileStat, Host, HostError, LogLevel, Request, Response, Scope};
/// The byte buffer that crosses the boundary without a copy (chunk bytes, bodies).
pub use abi_stable::std_types::RVec;
pub use error::{Error, Result};
pub use handler::handler;
pub use host::HostExt;
pub use http::BASE_URL_HEADER;
pub use plugin::{InitOutcome, Plugin, Route};
pub use provider::{dataset_source, Provider};

/// The SDK (= ABI) version this crate was compiled as.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

#[doc(hidden)]
pub mod __private {
    pub use crate::plugin::guard_init;
}

/// Declares a plugin: generates `pub fn plugin_module() -> abi::PluginModRef`.
///
/// `init` is any `fn(Host) -> impl InitOutcome`: a [`Plugin`], or `Result<Plugin, E>` whose
/// `Err` refuses the plugin with that reason; a panic inside it refuses the plugin with the
/// panic message instead of aborting the host.
#[macro_export]
macro_rules! declare_plugin {
    (name: $name:expr, init: $init:path $(,)?) => {
        /// The root module of this plugin, for `export_plugin!` or a statically linked host.
        pub fn plugin_module() -> $crate::abi::PluginModRef {
            use $crate::abi::abi_stable::prefix_type::PrefixTypeTrait;
            extern "C" fn __name() -> $crate::abi::abi_stable::std_types::RStr<'static> {
                $crate::abi::abi_stable::std_types::RStr::from_str($name)
            }
            extern "C" fn __init(
                host: $crate::Host,
            ) -> $crate::abi::abi_stable::std_types::RResult<
                $crate::abi::PluginDecl,
                $crate::abi::abi_stable::std_types::RString,
            > {
                $crate::__private::guard_init($name, move || $init(host))
            }
            $crate::abi::PluginMod { name: __name, init: __init }.leak_into_prefix()
        }
    };
}

/// Exports a plugin's root module from a `cdylib`: `export_plugin!(my_plugin::plugin_module);`.
///
/// The crate must also depend on `abi_stable` (same version as the SDK): the attribute this
/// expands to names it by absolute path. Use it in exactly one crate per shared library.
/// Plugins that are also linked statically into the host keep their logic in an rlib and
/// export it from a one-line shim crate, because the exported symbol name is fixed and two
/// plugins linked together would clash.
#[macro_export]
macro_rules! export_plugin {
    ($module_fn:path) => {
        #[$crate::abi::abi_stable::export_root_module]
        pub fn __cloudify_root_module() -> $crate::abi::PluginModRef {
            $module_fn()
        }
    };
}
