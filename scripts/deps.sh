#!/bin/sh
# Install (as root) or name (otherwise) the Debian packages shoal needs.
# Usage: deps.sh [--check | --optional] PACKAGE...
#   --check     only report, and fail when one is missing.
#   --optional  what needs them runs without them: name them, or try to install them as
#               root, and never fail. They are servers the benchmarks start privately, so
#               their system services are not started on install (policy-rc.d says no,
#               for the length of the install, unless the system has one of its own).
mode=install
case "$1" in --check | --optional) mode=${1#--}; shift ;; esac
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$mode" = check ]; then
    echo "shoal: missing Debian packages:$missing" >&2
    echo "shoal: run 'make deps' (as root) or: sudo apt-get install -y$missing" >&2
    exit 1
fi
if [ "$(id -u)" = 0 ]; then
    echo "shoal: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    policy=/usr/sbin/policy-rc.d
    if [ "$mode" = optional ] && [ ! -e $policy ]; then
        trap 'rm -f $policy' EXIT
        printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy
    fi
    apt-get install -y $missing || { apt-get update && apt-get install -y $missing; } && exit 0
    [ "$mode" = optional ] && echo "shoal: could not install:$missing (going on without)" >&2
    [ "$mode" = optional ] && exit 0
    exit 1
fi
if [ "$mode" = optional ]; then
    echo "shoal: going on without:$missing; to include them: sudo apt-get install -y$missing" >&2
    exit 0
fi
echo "shoal: missing Debian packages:$missing" >&2
echo "shoal: install them with: sudo apt-get install -y$missing" >&2
exit 1
