#!/usr/bin/env python3
"""secchat handshake costs.

1. Connector wall time (process start to exit, stdin /dev/null) against a
   -k listener with the default iteration count (no -i: 600000) and against
   one with -i 1000.  PBKDF2 is paid by the connector on every connect and by
   the listener once at start.
2. Listener CPU per accepted connection: a -k -i 1000 listener serves CONNS
   sequential connections; utime+stime plus cutime+cstime (the child that
   serves each connection, counted once reaped) from /proc/PID/stat before
   and after, divided by CONNS.  /proc/PID/schedstat (ns on CPU, of the
   listener process alone) is reported too as a finer-grained cross-check.
3. For reference, the wall time of "secchat -h" (exec, dynamic linking,
   exit: the floor under any connector time) and PBKDF2-HMAC-SHA256 of 600000 and 1000 iterations, 40
   bytes, in this Python (hashlib, OpenSSL).

Prints KEY VALUE lines (milliseconds); exit 1 on any error.
"""
import argparse
import hashlib
import os
import re
import signal
import statistics
import subprocess
import sys
import time


def log(msg):
    print("bench: handshake: " + msg, file=sys.stderr, flush=True)


def start_listener(args, extra, tag, out=None):
    """A -k listener, its stderr in TMP/hs-TAG.err, its stdout in out."""
    errfile = os.path.join(args.tmp, "hs-%s.err" % tag)
    ef = open(errfile, "wb")
    p = subprocess.Popen([args.secchat, "-l", "-k", "-v", "-q"] + extra +
                         ["-p", args.pf, "127.0.0.1", "0"],
                         stdin=subprocess.DEVNULL,
                         stdout=open(out, "wb") if out else subprocess.DEVNULL,
                         stderr=ef, start_new_session=True)
    ef.close()
    end = time.monotonic() + 60
    while time.monotonic() < end:
        with open(errfile, "rb") as f:
            m = re.search(rb"listening on \S+ port (\d+)", f.read(4096))
        if m:
            return p, int(m.group(1))
        if p.poll() is not None:
            raise RuntimeError("listener %s exited with status %d"
                               % (tag, p.returncode))
        time.sleep(0.005)
    stop(p)
    raise RuntimeError("listener %s not listening after 60 s" % tag)


def connect(args, port):
    t0 = time.perf_counter()
    r = subprocess.run([args.secchat, "-q", "-p", args.pf, "127.0.0.1",
                        str(port)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=args.timeout)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError("connector exited %d: %s"
                           % (r.returncode, r.stderr.decode(errors="replace")
                              .strip()))
    return dt


def stop(p):
    # the listener runs in its own session: end its whole process group
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    p.wait()


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # fields 14-17 of stat: utime stime cutime cstime; rest[0] is field 3
    return sum(int(x) for x in rest[11:15])


def sched_ns(pid):
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secchat", required=True)
    ap.add_argument("--pf", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    out = {}
    procs = []
    try:
        for tag, extra, runs in (("600000", [], args.runs),
                                 ("1000", ["-i", "1000"], 4 * args.runs + 1)):
            p, port = start_listener(args, extra, tag)
            procs.append(p)
            connect(args, port)          # warm-up, not counted
            ts = [connect(args, port) for _ in range(runs)]
            stop(p)
            out["connector_%s_ms" % tag] = statistics.median(ts) * 1e3
            log("connector, listener iterations %s: median %.2f ms of %d "
                "(min %.2f, max %.2f)" % (tag, statistics.median(ts) * 1e3,
                                          runs, min(ts) * 1e3, max(ts) * 1e3))

        hz = os.sysconf("SC_CLK_TCK")
        p, port = start_listener(args, ["-i", "1000"], "cpu")
        procs.append(p)
        c0, n0 = cpu_ticks(p.pid), sched_ns(p.pid)
        for _ in range(args.conns):
            connect(args, port)
        # let the listener finish with the last connection (it then sleeps
        # in poll/accept and its counters stop moving)
        time.sleep(0.3)
        if p.poll() is not None:
            raise RuntimeError("-k listener exited with status %d"
                               % p.returncode)
        c1, n1 = cpu_ticks(p.pid), sched_ns(p.pid)
        stop(p)
        out["listener_cpu_ms"] = (c1 - c0) / hz * 1e3 / args.conns
        out["listener_sched_ms"] = (n1 - n0) / 1e6 / args.conns
        log("listener: %d connections, %d ticks (CLK_TCK %d) = %.3f ms each;"
            " schedstat %.3f ms each" % (args.conns, c1 - c0, hz,
                                         out["listener_cpu_ms"],
                                         out["listener_sched_ms"]))

        # process start and exit alone, for scale: "secchat -h"
        ts = []
        for _ in range(21):
            t0 = time.perf_counter()
            subprocess.run([args.secchat, "-h"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=args.timeout)
            ts.append(time.perf_counter() - t0)
        out["exec_ms"] = statistics.median(ts) * 1e3

        for it in (600000, 1000):
            ts = []
            for _ in range(3):
                t0 = time.perf_counter()
                hashlib.pbkdf2_hmac("sha256", b"x" * 32, b"s" * 16, it, 40)
                ts.append(time.perf_counter() - t0)
            out["pbkdf2_%d_ms" % it] = statistics.median(ts) * 1e3
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        log("ERROR: %s" % e)
        for p in procs:
            stop(p)
        return 1
    for k, v in out.items():
        print("%s %.4f" % (k, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
