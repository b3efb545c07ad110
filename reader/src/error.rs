//! The read API's one error type and its JSON shape (docs/read-api.md, "Errors").

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tiering::codec::CodecError;
use tiering::store::StoreError;
use tracing::error;

/// The tiers, as error messages name them.
pub const COSMOS: &str = "Cosmos DB";
pub const ARCHIVE: &str = "the archive";

/// Default `Retry-After` (seconds) for an outage that named no delay.
const RETRY_AFTER_SECONDS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; the message tells the caller what to fix.
    #[error("{0}")]
    BadRequest(String),
    /// 404: the record is in neither tier (or the route does not exist).
    #[error("{0}")]
    NotFound(String),
    /// 405: not a method of this route; `allow` lists those that are.
    #[error("method not allowed")]
    MethodNotAllowed { allow: String },
    /// 413: a write body over the bound forwarded.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 502: the current API (write-through) could not be reached (`applied`
    /// false), or its answer was lost after the request was sent.
    #[error("{detail}")]
    BadGateway { applied: bool, detail: String },
    /// 504: the current API was sent the write but did not answer in time.
    #[error("{0}")]
    GatewayTimeout(String),
    /// 503: a tier that had to be consulted could not be.
    #[error("{tier} is unavailable: {detail}")]
    Unavailable { tier: &'static str, retry_after: u64, detail: String },
    /// 500: something we cannot blame on the caller; `detail` is logged, not sent.
    #[error("{message}: {detail}")]
    Internal { message: String, detail: String },
}

impl ApiError {
    /// Maps a store failure met while consulting `tier`.
    pub fn from_store(tier: &'static str, e: StoreError) -> Self {
        match e {
            StoreError::Throttled { retry_after } => {
                Self::Unavailable { tier, retry_after: retry_after.as_secs().max(1), detail: "throttled".into() }
            }
            StoreError::Unavailable(detail) => Self::Unavailable { tier, retry_after: RETRY_AFTER_SECONDS, detail },
            // The item changed while it was being read (a blob replaced between two
            // ranges): asking again gets a consistent answer.
            StoreError::PreconditionFailed | StoreError::AlreadyExists => {
                Self::Unavailable { tier, retry_after: 1, detail: "changed while it was read".into() }
            }
            StoreError::Corrupt(c @ CodecError::UnsupportedFormat(_)) => Self::Internal {
                message: "the archived copy of this record is in an archive format this reader does not serve".into(),
                detail: c.to_string(),
            },
            StoreError::Corrupt(c) => Self::Internal {
                message: "the archived copy of this record failed its integrity check".into(),
                detail: c.to_string(),
            },
            // Not the caller's fault and not transient: say what the store objected to
            // (its message names no data), so an operator can act on it.
            StoreError::Refused(why) => {
                let first_line: String = why.lines().next().unwrap_or_default().chars().take(300).collect();
                Self::Internal { message: format!("{tier} refused the request: {first_line}"), detail: why }
            }
            other => Self::Internal { message: format!("unexpected error from {tier}"), detail: other.to_string() },
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "BadRequest",
            Self::NotFound(_) => "NotFound",
            Self::MethodNotAllowed { .. } => "MethodNotAllowed",
            Self::PayloadTooLarge(_) => "PayloadTooLarge",
            Self::BadGateway { .. } => "BadGateway",
            Self::GatewayTimeout(_) => "GatewayTimeout",
            Self::Unavailable { .. } => "ServiceUnavailable",
            Self::Internal { .. } => "Internal",
        }
    }

    /// What the caller may see: 5xx details stay in the logs.
    fn public_message(&self) -> String {
        match self {
            Self::Unavailable { tier, .. } => format!("{tier} could not be reached; retry later"),
            Self::BadGateway { applied: false, .. } => {
                "the current API could not be reached; nothing was applied".into()
            }
            Self::BadGateway { applied: true, .. } => {
                "the current API's answer was lost; the write may or may not have been applied".into()
            }
            Self::GatewayTimeout(_) => {
                "the current API did not answer in time; the write may or may not have been applied".into()
            }
            Self::Internal { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// The contract's error body.
pub fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message}}).to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            // Logged once, here, with the full chain; the caller gets the safe message.
            error!(status = self.status().as_u16(), error = %self, "request failed");
        }
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"))],
            error_body(self.code(), &self.public_message()),
        )
            .into_response();
        if let Self::Unavailable { retry_after, .. } = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        if let Self::MethodNotAllowed { allow } = &self {
            // RFC 9110: a 405 lists what the resource does allow (HEAD comes with GET).
            let allow = HeaderValue::from_str(allow).unwrap_or(HeaderValue::from_static("GET, HEAD"));
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    }
}
