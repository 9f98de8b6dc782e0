// loadtest/run end to end, short: a baseline and a leak under real wrk
// load on loopback, each ~10 s. Run by ctest with LEAKLAB_BIN and OUT set.
import {test} from "node:test";
import assert from "node:assert/strict";
import {existsSync, readFileSync, statSync} from "node:fs";
import {join} from "node:path";
import {runLoadtest, tempDir} from "../lib/leaklab.mjs";

const BIN = process.env.LEAKLAB_BIN;
const OUT = process.env.OUT || tempDir("loadtest");
const MiB = 1024 * 1024;

function scenario(name, seconds) {
  const out = join(OUT, name);
  const r = runLoadtest([name, "--duration", String(seconds), "--connections", "16",
                         "--bin", BIN, "--out", out], {timeout: 120000});
  assert.equal(r.status, 0, `loadtest/run ${name} failed:\n${r.stderr}`);
  for (const f of ["samples.csv", "plot.png", "summary.txt", "summary.json"])
    assert.ok(existsSync(join(out, f)) && statSync(join(out, f)).size > 0, `${name}: no ${f}`);
  const png = readFileSync(join(out, "plot.png"));
  assert.equal(png.subarray(1, 4).toString(), "PNG");
  const csv = readFileSync(join(out, "samples.csv"), "utf8").trim().split("\n");
  assert.ok(csv.length > seconds * 2, `${name}: only ${csv.length - 1} samples`);
  return JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
}

let baseline;

test("the baseline runs clean and its RSS stays flat", () => {
  baseline = scenario("baseline", 10);
  assert.ok(baseline.requests > 1000, `only ${baseline.requests} requests`);
  assert.deepEqual(baseline.socket_errors, {connect: 0, read: 0, write: 0, timeout: 0});
  assert.ok(Math.abs(baseline.rss_slope_bytes_per_s) < 0.5 * MiB,
            `baseline RSS slope ${baseline.rss_slope_bytes_per_s} B/s`);
  assert.ok(Math.abs(baseline.leaked_bytes_per_request) < 64,
            `baseline leaks ${baseline.leaked_bytes_per_request} B/request`);
});

test("a leak scenario shows a clearly positive RSS slope", () => {
  const leak = scenario("echo-leak-tree", 10);
  assert.ok(leak.rss_slope_bytes_per_s > 2 * MiB, `leak RSS slope ${leak.rss_slope_bytes_per_s} B/s`);
  assert.ok(leak.rss_slope_bytes_per_s > 10 * Math.abs(baseline.rss_slope_bytes_per_s) + MiB);
  assert.ok(leak.leaked_bytes_per_request > 200, `leaks ${leak.leaked_bytes_per_request} B/request`);
});

test("bad arguments get a clear message and exit 2", () => {
  for (const args of [[], ["nosuch"], ["baseline", "--duration", "x"],
                      ["baseline", "--url", "http://192.168.1.1:80"], ["baseline", "--bogus"]]) {
    const r = runLoadtest(args);
    assert.equal(r.status, 2, `loadtest/run ${args.join(" ")}: exit ${r.status}`);
    assert.match(r.stderr, /loadtest\/run: /);
  }
});
