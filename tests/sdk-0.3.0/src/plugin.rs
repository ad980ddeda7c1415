//! Building a [`PluginDecl`] without touching the ABI types.

use std::{
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
};

use abi_stable::std_types::{RNone, RResult, RSome, RString, RVec};

use crate::{
    abi::{DatasetSourceBox, Host, PluginDecl, Request, Response, RouteSpec, Scope},
    handler::{handler, panic_message},
};

/// A plugin's declaration under construction: name, version, routes, dataset source.
pub struct Plugin {
    name: String,
    version: String,
    description: String,
    routes: Vec<RouteSpec>,
    dataset_source: Option<DatasetSourceBox>,
}

impl Plugin {
    /// A plugin called `name` (unique among loaded plugins) at `version`.
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            description: String::new(),
            routes: Vec::new(),
            dataset_source: None,
        }
    }

    /// One line on what the plugin offers (shown by `cloudify plugins` and `/plugins`).
    pub fn description(mut self, text: &str) -> Self {
        text.clone_into(&mut self.description);
        self
    }

    /// Adds a route.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route.0);
        self
    }

    /// Makes this plugin a dataset provider (see [`crate::dataset_source`]).
    pub fn dataset_source(mut self, source: DatasetSourceBox) -> Self {
        self.dataset_source = Some(source);
        self
    }
}

impl From<Plugin> for PluginDecl {
    fn from(plugin: Plugin) -> Self {
        PluginDecl {
            name: plugin.name.into(),
            version: plugin.version.into(),
            description: plugin.description.into(),
            routes: plugin.routes.into(),
            dataset_source: match plugin.dataset_source {
                Some(source) => RSome(source),
                None => RNone,
            },
            extensions: RVec::new(),
        }
    }
}

/// One route: method, scope, path, handler, and its OpenAPI description.
pub struct Route(RouteSpec);

impl Route {
    /// A route answering `method` at `path` (axum syntax: `/zarr/{*key}`) within `scope`.
    pub fn new<F, Fut>(method: &str, scope: Scope, path: &str, f: F) -> Self
    where
        F: Fn(Host, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        Self(RouteSpec {
            method: method.to_ascii_uppercase().into(),
            path: path.into(),
            scope,
            summary: RString::new(),
            content_type: "application/json".into(),
            openapi: RString::new(),
            handler: handler(f),
            extensions: RVec::new(),
        })
    }

    /// A `GET` (and `HEAD`) route.
    pub fn get<F, Fut>(scope: Scope, path: &str, f: F) -> Self
    where
        F: Fn(Host, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        Self::new("GET", scope, path, f)
    }

    /// A `POST` route.
    pub fn post<F, Fut>(scope: Scope, path: &str, f: F) -> Self
    where
        F: Fn(Host, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        Self::new("POST", scope, path, f)
    }

    /// The one-line summary in `/openapi.json`.
    pub fn summary(mut self, text: &str) -> Self {
        self.0.summary = text.into();
        self
    }

    /// The media type of a successful response (default `application/json`).
    pub fn content_type(mut self, media_type: &str) -> Self {
        self.0.content_type = media_type.into();
        self
    }

    /// A full OpenAPI operation object (JSON text) replacing the one the host derives.
    pub fn openapi(mut self, operation_json: &str) -> Self {
        self.0.openapi = operation_json.into();
        self
    }
}

/// What a plugin's `init` may return: a declaration, or a reason to refuse the plugin
/// (e.g. an invalid config table).
pub trait InitOutcome {
    /// The declaration, or the refusal reason.
    ///
    /// # Errors
    /// The plugin's own reason for refusing to load.
    fn into_decl(self) -> Result<PluginDecl, String>;
}

impl InitOutcome for PluginDecl {
    fn into_decl(self) -> Result<PluginDecl, String> {
        Ok(self)
    }
}

impl InitOutcome for Plugin {
    fn into_decl(self) -> Result<PluginDecl, String> {
        Ok(self.into())
    }
}

impl<D: InitOutcome, E: std::fmt::Display> InitOutcome for Result<D, E> {
    fn into_decl(self) -> Result<PluginDecl, String> {
        self.map_err(|err| err.to_string()).and_then(InitOutcome::into_decl)
    }
}

/// Runs a plugin's `init` with panics caught; used by [`crate::declare_plugin!`].
pub fn guard_init<D, F>(name: &str, init: F) -> RResult<PluginDecl, RString>
where
    D: InitOutcome,
    F: FnOnce() -> D,
{
    match catch_unwind(AssertUnwindSafe(|| init().into_decl())) {
        Ok(Ok(decl)) => RResult::ROk(decl),
        Ok(Err(reason)) => RResult::RErr(format!("plugin {name}: {reason}").into()),
        Err(panic) => RResult::RErr(format!("plugin {name} panicked in init: {}", panic_message(&*panic)).into()),
    }
}
