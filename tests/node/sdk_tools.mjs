// Drives `hookwire channel`'s reply and action tools with the OFFICIAL MCP TypeScript SDK client
// (`Client` + `StdioClientTransport`), one step at a time, for tests/it/real_clients.rs.
//
// Usage: node sdk_tools.mjs <hookwire binary> <config.yaml>   (absolute paths)
// Env:   HOOKWIRE_SDK_CHILD_ENV  JSON object of variables for hookwire (merged over the SDK's
//                                default safe environment: HOME, PATH, ...)
//
// The Rust test owns the assertions (and the fake GitHub/Slack APIs whose requests it checks):
// it writes one JSON command per line on stdin, and this script answers each with exactly one
// JSON line on stdout, `{"op": <the command's op>, "ok": true, ...}` or
// `{"op": ..., "ok": false, "error": {"name", "code", "message"}}`. Commands run in order:
//
//   {"op":"connect"}            spawn hookwire, MCP handshake (initialize, initialized), and wait
//                               for its "listening on http://HOST:PORT" stderr line
//                               -> capabilities, serverVersion, instructions, addr
//   {"op":"list_tools"}         client.listTools()                     -> result
//   {"op":"call_tool","name":N,"arguments":A}  client.callTool(...)    -> result
//   {"op":"next_notification"}  the next `notifications/claude/channel` not yet handed out
//                               (queued on arrival; waits for one, fails if hookwire exits)
//                               -> notification
//   {"op":"ping"}               client.ping()
//   {"op":"status"}             -> channelNotifications (how many arrived), otherNotifications,
//                                  protocolErrors (client.onerror), closed
//   {"op":"close"}              client.close() (stdin EOF, then SIGTERM after 2 s, ...)
//                               -> closeMs and the status fields; then the script exits 0
//
// Hookwire's stderr is copied to this script's stderr. EOF on stdin closes the client and exits.
// A script-level failure (bad command, bug) prints `FAIL: ...` on stderr and exits 1.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import path from 'node:path';
import process from 'node:process';
import readline from 'node:readline';

import { deferred } from './deferred.mjs';

const CHANNEL_METHOD = 'notifications/claude/channel';

const [bin, configPath] = process.argv.slice(2);

function die(msg) {
  process.stderr.write(`FAIL: ${msg}\n`);
  process.exit(1);
}

if (!bin || !configPath) die('usage: node sdk_tools.mjs <hookwire-bin> <config.yaml>');
for (const p of [bin, configPath]) {
  if (!path.isAbsolute(p)) die(`argument must be an absolute path: ${p}`);
}
let childEnv = {};
try {
  childEnv = JSON.parse(process.env.HOOKWIRE_SDK_CHILD_ENV ?? '{}');
} catch (err) {
  die(`HOOKWIRE_SDK_CHILD_ENV is not JSON: ${err}`);
}

function reply(msg) {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

function describe(err) {
  return {
    name: err?.name ?? 'Error',
    code: typeof err?.code === 'number' ? err.code : null,
    message: String(err?.message ?? err),
  };
}

const transport = new StdioClientTransport({
  command: bin,
  args: ['channel', '--config', configPath, '--listen', '127.0.0.1:0'],
  env: childEnv,
  stderr: 'pipe',
});

// The PassThrough exists before start(), so nothing hookwire logs early is lost.
let hookwireStderr = '';
const listening = deferred();
transport.stderr.setEncoding('utf8');
transport.stderr.on('data', (chunk) => {
  process.stderr.write(chunk);
  hookwireStderr += chunk;
  // Up to a space, or the closing quote of a JSON log line.
  const m = /listening on http:\/\/([^\s"]+)/.exec(hookwireStderr);
  if (m) listening.resolve(m[1]);
});

const client = new Client({ name: 'hookwire-sdk-tools-test', version: '0.0.0' }, { capabilities: {} });

// Any transport or protocol error (a non-JSON stdout line, a response nobody asked for, ...).
const protocolErrors = [];
client.onerror = (err) => protocolErrors.push(String(err?.stack ?? err));
let closed = false;
const closedSignal = deferred();
client.onclose = () => {
  closed = true;
  closedSignal.resolve();
};
const hookwireGone = closedSignal.promise.then(() => {
  throw new Error('the connection to hookwire closed (hookwire exited?)');
});
hookwireGone.catch(() => {});

// `notifications/claude/channel` is no SDK method: the fallback handler gets it, unparsed.
const channelQueue = [];
const otherNotifications = [];
let channelCount = 0;
let channelWaiter = null;
client.fallbackNotificationHandler = async (notification) => {
  if (notification.method === CHANNEL_METHOD) {
    channelCount += 1;
    channelQueue.push(notification);
    channelWaiter?.resolve();
  } else {
    otherNotifications.push(notification);
  }
};

async function nextNotification() {
  while (channelQueue.length === 0) {
    channelWaiter = deferred();
    await Promise.race([channelWaiter.promise, hookwireGone]);
  }
  return channelQueue.shift();
}

function status() {
  return {
    channelNotifications: channelCount,
    otherNotifications,
    protocolErrors,
    closed,
  };
}

async function run(cmd) {
  switch (cmd.op) {
    case 'connect': {
      await Promise.race([client.connect(transport), hookwireGone]);
      const addr = await Promise.race([listening.promise, hookwireGone]);
      return {
        capabilities: client.getServerCapabilities(),
        serverVersion: client.getServerVersion(),
        instructions: client.getInstructions(),
        addr,
      };
    }
    case 'list_tools':
      return { result: await client.listTools() };
    case 'call_tool':
      return { result: await client.callTool({ name: cmd.name, arguments: cmd.arguments ?? {} }) };
    case 'next_notification':
      return { notification: await nextNotification() };
    case 'ping':
      return { result: await client.ping() };
    case 'status':
      return status();
    case 'close': {
      const started = Date.now();
      await client.close();
      return { closeMs: Date.now() - started, ...status() };
    }
    default:
      throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
  }
}

const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
try {
  for await (const line of input) {
    if (line.trim() === '') continue;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (err) {
      die(`command is not JSON (${err}): ${line}`);
    }
    try {
      reply({ op: cmd.op, ok: true, ...(await run(cmd)) });
    } catch (err) {
      reply({ op: cmd.op, ok: false, error: describe(err) });
    }
    if (cmd.op === 'close') process.exit(0);
  }
  // The test went away: do not leave hookwire behind.
  await client.close();
  process.exit(0);
} catch (err) {
  die(err?.stack ?? String(err));
}
