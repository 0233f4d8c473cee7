#!/bin/sh
# Install (as root) or name (otherwise) the Debian packages shoal needs.
# Usage: deps.sh [--check] PACKAGE...   --check only reports and fails when one is missing.
check=0
if [ "$1" = "--check" ]; then check=1; shift; fi
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$check" = 1 ]; then
    echo "shoal: missing Debian packages:$missing" >&2
    echo "shoal: run 'make deps' (as root) or: sudo apt-get install -y$missing" >&2
    exit 1
fi
if [ "$(id -u)" = 0 ]; then
    echo "shoal: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y $missing || { apt-get update && apt-get install -y $missing; } || exit 1
else
    echo "shoal: missing Debian packages:$missing" >&2
    echo "shoal: install them with: sudo apt-get install -y$missing" >&2
    exit 1
fi
