"""A local hookwire channel driven as Claude Code drives one, for the tools that profile a run
to shape the release binary (bench/link-order, bench/pgo): the channel on bench/config.yaml in
a fresh folder, its `initialize` handshake, signed GitHub webhooks made distinct from the
repository's `issues.opened` fixture, the notifications it delivers, and its exit when stdin
closes. Needs nothing outside the repository.
"""
import hashlib
import hmac
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAYLOAD = os.path.join(ROOT, "tests", "fixtures", "payloads", "github", "issues.opened.json")
SECRET = "bench-channel-run-secret-0123456789"
NOTIFICATION = b"notifications/claude/channel"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, what, tool, limit=120.0):
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            sys.exit(f"{tool}: {what} did not happen within {limit:.0f} s")
        time.sleep(0.05)


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Channel:
    """`binary channel` in `home` (a folder of its own: the store lives beside the config, and
    a store kept from another run would take these webhooks as repeats). `prefix` runs it under
    another program (valgrind). Started and past its handshake once constructed."""

    def __init__(self, binary, home, tool, prefix=()):
        self.tool = tool
        self.port = free_port()
        config = os.path.join(home, "config.yaml")
        shutil.copyfile(os.path.join(ROOT, "bench", "config.yaml"), config)
        self.proc = subprocess.Popen(
            [*prefix, binary, "channel", "--config", config, "--listen", f"127.0.0.1:{self.port}"],
            cwd=home, env={**os.environ, "WEBHOOK_SECRET": SECRET},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": tool, "version": "1"}}}
        self.proc.stdin.write((json.dumps(init) + "\n").encode())
        self.proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        self.proc.stdin.flush()
        wait_for(lambda: self.lines, "the initialize answer", tool)
        wait_for(lambda: accepts(self.port), "the webhook listener", tool)
        with open(PAYLOAD) as f:
            self.payload = json.load(f)
        self.payload_lock = threading.Lock()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def request(self, i, forged=False):
        """Webhook `i`: its own issue number and delivery id, signed with the source's secret
        (with another one when `forged`). Returns (path, body, headers)."""
        with self.payload_lock:
            self.payload["issue"]["number"] = 100000 + i
            body = json.dumps(self.payload).encode()
        key = (SECRET + "-forged" if forged else SECRET).encode()
        sig = hmac.new(key, body, hashlib.sha256).hexdigest()
        return "/hooks/github", body, {
            "Content-Type": "application/json", "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": f"00000000-0000-4000-8000-{i:012d}",
            "X-Hub-Signature-256": f"sha256={sig}"}

    def post(self, i, conn=None, forged=False):
        """Posts webhook `i` (on `conn`, a kept-alive connection, when given) and fails the
        tool unless the answer is 202, or 401 for a forged one."""
        path, body, headers = self.request(i, forged)
        own = conn is None
        conn = conn or self.connection()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if own:
            conn.close()
        want = 401 if forged else 202
        if resp.status != want:
            sys.exit(f"{self.tool}: webhook {i} answered {resp.status}, not {want}")

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def delivered(self, n):
        wait_for(lambda: sum(NOTIFICATION in l for l in self.lines) >= n, f"{n} notifications",
                 self.tool)

    def close(self):
        """Closes stdin, as Claude Code does at the end of a session, and waits for the exit."""
        self.proc.stdin.close()
        if self.proc.wait(timeout=120) != 0:
            sys.exit(f"{self.tool}: the channel exited {self.proc.returncode}")
