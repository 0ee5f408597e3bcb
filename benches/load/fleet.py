#!/usr/bin/env python3
"""What fleet state costs a cache-hit redirect, in one run: `python3 benches/load/fleet.py`.

Starts a redis-server (127.0.0.1, a free port, nothing persisted) and four edgesign processes
with the same redirect route, one worker each:

  off          no [fleet], no [audit]: the baseline
  fleet        [fleet] on that Redis: the rate limit is leased from it (every wrk connection
               is one anonymous caller, so one lease serves the whole load)
  revocations  [fleet] with 2,000 revocations in force (1,000 keys, 1,000 prefixes), none
               covering the key asked for: what the revocation lookup adds
  audit        [fleet] and [audit] path: one audit line per redirect, at full load

Drives each with wrk in turn (off, fleet, revocations, audit, off, …: interleaved rounds) and
prints medians, ratios to `off`, and the audit lines written and dropped. With two or more
CPUs, wrk gets CPU 0 and the servers CPU 1. Needs wrk and redis-server
(`apt-get install -y wrk redis-server`) and the release binary (built unless --no-build).
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the shared helpers: pinning, wrk, ports)

ADMIN = "sk_bench_admin_0123456789"
VARIANTS = ["off", "fleet", "revocations", "audit"]


def config(port, redis_port, variant, work):
    text = f"""[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
workers = 1
[cache]
bucket = "15m"
[rate_limit]
per_second = 100000000
burst = 100000000
[[origins]]
name = "fast"
kind = "s3"
endpoint = "http://127.0.0.1:1"
region = "us-east-1"
bucket = "bench"
path_style = true
ttl = "1h"
[[origins.keys]]
access_key_id = "AKIAIOSFODNN7EXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
[[routes]]
prefix = "/r/"
origin = "fast"
mode = "redirect"
access = "public"
[[auth.api_keys]]
sha256 = "{hashlib.sha256(ADMIN.encode()).hexdigest()}"
kind = "secret"
"""
    if variant != "off":
        text += f"""[fleet]
redis_url = "redis://127.0.0.1:{redis_port}/0"
key_prefix = "bench-{variant}:"
"""
    if variant == "audit":
        text += f'[audit]\npath = "{os.path.join(work, "audit.ndjson")}"\n'
    return text


def post(url, body):
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {ADMIN}", "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.split(" ")[0] == name:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--connections", type=int, default=32)
    run.binary_args(ap)
    args = ap.parse_args()
    for tool in ("wrk", "redis-server"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install -y wrk redis-server")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=run.REPO, check=True)
    if (os.cpu_count() or 1) >= 2:
        run.PIN = ("0", "1")

    work = tempfile.mkdtemp(prefix="edgesign-fleet-bench-")
    procs = []
    try:
        redis_port = run.free_port()
        procs.append(subprocess.Popen(
            run.pinned(["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                        "--save", "", "--appendonly", "no", "--dir", work], "load"),
            stdout=subprocess.DEVNULL))
        run.wait_port(redis_port, procs[-1])
        ports = {}
        for v in VARIANTS:
            port = run.free_port()
            path = os.path.join(work, f"{v}.toml")
            with open(path, "w") as f:
                f.write(config(port, redis_port, v, work))
            procs.append(subprocess.Popen(
                run.pinned([args.binary, "--config", path], "server"),
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"{v}.log"), "w"),
                env={**os.environ, "RUST_LOG": "warn"}))
            run.wait_port(port, procs[-1])
            ports[v] = port
        base = f"http://127.0.0.1:{ports['revocations']}"
        for i in range(1000):
            post(f"{base}/v1/revocations", {"origin": "fast", "key": f"other/{i}.txt"})
            post(f"{base}/v1/revocations", {"origin": "fast", "prefix": f"gone/{i}/"})
        url = "/r/small.txt"
        for v in VARIANTS:
            status, _ = run.fetch(f"http://127.0.0.1:{ports[v]}{url}")
            assert status == 302, (v, status)
            run.wrk(f"http://127.0.0.1:{ports[v]}{url}", 1, args.connections)  # warm up
        runs = {v: [] for v in VARIANTS}
        for _ in range(args.rounds):
            for v in VARIANTS:
                r = run.wrk(f"http://127.0.0.1:{ports[v]}{url}", args.duration, args.connections)
                if r["errors"]:
                    sys.exit(f"{v}: {r['errors']} errors")
                runs[v].append(r)
        print(f"cache-hit redirect, 1 server CPU, wrk -t1 -c{args.connections}, "
              f"{args.rounds} interleaved rounds of {args.duration} s")
        off = runs["off"]
        for v in VARIANTS:
            rps = statistics.median(r["rps"] for r in runs[v])
            ratio = statistics.median(a["rps"] / b["rps"] for a, b in zip(runs[v], off))
            p99 = statistics.median(r["p99"] for r in runs[v]) * 1e3
            print(f"  {v:<12} {rps:>10,.0f} req/s  {ratio:.3f}x off  p99 {p99:.2f} ms")
        written = metric(ports["audit"], 'edgesign_audit_lines_total{result="written"}')
        dropped = metric(ports["audit"], 'edgesign_audit_lines_total{result="dropped"}')
        with open(os.path.join(work, "audit.ndjson")) as f:
            in_file = sum(1 for _ in f)
        print(f"  audit lines: {written:,.0f} written ({in_file:,} in the file), {dropped:,.0f} dropped")
        calls = subprocess.run(["redis-cli", "-p", str(redis_port), "info", "commandstats"],
                               capture_output=True, text=True).stdout
        print("  redis: " + " ".join(l.split(",")[0] for l in calls.splitlines() if l.startswith("cmdstat_eval")))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
