"""A small A2A agent built with the official a2a-sdk, for the black-box tests.

It registers itself with the platform through /registry/register and then either serves A2A
JSON-RPC (push mode: the platform's proxy calls it) or reads its inbox, the platform's activity
log, with a since_id cursor (poll mode). Its executor is scripted, no model:

  "notify: <text>"  -> sends <text> to the canvas through POST /workspaces/{id}/notify
  "sleep: <secs>"   -> answers "slept <secs>" after that many seconds
  "big: <bytes>"    -> answers a text of that many bytes
  anything else     -> answers "echo: <text>"

Chat attachments: in push mode it serves the platform's upload forward
(POST /internal/chat/uploads/ingest, bearer = the platform_inbound_secret it was given) and
prints {"uploaded": name, "size": n, "content": text} per file; in poll mode a
chat_upload_receive row in its inbox makes it fetch the file
(GET /workspaces/{id}/pending-uploads/{file_id}/content), ack it, and print
{"fetched": name, "size": n, "content": text, "acked": status}.

Every line it prints on stdout is one JSON object: {"ready": url} once registered, then
{"inbox": text, "id": row_id} for each message a poll-mode agent reads.
"""

import argparse
import asyncio
import email.parser
import email.policy
import json
import socket
import sys

import httpx
import uvicorn
from a2a.helpers.proto_helpers import new_text_message
from a2a.server.agent_execution.agent_executor import AgentExecutor
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes.agent_card_routes import create_agent_card_routes
from a2a.server.routes.jsonrpc_routes import create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import a2a_pb2
from starlette.applications import Starlette


def say(**line):
    print(json.dumps(line), flush=True)


class Platform:
    def __init__(self, base, workspace_id):
        self.base = base.rstrip("/")
        self.workspace_id = workspace_id
        self.token = None
        self.inbound_secret = None
        self.http = httpx.AsyncClient(timeout=30)

    def headers(self):
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def register(self, url, mode, card):
        body = {"id": self.workspace_id, "url": url, "agent_card": card, "delivery_mode": mode}
        reply = await self.http.post(f"{self.base}/registry/register", json=body, headers=self.headers())
        reply.raise_for_status()
        self.token = reply.json().get("auth_token") or self.token
        self.inbound_secret = reply.json().get("platform_inbound_secret") or self.inbound_secret

    async def notify(self, text):
        path = f"{self.base}/workspaces/{self.workspace_id}/notify"
        reply = await self.http.post(path, json={"message": text}, headers=self.headers())
        reply.raise_for_status()

    async def inbox(self, cursor):
        query = {"type": "a2a_receive"}
        query.update({"since_id": cursor} if cursor else {"since_secs": "600"})
        path = f"{self.base}/workspaces/{self.workspace_id}/activity"
        reply = await self.http.get(path, params=query, headers=self.headers())
        if reply.status_code == 410:
            return None
        reply.raise_for_status()
        rows = reply.json()
        return rows if cursor else list(reversed(rows))


    async def fetch_upload(self, file_id):
        """Fetches a staged chat attachment and acks it; returns (bytes, ack status)."""
        base = f"{self.base}/workspaces/{self.workspace_id}/pending-uploads/{file_id}"
        reply = await self.http.get(f"{base}/content", headers=self.headers())
        if reply.status_code == 404:
            return None, 404
        reply.raise_for_status()
        acked = await self.http.post(f"{base}/ack", headers=self.headers())
        return reply.content, acked.status_code


def form_files(content_type, body):
    """The `files` parts of a multipart/form-data body (stdlib parser, no extra package)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    files = []
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") != "files":
            continue
        files.append((part.get_filename() or "file", part.get_content_type(), part.get_payload(decode=True)))
    return files


def ingest_route(platform):
    """The workspace side of the platform's upload forward."""
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def ingest(request):
        if request.headers.get("authorization") != f"Bearer {platform.inbound_secret}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = await request.body()
        files = form_files(request.headers.get("content-type", ""), body)
        if not files:
            return JSONResponse({"error": "no files"}, status_code=400)
        answer = []
        for name, mime, content in files:
            say(uploaded=name, size=len(content), content=content.decode("utf-8", "replace"))
            answer.append({"uri": f"workspace:/workspace/.molecule/chat-uploads/{name}",
                           "name": name, "mimeType": mime, "size": len(content)})
        return JSONResponse({"files": answer})

    return Route("/internal/chat/uploads/ingest", ingest, methods=["POST"])


async def answer(platform, text):
    """The scripted executor's answer to one message."""
    if text.startswith("notify: "):
        await platform.notify(text[len("notify: "):])
        return "notified"
    if text.startswith("sleep: "):
        seconds = float(text[len("sleep: "):])
        await asyncio.sleep(seconds)
        return f"slept {seconds:g}"
    if text.startswith("big: "):
        return "x" * int(text[len("big: "):])
    return f"echo: {text}"


class ScriptedExecutor(AgentExecutor):
    def __init__(self, platform):
        self.platform = platform

    async def execute(self, context, event_queue):
        reply = await answer(self.platform, context.get_user_input())
        await event_queue.enqueue_event(new_text_message(reply, context_id=context.context_id))

    async def cancel(self, context, event_queue):
        raise NotImplementedError("cancel is not supported")


def card_json(url):
    return {
        "name": "Echo agent",
        "description": "Scripted A2A agent for tests",
        "version": "1.0.0",
        "url": url,
        "capabilities": {"streaming": True},
        "skills": [{"id": "echo", "name": "Echo"}],
    }


def card_proto(url):
    return a2a_pb2.AgentCard(
        name="Echo agent",
        description="Scripted A2A agent for tests",
        version="1.0.0",
        supported_interfaces=[a2a_pb2.AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")],
        capabilities=a2a_pb2.AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[a2a_pb2.AgentSkill(id="echo", name="Echo", description="Echoes", tags=["test"])],
    )


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def serve_push(platform, port):
    port = port or free_port()
    url = f"http://localhost:{port}/"
    handler = DefaultRequestHandler(
        agent_executor=ScriptedExecutor(platform),
        task_store=InMemoryTaskStore(),
        agent_card=card_proto(url),
    )
    routes = [ingest_route(platform)] + create_agent_card_routes(card_proto(url)) + create_jsonrpc_routes(
        handler, "/", enable_v0_3_compat=True
    )
    config = uvicorn.Config(Starlette(routes=routes), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    await platform.register(url, "push", card_json(url))
    say(ready=url)
    await serving


async def serve_poll(platform, interval):
    await platform.register("", "poll", card_json(""))
    say(ready="poll")
    cursor = None
    while True:
        rows = await platform.inbox(cursor)
        if rows is None:
            cursor = None
            continue
        for row in rows:
            cursor = row["id"]
            if row.get("method") == "notify":
                continue
            if row.get("method") == "chat_upload_receive":
                upload = row.get("request_body") or {}
                content, acked = await platform.fetch_upload(upload.get("file_id"))
                text = content.decode("utf-8", "replace") if content is not None else None
                say(fetched=upload.get("name"), size=len(content or b""), content=text, acked=acked)
                continue
            parts = (((row.get("request_body") or {}).get("params") or {}).get("message") or {}).get("parts") or []
            text = "".join(p.get("text", "") for p in parts if p.get("kind", p.get("type")) == "text")
            say(inbox=text, id=row["id"])
            await platform.notify(await answer(platform, text))
        await asyncio.sleep(interval)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--platform", required=True)
    parser.add_argument("--workspace-id", required=True)
    parser.add_argument("--mode", choices=["push", "poll"], default="push")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--poll-interval", type=float, default=0.2)
    args = parser.parse_args()
    platform = Platform(args.platform, args.workspace_id)
    if args.mode == "push":
        asyncio.run(serve_push(platform, args.port))
    else:
        asyncio.run(serve_poll(platform, args.poll_interval))


if __name__ == "__main__":
    sys.exit(main())
