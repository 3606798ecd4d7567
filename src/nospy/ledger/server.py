"""HTTP servers (stdlib ThreadingHTTPServer): the log (C2SP tlog-tiles reads, token-protected
writes) and the witness (C2SP tlog-witness ``add-checkpoint``).

Log routes: ``GET /checkpoint``, ``GET /tile/...`` (only canonical tlog-tiles paths, so no path
can leave the log directory), ``POST /add`` with ``Authorization: Bearer <token>`` and a release
manifest of at most 65,535 bytes; it answers ``{"index": N}`` once the entry is durable.
"""

from __future__ import annotations

import gzip
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from nospy.errors import InputError, NospyError, VerificationError
from nospy.ledger.release import entry_bytes, read_release
from nospy.ledger.storage import LogWriter, Sequencer
from nospy.ledger.tiles import MAX_ENTRY, parse_tile_path
from nospy.ledger.witness import MAX_REQUEST, Witness

__all__ = ["LogServer", "WitnessServer"]

_IMMUTABLE = "public, max-age=31536000, immutable"  # tiles and bundles never change once published


class _Handler(BaseHTTPRequestHandler):
    server_version = "nospy"
    protocol_version = "HTTP/1.1"
    _body_read = False
    timeout = 30  # seconds a client may take between reads: slow clients cannot hold threads forever

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Quiet: a server under load must not spend its time printing every request."""

    def _send(
        self, status: int, content_type: str, body: bytes, cache: str = "no-store", encoding: str | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        if self.command == "POST" and not self._body_read:
            # an unread body would be parsed as the next request on this keep-alive connection
            self.close_connection = True
        self._send(status, "text/plain; charset=utf-8", (message + "\n").encode())

    def handle_one_request(self) -> None:
        self._body_read = False
        super().handle_one_request()

    def _body(self, limit: int) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._error(411, "Content-Length required")
            return None
        if int(length) > limit:
            self._error(413, f"request body above {limit} bytes")
            return None
        self._body_read = True
        return self.rfile.read(int(length))


class _LogHandler(_Handler):
    server: _LogHTTPServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].lstrip("/")
        root = self.server.root
        if path == "checkpoint":
            self._send(200, "text/plain; charset=utf-8", (root / "checkpoint").read_bytes(), "max-age=2")
            return
        try:
            parse_tile_path(path)
            data = (root / path).read_bytes()
        except (InputError, OSError):
            self._error(404, "not found")
            return
        gzip_ok = "gzip" in self.headers.get("Accept-Encoding", "")
        if path.startswith("tile/entries/") and gzip_ok:
            self._send(200, "application/octet-stream", gzip.compress(data, 6), _IMMUTABLE, encoding="gzip")
            return
        self._send(200, "application/octet-stream", data, _IMMUTABLE)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/add":
            self._error(404, "not found")
            return
        auth = self.headers.get("Authorization", "")
        want = f"Bearer {self.server.token}"
        if not hmac.compare_digest(auth.encode(), want.encode()):
            self._error(401, "a valid bearer token is required to add entries")
            return
        body = self._body(MAX_ENTRY)
        if body is None:
            return
        try:
            env, _ = read_release(body, self.server.writer.config.trusted_keys())
            index = self.server.sequencer.submit(entry_bytes(env))
        except VerificationError as exc:
            self._error(403, str(exc))
            return
        except TimeoutError:
            self._error(503, "the log could not make the entry durable in time; retry")
            return
        except NospyError as exc:
            self._error(400, str(exc))
            return
        self._send(200, "application/json", json.dumps({"index": index}).encode() + b"\n")


class _LogHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the stdlib's 5 resets connections when many writers arrive at once
    root: Path
    token: str
    writer: LogWriter
    sequencer: Sequencer


class _Running:
    def __init__(self, httpd: ThreadingHTTPServer) -> None:
        self.httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="nospy-http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread.is_alive():
            self._thread.join()


class LogServer(_Running):
    """Serves a log directory and accepts token-protected additions from concurrent writers."""

    def __init__(self, root: Path, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        if len(token) < 16:
            raise InputError("the write token must be at least 16 characters")
        writer = LogWriter(root)
        httpd = _LogHTTPServer((host, port), _LogHandler)
        httpd.root, httpd.token, httpd.writer = root, token, writer
        httpd.sequencer = Sequencer(writer)
        super().__init__(httpd)
        self.writer = writer
        self.sequencer = httpd.sequencer

    def close(self) -> None:
        super().close()
        self.sequencer.close()
        self.writer.close()


class _WitnessHandler(_Handler):
    server: _WitnessHTTPServer

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] != "add-checkpoint":
            self._error(404, "not found")
            return
        body = self._body(MAX_REQUEST)
        if body is None:
            return
        resp = self.server.witness.add_checkpoint(body)
        self._send(resp.status, resp.content_type, resp.body)


class _WitnessHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    witness: Witness


class WitnessServer(_Running):
    def __init__(self, witness: Witness, host: str = "127.0.0.1", port: int = 0) -> None:
        httpd = _WitnessHTTPServer((host, port), _WitnessHandler)
        httpd.witness = witness
        super().__init__(httpd)
