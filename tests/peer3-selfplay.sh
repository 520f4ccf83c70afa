#!/bin/sh
# tests/peer3-selfplay.sh: tests/peer3.py against itself on 127.0.0.1 (doc/peer3-test-modes.md).
# One line per check, then "N passed, N failed"; exit 1 if any failed.
# Every process runs under timeout(1) and is waited for or killed by its PID.
P3="/usr/bin/python3 $(dirname "$0")/peer3.py"
T=$(mktemp -d /tmp/peer3-selfplay.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
printf 'correct horse battery staple\n' > "$T/pw"
printf 'wrong horse\n' > "$T/bad"
seq 1 200 | sed 's/^/line from the connector /' > "$T/lines.c"
seq 1 150 | sed 's/^/listener says /' > "$T/lines.l"
head -c 3000000 /dev/urandom > "$T/big.c"
head -c 2000000 /dev/urandom > "$T/big.l"
: > "$T/empty"

ok() { pass=$((pass + 1)); echo "ok    $1"; }
ko() { fail=$((fail + 1)); echo "FAIL  $1"; sed 's/^/      /' "$T/l.err" "$T/c.err" 2>/dev/null | grep -v 'key\|rekeyed' | tail -8; }

# play LARGS CARGS LIN CIN [SECONDS]: a listener and a connector; sets LS, CS
play() {
    rm -f "$T/l.err" "$T/c.err" "$T/l.out" "$T/c.out"
    timeout "${5:-30}" $P3 -l -i 1000 -p "$T/pw" $1 0 < "$3" > "$T/l.out" 2> "$T/l.err" &
    lp=$!
    port=
    for i in $(seq 100); do
        port=$(sed -n 's/.*listening on port //p' "$T/l.err" 2>/dev/null)
        [ -n "$port" ] && break
        sleep 0.05
    done
    timeout "${5:-30}" $P3 -p "${CPW:-$T/pw}" $2 "$port" < "$4" > "$T/c.out" 2> "$T/c.err"
    CS=$?
    wait $lp
    LS=$?
}

# check NAME WANT_L WANT_C [same]: statuses, and with "same" both outputs equal the inputs
check() {
    if [ "$LS" = "$2" ] && [ "$CS" = "$3" ] && { [ "$4" != same ] ||
        { cmp -s "$T/l.out" "$IN_C" && cmp -s "$T/c.out" "$IN_L"; }; }; then
        ok "$1 (listener $LS, connector $CS)"
    else
        ko "$1 (listener $LS want $2, connector $CS want $3)"
    fi
}

# has FILE TEXT NAME: the side's stderr has the line
has() {
    if grep -qF -- "$2" "$T/$1.err"; then ok "$3: \"$2\""; else ko "$3: no \"$2\" in $1.err"; fi
}

IN_L=$T/lines.l IN_C=$T/lines.c
play "-r 1 -P 64" "-r 2" "$IN_L" "$IN_C"; check "line mode, a REKEY after every DATA record" 0 0 same
IN_L=$T/big.l IN_C=$T/big.c
play "-b -r 3 -v" "-b -r 5 -R 1" "$IN_L" "$IN_C"; check "bulk mode, 5 MB, rekeys both ways" 0 0 same
play "-b --retain 1048576" "-b --retain 1048576" "$IN_L" "$IN_C"; check "bulk mode with the smallest retain cap" 0 0 same
CPW=$T/bad play "" "" "$T/empty" "$T/empty"; check "wrong password" 3 3
has c 'wrong password, or the connection was tampered with' "wrong password, connector"

for r in 1:8:1 2:1:1 3:30:1 4:0:1 5:0:1 6:0:3 7:0:3 200:0:1; do
    reason=${r%%:*} rest=${r#*:} secs=${rest%%:*} want=${r##*:}
    play "--refuse $reason:$secs" "" "$T/empty" "$T/empty"; check "refusal $reason" 0 "$want"
done
has c 'refused the connection (reason 200)' "refusal 200"
play "--no-new" "" "$T/empty" "$T/empty"; check "a NO_NEW greeting to a new connector" 124 1
has c 'refused the connection: it is serving another session' "NO_NEW"
play "--wait 5 -v" "-v" "$IN_L" "$IN_C"; check "wait 5 s: the connector closes, derives w, reconnects" 0 0 same
has c 'reconnecting with w ready (try 1)' "wait 5 s"

play "-b -v" "-b -v --cut-at 1000000,500000" "$IN_L" "$IN_C"; check "two cuts by the connector (close), resumed" 0 0 same
has c 'reconnected to 127.0.0.1 (nothing lost)' "resume"
play "-b -v --reset-at 300000,400000" "-b" "$IN_L" "$IN_C"; check "two resets by the listener, resumed" 0 0 same
has l 'resumed (generation 2)' "generation"
IN_L=$T/lines.l IN_C=$T/lines.c
play "-v -r 1" "-r 1 --cut-at 700" "$IN_L" "$IN_C"; check "line mode, a cut in the middle of a record" 0 0 same
play "--window 0" "--cut-at 500" "$IN_L" "$IN_C"; check "window 0: a cut is not resumed" 1 1
has l 'connection lost' "window 0"
play "--window 3" "--cut-at 500 --resume-bad mac" "$IN_L" "$IN_C"; check "RESUME with a bad mac_C" 1 3
has c 'refused to resume the session: proof rejected' "bad mac"
has l 'not resumed within 3 s' "listener after a bad RESUME"
play "--window 3" "--cut-at 500 --resume-bad gen" "$IN_L" "$IN_C"; check "RESUME with a wrong generation" 1 3
play "--window 3" "--cut-at 500 --resume-bad sid" "$IN_L" "$IN_C"; check "RESUME with an unknown sid" 1 1
has c 'no longer holds the session' "unknown sid"
play "--window 3" "--cut-at 500 --replay-resume" "$IN_L" "$IN_C"; check "a RESUME replayed on another connection" 1 3
play "--refuse 8 --window 3" "--cut-at 500" "$IN_L" "$IN_C"; check "refusal NO_SESSION after a RESUME" 1 1
play "--refuse 9 --window 3" "--cut-at 500" "$IN_L" "$IN_C"; check "refusal RESUME_FAILED after a RESUME" 1 3

for r in 1 2 3 4 5 6 7 8 9 77; do
    play "" "--end $r" "$IN_L" "$IN_C"; check "END reason $r from the connector" 1 0
done
has l 'stopped (reason 77) after' "END 77, a stream cut"
play "" "--end 1" "$T/empty" "$T/empty"; check "END 1 with nothing sent either way" 1 0
has l '127.0.0.1 was interrupted' "END 1, no stream"
play "" "--end 2@2000" "$IN_L" "$IN_C"; check "END after 2000 bytes" 1 0
has l 'transfer cut: 127.0.0.1 was terminated (SIGTERM)' "END 2 mid-stream"
play "" "--end 9 --end-text 410a42" "$IN_L" "$IN_C"; check "END text with a control byte" 3 0
has l 'END text is not clean UTF-8' "END text"

mkfifo "$T/quiet"
( sleep 7; cat "$IN_C" ) > "$T/quiet" &
qp=$!
play "--interval 1 --loss 3" "--interval 1 --loss 3" "$IN_L" "$T/quiet"; check "PINGs keep a connection quiet for 7 s alive (loss 3 s)" 0 0
wait $qp
( sleep 10; cat "$IN_C" ) > "$T/quiet" & qp=$!
play "--loss 3 --window 0" "--freeze 1:8 --loss 3 --interval 1" "$IN_L" "$T/quiet" 20
check "a frozen connector is declared lost by the listener (window 0)" 1 1
has l 'connection lost while sending (no word from 127.0.0.1 for 3 s)' "frozen"
kill $qp 2>/dev/null; wait $qp 2>/dev/null
( sleep 9; cat "$IN_C" ) > "$T/quiet" & qp=$!
play "--loss 3 -v" "--freeze 1:5 --loss 3 --interval 1" "$IN_L" "$T/quiet" 30
check "a frozen connector comes back and resumes" 0 0 same
wait $qp
( sleep 9 ) > "$T/quiet" & qp=$!
play "--loss 3 --window 0" "--interval 1 --no-ping" "$T/empty" "$T/quiet" 20
kill $qp 2>/dev/null; wait $qp 2>/dev/null
check "a connector that announces 1 s and then sends no PING is declared lost" 1 1
has l 'no word from 127.0.0.1 for 3 s' "no PING"

play "" "--bad-ping 0" "$IN_L" "$IN_C"; check "PING interval 0" 3 0
has l 'malformed record: PING interval of 0 s' "PING 0"
play "--bad-ping 3601" "" "$IN_L" "$IN_C"; check "PING interval 3601 from the listener" 0 3
play "" "--ack-back" "$IN_L" "$IN_C"; check "an ACK that goes back" 3 0
has l 'malformed record: ACK of' "ACK back"
play "--ack-beyond" "" "$IN_L" "$IN_C"; check "an ACK beyond what was sent" 0 3
has c 'only' "ACK beyond"
for k in retired unannounced lowpoint truncated public; do
    play "" "-r 1 --bad-rekey $k" "$IN_L" "$IN_C"; check "bad REKEY: $k" 3 0
done
play "" "--bad-key public" "$IN_L" "$IN_C"; check "KEY with a public-equivalent key" 3 0
play "--bad-key lowpoint" "-r 1" "$IN_L" "$IN_C"; check "KEY with a low-order key: our REKEY's DH is zero" 0 3
has c 'peer sent a bad receive key' "low-order KEY"
play "" "--key-after-done" "$IN_L" "$IN_C"; check "bytes after DONE are ignored" 0 0
play "" "--data-after-close" "$IN_L" "$IN_C"; check "DATA after CLOSE" 3 0
mkfifo "$T/slow"
( cat "$IN_L"; sleep 4 ) > "$T/slow" & qp=$!
play "" "--cut-after-close --data-past-close" "$T/slow" "$IN_C"; check "DATA past an earlier CLOSE" 3 0
has l 'malformed record: DATA past the end of the stream at byte' "DATA past CLOSE"
wait $qp

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
