#!/usr/bin/env node
"use strict";
/*
 * Prints an account SAS (query string, no leading "?") for Azurite's
 * well-known development account devstoreaccount1: all services, resource
 * types and permissions, http and https, valid from now for 10 years
 * (or `--years N`; `--resource-types o` limits it to blobs). Used by scripts/emulators.sh; the Rust blob SDK has no
 * shared-key auth, so tests authenticate with this SAS.
 */
const crypto = require("crypto");

const ACCOUNT = "devstoreaccount1";
// Public, documented Azurite/Storage Emulator key; not a secret.
const KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

function accountSas({ years = 10, now = new Date(), resourceTypes = "sco" } = {}) {
  const expiry = new Date(now.getTime());
  expiry.setUTCFullYear(expiry.getUTCFullYear() + years);
  const values = {
    sv: "2021-08-06", // >= 2020-12-06: the string to sign has the encryption-scope line
    ss: "bfqt",
    srt: resourceTypes,
    sp: "rwdxylacuptfi",
    se: `${expiry.toISOString().slice(0, 19)}Z`,
    spr: "https,http" // Azurite serves plain HTTP
  };
  const stringToSign = [
    ACCOUNT,
    values.sp,
    values.ss,
    values.srt,
    "", // st (start): none
    values.se,
    "", // sip
    values.spr,
    values.sv,
    "", // ses (encryption scope)
    "" // account SAS ends with a newline
  ].join("\n");
  const sig = crypto
    .createHmac("sha256", Buffer.from(KEY, "base64"))
    .update(stringToSign, "utf8")
    .digest("base64");
  return Object.entries({ ...values, sig })
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join("&");
}

if (require.main === module) {
  const i = process.argv.indexOf("--years");
  const years = i > 0 ? Number(process.argv[i + 1]) : 10;
  // --resource-types o: blobs only, no container operations (as the archiver's
  // role in Azure: it may not create the archive container).
  const r = process.argv.indexOf("--resource-types");
  const resourceTypes = r > 0 ? process.argv[r + 1] : "sco";
  process.stdout.write(`${accountSas({ years, resourceTypes })}\n`);
}

module.exports = { accountSas };
