//! Write-through (`READER_UPSTREAM_URL`): the record route also takes the write
//! methods the contract profile names, and passes each to the team's current API
//! (docs/writes.md).
//!
//! For every write: if the record is archived, move it back into Cosmos first
//! (`tiering::moveback`), so the current API finds it where it always did; then
//! forward the request unchanged (method, path, query, body, every header but
//! the hop-by-hop ones) and return the upstream's answer unchanged. Consumers
//! cannot tell. A move-back that cannot complete answers 503 with `Retry-After`
//! and forwards nothing; an upstream that cannot be reached answers 502 with the
//! JSON error body, the record hot and intact (or 502 saying the write may have
//! been applied, when the connection broke after the request was sent; 504 past
//! [`UPSTREAM_TIMEOUT`]).
//!
//! The archive run can archive a record between the check here and the
//! upstream's write (only a record whose last write is older than the quiet
//! period, `ARCHIVE_QUIET_DAYS`): the upstream then gives its missing-record
//! answer for a record that exists. So that answer to a write is checked once:
//! when the record has an archived copy by then, it is moved back and the
//! request forwarded again (the answer means the upstream applied nothing).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::TryStreamExt;
use tiering::moveback::{self, MoveBackError, MovedBack};
use tracing::{info, warn};

use crate::error::{ARCHIVE, ApiError};
use crate::routes::route_values;
use crate::tiers::Tiers;

/// The largest request body forwarded: above Cosmos's 2 MB item limit, so
/// nothing the upstream could store is refused here.
pub const MAX_WRITE_BYTES: usize = 4 * 1024 * 1024;

/// How long a write may take in all, forwards and move-backs together: below
/// the Functions host's 230-second limit on an HTTP request, and independent of
/// `READER_TIMEOUT_SECONDS` (a read's deadline, which bounds each move-back).
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(220);

/// The route placeholder of a record's sub-path (`{record route}/{*action}`).
pub const ACTION_PARAM: &str = "action";

/// The team's current API, and the client that forwards to it.
#[derive(Debug, Clone)]
pub struct Upstream {
    base: url::Url,
    client: reqwest13::Client,
}

impl Upstream {
    /// `base` is the current API's origin, with an optional path before the
    /// request's own (`https://billing.example.com`, `https://gw.example.com/billing`).
    pub fn new(base: url::Url, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest13::Client::builder()
            // Answers go back as they came: no redirect followed, nothing decompressed.
            .redirect(reqwest13::redirect::Policy::none())
            .no_gzip()
            .no_deflate()
            .no_proxy()
            .connect_timeout(timeout.clamp(Duration::from_secs(1), Duration::from_secs(5)))
            .build()?;
        Ok(Self { base, client })
    }

    /// The upstream URL for a request path and query.
    pub fn url_for(&self, path_and_query: &str) -> String {
        let base = self.base.as_str().trim_end_matches('/');
        format!("{base}{path_and_query}")
    }
}

/// RFC 9110, 7.6.1: headers meant for one connection, never forwarded (with
/// those the `Connection` header names). `Host` names this app, not the upstream.
fn hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        HeaderName::from_static("proxy-connection"),
    ]
    .into();
    for value in headers.get_all(header::CONNECTION) {
        for name in value.to_str().unwrap_or_default().split(',') {
            if let Ok(name) = HeaderName::try_from(name.trim()) {
                names.push(name);
            }
        }
    }
    names
}

fn end_to_end(headers: &HeaderMap, also_drop: &[HeaderName]) -> HeaderMap {
    let drop = hop_by_hop(headers);
    let mut kept = headers.clone();
    for name in drop.iter().chain(also_drop) {
        kept.remove(name);
    }
    kept
}

/// The path a consumer sent, before the case of its literals was made the
/// profile's (`in_any_case` in lib.rs): what the upstream is sent.
#[derive(Debug, Clone)]
pub struct SentPath(pub String);

/// A write to the record route (or to a record's sub-path), as the profile allows.
///
/// The record is moved back first when archived, then the request forwarded.
/// An `If-Match` naming the archived version (the ETag the archive served) is
/// sent as the moved-back record's new ETag: the same version, under the name
/// Cosmos gave it. When the current API gives its missing-record answer and the
/// record has an archived copy by then (archived by a run in between), it is
/// moved back and the request forwarded once more: that answer means nothing
/// was applied. After a delete is answered 2xx, a copy still in the archive (a
/// stale one beside a hot record) is deleted, so nothing serves the record.
pub async fn write_record(
    State(tiers): State<Tiers>,
    path: Result<Path<Vec<(String, String)>>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let Some(upstream) = tiers.upstream.clone() else {
        return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD".into() });
    };
    // Checked before anything is asked or forwarded: the same id rules as reads.
    let path = path.map(|Path(values)| Path(values.into_iter().filter(|(k, _)| k != ACTION_PARAM).collect()));
    let values = route_values(path)?;
    let (partition_key, id) = tiers.contract.key_of(&values).ok_or_else(|| ApiError::Internal {
        message: "the route does not hold the record's key".into(),
        detail: format!("route values {values:?}"),
    })?;
    // A caller who may not read the record cannot make it hot; the upstream
    // gets the caller's credentials unchanged and keeps its own checks.
    let caller = request.extensions().get::<crate::auth::Caller>();
    if let Some(denied) =
        crate::auth::refusal(&tiers.contract, caller, crate::auth::Access::Write, &values, partition_key, Some(id))
    {
        return Ok(denied);
    }
    let (partition_key, id) = (partition_key.to_owned(), id.to_owned());
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_WRITE_BYTES).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::PayloadTooLarge(format!("a write body is at most {MAX_WRITE_BYTES} bytes"))
        } else {
            ApiError::BadRequest(format!("the request body could not be read: {e}"))
        }
    })?;
    let path_and_query = match parts.extensions.get::<SentPath>() {
        Some(SentPath(sent)) => sent.clone(),
        None => parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default(),
    };
    let write_deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    let deadline = tokio::time::Instant::now() + tiers.request_timeout;
    let moved = within(deadline, "moving the record back", move_back(&tiers, &partition_key, &id)).await??;
    let send = |moved: &MovedBack| {
        let mut headers = parts.headers.clone();
        if let MovedBack::Restored { archived_etag, etag, .. } = moved {
            rename_if_match(&mut headers, archived_etag, etag);
        }
        let body = body.clone();
        let (upstream, method, path_and_query) = (&upstream, &parts.method, &path_and_query);
        let limit = (write_deadline - tokio::time::Instant::now()).max(Duration::from_secs(1));
        async move { forward(upstream, method, path_and_query, &headers, body, limit).await }
    };
    let mut answer = send(&moved).await?;
    let mut moved_again = MovedBack::NotArchived;
    if answer.status().as_u16() == tiers.contract.not_found.status {
        // Archived between the move-back and the upstream's write? Then once more.
        let deadline = tokio::time::Instant::now() + tiers.request_timeout;
        moved_again = within(deadline, "moving the record back", move_back(&tiers, &partition_key, &id)).await??;
        if moved_again != MovedBack::NotArchived {
            answer = send(&moved_again).await?;
        }
    }
    let status = answer.status();
    if parts.method == Method::DELETE && status.is_success() {
        remove_copy(&tiers, &partition_key, &id).await;
    }
    info!(
        route = "write",
        method = %parts.method,
        status = status.as_u16(),
        moved_back = ?moved,
        moved_again = ?moved_again,
        latency_us = started.elapsed().as_micros() as u64,
        "write"
    );
    Ok(relay(answer))
}

/// `If-Match: <archived ETag>` becomes `If-Match: <the moved-back record's ETag>`;
/// any other condition is left as the caller sent it.
fn rename_if_match(headers: &mut HeaderMap, archived: &str, now: &str) {
    let Ok(renamed) = axum::http::HeaderValue::from_str(now) else { return };
    let names_archived = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == archived));
    if names_archived && !now.is_empty() {
        headers.insert(header::IF_MATCH, renamed);
    }
}

/// After a delete the current API answered 2xx: a copy left in the archive (a
/// stale copy beside the hot record, which would serve the deleted record from
/// now on) is deleted at the ETag it was found at. Best effort: a copy leased
/// by a move-back in progress, or changed meanwhile, is logged as an error for
/// a person (`archiver forget` removes it): to every command it looks like an
/// archived record, which it now serves.
async fn remove_copy(tiers: &Tiers, partition_key: &str, id: &str) {
    let Ok(name) = tiering::layout::blob_name(partition_key, id) else { return };
    match tiers.archive.head(&name).await {
        Err(tiering::store::StoreError::NotFound) => {}
        Ok(info) => match tiers.archive.delete_if_match(&name, &info.etag).await {
            Ok(()) => {
                if let Ok(meta) = tiering::codec::ArchiveMeta::from_metadata(&info.metadata) {
                    tiering::index::remove_for_copy(tiers.archive.as_ref(), &name, &meta).await;
                }
                info!(partition_key, id, "deleted: its stale archived copy removed too");
            }
            Err(e) => {
                tracing::error!(partition_key, id, error = %e, "deleted, but its archived copy could not be removed: it serves the record until `archiver forget` removes it")
            }
        },
        Err(e) => warn!(partition_key, id, error = %e, "deleted, but the archive could not be checked for a copy"),
    }
}

async fn within<T>(
    deadline: tokio::time::Instant,
    step: &'static str,
    work: impl Future<Output = T>,
) -> Result<T, ApiError> {
    tokio::time::timeout_at(deadline, work).await.map_err(|_| ApiError::Unavailable {
        tier: ARCHIVE,
        retry_after: 1,
        detail: format!("{step} did not finish in time; nothing was forwarded"),
    })
}

/// The move-back, with its failures as the caller sees them. It runs in a task
/// of its own, so a request that gives up waiting (its deadline) never cuts it
/// short: it finishes, and releases the copy's lease, in the background.
async fn move_back(tiers: &Tiers, partition_key: &str, id: &str) -> Result<MovedBack, ApiError> {
    let cosmos = tiers.cosmos.get().await?;
    let (archive, pk, record) = (tiers.archive.clone(), partition_key.to_owned(), id.to_owned());
    let task = tokio::spawn(async move { moveback::move_back(&cosmos, archive.as_ref(), &pk, &record, None).await });
    let outcome = task
        .await
        .map_err(|e| ApiError::Internal { message: "moving the record back failed".into(), detail: e.to_string() })?;
    match outcome {
        Ok(moved) => Ok(moved),
        Err(e @ (MoveBackError::Store { .. } | MoveBackError::InFlight | MoveBackError::Fenced(_))) => {
            let retry_after = match &e {
                MoveBackError::Store { error: tiering::store::StoreError::Throttled { retry_after }, .. } => {
                    retry_after.as_secs().max(1)
                }
                MoveBackError::InFlight => 1,
                _ => 5,
            };
            warn!(partition_key, id, error = %e, "write refused: the record could not be moved back");
            Err(ApiError::Unavailable { tier: "the archive or Cosmos DB", retry_after, detail: e.to_string() })
        }
        Err(e @ MoveBackError::Corrupt { .. }) => Err(ApiError::Internal {
            message: "the archived copy of this record failed its integrity check; the write was not forwarded".into(),
            detail: e.to_string(),
        }),
        Err(e @ (MoveBackError::NotOurs { .. } | MoveBackError::Conflict { .. })) => Err(ApiError::Internal {
            message: "the archived copy of this record needs an operator; the write was not forwarded".into(),
            detail: e.to_string(),
        }),
    }
}

/// Sends the request to the upstream as it came. 502 when it cannot be
/// reached (nothing was sent); 502 too, saying the write may have been
/// applied, when the connection failed after it was sent; 504 when it did not
/// answer within [`UPSTREAM_TIMEOUT`] (the caller decides whether to repeat it).
async fn forward(
    upstream: &Upstream,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
    limit: Duration,
) -> Result<reqwest13::Response, ApiError> {
    let url = upstream.url_for(path_and_query);
    let method = reqwest13::Method::from_bytes(method.as_str().as_bytes())
        .map_err(|e| ApiError::BadRequest(format!("method: {e}")))?;
    let headers = end_to_end(headers, &[header::HOST, header::CONTENT_LENGTH]);
    let sent = upstream.client.request(method, &url).headers(headers).body(body).timeout(limit).send().await;
    sent.map_err(|e| {
        if e.is_connect() {
            ApiError::BadGateway { applied: false, detail: format!("the current API could not be reached: {e}") }
        } else if e.is_timeout() {
            ApiError::GatewayTimeout(format!("the current API did not answer within {limit:?}"))
        } else {
            ApiError::BadGateway { applied: true, detail: format!("the current API's answer was lost: {e}") }
        }
    })
}

/// The upstream's answer, unchanged but for hop-by-hop headers; its body streams through.
fn relay(answer: reqwest13::Response) -> Response {
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = end_to_end(answer.headers(), &[]);
    let body = Body::from_stream(answer.bytes_stream().map_err(std::io::Error::other));
    let mut response = (status, body).into_response();
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped_and_the_rest_kept() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("if-match", "\"abc\""),
            ("authorization", "Bearer t"),
            ("x-functions-key", "k"),
            ("content-type", "application/json"),
        ] {
            h.append(HeaderName::from_static(name), value.parse().unwrap());
        }
        let kept = end_to_end(&h, &[]);
        let mut names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["authorization", "content-type", "if-match", "x-functions-key"]);
    }

    #[test]
    fn the_upstream_url_keeps_the_request_path_and_query() {
        let timeout = Duration::from_secs(1);
        let at = |base: &str| Upstream::new(base.parse().unwrap(), timeout).unwrap();
        assert_eq!(at("http://127.0.0.1:8080").url_for("/api/x/1?a=b"), "http://127.0.0.1:8080/api/x/1?a=b");
        assert_eq!(at("https://gw.example.com/billing/").url_for("/api/x"), "https://gw.example.com/billing/api/x");
    }
}
