#!/usr/bin/python3
"""Independent secchat/3 peer, written from doc/PROTOCOL.md alone (no C code).

usage: peer3.py [-l] [-i ITER] [-p PASSFILE] [-b] [-r N] [-R SEC] [-P SIZE]
                [-w SEC] [-n NAME] [-v] [PARAMETERS] [MODES] [HOST] PORT
       peer3.py --selftest | --make-vectors

The command line, the parameters and the misbehaviour MODEs are specified
in doc/peer3-test-modes.md.  -l listens on HOST (default 127.0.0.1) PORT
(0 = any) and prints "peer3: listening on port N"; without -l it connects.
Exit 0 when both streams are complete (section 9.1); 3 for every fatal
condition; 1 otherwise; one "peer3: " line for the end.

One thread, one select loop.  The protocol rules live in Session (what a
session keeps across connections) and Conn (one connection's records),
without I/O; --selftest and --make-vectors drive them for the vector files
tests/data/secchat3-*.txt and tests/data/x25519-refused.txt.  Test tool
only: P-256 is not constant time, old keys are dropped, not wiped; no
terminal exception, no hex display, no -e, no serving many (-k), no -g
(a --code listener announces CODE with a fixed code from the password file).
"""
import argparse, errno, hashlib, hmac, os, re, secrets, select, signal, socket, stat, struct, sys, time
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# ---------------------------------------------------------------- P-256
P = 2**256 - 2**224 + 2**192 + 2**96 - 1
A_, B_ = P - 3, 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b
ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551
G = (0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296,
     0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5)

def on_curve(pt):
    x, y = pt
    return x < P and y < P and (y * y - x ** 3 - A_ * x - B_) % P == 0

def add(p1, p2):
    if p1 is None or p2 is None:
        return p2 if p1 is None else p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return None
        lam = (3 * x1 * x1 + A_) * pow(2 * y1, -1, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P

def mul(k, pt):
    r = None
    for bit in bin(k % ORDER)[2:]:
        r = add(r, r)
        if bit == '1':
            r = add(r, pt)
    return r

def neg(pt):
    return (pt[0], -pt[1] % P)

def decompress(hexstr):
    raw = bytes.fromhex(hexstr)
    x = int.from_bytes(raw[1:], 'big')
    y = pow((x ** 3 + A_ * x + B_) % P, (P + 1) // 4, P)
    y = y if y % 2 == raw[0] % 2 else P - y
    assert on_curve((x, y))
    return x, y

M = decompress('02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f')
N = decompress('03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49')

def encode(pt):
    return b'\x04' + pt[0].to_bytes(32, 'big') + pt[1].to_bytes(32, 'big')

def valid_share(raw):
    """2.3: first byte 0x04, coordinates below p, on the curve: the point or None."""
    if len(raw) != 65 or raw[0] != 4:
        return None
    pt = (int.from_bytes(raw[1:33], 'big'), int.from_bytes(raw[33:], 'big'))
    return pt if on_curve(pt) else None

# ---------------------------------------------------------------- constants
VERSION = 3
MAGIC = b'SECCHAT'
ID_A, ID_B = b'secchat/3 connector', b'secchat/3 listener'
L_SID, L_C2S, L_S2C, L_RS = (b'secchat/3 session id', b'secchat/3 connector to listener',
                             b'secchat/3 listener to connector', b'secchat/3 resumption')
L_MKC, L_MKL, L_RESUME = b'secchat/3 resume connector', b'secchat/3 resume listener', b'secchat/3 resume'
REFUSAL, GREETING, HELLO, RESUME, CONFIRM, RESUMED = range(6)
HS_SIZE = {REFUSAL: 12, GREETING: 114, HELLO: 108, RESUME: 93, CONFIRM: 41, RESUMED: 73}
F_CODE, F_NO_NEW = 1, 2
PENALTY, BUSY, GUESS_LIMIT, NO_NEW, CODE_SPENT, WRONG_SECRET, MALFORMED, NO_SESSION, \
    RESUME_FAILED = range(1, 10)

MAXPAY, MAXINNER, TAG, SEQ_LIMIT = 16384, 16640, 16, 1 << 24
DATA, REKEY, CLOSE, KEY, DONE, ACK, PING, END = range(1, 9)
NAMES = {DATA: 'DATA', REKEY: 'REKEY', CLOSE: 'CLOSE', KEY: 'KEY', DONE: 'DONE',
         ACK: 'ACK', PING: 'PING', END: 'END'}
TYPES = {v: k for k, v in NAMES.items()}
SIZES = {REKEY: (36, 36), CLOSE: (0, 0), KEY: (32, 32), DONE: (0, 0), ACK: (8, 8),
         PING: (2, 2), END: (5, 205), DATA: (0, MAXPAY)}
MAX_INDEX = 2**32 - 1
ACK_BYTES = 262144
DEFAULT_PEER_INTERVAL = 15
P25519 = 2**255 - 19
PUBLIC_EQUIVALENT = {bytes.fromhex(h) for h in (
    '0900000000000000000000000000000000000000000000000000000000000000',
    '0900000000000000000000000000000000000000000000000000000000000080',
    'f6ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'f6ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff')}

END_REASONS = {1: 'INTERRUPTED', 2: 'TERMINATED', 3: 'INPUT_FAILED', 4: 'OUTPUT_FAILED',
               5: 'COMMAND_KILLED', 6: 'COMMAND_UNREAD', 7: 'TIMEOUT', 8: 'REJECTED', 9: 'OTHER'}
WRONG = 'wrong password, or the connection was tampered with'
WRONG_CODE = 'wrong code, or the connection was tampered with; the code is spent'


class Fail(Exception):
    """An end of this side: status and the line (without "peer3: ")."""
    def __init__(self, code, msg, end=None):
        super().__init__(msg)
        self.code, self.end = code, end


def fatal(msg):
    """A fatal condition of sections 4, 5, 7, 8 found in the peer's stream:
    status 3, and an END REJECTED goes out first (9.2)."""
    return Fail(3, msg, end=(8, 0, msg.encode()))


class Lost(Exception):
    """The connection is lost (7.3); the cause, as 9.4's CAUSE."""


# ---------------------------------------------------------------- primitives
def hkdf_extract(salt, ikm):
    return hmac.digest(salt or bytes(32), ikm, 'sha256')

def hkdf_expand(prk, info, length):
    assert length <= 32
    return hmac.digest(prk, info + b'\x01', 'sha256')[:length]

def hmac256(key, msg):
    return hmac.digest(key, msg, 'sha256')

def password_scalar(password, salt, iterations):
    return int.from_bytes(hashlib.pbkdf2_hmac('sha256', password, salt, iterations, 40),
                          'big') % ORDER

def x25519_priv(raw):
    return X25519PrivateKey.from_private_bytes(raw)

def x25519_pub(private):
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

def x25519(private, public):
    """X25519; None for an all-zero result (RFC 7748 6.1)."""
    try:
        z = private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:
        return None
    return None if z == bytes(32) else z

def public_equivalent(u):
    """5.6: the four encodings of 9 and p + 9."""
    return u in PUBLIC_EQUIVALENT

def key_set(prk):
    """Section 3: c2s0, s2c0, rs from a session PRK."""
    return hkdf_expand(prk, L_C2S, 32), hkdf_expand(prk, L_S2C, 32), hkdf_expand(prk, L_RS, 32)

def spake(id_a, id_b, pa, pb, k, w, aad):
    """2.3 and 3: TT, H, Ke, Ka, KcA, KcB, cA, cB, PRK0, sid and the key set."""
    lp = lambda s: len(s).to_bytes(8, 'little') + s
    tt = b''.join(lp(s) for s in (id_a, id_b, pa, pb, k, w.to_bytes(32, 'big')))
    h = hashlib.sha256(tt).digest()
    kc = hkdf_expand(hkdf_extract(None, h[16:]), b'ConfirmationKeys' + aad, 32)
    prk0 = hkdf_extract(None, h[:16])
    c2s0, s2c0, rs = key_set(prk0)
    return {'TT': tt, 'H': h, 'Ke': h[:16], 'Ka': h[16:], 'KcA': kc[:16], 'KcB': kc[16:],
            'cA': hmac256(kc[:16], tt), 'cB': hmac256(kc[16:], tt), 'PRK0': prk0,
            'sid': hkdf_expand(prk0, L_SID, 16), 'c2s0': c2s0, 's2c0': s2c0, 'rs0': rs}

def shared_k(own, peer_pt, w, peer_base):
    """K = own * (peer_pt - w * peer_base), encoded; None at infinity."""
    k = mul(own, add(peer_pt, neg(mul(w, peer_base))))
    return None if k is None else encode(k)

def header(kind):
    return MAGIC + bytes([VERSION, kind])

def make_greeting(flags, wait, window, iterations, salt, nonce, pb):
    return header(GREETING) + bytes([flags, wait]) + struct.pack('>HI', window, iterations) \
        + salt + nonce + pb

def parse_greeting(g):
    flags, wait, window, iterations = struct.unpack('>BBHI', g[9:17])
    return {'flags': flags, 'wait': wait, 'window': window, 'iterations': iterations,
            'salt': g[17:33], 'nonce': g[33:49], 'pB': g[49:114]}

def make_refusal(reason, seconds):
    return header(REFUSAL) + struct.pack('>BH', reason, seconds)

def resume_keys(rs):
    return hkdf_expand(rs, L_MKC, 32), hkdf_expand(rs, L_MKL, 32)

def make_resume(greeting, sid, gen, e_c, rs):
    body = header(RESUME) + sid + struct.pack('>I', gen) + x25519_pub(e_c)
    return body + hmac256(resume_keys(rs)[0], greeting + body)

def make_resumed(greeting, resume, e_l, rs):
    body = header(RESUMED) + x25519_pub(e_l)
    return body + hmac256(resume_keys(rs)[1], greeting + resume + body)

def resume_prk(rs, dh, greeting, resume, resumed):
    th = hashlib.sha256(greeting + resume + resumed).digest()
    return th, hkdf_extract(hkdf_expand(rs, L_RESUME, 32), dh + th)

def refusal_line(reason, seconds, host, code=False):
    """2.5: the connector's line and status for a REFUSAL (8.6 for NO_SESSION)."""
    again = '; try again in %d s' % seconds if seconds else ''
    t = {PENALTY: ('too many failed attempts from your address' + again, 1),
         BUSY: ('too many connections at once' + again, 1),
         GUESS_LIMIT: ('too many failed attempts from all addresses' + again, 1),
         NO_NEW: ('it is serving another session', 1),
         CODE_SPENT: ('that one-time code has been used; ask for the new one', 1)}
    if reason in t:
        return '%s refused the connection: %s' % (host, t[reason][0]), t[reason][1]
    if reason == WRONG_SECRET:
        return (WRONG_CODE if code else WRONG), 3
    if reason == MALFORMED:
        return '%s refused our handshake as malformed' % host, 3
    if reason == NO_SESSION:
        return '%s no longer holds the session' % host, 1
    if reason == RESUME_FAILED:
        return '%s refused to resume the session: proof rejected' % host, 3
    return '%s refused the connection (reason %d)' % (host, reason), 1


# ---------------------------------------------------------------- records
class Chain:
    """One direction's current secret (epoch), key, IV and seq."""
    def __init__(self, secret, epoch=0):
        self.secret, self.epoch, self.seq = secret, epoch, 0
        self.key, self.iv = hkdf_expand(secret, b'key', 32), hkdf_expand(secret, b'iv', 12)
        self.aead = AESGCM(self.key)

    def next(self, dh):
        salt = hkdf_expand(self.secret, b'rekey', 32)
        return Chain(hkdf_extract(salt, dh), self.epoch + 1), salt

    def nonce(self):
        n = (int.from_bytes(self.iv, 'big') ^ self.seq).to_bytes(12, 'big')
        self.seq += 1
        return n

    def seal(self, typ, payload=b'', pad=0, raw_type=None):
        inner = payload + bytes([typ if raw_type is None else raw_type]) + bytes(pad)
        assert len(inner) <= MAXINNER and self.seq < SEQ_LIMIT
        hdr = (len(inner) + TAG).to_bytes(2, 'big')
        return hdr + self.aead.encrypt(self.nonce(), inner, hdr)

    def seal_inner(self, inner):
        hdr = (len(inner) + TAG).to_bytes(2, 'big')
        return hdr + self.aead.encrypt(self.nonce(), inner, hdr)

    def open(self, hdr, ct):
        """Checks 2 to 5 of section 4: (type, payload)."""
        if self.seq >= SEQ_LIMIT:
            raise fatal('malformed record: too many records under one key')
        try:
            inner = self.aead.decrypt(self.nonce(), ct, hdr).rstrip(b'\0')
        except InvalidTag:
            raise fatal('record failed authentication') from None
        if not inner:
            raise fatal('malformed record: only zero bytes')
        if inner[-1] not in NAMES:
            raise fatal('malformed record: unknown type %d' % inner[-1])
        return inner[-1], inner[:-1]


def check_length(length):
    """Check 1 of section 4, from the 2 length bytes alone."""
    if not 1 + TAG <= length <= MAXINNER + TAG:
        raise fatal('malformed record: bad length %d' % length)


def padding(n, size):
    return min(-(-(n + 1) // size) * size, MAXINNER) - n - 1


def clean_text(text):
    """9.2: UTF-8 without bytes below 0x20, 0x7f, U+0080..U+009F."""
    try:
        s = text.decode('utf-8')
    except UnicodeDecodeError:
        return False
    return not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in s)


class Session:
    """What a session keeps across connections (8.1)."""
    def __init__(self, role, sid, rs, window, cap=4 << 20):
        self.role, self.sid, self.rs, self.rs_prev, self.g = role, sid, rs, None, 0
        self.window, self.cap = window, cap
        self.S = self.A = 0                  # our stream: sealed, acknowledged
        self.retained = bytearray()          # bytes [A, S)
        self.W = 0                           # the peer's bytes we have written
        self.last_ack = 0                    # count of the last ACK we sealed
        self.ack_since = None                # when W first went above last_ack
        self.input_ended = False             # our stream's length is S
        self.peer_close = None               # the peer's stream length, once its CLOSE opened
        self.peer_done = False               # a DONE of the peer opened on some connection
        self.ended = False                   # by END (sent or received)

    def ours_complete(self):
        return self.input_ended and (self.peer_done or self.A == self.S)

    def peers_complete(self):
        return self.peer_close is not None and self.W == self.peer_close

    def both_complete(self):
        return self.ours_complete() and self.peers_complete()

    def resumable(self):
        return self.window > 0 and not self.ended and not (self.peer_done and self.done_sent)

    done_sent = False


class RecvKeys:
    """This side's receive keys on one connection (5.1)."""
    def __init__(self):
        self.alive, self.newest, self.due = {}, -1, True    # KEY 0 at once

    def announce(self, private=None):
        assert self.due and self.newest < MAX_INDEX
        self.newest += 1
        self.alive[self.newest] = private or X25519PrivateKey.generate()
        self.due = False
        return self.newest, x25519_pub(self.alive[self.newest])


class Conn:
    bad_key = None                      # --bad-key: the key every KEY announces
    """One connection's records, both directions, without I/O (sections 4, 5,
    7.2, 7.3, 8.5, 9).  Each seal_* returns the wire bytes; open() applies
    every check of section 4 in order and returns (type, payload)."""
    def __init__(self, sess, tx_secret, rx_secret, resumed, clock=time.monotonic,
                 interval=15, notes=None):
        self.sess, self.resumed, self.clock = sess, resumed, clock
        self.tx, self.rx = Chain(tx_secret), Chain(rx_secret)
        self.keys = RecvKeys()
        self.peer_keys = []                  # the peer's receive keys (public), by index
        self.used = -1                       # highest peer key index our REKEYs named
        self.tx_state = 'KEY0'               # KEY0 [ACK0] OPEN CLOSED DONE|ENDED
        self.rx_state = 'WAIT_KEY0'          # WAIT_KEY0 [WAIT_ACK] OPEN CLOSED DONE|ENDED
        self.peer_interval = DEFAULT_PEER_INTERVAL
        self.interval = interval
        self.rekey_data = 0                  # DATA records under the current tx secret
        self.rekey_first = None              # when the first of them was sealed
        self.got_first_ack = not resumed     # may we seal DATA (8.5)
        self.resend = None                   # next offset to re-seal (after the peer's first ACK)
        self.rx_pos = sess.W                 # the peer's stream offset of the next DATA byte
        self.opened_any = False
        self.last_rekey = None               # (dh, salt), for the vectors
        self.notes = notes or (lambda s: None)
        self.sealed_at = clock()

    # ---- sending
    def _seal(self, typ, payload=b'', pad=0):
        assert self.tx_state not in ('DONE', 'ENDED')
        self.sealed_at = self.clock()
        return self.tx.seal(typ, payload, pad)

    def key_due(self):
        return self.keys.due and self.tx_state not in ('DONE', 'ENDED')

    def seal_key(self, private=None):
        index, pub = self.keys.announce(private)
        wire = self._seal(KEY, self.bad_key or pub)
        if self.sess.peer_done:              # 5.1: never used, erased at once
            self.keys.alive.pop(index, None)
        if self.tx_state == 'KEY0':
            self.tx_state = 'ACK0' if self.resumed else 'OPEN'
        self.notes('announced key %d' % index)
        return index, wire

    def due_keys(self):
        return self.seal_key()[1] if self.key_due() else b''

    def seal_ack(self, count=None):
        """An ACK of our W (or COUNT, a misbehaviour)."""
        s = self.sess
        if count is None:
            count = s.W
            s.last_ack, s.ack_since = count, None
        wire = self._seal(ACK, struct.pack('>Q', count))
        if self.tx_state == 'ACK0':
            self.tx_state = 'OPEN'
            self.rx_pos = s.W                # the resume point (8.5)
        return wire

    def ack_due(self, now):
        s = self.sess
        if s.W <= s.last_ack or self.tx_state in ('DONE', 'ENDED', 'KEY0', 'ACK0'):
            return False
        if s.ack_since is None:
            s.ack_since = now
        return s.W - s.last_ack >= ACK_BYTES or now - s.ack_since >= 1

    def seal_ping(self, interval=None):
        return self._seal(PING, struct.pack('>H', self.interval if interval is None else interval))

    def can_data(self):
        return self.tx_state == 'OPEN' and self.got_first_ack

    def seal_data(self, payload, pad=0, new=True):
        """A DATA record: new bytes of our stream, or (new=False) re-sent ones."""
        assert self.can_data() and len(payload) <= MAXPAY
        s = self.sess
        if new:
            assert s.S - s.A + len(payload) <= s.cap or not payload
            assert self.resend_left() == 0
            s.retained += payload
            s.S += len(payload)
            if self.resend is not None:
                self.resend = s.S
        else:
            self.resend += len(payload)
        if self.rekey_data == 0:
            self.rekey_first = self.clock()
        self.rekey_data += 1
        return self._seal(DATA, payload, pad)

    def rekey_due(self, n, t, now):
        if self.tx_state not in ('OPEN', 'CLOSED', 'ACK0'):
            return False
        if self.tx.seq + 2 >= SEQ_LIMIT:
            return True
        if self.rekey_data and n and self.rekey_data >= n:
            return True
        return bool(self.rekey_data and t and now - self.rekey_first >= t)

    def seal_rekey(self, e=None, index=None, e_pub=None, payload=None):
        """A REKEY naming the peer's newest key (5.2); the arguments make bad ones
        (then the chain stays: the bad record is the last this side sends)."""
        assert self.peer_keys and self.tx_state in ('OPEN', 'CLOSED', 'ACK0')
        e = e or X25519PrivateKey.generate()
        good = index is None and e_pub is None and payload is None
        newest = len(self.peer_keys) - 1
        index = newest if index is None else index
        if payload is None:
            payload = struct.pack('>I', index) + (x25519_pub(e) if e_pub is None else e_pub)
        if not good:
            return self._seal(REKEY, payload)
        dh = x25519(e, self.peer_keys[index])
        if dh is None:
            raise fatal('peer sent a bad receive key')
        wire = self._seal(REKEY, payload)
        self.tx, salt = self.tx.next(dh)
        self.last_rekey = (dh, salt)
        self.used = max(self.used, index)
        self.rekey_data, self.rekey_first = 0, None
        self.notes('rekeyed (epoch %d, key %d)' % (self.tx.epoch, index))
        return wire

    def seal_close(self):
        assert self.tx_state == 'OPEN'
        self.sess.input_ended = True
        wire = self._seal(CLOSE)
        self.tx_state = 'CLOSED'
        return wire

    def can_done(self):
        return (self.tx_state == 'CLOSED' and self.rx_state in ('CLOSED', 'DONE')
                and self.sess.W == self.sess.peer_close)

    def seal_done(self):
        assert self.can_done()
        wire = self._seal(DONE)
        self.tx_state = 'DONE'
        self.sess.done_sent = True
        self.keys.due = False
        return wire

    def seal_end(self, reason, value=0, text=b''):
        wire = self._seal(END, struct.pack('>BI', reason, value) + text)
        self.tx_state = 'ENDED'
        self.sess.ended = True
        return wire

    # ---- receiving
    def receiving(self):
        return self.rx_state not in ('DONE', 'ENDED')

    def open(self, hdr, ct):
        """Open one record of the peer's direction; checks 2 to 8 of section 4."""
        assert self.receiving()
        typ, payload = self.rx.open(hdr, ct)
        name, st, s = NAMES[typ], self.rx_state, self.sess
        self.opened_any = True
        # 6. the state rules of 4.1
        if st == 'WAIT_KEY0' and typ != KEY:
            raise fatal('malformed record: first record is not KEY')
        if st == 'WAIT_ACK' and typ not in (ACK, END):
            raise fatal('malformed record: second record after a resume is not ACK')
        if st == 'OPEN' and typ == DONE:
            raise fatal('malformed record: DONE before CLOSE')
        if st == 'CLOSED' and typ in (DATA, CLOSE):
            raise fatal('malformed record: %s after CLOSE' % name)
        if st == 'CLOSED' and typ == DONE and self.tx_state not in ('CLOSED', 'DONE'):
            raise fatal('malformed record: DONE before our CLOSE')
        # 7. the payload size
        lo, hi = SIZES[typ]
        if not lo <= len(payload) <= hi:
            raise fatal('malformed record: %s payload of %d bytes' % (name, len(payload)))
        # 8. the checks of the type
        if typ == KEY:
            j = len(self.peer_keys)
            if j >= 1 and self.used < j - 1:
                raise fatal('malformed record: KEY announced before the last one was used')
            if public_equivalent(payload):
                raise fatal('malformed record: KEY with a public-equivalent key')
            self.peer_keys.append(payload)
            self.notes('got key %d' % j)
            if st == 'WAIT_KEY0':
                self.rx_state = 'WAIT_ACK' if self.resumed else 'OPEN'
        elif typ == REKEY:
            index, e = struct.unpack('>I', payload[:4])[0], payload[4:]
            if index > self.keys.newest:
                raise fatal('malformed record: REKEY names unannounced key %d' % index)
            if index not in self.keys.alive:
                raise fatal('malformed record: REKEY names retired key %d' % index)
            if public_equivalent(e):
                raise fatal('malformed record: REKEY with a public-equivalent key')
            dh = x25519(self.keys.alive[index], e)
            if dh is None:
                raise fatal('malformed record: REKEY with a low-order key')
            self.rx, salt = self.rx.next(dh)
            self.last_rekey = (dh, salt)
            for old in [k for k in self.keys.alive if k < index]:
                del self.keys.alive[old]
            if index == self.keys.newest and self.tx_state not in ('DONE', 'ENDED') \
                    and self.keys.newest < MAX_INDEX:
                self.keys.due = True
            self.notes('peer rekeyed (epoch %d, key %d)' % (self.rx.epoch, index))
        elif typ == ACK:
            count = struct.unpack('>Q', payload)[0]
            first = st == 'WAIT_ACK'
            if count > s.S:
                raise fatal('malformed record: ACK of %d bytes, only %d sent' % (count, s.S))
            if not (count > s.A or (first and count >= s.A)):
                raise fatal('malformed record: ACK of %d bytes after ACK of %d' % (count, s.A))
            del s.retained[:count - s.A]
            s.A = count
            if first:
                self.notes('resume point %d (A %d, S %d)' % (count, s.A, s.S))
                self.rx_state = 'OPEN'
                self.got_first_ack, self.resend = True, count
        elif typ == PING:
            interval = struct.unpack('>H', payload)[0]
            if not 1 <= interval <= 3600:
                raise fatal('malformed record: PING interval of %d s' % interval)
            self.peer_interval = interval
        elif typ == DATA:
            if s.peer_close is not None and self.rx_pos + len(payload) > s.peer_close:
                raise fatal('malformed record: DATA past the end of the stream at byte %d'
                            % s.peer_close)
            self.rx_pos += len(payload)
        elif typ == CLOSE:
            if s.peer_close is not None and self.rx_pos != s.peer_close:
                raise fatal('malformed record: CLOSE at byte %d, the stream ended at byte %d'
                            % (self.rx_pos, s.peer_close))
            s.peer_close = self.rx_pos
            self.rx_state = 'CLOSED'
        elif typ == DONE:
            self.rx_state = 'DONE'
            s.peer_done = True
            self.keys.alive.clear()
        elif typ == END:
            if not clean_text(payload[5:]):
                raise fatal('malformed record: END text is not clean UTF-8')
            self.rx_state = 'ENDED'
            s.ended = True
            self.keys.alive.clear()
        return typ, payload

    def resend_left(self):
        return self.sess.S - self.resend if self.resend is not None else 0


# ---------------------------------------------------------------- reports
UNITS = ('B', 'KiB', 'MiB', 'GiB', 'TiB')

def unit_of(n):
    k = 0
    while k < 4 and n >= 1024 ** (k + 1):
        k += 1
    return k

def num(n, k):
    return '%d' % n if k == 0 else '%.1f' % (n / 1024 ** k)

def amount(n):
    k = unit_of(n)
    return '%s %s' % (num(n, k), UNITS[k])

def x_of_y(x, y):
    kx, ky = unit_of(x), unit_of(y)
    if kx == ky:
        return '%s of %s %s' % (num(x, kx), num(y, ky), UNITS[kx])
    return '%s of %s' % (amount(x), amount(y))

def end_chat_line(name, reason, value, text):
    t = text.decode('utf-8', 'replace')
    return {1: '%s interrupted the chat' % name, 2: '%s was terminated (%s)' % (name, t),
            3: "%s's input failed (%s)" % (name, t), 4: "%s's output failed (%s)" % (name, t),
            5: "%s's command was killed (%s)" % (name, t),
            6: "%s's command stopped reading" % name,
            7: '%s timed out after %d s without progress' % (name, value),
            8: '%s rejected our stream (%s)' % (name, t), 9: '%s stopped (%s)' % (name, t)
            }.get(reason, '%s stopped (reason %d)' % (name, reason))

def end_phrase(reason, value, text):
    t = text.decode('utf-8', 'replace')
    return {1: 'was interrupted', 2: 'was terminated (%s)' % t,
            3: 'could not read its input (%s)' % t, 4: 'could not write its output (%s)' % t,
            5: 'had its command killed (%s)' % t, 6: 'had its command stop reading',
            7: 'timed out after %d s without progress' % value,
            8: 'rejected our stream (%s)' % t, 9: 'stopped (%s)' % t
            }.get(reason, 'stopped (reason %d)' % reason)

def stream_state(st):
    """st: dict with S, A, T (None if unknown), R, ours_sealed_data,
    ours_complete, peers_opened_data, peers_closed, both_complete."""
    ours_cut = st['S'] > 0 and not st['ours_complete']
    peers_cut = st['R_opened'] and not st['peers_closed']
    return ours_cut, peers_cut

def end_pipe_line(name, reason, value, text, st):
    """9.3 in a pipe: (line, status)."""
    phrase = end_phrase(reason, value, text)
    if st['both_complete']:
        return '%s %s after both streams were complete' % (name, phrase), 0
    ours_cut, peers_cut = stream_state(st)
    c = x_of_y(st['A'], st['T']) if st['T'] is not None else amount(st['A'])
    if ours_cut and not peers_cut:
        return 'upload cut: the receiver %s after %s' % (phrase, c), 1
    if peers_cut and not ours_cut:
        return 'download cut: the sender %s after %s' % (phrase, amount(st['R'])), 1
    if ours_cut and peers_cut:
        return 'transfer cut: %s %s after %s confirmed and %s received' % (
            name, phrase, c, amount(st['R'])), 1
    return '%s %s' % (name, phrase), 1

def window_words(window):
    return '%d min' % (window // 60) if window % 60 == 0 else '%d s' % window

def lost_line(cause, end, st):
    """9.4: (line, status)."""
    if st['both_complete']:
        return 'connection lost after both streams were complete', 0
    ours_cut, peers_cut = stream_state(st)
    if ours_cut and not peers_cut:
        return 'connection lost while sending (%s): %s sent, %s confirmed%s' % (
            cause, amount(st['S']), amount(st['A']), end), 1
    if peers_cut and not ours_cut:
        return 'connection lost while receiving (%s): %s received%s' % (
            cause, amount(st['R']), end), 1
    if ours_cut and peers_cut:
        return 'connection lost (%s): %s sent, %s confirmed, %s received%s' % (
            cause, amount(st['S']), amount(st['A']), amount(st['R']), end), 1
    return 'connection lost (%s)%s' % (cause, end), 1


# ---------------------------------------------------------------- handshake reading (2.2)
def hs_need(buf, expect):
    """2.2 on the bytes read so far: how many more to read (0: whole)."""
    for i, b in enumerate(buf[:7]):
        if b != MAGIC[i]:
            raise Fail(1, 'peer is not speaking secchat/3')
    if len(buf) >= 8 and buf[7] != VERSION:
        raise Fail(1, 'peer speaks secchat/%d, not secchat/3' % buf[7])
    if len(buf) >= 9:
        if buf[8] not in expect:
            raise Fail(3, 'handshake failed: unexpected message (kind %d)' % buf[8])
        return HS_SIZE[buf[8]] - len(buf)
    return 9 - len(buf)


def read_hs(sock, expect, deadline, timeout_line='timed out during handshake'):
    """One whole handshake message, read no further than its end: (kind, bytes)."""
    buf = b''
    while (need := hs_need(buf, expect)) > 0:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            raise Fail(1, timeout_line)
        try:
            chunk = sock.recv(need)
        except OSError as e:
            raise Fail(1, 'handshake: %s' % (e.strerror or e)) from None
        if not chunk:
            raise Fail(1, 'peer closed the connection during the handshake')
        buf += chunk
    return buf[8], buf


def closed_by_peer(sock):
    """Has the other end closed (or reset) a connection that should be silent?"""
    try:
        if not select.select([sock], [], [], 0)[0]:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b''
    except OSError:
        return True


def send_all(sock, data, deadline):
    sock.setblocking(True)
    sock.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        sock.sendall(data)
    finally:
        sock.settimeout(None)


def lost_cause(e, name):
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)


VERBOSE = []

def say(msg):
    os.write(2, b'peer3: %s\n' % msg.encode())

def note(msg):
    if VERBOSE:
        say(msg)


class Pending:
    """A greeted connection at the listener (2.7)."""
    def __init__(self, sock, addr, greeting, y, wait):
        self.sock, self.addr, self.greeting, self.y = sock, addr, greeting, y
        self.deadline = time.monotonic() + wait
        self.buf = b''
        self.born = time.monotonic()


class Peer:
    """One side: the handshake, then one select loop over the connection,
    stdin and (listener) the listening socket; resumes on a lost connection."""
    def __init__(self, o, password):
        self.o, self.password = o, password
        self.sess = self.conn = self.sock = None
        self.out, self.rbuf, self.inbuf = bytearray(), bytearray(), bytearray()
        self.in_eof, self.in_last = False, 0.0
        self.stdin_fd = 0
        self.lsock, self.pending = None, []
        self.conn_no = 0
        self.sent_on_conn = 0
        self.signal = None
        self.last_rx = time.monotonic()
        self.last_progress = time.monotonic()
        self.lost_at = None                 # listener: waiting for a resume since
        self.lost_cause = None
        self.frozen_until = None
        self.freeze_done = False
        self.session_start = None
        self.name = o.n
        self.file_size = None
        self.mode_done = set()              # one-shot misbehaviours already done
        self.fault = False                  # a misbehaviour went out: wait for the end
        self.cut_pending = False            # --cut-after-close
        try:
            st = os.fstat(0)
            if stat.S_ISREG(st.st_mode):
                self.file_size = st.st_size
        except OSError:
            pass

    # ------------------------------------------------------------ ends
    def state(self):
        s = self.sess
        return {'S': s.S, 'A': s.A, 'T': s.S if s.input_ended else self.file_size,
                'R': s.W, 'R_opened': getattr(s, 'opened_data', False),
                'peers_closed': s.peer_close is not None, 'ours_complete': s.ours_complete(),
                'both_complete': s.both_complete()}

    def finish(self, code, line=None, sig=None):
        if line:
            say(line)
        try:
            sys.stdout.flush()
        except OSError:
            pass
        if sig:
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
        os._exit(code)

    def flush_for(self, seconds):
        """Hand what is queued to the kernel, waiting at most SECONDS."""
        deadline = time.monotonic() + seconds
        while self.out and self.sock and time.monotonic() < deadline:
            try:
                if select.select([], [self.sock], [], deadline - time.monotonic())[1]:
                    self.send_some()
            except (OSError, Lost):
                return False
        return not self.out

    def end_with(self, reason, value, text, code, line, sig=None):
        """9.2: ACK if due, END, at most one second, then the end."""
        c = self.conn
        if c is not None and c.tx_state in ('OPEN', 'CLOSED', 'ACK0') and not self.frozen():
            if c.tx_state != 'ACK0' and self.sess.W > self.sess.last_ack:
                self.out += c.seal_ack()
            self.out += c.seal_end(reason, value, text[:200])
            self.flush_for(1)
        self.finish(code, line, sig)

    def fail(self, e):
        if e.end and self.sess is not None:
            self.end_with(*e.end, e.code, str(e))
        self.finish(e.code, str(e))

    # ------------------------------------------------------------ listener handshake
    def listen(self):
        o = self.o
        fam = socket.AF_INET6 if ':' in o.host else socket.AF_INET
        self.lsock = socket.create_server((o.host, o.port), family=fam, backlog=64)
        self.lsock.setblocking(False)
        say('listening on port %d' % self.lsock.getsockname()[1])
        self.salt = secrets.token_bytes(16)
        self.w = password_scalar(self.password, self.salt, o.i)
        if self.w == 0:
            raise Fail(1, 'password and salt give w = 0; try again')
        self.wN = mul(self.w, N)

    def accept(self):
        try:
            s, addr = self.lsock.accept()
        except OSError:
            return
        o, host = self.o, addr[0]
        if host.startswith('::ffff:'):
            host = host[7:]
        if o.refuse is not None and o.refuse[0] not in range(4, 10):
            return self.refuse_once(s, host, *o.refuse)
        same = [p for p in self.pending if p.addr == host]
        if len(same) >= 8:
            try:
                s.send(make_refusal(BUSY, 1))
            except OSError:
                pass
            s.close()
            return
        if len(self.pending) >= 64:
            old = min(self.pending, key=lambda p: p.born)
            old.sock.close()
            self.pending.remove(old)
        no_new = self.sess is not None or o.no_new
        flags = (F_CODE if o.code else 0) | (F_NO_NEW if no_new else 0)
        y, pb = None, bytes(65)
        if not no_new:
            y = 1 + secrets.randbelow(ORDER - 1)
            pb = encode(add(mul(y, G), self.wN))
        wait = o.wait
        greeting = make_greeting(flags, wait, min(o.window, 65535), o.i, self.salt,
                                 secrets.token_bytes(16), pb)
        try:
            s.send(greeting)
        except OSError:
            s.close()
            return
        s.setblocking(False)
        self.pending.append(Pending(s, host, greeting, y, wait))
        note('greeted %s (flags %d)' % (host, flags))

    def refuse_once(self, s, host, reason, seconds):
        """--refuse: the REFUSAL, then (for reasons outside 8, 9) the end."""
        try:
            s.setblocking(True)
            s.sendall(make_refusal(reason, seconds))
        except OSError:
            pass
        s.close()
        note('refused %s with reason %d' % (host, reason))
        if reason not in (NO_SESSION, RESUME_FAILED):
            self.finish(0)

    def pending_readable(self, p):
        try:
            need = hs_need(p.buf, (HELLO, RESUME))
            chunk = p.sock.recv(need)
        except Fail as e:
            return self.drop_pending(p, str(e))
        except OSError as e:
            return self.drop_pending(p, 'handshake: %s' % e.strerror)
        if not chunk:               # no failure (2.7)
            return self.drop_pending(p, None, 'closed by the connector before its message')
        p.buf += chunk
        try:
            if hs_need(p.buf, (HELLO, RESUME)):
                return
        except Fail as e:
            return self.drop_pending(p, str(e))
        self.pending.remove(p)
        p.sock.setblocking(True)
        p.sock.settimeout(5)
        try:
            if p.buf[8] == HELLO:
                self.on_hello(p)
            else:
                self.on_resume(p)
        except OSError as e:
            say('%s: %s' % (p.addr, e.strerror or e))
            p.sock.close()

    def drop_pending(self, p, line, why=None):
        if p in self.pending:
            self.pending.remove(p)
        p.sock.close()
        if line:
            say('%s: %s' % (p.addr, line))
        elif why:
            note('%s: %s' % (p.addr, why))

    def answer_refusal(self, p, reason, seconds=0, line=None):
        try:
            p.sock.sendall(make_refusal(reason, seconds))
        except OSError:
            pass
        p.sock.close()
        say('%s: %s' % (p.addr, line or 'refused with reason %d' % reason))

    def on_hello(self, p):
        o, msg = self.o, p.buf
        if parse_greeting(p.greeting)['flags'] & F_NO_NEW:
            return self.answer_refusal(p, NO_NEW, 0, 'a new session asked for; refused (NO_NEW)')
        if self.sess is not None:       # greeted before the session began
            return self.answer_refusal(p, NO_NEW, 0, 'a new session asked for; refused (NO_NEW)')
        if o.refuse is not None and o.refuse[0] in range(4, 8):
            return self.refuse_once(p.sock, p.addr, *o.refuse)
        pa, ca = msg[11:76], msg[76:108]
        pt = valid_share(pa)
        k = shared_k(p.y, pt, self.w, M) if pt else None
        if k is None:
            return self.answer_refusal(p, MALFORMED, 0, 'handshake failed: peer sent a bad point')
        aad = p.greeting[:49] + msg[9:11]
        d = spake(ID_A, ID_B, pa, p.greeting[49:114], k, self.w, aad)
        if not hmac.compare_digest(d['cA'], ca):
            self.answer_refusal(p, WRONG_SECRET, 0, WRONG_CODE if o.code else WRONG)
            self.finish(3)          # a lone listener ends on a checked password
        p.sock.sendall(header(CONFIRM) + d['cB'])
        window = min(o.window, 65535, struct.unpack('>H', msg[9:11])[0])
        self.sess = Session('l', d['sid'], d['rs0'], window, o.retain)
        if self.name is None:
            self.name = p.addr
        note('session with %s (window %d s)' % (p.addr, window))
        del self.w                  # the password and w are no longer needed
        self.start_conn(p.sock, d['s2c0'], d['c2s0'], False)

    def on_resume(self, p):
        """8.3, in order; a failure changes nothing."""
        o, s, msg = self.o, self.sess, p.buf
        sid, gen = msg[9:25], struct.unpack('>I', msg[25:29])[0]
        e_c, mac_c = msg[29:61], msg[61:93]
        if s is None or sid != s.sid or not s.resumable() or \
                (self.lost_at is not None and time.monotonic() - self.lost_at > s.window):
            return self.answer_refusal(p, NO_SESSION, 0, 'RESUME of an unknown session')
        if o.refuse is not None and o.refuse[0] in (NO_SESSION, RESUME_FAILED):
            return self.answer_refusal(p, o.refuse[0], o.refuse[1], 'refused a RESUME (test mode)')
        if gen == s.g:
            rs = s.rs
        elif gen == s.g - 1 and s.rs_prev is not None:
            rs = s.rs_prev
        else:
            return self.answer_refusal(p, RESUME_FAILED, 0, 'RESUME with generation %d' % gen)
        mkc, mkl = resume_keys(rs)
        if not hmac.compare_digest(hmac256(mkc, p.greeting + msg[:61]), mac_c):
            return self.answer_refusal(p, RESUME_FAILED, 0, 'RESUME with a bad proof')
        if public_equivalent(e_c):
            return self.answer_refusal(p, MALFORMED, 0, 'RESUME with a public-equivalent key')
        e_l = X25519PrivateKey.generate()
        dh = x25519(e_l, e_c)
        if dh is None:
            return self.answer_refusal(p, MALFORMED, 0, 'RESUME with a low-order key')
        resumed = make_resumed(p.greeting, msg, e_l, rs)
        th, prk = resume_prk(rs, dh, p.greeting, msg, resumed)
        c2s0, s2c0, rs_new = key_set(prk)
        p.sock.sendall(resumed)
        # commit
        if gen == s.g:
            s.rs_prev, s.rs, s.g = s.rs, rs_new, s.g + 1
        else:
            s.rs = rs_new
        if self.sock is not None:
            self.drop_conn()
        self.lost_at = None
        note('resumed (generation %d)' % s.g)
        self.start_conn(p.sock, s2c0, c2s0, True)

    # ------------------------------------------------------------ connector handshake
    def dial(self, deadline_s):
        o = self.o
        try:
            s = socket.create_connection((o.host, o.port), timeout=min(10, deadline_s))
        except OSError as e:
            raise Fail(1, 'connect to %s port %d: %s' % (o.host, o.port, e.strerror or e))
        s.settimeout(None)
        return s

    def first_message(self, s):
        d = self.o.w or 30
        line = 'no secchat greeting from %s port %d within %d s: listener busy, or not secchat' \
            % (self.o.host, self.o.port, d)
        kind, msg = read_hs(s, (GREETING, REFUSAL), time.monotonic() + d, line)
        if kind == REFUSAL:
            s.close()
            raise Fail(*reversed(refusal_line(msg[9], struct.unpack('>H', msg[10:12])[0],
                                              self.o.host)))
        return msg, time.monotonic()

    def connect(self):
        """2.6: connect first, then ask; HELLO within one computation of a GREETING."""
        o, host = self.o, self.o.host
        s = self.dial(o.w or 30)
        greeting, t_greet = self.first_message(s)
        w, have, tries = None, None, 0
        while True:
            g = parse_greeting(greeting)
            if g['flags'] & F_NO_NEW:
                raise Fail(1, '%s refused the connection: it is serving another session' % host)
            code = bool(g['flags'] & F_CODE)
            if o.code and not code:
                raise Fail(1, '%s wants a password, not a one-time code' % host)
            if not 1000 <= g['iterations'] <= 10000000:
                raise Fail(1, 'listener asks for %d PBKDF2 iterations (allowed 1000 to 10000000)'
                           % g['iterations'])
            pb_pt = valid_share(g['pB'])
            if pb_pt is None:
                raise Fail(3, 'handshake failed: peer sent a bad point')
            if have != (g['iterations'], g['salt']):
                if w is not None and code:
                    raise Fail(1, '%s refused the connection: that one-time code has been '
                               'used; ask for the new one' % host)
                if g['wait'] < 10 and s is not None:
                    s.close()
                    s = None
                    note('greeting waits %d s: closed before deriving w' % g['wait'])
                secret = re.sub(rb'[^0-9]', b'', self.password) if code else self.password
                w = password_scalar(secret, g['salt'], g['iterations'])
                if w == 0:
                    raise Fail(1, 'password and salt give w = 0')
                have = (g['iterations'], g['salt'])
            if s is not None and time.monotonic() - t_greet < g['wait'] and not closed_by_peer(s):
                break
            if s is not None:
                s.close()
            tries += 1
            if tries > 3:
                raise Fail(1, 'could not reach %s with the handshake ready (3 tries)' % host)
            note('reconnecting with w ready (try %d)' % tries)
            s = self.dial(o.w or 30)
            greeting, t_greet = self.first_message(s)
        x = 1 + secrets.randbelow(ORDER - 1)
        pa = encode(add(mul(x, G), mul(w, M)))
        k = shared_k(x, pb_pt, w, N)
        if k is None:
            raise Fail(3, 'handshake failed: peer sent a bad point')
        wbytes = struct.pack('>H', min(o.window, 65535))
        d = spake(ID_A, ID_B, pa, g['pB'], k, w, greeting[:49] + wbytes)
        try:
            s.sendall(header(HELLO) + wbytes + pa + d['cA'])
        except OSError as e:
            raise Fail(1, 'handshake: %s' % e.strerror)
        kind, msg = read_hs(s, (CONFIRM, REFUSAL), time.monotonic() + (o.w or 30))
        if kind == REFUSAL:
            line, code3 = refusal_line(msg[9], struct.unpack('>H', msg[10:12])[0], host, code)
            raise Fail(code3, line)
        if not hmac.compare_digest(d['cB'], msg[9:41]):
            raise Fail(3, WRONG_CODE if code else WRONG)
        window = min(g['window'], o.window, 65535)
        self.sess = Session('c', d['sid'], d['rs0'], window, o.retain)
        if self.name is None:
            self.name = host
        note('session with %s (window %d s)' % (host, window))
        self.start_conn(s, d['c2s0'], d['s2c0'], False)

    def resume(self, cause):
        """8.6, the connector: new connections until one resumes, within the window."""
        o, s, host = self.o, self.sess, self.o.host
        note('connection to %s lost; reconnecting' % self.name)
        deadline = time.monotonic() + s.window
        replay = None
        while time.monotonic() < deadline:
            if self.signal:
                self.finish(1, None, self.signal)
            t0 = time.monotonic()
            try:
                sock = self.dial(min(10, deadline - t0))
            except Fail:
                time.sleep(max(0, min(t0 + 1, deadline) - time.monotonic()))
                continue
            try:
                greeting, _ = self.first_message(sock)
            except Fail as e:
                sock.close()
                if e.code == 3:
                    raise
                m = re.search(r'try again in (\d+) s', str(e))
                if m or 'refused the connection' in str(e) and 'reason' not in str(e) \
                        and 'serving' not in str(e) and 'code' not in str(e):
                    wait = max(1, int(m.group(1)) if m else 1)
                    time.sleep(min(wait, max(0, deadline - time.monotonic())))
                else:
                    time.sleep(max(0, min(t0 + 1, deadline) - time.monotonic()))
                continue
            gen, sid, rs = s.g, s.sid, s.rs
            if o.resume_bad == 'gen':
                gen = s.g + 1
            if o.resume_bad == 'sid':
                sid = secrets.token_bytes(16)
            e_c = X25519PrivateKey.generate()
            msg = make_resume(greeting, sid, gen, e_c, rs)
            if o.resume_bad == 'mac':
                msg = msg[:-1] + bytes([msg[-1] ^ 1])
            if o.replay_resume:
                if replay is None:      # first attempt: keep it, send it on the next one
                    replay = (greeting, msg, e_c)
                    note('RESUME made for this connection kept; replayed on the next')
                    sock.close()
                    continue
                greeting_used, msg, e_c = replay
            else:
                greeting_used = greeting
            try:
                sock.sendall(msg)
                kind, ans = read_hs(sock, (RESUMED, REFUSAL), min(deadline, time.monotonic() + 30))
            except Fail as e:
                sock.close()
                if e.code == 3:
                    raise
                time.sleep(max(0, min(t0 + 1, deadline) - time.monotonic()))
                continue
            except OSError:
                sock.close()
                time.sleep(max(0, min(t0 + 1, deadline) - time.monotonic()))
                continue
            if kind == REFUSAL:
                sock.close()
                reason, secs = ans[9], struct.unpack('>H', ans[10:12])[0]
                if reason in (PENALTY, BUSY, GUESS_LIMIT):
                    time.sleep(min(max(1, secs), max(0, deadline - time.monotonic())))
                    continue
                if reason == NO_SESSION:
                    self.report_lost(cause, '; %s no longer holds the session' % self.name)
                line, code = refusal_line(reason, secs, host)
                raise Fail(code, line)
            mkc, mkl = resume_keys(rs)
            if not hmac.compare_digest(hmac256(mkl, greeting_used + msg + ans[:41]), ans[41:73]):
                raise Fail(3, 'resume failed: %s could not prove the session (the connection '
                           'was tampered with)' % host)
            e_l = ans[9:41]
            dh = None if public_equivalent(e_l) else x25519(e_c, e_l)
            if dh is None:
                raise Fail(3, 'resume failed: %s sent a bad key' % host)
            th, prk = resume_prk(rs, dh, greeting_used, msg, ans)
            c2s0, s2c0, rs_new = key_set(prk)
            s.rs, s.g = rs_new, gen + 1
            note('reconnected to %s (nothing lost)' % self.name)
            self.start_conn(sock, c2s0, s2c0, True)
            return
        self.report_lost(cause, '; not resumed within %s' % window_words(s.window))

    def report_lost(self, cause, end):
        line, code = lost_line(cause, end, self.state())
        self.finish(code, line)

    # ------------------------------------------------------------ connections
    def start_conn(self, sock, tx, rx, resumed):
        o = self.o
        self.sock = sock
        sock.setblocking(False)
        self.conn_no += 1
        self.sent_on_conn = 0
        self.out, self.rbuf = bytearray(), bytearray()
        self.conn = Conn(self.sess, tx, rx, resumed, interval=o.interval, notes=note)
        self.last_rx = time.monotonic()
        if self.session_start is None:
            self.session_start = time.monotonic()
        c = self.conn
        if o.key0_delay and self.conn_no == 1:
            time.sleep(o.key0_delay)
            note('sending KEY 0')
        self.out += c.seal_key()[1]
        if resumed:
            self.out += c.seal_ack()
        if o.bad_key:
            self.fault = True
        if o.bad_ping is not None:
            self.out += c.seal_ping(o.bad_ping)
            self.fault = True
        elif o.interval != DEFAULT_PEER_INTERVAL:
            self.out += c.seal_ping()

    def drop_conn(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = self.conn = None
        self.out, self.rbuf = bytearray(), bytearray()

    def frozen(self):
        return self.frozen_until is not None and time.monotonic() < self.frozen_until

    def on_lost(self, cause):
        """7.3: close, erase, then resume (8.6) or report (9.4)."""
        s = self.sess
        note('connection lost (%s)' % cause)
        self.drop_conn()
        if s.done_sent and s.peer_done:
            self.finish(0)
        if not s.resumable():
            self.report_lost(cause, '')
        self.lost_cause = cause
        if s.role == 'c':
            self.resume(cause)
        else:
            self.lost_at = time.monotonic()

    def send_some(self):
        """Send from self.out; the --cut-at/--reset-at test modes cut here."""
        o = self.o
        limit = len(self.out)
        cut = None
        cuts = o.cut_at or o.reset_at
        if cuts and self.conn_no <= len(cuts) and cuts[self.conn_no - 1] >= 0:
            cut = cuts[self.conn_no - 1]
            limit = min(limit, cut - self.sent_on_conn)
        if limit > 0:
            try:
                n = self.sock.send(self.out[:limit])
            except BlockingIOError:
                n = 0
            except OSError as e:
                raise Lost(e.strerror or str(e))
            del self.out[:n]
            self.sent_on_conn += n
        if cut is not None and self.sent_on_conn >= cut:
            self.cut(bool(o.reset_at))

    def cut(self, reset):
        note('cutting connection %d after %d bytes (%s)' % (
            self.conn_no, self.sent_on_conn, 'reset' if reset else 'close'))
        s = self.sock
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        else:
            try:                    # unread bytes would turn a close into a reset
                while s.recv(65536):
                    pass
            except OSError:
                pass
        raise Lost('cut by this side (test mode)')

    # ------------------------------------------------------------ input
    def next_chunk(self, room):
        """The next DATA payload from stdin (section 6), at most ROOM bytes."""
        if not self.inbuf or room <= 0:
            return None
        n = min(MAXPAY, room)
        if self.o.b:
            return bytes(self.inbuf[:n])
        nl = self.inbuf.find(b'\n', 0, n)
        if nl >= 0:
            return bytes(self.inbuf[:nl + 1])
        if len(self.inbuf) >= n or self.in_eof or time.monotonic() - self.in_last >= 0.02:
            return bytes(self.inbuf[:n])
        return None

    def read_stdin(self):
        try:
            data = os.read(self.stdin_fd, 65536)
        except OSError as e:
            raise Fail(1, 'read from stdin: %s' % e.strerror, end=(3, 0, e.strerror.encode()))
        if not data:
            self.in_eof = True
        else:
            self.inbuf += data
            self.in_last = self.last_progress = time.monotonic()

    def write_stdout(self, data):
        try:
            view = memoryview(data)
            while view:
                n = os.write(1, view)
                view = view[n:]
        except OSError as e:
            raise Fail(1, 'write to stdout: %s' % e.strerror, end=(4, 0, e.strerror.encode()))
        self.sess.W += len(data)
        self.last_progress = time.monotonic()

    # ------------------------------------------------------------ sending
    def pump(self):
        """Seal whatever is due, in the order of sections 5, 7, 9."""
        c, s, o = self.conn, self.sess, self.o
        if c is None or c.tx_state in ('DONE', 'ENDED') or self.frozen() or self.fault:
            return
        now = time.monotonic()
        while len(self.out) < 262144:
            if c.key_due():
                self.out += c.seal_key()[1]
                if o.key_after_key:
                    pass
                continue
            rekey = c.rekey_due(o.r, o.R, now)
            bad = o.bad_rekey and 'bad_rekey' not in self.mode_done
            if bad and self.in_eof and not self.inbuf and c.tx_state == 'OPEN':
                rekey = True            # the mode always takes effect
            if rekey and c.peer_keys:
                if not bad:
                    self.out += c.seal_rekey()
                    continue
                r = self.bad_rekey(c)
                if r == 'bad':
                    return
                if r == 'good':
                    continue
            if (o.ack_back or o.ack_beyond) and s.W > 0 and c.tx_state in ('OPEN', 'CLOSED'):
                self.ack_modes(c)
                return
            if c.ack_due(now):
                self.out += c.seal_ack()
                continue
            if o.end is not None and self.end_mode(c, False):
                return
            if c.can_data() and not rekey:
                if c.resend_left() > 0:
                    left = c.resend_left()
                    if o.close_elsewhere and c.resumed and s.input_ended:
                        if left == 1:
                            c.resend += 1   # the last byte is skipped: CLOSE one early
                            self.fault = True
                            self.out += c.seal_close()
                            return
                        left -= 1
                    start = c.resend - s.A
                    chunk = bytes(s.retained[start:start + min(MAXPAY, left)])
                    self.out += c.seal_data(chunk, padding(len(chunk), o.P), new=False)
                    continue
                if not s.input_ended:
                    chunk = self.next_chunk(s.cap - (s.S - s.A))
                    if chunk:
                        del self.inbuf[:len(chunk)]
                        self.out += c.seal_data(chunk, padding(len(chunk), o.P))
                        continue
            if c.tx_state == 'OPEN' and c.got_first_ack and c.resend_left() == 0 and \
                    (s.input_ended or (self.in_eof and not self.inbuf)) and not rekey:
                if o.end is not None and self.end_mode(c, True):
                    return
                if o.data_past_close and c.resumed and s.input_ended:
                    self.out += c.seal_data(b'data past close\n', new=False)
                    self.fault = True
                    self.out += c.seal_close()
                    return
                self.out += c.seal_close()
                if (o.cut_after_close or o.reset_after_close) and self.conn_no == 1:
                    self.cut_pending = True
                if o.data_after_close:
                    self.out += c.tx.seal(DATA, b'data after close\n')
                    self.fault = True
                    return
                continue
            if c.can_done():
                if o.no_done:
                    self.flush_for(2)
                    note('closing without DONE (test mode)')
                    self.finish(0)
                self.out += c.seal_done()
                if o.key_after_done:
                    c.keys.due = True
                    c.tx_state = 'CLOSED'
                    self.out += c.seal_key()[1]
                    c.tx_state = 'DONE'
                return
            break
        if c.tx_state not in ('DONE', 'ENDED') and not o.no_ping and \
                now - c.sealed_at >= o.interval:
            self.out += c.seal_ping()

    def ack_modes(self, c):
        o, s = self.o, self.sess
        if o.ack_back:
            self.out += c.seal_ack()
            self.out += c.seal_ack(s.last_ack - 1)
        else:
            self.out += c.seal_ack(s.W + (1 << 40))
        self.fault = True

    def end_mode(self, c, at_eof):
        """--end R[@N]: END R (value and text as 9.2's table) after N bytes sealed,
        or at the end of input in place of CLOSE."""
        o, s = self.o, self.sess
        reason, after = o.end
        if after is None and not at_eof or after is not None and s.S < after:
            return False
        value, text = {1: (0, b''), 2: (15, b'SIGTERM'), 3: (0, b'Input/output error'),
                       4: (0, b'No space left on device'), 5: (9, b'SIGKILL'), 6: (256, b''),
                       7: (30, b''), 8: (0, b'malformed record: test mode'),
                       9: (0, b'test mode')}.get(reason, (0, b''))
        if o.end_text is not None:
            text = bytes.fromhex(o.end_text)
        if s.W > s.last_ack and c.tx_state != 'ACK0':
            self.out += c.seal_ack()
        self.out += c.seal_end(reason, value, text)
        self.fault = True
        note('sent END %d (test mode)' % reason)
        return True

    def bad_rekey(self, c, at_eof=False):
        """--bad-rekey KIND: one bad REKEY, sealed properly; then wait for the end.
        'retired' needs two good REKEYs first (naming 0, then 1)."""
        kind = self.o.bad_rekey
        newest = len(c.peer_keys) - 1
        if kind == 'retired':
            if c.used < 1:
                if newest > c.used:
                    self.out += c.seal_rekey()
                    return 'good'
                return 'wait'       # for the peer's KEY 1
            wire = c.seal_rekey(index=0)
        elif kind == 'unannounced':
            wire = c.seal_rekey(index=newest + 1)
        elif kind == 'lowpoint':
            wire = c.seal_rekey(e_pub=bytes(32))
        elif kind == 'public':
            wire = c.seal_rekey(e_pub=bytes([9]) + bytes(31))
        else:
            wire = c.seal_rekey(payload=struct.pack('>I', newest))
        self.mode_done.add('bad_rekey')
        self.out += wire
        self.fault = True
        return 'bad'

    # ------------------------------------------------------------ receiving
    def receive(self):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            if self.fault:
                self.finish(0)
            raise Lost(e.strerror or str(e))
        if not data and self.fault:
            self.finish(0)
        if not data:
            c = self.conn
            if c.receiving():
                raise Lost('closed by %s' % self.name)
            return
        self.last_rx = time.monotonic()
        if self.fault or not self.conn.receiving():
            return                  # ignored, never opened (4.1)
        self.rbuf += data
        self.process()

    def process(self):
        c, s = self.conn, self.sess
        while c.receiving() and len(self.rbuf) >= 2:
            length = int.from_bytes(self.rbuf[:2], 'big')
            check_length(length)
            if len(self.rbuf) < 2 + length:
                return
            hdr, ct = bytes(self.rbuf[:2]), bytes(self.rbuf[2:2 + length])
            del self.rbuf[:2 + length]
            typ, payload = c.open(hdr, ct)
            if s.rs_prev is not None and c.resumed and s.role == 'l':
                s.rs_prev = None    # 8.4: the connector holds the current secret
            if typ == DATA:
                if payload:
                    s.opened_data = True
                    self.write_stdout(payload)
            elif typ == END:
                reason, value = struct.unpack('>BI', payload[:5])
                line, code = end_pipe_line(self.name, reason, value, payload[5:], self.state())
                self.finish(code, line)
        if not c.receiving():
            self.rbuf.clear()

    # ------------------------------------------------------------ the loop
    def on_signal(self, signum, frame):
        self.signal = signum

    def handle_signal(self):
        sig, c, s = self.signal, self.conn, self.sess
        if c is not None and c.tx_state == 'CLOSED' and c.can_done():
            self.out += c.seal_done()
            self.flush_for(1)
            if s.peer_done:
                self.finish(0)
            self.finish(1, None, sig)
        if c is None or c.tx_state in ('DONE', 'ENDED'):
            self.finish(1, None, sig)
        if sig == signal.SIGINT:
            self.end_with(1, 0, b'', 1, None, sig)
        name = signal.Signals(sig).name.encode()
        self.end_with(2, sig, name, 1, None, sig)

    def run(self):
        o = self.o
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self.on_signal)
        if o.l:
            self.listen()
        else:
            self.connect()
        while True:
            try:
                self.step()
            except Lost as e:
                try:
                    self.on_lost(str(e))
                except Fail as f:
                    self.fail(f)
            except Fail as e:
                self.fail(e)

    def step(self):
        o, s = self.o, self.sess
        now = time.monotonic()
        if self.signal:
            self.handle_signal()
        c = self.conn
        if o.freeze and not self.freeze_done and self.session_start is not None and \
                now - self.session_start >= o.freeze[0]:
            self.freeze_done = True
            self.frozen_until = now + o.freeze[1]
            note('frozen for %g s (test mode)' % o.freeze[1])
        was_frozen = self.frozen_until is not None
        if was_frozen and not self.frozen():
            self.frozen_until = None
            self.last_rx = now
        if s is not None and c is not None and not self.frozen():
            self.pump()
            if self.out:
                self.send_some()
            if s.done_sent and s.peer_done and not self.out:
                if o.hold_open:
                    note('holding the connection open after DONE (test mode)')
                    self.fault_wait()
                self.finish(0)
        if s is not None and self.lost_at is not None and now - self.lost_at > s.window:
            self.report_lost(self.lost_cause, '; not resumed within %s' % window_words(s.window))
        if o.w and s is not None and now - self.last_progress > o.w:
            raise Fail(1, 'timed out: no progress for %d seconds' % o.w, end=(7, o.w, b''))
        # what to wait for
        rl, wl, timeout = [], [], 1.0
        for p in list(self.pending):
            if now > p.deadline:
                self.drop_pending(p, None, 'no message within the wait: closed')
            else:
                rl.append(p.sock)
                timeout = min(timeout, p.deadline - now)
        if self.lsock is not None:
            rl.append(self.lsock)
        want_input = s is not None and not self.in_eof and len(self.inbuf) < 65536 \
            and not s.input_ended
        if want_input:
            rl.append(self.stdin_fd)
        if c is not None and not self.frozen():
            rl.append(self.sock)
            if self.out:
                wl.append(self.sock)
            if self.inbuf and not o.b:
                timeout = min(timeout, 0.02)
            if c.receiving() and not self.fault:
                limit = max(o.loss, 2 * c.peer_interval)
                if now - self.last_rx > limit:
                    raise Lost('no word from %s for %d s' % (self.name, limit))
        elif self.frozen():
            timeout = min(timeout, self.frozen_until - now)
        r, wr, _ = select.select(rl, wl, [], max(0.0, timeout))
        if self.stdin_fd in r:
            self.read_stdin()
        if self.lsock is not None and self.lsock in r:
            self.accept()
        for p in list(self.pending):
            if p.sock in r:
                self.pending_readable(p)
        if self.conn is not None and self.sock in r and not self.frozen():
            self.receive()
        if self.conn is not None and self.sock in wr and self.out:
            self.send_some()
        if self.cut_pending and self.conn is not None and not self.out:
            self.cut_pending = False
            self.cut(self.o.reset_after_close)
        if self.fault and self.conn is not None and not self.out:
            self.fault_wait()

    def fault_wait(self):
        """After a misbehaviour: send nothing more, discard what comes until the
        other side closes (exit 0) or 20 s pass (exit 1, "still open")."""
        deadline = time.monotonic() + 20
        sock = self.sock
        sock.setblocking(True)
        try:
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                if not sock.recv(65536):
                    self.finish(0)
        except socket.timeout:
            pass
        except OSError:
            self.finish(0)
        self.finish(1, 'still open')


# ---------------------------------------------------------------- vectors (section 12, Appendix A)
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')
V_FILES = ('secchat3-session.txt', 'secchat3-refusals.txt', 'secchat3-end.txt',
           'x25519-refused.txt', 'secchat3-resume-bad.txt')

def dflt(label, n=32):
    """A fixed input: the first N bytes of SHA-256("secchat/3 vector " || LABEL)."""
    return hashlib.sha256(b'secchat/3 vector ' + label.encode()).digest()[:n].hex()


class VFile:
    """Appendix A's "name = value" text.  Inputs come from SRC (a parsed file)
    when given, else from their defaults; everything else is computed."""
    def __init__(self, src):
        self.src, self.lines, self.names = src, [], set()

    def c(self, text):
        self.lines += ['# ' + l if l else '#' for l in text.strip('\n').split('\n')]

    def blank(self):
        self.lines.append('')

    def put(self, name, v):
        assert name not in self.names, 'duplicate name ' + name
        self.names.add(name)
        if isinstance(v, (bytes, bytearray)):
            v = bytes(v).hex() or '-'
        self.lines.append(('%s = %s' % (name, v)).rstrip() if v != '' else '%s = ' % name)

    def inp(self, name, default):
        v = self.src.get(name, default) if self.src is not None else default
        self.put(name, v)
        return v

    def inb(self, name, default):
        v = self.inp(name, default)
        return b'' if v == '-' else bytes.fromhex(v)

    def text(self):
        return '\n'.join(self.lines) + '\n'


def parse_vfile(text):
    d = {}
    for line in text.split('\n'):
        if line.startswith('#') or '=' not in line:
            continue
        k, v = line.split('=', 1)
        d[k.strip()] = v.strip()
    return d


class VSession:
    """Two sides of one session in memory, every record sealed by one and
    opened by the other, printed as Appendix A says."""
    def __init__(self, f):
        self.f, self.n, self.conn, self.cut = f, 0, None, False

    def start(self, name, c, l):
        self.conn, self.cut, self.side = name, False, {'c2s': c, 's2c': l}

    def rec(self, dr, typ, payload=None, pad=0, write=True, private=None, ephemeral=None):
        f, snd = self.f, self.side[dr]
        rcv = self.side['s2c' if dr == 'c2s' else 'c2s']
        n = 'record%d' % self.n
        self.n += 1
        ep, sq = snd.tx.epoch, snd.tx.seq
        idx = ''
        if typ == KEY:
            idx = ' index=%d' % (snd.keys.newest + 1)
        elif typ == REKEY:
            idx = ' index=%d' % (len(snd.peer_keys) - 1)
        if typ == DATA:
            pad = int(self.f.src.get(n, 'x padding=%d' % pad).split('padding=')[1]) \
                if self.f.src is not None else pad
        f.put(n, '%s %s epoch %d seq %d %s%s padding=%d' % (self.conn, dr, ep, sq, NAMES[typ],
                                                            idx, pad))
        if typ == KEY:
            priv = f.inb(n + '.private', private)
            index, wire = snd.seal_key(x25519_priv(priv))
            payload = x25519_pub(x25519_priv(priv))
            f.put(n + '.payload', payload)
        elif typ == REKEY:
            e = f.inb(n + '.ephemeral', ephemeral)
            wire = snd.seal_rekey(x25519_priv(e))
            payload = struct.pack('>I', len(snd.peer_keys) - 1) + x25519_pub(x25519_priv(e))
            f.put(n + '.payload', payload)
            f.put(n + '.dh', snd.last_rekey[0])
            f.put(n + '.salt', snd.last_rekey[1])
        else:
            if typ == DATA:
                payload = f.inb(n + '.payload', payload.hex())
                resend = snd.resend is not None and snd.resend_left() > 0
                wire = snd.seal_data(payload, pad, new=not resend)
            else:
                payload = f.inb(n + '.payload', (payload or b'').hex() or '-')
                wire = {CLOSE: snd.seal_close, DONE: snd.seal_done}.get(typ, None)
                if typ == CLOSE or typ == DONE:
                    wire = wire()
                elif typ == ACK:
                    wire = snd.seal_ack()
                    assert wire and payload == struct.pack('>Q', snd.sess.last_ack)
                elif typ == PING:
                    wire = snd.seal_ping(struct.unpack('>H', payload)[0])
                else:
                    wire = snd.seal_end(payload[0], struct.unpack('>I', payload[1:5])[0],
                                        payload[5:])
        f.put(n + '.wire', wire)
        if typ == REKEY:
            new = '%s.%s%d' % (self.conn, dr, snd.tx.epoch)
            f.put(new, snd.tx.secret)
            f.put(new + '.key', snd.tx.key)
            f.put(new + '.iv', snd.tx.iv)
        if self.cut:
            return
        got = rcv.open(wire[:2], wire[2:])
        assert got == (typ, payload), n + ': round trip'
        if typ == REKEY:
            assert rcv.last_rekey == snd.last_rekey and rcv.rx.secret == snd.tx.secret
        if typ == DATA and write:
            rcv.sess.W += len(payload)
        if typ == DATA and payload:
            rcv.sess.opened_data = True
        if rcv.sess.role == 'l' and rcv.resumed:
            rcv.sess.rs_prev = None

    def counters(self, sc, sl):
        f, r = self.f, 'record%d.' % (self.n - 1)
        f.put(r + 'W.c2s', sl.W), f.put(r + 'W.s2c', sc.W)
        f.put(r + 'A.c2s', sc.A), f.put(r + 'A.s2c', sl.A)
        f.put(r + 'S.c2s', sc.S), f.put(r + 'S.s2c', sl.S)


def key_lines(f, conn, c2s0, s2c0):
    for dr, sec in (('c2s0', c2s0), ('s2c0', s2c0)):
        ch = Chain(sec)
        f.put('%s.%s.key' % (conn, dr), ch.key)
        f.put('%s.%s.iv' % (conn, dr), ch.iv)


SECCHAT2_X = '5237290200d7c71962dcec81fd591a2df9ec5997e27e6ba2d3e744d510444832'
SECCHAT2_Y = '39257b9db49fcba01feabdb90ac462dc2fb330f7603e77d5975c8bb6447e0e4c'

def session_handshake(f):
    pw = f.inp('password', 'correct horse battery staple').encode()
    salt = f.inb('salt', '000102030405060708090a0b0c0d0e0f')
    iters = int(f.inp('iterations', '1000'))
    flags = int(f.inp('flags', '0'))
    wait = int(f.inp('wait', '60'))
    wl = int(f.inp('window.listener', '300'))
    wc = int(f.inp('window.connector', '300'))
    nonce1 = f.inb('nonce1', dflt('nonce1', 16))
    x = int(f.inp('x', SECCHAT2_X), 16)
    y = int(f.inp('y', SECCHAT2_Y), 16)
    w = password_scalar(pw, salt, iters)
    pb = encode(add(mul(y, G), mul(w, N)))
    pa = encode(add(mul(x, G), mul(w, M)))
    k = shared_k(x, valid_share(pb), w, N)
    assert k == shared_k(y, valid_share(pa), w, M), 'K differs'
    greeting = make_greeting(flags, wait, wl, iters, salt, nonce1, pb)
    aad = greeting[:49] + struct.pack('>H', wc)
    d = spake(ID_A, ID_B, pa, pb, k, w, aad)
    hello = header(HELLO) + struct.pack('>H', wc) + pa + d['cA']
    f.put('w', '%064x' % w)
    f.put('pB', pb), f.put('pA', pa), f.put('K', k)
    f.put('greeting1', greeting), f.put('hello', hello), f.put('confirm', header(CONFIRM) + d['cB'])
    f.put('AAD', aad)
    for name in ('TT', 'H', 'Ke', 'Ka', 'KcA', 'KcB', 'PRK0', 'sid'):
        f.put(name, d[name])
    f.put('conn1.c2s0', d['c2s0']), f.put('conn1.s2c0', d['s2c0']), f.put('rs0', d['rs0'])
    key_lines(f, 'conn1', d['c2s0'], d['s2c0'])
    return d, min(wl, wc), (iters, salt)


def vector_resume(f, n, conn, sc, sl, greeting_flags, hs, lost=False, rs_name=None):
    """A resume on connection CONN: GREETING, RESUME (the connector's g), RESUMED,
    the keys; the listener commits (8.4); the connector too unless LOST."""
    iters, salt = hs
    nonce = f.inb('nonce%d' % n, dflt('nonce%d' % n, 16))
    greeting = make_greeting(greeting_flags, 60, sl.window, iters, salt, nonce, bytes(65))
    f.put('greeting%d' % n, greeting)
    e_c = x25519_priv(f.inb('resume%d.eC' % n, dflt('resume%d.eC' % n)))
    gen = sc.g
    resume = make_resume(greeting, sc.sid, gen, e_c, sc.rs)
    f.put('resume%d' % n, resume)
    # the listener's checks (8.3)
    assert resume[9:25] == sl.sid
    rs_l = sl.rs if gen == sl.g else (sl.rs_prev if gen == sl.g - 1 else None)
    assert rs_l is not None and rs_l == sc.rs, 'generation'
    mkc, mkl = resume_keys(rs_l)
    assert hmac256(mkc, greeting + resume[:61]) == resume[61:]
    e_l = x25519_priv(f.inb('resume%d.eL' % n, dflt('resume%d.eL' % n)))
    resumed = make_resumed(greeting, resume, e_l, rs_l)
    f.put('resumed%d' % n, resumed)
    if lost:
        f.put('resumed%d.lost' % n, 'yes')
    dh = x25519(e_l, resume[29:61])
    assert dh == x25519(e_c, resumed[9:41]) and dh is not None
    th, prk = resume_prk(rs_l, dh, greeting, resume, resumed)
    f.put('resume%d.mkC' % n, mkc), f.put('resume%d.mkL' % n, mkl)
    f.put('resume%d.dh' % n, dh), f.put('resume%d.th' % n, th), f.put('resume%d.PRK' % n, prk)
    c2s0, s2c0, rs_new = key_set(prk)
    if gen == sl.g:
        sl.rs_prev, sl.rs, sl.g = sl.rs, rs_new, sl.g + 1
    else:
        sl.rs = rs_new
    f.put('%s.c2s0' % conn, c2s0), f.put('%s.s2c0' % conn, s2c0)
    f.put(rs_name or 'rs%d' % (gen + 1), rs_new)
    key_lines(f, conn, c2s0, s2c0)
    if not lost:
        assert hmac256(mkl, greeting + resume + resumed[:41]) == resumed[41:]
        sc.rs, sc.g = rs_new, gen + 1
    return c2s0, s2c0, greeting, resume


SESSION_HEAD = """secchat/3: one session over three connections, with fixed inputs
(doc/PROTOCOL.md section 12 item 2; the format is its Appendix A).
Made by tests/peer3.py --make-vectors (the independent peer, written from
doc/PROTOCOL.md alone); tests/peer3.py --selftest recomputes every value
from the inputs and compares the whole file.  Inputs: password, salt,
iterations, flags, wait, window.listener, window.connector, nonceN, x, y,
every recordN.private, recordN.ephemeral, every payload of a DATA, ACK, PING,
CLOSE or DONE record and the padding of each DATA record, resumeN.eC,
resumeN.eL.  Default inputs not taken from secchat2-session.txt are the
first bytes of SHA-256("secchat/3 vector " || name).
Counters after DATA, named after the last record sealed (recordN.W.c2s ...:
Appendix A's W.c2s etc. would repeat): S.DIR, A.DIR are the sender's sealed
and acknowledged counts of that direction's stream, W.DIR the receiver's
written count.
Connection 1 ends with a cut; record after cut1 was sealed by the connector
but never received.  The listener opened the connector's "more from alice"
but had not written it (W.c2s stays 6), so its resume ACK drops it and the
connector re-sends it on connection 3, with the lost record, as one DATA.
Connection 2: RESUME with gen 0; the listener commits (g = 1, rs0 kept) but
the RESUMED is lost; its key set is printed with the names conn2.c2s0,
conn2.s2c0 and conn2.rs1 (the rs1 that the redo replaces).  Connection 3:
RESUME with gen 0 again (8.4's redo): the new secret replaces conn2.rs1,
g stays 1; the listener erases rs0 when it opens the connector's KEY 0.
Greetings 2 and 3 are a lone listener's while it waits: NO_NEW, pB zero,
wait 60, the listener's window; ACK payloads are the sender's W."""

def gen_session(src):
    f = VFile(src)
    f.c(SESSION_HEAD)
    f.blank()
    d, window, hs = session_handshake(f)
    clock = lambda: 0.0
    sc = Session('c', d['sid'], d['rs0'], window)
    sl = Session('l', d['sid'], d['rs0'], window)
    c = Conn(sc, d['c2s0'], d['s2c0'], False, clock, interval=30)
    l = Conn(sl, d['s2c0'], d['c2s0'], False, clock)
    v = VSession(f)
    f.blank()
    v.start('conn1', c, l)
    ack = lambda n: struct.pack('>Q', n)
    v.rec('c2s', KEY, private=dflt('c.conn1.key0'))
    v.rec('s2c', KEY, private=dflt('l.conn1.key0'))
    v.rec('c2s', PING, struct.pack('>H', 30))
    v.rec('c2s', DATA, b'hello\n')
    v.rec('s2c', DATA, b'hi Alice\n', pad=padding(9, 64))
    v.rec('s2c', ACK, ack(sl.W))
    v.rec('c2s', ACK, ack(sc.W))
    v.rec('c2s', REKEY, ephemeral=dflt('c.conn1.rekey1'))
    v.rec('s2c', KEY, private=dflt('l.conn1.key1'))
    v.rec('s2c', REKEY, ephemeral=dflt('l.conn1.rekey1'))
    v.rec('c2s', KEY, private=dflt('c.conn1.key1'))
    v.rec('c2s', DATA, b'more from alice\n', write=False)
    v.rec('s2c', DATA, b'more from bob\n')
    v.counters(sc, sl)
    f.put('cut1', 'conn1')
    v.cut = True
    v.rec('c2s', DATA, b'lost on the way\n')
    v.counters(sc, sl)
    f.blank()
    vector_resume(f, 2, 'conn2', sc, sl, F_NO_NEW, hs, lost=True, rs_name='conn2.rs1')
    f.put('cut2', 'conn2')
    f.blank()
    c2s0, s2c0, _, _ = vector_resume(f, 3, 'conn3', sc, sl, F_NO_NEW, hs)
    assert sc.rs == sl.rs and sc.g == sl.g == 1
    c = Conn(sc, c2s0, s2c0, True, clock, interval=30)
    l = Conn(sl, s2c0, c2s0, True, clock)
    v.start('conn3', c, l)
    v.rec('c2s', KEY, private=dflt('c.conn3.key0'))
    assert sl.rs_prev is None
    v.rec('s2c', KEY, private=dflt('l.conn3.key0'))
    v.rec('c2s', ACK, ack(sc.W))
    v.rec('s2c', ACK, ack(sl.W))
    v.rec('c2s', PING, struct.pack('>H', 30))
    assert c.resend == 6 and c.resend_left() == 32
    v.rec('c2s', DATA, bytes(sc.retained))
    v.counters(sc, sl)
    v.rec('c2s', CLOSE)
    v.rec('s2c', CLOSE)
    v.rec('s2c', DONE)
    v.rec('c2s', DONE)
    assert sc.peer_done and sl.peer_done and sc.both_complete() and sl.both_complete()
    return f.text(), (d, sc, sl, hs)


REFUSAL_HEAD = """secchat/3 REFUSAL messages and special GREETINGs (doc/PROTOCOL.md
section 12 item 3).  Made by tests/peer3.py --make-vectors; --selftest
recomputes them.  refusalR: the 12 bytes for reason R with the seconds given
(8 for PENALTY, 1 for BUSY, 30 for GUESS_LIMIT, 0 otherwise); refusalR.line:
the connector's line after "secchat: " for HOST bob.example (a password
greeting; refusal6.line.code for a CODE greeting); refusalR.status its exit
status.  NO_SESSION (8) has no line of its own in 2.5 (section 8.6 and 9.4
word it); the line given is 9.4's END part without its "; ".  Then a GREETING
with CODE set for the code 1234-5678-9012 (password 123456789012) and a
GREETING with NO_NEW (pB zero).  Inputs: code, salt, iterations, wait,
window, nonce, y (and the seconds)."""

def gen_refusals(src):
    f = VFile(src)
    f.c(REFUSAL_HEAD)
    f.blank()
    for r in list(range(1, 10)) + [200]:
        secs = int(f.inp('refusal%d.seconds' % r, str({1: 8, 2: 1, 3: 30}.get(r, 0))))
        f.put('refusal%d' % r, make_refusal(r, secs))
        line, code = refusal_line(r, secs, 'bob.example')
        f.put('refusal%d.line' % r, line)
        if r == WRONG_SECRET:
            f.put('refusal%d.line.code' % r, refusal_line(r, secs, 'bob.example', True)[0])
        f.put('refusal%d.status' % r, code)
        f.blank()
    code = f.inp('code', '1234-5678-9012')
    salt = f.inb('salt', dflt('refusals.salt', 16))
    iters = int(f.inp('iterations', '1000'))
    wait = int(f.inp('wait', '60'))
    window = int(f.inp('window', '300'))
    nonce = f.inb('nonce', dflt('refusals.nonce', 16))
    y = int(f.inp('y', SECCHAT2_Y), 16)
    pw = re.sub('[^0-9]', '', code).encode()
    f.put('password', pw.decode())
    w = password_scalar(pw, salt, iters)
    f.put('w', '%064x' % w)
    pb = encode(add(mul(y, G), mul(w, N)))
    f.put('greeting.code', make_greeting(F_CODE, wait, window, iters, salt, nonce, pb))
    f.put('greeting.no_new', make_greeting(F_NO_NEW, wait, window, iters, salt, nonce, bytes(65)))
    return f.text()


END_HEAD = """secchat/3 END records and the lines they give (doc/PROTOCOL.md section
12 item 4, sections 9.2 to 9.4).  Made by tests/peer3.py --make-vectors;
--selftest recomputes them.  Input: secret (a direction's secret; key and IV
as section 3 derives them).  endR: an END with reason R, value and text as
9.2's table, sealed at seq R - 1 under that secret (padding 0); endR.chat:
the receiver's line in a chat, NAME bob; endR.phrase: 9.3's PHRASE.
Then stateN blocks: the receiver's stream state (S our sealed count, A our
confirmed count, T our stream's length or "-" when unknown, R the peer's
bytes we have written, and flags: ours_complete, peer_data (we opened DATA of
the peer), peer_close (we opened its CLOSE), peers_complete); stateN.endR.line
and .status: 9.3's line in a pipe for the END of reason R; stateN.lost.*:
9.4's line for a lost connection with the given CAUSE and END part."""

def gen_end(src):
    f = VFile(src)
    f.c(END_HEAD)
    f.blank()
    secret = f.inb('secret', dflt('end.secret'))
    ch = Chain(secret)
    f.put('key', ch.key), f.put('iv', ch.iv)
    f.blank()
    table = {1: (0, b''), 2: (15, b'SIGTERM'), 3: (0, b'Input/output error'),
             4: (0, b'No space left on device'), 5: (9, b'SIGKILL'), 6: (256, b''),
             7: (30, b''), 8: (0, b'malformed record: ACK of 10 bytes, only 5 sent'),
             9: (0, b'out of memory')}
    for r in range(1, 10):
        value = int(f.inp('end%d.value' % r, str(table[r][0])))
        text = f.inb('end%d.text' % r, table[r][1].hex() or '-')
        payload = struct.pack('>BI', r, value) + text
        f.put('end%d.payload' % r, payload)
        f.put('end%d.wire' % r, ch.seal(END, payload))
        f.put('end%d.chat' % r, end_chat_line('bob', r, value, text))
        f.put('end%d.phrase' % r, end_phrase(r, value, text))
        f.blank()
    f.put('end200.chat', end_chat_line('bob', 200, 0, b''))
    f.put('end200.phrase', end_phrase(200, 0, b''))
    f.blank()
    states = [  # S, A, T, R, ours_complete, peer_data, peer_close, peers_complete: which row
        (20027801, 10695475, 20027801, 0, 0, 0, 0, 0),   # ours cut, T known
        (20027801, 10695475, None, 0, 0, 0, 0, 0),       # ours cut, T unknown
        (312, 100, 1536, 0, 0, 0, 0, 0),                 # units differ
        (0, 0, None, 5000000, 0, 1, 0, 0),               # the peer's cut
        (1048576, 524288, 2097152, 1023, 0, 1, 0, 0),    # both cut
        (100, 100, 100, 200, 1, 1, 1, 1),                # both complete
        (0, 0, None, 0, 0, 0, 0, 0),                     # nothing sent or received
        (100, 100, 100, 0, 1, 0, 0, 0),                  # ours complete, peer sent nothing
    ]
    for i, st in enumerate(states, 1):
        n = 'state%d' % i
        S, A, T, R, oc, pd, pc, pcomp = st
        S, A = int(f.inp(n + '.S', str(S))), int(f.inp(n + '.A', str(A)))
        T = f.inp(n + '.T', '-' if T is None else str(T))
        T = None if T == '-' else int(T)
        R = int(f.inp(n + '.R', str(R)))
        flags = f.inp(n + '.flags', ' '.join(k for k, b in zip(
            ('ours_complete', 'peer_data', 'peer_close', 'peers_complete'), (oc, pd, pc, pcomp)) if b) or '-')
        state = {'S': S, 'A': A, 'T': T, 'R': R, 'R_opened': 'peer_data' in flags,
                 'peers_closed': 'peer_close' in flags,
                 'ours_complete': 'ours_complete' in flags,
                 'both_complete': 'ours_complete' in flags and 'peers_complete' in flags}
        for r in (1, 2, 7):
            line, code = end_pipe_line('bob', r, table[r][0], table[r][1], state)
            f.put('%s.end%d.line' % (n, r), line), f.put('%s.end%d.status' % (n, r), code)
        for k, (cause, end) in enumerate((('no word from bob for 45 s', '; not resumed within 5 min'),
                                          ('closed by bob', '; bob no longer holds the session'),
                                          ('Connection reset by peer', ''),
                                          ('no word from bob for 90 s', '; not resumed within 90 s')), 1):
            line, code = lost_line(cause, end, state)
            f.put('%s.lost%d.line' % (n, k), line), f.put('%s.lost%d.status' % (n, k), code)
        f.blank()
    f.c('amounts (9.3): N B below 1024, else one decimal in KiB, MiB, GiB, TiB')
    for k, x in enumerate((0, 1023, 1024, 1075, 1048575, 1048576, 10695475, 1 << 40, 5 << 50), 1):
        x = int(f.inp('amount%d' % k, str(x)))
        f.put('amount%d.text' % k, amount(x))
    return f.text()


X25519_HEAD = """X25519 shares a secchat/3 side refuses (doc/PROTOCOL.md sections 5.6 and 12
item 5).  Made by tests/peer3.py --make-vectors; --selftest recomputes them.
Input: private (a receive key, unclamped as stored) and each uN (32 bytes as
received).  uN.result: "refused: public-equivalent" (one of the four
encodings of 9 and p + 9, refused before any DH), "refused: DH zero"
(X25519(private, uN) is 32 zero bytes), or "accepted" with uN.dh."""

def gen_x25519(src):
    f = VFile(src)
    f.c(X25519_HEAD)
    f.blank()
    priv = x25519_priv(f.inb('private', dflt('x25519.private')))
    f.put('public', x25519_pub(priv))
    f.blank()
    order8 = (325606250916557431795983626356110631294008115727848805560023387167927233504,
              39382357235489614581723060781553021112529911719440698176882885853963445705823)
    values = [9, 9 + 2**255, P25519 + 9, P25519 + 9 + 2**255 - 2**255]
    us = [bytes.fromhex(h) for h in (
        '0900000000000000000000000000000000000000000000000000000000000000',
        '0900000000000000000000000000000000000000000000000000000000000080',
        'f6ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
        'f6ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff')]
    for u in (0, 1, order8[0], order8[1], P25519 - 1, P25519, P25519 + 1):
        us.append(u.to_bytes(32, 'little'))
        us.append((u + 2**255).to_bytes(32, 'little'))
    us.append(x25519_pub(x25519_priv(bytes.fromhex(dflt('x25519.other1')))))
    us.append(x25519_pub(x25519_priv(bytes.fromhex(dflt('x25519.other2')))))
    for i, u in enumerate(us, 1):
        u = f.inb('u%d' % i, u.hex())
        if public_equivalent(u):
            f.put('u%d.result' % i, 'refused: public-equivalent')
        else:
            dh = x25519(priv, u)
            if dh is None:
                f.put('u%d.result' % i, 'refused: DH zero')
            else:
                f.put('u%d.result' % i, 'accepted')
                f.put('u%d.dh' % i, dh)
    return f.text()


RESUME_BAD_HEAD = """secchat/3 RESUMEs the listener refuses (doc/PROTOCOL.md sections 8.3 and 12
item 6), from the session of secchat3-session.txt (its inputs are repeated
here and the session is recomputed from them).  Made by tests/peer3.py
--make-vectors; --selftest recomputes them.  Inputs: the session's, nonceN,
resumeN.eC, bad3.sid.
bad1: connection 3's RESUME (resume3) presented on a new connection (greeting4)
right after the listener committed connection 3 and before it opened any record
on it (g = 1, rs0 still kept as rs(g - 1), so check 2 passes): check 3, mac_C,
fails: RESUME_FAILED.  bad2: a RESUME with gen 0 and a correct mac_C under rs0
over greeting5, after the listener opened the connector's first record on
connection 3 (rs0 erased): check 2 fails: RESUME_FAILED.  bad3: a RESUME with
an unknown sid (gen 1, mac under rs1 over greeting6): check 1: NO_SESSION.
badN.check is the number of the failed check of 8.3, badN.refusal the answer."""

def gen_resume_bad(src):
    sess_src = src
    f = VFile(src)
    f.c(RESUME_BAD_HEAD)
    f.blank()
    for name in ('password', 'salt', 'iterations', 'flags', 'wait', 'window.listener',
                 'window.connector', 'nonce1', 'x', 'y'):
        pass
    # recompute the session from its own file's inputs (or the defaults)
    ss_src = None
    if src is not None:
        ss_src = parse_vfile(open(os.path.join(DATA_DIR, 'secchat3-session.txt')).read())
    _, (d, sc, sl, hs) = gen_session(ss_src)
    f.put('sid', sl.sid), f.put('rs0', d['rs0']), f.put('rs1', sl.rs)
    f.blank()
    # state right after the commit of connection 3: rebuild it
    _, (d2, sc2, sl2, _) = gen_session(ss_src)
    iters, salt = hs
    # bad1: resume3 after greeting4, with the listener as it stood after the commit
    g_resume3 = parse_vfile(gen_session(ss_src)[0])
    resume3 = bytes.fromhex(g_resume3['resume3'])
    nonce = f.inb('nonce4', dflt('nonce4', 16))
    greeting = make_greeting(F_NO_NEW, 60, sl.window, iters, salt, nonce, bytes(65))
    f.put('greeting4', greeting)
    f.put('bad1.resume', resume3)
    gen = struct.unpack('>I', resume3[25:29])[0]
    assert gen == 0 and resume3[9:25] == sl.sid
    mkc = resume_keys(d['rs0'])[0]
    assert hmac256(mkc, greeting + resume3[:61]) != resume3[61:]
    f.put('bad1.check', 3)
    f.put('bad1.refusal', make_refusal(RESUME_FAILED, 0))
    f.blank()
    nonce = f.inb('nonce5', dflt('nonce5', 16))
    greeting = make_greeting(F_NO_NEW, 60, sl.window, iters, salt, nonce, bytes(65))
    f.put('greeting5', greeting)
    e_c = x25519_priv(f.inb('resume5.eC', dflt('resume5.eC')))
    msg = make_resume(greeting, sl.sid, 0, e_c, d['rs0'])
    f.put('bad2.resume', msg)
    assert sl.g == 1 and sl.rs_prev is None
    f.put('bad2.check', 2)
    f.put('bad2.refusal', make_refusal(RESUME_FAILED, 0))
    f.blank()
    nonce = f.inb('nonce6', dflt('nonce6', 16))
    greeting = make_greeting(F_NO_NEW, 60, sl.window, iters, salt, nonce, bytes(65))
    f.put('greeting6', greeting)
    sid = f.inb('bad3.sid', dflt('bad3.sid', 16))
    assert sid != sl.sid
    e_c = x25519_priv(f.inb('resume6.eC', dflt('resume6.eC')))
    msg = make_resume(greeting, sid, 1, e_c, sl.rs)
    f.put('bad3.resume', msg)
    f.put('bad3.check', 1)
    f.put('bad3.refusal', make_refusal(NO_SESSION, 0))
    return f.text()


GENERATORS = {'secchat3-session.txt': lambda src: gen_session(src)[0],
              'secchat3-refusals.txt': gen_refusals, 'secchat3-end.txt': gen_end,
              'x25519-refused.txt': gen_x25519, 'secchat3-resume-bad.txt': gen_resume_bad}

def make_vectors():
    for name in V_FILES:
        with open(os.path.join(DATA_DIR, name), 'w') as fh:
            fh.write(GENERATORS[name](None))
        print('wrote tests/data/' + name)
    return 0


def rfc9382_selftest():
    text = open(os.path.join(DATA_DIR, 'rfc9382-p256.txt')).read()
    blocks = [v for v in (parse_vfile(b) for b in text.split('\n\n')) if 'w' in v]
    for i, v in enumerate(blocks):
        w, x, y = (int(v[k], 16) for k in ('w', 'x', 'y'))
        pa, pb = encode(add(mul(x, G), mul(w, M))), encode(add(mul(y, G), mul(w, N)))
        k = shared_k(x, valid_share(pb), w, N)
        assert k == shared_k(y, valid_share(pa), w, M)
        d = spake(v['idA'].encode(), v['idB'].encode(), pa, pb, k, w, b'')
        got = {'pA': pa.hex(), 'pB': pb.hex()}
        got.update((n, d[n].hex()) for n in ('Ke', 'Ka', 'KcA', 'KcB', 'cA', 'cB'))
        for n, val in got.items():
            assert v[n] == val, 'rfc9382 vector %d: %s' % (i, n)


def selftest():
    rfc9382_selftest()
    for name in V_FILES:
        path = os.path.join(DATA_DIR, name)
        text = open(path).read()
        got = GENERATORS[name](parse_vfile(text))
        if got != text:
            a, b = text.split('\n'), got.split('\n')
            i = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
            raise AssertionError('%s line %d: file has %r, computed %r' % (
                name, i + 1, a[i] if i < len(a) else None, b[i] if i < len(b) else None))
    rules_selftest()
    print('peer3 selftest ok')
    return 0


def rules_selftest():
    """A few rules of sections 4, 5 and 7 in memory: each fatal line."""
    secret_a, secret_b = bytes(32), bytes([1]) * 32
    def pair(resumed=False, keys=True):
        sc, sl = Session('c', bytes(16), bytes(32), 300), Session('l', bytes(16), bytes(32), 300)
        c = Conn(sc, secret_a, secret_b, resumed)
        l = Conn(sl, secret_b, secret_a, resumed)
        if keys:
            w1, w2 = c.seal_key()[1], l.seal_key()[1]
            l.open(w1[:2], w1[2:]), c.open(w2[:2], w2[2:])
        return c, l
    def fails(msg, fn):
        try:
            fn()
        except Fail as e:
            assert (e.code, str(e)) == (3, msg), 'rules: %r, wanted %r' % (str(e), msg)
            return
        raise AssertionError('rules: no failure, wanted %r' % msg)
    def deliver(w, rcv):
        return rcv.open(w[:2], w[2:])
    c, l = pair(keys=False)
    fails('malformed record: first record is not KEY', lambda: deliver(c.tx.seal(DATA, b'x'), l))
    c, l = pair()
    for typ, payload, msg in (
            (9, b'', 'malformed record: unknown type 9'),
            (0, b'', 'malformed record: only zero bytes'),
            (DONE, b'', 'malformed record: DONE before CLOSE'),
            (ACK, bytes(7), 'malformed record: ACK payload of 7 bytes'),
            (ACK, struct.pack('>Q', 1), 'malformed record: ACK of 1 bytes, only 0 sent'),
            (PING, b'\0\0', 'malformed record: PING interval of 0 s'),
            (PING, struct.pack('>H', 3601), 'malformed record: PING interval of 3601 s'),
            (END, bytes(4), 'malformed record: END payload of 4 bytes'),
            (END, bytes(5) + b'\n', 'malformed record: END text is not clean UTF-8'),
            (END, bytes(5) + b'\xc2\x85', 'malformed record: END text is not clean UTF-8'),
            (KEY, bytes([9]) + bytes(31), 'malformed record: KEY announced before the last one was used'),
            (REKEY, struct.pack('>I', 1) + bytes(32), 'malformed record: REKEY names unannounced key 1'),
            (REKEY, bytes(4) + bytes([9]) + bytes(31), 'malformed record: REKEY with a public-equivalent key'),
            (REKEY, bytes(36), 'malformed record: REKEY with a low-order key')):
        c, l = pair()
        fails(msg, lambda: deliver(c.tx.seal(typ, payload) if typ else c.tx.seal_inner(bytes(3)), l))
    sc = Session('c', bytes(16), bytes(32), 300)
    c = Conn(sc, secret_a, secret_b, False)
    l = Conn(Session('l', bytes(16), bytes(32), 300), secret_b, secret_a, False)
    l.keys.announce()
    fails('malformed record: KEY with a public-equivalent key',
          lambda: deliver(c.tx.seal(KEY, bytes.fromhex('f6' + 'ff' * 30 + 'ff')), l))
    c, l = pair(resumed=True)
    fails('malformed record: second record after a resume is not ACK',
          lambda: deliver(c.tx.seal(PING, b'\0\x0f'), l))
    c, l = pair()
    deliver(c.seal_close(), l)
    fails('malformed record: DONE before our CLOSE', lambda: deliver(c.tx.seal(DONE), l))
    for typ, msg in ((DATA, 'malformed record: DATA after CLOSE'),
                     (CLOSE, 'malformed record: CLOSE after CLOSE')):
        c, l = pair()
        deliver(c.seal_close(), l)
        fails(msg, lambda: deliver(c.tx.seal(typ), l))
    c, l = pair()
    l.rx.seq = SEQ_LIMIT
    fails('malformed record: too many records under one key', lambda: deliver(c.tx.seal(DATA), l))
    c, l = pair()
    w = bytearray(c.seal_data(b'x'))
    w[-1] ^= 1
    fails('record failed authentication', lambda: deliver(bytes(w), l))
    fails('malformed record: bad length 16', lambda: check_length(16))
    fails('malformed record: bad length 16657', lambda: check_length(16657))
    # retired key: two REKEYs (0, then 1 after KEY 1), then one naming 0
    c, l = pair()
    deliver(c.seal_rekey(), l)
    deliver(l.due_keys(), c)
    deliver(c.seal_rekey(), l)
    fails('malformed record: REKEY names retired key 0', lambda: deliver(c.seal_rekey(index=0), l))
    # a low-order receive key: our REKEY's DH is zero
    c, l = pair(keys=False)
    deliver(c.seal_key()[1], l)
    l.keys.announce()
    deliver(l.tx.seal(KEY, bytes(32)), c)
    fails('peer sent a bad receive key', c.seal_rekey)
    # ACK going back; DATA past an earlier CLOSE; CLOSE elsewhere
    c, l = pair()
    deliver(c.seal_data(b'abc'), l)
    deliver(l.tx.seal(ACK, struct.pack('>Q', 2)), c)
    fails('malformed record: ACK of 2 bytes after ACK of 2',
          lambda: deliver(l.tx.seal(ACK, struct.pack('>Q', 2)), c))
    sl = Session('l', bytes(16), bytes(32), 300)
    sl.W, sl.peer_close = 3, 3
    sc = Session('c', bytes(16), bytes(32), 300)
    sc.S = sc.A = 3
    c2, l2 = Conn(sc, secret_a, secret_b, True), Conn(sl, secret_b, secret_a, True)
    deliver(c2.seal_key()[1], l2), deliver(l2.seal_key()[1], c2)
    deliver(l2.seal_ack(), c2), deliver(c2.seal_ack(), l2)
    fails('malformed record: DATA past the end of the stream at byte 3',
          lambda: deliver(c2.tx.seal(DATA, b'x'), l2))
    sl = Session('l', bytes(16), bytes(32), 300)
    sl.W, sl.peer_close = 2, 3      # opened up to 3 and its CLOSE, wrote 2
    sc = Session('c', bytes(16), bytes(32), 300)
    sc.S, sc.A = 3, 2
    c2, l2 = Conn(sc, secret_a, secret_b, True), Conn(sl, secret_b, secret_a, True)
    deliver(c2.seal_key()[1], l2), deliver(l2.seal_key()[1], c2)
    deliver(l2.seal_ack(), c2), deliver(c2.seal_ack(), l2)
    fails('malformed record: CLOSE at byte 2, the stream ended at byte 3',
          lambda: deliver(c2.tx.seal(CLOSE), l2))
    # bytes after DONE are never opened
    c, l = pair()
    deliver(c.seal_close(), l), deliver(l.seal_close(), c)
    deliver(c.seal_done(), l)
    assert not l.receiving()


# ---------------------------------------------------------------- command line
def int_list(text):
    return [int(x) for x in text.split(',')]

def pair(default_second):
    def parse(text):
        a, _, b = text.partition(':')
        return int(a), (int(b) if b else default_second)
    return parse

def freeze_arg(text):
    a, _, b = text.partition(':')
    return float(a), (float(b) if b else 300.0)

def end_arg(text):
    a, _, b = text.partition('@')
    return int(a), (int(b) if b else None)

def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('-l', action='store_true', help='listen')
    ap.add_argument('-i', type=int, default=600000, help='PBKDF2 iterations (listener)')
    ap.add_argument('-p', help='password file')
    ap.add_argument('-b', action='store_true', help='bulk mode')
    ap.add_argument('-r', type=int, default=16384, help='rekey after N DATA records (0: never)')
    ap.add_argument('-R', type=float, default=60, help='rekey T seconds after the first DATA (0: never)')
    ap.add_argument('-P', type=int, default=1, help='padding size')
    ap.add_argument('-w', type=int, default=0, help='handshake deadline and idle limit')
    ap.add_argument('-n', help="the peer's name in lines")
    ap.add_argument('-v', action='store_true', help='notes on stderr')
    ap.add_argument('--code', action='store_true', help='a one-time code (CODE flag)')
    ap.add_argument('--interval', type=int, default=15, help='keepalive interval, 1..3600')
    ap.add_argument('--loss', type=float, default=45, help='loss limit in seconds')
    ap.add_argument('--retain', type=int, default=4 << 20, help='retain cap in bytes')
    ap.add_argument('--window', type=int, default=300, help='resume window in seconds')
    ap.add_argument('--wait', type=int, default=60, help="the greeting's wait, 1..255")
    m = ap.add_argument_group('misbehaviour modes (doc/peer3-test-modes.md)')
    m.add_argument('--refuse', type=pair(0), metavar='R[:S]')
    m.add_argument('--no-new', action='store_true')
    m.add_argument('--replay-resume', action='store_true')
    m.add_argument('--resume-bad', choices=('mac', 'gen', 'sid'))
    m.add_argument('--end', type=end_arg, metavar='R[@N]')
    m.add_argument('--end-text', metavar='HEX')
    m.add_argument('--bad-ping', type=int, metavar='I')
    m.add_argument('--no-ping', action='store_true')
    m.add_argument('--ack-back', action='store_true')
    m.add_argument('--ack-beyond', action='store_true')
    m.add_argument('--data-past-close', action='store_true')
    m.add_argument('--close-elsewhere', action='store_true')
    m.add_argument('--cut-after-close', action='store_true')
    m.add_argument('--reset-after-close', action='store_true')
    m.add_argument('--hold-open', action='store_true')
    m.add_argument('--key0-delay', type=float, metavar='SEC')
    m.add_argument('--cut-at', type=int_list, metavar='N[,N...]')
    m.add_argument('--reset-at', type=int_list, metavar='N[,N...]')
    m.add_argument('--freeze', type=freeze_arg, metavar='AT[:FOR]')
    m.add_argument('--bad-rekey', choices=('retired', 'unannounced', 'lowpoint', 'truncated',
                                           'public'))
    m.add_argument('--bad-key', choices=('public', 'lowpoint'))
    m.add_argument('--key-after-done', action='store_true')
    m.add_argument('--data-after-close', action='store_true')
    m.add_argument('--no-done', action='store_true')
    ap.add_argument('--selftest', action='store_true')
    ap.add_argument('--make-vectors', action='store_true')
    ap.add_argument('where', nargs='*', metavar='[HOST] PORT')
    a = ap.parse_args()
    if a.selftest:
        return selftest()
    if a.make_vectors:
        return make_vectors()
    VERBOSE.extend([1] if a.v else [])
    a.key_after_key = False
    if len(a.where) not in (1, 2) or not a.p:
        ap.error('need -p PASSFILE and [HOST] PORT')
    if not 1 <= a.P <= MAXPAY or not 1 <= a.interval <= 3600 or not 1 <= a.wait <= 255 \
            or not 0 <= a.window <= 86400 or a.loss <= 0 or a.retain < 65536 \
            or not 1000 <= a.i <= 10000000:
        ap.error('a parameter is out of range')
    a.host, a.port = (['127.0.0.1'] + a.where)[-2], int(a.where[-1])
    with open(a.p, 'rb') as f:
        password = re.sub(rb'\r?\n\Z', b'', f.read(), count=1)
    if not password:
        raise Fail(1, '%s: the password is empty' % a.p)
    peer = Peer(a, password)
    if a.bad_key:
        Conn.bad_key = bytes([9]) + bytes(31) if a.bad_key == 'public' else bytes(32)
    peer.run()


if __name__ == '__main__':
    try:
        sys.exit(main())
    except Fail as e:
        say(str(e))
        os._exit(e.code)
    except AssertionError as e:
        what = 'selftest failed' if '--selftest' in sys.argv else 'internal error'
        say('%s: %s' % (what, e))
        os._exit(1)
    except OSError as e:
        say(str(e))
        os._exit(1)
