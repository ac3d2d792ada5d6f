"""A local MJPEG-over-HTTP test stream (standard library only): JPEG frames served as
``multipart/x-mixed-replace`` at ``http://127.0.0.1:PORT/stream.mjpg``, like an IP camera.

Used by the live-source benchmark and the tests. ``MjpegServer(frames, fps)`` serves the
given BGR images in a loop (or ``limit`` frames, then ends the response) on an ephemeral
port in a daemon thread; ``stop()`` closes the listening socket and every open response,
so a reader sees the connection drop.
"""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

BOUNDARY = "openpafframe"


def photo_frames(folder, count: int = 8, height: int = 120) -> list[np.ndarray]:
    """The first ``count`` JPEG photos of ``folder`` (sorted), resized to ``height`` px
    high (width even), as BGR images."""
    out = []
    for path in sorted(Path(folder).glob("*.jpg"))[:count]:
        img = cv2.imread(str(path))
        if img is None:
            continue
        w = max(2, int(round(img.shape[1] * height / img.shape[0] / 2)) * 2)
        out.append(cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA))
    if not out:
        raise FileNotFoundError(f"no JPEG photos in {folder}")
    return out


class MjpegServer:
    """Serve ``frames`` (BGR images) as an MJPEG stream at ``fps``; see module doc.

    limit: frames per response before it ends (None: endless loop over ``frames``).
    Attributes: ``url``, ``served`` (frames sent so far, all clients), ``last_sent``.
    """

    def __init__(self, frames: Sequence[np.ndarray], fps: float = 30.0,
                 limit: Optional[int] = None, quality: int = 85):
        self.jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
                      .tobytes() for f in frames]
        self.fps, self.limit = float(fps), limit
        self.served = 0
        self.last_sent: Optional[float] = None  # wall clock of the latest frame sent
        self._stopped = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="openpaf-mjpeg-server")
        self._thread.start()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if self.path.split("?")[0] != "/stream.mjpg":
                    self.send_error(404)
                    return
                with server._lock:
                    server._conns.append(self.connection)
                self.send_response(200)
                self.send_header("Content-Type",
                                 f"multipart/x-mixed-replace;boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                server._serve(self.wfile)

        return Handler

    def _serve(self, out) -> None:
        period, start, i = 1.0 / self.fps, time.monotonic(), 0
        try:
            while not self._stopped.is_set() and (self.limit is None or i < self.limit):
                jpeg = self.jpegs[i % len(self.jpegs)]
                out.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: "
                          f"{len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                out.flush()
                i += 1
                self.served += 1
                self.last_sent = time.time()
                time.sleep(max(0.0, start + i * period - time.monotonic()))
        except OSError:  # the client went away, or stop() closed the socket
            pass

    def stop(self) -> None:
        """Stop serving: close the listening socket and every open response."""
        self._stopped.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._conns.clear()

    def __enter__(self) -> "MjpegServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv=None) -> None:
    """``python -m openpaf.benchmark.mjpeg_server [PHOTOS] [--fps F] [--height H]``: serve
    until Ctrl-C (a stand-in IP camera for trying ``openpaf infer URL`` by hand)."""
    import argparse
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("photos", nargs="?", default="../shared/data/coco/val",
                        help="folder of JPEG photos to serve")
    parser.add_argument("--fps", type=float, default=15.0, help="frames per second")
    parser.add_argument("--height", type=int, default=240, help="frame height in pixels")
    args = parser.parse_args(argv)
    server = MjpegServer(photo_frames(args.photos, 8, args.height), fps=args.fps)
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


__all__ = ["MjpegServer", "photo_frames"]

if __name__ == "__main__":
    main()
