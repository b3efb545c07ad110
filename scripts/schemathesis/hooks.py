"""Schemathesis hooks for the read-API contract test (devhost/tests/contract.rs).

reader/openapi.yaml states two rules in prose that JSON Schema cannot express,
and the reader enforces both with a 400:

1. a continuation token is opaque: only a token the API returned, passed back for
   the same customer, `from` and `to`, is valid (the spec marks its schema
   `format: continuation-token`, a server-issued value);
2. `from` must not be after `to`.

A generator that only reads schemas cannot know them, so it would call a request
"schema-valid" that the contract says is not. This hook teaches it the two rules
(the first from the spec's own mark: any query parameter whose schema has
`format: continuation-token`),
for positive cases only (those the spec promises will be accepted): an inverted
`from`/`to` pair is put in order; and a token that is not valid for the case's
own query (a random one, or one a stateful step took from another query's
response) is replaced by the token the API returns for that very query, or
dropped when that query has a single page. A token the API accepts for the query
(one the spec's links carried over unchanged) is sent as it is. Negative cases
are sent as generated. Everything else is left to Schemathesis.

The test sets CONTRACT_BASE_URL to the API's base URL (ending in /api).
"""

import os
from urllib.parse import quote

import requests
import schemathesis

LIST_PATH = "/customers/{customerId}/billing-records"
# How the spec marks a value only the server issues (reader/openapi.yaml).
TOKEN_FORMAT = "continuation-token"


def _positive(case):
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


def _list(customer, params):
    url = f"{os.environ['CONTRACT_BASE_URL']}/customers/{quote(str(customer), safe='')}/billing-records"
    return requests.get(url, params=params, timeout=30)


def _server_issued(case):
    """The query parameters whose schema the spec marks `format: continuation-token`."""
    spec = case.operation.schema.raw_schema
    names = []
    for param in case.operation.definition.raw.get("parameters", []):
        if "$ref" in param:
            param = _resolve(spec, param["$ref"])
        schema = param.get("schema") or {}
        if "$ref" in schema:
            schema = _resolve(spec, schema["$ref"])
        if param.get("in") == "query" and schema.get("format") == TOKEN_FORMAT:
            names.append(param["name"])
    return names


def _resolve(spec, ref):
    node = spec
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.path != LIST_PATH or not _positive(case) or case.query is None:
        return
    query = case.query
    start, end = query.get("from"), query.get("to")
    if isinstance(start, str) and isinstance(end, str) and start > end:
        query["from"], query["to"] = end, start
    tokens = [name for name in _server_issued(case) if name in query]
    if not tokens:
        return
    name = tokens[0]
    customer = case.path_parameters["customerId"]
    if _list(customer, query).status_code != 400:
        return
    first_page = {k: v for k, v in query.items() if k in ("from", "to", "pageSize")}
    answer = _list(customer, first_page)
    token = answer.json().get("continuationToken") if answer.status_code == 200 else None
    if token is None:
        del query[name]
    else:
        query[name] = token
