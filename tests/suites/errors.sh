# shellcheck shell=bash
# Errors: usage, peers that are not secchat, the network's failures,
# timeouts and a sender that dies.

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
run "an HTTP client is not secchat" t_not_secchat_client

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
	wait_file "$T/w/port"
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
run "secchat/1 and secchat/2 peers are named by their versions" t_other_version

t_not_secchat_server() {
	fake_server "$(printf 'HTTP/1.0 400 Bad Request\r\n\r\n' | od -An -tx1 | tr -d ' \n')"
	expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: peer is not speaking secchat/3"
}
run "an HTTP server is not secchat" t_not_secchat_server

t_no_greeting() {	# a listener that accepts and says nothing: busy, or not secchat
	fake_server "" -w 1
	expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: no secchat greeting from 127.0.0.1 port $(cat "$T/w/port") within 1 s: listener busy, or not secchat"
}
run "a silent listener: no greeting, busy or not secchat" t_no_greeting

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
run "usage errors exit 2" t_usage

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
run "connection refused" t_refused

t_resolve() {
	dial c /dev/null $SC no-such-host.invalid 80
	expect status "$CRC" 1 &&
	    grep -q '^secchat: no-such-host.invalid port 80: ' "$T/w/c.err"
}
run "name resolution failure" t_resolve

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
run "handshake timeout" t_handshake_timeout

t_idle_timeout() {
	listen l /dev/null $SC -w 1 127.0.0.1 0 || return 1
	sleep 3 | timeout 10 $SECCHAT $SC 127.0.0.1 "$PORT" > /dev/null 2>&1 &
	PIDS="$PIDS $!"
	reap
	expect "listener status" "$LRC" 1 &&
	    has_line "$T/w/l.err" "secchat: timed out: no progress for 1 seconds"
}
run "idle timeout (-w)" t_idle_timeout

t_truncated() {	# the sender dies: the receiver must not call it complete
	listen l /dev/null $SC -q 127.0.0.1 0 || return 1
	{ echo "partial"; sleep 10; } |
	    timeout 20 $SECCHAT $SC -q 127.0.0.1 "$PORT" > /dev/null 2>&1 &
	local cpid=$!
	PIDS="$PIDS $cpid"
	wait_until 5 grep -q partial "$T/w/l.out"
	kill -TERM "$cpid"
	reap
	expect "listener status" "$LRC" 1 &&
	    has_line "$T/w/l.err" "secchat: download cut: the sender was terminated (SIGTERM) after 8 B" &&
	    has_line "$T/w/l.out" "partial"
}
run "sender killed: the receiver hears why (END)" t_truncated

t_usage_named() {	# each usage error says what is wrong, in one line
	local args why
	while IFS='|' read -r args why; do
		eval "set -- $args"
		$SECCHAT "$@" > "$T/w/out" 2> "$T/w/err" < /dev/null
		expect "status of 'secchat $args'" "$?" 2 &&
		    expect "first line of 'secchat $args'" "$(head -n 1 "$T/w/err")" "secchat: $why" &&
		    expect "second line" "$(sed -n 2p "$T/w/err" | cut -c1-14)" "usage: secchat" ||
		    return 1
	done <<-'LIST'
	|missing host and port
	localhost|missing port
	-l -p /dev/null|missing port
	-l 127.0.0.1|missing port
	host:8080|host:8080: give host and port as two arguments
	[::1]:8080|[::1]:8080: give host and port as two arguments
	-l 8080 8081 8082|too many arguments
	a b c|too many arguments
	-l 127.0.0.1 70000|port 70000: out of range (0 to 65535)
	h 0|port 0: out of range (1 to 65535)
	h 65536|port 65536: out of range (1 to 65535)
	-l abc|port abc: unknown service
	h 80x|port 80x: unknown service
	LIST
	$SECCHAT --version > "$T/w/out" 2>&1
	expect "--version status" "$?" 0 && grep -qx 'secchat [0-9][0-9.]*' "$T/w/out"
}
run "usage errors name what is wrong; --version" t_usage_named

t_port_service() {	# a port by its service name, or its number
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	dial c /dev/null $SC 127.0.0.1 discard
	expect status "$CRC" 1 &&
	    has_line "$T/w/c.err" "secchat: connect to 127.0.0.1 port discard: Connection refused" ||
	    return 1
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	echo by-name > "$T/w/a"
	dial c "$T/w/a" $SC 127.0.0.1 "$PORT"
	reap
	expect status "$CRC" 0 && same "$T/w/a" "$T/w/l.out"
}
run "a port by number or by service name" t_port_service

t_name_cut() {		# a -n name over 24 bytes is cut at a character, and said
	dial c /dev/null $SC -n "aaaaaaaaaaaaaaaaaaaaaaéé-more" 127.0.0.1 1
	has_line "$T/w/c.err" 'secchat: the name "aaaaaaaaaaaaaaaaaaaaaaéé-more" is over 24 bytes: the chat shows "aaaaaaaaaaaaaaaaaaaaaaé"'
}
run "-n: a name over 24 bytes is cut, and said" t_name_cut
