// Drives `hookwire channel` with the OFFICIAL MCP TypeScript SDK client and proves, end to end,
// that a signed GitHub webhook becomes exactly one `notifications/claude/channel` notification.
//
// Usage: node sdk_client.mjs <hookwire binary> <config.yaml> <issues.opened.json>   (absolute paths)
// Env:   HOOKWIRE_TEST_GITHUB_SECRET  (required; passed on to hookwire)
//        HOOKWIRE_TEST_TIMEOUT_MS     (optional overall timeout, default 30000)
//
// Run by tests/it/real_clients.rs. Exits 0 on success; on failure prints `FAIL: ...` plus hookwire's
// captured stderr and exits 1.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';

import { deferred } from './deferred.mjs';

const CHANNEL_METHOD = 'notifications/claude/channel';
// Claude Code 2.1.328 drops meta keys not matching this (channel-contract.md section 10b).
const META_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

const [bin, configPath, payloadPath] = process.argv.slice(2);
const timeoutMs = Number(process.env.HOOKWIRE_TEST_TIMEOUT_MS ?? 30000);
const secret = process.env.HOOKWIRE_TEST_GITHUB_SECRET;

let hookwireStderr = '';
let transport = null;
let failed = false;
let stage = 'starting';

function log(msg) {
  process.stdout.write(`sdk_client: ${msg}\n`);
}

async function fail(msg) {
  if (failed) return;
  failed = true;
  process.stderr.write(`FAIL: ${msg}\n`);
  process.stderr.write('---- hookwire stderr ----\n');
  process.stderr.write(hookwireStderr.length > 0 ? hookwireStderr : '(empty)\n');
  process.stderr.write('---- end hookwire stderr ----\n');
  try {
    await transport?.close();
  } catch {
    // ignore: we are failing anyway
  }
  process.exit(1);
}

class CheckError extends Error {}

function check(cond, msg) {
  if (!cond) throw new CheckError(msg);
}

function isPlainObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function sign(key, body) {
  return `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;
}

async function postGithub(addr, body, deliveryId, signature) {
  const res = await fetch(`http://${addr}/hooks/github`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'User-Agent': 'GitHub-Hookshot/hookwire-test',
      'X-GitHub-Event': 'issues',
      'X-GitHub-Delivery': deliveryId,
      'X-Hub-Signature-256': signature,
    },
    body,
  });
  const text = await res.text();
  return { status: res.status, text };
}

async function main() {
  check(bin && configPath && payloadPath, 'usage: node sdk_client.mjs <hookwire-bin> <config> <payload>');
  for (const p of [bin, configPath, payloadPath]) {
    check(path.isAbsolute(p), `argument must be an absolute path: ${p}`);
  }
  check(secret && secret.length > 0, 'HOOKWIRE_TEST_GITHUB_SECRET must be set');

  // The exact bytes GitHub would send; we sign these bytes, never a re-serialisation.
  const body = readFileSync(payloadPath);
  const fixture = JSON.parse(body.toString('utf8'));
  const title = fixture?.issue?.title;
  check(typeof title === 'string' && title.length > 0, `fixture has no issue.title: ${payloadPath}`);

  transport = new StdioClientTransport({
    command: bin,
    args: ['channel', '--config', configPath, '--listen', '127.0.0.1:0'],
    // Merged over the SDK's default safe env (HOME, PATH, ...).
    env: {
      HOOKWIRE_TEST_GITHUB_SECRET: secret,
      ...(process.env.RUST_LOG ? { RUST_LOG: process.env.RUST_LOG } : {}),
      ...(process.env.RUST_BACKTRACE ? { RUST_BACKTRACE: process.env.RUST_BACKTRACE } : {}),
    },
    stderr: 'pipe',
  });

  // The PassThrough exists before start(), so nothing hookwire logs early is lost.
  const listening = deferred();
  transport.stderr.setEncoding('utf8');
  transport.stderr.on('data', (chunk) => {
    hookwireStderr += chunk;
    const m = /listening on http:\/\/(\S+)/.exec(hookwireStderr);
    if (m) listening.resolve(m[1]);
  });

  const client = new Client({ name: 'hookwire-real-client-test', version: '0.0.0' }, { capabilities: {} });

  // Any transport/protocol error (e.g. a non-JSON line on stdout) fails the run.
  const protocolErrors = [];
  client.onerror = (err) => protocolErrors.push(String(err?.stack ?? err));
  const closed = deferred();
  client.onclose = () => closed.resolve();

  // `notifications/claude/channel` is not an SDK method: it lands in the fallback handler.
  const channelEvents = [];
  const otherNotifications = [];
  let onChannelEvent = () => {};
  client.fallbackNotificationHandler = async (notification) => {
    if (notification.method === CHANNEL_METHOD) {
      channelEvents.push(notification);
      onChannelEvent(notification);
    } else {
      otherNotifications.push(notification);
    }
  };

  stage = 'MCP handshake (initialize)';
  // 1. Handshake: initialize -> result -> notifications/initialized (SDK does all three).
  await Promise.race([
    client.connect(transport),
    closed.promise.then(() => {
      throw new Error('hookwire exited during the MCP handshake');
    }),
  ]);
  log(`connected; server ${JSON.stringify(client.getServerVersion())}`);

  const caps = client.getServerCapabilities();
  check(isPlainObject(caps), `no server capabilities: ${JSON.stringify(caps)}`);
  check(isPlainObject(caps.experimental), `capabilities.experimental missing: ${JSON.stringify(caps)}`);
  check(
    isPlainObject(caps.experimental['claude/channel']),
    `capabilities.experimental["claude/channel"] must be an object, got ${JSON.stringify(caps.experimental['claude/channel'])}`,
  );
  check(
    !('claude/channel/permission' in caps.experimental),
    'claude/channel/permission must not be declared (permission relay is off by default)',
  );

  // Liveness over the same pipe after the handshake.
  await client.ping();

  stage = 'waiting for the "listening on http://..." stderr line';
  // 2. The webhook listener address, from the `listening on http://HOST:PORT` stderr line.
  const addr = await Promise.race([
    listening.promise,
    closed.promise.then(() => {
      throw new Error('hookwire exited before logging "listening on http://..."');
    }),
  ]);
  log(`webhook listener at ${addr}`);

  stage = 'POST with a wrong signature';
  // 3. A wrong signature: 401 and no notification.
  const badDelivery = randomUUID();
  const bad = await postGithub(addr, body, badDelivery, sign(`${secret}-wrong`, body));
  check(bad.status === 401, `bad signature: expected HTTP 401, got ${bad.status} ${JSON.stringify(bad.text)}`);
  log(`bad signature rejected with 401 (delivery ${badDelivery})`);

  stage = 'POST with a correct signature';
  // 4. The correctly signed delivery: 202 and exactly one notification.
  const goodDelivery = randomUUID();
  const arrived = deferred();
  onChannelEvent = (n) => {
    if (n?.params?.meta?.delivery_id === goodDelivery) arrived.resolve(n);
  };
  const good = await postGithub(addr, body, goodDelivery, sign(secret, body));
  check(good.status === 202, `good signature: expected HTTP 202, got ${good.status} ${JSON.stringify(good.text)}`);
  log(`signed delivery accepted with 202 (delivery ${goodDelivery})`);

  stage = `waiting for ${CHANNEL_METHOD} with delivery_id ${goodDelivery}`;
  const event = await Promise.race([
    arrived.promise,
    closed.promise.then(() => {
      throw new Error('hookwire exited before sending the channel notification');
    }),
  ]);
  log(`notification received: ${JSON.stringify(event)}`);

  // The bad delivery was answered (401) before the good one was sent, and events are emitted in
  // order, so if the bad one had leaked it would already be in the list.
  check(
    channelEvents.length === 1,
    `expected exactly one ${CHANNEL_METHOD}, got ${channelEvents.length}: ${JSON.stringify(channelEvents)}`,
  );
  check(
    !channelEvents.some((n) => n?.params?.meta?.delivery_id === badDelivery),
    'the badly signed delivery produced a notification',
  );

  const { params } = event;
  check(isPlainObject(params), `params must be an object: ${JSON.stringify(event)}`);
  check(typeof params.content === 'string', `params.content must be a string: ${JSON.stringify(params)}`);
  check(isPlainObject(params.meta), `params.meta must be an object: ${JSON.stringify(params)}`);
  check(params.meta.delivery_id === goodDelivery, `meta.delivery_id ${params.meta.delivery_id} != ${goodDelivery}`);
  check(params.meta.event === 'issues.opened', `meta.event must be "issues.opened", got ${JSON.stringify(params.meta.event)}`);
  check(params.content.includes(title), `content does not contain the issue title ${JSON.stringify(title)}: ${JSON.stringify(params.content)}`);
  for (const [k, v] of Object.entries(params.meta)) {
    // Claude Code drops the whole event on a non-string value and silently drops bad keys.
    check(typeof v === 'string', `meta.${k} must be a string, got ${JSON.stringify(v)}`);
    check(META_KEY_RE.test(k), `meta key ${JSON.stringify(k)} does not match ${META_KEY_RE}`);
    check(k !== 'source', 'meta must never carry a "source" key (Claude Code sets it)');
  }

  // The connection is still healthy after the event.
  await client.ping();
  check(protocolErrors.length === 0, `protocol/transport errors: ${protocolErrors.join('\n')}`);
  if (otherNotifications.length > 0) {
    log(`note: other notifications seen: ${JSON.stringify(otherNotifications)}`);
  }

  stage = 'closing the client';
  // 5. Shutdown: the SDK closes stdin, then SIGTERM after 2 s, then SIGKILL.
  const started = Date.now();
  await client.close();
  const closeMs = Date.now() - started;
  log(`client closed in ${closeMs} ms${closeMs >= 2000 ? ' (WARNING: hookwire did not exit on stdin EOF within 2 s)' : ''}`);
  log('OK');
}

const timer = setTimeout(() => {
  fail(`timed out after ${timeoutMs} ms during: ${stage}`);
}, timeoutMs);

main()
  .then(() => {
    clearTimeout(timer);
    process.exit(0);
  })
  .catch((err) => fail(err instanceof CheckError ? err.message : (err?.stack ?? String(err))));
