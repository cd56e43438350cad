// The canvas's TerminalTab, reduced to what it does on the wire: xterm.js, a WebSocket to
// /workspaces/{id}/terminal with binaryType "arraybuffer", binary frames written as bytes, text
// frames as strings, every keystroke sent as a text frame. Query: ?server=ws://HOST:PORT&ws=ID.
// Exposes window.terminal = { state, close, screen() } for the runner.

const params = new URLSearchParams(location.search);
const status = document.getElementById("status");
const term = new Terminal({ cols: 100, rows: 24 });
term.open(document.getElementById("terminal"));

const terminal = {
  state: "connecting",
  close: null,
  /** The visible lines of the terminal, as text. */
  screen() {
    const buffer = term.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? "");
    return lines.join("\n");
  },
};
window.terminal = terminal;

const socket = new WebSocket(`${params.get("server")}/workspaces/${params.get("ws")}/terminal`);
socket.binaryType = "arraybuffer";
socket.onopen = () => {
  terminal.state = "open";
  status.textContent = "Connected to workspace shell";
  term.focus();
};
socket.onmessage = (event) => {
  if (event.data instanceof ArrayBuffer) term.write(new Uint8Array(event.data));
  else term.write(event.data);
};
socket.onclose = (event) => {
  terminal.state = "closed";
  terminal.close = { code: event.code, reason: event.reason };
  status.textContent = `Session ended (${event.code} ${event.reason})`;
};
term.onData((data) => {
  if (socket.readyState === WebSocket.OPEN) socket.send(data);
});
