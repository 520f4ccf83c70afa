#!/usr/bin/env python3
"""secchat serving many at once: a -k listener and CONNS concurrent senders.

1. Handshakes: CONNS connectors (stdin /dev/null) started at once against a
   -k -m CONNS+ -i 1000 listener; handshakes per second from the first
   start to the last "handshake done" in the listener's log; the listener
   process's own CPU (accept, fork, merging) per connection, and its
   children's (the handshake and the session, counted when reaped).
2. Lines: CONNS line-mode connectors at once, each sending LINES lines of
   100 bytes; aggregate lines per second from the first start to the last
   line on the listener's stdout (every line checked whole), and peak
   memory, sampled every 20 ms: the largest RSS and PSS (shared pages
   split among the processes sharing them) of one child, and the peak of
   the listener's RSS plus all its children's PSS.
The connectors run on the same machine and take most of its CPU.
Prints KEY VALUE lines; exit 1 on any error.
"""
import argparse
import os
import re
import subprocess
import sys
import time

from hs import start_listener, stop


def log(msg):
    print("bench: many: " + msg, file=sys.stderr, flush=True)


def stat_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return [int(x) for x in rest[11:15]]    # utime stime cutime cstime


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def mem_kb(pid, key):
    try:
        with open("/proc/%d/%s" % (pid, "smaps_rollup" if key == "Pss"
                                   else "status")) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def count(path, pat):
    with open(path, "rb") as f:
        return f.read().count(pat)


def run_all(args, port, stdin_path, n):
    procs = []
    for _ in range(n):
        procs.append(subprocess.Popen(
            [args.secchat, "-q", "-p", args.pf, "127.0.0.1", str(port)],
            stdin=open(stdin_path, "rb"), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE))
    return procs


def reap(procs, timeout):
    end = time.monotonic() + timeout
    for p in procs:
        try:
            _, e = p.communicate(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            raise RuntimeError("a connector took longer than %d s" % timeout)
        if p.returncode != 0:
            raise RuntimeError("connector exited %d: %s" % (
                p.returncode, e.decode(errors="replace").strip()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secchat", required=True)
    ap.add_argument("--pf", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--lines", type=int, default=5000)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    out = os.path.join(args.tmp, "many.out")
    err = os.path.join(args.tmp, "hs-many.err")     # start_listener's
    lines = os.path.join(args.tmp, "many.lines")
    with open(lines, "wb") as f:
        for i in range(args.lines):
            f.write(b"%09d %s\n" % (i, b"x" * 89))
    hz = os.sysconf("SC_CLK_TCK")
    res = {}
    p = None
    try:
        p, port = start_listener(args, ["-i", "1000", "-m",
                                        str(args.conns + 8)], "many", out)
        # 1. handshakes
        t0 = stat_ticks(p.pid)
        start = time.monotonic()
        procs = run_all(args, port, os.devnull, args.conns)
        end = start + args.timeout
        while count(err, b": handshake done\n") < args.conns:
            if time.monotonic() > end:
                raise RuntimeError("not all handshakes done in time")
            time.sleep(0.002)
        hs_secs = time.monotonic() - start
        reap(procs, args.timeout)
        time.sleep(0.3)         # the listener reaps the last children
        t1 = stat_ticks(p.pid)
        res["handshakes_per_s"] = args.conns / hs_secs
        res["parent_cpu_ms"] = (t1[0] + t1[1] - t0[0] - t0[1]) / hz * 1e3 \
            / args.conns
        res["child_cpu_ms"] = (t1[2] + t1[3] - t0[2] - t0[3]) / hz * 1e3 \
            / args.conns
        log("%d handshakes in %.2f s; CPU per connection: listener %.3f ms,"
            " its child %.3f ms" % (args.conns, hs_secs, res["parent_cpu_ms"],
                                    res["child_cpu_ms"]))
        # 2. lines
        want = args.conns * args.lines
        peak_rss = peak_pss = peak_total = 0
        start = time.monotonic()
        procs = run_all(args, port, lines, args.conns)
        end = start + args.timeout
        while True:
            kids = children(p.pid)
            pss = [mem_kb(k, "Pss") for k in kids]
            rss = [mem_kb(k, "VmRSS") for k in kids]
            peak_rss = max([peak_rss] + rss)
            peak_pss = max([peak_pss] + pss)
            peak_total = max(peak_total, mem_kb(p.pid, "VmRSS") + sum(pss))
            if count(out, b"\n") >= want:
                break
            if time.monotonic() > end:
                raise RuntimeError("not all lines arrived in time")
            time.sleep(0.02)
        secs = time.monotonic() - start
        reap(procs, args.timeout)
        bad = 0
        pat = re.compile(rb"^[0-9]{9} x{89}$")
        with open(out, "rb") as f:
            for line in f:
                bad += not pat.match(line.rstrip(b"\n"))
        if bad:
            raise RuntimeError("%d lines not whole" % bad)
        res["lines_per_s"] = want / secs
        res["child_rss_mib"] = peak_rss / 1024
        res["child_pss_mib"] = peak_pss / 1024
        res["total_mib"] = peak_total / 1024
        log("%d lines from %d senders in %.2f s; peak child RSS %.2f MiB, "
            "PSS %.2f MiB, total %.1f MiB" % (want, args.conns, secs,
                                              res["child_rss_mib"],
                                              res["child_pss_mib"],
                                              res["total_mib"]))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        log("ERROR: %s" % e)
        return 1
    finally:
        if p is not None:
            stop(p)
    for k, v in res.items():
        print("%s %.4f" % (k, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
