//! Replication over TLS (issue 8, `tls-replication`), valkey-rs to valkey-rs (the
//! reference is built without TLS). Both servers listen on the TLS port only (`port 0`);
//! certificates are made at test time with the `openssl` command line; the test talks to
//! the servers with rustls.

mod common;
#[path = "common/tls.rs"]
mod tlskit;

use common::*;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tlskit::{client_config, Pki, TlsClient};

/// A CA, a server certificate (serverAuth only) and a client certificate (clientAuth).
/// The server certificate names no address: a replica verifies the chain only, as
/// upstream (no host name check).
fn new_pki(tag: &str) -> Pki {
    let p = Pki::empty(&format!("tlsrepl-{tag}"));
    p.ca("ca");
    p.leaf(
        "ca",
        "server",
        "/CN=primary",
        "serverAuth",
        "DNS:primary.invalid",
    );
    p.leaf(
        "ca",
        "client",
        "/CN=replica",
        "clientAuth",
        "DNS:replica.invalid",
    );
    p
}

fn repl_client_config(pki: &Pki) -> Arc<rustls::ClientConfig> {
    client_config(
        &pki.path("ca.crt"),
        Some((&pki.path("client.crt"), &pki.path("client.key"))),
    )
}

/// A valkey-rs process listening on its TLS port only.
struct TlsServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    cfg: Arc<rustls::ClientConfig>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TlsServer {
    fn start(pki: &Pki, tag: &str, extra: &[&str]) -> TlsServer {
        for attempt in 0..5 {
            let port = free_port();
            let dir = pki.dir.join(format!("{}-{}", tag, attempt));
            std::fs::create_dir_all(&dir).unwrap();
            let mut args: Vec<String> = [
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "yes",
                "--tls-cert-file",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.push(pki.path("server.crt"));
            args.push("--tls-key-file".into());
            args.push(pki.path("server.key"));
            args.push("--tls-ca-cert-file".into());
            args.push(pki.path("ca.crt"));
            args.push("--tls-port".into());
            args.push(port.to_string());
            args.push("--dir".into());
            args.push(dir.to_string_lossy().into_owned());
            args.extend(extra.iter().map(|s| s.to_string()));
            let child = common::spawn_logged(
                Command::new(common::proc::BIN).args(&args),
                &dir,
                &dir.join("server.log"),
                false,
            )
            .expect("spawn valkey-rs");
            let mut s = TlsServer {
                child,
                port,
                dir,
                cfg: repl_client_config(pki),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = s.child.try_wait() {
                    break;
                }
                if let Ok(mut c) = s.try_client() {
                    if c.call(&[b"PING"]) == b"+PONG\r\n" {
                        return s;
                    }
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            let _ = s.child.kill();
        }
        panic!("valkey-rs with TLS only did not start");
    }

    fn try_client(&self) -> std::io::Result<TlsClient> {
        TlsClient::connect_to(self.port, self.cfg.clone(), "primary.invalid")
    }

    fn client(&self) -> TlsClient {
        self.try_client().expect("TLS connect")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn info(&self, field: &str) -> Option<i64> {
        let r = self.client().call(&[b"INFO"]);
        info_field(&r, field)
    }

    fn info_text(&self) -> String {
        String::from_utf8_lossy(&self.client().call(&[b"INFO", b"replication"])).into_owned()
    }

    fn digest(&self) -> Vec<u8> {
        self.client().call(&[b"DEBUG", b"DIGEST"])
    }
}

/// Writes `n` keys (pipelined) and a few values large enough to span many TLS records.
fn populate(s: &TlsServer, prefix: &str, n: usize) {
    let mut c = s.client();
    for i in 0..n {
        let k = format!("{}:{}", prefix, i);
        let v = format!("value-{}-{}", i, "x".repeat(i % 50));
        c.send(&[b"SET", k.as_bytes(), v.as_bytes()]);
    }
    for _ in 0..n {
        assert_eq!(c.reply(), b"+OK\r\n");
    }
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let k = format!("{}:big", prefix);
    assert_eq!(c.call(&[b"SET", k.as_bytes(), &big]), b"+OK\r\n");
    let h = format!("{}:hash", prefix);
    assert_eq!(
        c.call(&[b"HSET", h.as_bytes(), b"f1", b"v1", b"f2", b"v2"]),
        b":2\r\n"
    );
}

fn replicaof(replica: &TlsServer, primary: &TlsServer) {
    let port = primary.port.to_string();
    assert_eq!(
        replica
            .client()
            .call(&[b"REPLICAOF", b"127.0.0.1", port.as_bytes()]),
        b"+OK\r\n"
    );
}

fn link_up(replica: &TlsServer) -> bool {
    replica.info_text().contains("master_link_status:up")
}

/// The replica is up and has applied everything the primary has produced.
fn wait_in_sync(primary: &TlsServer, replica: &TlsServer) {
    let ok = wait_for(Duration::from_secs(30), || {
        link_up(replica) && {
            let p = primary.info("master_repl_offset");
            p.is_some() && p == replica.info("master_repl_offset")
        }
    });
    assert!(
        ok,
        "replica did not catch up\nprimary: {}\nreplica: {}\nprimary log:\n{}\nreplica log:\n{}",
        primary.info_text(),
        replica.info_text(),
        primary.log(),
        replica.log()
    );
}

fn full_sync_over_tls(diskless: &str) {
    let pki = new_pki(&format!("full-{}", diskless));
    let primary = TlsServer::start(
        &pki,
        "primary",
        &[
            "--tls-auth-clients",
            "no",
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    let replica = TlsServer::start(
        &pki,
        "replica",
        &["--tls-auth-clients", "no", "--tls-replication", "yes"],
    );
    populate(&primary, "before", 3000);
    replicaof(&replica, &primary);
    wait_in_sync(&primary, &replica);
    // The stream after the sync, through the same TLS link.
    populate(&primary, "after", 500);
    wait_in_sync(&primary, &replica);
    let d = primary.digest();
    assert_eq!(d, replica.digest());
    assert_ne!(d, b"0000000000000000000000000000000000000000");
    assert_eq!(primary.info("sync_full"), Some(1));
    // The replica announced its TLS port (it has no plain one), as upstream with
    // tls-replication.
    let announced = format!("port={}", replica.port);
    assert!(
        primary.info_text().contains(&announced),
        "{}",
        primary.info_text()
    );
}

#[test]
fn full_sync_and_stream_over_tls_diskless() {
    full_sync_over_tls("yes");
}

#[test]
fn full_sync_and_stream_over_tls_disk() {
    full_sync_over_tls("no");
}

#[test]
fn partial_resync_over_tls_after_client_kill() {
    let pki = new_pki("psync");
    let primary = TlsServer::start(
        &pki,
        "primary",
        &[
            "--tls-auth-clients",
            "no",
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    let replica = TlsServer::start(
        &pki,
        "replica",
        &["--tls-auth-clients", "no", "--tls-replication", "yes"],
    );
    populate(&primary, "a", 1000);
    replicaof(&replica, &primary);
    wait_in_sync(&primary, &replica);
    assert_eq!(
        primary
            .client()
            .call(&[b"CLIENT", b"KILL", b"TYPE", b"replica"]),
        b":1\r\n"
    );
    // Writes while the link is down come from the backlog on reconnection.
    populate(&primary, "b", 300);
    wait_in_sync(&primary, &replica);
    assert_eq!(primary.info("sync_full"), Some(1));
    assert_eq!(primary.info("sync_partial_ok"), Some(1));
    assert_eq!(primary.digest(), replica.digest());
}

#[test]
fn mutual_tls_replication() {
    let pki = new_pki("mtls");
    let primary = TlsServer::start(
        &pki,
        "primary",
        &[
            "--tls-auth-clients",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    // Without tls-client-cert-file the replica presents its server certificate, which
    // is not for client authentication: the primary refuses the handshake.
    let replica = TlsServer::start(
        &pki,
        "replica",
        &["--tls-auth-clients", "yes", "--tls-replication", "yes"],
    );
    populate(&primary, "m", 200);
    replicaof(&replica, &primary);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!link_up(&replica), "{}", replica.info_text());
    assert_eq!(primary.info("connected_slaves"), Some(0));
    assert!(
        // TLS 1.3: the client finishes first, the primary's alert comes with the reply.
        replica
            .log()
            .contains("fatal alert: UnsupportedCertificate"),
        "replica log:\n{}",
        replica.log()
    );
    // With the client certificate (CONFIG SET reloads the outgoing context) the next
    // attempt is accepted.
    let mut c = replica.client();
    assert_eq!(
        c.call(&[
            b"CONFIG",
            b"SET",
            b"tls-client-cert-file",
            pki.path("client.crt").as_bytes(),
            b"tls-client-key-file",
            pki.path("client.key").as_bytes(),
        ]),
        b"+OK\r\n"
    );
    wait_in_sync(&primary, &replica);
    assert_eq!(primary.digest(), replica.digest());
}
