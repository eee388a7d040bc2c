#!/usr/bin/env node
// Verifies with the vendors' OWN libraries what tests/it/cloud_kinds.rs signs, so hookwire's
// verdicts can be compared with theirs:
//
//   node tests/node/cloud_verify.mjs sns MESSAGE_FILE CERT_PEM_FILE
//       sns-validator (AWS's Node validator) MessageValidator.validate; the certificate the
//       message's SigningCertURL names is served from CERT_PEM_FILE instead of the network
//       (https.get is replaced; the URL's host is still checked by the validator's pattern).
//   node tests/node/cloud_verify.mjs google TOKEN_FILE CERT_PEM_FILE KID AUDIENCE
//       google-auth-library OAuth2Client.verifySignedJwtWithCertsAsync with {KID: cert} and
//       Google's issuers, as verifyIdToken does after fetching Google's certificates.
//
// Prints `valid` or `invalid: <reason>` and exits 0 either way (2 on a usage error).

import { readFileSync } from "node:fs";
import https from "node:https";
import { EventEmitter } from "node:events";
import MessageValidator from "sns-validator";
import { OAuth2Client } from "google-auth-library";

const [kind, file, certFile, kid, audience] = process.argv.slice(2);
const say = (verdict) => process.stdout.write(`${verdict}\n`);

if (kind === "sns" && file && certFile) {
  const pem = readFileSync(certFile, "utf8");
  // Serves the certificate for any URL the validator decided to fetch.
  https.get = (_url, cb) => {
    const req = new EventEmitter();
    const res = new EventEmitter();
    res.statusCode = 200;
    process.nextTick(() => {
      cb(res);
      res.emit("data", Buffer.from(pem));
      res.emit("end");
    });
    return req;
  };
  new MessageValidator().validate(readFileSync(file, "utf8"), (err) =>
    say(err ? `invalid: ${err.message}` : "valid"),
  );
} else if (kind === "google" && file && certFile && kid && audience) {
  const client = new OAuth2Client();
  client
    .verifySignedJwtWithCertsAsync(
      readFileSync(file, "utf8").trim(),
      { [kid]: readFileSync(certFile, "utf8") },
      audience,
      ["accounts.google.com", "https://accounts.google.com"],
    )
    .then(() => say("valid"), (e) => say(`invalid: ${e.message}`));
} else {
  process.stderr.write("usage: cloud_verify.mjs sns MESSAGE CERT | google TOKEN CERT KID AUDIENCE\n");
  process.exit(2);
}
