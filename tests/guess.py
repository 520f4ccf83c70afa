#!/usr/bin/python3
"""Measure how fast one source address can have passwords checked.

usage: guess.py [--source ADDR] [--attempts N] [--seconds S] HOST PORT

Connects from --source (default 127.0.0.9) again and again until N guesses
(default 20) were tested or S seconds (default 10) have passed, trying
again 50 ms after a refusal.  Each attempt reads the GREETING (secchat/3,
doc/PROTOCOL.md) and answers with a HELLO whose point is valid (the
generator) and whose confirmation is zeros: to the listener a wrong
password, at no cost to us, so the rate measured is the listener's, not
ours.  An attempt is "tested" when the listener answered with a REFUSAL
WRONG_SECRET, "refused" when it refused otherwise or closed first.  Prints
one line:
  guess: attempts A tested T refused R seconds S rate T/S
"""
import argparse, socket, sys, time

G = (0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296,
     0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5)
MAGIC = b'SECCHAT\x03'
HELLO = MAGIC + b'\x02' + bytes(2) + b'\x04' + G[0].to_bytes(32, 'big') + \
    G[1].to_bytes(32, 'big') + bytes(32)
WRONG_SECRET = MAGIC + b'\x00\x06'       # a REFUSAL's header and reason


def recv_upto(s, n):
    got = b''
    while len(got) < n:
        b = s.recv(n - len(got))
        if not b:
            break
        got += b
    return got


def attempt(a):
    """'tested', 'refused' or 'accepted' (a bug: never with zeros as cA)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.bind((a.source, 0))
        s.connect((a.host, a.port))
        m1 = recv_upto(s, 114)
        if len(m1) < 114 or not m1.startswith(MAGIC + b'\x01'):
            return 'refused'
        s.sendall(HELLO)
        m = recv_upto(s, 12)
        if m[:9] == MAGIC + b'\x04':
            return 'accepted'
        return 'tested' if m[:10] == WRONG_SECRET else 'refused'
    except (ConnectionError, socket.timeout):
        return 'refused'
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--source', default='127.0.0.9')
    ap.add_argument('--attempts', type=int, default=20)
    ap.add_argument('--seconds', type=float, default=10.0)
    ap.add_argument('host')
    ap.add_argument('port', type=int)
    a = ap.parse_args()
    n = {'tested': 0, 'refused': 0, 'accepted': 0}
    start = time.monotonic()
    count = 0
    while n['tested'] < a.attempts and time.monotonic() - start < a.seconds:
        what = attempt(a)
        n[what] += 1
        count += 1
        if what == 'refused':
            time.sleep(0.05)
    secs = time.monotonic() - start
    print(f"guess: attempts {count} tested {n['tested']} refused "
          f"{n['refused']} seconds {secs:.3f} rate {n['tested'] / secs:.1f}")
    sys.exit(2 if n['accepted'] else 0)


if __name__ == '__main__':
    main()
