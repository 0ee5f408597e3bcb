#!/usr/bin/env python3
"""Two builds or settings of edgesign, interleaved: `python3 benches/load/ab.py A B`.

Each of A and B is a binary path, optionally followed by `@NAME=value,NAME=value` for
environment variables that side starts with, for example

    python3 benches/load/ab.py /tmp/edgesign-old target/release/edgesign
    python3 benches/load/ab.py target/release/edgesign target/release/edgesign@MIMALLOC_PURGE_DELAY=0

Both run at once, each with one worker on the server CPU, in front of one nginx static
origin, with the config of `run.py`. Each round measures, for A then B: the cache-hit
redirect, a 1 MiB stream, and cold misses (a key never signed before on every request).
Compare rows side by side: a pair runs back to back, so a slow spell of the shared machine
lands on both. Prints each round and the medians, and B's median over A's.
"""

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

ROWS = (("hit", "redirect, cache hit (req/s)"), ("stream", "stream 1 MiB (MB/s)"),
        ("cold", "cold misses, SigV4 (req/s)"))


def side(spec):
    """`path@K=V,K=V` -> (path, {K: V})."""
    path, _, envs = spec.partition("@")
    env = dict(kv.split("=", 1) for kv in envs.split(",") if kv)
    return path, env


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    args = ap.parse_args()
    specs = [args.a, args.b]
    run.pin_cpus()

    work = tempfile.mkdtemp(prefix="edgesign-ab-")
    os.chmod(work, 0o755)  # nginx workers drop privileges and must read the data
    origin = run.Servers(work, None, 1)
    with open(os.path.join(origin.data, "bench", "obj-1mib.bin"), "wb") as f:
        f.write(bytes((i * 31) % 251 for i in range(1 << 20)))
    with open(os.path.join(origin.data, "bench", "small.txt"), "w") as f:
        f.write("small\n")
    edges = []
    try:
        origin.start_nginx()
        for i, spec in enumerate(specs):
            path, env = side(spec)
            edge = run.Servers(os.path.join(work, f"side-{i}"), path, 1)
            edge.fast, edge.peer = origin.fast, origin.peer
            saved = dict(os.environ)
            os.environ.update(env)
            try:
                edge.start_edgesign()
            finally:
                os.environ.clear()
                os.environ.update(saved)
            edges.append(edge)
        print(f"# A = {args.a}\n# B = {args.b}\n# {args.rounds} rounds of {args.duration}s wrk "
              f"runs, interleaved; {run.pin_note('wrk')}; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        results = [{k: [] for k, _ in ROWS} for _ in specs]
        keys = itertools.count()
        script = os.path.join(run.HERE, "distinct.lua")
        for r in range(args.rounds):
            for edge, got in zip(edges, results):
                url = f"http://127.0.0.1:{edge.edge}"
                status, _ = run.fetch(f"{url}/r/small.txt")
                assert status == 302, status
                got["hit"].append(run.wrk(f"{url}/r/small.txt", args.duration, 64)["rps"])
                got["stream"].append(
                    run.wrk(f"{url}/s/obj-1mib.bin", args.duration, 16)["bps"] / 1e6)
                got["cold"].append(run.wrk(url, args.duration, 64, script,
                                           {"KEY_PREFIX": f"/r/cold/{next(keys)}-"})["rps"])
            print(f"round {r + 1}: " + "; ".join(
                f"{name} {results[0][k][-1]:,.0f} | {results[1][k][-1]:,.0f}" for k, name in ROWS),
                flush=True)
        print(f"\n{'':32} {'A':>10} {'B':>10}  B/A")
        for k, name in ROWS:
            a, b = (statistics.median(got[k]) for got in results)
            print(f"{name:32} {a:>10,.0f} {b:>10,.0f}  {b / a:.2f}x")
    finally:
        for edge in edges:
            edge.stop_edgesign()
        origin.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
