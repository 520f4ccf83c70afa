# shellcheck shell=bash
# Serving many (-k, -m above 1).

t_serving_kat() { kat serving serving.txt; }
run "serving many: penalties and log limits as documented" t_serving_kat

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
	wait_until 5 at_least 10 '^legit ' "$T/w/l.out"
	expect "attackers" "$HELD" 55 && expect "connectors in" "$in" 10 &&
	    expect "connectors slower than 3 s" "$slow" 0 &&
	    ! grep ' port [0-9]*: closed: the oldest of ' "$T/w/l.err" &&
	    for i in $(seq 10); do has_line "$T/w/l.out" "legit $i" || return 1; done
}
run "serving many: 55 idle and dribbling sockets lock no one out" t_many_lockout

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
run "-k -m 1 and serving many: guessing is penalised, another address gets in" t_many_guessing

# -X: an exempt address is never penalised (t_many_guessing allows it 6
# checks in 4 s), and a prefix length is checked before it is read.
t_exempt() {
	listen l /dev/null $SC -q -k -X 10.0.0.0/8,127.0.0.9/32 127.0.0.1 0 ||
	    return 1
	python3 tests/guess.py --attempts 20 --seconds 4 127.0.0.1 "$PORT" \
	    > "$T/w/guess" || return 1
	cat "$T/w/guess"
	local n
	n=$(sed -n 's/.* tested \([0-9]*\) .*/\1/p' "$T/w/guess")
	[ "$n" -ge 10 ] && ! grep -q "refused for" "$T/w/l.err" || return 1
	timeout 10 $SECCHAT -l -k $SC -X 10.0.0.0/4294967200 127.0.0.1 0 < /dev/null \
	    2> "$T/w/x.err"
	expect "overflowing prefix" "$?" 2 &&
	    has_line "$T/w/x.err" "secchat: -X: bad prefix length: /4294967200"
}
run "-X: an exempt address is not penalised; a bad prefix length is refused" t_exempt

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
	wait_until 5 at_least 20 '^burst ' "$T/w/l.out"
	expect "connectors in" "$ok" 20 &&
	    for i in $(seq 20); do has_line "$T/w/l.out" "burst $i" || return 1; done
}
run "serving many: 20 connectors at once from one address" t_many_burst

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
	wait_until 10 at_least 120 '^short' "$T/w/l.out"
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
run "serving many: hex lines of sessions at once, each whole" t_many_hex

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
	wait_until -e 0.1 20 at_least 6000 '^[AB] ' "$T/w/l.out"
	python3 tests/lines.py check "$T/w/l.out" A:3000 B:3000 C:500
}
run "serving many: two endless shippers and a short one, lines whole" t_many_shippers
