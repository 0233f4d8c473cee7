#!/bin/sh
# test_bench_interrupt.sh - an interrupted benchmark suite leaves nothing behind.
#
# A shoal ring holds 256 MiB of RAM in /dev/shm, so a `make bench` stopped with Ctrl-C
# must not leave its shoald, its rings, its control files, its processes or its temporary
# directory (bench/README.md). Two ways to stop it, each in the middle of a run:
#   1. SIGINT to its whole process group, as Ctrl-C in a terminal sends;
#   2. SIGTERM to the driver alone, as `kill` or a CI timeout sends.
# Each must exit with 128 + the signal, say so, and leave none of the above.
# Run by `make test` (BUILD comes from the Makefile), or alone from the checkout.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
BUILD=${BUILD:-build}
bench=$BUILD/shoal-bench
log=$(mktemp "${TMPDIR:-/tmp}/shoal-test-bench-XXXXXX") || exit 1
pid=
failed=0

cleanup() {
    if [ -n "$pid" ]; then kill -9 "-$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
    rm -f "$log"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

[ -x "$bench" ] || { echo "FAIL: $bench is not built"; exit 1; }

# The suite's temporary directories, to tell the new one from others' (mkdtemp names).
bench_dirs() { ls -d /tmp/shoal-bench-* 2>/dev/null | sort; }

# The processes of process group $1, from /proc (no procps needed): pid, state.
group_members() {
    for s in /proc/[0-9]*/stat; do
        read -r p _ state _ g _ <"$s" 2>/dev/null && [ "$g" = "$1" ] && echo "$p($state)"
    done
}

# Start a suite of 32-byte runs in its own session (its pid is its process group), and
# wait until its first run has printed: shoald is up and a shoal or floor run follows.
start_suite() {
    : >"$log" # else the wait below may read the last suite's lines before this one starts
    setsid "$bench" --mode quick --only 32-b64 --shoald "$BUILD/shoald" >/dev/null 2>"$log" &
    pid=$!
    for _ in $(seq 1 200); do
        grep -q 'probe' "$log" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    bad "the suite printed no run within 10 s:"
    cat "$log"
    return 1
}

# $1: what was sent, $2: the exit status it must give
check_stopped() {
    status=0
    wait "$pid" || status=$?
    [ "$status" = "$2" ] || bad "$1: exit status $status, want $2"
    grep -q 'stopped by' "$log" || bad "$1: no word that it was stopped: $(cat "$log")"
    left=$(group_members "$pid" | tr '\n' ' ')
    [ -z "$left" ] || bad "$1: processes left in its group: $left"
    for f in /dev/shm/shoal.bench-"$pid" /dev/shm/shoal-bench-"$pid".*; do
        [ -e "$f" ] && bad "$1: left $f"
    done
    [ "$(bench_dirs)" = "$dirs_before" ] || bad "$1: left a directory: $(bench_dirs)"
    if [ "$failed" = 0 ]; then
        echo "ok:   $1: exit $status, nothing left"
    else # what it left must not stay on the machine
        kill -9 "-$pid" 2>/dev/null
        rm -rf /dev/shm/shoal.bench-"$pid" /dev/shm/shoal-bench-"$pid".*
        for d in $(bench_dirs); do
            case "$dirs_before" in *"$d"*) ;; *) rm -rf "$d" ;; esac
        done
    fi
    pid=
}

dirs_before=$(bench_dirs)
if start_suite; then
    kill -INT "-$pid"
    check_stopped "SIGINT to the process group" 130
fi
if start_suite; then
    kill -TERM "$pid"
    check_stopped "SIGTERM to the driver alone" 143
fi
[ "$failed" = 0 ] || exit 1
echo "bench interrupt: passed"
