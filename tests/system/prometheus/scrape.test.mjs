// Debian's Prometheus scrapes a real leaklab on loopback for a few seconds;
// its query API must then return leaklab_heap_live_bytes.
import {test, after} from "node:test";
import assert from "node:assert/strict";
import {spawn} from "node:child_process";
import {mkdtempSync, writeFileSync, readFileSync, existsSync} from "node:fs";
import {createServer} from "node:net";
import {tmpdir} from "node:os";
import {join} from "node:path";

const BIN = process.env.LEAKLAB_BIN;
const PROMETHEUS = process.env.PROMETHEUS || "/usr/bin/prometheus";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];

after(() => { for (const c of children) c.kill("SIGTERM"); });

async function waitFor(what, fn, ms) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}: ${last}`);
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const {port} = s.address();
      s.close(() => resolve(port));
    });
  });
}

test("prometheus scrapes leaklab and answers a query for its heap", async () => {
  const dir = mkdtempSync(join(tmpdir(), "leaklab-prom-"));
  const portFile = join(dir, "port");
  const lab = spawn(BIN, ["--port", "0", "--port-file", portFile], {stdio: "ignore"});
  children.push(lab);
  const port = await waitFor("leaklab", () => existsSync(portFile) && readFileSync(portFile, "utf8").trim(), 10000);
  const promPort = await freePort();
  writeFileSync(join(dir, "prometheus.yml"), [
    "global:", "  scrape_interval: 1s", "scrape_configs:", "  - job_name: leaklab",
    "    static_configs:", `      - targets: ["127.0.0.1:${port}"]`, ""].join("\n"));
  const prom = spawn(PROMETHEUS, [`--config.file=${join(dir, "prometheus.yml")}`,
                                  `--storage.tsdb.path=${join(dir, "data")}`,
                                  `--web.listen-address=127.0.0.1:${promPort}`],
                     {stdio: "ignore"});
  children.push(prom);
  // Some heap to see: a few requests that allocate.
  for (let i = 0; i < 20; i++)
    await fetch(`http://127.0.0.1:${port}/echo`, {method: "POST", body: '{"a":[1,2,3]}'});
  const q = `http://127.0.0.1:${promPort}/api/v1/query?query=leaklab_heap_live_bytes`;
  const result = await waitFor("a scraped sample", async () => {
    const r = await (await fetch(q)).json();
    return r.status === "success" && r.data.result.length ? r.data.result : null;
  }, 30000);
  assert.equal(result[0].metric.job, "leaklab");
  assert.equal(result[0].metric.instance, `127.0.0.1:${port}`);
  assert.ok(Number(result[0].value[1]) > 0);
  // The target is healthy: every scrape parsed.
  const targets = await (await fetch(`http://127.0.0.1:${promPort}/api/v1/targets`)).json();
  assert.equal(targets.data.activeTargets[0].health, "up");
});
