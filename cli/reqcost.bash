# bash completion for reqcost. The commands and each command's options are
# read from `reqcost --help` and `reqcost COMMAND --help` of the very binary
# being completed (CLI11 generates no completion script; its help lists
# everything), so they never drift from it. Installed as
# share/bash-completion/completions/reqcost, where bash-completion loads it
# on the first `reqcost <TAB>`.

# The option names (-p, --pid, ...) in the help of "$@" (a command line).
_reqcost_options() {
  "$@" --help 2> /dev/null |
    sed -n 's/^  \(-[^ ]*\).*/\1/p' | tr ',' '\n' | sed 's/{.*//'
}

# The commands in `reqcost --help`.
_reqcost_commands() {
  "$1" --help 2> /dev/null |
    sed -n '/^Subcommands:/,$ s/^  \([a-z][a-z-]*\) .*/\1/p'
}

_reqcost() {
  local cur="${COMP_WORDS[COMP_CWORD]}"
  local prev="${COMP_WORDS[COMP_CWORD - 1]}"
  local bin="${COMP_WORDS[0]}" cmd="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      -*) ;;
      *) cmd="${COMP_WORDS[i]}"; break ;;
    esac
  done
  COMPREPLY=()
  # The values of the options whose values can be listed.
  case "$prev" in
    -p | --pid)
      COMPREPLY=($(compgen -W "$(ls /proc | grep -x '[0-9]*')" -- "$cur"))
      return ;;
    -f | --format)
      COMPREPLY=($(compgen -W "text json jsonl" -- "$cur"))
      return ;;
    --cgroup)
      COMPREPLY=($(compgen -d -- "$cur"))
      return ;;
  esac
  if [[ -z "$cmd" && "$cur" != -* ]]; then
    COMPREPLY=($(compgen -W "$(_reqcost_commands "$bin")" -- "$cur"))
  elif [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_reqcost_options "$bin" $cmd)" -- "$cur"))
  fi
  # Anything else (capture files, output files): file names (-o default).
}

complete -o default -F _reqcost reqcost
