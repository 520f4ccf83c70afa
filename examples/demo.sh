#!/usr/bin/env bash
# make demo: a listener (bob) and a connector (alice) on loopback exchange a
# few lines both ways, rekeying every 2 records, and the demo shows what
# each side printed: hex ciphertext on stderr, decrypted text on stdout.
set -eu
cd "$(dirname "$0")/.."
dir=$(mktemp -d "${TMPDIR:-/tmp}/secchat-demo.XXXXXX")
pids=""
trap 'for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"' EXIT

umask 077
head -c 18 /dev/urandom | base64 > "$dir/passfile"	# mode 600

cat > "$dir/bob.in" <<'END'
Hi Alice, Bob here.
The code word is "marmalade".
Talk soon.
END
cat > "$dir/alice.in" <<'END'
Hello Bob!
Got it: marmalade.
Sending the report tomorrow.
Bye.
END

if [ -t 1 ]; then bold=$(printf '\033[1m') plain=$(printf '\033[0m')
else bold= plain=; fi
banner() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }

./secchat -l -v -r 2 -p "$dir/passfile" 127.0.0.1 0 < "$dir/bob.in" \
    > "$dir/bob.out" 2> "$dir/bob.err" &
pids="$pids $!"
for _ in $(seq 100); do
	port=$(sed -n 's/^secchat: listening on .* port //p' "$dir/bob.err")
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "$port" ] || { cat "$dir/bob.err"; exit 1; }

timeout 30 ./secchat -v -r 2 -p "$dir/passfile" 127.0.0.1 "$port" \
    < "$dir/alice.in" > "$dir/alice.out" 2> "$dir/alice.err"
wait $pids
pids=""

banner "bob listens:    secchat -l -v -r 2 -p passfile 127.0.0.1 0"
banner "alice connects: secchat -v -r 2 -p passfile 127.0.0.1 $port"
banner "alice's stderr: notes, and every record in hex (> sent, < received)"
cat "$dir/alice.err"
banner "bob's stderr"
cat "$dir/bob.err"
banner "alice's stdout: what bob typed, decrypted"
cat "$dir/alice.out"
banner "bob's stdout: what alice typed, decrypted"
cat "$dir/bob.out"
cmp -s "$dir/alice.in" "$dir/bob.out" && cmp -s "$dir/bob.in" "$dir/alice.out"
banner "both sides exited 0; every line arrived intact."
