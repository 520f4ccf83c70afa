# shellcheck shell=bash
# The full-length runs at the defaults (-a 15, -L 45), minutes of
# wall time: not in make check (which has their scaled twins in resume.sh
# and ends.sh), run by make soak.

# A chat quiet for 5 minutes, then a 60 s dead link: "no word from" after
# 20 s of it, lost after 45 s, resumed at the thaw, each line once.
t_soak_chat_freeze() {
	local NORESUME= RELAY_SECS=600
	chat_through_freeze 300 60 || return 1
	grep -q '^secchat: no word from bob for 20 s$' "$T/w/panes" &&
	    grep -q '^secchat: no word from alice for 20 s$' "$T/w/panes" &&
	    awk -v t="$THAWED" 'BEGIN { exit !(t < 1) }' ||
	    { echo "resumed ${THAWED} s after the thaw"; return 1; }
}
run "soak: a chat quiet for 5 min with no note, then a 60 s dead link: resumed, each line once" t_soak_chat_freeze
