#!/bin/sh
# Build and run secchat's libFuzzer targets.
#
#	fuzz/run.sh [target ...]	(default: msg1 msg2 records view password)
#
# Each target fuzz/NAME_fuzz.c is built into fuzz/NAME_fuzz with clang
# (ASan + UBSan + libFuzzer) and run for FUZZ_SECONDS seconds (default 60)
# on a copy of fuzz/corpus/NAME/ in a temporary directory, so runs never
# grow the repository.  The targets run at the same time, one process each.
# One summary line per target; the exit status is non-zero if any target
# failed to build, crashed, leaked, timed out or hit a sanitizer error,
# and then the crash input and the log are kept and their paths printed.
#
# Environment: FUZZ_SECONDS, CLANG (default clang), FUZZ_FLAGS (extra
# libFuzzer flags, e.g. "-jobs=2", "-seed=1", or "-runs=N", which ends a
# target after N executions if that comes before FUZZ_SECONDS).

set -u

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
CLANG=${CLANG:-clang}
FUZZ_FLAGS=${FUZZ_FLAGS:-}

here=$(cd "$(dirname "$0")" && pwd)
cd "$here" || exit 2

case $FUZZ_SECONDS in
''|*[!0-9]*) echo "run.sh: FUZZ_SECONDS must be a number of seconds" >&2
	exit 2 ;;
esac
if [ $# -eq 0 ]; then
	set -- msg1 msg2 records view password
fi
for t in "$@"; do
	if [ ! -f "${t}_fuzz.c" ] || [ ! -d "corpus/$t" ]; then
		echo "run.sh: no target $t (fuzz/${t}_fuzz.c, fuzz/corpus/$t/)" >&2
		exit 2
	fi
done
if ! crypto=$(pkg-config --cflags --libs libcrypto libutf8proc); then
	echo "run.sh: pkg-config does not know libcrypto or libutf8proc" >&2
	exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/secchat-fuzz.XXXXXX") || exit 2
status=0

# Build everything first: a target that does not compile is a failure.
for t in "$@"; do
	# shellcheck disable=SC2086	# $crypto is a list of flags
	if ! "$CLANG" -g -O1 -std=c11 -Wall -Wextra -Wno-unused-function \
	    -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined \
	    -o "${t}_fuzz" "${t}_fuzz.c" $crypto 2>"$work/$t.build"; then
		echo "$t: BUILD FAILED"
		sed 's/^/    /' "$work/$t.build" | head -n 30
		status=1
	elif [ -s "$work/$t.build" ]; then
		echo "$t: compiler warnings:"
		sed 's/^/    /' "$work/$t.build" | head -n 30
	fi
done
[ $status -eq 0 ] || { echo "build logs kept in $work"; exit 1; }

# Run all targets at once.
pids=
for t in "$@"; do
	mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
	cp corpus/"$t"/* "$work/$t/corpus/"
	# shellcheck disable=SC2086	# $FUZZ_FLAGS is a list of flags
	"./${t}_fuzz" -max_total_time="$FUZZ_SECONDS" -close_fd_mask=2 \
	    -print_final_stats=1 -timeout=30 \
	    -artifact_prefix="$work/$t/artifacts/" $FUZZ_FLAGS \
	    "$work/$t/corpus" >"$work/$t.log" 2>&1 &
	pids="$pids $!"
done
trap 'kill $pids 2>/dev/null; exit 130' INT TERM

i=0
for pid in $pids; do
	i=$((i + 1))
	eval "t=\${$i}"
	wait "$pid"
	rc=$?
	log="$work/$t.log"
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
	    tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" |
	    tail -n 1)
	cov=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 |
	    sed -E 's/.*(cov: [0-9]+ ft: [0-9]+).*/\1/')
	corp=$(grep -E '^#[0-9]+.*corp: ' "$log" | tail -n 1 |
	    sed -E 's/.*corp: ([0-9]+)\/.*/\1/')
	if [ $rc -eq 0 ]; then
		verdict=ok
	else
		verdict="FAILED (exit $rc)"
		status=1
	fi
	printf '%-8s %s executions, %s exec/s, %s, corpus %s, %ss: %s\n' \
	    "$t:" "${execs:-?}" "${rate:-?}" "${cov:-cov: ?}" "${corp:-?}" \
	    "${secs:-$FUZZ_SECONDS}" "$verdict"
	if [ $rc -ne 0 ]; then
		for a in "$work/$t/artifacts"/*; do
			[ -e "$a" ] && echo "    crash input: $a"
			[ -e "$a" ] && echo "    reproduce:   fuzz/${t}_fuzz $a"
		done
		echo "    log: $log"
		# The report: from the first error line to the SUMMARY line.
		awk '/ERROR|runtime error|_fuzz: |Sanitizer|deadly signal|timeout/ \
		    { p = 1 } p && n < 40 { print "    " $0; n++ }
		    p && /^SUMMARY/ { exit }' "$log"
	fi
done

if [ $status -eq 0 ]; then
	rm -rf "$work"
else
	echo "run.sh: failures; logs and crash inputs kept in $work"
fi
exit $status
