//! valkey-rs as a replica of the upstream reference server (issue 9, replica side):
//! full sync (diskless and disk-based primary), the command stream applied under a mixed
//! write load, DEBUG DIGEST equal once the offsets match, partial resync after the link
//! is killed and after a restart (replid/offset from the RDB), -READONLY for writes, a
//! wrong `masterauth`, REPLICAOF's replies and REPLICAOF NO ONE (PSYNC2 ids).
//!
//! Knobs: `REPL_TEST_KEYS` (keys loaded before the sync, default 2000) and
//! `REPL_TEST_LOAD_MS` (duration of the write load, default 1500).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::proc::BIN;
use common::repl::{
    env_num, eof_fullsync, fake_primary_accept, info_num, info_str, pipeline, v, wait_in_sync,
};
use common::{free_port, require_reference, wait_for, Conn, Rng, Server};

/// A valkey-rs process on its own directory, which survives restarts (removed on drop
/// of the last use by the test through [`Ours::cleanup`]).
struct Ours {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Ours {
    fn start(dir: &Path, port: u16, extra: &[&str]) -> Ours {
        let mut args = common::base_args(port, dir);
        args.extend(["--save".into(), "".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = common::spawn_logged(
            Command::new(BIN).args(&args),
            dir,
            &dir.join("server.log"),
            true,
        )
        .expect("spawn valkey-rs");
        let o = Ours {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        assert!(
            wait_for(Duration::from_secs(10), || Conn::try_connect(port)
                .and_then(|mut c| c.cmd(&["PING"]))
                .is_ok()),
            "valkey-rs did not start:\n{}",
            o.log()
        );
        o
    }

    fn conn(&self) -> Conn {
        Conn::connect(self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn wait_exit(&mut self) {
        let ok = wait_for(Duration::from_secs(20), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        assert!(ok, "valkey-rs did not exit:\n{}", self.log());
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scratch_dir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "valkey-rs-repl-{}-{}-{}",
        tag,
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("dir");
    p
}

/// A dataset of every type, a few keys in other dbs, some with TTLs (far away: the
/// replica must keep them, not expire them).
fn populate(c: &mut Conn, n: u64) {
    let mut cmds = Vec::new();
    for i in 0..n {
        let k = format!("k:{i}");
        match i % 8 {
            0 => cmds.push(v(&["SET", &k, &format!("value-{i}")])),
            1 => cmds.push(v(&["SET", &k, &i.to_string()])),
            2 => cmds.push(v(&["RPUSH", &k, "a", "b", &i.to_string(), "c"])),
            3 => cmds.push(v(&["HSET", &k, "f1", "v1", "f2", &i.to_string()])),
            4 => cmds.push(v(&["SADD", &k, "1", "2", &i.to_string()])),
            5 => cmds.push(v(&["SADD", &k, "x", "y", &format!("m{i}")])),
            6 => cmds.push(v(&["ZADD", &k, "1.5", "a", &i.to_string(), "b"])),
            _ => cmds.push(v(&["XADD", &k, "*", "f", &i.to_string()])),
        }
        if i % 10 == 0 {
            cmds.push(v(&["EXPIRE", &k, "100000"]));
        }
    }
    // Larger encodings: a hashtable hash, a skiplist zset, a big list, a hashtable set.
    for i in 0..300 {
        cmds.push(v(&["HSET", "bighash", &format!("f{i}"), &format!("v{i}")]));
        cmds.push(v(&["ZADD", "bigzset", &i.to_string(), &format!("m{i}")]));
        cmds.push(v(&["RPUSH", "biglist", &format!("element-{i}")]));
        cmds.push(v(&["SADD", "bigset", &format!("member-{i}")]));
    }
    cmds.push(v(&["SELECT", "3"]));
    for i in 0..50 {
        cmds.push(v(&["SET", &format!("db3:{i}"), "x"]));
    }
    cmds.push(v(&["SELECT", "0"]));
    pipeline(c, &cmds);
}

/// A mixed write load for `ms` milliseconds.
fn write_load(c: &mut Conn, ms: u64, seed: u64) {
    let mut r = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < deadline {
        let mut cmds = Vec::new();
        for _ in 0..50 {
            let k = format!("load:{}", r.below(500));
            let n = r.below(1000).to_string();
            match r.below(12) {
                0 => cmds.push(v(&["SET", &k, &n])),
                1 => cmds.push(v(&["INCR", &format!("ctr:{}", r.below(20))])),
                2 => cmds.push(v(&["LPUSH", &format!("l:{}", r.below(30)), &n])),
                3 => cmds.push(v(&["HSET", &format!("h:{}", r.below(30)), &n, &k])),
                4 => cmds.push(v(&["ZADD", &format!("z:{}", r.below(30)), &n, &k])),
                5 => cmds.push(v(&["SADD", &format!("s:{}", r.below(30)), &n])),
                6 => cmds.push(v(&["XADD", &format!("x:{}", r.below(10)), "*", "f", &n])),
                7 => cmds.push(v(&["EXPIRE", &k, "100000"])),
                8 => cmds.push(v(&["DEL", &k])),
                9 => {
                    cmds.push(v(&["MULTI"]));
                    cmds.push(v(&["SET", &k, "in-multi"]));
                    cmds.push(v(&["INCR", "ctr:multi"]));
                    cmds.push(v(&["EXEC"]));
                }
                10 => {
                    let db = (1 + r.below(3)).to_string();
                    cmds.push(v(&["SELECT", &db]));
                    cmds.push(v(&["SET", &k, &n]));
                    cmds.push(v(&["SELECT", "0"]));
                }
                _ => cmds.push(v(&["DEL", &format!("k:{}", r.below(2000))])),
            }
        }
        pipeline(c, &cmds);
    }
}

fn digests_equal(primary: &mut Conn, replica: &mut Conn) {
    let a = primary
        .cmd(&["DEBUG", "DIGEST"])
        .expect("DEBUG DIGEST on the primary");
    // A debug build digests ~100k elements in seconds; more on a loaded machine.
    replica.set_read_timeout(Duration::from_secs(120));
    let b = replica
        .cmd(&["DEBUG", "DIGEST"])
        .expect("DEBUG DIGEST on the replica");
    replica.set_read_timeout(common::READ_TIMEOUT);
    assert_eq!(
        String::from_utf8_lossy(&a),
        String::from_utf8_lossy(&b),
        "DEBUG DIGEST differs"
    );
    for db in 0..4 {
        let s = db.to_string();
        primary.call(&["SELECT", &s]);
        replica.call(&["SELECT", &s]);
        assert_eq!(
            primary.call(&["DBSIZE"]),
            replica.call(&["DBSIZE"]),
            "DBSIZE of db {db}"
        );
    }
    primary.call(&["SELECT", "0"]);
    replica.call(&["SELECT", "0"]);
}

fn full_scenario(diskless: &str) {
    let Some(refbin) = require_reference() else {
        return;
    };
    let keys = env_num("REPL_TEST_KEYS", 2000);
    let load_ms = env_num("REPL_TEST_LOAD_MS", 1500);
    let primary = Server::reference(
        &refbin,
        &[
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    let mut p = primary.conn();
    populate(&mut p, keys);

    let dir = scratch_dir(&format!("full-{diskless}"));
    let port = free_port();
    let pport = primary.port.to_string();
    let mut ours = Ours::start(&dir, port, &[]);
    let mut r = ours.conn();
    assert_eq!(r.call(&["REPLICAOF", "127.0.0.1", &pport]), b"+OK\r\n");
    assert_eq!(
        r.call(&["REPLICAOF", "127.0.0.1", &pport]),
        b"+OK Already connected to specified master\r\n"
    );
    // The load runs while the sync happens.
    write_load(&mut p, load_ms, 7);
    wait_in_sync(&mut p, &mut [&mut r]);
    digests_equal(&mut p, &mut r);
    assert_eq!(info_str(&mut r, "role"), "slave");
    assert_eq!(info_num(&mut r, "master_port"), primary.port as i64);

    // A write from a normal client is refused.
    assert_eq!(
        r.call(&["SET", "x", "1"]),
        b"-READONLY You can't write against a read only replica.\r\n"
    );
    let role = r.call(&["ROLE"]);
    let role_text = String::from_utf8_lossy(&role).into_owned();
    // ROLE is registered by the primary side (src/replication/primary.rs), which calls
    // replica::role_reply on a replica; until then it may be unknown.
    assert!(
        role_text.starts_with("*5\r\n$5\r\nslave\r\n")
            || role_text.starts_with("-ERR unknown command 'ROLE'"),
        "{role_text}"
    );

    // The link dies: the replica comes back with a partial resync.
    let full_before = info_num(&mut p, "sync_full");
    let partial_before = info_num(&mut p, "sync_partial_ok");
    p.call(&["CLIENT", "KILL", "TYPE", "replica"]);
    write_load(&mut p, load_ms / 2, 11);
    wait_in_sync(&mut p, &mut [&mut r]);
    digests_equal(&mut p, &mut r);
    assert_eq!(info_num(&mut p, "sync_full"), full_before, "{}", ours.log());
    assert_eq!(info_num(&mut p, "sync_partial_ok"), partial_before + 1);

    // A restart (SHUTDOWN saves the replid and offset in the RDB): partial resync again.
    let _ = r.cmd(&["SHUTDOWN", "SAVE"]);
    ours.wait_exit();
    write_load(&mut p, 200, 13);
    let replicaof = format!("127.0.0.1 {}", primary.port);
    ours = Ours::start(&dir, port, &["--replicaof", &replicaof]);
    let mut r = ours.conn();
    wait_in_sync(&mut p, &mut [&mut r]);
    digests_equal(&mut p, &mut r);
    assert_eq!(info_num(&mut p, "sync_full"), full_before, "{}", ours.log());
    assert_eq!(info_num(&mut p, "sync_partial_ok"), partial_before + 2);

    // Promotion: the history continues under a new ID, the old one is replid2.
    let old_id = info_str(&mut r, "master_replid");
    let off = info_num(&mut r, "master_repl_offset");
    assert_eq!(r.call(&["REPLICAOF", "NO", "ONE"]), b"+OK\r\n");
    assert_eq!(info_str(&mut r, "role"), "master");
    assert_eq!(info_str(&mut r, "master_replid2"), old_id);
    assert_eq!(info_num(&mut r, "second_repl_offset"), off + 1);
    assert_ne!(info_str(&mut r, "master_replid"), old_id);
    assert_eq!(r.call(&["SET", "x", "1"]), b"+OK\r\n");
    drop(ours);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replica_of_reference_diskless() {
    full_scenario("yes");
}

#[test]
fn replica_of_reference_disk() {
    full_scenario("no");
}

#[test]
fn replicaof_errors_and_wrong_masterauth() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let primary = Server::reference(&refbin, &["--requirepass", "secret"]);
    let dir = scratch_dir("auth");
    let ours = Ours::start(&dir, free_port(), &["--masterauth", "wrong"]);
    let mut r = ours.conn();
    assert_eq!(
        r.call(&["REPLICAOF", "127.0.0.1", "x"]),
        b"-ERR Invalid master port\r\n"
    );
    assert_eq!(
        r.call(&["REPLICAOF", "127.0.0.1", "70000"]),
        b"-ERR Invalid master port\r\n"
    );
    assert_eq!(r.call(&["REPLICAOF", "NO", "ONE"]), b"+OK\r\n");
    let pport = primary.port.to_string();
    assert_eq!(r.call(&["SLAVEOF", "127.0.0.1", &pport]), b"+OK\r\n");
    let logged = wait_for(Duration::from_secs(10), || {
        ours.log().contains("Unable to AUTH to PRIMARY: -WRONGPASS")
    });
    assert!(logged, "{}", ours.log());
    assert_eq!(info_str(&mut r, "master_link_status"), "down");
    // Never up: -1, as upstream.
    assert_eq!(info_num(&mut r, "master_link_down_since_seconds"), -1);
    assert_eq!(info_num(&mut r, "master_last_io_seconds_ago"), -1);
    // It retries: a second attempt is logged.
    let retried = wait_for(Duration::from_secs(10), || {
        ours.log().matches("Unable to AUTH to PRIMARY").count() >= 2
    });
    assert!(retried, "{}", ours.log());
    // The right password: the link comes up.
    r.call(&["CONFIG", "SET", "masterauth", "secret"]);
    let up = wait_for(Duration::from_secs(10), || {
        info_str(&mut r, "master_link_status") == "up"
    });
    assert!(up, "{}", ours.log());
    drop(ours);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replica_hides_expired_keys_until_the_primary_deletes_them() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let primary = Server::reference(&refbin, &["--repl-diskless-sync-delay", "0"]);
    let mut p = primary.conn();
    // The primary keeps the expired key until it is touched.
    p.call(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    let dir = scratch_dir("expire");
    let ours = Ours::start(&dir, free_port(), &[]);
    let mut r = ours.conn();
    let pport = primary.port.to_string();
    r.call(&["REPLICAOF", "127.0.0.1", &pport]);
    p.call(&["SET", "k", "v", "PX", "300"]);
    p.call(&["SET", "counter", "1", "PX", "300"]);
    wait_in_sync(&mut p, &mut [&mut r]);
    std::thread::sleep(Duration::from_millis(500));
    // Logically expired: hidden from reads, still stored (DBSIZE counts it), as upstream.
    assert_eq!(r.call(&["GET", "k"]), b"$-1\r\n");
    assert_eq!(r.call(&["EXISTS", "k"]), b":0\r\n");
    assert_eq!(r.call(&["DBSIZE"]), b":2\r\n");
    // The primary's access deletes it and replicates the DEL.
    assert_eq!(p.call(&["GET", "k"]), b"$-1\r\n");
    wait_in_sync(&mut p, &mut [&mut r]);
    assert_eq!(r.call(&["DBSIZE"]), b":1\r\n");
    drop(ours);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Accepts one replica and answers its handshake; returns the PSYNC arguments and the
/// stream to write the rest of the script on.
fn fake_handshake(l: &std::net::TcpListener) -> (Vec<String>, std::net::TcpStream) {
    fake_primary_accept(l, Duration::from_secs(30)).expect("handshake")
}

#[test]
fn corrupt_payload_keeps_data_and_malformed_stream_reconnects() {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fport = l.local_addr().unwrap().port().to_string();
    let dir = scratch_dir("fake");
    let ours = Ours::start(&dir, free_port(), &["--repl-diskless-load", "swapdb"]);
    let mut r = ours.conn();
    r.call(&["SET", "keep", "me"]);
    r.call(&["REPLICAOF", "127.0.0.1", &fport]);
    let id = "a".repeat(40);

    // 1. A corrupt payload: the old data stays, the replica comes back.
    // A primary turning into a replica offers its own history first.
    let own_id = info_str(&mut r, "master_replid");
    let (psync, mut w) = fake_handshake(&l);
    assert_eq!(psync[1..], [own_id, "1".to_string()]);
    w.write_all(format!("+FULLRESYNC {id} 100\r\n\n\n$20\r\nREDIS0011garbage!!!!").as_bytes())
        .unwrap();
    let logged = wait_for(Duration::from_secs(10), || {
        ours.log()
            .contains("Failed trying to load the PRIMARY synchronization DB")
    });
    assert!(logged, "{}", ours.log());
    assert_eq!(r.call(&["GET", "keep"]), b"$2\r\nme\r\n");
    assert_eq!(info_str(&mut r, "master_link_status"), "down");
    drop(w);

    // 2. The retry: an empty RDB with the EOF mark, then one command, then garbage.
    let (psync, mut w) = fake_handshake(&l);
    assert_eq!(psync[1..], ["?".to_string(), "-1".to_string()]);
    w.write_all(&eof_fullsync(&id, 100)).unwrap();
    let up = wait_for(Duration::from_secs(10), || {
        info_str(&mut r, "master_link_status") == "up"
    });
    assert!(up, "{}", ours.log());
    assert_eq!(r.call(&["DBSIZE"]), b":0\r\n");
    let set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
    w.write_all(set).unwrap();
    let applied = wait_for(Duration::from_secs(10), || {
        info_num(&mut r, "slave_repl_offset") == 100 + set.len() as i64
    });
    assert!(applied, "{}", ours.log());
    assert_eq!(r.call(&["GET", "k"]), b"$1\r\nv\r\n");
    assert_eq!(info_str(&mut r, "master_replid"), id);
    w.write_all(b"*1\r\n$abc\r\n").unwrap();

    // 3. The malformed stream drops the link; the replica asks for the rest.
    let (psync, w) = fake_handshake(&l);
    let want = (100 + set.len() as i64 + 1).to_string();
    assert_eq!(psync[1..], [id.clone(), want]);
    drop(w);
    assert_eq!(r.call(&["GET", "k"]), b"$1\r\nv\r\n");
    drop(ours);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replicaof_unblocks_blocked_clients_like_the_reference() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let reference = Server::reference(&refbin, &[]);
    let dir = scratch_dir("unblock");
    let ours = Ours::start(&dir, free_port(), &[]);
    let nowhere = free_port().to_string();
    let mut replies = Vec::new();
    for port in [ours.port, reference.port] {
        let mut b = Conn::connect(port);
        b.send(&["BLPOP", "list", "0"]).unwrap();
        let mut admin = Conn::connect(port);
        let blocked = wait_for(Duration::from_secs(5), || {
            info_num(&mut admin, "blocked_clients") == 1
        });
        assert!(blocked);
        admin.call(&["REPLICAOF", "127.0.0.1", &nowhere]);
        replies.push(b.read_reply().expect("unblocked"));
        admin.call(&["REPLICAOF", "NO", "ONE"]);
    }
    assert_eq!(
        String::from_utf8_lossy(&replies[0]),
        String::from_utf8_lossy(&replies[1])
    );
    drop(ours);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Replies of a replica whose link is down, byte for byte as the reference's: writes
/// (alone and in MULTI), `replica-serve-stale-data no`, commands allowed while stale.
#[test]
fn readonly_and_stale_replies_like_the_reference() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let reference = Server::reference(&refbin, &[]);
    let dir = scratch_dir("stale");
    let ours = Ours::start(&dir, free_port(), &[]);
    let nowhere = free_port().to_string();
    let script: &[&[&str]] = &[
        &["SET", "k", "v"],
        &["GET", "k"],
        &["MULTI"],
        &["SET", "k", "v"],
        &["GET", "k"],
        &["EXEC"],
        &["MULTI"],
        &["GET", "k"],
        &["EXEC"],
        &["CONFIG", "SET", "replica-serve-stale-data", "no"],
        &["GET", "k"],
        &["SET", "k", "v"],
        &["PING"],
        &["MULTI"],
        &["PING"],
        &["GET", "k"],
        &["EXEC"],
        // Which commands run while stale (the STALE flag); no scripting in valkey-rs.
        &["DBSIZE"],
        &["ECHO", "hi"],
        &["TYPE", "k"],
        &["EXISTS", "k"],
        &["SELECT", "0"],
        &["CONFIG", "GET", "maxmemory"],
        &["CLIENT", "SETNAME", "x"],
        &["PUBLISH", "ch", "m"],
        &["WAIT", "0", "0"],
        &["DEBUG", "SLEEP", "0"],
        &["REPLICAOF", "127.0.0.1", &nowhere],
        &["CONFIG", "SET", "replica-read-only", "no"],
        &["SET", "k", "v"],
        &["CONFIG", "SET", "replica-serve-stale-data", "yes"],
        &["SET", "k", "v"],
        &["GET", "k"],
    ];
    let mut out = Vec::new();
    for port in [ours.port, reference.port] {
        let mut c = Conn::connect(port);
        c.call(&["REPLICAOF", "127.0.0.1", &nowhere]);
        let mut replies = Vec::new();
        for cmd in script {
            let r = c.call(cmd);
            replies.push(format!("{:?} -> {}", cmd, String::from_utf8_lossy(&r)));
        }
        c.call(&["REPLICAOF", "NO", "ONE"]);
        out.push(replies);
    }
    for (a, b) in out[0].iter().zip(out[1].iter()) {
        assert_eq!(a, b, "ours vs reference");
    }
    drop(ours);
    let _ = std::fs::remove_dir_all(&dir);
}
