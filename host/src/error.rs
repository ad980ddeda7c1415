//! The host's errors, the one place that turns them into HTTP statuses, and the one shape
//! of every error answer (`{"error": "...", "request_id": "..."}`).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::{
    body::{to_bytes, Body, HttpBody as _},
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use cloudify_dataset::Error as DataError;
use cloudify_sdk::{ErrorKind, HostError};
use serde_json::json;
use tower_http::request_id::{MakeRequestId, RequestId};

/// What a built-in route can answer instead of its result.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// `/datasets/{id}` for an id nobody serves.
    #[error("Dataset '{0}' not found")]
    DatasetNotFound(String),
    /// An id no open dataset has while the configured ones are still opening: it may be one
    /// of them, so "not yet" (503, retry), not "never" (404). A restarted replica behind a
    /// proxy thus sends clients to its peers instead of answering 404.
    #[error("Dataset '{0}' not found yet: datasets are still opening")]
    DatasetOpening(String),
    /// A configured dataset whose file is being staged from a slow tier before it can be
    /// opened: retry after the seconds given.
    #[error("Dataset '{0}' is being staged from a slow tier (tape)")]
    DatasetStaging(String, u64),
    /// No route matches the path.
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// A path whose parameters cannot be read (not UTF-8 once percent-decoded).
    #[error("{0}")]
    BadPath(String),
    /// The data plane refused or failed a read.
    #[error(transparent)]
    Data(#[from] DataError),
}

/// The ABI error kind of a data-plane error: what a plugin sees.
pub(crate) fn kind_of(err: &DataError) -> ErrorKind {
    match err {
        DataError::UnknownVariable { .. } | DataError::ChunkOutOfRange { .. } | DataError::UnknownFile { .. } => {
            ErrorKind::NOT_FOUND
        }
        DataError::WrongRank { .. } | DataError::BadSelection { .. } => ErrorKind::INVALID_INPUT,
        DataError::TooLarge { .. } | DataError::OverLimit(_) => ErrorKind::TOO_LARGE,
        DataError::Unsupported { .. } => ErrorKind::UNSUPPORTED,
        // The host checked the key before asking the plugin: its refusals stand.
        DataError::Provider { kind, .. } => *kind,
        DataError::Shared(first) => kind_of(first),
        _ if err.retry_after_secs().is_some() => ErrorKind::UNAVAILABLE,
        _ => ErrorKind::INTERNAL,
    }
}

/// A data-plane error as it crosses to a plugin. Internal failures are logged here, once,
/// and reach the plugin (and so the client) as a generic message.
pub(crate) fn to_host_error(err: &DataError) -> HostError {
    let kind = kind_of(err);
    if kind == ErrorKind::INTERNAL {
        tracing::error!(error = %err, "data read failed");
        return HostError::new(kind, "internal error reading the dataset");
    }
    if let Some(secs) = err.retry_after_secs() {
        // Without the file's path: where the archive keeps its files is the operator's.
        return HostError::new(kind, staging_message(secs));
    }
    HostError::new(kind, err.to_string())
}

/// What a client reading a file that is being staged is told.
fn staging_message(retry_after_secs: u64) -> String {
    format!("the data is being staged from a slow tier (tape); retry after {retry_after_secs} s")
}

/// The header carrying each request's id (set by `SetRequestIdLayer`, echoed in the answer).
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// Request ids: this process's random instance id and a counter (`9f3c2a1b4d5e6f70-42`),
/// unique across replicas and restarts without drawing a random number per request.
#[derive(Clone, Copy, Default)]
pub(crate) struct MakeRequestIds;

impl MakeRequestId for MakeRequestIds {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // The text's own buffer becomes the header's (no copy).
        let id = bytes::Bytes::from(format!("{}-{n}", cloudify_store::instance_id()));
        HeaderValue::from_maybe_shared(id).ok().map(RequestId::new)
    }
}

/// The id the request-id layer gave `req` (empty outside the server's stack): a shared
/// buffer, read as text only when an error answer needs it.
pub(crate) fn request_id(req: &Request) -> HeaderValue {
    req.headers().get(REQUEST_ID).cloned().unwrap_or_else(|| HeaderValue::from_static(""))
}

/// Error bodies larger than this are not JSON errors of ours: passed on as they are.
const MAX_ERROR_BODY: u64 = 64 << 10;

/// Gives an error answer the one shape of every error, whoever made it (a built-in route, a
/// plugin, the admission and panic layers): `{"error": message, "request_id": id}`. A server
/// error's message may hold paths or internals: it is logged here, in the request's span
/// (which carries the same id), and the client gets a generic message with the id to quote.
/// 503 (busy, timed out) and 508 (a loop) keep theirs: they tell the client what to do.
/// Called by the admission middleware on every answer (a layer of its own would cost each
/// request a clone of the whole service stack).
pub(crate) async fn shape_error(response: Response, request_id: &HeaderValue) -> Response {
    let status = response.status();
    if !status.is_client_error() && !status.is_server_error() {
        return response;
    }
    let request_id = request_id.to_str().unwrap_or_default();
    let (mut parts, body) = response.into_parts();
    let is_json =
        parts.headers.get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    let small = body.size_hint().exact().is_some_and(|n| n <= MAX_ERROR_BODY);
    if !is_json || !small {
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%status, "request failed (the answer was not a JSON error)");
            return generic(parts, request_id);
        }
        return Response::from_parts(parts, body);
    }
    let bytes = to_bytes(body, MAX_ERROR_BODY as usize).await.unwrap_or_default();
    let mut document = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(map)) if map.get("error").is_some_and(serde_json::Value::is_string) => map,
        // JSON of another shape: not an error of ours to reshape.
        _ => return Response::from_parts(parts, Body::from(bytes)),
    };
    let deliberate = matches!(status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::LOOP_DETECTED);
    if status.is_server_error() && !deliberate {
        tracing::error!(%status, error = %document["error"].as_str().unwrap_or_default(), "request failed");
        return generic(parts, request_id);
    }
    document.insert("request_id".to_owned(), request_id.into());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(serde_json::Value::Object(document).to_string()))
}

/// A server error's answer: no detail, the request id to quote.
fn generic(mut parts: axum::http::response::Parts, request_id: &str) -> Response {
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = json!({"error": "internal server error", "request_id": request_id}).to_string();
    Response::from_parts(parts, Body::from(body))
}

/// A JSON error response: `{"error": message}` (the request id is added on the way out).
pub(crate) fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::DatasetNotFound(_) | Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::DatasetOpening(_) | Self::DatasetStaging(..) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadPath(_) => StatusCode::BAD_REQUEST,
            Self::Data(err) => StatusCode::from_u16(kind_of(err).status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        };
        // A server error's message is logged and replaced on the way out (`shape_error`).
        tracing::debug!(error = %self, "request refused");
        let retry_after = match &self {
            Self::DatasetOpening(_) => Some(1),
            Self::DatasetStaging(_, secs) => Some(*secs),
            Self::Data(err) => err.retry_after_secs(),
            _ => None,
        };
        let message = match retry_after {
            Some(secs) if matches!(self, Self::Data(_)) => staging_message(secs),
            _ => self.to_string(),
        };
        let mut response = json_error(status, message);
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl AppError {
    /// The refusal of dataset `id`, which `registry` does not serve (now).
    pub(crate) fn unknown_dataset(registry: &crate::registry::Registry, id: &str) -> Self {
        if let Some(secs) = registry.staging_retry_after(id) {
            Self::DatasetStaging(id.to_owned(), secs)
        } else if registry.is_opened() {
            Self::DatasetNotFound(id.to_owned())
        } else {
            Self::DatasetOpening(id.to_owned())
        }
    }
}
