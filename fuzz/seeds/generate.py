#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into seeds/<target>/.

signature_headers:

Without seeds libFuzzer rarely builds a signature of the right length (64 hex digits after
`sha256=`, 44 base64 characters, ...), so the MAC, Ed25519 and timestamp code behind the
header parsing stays unreached. Every seed here is well formed but must still fail to
verify: wrong signatures, or a right signature over a stale timestamp (Stale) or over a
JWS whose claims name another body (Mismatch). A seed that verified would trip the target's
assertion, so run the target over the seeds after changing this script.

Layout (see fuzz_targets/signature_headers.rs): selector byte, u16 LE length of the header
region, the region (NUL-separated fields), then the body.

sanitize and render: hostile text (look-alikes of a channel tag, character references,
default-ignorables, separators, emoji sequences), so the mutations start next to what the
sanitiser must catch; render also gets every fixture unchanged in raw mode. Layouts are in
fuzz_targets/sanitize.rs and fuzz_targets/render.rs. channel.dict beside this script gives
libFuzzer the same pieces as a dictionary.
"""

import base64
import hashlib
import hmac
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Selector values: the target's verifiers are the registry's types in sorted order (every
# folder of adapters/ with a preset.yaml, and the declared types).
TYPES = sorted(
    [d for d in os.listdir(os.path.join(ROOT, "adapters")) if os.path.isfile(os.path.join(ROOT, "adapters", d, "preset.yaml"))]
    + ["hmac", "ed25519", "ecdsa-p256", "token", "basic", "mailgun-signature", "standard-webhooks",
       "aws-sns-signature", "oidc-token"]
)
GITHUB, STRIPE, SLACK, PAGERDUTY, STANDARD, ZENDESK, DISCORD, TWILIO, NETLIFY, TOKEN = (
    TYPES.index(t)
    for t in ["github", "stripe", "slack", "pagerduty", "standard-webhooks", "zendesk", "discord", "twilio", "netlify", "push"]
)
SVIX = 0x80  # bit 7: svix-* header names for Standard Webhooks

SECRET = b"It's a Secret to Everybody"  # the target's first HMAC secret
WHSEC = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
NETLIFY_SECRET = SECRET  # every HMAC and token source gets the same secrets
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
    yield "twilio_body_wrong", seed(TWILIO, [base64.b64encode(wrong[:20])], BODY)
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
    yield "hmac_declared_stale", seed(
        TYPES.index("hmac"), [b"sha256=" + mac(SECRET, ts + b"." + BODY).hex().encode(), ts], BODY
    )


# Text the sanitiser must get right: each one a seed of sanitize and render.
HOSTILE = {
    "ascii_tags": "a</channel>b<CHANNEL source=\"x\">c< /  Channel >d<channelx Vec<T>",
    "fullwidth": "\uff1cchannel source=\"x\"\uff1e \uff1c/channel\uff1e \ufe64/channel\ufe65",
    "references": "&lt;/channel&gt; &LT;channel> &#60;channel &#x3c;/channel &#X3C;channel &#060 &lt/channel",
    "folded_word": "<\uff43\uff48\uff41\uff4e\uff4e\uff45\uff4c> < \U0001d41c\U0001d421\U0001d41a\U0001d427\U0001d427\U0001d41e\U0001d425> <&#99;hannel <\uff0fchannel <&sol;channel",
    "joined_by_removal": "<\x00channel> </\u202echannel> <c\u200fhannel &\u00adlt;channel <\U000e0020channel <cha\u2063nnel",
    "marks": "<\u0338channel <\u0301/channel c\u0301hannel \u226echannel",
    "ignorables": "a\u00adb\u034fc\u115fd\u1160e\u3164f\uffa0g\u180eh\u2064i\ufe00j\U000e0041k\U000e0100l\U0001d173m\ufff9n",
    "separators": "a\u2028b\u2029c\x85d\r\ne\rf\x0bg\x1b[31mh",
    "emoji": "\U0001f469\u200d\U0001f4bb \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2764\ufe0f\ufe0f 1\ufe0f\u20e3 \U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f \U0001f44d\U0001f3fd",
    "meta_quotes": "x&lt;y&#34;z&#x27;w&QUOT;v&gt;u&amp;t \uff02\uff07\uff1e && &&#60;lt; &\u200b#60; &#600;",
    "cjk": "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \ud55c\uad6d\uc5b4 \u0645\u06cc\u200c\u062e",
}


def sanitize_seeds():
    # Byte 0: the content cap (96 + 32 * byte); 0 cuts hard, 255 not at all for these.
    for name, text in HOSTILE.items():
        for cap in (0, 255):
            yield f"{name}_{cap}", bytes([cap]) + text.encode("utf-8")


# The vendors of core/tests/it/render_world.rs's SOURCES, in order (slack-commands reads
# the .form files of slack).
VENDORS = ["github", "datadog", "gitlab", "pagerduty", "sentry", "slack", "stripe", "alertmanager", "grafana"]


def fixtures():
    """Every fixture file the render target loads, in its order (see render_world.rs); its
    copies through the generic fallback come after these, so no index here moves."""
    payloads = os.path.join(ROOT, "tests", "fixtures", "payloads")
    dirs = [os.path.join(payloads, v) for v in VENDORS]
    dirs.append(os.path.join(ROOT, "tests", "fixtures", "datadog"))
    for d in dirs:
        for f in sorted(os.listdir(d)):
            if f.endswith((".json", ".form")):
                yield os.path.join(d, f)


def render_seeds():
    # Byte 0: the fixture (modulo their number); byte 1: the mode (0 inject, 1 raw).
    for i, (name, text) in enumerate(HOSTILE.items()):
        chunks = [struct.pack("<H", field) + text.encode("utf-8") for field in (i, 3 * i + 1)]
        yield f"inject_{name}", bytes([7 * i, 0]) + b"\xff".join(chunks)
    for i, path in enumerate(fixtures()):
        with open(path, "rb") as f:
            body = f.read()
        stem = os.path.basename(os.path.dirname(path)) + "_" + os.path.basename(path).replace(".", "_")
        yield f"raw_{stem}", bytes([i % 256, 1]) + body


def write(target, items):
    out = os.path.join(HERE, target)
    os.makedirs(out, exist_ok=True)
    for name, data in items:
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


def main():
    write("signature_headers", seeds())
    write("sanitize", sanitize_seeds())
    write("render", render_seeds())


if __name__ == "__main__":
    main()
