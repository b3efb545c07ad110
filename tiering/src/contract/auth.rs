//! Who may call the API, as the profile's `[auth]` describes the existing API
//! (docs/auth.md). Pure: the parsed section and the authorization rule; the
//! reader validates tokens (`reader::auth`).
//!
//! Three modes:
//! - `function-key` (the default): the Functions host checks the caller's key
//!   (`authLevel: function`); every key holder reads every record, as today.
//! - `bearer`: the reader checks a JWT (as Entra ID issues them) itself: the
//!   signature against the issuer's published keys, the issuer, the audience,
//!   expiry and not-before; then the authorization rule below.
//! - `anonymous`: a gateway in front (API Management) authenticates and
//!   authorizes callers; the app is reachable only from it (the Bicep's access
//!   restrictions, docs/auth.md) and the host still asks for the function key,
//!   which the gateway sends.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ContractError, bad, fill_template, header_value};

/// The algorithms a bearer token may be signed with: asymmetric only, so a
/// published key can never double as an HMAC secret.
pub const ASYMMETRIC: [&str; 9] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// The longest `Authorization` header considered (bytes): Entra tokens with many
/// claims run to a few kilobytes; anything past this is refused unparsed.
pub const MAX_AUTHORIZATION_BYTES: usize = 16 * 1024;

/// How callers authenticate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// The host's function key (`authLevel: function`); no check in the reader.
    #[default]
    FunctionKey,
    /// A gateway authenticates; the app is open to the gateway only.
    Anonymous,
    /// JWT bearer tokens, validated by the reader.
    Bearer(Box<Bearer>),
}

/// Where the issuer's signing keys are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The OpenID configuration document (`.../.well-known/openid-configuration`),
    /// whose `jwks_uri` names the key set.
    OpenIdConfiguration(url::Url),
    /// The key set (JWKS) itself.
    Jwks(url::Url),
}

/// A bearer-token profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bearer {
    /// Accepted `iss` values (one per tenant or authority).
    pub issuers: Vec<String>,
    /// Accepted `aud` values (the API's application ID URI and/or client id).
    pub audiences: Vec<String>,
    pub keys: KeySource,
    /// Accepted `alg` values, from [`ASYMMETRIC`].
    pub algorithms: Vec<String>,
    /// Leeway for `exp` and `nbf`.
    pub clock_skew_seconds: u64,
    /// A token naming a key id not in the cache fetches the keys again at most
    /// once per this many seconds (a flood of bogus key ids cannot make the
    /// reader fetch without end).
    pub key_refresh_seconds: u64,
    /// The claim whose value (a string, or an array of strings) must hold the
    /// route's partition-key value; `None`: no per-partition rule.
    pub partition_claim: Option<String>,
    /// Values of the `roles` claim that read every partition (back office).
    pub read_all_roles: Vec<String>,
    /// Values of the `scp` claim (space-separated) that read every partition.
    pub read_all_scopes: Vec<String>,
    /// Roles and scopes that may write any partition through the reader
    /// (write-through): reading all is not enough to make another's record hot.
    pub write_all_roles: Vec<String>,
    pub write_all_scopes: Vec<String>,
    /// What a request without a valid token answers (401).
    pub unauthenticated: Unauthenticated,
    /// What an authenticated caller the rule refuses answers.
    pub forbidden: Forbidden,
}

/// The 401 answer: body and `WWW-Authenticate` as the existing API sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthenticated {
    pub content_type: String,
    /// `None`: the default JSON error (`{"error":{"code":"Unauthorized",...}}`).
    pub body: Option<String>,
    /// `WWW-Authenticate` when no bearer token was sent (RFC 6750: `Bearer`).
    pub www_authenticate: String,
    /// `WWW-Authenticate` when a token was sent and refused.
    pub www_authenticate_invalid: String,
}

/// The answer to a caller the rule refuses: 403, or 404 where the API hides
/// that the record exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    pub status: u16,
    pub content_type: String,
    /// A template with `{{placeholder}}` for the route's values; `None`: the
    /// default JSON error for 403, the profile's missing-record answer for 404.
    pub body: Option<String>,
}

impl Forbidden {
    /// The body for `values`, when the profile gives one.
    pub fn body(&self, values: &HashMap<String, String>) -> Option<String> {
        self.body.as_deref().map(|t| fill_template(t, self.content_type.contains("json"), values))
    }
}

impl Auth {
    /// The profile's word for the mode, as the `READER_AUTH` setting and the
    /// Bicep's `readerAuth` parameter spell it.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::FunctionKey => "function-key",
            Self::Anonymous => "anonymous",
            Self::Bearer(_) => "bearer",
        }
    }

    /// The host's `authLevel` for the reader's functions: a bearer token is the
    /// reader's to check, so the host asks for nothing; behind a gateway the host
    /// still asks for the function key, which the gateway sends (API
    /// Management's named value): a second lock besides the access restrictions.
    pub fn auth_level(&self) -> &'static str {
        match self {
            Self::FunctionKey | Self::Anonymous => "function",
            Self::Bearer(_) => "anonymous",
        }
    }

    pub fn bearer(&self) -> Option<&Bearer> {
        match self {
            Self::Bearer(b) => Some(b),
            _ => None,
        }
    }
}

impl Bearer {
    /// The authorization rule, on a validated token's claims: a read-all role or
    /// scope reads every partition; otherwise `partition_claim` must hold the
    /// route's partition-key value. With neither configured, every valid token
    /// reads every partition; with only read-all roles or scopes, only they do.
    pub fn may_read(&self, claims: &Map<String, Value>, partition_key: &str) -> bool {
        self.open(&self.read_all_roles, &self.read_all_scopes)
            || self.rule(claims, partition_key, &self.read_all_roles, &self.read_all_scopes)
    }

    /// The rule for a write through the reader (write-through moves an archived
    /// record back before the write): the partition claim as for reads, but only
    /// `write_all_roles` and `write_all_scopes` write every partition. With no
    /// rule at all (authentication only), every valid token writes, as it reads.
    pub fn may_write(&self, claims: &Map<String, Value>, partition_key: &str) -> bool {
        let open = self.open(&self.read_all_roles, &self.read_all_scopes)
            && self.open(&self.write_all_roles, &self.write_all_scopes);
        open || self.rule(claims, partition_key, &self.write_all_roles, &self.write_all_scopes)
    }

    /// No rule: no partition claim and no roles or scopes named.
    fn open(&self, all_roles: &[String], all_scopes: &[String]) -> bool {
        self.partition_claim.is_none() && all_roles.is_empty() && all_scopes.is_empty()
    }

    fn rule(
        &self,
        claims: &Map<String, Value>,
        partition_key: &str,
        all_roles: &[String],
        all_scopes: &[String],
    ) -> bool {
        let roles = claims.get("roles").and_then(Value::as_array);
        if roles.is_some_and(|r| r.iter().filter_map(Value::as_str).any(|r| all_roles.iter().any(|a| a == r))) {
            return true;
        }
        let scopes = claims.get("scp").and_then(Value::as_str);
        if scopes.is_some_and(|s| s.split(' ').any(|s| all_scopes.iter().any(|a| a == s))) {
            return true;
        }
        match &self.partition_claim {
            Some(claim) => match claims.get(claim) {
                Some(Value::String(v)) => v == partition_key,
                Some(Value::Array(values)) => values.iter().any(|v| v.as_str() == Some(partition_key)),
                _ => false,
            },
            None => false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthSection {
    #[serde(default = "function_key")]
    mode: String,
    #[serde(default)]
    issuers: Vec<String>,
    #[serde(default)]
    audiences: Vec<String>,
    openid_configuration: Option<String>,
    jwks_uri: Option<String>,
    algorithms: Option<Vec<String>>,
    clock_skew_seconds: Option<u64>,
    key_refresh_seconds: Option<u64>,
    partition_claim: Option<String>,
    #[serde(default)]
    read_all_roles: Vec<String>,
    #[serde(default)]
    read_all_scopes: Vec<String>,
    #[serde(default)]
    write_all_roles: Vec<String>,
    #[serde(default)]
    write_all_scopes: Vec<String>,
    unauthenticated: Option<UnauthenticatedSection>,
    forbidden: Option<ForbiddenSection>,
}

fn function_key() -> String {
    "function-key".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnauthenticatedSection {
    #[serde(default = "super::default_content_type")]
    content_type: String,
    body: Option<String>,
    #[serde(default = "bearer_challenge")]
    www_authenticate: String,
    #[serde(default = "invalid_token_challenge")]
    www_authenticate_invalid: String,
}

fn bearer_challenge() -> String {
    "Bearer".into()
}

fn invalid_token_challenge() -> String {
    "Bearer error=\"invalid_token\"".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForbiddenSection {
    #[serde(default = "forbidden_status")]
    status: u16,
    #[serde(default = "super::default_content_type")]
    content_type: String,
    body: Option<String>,
}

fn forbidden_status() -> u16 {
    403
}

/// Default leeway for `exp` and `nbf` (Microsoft.IdentityModel's default is 5 minutes; 60 s is tighter).
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
/// Default least interval between key fetches for unknown key ids (Microsoft.IdentityModel's `RefreshInterval`).
pub const DEFAULT_KEY_REFRESH_SECONDS: u64 = 300;

fn https_url(key: &str, text: &str) -> Result<url::Url, ContractError> {
    let url = url::Url::parse(text).map_err(|e| bad(key, format!("`{text}` is not a URL: {e}")))?;
    // Plain http only to the local machine (the test tools' key server).
    let local = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if url.scheme() != "https" && !(url.scheme() == "http" && local) {
        return Err(bad(key, format!("`{text}`: signing keys are fetched over https")));
    }
    Ok(url)
}

fn non_empty(key: &str, values: &[String]) -> Result<(), ContractError> {
    if values.is_empty() {
        return Err(bad(key, "bearer mode needs at least one"));
    }
    if let Some(v) = values.iter().find(|v| v.trim().is_empty() || v.contains(',') || v.trim() != v.as_str()) {
        return Err(bad(key, format!("`{v}` is not usable (empty, spaces around it, or a comma)")));
    }
    Ok(())
}

pub(super) fn parse(section: Option<&AuthSection>) -> Result<Auth, ContractError> {
    let Some(s) = section else { return Ok(Auth::FunctionKey) };
    let bearer_only = [
        ("auth.issuers", !s.issuers.is_empty()),
        ("auth.audiences", !s.audiences.is_empty()),
        ("auth.openid_configuration", s.openid_configuration.is_some()),
        ("auth.jwks_uri", s.jwks_uri.is_some()),
        ("auth.algorithms", s.algorithms.is_some()),
        ("auth.clock_skew_seconds", s.clock_skew_seconds.is_some()),
        ("auth.key_refresh_seconds", s.key_refresh_seconds.is_some()),
        ("auth.partition_claim", s.partition_claim.is_some()),
        ("auth.read_all_roles", !s.read_all_roles.is_empty()),
        ("auth.read_all_scopes", !s.read_all_scopes.is_empty()),
        ("auth.write_all_roles", !s.write_all_roles.is_empty()),
        ("auth.write_all_scopes", !s.write_all_scopes.is_empty()),
        ("auth.unauthenticated", s.unauthenticated.is_some()),
        ("auth.forbidden", s.forbidden.is_some()),
    ];
    let refuse_bearer_keys = |mode: &str| match bearer_only.iter().find(|(_, set)| *set) {
        Some((key, _)) => Err(bad(key, format!("only for auth.mode = \"bearer\", not \"{mode}\""))),
        None => Ok(()),
    };
    match s.mode.as_str() {
        "function-key" => {
            refuse_bearer_keys("function-key")?;
            return Ok(Auth::FunctionKey);
        }
        "anonymous" => {
            refuse_bearer_keys("anonymous")?;
            return Ok(Auth::Anonymous);
        }
        "bearer" => {}
        other => {
            return Err(bad("auth.mode", format!("`{other}` is not a mode (function-key, bearer, anonymous)")));
        }
    }
    non_empty("auth.issuers", &s.issuers)?;
    non_empty("auth.audiences", &s.audiences)?;
    let keys = match (&s.openid_configuration, &s.jwks_uri) {
        (Some(u), None) => KeySource::OpenIdConfiguration(https_url("auth.openid_configuration", u)?),
        (None, Some(u)) => KeySource::Jwks(https_url("auth.jwks_uri", u)?),
        _ => {
            return Err(bad(
                "auth.openid_configuration",
                "bearer mode needs exactly one of auth.openid_configuration and auth.jwks_uri",
            ));
        }
    };
    let algorithms = s.algorithms.clone().unwrap_or_else(|| vec!["RS256".into()]);
    if algorithms.is_empty() {
        return Err(bad("auth.algorithms", "needs at least one"));
    }
    if let Some(a) = algorithms.iter().find(|a| !ASYMMETRIC.contains(&a.as_str())) {
        return Err(bad(
            "auth.algorithms",
            format!("`{a}` is not an asymmetric signature algorithm ({})", ASYMMETRIC.join(", ")),
        ));
    }
    let clock_skew_seconds = s.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW_SECONDS);
    if clock_skew_seconds > 600 {
        return Err(bad("auth.clock_skew_seconds", "at most 600 (ten minutes)"));
    }
    let key_refresh_seconds = s.key_refresh_seconds.unwrap_or(DEFAULT_KEY_REFRESH_SECONDS);
    if !(1..=86_400).contains(&key_refresh_seconds) {
        return Err(bad("auth.key_refresh_seconds", "from 1 to 86400"));
    }
    if let Some(claim) = &s.partition_claim
        && claim.trim().is_empty()
    {
        return Err(bad("auth.partition_claim", "is empty"));
    }
    let u = s.unauthenticated.as_ref();
    let unauthenticated = Unauthenticated {
        content_type: u.map_or_else(super::default_content_type, |u| u.content_type.clone()),
        body: u.and_then(|u| u.body.clone()),
        www_authenticate: u.map_or_else(bearer_challenge, |u| u.www_authenticate.clone()),
        www_authenticate_invalid: u.map_or_else(invalid_token_challenge, |u| u.www_authenticate_invalid.clone()),
    };
    header_value("auth.unauthenticated.content_type", &unauthenticated.content_type)?;
    header_value("auth.unauthenticated.www_authenticate", &unauthenticated.www_authenticate)?;
    header_value("auth.unauthenticated.www_authenticate_invalid", &unauthenticated.www_authenticate_invalid)?;
    let f = s.forbidden.as_ref();
    let forbidden = Forbidden {
        status: f.map_or(403, |f| f.status),
        content_type: f.map_or_else(super::default_content_type, |f| f.content_type.clone()),
        body: f.and_then(|f| f.body.clone()),
    };
    if ![403, 404].contains(&forbidden.status) {
        return Err(bad("auth.forbidden.status", format!("{} is neither 403 nor 404", forbidden.status)));
    }
    header_value("auth.forbidden.content_type", &forbidden.content_type)?;
    Ok(Auth::Bearer(Box::new(Bearer {
        issuers: s.issuers.clone(),
        audiences: s.audiences.clone(),
        keys,
        algorithms,
        clock_skew_seconds,
        key_refresh_seconds,
        partition_claim: s.partition_claim.clone(),
        read_all_roles: s.read_all_roles.clone(),
        read_all_scopes: s.read_all_scopes.clone(),
        write_all_roles: s.write_all_roles.clone(),
        write_all_scopes: s.write_all_scopes.clone(),
        unauthenticated,
        forbidden,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Contract, DEFAULT_PROFILE};

    const BEARER: &str = r#"
[auth]
mode = "bearer"
issuers = ["https://login.microsoftonline.com/tid/v2.0"]
audiences = ["api://billing"]
openid_configuration = "https://login.microsoftonline.com/tid/v2.0/.well-known/openid-configuration"
partition_claim = "customerId"
read_all_roles = ["Billing.Read.All"]
read_all_scopes = ["Billing.ReadAll"]
"#;

    fn profile(auth: &str) -> Result<Contract, ContractError> {
        Contract::parse(&format!("{DEFAULT_PROFILE}\n{auth}"))
    }

    fn claims(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_default_is_the_function_key() {
        let c = Contract::default_profile();
        assert_eq!(c.auth, Auth::FunctionKey);
        assert_eq!((c.auth.mode(), c.auth.auth_level()), ("function-key", "function"));
        assert_eq!(profile("[auth]\nmode = \"anonymous\"").unwrap().auth.auth_level(), "function", "the gateway's key");
    }

    #[test]
    fn the_functions_ask_the_host_for_a_key_unless_the_reader_checks_tokens() {
        let with_writes = "[writes]\nmethods = [\"PUT\"]\nsub_paths = true\n";
        for (auth, level) in [("", "function"), ("[auth]\nmode = \"anonymous\"", "function"), (BEARER, "anonymous")] {
            let c = profile(&format!("{with_writes}{auth}")).unwrap();
            let functions = c.function_definitions();
            assert_eq!(functions.len(), 2, "the record route and its actions");
            for (name, json) in functions {
                assert_eq!(json["bindings"][0]["authLevel"], level, "{name} with {auth:?}");
            }
        }
    }

    #[test]
    fn a_bearer_profile_names_issuers_audiences_keys_and_the_rule() {
        let c = profile(BEARER).unwrap();
        let b = c.auth.bearer().unwrap();
        assert_eq!(c.auth.auth_level(), "anonymous", "the reader checks the token, not the host");
        assert_eq!(b.algorithms, ["RS256"]);
        assert_eq!((b.clock_skew_seconds, b.key_refresh_seconds), (60, 300));
        assert!(matches!(b.keys, KeySource::OpenIdConfiguration(_)));
        assert_eq!(b.forbidden.status, 403);
        assert_eq!(b.unauthenticated.www_authenticate, "Bearer");
    }

    #[test]
    fn the_rule_reads_the_partition_claim_roles_and_scopes() {
        let c = profile(BEARER).unwrap();
        let b = c.auth.bearer().unwrap();
        assert!(b.may_read(&claims(r#"{"customerId":"c1"}"#), "c1"));
        assert!(!b.may_read(&claims(r#"{"customerId":"c1"}"#), "c2"));
        assert!(!b.may_read(&claims(r#"{"customerId":"C1"}"#), "c1"), "values compare exactly");
        assert!(b.may_read(&claims(r#"{"customerId":["c0","c2"]}"#), "c2"));
        assert!(!b.may_read(&claims(r#"{"customerId":42}"#), "42"), "a number is not the route's string");
        assert!(!b.may_read(&claims(r#"{"sub":"c1"}"#), "c1"), "another claim does not count");
        assert!(b.may_read(&claims(r#"{"roles":["x","Billing.Read.All"]}"#), "anyone"));
        assert!(!b.may_read(&claims(r#"{"roles":"Billing.Read.All"}"#), "anyone"), "roles is an array");
        assert!(b.may_read(&claims(r#"{"scp":"User.Read Billing.ReadAll"}"#), "anyone"));
        assert!(!b.may_read(&claims(r#"{"scp":"Billing.ReadAllX"}"#), "anyone"));
        assert!(!b.may_read(&claims(r#"{"customerId":"c1","roles":["Billing.Read"]}"#), "c2"));

        let roles_only = profile(&BEARER.replace("partition_claim = \"customerId\"\n", "")).unwrap();
        let b = roles_only.auth.bearer().unwrap();
        assert!(!b.may_read(&claims(r#"{"customerId":"c1"}"#), "c1"), "only the roles read");
        assert!(!b.may_write(&claims(r#"{"customerId":"c1"}"#), "c1"), "and nobody writes");
        assert!(b.may_read(&claims(r#"{"roles":["Billing.Read.All"]}"#), "c1"));
        let any = BEARER
            .replace("partition_claim = \"customerId\"\n", "")
            .replace("read_all_roles = [\"Billing.Read.All\"]\n", "")
            .replace("read_all_scopes = [\"Billing.ReadAll\"]\n", "");
        let any = profile(&any).unwrap();
        assert!(any.auth.bearer().unwrap().may_read(&claims("{}"), "c1"), "authentication only");
        assert!(any.auth.bearer().unwrap().may_write(&claims("{}"), "c1"), "authentication only, for writes too");
    }

    #[test]
    fn reading_all_is_not_writing_all() {
        let c = profile(BEARER).unwrap();
        let b = c.auth.bearer().unwrap();
        let office = claims(r#"{"roles":["Billing.Read.All"],"scp":"Billing.ReadAll"}"#);
        assert!(b.may_read(&office, "c2") && !b.may_write(&office, "c2"), "read-only back office");
        assert!(b.may_write(&claims(r#"{"customerId":"c2"}"#), "c2"), "a customer writes its own");
        assert!(!b.may_write(&claims(r#"{"customerId":"c1"}"#), "c2"));
        let writers = profile(&format!("{BEARER}write_all_roles = [\"Billing.Write.All\"]\n")).unwrap();
        let b = writers.auth.bearer().unwrap();
        assert!(b.may_write(&claims(r#"{"roles":["Billing.Write.All"]}"#), "c2"));
        assert!(!b.may_read(&claims(r#"{"roles":["Billing.Write.All"]}"#), "c2"), "writing all is not reading all");
    }

    #[test]
    fn a_bad_auth_section_names_its_key() {
        for (from, to, key) in [
            ("mode = \"bearer\"", "mode = \"oauth\"", "auth.mode"),
            ("issuers = [\"https://login.microsoftonline.com/tid/v2.0\"]", "issuers = []", "auth.issuers"),
            ("audiences = [\"api://billing\"]", "", "auth.audiences"),
            ("openid_configuration = \"https://", "openid_configuration = \"http://", "auth.openid_configuration"),
            ("partition_claim", "algorithms = [\"HS256\"]\npartition_claim", "auth.algorithms"),
            ("partition_claim", "algorithms = [\"none\"]\npartition_claim", "auth.algorithms"),
            ("partition_claim", "clock_skew_seconds = 3600\npartition_claim", "auth.clock_skew_seconds"),
            ("partition_claim", "key_refresh_seconds = 0\npartition_claim", "auth.key_refresh_seconds"),
            ("[\"api://billing\"]", "[\" api://billing\"]", "auth.audiences"),
            ("mode = \"bearer\"", "mode = \"bearer\"\ncolour = 1", "line"),
        ] {
            assert!(BEARER.contains(from), "{from}");
            let text = BEARER.replacen(from, to, 1);
            let err = profile(&text).unwrap_err();
            assert!(err.key.starts_with(key), "{to}: {err}");
        }
        let status = profile(&format!("{BEARER}[auth.forbidden]\nstatus = 401\n")).unwrap_err();
        assert_eq!(status.key, "auth.forbidden.status");
        let both = BEARER.replace("partition_claim", "jwks_uri = \"https://x.example/keys\"\npartition_claim");
        assert_eq!(profile(&both).unwrap_err().key, "auth.openid_configuration");
        let err = profile("[auth]\nmode = \"anonymous\"\npartition_claim = \"tid\"").unwrap_err();
        assert_eq!(err.key, "auth.partition_claim", "a rule without tokens would be a false promise");
        assert!(
            profile("[auth]\nmode = \"bearer\"\nissuers=[\"a\"]\naudiences=[\"b\"]\njwks_uri=\"http://127.0.0.1:9/k\"")
                .is_ok()
        );
    }

    #[test]
    fn the_entra_example_describes_a_bearer_api() {
        let c = Contract::parse(include_str!("../../../contracts/examples/entra-billing.toml")).unwrap();
        let b = c.auth.bearer().unwrap();
        assert_eq!((b.partition_claim.as_deref(), b.forbidden.status), (Some("customerId"), 403));
        assert!(
            matches!(&b.keys, KeySource::OpenIdConfiguration(u) if u.as_str().starts_with("https://login.microsoftonline.com/"))
        );
        let values = HashMap::from([("customerId".to_owned(), "c-1".to_owned())]);
        assert!(b.forbidden.body(&values).unwrap().contains("customer c-1"));
        assert!(b.may_read(&claims(r#"{"scp":"Billing.ReadAll"}"#), "c-9"));
    }

    #[test]
    fn a_404_hides_the_record_and_a_body_takes_the_routes_values() {
        let hidden = profile(&format!(
            "{BEARER}\n[auth.forbidden]\nstatus = 404\nbody = '{{\"detail\":\"no record {{{{recordId}}}}\"}}'\n"
        ))
        .unwrap();
        let f = &hidden.auth.bearer().unwrap().forbidden;
        assert_eq!(f.status, 404);
        let values = HashMap::from([("recordId".to_owned(), "r\"1".to_owned())]);
        assert_eq!(f.body(&values).unwrap(), r#"{"detail":"no record r\"1"}"#);
    }
}
