//! RDB persistence end to end with the real binary: SAVE / BGSAVE / SHUTDOWN / SIGTERM
//! write `dump.rdb` (mode 0600 whatever the umask), a restart on the same directory
//! loads it back, a killed BGSAVE child leaves the old file intact, a failed BGSAVE
//! turns writes into -MISCONF, and a truncated file stops the start-up with the file
//! name and offset in the log.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::proc::{file_mode, Proc, TempDir, BIN};
use common::{info_field, wait_for, Conn};

fn info_text(c: &mut Conn, section: &str) -> String {
    String::from_utf8_lossy(&c.call(&["INFO", section])).into_owned()
}

fn info_str(c: &mut Conn, section: &str, field: &str) -> String {
    let t = info_text(c, section);
    let prefix = format!("{field}:");
    t.split("\r\n")
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_default()
        .to_string()
}

fn wait_bgsave_done(c: &mut Conn) {
    let ok = wait_for(Duration::from_secs(10), || {
        info_field(&c.call(&["INFO", "persistence"]), "rdb_bgsave_in_progress") == Some(0)
    });
    assert!(ok, "bgsave still running");
}

/// Fills several dbs with every type, some keys with a TTL.
fn populate(c: &mut Conn) {
    let ok = b"+OK\r\n".to_vec();
    assert_eq!(c.call(&["SET", "str", "hello"]), ok);
    assert_eq!(c.call(&["SET", "int", "12345"]), ok);
    assert_eq!(c.call(&["SET", "long", &"x".repeat(300)]), ok);
    assert_eq!(c.call(&["SET", "ttl", "v", "EX", "1000"]), ok);
    c.call(&["RPUSH", "list", "a", "b", "1", "2"]);
    c.call(&["HSET", "hash", "f1", "v1", "f2", "2"]);
    c.call(&["SADD", "intset", "1", "2", "3"]);
    c.call(&["SADD", "set", "a", "b", "c"]);
    c.call(&["ZADD", "zset", "1.5", "a", "2", "b"]);
    c.call(&["XADD", "stream", "1-1", "f", "v"]);
    for i in 0..200 {
        c.call(&["SADD", "bigset", &format!("member:{i}")]);
        c.call(&["RPUSH", "biglist", &format!("{i}")]);
    }
    c.call(&["SELECT", "3"]);
    c.call(&["SET", "db3key", "three"]);
    c.call(&["PEXPIRE", "db3key", "5000000"]);
    c.call(&["SELECT", "0"]);
}

/// Reads back what [`populate`] wrote (replies compared byte for byte).
fn snapshot(c: &mut Conn) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for cmd in [
        vec!["GET", "str"],
        vec!["GET", "int"],
        vec!["GET", "long"],
        vec!["GET", "ttl"],
        vec!["LRANGE", "list", "0", "-1"],
        vec!["HGETALL", "hash"],
        vec!["SORT", "intset"],
        vec!["SORT", "set", "ALPHA"],
        vec!["ZRANGE", "zset", "0", "-1", "WITHSCORES"],
        vec!["XRANGE", "stream", "-", "+"],
        vec!["SCARD", "bigset"],
        vec!["LRANGE", "biglist", "0", "-1"],
        vec!["OBJECT", "ENCODING", "intset"],
        vec!["OBJECT", "ENCODING", "bigset"],
        vec!["DBSIZE"],
    ] {
        out.push(c.call(&cmd));
    }
    let t = String::from_utf8_lossy(&c.call(&["TTL", "ttl"])).into_owned();
    let t: i64 = t.trim_start_matches(':').trim().parse().unwrap_or(-3);
    assert!((990..=1000).contains(&t), "ttl lost: {t}");
    c.call(&["SELECT", "3"]);
    out.push(c.call(&["GET", "db3key"]));
    let t = String::from_utf8_lossy(&c.call(&["PTTL", "db3key"])).into_owned();
    let t: i64 = t.trim_start_matches(':').trim().parse().unwrap_or(-3);
    assert!(t > 4_000_000, "db3 ttl lost: {t}");
    c.call(&["SELECT", "0"]);
    out
}

#[test]
fn save_then_restart_keeps_everything() {
    let dir = TempDir::new("save");
    let before = {
        let s = Proc::start(&dir.0, &["--save", ""]);
        let mut c = s.conn();
        populate(&mut c);
        let mut snap = snapshot(&mut c);
        snap.push(c.call(&["DEBUG", "DIGEST"]));
        assert_eq!(c.call(&["SAVE"]), b"+OK\r\n");
        let info = c.call(&["INFO", "persistence"]);
        assert_eq!(info_field(&info, "rdb_changes_since_last_save"), Some(0));
        assert_eq!(info_field(&info, "rdb_saves"), Some(1));
        let last = String::from_utf8_lossy(&c.call(&["LASTSAVE"])).into_owned();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let last: i64 = last.trim_start_matches(':').trim().parse().unwrap_or(0);
        assert!((now - last).abs() <= 2, "LASTSAVE {last} vs now {now}");
        snap
    };
    assert_eq!(file_mode(&dir.file("dump.rdb")), 0o600);
    let s = Proc::start(&dir.0, &["--save", ""]);
    let mut c = s.conn();
    let mut after = snapshot(&mut c);
    after.push(c.call(&["DEBUG", "DIGEST"]));
    assert_eq!(after, before);
    let info = c.call(&["INFO", "persistence"]);
    assert_eq!(info_field(&info, "rdb_last_load_keys_loaded"), Some(13));
    assert_eq!(info_field(&info, "loading"), Some(0));
    assert!(s.log_text().contains("Done loading RDB, keys loaded: 13"));
    // DEBUG RELOAD round-trips too.
    assert_eq!(c.call(&["DEBUG", "RELOAD"]), b"+OK\r\n");
    let mut again = snapshot(&mut c);
    again.push(c.call(&["DEBUG", "DIGEST"]));
    assert_eq!(again, before);
}

#[test]
fn bgsave_with_permissive_umask_writes_0600() {
    let dir = TempDir::new("bgsave");
    let s = Proc::try_start(Path::new(BIN), &dir.0, &["--save", ""], true).expect("start");
    let mut c = s.conn();
    populate(&mut c);
    // The child sleeps 20 ms per key: the temp file exists for a while.
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "20000"]);
    let t = std::time::Instant::now();
    assert_eq!(c.call(&["BGSAVE"]), b"+Background saving started\r\n");
    assert!(t.elapsed() < Duration::from_millis(200), "BGSAVE blocked");
    assert_eq!(c.call(&["PING"]), b"+PONG\r\n");
    assert_eq!(
        c.call(&["BGSAVE"]),
        b"-ERR Background save already in progress\r\n"
    );
    assert_eq!(
        c.call(&["SAVE"]),
        b"-ERR Background save already in progress\r\n"
    );
    let info = c.call(&["INFO", "persistence"]);
    assert_eq!(info_field(&info, "rdb_bgsave_in_progress"), Some(1));
    let temp = wait_for(Duration::from_secs(5), || {
        std::fs::read_dir(&dir.0).unwrap().flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("temp-") && n.ends_with(".rdb") && file_mode(&e.path()) == 0o600
        })
    });
    assert!(temp, "no 0600 temp file seen");
    wait_bgsave_done(&mut c);
    assert_eq!(
        info_str(&mut c, "persistence", "rdb_last_bgsave_status"),
        "ok"
    );
    assert_eq!(file_mode(&dir.file("dump.rdb")), 0o600);
    let stats = c.call(&["INFO", "stats"]);
    assert_eq!(info_field(&stats, "total_forks"), Some(1));
    assert!(info_field(&stats, "latest_fork_usec").unwrap_or(0) > 0);
    assert!(s
        .log_text()
        .contains("Background saving terminated with success"));
}

/// The pid of the server's BGSAVE child, from /proc.
fn child_of(pid: i32) -> Option<i32> {
    let t = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    t.split_whitespace().next()?.parse().ok()
}

#[test]
fn killed_child_leaves_old_dump_intact() {
    let dir = TempDir::new("kill");
    let s = Proc::start(&dir.0, &["--save", ""]);
    let mut c = s.conn();
    c.call(&["SET", "a", "1"]);
    assert_eq!(c.call(&["SAVE"]), b"+OK\r\n");
    let old = std::fs::read(dir.file("dump.rdb")).expect("dump");
    populate(&mut c);
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "100000"]);
    assert_eq!(c.call(&["BGSAVE"]), b"+Background saving started\r\n");
    let mut child = None;
    assert!(wait_for(Duration::from_secs(5), || {
        child = child_of(s.pid());
        child.is_some()
    }));
    let child = child.unwrap();
    // Let it write a little first.
    std::thread::sleep(Duration::from_millis(150));
    unsafe_kill(child);
    wait_bgsave_done(&mut c);
    assert_eq!(
        info_str(&mut c, "persistence", "rdb_last_bgsave_status"),
        "err"
    );
    assert_eq!(std::fs::read(dir.file("dump.rdb")).unwrap(), old);
    assert!(!dir.file(&format!("temp-{child}.rdb")).exists());
    assert!(s
        .log_text()
        .contains("Background saving terminated by signal 9"));
}

fn unsafe_kill(pid: i32) {
    let st = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

#[test]
fn failed_bgsave_turns_writes_into_misconf() {
    let dir = TempDir::new("misconf");
    let s = Proc::start(&dir.0, &["--save", "3600 1000"]);
    let mut c = s.conn();
    c.call(&["SET", "a", "1"]);
    // A directory that disappears: even root can not create the temp file there.
    let gone = dir.file("gone");
    std::fs::create_dir(&gone).unwrap();
    assert_eq!(
        c.call(&["CONFIG", "SET", "dir", &gone.to_string_lossy()]),
        b"+OK\r\n"
    );
    std::fs::remove_dir(&gone).unwrap();
    assert_eq!(c.call(&["BGSAVE"]), b"+Background saving started\r\n");
    wait_bgsave_done(&mut c);
    assert_eq!(
        info_str(&mut c, "persistence", "rdb_last_bgsave_status"),
        "err"
    );
    let misconf = b"-MISCONF Valkey is configured to save RDB snapshots, but it's currently \
unable to persist to disk. Commands that may modify the data set are disabled, because this \
instance is configured to report errors during writes if RDB snapshotting fails \
(stop-writes-on-bgsave-error option). Please check the Valkey logs for details about the RDB \
error.\r\n";
    assert_eq!(c.call(&["SET", "a", "2"]), misconf.to_vec());
    assert_eq!(c.call(&["PING"]), misconf.to_vec());
    assert_eq!(c.call(&["GET", "a"]), b"$1\r\n1\r\n");
    assert_eq!(c.call(&["SAVE"]), b"-ERR\r\n");
    assert!(s
        .log_text()
        .contains("Failed opening the temp RDB file temp-"));
    // SHUTDOWN can not save: refused, unless FORCE... or NOSAVE.
    assert_eq!(
        c.call(&["SHUTDOWN"]),
        b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n"
    );
    c.call(&["CONFIG", "SET", "stop-writes-on-bgsave-error", "no"]);
    assert_eq!(c.call(&["SET", "a", "2"]), b"+OK\r\n");
}

#[test]
fn shutdown_and_sigterm_save() {
    let dir = TempDir::new("shutdown");
    {
        let mut s = Proc::start(&dir.0, &["--save", "3600 1"]);
        let mut c = s.conn();
        c.call(&["SET", "k", "by-shutdown"]);
        let _ = c.cmd(&["SHUTDOWN"]);
        assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
        assert!(s
            .log_text()
            .contains("Saving the final RDB snapshot before exiting."));
    }
    {
        let mut s = Proc::start(&dir.0, &["--save", "3600 1"]);
        let mut c = s.conn();
        assert_eq!(c.call(&["GET", "k"]), b"$11\r\nby-shutdown\r\n");
        c.call(&["SET", "k", "by-sigterm"]);
        let st = Command::new("kill")
            .args(["-TERM", &s.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    }
    {
        let mut s = Proc::start(&dir.0, &["--save", ""]);
        let mut c = s.conn();
        assert_eq!(c.call(&["GET", "k"]), b"$10\r\nby-sigterm\r\n");
        // No save points: SHUTDOWN does not save, SHUTDOWN SAVE does.
        c.call(&["SET", "k", "unsaved"]);
        let _ = c.cmd(&["SHUTDOWN", "SAVE"]);
        assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    }
    let s = Proc::start(&dir.0, &["--save", ""]);
    assert_eq!(s.conn().call(&["GET", "k"]), b"$7\r\nunsaved\r\n");
}

#[test]
fn truncated_dump_stops_startup() {
    let dir = TempDir::new("trunc");
    {
        let s = Proc::start(&dir.0, &["--save", ""]);
        let mut c = s.conn();
        populate(&mut c);
        assert_eq!(c.call(&["SAVE"]), b"+OK\r\n");
    }
    let full = std::fs::read(dir.file("dump.rdb")).unwrap();
    std::fs::write(dir.file("dump.rdb"), &full[..full.len() / 2]).unwrap();
    let log = match Proc::try_start(Path::new(BIN), &dir.0, &["--save", ""], false) {
        Ok(_) => panic!("started on a truncated file"),
        Err(log) => log,
    };
    assert!(
        log.contains("Short read or OOM loading DB. Unrecoverable error, aborting now."),
        "{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("dump.rdb") && l.contains("offset"))
        .unwrap_or_else(|| panic!("no line naming the file and offset:\n{log}"));
    assert!(line.contains("offset"), "{line}");
}

#[test]
fn save_point_triggers_bgsave() {
    let dir = TempDir::new("savepoint");
    let s = Proc::start(&dir.0, &["--save", "1 2"]);
    let mut c = s.conn();
    c.call(&["SET", "a", "1"]);
    c.call(&["SET", "b", "2"]);
    let saved = wait_for(Duration::from_secs(6), || dir.file("dump.rdb").exists());
    assert!(saved, "no save point save; log:\n{}", s.log_text());
    wait_bgsave_done(&mut c);
    assert!(s.log_text().contains("2 changes in 1 seconds. Saving..."));
    let info = c.call(&["INFO", "persistence"]);
    assert_eq!(info_field(&info, "rdb_changes_since_last_save"), Some(0));
    assert_eq!(info_field(&info, "rdb_saves"), Some(1));
}

#[test]
fn bgsave_schedule_cancel_and_reload_options() {
    let dir = TempDir::new("sched");
    let s = Proc::start(&dir.0, &["--save", ""]);
    let mut c = s.conn();
    assert_eq!(
        c.call(&["BGSAVE", "CANCEL"]),
        b"-ERR Background saving is currently not in progress or scheduled\r\n"
    );
    assert_eq!(c.call(&["BGSAVE", "FOO"]), b"-ERR syntax error\r\n");
    // Inside a transaction the save is scheduled, then cron starts it.
    c.call(&["MULTI"]);
    c.call(&["BGSAVE"]);
    assert_eq!(c.call(&["EXEC"]), b"*1\r\n+Background saving scheduled\r\n");
    assert!(wait_for(Duration::from_secs(5), || dir
        .file("dump.rdb")
        .exists()));
    wait_bgsave_done(&mut c);
    // A slow save cancelled: no error status.
    c.call(&["SET", "k", "v"]);
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "1000000"]);
    assert_eq!(c.call(&["BGSAVE"]), b"+Background saving started\r\n");
    assert_eq!(
        c.call(&["BGSAVE", "CANCEL"]),
        b"+Background saving cancelled\r\n"
    );
    wait_bgsave_done(&mut c);
    assert_eq!(
        info_str(&mut c, "persistence", "rdb_last_bgsave_status"),
        "ok"
    );
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
    // DEBUG RELOAD: options, NOSAVE reloads the file as it is, MERGE NOFLUSH keeps
    // keys the file does not have.
    assert_eq!(
        c.call(&["DEBUG", "RELOAD", "BAD"]),
        b"-ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.\r\n"
    );
    assert_eq!(c.call(&["DEBUG", "RELOAD"]), b"+OK\r\n");
    c.call(&["SET", "extra", "1"]);
    assert_eq!(c.call(&["DEBUG", "RELOAD", "NOSAVE"]), b"+OK\r\n");
    assert_eq!(c.call(&["EXISTS", "extra"]), b":0\r\n");
    c.call(&["SET", "extra", "1"]);
    assert_eq!(
        c.call(&["DEBUG", "RELOAD", "NOSAVE", "NOFLUSH", "MERGE"]),
        b"+OK\r\n"
    );
    assert_eq!(c.call(&["EXISTS", "extra", "k"]), b":2\r\n");
    std::fs::remove_file(dir.file("dump.rdb")).unwrap();
    assert_eq!(
        c.call(&["DEBUG", "RELOAD", "NOSAVE"]),
        b"-ERR Error trying to load the RDB dump, check server logs.\r\n"
    );
}

#[test]
fn sigint_follows_shutdown_on_sigint() {
    let dir = TempDir::new("sigint");
    let mut s = Proc::start(
        &dir.0,
        &["--save", "3600 1", "--shutdown-on-sigint", "nosave"],
    );
    s.conn().call(&["SET", "k", "v"]);
    let st = Command::new("kill")
        .args(["-INT", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(s
        .log_text()
        .contains("Received SIGINT scheduling shutdown..."));
    assert!(!dir.file("dump.rdb").exists(), "nosave saved");
}

#[test]
fn shutdown_kills_running_child() {
    let dir = TempDir::new("shutchild");
    let mut s = Proc::start(&dir.0, &["--save", ""]);
    let mut c = s.conn();
    c.call(&["SET", "k", "v"]);
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "5000000"]);
    assert_eq!(c.call(&["BGSAVE"]), b"+Background saving started\r\n");
    // The child has its own copy of the config: the final save is not slowed down.
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
    let temps = || {
        std::fs::read_dir(&dir.0)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("temp-"))
            .count()
    };
    assert!(wait_for(Duration::from_secs(5), || temps() == 1));
    let _ = c.cmd(&["SHUTDOWN", "SAVE"]);
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(s
        .log_text()
        .contains("There is a child saving an .rdb. Killing it!"));
    assert_eq!(temps(), 0);
    let s = Proc::start(&dir.0, &["--save", ""]);
    assert_eq!(s.conn().call(&["GET", "k"]), b"$1\r\nv\r\n");
}

#[test]
fn child_reports_progress() {
    let dir = TempDir::new("progress");
    let s = Proc::start(&dir.0, &["--save", ""]);
    let mut c = s.conn();
    c.call(&["DEBUG", "POPULATE", "4096"]);
    // ~2 s of saving: the child reports about once a second.
    c.call(&["CONFIG", "SET", "rdb-key-save-delay", "500"]);
    assert_eq!(c.call(&["BGSAVE"]), b"+Background saving started\r\n");
    let info = c.call(&["INFO", "persistence"]);
    assert_eq!(info_field(&info, "current_save_keys_total"), Some(4096));
    let seen = wait_for(Duration::from_secs(5), || {
        let i = c.call(&["INFO", "persistence"]);
        info_field(&i, "current_save_keys_processed").unwrap_or(0) > 0
    });
    assert!(seen, "no progress reported");
    let t = info_text(&mut c, "persistence");
    assert!(!t.contains("current_fork_perc:0.00"), "{t}");
    wait_bgsave_done(&mut c);
    let info = c.call(&["INFO", "persistence"]);
    assert_eq!(info_field(&info, "current_save_keys_total"), Some(0));
    assert_eq!(info_field(&info, "current_save_keys_processed"), Some(0));
    assert!(info_field(&info, "rdb_last_cow_size").is_some());
}
