#!/usr/bin/env node
"use strict";
/*
 * Azurite's blob service (azurite 3.35, in memory), with two fixes for speed.
 * Both are in LokiJS, the in-memory database Azurite keeps its metadata in, and
 * both made the emulator slower the more it held, where Azure does not.
 *
 * 1. Lookups.
 * Azurite keeps blob metadata in LokiJS collections indexed on accountName,
 * containerName and name, and looks a blob up with
 * findOne({accountName, containerName, name, snapshot}). LokiJS evaluates the
 * keys in that order: the first (one account) matches every blob, and the
 * rest are checked blob by blob. So each lookup scans the whole store: 0.4 ms
 * at 5,000 blobs, 1.6 ms at 20,000 (measured), several per request. An archive
 * run slowed threefold as its own copies accumulated, and every test ran slower
 * than the last on the shared emulator. Azure's lookups do not grow with the
 * container. The fix: a query that names a blob by equality evaluates that key
 * first (LokiJS' binary index on it), then the others; an implicit AND, so the
 * answer is the same.
 *
 * 2. Removals. Removing documents by query (findAndRemove) rebuilds every
 * binary index of the collection from scratch, a sort of all of it, however
 * few documents go. Azurite's garbage collector removes the extent of each
 * deleted blob that way, one at a time: after a few thousand blob deletes
 * (a plan's trial cleaning up, a restore) the emulator spent minutes at 100%
 * CPU answering nothing (seen: a stack taken with the inspector showed
 * deleteExtent > findAndRemove > removeBatchByPositions > ensureAllIndexes).
 * The fix: a few documents are removed one by one, which updates the indexes
 * in place (LokiJS' own remove); many still go in one batch. 2,000 removals
 * from 20,000 extents: 15.2 s before, 0.25 s after (measured).
 *
 * node_modules is never edited; LokiJS is patched before Azurite loads it.
 *
 * Usage: as azurite-blob (the same arguments).
 */
const path = require("path");
const Loki = require("lokijs");

// Keys that name one blob or block, most selective first.
const SELECTIVE = ["name", "blobName"];
const isEquality = v => v === null || typeof v !== "object" || v instanceof Date;
const find = Loki.Resultset.prototype.find;
Loki.Resultset.prototype.find = function (query, firstOnly) {
  if (query && typeof query === "object" && !Array.isArray(query)) {
    const keys = Object.keys(query);
    const first = SELECTIVE.filter(k => keys.includes(k) && isEquality(query[k]));
    if (keys.length > 1 && first.length > 0 && keys[0] !== first[0]) {
      const reordered = {};
      for (const k of first) reordered[k] = query[k];
      for (const k of keys) if (!(k in reordered)) reordered[k] = query[k];
      return find.call(this, reordered, firstOnly);
    }
  }
  return find.call(this, query, firstOnly);
};

const findAndRemove = Loki.Collection.prototype.findAndRemove;
Loki.Collection.prototype.findAndRemove = function (filterObject) {
  const docs = this.find(filterObject);
  if (docs.length > 64) return findAndRemove.call(this, filterObject);
  for (const doc of docs) this.remove(doc);
};

// Azurite's own entry point reads process.argv as azurite-blob would.
require(path.join(path.dirname(require.resolve("azurite/package.json")), "dist/src/blob/main.js"));
