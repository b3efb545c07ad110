//! Log lines as the apps write them in Azure (`tiering::telemetry`'s JSON
//! format), captured in memory: how tests check what the alerts and the
//! dashboard's queries read.

use std::sync::{Arc, Mutex};

/// A log writer into shared memory; clones write to the same buffer.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// A JSON subscriber at `filter` writing here (the production format).
    pub fn subscriber(&self, filter: &str) -> impl tracing::Subscriber + Send + Sync + 'static {
        let sink = self.clone();
        tiering::telemetry::json_subscriber(tiering::telemetry::EnvFilter::new(filter), move || sink.clone())
    }

    /// Every line written so far that parses as JSON.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
