"""A local HTTP file server for download tests: Range support and dropped connections.

Usage::

    with FileServer({"/a.bin": b"..."}) as server:
        server.url("/a.bin")          # http://127.0.0.1:<port>/a.bin
        server.drop_after["/a.bin"] = 1000   # next GET sends 1000 body bytes, then hangs up
        server.requests               # [(path, Range header or None), ...]
"""
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serve ``files`` (``{path: bytes}``) on 127.0.0.1 from a background thread.

    ``honour_range`` False makes the server ignore Range and always send the
    whole file; ``drop_after[path] = n`` makes the next GET of ``path`` close
    the connection after ``n`` body bytes (one time only).
    """

    def __init__(self, files, honour_range=True):
        self.files = dict(files)
        self.honour_range = honour_range
        self.drop_after = {}
        self.requests = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # A short poll interval keeps shutdown (once per test) from costing 0.5 s.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    def url(self, path):
        host, port = self._server.server_address
        return f"http://{host}:{port}{path}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                range_header = self.headers.get("Range")
                server.requests.append((self.path, range_header))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
                if match and server.honour_range:
                    start = int(match[1])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut = server.drop_after.pop(self.path, None)
                if cut is None:
                    self.wfile.write(body[start:])
                    return
                self.wfile.write(body[start:start + cut])
                self.wfile.flush()
                self.close_connection = True

        return Handler
