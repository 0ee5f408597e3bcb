#!/usr/bin/env python3
"""A CloudFront stand-in that honours signed cookies the way CloudFront documents it, written
from the developer guide (no edgesign code): the CloudFront-Policy (custom) or
CloudFront-Expires (canned) cookie, CloudFront-Signature verified with the PUBLIC key named by
CloudFront-Key-Pair-Id (RSA PKCS#1 v1.5 or ECDSA, SHA-1, or SHA-256 with
CloudFront-Hash-Algorithm=SHA256, via `cryptography`), the policy's Resource matched against
https://<Host><path>[?query] with * and ? wildcards, DateLessThan, DateGreaterThan and
IpAddress checked. Serves ROOT/<path> for GET and HEAD; anything else is 403 AccessDenied.

Listens twice on 127.0.0.1: TLS (CERT, KEY) for clients that follow a redirect to
https://<domain>/…, and plain HTTP for an `endpoint` edgesign connects to. Every request is
appended to SEEN as "<path and query> <cookie names sent, comma-separated>".

usage: cloudfront_origin.py ROOT CERT KEY SEEN KEY_PAIR_ID=PUBLIC_PEM [...]
prints "<tls port> <plain port>", then serves until killed."""
import base64, datetime, fnmatch, ipaddress, json, os, re, ssl, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

root, cert, key, seen_file = sys.argv[1:5]
KEYS = {}
for arg in sys.argv[5:]:
    kid, pem = arg.split("=", 1)
    with open(pem, "rb") as f:
        KEYS[kid] = serialization.load_pem_public_key(f.read())
LOCK = threading.Lock()


def b64cf_decode(s):
    return base64.b64decode(s.replace("-", "+").replace("_", "=").replace("~", "/"))


def wildcard(pattern, url):
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, url, re.S) is not None


def verify(public, alg, message, signature):
    h = hashes.SHA256() if alg == "SHA256" else hashes.SHA1()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, message, padding.PKCS1v15(), h)
        else:
            public.verify(signature, message, ec.ECDSA(h))
        return True
    except InvalidSignature:
        return False


def check(cookies, url, client):
    """None if the cookies grant url to client now, else why not."""
    sig, kid = cookies.get("CloudFront-Signature"), cookies.get("CloudFront-Key-Pair-Id")
    if not sig or kid not in KEYS:
        return "no signature or unknown key pair"
    alg = cookies.get("CloudFront-Hash-Algorithm", "SHA1")
    if "CloudFront-Policy" in cookies:
        policy = b64cf_decode(cookies["CloudFront-Policy"])
    elif "CloudFront-Expires" in cookies:
        policy = json.dumps({"Statement": [{"Resource": url, "Condition": {"DateLessThan": {
            "AWS:EpochTime": int(cookies["CloudFront-Expires"])}}}]}, separators=(",", ":")).encode()
    else:
        return "no policy"
    if not verify(KEYS[kid], alg, policy, b64cf_decode(sig)):
        return "signature"
    statement = json.loads(policy)["Statement"][0]
    if not wildcard(statement.get("Resource", "*"), url):
        return "resource"
    cond, now = statement["Condition"], time.time()
    if now >= cond["DateLessThan"]["AWS:EpochTime"]:
        return "expired"
    if "DateGreaterThan" in cond and now < cond["DateGreaterThan"]["AWS:EpochTime"]:
        return "not yet"
    if "IpAddress" in cond and ipaddress.ip_address(client) not in ipaddress.ip_network(
            cond["IpAddress"]["AWS:SourceIp"], strict=False):
        return "address"
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def serve(self, send_body):
        cookies = {}
        for header in self.headers.get_all("Cookie") or []:
            for pair in header.split(";"):
                name, _, value = pair.strip().partition("=")
                if name:
                    cookies[name] = value
        with LOCK, open(seen_file, "a") as f:
            f.write(f"{self.path} {','.join(sorted(cookies))}\n")
        url = f"https://{self.headers.get('Host', '')}{self.path}"
        why = check(cookies, url, self.client_address[0])
        path = os.path.realpath(os.path.join(root, self.path.split("?")[0].lstrip("/")))
        if why:
            status, body = 403, f"<Error><Code>AccessDenied</Code><Message>{why}</Message></Error>".encode()
        elif not path.startswith(os.path.realpath(root) + os.sep) or not os.path.isfile(path):
            status, body = 404, b"<Error><Code>NoSuchKey</Code></Error>"
        else:
            status = 200
            with open(path, "rb") as f:
                body = f.read()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_GET(self):
        self.serve(True)

    def do_HEAD(self):
        self.serve(False)


tls = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
tls.socket = context.wrap_socket(tls.socket, server_side=True)
plain = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=plain.serve_forever, daemon=True).start()
print(tls.server_address[1], plain.server_address[1], flush=True)
tls.serve_forever()
