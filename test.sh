#!/usr/bin/env bash
# secchat test suite: one line per test, then "N passed, N failed".
#
#   ./test.sh                every suite
#   ./test.sh chat e2e       the suites named (tests/suites/NAME.sh)
#   ./test.sh t_ipv6         one test, by its function's name (words mix)
#
# Each suite registers its tests (run) and shares the helpers of
# tests/lib.sh; each runs with a temporary directory of its own.  Knobs:
# SECCHAT, KAT, HOOKS, LEAK, VALGRIND ("none" skips the memcheck test),
# RSS_LIMIT_KB, PEER (tests/lib.sh); TAIL (lines of a failed test's log,
# 20), VERBOSE (every test's log), TIMES (every test's wall time); JOBS
# (suites at once, below).
set -u
cd "$(dirname "$0")" || exit 2
# shellcheck source=tests/lib.sh
. tests/lib.sh

# In this order.  The suites of ALONE come last, each with no other suite
# beside it: they read CPU time, RSS, locked memory or wall time, or drive
# terminals against deadlines (and install's make may rebuild ./secchat).
# The others may run JOBS at once.
# deb builds in a copy of the tree (make deb), so it may run beside them.
SUITES="kat errors password attacks exec sandbox deb"
ALONE="secrets install e2e hostile serving listen written faults ends resume chat interop"
# Run only when named (make soak): minutes of wall time at the defaults.
LONG="soak"
SUITES="$SUITES $ALONE $LONG"
ALONE="$ALONE $LONG"
JOBS=${JOBS:-2}

for SUITE in $SUITES; do
	# shellcheck source=/dev/null
	. "tests/suites/$SUITE.sh"
done

# What to run: the suites and tests named, or everything.
picked=" "
for word in "$@"; do
	case " $SUITES " in *" $word "*) picked="$picked$word "; continue ;; esac
	case $word in t_*) registered "$word" && { picked="$picked$word "; continue; } ;; esac
	echo "test.sh: no suite or test named $word; the suites: $SUITES" >&2
	exit 2
done
declare -A PICKS	# suite -> the indexes of its tests to run
ORDER=()		# the suites to run, in order
want=0
for SUITE in $SUITES; do
	for i in "${!TEST_FN[@]}"; do
		[ "${TEST_SUITE[i]}" = "$SUITE" ] || continue
		case $picked in
		" ") case " $LONG " in *" $SUITE "*) continue ;; esac ;;
		*" $SUITE "* | *" ${TEST_FN[i]} "*) ;;
		*) continue ;;
		esac
		PICKS[$SUITE]="${PICKS[$SUITE]:-} $i"
		want=$((want + 1))
	done
	[ -z "${PICKS[$SUITE]:-}" ] || ORDER+=("$SUITE")
done

LOGS=$(mktemp -d /tmp/secchat-test-logs.XXXXXX)
trap 'rm -rf "$LOGS"' EXIT

# start_suite NAME: run its picked tests, in a shell of their own, into
# LOGS/NAME; LOGS/NAME.done once they are all done.
start_suite() {
	{
		suite_start
		for i in ${PICKS[$1]}; do
			run_test "${TEST_DESC[i]}" "${TEST_FN[i]}"
		done > "$LOGS/$1" 2>&1
		: > "$LOGS/$1.done"
	} < /dev/null &
}

# print_done: the logs of the suites done, in ORDER, up to the first not.
printed=0
print_done() {
	while [ "$printed" -lt "${#ORDER[@]}" ] &&
	    [ -e "$LOGS/${ORDER[printed]}.done" ]; do
		cat "$LOGS/${ORDER[printed]}"
		printed=$((printed + 1))
	done
}

all_suites() {
	local s running=0
	trap 'for p in $(jobs -p); do kill "$p" 2>/dev/null; done' EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
	for s in "${ORDER[@]}"; do
		case " $ALONE " in
		*" $s "*) wait; running=0 ;;
		*) [ "$running" -lt "$JOBS" ] || { wait -n; running=$((running - 1)); } ;;
		esac
		print_done
		start_suite "$s"
		running=$((running + 1))
		case " $ALONE " in *" $s "*) wait; running=0 ;; esac
	done
	wait
	print_done
}

# Number the tests in the order printed, count them, and say if some never
# reported (a suite that died).
all_suites | awk -v want="$want" '
	/^(ok|FAIL) [0-9]+ - / {
		n++
		sub(/^[A-Za-z]+ [0-9]+ - /, $1 " " n " - ")
		if ($1 == "ok") pass++; else fail++
	}
	{ print; fflush() }
	END {
		if (n < want) {
			print "# " want - n " of " want " tests never reported"
			fail += want - n
		}
		print pass + 0 " passed, " fail + 0 " failed"
		exit (fail > 0)
	}'
