#!/usr/bin/env python3
"""Writes the seed inputs of the signature_headers fuzz target into seeds/signature_headers/.

Without seeds libFuzzer rarely builds a signature of the right length (64 hex digits after
`sha256=`, 44 base64 characters, ...), so the MAC, Ed25519 and timestamp code behind the
header parsing stays unreached. Every seed here is well formed but must still fail to
verify: wrong signatures, or a right signature over a stale timestamp (Stale) or over a
JWS whose claims name another body (Mismatch). A seed that verified would trip the target's
assertion, so run the target over the seeds after changing this script.

Layout (see fuzz_targets/signature_headers.rs): selector byte, u16 LE length of the header
region, the region (NUL-separated fields), then the body.
"""

import base64
import hashlib
import hmac
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "signature_headers")

# Selector values, in the target's SCHEMES order.
GITHUB, STRIPE, SLACK, PAGERDUTY, STANDARD, ZENDESK, DISCORD, TWILIO, NETLIFY, TOKEN = range(10)
SVIX = 0x80  # bit 7: svix-* header names for Standard Webhooks

SECRET = b"It's a Secret to Everybody"  # the target's first HMAC secret
WHSEC = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
NETLIFY_SECRET = b"netlify-jws-secret"
NOW = 1_700_000_000  # the target's fixed clock
STALE = NOW - 3600  # outside every 300 s window

BODY = b'{"action":"opened","id":1,"type":"ticket.created"}'
FORM = b"CallSid=CA123&From=%2B15551234567&To=%2B15557654321&Body=hi"


def mac(key, msg, digest=hashlib.sha256):
    return hmac.new(key, msg, digest).digest()


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def seed(selector, fields, body):
    region = b"\0".join(fields)
    return bytes([selector]) + struct.pack("<H", len(region)) + region + body


def seeds():
    wrong = mac(b"not the secret", BODY)
    ts = str(STALE).encode()
    yield "github_wrong", seed(GITHUB, [b"sha256=" + wrong.hex().encode()], BODY)
    yield "stripe_stale", seed(
        STRIPE,
        [b"t=" + ts + b",v1=" + mac(SECRET, ts + b"." + BODY).hex().encode() + b",v0=" + wrong.hex().encode()],
        BODY,
    )
    yield "stripe_wrong", seed(STRIPE, [b"t=" + str(NOW).encode() + b",v1=" + wrong.hex().encode()], BODY)
    yield "slack_stale", seed(
        SLACK, [b"v0=" + mac(SECRET, b"v0:" + ts + b":" + BODY).hex().encode(), ts], BODY
    )
    yield "pagerduty_wrong", seed(
        PAGERDUTY, [b"v1=" + wrong.hex().encode() + b", v1=" + mac(b"x", BODY).hex().encode()], BODY
    )
    msg_id = b"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    v1 = base64.b64encode(mac(WHSEC, msg_id + b"." + ts + b"." + BODY))
    v1a = base64.b64encode(bytes(64))
    yield "standard_stale", seed(STANDARD, [b"v1," + v1 + b" v1a," + v1a, msg_id, ts], BODY)
    yield "svix_wrong", seed(
        STANDARD | SVIX, [b"v1," + base64.b64encode(wrong), msg_id, str(NOW).encode()], BODY
    )
    zts = b"2023-11-14T21:13:20Z"  # NOW - 3600 s
    yield "zendesk_stale", seed(ZENDESK, [base64.b64encode(mac(SECRET, zts + BODY)), zts], BODY)
    yield "discord_wrong", seed(DISCORD, [(wrong + wrong).hex().encode(), str(NOW).encode()], BODY)
    yield "twilio_wrong", seed(TWILIO, [base64.b64encode(wrong[:20])], FORM)
    sha = hashlib.sha256(BODY).hexdigest().encode()
    yield "twilio_url_wrong", seed(
        TWILIO,
        [base64.b64encode(wrong[:20]), b"https://example.com:8443/hook?bodySHA256=" + sha],
        BODY,
    )
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = b64url(
        json.dumps(
            {"iss": "netlify", "sha256": hashlib.sha256(b"another body").hexdigest()}, separators=(",", ":")
        ).encode()
    )
    signing_input = head + b"." + claims
    jws = signing_input + b"." + b64url(mac(NETLIFY_SECRET, signing_input))
    yield "netlify_other_body", seed(NETLIFY, [jws], BODY)
    yield "token_bearer_wrong", seed(TOKEN, [b"Bearer not-the-token"], BODY)
    yield "token_basic_wrong", seed(TOKEN, [b"Basic " + base64.b64encode(b"hookwire:not-the-token")], BODY)
    yield "token_header_wrong", seed(TOKEN, [b"Digest x", b"not-the-token"], BODY)


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
