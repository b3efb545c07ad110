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

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting
/// and lets the requests in flight finish. Both apps' `main` pass the SIGTERM /
/// Ctrl-C signal ([`crate::telemetry::shutdown_signal`]); tests pass a channel.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use anyhow::Context;
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await.context("serving")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_shutdown_lets_the_request_in_flight_finish_and_then_stops_serving() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let slow = axum::Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                "done"
            }),
        );
        let (listener, addr) = bind(0).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, slow, async move {
            let _ = stopped.await;
        }));
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stop.send(()).unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"), "{answer}");
        let served = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
        served.expect("serve returns once the request in flight is answered").unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer listening");
    }

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
