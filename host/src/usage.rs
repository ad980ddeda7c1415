//! Usage counters: requests and bytes sent per day, dataset and endpoint, as cloudify's
//! `/stats-*` pages show them. Kept in memory for the last days and written to the cache
//! folder (`usage/YYYY-MM-DD.json`, one file per UTC day) every minute and at shutdown, so a
//! restart loses at most a minute. `GET /usage` answers them; the web plugin's `/stats` draws
//! them. `crate::observe` counts each answer.
//!
//! Labels are bounded: a dataset counts under its id only for answers below 400 (an id that
//! exists), at most [`MAX_DATASETS`] a day and the rest under `(other)`; endpoints are the
//! first path segment after `/datasets/{id}` (or of the path), which for answers below 400 is
//! a mounted route's.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// Datasets counted by id per day; the others share one label.
pub const MAX_DATASETS: usize = 1000;
/// Label of the datasets past [`MAX_DATASETS`].
const OTHER: &str = "(other)";
/// Label of answers of 400 and above, whatever the path named.
const ERRORS: &str = "(errors)";
/// Label of routes outside `/datasets/{id}`.
const SERVER: &str = "(server)";
/// How often the counters are written to disk.
const FLUSH_EVERY: Duration = Duration::from_secs(60);

/// Requests and bytes of one label.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Count {
    /// Answers given.
    pub requests: u64,
    /// Body bytes sent.
    pub bytes: u64,
}

/// One day: dataset → endpoint → count.
type Day = BTreeMap<String, BTreeMap<String, Count>>;

/// The counters of the last `days` days.
pub struct Usage {
    days: usize,
    /// Where day files are written; `None`: memory only.
    folder: Option<PathBuf>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Days by `YYYY-MM-DD`.
    days: BTreeMap<String, Day>,
    /// Days changed since they were last written.
    dirty: Vec<String>,
}

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

/// The dataset and endpoint labels of a request for `path` answered with `status`.
pub(crate) fn labels(path: &str, status: u16) -> (String, String) {
    let mut segments = path.trim_start_matches('/').split('/');
    let first = segments.next().unwrap_or_default();
    if first == "datasets" {
        if let Some(id) = segments.next().filter(|id| !id.is_empty()) {
            let endpoint = segments.next().filter(|s| !s.is_empty()).unwrap_or("page");
            let id = percent_encoding::percent_decode_str(id).decode_utf8_lossy().into_owned();
            return if status < 400 { (id, endpoint.to_owned()) } else { (ERRORS.to_owned(), endpoint.to_owned()) };
        }
    }
    let endpoint = if first.is_empty() { "/" } else { first };
    let dataset = if status < 400 { SERVER } else { ERRORS };
    (dataset.to_owned(), if status < 400 { endpoint.to_owned() } else { String::from("(any)") })
}

impl Usage {
    /// Counters kept `days` days, read from and written to `folder` when given.
    pub fn new(days: usize, folder: Option<PathBuf>) -> Self {
        let mut state = State::default();
        if let Some(folder) = &folder {
            state.days = load(folder, days);
        }
        Self { days: days.max(1), folder, state: Mutex::new(state) }
    }

    pub(crate) fn record(&self, dataset: String, endpoint: String, bytes: u64) {
        let day = today();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let datasets = state.days.entry(day.clone()).or_default();
        let dataset = if datasets.contains_key(&dataset) || datasets.len() < MAX_DATASETS || dataset.starts_with('(') {
            dataset
        } else {
            OTHER.to_owned()
        };
        let count = datasets.entry(dataset).or_default().entry(endpoint).or_default();
        count.requests += 1;
        count.bytes += bytes;
        while state.days.len() > self.days {
            state.days.pop_first();
        }
        if !state.dirty.contains(&day) {
            state.dirty.push(day);
        }
    }

    /// The last `days` days, oldest first, as `GET /usage` answers them.
    pub fn report(&self, days: usize) -> serde_json::Value {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let skip = state.days.len().saturating_sub(days);
        let days: Vec<serde_json::Value> = state
            .days
            .iter()
            .skip(skip)
            .map(|(date, datasets)| serde_json::json!({"date": date, "datasets": datasets}))
            .collect();
        serde_json::json!({"days": days})
    }

    /// Writes the days changed since the last write.
    pub fn flush(&self) {
        let Some(folder) = &self.folder else { return };
        let written: Vec<(String, Day)> = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let dirty = std::mem::take(&mut state.dirty);
            dirty.into_iter().filter_map(|day| Some((day.clone(), state.days.get(&day)?.clone()))).collect()
        };
        for (date, day) in written {
            if let Err(err) = save(folder, &date, &day) {
                tracing::warn!("usage counters not written to {}: {err}", folder.display());
            }
        }
    }

    /// Writes the counters every minute, for ever.
    pub async fn flush_periodically(self: Arc<Self>) {
        let mut every = tokio::time::interval(FLUSH_EVERY);
        every.tick().await;
        loop {
            every.tick().await;
            let usage = Arc::clone(&self);
            let _ = tokio::task::spawn_blocking(move || usage.flush()).await;
        }
    }
}

fn save(folder: &Path, date: &str, day: &Day) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)?;
    let mut file = tempfile::NamedTempFile::new_in(folder)?;
    serde_json::to_writer(&mut file, day)?;
    file.persist(folder.join(format!("{date}.json"))).map_err(|err| err.error)?;
    Ok(())
}

/// The day files of the last `days` days in `folder`; unreadable ones are skipped with a warning.
fn load(folder: &Path, days: usize) -> BTreeMap<String, Day> {
    let Ok(entries) = std::fs::read_dir(folder) else { return BTreeMap::new() };
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let date = name.strip_suffix(".json")?;
            chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
            Some((date.to_owned(), entry.path()))
        })
        .collect();
    files.sort();
    let skip = files.len().saturating_sub(days);
    files
        .into_iter()
        .skip(skip)
        .filter_map(|(date, path)| {
            let read = std::fs::read(&path).map_err(|e| e.to_string());
            match read.and_then(|bytes| serde_json::from_slice::<Day>(&bytes).map_err(|e| e.to_string())) {
                Ok(day) => Some((date, day)),
                Err(err) => {
                    tracing::warn!("usage counters of {} skipped: {err}", path.display());
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_datasets_only_for_answers_that_found_them() {
        assert_eq!(labels("/datasets/tas%20x/zarr/tas/0.0", 200), ("tas x".into(), "zarr".into()));
        assert_eq!(labels("/datasets/tas/", 200), ("tas".into(), "page".into()));
        assert_eq!(labels("/datasets/made-up/zarr/.zmetadata", 404), (ERRORS.into(), "zarr".into()));
        assert_eq!(labels("/stac/search", 200), (SERVER.into(), "stac".into()));
        assert_eq!(labels("/", 200), (SERVER.into(), "/".into()));
        assert_eq!(labels("/random/path", 404), (ERRORS.into(), "(any)".into()));
    }

    #[test]
    fn counters_are_bounded_kept_and_read_back() {
        let folder = tempfile::tempdir().unwrap();
        let usage = Usage::new(7, Some(folder.path().to_path_buf()));
        for i in 0..MAX_DATASETS + 5 {
            usage.record(format!("d{i:05}"), "zarr".into(), 10);
        }
        usage.record("d00000".into(), "zarr".into(), 5);
        let report = usage.report(1);
        let datasets = report["days"][0]["datasets"].as_object().unwrap();
        assert_eq!(datasets.len(), MAX_DATASETS + 1);
        assert_eq!(datasets[OTHER]["zarr"], serde_json::json!({"requests": 5, "bytes": 50}));
        assert_eq!(datasets["d00000"]["zarr"], serde_json::json!({"requests": 2, "bytes": 15}));
        usage.flush();
        let again = Usage::new(7, Some(folder.path().to_path_buf()));
        assert_eq!(again.report(7), usage.report(7));
        // A corrupt day file is skipped, not fatal.
        std::fs::write(folder.path().join("2001-01-01.json"), b"{not json").unwrap();
        assert_eq!(Usage::new(7, Some(folder.path().to_path_buf())).report(7), usage.report(7));
    }
}
