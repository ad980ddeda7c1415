//! Errors of the data plane. Each case a client can cause has its own variant, so the host
//! can map it to the right HTTP status; each failure of the server's side names what failed
//! (a store, a codec, a library, a plugin), so the log says where to look.

use std::sync::Arc;

use cloudify_sdk::ErrorKind;

/// What can go wrong reading a dataset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The dataset has no variable of that name.
    #[error("dataset '{dataset}' has no variable '{variable}'")]
    UnknownVariable {
        /// Dataset id.
        dataset: String,
        /// The name asked for.
        variable: String,
    },
    /// A chunk index with the wrong number of dimensions.
    #[error("variable '{variable}' has {expected} dimensions, chunk index has {found}")]
    WrongRank {
        /// Variable name.
        variable: String,
        /// The variable's rank.
        expected: usize,
        /// The index's rank.
        found: usize,
    },
    /// A chunk index outside the chunk grid.
    #[error("chunk {index:?} of variable '{variable}' is outside its chunk grid {grid:?}")]
    ChunkOutOfRange {
        /// Variable name.
        variable: String,
        /// The index asked for.
        index: Vec<u64>,
        /// Chunks per dimension.
        grid: Vec<u64>,
    },
    /// A region that is empty, of the wrong rank, or outside the array.
    #[error("invalid selection of variable '{variable}': {reason}")]
    BadSelection {
        /// Variable name.
        variable: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A read that would produce more bytes than allowed.
    #[error("selection of {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Bytes the read would produce.
        bytes: u64,
        /// The configured limit.
        limit: u64,
    },
    /// Data whose size is over a configured [`crate::Limits`] cap.
    #[error("over a limit: {0}")]
    OverLimit(String),
    /// A file the dataset does not read from.
    #[error("the dataset reads no file '{file}'")]
    UnknownFile {
        /// The path or URL asked for.
        file: String,
    },
    /// The source cannot answer this kind of read.
    #[error("not supported by this source: {what}")]
    Unsupported {
        /// What was asked for.
        what: String,
    },
    /// Reading stored bytes failed (the store names the location and the reason).
    #[error(transparent)]
    Store(#[from] cloudify_store::Error),
    /// A stored chunk could not be decoded with its codecs.
    #[error("chunk {index:?} of '{variable}' could not be decoded: {reason}")]
    Decode {
        /// Variable name.
        variable: String,
        /// The chunk.
        index: Vec<u64>,
        /// The codec's complaint.
        reason: String,
    },
    /// The library a source is read with (libnetcdf, zarrs) failed.
    #[error("{location}: {reason}")]
    Library {
        /// The file or store, and the variable.
        location: String,
        /// The library's complaint.
        reason: String,
    },
    /// A source's own description does not hold together (a chunk list that does not fit its
    /// array, a file index past the file list).
    #[error("inconsistent source: {0}")]
    Inconsistent(String),
    /// A plugin's dataset provider failed or answered something unusable.
    #[error("plugin {plugin}: {reason}")]
    Provider {
        /// The plugin's name.
        plugin: String,
        /// The kind of error it answered ([`ErrorKind::INTERNAL`] for unusable answers).
        kind: ErrorKind,
        /// What went wrong.
        reason: String,
    },
    /// Blocking work (a decode, a library read) was cancelled or panicked.
    #[error("blocking task failed: {0}")]
    Task(String),
    /// The failure of a read that other requests for the same chunk waited on.
    #[error(transparent)]
    Shared(Arc<Error>),
}

impl Error {
    /// Seconds to wait before asking again, for a read refused because its file is being
    /// staged from a slow tier.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Store(cloudify_store::Error::Staging { retry_after_secs, .. }) => Some(*retry_after_secs),
            Self::Shared(first) => first.retry_after_secs(),
            _ => None,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
