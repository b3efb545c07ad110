//! A local token issuer, as Entra ID is one to an API: it serves an OpenID
//! configuration and a key set (JWKS) on 127.0.0.1 and mints RS256 tokens with
//! test keys, including a rotated key and every bad token a gateway meets
//! (docs/auth.md). The keys in `testkit/keys/` are throwaway test keys, made
//! for this and used nowhere else.
//!
//! Switches: [`Idp::rotate`] publishes the rotated key alone (a token signed
//! with the old one then names an unknown key), [`Idp::set_down`] answers 503,
//! and [`Idp::fetches`] counts the key-set requests (the bounded refresh).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const SIGNING: &str = include_str!("../keys/signing.pem");
const ROTATED: &str = include_str!("../keys/rotated.pem");
const STRANGER: &str = include_str!("../keys/stranger.pem");

/// The audience the test profiles accept.
pub const AUDIENCE: &str = "api://billing-test";

/// The test keys: two the issuer publishes (one after [`Idp::rotate`]), one it never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    Signing,
    Rotated,
    Stranger,
}

impl TestKey {
    fn pem(self) -> &'static str {
        match self {
            Self::Signing => SIGNING,
            Self::Rotated => ROTATED,
            Self::Stranger => STRANGER,
        }
    }

    /// The key id the issuer publishes it under.
    pub fn kid(self) -> &'static str {
        match self {
            Self::Signing => "test-signing-1",
            Self::Rotated => "test-rotated-2",
            Self::Stranger => "test-stranger-3",
        }
    }

    fn encoding(self) -> EncodingKey {
        EncodingKey::from_rsa_pem(self.pem().as_bytes()).unwrap_or_else(|e| panic!("testkit/keys: {e}"))
    }

    fn jwk(self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding(), Algorithm::RS256)
            .unwrap_or_else(|e| panic!("testkit/keys: no JWK: {e}"));
        jwk.common.key_id = Some(self.kid().to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
        jwk
    }
}

#[derive(Debug, Default)]
struct Switches {
    rotated: AtomicBool,
    down: AtomicBool,
    fetches: AtomicU64,
}

/// A running issuer.
#[derive(Debug, Clone)]
pub struct Idp {
    pub addr: SocketAddr,
    switches: Arc<Switches>,
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Idp {
    /// Serves `/.well-known/openid-configuration` and `/keys` on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let switches = Arc::new(Switches::default());
        let (listener, addr) = tiering::host::bind(0).await?;
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(configuration))
            .route("/keys", get(key_set))
            .with_state((switches.clone(), addr));
        tokio::spawn(tiering::host::serve(listener, router, std::future::pending()));
        Ok(Self { addr, switches })
    }

    /// The `iss` of its tokens.
    pub fn issuer(&self) -> String {
        format!("http://{}/tenant-test/v2.0", self.addr)
    }

    pub fn openid_configuration(&self) -> String {
        format!("http://{}/.well-known/openid-configuration", self.addr)
    }

    pub fn jwks_uri(&self) -> String {
        format!("http://{}/keys", self.addr)
    }

    /// The profile's `[auth]` for this issuer: the partition claim `claim`, the
    /// back-office role `Billing.Read.All`, keys fetched again for an unknown key id
    /// after `refresh_seconds`, and the rest as `extra` lines say.
    pub fn auth_section(&self, claim: &str, refresh_seconds: u64, extra: &str) -> String {
        format!(
            "\n[auth]\nmode = \"bearer\"\nissuers = [\"{}\"]\naudiences = [\"{AUDIENCE}\"]\nopenid_configuration = \"{}\"\npartition_claim = \"{claim}\"\nread_all_roles = [\"Billing.Read.All\"]\nkey_refresh_seconds = {refresh_seconds}\n{extra}\n",
            self.issuer(),
            self.openid_configuration()
        )
    }

    /// After this the key set holds the rotated key only.
    pub fn rotate(&self) {
        self.switches.rotated.store(true, Ordering::SeqCst);
    }

    /// While down, both documents answer 503.
    pub fn set_down(&self, down: bool) {
        self.switches.down.store(down, Ordering::SeqCst);
    }

    /// How many times the key set was asked for.
    pub fn fetches(&self) -> u64 {
        self.switches.fetches.load(Ordering::SeqCst)
    }

    /// Claims of a valid token for `subject`'s `claims` (merged over iss, aud, exp in an hour, nbf and iat now).
    pub fn claims(&self, extra: Value) -> Value {
        let t = now();
        let mut claims =
            json!({"iss": self.issuer(), "aud": AUDIENCE, "iat": t, "nbf": t, "exp": t + 3600, "sub": "test"});
        if let (Some(c), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            c.extend(extra);
        }
        claims
    }

    /// A token with `claims`, RS256, signed with `key` and naming `kid`.
    pub fn sign(key: TestKey, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding()).unwrap_or_else(|e| panic!("signing: {e}"))
    }

    /// A valid token for `extra` claims, signed with the key published now.
    pub fn token(&self, extra: Value) -> String {
        let key = if self.switches.rotated.load(Ordering::SeqCst) { TestKey::Rotated } else { TestKey::Signing };
        Self::sign(key, key.kid(), &self.claims(extra))
    }

    /// ID tokens (and other tokens that are not access tokens) this issuer could
    /// mint for the API's own registration and audience, each validly signed and
    /// carrying `extra` claims (a partition claim, a back-office role): what a
    /// client holds beside its access token. By name; `Authorization` values.
    pub fn id_tokens(&self, extra: Value) -> Vec<(&'static str, String)> {
        let good = self.claims(extra);
        let with = |more: Value| {
            let mut c = good.clone();
            if let (Some(c), Value::Object(more)) = (c.as_object_mut(), more) {
                c.extend(more);
            }
            format!("Bearer {}", Self::sign(TestKey::Signing, TestKey::Signing.kid(), &c))
        };
        let mut typed = Header::new(Algorithm::RS256);
        typed.kid = Some(TestKey::Signing.kid().to_owned());
        typed.typ = Some("logout+jwt".to_owned());
        let logout =
            jsonwebtoken::encode(&typed, &good, &TestKey::Signing.encoding()).unwrap_or_else(|e| panic!("{e}"));
        vec![
            // Entra ID v2.0 ID tokens: no `azp`, with the roles assigned to the user.
            ("Entra ID token", with(json!({"ver": "2.0", "tid": "tenant-test", "roles": ["Billing.Read.All"]}))),
            ("Entra ID token with nonce", with(json!({"ver": "2.0", "tid": "tenant-test", "nonce": "n-0S6_WzA2Mj"}))),
            ("Entra v1.0 ID token", with(json!({"ver": "1.0", "tid": "tenant-test", "unique_name": "u@contoso"}))),
            ("OpenID Connect ID token (at_hash)", with(json!({"at_hash": "77QmUPtjPfzWtF2AnpK9RQ"}))),
            ("OpenID Connect ID token (c_hash)", with(json!({"c_hash": "LDktKdoQak3Pk0cnXxCltA"}))),
            ("Keycloak ID token", with(json!({"typ": "ID", "azp": "billing-spa"}))),
            ("not an access token type", format!("Bearer {logout}")),
        ]
    }

    /// An Entra ID v2.0 access token for `extra` claims: the client it was issued
    /// to (`azp`) and a delegated scope, as Entra ID writes them.
    pub fn entra_access_token(&self, extra: Value) -> String {
        let mut claims = self.claims(
            json!({"ver": "2.0", "tid": "tenant-test", "azp": "billing-spa", "azpacr": "0", "scp": "Billing.Read"}),
        );
        if let (Some(c), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            c.extend(extra);
        }
        Self::sign(TestKey::Signing, TestKey::Signing.kid(), &claims)
    }

    /// Every kind of token a reader must refuse with 401, by name, each
    /// otherwise valid for `extra` claims (`Authorization` header values; `None`: no header).
    pub fn bad_tokens(&self, extra: Value) -> Vec<(&'static str, Option<String>)> {
        let good = self.claims(extra);
        let with = |key: &str, value: Value| {
            let mut c = good.clone();
            c[key] = value;
            c
        };
        let signed =
            |claims: &Value| format!("Bearer {}", Self::sign(TestKey::Signing, TestKey::Signing.kid(), claims));
        let b64 = |v: &Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let valid = Self::sign(TestKey::Signing, TestKey::Signing.kid(), &good);
        let (head, rest) = valid.split_once('.').unwrap_or_default();
        let (payload, _signature) = rest.split_once('.').unwrap_or_default();
        let none = format!("{}.{payload}.", b64(&json!({"alg": "none", "typ": "JWT", "kid": TestKey::Signing.kid()})));
        // The classic confusion: HS256 keyed with the issuer's public key.
        let public = TestKey::Signing.jwk();
        let secret = serde_json::to_vec(&public).unwrap_or_default();
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(TestKey::Signing.kid().to_owned());
        let hmac = EncodingKey::from_secret(&secret).unwrap_or_else(|e| panic!("{e}"));
        let symmetric = jsonwebtoken::encode(&hs, &good, &hmac).unwrap_or_else(|e| panic!("{e}"));
        let es =
            format!("{}.{payload}.AAAA", b64(&json!({"alg": "ES256", "typ": "JWT", "kid": TestKey::Signing.kid()})));
        let t = now();
        let no_kid = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &good, &TestKey::Signing.encoding())
            .unwrap_or_else(|e| panic!("{e}"));
        vec![
            ("no key id", Some(format!("Bearer {no_kid}"))),
            ("no token", None),
            ("another scheme", Some("Basic dXNlcjpwYXNz".to_owned())),
            ("malformed", Some("Bearer not.a.token".to_owned())),
            ("not base64", Some(format!("Bearer {head}.%%%.{}", "x"))),
            (
                "wrong signature",
                Some(format!("Bearer {}", Self::sign(TestKey::Stranger, TestKey::Signing.kid(), &good))),
            ),
            (
                "unknown key id",
                Some(format!("Bearer {}", Self::sign(TestKey::Stranger, TestKey::Stranger.kid(), &good))),
            ),
            (
                "tampered claims",
                Some(format!(
                    "Bearer {head}.{}.{}",
                    b64(&with("roles", json!(["Billing.Read.All"]))),
                    valid.rsplit('.').next().unwrap_or_default()
                )),
            ),
            ("wrong issuer", Some(signed(&with("iss", json!("https://login.microsoftonline.com/other/v2.0"))))),
            ("wrong audience", Some(signed(&with("aud", json!("api://someone-else"))))),
            ("expired", Some(signed(&with("exp", json!(t - 3600))))),
            ("not yet valid", Some(signed(&with("nbf", json!(t + 3600))))),
            (
                "no expiry",
                Some(signed(&{
                    let mut c = good.clone();
                    c.as_object_mut().map(|o| o.remove("exp"));
                    c
                })),
            ),
            ("alg none", Some(format!("Bearer {none}"))),
            ("symmetric algorithm", Some(format!("Bearer {symmetric}"))),
            ("algorithm not accepted", Some(format!("Bearer {es}"))),
            ("oversized", Some(format!("Bearer {}", "a".repeat(20 * 1024)))),
        ]
    }
}

type Shared = (Arc<Switches>, SocketAddr);

async fn configuration(State((switches, addr)): State<Shared>) -> Response {
    if switches.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let issuer = format!("http://{addr}/tenant-test/v2.0");
    axum::Json(json!({"issuer": issuer, "jwks_uri": format!("http://{addr}/keys"), "id_token_signing_alg_values_supported": ["RS256"]}))
        .into_response()
}

async fn key_set(State((switches, _)): State<Shared>) -> Response {
    switches.fetches.fetch_add(1, Ordering::SeqCst);
    if switches.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys = if switches.rotated.load(Ordering::SeqCst) {
        vec![TestKey::Rotated.jwk()]
    } else {
        vec![TestKey::Signing.jwk()]
    };
    axum::Json(JwkSet { keys }).into_response()
}
