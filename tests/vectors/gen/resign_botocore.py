#!/usr/bin/env python3
"""Regenerates tests/vectors/sigv4_resign_botocore.json: every GET presigned URL of
sigv4_presign.json and sigv4_presign_js_defaults.json re-signed by botocore (1.43.x) at another
instant, from the URL alone: raw path kept, every non-auth query parameter kept, region and
credentials from the vector. The oracle for edgesign's exact re-signing.

usage: pip install boto3 && python3 tests/vectors/gen/resign_botocore.py
"""
import datetime, json, os, urllib.parse
from unittest import mock

import botocore, botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
VEC = os.path.dirname(HERE)
AT, EXPIRES = "20260101T120000Z", 900
AUTH = {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token"}

def resign(url, ak, sk, token, headers):
    u = urllib.parse.urlsplit(url)
    kv = [(p.split("=", 1)[0], p.split("=", 1)[1] if "=" in p else "") for p in u.query.split("&") if p]
    region = urllib.parse.unquote(dict(kv)["X-Amz-Credential"]).split("/")[2]
    req = AWSRequest(method="GET", url=urllib.parse.urlunsplit((u.scheme, u.netloc, u.path, "", "")),
                     headers=headers or {})
    req.params = {k: urllib.parse.unquote(v) for k, v in kv if k not in AUTH}
    signer = botocore.auth.S3SigV4QueryAuth(Credentials(ak, sk, token), "s3", region, expires=EXPIRES)
    with mock.patch("botocore.auth.get_current_datetime",
                    return_value=datetime.datetime.strptime(AT, "%Y%m%dT%H%M%SZ")):
        signer.add_auth(req)
    return req.url

out = []
for fname in ("sigv4_presign.json", "sigv4_presign_js_defaults.json"):
    for v in json.load(open(os.path.join(VEC, fname)))["vectors"]:
        i = v["input"]
        if i["method"] != "GET":
            continue
        headers = {"Range": i["params"]["Range"]} if "Range" in i.get("params", {}) else None
        url = resign(v["expected"]["url"], i["access_key_id"], i["secret_access_key"], i["session_token"], headers)
        out.append({"name": f"{fname.split('.')[0]}/{v['name']}", "source_url": v["expected"]["url"],
                    "access_key_id": i["access_key_id"], "secret_access_key": i["secret_access_key"],
                    "session_token": i["session_token"], "headers": headers or {},
                    "at": AT, "expires_in": EXPIRES, "expected_url": url,
                    "expected_signature": url.rsplit("X-Amz-Signature=", 1)[1]})

json.dump({"generator": f"botocore {botocore.__version__} S3SigV4QueryAuth, clock frozen at {AT} "
                        "(tests/vectors/gen/resign_botocore.py)",
           "notes": ["each source_url is re-signed from its own query: non-auth params kept, raw path kept",
                     "the credentials are the ones the source URL was made with (same key re-signs)"],
           "vectors": out},
          open(os.path.join(VEC, "sigv4_resign_botocore.json"), "w"), indent=1, ensure_ascii=False)
print(len(out), "vectors")
