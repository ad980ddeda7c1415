//! Errors of the data plane. Each case a client can cause has its own variant, so the host
//! can map it to the right HTTP status.

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
    /// The source failed to read (unreadable or corrupt data, a failing provider).
    #[error("read failed: {0}")]
    Read(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
