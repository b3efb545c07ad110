#!/usr/bin/env python3
"""Compares the reader with the API it replaces, on real ids, before read traffic
is switched (README, "Rollout"). For each sampled record it asks both for
GET /customers/{customerId}/billing-records/{recordId} and compares the status,
every header a consumer could act on (all but the per-response ones in
IGNORED_HEADERS) and the body byte for byte; for each sampled customer it compares
the first pages of the listing the same way, each service followed with its own
continuation token (tokens are opaque, so the token's value is the one thing left
out of the byte comparison). Redirects are not followed. Prints one line per
difference and a JSON summary; exits 1 when anything differs, when either side
could not be reached, or when there was nothing to compare.

    scripts/compare.py --current https://billing.example.com/api \\
        --reader https://<reader>.azurewebsites.net/api --reader-header "x-functions-key: $KEY" \\
        --ids ids.csv [--pages 2] [--page-size 50]

ids.csv holds `customerId,recordId` lines (a header line is skipped), for example
exported with `SELECT c.customerId, c.id FROM c` over a sample. Standard library only.
"""

import argparse
import csv
import json
import sys
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


def fetch(base, path, headers, timeout):
    request = urllib.request.Request(base.rstrip("/") + path, headers=headers)
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


def quote(segment):
    return urllib.parse.quote(segment, safe="")


def compare(args, out=sys.stdout):
    # Plus the headers only one side's gateway adds (--ignore-header).
    ignored = IGNORED_HEADERS | {h.lower() for h in args.ignore_header}
    current_headers = dict(h.split(":", 1) for h in args.current_header)
    reader_headers = dict(h.split(":", 1) for h in args.reader_header)
    current_headers = {k.strip(): v.strip() for k, v in current_headers.items()}
    reader_headers = {k.strip(): v.strip() for k, v in reader_headers.items()}

    def both(path):
        return (fetch(args.current, path, current_headers, args.timeout),
                fetch(args.reader, path, reader_headers, args.timeout))

    with open(args.ids, newline="") as f:
        rows = [r for r in csv.reader(f) if len(r) >= 2 and r[0].strip()]
    if rows and rows[0][0].strip().lower() in ("customerid", "c.customerid"):
        rows = rows[1:]
    summary = {"records": 0, "recordsDiffering": 0, "listPages": 0, "listPagesDiffering": 0, "unreachable": 0}
    for customer, record in ((r[0].strip(), r[1].strip()) for r in rows):
        path = f"/customers/{quote(customer)}/billing-records/{quote(record)}"
        current, reader = both(path)
        summary["records"] += 1
        if current[0] is None or reader[0] is None:
            summary["unreachable"] += 1
        diff = differences(current, reader, ignored)
        if diff:
            summary["recordsDiffering"] += 1
            print(f"DIFF {path}: {'; '.join(diff)}", file=out)

    for customer in sorted({r[0].strip() for r in rows}):
        # Continuation tokens are opaque and each service's own: follow each with
        # its own token, and compare status, headers and the items of each page.
        tokens = [None, None]
        for _ in range(args.pages):
            paths = []
            for token in tokens:
                query = {"pageSize": str(args.page_size)}
                if token:
                    query["continuationToken"] = token
                paths.append(f"/customers/{quote(customer)}/billing-records?{urllib.parse.urlencode(query)}")
            current = fetch(args.current, paths[0], current_headers, args.timeout)
            reader = fetch(args.reader, paths[1], reader_headers, args.timeout)
            summary["listPages"] += 1
            if current[0] is None or reader[0] is None:
                summary["unreachable"] += 1
            tokens = []
            bodies = []
            for answer in (current, reader):
                try:
                    token = json.loads(answer[2]).get("continuationToken")
                except (ValueError, AttributeError):
                    token = None
                tokens.append(token)
                raw = answer[2]
                if token:
                    # The token is each service's own: compare everything else, byte for byte.
                    raw = raw.replace(json.dumps(token).encode(), b'"<token>"').replace(token.encode(), b"<token>")
                bodies.append(raw)
            # Tokens differ in length, so the pages' Content-Length may too.
            def page(answer, body):
                return answer[0], {k: v for k, v in answer[1].items() if k != "content-length"}, body

            diff = differences(page(current, bodies[0]), page(reader, bodies[1]), ignored)
            if diff:
                summary["listPagesDiffering"] += 1
                print(f"DIFF {paths[1]}: {'; '.join(diff)}", file=out)
                break
            if not tokens[0]:
                break
    print(json.dumps(summary), file=out)
    if summary["records"] == 0:
        print("nothing compared: the ids file has no customerId,recordId lines", file=out)
        return 1
    clean = summary["recordsDiffering"] == 0 and summary["listPagesDiffering"] == 0 and summary["unreachable"] == 0
    return 0 if clean else 1


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--current", required=True, help="base URL of the API in service today (up to /api)")
    p.add_argument("--reader", required=True, help="base URL of the deployed reader (up to /api)")
    p.add_argument("--ids", required=True, help="CSV of customerId,recordId")
    p.add_argument("--current-header", action="append", default=[], help="'Name: value' sent to the current API")
    p.add_argument("--reader-header", action="append", default=[], help="'Name: value' sent to the reader")
    p.add_argument("--ignore-header", action="append", default=[],
                   help="a header one side's gateway adds and consumers never act on (repeatable)")
    p.add_argument("--pages", type=int, default=1, help="listing pages compared per customer")
    p.add_argument("--page-size", type=int, default=50)
    p.add_argument("--timeout", type=float, default=30.0)
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(compare(parse(sys.argv[1:])))
