#!/usr/bin/env python3
"""A GCS V4 signed URL minted by google-cloud-storage itself (Blob.generate_signed_url,
version="v4"), with the clock frozen through the library's own `_request_timestamp` (its
"for testing only" argument of _signing.generate_signed_url_v4). Offline: nothing here talks
to Google. The library signs with service accounts only (GOOG4-RSA-SHA256).

usage: gcs_sign.py SA_JSON METHOD ENDPOINT BUCKET BLOB YYYYMMDDTHHMMSSZ EXPIRES [name=value ...]
  ENDPOINT  e.g. http://127.0.0.1:4443 (path style: ENDPOINT/BUCKET/BLOB)
  name=value  extra query parameters (decoded), signed in"""
import datetime, functools, os, sys

for k in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT",
          "GCLOUD_PROJECT", "GOOGLE_CLOUD_UNIVERSE_DOMAIN", "API_ENDPOINT_OVERRIDE"):
    os.environ.pop(k, None)

from google.cloud import storage
from google.cloud.storage import _signing, blob as blob_mod
from google.oauth2 import service_account

sa, method, endpoint, bucket, name, at, expires = sys.argv[1:8]
params = dict(p.split("=", 1) for p in sys.argv[8:])
creds = service_account.Credentials.from_service_account_file(sa)
blob_mod.generate_signed_url_v4 = functools.partial(
    _signing.generate_signed_url_v4, _request_timestamp=at)
client = storage.Client(project="edgesign-tests", credentials=creds)
url = client.bucket(bucket).blob(name).generate_signed_url(
    version="v4", method=method, expiration=datetime.timedelta(seconds=int(expires)),
    api_access_endpoint=endpoint, credentials=creds, query_parameters=params or None)
print(url)
