#!/bin/sh
# test_install.sh - `make install` into a DESTDIR, checked as a packager and a user would:
#   1. the files, the library's soname (libshoal.so.0.1: 0.x carries the minor) and
#      symlinks, the removal of an older install's libshoal.so.0 link, a config file naming
#      every key;
#   2. `systemd-analyze verify` accepts shoald.service and an instance of shoald@.service
#      (copies whose ExecStart points into the DESTDIR, with MANPATH there too, so the
#      Documentation= man pages are checked as installed); systemd-sysusers and
#      systemd-tmpfiles accept their entries (--root into a copy of the DESTDIR);
#   3. app.c built with nothing but `pkg-config --cflags --libs shoal` against the DESTDIR
#      (PKG_CONFIG_SYSROOT_DIR, then --define-prefix, then statically) connects to the
#      installed shoald, produces and consumes; the installed CLI does too;
#   4. the daemon reloads on SIGHUP and stops with status 0 on SIGTERM; every system call
#      it made (traced with strace, when strace works here and the build is not
#      sanitized) is in systemd's @system-service set, which shoald.service allows;
#   5. `make uninstall` leaves no file behind, and an edited config file survives a
#      reinstall.
# Run by `make test` (BUILD, CC, SHOAL_OPT and SHOAL_LDFLAGS come from the Makefile, so the
# asan flavour builds and runs everything with the sanitizers), or alone from the checkout.
# A step whose tool is missing is skipped with a message; everything else must pass.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
BUILD=${BUILD:-build}
CC=${CC:-cc}
PREFIX=/usr/local
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shoal-test-install-XXXXXX") || exit 1
dest=$tmp/dest
inst=install-$$
daemon_pid= shoald_pid=
passed=0 failed=0 skipped=0

cleanup() {
    [ -n "$shoald_pid" ] && kill -9 "$shoald_pid" 2>/dev/null
    if [ -n "$daemon_pid" ]; then kill -9 "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; fi
    rm -rf "$tmp" "/dev/shm/shoal.$inst"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
ok() { passed=$((passed + 1)); echo "ok:   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
skip() { skipped=$((skipped + 1)); echo "skip: $*"; }
check() { # check DESCRIPTION COMMAND...
    what=$1; shift
    if "$@" >"$tmp/out" 2>&1; then ok "$what"; else bad "$what"; sed 's/^/      /' "$tmp/out"; fi
}

# The nested make must not join the outer one's jobserver; it only installs what is built.
unset MAKEFLAGS MFLAGS MAKELEVEL
mk() {
    if [ -n "${SHOAL_OPT:-}" ]; then
        make --no-print-directory -s BUILD="$BUILD" SHOAL_OPT="$SHOAL_OPT" \
            LDFLAGS="${SHOAL_LDFLAGS:-}" PREFIX=$PREFIX "$@"
    else
        make --no-print-directory -s BUILD="$BUILD" PREFIX=$PREFIX "$@"
    fi
}

# ------------------------------------------------------------------ 1. the files
# an install from before the soname carried the minor: its link must not survive
mkdir -p "$dest$PREFIX/lib" && ln -s libshoal.so.0.1.0 "$dest$PREFIX/lib/libshoal.so.0"
check "make install DESTDIR=... PREFIX=$PREFIX" mk install DESTDIR="$dest"
lib=$dest$PREFIX/lib
for f in bin/shoald bin/shoal lib/libshoal.a lib/libshoal.so.0.1.0 include/shoal.h \
    lib/pkgconfig/shoal.pc lib/systemd/system/shoald.service lib/systemd/system/shoald@.service \
    lib/sysusers.d/shoal.conf lib/tmpfiles.d/shoal.conf share/man/man1/shoal.1 \
    share/man/man3/shoal.h.3 share/man/man8/shoald.8; do
    [ -f "$dest$PREFIX/$f" ] || bad "installed: $PREFIX/$f is missing"
done
[ -f "$dest/etc/shoal/shoald.conf" ] || bad "installed: /etc/shoal/shoald.conf is missing"
[ "$(readlink "$lib/libshoal.so")" = libshoal.so.0.1 ] &&
    [ "$(readlink "$lib/libshoal.so.0.1")" = libshoal.so.0.1.0 ] &&
    ok "libshoal.so -> libshoal.so.0.1 -> libshoal.so.0.1.0" || bad "library symlinks"
if [ -L "$lib/libshoal.so.0" ]; then
    bad "an older install's libshoal.so.0 link survived"
else
    ok "an older install's libshoal.so.0 link is gone"
fi
if command -v readelf >/dev/null; then
    readelf -d "$lib/libshoal.so.0.1.0" | grep -q 'SONAME.*\[libshoal\.so\.0\.1\]' &&
        ok "soname libshoal.so.0.1" || bad "soname is not libshoal.so.0.1"
else
    skip "soname: readelf is not installed"
fi
missing=""
for key in data.dir runtime.dir instance shm.dir flush.interval.ms flush.ms allow.gid log.level \
    log.file; do
    grep -Eq "^#?$key = " "$dest/etc/shoal/shoald.conf" || missing="$missing $key"
done
[ -z "$missing" ] && ok "shoald.conf names every key" || bad "shoald.conf lacks:$missing"

# ------------------------------------------------------------------ 2. systemd
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$tmp/units"
    for u in shoald.service shoald@.service; do
        sed "s|^ExecStart=$PREFIX/bin/shoald|ExecStart=$dest$PREFIX/bin/shoald|" \
            "$dest$PREFIX/lib/systemd/system/$u" >"$tmp/units/$u"
    done
    man_opt=
    command -v man >/dev/null || man_opt=--man=no
    if MANPATH=$dest$PREFIX/share/man systemd-analyze verify $man_opt \
        "$tmp/units/shoald.service" "$tmp/units/shoald@test.service" >"$tmp/out" 2>&1 &&
        ! [ -s "$tmp/out" ]; then
        ok "systemd-analyze verify shoald.service shoald@test.service"
    else
        bad "systemd-analyze verify"; sed 's/^/      /' "$tmp/out"
    fi
else
    skip "systemd-analyze is not installed (Debian package systemd): units not verified"
fi
if [ "$(id -u)" != 0 ]; then
    skip "systemd-sysusers/systemd-tmpfiles --root: only as root (they chown)"
elif command -v systemd-sysusers >/dev/null && command -v systemd-tmpfiles >/dev/null; then
    cp -a "$dest" "$tmp/root"
    mkdir -p "$tmp/root/etc"
    check "systemd-sysusers --root creates user and group shoal" \
        sh -c "systemd-sysusers --root='$tmp/root' && grep -q '^shoal:' '$tmp/root/etc/passwd' &&
               grep -q '^shoal:' '$tmp/root/etc/group'"
    check "systemd-tmpfiles --root creates /var/lib/shoal 0700 and /run/shoal 0711" \
        sh -c "systemd-tmpfiles --root='$tmp/root' --create &&
               [ \"\$(stat -c %a '$tmp/root/var/lib/shoal')\" = 700 ] &&
               [ \"\$(stat -c %a '$tmp/root/run/shoal')\" = 711 ]"
else
    skip "systemd-sysusers/systemd-tmpfiles are not installed: entries not checked"
fi

# ------------------------------------------------------------------ 3. a program and the daemon
pc_dir=$lib/pkgconfig
app_built=0
if command -v pkg-config >/dev/null; then
    flags=$(PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_PATH=$pc_dir pkg-config --cflags --libs shoal)
    echo "      pkg-config --cflags --libs shoal: $flags"
    # shellcheck disable=SC2086 # the flags are words
    check "cc app.c \$(pkg-config --cflags --libs shoal) (sysroot)" \
        $CC ${SHOAL_OPT:-} tests/install/app.c $flags -o "$tmp/app" && app_built=1
    flags=$(PKG_CONFIG_PATH=$pc_dir pkg-config --define-prefix --cflags --libs shoal)
    # shellcheck disable=SC2086
    check "cc app.c \$(pkg-config --define-prefix --cflags --libs shoal)" \
        $CC ${SHOAL_OPT:-} tests/install/app.c $flags -o "$tmp/app2"
    flags=$(PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_PATH=$pc_dir pkg-config --static --cflags shoal)
    libs=$(PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_PATH=$pc_dir pkg-config --static --libs-only-L shoal)
    private=$(PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_PATH=$pc_dir pkg-config --static --libs-only-l shoal |
        sed 's/-lshoal//')
    # shellcheck disable=SC2086
    check "cc app.c with libshoal.a and pkg-config --static" \
        $CC ${SHOAL_OPT:-} tests/install/app.c $flags $libs -Wl,-Bstatic -lshoal -Wl,-Bdynamic \
        $private -o "$tmp/app-static"
else
    skip "pkg-config is not installed (Debian package pkgconf): no program built"
fi

conf=$tmp/shoald.conf
# The shipped file names the group shoal, which only systemd-sysusers creates.
if getent group shoal >/dev/null; then cp "$dest/etc/shoal/shoald.conf" "$conf"; else
    sed 's/^allow.gid = shoal$/allow.gid = -1/' "$dest/etc/shoal/shoald.conf" >"$conf"
fi
sock=$tmp/run/shoald.sock
tracer=
case "${SHOAL_OPT:-}" in
*-fsanitize*) skip "system call check: the sanitizers' runtime makes calls of its own" ;;
*)
    if ! command -v strace >/dev/null || ! command -v systemd-analyze >/dev/null; then
        skip "system call check: strace or systemd-analyze is not installed"
    elif ! strace -f -qq -o /dev/null true 2>/dev/null; then
        skip "system call check: strace cannot trace here (ptrace refused)"
    else
        tracer="strace -f -qq -o $tmp/trace"
    fi
    ;;
esac
# shellcheck disable=SC2086 # $tracer is a command line or nothing
$tracer "$dest$PREFIX/bin/shoald" --config "$conf" --data-dir "$tmp/data" --runtime-dir "$tmp/run" \
    --instance "$inst" 2>"$tmp/shoald.log" &
daemon_pid=$!
shoald_pid=$daemon_pid
if [ -n "$tracer" ]; then # the daemon is strace's child
    shoald_pid=
    i=0
    while [ $i -lt 100 ] && [ -z "$shoald_pid" ]; do
        shoald_pid=$(pgrep -P "$daemon_pid" shoald); sleep 0.05; i=$((i + 1))
    done
fi
i=0
while [ $i -lt 100 ] && ! "$dest$PREFIX/bin/shoal" --socket "$sock" topic list >/dev/null 2>&1; do
    sleep 0.1; i=$((i + 1))
done
if [ $i -lt 100 ]; then ok "installed shoald serves $sock with the installed config"; else
    bad "installed shoald did not start"; cat "$tmp/shoald.log"
fi
if [ $app_built = 1 ]; then
    check "app (shared libshoal from DESTDIR) produces and consumes" \
        env LD_LIBRARY_PATH="$lib" "$tmp/app" "$sock"
    readelf -d "$tmp/app" 2>/dev/null | grep -q 'NEEDED.*\[libshoal\.so\.0\.1\]' &&
        ok "app needs libshoal.so.0.1" || bad "app does not link libshoal.so.0.1"
    [ -x "$tmp/app2" ] && check "app built with --define-prefix runs" \
        env LD_LIBRARY_PATH="$lib" "$tmp/app2" "$sock"
    [ -x "$tmp/app-static" ] && check "app (static libshoal) produces and consumes" \
        "$tmp/app-static" "$sock"
fi
check "installed shoal CLI: create, produce, consume" sh -c "
    S='$dest$PREFIX/bin/shoal --socket $sock'
    \$S topic create cli && printf 'k:hello\n' | \$S produce cli --key-separator : &&
    [ \"\$(\$S consume cli --from-beginning --max-messages 1 --timeout-ms 2000 --format '%k=%v')\" = k=hello ]"
kill -HUP "$shoald_pid"
i=0
while [ $i -lt 50 ] && ! grep -q 'reloaded:' "$tmp/shoald.log"; do sleep 0.1; i=$((i + 1)); done
[ $i -lt 50 ] && ok "installed shoald reloads on SIGHUP" || bad "no reload after SIGHUP"
kill -TERM "$shoald_pid"
status=0
wait "$daemon_pid" || status=$?
daemon_pid= shoald_pid=
[ $status = 0 ] && ok "installed shoald exits 0 on SIGTERM" ||
    { bad "shoald exited with $status"; cat "$tmp/shoald.log"; }
if [ -n "$tracer" ]; then
    # Expand @system-service (groups name further groups) into the list of allowed calls.
    todo=@system-service seen=
    : >"$tmp/allowed"
    while [ -n "$todo" ]; do
        set -- $todo; group=$1; shift; todo="$*"
        case " $seen " in *" $group "*) continue ;; esac
        seen="$seen $group"
        for x in $(systemd-analyze syscall-filter "$group" | sed '1d; s/^ *//; /^#/d; /^$/d'); do
            case $x in @*) todo="$todo $x" ;; *) echo "$x" >>"$tmp/allowed" ;; esac
        done
    done
    sort -u "$tmp/allowed" -o "$tmp/allowed"
    awk '$2 ~ /^[a-z_0-9]+\(/ { sub(/\(.*/, "", $2); print $2 }' "$tmp/trace" | sort -u >"$tmp/used"
    extra=$(comm -23 "$tmp/used" "$tmp/allowed" | tr '\n' ' ')
    [ -z "$extra" ] && ok "shoald's $(wc -l <"$tmp/used") system calls are all in @system-service" ||
        bad "shoald made calls outside @system-service: $extra"
fi

# ------------------------------------------------------------------ 5. uninstall
echo "# edited" >>"$dest/etc/shoal/shoald.conf"
if mk install DESTDIR="$dest" >"$tmp/out" 2>&1 && grep -q '^# edited' "$dest/etc/shoal/shoald.conf" &&
    [ -f "$dest/etc/shoal/shoald.conf.new" ]; then
    ok "make install again keeps an edited shoald.conf (the shipped one is shoald.conf.new)"
else
    bad "reinstall over an edited shoald.conf"; sed 's/^/      /' "$tmp/out"
fi
mk uninstall DESTDIR="$dest" >"$tmp/out" 2>&1 || bad "make uninstall failed"
left=$(find "$dest" ! -type d ! -path "$dest/etc/shoal/shoald.conf")
[ -z "$left" ] && ok "make uninstall removes every installed file (the edited config stays)" ||
    { bad "make uninstall left:"; echo "$left" | sed 's/^/      /'; }

echo "install: $passed passed, $failed failed, $skipped skipped"
[ $failed = 0 ]
