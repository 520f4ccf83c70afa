#!/usr/bin/python3
"""Independent secchat/1 peer, written from doc/PROTOCOL.md alone (no C code).

usage: peer.py [-l] [-i ITER] [-p PASSFILE] [-r N] [--reset SEC] [HOST] PORT
       peer.py --selftest

-l listens on HOST (default 127.0.0.1) PORT (0 = any), prints "peer: listening
on port N" to stderr and accepts one connection; without -l it connects.  -p:
the password is the file minus one trailing "\n" or "\r\n".  -i: iterations
the listener announces (default 600000; a connector accepts 1000..10000000).
-r N: REKEY after every N DATA records (default 1000, 0 = never).  A thread
sends stdin in line mode (lines over 16384 bytes split), then CLOSE and
shutdown(SHUT_WR); the main thread writes received DATA to stdout.  Exit 0 once
both CLOSEs and EOF are done; 3 on an authentication failure (bad cA/cB, bad
point, GCM failure, protocol violation); 1 otherwise, after one "peer: " line.
--reset SEC (a fault for tests): after its CLOSE and shutdown, wait SEC seconds,
reset the connection without reading anything, and exit 0.
--selftest recomputes tests/data/secchat1-session.txt and rfc9382-p256.txt.
Test tool only: no terminal shortcut (section 7), hex display or timed rekey;
scalar multiplication is not constant time; old keys are dropped, not wiped.
"""
import argparse, hashlib, hmac, os, re, secrets, socket, struct, sys, threading, time
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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
ID_A, ID_B = b'secchat/1 connector', b'secchat/1 listener'
MAGIC, MAXPAY, SEQ_LIMIT = b'SECCHAT\x01', 16384, 1 << 24
WRONG = 'wrong password, or the connection was tampered with'

class Fail(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code

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
            'c2s0': hkdf_expand(prk, b'secchat/1 connector to listener', 32),
            's2c0': hkdf_expand(prk, b'secchat/1 listener to connector', 32)}

class Chain:
    """One direction: current secret, AES-256-GCM key, IV and seq."""
    def __init__(self, secret):
        self.secret, self.key = secret, hkdf_expand(secret, b'key', 32)
        self.iv, self.seq = hkdf_expand(secret, b'iv', 12), 0
        self.aead = AESGCM(self.key)

    def ratchet(self):          # the old secret, key and IV are dropped
        self.__init__(hkdf_expand(self.secret, b'rekey', 32))

    def nonce(self):
        if self.seq >= SEQ_LIMIT:
            raise Fail(3, 'protocol violation: seq reached 2^24')
        self.seq += 1
        return (int.from_bytes(self.iv, 'big') ^ (self.seq - 1)).to_bytes(12, 'big')

    def seal(self, typ, payload=b'', pad=0):
        inner = payload + bytes([typ]) + bytes(pad)
        hdr = (len(inner) + 16).to_bytes(2, 'big')
        wire = hdr + self.aead.encrypt(self.nonce(), inner, hdr)
        if typ == 2:            # our next record uses the next secret
            self.ratchet()
        return wire

    def open(self, hdr, ct):
        try:
            inner = self.aead.decrypt(self.nonce(), ct, hdr).rstrip(b'\0')
        except InvalidTag:
            raise Fail(3, 'record failed authentication') from None
        if not inner:
            raise Fail(3, 'protocol violation: record of only zeros')
        typ, payload = inner[-1], inner[:-1]
        if typ not in (1, 2, 3) or (typ != 1 and payload) or len(payload) > MAXPAY:
            raise Fail(3, 'protocol violation: bad record type %d' % typ)
        if typ == 2:
            self.ratchet()
        return typ, payload

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
        raise Fail(1, 'the peer does not speak secchat/1')
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

def sender(sock, tx, rekey_every, errors):
    """Thread: stdin in line mode, then CLOSE and a half-close."""
    try:
        while line := sys.stdin.buffer.readline(MAXPAY):
            sock.sendall(tx.seal(1, line))  # tx.seq = DATA records under this key
            if (rekey_every and tx.seq >= rekey_every) or tx.seq >= SEQ_LIMIT - 2:
                sock.sendall(tx.seal(2))
        sock.sendall(tx.seal(3))
        sock.shutdown(socket.SHUT_WR)
    except (OSError, Fail) as e:    # the receiver usually has the better story
        errors.append(e)

def receiver(sock, rx):
    """Main thread: records to stdout until the peer's CLOSE and EOF."""
    while True:
        hdr = recv_exact(sock, 2)
        if len(hdr) < 2:
            raise Fail(1, 'connection closed before CLOSE: data may be missing')
        length = int.from_bytes(hdr, 'big')
        if not 17 <= length <= MAXPAY + 256 + 16:
            raise Fail(3, 'malformed record: bad length %d' % length)
        ct = recv_exact(sock, length)
        if len(ct) < length:
            raise Fail(1, 'connection closed inside a record: data may be missing')
        typ, payload = rx.open(hdr, ct)
        if typ == 1:
            try:
                sys.stdout.buffer.write(payload)
                sys.stdout.buffer.flush()
            except OSError as e:
                raise Fail(1, 'stdout: %s' % e) from None
        elif typ == 3:
            if recv_exact(sock, 1):
                raise Fail(3, 'protocol violation: data after CLOSE')
            return

def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('-l', action='store_true')
    ap.add_argument('-i', type=int, default=600000)
    ap.add_argument('-p')
    ap.add_argument('-r', type=int, default=1000)
    ap.add_argument('--reset', type=float, metavar='SEC')
    ap.add_argument('--selftest', action='store_true')
    ap.add_argument('where', nargs='*', metavar='[HOST] PORT')
    a = ap.parse_args()
    if a.selftest:
        return selftest()
    if len(a.where) not in (1, 2) or not a.p or a.r < 0 or not 1 <= a.i < 2**32:
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
    errors = []
    t = threading.Thread(target=sender, args=(sock, tx, a.r, errors), daemon=True)
    t.start()
    if a.reset is not None:     # a fault: CLOSE, FIN, then a reset
        t.join()
        time.sleep(a.reset)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        sock.close()
        return 0
    receiver(sock, rx)
    t.join()
    if errors:
        raise Fail(getattr(errors[0], 'code', 1), 'send: %s' % errors[0])
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

def selftest():
    for i, v in enumerate(vectors('rfc9382-p256.txt')):
        *_, d, got = spake_values(v, v['idA'].encode(), v['idB'].encode(), int(v['w'], 16), b'')
        got.update((n, d[n].hex()) for n in ('Ke', 'Ka', 'KcA', 'KcB', 'cA', 'cB'))
        check(v, got, ('idA', 'idB', 'w', 'x', 'y'), 'rfc9382 vector %d' % i)
    v = vectors('secchat1-session.txt')[0]
    salt, iters = bytes.fromhex(v['salt']), int(v['iterations'])
    w = password_scalar(v['password'].encode(), salt, iters)
    aad = MAGIC + iters.to_bytes(4, 'big') + salt
    pa, pb, k, d, got = spake_values(v, ID_A, ID_B, w, aad)
    got.update(w='%064x' % w, K=k.hex(), msg1=(aad + pb).hex(),
               msg2=(MAGIC + pa + d['cA']).hex(), msg3=d['cB'].hex())
    got.update((n, d[n].hex()) for n in ('TT', 'Ke', 'Ka', 'KcA', 'KcB', 'c2s0', 's2c0'))
    send, recv = ({n: Chain(d[n + '0']) for n in ('c2s', 's2c')} for _ in 'sr')
    epoch = {'c2s': 0, 's2c': 0}
    for n in ('c2s', 's2c'):
        got[n + '0.key'], got[n + '0.iv'] = send[n].key.hex(), send[n].iv.hex()
    inputs = ['password', 'salt', 'iterations', 'x', 'y']
    r = 0
    while (name := 'record%d' % r) in v:
        dr, _, ep, _, sq, tname, pay, pad = v[name].split()
        typ = {'DATA': 1, 'REKEY': 2, 'CLOSE': 3}[tname]
        payload = b'' if pay == 'payload=-' else bytes.fromhex(pay[len('payload='):])
        assert (int(ep), int(sq)) == (epoch[dr], send[dr].seq), name + ': epoch/seq do not follow'
        wire = send[dr].seal(typ, payload, int(pad[len('padding='):]))
        got[name + '.wire'] = wire.hex()
        assert recv[dr].open(wire[:2], wire[2:]) == (typ, payload), name + ': round trip'
        if typ == 2:
            epoch[dr] += 1
            assert recv[dr].secret == send[dr].secret
            got['%s%d' % (dr, epoch[dr])] = send[dr].secret.hex()
        inputs.append(name)
        r += 1
    assert r > 0, 'no records in the session file'
    check(v, got, inputs, 'secchat1-session')
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
