// `go tool pprof` reads leaklab's /debug/pprof/heap and /allocs as it
// reads a Go server's: the leaked JSON tree of echo.leak_tree shows as
// cJSON_Parse's frames under the /echo handler, labelled with its site and
// route; -diff_base of two profiles and ?seconds=N show the growth.
import {test, before, after} from "node:test";
import assert from "node:assert/strict";
import {execFileSync} from "node:child_process";
import {mkdirSync, writeFileSync} from "node:fs";
import {join} from "node:path";
import {patchFlags, startLeaklab, tempDir} from "../lib/leaklab.mjs";

const GO = process.env.GO || "go";
const dir = tempDir("pprof");
// go wants a home and a build cache it may write to.
const goEnv = {...process.env, HOME: join(dir, "home"), GOCACHE: join(dir, "gocache"),
               GOPATH: join(dir, "gopath"), GOFLAGS: "", GOTOOLCHAIN: "local"};
mkdirSync(goEnv.HOME, {recursive: true});
let lab;

before(async () => {
  lab = await startLeaklab(["--single-process", "--stacks", "16"], {name: "pprof"});
});
after(async () => {
  if (lab) await lab.stop();
});

const BODY = '{"name":"leaklab","tags":["a","b"],"deep":{"x":{"y":true}}}';
async function echo(n) {
  for (let i = 0; i < n; i++) {
    const r = await fetch(`${lab.url}/echo`, {method: "POST", body: BODY});
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  }
}

async function save(path, name) {
  const r = await fetch(`${lab.url}${path}`);
  assert.equal(r.status, 200, `${path}: ${r.status}`);
  const file = join(dir, name);
  writeFileSync(file, Buffer.from(await r.arrayBuffer()));
  return file;
}

const pprof = (...args) => execFileSync(GO, ["tool", "pprof", ...args], {env: goEnv, encoding: "utf8"});

// The traces of `go tool pprof -traces`, each {labels: text, frames: [...]}
// innermost first, and its value.
function traces(text) {
  return text.split(/^-+\+-+$/m).slice(1).filter((block) => block.trim()).map((block) => {
    const lines = block.split("\n").filter((l) => l.trim());
    const labels = lines.filter((l) => /^\s+\w+:\s/.test(l)).join("\n");
    const rest = lines.filter((l) => !/^\s+\w+:\s/.test(l));
    const first = rest[0] ? rest[0].trim().split(/\s+/) : [];
    return {labels, value: first[0], frames: rest.map((l, i) => (i ? l.trim() : first.slice(1).join(" ")))};
  });
}

test("the heap profile names cJSON_Parse's frames under the /echo handler", async () => {
  assert.equal((await patchFlags(lab.url, {"echo.leak_tree": true})).status, 200);
  await echo(50);
  const heap = await save("/debug/pprof/heap", "heap.pb.gz");
  const top = pprof("-top", "-sample_index=inuse_space", heap);
  assert.match(top, /Type: inuse_space/);
  assert.match(top, /cJSON_ParseWithLengthOpts/, top);
  const tr = traces(pprof("-traces", "-sample_index=inuse_space", "-tagfocus=site=echo.tree", heap));
  assert.ok(tr.length >= 2, "cJSON allocates from several places");
  for (const t of tr) {
    assert.match(t.labels, /site:\s+echo\.tree/);
    assert.match(t.labels, /route:\s+\/echo/);
    const parse = t.frames.findIndex((f) => f.startsWith("cJSON_Parse"));
    const handler = t.frames.findIndex((f) => f.startsWith("srv_demo_echo"));
    assert.ok(parse >= 0 && handler > parse, t.frames.join("\n"));
  }
  // All four sample types, and the allocations of freed blocks too.
  const raw = pprof("-raw", heap);
  assert.match(raw, /alloc_objects\/count alloc_space\/bytes inuse_objects\/count inuse_space\/bytes/);
  const allocs = await save("/debug/pprof/allocs", "allocs.pb.gz");
  const atop = pprof("-top", allocs);
  assert.match(atop, /Type: alloc_space/, atop); /* as Go's allocs profile */
  assert.match(atop, /srv_parse_json|cJSON/);
});

test("-diff_base of two profiles shows the tree that grew between them", async () => {
  const a = await save("/debug/pprof/heap", "a.pb.gz");
  await echo(40);
  const b = await save("/debug/pprof/heap", "b.pb.gz");
  const diff = pprof("-top", "-cum", "-sample_index=inuse_space", "-tagfocus=site=echo.tree", `-diff_base=${a}`, b);
  // The cumulative line of the handler: a positive growth, in bytes.
  const line = diff.split("\n").find((l) => / srv_demo_echo$/.test(l));
  assert.ok(line, diff);
  const cum = line.trim().split(/\s+/)[3];
  assert.match(cum, /^[0-9.]+k?B$/, line);
  assert.ok(parseFloat(cum) > 0, line);
});

test("?seconds=N answers what changed over the next N seconds", async () => {
  const pending = save("/debug/pprof/heap?seconds=2", "delta.pb.gz");
  const t0 = Date.now();
  while (Date.now() - t0 < 1500) await echo(5);
  const delta = await pending;
  assert.ok(Date.now() - t0 >= 2000);
  const top = pprof("-top", "-sample_index=inuse_objects", "-tagfocus=site=echo.tree", delta);
  const total = top.match(/of (\d+) total/);
  assert.ok(total && Number(total[1]) > 0, top);
  assert.match(pprof("-raw", delta), /Duration: [12]\./);
});

test("the debug=1 text form is read by pprof too", async () => {
  const r = await fetch(`${lab.url}/debug/pprof/heap?debug=1`);
  assert.equal(r.status, 200);
  const text = await r.text();
  assert.match(text, /^heap profile: \d+: \d+ \[\d+: \d+\] @/);
  const file = join(dir, "heap.txt");
  writeFileSync(file, text);
  // The frames, symbolized by leaklab in its "#" lines.
  assert.match(text, /^#\t0x[0-9a-f]+\tcJSON_ParseWithLengthOpts/m);
  assert.match(text, /^# labels: route=\/echo site=echo\.tree$/m);
  // pprof parses it, every sample: its total is the header's (it
  // symbolizes legacy profiles from the binaries itself, not from those
  // lines).
  const bytes = Number(text.match(/^heap profile: \d+: (\d+) /)[1]);
  const raw = pprof("-raw", "-sample_index=inuse_space", file);
  const samples = raw.slice(raw.indexOf("Samples:"), raw.indexOf("Locations"));
  const sum = [...samples.matchAll(/^\s+\d+\s+\d+\s+\d+\s+(\d+):/gm)].reduce((a, m) => a + Number(m[1]), 0);
  assert.ok(bytes > 0);
  assert.equal(sum, bytes, raw);
});

test("bad queries are a 400 with a JSON message", async () => {
  for (const q of ["seconds=0", "seconds=61", "seconds=x", "debug=2", "debug=1&seconds=1", "top=3"]) {
    const r = await fetch(`${lab.url}/debug/pprof/heap?${q}`);
    assert.equal(r.status, 400, q);
    assert.ok((await r.json()).error, q);
  }
});

// A profile over N seconds waits without a thread: the worker goes on
// serving, its deadline and its watchdog do not count the wait, and only
// SRV_HTTP_WAITS_MAX (16) wait at once.
test("profiles over N seconds hold no thread and do not get the worker replaced", async () => {
  const sup = await startLeaklab(["--stacks", "16", "--request-timeout", "2"], {name: "pprof-wait"});
  try {
    const pid0 = (await (await fetch(`${sup.url}/api/stats`)).json()).worker.pid;
    assert.equal((await patchFlags(sup.url, {"echo.leak_tree": true})).status, 200);
    // Eight at once, under load; the slowest /echo and /healthz meanwhile.
    const t0 = Date.now();
    const profiles = Array.from({length: 8}, (_, i) => fetch(`${sup.url}/debug/pprof/heap?seconds=3`)
      .then(async (r) => ({status: r.status, body: Buffer.from(await r.arrayBuffer()), i})));
    let slowest = 0, answered = 0;
    while (Date.now() - t0 < 2500) {
      for (const [path, init] of [["/echo", {method: "POST", body: BODY}], ["/healthz", {}]]) {
        const t = Date.now();
        const r = await fetch(`${sup.url}${path}`, init);
        await r.arrayBuffer();
        assert.equal(r.status, 200, path);
        slowest = Math.max(slowest, Date.now() - t);
        answered++;
      }
    }
    const got = await Promise.all(profiles);
    console.log(`8 profiles in ${Date.now() - t0} ms; ${answered} requests meanwhile, the slowest ${slowest} ms`);
    assert.ok(slowest < 1000, `a request took ${slowest} ms`);
    for (const p of got) {
      assert.equal(p.status, 200, p.body.toString());
      const file = join(dir, `wait${p.i}.pb.gz`);
      writeFileSync(file, p.body);
      const top = pprof("-top", "-sample_index=inuse_objects", "-tagfocus=site=echo.tree", file);
      const total = top.match(/of (\d+) total/);
      assert.ok(total && Number(total[1]) > 0, top);
      assert.match(pprof("-raw", file), /Duration: [34]\./);
    }
    // Seventeen at once: one more than a worker keeps waiting is a 503.
    const many = await Promise.all(Array.from({length: 17}, () => fetch(`${sup.url}/debug/pprof/allocs?seconds=1`)
      .then(async (r) => ({status: r.status, body: await r.text()}))));
    const refused = many.filter((r) => r.status === 503);
    assert.equal(refused.length, 1, many.map((r) => r.status).join(" "));
    assert.match(JSON.parse(refused[0].body).error, /already waiting/);
    assert.equal(many.filter((r) => r.status === 200).length, 16);
    // One longer than the request deadline (2 s) and the worker timeout (10 s).
    const long = await fetch(`${sup.url}/debug/pprof/heap?seconds=15`);
    assert.equal(long.status, 200);
    await long.arrayBuffer();
    const st = await (await fetch(`${sup.url}/api/stats`)).json();
    assert.equal(st.worker.pid, pid0, "the worker was replaced");
    assert.equal(st.counters.hangs, 0);
    const ev = await (await fetch(`${sup.url}/api/events?since=0&limit=4096`)).json();
    assert.deepEqual(ev.events.filter((e) => e.type === "hung"), []);
  } finally {
    await sup.stop();
  }
});
