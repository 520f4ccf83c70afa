# shellcheck shell=bash
# Passwords: password files, the prompt on a terminal, one-time codes (-g).

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
run "password file errors" t_passfile_errors

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
run "password file: one trailing newline is dropped" t_passfile_newlines

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
run "password file readable by group or others is refused" t_passfile_mode_refused

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
run "-g: a code file that is not a code exits 1 (no overflow)" t_code_parse

t_password_prompt() {	# no -p: asked on the terminal, echo off, then back
	echo "over the terminal" > "$T/w/a"
	listen l "$T/w/a" $SC 127.0.0.1 0 || return 1
	tty_session p "$SECCHAT -i 1000 127.0.0.1 $PORT < /dev/null > $T/w/c.out 2> $T/w/c.err; echo status \$? > $T/w/c.rc; stty -a > $T/w/stty" ||
	    return 1
	wait_screen '^Password:'
	$TM send-keys "correct horse battery staple" Enter
	wait_file "$T/w/stty"
	$TM capture-pane -p > "$T/w/screen"
	$TM kill-server
	reap
	expect "connector" "$(cat "$T/w/c.rc")" "status 0" &&
	    same "$T/w/a" "$T/w/c.out" && expect "listener status" "$LRC" 0 &&
	    ! grep -q 'battery' "$T/w/screen" &&
	    grep -qE '(^| )echo( |$)' "$T/w/stty" &&
	    grep -qE '(^| )icanon( |$)' "$T/w/stty"
}
run "password prompt on the terminal, without echo" t_password_prompt

# Connect first, then ask (as ssh does): nothing listens, so no prompt.
t_connect_first() {
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	tty_session f "$SECCHAT -i 1000 127.0.0.1 $port 2> $T/w/c.err; echo status \$? > $T/w/c.rc" ||
	    return 1
	wait_file "$T/w/c.rc"
	$TM capture-pane -p > "$T/w/screen"
	$TM kill-server
	expect "connector" "$(cat "$T/w/c.rc")" "status 1" &&
	    has_line "$T/w/c.err" "secchat: connect to 127.0.0.1 port $port: Connection refused" &&
	    ! grep -q 'Password' "$T/w/screen" "$T/w/c.err"
}
run "connect first, then ask: no prompt when nothing listens" t_connect_first

t_prompt_interrupted() {	# ^C at the prompt leaves the terminal sane
	# The shell ignores SIGINT and cannot repair the terminal: secchat must.
	# The prompt comes after the listener's greeting.
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	tty_session q "sh -c \"trap '' INT; $SECCHAT -i 1000 127.0.0.1 $PORT; echo status \\\$? > $T/w/c.rc; stty -a > $T/w/stty\"" || return 1
	wait_screen '^Password:'
	$TM send-keys C-c
	wait_file "$T/w/stty"
	$TM kill-server
	expect "status" "$(cat "$T/w/c.rc")" "status 130" &&
	    grep -qE '(^| )echo( |$)' "$T/w/stty"
}
run "^C at the password prompt restores echo" t_prompt_interrupted

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
run "a listener at the password prompt: says so, and connectors wait" t_listener_prompt

t_code_typed() {	# -g: the listener shows a code, the connector types it
	local code
	code_listener || return 1
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
run "-g: a one-time code shown, typed, accepted" t_code_typed

second_code() {	# the second one-time code shown in l.err, in code
	code=$(sed -n 's/^secchat: one-time code \([-0-9]*\): .*/\1/p' "$T/w/l.err" | sed -n 2p)
	[ -n "$code" ]
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
	local code
	wait_until 10 second_code
	echo "$code" > "$T/w/code"
	dial c /dev/null -g -p "$T/w/code" 127.0.0.1 "$PORT"
	expect "new code" "$CRC" 0 && same "$T/w/a" "$T/w/c.out" &&
	    has_line "$T/w/l.err" "secchat: the one-time code is burnt; a new one:"
}
run "-g: a wrong code burns it (exit 3, or a new one with -k)" t_code_burnt
