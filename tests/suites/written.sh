# shellcheck shell=bash
# DONE means written (issue 19): with a serving listener and with -e, a
# sender exits 0 only once its data is written; the serving listener's
# open-files limit and locked queues.


# unconfirmed FILE PHRASE: the sender's line for a DONE that never came:
# the receiver's END (doc/PROTOCOL.md 9.3), PHRASE (an ERE) saying why,
# cut our upload, "after C of T", C what it confirmed, short of T.
unconfirmed() {
	grep -Eqx "secchat: upload cut: the receiver $2 after [0-9.]+( [KM]iB| B)? of [0-9.]+ ([KM]iB|B)" "$1" &&
	    return 0
	echo "$(basename "$1") lacks the line: upload cut: the receiver $2 after C of T"
	return 1
}

t_many_done_full() {	# stdout on /dev/full: no session confirms
	timeout 60 $SECCHAT -l -v -k $SC 127.0.0.1 0 < /dev/null > /dev/full \
	    2> "$T/w/l.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/l.err" "$LPID" || return 1
	# A few lines: the child would have confirmed them long before the
	# listener's write failed.
	seq 1 3 > "$T/w/a"
	dial c "$T/w/a" $SC -q 127.0.0.1 "$PORT"
	reap
	# The child dies with its listener (SIGTERM): nothing was written.
	expect "sender status" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: upload cut: the receiver was terminated (SIGTERM) after 0 of 6 B" &&
	    expect "listener status" "$LRC" 1 &&
	    has_line "$T/w/l.err" "secchat: write to stdout: No space left on device"
}
run "serving many: stdout on /dev/full, the sender exits 1" t_many_done_full

sender_gone() { ! kill -0 "$1" 2>/dev/null; }

t_many_done_stalled() {	# stdout stalled, then the listener killed: exit 1
	local spid
	mkfifo "$T/w/stall"
	sleep 30 < "$T/w/stall" &	# a reader that never reads
	PIDS="$PIDS $!"
	timeout 60 $SECCHAT -l -v -k $SC 127.0.0.1 0 < /dev/null \
	    > "$T/w/stall" 2> "$T/w/l.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/l.err" "$LPID" || return 1
	# 303,000 bytes: less than the pipes and queues between hold.
	awk 'BEGIN { for (i = 1; i <= 3030; i++) printf "%099d\n", i }' > "$T/w/a"
	timeout 30 $SECCHAT $SC 127.0.0.1 "$PORT" < "$T/w/a" \
	    > "$T/w/c.out" 2> "$T/w/c.err" &
	spid=$!
	PIDS="$PIDS $spid"
	# The child has opened it all: KEY 0, 3030 lines, CLOSE.
	wait_until -p "$spid" 10 at_least 3032 '^< ' "$T/w/l.err" ||
	    { echo "the child did not receive it all"; return 1; }
	if wait_until 1 sender_gone "$spid"; then
		wait "$spid"
		echo "the sender ended ($?) while stdout was stalled"
		return 1
	fi
	kill "$(child "$LPID")"
	wait "$spid"
	expect "sender status" "$?" 1 &&
	    unconfirmed "$T/w/c.err" 'was terminated \(SIGTERM\)'
}
run "serving many: stdout stalled, the listener killed, the sender exits 1" t_many_done_stalled

t_many_files_limit() {	# an open-files limit below -m's needs: named, or raised
	local p want=
	(ulimit -n 200; exec timeout 10 $SECCHAT -l -k $SC 127.0.0.1 0) \
	    < /dev/null > /dev/null 2> "$T/w/l.err"
	expect "status" "$?" 1 &&
	    has_line "$T/w/l.err" "secchat: -m 64 needs an open-files limit of 704, and it is 200: raise it (ulimit -n 704) or lower -m" ||
	    return 1
	p=$(ulimit -Hn)
	[ "$p" = unlimited ] || [ "$p" -ge 704 ] ||
	    { echo "hard limit $p: the rest skipped"; return 0; }
	# A soft limit below, the hard one above: raised to what -m needs.
	(ulimit -Sn 200; exec timeout 60 $SECCHAT -l -v -k $SC 127.0.0.1 0) \
	    < /dev/null > "$T/w/l.out" 2> "$T/w/l.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/l.err" "$LPID" || return 1
	seq 1 10 > "$T/w/a"
	dial c "$T/w/a" $SC -q 127.0.0.1 "$PORT"
	# Raised for 1024 pending connections too, as far as the hard limit goes.
	[ "$p" = unlimited ] || [ "$p" -ge 1472 ] || want=$p
	expect "connector status" "$CRC" 0 &&
	    grep -Eq "^Max open files +${want:-1472} " "/proc/$(child "$LPID")/limits"
}
run "serving many: an open-files limit too low is raised, or named" t_many_files_limit

t_many_locked() {	# the merged output is in locked memory
	local lim kb
	lim=$(ulimit -l)
	[ "$lim" = unlimited ] || [ "$lim" -ge 2048 ] ||
	    { echo "skipped: ulimit -l is $lim"; return 0; }
	# Sanitizers turn mlock into a no-op: this looks at the real build.
	SECCHAT=$HOOKS listen l /dev/null $SC -k 127.0.0.1 0 || return 1
	# Locked once the key is derived, a little after "listening on".
	locked() {
		kb=$(awk '$1 == "VmLck:" { print $2 }' \
		    "/proc/$(child "$LPID")/status")
		[ "${kb:-0}" -ge 512 ]
	}
	wait_until 10 locked || { echo "VmLck: $kb kB"; return 1; }
}
run "serving many: the queues of the sessions' output are locked" t_many_locked

t_exec_unread() {	# -e 'head -n 1': what it never read is not confirmed
	local n
	for n in 1000 10000; do	# 40 KB: more than head reads at once
		awk -v n=$n 'BEGIN { for (i = 1; i <= n; i++) printf "line %034d\n", i }' \
		    > "$T/w/a"
		listen l /dev/null $SC -q -e 'head -n 1' 127.0.0.1 0 || return 1
		dial c "$T/w/a" $SC -q 127.0.0.1 "$PORT"
		reap
		expect "$n lines: listener status" "$LRC" 1 &&
		    expect "$n lines: sender status" "$CRC" 1 &&
		    has_line "$T/w/l.err" "secchat: $UNREAD" &&
		    unconfirmed "$T/w/c.err" 'had its command stop reading' &&
		    has_line "$T/w/c.out" "$(head -n 1 "$T/w/a")" || return 1
	done
}
run "-e: a command that exits with input unread (head -n 1): exit 1" t_exec_unread
