"""An HTTP proxy that sits between medconsult and a real server (llama.cpp, the FHIR server) and injects faults
from outside the code: a delay, an error status, an answer that never comes, a dropped connection, a corrupted
reply, a paging link that loops.

Each request is forwarded whole and its answer buffered, then sent on (a streamed LLM reply arrives at once, which
the client reads the same way). A fault applies to the requests its pattern matches (method, path and query, and
body), for its first `times` matches or for all of them.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import requests

FaultKind = Literal["delay", "status", "hang", "drop", "loop_next", "truncate_reply", "invalid_reply"]
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


@dataclass
class Fault:
    kind: FaultKind
    match: str = ""  # a regex searched in "METHOD /path?query" and then in the body
    times: int | None = None  # None: every match
    delay_s: float = 0.0  # delay: before forwarding
    status: int = 500
    before_forward: Callable[[], None] | None = None  # e.g. kill the server while this request is in flight
    applied: int = field(default=0, init=False)

    def takes(self, request_line: str, body: bytes) -> bool:
        if self.times is not None and self.applied >= self.times:
            return False
        pattern = re.compile(self.match)
        if pattern.search(request_line) or pattern.search(body.decode("utf-8", "replace")):
            self.applied += 1
            return True
        return False


class FaultProxy:
    """`with FaultProxy(upstream) as proxy:` serves on 127.0.0.1; `proxy.inject(fault)` arms a fault."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: list[Fault] = []
        self.requests: list[str] = []
        self.credentials: set[str] = set()  # Authorization headers seen (the secrets scan's positive control)
        self._lock = threading.Lock()
        self._released = threading.Event()  # ends every `hang`
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults = list(faults)
            self._released.clear()

    def clear(self) -> None:
        """No fault; hung requests end; the request log starts afresh."""
        self.inject()
        self._released.set()
        with self._lock:
            self.requests = []

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def _fault_for(self, request_line: str, body: bytes) -> Fault | None:
        with self._lock:
            self.requests.append(request_line)
            return next((f for f in self.faults if f.takes(request_line, body)), None)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._proxy()

            def do_POST(self) -> None:
                self._proxy()

            def do_PUT(self) -> None:
                self._proxy()

            def _proxy(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Authorization"):
                    proxy.credentials.add(self.headers["Authorization"])
                fault = proxy._fault_for(f"{self.command} {self.path}", body)
                if fault is not None and fault.kind == "hang":
                    proxy._released.wait()
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "status":
                    self._answer(fault.status, {"Content-Type": "application/json"},
                                 json.dumps({"error": f"injected HTTP {fault.status}"}).encode())
                    return
                if fault is not None and fault.kind == "delay":
                    time.sleep(fault.delay_s)
                if fault is not None and fault.before_forward is not None:
                    fault.before_forward()
                try:
                    answer = requests.request(
                        self.command, proxy.upstream + self.path, data=body, timeout=600,
                        headers={k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS},
                    )
                except requests.RequestException:
                    self.close_connection = True  # the server went away: so does the answer
                    return
                if fault is not None and fault.kind == "drop":
                    self.close_connection = True
                    return
                content = answer.content
                if fault is not None and fault.kind == "loop_next":
                    content = _looping(content, proxy.url + self.path)
                elif fault is not None and fault.kind in ("truncate_reply", "invalid_reply"):
                    content = _corrupted(content, fault.kind)
                headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
                self._answer(answer.status_code, headers, content)

            def _answer(self, status: int, headers: dict[str, str], content: bytes) -> None:
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except OSError:  # the client gave up waiting
                    self.close_connection = True

        return Handler


def _looping(content: bytes, this_page: str) -> bytes:
    """A searchset Bundle whose `next` link points back at the page itself."""
    bundle = json.loads(content)
    if bundle.get("resourceType") != "Bundle":
        return content
    links = [link for link in bundle.get("link", []) if link.get("relation") != "next"]
    bundle["link"] = [*links, {"relation": "next", "url": this_page}]
    return json.dumps(bundle).encode()


def _corrupted(content: bytes, kind: str) -> bytes:
    """The chat completion with its text cut in half (`truncate_reply`) or replaced by text that is not JSON
    (`invalid_reply`); streamed (server-sent events) or not."""
    text = content.decode()
    if text.lstrip().startswith("{"):
        reply = json.loads(text)
        message = reply["choices"][0]["message"]
        message["content"] = _damaged(message.get("content") or "", kind)
        return json.dumps(reply).encode()
    events = [e for e in text.split("\n\n") if e.strip()]
    chunks = [json.loads(e[len("data: "):]) if e.startswith("data: {") else None for e in events]
    whole = "".join(
        (c["choices"][0].get("delta", {}).get("content") or "") for c in chunks if c and c.get("choices")
    )
    damaged, first = _damaged(whole, kind), True
    out = []
    for event, chunk in zip(events, chunks, strict=True):
        if chunk and chunk.get("choices") and chunk["choices"][0].get("delta", {}).get("content"):
            chunk["choices"][0]["delta"]["content"] = damaged if first else ""  # the damaged text, once
            first = False
            event = "data: " + json.dumps(chunk)
        out.append(event)
    return ("\n\n".join(out) + "\n\n").encode()


def _damaged(text: str, kind: str) -> str:
    return text[: len(text) // 2] if kind == "truncate_reply" else "Sure! Here is the differential: pneumonia."
