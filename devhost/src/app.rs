//! A function app folder: what `func start` reads, and how `scripts/package.sh` builds one.
//!
//! Layout (docs/function-apps.md): `host.json`, one folder per function holding its
//! `function.json`, `local.settings.json`, and the handler executable that
//! `host.json`'s `customHandler.description.defaultExecutablePath` names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use serde_json::Value;
use tiering::contract::Contract;

/// One function of an app, from its `function.json`.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub bindings: Vec<Value>,
}

impl Function {
    fn trigger(&self) -> Option<&Value> {
        self.bindings
            .iter()
            .find(|b| b["direction"] == "in" && b["type"].as_str().is_some_and(|t| t.ends_with("Trigger")))
    }

    pub fn is_timer(&self) -> bool {
        self.trigger().is_some_and(|t| t["type"] == "timerTrigger")
    }

    /// Route template and allowed methods of an HTTP trigger.
    pub fn http_route(&self) -> Option<(String, Vec<String>)> {
        let t = self.trigger().filter(|t| t["type"] == "httpTrigger")?;
        let route = t["route"].as_str().map(str::to_owned).unwrap_or_else(|| self.name.clone());
        let methods = t["methods"]
            .as_array()
            .map(|m| m.iter().filter_map(Value::as_str).map(str::to_ascii_uppercase).collect())
            .unwrap_or_default();
        Some((route, methods))
    }

    /// Whether the host may hand this function's HTTP request over as-is
    /// (`enableForwardingHttpRequest` applies only to an HTTP trigger + HTTP output).
    pub fn forwardable(&self) -> bool {
        self.http_route().is_some()
            && self.bindings.len() == 2
            && self.bindings.iter().any(|b| b["type"] == "http" && b["direction"] == "out")
    }
}

/// A loaded app folder.
#[derive(Debug, Clone)]
pub struct AppFolder {
    pub dir: PathBuf,
    pub executable: PathBuf,
    pub working_dir: PathBuf,
    pub arguments: Vec<String>,
    pub forwarding: bool,
    pub route_prefix: String,
    pub functions: Vec<Function>,
    /// `local.settings.json` `Values`.
    pub settings: BTreeMap<String, String>,
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

impl AppFolder {
    /// Reads an app folder the way the host does, failing on what the host would refuse.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        // Absolute, because the handler is started from its working directory.
        let dir = &dir.canonicalize().with_context(|| format!("no app folder at {}", dir.display()))?;
        let host = read_json(&dir.join("host.json"))?;
        ensure!(host["version"] == "2.0", "host.json: version must be \"2.0\"");
        let handler = &host["customHandler"];
        let exe = handler["description"]["defaultExecutablePath"]
            .as_str()
            .context("host.json: customHandler.description.defaultExecutablePath is missing")?;
        let executable = dir.join(exe);
        ensure!(executable.is_file(), "host.json names executable {exe:?}, which is not in {}", dir.display());
        let working_dir = dir.join(handler["description"]["workingDirectory"].as_str().unwrap_or(""));
        let arguments = handler["description"]["arguments"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let route_prefix = host["extensions"]["http"]["routePrefix"].as_str().unwrap_or("api").to_owned();

        let mut functions = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            let definition = path.join("function.json");
            if path.is_dir() && definition.is_file() {
                let json = read_json(&definition)?;
                let bindings = json["bindings"].as_array().cloned().context("function.json: no bindings")?;
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
                functions.push(Function { name, bindings });
            }
        }
        ensure!(!functions.is_empty(), "{} holds no function folders", dir.display());
        functions.sort_by(|a, b| a.name.cmp(&b.name));

        let settings = match read_json(&dir.join("local.settings.json")) {
            Ok(v) => v["Values"]
                .as_object()
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
                .unwrap_or_default(),
            Err(_) => BTreeMap::new(),
        };
        Ok(Self {
            dir: dir.to_owned(),
            executable,
            working_dir,
            arguments,
            forwarding: handler["enableForwardingHttpRequest"].as_bool().unwrap_or(false),
            route_prefix,
            functions,
            settings,
        })
    }

    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }
}

/// Builds `out` as a complete app: the shared `host.json` pointed at `executable`,
/// the app's function folders and `local.settings.json`, and the executable itself.
///
/// The read contract (`contract`, a profile file, or the default profile) shapes
/// the reader: its `function.json` files and `host.json` route prefix are
/// generated from it, so the routes the host forwards are the routes the reader
/// matches, and it ships as `contract.toml` beside the executable. Both apps'
/// `local.settings.json` take its partition key. A malformed profile fails here,
/// naming the key.
pub fn assemble(repo: &Path, app: &str, executable: &Path, out: &Path, contract: Option<&Path>) -> anyhow::Result<()> {
    let (profile, text) = match contract {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            (Contract::parse(&text).with_context(|| format!("{}", path.display()))?, text)
        }
        None => (Contract::default_profile(), tiering::contract::DEFAULT_PROFILE.to_owned()),
    };
    let definitions = repo.join("function-definitions").join(app);
    ensure!(definitions.is_dir(), "no function definitions for app {app:?} in {}", definitions.display());
    ensure!(executable.is_file(), "executable {} does not exist (build it first)", executable.display());
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(out)?;

    let exe_name = executable.file_name().and_then(|n| n.to_str()).context("executable has no file name")?;
    let mut host = read_json(&repo.join("host.json"))?;
    host["customHandler"]["description"]["defaultExecutablePath"] = exe_name.into();
    std::fs::write(out.join("host.json"), serde_json::to_string_pretty(&host)? + "\n")?;

    copy_dir(&definitions, out)?;
    let local = out.join("local.settings.json");
    if local.is_file() {
        let mut settings = read_json(&local)?;
        settings["Values"]["COSMOS_PARTITION_KEY"] = profile.partition_key.to_string().into();
        std::fs::write(&local, serde_json::to_string_pretty(&settings)? + "\n")?;
    }
    if app == "reader" {
        for f in std::fs::read_dir(out)? {
            let path = f?.path();
            if path.join("function.json").is_file() {
                std::fs::remove_dir_all(&path)?;
            }
        }
        for (name, definition) in profile.function_definitions() {
            std::fs::create_dir_all(out.join(&name))?;
            std::fs::write(out.join(&name).join("function.json"), serde_json::to_string_pretty(&definition)? + "\n")?;
        }
        host["extensions"]["http"]["routePrefix"] = profile.prefix.clone().into();
        std::fs::write(out.join("host.json"), serde_json::to_string_pretty(&host)? + "\n")?;
        std::fs::write(out.join(tiering::settings::CONTRACT_FILE), text)?;
    }
    let target = out.join(exe_name);
    std::fs::copy(executable, &target).with_context(|| format!("copying {}", executable.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
    }
    // Prove the result loads the way the host will load it.
    let loaded = AppFolder::load(out)?;
    if loaded.functions.iter().any(|f| f.http_route().is_some()) && !loaded.forwarding {
        bail!("HTTP functions need customHandler.enableForwardingHttpRequest");
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&dest)?;
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// Matches a request path (after the route prefix) against a route template with
/// `{name}` and optional `{name?}` parameters; segments are compared raw.
pub fn route_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_matches('/').split('/').collect();
    let p: Vec<&str> =
        if path.trim_matches('/').is_empty() { vec![] } else { path.trim_matches('/').split('/').collect() };
    let mut i = 0;
    for seg in &t {
        // A catch-all (`{*rest}`) takes one segment or more, to the end.
        if seg.starts_with("{*") && seg.ends_with('}') {
            return p.len() > i && p[i..].iter().all(|s| !s.is_empty());
        }
        let optional = seg.starts_with('{') && seg.ends_with("?}");
        let param = seg.starts_with('{') && seg.ends_with('}');
        match p.get(i) {
            Some(actual) if param => {
                if actual.is_empty() {
                    return false;
                }
                i += 1;
            }
            Some(actual) if actual.eq_ignore_ascii_case(seg) => i += 1,
            None if optional => {}
            _ => return false,
        }
    }
    i == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_like_the_host() {
        let t = "customers/{customerId}/billing-records/{recordId?}";
        assert!(route_matches(t, "customers/c1/billing-records/r1"));
        let actions = "customers/{customerId}/billing-records/{recordId}/{*action}";
        assert!(route_matches(actions, "customers/c1/billing-records/r1/refund"));
        assert!(route_matches(actions, "customers/c1/billing-records/r1/refund/partial"));
        assert!(!route_matches(actions, "customers/c1/billing-records/r1"));
        assert!(route_matches(t, "customers/c1/billing-records"));
        assert!(route_matches(t, "customers/c%201/billing-records/r%2F1"));
        assert!(!route_matches(t, "customers/c1/billing-records/r1/x"));
        assert!(!route_matches(t, "customers/c1/invoices/r1"));
        assert!(!route_matches(t, "customers//billing-records"));
        assert!(!route_matches(t, ""));
    }
}
