//! The read budget: bytes read from datasets for answers not yet sent, bounded by
//! `server.max_inflight_bytes` so that memory stays within the configuration at any load.
//!
//! A plugin's read through the host (`host_api.rs`) takes its size from the budget
//! before it starts, waiting while the budget is spent. The grant stays with the request
//! being handled until its answer's bytes have been sent (or dropped), because the bytes read
//! live on in the answer: a stored chunk passed through, a decoded one until it is encoded.
//! Reads made outside a request (a body streamed piece by piece, start-up work) hold their
//! grant only while they read.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use axum::{extract::Request, middleware::Next, response::Response};
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Budget unit: a read of a few bytes still takes one.
const UNIT: u64 = 64 << 10;

/// How long an answer may hold its grants while the client reads it. A client that stops
/// reading keeps its connection (and the kernel's socket buffer) but no longer blocks the
/// reads of everyone else.
const SEND_GRACE: Duration = Duration::from_secs(60);

/// Bytes that reads may hold at once.
#[derive(Debug)]
pub struct ReadBudget {
    units: Arc<Semaphore>,
    max_units: u32,
    unsent: Arc<Unsent>,
    send_grace: Duration,
}

/// Answers holding grants that are being sent, by a serial number.
#[derive(Debug, Default)]
struct Unsent {
    next: AtomicU64,
    answers: Mutex<HashMap<u64, (Instant, Held)>>,
}

impl Unsent {
    fn answers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Instant, Held)>> {
        self.answers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Bytes taken from the budget; given back when dropped.
#[derive(Debug)]
pub(crate) struct Grant {
    _permit: Option<OwnedSemaphorePermit>,
}

impl ReadBudget {
    /// A budget of `max_bytes` (at least one unit).
    pub fn new(max_bytes: u64) -> Self {
        let max_units = u32::try_from(max_bytes.div_ceil(UNIT)).unwrap_or(u32::MAX >> 3).clamp(1, u32::MAX >> 3);
        Self {
            units: Arc::new(Semaphore::new(max_units as usize)),
            max_units,
            unsent: Arc::default(),
            send_grace: SEND_GRACE,
        }
    }

    /// Takes `bytes` from the budget, waiting while it is spent. A read larger than the whole
    /// budget takes all of it. A request that already holds a grant does not wait (it could
    /// wait for itself): it takes what is free, if anything.
    pub(crate) async fn take(&self, bytes: u64, held: Option<&Held>) -> Grant {
        let units = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX).clamp(1, self.max_units);
        if held.is_some_and(Held::holds_any) {
            return Grant { _permit: Arc::clone(&self.units).try_acquire_many_owned(units).ok() };
        }
        Grant { _permit: Arc::clone(&self.units).acquire_many_owned(units).await.ok() }
    }

    /// Keeps the grants of `held` (the request just answered) until the returned guard is
    /// dropped with the answer's bytes, or the send grace has passed (see [`Self::sweep`]).
    pub(crate) fn until_sent(&self, held: Option<Held>) -> Option<Release> {
        let held = held.filter(Held::holds_any)?;
        let serial = self.unsent.next.fetch_add(1, Ordering::Relaxed);
        self.unsent.answers().insert(serial, (Instant::now(), held.clone()));
        Some(Release { held, serial, unsent: Arc::clone(&self.unsent) })
    }

    /// Runs for the life of the server: every few seconds gives back the grants of answers
    /// that clients have been reading for longer than the send grace. One task for all
    /// answers, not a timer each.
    pub async fn sweep(&self) {
        let mut every = tokio::time::interval(self.send_grace / 12);
        loop {
            every.tick().await;
            self.unsent.answers().retain(|_, (since, held)| {
                let stale = since.elapsed() >= self.send_grace;
                if stale {
                    held.release();
                }
                !stale
            });
        }
    }

    /// Bytes free now (for tests and logs).
    pub fn available_bytes(&self) -> u64 {
        self.units.available_permits() as u64 * UNIT
    }
}

tokio::task_local! {
    static HELD: Held;
}

/// The grants of the request being handled, and how long its client should wait before
/// asking again when a read was refused for a file being staged.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held(Arc<Mutex<Vec<Grant>>>, Arc<std::sync::atomic::AtomicU64>);

impl Held {
    /// The grants of the request whose handler is running on this task, if any.
    pub(crate) fn current() -> Option<Self> {
        HELD.try_with(Clone::clone).ok()
    }

    /// Keeps `grant` until the request's answer has been sent.
    pub(crate) fn keep(&self, grant: Grant) {
        self.grants().push(grant);
    }

    /// Notes that a read was refused until its file is staged, `secs` from now.
    pub(crate) fn retry_after(&self, secs: u64) {
        self.1.fetch_max(secs, std::sync::atomic::Ordering::Relaxed);
    }

    /// The longest wait a refused read asked for, if any.
    pub(crate) fn retry_after_secs(&self) -> Option<u64> {
        Some(self.1.load(std::sync::atomic::Ordering::Relaxed)).filter(|secs| *secs > 0)
    }

    fn holds_any(&self) -> bool {
        !self.grants().is_empty()
    }

    fn release(&self) {
        self.grants().clear();
    }

    fn grants(&self) -> std::sync::MutexGuard<'_, Vec<Grant>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Middleware: the reads a request's handler makes are collected for its answer to carry
/// (see [`sent_with`]).
pub(crate) async fn hold_reads(req: Request, next: Next) -> Response {
    HELD.scope(Held::default(), next.run(req)).await
}

/// Gives an answer's grants back when dropped.
pub(crate) struct Release {
    held: Held,
    serial: u64,
    unsent: Arc<Unsent>,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.held.release();
        self.unsent.answers().remove(&self.serial);
    }
}

/// The bytes of an answer, holding `release` until they have been sent: hyper drops a body
/// as soon as it has queued the last bytes, but the bytes themselves only once they are
/// written to the socket.
pub(crate) fn sent_with<T: AsRef<[u8]> + Send + 'static>(bytes: T, release: Option<Release>) -> Bytes {
    match release {
        Some(release) => Bytes::from_owner(Holding { bytes, _release: release }),
        None => Bytes::from_owner(bytes),
    }
}

/// Bytes with the grants of the reads they came from.
struct Holding<T> {
    bytes: T,
    _release: Release,
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Holding<T> {
    fn as_ref(&self) -> &[u8] {
        self.bytes.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_wait_while_the_budget_is_spent_and_resume_when_answers_are_sent() {
        let budget = Arc::new(ReadBudget::new(4 * UNIT));
        let first = Held::default();
        first.keep(budget.take(3 * UNIT, None).await);
        let answer = sent_with(vec![1u8; 10], budget.until_sent(Some(first)));
        assert_eq!(budget.available_bytes(), UNIT);
        // A second request needing more than is left waits ...
        let waiting = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { budget.take(2 * UNIT, None).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        // ... until the first answer's bytes are gone.
        drop(answer);
        let grant = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert_eq!(budget.available_bytes(), 2 * UNIT);
        drop(grant);
        assert_eq!(budget.available_bytes(), 4 * UNIT);
        assert!(budget.unsent.answers().is_empty());
    }

    #[tokio::test]
    async fn a_request_holding_a_grant_never_waits_for_itself() {
        let budget = ReadBudget::new(2 * UNIT);
        let held = Held::default();
        held.keep(budget.take(2 * UNIT, Some(&held)).await);
        let more = tokio::time::timeout(Duration::from_secs(1), budget.take(UNIT, Some(&held))).await;
        assert!(more.is_ok(), "a second read of the same request must not wait");
        // A read larger than the whole budget takes all of it instead of waiting forever.
        held.release();
        let _all = tokio::time::timeout(Duration::from_secs(1), budget.take(100 * UNIT, None)).await.unwrap();
        assert_eq!(budget.available_bytes(), 0);
    }

    #[tokio::test]
    async fn answers_nobody_reads_give_their_grants_back_after_the_grace() {
        let budget = Arc::new(ReadBudget { send_grace: Duration::from_millis(120), ..ReadBudget::new(2 * UNIT) });
        let held = Held::default();
        held.keep(budget.take(2 * UNIT, None).await);
        let unread = sent_with(vec![0u8; 10], budget.until_sent(Some(held)));
        let sweeper = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { budget.sweep().await }
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(budget.available_bytes(), 2 * UNIT, "the grace has passed");
        assert!(budget.unsent.answers().is_empty());
        drop(unread);
        sweeper.abort();
    }
}
