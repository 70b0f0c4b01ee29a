//! The AOF server side end to end with the real binary: the multi-part directory at
//! start-up and after BGREWRITEAOF (names and manifest as the reference writes them),
//! modes 0600/0700 whatever the umask, restarts keeping the dataset (SHUTDOWN, SIGKILL
//! with `appendfsync always`, after a rewrite, after `CONFIG SET appendonly yes`),
//! a truncated last command recovered or refused per `aof-load-truncated`, a corrupt
//! file refused, and the INFO persistence aof_* fields.

mod common;

use std::path::Path;
use std::time::Duration;

use common::proc::{file_mode, Proc, TempDir, BIN};
use common::{info_field, wait_for, Conn};

/// The AOF tests run without RDB save points, so only the AOF carries the data.
fn try_start(bin: &Path, dir: &Path, extra: &[&str], umask: bool) -> Result<Proc, String> {
    let mut args = vec!["--save", ""];
    args.extend_from_slice(extra);
    Proc::try_start(bin, dir, &args, umask)
}

fn start(dir: &Path, extra: &[&str]) -> Proc {
    try_start(Path::new(BIN), dir, extra, false)
        .unwrap_or_else(|log| panic!("start failed:\n{log}"))
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn info_str(c: &mut Conn, field: &str) -> Option<String> {
    let t = String::from_utf8_lossy(&c.call(&["INFO", "persistence"])).into_owned();
    let prefix = format!("{field}:");
    t.split("\r\n")
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
}

fn wait_rewrite_done(c: &mut Conn) {
    let ok = wait_for(Duration::from_secs(20), || {
        let i = c.call(&["INFO", "persistence"]);
        info_field(&i, "aof_rewrite_in_progress") == Some(0)
            && info_field(&i, "aof_rewrite_scheduled") == Some(0)
    });
    assert!(ok, "rewrite still running");
}

fn digest(c: &mut Conn) -> Vec<u8> {
    c.call(&["DEBUG", "DIGEST"])
}

/// Every type, in two dbs, with absolute expiry times (replays are deterministic).
fn populate(c: &mut Conn, tag: &str) {
    let k = |n: &str| format!("{tag}:{n}");
    c.call(&["SET", &k("str"), "hello"]);
    c.call(&["MSET", &k("int"), "12345", &k("m2"), "v2"]);
    c.call(&["GETSET", &k("m2"), "v3"]);
    c.call(&["APPEND", &k("new"), "fresh"]);
    c.call(&["SETRANGE", &k("long"), "0", "y"]);
    c.call(&["APPEND", &k("long"), &"x".repeat(300)]);
    c.call(&["INCRBY", &k("counter"), "7"]);
    c.call(&["RPUSH", &k("list"), "a", "b", "1", "2"]);
    c.call(&["HSET", &k("hash"), "f1", "v1", "f2", "2"]);
    c.call(&["SADD", &k("intset"), "1", "2", "3"]);
    c.call(&["SADD", &k("set"), "a", "b", "c"]);
    c.call(&["ZADD", &k("zset"), "1.5", "a", "2", "b"]);
    c.call(&["XADD", &k("stream"), "1-1", "f", "v"]);
    c.call(&["PFADD", &k("hll"), "a", "b", "c"]);
    for i in 0..300 {
        c.call(&["SADD", &k("bigset"), &format!("member:{i}")]);
        c.call(&["RPUSH", &k("biglist"), &format!("{i}")]);
        c.call(&["HSET", &k("bighash"), &format!("f{i}"), &"v".repeat(80)]);
        c.call(&["ZADD", &k("bigzset"), &format!("{i}"), &format!("m{i}")]);
    }
    c.call(&["LPOP", &k("biglist")]);
    c.call(&["DEL", &k("set")]);
    c.call(&["PEXPIREAT", &k("str"), "99999999999999"]);
    c.call(&["SELECT", "3"]);
    c.call(&["SET", &k("db3"), "three"]);
    c.call(&["SELECT", "0"]);
}

#[test]
fn fresh_start_layout_modes_and_info() {
    let dir = TempDir::new("layout");
    let s = try_start(
        Path::new(BIN),
        &dir.0,
        &["--appendonly", "yes", "--appendfsync", "always"],
        true,
    )
    .unwrap_or_else(|l| panic!("{l}"));
    let ad = dir.0.join("appendonlydir");
    assert_eq!(file_mode(&ad), 0o700);
    assert_eq!(
        names(&ad),
        [
            "appendonly.aof.1.base.rdb",
            "appendonly.aof.1.incr.aof",
            "appendonly.aof.manifest"
        ]
    );
    for n in names(&ad) {
        assert_eq!(file_mode(&ad.join(&n)), 0o600, "{n}");
    }
    let m = std::fs::read_to_string(dir.aof("appendonly.aof.manifest")).expect("manifest");
    assert_eq!(
        m,
        "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    // The base is an RDB with aof-base 1.
    let base = std::fs::read(dir.aof("appendonly.aof.1.base.rdb")).expect("base");
    assert!(base.starts_with(b"VALKEY") || base.starts_with(b"REDIS"));
    assert!(base.windows(8).any(|w| w == b"aof-base"));

    let mut c = s.conn();
    c.call(&["RPUSH", "l", "a"]);
    // The write is in the file once acknowledged (appendfsync always).
    let incr = std::fs::read(dir.aof("appendonly.aof.1.incr.aof")).expect("incr");
    assert_eq!(
        incr,
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n$1\r\na\r\n"
    );
    let info = String::from_utf8_lossy(&c.call(&["INFO", "persistence"])).into_owned();
    for f in [
        "aof_enabled:1",
        "aof_rewrite_in_progress:0",
        "aof_rewrite_scheduled:0",
        "aof_last_rewrite_time_sec:-1",
        "aof_current_rewrite_time_sec:-1",
        "aof_last_bgrewrite_status:ok",
        "aof_rewrites:0",
        "aof_rewrites_consecutive_failures:0",
        "aof_last_write_status:ok",
        "aof_last_cow_size:0",
        "module_fork_in_progress:0",
        "module_fork_last_cow_size:0",
        "aof_pending_rewrite:0",
        "aof_buffer_length:0",
        "aof_pending_bio_fsync:0",
        "aof_delayed_fsync:0",
    ] {
        assert!(info.contains(&format!("{f}\r\n")), "{f} in {info}");
    }
    assert_eq!(
        info_str(&mut c, "aof_current_size"),
        Some(incr.len().to_string())
    );
    assert_eq!(info_str(&mut c, "aof_base_size"), Some("0".into()));
}

#[test]
fn layout_matches_reference() {
    let Some(refbin) = common::reference_binary() else {
        return;
    };
    let ours = TempDir::new("lay-ours");
    let theirs = TempDir::new("lay-ref");
    let mut listings = Vec::new();
    for (bin, dir) in [(Path::new(BIN), &ours), (refbin.as_path(), &theirs)] {
        let s = try_start(bin, &dir.0, &["--appendonly", "yes"], false)
            .unwrap_or_else(|l| panic!("{l}"));
        let mut c = s.conn();
        let at_start = names(&dir.0.join("appendonlydir"));
        let m1 = std::fs::read_to_string(dir.aof("appendonly.aof.manifest")).expect("m");
        c.call(&["RPUSH", "l", "a"]);
        assert_eq!(
            c.call(&["BGREWRITEAOF"]),
            b"+Background append only file rewriting started\r\n"
        );
        wait_rewrite_done(&mut c);
        // History files are unlinked in the background.
        let ad = dir.0.join("appendonlydir");
        wait_for(Duration::from_secs(5), || names(&ad).len() == 3);
        let after = names(&ad);
        let m2 = std::fs::read_to_string(dir.aof("appendonly.aof.manifest")).expect("m");
        listings.push((at_start, m1, after, m2));
        s.shutdown();
    }
    assert_eq!(listings[0], listings[1]);
    assert_eq!(
        listings[0].2,
        [
            "appendonly.aof.2.base.rdb",
            "appendonly.aof.2.incr.aof",
            "appendonly.aof.manifest"
        ]
    );
}

#[test]
fn restart_keeps_data_shutdown_and_sigkill() {
    let dir = TempDir::new("restart");
    // everysec + SHUTDOWN: flushed and fsynced at exit.
    let s = start(&dir.0, &["--appendonly", "yes"]);
    let mut c = s.conn();
    populate(&mut c, "a");
    let d1 = digest(&mut c);
    s.shutdown();
    // always + SIGKILL: every acknowledged write is there.
    let s = start(&dir.0, &["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = s.conn();
    assert_eq!(digest(&mut c), d1, "log:\n{}", s.log_text());
    populate(&mut c, "b");
    for _ in 0..500 {
        c.call(&["INCR", "n"]);
    }
    let d2 = digest(&mut c);
    s.sigkill();
    let s = start(&dir.0, &["--appendonly", "yes"]);
    let mut c = s.conn();
    assert_eq!(digest(&mut c), d2, "log:\n{}", s.log_text());
    assert_eq!(c.call(&["GET", "n"]), b"$3\r\n500\r\n");
    // DEBUG LOADAOF empties the dataset and replays the files.
    c.call(&["INCR", "n"]);
    c.call(&["RPUSH", "extra", "x"]);
    let d3 = digest(&mut c);
    assert_eq!(c.call(&["DEBUG", "LOADAOF"]), b"+OK\r\n");
    assert_eq!(digest(&mut c), d3);
    assert_eq!(c.call(&["TYPE", "a:stream"]), b"+stream\r\n");
    assert_eq!(
        c.call(&["OBJECT", "ENCODING", "a:bighash"]),
        b"$9\r\nhashtable\r\n"
    );
}

#[test]
fn bgrewriteaof_then_restart() {
    let dir = TempDir::new("rewrite");
    let s = start(&dir.0, &["--appendonly", "yes"]);
    let mut c = s.conn();
    populate(&mut c, "a");
    // A slow child: the replies while it runs.
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "100000"]);
    assert_eq!(
        c.call(&["BGREWRITEAOF"]),
        b"+Background append only file rewriting started\r\n"
    );
    assert_eq!(
        c.call(&["BGREWRITEAOF"]),
        b"-ERR Background append only file rewriting already in progress\r\n"
    );
    assert!(c
        .call(&["BGSAVE"])
        .starts_with(b"-ERR Another child process is active (AOF?)"));
    assert_eq!(
        c.call(&["BGSAVE", "SCHEDULE"]),
        b"+Background saving scheduled\r\n"
    );
    assert_eq!(
        info_str(&mut c, "aof_rewrite_in_progress").as_deref(),
        Some("1")
    );
    // Writes during the rewrite go to the new incremental file.
    populate(&mut c, "b");
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
    wait_rewrite_done(&mut c);
    wait_for(Duration::from_secs(20), || {
        info_field(&c.call(&["INFO", "persistence"]), "rdb_bgsave_in_progress") == Some(0)
    });
    // The killed-by-delay child was not killed: status ok.
    assert_eq!(
        info_str(&mut c, "aof_last_bgrewrite_status").as_deref(),
        Some("ok")
    );
    assert_eq!(info_str(&mut c, "aof_rewrites").as_deref(), Some("1"));
    let m = std::fs::read_to_string(dir.aof("appendonly.aof.manifest")).expect("m");
    assert_eq!(
        m,
        "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    assert!(
        !dir.aof("appendonly.aof.1.incr.aof").exists() || {
            std::thread::sleep(Duration::from_millis(200));
            !dir.aof("appendonly.aof.1.incr.aof").exists()
        }
    );
    populate(&mut c, "c");
    let d = digest(&mut c);
    s.sigkill();
    let s = start(&dir.0, &["--appendonly", "yes"]);
    let mut c = s.conn();
    assert_eq!(digest(&mut c), d, "log:\n{}", s.log_text());
    // No temp files left behind.
    assert!(names(&dir.0).iter().all(|n| !n.starts_with("temp-")));
}

#[test]
fn config_set_appendonly_at_runtime() {
    let dir = TempDir::new("cfgset");
    let s = start(&dir.0, &["--appendonly", "no"]);
    let mut c = s.conn();
    assert_eq!(info_str(&mut c, "aof_enabled").as_deref(), Some("0"));
    assert_eq!(info_str(&mut c, "aof_current_size"), None);
    populate(&mut c, "a");
    assert_eq!(c.call(&["CONFIG", "SET", "appendonly", "yes"]), b"+OK\r\n");
    populate(&mut c, "b");
    wait_rewrite_done(&mut c);
    assert_eq!(info_str(&mut c, "aof_enabled").as_deref(), Some("1"));
    populate(&mut c, "c");
    let d = digest(&mut c);
    // SHUTDOWN with AOF on and no save points: the AOF alone holds the data.
    s.shutdown();
    assert!(!dir.0.join("dump.rdb").exists());
    let s = start(&dir.0, &["--appendonly", "yes"]);
    let mut c = s.conn();
    assert_eq!(digest(&mut c), d, "log:\n{}", s.log_text());
    // Turning it off stops appending.
    assert_eq!(c.call(&["CONFIG", "SET", "appendonly", "no"]), b"+OK\r\n");
    let before = std::fs::metadata(dir.aof("appendonly.aof.2.incr.aof"))
        .map(|m| m.len())
        .unwrap_or(0);
    c.call(&["RPUSH", "after", "x"]);
    let after = std::fs::metadata(dir.aof("appendonly.aof.2.incr.aof"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(before, after);
    assert_eq!(info_str(&mut c, "aof_enabled").as_deref(), Some("0"));
}

#[test]
fn truncated_last_command_and_corruption() {
    let dir = TempDir::new("trunc");
    let s = start(&dir.0, &["--appendonly", "yes"]);
    let mut c = s.conn();
    c.call(&["RPUSH", "l", "a", "b"]);
    c.call(&["INCR", "n"]);
    s.shutdown();
    let incr = dir.aof("appendonly.aof.1.incr.aof");
    let good = std::fs::read(&incr).expect("incr");
    let mut cut = good.clone();
    cut.extend_from_slice(b"*3\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n$3\r\nxy");
    // aof-load-truncated no: refuses, naming the file.
    std::fs::write(&incr, &cut).expect("write");
    let mut p = try_start(
        Path::new(BIN),
        &dir.0,
        &["--appendonly", "yes", "--aof-load-truncated", "no"],
        false,
    )
    .err()
    .expect("must refuse");
    assert!(
        p.contains("Unexpected end of file reading the append only file appendonly.aof.1.incr.aof"),
        "{p}"
    );
    p.clear();
    // yes: loads, truncating at the last complete command.
    let s = start(
        &dir.0,
        &["--appendonly", "yes", "--aof-load-truncated", "yes"],
    );
    let log = s.log_text();
    assert!(
        log.contains(
            "!!! Warning: short read while loading the AOF file appendonly.aof.1.incr.aof!!!"
        ),
        "{log}"
    );
    assert!(log.contains(&format!(
        "!!! Truncating the AOF appendonly.aof.1.incr.aof at offset {} !!!",
        good.len()
    )));
    assert!(log.contains(
        "AOF appendonly.aof.1.incr.aof loaded anyway because aof-load-truncated is enabled"
    ));
    let mut c = s.conn();
    assert_eq!(
        c.call(&["LRANGE", "l", "0", "-1"]),
        b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
    assert_eq!(c.call(&["GET", "n"]), b"$1\r\n1\r\n");
    // The file was cut back and is appended to after the cut.
    c.call(&["INCR", "n"]);
    s.shutdown();
    let now = std::fs::read(&incr).expect("incr");
    assert_eq!(&now[..good.len()], &good[..]);
    assert!(now[good.len()..].starts_with(b"*2\r\n$6\r\nSELECT"));
    // Garbage in the middle: refused whatever aof-load-truncated says.
    let mut bad = good[..20].to_vec();
    bad.extend_from_slice(b"garbage\r\n");
    bad.extend_from_slice(&good[20..]);
    std::fs::write(&incr, &bad).expect("write");
    let mut proc_ = try_start(Path::new(BIN), &dir.0, &["--appendonly", "yes"], false);
    let log = match &mut proc_ {
        Ok(p) => {
            let code = p.wait_exit(Duration::from_secs(5));
            panic!("started on a corrupt AOF ({code:?}): {}", p.log_text());
        }
        Err(l) => l.clone(),
    };
    assert!(
        log.contains("Bad file format reading the append only file appendonly.aof.1.incr.aof"),
        "{log}"
    );
}

#[test]
fn old_single_file_is_upgraded() {
    let dir = TempDir::new("upgrade");
    std::fs::write(
        dir.0.join("appendonly.aof"),
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n$1\r\nz\r\n",
    )
    .expect("write");
    let s = start(&dir.0, &["--appendonly", "yes"]);
    let mut c = s.conn();
    assert_eq!(c.call(&["LRANGE", "l", "0", "-1"]), b"*1\r\n$1\r\nz\r\n");
    assert!(!dir.0.join("appendonly.aof").exists());
    assert!(dir.aof("appendonly.aof").exists());
    let m = std::fs::read_to_string(dir.aof("appendonly.aof.manifest")).expect("m");
    assert_eq!(
        m,
        "file appendonly.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    assert!(s
        .log_text()
        .contains("Successfully migrated an old-style AOF file (appendonly.aof) into the AOF directory (appendonlydir)."));
}

#[test]
fn rewrite_as_commands_without_rdb_preamble() {
    let dir = TempDir::new("nopreamble");
    let s = start(
        &dir.0,
        &["--appendonly", "yes", "--aof-use-rdb-preamble", "no"],
    );
    let mut c = s.conn();
    // A fresh start without the preamble: an empty AOF base.
    assert_eq!(
        std::fs::metadata(dir.aof("appendonly.aof.1.base.aof"))
            .expect("base")
            .len(),
        0
    );
    populate(&mut c, "a");
    for i in 0..150 {
        c.call(&["ZADD", "a:bigzset", &format!("{i}.25"), &format!("z{i}")]);
    }
    c.call(&["XGROUP", "CREATE", "a:stream", "g1", "0"]);
    c.call(&["XGROUP", "CREATECONSUMER", "a:stream", "g1", "idle"]);
    c.call(&["XADD", "a:stream", "2-1", "f2", "v2"]);
    c.call(&["XADD", "a:empty", "5-5", "f", "v"]);
    c.call(&["XDEL", "a:empty", "5-5"]);
    c.call(&["HSET", "a:bighash", "ttlfield", "x"]);
    c.call(&[
        "HPEXPIREAT",
        "a:bighash",
        "99999999999999",
        "FIELDS",
        "1",
        "ttlfield",
    ]);
    assert_eq!(
        c.call(&["BGREWRITEAOF"]),
        b"+Background append only file rewriting started\r\n"
    );
    wait_rewrite_done(&mut c);
    assert_eq!(
        info_str(&mut c, "aof_last_bgrewrite_status").as_deref(),
        Some("ok")
    );
    let base = std::fs::read(dir.aof("appendonly.aof.2.base.aof")).expect("base");
    assert!(base.starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n"));
    // Field TTLs as the reference writes them.
    let ttl_cmd: &[u8] = b"*8\r\n$6\r\nHSETEX\r\n$9\r\na:bighash\r\n$4\r\nPXAT\r\n$14\r\n99999999999999\r\n$6\r\nFIELDS\r\n$1\r\n1\r\n$8\r\nttlfield\r\n$1\r\nx\r\n";
    assert!(base.windows(ttl_cmd.len()).any(|w| w == ttl_cmd));
    let d = digest(&mut c);
    s.sigkill();
    let s = start(&dir.0, &["--appendonly", "yes"]);
    let mut c = s.conn();
    assert_eq!(digest(&mut c), d, "log:\n{}", s.log_text());
    assert_eq!(c.call(&["XLEN", "a:empty"]), b":0\r\n");
    assert!(c
        .call(&["HPEXPIRETIME", "a:bighash", "FIELDS", "1", "ttlfield"])
        .ends_with(b":99999999999999\r\n"));
}

#[test]
fn automatic_rewrite_and_scheduling_with_bgsave() {
    let dir = TempDir::new("auto");
    let s = start(
        &dir.0,
        &[
            "--appendonly",
            "yes",
            "--auto-aof-rewrite-min-size",
            "4096",
            "--auto-aof-rewrite-percentage",
            "100",
        ],
    );
    let mut c = s.conn();
    for i in 0..100 {
        c.call(&["RPUSH", "l", &format!("element-{i:040}")]);
    }
    let ok = wait_for(Duration::from_secs(10), || {
        info_str(&mut c, "aof_rewrites").as_deref() == Some("1")
    });
    assert!(ok, "no automatic rewrite; log:\n{}", s.log_text());
    wait_rewrite_done(&mut c);
    assert!(s
        .log_text()
        .contains("Starting automatic rewriting of AOF on"));
    // BGREWRITEAOF while a BGSAVE runs is scheduled, and runs after it.
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "300000"]);
    assert_eq!(c.call(&["BGSAVE"]), b"+Background saving started\r\n");
    assert_eq!(
        c.call(&["BGREWRITEAOF"]),
        b"+Background append only file rewriting scheduled\r\n"
    );
    assert_eq!(
        info_str(&mut c, "aof_rewrite_scheduled").as_deref(),
        Some("1")
    );
    assert_eq!(
        info_str(&mut c, "aof_pending_rewrite").as_deref(),
        Some("1")
    );
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
    wait_rewrite_done(&mut c);
    assert_eq!(info_str(&mut c, "aof_rewrites").as_deref(), Some("2"));
    let d = digest(&mut c);
    s.sigkill();
    let s = start(&dir.0, &["--appendonly", "yes"]);
    let mut c = s.conn();
    assert_eq!(digest(&mut c), d);
}

#[test]
fn timestamp_annotations() {
    let dir = TempDir::new("ts");
    let s = start(
        &dir.0,
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--aof-timestamp-enabled",
            "yes",
        ],
    );
    let mut c = s.conn();
    c.call(&["RPUSH", "l", "a"]);
    c.call(&["RPUSH", "l", "b"]);
    std::thread::sleep(Duration::from_millis(1100));
    c.call(&["RPUSH", "l", "c"]);
    let incr = std::fs::read(dir.aof("appendonly.aof.1.incr.aof")).expect("incr");
    let text = String::from_utf8_lossy(&incr).into_owned();
    assert!(text.starts_with("#TS:"), "{text:?}");
    assert_eq!(text.matches("#TS:").count(), 2, "{text:?}");
    let ts: i64 = text[4..text.find('\r').expect("line")]
        .parse()
        .expect("unix time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!((now - 5..=now).contains(&ts));
    s.sigkill();
    let s = start(&dir.0, &["--appendonly", "yes"]);
    let mut c = s.conn();
    assert_eq!(
        c.call(&["LRANGE", "l", "0", "-1"]),
        b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
    );
    let info = String::from_utf8_lossy(&c.call(&["INFO", "memory"])).into_owned();
    assert!(info.contains("mem_aof_buffer:"));
}

#[test]
fn bad_manifest_stops_startup() {
    let dir = TempDir::new("badmanifest");
    std::fs::create_dir(dir.0.join("appendonlydir")).expect("mkdir");
    std::fs::write(
        dir.aof("appendonly.aof.manifest"),
        "file appendonly.aof.1.base.rdb seq 1\n",
    )
    .expect("write");
    let log = try_start(Path::new(BIN), &dir.0, &["--appendonly", "yes"], false)
        .err()
        .expect("must refuse");
    assert!(
        log.contains("*** FATAL AOF MANIFEST FILE ERROR ***"),
        "{log}"
    );
    assert!(
        log.contains("Reading the manifest file, at line 1"),
        "{log}"
    );
    assert!(log.contains("Invalid AOF manifest file format"), "{log}");
    // A manifest naming a missing file stops it too.
    std::fs::write(
        dir.aof("appendonly.aof.manifest"),
        "file appendonly.aof.1.base.rdb seq 1 type b\n",
    )
    .expect("write");
    let log = try_start(Path::new(BIN), &dir.0, &["--appendonly", "yes"], false)
        .err()
        .expect("must refuse");
    assert!(
        log.contains("Unable to obtain the AOF file appendonly.aof.1.base.rdb length"),
        "{log}"
    );
}
