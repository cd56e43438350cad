// The Chat tab's round trip as the canvas makes it: subscribe to /ws, send the message through
// POST /workspaces/{id}/a2a (credentials included, JSON), and wait for the agent's reply to arrive
// as A2A_RESPONSE on the socket. Query string: ?server=<base URL>&ws=<workspace id>&text=<message>.
// Everything observed is exposed on `window.chat` for the Playwright runner.

const params = new URLSearchParams(location.search);
const server = (params.get("server") ?? "").replace(/\/+$/, "");
const workspaceId = params.get("ws") ?? "";
const text = params.get("text") ?? "hello";
const WAIT_MS = 30_000;

const chat = { origin: location.origin, socket: "connecting", status: 0, answer: "", frame: null, error: null, done: false };
window.chat = chat;

function show(line) {
  document.getElementById("log").textContent += `${line}\n`;
  document.getElementById("state").textContent = chat.socket;
}

async function run() {
  const frames = [];
  const socket = new WebSocket(`${server.replace(/^http/, "ws")}/ws`);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error("socket error"));
  });
  chat.socket = "open";
  show("socket open");
  const reply = new Promise((resolve) => {
    socket.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      frames.push(frame.event);
      if (frame.event === "A2A_RESPONSE" && frame.workspace_id === workspaceId) resolve(frame);
    };
    setTimeout(() => resolve(null), WAIT_MS);
  });
  const response = await fetch(`${server}/workspaces/${encodeURIComponent(workspaceId)}/a2a`, {
    method: "POST",
    credentials: "include",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      method: "message/send",
      params: { message: { role: "user", messageId: crypto.randomUUID(), parts: [{ kind: "text", text }] } },
    }),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  chat.status = response.status;
  chat.answer = await response.text();
  show(`POST a2a: ${chat.status}`);
  chat.frame = await reply;
  chat.frames = frames;
  show(chat.frame ? `A2A_RESPONSE: ${JSON.stringify(chat.frame.payload).slice(0, 200)}` : "no A2A_RESPONSE");
  socket.close();
}

run()
  .catch((error) => {
    chat.error = String(error);
    show(chat.error);
  })
  .finally(() => {
    chat.done = true;
  });
