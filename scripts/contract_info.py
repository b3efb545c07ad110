#!/usr/bin/env python3
"""What the deployment scripts need to know of a contract profile
(docs/adopting.md), one value per call:

    scripts/contract_info.py FILE partition-key     the container's partition key (/customerId)
    scripts/contract_info.py FILE smoke-path        the record route, prefix included, for an id
                                                    that does not exist
    scripts/contract_info.py FILE not-found         the status and content type a missing record
                                                    answers ("404 application/json; charset=utf-8")

FILE may be empty for the default profile. The reader itself checks the
profile in full (a malformed one stops packaging, naming the key); this only
reads it. Standard library only.
"""
import sys
import tomllib
import urllib.parse

DEFAULT = "contracts/default.toml"


def main(path, what):
    with open(path or DEFAULT, "rb") as f:
        profile = tomllib.load(f)
    routes = profile["routes"]
    if what == "partition-key":
        return profile["container"]["partition_key"]
    if what == "smoke-path":
        values = {routes["id_param"]: "no-such-record"}
        if routes.get("partition_key_param"):
            values[routes["partition_key_param"]] = "deploy-smoke-check"
        prefix = routes.get("prefix", "api").strip("/")
        segments = [urllib.parse.quote(values[s[1:-1]], safe="") if s.startswith("{") else s
                    for s in routes["record"].strip("/").split("/")]
        return "/" + "/".join(([prefix] if prefix else []) + segments)
    if what == "not-found":
        nf = profile.get("not_found", {})
        return f'{nf.get("status", 404)} {nf.get("content_type", "application/json; charset=utf-8")}'
    sys.exit(f"contract_info.py: unknown field {what!r} (partition-key, smoke-path, not-found)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(main(sys.argv[1], sys.argv[2]))
