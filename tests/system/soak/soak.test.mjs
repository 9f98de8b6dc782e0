// The soak: every fault on, request scopes and RSS recycling on, under wrk
// for SOAK_SECONDS (60 in CI) with recycling at SOAK_RECYCLE_BYTES (32 MiB;
// BENCHMARKS.md records a 10-minute run at 128 MiB). No crash, no 5xx but
// deliberate sheds, no socket error, RSS bounded.
import {test} from "node:test";
import assert from "node:assert/strict";
import {readFileSync} from "node:fs";
import {join} from "node:path";
import {runLoadtest, tempDir} from "../lib/leaklab.mjs";

const SECONDS = Number(process.env.SOAK_SECONDS || 60);
const OUT = process.env.OUT || tempDir("soak");
/* guard.recycle_rss_bytes, over the 'everything' scenario's 128 MiB: low
 * enough that a minute on a busy machine still recycles a few times. */
const LIMIT = Number(process.env.SOAK_RECYCLE_BYTES || 32 * 1024 * 1024);

test(`every fault on for ${SECONDS} s: no crash, no 5xx but sheds, RSS bounded`, () => {
  const r = runLoadtest(["everything", "--flag", `guard.recycle_rss_bytes=${LIMIT}`, "--duration", String(SECONDS),
                         "--connections", "32", "--bin", process.env.LEAKLAB_BIN, "--out", OUT],
                        {timeout: (SECONDS + 60) * 1000});
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(readFileSync(join(OUT, "summary.json"), "utf8"));
  assert.ok(s.requests > SECONDS * 1000, `only ${s.requests} requests`);
  assert.deepEqual(s.socket_errors, {connect: 0, read: 0, write: 0, timeout: 0});
  const fivexx = s.status.split(" ").filter((kv) => /^5\d\d=/.test(kv) && !kv.startsWith("503="));
  assert.deepEqual(fivexx, [], `5xx answers: ${s.status}`);
  assert.ok(s.recycles >= 1, "the leak never reached the recycle limit");
  assert.ok(s.peak_rss_bytes < 1.5 * LIMIT, `peak RSS ${s.peak_rss_bytes}`);
  // From the lifetime counter: the event log keeps only the newest events.
  assert.equal(s.crashes, 0, "a worker crashed");
});
