#!/usr/bin/env python3
"""Interactive round-trip latency through secchat and through plain nc.

Far side: a listener whose stdout is a pipe into its own stdin, so every
line it receives goes straight back to the sender (an echo).  Near side: a
connector whose stdin and stdout this script holds.  One exchange = write
one 100-byte line to the near side's stdin, read until the same line has
come back on its stdout; perf_counter() around that.  Tools alternate
(nc, secchat, nc, secchat, ...) so drift hits both alike.

With --cpu N this script and every process it starts are pinned to CPU N.
On a small VM the free-running figure depends mostly on where the
scheduler puts the four processes (a wakeup on the other vCPU costs tens
of microseconds, and the placement changes from session to session);
pinned to one CPU the figure is steady and shows what the tool itself
adds per exchange.

Prints one line per tool:  TOOL MEDIAN_US P99_US SAMPLES
Exit status 0 on success, 1 on any error (wrong echo, timeout, tool failure).
"""
import argparse
import base64
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import time


def log(msg):
    print("bench: rtt: " + msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listening(port):
    """True if something listens on 127.0.0.1:port (from /proc/net/tcp)."""
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                return True
    return False


def wait_until(pred, proc, what, limit=15.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        if proc.poll() is not None:
            raise RuntimeError("%s exited (status %s) before listening"
                               % (what, proc.returncode))
        time.sleep(0.005)
    raise RuntimeError("%s not listening after %.0f s" % (what, limit))


def port_from_file(path):
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("ascii", "replace")
    except FileNotFoundError:
        return None
    m = re.search(r"listening on \S+ port (\d+)", head)
    return int(m.group(1)) if m else None


def kill(procs):
    # each runs in its own session: end its whole process group
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def session(tool, args, n, warmup):
    """One far/near pair, warmup + n exchanges; returns n RTTs in seconds."""
    errfile = os.path.join(args.tmp, "rtt-%s.far.err" % tool)
    nearerr = os.path.join(args.tmp, "rtt-%s.near.err" % tool)
    r, w = os.pipe()
    procs = []
    try:
        with open(errfile, "wb") as ef, open(nearerr, "wb") as ne:
            if tool == "secchat":
                far_cmd = [args.secchat, "-l", "-v", "-q", "-i", "1000",
                           "-p", args.pf, "127.0.0.1", "0"]
            else:
                port = free_port()
                far_cmd = ["nc", "-l", "127.0.0.1", str(port)]
            far = subprocess.Popen(far_cmd, stdin=r, stdout=w, stderr=ef,
                                   start_new_session=True)
            procs.append(far)
            os.close(r)
            os.close(w)
            r = w = -1
            if tool == "secchat":
                port = wait_until(lambda: port_from_file(errfile), far,
                                  "secchat listener")
                near_cmd = [args.secchat, "-q", "-i", "1000", "-p", args.pf,
                            "127.0.0.1", str(port)]
            else:
                wait_until(lambda: listening(port), far, "nc listener")
                near_cmd = ["nc", "127.0.0.1", str(port)]
            near = subprocess.Popen(near_cmd, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=ne,
                                    bufsize=0, start_new_session=True)
            procs.append(near)
            wfd = near.stdin.fileno()
            rfd = near.stdout.fileno()
            samples = []
            for i in range(warmup + n):
                line = base64.b64encode(os.urandom(75))[:99] + b"\n"
                t0 = time.perf_counter()
                os.write(wfd, line)
                got = b""
                while len(got) < len(line):
                    ready, _, _ = select.select([rfd], [], [], args.timeout)
                    if not ready:
                        raise RuntimeError("%s: no echo within %.0f s "
                                           "(exchange %d)"
                                           % (tool, args.timeout, i))
                    chunk = os.read(rfd, 65536)
                    if not chunk:
                        raise RuntimeError("%s: near side closed stdout "
                                           "(exchange %d)" % (tool, i))
                    got += chunk
                t1 = time.perf_counter()
                if got != line:
                    raise RuntimeError("%s: echo differs from what was sent "
                                       "(exchange %d)" % (tool, i))
                if i >= warmup:
                    samples.append(t1 - t0)
            return samples
    finally:
        if r >= 0:
            os.close(r)
        if w >= 0:
            os.close(w)
        # The far side's stdin is its own stdout, so it never sees the end
        # of its input and never closes: end both sides here.
        kill(procs)


def p99(xs):
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secchat", required=True)
    ap.add_argument("--pf", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--cpu", type=int, default=-1,
                    help="pin this script and its children to this CPU")
    args = ap.parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})

    results = {"nc": [], "secchat": []}
    try:
        for run in range(args.runs):
            for tool in ("nc", "secchat"):
                s = session(tool, args, args.n, args.warmup)
                log("%srun %d %-7s median %.1f us, p99 %.1f us"
                    % ("cpu %d: " % args.cpu if args.cpu >= 0 else "",
                       run + 1, tool, statistics.median(s) * 1e6,
                       p99(s) * 1e6))
                results[tool].extend(s)
    except (RuntimeError, OSError) as e:
        log("ERROR: %s" % e)
        return 1
    for tool in ("nc", "secchat"):
        s = results[tool]
        print("%s %.1f %.1f %d" % (tool, statistics.median(s) * 1e6,
                                   p99(s) * 1e6, len(s)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
