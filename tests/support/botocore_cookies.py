#!/usr/bin/env python3
"""CloudFront signed cookies as botocore builds them (its CloudFrontSigner.build_policy for the
exact policy JSON, signed with `cryptography` as botocore's documented rsa_signer does), in the
form the AWS developer guide gives: CloudFront-Policy, CloudFront-Signature,
CloudFront-Key-Pair-Id. The independent oracle for the stale cookies a player holds.

usage: botocore_cookies.py PRIVATE_PEM KEY_PAIR_ID RESOURCE DATE_LESS_THAN [DATE_GREATER_THAN|- [IP]]
prints the Cookie header."""
import base64, datetime, sys

from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

pem, kid, resource, dlt = sys.argv[1:5]
dgt = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != "-" else None
ip = sys.argv[6] if len(sys.argv) > 6 else None
with open(pem, "rb") as f:
    key = serialization.load_pem_private_key(f.read(), None)
signer = CloudFrontSigner(kid, lambda m: key.sign(m, padding.PKCS1v15(), hashes.SHA1()))
at = lambda s: datetime.datetime.fromtimestamp(int(s), datetime.timezone.utc)
policy = signer.build_policy(resource, at(dlt), date_greater_than=at(dgt) if dgt else None,
                             ip_address=ip).encode()
b64 = lambda b: base64.b64encode(b).decode().replace("+", "-").replace("=", "_").replace("/", "~")
print(f"CloudFront-Policy={b64(policy)}; CloudFront-Signature={b64(signer.rsa_signer(policy))}; "
      f"CloudFront-Key-Pair-Id={kid}")
