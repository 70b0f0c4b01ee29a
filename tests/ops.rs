//! Operations with the real binary (docs/operations.md): systemd notification through a
//! test-owned NOTIFY_SOCKET (READY=1 only once the RDB is loaded and the port answers,
//! STOPPING=1 on SIGTERM), upstart's SIGSTOP, SIGTERM under pipelined write load with `appendfsync
//! always` (every acknowledged write survives, the pid file goes, exit 0), daemonize
//! (the parent exits, the pid file names the live daemon, the log gets the startup
//! lines), `shutdown-on-sigterm` / `shutdown-on-sigint` save behaviour and the wait for a
//! lagging replica (SHUTDOWN ABORT, a second SIGINT) compared with the reference,
//! `make install` / `make uninstall` into a DESTDIR, and `systemd-analyze verify` /
//! `security` of the shipped units.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::proc::{TempDir, BIN};
use common::{free_port, require_reference, wait_for, Conn};

/// The log file every server here writes (`--logfile` in [`base_args`]).
fn server_log(dir: &TempDir) -> String {
    std::fs::read_to_string(dir.file("server.log")).unwrap_or_default()
}

/// A server process killed on drop (unless it exited).
struct Proc {
    child: Child,
    port: u16,
}

impl Proc {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits up to `limit` for the exit status.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The arguments every server here gets: its port, loopback, its directory and log file,
/// no save points, no AOF (`extra` may override any of them).
fn base_args(dir: &TempDir, port: u16, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--dir",
        &dir.0.to_string_lossy(),
        "--logfile",
        &dir.file("server.log").to_string_lossy(),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Starts `bin` (without waiting for it).
fn spawn(bin: &Path, dir: &TempDir, port: u16, extra: &[&str], env: &[(&str, String)]) -> Proc {
    let mut cmd = Command::new(bin);
    cmd.args(base_args(dir, port, extra))
        .current_dir(&dir.0)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("UPSTART_JOB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {}", bin.display(), e));
    Proc { child, port }
}

/// Starts `bin` and waits until it answers PING.
fn start(bin: &Path, dir: &TempDir, extra: &[&str]) -> Proc {
    let port = free_port();
    let mut p = spawn(bin, dir, port, extra, &[]);
    let up = wait_for(Duration::from_secs(20), || {
        !p.alive()
            || Conn::try_connect(port)
                .ok()
                .and_then(|mut c| c.cmd(&["PING"]).ok())
                .is_some()
    });
    assert!(
        up && p.alive(),
        "{} did not start; log:\n{}",
        bin.display(),
        server_log(dir)
    );
    p
}

/// The process is gone (or a zombie nobody reaped: a daemon's parent is init).
fn pid_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid)) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// Receives notifications until `until` arrives (or the timeout): every message, in order.
fn recv_until(sock: &UnixDatagram, until: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = m == until;
                msgs.push(m);
                if done {
                    return msgs;
                }
            }
            Err(e) => panic!("waiting for {:?}: {} (got {:?})", until, e, msgs),
        }
    }
}

// ---------------------------------------------------------------------------------------
// systemd notification
// ---------------------------------------------------------------------------------------

/// A dump.rdb of `keys` keys whose load takes measurable time (a fresh log after).
fn make_dataset(dir: &TempDir, keys: u64) {
    let mut p = start(Path::new(BIN), dir, &["--enable-debug-command", "yes"]);
    let mut c = Conn::connect(p.port);
    c.set_read_timeout(Duration::from_secs(60));
    assert_eq!(
        c.call(&["DEBUG", "POPULATE", &keys.to_string(), "key", "64"]),
        b"+OK\r\n"
    );
    assert_eq!(c.call(&["SAVE"]), b"+OK\r\n");
    p.signal(libc::SIGTERM);
    assert!(p.wait_exit(Duration::from_secs(30)).is_some());
    let _ = std::fs::remove_file(dir.file("server.log"));
}

#[test]
fn sigterm_during_loading_exits_without_saving() {
    let dir = TempDir::new("loading");
    make_dataset(&dir, 300_000);
    let rdb = dir.file("dump.rdb");
    let before = std::fs::metadata(&rdb).unwrap();
    // Save points: a shutdown after loading would save.
    let mut p = spawn(
        Path::new(BIN),
        &dir,
        free_port(),
        &["--save", "3600 1"],
        &[],
    );
    assert!(wait_for(Duration::from_secs(20), || server_log(&dir)
        .contains("Server initialized")));
    p.signal(libc::SIGTERM);
    let st = p.wait_exit(Duration::from_secs(30)).expect("exit");
    let log = server_log(&dir);
    assert_eq!(st.code(), Some(0), "{}", log);
    assert!(
        log.contains("Received shutdown signal during loading, scheduling shutdown."),
        "{}",
        log
    );
    assert!(!log.contains("DB loaded from disk"), "{}", log);
    assert!(!log.contains("Saving the final RDB snapshot"), "{}", log);
    let after = std::fs::metadata(&rdb).unwrap();
    assert_eq!(
        (before.len(), before.modified().unwrap()),
        (after.len(), after.modified().unwrap()),
        "the half-loaded dataset was saved"
    );
}

#[test]
fn systemd_ready_only_after_the_rdb_is_loaded_and_stopping_on_sigterm() {
    let dir = TempDir::new("notify");
    let keys = 300_000;
    make_dataset(&dir, keys);

    // The test owns the socket: an abstract name, as systemd may use.
    let name = format!(
        "valkey-rs-ops-notify-{}-{}",
        std::process::id(),
        free_port()
    );
    let sock = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap())
        .expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let port = free_port();
    let mut p = spawn(
        Path::new(BIN),
        &dir,
        port,
        &["--supervised", "systemd"],
        &[("NOTIFY_SOCKET", format!("@{}", name))],
    );
    let msgs = recv_until(&sock, "READY=1\n");
    // At READY=1 the dataset is loaded and the port serves it.
    let mut c = Conn::connect(port);
    assert_eq!(
        c.call(&["DBSIZE"]),
        format!(":{}\r\n", keys).as_bytes(),
        "READY=1 before the data was loaded"
    );
    let log = server_log(&dir);
    let loaded = log
        .lines()
        .find(|l| l.contains("DB loaded from disk"))
        .unwrap_or_else(|| panic!("no load line before READY=1:\n{}", log));
    println!("{} (then READY=1)", loaded);
    assert!(log.contains("Supervised by systemd"), "{}", log);
    assert_eq!(
        msgs,
        [
            "STATUS=Valkey is loading...\n",
            "STATUS=Ready to accept connections\n",
            "READY=1\n"
        ],
        "log:\n{}",
        log
    );

    p.signal(libc::SIGTERM);
    let msgs = recv_until(&sock, "STOPPING=1\n");
    assert_eq!(msgs, ["STOPPING=1\n"]);
    let st = p.wait_exit(Duration::from_secs(30)).expect("exit");
    assert_eq!(st.code(), Some(0), "log:\n{}", server_log(&dir));
}

// ---------------------------------------------------------------------------------------
// SIGTERM under write load
// ---------------------------------------------------------------------------------------

#[test]
fn sigterm_under_write_load_keeps_every_acknowledged_write() {
    let dir = TempDir::new("sigterm-aof");
    // A path NOTIFY_SOCKET and `supervised auto` this time.
    let sock_path = dir.file("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let pidfile = dir.file("server.pid");
    let pidfile_s = pidfile.to_string_lossy().into_owned();
    let aof = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--pidfile",
        &pidfile_s,
    ];
    let port = free_port();
    let mut extra = aof.to_vec();
    extra.extend(["--supervised", "auto"]);
    let mut p = spawn(
        Path::new(BIN),
        &dir,
        port,
        &extra,
        &[("NOTIFY_SOCKET", sock_path.to_string_lossy().into_owned())],
    );
    recv_until(&sock, "READY=1\n");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid file")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, p.pid());

    // Writers: pipelined SETs, counting the +OK replies read back.
    let total = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let total = total.clone();
            std::thread::spawn(move || {
                let mut c = Conn::connect(port);
                c.set_read_timeout(Duration::from_secs(30));
                let mut acked = 0u64;
                'outer: loop {
                    let mut batch = Vec::new();
                    for i in acked..acked + 32 {
                        batch.extend(common::encode_command(&[
                            "SET".to_string(),
                            format!("k:{}:{}", t, i),
                            format!("v{}", i),
                        ]));
                    }
                    if c.send_raw(&batch).is_err() {
                        break;
                    }
                    for _ in 0..32 {
                        match c.read_reply() {
                            Ok(r) if r == b"+OK\r\n" => {
                                acked += 1;
                                total.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => break 'outer,
                        }
                    }
                }
                acked
            })
        })
        .collect();
    assert!(
        wait_for(Duration::from_secs(30), || total.load(Ordering::Relaxed)
            >= 3000),
        "writes did not flow; log:\n{}",
        server_log(&dir)
    );
    p.signal(libc::SIGTERM);
    let acked: Vec<u64> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    recv_until(&sock, "STOPPING=1\n");
    let st = p.wait_exit(Duration::from_secs(30)).expect("exit");
    assert_eq!(st.code(), Some(0), "log:\n{}", server_log(&dir));
    assert!(!pidfile.exists(), "pid file left behind");
    let log = server_log(&dir);
    assert!(log.contains("Calling fsync() on the AOF file."), "{}", log);

    // Restart on the same directory: every acknowledged write is there.
    let p = start(Path::new(BIN), &dir, &aof);
    let mut c = Conn::connect(p.port);
    c.set_read_timeout(Duration::from_secs(30));
    for (t, &n) in acked.iter().enumerate() {
        let mut i = 0;
        while i < n {
            let end = (i + 500).min(n);
            let mut argv = vec!["MGET".to_string()];
            argv.extend((i..end).map(|j| format!("k:{}:{}", t, j)));
            let mut want = format!("*{}\r\n", end - i);
            for j in i..end {
                let v = format!("v{}", j);
                want.push_str(&format!("${}\r\n{}\r\n", v.len(), v));
            }
            let got = c.call(&argv);
            assert!(
                got == want.as_bytes(),
                "writer {}: an acknowledged write among {}..{} is missing after restart",
                t,
                i,
                end
            );
            i = end;
        }
    }
    println!("acknowledged writes kept: {:?}", acked);
}

// ---------------------------------------------------------------------------------------
// daemonize
// ---------------------------------------------------------------------------------------

fn daemonize_case(bin: &Path) {
    let dir = TempDir::new("daemon");
    let port = free_port();
    let pidfile = dir.file("d.pid");
    let args = base_args(
        &dir,
        port,
        &[
            "--daemonize",
            "yes",
            "--pidfile",
            &pidfile.to_string_lossy(),
        ],
    );
    let st = Command::new(bin)
        .args(&args)
        .current_dir(&dir.0)
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run");
    assert!(st.success(), "{}: parent exit {:?}", bin.display(), st);
    assert!(
        wait_for(Duration::from_secs(10), || std::fs::read_to_string(
            &pidfile
        )
        .is_ok_and(|s| s.ends_with('\n'))),
        "no pid file; log:\n{}",
        server_log(&dir)
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!pid_gone(pid), "pid file names a dead process");
    assert!(
        wait_for(Duration::from_secs(10), || Conn::try_connect(port).is_ok()),
        "daemon not listening"
    );
    let mut c = Conn::connect(port);
    let info = c.call(&["INFO", "server"]);
    assert_eq!(
        common::info_field(&info, "process_id"),
        Some(pid as i64),
        "the pid file names another process"
    );
    // Detached: not a session leader of the caller's session.
    // SAFETY: getsid reads another process's session id.
    let (sid, mine) = unsafe { (libc::getsid(pid), libc::getsid(0)) };
    assert_ne!(sid, mine, "the daemon kept the caller's session");
    let log = server_log(&dir);
    assert!(log.contains("Ready to accept connections tcp"), "{}", log);
    assert!(
        log.contains(&format!("pid={}, just started", pid)),
        "{}",
        log
    );
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(
        wait_for(Duration::from_secs(20), || pid_gone(pid)),
        "daemon did not exit"
    );
    assert!(!pidfile.exists(), "pid file left behind");
    assert!(
        server_log(&dir).contains("ready to exit, bye bye"),
        "{}",
        server_log(&dir)
    );
}

#[test]
fn daemonize_parent_exits_and_pid_file_names_the_daemon() {
    daemonize_case(Path::new(BIN));
    if let Some(r) = require_reference() {
        daemonize_case(&r);
    }
}

#[test]
fn daemonize_parent_reports_a_daemon_that_fails_to_start() {
    let dir = TempDir::new("daemon-fail");
    // An address nobody has: the daemon can not bind, the parent says so.
    let args = base_args(
        &dir,
        free_port(),
        &["--daemonize", "yes", "--bind", "192.0.2.1"],
    );
    let st = Command::new(BIN)
        .args(&args)
        .current_dir(&dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run");
    assert_eq!(st.code(), Some(1), "log:\n{}", server_log(&dir));
}

// ---------------------------------------------------------------------------------------
// shutdown-on-sigterm / shutdown-on-sigint
// ---------------------------------------------------------------------------------------

/// Writes a key, sends `sig`, returns whether dump.rdb exists after a clean exit.
fn signal_save_case(bin: &Path, extra: &[&str], sig: i32) -> bool {
    let dir = TempDir::new("sigsave");
    let mut p = start(bin, &dir, extra);
    let mut c = Conn::connect(p.port);
    assert_eq!(c.call(&["SET", "a", "1"]), b"+OK\r\n");
    p.signal(sig);
    let st = p.wait_exit(Duration::from_secs(30)).expect("exit");
    assert_eq!(
        st.code(),
        Some(0),
        "{} {:?}: {}",
        bin.display(),
        extra,
        server_log(&dir)
    );
    let saved = dir.file("dump.rdb").exists();
    if saved {
        // The save holds the key.
        let p = start(bin, &dir, extra);
        assert_eq!(Conn::connect(p.port).call(&["GET", "a"]), b"$1\r\n1\r\n");
    }
    saved
}

#[test]
fn shutdown_on_signal_flags_decide_the_final_save() {
    let reference = require_reference();
    let cases: &[(&[&str], i32, bool)] = &[
        // Save points: the default saves, nosave does not.
        (&["--save", "3600 1"], libc::SIGTERM, true),
        (
            &["--save", "3600 1", "--shutdown-on-sigterm", "nosave"],
            libc::SIGTERM,
            false,
        ),
        (
            &["--save", "3600 1", "--shutdown-on-sigint", "nosave now"],
            libc::SIGINT,
            false,
        ),
        // No save points: the default does not save, save does.
        (&["--save", ""], libc::SIGINT, false),
        (
            &["--save", "", "--shutdown-on-sigterm", "save"],
            libc::SIGTERM,
            true,
        ),
        (
            &["--save", "", "--shutdown-on-sigint", "save force"],
            libc::SIGINT,
            true,
        ),
        // The flags of the other signal do not apply.
        (
            &["--save", "", "--shutdown-on-sigint", "save"],
            libc::SIGTERM,
            false,
        ),
    ];
    for &(extra, sig, want) in cases {
        let ours = signal_save_case(Path::new(BIN), extra, sig);
        assert_eq!(ours, want, "ours {:?} signal {}", extra, sig);
        if let Some(r) = &reference {
            assert_eq!(
                signal_save_case(r, extra, sig),
                ours,
                "reference differs: {:?} signal {}",
                extra,
                sig
            );
        }
    }
}

/// A replica that never acknowledges: REPLCONF + PSYNC on a raw connection.
fn fake_replica(port: u16) -> Conn {
    let mut r = Conn::connect(port);
    assert_eq!(r.call(&["REPLCONF", "listening-port", "1"]), b"+OK\r\n");
    r.send(&["PSYNC", "?", "-1"]).unwrap();
    r
}

fn replica_wait_case(bin: &Path) {
    let dir = TempDir::new("lagging");
    let mut p = start(bin, &dir, &["--shutdown-timeout", "60"]);
    let mut c = Conn::connect(p.port);
    let _replica = fake_replica(p.port);
    assert!(wait_for(Duration::from_secs(10), || {
        common::info_field(&c.call(&["INFO", "replication"]), "connected_slaves") == Some(1)
    }));
    assert_eq!(c.call(&["SET", "x", "1"]), b"+OK\r\n");
    let waiting = "Waiting for replicas before shutting down.";
    let waits = |n: usize| {
        assert!(
            wait_for(Duration::from_secs(10), || server_log(&dir)
                .matches(waiting)
                .count()
                == n),
            "{}: {}",
            bin.display(),
            server_log(&dir)
        );
    };
    // SHUTDOWN waits blocked: a pipelined PING is answered only after the shutdown was
    // aborted, which the waiting caller learns as an error.
    let mut s = Conn::connect(p.port);
    let mut req = common::encode_command(&["SHUTDOWN"]);
    req.extend(common::encode_command(&["PING"]));
    s.send_raw(&req).unwrap();
    waits(1);
    assert_eq!(c.call(&["SHUTDOWN", "ABORT"]), b"+OK\r\n");
    assert_eq!(
        s.read_reply().unwrap(),
        b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n",
        "{}",
        bin.display()
    );
    // The reference leaves that caller without replies afterwards (its pipelined PING,
    // and later commands, go unanswered); valkey-rs goes on with the PING.
    if bin == Path::new(BIN) {
        assert_eq!(s.read_reply().unwrap(), b"+PONG\r\n");
    }

    p.signal(libc::SIGTERM);
    waits(2);
    assert!(p.alive());
    // While it waits, writes are held (the shutdown pauses them) and reads are served;
    // the held write runs once the shutdown is aborted.
    let mut w = Conn::connect(p.port);
    w.send(&["SET", "held", "1"]).unwrap();
    w.set_read_timeout(Duration::from_millis(300));
    assert!(w.read_reply().is_err(), "{}: a write ran", bin.display());
    assert_eq!(c.call(&["GET", "x"]), b"$1\r\n1\r\n");
    let info = String::from_utf8_lossy(&c.call(&["INFO", "clients"])).into_owned();
    for want in ["paused_reason:shutdown_in_progress", "paused_actions:write"] {
        assert!(info.contains(want), "{}: {}", bin.display(), info);
    }
    assert_eq!(c.call(&["SHUTDOWN", "ABORT"]), b"+OK\r\n");
    w.set_read_timeout(Duration::from_secs(10));
    assert_eq!(w.read_reply().unwrap(), b"+OK\r\n", "{}", bin.display());
    assert!(server_log(&dir).contains("Shutdown manually aborted."));
    assert_eq!(
        c.call(&["SHUTDOWN", "ABORT"]),
        b"-ERR No shutdown in progress.\r\n"
    );
    // SIGINT waits too; a second SIGINT exits at once with 1.
    p.signal(libc::SIGINT);
    waits(3);
    assert!(p.alive());
    p.signal(libc::SIGINT);
    let st = p.wait_exit(Duration::from_secs(10)).expect("exit");
    assert_eq!(
        st.code(),
        Some(1),
        "{}: {}",
        bin.display(),
        server_log(&dir)
    );
    assert!(server_log(&dir).contains("You insist... exiting now."));

    // shutdown-timeout passes: the server gives up on the replica and exits 0.
    let dir = TempDir::new("lagging-timeout");
    let mut p = start(bin, &dir, &["--shutdown-timeout", "1"]);
    let mut c = Conn::connect(p.port);
    let _replica = fake_replica(p.port);
    assert!(wait_for(Duration::from_secs(10), || {
        common::info_field(&c.call(&["INFO", "replication"]), "connected_slaves") == Some(1)
    }));
    assert_eq!(c.call(&["SET", "x", "1"]), b"+OK\r\n");
    p.signal(libc::SIGTERM);
    let st = p.wait_exit(Duration::from_secs(20)).expect("exit");
    assert_eq!(
        st.code(),
        Some(0),
        "{}: {}",
        bin.display(),
        server_log(&dir)
    );
    assert!(
        server_log(&dir).contains("0 of 1 replicas are in sync when shutting down."),
        "{}: {}",
        bin.display(),
        server_log(&dir)
    );
}

#[test]
fn shutdown_waits_for_a_lagging_replica_abort_and_second_sigint() {
    replica_wait_case(Path::new(BIN));
    if let Some(r) = require_reference() {
        replica_wait_case(&r);
    }
}

// ---------------------------------------------------------------------------------------
// Units and install
// ---------------------------------------------------------------------------------------

fn systemd_analyze() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("systemd-analyze"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        println!("systemd-analyze not found (Debian: apt-get install systemd): skipping");
    }
    found
}

/// A copy of a shipped unit whose ExecStart names the built binary (verify checks that
/// the command exists), under `name`.
fn unit_copy(dir: &TempDir, unit: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(unit).expect("read unit");
    assert!(text.contains("ExecStart=/usr/local/bin/valkey-rs-server "));
    let text = text.replace("/usr/local/bin/valkey-rs-server", BIN);
    let p = dir.file(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn verify(sa: &Path, unit: &Path) {
    let out = Command::new(sa)
        .arg("verify")
        .arg(unit)
        .output()
        .expect("systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify {}: {:?}\n{}",
        unit.display(),
        out.status,
        err
    );
}

#[test]
fn shipped_units_pass_systemd_analyze() {
    let Some(sa) = systemd_analyze() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = TempDir::new("units");
    let plain = unit_copy(
        &dir,
        &root.join("utils/valkey-rs.service"),
        "valkey-rs.service",
    );
    verify(&sa, &plain);
    // The template, as an instance.
    let inst = unit_copy(
        &dir,
        &root.join("utils/valkey-rs@.service"),
        "valkey-rs@test.service",
    );
    verify(&sa, &inst);
    // A unit verify rejects, so the check above can fail.
    let bad = dir.file("bad.service");
    std::fs::write(
        &bad,
        "[Service]\nType=notify\nExecStart=/nonexistent/valkey-rs\n",
    )
    .unwrap();
    let out = Command::new(&sa).arg("verify").arg(&bad).output().unwrap();
    assert!(!out.status.success());

    let out = Command::new(&sa)
        .args(["security", "--offline=true"])
        .arg(&plain)
        .output()
        .expect("systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for valkey-rs.service: ")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{}", text));
    println!(
        "systemd-analyze security --offline=true: exposure {}",
        score
    );
    assert!(
        score <= 2.0,
        "the unit's exposure rose to {}:\n{}",
        score,
        text
    );
}

#[test]
fn make_install_and_uninstall_into_a_destdir() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bins = Path::new(BIN).parent().unwrap();
    let dest = TempDir::new("destdir");
    let make = |target: &str| {
        let out = Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(root)
            .arg(target)
            .arg(format!("DESTDIR={}", dest.0.display()))
            .arg("PREFIX=/opt/valkey-rs")
            .arg(format!("TARGET_DIR={}", bins.display()))
            .output()
            .expect("make");
        assert!(
            out.status.success(),
            "make {}: {}{}",
            target,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    make("install");
    let mode = |rel: &str| {
        std::fs::metadata(dest.0.join(rel))
            .unwrap_or_else(|e| panic!("{}: {}", rel, e))
            .permissions()
            .mode()
            & 0o7777
    };
    for b in [
        "valkey-rs-server",
        "valkey-rs-check-rdb",
        "valkey-rs-check-aof",
    ] {
        assert_eq!(mode(&format!("opt/valkey-rs/bin/{}", b)), 0o755, "{}", b);
    }
    let units = "opt/valkey-rs/lib/systemd/system";
    for u in ["valkey-rs.service", "valkey-rs@.service"] {
        let rel = format!("{}/{}", units, u);
        assert_eq!(mode(&rel), 0o644);
        let text = std::fs::read_to_string(dest.0.join(&rel)).unwrap();
        assert!(
            text.contains("ExecStart=/opt/valkey-rs/bin/valkey-rs-server /etc/valkey-rs/"),
            "{}: ExecStart not rewritten",
            u
        );
    }
    assert_eq!(mode("opt/valkey-rs/lib/sysusers.d/valkey-rs.conf"), 0o644);
    assert_eq!(mode("etc/valkey-rs/valkey.conf"), 0o640);
    assert_eq!(
        std::fs::read(dest.0.join("etc/valkey-rs/valkey.conf")).unwrap(),
        std::fs::read(root.join("valkey.conf")).unwrap()
    );
    // The installed server runs.
    let out = Command::new(dest.0.join("opt/valkey-rs/bin/valkey-rs-server"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("v="));
    // The installed units verify, with ExecStart pointed into the DESTDIR.
    if let Some(sa) = systemd_analyze() {
        let vdir = TempDir::new("destdir-verify");
        let bin = dest.0.join("opt/valkey-rs/bin/valkey-rs-server");
        for (u, name) in [
            ("valkey-rs.service", "valkey-rs.service"),
            ("valkey-rs@.service", "valkey-rs@one.service"),
        ] {
            let text = std::fs::read_to_string(dest.0.join(units).join(u))
                .unwrap()
                .replace(
                    "/opt/valkey-rs/bin/valkey-rs-server",
                    &bin.to_string_lossy(),
                );
            let p = vdir.file(name);
            std::fs::write(&p, text).unwrap();
            verify(&sa, &p);
        }
    }
    // A second install keeps a changed configuration.
    let conf = dest.0.join("etc/valkey-rs/valkey.conf");
    std::fs::write(&conf, "port 7000\n").unwrap();
    make("install");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "port 7000\n");
    assert!(dest.0.join("etc/valkey-rs/valkey.conf.new").exists());

    make("uninstall");
    for rel in [
        "opt/valkey-rs/bin/valkey-rs-server",
        "opt/valkey-rs/bin/valkey-rs-check-rdb",
        "opt/valkey-rs/bin/valkey-rs-check-aof",
        "opt/valkey-rs/lib/systemd/system/valkey-rs.service",
        "opt/valkey-rs/lib/systemd/system/valkey-rs@.service",
        "opt/valkey-rs/lib/sysusers.d/valkey-rs.conf",
        "etc/valkey-rs/valkey.conf.new",
    ] {
        assert!(!dest.0.join(rel).exists(), "{} left after uninstall", rel);
    }
    // The changed configuration stays.
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "port 7000\n");
}

// ---------------------------------------------------------------------------------------
// Process: OOM score, title, a BGSAVE child stopped with SIGUSR1
// ---------------------------------------------------------------------------------------

fn read_proc(pid: i32, file: &str) -> String {
    std::fs::read_to_string(format!("/proc/{}/{}", pid, file)).unwrap_or_default()
}

/// The children of `pid` (scanning /proc for the parent pid).
fn children(pid: i32) -> Vec<i32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = read_proc(p, "stat");
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|s| s.parse::<i32>().ok());
        if ppid == Some(pid) {
            v.push(p);
        }
    }
    v
}

fn process_case(bin: &Path) {
    let dir = TempDir::new("process");
    let mut p = start(
        bin,
        &dir,
        &[
            "--enable-debug-command",
            "yes",
            "--oom-score-adj",
            "absolute",
            "--oom-score-adj-values",
            "10 20 30",
            "--rdb-key-save-delay",
            "100000",
        ],
    );
    let pid = p.pid();
    let who = bin.display();
    // The title: argv[0] and the listening address (proc-title-template's default).
    let cmdline = read_proc(pid, "cmdline");
    let title = cmdline.trim_end_matches('\0');
    assert_eq!(
        title,
        format!("{} 127.0.0.1:{}", bin.display(), p.port),
        "{}: process title",
        who
    );
    assert_eq!(read_proc(pid, "oom_score_adj").trim(), "10", "{}", who);
    let mut c = Conn::connect(p.port);
    assert_eq!(
        c.call(&["CONFIG", "SET", "oom-score-adj-values", "5 20 30"]),
        b"+OK\r\n"
    );
    assert_eq!(read_proc(pid, "oom_score_adj").trim(), "5", "{}", who);

    // A slow BGSAVE: its child runs with the background-child score, and SIGUSR1 (BGSAVE
    // CANCEL) stops it without counting as a failed save.
    assert_eq!(c.call(&["DEBUG", "POPULATE", "100"]), b"+OK\r\n");
    assert_eq!(c.call(&["BGSAVE"]), b"+Background saving started\r\n");
    let mut kids = Vec::new();
    assert!(wait_for(Duration::from_secs(10), || {
        kids = children(pid);
        kids.len() == 1
    }));
    assert!(wait_for(Duration::from_secs(10), || read_proc(
        kids[0],
        "oom_score_adj"
    )
    .trim()
        == "30"));
    assert_eq!(
        c.call(&["BGSAVE", "CANCEL"]),
        b"+Background saving cancelled\r\n"
    );
    assert!(wait_for(Duration::from_secs(10), || {
        common::info_field(&c.call(&["INFO", "persistence"]), "rdb_bgsave_in_progress") == Some(0)
    }));
    let info = String::from_utf8_lossy(&c.call(&["INFO", "persistence"])).into_owned();
    assert!(
        info.contains("rdb_last_bgsave_status:ok"),
        "{}: {}",
        who,
        info
    );
    let log = server_log(&dir);
    assert!(
        log.contains("Received SIGUSR1 in child, exiting now."),
        "{}: {}",
        who,
        log
    );
    assert!(
        log.contains("Background saving terminated by signal 10"),
        "{}: {}",
        who,
        log
    );
    // `oom-score-adj no` gives the process its own value back.
    let base = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap();
    assert_eq!(
        c.call(&["CONFIG", "SET", "oom-score-adj", "no"]),
        b"+OK\r\n"
    );
    assert_eq!(
        read_proc(pid, "oom_score_adj").trim(),
        base.trim(),
        "{}",
        who
    );
    p.signal(libc::SIGTERM);
    assert_eq!(
        p.wait_exit(Duration::from_secs(20)).and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn oom_score_title_and_a_bgsave_child_stopped_by_sigusr1_like_the_reference() {
    process_case(Path::new(BIN));
    if let Some(r) = require_reference() {
        process_case(&r);
    }
}

#[test]
fn sigterm_lets_a_replica_catch_up_before_exiting() {
    let pdir = TempDir::new("primary");
    let rdir = TempDir::new("replica");
    let mut primary = start(
        Path::new(BIN),
        &pdir,
        &[
            "--shutdown-timeout",
            "10",
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    let port = primary.port.to_string();
    let replica = start(Path::new(BIN), &rdir, &["--replicaof", "127.0.0.1", &port]);
    let mut r = Conn::connect(replica.port);
    assert!(wait_for(Duration::from_secs(20), || {
        String::from_utf8_lossy(&r.call(&["INFO", "replication"])).contains("master_link_status:up")
    }));
    // A burst of writes, then SIGTERM right away: the primary waits until the replica
    // acknowledged them.
    let n = 5000;
    let mut c = Conn::connect(primary.port);
    let mut req = Vec::new();
    for i in 0..n {
        req.extend(common::encode_command(&[
            "SET".to_string(),
            format!("k{}", i),
            "x".repeat(100),
        ]));
    }
    c.send_raw(&req).unwrap();
    for _ in 0..n {
        assert_eq!(c.read_reply().unwrap(), b"+OK\r\n");
    }
    primary.signal(libc::SIGTERM);
    let st = primary.wait_exit(Duration::from_secs(30)).expect("exit");
    assert_eq!(st.code(), Some(0), "{}", server_log(&pdir));
    let log = server_log(&pdir);
    assert!(
        log.contains("1 of 1 replicas are in sync when shutting down."),
        "{}",
        log
    );
    assert_eq!(
        r.call(&["DBSIZE"]),
        format!(":{}\r\n", n).as_bytes(),
        "the replica missed writes"
    );
}

fn upstart_case(bin: &Path) {
    let dir = TempDir::new("upstart");
    let port = free_port();
    let mut p = spawn(
        bin,
        &dir,
        port,
        &["--supervised", "upstart"],
        &[("UPSTART_JOB", "valkey".to_string())],
    );
    let state = |pid: i32| {
        let stat = read_proc(pid, "stat");
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string))
            .unwrap_or_default()
    };
    // Upstart's `expect stop`: the server stops itself to say it is ready for it.
    assert!(
        wait_for(Duration::from_secs(10), || state(p.pid()) == "T"),
        "{}: not stopped ({}); log:\n{}",
        bin.display(),
        state(p.pid()),
        server_log(&dir)
    );
    assert!(server_log(&dir).contains("supervised by upstart, will stop to signal readiness."));
    p.signal(libc::SIGCONT);
    assert!(
        wait_for(Duration::from_secs(10), || Conn::try_connect(port)
            .ok()
            .and_then(|mut c| c.cmd(&["PING"]).ok())
            .is_some()),
        "{}: not serving after SIGCONT",
        bin.display()
    );
    p.signal(libc::SIGTERM);
    assert_eq!(
        p.wait_exit(Duration::from_secs(20)).and_then(|s| s.code()),
        Some(0)
    );

    // Without UPSTART_JOB: a warning, and no stop.
    let dir = TempDir::new("upstart-nojob");
    let p = start(bin, &dir, &["--supervised", "upstart"]);
    assert!(
        server_log(&dir).contains("upstart supervision requested, but UPSTART_JOB not found!"),
        "{}",
        server_log(&dir)
    );
    drop(p);
}

#[test]
fn supervised_upstart_stops_itself_like_the_reference() {
    upstart_case(Path::new(BIN));
    if let Some(r) = require_reference() {
        upstart_case(&r);
    }
}
