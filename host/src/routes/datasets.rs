//! `/datasets` and the per-dataset summaries: `/`, `/keys`, `/dict`, `/info`.

use std::{fmt::Write as _, sync::Arc};

use axum::{
    extract::{FromRequestParts, Path, State},
    http::request::Parts,
    response::{Html, Redirect},
    Json,
};
use cloudify_dataset::{DatasetMeta, VariableMeta};
use html_escape::encode_text;
use serde_json::{json, Map, Value};

use crate::{app::AppState, error::AppError};

/// The `{id}` of a dataset route; one that is not UTF-8 once decoded (`%ff`) is a JSON 400
/// like every other error, not axum's plain-text rejection.
pub(crate) struct DatasetId(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for DatasetId {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(Self(id)),
            Err(rejection) => Err(AppError::BadPath(rejection.body_text())),
        }
    }
}

fn metadata(state: &AppState, id: &str) -> Result<Arc<DatasetMeta>, AppError> {
    let source = state.registry.get(id).ok_or_else(|| AppError::unknown_dataset(&state.registry, id))?;
    Ok(source.metadata()?)
}

/// `GET /datasets`: the ids, as a JSON list.
pub(crate) async fn list(State(state): State<AppState>) -> Json<Vec<String>> {
    Json(state.registry.ids())
}

/// `GET /datasets/{id}/keys`: variable names.
pub(crate) async fn keys(
    State(state): State<AppState>,
    DatasetId(id): DatasetId,
) -> Result<Json<Vec<String>>, AppError> {
    Ok(Json(metadata(&state, &id)?.variables.keys().cloned().collect()))
}

fn schema(var: &VariableMeta) -> Value {
    json!({"dims": var.dimensions, "attrs": var.attributes, "dtype": var.dtype.name(), "shape": var.shape})
}

/// `GET /datasets/{id}/dict`: xarray's `Dataset.to_dict(data=False)`.
pub(crate) async fn dict(State(state): State<AppState>, DatasetId(id): DatasetId) -> Result<Json<Value>, AppError> {
    let meta = metadata(&state, &id)?;
    let coords = meta.coordinate_names();
    let (mut coord_map, mut data_vars) = (Map::new(), Map::new());
    for (name, var) in &meta.variables {
        let target = if coords.contains(&name.as_str()) { &mut coord_map } else { &mut data_vars };
        target.insert(name.clone(), schema(var));
    }
    Ok(Json(json!({"coords": coord_map, "attrs": meta.attributes, "dims": meta.dimensions, "data_vars": data_vars})))
}

/// `GET /datasets/{id}/info`: xpublish's dimensions / variables / global attributes summary.
pub(crate) async fn info(State(state): State<AppState>, DatasetId(id): DatasetId) -> Result<Json<Value>, AppError> {
    let meta = metadata(&state, &id)?;
    let variables: Map<String, Value> = meta
        .variables
        .iter()
        .map(|(name, var)| {
            let entry = json!({"type": var.dtype.name(), "dimensions": var.dimensions, "attributes": var.attributes});
            (name.clone(), entry)
        })
        .collect();
    Ok(Json(json!({"dimensions": meta.dimensions, "variables": variables, "global_attributes": meta.attributes})))
}

fn attribute_list(attrs: &Map<String, Value>) -> String {
    let mut out = String::from("<dl>");
    for (key, value) in attrs {
        let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", encode_text(key), encode_text(&text));
    }
    out.push_str("</dl>");
    out
}

fn variable_rows(meta: &DatasetMeta, names: &[&str]) -> String {
    let mut out = String::new();
    for name in names {
        let var = &meta.variables[*name];
        let _ = write!(
            out,
            "<tr><td><b>{}</b></td><td>({})</td><td>{}</td><td>chunks {:?}</td><td><details><summary>attributes</summary>{}</details></td></tr>",
            encode_text(name),
            encode_text(&var.dimensions.join(", ")),
            var.dtype.name(),
            var.chunks,
            attribute_list(&var.attributes)
        );
    }
    out
}

/// `GET /datasets/{id}/`: an HTML summary in the spirit of xarray's `_repr_html_`.
pub(crate) async fn html(State(state): State<AppState>, DatasetId(id): DatasetId) -> Result<Html<String>, AppError> {
    let meta = metadata(&state, &id)?;
    let coords = meta.coordinate_names();
    let data_vars: Vec<&str> = meta.variables.keys().map(String::as_str).filter(|n| !coords.contains(n)).collect();
    let dims: Vec<String> =
        meta.dimensions.iter().map(|(name, size)| format!("{}: {size}", encode_text(name))).collect();
    Ok(Html(format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{id}</title>\
         <style>body{{font-family:sans-serif}}td{{padding:0 .6em;vertical-align:top}}dt{{font-weight:bold}}</style></head>\
         <body><h1>&lt;xarray.Dataset&gt; {id}</h1><p><b>Dimensions:</b> ({dims})</p>\
         <h2>Coordinates</h2><table>{coord_rows}</table><h2>Data variables</h2><table>{data_rows}</table>\
         <h2>Attributes</h2>{attrs}</body></html>",
        id = encode_text(&meta.id),
        dims = dims.join(", "),
        coord_rows = variable_rows(&meta, &coords),
        data_rows = variable_rows(&meta, &data_vars),
        attrs = attribute_list(&meta.attributes),
    )))
}

/// `GET /datasets/{id}` where a plugin serves the page at `/datasets/{id}/`: there, with a
/// relative `Location` (the page's own relative links need the slash).
pub(crate) async fn to_page(State(state): State<AppState>, DatasetId(id): DatasetId) -> Result<Redirect, AppError> {
    metadata(&state, &id)?;
    let segment = percent_encoding::utf8_percent_encode(&id, percent_encoding::NON_ALPHANUMERIC);
    Ok(Redirect::permanent(&format!("{segment}/")))
}
