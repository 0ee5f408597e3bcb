#!/usr/bin/env python3
"""edgesign vs nginx (+ njs), side by side in one run: `python3 benches/load/run.py`.

Starts nginx (a static origin plus the peer: plain 302, njs re-sign + 302, njs re-sign +
stream) and the release edgesign binary. Drives each with wrk, edgesign and peer interleaved
(A B A B ..., 5 pairs by default), and prints medians and ratios (the median of the pairs'
own ratios). Needs nginx, libnginx-mod-http-js and wrk
(`apt-get install -y nginx libnginx-mod-http-js wrk`). Every server listens on 127.0.0.1 only,
and every run is bounded by --duration.

With two or more CPUs the load generator gets CPU 0 and the servers the rest (taskset), and
each server runs one worker per server CPU, so what is measured is the server and not its
fight with wrk for a core. --no-pin shares every CPU between them instead.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


# (wrk's CPUs, the servers' CPUs) for taskset, or None when not pinning.
PIN = None


def pinned(cmd, side):
    """`cmd` run on the CPUs of `side` ("load" or "server") when pinning."""
    if PIN is None:
        return cmd
    return ["taskset", "-c", PIN[0] if side == "load" else PIN[1]] + cmd


def pin_cpus(no_pin=False):
    """Sets PIN (the load generator on the first CPU, the servers on the rest) unless
    `no_pin` or there is one CPU; returns the worker count each server gets."""
    global PIN
    cpus = sorted(os.sched_getaffinity(0))
    if not no_pin and len(cpus) >= 2 and shutil.which("taskset"):
        PIN = (str(cpus[0]), ",".join(str(c) for c in cpus[1:]))
    return len(cpus) - 1 if PIN else len(cpus)


def binary_args(ap):
    """--binary (default: the release build) and --no-build, which every harness takes."""
    ap.add_argument("--binary", default=os.path.join(REPO, "target", "release", "edgesign"))
    ap.add_argument("--no-build", action="store_true", help="use --binary as it is")


def pin_note(tool):
    return f"{tool} on CPU {PIN[0]}, servers on CPU {PIN[1]}" if PIN else "not pinned"


def build_release():
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "--quiet", "--bins", "--example", "hyper_floor"],
        cwd=REPO,
        check=True,
    )


def start_floor(binary, location, workers, proto="http1", layout="current"):
    """A bare hyper server answering a fixed 302 with `location` (examples/hyper_floor, next
    to `binary`): returns its URL and process. `layout`: "current" (a current-thread runtime
    per core, SO_REUSEPORT) or "multi" (edgesign's work-stealing layout)."""
    port = free_port()
    proc = subprocess.Popen(
        pinned([os.path.join(os.path.dirname(binary), "examples", "hyper_floor"),
                f"127.0.0.1:{port}", proto, "timer", layout], "server"),
        stdout=subprocess.DEVNULL,
        env={**os.environ, "FLOOR_WORKERS": str(workers), "FLOOR_LOCATION": location},
    )
    wait_port(port, proc)
    return f"http://127.0.0.1:{port}/", proc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"process exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url):
    """(status, headers) without following redirects."""
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=10) as r:
            r.read()
            return r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}


UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def wrk(url, duration, connections, script=None, env=None):
    """Runs wrk; returns requests/s, bytes/s, p50 and p99 latency (s), and errors."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url]
    if script:
        cmd[1:1] = ["-s", script]
    cmd = pinned(cmd, "load")
    out = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    bps = float(m.group(1)) * SIZES[m.group(2)]
    pct = {
        p: float(v) * UNITS[u]
        for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return {"rps": rps, "bps": bps, "p50": pct.get("50"), "p99": pct.get("99"), "errors": errors}


def cpu_ticks(pids):
    """User and system CPU ticks (1/100 s) used so far by `pids`."""
    user = system = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        user, system = user + int(fields[11]), system + int(fields[12])
    return user, system


def nginx_workers():
    out = subprocess.run(["pgrep", "-f", "nginx: worker"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Servers:
    def __init__(self, work, binary, workers):
        self.work = work
        self.workers = workers
        self.data = os.path.join(work, "data")
        os.makedirs(os.path.join(self.data, "bench"), exist_ok=True)
        self.fast, self.peer, self.edge = free_port(), free_port(), free_port()
        self.binary = binary
        self.nginx = None
        self.edgesign = None

    def start_nginx(self, worker_connections=4096):
        prefix = os.path.join(self.work, "nginx")
        for d in ("logs", "tmp"):
            os.makedirs(os.path.join(prefix, d), exist_ok=True)
        with open(os.path.join(HERE, "nginx.conf.in")) as f:
            conf = f.read()
        for k, v in {
            "@FAST@": self.fast,
            "@PEER@": self.peer,
            "@DATA@": self.data,
            "@JS@": os.path.join(HERE, "s3sign.js"),
            "@WORKERS@": self.workers,
            "@WORKER_CONNECTIONS@": worker_connections,
        }.items():
            conf = conf.replace(k, str(v))
        path = os.path.join(prefix, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        subprocess.run(pinned(["nginx", "-p", prefix + "/", "-c", path], "server"), check=True)
        self.nginx_pid_file = os.path.join(prefix, "logs", "nginx.pid")
        wait_port(self.peer)
        wait_port(self.fast)

    def start_edgesign(self, extra_server="", extra_cache="", bucket="15m", ttl="1h"):
        pem = os.path.join(REPO, "tests", "vectors", "cloudfront_test_key.pem")
        conf = f"""[server]
listen = "127.0.0.1:{self.edge}"
public_url = "http://127.0.0.1:{self.edge}"
workers = {self.workers}
{extra_server}[cache]
bucket = "{bucket}"
{extra_cache}[rate_limit]
per_second = 100000000
burst = 100000000
[[origins]]
name = "fast"
kind = "s3"
endpoint = "http://127.0.0.1:{self.fast}"
region = "us-east-1"
bucket = "bench"
path_style = true
ttl = "{ttl}"
[[origins.keys]]
access_key_id = "AKIAIOSFODNN7EXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
[[origins]]
name = "cdn"
kind = "cloudfront"
domain = "d111111abcdef8.cloudfront.net"
ttl = "{ttl}"
[[origins.keys]]
key_pair_id = "K2JCJMDEHXQW5F"
private_key_file = "{pem}"
[[routes]]
prefix = "/r/"
origin = "fast"
mode = "redirect"
access = "public"
[[routes]]
prefix = "/s/"
origin = "fast"
mode = "stream"
access = "public"
[[routes]]
prefix = "/cf/"
origin = "cdn"
mode = "redirect"
access = "public"
"""
        path = os.path.join(self.work, "edgesign.toml")
        with open(path, "w") as f:
            f.write(conf)
        # nginx runs with access_log off; edgesign's access log is off too (RUST_LOG=warn).
        env = {**os.environ, "RUST_LOG": os.environ.get("EDGESIGN_BENCH_LOG", "warn")}
        self.edgesign = subprocess.Popen(
            pinned([self.binary, "--config", path], "server"),
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.work, "edgesign.log"), "w"),
            env=env,
        )
        wait_port(self.edge, self.edgesign)

    def restart_edgesign(self):
        self.stop_edgesign()
        self.start_edgesign()

    def stop_edgesign(self):
        if self.edgesign:
            self.edgesign.send_signal(signal.SIGTERM)
            self.edgesign.wait(timeout=60)
            self.edgesign = None

    def stop(self):
        self.stop_edgesign()
        try:
            with open(self.nginx_pid_file) as f:
                os.kill(int(f.read()), signal.SIGQUIT)
        except (OSError, ValueError, AttributeError):
            pass


def median(runs, key):
    return statistics.median(r[key] for r in runs)


def pairs(n, a, b):
    """Interleaves: A B A B … (n pairs)."""
    ra, rb = [], []
    for _ in range(n):
        ra.append(a())
        rb.append(b())
    return ra, rb


def fmt_rate(v):
    return f"{v:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--pairs", type=int, default=5, help="A/B pairs per comparison (default 5)")
    ap.add_argument("--connections", type=int, default=64, help="redirect connections (default 64)")
    ap.add_argument("--stream-connections", type=int, default=16)
    ap.add_argument("--workers", type=int, default=None,
                    help="worker threads for edgesign, nginx and the hyper floor alike "
                         "(default: the servers' CPUs)")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin: wrk and the servers share every CPU")
    ap.add_argument("--cold-rsa-duration", type=int, default=25,
                    help="seconds per CloudFront RSA cold run: long enough for 10 000 keys")
    binary_args(ap)
    args = ap.parse_args()
    workers = pin_cpus(args.no_pin)
    if args.workers is None:
        args.workers = workers
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install -y nginx libnginx-mod-http-js wrk")
    if not os.path.exists("/usr/lib/nginx/modules/ngx_http_js_module.so"):
        sys.exit("njs is missing: apt-get install -y libnginx-mod-http-js")
    if not args.no_build:
        build_release()

    work = tempfile.mkdtemp(prefix="edgesign-load-")
    os.chmod(work, 0o755)  # nginx workers drop privileges and must read the data
    srv = Servers(work, args.binary, args.workers)
    mib = bytes((i * 31) % 251 for i in range(1 << 20))
    with open(os.path.join(srv.data, "bench", "obj-1mib.bin"), "wb") as f:
        f.write(mib)
    with open(os.path.join(srv.data, "bench", "small.txt"), "w") as f:
        f.write("small\n")
    # 1 GiB, sparse: the origin reads zeros from the page cache, the proxy streams them.
    with open(os.path.join(srv.data, "bench", "obj-1gib.bin"), "wb") as f:
        f.truncate(1 << 30)
    srv.start_nginx()
    srv.start_edgesign()
    # Two floors: edgesign's own runtime layout (work-stealing) and the fastest one for a
    # constant answer (a current-thread runtime per core, SO_REUSEPORT listeners). Both write
    # edgesign's own Location, byte for byte as long.
    _, h = fetch(f"http://127.0.0.1:{srv.edge}/r/small.txt")
    floors = {}
    try:
        for layout in ("multi", "current"):
            floors[layout] = start_floor(args.binary, h["location"], args.workers, layout=layout)
        run(args, srv, floors)
    finally:
        for _, proc in floors.values():
            proc.kill()
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)


def run(args, srv, floors):
    floor_url, floor_pid = floors["multi"][0], floors["multi"][1].pid
    current_url, current_pid = floors["current"][0], floors["current"][1].pid
    d, n, c = args.duration, args.pairs, args.connections
    edge = f"http://127.0.0.1:{srv.edge}"
    peer = f"http://127.0.0.1:{srv.peer}"
    # Sanity: both sides answer what they claim, and sign the same kind of URL.
    s, h = fetch(f"{edge}/r/small.txt")
    assert s == 302 and "X-Amz-Signature=" in h["location"], (s, h)
    s, h = fetch(f"{peer}/njs-redirect/small.txt")
    assert s == 302 and "X-Amz-Signature=" in h["location"], (s, h)
    with urllib.request.urlopen(h["location"]) as r:
        assert r.read() == b"small\n"
    with urllib.request.urlopen(f"{edge}/s/obj-1mib.bin") as r:
        assert len(r.read()) == 1 << 20
    with urllib.request.urlopen(f"{peer}/njs-stream/obj-1mib.bin") as r:
        assert len(r.read()) == 1 << 20

    print(f"# edgesign load harness: {d}s runs, {n} A/B pairs, wrk -t1; {os.cpu_count()} CPUs, "
          f"{args.workers} worker(s) each for edgesign, nginx and the floor; "
          f"{pin_note('wrk')}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    rows = []

    def compare(name, a_url, b_url, conns, key, better_high=True, script=None, env_a=None, env_b=None):
        ra, rb = pairs(
            n,
            lambda: wrk(a_url, d, conns, script, env_a() if env_a else None),
            lambda: wrk(b_url, d, conns, script, env_b() if env_b else None),
        )
        errors = sum(r["errors"] for r in ra + rb)
        ma, mb = median(ra, key), median(rb, key)
        # The ratio is the median of the pairs' own ratios: a pair runs back to back, so a
        # slow spell of the shared machine lands on both of its sides.
        ratio = statistics.median(
            (x[key] / y[key]) if better_high else (y[key] / x[key]) for x, y in zip(ra, rb)
        )
        rows.append((name, key, ma, mb, ratio, errors, ra, rb))
        return ra, rb

    # 1. Redirect on a cache hit (one URL, warmed) vs nginx plain 302 and nginx + njs 302.
    fetch(f"{edge}/r/small.txt")
    compare("redirect (cache hit) vs nginx plain 302", f"{edge}/r/small.txt",
            f"{peer}/plain/small.txt", c, "rps")
    ra, rb = compare("redirect (cache hit) vs nginx+njs 302", f"{edge}/r/small.txt",
                     f"{peer}/njs-redirect/small.txt", c, "rps")
    compare("redirect (cache hit) vs bare hyper 302 (floor)", f"{edge}/r/small.txt",
            floor_url, c, "rps")
    compare("redirect (cache hit) vs current-thread hyper 302 (floor)", f"{edge}/r/small.txt",
            current_url, c, "rps")
    compare("current-thread floor vs nginx plain 302", current_url,
            f"{peer}/plain/small.txt", c, "rps")
    rows.insert(2, (f"p99 latency at {c} connections, redirect vs nginx+njs", "p99",
                    median(ra, "p99"), median(rb, "p99"),
                    statistics.median(y["p99"] / x["p99"] for x, y in zip(ra, rb)), 0, ra, rb))
    # 2. Stream 1 MiB objects from the static origin.
    compare("stream 1 MiB vs nginx+njs re-sign + stream (MB/s)", f"{edge}/s/obj-1mib.bin",
            f"{peer}/njs-stream/obj-1mib.bin", args.stream_connections, "bps")
    # 3. Cold misses: every request a key never signed before.
    script = os.path.join(HERE, "distinct.lua")
    counter = iter(range(10**9))
    compare("cold misses, SigV4 (distinct keys) vs nginx+njs", edge, peer, c, "rps", script=script,
            env_a=lambda: {"KEY_PREFIX": f"/r/cold/{next(counter)}-"},
            env_b=lambda: {"KEY_PREFIX": f"/njs-redirect/cold/{next(counter)}-"})
    cf = [wrk(edge, args.cold_rsa_duration, c, script, {"KEY_PREFIX": f"/cf/cold/{i}-"})
          for i in range(n)]

    print()
    print(f"{'comparison':58} {'edgesign':>12} {'peer':>12} {'ratio':>7} {'errors':>6}")
    for name, key, ma, mb, ratio, errors, _, _ in rows:
        unit = {"rps": "req/s", "bps": "MB/s", "p99": "ms"}[key]
        scale = {"rps": 1, "bps": 1 / 1e6, "p99": 1e3}[key]
        print(f"{name:58} {ma * scale:>12,.2f} {mb * scale:>12,.2f} {ratio:>6.2f}x {errors:>6}  ({unit})")
    cf_rps = median(cf, "rps")
    print(f"{'cold misses, CloudFront RSA-2048 (distinct keys)':58} {cf_rps:>12,.2f} {'-':>12} "
          f"{'':>7} {sum(r['errors'] for r in cf):>6}  (req/s; "
          f"{min(r['rps'] for r in cf) * args.cold_rsa_duration:,.0f}+ distinct keys per run)")
    sig_runs = rows[-1][6]
    print(f"  (SigV4 cold runs signed {min(r['rps'] for r in sig_runs) * d:,.0f}+ distinct keys each)")

    # 4. Where the time goes: CPU per request of each server (the profile behind the ratios).
    print()
    print(f"CPU per request at {c} connections (user + system microseconds; from /proc, one run each):")
    for name, pids, url in [
        ("edgesign redirect (cache hit)", [srv.edgesign.pid], f"{edge}/r/small.txt"),
        ("edgesign /healthz (server shell only)", [srv.edgesign.pid], f"{edge}/healthz"),
        ("bare hyper 302 (floor)", [floor_pid], floor_url),
        ("current-thread hyper 302 (floor)", [current_pid], current_url),
        ("nginx plain 302", nginx_workers(), f"{peer}/plain/small.txt"),
        ("nginx + njs re-sign + 302", nginx_workers(), f"{peer}/njs-redirect/small.txt"),
    ]:
        u0, s0 = cpu_ticks(pids)
        r = wrk(url, d, c)
        u1, s1 = cpu_ticks(pids)
        total = r["rps"] * d
        print(f"  {name:40} {r['rps']:>10,.0f} req/s   user {(u1 - u0) * 1e4 / total:5.2f}   "
              f"system {(s1 - s0) * 1e4 / total:5.2f}")

    # 5. Resident memory growth while one client streams one 1 GiB object.
    srv.restart_edgesign()
    pid = srv.edgesign.pid
    fetch(f"{edge}/r/small.txt")
    before = rss_kib(pid)
    t0 = time.time()
    got = 0
    with urllib.request.urlopen(f"{edge}/s/obj-1gib.bin") as r:
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    took = time.time() - t0
    peak = rss_kib(pid, "VmHWM")
    assert got == 1 << 30, got
    print(f"{'1 GiB stream: resident memory growth (peak - before)':58} "
          f"{(peak - before) / 1024:>10.1f} MiB  ({before / 1024:.1f} -> {peak / 1024:.1f} MiB, "
          f"{got / took / 1e6:,.0f} MB/s)")
    print()
    print("raw runs (edgesign | peer):")
    for name, key, _, _, _, _, ra, rb in rows:
        fmt = (lambda r: f"{r[key] * 1e3:.2f}ms") if key == "p99" else (lambda r: fmt_rate(r[key]))
        print(f"  {name}: {' '.join(fmt(r) for r in ra)} | {' '.join(fmt(r) for r in rb)}")


if __name__ == "__main__":
    main()
