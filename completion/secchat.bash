# bash completion for secchat(1)                          -*- shell-script -*-
#
# Installed as share/bash-completion/completions/secchat by make install
# and the Debian package.  Options (the list of secchat -h), a file for -p,
# a command for -e, a host name for the first argument; nothing for ports
# and numbers.  Uses bash-completion's helpers when they are loaded, plain
# compgen when they are not.

_secchat()
{
	local cur prev words cword
	if declare -F _init_completion > /dev/null; then
		_init_completion || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi
	COMPREPLY=()

	# secchat -h's options; getopt_long permutes, so they go anywhere.
	local opts='-4 -6 -a -B -b -e -g -h -i -K -k -L -l -m -n -P -p -q -R -r -V
	    -v -W -w -x -X --help --version'
	local takes_arg=aBeiLmnPprRWwX

	# Walk the words before this one: arg is the option whose argument
	# this word is (-p FILE, -qp FILE), npos counts the arguments so far.
	local i j w c arg= npos=0 dashdash=
	for ((i = 1; i < cword; i++)); do
		w=${words[i]}
		if [[ -n $arg ]]; then
			arg=
		elif [[ -n $dashdash || $w != -?* ]]; then
			((npos++))
		elif [[ $w == -- ]]; then
			dashdash=1
		elif [[ $w != --* ]]; then
			# A group of flags; a letter that takes an argument
			# ends it, taking the rest of the word or the next one.
			for ((j = 1; j < ${#w}; j++)); do
				c=${w:j:1}
				if [[ $takes_arg == *"$c"* ]]; then
					((j == ${#w} - 1)) && arg=$c
					break
				fi
			done
		fi
	done

	case $arg in
	p)
		if declare -F _filedir > /dev/null; then
			_filedir
		else
			compopt -o filenames 2> /dev/null
			local IFS=$'\n'
			COMPREPLY=($(compgen -f -- "$cur"))
		fi
		return
		;;
	e)
		# The command's first word, also after an opening quote
		# ('cat > upload...'), which then stays open.
		local q=
		[[ $cur == [\'\"]* ]] && q=${cur:0:1}
		local IFS=$'\n'
		COMPREPLY=($(compgen -c -- "${cur#$q}" | sort -u))
		if [[ -n $q ]]; then
			COMPREPLY=("${COMPREPLY[@]/#/$q}")
			compopt -o nospace 2> /dev/null
		fi
		return
		;;
	?)
		return	# a number or a name
		;;
	esac

	if [[ -z $dashdash && $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	elif ((npos == 0)); then
		# The host (with -l it may be the port: nothing to offer).
		if declare -F _known_hosts_real > /dev/null; then
			_known_hosts_real -- "$cur"
		else
			COMPREPLY=($(compgen -A hostname -- "$cur"))
		fi
	fi
} &&
	complete -F _secchat secchat

# ex: filetype=sh
