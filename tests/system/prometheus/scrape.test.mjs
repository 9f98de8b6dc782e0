// Debian's Prometheus scrapes a real leaklab on loopback for a few seconds;
// its query API must then return leaklab_heap_live_bytes.
import {test, after} from "node:test";
import assert from "node:assert/strict";
import {spawn} from "node:child_process";
import {writeFileSync} from "node:fs";
import {createServer} from "node:net";
import {join} from "node:path";
import {getJSON, startLeaklab, waitFor} from "../lib/leaklab.mjs";

const PROMETHEUS = process.env.PROMETHEUS || "/usr/bin/prometheus";
let lab, prom;

after(async () => {
  if (prom) prom.kill("SIGTERM");
  if (lab) await lab.stop();
});

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const {port} = s.address();
      s.close(() => resolve(port));
    });
  });
}

test("prometheus scrapes leaklab and answers a query for its heap", async () => {
  lab = await startLeaklab([], {name: "prom", stdio: "ignore", waitMs: 10000});
  const {dir, port} = lab;
  const promPort = await freePort();
  writeFileSync(join(dir, "prometheus.yml"), [
    "global:", "  scrape_interval: 1s", "scrape_configs:", "  - job_name: leaklab",
    "    static_configs:", `      - targets: ["127.0.0.1:${port}"]`, ""].join("\n"));
  prom = spawn(PROMETHEUS, [`--config.file=${join(dir, "prometheus.yml")}`,
                            `--storage.tsdb.path=${join(dir, "data")}`,
                            `--web.listen-address=127.0.0.1:${promPort}`],
               {stdio: "ignore"});
  // Some heap to see: a few requests that allocate.
  for (let i = 0; i < 20; i++)
    await fetch(`${lab.url}/echo`, {method: "POST", body: '{"a":[1,2,3]}'});
  const q = `http://127.0.0.1:${promPort}/api/v1/query?query=leaklab_heap_live_bytes`;
  const result = await waitFor("a scraped sample", async () => {
    const r = await getJSON(q);
    return r.status === "success" && r.data.result.length ? r.data.result : null;
  }, 30000, 250);
  assert.equal(result[0].metric.job, "leaklab");
  assert.equal(result[0].metric.instance, `127.0.0.1:${port}`);
  assert.ok(Number(result[0].value[1]) > 0);
  // The target is healthy: every scrape parsed.
  const targets = await getJSON(`http://127.0.0.1:${promPort}/api/v1/targets`);
  assert.equal(targets.data.activeTargets[0].health, "up");
});
