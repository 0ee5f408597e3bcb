#!/usr/bin/env python3
"""Open-loop latency tails: `python3 benches/load/tails.py`.

A closed loop at saturation (wrk) measures the load generator's own queue as much as the
server. Here each server is offered a fixed rate instead, with `oha -q RATE
--latency-correction` (a request's latency counts from when it was due, not from when a busy
connection got round to sending it), over --connections connections (default 64), pinned as
run.py pins: oha on the first CPU, the servers on the others.

1. Capacity: a closed-loop wrk run each for edgesign's cache-hit redirect and for nginx + njs
   re-sign + 302 (the peer that does the same job).
2. At 60 % of nginx + njs's capacity: edgesign and nginx + njs, --pairs interleaved runs
   each; p50 / p99 / p99.9 / max and their ratios (edgesign / njs; lower is better).
3. At 60 % of edgesign's own capacity: edgesign alone (nginx + njs cannot carry that rate),
   with the current-thread bare hyper floor beside it for reference.

Needs nginx, libnginx-mod-http-js, wrk and oha (`cargo install oha` or a release binary).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


def oha(url, rate, duration, connections):
    """An open-loop run: returns p50, p99, p99.9, max (seconds), the rate achieved and errors."""
    cmd = run.pinned(
        ["oha", "--no-tui", "--output-format", "json", "-z", f"{duration}s", "-c", str(connections),
         "-q", str(rate), "--latency-correction", "--redirect", "0", url],
        "load",
    )
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    pct = out["latencyPercentiles"]
    codes = out.get("statusCodeDistribution", {})
    good = sum(v for k, v in codes.items() if k.startswith(("2", "3")))
    errors = sum(v for k, v in codes.items() if not k.startswith(("2", "3")))
    errors += sum(out.get("errorDistribution", {}).values())
    return {
        "p50": pct["p50"], "p99": pct["p99"], "p99.9": pct["p99.9"],
        "max": out["summary"]["slowest"], "rps": good / duration, "errors": errors,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per open-loop run (default 10)")
    ap.add_argument("--pairs", type=int, default=3, help="interleaved runs per side (default 3)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--fraction", type=float, default=0.6, help="of capacity (default 0.6)")
    run.binary_args(ap)
    args = ap.parse_args()
    workers = run.pin_cpus()
    for tool in ("wrk", "nginx", "oha"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (see the docstring)")
    if not args.no_build:
        run.build_release()
    work = tempfile.mkdtemp(prefix="edgesign-tails-")
    os.chmod(work, 0o755)
    srv = run.Servers(work, args.binary, workers)
    with open(os.path.join(srv.data, "bench", "small.txt"), "w") as f:
        f.write("small\n")
    srv.start_nginx()
    srv.start_edgesign()
    edge = f"http://127.0.0.1:{srv.edge}/r/small.txt"
    njs = f"http://127.0.0.1:{srv.peer}/njs-redirect/small.txt"
    s, h = run.fetch(edge)
    assert s == 302 and "X-Amz-Signature=" in h["location"], (s, h)
    s, h2 = run.fetch(njs)
    assert s == 302 and "X-Amz-Signature=" in h2["location"], (s, h2)
    floor = None
    try:
        floor_url, floor = run.start_floor(args.binary, h["location"], workers, proto="http1")
        c, d = args.connections, args.duration
        print(f"# open-loop tails: oha -q RATE --latency-correction -c {c}, {d}s runs, "
              f"{args.pairs} interleaved runs per side; {os.cpu_count()} CPUs, {workers} worker(s) "
              f"each; {run.pin_note('oha')}; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        cap_edge = statistics.median(run.wrk(edge, 5, c)["rps"] for _ in range(2))
        cap_njs = statistics.median(run.wrk(njs, 5, c)["rps"] for _ in range(2))
        print(f"capacity (closed loop, wrk -c{c}): edgesign {cap_edge:,.0f} req/s, "
              f"nginx + njs {cap_njs:,.0f} req/s")

        def table(rate, label, sides):
            runs = {name: [] for name, _ in sides}
            for _ in range(args.pairs):
                for name, url in sides:
                    runs[name].append(oha(url, rate, d, c))
            print(f"\nat {rate:,} req/s offered ({args.fraction:.0%} of {label}'s capacity):")
            print(f"  {'server':30} {'achieved':>10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8} {'errors':>6}")
            for name, rs in runs.items():
                m = {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99", "p99.9", "max")}
                print(f"  {name:30} {m['rps']:>10,.0f} {m['p50'] * 1e3:>8.3f} {m['p99'] * 1e3:>8.3f} "
                      f"{m['p99.9'] * 1e3:>9.3f} {m['max'] * 1e3:>8.2f} {sum(r['errors'] for r in rs):>6}")
                raw = {k: " ".join(f"{r[k] * 1e3:.3f}" for r in rs) for k in ("p99", "p99.9")}
                print(f"  {'':30} raw p99 ms: {raw['p99']}; p99.9 ms: {raw['p99.9']}")
            return runs

        rate = int(cap_njs * args.fraction)
        runs = table(rate, "nginx + njs", [("edgesign redirect (cache hit)", edge), ("nginx + njs re-sign + 302", njs)])
        a, b = runs["edgesign redirect (cache hit)"], runs["nginx + njs re-sign + 302"]
        for k in ("p50", "p99", "p99.9"):
            ratio = statistics.median(x[k] / y[k] for x, y in zip(a, b))
            print(f"  {k:>5} edgesign / nginx + njs: {ratio:.2f}x (median of the runs' own ratios)")
        table(int(cap_edge * args.fraction), "edgesign",
              [("current-thread hyper 302 (floor)", floor_url), ("edgesign redirect (cache hit)", edge)])
    finally:
        if floor:
            floor.kill()
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
