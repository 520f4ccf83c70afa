# shellcheck shell=bash
# Faults at home: a stalled reader, a slow or stalled stderr, a full or
# closed stdout, a sender interrupted.  Some read CPU time, RSS and wall
# time: this suite runs alone.

t_stalled_reader() {	# the sender waits in poll, in constant memory
	head -c 100000000 /dev/urandom > "$T/w/big"
	# The receiver's reader sleeps: its pipe, buffers and socket fill up.
	slow_listener 3 || return 1
	# -B 1: 1 MiB retained, so that the limit stays what it was.
	timeout 60 $SECCHAT $SC -q -b -B 1 127.0.0.1 "$PORT" < "$T/w/big" \
	    > /dev/null 2> "$T/w/c.err" &
	local cpid=$! spid t0 t1 rss
	PIDS="$PIDS $cpid"
	# Measured from 1 s to 2.5 s, within the reader's 3 s of sleep: time
	# to fill the buffers, not an event to wait for.
	sleep 1
	spid=$(child "$cpid")
	t0=$(cpu_ticks "$spid"); sleep 1.5; t1=$(cpu_ticks "$spid")
	rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$spid/status")
	wait "$cpid"; CRC=$?
	reap
	echo "sender: $((t1 - t0)) ticks while blocked, peak RSS ${rss} kB"
	expect "connector status" "$CRC" 0 && expect "listener status" "$LRC" 0 &&
	    [ $((t1 - t0)) -le 10 ] && [ "$rss" -lt "$RSS_LIMIT_KB" ] &&
	    expect sha256 "$(sha256sum < "$T/w/l.out")" "$(sha256sum < "$T/w/big")"
}
run "a stalled reader: sender blocks in constant memory" t_stalled_reader

# stderr_reader SECONDS: stderr of the next connector is $T/w/hex, a FIFO
# whose reader (RPID) waits SECONDS before it copies everything to c.err.
stderr_reader() {
	mkfifo "$T/w/hex"
	{ sleep "$1"; cat > "$T/w/c.err"; } < "$T/w/hex" &
	RPID=$!
	PIDS="$PIDS $RPID"
}

t_stderr_slow() {	# a slow stderr holds the session back, loses no line
	seq 1 20000 > "$T/w/a"
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	stderr_reader 2
	timeout 60 $SECCHAT -v $SC 127.0.0.1 "$PORT" < "$T/w/a" \
	    > "$T/w/c.out" 2> "$T/w/hex"
	CRC=$?
	reap
	wait "$RPID"
	N=$(sed -n 's/^secchat: sent \([0-9]*\) records\{0,1\} .*/\1/p' "$T/w/c.err")
	expect "connector status" "$CRC" 0 && expect "listener status" "$LRC" 0 &&
	    same "$T/w/a" "$T/w/l.out" && [ "${N:-0}" -gt 20000 ] &&
	    expect "hex lines" "$(grep -c '^> 00' "$T/w/c.err")" "$N" &&
	    expect "first line" "$(sed -n 2p "$T/w/c.err")" "secchat: handshake done"
}
run "a slow stderr: the hex display loses no line" t_stderr_slow

t_stderr_stalled() {	# with -w, a stalled stderr ends the session
	seq 1 20000 > "$T/w/a"
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	# Stalled at once, timed out after 3 s; the reader wakes at 4.5 s,
	# within the 3 s the last line may wait for stderr.
	stderr_reader 4.5
	local t0=$SECONDS
	timeout 60 $SECCHAT -v -w 3 $SC 127.0.0.1 "$PORT" < "$T/w/a" \
	    > "$T/w/c.out" 2> "$T/w/hex"
	CRC=$?
	reap
	wait "$RPID"
	echo "the connector ended after $((SECONDS - t0)) s"
	head -c "$(stat -c %s "$T/w/l.out")" "$T/w/a" > "$T/w/sent"
	expect "connector status" "$CRC" 1 && expect "listener status" "$LRC" 1 &&
	    [ $((SECONDS - t0)) -le 12 ] &&
	    grep -Eqx "secchat: download cut: the sender timed out after 3 s without progress after [0-9.]+ (KiB|B)" "$T/w/l.err" &&
	    has_line "$T/w/c.err" "secchat: timed out: no progress for 3 seconds" &&
	    same "$T/w/sent" "$T/w/l.out"
}
run "a stalled stderr: -w ends the session" t_stderr_stalled

t_stderr_never_read() {	# the wait for a dead stderr is bounded once
	seq 1 20000 > "$T/w/a"
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	stderr_reader 30
	local t0=$EPOCHREALTIME t
	timeout 60 $SECCHAT -v -w 3 $SC 127.0.0.1 "$PORT" < "$T/w/a" \
	    > "$T/w/c.out" 2> "$T/w/hex"
	CRC=$?
	t=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	reap
	# 3 s without progress, then at most 3 s more for all of stderr.
	echo "the connector ended after $t s"
	expect "connector status" "$CRC" 1 && expect "listener status" "$LRC" 1 &&
	    awk -v t="$t" 'BEGIN { exit !(t < 7.5) }'
}
run "a stderr never read: the last lines wait -w once" t_stderr_never_read

# slow_reader FILE: copy stdin to FILE at about 800 KB/s.
slow_reader() {
	python3 -c 'import sys, time
out = open(sys.argv[1], "wb")
while b := sys.stdin.buffer.read1(8192):
    out.write(b); out.flush(); time.sleep(0.01)' "$1"
}

t_stderr_slow_both_ways() {	# a slow stderr starves neither direction
	head -c 524288 /dev/urandom > "$T/w/r1"
	head -c 524288 /dev/urandom > "$T/w/r2"
	listen l "$T/w/r1" $SC -b 127.0.0.1 0 || return 1
	timeout 60 $SECCHAT $SC -b 127.0.0.1 "$PORT" < "$T/w/r2" \
	    > "$T/w/c.out" 2> >(slow_reader "$T/w/c.err")
	CRC=$?
	reap
	# The connector's 16th full record out: how many came in before it?
	local before
	before=$(grep -E '^[<>] 4' "$T/w/c.err" |
	    awk '/^>/ && ++out == 16 { print n + 0; exit } /^</ { n++ }')
	echo "records received before the 16th of 32 sent: $before of 32"
	both_ok "$T/w/r1" "$T/w/r2" && [ -n "$before" ] && [ "$before" -le 24 ]
}
run "a slow stderr starves neither direction" t_stderr_slow_both_ways

t_stderr_shares_stdout() {	# 2>&1: no hex line torn by plaintext
	seq 1 200000 | sed 's/^/line /' > "$T/w/a"
	listen l "$T/w/a" $SC 127.0.0.1 0 || return 1
	timeout 60 $SECCHAT -v $SC 127.0.0.1 "$PORT" < /dev/null 2>&1 |
	    { sleep 1; cat > "$T/w/c.out"; }
	CRC=${PIPESTATUS[0]}
	reap
	grep -a '^line ' "$T/w/c.out" > "$T/w/text"
	N=$(sed -n 's/^secchat: sent \([0-9]*\) records\{0,1\} .*/\1/p' "$T/w/l.err")
	expect "connector status" "$CRC" 0 && expect "listener status" "$LRC" 0 &&
	    same "$T/w/a" "$T/w/text" &&
	    expect "torn lines" "$(grep -a -c -v -E \
	    '^([<>] [0-9a-f]+|secchat: .*|line [0-9]+)$' "$T/w/c.out")" 0 &&
	    expect "hex lines" "$(grep -a -c '^< ' "$T/w/c.out")" "$N"
}
run "stdout and stderr one pipe: no hex line torn" t_stderr_shares_stdout

t_stdout_full() {
	seq 1 1000 > "$T/w/a"
	listen l "$T/w/a" $SC 127.0.0.1 0 || return 1
	timeout 20 $SECCHAT $SC -q 127.0.0.1 "$PORT" < /dev/null > /dev/full \
	    2> "$T/w/c.err"
	CRC=$?
	reap
	expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: write to stdout: No space left on device"
}
run "stdout is a full disk" t_stdout_full

t_stdout_closed() {
	timeout 20 $SECCHAT $SC 127.0.0.1 1 < /dev/null >&- 2> "$T/w/c.err"
	expect status "$?" 1 && has_line "$T/w/c.err" "secchat: stdout is closed"
}
run "stdout is closed" t_stdout_closed

# bigger_than BYTES FILE: FILE has more than BYTES bytes.
bigger_than() { [ "$(stat -c %s "$2")" -gt "$1" ]; }

# SIGINT mid-file: no CLOSE, the receiver says so.  The receiver's output
# stops after 1 MB (its reader waits on a gate), so the sender, held by its
# retain cap, cannot finish first however fast the machine; the gate opens
# once the sender is gone.
t_interrupted_sender() {
	head -c 100000000 /dev/urandom > "$T/w/big"
	mkfifo "$T/w/gate"
	{ timeout 60 $SECCHAT -l -v $NORESUME $SC -q -b 127.0.0.1 0 < /dev/null \
	    2> "$T/w/l.err"; echo $? > "$T/w/l.rc"; } |
	    { head -c 1000000; read -r _ < "$T/w/gate"; cat; } > "$T/w/l.out" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/l.err" "$LPID" || return 1
	timeout 60 $SECCHAT $NORESUME $SC -q -b 127.0.0.1 "$PORT" < "$T/w/big" \
	    > /dev/null 2> "$T/w/c.err" &
	local cpid=$! spid
	PIDS="$PIDS $cpid"
	wait_until 20 bigger_than 999999 "$T/w/l.out" || return 1
	spid=$(child "$cpid")
	kill -INT "$spid"
	wait "$cpid"; CRC=$?
	timeout 10 sh -c 'echo > "$1"' sh "$T/w/gate"
	wait "$LPID"
	LRC=$(cat "$T/w/l.rc")
	expect "sender status (SIGINT)" "$CRC" 130 &&
	    expect "listener status" "$LRC" 1 &&
	    # END, if its socket had room for it; else the loss of the connection.
	    grep -Eqx "secchat: (download cut: the sender was interrupted after [0-9.]+ MiB|$TRUNC \((closed by 127\.0\.0\.1|Connection reset by peer)\): [0-9.]+ MiB received)" "$T/w/l.err" &&
	    [ "$(stat -c %s "$T/w/l.out")" -lt 100000000 ]
}
run "SIGINT mid-file, receiver stopped: it reports the loss" t_interrupted_sender

t_receiver_stdout_fails() {	# data the receiver threw away: no exit 0
	head -c 1000000 /dev/urandom > "$T/w/big"
	# The receiver has more to say, so it has not sent its CLOSE yet.
	timeout 30 $SECCHAT -l -v $SC -q -b 127.0.0.1 0 < <(sleep 10) \
	    > /dev/full 2> "$T/w/l.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/l.err" "$LPID" || return 1
	dial c "$T/w/big" $SC -q -b 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 1 && expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: upload cut: the receiver could not write its output (No space left on device) after 0 B of 976.6 KiB"
}
run "the receiver's stdout fails: the sender does not exit 0" t_receiver_stdout_fails
