# shellcheck shell=bash
# The chat at a terminal (tmux, UTF-8): what the screen shows, what is sent.

# incoming_above_half: the screen, kept in screen1, shows the arriving
# line, labelled, above the half-typed one.
incoming_above_half() {
	$TM capture-pane -p > "$T/w/screen1"
	grep -A1 -xE "$HHMM 127\\.0\\.0\\.1> incoming" "$T/w/screen1" |
	    tail -n 1 | grep -qx '> half'
}

t_terminal_chat() {	# a person at a terminal (tmux) and a script
	tmux_server chat
	$TM new-session -d -x 80 -y 20 "exec bash --norc --noprofile" || return 1
	$TM send-keys "clear; $SECCHAT -l -v -q $SC 127.0.0.1 0 2> $T/w/l.err; echo status \$? > $T/w/l.rc" Enter
	wait_port "$T/w/l.err" $$ || { $TM kill-server; return 1; }
	$TM send-keys "half"
	{ echo "incoming"; sleep 2; } |
	    timeout 20 $SECCHAT $SC 127.0.0.1 "$PORT" > "$T/w/c.out" \
	    2> "$T/w/c.err" &
	local cpid=$!
	PIDS="$PIDS $cpid"
	# The rest is typed before the connector's input ends, 2 s in.
	wait_until 1.5 incoming_above_half
	$TM send-keys " done" Enter
	wait "$cpid"; CRC=$?
	wait_file "$T/w/l.rc"
	$TM capture-pane -p > "$T/w/screen2"
	$TM kill-server
	cat "$T/w/screen1"
	# The arriving line, labelled, stands above the half-typed one.
	grep -A1 -xE '[0-2][0-9]:[0-5][0-9] 127\.0\.0\.1> incoming' "$T/w/screen1" |
	    tail -n 1 | grep -qx '> half' &&
	    expect "connector status" "$CRC" 0 &&
	    expect "connector got" "$(cat "$T/w/c.out")" "half done" &&
	    expect "listener" "$(cat "$T/w/l.rc")" "status 0" &&
	    # A chat line is padded to 64 bytes (0x50 on the wire); a pipe's not.
	    expect "padded DATA from the terminal" "$(grep -c '^< 0050' "$T/w/c.err")" 1 &&
	    expect "unpadded DATA from the pipe" "$(grep -c '^> 001a' "$T/w/c.err")" 1
}
run "chat at a terminal: arriving text goes above the typed line" t_terminal_chat

t_chat_inert() {	# the peer's escapes: inert on a terminal, exact in a file
	printf 'a\033[2J\033[H\033]2;owned\007secchat: connection closed before CLOSE: stream truncated\nbob$ \033[6n\033[c\233[31mred\342\200\256evil\n' > "$T/w/evil"
	listen l "$T/w/evil" $SC 127.0.0.1 0 || return 1
	chat_pane x 100 || return 1
	$TM send-keys "$SECCHAT $SC -q -n bob 127.0.0.1 $PORT 2> $T/w/c.err; echo status \$? > $T/w/c.rc" Enter
	wait_file "$T/w/c.rc"
	reap
	local screen title
	screen=$($TM capture-pane -p)
	title=$($TM display -p '#{pane_title}')
	$TM kill-server
	echo "$screen"
	# Shown inertly, labelled: no forged message, no fake prompt.
	grep -qxE "$HHMM bob> a\\^\\[\\[2J\\^\\[\\[H\\^\\[\\]2;owned\\^Gsecchat: connection closed before CLOSE: stream truncated" <<< "$screen" &&
	    grep -qxE "$HHMM bob> bob\\\$ \\^\\[\\[6n\\^\\[\\[c\\\\x9b\\[31mred<U\\+202E>evil" <<< "$screen" &&
	    [ "$title" != owned ] &&
	    expect "connector" "$(cat "$T/w/c.rc")" "status 0" &&
	    expect "listener status" "$LRC" 0 || return 1
	# The terminal never saw the peer's sequences, so it answered nothing.
	local seq
	for seq in '\033[2J' '\033]2;' '\033[6n' '\033[c' '\233' '\342\200\256'; do
		! grep -qaF "$(printf "$seq")" "$T/w/x.raw" ||
		    { echo "the terminal got $seq"; return 1; }
	done
	[ ! -s "$T/w/l.out" ] || { echo "an answer was sent"; return 1; }
	# Into a file the same record arrives byte for byte.
	rm -f "$T/w/l.err"	# or wait_port may read the last listener's
	clean_session "$T/w/evil" /dev/null
}
run "chat: the peer's escapes are inert on a terminal, exact in a file" t_chat_inert

t_many_inert() {
	printf 'hello\033]2;owned\007\033[31mred\n' > "$T/w/evil"
	pane_listener m "$SECCHAT -l -v -q -k $SC 127.0.0.1 0 2> $T/w/l.err" ||
	    return 1
	dial c "$T/w/evil" $SC -q 127.0.0.1 "$PORT"
	wait_screen "^$HHMM 127.0.0.1> hello" || { $TM kill-server; return 1; }
	local screen title
	screen=$($TM capture-pane -p)
	title=$($TM display -p '#{pane_title}')
	$TM kill-server
	echo "$screen"
	expect "connector status" "$CRC" 0 && [ "$title" != owned ] &&
	    grep -qxE "$HHMM 127.0.0.1> hello\\^\\[\\]2;owned\\^G\\^\\[\\[31mred" <<< "$screen" &&
	    ! grep -qaF "$(printf '\033]2;')" "$T/w/m.raw"
}
run "chat: a listener serving many shows the peer's text inertly" t_many_inert

t_exec_at_terminal() {
	printf 'line1\n\033[31mred\001\n' > "$T/w/evil"
	pane_listener e "$SECCHAT -l -v -q $SC -e 'cat > $T/w/e.out' 127.0.0.1 0 2> $T/w/l.err; echo status \$? > $T/w/l.rc" ||
	    return 1
	dial c "$T/w/evil" $SC -q 127.0.0.1 "$PORT"
	wait_file "$T/w/l.rc"
	$TM kill-server
	expect "connector status" "$CRC" 0 &&
	    expect "listener" "$(cat "$T/w/l.rc")" "status 0" &&
	    same "$T/w/evil" "$T/w/e.out"
}
run "-e at a terminal: the command gets the peer's bytes exactly" t_exec_at_terminal

t_chat_editor() {	# keys edit the line; the peer gets exactly the lines
	fifo_listener || return 1
	chat_pane e 40 || return 1
	$TM send-keys "clear; $SECCHAT $SC -q -n bob 127.0.0.1 $PORT; echo status \$? > $T/w/c.rc" Enter
	wait_screen '^secchat: chat with bob secured' || { $TM kill-server; return 1; }
	$TM send-keys "wide 日本語X" BSpace Left Left Z Home A End B C-a C-e
	$TM send-keys F5 Escape "[1;5Z" C-l C-v Tab Enter
	$TM send-keys "drop this" C-u kept Enter "one two" C-w three Enter
	$TM send-keys Up Up Enter
	wait_screen "^$HHMM you> kept\$" || { $TM kill-server; return 1; }
	# A paste of several lines sends each.
	printf 'pasted one\npasted two\n' | $TM load-buffer -b paste -
	$TM paste-buffer -b paste -d
	wait_screen "^$HHMM you> pasted two\$" || { $TM kill-server; return 1; }
	chat_close bob "hi bob" \
	    'Awide 日Z本語B\t\nkept\none three\nkept\npasted one\npasted two\n' &&
	    grep -qx "$HHMM you> Awide 日Z本語B" "$T/w/screen" &&
	    grep -qx "$HHMM you> one three" "$T/w/screen"
}
run "chat: arrows, Home/End, ^W, ^U, ^L, history; other keys never sent" t_chat_editor

t_chat_wrapped() {	# a wrapped line: redrawn whole, no stale rows, resize
	local long="語語語語語語語語語語語語語語語語語語語語語語語語語語語語語語QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
	fifo_listener || return 1
	chat_pane w 40 || return 1
	$TM send-keys "$SECCHAT $SC -q -n bob 127.0.0.1 $PORT 2> $T/w/c.err; echo status \$? > $T/w/c.rc" Enter
	wait_file "$T/w/c.err" || { $TM kill-server; return 1; }
	$TM send-keys "$long"
	wait_screen 'QQQQ$' || { $TM kill-server; return 1; }
	echo one >&7
	wait_screen "^$HHMM bob> one\$" || { $TM kill-server; return 1; }
	$TM capture-pane -p > "$T/w/screen1"
	$TM resize-window -x 30
	wait_cols 0 30 || { $TM kill-server; return 1; }
	echo two >&7
	wait_screen "^$HHMM bob> two\$" || { $TM kill-server; return 1; }
	$TM capture-pane -p > "$T/w/screen2"
	$TM capture-pane -p -J > "$T/w/joined2"
	exec 7>&-
	wait_file "$T/w/c.rc"
	reap
	$TM kill-server
	cat "$T/w/screen1" "$T/w/screen2"
	# Below the command line (its temporary path may hold a Q).
	sed -i '1,/bob> one$/d' "$T/w/screen1"
	sed -i '1,/bob> one$/d' "$T/w/screen2"
	local f
	for f in screen1 screen2; do
		expect "wide characters on $f" "$(grep -o 語 "$T/w/$f" | wc -l)" 30 &&
		    expect "Q on $f" "$(grep -o Q "$T/w/$f" | wc -l)" 40 || return 1
	done
	# The line's rows, joined, are the line: drawn once, at the bottom.
	grep -qxF "> $long" "$T/w/joined2" &&
	    expect "rows of the line at 40 columns" "$(grep -c '[語Q]' "$T/w/screen1")" 3 &&
	    expect "rows of the line at 30 columns" "$(grep -c '[語Q]' "$T/w/screen2")" 4 &&
	    # The peer ended the chat: said so, and the half line was not sent.
	    has_line "$T/w/c.err" "secchat: bob ended the chat" &&
	    has_line "$T/w/c.err" "secchat: the line being typed was not sent" &&
	    expect "connector" "$(cat "$T/w/c.rc")" "status 0" &&
	    [ ! -s "$T/w/l.out" ]
}
run "chat: a wrapped line redraws whole, after a resize too" t_chat_wrapped

t_chat_typed_ahead() {	# keys typed before the handshake ends: shown once
	fifo_listener -i 1000000 || return 1
	chat_pane a 80 || return 1
	$TM send-keys "clear; $SECCHAT $SC -v -q 127.0.0.1 $PORT 2>&1; echo status \$? > $T/w/c.rc" Enter
	wait_screen '^secchat: connected to 127' || { $TM kill-server; return 1; }
	$TM send-keys early
	wait_screen '^secchat: chat with 127.0.0.1 secured' || { $TM kill-server; return 1; }
	wait_screen '^> early$' || { $TM kill-server; return 1; }
	$TM send-keys Enter C-d
	chat_over
	expect "early on the screen" "$(grep -o early "$T/w/screen" | wc -l)" 1 &&
	    expect "sent" "$(cat "$T/w/l.out")" early &&
	    has_line "$T/w/screen" "secchat: you ended the chat"
}
run "chat: keys typed during the handshake are shown once" t_chat_typed_ahead

pane_port() {	# PORT from the listener's -v line in pane 0
	PORT=$($TM capture-pane -p -t 0 | sed -n 's/^secchat: listening on .* port \([0-9]*\)$/\1/p')
	[ -n "$PORT" ]
}

t_chat_conversation() {	# two people, two panes, twenty exchanges
	tmux_server conv
	local sh="exec env LANG=C.UTF-8 TZ=UTC PS1='\$ ' bash --norc --noprofile"
	$TM new-session -d -x 161 -y 40 "$sh" || return 1
	$TM split-window -h "$sh" || { $TM kill-server; return 1; }
	$TM send-keys -t 0 "$SECCHAT -l -v -q -n alice $SC 127.0.0.1 0; echo bob status \$? > $T/w/b.rc" Enter
	wait_until 10 pane_port
	$TM send-keys -t 1 "$SECCHAT -q -n bob $SC 127.0.0.1 $PORT; echo alice status \$? > $T/w/a.rc" Enter
	local long="this is a long line, longer than the pane is wide, to see that it wraps over several rows and that nothing stale is left behind when bob answers"
	{
	say 1 "'hi bob, it'\\''s alice'" alice "hi bob, it's alice" &&
	    say 0 "'hello alice! 你好'" bob "hello alice! 你好" &&
	    say 1 "'$long'" alice "$long" &&
	    say 0 "'got it, one piece'" bob "got it, one piece" &&
	    say 1 "'hw are you?' Home Right o" alice "how are you\\?" &&
	    say 0 "'fine. naïve café, 日本語 and emoji 🙂 too'" bob "fine. naïve café, 日本語 and emoji 🙂 too" &&
	    say 1 "Up End BSpace ' (again)?'" alice "how are you \\(again\\)\\?" &&
	    say 0 "'stop repeating yourself :)'" bob "stop repeating yourself :\\)" &&
	    say 1 "'sorry, my typo: teh' BSpace BSpace h e" alice "sorry, my typo: the" &&
	    say 0 "'word erase: wrong' C-w correct" bob "word erase: correct"
	} || { $TM kill-server; return 1; }
	# Alice half-types a long line; a message and a resize come meanwhile.
	$TM send-keys -t 1 "a half-typed line that is long enough to wrap at the narrower width"
	say 0 "'are you still there?'" bob "are you still there\\?" || { $TM kill-server; return 1; }
	$TM resize-pane -t 1 -x 50
	wait_cols 1 50 || { $TM kill-server; return 1; }
	{
	say 1 "' - yes'" alice "a half-typed line that is long enough to wrap at the narrower width - yes" &&
	    # A paste from somewhere with escape sequences in it: dropped.
	    printf 'look: \033]2;owned\007\033[2Jstill here' | $TM load-buffer -b evil - &&
	    $TM paste-buffer -t 0 -b evil -d &&
	    say 0 "" bob "look: still here" &&
	    say 1 "'nothing happened to my screen'" alice "nothing happened to my screen" &&
	    say 0 "'good. ^L redraws' C-l" bob "good. \\^L redraws" &&
	    say 1 "'C-a and C-e' C-a 'use ' C-e" alice "use C-a and C-e" &&
	    say 0 "'kill: all of this' C-u 'a fresh line'" bob "a fresh line" &&
	    say 1 "'Ünïcödé ☃ ✓'" alice "Ünïcödé ☃ ✓" &&
	    say 0 "'left, right: ac' Left b Right d" bob "left, right: abcd" &&
	    say 1 "'time to go'" alice "time to go" &&
	    say 0 "'bye alice 👋'" bob "bye alice 👋"
	} || { $TM kill-server; return 1; }
	$TM send-keys -t 1 "not finished" C-u C-d
	wait_until 10 test -s "$T/w/a.rc" -a -s "$T/w/b.rc"
	{ echo "--- bob (pane 0, listener)"; $TM capture-pane -p -t 0
	  echo "--- alice (pane 1, connector)"; $TM capture-pane -p -t 1; } > "$T/w/panes"
	local title
	title=$($TM display -p -t 0 '#{pane_title}')
	$TM kill-server
	[ -n "${CHAT_PANES:-}" ] && cp "$T/w/panes" "$CHAT_PANES"
	cat "$T/w/panes"
	expect "alice" "$(cat "$T/w/a.rc")" "alice status 0" &&
	    expect "bob" "$(cat "$T/w/b.rc")" "bob status 0" &&
	    [ "$title" != owned ] &&
	    # No stale row of a line being typed, after the resize either.
	    ! grep -q '^> ' "$T/w/panes" &&
	    grep -q "^secchat: alice ended the chat" "$T/w/panes" &&
	    grep -q "^secchat: you ended the chat" "$T/w/panes" &&
	    grep -qE "^$HHMM you> bye alice 👋\$" "$T/w/panes"
}
run "chat: two people, twenty exchanges in two panes" t_chat_conversation

t_hex_tty() {	# on a terminal with -v: ‹ › rows for KEY, REKEY, CLOSE, DONE
	{ head -c 20000 /dev/zero | tr '\0' x; echo; seq 1 3; } > "$T/w/a"
	echo "from the listener" > "$T/w/b"
	listen l "$T/w/b" $SC 127.0.0.1 0 || return 1
	chat_pane h 60 || return 1
	$TM send-keys "$SECCHAT $SC -v -r 2 127.0.0.1 $PORT < $T/w/a > $T/w/c.out; echo status \$? > $T/w/c.rc" Enter
	wait_file "$T/w/c.rc"
	reap
	$TM capture-pane -p -J -S -100 > "$T/w/screen"
	$TM kill-server
	cat "$T/w/screen"
	local long
	long=$(grep '^‹' "$T/w/screen" | sed 's/[‹›…]/./g' | awk 'length($0) > 60' | wc -l)
	# Every row fits, none looks like the prompt; DATA went on the live
	# row, gone at the end.
	expect "rows over 60 columns" "$long" 0 &&
	    expect "rows like the prompt" "$(grep -c '^[<>] ' "$T/w/screen")" 0 &&
	    expect "REKEY rows" "$(grep -c '^‹sent REKEY 55 B 0035[0-9a-f]*…›$' "$T/w/screen")" 2 &&
	    grep -q '^‹sent CLOSE 19 B 0011' "$T/w/screen" &&
	    grep -q '^‹received CLOSE 19 B 0011' "$T/w/screen" &&
	    grep -q '^‹sent DONE 19 B 0011' "$T/w/screen" &&
	    grep -q '^‹received KEY 51 B 0031' "$T/w/screen" &&
	    ! grep -q '^‹sent [0-9]* B' "$T/w/screen" &&
	    same "$T/w/a" "$T/w/l.out" && expect "connector" "$(cat "$T/w/c.rc")" "status 0"
}
run "hex display on a terminal: ‹ › rows, KEY, REKEY, CLOSE, DONE with -v" t_hex_tty

t_hex_tty_full() {	# -x: every byte on a terminal too
	{ head -c 100 /dev/zero | tr '\0' x; echo; } > "$T/w/a"
	listen l /dev/null $SC 127.0.0.1 0 || return 1
	chat_pane hx 60 || return 1
	$TM send-keys "clear; $SECCHAT $SC -x 127.0.0.1 $PORT < $T/w/a > /dev/null; echo status \$? > $T/w/c.rc" Enter
	wait_file "$T/w/c.rc"
	reap
	$TM capture-pane -p -J > "$T/w/screen"
	$TM kill-server
	cat "$T/w/screen"
	# 2 + 101 + 1 + 16 bytes: 240 hex digits, on one logical line.
	grep -qE '^> 0076[0-9a-f]{236}$' "$T/w/screen" &&
	    expect "connector" "$(cat "$T/w/c.rc")" "status 0"
}
run "-x: the whole hex on a terminal" t_hex_tty_full

t_progress() {	# -v, stderr a terminal: one self-updating line, final figures
	head -c 3000000 /dev/urandom > "$T/w/big"
	listen l /dev/null $SC -q -b 127.0.0.1 0 || return 1
	chat_pane p 100 || return 1
	$TM send-keys "(head -c 1000000 $T/w/big; sleep 1.5; tail -c +1000001 $T/w/big) | $SECCHAT -v -q -b $SC 127.0.0.1 $PORT > /dev/null; echo status \$? > $T/w/c.rc" Enter
	wait_file "$T/w/c.rc"
	reap
	mv "$T/w/l.out" "$T/w/l.out1"
	rm -f "$T/w/l.err"	# or wait_port may read the last listener's
	$TM capture-pane -p -J > "$T/w/screen1"
	listen l "$T/w/big" $SC -q -b 127.0.0.1 0 || { $TM kill-server; return 1; }
	$TM send-keys "$SECCHAT -v -q -b $SC 127.0.0.1 $PORT < /dev/null > $T/w/c.out; echo status \$? > $T/w/c.rc2" Enter
	wait_file "$T/w/c.rc2"
	reap
	rm -f "$T/w/l.err"
	listen l /dev/null $SC -q -b 127.0.0.1 0 || { $TM kill-server; return 1; }
	$TM send-keys "clear; $SECCHAT -v -q -b $SC 127.0.0.1 $PORT < $T/w/big > /dev/null; echo status \$? > $T/w/c.rc3" Enter
	wait_file "$T/w/c.rc3"
	reap
	$TM capture-pane -p -J > "$T/w/screen2"
	$TM kill-server
	cat "$T/w/screen1"
	local draws
	draws=$(grep -ao 'secchat: sent [0-9.]* [KM]i*B' "$T/w/p.raw" | wc -l)
	expect "progress lines on the screen" "$(grep -c '^secchat: sent [0-9.]* [KMG]*i*B (' "$T/w/screen1")" 1 &&
	    grep -qx 'secchat: sent 2.9 MiB ([0-9.]* [KMG]*i*B/s), received 0 B (0 B/s), [0-9]:[0-9][0-9]' "$T/w/screen1" &&
	    [ "$draws" -ge 3 ] && expect "connector" "$(cat "$T/w/c.rc")" "status 0" &&
	    same "$T/w/big" "$T/w/l.out1" || { echo "draws: $draws"; return 1; }
	# Receiving a file: its figures; a regular file sent gives a percentage.
	same "$T/w/big" "$T/w/c.out" &&
	    grep -qx 'secchat: sent 2.9 MiB ([0-9.]* [KMG]*i*B/s, 100%), received 0 B (0 B/s), [0-9]:[0-9][0-9]' "$T/w/screen2" || return 1
	# stderr a file: no progress line, the summary only.
	rm -f "$T/w/l.err"
	listen l /dev/null $SC -q -b 127.0.0.1 0 || return 1
	dial c "$T/w/big" $SC -q -b 127.0.0.1 "$PORT"
	reap
	expect "connector status" "$CRC" 0 &&
	    grep -q '^secchat: sent [0-9]* records (3000000 bytes)' "$T/w/c.err" &&
	    ! grep -q 'secchat: sent [0-9.]* [KM]' "$T/w/c.err"
}
run "-v on a terminal: a progress line for a transfer" t_progress

# chat_with_bob [ARGS]: a listener reading $T/w/to_l (fd 7) with its hex
# lines in l.err, and a connector (with ARGS) chatting with it in a pane
# COLS (60) wide as "bob", its status in c.rc, once the chat is secured.
chat_with_bob() {
	local cols=${COLS:-60}
	mkfifo "$T/w/to_l"
	timeout 60 $SECCHAT -l -v $SC 127.0.0.1 0 < "$T/w/to_l" \
	    > "$T/w/l.out" 2> "$T/w/l.err" &
	LPID=$!
	PIDS="$PIDS $LPID"
	exec 7> "$T/w/to_l"
	wait_port "$T/w/l.err" "$LPID" || return 1
	chat_pane b "$cols" || return 1
	$TM send-keys "clear; $SECCHAT $SC -n bob $* 127.0.0.1 $PORT; echo status \$? > $T/w/c.rc" Enter
	wait_screen '^secchat: chat with bob secured' || { $TM kill-server; return 1; }
}

t_hex_on_row() {	# the ciphertext on the message's own row, no KEY rows
	chat_with_bob || return 1
	$TM send-keys "Hi Bob!" Enter
	wait_screen "^$HHMM you> Hi Bob!   ‹82 B 0050[0-9a-f]{4,}…›\$" ||
	    { $TM kill-server; return 1; }
	echo "hello" >&7
	wait_screen "^$HHMM bob> hello   ‹25 B 0017[0-9a-f]{4,}…›\$" ||
	    { $TM kill-server; return 1; }
	$TM send-keys C-d
	chat_over
	local mine theirs
	# The hex shown is the start of the records the listener logged.
	mine=$(sed -n "s/^$HHMM you> Hi Bob!   ‹82 B \\([0-9a-f]*\\)…›\$/\\1/p" "$T/w/screen")
	theirs=$(sed -n "s/^$HHMM bob> hello   ‹25 B \\([0-9a-f]*\\)…›\$/\\1/p" "$T/w/screen")
	grep -q "^< $mine" "$T/w/l.err" && grep -q "^> $theirs" "$T/w/l.err" &&
	    expect "rows of KEY, REKEY, DONE" "$(grep -cE '(KEY|DONE) ' "$T/w/screen")" 0 &&
	    expect "rows like the prompt" "$(grep -cE '^[<>] [0-9a-f]' "$T/w/screen")" 0 &&
	    grep -q '^‹sent CLOSE 19 B 0011' "$T/w/screen" &&
	    grep -q '^‹received CLOSE 19 B 0011' "$T/w/screen" &&
	    expect "connector" "$(cat "$T/w/c.rc")" "status 0" &&
	    expect "sent" "$(cat "$T/w/l.out")" "Hi Bob!" || return 1
	# With -v, KEY and DONE have rows of their own; with -q, no hex.
	rm -f "$T/w/l.err" "$T/w/to_l" "$T/w/c.rc"
	chat_with_bob -v || return 1
	$TM send-keys "again" Enter
	wait_screen "^$HHMM you> again   ‹82 B 0050" || { $TM kill-server; return 1; }
	$TM send-keys C-d
	chat_over
	grep -q '^‹sent KEY 51 B 0031' "$T/w/screen" &&
	    grep -q '^‹received KEY 51 B 0031' "$T/w/screen" || return 1
	rm -f "$T/w/l.err" "$T/w/to_l" "$T/w/c.rc"
	chat_with_bob -q || return 1
	$TM send-keys "quiet" Enter
	wait_screen "^$HHMM you> quiet\$" || { $TM kill-server; return 1; }
	$TM send-keys C-d
	chat_over
	! grep -q '‹' "$T/w/screen"
}
run "hex display in a chat: the ciphertext on the message's row" t_hex_on_row

t_hex_bulk_row() {	# a bulk transfer at a terminal: one row, drawn in place
	head -c 3000000 /dev/urandom > "$T/w/big"
	listen l /dev/null $SC -b 127.0.0.1 0 || return 1
	chat_pane r 80 || return 1
	$TM send-keys "clear; (head -c 1000000 $T/w/big; sleep 1; tail -c +1000001 $T/w/big) | $SECCHAT -b $SC 127.0.0.1 $PORT > /dev/null; echo status \$? > $T/w/c.rc" Enter
	wait_file "$T/w/c.rc"
	reap
	$TM capture-pane -p -S -1000 > "$T/w/screen"
	$TM kill-server
	cat "$T/w/screen"
	local draws
	draws=$(grep -ao '‹sent [0-9]* B [0-9a-f]*…›' "$T/w/r.raw" | wc -l)
	# Drawn again as records go, never a row each; gone at the end.
	[ "$draws" -ge 2 ] && [ "$draws" -lt 100 ] &&
	    expect "rows of hex" "$(grep -c '‹' "$T/w/screen")" 2 &&
	    grep -q '^‹sent CLOSE 19 B' "$T/w/screen" &&
	    grep -q '^‹received CLOSE 19 B' "$T/w/screen" &&
	    expect "connector" "$(cat "$T/w/c.rc")" "status 0" &&
	    same "$T/w/big" "$T/w/l.out" || { echo "draws: $draws"; return 1; }
}
run "hex display of a bulk transfer at a terminal: one row, in place" t_hex_bulk_row

t_no_forged_rows() {	# the peer pads to the width: a marked continuation
	local pad
	pad=$(printf '%*s' 89 '' | tr ' ' x)	# 100 - "12:00 bob> "
	COLS=100 chat_with_bob -q || return 1
	printf '%s12:00 you> I owe bob $100\n' "$pad" >&7
	printf '%ssecchat: alice ended the chat\n' "$pad" >&7
	printf 'a\342\200\213b\342\201\240c\357\273\277d\363\240\201\201e\343\205\244f \360\237\221\250\342\200\215\360\237\221\251\n' >&7
	wait_screen 'f 👨' || { $TM kill-server; return 1; }
	$TM send-keys C-d
	chat_over
	! grep -q '^12:00 you>' "$T/w/screen" &&
	    ! grep -q '^secchat: alice' "$T/w/screen" &&
	    grep -qx ' *↳ 12:00 you> I owe bob \$100' "$T/w/screen" &&
	    grep -qx ' *↳ secchat: alice ended the chat' "$T/w/screen" &&
	    grep -qxF "$(printf 'a<U+200B>b<U+2060>c<U+FEFF>d<U+E0041>e<U+3164>f \360\237\221\250\342\200\215\360\237\221\251')" \
	    <(sed "s/^[0-9:]* bob> //" "$T/w/screen") &&
	    expect "connector" "$(cat "$T/w/c.rc")" "status 0"
}
run "chat: no forged rows; invisible characters shown as markers" t_no_forged_rows

t_chat_tabs() {		# tabs sent as typed, shown as spaces to the stop
	COLS=60 chat_with_bob -q || return 1
	$TM send-keys "col1" Tab "col2" Tab "x" Enter
	printf 'a\tbb\tccc\n' >&7
	wait_screen "^$HHMM bob> a       bb      ccc\$" || { $TM kill-server; return 1; }
	wait_screen "^$HHMM you> col1    col2    x\$" || { $TM kill-server; return 1; }
	$TM send-keys C-d
	chat_over
	printf 'col1\tcol2\tx\n' > "$T/w/want"
	same "$T/w/want" "$T/w/l.out"
}
run "chat: tabs sent as typed, shown expanded" t_chat_tabs

t_chat_clusters() {	# erase and move by grapheme cluster
	COLS=60 chat_with_bob -q || return 1
	$TM send-keys "a👍🏽" BSpace "b🇫🇷" BSpace "c👨‍👩‍👧" BSpace "d" "$(printf 'e\314\201')" BSpace Enter
	$TM send-keys "x🇫🇷🇩🇪y" Left Left Z Left Left W Enter
	wait_screen "^$HHMM you> xW🇫🇷Z🇩🇪y\$" || { $TM kill-server; return 1; }
	# A spacing mark (Tamil நி, Devanagari षि) and a joiner before a
	# letter: Unicode's rules, not guesses.
	$TM send-keys "pநி" BSpace "qषि" BSpace "r$(printf 'x\342\200\215y')" BSpace Enter
	wait_screen "^$HHMM you> pqrx" || { $TM kill-server; return 1; }
	$TM send-keys C-d
	chat_over
	printf 'abcd\nxW🇫🇷Z🇩🇪y\npqrx\342\200\215\n' > "$T/w/want"
	same "$T/w/want" "$T/w/l.out"
}
run "chat: 👍🏽 🇫🇷 👨‍👩‍👧 é erased whole, moved over whole" t_chat_clusters

t_chat_interrupt() {	# ^C: the line goes, the chat says so
	COLS=60 chat_with_bob -q || return 1
	$TM send-keys "half a line"
	wait_screen '^> half a line$' || { $TM kill-server; return 1; }
	$TM send-keys C-c
	wait_screen '^secchat: you interrupted the chat$' || { $TM kill-server; return 1; }
	$TM capture-pane -p > "$T/w/screen"
	$TM kill-server
	cat "$T/w/screen"
	! grep -q 'half' "$T/w/screen" && [ ! -s "$T/w/l.out" ]
}
run "chat: ^C takes the line off the screen and says so" t_chat_interrupt

t_chat_not_sent() {	# the peer ends: the half-typed line stays, as such
	COLS=60 chat_with_bob -q || return 1
	$TM send-keys "typed, not sent"
	wait_screen '^> typed, not sent$' || { $TM kill-server; return 1; }
	chat_over
	grep -A1 -x '> typed, not sent' "$T/w/screen" | tail -n 1 |
	    grep -qx 'secchat: the line being typed was not sent' &&
	    expect "connector" "$(cat "$T/w/c.rc")" "status 0" && [ ! -s "$T/w/l.out" ]
}
run "chat: a line not sent stays on the screen as such" t_chat_not_sent

t_status_words() {	# status lines break at spaces on a narrow terminal
	COLS=40 chat_with_bob -q || return 1
	$TM send-keys C-d
	chat_over
	grep -qx 'secchat: chat with bob secured: type a' "$T/w/screen" &&
	    grep -qx '  line and Enter to send, \^D to end' "$T/w/screen"
}
run "chat: status lines wrap at word boundaries" t_status_words

t_progress_narrow() {	# -v at 40 columns: the progress line keeps to a row
	head -c 3000000 /dev/urandom > "$T/w/big"
	listen l /dev/null $SC -q -b 127.0.0.1 0 || return 1
	chat_pane p 40 || return 1
	$TM send-keys "clear; (head -c 1000000 $T/w/big; sleep 1.5; tail -c +1000001 $T/w/big) | $SECCHAT -v -q -b $SC 127.0.0.1 $PORT > /dev/null; echo status \$? > $T/w/c.rc" Enter
	wait_file "$T/w/c.rc"
	reap
	$TM capture-pane -p -S -100 > "$T/w/screen"
	$TM kill-server
	cat "$T/w/screen"
	local draws
	draws=$(grep -ao 'sent [0-9.]* [KM]i*B, received' "$T/w/p.raw" | wc -l)
	# Drawn short, and again, with no stale copy: the final figures only.
	[ "$draws" -ge 2 ] &&
	    expect "progress rows" "$(grep -cE '^(secchat: )?sent [0-9.]+ [KMG]?i?B' "$T/w/screen")" 1 &&
	    grep -q '^secchat: sent 2.9 MiB' "$T/w/screen" &&
	    expect "connector" "$(cat "$T/w/c.rc")" "status 0" &&
	    same "$T/w/big" "$T/w/l.out" || { echo "draws: $draws"; return 1; }
}
run "-v progress line at 40 columns: no stale rows" t_progress_narrow

# port_on_screen: PORT from the listener's line on the screen.
port_on_screen() {
	PORT=$($TM capture-pane -p | sed -n 's/^secchat: listening on 127\.0\.0\.1 port \([0-9]*\)$/\1/p')
	[ -n "$PORT" ]
}

t_listener_says() {	# at a terminal: its port without -v; -k between chats
	chat_pane k 100 || return 1
	$TM send-keys "$SECCHAT -l -k -m 1 -q $SC 127.0.0.1 0; echo status \$? > $T/w/l.rc" Enter
	wait_until 10 port_on_screen || { echo "no port"; $TM kill-server; return 1; }
	echo first > "$T/w/a"
	dial c "$T/w/a" $SC -q 127.0.0.1 "$PORT"
	expect "connector status" "$CRC" 0 || { $TM kill-server; return 1; }
	wait_screen "^secchat: waiting for the next chat on port $PORT; \\^D ends the listener\$" ||
	    { $TM kill-server; return 1; }
	$TM send-keys C-d
	wait_file "$T/w/l.rc"
	$TM capture-pane -p > "$T/w/screen"
	$TM kill-server
	cat "$T/w/screen"
	grep -qx "$HHMM 127.0.0.1> first" "$T/w/screen" &&
	    expect "listener" "$(cat "$T/w/l.rc")" "status 0"
}
run "a listener at a terminal says its port; -k -m 1 waits, ^D ends it" t_listener_says
