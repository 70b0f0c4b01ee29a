//! valkey-rs as the primary of the real upstream Valkey as its replica (issue 9, primary
//! role): a mixed dataset of every type is loaded, the reference attaches
//! (`REPLICAOF`), a mixed write load keeps running (several databases, MULTI/EXEC,
//! expiries, streams), then the offsets in INFO must match and DEBUG DIGEST must be equal
//! on both. Diskless (EOF marker) and disk full syncs; CLIENT KILL TYPE replica makes the
//! reference come back with a partial resync; WAIT counts it.
//!
//! Knobs: `REPL_TEST_KEYS` (keys loaded before the attach, default 2000),
//! `REPL_TEST_SECS` (seconds of mixed writes, default 2).

mod common;

use std::time::{Duration, Instant};

use common::repl::{attach, digest, env_num, link_up, pipeline_checked, v};
use common::{info_field, require_reference, wait_for, Conn, Rng, Server};

/// Every type, in several encodings, over dbs 0-2, some keys with a (far) TTL.
fn load_dataset(c: &mut Conn, n: u64) {
    let mut cmds = Vec::new();
    for i in 0..n {
        let k = format!("k:{}", i);
        let db = (i % 3).to_string();
        if i % 97 == 0 {
            cmds.push(v(&["SELECT", &db]));
        }
        match i % 9 {
            0 => cmds.push(v(&["SET", &k, &i.to_string()])),
            1 => cmds.push(v(&["SET", &k, &"x".repeat((i % 70) as usize + 1)])),
            2 => {
                let mut a = v(&["RPUSH", &k]);
                for j in 0..(i % 200 + 1) {
                    a.push(format!("e{}", j));
                }
                cmds.push(a);
            }
            3 => {
                let mut a = v(&["HSET", &k]);
                for j in 0..(i % 150 + 1) {
                    a.push(format!("f{}", j));
                    a.push(format!("v{}", j * 7));
                }
                cmds.push(a);
            }
            4 => {
                let mut a = v(&["SADD", &k]);
                for j in 0..(i % 600 + 1) {
                    a.push(j.to_string());
                }
                cmds.push(a);
            }
            5 => {
                let mut a = v(&["SADD", &k]);
                for j in 0..(i % 140 + 1) {
                    a.push(format!("m{}", j));
                }
                cmds.push(a);
            }
            6 => {
                let mut a = v(&["ZADD", &k]);
                for j in 0..(i % 200 + 1) {
                    a.push(format!("{}.5", j));
                    a.push(format!("z{}", j));
                }
                cmds.push(a);
            }
            7 => {
                for j in 0..(i % 5 + 1) {
                    cmds.push(v(&["XADD", &k, "*", "f", &j.to_string(), "g", "x"]));
                }
                if i % 2 == 1 {
                    cmds.push(v(&["XGROUP", "CREATE", &k, "grp", "0"]));
                }
            }
            _ => {
                cmds.push(v(&["SET", &k, "ttl"]));
                cmds.push(v(&["EXPIRE", &k, "100000"]));
            }
        }
    }
    cmds.push(v(&["SELECT", "0"]));
    pipeline_checked(c, &cmds, true);
}

/// A mixed write load for `secs` seconds.
fn write_load(c: &mut Conn, secs: u64, seed: u64) {
    let mut rng = Rng(seed);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let mut cmds = Vec::new();
        for _ in 0..50 {
            let k = format!("w:{}", rng.below(300));
            let n = rng.below(1000).to_string();
            match rng.below(14) {
                0 => cmds.push(v(&["SET", &k, &n])),
                1 => cmds.push(v(&["INCR", &format!("ctr:{}", rng.below(20))])),
                2 => cmds.push(v(&["LPUSH", &format!("l{}", k), &n, "x"])),
                3 => cmds.push(v(&["HSET", &format!("h{}", k), &n, &n])),
                4 => cmds.push(v(&["ZADD", &format!("z{}", k), &n, &n])),
                5 => cmds.push(v(&["SADD", &format!("s{}", k), &n])),
                6 => cmds.push(v(&["XADD", &format!("x{}", k), "*", "n", &n])),
                7 => cmds.push(v(&["EXPIRE", &k, "50000"])),
                8 => cmds.push(v(&["DEL", &k])),
                9 => {
                    cmds.push(v(&["MULTI"]));
                    cmds.push(v(&["INCRBY", &k, "3"]));
                    cmds.push(v(&["RPUSH", "tx:list", &n]));
                    cmds.push(v(&["EXEC"]));
                }
                10 => {
                    let db = (1 + rng.below(3)).to_string();
                    cmds.push(v(&["SELECT", &db]));
                    cmds.push(v(&["SET", &k, &n]));
                    cmds.push(v(&["HINCRBY", "hh", &n, "1"]));
                    cmds.push(v(&["SELECT", "0"]));
                }
                11 => cmds.push(v(&["SET", &k, &n, "EX", "100000"])),
                12 => cmds.push(v(&["SPOP", &format!("s{}", k)])),
                _ => cmds.push(v(&["INCRBYFLOAT", &format!("f:{}", rng.below(10)), "1.5"])),
            }
        }
        // INCR on a key holding a list etc. may fail: only I/O matters here.
        for argv in &cmds {
            c.send(argv).expect("send");
        }
        for _ in &cmds {
            c.read_reply().expect("reply");
        }
    }
}

fn info(c: &mut Conn, field: &str, section: &str) -> Option<i64> {
    info_field(&c.call(&["INFO", section]), field)
}

/// Waits for the replica's link to be up and the offsets to match.
fn wait_synced(p: &mut Conn, r: &mut Conn, what: &str, primary: &Server, replica: &Server) {
    let ok = wait_for(Duration::from_secs(60), || {
        let po = info(p, "master_repl_offset", "replication");
        let ro = info(r, "master_repl_offset", "replication");
        link_up(r) && po.is_some() && po == ro
    });
    if !ok {
        panic!(
            "{}: not in sync\nprimary:\n{}\nreplica:\n{}\nprimary log:\n{}\nreplica log:\n{}",
            what,
            String::from_utf8_lossy(&p.call(&["INFO", "replication"])),
            String::from_utf8_lossy(&r.call(&["INFO", "replication"])),
            primary.log(),
            replica.log()
        );
    }
}

fn scenario(primary_args: &[&str], tag: &str) {
    let Some(refbin) = require_reference() else {
        return;
    };
    let keys = env_num("REPL_TEST_KEYS", 2000);
    let secs = env_num("REPL_TEST_SECS", 2);
    let primary = Server::ours(primary_args);
    let replica = Server::reference(&refbin, &[]);
    let mut p = primary.conn();
    let mut r = replica.conn();
    load_dataset(&mut p, keys);
    attach(&mut r, &primary);
    // Write while the full sync runs and after it.
    let mut w = primary.conn();
    let port = primary.port;
    let writer = std::thread::spawn(move || {
        let _ = port;
        write_load(&mut w, secs, 7);
        w
    });
    let mut w = writer.join().expect("writer");
    wait_synced(&mut p, &mut r, tag, &primary, &replica);
    assert_eq!(digest(&mut p), digest(&mut r), "{}: digests differ", tag);
    assert_eq!(info(&mut p, "sync_full", "stats"), Some(1), "{}", tag);
    assert_eq!(info(&mut p, "connected_slaves", "replication"), Some(1));
    let text = String::from_utf8_lossy(&p.call(&["INFO", "replication"])).into_owned();
    assert!(
        text.contains(&format!(
            "slave0:ip=127.0.0.1,port={},state=online,",
            replica.port
        )),
        "{}",
        text
    );
    let clients =
        String::from_utf8_lossy(&p.call(&["CLIENT", "LIST", "TYPE", "replica"])).into_owned();
    assert!(clients.contains("flags=S"), "{}", clients);

    // WAIT counts the replica once it acknowledged our writes.
    p.call(&["SET", "wait:key", "1"]);
    assert_eq!(p.call(&["WAIT", "1", "5000"]), b":1\r\n");
    assert_eq!(p.call(&["WAIT", "2", "100"]), b":1\r\n");

    // ROLE: master form with the replica.
    let role = p.call(&["ROLE"]);
    assert!(role.starts_with(b"*3\r\n$6\r\nmaster\r\n:"), "{:?}", role);

    // min-replicas-to-write: one good replica is enough for 1, not for 2.
    assert_eq!(
        p.call(&["CONFIG", "SET", "min-replicas-to-write", "1"]),
        b"+OK\r\n"
    );
    assert_eq!(p.call(&["SET", "mr", "1"]), b"+OK\r\n");
    assert_eq!(
        p.call(&["CONFIG", "SET", "min-replicas-to-write", "2"]),
        b"+OK\r\n"
    );
    assert_eq!(
        p.call(&["SET", "mr", "2"]),
        b"-NOREPLICAS Not enough good replicas to write.\r\n"
    );
    assert_eq!(p.call(&["PING"]), b"+PONG\r\n");
    assert_eq!(
        p.call(&["CONFIG", "SET", "min-replicas-to-write", "0"]),
        b"+OK\r\n"
    );

    // Kill the link: the reference comes back with a partial resync.
    let full = info(&mut p, "sync_full", "stats");
    let partial = info(&mut p, "sync_partial_ok", "stats").unwrap_or(0);
    // Mid-stream: the writer keeps going while the link is killed.
    let writer = std::thread::spawn(move || {
        write_load(&mut w, 2, 11);
        w
    });
    std::thread::sleep(Duration::from_millis(500));
    let killed = p.call(&["CLIENT", "KILL", "TYPE", "replica"]);
    assert_eq!(killed, b":1\r\n");
    let _w = writer.join().expect("writer");
    wait_synced(&mut p, &mut r, tag, &primary, &replica);
    assert_eq!(
        info(&mut p, "sync_full", "stats"),
        full,
        "{}: full resync",
        tag
    );
    assert_eq!(
        info(&mut p, "sync_partial_ok", "stats"),
        Some(partial + 1),
        "{}: no partial resync\n{}",
        tag,
        primary.log()
    );
    assert_eq!(digest(&mut p), digest(&mut r), "{}: digests differ", tag);
    assert_eq!(p.call(&["WAIT", "1", "5000"]), b":1\r\n");
}

#[test]
fn reference_replica_diskless_sync() {
    scenario(&["--repl-diskless-sync-delay", "0"], "diskless");
}

#[test]
fn reference_replica_disk_sync() {
    scenario(&["--repl-diskless-sync", "no"], "disk");
}

/// The protocol by hand: REPLCONF answers, PSYNC ? -1 gets +FULLRESYNC and an RDB in the
/// EOF-marker form with the replication aux fields, then the stream (after the first
/// ACK) starts with a SELECT.
#[test]
fn handshake_and_stream_bytes() {
    let primary = Server::ours(&["--repl-diskless-sync-delay", "0"]);
    let mut p = primary.conn();
    p.call(&["SET", "a", "1"]);
    let mut r = primary.conn();
    assert_eq!(r.call(&["REPLCONF", "listening-port", "1234"]), b"+OK\r\n");
    assert_eq!(
        r.call(&["REPLCONF", "capa", "eof", "capa", "psync2"]),
        b"+OK\r\n"
    );
    assert_eq!(r.call(&["REPLCONF", "version", "9.1.2"]), b"+OK\r\n");
    assert!(r
        .call(&["REPLCONF", "nosuch", "1"])
        .starts_with(b"-ERR Unrecognized REPLCONF option: nosuch"));
    r.send(&["PSYNC", "?", "-1"]).unwrap();
    // Read until the whole payload arrived (ends with the 40-byte mark).
    let mut got = Vec::new();
    let ok = wait_for(Duration::from_secs(10), || {
        let (b, _) = r.read_until_close(Duration::from_millis(100));
        got.extend_from_slice(&b);
        let s = String::from_utf8_lossy(&got);
        if let Some(i) = s.find("$EOF:") {
            let mark = &got[i + 5..(i + 45).min(got.len())];
            mark.len() == 40 && got.len() > i + 47 && got.ends_with(mark)
        } else {
            false
        }
    });
    assert!(ok, "{}", String::from_utf8_lossy(&got));
    let s = String::from_utf8_lossy(&got).into_owned();
    assert!(
        s.trim_start_matches('\n').starts_with("+FULLRESYNC "),
        "{}",
        s
    );
    assert!(
        s.contains("VALKEY080"),
        "version 9 replica gets our RDB version"
    );
    for aux in ["repl-stream-db", "repl-id", "repl-offset", "aof-base"] {
        assert!(s.contains(aux), "{} missing: {}", aux, s);
    }
    // Before the first ACK nothing of the stream comes.
    p.call(&["SET", "b", "2"]);
    assert!(r.read_until_close(Duration::from_millis(200)).0.is_empty());
    r.send(&["REPLCONF", "ACK", "0"]).unwrap();
    let mut stream = Vec::new();
    wait_for(Duration::from_secs(5), || {
        stream.extend_from_slice(&r.read_until_close(Duration::from_millis(100)).0);
        stream.ends_with(b"$1\r\nb\r\n$1\r\n2\r\n")
    });
    let text = String::from_utf8_lossy(&stream);
    assert!(
        text.contains("*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n"),
        "{}",
        text
    );
    let role = p.call(&["ROLE"]);
    assert!(
        String::from_utf8_lossy(&role).contains("$4\r\n1234\r\n"),
        "{:?}",
        String::from_utf8_lossy(&role)
    );
}

/// Asks `primary` for a full sync by hand and returns everything received within a few
/// seconds once the payload looks complete (`done`).
fn full_sync_bytes(
    primary: &Server,
    confs: &[&[&str]],
    sync: &[&str],
    done: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    let mut r = primary.conn();
    for argv in confs {
        assert_eq!(r.call(argv), b"+OK\r\n", "{:?}", argv);
    }
    r.send(sync).unwrap();
    let mut got = Vec::new();
    let ok = wait_for(Duration::from_secs(10), || {
        got.extend_from_slice(&r.read_until_close(Duration::from_millis(100)).0);
        done(&got)
    });
    assert!(ok, "{}", String::from_utf8_lossy(&got));
    got
}

fn has(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The RDB version follows REPLCONF version: 8.x or unknown gets RDB 11; the disk form is
/// `$<len>\r\n` + the file; old SYNC gets no +FULLRESYNC line.
#[test]
fn rdb_version_and_payload_forms() {
    let diskless = Server::ours(&["--repl-diskless-sync-delay", "0"]);
    diskless.conn().call(&["SET", "k", "v"]);
    for (version, header) in [
        (Some("8.1.0"), &b"REDIS0011"[..]),
        (None, &b"REDIS0011"[..]),
        (Some("9.0.0"), &b"VALKEY080"[..]),
    ] {
        let mut confs: Vec<&[&str]> = vec![&["REPLCONF", "capa", "eof"]];
        let v;
        if let Some(ver) = version {
            v = ["REPLCONF", "version", ver];
            confs.push(&v);
        }
        let got = full_sync_bytes(&diskless, &confs, &["PSYNC", "?", "-1"], |b| {
            has(b, b"$EOF:") && b.len() > 100
        });
        assert!(
            has(&got, header),
            "{:?}: {}",
            version,
            String::from_utf8_lossy(&got)
        );
    }
    let disk = Server::ours(&["--repl-diskless-sync", "no"]);
    disk.conn().call(&["SET", "k", "v"]);
    let got = full_sync_bytes(&disk, &[&["REPLCONF", "capa", "eof"]], &["SYNC"], |b| {
        let s = String::from_utf8_lossy(b);
        let s = s.trim_start_matches('\n');
        match s.strip_prefix('$').and_then(|r| r.split_once("\r\n")) {
            Some((n, rest)) => n.parse::<usize>().is_ok_and(|n| rest.len() >= n),
            None => false,
        }
    });
    let text = String::from_utf8_lossy(&got);
    assert!(!text.contains("FULLRESYNC"), "{}", text);
    assert!(
        has(&got, b"VALKEY080") || has(&got, b"REDIS0011"),
        "{}",
        text
    );
}

/// Two reference replicas attaching within `repl-diskless-sync-delay` share one child:
/// the pipe is relayed to both sockets; both end with our digest.
#[test]
fn two_replicas_share_one_diskless_transfer() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let primary = Server::ours(&["--repl-diskless-sync-delay", "1"]);
    let mut p = primary.conn();
    load_dataset(&mut p, env_num("REPL_TEST_KEYS", 2000));
    let forks = info(&mut p, "total_forks", "stats").unwrap_or(0);
    let a = Server::reference(&refbin, &[]);
    let b = Server::reference(&refbin, &[]);
    let (mut ra, mut rb) = (a.conn(), b.conn());
    attach(&mut ra, &primary);
    attach(&mut rb, &primary);
    let mut w = primary.conn();
    write_load(&mut w, 1, 5);
    wait_synced(&mut p, &mut ra, "replica a", &primary, &a);
    wait_synced(&mut p, &mut rb, "replica b", &primary, &b);
    let d = digest(&mut p);
    assert_eq!(digest(&mut ra), d);
    assert_eq!(digest(&mut rb), d);
    assert_eq!(info(&mut p, "sync_full", "stats"), Some(2));
    assert_eq!(info(&mut p, "total_forks", "stats"), Some(forks + 1));
    assert_eq!(info(&mut p, "connected_slaves", "replication"), Some(2));
    assert_eq!(p.call(&["WAIT", "2", "5000"]), b":2\r\n");
}
