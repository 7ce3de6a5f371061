# lunfs: a plain Makefile. `make help` lists the targets.
#
# Layout: the layers build into one static library, build/liblunfs.a
#   dev/    device layer (file/io_uring, memory, fault injection)
#   format/ on-disk codecs and geometry (pure functions, no I/O)
#   lockd/  heartbeats, lock records, compare-and-write backends
#   fs/     filesystem core (volume creation, allocation, journal, inodes...)
#   fuse/   the FUSE front end (low-level API) over the fs core
# and thin programs link it: mkfs/ -> build/mkfs.lunfs, fsck/ ->
# build/fsck.lunfs, tools/ -> build/lunfs, tools/mount_helper/ ->
# build/mount.lunfs (what mount -t lunfs runs).

BUILD    ?= build
CC       ?= cc
PKGS     := fuse3 liburing libcrypto blkid uuid json-c
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

WARN     := -Wall -Wextra -Wpedantic -Wmissing-prototypes -Wshadow -Wstrict-prototypes
ifneq ($(CI),)
WERROR   ?= 1
endif
ifeq ($(WERROR),1)
WARN     += -Werror
endif
OPT      ?= -O2
CFLAGS   ?=
CFLAGS   += -std=c11 $(OPT) -g $(WARN) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Iinclude $(PKG_CFLAGS) $(SANFLAGS)
LDFLAGS  += $(SANFLAGS)
LDLIBS   += $(PKG_LIBS) -lpthread

LIB_DIRS := dev format lockd fs fuse
LIB_SRCS := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/liblunfs.a

MKFS_SRCS  := $(wildcard mkfs/*.c)
FSCK_SRCS  := $(wildcard fsck/*.c)
TOOLS_SRCS := $(wildcard tools/*.c)
MOUNT_SRCS := $(wildcard tools/mount_helper/*.c)
# Code shared by the programs (progress bar, option helpers), not by the library.
CLI_SRCS   := $(wildcard tools/cli/*.c)
CLI_OBJS   := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)

PROGS := $(BUILD)/mkfs.lunfs $(BUILD)/lunfs
ifneq ($(FSCK_SRCS),)
PROGS += $(BUILD)/fsck.lunfs
endif
ifneq ($(MOUNT_SRCS),)
PROGS += $(BUILD)/mount.lunfs
endif

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_HELP  := $(filter-out $(UNIT_SRCS),$(wildcard tests/unit/*.c))
UNIT_HELP_OBJS := $(UNIT_HELP:%.c=$(BUILD)/obj/%.o)
INTEG      := $(sort $(wildcard tests/integration/test_*.sh))

PREFIX  ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin

.PHONY: all check unit integration asan ubsan asan-quick ubsan-quick san-quick san-both-quick cluster-tests torture bench bench-failover install uninstall clean help deps fuzz soak
all: $(PROGS)

help:
	@echo "make            build $(PROGS)"
	@echo "make check      build and run every test (unit, then integration)"
	@echo "make unit       Check unit tests only"
	@echo "make asan       make check under AddressSanitizer (build-asan/)"
	@echo "make ubsan      make check under UndefinedBehaviorSanitizer (build-ubsan/)"
	@echo "make asan-quick unit + hostile-input tests under ASan"
	@echo "make ubsan-quick the same under UBSan"
	@echo "make san-both-quick the same under ASan and UBSan together (part of scripts/test.sh)"
	@echo "make soak       long power-loss run: every crash point, 16 seeds"
	@echo "make cluster-tests  multi-host tests on a farm of real mounts"
	@echo "make torture    4 hosts, 5 minutes of random work with kills and freezes"
	@echo "make bench      benchmarks against raw and FUSE-passthrough baselines"
	@echo "make bench-failover  failover and join times of a 3-host farm"
	@echo "make fuzz       libFuzzer on every on-disk decoder (FUZZ_SECONDS=60)"
	@echo "make install    install the programs into $(SBINDIR)"
	@echo "WERROR=1        turn warnings into errors (default when CI is set)"

deps:
	scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS_$(findstring tests/,$<)) -MMD -MP -c $< -o $@

CHECK_CFLAGS_tests/ := $(CHECK_CFLAGS)

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/mkfs.lunfs: $(MKFS_SRCS:%.c=$(BUILD)/obj/%.o) $(CLI_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/lunfs: $(TOOLS_SRCS:%.c=$(BUILD)/obj/%.o) $(CLI_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fsck.lunfs: $(FSCK_SRCS:%.c=$(BUILD)/obj/%.o) $(CLI_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/mount.lunfs: $(MOUNT_SRCS:%.c=$(BUILD)/obj/%.o) $(CLI_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(UNIT_HELP_OBJS) $(CLI_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

# Each test prints its wall time, so slow ones are easy to spot.
unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; s=$$(date +%s); \
		CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT:-120} $$t; echo "== $$t: $$(( $$(date +%s) - s )) s"; done

integration: $(PROGS)
	@set -e; for t in $(INTEG); do echo "== $$t"; s=$$(date +%s); \
		LUNFS_BUILD=$(abspath $(BUILD)) bash $$t; echo "== $$t: $$(( $$(date +%s) - s )) s"; done

# The sanitizer runs of the default test command (kept well inside CI's
# 15-minute budget): the unit tests but the four long crash/scale loops,
# and the integration tests that feed hostile input to the tools. `make
# asan` / `make ubsan` run everything under the sanitizers.
INTEG_HOSTILE := tests/integration/test_inspect.sh tests/integration/test_fsck.sh tests/integration/test_mkfs.sh
SAN_HEAVY     := test_powerloss test_journal test_file test_dir
SAN_UNIT_BINS := $(filter-out $(addprefix $(BUILD)/tests/,$(SAN_HEAVY)),$(UNIT_BINS))
san-quick: $(PROGS) $(UNIT_BINS)
	@$(MAKE) --no-print-directory unit UNIT_BINS="$(SAN_UNIT_BINS)"
	@$(MAKE) --no-print-directory integration INTEG="$(INTEG_HOSTILE)"

check: $(PROGS) $(UNIT_BINS)
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration

ASAN_FLAGS  := -fsanitize=address -fno-omit-frame-pointer
UBSAN_FLAGS := -fsanitize=undefined -fno-sanitize-recover=all

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SANFLAGS="$(ASAN_FLAGS)" check

ubsan:
	$(MAKE) BUILD=build-ubsan OPT=-O1 SANFLAGS="$(UBSAN_FLAGS)" check

asan-quick:
	$(MAKE) BUILD=build-asan OPT=-O1 SANFLAGS="$(ASAN_FLAGS)" san-quick

# Both sanitizers in one build and one run: what the default test command
# runs (one build and one pass instead of two keeps it inside CI's budget).
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
san-both-quick:
	$(MAKE) BUILD=build-san OPT=-O1 SANFLAGS="$(SAN_FLAGS)" san-quick

ubsan-quick:
	$(MAKE) BUILD=build-ubsan OPT=-O1 SANFLAGS="$(UBSAN_FLAGS)" san-quick

soak: $(BUILD)/tests/test_powerloss
	CK_DEFAULT_TIMEOUT=0 LUNFS_SOAK=1 $(BUILD)/tests/test_powerloss

# Multi-host tests on a farm of real mounts (scripts/farm.sh): part of the
# default run (make integration); this target runs only them.
CLUSTER_TESTS := $(sort $(wildcard tests/integration/test_cluster_*.sh))
cluster-tests: $(PROGS)
	@$(MAKE) --no-print-directory integration INTEG="$(CLUSTER_TESTS)"

torture: $(PROGS)
	LUNFS_BUILD=$(abspath $(BUILD)) bash tests/integration/cluster_torture.sh 300 4

bench: $(PROGS)
	LUNFS_BUILD=$(abspath $(BUILD)) bench/run

bench-failover: $(PROGS)
	LUNFS_BUILD=$(abspath $(BUILD)) bash bench/failover.sh

# Every decoder under libFuzzer with ASan+UBSan (clang). A random input
# rarely passes the crc32c, so this mostly exercises the frame checks; the
# semantic checks behind the checksum are driven by tests/unit/
# test_format_fuzz.c, which mutates valid structures and reseals them.
FUZZ_SECONDS ?= 60
FUZZ_DIR := build-fuzz
fuzz:
	scripts/deps.sh --fuzz
	@mkdir -p $(FUZZ_DIR)/corpus
	clang -std=c11 -O1 -g -D_GNU_SOURCE -Iinclude -fsanitize=fuzzer,address,undefined \
		$(filter-out format/super_io.c,$(wildcard format/*.c)) tests/fuzz/fuzz_decode.c -lcrypto -lpthread -o $(FUZZ_DIR)/fuzz_decode
	$(FUZZ_DIR)/fuzz_decode -max_total_time=$(FUZZ_SECONDS) -max_len=4097 $(FUZZ_DIR)/corpus

install: $(PROGS)
	install -d $(DESTDIR)$(SBINDIR)
	install -m 0755 $(PROGS) $(DESTDIR)$(SBINDIR)/

uninstall:
	rm -f $(addprefix $(DESTDIR)$(SBINDIR)/,$(notdir $(PROGS)))

clean:
	rm -rf build build-asan build-ubsan build-san build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
