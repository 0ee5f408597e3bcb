#!/usr/bin/env python3
"""System calls per request, counted by `strace -c`: `python3 benches/load/syscalls.py`.

Starts the same servers as run.py (edgesign's release binary, nginx with its plain 302, and
the bare hyper floor in both runtime layouts, each writing edgesign's own Location), then for
each one attaches `strace -f -c` to its processes while wrk drives a fixed number of seconds
of cache-hit redirects over keep-alive connections, and divides the calls by the requests
wrk counted. Prints the total per request and the calls that make it up. strace slows the
servers down; the counts, not the rates, are what this measures.

Needs strace, wrk, nginx (`apt-get install -y strace wrk nginx libnginx-mod-http-js`) and the
release binaries (built unless --no-build). Every server listens on 127.0.0.1 only.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the shared servers and helpers)


def threads_of(pid):
    return [int(t) for t in os.listdir(f"/proc/{pid}/task")]


def count(pids, url, duration, connections):
    """(syscalls per request, {name: per request}, requests/s under strace)."""
    out = tempfile.mktemp(prefix="strace-")
    cmd = ["strace", "-f", "-c", "-o", out]
    for pid in pids:
        cmd += ["-p", str(pid)]
    tracer = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let strace attach to every thread before the load starts
    r = run.wrk(url, duration, connections)
    tracer.terminate()
    tracer.wait(timeout=30)
    requests = r["rps"] * duration
    calls = {}
    with open(out) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
            if m and m.group(2) != "total":
                calls[m.group(2)] = int(m.group(1))
    os.unlink(out)
    total = sum(calls.values())
    return total / requests, {k: v / requests for k, v in calls.items()}, r["rps"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    run.binary_args(ap)
    args = ap.parse_args()
    for tool in ("strace", "wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install -y strace wrk nginx libnginx-mod-http-js")
    if not args.no_build:
        run.build_release()
    work = tempfile.mkdtemp(prefix="edgesign-syscalls-")
    os.chmod(work, 0o755)
    srv = run.Servers(work, args.binary, args.workers)
    with open(os.path.join(srv.data, "bench", "small.txt"), "w") as f:
        f.write("small\n")
    floors = []
    try:
        srv.start_nginx()
        srv.start_edgesign()
        edge = f"http://127.0.0.1:{srv.edge}"
        _, h = run.fetch(f"{edge}/r/small.txt")
        targets = [("edgesign redirect (cache hit)", [srv.edgesign.pid], f"{edge}/r/small.txt")]
        for layout in ("multi", "current"):
            port = run.free_port()
            p = subprocess.Popen(
                [os.path.join(os.path.dirname(args.binary), "examples", "hyper_floor"),
                 f"127.0.0.1:{port}", "http1", "timer", layout],
                stdout=subprocess.DEVNULL,
                env={**os.environ, "FLOOR_WORKERS": str(args.workers), "FLOOR_LOCATION": h["location"]},
            )
            floors.append(p)
            run.wait_port(port, p)
            targets.append((f"bare hyper 302, {layout}-thread runtime", [p.pid],
                            f"http://127.0.0.1:{port}/"))
        targets.append(("nginx plain 302", run.nginx_workers(),
                        f"http://127.0.0.1:{srv.peer}/plain/small.txt"))
        print(f"# syscalls per request: wrk -t1 -c{args.connections} -d{args.duration}s keep-alive, "
              f"{args.workers} worker(s) each, strace -f -c; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        for name, pids, url in targets:
            run.fetch(url)
            total, calls, rps = count(pids, url, args.duration, args.connections)
            top = sorted(calls.items(), key=lambda kv: -kv[1])[:5]
            parts = ", ".join(f"{k} {v:.2f}" for k, v in top)
            print(f"  {name:40} {total:6.2f} per request   ({parts}; {rps:,.0f} req/s traced)")
    finally:
        for p in floors:
            p.kill()
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
