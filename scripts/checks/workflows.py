"""Checks .github/workflows/*.yml without GitHub: each file parses, every action is
pinned to a commit, every workflow and deploying job states its permissions, ci.yml
runs the demo on both builds, and deploy.yml deploys only what ci.yml tested, one deployment at a time, in the order
infrastructure, reader, archiver (docs/deployment.md, "With GitHub Actions")."""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def triggers(doc):
    # YAML 1.1 reads the key `on` as True.
    return doc.get("on", doc.get(True)) or {}


workflows = {}
for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
    try:
        workflows[path.name] = yaml.safe_load(path.read_text())
        check(True, f"{path.name} parses")
    except yaml.YAMLError as e:
        check(False, f"{path.name} parses: {e}")

for name, doc in workflows.items():
    check(isinstance(doc.get("permissions"), dict), f"{name}: top-level permissions are explicit")
    for job_name, job in doc.get("jobs", {}).items():
        for step in job.get("steps", []):
            uses = step.get("uses")
            if uses:
                check(re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses) is not None,
                      f"{name}/{job_name}: {uses.split('@')[0]} is pinned to a commit SHA")
        if any("azure/login" in s.get("uses", "") for s in job.get("steps", [])):
            perms = job.get("permissions", doc.get("permissions", {}))
            check(perms.get("id-token") == "write", f"{name}/{job_name}: may request an OIDC token (id-token: write)")

ci = workflows.get("ci.yml", {})
ci_runs = [s.get("run", "") for job in ci.get("jobs", {}).values() for s in job.get("steps", [])]
check("./scripts/test.sh" in ci_runs, "ci.yml runs the test command")
uploads = [s for job in ci.get("jobs", {}).values() for s in job.get("steps", []) if "upload-artifact" in s.get("uses", "")]
artifact = uploads[0]["with"]["name"] if uploads else None
check(artifact is not None, "ci.yml uploads the packaged apps")
if artifact:
    steps = [s.get("run", "") for job in ci["jobs"].values() for s in job["steps"]]
    package = next((i for i, r in enumerate(steps) if r.startswith("./scripts/package.sh")), -1)
    check(0 <= steps.index("./scripts/test.sh") < package, "ci.yml packages only after the tests pass")
    demos = [r for r in steps if r.startswith("./scripts/demo.sh")]
    check(any("--packaged" in r for r in demos) and any("--packaged" not in r for r in demos),
          "ci.yml runs the demo on the debug build and on the release packages")

deploy = workflows.get("deploy.yml", {})
on = triggers(deploy)
run = on.get("workflow_run", {})
check(set(on) == {"workflow_run"}, "deploy.yml starts only from a ci run (no manual or push trigger that skips the tests)")
check(run.get("workflows") == [ci.get("name")] and run.get("types") == ["completed"] and run.get("branches") == ["main"],
      "deploy.yml follows completed ci runs on main")
concurrency = deploy.get("concurrency", {})
check(bool(concurrency.get("group")) and concurrency.get("cancel-in-progress") is False,
      "deploy.yml runs one deployment at a time and never cancels one under way")
jobs = deploy.get("jobs", {})


def needs(job):
    n = jobs.get(job, {}).get("needs", [])
    return [n] if isinstance(n, str) else n


def deploy_stage(job):
    return [s["run"] for s in jobs.get(job, {}).get("steps", []) if "scripts/deploy.sh" in s.get("run", "")]


tip = [s for s in jobs.get("infra", {}).get("steps", []) if "commits/main" in s.get("run", "")]
check(bool(tip) and "exit 1" in tip[0]["run"] and jobs["infra"]["steps"].index(tip[0]) == 0,
      "deploy.yml refuses a commit that is no longer the tip of main, before anything else")
roots = [j for j in jobs if not needs(j)]
check(roots == ["infra"], "deploy.yml starts with the infrastructure job alone")
gate = jobs.get("infra", {}).get("if", "")
check("workflow_run.conclusion == 'success'" in gate and "workflow_run.event == 'push'" in gate,
      "deploy.yml deploys only after ci succeeded on a push")
check(needs("reader") == ["infra"] and needs("archiver") == ["reader"],
      "deploy.yml job order: infra, then reader, then archiver")
for job, stage in [("infra", "infra"), ("reader", "reader"), ("archiver", "archiver")]:
    check(any(r.split()[:2] == ["./scripts/deploy.sh", stage] for r in deploy_stage(job)),
          f"deploy.yml/{job} runs scripts/deploy.sh {stage}")
    check(jobs.get(job, {}).get("environment") == "production", f"deploy.yml/{job} runs in the production environment")
    checkout = [s for s in jobs.get(job, {}).get("steps", []) if "actions/checkout" in s.get("uses", "")]
    check(bool(checkout) and checkout[0].get("with", {}).get("ref") == "${{ github.event.workflow_run.head_sha }}",
          f"deploy.yml/{job} checks out the commit ci tested")
for job in ["reader", "archiver"]:
    downloads = [s for s in jobs.get(job, {}).get("steps", []) if "download-artifact" in s.get("uses", "")]
    w = downloads[0].get("with", {}) if downloads else {}
    check(w.get("name") == artifact and w.get("run-id") == "${{ github.event.workflow_run.id }}",
          f"deploy.yml/{job} deploys the zips ci built and tested")
    check(any("--no-package" in r for r in deploy_stage(job)), f"deploy.yml/{job} does not rebuild the zips")

if failures:
    print(f"\n{len(failures)} workflow check(s) failed", file=sys.stderr)
    sys.exit(1)
