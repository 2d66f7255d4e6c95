// The web console in a real headless Chromium (Debian's /usr/bin/chromium), driven by
// playwright-core: a built webhooks-local on a loopback port over a fresh SQLite file, a
// notification receiver this script runs, and the repository's signed sample webhooks.
//
//   WEBHOOKS_LOCAL=target/debug/webhooks-local node --test tests/browser/console.test.mjs
//
// SCREENSHOTS=docs/console saves the overview, an event page and an entity page there
// (the README shows them); otherwise they go to a temporary folder.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, mkdirSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = resolve(ROOT, process.env.WEBHOOKS_LOCAL ?? "target/debug/webhooks-local");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TOKEN = "browser-test-console-token-of-32-chars";

const dir = mkdtempSync(join(tmpdir(), "console-browser-"));
/// Where the screenshots go: SCREENSHOTS (docs/console for the README), else a temp folder.
const SHOTS = process.env.SCREENSHOTS ? resolve(ROOT, process.env.SCREENSHOTS) : join(dir, "shots");
const children = [];
let browser, receiver, base, tokenBase;
/// What the receiver answers: 400 (a permanent failure) until a test says otherwise.
let receiverStatus = 400;

/** A free loopback port (bound, then released for the server to take). */
function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Starts webhooks-local; resolves with its base URL once /healthz answers 200. */
async function startLocal(name, env = {}) {
  const port = await freePort();
  const child = spawn(BIN, ["--listen", `127.0.0.1:${port}`, "--db", join(dir, `${name}.db`)], {
    env: { PATH: process.env.PATH, RUST_LOG: "warn", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`webhooks-local exited: ${stderr}`);
    try {
      if ((await fetch(`${url}/healthz`)).status === 200) return url;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`webhooks-local did not answer /healthz: ${stderr}`);
}

/** Runs webhooks-local to its exit (a refusal to start): { code, stderr }. */
function runToExit(args, env) {
  return new Promise((ok) => {
    const child = spawn(BIN, args, { env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      ok({ code, stderr });
    });
  });
}

/** Posts a sample of events/ with its exact body and headers; returns its event key. */
async function postSample(url, folder, name) {
  const ev = JSON.parse(readFileSync(join(ROOT, "events", folder, `${name}.json`), "utf8"));
  const body = ev.isBase64Encoded ? Buffer.from(ev.body, "base64") : Buffer.from(ev.body ?? "", "utf8");
  const headers = Object.fromEntries(
    Object.entries(ev.headers).filter(([k]) => !["host", "content-length"].includes(k)),
  );
  const query = ev.rawQueryString ? `?${ev.rawQueryString}` : "";
  const resp = await fetch(`${url}${ev.rawPath}${query}`, { method: "POST", headers, body });
  assert.equal(resp.status, 200, `${folder}/${name}: ${await resp.text()}`);
  return `${folder}#${createHash("sha256").update(body).digest("hex")}`;
}

/** Reloads until `selector` shows `text` (the notifier works in the background). */
async function reloadUntil(page, selector, text) {
  for (let i = 0; i < 100; i++) {
    const content = await page.locator(selector).first().textContent().catch(() => "");
    if (content?.includes(text)) return;
    await new Promise((r) => setTimeout(r, 200));
    await page.reload();
  }
  assert.fail(`${selector} never showed ${text}`);
}

async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  assert.ok(statSync(path).size > 10_000, `${path} is a real picture`);
}

before(async () => {
  receiver = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(receiverStatus).end());
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  const notify = `http://127.0.0.1:${receiver.address().port}/hooks`;
  base = await startLocal("open", {
    NOTIFY_URL: notify,
    NOTIFY_SECRET: "whsec_e6LzkAkOPhxyM6SeRvqLbzWanlbSTQ4ewcbx3KSE484=",
  });
  tokenBase = await startLocal("token", { CONSOLE_TOKEN: TOKEN });
  // launch() gives the browser a fresh temporary profile (user-data-dir) of its own.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run",
    ],
  });
});

after(async () => {
  await browser?.close();
  for (const c of children) c.kill("SIGTERM");
  receiver?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on("dialog", (d) => d.accept());
  return page;
}

test("the console loads: / redirects to the overview", async () => {
  const page = await newPage();
  const resp = await page.goto(`${base}/`);
  assert.equal(resp.status(), 200);
  assert.equal(new URL(page.url()).pathname, "/console");
  assert.equal(await page.locator("h1").textContent(), "Overview");
  assert.equal(await page.locator("table.counts tbody tr").count(), 5);
  await page.context().close();
});

test("a posted webhook appears in the list without a reload, and its page shows body and transition", async () => {
  const page = await newPage();
  await page.goto(`${base}/console/events`);
  await page.evaluate(() => (window.__notReloaded = true));
  const key = await postSample(base, "invoice", "ready_pending");
  const row = page.locator(`tr[data-key="${key}"]`);
  await row.waitFor({ timeout: 15_000 });
  assert.equal(await page.evaluate(() => window.__notReloaded), true, "the page was not reloaded");
  await row.locator("a").click();
  await page.waitForURL(/\/console\/event\?/);
  const body = await page.locator("pre.body").textContent();
  assert.match(body, /"invoiceId": "550e8400-e29b-41d4-a716-446655440000"/);
  const transition = page.locator("table.transitions tbody tr").first();
  assert.match(await transition.textContent(), /Ready → Pending/);
  await page.context().close();
});

test("an invoice entity shows its timeline, flagged changes marked", async () => {
  for (const name of ["pending_complete", "pending_fail", "ready_cancel"]) await postSample(base, "invoice", name);
  const page = await newPage();
  await page.goto(`${base}/console/events?source=invoice`);
  await page.locator("tr[data-key] a").first().click();
  await page.locator("table.entities a").first().click();
  await page.waitForURL(/\/console\/entity\?/);
  const svg = page.locator(".timeline svg");
  await svg.waitFor();
  const states = await svg.locator("g.state text").allTextContents();
  assert.deepEqual(states, ["Ready", "Pending", "Complete", "Fail", "Cancel"]);
  assert.equal(await svg.locator("g.state.flagged").count(), 2);
  assert.match(await svg.textContent(), /flagged: terminal/);
  await page.context().close();
});

test("replaying a failed transition changes its delivery outcome", async () => {
  const key = await postSample(base, "invoice", "ready_wait");
  const page = await newPage();
  await page.goto(`${base}/console/event?key=${encodeURIComponent(key)}`);
  await reloadUntil(page, "table.transitions td.delivery", "failed_permanently");
  await shot(page, "event");
  receiverStatus = 200;
  await page.locator("table.transitions form.replay button").first().click();
  await page.waitForURL(/replayed=requeued/);
  assert.match(await page.locator("p.notice").textContent(), /queued again/);
  await reloadUntil(page, "table.transitions td.delivery", "delivered");
  assert.doesNotMatch(await page.locator("table.transitions td.delivery").first().textContent(), /failed/);
  await page.context().close();
});

test("the overview charts accepted and rejected requests; screenshots of overview and entity", async () => {
  for (const [folder, name] of [["fulfilment", "order_change_status"], ["fulfilment", "sku_change_stock"], ["invoice", "wait_reject"], ["invoice", "wait_pending"]]) {
    await postSample(base, folder, name);
  }
  const unsigned = await fetch(`${base}/callback/update-invoice`, { method: "POST", body: "{}" });
  assert.equal(unsigned.status, 401);
  const page = await newPage();
  await page.goto(`${base}/console`);
  const chart = page.locator(".chart svg");
  assert.ok((await chart.locator("rect.rejected[height]:not([height='0'])").count()) >= 1, "a rejected bar");
  assert.ok((await chart.locator("rect.accepted:not([height='0'])").count()) >= 1, "an accepted bar");
  assert.equal(await page.locator('table.counts tr[data-source="fulfilment"] td.num').last().textContent(), "2");
  const invoice = page.locator('table.risk tr[data-source="invoice"] td.num');
  assert.ok(Number(await invoice.nth(1).textContent()) >= 1, "the refused invoice request is a failed answer");
  await shot(page, "overview");
  await page.goto(`${base}/console/entity?source=invoice&tenant=default&kind=invoice&id=550e8400-e29b-41d4-a716-446655440000`);
  await shot(page, "entity");
  await page.context().close();
});

test("a refused request is listed on the Refusals page, without its credential or body", async () => {
  const resp = await fetch(`${base}/callback/update-invoice`, {
    method: "POST",
    headers: { "x-signature": "not-a-signature-77e1" },
    body: '{"event":"invoice.updated","note":"refused-body-marker"}',
  });
  assert.equal(resp.status, 401);
  const page = await newPage();
  await page.goto(`${base}/console`);
  await page.locator("nav a", { hasText: "Refusals" }).click();
  await page.waitForURL(/\/console\/refusals$/);
  const row = page.locator('table.refusals tr[data-source="invoice"]').first();
  const cells = await row.locator("td").allTextContents();
  assert.equal(cells[1], "invoice");
  assert.equal(cells[2], "401");
  assert.equal(cells[3], "bad_credential");
  assert.equal(cells[4], "AUTH_002");
  assert.equal(cells[5], String(Buffer.byteLength('{"event":"invoice.updated","note":"refused-body-marker"}')));
  const text = await page.locator("main").textContent();
  assert.doesNotMatch(text, /refused-body-marker|not-a-signature-77e1/);
  await page.context().close();
});

test("a token-protected console refuses without the token and works with it", async () => {
  const page = await newPage();
  await page.goto(`${tokenBase}/console/events`);
  assert.equal(new URL(page.url()).pathname, "/console/login");
  const bare = await fetch(`${tokenBase}/console/events`, { redirect: "manual" });
  assert.equal(bare.status, 303);
  const wrongBearer = await fetch(`${tokenBase}/console/events`, { headers: { authorization: "Bearer nope" } });
  assert.equal(wrongBearer.status, 401);
  assert.doesNotMatch(await wrongBearer.text(), new RegExp(TOKEN));
  await page.fill("input[name=token]", "not-the-token");
  await page.click("form.login button");
  assert.match(await page.locator("p.error").textContent(), /not this console's token/);
  await page.fill("input[name=token]", TOKEN);
  await page.click("form.login button");
  await page.waitForURL(/\/console\/events$/);
  assert.equal(await page.locator("h1").textContent(), "Events");
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "webhooks_console");
  assert.ok(session.httpOnly && session.sameSite === "Strict", JSON.stringify(session));
  assert.notEqual(session.value, TOKEN, "the cookie holds a session id, not the token");
  assert.equal((await fetch(`${tokenBase}/console/events`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
  // Logging out ends the session on the server: the old cookie, replayed, opens nothing.
  await page.goto(`${tokenBase}/console`);
  await page.click("form.inline[action='/console/logout'] button");
  await page.waitForURL(/\/console\/login/);
  const replayed = await fetch(`${tokenBase}/console/events`, {
    redirect: "manual",
    headers: { cookie: `webhooks_console=${session.value}` },
  });
  assert.equal(replayed.status, 303);
  await page.context().close();
});

test("beyond loopback without CONSOLE_TOKEN webhooks-local refuses to start, naming both ways out", async () => {
  const { code, stderr } = await runToExit(["--listen", "0.0.0.0:0", "--db", join(dir, "refused.db")], {});
  assert.notEqual(code, 0);
  assert.match(stderr, /set CONSOLE_TOKEN/);
  assert.match(stderr, /--no-console/);
});
