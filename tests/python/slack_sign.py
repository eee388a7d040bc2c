#!/usr/bin/env python3
"""Signs a request body the way Slack does, using Slack's own library (slack_sdk).

Usage: slack_sign.py SECRET BODY_FILE

Prints one line of JSON: the headers Slack would send with BODY_FILE's bytes,
{"X-Slack-Request-Timestamp": "<now>", "X-Slack-Signature": "v0=<hex>"}, with the signature
computed by slack_sdk.signature.SignatureVerifier.generate_signature. Driven by
tests/vendor_libs.rs; slack_sdk is pinned in tests/python/requirements.txt.
"""

import json
import sys
import time

HINT = (
    "slack_sdk is not installed: run `.ci/run`, or "
    "`python3 -m pip install --require-hashes -r tests/python/requirements.txt`"
)


def main() -> int:
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} SECRET BODY_FILE", file=sys.stderr)
        return 2
    try:
        from slack_sdk.signature import SignatureVerifier
    except ImportError as e:
        print(f"{HINT} ({e})", file=sys.stderr)
        return 3
    secret, body_file = sys.argv[1], sys.argv[2]
    with open(body_file, "rb") as f:
        body = f.read()
    # slack_sdk signs text: make sure the bytes survive its UTF-8 round trip unchanged.
    if body.decode("utf-8").encode("utf-8") != body:
        print(f"{body_file} does not round-trip through UTF-8", file=sys.stderr)
        return 2
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(signing_secret=secret).generate_signature(
        timestamp=timestamp, body=body
    )
    if not signature:
        print("slack_sdk produced no signature", file=sys.stderr)
        return 1
    print(json.dumps({"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
