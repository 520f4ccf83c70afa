#!/usr/bin/python3
"""Independent secchat/2 peer, written from doc/PROTOCOL.md alone (no C code).

usage: peer.py [-l] [-i ITER] [-p PASSFILE] [-r N] [-P SIZE] [-v] [MODE] [HOST] PORT
       peer.py --selftest

The command line and the misbehaviour MODEs (--hold-open, --no-done,
--bad-rekey retired|unannounced|lowpoint|truncated, --key-after-done,
--data-after-close, --reset SEC) are specified in doc/peer-test-modes.md.
-l listens on HOST (default 127.0.0.1) PORT (0 = any) and prints "peer:
listening on port N"; without -l it connects.  -r N: a REKEY after every N
DATA records (default 1000, 0 = never).  -P SIZE pads DATA (section 6).  -v
adds notes ("peer: rekeyed ...", "peer: peer rekeyed ...", "peer: announced
key N", "peer: got key N") to stderr.  Exit 0 once its DONE is sent and the
peer's received; 3 for every fatal condition of section 8; 1 otherwise;
one "peer: " line.

Three threads: one reads stdin in line mode; the writer owns the sending
direction (KEY 0 first, DATA, REKEY, due KEYs, CLOSE, DONE); the main thread
receives and only queues events for the writer, so a writer blocked on a
full socket never blocks the receiver.  The protocol rules live in Side,
without I/O, which --selftest drives over tests/data/secchat2-session.txt.
Test tool only: no terminal exception, hex display or timed rekey; P-256
scalar multiplication is not constant time; old keys are dropped, not wiped.
"""
import argparse, hashlib, hmac, os, queue, re, secrets, socket, struct, sys, threading, time
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# P-256 in affine coordinates; None is the point at infinity.
P = 2**256 - 2**224 + 2**192 + 2**96 - 1
A, B = P - 3, 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b
ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551
G = (0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296,
     0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5)

def on_curve(pt):
    x, y = pt
    return x < P and y < P and (y * y - x ** 3 - A * x - B) % P == 0

def add(p1, p2):
    if p1 is None or p2 is None:
        return p2 if p1 is None else p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return None
        lam = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P

def mul(k, pt):                 # double-and-add, most significant bit first
    r = None
    for bit in bin(k % ORDER)[2:]:
        r = add(r, r)
        if bit == '1':
            r = add(r, pt)
    return r

def decompress(hexstr):         # P = 3 mod 4, so sqrt(a) = a^((P+1)/4)
    raw = bytes.fromhex(hexstr)
    x = int.from_bytes(raw[1:], 'big')
    y = pow((x ** 3 + A * x + B) % P, (P + 1) // 4, P)
    y = y if y % 2 == raw[0] % 2 else P - y
    assert on_curve((x, y))
    return x, y

M = decompress('02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f')
N = decompress('03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49')

# Protocol constants and wire sizes (doc/PROTOCOL.md).
VERSION = 2
ID_A, ID_B = b'secchat/2 connector', b'secchat/2 listener'
LABEL_C2S, LABEL_S2C = b'secchat/2 connector to listener', b'secchat/2 listener to connector'
MAGIC, MAXPAY, SEQ_LIMIT = b'SECCHAT' + bytes([VERSION]), 16384, 1 << 24
MAXINNER, TAG = MAXPAY + 256, 16    # inner at most 16640; length in [17, 16656]
DATA, REKEY, CLOSE, KEY, DONE = 1, 2, 3, 4, 5
NAMES = {DATA: 'DATA', REKEY: 'REKEY', CLOSE: 'CLOSE', KEY: 'KEY', DONE: 'DONE'}
SIZES = {REKEY: 4 + 32, KEY: 32, CLOSE: 0, DONE: 0}   # payload sizes; DATA 0..16384
MAX_INDEX = 2**32 - 1               # receive key indices are u32
END_WAIT, KEY1_WAIT = 20, 10        # seconds: "waits for the end", --bad-rekey retired
WRONG = 'wrong password, or the connection was tampered with'
TRUNC = 'stream truncated'
UNCONFIRMED = 'peer did not confirm receipt'

class Fail(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code

def fatal(msg):                  # a violation of sections 4 and 5: status 3
    return Fail(3, msg)

def encode(pt):
    return b'\x04' + pt[0].to_bytes(32, 'big') + pt[1].to_bytes(32, 'big')

def decode(raw):
    pt = (int.from_bytes(raw[1:33], 'big'), int.from_bytes(raw[33:], 'big'))
    if len(raw) != 65 or raw[0] != 4 or not on_curve(pt):
        raise Fail(3, 'bad point from the peer')
    return pt

def hkdf_extract(salt, ikm):    # salt "none" = 32 zero bytes
    return hmac.digest(salt or bytes(32), ikm, 'sha256')

def hkdf_expand(prk, info, length):  # one block: T(1) = HMAC(PRK, info || 0x01)
    assert length <= 32
    return hmac.digest(prk, info + b'\x01', 'sha256')[:length]

def password_scalar(password, salt, iterations):
    w = int.from_bytes(hashlib.pbkdf2_hmac('sha256', password, salt, iterations, 40),
                       'big') % ORDER
    if w == 0:
        raise Fail(1, 'the password gives w = 0')
    return w

def shared_point(own, peer_pt, w, peer_base):
    """K = own * (peer_pt - w * peer_base); infinity is fatal."""
    wx, wy = mul(w, peer_base)  # never infinity: 0 < w < ORDER
    k = mul(own, add(peer_pt, (wx, -wy % P)))
    if k is None:
        raise Fail(3, 'bad point from the peer (K is infinity)')
    return encode(k)

def derive(id_a, id_b, pa, pb, k, w, aad):
    """Everything that follows from the transcript (sections 2 and 3)."""
    lp = lambda s: len(s).to_bytes(8, 'little') + s
    tt = b''.join(lp(s) for s in (id_a, id_b, pa, pb, k, w.to_bytes(32, 'big')))
    h = hashlib.sha256(tt).digest()
    kc = hkdf_expand(hkdf_extract(None, h[16:]), b'ConfirmationKeys' + aad, 32)
    prk = hkdf_extract(h, h[:16])
    return {'TT': tt, 'Ke': h[:16], 'Ka': h[16:], 'KcA': kc[:16], 'KcB': kc[16:],
            'cA': hmac.digest(kc[:16], tt, 'sha256'),
            'cB': hmac.digest(kc[16:], tt, 'sha256'),
            'c2s0': hkdf_expand(prk, LABEL_C2S, 32),
            's2c0': hkdf_expand(prk, LABEL_S2C, 32)}

def x25519(private, public):
    """X25519(private, public); None for the all-zero result (a low-order key)."""
    try:
        z = private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:          # OpenSSL refuses the all-zero result itself
        return None
    return None if z == bytes(32) else z

def raw_public(private):        # python3-cryptography 38 has no public_bytes_raw()
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

def rekey_salt(secret):
    return hkdf_expand(secret, b'rekey', 32)

class Chain:
    """One direction's current secret (epoch), AES-256-GCM key, IV and seq."""
    def __init__(self, secret, epoch=0):
        self.secret, self.epoch, self.seq = secret, epoch, 0
        self.key, self.iv = hkdf_expand(secret, b'key', 32), hkdf_expand(secret, b'iv', 12)
        self.aead = AESGCM(self.key)

    def next(self, dh):
        """S' = HKDF-Extract(salt = HKDF-Expand(S, "rekey", 32), IKM = DH)."""
        return Chain(hkdf_extract(rekey_salt(self.secret), dh), self.epoch + 1)

    def nonce(self):
        if self.seq >= SEQ_LIMIT:
            raise fatal('too many records under one key')
        self.seq += 1
        return (int.from_bytes(self.iv, 'big') ^ (self.seq - 1)).to_bytes(12, 'big')

    def seal(self, typ, payload=b'', pad=0):
        inner = payload + bytes([typ]) + bytes(pad)
        assert len(inner) <= MAXINNER
        hdr = (len(inner) + TAG).to_bytes(2, 'big')
        return hdr + self.aead.encrypt(self.nonce(), inner, hdr)

    def open(self, hdr, ct):
        """(type, payload) of an authenticated record; the caller checks the rest."""
        try:
            inner = self.aead.decrypt(self.nonce(), ct, hdr).rstrip(b'\0')
        except InvalidTag:
            raise Fail(3, 'record failed authentication') from None
        if not inner:
            raise fatal('malformed record: only zero bytes')
        return inner[-1], inner[:-1]

def padding(n, size):
    """Section 6: inner padded to a multiple of SIZE, at most 16640 bytes."""
    return min(-(-(n + 1) // size) * size, MAXINNER) - n - 1

class ReceiveKeys:
    """This side's receive keys (section 5.1): index -> X25519 private half.

    The receiving thread asks for key k+1 when a REKEY uses key k (the
    newest); the sending thread makes and announces it; a REKEY that uses
    key j retires every key below j.  So at most two are alive."""
    def __init__(self):
        self.lock = threading.Lock()
        self.alive, self.sent, self.wanted = {}, -1, 0    # key 0 is sent at once

    def pending(self):
        with self.lock:
            return self.wanted > self.sent

    def announce(self, private=None):
        """The payload of the KEY record for the next key (called by the sender)."""
        with self.lock:
            assert self.wanted > self.sent, 'KEY sent before the peer used the last one'
            self.sent += 1
            note('announced key %d' % self.sent)
            self.alive[self.sent] = private or X25519PrivateKey.generate()
            return self.sent, raw_public(self.alive[self.sent])

    def use(self, index, e_pub):
        """Section 5.3, checks 2 and 3, then the retirements: the DH value."""
        with self.lock:
            if index > self.sent:
                raise fatal('REKEY names unannounced key %d' % index)
            if index not in self.alive:
                raise fatal('REKEY names retired key %d' % index)
            dh = x25519(self.alive[index], e_pub)
            if dh is None:
                raise fatal('REKEY with a low-order key')
            for old in [k for k in self.alive if k < index]:
                del self.alive[old]
            return dh

    def want_next(self, index):
        """A REKEY used key INDEX: if it is the newest, the next one is due."""
        with self.lock:
            if index == self.sent and self.sent < MAX_INDEX:
                self.wanted = self.sent + 1
                return True
            return False

    def erase(self):
        with self.lock:
            self.alive.clear()

class Side:
    """One end's protocol state, without I/O: its sending direction (tx,
    called from one thread) and the peer's direction as received (rx, from
    another).  Section 4.1's states: tx KEY0 -> OPEN -> CLOSED -> DONE,
    rx WAIT_KEY0 -> OPEN -> CLOSED -> DONE."""
    def __init__(self, tx_secret, rx_secret):
        self.tx, self.rx = Chain(tx_secret), Chain(rx_secret)
        self.keys = ReceiveKeys()
        self.peer_keys = []             # the peer's receive keys (public), by index
        self.used = -1                  # highest peer key index our REKEYs named
        self.tx_state, self.rx_state = 'KEY0', 'WAIT_KEY0'
        self.key0 = threading.Event()   # the peer's KEY 0 has arrived
        self.last_rekey = None          # (dh, salt) of the last REKEY, for --selftest

    # -- sending direction: each seal_ method returns the bytes to send --
    def seal_key(self, private=None):
        """The KEY that is due (KEY 0 first): (its index, the record)."""
        assert self.tx_state in ('KEY0', 'OPEN', 'CLOSED')
        index, pub = self.keys.announce(private)
        wire = self.tx.seal(KEY, pub)
        self.tx_state = 'OPEN' if self.tx_state == 'KEY0' else self.tx_state
        return index, wire

    def due_keys(self):
        """Section 5.1: a KEY that is due goes before any other record."""
        wires = b''
        while self.keys.pending():
            wires += self.seal_key()[1]
        return wires

    def seal_data(self, payload, pad=0):
        assert self.tx_state == 'OPEN'
        return self.due_keys() + self.tx.seal(DATA, payload, pad)

    def seal_rekey(self, e=None, index=None, e_pub=None, payload=None):
        """A REKEY naming the peer's newest key; the arguments make bad ones.

        A good REKEY switches to S' (next record at seq 0); a bad one is the
        last thing this side sends, so it leaves the chain as it is."""
        assert self.tx_state in ('OPEN', 'CLOSED') and self.peer_keys
        keys = self.due_keys()
        newest = len(self.peer_keys) - 1
        good = index is None and e_pub is None and payload is None
        index = newest if index is None else index
        e = e or X25519PrivateKey.generate()
        if payload is None:
            payload = struct.pack('>I', index) + (raw_public(e) if e_pub is None else e_pub)
        self.used = max(self.used, index) if good else self.used
        wire = keys + self.tx.seal(REKEY, payload)
        if good:
            dh = x25519(e, self.peer_keys[index])
            del e                       # the one-time private half is used once
            if dh is None:
                raise fatal('peer sent a bad receive key')
            self.last_rekey = (dh, rekey_salt(self.tx.secret))
            self.tx = self.tx.next(dh)
            note('rekeyed (epoch %d, key %d)' % (self.tx.epoch, index))
        return wire

    def seal_close(self):
        assert self.tx_state == 'OPEN'
        keys = self.due_keys()
        self.tx_state = 'CLOSED'
        return keys + self.tx.seal(CLOSE)

    def can_done(self):
        return self.tx_state == 'CLOSED' and self.rx_state in ('CLOSED', 'DONE')

    def seal_done(self):
        assert self.can_done()
        wire = self.due_keys() + self.tx.seal(DONE)
        self.tx_state, self.tx = 'DONE', None   # the sending direction is over
        return wire

    # -- receiving direction --
    def open(self, hdr, ct):
        """Open one record of the peer's direction and apply sections 4 and 5.

        Returns (type, payload); a REKEY has switched rx, a KEY has been
        added to peer_keys, and keys.pending() says a KEY of ours is due."""
        if self.rx_state == 'DONE':
            raise fatal('data after DONE')
        typ, payload = self.rx.open(hdr, ct)
        name = NAMES.get(typ)     # the order of the checks is section 4.1's
        if name is None:
            raise fatal('malformed record: unknown type %d' % typ)
        if self.rx_state == 'WAIT_KEY0' and typ != KEY:
            raise fatal('first record is not KEY')
        if self.rx_state == 'CLOSED' and typ in (DATA, CLOSE):
            raise fatal('%s after CLOSE' % name)
        if typ == DONE and self.rx_state != 'CLOSED':
            raise fatal('DONE before CLOSE')
        if typ == DONE and self.tx_state not in ('CLOSED', 'DONE'):
            raise fatal('DONE before this side sent CLOSE')
        if typ in SIZES and len(payload) != SIZES[typ]:
            raise fatal('malformed record: %s payload of %d bytes' % (name, len(payload)))
        if typ == DATA and len(payload) > MAXPAY:
            raise fatal('malformed record: DATA payload of %d bytes' % len(payload))
        if typ == KEY:
            j = len(self.peer_keys)
            if j >= 1 and self.used < j - 1:
                raise fatal('KEY announced before the last one was used')
            self.peer_keys.append(payload)
            note('got key %d' % j)
            self.key0.set()
            self.rx_state = 'OPEN' if self.rx_state == 'WAIT_KEY0' else self.rx_state
        elif typ == REKEY:
            index = int.from_bytes(payload[:4], 'big')
            dh = self.keys.use(index, payload[4:])
            self.last_rekey = (dh, rekey_salt(self.rx.secret))
            self.rx = self.rx.next(dh)
            note('peer rekeyed (epoch %d, key %d)' % (self.rx.epoch, index))
            if self.tx_state != 'DONE':
                self.keys.want_next(index)
        elif typ == CLOSE:
            self.rx_state = 'CLOSED'
        elif typ == DONE:
            self.rx_state, self.rx = 'DONE', None
            self.keys.erase()
        return typ, payload

def recv_exact(sock, n):
    """N bytes, or fewer if the stream ended; a socket error is raised."""
    buf = b''
    while len(buf) < n and (chunk := sock.recv(n - len(buf))):
        buf += chunk
    return buf

def hello(sock, n):             # receive handshake message 1 or 2
    msg = recv_exact(sock, 8)
    if msg[:7] == MAGIC[:7] and len(msg) == 8 and msg[7] != VERSION:
        raise Fail(1, 'peer speaks secchat/%d, not secchat/%d' % (msg[7], VERSION))
    if msg != MAGIC[:len(msg)]:
        raise Fail(1, 'peer is not speaking secchat/%d' % VERSION)
    msg += recv_exact(sock, n - len(msg))
    if len(msg) < n:
        raise Fail(1, 'connection closed during the handshake')
    return msg

def handshake_listener(sock, password, iterations):
    salt = secrets.token_bytes(16)
    w, y = password_scalar(password, salt, iterations), 1 + secrets.randbelow(ORDER - 1)
    pb = encode(add(mul(y, G), mul(w, N)))
    aad = MAGIC + iterations.to_bytes(4, 'big') + salt
    sock.sendall(aad + pb)
    msg2 = hello(sock, 105)
    pa = msg2[8:73]
    d = derive(ID_A, ID_B, pa, pb, shared_point(y, decode(pa), w, M), w, aad)
    if not hmac.compare_digest(d['cA'], msg2[73:]):
        raise Fail(3, WRONG)
    sock.sendall(d['cB'])
    return Side(d['s2c0'], d['c2s0'])

def handshake_connector(sock, password):
    msg1 = hello(sock, 93)
    iterations = int.from_bytes(msg1[8:12], 'big')
    if not 1000 <= iterations <= 10000000:
        raise Fail(1, 'iteration count %d out of range' % iterations)
    aad, pb = msg1[:28], msg1[28:]
    pb_pt = decode(pb)
    w, x = password_scalar(password, msg1[12:28], iterations), 1 + secrets.randbelow(ORDER - 1)
    pa = encode(add(mul(x, G), mul(w, M)))
    d = derive(ID_A, ID_B, pa, pb, shared_point(x, pb_pt, w, N), w, aad)
    sock.sendall(MAGIC + pa + d['cA'])
    try:
        cb = recv_exact(sock, 32)
    except ConnectionError:
        cb = b''
    if not hmac.compare_digest(d['cB'], cb):
        raise Fail(3, WRONG)
    return Side(d['c2s0'], d['s2c0'])

VERBOSE = []                    # -v: notes on stderr (set once, in main)

def note(msg):                  # one write per line: two threads take notes
    if VERBOSE:
        os.write(2, b'peer: %s\n' % msg.encode())

def die(e):
    """One "peer: " line, then the status (from any thread)."""
    print('peer: %s' % e, file=sys.stderr, flush=True)
    os._exit(e.code if isinstance(e, Fail) else 1)

def lost(side, err):
    """Section 7: a connection that ended early, reported by the peer's state."""
    if side.rx_state in ('WAIT_KEY0', 'OPEN'):
        return Fail(1, err or 'connection closed before CLOSE: %s' % TRUNC)
    return Fail(1, '%s: %s' % (err or 'connection closed before DONE', UNCONFIRMED))

def read_record(sock, side):
    try:
        hdr = recv_exact(sock, 2)
        if len(hdr) < 2:
            raise lost(side, None)
        length = int.from_bytes(hdr, 'big')
        if not 1 + TAG <= length <= MAXINNER + TAG:
            raise fatal('malformed record: bad length %d' % length)
        ct = recv_exact(sock, length)
    except OSError as e:
        raise lost(side, 'read from network: %s' % e.strerror) from None
    if len(ct) < length:
        raise lost(side, None)
    return hdr, ct

def nothing_after_done(sock):
    """Section 4.1: no byte may follow DONE; we look at what has arrived."""
    try:
        extra = sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK)
    except OSError:             # nothing there (EAGAIN), or a reset: no data
        extra = b''
    if extra:
        raise fatal('data after DONE')

def wait_for_end(sock):
    """A misbehaviour mode's end: discard input until the other side closes."""
    deadline = time.monotonic() + END_WAIT
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                return 0
    except socket.timeout:
        pass
    except OSError:             # a reset ends it too
        return 0
    raise Fail(1, 'still open')

class Writer(threading.Thread):
    """Owns the sending direction: every record this side sends goes here.

    Other threads only queue events ('data', 'eof' from stdin; 'wake' when a
    KEY is due or the peer's CLOSE came), so a writer blocked on a full socket
    never blocks the receiver (which would deadlock two peers)."""
    def __init__(self, sock, side, opts):
        super().__init__(daemon=True)
        self.sock, self.side, self.opts = sock, side, opts
        self.q, self.errors, self.data_count = queue.Queue(), [], 0
        self.fault = threading.Event()      # a misbehaviour went out: wait for the end
        self.done = threading.Event()       # our DONE is with the kernel

    def send(self, *wires):             # several records: one send call
        self.sock.sendall(b''.join(wires))

    def run(self):
        try:
            if self.opts.key0_delay:        # a slow peer: KEY 0 comes late
                time.sleep(self.opts.key0_delay)
                os.write(2, b'peer: sending KEY 0\n')
            self.send(self.side.seal_key()[1])  # KEY 0, at once
            while not self.step(*self.q.get()):
                pass
        except Fail as e:
            die(e)
        except OSError as e:            # the receiver usually has the better story
            self.errors.append(e)
        except Exception as e:          # a bug: never a silent, hanging writer
            die(Fail(1, 'internal error in the writer: %r' % e))

    def step(self, ev, arg=None):
        """One event; True once this side has sent its last record."""
        s, o = self.side, self.opts
        self.send(s.due_keys())         # 'wake': a KEY is due
        if ev == 'data':
            self.send(s.seal_data(arg, padding(len(arg), o.P)))
            self.data_count += 1
            if (o.r and self.data_count >= o.r) or s.tx.seq + 2 >= SEQ_LIMIT:
                if self.rekey():
                    return True
        elif ev == 'eof':
            while o.bad_rekey and not self.rekey():
                pass                    # the bad REKEY goes out before CLOSE
            if o.bad_rekey:
                return True
            wires = [s.seal_close()]
            if o.data_after_close:
                self.fault.set()
                wires.append(s.tx.seal(DATA, b'data after close\n'))
            self.send(*wires)
            if o.data_after_close or o.reset is not None:
                return True
        if s.can_done():
            if o.no_done:               # close without DONE (os._exit closes it)
                os._exit(0)
            tx = s.tx
            wires = [s.seal_done()]
            if o.key_after_done:
                self.fault.set()
                wires.append(tx.seal(KEY, raw_public(X25519PrivateKey.generate())))
            self.send(*wires)
            self.done.set()
            return True
        return False

    def rekey(self):
        """A due REKEY, after the peer's KEY 0 (5.2); True if it was the bad one."""
        s, kind = self.side, self.opts.bad_rekey
        s.key0.wait()
        if kind and (kind != 'retired' or s.used >= 1):
            self.bad_rekey(kind)
            return True
        self.send(s.seal_rekey())
        self.data_count = 0
        if kind == 'retired' and s.used == 0:
            self.wait_key1()
        return False

    def wait_key1(self):
        """--bad-rekey retired: no more DATA until the other side's KEY 1."""
        deadline = time.monotonic() + KEY1_WAIT
        while len(self.side.peer_keys) < 2:
            if time.monotonic() > deadline:
                raise Fail(1, 'no KEY 1')
            self.send(self.side.due_keys())  # our own KEY 1 still goes at once
            time.sleep(0.01)

    def bad_rekey(self, kind):
        """--bad-rekey KIND (doc/peer-test-modes.md), sealed properly; then
        this side sends nothing more.  'retired' comes after REKEYs naming 0
        and then 1, so the other side has erased key 0."""
        s = self.side
        newest = len(s.peer_keys) - 1
        if kind == 'retired':
            wire = s.seal_rekey(index=0)
        elif kind == 'unannounced':
            wire = s.seal_rekey(index=newest + 1)
        elif kind == 'lowpoint':
            wire = s.seal_rekey(e_pub=bytes(32))
        else:                           # truncated: the index alone
            wire = s.seal_rekey(payload=struct.pack('>I', newest))
        self.fault.set()
        self.send(wire)

def read_stdin(q):
    """Thread: stdin in line mode (lines over 16384 bytes split), then 'eof'."""
    while line := sys.stdin.buffer.readline(MAXPAY):
        q.put(('data', line))
    q.put(('eof',))

def receive(sock, side, w):
    """Main thread: the peer's records until its DONE (or, after one of our
    misbehaviours, until anything happens at all)."""
    while True:
        try:
            hdr, ct = read_record(sock, side)
            if w.fault.is_set():
                return
            typ, payload = side.open(hdr, ct)
        except Fail:
            if w.fault.is_set():
                return
            raise
        if side.keys.pending() or typ == CLOSE:
            w.q.put(('wake',))
        if typ == DATA:
            try:
                sys.stdout.buffer.write(payload)
                sys.stdout.buffer.flush()
            except OSError as e:
                raise Fail(1, 'stdout: %s' % e.strerror) from None
        elif typ == DONE:
            nothing_after_done(sock)
            return

def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('-l', action='store_true')
    ap.add_argument('-i', type=int, default=600000)
    ap.add_argument('-p')
    ap.add_argument('-r', type=int, default=1000)
    ap.add_argument('-P', type=int, default=1)
    ap.add_argument('-v', action='store_true')
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument('--reset', type=float, metavar='SEC')
    mode.add_argument('--hold-open', action='store_true')
    mode.add_argument('--no-done', action='store_true')
    mode.add_argument('--bad-rekey', choices=('retired', 'unannounced', 'lowpoint', 'truncated'))
    mode.add_argument('--key-after-done', action='store_true')
    mode.add_argument('--data-after-close', action='store_true')
    mode.add_argument('--key0-delay', type=float, metavar='SEC')
    ap.add_argument('--selftest', action='store_true')
    ap.add_argument('where', nargs='*', metavar='[HOST] PORT')
    a = ap.parse_args()
    if a.selftest:
        return selftest()
    VERBOSE.extend([1] if a.v else [])
    if len(a.where) not in (1, 2) or not a.p or a.r < 0 or not 1 <= a.i < 2**32 \
            or not 1 <= a.P <= MAXPAY:
        ap.error('need -p PASSFILE and [HOST] PORT')
    host, port = (['127.0.0.1'] + a.where)[-2], int(a.where[-1])
    with open(a.p, 'rb') as f:
        password = re.sub(rb'\r?\n\Z', b'', f.read(), count=1)
    if not password:
        raise Fail(1, 'empty password')
    if a.l:
        fam = socket.AF_INET6 if ':' in host else socket.AF_INET
        srv = socket.create_server((host, port), family=fam, backlog=1)
        print('peer: listening on port %d' % srv.getsockname()[1], file=sys.stderr, flush=True)
        sock = srv.accept()[0]
        srv.close()
        side = handshake_listener(sock, password, a.i)
    else:
        sock = socket.create_connection((host, port))
        side = handshake_connector(sock, password)
    if a.reset is not None:
        a.r = 0                 # it reads nothing, so it never has KEY 0 to rekey to
    w = Writer(sock, side, a)
    w.start()
    threading.Thread(target=read_stdin, args=(w.q,), daemon=True).start()
    if a.reset is not None:     # a fault: CLOSE, SEC seconds, a reset
        w.join()
        time.sleep(a.reset)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        sock.close()
        return 0
    receive(sock, side, w)
    w.join(10)
    if w.fault.is_set():
        return wait_for_end(sock)
    if w.errors:
        raise Fail(1, 'write to network: %s' % w.errors[0].strerror)
    if not w.done.is_set():
        raise Fail(1, 'DONE not sent')
    if a.hold_open:             # a fault: the DONEs are exchanged, the socket stays open
        return wait_for_end(sock)
    sock.close()
    return 0

def vectors(name):
    """The blocks of "name = value" lines of tests/data/NAME, as dicts."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', name)
    with open(path) as f:
        text = ''.join(l for l in f if not l.startswith('#'))
    return [dict((s.strip() for s in l.split('=', 1)) for l in block.strip().splitlines())
            for block in text.split('\n\n') if block.strip()]

def check(want, got, inputs, label):
    unchecked = set(want) - set(got) - set(inputs)
    assert not unchecked, '%s: values not checked: %s' % (label, sorted(unchecked))
    for k in got:
        assert got[k] == want.get(k), '%s: %s = %s, file says %s' % (label, k, got[k], want.get(k))

def spake_values(v, id_a, id_b, w, aad):
    """pA, pB, K (computed by both parties) and derive() from x, y and w."""
    x, y = int(v['x'], 16), int(v['y'], 16)
    pa, pb = encode(add(mul(x, G), mul(w, M))), encode(add(mul(y, G), mul(w, N)))
    k = shared_point(x, decode(pb), w, N)
    assert k == shared_point(y, decode(pa), w, M), 'K differs between A and B'
    got = {'pA': pa.hex(), 'pB': pb.hex()}
    return pa, pb, k, derive(id_a, id_b, pa, pb, k, w, aad), got

def x25519_input(hexstr):
    return X25519PrivateKey.from_private_bytes(bytes.fromhex(hexstr))

def session_record(v, n, snd, got):
    """Seal record N of the session file from SND's state: (type, payload, wire)."""
    dr, _, ep, _, sq, tname, *fields = v[n].split()
    fields = dict(f.split('=', 1) for f in fields)
    typ, pad = {b: a for a, b in NAMES.items()}[tname], int(fields.pop('padding'))
    assert (snd.tx.epoch, snd.tx.seq) == (int(ep), int(sq)), n + ': epoch/seq do not follow'
    assert (typ in (KEY, REKEY)) == ('index' in fields) and (typ == DATA or pad == 0), \
        n + ': bad description line'
    if typ == KEY:
        private = x25519_input(v[n + '.private'])
        index, wire = snd.seal_key(private)
        payload = raw_public(private)
    elif typ == REKEY:
        index, e = len(snd.peer_keys) - 1, x25519_input(v[n + '.ephemeral'])
        payload = struct.pack('>I', index) + raw_public(e)
        wire = snd.seal_rekey(e)
        new = '%s%d' % (dr, snd.tx.epoch)
        got.update({n + '.dh': snd.last_rekey[0].hex(), n + '.salt': snd.last_rekey[1].hex(),
                    new: snd.tx.secret.hex(), new + '.key': snd.tx.key.hex(),
                    new + '.iv': snd.tx.iv.hex()})
    elif typ == DATA:
        payload = bytes.fromhex(v[n + '.payload'])
        wire = snd.seal_data(payload, pad)
    else:
        payload, wire = b'', snd.seal_close() if typ == CLOSE else snd.seal_done()
    if 'index' in fields:
        assert int(fields['index']) == index, n + ': index does not follow'
    got[n + '.payload'], got[n + '.wire'] = payload.hex() or '-', wire.hex()
    return typ, payload, wire

def session_selftest():
    """tests/data/secchat2-session.txt: the handshake, then every record sealed
    by one Side and opened by the other, under all the rules of sections 4-7."""
    v = {k: x for block in vectors('secchat2-session.txt') for k, x in block.items()}
    salt, iters = bytes.fromhex(v['salt']), int(v['iterations'])
    w = password_scalar(v['password'].encode(), salt, iters)
    aad = MAGIC + iters.to_bytes(4, 'big') + salt
    pa, pb, k, d, got = spake_values(v, ID_A, ID_B, w, aad)
    got.update(w='%064x' % w, K=k.hex(), msg1=(aad + pb).hex(),
               msg2=(MAGIC + pa + d['cA']).hex(), msg3=d['cB'].hex())
    got.update((n, d[n].hex()) for n in ('TT', 'Ke', 'Ka', 'KcA', 'KcB', 'c2s0', 's2c0'))
    side = {'c2s': Side(d['c2s0'], d['s2c0']), 's2c': Side(d['s2c0'], d['c2s0'])}
    for dr in side:
        got[dr + '0.key'], got[dr + '0.iv'] = side[dr].tx.key.hex(), side[dr].tx.iv.hex()
    inputs = ['password', 'salt', 'iterations', 'x', 'y']
    r = 0
    while (n := 'record%d' % r) in v:
        dr, tname = v[n].split()[0], v[n].split()[5]
        snd, rcv = side[dr], side['s2c' if dr == 'c2s' else 'c2s']
        assert tname == 'KEY' or not snd.keys.pending(), n + ': a KEY is due first'
        typ, payload, wire = session_record(v, n, snd, got)
        assert rcv.open(wire[:2], wire[2:]) == (typ, payload), n + ': round trip'
        if typ == REKEY:
            assert rcv.last_rekey == snd.last_rekey and rcv.rx.secret == snd.tx.secret
        inputs += [n, n + '.private', n + '.ephemeral'] + ([n + '.payload'] if typ == DATA else [])
        r += 1
    assert all(s.tx_state == s.rx_state == 'DONE' for s in side.values()), 'session not over'
    check(v, got, inputs, 'secchat2-session')
    rules_selftest(d['c2s0'], d['s2c0'])

def deliver(wires, rcv):
    """Open every record in WIRES (one send's bytes) at RCV: their types."""
    types = []
    while wires:
        n = 2 + int.from_bytes(wires[:2], 'big')
        types.append(rcv.open(wires[:2], wires[2:n])[0])
        wires = wires[n:]
    return types

def rules_selftest(c2s0, s2c0):
    """Sections 4.1, 5 and 8 in memory: padding is accepted on every type,
    and each fatal condition gives its status and line."""
    def pair(opened=True):      # connector c, listener s; KEY 0 both ways
        c, s = Side(c2s0, s2c0), Side(s2c0, c2s0)
        if opened:
            assert deliver(c.seal_key()[1], s) == deliver(s.seal_key()[1], c) == [KEY]
        return c, s

    def fails(msg, fn, code=3):
        try:
            fn()
        except Fail as e:
            assert (e.code, str(e)) == (code, msg), 'rules: %r, wanted %r' % (str(e), msg)
            return
        raise AssertionError('rules: no failure, wanted %r' % msg)

    pub = raw_public(X25519PrivateKey.generate())
    c, s = pair(False)          # any padding on any record, up to inner = 16640
    c.keys.announce()
    assert s.open(*split(c.tx.seal(KEY, pub, 77))) == (KEY, pub)
    assert s.open(*split(c.tx.seal(DATA, b'x' * MAXPAY, MAXINNER - MAXPAY - 1))) == \
        (DATA, b'x' * MAXPAY)
    assert s.open(*split(c.tx.seal(CLOSE, b'', 3))) == (CLOSE, b'')
    c, s = pair()               # two REKEYs of c, s's key 1 between them: good
    deliver(c.seal_rekey(), s)
    deliver(s.seal_data(b'hi\n'), c)   # s's KEY 1 goes first
    assert deliver(c.seal_rekey(), s) == [REKEY] and sorted(s.keys.alive) == [1]
    c, s = pair(False)
    fails('first record is not KEY', lambda: s.open(*split(c.tx.seal(DATA, b'x'))))
    c, s = pair()
    fails('KEY announced before the last one was used',
          lambda: s.open(*split(c.tx.seal(KEY, pub))))
    bad = ((6, b'', 'malformed record: unknown type 6'),
           (0, b'', 'malformed record: only zero bytes'),
           (KEY, pub[:31], 'malformed record: KEY payload of 31 bytes'),
           (CLOSE, b'x', 'malformed record: CLOSE payload of 1 bytes'),
           (DATA, bytes(MAXPAY + 1), 'malformed record: DATA payload of 16385 bytes'),
           (DONE, b'', 'DONE before CLOSE'),
           (REKEY, pub, 'malformed record: REKEY payload of 32 bytes'),
           (REKEY, struct.pack('>I', 1) + pub, 'REKEY names unannounced key 1'),
           (REKEY, bytes(36), 'REKEY with a low-order key'))
    for typ, payload, msg in bad:
        c, s = pair()
        fails(msg, lambda: s.open(*split(c.tx.seal(typ, payload))))
    c, s = pair()
    deliver(c.seal_rekey(), s)
    deliver(s.due_keys(), c)
    deliver(c.seal_rekey(), s)
    fails('REKEY names retired key 0', lambda: s.open(*split(c.seal_rekey(index=0))))
    c, s = pair()
    deliver(c.seal_close(), s)
    fails('DONE before this side sent CLOSE', lambda: s.open(*split(c.tx.seal(DONE))))
    for typ, msg in ((DATA, 'DATA after CLOSE'), (CLOSE, 'CLOSE after CLOSE')):
        c, s = pair()
        deliver(c.seal_close(), s)
        fails(msg, lambda: s.open(*split(c.tx.seal(typ))))
    c, s = pair()
    deliver(c.seal_close(), s)
    deliver(s.seal_close(), c)
    assert deliver(c.seal_done(), s) == [DONE]
    fails('data after DONE', lambda: s.open(b'\0\x11', bytes(17)))
    c, s = Side(c2s0, s2c0), Side(s2c0, c2s0)
    deliver(c.seal_key()[1], s)
    s.keys.announce()
    deliver(s.tx.seal(KEY, bytes(32)), c)   # u = 0: every DH with it is zero
    fails('peer sent a bad receive key', c.seal_rekey)
    c, s = pair()
    wire = bytearray(c.seal_data(b'x'))
    wire[-1] ^= 1
    fails('record failed authentication', lambda: s.open(*split(bytes(wire))))
    c, s = pair()
    s.rx.seq = SEQ_LIMIT
    fails('too many records under one key', lambda: s.open(*split(c.seal_data(b'x'))))

def split(wire):
    return wire[:2], wire[2:]

def selftest():
    for i, v in enumerate(vectors('rfc9382-p256.txt')):
        *_, d, got = spake_values(v, v['idA'].encode(), v['idB'].encode(), int(v['w'], 16), b'')
        got.update((n, d[n].hex()) for n in ('Ke', 'Ka', 'KcA', 'KcB', 'cA', 'cB'))
        check(v, got, ('idA', 'idB', 'w', 'x', 'y'), 'rfc9382 vector %d' % i)
    session_selftest()
    print('peer selftest ok')
    return 0

if __name__ == '__main__':
    try:
        sys.exit(main())
    except AssertionError as e:
        what = 'selftest failed' if '--selftest' in sys.argv else 'internal error'
        die(Fail(1, '%s: %s' % (what, e)))
    except (Fail, OSError, ValueError) as e:
        die(e)
    except KeyboardInterrupt:
        die(Fail(1, 'interrupted'))
