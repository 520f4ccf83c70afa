# shellcheck shell=bash
# Resume (doc/PROTOCOL.md section 8): a cut connection, by a reset, a FIN
# or a dead link, is replaced by a new one and both streams go on with
# nothing lost and nothing doubled; replayed and forged RESUMEs are
# refused without disturbing the session; window 0 is the old end (9.4);
# the independent peer resumes with secchat in both roles.  The cuts are
# made by tests/cutrelay.py, which relays every connection a resuming
# connector makes.  Reads wall time: this suite runs alone.

CUTRELAY="python3 tests/cutrelay.py"
# Each test clears NORESUME (tests/lib.sh): secchat's default window.

# cut_via RELAYARGS LIN CIN ARGS...: a listener, the relay with RELAYARGS
# (one word, split on spaces) in front of it, and a connector through it,
# to completion; sets LRC and CRC.
cut_via() {
	local rargs=$1 lin=$2 cin=$3
	shift 3
	listen l "$lin" $SC "$@" 127.0.0.1 0 || return 1
	relay_to "$rargs" "$PORT" || return 1
	dial c "$cin" $SC "$@" 127.0.0.1 "$RPORT"
	reap
}

# relay_to RELAYARGS PORT: start the relay in front of PORT, set RPORT.
relay_to() {
	# shellcheck disable=SC2086	# RELAYARGS is words
	# Not a fifo_listener's fd 7: its EOF must reach the listener.
	timeout "${RELAY_SECS:-60}" $CUTRELAY $1 "$2" > "$T/w/relay.out" \
	    2> "$T/w/relay.err" 7>&- &
	RPID=$!
	PIDS="$PIDS $RPID"
	wait_number RPORT "$T/w/relay.out" "$RPID" 'relay port \([0-9]*\)'
}

# resumes FILE N: FILE says "reconnected ... (nothing lost)" N times at least.
resumes() {
	at_least "$2" 'reconnected to .* (nothing lost)' "$1" ||
	    { echo "fewer than $2 resumes in $(basename "$1")"; return 1; }
}

# kept_at_most FILE CAP: FILE's -v summary says at most CAP bytes were
# kept unconfirmed at once (the retained buffer, -B).
kept_at_most() {
	local n
	n=$(sed -n 's/^secchat: sent .*, at most \([0-9]*\) bytes* unconfirmed$/\1/p' "$1")
	[ -n "$n" ] && [ "$n" -le "$2" ] ||
	    { echo "kept ${n:-?} bytes unconfirmed, above $2"; return 1; }
}

# A 200 MB upload cut three times, by a reset, by a 20 s freeze (a dead
# link, noticed after -L 3) and by a FIN, arrives whole, both sides exit
# 0, and the sender never kept more than its cap (-B, 4 MiB by default).
t_resume_bulk_cuts() {
	local NORESUME=
	head -c 200000000 /dev/urandom > "$T/w/big"
	cut_via "--plan reset:30000000,freeze:70000000:20,cut:50000000" \
	    /dev/null "$T/w/big" -q -b -a 1 -L 3 || return 1
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    expect "sha256" "$(sha256sum < "$T/w/l.out")" \
	    "$(sha256sum < "$T/w/big")" && resumes "$T/w/c.err" 3 &&
	    resumes "$T/w/l.err" 3 && kept_at_most "$T/w/c.err" 4194304 &&
	    grep -q 'no word from 127.0.0.1 for 3 s' "$T/w/c.err" "$T/w/l.err"
}
run "resume: 200 MB cut by a reset, a 20 s freeze and a FIN: whole, exit 0, kept within -B" t_resume_bulk_cuts

# The connection that carries the RESUME is reset after it (207 bytes: the
# greeting and the RESUME, no RESUMED): a failed attempt, tried again with
# the secret of 8.4's generations, never a resume with keys it never got.
t_resume_attempt_cut() {
	local NORESUME=
	head -c 2000000 /dev/urandom > "$T/w/big"
	cut_via "--reset 300000,207" /dev/null "$T/w/big" -q -b -a 1 -L 5 ||
	    return 1
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    expect "sha256" "$(sha256sum < "$T/w/l.out")" \
	    "$(sha256sum < "$T/w/big")" && resumes "$T/w/c.err" 1
}
run "resume: the attempt's own connection cut after the RESUME: tried again, nothing lost" t_resume_attempt_cut

# A line-mode shipper's 1,000,000 lines cut five times (resets and FINs):
# each exactly once, in order.
t_resume_lines() {
	local NORESUME=
	seq 1 1000000 | sed 's/^/line /' > "$T/w/lines"
	cut_via "--plan reset:1000000,cut:2500000,reset:800000,cut:3000000,reset:1500000" \
	    /dev/null "$T/w/lines" -q -a 1 -L 5 || return 1
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/lines" "$T/w/l.out" && resumes "$T/w/c.err" 5 &&
	    resumes "$T/w/l.err" 5
}
run "resume: 1,000,000 lines cut 5 times arrive once each, in order" t_resume_lines

# resume_try PORT FILE GEN...: for each GEN, a connection that sends the
# RESUME in FILE after the greeting, its gen set to GEN ("-": as it is);
# prints the answers on one line: "kind K reason R" each, or "refused R"
# for a refusal in place of the greeting.  One process, so that the tries
# come within milliseconds.
resume_try() {
	python3 - "$@" <<'EOF'
import socket, struct, sys
port, path = int(sys.argv[1]), sys.argv[2]
out = []
for gen in sys.argv[3:]:
    m = bytearray(open(path, "rb").read())
    if gen != "-":
        m[25:29] = struct.pack(">I", int(gen))
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    read = s.makefile("rb").read	# n bytes, fewer at the end
    g = read(12)
    if g[8] == 0:
        out.append("refused %d" % g[9])
        continue
    read(114 - 12)
    s.sendall(bytes(m))
    a = read(12)
    out.append("kind %d reason %s" % (a[8], a[9] if a[8] == 0 else "-"))
    s.close()
print(", ".join(out))
EOF
}

# A RESUME recorded on one connection and sent again on another is refused
# (RESUME_FAILED: its MAC covers the other greeting), so are RESUMEs of a
# wrong generation; they cost the address its penalty, and the session
# goes on untouched to a clean end.
t_resume_replayed() {
	local NORESUME=
	seq 1 6000 > "$T/w/a"
	mkfifo "$T/w/in"
	{ seq 1 3000; sleep 3; seq 3001 6000; } > "$T/w/in" &
	PIDS="$PIDS $!"
	listen l /dev/null $SC -q -a 1 127.0.0.1 0 || return 1
	relay_to "--reset 4000 --record $T/w/resume" "$PORT" || return 1
	timeout 60 $SECCHAT -v $SC -q -a 1 127.0.0.1 "$RPORT" < "$T/w/in" \
	    > "$T/w/c.out" 2> "$T/w/c.err" &
	local cpid=$! r
	PIDS="$PIDS $cpid"
	wait_until 10 test -s "$T/w/resume" || { echo "no RESUME recorded"; return 1; }
	# Replayed, then generations 7, 8 and 9, then a fifth try: penalised.
	r=$(resume_try "$PORT" "$T/w/resume" - 7 8 9 -)
	expect "answers" "$r" "kind 0 reason 9, kind 0 reason 9, kind 0 reason 9, kind 0 reason 9, refused 1" ||
	    return 1
	wait "$cpid"
	CRC=$?
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/a" "$T/w/l.out" &&
	    at_least 3 'resume refused: proof rejected' "$T/w/l.err" &&
	    grep -q 'refused for 1 s more after 4 failed handshakes' "$T/w/l.err"
}
run "resume: replayed and wrong-generation RESUMEs refused, penalised; the session ends well" t_resume_replayed

# Window 0 on one side: no resume, the old end (9.4) on both.
t_resume_window_zero() {
	local NORESUME=
	seq 1 20000 > "$T/w/b"
	listen l /dev/null $SC -q -W 0 127.0.0.1 0 || return 1
	relay_to "--reset 3000" "$PORT" || return 1
	dial c "$T/w/b" $SC -q 127.0.0.1 "$RPORT"
	reap
	expect "listener status" "$LRC" 1 && expect "connector status" "$CRC" 1 &&
	    grep -q '^secchat: connection lost while receiving' "$T/w/l.err" &&
	    grep -q '^secchat: connection lost while sending' "$T/w/c.err" &&
	    ! grep -q 'reconnect' "$T/w/l.err" "$T/w/c.err"
}
run "resume: window 0 (-W 0) means no resume, the 9.4 end" t_resume_window_zero

# The listener is gone: the connector tries for its window, then says so.
t_resume_window_out() {
	local NORESUME=
	listen l <(sleep 20) $SC -q -W 2 127.0.0.1 0 || return 1
	( sleep 1; kill -9 "$(child "$LPID")" ) &
	PIDS="$PIDS $!"
	dial c <(sleep 20) $SC -q -W 2 127.0.0.1 "$PORT"
	expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: connection lost (closed by 127.0.0.1); not resumed within 2 s"
}
run "resume: the window runs out: 'not resumed within 2 s', exit 1" t_resume_window_out

# The independent peer (tests/peer3.py) resumes with secchat, both roles:
# it cuts its own connections (--reset-at, --cut-at).  py_resume START
# CUT SECCHAT'S-NAME: peer3 started by START (pydial or pylisten) with
# its cuts CUT, secchat in the other role.
py_resume() {
	local NORESUME= start=$1 cut=$2 mine=$3
	seq 1 50000 > "$T/w/a"
	seq 50001 90000 > "$T/w/b"
	if [ "$start" = pylisten ]; then
		pylisten l "$T/w/b" $SC --interval 1 $cut 127.0.0.1 0 || return 1
		dial c "$T/w/a" $SC -q -a 1 127.0.0.1 "$PORT"
	else
		listen l "$T/w/b" $SC -q -a 1 127.0.0.1 0 || return 1
		pydial c "$T/w/a" $SC --interval 1 $cut 127.0.0.1 "$PORT"
	fi
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/a" "$T/w/l.out" && same "$T/w/b" "$T/w/c.out" &&
	    resumes "$T/w/$mine.err" 2
}
t_resume_py_connector() { py_resume pydial "--reset-at 30000,60000" l; }
run "resume interop: peer3 connector resets twice, secchat listener" t_resume_py_connector
t_resume_py_listener() { py_resume pylisten "--cut-at 40000,20000" c; }
run "resume interop: peer3 listener cuts twice, secchat connector" t_resume_py_listener

# A serving listener (-k -m 4) hands the resumed connection to the child
# that holds the session (8.7): the same -e command runs across the cuts.
t_resume_serving() {
	local NORESUME=
	seq 1 100000 > "$T/w/a"
	listen l /dev/null $SC -k -m 4 -e cat -q -a 1 127.0.0.1 0 || return 1
	relay_to "--reset 200000,500000" "$PORT" || return 1
	dial c "$T/w/a" $SC -q -a 1 127.0.0.1 "$RPORT"
	expect "connector status" "$CRC" 0 && same "$T/w/a" "$T/w/c.out" &&
	    wait_until 10 grep -q 'command exited with status 0' "$T/w/l.err" &&
	    resumes "$T/w/c.err" 2 && resumes "$T/w/l.err" 2 &&
	    expect "commands run" "$(grep -c 'command exited' "$T/w/l.err")" 1
}
run "resume through -k -m 4: the child gets the connection, -e cat runs on" t_resume_serving

# dups_tail OLD NEW SAID: the lines both OLD and NEW have are OLD's last
# and NEW's first (the old session's unconfirmed tail, sent again), and
# no more bytes than SAID ("12.3 KiB", as the connector put it).
dups_tail() {
	local d bytes most
	d=$(sort "$1" "$2" | uniq -d | wc -l)
	bytes=$(head -n "$d" "$2" | wc -c)
	most=$(echo "$3" | awk '{ m = 1; if ($2 == "KiB") m = 1024
	    if ($2 == "MiB") m = 1048576; printf "%d", ($1 + 0.05) * m }')
	echo "# $d lines ($bytes bytes) twice; the connector said $3 unconfirmed"
	expect "the lines twice" "$(tail -n "$d" "$1" | tr '\n' ' ')" \
	    "$(head -n "$d" "$2" | tr '\n' ' ')" &&
	    [ "$d" = 0 ] || [ "$bytes" -le "$most" ] ||
	    { echo "$bytes bytes twice, above the $3 unconfirmed"; return 1; }
}

# -K (8.9): the collector restarts (a new listener on the same port), the
# shipper starts a new session with what was not confirmed: no line lost,
# and those that come twice are that unconfirmed tail, counted.
t_resume_new_session() {
	local NORESUME= cpid port
	mkfifo "$T/w/in"
	{ seq 1 2000; sleep 4; seq 2001 4000; } > "$T/w/in" &
	PIDS="$PIDS $!"
	listen l /dev/null $SC -q 127.0.0.1 0 || return 1
	port=$PORT
	timeout 60 $SECCHAT $SC -q -K -W 2 127.0.0.1 "$port" \
	    < "$T/w/in" > "$T/w/c.out" 2> "$T/w/c.err" &
	cpid=$!
	PIDS="$PIDS $cpid"
	wait_until 10 at_least 2000 '' "$T/w/l.out" || return 1
	kill -9 "$(child "$LPID")"
	wait "$LPID"		# gone, and its port with it
	listen l2 /dev/null $SC -q 127.0.0.1 "$port" || return 1
	wait "$cpid"
	CRC=$?
	reap
	expect "connector status" "$CRC" 0 && expect "new listener status" "$LRC" 0 &&
	    expect "lines" "$(sort -un "$T/w/l.out" "$T/w/l2.out" | tr '\n' ' ')" \
	    "$(seq 1 4000 | tr '\n' ' ')" &&
	    expect "last line" "$(tail -n 1 "$T/w/l2.out")" 4000 &&
	    # Said without -v: the lines it sends again may arrive twice.
	    grep -Eq '^secchat: connection to 127.0.0.1 lost \((closed by 127.0.0.1|Connection reset by peer)\); 127.0.0.1 no longer holds the session; a new session, .* unconfirmed sent again$' "$T/w/c.err" &&
	    dups_tail "$T/w/l.out" "$T/w/l2.out" "$(sed -n 's/.*; a new session, \(.*\) unconfirmed sent again$/\1/p' "$T/w/c.err")"
}
run "resume -K: the collector restarts, a new session, no line lost, the tail twice at most" t_resume_new_session

# A chat at a terminal across a reset: the screen says the connection was
# lost and then resumed; the lines typed before and after arrive once.
t_resume_chat() {
	fifo_listener -a 1 || return 1
	relay_to "--reset 600" "$PORT" || return 1
	chat_pane e 70 || return 1
	$TM send-keys "clear; $SECCHAT $SC -a 1 -n bob 127.0.0.1 $RPORT; echo status \$? > $T/w/c.rc" Enter
	wait_screen '^secchat: chat with bob secured' || { $TM kill-server; return 1; }
	$TM send-keys "before the cut" Enter
	wait_screen '^secchat: connection to bob lost \((Connection reset by peer|closed by bob)\);' &&
	    wait_screen '^secchat: reconnected to bob \(nothing lost\)' ||
	    { $TM kill-server; return 1; }
	$TM send-keys "after the cut" Enter
	chat_close bob "hi alice" 'before the cut\nafter the cut\n' &&
	    expect "our lines shown" "$(grep -Ec "^$HHMM you> .* the cut( +‹.*›)?\$" "$T/w/screen")" 2 &&
	    # The line sealed again has no row of its own, live or not.
	    expect "rows of our DATA records" "$(grep -c '‹sent [0-9]' "$T/w/screen")" 0
}
run "resume: a chat across a reset says so, each line arrives once, no stray rows" t_resume_chat

# A listener that waits for its connector to come back still ends at once
# on SIGTERM (the signals are let in at least each second of the wait).
t_resume_wait_signal() {
	local NORESUME= cpid spid
	listen l /dev/null $SC -q -b 127.0.0.1 0 || return 1
	timeout 60 $SECCHAT $SC -q -b 127.0.0.1 "$PORT" < /dev/zero \
	    > /dev/null 2> "$T/w/c.err" &
	cpid=$!
	PIDS="$PIDS $cpid"
	wait_until 10 test -s "$T/w/l.out" || return 1
	kill -KILL "$(child "$cpid")"
	wait_until 10 grep -Eq "^secchat: connection to 127.0.0.1 lost \((closed by 127.0.0.1|Connection reset by peer)\); waiting for it to reconnect\$" "$T/w/l.err" ||
	    return 1
	spid=$(child "$LPID")
	kill -TERM "$spid"
	wait_until 5 gone "$spid" || { echo "still waiting 5 s after SIGTERM"; return 1; }
	reap
	expect "listener status" "$LRC" 143
}
run "resume: a listener waiting for its connector ends on SIGTERM" t_resume_wait_signal

# Attacks and ends (issue 17): a RESUME the listener must refuse.
SIZE='[0-9.]* [KMG]*i*B'	# a size of 9.3, as the ACKs left it

# The listener's window runs out first (it notices the dead link after
# -L 2, the connector after -L 5): its session has ended when the
# connector comes back, so NO_SESSION (9.4's END), exit 1.
t_resume_after_window() {
	local NORESUME=
	mkfifo "$T/w/in"
	# The link freezes once the connector has heard the listener (so it
	# knows its keepalive interval) and sends the rest.
	{ seq 1 10; wait_until 10 at_least 10 '' "$T/w/c.out"; seq 11 1000
	    sleep 15; } > "$T/w/in" &
	PIDS="$PIDS $!"
	listen l /dev/null $SC -k -m 4 -e cat -q -a 1 -W 1 -L 2 127.0.0.1 0 ||
	    return 1
	relay_to "--freeze 9000:8" "$PORT" || return 1
	dial c "$T/w/in" $SC -q -a 1 -W 1 -L 5 127.0.0.1 "$RPORT"
	expect "connector status" "$CRC" 1 &&
	    grep -qx "secchat: connection lost (no word from 127.0.0.1 for 5 s): 3.8 KiB sent, $SIZE confirmed, $SIZE received; 127.0.0.1 no longer holds the session" "$T/w/c.err" &&
	    grep -q ': connection lost (no word from 127.0.0.1 for 2 s): .*; not resumed within 1 s$' "$T/w/l.err" &&
	    grep -q ': refused: no session to resume$' "$T/w/l.err"
}
run "resume after the listener's window ran out: NO_SESSION, 'no longer holds the session', exit 1" t_resume_after_window

# live_start RELAYARGS: a session through the relay with RELAYARGS, the
# connector (CPID) in the background: 3000 of its 6000 lines sent, the
# rest once $T/w/go exists.  live_end: they come, both sides end.
live_start() {
	seq 1 6000 > "$T/w/a"
	mkfifo "$T/w/in"
	{ seq 1 3000; wait_until 20 test -e "$T/w/go"; seq 3001 6000; } \
	    > "$T/w/in" &
	PIDS="$PIDS $!"
	listen l /dev/null $SC -q -a 1 127.0.0.1 0 || return 1
	relay_to "$1" "$PORT" || return 1
	timeout 60 $SECCHAT -v $SC -q -a 1 127.0.0.1 "$RPORT" < "$T/w/in" \
	    > "$T/w/c.out" 2> "$T/w/c.err" &
	CPID=$!
	PIDS="$PIDS $CPID"
	wait_until 10 at_least 3000 '' "$T/w/l.out" ||
	    { echo "the session did not start"; return 1; }
}
live_end() {
	touch "$T/w/go"
	wait "$CPID"
	CRC=$?
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/a" "$T/w/l.out"
}

# forge_resume FILE: a RESUME of a random sid (and key, and proof).
forge_resume() {
	python3 -c 'import os, sys; sys.path.insert(0, "tests"); import peer3
open(sys.argv[1], "wb").write(peer3.header(peer3.RESUME) + os.urandom(84))' "$1"
}

# A session that ended with both DONEs is no longer held: its own RESUME,
# recorded on its cut, is refused NO_SESSION by a serving listener.
t_resume_finished() {
	local NORESUME= r
	seq 1 20000 > "$T/w/a"
	listen l /dev/null $SC -k -m 4 -e cat -q -a 1 127.0.0.1 0 || return 1
	relay_to "--reset 30000 --record $T/w/resume" "$PORT" || return 1
	dial c "$T/w/a" $SC -q -a 1 127.0.0.1 "$RPORT"
	expect "connector status" "$CRC" 0 && same "$T/w/a" "$T/w/c.out" &&
	    resumes "$T/w/c.err" 1 &&
	    wait_until 10 grep -q 'command exited with status 0' "$T/w/l.err" ||
	    return 1
	r=$(resume_try "$PORT" "$T/w/resume" -)
	expect "answer" "$r" "kind 0 reason 8" &&
	    wait_until 10 grep -q ': refused: no session to resume$' "$T/w/l.err"
}
run "resume of a finished session (both DONEs): NO_SESSION" t_resume_finished

# RESUMEs of a random sid during a live session: NO_SESSION, counted as
# malformed handshakes (8.3): 3 free, the fourth earns a penalty.
t_resume_unknown_sid() {
	local NORESUME= r
	live_start "" || return 1
	forge_resume "$T/w/resume"
	r=$(resume_try "$PORT" "$T/w/resume" - - - - -)
	expect "answers" "$r" "kind 0 reason 8, kind 0 reason 8, kind 0 reason 8, kind 0 reason 8, refused 1" &&
	    live_end || return 1
	# The log says 3 lines of a kind a minute, then counts the rest.
	at_least 3 ': refused: no session to resume$' "$T/w/l.err"
}
run "resume naming an unknown sid: NO_SESSION, penalised; the session ends well" t_resume_unknown_sid

# 50 RESUMEs with the live session's sid and a proof of another greeting,
# from one address in a burst: RESUME_FAILED for the free 3 and the
# fourth, PENALTY at accept after (a few more RESUME_FAILED as penalties
# end on a slow machine); the session goes on whole.
t_resume_flood() {
	local NORESUME= r
	live_start "--reset 4000 --record $T/w/resume" || return 1
	wait_until 10 grep -q 'reconnected to' "$T/w/c.err" ||
	    { echo "no resume"; return 1; }
	# shellcheck disable=SC2046	# 50 words, "-" each
	r=$(resume_try "$PORT" "$T/w/resume" $(printf -- '- %.0s' $(seq 50)) |
	    sed 's/, /\n/g')
	expect "answers" "$(echo "$r" | wc -l)" 50 &&
	    expect "first five" "$(echo "$r" | head -n 5 | tr '\n' /)" \
	    "kind 0 reason 9/kind 0 reason 9/kind 0 reason 9/kind 0 reason 9/refused 1/" &&
	    expect "other answers" "$(echo "$r" | grep -v -x -c -e 'kind 0 reason 9' -e 'refused 1')" 0 &&
	    [ "$(echo "$r" | grep -c 'reason 9')" -le 8 ] &&
	    live_end && resumes "$T/w/c.err" 1
}
run "resume flood: 50 forged RESUMEs refused, then penalised; the live session ends well" t_resume_flood

# Two sessions at once through -k -m 4 -e sha256sum: the first is cut
# mid-upload and resumed, the second (direct) goes on untouched; each
# command hashes its whole upload, and the cut one's is the same child's
# and command's (two commands run in all).
# It found a bug (a cut upload short by up to a pipe's 64 KiB, both sides
# exiting 0, about 1 run in 3): the resume ACK was sealed with a later
# written count than the resume point's; it now carries resume_point()'s.
t_resume_serving_two() {
	local NORESUME= bpid brc port
	head -c 3000000 /dev/urandom > "$T/w/a"
	head -c 2000000 /dev/urandom > "$T/w/b"
	mkfifo "$T/w/inb"
	{ head -c 1000000 "$T/w/b"; wait_until 20 test -e "$T/w/go"
	    tail -c +1000001 "$T/w/b"; } > "$T/w/inb" &
	PIDS="$PIDS $!"
	listen l /dev/null $SC -k -m 4 -e sha256sum -q -a 1 127.0.0.1 0 ||
	    return 1
	timeout 60 $SECCHAT -v $SC -q -b -a 1 127.0.0.1 "$PORT" \
	    < "$T/w/inb" > "$T/w/b.out" 2> "$T/w/b.err" &
	bpid=$!
	PIDS="$PIDS $bpid"
	wait_until 10 grep -q 'handshake done' "$T/w/b.err" || return 1
	relay_to "--reset 1500000" "$PORT" || return 1
	dial c "$T/w/a" $SC -q -b -a 1 127.0.0.1 "$RPORT"
	touch "$T/w/go"
	wait "$bpid"
	brc=$?
	expect "cut connector status" "$CRC" 0 &&
	    expect "other connector status" "$brc" 0 &&
	    expect "cut upload" "$(cat "$T/w/c.out")" "$(sha256sum < "$T/w/a")" &&
	    expect "other upload" "$(cat "$T/w/b.out")" "$(sha256sum < "$T/w/b")" &&
	    resumes "$T/w/c.err" 1 && ! grep -q reconnect "$T/w/b.err" &&
	    wait_until 10 at_least 2 'command exited with status 0' "$T/w/l.err" ||
	    return 1
	port=$(sed -n 's/^secchat: 127.0.0.1 port \([0-9]*\): reconnected to .*/\1/p' "$T/w/l.err")
	expect "commands run" "$(grep -c 'command exited' "$T/w/l.err")" 2 &&
	    grep -q "^secchat: 127.0.0.1 port $port: command exited with status 0\$" "$T/w/l.err"
}
run "resume through -k -m 4 -e, two sessions: the cut one resumed by its child, both uploads whole" t_resume_serving_two

# Two people through the relay, each in a pane (bob listens in pane 0,
# alice connects in pane 1), with the hex display on: a quiet spell, then
# a dead link (the relay stopped, so nothing moves and even new connections
# get no greeting).  chat_through_freeze QUIET FREEZE OPTS...: QUIET
# seconds of silence that leave no note on either screen, then a freeze of
# FREEZE seconds, past the loss limit: both screens say the connection was
# lost and then resumed (nothing lost), and every line typed before,
# during the freeze (sealed into the dead connection: sealed again after
# the resume, with no row of its own), while reconnecting and after arrives
# exactly once; ^D ends the chat, both exit 0.  Sets THAWED, the seconds
# from the thaw to both screens' "reconnected".
notes() { rows_joined "$1" | grep -c '^secchat: '; }
each_once() {	# each_once PANE WHO LINE...: PANE shows each once as WHO's
	local pane=$1 who=$2 line n
	shift 2
	for line; do
		n=$(rows_joined "$pane" | grep -Ec "^$HHMM $who> $line( +‹.*›)?\$")
		expect "pane $pane: '$who> $line' shown" "$n" 1 || return 1
	done
}
chat_through_freeze() {
	local quiet=$1 freeze=$2 rp n0 n1 t0 HEX='( +‹.*›)?'
	shift 2
	tmux_server two
	local sh="exec env LANG=C.UTF-8 TZ=UTC PS1='\$ ' bash --norc --noprofile"
	$TM new-session -d -x 201 -y 30 "$sh" || return 1
	$TM split-window -h "$sh" || { $TM kill-server; return 1; }
	$TM send-keys -t 0 "$SECCHAT -l -n alice $SC $* 127.0.0.1 0; echo bob status \$? > $T/w/b.rc" Enter
	wait_until 10 pane_port || { $TM kill-server; return 1; }
	relay_to "" "$PORT" || { $TM kill-server; return 1; }
	rp=$(child "$RPID")
	$TM send-keys -t 1 "$SECCHAT -n bob $SC $* 127.0.0.1 $RPORT; echo alice status \$? > $T/w/a.rc" Enter
	{ wait_until 10 joined_shows '^secchat: chat with bob secured' 1 &&
	    say 1 "'alice before'" alice "alice before$HEX" &&
	    say 0 "'bob before'" bob "bob before$HEX"; } || { $TM kill-server; return 1; }
	n0=$(notes 0) n1=$(notes 1)
	sleep "$quiet"		# the silence is the test: time must pass
	expect "bob's notes after ${quiet} s of quiet" "$(notes 0)" "$n0" &&
	    expect "alice's notes after ${quiet} s of quiet" "$(notes 1)" "$n1" &&
	    say 1 "'alice after the quiet'" alice "alice after the quiet$HEX" ||
	    { $TM kill-server; return 1; }
	kill -STOP "$rp"
	t0=$SECONDS
	$TM send-keys -t 1 "alice during" Enter
	$TM send-keys -t 0 "bob during" Enter
	{ wait_until $((freeze + 5)) joined_shows '^secchat: connection to bob lost \(no word from bob for [0-9]+ s\); reconnecting$' 1 &&
	    wait_until 10 joined_shows '^secchat: connection to alice lost \(no word from alice for [0-9]+ s\); waiting for it to reconnect$' 0; } ||
	    { echo "no 'lost' on both screens"; kill -CONT "$rp"; $TM capture-pane -p -t 0; $TM capture-pane -p -t 1; $TM kill-server; return 1; }
	$TM send-keys -t 1 "alice reconnecting" Enter
	$TM send-keys -t 0 "bob reconnecting" Enter
	[ $((SECONDS - t0)) -lt "$freeze" ] && sleep $((freeze - (SECONDS - t0)))
	kill -CONT "$rp"
	t0=$EPOCHREALTIME
	{ wait_until 10 joined_shows '^secchat: reconnected to bob \(nothing lost\)$' 1 &&
	    wait_until 10 joined_shows '^secchat: reconnected to alice \(nothing lost\)$' 0; } ||
	    { echo "no 'reconnected' on both screens"; $TM capture-pane -p -t 0; $TM capture-pane -p -t 1; $TM kill-server; return 1; }
	THAWED=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
	{ say 1 "'alice after'" alice "alice after$HEX" &&
	    say 0 "'bob after'" bob "bob after$HEX" &&
	    each_once 0 alice "alice before" "alice after the quiet" "alice during" "alice reconnecting" "alice after" &&
	    each_once 1 bob "bob before" "bob during" "bob reconnecting" "bob after"; } ||
	    { $TM capture-pane -p -t 0; $TM capture-pane -p -t 1; $TM kill-server; return 1; }
	$TM send-keys -t 1 C-d
	wait_until 10 test -s "$T/w/a.rc" -a -s "$T/w/b.rc"
	{ echo "--- bob (pane 0, listener)"; rows_joined 0
	  echo "--- alice (pane 1, connector)"; rows_joined 1; } > "$T/w/panes"
	$TM kill-server
	[ -n "${CHAT_PANES:-}" ] && cp "$T/w/panes" "$CHAT_PANES"
	cat "$T/w/panes"
	echo "# both screens said 'reconnected' ${THAWED} s after the thaw"
	expect "alice" "$(cat "$T/w/a.rc")" "alice status 0" &&
	    expect "bob" "$(cat "$T/w/b.rc")" "bob status 0" &&
	    grep -q "^secchat: alice ended the chat" "$T/w/panes" &&
	    expect "rows of DATA records" "$(grep -c '‹sent [0-9]' "$T/w/panes")" 0
}

# A long outage: the connector gives up a connect that brought no greeting
# after 10 s and tries again (8.6), so the freeze, noticed after 2 s, is
# 13 s.  The 3 s of quiet would be a loss without the keepalives.
t_resume_chat_two() { local NORESUME=; chat_through_freeze 3 13 -a 1 -L 2; }
run "resume: two panes, 3 s quiet then a 13 s dead link: lost, resumed, each line once" t_resume_chat_two
