#!/usr/bin/env bash
# Fails when a tracked file of the repository holds something shaped like a credential: our API
# keys, JWT signing keys and tokens, private keys, and common cloud credentials (the rules are in
# scripts/secret-rules). Prints where and which rule, never the matched text, so the scan's own
# output does not spread a leaked secret further.
#
# Usage: scripts/scan-secrets.sh [WORK_TREE]   (default: this repository)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rules=$here/secret-rules
tree=${1:-$here/..}
cd "$tree"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "error: $tree is not a git work tree" >&2; exit 2; }

excludes=()
if [ -f .secret-scan-allow ]; then
  while IFS= read -r line; do
    case "$line" in '' | '#'*) continue ;; esac
    excludes+=(":(exclude,literal)$line")
  done < .secret-scan-allow
fi

hits=0
while IFS= read -r line; do
  case "$line" in '' | '#'*) continue ;; esac
  name=${line%% *}
  regex=${line#* }
  # -I skips binary files; --untracked is not given: only what is (or is about to be) committed.
  while IFS= read -r hit; do
    [ -n "$hit" ] || continue
    case "$hit" in *'secret-scan: allow'*) continue ;; esac
    file=${hit%%:*}
    rest=${hit#*:}
    lineno=${rest%%:*}
    echo "$file:$lineno: $name" >&2
    hits=$((hits + 1))
  done < <(git grep -nIE -e "$regex" -- . "${excludes[@]}" || true)
done < "$rules"

if [ "$hits" -gt 0 ]; then
  echo "error: $hits possible secret(s) in tracked files (rules: scripts/secret-rules); remove them and rotate what leaked" >&2
  exit 1
fi
echo "secret scan: no credentials in $(git ls-files | wc -l | tr -d ' ') tracked files" >&2
