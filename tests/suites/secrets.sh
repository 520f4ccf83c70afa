# shellcheck shell=bash
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
run "secrets: a listener serving many holds no session's plaintext or key" t_mem_serving_many

t_mem_idle_k_listener() {	# after a session: no plaintext, no key left
	can_read_memory || return 0
	printf 'listener says 1357\n' > "$T/w/a"
	printf 'my bank PIN is 2468\n' > "$T/w/b"
	SECCHAT=$SECRETS listen l "$T/w/a" $SC -k -m 1 -r 1 127.0.0.1 0 || return 1
	dial c "$T/w/b" $SC -r 1 127.0.0.1 "$PORT"
	expect "connector status" "$CRC" 0 && same "$T/w/b" "$T/w/l.out" || return 1
	# The listener is back at accept().
	wait_until 5 at_least 2 '^secchat: test: accepting$' "$T/w/l.err"
	expect "secrets shown" "$(shown l secret | wc -l)" 4 || return 1
	# w stays for the next handshake: the scan must find it.
	python3 tests/memscan.py "$(child "$LPID")" --present "$(shown l w)" \
	    $(as_absent $(shown l secret) $(shown l key) $(shown l iv) \
	    "$(text_hex 'my bank PIN is 2468')" "$(text_hex 'listener says 1357')")
}
run "secrets: an idle -k -m 1 listener holds no plaintext and no key" t_mem_idle_k_listener

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
run "secrets: a listener without -k forgets w after its handshake" t_mem_no_w_after_handshake

# sending_keys_gone: process p (of t_mem_direction_done) holds none of tx,
# but still the peer's secret; memscan's report in scan.
sending_keys_gone() {
	python3 tests/memscan.py "$p" $tx \
	    --present "$(shown l secret | sed -n 2p)" > "$T/w/scan"
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
	local p tx
	tx=$(as_absent "$(shown l secret | head -n 1)" "$(shown l key | head -n 1)" \
	    "$(shown l iv | head -n 1)")
	p=$(child "$LPID")
	wait_until -e 0.1 2 sending_keys_gone && return 0	# until the DONE is sealed
	cat "$T/w/scan"
	return 1
}
run "secrets: our direction's keys go at our DONE, before the peer's" t_mem_direction_done

locked_kb() {	# locked_kb PID: the kB of memory PID has locked
	sed -n 's/^VmLck:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$1/status"
}

locked_at_least() { [ "$(locked_kb "$2")" -ge "$1" ] 2>/dev/null; }

t_mlock() {	# the pages of keys and plaintext are locked, if allowed
	local limit
	limit=$(ulimit -l)
	[ "$limit" = unlimited ] || [ "$(id -u)" = 0 ] || [ "$limit" -ge 2048 ] ||
	    { echo "skipped: RLIMIT_MEMLOCK is $limit KiB"; return 0; }
	quiet_fifo lq
	# Sanitizers turn mlock into a no-op: this looks at the real build.
	SECCHAT=$HOOKS listen l "$T/w/lq" $SC 127.0.0.1 0 || return 1
	local kb pid
	pid=$(child "$LPID")
	# Its buffers are locked after "listening on" and the key's derivation:
	# read at once, a loaded machine saw 20 kB.
	wait_until 5 locked_at_least 384 "$pid"
	kb=$(locked_kb "$pid")
	# stdin's and stdout's buffers alone are 384 KiB.
	[ "${kb:-0}" -ge 384 ] || { echo "VmLck: ${kb:-?} kB"; return 1; }
}
run "secrets: buffers and keys are locked in memory" t_mlock
