#!/usr/bin/python3
"""A password holder that floods its peer with cheap REKEYs.

usage: rekeyflood.py COUNT [peer3.py's arguments]

tests/peer3.py as it is (imported, not changed), but as soon as the peer's
KEY 0 has arrived it seals COUNT REKEYs in a row, before any DATA, all
naming the peer's key 0 with one E: one X25519 for the lot, then per
REKEY only the HMACs of section 5.2 and one AES-GCM seal, where the
receiver pays an X25519 each.  Then the session goes on as peer3's:
stdin as DATA, CLOSE, DONE.  On stderr: "rekeyflood: sealed COUNT REKEYs
in X s of CPU" once they are sealed.
"""
import os, struct, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer3                            # noqa: E402


class FloodPeer(peer3.Peer):
    flood = 0                           # REKEYs still to seal

    def pump(self):
        c = self.conn
        if self.flood and c is not None and c.peer_keys and c.tx_state == 'OPEN':
            cpu = time.process_time()
            e = peer3.X25519PrivateKey.generate()
            payload = struct.pack('>I', 0) + peer3.x25519_pub(e)
            dh = peer3.x25519(e, c.peer_keys[0])
            for _ in range(self.flood):
                self.out += c._seal(peer3.REKEY, payload)
                c.tx = c.tx.next(dh)[0]
            c.used = max(c.used, 0)
            os.write(2, b'rekeyflood: sealed %d REKEYs in %.3f s of CPU\n'
                     % (self.flood, time.process_time() - cpu))
            self.flood = 0
        super().pump()


def main():
    if len(sys.argv) < 2 or not sys.argv[1].isdigit():
        sys.exit(__doc__.split('\n\n')[1])
    FloodPeer.flood = int(sys.argv.pop(1))
    peer3.Peer = FloodPeer              # what peer3.main() runs
    try:
        peer3.main()
    except peer3.Fail as e:
        peer3.say(str(e))
        os._exit(e.code)


if __name__ == '__main__':
    main()
