//! Callers' authentication and authorization (the profile's `[auth]`,
//! docs/auth.md) against the real emulators and a local token issuer
//! (`testkit::idp`: an OpenID configuration, a key set and RS256 tokens, good
//! and bad). Each test names the case it proves.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use archiver::startup::Archiver;
use base64::Engine;
use chrono::Utc;
use serde_json::{Value, json};
use testkit::cosmos::{fresh_stores, seed};
use testkit::emulator::TEST_TRANSPORT;
use testkit::idp::{Idp, TestKey};
use testkit::proxy::Proxy;
use testkit::sample::{SampleRecord, invoice};
use tiering::archive::{Archive, BlobArchive};
use tiering::contract::{Contract, DEFAULT_PROFILE};
use tiering::cosmos::CosmosStore;
use tiering::record::AgeField;
use tiering::settings::{ArchiverSettings, ReaderSettings, StoreSettings};
use tiering::store::StoreError;

const BACK_OFFICE: &str = "Billing.Read.All";

/// The default routes behind Entra-style bearer tokens: a customer's token
/// carries `customerId`; the back-office role reads every customer.
fn profile(idp: &Idp, refresh_seconds: u64, extra: &str) -> Contract {
    Contract::parse(&format!("{DEFAULT_PROFILE}{}", idp.auth_section("customerId", refresh_seconds, extra))).unwrap()
}

/// A profile with the writes a billing API has, behind the same tokens.
fn writing_profile(idp: &Idp) -> Contract {
    let writes = "\n[writes]\nmethods = [\"PUT\", \"PATCH\", \"DELETE\"]\n";
    Contract::parse(&format!("{DEFAULT_PROFILE}{writes}{}", idp.auth_section("customerId", 300, ""))).unwrap()
}

struct World {
    stores: StoreSettings,
    cosmos: CosmosStore,
    blob: BlobArchive,
    /// Two customers' invoices: `old` archived (200 days), `recent` hot.
    old: Vec<SampleRecord>,
    recent: Vec<SampleRecord>,
    http: reqwest::Client,
}

async fn world() -> World {
    let (stores, cosmos, blob) = fresh_stores(AgeField::Iso("invoiceDate".into())).await;
    let today = Utc::now().date_naive();
    let mut old = Vec::new();
    let mut recent = Vec::new();
    for customer in ["cust-a", "cust-b"] {
        old.push(invoice(customer, &format!("{customer}-old"), today - chrono::Duration::days(200), 4_000, 7));
        recent.push(invoice(customer, &format!("{customer}-new"), today - chrono::Duration::days(3), 4_000, 8));
    }
    seed(&cosmos, &old).await;
    seed(&cosmos, &recent).await;
    let w = World { stores, cosmos, blob, old, recent, http: reqwest::Client::new() };
    let settings = ArchiverSettings {
        quiet_days: 0,
        concurrency: 4,
        time_budget: Duration::from_secs(60),
        ..ArchiverSettings::defaults(w.stores.clone())
    };
    let archiver = Archiver { cosmos: w.cosmos.clone(), archive: Arc::new(w.blob.clone()), settings };
    assert_eq!(archiver.run(Utc::now(), false).await.archived, 2);
    w
}

async fn serve(stores: &StoreSettings, contract: Contract, upstream: Option<SocketAddr>, timeout: u64) -> SocketAddr {
    let settings = ReaderSettings {
        contract,
        request_timeout: Duration::from_secs(timeout),
        upstream: upstream.map(|u| format!("http://{u}").parse().unwrap()),
        ..ReaderSettings::defaults(stores.clone())
    };
    let tiers = reader::startup::build(&settings, TEST_TRANSPORT).await.unwrap();
    let (listener, addr) = tiering::host::bind(0).await.unwrap();
    tokio::spawn(tiering::host::serve(listener, reader::router(tiers), std::future::pending()));
    addr
}

fn record_path(r: &SampleRecord) -> String {
    format!("/api/customers/{}/billing-records/{}", r.customer_id, r.id)
}

fn list_path(customer: &str) -> String {
    format!("/api/customers/{customer}/billing-records?pageSize=10")
}

#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    challenge: Option<String>,
    retry_after: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn send(
    http: &reqwest::Client,
    method: &str,
    at: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    body: Option<String>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http.request(method, format!("http://{at}{path}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (content_type, challenge, retry_after) =
        (header("content-type"), header("www-authenticate"), header("retry-after"));
    Answer {
        status: response.status().as_u16(),
        content_type,
        challenge,
        retry_after,
        body: response.text().await.unwrap(),
    }
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

impl World {
    async fn get(&self, at: SocketAddr, path: &str, headers: &[(&str, String)]) -> Answer {
        send(&self.http, "GET", at, path, headers, None).await
    }

    async fn archived(&self, r: &SampleRecord) -> bool {
        match self.blob.head(&tiering::layout::blob_name(&r.customer_id, &r.id).unwrap()).await {
            Ok(_) => true,
            Err(StoreError::NotFound) => false,
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn a_customer_reads_its_own_records_from_both_tiers_and_never_anothers() {
    let (idp, w) = (Idp::start().await.unwrap(), world().await);
    let reader = serve(&w.stores, profile(&idp, 300, ""), None, 10).await;
    let a = bearer(&idp.token(json!({"customerId": "cust-a"})));
    for r in [&w.old[0], &w.recent[0]] {
        let own = w.get(reader, &record_path(r), &a).await;
        assert_eq!(own.status, 200, "{}: {}", r.id, own.body);
        assert_eq!(own.body, r.json, "the stored document, from either tier");
    }
    assert!(w.archived(&w.old[0]).await, "one of them is served from the archive");
    let list = w.get(reader, &list_path("cust-a"), &a).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["items"].as_array().unwrap().len(), 2, "both tiers listed: {}", list.body);

    // Another customer's records, hot or archived, and its list: the default 403.
    for path in [record_path(&w.old[1]), record_path(&w.recent[1]), list_path("cust-b")] {
        let other = w.get(reader, &path, &a).await;
        assert_eq!(other.status, 403, "{path}: {}", other.body);
        assert_eq!(other.json()["error"]["code"], "Forbidden");
        assert!(!other.body.contains("cust-b-"), "nothing of the record: {}", other.body);
    }
    // Two Authorization headers are one too many, whatever they hold.
    let twice = vec![a[0].clone(), a[0].clone()];
    assert_eq!(w.get(reader, &record_path(&w.recent[0]), &twice).await.status, 401);
    // A claim holding several customers reads each of them.
    let both = bearer(&idp.token(json!({"customerId": ["cust-a", "cust-b"]})));
    assert_eq!(w.get(reader, &record_path(&w.old[1]), &both).await.status, 200);
    // The back office: the role, on any customer, on both tiers and lists.
    let office = bearer(&idp.token(json!({"roles": [BACK_OFFICE], "customerId": "cust-a"})));
    for path in [record_path(&w.old[1]), record_path(&w.recent[1]), list_path("cust-b")] {
        assert_eq!(w.get(reader, &path, &office).await.status, 200, "{path}");
    }
    // A role that is not the back office's reads nothing else.
    let clerk = bearer(&idp.token(json!({"roles": ["Billing.Read"], "customerId": "cust-a"})));
    assert_eq!(w.get(reader, &record_path(&w.recent[1]), &clerk).await.status, 403);
}

#[tokio::test]
async fn where_the_api_hides_existence_another_customers_record_answers_as_a_missing_one() {
    let (idp, w) = (Idp::start().await.unwrap(), world().await);
    let reader = serve(&w.stores, profile(&idp, 300, "[auth.forbidden]\nstatus = 404"), None, 10).await;
    let a = bearer(&idp.token(json!({"customerId": "cust-a"})));
    let office = bearer(&idp.token(json!({"roles": [BACK_OFFICE]})));
    for r in [&w.old[1], &w.recent[1]] {
        let hidden = w.get(reader, &record_path(r), &a).await;
        // What the back office gets for an id that exists in neither tier.
        let absent_path = record_path(r).replace(&r.id, "no-such-invoice");
        let absent = w.get(reader, &absent_path, &office).await;
        assert_eq!((hidden.status, &hidden.content_type), (404, &absent.content_type));
        assert_eq!(hidden.body, absent.body.replace("no-such-invoice", &r.id), "indistinguishable");
    }
    let list = w.get(reader, &list_path("cust-b"), &a).await;
    assert_eq!((list.status, list.json()["error"]["code"].as_str()), (404, Some("NotFound")));
}

#[tokio::test]
async fn every_bad_token_is_a_401_with_the_challenge_before_any_store_is_asked() {
    let idp = Idp::start().await.unwrap();
    let w = world().await;
    // Both stores behind proxies that hold every byte: a reader that asked
    // either would wait out its deadline and answer 503.
    let (cosmos_direct, blob_direct) = (w.stores.cosmos_endpoint.to_string(), w.stores.blob_endpoint.to_string());
    let cosmos = Proxy::in_front_of(&cosmos_direct).await.unwrap();
    let blob = Proxy::in_front_of(&blob_direct).await.unwrap();
    let mut stores = w.stores.clone();
    stores.cosmos_endpoint = cosmos.endpoint_for(&cosmos_direct).parse().unwrap();
    stores.blob_endpoint = blob.endpoint_for(&blob_direct).parse().unwrap();
    let body = r#"{"message":"Unauthorized"}"#;
    let extra = format!(
        "[auth.unauthenticated]\ncontent_type = \"application/problem+json\"\nbody = '{body}'\nwww_authenticate = 'Bearer realm=\"billing\"'\nwww_authenticate_invalid = 'Bearer realm=\"billing\", error=\"invalid_token\"'"
    );
    let reader = serve(&stores, profile(&idp, 300, &extra), None, 3).await;
    let good = idp.token(json!({"customerId": "cust-a"}));
    assert_eq!(w.get(reader, &record_path(&w.recent[0]), &bearer(&good)).await.status, 200, "the stores answer");
    cosmos.set_stalled(true);
    blob.set_stalled(true);

    let cases = idp.bad_tokens(json!({"customerId": "cust-a"}));
    assert!(cases.len() >= 15);
    for (case, authorization) in &cases {
        let headers: Vec<(&str, String)> = authorization.iter().map(|v| ("authorization", v.clone())).collect();
        for path in [record_path(&w.old[0]), record_path(&w.recent[0]), list_path("cust-a")] {
            let started = Instant::now();
            let answer = w.get(reader, &path, &headers).await;
            assert_eq!(answer.status, 401, "{case} on {path}: {answer:?}");
            assert!(started.elapsed() < Duration::from_secs(2), "{case}: answered without waiting for a store");
            assert_eq!(answer.content_type.as_deref(), Some("application/problem+json"), "{case}");
            assert_eq!(answer.body, body, "{case}");
            let challenge = if matches!(*case, "no token" | "another scheme") {
                "Bearer realm=\"billing\""
            } else {
                "Bearer realm=\"billing\", error=\"invalid_token\""
            };
            assert_eq!(answer.challenge.as_deref(), Some(challenge), "{case}");
        }
    }
    // Not before the route's values either: a malformed id with no token is a 401, not a 400.
    assert_eq!(w.get(reader, "/api/customers/cust-a/billing-records/%00", &[]).await.status, 401);
    // A valid token does reach the stores: here, stalled, the deadline's 503.
    let stalled = w.get(reader, &record_path(&w.old[0]), &bearer(&good)).await;
    assert_eq!((stalled.status, stalled.retry_after.is_some()), (503, true), "{stalled:?}");
}

/// A client holds ID tokens for the same app registration, often with the same
/// audience and the user's roles: none of them passes for an access token.
#[tokio::test]
async fn id_tokens_are_refused_whatever_roles_and_audience_they_carry() {
    let (idp, w) = (Idp::start().await.unwrap(), world().await);
    let reader = serve(&w.stores, profile(&idp, 300, ""), None, 10).await;
    let path = record_path(&w.recent[1]);
    let mine = json!({"customerId": "cust-b"});
    assert_eq!(w.get(reader, &path, &bearer(&idp.token(mine.clone()))).await.status, 200, "a plain access token");
    let entra = idp.entra_access_token(json!({"roles": [BACK_OFFICE]}));
    assert_eq!(w.get(reader, &path, &bearer(&entra)).await.status, 200, "an Entra ID access token");
    let cases = idp.id_tokens(json!({"customerId": "cust-b", "roles": [BACK_OFFICE]}));
    assert!(cases.len() >= 7);
    for (case, authorization) in cases {
        for p in [path.clone(), record_path(&w.old[1]), list_path("cust-b")] {
            let answer = w.get(reader, &p, &[("authorization", authorization.clone())]).await;
            assert_eq!(answer.status, 401, "{case} on {p}: {answer:?}");
            assert!(answer.challenge.as_deref().is_some_and(|c| c.contains("invalid_token")), "{case}: {answer:?}");
        }
    }
}

#[tokio::test]
async fn identity_headers_a_client_sets_are_never_honoured() {
    let (idp, w) = (Idp::start().await.unwrap(), world().await);
    let reader = serve(&w.stores, profile(&idp, 300, ""), None, 10).await;
    // What App Service Authentication would set for a back-office principal; here
    // the platform does not (it is off), so a client wrote them.
    let principal = json!({"auth_typ": "aad", "claims": [{"typ": "roles", "val": BACK_OFFICE}, {"typ": "customerId", "val": "cust-b"}]});
    let spoofed = vec![
        ("x-ms-client-principal", base64::engine::general_purpose::STANDARD.encode(principal.to_string())),
        ("x-ms-client-principal-id", "00000000-0000-0000-0000-000000000001".to_owned()),
        ("x-ms-client-principal-name", "backoffice@contoso.example".to_owned()),
        ("x-ms-client-principal-idp", "aad".to_owned()),
        ("x-ms-token-aad-access-token", idp.token(json!({"roles": [BACK_OFFICE]}))),
    ];
    let alone = w.get(reader, &record_path(&w.recent[1]), &spoofed).await;
    assert_eq!(alone.status, 401, "no token: the headers are not an identity");
    let mut with_a = bearer(&idp.token(json!({"customerId": "cust-a"})));
    with_a.extend(spoofed.iter().cloned());
    for r in [&w.old[1], &w.recent[1]] {
        assert_eq!(w.get(reader, &record_path(r), &with_a).await.status, 403, "{}: only the token counts", r.id);
    }
}

#[tokio::test]
async fn rotated_keys_are_fetched_and_a_flood_of_unknown_key_ids_fetches_once_per_interval() {
    let (idp, w) = (Idp::start().await.unwrap(), world().await);
    let path = record_path(&w.recent[0]);
    let claims = json!({"customerId": "cust-a"});

    // Refresh allowed every second: the issuer rotates, the next token names the
    // new key id, the reader fetches the key set again and accepts it.
    let reader = serve(&w.stores, profile(&idp, 1, ""), None, 10).await;
    assert_eq!(w.get(reader, &path, &bearer(&idp.token(claims.clone()))).await.status, 200);
    idp.rotate();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rotated = idp.token(claims.clone());
    assert!(rotated.len() > 100);
    assert_eq!(w.get(reader, &path, &bearer(&rotated)).await.status, 200, "the rotated key was fetched");
    // The old key is no longer published: its tokens are refused.
    let old = Idp::sign(TestKey::Signing, TestKey::Signing.kid(), &idp.claims(claims.clone()));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(w.get(reader, &path, &bearer(&old)).await.status, 401);

    // Refresh at most every 300 s: a hundred tokens naming unknown key ids cost
    // one fetch of the key set, not a hundred.
    let reader = serve(&w.stores, profile(&idp, 300, ""), None, 10).await;
    assert_eq!(w.get(reader, &path, &bearer(&rotated)).await.status, 200, "keys cached");
    let before = idp.fetches();
    let flood = futures::future::join_all((0..100).map(|i| {
        let token = Idp::sign(TestKey::Stranger, &format!("bogus-{i}"), &idp.claims(claims.clone()));
        let headers = bearer(&token);
        let (w, path) = (&w, &path);
        async move { w.get(reader, path, &headers).await.status }
    }))
    .await;
    assert!(flood.iter().all(|s| *s == 401), "{flood:?}");
    assert!(idp.fetches() - before <= 1, "{} fetches for 100 unknown key ids", idp.fetches() - before);
    assert_eq!(w.get(reader, &path, &bearer(&rotated)).await.status, 200, "the known key still works");
}

#[tokio::test]
async fn with_the_key_endpoint_down_cached_keys_keep_working_and_without_any_it_is_a_503() {
    let (idp, w) = (Idp::start().await.unwrap(), world().await);
    let path = record_path(&w.old[0]);
    let token = idp.token(json!({"customerId": "cust-a"}));

    let warm = serve(&w.stores, profile(&idp, 1, ""), None, 10).await;
    assert_eq!(w.get(warm, &path, &bearer(&token)).await.status, 200);
    idp.set_down(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(w.get(warm, &path, &bearer(&token)).await.status, 200, "cached keys serve");
    // A key id not cached while the issuer is down may be a rotated key: the
    // reader cannot tell, so it says so (503), rather than call the token bad.
    let rotated = Idp::sign(TestKey::Rotated, TestKey::Rotated.kid(), &idp.claims(json!({"customerId": "cust-a"})));
    let answer = w.get(warm, &path, &bearer(&rotated)).await;
    assert_eq!((answer.status, answer.retry_after.is_some()), (503, true), "{answer:?}");

    // A reader that started while the issuer was down has no key: 503, not 401.
    let cold = serve(&w.stores, profile(&idp, 1, ""), None, 10).await;
    let answer = w.get(cold, &path, &bearer(&token)).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.retry_after.is_some(), "{answer:?}");
    assert_eq!(answer.json()["error"]["code"], "ServiceUnavailable");
    // No token is still a 401: nothing about keys is needed to say so.
    assert_eq!(w.get(cold, &path, &[]).await.status, 401);
    idp.set_down(false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(w.get(cold, &path, &bearer(&token)).await.status, 200, "keys fetched once the issuer is back");
}

#[tokio::test]
async fn a_write_is_authorized_before_a_record_moves_back_and_the_upstream_gets_the_callers_token() {
    let (idp, w) = (Idp::start().await.unwrap(), world().await);
    // The current API checks the same tokens itself (devhost::current_api).
    let upstream = devhost::current_api::start(writing_profile(&idp), &w.stores).await.unwrap();
    let reader = serve(&w.stores, writing_profile(&idp), Some(upstream), 10).await;
    let (a_old, b_old) = (&w.old[0], &w.old[1]);
    let paid = |r: &SampleRecord| r.json.replacen(r#""status":"issued""#, r#""status":"paid""#, 1);
    let a = bearer(&idp.token(json!({"customerId": "cust-a"})));

    // The back office reads every customer, but reading is not writing: its
    // token cannot make B's archived invoice hot (write_all_roles would).
    let office = bearer(&idp.token(json!({"roles": [BACK_OFFICE]})));
    assert_eq!(w.get(reader, &record_path(b_old), &office).await.status, 200);
    let refused = send(&w.http, "PATCH", reader, &record_path(b_old), &office, Some("{}".into())).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(w.archived(b_old).await, "still archived");
    // Customer A may not write B's archived invoice: refused, and it stays archived.
    let refused = send(&w.http, "PUT", reader, &record_path(b_old), &a, Some(paid(b_old))).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(w.archived(b_old).await && !w.cosmos.exists("cust-b", &b_old.id).await.unwrap(), "not made hot");
    // Nor without a token.
    let anonymous = send(&w.http, "DELETE", reader, &record_path(b_old), &[], None).await;
    assert_eq!(anonymous.status, 401);
    assert!(w.archived(b_old).await, "still archived");

    // A writes its own: moved back, then the upstream, which validates the same
    // token (so it was forwarded unchanged), applies it.
    let own = send(&w.http, "PUT", reader, &record_path(a_old), &a, Some(paid(a_old))).await;
    assert_eq!(own.status, 200, "{own:?}");
    assert!(!w.archived(a_old).await);
    let hot = w.cosmos.read("cust-a", &a_old.id).await.unwrap().doc;
    assert!(String::from_utf8_lossy(hot.as_bytes()).contains(r#""status":"paid""#));
}

#[tokio::test]
async fn a_profile_may_accept_several_algorithm_families() {
    // jsonwebtoken refuses a key when the validation lists an algorithm of
    // another family; the reader validates each token with its own algorithm.
    let (idp, w) = (Idp::start().await.unwrap(), world().await);
    let reader = serve(&w.stores, profile(&idp, 300, "algorithms = [\"ES256\", \"RS256\"]"), None, 10).await;
    let token = idp.token(json!({"customerId": "cust-a"}));
    assert_eq!(w.get(reader, &record_path(&w.old[0]), &bearer(&token)).await.status, 200);
}
