#!/usr/bin/env python3
"""Azure's own SDK (azure-storage-blob) against Azurite: uploads blobs, and mints service SAS
URLs with generate_blob_sas (account key, explicit start and expiry).

usage: azure_blob.py upload ENDPOINT ACCOUNT KEY CONTAINER NAME FILE
       azure_blob.py sas ENDPOINT ACCOUNT KEY CONTAINER NAME START EXPIRY [PERMISSION]
  ENDPOINT  e.g. http://127.0.0.1:10000/devstoreaccount1
  START, EXPIRY  Unix seconds"""
import datetime, sys

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobClient, BlobServiceClient, generate_blob_sas

cmd, endpoint, account, key, container, name = sys.argv[1:7]
if cmd == "upload":
    service = BlobServiceClient(account_url=endpoint, credential={"account_name": account, "account_key": key})
    try:
        service.create_container(container)
    except ResourceExistsError:
        pass
    with open(sys.argv[7], "rb") as f:
        service.get_blob_client(container, name).upload_blob(f, overwrite=True)
elif cmd == "sas":
    at = lambda s: datetime.datetime.fromtimestamp(int(s), datetime.timezone.utc)
    permission = sys.argv[9] if len(sys.argv) > 9 else "r"
    sas = generate_blob_sas(account, container, name, account_key=key, permission=permission,
                            start=at(sys.argv[7]), expiry=at(sys.argv[8]))
    print(BlobClient(endpoint, container, name).url + "?" + sas)
else:
    sys.exit(__doc__)
