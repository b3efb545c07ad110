"""Tests scripts/compare.py (the rollout's reader-versus-current-API comparison)
against two small local HTTP servers: identical answers pass, and every kind of
difference a consumer could notice is reported and fails the run."""

import http.server
import io
import json
import sys
import tempfile
import threading
from importlib import import_module
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
compare = import_module("compare")
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def record(rid, etag='"1"'):
    return 200, {"Content-Type": "application/json", "ETag": etag, "Last-Modified": "Sun, 01 Nov 2026 00:00:00 GMT"}, \
        json.dumps({"id": rid, "customerId": "c 1", "total": 12.5}).encode()


def listing(items, token):
    items = [{**i, "total": 1} for i in items]
    return 200, {"Content-Type": "application/json"}, json.dumps({"items": items, "continuationToken": token}).encode()


def serve(routes):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            key = f"{self.path} if-none-match" if self.headers.get("If-None-Match") else self.path
            # A route may answer one caller apart: "Authorization value|path".
            caller = f"{self.headers.get('Authorization')}|{self.path}"
            status, headers, body = routes.get(caller) or routes.get(key) or routes.get(
                self.path, (404, {"Content-Type": "application/json"}, b'{"error":"x"}'))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/api"


def routes(token, **changes):
    base = "/api/customers/c%201/billing-records"
    r = {
        f"{base}/r1": record("r1"),
        f"{base}/r2": record("r2"),
        f"{base}?pageSize=1": listing([{"id": "r2"}], token),
        f"{base}?pageSize=1&continuationToken={token}": listing([{"id": "r1"}], None),
    }
    r.update({f"{base}{k}": v for k, v in changes.items()})
    return r


def run(current_routes, reader_routes, *extra):
    a, a_url = serve(current_routes)
    b, b_url = serve(reader_routes)
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as ids:
        ids.write("customerId,recordId\nc 1,r1\nc 1,r2\nc 1,missing\n")
    out = io.StringIO()
    code = compare.compare(compare.parse(["--current", a_url, "--reader", b_url, "--ids", ids.name,
                                          "--pages", "3", "--page-size", "1", *extra]), out)
    a.shutdown()
    b.shutdown()
    return code, out.getvalue()


code, out = run(routes("tokA"), routes("tokB"))
summary = json.loads(out.strip().splitlines()[-1])
check(code == 0 and "DIFF" not in out, "identical answers pass, each service followed with its own token")
check(summary == {"records": 3, "revalidations": 2, "recordsDiffering": 0, "listPages": 2, "listPagesDiffering": 0,
                  "writes": 0, "writesDiffering": 0, "unreachable": 0, "callers": 1,
                  "recordStatuses": {"": {"200": 2, "404": 1}}},
      f"the summary counts records and pages ({summary})")

for what, change in [
    ("a different body", {"/r1": (200, record("r1")[1], b'{"id":"r1"}')}),
    ("a different ETag", {"/r2": record("r2", etag='"2"')}),
    ("a different status", {"/r1": (503, {"Content-Type": "application/json"}, b"{}")}),
    ("different listing items", {"?pageSize=1&continuationToken=tokB": listing([{"id": "r9"}], None)}),
    ("a number printed differently in a listing",
     {"?pageSize=1": (200, {"Content-Type": "application/json"},
                      b'{"items": [{"id": "r2", "total": 1.0}], "continuationToken": "tokB"}')}),
    ("a missing next page", {"?pageSize=1": listing([{"id": "r2"}], None)}),
    ("another header a consumer sees", {"/r1": (200, {**record("r1")[1], "Cache-Control": "no-store"}, record("r1")[2])}),
]:
    code, out = run(routes("tokA"), routes("tokB", **change))
    check(code == 1 and "DIFF" in out, f"{what} is reported and fails the run")

revalidates = {"/r1 if-none-match": (304, record("r1")[1], b"")}
code, out = run(routes("tokA", **revalidates), routes("tokB"))
check(code == 1 and "with If-None-Match" in out, "a reader that does not revalidate as the current API does fails")
code, out = run(routes("tokA", **revalidates), routes("tokB", **revalidates))
check(code == 0, "the same 304 on both sides passes")

gateway = {"/r1": (200, {**record("r1")[1], "X-Gateway": "apim"}, record("r1")[2])}
code, out = run(routes("tokA", **gateway), routes("tokB"), "--ignore-header", "X-Gateway")
check(code == 0, "a header only one side's gateway adds can be left out (--ignore-header)")

a, a_url = serve(routes("tokA"))
with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as ids:
    ids.write("c 1,r1\n")
closed = "http://127.0.0.1:9/api"
out = io.StringIO()
code = compare.compare(compare.parse(["--current", a_url, "--reader", closed, "--ids", ids.name]), out)
check(code == 1 and '"unreachable": 2' in out.getvalue(), "a service that cannot be reached fails the run")
with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as empty:
    empty.write("customerId,recordId\n")
code = compare.compare(compare.parse(["--current", a_url, "--reader", a_url, "--ids", empty.name]), io.StringIO())
check(code == 1, "an ids file with nothing to compare fails the run")
a.shutdown()

# Callers: every record and page once per caller, each with its own header on both sides.
refused = (401, {"Content-Type": "application/json", "WWW-Authenticate": "Bearer"}, b'{"error":"no token"}')
forbidden = (403, {"Content-Type": "application/json"}, b'{"error":"not yours"}')
base_path = "/api/customers/c%201/billing-records"
per_caller = {f"None|{base_path}/r1": refused, f"None|{base_path}/r2": refused,
              f"None|{base_path}?pageSize=1": refused, f"Bearer b|{base_path}/r2": forbidden}
callers = ["--caller", "none", "", "--caller", "customer-a", "Authorization: Bearer a",
           "--caller", "customer-b", "Authorization: Bearer b"]
code, out = run(routes("tokA", **{}) | per_caller, routes("tokB") | per_caller, *callers)
summary = json.loads(out.strip().splitlines()[-1])
check(code == 0 and summary["records"] == 9 and summary["callers"] == 3
      and summary["recordStatuses"] == {"none": {"401": 2, "404": 1}, "customer-a": {"200": 2, "404": 1},
                                        "customer-b": {"200": 1, "403": 1, "404": 1}},
      f"each caller is compared on every record, refusals included ({summary})")
leaky = routes("tokB") | {k: v for k, v in per_caller.items() if not k.startswith("Bearer b|")}
code, out = run(routes("tokA") | per_caller, leaky, *callers)
check(code == 1 and "DIFF [customer-b] /customers/c%201/billing-records/r2: status 403 != 200" in out,
      f"a reader that serves a caller what the current API refuses fails, naming the caller ({out.strip()})")
saved = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
a, a_url = serve(routes("tokA") | per_caller)
b, b_url = serve(routes("tokB") | per_caller)
with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as ids:
    ids.write("c 1,r1\nc 1,r2\n")
code = compare.compare(compare.parse(["--current", a_url, "--reader", b_url, "--ids", ids.name, "--record", saved,
                                      *callers]), io.StringIO())
a.shutdown()
code_replay = compare.compare(compare.parse(["--replay", saved, "--reader", b_url, "--ids", ids.name, *callers]),
                              io.StringIO())
b.shutdown()
check(code == 0 and code_replay == 0, "each caller's answers are recorded and replayed apart")

# Another profile's routes (no list route), and a recording replayed later.
with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as profile:
    profile.write('[container]\npartition_key = "/tenantId"\n[routes]\nprefix = ""\n'
                  'record = "tenants/{tenant}/invoices/{invoice}"\npartition_key_param = "tenant"\nid_param = "invoice"\n')
tenant = {"/tenants/t%201/invoices/i1": record("i1"), "/tenants/t%201/invoices/i2": record("i2")}
a, a_url = serve(tenant)
b, b_url = serve(tenant)
with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as ids:
    ids.write("tenant,invoice\nt 1,i1\nt 1,i2\nt 1,gone\n")
saved = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
base = ["--ids", ids.name, "--contract", profile.name]
root = lambda url: url.removesuffix("/api")  # noqa: E731 (this profile has no route prefix)
out = io.StringIO()
code = compare.compare(compare.parse(["--current", root(a_url), "--reader", root(b_url), "--record", saved, *base]), out)
summary = json.loads(out.getvalue().strip().splitlines()[-1])
check(code == 0 and summary["records"] == 3 and summary["listPages"] == 0,
      f"a profile's own record route is compared, and no list when it has none ({summary})")
a.shutdown()
code = compare.compare(compare.parse(["--replay", saved, "--reader", root(b_url), *base]), io.StringIO())
check(code == 0, "the reader compared with the recorded answers once the current API is gone (--replay)")
b.shutdown()
changed = dict(tenant, **{"/tenants/t%201/invoices/i2": record("i2", etag='"9"')})
c, c_url = serve(changed)
out = io.StringIO()
code = compare.compare(compare.parse(["--replay", saved, "--reader", root(c_url), *base]), out)
check(code == 1 and "DIFF /tenants/t%201/invoices/i2" in out.getvalue(), "a reader that differs from the recording fails")
with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as more:
    more.write("t 1,i1\nt 1,never-recorded\n")
code = compare.compare(compare.parse(["--replay", saved, "--reader", root(c_url), "--ids", more.name,
                                      "--contract", profile.name]), io.StringIO())
check(code == 1, "an id the recording does not hold cannot pass")
c.shutdown()

if failures:
    sys.exit(1)
