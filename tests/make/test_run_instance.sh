#!/bin/sh
# test_run_instance.sh - `make run` gives each checkout its own instance name.
#
# The instance names the shm directory (/dev/shm/shoal.<instance>), which a second daemon
# cannot share: two checkouts of one user must get different names, and one checkout the
# same name every time (its rings are found again after a restart). A second "checkout" is
# an empty directory that make runs the Makefile in (-C), which is all the name depends on.
# Run by `make test`, or alone from the checkout.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
other=$(mktemp -d "${TMPDIR:-/tmp}/shoal-test-make-XXXXXX") || exit 1
trap 'rm -rf "$other"' EXIT
failed=0
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

name() { make -s --no-print-directory -f "$root/Makefile" -C "$1" run-instance; }

a=$(name "$root")
b=$(name "$other")
echo "$a" | grep -Eq "^shoal-$(id -u)-[0-9a-f]{8}\$" || bad "unexpected instance name '$a'"
[ "$a" != "$b" ] || bad "two checkouts share the instance '$a'"
[ "$(name "$root")" = "$a" ] || bad "the instance of one checkout changed"
make -s --no-print-directory -C "$root" -n run 2>/dev/null | grep -q -- "--instance $a" ||
    bad "make run does not use the instance '$a'"
[ "$failed" = 0 ] && echo "ok: checkouts get their own instance ($a, $b)"
[ "$failed" = 0 ]
