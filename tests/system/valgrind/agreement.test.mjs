// leaklab's leak figures against valgrind memcheck's, on the same process:
// leaklab --single-process under memcheck, a bounded request mix, then a
// clean shutdown (SIGTERM). With --heap libc memcheck sees each block as
// the malloc block holding it (the backend's header and guard included);
// with the lab heap it sees the user bytes alone, through the heap's
// MALLOCLIKE/FREELIKE client requests.
import {test} from "node:test";
import assert from "node:assert/strict";
import {readFileSync} from "node:fs";
import {join} from "node:path";
import {getJSON, patchFlags, startLeaklab, tempDir} from "../lib/leaklab.mjs";

const VALGRIND = process.env.VALGRIND || "valgrind";
const PER_BLOCK = 24; /* the libc backend's header and guard, inside each malloc block */

// Run leaklab under memcheck, let `drive(base)` talk to it, stop it, and
// return memcheck's summary and exit status.
async function underMemcheck(drive, heap = "libc") {
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
  return {
    code, text, driven,
    definite: num(/definitely lost: ([\d,]+) bytes/), definiteBlocks: num(/definitely lost: [\d,]+ bytes in ([\d,]+) blocks/),
    indirect: num(/indirectly lost: ([\d,]+) bytes/),
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

test("with every fault off, memcheck finds nothing lost and no error", async () => {
  const r = await underMemcheck((base) => mix(base, 15));
  assert.equal(r.code, 0, r.text);
  assert.equal(r.definite, 0, r.text);
  assert.equal(r.indirect, 0, r.text);
  assert.equal(r.errors, 0, r.text);
});

// One forgotten free per request (hello.leak_response) for N requests;
// returns memcheck's summary and leaklab's figure for the site.
async function forgottenFrees(heap, N) {
  return underMemcheck(async (base) => {
    const patch = (v) => patchFlags(base, {"hello.leak_response": v});
    await patch(1);
    for (let i = 0; i < N; i++) await fetch(`${base}/hello?name=n${i % 7}`);
    await patch(0);
    await mix(base, 3);
    const leaks = await getJSON(`${base}/api/leaks?top=50`);
    return leaks.sites.find((s) => s.site === "hello.response");
  }, heap);
}

test("a forgotten free, lab heap: memcheck's definitely lost is leaklab's site figure, to the byte", async () => {
  const N = 150;
  const r = await forgottenFrees("lab", N);
  const site = r.driven;
  assert.ok(site, "hello.response missing from /api/leaks");
  assert.equal(site.blocks, N);
  assert.equal(r.definiteBlocks, site.blocks, r.text);
  assert.equal(r.definite, site.bytes, r.text);
  assert.equal(r.indirect, 0, r.text);
});

test("a forgotten free, libc backend: the same, plus the backend's 24 bytes a block", async () => {
  const N = 150;
  const r = await forgottenFrees("libc", N);
  const site = r.driven;
  assert.ok(site, "hello.response missing from /api/leaks");
  assert.equal(site.blocks, N);
  assert.equal(r.definiteBlocks, site.blocks, r.text);
  assert.equal(r.definite, site.bytes + PER_BLOCK * site.blocks, r.text);
  assert.equal(r.indirect, 0, r.text);
});
