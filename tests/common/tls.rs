//! The TLS test kit of tests/tls.rs and tests/tls_replication.rs: certificates made at
//! test time with the `openssl` command line, and a blocking rustls client. Included by
//! those two files only (`#[path]`), so the rest of tests/common stays std only.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::common::encode_command;

/// Runs `openssl args...` in `dir`; a failure fails the test with openssl's stderr.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {:?}: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// CAs and certificates in a temporary directory, removed on drop.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// An empty directory named after the process, `tag` and the test's thread.
    pub fn empty(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "valkey-rs-{}-{}-{:?}",
            tag,
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Pki { dir }
    }

    /// A self-signed CA: `<name>.key`, `<name>.crt`.
    pub fn ca(&self, name: &str) {
        openssl(
            &self.dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={} test CA", name),
                "-keyout",
                &format!("{}.key", name),
                "-out",
                &format!("{}.crt", name),
            ],
        );
    }

    /// A certificate `<name>.crt` / `<name>.key` signed by CA `ca`, with the given
    /// subject, extended key usage and subject alternative names.
    pub fn leaf(&self, ca: &str, name: &str, subj: &str, eku: &str, san: &str) {
        let ext = format!("{}.ext", name);
        std::fs::write(
            self.dir.join(&ext),
            format!("extendedKeyUsage={}\nsubjectAltName={}\n", eku, san),
        )
        .unwrap();
        let (key, csr, crt) = (
            format!("{}.key", name),
            format!("{}.csr", name),
            format!("{}.crt", name),
        );
        openssl(
            &self.dir,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-subj", subj, "-keyout", &key, "-out",
                &csr,
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{}.crt", ca),
                "-CAkey",
                &format!("{}.key", ca),
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &crt,
                "-extfile",
                &ext,
            ],
        );
    }

    pub fn path(&self, f: &str) -> String {
        self.dir.join(f).to_string_lossy().into_owned()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A rustls client configuration trusting the CA file `ca`, with a client certificate
/// and key when given.
pub fn client_config(ca: &str, cert: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let cfg = match cert {
        Some((c, k)) => b
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(c)
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_file(k).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    Arc::new(cfg)
}

/// A blocking rustls client.
pub struct TlsClient {
    pub s: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl TlsClient {
    /// Connects to 127.0.0.1:`port`, expecting a certificate for `name`, and finishes
    /// the handshake (so a refused handshake fails here).
    pub fn connect_to(
        port: u16,
        cfg: Arc<rustls::ClientConfig>,
        name: &str,
    ) -> std::io::Result<TlsClient> {
        let sock = TcpStream::connect(("127.0.0.1", port))?;
        sock.set_read_timeout(Some(Duration::from_secs(20)))?;
        sock.set_nodelay(true)?;
        let name = ServerName::try_from(name.to_string()).map_err(std::io::Error::other)?;
        let conn = rustls::ClientConnection::new(cfg, name).map_err(std::io::Error::other)?;
        let mut c = TlsClient {
            s: rustls::StreamOwned::new(conn, sock),
        };
        while c.s.conn.is_handshaking() {
            c.s.conn.complete_io(&mut c.s.sock)?;
        }
        Ok(c)
    }

    /// [`connect_to`](Self::connect_to) for a certificate naming `localhost`.
    pub fn connect(port: u16, cfg: Arc<rustls::ClientConfig>) -> std::io::Result<TlsClient> {
        Self::connect_to(port, cfg, "localhost")
    }

    pub fn send(&mut self, argv: &[&[u8]]) {
        self.s.write_all(&encode_command(argv)).unwrap();
    }

    /// One reply: a line, or a bulk string's body (simple types and bulk strings only).
    pub fn reply(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            self.s.read_exact(&mut b).expect("read reply");
            line.push(b[0]);
        }
        if line[0] == b'$' {
            let n: i64 = std::str::from_utf8(&line[1..line.len() - 2])
                .unwrap()
                .parse()
                .unwrap();
            if n < 0 {
                return line;
            }
            let mut body = vec![0u8; n as usize + 2];
            self.s.read_exact(&mut body).expect("read bulk");
            body.truncate(n as usize);
            return body;
        }
        line
    }

    pub fn call(&mut self, argv: &[&[u8]]) -> Vec<u8> {
        self.send(argv);
        self.reply()
    }
}
