#!/usr/bin/env python3
"""HTTP/2 streams against HTTP/1.1 connections: `python3 benches/load/h2.py`.

The cache-hit redirect driven by h2load (nghttp2's load generator; `apt-get install -y
nghttp2-client`), pinned as run.py pins (h2load on the first CPU, the servers on the
others), at the same concurrency (--streams, default 100) two ways:
- HTTP/2 (h2c, prior knowledge): one connection carrying --streams concurrent streams
  (`h2load -c1 -m100`);
- HTTP/1.1: --streams keep-alive connections, one request in flight on each
  (`h2load --h1 -c100 -m1`).
The same two runs go to the current-thread bare hyper floor (hyper-util's auto builder, so it
speaks both), for reference. --pairs interleaved runs of --duration seconds each; throughput
from h2load, p50 / p99 / p99.9 from its per-request log (`--log-file`).
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


def h2load(url, duration, streams, h1, work):
    """One h2load run: requests/s, p50 / p99 / p99.9 (s) from the per-request log, errors."""
    log = os.path.join(work, "h2load.log")
    cmd = ["h2load", "-t1", "-D", str(duration), "--log-file", log]
    cmd += ["--h1", "-c", str(streams), "-m1"] if h1 else ["-c1", "-m", str(streams)]
    out = subprocess.run(run.pinned(cmd + [url], "load"), capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    ok, failed, errored = (int(x) for x in m.groups())
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    bad = int(m.group(3)) + int(m.group(4))
    with open(log) as f:
        lat = sorted(int(line.split("\t")[2]) for line in f if line.strip())
    os.unlink(log)

    def q(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] / 1e6

    return {"rps": rps, "p50": q(0.50), "p99": q(0.99), "p99.9": q(0.999),
            "errors": failed + errored + bad, "done": ok}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=5, help="seconds per run (default 5)")
    ap.add_argument("--pairs", type=int, default=3, help="interleaved runs per case (default 3)")
    ap.add_argument("--streams", type=int, default=100)
    run.binary_args(ap)
    args = ap.parse_args()
    workers = run.pin_cpus()
    if not shutil.which("h2load"):
        sys.exit("h2load is missing: apt-get install -y nghttp2-client")
    if not args.no_build:
        run.build_release()
    work = tempfile.mkdtemp(prefix="edgesign-h2-")
    srv = run.Servers(work, args.binary, workers)
    srv.start_edgesign()
    edge = f"http://127.0.0.1:{srv.edge}/r/small.txt"
    s, h = run.fetch(edge)
    assert s == 302 and "X-Amz-Signature=" in h["location"], (s, h)
    floor = None
    try:
        floor_url, floor = run.start_floor(args.binary, h["location"], workers, proto="auto")
        n = args.streams
        print(f"# HTTP/2 vs HTTP/1.1 at {n} requests in flight: h2load -t1, {args.duration}s runs, "
              f"{args.pairs} interleaved runs per case; {os.cpu_count()} CPUs, {workers} worker(s) "
              f"each; {run.pin_note('h2load')}; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        cases = [
            (f"edgesign, HTTP/2: 1 connection x {n} streams", edge, False),
            (f"edgesign, HTTP/1.1: {n} connections x 1", edge, True),
            (f"hyper floor, HTTP/2: 1 connection x {n} streams", floor_url, False),
            (f"hyper floor, HTTP/1.1: {n} connections x 1", floor_url, True),
        ]
        runs = {name: [] for name, _, _ in cases}
        for _ in range(args.pairs):
            for name, url, h1 in cases:
                runs[name].append(h2load(url, args.duration, n, h1, work))
        print(f"\n{'case':48} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'errors':>6}")
        for name, rs in runs.items():
            m = {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99", "p99.9")}
            print(f"{name:48} {m['rps']:>10,.0f} {m['p50'] * 1e3:>8.3f} {m['p99'] * 1e3:>8.3f} "
                  f"{m['p99.9'] * 1e3:>9.3f} {sum(r['errors'] for r in rs):>6}")
        for who in ("edgesign", "hyper floor"):
            a = runs[f"{who}, HTTP/2: 1 connection x {n} streams"]
            b = runs[f"{who}, HTTP/1.1: {n} connections x 1"]
            print(f"{who}: HTTP/2 / HTTP/1.1 throughput "
                  f"{statistics.median(x['rps'] / y['rps'] for x, y in zip(a, b)):.2f}x, p99 "
                  f"{statistics.median(x['p99'] / y['p99'] for x, y in zip(a, b)):.2f}x")
        e2 = runs[f"edgesign, HTTP/2: 1 connection x {n} streams"]
        f2 = runs[f"hyper floor, HTTP/2: 1 connection x {n} streams"]
        print(f"edgesign / floor over HTTP/2: "
              f"{statistics.median(x['rps'] / y['rps'] for x, y in zip(e2, f2)):.2f}x")
        print("\nraw req/s:")
        for name, rs in runs.items():
            print(f"  {name}: {' '.join(run.fmt_rate(r['rps']) for r in rs)}")
    finally:
        if floor:
            floor.kill()
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
