//! The router: built-in routes, plugin routes, and the middleware around them.

use std::{
    collections::HashSet,
    convert::Infallible,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Arc,
};

use axum::{
    body::Body,
    extract::{rejection::RawPathParamsRejection, ConnectInfo, MatchedPath, RawPathParams, Request},
    http::{header, HeaderName, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{on, MethodFilter},
    Router,
};
use bytes::Bytes;
use cloudify_sdk::{
    abi::{HandlerBox, KV},
    Host, Scope,
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, Any, CorsLayer},
    request_id::{PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};

use crate::{
    budget::{sent_with, Held, Release},
    config::ServerConfig,
    error::{json_error, request_id, shape_error, AppError, MakeRequestIds, REQUEST_ID},
    links::{Links, BASE_URL_HEADER},
    loader::LoadedPlugin,
    metrics::Metrics,
    observe::Observers,
    openapi::{self, RouteDoc},
    registry::Registry,
    routes,
    usage::Usage,
};

/// What a loaded plugin looks like from `/plugins` and `/versions`.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// Unique name.
    pub name: String,
    /// Its own version.
    pub version: String,
    /// One line on what it offers.
    pub description: String,
    /// `static` or the name of the file it was loaded from (not its folder).
    pub origin: String,
    /// `METHOD /path` of every route it mounted.
    pub routes: Vec<String>,
    /// Whether it provides datasets.
    pub provides_datasets: bool,
}

/// Shared state of the built-in routes.
#[derive(Clone)]
pub struct AppState {
    /// Every dataset served.
    pub registry: Arc<Registry>,
    /// Loaded plugins.
    pub plugins: Arc<Vec<PluginInfo>>,
    /// The OpenAPI document, serialised once.
    pub openapi: Arc<String>,
    /// How base URLs are decided (links in generated files).
    pub links: Arc<Links>,
    /// Requests and bytes per day, dataset and endpoint; `None` when turned off.
    pub usage: Option<Arc<Usage>>,
    /// The Prometheus metrics; `None` when not installed.
    pub metrics: Option<Arc<Metrics>>,
    /// The plugins' own metrics (`/metrics/{plugin}`), appended to `/metrics`.
    pub plugin_metrics: PluginMetrics,
}

/// The routes where plugins expose their own metrics (`GET /metrics/{plugin}`, e.g. the zarr
/// plugin's encoded-chunk cache): a plugin's counters live in its own recorder, out of the
/// host's reach but through its handler.
#[derive(Clone, Default)]
pub struct PluginMetrics(Arc<Vec<(String, Arc<PluginRoute>)>>);

impl PluginMetrics {
    /// Every plugin's exposition, one after the other (a plugin that fails is left out).
    pub(crate) async fn render(&self) -> String {
        let mut text = String::new();
        for (path, route) in self.0.iter() {
            if let Some(exposition) = route.scrape(path).await {
                text.push_str(&exposition);
            }
        }
        text
    }
}

/// The router, and the problems found while building it (one line each).
pub struct App {
    /// The router, ready to serve.
    pub router: Router,
    /// Conflicting or invalid plugin routes that were not mounted.
    pub warnings: Vec<String>,
}

/// Builds the router over `registry` with the routes of `plugins`, whose links follow `links`,
/// each answer told to `observers` (their `plugins` map is filled in here).
pub fn app(
    registry: Arc<Registry>,
    plugins: Vec<LoadedPlugin>,
    server: &ServerConfig,
    links: Links,
    mut observers: Observers,
) -> App {
    let links = Arc::new(links);
    let mut docs = routes::docs();
    let mut taken: HashSet<(String, String)> = docs.iter().map(|d| (d.method.clone(), route_shape(&d.path))).collect();
    let mut router: Router<AppState> = routes::router();
    let mut warnings = Vec::new();
    let mut infos = Vec::new();
    let mut plugin_metrics = Vec::new();
    for plugin in plugins {
        let mut mounted = Vec::new();
        for spec in plugin.routes {
            let method = spec.method.as_str().to_ascii_uppercase();
            let path = match spec.scope {
                Scope::App => spec.path.to_string(),
                Scope::Dataset => format!("/datasets/{{id}}{}", spec.path),
            };
            let refuse = |why: String| format!("plugin {}: route {method} {path} not mounted: {why}", plugin.name);
            let Some(filter) = method_filter(&method) else {
                warnings.push(refuse("unsupported method".to_owned()));
                continue;
            };
            if !path.starts_with('/') {
                warnings.push(refuse("path must start with '/'".to_owned()));
                continue;
            }
            if !taken.insert((method.clone(), route_shape(&path))) {
                warnings.push(refuse("conflicts with a route already mounted".to_owned()));
                continue;
            }
            let target = Arc::new(PluginRoute {
                handler: spec.handler,
                host: plugin.host.clone(),
                scope: spec.scope,
                registry: Arc::clone(&registry),
                max_body: server.max_request_body,
                links: Arc::clone(&links),
            });
            if spec.scope == Scope::App && method == "GET" && path == format!("/metrics/{}", plugin.name) {
                plugin_metrics.push((path.clone(), Arc::clone(&target)));
            }
            let handler = move |params: Result<RawPathParams, RawPathParamsRejection>, req: Request| {
                let target = Arc::clone(&target);
                async move {
                    match params {
                        Ok(params) => target.call(params, req).await,
                        Err(rejection) => AppError::BadPath(rejection.body_text()).into_response(),
                    }
                }
            };
            // axum panics on paths its matcher cannot hold (a catch-all in the middle, two
            // parameter names at one position): try on a copy, refuse the route if it panics.
            match catch_unwind(AssertUnwindSafe(|| router.clone().route(&path, on(filter, handler)))) {
                Ok(next) => router = next,
                Err(_) => {
                    warnings.push(refuse("rejected by the router (invalid or overlapping path)".to_owned()));
                    continue;
                }
            }
            docs.push(RouteDoc {
                method: method.clone(),
                path: path.clone(),
                summary: spec.summary.to_string(),
                content_type: spec.content_type.to_string(),
                tag: plugin.name.clone(),
                operation: Some(spec.openapi.to_string()).filter(|s| !s.is_empty()),
            });
            mounted.push(format!("{method} {path}"));
        }
        infos.push(PluginInfo {
            name: plugin.name,
            version: plugin.version,
            description: plugin.description,
            origin: plugin.origin.public_name(),
            routes: mounted,
            provides_datasets: plugin.provides_datasets,
        });
    }
    let plugin_page = taken.contains(&("GET".to_owned(), route_shape(routes::DATASET_PAGES[0])));
    for path in routes::DATASET_PAGES {
        if taken.insert(("GET".to_owned(), route_shape(path))) {
            let (answer, doc) = routes::dataset_page(path, plugin_page);
            router = router.route(path, answer);
            docs.push(doc);
        }
    }
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let openapi = openapi::document(&docs).to_json().unwrap_or_else(|_| "{}".to_owned());
    let state_auth = registry.auth();
    observers.plugins = docs.iter().map(|doc| (doc.path.clone(), doc.tag.clone())).collect();
    let state = AppState {
        registry,
        plugins: Arc::new(infos),
        openapi: Arc::new(openapi),
        links,
        usage: observers.usage.clone(),
        metrics: observers.metrics.clone(),
        plugin_metrics: PluginMetrics(Arc::new(plugin_metrics)),
    };
    let router = router.fallback(fallback).with_state(state).layer(axum::middleware::from_fn(refuse_own_requests));
    let router = match state_auth {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(auth, crate::auth::guard)),
        None => router,
    };
    let router = router
        .layer(axum::middleware::from_fn(crate::budget::hold_reads))
        .layer(CatchPanicLayer::custom(|_| json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")))
        .layer(axum::middleware::from_fn_with_state(Arc::new(Admission::new(server)), admit));
    // Told outside admission: its refusals are answers too.
    let router = router
        .layer(axum::middleware::from_fn_with_state(Arc::new(observers), crate::observe::observe))
        .layer(cors(&server.cors_allow_origins))
        // One structured line per request (status, latency) inside a span naming the request,
        // its id and the route it matched.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
                    let route = req.extensions().get::<MatchedPath>().map_or("", MatchedPath::as_str);
                    tracing::info_span!("request", id, method = %req.method(), uri = %req.uri(), route)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static(REQUEST_ID)))
        .layer(SetRequestIdLayer::new(HeaderName::from_static(REQUEST_ID), MakeRequestIds));
    App { router, warnings }
}

/// A path with parameter names erased: `/datasets/{id}/x` and `/datasets/{ds}/x` collide.
fn route_shape(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg.strip_prefix("{*") {
            Some(_) => "{*}",
            None if seg.starts_with('{') => "{}",
            None => seg,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn method_filter(method: &str) -> Option<MethodFilter> {
    Some(match method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "DELETE" => MethodFilter::DELETE,
        "PATCH" => MethodFilter::PATCH,
        "OPTIONS" => MethodFilter::OPTIONS,
        "HEAD" => MethodFilter::HEAD,
        _ => return None,
    })
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer =
        CorsLayer::new().allow_methods([Method::GET, Method::HEAD, Method::POST, Method::OPTIONS]).allow_headers(Any);
    if origins.iter().any(|o| o == "*") {
        return layer.allow_origin(Any).expose_headers(Any);
    }
    let list: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    layer.allow_origin(AllowOrigin::list(list))
}

/// Requests handled at once and how long each may take to answer.
struct Admission {
    running: tokio::sync::Semaphore,
    timeout: std::time::Duration,
}

impl Admission {
    fn new(server: &ServerConfig) -> Self {
        Self {
            running: tokio::sync::Semaphore::new(server.max_concurrent_requests.max(1)),
            timeout: std::time::Duration::from_secs(server.request_timeout_secs.max(1)),
        }
    }
}

/// Sheds load beyond `max_concurrent_requests` (503 + `Retry-After`, at once, instead of a
/// queue that grows without bound), answers 503 for a request that takes longer than
/// `request_timeout_secs` to start its response, and gives every error answer its shape
/// ([`shape_error`]).
async fn admit(
    axum::extract::State(admission): axum::extract::State<Arc<Admission>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let id = request_id(&req);
    let response = match admission.running.try_acquire() {
        Err(_) => {
            let mut response = json_error(StatusCode::SERVICE_UNAVAILABLE, "the server is busy: retry shortly");
            response.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
            response
        }
        Ok(_permit) => match tokio::time::timeout(admission.timeout, next.run(req)).await {
            Ok(response) => response,
            Err(_) => json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no answer within {} s", admission.timeout.as_secs()),
            ),
        },
    };
    shape_error(response, &id).await
}

/// A request this very process sent: a reference set whose targets point back at this server
/// would otherwise make every read call the server again, without end.
async fn refuse_own_requests(req: Request, next: axum::middleware::Next) -> Response {
    let own = req
        .headers()
        .get(cloudify_store::INSTANCE_HEADER)
        .is_some_and(|v| v.as_bytes() == cloudify_store::instance_id().as_bytes());
    if own {
        return json_error(
            StatusCode::LOOP_DETECTED,
            "this request comes from this server itself (a reference set pointing back at it)",
        );
    }
    next.run(req).await
}

async fn fallback(uri: Uri) -> Response {
    AppError::RouteNotFound(uri.path().to_owned()).into_response()
}

/// One plugin route: its handler, and the host handle of the plugin that declared it.
struct PluginRoute {
    handler: HandlerBox,
    host: Host,
    scope: Scope,
    registry: Arc<Registry>,
    max_body: usize,
    links: Arc<Links>,
}

impl PluginRoute {
    async fn call(&self, params: RawPathParams, req: Request) -> Response {
        let params: Vec<KV> = params.iter().map(|(k, v)| KV::from((k.into(), v.into()))).collect();
        if self.scope == Scope::Dataset {
            let id = params.iter().find(|kv| kv.0 == "id").map(|kv| kv.1.as_str()).unwrap_or_default();
            if self.registry.get(id).is_none() {
                return AppError::unknown_dataset(&self.registry, id).into_response();
            }
        }
        let (parts, body) = req.into_parts();
        // A body on GET or HEAD means nothing: not read, let alone buffered.
        let body = if matches!(parts.method, Method::GET | Method::HEAD) {
            Bytes::new()
        } else {
            match axum::body::to_bytes(body, self.max_body).await {
                Ok(body) => body,
                Err(_) => {
                    return json_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("request body over {} bytes", self.max_body),
                    )
                }
            }
        };
        let peer = parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|info| info.0);
        let base_url = self.links.base_url(&parts.headers, peer);
        let headers =
            std::iter::once(KV::from((BASE_URL_HEADER.into(), base_url.into())))
                .chain(
                    parts.headers.iter().filter(|(name, _)| name.as_str() != BASE_URL_HEADER).filter_map(
                        |(name, value)| Some(KV::from((name.as_str().into(), value.to_str().ok()?.into()))),
                    ),
                )
                .collect();
        let request = cloudify_sdk::Request {
            method: parts.method.as_str().into(),
            path: parts.uri.path().into(),
            params: params.into(),
            query: parts.uri.query().unwrap_or_default().into(),
            headers,
            body: body.to_vec().into(),
            extensions: Default::default(),
        };
        let response = self.handler.call(self.host.clone(), request).await;
        let held = Held::current();
        let retry_after = held.as_ref().and_then(Held::retry_after_secs);
        let mut response = into_axum(response, self.registry.read_budget().until_sent(held));
        if let Some(secs) = retry_after.filter(|_| response.status() == StatusCode::SERVICE_UNAVAILABLE) {
            // The plugin passed on a refusal for a file being staged: tell the client when.
            response.headers_mut().entry(header::RETRY_AFTER).or_insert(HeaderValue::from(secs));
        }
        response
    }
}

impl PluginRoute {
    /// The text a plugin's `/metrics/{plugin}` route answers at `path`, if 200.
    async fn scrape(&self, path: &str) -> Option<String> {
        let request = cloudify_sdk::Request {
            method: "GET".into(),
            path: path.into(),
            params: Default::default(),
            query: Default::default(),
            headers: Default::default(),
            body: Default::default(),
            extensions: Default::default(),
        };
        let response = self.handler.call(self.host.clone(), request).await;
        match response.body {
            cloudify_sdk::abi::Body::Bytes(bytes) if response.status == 200 => String::from_utf8(bytes.to_vec()).ok(),
            _ => None,
        }
    }
}

/// Converts a plugin's response without copying its body; the body carries the grants of
/// the reads it came from (`release`) until it has been sent.
fn into_axum(response: cloudify_sdk::Response, release: Option<Release>) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match response.body {
        cloudify_sdk::abi::Body::Bytes(bytes) => Body::from(sent_with(bytes, release)),
        cloudify_sdk::abi::Body::Stream(stream) => {
            Body::from_stream(futures::stream::unfold((stream, release), |(mut stream, release)| async move {
                let piece = stream.next_chunk().await.into_option()?;
                Some((Ok::<_, Infallible>(Bytes::from_owner(piece)), (stream, release)))
            }))
        }
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    for kv in &response.headers {
        match (HeaderName::try_from(kv.0.as_str()), HeaderValue::try_from(kv.1.as_str())) {
            (Ok(name), Ok(value)) => {
                out.headers_mut().append(name, value);
            }
            _ => tracing::debug!(header = %kv.0, "dropping an invalid response header from a plugin"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::{body::to_bytes, http::Request as HttpRequest};
    use tower::ServiceExt as _;

    use super::*;

    fn demo_app() -> Router {
        app_opened(true)
    }

    /// The demo dataset served, the configured datasets all open or (`opened = false`) still
    /// opening.
    fn app_opened(opened: bool) -> Router {
        app_with(opened, HashMap::new())
    }

    /// As [`app_opened`], with datasets waiting for their files to be staged.
    fn app_with(opened: bool, staging: HashMap<String, u64>) -> Router {
        let registry = Registry::new(1 << 20, 1 << 20);
        registry.insert("demo", Arc::new(cloudify_dataset::demo_dataset("demo").unwrap()));
        if opened {
            registry.mark_opened();
        }
        registry.set_staging(staging);
        let server = ServerConfig::default();
        app(
            Arc::new(registry),
            Vec::new(),
            &server,
            Links::new(&server, "127.0.0.1:9000").unwrap(),
            Observers::default(),
        )
        .router
    }

    async fn call(method: &str, path: &str) -> (StatusCode, Vec<u8>) {
        let request = HttpRequest::builder().method(method).uri(path).body(Body::empty()).unwrap();
        let response = demo_app().oneshot(request).await.unwrap();
        let status = response.status();
        (status, to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec())
    }

    fn json(body: &[u8]) -> serde_json::Value {
        serde_json::from_slice(body).unwrap()
    }

    #[tokio::test]
    async fn built_in_routes_answer_in_process() {
        assert_eq!(call("GET", "/datasets").await, (StatusCode::OK, br#"["demo"]"#.to_vec()));
        let (status, body) = call("GET", "/datasets/x/info").await;
        assert_eq!((status, json(&body)["error"].as_str()), (StatusCode::NOT_FOUND, Some("Dataset 'x' not found")));
        let (status, body) = call("HEAD", "/datasets/demo/keys").await;
        assert_eq!((status, body.len()), (StatusCode::OK, 0));
    }

    #[tokio::test]
    async fn a_dataset_waiting_for_tape_is_503_with_its_retry_after() {
        let app = app_with(true, HashMap::from([("archived".to_owned(), 600)]));
        let request = HttpRequest::builder().uri("/datasets/archived/info").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "600");
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        assert!(json(&body)["error"].as_str().unwrap().contains("being staged"));
    }

    #[tokio::test]
    async fn usage_refuses_a_days_that_is_not_a_count() {
        for query in ["days=abc", "days=-1", "days=99999999999999999999999"] {
            let (status, body) = call("GET", &format!("/usage?{query}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
            assert!(json(&body)["error"].is_string());
        }
    }

    #[tokio::test]
    async fn an_unknown_id_is_not_yet_while_datasets_open() {
        let request = HttpRequest::builder().uri("/datasets/x/info").body(Body::empty()).unwrap();
        let response = app_opened(false).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "1");
        let request = HttpRequest::builder().uri("/datasets/demo/keys").body(Body::empty()).unwrap();
        assert_eq!(app_opened(false).oneshot(request).await.unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn every_error_carries_the_request_id_of_its_header() {
        let request = HttpRequest::get("/no/such/route").body(Body::empty()).unwrap();
        let response = demo_app().oneshot(request).await.unwrap();
        let id = response.headers()[REQUEST_ID].to_str().unwrap().to_owned();
        let (instance, n) = id.rsplit_once('-').unwrap();
        assert_eq!(instance, cloudify_store::instance_id(), "{id}");
        assert!(n.parse::<u64>().is_ok(), "{id}");
        let body = json(&to_bytes(response.into_body(), usize::MAX).await.unwrap());
        assert_eq!(body, serde_json::json!({"error": "no route for /no/such/route", "request_id": id}));

        // An id the client (or a proxy in front) sent is kept, so logs can be joined.
        let request = HttpRequest::get("/datasets/x/info").header(REQUEST_ID, "proxy-42").body(Body::empty()).unwrap();
        let response = demo_app().oneshot(request).await.unwrap();
        assert_eq!(response.headers()[REQUEST_ID], "proxy-42");
        let body = json(&to_bytes(response.into_body(), usize::MAX).await.unwrap());
        assert_eq!(body["request_id"], "proxy-42");
    }

    #[tokio::test]
    async fn server_errors_are_generic_for_clients_and_deliberate_ones_are_kept() {
        let router = Router::new()
            .route(
                "/fail",
                axum::routing::get(|| async { json_error(StatusCode::INTERNAL_SERVER_ERROR, "/secret/path") }),
            )
            .route("/text", axum::routing::get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "/secret/path") }))
            .route(
                "/busy",
                axum::routing::get(|| async { json_error(StatusCode::SERVICE_UNAVAILABLE, "retry shortly") }),
            )
            .route("/ok", axum::routing::get(|| async { "fine" }))
            .layer(axum::middleware::from_fn(|req: Request, next: axum::middleware::Next| async move {
                let id = request_id(&req);
                shape_error(next.run(req).await, &id).await
            }))
            .layer(SetRequestIdLayer::new(HeaderName::from_static(REQUEST_ID), MakeRequestIds));
        let get = |path: &'static str| {
            let router = router.clone();
            async move {
                let response = router.oneshot(HttpRequest::get(path).body(Body::empty()).unwrap()).await.unwrap();
                (response.status(), to_bytes(response.into_body(), usize::MAX).await.unwrap())
            }
        };
        for path in ["/fail", "/text"] {
            let (status, body) = get(path).await;
            let body = json(&body);
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::INTERNAL_SERVER_ERROR, Some("internal server error"))
            );
            assert!(
                body["request_id"].as_str().is_some_and(|id| id.starts_with(cloudify_store::instance_id())),
                "{body}"
            );
        }
        let (status, body) = get("/busy").await;
        assert_eq!((status, json(&body)["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("retry shortly")));
        assert_eq!(get("/ok").await.1, "fine");
    }

    #[test]
    fn route_shapes_ignore_parameter_names() {
        assert_eq!(route_shape("/datasets/{id}/zarr/{*key}"), "/datasets/{}/zarr/{*}");
        assert_eq!(route_shape("/datasets/{ds}/zarr/{*rest}"), route_shape("/datasets/{id}/zarr/{*key}"));
        assert_ne!(route_shape("/a/{x}"), route_shape("/a/{*x}"));
    }
}
