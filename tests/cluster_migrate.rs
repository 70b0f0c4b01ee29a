//! MIGRATE between standalone servers (issue 13, item F of docs/cluster-plan.md), both
//! ways between valkey-rs and the reference: every scenario runs with each kind as the
//! source and each kind as the target, and the replies of a valkey-rs source (or target)
//! must be the bytes the reference gives in the same place. Covers the options (COPY,
//! REPLACE, AUTH, AUTH2, KEYS, the destination db), the errors (a dead port, a target
//! without our password, BUSYKEY passed on, KEYS with keys missing, NOKEY, MIGRATE to
//! itself timing out), the TTL carried over, the values of every type arriving intact,
//! the cached connection (reused, closed after 10 s idle) and the propagation as DEL.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Every data type, with and without a TTL, in db 0 of `c`.
fn populate(c: &mut Conn) {
    let cmds: &[&[&str]] = &[
        &["SET", "str", "hello"],
        &["SET", "int", "12345"],
        &["SET", "ttl", "soon"],
        &["PEXPIRE", "ttl", "100000"],
        &["RPUSH", "list", "a", "b", "c", "d"],
        &["HSET", "hash", "f1", "v1", "f2", "v2"],
        &["SADD", "set", "x", "y", "z"],
        &["SADD", "intset", "1", "2", "3"],
        &["ZADD", "zset", "1", "one", "2.5", "two"],
        &["XADD", "stream", "1-1", "k", "v"],
        &["PFADD", "hll", "a", "b", "c"],
        &["SET", "k1", "v1"],
        &["SET", "k2", "v2"],
        &["SET", "k3", "v3"],
        &["SET", "busy", "here"],
        &["SET", "db1", "one"],
        &["SET", "copied", "c"],
        &["SET", "replaced", "new"],
    ];
    for cmd in cmds {
        let r = c.call(cmd);
        assert!(!r.starts_with(b"-"), "{:?}: {}", cmd, escape(&r));
    }
}

/// A type-independent reading of a key's value (and whether it has a TTL).
fn snapshot(c: &mut Conn, key: &str) -> String {
    let t = c.call(&["TYPE", key]);
    let t = String::from_utf8_lossy(&t)
        .trim()
        .trim_start_matches('+')
        .to_string();
    let v = match t.as_str() {
        "string" => c.call(&["GET", key]),
        "list" => c.call(&["LRANGE", key, "0", "-1"]),
        "hash" => c.call(&["HGET", key, "f2"]),
        "set" => c.call(&["SISMEMBER", key, "y"]),
        "zset" => c.call(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
        "stream" => c.call(&["XRANGE", key, "-", "+"]),
        _ => Vec::new(),
    };
    let pttl = c.call(&["PTTL", key]);
    let has_ttl = !pttl.starts_with(b":-");
    format!("{} {} ttl={}", t, escape(&v), has_ttl)
}

const KEYS: &[&str] = &[
    "str", "int", "ttl", "list", "hash", "set", "intset", "zset", "stream", "hll", "k1", "k2",
    "k3", "busy", "db1", "copied", "replaced",
];

/// One MIGRATE scenario from `src` to `dst` (which requires the password `pw`); returns
/// the transcript: each step's reply and the state of both sides afterwards.
fn scenario(src: &Server, dst: &Server, dead_port: u16) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut s = src.conn();
    let mut d = dst.conn();
    assert_eq!(d.call(&["AUTH", "pw"]), b"+OK\r\n");
    populate(&mut s);
    d.call(&["SET", "busy", "there"]);
    d.call(&["SET", "replaced", "old"]);
    let host = "127.0.0.1";
    let dport = dst.port.to_string();
    let sport = src.port.to_string();
    let dead = dead_port.to_string();
    let steps: Vec<Vec<&str>> = vec![
        // Argument errors, before anything is looked up.
        vec!["MIGRATE", host, &dport, "str", "0", "x"],
        vec!["MIGRATE", host, &dport, "str", "x", "1000"],
        vec!["MIGRATE", host, &dport, "str", "0", "1.5"],
        vec!["MIGRATE", host, &dport, "str", "0", "1000", "FOO"],
        vec!["MIGRATE", host, &dport, "str", "0", "1000", "AUTH"],
        vec!["MIGRATE", host, &dport, "str", "0", "1000", "AUTH2", "u"],
        vec!["MIGRATE", host, &dport, "str", "0", "1000", "KEYS", "k1"],
        vec!["MIGRATE", host, &dport],
        // Nothing to move.
        vec!["MIGRATE", host, &dport, "nokey", "0", "1000"],
        vec![
            "MIGRATE", host, &dport, "", "0", "1000", "KEYS", "no1", "no2",
        ],
        vec!["MIGRATE", host, &dead, "nokey", "0", "1000"],
        // Connection and authentication failures: the key stays.
        vec!["MIGRATE", host, &dead, "str", "0", "500"],
        vec!["MIGRATE", host, &dport, "str", "0", "1000"],
        vec!["MIGRATE", host, &dport, "str", "0", "1000", "AUTH", "wrong"],
        vec![
            "MIGRATE", host, &dport, "str", "0", "1000", "AUTH2", "nobody", "pw",
        ],
        // Every type moves, with its TTL.
        vec!["MIGRATE", host, &dport, "str", "0", "1000", "AUTH", "pw"],
        vec![
            "MIGRATE", host, &dport, "int", "0", "0", "AUTH2", "default", "pw",
        ],
        vec![
            "MIGRATE", host, &dport, "", "0", "1000", "AUTH", "pw", "KEYS", "ttl", "list", "hash",
            "set", "intset", "zset", "stream", "hll",
        ],
        // KEYS with some keys missing: the others move.
        vec![
            "MIGRATE", host, &dport, "", "0", "1000", "AUTH", "pw", "KEYS", "k1", "missing", "k2",
        ],
        // The target's key is passed on as BUSYKEY; REPLACE overwrites it.
        vec!["MIGRATE", host, &dport, "busy", "0", "1000", "AUTH", "pw"],
        vec![
            "MIGRATE", host, &dport, "", "0", "1000", "AUTH", "pw", "KEYS", "k3", "busy",
        ],
        vec![
            "MIGRATE", host, &dport, "replaced", "0", "1000", "REPLACE", "AUTH", "pw",
        ],
        // COPY keeps the source's key.
        vec![
            "MIGRATE", host, &dport, "copied", "0", "1000", "COPY", "AUTH", "pw",
        ],
        // Another db, then a db the target does not have.
        vec!["MIGRATE", host, &dport, "db1", "1", "1000", "AUTH", "pw"],
        vec!["MIGRATE", host, &dport, "busy", "99", "1000", "AUTH", "pw"],
        // To itself: the server is busy in MIGRATE and can not answer.
        vec!["MIGRATE", host, &sport, "busy", "0", "300"],
    ];
    for st in &steps {
        let t0 = Instant::now();
        let r = s.call(st);
        let label = show_argv(st).replace(&dport, "DST").replace(&sport, "SRC");
        let label = label.replace(&dead, "DEAD");
        out.push((label.clone(), escape(&r)));
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{label} took {:?}",
            t0.elapsed()
        );
    }
    // Where each key is now.
    for k in KEYS {
        out.push((format!("source {k}"), snapshot(&mut s, k)));
        out.push((format!("target {k}"), snapshot(&mut d, k)));
    }
    d.call(&["SELECT", "1"]);
    out.push(("target db1 in db 1".into(), snapshot(&mut d, "db1")));
    // The cached connection was reused: one connection for all the MIGRATEs that
    // reached the target (the ones after an error from the target reconnect only when
    // the socket broke).
    let info = s.call(&["INFO", "stats"]);
    out.push((
        "source migrate_cached_sockets".into(),
        format!("{:?}", info_field(&info, "migrate_cached_sockets")),
    ));
    out
}

/// Runs `scenario` for a source of each kind against a target of `dst_kind`, and checks
/// that valkey-rs gives the reference's transcript.
fn compare_sources(bin: &std::path::Path, dst_ours: bool) {
    let mut transcripts = Vec::new();
    for src_ours in [false, true] {
        let dead = free_port();
        let src = if src_ours {
            Server::ours(&[])
        } else {
            Server::reference(bin, &[])
        };
        let dst = if dst_ours {
            Server::ours(&["--requirepass", "pw"])
        } else {
            Server::reference(bin, &["--requirepass", "pw"])
        };
        transcripts.push(scenario(&src, &dst, dead));
    }
    let (want, got) = (&transcripts[0], &transcripts[1]);
    for (w, g) in want.iter().zip(got) {
        assert_eq!(w.0, g.0);
        assert_eq!(
            w.1,
            g.1,
            "{} (target {}): reference source gave {}, valkey-rs source gave {}",
            w.0,
            if dst_ours { "valkey-rs" } else { "reference" },
            w.1,
            g.1
        );
    }
    assert_eq!(want.len(), got.len());
}

/// Ours as the source, against a reference target and against our own target.
#[test]
fn migrate_source_matches_reference() {
    let Some(bin) = require_reference() else {
        return;
    };
    compare_sources(&bin, false);
    compare_sources(&bin, true);
}

/// Ours as the target: the reference's MIGRATE into valkey-rs gives what it gives into
/// the reference.
#[test]
fn migrate_target_matches_reference() {
    let Some(bin) = require_reference() else {
        return;
    };
    let mut transcripts = Vec::new();
    for dst_ours in [false, true] {
        let dead = free_port();
        let src = Server::reference(&bin, &[]);
        let dst = if dst_ours {
            Server::ours(&["--requirepass", "pw"])
        } else {
            Server::reference(&bin, &["--requirepass", "pw"])
        };
        transcripts.push(scenario(&src, &dst, dead));
    }
    assert_eq!(transcripts[0], transcripts[1]);
}

/// The source's effects reach the AOF as DEL of the keys the target acknowledged, never as
/// MIGRATE; COPY writes nothing.
#[test]
fn migrate_propagates_as_del() {
    let Some(bin) = require_reference() else {
        return;
    };
    let mut aofs = Vec::new();
    for ours in [false, true] {
        let args = ["--appendonly", "yes", "--appendfsync", "always"];
        let src = if ours {
            Server::ours(&args)
        } else {
            Server::reference(&bin, &args)
        };
        let dst = Server::reference(&bin, &[]);
        let mut s = src.conn();
        for k in ["a", "b", "c", "d"] {
            s.call(&["SET", k, "v"]);
        }
        let dport = dst.port.to_string();
        let m = |extra: &[&str]| {
            let mut v = vec!["MIGRATE", "127.0.0.1", &dport];
            v.extend_from_slice(extra);
            v.iter().map(|x| x.to_string()).collect::<Vec<_>>()
        };
        assert_eq!(s.call(&m(&["a", "0", "1000"])), b"+OK\r\n");
        assert_eq!(s.call(&m(&["b", "0", "1000", "COPY"])), b"+OK\r\n");
        assert_eq!(
            s.call(&m(&["", "0", "1000", "KEYS", "c", "zz", "d"])),
            b"+OK\r\n"
        );
        s.call(&["SET", "end", "marker"]);
        let dir: PathBuf = src.dir.join("appendonlydir");
        let mut text = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("appendonlydir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
            .collect();
        files.sort();
        for f in files {
            text.extend(std::fs::read(f).expect("read aof"));
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        assert!(!text.to_ascii_uppercase().contains("MIGRATE"), "{text}");
        // From the first DEL on (the SETs before it may differ in form).
        let from = text.find("$3\r\nDEL").expect("a DEL in the AOF");
        aofs.push(text[from..].to_string());
    }
    assert_eq!(aofs[0], aofs[1]);
    assert!(aofs[1].contains("$3\r\nDEL\r\n$1\r\na\r\n"), "{}", aofs[1]);
    assert!(
        aofs[1].contains("*3\r\n$3\r\nDEL\r\n$1\r\nc\r\n$1\r\nd\r\n"),
        "{}",
        aofs[1]
    );
    assert!(!aofs[1].contains("\r\nb\r\n"), "{}", aofs[1]);
}

/// The connection to a target is cached and reused (the target sees one connection for
/// many MIGRATEs) and closed after 10 s unused, as upstream's.
#[test]
fn migrate_connection_cache() {
    let Some(bin) = require_reference() else {
        return;
    };
    let dst = Server::reference(&bin, &[]);
    let srcs = [Server::reference(&bin, &[]), Server::ours(&[])];
    let dport = dst.port.to_string();
    let mut d = dst.conn();
    let conns =
        |d: &mut Conn| info_field(&d.call(&["INFO", "stats"]), "total_connections_received");
    for src in &srcs {
        let mut s = src.conn();
        let before = conns(&mut d).expect("total_connections_received");
        for i in 0..20 {
            let k = format!("{}-{i}", src.kind.name());
            s.call(&["SET", &k, "v"]);
            assert_eq!(
                s.call(&["MIGRATE", "127.0.0.1", &dport, &k, "0", "1000"]),
                b"+OK\r\n"
            );
        }
        assert_eq!(conns(&mut d), Some(before + 1), "{}", src.kind.name());
        let info = s.call(&["INFO", "stats"]);
        assert_eq!(info_field(&info, "migrate_cached_sockets"), Some(1));
    }
    // Idle close: within 10 s + one cron second (+ slack).
    let t0 = Instant::now();
    for src in &srcs {
        let mut s = src.conn();
        let closed = wait_for(Duration::from_secs(14), || {
            let info = s.call(&["INFO", "stats"]);
            info_field(&info, "migrate_cached_sockets") == Some(0)
        });
        assert!(closed, "{}: cached socket not closed", src.kind.name());
    }
    assert!(t0.elapsed() >= Duration::from_secs(9), "{:?}", t0.elapsed());
    // A closed target connection is noticed and replaced (the retry) without an error.
    let mut s = srcs[1].conn();
    s.call(&["SET", "again", "v"]);
    assert_eq!(
        s.call(&["MIGRATE", "127.0.0.1", &dport, "again", "0", "1000"]),
        b"+OK\r\n"
    );
    d.call(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
    s.call(&["SET", "again2", "v"]);
    assert_eq!(
        s.call(&["MIGRATE", "127.0.0.1", &dport, "again2", "0", "1000"]),
        b"+OK\r\n"
    );
    assert_eq!(d.call(&["EXISTS", "again", "again2"]), b":2\r\n");
}

/// COMMAND GETKEYS and ACL key checks see MIGRATE's keys as upstream does (the KEYS form,
/// AUTH arguments skipped); COMMAND INFO and DOCS of MIGRATE and RESTORE-ASKING match.
#[test]
fn migrate_command_table_matches_reference() {
    let Some(bin) = require_reference() else {
        return;
    };
    let ours = Server::ours(&[]);
    let reference = Server::reference(&bin, &[]);
    let cases: &[&[&str]] = &[
        &["COMMAND", "GETKEYS", "MIGRATE", "h", "1", "k", "0", "0"],
        &[
            "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "", "0", "0", "KEYS", "a", "b",
        ],
        &[
            "COMMAND",
            "GETKEYSANDFLAGS",
            "MIGRATE",
            "h",
            "1",
            "",
            "0",
            "0",
            "COPY",
            "KEYS",
            "a",
        ],
        &[
            "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "x", "0", "0", "AUTH", "keys",
        ],
        &[
            "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "", "0", "0", "AUTH2", "keys", "keys",
            "KEYS", "a",
        ],
        &[
            "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "x", "0", "0", "KEYS", "a",
        ],
        &[
            "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "", "0", "0", "KEYS",
        ],
        &["COMMAND", "GETKEYS", "RESTORE-ASKING", "k", "0", "x"],
        &["COMMAND", "INFO", "MIGRATE", "RESTORE-ASKING"],
        &["COMMAND", "DOCS", "RESTORE-ASKING"],
        &["ACL", "SETUSER", "limited", "on", "nopass", "~a*", "+@all"],
        &["AUTH", "limited", "x"],
        &[
            "MIGRATE",
            "127.0.0.1",
            "1",
            "",
            "0",
            "10",
            "KEYS",
            "a1",
            "b1",
        ],
        &[
            "MIGRATE",
            "127.0.0.1",
            "1",
            "",
            "0",
            "10",
            "KEYS",
            "a1",
            "a2",
        ],
        &["MIGRATE", "127.0.0.1", "1", "b", "0", "10"],
        &["RESTORE-ASKING", "b", "0", "x"],
        &["RESTORE-ASKING", "a", "0", "x"],
        &["SET", "a", "1"],
        &["RESTORE-ASKING", "a", "0", "x"],
        &["DEL", "a"],
        &["RESTORE-ASKING", "a", "0", "x"],
    ];
    let (mut a, mut b) = (ours.conn(), reference.conn());
    for cmd in cases {
        let (x, y) = (a.call(cmd), b.call(cmd));
        assert_eq!(escape(&x), escape(&y), "{}", show_argv(cmd));
    }
    // RESTORE-ASKING restores what DUMP gives, as RESTORE.
    a.call(&["AUTH", "default", "x"]);
    a.call(&["RPUSH", "a1", "x", "y"]);
    let dump = a.call(&["DUMP", "a1"]);
    let payload = &dump[dump.iter().position(|&c| c == b'\n').unwrap() + 1..dump.len() - 2];
    let argv: Vec<&[u8]> = vec![b"RESTORE-ASKING", b"a2", b"0", payload];
    a.send(&argv).unwrap();
    assert_eq!(a.read_reply().unwrap(), b"+OK\r\n");
    assert_eq!(
        a.call(&["LRANGE", "a2", "0", "-1"]),
        b"*2\r\n$1\r\nx\r\n$1\r\ny\r\n"
    );
}
