#!/usr/bin/env bash
# secchat benchmark: secchat against nc, socat and socat TLS 1.3 on loopback,
# same data, same run; prints medians and ratios with the targets.
#
#   1. bulk: a random file, secchat -b -q vs nc, socat, socat TLS 1.3
#   2. lines: a file of 100-byte lines, secchat -q (a record per line) vs same
#   3. the same with secchat's hex display on (stderr of both sides to files)
#   4. latency of one-line request/response exchanges, secchat vs nc (rtt.py)
#   5. handshake: connector wall time, listener CPU per connection (hs.py)
#   6. peak RSS of both secchat sides (/usr/bin/time)
#   7. rekeys: BENCH_REKEY_LINES lines with the defaults and with -r 1 (a DH
#      REKEY after every line); the difference in CPU per line is the cost of
#      one REKEY, both sides together (sender: keygen + X25519; receiver:
#      X25519, and a new receive key each time one is used)
# With SECCHAT_BASE set (e.g. a build of the previous version), that binary
# is measured too, in sets 1 and 2, as the baseline for the default settings.
#   8. serving many: concurrent connectors against one -k listener, then as
#      many line-mode senders at once (many.py)
#   9. resume (resume.py): a connector streams a line every 20 ms through a
#      relay to a listener (both -a 1 -L 2); the relay is frozen (SIGSTOP)
#      for BENCH_FREEZE_S seconds, past -L, so both sides declare the
#      connection lost and the connector's new one waits in the relay's
#      backlog; time from the thaw (SIGCONT) to the first line the listener
#      writes, every line checked, each once and in order.  Then a listener
#      whose stdout nobody reads, and the sender's (connector's) RSS at 1, 3
#      and 8 s of the stall, -b from /dev/zero and line mode from yes: it
#      must stay constant, under -B's default 4 MiB plus 12 MiB.
# Each transfer: the receiver listens on 127.0.0.1 and writes a file, the
# sender connects; time from sender start to receiver exit; the received
# file must have the sent file's sha256.
#
# Environment (defaults in brackets):
#   BENCH_BULK_MB   size of the random file in MiB              [1024]
#   BENCH_LINES     lines of 100 bytes (99 printable + \n)       [10000000]
#   BENCH_RUNS      runs per transfer measurement (median)       [3]
#   BENCH_RTT_N     request/response exchanges per latency run   [1000]
#   BENCH_HS_RUNS   connects timed at 600000 iterations
#                   (4x+1 at 1000 iterations)                    [5]
#   BENCH_HS_CONNS  connections for listener CPU per connection  [200]
#   BENCH_MANY_CONNS  concurrent connectors for serving many     [200]
#   BENCH_MANY_LINES  lines of 100 bytes each of them sends        [5000]
#   BENCH_TIMEOUT   seconds allowed for any one transfer         [300]
#   BENCH_REKEY_LINES lines for the rekey measurement (set 7)    [200000]
#   SECCHAT         the binary to measure                        [./secchat]
#   SECCHAT_BASE    a baseline secchat to compare with           [none]
#   BENCH_FREEZE_S  seconds the relay is frozen in set 9         [6]
#   BENCH_SETS      the sets to run, e.g. "9" or "1 2 6"        [all]
#                   (6 reports the transfers of 1 and 2)
#
# Progress goes to stderr, the table to stdout.  Exit status: 0 when every
# measurement ran and every transfer arrived intact, whether or not the
# targets are met; 1 on a corrupted transfer or a tool error; 2 on bad setup.
set -u
export LC_ALL=C

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
BENCH=$ROOT/bench
SECCHAT=${SECCHAT:-./secchat}
case $SECCHAT in /*) ;; */*) SECCHAT=$ROOT/${SECCHAT#./};; esac

BULK_MB=${BENCH_BULK_MB:-1024}
LINES=${BENCH_LINES:-10000000}
RUNS=${BENCH_RUNS:-3}
RTT_N=${BENCH_RTT_N:-1000}
HS_RUNS=${BENCH_HS_RUNS:-5}
HS_CONNS=${BENCH_HS_CONNS:-200}
MANY_CONNS=${BENCH_MANY_CONNS:-200}
MANY_LINES=${BENCH_MANY_LINES:-5000}
TO=${BENCH_TIMEOUT:-300}
REKEY_LINES=${BENCH_REKEY_LINES:-200000}
FREEZE_S=${BENCH_FREEZE_S:-6}
SETS=${BENCH_SETS:-1 2 3 4 5 6 7 8 9}
SECCHAT_BASE=${SECCHAT_BASE:-}
case $SECCHAT_BASE in /*|'') ;; */*) SECCHAT_BASE=$ROOT/${SECCHAT_BASE#./};; esac
BASE=()
[ -n "$SECCHAT_BASE" ] && BASE=(base)

for v in BULK_MB LINES RUNS RTT_N HS_RUNS HS_CONNS MANY_CONNS MANY_LINES TO \
    REKEY_LINES FREEZE_S; do
	case ${!v} in ''|*[!0-9]*|0)
		echo "bench: $v must be a positive integer" >&2; exit 2;;
	esac
done
for v in $SETS; do
	case $v in [1-9]) ;; *)
		echo "bench: BENCH_SETS: sets are 1 to 9, not '$v'" >&2; exit 2;;
	esac
done
want() { [[ " $SETS " == *" $1 "* ]]; }	# want N: set N is to run

START=$EPOCHREALTIME
note() { printf 'bench: [%6.1fs] %s\n' "$(elapsed)" "$*" >&2; }
elapsed() { awk -v a="$START" -v b="$EPOCHREALTIME" 'BEGIN{print b-a}'; }
die() { echo "bench: $*" >&2; exit 2; }

ERRORS=()
error() {
	ERRORS+=("$*")
	printf '\nbench: *** ERROR: %s ***\n\n' "$*" >&2
}

# ---------------------------------------------------------------- tools

[ -x "$SECCHAT" ] || die "$SECCHAT not found or not executable (run make)"
[ -z "$SECCHAT_BASE" ] || [ -x "$SECCHAT_BASE" ] ||
    die "SECCHAT_BASE $SECCHAT_BASE is not executable"
need=""
{ command -v nc >/dev/null && nc -h 2>&1 | grep -q OpenBSD; } ||
    need="$need netcat-openbsd"
command -v socat >/dev/null || need="$need socat"
[ -x /usr/bin/time ] || need="$need time"
command -v openssl >/dev/null || need="$need openssl"
command -v ss >/dev/null || need="$need iproute2"
if [ -n "$need" ]; then
	note "installing:$need"
	{ apt-get update && apt-get install -y $need; } >&2 ||
	    die "could not install$need"
fi
command -v python3 >/dev/null || die "python3 is needed"
command -v timeout >/dev/null || die "timeout (coreutils) is needed"

# ---------------------------------------------------------------- scratch

# Everything (data, output, hex display logs) on tmpfs if it has room:
# both data files, one received copy, two hex logs of ~241 bytes a line
# (of these, what the sets chosen use).
LINE_BYTES=$((LINES * 100))
HEXLOG_BYTES=$((LINES * 260))
want 1 && GEN_BULK=1 || GEN_BULK=0
{ want 2 || want 3 || want 7; } && GEN_TEXT=1 || GEN_TEXT=0
bulk_b=$((GEN_BULK * BULK_MB * 1048576)) line_b=$((GEN_TEXT * LINE_BYTES))
OUT_MAX=$((bulk_b > line_b ? bulk_b : line_b))
need_mb=$(( (bulk_b + line_b + OUT_MAX + $(want 3 && echo 2 || echo 0) * HEXLOG_BYTES) / 1048576 + 512 ))
avail_mb() { df -Pm "$1" 2>/dev/null | awk 'NR==2{print $4}'; }
T=""
for d in /dev/shm /tmp; do
	a=$(avail_mb "$d")
	if [ -n "$a" ] && [ "$a" -ge "$need_mb" ]; then
		T=$(mktemp -d "$d/secchat-bench.XXXXXX") || die "mktemp in $d"
		break
	fi
done
[ -n "$T" ] || die "need ${need_mb} MiB free in /dev/shm or /tmp"

PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# How idle the machine is before we start (other load skews everything)
idle_pct() {
	local a b
	a=($(head -n 1 /proc/stat)); sleep 0.5; b=($(head -n 1 /proc/stat))
	awk -v i=$(( b[4] + b[5] - a[4] - a[5] )) \
	    -v t=$(( b[1]+b[2]+b[3]+b[4]+b[5]+b[6]+b[7]+b[8] - a[1]-a[2]-a[3]-a[4]-a[5]-a[6]-a[7]-a[8] )) \
	    'BEGIN{ printf "%.0f", t ? 100 * i / t : 0 }'
}
IDLE0=$(idle_pct)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
note "CPU idle before start ${IDLE0}%, load average $LOAD0"
[ "$IDLE0" -lt 90 ] &&
    note "WARNING: the machine is busy (${IDLE0}% idle): results will be skewed"
note "scratch $T ($(df -P "$T" | awk 'NR==2{print $1}'), needs ~${need_mb} MiB)"
note "secchat $SECCHAT; $(nproc) CPUs; $(nc -h 2>&1 | head -1);" \
    "$(socat -V | sed -n 's/^socat version \([^ ]*\).*/socat \1/p');" \
    "$(openssl version | cut -d' ' -f1-2)"

# ---------------------------------------------------------------- data

sha() { openssl dgst -sha256 -r "$1" | cut -c1-64; }

BULK=$T/bulk.dat
TEXT=$T/lines.txt
RTEXT=$T/rekey.txt
BULK_BYTES=0 BULK_SHA="" TEXT_SHA="" RTEXT_SHA=""
if [ "$GEN_BULK" -eq 1 ]; then
	note "generating $BULK_MB MiB of random bytes"
	head -c $((BULK_MB * 1048576)) /dev/urandom > "$BULK" || die "writing $BULK"
	BULK_BYTES=$(stat -c %s "$BULK")
	BULK_SHA=$(sha "$BULK")
fi
if [ "$GEN_TEXT" -eq 1 ]; then
	note "generating $LINES lines of 100 bytes"
	# 99*LINES base64 characters need 3/4 as many random bytes
	{ head -c $(( (99 * LINES + 3) / 4 * 3 )) /dev/urandom |
	    base64 -w 99 | head -n "$LINES"; } > "$TEXT" 2>/dev/null
	[ "$(stat -c %s "$TEXT")" -eq "$LINE_BYTES" ] &&
	    [ "$(tail -c 100 "$TEXT" | tr -dc '\n' | wc -c)" -eq 1 ] ||
	    die "line file has the wrong size"
	head -n "$REKEY_LINES" "$TEXT" > "$RTEXT" || die "writing $RTEXT"
	RTEXT_SHA=$(sha "$RTEXT")
	TEXT_SHA=$(sha "$TEXT")
fi

PF=$T/pf
openssl rand -base64 24 > "$PF" && chmod 600 "$PF" || die "password file"

CERT=$T/cert.pem KEY=$T/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj /CN=bench -days 1 -keyout "$KEY" -out "$CERT" >/dev/null 2>&1 ||
    die "openssl req failed"
TLSV=""
socat -hhh 2>/dev/null | grep -q openssl-min-proto-version &&
    TLSV=",openssl-min-proto-version=TLS1.3"

# ---------------------------------------------------------------- helpers

free_port() {
	python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_listen PORT PID: wait until something listens on 127.0.0.1:PORT
wait_listen() {
	local i
	for ((i = 0; i < 1000; i++)); do
		[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.01
	done
	return 1
}

# wait_port_line FILE PID: print the port from secchat's -v line in FILE
wait_port_line() {
	local i p
	for ((i = 0; i < 1000; i++)); do
		p=$(head -c 4096 "$1" 2>/dev/null |
		    grep -a -m1 -o 'listening on [^ ]* port [0-9]*')
		[ -n "$p" ] && { echo "${p##* }"; return 0; }
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.01
	done
	return 1
}

stop() {	# stop PID...: kill and reap
	local p
	for p in "$@"; do kill "$p" 2>/dev/null; done
	for p in "$@"; do wait "$p" 2>/dev/null; done
}

# The receiver writes into $OUT opened without truncation (1<> or socat
# OPEN without trunc), after $OUT was cut to the size of the data and
# filled with zeros: so the receiver overwrites pages tmpfs already has.
# Writing into a fresh file measured mostly this VM's page allocation
# (1 GiB through nc into a new tmpfs file: 1.5-3.3 s, into a pre-filled
# one: 0.7 s).  A short transfer leaves zeros, a long one grows the file:
# either way the sha256 differs.
prep_out() {
	truncate -s "$1" "$OUT" &&
	    dd if=/dev/zero of="$OUT" bs=1M count="$1" iflag=count_bytes \
	    conv=notrunc status=none
}

# errlines FILE: the last lines of a stderr file that are not hex display
errlines() {
	grep -a -v '^[<>] ' "$1" 2>/dev/null | tr -d '\0' | grep -v '^$' |
	    tail -n 2 | tr '\n' ' '
}

# xfer TOOL MODE DATA SHA LABEL: one timed transfer over loopback; the
# receiver listens and writes $OUT, the sender connects and reads DATA.
# Time: sender start to receiver exit.  Sets XT (seconds), XRSS_L/XRSS_S
# (peak RSS, KiB), XCPU_L/XCPU_S (user+sys, s) and XUSR_L/XUSR_S (user, s:
# for secchat, mostly AES-GCM) of the receiver and the
# sender: every tool runs under the same /usr/bin/time wrapper.
# Returns 1 (after error()) on a failed tool or a corrupted transfer.
# In hex mode stderr goes to $HEXL/$HEXS, opened without truncation for
# the same reason as $OUT (they are pre-filled once, 2.6 GB each at 10M
# lines); otherwise to fresh small files.
OUT=$T/out LERR=$T/recv.err SERR=$T/send.err HEXL=$T/hex.recv HEXS=$T/hex.send
xfer() {
	local tool=$1 mode=$2 data=$3 want=$4 label=$5
	local lpid spid port t0 t1 lrc src first got f size
	local tl=$T/time.recv ts=$T/time.send le=$LERR se=$SERR
	rm -f "$LERR" "$SERR" "$tl" "$ts"
	if [ "$mode" = hex ]; then	# clear the last run's port line
		le=$HEXL se=$HEXS
		dd if=/dev/zero of="$le" bs=4096 count=1 conv=notrunc status=none
	fi
	XT="" XRSS_L="" XRSS_S="" XCPU_L="" XCPU_S="" XUSR_L="" XUSR_S=""
	local TL=(/usr/bin/time -f '%M %U %S' -o "$tl")
	local TS=(/usr/bin/time -f '%M %U %S' -o "$ts")
	size=$(stat -c %s "$data")
	if ! prep_out "$size"; then
		error "$label: cannot prepare $OUT"
		return 1
	fi
	case $tool in
	secchat|base)
		local bin=$SECCHAT
		[ "$tool" = base ] && bin=$SECCHAT_BASE
		f=(-i 1000 -p "$PF")
		case $mode in
		bulk) f+=(-q -b);;
		line) f+=(-q);;
		liner1) f+=(-q -r 1);;
		hex) ;;
		esac
		timeout "$TO" "${TL[@]}" \
		    "$bin" -l -v "${f[@]}" 127.0.0.1 0 \
		    < /dev/null 1<> "$OUT" 2<> "$le" &
		lpid=$!; PIDS+=("$lpid")
		if ! port=$(wait_port_line "$le" "$lpid"); then
			stop "$lpid"
			error "$label: secchat listener did not start: $(errlines "$le")"
			return 1
		fi
		t0=$EPOCHREALTIME
		timeout "$TO" "${TS[@]}" \
		    "$bin" "${f[@]}" 127.0.0.1 "$port" \
		    < "$data" > /dev/null 2<> "$se" &
		spid=$!; PIDS+=("$spid")
		;;
	nc|socat|tls)
		port=$(free_port)
		case $tool in
		nc)	timeout "$TO" "${TL[@]}" nc -l 127.0.0.1 "$port" \
			    < /dev/null 1<> "$OUT" 2> "$LERR" &;;
		socat)	timeout "$TO" "${TL[@]}" socat -b 131072 -u \
			    "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" \
			    "OPEN:$OUT" < /dev/null 2> "$LERR" &;;
		tls)	timeout "$TO" "${TL[@]}" socat -b 131072 -u \
			    "OPENSSL-LISTEN:$port,bind=127.0.0.1,reuseaddr,cert=$CERT,key=$KEY,verify=0$TLSV" \
			    "OPEN:$OUT" < /dev/null 2> "$LERR" &;;
		esac
		lpid=$!; PIDS+=("$lpid")
		if ! wait_listen "$port" "$lpid"; then
			stop "$lpid"
			error "$label: $tool listener did not start: $(errlines "$LERR")"
			return 1
		fi
		t0=$EPOCHREALTIME
		case $tool in
		nc)	timeout "$TO" "${TS[@]}" nc -N 127.0.0.1 "$port" \
			    < "$data" > /dev/null 2> "$SERR" &;;
		socat)	timeout "$TO" "${TS[@]}" socat -b 131072 -u "OPEN:$data" \
			    "TCP:127.0.0.1:$port" < /dev/null 2> "$SERR" &;;
		tls)	timeout "$TO" "${TS[@]}" socat -b 131072 -u "OPEN:$data" \
			    "OPENSSL:127.0.0.1:$port,verify=0$TLSV" \
			    < /dev/null 2> "$SERR" &;;
		esac
		spid=$!; PIDS+=("$spid")
		;;
	esac
	# The receiver's exit ends the clock.  If the sender ends first with
	# an error, do not wait out the receiver's timeout.
	wait -n -p first "$lpid" "$spid"
	got=$?
	if [ "$first" = "$lpid" ]; then
		t1=$EPOCHREALTIME; lrc=$got
		[ "$lrc" -ne 0 ] && kill "$spid" 2>/dev/null
		wait "$spid"; src=$?
	else
		src=$got
		[ "$src" -ne 0 ] && kill "$lpid" 2>/dev/null
		wait "$lpid"; lrc=$?
		t1=$EPOCHREALTIME
	fi
	PIDS=("${PIDS[@]:0:${#PIDS[@]}-2}")
	if [ "$lrc" -ne 0 ] || [ "$src" -ne 0 ]; then
		error "$label: $tool failed: receiver exit $lrc, sender exit $src" \
		    "(124 = timeout ${TO}s); receiver: $(errlines "$le")" \
		    "sender: $(errlines "$se")"
		return 1
	fi
	got=$(sha "$OUT")
	if [ "$got" != "$want" ] || [ "$(stat -c %s "$OUT")" -ne "$size" ]; then
		error "CORRUPTED TRANSFER: $label via $tool: received" \
		    "$(stat -c %s "$OUT") bytes with sha256 $got, sent" \
		    "$(stat -c %s "$data") bytes with sha256 $want"
		CORRUPT=1
		return 1
	fi
	XT=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.6f", b-a}')
	read -r XRSS_L XCPU_L XUSR_L < <(tail -n 1 "$tl" | awk '{print $1, $2+$3, $2}')
	read -r XRSS_S XCPU_S XUSR_S < <(tail -n 1 "$ts" | awk '{print $1, $2+$3, $2}')
	return 0
}

median() {	# median of the arguments; "" if none
	[ $# -eq 0 ] && return
	printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{
	    if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'
}
maxof() { printf '%s\n' "$@" | sort -g | tail -n 1; }

declare -A TIMES RSS CPU USR
CORRUPT=0

# measure SET DATA SHA TOOLS...: a warm-up round (checked, not counted:
# the first transfers after a pause ran up to 50% slower), then RUNS
# rounds, tools interleaved in a round, each round starting with the next
# tool so no tool is always first.
measure() {
	local set=$1 data=$2 want=$3 r i tool mode
	local tools=("${@:4}")
	local n=${#tools[@]}
	for ((r = 0; r <= RUNS; r++)); do
		for ((i = 0; i < n; i++)); do
			tool=${tools[(i + r) % n]}
			mode=${tool#*:} tool=${tool%%:*}
			[ "$mode" = "$tool" ] && mode=$set
			if [ "$r" -eq 0 ]; then
				xfer "$tool" "$mode" "$data" "$want" "$set/$tool/$mode warm-up" &&
				    note "$set $tool warm-up: ${XT}s (not counted)"
				rm -f "$LERR" "$SERR"
				continue
			fi
			if xfer "$tool" "$mode" "$data" "$want" "$set/$tool/$mode run $r"; then
				TIMES[$set,$tool,$mode]+="$XT "
				note "$set $tool${mode:+ ($mode)} run $r: ${XT}s" \
				    "$(awk -v b="$(stat -c %s "$data")" -v t="$XT" \
				    'BEGIN{printf "%.1f MB/s", b/t/1e6}')" \
				    "${XRSS_L:+ recv/send: rss ${XRSS_L}/${XRSS_S} KiB, cpu ${XCPU_L}/${XCPU_S} s}"
				RSS[$set,$tool,l]+="$XRSS_L " RSS[$set,$tool,s]+="$XRSS_S "
				CPU[$set,$tool,l]+="$XCPU_L " CPU[$set,$tool,s]+="$XCPU_S "
				USR[$set,$tool,l]+="$XUSR_L " USR[$set,$tool,s]+="$XUSR_S "
			fi
			rm -f "$LERR" "$SERR"
		done
	done
}

# ---------------------------------------------------------------- checks

# socat must really do TLS 1.3 (what it negotiates, with -d -d)
TLSINFO=""
if want 1 || want 2 || want 3; then
	port=$(free_port)
	head -c 65536 /dev/urandom > "$T/small"
	timeout 30 socat -d -d -u \
	    "OPENSSL-LISTEN:$port,bind=127.0.0.1,reuseaddr,cert=$CERT,key=$KEY,verify=0$TLSV" \
	    "OPEN:$OUT,creat,trunc" < /dev/null 2> "$LERR" &
	lpid=$!; PIDS+=("$lpid")
	if wait_listen "$port" "$lpid" &&
	    timeout 30 socat -u "OPEN:$T/small" "OPENSSL:127.0.0.1:$port,verify=0$TLSV" \
	    < /dev/null 2> "$SERR"; then
		wait "$lpid"
		TLSINFO=$(sed -n 's/.*SSL proto version used: //p; s/.*SSL connection using //p' \
		    "$LERR" | paste -sd' ')
		case $TLSINFO in
		TLSv1.3*) note "socat TLS: $TLSINFO";;
		*) stop "$lpid"; die "socat TLS did not negotiate TLS 1.3: '$TLSINFO'";;
		esac
	else
		stop "$lpid"; die "socat TLS does not work: $(tail -n 3 "$LERR" "$SERR")"
	fi
	PIDS=()
	rm -f "$OUT" "$LERR" "$SERR" "$T/small"
fi

# What AES-256-GCM alone costs on one core (16 KiB, secchat's record size):
# each secchat side must pay this on top of what nc pays for the same bytes.
AES_MB=""
if want 1; then
	AES_MB=$(openssl speed -evp aes-256-gcm -bytes 16384 -seconds 1 2>/dev/null |
	    awk '$1 == "AES-256-GCM" { v = $NF; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1e6 }')
	note "AES-256-GCM alone on one core: ${AES_MB:-n/a} MB/s (openssl speed, 16 KiB)"
fi

# ---------------------------------------------------------------- runs

RTT_OUT="" RTT1_OUT="" HS_OUT="" MANY_OUT="" RES_OUT="" STALL_OUT=""
if want 1; then
	note "1. bulk: $BULK_MB MiB, $RUNS runs"
	measure bulk "$BULK" "$BULK_SHA" secchat nc socat tls "${BASE[@]}"
fi
if want 2; then
	note "2. lines: $LINES lines, $RUNS runs"
	measure line "$TEXT" "$TEXT_SHA" secchat nc socat tls "${BASE[@]}"
fi
if want 3; then
	note "3. hex display on: $LINES lines, $RUNS runs"
	for f in "$HEXL" "$HEXS"; do
		dd if=/dev/zero of="$f" bs=1M count="$HEXLOG_BYTES" iflag=count_bytes \
		    status=none || die "cannot pre-fill $f"
	done
	measure hex "$TEXT" "$TEXT_SHA" secchat
	rm -f "$HEXL" "$HEXS" "$OUT"
fi

if want 4; then
	note "4. latency: $RUNS x $RTT_N exchanges each through nc and secchat," \
	    "free-running, then all pinned to CPU 0"
	RTT_OUT=$(python3 "$BENCH/rtt.py" --secchat "$SECCHAT" --pf "$PF" --tmp "$T" \
	    --n "$RTT_N" --runs "$RUNS") || error "latency measurement failed"
	RTT1_OUT=$(python3 "$BENCH/rtt.py" --secchat "$SECCHAT" --pf "$PF" --tmp "$T" \
	    --n "$RTT_N" --runs "$RUNS" --cpu 0) || error "latency measurement (pinned) failed"
fi
if want 7; then
	note "7. rekeys: $REKEY_LINES lines, defaults and -r 1, $RUNS runs"
	measure rekey0 "$RTEXT" "$RTEXT_SHA" secchat:line
	measure rekey1 "$RTEXT" "$RTEXT_SHA" secchat:liner1
fi
if want 5; then
	note "5. handshake: connector times, listener CPU over $HS_CONNS connections"
	HS_OUT=$(python3 "$BENCH/hs.py" --secchat "$SECCHAT" --pf "$PF" --tmp "$T" \
	    --runs "$HS_RUNS" --conns "$HS_CONNS") || error "handshake measurement failed"
fi
if want 8; then
	note "8. serving many: $MANY_CONNS connectors at once, then $MANY_CONNS senders" \
	    "of $MANY_LINES lines each"
	MANY_OUT=$(python3 "$BENCH/many.py" --secchat "$SECCHAT" --pf "$PF" --tmp "$T" \
	    --conns "$MANY_CONNS" --lines "$MANY_LINES" --timeout "$TO") ||
	    error "serving-many measurement failed"
fi
if want 9; then
	# resume.py bounds each run (freeze + 24 s) and ends what it started,
	# on SIGTERM too; timeout is the backstop.
	note "9. resume: $RUNS runs, the relay frozen ${FREEZE_S} s each;" \
	    "then a stalled receiver, the sender's memory over 8 s, -b and lines"
	RES_OUT=$(timeout $((RUNS * (FREEZE_S + 40))) python3 "$BENCH/resume.py" \
	    freeze --secchat "$SECCHAT" --pf "$PF" --runs "$RUNS" \
	    --freeze "$FREEZE_S")
	case $? in
	0) ;;
	3) error "CORRUPTED TRANSFER: resume: the lines received differ from" \
	       "those sent (see above)"
	   CORRUPT=1;;
	*) error "resume measurement failed";;
	esac
	STALL_OUT=$(timeout 120 python3 "$BENCH/resume.py" stall \
	    --secchat "$SECCHAT" --pf "$PF") ||
	    error "stalled-receiver measurement failed"
fi

# ---------------------------------------------------------------- table

kv() { awk -v k="$2" '$1 == k {print $'"${3:-2}"'}' <<< "$1"; }
calc() { awk "BEGIN{ $1 }" 2>/dev/null; }
med() { median ${TIMES[$1]:-}; }

rate_mb() {	# SET,TOOL,MODE BYTES -> MB/s of the median time
	local t; t=$(med "$1")
	[ -n "$t" ] && calc "printf \"%.1f\", $2/$t/1e6"
}
ratio() { [ -n "$1" ] && [ -n "$2" ] && calc "printf \"%.2f\", $1/$2"; }
verdict() {	# CONDITION VALUE... -> PASS/MISS; n/a if a VALUE is missing
	local c=$1 v
	shift
	for v in "$@"; do [ -n "$v" ] || { echo n/a; return; }; done
	v=$(calc "print (($c) ? \"PASS\" : \"MISS\")")
	echo "${v:-n/a}"
}

ROWFMT='%-36s %32s  %-22s %-20s %s\n'
row() { printf "$ROWFMT" "$1" "${2:-n/a}" "$3" "$4" "$5"; }
sep() { printf '%s\n' "$1"; }

b_sc=$(rate_mb bulk,secchat,bulk "$BULK_BYTES")
b_nc=$(rate_mb bulk,nc,bulk "$BULK_BYTES")
b_so=$(rate_mb bulk,socat,bulk "$BULK_BYTES")
b_tl=$(rate_mb bulk,tls,bulk "$BULK_BYTES")
lines_s() { local t; t=$(med "$1"); [ -n "$t" ] && calc "printf \"%.0f\", $LINES/$t"; }
l_sc=$(lines_s line,secchat,line) l_nc=$(lines_s line,nc,line)
l_so=$(lines_s line,socat,line) l_tl=$(lines_s line,tls,line)
l_hx=$(lines_s hex,secchat,hex)
b_ba=$(rate_mb bulk,base,bulk "$BULK_BYTES")
l_ba=$(lines_s line,base,line)
rlines_s() { local t; t=$(med "$1"); [ -n "$t" ] && calc "printf \"%.0f\", $REKEY_LINES/$t"; }
r_l0=$(rlines_s rekey0,secchat,line) r_l1=$(rlines_s rekey1,secchat,liner1)
# CPU of both sides, median of each; the difference over the lines is
# what one REKEY costs (the -r 1 run has one per line, the default 1/1000).
cpu_both() { local l s; l=$(median ${CPU[$1,secchat,l]:-}) s=$(median ${CPU[$1,secchat,s]:-})
	[ -n "$l" ] && [ -n "$s" ] && calc "print $l+$s"; }
c_r0=$(cpu_both rekey0) c_r1=$(cpu_both rekey1)
rekey_us=$( [ -n "$c_r0" ] && [ -n "$c_r1" ] &&
    calc "printf \"%.1f\", ($c_r1-$c_r0)*1e6/($REKEY_LINES*(1-1/1000))")
rekey_wall=$( t0=$(med rekey0,secchat,line) t1=$(med rekey1,secchat,liner1)
    [ -n "$t0" ] && [ -n "$t1" ] &&
    calc "printf \"%.1f\", ($t1-$t0)*1e6/($REKEY_LINES*(1-1/1000))")
fmtl() {	# 1234567 -> "1,234,567 lines/s  123.5 MB/s"
	[ -n "$1" ] && echo "$1" | awk '{ s = $1; o = "";
	    while (length(s) > 3) { o = "," substr(s, length(s) - 2) o;
	    s = substr(s, 1, length(s) - 3) }
	    printf "%s lines/s %7.1f MB/s\n", s o, $1 * 100 / 1e6 }'
}

rtt_nc_m=$(kv "${RTT_OUT:-}" nc 2) rtt_nc_p=$(kv "${RTT_OUT:-}" nc 3)
rtt_sc_m=$(kv "${RTT_OUT:-}" secchat 2) rtt_sc_p=$(kv "${RTT_OUT:-}" secchat 3)
rtt1_nc_m=$(kv "${RTT1_OUT:-}" nc 2) rtt1_nc_p=$(kv "${RTT1_OUT:-}" nc 3)
rtt1_sc_m=$(kv "${RTT1_OUT:-}" secchat 2) rtt1_sc_p=$(kv "${RTT1_OUT:-}" secchat 3)
c600=$(kv "${HS_OUT:-}" connector_600000_ms) c1k=$(kv "${HS_OUT:-}" connector_1000_ms)
lcpu=$(kv "${HS_OUT:-}" listener_cpu_ms) lsch=$(kv "${HS_OUT:-}" listener_sched_ms)
cexe=$(kv "${HS_OUT:-}" exec_ms)
pb600=$(kv "${HS_OUT:-}" pbkdf2_600000_ms) pb1k=$(kv "${HS_OUT:-}" pbkdf2_1000_ms)
m_hs=$(kv "${MANY_OUT:-}" handshakes_per_s)
m_pcpu=$(kv "${MANY_OUT:-}" parent_cpu_ms) m_ccpu=$(kv "${MANY_OUT:-}" child_cpu_ms)
m_cpu=$([ -n "$m_pcpu" ] && [ -n "$m_ccpu" ] && calc "printf \"%.3f\", $m_pcpu+$m_ccpu")
m_lines=$(kv "${MANY_OUT:-}" lines_per_s)
m_lines=${m_lines:+$(printf '%.0f' "$m_lines")}
m_pss=$(kv "${MANY_OUT:-}" child_pss_mib) m_rss=$(kv "${MANY_OUT:-}" child_rss_mib)
m_total=$(kv "${MANY_OUT:-}" total_mib)
cdiff=$( [ -n "$c600" ] && [ -n "$c1k" ] && calc "printf \"%.1f\", $c600-$c1k")
cover=$( [ -n "$c1k" ] && [ -n "$pb1k" ] && calc "printf \"%.2f\", $c1k-$pb1k")
mib() { [ -n "$1" ] && calc "printf \"%.2f\", $1/1024"; }
rss_l=$(mib "$(maxof ${RSS[bulk,secchat,l]:-})") rss_s=$(mib "$(maxof ${RSS[bulk,secchat,s]:-})")
rssl_l=$(mib "$(maxof ${RSS[line,secchat,l]:-})") rssl_s=$(mib "$(maxof ${RSS[line,secchat,s]:-})")
r_res=$(kv "${RES_OUT:-}" resume_s) r_max=$(kv "${RES_OUT:-}" resume_max_s)
r_up=$(kv "${RES_OUT:-}" caught_up_s) r_rec=$(kv "${RES_OUT:-}" reconnected_s)
r_lost=$(kv "${RES_OUT:-}" lost_s) r_all=$(kv "${RES_OUT:-}" resume_all_s)
s3() { [ -n "$1" ] && calc "printf \"%.3f\", $1"; }
# stall MODE: "RSS1/RSS3/RSS8" in MiB; growth MODE: RSS8 - RSS1, MiB
stall() { local a b c
	a=$(kv "${STALL_OUT:-}" "$1_rss1_kb") b=$(kv "${STALL_OUT:-}" "$1_rss3_kb")
	c=$(kv "${STALL_OUT:-}" "$1_rss8_kb")
	[ -n "$a" ] && [ -n "$b" ] && [ -n "$c" ] &&
	    calc "printf \"%.1f/%.1f/%.1f\", $a/1024, $b/1024, $c/1024"; }
growth() { local a c
	a=$(kv "${STALL_OUT:-}" "$1_rss1_kb") c=$(kv "${STALL_OUT:-}" "$1_rss8_kb")
	[ -n "$a" ] && [ -n "$c" ] && calc "printf \"%+.2f\", ($c-$a)/1024"; }
last_mib() { local c; c=$(kv "${STALL_OUT:-}" "$1_rss8_kb")
	[ -n "$c" ] && calc "printf \"%.2f\", $c/1024"; }
st_b=$(stall bulk) st_l=$(stall line)
gr_b=$(growth bulk) gr_l=$(growth line)
la_b=$(last_mib bulk) la_l=$(last_mib line)

cpu() {	# SET TOOL [ARRAY] -> "recv/send" median CPU (or user) seconds
	local -n a=${3:-CPU}
	local l s
	l=$(median ${a[$1,$2,l]:-}) s=$(median ${a[$1,$2,s]:-})
	printf '%s/%s' "${l:-?}" "${s:-?}"
}

TOTAL=$(elapsed)
L='------------------------------------ --------------------------------  ---------------------- -------------------- ------'
{
echo
echo "secchat benchmark: loopback 127.0.0.1, $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC')"
if [ "$GEN_BULK" -eq 1 ] || [ "$GEN_TEXT" -eq 1 ]; then
	echo "bulk: $BULK_MB MiB random; lines: $LINES x 100 bytes; median of $RUNS run(s); MB = 10^6 bytes"
	echo "time = sender start to receiver exit; every transfer checked by sha256"
fi
[ -n "${BENCH_SETS:-}" ] && echo "sets run: $SETS (BENCH_SETS)"
echo "CPU idle before start ${IDLE0}%$([ "$IDLE0" -lt 90 ] && echo ' (BUSY: results skewed)');" \
    "load average at start $LOAD0, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
row "measurement" "value" "ratio (secchat/peer)" "target" "result"
sep "$L"
if want 1; then
	row "bulk   secchat -b -q" "${b_sc:+$b_sc MB/s}" "" "" ""
	row "bulk   nc" "${b_nc:+$b_nc MB/s}" "$(ratio "$b_sc" "$b_nc")" ">= 1.0x nc" \
	    "$(verdict "$b_sc >= 1.0*$b_nc" "$b_sc" "$b_nc")"
	row "bulk   socat" "${b_so:+$b_so MB/s}" "$(ratio "$b_sc" "$b_so")" "" ""
	row "bulk   socat TLS 1.3" "${b_tl:+$b_tl MB/s}" "$(ratio "$b_sc" "$b_tl")" ">= 1.5x socat TLS" \
	    "$(verdict "$b_sc >= 1.5*$b_tl" "$b_sc" "$b_tl")"
	row "bulk   AES-256-GCM alone, one core" "${AES_MB:+$AES_MB MB/s}" \
	    "${AES_MB:+$(calc "printf \"%.3f s per GiB\", 1073.741824/$AES_MB")}" "each side pays it" ""
	sep "$L"
fi
if want 2; then
	row "lines  secchat -q (line mode)" "$(fmtl "$l_sc")" "" ">= 2,000,000 lines/s" \
	    "$(verdict "$l_sc >= 2000000" "$l_sc")"
	row "lines  nc" "$(fmtl "$l_nc")" "$(ratio "$l_sc" "$l_nc")" "" ""
	row "lines  socat" "$(fmtl "$l_so")" "$(ratio "$l_sc" "$l_so")" "" ""
	row "lines  socat TLS 1.3" "$(fmtl "$l_tl")" "$(ratio "$l_sc" "$l_tl")" "" ""
fi
if want 3; then
	row "hex    secchat, display on (2>file)" "$(fmtl "$l_hx")" "$(r=$(ratio "$l_hx" "$l_sc") && echo "$r of -q")" "" ""
fi
if [ -n "$SECCHAT_BASE" ] && { want 1 || want 2; }; then
	row "bulk   baseline (SECCHAT_BASE)" "${b_ba:+$b_ba MB/s}" "$(ratio "$b_sc" "$b_ba")" ">= 0.97x baseline" \
	    "$(verdict "$b_sc >= 0.97*$b_ba" "$b_sc" "$b_ba")"
	row "lines  baseline (SECCHAT_BASE)" "$(fmtl "$l_ba")" "$(ratio "$l_sc" "$l_ba")" ">= 0.97x baseline" \
	    "$(verdict "$l_sc >= 0.97*$l_ba" "$l_sc" "$l_ba")"
fi
{ want 2 || want 3 || { [ -n "$SECCHAT_BASE" ] && want 1; }; } && sep "$L"
if want 7; then
	row "rekey  lines, defaults ($REKEY_LINES)" "$(fmtl "$r_l0")" "" "" ""
	row "rekey  lines, -r 1 (a REKEY a line)" "$(fmtl "$r_l1")" "$(ratio "$r_l1" "$r_l0")${r_l1:+ of defaults}" "" ""
	row "rekey  cost per REKEY, both sides" "${rekey_us:+$rekey_us us CPU}" "${rekey_wall:+wall $rekey_wall us}" "" ""
	sep "$L"
fi
if want 4; then
	row "latency nc      2 CPUs, median/p99" "${rtt_nc_m:+$rtt_nc_m / $rtt_nc_p us}" "" "" ""
	row "latency secchat 2 CPUs, median/p99" "${rtt_sc_m:+$rtt_sc_m / $rtt_sc_p us}" \
	    "$(ratio "$rtt_sc_m" "$rtt_nc_m")${rtt_sc_m:+ / $(ratio "$rtt_sc_p" "$rtt_nc_p")}" "median <= 1.2x nc" \
	    "$(verdict "$rtt_sc_m <= 1.2*$rtt_nc_m" "$rtt_sc_m" "$rtt_nc_m")"
	row "latency nc      1 CPU,  median/p99" "${rtt1_nc_m:+$rtt1_nc_m / $rtt1_nc_p us}" "" "" ""
	row "latency secchat 1 CPU,  median/p99" "${rtt1_sc_m:+$rtt1_sc_m / $rtt1_sc_p us}" \
	    "$(ratio "$rtt1_sc_m" "$rtt1_nc_m")${rtt1_sc_m:+ / $(ratio "$rtt1_sc_p" "$rtt1_nc_p")}" "median <= 1.2x nc" \
	    "$(verdict "$rtt1_sc_m <= 1.2*$rtt1_nc_m" "$rtt1_sc_m" "$rtt1_nc_m")"
	sep "$L"
fi
if want 5; then
	row "connector, 600000 iterations" "${c600:+$(calc "printf \"%.1f ms\", $c600")}" "${pb600:+PBKDF2 alone $(calc "printf \"%.1f\", $pb600") ms}" "" ""
	row "connector, 1000 iterations" "${c1k:+$(calc "printf \"%.2f ms\", $c1k")}" "${cexe:+exec alone $(calc "printf \"%.2f\", $cexe") ms}" "" ""
	row "connector beyond PBKDF2 (1000 it.)" "${cover:+$cover ms}" "" "< 5 ms" \
	    "$(verdict "$cover < 5" "$cover")"
	row "connector 600000 - 1000 iterations" "${cdiff:+$cdiff ms}" "${pb600:+PBKDF2 alone $(calc "printf \"%.1f\", $pb600-$pb1k") ms}" "~ PBKDF2 difference" ""
	row "listener CPU per connection" "${lcpu:+$(calc "printf \"%.3f ms\", $lcpu")}" "${lsch:+schedstat $(calc "printf \"%.3f\", $lsch") ms}" "< 2 ms" \
	    "$(verdict "$lcpu < 2" "$lcpu")"
	sep "$L"
fi
if want 8; then
	row "many: $MANY_CONNS connectors at once" "${m_hs:+$(calc "printf \"%.0f handshakes/s\", $m_hs")}" "connectors on this host" ">= 200 handshakes/s" \
	    "$(verdict "$m_hs >= 200" "$m_hs")"
	row "many: listener CPU per connection" "${m_cpu:+$m_cpu ms}" "${m_pcpu:+listener $m_pcpu, child $m_ccpu}" "< 2 ms" \
	    "$(verdict "$m_cpu < 2" "$m_cpu")"
	row "many: $MANY_CONNS line-mode senders" "$(fmtl "$m_lines")" "$(r=$(ratio "$m_lines" "$l_sc") && echo "$r of one")" "" ""
	row "many: peak memory per session (PSS)" "${m_pss:+$(calc "printf \"%.2f MiB\", $m_pss")}" "${m_rss:+RSS $(calc "printf \"%.2f\", $m_rss") MiB}" "< 2 MiB" \
	    "$(verdict "$m_pss < 2" "$m_pss")"
	row "many: peak memory in total" "${m_total:+$(calc "printf \"%.1f MiB\", $m_total")}" "listener RSS + children" "" ""
	sep "$L"
fi
if want 6; then
	row "peak RSS listener (bulk)" "${rss_l:+$rss_l MiB}" "${rssl_l:+line mode $rssl_l MiB}" "< 8 MiB" \
	    "$(verdict "$rss_l < 8" "$rss_l")"
	# The sender holds what the receiver has not confirmed, up to -B
	# (4 MiB by default, secchat/3's retained buffer), on top of the 8.
	row "peak RSS connector (bulk)" "${rss_s:+$rss_s MiB}" "${rssl_s:+line mode $rssl_s MiB}" "< 8 MiB + -B 4" \
	    "$(verdict "$rss_s < 12" "$rss_s")"
	sep "$L"
fi
if want 9; then
	row "resume un-freeze to resumed traffic" "${r_res:+$(s3 "$r_res") s, median of $RUNS}" \
	    "${r_max:+max $(s3 "$r_max") s}" "< 1 s" \
	    "$(verdict "$r_res < 1" "$r_res")"
	row "resume un-freeze to caught up" "${r_up:+$(s3 "$r_up") s}" \
	    "frozen ${FREEZE_S} s, -a 1 -L 2" "" ""
	row "resume stalled: sender RSS, -b" "${st_b:+$st_b MiB at 1/3/8 s}" \
	    "${gr_b:+$gr_b MiB 1 to 8 s}" "constant, < 16 MiB" \
	    "$(verdict "$gr_b <= 1 && $gr_b >= -1 && $la_b < 16" "$gr_b" "$la_b")"
	row "resume stalled: sender RSS, lines" "${st_l:+$st_l MiB at 1/3/8 s}" \
	    "${gr_l:+$gr_l MiB 1 to 8 s}" "constant, < 16 MiB" \
	    "$(verdict "$gr_l <= 1 && $gr_l >= -1 && $la_l < 16" "$gr_l" "$la_l")"
	sep "$L"
fi
echo
if [ "$GEN_BULK" -eq 1 ] || [ "$GEN_TEXT" -eq 1 ]; then
	echo "details: median wall time; CPU user+sys and user alone, receiver/sender (median);"
	echo "  peak RSS receiver/sender (max)"
fi
for k in bulk,secchat,bulk bulk,nc,bulk bulk,socat,bulk bulk,tls,bulk \
    line,secchat,line line,nc,line line,socat,line line,tls,line hex,secchat,hex \
    rekey0,secchat,line rekey1,secchat,liner1 \
    ${SECCHAT_BASE:+bulk,base,bulk line,base,line}; do
	set=${k%%,*} tool=${k#*,} tool=${tool%%,*}
	case $set in bulk) n=1;; line) n=2;; hex) n=3;; *) n=7;; esac
	want "$n" || continue
	printf '  %-5s %-8s %9s s   cpu %11s s  user %11s s   rss %5s/%-5s KiB\n' "$set" \
	    "$([ "$tool" = tls ] && echo socatTLS || echo "$tool")" \
	    "$(m=$(med "$k"); [ -n "$m" ] && printf '%.3f' "$m" || echo n/a)" \
	    "$(cpu "$set" "$tool")" "$(cpu "$set" "$tool" USR)" "$(maxof ${RSS[$set,$tool,l]:-} | grep . || echo ?)" \
	    "$(maxof ${RSS[$set,$tool,s]:-} | grep . || echo ?)"
done
{ want 1 || want 2 || want 3; } && echo "socat TLS: $TLSINFO"
want 5 && echo "handshake: PBKDF2 reference from python hashlib (OpenSSL)"
if want 4; then
	echo "latency: $RUNS x $RTT_N exchanges of a 100-byte line per tool, pooled; 2 CPUs = free-running"
	echo "  (on this VM mostly where the scheduler puts the 4 processes), 1 CPU = all pinned to CPU 0"
fi
if want 9; then
	echo "resume: a line every 20 ms through a relay frozen by SIGSTOP for ${FREEZE_S} s;" \
	    "un-freeze (SIGCONT) to the first line"
	echo "  written by the listener: ${r_all:-n/a} s; to the first line sent after the thaw" \
	    "(caught up): $(s3 "$r_up" || echo n/a) s;"
	echo "  to the connector's \"reconnected\" note: $(s3 "$r_rec" || echo n/a) s;" \
	    "it declared the connection lost $(s3 "$r_lost" || echo n/a) s into the freeze"
	echo "stalled receiver (stdout a pipe nobody reads): bytes the sender read from 1 to 8 s" \
	    "(rchar) -b $(kv "${STALL_OUT:-}" bulk_read_1_8 | grep . || echo n/a)," \
	    "lines $(kv "${STALL_OUT:-}" line_read_1_8 | grep . || echo n/a);"
	echo "  the receiver's RSS -b $(mib "$(kv "${STALL_OUT:-}" bulk_lis_rss_kb)" | grep . || echo n/a)" \
	    "MiB, lines $(mib "$(kv "${STALL_OUT:-}" line_lis_rss_kb)" | grep . || echo n/a) MiB"
fi
echo "total benchmark time: $(printf '%.0f' "$TOTAL") s"
}

if [ ${#ERRORS[@]} -gt 0 ]; then
	echo
	echo "*** ${#ERRORS[@]} ERROR(S) - results above are incomplete or invalid:"
	printf '***   %s\n' "${ERRORS[@]}"
	[ "$CORRUPT" -ne 0 ] && echo "*** CORRUPTED TRANSFER(S): secchat or a peer delivered wrong data"
	exit 1
fi
exit 0
