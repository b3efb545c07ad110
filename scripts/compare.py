#!/usr/bin/env python3
"""Compares the reader with the API it replaces, on real ids, before read traffic
is switched (docs/adopting.md). For each sampled record it
asks both for the record route of the contract profile (--contract; the default
profile is GET /customers/{customerId}/billing-records/{recordId}) and compares
the status, every header a consumer could act on (all but the per-response ones
in IGNORED_HEADERS) and the body byte for byte, and, when the current API sent an
ETag, the answers to the same request with `If-None-Match` (a 304 or not); for each sampled partition it
compares the first pages of the list route the same way (when the profile has
one), each service followed with its own continuation token (tokens are opaque,
so the token's value is the one thing left out of the byte comparison).
Every request carries what real consumers send (`Accept-Encoding: gzip`, an
`Origin`; `--bare` leaves them out), and bodies are compared as sent
(compressed or not). The profile's `[compare]` section names the headers that
differ on every answer (trace ids) and how its list pages (page-size and cursor
parameters, where the next cursor is); `--window QUERY` compares each
partition's pages in a window too, and `--write METHOD BODY` sends an
idempotent write to each record on both sides (If-Match on each side's own
ETag) and compares it and the read after it.
Redirects are not followed. Prints one line per difference and a JSON summary;
exits 1 when anything differs, when either side could not be reached, or when
there was nothing to compare.

Who asks is part of the answer (docs/auth.md): `--caller NAME 'Header: value'`
(repeatable) compares every record and list page once per caller, that header
sent to both sides, so one run shows a customer reading its own records and
another's, the back office, and each kind of bad token (`--caller none ''`: no
header at all) answered alike.

    scripts/compare.py --current https://billing.example.com/api \\
        --reader https://<reader>.azurewebsites.net/api --reader-header "x-functions-key: $KEY" \\
        --ids ids.csv [--contract contract.toml] [--pages 2] [--page-size 50] [--record answers.json] \\
        [--caller customer-a "Authorization: Bearer $A" --caller back-office "Authorization: Bearer $B" ...]

    scripts/compare.py --replay answers.json --reader ... --ids ids.csv [--contract ...]

Base URLs reach up to the route prefix (`/api` with the default profile). ids.csv
holds `partitionKey,id` lines (`customerId,recordId` with the default profile; a
header line is skipped; with the partition key /id, one column is enough), for
example exported with `SELECT c.customerId, c.id FROM c` over a sample.

Once archiving is on, the current API no longer holds archived records, so the
comparison that proves the archive tier is against what the current API
answered before: `--record FILE` saves the current API's answers during a live
comparison, and `--replay FILE` compares the reader with them instead of asking
a current API. Standard library only (Python 3.11: tomllib).
"""

import argparse
import base64
import csv
import gzip
import json
import sys
import tomllib
import urllib.error
import urllib.parse
import urllib.request

# Headers that differ per response or per hosting platform, not per record.
IGNORED_HEADERS = {
    "date", "server", "x-powered-by", "request-context", "transfer-encoding", "connection", "keep-alive",
    "set-cookie",  # App Service's ARRAffinity cookie
    "strict-transport-security", "x-ms-request-id", "x-ms-correlation-request-id", "apim-request-id",
}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def headers_of(message):
    return {k.lower(): ", ".join(message.get_all(k)) for k in set(message.keys())}


def fetch(base, path, headers, timeout, method="GET", data=None):
    request = urllib.request.Request(base.rstrip("/") + path, headers=headers, method=method, data=data)
    try:
        with OPENER.open(request, timeout=timeout) as response:
            return response.status, headers_of(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, headers_of(e.headers), e.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        return None, {}, str(e).encode()


def differences(current, reader, ignored=IGNORED_HEADERS):
    """What differs between two (status, headers, body) answers, as short strings."""
    out = []
    if current[0] != reader[0]:
        out.append(f"status {current[0]} != {reader[0]}")
    for name in sorted((set(current[1]) | set(reader[1])) - ignored):
        if current[1].get(name) != reader[1].get(name):
            out.append(f"{name} {current[1].get(name)!r} != {reader[1].get(name)!r}")
    if current[2] != reader[2]:
        out.append(f"body differs ({len(current[2])} != {len(reader[2])} bytes)")
    return out


def decoded(answer):
    """An answer's body as its content, gunzipped when the server sent it gzipped."""
    body = answer[2]
    if answer[1].get("content-encoding", "").lower() == "gzip":
        try:
            return gzip.decompress(body)
        except OSError:
            return body
    return body


def dig(document, dotted):
    """The value at a dotted path (`paging.next`) of a JSON document, or None."""
    for part in dotted.split("."):
        if not isinstance(document, dict):
            return None
        document = document.get(part)
    return document


def quote(segment):
    return urllib.parse.quote(segment, safe="")


DEFAULT_PROFILE = {
    "container": {"partition_key": "/customerId"},
    "routes": {"record": "customers/{customerId}/billing-records/{recordId}",
               "list": "customers/{customerId}/billing-records",
               "partition_key_param": "customerId", "id_param": "recordId"},
}


def load_profile(path):
    if not path:
        return DEFAULT_PROFILE
    with open(path, "rb") as f:
        return tomllib.load(f)


def fill(template, values):
    return "/" + "/".join(quote(values[seg[1:-1]]) if seg.startswith("{") else seg
                          for seg in template.strip("/").split("/"))


class Recorder:
    """The current API's side: asked live (and optionally saved), or replayed from a file."""

    def __init__(self, args, headers):
        self.args, self.headers = args, headers
        self.saved = {}
        self.replayed = None
        if args.replay:
            with open(args.replay) as f:
                self.replayed = json.load(f)

    def fetch(self, path, extra=None, caller=None, caller_headers=None, method="GET", data=None):
        key = path if not extra else f"{path} {json.dumps(extra, sort_keys=True)}"
        if method != "GET":
            key = f"{method} {key} {data.decode() if data else ''}"
        if caller:
            key = f"[{caller}] {key}"
        if self.replayed is not None:
            hit = self.replayed.get(key)
            if hit is None:
                return None, {}, f"{key} was not recorded".encode()
            return hit["status"], hit["headers"], base64.b64decode(hit["body"])
        answer = fetch(self.args.current, path, {**self.headers, **(caller_headers or {}), **(extra or {})},
                       self.args.timeout, method, data)
        if answer[0] is not None:
            self.saved[key] = {"status": answer[0], "headers": answer[1], "body": base64.b64encode(answer[2]).decode()}
        return answer

    def save(self):
        if self.args.record:
            with open(self.args.record, "w") as f:
                json.dump(self.saved, f, indent=1, sort_keys=True)


def header_pair(text):
    name, _, value = text.partition(":")
    return name.strip(), value.strip()


def compare(args, out=sys.stdout):
    profile = load_profile(args.contract)
    routes = profile["routes"]
    paging = profile.get("compare", {})
    # Plus the headers the profile says differ on every answer (trace ids), and
    # those only one side's gateway adds (--ignore-header).
    ignored = IGNORED_HEADERS | {h.lower() for h in args.ignore_header} | \
        {h.lower() for h in paging.get("varying_headers", [])}
    # What real consumers send, to both sides: compression, a browser's Origin.
    consumer = {} if args.bare else {"Accept-Encoding": "gzip", "Origin": args.origin}
    current_headers = {**consumer, **dict(header_pair(h) for h in args.current_header)}
    reader_headers = {**consumer, **dict(header_pair(h) for h in args.reader_header)}
    # Each caller's own header, sent to both sides; no --caller: one caller, no header.
    callers = [(name, dict([header_pair(h)]) if h.strip() else {}) for name, h in args.caller] or [(None, {})]
    size_param = paging.get("page_size_param", "pageSize")
    token_param = paging.get("token_param", "continuationToken")
    token_field = paging.get("token_field", "continuationToken")
    id_param, pk_param = routes["id_param"], routes.get("partition_key_param")
    current = Recorder(args, current_headers)

    with open(args.ids, newline="") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f) if r and r[0].strip()]
    header_words = {"customerid", "c.customerid", "partitionkey", "id", "c.id", (pk_param or "").lower()}
    if rows and rows[0][0].lower() in header_words:
        rows = rows[1:]
    keys = [(r[0], r[1] if len(r) > 1 else r[0]) for r in rows]
    summary = {"records": 0, "revalidations": 0, "recordsDiffering": 0, "listPages": 0, "listPagesDiffering": 0,
               "writes": 0, "writesDiffering": 0, "unreachable": 0, "callers": len(callers), "recordStatuses": {}}
    for caller, own in callers:
        label = f"[{caller}] " if caller else ""
        to_reader = {**reader_headers, **own}

        def ask_current(path, extra=None):
            return current.fetch(path, extra, caller, own)

        for pk, record in keys:
            values = {id_param: record}
            if pk_param:
                values[pk_param] = pk
            path = fill(routes["record"], values)
            answers = ask_current(path), fetch(args.reader, path, to_reader, args.timeout)
            summary["records"] += 1
            # What each caller was answered (the reader's side), so a run in which
            # both sides refuse everyone is seen for what it is.
            seen = summary["recordStatuses"].setdefault(caller or "", {})
            seen[str(answers[1][0])] = seen.get(str(answers[1][0]), 0) + 1
            if answers[0][0] is None or answers[1][0] is None:
                summary["unreachable"] += 1
            diff = differences(answers[0], answers[1], ignored)
            # A revalidation with the ETag the current API gave: 304 (or not) on both sides alike.
            etag = answers[0][1].get("etag")
            if etag and not diff:
                extra = {"If-None-Match": etag}
                again = ask_current(path, extra), fetch(args.reader, path, {**to_reader, **extra}, args.timeout)
                diff = [f"with If-None-Match: {d}" for d in differences(again[0], again[1], ignored)]
                summary["revalidations"] += 1
            if diff:
                summary["recordsDiffering"] += 1
                print(f"DIFF {label}{path}: {'; '.join(diff)}", file=out)
            # Each write, with If-Match on the ETag each side gives just before it (both
            # sides write to the same data in a live comparison), then the read after it.
            for method, body in args.write:
                step, data = {"X-Compare-Before": f"{method} {body}"}, body.encode()

                def conditional(tag):
                    return {"Content-Type": "application/json", **({"If-Match": tag} if tag else {})}

                current_tag = ask_current(path, step)[1].get("etag")
                current_wrote = current.fetch(path, {"If-Match": current_tag} if current_tag else None, caller,
                                              {**own, **conditional(current_tag)}, method, data)
                reader_tag = fetch(args.reader, path, {**to_reader, **step}, args.timeout)[1].get("etag")
                wrote = (current_wrote, fetch(args.reader, path, {**to_reader, **conditional(reader_tag)},
                                              args.timeout, method, data))
                read = (ask_current(path, {"X-Compare-After": f"{method} {body}"}),
                        fetch(args.reader, path, {**to_reader, "X-Compare-After": f"{method} {body}"}, args.timeout))
                summary["writes"] += 1
                for what, pair in ((f"{method}", wrote), (f"GET after {method}", read)):
                    if pair[0][0] is None or pair[1][0] is None:
                        summary["unreachable"] += 1
                    wdiff = differences(pair[0], pair[1], ignored)
                    if wdiff:
                        summary["writesDiffering"] += 1
                        print(f"DIFF {label}{what} {path}: {'; '.join(wdiff)}", file=out)
                answers = read

        lists = [(pk, window) for pk in sorted({k[0] for k in keys}) for window in [""] + args.window] \
            if routes.get("list") and pk_param else []
        for pk, window in lists:
            # Continuation tokens are opaque and each service's own: follow each with
            # its own token, and compare status, headers and the items of each page.
            tokens = [None, None]
            base = fill(routes["list"], {pk_param: pk})
            for _ in range(args.pages):
                paths = []
                for token in tokens:
                    query = {size_param: str(args.page_size)}
                    if token:
                        query[token_param] = token
                    paths.append(f"{base}?{'&'.join(q for q in (window, urllib.parse.urlencode(query)) if q)}")
                # A replayed page is found under the path with the token the current API gave.
                answers = ask_current(paths[0]), fetch(args.reader, paths[1], to_reader, args.timeout)
                summary["listPages"] += 1
                if answers[0][0] is None or answers[1][0] is None:
                    summary["unreachable"] += 1
                tokens = []
                bodies = []
                for answer in answers:
                    raw = decoded(answer)
                    try:
                        token = dig(json.loads(raw), token_field)
                    except (ValueError, AttributeError):
                        token = None
                    token = token if isinstance(token, str) else None
                    tokens.append(token)
                    if token:
                        # The token is each service's own: compare everything else, byte for byte.
                        raw = raw.replace(json.dumps(token).encode(), b'"<token>"').replace(token.encode(), b"<token>")
                    bodies.append(raw)

                # Tokens differ in length, so the pages' Content-Length may too.
                def page(answer, body):
                    return answer[0], {k: v for k, v in answer[1].items() if k != "content-length"}, body

                diff = differences(page(answers[0], bodies[0]), page(answers[1], bodies[1]), ignored)
                if diff:
                    summary["listPagesDiffering"] += 1
                    print(f"DIFF {label}{paths[1]}: {'; '.join(diff)}", file=out)
                    break
                if not tokens[0]:
                    break
    current.save()
    print(json.dumps(summary), file=out)
    if summary["records"] == 0:
        print("nothing compared: the ids file has no partitionKey,id lines", file=out)
        return 1
    clean = summary["recordsDiffering"] == 0 and summary["listPagesDiffering"] == 0 and \
        summary["writesDiffering"] == 0 and summary["unreachable"] == 0
    return 0 if clean else 1


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    side = p.add_mutually_exclusive_group(required=True)
    side.add_argument("--current", help="base URL of the API in service today (up to its route prefix)")
    side.add_argument("--replay", help="compare with the current API's answers saved by --record instead")
    p.add_argument("--reader", required=True, help="base URL of the deployed reader (up to its route prefix)")
    p.add_argument("--ids", required=True, help="CSV of partitionKey,id")
    p.add_argument("--contract", help="the contract profile (contract.toml) that names the routes; default: today's")
    p.add_argument("--record", help="save the current API's answers to this file (with --current)")
    p.add_argument("--current-header", action="append", default=[], help="'Name: value' sent to the current API")
    p.add_argument("--reader-header", action="append", default=[], help="'Name: value' sent to the reader")
    p.add_argument("--caller", nargs=2, action="append", default=[], metavar=("NAME", "HEADER"),
                   help="compare everything once more as this caller: NAME and its 'Name: value' header "
                        "(say 'Authorization: Bearer ...'), sent to both sides; '' sends none (repeatable)")
    p.add_argument("--ignore-header", action="append", default=[],
                   help="a header one side's gateway adds and consumers never act on (repeatable)")
    p.add_argument("--window", action="append", default=[],
                   help="a list window as the API takes it ('issuedFrom=2025-01-01&issuedTo=2025-03-31'): each "
                        "partition's pages are compared in it too (repeatable)")
    p.add_argument("--write", nargs=2, action="append", default=[], metavar=("METHOD", "BODY"),
                   help="after each record's read, send this write (JSON BODY, If-Match on each side's ETag) to "
                        "both sides and compare the answers and the read after it; both sides apply it, and a "
                        "replay reads what the recording left: use a write that leaves the record as it is "
                        "(a field set to its value) (repeatable)")
    p.add_argument("--origin", default="https://consumer.example",
                   help="the Origin header sent, as a browser consumer sends one")
    p.add_argument("--bare", action="store_true",
                   help="send no consumer headers (Accept-Encoding: gzip, Origin)")
    p.add_argument("--pages", type=int, default=1, help="listing pages compared per partition")
    p.add_argument("--page-size", type=int, default=50)
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args(argv)
    if args.record and args.replay:
        p.error("--record saves a live comparison's answers; it cannot be used with --replay")
    return args


if __name__ == "__main__":
    sys.exit(compare(parse(sys.argv[1:])))
