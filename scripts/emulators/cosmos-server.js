#!/usr/bin/env node
"use strict";
/*
 * Local Cosmos DB (NoSQL API) emulator for tests.
 *
 * Runs @vercel/cosmosdb-server 1.0.1 (in memory) in plain-HTTP mode on
 * 127.0.0.1 and fixes, at load time, the defects that break the official
 * SDKs (azure_data_cosmos 1.0 for Rust, azure-cosmos for Python).
 * node_modules is never edited (CI reinstalls it): we replace the package's
 * handler exports before its router captures them, and patch a few
 * prototypes. Each fix says WHY it exists.
 *
 * Usage: node cosmos-server.js [--port N]      (or env COSMOS_EMULATOR_PORT)
 *   N = 0 (default) picks a free port. Once listening it prints
 *   "cosmos-server listening on http://127.0.0.1:<port>/".
 */
const path = require("path");
const { AsyncLocalStorage } = require("async_hooks");

const LIB = path.join(
  path.dirname(require.resolve("@vercel/cosmosdb-server/package.json")),
  "lib"
);
const lib = name => require(path.join(LIB, name));

const HOST = "127.0.0.1";
const PK_HEADER = "x-ms-documentdb-partitionkey";

const isTrue = (req, name) =>
  String(req.headers[name] || "").toLowerCase() === "true";
const notFound = res => {
  res.statusCode = 404;
  return {
    code: "NotFound",
    message: "Entity with the specified id does not exist in the system."
  };
};

// --- Fix: partition key range ids must be strings -------------------------
// The server creates its single range with id 0 (a number); the Rust SDK
// deserializes `id`/`parents` as strings and fails with "failed to resolve
// container metadata".
const PartitionKeyRanges = lib("account/partition-key-ranges").default;
const origCreateRange = PartitionKeyRanges.prototype.create;
PartitionKeyRanges.prototype.create = function create(data) {
  return origCreateRange.call(this, {
    ...data,
    id: String(data.id),
    parents: (data.parents || []).map(String)
  });
};

// --- Fix: resource ids use Cosmos's alphabet (`-` for Base64's `/`) -----------
// Ids are counters in Base64; from about the 63rd database on, the plain
// alphabet yields a `/`, which the Rust SDK rejects ("failed to extract
// database RID") because Cosmos writes `-` there, RIDs being path segments.
const ResourceId = lib("account/resource-id").default;
ResourceId.toBase64String = buffer => buffer.toString("base64").replace(/\//g, "-");
ResourceId.fromBase64String = s => Buffer.from(String(s).replace(/-/g, "/"), "base64");

// --- Fix: document etags look like real Cosmos etags ----------------------
// The server uses a bare UUID; Cosmos uses a quoted one ("\"...\"", also as
// the `etag` header). Clients echo it in If-Match, so quoting here makes tests
// exercise the same header values as production.
const Documents = lib("account/documents").default;
const origSet = Documents.prototype._set;
Documents.prototype._set = function set(data) {
  if (typeof data._etag === "string" && !data._etag.startsWith('"')) {
    // eslint-disable-next-line no-param-reassign
    data._etag = `"${data._etag}"`;
  }
  // Test aid: a document written with `_emulatorTs: N` is stored with `_ts: N`
  // (the property itself is dropped), as a point-in-time restore of an account
  // brings back versions with the `_ts` they had: tests can put an older
  // version back the way a restore would. No SDK sends such a property.
  if (typeof data._emulatorTs === "number") {
    // eslint-disable-next-line no-param-reassign
    data._ts = data._emulatorTs;
    // eslint-disable-next-line no-param-reassign
    delete data._emulatorTs;
  }
  return origSet.call(this, data);
};

// --- Fix: queries/read-feeds ignore the partition-key header --------------
// A request with x-ms-documentdb-partitionkey is scoped to that logical
// partition in Cosmos; the server ran it over the whole container. The scope
// is carried from the handler to Documents.query/read via AsyncLocalStorage
// (safe with concurrent requests), and the item map is narrowed for the
// (synchronous) duration of the call.
const partitionScope = new AsyncLocalStorage();
const getValue = (obj, keys) =>
  keys.reduce((v, k) => (v == null ? undefined : v[k]), obj);
const partitionFilter = (collection, header) => {
  let values;
  try {
    values = JSON.parse(header);
  } catch (err) {
    return null;
  }
  if (!Array.isArray(values)) values = [values];
  const paths = (((collection.read() || {}).partitionKey || {}).paths || [])
    .map(p => p.slice(1).split("/"));
  // Fewer values than paths = prefix of a hierarchical key.
  return doc =>
    values.every((want, i) => {
      if (i >= paths.length) return true;
      const have = getValue(doc, paths[i]);
      // `{}` is how SDKs encode "no value" (PartitionKey.None / undefined).
      if (want && typeof want === "object") return have === undefined;
      return have === want;
    });
};
const scoped = orig =>
  function scopedCall(...args) {
    const filter = partitionScope.getStore();
    if (!filter) return orig.apply(this, args);
    const all = this._data;
    this._data = new Map([...all].filter(([, item]) => filter(item.read())));
    try {
      return orig.apply(this, args);
    } finally {
      this._data = all;
    }
  };
Documents.prototype.query = scoped(Documents.prototype.query);
Documents.prototype.read = scoped(Documents.prototype.read);

// --- Fix: a query page is at most 4 MB, as in Cosmos DB -----------------------
// Cosmos ends a query page at about 4 MB of documents whatever the max item
// count asks for (and continues with a continuation token); the server sent every
// item asked for in one answer, so a client's memory under large records could
// not be measured as it is against Azure. A page that would exceed the limit is
// asked for again with fewer items, so its continuation token is the server's own.
const PAGE_MAX_BYTES = Number(process.env.COSMOS_EMULATOR_PAGE_MAX_BYTES || 4 * 1024 * 1024);
const unlimitedQuery = Documents.prototype.query;
Documents.prototype.query = function cappedQuery(params, options = {}) {
  const first = unlimitedQuery.call(this, params, options);
  if (!first || !Array.isArray(first.result)) return first;
  let bytes = 0;
  let fit = 0;
  for (const item of first.result) {
    bytes += Buffer.byteLength(JSON.stringify(item));
    if (bytes > PAGE_MAX_BYTES && fit > 0) break;
    fit += 1;
  }
  if (fit >= first.result.length) return first;
  return unlimitedQuery.call(this, params, { ...options, maxItemCount: fit });
};

// --- Test aid: physical partitions --------------------------------------------
// The server has one partition key range; Cosmos splits a container into
// physical partitions (at most 50 GB each), each with its share of the
// throughput, and SDKs drain a cross-partition query one range at a time. With
// COSMOS_EMULATOR_PARTITIONS=K every container created with a hash partition
// key (version 2, as azure_data_cosmos creates them) reports K ranges of the
// effective-partition-key (EPK) space, hashed as Cosmos does (MurmurHash3 of the
// key, from @azure/cosmos's own hashing), and answers what the Rust driver asks:
// - `pkranges` (a ReadFeed with If-None-Match: 304 only when nothing changed
//   since that etag, so a client refreshing after a split sees the children);
// - queries scoped to a range (`x-ms-documentdb-partitionkeyrangeid`, narrowed
//   by `x-ms-start-epk`/`x-ms-end-epk`) see only that range's documents; a range
//   that no longer exists is 410 with sub-status 1002 (PartitionKeyRangeGone),
//   on which the driver re-reads the ranges and goes on in the children;
// - with COSMOS_EMULATOR_RANGE_RU_PER_SECOND=R each range spends at most R RU a
//   second (a bucket of one second's worth), and a document request on a range
//   whose bucket is spent is 429 with x-ms-retry-after-ms, as Cosmos throttles
//   a hot partition;
// - `POST /_emulator/split?db=D&coll=C&range=ID` splits a range in two at its
//   EPK midpoint (children get new ids, the parent among their `parents`).
// K=1 (the default) keeps the server's single range "" to "FF".
const PARTITIONS = Math.max(1, Math.min(64, Number(process.env.COSMOS_EMULATOR_PARTITIONS || 1) | 0));
const RANGE_RU_PER_SECOND = Number(process.env.COSMOS_EMULATOR_RANGE_RU_PER_SECOND || 0);
const cosmosSdkRoot = path.dirname(require.resolve("@azure/cosmos/package.json"));
// The package's exports map hides its internals; its hashing needs no other module.
const { hashV2PartitionKey } = require(path.join(cosmosSdkRoot, "dist/commonjs/utils/hashing/v2.js"));
// A V2 EPK is 32 hex digits whose first byte is at most 0x3F: the space ends at 0x40 << 120.
const EPK_END = BigInt(0x40) << 120n;
const toEpk = n => n.toString(16).toUpperCase().padStart(32, "0");
const fromEpk = e => (e === "" ? 0n : e === "FF" ? EPK_END : BigInt(`0x${e}`));
const topologies = new Map(); // collection _rid -> { version, nextId, ranges }
let accountRef = null; // the server's account, for the split test aid

function topologyOf(collection) {
  let topo = topologies.get(collection._rid);
  if (topo) return topo;
  const pk = collection.partitionKey || {};
  const k = pk.version === 2 && (pk.kind || "Hash") === "Hash" && (pk.paths || []).length === 1 ? PARTITIONS : 1;
  const bounds = [""];
  for (let i = 1; i < k; i += 1) bounds.push(toEpk((EPK_END * BigInt(i)) / BigInt(k)));
  bounds.push("FF");
  topo = {
    version: 1,
    nextId: k,
    ranges: bounds.slice(0, -1).map((min, i) => ({ id: String(i), min, max: bounds[i + 1], parents: [], bucket: null }))
  };
  topologies.set(collection._rid, topo);
  return topo;
}

// The EPK of a partition-key value (a string, number, boolean or null).
function epkOf(value) {
  if (value === undefined) return "";
  try {
    return hashV2PartitionKey([value]);
  } catch (err) {
    return "";
  }
}

const inRange = (epk, min, max) => epk >= min && (max === "FF" || epk < max);
const toEpkOrMax = n => (n >= EPK_END ? "FF" : toEpk(n));

function rangeOfKey(topo, header) {
  let values;
  try {
    values = JSON.parse(header);
  } catch (err) {
    return null;
  }
  if (!Array.isArray(values) || values.length !== 1 || (values[0] && typeof values[0] === "object")) return null;
  const epk = epkOf(values[0]);
  return topo.ranges.find(r => inRange(epk, r.min, r.max)) || null;
}

// Before a document request on `range`: its bucket refilled, and the milliseconds
// to wait when it is spent (0: go ahead). The charge is taken after the answer.
function throttleWait(range) {
  if (!(RANGE_RU_PER_SECOND > 0) || !range) return 0;
  const now = Date.now();
  const b = range.bucket || (range.bucket = { balance: RANGE_RU_PER_SECOND, at: now });
  b.balance = Math.min(RANGE_RU_PER_SECOND, b.balance + ((now - b.at) / 1000) * RANGE_RU_PER_SECOND);
  b.at = now;
  return b.balance >= 0 ? 0 : Math.ceil((-b.balance / RANGE_RU_PER_SECOND) * 1000);
}

function throttled(res, waitMs) {
  res.statusCode = 429;
  res.setHeader("x-ms-retry-after-ms", String(Math.max(1, waitMs)));
  res.setHeader("x-ms-substatus", "3200");
  res.emulatorCharge = 0;
  return { code: "TooManyRequests", message: "Request rate is large (the emulator's per-range RU budget)." };
}

function splitRange(topo, id) {
  const at = topo.ranges.findIndex(r => r.id === String(id));
  if (at < 0) return false;
  const r = topo.ranges[at];
  const mid = toEpk((fromEpk(r.min) + fromEpk(r.max)) / 2n);
  const parents = [...r.parents, r.id];
  const left = { id: String(topo.nextId), min: r.min, max: mid, parents, bucket: null };
  const right = { id: String(topo.nextId + 1), min: mid, max: r.max, parents, bucket: null };
  topo.nextId += 2;
  topo.ranges.splice(at, 1, left, right);
  topo.version += 1;
  return true;
}

function gone(res) {
  res.statusCode = 410;
  res.setHeader("x-ms-substatus", "1002");
  return {
    code: "Gone",
    message: "The partition key range specified by the request is no longer present (split/merge)."
  };
}

// --- Handler wrappers (must run before the package's router is loaded) ----
const wrapHandler = (name, wrap) => {
  const mod = lib(`handler/${name}`);
  mod.default = wrap(mod.default);
};
// Fix: a point read of a missing item crashed with 500 ("Cannot read
// properties of undefined"); Cosmos answers 404 NotFound.
const {
  parsePartitionKey
} = lib("utils/get-partition-from-header");
wrapHandler("read-document", orig => (account, req, res, params) => {
  const header = req.headers[PK_HEADER];
  if (header !== undefined) {
    let pk;
    try {
      pk = parsePartitionKey(header, params.docId);
    } catch (err) {
      res.statusCode = 400;
      return { code: "BadRequest", message: err.message };
    }
    const collection = account.database(params.dbId).collection(params.collId);
    const doc = collection.document(params.docId, pk).read();
    if (!doc) return notFound(res);
    // Fix: If-None-Match was ignored on point reads; Cosmos answers 304 Not
    // Modified, without a body, while the item is still at that ETag.
    if (req.headers["if-none-match"] && req.headers["if-none-match"] === doc._etag) {
      res.statusCode = 304;
      res.setHeader("etag", doc._etag);
      return {};
    }
  }
  return orig(account, req, res, params);
});

// Query plans. SDKs ask the gateway for one before a cross-partition query
// (x-ms-cosmos-is-query-plan-request: True). The server treated it as a
// normal query and returned documents, which SDKs cannot parse as a plan.
// (Python sends it as a plain JSON POST; the Rust SDK only when its local
// planner gives up, e.g. for aggregates.) The server has exactly one
// partition key range and evaluates whole queries itself (ORDER BY, TOP,
// aggregates), so the correct plan is the minimal one: "no client-side
// work, one full range".
const cosmosQuery = require("@zeit/cosmosdb-query");
const readJson = lib("json").default;
// Aggregates are declared as Cosmos declares them, so an SDK that cannot merge
// them across partitions refuses the query here as it does against Azure (the
// Rust SDK 1.0 does: "aggregates in cross-partition queries").
const AGGREGATES = { COUNT: "Count", SUM: "Sum", MIN: "Min", MAX: "Max", AVG: "Average" };
const aggregatesOf = query => {
  const select = String(query).split(/\bFROM\b/i)[0];
  return Object.keys(AGGREGATES)
    .filter(name => new RegExp(`\\b${name}\\s*\\(`, "i").test(select))
    .map(name => AGGREGATES[name]);
};
const queryPlan = (ast, query) => ({
  partitionedQueryExecutionInfoVersion: 2,
  queryInfo: {
    distinctType: "None",
    top: null,
    offset: null,
    limit: null,
    orderBy: [],
    orderByExpressions: [],
    groupByExpressions: [],
    groupByAliases: [],
    aggregates: aggregatesOf(query),
    groupByAliasToAggregateType: {},
    rewrittenQuery: "",
    hasSelectValue: Boolean(ast.body && ast.body.select && ast.body.select.value),
    hasNonStreamingOrderBy: false,
    dCountInfo: null
  },
  queryRanges: [{ min: "", max: "FF", isMinInclusive: true, isMaxInclusive: false }]
});

wrapHandler("query-documents", orig => async (account, req, res, params) => {
  if (isTrue(req, "x-ms-cosmos-is-query-plan-request")) {
    const body = await readJson(req);
    try {
      return queryPlan(cosmosQuery.default(String(body.query || "")).ast, body.query || "");
    } catch (err) {
      res.statusCode = 400;
      return { code: "BadRequest", message: err.message };
    }
  }
  const header = req.headers[PK_HEADER];
  if (header !== undefined && header !== "[]") {
    const filter = partitionFilter(
      account.database(params.dbId).collection(params.collId),
      header
    );
    if (!filter) {
      res.statusCode = 400;
      return { code: "BadRequest", message: `invalid ${PK_HEADER}: ${header}` };
    }
    // The server rejects queries without a partition-key filter in their
    // WHERE clause unless cross-partition is enabled; the header is the
    // scope, so skip that check.
    req.headers["x-ms-documentdb-query-enablecrosspartition"] = "True";
    return partitionScope.run(filter, () => orig(account, req, res, params));
  }
  // Fix: the Rust SDK runs cross-partition queries by targeting each range
  // (x-ms-documentdb-partitionkeyrangeid, narrowed by x-ms-start-epk and
  // x-ms-end-epk) without x-ms-documentdb-query-enablecrosspartition, which
  // Cosmos accepts but the server rejected ("missing partition keys"). Such a
  // query sees the documents of that range (of all, with one range).
  const rangeHeader = req.headers["x-ms-documentdb-partitionkeyrangeid"];
  if (rangeHeader !== undefined || req.headers["x-ms-start-epk"] !== undefined) {
    req.headers["x-ms-documentdb-query-enablecrosspartition"] = "True";
    const data = account.database(params.dbId).collection(params.collId).read();
    if (!data) return orig(account, req, res, params);
    const topo = topologyOf(data);
    let range = null;
    if (rangeHeader !== undefined) {
      const id = String(rangeHeader).split(",").pop().trim();
      range = topo.ranges.find(r => r.id === id);
      if (!range) return gone(res);
    }
    const wait = throttleWait(range);
    if (wait > 0) return throttled(res, wait);
    res.emulatorRange = range;
    const lo = [range ? range.min : "", req.headers["x-ms-start-epk"] || ""].reduce((a, b) => (a > b ? a : b));
    const his = [range ? range.max : "FF", req.headers["x-ms-end-epk"] || "FF"].map(fromEpk);
    const hi = toEpkOrMax(his[0] < his[1] ? his[0] : his[1]);
    const whole = lo === "" && hi === "FF";
    if (whole) return orig(account, req, res, params);
    const path = ((data.partitionKey || {}).paths || ["/id"])[0].slice(1).split("/");
    return partitionScope.run(doc => inRange(epkOf(getValue(doc, path)), lo, hi), () => orig(account, req, res, params));
  }
  return orig(account, req, res, params);
});

// Test aid: with COSMOS_EMULATOR_REPEAT_FIRST=1 every query page carries its
// first document twice, as a query re-opened from an earlier position would
// deliver records again; the archiver must take each record once.
if (process.env.COSMOS_EMULATOR_REPEAT_FIRST === "1") {
  wrapHandler("query-documents", orig => async (account, req, res, params) => {
    const body = await orig(account, req, res, params);
    if (!isTrue(req, "x-ms-cosmos-is-query-plan-request") && body && Array.isArray(body.Documents) && body.Documents.length > 0) {
      body.Documents.push(body.Documents[0]);
      body._count = body.Documents.length;
    }
    return body;
  });
}

wrapHandler("read-documents", orig => (account, req, res, params) => {
  const header = req.headers[PK_HEADER];
  if (header === undefined) return orig(account, req, res, params);
  const filter = partitionFilter(
    account.database(params.dbId).collection(params.collId),
    header
  );
  return partitionScope.run(filter, () => orig(account, req, res, params));
});

// Partition key ranges as the topology says (see "physical partitions" above).
// The package answered a ReadFeed with If-None-Match with 304 whatever the etag
// (after its own handler), so a-im is taken out of its sight.
wrapHandler("read-partition-key-ranges", () => (account, req, res, params) => {
  const data = account.database(params.dbId).collection(params.collId).read();
  if (!data) return notFound(res);
  const topo = topologyOf(data);
  const etag = `"pkranges-${topo.version}"`;
  const seen = req.headers["if-none-match"];
  delete req.headers["a-im"];
  res.setHeader("etag", etag);
  if (seen === etag) {
    res.statusCode = 304;
    return {};
  }
  const ranges = topo.ranges.map(r => ({
    id: r.id,
    _rid: `${data._rid}${r.id}`,
    minInclusive: r.min,
    maxExclusive: r.max,
    ridPrefix: Number(r.id),
    throughputFraction: 1 / topo.ranges.length,
    status: "online",
    parents: r.parents
  }));
  return { _rid: data._rid, PartitionKeyRanges: ranges, _count: ranges.length };
});

// Fix: in plain-HTTP mode the account document still advertised https://
// endpoints; SDKs then send every later request there and fail.
wrapHandler("read-meta", orig => (account, req, res, params) => {
  accountRef = account;
  const meta = orig(account, req, res, params);
  const endpoint = `http://${req.headers.host || `${HOST}:${req.socket.localPort}`}/`;
  const fix = locations =>
    (locations || []).map(l => ({ ...l, databaseAccountEndpoint: endpoint }));
  return {
    ...meta,
    writableLocations: fix(meta.writableLocations),
    readableLocations: fix(meta.readableLocations)
  };
});

const DOC_HANDLERS = [
  "batch-documents",
  "create-document",
  "delete-document",
  "patch-document",
  "query-documents",
  "read-document",
  "read-documents",
  "replace-document",
  "upsert-document"
];
// Charges: a delete costs by the size of the item it deletes, like a write (the
// server's answer is empty, so the size is taken from the item before it goes).
wrapHandler("delete-document", orig => (account, req, res, params) => {
  const header = req.headers[PK_HEADER];
  if (header !== undefined) {
    try {
      const pk = parsePartitionKey(header, params.docId);
      const item = account.database(params.dbId).collection(params.collId).document(params.docId, pk).read();
      if (item) res.deletedItemBytes = Buffer.byteLength(JSON.stringify(item));
    } catch (err) {
      // the handler itself answers a malformed key
    }
  }
  return orig(account, req, res, params);
});

// Fix: document operations on a missing database/collection crashed (500)
// instead of answering 404 NotFound. Applied last, so it runs first.
DOC_HANDLERS.forEach(name =>
  wrapHandler(name, orig => (account, req, res, params) => {
    const collection = account.database(params.dbId).collection(params.collId);
    if (!collection.read()) return notFound(res);
    return orig(account, req, res, params);
  })
);

// Point operations spend their range's budget (see "physical partitions").
["create-document", "delete-document", "patch-document", "read-document", "replace-document", "upsert-document"].forEach(
  name =>
    wrapHandler(name, orig => (account, req, res, params) => {
      const header = req.headers[PK_HEADER];
      if (RANGE_RU_PER_SECOND > 0 && header !== undefined) {
        const data = account.database(params.dbId).collection(params.collId).read();
        const range = data ? rangeOfKey(topologyOf(data), header) : null;
        const wait = throttleWait(range);
        if (wait > 0) return throttled(res, wait);
        res.emulatorRange = range;
      }
      return orig(account, req, res, params);
    })
);

// --- Response fixes (every request) ----------------------------------------
const ERROR_CODES = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  409: "Conflict",
  412: "PreconditionFailed",
  413: "RequestEntityTooLarge",
  429: "TooManyRequests",
  500: "InternalServerError"
};
// Plausible request charge. The server always says 1; real reads cost about
// 1 RU + 0.08 RU/KB and writes (deletes included) about 5 times that, which
// lets RU accounting code see realistic, size-dependent numbers.
const requestCharge = (req, res, bodyLength) => {
  const requestLength = parseInt(req.headers["content-length"] || "0", 10) || 0;
  const kb = Math.max(bodyLength, requestLength, res.deletedItemBytes || 0) / 1024;
  const isWrite =
    res.statusCode < 300 &&
    (req.method === "PUT" ||
      req.method === "PATCH" ||
      req.method === "DELETE" ||
      (req.method === "POST" &&
        !isTrue(req, "x-ms-documentdb-isquery") &&
        req.headers["content-type"] !== "application/query+json"));
  const charge = (1 + kb * 0.08) * (isWrite ? 5 : 1);
  return charge.toFixed(2);
};
const fixExchange = (req, res) => {
  // Fix: Python's query-plan request is a POST with Content-Type
  // application/json and no x-ms-documentdb-isquery, so the router took it
  // for "create document" (400 "missing id"). Route it as a query, where the
  // query-documents wrapper answers it.
  if (req.method === "POST" && isTrue(req, "x-ms-cosmos-is-query-plan-request")) {
    req.headers["x-ms-documentdb-isquery"] = "True";
  }
  const end = res.end.bind(res);
  res.end = (chunk, ...rest) => {
    let body = chunk;
    if (!res.headersSent) {
      // Fix: error bodies often lacked Cosmos' {"code","message"} shape
      // (e.g. 404 `{}` for delete/replace of a missing item), and a malformed
      // partition-key header crashed with 500 instead of 400.
      if (res.statusCode >= 400 && typeof body === "string") {
        try {
          const err = JSON.parse(body);
          if (err && typeof err === "object" && !Array.isArray(err)) {
            if (
              res.statusCode === 500 &&
              /x-ms-documentdb-partitionkey/.test(err.message || "")
            ) {
              res.statusCode = 400;
            }
            if (!err.code) err.code = ERROR_CODES[res.statusCode] || String(res.statusCode);
            if (!err.message) {
              err.message =
                res.statusCode === 404
                  ? "Entity with the specified id does not exist in the system."
                  : err.code;
            }
            body = JSON.stringify(err);
          }
        } catch (e) {
          // not JSON: leave as is
        }
      }
      const charge =
        res.emulatorCharge === 0 ? "0.00" : requestCharge(req, res, typeof body === "string" ? Buffer.byteLength(body) : 0);
      res.setHeader("x-ms-request-charge", charge);
      if (res.emulatorRange && res.emulatorRange.bucket) res.emulatorRange.bucket.balance -= Number(charge);
      // Same https-in-HTTP-mode defect as the account document.
      res.setHeader("content-location", `http://${req.headers.host}${req.url}`);
    }
    return end(body, ...rest);
  };
};

// --- Start -------------------------------------------------------------------
function parsePort(argv, env) {
  let port = env.COSMOS_EMULATOR_PORT || "0";
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === "--port" || argv[i] === "-p") port = argv[(i += 1)];
    else if (/^--port=/.test(argv[i])) port = argv[i].slice(7);
    else if (/^\d+$/.test(argv[i])) port = argv[i];
  }
  const n = Number(port);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new Error(`invalid port: ${port}`);
  }
  return n;
}

// --- Test aid: injected faults ------------------------------------------------
// The server never throttles or fails, so clients' handling of that could not be
// tested. With COSMOS_EMULATOR_THROTTLE_EVERY=N every Nth document request (reads,
// queries, writes, deletes) is answered 429 with x-ms-retry-after-ms, as Cosmos
// does when a partition's RU budget is spent. N=1 faults every one of them.
// COSMOS_EMULATOR_FAULT_METHOD=DELETE (any HTTP method, or QUERY for queries
// only) limits the faults to those requests; COSMOS_EMULATOR_FAULT_STATUS=503 (or
// 400, 403, ...) answers that status instead. A 400 carries the message Cosmos
// gives a query its indexing policy cannot serve.
const FAULT_BODIES = {
  400: {
    code: "BadRequest",
    message:
      "The order by query does not have a corresponding composite index that it can be served from. (injected)"
  },
  403: { code: "Forbidden", message: "Request blocked (injected by COSMOS_EMULATOR_FAULT_STATUS)" },
  429: {
    code: "TooManyRequests",
    message: "Request rate is large (injected by COSMOS_EMULATOR_THROTTLE_EVERY)"
  },
  503: { code: "ServiceUnavailable", message: "Service is unavailable (injected by COSMOS_EMULATOR_FAULT_STATUS)" }
};
function injectFaults(server, every, method, status) {
  if (!Number.isInteger(every) || every <= 0) return;
  const handlers = server.listeners("request");
  server.removeAllListeners("request");
  let count = 0;
  server.on("request", (req, res) => {
    const path = (req.url || "").split("?")[0];
    const isQuery =
      req.method === "POST" &&
      (isTrue(req, "x-ms-documentdb-isquery") || req.headers["content-type"] === "application/query+json");
    const wanted = !method || (method === "QUERY" ? isQuery : req.method === method);
    const matches = /\/docs(\/|$)/.test(path) && wanted;
    if (matches && (count += 1) % every === 0) {
      res.statusCode = status;
      res.setHeader("content-type", "application/json");
      if (status === 429) {
        res.setHeader("x-ms-retry-after-ms", "20");
        res.setHeader("x-ms-substatus", "3200");
      }
      res.setHeader("x-ms-request-charge", "0");
      res.end(JSON.stringify(FAULT_BODIES[status] || { code: String(status), message: "injected fault" }));
      return;
    }
    for (const handler of handlers) handler.call(server, req, res);
  });
}

function start(port = 0) {
  // Loaded only now, so its router picks up the wrapped handlers above.
  const { createHttpServer } = require("@vercel/cosmosdb-server");
  const server = createHttpServer({ keepAlive: true });
  // Keep idle connections longer than clients' pools do (hyper/reqwest: 90 s)
  // so a client never reuses a connection the server is just closing
  // (Node's default is 5 s, a classic source of flaky "connection closed").
  server.keepAliveTimeout = 120 * 1000;
  server.headersTimeout = 121 * 1000;
  server.prependListener("request", fixExchange);
  // Test aid: POST /_emulator/split?db=D&coll=C&range=ID (see "physical partitions").
  const handlers = server.listeners("request");
  server.removeAllListeners("request");
  server.on("request", (req, res) => {
    const url = new URL(req.url || "/", "http://emulator");
    // Test aid: offers (a container's throughput). With COSMOS_EMULATOR_THROUGHPUT
    // unset the account answers as a serverless one does (400); "manual:N" or
    // "autoscale:MAX" gives every container that offer.
    if (req.method === "POST" && /^\/offers\/?$/.test(url.pathname)) {
      let text = "";
      req.on("data", chunk => {
        text += chunk;
      });
      req.on("end", () => {
        const offer = process.env.COSMOS_EMULATOR_THROUGHPUT || "";
        res.setHeader("content-type", "application/json");
        res.setHeader("x-ms-request-charge", "1");
        if (!offer) {
          res.statusCode = 400;
          res.end(
            JSON.stringify({
              code: "BadRequest",
              message: "Reading or replacing offers is not supported for serverless accounts."
            })
          );
          return;
        }
        let rid = "";
        try {
          rid = (JSON.parse(text).parameters || []).find(p => p.name === "@rid").value;
        } catch (err) {
          // no parameter: no offer found
        }
        const [kind, amount] = offer.split(":");
        const n = Number(amount);
        const content =
          kind === "autoscale"
            ? { offerThroughput: Math.max(400, n / 10), offerAutopilotSettings: { maxThroughput: n } }
            : { offerThroughput: n };
        const offers = rid
          ? [{ id: "of1", _rid: "of1", _self: "offers/of1/", _etag: '"of1"', _ts: Math.floor(Date.now() / 1000),
               resource: `colls/${rid}/`, offerResourceId: rid, offerType: "Invalid", offerVersion: "V2", content }]
          : [];
        res.end(JSON.stringify({ _rid: "", Offers: offers, _count: offers.length }));
      });
      return;
    }
    // Test aid: COSMOS_EMULATOR_EXPECT_HEADERS="name=value;..." refuses (400) any
    // document request that does not carry each header with that value: how a test
    // proves a client sends its priority level and throughput bucket.
    const expected = (process.env.COSMOS_EMULATOR_EXPECT_HEADERS || "").split(";").filter(Boolean);
    if (expected.length && /\/docs(\/|$)/.test(url.pathname)) {
      const missing = expected.find(pair => {
        const [name, value] = pair.split("=");
        return String(req.headers[name.toLowerCase()] || "") !== value;
      });
      if (missing) {
        res.statusCode = 400;
        res.setHeader("content-type", "application/json");
        res.setHeader("x-ms-request-charge", "0");
        res.end(JSON.stringify({ code: "BadRequest", message: `expected header ${missing} (COSMOS_EMULATOR_EXPECT_HEADERS)` }));
        return;
      }
    }
    if (req.method === "POST" && url.pathname === "/_emulator/split") {
      const collection =
        accountRef && accountRef.database(url.searchParams.get("db")).collection(url.searchParams.get("coll")).read();
      const ok = Boolean(collection) && splitRange(topologyOf(collection), url.searchParams.get("range"));
      res.statusCode = ok ? 200 : 404;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(ok ? { ranges: topologyOf(collection).ranges.map(r => ({ id: r.id, min: r.min, max: r.max })) } : { code: "NotFound" }));
      return;
    }
    for (const handler of handlers) handler.call(server, req, res);
  });
  injectFaults(
    server,
    Number(process.env.COSMOS_EMULATOR_THROTTLE_EVERY || 0),
    process.env.COSMOS_EMULATOR_FAULT_METHOD || "",
    Number(process.env.COSMOS_EMULATOR_FAULT_STATUS || 429)
  );
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, HOST, () => resolve(server));
  });
}

if (require.main === module) {
  start(parsePort(process.argv.slice(2), process.env)).then(
    server => {
      const { port } = server.address();
      // eslint-disable-next-line no-console
      console.log(`cosmos-server listening on http://${HOST}:${port}/`);
      // Everything is in memory: nothing to flush, exit at once.
      const stop = () => process.exit(0);
      process.on("SIGTERM", stop);
      process.on("SIGINT", stop);
    },
    err => {
      // eslint-disable-next-line no-console
      console.error(`cosmos-server failed to start: ${err.message}`);
      process.exit(1);
    }
  );
}

module.exports = { start };
