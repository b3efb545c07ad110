#!/usr/bin/env python3
"""Static checks of infra-bicep/: the promises docs/deployment.md makes.

No Bicep compiler runs here: this parses every infra-bicep/*.bicep with
pycep-parser and checks the parsed templates for least-privilege roles, the live
Cosmos DB container never deployed (only referenced, maybe in another resource
group), no secrets or shared keys, an archive never on the Archive tier nor
deleted, the alerts, and the app settings each app needs. Prints a
line per rule, exits 1 listing every failed one. Run by scripts/checks/run.sh:

    scripts/checks/.venv/bin/python scripts/checks/infra.py [infra-dir]

Reading pycep's AST: identifiers and string literals both come back as Python
strings; a string naming a parameter, variable, resource or module is taken as
a reference to it. Expressions are compared as Bicep-like source text
(Template.src), with one twist: an index into a resource loop is shown by the
loop item's `name`, so `sites[i]` in the loop's second pass and
`sites[readerIndex]` both read `sites[reader]`.
"""
import collections
import glob
import json
import os
import re
import sys

try:
    from pycep import BicepParser
except ImportError:
    sys.exit("check-infra: pycep-parser is missing (pip install pycep-parser)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARSER = BicepParser()
APPS = ("archiver", "reader")

# Resource types.
STORAGE = "Microsoft.Storage/storageAccounts"
BLOB_SERVICE = STORAGE + "/blobServices"
BLOB_CONTAINER = BLOB_SERVICE + "/containers"
LIFECYCLE = STORAGE + "/managementPolicies"
ROLE_DEF = "Microsoft.Authorization/roleDefinitions"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"
LOCK = "Microsoft.Authorization/locks"
COSMOS_ACCOUNT = "Microsoft.DocumentDB/databaseAccounts"
SQL_ROLE_DEF = COSMOS_ACCOUNT + "/sqlRoleDefinitions"
SQL_ROLE_ASSIGNMENT = COSMOS_ACCOUNT + "/sqlRoleAssignments"
INSIGHTS = "Microsoft.Insights/components"
WORKSPACE = "Microsoft.OperationalInsights/workspaces"
SCHEDULED_QUERY = "Microsoft.Insights/scheduledQueryRules"
ACTION_GROUP = "Microsoft.Insights/actionGroups"
SITE = "Microsoft.Web/sites"
PLAN = "Microsoft.Web/serverfarms"

# Built-in role ids.
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
COSMOS_DATA_READER = "00000000-0000-0000-0000-000000000001"
ROLE_NAMES = {BLOB_DATA_OWNER: "Storage Blob Data Owner", BLOB_DATA_READER: "Storage Blob Data Reader",
              METRICS_PUBLISHER: "Monitoring Metrics Publisher", COSMOS_DATA_READER: "Cosmos DB Built-in Data Reader"}
# docs/deployment.md: five alerts; previous versions kept 90 days, soft delete 30 (floors, not pins).
ALERTS = 5
PREVIOUS_VERSION_LEAST_DAYS = 30
SOFT_DELETE_LEAST_DAYS = 7

GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/"
ARCHIVE_WRITER_DATA_ACTIONS = {BLOBS + a for a in ("read", "write", "add/action", "delete")}
ARCHIVE_WRITER_ACTIONS_ALLOWED = {"Microsoft.Storage/storageAccounts/blobServices/containers/read"}
COSMOS_ARCHIVER_DATA_ACTIONS = {"Microsoft.DocumentDB/databaseAccounts/" + a for a in (
    "readMetadata", *("sqlDatabases/containers/" + c for c in ("executeQuery", "readChangeFeed", "items/read",
                                                                "items/delete")))}
# Write-through (docs/writes.md): on top of its reads, the reader moves records back:
# it creates items, and reads and deletes blobs. Never more.
# (blobs/write: Lease Blob needs it; no add/action, so no new blob can be created by append)
ARCHIVE_MOVER_DATA_ACTIONS = {BLOBS + a for a in ("read", "write", "delete")}
COSMOS_MOVE_BACK_DATA_ACTIONS = {"Microsoft.DocumentDB/databaseAccounts/" + a for a in (
    "readMetadata", "sqlDatabases/containers/items/create")}
# The switch, as main.bicep and cosmos-roles.bicep name it: resources and settings
# under these conditions exist only with write-through; every rule runs both ways.
WRITE_THROUGH_FLAGS = ("writeThrough", "readerMovesBack")

# The settings each app reads at start (archiver/src, reader/src, the Functions host).
COMMON_SETTINGS = ["AzureWebJobsStorage__accountName", "APPLICATIONINSIGHTS_CONNECTION_STRING",
                   "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "COSMOS_ENDPOINT", "COSMOS_DATABASE",
                   "COSMOS_CONTAINER", "COSMOS_PARTITION_KEY", "ARCHIVE_BLOB_ENDPOINT", "ARCHIVE_CONTAINER",
                   "ARCHIVE_AGE_FIELD", "LOG_FORMAT", "COSMOS_DISABLE_IMDS"]
APP_SETTINGS = {
    "archiver": ["ARCHIVE_AFTER_DAYS", "ARCHIVE_QUIET_DAYS", "ARCHIVE_RETENTION_DAYS", "ARCHIVE_DRY_RUN", "ARCHIVE_CONCURRENCY", "ARCHIVE_MAX_RU_PER_SECOND",
                 "ARCHIVE_RU_SHARE_PERCENT", "ARCHIVE_PRIORITY", "ARCHIVE_TIME_BUDGET_SECONDS", "ARCHIVE_SCHEDULE",
                 "AzureWebJobs.ArchiveBillingRecords.Disabled"],
    "reader": ["READER_TIMEOUT_SECONDS", "READER_PAGE_MAX_BYTES"],
}
SECRET_SETTINGS = {"COSMOS_KEY", "ARCHIVE_BLOB_SAS", "AzureWebJobsStorage", "APPINSIGHTS_INSTRUMENTATIONKEY"}
SECRET_NAME = re.compile(r"(?i)(_KEY|_SAS|SECRET|PASSWORD|CONNECTION_STRING)$")
NOT_SECRETS = {"APPLICATIONINSIGHTS_CONNECTION_STRING", "COSMOS_PARTITION_KEY"}
SECRET_TEXT = re.compile(
    r"(?i)AccountKey=|SharedAccessSignature=|\bsig=|\blist(Keys|AccountSas|ServiceSas|ConnectionStrings)\s*\(")


class Fail(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Fail(msg)


def camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(w.title() for w in rest)


def keys(node, path=""):
    """Every (path, key, value) in a raw pycep structure."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from keys(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from keys(v, f"{path}[{i}]")


# Strings first, so that a // or /* inside one is kept. (An interpolation holding a
# quoted string with // in it would be cut short; the templates hold none.)
COMMENT_OR_STRING = re.compile(r"'''[\s\S]*?'''|'(?:[^'\\\n]|\\.)*'|//[^\n]*|/\*[\s\S]*?\*/")


def strip_comments(text):
    return COMMENT_OR_STRING.sub(lambda mt: mt.group(0) if mt.group(0).startswith("'") else "", text)


class Template:
    """One parsed .bicep file, and the few lookups the rules need on it."""

    def __init__(self, path):
        self.name = os.path.basename(path)
        self.path = path
        with open(path, encoding="utf-8") as f:
            self.text = f.read()
        try:
            ast = PARSER.parse(text=self.text)
        except Exception as e:  # noqa: BLE001  (lark's errors have no common base)
            raise Fail(f"does not parse: {str(e).splitlines()[0][:200]}")
        need(isinstance(ast, dict), "does not parse")
        self.params = ast.get("parameters") or {}
        self.vars = ast.get("variables") or {}
        self.resources = ast.get("resources") or {}
        self.modules = ast.get("modules") or {}
        self.outputs = ast.get("outputs") or {}
        self.symbols = set(self.params) | set(self.vars) | set(self.resources) | set(self.modules)
        self.write_through = False

    def condition(self, sym, kind="resources"):
        """The source text of a resource's `if (...)` condition, or None."""
        cfg = getattr(self, kind)[sym].get("config") or {}
        return self.src(cfg["condition"]) if "condition" in cfg else None

    def active(self, sym, kind="resources"):
        """False for a resource that exists only with write-through, when the case checked is without it."""
        cond = self.condition(sym, kind)
        return cond not in WRITE_THROUGH_FLAGS or self.write_through

    def of_type(self, rtype, existing=False):
        return [s for s, r in self.resources.items()
                if r.get("type", "").lower() == rtype.lower() and bool(r.get("existing")) == existing
                and self.active(s)]

    def body(self, sym, kind="resources"):
        """(loop detail or None, config) of a resource or module, under its loop or condition."""
        cfg = getattr(self, kind)[sym].get("config") or {}
        if "config" in cfg and ("loop_type" in cfg or "condition" in cfg):
            return (cfg.get("loop_type") or {}).get("detail"), cfg.get("config") or {}
        return None, cfg

    def follow(self, node):
        """A variable's value, for a reference to it (repeatedly)."""
        for _ in range(20):  # a cycle is an error in Bicep; stop anyway
            node = self.vars[node].get("value") if isinstance(node, str) and node in self.vars else node
        return node

    def obj(self, node):
        """An object expression as one dict: a literal (or a variable), or union() of them, later ones winning."""
        node = self.follow(node)
        fn = node.get("function") if isinstance(node, dict) else None
        if fn and fn["type"] == "union":
            out = {}
            for arg in fn["parameters"].values():
                if arg is not None:
                    out.update(self.obj(arg))
            return out
        need(isinstance(node, dict) and "operator" not in node, f"{self.src(node)} is not an object this check can read")
        return node

    def label(self, sym, k):
        """How index k into a resource loop is shown: the loop item's name, else k."""
        loop = self.body(sym)[0] if sym in self.resources else None
        items = self.follow(loop.get("array_name")) if loop else None
        item = items[k] if isinstance(items, list) and 0 <= k < len(items) else None
        return item["name"] if isinstance(item, dict) and isinstance(item.get("name"), str) else str(k)

    def instances(self, sym):
        """[(key, env, config)]: one per loop pass (key `sym[label]`, env the loop names), or just (sym, {}, config)."""
        loop, cfg = self.body(sym)
        if not loop:
            return [(sym, {}, cfg)]
        items = self.follow(loop.get("array_name"))
        need(isinstance(items, list), f"{self.name} {sym}: loops over {self.src(items)}, not a literal array")
        return [(f"{sym}[{self.label(sym, k)}]", {loop.get("index_name"): k, loop["item_name"]: item}, cfg)
                for k, item in enumerate(items)]

    def array(self, node, env):
        """The items of an array expression: a literal, a variable, concat(...), a conditional, or <loop item>.<field>."""
        node = self.follow(node)
        if isinstance(node, list):
            return node
        fn = node.get("function") if isinstance(node, dict) else None
        if fn and fn["type"] == "concat":
            return [x for arg in fn["parameters"].values() if arg is not None for x in self.array(arg, env)]
        op = node.get("operator") if isinstance(node, dict) else None
        if op and op["type"] == "conditional" and self.src(op["operands"]["condition"]) in WRITE_THROUGH_FLAGS:
            branch = "true_value" if self.write_through else "false_value"
            return self.array(op["operands"][branch], env)
        if op and op["type"] == "conditional":
            # Another condition (an optional setting): what either branch may hold.
            return [x for b in ("true_value", "false_value") for x in self.array(op["operands"][b], env)]
        if op and op["type"] == "property_accessor":
            item, field = op["operands"]["operand_1"], op["operands"]["operand_2"]
            if isinstance(env.get(item), dict) and isinstance(field, str) and field in env[item]:
                return self.array(env[item][field], env)
        raise Fail(f"{self.src(node, env)} is not an array this check can read")

    def src(self, node, env=None, member=False):
        """Bicep-like source text of an expression (member: a name after a dot)."""
        env = env or {}
        if not isinstance(node, (str, list, dict)):
            return json.dumps(node)  # null, true, 42
        if isinstance(node, str):
            bare = member or "${" not in node and (node in env or node in self.symbols)
            return node if bare else f"'{node}'"
        if isinstance(node, list):
            return "[" + ", ".join(self.src(x, env) for x in node) + "]"
        if "function" in node:
            fn = node["function"]
            name = fn["parameters"].get("func_name") if fn["type"] == "list_func" else camel(fn["type"])
            args = [self.src(v, env) for k, v in fn["parameters"].items() if v is not None and k != "func_name"]
            return f"{name}({', '.join(args)})"
        if "operator" not in node:
            return "{" + ", ".join(f"{k}: {self.src(v, env)}" for k, v in node.items()) + "}"
        kind, ops = node["operator"]["type"], node["operator"].get("operands") or {}
        if kind == "property_accessor":
            return self.src(ops["operand_1"], env, member) + "." + self.src(ops["operand_2"], env, True)
        if kind == "function_accessor":
            return self.src(ops["operand_1"], env, member) + "." + ops["func_name"] + "()"
        if kind == "index_accessor":
            base, idx = ops["operand_1"], ops["operand_2"]
            k = env.get(idx) if isinstance(idx, str) and idx in env else self.follow(idx)
            if isinstance(base, str) and base in self.resources and isinstance(k, int) and not isinstance(k, bool):
                return f"{base}[{self.label(base, k)}]"
            return f"{self.src(base, env, member)}[{self.src(idx, env)}]"
        if kind == "conditional":
            return f"{self.src(ops['condition'], env)} ? {self.src(ops['true_value'], env)} : " \
                f"{self.src(ops['false_value'], env)}"
        return f"{kind}(" + ", ".join(self.src(v, env) for v in ops.values()) + ")"

    def role_of(self, node, env=None):
        """A role assignment's role: a built-in role's GUID, or 'custom:<symbol>' for a role defined here."""
        node = self.follow(node)
        text = self.src(node, env)
        for d in self.of_type(ROLE_DEF) + self.of_type(SQL_ROLE_DEF):
            if text in (f"{d}.id", f"{d}.name") or text.endswith("/${" + self.src(self.body(d)[1].get("name")) + "}'"):
                return f"custom:{d}"
        args = [v for v in node["function"]["parameters"].values() if v is not None] \
            if isinstance(node, dict) and "function" in node else []
        if args:  # subscriptionResourceId('Microsoft.Authorization/roleDefinitions', <role id>)
            return self.role_of(args[-1], env)
        mt = re.search(f"({GUID})'?$", text)
        return mt.group(1).lower() if mt else text


class Infra:
    """What the templates deploy, found from main.bicep's sites and their settings."""

    def __init__(self, tpls, write_through=False):
        self.tpls, self.m, self.write_through = tpls, tpls["main.bicep"], write_through
        for t in tpls.values():
            t.write_through = write_through

    def sites(self):
        """{app: (key, env, config)} of every Microsoft.Web/sites instance, by loop item name."""
        out = {key.split("[")[-1].rstrip("]"): (key, env, cfg)
               for sym in self.m.of_type(SITE) for key, env, cfg in self.m.instances(sym)}
        need(sorted(out) == sorted(APPS), f"sites {sorted(out)}; expected one per app: {list(APPS)}")
        return out

    def settings(self, app):
        """{name: value as source text} of an app's appSettings."""
        key, env, cfg = self.sites()[app]
        raw = ((cfg.get("properties") or {}).get("siteConfig") or {}).get("appSettings")
        out = {}
        for item in self.m.array(raw, env):
            item = self.m.follow(item)
            need(isinstance(item, dict) and isinstance(item.get("name"), str),
                 f"{app}: app setting {self.m.src(item, env)} is not a literal {{name, value}}")
            out[item["name"]] = self.m.src(item.get("value"), env)
        return out

    def app_of(self, principal):
        """'archiver' or 'reader' for its site's principal id (source text), else the text itself."""
        for app, (key, _, _) in self.sites().items():
            if principal == f"{key}.identity.principalId":
                return app
        return principal

    def host(self, app):
        """The app's host storage account (AzureWebJobsStorage__accountName), e.g. hostStorage[reader]."""
        v = self.settings(app).get("AzureWebJobsStorage__accountName", "")
        need(v.endswith(".name"), f"{app}: AzureWebJobsStorage__accountName {v!r} is not a storage account's name")
        return v[:-len(".name")]

    def archive(self):
        """The archive storage account: the one the reader's ARCHIVE_BLOB_ENDPOINT points at."""
        v = self.settings("reader").get("ARCHIVE_BLOB_ENDPOINT", "")
        mt = re.fullmatch(r"(\w+)\.properties\.primaryEndpoints\.blob", v)
        need(mt and mt.group(1) in self.m.of_type(STORAGE), f"ARCHIVE_BLOB_ENDPOINT {v!r} is not an account here")
        return mt.group(1)

    def children(self, rtype, parent):
        """Symbols of the resources of a type whose parent (or scope) is `parent`."""
        return [s for s in self.m.of_type(rtype)
                if self.m.src(self.m.body(s)[1].get("parent") or self.m.body(s)[1].get("scope")) == parent]

    def archive_service(self):
        svcs = self.children(BLOB_SERVICE, self.archive())
        need(len(svcs) == 1, f"blob services of {self.archive()}: {svcs or 'none'}")
        return svcs[0]

    def archive_container(self):
        found = self.children(BLOB_CONTAINER, self.archive_service())
        need(len(found) == 1, f"expected one blob container in {self.archive()}, found {found or 'none'}")
        return found[0]

    def one(self, rtype):
        syms = self.m.of_type(rtype)
        need(len(syms) == 1, f"main.bicep: expected one {rtype}, found {syms or 'none'}")
        return syms[0]

    def role_assignments(self):
        """[(scope, role, app)] of every Azure role assignment in every template."""
        out = []
        for t in self.tpls.values():
            for sym in t.of_type(ROLE_ASSIGNMENT):
                for key, env, cfg in t.instances(sym):
                    p = cfg.get("properties") or {}
                    scope = t.src(cfg["scope"], env) if "scope" in cfg else "resourceGroup()"
                    who = self.app_of(t.src(p.get("principalId"), env)) if t is self.m else f"{t.name} {key}"
                    out.append((scope, t.role_of(p.get("roleDefinitionId"), env), who))
        return out

    def custom_role(self, app):
        """The one custom Azure role `app` holds on the archive container (its symbol)."""
        held = [r.split(":", 1)[1] for s, r, a in self.role_assignments()
                if a == app and s == self.archive_container() and r.startswith("custom:")]
        need(len(held) == 1, f"{app}: custom roles on the archive container: {held or 'none'}; expected one")
        return held[0]

    def mover_role(self):
        """The archive mover role (write-through): the custom role definition other than the archiver's."""
        others = [d for d in self.m.of_type(ROLE_DEF) if d != self.custom_role("archiver")]
        need(len(others) == (1 if self.write_through else 0),
             f"custom roles besides the archiver's: {others or 'none'}; expected "
             + ("one, the reader's archive mover role" if self.write_through else "none without write-through"))
        return others[0] if others else None

    def expected_roles(self):
        """docs/deployment.md's role table, as (scope, role, app), for the Azure (not Cosmos DB) columns."""
        roles = {
            "writer": {(self.archive_container(), f"custom:{self.custom_role('archiver')}", "archiver")},
            "reader": {(self.archive_container(), BLOB_DATA_READER, "reader")},
            "host": {(self.host(app), BLOB_DATA_OWNER, app) for app in APPS},
            "metrics": {(self.one(INSIGHTS), METRICS_PUBLISHER, app) for app in APPS},
            "mover": set(),
        }
        if self.write_through:
            roles["mover"] = {(self.archive_container(), f"custom:{self.mover_role()}", "reader")}
        return roles

    def expect_roles(self, which):
        missing = self.expected_roles()[which] - set(self.role_assignments())
        need(not missing, f"missing {show_roles(missing)}")


    def live_container(self, t, args, node):
        """Fails unless node is '${<existing account>.id}/dbs/${db}/colls/${container}', the apps' own."""
        text = t.src(t.follow(node))
        mt = re.fullmatch(r"'\$\{(\w+)\.id\}/dbs/\$\{(\w+)\}/colls/\$\{(\w+)\}'", text)
        need(mt and mt.group(1) in t.of_type(COSMOS_ACCOUNT, existing=True),
             f"scope {text} is not '${{<existing account>.id}}/dbs/${{<database>}}/colls/${{<container>}}'")
        _, db, coll = mt.groups()
        for app in APPS:
            s = self.settings(app)
            need(args.get(db) == s.get("COSMOS_DATABASE") and args.get(coll) == s.get("COSMOS_CONTAINER"),
                 f"scope {text} is not {app}'s COSMOS_DATABASE/COSMOS_CONTAINER")

    def module(self, name):
        """(symbol, template, {its param: what main.bicep passes, as source text}) of main.bicep's one module on
        the template `name`, deployed unconditionally."""
        mods = [s for s, mm in self.m.modules.items()
                if os.path.basename((mm.get("detail") or {}).get("path") or "") == name]
        need(len(mods) == 1 and name in self.tpls, f"main.bicep: modules on {name}: {mods or 'none'}; expected one")
        raw = self.m.modules[mods[0]].get("config") or {}
        need(not raw.get("condition") and not raw.get("loop_type"), f"module {mods[0]} is conditional or a loop")
        args = self.m.body(mods[0], "modules")[1].get("params") or {}
        return mods[0], self.tpls[name], {k: self.m.src(v) for k, v in args.items()}

    def existing_cosmos(self, t):
        """The one Cosmos DB account template t references (`existing`): (symbol, config)."""
        accts = t.of_type(COSMOS_ACCOUNT, existing=True)
        need(len(accts) == 1, f"{t.name}: expected one existing Cosmos DB account, found {accts or 'none'}")
        return accts[0], t.body(accts[0])[1]

    def cosmos(self):
        """(cosmos-roles template, {its param: what main.bicep passes, as source text},
        {its sql role assignment: (app, role, config)})."""
        mods = [(s, os.path.basename((mm.get("detail") or {}).get("path") or "")) for s, mm in self.m.modules.items()]
        mods = [(s, p) for s, p in mods if p in self.tpls and self.tpls[p].of_type(SQL_ROLE_ASSIGNMENT)]
        need(len(mods) == 1, f"expected one module of Cosmos DB role assignments, found {mods or 'none'}")
        t, args = self.tpls[mods[0][1]], self.m.body(mods[0][0], "modules")[1].get("params") or {}
        args, out = {k: self.m.src(v) for k, v in args.items()}, {}
        for s in t.of_type(SQL_ROLE_ASSIGNMENT):
            loop, cfg = t.body(s)
            need(not loop, f"{s} is a loop: the assignments must be serialized one by one")
            p = cfg.get("properties") or {}
            principal = t.src(p.get("principalId"))
            out[s] = (self.app_of(args.get(principal, principal)), t.role_of(p.get("roleDefinitionId")), cfg)
        return t, args, out


def show_roles(roles):
    return "; ".join(f"{a}: {ROLE_NAMES.get(r, r)} on {s}" for s, r, a in sorted(roles)) or "none"


# --- The rules, in the order they print ------------------------------------------------------

RULES = []


def rule(title):
    def add(fn):
        RULES.append((title, fn))
        return fn
    return add


def exact_permissions(t, props, data_actions, actions_allowed=frozenset()):
    """Fails unless a role definition's one permission grants exactly data_actions (and actions within allowed)."""
    perms = t.follow(props.get("permissions"))
    need(isinstance(perms, list) and len(perms) == 1, f"permissions {t.src(perms)}")
    acts, da = set(perms[0].get("actions") or []), set(t.follow(perms[0].get("dataActions")) or [])
    need(acts <= actions_allowed, f"actions {sorted(acts - actions_allowed)}")
    need(da == data_actions, f"dataActions: extra {sorted(da - data_actions)}, missing {sorted(data_actions - da)}")


def days_at_least(t, node, least):
    """A number of days: a literal >= least, or an int parameter defaulting to >= least whose @minValue (if any)
    is at least 1, so that no deployment can make it 0. Returns it as text; fails otherwise."""
    node = t.follow(node)
    if isinstance(node, str) and node in t.params:
        p = t.params[node]
        d = p.get("default")
        need(p.get("type") == "int" and isinstance(d, int) and not isinstance(d, bool) and d >= least,
             f"param {node}: {p.get('type')} = {t.src(d)}, expected an int defaulting to at least {least}")
        low = [x.get("argument") for x in p.get("decorators") or [] if x.get("type") == "min_value"]
        need(all(isinstance(v, int) and v >= 1 for v in low), f"param {node}: @minValue({t.src(low[0])}), below 1")
        return f"{node} = {d}"
    need(isinstance(node, int) and not isinstance(node, bool) and node >= least,
         f"{t.src(node)} days, expected a parameter or at least {least}")
    return str(node)


@rule("no Cosmos DB account, database or container deployed (only `existing`), no indexingPolicy or partitionKey")
def live_cosmos_never_deployed(x):
    """docs/deployment.md: the live container, its database and account are never deployed (a PUT could re-index it)."""
    bad = []
    for t in x.tpls.values():
        for sym, r in t.resources.items():
            rtype = r.get("type", "").lower()
            if rtype.startswith("microsoft.documentdb/") and not r.get("existing") and \
                    rtype not in (SQL_ROLE_DEF.lower(), SQL_ROLE_ASSIGNMENT.lower()):
                bad.append(f"{t.name} deploys {sym} ({r['type']})")
            bad += [f"{t.name} {sym} sets {k}" for _, k, _ in keys(r.get("config"))
                    if k in ("indexingPolicy", "partitionKey", "compositeIndexes")]
        for sym, mod in t.modules.items():
            path = (mod.get("detail") or {}).get("path") or ""
            if os.path.basename(path) not in x.tpls:
                bad.append(f"{t.name} module {sym} is {path!r}, not a template here")
    need(not bad, "; ".join(bad))


@rule("Cosmos DB archiver role: custom; exactly readMetadata, executeQuery, readChangeFeed, items read/delete; on the live container")
def cosmos_archiver_role(x):
    """docs/deployment.md role table: the archiver queries, reads and deletes items of the live container; nothing more."""
    t, args, got = x.cosmos()
    defs = [role.split(":", 1)[1] for app, role, _ in got.values() if app == "archiver" and role.startswith("custom:")]
    need(len(defs) == 1, f"the archiver's custom sqlRoleDefinitions: {defs or 'none'}; expected one")
    p = t.body(defs[0])[1].get("properties") or {}
    need(p.get("type") == "CustomRole", f"type {t.src(p.get('type'))}")
    scopes = t.follow(p.get("assignableScopes"))
    need(isinstance(scopes, list) and len(scopes) == 1, f"assignableScopes {t.src(scopes)}")
    x.live_container(t, args, scopes[0])
    exact_permissions(t, p, COSMOS_ARCHIVER_DATA_ACTIONS)


@rule("Cosmos DB assignments: archiver the custom role, reader the built-in Data Reader, on the live container only")
def cosmos_assignments(x):
    """docs/deployment.md role table, Cosmos DB column: each identity exactly its one role, on the live container only."""
    t, args, got = x.cosmos()
    archiver_role, moves = cosmos_role_defs(x)
    want = [("archiver", f"custom:{archiver_role}"), ("reader", COSMOS_DATA_READER)]
    if x.write_through:
        want.append(("reader", f"custom:{moves}"))
    want.sort()
    have = sorted((app, role) for app, role, _ in got.values())
    need(have == want, f"assignments {have}; expected {want}")
    for _, _, cfg in got.values():
        x.live_container(t, args, (cfg.get("properties") or {}).get("scope"))
    others = [f"{o.name} {s}" for o in x.tpls.values() if o is not t for s in o.of_type(SQL_ROLE_ASSIGNMENT)]
    need(not others, f"more sqlRoleAssignments: {others}")


def cosmos_role_defs(x):
    """(the archiver's sqlRoleDefinition, the reader's move-back one or None): the second exists with write-through only."""
    t, _, got = x.cosmos()
    archiver = [r.split(":", 1)[1] for a, r, _ in got.values() if a == "archiver" and r.startswith("custom:")]
    need(len(archiver) == 1, f"the archiver's custom sqlRoleDefinitions: {archiver or 'none'}; expected one")
    others = [d for d in t.of_type(SQL_ROLE_DEF) if d != archiver[0]]
    need(len(others) == (1 if x.write_through else 0), f"sqlRoleDefinitions besides the archiver's: "
         f"{others or 'none'}; expected {'one, the reader move-back role' if x.write_through else 'none'}")
    return archiver[0], (others[0] if others else None)


@rule("Cosmos DB role definition and assignments serialized (each waits for the one before: explicit dependsOn)")
def cosmos_serialized(x):
    """cosmos-roles.bicep: definitions and assignments take the account's lock; in parallel they fail with 412."""
    t, _, got = x.cosmos()
    deps = {s: {t.src(d) for d in cfg.get("dependsOn") or []} for s, (_, _, cfg) in got.items()}
    archiver_role, moves = cosmos_role_defs(x)
    if moves:  # the second definition takes the lock too: it waits in the chain like an assignment
        deps[moves] = {t.src(d) for d in t.body(moves)[1].get("dependsOn") or []}
    prev = archiver_role
    while deps:
        nxt = [s for s, d in deps.items() if prev in d]
        need(len(nxt) == 1, f"{sorted(deps)}: {'none' if not nxt else 'more than one'} with dependsOn [{prev}]")
        prev = nxt[0]
        del deps[prev]


@rule("Cosmos DB account `existing` in resourceGroup(cosmosResourceGroup); the cosmos-roles module deployed there")
def cosmos_resource_group(x):
    """docs/deployment.md: the account may live in another resource group (cosmosResourceGroup) than the template's."""
    acct, cfg = x.existing_cosmos(x.m)
    t, args, _ = x.cosmos()
    sym = x.module(t.name)[0]
    scopes = {acct: x.m.src(cfg.get("scope")), f"module {sym}": x.m.src(x.m.body(sym, "modules")[1].get("scope"))}
    want = "resourceGroup(cosmosResourceGroup)"
    need(set(scopes.values()) == {want}, f"scopes {scopes}; expected {want}")
    inner, icfg = x.existing_cosmos(t)  # in the module's resource group, and the account the apps read
    name, acct_name = args.get(t.src(icfg.get("name"))), x.m.src(cfg.get("name"))
    need("scope" not in icfg and name == acct_name, f"{t.name} {inner}: scope {t.src(icfg.get('scope'))}, "
         f"name {name}; expected no scope, {acct_name}")


@rule("archive writer role: exactly blob read, write, add, delete; no container delete")
def archive_writer_role(x):
    """docs/deployment.md role table: the archiver reads, writes and deletes blobs, and cannot delete the container."""
    props = x.m.body(x.custom_role("archiver"))[1].get("properties") or {}
    exact_permissions(x.m, props, ARCHIVE_WRITER_DATA_ACTIONS, ARCHIVE_WRITER_ACTIONS_ALLOWED)


@rule("write-through: the reader's archive mover role is exactly blob read, write (the copy's lease) and delete; only with readerUpstreamUrl")
def archive_mover_role(x):
    """docs/deployment.md, "Write-through": a move-back leases a copy, reads it and deletes it."""
    mover = x.mover_role()
    if mover:
        exact_permissions(x.m, x.m.body(mover)[1].get("properties") or {}, ARCHIVE_MOVER_DATA_ACTIONS)
        return "with write-through"
    return "none without write-through"


@rule("write-through: the reader's Cosmos DB move-back role is exactly readMetadata and items/create, on the live container")
def cosmos_move_back_role(x):
    """docs/deployment.md, "Write-through": a move-back creates the record; it never replaces, patches or deletes."""
    t, args, _ = x.cosmos()
    _, moves = cosmos_role_defs(x)
    if not moves:
        return "none without write-through"
    p = t.body(moves)[1].get("properties") or {}
    need(p.get("type") == "CustomRole", f"type {t.src(p.get('type'))}")
    scopes = t.follow(p.get("assignableScopes"))
    need(isinstance(scopes, list) and len(scopes) == 1, f"assignableScopes {t.src(scopes)}")
    x.live_container(t, args, scopes[0])
    exact_permissions(t, p, COSMOS_MOVE_BACK_DATA_ACTIONS)
    mod = x.module(t.name)[2]
    need(mod.get("readerMovesBack") == "writeThrough", f"readerMovesBack: {mod.get('readerMovesBack')}, expected writeThrough")
    return "with write-through"


@rule("write-through: READER_UPSTREAM_URL = readerUpstreamUrl exactly when write-through is on (writeThrough = !empty(readerUpstreamUrl))")
def upstream_setting(x):
    """docs/writes.md: without the parameter, the reader is read-only."""
    flag = x.m.src(x.m.vars.get("writeThrough", {}).get("value"))
    need(flag in ("not(empty(readerUpstreamUrl))", "!empty(readerUpstreamUrl)"), f"writeThrough = {flag}")
    need((x.m.params.get("readerUpstreamUrl") or {}).get("default") == "", "readerUpstreamUrl must default to ''")
    got = x.settings("reader").get("READER_UPSTREAM_URL")
    want = "readerUpstreamUrl" if x.write_through else None
    need(got == want, f"READER_UPSTREAM_URL = {got}, expected {want or 'unset'}")
    need("READER_UPSTREAM_URL" not in x.settings("archiver"), "the archiver has READER_UPSTREAM_URL")


@rule("reader auth: READER_AUTH* from the readerAuth parameters; an anonymous reader accepts only its gateway, "
      "never every source")
def reader_auth(x):
    """docs/auth.md: the profile's [auth] becomes app settings; in anonymous mode a gateway authenticates, so the
    reader's access restrictions deny every source but the gateway's addresses and subnets (none given: all denied)."""
    p = x.m.params.get("readerAuth") or {}
    allowed = next((d.get("argument") for d in p.get("decorators") or [] if d.get("type") == "allowed"), None)
    need(sorted(allowed or []) == ["anonymous", "bearer", "function-key"] and p.get("default") == "function-key",
         f"readerAuth allows {allowed}, default {p.get('default')!r}")
    want = {"READER_AUTH": "readerAuth", "READER_AUTH_ISSUERS": "readerAuthIssuers",
            "READER_AUTH_AUDIENCES": "readerAuthAudiences"}
    got = {n: x.settings("reader").get(n) for n in want}
    need(got == want, f"reader settings {got}, expected {want}")
    need(not any(n in x.settings("archiver") for n in want), "the archiver has READER_AUTH settings")

    key, env, cfg = x.sites()["reader"]
    sc = (cfg.get("properties") or {}).get("siteConfig") or {}
    default_action, rules = (x.m.src(sc.get(k), env) for k in ("ipSecurityRestrictionsDefaultAction",
                                                                  "ipSecurityRestrictions"))

    def pick(node, anonymous):
        """node with conditionals on the anonymous mode resolved, following variables and the loop item."""
        for _ in range(10):
            node = x.m.follow(node)
            op = node.get("operator") if isinstance(node, dict) else None
            if op and op["type"] == "conditional":
                cond = x.m.src(x.m.follow(op["operands"]["condition"]))
                need(cond == "equals(readerAuth, 'anonymous')", f"inbound rules decided by {cond}")
                node = op["operands"]["true_value" if anonymous else "false_value"]
            else:
                return node
        raise Fail("inbound rules nest too deep")

    inbound = env["app"].get("inbound")
    need(default_action == "app.inbound.defaultAction" and rules == "app.inbound.rules" and inbound is not None,
         f"reader: ipSecurityRestrictionsDefaultAction {default_action}, ipSecurityRestrictions {rules}")
    closed = pick(inbound, anonymous=True)
    need(isinstance(closed, dict) and closed.get("defaultAction") == "Deny",
         f"an anonymous reader's default action is {x.m.src(closed)}, not 'Deny'")
    gateway_params = {"readerGatewayIpRanges": "ipAddress", "readerGatewaySubnetIds": "vnetSubnetResourceId"}
    def rule_nodes(node):
        """Each access rule: a for-expression over a list, or one literal rule."""
        node = x.m.follow(node)
        fn = node.get("function") if isinstance(node, dict) else None
        if fn and fn["type"] == "concat":
            return [r for arg in fn["parameters"].values() if arg is not None for r in rule_nodes(arg)]
        return node if isinstance(node, list) else [node]

    for rule_node in rule_nodes(pick(closed.get("rules"), anonymous=True)):
        need(isinstance(rule_node, dict), f"an access rule {x.m.src(rule_node)}")
        loop, body = rule_node.get("loop_type") or {}, rule_node.get("config") or {}
        source = (loop.get("detail") or {}).get("array_name")
        need(source in gateway_params and body.get("action") == "Allow"
             and body.get(gateway_params.get(source, "")) == (loop.get("detail") or {}).get("item_name")
             and set(body) <= {"name", "action", "priority", gateway_params.get(source)},
             f"an anonymous reader admits {x.m.src(rule_node)}, not only the gateway's addresses and subnets")
    return "anonymous: Deny but the gateway"


# docs/deployment.md's role table, the Azure columns: one rule per cell (Infra.expected_roles).
for _which, _title in (("writer", "archiver: the archive writer role on the archive container"),
                       ("reader", "reader: Storage Blob Data Reader on the archive container"),
                       ("host", "each app: Storage Blob Data Owner on its own host account"),
                       ("mover", "write-through: the reader's archive mover role on the archive container"),
                       ("metrics", "each app: Monitoring Metrics Publisher on Application Insights")):
    rule(_title)(lambda x, which=_which: x.expect_roles(which))


@rule("no other Azure role assignments (nothing more on the archive, nothing across apps)")
def no_other_roles(x):
    """docs/deployment.md: each identity only what it uses; the role table is the whole list."""
    want = set().union(*x.expected_roles().values())
    counts = collections.Counter(x.role_assignments())
    need(counts.keys() <= want, f"unexpected {show_roles(counts.keys() - want)}")
    twice = [r for r, n in counts.items() if n > 1]
    need(not twice, f"assigned twice: {show_roles(twice)}")


@rule("every storage account: allowSharedKeyAccess false, allowBlobPublicAccess false, TLS1_2")
def storage_security(x):
    """docs/deployment.md: no shared keys (so no account keys or SAS to leak), no public blobs; TLS 1.2."""
    bad, n = [], 0
    for t in x.tpls.values():
        for sym in t.of_type(STORAGE):
            n += len(t.instances(sym))
            p = t.body(sym)[1].get("properties") or {}
            bad += [f"{t.name} {sym}: {k} {t.src(p[k]) if k in p else 'unset'}" for k, want in
                    (("allowSharedKeyAccess", False), ("allowBlobPublicAccess", False), ("minimumTlsVersion", "TLS1_2"))
                    if p.get(k) != want]
    need(n and not bad, "; ".join(bad) or "no storage accounts")
    return f"{n} accounts"


@rule("one host storage account per app (AzureWebJobsStorage__accountName), not shared, not the archive")
def host_accounts(x):
    """docs/deployment.md: each app its own host storage account, so neither identity can touch the other's."""
    hosts = {app: x.host(app) for app in APPS}
    need(len(set(hosts.values())) == len(APPS), f"shared host account: {hosts}")
    for app, h in hosts.items():
        need(h.split("[")[0] in x.m.of_type(STORAGE), f"{app}'s host {h} is not a storage account here")
        need(h.split("[")[0] != x.archive(), f"{app}'s host storage is the archive account")
    return ", ".join(f"{a}: {h}" for a, h in hosts.items())


@rule("archive: Cool tier, zone-redundant; no Archive access tier and no tierToArchive anywhere")
def never_archive_tier(x):
    """docs/deployment.md: the archive is Cool and zone-redundant; never Archive, which needs hours to rehydrate."""
    c = x.m.body(x.archive())[1]
    tier = (c.get("properties") or {}).get("accessTier")
    need(tier == "Cool", f"{x.archive()}: accessTier {x.m.src(tier)}")
    need((c.get("sku") or {}).get("name") == "Standard_ZRS", f"sku {x.m.src(c.get('sku'))}")
    bad = [f"{t.name} {sym}{path}.{k}" for t in x.tpls.values() for sym, r in t.resources.items()
           for path, k, v in keys(r.get("config"))
           if k.lower() == "tiertoarchive" or k.lower() in ("accesstier", "tier") and v == "Archive"]
    bad += [f"{t.name}: the text names tierToArchive or 'Archive'" for t in x.tpls.values()
            if re.search(r"tierToArchive|'Archive'", strip_comments(t.text))]
    need(not bad, "; ".join(bad))


@rule("archive account: versioning, blob and container soft delete, CanNotDelete lock")
def archive_kept(x):
    """docs/deployment.md: the archive holds the only copy of archived records: versioning, soft delete and a lock keep it."""
    p = x.m.body(x.archive_service())[1].get("properties") or {}
    need(p.get("isVersioningEnabled") is True, "isVersioningEnabled is not true")
    for k in ("deleteRetentionPolicy", "containerDeleteRetentionPolicy"):
        need((p.get(k) or {}).get("enabled") is True, f"{k} is not enabled")
    need([s for s in x.children(LOCK, x.archive())
          if (x.m.body(s)[1].get("properties") or {}).get("level") == "CanNotDelete"],
         f"no CanNotDelete lock scoped to {x.archive()}")


@rule(f"archive soft delete retention: blobs and containers kept at least {SOFT_DELETE_LEAST_DAYS} days")
def soft_delete_days(x):
    """docs/deployment.md: 30-day blob and container soft delete, so a deleted blob or container can still be restored."""
    p = x.m.body(x.archive_service())[1].get("properties") or {}
    return ", ".join(f"{k}: {days_at_least(x.m, (p.get(k) or {}).get('days'), SOFT_DELETE_LEAST_DAYS)}"
                     for k in ("deleteRetentionPolicy", "containerDeleteRetentionPolicy"))


@rule("lifecycle: a rule on the archive deleting previous versions; no rule acts on current blobs or snapshots")
def lifecycle_previous_versions_only(x):
    """docs/deployment.md: the lifecycle rule deletes only previous versions; current blobs are never tiered or deleted."""
    bad = [f"{t.name} {sym}{path}.{k}" for t in x.tpls.values() for sym, r in t.resources.items()
           for path, k, _ in keys(r.get("config")) if k in ("baseBlob", "snapshot")]
    need(not bad, "actions on current blobs or snapshots: " + "; ".join(bad))
    on_archive = 0
    for t in x.tpls.values():
        for sym in t.of_type(LIFECYCLE):
            policy = (t.body(sym)[1].get("properties") or {}).get("policy") or {}
            for r in t.follow(policy.get("rules")) or []:
                acts = (r.get("definition") or {}).get("actions") or {}
                need(set(acts) == {"version"} and set(acts["version"]) == {"delete"},
                     f"{t.name} {sym} rule {t.src(r.get('name'))}: actions {t.src(acts)}")
                on_archive += t is x.m and sym in x.children(LIFECYCLE, x.archive())
    need(on_archive, f"no lifecycle rule on {x.archive()} deletes previous versions")


@rule(f"lifecycle: enabled; previous versions deleted after previousVersionRetentionDays (default >= "
      f"{PREVIOUS_VERSION_LEAST_DAYS}, @minValue >= 1), not at once")
def lifecycle_keeps_versions(x):
    """docs/deployment.md: previous versions are deleted after previousVersionRetentionDays (90), so an overwrite can be undone."""
    found = []
    for sym in x.children(LIFECYCLE, x.archive()):
        for r in x.m.follow(((x.m.body(sym)[1].get("properties") or {}).get("policy") or {}).get("rules")) or []:
            delete = (((r.get("definition") or {}).get("actions") or {}).get("version") or {}).get("delete") or {}
            need(r.get("enabled") is True and set(delete) == {"daysAfterCreationGreaterThan"} and
                 x.m.src(delete["daysAfterCreationGreaterThan"]) == "previousVersionRetentionDays",
                 f"{sym} rule {x.m.src(r.get('name'))}: enabled {x.m.src(r.get('enabled'))}, version.delete "
                 f"{x.m.src(delete)}; expected true, daysAfterCreationGreaterThan: previousVersionRetentionDays")
            found.append(days_at_least(x.m, delete["daysAfterCreationGreaterThan"], PREVIOUS_VERSION_LEAST_DAYS))
    need(found, f"no lifecycle rule on {x.archive()}")
    return ", ".join(found)


@rule("Application Insights: local auth off (Entra ID only)")
def insights_entra_only(x):
    """docs/deployment.md: Application Insights accepts Entra ID only, so there is no instrumentation key to leak."""
    p = x.m.body(x.one(INSIGHTS))[1].get("properties") or {}
    need(p.get("DisableLocalAuth") is True, f"DisableLocalAuth {x.m.src(p.get('DisableLocalAuth'))}")


@rule("Application Insights: workspace-based (WorkspaceResourceId: the Log Analytics workspace deployed here)")
def insights_on_workspace(x):
    """docs/deployment.md: Application Insights with a Log Analytics workspace, whose logs the alerts query."""
    ws = x.one(WORKSPACE)
    got = x.m.src((x.m.body(x.one(INSIGHTS))[1].get("properties") or {}).get("WorkspaceResourceId"))
    need(got == f"{ws}.id", f"WorkspaceResourceId {got}, expected {ws}.id")


@rule("monitoring: main.bicep deploys monitoring.bicep, passing Application Insights' id and alertEmail (no default)")
def monitoring_module(x):
    """docs/deployment.md: every deployment has the alerts, mailed to alertEmail: a deployment must say where they go."""
    sym, _, args = x.module("monitoring.bicep")
    p = x.m.params.get("alertEmail")
    need(p and p.get("default") is None, f"main.bicep: alertEmail {'= ' + x.m.src(p['default']) if p else 'absent'}")
    for want in (f"{x.one(INSIGHTS)}.id", "alertEmail"):
        need(want in args.values(), f"module {sym} is not passed {want}: {args}")


@rule(f"alerts: {ALERTS} scheduled-query rules on Application Insights, enabled, mailed to alertEmail (action group)")
def alerts(x):
    """docs/deployment.md: five alerts mailed to alertEmail (docs/operations.md, "Alerts"); thresholds are tuning, not checked."""
    _, t, args = x.module("monitoring.bicep")
    groups = t.of_type(ACTION_GROUP)
    need(len(groups) == 1, f"{t.name}: expected one action group, found {groups or 'none'}")
    ag = t.body(groups[0])[1].get("properties") or {}
    mails = [args.get(t.src(r.get("emailAddress"))) for r in t.follow(ag.get("emailReceivers")) or []]
    need(ag.get("enabled") is True and "alertEmail" in mails,
         f"{groups[0]}: enabled {t.src(ag.get('enabled'))}, mails {t.src(ag.get('emailReceivers'))}, not alertEmail")
    rules = [i for sym in t.of_type(SCHEDULED_QUERY) for i in t.instances(sym)]
    need(len(rules) == ALERTS, f"{t.name}: {len(rules)} scheduledQueryRules, expected {ALERTS}")
    for key, env, cfg in rules:
        p = cfg.get("properties") or {}
        scopes = [args.get(t.src(s, env), t.src(s, env)) for s in t.follow(p.get("scopes")) or []]
        acts = [t.src(a, env) for a in t.follow((p.get("actions") or {}).get("actionGroups")) or []]
        need(p.get("enabled") is True and scopes == [f"{x.one(INSIGHTS)}.id"] and f"{groups[0]}.id" in acts,
             f"{key}: enabled {t.src(p.get('enabled'))}, scopes {scopes}, actionGroups {acts}")
        need([c for c in ((p.get("criteria") or {}).get("allOf") or []) if c.get("query")], f"{key}: no query")
    return ", ".join(key for key, _, _ in rules)


WORKBOOK = "Microsoft.Insights/workbooks"


@rule("dashboard: the workbook deployed by default, from workbook.json, on the archive, the Cosmos account and "
      "Application Insights")
def dashboard(x):
    """docs/operations.md, "The dashboard": deployed unless deployWorkbook=false; its queries are workbook.json's
    (their fields are checked against real log lines by the Rust tests) and its charts point at this deployment."""
    p = x.m.params.get("deployWorkbook") or {}
    need(p.get("type") == "bool" and p.get("default") is True, f"deployWorkbook: {p.get('type')} = {p.get('default')}")
    books = [s for s, r in x.m.resources.items() if r.get("type", "").lower() == WORKBOOK.lower()]
    need(len(books) == 1, f"workbooks: {books}")
    key = books[0]
    need(x.m.condition(key) == "deployWorkbook", f"{key} deployed if ({x.m.condition(key)})")
    props = x.m.body(key)[1].get("properties") or {}
    need(x.m.src(props.get("sourceId")) == f"{x.one(INSIGHTS)}.id", f"sourceId {x.m.src(props.get('sourceId'))}")
    data = x.m.src(x.m.follow(props.get("serializedData")))
    want = [("loadTextContent('workbook.json')", None), ("'__ARCHIVE_ACCOUNT_ID__'", f"{x.archive()}.id"),
            ("'__COSMOS_ACCOUNT_ID__'", f"{x.existing_cosmos(x.m)[0]}.id"), ("'__INSIGHTS_ID__'", f"{x.one(INSIGHTS)}.id")]
    for placeholder, value in want:
        need(placeholder in data and (value is None or f"{placeholder}, {value})" in data), f"serializedData = {data}")
    with open(os.path.join(os.path.dirname(x.m.path), "workbook.json"), encoding="utf-8") as f:
        book = json.load(f)
    text = json.dumps(book)
    for placeholder, _ in want[1:]:
        need(placeholder.strip("'") in text, f"workbook.json does not use {placeholder}")
    queries = [i for i in book.get("items", []) if i.get("type") == 3]
    need(len(queries) >= 8, f"workbook.json has {len(queries)} queries")
    return f"{key}: {len(queries)} queries, {sum(i.get('type') == 10 for i in book['items'])} metric charts"


@rule("Function Apps: each its own Flex Consumption plan, custom runtime, system-assigned identity, HTTPS/TLS 1.2 only")
def flex_apps(x):
    """docs/deployment.md: Flex Consumption, a plan and a system-assigned identity per app; the custom (Rust) handlers."""
    plans = set()
    for app, (key, env, cfg) in x.sites().items():
        p = cfg.get("properties") or {}
        farm = x.m.src(p.get("serverFarmId"), env)
        need(farm.endswith(".id") and farm.split("[")[0] in x.m.of_type(PLAN), f"{app}: serverFarmId {farm}")
        plans.add(farm)
        sku = x.m.body(farm.split("[")[0])[1].get("sku") or {}
        need((sku.get("tier"), sku.get("name")) == ("FlexConsumption", "FC1"), f"{app}: plan sku {x.m.src(sku)}")
        rt = x.m.obj(p.get("functionAppConfig") or {}).get("runtime") or {}
        need(rt.get("name") == "custom", f"{app}: runtime {x.m.src(rt)}")
        identity = cfg.get("identity") or {}
        need(identity.get("type") == "SystemAssigned", f"{app}: identity {x.m.src(identity)}")
        sc = p.get("siteConfig") or {}
        need((p.get("httpsOnly"), sc.get("minTlsVersion"), sc.get("ftpsState")) == (True, "1.2", "Disabled"),
             f"{app}: httpsOnly {x.m.src(p.get('httpsOnly'))}, minTlsVersion {x.m.src(sc.get('minTlsVersion'))}, "
             f"ftpsState {x.m.src(sc.get('ftpsState'))}")
    need(len(plans) == len(APPS), f"apps share a plan: {sorted(plans)}")


@rule("deploys without downtime: both apps' siteUpdateStrategy from siteUpdateStrategy (RollingUpdate by default); "
      "the reader keeps readerAlwaysReady (default >= 2) instances of its http group warm")
def no_downtime_deploys(x):
    """docs/deployment.md, "Deploys without downtime": a rolling update drains and replaces instances in batches,
    so requests in flight finish and a run is not cut; with two always-ready reader instances one serves while the
    other is replaced, and no request meets a cold start."""
    p = x.m.params.get("siteUpdateStrategy") or {}
    allowed = [x.m.src(d) for d in (p.get("decorators") or []) if isinstance(d, dict)]
    need(p.get("default") == "RollingUpdate", f"siteUpdateStrategy default {x.m.src(p.get('default'))}")
    need(any("'RollingUpdate'" in a and "'Recreate'" in a for a in allowed), f"siteUpdateStrategy allowed: {allowed}")
    for app, (key, env, cfg) in x.sites().items():
        fac = x.m.obj((cfg.get("properties") or {}).get("functionAppConfig") or {})
        got = x.m.src((fac.get("siteUpdateStrategy") or {}).get("type"), env)
        need(got == "siteUpdateStrategy", f"{app}: siteUpdateStrategy.type = {got}")
    ready = x.m.params.get("readerAlwaysReady") or {}
    need(isinstance(ready.get("default"), int) and ready["default"] >= 2,
         f"readerAlwaysReady default {x.m.src(ready.get('default'))}, expected at least 2")
    key, env, cfg = x.sites()["reader"]
    fac = x.m.obj((cfg.get("properties") or {}).get("functionAppConfig") or {})
    node = (fac.get("scaleAndConcurrency") or {}).get("alwaysReady")
    ops = (node.get("operator") or {}).get("operands") or {} if isinstance(node, dict) else {}
    item, field = ops.get("operand_1"), ops.get("operand_2")
    if isinstance(env.get(item), dict) and field in env[item]:
        node = env[item][field]  # the loop item's own field (app.alwaysReady)
    got = x.m.src(node, env)
    # (pycep reads `a > 0 ? b : c` as greater_than(a, 0 ? b : c): the parts are checked, not the shape)
    want = ["greater_than(readerAlwaysReady, 0 ?", "[{name: 'http', instanceCount: readerAlwaysReady}] : []"]
    need(all(w in got for w in want), f"reader alwaysReady = {got}, expected readerAlwaysReady > 0 ? "
         "[{name: 'http', instanceCount: readerAlwaysReady}] : []")
    return f"default RollingUpdate, {ready['default']} always-ready reader instances"


@rule("alerts: the \"no run\" alert waits 26 hours after the first deployment (kept in a resource group tag, "
      "deployedAt = utcNow() the first time) before a missing first run")
def no_run_alert_after_deploys(x):
    """docs/operations.md, "Alerts": after the first deployment the first nightly run may be up to a day away; a
    redeployment must not silence the alert again (the time is kept in a tag of the resource group)."""
    p = x.m.params.get("deployedAt") or {}
    need(x.m.src(p.get("default")).startswith("utcNow("), f"deployedAt default {x.m.src(p.get('default'))}")
    first = x.m.src(x.m.vars.get("firstDeployed", {}).get("value"))
    need(first == "contains(groupTags, firstDeployedTag) ? groupTags[firstDeployedTag] : deployedAt",
         f"firstDeployed = {first}: not the tag's value, else deployedAt")
    tags = [s for s, r in x.m.resources.items() if r.get("type", "").lower() == "microsoft.resources/tags"]
    need(len(tags) == 1, f"Microsoft.Resources/tags resources: {tags}")
    written = x.m.src((x.m.body(tags[0])[1].get("properties") or {}).get("tags"))
    need(written == "union(groupTags, {'${firstDeployedTag}': firstDeployed})", f"{tags[0]} writes {written}")
    _, t, args = x.module("monitoring.bicep")
    need(args.get("firstDeployed") == "firstDeployed", f"monitoring is passed firstDeployed = {args.get('firstDeployed')}")
    rules = [a for a in t.follow("alerts") if isinstance(a, dict) and a.get("name") == "archive-no-run"]
    need(len(rules) == 1, "no archive-no-run alert")
    query = t.src(rules[0].get("query")).replace("\\'", "'")
    want = "(isnull(last) and now() > todatetime('${firstDeployed}') + 26h) or last < ago(26h)"
    need(want in query, f"archive-no-run query {query}; expected it to hold {want}")


@rule("app settings: each app has the settings it needs to start")
def required_settings(x):
    """The host and the handlers fail at start without these; only the template sets them (docs/deployment.md)."""
    for app in APPS:
        missing = [n for n in COMMON_SETTINGS + APP_SETTINGS[app] if n not in x.settings(app)]
        need(not missing, f"{app} lacks {missing}")


@rule("app settings: both apps on the archive account and container, the existing Cosmos DB account, Entra ID "
      "telemetry, JSON logs")
def wired_settings(x):
    """docs/deployment.md: the apps use the archive (no host account) and the live account; telemetry by Entra ID only; the
    alert queries read the run summary as a JSON line (LOG_FORMAT=json)."""
    arch = x.archive()
    need(arch not in {x.host(a).split("[")[0] for a in APPS}, f"the archive {arch} is a host account")
    want = {"ARCHIVE_BLOB_ENDPOINT": f"{arch}.properties.primaryEndpoints.blob",
            "ARCHIVE_CONTAINER": x.m.src(x.m.body(x.archive_container())[1].get("name")),
            "COSMOS_ENDPOINT": f"{x.existing_cosmos(x.m)[0]}.properties.documentEndpoint",
            "APPLICATIONINSIGHTS_CONNECTION_STRING": f"{x.one(INSIGHTS)}.properties.ConnectionString",
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "'Authorization=AAD'", "LOG_FORMAT": "'json'"}
    bad = [f"{app}: {n} = {x.settings(app).get(n, 'unset')}, expected {w}"
           for app in APPS for n, w in want.items() if x.settings(app).get(n) != w]
    need(not bad, "; ".join(bad))


@rule("archiver: dry run by default (ARCHIVE_DRY_RUN from a bool parameter defaulting to true)")
def dry_run_default(x):
    """docs/deployment.md: the archiver starts in dry run; it writes nothing until redeployed with archiveDryRun=false."""
    v = x.settings("archiver").get("ARCHIVE_DRY_RUN", "unset")
    mt = re.fullmatch(r"(\w+) \? 'true' : 'false'|(?:toLower\()?string\((\w+)\)\)?", v)
    p = x.m.params.get(mt.group(1) or mt.group(2)) if mt else None
    need(p, f"ARCHIVE_DRY_RUN = {v}, not <param> ? 'true' : 'false'")
    need(p.get("type") == "bool" and p.get("default") is True,
         f"its parameter: {p.get('type')} = {x.m.src(p.get('default'))}, expected bool = true")


@rule("archiver: shares the container's throughput by default (budget 'auto', priority 'low')")
def shares_throughput(x):
    """docs/deployment.md, "Sharing the throughput": the archiver spends a share of the container's throughput
    (ARCHIVE_MAX_RU_PER_SECOND auto) at low priority unless the deployment says otherwise."""
    settings = x.settings("archiver")
    for name, want, allowed in (("ARCHIVE_MAX_RU_PER_SECOND", "auto", None), ("ARCHIVE_PRIORITY", "low", ["high", "low"])):
        v = settings.get(name, "unset")
        p = x.m.params.get(v)
        need(p, f"{name} = {v}, not a parameter")
        need(p.get("type") == "string" and p.get("default") == want,
             f"{name}'s parameter {v}: {p.get('type')} = {x.m.src(p.get('default'))}, expected string = '{want}'")
        got = next((d.get("argument") for d in p.get("decorators") or [] if d.get("type") == "allowed"), None)
        need(allowed is None or sorted(got or []) == allowed, f"{v} allows {got}, expected {allowed}")


@rule("no secrets: no COSMOS_KEY, ARCHIVE_BLOB_SAS, AzureWebJobsStorage connection string, AccountKey=, listKeys()")
def no_secrets(x):
    """docs/deployment.md: no keys, SAS tokens or connection strings with keys, in app settings or anywhere in the templates."""
    bad = []
    for app in APPS:
        for n, v in x.settings(app).items():
            # Names that end like a secret's but hold none: a connection string with no key, a path.
            if n in SECRET_SETTINGS or SECRET_NAME.search(n) and n not in NOT_SECRETS:
                bad.append(f"{app}: setting {n}")
            if SECRET_TEXT.search(v) or re.search(r"\blist\w*\(", v):
                bad.append(f"{app}: {n} = {v}")
    for t in x.tpls.values():
        mt = SECRET_TEXT.search(strip_comments(t.text))
        if mt:
            bad.append(f"{t.name}: {mt.group(0)!r}")
    need(not bad, "; ".join(bad))


@rule("outputs scripts/deploy.sh reads: archiverApp, readerApp, readerHostName")
def deploy_outputs(x):
    """scripts/deploy.sh deploys each zip to the app these outputs name, and probes the reader's host name."""
    sites = {app: key for app, (key, _, _) in x.sites().items()}
    want = {"archiverApp": f"{sites['archiver']}.name", "readerApp": f"{sites['reader']}.name",
            "readerHostName": f"{sites['reader']}.properties.defaultHostName"}
    for name, w in want.items():
        got = x.m.src((x.m.outputs.get(name) or {}).get("value"))
        need(got == w, f"output {name} = {got}, expected {w}")


# --- Running them -------------------------------------------------------------------------------

def check(what, fn, failed):
    try:
        detail = fn()
    except Exception as e:  # noqa: BLE001  (Fail, or a structure not as expected)
        why = str(e) if isinstance(e, Fail) else f"{type(e).__name__}: {e}"
        failed.append(f"{what}: {why}")
        print(f"FAIL {what}: {why}")
        return None
    print(f"ok  {what}" + (f" ({detail})" if isinstance(detail, str) else ""))
    return detail


def run(infra):
    """Checks the templates in infra; prints a line per rule; 0 if all passed, else 1."""
    failed, tpls = [], {}
    for path in sorted(glob.glob(os.path.join(infra, "*.bicep"))):
        name = os.path.basename(path)
        tpls[name] = check(f"parse infra-bicep/{name}", lambda path=path: Template(path), failed)
    tpls = {n: t for n, t in tpls.items() if t}
    if "main.bicep" not in tpls:
        print(f"FAIL {infra}/main.bicep is missing or does not parse; nothing more checked")
        return 1
    for write_through in (False, True):
        x = Infra(tpls, write_through)
        case = " [write-through on]" if write_through else ""
        for title, fn in RULES:
            check(title + case, lambda fn=fn: fn(x), failed)
    if failed:
        print(f"\ncheck-infra: {len(failed)} failed:\n" + "\n".join(f"  - {f}" for f in failed))
        return 1
    print("\ncheck-infra: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "infra-bicep")))
