// The chat part of the browser test (issue 15): a real echo agent built on the a2a-sdk
// (tests/agents/echo_agent.py) registers itself for a workspace; headless Chromium, on the
// allowed origin, sends a chat message through POST /workspaces/{id}/a2a as the canvas does and
// sees the agent's reply arrive over /ws as A2A_RESPONSE. Like the terminal part it runs a
// development-mode server (the canvas's local setup), where a loopback agent may be called.

import { execFileSync, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

import { serveStatic, startServer } from "./services.mjs";

const WAIT_MS = 60_000;
const TEXT = "hello from the browser";

/** Runs the check; every process and server it starts is pushed onto `cleanups`. */
export async function checkChat({ tally, context, cleanups, serverBinary, env, scratch, here, outDir }) {
  const page = await serveStatic(join(here, "page"));
  cleanups.push(page.stop);
  const devEnv = { ...env, MOLECULE_ENV: "development", CORS_ORIGINS: page.origin };
  delete devEnv.ADMIN_TOKEN;
  const cwd = join(scratch, "chat-server");
  mkdirSync(cwd);
  const server = await startServer({ binary: serverBinary, env: devEnv, cwd, logPath: join(outDir, "chat-server.log") });
  cleanups.push(server.stop);

  const created = await fetch(`${server.url}/workspaces`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: "browser-chat" }),
    signal: AbortSignal.timeout(15_000),
  }).then((r) => r.json());
  const workspaceId = created.id;
  const ready = await startAgent(server.url, workspaceId, here, cleanups);
  tally.check("chat: the a2a-sdk echo agent registered itself", Boolean(ready), ready ?? "no ready line");

  const tab = await context.newPage();
  const query = new URLSearchParams({ server: server.url, ws: workspaceId, text: TEXT }).toString();
  await tab.goto(`${page.origin}/chat.html?${query}`);
  await tab.waitForFunction(() => window.chat?.done === true, null, { timeout: WAIT_MS });
  const chat = await tab.evaluate(() => window.chat);
  await tab.screenshot({ path: join(outDir, "chat.png") });
  const expected = `echo: ${TEXT}`;
  tally.check(
    "chat: POST /a2a from the allowed origin answers with the agent's reply",
    chat.status === 200 && chat.answer.includes(expected),
    `${chat.status} ${chat.error ?? chat.answer.slice(0, 200)}`,
  );
  tally.check(
    "chat: the reply arrives over /ws as A2A_RESPONSE",
    JSON.stringify(chat.frame?.payload?.response_body ?? "").includes(expected),
    chat.frame ? JSON.stringify(chat.frame).slice(0, 200) : `frames: ${JSON.stringify(chat.frames)}`,
  );
}

/** Starts the echo agent in push mode; resolves with its URL once it has registered. */
async function startAgent(serverUrl, workspaceId, here, cleanups) {
  const repo = resolve(here, "../..");
  const python = execFileSync(join(repo, "tests/agents/setup"), { encoding: "utf8" }).trim();
  const agent = spawn(
    python,
    [join(repo, "tests/agents/echo_agent.py"), "--platform", serverUrl, "--workspace-id", workspaceId, "--mode", "push"],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  cleanups.push(() => agent.kill("SIGTERM"));
  const lines = createInterface({ input: agent.stdout });
  return await new Promise((resolveReady) => {
    const timer = setTimeout(() => resolveReady(null), WAIT_MS);
    lines.on("line", (line) => {
      try {
        const parsed = JSON.parse(line);
        if (parsed.ready) {
          clearTimeout(timer);
          resolveReady(parsed.ready);
        }
      } catch {
        // not one of its JSON lines
      }
    });
    agent.on("exit", () => resolveReady(null));
  });
}
