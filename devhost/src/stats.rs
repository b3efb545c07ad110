//! Latency percentiles and the storage-cost model printed by the demo.

use std::time::Duration;

/// The `p`th percentile (0..=100) by nearest rank; `None` for no samples.
pub fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// [`percentile`] in milliseconds; 0 for no samples.
pub fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    percentile(samples, p).unwrap_or_default().as_secs_f64() * 1000.0
}

/// Monthly list prices (USD per GB-month) the projection uses; defaults are
/// pay-as-you-go list prices for a single region, to be replaced with your own.
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    /// Cosmos DB transactional storage.
    pub cosmos_per_gb: f64,
    /// Blob Storage in the archive's access tier (Cool LRS by default).
    pub blob_per_gb: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Self { cosmos_per_gb: 0.25, blob_per_gb: 0.01 }
    }
}

/// Storage cost per month before archiving (all in Cosmos) and after
/// (`hot_fraction` in Cosmos, the rest compressed by `ratio` in Blob).
pub fn monthly_cost(total_gb: f64, hot_fraction: f64, ratio: f64, prices: Prices) -> (f64, f64) {
    let before = total_gb * prices.cosmos_per_gb;
    let after = total_gb * hot_fraction * prices.cosmos_per_gb
        + total_gb * (1.0 - hot_fraction) / ratio.max(1.0) * prices.blob_per_gb;
    (before, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&s[..1], 99.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn cost_model() {
        let (before, after) = monthly_cost(600.0, 0.2, 6.0, Prices::default());
        assert!((before - 150.0).abs() < 1e-9);
        assert!((after - (30.0 + 480.0 / 6.0 * 0.01)).abs() < 1e-9);
    }
}
