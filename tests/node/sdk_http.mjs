// Drives the gateway's remote channel (`/mcp` on `hookwire serve`) with the OFFICIAL MCP
// TypeScript SDK client over Streamable HTTP (`Client` + `StreamableHTTPClientTransport`), one
// step at a time, for tests/it/mcp_http.rs.
//
// Usage: node sdk_http.mjs   (no arguments)
//
// The Rust test owns the assertions: it writes one JSON command per line on stdin, and this
// script answers each with exactly one JSON line on stdout, `{"op": ..., "ok": true, ...}` or
// `{"op": ..., "ok": false, "error": {"name", "code", "message"}}`. Every command names a
// client (`"name"`), so one script can hold several sessions. Commands run in order:
//
//   {"op":"connect","name":N,"url":U,"token":T,"cutAfter":K?}
//        a new client, MCP handshake over Streamable HTTP with `Authorization: Bearer T`
//        -> capabilities, instructions, sessionId. With cutAfter, the first GET stream is
//        cut (as a proxy dropping the connection would) right after its K-th event; the SDK
//        then reconnects on its own, with Last-Event-ID.
//   {"op":"wait_stream","name":N}      wait until the GET stream's response has arrived
//   {"op":"next_notification","name":N} the next `notifications/claude/channel` (waits)
//   {"op":"list_tools","name":N}        client.listTools() -> result
//   {"op":"call_tool","name":N,"tool":T,"arguments":A}  -> result
//   {"op":"ping","name":N}
//   {"op":"status","name":N}  -> channelNotifications, gets (each GET: its Last-Event-ID and
//                                response status), protocolErrors
//   {"op":"close","name":N}   client.close(): aborts the stream, no DELETE
//   {"op":"terminate","name":N}  DELETE the session, then close
//
// EOF on stdin closes every client and exits. A script-level failure prints `FAIL: ...` on
// stderr and exits 1.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import process from 'node:process';
import readline from 'node:readline';

import { deferred } from './deferred.mjs';

const CHANNEL_METHOD = 'notifications/claude/channel';

function die(msg) {
  process.stderr.write(`FAIL: ${msg}\n`);
  process.exit(1);
}

function reply(msg) {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

function describe(err) {
  return {
    name: err?.name ?? 'Error',
    code: typeof err?.code === 'number' ? err.code : null,
    message: String(err?.message ?? err) + (err?.cause ? ` (cause: ${err.cause?.code ?? ''} ${err.cause?.message ?? err.cause})` : ''),
  };
}

/**
 * A body that passes whole SSE events through and, after the `k`-th event carrying data,
 * fails as a dropped connection does (the connection underneath is cancelled).
 */
function cutAfter(body, k) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let buffered = '';
  let seen = 0;
  return new ReadableStream({
    async pull(controller) {
      const { value, done } = await reader.read();
      if (done) {
        controller.close();
        return;
      }
      buffered += decoder.decode(value, { stream: true });
      let at;
      while ((at = buffered.indexOf('\n\n')) >= 0) {
        const event = buffered.slice(0, at + 2);
        buffered = buffered.slice(at + 2);
        controller.enqueue(encoder.encode(event));
        if (/^data:/m.test(event)) {
          seen += 1;
          if (seen >= k) {
            await reader.cancel().catch(() => {});
            controller.error(new Error(`connection cut after ${k} events`));
            return;
          }
        }
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

const clients = new Map();

function makeClient(cmd) {
  const state = {
    queue: [],
    count: 0,
    waiter: null,
    gets: [],
    streamOpen: deferred(),
    protocolErrors: [],
    cutPending: typeof cmd.cutAfter === 'number' ? cmd.cutAfter : null,
  };
  const fetchFn = async (url, init) => {
    const res = await fetch(url, init);
    if ((init?.method ?? 'GET') !== 'GET') return res;
    const headers = new Headers(init?.headers);
    state.gets.push({ lastEventId: headers.get('last-event-id'), status: res.status });
    if (res.ok) state.streamOpen.resolve();
    if (res.ok && res.body && state.cutPending !== null) {
      const k = state.cutPending;
      state.cutPending = null;
      return new Response(cutAfter(res.body, k), { status: res.status, statusText: res.statusText, headers: res.headers });
    }
    return res;
  };
  const transport = new StreamableHTTPClientTransport(new URL(cmd.url), {
    requestInit: { headers: { Authorization: `Bearer ${cmd.token}` } },
    fetch: fetchFn,
    reconnectionOptions: {
      initialReconnectionDelay: 100,
      maxReconnectionDelay: 1000,
      reconnectionDelayGrowFactor: 1.5,
      maxRetries: 3,
    },
  });
  const client = new Client({ name: 'hookwire-sdk-http-test', version: '0.0.0' }, { capabilities: {} });
  client.onerror = (err) => state.protocolErrors.push(String(err?.message ?? err));
  client.fallbackNotificationHandler = async (n) => {
    if (n.method === CHANNEL_METHOD) {
      state.count += 1;
      state.queue.push(n);
      state.waiter?.resolve();
    }
  };
  return { client, transport, state };
}

function get(name) {
  const c = clients.get(name);
  if (!c) throw new Error(`no client named ${JSON.stringify(name)}`);
  return c;
}

async function run(cmd) {
  switch (cmd.op) {
    case 'connect': {
      const c = makeClient(cmd);
      clients.set(cmd.name, c);
      await c.client.connect(c.transport);
      return {
        capabilities: c.client.getServerCapabilities(),
        instructions: c.client.getInstructions(),
        sessionId: c.transport.sessionId ?? null,
      };
    }
    case 'wait_stream':
      await get(cmd.name).state.streamOpen.promise;
      return {};
    case 'next_notification': {
      const { state } = get(cmd.name);
      while (state.queue.length === 0) {
        state.waiter = deferred();
        await state.waiter.promise;
      }
      return { notification: state.queue.shift() };
    }
    case 'list_tools':
      return { result: await get(cmd.name).client.listTools() };
    case 'call_tool':
      return { result: await get(cmd.name).client.callTool({ name: cmd.tool, arguments: cmd.arguments ?? {} }) };
    case 'ping':
      return { result: await get(cmd.name).client.ping() };
    case 'status': {
      const { state } = get(cmd.name);
      return { channelNotifications: state.count, gets: state.gets, protocolErrors: state.protocolErrors };
    }
    case 'close':
      await get(cmd.name).client.close();
      return {};
    case 'terminate': {
      const c = get(cmd.name);
      await c.transport.terminateSession();
      await c.client.close();
      return {};
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
  }
  for (const { client } of clients.values()) await client.close().catch(() => {});
  process.exit(0);
} catch (err) {
  die(err?.stack ?? String(err));
}
