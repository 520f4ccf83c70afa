#!/usr/bin/env python3
"""Loopback TCP relay for the secchat test suite (python3 standard library only).

Usage:
  relay.py [--log FILE] [--attack SPEC] [--password-file F] [--timeout SEC]
           TARGET_HOST TARGET_PORT
  relay.py --selftest          check the P-256 code against the vectors, exit 0

The relay listens on 127.0.0.1 (::1 if TARGET_HOST contains ':') on a free
port and prints one line "relay port N" on stdout.  It accepts exactly one
connection, dials TARGET and copies bytes both ways until each direction has
reached EOF (a half-close is passed on with shutdown(SHUT_WR)), then exits 0.
After --timeout seconds (default 20) it closes everything and exits 1.  A peer
that resets the connection ends the relay quietly: both sides are shut down,
exit 0.  A bad --attack argument (flip offset beyond the record) exits 2.

  secchat -l -p pf 127.0.0.1 0      # stderr: "secchat: listening on ... port L"
  relay.py --log log 127.0.0.1 L    # stdout: "relay port R"
  secchat -p pf 127.0.0.1 R

"s2c" is TARGET (listener) -> client (connector): GREETING (114 bytes), CONFIRM
(41), then records; "c2s" is the other way: HELLO (108), then records (secchat/3,
doc/PROTOCOL.md).  A record is u16 length || length bytes.  Each stream is cut
into these units; a stream that does not parse (no "SECCHAT\\x03", record length
outside [17, 16656]) is forwarded unchanged from that point on; so is one that
brings a REFUSAL (12 bytes) in place of a message.

--log FILE appends one line per unit put on the wire, flushed, in send order:
  c2s HEX / s2c HEX             a record (length bytes + body) as sent, also
                                a duplicated or reflected one
  c2s-hs HEX / s2c-hs HEX       a handshake message, as sent
  D-raw HEX                     bytes that did not parse, forwarded unchanged
  D-inject / D-garbage / D-partial HEX   bytes written by an attack

--attack SPEC (K counts records only, from 0, per direction D = c2s|s2c):
  flip:D:K:OFF      flip bit 0 of byte OFF of record K (from the length
                    bytes; negative OFF counts from the end: -1 = last byte)
  drop:D:K          do not forward record K
  dup:D:K           forward record K twice
  swap:D:K          forward record K+1 before record K (K alone if K is last)
  reflect:D:K       send record K back to its sender instead of forwarding it
                    (the half-close of the other direction waits for this)
  cut:D:K           shut down both connections instead of forwarding record K
                    (each peer reads an end of stream: a FIN)
  reset:D:K         reset both connections instead of forwarding record K
                    (SO_LINGER 0, then close: each peer reads an RST), 0.5 s
                    later: a reset makes the kernel drop what its socket
                    still held, and the records before K are to be read
  freeze:D:K:SEC    from record K on (not forwarded), forward nothing either
                    way and read nothing for SEC seconds, then forward what
                    was held and go on; SEC 0: until the relay ends.  As a
                    dead link: the peers' sockets fill, nothing arrives
  batch:D:K:N       forward records K to K+N-1 in one write, so that a peer
                    reads them at once
  cutmid:D:K        forward the first half of record K, then as cut
  inject:D:K:HEX    after record K, also send these bytes in D, in the same
                    write as record K (so a peer reads both at once)
  garbage:D:K:N     after record K, also send N random bytes in D
  iter:N            set the GREETING's u32 iteration count to N
  salt              flip bit 0 of the GREETING's first salt byte
  pB:MODE  pA:MODE  replace pB in the GREETING / pA in the HELLO; MODE is offcurve (last
                    byte changed so it is off the curve), badprefix (first
                    byte 0x05), wn (pB := w*N) or wm (pA := w*M); wn and wm
                    make the peer's K infinity and need --password-file.
"""
import argparse
import hashlib
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from types import SimpleNamespace

MAGIC = b"SECCHAT\x03"
GREETING, HELLO, CONFIRM = 114, 108, 41
AT_ITER, AT_SALT, AT_PB, AT_PA = 13, 17, 49, 11
MIN_REC, MAX_REC = 17, 16656

# ---- P-256, affine coordinates; None is the point at infinity ----
P = 2**256 - 2**224 + 2**192 + 2**96 - 1
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
     0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)
M_HEX = "02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f"
N_HEX = "03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49"


def on_curve(pt):
    x, y = pt
    return 0 <= x < P and 0 <= y < P and (y * y - x * x * x - A * x - B) % P == 0


def add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return None
        lam = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P


def neg(pt):
    return None if pt is None else (pt[0], -pt[1] % P)


def mul(k, pt):
    r = None
    for bit in bin(k)[2:]:
        r = add(r, r)
        if bit == "1":
            r = add(r, pt)
    return r


def decompress(hexstr):
    b = bytes.fromhex(hexstr)
    x = int.from_bytes(b[1:], "big")
    y = pow((x * x * x + A * x + B) % P, (P + 1) // 4, P)  # P = 3 mod 4
    return x, (y if y % 2 == b[0] % 2 else P - y)


def encode(pt):
    return b"\x04" + pt[0].to_bytes(32, "big") + pt[1].to_bytes(32, "big")


def decode(b):
    return int.from_bytes(b[1:33], "big"), int.from_bytes(b[33:65], "big")


def password_scalar(pw, salt, iterations):
    dk = hashlib.pbkdf2_hmac("sha256", pw, salt, iterations, 40)
    return int.from_bytes(dk, "big") % ORDER


# ---- attacks ----
REC_ATTACKS = {"flip": int, "drop": None, "dup": None, "swap": None,
               "reflect": None, "cut": None, "cutmid": None,
               "inject": bytes.fromhex, "garbage": int, "reset": None,
               "freeze": float, "batch": int}
POINT_MODES = {"pB": ("offcurve", "badprefix", "wn"),
               "pA": ("offcurve", "badprefix", "wm")}


def parse_attack(spec):
    f = spec.split(":")
    kind, a = f[0], None
    try:
        if kind in REC_ATTACKS:
            conv = REC_ATTACKS[kind]
            if len(f) == 3 + (conv is not None) and f[1] in ("c2s", "s2c"):
                a = SimpleNamespace(kind=kind, dir=f[1], k=int(f[2]),
                                    arg=conv(f[3]) if conv else None)
                if a.k < 0 or (kind in ("garbage", "freeze") and a.arg < 0) or (
                        kind == "batch" and a.arg < 1):
                    a = None
        elif kind == "iter" and len(f) == 2 and 0 <= int(f[1]) < 2**32:
            a = SimpleNamespace(kind=kind, dir="s2c", arg=int(f[1]))
        elif kind == "salt" and len(f) == 1:
            a = SimpleNamespace(kind=kind, dir="s2c", arg=None)
        elif kind in POINT_MODES and len(f) == 2 and f[1] in POINT_MODES[kind]:
            a = SimpleNamespace(kind=kind, dir="s2c" if kind == "pB" else "c2s", arg=f[1])
    except ValueError:
        a = None
    if a is None:
        raise argparse.ArgumentTypeError(f"bad attack spec {spec!r}")
    return a


def tamper_handshake(a, msg, msg1, pw):
    """Return the GREETING (s2c) or the HELLO (c2s) changed by attack a."""
    m = bytearray(msg)
    if a.kind == "iter":
        m[AT_ITER:AT_ITER + 4] = a.arg.to_bytes(4, "big")
    elif a.kind == "salt":
        m[AT_SALT] ^= 1
    else:
        at = AT_PB if a.kind == "pB" else AT_PA
        if a.arg == "badprefix":
            m[at] = 5
        elif a.arg == "offcurve":
            m[at + 64] ^= 1
            if on_curve(decode(m[at:at + 65])):  # y ^ 1 happened to be P - y
                m[at + 64] ^= 3
        else:  # wn / wm
            w = password_scalar(pw, msg1[AT_SALT:AT_SALT + 16],
                                int.from_bytes(msg1[AT_ITER:AT_ITER + 4], "big"))
            m[at:at + 65] = encode(mul(w, decompress(N_HEX if a.kind == "pB" else M_HEX)))
    return bytes(m)


# ---- relay ----
class Cut(Exception):
    pass


class Reset(Exception):
    pass


class Relay:
    def __init__(self, attack, log, password):
        self.attack, self.password = attack, password
        self.log = open(log, "a") if log else None
        self.lock = threading.Lock()          # log file and state below
        self.done = threading.Event()
        self.reflected = threading.Event()    # set once a reflect attack is over
        self.resetting = False                # a reset attack under way
        self.thawed = threading.Event()       # clear while a freeze lasts
        self.thawed.set()
        self.finished, self.status, self.socks, self.msg1 = 0, 0, [], None

    def write_log(self, tag, data):
        if self.log:
            with self.lock:
                self.log.write(f"{tag} {data.hex()}\n")
                self.log.flush()

    def abort(self, status=0, why=None):
        """Shut down both connections (waking both pipes) and end the relay."""
        if self.resetting:                    # no FIN before the RST
            return
        with self.lock:
            self.status = max(self.status, status)
            if why:
                print(f"relay: {why}", file=sys.stderr, flush=True)
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.reflected.set()
        self.done.set()

    def reset(self):
        """Reset both connections: an RST each way, then end the relay."""
        self.resetting = True
        time.sleep(0.5)
        for s in self.socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RD)   # wakes the other pipe's recv
                s.close()
            except OSError:
                pass
        self.reflected.set()
        self.done.set()

    def freeze(self, secs):
        self.thawed.clear()
        if secs > 0:
            t = threading.Timer(secs, self.thawed.set)
            t.daemon = True
            t.start()

    def pipe_done(self):
        with self.lock:
            self.finished += 1
            if self.finished == 2:
                self.done.set()

    def exit(self):
        for s in self.socks:
            s.close()
        with self.lock:  # never exit in the middle of a log line
            os._exit(self.status)


class Pipe(threading.Thread):
    """One direction: read src, cut the stream into units, write them to dst."""

    def __init__(self, relay, name, src, dst, handshake_sizes):
        super().__init__(daemon=True)
        self.relay, self.name, self.src, self.dst = relay, name, src, dst
        self.hs = list(handshake_sizes)    # sizes of the handshake messages left
        self.hs_seen = self.count = 0      # handshake messages / records so far
        self.buf, self.raw, self.held, self.other = bytearray(), False, None, None
        self.frozen = []                   # units held during a freeze
        self.batch = []                    # records of a batch, to send at once
        self.wlock = threading.Lock()
        a = relay.attack
        self.attack = a if a is not None and a.dir == name else None

    def send(self, data, tag=""):
        """Write one unit to dst and log it (units from two threads never mix)."""
        with self.wlock:
            if not self.relay.thawed.is_set():
                self.frozen.append((data, tag))
                return
            self.dst.sendall(data)
            self.relay.write_log(self.name + tag, data)

    def thaw(self):
        """Wait for the end of a freeze, then forward what it held."""
        self.relay.thawed.wait()
        held, self.frozen = self.frozen, []
        for data, tag in held:
            self.send(data, tag)

    def run(self):
        try:
            while data := self.src.recv(65536):
                self.buf += data
                self.process()
                self.thaw()
            if self.held is not None:           # swap of the last record
                self.send(self.held)
            if self.batch:                      # a batch cut short by EOF
                self.send_batch()
            if self.buf:                        # an incomplete unit at EOF
                self.send(bytes(self.buf), "-raw")
            a = self.relay.attack
            if a is not None and a.kind == "reflect" and a.dir != self.name:
                self.relay.reflected.wait()     # keep dst open for the reflected record
            with self.wlock:
                self.dst.shutdown(socket.SHUT_WR)
            self.relay.pipe_done()
        except Reset:
            self.relay.reset()
        except (Cut, OSError):                  # an attack cut, or a reset peer
            self.relay.abort()
        except Exception:
            traceback.print_exc()
            self.relay.abort(2)
        finally:
            if self.attack is not None and self.attack.kind == "reflect":
                self.relay.reflected.set()

    def unit_size(self):
        """Size of the next unit in buf, or None while it is incomplete."""
        if not self.raw:
            if self.hs:
                size = self.hs[0]
                if self.hs_seen == 0 and not MAGIC.startswith(bytes(self.buf[:8])):
                    self.raw = True
                elif len(self.buf) >= 9 and self.buf[8] == 0:   # a REFUSAL
                    self.raw = True
            elif len(self.buf) < 2:
                return None
            else:
                size = 2 + int.from_bytes(self.buf[:2], "big")
                self.raw = not MIN_REC <= size - 2 <= MAX_REC
        if self.raw:
            return len(self.buf)
        return size if len(self.buf) >= size else None

    def process(self):
        while self.buf and (n := self.unit_size()) is not None:
            unit = bytes(self.buf[:n])
            del self.buf[:n]
            if self.raw:
                self.send(unit, "-raw")
            elif self.hs:
                self.hs.pop(0)
                self.handshake(unit)
            else:
                self.record(unit)

    def handshake(self, msg):
        first, self.hs_seen = self.hs_seen == 0, self.hs_seen + 1
        if first and self.name == "s2c":
            self.relay.msg1 = msg
        a = self.attack
        if first and a is not None and a.kind in ("iter", "salt", "pB", "pA"):
            if a.arg in ("wn", "wm") and self.relay.msg1 is None:
                print("relay: no msg1 seen, pA not changed", file=sys.stderr, flush=True)
            else:
                msg = tamper_handshake(a, msg, self.relay.msg1, self.relay.password)
        self.send(msg, "-hs")

    def record(self, rec):
        i, a = self.count, self.attack
        self.count += 1
        if self.held is not None:              # swap: this is record K+1
            self.send(rec)
            self.send(self.held)
            self.held = None
            return
        if a is not None and a.kind == "batch" and a.k <= i < a.k + a.arg:
            self.batch.append(rec)
            if i == a.k + a.arg - 1:
                self.send_batch()
            return
        if a is None or a.kind not in REC_ATTACKS or i != a.k:
            self.send(rec)
            return
        if a.kind == "flip":
            if not -len(rec) <= a.arg < len(rec):
                self.relay.abort(2, f"flip offset {a.arg} outside a {len(rec)}-byte record")
                raise Cut
            rec = bytearray(rec)
            rec[a.arg] ^= 1
            self.send(bytes(rec))
        elif a.kind == "dup":
            self.send(rec)
            self.send(rec)
        elif a.kind == "swap":
            self.held = rec
        elif a.kind == "reflect":
            self.other.send(rec)
            self.relay.reflected.set()
        elif a.kind == "cutmid":
            self.send(rec[:len(rec) // 2], "-partial")
            raise Cut
        elif a.kind == "cut":
            raise Cut
        elif a.kind == "reset":
            raise Reset
        elif a.kind == "freeze":
            self.relay.freeze(a.arg)
            self.send(rec)                  # held until the thaw
        elif a.kind == "inject":            # one write: read with its record
            with self.wlock:
                self.dst.sendall(rec + a.arg)
                self.relay.write_log(self.name, rec)
                self.relay.write_log(self.name + "-inject", a.arg)
        elif a.kind == "garbage":
            self.send(rec)
            self.send(os.urandom(a.arg), "-garbage")
        # drop: nothing


    def send_batch(self):
        """The records of a batch in one write (one read for the peer)."""
        with self.wlock:
            self.dst.sendall(b"".join(self.batch))
            for rec in self.batch:
                self.relay.write_log(self.name, rec)
        self.batch = []


def read_password(path):
    pw = open(path, "rb").read()
    return pw[:-2] if pw.endswith(b"\r\n") else pw[:-1] if pw.endswith(b"\n") else pw


def selftest():
    """EC arithmetic against RFC 9382 B.1 and the secchat1-session vector."""
    h = lambda s: int(s, 16)
    Mp, Np = decompress(M_HEX), decompress(N_HEX)
    assert on_curve(G) and on_curve(Mp) and on_curve(Np) and mul(ORDER, G) is None
    w = h("2ee57912099d31560b3a44b1184b9b4866e904c49d12ac5042c97dca461b1a5f")
    x = h("43dd0fd7215bdcb482879fca3220c6a968e66d70b1356cac18bb26c84a78d729")
    y = h("dcb60106f276b02606d8ef0a328c02e4b629f84f89786af5befb0bc75b6e66be")
    assert encode(add(mul(x, G), mul(w, Mp))).hex() == (
        "04a56fa807caaa53a4d28dbb9853b9815c61a411118a6fe516a8798434751470f9"
        "010153ac33d0d5f2047ffdb1a3e42c9b4e6be662766e1eeb4116988ede5f912c")
    assert encode(add(mul(y, G), mul(w, Np))).hex() == (
        "0406557e482bd03097ad0cbaa5df82115460d951e3451962f1eaf4367a420676d0"
        "9857ccbc522686c83d1852abfa8ed6e4a1155cf8f1543ceca528afb591a1e0b7")
    pw, salt = b"correct horse battery staple", bytes(range(16))
    w = password_scalar(pw, salt, 1000)
    assert w == h("458c5e972d3b566ed40f3a82f273b0dcd23d280d919c9f6b63618d7dcec37595")
    x = h("5237290200d7c71962dcec81fd591a2df9ec5997e27e6ba2d3e744d510444832")
    y = h("39257b9db49fcba01feabdb90ac462dc2fb330f7603e77d5975c8bb6447e0e4c")
    pA, pB = add(mul(x, G), mul(w, Mp)), add(mul(y, G), mul(w, Np))
    K = mul(x, add(pB, neg(mul(w, Np))))
    assert K == mul(y, add(pA, neg(mul(w, Mp))))
    assert encode(K).hex() == (
        "043b49aa9e974994179f104332a5af0b93c7ba78549927b408af6511e943f81fa9"
        "53838b400fe0e19867b0964c947dadc3925ef8bfc6b4aa373411448175b8a6f5")
    msg1 = (MAGIC + b"\x01\x00\x3c\x00\x00" + (1000).to_bytes(4, "big") + salt +
            bytes(16) + encode(pB))
    msg2 = MAGIC + b"\x02\x00\x00" + encode(pA) + bytes(32)
    assert len(msg1) == GREETING and len(msg2) == HELLO
    for kind, at, msg, mode, base in (("pB", AT_PB, msg1, "wn", Np),
                                      ("pA", AT_PA, msg2, "wm", Mp)):
        t = lambda m: tamper_handshake(parse_attack(f"{kind}:{m}"), msg, msg1, pw)
        assert not on_curve(decode(t("offcurve")[at:at + 65]))
        assert t("badprefix")[at:] == b"\x05" + msg[at + 1:]
        bad = decode(t(mode)[at:at + 65])
        assert on_curve(bad) and add(bad, neg(mul(w, base))) is None
    assert tamper_handshake(parse_attack("iter:7"), msg1, msg1, pw)[13:17] == bytes([0, 0, 0, 7])
    print("relay selftest ok")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--log", metavar="FILE")
    ap.add_argument("--attack", metavar="SPEC", type=parse_attack)
    ap.add_argument("--password-file", metavar="F")
    ap.add_argument("--timeout", metavar="SEC", type=float, default=20.0)
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("host", metavar="TARGET_HOST", nargs="?")
    ap.add_argument("port", metavar="TARGET_PORT", type=int, nargs="?")
    args = ap.parse_args()
    if args.selftest:
        sys.exit(selftest())
    if args.host is None or args.port is None:
        ap.error("TARGET_HOST and TARGET_PORT are required")
    a = args.attack
    if a is not None and a.arg in ("wn", "wm") and not args.password_file:
        ap.error(f"--attack {a.kind}:{a.arg} needs --password-file")
    try:
        pw = read_password(args.password_file) if args.password_file else None
        relay = Relay(a, args.log, pw)
    except OSError as e:
        ap.error(str(e))
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # no traceback on ^C
    deadline = time.monotonic() + args.timeout
    family, addr = ((socket.AF_INET6, "::1") if ":" in args.host
                    else (socket.AF_INET, "127.0.0.1"))
    try:
        with socket.socket(family, socket.SOCK_STREAM) as lsock:
            lsock.bind((addr, 0))
            lsock.listen(1)
            print(f"relay port {lsock.getsockname()[1]}", flush=True)
            lsock.settimeout(args.timeout)
            client = lsock.accept()[0]
    except OSError as e:  # includes the accept timeout
        relay.abort(1, f"no connection: {e}")
        relay.exit()
    relay.socks.append(client)
    try:
        server = socket.create_connection(
            (args.host, args.port), timeout=max(0.1, deadline - time.monotonic()))
    except OSError as e:
        relay.abort(1, f"cannot connect to {args.host} port {args.port}: {e}")
        relay.exit()
    relay.socks.append(server)
    for s in relay.socks:
        s.settimeout(None)
    c2s = Pipe(relay, "c2s", client, server, [HELLO])
    s2c = Pipe(relay, "s2c", server, client, [GREETING, CONFIRM])
    c2s.other, s2c.other = s2c, c2s
    c2s.start()
    s2c.start()
    if not relay.done.wait(max(0.0, deadline - time.monotonic())):
        relay.abort(1, f"timeout after {args.timeout:g} s")
    relay.exit()


if __name__ == "__main__":
    main()
