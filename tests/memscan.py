#!/usr/bin/env python3
"""Look for byte strings in the writable memory of a running process.

    memscan.py PID [--present HEX]... [--absent HEX]...

Reads /proc/PID/maps and /proc/PID/mem (which needs the right to ptrace
PID; for secchat, which is not dumpable, that means root).  Each pattern
is searched as given and, since libcrypto keeps big numbers as
little-endian words, byte-reversed too.  Prints one line per pattern that
is where it should not be or missing where it should be; exit status 0
if every --absent pattern is absent and every --present one found, 1 if
not, 2 if the memory cannot be read.
"""

import argparse
import sys


def regions(pid):
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            perms = fields[1]
            name = fields[5] if len(fields) > 5 else "[anon]"
            # Writable memory is where data lives; [vvar] and friends
            # cannot be read.
            if "w" in perms and not name.startswith("[v"):
                yield lo, hi, name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pid", type=int)
    ap.add_argument("--present", action="append", default=[])
    ap.add_argument("--absent", action="append", default=[])
    a = ap.parse_args()
    want = {h: bytes.fromhex(h) for h in a.present + a.absent}
    found = {h: [] for h in want}
    try:
        mem = open(f"/proc/{a.pid}/mem", "rb", buffering=0)
        maps = list(regions(a.pid))
    except OSError as e:
        print(f"memscan: {e}")
        return 2
    with mem:
        for lo, hi, name in maps:
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except OSError:
                continue
            for h, b in want.items():
                if b in data or b[::-1] in data:
                    found[h].append(name)
    bad = 0
    for h in a.absent:
        if found[h]:
            print(f"memscan: {h} is still in {', '.join(found[h])}")
            bad = 1
    for h in a.present:
        if not found[h]:
            print(f"memscan: {h} is not in memory, yet it should be")
            bad = 1
    return bad


if __name__ == "__main__":
    sys.exit(main())
