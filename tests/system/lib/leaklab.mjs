// What the Node suites under tests/system/ share: starting the real leaklab
// on loopback, waiting for it, stopping it, and talking to it. Each suite's
// CMakeLists.txt puts the binary in LEAKLAB_BIN.
import {spawn, spawnSync} from "node:child_process";
import {existsSync, mkdtempSync, readFileSync} from "node:fs";
import {tmpdir} from "node:os";
import {basename, dirname, join} from "node:path";
import {fileURLToPath} from "node:url";

/** The repository's root folder. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../../..");

/** Resolves after `ms` milliseconds. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A fresh folder under the system's temporary one, named leaklab-<name>-XXXXXX. */
export function tempDir(name) {
  return mkdtempSync(join(tmpdir(), `leaklab-${name}-`));
}

/**
 * Calls `fn` (plain or async) every `every` ms until it returns something
 * truthy, and returns that. A throw counts as "not yet". After `ms` it
 * throws an Error naming `what`, with the last value or error seen.
 */
export function waitFor(what, fn, ms = 15000, every = 100) {
  return poll(what, fn, ms, every, () => null);
}

// waitFor that gives up at once when fatal() returns an Error.
async function poll(what, fn, ms, every, fatal) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    const e = fatal();
    if (e) throw e;
    await sleep(every);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}: ${last}`);
}

/** fetch(url, init), then the body parsed as JSON. */
export async function getJSON(url, init) {
  return (await fetch(url, init)).json();
}

/** PATCH /api/flags of the leaklab at `base` with `flags` ({name: value}); the Response. */
export function patchFlags(base, flags) {
  return fetch(`${base}/api/flags`, {method: "PATCH", body: JSON.stringify(flags),
                                     headers: {"Content-Type": "application/json"}});
}

/**
 * Starts leaklab with `--port P --port-file F` and then `args`, waits for the
 * port file and (unless opts.healthz is false) for /healthz to answer 2xx.
 * Throws, with leaklab killed, if it exits or a wait runs out first.
 *
 * opts.bin      the binary (default $LEAKLAB_BIN, which must exist)
 * opts.wrapper  a command and its arguments to run the binary under, e.g.
 *               [valgrind, "--leak-check=full"]
 * opts.port     the port to ask for (default 0: one the kernel picks)
 * opts.dir      the folder for the port file (default tempDir(opts.name))
 * opts.name     names that folder (default "system")
 * opts.stdio    spawn's stdio (default: stdout ignored, stderr passed on)
 * opts.healthz  wait for /healthz too (default true)
 * opts.waitMs   bound on each of the two waits (default 15000)
 *
 * Returns {proc, port, url, dir, stop}: proc the ChildProcess, port a
 * number, url "http://127.0.0.1:<port>". stop({signal, ms}) sends `signal`
 * (default SIGTERM) unless the process has exited already, waits up to `ms`
 * (default 30000) for it to exit and resolves to {code, signal} as the
 * "exit" event gave them; past `ms` it kills the process and throws.
 */
export async function startLeaklab(args = [], opts = {}) {
  const bin = opts.bin ?? process.env.LEAKLAB_BIN;
  if (!bin || !existsSync(bin)) throw new Error("LEAKLAB_BIN must name the leaklab binary");
  const wrapper = opts.wrapper ?? [];
  const what = wrapper.length ? `leaklab under ${basename(wrapper[0])}` : "leaklab";
  const waitMs = opts.waitMs ?? 15000;
  const dir = opts.dir ?? tempDir(opts.name ?? "system");
  const portFile = join(dir, "port");
  const argv = [bin, "--port", String(opts.port ?? 0), "--port-file", portFile, ...args];
  const [cmd, ...cmdArgs] = [...wrapper, ...argv];
  const proc = spawn(cmd, cmdArgs, {stdio: opts.stdio ?? ["ignore", "ignore", "inherit"]});

  let exit = null, failure = null;
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => {
    exit = {code, signal};
    resolve(exit);
  }));
  proc.once("error", (e) => { failure = new Error(`cannot start ${what}: ${e.message}`); });
  const gone = () => failure ||
    (exit && new Error(`${what} exited during start-up (code ${exit.code}, signal ${exit.signal})`));

  let port;
  try {
    port = Number(await poll(`the port file of ${what}`, () =>
      existsSync(portFile) && readFileSync(portFile, "utf8").trim(), waitMs, 100, gone));
    if (opts.healthz ?? true)
      await poll(`/healthz of ${what}`, async () =>
        (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, waitMs, 100, gone);
  } catch (e) {
    if (!exit) proc.kill("SIGKILL");
    throw e;
  }

  async function stop({signal = "SIGTERM", ms = 30000} = {}) {
    if (exit) return exit;
    proc.kill(signal);
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => {
        proc.kill("SIGKILL");
        reject(new Error(`${what} (pid ${proc.pid}) did not exit within ${ms} ms of ${signal}`));
      }, ms);
    });
    try {
      return await Promise.race([exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  return {proc, port, url: `http://127.0.0.1:${port}`, dir, stop};
}

/** Runs loadtest/run with `args` to completion (spawnSync, text output); its result. */
export function runLoadtest(args, opts = {}) {
  return spawnSync(join(repoRoot, "loadtest/run"), args, {encoding: "utf8", ...opts});
}
