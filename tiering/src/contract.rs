//! The read contract the reader keeps, as the adopter describes it: a profile
//! file (`contract.toml`; docs/adopting.md). Pure.
//!
//! A profile says which container property is the partition key, the routes
//! (prefix, record route, list route or none, and which placeholders hold the
//! partition-key value and the id), what a body leaves out of the stored
//! document, which validators (`ETag`, `Last-Modified`) are sent, and what a
//! missing record answers. The archive always keeps the whole document
//! (docs/archive-protocol.md); everything here is applied when serving, so a
//! profile can change without re-archiving anything.
//!
//! `contracts/default.toml` is today's API; it is compiled in and used when no
//! profile is given. `scripts/package.sh --contract FILE` checks a profile,
//! generates the reader's `function.json` and `host.json` route prefix from it
//! (so the route the host serves and the route the reader matches are one), and
//! ships it beside the reader.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;

use crate::record::{RawDocument, SYSTEM_PROPERTIES};

pub mod auth;
pub use auth::Auth;

/// The default profile: the billing-records API this project started from.
pub const DEFAULT_PROFILE: &str = include_str!("../../contracts/default.toml");

/// A profile that cannot be used; `key` names where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("contract profile: `{key}`: {message}")]
pub struct ContractError {
    pub key: String,
    pub message: String,
}

fn bad(key: &str, message: impl Into<String>) -> ContractError {
    ContractError { key: key.to_owned(), message: message.into() }
}

/// The container's partition key: one top-level property (setting `COSMOS_PARTITION_KEY`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKeyPath {
    property: String,
}

impl PartitionKeyPath {
    /// Parses a path such as `/customerId`, `/tenantId` or `/id`. Only top-level
    /// properties: a nested path (`/a/b`) or a hierarchical key is refused.
    pub fn parse(path: &str) -> Result<Self, String> {
        let Some(property) = path.strip_prefix('/') else {
            return Err(format!("`{path}` is not a partition-key path (it starts with `/`, like `/customerId`)"));
        };
        if property.contains('/') {
            return Err(format!("`{path}` is a nested path; only a top-level property can be the partition key here"));
        }
        let plain = !property.is_empty()
            && property.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !property.starts_with(|c: char| c.is_ascii_digit());
        if !plain {
            return Err(format!("`{path}` is not a property path (`/` and a name of letters, digits and `_`)"));
        }
        if SYSTEM_PROPERTIES.contains(&property) {
            return Err(format!("`{path}` is a Cosmos system property"));
        }
        Ok(Self { property: property.to_owned() })
    }

    /// The property name, without the leading `/`.
    pub fn property(&self) -> &str {
        &self.property
    }

    /// True for `/id`: the partition-key value is the id itself.
    pub fn is_id(&self) -> bool {
        self.property == "id"
    }
}

impl Default for PartitionKeyPath {
    fn default() -> Self {
        Self { property: "customerId".into() }
    }
}

impl fmt::Display for PartitionKeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.property)
    }
}

/// One segment of a route template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param(String),
}

/// A route template such as `tenants/{tenantId}/invoices/{invoiceId}`: literal
/// segments and whole-segment placeholders, below the route prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub segments: Vec<Segment>,
}

/// Characters a literal route segment may hold: what needs no percent-encoding
/// in a path, and means nothing to the host's or axum's route syntax.
fn literal_ok(segment: &str) -> bool {
    !segment.is_empty() && segment.chars().all(|c| c.is_ascii_alphanumeric() || "-._~!$&'()+,;=@".contains(c))
}

impl Route {
    fn parse(key: &str, text: &str) -> Result<Self, ContractError> {
        let trimmed = text.trim_matches('/');
        if trimmed.is_empty() {
            return Err(bad(key, "a route needs at least one segment"));
        }
        let mut segments = Vec::new();
        for part in trimmed.split('/') {
            let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                    Segment::Param(name.to_owned())
                }
                Some(_) => {
                    return Err(bad(key, format!("`{part}` is not a placeholder (`{{name}}`, letters, digits, `_`)")));
                }
                None if literal_ok(part) => Segment::Literal(part.to_owned()),
                None => {
                    return Err(bad(
                        key,
                        format!("`{part}`: a segment is either literal text or a whole `{{placeholder}}`"),
                    ));
                }
            };
            segments.push(segment);
        }
        let mut seen = std::collections::HashSet::new();
        for name in Self::params_of(&segments) {
            if !seen.insert(name) {
                return Err(bad(key, format!("the placeholder `{{{name}}}` appears twice")));
            }
        }
        Ok(Self { segments })
    }

    fn params_of(segments: &[Segment]) -> impl Iterator<Item = &str> {
        segments.iter().filter_map(|s| match s {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The placeholders, in order.
    pub fn params(&self) -> Vec<&str> {
        Self::params_of(&self.segments).collect()
    }

    /// The template as the host's `function.json` writes it (no prefix).
    pub fn template(&self) -> String {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.clone(),
                Segment::Param(p) => format!("{{{p}}}"),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The route as a path template below `prefix`, placeholders kept (`/api/customers/{customerId}/...`).
    pub fn fill_template(&self, prefix: &str) -> String {
        let mut path = String::new();
        if !prefix.is_empty() {
            path.push('/');
            path.push_str(prefix);
        }
        path.push('/');
        path.push_str(&self.template());
        path
    }

    /// The path with each placeholder replaced by its value, percent-encoded.
    pub fn fill(&self, prefix: &str, values: &HashMap<&str, &str>) -> String {
        let mut path = String::new();
        if !prefix.is_empty() {
            path.push('/');
            path.push_str(prefix);
        }
        for s in &self.segments {
            path.push('/');
            match s {
                Segment::Literal(l) => path.push_str(l),
                Segment::Param(p) => path.push_str(
                    &percent_encoding::utf8_percent_encode(
                        values.get(p.as_str()).copied().unwrap_or_default(),
                        percent_encoding::NON_ALPHANUMERIC,
                    )
                    .to_string(),
                ),
            }
        }
        path
    }
}

/// Two routes served side by side must not hold differently named placeholders
/// at one position after a shared beginning: the reader's router (and the
/// host's) cannot tell them apart.
fn check_siblings(record: &Route, list: &Route) -> Result<(), ContractError> {
    for (a, b) in record.segments.iter().zip(&list.segments) {
        match (a, b) {
            (Segment::Literal(x), Segment::Literal(y)) if x.eq_ignore_ascii_case(y) => {}
            (Segment::Param(x), Segment::Param(y)) if x == y => {}
            (Segment::Param(x), Segment::Param(y)) => {
                return Err(bad(
                    "routes.list",
                    format!("`{{{y}}}` stands where routes.record has `{{{x}}}`; name the placeholders alike"),
                ));
            }
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// What a body leaves out of the stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRule {
    /// The document exactly as Cosmos returned it.
    AsStored,
    /// The document without these top-level properties, every other member byte
    /// for byte and in its order.
    Omit(Vec<String>),
}

/// What a missing record answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    pub status: u16,
    pub content_type: String,
    /// A template with `{{placeholder}}` for the route's values; `None`: the
    /// built-in JSON error (`{"error":{"code":"NotFound",...}}`).
    pub body: Option<String>,
}

/// A checked profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contract {
    pub partition_key: PartitionKeyPath,
    /// The host's route prefix (`api`, or empty for none).
    pub prefix: String,
    pub record: Route,
    pub list: Option<Route>,
    /// The placeholder holding the partition-key value; `None` with `/id`.
    pub partition_key_param: Option<String>,
    pub id_param: String,
    pub body: BodyRule,
    pub content_type: String,
    pub etag: bool,
    pub last_modified: bool,
    pub not_found: NotFound,
    /// The writes the API takes on the record route, passed to the current API
    /// when the reader has `READER_UPSTREAM_URL` (docs/writes.md).
    pub writes: Writes,
    /// How callers authenticate, and what each may read (`[auth]`; docs/auth.md).
    pub auth: Auth,
    /// Front mode (`[front]`; docs/front-mode.md): the reader forwards every
    /// request to the current API and moves an archived record back when that
    /// API answers "missing". `None`: serve mode, the reader serves the contract.
    pub front: Option<Front>,
}

/// Front mode's settings (`[front]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Front {
    /// The current API (`front.upstream`); `READER_UPSTREAM_URL` takes its place when set.
    pub upstream: Option<url::Url>,
    /// How the list route's window is written (`[front.list]`).
    pub list: ListWindow,
}

/// The list route's query parameters that bound the age field, as the current
/// API reads them. A bound the profile does not name, or a request does not
/// send (or sends in another format), is open. Each bound is taken to its whole
/// day, inclusive: the reader moves back a superset of the window's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListWindow {
    pub from: Option<String>,
    pub to: Option<String>,
    pub format: BoundFormat,
    pub order: ListOrder,
    /// The largest page the API serves: a list request moves back at least
    /// this many archived records (docs/front-mode.md, "Lists").
    pub max_page_size: usize,
    /// Query parameters that page or shape a list without narrowing it (page
    /// size, cursor, fields). A list request with any other parameter but the
    /// bounds is taken as narrowed (a filter, a search): its whole window is
    /// moved back first.
    pub paging: Vec<String>,
}

impl Default for ListWindow {
    fn default() -> Self {
        Self {
            from: None,
            to: None,
            format: BoundFormat::Date,
            order: ListOrder::NewestFirst,
            max_page_size: DEFAULT_MAX_PAGE_SIZE,
            paging: Vec::new(),
        }
    }
}

/// The largest page a list serves, when the profile does not say.
pub const DEFAULT_MAX_PAGE_SIZE: usize = 100;

/// How a list bound's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BoundFormat {
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339 (`2025-01-31T00:00:00Z`).
    DateTime,
    /// Seconds since the epoch.
    EpochSeconds,
}

/// The order the current API lists a partition's records in, by the age field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListOrder {
    NewestFirst,
    OldestFirst,
}

/// The current API's origin (and base path): `https`, or `http` on loopback
/// only, a host, no query, fragment or user name.
pub fn upstream_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{text}` is not an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "`{text}` holds a query, fragment or user name; give the API's origin (and base path) only"
        ));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if url.scheme() == "http" && !loopback {
        return Err(format!("`{text}` is plain http off loopback: the current API must be https"));
    }
    Ok(url)
}

/// The write methods of the record route (`[writes]`); none without the section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Writes {
    /// Upper case, each once: a subset of `PUT`, `PATCH`, `DELETE`.
    pub methods: Vec<String>,
    /// `POST` to the record's sub-paths (`{record route}/{*action}`) too.
    pub sub_paths: bool,
}

impl Writes {
    /// True when the API takes any write.
    pub fn any(&self) -> bool {
        !self.methods.is_empty() || self.sub_paths
    }
}

/// The write methods a record route can take.
pub const WRITE_METHODS: [&str; 3] = ["PUT", "PATCH", "DELETE"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    container: ContainerSection,
    routes: RoutesSection,
    #[serde(default)]
    body: BodySection,
    #[serde(default)]
    headers: HeadersSection,
    #[serde(default)]
    not_found: NotFoundSection,
    writes: Option<WritesSection>,
    auth: Option<auth::AuthSection>,
    front: Option<FrontSection>,
    /// Read by `scripts/compare.py` only (docs/adopting.md); checked here so a
    /// typo is refused at packaging.
    #[serde(default)]
    #[allow(dead_code)]
    compare: Option<CompareSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct CompareSection {
    #[serde(default)]
    varying_headers: Vec<String>,
    page_size_param: Option<String>,
    token_param: Option<String>,
    token_field: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontSection {
    upstream: Option<String>,
    #[serde(default)]
    list: Option<FrontListSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontListSection {
    from: Option<String>,
    to: Option<String>,
    format: Option<BoundFormat>,
    order: Option<ListOrder>,
    max_page_size: Option<usize>,
    #[serde(default)]
    paging: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WritesSection {
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    sub_paths: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContainerSection {
    partition_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutesSection {
    #[serde(default = "default_prefix")]
    prefix: String,
    record: String,
    list: Option<String>,
    partition_key_param: Option<String>,
    id_param: String,
}

fn list_route_missing(list: &Option<String>) -> bool {
    list.is_none()
}

fn default_prefix() -> String {
    "api".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BodySection {
    #[serde(default)]
    as_stored: bool,
    omit: Option<Vec<String>>,
    #[serde(default = "default_content_type")]
    content_type: String,
}

impl Default for BodySection {
    fn default() -> Self {
        Self { as_stored: false, omit: None, content_type: default_content_type() }
    }
}

fn default_content_type() -> String {
    "application/json; charset=utf-8".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadersSection {
    #[serde(default = "yes")]
    etag: bool,
    #[serde(default = "yes")]
    last_modified: bool,
}

impl Default for HeadersSection {
    fn default() -> Self {
        Self { etag: true, last_modified: true }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotFoundSection {
    #[serde(default = "default_status")]
    status: u16,
    #[serde(default = "default_content_type")]
    content_type: String,
    body: Option<String>,
}

impl Default for NotFoundSection {
    fn default() -> Self {
        Self { status: default_status(), content_type: default_content_type(), body: None }
    }
}

fn default_status() -> u16 {
    404
}

/// `template` with `{{placeholder}}` replaced by the route's value (JSON-escaped
/// when `json`). One pass: a value that itself holds `{{name}}` is written out
/// as it is, never expanded again.
fn fill_template(template: &str, json: bool, values: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").map(|end| (&after[..end], end)) {
            Some((name, end)) if values.contains_key(name) => {
                let value = &values[name];
                if json {
                    let quoted = serde_json::to_string(value).unwrap_or_default();
                    out.push_str(quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')).unwrap_or_default());
                } else {
                    out.push_str(value);
                }
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A header value must be visible ASCII (and spaces), or no response can carry it.
fn header_value(key: &str, value: &str) -> Result<(), ContractError> {
    if value.is_empty() || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(bad(key, format!("`{value}` is not a usable header value")));
    }
    Ok(())
}

impl Contract {
    /// The default profile.
    pub fn default_profile() -> Self {
        // The file is part of the build and checked by a unit test.
        Self::parse(DEFAULT_PROFILE).unwrap_or_else(|e| unreachable!("contracts/default.toml: {e}"))
    }

    /// Parses and checks a profile; every error names the key.
    pub fn parse(text: &str) -> Result<Self, ContractError> {
        let profile: Profile = toml::from_str(text).map_err(|e| {
            let message = e.message().to_owned();
            let key = e
                .span()
                .and_then(|span| text.get(..span.start))
                .map(|before| format!("line {}", before.lines().count().max(1)))
                .unwrap_or_else(|| "the file".into());
            bad(&key, message)
        })?;
        let partition_key =
            PartitionKeyPath::parse(&profile.container.partition_key).map_err(|m| bad("container.partition_key", m))?;
        let r = &profile.routes;
        let prefix = r.prefix.trim_matches('/').to_owned();
        if !prefix.is_empty() && !prefix.split('/').all(literal_ok) {
            return Err(bad("routes.prefix", format!("`{}` is not a route prefix (literal segments only)", r.prefix)));
        }
        let record = Route::parse("routes.record", &r.record)?;
        let list = r.list.as_deref().map(|l| Route::parse("routes.list", l)).transpose()?;
        let id_param = r.id_param.clone();
        let pk_param = r.partition_key_param.clone();
        let record_params = record.params();
        if !record_params.contains(&id_param.as_str()) {
            return Err(bad("routes.record", format!("has no `{{{id_param}}}` placeholder (routes.id_param)")));
        }
        match (&pk_param, partition_key.is_id()) {
            (Some(pk), true) => {
                return Err(bad(
                    "routes.partition_key_param",
                    format!("the partition key is /id, so the id is the partition-key value; remove `{pk}`"),
                ));
            }
            (None, false) => {
                return Err(bad(
                    "routes.partition_key_param",
                    format!("is required: which placeholder holds the {partition_key} value"),
                ));
            }
            (Some(pk), false) if pk == &id_param => {
                return Err(bad("routes.partition_key_param", "names the same placeholder as routes.id_param"));
            }
            (Some(pk), false) if !record_params.contains(&pk.as_str()) => {
                return Err(bad(
                    "routes.record",
                    format!("has no `{{{pk}}}` placeholder (routes.partition_key_param)"),
                ));
            }
            _ => {}
        }
        let known: Vec<&str> = [Some(id_param.as_str()), pk_param.as_deref()].into_iter().flatten().collect();
        if let Some(unknown) = record_params.iter().find(|p| !known.contains(p)) {
            return Err(bad(
                "routes.record",
                format!("`{{{unknown}}}` is neither routes.id_param nor routes.partition_key_param"),
            ));
        }
        if let Some(list) = &list {
            let Some(pk) = &pk_param else {
                return Err(bad(
                    "routes.list",
                    "a list is per partition-key value; with the partition key /id there is none",
                ));
            };
            if list.params() != [pk.as_str()] {
                return Err(bad("routes.list", format!("must hold exactly one placeholder, `{{{pk}}}`")));
            }
            if list.template() == record.template() {
                return Err(bad("routes.list", "is the same route as routes.record"));
            }
        }
        if let Some(list) = &list {
            check_siblings(&record, list)?;
        }
        // The Functions host keeps these routes for itself (its admin API, its runtime endpoints).
        if prefix.is_empty() {
            for (key, route) in [("routes.record", Some(&record)), ("routes.list", list.as_ref())] {
                if let Some(Segment::Literal(first)) = route.and_then(|r| r.segments.first())
                    && ["admin", "runtime"].contains(&first.to_ascii_lowercase().as_str())
                {
                    return Err(bad(
                        key,
                        format!("`{first}/...` is reserved by the Functions host; use a route prefix"),
                    ));
                }
            }
        }
        let b = &profile.body;
        let body = match (b.as_stored, &b.omit) {
            (true, Some(omit)) if !omit.is_empty() => {
                return Err(bad(
                    "body.omit",
                    "a body served as stored omits nothing; remove body.omit or body.as_stored",
                ));
            }
            (true, _) => BodyRule::AsStored,
            (false, None) => BodyRule::Omit(SYSTEM_PROPERTIES.iter().map(|s| (*s).to_owned()).collect()),
            (false, Some(omit)) => {
                if let Some(empty) = omit.iter().find(|p| p.is_empty()) {
                    return Err(bad("body.omit", format!("`{empty}` is not a property name")));
                }
                BodyRule::Omit(omit.clone())
            }
        };
        header_value("body.content_type", &b.content_type)?;
        let n = &profile.not_found;
        if !(400..=599).contains(&n.status) {
            return Err(bad("not_found.status", format!("{} is not an error status (400 to 599)", n.status)));
        }
        header_value("not_found.content_type", &n.content_type)?;
        let mut writes = Writes::default();
        if let Some(w) = &profile.writes {
            for method in &w.methods {
                let upper = method.to_ascii_uppercase();
                if !WRITE_METHODS.contains(&upper.as_str()) {
                    return Err(bad(
                        "writes.methods",
                        format!(
                            "`{method}` is not a write method of a record route (PUT, PATCH, DELETE; POST goes with writes.sub_paths)"
                        ),
                    ));
                }
                if writes.methods.contains(&upper) {
                    return Err(bad("writes.methods", format!("`{method}` is named twice")));
                }
                writes.methods.push(upper);
            }
            writes.sub_paths = w.sub_paths;
            if w.sub_paths && record_params.contains(&"action") {
                return Err(bad(
                    "writes.sub_paths",
                    "the record route's `{action}` placeholder clashes with the sub-path's",
                ));
            }
        }
        let front = match &profile.front {
            None => None,
            Some(f) => {
                if profile.writes.is_some() {
                    return Err(bad(
                        "writes",
                        "front mode forwards every method to the current API; remove [writes] (it is serve mode's)",
                    ));
                }
                let upstream =
                    f.upstream.as_deref().map(upstream_url).transpose().map_err(|m| bad("front.upstream", m))?;
                let mut list = ListWindow::default();
                if let Some(l) = &f.list {
                    if list_route_missing(&r.list) {
                        return Err(bad("front.list", "the profile has no list route (routes.list)"));
                    }
                    for (key, name) in [("front.list.from", &l.from), ("front.list.to", &l.to)] {
                        if name.as_ref().is_some_and(|n| n.is_empty() || n.contains(['&', '=', '#'])) {
                            return Err(bad(key, "is not a query parameter name"));
                        }
                    }
                    if l.paging.iter().any(|n| n.is_empty() || n.contains(['&', '=', '#'])) {
                        return Err(bad("front.list.paging", "holds something that is not a query parameter name"));
                    }
                    if l.from.is_some() && l.from == l.to {
                        return Err(bad("front.list.to", "names the same parameter as front.list.from"));
                    }
                    list = ListWindow {
                        from: l.from.clone(),
                        to: l.to.clone(),
                        format: l.format.unwrap_or(list.format),
                        order: l.order.unwrap_or(list.order),
                        max_page_size: l.max_page_size.unwrap_or(DEFAULT_MAX_PAGE_SIZE),
                        paging: l.paging.clone(),
                    };
                    if !(1..=1000).contains(&list.max_page_size) {
                        return Err(bad("front.list.max_page_size", "must be 1 to 1000"));
                    }
                }
                Some(Front { upstream, list })
            }
        };
        Ok(Self {
            partition_key,
            prefix,
            record,
            list,
            partition_key_param: pk_param,
            id_param,
            body,
            content_type: b.content_type.clone(),
            etag: profile.headers.etag,
            last_modified: profile.headers.last_modified,
            not_found: NotFound { status: n.status, content_type: n.content_type.clone(), body: n.body.clone() },
            writes,
            auth: auth::parse(profile.auth.as_ref())?,
            front,
        })
    }

    /// The body served for a document, from whichever tier it came.
    pub fn body(&self, doc: &RawDocument) -> Vec<u8> {
        match &self.body {
            BodyRule::AsStored => doc.as_bytes().to_vec(),
            BodyRule::Omit(omit) => doc.without(omit),
        }
    }

    /// The partition-key value and the id from a request's route values.
    pub fn key_of<'a>(&self, values: &'a HashMap<String, String>) -> Option<(&'a str, &'a str)> {
        let id = values.get(&self.id_param)?;
        let pk = match &self.partition_key_param {
            Some(name) => values.get(name)?,
            None => id,
        };
        Some((pk.as_str(), id.as_str()))
    }

    /// The body of a missing record's answer, when the profile gives one:
    /// `{{placeholder}}` replaced by the request's value (JSON-escaped in a JSON body).
    pub fn not_found_body(&self, values: &HashMap<String, String>) -> Option<String> {
        let template = self.not_found.body.as_ref()?;
        Some(fill_template(template, self.not_found.content_type.contains("json"), values))
    }

    /// `path` with the route prefix and the routes' literal segments spelled as
    /// the profile spells them, when it matches a route but for their case: the
    /// Functions host matches literals case-insensitively and forwards the path as
    /// the caller wrote it (ASP.NET Core routing), so the reader must answer
    /// `/API/Customers/...` as it answers `/api/customers/...`. `None` when the
    /// path matches no route, or matches one exactly.
    pub fn canonical_path(&self, path: &str) -> Option<String> {
        let trimmed = path.trim_end_matches('/');
        let mut parts: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
        let prefix: Vec<&str> = if self.prefix.is_empty() { Vec::new() } else { self.prefix.split('/').collect() };
        if parts.len() < prefix.len() || !parts.iter().zip(&prefix).all(|(a, b)| a.eq_ignore_ascii_case(b)) {
            return None;
        }
        let rest = parts.split_off(prefix.len());
        let matches = |r: &Route, rest: &[&str]| {
            r.segments.iter().zip(rest).all(|(s, p)| match s {
                Segment::Literal(l) => l.eq_ignore_ascii_case(p),
                Segment::Param(_) => !p.is_empty(),
            })
        };
        let route = [Some(&self.record), self.list.as_ref()]
            .into_iter()
            .flatten()
            .find(|r| r.segments.len() == rest.len() && matches(r, &rest))
            // A record's sub-path (writes.sub_paths): the record route, then anything.
            .or_else(|| {
                let r = &self.record;
                (self.sub_paths() && rest.len() > r.segments.len() && matches(r, &rest)).then_some(r)
            })?;
        let mut out = String::new();
        for p in &prefix {
            out.push('/');
            out.push_str(p);
        }
        for (s, p) in route.segments.iter().zip(&rest) {
            out.push('/');
            out.push_str(match s {
                Segment::Literal(l) => l,
                Segment::Param(_) => p,
            });
        }
        for p in rest.iter().skip(route.segments.len()) {
            out.push('/');
            out.push_str(p);
        }
        if path.ends_with('/') && path.len() > 1 {
            out.push('/');
        }
        (out != path).then_some(out)
    }

    /// The reader's functions as `function.json` files: `(function name, content)`.
    /// `BillingRecords` serves the record route (and the list route when it is the
    /// record route without its last placeholder, as `{id?}`); otherwise the list
    /// has a function of its own, `BillingRecordsList`. The record route's
    /// function also takes the profile's write methods, and with
    /// `writes.sub_paths` a third function, `BillingRecordActions`, takes POST to
    /// the record's sub-paths (the reader answers them only with write-through on).
    pub fn function_definitions(&self) -> Vec<(String, serde_json::Value)> {
        let definition = |route: String, methods: Vec<String>| {
            let mut trigger = serde_json::json!({
                "name": "req",
                "type": "httpTrigger",
                "direction": "in",
                "authLevel": self.auth.auth_level(),
                "methods": methods,
                "route": route,
            });
            // Front mode forwards every method: a trigger without `methods` takes them all.
            if self.front.is_some()
                && let Some(t) = trigger.as_object_mut()
            {
                t.remove("methods");
            }
            serde_json::json!({"bindings": [trigger, {"name": "res", "type": "http", "direction": "out"}]})
        };
        let record_methods: Vec<String> = std::iter::once("get".to_owned())
            .chain(self.writes.methods.iter().map(|m| m.to_ascii_lowercase()))
            .collect();
        let names = ["BillingRecords", "BillingRecordsList"];
        let mut functions: Vec<(String, serde_json::Value)> = self
            .host_routes()
            .into_iter()
            .zip(names)
            .map(|(route, name)| {
                let methods = if name == "BillingRecords" { record_methods.clone() } else { vec!["get".to_owned()] };
                (name.to_owned(), definition(route, methods))
            })
            .collect();
        if self.sub_paths() {
            let route = format!("{}/{{*action}}", self.record.template());
            functions.push(("BillingRecordActions".to_owned(), definition(route, vec!["post".to_owned()])));
        }
        functions
    }

    /// True when a record's sub-paths (`{record route}/{*action}`) are routes
    /// too: serve mode's `writes.sub_paths`, and always in front mode.
    pub fn sub_paths(&self) -> bool {
        self.writes.sub_paths || self.front.is_some()
    }

    /// The route template(s) the host must forward, for `function.json`: one
    /// function when the list route is the record route without its last
    /// placeholder (`.../{id?}`), else the record and list routes apart.
    pub fn host_routes(&self) -> Vec<String> {
        let record = self.record.template();
        match &self.list {
            None => vec![record],
            Some(list) => {
                let optional_id = format!("{}/{{{}}}", list.template(), self.id_param);
                if optional_id == record {
                    vec![format!("{}/{{{}?}}", list.template(), self.id_param)]
                } else {
                    vec![record, list.template()]
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OTHER: &str = r#"
[container]
partition_key = "/tenantId"

[routes]
prefix = ""
record = "tenants/{tenant}/invoices/{invoice}"
partition_key_param = "tenant"
id_param = "invoice"

[body]
as_stored = true

[headers]
etag = false

[not_found]
status = 404
content_type = "application/problem+json"
body = '{"type":"about:blank","title":"Not Found","detail":"invoice {{invoice}} of {{tenant}}"}'
"#;

    #[test]
    fn the_default_profile_is_todays_api() {
        let c = Contract::default_profile();
        assert_eq!(c.partition_key.to_string(), "/customerId");
        assert_eq!(c.prefix, "api");
        assert_eq!(c.record.template(), "customers/{customerId}/billing-records/{recordId}");
        assert_eq!(c.host_routes(), ["customers/{customerId}/billing-records/{recordId?}"]);
        assert_eq!(c.body, BodyRule::Omit(SYSTEM_PROPERTIES.iter().map(|s| s.to_string()).collect()));
        assert!(c.etag && c.last_modified && c.not_found.body.is_none());
        assert_eq!(c.content_type, "application/json; charset=utf-8");
    }

    #[test]
    fn the_default_profile_generates_the_committed_function_json() {
        let committed: serde_json::Value =
            serde_json::from_str(include_str!("../../function-definitions/reader/BillingRecords/function.json"))
                .unwrap();
        assert_eq!(Contract::default_profile().function_definitions(), [("BillingRecords".to_owned(), committed)]);
        let mut apart = Contract::default_profile();
        apart.list = Some(Route::parse("routes.list", "customers/{customerId}/invoices").unwrap());
        let names: Vec<String> = apart.function_definitions().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["BillingRecords", "BillingRecordsList"]);
    }

    #[test]
    fn writes_name_the_methods_the_record_route_takes() {
        assert!(!Contract::default_profile().writes.any(), "the default API is read-only");
        let with = |section: &str| Contract::parse(&format!("{OTHER}\n[writes]\n{section}"));
        let c = with("methods = [\"put\", \"DELETE\"]\nsub_paths = true").unwrap();
        assert_eq!(c.writes, Writes { methods: vec!["PUT".into(), "DELETE".into()], sub_paths: true });
        let functions = c.function_definitions();
        let methods: Vec<(String, serde_json::Value, serde_json::Value)> = functions
            .iter()
            .map(|(n, d)| (n.clone(), d["bindings"][0]["methods"].clone(), d["bindings"][0]["route"].clone()))
            .collect();
        assert_eq!(
            methods,
            [
                (
                    "BillingRecords".to_owned(),
                    serde_json::json!(["get", "put", "delete"]),
                    "tenants/{tenant}/invoices/{invoice}".into()
                ),
                (
                    "BillingRecordActions".to_owned(),
                    serde_json::json!(["post"]),
                    "tenants/{tenant}/invoices/{invoice}/{*action}".into()
                ),
            ]
        );
        assert_eq!(
            c.canonical_path("/Tenants/t1/INVOICES/i1/Refund/now").as_deref(),
            Some("/tenants/t1/invoices/i1/Refund/now"),
            "a sub-path keeps its own spelling"
        );
        for (bad_section, key) in [
            ("methods = [\"GET\"]", "writes.methods"),
            ("methods = [\"POST\"]", "writes.methods"),
            ("methods = [\"PUT\", \"put\"]", "writes.methods"),
            ("verbs = [\"PUT\"]", "line"),
        ] {
            let err = with(bad_section).unwrap_err();
            assert!(err.key.starts_with(key), "{bad_section}: {err:?}");
        }
    }

    #[test]
    fn paths_are_matched_like_the_host_literals_in_any_case() {
        let c = Contract::default_profile();
        assert_eq!(
            c.canonical_path("/API/Customers/C%201/Billing-Records/r1").as_deref(),
            Some("/api/customers/C%201/billing-records/r1"),
            "literals take the profile's spelling, values keep theirs"
        );
        assert_eq!(
            c.canonical_path("/Api/customers/c1/BILLING-RECORDS/").as_deref(),
            Some("/api/customers/c1/billing-records/")
        );
        assert_eq!(c.canonical_path("/api/customers/c1/billing-records/r1"), None, "already exact");
        assert_eq!(c.canonical_path("/api/customers/c1/invoices/r1"), None, "no route");
        assert_eq!(c.canonical_path("/apix/customers/c1/billing-records"), None);
    }

    #[test]
    fn another_profile_differs_everywhere() {
        let c = Contract::parse(OTHER).unwrap();
        assert_eq!(c.partition_key.property(), "tenantId");
        assert_eq!(c.prefix, "");
        assert_eq!(c.host_routes(), ["tenants/{tenant}/invoices/{invoice}"]);
        assert!(c.list.is_none() && !c.etag && c.last_modified);
        let doc = RawDocument::parse(&br#"{"id":"i 1","_etag":"\"x\"","n":1.50}"#[..]).unwrap();
        assert_eq!(c.body(&doc), doc.as_bytes());
        let values =
            HashMap::from([("invoice".to_owned(), "i \"1\"".to_owned()), ("tenant".to_owned(), "t/ü".to_owned())]);
        assert_eq!(c.key_of(&values), Some(("t/ü", "i \"1\"")));
        assert_eq!(
            c.not_found_body(&values).unwrap(),
            r#"{"type":"about:blank","title":"Not Found","detail":"invoice i \"1\" of t/ü"}"#
        );
        let sneaky =
            HashMap::from([("invoice".to_owned(), "{{tenant}}".to_owned()), ("tenant".to_owned(), "t".to_owned())]);
        assert!(c.not_found_body(&sneaky).unwrap().contains("invoice {{tenant}} of t"), "values are never expanded");
        let path = c.record.fill(&c.prefix, &HashMap::from([("tenant", "t 1"), ("invoice", "a/b")]));
        assert_eq!(path, "/tenants/t%201/invoices/a%2Fb");
    }

    #[test]
    fn an_id_partitioned_container_has_no_partition_key_placeholder() {
        let text = r#"
[container]
partition_key = "/id"
[routes]
record = "invoices/{invoiceId}"
id_param = "invoiceId"
"#;
        let c = Contract::parse(text).unwrap();
        assert!(c.partition_key.is_id());
        let values = HashMap::from([("invoiceId".to_owned(), "inv-1".to_owned())]);
        assert_eq!(c.key_of(&values), Some(("inv-1", "inv-1")));
        let with_list = format!("{text}list = \"invoices\"\n");
        assert_eq!(Contract::parse(&with_list).unwrap_err().key, "routes.list");
    }

    #[test]
    fn front_mode_needs_routes_a_safe_upstream_and_no_writes_section() {
        let front = |extra: &str| Contract::parse(&format!("{DEFAULT_PROFILE}\n[front]\n{extra}"));
        let c = front("upstream = \"https://billing.example.com/v2\"\n[front.list]\nfrom = \"issuedFrom\"\nto = \"issuedTo\"\nformat = \"date-time\"\norder = \"oldest-first\"\nmax_page_size = 20\n").unwrap();
        let f = c.front.as_ref().unwrap();
        assert_eq!(f.upstream.as_ref().unwrap().as_str(), "https://billing.example.com/v2");
        assert_eq!(
            (f.list.from.as_deref(), f.list.to.as_deref(), f.list.format, f.list.order, f.list.max_page_size),
            (Some("issuedFrom"), Some("issuedTo"), BoundFormat::DateTime, ListOrder::OldestFirst, 20)
        );
        // Every method, the record's sub-paths included, goes to the current API.
        let functions = c.function_definitions();
        assert!(functions.iter().all(|(_, d)| d["bindings"][0].get("methods").is_none()), "{functions:?}");
        assert!(functions.iter().any(|(n, _)| n == "BillingRecordActions"));
        assert!(c.canonical_path("/API/customers/c/billing-records/r/pdf").is_some(), "sub-paths are routes");
        assert!(front("").unwrap().front.unwrap().upstream.is_none(), "READER_UPSTREAM_URL may give it");
        for (extra, key) in [
            ("upstream = \"http://billing.example.com\"", "front.upstream"),
            ("upstream = \"https://billing.example.com/?x=1\"", "front.upstream"),
            ("[front.list]\nmax_page_size = 0", "front.list.max_page_size"),
            ("[front.list]\nfrom = \"a&b\"", "front.list.from"),
            ("[front.list]\nformat = \"week\"", "line"),
            ("colour = \"blue\"", "line"),
        ] {
            let err = front(extra).unwrap_err();
            assert!(err.key.starts_with(key), "{extra}: {err}");
        }
        assert!(front("upstream = \"http://127.0.0.1:8080\"").is_ok(), "plain http on loopback only");
        let with_writes = format!("{DEFAULT_PROFILE}\n[writes]\nmethods = [\"PUT\"]\n[front]\n");
        assert_eq!(Contract::parse(&with_writes).unwrap_err().key, "writes");
        let no_list = DEFAULT_PROFILE.replace("list = \"customers/{customerId}/billing-records\"\n", "");
        let err = Contract::parse(&format!("{no_list}\n[front]\n[front.list]\nfrom = \"f\"\n")).unwrap_err();
        assert_eq!(err.key, "front.list");
        assert!(Contract::parse(include_str!("../../contracts/examples/front-mapped.toml")).unwrap().front.is_some());
    }

    #[test]
    fn a_bad_profile_names_its_key() {
        let default = DEFAULT_PROFILE;
        let cases: &[(&str, &str, &str)] = &[
            (
                "record = \"customers/{customerId}/billing-records/{recordId}\"",
                "record = \"customers/{customerId}/billing-records\"",
                "routes.record",
            ),
            (
                "record = \"customers/{customerId}/billing-records/{recordId}\"",
                "record = \"customers/{customerId}/billing-records/{customerId}\"",
                "routes.record",
            ),
            (
                "record = \"customers/{customerId}/billing-records/{recordId}\"",
                "record = \"customers/{customerId}/x{recordId}\"",
                "routes.record",
            ),
            (
                "record = \"customers/{customerId}/billing-records/{recordId}\"",
                "record = \"customers/{customerId}/{other}/{recordId}\"",
                "routes.record",
            ),
            ("partition_key = \"/customerId\"", "partition_key = \"customer.id\"", "container.partition_key"),
            ("partition_key = \"/customerId\"", "partition_key = \"/customer/id\"", "container.partition_key"),
            ("partition_key = \"/customerId\"", "partition_key = \"/_etag\"", "container.partition_key"),
            (
                "list = \"customers/{customerId}/billing-records\"",
                "list = \"customers/{recordId}/billing-records\"",
                "routes.list",
            ),
            (
                "partition_key_param = \"customerId\"",
                "partition_key_param = \"recordId\"",
                "routes.partition_key_param",
            ),
            ("partition_key_param = \"customerId\"\n", "", "routes.partition_key_param"),
            ("[headers]", "[headers]\ncolour = true", "line"),
            ("status = 404", "status = 200", "not_found.status"),
        ];
        for (from, to, key) in cases {
            assert!(default.contains(from), "{from}");
            let text = default.replace(from, to);
            let err = Contract::parse(&text).unwrap_err();
            assert!(err.key.starts_with(key), "{to}: {err}");
        }
        let apart =
            default.replace("list = \"customers/{customerId}/billing-records\"", "list = \"customers/{customerId}\"");
        assert!(Contract::parse(&apart).is_ok(), "a list route that is a prefix of the record route");
        let clash = default
            .replace(
                "record = \"customers/{customerId}/billing-records/{recordId}\"",
                "record = \"x/{recordId}/y/{customerId}\"",
            )
            .replace("list = \"customers/{customerId}/billing-records\"", "list = \"x/{customerId}\"");
        assert_eq!(Contract::parse(&clash).unwrap_err().key, "routes.list", "placeholders at one position differ");
        let reserved =
            default.replace("prefix = \"api\"", "prefix = \"\"").replace("record = \"customers/", "record = \"admin/");
        assert_eq!(Contract::parse(&reserved).unwrap_err().key, "routes.record", "admin/ is the host's");
        let unknown = Contract::parse(&default.replace("[headers]", "[headers]\ncolour = true")).unwrap_err();
        assert!(unknown.message.contains("colour"), "the unknown key is named: {unknown}");
        assert!(Contract::parse("not toml at all = = =").is_err());
    }
}
