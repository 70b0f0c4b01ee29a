//! Serving clients while the main thread is blocked (src/busy.rs): -LOADING and the INFO
//! loading fields while a dataset loads (start-up RDB and AOF, DEBUG RELOAD, a replica's
//! full sync), -BUSY while a script runs past `busy-reply-threshold` (driven by our test
//! subcommand DEBUG RS-BUSY until EVAL exists). Loading scenarios run against the
//! reference too; loading is slowed with upstream's hidden `key-load-delay`.

mod common;

use std::time::{Duration, Instant};

use common::*;

const KEYS: usize = 20_000;
/// µs per key: with the sleep granularity of the machine a few seconds for KEYS.
const DELAY: &str = "100";
const LOADING: &[u8] = b"-LOADING Valkey is loading the dataset in memory\r\n";
const BUSY_EVAL: &[u8] =
    b"-BUSY Valkey is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n";
const BUSY_FUNCTION: &[u8] =
    b"-BUSY Valkey is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n";

fn info_text(c: &mut Conn, section: &str) -> String {
    String::from_utf8_lossy(&c.call(&["INFO", section])).into_owned()
}

fn field(text: &str, name: &str) -> Option<String> {
    let p = format!("{}:", name);
    text.split("\r\n")
        .find_map(|l| l.strip_prefix(&p))
        .map(str::to_string)
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Waits until `c` gets -LOADING for GET (the load has begun and clients are served).
fn wait_loading(s: &Server, c: &mut Conn) {
    assert!(
        wait_for(Duration::from_secs(20), || c.call(&["GET", "key:1"])
            == LOADING),
        "{}: never saw -LOADING",
        s.kind.name()
    );
}

/// Waits until INFO says loading:0.
fn wait_loaded(s: &Server, c: &mut Conn) {
    assert!(
        wait_for(Duration::from_secs(60), || {
            field(&info_text(c, "persistence"), "loading").as_deref() == Some("0")
        }),
        "{}: still loading",
        s.kind.name()
    );
}

/// What a client sees while the dataset loads: the `loading`-flagged commands run,
/// the others (PING included) get -LOADING, a transaction with a refused command
/// aborts, and INFO shows sane progress of `total` bytes.
fn check_while_loading(s: &Server, c: &mut Conn, total: Option<u64>) {
    expect(s, &c.call(&["GET", "key:1"]), LOADING);
    expect(s, &c.call(&["PING"]), LOADING);
    expect(s, &c.call(&["DBSIZE"]), LOADING);
    expect(
        s,
        &c.call(&["CONFIG", "GET", "maxmemory"]),
        b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n",
    );
    expect(s, &c.call(&["ECHO", "x"]), b"$1\r\nx\r\n");
    expect(s, &c.call(&["MULTI"]), b"+OK\r\n");
    expect(s, &c.call(&["GET", "k"]), LOADING);
    expect(
        s,
        &c.call(&["EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    let info = info_text(c, "persistence");
    let name = s.kind.name();
    assert_eq!(
        field(&info, "loading").as_deref(),
        Some("1"),
        "{name}: {info}"
    );
    let num = |f: &str| -> f64 {
        field(&info, f)
            .unwrap_or_else(|| panic!("{name}: no {f} in {info}"))
            .parse()
            .unwrap()
    };
    let start = num("loading_start_time") as i64;
    assert!((now_s() - start).abs() <= 60, "{name}: {info}");
    let tot = num("loading_total_bytes");
    if let Some(t) = total {
        assert_eq!(tot as u64, t, "{name}: {info}");
    }
    let loaded = num("loading_loaded_bytes");
    assert!(loaded > 0.0 && loaded <= tot, "{name}: {info}");
    let perc = num("loading_loaded_perc");
    assert!((perc - loaded * 100.0 / tot).abs() < 0.02, "{name}: {info}");
    assert!(num("loading_rdb_used_mem") > 0.0, "{name}: {info}");
    assert!(num("loading_eta_seconds") >= 0.0, "{name}: {info}");
    // The fields end the section, in upstream's order.
    let keys: Vec<&str> = info
        .split("\r\n")
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .collect();
    assert!(keys.len() > 6, "{name}: {info}");
    assert_eq!(
        &keys[keys.len() - 6..],
        &[
            "loading_start_time",
            "loading_total_bytes",
            "loading_rdb_used_mem",
            "loading_loaded_bytes",
            "loading_loaded_perc",
            "loading_eta_seconds"
        ],
        "{name}: {info}"
    );
}

fn check_loaded(s: &Server, c: &mut Conn) {
    wait_loaded(s, c);
    let info = info_text(c, "persistence");
    assert!(field(&info, "loading_total_bytes").is_none(), "{info}");
    expect(s, &c.call(&["DBSIZE"]), format!(":{}\r\n", KEYS).as_bytes());
    expect(s, &c.call(&["PING"]), b"+PONG\r\n");
    assert!(c.call(&["GET", "key:1"]).starts_with(b"$"));
}

fn populate(c: &mut Conn) {
    let n = KEYS.to_string();
    assert_eq!(c.call(&["DEBUG", "POPULATE", &n, "key", "100"]), b"+OK\r\n");
}

#[test]
fn startup_rdb_load_serves_clients_with_loading() {
    for t in targets() {
        let a = t.start(&[]);
        let mut ca = a.conn();
        populate(&mut ca);
        assert_eq!(ca.call(&["SAVE"]), b"+OK\r\n");
        let size = std::fs::metadata(a.dir.join("dump.rdb")).unwrap().len();
        let _ = ca.cmd(&["SHUTDOWN", "NOSAVE"]);
        // A second server loads the first one's file (its directory outlives it).
        let dir = a.dir.to_string_lossy().into_owned();
        let b = t.start(&[
            "--dir",
            &dir,
            "--key-load-delay",
            DELAY,
            "--loading-process-events-interval-bytes",
            "1024",
        ]);
        let mut c = b.conn();
        wait_loading(&b, &mut c);
        check_while_loading(&b, &mut c, Some(size));
        check_loaded(&b, &mut c);
        drop(a);
    }
}

#[test]
fn startup_aof_load_serves_clients_with_loading() {
    for t in targets() {
        let a = t.start(&["--appendonly", "yes"]);
        let mut ca = a.conn();
        populate(&mut ca);
        // The base becomes an RDB (aof-use-rdb-preamble): key-load-delay applies to it.
        assert!(ca.call(&["BGREWRITEAOF"]).starts_with(b"+"));
        assert!(wait_for(Duration::from_secs(30), || {
            let i = info_text(&mut ca, "persistence");
            field(&i, "aof_rewrite_in_progress").as_deref() == Some("0")
                && field(&i, "aof_rewrite_scheduled").as_deref() == Some("0")
        }));
        assert_eq!(ca.call(&["SET", "after", "1"]), b"+OK\r\n");
        let _ = ca.cmd(&["SHUTDOWN", "NOSAVE"]);
        let dir = a.dir.to_string_lossy().into_owned();
        let b = t.start(&[
            "--dir",
            &dir,
            "--appendonly",
            "yes",
            "--key-load-delay",
            DELAY,
            "--loading-process-events-interval-bytes",
            "1024",
        ]);
        let mut c = b.conn();
        wait_loading(&b, &mut c);
        check_while_loading(&b, &mut c, None);
        wait_loaded(&b, &mut c);
        expect(
            &b,
            &c.call(&["DBSIZE"]),
            format!(":{}\r\n", KEYS + 1).as_bytes(),
        );
        expect(&b, &c.call(&["GET", "after"]), b"$1\r\n1\r\n");
        drop(a);
    }
}

#[test]
fn debug_reload_serves_other_clients_with_loading() {
    for s in servers(&[]) {
        let mut a = s.conn();
        a.set_read_timeout(Duration::from_secs(60));
        populate(&mut a);
        for (k, v) in [
            ("key-load-delay", DELAY),
            ("loading-process-events-interval-bytes", "1024"),
        ] {
            expect(&s, &a.call(&["CONFIG", "SET", k, v]), b"+OK\r\n");
        }
        a.send(&["DEBUG", "RELOAD"]).unwrap();
        let mut c = s.conn();
        wait_loading(&s, &mut c);
        check_while_loading(&s, &mut c, None);
        // The client that asked gets its reply once the load is over.
        expect(&s, &a.read_reply().unwrap(), b"+OK\r\n");
        check_loaded(&s, &mut c);
    }
}

#[test]
fn replica_full_sync_load_serves_clients_with_loading() {
    for t in targets() {
        let p = t.start(&[]);
        let mut cp = p.conn();
        populate(&mut cp);
        let r = t.start(&[
            "--key-load-delay",
            DELAY,
            "--loading-process-events-interval-bytes",
            "1024",
            "--repl-diskless-load",
            "disabled",
        ]);
        let mut c = r.conn();
        let port = p.port.to_string();
        expect(&r, &c.call(&["REPLICAOF", "127.0.0.1", &port]), b"+OK\r\n");
        wait_loading(&r, &mut c);
        check_while_loading(&r, &mut c, None);
        let info = info_text(&mut c, "replication");
        assert_eq!(field(&info, "role").as_deref(), Some("slave"), "{info}");
        check_loaded(&r, &mut c);
        // The stream continues once the load is over.
        expect(&p, &cp.call(&["SET", "later", "1"]), b"+OK\r\n");
        assert!(wait_for(Duration::from_secs(10), || c
            .call(&["GET", "later"])
            == b"$1\r\n1\r\n"));
    }
}

/// Sends DEBUG RS-BUSY on `a` (not read) and waits until `c` sees the busy period.
fn start_busy(s: &Server, a: &mut Conn, c: &mut Conn, ms: &str, kind: &str, err: &[u8]) {
    a.send(&["DEBUG", "RS-BUSY", ms, kind]).unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || c.call(&["GET", "x"]) == err),
        "never saw -BUSY"
    );
    let _ = s;
}

#[test]
fn busy_script_refuses_all_but_allow_busy_commands() {
    let s = Server::ours(&["--busy-reply-threshold", "100"]);
    let mut a = s.conn();
    a.set_read_timeout(Duration::from_secs(30));
    let mut c = s.conn();
    expect(&s, &c.call(&["SET", "x", "1"]), b"+OK\r\n");
    start_busy(&s, &mut a, &mut c, "1500", "EVAL", BUSY_EVAL);
    // PING and INFO are not allow-busy (as upstream).
    expect(&s, &c.call(&["PING"]), BUSY_EVAL);
    expect(&s, &c.call(&["INFO", "server"]), BUSY_EVAL);
    // allow-busy commands run.
    assert!(c.call(&["CLIENT", "ID"]).starts_with(b":"));
    expect(&s, &c.call(&["SELECT", "0"]), b"+OK\r\n");
    expect(&s, &c.call(&["CLIENT", "SETNAME", "n"]), b"+OK\r\n");
    expect(&s, &c.call(&["CLIENT", "GETNAME"]), b"$1\r\nn\r\n");
    // A transaction: MULTI runs, the refused command dirties it.
    expect(&s, &c.call(&["MULTI"]), b"+OK\r\n");
    expect(&s, &c.call(&["GET", "x"]), BUSY_EVAL);
    expect(&s, &c.call(&["DISCARD"]), b"+OK\r\n");
    // SHUTDOWN only with NOSAVE.
    expect(&s, &c.call(&["SHUTDOWN"]), BUSY_EVAL);
    // A connection accepted meanwhile is served too.
    let mut d = s.conn();
    expect(&s, &d.call(&["GET", "x"]), BUSY_EVAL);
    assert!(d.call(&["HELLO", "3"]).starts_with(b"%"));
    // The busy client gets its reply when it is done, and everything runs again.
    expect(&s, &a.read_reply().unwrap(), b"+OK\r\n");
    expect(&s, &c.call(&["GET", "x"]), b"$1\r\n1\r\n");
    expect(&s, &c.call(&["PING"]), b"+PONG\r\n");
    // FCALL's text names FUNCTION KILL.
    start_busy(&s, &mut a, &mut c, "800", "FUNCTION", BUSY_FUNCTION);
    expect(&s, &c.call(&["PING"]), BUSY_FUNCTION);
    expect(&s, &a.read_reply().unwrap(), b"+OK\r\n");
    let info = info_text(&mut c, "commandstats");
    assert!(info.contains("cmdstat_get:"), "{info}");
    assert!(s.log().contains("Slow script detected"), "{}", s.log());
}

#[test]
fn busy_client_is_protected_and_its_input_waits() {
    let s = Server::ours(&["--busy-reply-threshold", "50"]);
    let mut a = s.conn();
    a.set_read_timeout(Duration::from_secs(30));
    let mut c = s.conn();
    // A pipelined command after the busy one, and one sent while it runs: both wait
    // for it and are answered in order, never with -BUSY.
    let mut req = encode_command(&["DEBUG", "RS-BUSY", "1000"]);
    req.extend(encode_command(&["PING"]));
    a.send_raw(&req).unwrap();
    assert!(wait_for(Duration::from_secs(10), || c.call(&["GET", "x"])
        == BUSY_EVAL));
    a.send(&["ECHO", "after"]).unwrap();
    let t = Instant::now();
    expect(&s, &a.read_reply().unwrap(), b"+OK\r\n");
    expect(&s, &a.read_reply().unwrap(), b"+PONG\r\n");
    expect(&s, &a.read_reply().unwrap(), b"$5\r\nafter\r\n");
    assert!(t.elapsed() < Duration::from_secs(10));
    // The busy client can not start another busy period from inside one: DEBUG is not
    // allow-busy.
    a.send(&["DEBUG", "RS-BUSY", "600"]).unwrap();
    assert!(wait_for(Duration::from_secs(10), || c.call(&["GET", "x"])
        == BUSY_EVAL));
    expect(&s, &c.call(&["DEBUG", "RS-BUSY", "10"]), BUSY_EVAL);
    expect(&s, &a.read_reply().unwrap(), b"+OK\r\n");
    // SHUTDOWN NOSAVE ends the server from inside a busy period.
    a.send(&["DEBUG", "RS-BUSY", "20000"]).unwrap();
    assert!(wait_for(Duration::from_secs(10), || c.call(&["GET", "x"])
        == BUSY_EVAL));
    let _ = c.send(&["SHUTDOWN", "NOSAVE"]);
    assert!(c.closed_within(Duration::from_secs(10)));
    assert!(a.closed_within(Duration::from_secs(10)));
}

#[test]
fn truncated_rdb_still_stops_the_server_after_serving_clients() {
    let a = Server::ours(&[]);
    let mut ca = a.conn();
    populate(&mut ca);
    assert_eq!(ca.call(&["SAVE"]), b"+OK\r\n");
    let _ = ca.cmd(&["SHUTDOWN", "NOSAVE"]);
    let rdb = a.dir.join("dump.rdb");
    let len = std::fs::metadata(&rdb).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&rdb).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let log = a.dir.join("second.log");
    let out = std::fs::File::create(&log).unwrap();
    let port = free_port().to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_valkey-rs-server"))
        .args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--dir",
            &a.dir.to_string_lossy(),
            "--save",
            "",
            "--key-load-delay",
            "20",
            "--loading-process-events-interval-bytes",
            "1024",
        ])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    // Clients are served (LOADING) until the load hits the end of the data.
    let mut saw_loading = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "still running");
        if let Ok(mut c) = Conn::try_connect(port.parse().unwrap()) {
            if c.cmd(&["GET", "key:1"]).ok().as_deref() == Some(LOADING) {
                saw_loading = true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(saw_loading, "{text}");
    assert!(
        text.contains("Internal error in RDB reading file dump.rdb at offset"),
        "{text}"
    );
}

#[test]
fn shutdown_during_loading_exits_without_saving() {
    for t in targets() {
        let a = t.start(&[]);
        let mut ca = a.conn();
        populate(&mut ca);
        assert_eq!(ca.call(&["SAVE"]), b"+OK\r\n");
        let _ = ca.cmd(&["SHUTDOWN", "NOSAVE"]);
        let rdb = a.dir.join("dump.rdb");
        let before = std::fs::metadata(&rdb).unwrap();
        let dir = a.dir.to_string_lossy().into_owned();
        // Save points: a SHUTDOWN after loading would save.
        let mut b = t.start(&[
            "--dir",
            &dir,
            "--save",
            "3600 1",
            "--key-load-delay",
            DELAY,
            "--loading-process-events-interval-bytes",
            "1024",
        ]);
        let mut c = b.conn();
        wait_loading(&b, &mut c);
        // SHUTDOWN is flagged `loading`; while loading it never saves (forced NOSAVE).
        let _ = c.send(&["SHUTDOWN"]);
        let (out, closed) = c.read_until_close(Duration::from_secs(20));
        assert!(closed && out.is_empty(), "{}: {:?}", b.kind.name(), out);
        assert!(wait_for(Duration::from_secs(10), || !b.alive()));
        let after = std::fs::metadata(&rdb).unwrap();
        assert_eq!(
            (before.len(), before.modified().unwrap()),
            (after.len(), after.modified().unwrap()),
            "{}: the half-loaded dataset was saved",
            b.kind.name()
        );
        drop(a);
    }
}
