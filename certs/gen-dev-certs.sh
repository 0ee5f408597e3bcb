#!/usr/bin/env bash
# DEV ONLY. Makes a throwaway CA and a leaf for 127.0.0.1 / ::1 / localhost, signed by it.
# rustls (webpki) refuses a CA certificate used as a server certificate, so the server serves
# dev.crt (leaf + CA chain) with dev.key, and clients trust ca.crt.
#   usage: certs/gen-dev-certs.sh [outdir=certs]
set -euo pipefail
OUT="${1:-$(dirname "$0")}"
mkdir -p "$OUT"; cd "$OUT"
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout ca.key -out ca.crt \
  -subj "/CN=edgesign DEV-ONLY test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 -keyout dev.key -out dev.csr -subj "/CN=localhost" 2>/dev/null
cat > dev.ext <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:*.localhost
EXT
openssl x509 -req -in dev.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 \
  -extfile dev.ext -out leaf.crt 2>/dev/null
cat leaf.crt ca.crt > dev.crt
rm -f dev.csr dev.ext ca.srl leaf.crt ca.key
openssl verify -CAfile ca.crt dev.crt
