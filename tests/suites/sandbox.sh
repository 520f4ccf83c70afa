# shellcheck shell=bash
# The sandbox and the environment.

# sandboxed_attempt ROLE: the ROLE (l, c or k for a -k listener) tries a
# forbidden call once the handshake is done and the peer's KEY 0 read:
# SIGSYS, and the peer reports the connection lost.
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
		    grep -Eqx 'secchat: connection lost \((closed by 127\.0\.0\.1|Connection reset by peer)\)' "$T/w/c.err"
		return
	fi
	reap
	local dead=$CRC peer=l survived=$LRC
	[ "$role" = c ] || dead=$LRC peer=c survived=$CRC
	expect "status of the one that tried" "$dead" 159 &&	# 128 + SIGSYS
	    expect "peer status" "$survived" 1 &&
	    has_line "$T/w/$peer.err" "secchat: connection lost (closed by 127.0.0.1)"
}

t_sandbox_kills_connector() { sandboxed_attempt c; }
run "sandbox: a forbidden call kills the connector, the peer sees truncation" t_sandbox_kills_connector

t_sandbox_kills_listener() { sandboxed_attempt l; }
run "sandbox: a forbidden call kills the listener" t_sandbox_kills_listener

t_sandbox_kills_k_listener() { sandboxed_attempt k; }
run "sandbox: a forbidden call kills a -k -m 1 listener" t_sandbox_kills_k_listener

t_sandbox_kills_session_child() { sandboxed_attempt f; }
run "sandbox: a forbidden call kills the session's child, not the listener" t_sandbox_kills_session_child

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
run "sandbox: each session's child of a -k listener is filtered" t_sandbox_session_child

t_sandbox_debug_switch() {	# SECCHAT_NO_SANDBOX: heeded by a debugging build only
	seq 1 5 > "$T/w/a"
	listen l "$T/w/a" $SC 127.0.0.1 0 || return 1
	SECCHAT="env SECCHAT_NO_SANDBOX=1 SECCHAT_TEST_HOOK=forbidden $DEBUG" \
	    dial c "$T/w/a" $SC 127.0.0.1 "$PORT"
	reap
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    has_line "$T/w/c.err" "secchat: warning: SECCHAT_NO_SANDBOX is set: no syscall sandbox (for debugging only)" ||
	    return 1
	# A build without -DSECCHAT_DEBUG ignores it: the attempt is killed.
	quiet_fifo lq 3
	quiet_fifo cq 3
	listen l "$T/w/lq" $SC 127.0.0.1 0 || return 1
	SECCHAT="env SECCHAT_NO_SANDBOX=1 SECCHAT_TEST_HOOK=forbidden $HOOKS" \
	    dial c "$T/w/cq" $SC 127.0.0.1 "$PORT"
	reap
	expect "connector status" "$CRC" 159 &&
	    ! grep -q SECCHAT_NO_SANDBOX "$T/w/c.err"
}
run "sandbox: SECCHAT_NO_SANDBOX turns it off in a debugging build only" t_sandbox_debug_switch

t_sandbox_status() {	# the kernel's view: filter mode, no new privileges
	local SECCHAT="env -u SECCHAT_NO_SANDBOX $HOOKS" p cpid
	listen l /dev/null $SC -k -m 1 127.0.0.1 0 || return 1
	p=$(child "$LPID")
	# Its filter goes on after the password's key, before any accept.
	wait_until 10 grep -qx 'Seccomp:	2' "/proc/$p/status" ||
	    { echo "-k -m 1 listener: no filter"; return 1; }
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
run "sandbox: on in a session and in a -k -m 1 listener" t_sandbox_status

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
run "OPENSSL_* and resolver variables are gone before libcrypto starts" t_env_cleared

t_no_core() {
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	grep -Eq '^Max core file size +0 +0 ' "/proc/$(child "$LPID")/limits"
}
run "core dumps are off" t_no_core


# filtered_before PID FILE HOOK: PID (run by timeout) says in FILE that it
# is filtered before its first network byte (SECCHAT_TEST_HOOK=HOOK); its
# process shows the filter then; the forbidden call it makes next kills it.
filtered_before() {
	local pid=$1 file=$2 hook=$3 p
	wait_until -p "$pid" 10 grep -q "test: $hook: filtered\$" "$file" ||
	    { echo "no line 'test: $hook: filtered' in $(basename "$file")"; return 1; }
	p=$(child "$pid")
	grep -qx 'Seccomp:	2' "/proc/$p/status" ||
	    { echo "$hook: not filtered before the first network byte"; return 1; }
}

t_sandbox_preauth_connector() {	# filtered before it reads the greeting
	local pid
	quiet_fifo lq 5
	listen l "$T/w/lq" $SC 127.0.0.1 0 || return 1
	SECCHAT_TEST_HOOK=preauth timeout 20 $HOOKS $SC -v 127.0.0.1 "$PORT" \
	    < /dev/null > "$T/w/c.out" 2> "$T/w/c.err" &
	pid=$!
	PIDS="$PIDS $pid"
	filtered_before "$pid" "$T/w/c.err" preauth || return 1
	wait "$pid"
	expect "connector status" "$?" 159 &&	# 128 + SIGSYS
	    ! grep -q 'not killed' "$T/w/c.err"
}
run "sandbox: the connector is filtered before its first network byte" t_sandbox_preauth_connector

t_sandbox_preauth_listener() {	# a lone listener, and -k -m 1 -e, before accepting
	local args
	for args in "" "-k -m 1 -e cat"; do
		# shellcheck disable=SC2086
		SECCHAT="env SECCHAT_TEST_HOOK=preauth $HOOKS" \
		    listen l /dev/null $SC $args 127.0.0.1 0 || return 1
		filtered_before "$LPID" "$T/w/l.err" preauth || return 1
		reap
		expect "listener ($args) status" "$LRC" 159 || return 1
	done
}
run "sandbox: a listener is filtered before its first connection, -k -m 1 -e too" t_sandbox_preauth_listener

t_sandbox_preauth_child() {	# a serving child, before its connection's first byte
	local cpid p k
	SECCHAT="env SECCHAT_TEST_HOOK=preauth $HOOKS" \
	    listen l /dev/null $SC -k 127.0.0.1 0 || return 1
	timeout 20 $SECCHAT $SC 127.0.0.1 "$PORT" < /dev/null \
	    > "$T/w/c.out" 2> "$T/w/c.err" &
	cpid=$!
	PIDS="$PIDS $cpid"
	wait_until -p "$LPID" 10 grep -q \
	    '^secchat: 127\.0\.0\.1 port [0-9]*: test: preauth: filtered$' \
	    "$T/w/l.err" || { echo "no child said it is filtered"; return 1; }
	p=$(child "$LPID")
	k=$(pgrep -P "$p" | head -n 1)
	# Its own filter on the listener's.
	grep -qx 'Seccomp_filters:	2' "/proc/$k/status" ||
	    { echo "the child: $(grep Seccomp "/proc/$k/status")"; return 1; }
	wait "$cpid"
	expect "connector status" "$?" 1 &&
	    wait_until 5 grep -q '^secchat: 127\.0\.0\.1 port [0-9]*: handshake ended by signal 31$' "$T/w/l.err" &&
	    kill -0 "$p"
}
run "sandbox: a serving child is filtered before its first network byte" t_sandbox_preauth_child

t_sandbox_server() {	# the serving listener process: no open, no exec
	SECCHAT="env SECCHAT_TEST_HOOK=server $HOOKS" \
	    listen l /dev/null $SC -k 127.0.0.1 0 || return 1
	filtered_before "$LPID" "$T/w/l.err" server || return 1
	reap
	expect "listener status" "$LRC" 159
}
run "sandbox: the serving listener process has a filter of its own" t_sandbox_server

