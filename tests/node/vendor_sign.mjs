#!/usr/bin/env node
// Signs a request body with the vendor's OWN library, for tests/it/vendor_libs.rs.
//
//   node tests/node/vendor_sign.mjs VENDOR SECRET BODY_FILE [EXTRA]
//
// Prints one line of JSON: the headers the vendor would send with BODY_FILE's bytes.
//
//   github             @octokit/webhooks-methods sign(secret, payload)
//                      {"X-Hub-Signature-256", "X-GitHub-Event": EXTRA (default "issues"),
//                       "X-GitHub-Delivery": <random UUID>}
//   stripe             stripe.webhooks.generateTestHeaderString({payload, secret, timestamp: now})
//                      {"Stripe-Signature": "t=<now>,v1=<hex>"}
//   standard-webhooks  new Webhook(secret).sign(msgId, now, payload) from standardwebhooks;
//                      SECRET is the configured "whsec_<base64>" string
//                      {"webhook-id": EXTRA (default msg_<random>), "webhook-timestamp": <now>,
//                       "webhook-signature": "v1,<base64>"}
//
// The libraries are pinned in package.json / package-lock.json (`npm ci --prefix tests/node`).

import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { sign as githubSign } from "@octokit/webhooks-methods";
import Stripe from "stripe";
import { Webhook } from "standardwebhooks";

function fail(message, code = 2) {
  process.stderr.write(`vendor_sign.mjs: ${message}\n`);
  process.exit(code);
}

const [vendor, secret, bodyFile, extra] = process.argv.slice(2);
if (!vendor || !secret || !bodyFile) {
  fail("usage: vendor_sign.mjs github|stripe|standard-webhooks SECRET BODY_FILE [EXTRA]");
}
if (!["github", "stripe", "standard-webhooks"].includes(vendor)) {
  fail(`unknown vendor ${JSON.stringify(vendor)} (github, stripe, standard-webhooks)`);
}

// The libraries sign strings: make sure the file's bytes are exactly the UTF-8 of the string
// they will sign, so the signature covers the bytes the test sends.
let bytes;
try {
  bytes = readFileSync(bodyFile);
} catch (e) {
  fail(`cannot read ${bodyFile}: ${e.message}`);
}
let payload;
try {
  payload = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
} catch (e) {
  fail(`${bodyFile} is not UTF-8: ${e.message}`);
}
if (!Buffer.from(payload, "utf8").equals(bytes)) {
  fail(`${bodyFile} does not round-trip through UTF-8`);
}

const nowSeconds = Math.floor(Date.now() / 1000);
let headers;
switch (vendor) {
  case "github":
    headers = {
      "X-Hub-Signature-256": await githubSign(secret, payload),
      "X-GitHub-Event": extra ?? "issues",
      "X-GitHub-Delivery": randomUUID(),
    };
    break;
  case "stripe": {
    // A dummy API key: constructing the client makes no request, and webhook signing is local.
    const stripe = new Stripe("sk_test_hookwire_vendor_libs");
    headers = {
      "Stripe-Signature": stripe.webhooks.generateTestHeaderString({
        payload,
        secret,
        timestamp: nowSeconds,
      }),
    };
    break;
  }
  case "standard-webhooks": {
    const id = extra ?? `msg_${randomUUID().replaceAll("-", "")}`;
    headers = {
      "webhook-id": id,
      "webhook-timestamp": String(nowSeconds),
      "webhook-signature": new Webhook(secret).sign(id, new Date(nowSeconds * 1000), payload),
    };
    break;
  }
}

process.stdout.write(`${JSON.stringify(headers)}\n`);
