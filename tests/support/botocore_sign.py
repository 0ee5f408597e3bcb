#!/usr/bin/env python3
"""Signs a URL as an S3 presigned GET with botocore's own S3SigV4QueryAuth, clock frozen:
the raw path and every non-auth query parameter of URL are kept (as the AWS JS SDK's
x-id, X-Amz-Content-Sha256 and x-amz-checksum-mode are), auth parameters are replaced.
Used to mint URLs with extra parameters and to re-derive the signature of a URL that
reached an origin (at its own X-Amz-Date and X-Amz-Expires).

usage: botocore_sign.py URL YYYYMMDDTHHMMSSZ EXPIRES AK SK"""
import datetime, os, sys, urllib.parse
from unittest import mock

for k in list(os.environ):
    if k.startswith("AWS_"):
        del os.environ[k]

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH = {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token"}

url, at, expires, ak, sk = sys.argv[1:6]
u = urllib.parse.urlsplit(url)
kv = [(p.split("=", 1)[0], p.split("=", 1)[1] if "=" in p else "") for p in u.query.split("&") if p]
req = AWSRequest(method="GET", url=urllib.parse.urlunsplit((u.scheme, u.netloc, u.path, "", "")))
req.params = {k: urllib.parse.unquote(v) for k, v in kv if k not in AUTH}
signer = botocore.auth.S3SigV4QueryAuth(Credentials(ak, sk), "s3", "us-east-1", expires=int(expires))
with mock.patch("botocore.auth.get_current_datetime",
                return_value=datetime.datetime.strptime(at, "%Y%m%dT%H%M%SZ")):
    signer.add_auth(req)
print(req.url)
