#!/usr/bin/python3
"""The thief of one traffic secret, for the compromise test (test.sh).

usage: compromise.py LEAK HEXLOG EPOCH
       compromise.py --secchat1 VECTOR

LEAK is the file a test build of secchat (make tests/secchat-leak) wrote with
SECCHAT_TEST_LEAK: lines "tx epoch N HEX" with each secret of its sending
direction.  HEXLOG is that secchat's stderr: its "> " lines are the records it
sent, in order, as an eavesdropper saw them.  The thief has the secret of
epoch EPOCH only.  It opens that epoch's records up to its REKEY (which shows
the thief the REKEY's index and E), then tries secchat/1's hash-only step,
S' = HKDF-Expand(S, "rekey", 32), on the next record; under secchat/2 that
fails, because S' also needs X25519 with a private key the thief never had.
As a control, the real next secret from LEAK opens the next records.

--secchat1 plays the same thief on the secchat/1 session vector
(tests/data/secchat1-session.txt): there the hash-only step does open the
records after the REKEY, which is what secchat/2 fixes.

Prints one line per finding; exit 0 when every finding is as expected.
"""
import hashlib, hmac, re, sys
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def expand(prk, info, n):           # HKDF-Expand, one block
    return hmac.digest(prk, info + b'\x01', 'sha256')[:n]


def opener(secret):
    """A function seq, record -> (type, payload) or None, under secret."""
    aead, iv = AESGCM(expand(secret, b'key', 32)), expand(secret, b'iv', 12)

    def open_(seq, rec):
        nonce = (int.from_bytes(iv, 'big') ^ seq).to_bytes(12, 'big')
        try:
            inner = aead.decrypt(nonce, rec[2:], rec[:2]).rstrip(b'\0')
        except InvalidTag:
            return None
        return inner[-1], inner[:-1]
    return open_


def read_epoch(secret, records, start):
    """Open records from start with secret, seq 0, 1, ... until a REKEY.
    Returns (records opened, index of the REKEY) or (0, None)."""
    open_ = opener(secret)
    for seq, i in enumerate(range(start, len(records))):
        got = open_(seq, records[i])
        if got is None:
            return 0, None
        if got[0] == 2:
            return seq + 1, i
    return 0, None


def count_open(secret, records, start):
    open_, n = opener(secret), 0
    while start + n < len(records) and open_(n, records[start + n]) is not None:
        n += 1
    return n


def find_epoch(secret, records):
    """Where the stolen secret's epoch begins: the record that opens at seq 0."""
    open_ = opener(secret)
    return next((i for i, r in enumerate(records) if open_(0, r) is not None), None)


def secchat2(leak, hexlog, epoch):
    secrets = {}
    for line in open(leak):
        d, _, n, h = line.split()
        if d == 'tx':
            secrets[int(n)] = bytes.fromhex(h)
    records = [bytes.fromhex(m.group(1)) for m in
               (re.match(r'> ([0-9a-f]+)$', l.strip()) for l in open(hexlog)) if m]
    stolen = secrets[epoch]
    start = find_epoch(stolen, records)
    if start is None:
        print('epoch %d: no record opens with the stolen secret' % epoch)
        return 1
    n, rekey = read_epoch(stolen, records, start)
    if rekey is None:
        print('epoch %d: no REKEY found after record %d' % (epoch, start))
        return 1
    print('epoch %d: the stolen secret opens %d records, the last a REKEY' % (epoch, n))
    guess = count_open(expand(stolen, b'rekey', 32), records, rekey + 1)
    real = count_open(secrets[epoch + 1], records, rekey + 1)
    print('epoch %d: the hash-only guess opens %d records' % (epoch + 1, guess))
    print('epoch %d: the real secret opens %d records' % (epoch + 1, real))
    return 0 if guess == 0 and real > 0 else 1


def secchat1(path):
    v = dict(l.split(' = ', 1) for l in open(path).read().splitlines()
             if ' = ' in l and not l.startswith('#'))
    records = [bytes.fromhex(v[k + '.wire']) for k in sorted(
        (k for k in v if re.fullmatch(r'record\d+', k) and v[k].startswith('c2s')),
        key=lambda k: int(k[6:]))]
    stolen = bytes.fromhex(v['c2s0'])
    n, rekey = read_epoch(stolen, records, 0)
    guess = count_open(expand(stolen, b'rekey', 32), records, rekey + 1) if rekey is not None else 0
    print('secchat/1 epoch 0: the stolen secret opens %d records, the last a REKEY' % n)
    print('secchat/1 epoch 1: the hash-only guess opens %d records' % guess)
    return 0 if guess > 0 else 1


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--secchat1':
        sys.exit(secchat1(sys.argv[2]))
    if len(sys.argv) == 4:
        sys.exit(secchat2(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    sys.exit(__doc__)
