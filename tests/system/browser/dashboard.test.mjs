// The dashboard in a real browser: Debian's Chromium, headless, driven by
// playwright-core against a real leaklab on loopback with light load.
// Run by ctest (see CMakeLists.txt) with LEAKLAB_BIN and ARTIFACTS set.
import {test, before, after} from "node:test";
import assert from "node:assert/strict";
import {connect} from "node:net";
import {mkdirSync} from "node:fs";
import {tmpdir} from "node:os";
import {join} from "node:path";
import {createRequire} from "node:module";
import {getJSON, patchFlags, repoRoot, sleep, startLeaklab, waitFor} from "../lib/leaklab.mjs";

const require = createRequire(join(repoRoot, "dashboard/package.json"));
const {chromium} = require("playwright-core");

const ARTIFACTS = process.env.ARTIFACTS || tmpdir();
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

let server, base, browser, page, loadTimer;
const consoleErrors = [];

const json = (path, opts) => getJSON(base + path, opts);

async function liveBytes() {
  return (await json("/api/stats")).heap.live_bytes;
}

let port;

// Start leaklab on `p` (0: any free port); resolves to its port once it
// answers /healthz.
async function startServer(p) {
  server = await startLeaklab(["--sample-ms", "250", "--stacks", "16"],
                              {name: "browser", port: p, stdio: ["ignore", "inherit", "inherit"]});
  return server.port;
}

before(async () => {
  port = await startServer(0);
  base = server.url;
  // Light load: a bounded client loop of /echo requests, every 20 ms.
  let sent = 0;
  loadTimer = setInterval(() => {
    if (sent++ > 5000) return clearInterval(loadTimer);
    fetch(base + "/echo", {method: "POST", body: JSON.stringify({a: [1, 2, 3], b: "load"}),
                           headers: {"Content-Type": "application/json"}}).catch(() => {});
  }, 20);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({viewport: {width: 1280, height: 800}});
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
});

after(async () => {
  clearInterval(loadTimer);
  if (browser) await browser.close();
  if (server) await server.stop();
});

test("the page loads and draws its charts with no console errors", async () => {
  await page.goto(base + "/");
  await page.waitForSelector("#chart-mem canvas");
  await page.waitForSelector("#flag-list .flag");
  await waitFor("the connection to show live", async () =>
    (await page.textContent("#conn")) === "live");
  assert.equal(await page.locator("#chart-sites canvas").count(), 1);
  assert.equal(await page.locator("#chart-rps canvas").count(), 1);
  assert.deepEqual(consoleErrors, []);
});

test("connections refused at the per-client limit show in the summary", async () => {
  // 300 idle connections from another loopback address than the page's:
  // 256 are held, the rest refused at once.
  const port = Number(new URL(base).port);
  const socks = Array.from({length: 300}, () => {
    const s = connect({port, host: "127.0.0.1", localAddress: "127.0.0.2"});
    s.on("error", () => {});
    return s;
  });
  try {
    const refused = await waitFor("the refusals to be counted", async () => {
      const n = (await json("/api/stats")).counters.conns_refused;
      return n >= 44 && n;
    });
    await waitFor("the summary to show them", async () =>
      (await page.textContent("#summary")).includes(`connections refused ${refused}`));
  } finally {
    for (const s of socks) s.destroy();
  }
});

test("a fault switched on from the page shows in /api/flags", async () => {
  const box = page.locator('[data-flag="echo.leak_tree"] input[type="checkbox"]');
  await box.check();
  await waitFor("echo.leak_tree on", async () => {
    const flags = await json("/api/flags");
    const list = Array.isArray(flags) ? flags : flags.flags;
    return list.find((f) => f.name === "echo.leak_tree").value === 1;
  });
});

test("the heap-live series grows while the fault is on", async () => {
  const before = await liveBytes();
  await waitFor("live bytes to grow on the server", async () => (await liveBytes()) > before + 10000);
  // The page's own series: its last heap-live point passes the first.
  await waitFor("the page's heap-live series to grow", () => page.evaluate(() => {
    const s = window.leaklabStore;
    const v = s.live.filter((x) => x !== null);
    return v.length > 4 && v[v.length - 1] > v[0] + 10000;
  }));
  await page.screenshot({path: join(ARTIFACTS, "dashboard-leak.png"), fullPage: true});
});

// The flame graph's frames as drawn: name and box of each.
function flameFrames() {
  return page.evaluate(() => [...document.querySelectorAll("#flame g.frame")].map((g) => {
    const r = g.querySelector("rect").getBoundingClientRect();
    return {name: g.getAttribute("name"), x: r.x, y: r.y, w: r.width,
            title: g.querySelector("title").textContent};
  }));
}

// `inner` is drawn on top of `outer` and within its width: called from it.
function calledFrom(inner, outer) {
  return inner.y < outer.y && inner.x >= outer.x - 0.5 && inner.x + inner.w <= outer.x + outer.w + 0.5;
}

// A cJSON frame called (maybe through others) from the /echo handler, in
// the graph of `view`.
async function cjsonUnderEcho(what, view) {
  return waitFor(what, async () => {
    if (await page.evaluate(() => window.leaklabFlame.drawn && window.leaklabFlame.drawn.view) !== view) return false;
    const fs = await flameFrames();
    const handler = fs.find((f) => f.name === "srv_demo_echo");
    const cjson = handler && fs.find((f) => /^cJSON_/.test(f.name) && calledFrom(f, handler));
    return cjson && {fs, handler, cjson};
  });
}

test("the flame graph of live bytes shows cJSON's frames called from the /echo handler", async () => {
  const {fs, handler} = await cjsonUnderEcho("a cJSON frame on top of srv_demo_echo", "live");
  // The macro site labels the frame it was written in, under cJSON's.
  const site = fs.find((f) => f.name === "srv_echo_transform · echo.tree");
  assert.ok(site && calledFrom(site, handler), "the echo.tree label on srv_echo_transform");
  assert.match(handler.title, /srv_demo_echo \(demo\.c:\d+\): [\d.]+ (B|KiB|MiB)/);
  await page.locator(".stacks").screenshot({path: join(ARTIFACTS, "dashboard-flame.png")});
});

test("clicking a frame zooms to it, and the zoom holds through live updates", async () => {
  const full = (await page.locator("#flame svg").boundingBox()).width;
  await page.locator('#flame g.frame[name="srv_demo_echo"]').click();
  // Zoomed: the frame fills the width and the frames under it fade.
  const zoomed = async () => {
    const h = (await flameFrames()).find((f) => f.name === "srv_demo_echo");
    return h && h.w > full * 0.98 && (await page.locator("#flame g.frame.fade").count()) > 0;
  };
  await waitFor("srv_demo_echo to fill the width", zoomed);
  const draws = await page.evaluate(() => window.leaklabFlame.draws);
  await waitFor("two more live updates", () => page.evaluate((n) => window.leaklabFlame.draws >= n + 2, draws));
  assert.ok(await zoomed(), "still zoomed after two live updates");
  await page.click("#flame-unzoom");
  await waitFor("the whole graph again", async () =>
    (await page.locator("#flame g.frame.fade").count()) === 0);
  assert.equal(await page.locator("#flame-unzoom").isDisabled(), true);
});

test("the allocation-rate view draws the bytes allocated per second", async () => {
  await page.click('[data-view="rate"]');
  assert.equal(await page.getAttribute('[data-view="rate"]', "aria-pressed"), "true");
  const {handler} = await cjsonUnderEcho("a rate graph with cJSON on top of srv_demo_echo", "rate");
  assert.match(handler.title, /: [\d.]+ (B|KiB|MiB)\/s,/);
});

test("after a mark, the diff flame graph and the table name the growing stack", async () => {
  await page.click("#mark");
  await waitFor("the view to switch to the growth since the mark", async () =>
    (await page.getAttribute('[data-view="diff"]', "aria-pressed")) === "true");
  const row = await waitFor("a growing echo.tree stack through cJSON in the table", async () =>
    (await page.locator("#growth tbody tr").allTextContents()).find((t) => /cJSON_.*echo\.tree\+\d/.test(t.replace(/\s+/g, ""))));
  assert.match(row, /srv_echo_transform/);
  const {handler} = await cjsonUnderEcho("the diff graph with cJSON on top of srv_demo_echo", "diff");
  assert.match(handler.title, /: \+[\d.]+ (B|KiB|MiB),/);
  assert.match(await page.textContent("#mark-info"), /^marked at /);
  await page.locator(".stacks").screenshot({path: join(ARTIFACTS, "dashboard-diff.png")});
  await page.click('[data-view="live"]');
});

test("a preset scenario applies its flags", async () => {
  await page.click('[data-scenario="scopes"]');
  await waitFor("the scopes scenario", async () => {
    const flags = await json("/api/flags");
    const list = Array.isArray(flags) ? flags : flags.flags;
    const v = (n) => list.find((f) => f.name === n).value;
    return v("guard.request_scope") === true && v("echo.leak_tree") === 1;
  });
  await waitFor("the scenario's story", async () =>
    /request pool/.test(await page.textContent("#story")));
  assert.equal(await page.getAttribute('[data-scenario="scopes"]', "aria-pressed"), "true");
});

test("a page opened while load runs draws the requests of the window from the history", async () => {
  // The page's own polls began just now; the rates come from the
  // history's lifetime counts by status, so they cover the time before.
  const late = await browser.newPage({viewport: {width: 1280, height: 800}});
  try {
    const opened = Date.now() / 1000;
    await late.goto(base + "/");
    await late.waitForSelector("#chart-rps canvas");
    const seen = () => late.evaluate((t) => {
      const r = window.leaklabStore.rps;
      return JSON.stringify({n: r.t.length, keys: [...r.byStatus.keys()], first: r.t[0] - t});
    }, opened);
    const before = await waitFor("the window's 200s drawn from before the page opened", () => late.evaluate((t) => {
      const r = window.leaklabStore.rps, ok = r.byStatus.get("200");
      if (!ok) return false;
      const early = r.t.filter((x, i) => x < t && ok[i] > 0).length;
      return early >= 5 && early;
    }, opened)).catch(async (e) => { throw new Error(e.message + " " + (await seen())); });
    assert.ok(before >= 5);
    // The memory chart draws RSS last, on top of heap mapped.
    const labels = await late.evaluate(() =>
      [...document.querySelectorAll("#chart-mem .u-legend .u-series .u-label")].map((e) => e.textContent));
    assert.equal(labels[labels.length - 1], "RSS");
    await late.screenshot({path: join(ARTIFACTS, "dashboard-opened-late.png")});
  } finally {
    await late.close();
  }
});

test("a process that exits leaks nothing: the page's control replaces a leaking worker", async () => {
  await page.click('[data-scenario="exit-frees-all"]');
  await waitFor("the scenario's story", async () =>
    (await page.textContent("#story")).includes("exits"));
  const leaking = await waitFor("the leak to build up", async () => {
    const st = await json("/api/stats");
    return st.heap.live_bytes > 200000 && st;
  }, 30000);
  await page.click("#recycle");
  // The new worker starts with a fresh heap: what the old one leaked is
  // gone with its process.
  const fresh = await waitFor("the next worker to serve", async () => {
    const st = await json("/api/stats");
    return st.worker.generation > leaking.worker.generation && st.worker.serving && st;
  });
  assert.ok(fresh.heap.live_bytes < leaking.heap.live_bytes / 2,
            `live ${fresh.heap.live_bytes} after, ${leaking.heap.live_bytes} before`);
  const ev = await json("/api/events?since=0");
  assert.ok(ev.events.some((e) => e.type === "recycle" && /POST \/api\/recycle/.test(e.message)));
  await waitFor("the summary to show the new worker", async () =>
    (await page.textContent("#summary")).includes(`worker #${fresh.worker.generation}`));
  await page.click("#reset");
});

test("the leak that kills: requests fail with out of memory, the page marks it, and a worker that dies is replaced", async () => {
  await page.click('[data-scenario="leak-kills"]');
  await waitFor("the scenario's story", async () => (await page.textContent("#story")).includes("96 MiB"));
  const gen0 = (await json("/api/stats")).worker.generation;
  // A leak fast enough to reach the limit in seconds: eight clients,
  // trees of a hundred objects, until /echo is refused (bounded).
  const body = JSON.stringify(Array.from({length: 100}, (_, i) => ({k: "value" + i, n: i, t: [i, i + 1]})));
  let refused = null, sent = 0;
  const client = async () => {
    while (!refused && sent++ < 40000) {
      const r = await fetch(base + "/echo", {method: "POST", body});
      const text = await r.text();
      if (r.status === 503) refused = JSON.parse(text);
      else assert.equal(r.status, 200, text);
    }
  };
  await Promise.all(Array.from({length: 8}, client));
  assert.ok(refused, `no refusal after ${sent} requests`);
  assert.match(refused.error, /out of memory: the heap refused \d+ bytes at echo\./);
  // The observer answers, and the page marks the refusals.
  const st = await json("/api/stats");
  assert.ok(st.guards.oom_refusals > 0);
  assert.ok(st.heap.mapped_bytes <= 96 * 1024 * 1024);
  await waitFor("an oom marker on the charts", () =>
    page.evaluate(() => window.leaklabStore.markers.some((m) => m.type === "oom")));
  await waitFor("the oom event in the table", async () =>
    /out of memory: the heap refused/.test(await page.textContent("#events")));
  // A block that cannot fail: the worker dies, and the next one serves.
  await fetch(base + "/blob?size=1048576").then((r) => r.arrayBuffer()).catch(() => {});
  const next = await waitFor("the next worker", async () => {
    const s = await json("/api/stats").catch(() => null);
    return s && s.worker.generation > gen0 && s.worker.serving && s;
  }, 20000);
  const ev = await json("/api/events?since=0&limit=4096");
  assert.ok(ev.events.some((e) => e.type === "crash" && /ran out of memory/.test(e.message)),
            JSON.stringify(ev.events.filter((e) => e.type === "crash")));
  await waitFor("a crash marker on the charts", () =>
    page.evaluate(() => window.leaklabStore.markers.some((m) => m.type === "crash")));
  await waitFor("the summary to show the new worker", async () =>
    (await page.textContent("#summary")).includes(`worker #${next.worker.generation}`));
  mkdirSync(ARTIFACTS, {recursive: true});
  await page.screenshot({path: join(ARTIFACTS, "dashboard-leak-kills.png")});
  await page.click("#reset");
  await waitFor("the limit off again", async () =>
    (await json("/api/flags")).flags.find((f) => f.name === "worker.memory_limit_bytes").value === 0);
  assert.deepEqual(consoleErrors, []);
});

test("the page is readable at phone width", async () => {
  await page.setViewportSize({width: 390, height: 844});
  await sleep(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `page scrolls sideways by ${overflow}px`);
  mkdirSync(ARTIFACTS, {recursive: true});
  await page.screenshot({path: join(ARTIFACTS, "dashboard-phone.png"), fullPage: true});
  assert.deepEqual(consoleErrors, []);
});

test("a worker recycle amid a flood of heap errors shows as a marker, and the page stays live", async () => {
  await page.setViewportSize({width: 1280, height: 800});
  const before = await json("/api/stats");
  await patchFlags(base, {"hello.free_stack": 1});
  // Thousands of invalid frees, each an event, with a recycle (SIGHUP to
  // the supervisor) in the middle of them.
  let next = 0;
  const worker = async () => {
    while (next < 6000) {
      if (next++ === 3000) server.proc.kill("SIGHUP");
      await fetch(base + "/hello?name=flood").catch(() => {});
    }
  };
  await Promise.all(Array.from({length: 8}, worker));
  await patchFlags(base, {"hello.free_stack": 0});
  const after = await json("/api/stats");
  assert.equal(after.guards.recycles, before.guards.recycles + 1);
  assert.notEqual(after.worker.pid, before.worker.pid);
  await waitFor("a recycle marker on the charts", () =>
    page.evaluate(() => window.leaklabStore.markers.some((m) => m.type === "recycle")));
  await waitFor("the summary to show the new worker", async () =>
    (await page.textContent("#summary")).includes(`pid ${after.worker.pid}`));
  assert.equal(await page.textContent("#conn"), "live");
  await page.screenshot({path: join(ARTIFACTS, "dashboard-recycle.png")});
  assert.deepEqual(consoleErrors, []);
});

test("the page reconnects by itself after the server restarts", async () => {
  await page.setViewportSize({width: 1280, height: 800});
  const oldPid = (await json("/api/stats")).pid;
  await server.stop();
  await waitFor("the page to notice", async () => (await page.textContent("#conn")) !== "live");
  await startServer(port);
  const newPid = (await json("/api/stats")).pid;
  assert.notEqual(newPid, oldPid);
  await waitFor("the page to be live again", async () => (await page.textContent("#conn")) === "live");
  await waitFor("the summary to show the new process", async () =>
    (await page.textContent("#summary")).includes(`pid ${(await json("/api/stats")).worker.pid}`));
  await waitFor("flags to load again", async () =>
    (await page.locator("#flag-list .flag").count()) > 5);
  assert.deepEqual(consoleErrors.filter((e) => !/Failed to fetch|ERR_CONNECTION_REFUSED|net::/.test(e)), []);
});
