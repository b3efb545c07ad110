//! Front mode (docs/front-mode.md): the reader stands in front of the team's
//! current API, which stays the only thing that answers consumers. Every
//! request on the profile's routes, any method, goes to it ([`crate::forward`])
//! and its answer comes back unchanged, streamed. Archived records are brought
//! back into Cosmos for it to find ([`crate::hydrate`]):
//!
//! - **a record** (the record route and its sub-paths): forward; when the
//!   answer is the profile's missing-record status and the archive holds a
//!   copy of that record, move it back and forward the same request once more
//!   (a condition naming the archived ETag renamed to the moved-back record's);
//!   that answer is the consumer's (a write answered 412 to its `If-Match`
//!   is taken as missing too). No copy: Cosmos is read once before the missing
//!   answer goes out, and when a move-back by another request has just made
//!   the record hot the request is forwarded once more. After a write your API
//!   applied (2xx), a copy still in the archive is moved back (a stale one
//!   beside an upsert is deleted), and after a delete of the record, when
//!   Cosmos holds the copy's version by then, the delete is sent once more
//!   ([`after_write`]);
//! - **a list**: forward; when the answer is a success and the archive holds
//!   records of that partition in the request's window (the profile's
//!   `[front.list]` parameters), move back the first `READER_LIST_MOVEBACK_MAX`
//!   of them in the API's order and forward the request once more. A page of
//!   at most `front.list.max_page_size` records can then only hold hot records:
//!   see docs/front-mode.md, "Lists", for why paging through any number of
//!   archived records sees each once.
//!
//! Nothing moves back for a caller the current API refused (its answer is not
//! the missing one, or not a success), nor when it cannot be reached (502).
//! With `[auth]` bearer the reader's own rule runs before anything is
//! forwarded. A move-back that cannot complete is 503 with `Retry-After`,
//! never the missing answer.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::Method;
use axum::middleware;
use axum::response::Response;
use axum::routing::any;
use chrono::NaiveDate;
use futures::StreamExt;
use tiering::contract::{BoundFormat, ListOrder, ListWindow};
use tiering::listing::Window;
use tiering::moveback::MovedBack;
use tiering::record::AgeField;
use tiering::store::StoreError;
use tracing::{info, warn};

use crate::app::App;
use crate::auth::{Access, Caller, refusal};
use crate::error::{ARCHIVE, ApiError, COSMOS};
use crate::forward::{self, Headers, Outgoing, Upstream};
use crate::hydrate;
use crate::route::route_values;

/// How long a request may take in all, forwards and move-backs together: below
/// the Functions host's 230-second limit on an HTTP request.
pub const FRONT_TIMEOUT: Duration = Duration::from_secs(220);
/// Records a list request moves back at once.
const MOVE_BACK_CONCURRENCY: usize = 8;
/// The route placeholder of a record's sub-path.
const REST_PARAM: &str = "rest";

/// Front mode's routes: the record route, its sub-paths and the list route,
/// every method, each authenticated first (bearer mode) and forwarded.
pub fn router(app: App) -> Router {
    let (record, list) = crate::api_routes(&app.contract);
    let mut api = Router::new()
        .route(&record, any(record_route))
        .route(&format!("{record}/{{*{REST_PARAM}}}"), any(record_route));
    if let Some(list) = list {
        api = api.route(&list, any(list_route)).route(&format!("{list}/"), any(list_route));
    }
    let guard = (app.gate.clone(), app.contract.clone());
    api.route_layer(middleware::from_fn_with_state(guard, crate::auth::authenticate)).with_state(app)
}

/// What the reader's own rule asks of a method.
fn access(method: &Method) -> Access {
    if method == Method::GET || method == Method::HEAD { Access::Read } else { Access::Write }
}

/// The headers a forwarded request keeps: where the reader authorized it
/// (bearer mode), no override of what it authorized.
fn headers_for(app: &App) -> Headers {
    if app.contract.auth.bearer().is_some() { Headers::Authorized } else { Headers::AsSent }
}

fn upstream_of(app: &App) -> Result<Upstream, ApiError> {
    app.upstream.clone().ok_or_else(|| ApiError::Internal {
        message: "front mode has no current API".into(),
        detail: "READER_UPSTREAM_URL is not set".into(),
    })
}

/// What is left of the request's time for one more forward; too little, 503
/// (nothing more forwarded).
fn left(deadline: Instant) -> Result<Duration, ApiError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_secs(1) {
        return Err(ApiError::Unavailable {
            tier: "the current API",
            retry_after: 1,
            detail: "the request's time ran out; nothing more was forwarded".into(),
        });
    }
    Ok(left)
}

/// After a move-back the current API may still answer missing for a moment (a
/// read in another session of a replicated account, a cache): asked again
/// after these pauses, then its answer is the consumer's.
const AGAIN_AFTER: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(800)];

/// A record, or one of its sub-paths, any method: forward; on the missing
/// answer (or 412 to a write with `If-Match`, which an API that checks
/// conditions first gives a record it cannot find), move the record back if it
/// is archived and forward again. Nothing moves before the current API has
/// answered, so a caller it refuses moves nothing. A delete of the record
/// itself answered 2xx takes its copy too: an API that deletes a missing
/// record with 204 never saw the archived one, which a later read would bring
/// back.
pub async fn record_route(
    State(app): State<App>,
    path: Result<Path<Vec<(String, String)>>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    if forward::looped(request.headers()) {
        return Ok(forward::loop_detected());
    }
    let upstream = upstream_of(&app)?;
    let sub_path = path.as_ref().is_ok_and(|Path(values)| values.iter().any(|(k, _)| k == REST_PARAM));
    let path = path.map(|Path(values)| Path(values.into_iter().filter(|(k, _)| k != REST_PARAM).collect()));
    let values = route_values(path)?;
    let (partition_key, id) = app.contract.key_of(&values).ok_or_else(|| ApiError::Internal {
        message: "the route does not hold the record's key".into(),
        detail: format!("route values {values:?}"),
    })?;
    let caller = request.extensions().get::<Caller>();
    if let Some(denied) = refusal(&app.contract, caller, access(request.method()), &values, partition_key, Some(id)) {
        return Ok(denied);
    }
    let (partition_key, id) = (partition_key.to_owned(), id.to_owned());
    let route_len = forward::route_len(&app.contract, &app.contract.record);
    let outgoing = Outgoing::of(&upstream, request, route_len, headers_for(&app)).await?;
    let deletes_record = outgoing.method == Method::DELETE && !sub_path;
    let deadline = Instant::now() + FRONT_TIMEOUT;
    let answer = outgoing.send(&upstream, None, left(deadline)?).await?;
    let status = answer.status().as_u16();
    let missing = status == app.contract.not_found.status;
    let writes = access(&outgoing.method) == Access::Write && outgoing.method != Method::OPTIONS;
    let unmet = status == 412 && writes && outgoing.headers.contains_key(axum::http::header::IF_MATCH);
    let until = move_back_until(deadline);
    // A preflight asks what the API allows, not for the record: nothing moves.
    let (answer, moved) = if outgoing.method == Method::OPTIONS || !(missing || unmet) {
        (answer, None)
    } else {
        // Archived? (one metadata lookup, nothing moves otherwise)
        let found = hydrate::within(until, "looking the record up", archived(&app, &partition_key, &id)).await??;
        let hydrated = match found {
            Found::Archived => hydrate_record(&app, &partition_key, &id, until).await?,
            // Moved back by another request meanwhile: asked once more. A 412 to a
            // record that is hot is the condition's own answer.
            Found::Hot if missing => Hydrated::Hot,
            Found::Hot | Found::Missing => {
                log("record", &outgoing.method, status, 0, started);
                return Ok(forward::relay(answer));
            }
        };
        drop(answer);
        let moved = match hydrated {
            Hydrated::Moved { archived_etag, etag } => Some((archived_etag, etag)),
            Hydrated::Hot => None,
        };
        let renamed = moved.as_ref().map(|(a, n)| (a.as_str(), n.as_str()));
        let mut again = outgoing.send(&upstream, renamed, left(deadline)?).await?;
        if renamed.is_some() {
            for pause in AGAIN_AFTER {
                if again.status().as_u16() != app.contract.not_found.status {
                    break;
                }
                drop(again);
                tokio::time::sleep(pause).await;
                again = outgoing.send(&upstream, renamed, left(deadline)?).await?;
            }
        }
        (again, moved)
    };
    let mut count = usize::from(moved.is_some());
    let answer = if writes && answer.status().is_success() {
        let after = Written { outgoing: &outgoing, deletes_record, moved: moved.as_ref(), deadline };
        let (answer, moved_after) = after_write(&app, &upstream, &partition_key, &id, after, answer).await?;
        count += moved_after;
        answer
    } else {
        answer
    };
    log("record", &outgoing.method, answer.status().as_u16(), count, started);
    Ok(forward::relay(answer))
}

/// A write your API applied (2xx), as [`after_write`] needs it.
struct Written<'a> {
    outgoing: &'a Outgoing,
    /// DELETE on the record route itself (not a sub-path).
    deletes_record: bool,
    /// This request's own move-back: the archived ETag and the record's now.
    moved: Option<&'a (String, String)>,
    deadline: Instant,
}

/// After your API applied a write (2xx), no copy of the record may stay behind
/// it: a copy beside a record an upsert just wrote would be a stale version,
/// and the copy of a record your API deleted without seeing it (a DELETE of a
/// missing record answered 204, or one that reached it while a move-back or
/// an archive run had the record between the tiers) would bring it back. So
/// a copy found now is moved back (the usual move-back: it waits for one in
/// flight, and deletes a copy that Cosmos has superseded), and after a
/// delete of the record, when Cosmos then holds that copy's version (moved
/// back by this request), or any version after another request took the
/// copy (its move-back, and perhaps the write that met "missing" after it),
/// the delete is sent once more for your API to apply to it. Any other
/// version in Cosmos (a record created anew under the id since, a soft
/// delete's mark) is left alone. Returns the answer and the records moved.
async fn after_write(
    app: &App,
    upstream: &Upstream,
    partition_key: &str,
    id: &str,
    written: Written<'_>,
    answer: reqwest13::Response,
) -> Result<(reqwest13::Response, usize), ApiError> {
    let Written { outgoing, deletes_record, moved, deadline } = written;
    let until = move_back_until(deadline);
    let applied = |step: &str, e: String| ApiError::Unavailable {
        tier: "the archive or Cosmos DB",
        retry_after: 1,
        detail: format!("your API applied the delete, but {step} failed ({e}); send the DELETE again"),
    };
    let Ok(name) = tiering::layout::blob_name(partition_key, id) else { return Ok((answer, 0)) };
    // For a delete, the copy's document itself, to know it again in Cosmos.
    let copy = if deletes_record {
        match tokio::time::timeout_at(until, archived_document(app, &name)).await {
            Ok(Ok(copy)) => copy.map(Some),
            Ok(Err(e)) => return Err(applied("reading the record's archived copy", e)),
            Err(_) => return Err(applied("reading the record's archived copy", "timed out".into())),
        }
    } else {
        match tokio::time::timeout_at(until, app.tiers.archive.head(&name)).await {
            Ok(Ok(_)) => Some(None),
            Ok(Err(StoreError::NotFound)) => None,
            Ok(Err(e)) => {
                warn!(partition_key, id, error = %e, "written; the archive could not be checked for a copy left behind");
                None
            }
            Err(_) => None,
        }
    };
    let Some(copy) = copy else { return Ok((answer, 0)) };
    let mut renamed = moved.map(|(a, n)| (a.clone(), n.clone()));
    let mut count = 0;
    // The copy seen a moment ago, gone now: another request moved it back
    // (and may have written the record since, as a write that met "missing" does).
    let mut taken_by_another = false;
    match tokio::time::timeout_at(until, hydrate::move_back(&app.tiers, partition_key, id)).await {
        Ok(Ok(MovedBack::Restored { archived_etag, etag, .. })) => {
            count = 1;
            renamed.get_or_insert((archived_etag, etag));
        }
        Ok(Ok(MovedBack::NotArchived)) => taken_by_another = true,
        Ok(Ok(MovedBack::AlreadyHot { .. })) => {}
        Ok(Err(e)) if deletes_record => return Err(applied("moving its archived copy back", e.to_string())),
        Err(_) if deletes_record => return Err(applied("moving its archived copy back", "timed out".into())),
        Ok(Err(_)) | Err(_) => {
            warn!(
                partition_key,
                id, "written; a copy of the record stays in the archive beside it (`archiver verify --shadowed`)"
            );
        }
    }
    let Some(copy) = copy else { return Ok((answer, count)) };
    // The copy's version in Cosmos now, or whatever another request's
    // move-back left there: your API deletes it.
    let cosmos = app.tiers.cosmos.get().await.map_err(|e| applied("reaching Cosmos DB", e.to_string()))?;
    let again = match tokio::time::timeout_at(until, cosmos.read(partition_key, id)).await {
        Ok(Ok(item)) => taken_by_another || document_value(&item.doc.without_system_properties()) == Some(copy),
        Ok(Err(StoreError::NotFound)) => false,
        Ok(Err(e)) => return Err(applied("reading the record in Cosmos", e.to_string())),
        Err(_) => return Err(applied("reading the record in Cosmos", "timed out".into())),
    };
    if !again {
        return Ok((answer, count));
    }
    drop(answer);
    let renamed = renamed.as_ref().map(|(a, n)| (a.as_str(), n.as_str()));
    Ok((outgoing.send(upstream, renamed, left(deadline)?).await?, count))
}

/// The archived copy's document without its system properties, checked
/// against its hash; `None` when there is no copy.
async fn archived_document(app: &App, name: &str) -> Result<Option<serde_json::Value>, String> {
    let stored = match app.tiers.archive.get(name).await {
        Ok(stored) => stored,
        Err(StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let meta = tiering::codec::ArchiveMeta::from_metadata(&stored.info.metadata).map_err(|e| e.to_string())?;
    let body = tiering::codec::decode_verified(&stored.body, &meta).map_err(|e| e.to_string())?;
    let doc = tiering::record::RawDocument::parse(body).map_err(|e| e.to_string())?;
    document_value(&doc.without_system_properties()).map(Some).ok_or_else(|| "the copy is not JSON".into())
}

fn document_value(bytes: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(bytes).ok()
}

/// Until when move-backs (and the lookups before them) may run: the request's
/// deadline less the time kept for the forward after them.
fn move_back_until(deadline: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(deadline.checked_sub(FORWARD_RESERVE).unwrap_or(deadline))
}

/// Moves one record back within `until` (and `READER_TIMEOUT_SECONDS`).
async fn hydrate_record(
    app: &App,
    partition_key: &str,
    id: &str,
    until: tokio::time::Instant,
) -> Result<Hydrated, ApiError> {
    let moved = hydrate::within(
        until,
        "moving the record back",
        hydrate::move_back_within(&app.tiers, app.request_timeout, partition_key, id),
    )
    .await??;
    Ok(match moved {
        MovedBack::Restored { archived_etag, etag, .. } => Hydrated::Moved { archived_etag, etag },
        MovedBack::AlreadyHot { .. } | MovedBack::NotArchived => Hydrated::Hot,
    })
}

/// What the archive and Cosmos say of a record the current API called missing.
enum Found {
    Archived,
    /// Not archived, but in Cosmos now: moved back by another request meanwhile.
    Hot,
    Missing,
}

enum Hydrated {
    Moved { archived_etag: String, etag: String },
    Hot,
}

async fn archived(app: &App, partition_key: &str, id: &str) -> Result<Found, ApiError> {
    let Ok(name) = tiering::layout::blob_name(partition_key, id) else { return Ok(Found::Missing) };
    match app.tiers.archive.head(&name).await {
        Ok(_) => return Ok(Found::Archived),
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(ApiError::from_store(ARCHIVE, e)),
    }
    // No copy. A move-back deletes the copy only after the record is in Cosmos,
    // so a record that was being moved back is there by now: read it once.
    match app.tiers.cosmos.get().await?.read(partition_key, id).await {
        Ok(_) => Ok(Found::Hot),
        Err(StoreError::NotFound) => Ok(Found::Missing),
        Err(e) => Err(ApiError::from_store(COSMOS, e)),
    }
}

/// A list: forward; when it succeeded and archived records of the partition
/// fall in its window, move the first of them back and forward again.
pub async fn list_route(
    State(app): State<App>,
    path: Result<Path<Vec<(String, String)>>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    if forward::looped(request.headers()) {
        return Ok(forward::loop_detected());
    }
    let upstream = upstream_of(&app)?;
    let values = route_values(path)?;
    let partition_key =
        app.contract.partition_key_param.as_ref().and_then(|name| values.get(name)).cloned().ok_or_else(|| {
            ApiError::Internal {
                message: "the route does not hold the partition-key value".into(),
                detail: format!("route values {values:?}"),
            }
        })?;
    let caller = request.extensions().get::<Caller>();
    if let Some(denied) = refusal(&app.contract, caller, access(request.method()), &values, &partition_key, None) {
        return Ok(denied);
    }
    let query = request.uri().query().map(str::to_owned);
    let Some(list) = app.contract.list.as_ref() else {
        return Err(ApiError::NotFound("no such route".into()));
    };
    let route_len = forward::route_len(&app.contract, list);
    let outgoing = Outgoing::of(&upstream, request, route_len, headers_for(&app)).await?;
    let deadline = Instant::now() + FRONT_TIMEOUT;
    let answer = outgoing.send(&upstream, None, left(deadline)?).await?;
    let reads = outgoing.method == Method::GET || outgoing.method == Method::HEAD;
    let Some(front) = app.contract.front.as_ref().filter(|_| reads && answer.status().is_success()) else {
        log("list", &outgoing.method, answer.status().as_u16(), 0, started);
        return Ok(forward::relay(answer));
    };
    let window = window_of(&front.list, &app.tiers.age_field, query.as_deref());
    let newest = front.list.order == ListOrder::NewestFirst;
    // A list narrowed by a parameter the profile does not name (a status, a
    // search) may need any archived record of its window, not the first K:
    // then the whole window is moved back first.
    let narrowed = narrowed_by(&front.list, query.as_deref());
    let until = move_back_until(deadline);
    let moved = hydrate::within(until, "moving the list's archived records back", async {
        let mut moved = 0;
        loop {
            let (ids, last) =
                app.tiers.archived_in_window(&partition_key, &window, app.list_moveback_max, newest).await?;
            if ids.is_empty() {
                break;
            }
            let now_hot = move_back_all(&app, &partition_key, ids).await?;
            moved += now_hot;
            // Done: the first K (not narrowed), the window's last, or copies that
            // stay beside records already hot (verify --shadowed reports them).
            if !narrowed || last || now_hot == 0 {
                break;
            }
        }
        Ok::<_, ApiError>(moved)
    })
    .await??;
    if moved == 0 {
        log("list", &outgoing.method, answer.status().as_u16(), 0, started);
        return Ok(forward::relay(answer));
    }
    drop(answer);
    let again = outgoing.send(&upstream, None, left(deadline)?).await?;
    log("list", &outgoing.method, again.status().as_u16(), moved, started);
    Ok(forward::relay(again))
}

/// Time kept back from move-backs for the forward after them.
const FORWARD_RESERVE: Duration = Duration::from_secs(30);

/// Moves each record back, a few at a time; all must be hot before the list is
/// forwarded again, so the first failure answers (503: nothing forwarded), as
/// does running out of the request's time (the caller's `within`: what moved
/// stays hot, and a retry goes on).
async fn move_back_all(app: &App, partition_key: &str, ids: Vec<String>) -> Result<usize, ApiError> {
    let mut steps = futures::stream::iter(ids)
        .map(|id| async move { hydrate::move_back_within(&app.tiers, app.request_timeout, partition_key, &id).await })
        .buffer_unordered(MOVE_BACK_CONCURRENCY);
    let mut moved = 0;
    while let Some(outcome) = steps.next().await {
        if matches!(outcome?, MovedBack::Restored { .. }) {
            moved += 1;
        }
    }
    Ok(moved)
}

/// True when the request names a query parameter the profile's `[front.list]`
/// does not: neither a bound of the window nor one of its `paging` parameters,
/// nor the Functions key (`code`, never forwarded).
pub fn narrowed_by(list: &ListWindow, raw_query: Option<&str>) -> bool {
    url::form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()).any(|(key, _)| {
        !key.eq_ignore_ascii_case(forward::FUNCTIONS_KEY_PARAM)
            && list.from.as_deref() != Some(&key)
            && list.to.as_deref() != Some(&key)
            && !list.paging.iter().any(|p| *p == key)
    })
}

/// The request's window as the profile's parameters give it, each bound taken
/// to its whole day (a superset: moving back one record more is harmless, one
/// fewer would leave a page short). A bound not sent, or not in the
/// profile's format, is open.
pub fn window_of(list: &ListWindow, field: &AgeField, raw_query: Option<&str>) -> Window {
    let mut window = Window { from: None, until: None, after: None };
    for (key, value) in url::form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        let day = day_of(list.format, &value);
        if list.from.as_deref() == Some(&key) {
            window.from = day.map(|d| field.start_of(d));
        } else if list.to.as_deref() == Some(&key) {
            window.until = day.and_then(|d| d.succ_opt()).map(|d| field.start_of(d));
        }
    }
    window
}

fn day_of(format: BoundFormat, value: &str) -> Option<NaiveDate> {
    match format {
        BoundFormat::Date => NaiveDate::parse_from_str(value, "%Y-%m-%d").ok(),
        BoundFormat::DateTime => chrono::DateTime::parse_from_rfc3339(value).ok().map(|t| t.naive_utc().date()),
        BoundFormat::EpochSeconds => {
            value.parse::<i64>().ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0)).map(|t| t.date_naive())
        }
    }
}

/// One line per request (the dashboard counts `moved_back`: docs/front-mode.md, "Costs").
fn log(route: &'static str, method: &Method, status: u16, moved_back: usize, started: Instant) {
    let latency_us = started.elapsed().as_micros() as u64;
    info!(route, method = %method, status, moved_back = moved_back as u64, latency_us, "front");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiering::record::AgeValue;

    #[test]
    fn a_window_is_the_whole_days_of_the_bounds_the_profile_names() {
        let list = ListWindow { from: Some("issuedFrom".into()), to: Some("issuedTo".into()), ..Default::default() };
        let field = AgeField::Iso("invoiceDate".into());
        let text = |s: &str| Some(AgeValue::Text(s.into()));
        let w = window_of(&list, &field, Some("issuedFrom=2025-01-01&issuedTo=2025-01-31&limit=10"));
        assert_eq!((w.from, w.until), (text("2025-01-01"), text("2025-02-01")));
        let w = window_of(&list, &field, Some("issuedTo=2025-01-31&from=2024-01-01"));
        assert_eq!((w.from, w.until), (None, text("2025-02-01")), "only the profile's names count");
        let w = window_of(&list, &field, Some("issuedFrom=yesterday"));
        assert_eq!(w.from, None, "a value in another format leaves the bound open");
        let epoch = ListWindow { format: BoundFormat::EpochSeconds, ..list.clone() };
        let w = window_of(&epoch, &AgeField::Ts, Some("issuedFrom=1735732800&issuedTo=1735732800"));
        assert_eq!((w.from, w.until), (Some(AgeValue::Seconds(1735689600)), Some(AgeValue::Seconds(1735776000))));
        let paged = ListWindow { paging: vec!["limit".into(), "cursor".into()], ..list.clone() };
        assert!(!narrowed_by(&paged, Some("issuedFrom=2025-01-01&limit=10&cursor=abc")), "bounds and paging");
        assert!(!narrowed_by(&paged, None));
        assert!(narrowed_by(&paged, Some("limit=10&status=unpaid")), "a filter the profile does not name");
        assert!(!narrowed_by(&paged, Some("limit=10&code=functions-key")), "the Functions key is no filter");
        assert!(narrowed_by(&list, Some("limit=10")), "paging not declared: taken as narrowing");
        let times = ListWindow { format: BoundFormat::DateTime, ..list };
        let w = window_of(&times, &field, Some("issuedFrom=2025-01-01T23%3A00%3A00-02%3A00"));
        assert_eq!(w.from, text("2025-01-02"), "the day in UTC");
    }
}
