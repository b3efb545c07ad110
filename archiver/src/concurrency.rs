//! How many records the archiver works on at once: found while it runs.
//!
//! In Azure every step of a record waits on the network, so the best number of
//! records in flight depends on latency and on what the account can take; locally
//! the emulators saturate the CPU at a handful. `ARCHIVE_CONCURRENCY` is therefore
//! an upper bound (`auto`: 64), and an AIMD controller picks the limit below it:
//!
//! - it measures windows of completed records (at least the current limit, and at
//!   least 200 ms): throughput, mean latency, and 429s the SDK retried;
//! - *slow start*: from 2, it doubles the limit while each window's throughput
//!   grows by at least 10%; when a doubling stops paying, it steps back;
//! - *additive increase*: afterwards it adds one while throughput holds and latency
//!   stays within 1.5x the best seen;
//! - *multiplicative decrease*: any 429 halves the limit; latency above 2.5x the
//!   best seen (requests queueing in a store) cuts it by a quarter; throughput
//!   falling by 10% takes one off.
//!
//! The run summary reports the limit it settled on (`concurrency`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Where slow start begins.
const START: usize = 2;
const MIN_WINDOW: Duration = Duration::from_millis(200);

/// The controller's arithmetic, free of time sources and tasks.
#[derive(Debug, Clone)]
pub struct Aimd {
    max: usize,
    limit: usize,
    slow_start: bool,
    /// The limit before the last doubling (to step back to).
    before_doubling: usize,
    best_latency: Option<Duration>,
    prev_rate: Option<f64>,
    window_start: Option<Instant>,
    completions: u32,
    throttled: u32,
    latency_sum: Duration,
    held: bool,
}

impl Aimd {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        let limit = START.min(max);
        Self {
            max,
            limit,
            slow_start: true,
            before_doubling: limit,
            best_latency: None,
            prev_rate: None,
            window_start: None,
            completions: 0,
            throttled: 0,
            latency_sum: Duration::ZERO,
            held: false,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Pins the limit at `limit`: windows are still measured, nothing changes.
    pub fn hold(&mut self, limit: usize) {
        self.limit = limit.clamp(1, self.max);
        self.held = true;
    }

    /// One record finished after `latency`, with `throttled` 429s on the way.
    /// Returns the new limit when a window closed.
    pub fn observe(&mut self, now: Instant, latency: Duration, throttled: u32) -> Option<usize> {
        let start = *self.window_start.get_or_insert(now);
        self.completions += 1;
        self.throttled += throttled;
        self.latency_sum += latency;
        let elapsed = now.duration_since(start);
        if (self.completions as usize) < self.limit.max(4) || elapsed < MIN_WINDOW {
            return None;
        }
        let rate = f64::from(self.completions) / elapsed.as_secs_f64();
        let latency = self.latency_sum / self.completions;
        let best = *self.best_latency.get_or_insert(latency);
        self.best_latency = Some(best.min(latency));
        let prev = self.prev_rate;
        let limit = self.limit;
        self.limit = if self.held {
            limit
        } else if self.throttled > 0 {
            self.slow_start = false;
            (limit / 2).max(1)
        } else if latency > best.mul_f64(2.5) {
            self.slow_start = false;
            (limit * 3 / 4).max(1)
        } else if self.slow_start {
            match prev {
                Some(prev) if rate < prev * 1.10 => {
                    // The last doubling did not pay: step back and probe from there.
                    self.slow_start = false;
                    self.before_doubling.max(limit * 3 / 4).max(1)
                }
                _ => {
                    self.before_doubling = limit;
                    (limit * 2).min(self.max)
                }
            }
        } else {
            match prev {
                Some(prev) if rate < prev * 0.90 => limit.saturating_sub(1).max(1),
                Some(prev) if rate >= prev * 0.97 && latency <= best.mul_f64(1.5) => (limit + 1).min(self.max),
                _ => limit,
            }
        };
        self.prev_rate = Some(rate);
        self.window_start = Some(now);
        self.completions = 0;
        self.throttled = 0;
        self.latency_sum = Duration::ZERO;
        Some(self.limit)
    }
}

/// The limit as a semaphore the pipeline takes a permit from for each record.
#[derive(Debug)]
pub struct AdaptiveLimit {
    permits: Arc<Semaphore>,
    /// Permits to drop as they come back, after the limit went down.
    owed: Arc<AtomicUsize>,
    control: Mutex<Aimd>,
}

/// A record's place in the limit; give it back with [`AdaptiveLimit::finished`].
#[derive(Debug)]
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    owed: Arc<AtomicUsize>,
    started: Instant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            let pay = self.owed.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if pay.is_ok() {
                permit.forget();
            }
        }
    }
}

impl AdaptiveLimit {
    /// Up to `max` in flight: found by the controller when `adaptive`, else exactly `max`.
    pub fn new(max: usize, adaptive: bool) -> Self {
        let mut control = Aimd::new(max);
        if !adaptive {
            control.hold(max);
        }
        Self {
            permits: Arc::new(Semaphore::new(control.limit())),
            owed: Arc::new(AtomicUsize::new(0)),
            control: Mutex::new(control),
        }
    }

    /// Waits for room under the current limit.
    pub async fn acquire(&self) -> Slot {
        let permit = self.permits.clone().acquire_owned().await.ok();
        Slot { permit, owed: self.owed.clone(), started: Instant::now() }
    }

    /// A record is done: its latency and 429s feed the controller.
    pub fn finished(&self, slot: Slot, throttled: u32) {
        let now = Instant::now();
        let latency = now.duration_since(slot.started);
        drop(slot);
        let Ok(mut control) = self.control.lock() else { return };
        let before = control.limit();
        let Some(after) = control.observe(now, latency, throttled) else { return };
        if after > before {
            let mut grow = after - before;
            // Cancel debts first, then hand out new permits.
            while grow > 0 && self.owed.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                grow -= 1;
            }
            self.permits.add_permits(grow);
        } else if after < before {
            let shrink = before - after;
            let forgotten = self.permits.forget_permits(shrink);
            self.owed.fetch_add(shrink - forgotten, Ordering::SeqCst);
        }
    }

    pub fn current(&self) -> usize {
        self.control.lock().map(|c| c.limit()).unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store that serves `capacity` records/s with `base` latency when idle:
    /// with `n` in flight, latency is max(base, n / capacity) (queueing beyond).
    fn settle(max: usize, capacity: f64, base: Duration, throttle_above: Option<usize>) -> (Aimd, f64) {
        let mut aimd = Aimd::new(max);
        let mut now = Instant::now();
        let mut rate = 0.0;
        for _ in 0..400 {
            let n = aimd.limit() as f64;
            let latency = base.max(Duration::from_secs_f64(n / capacity));
            rate = n / latency.as_secs_f64();
            let throttled = u32::from(throttle_above.is_some_and(|t| aimd.limit() > t));
            let step = Duration::from_secs_f64(1.0 / rate);
            loop {
                now += step;
                if aimd.observe(now, latency, throttled).is_some() {
                    break;
                }
            }
        }
        (aimd, rate)
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_finds_the_knee_of_the_store() {
        // 10 ms per record when idle, 1,000 records/s at most: the knee is at 10 in flight.
        let (aimd, rate) = settle(64, 1_000.0, Duration::from_millis(10), None);
        assert!((6..=30).contains(&aimd.limit()), "settled at {}", aimd.limit());
        assert!(rate >= 800.0, "throughput {rate}");
        // A store that saturates at once (local emulators on two cores): stays low.
        let (aimd, _) = settle(64, 100.0, Duration::from_millis(10), None);
        assert!(aimd.limit() <= 4, "settled at {}", aimd.limit());
        // Never above the upper bound.
        let (aimd, _) = settle(3, 1_000.0, Duration::from_millis(10), None);
        assert!(aimd.limit() <= 3);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_limit() {
        let (aimd, _) = settle(64, 10_000.0, Duration::from_millis(10), Some(8));
        assert!(aimd.limit() <= 9, "settled at {} despite 429s above 8", aimd.limit());
        let mut aimd = Aimd::new(64);
        let mut now = Instant::now();
        let mut limits = Vec::new();
        for i in 0..64 {
            now += Duration::from_millis(20);
            if let Some(l) = aimd.observe(now, Duration::from_millis(10), u32::from(i > 40)) {
                limits.push(l);
            }
        }
        assert!(limits.windows(2).any(|w| w[1] * 2 <= w[0] + 1), "{limits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_semaphore_follows_the_limit() {
        assert_eq!(AdaptiveLimit::new(8, false).current(), 8, "a held limit starts where it stays");
        let limit = AdaptiveLimit::new(64, true);
        assert_eq!(limit.current(), START);
        let a = limit.acquire().await;
        let b = limit.acquire().await;
        assert!(tokio::time::timeout(Duration::from_millis(10), limit.acquire()).await.is_err(), "full at 2");
        drop((a, b));
        let _c = limit.acquire().await;
    }
}
