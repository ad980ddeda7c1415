//! Slow tiers: files behind a tape library's HSM (or any store whose first read of a file may
//! take minutes). A read never waits for such a file: while it is not online the read fails
//! at once with [`Error::Staging`] (the server answers 503 with `Retry-After`) and the tier's
//! stage command is started for it, once, in the background. When the command succeeds the
//! file is online and reads go through.
//!
//! Whether a file is online is the tier's own check command (exit status 0: online), asked
//! once per file and then trusted for [`Tier::online_for`]: an HSM may release a file again,
//! and a read of a released file would hang a reading thread for minutes.

use std::{
    collections::HashMap,
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::{Error, Result};

/// How long an online check may take before the file counts as offline.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Files whose online answer is remembered at once (each a few dozen bytes).
const REMEMBERED: u64 = 1 << 20;

/// One slow tier: the files under a prefix, and the commands that tell and change whether
/// one is online. In each command's arguments `{path}` is replaced by the file's path (or
/// URL); the command runs without a shell, so a path is always one argument.
#[derive(Debug, Clone)]
pub struct Tier {
    /// Files whose path (or URL) starts with this are on the tier.
    pub prefix: String,
    /// Exits 0 when the file is online (e.g. `lfs hsm_state` not saying `released`).
    pub online: Vec<String>,
    /// Brings the file online, exiting 0 once it is (e.g. `lfs hsm_restore` and a wait,
    /// `dmget`).
    pub stage: Vec<String>,
    /// What a client is told to wait before asking again (`Retry-After`).
    pub retry_after: Duration,
    /// How long an online answer (a check's or a finished staging's) is trusted.
    pub online_for: Duration,
    /// A stage command still running after this is killed (and the file counts as offline).
    pub timeout: Duration,
    /// Stage commands running at once on this tier; further files wait their turn.
    pub max_at_once: usize,
}

/// Where a file of a tier stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Readable now.
    Online,
    /// Its stage command is running or waiting for its turn.
    Staging,
    /// Not online, and not being staged (its last check or staging said so).
    Offline,
    /// Not asked recently (only from [`crate::Stores::known_tier_state`], which runs no
    /// command).
    Unknown,
}

/// What staging a file has come to.
#[derive(Debug, Clone, Copy)]
enum Staged {
    Running,
    /// The command failed: the file is not staged again before `retry`.
    Failed {
        retry: Instant,
    },
}

/// The slow tiers of a [`crate::Stores`], and what each of their files is doing.
#[derive(Default)]
pub(crate) struct Staging {
    tiers: Vec<(Tier, Arc<tokio::sync::Semaphore>)>,
    files: Arc<Files>,
}

/// What is known of the tiers' files; shared with the stage commands' tasks.
struct Files {
    /// Files known to be online, until when.
    online: Mutex<HashMap<String, Instant>>,
    /// The online checks of the last moment: concurrent reads of a file not known to be
    /// online (its first, or the first after its answer expired) share one check.
    checks: moka::future::Cache<String, bool>,
    staged: Mutex<HashMap<String, Staged>>,
    /// Counts finished stagings, for whoever waits on them (the host opens datasets whose
    /// files had to be staged before they could be scanned).
    finished: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging").field("tiers", &self.tiers.len()).finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long a check's answer is shared with the reads that asked at the same moment.
const CHECK_SHARED_FOR: Duration = Duration::from_secs(1);

impl Default for Files {
    fn default() -> Self {
        Self {
            online: Mutex::default(),
            checks: moka::future::Cache::builder().max_capacity(REMEMBERED).time_to_live(CHECK_SHARED_FOR).build(),
            staged: Mutex::default(),
            finished: tokio::sync::watch::Sender::default(),
        }
    }
}

impl Files {
    fn online(&self, location: &str) -> bool {
        lock(&self.online).get(location).is_some_and(|until| *until > Instant::now())
    }

    fn set_online(&self, location: &str, tier: &Tier) {
        let mut online = lock(&self.online);
        if online.len() as u64 >= REMEMBERED {
            let now = Instant::now();
            online.retain(|_, until| *until > now);
            if online.len() as u64 >= REMEMBERED {
                online.clear();
            }
        }
        online.insert(location.to_owned(), Instant::now() + tier.online_for);
    }

    fn staged(&self, location: &str) -> Option<Staged> {
        lock(&self.staged).get(location).copied()
    }
}

impl Staging {
    pub(crate) fn new(tiers: Vec<Tier>) -> Self {
        let tiers = tiers
            .into_iter()
            .map(|tier| {
                let permits = Arc::new(tokio::sync::Semaphore::new(tier.max_at_once.max(1)));
                (tier, permits)
            })
            .collect();
        Self { tiers, files: Arc::default() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    fn tier_of(&self, location: &str) -> Option<&(Tier, Arc<tokio::sync::Semaphore>)> {
        self.tiers.iter().find(|(tier, _)| location.starts_with(&tier.prefix))
    }

    pub(crate) fn retry_after(&self, location: &str) -> Option<u64> {
        self.tier_of(location).map(|(tier, _)| tier.retry_after.as_secs().max(1))
    }

    pub(crate) fn finished(&self) -> tokio::sync::watch::Receiver<u64> {
        self.files.finished.subscribe()
    }

    fn unavailable(location: &str, tier: &Tier) -> Error {
        Error::Staging { location: location.to_owned(), retry_after_secs: tier.retry_after.as_secs().max(1) }
    }

    /// Where `location` stands, running the tier's check when nothing recent is known
    /// (`None`: on no tier).
    async fn check(&self, location: &str, tier: &Tier) -> FileState {
        if self.files.online(location) {
            return FileState::Online;
        }
        match self.files.staged(location) {
            Some(Staged::Running) => return FileState::Staging,
            // Not asked again before its retry time: the tier said no a moment ago.
            Some(Staged::Failed { retry }) if retry > Instant::now() => return FileState::Offline,
            _ => {}
        }
        let check = async { run(&tier.online, location, CHECK_TIMEOUT).await.is_ok() };
        if self.files.checks.get_with(location.to_owned(), check).await {
            self.files.set_online(location, tier);
            return FileState::Online;
        }
        FileState::Offline
    }

    /// Ok when `location` may be read now; otherwise staging is started (unless it runs, or
    /// failed a moment ago) and the read is refused with [`Error::Staging`]. Locations on no
    /// tier are always ready.
    pub(crate) async fn ready(&self, location: &str) -> Result<()> {
        let Some((tier, permits)) = self.tier_of(location) else { return Ok(()) };
        match self.check(location, tier).await {
            FileState::Online => Ok(()),
            FileState::Staging => Err(Self::unavailable(location, tier)),
            FileState::Offline | FileState::Unknown => {
                self.start(location, tier, permits);
                Err(Self::unavailable(location, tier))
            }
        }
    }

    /// Where `location` stands as far as known, without running a command (`None`: on no
    /// tier).
    pub(crate) fn known_state(&self, location: &str) -> Option<FileState> {
        self.tier_of(location)?;
        if self.files.online(location) {
            return Some(FileState::Online);
        }
        Some(match self.files.staged(location) {
            Some(Staged::Running) => FileState::Staging,
            Some(Staged::Failed { .. }) => FileState::Offline,
            None => FileState::Unknown,
        })
    }

    /// Where `location` stands (`None`: on no tier).
    pub(crate) async fn state(&self, location: &str) -> Option<FileState> {
        let (tier, _) = self.tier_of(location)?;
        Some(self.check(location, tier).await)
    }

    /// Starts staging `location` unless it is online or being staged; where it stands then
    /// (`None`: on no tier).
    pub(crate) async fn stage(&self, location: &str) -> Option<FileState> {
        let (tier, permits) = self.tier_of(location)?;
        match self.check(location, tier).await {
            FileState::Online => Some(FileState::Online),
            _ => {
                self.start(location, tier, permits);
                Some(FileState::Staging)
            }
        }
    }

    /// Runs the tier's stage command for `location` in the background, unless it runs already
    /// or failed less than `retry_after` ago.
    fn start(&self, location: &str, tier: &Tier, permits: &Arc<tokio::sync::Semaphore>) {
        {
            let mut staged = lock(&self.files.staged);
            match staged.get(location) {
                Some(Staged::Running) => return,
                Some(Staged::Failed { retry }) if *retry > Instant::now() => return,
                _ => {}
            }
            staged.insert(location.to_owned(), Staged::Running);
        }
        tracing::info!(file = location, "staging from a slow tier");
        let (location, tier, permits) = (location.to_owned(), tier.clone(), Arc::clone(permits));
        let files = Arc::clone(&self.files);
        tokio::spawn(async move {
            let started = Instant::now();
            let result = match permits.acquire().await {
                Ok(_permit) => run(&tier.stage, &location, tier.timeout).await,
                Err(_) => Err("the tier's queue is closed".to_owned()),
            };
            match result {
                Ok(()) => {
                    tracing::info!(file = location, secs = started.elapsed().as_secs(), "staged");
                    files.set_online(&location, &tier);
                    lock(&files.staged).remove(&location);
                }
                Err(reason) => {
                    tracing::warn!(file = location, "staging failed: {reason}");
                    let retry = Instant::now() + tier.retry_after;
                    lock(&files.staged).insert(location, Staged::Failed { retry });
                }
            }
            files.finished.send_modify(|n| *n += 1);
        });
    }
}

/// Runs `command` with `{path}` replaced by `location` in each argument: Ok when it exits 0
/// within `timeout` (it is killed after), else why not.
async fn run(command: &[String], location: &str, timeout: Duration) -> Result<(), String> {
    let Some((program, args)) = command.split_first() else { return Err("no command".to_owned()) };
    let mut child = tokio::process::Command::new(program);
    child
        .args(args.iter().map(|arg| arg.replace("{path}", location)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = child.output();
    match tokio::time::timeout(timeout, output).await {
        Err(_) => Err(format!("{program} still running after {} s: killed", timeout.as_secs())),
        Ok(Err(err)) => Err(format!("{program} did not start: {err}")),
        Ok(Ok(output)) if output.status.success() => Ok(()),
        Ok(Ok(output)) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().last().unwrap_or_default().chars().take(300).collect::<String>();
            Err(format!("{program} exited with {}: {last}", output.status))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{Error, FileState, Stores, Tier};

    /// A simulated tape: a file is online when `{path}.online` exists; staging takes `delay`
    /// seconds, logs one line per run to `{path}.runs`, then marks the file online.
    fn tape(dir: &Path, delay: &str, stage_exit: u8) -> Tier {
        let script = format!(
            "sleep {delay}; echo run >> \"$1.runs\"; [ {stage_exit} = 0 ] && touch \"$1.online\"; exit {stage_exit}"
        );
        Tier {
            prefix: dir.join("tape").to_string_lossy().into_owned(),
            online: vec!["test".into(), "-e".into(), "{path}.online".into()],
            stage: vec!["sh".into(), "-c".into(), script, "stage".into(), "{path}".into()],
            retry_after: std::time::Duration::from_secs(600),
            online_for: std::time::Duration::from_secs(600),
            timeout: std::time::Duration::from_secs(5),
            max_at_once: 2,
        }
    }

    fn runs(file: &Path) -> usize {
        std::fs::read_to_string(format!("{}.runs", file.display())).map_or(0, |text| text.lines().count())
    }

    #[tokio::test]
    async fn an_offline_file_is_refused_at_once_staged_once_then_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tape")).unwrap();
        // A name a shell would split or quote: it must reach the command as one argument.
        let file = dir.path().join("tape/run 1 'b'.nc");
        std::fs::write(&file, b"0123456789").unwrap();
        let outside = dir.path().join("disk.nc");
        std::fs::write(&outside, b"abc").unwrap();
        let stores = std::sync::Arc::new(Stores::with_tiers(vec![tape(dir.path(), "1", 0)]));
        let mut finished = stores.stagings_finished();
        let location = file.to_string_lossy().into_owned();

        assert_eq!(&stores.read_range(&outside.to_string_lossy(), 0, 3).await.unwrap()[..], b"abc");
        assert_eq!(stores.tier_state(&outside.to_string_lossy()).await, None);
        let err = stores.read_range(&location, 2, 3).await.unwrap_err();
        assert!(matches!(err, Error::Staging { retry_after_secs: 600, .. }), "{err}");
        // Answered while the stage command still runs: the read did not wait for it.
        assert_eq!(runs(&file), 0);
        let reads = (0..8).map(|_| {
            let stores = std::sync::Arc::clone(&stores);
            let location = format!("file://{}", location.replace(' ', "%20").replace('\'', "%27"));
            tokio::spawn(async move { stores.read_range(&location, 2, 3).await })
        });
        for read in reads {
            assert!(matches!(read.await.unwrap(), Err(Error::Staging { .. })));
        }
        assert_eq!(stores.tier_state(&location).await, Some(FileState::Staging));
        tokio::time::timeout(std::time::Duration::from_secs(10), finished.changed()).await.unwrap().unwrap();
        assert_eq!(runs(&file), 1, "one staging for every read of the file");
        assert_eq!(&stores.read_range(&location, 2, 3).await.unwrap()[..], b"234");
        assert_eq!(stores.tier_state(&location).await, Some(FileState::Online));
    }

    #[tokio::test]
    async fn a_failed_or_hung_staging_leaves_the_file_offline_until_its_retry_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tape")).unwrap();
        let file = dir.path().join("tape/a.nc");
        std::fs::write(&file, b"abc").unwrap();
        let location = file.to_string_lossy().into_owned();
        for tier in [
            tape(dir.path(), "0", 3),
            Tier { timeout: std::time::Duration::from_millis(300), ..tape(dir.path(), "30", 0) },
        ] {
            let stores = Stores::with_tiers(vec![tier]);
            let mut finished = stores.stagings_finished();
            assert!(matches!(stores.read_range(&location, 0, 3).await, Err(Error::Staging { .. })));
            tokio::time::timeout(std::time::Duration::from_secs(10), finished.changed()).await.unwrap().unwrap();
            assert_eq!(stores.tier_state(&location).await, Some(FileState::Offline));
            // Not staged again before `retry_after`: a broken tier is not hammered.
            assert!(matches!(stores.read_range(&location, 0, 3).await, Err(Error::Staging { .. })));
            assert_eq!(stores.tier_state(&location).await, Some(FileState::Offline));
        }
        // The failing command ran once; the hung one was killed before it logged.
        assert_eq!(runs(&file), 1);
    }

    #[tokio::test]
    async fn concurrent_first_reads_share_one_online_check() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tape")).unwrap();
        let file = dir.path().join("tape/a.nc");
        std::fs::write(&file, b"abc").unwrap();
        let checks = dir.path().join("checks");
        let check = format!("echo check >> {}; sleep 0.2", checks.display());
        let tier = Tier { online: vec!["sh".into(), "-c".into(), check], ..tape(dir.path(), "0", 0) };
        let stores = std::sync::Arc::new(Stores::with_tiers(vec![tier]));
        let reads = (0..16).map(|_| {
            let (stores, location) = (std::sync::Arc::clone(&stores), file.to_string_lossy().into_owned());
            tokio::spawn(async move { stores.read_range(&location, 0, 3).await })
        });
        for read in reads {
            assert_eq!(&read.await.unwrap().unwrap()[..], b"abc");
        }
        assert_eq!(std::fs::read_to_string(&checks).unwrap().lines().count(), 1);
    }

    #[tokio::test]
    async fn stage_orders_a_file_ahead_of_its_reads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tape")).unwrap();
        let file = dir.path().join("tape/a.nc");
        std::fs::write(&file, b"abc").unwrap();
        let location = file.to_string_lossy().into_owned();
        let stores = Stores::with_tiers(vec![tape(dir.path(), "0", 0)]);
        let mut finished = stores.stagings_finished();
        assert_eq!(stores.stage(&location).await, Some(FileState::Staging));
        tokio::time::timeout(std::time::Duration::from_secs(10), finished.changed()).await.unwrap().unwrap();
        assert_eq!(stores.stage(&location).await, Some(FileState::Online));
        assert_eq!(&stores.read_range(&location, 0, 3).await.unwrap()[..], b"abc");
        assert_eq!(runs(&file), 1);
    }
}
