//! Replication beyond one primary and one replica (issue 9, tests 5 and 6), against the
//! upstream reference server:
//! - a chain upstream -> valkey-rs -> upstream (and -> valkey-rs): the middle node proxies
//!   its primary's stream byte for byte, so every offset agrees, serves full syncs and
//!   partial resyncs from its own backlog, and DEBUG DIGEST is equal on every node;
//! - failover: the valkey-rs replica is promoted (REPLICAOF NO ONE), its sub-replicas and
//!   then the old upstream primary follow it with a partial resync (PSYNC2, replid2);
//! - `repl-timeout` on both sides (a silent primary, a replica whose ACKs stop), next to
//!   the reference doing the same;
//! - INFO `total_net_repl_input_bytes` / `total_net_repl_output_bytes` (part of the
//!   `total_net_*_bytes` totals, as upstream) and `instantaneous_*_repl_kbps`.
//!
//! Knobs: `REPL_TEST_KEYS` (keys loaded before the sync, default 2000) and
//! `REPL_TEST_LOAD_MS` (duration of each write load, default 1000).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::repl::{
    attach, digest, env_num, eof_fullsync, fake_primary_accept, fake_primary_for, info_num,
    info_str, pipeline, v, wait_in_sync,
};
use common::{require_reference, wait_for, Conn, Rng, Server};

/// Keys of every type in dbs 0 and 2.
fn populate(c: &mut Conn, n: u64) {
    let mut cmds = Vec::new();
    for i in 0..n {
        let k = format!("k:{i}");
        match i % 6 {
            0 => cmds.push(v(&["SET", &k, &format!("value-{i}")])),
            1 => cmds.push(v(&["RPUSH", &k, "a", "b", &i.to_string()])),
            2 => cmds.push(v(&["HSET", &k, "f1", "v1", "f2", &i.to_string()])),
            3 => cmds.push(v(&["SADD", &k, "1", "2", &i.to_string()])),
            4 => cmds.push(v(&["ZADD", &k, "1.5", "a", &i.to_string(), "b"])),
            _ => cmds.push(v(&["XADD", &k, "*", "f", &i.to_string()])),
        }
        if i % 10 == 0 {
            cmds.push(v(&["EXPIRE", &k, "100000"]));
        }
    }
    cmds.push(v(&["SELECT", "2"]));
    for i in 0..100 {
        cmds.push(v(&["SET", &format!("db2:{i}"), "x"]));
    }
    cmds.push(v(&["SELECT", "0"]));
    pipeline(c, &cmds);
}

/// A mixed write load for `ms` milliseconds; SELECTs leave the stream in db 1 at times,
/// so a chained replica's stream does not always start in db 0.
fn write_load(c: &mut Conn, ms: u64, seed: u64) {
    let mut r = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < deadline {
        let mut cmds = Vec::new();
        for _ in 0..50 {
            let k = format!("load:{}", r.below(300));
            let n = r.below(1000).to_string();
            match r.below(9) {
                0 => cmds.push(v(&["SET", &k, &n])),
                1 => cmds.push(v(&["INCR", &format!("ctr:{}", r.below(20))])),
                2 => cmds.push(v(&["LPUSH", &format!("l:{}", r.below(30)), &n])),
                3 => cmds.push(v(&["HSET", &format!("h:{}", r.below(30)), &n, &k])),
                4 => cmds.push(v(&["ZADD", &format!("z:{}", r.below(30)), &n, &k])),
                5 => cmds.push(v(&["DEL", &k])),
                6 => {
                    cmds.push(v(&["MULTI"]));
                    cmds.push(v(&["SET", &k, "in-multi"]));
                    cmds.push(v(&["INCR", "ctr:multi"]));
                    cmds.push(v(&["EXEC"]));
                }
                7 => {
                    cmds.push(v(&["SELECT", "1"]));
                    cmds.push(v(&["SET", &k, &n]));
                    cmds.push(v(&["SELECT", "0"]));
                }
                _ => cmds.push(v(&["XADD", &format!("x:{}", r.below(10)), "*", "f", &n])),
            }
        }
        pipeline(c, &cmds);
    }
    // End in db 1: the stream's current db is then not 0 for the next sync.
    pipeline(
        c,
        &[
            v(&["SELECT", "1"]),
            v(&["SET", "last", "1"]),
            v(&["SELECT", "0"]),
        ],
    );
}

fn dbsizes(c: &mut Conn) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for db in 0..3 {
        c.call(&["SELECT", &db.to_string()]);
        out.push(c.call(&["DBSIZE"]));
    }
    c.call(&["SELECT", "0"]);
    out
}

fn same_data(top: &mut Conn, others: &mut [&mut Conn]) {
    let d = digest(top);
    let sizes = dbsizes(top);
    for (i, o) in others.iter_mut().enumerate() {
        assert_eq!(digest(o), d, "DEBUG DIGEST of node {i}");
        assert_eq!(dbsizes(o), sizes, "DBSIZE of node {i}");
    }
}

/// What a failed sync-count assertion needs: each node's port, its replication INFO and
/// the sync lines of its log (who asked the middle node for what, and why a partial
/// resync was refused), so the replica that did a full sync can be named.
fn sync_report(nodes: &[(&str, &Server)]) -> String {
    let mut out = String::new();
    for (name, srv) in nodes {
        let info = srv.conn().call(&["INFO", "replication"]);
        out.push_str(&format!(
            "=== {name} ({:?}, port {})\n{}\n",
            srv.kind,
            srv.port,
            String::from_utf8_lossy(&info).replace("\r\n", " ")
        ));
        for line in srv.log().lines() {
            let l = line.to_ascii_lowercase();
            if ["sync", "replica", "primary", "replication id", "backlog"]
                .iter()
                .any(|w| l.contains(w))
            {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Test 5: upstream primary -> valkey-rs -> upstream and valkey-rs sub-replicas.
#[test]
fn chain_upstream_valkey_rs_upstream() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let keys = env_num("REPL_TEST_KEYS", 2000);
    let load_ms = env_num("REPL_TEST_LOAD_MS", 1000);
    let fast = ["--repl-diskless-sync-delay", "0"];
    let top = Server::reference(&refbin, &fast);
    let mid = Server::ours(&fast);
    let sub_ref = Server::reference(&refbin, &fast);
    let sub_ours = Server::ours(&[]);
    let (mut p, mut m, mut s1, mut s2) = (top.conn(), mid.conn(), sub_ref.conn(), sub_ours.conn());
    populate(&mut p, keys);
    write_load(&mut p, 100, 1);

    // The sub-replicas ask before the middle one is synchronized: -NOMASTERLINK, retry.
    attach(&mut m, &top);
    attach(&mut s1, &mid);
    attach(&mut s2, &mid);
    write_load(&mut p, load_ms, 3);
    wait_in_sync(&mut p, &mut [&mut m, &mut s1, &mut s2]);
    same_data(&mut p, &mut [&mut m, &mut s1, &mut s2]);
    // The middle node's history is its primary's: same ID, same offset.
    assert_eq!(
        info_str(&mut m, "master_replid"),
        info_str(&mut p, "master_replid")
    );
    assert_eq!(
        info_num(&mut m, "master_repl_offset"),
        info_num(&mut p, "master_repl_offset")
    );
    assert_eq!(
        info_str(&mut s1, "master_replid"),
        info_str(&mut p, "master_replid")
    );
    assert_eq!(info_num(&mut m, "connected_slaves"), 2);
    assert_eq!(info_num(&mut m, "repl_backlog_active"), 1);
    let full = info_num(&mut m, "sync_full");
    assert!(full >= 2, "sync_full {full}");

    // The middle link dies: it continues; its sub-replicas stay attached.
    let ok_before = info_num(&mut p, "sync_partial_ok");
    p.call(&["CLIENT", "KILL", "TYPE", "replica"]);
    write_load(&mut p, load_ms / 2, 5);
    wait_in_sync(&mut p, &mut [&mut m, &mut s1, &mut s2]);
    assert_eq!(info_num(&mut p, "sync_partial_ok"), ok_before + 1);
    assert_eq!(info_num(&mut m, "sync_full"), full);

    // The sub-replicas' links die: they continue from the middle node's backlog.
    let m_ok = info_num(&mut m, "sync_partial_ok");
    let in_before = info_num(&mut m, "total_net_repl_input_bytes");
    let out_before = info_num(&mut m, "total_net_repl_output_bytes");
    let off_before = info_num(&mut m, "master_repl_offset");
    m.call(&["CLIENT", "KILL", "TYPE", "replica"]);
    write_load(&mut p, load_ms / 2, 9);
    wait_in_sync(&mut p, &mut [&mut m, &mut s1, &mut s2]);
    assert_eq!(
        info_num(&mut m, "sync_partial_ok"),
        m_ok + 2,
        "{}",
        mid.log()
    );
    assert_eq!(info_num(&mut m, "sync_full"), full);
    same_data(&mut p, &mut [&mut m, &mut s1, &mut s2]);

    // Byte counters: the middle node read exactly the stream, and sent it to both
    // sub-replicas (what they had missed, from the backlog, then the rest).
    let grown = info_num(&mut m, "master_repl_offset") - off_before;
    assert_eq!(
        info_num(&mut m, "total_net_repl_input_bytes") - in_before,
        grown
    );
    assert_eq!(
        info_num(&mut m, "total_net_repl_output_bytes") - out_before,
        2 * grown
    );
}

/// Test 6: the valkey-rs replica is promoted; its sub-replicas (upstream and valkey-rs)
/// and the old upstream primary follow it with partial resyncs (replid2).
#[test]
fn failover_promoted_valkey_rs_continues_old_primary() {
    failover(true);
}

/// The same with a valkey-rs top primary: valkey-rs turning from primary into a replica
/// offers its own history (cached primary of itself) to the promoted valkey-rs.
#[test]
fn failover_all_valkey_rs_primaries() {
    failover(false);
}

fn failover(upstream_top: bool) {
    let Some(refbin) = require_reference() else {
        return;
    };
    let keys = env_num("REPL_TEST_KEYS", 2000);
    let load_ms = env_num("REPL_TEST_LOAD_MS", 1000);
    // No PING from the top primary while the roles change (it would make its offset pass
    // the promoted replica's: a full sync, as upstream). A backlog that holds everything
    // the timed write loads send on a fast machine: the old primary asks the promoted one
    // for the offset of the promotion, which a 10 MB backlog had already dropped (a full
    // sync, rightly, and a failed test).
    let quiet = [
        "--repl-diskless-sync-delay",
        "0",
        "--repl-ping-replica-period",
        "3600",
        "--repl-backlog-size",
        "256mb",
    ];
    let top = if upstream_top {
        Server::reference(&refbin, &quiet)
    } else {
        Server::ours(&quiet)
    };
    let mid = Server::ours(&quiet);
    let sub_ref = Server::reference(&refbin, &[]);
    let sub_ours = Server::ours(&[]);
    let (mut p, mut m, mut s1, mut s2) = (top.conn(), mid.conn(), sub_ref.conn(), sub_ours.conn());
    populate(&mut p, keys);
    attach(&mut m, &top);
    write_load(&mut p, load_ms, 21);
    wait_in_sync(&mut p, &mut [&mut m]);
    attach(&mut s1, &mid);
    attach(&mut s2, &mid);
    write_load(&mut p, load_ms / 2, 23);
    wait_in_sync(&mut p, &mut [&mut m, &mut s1, &mut s2]);

    let old_id = info_str(&mut p, "master_replid");
    let off = info_num(&mut m, "master_repl_offset");
    let full = info_num(&mut m, "sync_full");
    let partial = info_num(&mut m, "sync_partial_ok");
    assert_eq!(m.call(&["REPLICAOF", "NO", "ONE"]), b"+OK\r\n");
    let new_id = info_str(&mut m, "master_replid");
    assert_ne!(new_id, old_id);
    assert_eq!(info_str(&mut m, "master_replid2"), old_id);
    assert_eq!(info_num(&mut m, "second_repl_offset"), off + 1);
    assert_eq!(info_num(&mut m, "master_repl_offset"), off);

    // Writes on the new primary, then the old primary follows it.
    write_load(&mut m, load_ms / 2, 25);
    attach(&mut p, &mid);
    wait_in_sync(&mut m, &mut [&mut p, &mut s1, &mut s2]);
    let nodes = [
        ("top", &top),
        ("mid", &mid),
        ("sub_ref", &sub_ref),
        ("sub_ours", &sub_ours),
    ];
    assert_eq!(
        info_num(&mut m, "sync_full"),
        full,
        "promoted at offset {off} (old ID {old_id}, new ID {new_id})\n{}",
        sync_report(&nodes)
    );
    // Both sub-replicas (disconnected by the promotion) and the old primary continued.
    assert_eq!(
        info_num(&mut m, "sync_partial_ok"),
        partial + 3,
        "promoted at offset {off}\n{}",
        sync_report(&nodes)
    );
    for c in [&mut p, &mut s1, &mut s2] {
        assert_eq!(info_str(c, "master_replid"), new_id);
        assert_eq!(info_str(c, "master_replid2"), old_id);
        assert_eq!(info_num(c, "second_repl_offset"), off + 1);
    }
    assert!(
        top.log()
            .contains("Successful partial resynchronization with primary"),
        "{}",
        top.log()
    );
    same_data(&mut m, &mut [&mut p, &mut s1, &mut s2]);
}

// ---------------------------------------------------------------------------------------
// repl-timeout

/// A primary that completes a full sync and then goes silent: the replica drops the
/// link after `repl-timeout` and reconnects with a partial resync, as the reference does.
#[test]
fn replica_drops_a_silent_primary_after_repl_timeout() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let opts = ["--repl-timeout", "2"];
    let servers = [Server::ours(&opts), Server::reference(&refbin, &opts)];
    for srv in &servers {
        let mut c = srv.conn();
        let (l, mut w) = fake_primary_for(&mut c);
        let id = "b".repeat(40);
        w.write_all(&eof_fullsync(&id, 500)).unwrap();
        // The stream starts once the replica has the payload (it ends with the mark).
        let linked = wait_for(Duration::from_secs(10), || {
            info_str(&mut c, "master_link_status") == "up"
        });
        assert!(linked, "{:?}: {}", srv.kind, srv.log());
        let set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
        w.write_all(set).unwrap();
        let up = wait_for(Duration::from_secs(10), || {
            info_num(&mut c, "slave_repl_offset") == 500 + set.len() as i64
        });
        assert!(
            up,
            "{:?}: {}\n{}",
            srv.kind,
            String::from_utf8_lossy(&c.call(&["INFO", "replication"])),
            srv.log()
        );
        let t0 = Instant::now();
        // Silence: the replica gives up on us and comes back for the rest.
        let (psync, _w2) =
            fake_primary_accept(&l, Duration::from_secs(15)).expect("no reconnection");
        let waited = t0.elapsed();
        assert_eq!(
            psync[1..],
            [id.clone(), (500 + set.len() as i64 + 1).to_string()],
            "{:?}",
            srv.kind
        );
        assert!(waited >= Duration::from_millis(1500), "{:?}", waited);
        assert!(
            srv.log()
                .contains("PRIMARY timeout: no data nor PING received"),
            "{:?}: {}",
            srv.kind,
            srv.log()
        );
        assert_eq!(c.call(&["GET", "k"]), b"$1\r\nv\r\n");
        c.call(&["REPLICAOF", "NO", "ONE"]);
        drop(w);
    }
}

/// A replica that syncs, acknowledges once and then stays silent is dropped by the
/// primary after `repl-timeout`, as the reference does.
#[test]
fn primary_drops_a_replica_whose_acks_stop() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let opts = [
        "--repl-timeout",
        "2",
        "--repl-diskless-sync-delay",
        "0",
        "--repl-ping-replica-period",
        "1",
    ];
    let servers = [Server::ours(&opts), Server::reference(&refbin, &opts)];
    for srv in &servers {
        let mut admin = srv.conn();
        admin.call(&["SET", "k", "v"]);
        let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        // The handshake in steps, as a replica does (PSYNC with replies pending is
        // refused).
        let mut buf = [0u8; 65536];
        for cmd in [
            &["REPLCONF", "listening-port", "1"][..],
            &["REPLCONF", "capa", "eof", "capa", "psync2"],
        ] {
            s.write_all(&common::encode_command(cmd)).unwrap();
            let mut reply = Vec::new();
            let done = wait_for(Duration::from_secs(5), || {
                if let Ok(n) = s.read(&mut buf) {
                    reply.extend_from_slice(&buf[..n]);
                }
                reply.ends_with(b"\r\n")
            });
            assert!(done && reply == b"+OK\r\n", "{:?}", reply);
        }
        s.write_all(&common::encode_command(&["PSYNC", "?", "-1"]))
            .unwrap();
        // Read until the payload's EOF mark has come (diskless), then ACK once.
        let mut got = Vec::new();
        let acked = wait_for(Duration::from_secs(10), || {
            if let Ok(n) = s.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&got);
            match text.find("$EOF:") {
                Some(i) if got.len() >= i + 5 + 40 + 2 + 40 => {
                    let mark = &got[i + 5..i + 45];
                    got[i + 47..].windows(40).any(|w| w == mark)
                }
                _ => false,
            }
        });
        assert!(acked, "{:?}: no payload", srv.kind);
        s.write_all(&common::encode_command(&["REPLCONF", "ACK", "0"]))
            .unwrap();
        let online = wait_for(Duration::from_secs(5), || {
            String::from_utf8_lossy(&admin.call(&["INFO", "replication"])).contains("state=online")
        });
        assert!(online, "{:?}", srv.kind);
        let t0 = Instant::now();
        let closed = wait_for(Duration::from_secs(15), || {
            matches!(s.read(&mut buf), Ok(0))
        });
        assert!(closed, "{:?}: replica never dropped", srv.kind);
        assert!(
            t0.elapsed() >= Duration::from_millis(1000),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(info_num(&mut admin, "connected_slaves"), 0);
        assert!(
            srv.log()
                .contains("Disconnecting timedout replica (streaming sync)"),
            "{:?}: {}",
            srv.kind,
            srv.log()
        );
    }
}

/// A replica's stream counters: every byte of its primary's stream counts once as
/// `total_net_repl_input_bytes` (and not as `total_net_input_bytes`), as the reference.
#[test]
fn repl_byte_counters_like_the_reference() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let fast = ["--repl-diskless-sync-delay", "0"];
    let top = Server::reference(&refbin, &fast);
    let mut p = top.conn();
    p.call(&["SET", "seed", "1"]);
    for kind in ["ours", "reference"] {
        let r_srv = if kind == "ours" {
            Server::ours(&[])
        } else {
            Server::reference(&refbin, &[])
        };
        let mut r = r_srv.conn();
        attach(&mut r, &top);
        wait_in_sync(&mut p, &mut [&mut r]);
        let in0 = info_num(&mut r, "total_net_repl_input_bytes");
        let net0 = info_num(&mut r, "total_net_input_bytes");
        let off0 = info_num(&mut r, "slave_repl_offset");
        let p_out0 = info_num(&mut p, "total_net_repl_output_bytes");
        let p_off0 = info_num(&mut p, "master_repl_offset");
        assert!(in0 > 0, "{kind}: {in0}");
        write_load(&mut p, 300, 77);
        wait_in_sync(&mut p, &mut [&mut r]);
        // The rates of the last 1.6 s (100 ms samples) show the load just applied.
        let rate = info_str(&mut r, "instantaneous_input_repl_kbps");
        assert!(rate.parse::<f64>().unwrap_or(0.0) > 0.0, "{kind}: {rate}");
        let rate = info_str(&mut p, "instantaneous_output_repl_kbps");
        assert!(rate.parse::<f64>().unwrap_or(0.0) > 0.0, "{kind}: {rate}");
        let grown = info_num(&mut r, "slave_repl_offset") - off0;
        assert!(grown > 0);
        assert_eq!(
            info_num(&mut r, "total_net_repl_input_bytes") - in0,
            grown,
            "{kind}"
        );
        assert_eq!(
            info_num(&mut p, "total_net_repl_output_bytes") - p_out0,
            info_num(&mut p, "master_repl_offset") - p_off0,
            "{kind}"
        );
        // INFO's total input includes the stream (and our INFO commands).
        let net_in = info_num(&mut r, "total_net_input_bytes") - net0;
        assert!(
            net_in >= grown && net_in < grown + 4096,
            "{kind}: net input {net_in} vs stream {grown}"
        );
        r.call(&["REPLICAOF", "NO", "ONE"]);
    }
}

/// Stream bytes that arrive in the same segment as the payload or the `+CONTINUE` line
/// are applied at once, with no further byte from the primary (which then stays silent),
/// as by the reference.
#[test]
fn stream_sent_with_the_sync_reply_is_applied() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let servers = [Server::ours(&[]), Server::reference(&refbin, &[])];
    for srv in &servers {
        let mut c = srv.conn();
        let (l, mut w) = fake_primary_for(&mut c);
        let id = "c".repeat(40);
        let set1 = b"*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$1\r\nv\r\n";
        let mut out = format!("+FULLRESYNC {id} 200\r\n$18\r\n").into_bytes();
        out.extend_from_slice(b"REDIS0011\xff\0\0\0\0\0\0\0\0");
        out.extend_from_slice(set1);
        w.write_all(&out).unwrap();
        let applied = wait_for(Duration::from_secs(10), || {
            c.call(&["GET", "k1"]) == b"$1\r\nv\r\n"
        });
        assert!(applied, "{:?}: {}", srv.kind, srv.log());
        // The link drops; the continuation carries a command in the same write.
        drop(w);
        let (psync, mut w) =
            fake_primary_accept(&l, Duration::from_secs(10)).expect("reconnection");
        let next = 200 + set1.len() as i64 + 1;
        assert_eq!(psync[1..], [id.clone(), next.to_string()], "{:?}", srv.kind);
        let set2 = b"*3\r\n$3\r\nSET\r\n$2\r\nk2\r\n$1\r\nw\r\n";
        let mut out = format!("+CONTINUE {id}\r\n").into_bytes();
        out.extend_from_slice(set2);
        w.write_all(&out).unwrap();
        let applied = wait_for(Duration::from_secs(5), || {
            c.call(&["GET", "k2"]) == b"$1\r\nw\r\n"
        });
        assert!(applied, "{:?}: {}", srv.kind, srv.log());
        assert_eq!(
            info_num(&mut c, "slave_repl_offset"),
            next - 1 + set2.len() as i64
        );
        c.call(&["REPLICAOF", "NO", "ONE"]);
        drop(w);
    }
}
