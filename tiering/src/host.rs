//! The Azure Functions custom-handler payloads for non-HTTP invocations.
//!
//! The host posts `{"Data": {...}, "Metadata": {...}}` and expects
//! `{"Outputs": {}, "Logs": [...], "ReturnValue": ...}` as `application/json`.
//! Timer payloads have been seen with null or malformed timestamps, so parsing is
//! lenient: every field is optional and nothing here can fail a run.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the host sends for a timer invocation (all fields optional on purpose).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InvokeRequest {
    pub data: serde_json::Map<String, Value>,
    pub metadata: serde_json::Map<String, Value>,
}

impl InvokeRequest {
    /// Parses a body leniently: anything unparseable is treated as an empty request.
    pub fn lenient(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// `IsPastDue` of the first timer binding, if the host said so.
    pub fn is_past_due(&self) -> bool {
        self.data.values().any(|b| b.get("IsPastDue").and_then(Value::as_bool).unwrap_or(false))
    }

    /// `Metadata.sys.UtcNow` as sent (a string, possibly malformed).
    pub fn utc_now(&self) -> Option<&str> {
        self.metadata.get("sys")?.get("UtcNow")?.as_str()
    }
}

/// The answer to a non-HTTP invocation.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvokeResponse {
    pub outputs: serde_json::Map<String, Value>,
    pub logs: Vec<String>,
    pub return_value: Value,
}

/// Binds `127.0.0.1:port`, where the host calls a custom handler (0 = any free
/// port, for tests), and returns the listener with the address it really got.
pub async fn bind(port: u16) -> anyhow::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_hosts_timer_payload_and_tolerates_garbage() {
        let body = br#"{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":true}},"Metadata":{"sys":{"MethodName":"ArchiveBillingRecords","UtcNow":"2026-11-22T02:00:00.01Z","RandGuid":"x"}}}"#;
        let req = InvokeRequest::lenient(body);
        assert!(req.is_past_due());
        assert_eq!(req.utc_now(), Some("2026-11-22T02:00:00.01Z"));
        for garbage in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"Data\":5}",
            b"{\"Data\":{\"t\":{\"ScheduleStatus\":{\"Last\":\"yesterday\"}}}}",
        ] {
            let req = InvokeRequest::lenient(garbage);
            assert!(!req.is_past_due());
        }
    }

    #[test]
    fn response_has_the_hosts_casing() {
        let resp =
            InvokeResponse { logs: vec!["hi".into()], return_value: serde_json::json!({"a":1}), ..Default::default() };
        assert_eq!(serde_json::to_string(&resp).unwrap(), r#"{"Outputs":{},"Logs":["hi"],"ReturnValue":{"a":1}}"#);
    }
}
