#!/bin/bash
# Run test binaries, TEST_JOBS at a time (default 2: most of their time is spent waiting on
# a daemon, a timeout or a child, not on a CPU); print a line each as it ends and the total
# as "N passed, N failed". A binary passes when it exits 0. The output of a failing binary
# is shown in full. TEST_JOBS=1 runs them one by one, in order.
logdir=${BUILD:-build}/tests/logs
jobs_max=${TEST_JOBS:-2}
mkdir -p "$logdir"
rm -f "$logdir"/*.status "$logdir"/*.log

# A binary's name for its files: unit/test_broker and integ/test_broker are two.
tag() {
    echo "$1" | tr / _
}

# Run one binary; its output and status go to files, its line is printed when it ends.
run_one() {
    local t=$1 log start status
    log="$logdir/$(tag "$t").log"
    start=$(date +%s)
    if timeout 300 "$t" >"$log" 2>&1; then status=ok; else status=FAIL; fi
    [ "$status" = ok ] || cat "$log"
    printf '%-40s %s (%ss)\n' "$(basename "$t")" "$status" $(($(date +%s) - start))
    echo "$status" >"$logdir/$(tag "$t").status"
}

running=0
for t in "$@"; do
    if [ "$running" -ge "$jobs_max" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait

passed=0; failed=0; failures=""
for t in "$@"; do
    if [ "$(cat "$logdir/$(tag "$t").status" 2>/dev/null)" = ok ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); failures="$failures $t"
    fi
done
echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ] || { echo "failed:$failures"; exit 1; }
