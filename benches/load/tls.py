#!/usr/bin/env python3
"""TLS against nginx with the same certificate: `python3 benches/load/tls.py`.

For an ECDSA P-256 and an RSA-2048 leaf (self-signed for 127.0.0.1, made with the openssl
CLI), edgesign (`server.tls_listen`) and nginx (`ssl_session_tickets on`) are measured side
by side, pinned as run.py pins (the clients on the first CPU, the servers on the others,
one worker each), --pairs interleaved runs of --duration seconds:
- full handshakes: --clients parallel `openssl s_time -new` (a new session every time);
- resumed handshakes: the same with `-reuse -www /` (TLS 1.3 tickets: each connection
  resumes the session the first one got; the share that did resume is printed);
- redirects over keep-alive TLS: `wrk -t1 -c64` on edgesign's cache-hit redirect against
  nginx's `return 302` with a Location as long.
Every figure is also given per server-CPU second (user + system time of the server's
processes, from /proc), since a client on one CPU may not saturate the server: that is the
ratio the targets are set on. Needs nginx, wrk and openssl.
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

NGINX_CONF = """worker_processes {workers};
error_log logs/error.log warn;
pid logs/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets on;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 1h;
{servers}
}}
"""

SERVER = """    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ return 302 "{location}"; }}
    }}
"""


def make_cert(work, kind):
    key, cert = os.path.join(work, f"{kind}.key"), os.path.join(work, f"{kind}.crt")
    algo = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ecdsa"
            else ["-newkey", "rsa:2048"])
    subprocess.run(["openssl", "req", "-x509", "-nodes", *algo, "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def s_time(port, duration, clients, reuse):
    """`clients` parallel `openssl s_time` runs: connections made, and how many resumed."""
    cmd = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-time", str(duration)]
    cmd += ["-reuse", "-www", "/"] if reuse else ["-new"]
    procs = [subprocess.Popen(run.pinned(cmd, "load"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True) for _ in range(clients)]
    total = resumed = 0
    for p in procs:
        out = p.communicate()[0]
        m = re.search(r"(\d+) connections in [\d.]+s", out)
        total += int(m.group(1)) if m else 0
        if reuse:
            # s_time prints one character per connection: 'r' when the session was reused.
            marks = "".join(line for line in out.splitlines() if re.fullmatch(r"[r*.]+", line.strip()))
            resumed += marks.count("r")
    return total, resumed


def measured(pids, work):
    """Runs `work()`; returns its result, the wall seconds and the server CPU seconds."""
    u0, s0 = run.cpu_ticks(pids)
    t0 = time.time()
    out = work()
    took = time.time() - t0
    u1, s1 = run.cpu_ticks(pids)
    return out, took, ((u1 - u0) + (s1 - s0)) / 100


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=5, help="seconds per run (default 5)")
    ap.add_argument("--pairs", type=int, default=3, help="interleaved runs per side (default 3)")
    ap.add_argument("--clients", type=int, default=4, help="parallel openssl s_time clients (default 4)")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    run.binary_args(ap)
    args = ap.parse_args()
    workers = run.pin_cpus()
    for tool in ("nginx", "wrk", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install -y nginx wrk openssl")
    if not args.no_build:
        run.build_release()
    work = tempfile.mkdtemp(prefix="edgesign-tls-")
    os.chmod(work, 0o755)
    edges, nginx_pid_file = {}, None
    try:
        certs = {kind: make_cert(work, kind) for kind in ("ecdsa", "rsa")}
        location = None
        for kind, (cert, key) in certs.items():
            d = os.path.join(work, kind)
            os.makedirs(d)
            srv = run.Servers(d, args.binary, workers)
            tls_port = run.free_port()
            srv.start_edgesign(extra_server=f'tls_listen = "127.0.0.1:{tls_port}"\n'
                                            f'tls_cert = "{cert}"\ntls_key = "{key}"\n')
            edges[kind] = (srv, tls_port)
            if location is None:
                _, h = run.fetch(f"http://127.0.0.1:{srv.edge}/r/small.txt")
                location = h["location"]
        prefix = os.path.join(work, "nginx")
        for sub in ("logs", "tmp"):
            os.makedirs(os.path.join(prefix, sub))
        nginx_ports = {kind: run.free_port() for kind in certs}
        conf = NGINX_CONF.format(workers=workers, servers="".join(
            SERVER.format(port=nginx_ports[k], cert=c, key=key, location=location)
            for k, (c, key) in certs.items()))
        path = os.path.join(prefix, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        subprocess.run(run.pinned(["nginx", "-p", prefix + "/", "-c", path], "server"), check=True)
        nginx_pid_file = os.path.join(prefix, "logs", "nginx.pid")
        for port in nginx_ports.values():
            run.wait_port(port)
        for _, port in edges.values():
            run.wait_port(port)
        nginx_pids = run.nginx_workers()

        print(f"# TLS vs nginx, same certificate: {args.duration}s runs, {args.pairs} interleaved "
              f"pairs; {args.clients} s_time clients; wrk -t1 -c{args.connections}; "
              f"{os.cpu_count()} CPUs, {workers} worker(s) each; {run.pin_note('clients')}; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"{subprocess.run(['openssl', 'version'], capture_output=True, text=True).stdout.strip()}")
        rows = []
        for kind in certs:
            srv, eport = edges[kind]
            sides = {"edgesign": (eport, [srv.edgesign.pid], "/r/small.txt"),
                     "nginx": (nginx_ports[kind], nginx_pids, "/r/small.txt")}
            for what in ("full handshakes", "resumed handshakes", "keep-alive redirects"):
                runs = {side: [] for side in sides}
                for _ in range(args.pairs):
                    for side, (port, pids, path_) in sides.items():
                        if what == "keep-alive redirects":
                            r, took, cpu = measured(pids, lambda: run.wrk(
                                f"https://127.0.0.1:{port}{path_}", args.duration, args.connections))
                            count, note = r["rps"] * args.duration, r["errors"]
                        else:
                            (count, resumed), took, cpu = measured(pids, lambda: s_time(
                                port, args.duration, args.clients, what.startswith("resumed")))
                            note = f"{resumed / max(count, 1):.0%} resumed" if what.startswith("resumed") else ""
                        runs[side].append({"rate": count / took, "per_cpu": count / max(cpu, 0.01),
                                           "cpu": cpu / took, "note": note})
                e, n = runs["edgesign"], runs["nginx"]
                rows.append((kind, what, e, n,
                             statistics.median(a["per_cpu"] / b["per_cpu"] for a, b in zip(e, n)),
                             statistics.median(a["rate"] / b["rate"] for a, b in zip(e, n))))
        print(f"\n{'leaf':6} {'what':22} {'edgesign /s':>12} {'per CPU-s':>10} {'nginx /s':>10} "
              f"{'per CPU-s':>10} {'ratio/CPU-s':>11} {'ratio/s':>8}  notes")
        for kind, what, e, n, per_cpu, per_s in rows:
            def med(rs, k):
                return statistics.median(r[k] for r in rs)
            notes = f"server CPU busy: edgesign {med(e, 'cpu'):.0%}, nginx {med(n, 'cpu'):.0%}"
            if what.startswith("resumed"):
                notes += f"; edgesign {e[-1]['note']}, nginx {n[-1]['note']}"
            if what.startswith("keep-alive"):
                notes += f"; errors {sum(r['note'] for r in e + n)}"
            print(f"{kind:6} {what:22} {med(e, 'rate'):>12,.0f} {med(e, 'per_cpu'):>10,.0f} "
                  f"{med(n, 'rate'):>10,.0f} {med(n, 'per_cpu'):>10,.0f} {per_cpu:>10.2f}x "
                  f"{per_s:>7.2f}x  {notes}")
        print("\nraw per server-CPU second (edgesign | nginx):")
        for kind, what, e, n, _, _ in rows:
            print(f"  {kind} {what}: {' '.join(run.fmt_rate(r['per_cpu']) for r in e)} | "
                  f"{' '.join(run.fmt_rate(r['per_cpu']) for r in n)}")
    finally:
        for srv, _ in edges.values():
            srv.stop_edgesign()
        if nginx_pid_file:
            try:
                with open(nginx_pid_file) as f:
                    os.kill(int(f.read()), 15)
            except (OSError, ValueError):
                pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
