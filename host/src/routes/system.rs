//! `/versions`, `/plugins`, `/openapi.json`, `/health`, `/ready`, `/usage`.

use axum::{extract::State, response::IntoResponse, Json};
use serde_json::{json, Map, Value};

use crate::app::AppState;

/// `GET /versions`: the server, SDK, platform and plugin versions (a flat map, as xpublish).
pub(crate) async fn versions(State(state): State<AppState>) -> Json<Value> {
    let mut versions = Map::new();
    versions.insert("cloudify".into(), env!("CARGO_PKG_VERSION").into());
    versions.insert("cloudify-sdk".into(), cloudify_sdk::SDK_VERSION.into());
    versions.insert("OS".into(), std::env::consts::OS.into());
    versions.insert("machine".into(), std::env::consts::ARCH.into());
    for plugin in state.plugins.iter() {
        versions.insert(format!("plugin-{}", plugin.name), plugin.version.clone().into());
    }
    Json(Value::Object(versions))
}

/// `GET /plugins`: `{name: {path, version, description, routes}}`, xpublish's shape plus routes.
pub(crate) async fn plugins(State(state): State<AppState>) -> Json<Value> {
    let plugins: Map<String, Value> = state
        .plugins
        .iter()
        .map(|p| {
            let entry = json!({
                "path": p.origin, "version": p.version, "description": p.description,
                "routes": p.routes, "provides_datasets": p.provides_datasets,
            });
            (p.name.clone(), entry)
        })
        .collect();
    Json(Value::Object(plugins))
}

/// The media type of an OpenAPI 3.1 document, which STAC's `service-desc` link names.
const OPENAPI_MEDIA_TYPE: &str = "application/vnd.oai.openapi+json;version=3.1";

/// `GET /openapi.json`: `application/json`, or OpenAPI's own media type when the client asks
/// for it.
pub(crate) async fn openapi(State(state): State<AppState>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    let accept = headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let content_type =
        if accept.contains("application/vnd.oai.openapi+json") { OPENAPI_MEDIA_TYPE } else { "application/json" };
    ([("content-type", content_type)], state.openapi.as_ref().clone())
}

/// `GET /ready`: 200 once every configured dataset has been opened (or skipped), 503 while
/// they are opening (for load balancers and orchestrators; `/health` says the process runs).
pub(crate) async fn ready(State(state): State<AppState>) -> (axum::http::StatusCode, Json<Value>) {
    let datasets = state.registry.ids().len();
    if state.registry.is_opened() {
        (axum::http::StatusCode::OK, Json(json!({"status": "ready", "datasets": datasets})))
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "opening", "datasets": datasets})))
    }
}

/// `GET /health`.
pub(crate) async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ok", "datasets": state.registry.ids().len(), "plugins": state.plugins.len()}))
}

#[derive(serde::Deserialize)]
pub(crate) struct UsageQuery {
    days: Option<usize>,
}

/// `GET /usage?days=N`: the usage counters of the last days, oldest first.
pub(crate) async fn usage(
    State(state): State<AppState>,
    query: Result<axum::extract::Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, crate::error::AppError> {
    let days = match query {
        Ok(query) => query.0.days.unwrap_or(usize::MAX),
        Err(rejection) => return Err(crate::error::AppError::BadPath(rejection.body_text())),
    };
    match &state.usage {
        Some(usage) => Ok(Json(usage.report(days))),
        None => Err(crate::error::AppError::RouteNotFound(
            "/usage (usage counters are off: server.usage_days = 0)".to_owned(),
        )),
    }
}

/// `GET /metrics`: the Prometheus exposition.
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, crate::error::AppError> {
    match &state.metrics {
        Some(metrics) => {
            let mut text = metrics.render();
            text.push_str(&state.plugin_metrics.render().await);
            Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text))
        }
        None => Err(crate::error::AppError::RouteNotFound("/metrics (no metrics recorder in this process)".to_owned())),
    }
}
