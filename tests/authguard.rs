//! AUTH brute-force throttling and the audit log (beyond upstream; docs/security.md),
//! through the real binary.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{encode_command, escape, Conn, Server};

/// A TCP connection to 127.0.0.1:`port` from source address `src` (127.0.0.2 is loopback
/// too on Linux, so tests can play a second client address).
fn connect_from(src: [u8; 4], port: u16) -> TcpStream {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    let from = SockaddrIn::from(SocketAddrV4::new(src.into(), 0));
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &from).expect("bind source address");
    let to = SockaddrIn::from(SocketAddrV4::new([127, 0, 0, 1].into(), port));
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &to).expect("connect");
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads one simple (single-line) reply.
fn line(r: &mut impl BufRead) -> String {
    let mut l = String::new();
    r.read_line(&mut l).expect("read reply");
    l
}

fn info_field(c: &mut Conn, name: &str) -> u64 {
    let r = String::from_utf8_lossy(&c.call(&["INFO", "stats"])).into_owned();
    r.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} missing from INFO"))
        .trim()
        .parse()
        .expect("number")
}

const LOCKED: &str = "-WRONGPASS too many failed authentication attempts, try again later\r\n";
const WRONG: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

#[test]
fn brute_force_from_one_ip_is_throttled_others_are_not() {
    let srv = Server::ours(&[
        "--requirepass",
        "secret",
        "--auth-failure-exempt-loopback",
        "no",
    ]);
    let n = 10_000;
    let attacker = connect_from([127, 0, 0, 2], srv.port);
    let mut w = attacker.try_clone().unwrap();
    let mut r = BufReader::new(attacker);
    let start = Instant::now();
    let (mut checked, mut refused) = (0, 0);
    // Batches of 10: an unauthenticated client may not leave more than 1 KB of replies
    // unread (the server disconnects it).
    for b in 0..n / 10 {
        let mut buf = Vec::new();
        for i in 0..10 {
            buf.extend_from_slice(&encode_command(&["AUTH", &format!("guess{b}-{i}")]));
        }
        w.write_all(&buf).unwrap();
        for _ in 0..10 {
            let l = line(&mut r);
            match l.as_str() {
                WRONG => checked += 1,
                LOCKED => refused += 1,
                other => panic!("unexpected reply {other:?}"),
            }
        }
    }
    let took = start.elapsed();
    eprintln!("{checked} passwords checked, {refused} refused in {took:?}");
    assert!(
        (10..=16).contains(&checked),
        "{checked} passwords checked, {refused} refused in {took:?}"
    );
    assert_eq!(checked + refused, n);

    // Still locked: even the right password is refused from that address.
    w.write_all(&encode_command(&["AUTH", "secret"])).unwrap();
    assert_eq!(line(&mut r), LOCKED);

    // Another address is never affected.
    let mut other = Conn::connect(srv.port);
    assert_eq!(other.call(&["AUTH", "wrong"]), WRONG.as_bytes());
    assert_eq!(other.call(&["AUTH", "secret"]), b"+OK\r\n");
    assert_eq!(other.call(&["PING"]), b"+PONG\r\n");
    let failures = info_field(&mut other, "auth_failures");
    assert_eq!(failures, checked as u64 + 1);
    assert!(info_field(&mut other, "auth_throttled") >= refused as u64);
    assert!(info_field(&mut other, "auth_lockouts") >= 1);
    assert_eq!(info_field(&mut other, "auth_locked_ips"), 1);
    // ACL LOG: the failures (checked or throttled) as reason auth, count aggregated.
    let log = other.call(&["ACL", "LOG", "1"]);
    let s = escape(&log);
    assert!(s.contains("auth"), "{s}");
    assert!(s.contains(&format!(":{}", n + 2)), "count: {s}");

    // Threshold 0 disables throttling.
    assert_eq!(
        other.call(&["CONFIG", "SET", "auth-failure-threshold", "0"]),
        b"+OK\r\n"
    );
    w.write_all(&encode_command(&["AUTH", "secret"])).unwrap();
    assert_eq!(line(&mut r), "+OK\r\n");
}

#[test]
fn loopback_is_exempt_by_default_and_success_resets() {
    let srv = Server::ours(&["--requirepass", "secret"]);
    let mut c = Conn::connect(srv.port);
    for _ in 0..50 {
        assert_eq!(c.call(&["AUTH", "nope"]), WRONG.as_bytes());
    }
    assert_eq!(c.call(&["AUTH", "secret"]), b"+OK\r\n");
    assert_eq!(info_field(&mut c, "auth_lockouts"), 0);

    // Not exempt: 3 failures lock, a later success (after the lockout) resets the count.
    c.call(&["CONFIG", "SET", "auth-failure-exempt-loopback", "no"]);
    c.call(&["CONFIG", "SET", "auth-failure-threshold", "3"]);
    let mut a = Conn::connect(srv.port);
    for _ in 0..3 {
        assert_eq!(a.call(&["AUTH", "nope"]), WRONG.as_bytes());
    }
    assert_eq!(a.call(&["AUTH", "secret"]), LOCKED.as_bytes());
    assert_eq!(info_field(&mut c, "auth_tracked_ips"), 1);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(a.call(&["AUTH", "secret"]), b"+OK\r\n");
    assert_eq!(info_field(&mut c, "auth_tracked_ips"), 0);
    assert_eq!(info_field(&mut c, "auth_locked_ips"), 0);
}

#[test]
fn audit_log_records_auth_and_acl_denials() {
    let srv = Server::ours(&["--requirepass", "secret", "--audit-log-file", "audit.log"]);
    let mut c = Conn::connect(srv.port);
    assert_eq!(c.call(&["AUTH", "wrong"]), WRONG.as_bytes());
    assert_eq!(c.call(&["AUTH", "secret"]), b"+OK\r\n");
    assert_eq!(
        c.call(&["ACL", "SETUSER", "bob", "on", ">pw", "~k*", "+get"]),
        b"+OK\r\n"
    );
    assert_eq!(c.call(&["AUTH", "ghost", "x"]), WRONG.as_bytes());
    let mut b = Conn::connect(srv.port);
    assert_eq!(b.call(&["HELLO", "2", "AUTH", "bob", "pw"])[0], b'*');
    assert!(b.call(&["GET", "other"]).starts_with(b"-NOPERM"));
    assert!(b.call(&["SET", "k1", "v"]).starts_with(b"-NOPERM"));

    let path = srv.dir.join("audit.log");
    let mode = std::fs::metadata(&path)
        .expect("audit log")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    let want = [
        (
            "auth-fail",
            "\"user\":\"default\"",
            "\"reason\":\"wrong-password\"",
        ),
        ("auth-ok", "\"user\":\"default\"", "\"cmd\":\"auth\""),
        (
            "auth-fail",
            "\"user\":\"ghost\"",
            "\"reason\":\"no-such-user\"",
        ),
        ("auth-ok", "\"user\":\"bob\"", "\"cmd\":\"hello\""),
        ("acl-deny", "\"reason\":\"key\"", "\"object\":\"other\""),
        ("acl-deny", "\"reason\":\"command\"", "\"object\":\"set\""),
    ];
    for (l, (ev, a, b)) in lines.iter().zip(want) {
        assert!(l.starts_with("{\"ts\":") && l.ends_with('}'), "{l}");
        assert!(l.contains(&format!("\"event\":\"{ev}\"")), "{l}");
        assert!(l.contains(a) && l.contains(b), "{l}");
        assert!(l.contains("\"addr\":\"127.0.0.1:"), "{l}");
        assert!(!l.contains("secret") && !l.contains("\"pw\""), "{l}");
    }

    // The path is a protected config: not settable at run time by default.
    let r = c.call(&["CONFIG", "SET", "audit-log-file", "/tmp/elsewhere"]);
    assert!(
        escape(&r).contains("can't set protected config"),
        "{}",
        escape(&r)
    );
}

#[test]
fn audit_log_path_can_change_when_protected_configs_allowed() {
    let srv = Server::ours(&[
        "--requirepass",
        "secret",
        "--enable-protected-configs",
        "yes",
    ]);
    let mut c = Conn::connect(srv.port);
    assert_eq!(c.call(&["AUTH", "secret"]), b"+OK\r\n");
    assert!(!srv.dir.join("a2.log").exists());
    assert_eq!(
        c.call(&["CONFIG", "SET", "audit-log-file", "a2.log"]),
        b"+OK\r\n"
    );
    assert_eq!(c.call(&["AUTH", "bad"]), WRONG.as_bytes());
    let text = std::fs::read_to_string(srv.dir.join("a2.log")).expect("a2.log");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("\"event\":\"auth-fail\""), "{text}");
}
