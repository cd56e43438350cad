// The terminal part of the browser test (issue 16): xterm.js (from npm, as the canvas) in
// headless Chromium opens /workspaces/{id}/terminal on a workspace attached to the simulated
// instance, types a command and sees its output. The browser cannot send Authorization on a
// WebSocket, so this part runs a second server in development mode (the canvas's local setup)
// on the same simulator.

import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { serveStatic, startServer } from "./services.mjs";

const WAIT_MS = 30_000;

/**
 * Runs the check; every process and server it starts is pushed onto `cleanups`.
 * `env` is the main server's environment (without its ADMIN_TOKEN here: development mode).
 */
export async function checkTerminal({ tally, context, cleanups, serverBinary, env, scratch, here, outDir, instanceId }) {
  const xterm = join(here, "node_modules", "@xterm", "xterm");
  const page = await serveStatic(join(here, "page"), {
    "xterm.js": join(xterm, "lib", "xterm.js"),
    "xterm.css": join(xterm, "css", "xterm.css"),
  });
  cleanups.push(page.stop);

  const devEnv = { ...env, MOLECULE_ENV: "development", CORS_ORIGINS: page.origin };
  delete devEnv.ADMIN_TOKEN;
  const cwd = join(scratch, "terminal-server");
  mkdirSync(cwd);
  const server = await startServer({ binary: serverBinary, env: devEnv, cwd, logPath: join(outDir, "terminal-server.log") });
  cleanups.push(server.stop);
  const workspaceId = await attachedWorkspace(server.url, instanceId);

  const tab = await context.newPage();
  const wsBase = server.url.replace(/^http/, "ws");
  await tab.goto(`${page.origin}/terminal.html?server=${encodeURIComponent(wsBase)}&ws=${workspaceId}`);
  await tab.waitForFunction(() => window.terminal?.state !== "connecting", null, { timeout: WAIT_MS });
  const opened = await tab.evaluate(() => window.terminal.state);
  tally.check("terminal: the WebSocket opens from the allowed origin", opened === "open", opened);

  await tab.click("#terminal");
  await tab.keyboard.type("echo brow$((40+2))ser");
  await tab.keyboard.press("Enter");
  const echoed = await tab
    .waitForFunction(() => window.terminal.screen().includes("brow42ser"), null, { timeout: WAIT_MS })
    .then(() => true, () => false);
  const screen = await tab.evaluate(() => window.terminal.screen());
  tally.check("terminal: a typed command's output appears in xterm.js", echoed, screen.trim().slice(-200));
  await tab.screenshot({ path: join(outDir, "terminal.png") });

  await tab.keyboard.type("exit");
  await tab.keyboard.press("Enter");
  await tab.waitForFunction(() => window.terminal.state === "closed", null, { timeout: WAIT_MS }).catch(() => {});
  const close = await tab.evaluate(() => window.terminal.close);
  tally.check("terminal: `exit` closes the socket normally (1000)", close?.code === 1000, JSON.stringify(close));
}

/** A workspace on the simulated instance, through the development server's admin routes. */
async function attachedWorkspace(serverUrl, instanceId) {
  const call = async (method, path, body) => {
    const response = await fetch(serverUrl + path, {
      method,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const created = await call("POST", "/workspaces", { name: "browser-terminal", runtime: "langgraph", tier: 3 });
  await call("PUT", `/admin/workspaces/${created.id}/instance`, { instance_id: instanceId });
  return created.id;
}
