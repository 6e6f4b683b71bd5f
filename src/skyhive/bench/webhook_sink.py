"""A webhook receiver for benchmarks, in a process of its own so its timestamps never wait
for the benchmark's other threads (one GIL each).

``python -m skyhive.bench.webhook_sink PORT OUT``: prints ``ready`` once listening, then
appends ``epoch_seconds<TAB>body`` lines to OUT (flushed per request) until terminated.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main(port: int, out_path: str) -> None:
    out = open(out_path, "a", encoding="utf-8")  # noqa: SIM115 - closed on the way out
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            now = time.time()
            self.send_response(200)
            self.end_headers()
            line = body.decode(errors="replace").replace("\n", " ").replace("\t", " ")
            with lock:
                out.write(f"{now:.6f}\t{line}\n")
                out.flush()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("ready", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        out.close()


def read(path: str | Path) -> list[tuple[float, str]]:
    """What a sink wrote: (receive time, body) per request."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            at, _, body = line.rstrip("\n").partition("\t")
            out.append((float(at), body))
    return out


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
