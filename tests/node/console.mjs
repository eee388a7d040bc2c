// Drives the delivery console in a real headless Chromium (Debian's /usr/bin/chromium) through
// playwright-core, one step per JSON line on stdin, one JSON answer per line on stdout:
// tests/it/console.rs says what to do between steps (post a webhook, read the channel).
//
//   node tests/node/console.mjs            (CHROMIUM overrides /usr/bin/chromium)
//
// Each answer is {"op": ..., "ok": true, ...} or {"op": ..., "ok": false, "error": "..."}.

import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const STEP_MS = 20000;
const profile = mkdtempSync(join(tmpdir(), "hookwire-console-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // The fresh --user-data-dir is `profile`: playwright passes it itself.
  ],
  viewport: { width: 1280, height: 860 },
});
context.setDefaultTimeout(STEP_MS);
const page = context.pages()[0] || (await context.newPage());
// What the page itself complains about (a CSP violation shows here).
const complaints = [];
page.on("console", (m) => { if (m.type() === "error") complaints.push(m.text()); });
page.on("pageerror", (e) => complaints.push(String(e)));

/** Clicks and waits for the navigation it causes; the response's status and the URL. */
async function submit(selector) {
  const [response] = await Promise.all([
    page.waitForNavigation({ waitUntil: "load" }),
    page.locator(selector).first().click(),
  ]);
  return { status: response ? response.status() : null, url: page.url() };
}

const ops = {
  async goto({ url }) {
    const r = await page.goto(url, { waitUntil: "load" });
    return { status: r ? r.status() : null, url: page.url(), title: await page.title() };
  },
  async fill({ selector, value }) {
    await page.locator(selector).first().fill(value);
    return {};
  },
  async select({ selector, value }) {
    await page.locator(selector).first().selectOption(value);
    return {};
  },
  async submit({ selector }) {
    return submit(selector);
  },
  async wait_for({ selector, text }) {
    let l = page.locator(selector);
    if (text) l = l.filter({ hasText: text });
    await l.first().waitFor({ state: "visible" });
    return { text: await l.first().textContent() };
  },
  async text({ selector }) {
    return { text: await page.locator(selector).first().textContent() };
  },
  async eval({ expression }) {
    return { value: await page.evaluate(expression) };
  },
  async post({ path, form }) {
    // A POST from the page itself (same origin, its cookies), as a form would send it.
    const value = await page.evaluate(async ([path, form]) => {
      const r = await fetch(path, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(form).toString(),
        redirect: "manual",
      });
      return r.status;
    }, [path, form || {}]);
    return { status: value };
  },
  async cookies() {
    return { cookies: await context.cookies() };
  },
  async add_cookies({ cookies }) {
    await context.addCookies(cookies);
    return {};
  },
  async viewport({ width, height }) {
    await page.setViewportSize({ width, height });
    return {};
  },
  async color_scheme({ scheme }) {
    await page.emulateMedia({ colorScheme: scheme });
    return {};
  },
  async screenshot({ path }) {
    mkdirSync(dirname(path), { recursive: true });
    await page.screenshot({ path, fullPage: true });
    return { path };
  },
  async complaints() {
    return { complaints };
  },
  async close() {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
    return {};
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    console.log(JSON.stringify({ op: null, ok: false, error: `not JSON: ${e}` }));
    continue;
  }
  const op = ops[cmd.op];
  let answer;
  try {
    if (!op) throw new Error(`unknown op ${cmd.op}`);
    answer = { op: cmd.op, ok: true, ...(await op(cmd)) };
  } catch (e) {
    answer = { op: cmd.op, ok: false, error: String(e && e.stack || e), url: page.url() };
  }
  console.log(JSON.stringify(answer));
  if (cmd.op === "close") break;
}
process.exit(0);
