// The canvas's lifecycle calls (ContextMenu's restart and pause, ConsoleModal's console, the
// resume button), made as lib/api.ts makes them from the tenant's own origin: the page is served
// through the server's canvas proxy, so the calls are same-origin and carry the session cookie
// and no bearer (the SaaS canvas). Query string: ?ws=<workspace id>.
// Everything observed is exposed on `window.lifecycle` for the Playwright runner.

const params = new URLSearchParams(location.search);
const workspaceId = params.get("ws") ?? "";
const REQUEST_TIMEOUT_MS = 15_000;

const lifecycle = { origin: location.origin, calls: [], done: false };
window.lifecycle = lifecycle;

async function call(step, method, path, body) {
  const entry = { step, method, path, status: 0, ok: false, json: null, error: null };
  lifecycle.calls.push(entry);
  try {
    const response = await fetch(path, {
      method,
      credentials: "include",
      headers: { "Content-Type": "application/json" },
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
  const item = document.createElement("li");
  item.textContent = `${step}: ${method} ${path} → ${entry.status}`;
  document.getElementById("calls").append(item);
  return entry;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function run() {
  const ws = `/workspaces/${encodeURIComponent(workspaceId)}`;
  await call("ContextMenu restart", "POST", `${ws}/restart`, {});
  const console = await call("ConsoleModal", "GET", `${ws}/console`);
  document.getElementById("console").textContent = console.json?.output ?? "";
  await call("ContextMenu pause", "POST", `${ws}/pause`, {});
  // The canvas shows the paused node, then offers resume.
  for (let i = 0; i < 100; i++) {
    const node = await call("poll status", "GET", ws);
    if (node.json?.status === "paused") break;
    await sleep(100);
  }
  await call("resume", "POST", `${ws}/resume`, {});
}

run()
  .catch((error) => {
    lifecycle.error = String(error);
  })
  .finally(() => {
    lifecycle.done = true;
  });
