//! Plays the Functions host's part for one app folder.
//!
//! Like the host it starts the handler in its working directory with the app
//! settings as environment and `FUNCTIONS_CUSTOMHANDLER_PORT`, polls `GET /`
//! until any HTTP answer, posts timer invocations with the host's payload and
//! headers (and holds the answer to the host's rules: 2xx and a JSON body with
//! `Outputs`, `Logs`, `ReturnValue`), and forwards HTTP requests under
//! `/<routePrefix>/<route>` for HTTP-triggered functions, refusing routes and
//! methods no `function.json` declares.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::app::{AppFolder, route_matches};

/// How long the host waits for a handler to answer `GET /` (the docs give 60 s).
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
/// The host caps HTTP requests at 230 s.
const HTTP_LIMIT: Duration = Duration::from_secs(230);

/// A running handler process under this stand-in.
#[derive(Debug)]
pub struct Host {
    pub app: AppFolder,
    /// Each timer function's schedule, resolved from the app settings.
    schedules: BTreeMap<String, cron::Schedule>,
    child: Child,
    port: u16,
    http: reqwest::Client,
}

/// What a timer invocation returned, already checked against the host's rules.
#[derive(Debug)]
pub struct TimerResult {
    pub status: u16,
    pub logs: Vec<String>,
    pub return_value: Value,
}

impl Host {
    /// Starts the app's handler. `overrides` win over `local.settings.json`, the way
    /// real app settings or a developer's environment do.
    pub async fn start(app: AppFolder, overrides: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut env = app.settings.clone();
        env.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.insert("FUNCTIONS_CUSTOMHANDLER_PORT".into(), port.to_string());
        env.entry("FUNCTIONS_WORKER_RUNTIME".into()).or_insert_with(|| "Custom".into());
        let schedules = timer_schedules(&app, &env)?;
        let arguments: Vec<String> = app.arguments.iter().map(|a| expand(a, &env)).collect();
        let spawn = || {
            Command::new(&app.executable)
                .args(&arguments)
                .current_dir(&app.working_dir)
                .envs(&env)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()
        };
        // A just-assembled executable is "busy" (ETXTBSY) while a process another
        // thread is forking still holds the file it was copied through: try again.
        let mut attempt = 0;
        let mut child = loop {
            match spawn() {
                Err(e) if e.raw_os_error() == Some(26) && attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => break other.with_context(|| format!("starting {}", app.executable.display()))?,
            }
        };
        let http = reqwest::Client::builder().timeout(HTTP_LIMIT).build()?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("handler {} exited during start-up with {status}", app.executable.display());
            }
            if http.get(format!("http://127.0.0.1:{port}/")).send().await.is_ok() {
                break;
            }
            if started.elapsed() > STARTUP_LIMIT {
                let _ = child.kill().await;
                bail!("handler did not answer GET / within {STARTUP_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self { app, schedules, child, port, http })
    }

    /// Invokes a timer function as the host does on schedule.
    pub async fn fire_timer(&self, function: &str) -> anyhow::Result<TimerResult> {
        let f = self.app.function(function).with_context(|| format!("the app has no function {function:?}"))?;
        ensure!(f.is_timer(), "{function} is not timer-triggered");
        let binding =
            f.bindings.iter().find(|b| b["type"] == "timerTrigger").and_then(|b| b["name"].as_str()).unwrap_or("timer");
        let now = chrono::Utc::now();
        let next = self.schedules[function].after(&now).next().unwrap_or(now);
        let payload = json!({
            "Data": {binding: {
                "Schedule": {"AdjustForDST": true},
                "ScheduleStatus": {"Last": (now - chrono::Duration::days(1)).to_rfc3339(), "Next": next.to_rfc3339(), "LastUpdated": now.to_rfc3339()},
                "IsPastDue": false
            }},
            "Metadata": {"sys": {"MethodName": function, "UtcNow": now.to_rfc3339(), "RandGuid": format!("{:032x}", fastrand::u128(..))}}
        });
        let response = self
            .http
            .post(format!("http://127.0.0.1:{}/{function}", self.port))
            .header("X-Azure-Functions-InvocationId", format!("{:032x}", fastrand::u128(..)))
            .header("X-Azure-Functions-HostVersion", "4.1037.0")
            .json(&payload)
            .send()
            .await
            .context("invoking the handler")?;
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        ensure!(
            content_type.starts_with("application/json"),
            "the host refuses a {content_type:?} answer to an invocation"
        );
        let body: Value = response.json().await.context("the invocation answer is not JSON")?;
        ensure!(body.get("Outputs").is_some_and(Value::is_object), "the invocation answer has no Outputs object");
        let logs = body["Logs"]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        Ok(TimerResult { status, logs, return_value: body["ReturnValue"].clone() })
    }

    /// A timer function's schedule as the host resolved it (`%NAME%` from the app settings).
    pub fn schedule(&self, function: &str) -> Option<&cron::Schedule> {
        self.schedules.get(function)
    }

    /// Serves the app's HTTP functions on `127.0.0.1:port` (0 = any); returns the address.
    pub async fn serve_http(&self, port: u16) -> anyhow::Result<SocketAddr> {
        let routes: Vec<(String, Vec<String>)> = self.app.functions.iter().filter_map(|f| f.http_route()).collect();
        ensure!(!routes.is_empty(), "the app has no HTTP-triggered functions");
        ensure!(
            self.app.forwarding && self.app.functions.iter().all(|f| f.http_route().is_none() || f.forwardable()),
            "HTTP functions need enableForwardingHttpRequest and only an HTTP trigger and output"
        );
        let front = Front { routes, prefix: self.app.route_prefix.clone(), port: self.port, http: self.http.clone() };
        let router = axum::Router::new().fallback(forward).with_state(std::sync::Arc::new(front));
        let (listener, addr) = tiering::host::bind(port).await?;
        tokio::spawn(tiering::host::serve(listener, router, std::future::pending()));
        Ok(addr)
    }

    /// The handler's own address, bypassing the front (for benchmarks).
    pub fn handler_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Peak resident memory of the handler process so far (Linux `VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
    }

    /// Stops the handler the way the host does: SIGTERM, then a kill after a grace period.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        #[cfg(unix)]
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_ok() {
                return Ok(());
            }
        }
        self.child.kill().await?;
        Ok(())
    }
}

/// Resolves every timer's `schedule` as the host does when it indexes functions:
/// `%NAME%` is the app setting NAME, and a setting that is missing stops the
/// function from loading (so here, the start); the result must be a six-field
/// NCRONTAB expression (docs/function-apps.md).
fn timer_schedules(
    app: &AppFolder,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, cron::Schedule>> {
    let mut schedules = BTreeMap::new();
    for f in app.functions.iter().filter(|f| f.is_timer()) {
        let binding = f.bindings.iter().find(|b| b["type"] == "timerTrigger").expect("a timer has a timer binding");
        let text = binding["schedule"].as_str().with_context(|| format!("{}: the timer has no schedule", f.name))?;
        let resolved =
            resolve_setting_references(text, env).with_context(|| format!("{}: schedule {text:?}", f.name))?;
        let schedule = tiering::schedule::parse_schedule(&resolved)
            .map_err(|e| anyhow::anyhow!("{}: schedule {text:?}: {e}", f.name))?;
        schedules.insert(f.name.clone(), schedule);
    }
    Ok(schedules)
}

/// `%NAME%` references in a binding property, replaced by app settings; a missing
/// setting is an error, as in the host.
fn resolve_setting_references(text: &str, env: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let end = after.find('%').with_context(|| format!("unbalanced % in {text:?}"))?;
        let name = &after[..end];
        let value = env.get(name).with_context(|| format!("the app setting {name} is not set"))?;
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `%NAME%` in `arguments` expands from app settings, as in the host; an argument
/// naming no setting is passed as written.
fn expand(arg: &str, env: &BTreeMap<String, String>) -> String {
    resolve_setting_references(arg, env).unwrap_or_else(|_| arg.to_owned())
}

#[derive(Debug)]
struct Front {
    routes: Vec<(String, Vec<String>)>,
    prefix: String,
    port: u16,
    http: reqwest::Client,
}

async fn forward(State(front): State<std::sync::Arc<Front>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    // An empty routePrefix serves the routes at the root.
    // Like the host: the prefix in any case (and the routes' literals, route_matches).
    let prefix = if front.prefix.is_empty() { "/".to_owned() } else { format!("/{}/", front.prefix) };
    let rest = match path.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(&prefix) => &path[prefix.len()..],
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let matching: Vec<&(String, Vec<String>)> = front.routes.iter().filter(|(t, _)| route_matches(t, rest)).collect();
    if matching.is_empty() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let method = request.method().as_str().to_owned();
    if !matching.iter().any(|(_, methods)| methods.is_empty() || methods.contains(&method)) {
        // The real host answers a declared route with an undeclared method 404, empty
        // (not 405: Azure/azure-functions-host#10098); so does its stand-in.
        return StatusCode::NOT_FOUND.into_response();
    }
    let path_and_query = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or(path);
    let url = format!("http://127.0.0.1:{}{path_and_query}", front.port);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 100 * 1024 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut outgoing = front.http.request(parts.method, url).body(body);
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name) {
            outgoing = outgoing.header(name, value);
        }
    }
    match outgoing.send().await {
        Err(e) => (StatusCode::BAD_GATEWAY, format!("handler did not answer: {e}")).into_response(),
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if !is_hop_by_hop(name) {
                    response = response.header(name, value);
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            response.body(Body::from(bytes)).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(name.as_str(), "connection" | "keep-alive" | "transfer-encoding" | "upgrade" | "host" | "content-length")
}
