// Reproduces the canvas's calls to workspace-server (ConfigTab's load and save, FilesTab's
// sequence) exactly as its fetch client makes them, and records what the browser saw.
// Query string: ?server=<base URL>&ws=<workspace id>&token=<workspace token>.
// Everything observed is exposed on `window.results` for the Playwright runner.

const params = new URLSearchParams(location.search);
const server = (params.get("server") ?? "").replace(/\/+$/, "");
const workspaceId = params.get("ws") ?? "";
const token = params.get("token") ?? "";

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
  done: false,
};
window.results = results;

const wsPath = `/workspaces/${encodeURIComponent(workspaceId)}`;

/** One call as lib/api.ts makes it; never throws: a refused call is recorded with status 0. */
async function call(step, method, path, body) {
  const entry = { step, method, path, status: 0, ok: false, ms: 0, error: null, json: null };
  results.calls.push(entry);
  const started = performance.now();
  try {
    const response = await fetch(server + path, {
      method,
      credentials: "include",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    entry.status = response.status;
    entry.ok = response.ok;
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
  await memoryTab();
  await scheduleTab();
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
