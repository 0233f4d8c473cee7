#!/bin/sh
# test_power_loss.sh - what shoald calls flushed survives a power loss, also after a kill -9.
#
# The data directory is an ext4 filesystem in a file, mounted through a loop device. The
# daemon writes a .log without fsyncing it (flush.ms ten minutes away) and is killed with
# SIGKILL; the restarted daemon reports the records flushed. A copy of the filesystem's
# file then is what the device holds: what a power loss at that moment would leave. Every
# record the daemon calls flushed must be in it. (A restarted daemon used to take the .log
# ends as flushed without syncing them: the copy held an empty .log.)
#
# Needs root, a loop device and mkfs.ext4; says "skipped" and passes without them. Run by
# `make test`, or alone from the checkout (BUILD=build by default).
set -u
build=${BUILD:-build}
records=2000
if [ "$(id -u)" != 0 ] || ! command -v mkfs.ext4 >/dev/null || ! losetup -f >/dev/null 2>&1; then
    echo "skipped: needs root, mkfs.ext4 and a free loop device"
    exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/shoal-test-power-XXXXXX") || exit 1
instance=power-$$
sock=$work/run/shoald.sock
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    umount "$work/copy" 2>/dev/null
    umount "$work/data" 2>/dev/null
    rm -rf "$work" "/dev/shm/shoal.$instance"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$work/shoald.log" ] && cat "$work/shoald.log"; exit 1; }
shoal() { "$build/shoal" --socket "$sock" "$@"; }

start() {
    "$build/shoald" --data-dir "$work/data/d" --runtime-dir "$work/run" --instance "$instance" \
        --log-level debug >>"$work/shoald.log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do
        shoal topic list >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    fail "shoald did not start"
}
# FLUSHED of partition 0, from `topic describe`'s table.
flushed() { shoal topic describe pl | awk '$1 == "0" && NF == 6 { print $4 }'; }
# The records a .log holds, by `shoal dump`'s summary.
records_in() { "$build/shoal" dump "$1" 2>/dev/null | sed -n 's/^summary: .* records: \([0-9]*\) .*/\1/p'; }

mkdir -p "$work/data" "$work/copy" "$work/run"
truncate -s 64M "$work/disk.img" && mkfs.ext4 -q -F "$work/disk.img" &&
    mount -o loop "$work/disk.img" "$work/data" || fail "cannot make the loop filesystem"
start
shoal topic create pl --segment-bytes 4M --ring-slots 2 --set flush.ms=600000 >/dev/null ||
    fail "topic create"
seq 1 $records | shoal produce pl --acks memory >/dev/null 2>&1 || fail "produce"
for _ in $(seq 100); do # written to the .log by the flusher's passes, not fsynced
    [ "$(records_in "$work/data/d/pl-0/00000000000000000000.log")" = $records ] && break
    sleep 0.05
done
[ "$(flushed)" = 0 ] || fail "flushed before flush.ms: $(flushed)"

kill -9 "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
start
[ "$(flushed)" = $records ] || fail "the restarted daemon reports $(flushed) flushed, not $records"

# The power goes: the device holds what the filesystem wrote out, nothing of its cache.
kill -STOP "$pid"
cp "$work/disk.img" "$work/copy.img"
kill -CONT "$pid"
mount -o loop "$work/copy.img" "$work/copy" || fail "cannot mount the copy"
log=$work/copy/d/pl-0/00000000000000000000.log
[ -f "$log" ] || fail "no .log of pl-0 on the device"
on_device=$(records_in "$log")
[ "$on_device" = $records ] ||
    fail "the device holds $on_device of the $records records shoald calls flushed"
echo "ok: the $records records reported flushed after a kill -9 are on the device"
