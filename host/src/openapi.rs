//! `/openapi.json`: built at start-up from the route table, plugin routes included, with the
//! utoipa builder API (plugins may hand over a full operation object as JSON).

use utoipa::openapi::{
    content::ContentBuilder,
    path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn},
    response::ResponseBuilder,
    schema::{ObjectBuilder, Type},
    InfoBuilder, OpenApi, OpenApiBuilder, Paths, Required,
};

/// What the OpenAPI document says of one route.
pub(crate) struct RouteDoc {
    pub(crate) method: String,
    /// Path in axum syntax (`/datasets/{id}/zarr/{*key}`).
    pub(crate) path: String,
    pub(crate) summary: String,
    pub(crate) content_type: String,
    /// The plugin name, or `cloudify` for built-in routes.
    pub(crate) tag: String,
    /// A full operation object from the plugin, as JSON text.
    pub(crate) operation: Option<String>,
}

/// The OpenAPI path of an axum path: `{*key}` becomes `{key}` (OpenAPI cannot say that a
/// parameter holds slashes, so its description does).
pub(crate) fn openapi_path(path: &str) -> String {
    path.replace("{*", "{")
}

fn parameters(path: &str) -> Vec<(String, bool)> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| match name.strip_prefix('*') {
            Some(rest) => (rest.to_owned(), true),
            None => (name.to_owned(), false),
        })
        .collect()
}

fn http_method(method: &str) -> HttpMethod {
    match method {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "PATCH" => HttpMethod::Patch,
        "OPTIONS" => HttpMethod::Options,
        "HEAD" => HttpMethod::Head,
        _ => HttpMethod::Get,
    }
}

fn derived_operation(route: &RouteDoc) -> Operation {
    let mut op = OperationBuilder::new().summary(Some(route.summary.clone())).tag(route.tag.clone()).response(
        "200",
        ResponseBuilder::new()
            .description("Success")
            .content(route.content_type.clone(), ContentBuilder::new().build()),
    );
    for (name, rest) in parameters(&route.path) {
        let description = if name == "id" {
            "Dataset id, as listed by /datasets".to_owned()
        } else if rest {
            format!("{name}: the rest of the path, slashes included")
        } else {
            name.clone()
        };
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    if route.path.starts_with("/datasets/{id}") {
        op = op.response("404", ResponseBuilder::new().description("Unknown dataset (JSON error)"));
    }
    op.build()
}

/// `operation` with a `default` response: any route may answer a JSON error (400 malformed,
/// 404 unknown, 413 too large, 500 failed, 503 busy, ...), `{"error": "..."}`.
fn with_errors(mut operation: Operation) -> Operation {
    let error = ResponseBuilder::new()
        .description("A JSON error: {\"error\": \"...\"}")
        .content("application/json", ContentBuilder::new().build())
        .build();
    operation.responses.responses.entry("default".to_owned()).or_insert(error.into());
    operation
}

/// The OpenAPI document of `routes`.
pub(crate) fn document(routes: &[RouteDoc]) -> OpenApi {
    let mut paths = Paths::new();
    for route in routes {
        let operation = route
            .operation
            .as_deref()
            .and_then(|json| match serde_json::from_str::<Operation>(json) {
                Ok(op) => Some(op),
                Err(err) => {
                    tracing::warn!(plugin = route.tag, path = route.path, "ignoring invalid OpenAPI operation: {err}");
                    None
                }
            })
            .unwrap_or_else(|| derived_operation(route));
        paths.add_path_operation(openapi_path(&route.path), vec![http_method(&route.method)], with_errors(operation));
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("cloudify")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("Climate-model output as cloud-native datasets (xpublish-compatible routes)")),
        )
        .paths(paths)
        .build()
}
