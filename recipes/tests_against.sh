#!/usr/bin/env bash
# Run today's tests against an older tree, one test at a time with a time limit, to show that
# each fails without the fix it guards (issue 14's "a test that fails without the fix").
#   bash recipes/tests_against.sh COMMIT tests/test_a.py [tests/test_b.py ...]
# Prints "rc | test id | pytest's last line" per test; rc 0 means the test passes on COMMIT.
# The old tree is a throw-away worktree in ${TREE:-/tmp/tests-against}; today's tests/ folder
# (conftest, helpers, data) is copied over its own so the same test code runs on the old package.
set -euo pipefail
commit=$1; shift
tree=${TREE:-/tmp/tests-against}
limit=${LIMIT:-150}
py=${PYTHON:-$(command -v python)}
here=$(pwd)
git worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
git worktree add --detach "$tree" "$commit" >/dev/null
cp -r "$here"/tests/. "$tree/tests/"
ids=$("$py" -m pytest --collect-only -q "$@" 2>/dev/null | grep '::')
cd "$tree"
while IFS= read -r id; do
    rc=0
    out=$(timeout -k 5 "$limit" env PYTHONPATH="$tree" "$py" -m pytest -x -q -p no:cacheprovider \
          "$id" 2>&1) || rc=$?
    echo "$rc | $id | $(grep -E 'passed|failed|error' <<<"$out" | tail -1)"
done <<<"$ids"
cd "$here" && git worktree remove --force "$tree"
