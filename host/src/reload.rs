//! Live changes without a restart: `SIGHUP` re-reads the configuration file, and watched
//! folders (`[[folders]] watch = true`, through `notify`) are followed. Both bring the served
//! datasets in step ([`Datasets::reconcile`]); requests in flight finish on the sources they
//! started with. Settings other than the datasets (`[server]`, `[plugins]`, plugin tables,
//! `[cache]`, `[limits]`, `[auth]`, `[[staging]]`) take a restart: a reload that changes them says so.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use cloudify_store::Stores;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::{config::Config, datasets::Datasets};

/// Events closer than this are one change (an editor's or `cp`'s several writes).
const SETTLE: Duration = Duration::from_millis(300);

/// What a reload needs.
pub struct Reloader {
    /// The configuration file, if any (`None`: defaults and the environment).
    file: Option<PathBuf>,
    config: Mutex<Config>,
    datasets: Arc<Datasets>,
    stores: Arc<Stores>,
    /// Tells the folder watcher that the watched folders may have changed.
    rewatch: mpsc::UnboundedSender<()>,
    changed: Mutex<Option<mpsc::UnboundedReceiver<()>>>,
}

/// The parts of a configuration a reload does not apply.
fn restart_only(config: &Config) -> serde_json::Value {
    serde_json::json!([
        config.server,
        config.plugins,
        config.plugin,
        config.cache,
        config.limits,
        config.auth,
        config.staging
    ])
}

impl Reloader {
    /// A reloader of `datasets`, opened from `config` (read from `file`).
    pub fn new(file: Option<PathBuf>, config: Config, datasets: Arc<Datasets>, stores: Arc<Stores>) -> Self {
        let (rewatch, changed) = mpsc::unbounded_channel();
        Self { file, config: Mutex::new(config), datasets, stores, rewatch, changed: Mutex::new(Some(changed)) }
    }

    fn config(&self) -> Config {
        self.config.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Re-reads the configuration and applies its datasets; a file that does not load keeps
    /// the running configuration.
    pub async fn reload(&self) {
        let config = match Config::load(self.file.as_deref()) {
            Ok(config) => config,
            Err(err) => {
                tracing::error!("reload refused, the running configuration stays: {err}");
                return;
            }
        };
        if restart_only(&config) != restart_only(&self.config()) {
            tracing::warn!(
                "reload: [server], [plugins], [plugin.*], [cache], [limits], [auth] and [[staging]] changes take a restart"
            );
        }
        *self.config.lock().unwrap_or_else(PoisonError::into_inner) = config.clone();
        let changes = self.datasets.reconcile(&config, &self.stores).await;
        tracing::info!(?changes, "configuration reloaded");
        let _ = self.rewatch.send(());
    }

    /// Reloads on every `SIGHUP` of `hangups` (registered at start: until a handler is, the
    /// signal ends the process), for ever.
    pub async fn on_sighup(self: Arc<Self>, mut hangups: tokio::signal::unix::Signal) {
        while hangups.recv().await.is_some() {
            self.reload().await;
        }
    }

    /// Opens the datasets that waited for their files to be staged, each time a staging ends
    /// (`finished` changes), for ever.
    pub async fn on_stagings(self: Arc<Self>, mut finished: tokio::sync::watch::Receiver<u64>) {
        while finished.changed().await.is_ok() {
            if self.datasets.any_staging() {
                let changes = self.datasets.reconcile(&self.config(), &self.stores).await;
                tracing::info!(?changes, "a staging ended");
            }
        }
    }

    /// Follows the watched folders of the configuration in force, for ever.
    pub async fn watch_folders(self: Arc<Self>) {
        let Some(mut changed) = self.changed.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
        let events = self.rewatch.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = events.send(());
            }
        });
        let mut watcher = match watcher {
            Ok(watcher) => watcher,
            Err(err) => {
                tracing::warn!("watched folders are not followed: {err}");
                return;
            }
        };
        let mut watched: HashSet<(PathBuf, bool)> = HashSet::new();
        let mut rewatch = true;
        loop {
            if rewatch {
                let wanted: HashSet<(PathBuf, bool)> =
                    self.config().folders.iter().filter(|f| f.watch).map(|f| (f.path.clone(), f.recursive)).collect();
                for (path, _) in watched.difference(&wanted) {
                    let _ = watcher.unwatch(path);
                }
                for (path, recursive) in wanted.difference(&watched) {
                    let mode = if *recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
                    if let Err(err) = watcher.watch(path, mode) {
                        tracing::warn!(folder = %path.display(), "folder not watched: {err}");
                    }
                }
                watched = wanted;
            }
            if changed.recv().await.is_none() {
                return;
            }
            // Let a burst of events settle into one pass over the folders.
            tokio::time::sleep(SETTLE).await;
            while changed.try_recv().is_ok() {}
            if !watched.is_empty() {
                let changes = self.datasets.reconcile(&self.config(), &self.stores).await;
                tracing::info!(?changes, "watched folders changed");
            }
            rewatch = true;
        }
    }
}
