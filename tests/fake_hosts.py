"""A local stand-in for Google Drive and the Hugging Face Hub, on 127.0.0.1 only.

Serves files registered by the test under Drive's two-step download (a "can't scan for
viruses" confirmation page whose form leads to the file) and the Hub's
`/{repo}/resolve/{revision}/{file}` URLs, and can misbehave on purpose: truncate a body,
stall, answer an HTTP error.
"""

import html
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHosts:
    def __init__(self):
        self.drive = {}  # file id -> (file name, bytes)
        self.hub = {}  # "org/repo/resolve/rev/file" -> bytes
        self.faults = {}  # path -> "truncate" | "stall" | int (HTTP status)
        self.custom = {}  # path -> function(handler) writing a whole response (hostile servers)
        self.requests = []
        self.stall_seconds = 10.0
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def drive_template(self):
        return self.url + "/uc?export=download&id={id}"

    def _handler(hosts):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, body, content_type="application/octet-stream", headers=()):
                fault = hosts.faults.get(urllib.parse.urlsplit(self.path).path)
                if isinstance(fault, int):
                    self.send_error(fault)
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers:
                    self.send_header(key, value)
                self.end_headers()
                if fault == "stall":
                    self.wfile.write(body[:1024])
                    self.wfile.flush()
                    time.sleep(hosts.stall_seconds)
                    return
                if fault == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def do_GET(self):
                hosts.requests.append(self.path)
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query))
                if parts.path in hosts.custom:
                    try:
                        hosts.custom[parts.path](self)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client stopped reading, as it should
                    return
                if parts.path == "/uc" and query.get("id") in hosts.drive:
                    # Drive's interstitial for files too large to scan.
                    action = hosts.url + "/download"
                    page = (
                        "<!DOCTYPE html><html><body><p>Google Drive can't scan this file for "
                        "viruses.</p>"
                        f'<form id="download-form" action="{html.escape(action)}" method="get">'
                        '<input type="submit" value="Download anyway"/>'
                        f'<input type="hidden" name="id" value="{query["id"]}">'
                        '<input type="hidden" name="export" value="download">'
                        '<input type="hidden" name="confirm" value="t">'
                        '<input type="hidden" name="uuid" value="0f1e2d3c"></form></body></html>'
                    )
                    self._send(page.encode(), "text/html; charset=utf-8")
                elif parts.path == "/download" and query.get("confirm") == "t" and query.get("id") in hosts.drive:
                    name, body = hosts.drive[query["id"]]
                    self._send(body, headers=[("Content-Disposition", f'attachment; filename="{name}"')])
                elif parts.path.lstrip("/") in hosts.hub:
                    self._send(hosts.hub[parts.path.lstrip("/")])
                else:
                    self.send_error(404)

        return Handler
