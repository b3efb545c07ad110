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

#[cfg(test)]
mod tests {
    use super::*;
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
