#!/usr/bin/python3
"""Independent secchat/2 peer, written from doc/PROTOCOL.md alone (no C code).

usage: peer.py [-l] [-i ITER] [-p PASSFILE] [-r N] [-P SIZE] [FAULT] [HOST] PORT
       peer.py --selftest

-l listens on HOST (default 127.0.0.1) PORT (0 = any), prints "peer: listening
on port N" to stderr and accepts one connection; without -l it connects.  -p:
the password is the file minus one trailing "\\n" or "\\r\\n".  -i: iterations
the listener announces (default 600000; a connector accepts 1000..10000000).
-r N: a DH REKEY after every N DATA records (default 1000, 0 = never).  -P SIZE:
pad DATA records to a multiple of SIZE bytes of inner plaintext.
One thread reads stdin in line mode (lines over 16384 bytes split); one writer
thread seals and sends every record (KEY 0 first, DATA, REKEY, the KEYs the
receiver asks for, CLOSE, DONE); the main thread receives.  Exit 0 once DONE
is sent and the peer's DONE received; 3 on an authentication failure or a
protocol violation; 1 otherwise, after one "peer: " line.
Faults for tests (see doc/peer-test-modes.md): --reset SEC, --hold-open,
--no-done, --bad-rekey retired|unannounced|lowpoint|truncated,
--key-after-done, --data-after-close.
--selftest recomputes tests/data/secchat2-session.txt and rfc9382-p256.txt.
Test tool only: no terminal shortcut (section 7), hex display or timed rekey;
scalar multiplication is not constant time; old keys are dropped, not wiped.
"""
import argparse, hashlib, hmac, os, queue, re, secrets, socket, struct, sys, threading, time
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

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
MAXINNER, TAG = MAXPAY + 256, 16
DATA, REKEY, CLOSE, KEY, DONE = 1, 2, 3, 4, 5
NAMES = {DATA: 'DATA', REKEY: 'REKEY', CLOSE: 'CLOSE', KEY: 'KEY', DONE: 'DONE'}
PUBLEN, REKEYLEN = 32, 4 + 32       # KEY payload; REKEY payload u32 index || E
WRONG = 'wrong password, or the connection was tampered with'
TRUNC = 'connection closed before CLOSE: data may be missing'
UNCONFIRMED = 'peer did not confirm receipt'

class Fail(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code

def violation(msg):
    return Fail(3, 'protocol violation: ' + msg)

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
    """X25519(private, public) as bytes; an all-zero result is fatal."""
    try:
        z = private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:          # OpenSSL refuses the all-zero result itself
        z = bytes(32)
    if z == bytes(32):
        raise Fail(3, 'protocol violation: REKEY with a low-order key (all-zero X25519)')
    return z

def next_secret(secret, dh):
    """S' = HKDF-Extract(salt = HKDF-Expand(S, "rekey", 32), IKM = DH)."""
    return hkdf_extract(hkdf_expand(secret, b'rekey', 32), dh)

def raw_public(private):
    return private.public_key().public_bytes_raw()

class Chain:
    """One direction: current secret, AES-256-GCM key, IV and seq."""
    def __init__(self, secret):
        self.secret, self.key = secret, hkdf_expand(secret, b'key', 32)
        self.iv, self.seq = hkdf_expand(secret, b'iv', 12), 0
        self.aead = AESGCM(self.key)

    def nonce(self):
        if self.seq >= SEQ_LIMIT:
            raise violation('seq reached 2^24')
        self.seq += 1
        return (int.from_bytes(self.iv, 'big') ^ (self.seq - 1)).to_bytes(12, 'big')

    def seal(self, typ, payload=b'', pad=0):
        inner = payload + bytes([typ]) + bytes(pad)
        hdr = (len(inner) + TAG).to_bytes(2, 'big')
        return hdr + self.aead.encrypt(self.nonce(), inner, hdr)

    def open(self, hdr, ct):
        """(type, payload) of an authenticated record; the caller checks the rest."""
        try:
            inner = self.aead.decrypt(self.nonce(), ct, hdr).rstrip(b'\0')
        except InvalidTag:
            raise Fail(3, 'record failed authentication') from None
        if not inner:
            raise violation('record of only zeros')
        return inner[-1], inner[:-1]

def recv_exact(sock, n):        # fewer than n bytes: the stream ended
    buf = b''
    try:
        while len(buf) < n and (chunk := sock.recv(n - len(buf))):
            buf += chunk
    except ConnectionResetError:
        pass
    return buf

def hello(sock, n):             # receive handshake message 1 or 2
    msg = recv_exact(sock, n)
    if msg[:8] != MAGIC[:len(msg)]:
        raise Fail(1, 'the peer does not speak secchat/%d' % VERSION)
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
    return Chain(d['s2c0']), Chain(d['c2s0'])

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
    if not hmac.compare_digest(d['cB'], recv_exact(sock, 32)):
        raise Fail(3, WRONG)
    return Chain(d['c2s0']), Chain(d['s2c0'])

class ReceiveKeys:
    """This side's X25519 receive keys: index -> private half.

    The receiver makes key k+1 when the peer's REKEY has used key k (the
    newest); the writer announces it in a KEY record; a REKEY that uses key
    k+1 retires key k.  So at most two are alive."""
    def __init__(self, first=None):
        self.lock = threading.Lock()
        self.alive, self.made, self.sent = {}, -1, -1
        self.make(first)

    def make(self, private=None):
        with self.lock:
            self.made += 1
            self.alive[self.made] = private or X25519PrivateKey.generate()
            return self.made

    def public(self, index):
        with self.lock:
            return raw_public(self.alive[index])

    def announced(self, index):
        with self.lock:
            self.sent = index

    def use(self, index, e):
        """The DH value of a REKEY that names key INDEX with one-time key E."""
        with self.lock:
            if index > self.sent:
                raise violation('REKEY names receive key %d, not announced' % index)
            if index not in self.alive:
                raise violation('REKEY names receive key %d, already retired' % index)
            dh = x25519(self.alive[index], e)
            self.alive.pop(index - 1, None)
            return dh, index == self.made

class Writer(threading.Thread):
    """Owns the sending direction: every record this side sends goes here.

    Other threads only queue events, so a writer blocked on a full socket
    never blocks the receiver (which would deadlock two peers)."""
    def __init__(self, sock, tx, keys, opts):
        super().__init__(daemon=True)
        self.sock, self.tx, self.keys, self.opts = sock, tx, keys, opts
        self.q, self.errors = queue.Queue(), []
        self.peer_key = None            # (index, public) of the peer's newest KEY
        self.data_count, self.rekey_due, self.used = 0, False, -1
        self.close_sent = threading.Event()
        self.done_sent = threading.Event()
        self.peer_closed = False

    def send(self, typ, payload=b'', pad=0):
        self.sock.sendall(self.tx.seal(typ, payload, pad))

    def rekey(self, index=None, e_pub=None, payload=None):
        """REKEY with a fresh one-time key E; the next record uses S'."""
        index = self.peer_key[0] if index is None else index
        e = X25519PrivateKey.generate()
        if payload is None:
            payload = struct.pack('>I', index) + (e_pub or raw_public(e))
        secret = next_secret(self.tx.secret, x25519(e, self.peer_key[1])) \
            if e_pub is None and index == self.peer_key[0] else secrets.token_bytes(32)
        del e                           # the one-time private half is used once
        self.send(REKEY, payload)
        self.tx = Chain(secret)
        self.used = max(self.used, index)
        self.data_count, self.rekey_due = 0, False

    def try_rekey(self):
        if self.rekey_due and self.peer_key and not self.fault_rekey():
            self.rekey()

    def fault_rekey(self):
        """--bad-rekey: replace a due REKEY by a bad one once it can be told apart."""
        mode = self.opts.bad_rekey
        if not mode:
            return False
        idx = self.peer_key[0]
        if mode == 'retired':
            if self.used < 1:           # the peer retires key k when k+1 is used
                return False
            self.rekey(index=self.used - 1)
        elif mode == 'unannounced':
            self.rekey(index=idx + 1)
        elif mode == 'lowpoint':
            self.rekey(e_pub=bytes(32))
        elif mode == 'truncated':
            self.rekey(payload=struct.pack('>I', idx) + bytes(31))
        self.opts.bad_rekey = None      # one bad REKEY, then carry on
        return True

    def maybe_done(self):
        if self.close_sent.is_set() and self.peer_closed and not self.opts.no_done:
            self.send(DONE)
            self.done_sent.set()
            if self.opts.key_after_done:
                self.send(KEY, raw_public(X25519PrivateKey.generate()))
            return True
        return False

    def run(self):
        try:
            self.send(KEY, self.keys.public(0))
            self.keys.announced(0)
            while True:
                ev, *arg = self.q.get()
                if ev == 'data':
                    self.send(DATA, arg[0], self.pad(len(arg[0])))
                    self.data_count += 1
                    if (self.opts.r and self.data_count >= self.opts.r) or \
                            self.tx.seq >= SEQ_LIMIT - 2:
                        self.rekey_due = True
                    self.try_rekey()
                elif ev == 'peerkey':
                    self.peer_key = tuple(arg)
                    self.try_rekey()
                elif ev == 'key':
                    self.send(KEY, self.keys.public(arg[0]))
                    self.keys.announced(arg[0])
                elif ev == 'eof':
                    self.send(CLOSE)
                    self.close_sent.set()
                    if self.opts.data_after_close:
                        self.send(DATA, b'after close\n')
                    if self.opts.reset is not None:
                        return
                elif ev == 'peerclose':
                    self.peer_closed = True
                if ev in ('eof', 'peerclose') and self.maybe_done():
                    return
        except (OSError, Fail) as e:    # the receiver usually has the better story
            self.errors.append(e)

    def pad(self, n):
        size = self.opts.P
        return (-(n + 1) % size) if size else 0

def read_stdin(q):
    """Thread: stdin in line mode (lines over 16384 bytes split), then 'eof'."""
    while line := sys.stdin.buffer.readline(MAXPAY):
        q.put(('data', line))
    q.put(('eof',))

def read_record(sock, eof_msg):
    hdr = recv_exact(sock, 2)
    if len(hdr) < 2:
        raise Fail(1, eof_msg)
    length = int.from_bytes(hdr, 'big')
    if not 1 + TAG <= length <= MAXINNER + TAG:
        raise Fail(3, 'malformed record: bad length %d' % length)
    ct = recv_exact(sock, length)
    if len(ct) < length:
        raise Fail(1, eof_msg)
    return hdr, ct

def receive(sock, rx, keys, w):
    """Main thread: records to stdout until the peer's DONE."""
    closed, first, peer_keys = False, True, 0
    while True:
        eof_msg = UNCONFIRMED if closed and w.close_sent.is_set() else TRUNC
        typ, payload = rx.open(*read_record(sock, eof_msg))
        name = NAMES.get(typ, 'type %d' % typ)
        if first and typ != KEY:
            raise violation('first record is %s, not KEY' % name)
        first = False
        if typ == KEY:
            if len(payload) != PUBLEN:
                raise violation('KEY payload of %d bytes' % len(payload))
            w.q.put(('peerkey', peer_keys, payload))
            peer_keys += 1
        elif typ == REKEY:
            if len(payload) != REKEYLEN:
                raise violation('REKEY payload of %d bytes' % len(payload))
            dh, newest = keys.use(int.from_bytes(payload[:4], 'big'), payload[4:])
            rx = Chain(next_secret(rx.secret, dh))
            if newest and not w.done_sent.is_set():
                w.q.put(('key', keys.make()))
        elif typ == DATA:
            if closed:
                raise violation('DATA after CLOSE')
            if len(payload) > MAXPAY:
                raise violation('DATA payload of %d bytes' % len(payload))
            try:
                sys.stdout.buffer.write(payload)
                sys.stdout.buffer.flush()
            except OSError as e:
                raise Fail(1, 'stdout: %s' % e) from None
        elif typ == CLOSE and not payload and not closed:
            closed = True
            w.q.put(('peerclose',))
        elif typ == DONE and not payload and closed and w.close_sent.is_set():
            return
        else:
            raise violation('unexpected %s%s' % (name, ' with a payload' if payload else ''))

def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('-l', action='store_true')
    ap.add_argument('-i', type=int, default=600000)
    ap.add_argument('-p')
    ap.add_argument('-r', type=int, default=1000)
    ap.add_argument('-P', type=int, default=0)
    ap.add_argument('--reset', type=float, metavar='SEC')
    ap.add_argument('--hold-open', action='store_true')
    ap.add_argument('--no-done', action='store_true')
    ap.add_argument('--bad-rekey', choices=('retired', 'unannounced', 'lowpoint', 'truncated'))
    ap.add_argument('--key-after-done', action='store_true')
    ap.add_argument('--data-after-close', action='store_true')
    ap.add_argument('--selftest', action='store_true')
    ap.add_argument('where', nargs='*', metavar='[HOST] PORT')
    a = ap.parse_args()
    if a.selftest:
        return selftest()
    if len(a.where) not in (1, 2) or not a.p or a.r < 0 or not 1 <= a.i < 2**32 \
            or not 0 <= a.P <= MAXPAY:
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
        tx, rx = handshake_listener(sock, password, a.i)
    else:
        sock = socket.create_connection((host, port))
        tx, rx = handshake_connector(sock, password)
    keys = ReceiveKeys()
    w = Writer(sock, tx, keys, a)
    w.start()
    threading.Thread(target=read_stdin, args=(w.q,), daemon=True).start()
    if a.reset is not None:     # a fault: CLOSE, then a reset
        w.join()
        time.sleep(a.reset)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        sock.close()
        return 0
    receive(sock, rx, keys, w)
    w.join(10)
    if w.errors or w.is_alive():
        e = w.errors[0] if w.errors else 'DONE not sent'
        raise Fail(getattr(e, 'code', 1), 'send: %s' % e)
    if a.hold_open:             # a fault: keep our side open until the peer closes
        sock.settimeout(30)
        recv_exact(sock, 1)
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

def session_selftest():
    pass    # TODO: secchat2-session.txt

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
        print('peer: selftest failed: %s' % e, file=sys.stderr)
        sys.exit(1)
    except (Fail, OSError, ValueError) as e:
        print('peer: %s' % e, file=sys.stderr)
        os._exit(e.code if isinstance(e, Fail) else 1)
    except KeyboardInterrupt:
        print('peer: interrupted', file=sys.stderr)
        os._exit(1)
