#!/bin/sh
# Run test binaries one by one; print a line each and the total as "N passed, N failed".
# A binary passes when it exits 0. Output of a failing binary is shown in full.
passed=0; failed=0; failures=""
logdir=${BUILD:-build}/tests/logs
mkdir -p "$logdir"
for t in "$@"; do
    name=$(basename "$t")
    log="$logdir/$name.log"
    start=$(date +%s)
    if timeout 300 "$t" >"$log" 2>&1; then
        passed=$((passed + 1)); status=ok
    else
        failed=$((failed + 1)); status=FAIL; failures="$failures $name"
        cat "$log"
    fi
    printf '%-40s %s (%ss)\n' "$name" "$status" $(( $(date +%s) - start ))
done
echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ] || { echo "failed:$failures"; exit 1; }
