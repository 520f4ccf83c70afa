# shellcheck shell=bash disable=SC2034	# its variables are for the suites
# tests/lib.sh: what the suites in tests/suites/ share; test.sh reads it.
#
# Every session runs on loopback, listens on port 0 and reads the real port
# from the -v line; every process runs under timeout(1) and is killed by
# PID at the end.  SECCHAT may name another build (e.g. with sanitizers).

SECCHAT=${SECCHAT:-./secchat}
KAT=${KAT:-tests/kat}
HOOKS=${HOOKS:-tests/secchat-hooks}	# the program with test hooks, sandbox on
DEBUG=${DEBUG:-tests/secchat-debug}	# a debugging build: SECCHAT_NO_SANDBOX heeded
LEAK=${LEAK:-tests/secchat-leak}	# a build that leaks its secrets (make)
SRCADDR=$PWD/tests/srcaddr.so		# connect(2) from $SECCHAT_TEST_SOURCE
RELAY="python3 tests/relay.py"
VALGRIND=${VALGRIND:-valgrind}		# "none" skips the memcheck session
RSS_LIMIT_KB=${RSS_LIMIT_KB:-8192}	# peak RSS of a sender (sanitizers need more)
PEER=${PEER:-/usr/bin/python3 tests/peer3.py}	# the independent Python peer
# listen and dial turn resuming off (-W 0): a cut connection ends the
# session at once, as the suites before resume expect; the resume suite
# clears it (local NORESUME=) to have the default window.
NORESUME="-W 0"

# Messages that more than one suite looks for.
AUTH="record failed authentication"
TRUNC="connection lost while receiving"
WRONG="wrong password, or the connection was tampered with"
HHMM='[0-2][0-9]:[0-5][0-9]'

# ---------------------------------------------------------------------------
# Registering and running tests.

# run DESCRIPTION FUNCTION: register a test of the suite being read ($SUITE);
# test.sh runs each suite's tests in the order they were registered.
TEST_SUITE=() TEST_FN=() TEST_DESC=()
run() {
	declare -F "$2" > /dev/null ||
	    { echo "test.sh: suite $SUITE registers $2, which is not defined" >&2; exit 2; }
	! registered "$2" ||
	    { echo "test.sh: $2 is registered twice" >&2; exit 2; }
	TEST_SUITE+=("$SUITE") TEST_FN+=("$2") TEST_DESC+=("$1")
}

registered() {	# registered FUNCTION: some suite registered it
	local f
	for f in ${TEST_FN[@]+"${TEST_FN[@]}"}; do [ "$f" = "$1" ] && return 0; done
	return 1
}

# suite_start: the running suite's own directory T (suites may run at
# once), the password files, and the cleanup of what it started.
suite_start() {
	T=$(mktemp -d /tmp/secchat-test.XXXXXX) || exit 1
	PIDS="" TM=
	trap suite_end EXIT
	trap 'exit 143' TERM	# so that suite_end runs
	trap 'exit 130' INT
	printf 'correct horse battery staple\n' > "$T/pf"
	printf 'wrong horse battery staple\n' > "$T/pf.wrong"
	chmod 600 "$T/pf" "$T/pf.wrong"
	PF=$T/pf
	SC="-i 1000 -p $PF"
}

suite_end() {
	stop_started
	rm -rf "$T"
}

# stop_started: kill, by PID, what the last test started, and close its
# tmux terminal if it did not; the server's socket stays behind it.
stop_started() {
	local p
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	PIDS=""
	if [ -n "${TM:-}" ]; then
		$TM kill-server 2>/dev/null
		rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/${TM##* }"
	fi
	TM=
}

# A sanitizer build reports on stderr; any report fails the test.
sanitizer_report() {
	grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
	    "$T"/w/*.err 2>/dev/null
}

# run_test DESCRIPTION FUNCTION: one numbered line, details of a failure
# after it.  (The numbers count within a suite; test.sh renumbers.)
num=0
run_test() {
	local f t0=$EPOCHREALTIME
	num=$((num + 1)) LRC= CRC=
	rm -rf "$T/w"; mkdir "$T/w"
	if "$2" > "$T/w/log" 2>&1 && ! sanitizer_report; then
		echo "ok $num - $1"
		[ -n "${VERBOSE:-}" ] && sed 's/^/#   /' "$T/w/log"
	else
		echo "FAIL $num - $1"
		sed "s/^/#   /" "$T/w/log" | tail -n "${TAIL:-20}"
		for f in "$T"/w/*.err; do
			[ -f "$f" ] || continue
			echo "#   --- $(basename "$f"):"
			grep -v '^[<>] ' "$f" | tail -n 5 | sed 's/^/#   /'
		done
	fi
	stop_started
	[ -z "${TIMES:-}" ] ||
	    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "#   %.1f s\n", b - a }'
}

# ---------------------------------------------------------------------------
# Waiting.

# wait_until [-p PID] [-e EVERY] SECONDS COMMAND...: run COMMAND at once
# and then every EVERY seconds (0.05) until it succeeds; give up when it
# has slept SECONDS between tries (so slow tries on a loaded machine only
# lengthen the wait), or when PID is gone and one last try fails.
wait_until() {
	local _wu_pid='' _wu_every=0.05 _wu_n
	while :; do
		case $1 in
		-p) _wu_pid=$2; shift 2 ;;
		-e) _wu_every=$2; shift 2 ;;
		*) break ;;
		esac
	done
	_wu_n=$(awk -v s="$1" -v e="$_wu_every" \
	    'BEGIN { n = s / e; print (n > int(n)) ? int(n) + 1 : n }')
	shift
	while :; do
		"$@" && return 0
		[ "$_wu_n" -gt 0 ] || return 1
		if [ -n "$_wu_pid" ] && ! kill -0 "$_wu_pid" 2>/dev/null; then
			"$@"	# what it wrote before it went
			return
		fi
		_wu_n=$((_wu_n - 1))
		sleep "$_wu_every"
	done
}

# Conditions to wait for.
at_least() {	# at_least N RE FILE: N lines of FILE match RE
	[ "$(grep -c -- "$2" "$3")" -ge "$1" ]
}

number_in() {	# number_in FILE RE: NUMBER is what RE's group caught
	NUMBER=$(sed -n "s/^$2\$/\\1/p" "$1")
	[ -n "$NUMBER" ]
}

# wait_number VAR FILE PID RE: once a line of FILE matches RE, a sed
# expression with one group, set VAR to what the group caught; give up
# after 10 s or when PID is gone.
wait_number() {
	local var=$1 file=$2 pid=$3 re=$4
	if wait_until -p "$pid" 10 number_in "$file" "$re"; then
		eval "$var=\$NUMBER"
		return 0
	fi
	echo "no line like '$re' in $(basename "$file")"
	return 1
}

# wait_port FILE PID: set PORT from the -v line in FILE.
wait_port() {
	wait_number PORT "$1" "$2" 'secchat: listening on .* port \([0-9]*\)'
}

# wait_file FILE: until FILE is not empty (10 s).
wait_file() {
	wait_until 10 test -s "$1" && return 0
	echo "no $(basename "$1")"
	return 1
}

# ---------------------------------------------------------------------------
# Sessions.

# listen NAME INPUT ARGS...: start a listener, set PORT and LPID.
listen() {
	local name=$1 input=$2
	shift 2
	# A listener of this name before: its port must not be read for ours
	# (the redirection below happens in the child, at some later moment).
	rm -f "$T/w/$name.err"
	timeout 60 $SECCHAT -l -v $NORESUME "$@" < "$input" > "$T/w/$name.out" \
	    2> "$T/w/$name.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/$name.err" "$LPID"
}

# slow_listener SECS ARGS...: a -q -b listener whose reader starts after
# SECS seconds (its pipe, buffers and socket fill up meanwhile); output in
# l.out; set LPID and PORT.
slow_listener() {
	local secs=$1
	shift
	timeout 60 $SECCHAT -l -v $SC -q -b "$@" 127.0.0.1 0 < /dev/null \
	    2> "$T/w/l.err" | { sleep "$secs"; cat > "$T/w/l.out"; } &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/l.err" "$LPID"
}

# code_listener ARGS...: a -g listener (-i 1000) that sends "by code"
# (in a); set LPID, PORT and code, the one-time code it shows.
code_listener() {
	echo "by code" > "$T/w/a"
	timeout 60 $SECCHAT -l -v -g -i 1000 "$@" 127.0.0.1 0 < "$T/w/a" \
	    > "$T/w/l.out" 2> "$T/w/l.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/l.err" "$LPID" || return 1
	wait_number code "$T/w/l.err" "$LPID" \
	    'secchat: one-time code \([0-9]\{4\}-[0-9]\{4\}-[0-9]\{4\}\): .*'
}

# dial NAME INPUT ARGS...: run a connector to completion, set CRC.
dial() {
	local name=$1 input=$2
	shift 2
	timeout 60 $SECCHAT -v $NORESUME "$@" < "$input" > "$T/w/$name.out" \
	    2> "$T/w/$name.err"
	CRC=$?
}

# reap: wait for the listener, set LRC.
reap() {
	wait "$LPID"
	LRC=$?
}

# A session: listener input, connector input, extra args for both.
session() {	# session LIN CIN ARGS...
	local lin=$1 cin=$2
	shift 2
	listen l "$lin" $SC "$@" 127.0.0.1 0 || return 1
	dial c "$cin" $SC "$@" 127.0.0.1 "$PORT"
	reap
}

clean_session() {	# both sides exit 0 and each got the other's input
	session "$@" || return 1
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$1" "$T/w/c.out" && same "$2" "$T/w/l.out"
}

# pylisten NAME INPUT ARGS...: start the Python peer as listener, set PORT, LPID.
pylisten() {
	local name=$1 input=$2
	shift 2
	timeout 60 $PEER -l "$@" < "$input" > "$T/w/$name.out" \
	    2> "$T/w/$name.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_number PORT "$T/w/$name.err" "$LPID" \
	    'peer3\{0,1\}: listening on port \([0-9]*\)'
}

# pydial NAME INPUT ARGS...: run the Python peer as connector, set CRC.
pydial() {
	local name=$1 input=$2
	shift 2
	timeout 60 $PEER "$@" < "$input" > "$T/w/$name.out" 2> "$T/w/$name.err"
	CRC=$?
}

# quiet_fifo NAME [SECONDS]: a FIFO that gives nothing for SECONDS (10),
# then EOF.
quiet_fifo() {
	mkfifo "$T/w/$1"
	sleep "${2:-10}" > "$T/w/$1" &
	PIDS="$PIDS $!"
}

# child PID: the secchat that timeout(1) PID runs.
child() { pgrep -P "$1" | head -n 1; }
gone() { ! kill -0 "$1" 2>/dev/null; }	# gone PID: no such process

# cpu_ticks PID: user + system clock ticks used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# ---------------------------------------------------------------------------
# Checks.

expect() {	# expect WHAT ACTUAL WANTED
	[ "$2" = "$3" ] && return 0
	echo "$1: got $2, wanted $3"
	return 1
}

# peer_line FILE LINE: a listener's line about a connection from 127.0.0.1,
# "secchat: 127.0.0.1 port P: LINE", is in FILE.
peer_line() {
	grep -qx "secchat: 127\.0\.0\.1 port [0-9]*: $(printf '%s' "$2" |
	    sed 's/[][\.*^$]/\\&/g')" "$1" && return 0
	echo "$(basename "$1") lacks the line: secchat: 127.0.0.1 port P: $2"
	return 1
}

has_line() {	# has_line FILE LINE: LINE is a whole line of FILE
	grep -qxF -- "$2" "$1" && return 0
	echo "$(basename "$1") lacks the line: $2"
	return 1
}

same() {	# same FILE1 FILE2
	cmp -s "$1" "$2" && return 0
	echo "$(basename "$1") and $(basename "$2") differ"
	return 1
}

both_ok() {	# both_ok LIN CIN: both sides exit 0, each got the other's input
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$1" "$T/w/c.out" && same "$2" "$T/w/l.out"
}

kat() {		# kat KIND FILE: the program's output must equal the file
	"$KAT" "$1" "tests/data/$2" > "$T/w/kat.out" || return 1
	grep -v '^#' "tests/data/$2" | sed '/./,$!d' | diff - "$T/w/kat.out"
}

# ---------------------------------------------------------------------------
# Terminals: tmux servers of our own, one per test, named after the
# suite's directory so that suites running at once never share one.

# tmux_server NAME: TM runs tmux on the server NAME.
tmux_server() { TM="tmux -L ${T##*/}-$1"; }

# tty_session NAME COMMAND: run COMMAND in a fresh tmux terminal.
tty_session() {
	tmux_server "$1"
	$TM new-session -d -x 80 -y 20 "exec bash --norc --noprofile" &&
	    $TM send-keys "clear; $2" Enter
}

# chat_pane NAME COLS: a fresh UTF-8 tmux terminal, COLS x 12, its raw
# output recorded in $T/w/NAME.raw; TM names it.
chat_pane() {
	tmux_server "$1"
	# Not the fifo_listener's fd 7: its EOF must reach the listener.
	$TM new-session -d -x "$2" -y 12 \
	    "exec env LANG=C.UTF-8 TZ=UTC bash --norc --noprofile" 7>&- &&
	    $TM pipe-pane -O "cat > $T/w/$1.raw"
}

# screen_shows RE [PANE [OPTION]]: a line of the screen (of PANE, captured
# with OPTION, e.g. -J) matches RE.
screen_shows() {
	$TM capture-pane -p ${3:-} ${2:+-t "$2"} | grep -qE -- "$1"
}

# wait_screen RE: until a line of the screen matches RE (10 s).
wait_screen() {
	wait_until 10 screen_shows "$1" && return 0
	echo "the screen never showed: $1"
	$TM capture-pane -p
	return 1
}

# cols_are TTY N: the terminal TTY is N columns wide.
cols_are() { [ "$(stty -F "$1" size | cut -d' ' -f2)" = "$2" ]; }

# wait_cols PANE N: until the terminal of PANE is N columns wide (10 s):
# keys typed before the resize reaches the terminal meet a stale width.
wait_cols() {
	local tty
	tty=$($TM display -p -t "$1" '#{pane_tty}')
	wait_until 10 cols_are "$tty" "$2" && return 0
	echo "$tty never became $2 columns wide"
	return 1
}

# fifo_listener: a listener reading $T/w/to_l (kept open on fd 7), its
# stdout in l.out; sets PORT and LPID.
fifo_listener() {
	mkfifo "$T/w/to_l"
	timeout 60 $SECCHAT -l -v $SC -q "$@" 127.0.0.1 0 < "$T/w/to_l" \
	    > "$T/w/l.out" 2> "$T/w/l.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	exec 7> "$T/w/to_l"
	wait_port "$T/w/l.err" "$LPID"
}

# chat_over: end the fifo_listener's input, wait for both sides, keep the
# screen in $T/w/screen, close the terminal.
chat_over() {
	exec 7>&-
	wait_file "$T/w/c.rc"
	reap
	$TM capture-pane -p -S - > "$T/w/screen"	# its history too
	$TM kill-server
	cat "$T/w/screen"
}

# chat_close WHO LINE WANT: the fifo_listener says LINE, the screen shows
# it as WHO's, ^D ends the chat (chat_over); the listener's output must be
# WANT (printf %b) and both sides exit 0.
chat_close() {
	echo "$2" >&7
	wait_screen "^$HHMM $1> $2( +‹.*›)?\$" || { $TM kill-server; return 1; }
	$TM send-keys C-d
	chat_over
	printf '%b' "$3" > "$T/w/want"
	same "$T/w/want" "$T/w/l.out" &&
	    expect "connector" "$(cat "$T/w/c.rc")" "status 0" &&
	    expect "listener status" "$LRC" 0
}

# pane_listener NAME COMMAND: COMMAND, a listener with its stderr in l.err,
# typed into a fresh 100-column pane; set PORT.  (The listener is the
# pane's, not ours: the wait is on the test's shell.)
pane_listener() {
	chat_pane "$1" 100 || return 1
	$TM send-keys "$2" Enter
	wait_port "$T/w/l.err" "$$" || { $TM kill-server; return 1; }
}

# rows_joined [PANE]: the screen with each chat line on one line: the
# terminal's own wraps joined (-J), and the rows that secchat continued
# itself (indented, "↳ ") joined to the row above; trailing blanks go.
rows_joined() {
	$TM capture-pane -p -J -N ${1:+-t "$1"} | awk '
	    /^ *\xe2\x86\xb3 / { sub(/^ *\xe2\x86\xb3 /, ""); row = row $0; next }
	    NR > 1 { print row }
	    { row = $0 }
	    END { print row }' | sed 's/ *$//'
}

# joined_shows RE [PANE]: a chat line of the screen (rows_joined) matches RE.
joined_shows() {
	rows_joined "${2:-}" | grep -qE -- "$1"
}

# say PANE TEXT WHO RE: type TEXT (tmux keys) and Enter in PANE, then wait
# until the other pane shows RE as WHO's line.
say() {
	local pane=$1 keys=$2 who=$3 re=$4 other=$(( 1 - $1 ))
	eval "$TM send-keys -t $pane $keys Enter"
	wait_until 10 joined_shows "^$HHMM $who> $re\$" "$other" && return 0
	echo "pane $other never showed $who> $re"
	$TM capture-pane -p -t "$other"
	return 1
}
