# shellcheck shell=bash
# Known answers: the primitives against published vectors, the
# session against its vector, and what a thief of one secret reads.

t_rfc9382() { kat spake2 rfc9382-p256.txt; }
run "RFC 9382 SPAKE2-P256 vectors" t_rfc9382

t_pbkdf2() { kat pbkdf2 pbkdf2-hmac-sha256.txt; }
run "RFC 7914 PBKDF2-HMAC-SHA256 vectors" t_pbkdf2

# The secchat/3 vectors of the independent peer (tests/peer3.py): the
# session's handshake (its first block; the records are the record layer's),
# and every REFUSAL with the connector's line.
t_session_vector() {
	"$KAT" handshake3 tests/data/secchat3-session.txt > "$T/w/kat.out" ||
	    return 1
	grep -v '^#' tests/data/secchat3-session.txt | sed '/./,$!d' |
	    sed '/^$/,$d' | diff - "$T/w/kat.out"
}
run "secchat/3 session vector: the handshake, byte for byte" t_session_vector

t_refusal_vectors() { kat refusals3 secchat3-refusals.txt; }
run "secchat/3 refusals and special greetings, byte for byte" t_refusal_vectors

# The whole session vector: the handshake, every record of connection 1
# (KEY, PING, DATA, ACK, REKEY, the cut), sealed and opened by two secchat
# sessions, with the counters S, A and W; then the resume blocks
# (connections 2 and 3, section 8): greetings, RESUME, RESUMED, key sets,
# generations, and the records and counters after the resume.
t_session3() { kat session3 secchat3-session.txt; }
run "secchat/3 session vector: three connections, two resumes" t_session3

# END records, their words, the lines of 9.3 and 9.4 (with 9.4's END
# parts: "; not resumed within W", "; bob no longer holds the session")
# and the amounts.
t_end3() { kat end3 secchat3-end.txt; }
run "secchat/3 END records and report lines (9.3, 9.4)" t_end3

t_x25519_refused() { kat x25519 x25519-refused.txt; }
run "X25519 shares refused as public-equivalent or DH zero (5.6)" t_x25519_refused

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
run "a stolen secret stops at the next DH rekey (hash-only would not)" t_compromise
