# shellcheck shell=bash
# Hostile peers: silent and wrong connectors, and secchat/2's end and
# rekeys against a misbehaving Python peer (doc/peer-test-modes.md), and a
# password holder's flood of REKEYs (tests/rekeyflood.py).

t_silent_then_good() {
	echo "for the patient one" > "$T/w/a"
	listen l "$T/w/a" $SC -k -m 1 -w 1 127.0.0.1 0 || return 1
	timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; sleep 4" &
	PIDS="$PIDS $!"
	# The silent one first, and closed after its wait (-w 1): logged.
	wait_number ignored "$T/w/l.err" "$LPID" \
	    'secchat: 127.0.0.1 port [0-9]*: \(timed out during handshake\)' ||
	    return 1
	dial c /dev/null $SC 127.0.0.1 "$PORT"
	expect "good connector" "$CRC" 0 && same "$T/w/a" "$T/w/c.out"
}
run "a silent connector times out, -k serves the next" t_silent_then_good

t_ten_bad_then_good() {
	echo "still here" > "$T/w/a"
	listen l "$T/w/a" $SC -k -m 1 127.0.0.1 0 || return 1
	local i
	for i in 1 2 3 4 5; do	# each from its own address: no penalty
		# The shim's bind(2) is not in the connector's filter: the
		# debugging build, without it, stands for a connector elsewhere.
		SECCHAT=$DEBUG SECCHAT_NO_SANDBOX=1 \
		    SECCHAT_TEST_SOURCE=127.0.0.$((i + 1)) LD_PRELOAD=$SRCADDR \
		    dial bad /dev/null -i 1000 -p "$T/pf.wrong" 127.0.0.1 "$PORT"
		expect "wrong password $i" "$CRC" 3 || return 1
		head -c 200 /dev/urandom |
		    timeout 10 nc -N 127.0.0.1 "$PORT" > /dev/null 2>&1
	done
	dial c /dev/null $SC 127.0.0.1 "$PORT"
	expect "good connector" "$CRC" 0 && same "$T/w/a" "$T/w/c.out" &&
	    expect "wrong passwords seen" \
	    "$(grep -c "^secchat: 127.0.0.[2-6] port [0-9]*: $WRONG\$" "$T/w/l.err")" 5
}
run "ten bad connections, then a good one" t_ten_bad_then_good

t_reset_after_close() {	# a reset after the peer's CLOSE is seen at once
	echo "from the peer" > "$T/w/a"
	# Our stdin stays open and quiet for 20 s: only the reset can end it.
	mkfifo "$T/w/in"
	sleep 20 > "$T/w/in" &
	PIDS="$PIDS $!"
	listen l "$T/w/in" $SC 127.0.0.1 0 || return 1
	local t0=$SECONDS
	pydial c "$T/w/a" $SC --reset-after-close 127.0.0.1 "$PORT"
	reap
	echo "the listener ended $((SECONDS - t0)) s after the connect"
	# The peer sent everything and CLOSE, but never its DONE.
	expect "connector status" "$CRC" 1 && expect "listener status" "$LRC" 1 &&
	    [ $((SECONDS - t0)) -le 5 ] && same "$T/w/a" "$T/w/l.out" &&
	    has_line "$T/w/l.err" "secchat: connection lost (Connection reset by peer)"
}
run "a reset after the peer's CLOSE ends the session at once" t_reset_after_close

# The peer keeps its TCP side open after the DONE exchange: secchat exits
# 0 at once and closes, which the peer sees (it exits 1 after 20 s if not).
t_hold_open() {
	seq 1 50 | sed 's/^/held /' > "$T/w/a"
	seq 1 30 | sed 's/^/back /' > "$T/w/b"
	pylisten l "$T/w/a" $SC --hold-open 127.0.0.1 0 || return 1
	local t0=$SECONDS
	dial c "$T/w/b" $SC 127.0.0.1 "$PORT"
	echo "secchat ended $((SECONDS - t0)) s after the connect"
	reap
	expect "connector status" "$CRC" 0 && [ $((SECONDS - t0)) -le 5 ] &&
	    expect "peer status" "$LRC" 0 &&
	    same "$T/w/a" "$T/w/c.out" && same "$T/w/b" "$T/w/l.out" || return 1
	# The other role: a Python connector holds on.
	listen l "$T/w/a" $SC 127.0.0.1 0 || return 1
	t0=$SECONDS
	pydial c "$T/w/b" $SC --hold-open 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 0 && expect "peer status" "$CRC" 0 &&
	    [ $((SECONDS - t0)) -le 5 ] &&
	    same "$T/w/a" "$T/w/c.out" && same "$T/w/b" "$T/w/l.out"
}
run "a peer that holds the connection open after DONE: exit 0 at once" t_hold_open

# The peer closes after both CLOSEs without DONE: secchat has every byte
# the peer sent, but no proof that its own arrived: exit 1.
t_no_done() {
	seq 1 50 | sed 's/^/mine /' > "$T/w/a"
	seq 1 30 | sed 's/^/theirs /' > "$T/w/b"
	listen l "$T/w/a" $SC 127.0.0.1 0 || return 1
	pydial c "$T/w/b" $SC --no-done 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 1 && same "$T/w/b" "$T/w/l.out" &&
	    grep -Eqx "secchat: connection lost while sending \((closed by 127\.0\.0\.1|Connection reset by peer)\): 391 B sent, 0 B confirmed" "$T/w/l.err"
}
run "a peer that closes without DONE: exit 1, not confirmed" t_no_done

# key0_sent: the Python peer has sent its KEY 0; until then, ticks is the
# CPU time of t_rekey_waits_for_key0's listener pid.
key0_sent() {
	grep -q '^peer3: sending KEY 0$' "$T/w/c.err" && return 0
	t=$(cpu_ticks "$pid" 2>/dev/null) && ticks=$t
	return 1
}

# A REKEY due (-R 1) before the peer's KEY 0 waits for it in poll: the
# listener's CPU time, read until the peer sends KEY 0 after 3 s, stays
# under 0.3 s (a loop that polls with a zero timeout spends 2 s).
t_rekey_waits_for_key0() {
	echo "before the peer's key" > "$T/w/a"
	listen l "$T/w/a" $SC -R 1 127.0.0.1 0 || return 1
	timeout 60 $PEER $SC -v --key0-delay 3 127.0.0.1 "$PORT" < /dev/null \
	    > "$T/w/c.out" 2> "$T/w/c.err" &
	local cpid=$! pid ticks t
	PIDS="$PIDS $cpid"
	pid=$(child "$LPID") ticks=
	wait_until 10 key0_sent	# the last reading before KEY 0 goes out
	reap
	wait "$cpid"
	CRC=$?
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/a" "$T/w/c.out" &&
	    has_line "$T/w/l.err" "secchat: rekeyed sending key (epoch 1)" &&
	    [ -n "$ticks" ] && [ "$ticks" -lt $((30 * $(getconf CLK_TCK) / 100)) ] ||
	    { echo "CPU ticks while waiting: '$ticks' (pid $pid)"; return 1; }
	echo "CPU ticks while waiting: $ticks"
}
run "a REKEY due before the peer's KEY 0 waits in poll" t_rekey_waits_for_key0

# bad_rekey KIND MESSAGE KEPT: a Python connector sends 10 lines with -r 1
# and a bad REKEY of KIND; the listener exits 3 with MESSAGE and has the
# first KEPT lines ("" for: some prefix).
bad_rekey() {
	seq 1 10 | sed 's/^/line /' > "$T/w/b"
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	pydial c "$T/w/b" $SC -r 1 --bad-rekey "$1" 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 3 &&
	    has_line "$T/w/l.err" "secchat: malformed record: $2" || return 1
	if [ -n "$3" ]; then
		head -n "$3" "$T/w/b" | same /dev/stdin "$T/w/l.out"
	else
		[ -s "$T/w/l.out" ] &&
		    head -n "$(wc -l < "$T/w/l.out")" "$T/w/b" | same /dev/stdin "$T/w/l.out"
	fi
}

t_rekey_unannounced() { bad_rekey unannounced "REKEY names unannounced key 1" 1; }
run "REKEY naming a key not yet announced: exit 3" t_rekey_unannounced

t_rekey_low_order() { bad_rekey lowpoint "REKEY with a low-order key" 1; }
run "REKEY with a low-order E (all-zero X25519): exit 3" t_rekey_low_order

t_rekey_truncated() { bad_rekey truncated "REKEY payload of 4 bytes" 1; }
run "REKEY with a truncated payload: exit 3" t_rekey_truncated

t_rekey_retired() { bad_rekey retired "REKEY names retired key 0" ""; }
run "REKEY naming a retired key: exit 3" t_rekey_retired

# late_record MODE MESSAGE STATUS: a Python connector in MODE sends 20
# lines and then a record where none may come; the listener exits STATUS,
# with MESSAGE if any, and has written exactly the 20 lines.
late_record() {
	seq 1 20 | sed 's/^/line /' > "$T/w/b"
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	pydial c "$T/w/b" $SC "$1" 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" "$3" && same "$T/w/b" "$T/w/l.out" &&
	    { [ -z "$2" ] || has_line "$T/w/l.err" "secchat: malformed record: $2"; }
}

# A KEY after DONE, in the same write as the DONE: never opened (4.1).
t_key_after_done() { late_record --key-after-done "" 0; }
run "KEY after DONE: never opened, exit 0" t_key_after_done

# DATA after CLOSE: that DATA never reaches stdout.
t_data_after_close() { late_record --data-after-close "DATA after CLOSE" 3; }
run "DATA after CLOSE: exit 3, never written" t_data_after_close

# A password holder that floods REKEYs which cost it almost nothing (one E
# and one DH for all of them, tests/rekeyflood.py): the receiver opens at
# most REKEY_BURST at once, then REKEY_PER_SEC a second (doc/PROTOCOL.md
# 5.3, "Rate"), and leaves the rest unread: flow control, not an error.
FLOOD=6000 REKEY_BURST=1000 REKEY_PER_SEC=1000	# as in secchat.c

# uptime_ms: CLOCK_BOOTTIME in ms (secchat's clock), to 10 ms, no fork.
uptime_ms() {
	local up _
	read -r up _ < /proc/uptime
	MS=$((${up%.*} * 1000 + 10#${up#*.} * 10))
}

# flood_sample: how many of the flood's REKEYs the listener has opened
# (opened), and ms since t0, read after them (ms): at most REKEY_BURST +
# REKEY_PER_SEC a second may be open by then, whenever the session began
# after t0; over lists the samples above that.  The CPU ticks of the
# listener (pid) and the flooder (fpid) so far.  True once all are open.
flood_sample() {
	local t
	opened=$(grep -c '^secchat: peer rekeyed (epoch [0-9]*)$' "$T/w/l.err")
	uptime_ms
	ms=$((MS - ms0))
	[ "$opened" -le $((REKEY_BURST + REKEY_PER_SEC * ms / 1000 + 20)) ] ||
	    over="$over $opened@${ms}ms"
	t=$(cpu_ticks "$pid" 2>/dev/null) && ticks=$t
	t=$(cpu_ticks "$fpid" 2>/dev/null) && fticks=$t
	echo "$ms ms: $opened REKEYs opened, listener $ticks ticks, flooder $fticks"
	[ "$opened" -ge "$FLOOD" ]
}

# Asserted: no sample shows more REKEYs opened than the budget allows (so
# the flood takes at least (FLOOD - REKEY_BURST) / REKEY_PER_SEC s); the
# listener's CPU over the flood stays under half of the wall time (a loop
# that spins while the budget tops up would take it all); every REKEY is
# opened at last and the session ends as usual, with both streams whole.
# A slow machine only opens the flood later, which the bounds allow.
t_rekey_flood() {
	echo "from the listener" > "$T/w/a"
	seq 1 5 | sed 's/^/after the flood /' > "$T/w/b"
	listen l "$T/w/a" $SC -q 127.0.0.1 0 || return 1
	local pid fpid cpid ticks ticks0 fticks='' opened ms ms0 MS over='' hz
	pid=$(child "$LPID") hz=$(getconf CLK_TCK)
	ticks0=$(cpu_ticks "$pid") && ticks=$ticks0 || return 1
	uptime_ms
	ms0=$MS
	timeout 60 /usr/bin/python3 tests/rekeyflood.py $FLOOD $SC \
	    127.0.0.1 "$PORT" < "$T/w/b" > "$T/w/c.out" 2> "$T/w/c.err" &
	cpid=$!
	PIDS="$PIDS $cpid"
	wait_until 10 child "$cpid" > /dev/null && fpid=$(child "$cpid")
	wait_until -p "$LPID" -e 0.2 30 flood_sample ||
	    { echo "the flood was not all opened: $opened of $FLOOD"; return 1; }
	wait "$cpid"
	CRC=$?
	reap
	cat "$T/w/c.err"
	echo "listener: $((ticks - ticks0)) ticks of CPU in $ms ms ($hz a second)"
	[ -z "$over" ] ||
	    { echo "more REKEYs opened than the budget allows:$over"; return 1; }
	[ $(((ticks - ticks0) * 1000 * 2)) -le $((ms * hz)) ] ||
	    { echo "the listener spent over half the wall time"; return 1; }
	both_ok "$T/w/a" "$T/w/b" &&
	    grep -q "^secchat: sent .*, rekeys 0 sent, $FLOOD received, at most [0-9]* bytes\? unconfirmed$" "$T/w/l.err"
}
run "a REKEY flood is opened at most 1000 at once, then 1000 a second" t_rekey_flood
