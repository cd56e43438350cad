// Reproduces the canvas's calls to workspace-server (ConfigTab's load and save, FilesTab's
// sequence) exactly as its fetch client makes them, and records what the browser saw.
// Query string: ?server=<base URL>&ws=<workspace id>&token=<workspace token>&admin=<admin token>
// (the canvas's NEXT_PUBLIC_ADMIN_TOKEN, for the Settings panel's global keys and approvals).
// Everything observed is exposed on `window.results` for the Playwright runner.

const params = new URLSearchParams(location.search);
const server = (params.get("server") ?? "").replace(/\/+$/, "");
const workspaceId = params.get("ws") ?? "";
const token = params.get("token") ?? "";
const adminToken = params.get("admin") ?? "";

// The canvas's client aborts a request after 15 s (lib/api.ts); so does this page.
const REQUEST_TIMEOUT_MS = 15_000;
const UPLOADS = {
  "browser-upload-a.txt": "uploaded from a real browser\n",
  "browser-upload-b.md": "# second upload\n\nkept after the delete\n",
};
const DELETED_UPLOAD = "browser-upload-a.txt";
const KEPT_UPLOAD = "browser-upload-b.md";

const results = {
  origin: location.origin,
  server,
  workspaceId,
  calls: [],
  checks: [],
  timings: {},
  panels: {},
  settings: {},
  done: false,
};
window.results = results;

const wsPath = `/workspaces/${encodeURIComponent(workspaceId)}`;

/**
 * One call as lib/api.ts makes it; never throws: a refused call is recorded with status 0.
 * `bearer` is the workspace token unless given; `null` sends no Authorization header. A call
 * answering `expected` (a documented refusal the flow checks) counts as ok.
 */
async function call(step, method, path, body, bearer = token, expected = undefined) {
  const entry = { step, method, path, status: 0, ok: false, ms: 0, error: null, json: null };
  results.calls.push(entry);
  const started = performance.now();
  const headers = { "Content-Type": "application/json" };
  if (bearer !== null) headers.Authorization = `Bearer ${bearer}`;
  try {
    const response = await fetch(server + path, {
      method,
      credentials: "include",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    entry.status = response.status;
    entry.ok = response.ok || response.status === expected;
    const text = await response.text();
    try {
      entry.json = text ? JSON.parse(text) : null;
    } catch {
      entry.error = `body is not JSON: ${text.slice(0, 80)}`;
    }
  } catch (error) {
    entry.error = `${error.name}: ${error.message}`;
  }
  entry.ms = performance.now() - started;
  renderCall(entry, results.calls.indexOf(entry) + 1);
  return entry;
}

function check(name, ok, detail = "") {
  results.checks.push({ name, ok: Boolean(ok), detail: String(detail) });
  const item = document.createElement("li");
  item.className = ok ? "ok" : "failed";
  item.textContent = detail ? `${name} — ${detail}` : name;
  document.getElementById("checks").append(item);
}

/** ConfigTab.loadConfig: three metadata GETs in parallel, then config.yaml (skipped for external). */
async function loadPanel(label) {
  const step = `panel ${label}`;
  const start = `${step} start`;
  performance.mark(start);
  const [workspace, model, provider] = await Promise.all([
    call(step, "GET", wsPath),
    call(step, "GET", `${wsPath}/model`),
    call(step, "GET", `${wsPath}/provider`),
  ]);
  let config = null;
  if (workspace.json?.runtime !== "external") {
    const file = await call(step, "GET", `${wsPath}/files/config.yaml`);
    config = file.ok ? (file.json?.content ?? null) : null;
  }
  const measure = performance.measure(step, start);
  const panel = {
    ms: measure.duration,
    workspace: workspace.ok ? workspace.json : null,
    model: model.ok ? (model.json?.model ?? null) : null,
    provider: provider.ok ? (provider.json?.provider ?? null) : null,
    config,
  };
  results.timings[label] = measure.duration;
  results.panels[label] = panel;
  renderPanel(panel);
  return panel;
}

/** ConfigTab.handleSave: file, then metadata, then model and provider. */
async function save(loaded) {
  const saved = {
    config: `${loaded.config ?? ""}# saved from a browser\n`,
    name: `${loaded.workspace?.name ?? "workspace"} (saved)`,
    tier: 2,
    model: "anthropic:claude-sonnet-4-5",
    provider: "anthropic",
  };
  await call("save", "PUT", `${wsPath}/files/config.yaml`, { content: saved.config });
  await call("save", "PATCH", wsPath, { name: saved.name, tier: saved.tier });
  await call("save", "PUT", `${wsPath}/model`, { model: saved.model });
  await call("save", "PUT", `${wsPath}/provider`, { provider: saved.provider });
  return saved;
}

/** useFilesApi: list, expand a folder, read, upload, delete, list again. */
async function filesTab() {
  const listQuery = "root=%2Fconfigs&depth=1";
  const list = await call("files", "GET", `${wsPath}/files?${listQuery}`);
  const entries = Array.isArray(list.json) ? list.json : [];
  check("files: the list shows config.yaml", entries.some((e) => e.path === "config.yaml" && !e.dir));

  const folder = entries.find((e) => e.dir);
  check("files: the list shows a folder", folder, folder?.path ?? "none");
  let readPath = "config.yaml";
  if (folder) {
    const expand = await call(
      "files",
      "GET",
      `${wsPath}/files?${listQuery}&path=${encodeURIComponent(folder.path)}`,
    );
    const children = Array.isArray(expand.json) ? expand.json : [];
    const child = children.find((e) => !e.dir);
    check("files: the expanded folder lists a file", child, child?.path ?? "none");
    // The tab prefixes children with the folder it expanded.
    if (child) readPath = `${folder.path}/${child.path}`;
  }
  const read = await call("files", "GET", `${wsPath}/files/${readPath}?root=%2Fconfigs`);
  check("files: read returns content", typeof read.json?.content === "string", readPath);

  // Upload and delete carry no root: they always land in /configs.
  for (const [name, content] of Object.entries(UPLOADS)) {
    await call("files", "PUT", `${wsPath}/files/${name}`, { content });
  }
  await call("files", "DELETE", `${wsPath}/files/${DELETED_UPLOAD}`);
  const after = await call("files", "GET", `${wsPath}/files?${listQuery}`);
  const paths = Array.isArray(after.json) ? after.json.map((e) => e.path) : [];
  check(
    "files: after the delete the list keeps the other upload only",
    paths.includes(KEPT_UPLOAD) && !paths.includes(DELETED_UPLOAD),
    paths.join(", "),
  );
  const readBack = await call("files", "GET", `${wsPath}/files/${KEPT_UPLOAD}?root=%2Fconfigs`);
  check("files: an upload reads back unchanged", readBack.json?.content === UPLOADS[KEPT_UPLOAD]);
}

const GLOBAL_KEY = "BROWSER_SHARED_KEY";
const GLOBAL_ONLY_KEY = "BROWSER_GLOBAL_ONLY_KEY";
const SECRET_VALUES = {
  global: "global-value-from-browser",
  globalOnly: "global-only-value-from-browser",
  workspace: "workspace-override-from-browser",
};
const VIEWPORT = { x: -123.5, y: 48, zoom: 0.75 };

/** The Settings panel: a global key, its workspace override, and the merged list. */
async function settingsSecrets() {
  for (const [key, value] of [[GLOBAL_KEY, SECRET_VALUES.global], [GLOBAL_ONLY_KEY, SECRET_VALUES.globalOnly]]) {
    const saved = await call("settings", "PUT", "/settings/secrets", { key, value }, adminToken);
    check(`settings: global ${key} saved`, saved.json?.status === "saved" && saved.json?.scope === "global", saved.status);
  }
  const override = await call("settings", "PUT", `${wsPath}/secrets`, { key: GLOBAL_KEY, value: SECRET_VALUES.workspace });
  check("settings: workspace override saved", override.json?.status === "saved" && override.json?.key === GLOBAL_KEY, override.status);
  const list = await call("settings", "GET", `${wsPath}/secrets`);
  const rows = Array.isArray(list.json) ? list.json : [];
  const scopeOf = (key) => rows.find((row) => row.key === key)?.scope;
  check("settings: the override lists at workspace scope", scopeOf(GLOBAL_KEY) === "workspace", scopeOf(GLOBAL_KEY));
  check("settings: the global-only key lists at global scope", scopeOf(GLOBAL_ONLY_KEY) === "global", scopeOf(GLOBAL_ONLY_KEY));
  check(
    "settings: the list never carries a value",
    rows.length >= 2 &&
      !JSON.stringify(list.json).includes("-from-browser") &&
      rows.every((row) => row.has_value === true),
  );
}

/** TokensTab: mint, list, revoke, list again. */
async function settingsTokens() {
  const minted = await call("tokens", "POST", `${wsPath}/tokens`);
  const plaintext = minted.json?.auth_token ?? "";
  check("tokens: a 43-character token is minted", minted.status === 201 && plaintext.length === 43, minted.status);
  const listed = await call("tokens", "GET", `${wsPath}/tokens`);
  const row = (listed.json?.tokens ?? []).find((t) => t.prefix === plaintext.slice(0, 8));
  check("tokens: the list shows its prefix, never the token", row && !JSON.stringify(listed.json).includes(plaintext));
  results.settings.mintedToken = plaintext;
  results.settings.tokenId = row?.id ?? null;
  if (!row) return;
  const revoked = await call("tokens", "DELETE", `${wsPath}/tokens/${row.id}`);
  check("tokens: revoked", revoked.json?.status === "revoked", revoked.status);
  const after = await call("tokens", "GET", `${wsPath}/tokens`);
  check("tokens: the revoked token is gone from the list", !(after.json?.tokens ?? []).some((t) => t.id === row.id));
}

/** The canvas saves its viewport without a bearer (it passes by its Origin) and reads it back. */
async function viewport() {
  const saved = await call("viewport", "PUT", "/canvas/viewport", VIEWPORT, null);
  check("viewport: saved by the allowed origin", saved.json?.status === "saved", saved.status);
  const read = await call("viewport", "GET", "/canvas/viewport", undefined, null);
  check("viewport: reads back as saved", JSON.stringify(read.json) === JSON.stringify(VIEWPORT), JSON.stringify(read.json));
  results.settings.viewport = VIEWPORT;
}

/** ApprovalBanner: poll the pending requests, approve the agent's one. */
async function approvals() {
  const pending = await call("approvals", "GET", "/approvals/pending", undefined, adminToken);
  const mine = (Array.isArray(pending.json) ? pending.json : []).find((a) => a.workspace_id === workspaceId);
  check("approvals: the agent's request is pending", mine, mine?.action ?? "none");
  if (!mine) return;
  const path = `/workspaces/${mine.workspace_id}/approvals/${mine.id}/decide`;
  const decided = await call("approvals", "POST", path, { decision: "approved", decided_by: "human" });
  check("approvals: approved", decided.json?.status === "approved" && decided.json?.approval_id === mine.id, decided.status);
  const again = await call("approvals", "GET", "/approvals/pending", undefined, adminToken);
  check("approvals: no longer pending", Array.isArray(again.json) && !again.json.some((a) => a.id === mine.id));
  results.settings.approvalId = mine.id;
}

/** The agent's commit, then MemoryInspectorPanel: namespaces, "All", one namespace, a search, a delete. */
async function memoryTab() {
  const note = "the browser remembers the deploy checklist";
  const committed = await call("memory", "POST", `${wsPath}/memories`, { content: note, scope: "LOCAL" });
  const namespaces = await call("memory", "GET", `${wsPath}/v2/namespaces`);
  const own = namespaces.json?.readable?.[0]?.name ?? "";
  check("memory: the tab lists three readable namespaces", namespaces.json?.readable?.length === 3, own);
  const all = await call("memory", "GET", `${wsPath}/v2/memories?`);
  const listed = (all.json?.memories ?? []).find((m) => m.id === committed.json?.id);
  check("memory: the agent's commit shows in the tab", listed?.namespace === own, listed?.namespace ?? "absent");
  await call("memory", "GET", `${wsPath}/v2/memories?namespace=${encodeURIComponent(own)}`);
  const search = await call("memory", "GET", `${wsPath}/v2/memories?q=checklist`);
  check("memory: a search finds it with a score", search.json?.memories?.[0]?.score > 0);
  await call("memory", "DELETE", `${wsPath}/v2/memories/${encodeURIComponent(committed.json?.id ?? "none")}`);
  const after = await call("memory", "GET", `${wsPath}/v2/memories?`);
  check("memory: the deleted memory is gone", !(after.json?.memories ?? []).some((m) => m.id === committed.json?.id));
}

/** ScheduleTab: list, create, edit (all five fields), toggle, run now, delete. */
async function scheduleTab() {
  const path = `${wsPath}/schedules`;
  await call("schedule", "GET", path);
  const form = { name: "browser daily", cron_expr: "0 9 * * *", timezone: "Europe/Paris", prompt: "report", enabled: true };
  const created = await call("schedule", "POST", path, form);
  check("schedule: created with a next run", typeof created.json?.next_run_at === "string", created.json?.next_run_at);
  const id = encodeURIComponent(created.json?.id ?? "none");
  await call("schedule", "PATCH", `${path}/${id}`, { ...form, cron_expr: "30 8 * * 1-5" });
  await call("schedule", "PATCH", `${path}/${id}`, { enabled: false });
  const run = await call("schedule", "POST", `${path}/${id}/run`, {});
  check("schedule: run now answers the prompt", run.json?.prompt === "report");
  const listed = await call("schedule", "GET", path);
  const row = (listed.json ?? []).find((s) => s.id === created.json?.id);
  check("schedule: the edit reads back", row?.cron_expr === "30 8 * * 1-5" && row?.enabled === false);
  await call("schedule", "DELETE", `${path}/${id}`);
}

const PLUGIN = "browser-plugin";

/** SkillsTab's Plugins section: installed, registry and sources on mount, then an install from the registry. */
async function pluginsTab() {
  const [installed, registry, sources] = await Promise.all([
    call("plugins", "GET", `${wsPath}/plugins`),
    call("plugins", "GET", "/plugins"),
    call("plugins", "GET", "/plugins/sources"),
  ]);
  check("plugins: the registry lists the browser plugin", (registry.json ?? []).some((p) => p.name === PLUGIN));
  check("plugins: the sources are github and local", JSON.stringify(sources.json?.schemes) === '["github","local"]');
  check("plugins: nothing installed yet", Array.isArray(installed.json) && installed.json.length === 0);
  const done = await call("plugins", "POST", `${wsPath}/plugins`, { source: `local://${PLUGIN}` });
  check("plugins: installed", done.json?.status === "installed" && done.json?.plugin === PLUGIN, done.json?.status);
  const after = await call("plugins", "GET", `${wsPath}/plugins`);
  const row = (after.json ?? []).find((p) => p.name === PLUGIN);
  check("plugins: listed as installed, supported on langgraph", row?.supported_on_runtime === true, JSON.stringify(row));
}

/**
 * ContextMenu's Export and Duplicate, BundleDropZone's import, and TemplatePalette's Org section
 * with its missing-keys preflight (OrgImportPreflightModal saves the key as a global secret).
 */
async function bundlesAndOrg() {
  const exported = await call("bundle", "GET", `/bundles/export/${encodeURIComponent(workspaceId)}`, undefined, adminToken);
  const bundle = exported.json ?? {};
  check("bundle: export reads the instance's config.yaml", (bundle.prompts?.["config.yaml"] ?? "").includes("runtime:"), bundle.name);
  const duplicate = await call("bundle", "POST", "/bundles/import", bundle, adminToken);
  check(
    "bundle: Duplicate of a root workspace creates a copy with a fresh id",
    duplicate.status === 201 && duplicate.json?.workspace_id !== workspaceId && duplicate.json?.name === `${bundle.name} (copy)`,
    duplicate.json?.name,
  );
  // The drop zone: the downloaded file (JSON.stringify(bundle, null, 2)) parsed and posted back.
  const dropped = JSON.parse(JSON.stringify(bundle, null, 2));
  const imported = await call("bundle", "POST", "/bundles/import", dropped, adminToken);
  check("bundle: the dropped file imports again under the next free name", imported.json?.name === `${bundle.name} (copy 2)`, imported.json?.name);
  const copy = await call("bundle", "GET", `/bundles/export/${encodeURIComponent(imported.json?.workspace_id ?? "none")}`, undefined, adminToken);
  check("bundle: the copy carries the same files", copy.json?.prompts?.["config.yaml"] === bundle.prompts?.["config.yaml"]);

  const templates = await call("org", "GET", "/org/templates", undefined, adminToken);
  const template = (templates.json ?? []).find((t) => t.dir === "browser-org");
  check("org: the palette lists the template with its required key", template?.required_env?.[0] === "ORG_PREFLIGHT_KEY", JSON.stringify(template?.required_env));
  const refused = await call("org", "POST", "/org/import", { dir: "browser-org" }, adminToken, 412);
  check("org: import without the key is 412 naming it", refused.status === 412 && refused.json?.missing_env?.[0] === "ORG_PREFLIGHT_KEY", refused.status);
  await call("org", "PUT", "/settings/secrets", { key: "ORG_PREFLIGHT_KEY", value: "from-the-modal" }, adminToken);
  const created = await call("org", "POST", "/org/import", { dir: "browser-org" }, adminToken);
  check("org: import creates the tree", created.status === 201 && created.json?.count === 2 && !created.json?.error, JSON.stringify(created.json?.workspaces?.map((w) => w.name)));
  results.settings.orgWorkspaces = (created.json?.workspaces ?? []).map((w) => w.id);
  const again = await call("org", "POST", "/org/import", { dir: "browser-org" }, adminToken);
  check("org: importing again resumes (every node skipped)", (again.json?.workspaces ?? []).every((w) => w.skipped === true) && again.json?.count === 2);
}

async function main() {
  document.getElementById("page-origin").textContent = location.origin;
  document.getElementById("server").textContent = server;
  document.getElementById("workspace").textContent = workspaceId;

  const cold = await loadPanel("cold");
  showTime("time-cold", cold.ms);
  const warm = await loadPanel("warm");
  showTime("time-warm", warm.ms);

  const saved = await save(cold);
  const reloaded = await loadPanel("after-save");
  check("save: config.yaml reads back as saved", reloaded.config === saved.config);
  check("save: name reads back as saved", reloaded.workspace?.name === saved.name, reloaded.workspace?.name);
  check("save: tier reads back as saved", reloaded.workspace?.tier === saved.tier, reloaded.workspace?.tier);
  check("save: model reads back as saved", reloaded.model === saved.model, reloaded.model);
  check("save: provider reads back as saved", reloaded.provider === saved.provider, reloaded.provider);

  await filesTab();
  await settingsSecrets();
  await settingsTokens();
  await viewport();
  await approvals();
  await memoryTab();
  await scheduleTab();
  await pluginsTab();
  await bundlesAndOrg();
}

function showTime(id, ms) {
  document.getElementById(id).textContent = `${ms.toFixed(0)} ms`;
}

function renderPanel(panel) {
  if (!panel.workspace) return;
  const show = (id, value) => {
    document.getElementById(id).textContent = value === null || value === "" ? "–" : String(value);
  };
  show("ws-name", panel.workspace.name);
  show("ws-runtime", panel.workspace.runtime);
  show("ws-tier", panel.workspace.tier);
  show("ws-model", panel.model);
  show("ws-provider", panel.provider);
  show("config-yaml", panel.config);
}

function renderCall(entry, index) {
  const row = document.createElement("tr");
  row.className = entry.ok ? "ok" : "failed";
  const cells = [
    [String(index), "num"],
    [entry.step, ""],
    [entry.method, ""],
    [entry.path.replace(wsPath, "/workspaces/{id}"), ""],
    [entry.status ? String(entry.status) : `refused (${entry.error})`, "status"],
    [entry.ms.toFixed(1), "num"],
  ];
  for (const [text, className] of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    if (className) cell.className = className;
    row.append(cell);
  }
  document.querySelector("#calls tbody").append(row);
}

function renderSummary() {
  const ok = results.calls.filter((c) => c.ok).length;
  document.getElementById("calls-ok").textContent = `${ok} / ${results.calls.length}`;
  const passed = results.checks.filter((c) => c.ok).length;
  document.getElementById("checks-ok").textContent = `${passed} / ${results.checks.length}`;
}

main()
  .catch((error) => {
    results.error = `${error.name}: ${error.message}`;
    check("page script ran to the end", false, results.error);
  })
  .finally(() => {
    renderSummary();
    results.done = true;
    document.body.dataset.state = "done";
  });
