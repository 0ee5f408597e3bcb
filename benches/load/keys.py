#!/usr/bin/env python3
"""Many cached keys: `python3 benches/load/keys.py`.

Redirect throughput on cache hits (wrk -t1, --connections, pinned as run.py pins: wrk on the
first CPU, edgesign on the others) when the requests name:
- one hot key;
- --keys distinct keys (default 100,000), drawn uniformly;
- the same keys drawn from a Zipf distribution (s = --zipf-s, default 1.1).
The keys are all minted first (a sequential pass), and the misses counted during each
measured run are printed: a hit-rate figure with misses in it would measure signing instead.
Each comparison is --pairs interleaved A/B pairs; the ratio is the median of the pairs'.
CPU per request is read from /proc for each mix.

Then memory: edgesign restarted, RSS read, --big distinct keys (default 1,000,000) minted,
RSS read again, divided by the entries the cache holds (`edgesign_cache_entries`).

The cache is sized to hold them all (`cache.max_entries`, `cache.max_bytes` in the config).
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
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "keys.lua")
# One time bucket for the whole run, so no key is minted anew mid-measurement.
BUCKET, TTL = "12h", "24h"


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for name in ("edgesign_cache_misses_total", "edgesign_cache_hits_total", "edgesign_cache_entries"):
        m = re.search(rf"^{name} ([\d.e+]+)$", text, re.M)
        out[name] = float(m.group(1)) if m else 0.0
    return out


def warm(srv, keys, connections):
    """Mints `keys` distinct keys (a sequential pass, repeated until every one is cached)."""
    port = srv.edge
    base = metrics(port)["edgesign_cache_misses_total"]
    t0 = time.time()
    while metrics(port)["edgesign_cache_misses_total"] - base < keys:
        done = metrics(port)["edgesign_cache_misses_total"] - base
        left = keys - done
        # Each pass starts where the last one's misses end (less the requests in flight).
        start = max(0, int(done) - connections)
        r = run.wrk(f"http://127.0.0.1:{port}", max(2, int(left / 20000) + 1), connections, SCRIPT,
                {"KEY_PREFIX": "/r/keys/", "KEYS": str(keys), "DRAW": "seq", "START": str(start)})
        print(f"  warming: {left:,.0f} keys left, {r['rps']:,.0f} req/s, {r['errors']} errors", flush=True)
    return time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--big", type=int, default=1_000_000, help="keys for the memory figure")
    ap.add_argument("--zipf-s", type=float, default=1.1)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    run.binary_args(ap)
    ap.add_argument("--only", choices=["speed", "memory"], default=None)
    ap.add_argument("--perf", metavar="DIR",
                    help="record a CPU profile of edgesign (perf record -g -F 1999: call graphs on a frame-pointer build) during each "
                         "mix's last run, into DIR/<mix>.data")
    args = ap.parse_args()
    workers = run.pin_cpus()
    if not args.no_build:
        run.build_release()
    work = tempfile.mkdtemp(prefix="edgesign-keys-")
    srv = run.Servers(work, args.binary, workers)
    cache = f'max_entries = {2 * max(args.keys, args.big)}\nmax_bytes = "4GiB"\n'
    print(f"# many keys: wrk -t1 -c{args.connections}, {args.duration}s runs, {args.pairs} pairs; "
          f"{workers} worker(s); {run.pin_note('wrk')}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    try:
        srv.start_edgesign(extra_cache=cache, bucket=BUCKET, ttl=TTL)
        edge = f"http://127.0.0.1:{srv.edge}"
        if args.only in (None, "speed"):
            took = warm(srv, args.keys, args.connections)
            s, h = run.fetch(f"{edge}/r/keys/1.bin")
            assert s == 302 and "X-Amz-Signature=" in h["location"], (s, h)
            print(f"minted {args.keys:,} keys in {took:.1f} s")
            mixes = {
                "one hot key": (f"{edge}/r/keys/1.bin", None, None),
                f"{args.keys:,} keys, uniform": (edge, SCRIPT, {"KEY_PREFIX": "/r/keys/", "KEYS": str(args.keys), "DRAW": "uniform"}),
                f"{args.keys:,} keys, zipf s={args.zipf_s}": (edge, SCRIPT, {"KEY_PREFIX": "/r/keys/", "KEYS": str(args.keys), "DRAW": "zipf", "ZIPF_S": str(args.zipf_s)}),
            }
            results = {name: [] for name in mixes}
            misses = {name: 0.0 for name in mixes}
            cpu = {name: [] for name in mixes}
            for i in range(args.pairs):
                for name, (url, script, env) in mixes.items():
                    m0 = metrics(srv.edge)["edgesign_cache_misses_total"]
                    perf = None
                    if args.perf and i == args.pairs - 1:
                        os.makedirs(args.perf, exist_ok=True)
                        out = os.path.join(args.perf, name.split(",")[-1].strip().replace(" ", "-") + ".data")
                        perf = subprocess.Popen(
                            ["perf", "record", "-q", "-g", "-F", "1999", "-p", str(srv.edgesign.pid), "-o", out,
                             "--", "sleep", str(args.duration)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    u0, s0 = run.cpu_ticks([srv.edgesign.pid])
                    r = run.wrk(url, args.duration, args.connections, script, {**(env or {}), "SEED": str(i + 1)})
                    u1, s1 = run.cpu_ticks([srv.edgesign.pid])
                    if perf:
                        perf.wait()
                    misses[name] += metrics(srv.edge)["edgesign_cache_misses_total"] - m0
                    total = r["rps"] * args.duration
                    cpu[name].append(((u1 - u0) * 1e4 / total, (s1 - s0) * 1e4 / total))
                    results[name].append(r)
            hot = results["one hot key"]
            print()
            print(f"{'mix':34} {'req/s':>10} {'vs hot':>7} {'p99 ms':>7} {'user us':>8} {'sys us':>7} {'misses':>7} {'errors':>6}")
            for name, rs in results.items():
                ratio = statistics.median(r["rps"] / h["rps"] for r, h in zip(rs, hot))
                print(f"{name:34} {run.median(rs, 'rps'):>10,.0f} {ratio:>6.2f}x "
                      f"{run.median(rs, 'p99') * 1e3:>7.2f} "
                      f"{statistics.median(c[0] for c in cpu[name]):>8.2f} "
                      f"{statistics.median(c[1] for c in cpu[name]):>7.2f} "
                      f"{misses[name]:>7.0f} {sum(r['errors'] for r in rs):>6}")
            print("raw req/s: " + "; ".join(
                f"{name}: {' '.join(run.fmt_rate(r['rps']) for r in rs)}" for name, rs in results.items()))
        if args.only in (None, "memory"):
            srv.stop_edgesign()
            srv.start_edgesign(extra_cache=cache, bucket=BUCKET, ttl=TTL)
            run.fetch(f"{edge}/healthz")
            before = run.rss_kib(srv.edgesign.pid)
            took = warm(srv, args.big, args.connections)
            m = metrics(srv.edge)
            after = run.rss_kib(srv.edgesign.pid)
            entries = m["edgesign_cache_entries"]
            print()
            print(f"memory: {args.big:,} keys minted in {took:.1f} s; {entries:,.0f} entries held; "
                  f"RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB; "
                  f"{(after - before) * 1024 / max(entries, 1):,.0f} B per entry")
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
