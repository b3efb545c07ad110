"""Checks the function apps' host configuration without the host: host.json never
samples away traces (the archiver's run summary, which the alerts read, is a
trace), the timer's schedule is the ARCHIVE_SCHEDULE app setting, and the zips
for Azure never carry local.settings.json while the handler keeps its exec bit."""

import json
import os
import stat
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from importlib import import_module  # noqa: E402

zip_app = import_module("zip-app").zip_app
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


host = json.loads((ROOT / "host.json").read_text())
sampling = host.get("logging", {}).get("applicationInsights", {}).get("samplingSettings", {})
excluded = {t.strip() for t in sampling.get("excludedTypes", "").split(";")}
check(not sampling.get("isEnabled", True) or {"Trace", "Request"} <= excluded,
      "host.json: Application Insights sampling never drops traces or requests")
levels = host.get("logging", {}).get("logLevel", {})
check(all(levels.get(k, "Information") in ("Trace", "Debug", "Information") for k in ("default", "Host", "Function")),
      "host.json: handler output (Host.Function.Console) is logged at Information")

timer = json.loads((ROOT / "function-definitions/archiver/ArchiveBillingRecords/function.json").read_text())
check(timer["bindings"][0].get("schedule") == "%ARCHIVE_SCHEDULE%", "the timer's schedule is the app setting ARCHIVE_SCHEDULE")
local = json.loads((ROOT / "function-definitions/archiver/local.settings.json").read_text())
check(local["Values"].get("ARCHIVE_SCHEDULE") == "0 0 2 * * *", "local.settings.json sets ARCHIVE_SCHEDULE (nightly)")

with tempfile.TemporaryDirectory() as tmp:
    app = Path(tmp, "app")
    (app / "Fn").mkdir(parents=True)
    (app / "host.json").write_text("{}")
    (app / "Fn" / "function.json").write_text("{}")
    (app / "local.settings.json").write_text('{"Values": {"COSMOS_KEY": "secret"}}')
    (app / "handler").write_text("#!/bin/sh\n")
    os.chmod(app / "handler", 0o755)
    zip_app(str(app), str(Path(tmp, "app.zip")))
    with zipfile.ZipFile(Path(tmp, "app.zip")) as z:
        names = set(z.namelist())
        mode = z.getinfo("handler").external_attr >> 16
    check(names == {"host.json", "Fn/function.json", "handler"}, f"zips leave local.settings.json out ({sorted(names)})")
    check(bool(mode & stat.S_IXUSR), "zips keep the handler executable")

if failures:
    print(f"\n{len(failures)} app check(s) failed", file=sys.stderr)
    sys.exit(1)
