//! The built-in routes, with xpublish's response shapes.

pub(crate) mod cfa;
pub(crate) mod datasets;
pub(crate) mod staging;
pub(crate) mod system;

use axum::{routing::get, Router};

use crate::{app::AppState, openapi::RouteDoc};

/// (path, summary, content type) of every built-in `GET` route.
const BUILT_IN: &[(&str, &str, &str)] = &[
    ("/datasets", "List dataset ids", "application/json"),
    ("/datasets/{id}/keys", "Variable names of a dataset", "application/json"),
    ("/datasets/{id}/dict", "Dataset schema as xarray's to_dict(data=False)", "application/json"),
    ("/datasets/{id}/info", "Dimensions, variables and attributes of a dataset", "application/json"),
    (
        "/datasets/{id}/cfa.nc",
        "The dataset as a CF-1.13 aggregation file over its source files (?targets=server|source)",
        "application/x-netcdf",
    ),
    (
        "/datasets/{id}/staging",
        "Where the dataset's files stand on their slow tier (tape), as last known",
        "application/json",
    ),
    ("/versions", "Versions of the server and its plugins", "application/json"),
    ("/plugins", "Loaded plugins", "application/json"),
    ("/openapi.json", "This OpenAPI document", "application/json"),
    ("/health", "Liveness check", "application/json"),
    ("/ready", "Readiness: 200 once every configured dataset is open, 503 before", "application/json"),
    ("/metrics", "Prometheus metrics (text exposition format 0.0.4)", "text/plain"),
    ("/usage", "Requests and bytes per day, dataset and endpoint (?days=N, default all kept)", "application/json"),
];

/// The dataset's page, with and without the slash. A plugin may mount its own (the web
/// plugin does); the host mounts the built-in summary only where none did.
pub(crate) const DATASET_PAGES: [&str; 2] = ["/datasets/{id}/", "/datasets/{id}"];

fn doc(path: &str, summary: &str, content_type: &str) -> RouteDoc {
    RouteDoc {
        method: "GET".to_owned(),
        path: path.to_owned(),
        summary: summary.to_owned(),
        content_type: content_type.to_owned(),
        tag: "cloudify".to_owned(),
        operation: None,
    }
}

/// The documentation entries of the built-in routes.
pub(crate) fn docs() -> Vec<RouteDoc> {
    let mut docs: Vec<RouteDoc> =
        BUILT_IN.iter().map(|(path, summary, content_type)| doc(path, summary, content_type)).collect();
    docs.push(RouteDoc {
        method: "POST".to_owned(),
        ..doc(
            "/datasets/{id}/staging",
            "Stage every file of the dataset that is not online (202 while they are being staged)",
            "application/json",
        )
    });
    docs
}

/// The built-in answer at dataset page `path` and its documentation: the HTML summary, or,
/// without the slash where a plugin serves the page, a redirect to it.
pub(crate) fn dataset_page(path: &str, plugin_page: bool) -> (axum::routing::MethodRouter<AppState>, RouteDoc) {
    if plugin_page {
        (get(datasets::to_page), doc(path, "Redirect to the dataset's page", "text/html"))
    } else {
        (get(datasets::html), doc(path, "HTML summary of a dataset", "text/html"))
    }
}

/// The built-in routes (`GET` routes answer `HEAD` too).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/datasets", get(datasets::list))
        .route("/datasets/{id}/keys", get(datasets::keys))
        .route("/datasets/{id}/dict", get(datasets::dict))
        .route("/datasets/{id}/info", get(datasets::info))
        .route("/datasets/{id}/cfa.nc", get(cfa::aggregation_file))
        .route("/datasets/{id}/staging", get(staging::status).post(staging::order))
        .route("/versions", get(system::versions))
        .route("/plugins", get(system::plugins))
        .route("/openapi.json", get(system::openapi))
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/usage", get(system::usage))
        .route("/metrics", get(system::metrics))
}
