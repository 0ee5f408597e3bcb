#!/usr/bin/env python3
"""CPU per request, interleaved: `python3 benches/load/cpu.py`.

Item 1 of issue 18 is a ratio per server-CPU second, and one 5 s run on a shared VM can be
off by 15 %. So this drives, round after round, edgesign's cache-hit redirect, edgesign's
`/healthz` (the server shell alone: request id, metrics, deadlines, no service) and the
current-thread bare hyper 302 (the floor, with edgesign's own `Location`), each with
`wrk -t1`, and reads each server's user and system CPU from /proc around every run. Prints
every run, then per server the median user, system and total microseconds a request, and
the floor's total over each.

Same servers, config and pinning as `run.py` (wrk on CPU 0, each server, one worker per
server CPU, on the others). Needs wrk (`apt-get install -y wrk`).
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4, help="rounds, each running every target once")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--connections", type=int, default=64)
    run.binary_args(ap)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install -y wrk")
    workers = run.pin_cpus()
    if not args.no_build:
        run.build_release()

    work = tempfile.mkdtemp(prefix="edgesign-cpu-")
    srv = run.Servers(work, args.binary, workers)
    floor = None
    try:
        srv.start_edgesign()
        edge = f"http://127.0.0.1:{srv.edge}"
        status, headers = run.fetch(f"{edge}/r/small.txt")
        assert status == 302 and "X-Amz-Signature=" in headers["location"], (status, headers)
        floor_url, floor = run.start_floor(args.binary, headers["location"], workers)
        targets = [
            ("edgesign redirect (cache hit)", srv.edgesign.pid, f"{edge}/r/small.txt"),
            ("edgesign /healthz (server shell)", srv.edgesign.pid, f"{edge}/healthz"),
            ("current-thread hyper 302 (floor)", floor.pid, floor_url),
        ]
        print(f"# CPU per request: {args.rounds} rounds of {args.duration}s wrk -t1 "
              f"-c{args.connections} runs; {workers} worker(s) each; {run.pin_note('wrk')}; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        runs = {name: [] for name, _, _ in targets}
        for rnd in range(1, args.rounds + 1):
            for name, pid, url in targets:
                u0, s0 = run.cpu_ticks([pid])
                r = run.wrk(url, args.duration, args.connections)
                u1, s1 = run.cpu_ticks([pid])
                n = r["rps"] * args.duration
                if r["errors"] or n == 0:
                    sys.exit(f"{name}: {r['errors']} errors, {n:.0f} requests")
                # Ticks are 1/100 s: ticks * 1e4 / requests is microseconds a request.
                user, system = (u1 - u0) * 1e4 / n, (s1 - s0) * 1e4 / n
                runs[name].append((user, system))
                print(f"round {rnd}: {name:34} {r['rps']:>10,.0f} req/s   user {user:5.2f}   "
                      f"system {system:5.2f}", flush=True)
        floor_total = statistics.median(u + s for u, s in runs[targets[-1][0]])
        print()
        print(f"{'median, µs a request':34} {'user':>7} {'system':>7} {'total':>7}  floor / this")
        for name, _, _ in targets:
            user = statistics.median(u for u, _ in runs[name])
            system = statistics.median(s for _, s in runs[name])
            total = statistics.median(u + s for u, s in runs[name])
            print(f"{name:34} {user:7.2f} {system:7.2f} {total:7.2f}  {floor_total / total:.2f}x")
    finally:
        if floor is not None:
            floor.kill()
            floor.wait()
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
