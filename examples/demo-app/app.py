"""The demo app that examples/deploy.sh deploys: a tiny web server, standard library only.

    python3 app.py --port N [--host 127.0.0.1] [--release-dir DIR]

It serves the release it was started from: VERSION and COMMIT are read from the release directory
(default: this file's folder) once, at start, so a running process keeps reporting its own version
after `current` has been switched to another release.

    GET /         the built page (static/index.html), or a plain text line when the build was skipped
    GET /health   {"status": "ok", "version": "2.0", "commit": "<sha>"}
    GET /version  the version as text
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def read_text(folder: Path, name: str, default: str) -> str:
    try:
        return (folder / name).read_text(encoding="utf-8").strip() or default
    except FileNotFoundError:
        return default


class Handler(BaseHTTPRequestHandler):
    server_version = "demo-app"
    release: Path
    version: str
    commit: str

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            body = {"status": "ok", "version": self.version, "commit": self.commit}
            self.reply(200, "application/json", json.dumps(body))
        elif path == "/version":
            self.reply(200, "text/plain; charset=utf-8", self.version + "\n")
        elif path in ("/", "/index.html"):
            page = self.release / "static" / "index.html"
            if page.is_file():
                self.reply(200, "text/html; charset=utf-8", page.read_text(encoding="utf-8"))
            else:
                self.reply(200, "text/plain; charset=utf-8", f"demo-app {self.version} ({self.commit[:7]})\n")
        else:
            self.reply(404, "text/plain; charset=utf-8", "not found\n")

    def reply(self, status: int, content_type: str, text: str) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        # app.log should hold one line per start, not one per health check poll.
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="demo app deployed by examples/deploy.sh")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--release-dir", type=Path, default=Path(__file__).parent)
    args = parser.parse_args(argv)

    # Resolve the `current` symlink now: this process belongs to one release for its whole life.
    release = args.release_dir.resolve()
    Handler.release = release
    Handler.version = read_text(release, "VERSION", "unknown")
    Handler.commit = read_text(release, "COMMIT", "unknown")

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    # Exit cleanly on SIGTERM (what deploy.sh and demo-stop.sh send), closing the socket.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(
        f"demo-app {Handler.version} ({Handler.commit[:7]}) on http://{args.host}:{args.port}/ from {release}",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
