"""A telemetry receiver run INSIDE a booted test container (tests/test_booted_packages.py),
by the container's own python3, so it uses nothing but the standard library.

    python3 booted_receiver.py PORT CERT KEY RECORD_DIR

Serves HTTPS on 127.0.0.1:PORT. Each POST is written to RECORD_DIR/<n>.json
({"path", "headers", "body"}) before anything is answered; while
RECORD_DIR/stall exists it then answers nothing (a collector that hangs
mid-request), for at most STALL_SECONDS, so nothing here can outlive a test.
"""

import http.server
import json
import os
import ssl
import sys
import threading
import time

STALL_SECONDS = 300


class Handler(http.server.BaseHTTPRequestHandler):
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        record = self.server.record_dir
        with self.lock:
            number = len([name for name in os.listdir(record) if name.endswith(".json")]) + 1
            temporary = os.path.join(record, f".{number}.tmp")
            with open(temporary, "w") as out:
                json.dump({"path": self.path, "headers": dict(self.headers.items()),
                           "body": body.decode("utf-8", "replace")}, out)
            os.rename(temporary, os.path.join(record, f"{number}.json"))
        if os.path.exists(os.path.join(record, "stall")):
            deadline = time.monotonic() + STALL_SECONDS
            while os.path.exists(os.path.join(record, "stall")) and time.monotonic() < deadline:
                time.sleep(0.2)
            return
        answer = json.dumps({"message": "Report received, thank you", "newer": False,
                             "link": "https://example.test/dropsonde"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def main():
    port, cert, key, record = sys.argv[1:5]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    server.record_dir = record
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
