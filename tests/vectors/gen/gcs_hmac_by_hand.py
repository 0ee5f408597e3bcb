#!/usr/bin/env python3
"""Makes tests/vectors/gcs_hmac_by_hand.json: GOOG4-HMAC-SHA256 signed URLs derived by hand.

No registry package signs GCS V4 URLs with an HMAC key, so this follows Google's documentation
("Signing process for V4 signed URLs" and "HMAC keys") step by step with nothing but the
Python standard library (hashlib, hmac, urllib.parse):

  canonical request = METHOD \n PATH \n CANONICAL_QUERY \n host:HOST \n \n host \n UNSIGNED-PAYLOAD
  string to sign    = GOOG4-HMAC-SHA256 \n DATETIME \n DATE/auto/storage/goog4_request \n hex(sha256(canonical request))
  signing key       = HMAC(HMAC(HMAC(HMAC("GOOG4" + secret, DATE), "auto"), "storage"), "goog4_request")
  signature         = hex(HMAC(signing key, string to sign))

The access id and secret are made up (the shape of a real pair). Run: python3 gen/gcs_hmac_by_hand.py
"""
import hashlib, hmac, json, os, urllib.parse

ACCESS_ID = "GOOG1EXAMPLEEDGESIGNHMACKEY0123456789ABCDEFGHIJKLMNOPQRSTUV"
SECRET = "bGoa+V7g/yqDXvKRqq+JTFn4uQZbPiQJo4pf9RzJ"

def q(s):
    return urllib.parse.quote(s, safe="-_.~")

def hm(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()

def vector(name, method, host, path, datetime, expires, extra):
    date = datetime[:8]
    scope = f"{date}/auto/storage/goog4_request"
    params = dict(extra)
    params.update({
        "X-Goog-Algorithm": "GOOG4-HMAC-SHA256",
        "X-Goog-Credential": f"{ACCESS_ID}/{scope}",
        "X-Goog-Date": datetime,
        "X-Goog-Expires": str(expires),
        "X-Goog-SignedHeaders": "host",
    })
    pairs = sorted((q(k), q(v)) for k, v in params.items())
    query = "&".join(f"{k}={v}" for k, v in pairs)
    creq = f"{method}\n{path}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD"
    sts = f"GOOG4-HMAC-SHA256\n{datetime}\n{scope}\n{hashlib.sha256(creq.encode()).hexdigest()}"
    k = ("GOOG4" + SECRET).encode()
    for part in (date, "auto", "storage", "goog4_request"):
        k = hm(k, part)
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return {
        "name": name,
        "input": {"method": method, "host": host, "path": path, "datetime": datetime,
                  "expires": expires, "extra": extra},
        "expected": {"canonical_request": creq, "string_to_sign": sts,
                     "signing_key_hex": k.hex(), "signature": sig,
                     "query": f"{query}&X-Goog-Signature={sig}"},
    }

out = {
    "generator": "tests/vectors/gen/gcs_hmac_by_hand.py (Python standard library only, from Google's documented V4 HMAC steps)",
    "access_id": ACCESS_ID,
    "secret": SECRET,
    "vectors": [
        vector("path-style-get", "GET", "storage.googleapis.com", "/media-bucket/videos/intro.mp4",
               "20260115T103000Z", 3600, []),
        vector("virtual-hosted-head-with-override", "HEAD", "media-bucket.storage.googleapis.com",
               "/docs/r%C3%A9sum%C3%A9%20final.pdf", "20260115T104500Z", 604800,
               [["response-content-disposition", "attachment; filename=\"cv.pdf\""]]),
    ],
}
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "..", "gcs_hmac_by_hand.json"), "w") as f:
    json.dump(out, f, indent=1, ensure_ascii=False)
    f.write("\n")
