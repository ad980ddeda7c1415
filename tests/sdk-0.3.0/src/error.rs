//! The plugin-side error type, and the one place where a plugin's errors become responses.

use crate::abi::{ErrorKind, HostError, Response};

/// What can go wrong in a plugin: the host's errors, the plugin's own refusals, and failures
/// of the SDK's services.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The host (or a dataset source) answered an error.
    Host(HostError),
    /// The plugin refuses the request: an unknown key, a malformed parameter, a failed
    /// precondition; or fails it (kind [`ErrorKind::INTERNAL`]).
    Request {
        /// What went wrong, as a category (it decides the status).
        kind: ErrorKind,
        /// For the client when the kind is a 4xx; for the server's log otherwise.
        message: String,
    },
    /// JSON from the host could not be parsed into the expected type.
    Json(serde_json::Error),
    /// The plugin's config table does not match its config type.
    Config(serde_json::Error),
    /// Blocking work panicked.
    Panicked(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Host(err) => write!(f, "{err}"),
            Self::Request { message, .. } => f.write_str(message),
            Self::Json(err) => write!(f, "invalid JSON from the host: {err}"),
            Self::Config(err) => write!(f, "invalid plugin config: {err}"),
            Self::Panicked(msg) => write!(f, "blocking task panicked: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<HostError> for Error {
    fn from(err: HostError) -> Self {
        Self::Host(err)
    }
}

impl Error {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Request { kind, message: message.into() }
    }

    /// `404`: no such dataset, variable, key or file.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NOT_FOUND, message)
    }

    /// `400`: a malformed request.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INVALID_INPUT, message)
    }

    /// `500`: the plugin failed; `message` goes to the server's log, the client sees a
    /// generic message with the request id.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INTERNAL, message)
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Host(err) => err.kind,
            Self::Request { kind, .. } => *kind,
            _ => ErrorKind::INTERNAL,
        }
    }

    /// The HTTP status a handler should answer with ([`ErrorKind::status`]).
    pub fn status(&self) -> u16 {
        self.kind().status()
    }
}

impl Clone for Error {
    /// A copy with the same kind and message (parse errors keep their text only), so that one
    /// failure can be answered to every request that waited on the same work.
    fn clone(&self) -> Self {
        match self {
            Self::Host(err) => Self::Host(err.clone()),
            Self::Panicked(msg) => Self::Panicked(msg.clone()),
            other => Self::new(other.kind(), other.to_string()),
        }
    }
}

impl From<Error> for Response {
    /// The one place a plugin's error becomes an answer: `{"error": message}` with the status
    /// of its kind. The host adds the request id, and replaces the message of a 5xx with a
    /// generic one after logging it.
    fn from(err: Error) -> Self {
        Response::error(err.status(), err.to_string())
    }
}
