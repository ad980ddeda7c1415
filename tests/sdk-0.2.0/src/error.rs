//! The plugin-side error type.

use crate::abi::{ErrorKind, HostError, Response};

/// What can go wrong in a plugin's use of the SDK.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The host (or a dataset source) answered an error.
    Host(HostError),
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
    /// The HTTP status a handler should answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Host(err) => err.kind.status(),
            _ => ErrorKind::INTERNAL.status(),
        }
    }
}

impl From<Error> for Response {
    fn from(err: Error) -> Self {
        Response::error(err.status(), err.to_string())
    }
}
