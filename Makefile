# shoal - a Kafka-style streaming platform for one host.
# `make run` installs missing Debian packages, builds and starts shoald in ./var;
# `make test` builds and runs every test. See README.md.

MAJOR := 0
MINOR := 1
PATCH := 0
# The soname names the ABI: MAJOR from 1.0 on; before that every minor release may change
# it (structs, the shm layout), so 0.x carries the minor too and the dynamic linker refuses
# a program built against another 0.x instead of running it with the wrong layout.
ifeq ($(MAJOR),0)
SONAME := libshoal.so.$(MAJOR).$(MINOR)
else
SONAME := libshoal.so.$(MAJOR)
endif

CC      ?= cc
AR      ?= ar
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BUILD   ?= build
V       ?= 0

WARN := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
        -Wno-missing-field-initializers
ifneq ($(filter 1,$(WERROR))$(filter true,$(CI)),)
WARN += -Werror
endif
SHOAL_CFLAGS   := $(WARN) -D_GNU_SOURCE -Iinclude -Isrc -fvisibility=hidden -MMD -MP -pthread
SHOAL_OPT      ?= -O2 -g
SHOAL_LDLIBS   := -llmdb -lpthread
TEST_LDLIBS    := -lcmocka

ifeq ($(V),0)
Q := @
QCC = @echo "  CC      $@";
else
Q :=
QCC :=
endif

# libshoal: everything in src/ but the daemon-only store (the only user of LMDB).
LIB_SRC    := $(filter-out src/store.c,$(wildcard src/*.c))
DAEMON_SRC := $(wildcard src/store.c) $(filter-out src/shoald/main.c,$(wildcard src/shoald/*.c))
CLI_SRC    := $(wildcard src/cli/*.c)

LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB_PIC    := $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)

STATIC_LIB := $(BUILD)/libshoal.a
DAEMON_LIB := $(BUILD)/libshoald.a
SHARED_LIB := $(BUILD)/libshoal.so.$(MAJOR).$(MINOR).$(PATCH)
SHOALD     := $(BUILD)/shoald
SHOAL      := $(BUILD)/shoal

UNIT_TESTS  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
INTEG_TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/integ/test_*.c tests/fault/test_*.c))
TEST_HELPERS := $(BUILD)/tests/harness.o
# Fuzz targets (tests/fuzz): replayed over their corpus by `make test`, fuzzed by `make fuzz`.
FUZZ_TARGETS := record segment recover server pattern
FUZZ_REPLAYS := $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/replay_%)
# A DESTDIR install checked with systemd-analyze, pkg-config and a program built against it.
INSTALL_TEST := tests/install/test_install.sh
# The benchmark suite (bench/), and a test that an interrupted run leaves nothing behind.
BENCH_SRC  := $(wildcard bench/*.c)
BENCH_OBJ  := $(BENCH_SRC:%.c=$(BUILD)/obj/%.o)
BENCH_BIN  := $(BUILD)/shoal-bench
BENCH_TEST := tests/bench/test_bench_interrupt.sh
# `make run`'s instance name: one per checkout.
MAKE_TEST := tests/make/test_run_instance.sh
# A power loss after a kill -9, on a loop-mounted filesystem (as root; skipped otherwise).
POWER_TEST := tests/fault/test_power_loss.sh

.SECONDARY:
.PHONY: all test check unit integ asan run run-instance deps format-check install uninstall clean \
        format bench dist fuzz

all: $(STATIC_LIB) $(SHARED_LIB) $(SHOALD) $(SHOAL)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(QCC)$(CC) $(SHOAL_CFLAGS) $(SHOAL_OPT) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(QCC)$(CC) $(SHOAL_CFLAGS) $(SHOAL_OPT) -fPIC $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(STATIC_LIB): $(LIB_OBJ)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(DAEMON_LIB): $(DAEMON_OBJ)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(SHARED_LIB): $(LIB_PIC)
	$(QCC)$(CC) -shared -Wl,-soname,$(SONAME) $(LDFLAGS) -o $@ $^ -lpthread
	$(Q)ln -sf libshoal.so.$(MAJOR).$(MINOR).$(PATCH) $(BUILD)/$(SONAME)
	$(Q)ln -sf $(SONAME) $(BUILD)/libshoal.so

$(SHOALD): $(BUILD)/obj/src/shoald/main.o $(DAEMON_LIB) $(STATIC_LIB)
	$(QCC)$(CC) $(SHOAL_CFLAGS) $(SHOAL_OPT) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(SHOAL_LDLIBS) $(LDLIBS)

$(SHOAL): $(CLI_OBJ) $(STATIC_LIB)
	$(QCC)$(CC) $(SHOAL_CFLAGS) $(SHOAL_OPT) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpthread $(LDLIBS)

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(QCC)$(CC) $(SHOAL_CFLAGS) $(SHOAL_OPT) -Itests $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_HELPERS) $(DAEMON_LIB) $(STATIC_LIB)
	$(QCC)$(CC) $(SHOAL_CFLAGS) $(SHOAL_OPT) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(TEST_LDLIBS) $(SHOAL_LDLIBS) $(LDLIBS)

# The coordinator's unit test catches what it would send to clients.
$(BUILD)/tests/unit/test_group_coord: override LDFLAGS += -Wl,--wrap=server_reply

# The server target runs a broker: it links the daemon's objects too.
$(BUILD)/tests/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(DAEMON_LIB) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(QCC)$(CC) $(SHOAL_CFLAGS) $(SHOAL_OPT) -DFUZZ_TARGET='"$*"' $(CPPFLAGS) $(CFLAGS) \
	  $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(SHOAL_LDLIBS) $(LDLIBS)

# Tests: unit tests (cmocka, one binary per module) and the fuzz targets' corpora, then
# multi-process integration and fault tests against a real shoald. tests/run.sh prints one
# line per binary and a total.
test check: deps all $(UNIT_TESTS) $(FUZZ_REPLAYS) $(INTEG_TESTS) $(BENCH_BIN)
	$(Q)BUILD=$(BUILD) CC="$(CC)" SHOAL_OPT="$(SHOAL_OPT)" SHOAL_LDFLAGS="$(LDFLAGS)" \
	  tests/run.sh $(UNIT_TESTS) $(FUZZ_REPLAYS) $(INTEG_TESTS) $(INSTALL_TEST) $(BENCH_TEST) \
	  $(MAKE_TEST) $(POWER_TEST)

unit: deps all $(UNIT_TESTS) $(FUZZ_REPLAYS)
	$(Q)BUILD=$(BUILD) tests/run.sh $(UNIT_TESTS) $(FUZZ_REPLAYS)

# Coverage-guided fuzzing with clang's libFuzzer, ASan and UBSan: each target for
# FUZZ_SECONDS, starting from its corpus and the shared test data. New inputs go to
# build-fuzz/corpus/<target>; one that fails a check, or takes over 10 s, goes to
# build-fuzz/<target>-crash-* (-timeout-*) and fails the run. Keep an input worth keeping
# by copying it into tests/fuzz/corpus/<target> (tests/fuzz/README.md).
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build-fuzz
FUZZ_SAN     := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
                -fno-omit-frame-pointer
FUZZ_OBJ     := $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o) $(DAEMON_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
.PHONY: fuzz-deps

fuzz-deps:
	$(Q)scripts/deps.sh clang libclang-rt-dev

# The library and the daemon once, instrumented for coverage; each target links them with
# libFuzzer's main.
$(FUZZ_BUILD)/obj/%.o: %.c | fuzz-deps
	@mkdir -p $(dir $@)
	$(QCC)clang $(SHOAL_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ) | fuzz-deps
	$(QCC)clang $(SHOAL_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $(filter %.c %.o,$^) \
	  $(SHOAL_LDLIBS)

fuzz: $(FUZZ_BINS)
	$(Q)for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/$$t- $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t \
	    $${SHOAL_TESTDATA:-../shared/testdata}/kafka-record-batch-v2 \
	    2>$(FUZZ_BUILD)/$$t.log || { tail -40 $(FUZZ_BUILD)/$$t.log; exit 1; }; \
	  grep -E 'stat::number_of_executed_units|stat::new_units_added' $(FUZZ_BUILD)/$$t.log; \
	done

# AddressSanitizer + UndefinedBehaviorSanitizer build of everything, then the whole suite.
asan:
	$(Q)$(MAKE) --no-print-directory test BUILD=build-asan \
	  SHOAL_OPT="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  LDFLAGS="$(LDFLAGS) -fsanitize=address,undefined"

# Debian packages shoal needs to build and test.
# pkgconf and systemd (systemd-analyze, -sysusers, -tmpfiles) for the install test.
DEB_PACKAGES := gcc make liblmdb-dev libcmocka-dev pkgconf systemd
deps:
	$(Q)scripts/deps.sh $(DEB_PACKAGES)

# Start the broker in the foreground with everything under ./var of this checkout. The
# instance (and so the shm directory /dev/shm/shoal.<instance>) is the user's id and a hash
# of the checkout's path: two checkouts never share one, and a checkout always finds its
# own rings again. `make -s run-instance` prints it.
RUN_ARGS ?=
RUN_INSTANCE ?= shoal-$(shell id -u)-$(shell printf '%s' '$(CURDIR)' | sha1sum | cut -c1-8)
run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(SHOALD) --data-dir var/data --runtime-dir var/run --instance $(RUN_INSTANCE) $(RUN_ARGS)

run-instance:
	@echo $(RUN_INSTANCE)

# ---- benchmarks (bench/README.md). `make bench` runs the full suite (a few minutes),
# `make bench-quick` every scenario briefly (under 60 s), `make bench-smoke` a few seconds
# with no thresholds (CI). JSON=FILE also writes the figures as JSON; ONLY=SUBSTRING runs
# the scenarios whose name holds it (and their baselines).
BENCH_ARGS  = --shoald $(SHOALD) $(if $(JSON),--json $(JSON)) $(if $(ONLY),--only $(ONLY))
.PHONY: bench-quick bench-smoke bench-deps

$(BENCH_BIN): $(BENCH_OBJ) $(STATIC_LIB)
	$(QCC)$(CC) $(SHOAL_CFLAGS) $(SHOAL_OPT) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpthread $(LDLIBS)

# The brokers measured beside shoal for context (bench/brokers.h): installed as root,
# named otherwise; their scenarios are skipped when they are missing.
BENCH_BROKERS := redis-server nats-server rabbitmq-server
bench-deps:
	$(Q)scripts/deps.sh --optional $(BENCH_BROKERS)

bench: all $(BENCH_BIN) bench-deps
	$(BENCH_BIN) --mode full $(BENCH_ARGS)
bench-quick: all $(BENCH_BIN) bench-deps
	$(BENCH_BIN) --mode quick $(BENCH_ARGS)
bench-smoke: all $(BENCH_BIN) bench-deps
	$(BENCH_BIN) --mode smoke $(BENCH_ARGS)

# ------------------------------------------------------------------ install
# Everything goes under $(DESTDIR). Units, sysusers.d and tmpfiles.d go below $(PREFIX)/lib,
# which systemd searches for /usr and /usr/local alike; the config file, the data and the
# runtime directories are the system's (/etc, /var/lib, /run), whatever the prefix.
MANDIR         ?= $(PREFIX)/share/man
PKGCONFIGDIR   ?= $(LIBDIR)/pkgconfig
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR    ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR    ?= $(PREFIX)/lib/tmpfiles.d
SYSCONFDIR     ?= /etc
STATEDIR       ?= /var/lib
RUNDIR         ?= /run

# shoal.pc names its directories relative to ${prefix} where it can, so that
# pkg-config --define-prefix and PKG_CONFIG_SYSROOT_DIR both find a DESTDIR install.
PC_LIBDIR     = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
DIST := $(BUILD)/dist
DIST_FILES := $(DIST)/shoal.pc $(DIST)/shoald.service $(DIST)/shoald@.service \
              $(DIST)/shoal-sysusers.conf $(DIST)/shoal-tmpfiles.conf $(DIST)/shoald.conf
MAN_PAGES := man/shoal.1 man/shoal.h.3 man/shoald.8

# Files made from *.in: always rewritten, since the directories may differ between calls.
dist:
	@mkdir -p $(DIST)
	$(Q)for f in shoal.pc.in systemd/shoald.service.in systemd/shoald@.service.in \
	  systemd/shoal-sysusers.conf.in systemd/shoal-tmpfiles.conf.in etc/shoald.conf.in; do \
	  sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@LIBDIR@|$(PC_LIBDIR)|g' \
	      -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	      -e 's|@STATEDIR@|$(STATEDIR)|g' -e 's|@RUNDIR@|$(RUNDIR)|g' \
	      -e 's|@VERSION@|$(MAJOR).$(MINOR).$(PATCH)|g' $$f > $(DIST)/$$(basename $$f .in) || exit 1; \
	done

install: all dist
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	  $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	  $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SYSCONFDIR)/shoal $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(SHOALD) $(SHOAL) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(STATIC_LIB) $(DESTDIR)$(LIBDIR)/
	install -m 0755 $(SHARED_LIB) $(DESTDIR)$(LIBDIR)/
	@# builds before the soname carried the minor linked libshoal.so.0 here: programs
	@# linked against it were built for another layout and must not load this library
	rm -f $(DESTDIR)$(LIBDIR)/libshoal.so.$(MAJOR)
	ln -sf libshoal.so.$(MAJOR).$(MINOR).$(PATCH) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libshoal.so
	install -m 0644 include/shoal.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 0644 $(DIST)/shoal.pc $(DESTDIR)$(PKGCONFIGDIR)/
	install -m 0644 $(DIST)/shoald.service $(DIST)/shoald@.service $(DESTDIR)$(SYSTEMDUNITDIR)/
	install -m 0644 $(DIST)/shoal-sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/shoal.conf
	install -m 0644 $(DIST)/shoal-tmpfiles.conf $(DESTDIR)$(TMPFILESDIR)/shoal.conf
	@# an edited config file is kept; the shipped one goes beside it
	if [ -e $(DESTDIR)$(SYSCONFDIR)/shoal/shoald.conf ] && \
	   ! cmp -s $(DIST)/shoald.conf $(DESTDIR)$(SYSCONFDIR)/shoal/shoald.conf; then \
	  install -m 0644 $(DIST)/shoald.conf $(DESTDIR)$(SYSCONFDIR)/shoal/shoald.conf.new; \
	else \
	  install -m 0644 $(DIST)/shoald.conf $(DESTDIR)$(SYSCONFDIR)/shoal/shoald.conf; \
	fi
	install -m 0644 man/shoal.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 man/shoal.h.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 0644 man/shoald.8 $(DESTDIR)$(MANDIR)/man8/

# Removes what install put there; an edited config file stays (and is named).
uninstall: dist
	rm -f $(DESTDIR)$(BINDIR)/shoald $(DESTDIR)$(BINDIR)/shoal $(DESTDIR)$(INCLUDEDIR)/shoal.h
	rm -f $(DESTDIR)$(LIBDIR)/libshoal.a $(DESTDIR)$(LIBDIR)/libshoal.so \
	  $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libshoal.so.$(MAJOR).$(MINOR).$(PATCH) \
	  $(DESTDIR)$(LIBDIR)/libshoal.so.$(MAJOR)
	rm -f $(DESTDIR)$(PKGCONFIGDIR)/shoal.pc
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/shoald.service $(DESTDIR)$(SYSTEMDUNITDIR)/shoald@.service
	rm -f $(DESTDIR)$(SYSUSERSDIR)/shoal.conf $(DESTDIR)$(TMPFILESDIR)/shoal.conf
	rm -f $(DESTDIR)$(MANDIR)/man1/shoal.1 $(DESTDIR)$(MANDIR)/man3/shoal.h.3 \
	  $(DESTDIR)$(MANDIR)/man8/shoald.8
	rm -f $(DESTDIR)$(SYSCONFDIR)/shoal/shoald.conf.new
	if cmp -s $(DIST)/shoald.conf $(DESTDIR)$(SYSCONFDIR)/shoal/shoald.conf; then \
	  rm -f $(DESTDIR)$(SYSCONFDIR)/shoal/shoald.conf; \
	  rmdir $(DESTDIR)$(SYSCONFDIR)/shoal 2>/dev/null || true; \
	elif [ -e $(DESTDIR)$(SYSCONFDIR)/shoal/shoald.conf ]; then \
	  echo "kept the edited $(DESTDIR)$(SYSCONFDIR)/shoal/shoald.conf"; \
	fi

FORMAT_FILES = include/*.h src/*.[ch] src/*/*.[ch] tests/*/*.[ch] tests/*.[ch] bench/*.[ch]
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf build build-asan $(FUZZ_BUILD)

-include $(shell find $(BUILD) $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
