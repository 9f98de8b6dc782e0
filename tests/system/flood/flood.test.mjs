// A flood of connections that hold a slot without using it: one address
// opens two thousand and sends nothing, or a byte a second. leaklab must
// stay reachable: the observer on its admin port answers within a second
// throughout, another client address is served on the main port, and the
// refused and closed connections are counted and logged. Loopback only,
// every loop bounded in count and time.
import {test, before, after} from "node:test";
import assert from "node:assert/strict";
import {connect} from "node:net";
import {readFileSync} from "node:fs";
import {join} from "node:path";
import {sleep, startLeaklab, tempDir, waitFor} from "../lib/leaklab.mjs";

const N = 2000;
let server, admin;

const stats = async () => (await fetch(`${admin}/api/stats`)).json();

// One connection from `from` to the main port; sends `chunks` `gapMs`
// apart and resolves to what came back once it closes or `ms` passes.
function open(port, from, chunks, {ms = 15000, gapMs = 1000} = {}) {
  const s = connect({port, host: "127.0.0.1", localAddress: from});
  const done = new Promise((resolve) => {
    let got = "";
    const timer = setTimeout(() => { s.destroy(); resolve({got, closed: false}); }, ms);
    s.on("data", (d) => (got += d.toString("latin1")));
    s.on("error", () => {});
    s.on("close", () => { clearTimeout(timer); resolve({got, closed: true}); });
    s.on("connect", async () => {
      for (const c of chunks) {
        if (s.destroyed) break;
        s.write(c);
        if (gapMs) await sleep(gapMs);
      }
    });
  });
  return {socket: s, done};
}

// A whole request from another client address, on the main port.
async function served(port, from) {
  const r = await open(port, from,
                       ["GET /hello?name=neighbour HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"],
                       {ms: 5000, gapMs: 0}).done;
  return r.got.startsWith("HTTP/1.1 200");
}

// Watch the observer for `ms`: /healthz on the admin port every 200 ms,
// each within 1 s; returns the slowest answer in ms.
async function watch(ms) {
  let worst = 0;
  for (const end = Date.now() + ms; Date.now() < end;) {
    const t0 = Date.now();
    const r = await fetch(`${admin}/healthz`, {signal: AbortSignal.timeout(1000)});
    assert.equal(r.status, 200);
    worst = Math.max(worst, Date.now() - t0);
    await sleep(200);
  }
  return worst;
}

before(async () => {
  const dir = tempDir("flood");
  const adminFile = join(dir, "admin-port");
  server = await startLeaklab(["--admin-port", "0", "--admin-port-file", adminFile],
                              {name: "flood", dir, waitMs: 10000});
  admin = `http://127.0.0.1:${readFileSync(adminFile, "utf8").trim()}`;
});

after(() => server?.stop({signal: "SIGKILL"}));

test("the admin port serves the observer and not the demo app", async () => {
  assert.equal((await fetch(`${admin}/healthz`)).status, 200);
  assert.equal((await fetch(`${admin}/api/flags`)).status, 200);
  const r = await fetch(`${admin}/hello`);
  assert.equal(r.status, 404);
  assert.match((await r.json()).error, /no such path/);
  assert.equal((await fetch(`${server.url}/hello`)).status, 200);
});

test("two thousand idle connections from one address take nothing from anyone else", async (t) => {
  const before = (await stats()).counters;
  const conns = Array.from({length: N}, () => open(server.port, "127.0.0.1", [], {ms: 15000}));
  // The per-client limit refuses all but 256 of them at once.
  await waitFor("the refusals to be counted", async () =>
    (await stats()).counters.conns_refused >= before.conns_refused + N - 256, 10000);
  assert.ok(await served(server.port, "127.0.0.2"), "127.0.0.2 was not served");
  // Past --header-timeout (5 s) the admitted ones are closed for having
  // sent nothing; the observer answers throughout.
  const worst = await watch(6500);
  const results = await Promise.all(conns.map((c) => c.done));
  const after = (await stats()).counters;
  t.diagnostic(`refused ${after.conns_refused - before.conns_refused}, closed idle ` +
               `${after.conns_idle_closed - before.conns_idle_closed}, slowest /healthz ${worst} ms`);
  assert.ok(results.every((r) => r.closed), "an idle connection was left open");
  assert.ok(results.every((r) => r.got === ""), "an idle connection was answered");
  assert.ok(after.conns_idle_closed >= before.conns_idle_closed + 200);
  assert.ok(await served(server.port, "127.0.0.2"));
  assert.ok(await served(server.port, "127.0.0.1"), "the flooding address is served once it stops");
  const ev = await (await fetch(`${admin}/api/events?since=0`)).json();
  assert.ok(ev.events.some((e) => e.type === "conns" && /refused/.test(e.message)),
            "no conns event");
});

test("two thousand connections trickling a byte a second are cut, and others served", async () => {
  const before = (await stats()).counters;
  const head = [..."GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: " + "s".repeat(40) + "\r\n\r\n"];
  const conns = Array.from({length: N}, () => open(server.port, "127.0.0.1", head, {ms: 15000}));
  await waitFor("the refusals to be counted", async () =>
    (await stats()).counters.conns_refused >= before.conns_refused + N - 256, 10000);
  assert.ok(await served(server.port, "127.0.0.2"));
  await watch(6500);
  const results = await Promise.all(conns.map((c) => c.done));
  const after = (await stats()).counters;
  assert.ok(results.every((r) => r.closed));
  // The admitted ones sent part of a head: 408 at --header-timeout.
  const cut = results.filter((r) => /^HTTP\/1\.1 408 /.test(r.got));
  assert.ok(cut.length >= 200, `${cut.length} got 408`);
  assert.match(cut[0].got, /"error":"request head not received within 5 s \(--header-timeout\)"/);
  assert.ok(after.request_timeouts >= before.request_timeouts + 200);
  assert.ok(await served(server.port, "127.0.0.2"));
});

test("at --max-conns the connection idle the longest makes room for a new one", async () => {
  const own = await startLeaklab(["--max-conns", "100", "--max-conns-per-client", "0"],
                                 {name: "full", waitMs: 10000});
  try {
    const st = async () => (await fetch(`${own.url}/api/stats`)).json();
    const idle = Array.from({length: 100}, () => open(own.port, "127.0.0.1", [], {ms: 8000}));
    // All hundred are in once the server holds them (the test's own
    // requests aside).
    await sleep(300);
    const before = (await st()).counters;
    assert.ok(await served(own.port, "127.0.0.2"), "a new client was not served at the limit");
    const after = (await st()).counters;
    assert.ok(after.conns_evicted >= before.conns_evicted + 1,
              `evicted ${after.conns_evicted - before.conns_evicted}`);
    const first = await idle[0].done;
    assert.ok(first.closed, "the oldest idle connection was not the one closed");
    for (const c of idle) c.socket.destroy();
  } finally {
    assert.deepEqual(await own.stop(), {code: 0, signal: null});
  }
});

test("and it still stops cleanly on SIGTERM, with status 0", async () => {
  assert.deepEqual(await server.stop(), {code: 0, signal: null});
});
