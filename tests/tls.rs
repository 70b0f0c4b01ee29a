//! TLS (issue 8) against the real binary: certificates are generated at test time with the
//! `openssl` command line; clients are redis-cli --tls, openssl s_client, Python's valkey
//! client with ssl, and rustls from the test itself (pipelining, stalls, reloads).

mod common;
#[path = "common/tls.rs"]
mod tlskit;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tlskit::{client_config, openssl, Pki, TlsClient};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// A CA (`ca`) with a server certificate for localhost and a client certificate (CN
/// alice, URI SAN urn:valkey:bob).
fn new_pki() -> Pki {
    let p = Pki::empty("tls");
    p.ca("ca");
    p.leaf(
        "ca",
        "server",
        "/CN=localhost",
        "serverAuth",
        "DNS:localhost,IP:127.0.0.1",
    );
    p.leaf(
        "ca",
        "client",
        "/CN=alice",
        "clientAuth",
        "URI:urn:valkey:bob",
    );
    p
}

/// A server with TLS on a second port; returns (server, tls port).
fn start_tls(pki: &Pki, extra: &[&str]) -> (Server, u16) {
    for _ in 0..5 {
        let tls_port = free_port();
        let (cert, key, ca) = (
            pki.path("server.crt"),
            pki.path("server.key"),
            pki.path("ca.crt"),
        );
        let port_s = tls_port.to_string();
        let mut args: Vec<&str> = vec![
            "--tls-port",
            &port_s,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
        ];
        args.extend_from_slice(extra);
        let srv = Server::ours(&args);
        // The plain port answered; wait for the TLS one to accept too.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", tls_port)).is_ok() {
                return (srv, tls_port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("TLS server did not start");
}

fn cli(pki: &Pki, port: u16, client_cert: bool, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("redis-cli");
    cmd.args([
        "-p",
        &port.to_string(),
        "--tls",
        "--cacert",
        &pki.path("ca.crt"),
    ]);
    if client_cert {
        cmd.args([
            "--cert",
            &pki.path("client.crt"),
            "--key",
            &pki.path("client.key"),
        ]);
    }
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let ok = out.status.success() && !text.contains("Error") && !text.contains("Could not");
    (ok, text.trim().to_string())
}

#[test]
fn redis_cli_round_trip_and_plain_port() {
    let pki = new_pki();
    let (srv, tls_port) = start_tls(&pki, &["--tls-auth-clients", "no"]);
    let (ok, out) = cli(&pki, tls_port, false, &["SET", "k", "hello"]);
    assert!(ok, "{}", out);
    let (ok, out) = cli(&pki, tls_port, false, &["GET", "k"]);
    assert!(ok && out == "hello", "{}", out);
    // The plaintext port keeps working beside it.
    let mut c = srv.conn();
    assert_eq!(c.call(&["GET", "k"]), b"$5\r\nhello\r\n");
    let cfg = c.call(&["CONFIG", "GET", "tls-port"]);
    assert!(String::from_utf8_lossy(&cfg).contains(&tls_port.to_string()));
}

#[test]
fn mutual_tls_accepted_and_refused() {
    let pki = new_pki();
    let (srv, tls_port) = start_tls(&pki, &[]);
    // tls-auth-clients yes (the default): a certificate signed by the CA is required.
    let (ok, out) = cli(&pki, tls_port, true, &["PING"]);
    assert!(ok && out == "PONG", "{}", out);
    let (ok, out) = cli(&pki, tls_port, false, &["PING"]);
    assert!(!ok, "no client certificate must be refused: {}", out);
    // A certificate from another CA is refused as well.
    pki.ca("other");
    pki.leaf("other", "rogue", "/CN=rogue", "clientAuth", "DNS:rogue");
    let rogue = client_config(
        &pki.path("ca.crt"),
        Some((&pki.path("rogue.crt"), &pki.path("rogue.key"))),
    );
    let r = TlsClient::connect(tls_port, rogue).and_then(|mut c| {
        c.send(&[b"PING"]);
        let mut b = [0u8; 16];
        c.s.read(&mut b)
    });
    assert!(!matches!(r, Ok(n) if n > 0), "rogue certificate accepted");
    // optional: no certificate is fine, a bad one still is not.
    let mut c = srv.conn();
    assert_eq!(
        c.call(&["CONFIG", "SET", "tls-auth-clients", "optional"]),
        b"+OK\r\n"
    );
    let (ok, out) = cli(&pki, tls_port, false, &["PING"]);
    assert!(ok && out == "PONG", "{}", out);
}

#[test]
fn tls11_and_weak_configs_refused() {
    let pki = new_pki();
    let (srv, tls_port) = start_tls(&pki, &["--tls-auth-clients", "no"]);
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
            "-connect",
            &format!("127.0.0.1:{}", tls_port),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("Cipher is (NONE)"),
        "TLSv1.1 handshake must fail: {}",
        text
    );
    // Config errors are clear and leave the context as it was.
    let mut c = srv.conn();
    for (name, val) in [
        ("tls-protocols", "TLSv1.1 TLSv1.2"),
        ("tls-ciphers", "RC4-MD5"),
        ("tls-ciphersuites", "TLS_AES_128_CCM_8_SHA256"),
    ] {
        let r = c.call(&["CONFIG", "SET", name, val]);
        assert_eq!(
            String::from_utf8_lossy(&r),
            format!("-ERR CONFIG SET failed (possibly related to argument '{}') - Unable to update TLS configuration. Check server logs.\r\n", name)
        );
    }
    let log = srv.log();
    assert!(log.contains("TLSv1.1 is not supported"), "{}", log);
    assert!(
        log.contains("Unsupported TLS 1.2 cipher 'RC4-MD5'"),
        "{}",
        log
    );
    let (ok, out) = cli(&pki, tls_port, false, &["PING"]);
    assert!(ok && out == "PONG", "{}", out);
    // A restricted but valid set works.
    assert_eq!(
        c.call(&[
            "CONFIG",
            "SET",
            "tls-protocols",
            "TLSv1.2",
            "tls-ciphers",
            "ECDHE-RSA-AES128-GCM-SHA256"
        ]),
        b"+OK\r\n"
    );
    let (ok, out) = cli(&pki, tls_port, false, &["PING"]);
    assert!(ok && out == "PONG", "{}", out);
    // At startup the same error is fatal, as upstream.
    let status = Command::new(env!("CARGO_BIN_EXE_valkey-rs-server"))
        .args([
            "--port",
            "0",
            "--tls-port",
            &free_port().to_string(),
            "--tls-cert-file",
            &pki.path("server.crt"),
            "--tls-key-file",
            &pki.path("server.key"),
            "--tls-auth-clients",
            "no",
            "--tls-protocols",
            "TLSv1",
            "--save",
            "",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}

#[test]
fn plaintext_to_tls_port_is_closed() {
    let pki = new_pki();
    let (srv, tls_port) = start_tls(&pki, &["--tls-auth-clients", "no"]);
    let mut s = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = Vec::new();
    let t = Instant::now();
    let _ = s.read_to_end(&mut buf);
    assert!(t.elapsed() < Duration::from_secs(4), "not closed");
    assert!(!buf.windows(5).any(|w| w == b"+PONG"), "answered plaintext");
    let mut c = srv.conn();
    assert_eq!(c.call(&["PING"]), b"+PONG\r\n");
}

#[test]
fn pipelined_large_values() {
    let pki = new_pki();
    let (_srv, tls_port) = start_tls(&pki, &["--tls-auth-clients", "no"]);
    let cfg = client_config(&pki.path("ca.crt"), None);
    let mut c = TlsClient::connect(tls_port, cfg).unwrap();
    let vals: Vec<Vec<u8>> = (0..3u8)
        .map(|i| {
            (0..10 * 1024 * 1024)
                .map(|j| (j as u8).wrapping_mul(31).wrapping_add(i))
                .collect()
        })
        .collect();
    // Writes and reads must overlap (the replies to GETs are 30 MB): a writer thread
    // would need a split stream, so send everything first (the server reads while we
    // write), then the GETs, then read all replies.
    for (i, v) in vals.iter().enumerate() {
        c.send(&[b"SET", format!("big{}", i).as_bytes(), v]);
    }
    for i in 0..3 {
        c.send(&[b"GET", format!("big{}", i).as_bytes()]);
    }
    c.send(&[b"PING"]);
    c.s.flush().unwrap();
    for _ in 0..3 {
        assert_eq!(c.reply(), b"+OK\r\n");
    }
    for v in &vals {
        let got = c.reply();
        assert!(got == *v, "value mismatch ({} bytes)", got.len());
    }
    assert_eq!(c.reply(), b"+PONG\r\n");
}

#[test]
fn certificate_reload_keeps_connected_clients() {
    let pki = new_pki();
    let (srv, tls_port) = start_tls(&pki, &["--tls-auth-clients", "no"]);
    let old = client_config(&pki.path("ca.crt"), None);
    let mut kept = TlsClient::connect(tls_port, old.clone()).unwrap();
    assert_eq!(kept.call(&[b"SET", b"a", b"1"]), b"+OK\r\n");
    // A bad file is refused and the old material stays in force.
    std::fs::write(pki.dir.join("bad.crt"), "not a certificate").unwrap();
    let mut c = srv.conn();
    let r = c.call(&["CONFIG", "SET", "tls-cert-file", &pki.path("bad.crt")]);
    assert_eq!(
        String::from_utf8_lossy(&r),
        "-ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS configuration. Check server logs.\r\n"
    );
    assert!(TlsClient::connect(tls_port, old.clone()).is_ok());
    // New material from a new CA: new connections use it, the old one continues.
    pki.ca("ca2");
    pki.leaf(
        "ca2",
        "server2",
        "/CN=localhost",
        "serverAuth",
        "DNS:localhost,IP:127.0.0.1",
    );
    let r = c.call(&[
        "CONFIG",
        "SET",
        "tls-cert-file",
        &pki.path("server2.crt"),
        "tls-key-file",
        &pki.path("server2.key"),
    ]);
    assert_eq!(r, b"+OK\r\n");
    assert_eq!(kept.call(&[b"GET", b"a"]), b"1");
    assert!(
        TlsClient::connect(tls_port, old).is_err(),
        "old CA still accepted"
    );
    let new = client_config(&pki.path("ca2.crt"), None);
    let mut n = TlsClient::connect(tls_port, new).unwrap();
    assert_eq!(n.call(&[b"GET", b"a"]), b"1");
    let got = c.call(&["CONFIG", "GET", "tls-cert-file"]);
    assert!(String::from_utf8_lossy(&got).contains("server2.crt"));
}

#[test]
fn stalled_handshake_does_not_delay_others_and_times_out() {
    let pki = new_pki();
    let (_srv, tls_port) = start_tls(&pki, &["--tls-auth-clients", "no", "--timeout", "1"]);
    // Half a ClientHello record header, then silence.
    let mut stall = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    stall.write_all(&[0x16, 0x03, 0x01, 0x02]).unwrap();
    let mut silent = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let cfg = client_config(&pki.path("ca.crt"), None);
    let t = Instant::now();
    let mut good = TlsClient::connect(tls_port, cfg).unwrap();
    assert_eq!(good.call(&[b"PING"]), b"+PONG\r\n");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    // `timeout` closes both stalled connections.
    for s in [&mut stall, &mut silent] {
        s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        let t = Instant::now();
        let mut b = [0u8; 64];
        let r = s.read(&mut b);
        assert!(
            matches!(r, Ok(0))
                || matches!(r, Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{:?}",
            r
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn client_certificate_names_the_acl_user() {
    let pki = new_pki();
    let (srv, tls_port) = start_tls(&pki, &["--tls-auth-clients-user", "CN"]);
    let mut c = srv.conn();
    assert_eq!(
        c.call(&["ACL", "SETUSER", "alice", "on", "nopass", "+@all", "~*"]),
        b"+OK\r\n"
    );
    assert_eq!(
        c.call(&[
            "ACL",
            "SETUSER",
            "urn:valkey:bob",
            "on",
            "nopass",
            "+@all",
            "~*"
        ]),
        b"+OK\r\n"
    );
    assert_eq!(
        c.call(&["CONFIG", "SET", "requirepass", "secret"]),
        b"+OK\r\n"
    );
    let cfg = client_config(
        &pki.path("ca.crt"),
        Some((&pki.path("client.crt"), &pki.path("client.key"))),
    );
    let mut t = TlsClient::connect(tls_port, cfg.clone()).unwrap();
    assert_eq!(t.call(&[b"ACL", b"WHOAMI"]), b"alice");
    // The SAN URI field.
    assert_eq!(
        c.call(&["CONFIG", "SET", "tls-auth-clients-user", "URI"]),
        b"+OK\r\n"
    );
    let mut t = TlsClient::connect(tls_port, cfg.clone()).unwrap();
    assert_eq!(t.call(&[b"ACL", b"WHOAMI"]), b"urn:valkey:bob");
    // Off (or a disabled user): the password is needed again.
    assert_eq!(
        c.call(&["CONFIG", "SET", "tls-auth-clients-user", "off"]),
        b"+OK\r\n"
    );
    let mut t = TlsClient::connect(tls_port, cfg).unwrap();
    let r = t.call(&[b"ACL", b"WHOAMI"]);
    assert!(r.starts_with(b"-NOAUTH"), "{}", String::from_utf8_lossy(&r));
}

#[test]
fn python_valkey_client_with_ssl() {
    if Command::new("python3")
        .args(["-c", "import valkey"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        eprintln!("skipping: python3 valkey module missing");
        return;
    }
    let pki = new_pki();
    let (_srv, tls_port) = start_tls(&pki, &[]);
    let script = format!(
        "import valkey\n\
         r = valkey.Valkey(host='localhost', port={}, ssl=True, ssl_ca_certs='{}', ssl_certfile='{}', ssl_keyfile='{}')\n\
         r.set('p', 'y' * 100000)\n\
         assert r.get('p') == b'y' * 100000\n\
         p = r.pipeline(transaction=False)\n\
         for i in range(1000): p.incr('n')\n\
         assert p.execute()[-1] == 1000\n\
         print('ok')\n",
        tls_port,
        pki.path("ca.crt"),
        pki.path("client.crt"),
        pki.path("client.key")
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn key_updates_do_not_break_pipelined_traffic() {
    let pki = new_pki();
    let (_srv, tls_port) = start_tls(&pki, &["--tls-auth-clients", "no"]);
    let cfg = client_config(&pki.path("ca.crt"), None);
    let mut c = TlsClient::connect(tls_port, cfg).unwrap();
    assert_eq!(
        c.s.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    for round in 0..20u32 {
        for i in 0..100u32 {
            c.send(&[b"INCR", format!("n{}", i).as_bytes()]);
        }
        // A KeyUpdate in the middle of the pipeline: the server must answer it and
        // decrypt what follows with the new keys.
        c.s.conn.refresh_traffic_keys().unwrap();
        c.send(&[b"PING"]);
        c.s.flush().unwrap();
        for _ in 0..100 {
            assert_eq!(c.reply(), format!(":{}\r\n", round + 1).as_bytes());
        }
        assert_eq!(c.reply(), b"+PONG\r\n");
    }
}

#[test]
fn tls_port_changes_at_runtime() {
    let pki = new_pki();
    // Started without TLS: CONFIG SET tls-port configures it, as upstream.
    let srv = Server::ours(&[
        "--tls-cert-file",
        &pki.path("server.crt"),
        "--tls-key-file",
        &pki.path("server.key"),
        "--tls-auth-clients",
        "no",
    ]);
    let mut c = srv.conn();
    let p1 = free_port();
    assert_eq!(
        c.call(&["CONFIG", "SET", "tls-port", &p1.to_string()]),
        b"+OK\r\n"
    );
    let (ok, out) = cli(&pki, p1, false, &["PING"]);
    assert!(ok && out == "PONG", "{}", out);
    // Moving it closes the old port.
    let p2 = free_port();
    assert_eq!(
        c.call(&["CONFIG", "SET", "tls-port", &p2.to_string()]),
        b"+OK\r\n"
    );
    let (ok, out) = cli(&pki, p2, false, &["PING"]);
    assert!(ok && out == "PONG", "{}", out);
    assert!(TcpStream::connect(("127.0.0.1", p1)).is_err());
    // A port in use is refused and the current one stays.
    let r = c.call(&["CONFIG", "SET", "tls-port", &srv.port.to_string()]);
    assert!(
        String::from_utf8_lossy(&r).contains("Unable to listen on this port"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    let (ok, out) = cli(&pki, p2, false, &["PING"]);
    assert!(ok && out == "PONG", "{}", out);
    assert_eq!(c.call(&["CONFIG", "SET", "tls-port", "0"]), b"+OK\r\n");
    assert_eq!(c.call(&["PING"]), b"+PONG\r\n");
    assert!(TcpStream::connect(("127.0.0.1", p2)).is_err());
}

#[test]
fn encrypted_private_keys() {
    let pki = new_pki();
    let d = &pki.dir;
    // genpkey with a password (OpenSSL 3: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC), and a
    // certificate for that key signed by the CA.
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-aes-256-cbc",
            "-pass",
            "pass:x",
            "-out",
            "gen.key",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "gen.key",
            "-passin",
            "pass:x",
            "-subj",
            "/CN=localhost",
            "-out",
            "gen.csr",
        ],
    );
    std::fs::write(
        d.join("gen.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "gen.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "gen.crt",
            "-extfile",
            "gen.ext",
        ],
    );
    // The server key converted by pkcs8 -topk8 -v2: AES-128-CBC with HMAC-SHA1, and
    // AES-256-CBC; a legacy Proc-Type PEM.
    openssl(
        d,
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-128-cbc",
            "-v2prf",
            "hmacWithSHA1",
            "-in",
            "server.key",
            "-passout",
            "pass:secret2",
            "-out",
            "p8sha1.key",
        ],
    );
    openssl(
        d,
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            "server.key",
            "-passout",
            "pass:secret3",
            "-out",
            "p8aes256.key",
        ],
    );
    openssl(
        d,
        &[
            "rsa",
            "-in",
            "server.key",
            "-aes256",
            "-traditional",
            "-passout",
            "pass:x",
            "-out",
            "legacy.key",
        ],
    );
    let legacy = std::fs::read_to_string(d.join("legacy.key")).unwrap();
    assert!(legacy.contains("Proc-Type: 4,ENCRYPTED"), "{}", legacy);

    let (gen_crt, gen_key) = (pki.path("gen.crt"), pki.path("gen.key"));
    let (srv, tls_port) = start_tls(
        &pki,
        &[
            "--tls-auth-clients",
            "no",
            "--tls-cert-file",
            &gen_crt,
            "--tls-key-file",
            &gen_key,
            "--tls-key-file-pass",
            "x",
        ],
    );
    let cfg = client_config(&pki.path("ca.crt"), None);
    let mut t = TlsClient::connect(tls_port, cfg.clone()).unwrap();
    assert_eq!(t.call(&[b"PING"]), b"+PONG\r\n");
    let leaf = |t: &TlsClient| t.s.conn.peer_certificates().unwrap()[0].to_vec();
    let gen_der = CertificateDer::pem_file_iter(&gen_crt)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    assert_eq!(leaf(&t), gen_der);

    let mut c = srv.conn();
    let failed = |name: &str| {
        format!(
            "-ERR CONFIG SET failed (possibly related to argument '{}') - Unable to update TLS configuration. Check server logs.\r\n",
            name
        )
    };
    // Both PKCS#8 variants of the server key load (the server certificate then applies).
    let srv_crt = pki.path("server.crt");
    for (key, pass) in [("p8sha1.key", "secret2"), ("p8aes256.key", "secret3")] {
        let r = c.call(&[
            "CONFIG",
            "SET",
            "tls-cert-file",
            &srv_crt,
            "tls-key-file",
            &pki.path(key),
            "tls-key-file-pass",
            pass,
        ]);
        assert_eq!(r, b"+OK\r\n", "{}: {}", key, srv.log());
        let t = TlsClient::connect(tls_port, cfg.clone()).unwrap();
        assert_ne!(leaf(&t), gen_der, "{}", key);
    }
    // A wrong password: refused, logged, the old material stays.
    let r = c.call(&["CONFIG", "SET", "tls-key-file-pass", "wrong"]);
    assert_eq!(String::from_utf8_lossy(&r), failed("tls-key-file-pass"));
    assert!(srv.log().contains("wrong password"), "{}", srv.log());
    let mut t = TlsClient::connect(tls_port, cfg.clone()).unwrap();
    assert_eq!(t.call(&[b"PING"]), b"+PONG\r\n");
    // An encrypted key without a password.
    let r = c.call(&["CONFIG", "SET", "tls-key-file-pass", ""]);
    assert_eq!(String::from_utf8_lossy(&r), failed("tls-key-file-pass"));
    assert!(srv.log().contains("tls-key-file-pass is not set"));
    // A legacy PEM key: refused with the conversion hint naming the file.
    let r = c.call(&["CONFIG", "SET", "tls-key-file", &pki.path("legacy.key")]);
    assert_eq!(String::from_utf8_lossy(&r), failed("tls-key-file"));
    let log = srv.log();
    assert!(
        log.contains("legacy.key: legacy OpenSSL PEM encryption") && log.contains("openssl pkcs8"),
        "{}",
        log
    );
    assert!(TlsClient::connect(tls_port, cfg).is_ok());
}

/// The subject and serial of the certificate a new connection gets, as openssl s_client
/// shows them.
fn s_client_subject_serial(pki: &Pki, port: u16) -> String {
    let conn = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", port),
            "-CAfile",
            &pki.path("ca.crt"),
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run openssl x509");
    x509.stdin.take().unwrap().write_all(&conn.stdout).unwrap();
    let out = x509.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn auto_reload_interval_picks_up_new_files() {
    let pki = new_pki();
    pki.leaf(
        "ca",
        "second",
        "/CN=second-cert",
        "serverAuth",
        "DNS:localhost,IP:127.0.0.1",
    );
    pki.leaf(
        "ca",
        "third",
        "/CN=third-cert",
        "serverAuth",
        "DNS:localhost,IP:127.0.0.1",
    );
    let (live_crt, live_key) = (pki.dir.join("live.crt"), pki.dir.join("live.key"));
    std::fs::copy(pki.dir.join("server.crt"), &live_crt).unwrap();
    std::fs::copy(pki.dir.join("server.key"), &live_key).unwrap();
    let (crt, key) = (
        live_crt.to_string_lossy().into_owned(),
        live_key.to_string_lossy().into_owned(),
    );
    let (srv, tls_port) = start_tls(
        &pki,
        &[
            "--tls-auth-clients",
            "no",
            "--tls-cert-file",
            &crt,
            "--tls-key-file",
            &key,
        ],
    );
    let mut c = srv.conn();
    assert_eq!(
        c.call(&["CONFIG", "GET", "tls-auto-reload-interval"]),
        b"*2\r\n$24\r\ntls-auto-reload-interval\r\n$1\r\n0\r\n"
    );
    let first = s_client_subject_serial(&pki, tls_port);
    assert!(first.contains("CN = localhost"), "{}", first);
    // Off (0, the default): replacing the files changes nothing.
    let replace = |name: &str| {
        // Write next to the live files, then rename over them (as a deployment would).
        for ext in ["crt", "key"] {
            let tmp = pki.dir.join(format!("tmp.{}", ext));
            std::fs::copy(pki.dir.join(format!("{}.{}", name, ext)), &tmp).unwrap();
            std::fs::rename(&tmp, pki.dir.join(format!("live.{}", ext))).unwrap();
        }
    };
    replace("second");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(s_client_subject_serial(&pki, tls_port), first);
    // On: the next check sees the change.
    assert_eq!(
        c.call(&["CONFIG", "SET", "tls-auto-reload-interval", "1"]),
        b"+OK\r\n"
    );
    let mut kept = TlsClient::connect(tls_port, client_config(&pki.path("ca.crt"), None)).unwrap();
    let mut seen = String::new();
    assert!(
        wait_for(Duration::from_secs(10), || {
            seen = s_client_subject_serial(&pki, tls_port);
            seen.contains("CN = second-cert")
        }),
        "{}\n{}",
        seen,
        srv.log()
    );
    assert_ne!(seen, first);
    assert!(srv
        .log()
        .contains("TLS materials changed on disk: reloaded"));
    // A connection made before the reload goes on.
    assert_eq!(kept.call(&[b"PING"]), b"+PONG\r\n");
    // A bad certificate file: logged, the current material stays.
    std::fs::write(&live_crt, "not a certificate\n").unwrap();
    assert!(wait_for(Duration::from_secs(10), || srv
        .log()
        .contains("Failed to reload TLS materials")));
    assert_eq!(s_client_subject_serial(&pki, tls_port), seen);
    // Fixed files are picked up again.
    replace("third");
    assert!(
        wait_for(Duration::from_secs(10), || s_client_subject_serial(
            &pki, tls_port
        )
        .contains("CN = third-cert")),
        "{}",
        srv.log()
    );
}
