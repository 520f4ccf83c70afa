#!/usr/bin/env python3
"""secchat's resume (secchat/3, doc/PROTOCOL.md section 8): two measurements.

  resume.py freeze --secchat BIN --pf PASSFILE [--runs N] [--freeze SEC]
  resume.py stall  --secchat BIN --pf PASSFILE
  resume.py relay TARGET_PORT          (used by "freeze", as its own process)

freeze: a listener (-l -v -q -i 1000 -a 1 -L 2), in front of it a relay (this
   script, "relay", in a process of its own), and a connector (-v -q -i 1000
   -a 1 -L 2) through the relay, its stdin a line "SEQ TIME" every 20 ms.
   Once lines flow, the relay is frozen with SIGSTOP for SEC seconds (past
   -L 2: both sides declare the connection lost, and the connector's new
   connection waits in the relay's listen backlog), then thawed with
   SIGCONT.  Measured: time from the SIGCONT to the first line the listener
   writes after it (its stdout read and timestamped by a thread here), and
   to the connector's "reconnected" note.  Then the input ends, both sides
   must exit 0, and the received lines must be the sent ones, each once, in
   order.  Each run is bounded by SEC + 24 s (and the ends of what it
   started, a few seconds at most).
stall: a listener (-l -v -q -i 1000) whose stdout is a pipe nobody reads,
   and a connector (-q -b -i 1000) reading /dev/zero; then the same with a
   line-mode connector (-q) reading from "yes".  The connector's VmRSS (it
   is one process, of the PID started) at 1, 3 and 8 s after the handshake,
   and the bytes it read between 1 s and 8 s (/proc/PID/io rchar: input
   and socket; only keepalives and acknowledgements once it is stalled).

Prints KEY VALUE lines (seconds, KiB, bytes); progress and errors on
stderr.  Exit 0 if all went well, 3 if a received stream differed from the
sent one, 1 on any other error.
"""
import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time


def log(msg):
    print("bench: resume: " + msg, file=sys.stderr, flush=True)


class Corrupt(Exception):
    pass


# ------------------------------------------------------------------ relay

def relay(target):
    """Relay every connection to 127.0.0.1 TARGET until killed."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print("relay port %d" % ls.getsockname()[1], flush=True)

    def pump(src, dst):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                dst.sendall(data)
            except OSError:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return

    while True:
        c, _ = ls.accept()
        try:
            t = socket.create_connection(("127.0.0.1", target))
        except OSError:
            c.close()
            continue
        for a, b in ((c, t), (t, c)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


# ------------------------------------------------------------------ helpers

class Lines(threading.Thread):
    """Reads a pipe line by line, each with its time of arrival."""

    def __init__(self, f):
        super().__init__(daemon=True)
        self.f = f
        self.lines = []         # (time.time(), bytes)
        self.cond = threading.Condition()

    def run(self):
        for line in iter(self.f.readline, b""):
            with self.cond:
                self.lines.append((time.time(), line))
                self.cond.notify_all()
        with self.cond:
            self.lines.append((time.time(), None))      # end of file
            self.cond.notify_all()

    def wait_for(self, pred, timeout):
        """The first (time, line) with pred(time, line), or None."""
        end = time.monotonic() + timeout
        i = 0
        with self.cond:
            while True:
                while i < len(self.lines):
                    t, line = self.lines[i]
                    if line is None:
                        return None
                    if pred(t, line):
                        return t, line
                    i += 1
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def text(self):
        with self.cond:
            return b"".join(l for _, l in self.lines if l).decode(
                "utf-8", "replace")


def stop(p, sig=signal.SIGTERM):
    """End a process we started, by its PID, and reap it."""
    if p is None or p.poll() is not None:
        return
    try:
        os.kill(p.pid, sig)
    except ProcessLookupError:
        pass
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def last_err(lines, n=2):
    t = [l for l in lines.text().splitlines() if l.strip()]
    return " | ".join(t[-n:])


def start_listener(args, extra, stdout):
    p = subprocess.Popen([args.secchat, "-l", "-v", "-q", "-i", "1000",
                          "-p", args.pf] + extra + ["127.0.0.1", "0"],
                         stdin=subprocess.DEVNULL, stdout=stdout,
                         stderr=subprocess.PIPE)
    err = Lines(p.stderr)
    err.start()
    m = err.wait_for(lambda t, l: b"listening on" in l, 10)
    port = m and re.search(rb"listening on \S+ port (\d+)", m[1])
    if not port:
        stop(p)
        raise RuntimeError("listener did not start: %s" % last_err(err))
    return p, err, int(port.group(1))


def stamp(line):
    """The time a "SEQ TIME" line was written; -1 if it is not one."""
    try:
        return float(line.split()[1])
    except (IndexError, ValueError):
        return -1


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s for PID %d" % (key, pid))


def rchar(pid):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise RuntimeError("no rchar for PID %d" % pid)


# ------------------------------------------------------------------ freeze

def freeze_run(args, n):
    lis = rel = con = None
    stop_gen = threading.Event()
    sent = []
    deadline = time.monotonic() + args.freeze + 24

    def left(most):
        """Seconds to wait: at most most, and within the run's deadline."""
        t = min(most, deadline - time.monotonic())
        if t <= 0:
            raise RuntimeError("run %d took longer than %g s" % (
                n, args.freeze + 24))
        return t
    try:
        lis, lerr, port = start_listener(args, ["-a", "1", "-L", "2"],
                                         subprocess.PIPE)
        out = Lines(lis.stdout)
        out.start()
        rel = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                "relay", str(port)],
                               stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE)
        rl = rel.stdout.readline()
        m = re.match(rb"relay port (\d+)", rl)
        if not m:
            raise RuntimeError("relay did not start: %r" % rl)
        rport = int(m.group(1))
        con = subprocess.Popen([args.secchat, "-v", "-q", "-i", "1000",
                                "-p", args.pf, "-a", "1", "-L", "2",
                                "127.0.0.1", str(rport)],
                               stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
        cerr = Lines(con.stderr)
        cerr.start()

        def generate():
            seq = 0
            try:
                while not stop_gen.is_set():
                    line = b"%d %.6f\n" % (seq, time.time())
                    con.stdin.write(line)
                    con.stdin.flush()
                    sent.append(line)
                    seq += 1
                    stop_gen.wait(0.02)
            except (BrokenPipeError, ValueError, OSError):
                pass
        gen = threading.Thread(target=generate, daemon=True)
        gen.start()

        if not out.wait_for(lambda t, l: True, left(10)):
            raise RuntimeError("no line arrived in 10 s: listener: %s; "
                               "connector: %s" % (last_err(lerr),
                                                  last_err(cerr)))
        time.sleep(1)                                   # let it flow

        t_stop = time.time()
        os.kill(rel.pid, signal.SIGSTOP)
        time.sleep(args.freeze)
        t_cont = time.time()
        os.kill(rel.pid, signal.SIGCONT)

        # the connector abandons an attempt that brought no greeting after
        # 10 s and tries again each second
        wait = left(12)
        first = out.wait_for(lambda t, l: t >= t_cont, wait)
        if not first:
            raise RuntimeError("no line after the thaw in %d s: listener: "
                               "%s; connector: %s" % (
                                   round(wait), last_err(lerr),
                                   last_err(cerr)))
        fresh = out.wait_for(lambda t, l: stamp(l) >= t_cont, left(2))
        rec = cerr.wait_for(lambda t, l: b"reconnected" in l, left(2))
        lost = cerr.wait_for(lambda t, l: b"lost" in l and t >= t_stop, 0)
        burst = sum(1 for t, l in out.lines
                    if l and t_cont <= t < first[0] + 0.005)
        res = {"resume_s": first[0] - t_cont,
               "caught_up_s": fresh[0] - t_cont if fresh else None,
               "reconnected_s": rec[0] - t_cont if rec else None,
               "lost_s": lost[0] - t_stop if lost else None}
        log("run %d: freeze %g s; connector declared the connection lost "
            "%s s into it; un-freeze to first line %.3f s (%d lines at "
            "once), to the first line written after it %s s, to \"%s\" %s s"
            % (n, args.freeze,
                "%.2f" % res["lost_s"] if lost else "(no note)",
                res["resume_s"], burst,
                "%.3f" % res["caught_up_s"] if fresh else "(none)",
                rec[1].decode(errors="replace").strip() if rec else
                "reconnected", "%.3f" % res["reconnected_s"] if rec else
                "(no note)"))

        time.sleep(0.5)                         # traffic after the resume
        stop_gen.set()
        gen.join(left(2))
        con.stdin.close()
        try:
            crc = con.wait(timeout=left(5))
            lrc = lis.wait(timeout=left(5))
        except subprocess.TimeoutExpired:
            raise RuntimeError("the two sides did not end within 5 s of "
                               "the end of input: listener: %s; connector: "
                               "%s" % (last_err(lerr), last_err(cerr)))
        out.join(left(2))
        if crc or lrc:
            raise RuntimeError("exit status: connector %d, listener %d: "
                               "listener: %s; connector: %s" % (
                                   crc, lrc, last_err(lerr), last_err(cerr)))
        got = [l for _, l in out.lines if l]
        if got != sent:
            i = next((i for i, (a, b) in enumerate(zip(got, sent)) if a != b),
                     min(len(got), len(sent)))
            raise Corrupt("received %d lines, sent %d; first difference at "
                          "line %d: got %r, sent %r" % (
                              len(got), len(sent), i,
                              got[i] if i < len(got) else None,
                              sent[i] if i < len(sent) else None))
        log("run %d: %d lines sent and received, each once, in order"
            % (n, len(sent)))
        return res
    finally:
        stop_gen.set()
        if rel is not None and rel.poll() is None:
            try:
                os.kill(rel.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        for p in (con, rel, lis):
            stop(p)


def freeze(args):
    rs = [freeze_run(args, n + 1) for n in range(args.runs)]
    out = {"resume_s": statistics.median(r["resume_s"] for r in rs),
           "resume_max_s": max(r["resume_s"] for r in rs),
           "freeze_s": args.freeze}
    for k in ("caught_up_s", "reconnected_s", "lost_s"):
        v = [r[k] for r in rs if r[k] is not None]
        if v:
            out[k] = statistics.median(v)
    out["resume_all_s"] = ",".join("%.3f" % r["resume_s"] for r in rs)
    return out


# ------------------------------------------------------------------ stall

def stall_one(args, mode):
    lis = con = src = None
    rfd, wfd = os.pipe()                # the listener's stdout: never read
    try:
        lis, lerr, port = start_listener(args, [], wfd)
        os.close(wfd)
        wfd = None
        flags = ["-q", "-b"] if mode == "bulk" else ["-q"]
        if mode == "bulk":
            stdin = open("/dev/zero", "rb")
        else:
            src = subprocess.Popen(["yes"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE)
            stdin = src.stdout
        con = subprocess.Popen([args.secchat] + flags +
                               ["-i", "1000", "-p", args.pf,
                                "127.0.0.1", str(port)],
                               stdin=stdin, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
        stdin.close()
        cerr = Lines(con.stderr)
        cerr.start()
        hs = lerr.wait_for(lambda t, l: b"handshake done" in l, 10)
        if not hs:
            raise RuntimeError("no handshake in 10 s: listener: %s; "
                               "connector: %s" % (last_err(lerr),
                                                  last_err(cerr)))
        t0 = hs[0]
        res = {}
        for at in (1, 3, 8):
            time.sleep(max(0, t0 + at - time.time()))
            if con.poll() is not None:
                raise RuntimeError("connector exited (%d) %d s into the "
                                   "stall: %s" % (con.returncode, at,
                                                  last_err(cerr)))
            res["%s_rss%d_kb" % (mode, at)] = status_kb(con.pid, "VmRSS")
            res["%s_rchar%d" % (mode, at)] = rchar(con.pid)
        res["%s_hwm_kb" % mode] = status_kb(con.pid, "VmHWM")
        res["%s_lis_rss_kb" % mode] = status_kb(lis.pid, "VmRSS")
        res["%s_read_1_8" % mode] = res.pop("%s_rchar8" % mode) - \
            res["%s_rchar1" % mode]
        res["%s_read_0_1" % mode] = res.pop("%s_rchar1" % mode)
        del res["%s_rchar3" % mode]
        with open("/proc/%d/task/%d/children" % (con.pid, con.pid)) as f:
            if f.read().strip():
                log("note: the connector has child processes, not counted")
        log("%s: connector RSS %s KiB at 1/3/8 s (peak %d), read %d bytes "
            "(rchar: input and socket) in the first second, %d from 1 to 8 s; listener RSS %d "
            "KiB" % (mode, "/".join(str(res["%s_rss%d_kb" % (mode, a)])
                                     for a in (1, 3, 8)),
                     res["%s_hwm_kb" % mode], res["%s_read_0_1" % mode],
                     res["%s_read_1_8" % mode], res["%s_lis_rss_kb" % mode]))
        return res
    finally:
        # The pipe's reader goes first: a listener told to end still
        # writes what it holds to its stdout, without -w for ever.
        os.close(rfd)
        if wfd is not None:
            os.close(wfd)
        for p in (lis, con, src):
            stop(p)


def stall(args):
    res = {}
    for mode in ("bulk", "line"):
        res.update(stall_one(args, mode))
    return res


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "relay":
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        relay(int(sys.argv[2]))
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("freeze", "stall"))
    ap.add_argument("--secchat", required=True)
    ap.add_argument("--pf", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--freeze", type=float, default=6.0)
    args = ap.parse_args()
    # On SIGTERM (timeout), the finally blocks still end what was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        res = freeze(args) if args.what == "freeze" else stall(args)
    except Corrupt as e:
        log("ERROR: CORRUPTED STREAM: %s" % e)
        return 3
    except (RuntimeError, OSError) as e:
        log("ERROR: %s" % e)
        return 1
    for k, v in res.items():
        print("%s %s" % (k, "%.4f" % v if isinstance(v, float) else v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
