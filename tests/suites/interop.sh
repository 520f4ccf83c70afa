# shellcheck shell=bash
# Interoperability with tests/peer.py, an independent Python implementation
# written from doc/PROTOCOL.md alone (Debian python3 + python3-cryptography),
# and the Python peer against itself.

t_peer_selftest() {
	$PEER --selftest > "$T/w/st.out" || return 1
	expect "selftest" "$(cat "$T/w/st.out")" "peer3 selftest ok"
}
run "python peer: selftest against the vectors" t_peer_selftest

interop_text() {	# lines both ways at once, last line without \n, CRLF, NUL
	seq 1 3000 | sed 's/^/listener line /' > "$T/w/a"
	printf 'crlf\r\nnul\0byte\n\nno newline at the end' >> "$T/w/a"
	{ seq 1 2000 | sed 's/^/connector line /'
	  head -c 100000 /dev/zero | tr '\0' x; echo; } > "$T/w/b"
}

# interop_session LISTEN DIAL SIDE FROM TO: lines both ways, -r 3 on both
# sides; SIDE is secchat's, which counts FROM rekeys received, TO sent.
interop_session() {
	interop_text
	$1 l "$T/w/a" $SC -r 3 127.0.0.1 0 || return 1
	$2 c "$T/w/b" $SC -r 3 127.0.0.1 "$PORT"
	reap
	both_ok "$T/w/a" "$T/w/b" &&
	    expect "REKEYs from Python" "$(grep -c '^secchat: peer rekeyed' "$T/w/$3.err")" "$4" &&
	    expect "REKEYs to Python" "$(grep -c '^secchat: rekeyed' "$T/w/$3.err")" "$5"
}

# C listener, Python connector; then the other way round.
t_interop_py_connector() { interop_session listen pydial l 669 1001; }
run "interop: C listener, Python connector, rekeys both ways" t_interop_py_connector

t_interop_py_listener() { interop_session pylisten dial c 1001 669; }
run "interop: Python listener, C connector, rekeys both ways" t_interop_py_listener

t_interop_binary() {	# 1 MB of random bytes each way, in both roles
	head -c 1000000 /dev/urandom > "$T/w/r1"
	head -c 1000000 /dev/urandom > "$T/w/r2"
	listen l "$T/w/r1" $SC -q -b 127.0.0.1 0 || return 1
	pydial c "$T/w/r2" $SC -r 3 127.0.0.1 "$PORT"
	reap
	both_ok "$T/w/r1" "$T/w/r2" &&
	    expect sha256 "$(sha256sum < "$T/w/c.out")" "$(sha256sum < "$T/w/r1")" &&
	    expect sha256 "$(sha256sum < "$T/w/l.out")" "$(sha256sum < "$T/w/r2")" ||
	    return 1
	pylisten l "$T/w/r1" $SC -r 3 127.0.0.1 0 || return 1
	dial c "$T/w/r2" $SC -q -r 3 127.0.0.1 "$PORT"
	reap
	both_ok "$T/w/r1" "$T/w/r2" &&
	    expect sha256 "$(sha256sum < "$T/w/c.out")" "$(sha256sum < "$T/w/r1")" &&
	    expect sha256 "$(sha256sum < "$T/w/l.out")" "$(sha256sum < "$T/w/r2")"
}
run "interop: 1 MB random each way, both roles" t_interop_binary

t_interop_wrong_password() {	# both roles: both sides exit 3, no output
	local w="wrong password, or the connection was tampered with"
	echo secret > "$T/w/a"
	listen l "$T/w/a" $SC 127.0.0.1 0 || return 1
	pydial c "$T/w/a" -p "$T/pf.wrong" 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 3 && expect "connector status" "$CRC" 3 &&
	    peer_line "$T/w/l.err" "$w" && has_line "$T/w/c.err" "peer3: $w" &&
	    [ ! -s "$T/w/l.out" ] && [ ! -s "$T/w/c.out" ] || return 1
	pylisten l "$T/w/a" -i 1000 -p "$T/pf.wrong" 127.0.0.1 0 || return 1
	dial c "$T/w/a" $SC 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 3 && expect "connector status" "$CRC" 3 &&
	    has_line "$T/w/l.err" "peer3: 127.0.0.1: $w" &&
	    has_line "$T/w/c.err" "secchat: $w" &&
	    [ ! -s "$T/w/l.out" ] && [ ! -s "$T/w/c.out" ]
}
run "interop: wrong password, both roles exit 3" t_interop_wrong_password

t_interop_py_rejects_flip() {	# the Python peer also rejects a flipped record
	seq 1 20 | sed 's/^/back /' > "$T/w/a"
	listen l "$T/w/a" $SC -q 127.0.0.1 0 || return 1
	timeout 40 $RELAY --attack flip:s2c:8:9 127.0.0.1 "$PORT" \
	    > "$T/w/relay.out" 2> "$T/w/relay.err" &
	local rpid=$!
	PIDS="$PIDS $rpid"
	wait_number RPORT "$T/w/relay.out" "$rpid" 'relay port \([0-9]*\)' ||
	    return 1
	pydial c /dev/null $SC 127.0.0.1 "$RPORT"
	reap
	wait "$rpid"
	head -n 7 "$T/w/a" > "$T/w/kept"
	expect "connector status" "$CRC" 3 &&
	    has_line "$T/w/c.err" "peer3: record failed authentication" &&
	    same "$T/w/kept" "$T/w/c.out"
}
run "interop: Python peer rejects a flipped record" t_interop_py_rejects_flip

# Python against Python: the peer agrees with its own reading of the
# document in both roles.  Input comes in three parts through FIFOs; each
# part waits until each side has received the other's next receive key, so
# both directions' REKEYs name at least keys 0, 1 and 2 (two rotations).
selfplay_feed() {	# selfplay_feed PID: a and b in three parts to fds 7 and 8
	local n s
	for n in 1 2; do
		sed -n "$((n * 100 - 99)),$((n * 100))p" "$T/w/a" >&7
		sed -n "$((n * 100 - 99)),$((n * 100))p" "$T/w/b" >&8
		for s in l c; do
			wait_number GOT "$T/w/$s.err" "$1" "peer: got key \($n\)" ||
			    return 1
		done
	done
	sed -n '201,$p' "$T/w/a" >&7
	sed -n '201,$p' "$T/w/b" >&8
}

t_peer_selfplay() {
	# tests/peer.py, the secchat/2 peer, against itself, as before.
	local PEER="/usr/bin/python3 tests/peer.py"
	interop_text
	local n
	mkfifo "$T/w/lin" "$T/w/cin"
	exec 7<> "$T/w/lin" 8<> "$T/w/cin"	# read-write: opening never blocks
	pylisten l "$T/w/lin" $SC -v -r 3 127.0.0.1 0 7>&- 8>&- || return 1
	timeout 60 $PEER $SC -v -r 5 -P 64 127.0.0.1 "$PORT" < "$T/w/cin" \
	    > "$T/w/c.out" 2> "$T/w/c.err" 7>&- 8>&- &
	local cpid=$!
	PIDS="$PIDS $cpid"
	selfplay_feed "$cpid"
	n=$?
	exec 7>&- 8>&-
	[ "$n" = 0 ] || return 1
	wait "$cpid"
	CRC=$?
	reap
	both_ok "$T/w/a" "$T/w/b" &&
	    expect "REKEYs l to c" "$(grep -c '^peer: rekeyed' "$T/w/l.err")" 1001 &&
	    expect "REKEYs seen by c" "$(grep -c '^peer: peer rekeyed' "$T/w/c.err")" 1001 &&
	    expect "REKEYs c to l" "$(grep -c '^peer: rekeyed' "$T/w/c.err")" 401 &&
	    expect "REKEYs seen by l" "$(grep -c '^peer: peer rekeyed' "$T/w/l.err")" 401 &&
	    grep -q '^peer: rekeyed (epoch [0-9]*, key 2)$' "$T/w/l.err" &&
	    grep -q '^peer: rekeyed (epoch [0-9]*, key 2)$' "$T/w/c.err"
}
run "python peer against itself: data, rekeys, rotations, DONE" t_peer_selfplay

# selfplay_mode SIDE MODE STATUS LINE N: the Python peer in MODE (see
# doc/peer-test-modes.md) as SIDE (l or c), -r 1 on both, 10 lines each way;
# the other Python side exits STATUS with the line "peer: LINE" (none if
# LINE is empty), having written exactly the first N lines sent to it.
selfplay_mode() {
	local side=$1 mode=$2 lm= cm= other=l mine orc mrc
	[ "$side" = l ] && { lm=$mode; other=c; } || cm=$mode
	rm -f "$T"/w/[lc].*	# pylisten must not find the last run's port
	seq 1 10 | sed 's/^/from l /' > "$T/w/a"
	seq 1 10 | sed 's/^/from c /' > "$T/w/b"
	pylisten l "$T/w/a" $SC -r 1 $lm 127.0.0.1 0 || return 1
	pydial c "$T/w/b" $SC -r 1 $cm 127.0.0.1 "$PORT"
	reap
	mine=$([ "$side" = l ] && echo "$T/w/a" || echo "$T/w/b")
	orc=$([ "$side" = l ] && echo "$CRC" || echo "$LRC")
	mrc=$([ "$side" = l ] && echo "$LRC" || echo "$CRC")
	head -n "$5" "$mine" > "$T/w/want"
	expect "$mode: the other side's status" "$orc" "$3" &&
	    expect "$mode: its own status" "$mrc" 0 &&
	    { [ -z "$4" ] || has_line "$T/w/$other.err" "peer: $4"; } &&
	    same "$T/w/want" "$T/w/$other.out"
}

t_peer_selfplay_modes() {	# each misbehaviour is caught by the other side
	# tests/peer.py, the secchat/2 peer, against itself, as before.
	local PEER="/usr/bin/python3 tests/peer.py"
	local t0=$SECONDS c="peer did not confirm receipt"
	selfplay_mode l --hold-open 0 "" 10 &&
	    expect "seconds for --hold-open" "$((SECONDS - t0 <= 5))" 1 &&
	    selfplay_mode c --no-done 1 "connection closed before DONE: $c" 10 &&
	    selfplay_mode l "--bad-rekey retired" 3 "REKEY names retired key 0" 3 &&
	    selfplay_mode c "--bad-rekey unannounced" 3 "REKEY names unannounced key 1" 1 &&
	    selfplay_mode l "--bad-rekey lowpoint" 3 "REKEY with a low-order key" 1 &&
	    selfplay_mode c "--bad-rekey truncated" 3 "malformed record: REKEY payload of 4 bytes" 1 &&
	    selfplay_mode l --key-after-done 3 "data after DONE" 10 &&
	    selfplay_mode c --data-after-close 3 "DATA after CLOSE" 10 &&
	    selfplay_mode l "--reset 0.3" 1 "read from network: Connection reset by peer: $c" 10
}
run "python peer against itself: each misbehaviour is caught" t_peer_selfplay_modes
