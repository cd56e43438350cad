// The processes and servers the browser test runs against: the static page origins, eic-sim,
// the real workspace-server binary and its throwaway database. Each start returns an object
// with a `stop()` the runner calls in reverse order.

import { spawn, execFileSync } from "node:child_process";
import { createReadStream, createWriteStream, existsSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createTcpServer } from "node:net";
import { extname, join, normalize } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";

const CONTENT_TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

/**
 * Serves `dir` (flat, read-only) on 127.0.0.1 at a free port: one browser origin. `extra` maps
 * more flat names to files elsewhere (xterm.js from node_modules).
 */
export async function serveStatic(dir, extra = {}) {
  const server = createServer((req, res) => {
    const name = normalize(new URL(req.url, "http://x").pathname).replace(/^\/+/, "") || "index.html";
    const type = CONTENT_TYPES[extname(name)];
    const file = extra[name] ?? join(dir, name);
    if (name.includes("/") || !type || !existsSync(file)) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "Content-Type": type, "Cache-Control": "no-store" });
    createReadStream(file).pipe(res);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const origin = `http://127.0.0.1:${server.address().port}`;
  return { origin, stop: () => new Promise((resolve) => server.close(resolve)) };
}

export async function freePort() {
  const probe = createTcpServer();
  await new Promise((resolve, reject) => {
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", resolve);
  });
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** A child process whose output goes to `logPath`; `stop()` sends SIGTERM, then SIGKILL. */
function startProcess(command, args, { env, cwd, logPath, readStdout = false }) {
  const child = spawn(command, args, { env, cwd, stdio: ["ignore", "pipe", "pipe"] });
  const log = createWriteStream(logPath);
  child.stderr.pipe(log, { end: false });
  if (!readStdout) child.stdout.pipe(log, { end: false });
  let exited = null;
  const exit = new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
    child.once("error", (error) => {
      exited = { code: null, signal: null, error };
      resolve(exited);
    });
  });
  async function stop() {
    if (!exited) {
      child.kill("SIGTERM");
      const stopped = await Promise.race([exit, sleep(15_000, null)]);
      if (!stopped) {
        child.kill("SIGKILL");
        await exit;
      }
    }
    await new Promise((resolve) => log.end(resolve));
  }
  return { child, log, exit, exited: () => exited, stop };
}

/**
 * Starts `eic-sim --profile aws` with one instance (`extraArgs` more) and waits for its ready line:
 * `{"aws_endpoint_url", "region", "access_key_id", "secret_access_key", "os_user", "instances"}`.
 */
export async function startEicSim({ binary, instanceId, root, logPath, extraArgs = [] }) {
  const proc = startProcess(binary, ["--instance", instanceId, "--root", root, "--profile", "aws", ...extraArgs], {
    env: { ...process.env, NO_COLOR: "1" },
    logPath,
    readStdout: true,
  });
  const lines = createInterface({ input: proc.child.stdout });
  const firstLine = new Promise((resolve) => lines.once("line", resolve));
  const ready = await Promise.race([
    firstLine,
    proc.exit.then((exit) => {
      throw new Error(`eic-sim exited before it was ready (${JSON.stringify(exit)}), see ${logPath}`);
    }),
    sleep(30_000).then(() => {
      throw new Error(`eic-sim printed no ready line within 30 s, see ${logPath}`);
    }),
  ]).catch(async (error) => {
    await proc.stop();
    throw error;
  });
  lines.on("line", (line) => {
    if (!proc.log.writableEnded) proc.log.write(`${line}\n`);
  });
  const info = JSON.parse(ready);
  return { ...info, instance: info.instances[instanceId], stop: proc.stop };
}

/**
 * A fresh database on the cluster of `DATABASE_URL`, or `null` when it is unset (the server
 * then runs its built-in PostgreSQL in its working directory).
 */
export function createDatabase(baseUrl) {
  if (!baseUrl) return null;
  const name = `browser_${Date.now()}_${process.pid}`;
  const psql = (sql) => execFileSync("psql", [baseUrl, "-v", "ON_ERROR_STOP=1", "-qc", sql], { stdio: "pipe" });
  psql(`CREATE DATABASE "${name}"`);
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), name, drop: () => psql(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) };
}

/** Starts the real `workspace-server` and waits until it answers `/ready` (or `/health`). */
export async function startServer({ binary, env, cwd, logPath }) {
  const port = await freePort();
  const proc = startProcess(binary, [], { env: { ...env, PORT: String(port) }, cwd, logPath });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (proc.exited()) {
      throw new Error(`workspace-server exited at start (${JSON.stringify(proc.exited())}), see ${logPath}`);
    }
    if (await isReady(url)) return { url, stop: proc.stop };
    await sleep(100);
  }
  await proc.stop();
  throw new Error(`workspace-server was not ready within 60 s, see ${logPath}`);
}

async function isReady(url) {
  try {
    const ready = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(2_000) });
    if (ready.status === 200) return true;
    if (ready.status !== 404) return false;
    const health = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
    return health.status === 200;
  } catch {
    return false;
  }
}
