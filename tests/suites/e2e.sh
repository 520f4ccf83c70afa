# shellcheck shell=bash
# End to end: sessions that work, in every shape of input.

t_lines_both_ways() {
	seq 1 3000 | sed 's/^/listener line /' > "$T/w/a"
	seq 1 2000 | sed 's/^/connector line /' > "$T/w/b"
	clean_session "$T/w/a" "$T/w/b" &&
	    has_line "$T/w/l.err" "secchat: handshake done" &&
	    has_line "$T/w/c.err" "secchat: handshake done"
}
run "text lines both ways at once" t_lines_both_ways

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
run "-P pads DATA records to a multiple, up to the cap" t_padding

t_bulk_file() {
	head -c 20000000 /dev/urandom > "$T/w/rand"
	clean_session "$T/w/rand" /dev/null -b -q || return 1
	expect sha256 "$(sha256sum < "$T/w/c.out")" "$(sha256sum < "$T/w/rand")"
}
run "20 MB random file, bulk mode" t_bulk_file

t_line_mode_file() {
	head -c 20000000 /dev/urandom > "$T/w/rand"
	clean_session /dev/null "$T/w/rand" -q || return 1
	expect sha256 "$(sha256sum < "$T/w/l.out")" "$(sha256sum < "$T/w/rand")"
}
run "20 MB random file, line mode" t_line_mode_file

t_last_line() {
	printf 'first\nno newline at the end' > "$T/w/a"
	printf 'crlf\r\nnul\0byte\n\n' > "$T/w/b"
	clean_session "$T/w/a" "$T/w/b"
}
run "last line without newline, CRLF and NUL" t_last_line

t_empty() {
	clean_session /dev/null /dev/null || return 1
	# Each side: KEY 0 (0x31 bytes), CLOSE and DONE (0x11).
	[ ! -s "$T/w/l.out" ] && [ ! -s "$T/w/c.out" ] &&
	    expect "records seen" "$(grep -c '^[<>] ' "$T/w/l.err")" 6 &&
	    expect "KEY records" "$(grep -c '^[<>] 0031' "$T/w/l.err")" 2 &&
	    expect "CLOSE and DONE" "$(grep -c '^[<>] 0011' "$T/w/l.err")" 4 &&
	    has_line "$T/w/l.err" "secchat: sent 3 records (0 bytes), received 3 records (0 bytes), rekeys 0 sent, 0 received, at most 0 bytes unconfirmed" || return 1
	# One byte is "1 byte", not "1 bytes".
	printf x > "$T/w/x"
	rm -f "$T/w/l.err"	# or wait_port may read the last listener's
	clean_session "$T/w/x" /dev/null &&
	    grep -q '^secchat: sent 3 records (0 bytes), received 4 records (1 byte), ' "$T/w/c.err"
}
run "empty input both ways" t_empty

t_long_line() {
	{ head -c 100000 /dev/zero | tr '\0' 'x'; echo; } > "$T/w/a"
	clean_session "$T/w/a" /dev/null || return 1
	# 100001 bytes: six full records of 16384 and one of 1697, between
	# KEY 0 and CLOSE, DONE.
	expect "records sent" "$(grep -c '^> ' "$T/w/l.err")" 10 &&
	    expect "full records" "$(grep -c '^> 4011' "$T/w/l.err")" 6 &&
	    expect "last DATA" "$(grep -c '^> 06b2' "$T/w/l.err")" 1
}
run "100 KB line in several records" t_long_line

t_ipv6() {
	seq 1 100 > "$T/w/a"
	listen l "$T/w/a" $SC -6 ::1 0 || return 1
	dial c /dev/null $SC -6 ::1 "$PORT"
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/a" "$T/w/c.out" &&
	    grep -q '^secchat: connected to ::1 port' "$T/w/c.err"
}
run "IPv6 loopback" t_ipv6

t_ipv6_brackets() {	# "[::1]", as written in URLs, on both sides
	seq 1 10 > "$T/w/a"
	listen l "$T/w/a" $SC '[::1]' 0 || return 1
	dial c /dev/null $SC '[::1]' "$PORT"
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/a" "$T/w/c.out" &&
	    grep -q '^secchat: listening on ::1 port' "$T/w/l.err"
}
run "IPv6 address in brackets" t_ipv6_brackets

t_wildcard_v4_and_v6() {	# no host: one listener takes both families
	echo hello > "$T/w/a"
	listen l "$T/w/a" $SC -k -m 1 0 || return 1
	dial c /dev/null $SC 127.0.0.1 "$PORT"
	expect "IPv4 status" "$CRC" 0 && same "$T/w/a" "$T/w/c.out" || return 1
	dial c /dev/null $SC ::1 "$PORT"
	expect "IPv6 status" "$CRC" 0
}
run "listener without host takes IPv4 and IPv6" t_wildcard_v4_and_v6

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
run "wrong password: both sides exit 3" t_wrong_password

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
run "rekey every record (-r 1), 2000 lines" t_rekey_by_count

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
run "rekey by time (-R 1)" t_rekey_by_time

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
run "-k serves the next connection after a failure" t_keep_listening

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
run "the listener listens before it derives the key" t_listen_first

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
run "-w: a connector started before the listener waits for it" t_connect_wait

t_valgrind() {	# one whole session, both sides under memcheck
	# Valgrind translates code into memory it makes executable, which the
	# sandbox forbids (and it unlinks its FIFOs, polls signals): memcheck
	# runs the debugging build, the one that heeds SECCHAT_NO_SANDBOX.
	local SECCHAT="env SECCHAT_NO_SANDBOX=1 $VALGRIND -q --error-exitcode=99 --leak-check=full
	    --show-leak-kinds=definite,indirect,possible
	    --errors-for-leak-kinds=definite,indirect,possible
	    --log-file=$T/w/vg.%p $DEBUG"
	seq 1 40 | sed 's/^/valgrind /' > "$T/w/a"
	seq 1 30 > "$T/w/b"
	clean_session "$T/w/a" "$T/w/b" -r 5 || return 1
	# Valgrind 3.19 knows no mlock2 (325): it says so, the call fails
	# with ENOSYS and secchat falls back to mlock; that note is no error.
	grep -q 'secchat: rekeyed sending key (epoch 8)' "$T/w/l.err" &&
	    expect "valgrind reports" "$(cat "$T"/w/vg.* | grep -v -e \
	    'unhandled amd64-linux syscall: 325$' -e 'write your own handler\.$' \
	    -e 'README_MISSING_SYSCALL_OR_IOCTL\.$' -e 'we consider this a bug\.' \
	    -e 'valgrind\.org/support/bug_reports\.html\.$' | wc -c)" 0
}
[ "$VALGRIND" = none ] || run "valgrind: a full session, no errors or leaks" t_valgrind

t_ipv4_mapped() {	# a dual-stack listener names an IPv4 peer as IPv4
	listen l /dev/null $SC -e 'echo "$SECCHAT_PEER_ADDR"' 0 || return 1
	dial c /dev/null $SC 127.0.0.1 "$PORT"
	reap
	expect "connector" "$CRC" 0 && expect "listener" "$LRC" 0 &&
	    grep -q '^secchat: listening on :: port' "$T/w/l.err" &&
	    grep -q '^secchat: connection from 127\.0\.0\.1 port [0-9]*$' "$T/w/l.err" &&
	    ! grep -q 'ffff' "$T/w/l.err" &&
	    expect "SECCHAT_PEER_ADDR" "$(cat "$T/w/c.out")" 127.0.0.1
}
run "an IPv4 peer of a dual-stack listener shown as IPv4" t_ipv4_mapped
