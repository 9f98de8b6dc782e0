// leaklab's leak figures against valgrind memcheck's, on the same process:
// leaklab --single-process under memcheck, a bounded request mix, then a
// clean shutdown (SIGTERM). With --heap libc memcheck sees each block as
// the malloc block holding it (the backend's header and guard included);
// with the lab heap it sees the user bytes alone, through the heap's
// MALLOCLIKE/FREELIKE client requests, in memory that memcheck does not
// scan as a root (alloc/src/os.c), so a lost block's children are
// indirectly lost, not reachable.
//
// Each forgetting-to-free fault runs in a memcheck process of its own, per
// backend: whatever memcheck finds lost there is that fault's, and the
// fault's sites in /api/leaks, read before the stop, are leaklab's figure.
// Definitely and indirectly lost are compared as one sum: in a structure
// with cycles (cJSON links siblings both ways) which lost block memcheck
// calls direct depends on their order in memory.
import {test} from "node:test";
import assert from "node:assert/strict";
import {readFileSync} from "node:fs";
import {join} from "node:path";
import {getJSON, patchFlags, startLeaklab, tempDir} from "../lib/leaklab.mjs";

const VALGRIND = process.env.VALGRIND || "valgrind";
const PER_BLOCK = 24; /* the libc backend's header and guard, inside each malloc block */
const BACKENDS = ["lab", "libc"];

// Run leaklab under memcheck, let `drive(base)` talk to it, stop it, and
// return memcheck's summary and exit status.
async function underMemcheck(drive, heap) {
  const dir = tempDir("vg"), log = join(dir, "memcheck.log");
  // No /healthz wait: the requests memcheck sees are drive's alone.
  const lab = await startLeaklab(["--single-process", "--heap", heap],
                                 {wrapper: [VALGRIND, "--leak-check=full", `--log-file=${log}`],
                                  dir, healthz: false, waitMs: 60000});
  // Memcheck's leak search runs after SIGTERM, before the exit.
  const stop = () => lab.stop({ms: 120000});
  let driven;
  try {
    driven = await drive(lab.url);
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
  const {code} = await stop();
  const text = readFileSync(log, "utf8");
  const num = (re) => { const m = text.match(re); return m ? Number(m[1].replace(/,/g, "")) : 0; };
  const kind = (name) => ({
    bytes: num(new RegExp(`${name}: ([\\d,]+) bytes`)),
    blocks: num(new RegExp(`${name}: [\\d,]+ bytes in ([\\d,]+) blocks`)),
  });
  const definite = kind("definitely lost"), indirect = kind("indirectly lost");
  return {
    code, text, driven,
    definite: definite.bytes, definiteBlocks: definite.blocks,
    indirect: indirect.bytes, indirectBlocks: indirect.blocks,
    possible: kind("possibly lost"),
    invalidFrees: (text.match(/== Invalid free\(\)/g) || []).length,
    errors: num(/ERROR SUMMARY: ([\d,]+) errors/),
  };
}

async function mix(base, rounds) {
  for (let i = 0; i < rounds; i++) {
    await fetch(`${base}/hello?name=vg${i}`);
    await fetch(`${base}/echo`, {method: "POST", body: '{"a":[1,2,3],"b":{"c":"d"}}'});
    await fetch(`${base}/echo`, {method: "POST", body: '{"broken":'});
    await fetch(`${base}/session`, {method: "POST", body: '{"user":"vg"}'});
    await fetch(`${base}/blob?size=3000`);
    await fetch(`${base}/report?rows=20`);
    await fetch(`${base}/api/stats`);
    await fetch(`${base}/metrics`);
  }
}

for (const heap of BACKENDS) {
  test(`with every fault off, ${heap} heap: memcheck finds nothing lost and no error`, async () => {
    const r = await underMemcheck((base) => mix(base, 10), heap);
    assert.equal(r.code, 0, r.text);
    assert.equal(r.definite, 0, r.text);
    assert.equal(r.indirect, 0, r.text);
    assert.deepEqual(r.possible, {bytes: 0, blocks: 0}, r.text);
    assert.equal(r.errors, 0, r.text);
  });
}

const TREE = '{"user":{"name":"ada","langs":["c","js","go"],"admin":false},' +
             '"tags":{"a":1,"b":[2,3]},"note":"leaklab"}';

// Every fault that forgets to free: the requests that make the mistake,
// the sites it leaves blocks at, and what else leaklab reports.
const FAULTS = [
  {flag: "hello.leak_response", sites: ["hello.response"], n: 30,
   send: (base, i) => fetch(`${base}/hello?name=n${i % 7}`)},
  {flag: "echo.leak_tree", sites: ["echo.tree"], n: 20,
   send: (base) => fetch(`${base}/echo`, {method: "POST", body: TREE})},
  {flag: "echo.leak_on_error", sites: ["echo.body"], n: 30,
   send: (base) => fetch(`${base}/echo`, {method: "POST", body: '{"broken":'})},
  // The heap refuses the free of the interior pointer before memcheck hears
  // of it (memcheck knows only what the heap tells it), so memcheck sees no
  // invalid free; the body copy, never freed, is lost for both. (The lab
  // heap charges the invalid free to echo.body, the block it points into;
  // the libc backend, which cannot tell, to the freeing site.)
  {flag: "echo.free_interior", sites: ["echo.body"], n: 30, invalidFrees: 30,
   send: (base) => fetch(`${base}/echo`, {method: "POST", body: TREE})},
  {flag: "report.grow_leak", sites: ["report.text"], n: 20,
   send: (base) => fetch(`${base}/report?rows=40`)},
];

// Run one fault for its n requests under memcheck, then every fault off
// for a short mix (so the last faulty request's pointers are gone from
// the stacks and buffers it used); leaklab's rows for the fault's sites
// and its count of invalid frees.
function runFault(f, heap) {
  return underMemcheck(async (base) => {
    assert.equal((await patchFlags(base, {[f.flag]: 1})).status, 200);
    for (let i = 0; i < f.n; i++) await (await f.send(base, i)).arrayBuffer();
    assert.equal((await patchFlags(base, {[f.flag]: 0})).status, 200);
    await mix(base, 2);
    const leaks = await getJSON(`${base}/api/leaks?top=4096`);
    const stats = await getJSON(`${base}/api/stats`);
    return {
      rows: f.sites.map((name) => leaks.sites.find((s) => s.site === name) ??
                                  {site: name, blocks: 0, bytes: 0}),
      invalidFrees: stats.errors.invalid_free,
    };
  }, heap);
}

for (const f of FAULTS) {
  for (const heap of BACKENDS) {
    const extra = heap === "libc" ? ", plus the backend's 24 bytes a block" : "";
    test(`${f.flag}, ${heap} heap: memcheck's definitely + indirectly lost are leaklab's figures for ${f.sites.join(", ")}${extra}`, async () => {
      const r = await runFault(f, heap);
      const {rows} = r.driven;
      const blocks = rows.reduce((a, s) => a + s.blocks, 0);
      const bytes = rows.reduce((a, s) => a + s.bytes, 0);
      const lost = {bytes: r.definite + r.indirect, blocks: r.definiteBlocks + r.indirectBlocks};
      console.log(`${f.flag} ${heap}: leaklab ${bytes} bytes in ${blocks} blocks; memcheck ` +
                  `${r.definite} + ${r.indirect} bytes in ${r.definiteBlocks} + ${r.indirectBlocks} blocks`);
      const why = `leaklab ${JSON.stringify(rows)}\n${r.text}`;
      assert.equal(r.code, 0, why);
      assert.ok(blocks >= f.n, why);
      assert.deepEqual(lost, {bytes: bytes + (heap === "libc" ? PER_BLOCK * blocks : 0), blocks}, why);
      assert.deepEqual(r.possible, {bytes: 0, blocks: 0}, why);
      assert.equal(r.driven.invalidFrees, f.invalidFrees ?? 0, why);
      assert.equal(r.invalidFrees, 0, why);
    });
  }
}
