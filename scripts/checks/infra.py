#!/usr/bin/env python3
"""Static checks of infra-bicep/: the properties the templates must keep.

No Bicep compiler runs here, so this parses every infra-bicep/*.bicep with
pycep-parser (PyPI: pycep-parser) and asserts, on the parsed templates, what
must never regress: no secrets in app settings, least-privilege role
assignments, the live Cosmos DB container never deployed, the archive never on
the Archive tier and never deleted by lifecycle rules, and so on. Prints one
line per check and exits 1 listing every failed one.

    python3 scripts/check-infra.py [infra-dir]

pycep hands back identifiers and string literals alike as Python strings: a
string that names a parameter, variable, resource or module is read as a
reference to it. Its binary operators have no precedence (`a > 0 ? b : c`
comes back as `a > (0 ? b : c)`); that form is read as the conditional it is.
"""
import glob
import os
import re
import sys

try:
    from pycep import BicepParser
except ImportError:
    sys.exit("check-infra: pycep-parser is missing (pip install pycep-parser)")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
INFRA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "infra-bicep")
PARSER = BicepParser()

# Built-in Azure role ids.
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
COSMOS_DATA_READER = "00000000-0000-0000-0000-000000000001"
ROLE_NAMES = {
    BLOB_DATA_OWNER: "Storage Blob Data Owner",
    BLOB_DATA_CONTRIBUTOR: "Storage Blob Data Contributor",
    BLOB_DATA_READER: "Storage Blob Data Reader",
    METRICS_PUBLISHER: "Monitoring Metrics Publisher",
    COSMOS_DATA_READER: "Cosmos DB Built-in Data Reader",
}
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
FAKE_HASH = "q1w2e3r4t5y6u"  # stands in for uniqueString(...): 13 lowercase letters and digits

BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/"
ARCHIVE_WRITER_DATA_ACTIONS = {BLOBS + a for a in ("read", "write", "add/action", "delete")}
ARCHIVE_WRITER_ACTIONS_ALLOWED = {"Microsoft.Storage/storageAccounts/blobServices/containers/read"}
COSMOS_ARCHIVER_DATA_ACTIONS = {
    "Microsoft.DocumentDB/databaseAccounts/readMetadata",
    "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/executeQuery",
    "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/read",
    "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/delete",
}
MONITORING_PARAMS = {
    "namePrefix", "location", "appInsightsId", "alertEmail", "readerFunctionName", "archiverFunctionName",
    "reader5xxPercent", "readerP95Ms", "partialRunsInARow",
}
COMMON_SETTINGS = [
    "AzureWebJobsStorage__accountName", "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "COSMOS_ENDPOINT", "COSMOS_DATABASE", "COSMOS_CONTAINER",
    "ARCHIVE_BLOB_ENDPOINT", "ARCHIVE_CONTAINER", "ARCHIVE_AGE_FIELD", "LOG_FORMAT",
]
ARCHIVER_SETTINGS = [
    "ARCHIVE_AFTER_DAYS", "ARCHIVE_DRY_RUN", "ARCHIVE_CONCURRENCY", "ARCHIVE_MAX_RU_PER_SECOND",
    "ARCHIVE_TIME_BUDGET_SECONDS", "ARCHIVE_SCHEDULE", "AzureWebJobs.ArchiveBillingRecords.Disabled",
]
READER_SETTINGS = ["READER_TIMEOUT_SECONDS"]
SECRET_SETTINGS = {"COSMOS_KEY", "ARCHIVE_BLOB_SAS", "AzureWebJobsStorage", "APPINSIGHTS_INSTRUMENTATIONKEY"}
SECRET_TEXT = re.compile(r"AccountKey=|SharedAccessSignature=|\bsig=|\blist(Keys|AccountSas|ServiceSas|ConnectionStrings)\s*\(",
                         re.IGNORECASE)


class Fail(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Fail(msg)


# --- Normalized expressions ----------------------------------------------------------
# Literals stay Python values (str, int, bool, None, list, dict); the rest become:

class Ref:
    """A symbol (or a function call's result) followed by accessor steps: ('.', name), ('[', index), ('()', name)."""

    def __init__(self, base, steps=()):
        self.base, self.steps = base, tuple(steps)


class Call:
    def __init__(self, name, args):
        self.name, self.args = name, list(args)


class Op:
    def __init__(self, kind, operands):
        self.kind, self.operands = kind, list(operands)


class Interp:
    """An interpolated string: literal text and expressions."""

    def __init__(self, parts):
        self.parts = parts


BINARY = {
    "greater_than": ">", "greater_than_or_equals": ">=", "less_than": "<", "less_than_or_equals": "<=",
    "equals": "==", "not_equals": "!=", "equals_case_insensitive": "=~", "not_equals_case_insensitive": "!~",
    "and": "&&", "or": "||", "coalesce": "??", "add": "+", "minus": "-", "multiply": "*", "divide": "/",
    "modulo": "%",
}


def camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(w.title() for w in rest)


def split_interp(s):
    """'a${x}b' -> ['a', ('expr', <ast of x>), 'b'] (the inner expressions parsed by pycep)."""
    parts, i, lit = [], 0, ""
    while i < len(s):
        if s.startswith("${", i):
            depth, j, quote = 1, i + 2, False
            while j < len(s) and depth:
                c = s[j]
                if c == "'":
                    quote = not quote
                elif not quote and c == "{":
                    depth += 1
                elif not quote and c == "}":
                    depth -= 1
                j += 1
            if lit:
                parts.append(lit)
                lit = ""
            inner = s[i + 2:j - 1]
            parts.append(("expr", PARSER.parse(text=f"var x = {inner}\n")["variables"]["x"]["value"]))
            i = j
        else:
            lit += s[i]
            i += 1
    if lit:
        parts.append(lit)
    return parts


class Template:
    def __init__(self, path, text, ast):
        self.path, self.text, self.ast = path, text, ast
        self.name = os.path.basename(path)
        self.params = ast.get("parameters") or {}
        self.vars = ast.get("variables") or {}
        self.resources = ast.get("resources") or {}
        self.modules = ast.get("modules") or {}
        self.outputs = ast.get("outputs") or {}
        self.symbols = set(self.params) | set(self.vars) | set(self.resources) | set(self.modules)
        self._var_cache = {}

    # -- structure
    def body(self, sym, kind="resources"):
        """(loop detail or None, condition, config) of a resource or module."""
        cfg = getattr(self, kind)[sym].get("config") or {}
        if isinstance(cfg, dict) and ("loop_type" in cfg or "condition" in cfg) and "config" in cfg:
            loop = (cfg.get("loop_type") or {}).get("detail")
            return loop, cfg.get("condition"), cfg.get("config") or {}
        return None, None, cfg

    def of_type(self, rtype, existing=None):
        out = []
        for sym, r in self.resources.items():
            if (r.get("type") or "").lower() == rtype.lower() and (existing is None or bool(r.get("existing")) == existing):
                out.append(sym)
        return out

    def var(self, name):
        if name not in self._var_cache:
            self._var_cache[name] = None  # cycle guard
            self._var_cache[name] = self.norm(self.vars[name].get("value"))
        return self._var_cache[name]

    def param_default(self, name):
        return self.norm(self.params[name].get("default"))

    def decorators(self, name):
        return {d.get("type"): d.get("argument") for d in self.params[name].get("decorators") or []}

    def instances(self, sym, kind="resources"):
        """[(app index or None, env, config)] of a resource or module: one per loop item."""
        loop, _, cfg = self.body(sym, kind)
        if not loop:
            return [(None, {}, cfg)]
        items = self.norm(loop.get("array_name"))
        items = self.deref(items)
        need(isinstance(items, list), f"{sym}: loops over {render(items)}, not a literal array")
        out = []
        for k, item in enumerate(items):
            env = {loop["item_name"]: item}
            if loop.get("index_name"):
                env[loop["index_name"]] = k
            out.append((k, env, cfg))
        return out

    def loop_items(self, sym):
        """Names of the items a resource loops over (for readable indexes), or None."""
        if sym in self.resources:
            loop, _, _ = self.body(sym)
            if loop:
                items = self.deref(self.norm(loop.get("array_name")))
                if isinstance(items, list):
                    return [i.get("name") if isinstance(i, dict) else None for i in items]
        return None

    # -- normalizing
    def norm(self, n, env=None):
        env = env or {}
        if n is None or isinstance(n, (bool, int, float)):
            return n
        if isinstance(n, str):
            if "${" in n:
                parts = [p if isinstance(p, str) else self.norm(p[1], env) for p in split_interp(n)]
                return Interp(parts)
            if n in env:
                return env[n]
            if n in self.symbols:
                return Ref(n)
            return n
        if isinstance(n, list):
            return [self.norm(x, env) for x in n]
        if isinstance(n, dict):
            if "function" in n:
                f = n["function"]
                ps = f.get("parameters") or {}
                name = ps.get("func_name") if f["type"] == "list_func" else camel(f["type"])
                args = [self.norm(v, env) for k, v in ps.items() if v is not None and k != "func_name"]
                if name == "concat" and args and all(isinstance(a, list) for a in args):
                    return [x for a in args for x in a]
                return Call(name, args)
            if "operator" in n:
                return self.norm_op(n["operator"], env)
            if "loop_type" in n:
                return Op("for", [n])
            return {k: self.norm(v, env) for k, v in n.items()}
        return n

    def norm_op(self, op, env):
        kind, ops = op["type"], op.get("operands") or {}
        if kind in ("property_accessor", "index_accessor", "function_accessor"):
            base, steps = self.chain(op)
            cur = self.norm(base, env) if not isinstance(base, Ref) else base
            for step in steps:
                if step[0] == "[":
                    idx = self.norm(step[1], env)
                    d = self.deref(idx)
                    step = ("[", d if isinstance(d, int) else idx)
                cur = apply_step(cur, step)
            return cur
        if kind == "conditional":
            return Op("?", [self.norm(ops.get("condition"), env), self.norm(ops.get("true_value"), env),
                            self.norm(ops.get("false_value"), env)])
        if kind in BINARY:
            a, b = ops.get("operand_1"), ops.get("operand_2")
            # pycep: `a > 0 ? x : y` comes back as `a > (0 ? x : y)`.
            if isinstance(b, dict) and (b.get("operator") or {}).get("type") == "conditional":
                c = b["operator"]["operands"]
                cond = Op(BINARY[kind], [self.norm(a, env), self.norm(c.get("condition"), env)])
                return Op("?", [cond, self.norm(c.get("true_value"), env), self.norm(c.get("false_value"), env)])
            return Op(BINARY[kind], [self.norm(a, env), self.norm(b, env)])
        return Op(kind, [self.norm(v, env) for v in ops.values()])

    def chain(self, op):
        """Flattens pycep's right-nested accessors: (base node, [steps])."""
        kind, ops = op["type"], op["operands"]
        if kind == "property_accessor":
            base, steps = self.chain_of(ops["operand_1"])
            return base, steps + self.tail(ops["operand_2"])
        if kind == "index_accessor":
            base, steps = self.chain_of(ops["operand_1"])
            return base, steps + [("[", ops["operand_2"])]
        base, steps = self.chain_of(ops["operand_1"])
        return base, steps + [("()", ops["func_name"])]

    def chain_of(self, n):
        if isinstance(n, dict) and (n.get("operator") or {}).get("type") in (
                "property_accessor", "index_accessor", "function_accessor"):
            return self.chain(n["operator"])
        return n, []

    def tail(self, n):
        if isinstance(n, str):
            return [(".", n)]
        op = n.get("operator") or {}
        ops = op.get("operands") or {}
        if op.get("type") == "property_accessor":
            return self.tail(ops["operand_1"]) + self.tail(ops["operand_2"])
        if op.get("type") == "index_accessor":
            return self.tail(ops["operand_1"]) + [("[", ops["operand_2"])]
        if op.get("type") == "function_accessor":
            return self.tail(ops["operand_1"]) + [("()", ops["func_name"])]
        return [(".", render(n))]

    def deref(self, n):
        """Follows references to variables."""
        seen = 0
        while isinstance(n, Ref) and isinstance(n.base, str) and n.base in self.vars and seen < 20:
            v = self.var(n.base)
            for step in n.steps:
                v = apply_step(v, step)
            n, seen = v, seen + 1
        return n

    # -- rendering with readable indexes: sites[0] -> sites[archiver]
    def show(self, n):
        return render(n, self)

    # -- evaluating (names), with test values for parameters
    def evaluate(self, n, values):
        n = self.deref(n)
        if n is None or isinstance(n, (bool, int, float, str)):
            return n
        if isinstance(n, list):
            return [self.evaluate(x, values) for x in n]
        if isinstance(n, dict):
            return {k: self.evaluate(v, values) for k, v in n.items()}
        if isinstance(n, Interp):
            return "".join(p if isinstance(p, str) else as_text(self.evaluate(p, values)) for p in n.parts)
        if isinstance(n, Ref):
            if isinstance(n.base, str) and n.base in self.params:
                v = values[n.base] if n.base in values else self.evaluate(self.param_default(n.base), values)
            elif isinstance(n.base, Call):
                v = self.evaluate(n.base, values)
            else:
                raise Fail(f"cannot evaluate {self.show(n)}")
            for kind, key in n.steps:
                need(kind != "()", f"cannot evaluate {self.show(n)}")
                v = v[self.evaluate(key, values) if kind == "[" else key]
            return v
        if isinstance(n, Call):
            a = [self.evaluate(x, values) for x in n.args]
            f = {
                "take": lambda s, k: s[:k], "replace": lambda s, o, r: s.replace(o, r),
                "toLower": lambda s: s.lower(), "toUpper": lambda s: s.upper(),
                "uniqueString": lambda *_: FAKE_HASH, "string": as_text, "length": len,
                "concat": lambda *xs: "".join(as_text(x) for x in xs),
                "resourceGroup": lambda *_: {"id": "/subscriptions/s/resourceGroups/rg", "name": "rg"},
                "substring": lambda s, i, k=None: s[i:] if k is None else s[i:i + k],
            }.get(n.name)
            need(f is not None, f"cannot evaluate {n.name}()")
            return f(*a)
        if isinstance(n, Op) and n.kind == "?":
            c, t, e = n.operands
            return self.evaluate(t if self.evaluate(c, values) else e, values)
        if isinstance(n, Op) and n.kind in (">", ">=", "<", "<=", "==", "!="):
            x, y = (self.evaluate(o, values) for o in n.operands)
            return {">": x > y, ">=": x >= y, "<": x < y, "<=": x <= y, "==": x == y, "!=": x != y}[n.kind]
        raise Fail(f"cannot evaluate {self.show(n)}")


def as_text(v):
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def apply_step(cur, step):
    kind, key = step
    if kind == "." and isinstance(cur, dict) and key in cur:
        return cur[key]
    if kind == "[" and isinstance(cur, list) and isinstance(key, int) and 0 <= key < len(cur):
        return cur[key]
    if isinstance(cur, Ref):
        return Ref(cur.base, cur.steps + (step,))
    return Ref(cur, (step,))


def render(n, tpl=None):
    if n is None:
        return "null"
    if isinstance(n, bool):
        return "true" if n else "false"
    if isinstance(n, (int, float)):
        return str(n)
    if isinstance(n, str):
        return "'" + n + "'"
    if isinstance(n, list):
        return "[" + ", ".join(render(x, tpl) for x in n) + "]"
    if isinstance(n, dict):
        return "{" + ", ".join(f"{k}: {render(v, tpl)}" for k, v in n.items()) + "}"
    if isinstance(n, Interp):
        return "'" + "".join(p if isinstance(p, str) else "${" + render(p, tpl) + "}" for p in n.parts) + "'"
    if isinstance(n, Ref):
        out = n.base if isinstance(n.base, str) else render(n.base, tpl)
        names = tpl.loop_items(n.base) if tpl and isinstance(n.base, str) else None
        for kind, key in n.steps:
            if kind == ".":
                out += "." + key
            elif kind == "()":
                out += "." + key + "()"
            elif isinstance(key, int) and names and key < len(names) and names[key]:
                out += f"[{names[key]}]"
                names = None
            else:
                out += "[" + (key if isinstance(key, str) else render(key, tpl)) + "]"
        return out
    if isinstance(n, Call):
        return n.name + "(" + ", ".join(render(a, tpl) for a in n.args) + ")"
    if isinstance(n, Op):
        if n.kind == "?":
            c, t, e = (render(o, tpl) for o in n.operands)
            return f"({c} ? {t} : {e})"
        if n.kind in BINARY.values():
            return f"{render(n.operands[0], tpl)} {n.kind} {render(n.operands[1], tpl)}"
        return f"{n.kind}(" + ", ".join(render(o, tpl) if not isinstance(o, dict) else "..." for o in n.operands) + ")"
    return repr(n)


def walk(n, path=""):
    """Every (path, key, value) of a raw pycep structure."""
    if isinstance(n, dict):
        for k, v in n.items():
            yield path, k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(n, list):
        for i, v in enumerate(n):
            yield from walk(v, f"{path}[{i}]")


def strip_comments(text):
    out, i, quote = [], 0, False
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                out.append(text[i:i + 2])
                i += 2
                continue
            if c == "'":
                quote = False
        elif c == "'":
            quote = True
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


# --- The checks ------------------------------------------------------------------------

class Checks:
    def __init__(self):
        self.failed = []

    def run(self, what, fn):
        try:
            detail = fn()
        except Fail as e:
            self.failed.append(f"{what}: {e}")
            print(f"FAIL {what}: {e}")
            return
        except Exception as e:  # noqa: BLE001  (a structure not as expected)
            self.failed.append(f"{what}: {type(e).__name__}: {e}")
            print(f"FAIL {what}: {type(e).__name__}: {e}")
            return
        print(f"ok  {what}" + (f" ({detail})" if detail else ""))


def main():
    checks = Checks()
    files = sorted(glob.glob(os.path.join(INFRA, "*.bicep")))
    if not files:
        print(f"FAIL no .bicep files in {INFRA}")
        return 1
    tpls = {}
    for f in files:
        name = os.path.basename(f)

        def parse(f=f, name=name):
            text = open(f, encoding="utf-8").read()
            try:
                ast = PARSER.parse(text=text)
            except Exception as e:  # noqa: BLE001
                raise Fail(f"does not parse: {str(e).splitlines()[0][:200]}")
            need(isinstance(ast, dict), "does not parse")
            tpls[name] = Template(f, text, ast)

        checks.run(f"parse infra-bicep/{name}", parse)
    if "main.bicep" not in tpls:
        print("FAIL infra-bicep/main.bicep is missing or does not parse; nothing more checked")
        return 1
    m = tpls["main.bicep"]
    ctx = Context(m, tpls)
    for what, fn in ctx.all_checks():
        checks.run(what, fn)
    if checks.failed:
        print(f"\ncheck-infra: {len(checks.failed)} failed:")
        for f in checks.failed:
            print("  -", f)
        return 1
    print("\ncheck-infra: all passed")
    return 0


class Context:
    """What main.bicep deploys, found by meaning rather than by symbol name."""

    def __init__(self, m, tpls):
        self.m, self.tpls = m, tpls
        self._sites = None

    # -- finding things
    def one(self, rtype, existing=False, tpl=None):
        tpl = tpl or self.m
        syms = tpl.of_type(rtype, existing)
        need(len(syms) == 1, f"{tpl.name}: expected one {rtype}, found {syms or 'none'}")
        return syms[0]

    def sites(self):
        """{app: (instance key, config, env)} for every Microsoft.Web/sites instance."""
        if self._sites is None:
            out = {}
            for sym in self.m.of_type("Microsoft.Web/sites", False):
                for k, env, cfg in self.m.instances(sym):
                    key = self.m.show(Ref(sym, [("[", k)])) if k is not None else sym
                    settings = self.settings_of(cfg, env)
                    app = "archiver" if "ARCHIVE_AFTER_DAYS" in settings else \
                        "reader" if "READER_TIMEOUT_SECONDS" in settings else key
                    need(app not in out, f"two sites look like the {app}")
                    out[app] = (key, cfg, env)
            need(set(out) == {"archiver", "reader"}, f"expected an archiver and a reader site, found {sorted(out)}")
            self._sites = out
        return self._sites

    def settings_of(self, cfg, env):
        raw = ((cfg.get("properties") or {}).get("siteConfig") or {}).get("appSettings")
        s = self.m.deref(self.m.norm(raw, env))
        need(isinstance(s, list), f"appSettings is not a literal list: {self.m.show(s)}")
        out = {}
        for item in s:
            item = self.m.deref(item)
            need(isinstance(item, dict) and isinstance(item.get("name"), str),
                 f"app setting not a literal {{name, value}}: {self.m.show(item)}")
            out[item["name"]] = item.get("value")
        return out

    def app_settings(self, app):
        key, cfg, env = self.sites()[app]
        return self.settings_of(cfg, env)

    def site_of_principal(self, principal):
        """'archiver' / 'reader' for sites[..].identity.principalId (or its .id), else its text."""
        text = self.m.show(principal)
        for app, (key, _, _) in self.sites().items():
            if text in (f"{key}.identity.principalId", f"{key}.id"):
                return app
        return text

    def role_key(self, tpl, n):
        """A role assignment's role: a built-in GUID, or 'custom:<symbol>' for a role defined here."""
        n0 = n
        n = tpl.deref(n)
        defs = tpl.of_type("Microsoft.Authorization/roleDefinitions", False) + \
            tpl.of_type("Microsoft.DocumentDB/databaseAccounts/sqlRoleDefinitions", False)
        if isinstance(n, Ref) and n.base in defs and [s[1] for s in n.steps] in (["id"], ["name"]):
            return f"custom:{n.base}"
        if isinstance(n, Call) and n.name in ("subscriptionResourceId", "resourceId", "tenantResourceId") and n.args:
            return self.role_key(tpl, n.args[-1])
        if isinstance(n, Interp) and n.parts:
            last = n.parts[-1]
            if isinstance(last, str):
                g = GUID.findall(last)
                if g and last.rstrip().endswith(g[-1]):
                    return g[-1].lower()
            else:
                for d in defs:
                    if tpl.show(tpl.norm(tpl.body(d)[2].get("name"))) == tpl.show(last):
                        return f"custom:{d}"
        if isinstance(n, str) and GUID.fullmatch(n):
            return n.lower()
        return tpl.show(n0)

    def role_assignments(self):
        """[(scope text, role key, app, resource symbol)] of every Azure role assignment in main.bicep."""
        out = []
        for sym in self.m.of_type("Microsoft.Authorization/roleAssignments"):
            for k, env, cfg in self.m.instances(sym):
                c = self.m.norm(cfg, env)
                props = c.get("properties") or {}
                scope = self.m.show(c["scope"]) if "scope" in c else "resourceGroup()"
                out.append((scope, self.role_key(self.m, props.get("roleDefinitionId")),
                            self.site_of_principal(props.get("principalId")), sym))
        return out

    def host_account(self, app):
        v = self.app_settings(app).get("AzureWebJobsStorage__accountName")
        need(isinstance(v, Ref) and v.steps and v.steps[-1] == (".", "name"),
             f"{app}: AzureWebJobsStorage__accountName is not a storage account's name: {self.m.show(v)}")
        return self.m.show(Ref(v.base, v.steps[:-1]))

    def archive_account(self):
        v = self.app_settings("reader").get("ARCHIVE_BLOB_ENDPOINT")
        need(isinstance(v, Ref) and [s[1] for s in v.steps] == ["properties", "primaryEndpoints", "blob"],
             f"ARCHIVE_BLOB_ENDPOINT is not a storage account's blob endpoint: {self.m.show(v)}")
        need(v.base in self.m.of_type("Microsoft.Storage/storageAccounts", False),
             f"ARCHIVE_BLOB_ENDPOINT: {v.base} is not a storage account deployed here")
        return v.base

    def archive_container(self):
        acct = self.archive_account()
        found = []
        for sym in self.m.of_type("Microsoft.Storage/storageAccounts/blobServices/containers", False):
            for _, env, cfg in self.m.instances(sym):
                svc = self.m.norm(cfg.get("parent"), env)
                if isinstance(svc, Ref) and not svc.steps and svc.base in self.m.resources:
                    parent = self.m.norm(self.m.body(svc.base)[2].get("parent"))
                    if isinstance(parent, Ref) and parent.base == acct:
                        found.append(sym)
        need(len(found) == 1, f"expected one blob container in {acct}, found {found or 'none'}")
        return found[0]

    def config(self, sym, tpl=None):
        tpl = tpl or self.m
        loop, _, cfg = tpl.body(sym)
        need(not loop, f"{sym} is a loop")
        return tpl.norm(cfg)

    def param_with(self, tpl, n, what):
        """The parameter an expression is (directly), with its default."""
        n = tpl.deref(n)
        need(isinstance(n, Ref) and not n.steps and n.base in tpl.params, f"{what} is not a parameter: {tpl.show(n)}")
        return n.base, tpl.param_default(n.base)

    # -- the checks, in the order they print
    def all_checks(self):
        return [
            ("namePrefix: @minLength(3) @maxLength(11)", self.c_prefix),
            ("header comment: what it creates, what it never touches, the deploy command, index not managed here",
             self.c_header),
            ("Log Analytics workspace: PerGB2018, 30 days", self.c_workspace),
            ("Application Insights: workspace-based, DisableLocalAuth true", self.c_insights),
            ("monitoring module: monitoring.bicep with exactly the agreed params; alertEmail required, "
             "reader5xxPercent 5, readerP95Ms 2000, partialRunsInARow 2", self.c_monitoring),
            ("no Cosmos DB account, database or container deployed by any template (only role definitions "
             "and assignments; no indexingPolicy or partitionKey anywhere)", self.c_no_cosmos_container),
            ("main.bicep: the Cosmos account only `existing`, in cosmosResourceGroup", self.c_cosmos_existing),
            ("cosmos-roles module: scope resourceGroup(cosmosResourceGroup) (default resourceGroup().name), "
             "each app's principal id", self.c_cosmos_module),
            ("cosmos-roles: archiver role is a CustomRole on the container only, with exactly its 5 dataActions",
             self.c_cosmos_role_def),
            ("cosmos-roles: archiver gets the custom role, reader the built-in Data Reader, both on the container",
             self.c_cosmos_assignments),
            ("cosmos-roles: sqlRoleAssignments serialized (definition <- archiver <- reader, explicit dependsOn)",
             self.c_cosmos_serialized),
            ("cosmos-roles: outputs documentEndpoint", self.c_cosmos_output),
            ("every role assignment is named guid(scope id, principal, role id)", self.c_assignment_names),
            ("every storage account: allowSharedKeyAccess false, allowBlobPublicAccess false, TLS1_2",
             self.c_storage_security),
            ("one host storage account per app (AzureWebJobsStorage__accountName), none shared, not the archive",
             self.c_host_accounts),
            ("each app's deployment container in its own host account, SystemAssignedIdentity auth",
             self.c_deploy_containers),
            ("storage names valid (3-24 lowercase alphanumerics), distinct and with uniqueString, "
             "for namePrefix 'bill-prod', 'abc', 'billing-prd'", self.c_storage_names),
            ("site names keep namePrefix and include uniqueString; plan names keep namePrefix", self.c_site_names),
            ("archive account: StorageV2, Standard_ZRS, accessTier Cool", self.c_archive_account),
            ("no Archive access tier and no tierToArchive anywhere", self.c_no_archive_tier),
            ("archive blob service: versioning, blob soft delete 30 days, container soft delete "
             "(param, default 30)", self.c_archive_blob_service),
            ("archive lifecycle: one rule deleting previous versions after previousVersionRetentionDays "
             "(default 90), block blobs under the archive container; no baseBlob or snapshot actions anywhere",
             self.c_lifecycle),
            ("archive account: CanNotDelete lock with notes", self.c_lock),
            ("archive writer role: a name unique per resource group, resource group scope, exactly blob "
             "read/write/add/delete", self.c_archive_role_def),
            ("archiver: the archive writer role on the archive container", self.c_archiver_archive_role),
            ("reader: Storage Blob Data Reader on the archive container", self.c_reader_archive_role),
            ("each app: Storage Blob Data Owner on its own host account", self.c_host_roles),
            ("each app: Monitoring Metrics Publisher on the Application Insights component", self.c_metrics_roles),
            ("no other Azure role assignments (nothing more on the archive, nothing across apps)",
             self.c_no_other_roles),
            ("Flex Consumption plans: FC1, FlexConsumption, kind functionapp, reserved, one per app", self.c_plans),
            ("sites: functionapp,linux, SystemAssigned, httpsOnly, TLS 1.2, FTPS disabled, custom runtime 1.0",
             self.c_sites),
            ("instance memory: @allowed([512, 2048, 4096]) params, reader 512, archiver 2048", self.c_memory),
            ("maximumInstanceCount: reader param @minValue(40) @maxValue(1000) default 40; archiver 40",
             self.c_max_instances),
            ("always ready: reader readerAlwaysReady > 0 ? [{name: 'http', instanceCount}] : [] (param >= 0, "
             "default 0); archiver none", self.c_always_ready),
            ("app settings common to both apps", self.c_common_settings),
            ("archiver app settings (dry run by default)", self.c_archiver_settings),
            ("reader app settings", self.c_reader_settings),
            ("no secrets: no COSMOS_KEY, ARCHIVE_BLOB_SAS, AzureWebJobsStorage connection string, AccountKey=, "
             "listKeys()", self.c_no_secrets),
            ("outputs: archiverApp, readerApp, readerHostName, archiveBlobEndpoint, archiveStorageAccount",
             self.c_outputs),
        ]

    def c_prefix(self):
        d = self.m.decorators("namePrefix")
        need(d.get("min_length") == 3 and d.get("max_length") == 11, f"decorators {d}")

    def c_header(self):
        head = re.match(r"(\s*//[^\n]*\n)+", self.m.text)
        need(head, "main.bicep does not start with a comment")
        h = head.group(0)
        for pat, what in [(r"az deployment group create", "the deploy command"),
                          (r"infra-bicep/main\.bicep", "the template path in the command"),
                          (r"(?i)never|not touched|untouched", "what it never touches"),
                          (r"(?i)cosmos", "the Cosmos account"),
                          (r"(?i)container", "the live container"),
                          (r"(?i)index", "the listing index"),
                          (r"(?i)\bnot\b[^.]*\bmanaged\b|\bnot\b[^.]*\bhere\b", "that the index is not managed here"),
                          (r"(?i)docs/read-api\.md", "why no index is needed")]:
            need(re.search(pat, h), f"the header does not mention {what}")

    def c_workspace(self):
        sym = self.one("Microsoft.OperationalInsights/workspaces")
        p = self.config(sym).get("properties") or {}
        need(p.get("retentionInDays") == 30, f"retentionInDays {self.m.show(p.get('retentionInDays'))}")
        need((p.get("sku") or {}).get("name") == "PerGB2018", f"sku {self.m.show(p.get('sku'))}")

    def c_insights(self):
        sym = self.one("Microsoft.Insights/components")
        ws = self.one("Microsoft.OperationalInsights/workspaces")
        p = self.config(sym).get("properties") or {}
        need(p.get("DisableLocalAuth") is True, f"DisableLocalAuth is {self.m.show(p.get('DisableLocalAuth'))}")
        need(self.m.show(p.get("WorkspaceResourceId")) == f"{ws}.id",
             f"WorkspaceResourceId is {self.m.show(p.get('WorkspaceResourceId'))}, not {ws}.id")

    def c_monitoring(self):
        mods = [s for s, mm in self.m.modules.items() if (mm.get("detail") or {}).get("path") == "monitoring.bicep"]
        need(mods == ["monitoring"], f"modules on monitoring.bicep: {mods or 'none'} (expected one, named monitoring)")
        c = self.m.norm(self.m.body("monitoring", "modules")[2])
        ps = c.get("params") or {}
        need(set(ps) == MONITORING_PARAMS, f"params {sorted(ps)}; expected {sorted(MONITORING_PARAMS)}")
        ins = self.one("Microsoft.Insights/components")
        need(self.m.show(ps["appInsightsId"]) == f"{ins}.id", f"appInsightsId {self.m.show(ps['appInsightsId'])}")
        need(ps["readerFunctionName"] == "BillingRecords", f"readerFunctionName {self.m.show(ps['readerFunctionName'])}")
        need(ps["archiverFunctionName"] == "ArchiveBillingRecords",
             f"archiverFunctionName {self.m.show(ps['archiverFunctionName'])}")
        for fn, app in (("BillingRecords", "reader"), ("ArchiveBillingRecords", "archiver")):
            need(os.path.isfile(os.path.join(ROOT, "function-definitions", app, fn, "function.json")),
                 f"function-definitions/{app}/{fn}/function.json does not exist")
        for p in ("namePrefix", "location", "alertEmail", "reader5xxPercent", "readerP95Ms", "partialRunsInARow"):
            need(self.m.show(ps[p]) == p, f"{p} is passed {self.m.show(ps[p])}, not the parameter {p}")
        need("alertEmail" in self.m.params and self.m.params["alertEmail"].get("default") is None,
             "alertEmail must be a parameter without a default")
        for p, want in (("reader5xxPercent", 5), ("readerP95Ms", 2000), ("partialRunsInARow", 2)):
            need(p in self.m.params and self.m.param_default(p) == want,
                 f"{p} default {self.m.show(self.m.param_default(p)) if p in self.m.params else 'missing'}, "
                 f"expected {want}")

    def c_no_cosmos_container(self):
        bad = []
        for name, t in self.tpls.items():
            for sym, r in t.resources.items():
                rtype = (r.get("type") or "").lower()
                if rtype.startswith("microsoft.documentdb/") and not r.get("existing") and rtype not in (
                        "microsoft.documentdb/databaseaccounts/sqlroledefinitions",
                        "microsoft.documentdb/databaseaccounts/sqlroleassignments"):
                    bad.append(f"{name} {sym} ({r.get('type')})")
                for _, k, _ in walk(r.get("config")):
                    if k in ("indexingPolicy", "partitionKey", "compositeIndexes"):
                        bad.append(f"{name} {sym} writes {k}")
            for sym, mod in t.modules.items():
                path = (mod.get("detail") or {}).get("path") or ""
                if not path.endswith(".bicep") or os.path.basename(path) not in self.tpls:
                    bad.append(f"{name} module {sym} is {path!r}, not a template here that parses")
        need(not bad, "; ".join(bad))

    def c_cosmos_existing(self):
        syms = [s for s, r in self.m.resources.items() if (r.get("type") or "").lower().startswith("microsoft.documentdb/")]
        need(syms, "main.bicep does not reference the Cosmos account")
        for s in syms:
            r = self.m.resources[s]
            need(r.get("existing"), f"{s} ({r['type']}) is deployed, not existing")
            need(r["type"].lower() == "microsoft.documentdb/databaseaccounts", f"{s}: {r['type']} referenced")
            c = self.m.norm(self.m.body(s)[2])
            need(self.m.show(c.get("scope")) == "resourceGroup(cosmosResourceGroup)",
                 f"{s} scope {self.m.show(c.get('scope'))}")
            need(self.m.show(c.get("name")) == "cosmosAccountName", f"{s} name {self.m.show(c.get('name'))}")

    def cosmos_module(self):
        mods = [s for s, mm in self.m.modules.items() if (mm.get("detail") or {}).get("path") == "cosmos-roles.bicep"]
        need(len(mods) == 1, f"modules on cosmos-roles.bicep: {mods or 'none'}")
        need("cosmos-roles.bicep" in self.tpls, "cosmos-roles.bicep missing or does not parse")
        loop, _, _ = self.m.body(mods[0], "modules")
        need(not loop, "the cosmos-roles module is a loop")
        return self.m.norm(self.m.body(mods[0], "modules")[2]), self.tpls["cosmos-roles.bicep"]

    def cosmos_principal_params(self):
        """{app: the cosmos-roles parameter holding its principal id}."""
        c, _ = self.cosmos_module()
        out = {}
        for p, v in (c.get("params") or {}).items():
            app = self.site_of_principal(v)
            if app in ("archiver", "reader"):
                need(self.m.show(v).endswith(".identity.principalId"), f"{p} is {self.m.show(v)}, not a principal id")
                out[app] = p
        need(set(out) == {"archiver", "reader"}, f"principal id params found for {sorted(out)}")
        return out

    def c_cosmos_module(self):
        c, _ = self.cosmos_module()
        need(self.m.show(c.get("scope")) == "resourceGroup(cosmosResourceGroup)", f"scope {self.m.show(c.get('scope'))}")
        need(self.m.show(self.m.param_default("cosmosResourceGroup")) == "resourceGroup().name",
             "param cosmosResourceGroup must default to resourceGroup().name")
        self.cosmos_principal_params()

    def cosmos_parts(self):
        _, t = self.cosmos_module()
        acct = self.one("Microsoft.DocumentDB/databaseAccounts", existing=True, tpl=t)
        defs = t.of_type("Microsoft.DocumentDB/databaseAccounts/sqlRoleDefinitions", False)
        need(len(defs) == 1, f"expected one sqlRoleDefinition, found {defs or 'none'}")
        return t, acct, defs[0]

    def container_scope(self, t, acct, n):
        s = t.show(t.deref(n))
        mt = re.fullmatch(r"'\$\{(\w+)\.id\}/dbs/\$\{(\w+)\}/colls/\$\{(\w+)\}'", s)
        need(mt and mt.group(1) == acct and mt.group(2) in t.params and mt.group(3) in t.params,
             f"scope {s} is not '${{{acct}.id}}/dbs/${{<database param>}}/colls/${{<container param>}}'")
        return s

    def c_cosmos_role_def(self):
        t, acct, d = self.cosmos_parts()
        c = self.config(d, t)
        need(t.show(c.get("parent")) == acct, f"parent {t.show(c.get('parent'))}")
        need(isinstance(t.deref(c.get("name")), Call) and t.deref(c.get("name")).name == "guid",
             f"name {t.show(c.get('name'))} is not a guid()")
        p = c.get("properties") or {}
        need(p.get("type") == "CustomRole", f"type {t.show(p.get('type'))}")
        need(isinstance(p.get("roleName"), (str, Interp)) and "rchiver" in t.show(p.get("roleName")),
             f"roleName {t.show(p.get('roleName'))}")
        scopes = t.deref(p.get("assignableScopes"))
        need(isinstance(scopes, list) and len(scopes) == 1, f"assignableScopes {t.show(scopes)}")
        self.container_scope(t, acct, scopes[0])
        perms = t.deref(p.get("permissions"))
        need(isinstance(perms, list) and len(perms) == 1, f"permissions {t.show(perms)}")
        da = t.deref(perms[0].get("dataActions"))
        need(isinstance(da, list) and len(da) == len(set(da)) and set(da) == COSMOS_ARCHIVER_DATA_ACTIONS,
             f"dataActions differ: extra {sorted(set(da or []) - COSMOS_ARCHIVER_DATA_ACTIONS)}, "
             f"missing {sorted(COSMOS_ARCHIVER_DATA_ACTIONS - set(da or []))}")
        need(not perms[0].get("notDataActions"), "notDataActions set")

    def cosmos_assignments(self):
        t, acct, d = self.cosmos_parts()
        syms = t.of_type("Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments", False)
        params = self.cosmos_principal_params()
        out = {}
        for s in syms:
            loop, _, _ = t.body(s)
            need(not loop, f"{s} is a loop: assignments must be serialized one by one")
            c = self.config(s, t)
            principal = t.show((c.get("properties") or {}).get("principalId"))
            app = next((a for a, p in params.items() if p == principal), principal)
            need(app not in out, f"two assignments for {app}")
            out[app] = (s, c)
        need(set(out) == {"archiver", "reader"}, f"sqlRoleAssignments for {sorted(out)}; expected archiver and reader")
        return t, acct, d, out

    def c_cosmos_assignments(self):
        t, acct, d, out = self.cosmos_assignments()
        for app, want in (("archiver", f"custom:{d}"), ("reader", COSMOS_DATA_READER)):
            s, c = out[app]
            p = c.get("properties") or {}
            need(t.show(c.get("parent")) == acct, f"{s}: parent {t.show(c.get('parent'))}")
            got = self.role_key(t, p.get("roleDefinitionId"))
            need(got == want, f"{app} gets {ROLE_NAMES.get(got, got)}, not {ROLE_NAMES.get(want, want)}")
            if app == "reader":
                need(t.show(t.deref(p.get("roleDefinitionId"))).startswith(f"'${{{acct}.id}}/sqlRoleDefinitions/"),
                     f"reader roleDefinitionId {t.show(t.deref(p.get('roleDefinitionId')))}")
            self.container_scope(t, acct, p.get("scope"))

    def c_cosmos_serialized(self):
        t, acct, d, out = self.cosmos_assignments()

        def deps(s):
            c = t.body(s)[2]
            return {t.show(t.norm(x)) for x in (c.get("dependsOn") or [])}

        a, b = out["archiver"][0], out["reader"][0]
        if a not in deps(b):  # either order will do, as long as it is a chain
            a, b = b, a
        need(a in deps(b), f"neither {a} nor {b} dependsOn the other")
        need(d in deps(a), f"{a} has no explicit dependsOn on the role definition {d}")

    def c_cosmos_output(self):
        t, acct, _ = self.cosmos_parts()
        o = t.outputs.get("documentEndpoint")
        need(o and t.show(t.norm(o.get("value"))) == f"{acct}.properties.documentEndpoint",
             f"documentEndpoint output {t.show(t.norm(o.get('value'))) if o else 'missing'}")

    def c_assignment_names(self):
        bad, n = [], 0
        for name, t in self.tpls.items():
            for sym in t.of_type("Microsoft.Authorization/roleAssignments") + \
                    t.of_type("Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments"):
                for _, env, cfg in t.instances(sym):
                    n += 1
                    c = t.norm(cfg, env)
                    p = c.get("properties") or {}
                    nm = t.deref(c.get("name"))
                    if not (isinstance(nm, Call) and nm.name == "guid" and len(nm.args) >= 3):
                        bad.append(f"{name} {sym}: name {t.show(nm)} is not guid(scope, principal, role)")
                        continue
                    args = [t.show(a) for a in nm.args]
                    scope = c.get("scope") if "scope" in c else c.get("parent")
                    want_scope = f"{t.show(scope)}.id" if scope is not None else "resourceGroup().id"
                    if args[0] != want_scope:
                        bad.append(f"{name} {sym}: first guid() part {args[0]}, not {want_scope}")
                    pr = t.show(p.get("principalId"))
                    owners = {pr, pr.replace(".identity.principalId", ".id")}
                    if not owners & set(args[1:]):
                        bad.append(f"{name} {sym}: guid() lacks the principal ({pr})")
                    role = self.role_key(t, p.get("roleDefinitionId"))
                    rtext = t.show(p.get("roleDefinitionId"))
                    if not any(self.role_key(t, a) == role or t.show(a) == rtext for a in nm.args[1:]):
                        bad.append(f"{name} {sym}: guid() lacks the role id ({rtext})")
        need(not bad, "; ".join(bad))
        return f"{n} assignments"

    def c_storage_security(self):
        bad, n = [], 0
        for name, t in self.tpls.items():
            for sym in t.of_type("Microsoft.Storage/storageAccounts", False):
                for _, env, cfg in t.instances(sym):
                    n += 1
                    p = t.norm(cfg, env).get("properties") or {}
                    for k, want in (("allowSharedKeyAccess", False), ("allowBlobPublicAccess", False),
                                    ("minimumTlsVersion", "TLS1_2")):
                        if p.get(k) != want:
                            bad.append(f"{name} {sym}: {k} {t.show(p.get(k)) if k in p else 'unset'}")
        need(n, "no storage accounts")
        need(not bad, "; ".join(bad))
        return f"{n} accounts"

    def c_host_accounts(self):
        hosts = {app: self.host_account(app) for app in ("archiver", "reader")}
        need(hosts["archiver"] != hosts["reader"], f"both apps use {hosts['archiver']}")
        arch = self.archive_account()
        for app, h in hosts.items():
            need(h.split("[")[0] != arch, f"{app}'s host storage is the archive account")
            need(h.split("[")[0] in self.m.of_type("Microsoft.Storage/storageAccounts", False),
                 f"{app}'s host storage {h} is not a storage account deployed here")
        return ", ".join(f"{a}: {h}" for a, h in hosts.items())

    def c_deploy_containers(self):
        for app in ("archiver", "reader"):
            key, cfg, env = self.sites()[app]
            st = self.m.norm(((cfg.get("properties") or {}).get("functionAppConfig") or {}).get("deployment"), env)
            st = (st or {}).get("storage") or {}
            need(st.get("type") == "blobContainer", f"{app}: deployment storage type {self.m.show(st.get('type'))}")
            need((st.get("authentication") or {}).get("type") == "SystemAssignedIdentity",
                 f"{app}: deployment auth {self.m.show(st.get('authentication'))}")
            v = st.get("value")
            need(isinstance(v, Interp) and len(v.parts) == 2 and isinstance(v.parts[1], str),
                 f"{app}: deployment value {self.m.show(v)} is not '${{<account>.properties.primaryEndpoints.blob}}<container>'")
            acct, cont = self.m.show(v.parts[0]), v.parts[1]
            host = self.host_account(app)
            need(acct == f"{host}.properties.primaryEndpoints.blob", f"{app}: deploys from {acct}, not {host}")
            found = False
            for sym in self.m.of_type("Microsoft.Storage/storageAccounts/blobServices/containers", False):
                for _, cenv, ccfg in self.m.instances(sym):
                    cc = self.m.norm(ccfg, cenv)
                    svc = cc.get("parent")
                    if cc.get("name") != cont or not isinstance(svc, Ref) or svc.base not in self.m.resources:
                        continue
                    loop, _, scfg = self.m.body(svc.base)
                    senv = {}
                    if loop:
                        idx = svc.steps[0][1] if svc.steps and svc.steps[0][0] == "[" else None
                        senv = {k: v for i, k_env, _ in self.m.instances(svc.base) if i == idx
                                for k, v in k_env.items()}
                    if self.m.show(self.m.norm(scfg.get("parent"), senv)) == host:
                        found = True
            need(found, f"{app}: no blob container {cont!r} declared in {host}")

    def storage_names(self, prefix):
        names = []
        for sym in self.m.of_type("Microsoft.Storage/storageAccounts", False):
            for _, env, cfg in self.m.instances(sym):
                names.append(self.m.evaluate(self.m.norm(cfg.get("name"), env), {"namePrefix": prefix}))
        return names

    def c_storage_names(self):
        shown = []
        for prefix in ("bill-prod", "abc", "billing-prd", "BILL-PROD"):
            names = self.storage_names(prefix)
            for n in names:
                need(isinstance(n, str) and re.fullmatch(r"[a-z0-9]{3,24}", n),
                     f"namePrefix {prefix!r}: {n!r} is not a valid storage account name")
                need(FAKE_HASH[:5] in n, f"namePrefix {prefix!r}: {n!r} keeps under 5 characters of uniqueString()")
            need(len(set(names)) == len(names), f"namePrefix {prefix!r}: names collide: {names}")
            if prefix == "bill-prod":
                shown = names
        return ", ".join(shown)

    def c_site_names(self):
        for prefix in ("bill-prod", "billing-prd"):
            names = []
            for app in ("archiver", "reader"):
                key, cfg, env = self.sites()[app]
                n = self.m.evaluate(self.m.norm(cfg.get("name"), env), {"namePrefix": prefix})
                need(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,58}[A-Za-z0-9]", n), f"site name {n!r} is not valid")
                need(n.startswith(prefix) and FAKE_HASH in n, f"site name {n!r}: no {prefix!r} prefix or uniqueString()")
                names.append(n)
            need(len(set(names)) == 2, f"site names collide: {names}")
            for sym in self.m.of_type("Microsoft.Web/serverfarms", False):
                for _, env, cfg in self.m.instances(sym):
                    n = self.m.evaluate(self.m.norm(cfg.get("name"), env), {"namePrefix": prefix})
                    need(n.startswith(prefix) and re.fullmatch(r"[A-Za-z0-9-]{1,60}", n), f"plan name {n!r}")

    def c_archive_account(self):
        a = self.archive_account()
        c = self.config(a)
        need(c.get("kind") == "StorageV2", f"kind {self.m.show(c.get('kind'))}")
        need((c.get("sku") or {}).get("name") == "Standard_ZRS", f"sku {self.m.show(c.get('sku'))}")
        need((c.get("properties") or {}).get("accessTier") == "Cool",
             f"accessTier {self.m.show((c.get('properties') or {}).get('accessTier'))}")

    def c_no_archive_tier(self):
        bad = []
        for name, t in self.tpls.items():
            for sym, r in t.resources.items():
                for path, k, v in walk(r.get("config")):
                    if k.lower() in ("tiertoarchive", "tiertocold") or (
                            k.lower() in ("accesstier", "tier", "standardblobtier") and v == "Archive"):
                        bad.append(f"{name} {sym}{path}.{k}")
            if re.search(r"tierToArchive|'Archive'", strip_comments(t.text)):
                bad.append(f"{name}: the text names tierToArchive or 'Archive'")
        need(not bad, "; ".join(bad))

    def c_archive_blob_service(self):
        a = self.archive_account()
        svcs = [s for s in self.m.of_type("Microsoft.Storage/storageAccounts/blobServices", False)
                if self.m.show(self.m.norm(self.m.body(s)[2].get("parent"))) == a]
        need(len(svcs) == 1, f"blob services of {a}: {svcs or 'none'}")
        c = self.config(svcs[0])
        need(c.get("name") == "default", f"name {self.m.show(c.get('name'))}")
        p = c.get("properties") or {}
        need(p.get("isVersioningEnabled") is True, "isVersioningEnabled is not true")
        d = p.get("deleteRetentionPolicy") or {}
        need(d.get("enabled") is True and d.get("days") == 30, f"deleteRetentionPolicy {self.m.show(d)}")
        cd = p.get("containerDeleteRetentionPolicy") or {}
        need(cd.get("enabled") is True, f"containerDeleteRetentionPolicy {self.m.show(cd)}")
        _, default = self.param_with(self.m, cd.get("days"), "containerDeleteRetentionPolicy.days")
        need(default == 30, f"container soft delete days default {self.m.show(default)}")

    def c_lifecycle(self):
        bad = []
        for name, t in self.tpls.items():
            for sym, r in t.resources.items():
                for path, k, _ in walk(r.get("config")):
                    if k in ("baseBlob", "snapshot"):
                        bad.append(f"{name} {sym}{path}.{k}")
        need(not bad, "lifecycle actions on current blobs or snapshots: " + "; ".join(bad))
        a = self.archive_account()
        pols = [s for s in self.m.of_type("Microsoft.Storage/storageAccounts/managementPolicies", False)]
        need(len(pols) == 1, f"management policies: {pols or 'none'} (expected one, on {a})")
        c = self.config(pols[0])
        need(self.m.show(c.get("parent")) == a and c.get("name") == "default",
             f"policy {pols[0]}: parent {self.m.show(c.get('parent'))}, name {self.m.show(c.get('name'))}")
        rules = self.m.deref(((c.get("properties") or {}).get("policy") or {}).get("rules"))
        need(isinstance(rules, list) and len(rules) == 1, f"rules {self.m.show(rules)}")
        r = rules[0]
        need(r.get("enabled") is not False and r.get("type") == "Lifecycle", f"rule enabled/type {self.m.show(r)}")
        d = r.get("definition") or {}
        acts = d.get("actions") or {}
        need(set(acts) == {"version"}, f"actions on {sorted(acts)}; only previous versions may be acted on")
        ver = acts["version"]
        need(set(ver) == {"delete"} and set(ver["delete"]) == {"daysAfterCreationGreaterThan"},
             f"version actions {self.m.show(ver)}")
        _, default = self.param_with(self.m, ver["delete"]["daysAfterCreationGreaterThan"],
                                     "daysAfterCreationGreaterThan")
        need(self.m.show(ver["delete"]["daysAfterCreationGreaterThan"]) == "previousVersionRetentionDays"
             and default == 90, f"daysAfterCreationGreaterThan {self.m.show(ver['delete'])}, default {default}")
        f = d.get("filters") or {}
        need(f.get("blobTypes") == ["blockBlob"], f"blobTypes {self.m.show(f.get('blobTypes'))}")
        cont = self.config(self.archive_container()).get("name")
        want = "'${" + self.m.show(cont) + "}/'"
        pm = f.get("prefixMatch")
        need(isinstance(pm, list) and len(pm) == 1 and self.m.show(pm[0]) == want,
             f"prefixMatch {self.m.show(pm)}, expected [{want}]")

    def c_lock(self):
        a = self.archive_account()
        locks = [s for s in self.m.of_type("Microsoft.Authorization/locks", False)
                 if self.m.show(self.m.norm(self.m.body(s)[2].get("scope"))) == a]
        need(locks, f"no lock scoped to {a}")
        p = self.config(locks[0]).get("properties") or {}
        need(p.get("level") == "CanNotDelete", f"level {self.m.show(p.get('level'))}")
        need(p.get("notes"), "no notes")

    def archive_role_def(self):
        defs = self.m.of_type("Microsoft.Authorization/roleDefinitions", False)
        need(len(defs) == 1, f"Azure role definitions: {defs or 'none'}")
        return defs[0]

    def c_archive_role_def(self):
        d = self.archive_role_def()
        c = self.config(d)
        nm = self.m.deref(c.get("name"))
        need(isinstance(nm, Call) and nm.name == "guid", f"name {self.m.show(nm)} is not a guid()")
        p = c.get("properties") or {}
        rn = self.m.show(p.get("roleName"))
        need('${namePrefix}' in rn and 'uniqueString(resourceGroup().id)' in rn, f"roleName {rn} must be unique per resource group (role names are unique in the tenant)")
        need(self.m.show(p.get("assignableScopes")) == "[resourceGroup().id]",
             f"assignableScopes {self.m.show(p.get('assignableScopes'))}")
        perms = self.m.deref(p.get("permissions"))
        need(isinstance(perms, list) and len(perms) == 1, f"permissions {self.m.show(perms)}")
        acts = set(perms[0].get("actions") or [])
        need(acts <= ARCHIVE_WRITER_ACTIONS_ALLOWED, f"actions {sorted(acts)}")
        da = perms[0].get("dataActions") or []
        need(len(da) == len(set(da)) and set(da) == ARCHIVE_WRITER_DATA_ACTIONS,
             f"dataActions differ: extra {sorted(set(da) - ARCHIVE_WRITER_DATA_ACTIONS)}, "
             f"missing {sorted(ARCHIVE_WRITER_DATA_ACTIONS - set(da))}")

    def expected_roles(self):
        cont = self.archive_container()
        ins = self.one("Microsoft.Insights/components")
        custom = f"custom:{self.archive_role_def()}"
        return {
            "archive_writer": {(cont, custom, "archiver")},
            "archive_reader": {(cont, BLOB_DATA_READER, "reader")},
            "host": {(self.host_account(app), BLOB_DATA_OWNER, app) for app in ("archiver", "reader")},
            "metrics": {(ins, METRICS_PUBLISHER, app) for app in ("archiver", "reader")},
        }

    def have_roles(self):
        return {(s, r, a) for s, r, a, _ in self.role_assignments()}

    def show_roles(self, rs):
        return "; ".join(f"{a}: {ROLE_NAMES.get(r, r)} on {s}" for s, r, a in sorted(rs)) or "none"

    def expect(self, key):
        want = self.expected_roles()[key]
        missing = want - self.have_roles()
        need(not missing, f"missing {self.show_roles(missing)}")

    def c_archiver_archive_role(self):
        self.expect("archive_writer")

    def c_reader_archive_role(self):
        self.expect("archive_reader")

    def c_host_roles(self):
        self.expect("host")

    def c_metrics_roles(self):
        self.expect("metrics")

    def c_no_other_roles(self):
        want = set().union(*self.expected_roles().values())
        extra = self.have_roles() - want
        need(not extra, f"unexpected {self.show_roles(extra)}")
        counts = {}
        for s, r, a, sym in self.role_assignments():
            counts[(s, r, a)] = counts.get((s, r, a), 0) + 1
        dup = [k for k, v in counts.items() if v > 1]
        need(not dup, f"assigned twice: {self.show_roles(dup)}")

    def c_plans(self):
        plans = set()
        for app in ("archiver", "reader"):
            key, cfg, env = self.sites()[app]
            farm = self.m.norm((cfg.get("properties") or {}).get("serverFarmId"), env)
            need(isinstance(farm, Ref) and farm.steps and farm.steps[-1] == (".", "id"),
                 f"{app}: serverFarmId {self.m.show(farm)}")
            plans.add(self.m.show(Ref(farm.base, farm.steps[:-1])))
            pc = None
            for k, penv, pcfg in self.m.instances(farm.base):
                if farm.steps[:-1] in ((), (("[", k),)):
                    pc = self.m.norm(pcfg, penv)
            need(pc is not None, f"{app}: plan {self.m.show(farm)} not found")
            need(pc.get("kind") == "functionapp", f"{app}: plan kind {self.m.show(pc.get('kind'))}")
            need(pc.get("sku") == {"tier": "FlexConsumption", "name": "FC1"} or
                 ((pc.get("sku") or {}).get("tier"), (pc.get("sku") or {}).get("name")) == ("FlexConsumption", "FC1"),
                 f"{app}: plan sku {self.m.show(pc.get('sku'))}")
            need((pc.get("properties") or {}).get("reserved") is True, f"{app}: plan not reserved (Linux)")
        need(len(plans) == 2, f"both apps on {plans}")

    def c_sites(self):
        for app in ("archiver", "reader"):
            key, cfg, env = self.sites()[app]
            c = self.m.norm(cfg, env)
            p = c.get("properties") or {}
            need(c.get("kind") == "functionapp,linux", f"{app}: kind {self.m.show(c.get('kind'))}")
            need((c.get("identity") or {}).get("type") == "SystemAssigned",
                 f"{app}: identity {self.m.show(c.get('identity'))}")
            need(p.get("httpsOnly") is True, f"{app}: httpsOnly {self.m.show(p.get('httpsOnly'))}")
            sc = p.get("siteConfig") or {}
            need(sc.get("minTlsVersion") == "1.2", f"{app}: minTlsVersion {self.m.show(sc.get('minTlsVersion'))}")
            need(sc.get("ftpsState") == "Disabled", f"{app}: ftpsState {self.m.show(sc.get('ftpsState'))}")
            rt = (p.get("functionAppConfig") or {}).get("runtime")
            need(rt == {"name": "custom", "version": "1.0"}, f"{app}: runtime {self.m.show(rt)}")

    def scale(self, app):
        key, cfg, env = self.sites()[app]
        c = self.m.norm(cfg, env)
        return ((c.get("properties") or {}).get("functionAppConfig") or {}).get("scaleAndConcurrency") or {}

    def c_memory(self):
        for app, want in (("archiver", 2048), ("reader", 512)):
            p, default = self.param_with(self.m, self.scale(app).get("instanceMemoryMB"), f"{app} instanceMemoryMB")
            need(self.m.decorators(p).get("allowed") == [512, 2048, 4096],
                 f"{p}: @allowed {self.m.decorators(p).get('allowed')}")
            need(default == want, f"{p} default {default}, expected {want}")

    def c_max_instances(self):
        p, default = self.param_with(self.m, self.scale("reader").get("maximumInstanceCount"),
                                     "reader maximumInstanceCount")
        d = self.m.decorators(p)
        need(d.get("min_value") == 40 and d.get("max_value") == 1000 and default == 40, f"{p}: {d}, default {default}")
        a = self.m.deref(self.scale("archiver").get("maximumInstanceCount"))
        if isinstance(a, Ref) and a.base in self.m.params:
            a = self.m.param_default(a.base)
        need(a == 40, f"archiver maximumInstanceCount {self.m.show(a)}")

    def c_always_ready(self):
        r = self.m.deref(self.scale("reader").get("alwaysReady"))
        want = "(readerAlwaysReady > 0 ? [{name: 'http', instanceCount: readerAlwaysReady}] : [])"
        need(self.m.show(r) == want, f"reader alwaysReady {self.m.show(r)}; expected {want}")
        d = self.m.decorators("readerAlwaysReady")
        need(d.get("min_value") == 0 and self.m.param_default("readerAlwaysReady") == 0,
             f"readerAlwaysReady: {d}, default {self.m.show(self.m.param_default('readerAlwaysReady'))}")
        a = self.m.deref(self.scale("archiver").get("alwaysReady"))
        need(a in (None, []), f"archiver alwaysReady {self.m.show(a)}")

    def expect_settings(self, app, names, values):
        s = self.app_settings(app)
        missing = [n for n in names if n not in s]
        need(not missing, f"{app} lacks {missing}")
        for n, want in values.items():
            got = s[n]
            ok = want(got) if callable(want) else self.m.show(got) == want
            need(ok, f"{app}: {n} = {self.m.show(got)}")

    def c_common_settings(self):
        ins = self.one("Microsoft.Insights/components")
        cosmos = self.m.of_type("Microsoft.DocumentDB/databaseAccounts", True)
        arch = self.archive_account()
        cont = self.m.show(self.config(self.archive_container()).get("name"))
        for app in ("archiver", "reader"):
            self.expect_settings(app, COMMON_SETTINGS, {
                "AzureWebJobsStorage__accountName": f"{self.host_account(app)}.name",
                "APPLICATIONINSIGHTS_CONNECTION_STRING": f"{ins}.properties.ConnectionString",
                "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "'Authorization=AAD'",
                "COSMOS_ENDPOINT": lambda v: self.m.show(v) in {f"{c}.properties.documentEndpoint" for c in cosmos}
                or self.m.show(v).endswith(".outputs.documentEndpoint"),
                "COSMOS_DATABASE": "cosmosDatabase",
                "COSMOS_CONTAINER": "cosmosContainer",
                "ARCHIVE_BLOB_ENDPOINT": f"{arch}.properties.primaryEndpoints.blob",
                "ARCHIVE_CONTAINER": cont,
                "ARCHIVE_AGE_FIELD": "ageField",
                "LOG_FORMAT": "'json'",
            })

    def param_default_is(self, v, ptype, want, wrap=None):
        """v is wrap(<param>) (or the param itself) for a param of ptype defaulting to want."""
        v = self.m.deref(v)
        if wrap:
            need(isinstance(v, Call) and v.name == wrap and len(v.args) == 1, f"{self.m.show(v)} is not {wrap}(<param>)")
            v = v.args[0]
        need(isinstance(v, Ref) and not v.steps and v.base in self.m.params, f"{self.m.show(v)} is not a parameter")
        need(self.m.params[v.base].get("type") == ptype and self.m.param_default(v.base) == want,
             f"param {v.base}: {self.m.params[v.base].get('type')} = {self.m.show(self.m.param_default(v.base))}, "
             f"expected {ptype} = {self.m.show(want)}")
        return True

    def dry_run(self, v):
        v = self.m.deref(v)
        forms = {"(archiveDryRun ? 'true' : 'false')", "toLower(string(archiveDryRun))", "string(archiveDryRun)"}
        need(self.m.show(v) in forms, f"ARCHIVE_DRY_RUN = {self.m.show(v)}, expected one of {sorted(forms)}")
        need(self.m.params["archiveDryRun"].get("type") == "bool" and self.m.param_default("archiveDryRun") is True,
             "param archiveDryRun must be bool = true")
        return True

    def paused(self, v):
        v = self.m.deref(v)
        need(self.m.show(v) == "(archiverPaused ? 'true' : 'false')", f"the pause setting = {self.m.show(v)}")
        need(self.m.params["archiverPaused"].get("type") == "bool" and self.m.param_default("archiverPaused") is False,
             "param archiverPaused must be bool = false")
        return True

    def c_archiver_settings(self):
        self.expect_settings("archiver", ARCHIVER_SETTINGS, {
            "ARCHIVE_AFTER_DAYS": lambda v: self.param_default_is(v, "int", 90, "string"),
            "ARCHIVE_DRY_RUN": self.dry_run,
            "ARCHIVE_CONCURRENCY": lambda v: self.param_default_is(v, "string", "auto"),
            "ARCHIVE_MAX_RU_PER_SECOND": lambda v: self.param_default_is(v, "int", 0, "string"),
            "ARCHIVE_TIME_BUDGET_SECONDS": "'1500'",
            "ARCHIVE_SCHEDULE": lambda v: self.param_default_is(v, "string", "0 0 2 * * *"),
            # The pause switch (README, "Rollout"): the host's own per-function flag.
            "AzureWebJobs.ArchiveBillingRecords.Disabled": self.paused,
        })

    def c_reader_settings(self):
        self.expect_settings("reader", READER_SETTINGS, {"READER_TIMEOUT_SECONDS": "'10'"})

    def c_no_secrets(self):
        bad = []
        for app in ("archiver", "reader"):
            for n, v in self.app_settings(app).items():
                text = self.m.show(v)
                if n in SECRET_SETTINGS or re.search(r"(?i)(_KEY|_SAS|SECRET|PASSWORD|CONNECTION_STRING)$", n) and \
                        n != "APPLICATIONINSIGHTS_CONNECTION_STRING":
                    bad.append(f"{app}: setting {n}")
                if SECRET_TEXT.search(text) or re.search(r"\blist\w*\(", text):
                    bad.append(f"{app}: {n} = {text}")
        for name, t in self.tpls.items():
            mt = SECRET_TEXT.search(strip_comments(t.text))
            if mt:
                bad.append(f"{name}: {mt.group(0)!r}")
        need(not bad, "; ".join(bad))

    def c_outputs(self):
        sites = {app: key for app, (key, _, _) in self.sites().items()}
        arch = self.archive_account()
        want = {
            "archiverApp": f"{sites['archiver']}.name",
            "readerApp": f"{sites['reader']}.name",
            "readerHostName": f"{sites['reader']}.properties.defaultHostName",
            "archiveBlobEndpoint": f"{arch}.properties.primaryEndpoints.blob",
            "archiveStorageAccount": f"{arch}.name",
        }
        for o, w in want.items():
            got = self.m.outputs.get(o)
            need(got, f"output {o} missing")
            need(self.m.show(self.m.norm(got.get("value"))) == w,
                 f"output {o} = {self.m.show(self.m.norm(got.get('value')))}, expected {w}")


if __name__ == "__main__":
    sys.exit(main())
