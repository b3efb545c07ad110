#!/usr/bin/env python3
"""What the deployment scripts need to know of a contract profile
(docs/adopting.md), one value per call:

    scripts/contract_info.py FILE partition-key     the container's partition key (/customerId)
    scripts/contract_info.py FILE smoke-path        the record route, prefix included, for an id
                                                    that does not exist
    scripts/contract_info.py FILE not-found         the status and content type a missing record
                                                    answers ("404 application/json; charset=utf-8")
    scripts/contract_info.py FILE auth-mode         how callers authenticate (function-key, bearer,
                                                    anonymous: docs/auth.md)
    scripts/contract_info.py FILE auth-issuers      bearer: the accepted issuers, comma-separated
    scripts/contract_info.py FILE auth-audiences    bearer: the accepted audiences, comma-separated
    scripts/contract_info.py FILE unauthenticated   bearer: the status and content type a request
                                                    without a token answers ("401 ...")
    scripts/contract_info.py FILE mode              serve, or front (docs/front-mode.md)
    scripts/contract_info.py FILE front-upstream    front mode: the profile's front.upstream, or nothing

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
    if what == "mode":
        return "front" if "front" in profile else "serve"
    if what == "front-upstream":
        return profile.get("front", {}).get("upstream", "")
    auth = profile.get("auth", {})
    if what == "auth-mode":
        return auth.get("mode", "function-key")
    if what in ("auth-issuers", "auth-audiences"):
        return ",".join(auth.get(what.removeprefix("auth-"), []))
    if what == "unauthenticated":
        return f'401 {auth.get("unauthenticated", {}).get("content_type", "application/json; charset=utf-8")}'
    sys.exit(f"contract_info.py: unknown field {what!r} (partition-key, smoke-path, not-found, auth-mode, "
             "auth-issuers, auth-audiences, unauthenticated, mode, front-upstream)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(main(sys.argv[1], sys.argv[2]))
