// Browser test (issue 6): the canvas's calls to the real workspace-server, made by a real
// headless Chromium from a page on another origin, against eic-sim --profile aws.
// Needs the debug binaries (`cargo build --workspace`) and Chromium; see run.sh.
// Prints one line per assertion and closes with `browser: N passed, M failed`.

import { createHash, randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

import { createDatabase, serveStatic, startEicSim, startServer } from "./lib/services.mjs";
import { Tally } from "./lib/tally.mjs";
import { checkLifecycle } from "./lib/lifecycle.mjs";
import { checkChat } from "./lib/chat.mjs";
import { checkTerminal } from "./lib/terminal.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const targetDir = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(repo, "target");
const binaries = {
  server: join(targetDir, "debug", "workspace-server"),
  sim: join(targetDir, "debug", "eic-sim"),
};
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
// Without these Chromium stalls on refused background connections on an offline machine.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const outDir = join(here, "out");

/** Whether sshd accepts `dir` as a chroot's parent: every component root-owned, not group/other-writable. */
function chrootSafe(dir) {
  mkdirSync(dir, { recursive: true });
  for (let d = resolve(dir); ; d = dirname(d)) {
    const st = statSync(d);
    if (st.uid !== 0 || (st.mode & 0o022) !== 0) return false;
    if (d === dirname(d)) return true;
  }
}
const INSTANCE_ID = "i-0123456789abcdef0";
// The simulated control plane provisions the lifecycle part's workspace on this one (it sorts
// first, so the control plane takes it before INSTANCE_ID, which the panel's workspace uses).
const LIFECYCLE_INSTANCE_ID = "i-00000000000000001";
const PAGE_TIMEOUT_MS = 90_000;
const RUN_TIMEOUT_MS = 600_000;
const COOKIE = { name: "canvas_session", value: `browser-${randomBytes(8).toString("hex")}` };
const SEEDED = {
  "config.yaml": [
    "name: browser-panel",
    "runtime: langgraph",
    "tier: 3",
    "runtime_config:",
    "  model: anthropic:claude-haiku-4-5-20251001",
    "",
  ].join("\n"),
  "prompts/system.md": "You are the browser test's agent.\n",
};

const tally = new Tally();
const cleanups = [];

async function main() {
  for (const [what, path] of Object.entries(binaries)) {
    if (!existsSync(path)) throw new Error(`${what} binary missing at ${path}: run cargo build --workspace first`);
  }
  mkdirSync(outDir, { recursive: true });
  const scratch = mkdtempSync(join(tmpdir(), "ws-browser-"));
  // Without DATABASE_URL the server's built-in PostgreSQL runs as `postgres` in here.
  chmodSync(scratch, 0o755);
  cleanups.push(() => rmSync(scratch, { recursive: true, force: true }));

  const allowed = await serveStatic(join(here, "page"));
  cleanups.push(allowed.stop);
  const foreign = await serveStatic(join(here, "page"));
  cleanups.push(foreign.stop);

  // sshd's ChrootDirectory needs every component of the instance root root-owned and not
  // writable by others, which rules out the system temp dir: the roots live under target/, or
  // under /var/lib/eic-sim when the checkout itself sits in such a directory.
  const rootsParent = chrootSafe(targetDir) ? join(targetDir, "browser-test") : "/var/lib/eic-sim";
  mkdirSync(rootsParent, { recursive: true });
  const simDir = mkdtempSync(join(rootsParent, "instances-"));
  chmodSync(simDir, 0o755);
  cleanups.push(() => rmSync(simDir, { recursive: true, force: true }));
  const sim = await startEicSim({
    binary: binaries.sim,
    instanceId: INSTANCE_ID,
    root: join(simDir, "instances"),
    logPath: join(outDir, "eic-sim.log"),
    extraArgs: ["--control-plane", "--instance", LIFECYCLE_INSTANCE_ID],
  });
  cleanups.push(sim.stop);

  const database = createDatabase(process.env.DATABASE_URL);
  if (database) cleanups.push(database.drop);

  const adminToken = randomBytes(24).toString("hex");
  const pluginsDir = join(scratch, "plugins");
  plantPlugin(pluginsDir);
  const serverEnv = serverEnvironment({ database, sim, allowedOrigin: allowed.origin, adminToken, pluginsDir });
  const orgDir = join(scratch, "org-templates");
  seedOrgTemplate(orgDir);
  serverEnv.ORG_TEMPLATES_DIR = orgDir;
  const serverDir = join(scratch, "server");
  mkdirSync(serverDir);
  const server = await startServer({
    binary: binaries.server,
    env: serverEnv,
    cwd: serverDir,
    logPath: join(outDir, "server.log"),
  });
  cleanups.push(server.stop);
  console.log(`server ${server.url}, page ${allowed.origin} (allowed), ${foreign.origin} (not allowed)`);
  console.log(`database: ${database ? `fresh database ${database.name}` : "the server's built-in PostgreSQL"}`);

  const { workspaceId, token } = await prepareWorkspace(server.url, adminToken);
  const configsDir = join(sim.instance.root, "opt", "configs");
  seedInstance(configsDir, sim.os_user);

  await checkPreflights(server.url, allowed.origin, foreign.origin);

  const profile = join(scratch, "chromium-profile");
  mkdirSync(profile);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1000, height: 820 },
  });
  cleanups.push(() => context.close());
  await context.addCookies([{ ...COOKIE, url: server.url }]);
  const traffic = recordTraffic(context, server.url);

  const query = new URLSearchParams({ server: server.url, ws: workspaceId, token, admin: adminToken }).toString();
  const allowedPage = await context.newPage();
  const results = await runPage(allowedPage, `${allowed.origin}/index.html?${query}`);
  // panel.png is the first screen (small enough for the README); page-full.png has every row.
  await allowedPage.screenshot({ path: join(outDir, "panel.png") });
  await allowedPage.screenshot({ path: join(outDir, "page-full.png"), fullPage: true });
  await traffic.settled();
  checkAllowedOrigin(results, traffic.fromOrigin(allowed.origin));
  checkInstanceDisk(configsDir, results);
  checkSettingsInDatabase(database, workspaceId, results.settings);

  const savedConfig = readFileSync(join(configsDir, "config.yaml"), "utf8");
  const foreignPage = await context.newPage();
  const refused = await runPage(foreignPage, `${foreign.origin}/index.html?${query}`);
  checkForeignOrigin(refused, readFileSync(join(configsDir, "config.yaml"), "utf8") === savedConfig);

  tally.check("screenshot saved", existsSync(join(outDir, "panel.png")), "tests/browser/out/panel.png");

  await checkTerminal({
    tally,
    context,
    cleanups,
    serverBinary: binaries.server,
    env: serverEnv,
    scratch,
    here,
    outDir,
    instanceId: INSTANCE_ID,
  });

  await checkLifecycle({ tally, context, cleanups, serverBinary: binaries.server, env: serverEnv, sim, scratch, here, outDir });
  await checkChat({
    tally,
    context,
    cleanups,
    serverBinary: binaries.server,
    env: serverEnv,
    scratch,
    here,
    outDir,
  });
}

/** The inherited environment, minus what would change the server's mode, plus the test's setup. */
function serverEnvironment({ database, sim, allowedOrigin, adminToken, pluginsDir }) {
  const env = { ...process.env };
  for (const key of ["DATABASE_URL", "MOLECULE_ENV", "AWS_PROFILE", "AWS_SESSION_TOKEN", "CANVAS_PROXY_URL", "MOLECULE_ORG_ID"]) {
    delete env[key];
  }
  return Object.assign(env, {
    ...(database ? { DATABASE_URL: database.url } : {}),
    CORS_ORIGINS: allowedOrigin,
    ADMIN_TOKEN: adminToken,
    SECRETS_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    AWS_ENDPOINT_URL: sim.aws_endpoint_url,
    AWS_ACCESS_KEY_ID: sim.access_key_id,
    AWS_SECRET_ACCESS_KEY: sim.secret_access_key,
    AWS_REGION: sim.region,
    AWS_EC2_METADATA_DISABLED: "true",
    WORKSPACE_EC2_OS_USER: sim.os_user,
    ...(pluginsDir ? { PLUGINS_DIR: pluginsDir } : {}),
  });
}

/** The registry's one plugin, which the page installs from the Plugins section. */
const PLUGIN_FILES = {
  "plugin.yaml": "version: '1.0'\ndescription: Installed by the browser test\nruntimes: [langgraph]\n",
  "rules/kind.md": "Be kind to the browser.\n",
};
function plantPlugin(pluginsDir) {
  for (const [path, content] of Object.entries(PLUGIN_FILES)) {
    const file = join(pluginsDir, "browser-plugin", path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
}

/** An org template for the palette: an include, a required key, a root with one child. */
function seedOrgTemplate(orgDir) {
  const dir = join(orgDir, "browser-org");
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "org.yaml"),
    "name: Browser Org\ndescription: imported by the browser test\nrequired_env: [ORG_PREFLIGHT_KEY]\nworkspaces:\n  - !include lead.yaml\n",
  );
  writeFileSync(join(dir, "lead.yaml"), "name: Browser Lead\nchildren:\n  - name: Browser Helper\n");
}

/** Admin API: create the workspace, attach the simulated instance, mint a workspace token. */
async function prepareWorkspace(serverUrl, adminToken) {
  const admin = async (method, path, body) => {
    const response = await fetch(serverUrl + path, {
      method,
      headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const created = await admin("POST", "/workspaces", { name: "browser-panel", runtime: "langgraph", tier: 3 });
  const workspaceId = created.id;
  await admin("PUT", `/admin/workspaces/${workspaceId}/instance`, { instance_id: INSTANCE_ID });
  const { auth_token: token } = await admin("GET", `/admin/workspaces/${workspaceId}/test-token`);
  // The agent asks for an approval, which the page (the canvas's banner) then decides.
  const asked = await fetch(`${serverUrl}/workspaces/${workspaceId}/approvals`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ action: "deploy from the browser test", reason: "needs a human" }),
    signal: AbortSignal.timeout(15_000),
  });
  if (asked.status !== 201) throw new Error(`POST approvals: ${asked.status} ${await asked.text()}`);
  console.log(`workspace ${workspaceId} on simulated instance ${INSTANCE_ID}`);
  return { workspaceId, token };
}

/** langgraph's managed-config directory is /opt/configs on the instance. */
function seedInstance(configsDir, osUser) {
  for (const [path, content] of Object.entries(SEEDED)) {
    const file = join(configsDir, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
  // The simulated instance's sshd logs in as os_user, who must own what it edits.
  const owner = userIds(osUser);
  if (!owner) return;
  chownSync(configsDir, owner.uid, owner.gid);
  for (const entry of readdirSync(configsDir, { recursive: true })) {
    chownSync(join(configsDir, entry), owner.uid, owner.gid);
  }
}

function userIds(user) {
  if (process.getuid?.() !== 0) return null;
  try {
    const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8", stdio: "pipe" }).trim());
    const gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8", stdio: "pipe" }).trim());
    return { uid, gid };
  } catch {
    return null;
  }
}

/** What the server itself answers to a preflight, seen without a browser in the way. */
async function checkPreflights(serverUrl, allowedOrigin, foreignOrigin) {
  const preflight = (origin) =>
    fetch(`${serverUrl}/health`, {
      method: "OPTIONS",
      headers: {
        Origin: origin,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization,content-type",
      },
      signal: AbortSignal.timeout(5_000),
    });
  const foreign = await preflight(foreignOrigin);
  tally.check(
    "server: a preflight from the foreign origin gets 403 without CORS headers",
    foreign.status === 403 && !foreign.headers.has("access-control-allow-origin"),
    `status ${foreign.status}`,
  );
  const allowed = await preflight(allowedOrigin);
  tally.check(
    "server: a preflight from the allowed origin gets 204 with credentials allowed",
    allowed.status === 204 &&
      allowed.headers.get("access-control-allow-origin") === allowedOrigin &&
      allowed.headers.get("access-control-allow-credentials") === "true",
    `status ${allowed.status}`,
  );
}

/** Every request the browser sends to the server, with the headers on the wire. */
function recordTraffic(context, serverUrl) {
  const exchanges = [];
  context.on("request", (request) => {
    if (!request.url().startsWith(serverUrl)) return;
    const exchange = { method: request.method(), url: request.url() };
    exchange.done = (async () => {
      exchange.requestHeaders = await request.allHeaders();
      const response = await request.response();
      exchange.responseHeaders = response ? await response.allHeaders() : null;
      exchange.status = response?.status() ?? 0;
    })().catch((error) => {
      exchange.error = String(error);
    });
    exchanges.push(exchange);
  });
  return {
    settled: () => Promise.all(exchanges.map((e) => e.done)),
    fromOrigin: (origin) => exchanges.filter((e) => e.requestHeaders?.origin === origin),
  };
}

async function runPage(page, url) {
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => window.results?.done === true, null, { timeout: PAGE_TIMEOUT_MS });
  return page.evaluate(() => window.results);
}

function checkAllowedOrigin(results, exchanges) {
  console.log(`allowed origin ${results.origin}: ${results.calls.length} calls`);
  for (const call of results.calls) {
    const path = call.path.replace(results.workspaceId, "{id}");
    tally.check(`allowed: ${call.step}: ${call.method} ${path} → ${call.status}`, call.ok, call.error ?? "");
  }
  for (const check of results.checks) tally.check(`page: ${check.name}`, check.ok, check.detail);

  const cold = results.panels.cold;
  tally.check("panel: config.yaml as seeded on the instance", cold.config === SEEDED["config.yaml"]);
  tally.check("panel: runtime langgraph", cold.workspace?.runtime === "langgraph", cold.workspace?.runtime);

  tally.check(
    "the browser sent every call to the server",
    exchanges.length >= results.calls.length,
    `${exchanges.length} requests seen for ${results.calls.length} calls`,
  );
  const cookie = `${COOKIE.name}=${COOKIE.value}`;
  const withoutCookie = exchanges.filter((e) => !(e.requestHeaders?.cookie ?? "").split("; ").includes(cookie));
  tally.check(
    "every credentialed request carries the session cookie",
    exchanges.length > 0 && withoutCookie.length === 0,
    withoutCookie.map((e) => `${e.method} ${e.url}`).join(", "),
  );
  const badCors = exchanges.filter(
    (e) =>
      e.responseHeaders?.["access-control-allow-credentials"] !== "true" ||
      e.responseHeaders?.["access-control-allow-origin"] !== results.origin,
  );
  tally.check(
    "every response carries Access-Control-Allow-Credentials: true and the page's origin",
    exchanges.length > 0 && badCors.length === 0,
    badCors.map((e) => `${e.method} ${e.url} → ${e.status}`).join(", "),
  );

  const { cold: coldMs, warm: warmMs } = results.timings;
  console.log(`panel load measured in the page: cold ${coldMs.toFixed(0)} ms, warm ${warmMs.toFixed(0)} ms`);
  // Speed is the benchmarks' to judge (scripts/bench-panel); here only that both loads completed.
  tally.check(
    "the cold and the warm panel loads both completed and were timed",
    Number.isFinite(coldMs) && coldMs > 0 && Number.isFinite(warmMs) && warmMs > 0,
    `cold ${coldMs} ms, warm ${warmMs} ms`,
  );
}

/** The instance's disk, read directly: what the page saved and uploaded really landed there. */
function checkInstanceDisk(configsDir, results) {
  const saved = results.panels["after-save"]?.config;
  const onDisk = readFileSync(join(configsDir, "config.yaml"), "utf8");
  tally.check("instance disk: config.yaml holds what the page saved", saved != null && onDisk === saved);
  tally.check("instance disk: the kept upload exists", existsSync(join(configsDir, "browser-upload-b.md")));
  tally.check("instance disk: the deleted upload is gone", !existsSync(join(configsDir, "browser-upload-a.txt")));
  const plugin = join(configsDir, "plugins", "browser-plugin");
  tally.check(
    "instance disk: the installed plugin is there whole",
    Object.entries(PLUGIN_FILES).every(([path, content]) => existsSync(join(plugin, path)) && readFileSync(join(plugin, path), "utf8") === content),
  );
}

/** What the Settings flow wrote, read straight from PostgreSQL with psql. */
function checkSettingsInDatabase(database, workspaceId, settings) {
  if (!database) {
    console.log("database checks SKIPPED: they need DATABASE_URL (psql against the server's database)");
    return;
  }
  const sql = (query) =>
    execFileSync("psql", [database.url, "-XAtc", query], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  const quoted = (text) => `'${String(text).replaceAll("'", "''")}'`;
  const ws = quoted(workspaceId);
  // Encrypted at rest: version 1, and the plaintext appears nowhere in the stored bytes.
  const secrets = sql(
    `SELECT 'global:' || key || ':' || encryption_version || ':' ||
            (position(convert_to('-from-browser', 'UTF8') in encrypted_value) = 0)
       FROM global_secrets WHERE key LIKE 'BROWSER_%'
     UNION ALL
     SELECT 'workspace:' || key || ':' || encryption_version || ':' ||
            (position(convert_to('-from-browser', 'UTF8') in encrypted_value) = 0)
       FROM workspace_secrets WHERE workspace_id = ${ws} AND key LIKE 'BROWSER_%'
     ORDER BY 1`,
  );
  tally.check(
    "database: both global keys and the override are stored encrypted",
    secrets === "global:BROWSER_GLOBAL_ONLY_KEY:1:true\nglobal:BROWSER_SHARED_KEY:1:true\nworkspace:BROWSER_SHARED_KEY:1:true",
    secrets.replaceAll("\n", ", "),
  );
  const minted = settings.mintedToken ?? "";
  const tokenRow = settings.tokenId
    ? sql(`SELECT encode(token_hash, 'hex') || ':' || prefix || ':' || (revoked_at IS NOT NULL)
             FROM workspace_auth_tokens WHERE id = ${quoted(settings.tokenId)} AND workspace_id = ${ws}`)
    : "";
  const hash = createHash("sha256").update(minted).digest("hex");
  tally.check(
    "database: the minted token is stored as its sha256 and revoked",
    minted !== "" && tokenRow === `${hash}:${minted.slice(0, 8)}:true`,
    tokenRow,
  );
  const viewport = sql("SELECT x || ',' || y || ',' || zoom FROM canvas_viewport");
  const expected = settings.viewport ? `${settings.viewport.x},${settings.viewport.y},${settings.viewport.zoom}` : "none";
  tally.check("database: the one viewport row holds what the page saved", viewport === expected, viewport);
  const approval = settings.approvalId
    ? sql(
        `SELECT a.status || ':' || a.decided_by || ':' ||
                (SELECT count(*) FROM structure_events e
                  WHERE e.event_type = 'APPROVAL_APPROVED' AND e.workspace_id = a.workspace_id
                    AND e.payload->>'approval_id' = a.id::text)
           FROM approval_requests a WHERE a.id = ${quoted(settings.approvalId)} AND a.workspace_id = ${ws}`,
      )
    : "";
  tally.check("database: the approval is approved by a human, with its event", approval === "approved:human:1", approval);
}

function checkForeignOrigin(results, configUnchanged) {
  console.log(`foreign origin ${results.origin}: ${results.calls.length} calls`);
  const answered = results.calls.filter((c) => c.status !== 0 || !String(c.error).startsWith("TypeError"));
  tally.check(
    "foreign origin: the browser refuses every call (fetch rejects)",
    results.calls.length >= 4 && answered.length === 0,
    answered.map((c) => `${c.method} ${c.path} → ${c.status}`).join(", ") || `${results.calls.length} refused`,
  );
  tally.check("foreign origin: the instance's config.yaml is unchanged", configUnchanged);
}

async function cleanUp() {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (error) {
      console.error(`cleanup: ${error.message}`);
    }
  }
}

const watchdog = setTimeout(() => {
  console.error(`browser test did not finish within ${RUN_TIMEOUT_MS / 1000} s`);
  tally.check("run finished in time", false);
  cleanUp().finally(() => finish());
}, RUN_TIMEOUT_MS);

function finish() {
  clearTimeout(watchdog);
  console.log(tally.summary());
  process.exit(tally.failed === 0 && tally.passed > 0 ? 0 : 1);
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    tally.check(`run interrupted by ${signal}`, false);
    cleanUp().finally(finish);
  });
}

try {
  await main();
} catch (error) {
  tally.check("setup and run", false, error.stack ?? String(error));
}
await cleanUp();
finish();
