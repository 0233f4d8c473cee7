# shoal - a Kafka-style streaming platform for one host.
# `make run` installs missing Debian packages, builds and starts shoald in ./var;
# `make test` builds and runs every test. See README.md.

MAJOR := 0
MINOR := 1
PATCH := 0

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

.SECONDARY:
.PHONY: all test check unit integ asan run deps format-check install uninstall clean format bench

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
	$(QCC)$(CC) -shared -Wl,-soname,libshoal.so.$(MAJOR) $(LDFLAGS) -o $@ $^ -lpthread
	$(Q)ln -sf libshoal.so.$(MAJOR).$(MINOR).$(PATCH) $(BUILD)/libshoal.so.$(MAJOR)
	$(Q)ln -sf libshoal.so.$(MAJOR) $(BUILD)/libshoal.so

$(SHOALD): $(BUILD)/obj/src/shoald/main.o $(DAEMON_LIB) $(STATIC_LIB)
	$(QCC)$(CC) $(SHOAL_CFLAGS) $(SHOAL_OPT) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(SHOAL_LDLIBS) $(LDLIBS)

$(SHOAL): $(CLI_OBJ) $(STATIC_LIB)
	$(QCC)$(CC) $(SHOAL_CFLAGS) $(SHOAL_OPT) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpthread $(LDLIBS)

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(QCC)$(CC) $(SHOAL_CFLAGS) $(SHOAL_OPT) -Itests $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_HELPERS) $(DAEMON_LIB) $(STATIC_LIB)
	$(QCC)$(CC) $(SHOAL_CFLAGS) $(SHOAL_OPT) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(TEST_LDLIBS) $(SHOAL_LDLIBS) $(LDLIBS)

# Tests: unit tests (cmocka, one binary per module), then multi-process integration and
# fault tests against a real shoald. tests/run.sh prints one line per binary and a total.
test check: deps all $(UNIT_TESTS) $(INTEG_TESTS)
	$(Q)BUILD=$(BUILD) tests/run.sh $(UNIT_TESTS) $(INTEG_TESTS)

unit: deps all $(UNIT_TESTS)
	$(Q)BUILD=$(BUILD) tests/run.sh $(UNIT_TESTS)

# AddressSanitizer + UndefinedBehaviorSanitizer build of everything, then the whole suite.
asan:
	$(Q)$(MAKE) --no-print-directory test BUILD=build-asan \
	  SHOAL_OPT="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  LDFLAGS="$(LDFLAGS) -fsanitize=address,undefined"

# Debian packages shoal needs to build and test.
DEB_PACKAGES := gcc make liblmdb-dev libcmocka-dev
deps:
	$(Q)scripts/deps.sh $(DEB_PACKAGES)

# Start the broker in the foreground with everything under ./var of this checkout.
RUN_ARGS ?=
run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(SHOALD) --data-dir var/data --runtime-dir var/run --instance shoal-$(shell id -u) $(RUN_ARGS)

# ---- benchmarks (bench/README.md). `make bench` runs the full suite (a few minutes),
# `make bench-quick` every scenario briefly (under 60 s), `make bench-smoke` a few seconds
# with no thresholds (CI). JSON=FILE also writes the figures as JSON; ONLY=SUBSTRING runs
# the scenarios whose name holds it (and their baselines).
BENCH_SRC  := $(wildcard bench/*.c)
BENCH_OBJ  := $(BENCH_SRC:%.c=$(BUILD)/obj/%.o)
BENCH_BIN  := $(BUILD)/shoal-bench
BENCH_ARGS  = --shoald $(SHOALD) $(if $(JSON),--json $(JSON)) $(if $(ONLY),--only $(ONLY))
.PHONY: bench-quick bench-smoke

$(BENCH_BIN): $(BENCH_OBJ) $(STATIC_LIB)
	$(QCC)$(CC) $(SHOAL_CFLAGS) $(SHOAL_OPT) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpthread $(LDLIBS)

bench: all $(BENCH_BIN)
	$(BENCH_BIN) --mode full $(BENCH_ARGS)
bench-quick: all $(BENCH_BIN)
	$(BENCH_BIN) --mode quick $(BENCH_ARGS)
bench-smoke: all $(BENCH_BIN)
	$(BENCH_BIN) --mode smoke $(BENCH_ARGS)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)
	install -m 0755 $(SHOALD) $(SHOAL) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(STATIC_LIB) $(DESTDIR)$(LIBDIR)/
	install -m 0755 $(SHARED_LIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libshoal.so.$(MAJOR).$(MINOR).$(PATCH) $(DESTDIR)$(LIBDIR)/libshoal.so.$(MAJOR)
	ln -sf libshoal.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libshoal.so
	install -m 0644 include/shoal.h $(DESTDIR)$(INCLUDEDIR)/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/shoald $(DESTDIR)$(BINDIR)/shoal $(DESTDIR)$(INCLUDEDIR)/shoal.h
	rm -f $(DESTDIR)$(LIBDIR)/libshoal.a $(DESTDIR)$(LIBDIR)/libshoal.so*

FORMAT_FILES = include/*.h src/*.[ch] src/*/*.[ch] tests/*/*.[ch] tests/*.[ch] bench/*.[ch]
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
