#!/usr/bin/env python3
"""A loopback HTTP proxy in front of a GCS JSON-API emulator that enforces
IAM-like permissions per bearer token, as a bucket's IAM policy would.

usage: gcs_iam.py LISTEN_PORT UPSTREAM_PORT TOKEN=PERM,PERM ...

Permissions: create (storage.objects.create), get (storage.objects.get),
list (storage.objects.list), delete (storage.objects.delete). A request the
token lacks the permission for gets 403 with a GCS-shaped error body, and
is logged to stderr as `DENIED <token> <perm> <method> <path>`.

GCS_IAM_LISTEN sets the address it listens on (default 127.0.0.1: the
fleet test gives a bridge's address, for hosts in network namespaces);
GCS_IAM_LOG names a file that gets one line per request, `<token> <perm>
<method> <path>`, to count them.

It also keeps GCS's does-not-exist precondition, which the emulator
ignores: an upload with `ifGenerationMatch=0` of an object that exists gets
412, as on GCS, so a create-only credential can tell "created" from "was
there".
"""
import http.client
import json
import os
import sys
from urllib.parse import quote
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

UPSTREAM = None
GRANTS = {}
LOG = os.environ.get("GCS_IAM_LOG")


def needed(method, path):
    """The permission a request needs."""
    url = urlparse(path)
    p = url.path
    if p.startswith("/upload/"):
        return "create"
    if method == "DELETE":
        return "delete"
    if method in ("POST", "PUT", "PATCH"):
        # compose, rewrite, metadata updates: writes of objects.
        return "create"
    # GET /storage/v1/b/BUCKET/o          -> list
    # GET /storage/v1/b/BUCKET/o/OBJECT   -> get (metadata or alt=media)
    parts = p.split("/")
    if len(parts) >= 6 and parts[5] == "o" and len(parts) == 6:
        return "list"
    if p.startswith("/download/") or "alt" in parse_qs(url.query):
        return "get"
    return "get"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def handle_any(self):
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        perm = needed(self.command, self.path)
        if LOG:
            with open(LOG, "a") as f:
                f.write(f"{token or '-'} {perm} {self.command} {self.path}\n")
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else b""
        # A resumable upload's session URI is its own authorization (as on
        # GCS): the session was created by a credential allowed to create.
        session = self.path.startswith("/upload/") and "upload_id=" in self.path
        if not session and perm not in GRANTS.get(token, set()):
            sys.stderr.write(f"DENIED {token or '-'} {perm} {self.command} {self.path}\n")
            sys.stderr.flush()
            msg = json.dumps({"error": {"code": 403, "message": f"caller does not have storage.objects.{perm} access",
                                        "errors": [{"reason": "forbidden", "message": "forbidden"}]}}).encode()
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        if self.exists_already(body):
            msg = json.dumps({"error": {"code": 412, "message": "At least one of the pre-conditions you specified did not hold.",
                                        "errors": [{"reason": "conditionNotMet", "message": "Precondition Failed"}]}}).encode()
            self.send_response(412)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization")}
        headers["Host"] = f"127.0.0.1:{UPSTREAM}"
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            if k.lower() == "location":
                # Resumable uploads continue through the proxy.
                here = self.headers.get("Host") or f"127.0.0.1:{self.server.server_port}"
                v = v.replace(f"127.0.0.1:{UPSTREAM}", here)
                v = v.replace(f"localhost:{UPSTREAM}", here)
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    def exists_already(self, body):
        """An upload asking for ifGenerationMatch=0 of an object that exists."""
        url = urlparse(self.path)
        q = parse_qs(url.query)
        if not url.path.startswith("/upload/") or q.get("ifGenerationMatch") != ["0"]:
            return False
        parts = url.path.split("/")
        bucket = parts[5] if len(parts) > 5 else ""
        name = q.get("name", [None])[0]
        if name is None:
            try:
                name = json.loads(body or b"{}").get("name")
            except ValueError:
                name = None
        if not bucket or not name:
            return False
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
        conn.request("GET", f"/storage/v1/b/{bucket}/o/{quote(name, safe='')}")
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status == 200

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that went away (a killed snap, a link cut) is no news.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def main():
    global UPSTREAM
    port, UPSTREAM = int(sys.argv[1]), int(sys.argv[2])
    for grant in sys.argv[3:]:
        token, perms = grant.split("=", 1)
        GRANTS[token] = set(p for p in perms.split(",") if p)
    server = Server((os.environ.get("GCS_IAM_LISTEN", "127.0.0.1"), port), Handler)
    print(f"listening {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
