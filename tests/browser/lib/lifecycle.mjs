// The lifecycle part of the browser test (issue 17): the canvas's restart, console, pause and
// resume calls from a real browser, in the SaaS topology. A third server runs as a tenant
// (MOLECULE_ORG_ID set) provisioning through eic-sim's simulated control plane, with the test
// page as its canvas (CANVAS_PROXY_URL): the page loads from the tenant's own origin through the
// canvas proxy, and its calls carry the control plane's session cookie and no bearer, as the
// SaaS canvas's do (the console is admin-only: the session is verified with the control plane).

import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { createDatabase, serveStatic, startServer } from "./services.mjs";

const ORG_ID = "org-browser";
const ORG_SLUG = "browser-org";
const WAIT_MS = 30_000;

export async function checkLifecycle({ tally, context, cleanups, serverBinary, env, sim, scratch, here, outDir }) {
  if (!sim.control_plane_url) {
    tally.check("lifecycle: eic-sim plays the control plane", false, "no control_plane_url in its ready line");
    return;
  }
  const canvas = await serveStatic(join(here, "page"));
  cleanups.push(canvas.stop);
  // Its own database: its instance-liveness sweep must not touch the other servers' workspaces.
  const database = createDatabase(process.env.DATABASE_URL);
  if (database) cleanups.push(database.drop);
  const tenantEnv = {
    ...env,
    ...(database ? { DATABASE_URL: database.url } : {}),
    MOLECULE_ORG_ID: ORG_ID,
    MOLECULE_ORG_SLUG: ORG_SLUG,
    MOLECULE_CP_URL: sim.control_plane_url,
    CP_UPSTREAM_URL: sim.control_plane_url,
    CANVAS_PROXY_URL: canvas.origin,
    PLATFORM_URL: "http://tenant.browser.test",
  };
  const cwd = join(scratch, "tenant-server");
  mkdirSync(cwd);
  const server = await startServer({ binary: serverBinary, env: tenantEnv, cwd, logPath: join(outDir, "tenant-server.log") });
  cleanups.push(server.stop);

  const simApi = (method, path, body) =>
    fetch(`${sim.aws_endpoint_url}/_sim/cp/${path}`, {
      method,
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    }).then((r) => r.json());

  // The operator creates the workspace (admin bearer, org header): the control plane provisions it.
  const created = await fetch(`${server.url}/workspaces`, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${env.ADMIN_TOKEN}`,
      "X-Molecule-Org-Id": ORG_ID,
      "Content-Type": "application/json",
    },
    body: JSON.stringify({ name: "browser-lifecycle", runtime: "langgraph", tier: 3 }),
    signal: AbortSignal.timeout(15_000),
  }).then((r) => r.json());
  const workspaceId = created.id;
  const provisioned = await waitFor(async () => (await simApi("GET", "status")).workspaces?.[workspaceId]);
  tally.check("lifecycle: create provisions through the simulated control plane", Boolean(provisioned), JSON.stringify(provisioned ?? null));

  const { cookie } = await simApi("POST", "sessions", { user_id: "user_browser" });
  const [name, value] = cookie.split("=");
  await context.addCookies([{ name, value, url: server.url }]);

  const page = await context.newPage();
  // The SaaS edge in front of the tenant adds the org header to every request it routes there
  // (without it the tenant guard answers an empty 404, the page included).
  await page.setExtraHTTPHeaders({ "X-Molecule-Org-Id": ORG_ID });
  await page.goto(`${server.url}/lifecycle.html?ws=${workspaceId}`, { waitUntil: "load" });
  await page.waitForFunction(() => window.lifecycle?.done === true, null, { timeout: 90_000 });
  const results = await page.evaluate(() => window.lifecycle);
  await page.screenshot({ path: join(outDir, "lifecycle.png") });
  tally.check("lifecycle: the page loads from the tenant's origin through the canvas proxy", results.origin === server.url, results.origin);

  const byStep = (step) => results.calls.find((c) => c.step === step) ?? {};
  const restart = byStep("ContextMenu restart");
  tally.check(
    "lifecycle: ContextMenu restart → 200 provisioning",
    restart.status === 200 && restart.json?.status === "provisioning",
    `${restart.status} ${JSON.stringify(restart.json)} ${restart.error ?? ""}`,
  );
  const console = byStep("ConsoleModal");
  tally.check(
    "lifecycle: ConsoleModal → 200 with the instance's console log (session verified by the control plane)",
    console.status === 200 && String(console.json?.output ?? "").includes(`provisioning workspace ${workspaceId}`),
    `${console.status} ${console.error ?? ""}`,
  );
  const pause = byStep("ContextMenu pause");
  tally.check(
    "lifecycle: ContextMenu pause → 200, one workspace paused",
    pause.status === 200 && pause.json?.paused_count === 1,
    `${pause.status} ${JSON.stringify(pause.json)}`,
  );
  const resume = byStep("resume");
  tally.check(
    "lifecycle: resume → 200, one workspace provisioning again",
    resume.status === 200 && resume.json?.resumed_count === 1,
    `${resume.status} ${JSON.stringify(resume.json)}`,
  );
  const calls = await waitFor(async () => {
    const status = await simApi("GET", "status");
    const mine = status.calls.filter((c) => c.path.includes(workspaceId) || c.body?.workspace_id === workspaceId);
    const provisions = mine.filter((c) => c.method === "POST").length;
    const stops = mine.filter((c) => c.method === "DELETE").length;
    return provisions >= 3 && stops >= 2 ? { provisions, stops } : null;
  });
  tally.check(
    "lifecycle: the control plane saw create, restart (stop + provision), pause (stop) and resume (provision)",
    Boolean(calls),
    JSON.stringify(calls),
  );
}

async function waitFor(probe) {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => null);
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return null;
}
