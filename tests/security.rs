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

/// Beyond upstream: CONFIG GET redacts secrets unless `config-get-secrets yes`; CONFIG SET
/// of a secret works, and the secret is in force.
#[test]
fn config_get_redacts_secrets() {
    let s = Server::ours(&["--masterauth", "primary-secret"]);
    let mut c = s.conn();
    assert_eq!(
        c.call(&["CONFIG", "GET", "requirepass"]),
        b"*2\r\n$11\r\nrequirepass\r\n$0\r\n\r\n"
    );
    assert_eq!(
        c.call(&[
            "CONFIG",
            "SET",
            "requirepass",
            "s3cret",
            "tls-key-file-pass",
            "kp"
        ]),
        b"+OK\r\n"
    );
    for name in [
        "requirepass",
        "masterauth",
        "primaryauth",
        "tls-key-file-pass",
    ] {
        let want = format!("*2\r\n${}\r\n{}\r\n$10\r\n(redacted)\r\n", name.len(), name);
        assert_eq!(
            escape(&c.call(&["CONFIG", "GET", name])),
            escape(want.as_bytes()),
            "{name}"
        );
    }
    let all = c.call(&["CONFIG", "GET", "*"]);
    for secret in ["s3cret", "primary-secret", "kp\r"] {
        assert!(
            !escape(&all).contains(secret),
            "CONFIG GET * shows {secret}"
        );
    }
    let all = c.call(&["CONFIG", "GET", "*pass*", "*auth*"]);
    assert!(!escape(&all).contains("s3cret") && !escape(&all).contains("primary-secret"));
    // The secret set is the one in force.
    let mut other = s.conn();
    assert_eq!(&other.call(&["PING"])[..7], b"-NOAUTH");
    assert_eq!(other.call(&["AUTH", "s3cret"]), b"+OK\r\n");
    assert_eq!(c.call(&["CONFIG", "SET", "config-get-secrets", "yes"]), b"-ERR CONFIG SET failed (possibly related to argument 'config-get-secrets') - can't set immutable config\r\n");

    let s = Server::ours(&["--config-get-secrets", "yes", "--requirepass", "s3cret"]);
    let mut c = s.conn();
    assert_eq!(c.call(&["AUTH", "s3cret"]), b"+OK\r\n");
    assert_eq!(
        c.call(&["CONFIG", "GET", "requirepass"]),
        b"*2\r\n$11\r\nrequirepass\r\n$6\r\ns3cret\r\n"
    );
    assert_eq!(
        c.call(&["CONFIG", "GET", "config-get-secrets"]),
        b"*2\r\n$18\r\nconfig-get-secrets\r\n$3\r\nyes\r\n"
    );
}

/// `rename-command`: the new name answers, the old one is unknown, "" disables; the
/// command keeps its reported name, flags, key specs and ACL identity (upstream's
/// behaviour, compared with the reference).
#[test]
fn rename_command_as_upstream() {
    let args = [
        "--rename-command",
        "get",
        "myget",
        "--rename-command",
        "FLUSHALL",
        "",
    ];
    let mut first: Option<Vec<Vec<u8>>> = None;
    for s in servers(&args) {
        let mut c = s.conn();
        let mut t = Vec::new();
        for cmd in [
            &["SET", "a", "1"][..],
            &["MYGET", "a"],
            &["myget", "a"],
            &["GET", "a"],
            &["FLUSHALL"],
            &["COMMAND", "INFO", "myget"],
            &["COMMAND", "INFO", "get", "flushall"],
            &["COMMAND", "GETKEYS", "myget", "a"],
            &["ACL", "SETUSER", "u", "+myget"],
            &["ACL", "SETUSER", "u", "+get"],
            &["ACL", "DRYRUN", "u", "get", "a"],
            &["MULTI"],
            &["myget", "a"],
            &["EXEC"],
        ] {
            t.push(c.call(cmd));
        }
        // COMMAND LIST: the renamed command under its original name, the disabled one
        // gone (the lists themselves differ: valkey-rs has fewer commands).
        let list = escape(&c.call(&["COMMAND", "LIST"]));
        assert!(
            list.contains("$3\\r\\nget\\r\\n"),
            "{}: {list}",
            s.kind.name()
        );
        assert!(
            !list.contains("flushall") && !list.contains("myget"),
            "{}",
            s.kind.name()
        );
        match &first {
            None => first = Some(t),
            Some(want) => {
                for (i, (a, b)) in want.iter().zip(&t).enumerate() {
                    assert_eq!(escape(a), escape(b), "{}: step {}", s.kind.name(), i);
                }
            }
        }
    }
    let t = first.unwrap();
    assert_eq!(t[1], b"$1\r\n1\r\n");
    assert!(t[3].starts_with(b"-ERR unknown command 'GET'"));
    assert!(t[4].starts_with(b"-ERR unknown command 'FLUSHALL'"));
}

/// Bad `rename-command` lines stop the start-up with upstream's errors.
#[test]
fn rename_command_errors_at_startup() {
    let bins = common::targets();
    for (line, why) in [
        (
            "rename-command nosuch x",
            "No such command in rename-command",
        ),
        (
            "rename-command get set",
            "Target command name already exists",
        ),
        (
            "rename-command get x\nrename-command get y",
            "No such command in rename-command",
        ),
    ] {
        for t in &bins {
            let bin = match t {
                common::Target::Ours => {
                    std::path::PathBuf::from(env!("CARGO_BIN_EXE_valkey-rs-server"))
                }
                common::Target::Reference(b) => b.clone(),
            };
            let dir = std::env::temp_dir().join(format!("secconf-rename-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let conf = dir.join("bad.conf");
            std::fs::write(&conf, format!("port 0\n{line}\n")).unwrap();
            let out = std::process::Command::new(&bin)
                .arg(&conf)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{t:?}: {line} accepted");
            assert!(text.contains(why), "{t:?}: {line}: {text}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Sends one command from a connection to `ip:port` and returns the first reply line.
fn call_from(ip: IpAddr, port: u16, argv: &[&str]) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(2))
        .expect("connect to own address");
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(&common::encode_command(argv)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(b"\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// enable-protected-configs and enable-debug-command: no, yes, local (loopback only),
/// with upstream's errors; compared with the reference.
#[test]
fn protected_configs_and_commands() {
    let dirset = |d: &str| {
        vec!["CONFIG", "SET", "dir", d]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    for mode in ["no", "yes", "local"] {
        let mut first: Option<Vec<Vec<u8>>> = None;
        for s in servers(&[
            "--enable-protected-configs",
            mode,
            "--enable-debug-command",
            mode,
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
        ]) {
            let mut c = s.conn();
            let dir = s.dir.to_string_lossy().into_owned();
            let mut t = vec![
                c.call(&dirset(&dir)),
                c.call(&["CONFIG", "SET", "dbfilename", "x.rdb"]),
                c.call(&["DEBUG", "SLEEP", "0"]),
                c.call(&["CONFIG", "SET", "enable-protected-configs", "yes"]),
                c.call(&["CONFIG", "GET", "enable-protected-configs"]),
            ];
            if let Some(ip) = own_non_loopback_ip() {
                t.push(call_from(
                    ip,
                    s.port,
                    &["CONFIG", "SET", "dbfilename", "y.rdb"],
                ));
                t.push(call_from(ip, s.port, &["DEBUG", "SLEEP", "0"]));
            }
            match &first {
                None => first = Some(t),
                Some(want) => {
                    for (i, (a, b)) in want.iter().zip(&t).enumerate() {
                        assert_eq!(escape(a), escape(b), "{} {mode}: step {i}", s.kind.name());
                    }
                }
            }
        }
        let t = first.unwrap();
        let (local_ok, remote_ok) = match mode {
            "no" => (false, false),
            "yes" => (true, true),
            _ => (true, false),
        };
        assert_eq!(t[1] == b"+OK\r\n", local_ok, "{mode}: {}", escape(&t[1]));
        assert_eq!(t[2] == b"+OK\r\n", local_ok, "{mode}: {}", escape(&t[2]));
        if !local_ok {
            assert_eq!(t[1], b"-ERR CONFIG SET failed (possibly related to argument 'dbfilename') - can't set protected config\r\n");
            assert!(t[2].starts_with(b"-ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\""));
        }
        if t.len() > 5 {
            assert_eq!(t[5] == b"+OK\r\n", remote_ok, "{mode}: {}", escape(&t[5]));
            assert_eq!(t[6] == b"+OK\r\n", remote_ok, "{mode}: {}", escape(&t[6]));
        }
    }
}

/// Beyond upstream: with `config-get-secrets yes`, CONFIG GET shows secrets in clear only
/// to a user that may run both CONFIG SET and ACL SETUSER; everyone else (even with
/// CONFIG GET) reads `(redacted)`.
#[test]
fn config_get_secrets_per_caller() {
    let s = Server::ours(&["--config-get-secrets", "yes", "--masterauth", "m4ster"]);
    let mut admin = s.conn();
    let clear = b"*2\r\n$10\r\nmasterauth\r\n$6\r\nm4ster\r\n".to_vec();
    let redacted = b"*2\r\n$10\r\nmasterauth\r\n$10\r\n(redacted)\r\n".to_vec();
    assert_eq!(
        escape(&admin.call(&["CONFIG", "GET", "masterauth"])),
        escape(&clear)
    );
    for (user, rules, want) in [
        ("getonly", &["+config|get"][..], &redacted),
        ("setter", &["+config|get", "+config|set"][..], &redacted),
        ("acladm", &["+config|get", "+acl|setuser"][..], &redacted),
        (
            "admin2",
            &["+config|get", "+config|set", "+acl|setuser"][..],
            &clear,
        ),
        ("all", &["+@all"][..], &clear),
        ("allbut", &["+@all", "-acl|setuser"][..], &redacted),
    ] {
        let mut argv = vec!["ACL", "SETUSER", user, "on", ">pw", "~*"];
        argv.extend_from_slice(rules);
        assert_eq!(admin.call(&argv), b"+OK\r\n");
        let mut c = s.conn();
        assert_eq!(c.call(&["AUTH", user, "pw"]), b"+OK\r\n");
        assert_eq!(
            escape(&c.call(&["CONFIG", "GET", "masterauth"])),
            escape(want),
            "{user}"
        );
        let all = c.call(&["CONFIG", "GET", "*"]);
        assert_eq!(escape(&all).contains("m4ster"), want == &clear, "{user}");
    }
}
