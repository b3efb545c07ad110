#!/usr/bin/env python3
"""Independent check of the local emulators with the official Python SDKs.

Not used by any build or test: run it by hand when changing the emulators.

    python3 -m venv /tmp/emuvenv
    /tmp/emuvenv/bin/pip install azure-cosmos azure-storage-blob
    scripts/emulators.sh start /tmp/emu
    (. /tmp/emu/env && /tmp/emuvenv/bin/python scripts/emulators/selfcheck.py)
    scripts/emulators.sh stop /tmp/emu

Reads COSMOS_ENDPOINT, COSMOS_KEY, ARCHIVE_BLOB_ENDPOINT, ARCHIVE_BLOB_SAS.
Exits non-zero if any check fails.
"""
import json
import os
import sys
import time
import traceback
import urllib.request
import uuid

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.cosmos import CosmosClient, PartitionKey, exceptions as cosmos_errors
from azure.storage.blob import BlobServiceClient

RESULTS = []


def check(name):
    def run(fn):
        try:
            fn()
            RESULTS.append((name, None))
            print(f"PASS {name}")
        except Exception as err:  # noqa: BLE001 - report every failure
            RESULTS.append((name, err))
            print(f"FAIL {name}: {err!r}")
            traceback.print_exc()
        return fn

    return run


def expect_status(status, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001
        got = getattr(err, "status_code", None)
        assert got == status, f"expected HTTP {status}, got {got}: {err!r}"
        return err
    raise AssertionError(f"expected HTTP {status}, call succeeded")


def raw(method, url, body=None, headers=None):
    req = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers=headers or {},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.headers, json.loads(err.read() or b"null")


def cosmos_checks():
    endpoint = os.environ["COSMOS_ENDPOINT"]
    client = CosmosClient(endpoint, credential=os.environ["COSMOS_KEY"])
    db = client.create_database(f"selfcheck-{uuid.uuid4().hex[:8]}")
    box = {}

    try:
        container = db.create_container("records", PartitionKey(path="/customerId"))
        customers = ["cust-a", "cust-b", "cust-c"]
        items = [
            {"id": f"{c}-{i}", "customerId": c, "n": k, "payload": "x" * 100}
            for k, (c, i) in enumerate((c, i) for i in range(4) for c in customers)
        ]

        @check("cosmos: account document advertises http endpoints")
        def _():
            status, _, meta = raw("GET", endpoint)
            assert status == 200
            for loc in meta["writableLocations"] + meta["readableLocations"]:
                assert loc["databaseAccountEndpoint"] == endpoint, loc

        @check("cosmos: pkranges ids are strings")
        def _():
            status, _, body = raw("GET", f"{endpoint}dbs/{db.id}/colls/records/pkranges")
            assert status == 200, body
            for r in body["PartitionKeyRanges"]:
                assert isinstance(r["id"], str), r
                assert all(isinstance(p, str) for p in r["parents"]), r

        @check("cosmos: create items in several partitions")
        def _():
            for item in items:
                created = container.create_item(item)
                assert created["_etag"] and isinstance(created["_ts"], int)
            expect_status(409, container.create_item, items[0])

        @check("cosmos: point read, _etag and _ts")
        def _():
            got = container.read_item("cust-b-2", partition_key="cust-b")
            assert got["n"] == items[7]["n"] and got["customerId"] == "cust-b"
            assert abs(got["_ts"] - time.time()) < 120, got["_ts"]
            box["etag"] = got["_etag"]
            box["item"] = got

        @check("cosmos: point read of a missing item -> 404")
        def _():
            expect_status(404, container.read_item, "nope", partition_key="cust-a")
            # an existing id in another partition is missing too
            expect_status(404, container.read_item, "cust-b-2", partition_key="cust-a")
            status, headers, body = raw(
                "GET",
                f"{endpoint}dbs/{db.id}/colls/records/docs/nope",
                headers={"x-ms-documentdb-partitionkey": '["cust-a"]'},
            )
            assert status == 404 and body["code"] == "NotFound", (status, body)
            assert float(headers["x-ms-request-charge"]) > 0

        @check("cosmos: single-partition query returns only that partition")
        def _():
            got = list(container.query_items("SELECT * FROM c", partition_key="cust-a"))
            assert sorted(i["id"] for i in got) == [f"cust-a-{i}" for i in range(4)], got
            got = list(
                container.query_items(
                    "SELECT VALUE c.id FROM c WHERE c.n >= @n",
                    parameters=[{"name": "@n", "value": 6}],
                    partition_key="cust-c",
                )
            )
            assert sorted(got) == ["cust-c-2", "cust-c-3"], got

        @check("cosmos: single-partition query pages stay in the partition")
        def _():
            pager = container.query_items(
                "SELECT c.id FROM c ORDER BY c.n", partition_key="cust-b", max_item_count=1
            ).by_page()
            pages = [list(p) for p in pager]
            assert [i["id"] for p in pages for i in p] == [f"cust-b-{i}" for i in range(4)]
            assert len(pages) == 4, pages

        @check("cosmos: query plan request answers a plan (Python-style headers)")
        def _():
            status, _, plan = raw(
                "POST",
                f"{endpoint}dbs/{db.id}/colls/records/docs",
                {"query": "SELECT VALUE COUNT(1) FROM c"},
                {
                    "Content-Type": "application/json",
                    "x-ms-cosmos-is-query-plan-request": "True",
                    "x-ms-cosmos-supported-query-features": "Aggregate,OrderBy,Top",
                },
            )
            assert status == 200, plan
            assert plan["queryRanges"] == [
                {"min": "", "max": "FF", "isMinInclusive": True, "isMaxInclusive": False}
            ], plan
            assert plan["queryInfo"]["hasSelectValue"] is True, plan

        @check("cosmos: Rust-style per-range ORDER BY query (pkrangeid, envelopes)")
        def _():
            # What azure_data_cosmos sends for a cross-partition ORDER BY: the
            # rewritten query, one range, no enablecrosspartition header.
            query = (
                'SELECT VALUE {"_rid": c._rid, "orderByItems": [{"item": c.n}], '
                '"payload": c} FROM c WHERE true ORDER BY c.n'
            )
            seen, cont = [], None
            while True:
                headers = {
                    "Content-Type": "application/query+json",
                    "x-ms-documentdb-isquery": "True",
                    "x-ms-documentdb-partitionkeyrangeid": "0",
                    "x-ms-max-item-count": "5",
                }
                if cont:
                    headers["x-ms-continuation"] = cont
                status, resp_headers, body = raw(
                    "POST", f"{endpoint}dbs/{db.id}/colls/records/docs", {"query": query}, headers
                )
                assert status == 200, body
                seen += [d["orderByItems"][0]["item"] for d in body["Documents"]]
                assert all(d["payload"]["id"] and d["_rid"] for d in body["Documents"])
                cont = resp_headers.get("x-ms-continuation")
                if not cont:
                    break
            assert seen == sorted(i["n"] for i in items), seen

        @check("cosmos: cross-partition ORDER BY with max_item_count=2 pages")
        def _():
            pager = container.query_items(
                "SELECT c.id, c.n FROM c ORDER BY c.n DESC",
                enable_cross_partition_query=True,
                max_item_count=2,
            ).by_page()
            pages = [list(p) for p in pager]
            flat = [i["n"] for p in pages for i in p]
            assert flat == sorted((i["n"] for i in items), reverse=True), flat
            assert len(pages) >= 6 and all(len(p) <= 2 for p in pages), pages

        @check("cosmos: cross-partition query without ORDER BY, and an aggregate")
        def _():
            got = list(
                container.query_items(
                    "SELECT * FROM c", enable_cross_partition_query=True, max_item_count=5
                )
            )
            assert sorted(i["id"] for i in got) == sorted(i["id"] for i in items)
            count = list(
                container.query_items(
                    "SELECT VALUE COUNT(1) FROM c", enable_cross_partition_query=True
                )
            )
            assert count == [len(items)], count

        @check("cosmos: replace changes _etag; stale If-Match -> 412")
        def _():
            old = box["item"]
            new = container.replace_item(old["id"], {**old, "touched": True})
            assert new["_etag"] != old["_etag"], (new["_etag"], old["_etag"])
            assert new["_ts"] >= old["_ts"]
            expect_status(
                412,
                container.replace_item,
                old["id"],
                {**old, "touched": 2},
                etag=old["_etag"],
                match_condition=MatchConditions.IfNotModified,
            )
            box["fresh"] = new

        @check("cosmos: delete with stale If-Match -> 412, current -> 204")
        def _():
            expect_status(
                412,
                container.delete_item,
                "cust-b-2",
                partition_key="cust-b",
                etag=box["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
            container.delete_item(
                "cust-b-2",
                partition_key="cust-b",
                etag=box["fresh"]["_etag"],
                match_condition=MatchConditions.IfNotModified,
            )
            expect_status(404, container.read_item, "cust-b-2", partition_key="cust-b")

        @check("cosmos: delete of a missing item -> 404")
        def _():
            err = expect_status(404, container.delete_item, "nope", partition_key="cust-a")
            assert isinstance(err, cosmos_errors.CosmosResourceNotFoundError)
    finally:
        client.delete_database(db.id)


def blob_checks():
    service = BlobServiceClient(
        account_url=os.environ["ARCHIVE_BLOB_ENDPOINT"],
        credential=os.environ["ARCHIVE_BLOB_SAS"],
    )
    container = service.create_container(f"selfcheck-{uuid.uuid4().hex[:8]}")
    try:
        blob = container.get_blob_client("2024/01/cust-a/rec-1.json")
        data = b'{"id":"rec-1"}'
        meta = {"recordid": "rec-1", "sourceetag": "abc"}

        @check("blob: upload with metadata and If-None-Match:* (again -> 409)")
        def _():
            blob.upload_blob(data, metadata=meta, overwrite=False)
            expect_status(409, blob.upload_blob, data, overwrite=False)
            # the same with an explicit header, as a raw client would send it
            err = expect_status(
                409, blob.upload_blob, data, overwrite=True, headers={"If-None-Match": "*"}
            )
            assert isinstance(err, ResourceExistsError)
            assert blob.download_blob().readall() == data

        @check("blob: get content and properties")
        def _():
            assert blob.download_blob().readall() == data
            props = blob.get_blob_properties()
            assert props.metadata == meta, props.metadata
            assert props.size == len(data)

        @check("blob: list with metadata")
        def _():
            listed = list(container.list_blobs(name_starts_with="2024/", include=["metadata"]))
            assert [b.name for b in listed] == [blob.blob_name], listed
            assert listed[0].metadata == meta, listed[0].metadata

        @check("blob: conditional upload with If-Match etag (stale -> 412)")
        def _():
            etag = blob.get_blob_properties().etag
            blob.upload_blob(
                b"v2", overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified
            )
            err = expect_status(
                412,
                blob.upload_blob,
                b"v3",
                overwrite=True,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
            assert isinstance(err, ResourceModifiedError)
            assert blob.download_blob().readall() == b"v2"

        @check("blob: missing blob -> 404")
        def _():
            err = expect_status(
                404, container.get_blob_client("nope").get_blob_properties
            )
            assert isinstance(err, ResourceNotFoundError)
    finally:
        container.delete_container()


def main():
    for group in (cosmos_checks, blob_checks):
        try:
            group()
        except Exception as err:  # noqa: BLE001 - setup failure of a group
            RESULTS.append((group.__name__, err))
            print(f"FAIL {group.__name__}: {err!r}")
            traceback.print_exc()
    failed = sum(1 for _, err in RESULTS if err is not None)
    print(f"selfcheck: {len(RESULTS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
