//! `GET /datasets/{id}/cfa.nc`: the dataset as a CF-1.13 aggregation file over its source
//! files (`crates/cfa` decides what it holds; libnetcdf writes it here, in the host, which
//! holds the process's one libnetcdf lock).

use axum::{
    extract::{ConnectInfo, Query, State},
    http::{header, Extensions, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use cloudify_dataset::Error as DataError;
use cloudify_store::Stores;
use cloudify_zarr_store::{file_names, file_url, parse_range, ByteRange};
use serde::Deserialize;

use super::datasets::DatasetId;
use crate::{app::AppState, error::AppError};

/// The most bytes of values (coordinates, variables not in whole files) one file holds.
const MAX_VALUE_BYTES: u64 = 256 << 20;

/// Where the fragment URIs point.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Targets {
    /// Local files at this server's `/datasets/{id}/files/{name}`, remote ones at their URL.
    #[default]
    Auto,
    /// Every file at this server's `/files`.
    Server,
    /// Every file at its own path or URL.
    Source,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Params {
    #[serde(default)]
    targets: Targets,
}

/// `GET /datasets/{id}/cfa.nc`.
pub(crate) async fn aggregation_file(
    State(state): State<AppState>,
    DatasetId(id): DatasetId,
    Query(params): Query<Params>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Result<Response, AppError> {
    let source = state.registry.get(&id).ok_or_else(|| AppError::unknown_dataset(&state.registry, &id))?;
    let files = source.files();
    if files.is_empty() {
        return Err(DataError::Unsupported {
            what: format!("an aggregation file of '{id}', which is not read from files"),
        }
        .into());
    }
    let peer = extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|ConnectInfo(addr)| *addr);
    let base = state.links.base_url(&headers, peer);
    let names = file_names(&files);
    let uri = |i: usize, file: &str| {
        let served = match params.targets {
            Targets::Source => false,
            Targets::Server => true,
            Targets::Auto => !Stores::is_remote(file),
        };
        if served {
            file_url(&base, &id, &names[i])
        } else {
            file.to_owned()
        }
    };
    let contents = cloudify_cfa::write::from_source(source.as_ref(), uri, MAX_VALUE_BYTES).await?;
    for (variable, reason) in &contents.left_out {
        tracing::warn!(dataset = id, variable, "left out of cfa.nc: {reason}");
    }
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let file = tempfile::Builder::new().suffix(".nc").tempfile().map_err(|e| e.to_string())?;
        cloudify_netcdf::write_netcdf4(file.path(), &contents.meta, &contents.arrays).map_err(|e| e.to_string())?;
        std::fs::read(file.path()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|written| written)
    .map_err(|reason| DataError::Library { location: format!("{id}/cfa.nc"), reason })?;
    let disposition = format!("attachment; filename=\"{}.cfa.nc\"", id.replace(['"', '\\', '/'], "_"));
    // Byte ranges, as readers of remote NetCDF (object_store, fsspec) ask for them.
    let size = bytes.len() as u64;
    let range = parse_range(headers.get(header::RANGE).and_then(|v| v.to_str().ok()), size);
    let mut response = match range {
        ByteRange::Whole => bytes.into_response(),
        ByteRange::Part { start, length } => {
            let part = bytes[start as usize..(start + length) as usize].to_vec();
            let content_range = format!("bytes {start}-{}/{size}", start + length - 1);
            (StatusCode::PARTIAL_CONTENT, [(header::CONTENT_RANGE, content_range)], part).into_response()
        }
        ByteRange::Unsatisfiable => {
            (StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, format!("bytes */{size}"))]).into_response()
        }
    };
    let response_headers = response.headers_mut();
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-netcdf"));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response_headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
