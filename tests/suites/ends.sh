# shellcheck shell=bash
# Records and ends (doc/PROTOCOL.md sections 4 to 9): the KEY a REKEY
# makes due, refused shares, acknowledgements and the retained buffer,
# keepalives and the loss limit, the END of each side seen from the other,
# a prompt without its newline.  Some read wall time and memory: this
# suite runs alone.

# via SPEC LIN CIN ARGS...: a listener, a relay with attack SPEC (its log
# in wire) and a connector to it, to completion; sets LRC and CRC.  The
# connector's start in ms is T0.
via() {
	local spec=$1 lin=$2 cin=$3
	shift 3
	listen l "$lin" $SC "$@" 127.0.0.1 0 || return 1
	timeout 60 $RELAY --timeout 50 --log "$T/w/wire" \
	    ${spec:+--attack "$spec"} 127.0.0.1 "$PORT" > "$T/w/relay.out" \
	    2> "$T/w/relay.err" &
	RPID=$!
	PIDS="$PIDS $RPID"
	wait_number RPORT "$T/w/relay.out" "$RPID" 'relay port \([0-9]*\)' ||
	    return 1
	T0=$(date +%s%3N)
	dial c "$cin" $SC "$@" 127.0.0.1 "$RPORT"
	reap
}

# The lengths of DIR's records in the relay's log, one line.
lengths() { sed -n "s/^$1 \(....\).*/\1/p" "$T/w/wire" | tr '\n' ' '; }

# ms since T0.
since() { echo $(($(date +%s%3N) - T0)); }

# Issue 17's deviation: the connector's REKEY that uses the listener's
# newest key, its CLOSE and its DONE come in one read (the relay holds
# them for one write).  The listener's KEY 1 is due at once (5.1): it goes
# out before the listener's DONE, not never.  s2c: KEY 0, CLOSE, KEY 1,
# DONE; c2s: KEY 0, five lines, REKEY, CLOSE, DONE, or CLOSE before the
# REKEY when the listener's KEY 0 comes after the connector's input ended
# (a slow machine): the REKEY and the DONE are in the held read either way.
t_key_before_done() {
	seq 1 5 > "$T/w/b"
	via batch:c2s:6:3 /dev/null "$T/w/b" -r 5 || return 1
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/b" "$T/w/l.out" &&
	case $(lengths c2s) in
	"0031 0013 0013 0013 0013 0013 0035 0011 0011 " | \
	"0031 0013 0013 0013 0013 0013 0011 0035 0011 ") ;;
	*) expect "c2s records" "$(lengths c2s)" \
	    "0031 0013 0013 0013 0013 0013 0035 0011 0011 "; return 1 ;;
	esac &&
	    expect "s2c records" "$(lengths s2c)" "0031 0011 0031 0011 " &&
	    has_line "$T/w/l.err" "secchat: announced receive key 1"
}
run "a KEY made due with the peer's CLOSE and DONE goes before our DONE" t_key_before_done

# refused_share HOOK INPUT WHY RE: a peer (the test build, lying) sends
# 9 as its receive key, or as a REKEY's share (5.6): the listener refuses
# it with WHY, and the liar hears so (END REJECTED) in a line matching RE.
refused_share() {
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	SECCHAT_TEST_HOOK=$1 timeout 60 $HOOKS -v $SC -r 1 127.0.0.1 "$PORT" \
	    < "$2" > "$T/w/c.out" 2> "$T/w/c.err"
	CRC=$?
	reap
	expect "listener status" "$LRC" 3 && expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/l.err" "secchat: malformed record: $3" &&
	    grep -Eqx "secchat: $4" "$T/w/c.err"
}
t_refused_key_share() {
	refused_share key-nine /dev/null "KEY with a public-equivalent key" \
	    "127\.0\.0\.1 rejected our stream \(malformed record: KEY with a public-equivalent key\)"
}
t_refused_rekey_share() {
	seq 1 3 > "$T/w/b"
	# Whether the first line was written before the REKEY came is timing.
	refused_share rekey-nine "$T/w/b" "REKEY with a public-equivalent key" \
	    "upload cut: the receiver rejected our stream \(malformed record: REKEY with a public-equivalent key\) after [02] (B|of [26] B)"
}
run "a KEY of 9 is refused: public-equivalent" t_refused_key_share
run "a REKEY with E = 9 is refused: public-equivalent" t_refused_rekey_share

# A receiver that stops reading: the sender keeps at most 4 MiB (the
# default -B) unacknowledged and stops reading its input (its offset in the
# file does not move, its memory neither), then finishes when the reader
# comes back.
t_retain_cap() {
	head -c 30000000 /dev/urandom > "$T/w/big"
	slow_listener 4 || return 1
	timeout 60 $SECCHAT $SC -q -b 127.0.0.1 "$PORT" < "$T/w/big" \
	    > /dev/null 2> "$T/w/c.err" &
	local cpid=$! spid p1 p2 r1 r2
	PIDS="$PIDS $cpid"
	# Sampled at 1.5 s and 3 s, within the reader's 4 s of sleep.
	sleep 1.5
	spid=$(child "$cpid")
	p1=$(sed -n 's/^pos:[[:space:]]*//p' "/proc/$spid/fdinfo/0")
	r1=$(awk '/^VmRSS/ { print $2 }' "/proc/$spid/status")
	sleep 1.5
	p2=$(sed -n 's/^pos:[[:space:]]*//p' "/proc/$spid/fdinfo/0")
	r2=$(awk '/^VmRSS/ { print $2 }' "/proc/$spid/status")
	wait "$cpid"; CRC=$?
	reap
	echo "sender: stdin at $p1 then $p2, RSS $r1 then $r2 kB"
	# 4 MiB retained, 128 KiB of input beside it.
	expect "connector status" "$CRC" 0 && expect "listener status" "$LRC" 0 &&
	    expect "stdin offset" "$p2" "$p1" && [ "$p1" -le 4325376 ] &&
	    expect "RSS" "$r2" "$r1" &&
	    expect sha256 "$(sha256sum < "$T/w/l.out")" "$(sha256sum < "$T/w/big")"
}
run "a stalled receiver: the sender stops reading at -B, in constant memory" t_retain_cap

# Keepalives (-a 1) keep 10 s of silence alive with a loss limit of 3 s,
# and end cleanly; the PINGs are on the wire (21 bytes each).
t_quiet_alive() {
	via "" <(sleep 10) <(sleep 10) -q -a 1 -L 3 || return 1
	local pings
	pings=$(sed -n 's/^c2s 0013.*/x/p' "$T/w/wire" | wc -l)
	echo "$pings PINGs from the connector"
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    [ "$pings" -ge 8 ] && ! grep -q 'lost' "$T/w/l.err" "$T/w/c.err"
}
run "keepalives: 10 s of silence, a 3 s loss limit, a clean end" t_quiet_alive

# A dead link (the relay forwards nothing from s2c's record 2 on): both
# sides declare it lost after 3 s of silence, not later than 6 s.
t_frozen_lost() {
	via freeze:s2c:2:0 <(sleep 20) <(sleep 20) -q -a 1 -L 3 || return 1
	local ms
	ms=$(since)
	echo "both ended after $ms ms"
	expect "listener status" "$LRC" 1 && expect "connector status" "$CRC" 1 &&
	    [ "$ms" -ge 3000 ] && [ "$ms" -le 8000 ] &&
	    has_line "$T/w/l.err" "secchat: connection lost (no word from 127.0.0.1 for 3 s)" &&
	    has_line "$T/w/c.err" "secchat: connection lost (no word from 127.0.0.1 for 3 s)"
}
run "a frozen link is declared lost within the loss limit" t_frozen_lost

# A freeze shorter than the loss limit loses nothing.
t_freeze_survived() {
	seq 1 2000 > "$T/w/b"
	via freeze:c2s:100:2 /dev/null "$T/w/b" -q -a 1 -L 5 || return 1
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/b" "$T/w/l.out"
}
run "a 2 s freeze within a 5 s loss limit: nothing lost" t_freeze_survived

# A reset mid-stream: both sides say the connection was lost and how much.
t_reset_cut() {
	seq 1 20 | sed 's/^/line /' > "$T/w/b"
	via reset:c2s:6 <(sleep 5) "$T/w/b" -q || return 1
	expect "listener status" "$LRC" 1 && expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/l.err" "secchat: connection lost while receiving (Connection reset by peer): 35 B received" &&
	    grep -Eqx "secchat: connection lost while sending \((Connection reset by peer|Broken pipe)\): 151 B sent, 0 B confirmed" "$T/w/c.err"
}
run "a reset: each side says it lost the connection, and the amounts" t_reset_cut

# Keepalives are not progress: -w 3 ends a quiet session after 3 s, and
# the peer hears why.
t_keepalive_no_progress() {
	listen l <(sleep 10) $SC -q -a 1 127.0.0.1 0 || return 1
	dial c <(sleep 10) $SC -q -a 1 -w 3 127.0.0.1 "$PORT"
	reap
	expect "connector status" "$CRC" 1 && expect "listener status" "$LRC" 1 &&
	    has_line "$T/w/c.err" "secchat: timed out: no progress for 3 seconds" &&
	    has_line "$T/w/l.err" "secchat: 127.0.0.1 timed out after 3 s without progress"
}
run "keepalives are not progress for -w" t_keepalive_no_progress

size_is() { [ "$(stat -c %s "$1")" -eq "$2" ]; }

# end_of SIGNAL SIDE: SIDE (l or c) sends 2,000,000 bytes and keeps its
# input open; once the other side has written them all, SIDE gets SIGNAL.
# Sets LRC and CRC.
end_of() {
	head -c 2000000 /dev/urandom > "$T/w/big"
	local lin=/dev/null cin=/dev/null sender rcv spid
	mkfifo "$T/w/slow"
	{ cat "$T/w/big"; sleep 20; } > "$T/w/slow" &
	PIDS="$PIDS $!"
	if [ "$2" = l ]; then lin=$T/w/slow rcv=c; else cin=$T/w/slow rcv=l; fi
	listen l "$lin" $SC -q -b 127.0.0.1 0 || return 1
	timeout 60 $SECCHAT -v $SC -q -b 127.0.0.1 "$PORT" < "$cin" \
	    > "$T/w/c.out" 2> "$T/w/c.err" &
	local cpid=$!
	PIDS="$PIDS $cpid"
	wait_until 10 size_is "$T/w/$rcv.out" 2000000 || return 1
	if [ "$2" = l ]; then sender=$LPID; else sender=$cpid; fi
	spid=$(child "$sender")
	kill -"$1" "$spid"
	wait "$cpid"; CRC=$?
	reap
}

# end_seen SIGNAL SIDE STATUS LINE: as end_of; SIDE ends by SIGNAL
# (status STATUS), the other side exits 1 with LINE.
end_seen() {
	end_of "$1" "$2" || return 1
	local mine=$CRC theirs=$LRC other=l
	[ "$2" = l ] && { mine=$LRC theirs=$CRC other=c; }
	expect "status of the side signalled" "$mine" "$3" &&
	    expect "status of the other side" "$theirs" 1 &&
	    has_line "$T/w/$other.err" "secchat: $4" &&
	    same "$T/w/big" "$T/w/$other.out"
}
t_end_int_connector() {
	end_seen INT c 130 "download cut: the sender was interrupted after 1.9 MiB"
}
t_end_int_listener() {
	end_seen INT l 130 "download cut: the sender was interrupted after 1.9 MiB"
}
t_end_term_connector() {
	end_seen TERM c 143 "download cut: the sender was terminated (SIGTERM) after 1.9 MiB"
}
t_end_hup_listener() {
	end_seen HUP l 129 "download cut: the sender was terminated (SIGHUP) after 1.9 MiB"
}
run "END: a connector's ^C, seen by the listener" t_end_int_connector
run "END: a listener's ^C, seen by the connector" t_end_int_listener
run "END: SIGTERM to a connector, seen by the listener" t_end_term_connector
run "END: SIGHUP to a listener, seen by the connector" t_end_hup_listener

# The receiver is terminated mid-upload: the sender reads that its upload
# was cut, with what was confirmed (the receiver's END brings its ACK).
t_end_receiver_terminated() {
	head -c 2000000 /dev/urandom > "$T/w/big"
	mkfifo "$T/w/slow"
	{ cat "$T/w/big"; sleep 20; } > "$T/w/slow" &
	PIDS="$PIDS $!"
	listen l /dev/null $SC -q -b 127.0.0.1 0 || return 1
	timeout 60 $SECCHAT -v $SC -q -b 127.0.0.1 "$PORT" < "$T/w/slow" \
	    > "$T/w/c.out" 2> "$T/w/c.err" &
	local cpid=$!
	PIDS="$PIDS $cpid"
	wait_until 10 size_is "$T/w/l.out" 2000000 || return 1
	kill -TERM "$(child "$LPID")"
	wait "$cpid"; CRC=$?
	reap
	expect "listener status" "$LRC" 143 && expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: upload cut: the receiver was terminated (SIGTERM) after 1.9 MiB"
}
run "END: the receiver terminated, seen by the sender" t_end_receiver_terminated

# A receiver whose output nobody reads (a fifo held open, never read)
# still ends on SIGTERM, within a second's grace for its buffered bytes.
t_end_stalled_receiver_terminated() {
	local NORESUME="-W 0" cpid lpid spid rc
	mkfifo "$T/w/stall"
	sleep 30 < "$T/w/stall" &
	PIDS="$PIDS $!"
	timeout 60 $SECCHAT -l -v $SC -q -b -W 0 127.0.0.1 0 < /dev/null \
	    > "$T/w/stall" 2> "$T/w/l.err" &
	lpid=$!
	PIDS="$PIDS $lpid"
	wait_port "$T/w/l.err" "$lpid" || return 1
	timeout 60 $SECCHAT $SC -q -b -W 0 127.0.0.1 "$PORT" < /dev/zero \
	    > /dev/null 2> "$T/w/c.err" &
	cpid=$!
	PIDS="$PIDS $cpid"
	wait_until 10 grep -q 'handshake done' "$T/w/l.err" || return 1
	spid=$(child "$lpid")
	spid=${spid:-$lpid}
	# Its output has stalled once the fifo's buffer is full.
	wait_until 10 awk '/^wchar/ { exit !($2 >= 65536) }' "/proc/$spid/io" ||
	    { echo "the output never filled"; return 1; }
	kill -TERM "$spid"
	wait_until 5 gone "$spid" || { echo "still running 5 s after SIGTERM"; return 1; }
	wait "$lpid"; rc=$?
	wait "$cpid"; CRC=$?
	expect "listener status" "$rc" 143 && expect "connector status" "$CRC" 1 &&
	    grep -q '^secchat: upload cut: the receiver was terminated (SIGTERM) after ' "$T/w/c.err"
}
run "END: a receiver whose output is stalled still ends on SIGTERM" t_end_stalled_receiver_terminated

# A chat at a terminal (the listener, in a pane) and a pipe: ^C on the
# pipe's side, and the chat says who interrupted it; then ^C in a chat,
# and the pipe's side says so in its words.
# chat_and_pipe PRE: a listener chat in a pane (its shell runs PRE first)
# and a pipe connector on the fifo in (held open on fd 8), once secured;
# sets CPID.
chat_and_pipe() {
	mkfifo "$T/w/in"
	pane_listener l "$1$SECCHAT -l -v $SC -n alice 127.0.0.1 0 2> $T/w/l.err; echo \$? > $T/w/l.rc" ||
	    return 1
	timeout 60 $SECCHAT $SC -q -n bob 127.0.0.1 "$PORT" < "$T/w/in" \
	    > "$T/w/c.out" 2> "$T/w/c.err" &
	CPID=$!
	PIDS="$PIDS $CPID"
	exec 8> "$T/w/in"
	wait_until 10 grep -q "chat with alice secured" "$T/w/l.err"
}
t_end_chat() {
	chat_and_pipe "" || return 1
	kill -INT "$(child "$CPID")"
	wait "$CPID"; CRC=$?
	exec 8>&-
	wait_file "$T/w/l.rc" || return 1
	$TM kill-server
	expect "connector status" "$CRC" 130 &&
	    expect "listener status" "$(cat "$T/w/l.rc")" 1 &&
	    has_line "$T/w/l.err" "secchat: alice interrupted the chat"
}
t_end_chat_seen_by_pipe() {
	# The pane's shell outlives the ^C (its trap), and says the status.
	chat_and_pipe "trap : INT; " || return 1
	$TM send-keys C-c
	wait "$CPID"; CRC=$?
	exec 8>&-
	wait_file "$T/w/l.rc" || return 1
	# A typed ^C is said on the chat's terminal, where the chat is.
	$TM capture-pane -p > "$T/w/screen"
	$TM kill-server
	expect "connector status" "$CRC" 1 &&
	    expect "listener status" "$(cat "$T/w/l.rc")" 130 &&
	    has_line "$T/w/c.err" "secchat: bob was interrupted" &&
	    has_line "$T/w/screen" "secchat: you interrupted the chat"
}
run "END: ^C on a pipe, seen by a chat" t_end_chat
run "END: ^C in a chat, seen by a pipe" t_end_chat_seen_by_pipe

# Line mode: a prompt without its newline goes after 20 ms (section 6),
# not when the line is done 3 s later.
t_prompt_shows() {
	mkfifo "$T/w/in"
	listen l /dev/null $SC -q 127.0.0.1 0 || return 1
	timeout 60 $SECCHAT $SC -q 127.0.0.1 "$PORT" < "$T/w/in" \
	    > /dev/null 2> "$T/w/c.err" &
	PIDS="$PIDS $!"
	exec 8> "$T/w/in"
	wait_until 10 grep -q 'handshake done' "$T/w/l.err" || return 1
	printf 'prompt> ' >&8
	T0=$(date +%s%3N)
	wait_until -e 0.005 5 grep -q 'prompt> ' "$T/w/l.out"
	local ms
	ms=$(since)
	echo "the prompt showed after $ms ms"
	sleep 0.2
	printf 'rest\n' >&8
	exec 8>&-
	reap
	expect "listener status" "$LRC" 0 && [ "$ms" -le 100 ] &&
	    expect "output" "$(cat "$T/w/l.out")" "prompt> rest"
}
run "line mode: a prompt without newline shows within 100 ms" t_prompt_shows
