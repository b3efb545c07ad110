//! Callers' authentication and authorization, as the profile's `[auth]` says
//! (docs/auth.md; the profile: `tiering::contract::auth`).
//!
//! In `bearer` mode every API request is authenticated before anything else is
//! looked at: the `Authorization: Bearer` JWT is checked by `jsonwebtoken`
//! (signature, `alg` from the profile's asymmetric list, `iss`, `aud`, `exp` and
//! `nbf` with the profile's leeway; `exp`, `iss` and `aud` required). A refused
//! token is 401 with the profile's body and `WWW-Authenticate`, before any store
//! is asked. Then each handler applies the authorization rule to the route's
//! partition-key value ([`refusal`]): reads, lists and writes alike, a write
//! before any record is moved back.
//!
//! Signing keys come from the issuer's JWKS (directly, or through its OpenID
//! configuration), fetched at start-up in the background and kept. A token that
//! names a key id the cache does not hold fetches them again, at most once per
//! `auth.key_refresh_seconds` (a flood of bogus key ids costs one fetch per
//! interval); keys older than a day are refreshed in the background, one
//! refresh at a time and at most one attempt per interval. A fetch that fails
//! keeps the keys cached; a token whose key could not be looked up because the
//! last fetch failed (none cached, or a key id not among them) gets 503 with
//! `Retry-After`, not a 401 that would call a valid token bad (a fetch is
//! retried at most every [`KEYS_RETRY`] while none is cached). Waiting for a
//! fetch is bounded by the request deadline.
//!
//! Identity headers a client could set (`X-MS-CLIENT-PRINCIPAL` and the like,
//! which App Service Authentication sets when it is on) are never read: the
//! reader trusts only the token it validated itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tiering::contract::Contract;
use tiering::contract::auth::{Auth, Bearer, KeySource, MAX_AUTHORIZATION_BYTES};
use tokio::sync::{Mutex, RwLock};
use tracing::{info, warn};

use crate::answers::JSON;
use crate::error::{ApiError, error_body};

/// One key fetch (each of its requests) takes at most this.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// With no key cached, a failed fetch is retried at most this often; meanwhile
/// requests get 503 with this as `Retry-After`.
pub const KEYS_RETRY: Duration = Duration::from_secs(5);
/// Keys older than this are refreshed in the background (revoked keys drop out).
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// The most bytes of an OpenID configuration or key set read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// A validated caller: the token's claims; `None` when the mode checks no token
/// (`function-key`, `anonymous`).
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Arc<Map<String, Value>>>);

/// Why a request is refused before it reaches a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No bearer token (no `Authorization`, or another scheme).
    NoToken,
    /// A token that does not pass; the reason goes to the log only.
    Invalid(String),
    /// No signing key could be fetched yet.
    KeysUnavailable(String),
}

/// The authentication the profile asks for.
#[derive(Debug, Clone)]
pub enum Gate {
    /// `function-key` (checked by the host) or `anonymous` (checked by a gateway).
    Open,
    Bearer(Arc<BearerGate>),
}

impl Gate {
    /// The gate for `contract`; in bearer mode the first key fetch starts now, in
    /// the background (call within a Tokio runtime).
    /// `wait`: the longest a request waits for the issuer's keys.
    pub fn new(contract: &Contract, wait: Duration) -> anyhow::Result<Self> {
        match &contract.auth {
            Auth::FunctionKey | Auth::Anonymous => Ok(Self::Open),
            Auth::Bearer(profile) => {
                let gate = Arc::new(BearerGate::new((**profile).clone(), wait)?);
                let first = gate.clone();
                tokio::spawn(async move { first.refresh_if(|_| true).await });
                Ok(Self::Bearer(gate))
            }
        }
    }

    pub async fn check(&self, headers: &HeaderMap) -> Result<Caller, Refusal> {
        match self {
            Self::Open => Ok(Caller(None)),
            Self::Bearer(gate) => gate.check(headers).await.map(|claims| Caller(Some(Arc::new(claims)))),
        }
    }
}

/// A published key, and the algorithm its JWK names (`alg`), if any: a token
/// must then use exactly that one.
type PublishedKey = (DecodingKey, Option<Algorithm>);

#[derive(Debug, Default)]
struct KeySet {
    by_kid: HashMap<String, PublishedKey>,
    /// The last fetch that succeeded.
    fetched: Option<Instant>,
    /// The last fetch attempted, and its error if it failed.
    attempted: Option<Instant>,
    error: Option<String>,
}

/// Bearer-token validation with a cache of the issuer's signing keys.
#[derive(Debug)]
pub struct BearerGate {
    profile: Bearer,
    validation: Validation,
    keys: RwLock<KeySet>,
    /// One fetch at a time; callers that waited find the fresh keys.
    fetching: Mutex<()>,
    /// A background refresh is scheduled or running (at most one).
    refreshing: std::sync::atomic::AtomicBool,
    /// The longest a request waits for a key fetch (the request deadline).
    wait: Duration,
    http: reqwest13::Client,
}

fn algorithm(name: &str) -> anyhow::Result<Algorithm> {
    name.parse().map_err(|_| anyhow::anyhow!("`{name}` is not a JWT algorithm"))
}

impl BearerGate {
    /// `wait`: the longest a request waits for the keys (`READER_TIMEOUT_SECONDS`).
    pub fn new(profile: Bearer, wait: Duration) -> anyhow::Result<Self> {
        anyhow::ensure!(
            jsonwebtoken::crypto::CryptoProvider::try_get_default().is_some(),
            "jsonwebtoken was built without a crypto provider"
        );
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = profile.algorithms.iter().map(|a| algorithm(a)).collect::<anyhow::Result<_>>()?;
        validation.set_issuer(&profile.issuers);
        validation.set_audience(&profile.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = profile.clock_skew_seconds;
        // No redirects: an https key URL must not lead anywhere else.
        let http = reqwest13::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest13::redirect::Policy::none())
            .build()?;
        Ok(Self {
            profile,
            validation,
            keys: RwLock::new(KeySet::default()),
            fetching: Mutex::new(()),
            refreshing: std::sync::atomic::AtomicBool::new(false),
            wait,
            http,
        })
    }

    async fn check(self: &Arc<Self>, headers: &HeaderMap) -> Result<Map<String, Value>, Refusal> {
        let invalid = |why: &str| Refusal::Invalid(why.to_owned());
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = values.next() else { return Err(Refusal::NoToken) };
        if values.next().is_some() {
            return Err(invalid("more than one Authorization header"));
        }
        if value.len() > MAX_AUTHORIZATION_BYTES {
            return Err(invalid("an oversized Authorization header"));
        }
        let text = value.to_str().map_err(|_| invalid("an Authorization header that is not text"))?;
        let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            // Another scheme (Basic, a key): no bearer token, as RFC 6750 challenges it.
            return Err(Refusal::NoToken);
        }
        let token = token.trim();
        // `alg: none` and any unknown algorithm fail here: the crate has no such variant.
        let jwt_header = jsonwebtoken::decode_header(token).map_err(|e| invalid(&format!("malformed token: {e}")))?;
        if !self.validation.algorithms.contains(&jwt_header.alg) {
            return Err(invalid(&format!("algorithm {:?} is not accepted", jwt_header.alg)));
        }
        let kid = jwt_header.kid.ok_or_else(|| invalid("the token names no key id"))?;
        let (key, published_alg) = self.key(&kid).await?;
        if published_alg.is_some_and(|a| a != jwt_header.alg) {
            return Err(invalid(&format!("algorithm {:?} is not the one its key is published for", jwt_header.alg)));
        }
        // The token's own algorithm only: the crate refuses a key when any listed
        // algorithm is of another family (a profile may list RS256 and ES256).
        let mut validation = self.validation.clone();
        validation.algorithms = vec![jwt_header.alg];
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| invalid(&format!("{:?}", e.kind())))?;
        if let Some(why) = not_an_access_token(jwt_header.typ.as_deref(), &data.claims) {
            return Err(invalid(&why));
        }
        Ok(data.claims)
    }

    /// The key `kid` names, fetching the keys again when it is unknown and the
    /// last attempt is older than the profile's interval.
    async fn key(self: &Arc<Self>, kid: &str) -> Result<PublishedKey, Refusal> {
        let interval = Duration::from_secs(self.profile.key_refresh_seconds);
        {
            let keys = self.keys.read().await;
            if let Some(key) = keys.by_kid.get(kid) {
                if keys.fetched.is_some_and(|f| f.elapsed() > KEYS_MAX_AGE) {
                    self.refresh_in_background(interval);
                }
                return Ok(key.clone());
            }
        }
        let refresh = self.refresh_if(|keys| {
            let wait = if keys.by_kid.is_empty() { KEYS_RETRY.min(interval) } else { interval };
            keys.attempted.is_none_or(|a| a.elapsed() >= wait)
        });
        if tokio::time::timeout(self.wait, refresh).await.is_err() {
            return Err(Refusal::KeysUnavailable("the signing keys are being fetched".into()));
        }
        let keys = self.keys.read().await;
        match (keys.by_kid.get(kid), &keys.error) {
            (Some(key), _) => Ok(key.clone()),
            // The last fetch failed: the key may well exist; say so rather than call the token bad.
            (None, Some(error)) => Err(Refusal::KeysUnavailable(error.clone())),
            (None, None) if keys.by_kid.is_empty() => {
                Err(Refusal::KeysUnavailable("no signing keys fetched yet".into()))
            }
            (None, None) => Err(Refusal::Invalid(format!("no signing key has the key id {kid:?}"))),
        }
    }

    /// Refreshes keys older than [`KEYS_MAX_AGE`] in the background: one refresh at
    /// a time, and at most one attempt per `interval`, whatever the request rate.
    fn refresh_in_background(self: &Arc<Self>, interval: Duration) {
        use std::sync::atomic::Ordering;
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let gate = self.clone();
        tokio::spawn(async move {
            gate.refresh_if(|keys| {
                keys.fetched.is_none_or(|f| f.elapsed() > KEYS_MAX_AGE)
                    && keys.attempted.is_none_or(|a| a.elapsed() >= interval)
            })
            .await;
            gate.refreshing.store(false, Ordering::Release);
        });
    }

    /// Fetches the keys when `due` says so for the cache as it is once this caller
    /// holds the fetch lock (so callers that queued behind a fetch do not repeat it).
    async fn refresh_if(&self, due: impl Fn(&KeySet) -> bool) {
        let _one = self.fetching.lock().await;
        if !due(&*self.keys.read().await) {
            return;
        }
        let result = fetch_keys(&self.http, &self.profile.keys).await;
        let mut keys = self.keys.write().await;
        keys.attempted = Some(Instant::now());
        match result {
            Ok(by_kid) => {
                info!(keys = by_kid.len(), "signing keys fetched");
                keys.by_kid = by_kid;
                keys.fetched = keys.attempted;
                keys.error = None;
            }
            Err(e) => {
                warn!(error = %e, cached = keys.by_kid.len(), "signing keys could not be fetched; the cached ones stay");
                keys.error = Some(e.to_string());
            }
        }
    }
}

/// Why a token that passed every check above is still no access token (an ID
/// token, above all, which a client may hold for the same app registration and
/// audience), or `None`. docs/auth.md, "Access tokens only":
/// - a `typ` header other than `JWT` or RFC 9068's `at+jwt` (an access token
///   profiled by RFC 9068 must say `at+jwt`; Entra ID always says `JWT`);
/// - `nonce`, `at_hash` or `c_hash`: OpenID Connect's ID-token claims, never in
///   an access token (Entra ID's claims reference lists them for ID tokens only);
/// - a `typ` claim `ID` (Keycloak marks its ID tokens so);
/// - an Entra ID token (`tid` and `ver` 1.0 or 2.0) without the client it was
///   issued to (`azp` in v2.0, `appid` in v1.0, claims Microsoft documents for
///   access tokens only).
pub fn not_an_access_token(typ: Option<&str>, claims: &Map<String, Value>) -> Option<String> {
    if let Some(typ) = typ
        && !["jwt", "at+jwt", "application/at+jwt"].contains(&typ.to_ascii_lowercase().as_str())
    {
        return Some(format!("a token of type {typ:?}, not an access token"));
    }
    if let Some(claim) = ["nonce", "at_hash", "c_hash"].into_iter().find(|c| claims.contains_key(*c)) {
        return Some(format!("an ID token (it carries `{claim}`), not an access token"));
    }
    if claims.get("typ").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("ID")) {
        return Some("an ID token (its `typ` claim is ID), not an access token".into());
    }
    let client = match claims.get("ver").and_then(Value::as_str) {
        Some("2.0") => "azp",
        Some("1.0") => "appid",
        _ => return None,
    };
    if !claims.contains_key("tid") {
        return None;
    }
    (!claims.contains_key(client))
        .then(|| format!("an Entra ID token without `{client}`: an ID token, not an access token"))
}

/// Reads a document of at most [`MAX_DOCUMENT_BYTES`] as JSON (counted as it
/// arrives: a server that sends no length cannot make it read more).
async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest13::Client, url: &str) -> anyhow::Result<T> {
    let mut response = http.get(url).send().await.map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "GET {url}: {status}");
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| anyhow::anyhow!("GET {url}: {e}"))? {
        body.extend_from_slice(&chunk);
        anyhow::ensure!(body.len() <= MAX_DOCUMENT_BYTES, "GET {url}: larger than {MAX_DOCUMENT_BYTES} bytes");
    }
    serde_json::from_slice(&body).map_err(|e| anyhow::anyhow!("GET {url}: not the expected JSON: {e}"))
}

/// The issuer's signing keys by key id: every key of the set that has a `kid`,
/// is not for encryption, and the crate can use (others are skipped).
pub async fn fetch_keys(http: &reqwest13::Client, source: &KeySource) -> anyhow::Result<HashMap<String, PublishedKey>> {
    let jwks_uri = match source {
        KeySource::Jwks(url) => url.to_string(),
        KeySource::OpenIdConfiguration(url) => {
            #[derive(serde::Deserialize)]
            struct Configuration {
                jwks_uri: String,
            }
            let config: Configuration = get_json(http, url.as_str()).await?;
            let named = url::Url::parse(&config.jwks_uri)
                .map_err(|e| anyhow::anyhow!("{url}: jwks_uri `{}` is not a URL: {e}", config.jwks_uri))?;
            // The key set comes over https, as the configuration did (or from the
            // same local test server, over http).
            anyhow::ensure!(
                named.scheme() == "https" || (named.scheme() == url.scheme() && named.host() == url.host()),
                "{url}: jwks_uri `{named}` is not https"
            );
            named.to_string()
        }
    };
    let set: JwkSet = get_json(http, &jwks_uri).await?;
    let keys: HashMap<String, PublishedKey> = set
        .keys
        .iter()
        .filter(|k| !matches!(k.common.public_key_use, Some(PublicKeyUse::Encryption)))
        .filter_map(|k| {
            // A key whose `alg` this crate does not know (an encryption algorithm) is skipped.
            let alg = match k.common.key_algorithm {
                None => None,
                Some(a) => Some(format!("{a:?}").parse::<Algorithm>().ok()?),
            };
            Some((k.common.key_id.clone()?, (DecodingKey::from_jwk(k).ok()?, alg)))
        })
        .collect();
    anyhow::ensure!(!keys.is_empty(), "{jwks_uri}: no usable signing key");
    Ok(keys)
}

/// The middleware in front of every API route: authenticates, or answers.
pub async fn authenticate(
    State((gate, contract)): State<(Gate, Arc<Contract>)>,
    mut request: Request,
    next: Next,
) -> Response {
    match gate.check(request.headers()).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refusal) => refused(&contract, refusal),
    }
}

/// A refused request's answer, as the profile describes the existing API's.
fn refused(contract: &Contract, refusal: Refusal) -> Response {
    let Some(profile) = contract.auth.bearer() else {
        // Only the bearer gate refuses; were another to, it would still be a 401.
        return (StatusCode::UNAUTHORIZED, error_body("Unauthorized", "not authenticated")).into_response();
    };
    let u = &profile.unauthenticated;
    let challenge = match &refusal {
        Refusal::NoToken => &u.www_authenticate,
        Refusal::Invalid(_) => &u.www_authenticate_invalid,
        Refusal::KeysUnavailable(detail) => {
            return ApiError::Unavailable {
                tier: "the token issuer's signing keys",
                retry_after: KEYS_RETRY.as_secs(),
                detail: detail.clone(),
            }
            .into_response();
        }
    };
    let reason = match &refusal {
        Refusal::Invalid(why) => why.as_str(),
        _ => "no bearer token",
    };
    info!(status = 401, reason, "refused");
    let body = u.body.clone().unwrap_or_else(|| error_body("Unauthorized", "a valid bearer token is required"));
    let content_type = HeaderValue::from_str(&u.content_type).unwrap_or(HeaderValue::from_static(JSON));
    let challenge = HeaderValue::from_str(challenge).unwrap_or(HeaderValue::from_static("Bearer"));
    (StatusCode::UNAUTHORIZED, [(header::CONTENT_TYPE, content_type), (header::WWW_AUTHENTICATE, challenge)], body)
        .into_response()
}

/// What a request does, for the rule: reads (and lists) or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    /// A write through the reader, which may move an archived record back first.
    Write,
}

/// The authorization rule for a request whose route holds `partition_key`:
/// `None` to go on, or the profile's answer to a caller that may not (403, or
/// the missing-record answer where the API hides existence). Fails closed: in
/// bearer mode a request without a validated caller is refused.
pub fn refusal(
    contract: &Contract,
    caller: Option<&Caller>,
    access: Access,
    values: &HashMap<String, String>,
    partition_key: &str,
    id: Option<&str>,
) -> Option<Response> {
    let profile = contract.auth.bearer()?;
    let claims = caller.and_then(|c| c.0.as_deref());
    let allowed = |claims: &Map<String, Value>| match access {
        Access::Read => profile.may_read(claims, partition_key),
        Access::Write => profile.may_write(claims, partition_key),
    };
    if claims.is_some_and(allowed) {
        return None;
    }
    let f = &profile.forbidden;
    info!(status = f.status, "forbidden");
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::FORBIDDEN);
    let content_type = HeaderValue::from_str(&f.content_type).unwrap_or(HeaderValue::from_static(JSON));
    Some(match (f.body(values), status, id) {
        (Some(body), _, _) => (status, [(header::CONTENT_TYPE, content_type)], body).into_response(),
        // Hidden: exactly what a record in neither tier answers.
        (None, StatusCode::NOT_FOUND, Some(id)) => crate::answers::missing(contract, values, partition_key, id),
        (None, StatusCode::NOT_FOUND, None) => ApiError::NotFound("not found".into()).into_response(),
        (None, _, _) => (
            status,
            [(header::CONTENT_TYPE, content_type)],
            error_body("Forbidden", "the caller may not read this partition"),
        )
            .into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_access_tokens_pass() {
        let entra_v2 = json!({"ver": "2.0", "tid": "t", "aud": "api://billing", "sub": "s"});
        let with = |base: &Value, extra: Value| {
            let mut c = base.as_object().cloned().unwrap_or_default();
            c.extend(extra.as_object().cloned().unwrap_or_default());
            c
        };
        let cases: Vec<(Option<&str>, Map<String, Value>, bool)> = vec![
            // Entra ID access tokens: delegated (scp) and app-only (roles), v2.0 and v1.0.
            (Some("JWT"), with(&entra_v2, json!({"azp": "c", "scp": "Billing.Read"})), true),
            (Some("JWT"), with(&entra_v2, json!({"azp": "c", "roles": ["Billing.Read.All"], "idtyp": "app"})), true),
            (None, with(&json!({"ver": "1.0", "tid": "t"}), json!({"appid": "c", "scp": "user_impersonation"})), true),
            // Entra ID tokens: no client claim, whatever roles they carry; or a nonce.
            (Some("JWT"), with(&entra_v2, json!({"roles": ["Billing.Read.All"]})), false),
            (Some("JWT"), with(&entra_v2, json!({"azp": "c", "scp": "x", "nonce": "n"})), false),
            (Some("JWT"), with(&json!({"ver": "1.0", "tid": "t"}), json!({"roles": ["r"]})), false),
            // An app-only token with no app role (a daemon authorized by a partition claim) is an access token.
            (Some("JWT"), with(&entra_v2, json!({"azp": "c", "customerId": "a"})), true),
            // Other issuers: RFC 9068 tokens, plain JWTs, and ID tokens by their marks.
            (Some("at+jwt"), with(&json!({}), json!({"scope": "read", "client_id": "c"})), true),
            (Some("application/at+jwt"), Map::new(), true),
            (None, with(&json!({}), json!({"customerId": "a"})), true),
            (Some("JWT"), with(&json!({}), json!({"at_hash": "h"})), false),
            (Some("JWT"), with(&json!({}), json!({"c_hash": "h"})), false),
            (Some("JWT"), with(&json!({}), json!({"typ": "ID", "azp": "c"})), false),
            (Some("logout+jwt"), Map::new(), false),
        ];
        for (typ, claims, access) in cases {
            let why = not_an_access_token(typ, &claims);
            assert_eq!(why.is_none(), access, "{typ:?} {claims:?}: {why:?}");
        }
    }
}
