// Debian's Prometheus scrapes a real leaklab on loopback for a few seconds;
// its query API must then return leaklab_heap_live_bytes, and the alert
// rules of loadtest/prometheus/rules.yml must evaluate on what it scraped.
import {test, after} from "node:test";
import assert from "node:assert/strict";
import {spawn} from "node:child_process";
import {writeFileSync} from "node:fs";
import {createServer} from "node:net";
import {join} from "node:path";
import {getJSON, patchFlags, repoRoot, startLeaklab, waitFor} from "../lib/leaklab.mjs";

const PROMETHEUS = process.env.PROMETHEUS || "/usr/bin/prometheus";
let lab, prom, promURL;

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
    "global:", "  scrape_interval: 1s", "  evaluation_interval: 1s",
    "rule_files:", `  - ${join(repoRoot, "loadtest/prometheus/rules.yml")}`,
    "scrape_configs:", "  - job_name: leaklab",
    "    static_configs:", `      - targets: ["127.0.0.1:${port}"]`, ""].join("\n"));
  prom = spawn(PROMETHEUS, [`--config.file=${join(dir, "prometheus.yml")}`,
                            `--storage.tsdb.path=${join(dir, "data")}`,
                            `--web.listen-address=127.0.0.1:${promPort}`],
               {stdio: "ignore"});
  // Some heap to see: a few requests that allocate.
  for (let i = 0; i < 20; i++)
    await fetch(`${lab.url}/echo`, {method: "POST", body: '{"a":[1,2,3]}'});
  promURL = `http://127.0.0.1:${promPort}`;
  const q = `${promURL}/api/v1/query?query=leaklab_heap_live_bytes`;
  const result = await waitFor("a scraped sample", async () => {
    const r = await getJSON(q);
    return r.status === "success" && r.data.result.length ? r.data.result : null;
  }, 30000, 250);
  assert.equal(result[0].metric.job, "leaklab");
  assert.equal(result[0].metric.instance, `127.0.0.1:${port}`);
  assert.ok(Number(result[0].value[1]) > 0);
  // The target is healthy: every scrape parsed.
  const targets = await getJSON(`${promURL}/api/v1/targets`);
  assert.equal(targets.data.activeTargets[0].health, "up");
});

test("the budget alert joins the heap and the budget that leaklab exports", async () => {
  // A budget of 1 byte: the heap is over it now, so in an hour too.
  assert.equal((await patchFlags(lab.url, {"guard.budget_bytes": 1})).status, 200);
  const alert = await waitFor("LeaklabHeapWillReachBudget pending", async () => {
    const r = await getJSON(`${promURL}/api/v1/alerts`);
    return r.data.alerts.find((a) => a.labels.alertname === "LeaklabHeapWillReachBudget");
  }, 30000, 250);
  assert.equal(alert.state, "pending"); // for 5 minutes before it fires
  assert.equal(alert.labels.instance, `127.0.0.1:${lab.port}`);
  assert.match(alert.annotations.description, / over its budget of 1B \(guard\.budget_bytes\)/);
  // Every rule evaluated without an error on the real series.
  const rules = (await getJSON(`${promURL}/api/v1/rules`)).data.groups.flatMap((g) => g.rules);
  assert.deepEqual(rules.map((r) => [r.name, r.health]),
                   [["LeaklabHeapWillReachBudget", "ok"], ["LeaklabHeapGrowsSteadily", "ok"]]);
});
