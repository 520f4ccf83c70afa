#!/usr/bin/python3
"""A crowd without the password: silent connections from rotating addresses.

usage: crowd.py [--rate R] [--addresses K] [--first ADDR] [--per64]
                [--seconds S] [--hold N] [--invalid] HOST PORT

Opens R connections a second, each from the next of K source addresses
counting up from --first (default 127.16.0.1; an IPv6 --first gives IPv6
sources, which need IPV6_FREEBIND and a prefix routed to lo), and holds
each one silent until the listener closes it.  With --invalid, each
connection instead answers the listener's GREETING at once with a HELLO
whose point is not on the curve (secchat/3, doc/PROTOCOL.md; no
computation for us).  --per64 steps IPv6 sources by a /64 (one address per
/64, as a listener counts them).  --hold N prints "crowd: holding N" once N
connections are open at once.  Prints "crowd: started" once
the first connection is up, then one line of counts at the end.  Ends
after --seconds (default 20) or on SIGTERM; an alarm ends it even if the
loop sticks.
"""
import argparse, ipaddress, resource, selectors, signal, socket, sys, time

MAGIC = b'SECCHAT\x03'
GREETING = 114
# HELLO: header, window 0, pA = (0, 0) (off the curve), cA zero.
BAD_HELLO = MAGIC + b'\x02' + bytes(2) + b'\x04' + bytes(64) + bytes(32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rate', type=float, default=200)
    ap.add_argument('--addresses', type=int, default=2000)
    ap.add_argument('--first', default='127.16.0.1')
    ap.add_argument('--seconds', type=float, default=20)
    ap.add_argument('--invalid', action='store_true')
    ap.add_argument('--per64', action='store_true')
    ap.add_argument('--hold', type=int, default=0)
    ap.add_argument('host')
    ap.add_argument('port', type=int)
    a = ap.parse_args()
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(1))
    signal.alarm(int(a.seconds) + 10)
    signal.signal(signal.SIGTERM, lambda *_: setattr(a, 'seconds', 0))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    first = ipaddress.ip_address(a.first)
    fam = socket.AF_INET6 if first.version == 6 else socket.AF_INET
    sel = selectors.DefaultSelector()
    st = {'opened': 0, 'closed_by_listener': 0, 'failed': 0, 'sent_bad': 0}
    start = time.monotonic()
    end = start + a.seconds
    n = 0
    while True:
        now = time.monotonic()
        if now >= start + a.seconds:
            break
        while n < (now - start) * a.rate and n < hard - 100:
            src = str(first + (n % a.addresses << (64 if a.per64 else 0)))
            n += 1
            s = socket.socket(fam, socket.SOCK_STREAM)
            try:
                if fam == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, 78, 1)   # IPV6_FREEBIND
                s.bind((src, 0))
                s.setblocking(False)
                s.connect_ex((a.host, a.port))
            except OSError:
                st['failed'] += 1
                s.close()
                continue
            st['opened'] += 1
            if st['opened'] == 1:
                print('crowd: started', flush=True)
            sel.register(s, selectors.EVENT_READ, [0])
        if a.hold and len(sel.get_map()) >= a.hold:
            print('crowd: holding %d' % a.hold, flush=True)
            a.hold = 0
        for key, _ in sel.select(timeout=0.002):
            s, got = key.fileobj, key.data
            try:
                b = s.recv(4096)
            except OSError:
                b = b''
            if b and a.invalid and got[0] < GREETING <= got[0] + len(b):
                got[0] += len(b)
                try:
                    s.send(BAD_HELLO)
                    st['sent_bad'] += 1
                except OSError:
                    pass
                continue
            if b:
                got[0] += len(b)
                continue
            st['closed_by_listener'] += 1
            sel.unregister(s)
            s.close()
    print('crowd: ' + ' '.join('%s %d' % kv for kv in st.items()) +
          ' open %d' % len(sel.get_map()), flush=True)


main()
