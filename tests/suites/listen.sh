# shellcheck shell=bash
# Listening (doc/PROTOCOL.md 2.5 to 2.7, issues 17 to 19): crowds at the
# default iteration count, refusals in words, -g codes spent once.

# A crowd of connections from many addresses: the slow step of a real
# connector never happens while it holds the listener.

# legit NAME SOURCE: a connector from SOURCE (tests/srcaddr.so) sends
# "NAME" to the listener at $PORT; 0 if it got in within 5 s.  ADDR: the
# listener's address (127.0.0.1).
legit() {
	# The shim's bind(2) is not in the connector's filter: the debugging
	# build, without it, stands for a connector on another host.
	echo "$1" | SECCHAT_NO_SANDBOX=1 SECCHAT_TEST_SOURCE=$2 \
	    LD_PRELOAD=$SRCADDR ${NS_EXEC:-} timeout 5 $DEBUG -q -p "$PF" "${ADDR:-127.0.0.1}" "$PORT" \
	    > /dev/null 2> "$T/w/$1.err"
}

# crowd_run RATE BACK NEW ARGS: 10 returning users (in once before), then a
# crowd at RATE a second (crowd.py ARGS), then 10 first-time and the 10
# returning users again; each must get in within 5 s.  User i's address is
# BACK or NEW, then i, then $SUFFIX; all in the network namespace of
# $NS_EXEC, if set.
crowd_run() {
	local rate=$1 back=$2 new=$3 i in_back=0 in_new=0
	shift 3
	for i in $(seq 10); do
		legit "warm$i" "$back$i${SUFFIX:-}" || { echo "warm-up $i failed"; return 1; }
	done
	${NS_EXEC:-} timeout 60 python3 tests/crowd.py --rate "$rate" --seconds 40 \
	    "$@" "${ADDR:-127.0.0.1}" "$PORT" > "$T/w/crowd" 2>&1 &
	local cpid=$!
	PIDS="$PIDS $cpid"
	wait_number ignored "$T/w/crowd" "$cpid" 'crowd: \(holding\) .*' ||
	    return 1
	for i in $(seq 10); do
		legit "new$i" "$new$i${SUFFIX:-}" && in_new=$((in_new + 1))
		legit "back$i" "$back$i${SUFFIX:-}" && in_back=$((in_back + 1))
	done
	kill "$cpid"
	wait "$cpid"
	cat "$T/w/crowd"
	expect "first-time users in" "$in_new" 10 &&
	    expect "returning users in" "$in_back" 10 &&
	    for i in $(seq 10); do
		wait_number ignored "$T/w/l.out" "$LPID" "\\(new$i\\)" &&
		    wait_number ignored "$T/w/l.out" "$LPID" "\\(back$i\\)" ||
		    return 1
	    done
}

t_crowd_silent() {	# 400 silent connections a second, 2000 addresses
	listen l /dev/null -q -k -p "$PF" 127.0.0.1 0 || return 1
	crowd_run 400 127.98.0. 127.99.0. --addresses 2000 --hold 600
}
run "crowd: 400 silent connections a second from 2000 addresses lock no one out (default iterations)" t_crowd_silent

t_crowd_invalid() {	# 60 invalid-point HELLOs a second: no failure cap
	listen l /dev/null -q -k -p "$PF" 127.0.0.1 0 || return 1
	crowd_run 60 127.98.0. 127.99.0. --addresses 2000 --invalid --hold 1 &&
	    grep -q "^secchat: 127\.16\..* port [0-9]*: handshake failed: peer sent a bad point$" "$T/w/l.err"
}
run "crowd: 60 invalid-point HELLOs a second lock no one out (default iterations)" t_crowd_invalid

# The same crowd from one address per IPv6 /64, in a network namespace
# where 2001:db8::/48 is local (root only).
t_crowd_ipv6() {
	local ns=secchat-test-$$
	[ "$(id -u)" = 0 ] && ip netns add "$ns" 2>/dev/null ||
	    { echo "skipped: needs root and ip netns"; return 0; }
	NS_EXEC="ip netns exec $ns"
	ip netns exec "$ns" ip link set lo up &&
	    ip netns exec "$ns" ip -6 addr add 2001:db8::1/128 dev lo nodad &&
	    ip netns exec "$ns" ip -6 route add local 2001:db8::/48 dev lo ||
	    { ip netns del "$ns"; return 1; }
	ADDR=2001:db8::1
	timeout 60 ip netns exec "$ns" $SECCHAT -l -v -q -k -p "$PF" "$ADDR" 0 \
	    < /dev/null > "$T/w/l.out" 2> "$T/w/l.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	local rc=1
	wait_port "$T/w/l.err" "$LPID" &&
	    SUFFIX=::1 crowd_run 400 2001:db8:0:b 2001:db8:0:c \
	    --addresses 2000 --per64 --first 2001:db8:0:1000::1 --hold 600 &&
	    rc=0
	kill "$LPID"
	NS_EXEC= ADDR=
	ip netns del "$ns"
	return $rc
}
run "crowd: the same from one address per IPv6 /64, in a network namespace" t_crowd_ipv6

# A close before CONFIRM is a lost connection, never a wrong password.
t_close_before_confirm() {
	local g
	# A greeting (1000 iterations, zero salt and nonce) with pB = G.
	g=534543434841540301003c0000000003e8$(printf '%064d' 0)046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5
	fake_server "$g"	# reads a byte of the HELLO, then closes: EOF or reset
	expect "connector status" "$CRC" 1 &&
	    grep -Eqx 'secchat: (peer closed the connection during the handshake|handshake: Connection reset by peer)' "$T/w/c.err" &&
	    ! grep -q 'wrong password' "$T/w/c.err"
}
run "a close before CONFIRM is a lost connection (exit 1), not a wrong password" t_close_before_confirm

# A refused connector is told why: penalties after guesses from its address.
t_refusal_told() {
	listen l /dev/null $SC -q -k -m 1 127.0.0.1 0 || return 1
	python3 tests/guess.py --source 127.0.0.9 --attempts 4 --seconds 5 \
	    127.0.0.1 "$PORT" || return 1
	SECCHAT=$DEBUG SECCHAT_NO_SANDBOX=1 \
	    SECCHAT_TEST_SOURCE=127.0.0.9 LD_PRELOAD=$SRCADDR \
	    dial c /dev/null $SC 127.0.0.1 "$PORT"
	expect "connector status" "$CRC" 1 &&
	    grep -qx 'secchat: 127.0.0.1 refused the connection: too many failed attempts from your address; try again in [0-9]* s' "$T/w/c.err"
}
run "a penalised connector is told why and for how long" t_refusal_told

# -g: a code is spent by its first check, right or wrong.
t_code_spent() {
	local code
	code_listener -k -m 1 || return 1
	echo "$code" > "$T/w/code"
	chmod 600 "$T/w/code"
	# Read from a file as a code without -g: the greeting says so.
	dial c1 /dev/null -p "$T/w/code" 127.0.0.1 "$PORT"
	expect "first use" "$CRC" 0 && same "$T/w/a" "$T/w/c1.out" || return 1
	wait_until -p "$LPID" 5 at_least 2 '^secchat: one-time code ' "$T/w/l.err"
	has_line "$T/w/l.err" "secchat: the one-time code has been used; a new one:" ||
	    return 1
	dial c2 /dev/null -g -p "$T/w/code" 127.0.0.1 "$PORT"
	expect "second use" "$CRC" 3 &&
	    has_line "$T/w/c2.err" "secchat: wrong code, or the connection was tampered with; the code is spent"
}
run "-g: a code is spent by its first use; a password file read as a code" t_code_spent

# -g against a password listener, and a code listener's greeting.
t_code_mismatch() {
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	echo 1234-5678-9012 > "$T/w/code"
	chmod 600 "$T/w/code"
	dial c /dev/null -g -p "$T/w/code" 127.0.0.1 "$PORT"
	kill "$LPID"
	expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: 127.0.0.1 wants a password, not a one-time code"
}
run "-g against a password listener: said, exit 1" t_code_mismatch

# -g: a flood of valid HELLOs from several addresses burns at most 3 codes
# in its first 10 s (3 at once, one more each 20 s), and is told to wait.
t_code_flood() {
	local i pids=""
	timeout 60 $SECCHAT -l -k -q -v -g -i 1000 127.0.0.1 0 < /dev/null \
	    > "$T/w/l.out" 2> "$T/w/l.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/l.err" "$LPID" || return 1
	for i in 21 22 23 24 25 26; do
		python3 tests/guess.py --source 127.0.0.$i --attempts 100 \
		    --seconds 8 127.0.0.1 "$PORT" > "$T/w/g$i" &
		pids="$pids $!"
	done
	PIDS="$PIDS $pids"
	for i in $pids; do wait "$i"; done
	cat "$T/w"/g2*
	expect "codes burnt" "$(grep -c '^secchat: the one-time code is burnt' "$T/w/l.err")" 3 &&
	    expect "checks" "$(cat "$T/w"/g2* | sed -n 's/.* tested \([0-9]*\) .*/\1/p' |
	    paste -sd+ | bc)" 3 &&
	    grep -q 'port [0-9]*: refused for [0-9]* s: at most 3 code checks at once, one more each 20 s$' "$T/w/l.err"
}
run "-g: a flood of HELLOs burns at most 3 codes in 10 s" t_code_flood
