//! Memory accounting (issue 10, accounting half): INFO memory and MEMORY STATS with
//! upstream's fields in upstream's order, MEMORY USAGE against the reference's figure and
//! against the allocator's own count, the MEMORY subcommands' replies and errors, lazy
//! free keeping the loop responsive during a huge DEL, and client eviction
//! (`maxmemory-clients`, CLIENT NO-EVICT).
//!
//! Knobs: `VALKEY_LAZYFREE_ELEMENTS` (default 2,000,000) sizes the set of the lazy free
//! test (the figure is 10,000,000: about 25 s more here); with
//! `VALKEY_LAZYFREE_STRICT=1` it asserts the 5 ms (over the machine's own noise)
//! instead of 50 ms.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::dataset::{parse_resp, Resp};
use common::{
    encode_command, escape, escape_short, info_field, require_reference, servers, wait_for, Conn,
    Server,
};

/// The field names of an INFO section, in order.
fn info_names(reply: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(reply).into_owned();
    text.split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('$'))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
        .collect()
}

fn info_text(c: &mut Conn, section: &str, field: &str) -> String {
    let r = c.call(&["INFO", section]);
    let text = String::from_utf8_lossy(&r).into_owned();
    let prefix = format!("{}:", field);
    text.split("\r\n")
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .trim()
        .to_string()
}

fn int_of(c: &mut Conn, section: &str, field: &str) -> i64 {
    let r = c.call(&["INFO", section]);
    info_field(&r, field).unwrap_or_else(|| panic!("no {field} in {}", escape_short(&r, 400)))
}

/// MEMORY STATS as (key, nested keys) pairs, in reply order.
fn stats_keys(reply: &[u8]) -> Vec<(String, Vec<String>)> {
    let Resp::Array(Some(items)) = parse_resp(reply) else {
        panic!("MEMORY STATS not an array: {}", escape_short(reply, 200));
    };
    let mut out = Vec::new();
    for pair in items.chunks(2) {
        let Resp::Bulk(Some(k)) = &pair[0] else {
            panic!("key not a bulk: {:?}", pair[0]);
        };
        let nested = match &pair[1] {
            Resp::Array(Some(v)) => v
                .chunks(2)
                .map(|p| match &p[0] {
                    Resp::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
                    o => panic!("nested key {:?}", o),
                })
                .collect(),
            _ => Vec::new(),
        };
        out.push((String::from_utf8_lossy(k).into_owned(), nested));
    }
    out
}

fn stats_int(reply: &[u8], key: &str) -> i64 {
    let Resp::Array(Some(items)) = parse_resp(reply) else {
        panic!("not an array");
    };
    for pair in items.chunks(2) {
        if pair[0] == Resp::Bulk(Some(key.as_bytes().to_vec())) {
            if let Resp::Int(n) = pair[1] {
                return n;
            }
        }
    }
    panic!("no integer {key} in MEMORY STATS");
}

fn usage(c: &mut Conn, key: &str) -> i64 {
    match parse_resp(&c.call(&["MEMORY", "USAGE", key])) {
        Resp::Int(n) => n,
        o => panic!("MEMORY USAGE {key}: {:?}", o),
    }
}

/// Sends many commands in one write and reads all replies.
fn pipeline(c: &mut Conn, cmds: &[Vec<Vec<u8>>]) {
    let mut buf = Vec::new();
    for argv in cmds {
        buf.extend_from_slice(&encode_command(argv));
    }
    c.send_raw(&buf).unwrap();
    for _ in cmds {
        let r = c.read_reply().unwrap();
        assert!(
            !r.starts_with(b"-"),
            "error reply {}",
            escape_short(&r, 200)
        );
    }
}

fn argv(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

/// One command adding `items` to `key` (RPUSH k a b..., HSET k f v..., ZADD k s m...).
fn bulk_cmd(cmd: &str, key: &str, items: impl Iterator<Item = String>) -> Vec<Vec<u8>> {
    let mut v = argv(&[cmd, key]);
    v.extend(items.map(String::into_bytes));
    v
}

/// The values of the MEMORY USAGE comparison: (key, command that builds it, payload bytes:
/// the bytes of its elements, a floor no honest figure can go under).
fn usage_values() -> Vec<(String, Vec<Vec<u8>>, usize)> {
    let mut v = Vec::new();
    // 45 and 100: embedded with the key upstream; 300 and 1,000: raw upstream, inline
    // here; 5,000 and more: out of line in both.
    for n in [20usize, 45, 100, 300, 1_000, 5_000, 10_000, 100_000] {
        let s = "x".repeat(n);
        v.push((
            format!("str:{n}"),
            argv(&["SET", &format!("str:{n}"), &s]),
            n,
        ));
    }
    for n in [10usize, 100, 1_000, 10_000] {
        let k = format!("list:{n}");
        let items = (0..n).map(|i| format!("element:{i:06}"));
        v.push((k.clone(), bulk_cmd("RPUSH", &k, items), n * 14));
        let k = format!("hash:{n}");
        let items = (0..n).flat_map(|i| [format!("field:{i:06}"), format!("value:{i:06}")]);
        v.push((k.clone(), bulk_cmd("HSET", &k, items), n * 24));
        let k = format!("set:{n}");
        let items = (0..n).map(|i| format!("member:{i:06}"));
        v.push((k.clone(), bulk_cmd("SADD", &k, items), n * 13));
        let k = format!("intset:{n}");
        let items = (0..n).map(|i| (i * 7).to_string());
        v.push((k.clone(), bulk_cmd("SADD", &k, items), n * 2));
        let k = format!("zset:{n}");
        let items = (0..n).flat_map(|i| [i.to_string(), format!("member:{i:06}")]);
        v.push((k.clone(), bulk_cmd("ZADD", &k, items), n * 13));
    }
    v
}

fn encoding(c: &mut Conn, key: &str) -> String {
    match parse_resp(&c.call(&["OBJECT", "ENCODING", key])) {
        Resp::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
        o => panic!("OBJECT ENCODING {key}: {:?}", o),
    }
}

#[test]
fn info_memory_fields_and_order_as_reference() {
    let Some(bin) = require_reference() else {
        return;
    };
    let ours = Server::ours(&[]);
    let theirs = Server::reference(&bin, &[]);
    let (mut a, mut b) = (ours.conn(), theirs.conn());
    let ra = a.call(&["INFO", "memory"]);
    let rb = b.call(&["INFO", "memory"]);
    assert_eq!(
        info_names(&ra),
        info_names(&rb),
        "INFO memory field names/order"
    );
    for (s, c) in [(&ours, &mut a), (&theirs, &mut b)] {
        // Values are computed: the overhead and the dataset add up to used_memory (taken
        // at slightly different instants upstream, hence the slack).
        let r = c.call(&["INFO", "memory"]);
        let used = info_field(&r, "used_memory").unwrap();
        let over = info_field(&r, "used_memory_overhead").unwrap();
        let data = info_field(&r, "used_memory_dataset").unwrap();
        assert!(
            (over + data - used).abs() < 64 * 1024,
            "{}: overhead {over} + dataset {data} vs used {used}",
            s.kind.name()
        );
        let startup = info_field(&r, "used_memory_startup").unwrap();
        assert!(startup > 0 && startup <= used, "{}", s.kind.name());
        let alloc = info_text(c, "memory", "mem_allocator");
        assert!(alloc == "libc" || alloc == "jemalloc-5.3.0", "{alloc}");
        assert!(int_of(c, "memory", "used_memory_rss") > 0);
    }
    // With libc malloc the allocator fields are what upstream derives from RSS.
    if info_text(&mut a, "memory", "mem_allocator") == "libc" {
        let r = a.call(&["INFO", "memory"]);
        let rss = info_field(&r, "used_memory_rss").unwrap();
        assert_eq!(info_field(&r, "allocator_resident").unwrap(), rss);
        assert_eq!(info_field(&r, "allocator_active").unwrap(), rss);
        let text = String::from_utf8_lossy(&r).into_owned();
        assert!(text.contains("allocator_frag_ratio:1.00\r\n"), "{text}");
    }
    // Client memory counts: a client holding a 1 MB partial request shows in
    // mem_clients_normal on both.
    for (s, c) in [(&ours, &mut a), (&theirs, &mut b)] {
        let before = int_of(c, "memory", "mem_clients_normal");
        let mut big = s.conn();
        let mut req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n".to_vec();
        req.extend(std::iter::repeat_n(b'v', 1_000_000));
        big.send_raw(&req).unwrap();
        let grown = wait_for(Duration::from_secs(5), || {
            int_of(c, "memory", "mem_clients_normal") > before + 900_000
        });
        assert!(grown, "{}: mem_clients_normal did not grow", s.kind.name());
    }
}

#[test]
fn memory_stats_keys_as_reference() {
    let Some(bin) = require_reference() else {
        return;
    };
    let ours = Server::ours(&[]);
    let theirs = Server::reference(&bin, &[]);
    let mut keys = Vec::new();
    for s in [&ours, &theirs] {
        let mut c = s.conn();
        c.call(&["SET", "a", "1"]);
        c.call(&["SELECT", "3"]);
        c.call(&["SET", "b", "2"]);
        c.call(&["PEXPIRE", "b", "100000"]);
        let r = c.call(&["MEMORY", "STATS"]);
        keys.push(stats_keys(&r));
        assert_eq!(stats_int(&r, "keys.count"), 2, "{}", s.kind.name());
        let total = stats_int(&r, "total.allocated");
        let over = stats_int(&r, "overhead.total");
        let data = stats_int(&r, "dataset.bytes");
        assert!((over + data - total).abs() < 64 * 1024, "{}", s.kind.name());
        // RESP3: a map, same keys.
        c.call(&["HELLO", "3"]);
        let r3 = c.call(&["MEMORY", "STATS"]);
        assert!(r3.starts_with(b"%"), "{}", escape_short(&r3, 40));
    }
    assert_eq!(keys[0], keys[1], "MEMORY STATS keys/order");
    assert!(keys[0].iter().any(|(k, _)| k == "db.3"));
}

#[test]
fn memory_subcommands_and_errors_as_reference() {
    let targets = servers(&[]);
    let mut replies: Vec<Vec<Vec<u8>>> = Vec::new();
    for s in &targets {
        let mut c = s.conn();
        c.call(&["SET", "foo", "bar"]);
        let mut got = Vec::new();
        for cmd in [
            &["MEMORY"][..],
            &["MEMORY", "FOO"],
            &["MEMORY", "HELP"],
            &["MEMORY", "HELP", "x"],
            &["MEMORY", "USAGE"],
            &["MEMORY", "USAGE", "nokey"],
            &["MEMORY", "USAGE", "foo", "SAMPLES"],
            &["MEMORY", "USAGE", "foo", "SAMPLES", "-1"],
            &["MEMORY", "USAGE", "foo", "SAMPLES", "x"],
            &["MEMORY", "USAGE", "foo", "bar"],
            &[
                "MEMORY", "USAGE", "foo", "samples", "0", "SAMPLES", "3", "x",
            ],
            &["MEMORY", "STATS", "x"],
            &["MEMORY", "DOCTOR"],
            &["MEMORY", "DOCTOR", "x"],
            &["MEMORY", "PURGE"],
            &["MEMORY", "MALLOC-STATS"],
        ] {
            got.push(c.call(cmd));
        }
        // RESP3: DOCTOR is a verbatim string.
        c.call(&["HELLO", "3"]);
        got.push(c.call(&["MEMORY", "DOCTOR"]));
        replies.push(got);
    }
    let ours = &replies[0];
    assert!(
        ours[12].starts_with(b"$") && ours[12].windows(6).any(|w| w == b"Hi Sam"),
        "{}",
        escape_short(&ours[12], 100)
    );
    assert!(
        ours[16].starts_with(b"="),
        "{}",
        escape_short(&ours[16], 40)
    );
    // A jemalloc build (`--features jemalloc`) answers MALLOC-STATS with jemalloc's
    // report; the reference is a libc build.
    let jemalloc = ours[15]
        .windows(24)
        .any(|w| w == b"Begin jemalloc statistic");
    if let Some(theirs) = replies.get(1) {
        for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
            if i == 15 && jemalloc {
                continue;
            }
            assert_eq!(escape(a), escape(b), "MEMORY reply #{i}");
        }
    }
}

#[test]
fn memory_usage_close_to_reference() {
    let Some(bin) = require_reference() else {
        return;
    };
    let ours = Server::ours(&[]);
    let theirs = Server::reference(&bin, &[]);
    let (mut a, mut b) = (ours.conn(), theirs.conn());
    // The reference is a libc build: a jemalloc build of ours rounds blocks to jemalloc's
    // size classes (up to 25% apart) instead of glibc's.
    let class_slack = if info_text(&mut a, "memory", "mem_allocator") == "libc" {
        1.0
    } else {
        1.25
    };
    let mut report = String::new();
    let mut bad = Vec::new();
    for (key, cmd, payload) in usage_values() {
        pipeline(&mut a, std::slice::from_ref(&cmd));
        pipeline(&mut b, std::slice::from_ref(&cmd));
        let (ua, ub) = (usage(&mut a, &key), usage(&mut b, &key));
        let (ea, eb) = (encoding(&mut a, &key), encoding(&mut b, &key));
        let ratio = ua as f64 / ub as f64;
        report.push_str(&format!(
            "{key}: ours {ua} ({ea}), reference {ub} ({eb}), ratio {ratio:.3}\n"
        ));
        // Never under the bytes the elements need.
        if (ua as usize) < payload {
            bad.push(format!("{key}: {ua} under the payload {payload}"));
        }
        // Within 10% of the reference, or smaller: the figure is the allocator's count
        // (see memory_usage_matches_used_memory), and our hash table and skiplist nodes
        // are single blocks.
        if ratio > 1.10 * class_slack {
            bad.push(format!("{key}: ours {ua}, reference {ub}"));
        }
    }
    println!("{report}");
    assert!(bad.is_empty(), "{bad:?}\n{report}");
}

/// MEMORY USAGE is the allocator's count: deleting a value (synchronously) shrinks
/// used_memory by about what MEMORY USAGE reported for it (within 10%, or 64 bytes for
/// small values, plus the key table's own resizing).
#[test]
fn memory_usage_matches_used_memory() {
    let s = Server::ours(&["--lazyfree-lazy-user-del", "no"]);
    let mut c = s.conn();
    // Warm up what the first call of a command allocates (its latency histogram, the
    // reply buffer), so that only the value moves used_memory below.
    for _ in 0..2 {
        c.call(&["SET", "keep", "v"]);
        c.call(&["DEL", "nokey"]);
        usage(&mut c, "keep");
        int_of(&mut c, "memory", "used_memory");
    }
    for (key, cmd, _) in usage_values() {
        pipeline(&mut c, std::slice::from_ref(&cmd));
        // A second key keeps the table from shrinking when `key` goes.
        c.call(&["SET", "keep", "v"]);
        let u = usage(&mut c, &key);
        // SAMPLES 0 (all) and the default agree up to the quicklist extrapolation.
        let all = match parse_resp(&c.call(&["MEMORY", "USAGE", &key, "SAMPLES", "0"])) {
            Resp::Int(n) => n,
            o => panic!("{:?}", o),
        };
        assert!((all - u).abs() <= u / 10, "{key}: all {all} vs sampled {u}");
        let before = int_of(&mut c, "memory", "used_memory");
        assert_eq!(c.call(&["DEL", &key]), b":1\r\n");
        let after = int_of(&mut c, "memory", "used_memory");
        let freed = before - after;
        assert!(
            (all - freed).abs() <= (freed / 10).max(64),
            "{key}: MEMORY USAGE {all}, DEL freed {freed}"
        );
    }
}

/// Sends `SADD key m...` commands building a set of `n` members, pipelined.
fn build_big_set(c: &mut Conn, key: &str, n: usize) {
    const PER_CMD: usize = 1000;
    const CMDS_PER_BATCH: usize = 100;
    let mut i = 0;
    while i < n {
        let mut buf = Vec::new();
        let mut cmds = 0;
        while cmds < CMDS_PER_BATCH && i < n {
            let end = (i + PER_CMD).min(n);
            let mut args = vec![b"SADD".to_vec(), key.as_bytes().to_vec()];
            args.extend((i..end).map(|j| format!("m{j}").into_bytes()));
            buf.extend_from_slice(&encode_command(&args));
            cmds += 1;
            i = end;
        }
        c.send_raw(&buf).unwrap();
        for _ in 0..cmds {
            let r = c.read_reply().unwrap();
            assert!(r.starts_with(b":"), "{}", escape_short(&r, 100));
        }
    }
}

/// DEL of a big set with `lazyfree-lazy-user-del yes` hands the set to the lazy free
/// thread (the server answers while it frees, and the memory comes back); with `no` it is
/// freed in place. The latency another client sees during a 10,000,000-member DEL is
/// measured by `./utils/bench.sh lazyfree` (BENCHMARKS.md), not asserted here.
#[test]
fn lazyfree_del_of_a_big_set_frees_in_the_background() {
    let n: usize = std::env::var("VALKEY_LAZYFREE_ELEMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let s = Server::ours(&[]);
    let mut c = s.conn();
    let mut other = s.conn();
    for lazy in ["yes", "no"] {
        assert_eq!(
            c.call(&["CONFIG", "SET", "lazyfree-lazy-user-del", lazy]),
            b"+OK\r\n"
        );
        let empty = int_of(&mut c, "memory", "used_memory");
        build_big_set(&mut c, "big", n);
        assert_eq!(c.call(&["SCARD", "big"]), format!(":{n}\r\n").into_bytes());
        let size = usage(&mut c, "big");
        let freed_before = int_of(&mut c, "memory", "lazyfreed_objects");
        assert_eq!(c.call(&["DEL", "big"]), b":1\r\n");
        // The key is gone at once, and another client is served.
        assert_eq!(other.call(&["EXISTS", "big"]), b":0\r\n");
        assert_eq!(other.call(&["PING"]), b"+PONG\r\n");
        assert!(wait_for(Duration::from_secs(30), || int_of(
            &mut c,
            "memory",
            "lazyfree_pending_objects"
        ) == 0));
        let freed_after = int_of(&mut c, "memory", "lazyfreed_objects");
        assert_eq!(
            freed_after - freed_before,
            (lazy == "yes") as i64,
            "lazyfree-lazy-user-del {lazy}: lazyfreed_objects"
        );
        // The set's memory is back (within a tenth of it: the reply buffers and the key
        // table's own resizing move used_memory a little).
        let after = int_of(&mut c, "memory", "used_memory");
        assert!(
            after - empty < size / 10,
            "lazyfree-lazy-user-del {lazy}: used_memory {empty} before, {after} after freeing \
             a set of {size} bytes"
        );
    }
}

/// `mem_replication_backlog` is what the backlog has allocated: nothing before a replica
/// attaches, then about the history written (upstream grows it block by block, ours by
/// an eighth), never much over `repl-backlog-size`; it is part of
/// `used_memory_overhead` and `mem_total_replication_buffers`, and not of
/// `mem_not_counted_for_evict` (as upstream, the backlog counts for eviction). Both
/// servers, each with a replica of its own kind.
#[test]
fn replication_backlog_memory_as_reference() {
    let Some(bin) = require_reference() else {
        return;
    };
    let size: i64 = 1 << 20;
    for kind in [common::Kind::Ours, common::Kind::Reference] {
        let start = |extra: &[&str]| match kind {
            common::Kind::Ours => Server::ours(extra),
            common::Kind::Reference => Server::reference(&bin, extra),
        };
        let who = kind.name();
        let primary = start(&["--repl-backlog-size", "1mb"]);
        let replica = start(&[]);
        let (mut p, mut r) = (primary.conn(), replica.conn());
        assert_eq!(
            int_of(&mut p, "memory", "mem_replication_backlog"),
            0,
            "{who}"
        );
        r.call(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]);
        assert!(
            wait_for(Duration::from_secs(10), || String::from_utf8_lossy(
                &r.call(&["INFO", "replication"])
            )
            .contains("master_link_status:up")),
            "{who}: link not up"
        );
        let value = "v".repeat(100);
        let check = |p: &mut Conn, keys: std::ops::Range<usize>| {
            let cmds: Vec<Vec<Vec<u8>>> = keys
                .map(|i| argv(&["SET", &format!("key:{i}"), &value]))
                .collect();
            pipeline(p, &cmds);
            let hist = int_of(p, "replication", "repl_backlog_histlen");
            let backlog = int_of(p, "memory", "mem_replication_backlog");
            let total = int_of(p, "memory", "mem_total_replication_buffers");
            println!(
                "{who}: histlen {hist}, mem_replication_backlog {backlog}, \
                 mem_total_replication_buffers {total}"
            );
            assert!(
                backlog + 64 * 1024 >= hist.min(size)
                    && backlog <= (hist + hist / 4).min(size + size / 10) + 64 * 1024,
                "{who}: mem_replication_backlog {backlog} for a history of {hist}"
            );
            assert!(
                total >= hist,
                "{who}: mem_total_replication_buffers {total}"
            );
            // What eviction leaves out is replica and AOF memory that INFO reports too.
            let r = p.call(&["INFO", "memory"]);
            let f = |name: &str| info_field(&r, name).unwrap();
            assert!(
                f("mem_not_counted_for_evict")
                    <= f("mem_clients_slaves")
                        + f("mem_replicas_repl_buffer")
                        + f("mem_aof_buffer"),
                "{who}: {}",
                escape_short(&r, 3000)
            );
            // Once the replica has its stream (its output buffer drained and trimmed by
            // the clients cron), what is not counted is under the backlog: the backlog is
            // not part of it.
            let mut not_counted = 0;
            assert!(
                wait_for(Duration::from_secs(10), || {
                    not_counted = int_of(p, "memory", "mem_not_counted_for_evict");
                    not_counted < backlog
                }),
                "{who}: mem_not_counted_for_evict {not_counted}, backlog {backlog}"
            );
            hist
        };
        // About 150 KB of history, then 3 MB: the backlog stops at its size.
        let hist = check(&mut p, 0..1000);
        assert!(hist > 100_000 && hist < size, "{who}: {hist}");
        let hist = check(&mut p, 1000..21_000);
        assert!(hist >= size, "{who}: {hist}");
    }
}

#[test]
fn lazyfree_directives_are_honoured() {
    let s = Server::ours(&[]);
    let mut c = s.conn();
    let big = |c: &mut Conn, key: &str| build_big_set(c, key, 1000);
    let freed = |c: &mut Conn| {
        // The thread may still be working: wait until nothing is pending.
        assert!(wait_for(Duration::from_secs(5), || int_of(
            c,
            "memory",
            "lazyfree_pending_objects"
        ) == 0));
        int_of(c, "memory", "lazyfreed_objects")
    };
    // lazyfree-lazy-user-del: DEL; UNLINK is always lazy.
    for (cmd, directive, value, lazy) in [
        ("DEL", "lazyfree-lazy-user-del", "no", false),
        ("DEL", "lazyfree-lazy-user-del", "yes", true),
        ("UNLINK", "lazyfree-lazy-user-del", "no", true),
    ] {
        c.call(&["CONFIG", "SET", directive, value]);
        big(&mut c, "k");
        let before = freed(&mut c);
        assert_eq!(c.call(&[cmd, "k"]), b":1\r\n");
        assert_eq!(
            freed(&mut c) - before,
            lazy as i64,
            "{cmd} with {directive} {value}"
        );
    }
    // lazyfree-lazy-user-flush: FLUSHALL without argument; ASYNC/SYNC override.
    for (args, value, lazy) in [
        (&["FLUSHALL"][..], "no", false),
        (&["FLUSHALL"][..], "yes", true),
        (&["FLUSHALL", "SYNC"][..], "yes", false),
        (&["FLUSHDB", "ASYNC"][..], "no", true),
    ] {
        c.call(&["CONFIG", "SET", "lazyfree-lazy-user-flush", value]);
        for i in 0..100 {
            c.call(&["SET", &format!("key:{i}"), "v"]);
        }
        let before = freed(&mut c);
        assert_eq!(c.call(args), b"+OK\r\n");
        let n = freed(&mut c) - before;
        assert_eq!(n, if lazy { 100 } else { 0 }, "{args:?} with flush {value}");
    }
    // lazyfree-lazy-server-del: a value overwritten by a command (SET over a big set).
    for (value, lazy) in [("no", false), ("yes", true)] {
        c.call(&["CONFIG", "SET", "lazyfree-lazy-server-del", value]);
        c.call(&["DEL", "k"]);
        big(&mut c, "k");
        let before = freed(&mut c);
        assert_eq!(c.call(&["SET", "k", "v"]), b"+OK\r\n");
        assert_eq!(freed(&mut c) - before, lazy as i64, "server-del {value}");
    }
    // lazyfree-lazy-expire: a big set expiring.
    for (value, lazy) in [("no", false), ("yes", true)] {
        c.call(&["CONFIG", "SET", "lazyfree-lazy-expire", value]);
        big(&mut c, "e");
        let before = freed(&mut c);
        c.call(&["PEXPIRE", "e", "1"]);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(c.call(&["EXISTS", "e"]), b":0\r\n");
        assert_eq!(freed(&mut c) - before, lazy as i64, "expire {value}");
    }
}

/// Starts a one-argument request announcing an `n`-byte bulk, without its bytes.
fn start_big_request(c: &mut Conn, n: usize) {
    let _ = c.send_raw(format!("*1\r\n${n}\r\n").as_bytes());
}

/// Sends `n` more bytes of the bulk started by [`start_big_request`] (the server may
/// close the connection meanwhile: write errors are ignored).
fn send_bulk_bytes(c: &mut Conn, n: usize) {
    let _ = c.send_raw(&vec![b'v'; n]);
}

/// Fills `c`'s query buffer with an incomplete `n`-byte bulk argument.
fn fill_query_buffer(c: &mut Conn, n: usize) {
    start_big_request(c, n);
    send_bulk_bytes(c, n);
}

fn client_exists(admin: &mut Conn, name: &str) -> bool {
    let r = admin.call(&["CLIENT", "LIST"]);
    String::from_utf8_lossy(&r).contains(&format!("name={name} "))
}

fn client_field(admin: &mut Conn, name: &str, field: &str) -> Option<i64> {
    let r = admin.call(&["CLIENT", "LIST"]);
    let text = String::from_utf8_lossy(&r).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains(&format!("name={name} ")))?;
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
        .and_then(|v| v.parse().ok())
}

#[test]
fn client_eviction_spares_no_evict_clients() {
    const LIMIT: usize = 3_000_000;
    for s in servers(&[]) {
        let name = s.kind.name();
        let mut admin = s.conn();
        admin.call(&["CONFIG", "SET", "maxmemory-clients", &LIMIT.to_string()]);
        admin.call(&["CLIENT", "SETNAME", "control"]);
        admin.call(&["CLIENT", "NO-EVICT", "on"]);

        // Two clients over the limit together: the evictable one goes, the NO-EVICT
        // one stays.
        let mut keep = s.conn();
        keep.call(&["CLIENT", "SETNAME", "keep"]);
        assert_eq!(keep.call(&["CLIENT", "NO-EVICT", "on"]), b"+OK\r\n");
        start_big_request(&mut keep, 2 * LIMIT);
        send_bulk_bytes(&mut keep, LIMIT * 2 / 3);
        let mut evict = s.conn();
        evict.call(&["CLIENT", "SETNAME", "evictme"]);
        assert!(
            wait_for(Duration::from_secs(5), || client_field(
                &mut admin, "keep", "qbuf"
            )
            .is_some_and(|q| q >= (LIMIT * 2 / 3) as i64)),
            "{name}: query buffer not filled"
        );
        assert_eq!(int_of(&mut admin, "stats", "evicted_clients"), 0, "{name}");
        fill_query_buffer(&mut evict, LIMIT / 2);
        assert!(
            evict.closed_within(Duration::from_secs(5)),
            "{name}: evictable client not closed"
        );
        assert!(!client_exists(&mut admin, "evictme"), "{name}");
        assert!(
            client_exists(&mut admin, "keep"),
            "{name}: NO-EVICT client evicted"
        );
        assert!(client_exists(&mut admin, "control"), "{name}");
        assert_eq!(int_of(&mut admin, "stats", "evicted_clients"), 1, "{name}");

        // A NO-EVICT client over the limit on its own stays too.
        send_bulk_bytes(&mut keep, LIMIT);
        assert!(
            wait_for(Duration::from_secs(5), || client_field(
                &mut admin, "keep", "tot-mem"
            )
            .is_some_and(|m| m > LIMIT as i64)),
            "{name}: NO-EVICT client not over the limit"
        );
        assert!(client_exists(&mut admin, "keep"), "{name}");
        drop(keep);
        assert!(wait_for(Duration::from_secs(5), || !client_exists(
            &mut admin, "keep"
        )));

        // A client with a big output buffer (replies it does not read) goes too.
        admin.call(&["SETRANGE", "big", "200000", "v"]);
        let mut reader = s.conn();
        reader.call(&["CLIENT", "SETNAME", "reader"]);
        reader.stream().set_nodelay(true).unwrap();
        let get = encode_command(&["GET", "big"]);
        let mut closed = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let mut buf = Vec::new();
            for _ in 0..10 {
                buf.extend_from_slice(&get);
            }
            if reader.stream().write_all(&buf).is_err() || !client_exists(&mut admin, "reader") {
                closed = true;
                break;
            }
            if let Some(m) = client_field(&mut admin, "reader", "tot-mem") {
                assert!(
                    m < 2 * LIMIT as i64,
                    "{name}: tot-mem {m} far over the limit"
                );
            }
        }
        assert!(
            closed,
            "{name}: client with a big output buffer not evicted"
        );

        // Percent of maxmemory: 10% of 20 MB is 2 MB.
        admin.call(&["CONFIG", "SET", "maxmemory", "20mb"]);
        admin.call(&["CONFIG", "SET", "maxmemory-clients", "10%"]);
        let mut pct = s.conn();
        pct.call(&["CLIENT", "SETNAME", "pct"]);
        fill_query_buffer(&mut pct, 1_000_000);
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            client_exists(&mut admin, "pct"),
            "{name}: evicted under 10%"
        );
        let mut pct2 = s.conn();
        fill_query_buffer(&mut pct2, 2_500_000);
        assert!(
            pct2.closed_within(Duration::from_secs(5)),
            "{name}: not evicted over 10%"
        );
        admin.call(&["CONFIG", "SET", "maxmemory", "0"]);
    }
}

/// `replica-lazy-flush`: the dataset a full sync replaces goes to the lazy free thread
/// (all its keys counted in `lazyfreed_objects`), or is freed in place with `no`.
#[test]
fn replica_lazy_flush_is_honoured() {
    let primary = Server::ours(&[]);
    let mut p = primary.conn();
    p.call(&["SET", "from-primary", "v"]);
    for (value, lazy) in [("yes", true), ("no", false)] {
        let replica = Server::ours(&["--replica-lazy-flush", value]);
        let mut r = replica.conn();
        for i in 0..200 {
            r.call(&["SET", &format!("old:{i}"), "v"]);
        }
        let before = int_of(&mut r, "memory", "lazyfreed_objects");
        let pport = primary.port.to_string();
        assert_eq!(r.call(&["REPLICAOF", "127.0.0.1", &pport]), b"+OK\r\n");
        assert!(
            wait_for(Duration::from_secs(10), || {
                info_text(&mut r, "replication", "master_link_status") == "up"
                    && r.call(&["EXISTS", "from-primary"]) == b":1\r\n"
            }),
            "replica did not sync"
        );
        assert_eq!(r.call(&["EXISTS", "old:0"]), b":0\r\n");
        assert!(wait_for(Duration::from_secs(5), || int_of(
            &mut r,
            "memory",
            "lazyfree_pending_objects"
        ) == 0));
        let freed = int_of(&mut r, "memory", "lazyfreed_objects") - before;
        assert_eq!(
            freed,
            if lazy { 200 } else { 0 },
            "replica-lazy-flush {value}"
        );
    }
}
