//! `/datasets/{id}/staging`: where a dataset's files stand on their slow tiers (tape), and
//! ordering them all ahead of reading (cloudify's `/kerchunk-tape-order`, for a whole
//! dataset at once): `GET` tells, without asking the tier; `POST` starts staging every file
//! not online and answers 202 until all are.

use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use cloudify_store::{FileState, Stores};
use futures::StreamExt;
use serde_json::json;

use super::datasets::DatasetId;
use crate::{app::AppState, error::AppError};

/// Files of one dataset checked or ordered at once (each may run the tier's command).
const AT_ONCE: usize = 8;

/// Counts of a dataset's files by state.
#[derive(Default)]
struct Tally {
    files: usize,
    online: usize,
    staging: usize,
    offline: usize,
    unknown: usize,
}

impl Tally {
    fn add(&mut self, state: Option<FileState>) {
        self.files += 1;
        match state {
            // A file on no tier is always online.
            None | Some(FileState::Online) => self.online += 1,
            Some(FileState::Staging) => self.staging += 1,
            Some(FileState::Offline) => self.offline += 1,
            Some(FileState::Unknown) => self.unknown += 1,
        }
    }

    /// The answer: the counts, 202 while files are being staged (200 otherwise), with the
    /// tier's `Retry-After` while not every file is online.
    fn answer(&self, id: &str, accepted: bool, retry_after: Option<u64>) -> Response {
        let body = json!({
            "dataset": id,
            "files": self.files,
            "online": self.online,
            "staging": self.staging,
            "offline": self.offline,
            "unknown": self.unknown,
        });
        let status = if accepted && self.staging > 0 { StatusCode::ACCEPTED } else { StatusCode::OK };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after.filter(|_| self.online < self.files) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The dataset's files and the stores they are read through.
fn files(state: &AppState, id: &str) -> Result<(Vec<String>, Option<std::sync::Arc<Stores>>), AppError> {
    let source = state.registry.get(id).ok_or_else(|| AppError::unknown_dataset(&state.registry, id))?;
    Ok((source.files(), state.registry.stores()))
}

/// `GET /datasets/{id}/staging`: the dataset's files by state, as last known (no command
/// is run: `unknown` files have not been asked about recently).
pub(crate) async fn status(State(state): State<AppState>, DatasetId(id): DatasetId) -> Result<Response, AppError> {
    let (files, stores) = files(&state, &id)?;
    let mut tally = Tally::default();
    let mut retry_after = None;
    for file in &files {
        let known = stores.as_ref().and_then(|stores| stores.known_tier_state(file));
        retry_after = retry_after.or_else(|| stores.as_ref().and_then(|stores| stores.tier_retry_after(file)));
        tally.add(known);
    }
    Ok(tally.answer(&id, false, retry_after))
}

/// `POST /datasets/{id}/staging`: stages every file of the dataset that is not online (the
/// tier's queue runs them, `max_at_once` at a time); the files by state after.
pub(crate) async fn order(State(state): State<AppState>, DatasetId(id): DatasetId) -> Result<Response, AppError> {
    let (files, stores) = files(&state, &id)?;
    let mut tally = Tally::default();
    let mut retry_after = None;
    if let Some(stores) = stores {
        let staged = files.iter().cloned().map(|file| {
            let stores = std::sync::Arc::clone(&stores);
            async move { stores.stage(&file).await }
        });
        let states: Vec<Option<FileState>> = futures::stream::iter(staged).buffered(AT_ONCE).collect().await;
        for (file, state) in files.iter().zip(states) {
            retry_after = retry_after.or_else(|| stores.tier_retry_after(file));
            tally.add(state);
        }
    } else {
        files.iter().for_each(|_| tally.add(None));
    }
    Ok(tally.answer(&id, true, retry_after))
}
