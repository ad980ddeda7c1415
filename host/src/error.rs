//! The host's errors and the one place that turns them into HTTP responses.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use cloudify_dataset::Error as DataError;
use cloudify_sdk::{ErrorKind, HostError};
use serde_json::json;

/// What a built-in route can answer instead of its result.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// `/datasets/{id}` for an id nobody serves.
    #[error("Dataset '{0}' not found")]
    DatasetNotFound(String),
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
    HostError::new(kind, err.to_string())
}

/// A JSON error response: `{"error": message}`.
pub(crate) fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::DatasetNotFound(_) | Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::BadPath(_) => StatusCode::BAD_REQUEST,
            Self::Data(err) => StatusCode::from_u16(kind_of(err).status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            return json_error(status, "internal server error");
        }
        tracing::debug!(error = %self, "request refused");
        json_error(status, self.to_string())
    }
}
