# shellcheck shell=bash
# -e: a command per session.

UNREAD="the command stopped reading: the peer's data was not all delivered"
# The sender's line when the command stopped reading (its amounts vary).
UNREAD_SEEN="upload cut: the receiver had its command stop reading after [0-9.]+ ([KM]iB|B)( of [0-9.]+ ([KM]iB|B))?"

t_exec_files() {	# -k -e: one file per session, each whole
	listen l /dev/null $SC -q -k -e "cat > '$T/w/upload.'\$SECCHAT_SESSION" \
	    127.0.0.1 0 || return 1
	local i
	for i in 1 2 3; do
		head -c $((i * 100000)) /dev/urandom > "$T/w/in$i"
		dial c$i "$T/w/in$i" $SC -q -b 127.0.0.1 "$PORT"
		expect "connector $i" "$CRC" 0 || return 1
	done
	wait_until 5 at_least 3 'command exited with status 0$' "$T/w/l.err"
	for i in 1 2 3; do same "$T/w/in$i" "$T/w/upload.$i" || return 1; done
	expect "exits logged" "$(grep -c "^secchat: 127.0.0.1 port [0-9]*: command exited with status 0$" "$T/w/l.err")" 3
}
run "-e: -k, one file per session" t_exec_files

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
run "-e: the command's environment, and -e on the connector" t_exec_env

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
	    grep -Eqx "secchat: $UNREAD_SEEN" "$T/w/c.err" &&
	    same "$T/w/want" "$T/w/c.out"
}
run "-e: a command that exits early" t_exec_early

t_exec_reads_nothing() {	# a command that never reads: its output still goes
	head -c 2000000 /dev/urandom > "$T/w/a"
	listen l /dev/null $SC -q -e 'echo hello' 127.0.0.1 0 || return 1
	dial c "$T/w/a" $SC -q -b 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 1 && expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/c.out" "hello" &&
	    has_line "$T/w/l.err" "secchat: $UNREAD" &&
	    grep -Eqx "secchat: $UNREAD_SEEN" "$T/w/c.err" || return 1
	# With nothing to read, nothing is lost: a clean end.
	listen l /dev/null $SC -q -e 'echo hello' 127.0.0.1 0 || return 1
	dial c /dev/null $SC -q 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    has_line "$T/w/c.out" "hello"
}
run "-e: a command that reads nothing" t_exec_reads_nothing

t_exec_signal() {	# killed by a signal: no CLOSE, the peer hears why
	listen l /dev/null $SC -q -e 'echo partial; kill -9 $$' 127.0.0.1 0 ||
	    return 1
	dial c <(sleep 2) $SC -q 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 1 && expect "connector status" "$CRC" 1 &&
	    has_line "$T/w/l.err" "secchat: command killed by signal 9" &&
	    has_line "$T/w/c.err" "secchat: download cut: the sender had its command killed (SIGKILL) after 8 B" &&
	    has_line "$T/w/c.out" "partial"
}
run "-e: a command killed by a signal" t_exec_signal

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
	wait_file "$T/w/eport"
	listen l /dev/null $SC -q -k -b -e "nc -N 127.0.0.1 $(cat "$T/w/eport")" \
	    127.0.0.1 0 || return 1
	head -c 300000 /dev/urandom > "$T/w/a"
	dial c "$T/w/a" $SC -q -b 127.0.0.1 "$PORT"
	expect "connector status" "$CRC" 0 && same "$T/w/a" "$T/w/c.out"
}
run "-e: a tunnel through nc to a local service" t_exec_tunnel

t_exec_wrong_password() {	# the command never starts before the handshake
	listen l /dev/null $SC -q -k -e "touch '$T/w/started.'\$SECCHAT_SESSION" \
	    127.0.0.1 0 || return 1
	dial bad /dev/null -i 1000 -p "$T/pf.wrong" -q 127.0.0.1 "$PORT"
	expect "wrong password" "$CRC" 3 || return 1
	dial c /dev/null $SC -q 127.0.0.1 "$PORT"
	expect "right password" "$CRC" 0 && [ -e "$T/w/started.2" ] &&
	    [ ! -e "$T/w/started.1" ]
}
run "-e: no command before the handshake succeeds" t_exec_wrong_password

t_exec_never_overwrites() {	# the README's recipe, across a restart
	local recipe='exec cat > "$(mktemp upload.XXXXXX)"' i sc=$SECCHAT
	case $sc in /*) ;; *) sc=$PWD/$sc ;; esac
	head -c 100000 /dev/urandom > "$T/w/a"
	echo second > "$T/w/b"
	mkdir "$T/w/up"
	for i in a b; do
		rm -f "$T/w/l.err"	# or wait_port may read the last listener's
		(cd "$T/w/up" && exec timeout 60 $sc -l -v -b $SC -e "$recipe" 127.0.0.1 0 \
		    < /dev/null > "$T/w/l.out" 2> "$T/w/l.err") &
		LPID=$!
		PIDS="$PIDS $LPID"
		wait_port "$T/w/l.err" "$LPID" || return 1
		dial c "$T/w/$i" $SC -b 127.0.0.1 "$PORT"
		reap
		expect "upload $i" "$CRC $LRC" "0 0" || return 1
	done
	expect "files" "$(ls "$T/w/up" | wc -l)" 2 &&
	    cat "$T/w/up"/upload.* | cmp -s - <(cat "$T/w/a" "$T/w/b") ||
	    cat "$T/w/up"/upload.* | cmp -s - <(cat "$T/w/b" "$T/w/a")
}
run "-e: the README's upload recipe never overwrites, across restarts" t_exec_never_overwrites
