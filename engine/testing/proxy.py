"""A small HTTP forward proxy on 127.0.0.1, to test that the engine honours ``HTTP_PROXY``.

It takes absolute-form requests (``POST http://host/path HTTP/1.1``), records the target, and
forwards each one to ``upstream`` (a `FakeServer`'s base URL) whatever its host, so a test can use
a host name that only the proxy can reach. Standard library only; bounded in time.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class ForwardProxy:
    """``with ForwardProxy(upstream) as proxy:`` then ``HTTP_PROXY=proxy.url``; ``proxy.targets`` lists the URLs."""

    upstream: str
    max_seconds: float = 60.0
    targets: list[str] = field(default_factory=list)

    def __enter__(self) -> ForwardProxy:
        owner = self

        class Handler(_Handler):
            proxy = owner

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._deadline = threading.Timer(self.max_seconds, self._http.shutdown)
        self._deadline.daemon = True
        self._deadline.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._deadline.cancel()
        self._http.shutdown()
        self._http.server_close()


class _Handler(BaseHTTPRequestHandler):
    proxy: ForwardProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        self.proxy.targets.append(self.path)
        if not self.path.startswith("http://"):
            self.send_error(400, "a forward proxy takes absolute-form requests")
            return
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        target = urlsplit(self.path)
        upstream = urlsplit(self.proxy.upstream)
        connection = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        connection.request(self.command, target.path + (f"?{target.query}" if target.query else ""), body, headers)
        reply = connection.getresponse()
        data = reply.read()  # the fake server's chunked streams arrive whole: fine for a proxy test
        self.send_response(reply.status)
        for name, value in reply.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        connection.close()

    do_GET = do_POST = _forward
