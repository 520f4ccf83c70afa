#!/usr/bin/python3
"""Numbered lines for the several-shippers test, and their check.

usage: lines.py gen NAME COUNT [--hold SEC]
       lines.py check FILE NAME:COUNT ...

gen writes COUNT lines "NAME SEQ LEN xxx...x" to stdout, LEN from 1 to 3000
bytes of x (so many lines cross a pipe's atomic 4096 bytes when merged), in
bursts with short pauses, then with --hold keeps stdout open for SEC seconds
as tail -F does.  check reads FILE and passes (exit 0) when every line is
whole (its LEN matches), each NAME's lines come in order without a gap,
exactly COUNT of them, and no other line is there; else it says what is
wrong on stdout and exits 1.
"""
import re, sys, time

LINE = re.compile(rb'^([A-Za-z]+) ([0-9]+) ([0-9]+) (x*)$')


def length(name, seq):
    return 1 + (seq * 7919 + len(name) * 104729) % 3000


def gen(name, count, hold):
    out = sys.stdout.buffer
    for seq in range(1, count + 1):
        n = length(name, seq)
        out.write(b'%s %d %d %s\n' % (name.encode(), seq, n, b'x' * n))
        if seq % 50 == 0:
            out.flush()
            time.sleep(0.005)
    out.flush()
    time.sleep(hold)


def check(path, wants):
    want = {}
    for w in wants:
        name, count = w.split(':')
        want[name.encode()] = int(count)
    seen = {name: 0 for name in want}
    bad = 0
    with open(path, 'rb') as f:
        for no, line in enumerate(f, 1):
            m = LINE.match(line.rstrip(b'\n'))
            ok = m and line.endswith(b'\n') and m.group(1) in want
            if ok:
                name, seq, n = m.group(1), int(m.group(2)), int(m.group(3))
                ok = (n == len(m.group(4)) == length(name.decode(), seq) and
                      seq == seen[name] + 1)
            if not ok:
                bad += 1
                if bad <= 3:
                    print(f'line {no} is not whole or out of order: '
                          f'{line[:60]!r}...')
                continue
            seen[name] = seq
    for name, count in want.items():
        if seen[name] != count:
            print(f'{name.decode()}: {seen[name]} lines, wanted {count}')
            bad += 1
    sys.exit(1 if bad else 0)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == 'gen':
        hold = float(sys.argv[5]) if sys.argv[4:5] == ['--hold'] else 0.0
        gen(sys.argv[2], int(sys.argv[3]), hold)
    elif len(sys.argv) >= 4 and sys.argv[1] == 'check':
        check(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main()
