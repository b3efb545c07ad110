//! The request-unit budget (`ARCHIVE_MAX_RU_PER_SECOND`), so archiving never starves the live API.
//!
//! Cosmos reports what each operation cost only afterwards (`x-ms-request-charge`),
//! so the budget is kept as a debt: every operation adds its charge
//! ([`charge`](RuBudget::charge), which never waits), and *new* work waits
//! ([`admit`](RuBudget::admit)) until the rate limiter has paid the debt off. A
//! record already in flight is never held up by the budget, and a pass pays what
//! is left before it ends. Over a whole pass the run spends at most the budget;
//! over one second, at most the budget plus what the records in flight spend.

use std::num::NonZeroU32;
use std::sync::Mutex;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

#[derive(Debug)]
pub struct RuBudget {
    limiter: Option<DefaultDirectRateLimiter>,
    per_second: u32,
    /// Request units spent and not yet paid for, in hundredths.
    debt: Mutex<u64>,
}

impl RuBudget {
    /// `0` means unlimited.
    pub fn new(per_second: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|n| RateLimiter::direct(Quota::per_second(n)));
        Self { limiter, per_second, debt: Mutex::new(0) }
    }

    /// Records what an operation cost. Never waits.
    pub fn charge(&self, request_units: f64) {
        if self.limiter.is_some()
            && let Ok(mut debt) = self.debt.lock()
        {
            *debt += (request_units.max(0.0) * 100.0).ceil() as u64;
        }
    }

    /// Waits until everything charged so far fits the budget. Call before new work.
    pub async fn admit(&self) {
        let Some(limiter) = &self.limiter else { return };
        loop {
            // Whole request units, at most one second's budget at a time: the
            // limiter's burst is one second's worth.
            let part = match self.debt.lock() {
                Ok(mut debt) if *debt >= 100 => {
                    let part = (*debt / 100).min(u64::from(self.per_second));
                    *debt -= part * 100;
                    part
                }
                _ => return,
            };
            if let Some(n) = NonZeroU32::new(part as u32) {
                // `n` never exceeds the burst size, so this cannot be InsufficientCapacity.
                let _ = limiter.until_n_ready(n).await;
            }
        }
    }
}

/// The budget when the container's throughput cannot be known (a serverless
/// account, an identity that may not read it and no ARCHIVE_CONTAINER_RU_PER_SECOND):
/// about 6 records of 300 KB a second, never more than a 1,000 RU/s container's
/// whole throughput. docs/operations.md, "The request-unit budget".
pub const UNKNOWN_THROUGHPUT_BUDGET: u32 = 1000;

/// The default budget (`ARCHIVE_MAX_RU_PER_SECOND` unset or `auto`):
/// `share_percent` of the container's throughput (its manual RU/s, its autoscale
/// maximum, or its database's shared throughput), else of the throughput the
/// deployment read (`deployed`), else [`UNKNOWN_THROUGHPUT_BUDGET`]; with what
/// it is, in words, for the start-up line and the run summary.
pub fn from_throughput(
    throughput: &tiering::cosmos::Throughput,
    share_percent: u32,
    deployed: Option<u32>,
) -> (u32, String) {
    use tiering::cosmos::Throughput;
    let share = |ru: u64| u32::try_from(ru.saturating_mul(u64::from(share_percent)) / 100).unwrap_or(u32::MAX).max(1);
    match (throughput, deployed) {
        (Throughput::Manual(ru), _) => {
            (share(*ru), format!("{share_percent}% of the container's {ru} RU/s (manual throughput)"))
        }
        (Throughput::Autoscale(max), _) => {
            (share(*max), format!("{share_percent}% of the container's autoscale maximum of {max} RU/s"))
        }
        (Throughput::Database(ru), _) => (share(*ru), format!("{share_percent}% of the database's shared {ru} RU/s")),
        (Throughput::Unknown(why), Some(ru)) => (
            share(u64::from(ru)),
            format!(
                "{share_percent}% of {ru} RU/s, as the deployment read it (ARCHIVE_CONTAINER_RU_PER_SECOND): {why}"
            ),
        ),
        (Throughput::Unknown(why), None) => (
            UNKNOWN_THROUGHPUT_BUDGET,
            format!("{UNKNOWN_THROUGHPUT_BUDGET} RU/s, the stated default: {why}; set ARCHIVE_MAX_RU_PER_SECOND"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_is_a_share_of_what_the_container_has() {
        use tiering::cosmos::Throughput;
        let cases = [
            (Throughput::Manual(10_000), None, 5_000, "manual"),
            (Throughput::Autoscale(40_000), None, 20_000, "autoscale maximum"),
            (Throughput::Database(4_000), Some(99), 2_000, "shared"),
            (Throughput::Unknown("serverless".into()), Some(12_000), 6_000, "as the deployment read it"),
            (Throughput::Unknown("serverless".into()), None, UNKNOWN_THROUGHPUT_BUDGET, "stated default"),
            (Throughput::Manual(1), None, 1, "manual"),
        ];
        for (throughput, deployed, budget, says) in cases {
            let (got, why) = from_throughput(&throughput, 50, deployed);
            assert_eq!(got, budget, "{throughput:?}");
            assert!(why.contains(says), "{why}");
        }
    }
    use std::time::Instant;

    #[tokio::test]
    async fn unlimited_never_waits_and_a_budget_paces_new_work_only() {
        let free = RuBudget::new(0);
        let t = Instant::now();
        for _ in 0..1000 {
            free.charge(50.0);
            free.admit().await;
        }
        assert!(t.elapsed().as_millis() < 100);

        // 100 RU/s, burst 100: charging is instant; admitting after 300 RU takes about two seconds.
        let paced = RuBudget::new(100);
        let t = Instant::now();
        for _ in 0..30 {
            paced.charge(10.0);
        }
        assert!(t.elapsed().as_millis() < 50, "charging never waits");
        paced.admit().await;
        let secs = t.elapsed().as_secs_f64();
        assert!((1.8..3.5).contains(&secs), "{secs}");
        // A charge above the per-second budget is paid in instalments.
        let t = Instant::now();
        paced.charge(250.0);
        paced.admit().await;
        let secs = t.elapsed().as_secs_f64();
        assert!((1.8..3.5).contains(&secs), "{secs}");
    }
}
