#!/usr/bin/env bash
# secchat test suite: one line per test, then "N passed, N failed".
#
# Every session runs on loopback, listens on port 0 and reads the real port
# from the -v line; every process runs under timeout(1) and is killed by
# PID at the end.  SECCHAT may name another build (e.g. with sanitizers).
set -u
cd "$(dirname "$0")"

SECCHAT=${SECCHAT:-./secchat}
KAT=${KAT:-tests/kat}
HOOKS=${HOOKS:-tests/secchat-hooks}	# the program with test hooks, sandbox on
LEAK=${LEAK:-tests/secchat-leak}	# a build that leaks its secrets (make)
SRCADDR=$PWD/tests/srcaddr.so		# connect(2) from $SECCHAT_TEST_SOURCE
RELAY="python3 tests/relay.py"
VALGRIND=${VALGRIND:-valgrind}		# "none" skips the memcheck session
RSS_LIMIT_KB=${RSS_LIMIT_KB:-8192}	# peak RSS of a sender (sanitizers need more)
T=$(mktemp -d /tmp/secchat-test.XXXXXX)
PIDS=""
pass=0 fail=0 num=0

cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT

printf 'correct horse battery staple\n' > "$T/pf"
printf 'wrong horse battery staple\n' > "$T/pf.wrong"
chmod 600 "$T/pf" "$T/pf.wrong"
PF=$T/pf
SC="-i 1000 -p $PF"

# A sanitizer build reports on stderr; any report fails the test.
sanitizer_report() {
	grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
	    "$T"/w/*.err 2>/dev/null
}

# run DESCRIPTION FUNCTION: one numbered line, details of a failure after it.
# Arguments to test.sh, if any, pick tests by function name (e.g. t_ipv6).
ONLY=" $* "
run() {
	[ "$ONLY" = "  " ] || case "$ONLY" in *" $2 "*) ;; *) return 0;; esac
	num=$((num + 1)) LRC= CRC=
	rm -rf "$T/w"; mkdir "$T/w"
	if "$2" > "$T/w/log" 2>&1 && ! sanitizer_report; then
		pass=$((pass + 1)); echo "ok $num - $1"
		[ -n "${VERBOSE:-}" ] && sed 's/^/#   /' "$T/w/log"
	else
		fail=$((fail + 1)); echo "FAIL $num - $1"
		sed "s/^/#   /" "$T/w/log" | tail -n ${TAIL:-20}
		for f in "$T"/w/*.err; do
			[ -f "$f" ] || continue
			echo "#   --- $(basename "$f"):"
			grep -v '^[<>] ' "$f" | tail -n 5 | sed 's/^/#   /'
		done
	fi
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	PIDS=""
}

# wait_number VAR FILE PID RE: once a line of FILE matches RE, a sed
# expression with one group, set VAR to what the group caught; give up
# after 10 s or when PID is gone.
wait_number() {
	local var=$1 file=$2 pid=$3 re=$4 i v
	for i in $(seq 200); do
		v=$(sed -n "s/^$re\$/\\1/p" "$file")
		[ -n "$v" ] && { eval "$var=\$v"; return 0; }
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "no line like '$re' in $(basename "$file")"
	return 1
}

# wait_port FILE PID: set PORT from the -v line in FILE.
wait_port() {
	wait_number PORT "$1" "$2" 'secchat: listening on .* port \([0-9]*\)'
}

# listen NAME INPUT ARGS...: start a listener, set PORT and LPID.
listen() {
	local name=$1 input=$2
	shift 2
	timeout 60 $SECCHAT -l -v "$@" < "$input" > "$T/w/$name.out" \
	    2> "$T/w/$name.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/$name.err" "$LPID"
}

# dial NAME INPUT ARGS...: run a connector to completion, set CRC.
dial() {
	local name=$1 input=$2
	shift 2
	timeout 60 $SECCHAT -v "$@" < "$input" > "$T/w/$name.out" \
	    2> "$T/w/$name.err"
	CRC=$?
}

# reap: wait for the listener, set LRC.
reap() {
	wait "$LPID"
	LRC=$?
}

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

kat() {		# kat KIND FILE: the program's output must equal the file
	"$KAT" "$1" "tests/data/$2" > "$T/w/kat.out" || return 1
	grep -v '^#' "tests/data/$2" | sed '/./,$!d' | diff - "$T/w/kat.out"
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

# ---------------------------------------------------------------------------
# Known answers.

t_rfc9382() { kat spake2 rfc9382-p256.txt; }
t_pbkdf2() { kat pbkdf2 pbkdf2-hmac-sha256.txt; }
# The secchat/3 vectors of the independent peer (tests/peer3.py): the
# session's handshake (its first block; the records are the record layer's),
# and every REFUSAL with the connector's line.
t_session_vector() {
	"$KAT" handshake3 tests/data/secchat3-session.txt > "$T/w/kat.out" ||
	    return 1
	grep -v '^#' tests/data/secchat3-session.txt | sed '/./,$!d' |
	    sed '/^$/,$d' | diff - "$T/w/kat.out"
}
t_refusal_vectors() { kat refusals3 secchat3-refusals.txt; }

# A thief with one c2s secret (epoch 1, from the leaking test build) reads
# that epoch, but not the next one: the DH rekey heals.  The same thief
# reads on through secchat/1's hash-only rekey (its vector).
t_compromise() {
	seq 1 40 | sed 's/^/secret line /' > "$T/w/b"
	listen l /dev/null $SC -q 127.0.0.1 0 || return 1
	SECCHAT_TEST_LEAK=$T/w/leak timeout 60 $LEAK -v $SC -r 10 \
	    127.0.0.1 "$PORT" < "$T/w/b" > "$T/w/c.out" 2> "$T/w/c.err"
	CRC=$?
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/b" "$T/w/l.out" || return 1
	python3 tests/compromise.py "$T/w/leak" "$T/w/c.err" 1 > "$T/w/thief"
	local rc=$?
	cat "$T/w/thief"
	expect "thief" "$rc" 0 &&
	    has_line "$T/w/thief" "epoch 1: the stolen secret opens 11 records, the last a REKEY" &&
	    has_line "$T/w/thief" "epoch 2: the hash-only guess opens 0 records" &&
	    has_line "$T/w/thief" "epoch 2: the real secret opens 11 records" &&
	    python3 tests/compromise.py --secchat1 tests/data/secchat1-session.txt \
	    > "$T/w/thief1" &&
	    has_line "$T/w/thief1" "secchat/1 epoch 1: the hash-only guess opens 2 records"
}

# ---------------------------------------------------------------------------
# End to end.

# -P: DATA inner lengths are multiples of the size, capped at 16640; the
# receiver needs no option.  Line lengths with the \n: 3, 100, 16384.
t_padding() {
	{ echo hi; head -c 99 /dev/zero | tr '\0' a; echo;
	  head -c 16383 /dev/zero | tr '\0' b; echo; } > "$T/w/b"
	clean_session /dev/null "$T/w/b" -P 64 || return 1
	expect "64-byte record" "$(grep -c '^> 0050' "$T/w/c.err")" 1 &&
	    expect "128-byte record" "$(grep -c '^> 0090' "$T/w/c.err")" 1 &&
	    expect "16448-byte record" "$(grep -c '^> 4050' "$T/w/c.err")" 1 ||
	    return 1
	clean_session /dev/null "$T/w/b" -P 16384 || return 1
	expect "16384-byte records" "$(grep -c '^> 4010' "$T/w/c.err")" 2 &&
	    expect "a record at the cap" "$(grep -c '^> 4110' "$T/w/c.err")" 1
}

t_lines_both_ways() {
	seq 1 3000 | sed 's/^/listener line /' > "$T/w/a"
	seq 1 2000 | sed 's/^/connector line /' > "$T/w/b"
	clean_session "$T/w/a" "$T/w/b" &&
	    has_line "$T/w/l.err" "secchat: handshake done" &&
	    has_line "$T/w/c.err" "secchat: handshake done"
}

t_bulk_file() {
	head -c 20000000 /dev/urandom > "$T/w/rand"
	clean_session "$T/w/rand" /dev/null -b -q || return 1
	expect sha256 "$(sha256sum < "$T/w/c.out")" "$(sha256sum < "$T/w/rand")"
}

t_line_mode_file() {
	head -c 20000000 /dev/urandom > "$T/w/rand"
	clean_session /dev/null "$T/w/rand" -q || return 1
	expect sha256 "$(sha256sum < "$T/w/l.out")" "$(sha256sum < "$T/w/rand")"
}

t_last_line() {
	printf 'first\nno newline at the end' > "$T/w/a"
	printf 'crlf\r\nnul\0byte\n\n' > "$T/w/b"
	clean_session "$T/w/a" "$T/w/b"
}

t_empty() {
	clean_session /dev/null /dev/null || return 1
	# Each side: KEY 0 (0x31 bytes), CLOSE and DONE (0x11).
	[ ! -s "$T/w/l.out" ] && [ ! -s "$T/w/c.out" ] &&
	    expect "records seen" "$(grep -c '^[<>] ' "$T/w/l.err")" 6 &&
	    expect "KEY records" "$(grep -c '^[<>] 0031' "$T/w/l.err")" 2 &&
	    expect "CLOSE and DONE" "$(grep -c '^[<>] 0011' "$T/w/l.err")" 4 &&
	    has_line "$T/w/l.err" "secchat: sent 3 records (0 bytes), received 3 records (0 bytes), rekeys 0 sent, 0 received" || return 1
	# One byte is "1 byte", not "1 bytes".
	printf x > "$T/w/x"
	rm -f "$T/w/l.err"	# or wait_port may read the last listener's
	clean_session "$T/w/x" /dev/null &&
	    grep -q '^secchat: sent 3 records (0 bytes), received 4 records (1 byte), ' "$T/w/c.err"
}

t_long_line() {
	{ head -c 100000 /dev/zero | tr '\0' 'x'; echo; } > "$T/w/a"
	clean_session "$T/w/a" /dev/null || return 1
	# 100001 bytes: six full records of 16384 and one of 1697, between
	# KEY 0 and CLOSE, DONE.
	expect "records sent" "$(grep -c '^> ' "$T/w/l.err")" 10 &&
	    expect "full records" "$(grep -c '^> 4011' "$T/w/l.err")" 6 &&
	    expect "last DATA" "$(grep -c '^> 06b2' "$T/w/l.err")" 1
}

t_ipv6() {
	seq 1 100 > "$T/w/a"
	listen l "$T/w/a" $SC -6 ::1 0 || return 1
	dial c /dev/null $SC -6 ::1 "$PORT"
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/a" "$T/w/c.out" &&
	    grep -q '^secchat: connected to ::1 port' "$T/w/c.err"
}

t_ipv6_brackets() {	# "[::1]", as written in URLs, on both sides
	seq 1 10 > "$T/w/a"
	listen l "$T/w/a" $SC '[::1]' 0 || return 1
	dial c /dev/null $SC '[::1]' "$PORT"
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/a" "$T/w/c.out" &&
	    grep -q '^secchat: listening on ::1 port' "$T/w/l.err"
}

t_wildcard_v4_and_v6() {	# no host: one listener takes both families
	echo hello > "$T/w/a"
	listen l "$T/w/a" $SC -k -m 1 0 || return 1
	dial c /dev/null $SC 127.0.0.1 "$PORT"
	expect "IPv4 status" "$CRC" 0 && same "$T/w/a" "$T/w/c.out" || return 1
	dial c /dev/null $SC ::1 "$PORT"
	expect "IPv6 status" "$CRC" 0
}

t_wrong_password() {
	echo secret > "$T/w/a"
	listen l "$T/w/a" $SC 127.0.0.1 0 || return 1
	dial c "$T/w/a" -i 1000 -p "$T/pf.wrong" 127.0.0.1 "$PORT"
	reap
	local msg="wrong password, or the connection was tampered with"
	expect "listener status" "$LRC" 3 && expect "connector status" "$CRC" 3 &&
	    peer_line "$T/w/l.err" "$msg" && has_line "$T/w/c.err" "secchat: $msg" &&
	    [ ! -s "$T/w/l.out" ] && [ ! -s "$T/w/c.out" ]
}

t_rekey_by_count() {
	seq 1 2000 > "$T/w/a"
	clean_session "$T/w/a" /dev/null -r 1 || return 1
	# Each of the 2000 DATA records is followed by a REKEY (0x35 bytes);
	# the receiver rotates its receive keys (KEY, 0x31) as they are used.
	expect "REKEY records" "$(grep -c '^> 0035' "$T/w/l.err")" 2000 &&
	    expect "CLOSE and DONE" "$(grep -c '^> 0011' "$T/w/l.err")" 2 &&
	    has_line "$T/w/l.err" "secchat: rekeyed sending key (epoch 2000)" &&
	    has_line "$T/w/c.err" "secchat: peer rekeyed (epoch 2000)" &&
	    has_line "$T/w/c.err" "secchat: announced receive key 1" &&
	    expect "KEYs" "$(grep -c '^> 0031' "$T/w/c.err")" \
	    "$(grep -c '^secchat: announced receive key' "$T/w/c.err")"
}

t_rekey_by_time() {
	listen l /dev/null $SC -r 0 -R 1 127.0.0.1 0 || return 1
	{ for i in 1 2 3 4 5 6; do echo "tick $i"; sleep 0.5; done; } |
	    timeout 30 $SECCHAT -v $SC -r 0 -R 1 127.0.0.1 "$PORT" \
	    > "$T/w/c.out" 2> "$T/w/c.err"
	CRC=$?
	reap
	local n
	n=$(grep -c '^secchat: rekeyed sending key' "$T/w/c.err")
	expect "connector status" "$CRC" 0 && expect "listener status" "$LRC" 0 &&
	    [ "$n" -ge 2 ] && [ "$n" -le 4 ] &&
	    expect "lines" "$(grep -c '^tick' "$T/w/l.out")" 6 &&
	    has_line "$T/w/l.err" "secchat: peer rekeyed (epoch $n)"
}

t_keep_listening() {
	echo "to whoever knows" > "$T/w/a"
	listen l "$T/w/a" $SC -k -m 1 127.0.0.1 0 || return 1
	dial c1 /dev/null -i 1000 -p "$T/pf.wrong" 127.0.0.1 "$PORT"
	expect "first connector" "$CRC" 3 || return 1
	echo "from the second" > "$T/w/b"
	dial c2 "$T/w/b" $SC 127.0.0.1 "$PORT"
	expect "second connector" "$CRC" 0 &&
	    has_line "$T/w/l.out" "from the second" &&
	    expect "handshakes done" "$(grep -c 'handshake done' "$T/w/l.err")" 1 &&
	    kill -0 "$LPID"
}

t_not_secchat_client() {	# logged; a lone listener goes on listening
	echo "for the real one" > "$T/w/a"
	listen l "$T/w/a" $SC 127.0.0.1 0 || return 1
	printf 'GET / HTTP/1.0\r\n\r\n' |
	    timeout 10 nc 127.0.0.1 "$PORT" > /dev/null 2>&1
	wait_number ignored "$T/w/l.err" "$LPID" \
	    'secchat: 127.0.0.1 port [0-9]*: \(peer is not speaking secchat.3\)' ||
	    return 1
	dial c /dev/null $SC 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/a" "$T/w/c.out"
}

# fake_server HEX [ARGS]: a server that greets with the bytes HEX; a connector
# (with ARGS) dials it, and sets CRC.
fake_server() {
	python3 - "$T/w/port" "$1" <<-'EOF' &
	import socket, sys
	s = socket.socket()
	s.bind(("127.0.0.1", 0)); s.listen(1)
	open(sys.argv[1], "w").write(str(s.getsockname()[1]))
	s.settimeout(20)
	c, _ = s.accept()
	c.sendall(bytes.fromhex(sys.argv[2]))
	c.recv(1)
	EOF
	PIDS="$PIDS $!"
	local i
	for i in $(seq 100); do [ -s "$T/w/port" ] && break; sleep 0.05; done
	dial c /dev/null $SC "${@:2}" 127.0.0.1 "$(cat "$T/w/port")"
}

t_other_version() {	# secchat/1 and secchat/2 listeners are named as such
	fake_server "5345434348415401$(printf '%0170d' 0)"
	expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: peer speaks secchat/1, not secchat/3" ||
	    return 1
	rm -f "$T/w/port"
	fake_server "5345434348415402000003e8$(printf '%0162d' 0)"
	expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: peer speaks secchat/2, not secchat/3"
}

t_not_secchat_server() {
	fake_server "$(printf 'HTTP/1.0 400 Bad Request\r\n\r\n' | od -An -tx1 | tr -d ' \n')"
	expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: peer is not speaking secchat/3"
}

t_no_greeting() {	# a listener that accepts and says nothing: busy, or not secchat
	fake_server "" -w 1
	expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: no secchat greeting from 127.0.0.1 port $(cat "$T/w/port") within 1 s: listener busy, or not secchat"
}

t_usage() {
	local args
	for args in "" "-l" "host" "-k host 1" "-i 999 -l 0" "-i 10000001 -l 0" \
	    "-r -1 h 1" "-w 0 h 1" "-w x h 1" "-Z h 1" "-4 -6 h 1" "a b c" \
	    "-l a b c" "-l -m 2 0" "-l -k -m 0 0" "-l -k -m 1001 0"; do
		$SECCHAT $args > "$T/w/out" 2> "$T/w/err" < /dev/null
		expect "status of 'secchat $args'" "$?" 2 &&
		    grep -q '^usage: secchat' "$T/w/err" || return 1
	done
	# getopt's complaints too name secchat, whatever argv[0] says.
	$SECCHAT -Z h 1 2> "$T/w/err"
	has_line "$T/w/err" "secchat: unknown option -Z" || return 1
	$SECCHAT -w 2> "$T/w/err"
	has_line "$T/w/err" "secchat: -w needs an argument" || return 1
	$SECCHAT --bogus h 1 2> "$T/w/err"
	has_line "$T/w/err" "secchat: unknown option --bogus" || return 1
	$SECCHAT -V > "$T/w/out" 2>&1
	expect "-V status" "$?" 0 &&
	    grep -qx 'secchat [0-9][0-9.]*' "$T/w/out" || return 1
	$SECCHAT --help > "$T/w/out" 2>&1
	expect "--help status" "$?" 0 && grep -q '^usage: secchat' "$T/w/out" &&
	    grep -qx '  -w timeout .*' "$T/w/out" || return 1
	$SECCHAT -h > "$T/w/out" 2>&1
	expect "-h status" "$?" 0 && grep -q '^usage: secchat' "$T/w/out"
}

t_refused() {
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	dial c /dev/null $SC 127.0.0.1 "$port"
	expect status "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: connect to 127.0.0.1 port $port: Connection refused" ||
	    return 1
	# A name: the message says which address was tried.
	grep -q '^127\.0\.0\.1[[:space:]].*localhost' /etc/hosts || return 0
	dial c /dev/null $SC -4 localhost "$port"
	expect status "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: connect to localhost (127.0.0.1) port $port: Connection refused"
}

t_resolve() {
	dial c /dev/null $SC no-such-host.invalid 80
	expect status "$CRC" 1 &&
	    grep -q '^secchat: no-such-host.invalid port 80: ' "$T/w/c.err"
}

t_passfile_errors() {
	dial c /dev/null -p "$T/w/missing" 127.0.0.1 1
	expect "missing file" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: $T/w/missing: No such file or directory" ||
	    return 1
	printf '\n' > "$T/w/empty"; chmod 600 "$T/w/empty"
	dial c /dev/null -p "$T/w/empty" 127.0.0.1 1
	expect "empty password" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: $T/w/empty: the password is empty" ||
	    return 1
	# Connect first, then ask: the question comes after the greeting.
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	setsid timeout 10 $SECCHAT 127.0.0.1 "$PORT" < /dev/null > /dev/null \
	    2> "$T/w/c.err"
	expect "no terminal" "$?" 1 &&
	    has_line "$T/w/c.err" "secchat: no terminal to ask for the password; use -p passfile"
}

t_code_parse() {	# -g -p: a code file that is not a code, of any size
	local f=$T/w/code
	{ printf x; head -c 4095 /dev/zero | tr '\0' 7; } > "$f"
	chmod 600 "$f"
	dial c /dev/null -g -p "$f" 127.0.0.1 1
	expect "x then 4,095 digits" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: a one-time code is 12 digits" ||
	    return 1
	printf '1234-5678-9012-3\n' > "$f"
	dial c /dev/null -g -p "$f" 127.0.0.1 1
	expect "13 digits" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: a one-time code is 12 digits" ||
	    return 1
	printf '1234 5678-901a\n' > "$f"
	dial c /dev/null -g -p "$f" 127.0.0.1 1
	expect "a letter" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: a one-time code is 12 digits"
}

t_passfile_newlines() {	# one trailing \n or \r\n goes, nothing else
	printf 'pw\r\n' > "$T/w/crlf"; printf 'pw' > "$T/w/bare"
	printf 'pw\n\n' > "$T/w/two"; chmod 600 "$T"/w/crlf "$T"/w/bare "$T"/w/two
	echo hi > "$T/w/a"
	listen l "$T/w/a" -i 1000 -p "$T/w/crlf" -k -m 1 127.0.0.1 0 || return 1
	dial c /dev/null -i 1000 -p "$T/w/bare" 127.0.0.1 "$PORT"
	expect "crlf vs bare" "$CRC" 0 || return 1
	dial c /dev/null -i 1000 -p "$T/w/two" 127.0.0.1 "$PORT"
	expect "two newlines" "$CRC" 3
}

t_passfile_mode_refused() {	# group- or world-readable: exit 1, the fix named
	local m
	for m in 640 604 660; do
		printf 'pw\n' > "$T/w/open"; chmod "$m" "$T/w/open"
		dial c /dev/null -p "$T/w/open" 127.0.0.1 1
		expect "mode $m" "$CRC" 1 &&
		    has_line "$T/w/c.err" "secchat: $T/w/open is accessible by group or others (mode 0$m); fix it with: chmod 600 $T/w/open" ||
		    return 1
		grep -q 'connect' "$T/w/c.err" && { echo "mode $m: it connected"; return 1; }
	done
	chmod 600 "$T/w/open"
	dial c /dev/null -p "$T/w/open" 127.0.0.1 1
	grep -q '^secchat: connect to 127.0.0.1 port 1' "$T/w/c.err"
}

t_handshake_timeout() {	# a connector that says nothing: closed, logged
	echo "after the silent one" > "$T/w/a"
	listen l "$T/w/a" $SC -w 1 127.0.0.1 0 || return 1
	timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; sleep 5" &
	PIDS="$PIDS $!"
	wait_number ignored "$T/w/l.err" "$LPID" \
	    'secchat: 127.0.0.1 port [0-9]*: \(timed out during handshake\)' ||
	    return 1
	dial c /dev/null $SC 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/a" "$T/w/c.out"
}

t_idle_timeout() {
	listen l /dev/null $SC -w 1 127.0.0.1 0 || return 1
	sleep 3 | timeout 10 $SECCHAT $SC 127.0.0.1 "$PORT" > /dev/null 2>&1 &
	PIDS="$PIDS $!"
	reap
	expect "listener status" "$LRC" 1 &&
	    has_line "$T/w/l.err" "secchat: timed out: no progress for 1 seconds"
}

t_truncated() {	# the sender dies: the receiver must not call it complete
	listen l /dev/null $SC -q 127.0.0.1 0 || return 1
	{ echo "partial"; sleep 10; } |
	    timeout 20 $SECCHAT $SC -q 127.0.0.1 "$PORT" > /dev/null 2>&1 &
	local cpid=$!
	PIDS="$PIDS $cpid"
	local i
	for i in $(seq 100); do
		grep -q partial "$T/w/l.out" && break; sleep 0.05
	done
	kill -TERM "$cpid"
	reap
	expect "listener status" "$LRC" 1 &&
	    has_line "$T/w/l.err" "secchat: connection closed before CLOSE: stream truncated" &&
	    has_line "$T/w/l.out" "partial"
}

# ---------------------------------------------------------------------------
# Serving many (-k, -m above 1).

t_serving_kat() { kat serving serving.txt; }

t_many_lockout() {	# 50 idle + 5 dribbling sockets, 55 addresses: no lock-out
	listen l /dev/null $SC -q -k 127.0.0.1 0 || return 1
	timeout 60 python3 tests/flood.py --seconds 40 127.0.0.1 "$PORT" \
	    > "$T/w/flood" 2>&1 &
	local fpid=$! i start ms in=0 slow=0
	PIDS="$PIDS $fpid"
	wait_number HELD "$T/w/flood" "$fpid" 'flood: holding \([0-9]*\)' ||
	    return 1
	for i in $(seq 10); do
		echo "legit $i" > "$T/w/in"
		start=$(date +%s%N)
		timeout 10 $SECCHAT $SC -q -w 3 127.0.0.1 "$PORT" < "$T/w/in" \
		    > /dev/null 2> "$T/w/c$i.err" && in=$((in + 1))
		ms=$((($(date +%s%N) - start) / 1000000))
		echo "connector $i: $ms ms"
		[ "$ms" -le 3000 ] || slow=$((slow + 1))
	done
	kill "$fpid"
	wait "$fpid"
	cat "$T/w/flood"
	for i in $(seq 100); do
		[ "$(grep -c '^legit ' "$T/w/l.out")" -ge 10 ] && break
		sleep 0.05
	done
	expect "attackers" "$HELD" 55 && expect "connectors in" "$in" 10 &&
	    expect "connectors slower than 3 s" "$slow" 0 &&
	    ! grep ' port [0-9]*: closed: the oldest of ' "$T/w/l.err" &&
	    for i in $(seq 10); do has_line "$T/w/l.out" "legit $i" || return 1; done
}

t_many_guessing() {	# penalised from one address, another still gets in
	# -k -m 1 (issue 19: it had none) as -k: 3 free, then 1 s, 2 s, ...
	listen one /dev/null $SC -q -k -m 1 127.0.0.1 0 || return 1
	python3 tests/guess.py --attempts 200 --seconds 4 127.0.0.1 "$PORT" \
	    > "$T/w/free" || return 1
	listen l /dev/null $SC -q -k 127.0.0.1 0 || return 1
	python3 tests/guess.py --attempts 20 --seconds 4 127.0.0.1 "$PORT" \
	    > "$T/w/penalised" || return 1
	cat "$T/w/free" "$T/w/penalised"
	local free pen
	free=$(sed -n 's/.* tested \([0-9]*\) .*/\1/p' "$T/w/free")
	pen=$(sed -n 's/.* tested \([0-9]*\) .*/\1/p' "$T/w/penalised")
	echo hello > "$T/w/in"
	dial c "$T/w/in" $SC 127.0.0.1 "$PORT"
	expect "connector from 127.0.0.1" "$CRC" 0 &&
	    [ "$pen" -ge 4 ] && [ "$pen" -le 6 ] && [ "$free" -ge 4 ] &&
	    [ "$free" -le 6 ] &&
	    grep -qx "secchat: 127.0.0.9 port [0-9]*: $WRONG" "$T/w/one.err" &&
	    wait_number X "$T/w/l.out" "$LPID" '\(hello\)' &&
	    grep -qx "secchat: 127.0.0.9 port [0-9]*: $WRONG" "$T/w/l.err" &&
	    grep -qx "secchat: 127.0.0.9 port [0-9]*: refused for [0-9]* s more after [45] failed handshakes" "$T/w/l.err" &&
	    has_line "$T/w/l.err" "secchat: 127.0.0.9: over 3 lines like this a minute, counting the rest"
}

t_many_burst() {	# 20 at once from one address: 4 handshakes, the rest wait
	listen l /dev/null $SC -q -k 127.0.0.1 0 || return 1
	local i pids="" ok=0
	for i in $(seq 20); do
		echo "burst $i" > "$T/w/in$i"
		timeout 20 $SECCHAT $SC -q 127.0.0.1 "$PORT" < "$T/w/in$i" \
		    > /dev/null 2> "$T/w/c$i.err" &
		pids="$pids $!"
	done
	PIDS="$PIDS $pids"
	for i in $pids; do wait "$i" && ok=$((ok + 1)); done
	for i in $(seq 100); do
		[ "$(grep -c '^burst ' "$T/w/l.out")" -ge 20 ] && break
		sleep 0.05
	done
	expect "connectors in" "$ok" 20 &&
	    for i in $(seq 20); do has_line "$T/w/l.out" "burst $i" || return 1; done
}

t_many_hex() {	# hex lines of two sessions at once, each whole on stderr
	listen l /dev/null $SC -k 127.0.0.1 0 || return 1
	local n
	{ head -c 16000 /dev/zero | tr '\0' x; echo; } > "$T/w/long"
	for n in $(seq 60); do cat "$T/w/long"; echo "short $n"; done > "$T/w/in"
	for n in a b; do
		timeout 20 $SECCHAT $SC -q 127.0.0.1 "$PORT" < "$T/w/in" \
		    > /dev/null 2> "$T/w/$n.err" &
		PIDS="$PIDS $!"
	done
	for n in $(seq 200); do
		[ "$(grep -c '^short' "$T/w/l.out")" -ge 120 ] && break
		sleep 0.05
	done
	python3 - "$T/w/l.err" <<-'EOF'
	import re, sys
	bad = n = 0
	for line in open(sys.argv[1]):
	    line = line.rstrip("\n")
	    if line.startswith("secchat: "):
	        continue
	    m = re.fullmatch(r"[<>] ([0-9a-f]{4})([0-9a-f]*)", line)
	    n += 1
	    if not m or len(m.group(2)) != 2 * int(m.group(1), 16):
	        bad += 1
	print(f"{n} hex lines, {bad} not whole")
	sys.exit(1 if bad or n < 240 else 0)
	EOF
}

t_many_shippers() {	# two endless shippers and a short one: every line whole
	listen l /dev/null $SC -q -k 127.0.0.1 0 || return 1
	local n
	for n in A B; do
		python3 tests/lines.py gen $n 3000 --hold 30 |
		    timeout 40 $SECCHAT $SC -q 127.0.0.1 "$PORT" \
		    > /dev/null 2> "$T/w/$n.err" &
		PIDS="$PIDS $!"
	done
	python3 tests/lines.py gen C 500 |
	    timeout 20 $SECCHAT $SC -q 127.0.0.1 "$PORT" > /dev/null 2> "$T/w/C.err"
	expect "short shipper" "$?" 0 || return 1
	for n in $(seq 200); do
		[ "$(grep -c '^[AB] ' "$T/w/l.out")" -ge 6000 ] && break
		sleep 0.1
	done
	python3 tests/lines.py check "$T/w/l.out" A:3000 B:3000 C:500
}

# ---------------------------------------------------------------------------
# -e: a command per session.

UNREAD="the command stopped reading: the peer's data was not all delivered"
UNCONFIRMED="connection closed before DONE: peer did not confirm receipt"

t_exec_files() {	# -k -e: one file per session, each whole
	listen l /dev/null $SC -q -k -e "cat > '$T/w/upload.'\$SECCHAT_SESSION" \
	    127.0.0.1 0 || return 1
	local i
	for i in 1 2 3; do
		head -c $((i * 100000)) /dev/urandom > "$T/w/in$i"
		dial c$i "$T/w/in$i" $SC -q -b 127.0.0.1 "$PORT"
		expect "connector $i" "$CRC" 0 || return 1
	done
	for i in $(seq 100); do
		[ "$(grep -c 'command exited with status 0$' "$T/w/l.err")" = 3 ] &&
		    break
		sleep 0.05
	done
	for i in 1 2 3; do same "$T/w/in$i" "$T/w/upload.$i" || return 1; done
	expect "exits logged" "$(grep -c "^secchat: 127.0.0.1 port [0-9]*: command exited with status 0$" "$T/w/l.err")" 3
}

t_exec_env() {	# the command knows its peer and its number; connector -e too
	listen l /dev/null $SC -e "echo \"\$SECCHAT_PEER_ADDR \$SECCHAT_SESSION\"; cat > '$T/w/fromc'" \
	    127.0.0.1 0 || return 1
	# Its stdout closed, the connector's command still reads: a half-close.
	dial c /dev/null $SC -e "echo \$SECCHAT_PEER_PORT; exec >&-; cat > '$T/w/got'" \
	    127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    has_line "$T/w/got" "127.0.0.1 1" && has_line "$T/w/fromc" "$PORT" &&
	    has_line "$T/w/l.err" "secchat: command exited with status 0" &&
	    [ ! -s "$T/w/c.out" ] && [ ! -s "$T/w/l.out" ]
}

t_exec_early() {	# the command exits after one line: the rest is not confirmed
	seq 1 200000 > "$T/w/a"
	listen l /dev/null $SC -q -e 'head -n 1; echo done' 127.0.0.1 0 ||
	    return 1
	dial c "$T/w/a" $SC -q 127.0.0.1 "$PORT"
	reap
	printf '1\ndone\n' > "$T/w/want"
	expect "listener status" "$LRC" 1 && expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/l.err" "secchat: $UNREAD" &&
	    has_line "$T/w/l.err" "secchat: command exited with status 0" &&
	    has_line "$T/w/c.err" "secchat: $UNCONFIRMED" &&
	    same "$T/w/want" "$T/w/c.out"
}

t_exec_reads_nothing() {	# a command that never reads: its output still goes
	head -c 2000000 /dev/urandom > "$T/w/a"
	listen l /dev/null $SC -q -e 'echo hello' 127.0.0.1 0 || return 1
	dial c "$T/w/a" $SC -q -b 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 1 && expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/c.out" "hello" &&
	    has_line "$T/w/l.err" "secchat: $UNREAD" &&
	    has_line "$T/w/c.err" "secchat: $UNCONFIRMED" || return 1
	# With nothing to read, nothing is lost: a clean end.
	listen l /dev/null $SC -q -e 'echo hello' 127.0.0.1 0 || return 1
	dial c /dev/null $SC -q 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    has_line "$T/w/c.out" "hello"
}

t_exec_signal() {	# killed by a signal: no CLOSE, the peer sees truncation
	listen l /dev/null $SC -q -e 'echo partial; kill -9 $$' 127.0.0.1 0 ||
	    return 1
	dial c <(sleep 2) $SC -q 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 1 && expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/l.err" "secchat: command killed by signal 9" &&
	    has_line "$T/w/c.err" "secchat: $TRUNC" &&
	    has_line "$T/w/c.out" "partial"
}

t_exec_tunnel() {	# the README's tunnel: -b -e 'nc HOST PORT' to a local service
	python3 - "$T/w/eport" <<-'EOF' &
	import socket, sys
	s = socket.socket()
	s.bind(("127.0.0.1", 0)); s.listen(1)
	open(sys.argv[1], "w").write(str(s.getsockname()[1]))
	s.settimeout(20)
	c, _ = s.accept()
	while True:
	    b = c.recv(65536)
	    if not b:
	        break
	    c.sendall(b)
	c.close()
	EOF
	PIDS="$PIDS $!"
	local i
	for i in $(seq 100); do [ -s "$T/w/eport" ] && break; sleep 0.05; done
	listen l /dev/null $SC -q -k -b -e "nc -N 127.0.0.1 $(cat "$T/w/eport")" \
	    127.0.0.1 0 || return 1
	head -c 300000 /dev/urandom > "$T/w/a"
	dial c "$T/w/a" $SC -q -b 127.0.0.1 "$PORT"
	expect "connector status" "$CRC" 0 && same "$T/w/a" "$T/w/c.out"
}

t_exec_wrong_password() {	# the command never starts before the handshake
	listen l /dev/null $SC -q -k -e "touch '$T/w/started.'\$SECCHAT_SESSION" \
	    127.0.0.1 0 || return 1
	dial bad /dev/null -i 1000 -p "$T/pf.wrong" -q 127.0.0.1 "$PORT"
	expect "wrong password" "$CRC" 3 || return 1
	dial c /dev/null $SC -q 127.0.0.1 "$PORT"
	expect "right password" "$CRC" 0 && [ -e "$T/w/started.2" ] &&
	    [ ! -e "$T/w/started.1" ]
}

# ---------------------------------------------------------------------------
# The sandbox and the environment.

# quiet_fifo NAME [SECONDS]: a FIFO that gives nothing for SECONDS (10),
# then EOF.
quiet_fifo() {
	mkfifo "$T/w/$1"
	sleep "${2:-10}" > "$T/w/$1" &
	PIDS="$PIDS $!"
}

# sandboxed_attempt ROLE: the ROLE (l, c or k for a -k listener) tries a
# forbidden call once the handshake is done and the peer's KEY 0 read:
# SIGSYS, and the peer reports the stream truncated.
sandboxed_attempt() {
	local role=$1 hooked="env -u SECCHAT_NO_SANDBOX SECCHAT_TEST_HOOK=forbidden $HOOKS"
	local lbin=$SECCHAT cbin=$SECCHAT k=
	case $role in
	l) lbin=$hooked ;; c) cbin=$hooked ;; k) lbin=$hooked k="-k -m 1" ;;
	f) lbin=$hooked k=-k ;;
	esac
	# Neither side sends more than its KEY 0 for a while: unread data would
	# make the kernel answer the death with a reset, and a CLOSE sent
	# first would turn the truncation into a missing DONE.
	quiet_fifo lq 3
	quiet_fifo cq 3
	SECCHAT=$lbin listen l "$T/w/lq" $SC $k 127.0.0.1 0 || return 1
	SECCHAT=$cbin dial c "$T/w/cq" $SC 127.0.0.1 "$PORT"
	if [ "$role" = f ]; then	# the session's child died, not the listener
		# (The child reads no stdin: its CLOSE may be out before it dies.)
		kill -0 "$LPID" || { echo "the listener died"; return 1; }
		expect "connector status" "$CRC" 1 &&
		    grep -Eqx 'secchat: connection closed before (CLOSE: stream truncated|DONE: peer did not confirm receipt)' "$T/w/c.err"
		return
	fi
	reap
	local dead=$CRC peer=l survived=$LRC
	[ "$role" = c ] || dead=$LRC peer=c survived=$CRC
	expect "status of the one that tried" "$dead" 159 &&	# 128 + SIGSYS
	    expect "peer status" "$survived" 1 &&
	    has_line "$T/w/$peer.err" "secchat: connection closed before CLOSE: stream truncated"
}
t_sandbox_kills_connector() { sandboxed_attempt c; }
t_sandbox_kills_listener() { sandboxed_attempt l; }
t_sandbox_kills_k_listener() { sandboxed_attempt k; }
t_sandbox_kills_session_child() { sandboxed_attempt f; }

t_sandbox_session_child() {	# serving many: each session's child is filtered
	local SECCHAT="env -u SECCHAT_NO_SANDBOX $HOOKS" p k
	quiet_fifo cq
	listen l /dev/null $SC -k 127.0.0.1 0 || return 1
	timeout 20 $SECCHAT $SC 127.0.0.1 "$PORT" < "$T/w/cq" \
	    > "$T/w/c.out" 2> "$T/w/c.err" &
	PIDS="$PIDS $!"
	wait_number X "$T/w/l.err" "$LPID" \
	    'secchat: .*: announced receive key \(0\)' || return 1
	p=$(child "$LPID")
	k=$(pgrep -P "$p" | head -n 1)
	grep -qx 'Seccomp:	2' "/proc/$k/status" &&
	    grep -qx 'NoNewPrivs:	1' "/proc/$k/status"
}

t_sandbox_debug_switch() {	# SECCHAT_NO_SANDBOX: the same attempt succeeds
	seq 1 5 > "$T/w/a"
	listen l "$T/w/a" $SC 127.0.0.1 0 || return 1
	SECCHAT="env SECCHAT_NO_SANDBOX=1 SECCHAT_TEST_HOOK=forbidden $HOOKS" \
	    dial c "$T/w/a" $SC 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    has_line "$T/w/c.err" "secchat: warning: SECCHAT_NO_SANDBOX is set: no syscall sandbox (for debugging only)"
}

t_sandbox_status() {	# the kernel's view: filter mode, no new privileges
	local SECCHAT="env -u SECCHAT_NO_SANDBOX $HOOKS" p cpid
	listen l /dev/null $SC -k -m 1 127.0.0.1 0 || return 1
	p=$(child "$LPID")
	grep -qx 'Seccomp:	2' "/proc/$p/status" || { echo "-k -m 1 listener: no filter"; return 1; }
	quiet_fifo cq
	timeout 20 $SECCHAT $SC -v 127.0.0.1 "$PORT" < "$T/w/cq" \
	    > "$T/w/c.out" 2> "$T/w/c.err" &
	cpid=$!
	PIDS="$PIDS $cpid"
	wait_number X "$T/w/c.err" "$cpid" 'secchat: \(handshake\) done' || return 1
	p=$(child "$cpid")
	grep -qx 'Seccomp:	2' "/proc/$p/status" &&
	    grep -qx 'NoNewPrivs:	1' "/proc/$p/status"
}

t_env_cleared() {	# libcrypto starts without OPENSSL_*, the resolver without its
	local clean dirty caps
	clean=$(env -i SECCHAT_TEST_HOOK=startup KEEP=me "$HOOKS")
	dirty=$(env -i SECCHAT_TEST_HOOK=startup KEEP=me OPENSSL_ia32cap=0:0 \
	    OPENSSL_CONF=/nonexistent OPENSSL_MODULES=/tmp OPENSSL_ENGINES=/tmp \
	    RES_OPTIONS=debug LOCALDOMAIN=example HOSTALIASES=/tmp/aliases \
	    RESOLV_HOST_CONF=/tmp/host.conf "$HOOKS")
	expect "what the program starts with" "$dirty" "$clean" || return 1
	printf '%s\n' "$dirty" | sed 1d | sort > "$T/w/env"
	printf 'KEEP=me\nSECCHAT_TEST_HOOK=startup\n' > "$T/w/env.want"
	same "$T/w/env" "$T/w/env.want" || return 1
	# With AES-NI in the CPU, libcrypto uses it (bit 57 of the vector).
	grep -qw aes /proc/cpuinfo || return 0
	caps=$(printf '%s\n' "$dirty" | sed -n 's/^OPENSSL_ia32cap=\(0x[0-9a-f]*\):.*/\1/p')
	expect "AES-NI bit of $caps" "$(( (caps >> 57) & 1 ))" 1
}

# ---------------------------------------------------------------------------
# Secrets in memory: tests/secchat-hooks with SECCHAT_TEST_HOOK=secrets
# prints w and every secret, key and IV it sets; tests/memscan.py looks for
# them in the process.  Reading /proc/PID/mem of a process that is not
# dumpable takes root.

SECRETS="env -u SECCHAT_NO_SANDBOX SECCHAT_TEST_HOOK=secrets $HOOKS"

# shown NAME KIND: the values of KIND (w, secret, key, iv) NAME printed.
# (A session's child of a listener serving many prefixes its peer's address.)
shown() { sed -n "s/^secchat: \(.*: \)\{0,1\}test: $2 \([0-9a-f]*\)\$/\2/p" "$T/w/$1.err"; }

# as_absent VALUE...: memscan arguments.
as_absent() { local v; for v in "$@"; do printf -- '--absent %s ' "$v"; done; }

text_hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }

can_read_memory() {
	[ "$(id -u)" = 0 ] && return 0
	echo "skipped: reading a non-dumpable process's memory needs root"
	return 1
}

t_mem_serving_many() {	# the parent never had the keys; the lines it merged are wiped
	can_read_memory || return 0
	printf 'my bank PIN is 2468\n' > "$T/w/b"
	SECCHAT=$SECRETS listen l /dev/null $SC -k -r 1 127.0.0.1 0 || return 1
	dial c "$T/w/b" $SC -r 1 127.0.0.1 "$PORT"
	expect "connector status" "$CRC" 0 || return 1
	local i
	# The child's last line, and so all of its lines, came through the parent.
	wait_number X "$T/w/l.err" "$LPID" 'secchat: .*: \(sent\) [0-9]* records.*' &&
	    same "$T/w/b" "$T/w/l.out" &&	# sends nothing: rx 0 and 1, tx 0
	    expect "secrets shown" "$(shown l secret | wc -l)" 3 || return 1
	python3 tests/memscan.py "$(child "$LPID")" --present "$(shown l w | head -n 1)" \
	    $(as_absent $(shown l secret) $(shown l key) $(shown l iv) \
	    "$(text_hex 'my bank PIN is 2468')")
}

t_mem_idle_k_listener() {	# after a session: no plaintext, no key left
	can_read_memory || return 0
	printf 'listener says 1357\n' > "$T/w/a"
	printf 'my bank PIN is 2468\n' > "$T/w/b"
	SECCHAT=$SECRETS listen l "$T/w/a" $SC -k -m 1 -r 1 127.0.0.1 0 || return 1
	dial c "$T/w/b" $SC -r 1 127.0.0.1 "$PORT"
	expect "connector status" "$CRC" 0 && same "$T/w/b" "$T/w/l.out" || return 1
	local i
	for i in $(seq 100); do	# the listener is back at accept()
		[ "$(grep -c '^secchat: test: accepting$' "$T/w/l.err")" -ge 2 ] && break
		sleep 0.05
	done
	expect "secrets shown" "$(shown l secret | wc -l)" 4 || return 1
	# w stays for the next handshake: the scan must find it.
	python3 tests/memscan.py "$(child "$LPID")" --present "$(shown l w)" \
	    $(as_absent $(shown l secret) $(shown l key) $(shown l iv) \
	    "$(text_hex 'my bank PIN is 2468')" "$(text_hex 'listener says 1357')")
}

t_mem_no_w_after_handshake() {	# a listener without -k: w goes at once
	can_read_memory || return 0
	quiet_fifo lq
	quiet_fifo cq
	SECCHAT=$SECRETS listen l "$T/w/lq" $SC 127.0.0.1 0 || return 1
	timeout 20 $SECCHAT -v $SC 127.0.0.1 "$PORT" < "$T/w/cq" > "$T/w/c.out" \
	    2> "$T/w/c.err" &
	PIDS="$PIDS $!"
	wait_number X "$T/w/l.err" "$LPID" 'secchat: \(handshake\) done' || return 1
	# The first secret shown is our sending one: still in use, so there.
	python3 tests/memscan.py "$(child "$LPID")" \
	    --present "$(shown l secret | head -n 1)" --absent "$(shown l w)"
}

t_mem_direction_done() {	# our DONE sealed: the sending keys go at once
	can_read_memory || return 0
	seq -f 'line %g of what the listener sends' 1 4000 > "$T/w/a"
	# The connector's stdout is never read, so it never sends its DONE:
	# the listener waits for it with its own direction over.
	mkfifo "$T/w/stuck"
	sleep 20 < "$T/w/stuck" &
	PIDS="$PIDS $!"
	SECCHAT=$SECRETS listen l "$T/w/a" $SC 127.0.0.1 0 || return 1
	timeout 20 $SECCHAT -v $SC 127.0.0.1 "$PORT" < /dev/null \
	    > "$T/w/stuck" 2> "$T/w/c.err" &
	PIDS="$PIDS $!"
	wait_number X "$T/w/l.err" "$LPID" 'secchat: \(handshake\) done' || return 1
	# Secrets shown: ours (sending) first, then the peer's; no rekey.
	expect "secrets shown" "$(shown l secret | wc -l)" 2 || return 1
	local i p tx
	tx=$(as_absent "$(shown l secret | head -n 1)" "$(shown l key | head -n 1)" \
	    "$(shown l iv | head -n 1)")
	p=$(child "$LPID")
	for i in $(seq 20); do	# until the DONE is sealed
		python3 tests/memscan.py "$p" $tx \
		    --present "$(shown l secret | sed -n 2p)" > "$T/w/scan" &&
		    return 0
		sleep 0.1
	done
	cat "$T/w/scan"
	return 1
}

t_mlock() {	# the pages of keys and plaintext are locked, if allowed
	local limit
	limit=$(ulimit -l)
	[ "$limit" = unlimited ] || [ "$(id -u)" = 0 ] || [ "$limit" -ge 2048 ] ||
	    { echo "skipped: RLIMIT_MEMLOCK is $limit KiB"; return 0; }
	quiet_fifo lq
	# Sanitizers turn mlock into a no-op: this looks at the real build.
	SECCHAT=$HOOKS listen l "$T/w/lq" $SC 127.0.0.1 0 || return 1
	local kb
	kb=$(sed -n 's/^VmLck:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$(child "$LPID")/status")
	# stdin's and stdout's buffers alone are 384 KiB.
	[ "${kb:-0}" -ge 384 ] || { echo "VmLck: ${kb:-?} kB"; return 1; }
}

# ---------------------------------------------------------------------------
# Through a relay that records, and can attack, what crosses the wire.

# relayed SPEC LIN CIN ARGS...: listener <- relay <- connector.
relayed() {
	local spec=$1 lin=$2 cin=$3 i
	shift 3
	listen l "$lin" $SC "$@" 127.0.0.1 0 || return 1
	timeout 40 $RELAY --log "$T/w/wire" ${spec:+--attack "$spec"} \
	    --password-file "$PF" 127.0.0.1 "$PORT" > "$T/w/relay.out" \
	    2> "$T/w/relay.err" &
	local rpid=$!
	PIDS="$PIDS $rpid"
	wait_number RPORT "$T/w/relay.out" "$rpid" 'relay port \([0-9]*\)' ||
	    return 1
	dial c "$cin" $SC "$@" 127.0.0.1 "$RPORT"
	reap
	wait "$rpid"
}

# The hex lines of FILE with prefix P, without the prefix.
hex_of() { sed -n "s/^$2 //p" "$1"; }

t_hex_matches_wire() {
	seq 1 500 | sed 's/^/from the listener /' > "$T/w/a"
	seq 1 700 | sed 's/^/from the connector /' > "$T/w/b"
	relayed "" "$T/w/a" "$T/w/b" -r 100 || return 1
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/a" "$T/w/c.out" && same "$T/w/b" "$T/w/l.out" || return 1
	hex_of "$T/w/wire" s2c > "$T/w/s2c"
	hex_of "$T/w/wire" c2s > "$T/w/c2s"
	# A REKEY follows every 100th DATA record, then come CLOSE and DONE;
	# and each KEY a side announced.
	expect "s2c records" "$(wc -l < "$T/w/s2c")" \
	    $((507 + $(grep -c '^secchat: announced' "$T/w/l.err"))) &&
	    expect "c2s records" "$(wc -l < "$T/w/c2s")" \
	    $((709 + $(grep -c '^secchat: announced' "$T/w/c.err"))) &&
	    hex_of "$T/w/l.err" '>' | same "$T/w/s2c" /dev/stdin &&
	    hex_of "$T/w/c.err" '<' | same "$T/w/s2c" /dev/stdin &&
	    hex_of "$T/w/c.err" '>' | same "$T/w/c2s" /dev/stdin &&
	    hex_of "$T/w/l.err" '<' | same "$T/w/c2s" /dev/stdin
}

# attack SPEC SIDE STATUS MESSAGE KEPT: the connector sends 20 lines
# through an attacking relay.  SIDE (l or c) must exit STATUS with
# MESSAGE, and its stdout must be the first KEPT lines the peer sent.
# Records count from 0 and record 0 is KEY 0, so line N is record N.
attack() {
	local spec=$1 side=$2 status=$3 msg=$4 kept=$5 sender
	seq 1 20 | sed 's/^/line /' > "$T/w/b"
	seq 1 20 | sed 's/^/back /' > "$T/w/a"
	# The attacked side only listens: a write of its own could race the
	# cut and fail first.  For s2c attacks the listener talks.
	if [ "$side" = c ]; then sender=$T/w/a; else sender=$T/w/b; : > "$T/w/a"; fi
	relayed "$spec" "$T/w/a" "$T/w/b" -q || true
	head -n "$kept" "$sender" > "$T/w/kept"
	expect "$side status" "$( [ "$side" = l ] && echo "$LRC" || echo "$CRC")" \
	    "$status" && has_line "$T/w/$side.err" "secchat: $msg" &&
	    same "$T/w/kept" "$T/w/$side.out"
}

AUTH="record failed authentication"
TRUNC="connection closed before CLOSE: stream truncated"
WRONG="wrong password, or the connection was tampered with"
GARBAGE=$(head -c 38 /dev/urandom | od -An -tx1 | tr -d ' \n')

t_flip_length() { attack flip:c2s:6:1 l 3 "$AUTH" 5; }
t_flip_ciphertext() { attack flip:c2s:6:4 l 3 "$AUTH" 5; }
t_flip_tag() { attack flip:c2s:6:-1 l 3 "$AUTH" 5; }
t_flip_s2c() { attack flip:s2c:8:9 c 3 "$AUTH" 7; }
t_bad_length() { attack inject:c2s:5:ffff00 l 3 "malformed record: bad length 65535" 5; }
t_drop() { attack drop:c2s:6 l 3 "$AUTH" 5; }
t_replay() { attack dup:c2s:6 l 3 "$AUTH" 6; }
t_swap() { attack swap:c2s:6 l 3 "$AUTH" 5; }
t_reflect() {	# the connector keeps quiet, so only the reflection arrives
	seq 1 20 | sed 's/^/back /' > "$T/w/a"
	relayed reflect:s2c:3 "$T/w/a" <(sleep 3) -q
	expect "listener status" "$LRC" 3 && has_line "$T/w/l.err" "secchat: $AUTH" &&
	    [ ! -s "$T/w/l.out" ]
}
t_cut_mid_record() { attack cutmid:c2s:6 l 1 "$TRUNC" 5; }
t_cut_between() { attack cut:c2s:6 l 1 "$TRUNC" 5; }
t_cut_before_close() { attack cut:c2s:21 l 1 "$TRUNC" 20; }
t_after_done() {	# c2s: KEY 0, 20 lines, CLOSE, DONE (record 22)
	attack "inject:c2s:22:0011$(printf '%034d' 0)" l 3 \
	    "malformed record: data after DONE" 20
}
t_garbage_record() { attack "inject:c2s:6:0026$GARBAGE" l 3 "$AUTH" 6; }
t_stray_byte() { attack inject:c2s:6:01 l 3 "$AUTH" 6; }
t_garbage() {	# random bytes: any clean failure, never their plaintext
	attack garbage:c2s:6:300 l 3 "$AUTH" 6 && return 0
	[ "$LRC" = 1 ] || [ "$LRC" = 3 ] || return 1
	grep -Eqx "secchat: ($AUTH|$TRUNC|malformed record: .*)" "$T/w/l.err" &&
	    same "$T/w/kept" "$T/w/l.out"
}
# hs_attack SPEC STATUS LINE [LLINE]: a handshake attack that fails before
# a password is checked: the connector exits STATUS with LINE; the lone
# listener logs LLINE about the connection, if given, and goes on listening
# (a good connector then gets in).
hs_attack() {
	local spec=$1 status=$2 msg=$3 lmsg=${4:-}
	echo "still listening" > "$T/w/a"
	listen l "$T/w/a" $SC -q 127.0.0.1 0 || return 1
	timeout 40 $RELAY --log "$T/w/wire" --attack "$spec" \
	    --password-file "$PF" 127.0.0.1 "$PORT" > "$T/w/relay.out" \
	    2> "$T/w/relay.err" &
	local rpid=$!
	PIDS="$PIDS $rpid"
	wait_number RPORT "$T/w/relay.out" "$rpid" 'relay port \([0-9]*\)' ||
	    return 1
	dial c /dev/null $SC -q 127.0.0.1 "$RPORT"
	expect "connector status" "$CRC" "$status" &&
	    has_line "$T/w/c.err" "secchat: $msg" && [ ! -s "$T/w/c.out" ] ||
	    return 1
	if [ -n "$lmsg" ]; then
		wait_number ignored "$T/w/l.err" "$LPID" \
		    "secchat: 127.0.0.1 port [0-9]*: \\($lmsg\\)" || return 1
	fi
	dial c2 /dev/null $SC -q 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 0 && expect "good connector" "$CRC" 0 &&
	    same "$T/w/a" "$T/w/c2.out"
}

t_iter_low() {
	hs_attack iter:999 1 \
	    "listener asks for 999 PBKDF2 iterations (allowed 1000 to 10000000)"
}
# A count or salt rewritten is a checked password that fails: exit 3 both.
t_iter_rewritten() { attack iter:2000 c 3 "$WRONG" 0 && peer_line "$T/w/l.err" "$WRONG"; }
t_salt_rewritten() { attack salt c 3 "$WRONG" 0 && peer_line "$T/w/l.err" "$WRONG"; }
BADPT="handshake failed: peer sent a bad point"
MALFORMED="127.0.0.1 refused our handshake as malformed"
t_pB_offcurve() { hs_attack pB:offcurve 3 "$BADPT"; }
t_pB_prefix() { hs_attack pB:badprefix 3 "$BADPT"; }
t_pB_wN() { hs_attack pB:wn 3 "$BADPT"; }
t_pA_offcurve() { hs_attack pA:offcurve 3 "$MALFORMED" "$BADPT"; }
t_pA_prefix() { hs_attack pA:badprefix 3 "$MALFORMED" "$BADPT"; }
t_pA_wM() { hs_attack pA:wm 3 "$MALFORMED" "$BADPT"; }

# ---------------------------------------------------------------------------
# Listeners under a crowd (issue 19), at the default iteration count: the
# slow step of a real connector never happens while it holds the listener.

# legit NAME SOURCE: a connector from SOURCE (tests/srcaddr.so) sends
# "NAME" to the listener at $PORT; 0 if it got in within 5 s.  ADDR: the
# listener's address (127.0.0.1).
legit() {
	echo "$1" | SECCHAT_TEST_SOURCE=$2 LD_PRELOAD=$SRCADDR ${NS_EXEC:-} \
	    timeout 5 $SECCHAT -q -p "$PF" "${ADDR:-127.0.0.1}" "$PORT" \
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

t_crowd_invalid() {	# 60 invalid-point HELLOs a second: no failure cap
	listen l /dev/null -q -k -p "$PF" 127.0.0.1 0 || return 1
	crowd_run 60 127.98.0. 127.99.0. --addresses 2000 --invalid --hold 1 &&
	    grep -q "^secchat: 127\.16\..* port [0-9]*: handshake failed: peer sent a bad point$" "$T/w/l.err"
}

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

# A refused connector is told why: penalties after guesses from its address.
t_refusal_told() {
	listen l /dev/null $SC -q -k -m 1 127.0.0.1 0 || return 1
	python3 tests/guess.py --source 127.0.0.9 --attempts 4 --seconds 5 \
	    127.0.0.1 "$PORT" || return 1
	SECCHAT_TEST_SOURCE=127.0.0.9 LD_PRELOAD=$SRCADDR \
	    dial c /dev/null $SC 127.0.0.1 "$PORT"
	expect "connector status" "$CRC" 1 &&
	    grep -qx 'secchat: 127.0.0.1 refused the connection: too many failed attempts from your address; try again in [0-9]* s' "$T/w/c.err"
}

# -g: a code is spent by its first check, right or wrong.
t_code_spent() {
	local code i
	echo "by code" > "$T/w/a"
	timeout 60 $SECCHAT -l -k -m 1 -v -g -i 1000 127.0.0.1 0 < "$T/w/a" \
	    > "$T/w/l.out" 2> "$T/w/l.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/l.err" "$LPID" || return 1
	wait_number code "$T/w/l.err" "$LPID" \
	    'secchat: one-time code \([0-9-]*\): .*' || return 1
	echo "$code" > "$T/w/code"
	chmod 600 "$T/w/code"
	# Read from a file as a code without -g: the greeting says so.
	dial c1 /dev/null -p "$T/w/code" 127.0.0.1 "$PORT"
	expect "first use" "$CRC" 0 && same "$T/w/a" "$T/w/c1.out" || return 1
	for i in $(seq 100); do
		[ "$(grep -c '^secchat: one-time code ' "$T/w/l.err")" -ge 2 ] && break
		sleep 0.05
	done
	has_line "$T/w/l.err" "secchat: the one-time code has been used; a new one:" ||
	    return 1
	dial c2 /dev/null -g -p "$T/w/code" 127.0.0.1 "$PORT"
	expect "second use" "$CRC" 3 &&
	    has_line "$T/w/c2.err" "secchat: wrong code, or the connection was tampered with; the code is spent"
}

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

# ---------------------------------------------------------------------------
# Hostile peers and faults.

# child PID: the secchat that timeout(1) PID runs.
child() { pgrep -P "$1" | head -n 1; }

# cpu_ticks PID: user + system clock ticks used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

t_silent_then_good() {
	echo "for the patient one" > "$T/w/a"
	listen l "$T/w/a" $SC -k -m 1 -w 1 127.0.0.1 0 || return 1
	timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; sleep 4" &
	PIDS="$PIDS $!"
	wait_number ignored "$T/w/l.err" "$LPID" \
	    'secchat: 127.0.0.1 port [0-9]*: \(timed out during handshake\)' ||
	    return 1
	dial c /dev/null $SC 127.0.0.1 "$PORT"
	expect "good connector" "$CRC" 0 && same "$T/w/a" "$T/w/c.out"
}

t_ten_bad_then_good() {
	echo "still here" > "$T/w/a"
	listen l "$T/w/a" $SC -k -m 1 127.0.0.1 0 || return 1
	local i
	for i in 1 2 3 4 5; do	# each from its own address: no penalty
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

t_stalled_reader() {	# the sender waits in poll, in constant memory
	head -c 100000000 /dev/urandom > "$T/w/big"
	# The receiver's reader sleeps: its pipe, buffers and socket fill up.
	timeout 60 $SECCHAT -l -v $SC -q -b 127.0.0.1 0 < /dev/null \
	    2> "$T/w/l.err" | { sleep 3; cat > "$T/w/l.out"; } &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/l.err" "$LPID" || return 1
	timeout 60 $SECCHAT $SC -q -b 127.0.0.1 "$PORT" < "$T/w/big" \
	    > /dev/null 2> "$T/w/c.err" &
	local cpid=$! spid t0 t1 rss
	PIDS="$PIDS $cpid"
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
	    [ $((SECONDS - t0)) -le 12 ] && has_line "$T/w/l.err" "secchat: $TRUNC" &&
	    has_line "$T/w/c.err" "secchat: timed out: no progress for 3 seconds" &&
	    same "$T/w/sent" "$T/w/l.out"
}

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

t_stdout_closed() {
	timeout 20 $SECCHAT $SC 127.0.0.1 1 < /dev/null >&- 2> "$T/w/c.err"
	expect status "$?" 1 && has_line "$T/w/c.err" "secchat: stdout is closed"
}

t_interrupted_sender() {	# SIGINT mid-file: no CLOSE, receiver says so
	head -c 100000000 /dev/urandom > "$T/w/big"
	listen l /dev/null $SC -q -b 127.0.0.1 0 || return 1
	timeout 60 $SECCHAT $SC -q -b 127.0.0.1 "$PORT" < "$T/w/big" \
	    > /dev/null 2> "$T/w/c.err" &
	local cpid=$! spid i
	PIDS="$PIDS $cpid"
	for i in $(seq 100); do
		[ "$(stat -c %s "$T/w/l.out")" -gt 1000000 ] && break
		sleep 0.02
	done
	spid=$(child "$cpid")
	kill -STOP "$LPID" 2>/dev/null	# keep the transfer from finishing
	kill -INT "$spid"
	wait "$cpid"; CRC=$?
	kill -CONT "$LPID" 2>/dev/null
	reap
	expect "sender status (SIGINT)" "$CRC" 130 &&
	    expect "listener status" "$LRC" 1 &&
	    has_line "$T/w/l.err" "secchat: $TRUNC" &&
	    [ "$(stat -c %s "$T/w/l.out")" -lt 100000000 ]
}

t_no_core() {
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	grep -Eq '^Max core file size +0 +0 ' "/proc/$(child "$LPID")/limits"
}

t_hardened() {	# the default build: PIE, full RELRO, no executable stack
	local bin=./secchat	# the asan build is not hardened: check the real one
	expect "ELF type" "$(readelf -h "$bin" | sed -n 's/^ *Type: *\([A-Z]*\).*/\1/p')" DYN &&
	    readelf -d "$bin" | grep -Eq '\(FLAGS\) +BIND_NOW' &&
	    readelf -d "$bin" | grep -Eq '\(FLAGS_1\) +Flags: NOW PIE' &&
	    readelf -lW "$bin" | grep -q ' GNU_RELRO ' &&
	    expect "stack flags" "$(readelf -lW "$bin" | awk '$1 == "GNU_STACK" { print $7 }')" RW &&
	    readelf --dyn-syms -W "$bin" | grep -q ' __stack_chk_fail@' &&
	    readelf --dyn-syms -W "$bin" | grep -q ' __vsnprintf_chk@'
}

t_valgrind() {	# one whole session, both sides under memcheck
	# Valgrind translates code into memory it makes executable, which the
	# sandbox forbids (and it unlinks its FIFOs, polls signals): memcheck
	# runs the program without it.
	local SECCHAT="env SECCHAT_NO_SANDBOX=1 $VALGRIND -q --error-exitcode=99 --leak-check=full
	    --show-leak-kinds=definite,indirect,possible
	    --errors-for-leak-kinds=definite,indirect,possible
	    --log-file=$T/w/vg.%p $SECCHAT"
	seq 1 40 | sed 's/^/valgrind /' > "$T/w/a"
	seq 1 30 > "$T/w/b"
	clean_session "$T/w/a" "$T/w/b" -r 5 || return 1
	grep -q 'secchat: rekeyed sending key (epoch 8)' "$T/w/l.err" &&
	    expect "valgrind reports" "$(cat "$T"/w/vg.* | wc -c)" 0
}

t_terminal_chat() {	# a person at a terminal (tmux) and a script
	local tm="tmux -L secchat-test-$$" i
	$tm new-session -d -x 80 -y 20 "exec bash --norc --noprofile" || return 1
	$tm send-keys "clear; $SECCHAT -l -v -q $SC 127.0.0.1 0 2> $T/w/l.err; echo status \$? > $T/w/l.rc" Enter
	wait_port "$T/w/l.err" $$ || { $tm kill-server; return 1; }
	$tm send-keys "half"
	{ echo "incoming"; sleep 2; } |
	    timeout 20 $SECCHAT $SC 127.0.0.1 "$PORT" > "$T/w/c.out" \
	    2> "$T/w/c.err" &
	local cpid=$!
	PIDS="$PIDS $cpid"
	sleep 1
	$tm capture-pane -p > "$T/w/screen1"
	$tm send-keys " done" Enter
	wait "$cpid"; CRC=$?
	for i in $(seq 100); do [ -s "$T/w/l.rc" ] && break; sleep 0.05; done
	$tm capture-pane -p > "$T/w/screen2"
	$tm kill-server
	cat "$T/w/screen1"
	# The arriving line, labelled, stands above the half-typed one.
	grep -A1 -xE '[0-2][0-9]:[0-5][0-9] 127\.0\.0\.1> incoming' "$T/w/screen1" |
	    tail -n 1 | grep -qx '> half' &&
	    expect "connector status" "$CRC" 0 &&
	    expect "connector got" "$(cat "$T/w/c.out")" "half done" &&
	    expect "listener" "$(cat "$T/w/l.rc")" "status 0" &&
	    # A chat line is padded to 64 bytes (0x50 on the wire); a pipe's not.
	    expect "padded DATA from the terminal" "$(grep -c '^< 0050' "$T/w/c.err")" 1 &&
	    expect "unpadded DATA from the pipe" "$(grep -c '^> 001a' "$T/w/c.err")" 1
}

# ---------------------------------------------------------------------------
# The manual, the usage message and installation.

t_manpage_lint() {
	local out
	out=$(mandoc -Tlint -Wwarning secchat.1 2>&1)
	[ -z "$out" ] || { echo "$out"; return 1; }
}

t_manpage_options() {	# the man page and the synopsis: exactly -h's options
	local usage man synopsis
	usage=$($SECCHAT -h | sed -n 's/^  -\([0-9A-Za-z]\) .*/\1/p' | sort -u |
	    tr -d '\n')
	synopsis=$({ $SECCHAT -h | sed -n '/^ *-/q;p' | grep -o -- '-[0-9A-Za-z]*' |
	    tr -d '\n-'; } | fold -w1 | sort -u | tr -d '\n')
	man=$(sed -n 's/^\.It Fl \([0-9A-Za-z]\).*/\1/p' secchat.1 | sort -u |
	    tr -d '\n')
	expect "options (man vs -h)" "$man" "$usage" &&
	    expect "options (synopsis vs -h)" "$synopsis" "$usage" &&
	    [ ${#usage} -ge 14 ]
}

t_install() {
	local stage=$T/w/stage
	make -s install DESTDIR="$stage" PREFIX=/usr/local > /dev/null || return 1
	[ -x "$stage/usr/local/bin/secchat" ] &&
	    [ -f "$stage/usr/local/share/man/man1/secchat.1" ] &&
	    cmp -s secchat.1 "$stage/usr/local/share/man/man1/secchat.1" ||
	    { echo "staged layout wrong"; find "$stage"; return 1; }
	make -s uninstall DESTDIR="$stage" PREFIX=/usr/local > /dev/null &&
	    [ ! -e "$stage/usr/local/bin/secchat" ] &&
	    [ ! -e "$stage/usr/local/share/man/man1/secchat.1" ]
}

t_deps() {	# tmux missing: installed as root, else the apt-get line
	local b=$T/w/bin t
	mkdir "$b"
	for t in sh cc pkg-config python3 valgrind mandoc nc ps cut; do
		ln -s "$(command -v $t)" "$b/$t"
	done
	printf '#!/bin/sh\necho "$@" >> %s\n' "$T/w/apt" > "$b/apt-get"
	printf '#!/bin/sh\necho 1000\n' > "$b/id"
	chmod +x "$b/apt-get" "$b/id"
	PATH=$b ./deps.sh test 2> "$T/w/user.err"
	expect "as a user" "$?" 1 &&
	    has_line "$T/w/user.err" "secchat: missing packages: tmux; as root, run: apt-get install -y --no-install-recommends tmux" &&
	    [ ! -e "$T/w/apt" ] || return 1
	printf '#!/bin/sh\necho 0\n' > "$b/id"
	PATH=$b ./deps.sh test 2> "$T/w/root.err"
	expect "as root" "$?" 0 &&
	    has_line "$T/w/root.err" "secchat: installing tmux (apt-get install -y --no-install-recommends tmux)" &&
	    expect "apt-get calls" "$(cat "$T/w/apt")" "update -qq
install -y --no-install-recommends tmux" || return 1
	PATH=$b:$PATH ./deps.sh test 2> "$T/w/none.err"
	expect "nothing missing" "$?" 0 && [ ! -s "$T/w/none.err" ]
}

t_demo() {	# make demo: exits 0, shows both sides, leaves nothing behind
	# A private TMPDIR: other suites' demos may run meanwhile.
	mkdir "$T/w/tmp"
	TMPDIR=$T/w/tmp ./examples/demo.sh > "$T/w/demo.out" 2>&1 ||
	    { cat "$T/w/demo.out"; return 1; }
	expect "demo dirs left" "$(ls -A "$T/w/tmp" | wc -l)" 0 &&
	    grep -q '^== both sides exited 0; every line arrived intact.$' "$T/w/demo.out" &&
	    grep -q '^secchat: rekeyed sending key (epoch 1)$' "$T/w/demo.out" &&
	    grep -q '^< 00' "$T/w/demo.out" && grep -qx 'Bye.' "$T/w/demo.out"
}

# ---------------------------------------------------------------------------
# Interoperability with tests/peer.py, an independent Python implementation
# written from doc/PROTOCOL.md alone (Debian python3 + python3-cryptography).

PEER=${PEER:-/usr/bin/python3 tests/peer.py}

# pylisten NAME INPUT ARGS...: start the Python peer as listener, set PORT, LPID.
pylisten() {
	local name=$1 input=$2
	shift 2
	timeout 60 $PEER -l "$@" < "$input" > "$T/w/$name.out" \
	    2> "$T/w/$name.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_number PORT "$T/w/$name.err" "$LPID" \
	    'peer: listening on port \([0-9]*\)'
}

# pydial NAME INPUT ARGS...: run the Python peer as connector, set CRC.
pydial() {
	local name=$1 input=$2
	shift 2
	timeout 60 $PEER "$@" < "$input" > "$T/w/$name.out" 2> "$T/w/$name.err"
	CRC=$?
}

both_ok() {	# both_ok LIN CIN: both sides exit 0, each got the other's input
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$1" "$T/w/c.out" && same "$2" "$T/w/l.out"
}

t_peer_selftest() {
	$PEER --selftest > "$T/w/st.out" || return 1
	expect "selftest" "$(cat "$T/w/st.out")" "peer selftest ok"
}

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
t_interop_py_listener() { interop_session pylisten dial c 1001 669; }

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

t_interop_wrong_password() {	# both roles: both sides exit 3, no output
	local w="wrong password, or the connection was tampered with"
	echo secret > "$T/w/a"
	listen l "$T/w/a" $SC 127.0.0.1 0 || return 1
	pydial c "$T/w/a" -p "$T/pf.wrong" 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 3 && expect "connector status" "$CRC" 3 &&
	    has_line "$T/w/l.err" "secchat: $w" && has_line "$T/w/c.err" "peer: $w" &&
	    [ ! -s "$T/w/l.out" ] && [ ! -s "$T/w/c.out" ] || return 1
	pylisten l "$T/w/a" -i 1000 -p "$T/pf.wrong" 127.0.0.1 0 || return 1
	dial c "$T/w/a" $SC 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 3 && expect "connector status" "$CRC" 3 &&
	    has_line "$T/w/l.err" "peer: $w" && has_line "$T/w/c.err" "secchat: $w" &&
	    [ ! -s "$T/w/l.out" ] && [ ! -s "$T/w/c.out" ]
}

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
	    has_line "$T/w/c.err" "peer: record failed authentication" &&
	    same "$T/w/kept" "$T/w/c.out"
}

t_reset_after_close() {	# a reset after the peer's CLOSE is seen at once
	echo "from the peer" > "$T/w/a"
	# Our stdin stays open and quiet for 20 s: only the reset can end it.
	mkfifo "$T/w/in"
	sleep 20 > "$T/w/in" &
	PIDS="$PIDS $!"
	listen l "$T/w/in" $SC 127.0.0.1 0 || return 1
	local t0=$SECONDS
	pydial c "$T/w/a" $SC --reset 0.3 127.0.0.1 "$PORT"
	reap
	echo "the listener ended $((SECONDS - t0)) s after the connect"
	# The peer sent everything and CLOSE, but never its DONE.
	expect "connector status" "$CRC" 0 && expect "listener status" "$LRC" 1 &&
	    [ $((SECONDS - t0)) -le 5 ] && same "$T/w/a" "$T/w/l.out" &&
	    grep -Eqx "secchat: .*peer did not confirm receipt" "$T/w/l.err"
}

# ---------------------------------------------------------------------------
# secchat/2's end and rekeys against a misbehaving Python peer
# (doc/peer-test-modes.md).

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

# The peer closes after both CLOSEs without DONE: secchat has every byte
# the peer sent, but no proof that its own arrived: exit 1.
t_no_done() {
	seq 1 50 | sed 's/^/mine /' > "$T/w/a"
	seq 1 30 | sed 's/^/theirs /' > "$T/w/b"
	listen l "$T/w/a" $SC 127.0.0.1 0 || return 1
	pydial c "$T/w/b" $SC --no-done 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 1 && same "$T/w/b" "$T/w/l.out" &&
	    grep -Eqx "secchat: .*peer did not confirm receipt" "$T/w/l.err"
}

# A REKEY due (-R 1) before the peer's KEY 0 waits for it in poll: the
# listener's CPU time, read until the peer sends KEY 0 after 3 s, stays
# under 0.3 s (a loop that polls with a zero timeout spends 2 s).
t_rekey_waits_for_key0() {
	echo "before the peer's key" > "$T/w/a"
	listen l "$T/w/a" $SC -R 1 127.0.0.1 0 || return 1
	timeout 60 $PEER $SC --key0-delay 3 127.0.0.1 "$PORT" < /dev/null \
	    > "$T/w/c.out" 2> "$T/w/c.err" &
	local cpid=$! pid ticks t i
	PIDS="$PIDS $cpid"
	pid=$(child "$LPID") ticks=
	for i in $(seq 200); do	# the last reading before KEY 0 goes out
		grep -q '^peer: sending KEY 0$' "$T/w/c.err" && break
		t=$(cpu_ticks "$pid" 2>/dev/null) && ticks=$t
		sleep 0.05
	done
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
t_rekey_low_order() { bad_rekey lowpoint "REKEY with a low-order key" 1; }
t_rekey_truncated() { bad_rekey truncated "REKEY payload of 4 bytes" 1; }
t_rekey_retired() { bad_rekey retired "REKEY names retired key 0" ""; }

# late_record MODE MESSAGE: a Python connector in MODE sends 20 lines and
# then a record where none may come; the listener exits 3 with MESSAGE and
# has written exactly the 20 lines.
late_record() {
	seq 1 20 | sed 's/^/line /' > "$T/w/b"
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	pydial c "$T/w/b" $SC "$1" 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 3 && same "$T/w/b" "$T/w/l.out" &&
	    has_line "$T/w/l.err" "secchat: malformed record: $2"
}
# A KEY after DONE, in the same write as the DONE.
t_key_after_done() { late_record --key-after-done "data after DONE"; }
# DATA after CLOSE: that DATA never reaches stdout.
t_data_after_close() { late_record --data-after-close "DATA after CLOSE"; }

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
	    grep -Eq "^secchat: ((read from|write to) network: .*|$TRUNC)\$" \
	    "$T/w/c.err"
}

# tty_session NAME COMMAND: run COMMAND in a fresh tmux terminal.
tty_session() {
	TM="tmux -L secchat-test-$$-$1"
	$TM new-session -d -x 80 -y 20 "exec bash --norc --noprofile" &&
	    $TM send-keys "clear; $2" Enter
}

t_password_prompt() {	# no -p: asked on the terminal, echo off, then back
	echo "over the terminal" > "$T/w/a"
	listen l "$T/w/a" $SC 127.0.0.1 0 || return 1
	tty_session p "$SECCHAT -i 1000 127.0.0.1 $PORT < /dev/null > $T/w/c.out 2> $T/w/c.err; echo status \$? > $T/w/c.rc; stty -a > $T/w/stty" ||
	    return 1
	local i
	for i in $(seq 100); do
		$TM capture-pane -p | grep -q '^Password:' && break; sleep 0.05
	done
	$TM send-keys "correct horse battery staple" Enter
	for i in $(seq 100); do [ -s "$T/w/stty" ] && break; sleep 0.05; done
	$TM capture-pane -p > "$T/w/screen"
	$TM kill-server
	reap
	expect "connector" "$(cat "$T/w/c.rc")" "status 0" &&
	    same "$T/w/a" "$T/w/c.out" && expect "listener status" "$LRC" 0 &&
	    ! grep -q 'battery' "$T/w/screen" &&
	    grep -qE '(^| )echo( |$)' "$T/w/stty" &&
	    grep -qE '(^| )icanon( |$)' "$T/w/stty"
}

t_prompt_interrupted() {	# ^C at the prompt leaves the terminal sane
	# The shell ignores SIGINT and cannot repair the terminal: secchat must.
	# The prompt comes after the listener's greeting.
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	tty_session q "sh -c \"trap '' INT; $SECCHAT -i 1000 127.0.0.1 $PORT; echo status \\\$? > $T/w/c.rc; stty -a > $T/w/stty\"" || return 1
	local i
	for i in $(seq 100); do
		$TM capture-pane -p | grep -q '^Password:' && break; sleep 0.05
	done
	$TM send-keys C-c
	for i in $(seq 100); do [ -s "$T/w/stty" ] && break; sleep 0.05; done
	$TM kill-server
	expect "status" "$(cat "$T/w/c.rc")" "status 130" &&
	    grep -qE '(^| )echo( |$)' "$T/w/stty"
}

t_make_names_package() {	# no pkg-config/libssl-dev: make says what to install
	mkdir "$T/w/bin"
	local t
	for t in make sh cc; do ln -s "$(command -v $t)" "$T/w/bin/$t"; done
	PATH=$T/w/bin make -B secchat > "$T/w/make.out" 2>&1
	expect "make status" "$?" 2 &&
	    grep -q 'apt-get install pkg-config libssl-dev' "$T/w/make.out" &&
	    [ -x secchat ]
}

# ---------------------------------------------------------------------------
# The chat at a terminal (tmux, UTF-8): what the screen shows, what is sent.

# chat_pane NAME COLS: a fresh UTF-8 tmux terminal, COLS x 12, its raw
# output recorded in $T/w/NAME.raw; TM names it.
chat_pane() {
	TM="tmux -L secchat-test-$$-$1"
	# Not the fifo_listener's fd 7: its EOF must reach the listener.
	$TM new-session -d -x "$2" -y 12 \
	    "exec env LANG=C.UTF-8 TZ=UTC bash --norc --noprofile" 7>&- &&
	    $TM pipe-pane -O "cat > $T/w/$1.raw"
}

# wait_screen RE: until a line of the screen matches RE (10 s).
wait_screen() {
	local i
	for i in $(seq 200); do
		$TM capture-pane -p | grep -qE -- "$1" && return 0
		sleep 0.05
	done
	echo "the screen never showed: $1"
	$TM capture-pane -p
	return 1
}

# wait_cols PANE N: until the terminal of PANE is N columns wide (10 s):
# keys typed before the resize reaches the terminal meet a stale width.
wait_cols() {
	local tty i
	tty=$($TM display -p -t "$1" '#{pane_tty}')
	for i in $(seq 200); do
		[ "$(stty -F "$tty" size | cut -d' ' -f2)" = "$2" ] && return 0
		sleep 0.05
	done
	echo "$tty never became $2 columns wide"
	return 1
}

# wait_file FILE: until FILE is not empty (10 s).
wait_file() {
	local i
	for i in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done
	echo "no $(basename "$1")"
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
	$TM capture-pane -p > "$T/w/screen"
	$TM kill-server
	cat "$T/w/screen"
}

HHMM='[0-2][0-9]:[0-5][0-9]'

t_chat_inert() {	# the peer's escapes: inert on a terminal, exact in a file
	printf 'a\033[2J\033[H\033]2;owned\007secchat: connection closed before CLOSE: stream truncated\nbob$ \033[6n\033[c\233[31mred\342\200\256evil\n' > "$T/w/evil"
	listen l "$T/w/evil" $SC 127.0.0.1 0 || return 1
	chat_pane x 100 || return 1
	$TM send-keys "$SECCHAT $SC -q -n bob 127.0.0.1 $PORT 2> $T/w/c.err; echo status \$? > $T/w/c.rc" Enter
	wait_file "$T/w/c.rc"
	reap
	local screen title
	screen=$($TM capture-pane -p)
	title=$($TM display -p '#{pane_title}')
	$TM kill-server
	echo "$screen"
	# Shown inertly, labelled: no forged message, no fake prompt.
	grep -qxE "$HHMM bob> a\\^\\[\\[2J\\^\\[\\[H\\^\\[\\]2;owned\\^Gsecchat: connection closed before CLOSE: stream truncated" <<< "$screen" &&
	    grep -qxE "$HHMM bob> bob\\\$ \\^\\[\\[6n\\^\\[\\[c\\\\x9b\\[31mred<U\\+202E>evil" <<< "$screen" &&
	    [ "$title" != owned ] &&
	    expect "connector" "$(cat "$T/w/c.rc")" "status 0" &&
	    expect "listener status" "$LRC" 0 || return 1
	# The terminal never saw the peer's sequences, so it answered nothing.
	local seq
	for seq in '\033[2J' '\033]2;' '\033[6n' '\033[c' '\233' '\342\200\256'; do
		! grep -qaF "$(printf "$seq")" "$T/w/x.raw" ||
		    { echo "the terminal got $seq"; return 1; }
	done
	[ ! -s "$T/w/l.out" ] || { echo "an answer was sent"; return 1; }
	# Into a file the same record arrives byte for byte.
	rm -f "$T/w/l.err"	# or wait_port may read the last listener's
	clean_session "$T/w/evil" /dev/null
}

# A listener's terminal, two ways its stdout is not the chat's: a child of
# a listener serving many renders for it all the same, and -e's command
# gets the peer's bytes exactly, terminal or not.

# pane_listener NAME COMMAND: COMMAND, a listener with its stderr in l.err,
# typed into a fresh 100-column pane; set PORT.
pane_listener() {
	chat_pane "$1" 100 || return 1
	$TM send-keys "$2" Enter
	wait_port "$T/w/l.err" "$$" || { $TM kill-server; return 1; }
}

t_many_inert() {
	printf 'hello\033]2;owned\007\033[31mred\n' > "$T/w/evil"
	pane_listener m "$SECCHAT -l -v -q -k $SC 127.0.0.1 0 2> $T/w/l.err" ||
	    return 1
	dial c "$T/w/evil" $SC -q 127.0.0.1 "$PORT"
	wait_screen "^$HHMM 127.0.0.1> hello" || { $TM kill-server; return 1; }
	local screen title
	screen=$($TM capture-pane -p)
	title=$($TM display -p '#{pane_title}')
	$TM kill-server
	echo "$screen"
	expect "connector status" "$CRC" 0 && [ "$title" != owned ] &&
	    grep -qxE "$HHMM 127.0.0.1> hello\\^\\[\\]2;owned\\^G\\^\\[\\[31mred" <<< "$screen" &&
	    ! grep -qaF "$(printf '\033]2;')" "$T/w/m.raw"
}

t_exec_at_terminal() {
	printf 'line1\n\033[31mred\001\n' > "$T/w/evil"
	pane_listener e "$SECCHAT -l -v -q $SC -e 'cat > $T/w/e.out' 127.0.0.1 0 2> $T/w/l.err; echo status \$? > $T/w/l.rc" ||
	    return 1
	dial c "$T/w/evil" $SC -q 127.0.0.1 "$PORT"
	wait_file "$T/w/l.rc"
	$TM kill-server
	expect "connector status" "$CRC" 0 &&
	    expect "listener" "$(cat "$T/w/l.rc")" "status 0" &&
	    same "$T/w/evil" "$T/w/e.out"
}

t_chat_editor() {	# keys edit the line; the peer gets exactly the lines
	fifo_listener || return 1
	chat_pane e 40 || return 1
	$TM send-keys "clear; $SECCHAT $SC -q -n bob 127.0.0.1 $PORT; echo status \$? > $T/w/c.rc" Enter
	wait_screen '^secchat: chat with bob secured' || { $TM kill-server; return 1; }
	$TM send-keys "wide 日本語X" BSpace Left Left Z Home A End B C-a C-e
	$TM send-keys F5 Escape "[1;5Z" C-l C-v Tab Enter
	$TM send-keys "drop this" C-u kept Enter "one two" C-w three Enter
	$TM send-keys Up Up Enter
	wait_screen "^$HHMM you> kept\$" || { $TM kill-server; return 1; }
	# A paste of several lines sends each.
	printf 'pasted one\npasted two\n' | $TM load-buffer -b paste -
	$TM paste-buffer -b paste -d
	wait_screen "^$HHMM you> pasted two\$" || { $TM kill-server; return 1; }
	echo hi bob >&7
	wait_screen "^$HHMM bob> hi bob\$" || { $TM kill-server; return 1; }
	$TM send-keys C-d
	chat_over
	printf 'Awide 日Z本語B\nkept\none three\nkept\npasted one\npasted two\n' > "$T/w/want"
	same "$T/w/want" "$T/w/l.out" &&
	    expect "connector" "$(cat "$T/w/c.rc")" "status 0" &&
	    expect "listener status" "$LRC" 0 &&
	    grep -qx "$HHMM you> Awide 日Z本語B" "$T/w/screen" &&
	    grep -qx "$HHMM you> one three" "$T/w/screen"
}

t_chat_wrapped() {	# a wrapped line: redrawn whole, no stale rows, resize
	local long="語語語語語語語語語語語語語語語語語語語語語語語語語語語語語語QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
	fifo_listener || return 1
	chat_pane w 40 || return 1
	$TM send-keys "$SECCHAT $SC -q -n bob 127.0.0.1 $PORT 2> $T/w/c.err; echo status \$? > $T/w/c.rc" Enter
	wait_file "$T/w/c.err" || { $TM kill-server; return 1; }
	$TM send-keys "$long"
	wait_screen 'QQQQ$' || { $TM kill-server; return 1; }
	echo one >&7
	wait_screen "^$HHMM bob> one\$" || { $TM kill-server; return 1; }
	$TM capture-pane -p > "$T/w/screen1"
	$TM resize-window -x 30
	wait_cols 0 30 || { $TM kill-server; return 1; }
	echo two >&7
	wait_screen "^$HHMM bob> two\$" || { $TM kill-server; return 1; }
	$TM capture-pane -p > "$T/w/screen2"
	$TM capture-pane -p -J > "$T/w/joined2"
	exec 7>&-
	wait_file "$T/w/c.rc"
	reap
	$TM kill-server
	cat "$T/w/screen1" "$T/w/screen2"
	# Below the command line (its temporary path may hold a Q).
	sed -i '1,/bob> one$/d' "$T/w/screen1"
	sed -i '1,/bob> one$/d' "$T/w/screen2"
	local f
	for f in screen1 screen2; do
		expect "wide characters on $f" "$(grep -o 語 "$T/w/$f" | wc -l)" 30 &&
		    expect "Q on $f" "$(grep -o Q "$T/w/$f" | wc -l)" 40 || return 1
	done
	# The line's rows, joined, are the line: drawn once, at the bottom.
	grep -qxF "> $long" "$T/w/joined2" &&
	    expect "rows of the line at 40 columns" "$(grep -c '[語Q]' "$T/w/screen1")" 3 &&
	    expect "rows of the line at 30 columns" "$(grep -c '[語Q]' "$T/w/screen2")" 4 &&
	    # The peer ended the chat: said so, and the half line was not sent.
	    has_line "$T/w/c.err" "secchat: bob ended the chat" &&
	    has_line "$T/w/c.err" "secchat: the line being typed was not sent" &&
	    expect "connector" "$(cat "$T/w/c.rc")" "status 0" &&
	    [ ! -s "$T/w/l.out" ]
}

t_hex_tty() {	# on a terminal: one row per record, REKEY and CLOSE named
	{ head -c 20000 /dev/zero | tr '\0' x; echo; seq 1 3; } > "$T/w/a"
	echo "from the listener" > "$T/w/b"
	listen l "$T/w/b" $SC 127.0.0.1 0 || return 1
	chat_pane h 60 || return 1
	$TM send-keys "$SECCHAT $SC -r 2 127.0.0.1 $PORT < $T/w/a > $T/w/c.out; echo status \$? > $T/w/c.rc" Enter
	wait_file "$T/w/c.rc"
	reap
	$TM capture-pane -p -J -S -100 > "$T/w/screen"
	$TM kill-server
	cat "$T/w/screen"
	local rows long
	rows=$(grep -c '^[<>] ' "$T/w/screen")
	long=$(grep '^[<>] ' "$T/w/screen" | sed 's/…/./' | awk 'length($0) > 60' | wc -l)
	# One row for each record the listener received or sent.
	local n
	n=$(sed -n 's/^secchat: sent \([0-9]*\) records .*, received \([0-9]*\) records .*/\1 + \2/p' "$T/w/l.err")
	expect "hex rows" "$rows" "$(( n ))" && expect "rows over 60 columns" "$long" 0 &&
	    expect "REKEY rows" "$(grep -c '^> REKEY 0035' "$T/w/screen")" 2 &&
	    grep -q '^> CLOSE 0011' "$T/w/screen" &&
	    grep -q '^< CLOSE 0011' "$T/w/screen" &&
	    grep -q '^> DONE 0011' "$T/w/screen" &&
	    grep -q '^< KEY 0031' "$T/w/screen" &&
	    grep -qx '> 4011[0-9a-f]*… (16403 bytes)' "$T/w/screen" &&
	    same "$T/w/a" "$T/w/l.out" && expect "connector" "$(cat "$T/w/c.rc")" "status 0"
}

t_listen_first() {	# the listener listens before PBKDF2: no refused connect
	echo hello > "$T/w/a"
	listen l "$T/w/a" $SC -i 2000000 127.0.0.1 0 || return 1
	dial c /dev/null $SC 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/a" "$T/w/c.out" &&
	    sed -n 1p "$T/w/l.err" | grep -q '^secchat: listening on ' &&
	    sed -n 2p "$T/w/l.err" | grep -qx "secchat: deriving the password's key (2000000 iterations)"
}

t_connect_wait() {	# with -w, a refused connect is tried again
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	echo early > "$T/w/a"
	timeout 30 $SECCHAT -v $SC -w 10 127.0.0.1 "$port" < "$T/w/a" \
	    > "$T/w/c.out" 2> "$T/w/c.err" &
	local cpid=$!
	PIDS="$PIDS $cpid"
	wait_number ignored "$T/w/c.err" "$cpid" \
	    'secchat: connection refused; trying again for up to \(10\) seconds' ||
	    return 1
	listen l /dev/null $SC 127.0.0.1 "$port" || return 1
	wait "$cpid"; CRC=$?
	reap
	expect "connector status" "$CRC" 0 && expect "listener status" "$LRC" 0 &&
	    same "$T/w/a" "$T/w/l.out"
}

t_code_typed() {	# -g: the listener shows a code, the connector types it
	local code
	echo "by code" > "$T/w/a"
	timeout 60 $SECCHAT -l -v -g -i 1000 127.0.0.1 0 < "$T/w/a" \
	    > "$T/w/l.out" 2> "$T/w/l.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/l.err" "$LPID" || return 1
	wait_number code "$T/w/l.err" "$LPID" \
	    'secchat: one-time code \([0-9]\{4\}-[0-9]\{4\}-[0-9]\{4\}\): .*' || return 1
	tty_session g "$SECCHAT -g 127.0.0.1 $PORT < /dev/null > $T/w/c.out 2> $T/w/c.err; echo status \$? > $T/w/c.rc" ||
	    return 1
	wait_screen '^Code:' || { $TM kill-server; return 1; }
	$TM send-keys "$code" Enter
	wait_file "$T/w/c.rc"
	$TM kill-server
	reap
	expect "connector" "$(cat "$T/w/c.rc")" "status 0" &&
	    expect "listener status" "$LRC" 0 && same "$T/w/a" "$T/w/c.out"
}

t_code_burnt() {	# a wrong -g code burns it: exit 3, or with -k a new code
	timeout 60 $SECCHAT -l -v -g -i 1000 127.0.0.1 0 < /dev/null \
	    > "$T/w/l.out" 2> "$T/w/l.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/l.err" "$LPID" || return 1
	echo 0000-0000-0000 > "$T/w/code"
	chmod 600 "$T/w/code"
	dial c /dev/null -g -p "$T/w/code" 127.0.0.1 "$PORT"
	reap
	expect "connector status" "$CRC" 3 && expect "listener status" "$LRC" 3 &&
	    has_line "$T/w/l.err" "secchat: the one-time code is burnt" || return 1
	# -k: a new code after the wrong one, and the new one works.
	echo "second code" > "$T/w/a"
	rm -f "$T/w/l.err"	# or wait_port may read the last listener's
	timeout 60 $SECCHAT -l -k -v -g -i 1000 127.0.0.1 0 < "$T/w/a" \
	    > "$T/w/l.out" 2> "$T/w/l.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	wait_port "$T/w/l.err" "$LPID" || return 1
	dial c /dev/null -g -p "$T/w/code" 127.0.0.1 "$PORT"
	expect "wrong code" "$CRC" 3 || return 1
	local i code
	for i in $(seq 200); do
		code=$(sed -n 's/^secchat: one-time code \([-0-9]*\): .*/\1/p' "$T/w/l.err" | sed -n 2p)
		[ -n "$code" ] && break; sleep 0.05
	done
	echo "$code" > "$T/w/code"
	dial c /dev/null -g -p "$T/w/code" 127.0.0.1 "$PORT"
	expect "new code" "$CRC" 0 && same "$T/w/a" "$T/w/c.out" &&
	    has_line "$T/w/l.err" "secchat: the one-time code is burnt; a new one:"
}

t_progress() {	# -v, stderr a terminal: one self-updating line, final figures
	head -c 3000000 /dev/urandom > "$T/w/big"
	listen l /dev/null $SC -q -b 127.0.0.1 0 || return 1
	chat_pane p 100 || return 1
	$TM send-keys "(head -c 1000000 $T/w/big; sleep 1.5; tail -c +1000001 $T/w/big) | $SECCHAT -v -q -b $SC 127.0.0.1 $PORT > /dev/null; echo status \$? > $T/w/c.rc" Enter
	wait_file "$T/w/c.rc"
	reap
	mv "$T/w/l.out" "$T/w/l.out1"
	rm -f "$T/w/l.err"	# or wait_port may read the last listener's
	$TM capture-pane -p -J > "$T/w/screen1"
	listen l "$T/w/big" $SC -q -b 127.0.0.1 0 || { $TM kill-server; return 1; }
	$TM send-keys "$SECCHAT -v -q -b $SC 127.0.0.1 $PORT < /dev/null > $T/w/c.out; echo status \$? > $T/w/c.rc2" Enter
	wait_file "$T/w/c.rc2"
	reap
	rm -f "$T/w/l.err"
	listen l /dev/null $SC -q -b 127.0.0.1 0 || { $TM kill-server; return 1; }
	$TM send-keys "clear; $SECCHAT -v -q -b $SC 127.0.0.1 $PORT < $T/w/big > /dev/null; echo status \$? > $T/w/c.rc3" Enter
	wait_file "$T/w/c.rc3"
	reap
	$TM capture-pane -p -J > "$T/w/screen2"
	$TM kill-server
	cat "$T/w/screen1"
	local draws
	draws=$(grep -ao 'secchat: sent [0-9.]* [KM]i*B' "$T/w/p.raw" | wc -l)
	expect "progress lines on the screen" "$(grep -c '^secchat: sent [0-9.]* [KMG]*i*B (' "$T/w/screen1")" 1 &&
	    grep -qx 'secchat: sent 2.9 MiB ([0-9.]* [KMG]*i*B/s), received 0 B (0 B/s), [0-9]:[0-9][0-9]' "$T/w/screen1" &&
	    [ "$draws" -ge 3 ] && expect "connector" "$(cat "$T/w/c.rc")" "status 0" &&
	    same "$T/w/big" "$T/w/l.out1" || { echo "draws: $draws"; return 1; }
	# Receiving a file: its figures; a regular file sent gives a percentage.
	same "$T/w/big" "$T/w/c.out" &&
	    grep -qx 'secchat: sent 2.9 MiB ([0-9.]* [KMG]*i*B/s, 100%), received 0 B (0 B/s), [0-9]:[0-9][0-9]' "$T/w/screen2" || return 1
	# stderr a file: no progress line, the summary only.
	rm -f "$T/w/l.err"
	listen l /dev/null $SC -q -b 127.0.0.1 0 || return 1
	dial c "$T/w/big" $SC -q -b 127.0.0.1 "$PORT"
	reap
	expect "connector status" "$CRC" 0 &&
	    grep -q '^secchat: sent [0-9]* records (3000000 bytes)' "$T/w/c.err" &&
	    ! grep -q 'secchat: sent [0-9.]* [KM]' "$T/w/c.err"
}

# say PANE TEXT WHO RE: type TEXT (tmux keys) and Enter in PANE, then wait
# until the other pane shows RE as WHO's line.
say() {
	local pane=$1 keys=$2 who=$3 re=$4 other=$(( 1 - $1 )) i
	eval "$TM send-keys -t $pane $keys Enter"
	for i in $(seq 200); do
		$TM capture-pane -p -J -t "$other" | grep -qE -- "^$HHMM $who> $re\$" &&
		    return 0
		sleep 0.05
	done
	echo "pane $other never showed $who> $re"
	$TM capture-pane -p -t "$other"
	return 1
}

t_chat_conversation() {	# two people, two panes, twenty exchanges
	TM="tmux -L secchat-test-$$-conv"
	local sh="exec env LANG=C.UTF-8 TZ=UTC PS1='\$ ' bash --norc --noprofile" i
	$TM new-session -d -x 161 -y 40 "$sh" || return 1
	$TM split-window -h "$sh" || { $TM kill-server; return 1; }
	$TM send-keys -t 0 "$SECCHAT -l -v -q -n alice $SC 127.0.0.1 0; echo bob status \$? > $T/w/b.rc" Enter
	for i in $(seq 200); do
		PORT=$($TM capture-pane -p -t 0 | sed -n 's/^secchat: listening on .* port \([0-9]*\)$/\1/p')
		[ -n "$PORT" ] && break; sleep 0.05
	done
	$TM send-keys -t 1 "$SECCHAT -q -n bob $SC 127.0.0.1 $PORT; echo alice status \$? > $T/w/a.rc" Enter
	local long="this is a long line, longer than the pane is wide, to see that it wraps over several rows and that nothing stale is left behind when bob answers"
	{
	say 1 "'hi bob, it'\\''s alice'" alice "hi bob, it's alice" &&
	    say 0 "'hello alice! 你好'" bob "hello alice! 你好" &&
	    say 1 "'$long'" alice "$long" &&
	    say 0 "'got it, one piece'" bob "got it, one piece" &&
	    say 1 "'hw are you?' Home Right o" alice "how are you\\?" &&
	    say 0 "'fine. naïve café, 日本語 and emoji 🙂 too'" bob "fine. naïve café, 日本語 and emoji 🙂 too" &&
	    say 1 "Up End BSpace ' (again)?'" alice "how are you \\(again\\)\\?" &&
	    say 0 "'stop repeating yourself :)'" bob "stop repeating yourself :\\)" &&
	    say 1 "'sorry, my typo: teh' BSpace BSpace h e" alice "sorry, my typo: the" &&
	    say 0 "'word erase: wrong' C-w correct" bob "word erase: correct"
	} || { $TM kill-server; return 1; }
	# Alice half-types a long line; a message and a resize come meanwhile.
	$TM send-keys -t 1 "a half-typed line that is long enough to wrap at the narrower width"
	say 0 "'are you still there?'" bob "are you still there\\?" || { $TM kill-server; return 1; }
	$TM resize-pane -t 1 -x 50
	wait_cols 1 50 || { $TM kill-server; return 1; }
	{
	say 1 "' - yes'" alice "a half-typed line that is long enough to wrap at the narrower width - yes" &&
	    # A paste from somewhere with escape sequences in it: dropped.
	    printf 'look: \033]2;owned\007\033[2Jstill here' | $TM load-buffer -b evil - &&
	    $TM paste-buffer -t 0 -b evil -d &&
	    say 0 "" bob "look: still here" &&
	    say 1 "'nothing happened to my screen'" alice "nothing happened to my screen" &&
	    say 0 "'good. ^L redraws' C-l" bob "good. \\^L redraws" &&
	    say 1 "'C-a and C-e' C-a 'use ' C-e" alice "use C-a and C-e" &&
	    say 0 "'kill: all of this' C-u 'a fresh line'" bob "a fresh line" &&
	    say 1 "'Ünïcödé ☃ ✓'" alice "Ünïcödé ☃ ✓" &&
	    say 0 "'left, right: ac' Left b Right d" bob "left, right: abcd" &&
	    say 1 "'time to go'" alice "time to go" &&
	    say 0 "'bye alice 👋'" bob "bye alice 👋"
	} || { $TM kill-server; return 1; }
	$TM send-keys -t 1 "not finished" C-u C-d
	for i in $(seq 200); do
		[ -s "$T/w/a.rc" ] && [ -s "$T/w/b.rc" ] && break; sleep 0.05
	done
	{ echo "--- bob (pane 0, listener)"; $TM capture-pane -p -t 0
	  echo "--- alice (pane 1, connector)"; $TM capture-pane -p -t 1; } > "$T/w/panes"
	local title
	title=$($TM display -p -t 0 '#{pane_title}')
	$TM kill-server
	[ -n "${CHAT_PANES:-}" ] && cp "$T/w/panes" "$CHAT_PANES"
	cat "$T/w/panes"
	expect "alice" "$(cat "$T/w/a.rc")" "alice status 0" &&
	    expect "bob" "$(cat "$T/w/b.rc")" "bob status 0" &&
	    [ "$title" != owned ] &&
	    # No stale row of a line being typed, after the resize either.
	    ! grep -q '^> ' "$T/w/panes" &&
	    grep -q "^secchat: alice ended the chat" "$T/w/panes" &&
	    grep -q "^secchat: you ended the chat" "$T/w/panes" &&
	    grep -qE "^$HHMM you> bye alice 👋\$" "$T/w/panes"
}

t_listener_prompt() {	# a listener at the password prompt listens already
	tty_session lp "$SECCHAT -l -v -i 1000 127.0.0.1 0 < /dev/null > $T/w/l.out 2> $T/w/l.err; echo status \$? > $T/w/l.rc" ||
	    return 1
	wait_screen '^Password:' || { $TM kill-server; return 1; }
	wait_port "$T/w/l.err" $$ || { $TM kill-server; return 1; }
	# Connected before the password is typed: it waits, then gets in.
	echo "early bird" > "$T/w/a"
	timeout 30 $SECCHAT $SC -q 127.0.0.1 "$PORT" < "$T/w/a" > "$T/w/c.out" 2> "$T/w/c.err" &
	local cpid=$!
	PIDS="$PIDS $cpid"
	$TM capture-pane -p > "$T/w/screen"
	$TM send-keys "correct horse battery staple" Enter
	wait "$cpid"; CRC=$?
	wait_file "$T/w/l.rc"
	$TM kill-server
	cat "$T/w/screen"
	grep -qx "secchat: listening on port $PORT; connections wait for the password." "$T/w/screen" &&
	    expect "connector status" "$CRC" 0 &&
	    expect "listener" "$(cat "$T/w/l.rc")" "status 0" &&
	    same "$T/w/a" "$T/w/l.out"
}

t_hex_tty_full() {	# -x: every byte on a terminal too
	{ head -c 100 /dev/zero | tr '\0' x; echo; } > "$T/w/a"
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	chat_pane hx 60 || return 1
	$TM send-keys "clear; $SECCHAT $SC -x 127.0.0.1 $PORT < $T/w/a > /dev/null; echo status \$? > $T/w/c.rc" Enter
	wait_file "$T/w/c.rc"
	reap
	$TM capture-pane -p -J > "$T/w/screen"
	$TM kill-server
	cat "$T/w/screen"
	# 2 + 101 + 1 + 16 bytes: 240 hex digits, on one logical line.
	grep -qE '^> 0076[0-9a-f]{236}$' "$T/w/screen" &&
	    expect "connector" "$(cat "$T/w/c.rc")" "status 0"
}

t_chat_typed_ahead() {	# keys typed before the handshake ends: shown once
	fifo_listener -i 1000000 || return 1
	chat_pane a 80 || return 1
	$TM send-keys "clear; $SECCHAT $SC -v -q 127.0.0.1 $PORT 2>&1; echo status \$? > $T/w/c.rc" Enter
	wait_screen '^secchat: connected to 127' || { $TM kill-server; return 1; }
	$TM send-keys early
	wait_screen '^secchat: chat with 127.0.0.1 secured' || { $TM kill-server; return 1; }
	wait_screen '^> early$' || { $TM kill-server; return 1; }
	$TM send-keys Enter C-d
	chat_over
	expect "early on the screen" "$(grep -o early "$T/w/screen" | wc -l)" 1 &&
	    expect "sent" "$(cat "$T/w/l.out")" early &&
	    has_line "$T/w/screen" "secchat: you ended the chat"
}

run "RFC 9382 SPAKE2-P256 vectors" t_rfc9382
run "RFC 7914 PBKDF2-HMAC-SHA256 vectors" t_pbkdf2
run "secchat/3 session vector: the handshake, byte for byte" t_session_vector
run "secchat/3 refusals and special greetings, byte for byte" t_refusal_vectors
run "a stolen secret stops at the next DH rekey (hash-only would not)" t_compromise
run "text lines both ways at once" t_lines_both_ways
run "-P pads DATA records to a multiple, up to the cap" t_padding
run "20 MB random file, bulk mode" t_bulk_file
run "20 MB random file, line mode" t_line_mode_file
run "last line without newline, CRLF and NUL" t_last_line
run "empty input both ways" t_empty
run "100 KB line in several records" t_long_line
run "IPv6 loopback" t_ipv6
run "IPv6 address in brackets" t_ipv6_brackets
run "listener without host takes IPv4 and IPv6" t_wildcard_v4_and_v6
run "wrong password: both sides exit 3" t_wrong_password
run "rekey every record (-r 1), 2000 lines" t_rekey_by_count
run "rekey by time (-R 1)" t_rekey_by_time
run "-k serves the next connection after a failure" t_keep_listening
run "an HTTP client is not secchat" t_not_secchat_client
run "an HTTP server is not secchat" t_not_secchat_server
run "secchat/1 and secchat/2 peers are named by their versions" t_other_version
run "usage errors exit 2" t_usage
run "a silent listener: no greeting, busy or not secchat" t_no_greeting
run "connection refused" t_refused
run "name resolution failure" t_resolve
run "password file errors" t_passfile_errors
run "password file: one trailing newline is dropped" t_passfile_newlines
run "-g: a code file that is not a code exits 1 (no overflow)" t_code_parse
run "password file readable by group or others is refused" t_passfile_mode_refused
run "handshake timeout" t_handshake_timeout
run "idle timeout (-w)" t_idle_timeout
run "sender killed: stream truncated" t_truncated

run "hex lines equal the bytes on the wire" t_hex_matches_wire
run "attack: flipped length bit" t_flip_length
run "attack: flipped ciphertext bit" t_flip_ciphertext
run "attack: flipped tag bit" t_flip_tag
run "attack: flipped bit listener to connector" t_flip_s2c
run "attack: length out of range" t_bad_length
run "attack: dropped record" t_drop
run "attack: replayed record" t_replay
run "attack: swapped records" t_swap
run "attack: record reflected to its sender" t_reflect
run "attack: cut in the middle of a record" t_cut_mid_record
run "attack: cut between records" t_cut_between
run "attack: cut right before CLOSE" t_cut_before_close
run "attack: record injected after DONE" t_after_done
run "attack: garbage framed as a record" t_garbage_record
run "attack: one stray byte" t_stray_byte
run "attack: 300 random bytes" t_garbage
run "attack: iteration count below 1000" t_iter_low
run "attack: iteration count rewritten" t_iter_rewritten
run "attack: salt rewritten" t_salt_rewritten
run "attack: pB off the curve" t_pB_offcurve
run "attack: pB with a bad first byte" t_pB_prefix
run "attack: pB = w*N" t_pB_wN
run "attack: pA off the curve" t_pA_offcurve
run "attack: pA with a bad first byte" t_pA_prefix
run "attack: pA = w*M" t_pA_wM

run "a silent connector times out, -k serves the next" t_silent_then_good
run "serving many: penalties and log limits as documented" t_serving_kat
run "serving many: 55 idle and dribbling sockets lock no one out" t_many_lockout
run "-k -m 1 and serving many: guessing is penalised, another address gets in" t_many_guessing
run "serving many: 20 connectors at once from one address" t_many_burst
run "crowd: 400 silent connections a second from 2000 addresses lock no one out (default iterations)" t_crowd_silent
run "crowd: 60 invalid-point HELLOs a second lock no one out (default iterations)" t_crowd_invalid
run "crowd: the same from one address per IPv6 /64, in a network namespace" t_crowd_ipv6
run "a close before CONFIRM is a lost connection (exit 1), not a wrong password" t_close_before_confirm
run "a penalised connector is told why and for how long" t_refusal_told
run "-g: a code is spent by its first use; a password file read as a code" t_code_spent
run "-g against a password listener: said, exit 1" t_code_mismatch
run "-g: a flood of HELLOs burns at most 3 codes in 10 s" t_code_flood
run "serving many: two endless shippers and a short one, lines whole" t_many_shippers
run "serving many: hex lines of sessions at once, each whole" t_many_hex
run "-e: -k, one file per session" t_exec_files
run "-e: the command's environment, and -e on the connector" t_exec_env
run "-e: a command that exits early" t_exec_early
run "-e: a command that reads nothing" t_exec_reads_nothing
run "-e: a command killed by a signal" t_exec_signal
run "-e: no command before the handshake succeeds" t_exec_wrong_password
run "-e: a tunnel through nc to a local service" t_exec_tunnel
run "ten bad connections, then a good one" t_ten_bad_then_good
run "a stalled reader: sender blocks in constant memory" t_stalled_reader
run "a slow stderr: the hex display loses no line" t_stderr_slow
run "a stalled stderr: -w ends the session" t_stderr_stalled
run "a slow stderr starves neither direction" t_stderr_slow_both_ways
run "a stderr never read: the last lines wait -w once" t_stderr_never_read
run "stdout and stderr one pipe: no hex line torn" t_stderr_shares_stdout
run "stdout is a full disk" t_stdout_full
run "stdout is closed" t_stdout_closed
run "SIGINT mid-file: the receiver reports truncation" t_interrupted_sender
run "core dumps are off" t_no_core
run "sandbox: on in a session and in a -k -m 1 listener" t_sandbox_status
run "sandbox: a forbidden call kills the connector, the peer sees truncation" t_sandbox_kills_connector
run "sandbox: a forbidden call kills the listener" t_sandbox_kills_listener
run "sandbox: a forbidden call kills a -k -m 1 listener" t_sandbox_kills_k_listener
run "sandbox: each session's child of a -k listener is filtered" t_sandbox_session_child
run "sandbox: a forbidden call kills the session's child, not the listener" t_sandbox_kills_session_child
run "sandbox: SECCHAT_NO_SANDBOX turns it off, with a warning" t_sandbox_debug_switch
run "OPENSSL_* and resolver variables are gone before libcrypto starts" t_env_cleared
run "secrets: an idle -k -m 1 listener holds no plaintext and no key" t_mem_idle_k_listener
run "secrets: a listener serving many holds no session's plaintext or key" t_mem_serving_many
run "secrets: a listener without -k forgets w after its handshake" t_mem_no_w_after_handshake
run "secrets: our direction's keys go at our DONE, before the peer's" t_mem_direction_done
run "secrets: buffers and keys are locked in memory" t_mlock
run "hardened build: PIE, BIND_NOW, RELRO, stack protector, FORTIFY" t_hardened
run "the receiver's stdout fails: the sender does not exit 0" t_receiver_stdout_fails
run "password prompt on the terminal, without echo" t_password_prompt
run "^C at the password prompt restores echo" t_prompt_interrupted
run "chat at a terminal: arriving text goes above the typed line" t_terminal_chat
run "chat: the peer's escapes are inert on a terminal, exact in a file" t_chat_inert
run "chat: a listener serving many shows the peer's text inertly" t_many_inert
run "-e at a terminal: the command gets the peer's bytes exactly" t_exec_at_terminal
run "chat: arrows, Home/End, ^W, ^U, ^L, history; other keys never sent" t_chat_editor
run "chat: a wrapped line redraws whole, after a resize too" t_chat_wrapped
run "chat: keys typed during the handshake are shown once" t_chat_typed_ahead
run "chat: two people, twenty exchanges in two panes" t_chat_conversation
run "hex display on a terminal: one row per record, KEY, REKEY, CLOSE, DONE named" t_hex_tty
run "the listener listens before it derives the key" t_listen_first
run "-w: a connector started before the listener waits for it" t_connect_wait
run "-g: a one-time code shown, typed, accepted" t_code_typed
run "a listener at the password prompt: says so, and connectors wait" t_listener_prompt
run "-x: the whole hex on a terminal" t_hex_tty_full
run "-g: a wrong code burns it (exit 3, or a new one with -k)" t_code_burnt
run "-v on a terminal: a progress line for a transfer" t_progress
run "mandoc -Tlint finds nothing in secchat.1" t_manpage_lint
run "secchat.1 documents exactly the options of -h" t_manpage_options
run "make install and uninstall, staged with DESTDIR" t_install
run "without libssl-dev, make names the package" t_make_names_package
run "make check on a fresh machine: deps.sh installs or names what is missing" t_deps
run "make demo" t_demo
run "python peer: selftest against the vectors" t_peer_selftest
run "interop: C listener, Python connector, rekeys both ways" t_interop_py_connector
run "interop: Python listener, C connector, rekeys both ways" t_interop_py_listener
run "interop: 1 MB random each way, both roles" t_interop_binary
run "interop: wrong password, both roles exit 3" t_interop_wrong_password
run "interop: Python peer rejects a flipped record" t_interop_py_rejects_flip
run "a reset after the peer's CLOSE ends the session at once" t_reset_after_close
run "a peer that holds the connection open after DONE: exit 0 at once" t_hold_open
run "a peer that closes without DONE: exit 1, not confirmed" t_no_done
run "a REKEY due before the peer's KEY 0 waits in poll" t_rekey_waits_for_key0
run "REKEY naming a key not yet announced: exit 3" t_rekey_unannounced
run "REKEY with a low-order E (all-zero X25519): exit 3" t_rekey_low_order
run "REKEY with a truncated payload: exit 3" t_rekey_truncated
run "REKEY naming a retired key: exit 3" t_rekey_retired
run "KEY after DONE: exit 3" t_key_after_done
run "DATA after CLOSE: exit 3, never written" t_data_after_close
run "python peer against itself: data, rekeys, rotations, DONE" t_peer_selfplay
run "python peer against itself: each misbehaviour is caught" t_peer_selfplay_modes
[ "$VALGRIND" = none ] || run "valgrind: a full session, no errors or leaks" t_valgrind

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
