#!/usr/bin/env python3
"""Idle keep-alive connections: `python3 benches/load/idle.py`.

Opens --connections (default 10,000) HTTP/1.1 keep-alive connections to each server, sends
one request on each and reads its answer, then holds them all idle. Reports, per server:
- resident memory growth per held connection (VmRSS after the connections have been idle for
  --settle seconds, minus VmRSS before they opened, divided by their number);
- with --waves N, the same per wave, each wave opened after the last has idled;
- with --runs N (default 3), each server started afresh N times, every run's row and then the
  median and the range: how much memory the allocator has handed back when RSS is read
  varies from run to run, so one run is not the figure;
- `/healthz` (edgesign) or `/` (the others) latency on a fresh connection while they are held
  (--probes sequential connect + request + answer + close; p50, p99, max).

Servers: edgesign (the release binary), nginx (`return 200`) and the bare hyper floor
(`examples/hyper_floor`, current-thread layout, `302`). Each listens on 127.0.0.1, and each server
runs on one worker. The file-descriptor limit is raised here, in the harness (to the hard
limit), not in edgesign's defaults: docs/deploy.md says how to size it in production.
"""

import argparse
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


def open_idle(port, path, n):
    """`n` connections, each having sent one request and read its whole answer."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    socks = []
    sel = selectors.DefaultSelector()
    batch = 500
    for start in range(0, n, batch):
        pending = {}
        for _ in range(min(batch, n - start)):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(request)
            s.setblocking(False)
            pending[s.fileno()] = (s, b"")
            sel.register(s, selectors.EVENT_READ)
        deadline = time.time() + 30
        while pending and time.time() < deadline:
            for key, _ in sel.select(timeout=1):
                s, got = pending[key.fd]
                got += s.recv(65536)
                if complete(got):
                    sel.unregister(s)
                    socks.append(s)
                    del pending[key.fd]
                else:
                    pending[key.fd] = (s, got)
        if pending:
            sys.exit(f"{len(pending)} connections got no answer")
    return socks


def complete(got):
    head, sep, body = got.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def probe(port, path, n):
    """Latency (ms) of `n` fresh connections, one request each."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    took = []
    for _ in range(n):
        t = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(request)
            got = b""
            while not complete(got):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        took.append((time.perf_counter() - t) * 1000)
        if not (got.startswith(b"HTTP/1.1 200") or got.startswith(b"HTTP/1.1 302")):
            sys.exit(f"probe answered {got[:40]!r}")
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.99) - 1], took[-1]


def measure(name, pids, port, path, args):
    rss = lambda: sum(run.rss_kib(p) for p in pids())  # noqa: E731
    # Warm up (first-request allocations, thread stacks) before the baseline.
    probe(port, path, 50)
    before = rss()
    socks, waves, last = [], [], before
    per_wave = args.connections // args.waves
    for w in range(args.waves):
        n = per_wave if w < args.waves - 1 else args.connections - len(socks)
        socks += open_idle(port, path, n)
        time.sleep(args.settle)
        now = rss()
        waves.append((now - last) * 1024 / n)
        last = now
    held = last
    p50, p99, worst = probe(port, path, args.probes)
    alive = sum(1 for s in socks if alive_check(s))
    for s in socks:
        s.close()
    per = (held - before) * 1024 / args.connections
    print(f"| {name} | {args.connections:,} | {alive:,} | {before / 1024:.1f} | {held / 1024:.1f} "
          f"| **{per:,.0f} B** | {p50:.2f} | {p99:.2f} | {worst:.2f} |", flush=True)
    if args.waves > 1:
        print("|  | per connection, wave by wave: "
              + ", ".join(f"{w:,.0f} B" for w in waves) + " | | | | | | | |", flush=True)
    return per, p99


def summary(name, runs):
    """The median row of a server's runs, with the range of each figure."""
    if len(runs) < 2:
        return
    per = sorted(r[0] for r in runs)
    p99 = sorted(r[1] for r in runs)
    print(f"| {name}, median of {len(runs)} runs | | | | | **{statistics.median(per):,.0f} B** "
          f"({per[0]:,.0f} to {per[-1]:,.0f}) | | {statistics.median(p99):.2f} "
          f"({p99[0]:.2f} to {p99[-1]:.2f}) | |", flush=True)


def stop_nginx(srv):
    """Stops nginx and waits for its master to exit, so the next run can bind the port."""
    with open(srv.nginx_pid_file) as f:
        pid = int(f.read())
    srv.stop()
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    sys.exit(f"nginx (pid {pid}) did not stop within 30 s")


def alive_check(s):
    """Whether the server still holds the connection open: nothing to read, no FIN, no reset."""
    try:
        s.recv(1)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--settle", type=float, default=12.0,
                    help="seconds the connections idle before RSS is read (default 12: edgesign "
                         "parks an idle connection one to two seconds after its last answer)")
    ap.add_argument("--runs", type=int, default=3,
                    help="fresh starts of each server; every run is printed, then the median "
                         "(default 3)")
    ap.add_argument("--probes", type=int, default=500)
    ap.add_argument("--waves", type=int, default=1,
                    help="open the connections in this many waves, each followed by --settle "
                         "seconds, and report each wave's RSS per connection (a later wave "
                         "reuses what parked connections freed)")
    run.binary_args(ap)
    ap.add_argument("--only", choices=["edgesign", "nginx", "floor"], action="append")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 1000
    if hard < need:
        sys.exit(f"the hard file-descriptor limit is {hard}; {need} are needed (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if not args.no_build:
        run.build_release()
    only = set(args.only or ["edgesign", "nginx", "floor"])
    print(f"{args.connections:,} idle keep-alive connections, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} CPUs, RLIMIT_NOFILE {hard}")
    print("| server | held | still open | RSS before (MiB) | RSS held (MiB) | per connection "
          "| fresh p50 (ms) | p99 | max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as work:
        srv = run.Servers(work, args.binary, 1)
        if "edgesign" in only:
            name, runs = "edgesign `/healthz`", []
            for _ in range(args.runs):
                srv.start_edgesign(extra_server=f"max_connections = {need}\nidle_timeout = \"300s\"\n")
                try:
                    runs.append(measure(name, lambda: [srv.edgesign.pid], srv.edge, "/healthz", args))
                finally:
                    srv.stop_edgesign()
            summary(name, runs)
        if "nginx" in only:
            name, runs = "nginx `return 200`", []
            for _ in range(args.runs):
                srv.start_nginx(worker_connections=need)
                try:
                    runs.append(measure(name, run.nginx_workers, srv.peer, "/health", args))
                finally:
                    stop_nginx(srv)
            summary(name, runs)
        if "floor" in only:
            name, runs = "bare hyper, current-thread", []
            for _ in range(args.runs):
                port = run.free_port()
                floor = subprocess.Popen(
                    [os.path.join(os.path.dirname(args.binary), "examples", "hyper_floor"),
                     f"127.0.0.1:{port}", "http1", "none", "current"],
                    env={**os.environ, "FLOOR_WORKERS": "1"})
                try:
                    run.wait_port(port, floor)
                    runs.append(measure(name, lambda: [floor.pid], port, "/", args))
                finally:
                    floor.kill()
                    floor.wait()
            summary(name, runs)


if __name__ == "__main__":
    main()
