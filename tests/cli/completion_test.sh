#!/usr/bin/env bash
# The bash completion (cli/reqcost.bash) against the built reqcost: the
# commands, each command's options as its --help lists them, and the values
# it can list (formats, PIDs).
#   completion_test.sh COMPLETION_FILE REQCOST
set -euo pipefail
source "$1"
reqcost="$2"

# complete WORDS...: COMPREPLY for the last word, as bash asks for it.
complete_words() {
  COMP_WORDS=("$reqcost" "$@")
  COMP_CWORD=$#
  _reqcost
  printf '%s\n' "${COMPREPLY[@]}"
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# expect WORDS... -- EXPECTED: the completions are exactly EXPECTED.
expect() {
  local words=()
  while [ "$1" != "--" ]; do words+=("$1"); shift; done
  shift
  local got want
  got="$(complete_words "${words[@]}" | sort | tr '\n' ' ')"
  want="$(printf '%s\n' "$@" | sort | tr '\n' ' ')"
  [ "$got" = "$want" ] || fail "'reqcost ${words[*]}': got '$got', want '$want'"
}

complete -p reqcost | grep -q -- "-F _reqcost" || fail "no completion for reqcost"
expect "" -- check attach record report compare timeline import demo
expect "at" -- attach
expect "re" -- record report
expect attach --cg -- --cgroup
expect attach --tls -- --tls-probes
expect attach --no-tls -- --no-tls-probes
expect report --group -- --group-by
expect attach -f j -- json jsonl
complete_words record -p "$$" | grep -qx "$$" || fail "record -p: this shell's PID $$ not offered"
expect --ver -- --version
# Every option attach's help lists is offered.
n="$(complete_words attach - | grep -c .)"
want="$("$reqcost" attach --help | grep -c '^  -')"
[ "$n" -ge "$want" ] || fail "attach -: $n options offered, its help lists $want lines"
echo "PASS"
