# shellcheck shell=bash
# Through a relay that records, and can attack, what crosses the wire.

# relay_in_front SPEC: the relay, attacking with SPEC if any, in front of
# the listener on PORT, its log in wire; set RPID and RPORT.
relay_in_front() {
	timeout 40 $RELAY --log "$T/w/wire" ${1:+--attack "$1"} \
	    --password-file "$PF" 127.0.0.1 "$PORT" > "$T/w/relay.out" \
	    2> "$T/w/relay.err" &
	RPID=$!
	PIDS="$PIDS $RPID"
	wait_number RPORT "$T/w/relay.out" "$RPID" 'relay port \([0-9]*\)'
}

# relayed SPEC LIN CIN ARGS...: listener <- relay <- connector.
relayed() {
	local spec=$1 lin=$2 cin=$3 i
	shift 3
	listen l "$lin" $SC "$@" 127.0.0.1 0 || return 1
	relay_in_front "$spec" || return 1
	dial c "$cin" $SC "$@" 127.0.0.1 "$RPORT"
	reap
	wait "$RPID"
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
run "hex lines equal the bytes on the wire" t_hex_matches_wire

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

GARBAGE=$(head -c 38 /dev/urandom | od -An -tx1 | tr -d ' \n')
BADPT="handshake failed: peer sent a bad point"

t_flip_length() { attack flip:c2s:6:1 l 3 "$AUTH" 5; }
run "attack: flipped length bit" t_flip_length

t_flip_ciphertext() { attack flip:c2s:6:4 l 3 "$AUTH" 5; }
run "attack: flipped ciphertext bit" t_flip_ciphertext

t_flip_tag() { attack flip:c2s:6:-1 l 3 "$AUTH" 5; }
run "attack: flipped tag bit" t_flip_tag

t_flip_s2c() { attack flip:s2c:8:9 c 3 "$AUTH" 7; }
run "attack: flipped bit listener to connector" t_flip_s2c

t_bad_length() { attack inject:c2s:5:ffff00 l 3 "malformed record: bad length 65535" 5; }
run "attack: length out of range" t_bad_length

t_drop() { attack drop:c2s:6 l 3 "$AUTH" 5; }
run "attack: dropped record" t_drop

t_replay() { attack dup:c2s:6 l 3 "$AUTH" 6; }
run "attack: replayed record" t_replay

t_swap() { attack swap:c2s:6 l 3 "$AUTH" 5; }
run "attack: swapped records" t_swap

t_reflect() {	# the connector keeps quiet, so only the reflection arrives
	seq 1 20 | sed 's/^/back /' > "$T/w/a"
	relayed reflect:s2c:3 "$T/w/a" <(sleep 3) -q
	expect "listener status" "$LRC" 3 && has_line "$T/w/l.err" "secchat: $AUTH" &&
	    [ ! -s "$T/w/l.out" ]
}
run "attack: record reflected to its sender" t_reflect

t_cut_mid_record() { attack cutmid:c2s:6 l 1 "$TRUNC (closed by 127.0.0.1): 35 B received" 5; }
run "attack: cut in the middle of a record" t_cut_mid_record

t_cut_between() { attack cut:c2s:6 l 1 "$TRUNC (closed by 127.0.0.1): 35 B received" 5; }
run "attack: cut between records" t_cut_between

t_cut_before_close() { attack cut:c2s:21 l 1 "$TRUNC (closed by 127.0.0.1): 151 B received" 20; }
run "attack: cut right before CLOSE" t_cut_before_close

t_after_done() {	# c2s: KEY 0, 20 lines, CLOSE, DONE (record 22)
	# Bytes after DONE are never opened, whatever TCP did (4.1): exit 0.
	seq 1 20 | sed 's/^/line /' > "$T/w/b"
	relayed "inject:c2s:22:0011$(printf '%034d' 0)" /dev/null "$T/w/b" -q
	expect "listener status" "$LRC" 0 && expect "connector status" "$CRC" 0 &&
	    same "$T/w/b" "$T/w/l.out" && ! grep -q malformed "$T/w/l.err"
}
run "attack: a record injected after DONE is ignored" t_after_done

t_garbage_record() { attack "inject:c2s:6:0026$GARBAGE" l 3 "$AUTH" 6; }
run "attack: garbage framed as a record" t_garbage_record

t_stray_byte() { attack inject:c2s:6:01 l 3 "$AUTH" 6; }
run "attack: one stray byte" t_stray_byte

t_garbage() {	# random bytes: any clean failure, never their plaintext
	attack garbage:c2s:6:300 l 3 "$AUTH" 6 && return 0
	[ "$LRC" = 1 ] || [ "$LRC" = 3 ] || return 1
	grep -Eqx "secchat: ($AUTH|connection lost.*|malformed record: .*)" "$T/w/l.err" &&
	    same "$T/w/kept" "$T/w/l.out"
}
run "attack: 300 random bytes" t_garbage

# hs_attack SPEC STATUS LINE [LLINE]: a handshake attack that fails before
# a password is checked: the connector exits STATUS with LINE; the lone
# listener logs LLINE about the connection, if given, and goes on listening
# (a good connector then gets in).
hs_attack() {
	local spec=$1 status=$2 msg=$3 lmsg=${4:-}
	echo "still listening" > "$T/w/a"
	listen l "$T/w/a" $SC -q 127.0.0.1 0 || return 1
	relay_in_front "$spec" || return 1
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
run "attack: iteration count below 1000" t_iter_low

# A count or salt rewritten is a checked password that fails: exit 3 both.
t_iter_rewritten() { attack iter:2000 c 3 "$WRONG" 0 && peer_line "$T/w/l.err" "$WRONG"; }
run "attack: iteration count rewritten" t_iter_rewritten

t_salt_rewritten() { attack salt c 3 "$WRONG" 0 && peer_line "$T/w/l.err" "$WRONG"; }
run "attack: salt rewritten" t_salt_rewritten

MALFORMED="127.0.0.1 refused our handshake as malformed"
t_pB_offcurve() { hs_attack pB:offcurve 3 "$BADPT"; }
run "attack: pB off the curve" t_pB_offcurve

t_pB_prefix() { hs_attack pB:badprefix 3 "$BADPT"; }
run "attack: pB with a bad first byte" t_pB_prefix

t_pB_wN() { hs_attack pB:wn 3 "$BADPT"; }
run "attack: pB = w*N" t_pB_wN

t_pA_offcurve() { hs_attack pA:offcurve 3 "$MALFORMED" "$BADPT"; }
run "attack: pA off the curve" t_pA_offcurve

t_pA_prefix() { hs_attack pA:badprefix 3 "$MALFORMED" "$BADPT"; }
run "attack: pA with a bad first byte" t_pA_prefix

t_pA_wM() { hs_attack pA:wm 3 "$MALFORMED" "$BADPT"; }
run "attack: pA = w*M" t_pA_wM
