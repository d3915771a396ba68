"""The site twin's application, inside the twin's container image (Debian's python3.11 and libnfs-utils).

    app.py --http PORT,... --banner PORT,...

--http ports serve HTTP/1.1 with keep-alive (the ingress reuses its connections: the failover scenarios send
800 requests a second through it):
  GET /                   200 `<host> <rw|ro> <port> <name> <peer> <service> <access> <container>`: the line every
                          twin backend answers (port: X-Forwarded-Port, the ingress port; name: the Host header the
                          ingress routed by SNI; peer: X-Forwarded-For, who reached the ingress)
  PUT /files/<tree>/<n>   writes the body to the tree on the storage export (libnfs `nfs-cp`): 201; 403 when the
                          instance is read-only (STANDORT_ACCESS=read-only, or the tree's mount point is mounted
                          read-only); 413 above MAX_BODY bytes (libnfs fails NFSv4 writes over ~3.9 KB)
  GET /files/<tree>/<n>   the file (libnfs `nfs-cat`), or 404
--banner ports answer one line `<service> <container> <port>` and close.

A tree is a volume of the rendered compose file: the runtime passes its export as
STANDORT_NFS_<TREE>=nfs://<addr><path>?version=4 and its mount point as STANDORT_NFS_<TREE>_TARGET.
"""

import argparse
import os
import re
import socketserver
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 3072
NAME = re.compile(r"^[A-Za-z0-9._-]+$")
ENV = os.environ


def read_only_mount(target):
    """True when the tree's mount point is mounted read-only in this container."""
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) > 3 and fields[1] == target and "ro" in fields[3].split(","):
                    return True
    except OSError:
        pass
    return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "standort-twin-app"
    sys_version = ""
    timeout = 10

    def log_message(self, *args):  # quiet: the ingress logs requests
        pass

    def reply(self, status, body):
        data = body if isinstance(body, bytes) else (body + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def tree(self):
        """(url of the file on the export, mount point) of /files/<tree>/<name>, or None after an error reply."""
        parts = self.path.split("?", 1)[0].split("/")
        if len(parts) != 4 or parts[1] != "files" or not NAME.match(parts[2]) or not NAME.match(parts[3]) or ".." in parts[3]:
            self.reply(400 if len(parts) >= 2 and parts[1] == "files" else 404, "want /files/<tree>/<name>")
            return None
        key = "STANDORT_NFS_" + parts[2].upper().replace(".", "_").replace("-", "_")
        url = ENV.get(key)
        if not url:
            self.reply(404, "no tree " + parts[2])
            return None
        base, _, query = url.partition("?")
        return base + "/" + parts[3] + ("?" + query if query else ""), ENV.get(key + "_TARGET", ""), parts[2] + "/" + parts[3]

    def do_GET(self):
        if self.path.split("?", 1)[0] == "/":
            mode = "ro" if ENV.get("STANDORT_ACCESS") == "read-only" else "rw"
            host = (self.headers.get("Host") or "-").split(":")[0]
            self.reply(
                200,
                " ".join(
                    [
                        ENV.get("STANDORT_TWIN_HOST", "?"),
                        mode,
                        self.headers.get("X-Forwarded-Port") or "-",
                        host,
                        self.headers.get("X-Forwarded-For") or "-",
                        ENV.get("STANDORT_SERVICE", "?"),
                        ENV.get("STANDORT_ACCESS", "?"),
                        ENV.get("STANDORT_TWIN_CONTAINER", "?"),
                    ]
                ),
            )
            return
        found = self.tree()
        if not found:
            return
        url, _, shown = found
        result = subprocess.run(["nfs-cat", url], capture_output=True, timeout=10, check=False)
        if result.returncode == 0:
            self.reply(200, result.stdout)
        elif b"NOENT" in result.stderr:
            self.reply(404, "no " + shown)
        else:
            self.reply(502, "nfs-cat: " + result.stderr.decode(errors="replace").replace("\n", " "))

    def do_PUT(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.reply(400, "bad content-length")
            return
        length = int(length)
        found = self.tree()
        if not found:
            self.rfile.read(length) if length <= 65536 else None
            return
        url, target, shown = found
        refusal = None
        if ENV.get("STANDORT_ACCESS") == "read-only":
            refusal = (403, "read-only instance")
        elif target and read_only_mount(target):
            refusal = (403, target + " is mounted read-only")
        elif length > MAX_BODY:
            refusal = (413, "at most %d bytes (libnfs NFSv4 writes)" % MAX_BODY)
        if refusal:
            # Drain the body first: closing on unread data would reset the connection and could lose the answer.
            if length <= 65536:
                self.rfile.read(length)
            else:
                self.close_connection = True
            self.reply(*refusal)
            return
        body = self.rfile.read(length)
        if len(body) != length:
            self.reply(400, "short body")
            return
        with tempfile.NamedTemporaryFile() as local:
            local.write(body)
            local.flush()
            result = subprocess.run(["nfs-cp", local.name, url], capture_output=True, timeout=15, check=False)
        if result.returncode == 0:
            self.reply(201, "%s %d" % (shown, length))
        else:
            self.reply(502, "nfs-cp: " + (result.stderr + result.stdout).decode(errors="replace").replace("\n", " "))


class Banner(socketserver.BaseRequestHandler):
    def handle(self):
        port = self.server.server_address[1]
        line = "%s %s %d\n" % (ENV.get("STANDORT_SERVICE", "?"), ENV.get("STANDORT_TWIN_CONTAINER", "?"), port)
        self.request.sendall(line.encode())


class BannerServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class HttpServer(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024


def ports(text):
    return [int(p) for p in (text or "").split(",") if p]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", default="")
    parser.add_argument("--banner", default="")
    args = parser.parse_args()
    servers = [HttpServer(("0.0.0.0", p), Handler) for p in ports(args.http)]
    servers += [BannerServer(("0.0.0.0", p), Banner) for p in ports(args.banner)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("standort twin app: http [%s] banner [%s]" % (args.http, args.banner), flush=True)
    # PID 1 of the container: SIGTERM (podman stop, compose down) ends it.
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Event().wait()


if __name__ == "__main__":
    main()
