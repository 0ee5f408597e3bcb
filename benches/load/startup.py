#!/usr/bin/env python3
"""Start-up time, from exec to the first `/readyz` 200: `python3 benches/load/startup.py`.

Two configs: the shipped `config.toml` (a local origin over demo/), and one with 50 S3
origins and 10,000 API keys (what a large tenant list looks like). Each is started --runs
times (default 7); the script polls /readyz every millisecond and prints the median and
the slowest. Needs the release binary (built unless --no-build).
"""

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


def big_config(port, work):
    lines = [f'[server]\nlisten = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}"\n']
    for i in range(50):
        lines.append(f"""[[origins]]
name = "o{i}"
kind = "s3"
endpoint = "http://127.0.0.1:9"
region = "us-east-1"
bucket = "b{i}"
path_style = true
ttl = "1h"
[[origins.keys]]
access_key_id = "AKIAIOSFODNN7EXAMPL{i:02d}"
secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
[[routes]]
prefix = "/o{i}/"
origin = "o{i}"
access = "org"
""")
    lines.append("[auth]\n")
    for i in range(10_000):
        digest = hashlib.sha256(f"sk_bench_{i:05d}_0123456789".encode()).hexdigest()
        lines.append(f'[[auth.api_keys]]\nsha256 = "{digest}"\nkind = "secret"\norg = "org{i}"\n')
    path = os.path.join(work, "big.toml")
    with open(path, "w") as f:
        f.write("".join(lines))
    return path


def shipped_config(port, work):
    with open(os.path.join(run.REPO, "config.toml")) as f:
        text = f.read()
    text = text.replace('listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{port}"')
    text = text.replace('root = "demo"', f'root = "{os.path.join(run.REPO, "demo")}"')
    path = os.path.join(work, "shipped.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def time_to_ready(binary, config, port):
    start = time.perf_counter()
    proc = subprocess.Popen([binary, "--config", config], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                pass
            if proc.poll() is not None:
                sys.exit(f"edgesign exited with {proc.returncode} on {config}")
            time.sleep(0.001)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    run.binary_args(ap)
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "--bins"],
                       cwd=run.REPO, check=True)
    work = tempfile.mkdtemp(prefix="edgesign-startup-")
    try:
        print(f"# start-up, exec to the first /readyz 200, {args.runs} runs each; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        for name, make in [("shipped config.toml", shipped_config),
                           ("50 origins, 10,000 API keys", big_config)]:
            port = run.free_port()
            config = make(port, work)
            times = [time_to_ready(args.binary, config, port) for _ in range(args.runs)]
            print(f"  {name:30} median {statistics.median(times) * 1e3:6.1f} ms   "
                  f"slowest {max(times) * 1e3:6.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
