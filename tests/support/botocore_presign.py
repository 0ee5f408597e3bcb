#!/usr/bin/env python3
"""Mints one S3 presigned GET URL with botocore, clock frozen, for edgesign's tests.
usage: botocore_presign.py ENDPOINT BUCKET KEY YYYYMMDDTHHMMSSZ EXPIRES AK SK [path|virtual]
  [response-content-disposition]
env: EDGESIGN_TEST_REGION, the region to sign for (default us-east-1; "auto" for R2)"""
import datetime, os, sys
from unittest import mock

region = os.environ.get("EDGESIGN_TEST_REGION", "us-east-1")

for k in list(os.environ):
    if k.startswith("AWS_"):
        del os.environ[k]
os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

import boto3, botocore.auth
from botocore.config import Config

endpoint, bucket, key, at, expires, ak, sk = sys.argv[1:8]
style = sys.argv[8] if len(sys.argv) > 8 else "path"
params = {"Bucket": bucket, "Key": key}
if len(sys.argv) > 9:
    params["ResponseContentDisposition"] = sys.argv[9]
client = boto3.client("s3", region_name=region, endpoint_url=endpoint, aws_access_key_id=ak,
                      aws_secret_access_key=sk,
                      config=Config(signature_version="s3v4", s3={"addressing_style": style}))
fixed = datetime.datetime.strptime(at, "%Y%m%dT%H%M%SZ")
with mock.patch("botocore.auth.get_current_datetime", return_value=fixed):
    print(client.generate_presigned_url("get_object", Params=params, ExpiresIn=int(expires)))
