//! The request-unit budget (`ARCHIVE_MAX_RU_PER_SECOND`), so archiving never starves the live API.
//!
//! Cosmos reports what each operation cost only afterwards (`x-ms-request-charge`),
//! so the budget is paid in arrears: after an operation the worker waits until the
//! rate limiter has room for what it spent. Over any second-long window the run
//! therefore spends at most the budget plus one operation's charge per worker.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

#[derive(Debug)]
pub struct RuBudget {
    limiter: Option<DefaultDirectRateLimiter>,
    per_second: u32,
}

impl RuBudget {
    /// `0` means unlimited.
    pub fn new(per_second: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|n| RateLimiter::direct(Quota::per_second(n)));
        Self { limiter, per_second }
    }

    /// Waits until `request_units` more fit in the budget.
    pub async fn spend(&self, request_units: f64) {
        let Some(limiter) = &self.limiter else { return };
        // The limiter's burst is one second's budget; a larger charge is paid in
        // instalments, so one 300 KB delete still costs its full share of time.
        let mut owed = request_units.ceil().max(0.0) as u64;
        while owed > 0 {
            let part = owed.min(u64::from(self.per_second));
            owed -= part;
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
    async fn unlimited_never_waits_and_a_budget_paces_spending() {
        let free = RuBudget::new(0);
        let t = Instant::now();
        for _ in 0..1000 {
            free.spend(50.0).await;
        }
        assert!(t.elapsed().as_millis() < 100);

        // 100 RU/s, burst 100: spending 300 RU must take about two seconds.
        let paced = RuBudget::new(100);
        let t = Instant::now();
        for _ in 0..30 {
            paced.spend(10.0).await;
        }
        let secs = t.elapsed().as_secs_f64();
        assert!((1.8..3.5).contains(&secs), "{secs}");
        // A charge above the per-second budget is paid in instalments.
        let t = Instant::now();
        paced.spend(250.0).await;
        let secs = t.elapsed().as_secs_f64();
        assert!((1.8..3.5).contains(&secs), "{secs}");
    }
}
