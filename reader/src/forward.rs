//! Forwarding to the team's current API (`READER_UPSTREAM_URL`): one place for
//! everything that crosses to it, used by serve mode's write-through and by
//! front mode alike (docs/front-mode.md, "Forwarding").
//!
//! A request is forwarded as it came, method, path, query, body and end-to-end
//! headers, and the answer comes back as it came, streamed. What this module
//! makes sure of on the way:
//! - the upstream URL is built from the path's checked segments, each decoded,
//!   checked and encoded again ([`ForwardPath`]), never by joining the raw path
//!   to the base: a segment that is or decodes (once or more) to `.` or `..`,
//!   or holds `\`, `;`, an encoded `/` or `\`, or a control character is
//!   refused with 400, so no client's HTTP stack and no upstream can resolve it
//!   into another route; the URL built must start with the base path and the
//!   route's own segments;
//! - `https` for any upstream not on loopback ([`Upstream::new`]);
//! - never forwarded: the Functions key (`x-functions-key`, the `code`
//!   parameter, and App Service's copies of the URL it may be in:
//!   `X-Original-URL`, `X-WAWS-Unencoded-URL`), hop-by-hop headers (RFC 9110,
//!   7.6.1), and, where the reader itself authorizes, method overrides and URL
//!   rewrites ([`Headers`]);
//! - every forwarded request carries a mark ([`LOOP_MARK`]); a request that
//!   arrives with it came back to the reader (an upstream URL that leads to the
//!   gateway in front of the reader) and is answered once with 508, never
//!   forwarded again.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::TryStreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::error::ApiError;

/// The header every forwarded request carries, naming the reader: a request
/// that arrives with it has come round from the reader's own forwarding.
pub const LOOP_MARK: &str = "x-tiering-reader";

/// What a path segment is encoded with on the way out: everything but RFC
/// 3986's unreserved characters (`.` included: a value that is `.` or `..`
/// never gets this far).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// How many times a segment is decoded looking for a hidden `.`, `..` or
/// separator (`%252e` is `%2e` once decoded, `.` twice).
const DECODE_ROUNDS: usize = 4;

/// The team's current API, and the pooled client that forwards to it.
#[derive(Debug, Clone)]
pub struct Upstream {
    base: url::Url,
    client: reqwest13::Client,
}

/// True for a URL whose host is a loopback address or `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

impl Upstream {
    /// `base` is the current API's origin, with an optional path before the
    /// request's own (`https://billing.example.com`, `https://gw.example.com/billing`).
    /// Plain `http` only on loopback (a test, a sidecar): callers' tokens and
    /// records never cross a network in the clear.
    pub fn new(base: url::Url, timeout: Duration) -> anyhow::Result<Self> {
        anyhow::ensure!(
            base.scheme() == "https" || (base.scheme() == "http" && is_loopback(&base)),
            "the current API at {base} must be https (http only on loopback)"
        );
        anyhow::ensure!(base.query().is_none() && base.fragment().is_none(), "{base} has a query or fragment");
        let client = reqwest13::Client::builder()
            // Answers go back as they came: no redirect followed, nothing decompressed.
            .redirect(reqwest13::redirect::Policy::none())
            .no_gzip()
            .no_deflate()
            .no_proxy()
            .connect_timeout(timeout.clamp(Duration::from_secs(1), Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { base, client })
    }

    /// The upstream URL of a checked path: the base's path, then each segment
    /// encoded again, then the query without the Functions key. Fails (500)
    /// if the URL does not start with the base path and the route's segments.
    pub fn url_for(&self, path: &ForwardPath, raw_query: Option<&str>) -> Result<url::Url, ApiError> {
        let mut url = self.base.clone();
        let base = self.base.path().trim_end_matches('/').to_owned();
        let encoded: Vec<String> = path.segments.iter().map(|s| utf8_percent_encode(s, SEGMENT).to_string()).collect();
        let mut joined = format!("{base}/{}", encoded.join("/"));
        if path.trailing_slash {
            joined.push('/');
        }
        url.set_path(&joined);
        url.set_query(without_functions_key(raw_query).as_deref());
        let route = format!("{base}/{}", encoded[..path.route_len.min(encoded.len())].join("/"));
        if !url.path().starts_with(&route) || url.path().len() < joined.len() {
            return Err(ApiError::Internal {
                message: "the upstream URL could not be built from the path".into(),
                detail: format!("{} does not start with {route}", url.path()),
            });
        }
        Ok(url)
    }

    /// Sends one request. 502 when the current API cannot be reached (nothing
    /// was sent); 502 too, saying it may have been applied, when the connection
    /// failed after it was sent; 504 when it did not answer within `limit`.
    pub async fn send(
        &self,
        method: &Method,
        url: url::Url,
        headers: HeaderMap,
        body: Bytes,
        limit: Duration,
    ) -> Result<reqwest13::Response, ApiError> {
        let method = reqwest13::Method::from_bytes(method.as_str().as_bytes())
            .map_err(|e| ApiError::BadRequest(format!("method: {e}")))?;
        let sent = self.client.request(method, url).headers(headers).body(body).timeout(limit).send().await;
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
}

/// The largest request body forwarded: above Cosmos's 2 MB item limit, so
/// nothing the upstream could store is refused here. It is read whole, since a
/// request may be sent twice (again after a move-back).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The path a consumer sent, before the case of its literals was made the
/// profile's (`in_any_case` in lib.rs): what the upstream is sent.
#[derive(Debug, Clone)]
pub struct SentPath(pub String);

/// A request as it goes to the current API: checked, its body read (bounded).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: Method,
    pub url: url::Url,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Outgoing {
    /// `request`, its path checked segment by segment (`route_len` of them the
    /// matched route's), its headers as `which` says, its body read.
    pub async fn of(
        upstream: &Upstream,
        request: axum::extract::Request,
        route_len: usize,
        which: Headers,
    ) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let sent = match parts.extensions.get::<SentPath>() {
            Some(SentPath(sent)) => sent.clone(),
            None => parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default(),
        };
        let (path, query) = match sent.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (sent.as_str(), None),
        };
        let url = upstream.url_for(&ForwardPath::parse(path, route_len)?, query)?;
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
            let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::PayloadTooLarge(format!("a request body is at most {MAX_BODY_BYTES} bytes"))
            } else {
                ApiError::BadRequest(format!("the request body could not be read: {e}"))
            }
        })?;
        Ok(Self { method: parts.method, url, headers: outgoing(&parts.headers, which), body })
    }

    /// Sends it, `If-Match`/`If-None-Match` naming `renamed.0` sent as `renamed.1`.
    pub async fn send(
        &self,
        upstream: &Upstream,
        renamed: Option<(&str, &str)>,
        limit: Duration,
    ) -> Result<reqwest13::Response, ApiError> {
        let mut headers = self.headers.clone();
        if let Some((archived, now)) = renamed {
            rename_conditions(&mut headers, archived, now);
        }
        upstream.send(&self.method, self.url.clone(), headers, self.body.clone(), limit).await
    }
}

/// How many segments the prefix and `route` take in a path.
pub fn route_len(contract: &tiering::contract::Contract, route: &tiering::contract::Route) -> usize {
    let prefix = if contract.prefix.is_empty() { 0 } else { contract.prefix.split('/').count() };
    prefix + route.segments.len()
}

/// A request path, segment by segment, decoded and checked: what may be
/// forwarded. `route_len` segments are the route's own (prefix, literals and
/// values); any after them are a sub-path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardPath {
    pub segments: Vec<String>,
    pub route_len: usize,
    pub trailing_slash: bool,
}

impl ForwardPath {
    /// Checks every segment of `raw` (the path as sent, percent-encoded), of
    /// which the first `route_len` are the matched route's.
    pub fn parse(raw: &str, route_len: usize) -> Result<Self, ApiError> {
        let inner = raw.strip_prefix('/').unwrap_or(raw);
        let trailing_slash = inner.ends_with('/') && !inner.is_empty();
        let inner = if trailing_slash { &inner[..inner.len() - 1] } else { inner };
        let segments = inner.split('/').map(check_segment).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { segments, route_len, trailing_slash })
    }
}

fn refused(segment: &str, why: &str) -> ApiError {
    let shown: String = segment.chars().take(60).collect();
    ApiError::BadRequest(format!("the path segment {shown:?} {why}"))
}

/// One segment, decoded once, after checking it and every further decoding.
fn check_segment(raw: &str) -> Result<String, ApiError> {
    if raw.is_empty() {
        return Err(refused(raw, "is empty"));
    }
    if raw.contains(['\\', ';']) {
        return Err(refused(raw, "holds `\\` or `;`"));
    }
    let once = percent_decode_str(raw).decode_utf8().map_err(|_| refused(raw, "is not UTF-8 once decoded"))?;
    let mut current = once.to_string();
    for _ in 0..DECODE_ROUNDS {
        if current == "." || current == ".." {
            return Err(refused(raw, "is, or decodes to, a dot segment"));
        }
        if current.contains(['/', '\\', ';']) || current.chars().any(char::is_control) {
            return Err(refused(raw, "holds, or decodes to, `/`, `\\`, `;` or a control character"));
        }
        let next = percent_decode_str(&current).decode_utf8_lossy().into_owned();
        if next == current {
            break;
        }
        current = next;
    }
    Ok(once.into_owned())
}

/// The Functions key's query parameter (any case).
pub const FUNCTIONS_KEY_PARAM: &str = "code";

/// The query as sent, without the Functions key's `code` parameter (the host
/// checked it; the upstream has no business with it).
fn without_functions_key(raw: Option<&str>) -> Option<String> {
    let raw = raw?;
    let kept: Vec<&str> = raw
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            !percent_decode_str(&key.replace('+', " ")).decode_utf8_lossy().eq_ignore_ascii_case(FUNCTIONS_KEY_PARAM)
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// RFC 9110, 7.6.1: headers meant for one connection, never forwarded (with
/// those the `Connection` header names).
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

/// Headers that ask a server to act on another method or path than the
/// request's own: stripped where the reader authorized the request itself,
/// so the upstream acts on what was authorized.
const OVERRIDES: [&str; 6] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
    "x-original-url",
    "x-rewrite-url",
];

/// The headers of a forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    /// The upstream authorizes (front mode with the Functions key or a gateway).
    AsSent,
    /// The reader authorized the request itself (bearer tokens, write-through):
    /// method overrides and URL rewrites are dropped too.
    Authorized,
}

/// What goes to the upstream: the request's end-to-end headers, without the
/// Functions key, the original URL's headers, `Host` and `Content-Length` (the
/// client sets both), with the reader's mark.
pub fn outgoing(headers: &HeaderMap, which: Headers) -> HeaderMap {
    // App Service's front end passes the URL as the consumer sent it, query and
    // all (`code=` too), in these two: never forwarded.
    let mut drop = vec![
        header::HOST,
        header::CONTENT_LENGTH,
        HeaderName::from_static("x-functions-key"),
        HeaderName::from_static("x-original-url"),
        HeaderName::from_static("x-waws-unencoded-url"),
    ];
    if which == Headers::Authorized {
        drop.extend(OVERRIDES.iter().map(|n| HeaderName::from_static(n)));
    }
    let mut out = end_to_end(headers, &drop);
    out.insert(HeaderName::from_static(LOOP_MARK), HeaderValue::from_static("1"));
    out
}

/// True when a request carries the reader's own mark: it came round.
pub fn looped(headers: &HeaderMap) -> bool {
    headers.contains_key(LOOP_MARK)
}

/// The answer to a request that came round: never forwarded again.
pub fn loop_detected() -> Response {
    let body = crate::error::error_body(
        "LoopDetected",
        "the current API's URL leads back to this reader (READER_UPSTREAM_URL); nothing was forwarded",
    );
    tracing::error!("a forwarded request came back to the reader: READER_UPSTREAM_URL leads to the reader itself");
    (StatusCode::LOOP_DETECTED, [(header::CONTENT_TYPE, crate::answers::JSON)], body).into_response()
}

/// Conditions naming the archived version (`If-Match`, `If-None-Match`: the
/// ETag a consumer saw while the record was archived, or before) are renamed to
/// the version the record has in Cosmos after a move-back: the same body, under
/// the `_etag` Cosmos gave it. Other tags are left as they are.
pub fn rename_conditions(headers: &mut HeaderMap, archived: &str, now: &str) {
    if now.is_empty() || archived.is_empty() {
        return;
    }
    let bare = |t: &str| t.trim().strip_prefix("W/").unwrap_or(t.trim()).to_owned();
    for name in [header::IF_MATCH, header::IF_NONE_MATCH] {
        let Some(value) = headers.get(&name).and_then(|v| v.to_str().ok()) else { continue };
        if !value.split(',').any(|t| bare(t) == archived) {
            continue;
        }
        let renamed: Vec<String> = value
            .split(',')
            .map(|t| if bare(t) == archived { t.trim().replacen(archived, now, 1) } else { t.trim().to_owned() })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&renamed.join(", ")) {
            headers.insert(name, v);
        }
    }
}

/// The upstream's answer, unchanged but for hop-by-hop headers; its body
/// streams through (never buffered, never decompressed).
pub fn relay(answer: reqwest13::Response) -> Response {
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
    fn hop_by_hop_headers_the_functions_key_and_overrides_are_dropped() {
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
            ("x-http-method-override", "DELETE"),
            ("x-original-url", "/api/customers/b/billing-records/r?code=secret"),
            ("x-waws-unencoded-url", "/api/customers/b/billing-records/r?code=secret"),
        ] {
            h.append(HeaderName::from_static(name), value.parse().unwrap());
        }
        let names = |which| {
            let mut n: Vec<String> = outgoing(&h, which).keys().map(|k| k.as_str().to_owned()).collect();
            n.sort_unstable();
            n
        };
        assert_eq!(
            names(Headers::Authorized),
            ["authorization", "content-type", "if-match", LOOP_MARK],
            "the reader authorized it: no override passes"
        );
        assert_eq!(
            names(Headers::AsSent),
            ["authorization", "content-type", "if-match", "x-http-method-override", LOOP_MARK],
            "the upstream authorizes: its own headers pass, but not the URL with the Functions key in it"
        );
    }

    #[test]
    fn paths_that_resolve_elsewhere_are_refused_at_any_depth_of_encoding() {
        for bad in [
            "/api/customers/A/billing-records/r1/%2e%2e/%2e%2e/%2e%2e/B/billing-records/r2/refund",
            "/api/customers/A/billing-records/r1/../x",
            "/api/customers/A/billing-records/./r1",
            "/api/customers/A/billing-records/%252e%252e",
            "/api/customers/A/billing-records/%25252E%25252E",
            "/api/customers/A/billing-records/.%2e",
            "/api/customers/A/billing-records/a%2Fb",
            "/api/customers/A/billing-records/a%252Fb",
            "/api/customers/A/billing-records/a%5Cb",
            "/api/customers/A/billing-records/a\\b",
            "/api/customers/A/billing-records/r1;jsessionid=1",
            "/api/customers/A/billing-records/r1%3Bx",
            "/api/customers/A//billing-records/r1",
            "/api/customers/A/billing-records/r%00",
            "/api/customers/A/billing-records/%ff",
        ] {
            let got = ForwardPath::parse(bad, 5);
            assert!(matches!(got, Err(ApiError::BadRequest(_))), "{bad}: {got:?}");
        }
    }

    #[test]
    fn the_upstream_url_keeps_the_path_segment_by_segment_and_drops_the_functions_key() {
        let timeout = Duration::from_secs(1);
        let at = |base: &str| Upstream::new(base.parse().unwrap(), timeout).unwrap();
        let path = |raw: &str| ForwardPath::parse(raw, 5).unwrap();
        let url = at("http://127.0.0.1:8080")
            .url_for(&path("/api/Customers/C%201/billing-records/r%2B1"), Some("a=b&code=k&CODE=x&c=%20"))
            .unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/api/Customers/C%201/billing-records/r%2B1?a=b&c=%20");
        let url = at("https://gw.example.com/billing/").url_for(&path("/api/x/y/z/w/refund/"), Some("code=k")).unwrap();
        assert_eq!(url.as_str(), "https://gw.example.com/billing/api/x/y/z/w/refund/");
        assert!(Upstream::new("http://billing.example.com".parse().unwrap(), timeout).is_err(), "http off loopback");
        assert!(Upstream::new("http://localhost:81/x".parse().unwrap(), timeout).is_ok());
        assert!(Upstream::new("http://[::1]:81".parse().unwrap(), timeout).is_ok());
    }

    #[test]
    fn conditions_naming_the_archived_version_are_renamed() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, "\"old\"".parse().unwrap());
        h.insert(header::IF_NONE_MATCH, "\"x\", W/\"old\"".parse().unwrap());
        rename_conditions(&mut h, "\"old\"", "\"new\"");
        assert_eq!(h[header::IF_MATCH], "\"new\"");
        assert_eq!(h[header::IF_NONE_MATCH], "\"x\", W/\"new\"");
        let mut other = HeaderMap::new();
        other.insert(header::IF_MATCH, "\"mine\"".parse().unwrap());
        rename_conditions(&mut other, "\"old\"", "\"new\"");
        assert_eq!(other[header::IF_MATCH], "\"mine\"", "another tag is the caller's own business");
    }
}
