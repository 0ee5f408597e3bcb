#!/usr/bin/env python3
"""A GCS stand-in that verifies V4 signed URLs the way Google documents them, written from the
documentation (no edgesign code): RSA signatures with the service account's PUBLIC key
(PKCS#1 v1.5, SHA-256, via `cryptography`), HMAC signatures with the documented key
derivation, expiry on its own clock. Serves ROOT/<bucket>/<object> path style, GET and HEAD,
single byte ranges. No offline server verifies GCS signatures (fake-gcs-server and the
Python emulator accept anything), hence this.

Answers as GCS does: 200/206, 400 ExpiredToken, 403 SignatureDoesNotMatch (XML), 404
NoSuchKey, 416. Every request line (path and query, raw) is appended to SEEN, one per line.

usage: gcs_origin.py ROOT SA_JSON HMAC_ACCESS_ID HMAC_SECRET SEEN
prints the port it listens on (127.0.0.1), then serves until killed."""
import datetime, hashlib, hmac, json, os, sys, threading, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import load_pem_private_key

root, sa_file, hmac_id, hmac_secret, seen_file = sys.argv[1:6]
with open(sa_file) as f:
    sa = json.load(f)
# Only the public half is used to verify.
PUBLIC = load_pem_private_key(sa["private_key"].encode(), None).public_key()
EMAIL = sa["client_email"]
LOCK = threading.Lock()


def q(s):
    return urllib.parse.quote(s, safe="-_.~")


def canonical_request(method, raw_path, pairs, host):
    query = "&".join(f"{q(k)}={q(v)}" for k, v in sorted(pairs) if k != "X-Goog-Signature")
    return "\n".join([method, raw_path, query, f"host:{host}", "", "host", "UNSIGNED-PAYLOAD"])


def hm(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def check(method, raw_path, raw_query, host):
    """None if genuine and unexpired, else (status, code)."""
    pairs = [(urllib.parse.unquote(k), urllib.parse.unquote(v))
             for k, _, v in (p.partition("=") for p in raw_query.split("&") if p)]
    p = dict(pairs)
    need = ["X-Goog-Algorithm", "X-Goog-Credential", "X-Goog-Date", "X-Goog-Expires",
            "X-Goog-SignedHeaders", "X-Goog-Signature"]
    if any(n not in p for n in need) or p["X-Goog-SignedHeaders"] != "host":
        return 403, "AccessDenied"
    cred_id, _, scope = p["X-Goog-Credential"].partition("/")
    date = p["X-Goog-Date"]
    if scope != f"{date[:8]}/auto/storage/goog4_request":
        return 403, "SignatureDoesNotMatch"
    creq = canonical_request(method, raw_path, pairs, host)
    sts = "\n".join([p["X-Goog-Algorithm"], date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    try:
        sig = bytes.fromhex(p["X-Goog-Signature"])
    except ValueError:
        return 403, "SignatureDoesNotMatch"
    if p["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256" and cred_id == EMAIL:
        try:
            PUBLIC.verify(sig, sts.encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return 403, "SignatureDoesNotMatch"
    elif p["X-Goog-Algorithm"] == "GOOG4-HMAC-SHA256" and cred_id == hmac_id:
        k = ("GOOG4" + hmac_secret).encode()
        for part in (date[:8], "auto", "storage", "goog4_request"):
            k = hm(k, part)
        if not hmac.compare_digest(hm(k, sts), sig):
            return 403, "SignatureDoesNotMatch"
    else:
        return 403, "InvalidAccessKeyId"
    signed = datetime.datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    expires = int(p["X-Goog-Expires"])
    if not 1 <= expires <= 604800:
        return 400, "AuthenticationRequired"
    if datetime.datetime.now(datetime.timezone.utc) > signed + datetime.timedelta(seconds=expires):
        return 400, "ExpiredToken"
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, headers, body, send_body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def error(self, status, code, send_body):
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code></Error>".encode()
        self.answer(status, [("Content-Type", "application/xml")], body, send_body)

    def serve(self, send_body):
        with LOCK, open(seen_file, "a") as f:
            f.write(self.path + "\n")
        raw_path, _, raw_query = self.path.partition("?")
        failed = check(self.command, raw_path, raw_query, self.headers.get("Host", ""))
        if failed:
            return self.error(*failed, send_body)
        name = urllib.parse.unquote(raw_path.lstrip("/"))
        full = os.path.realpath(os.path.join(root, name))
        if not full.startswith(os.path.realpath(root) + os.sep) or not os.path.isfile(full):
            return self.error(404, "NoSuchKey", send_body)
        with open(full, "rb") as f:
            data = f.read()
        headers = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes")]
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and "," not in rng:
            first, _, last = rng[6:].partition("-")
            n = len(data)
            if first == "":
                start, end = max(n - int(last), 0), n - 1
            else:
                start, end = int(first), min(int(last), n - 1) if last else n - 1
            if start >= n or start > end:
                return self.answer(416, [("Content-Range", f"bytes */{n}")], b"", send_body)
            headers.append(("Content-Range", f"bytes {start}-{end}/{n}"))
            return self.answer(206, headers, data[start:end + 1], send_body)
        self.answer(200, headers, data, send_body)

    def do_GET(self):
        self.serve(True)

    def do_HEAD(self):
        self.serve(False)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
