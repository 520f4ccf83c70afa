#!/usr/bin/env python3
"""A loopback TCP relay for resume tests (python3 standard library only).

  cutrelay.py [--reset N,N,...] [--cut N,...] [--freeze N:SEC]
              [--plan HOW:N[:SEC],...] [--record FILE] TARGET_PORT

Listens on 127.0.0.1 on a free port, prints "relay port N" on stdout, and
relays every connection it accepts to 127.0.0.1 TARGET_PORT, until killed.
Unlike tests/relay.py (one connection, record-level attacks) it serves the
new connections of a resuming connector.  Connection k (from 0) is cut once
it has carried N_k bytes, both directions counted:

  --reset N,...   with a reset (SO_LINGER 0): each side reads an RST
  --cut N,...     with a FIN (shutdown) on both sides
  --freeze N:SEC  connection 0, after N bytes: nothing forwarded nor read
                  for SEC seconds (a dead link), then it is reset
  --plan HOW:N[:SEC],...
                  connection k by the k-th entry: reset:N, cut:N or
                  freeze:N:SEC (in place of the three above)
  --record FILE   the first RESUME (93 bytes after a 114-byte greeting)
                  a connector sends is written to FILE
"""
import argparse
import socket
import struct
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reset", default="")
    ap.add_argument("--cut", default="")
    ap.add_argument("--freeze", default="")
    ap.add_argument("--plan", default="")
    ap.add_argument("--record", default="")
    ap.add_argument("port", type=int)
    a = ap.parse_args()
    resets = [int(x) for x in a.reset.split(",") if x]
    cuts = [int(x) for x in a.cut.split(",") if x]
    freeze = tuple(int(x) for x in a.freeze.split(":")) if a.freeze else None
    plan = [x.split(":") for x in a.plan.split(",") if x]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print("relay port %d" % ls.getsockname()[1], flush=True)
    recorded = [False]
    k = 0
    while True:
        c, _ = ls.accept()
        try:
            t = socket.create_connection(("127.0.0.1", a.port))
        except OSError:
            c.close()
            continue
        limit, how = None, None
        if k < len(resets):
            limit, how = resets[k], "reset"
        elif k < len(cuts):
            limit, how = cuts[k], "cut"
        secs = freeze[1] if freeze else 0
        if k == 0 and freeze:
            limit, how = freeze[0], "freeze"
        if k < len(plan):
            how, limit = plan[k][0], int(plan[k][1])
            secs = int(plan[k][2]) if how == "freeze" else 0
        Conn(c, t, limit, how, secs, a.record, recorded).start()
        k += 1


class Conn:
    def __init__(self, c, t, limit, how, secs, record, recorded):
        self.c, self.t = c, t
        self.limit, self.how, self.secs = limit, how, secs
        self.record, self.recorded = record, recorded
        self.count = 0
        self.lock = threading.Lock()
        self.done = False
        self.frozen = False
        self.c2s = b""

    def start(self):
        for src, dst, up in ((self.c, self.t, True), (self.t, self.c, False)):
            threading.Thread(target=self.pump, args=(src, dst, up),
                             daemon=True).start()

    def end(self, how):
        with self.lock:
            if self.done:
                return
            self.done = True
        for s in (self.c, self.t):
            try:
                if how == "cut":
                    s.shutdown(socket.SHUT_RDWR)
                else:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
                s.close()
            except OSError:
                pass

    def keep(self, up, data):
        if not up or not self.record or self.recorded[0] or \
                len(self.c2s) >= 93:
            return
        self.c2s += data
        if len(self.c2s) >= 93 and self.c2s[8] == 3:
            with open(self.record, "wb") as f:
                f.write(self.c2s[:93])
            self.recorded[0] = True

    def pump(self, src, dst, up):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                if self.how == "freeze" and not self.done:
                    continue
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            while self.frozen and not self.done:
                time.sleep(0.05)	# a dead link: held, never sent
            with self.lock:
                if self.done:
                    return
                if self.limit is not None and \
                        self.count + len(data) >= self.limit:
                    data = data[:max(0, self.limit - self.count)]
                    hit = True
                else:
                    hit = False
                self.count += len(data)
            self.keep(up, data)
            try:
                dst.sendall(data)
            except OSError:
                self.end("reset")
                return
            if hit:
                if self.how == "freeze":
                    self.frozen = True
                    time.sleep(self.secs)
                    self.end("reset")
                else:
                    self.end(self.how)
                return


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
