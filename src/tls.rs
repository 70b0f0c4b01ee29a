//! TLS context built from the `tls-*` directives, as upstream's `tls.c` `tlsConfigure`,
//! on rustls with the *ring* provider.
//!
//! [`TlsSettings::from_config`] snapshots the directives; [`build`] turns them into a
//! [`TlsContext`] (the server side `ServerConfig` used for accepted connections and the
//! client side `ClientConfig` for outgoing replication/cluster links). Building is all or
//! nothing: a bad file or name returns an error and the caller keeps the old context, so
//! CONFIG SET of a certificate reloads atomically for new connections while existing
//! connections keep the material they were accepted with.
//!
//! Differences from upstream (OpenSSL), by design:
//! - TLSv1 and TLSv1.1 are refused with a config error (rustls implements neither).
//! - `tls-ciphers` accepts the OpenSSL names of the TLS 1.2 suites rustls implements
//!   (ECDHE with AES-GCM or ChaCha20-Poly1305), plus the keywords `DEFAULT`, `HIGH`, `ALL`
//!   and `!name` exclusions; any other name is an error (OpenSSL silently skips them).
//! - Encrypted private keys: PKCS#8 with PBES2 (PBKDF2, AES-CBC) only (src/tls/keyfile.rs);
//!   OpenSSL's legacy `Proc-Type: 4,ENCRYPTED` PEM is refused with a hint to convert.
//! - `tls-dh-params-file` is accepted but unused: rustls only does ECDHE.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::crypto::ring as ringp;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{StoresServerSessions, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite};

use crate::config::Config;

mod keyfile;

/// `tls-auth-clients`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthClients {
    No,
    Yes,
    Optional,
}

/// `tls-auth-clients-user`: which certificate field names the ACL user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthUserField {
    Off,
    Cn,
    Uri,
}

/// The `tls-*` directives that shape the context.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert_file: String,
    pub key_file: String,
    pub key_file_pass: String,
    pub client_cert_file: String,
    pub client_key_file: String,
    pub client_key_file_pass: String,
    pub ca_cert_file: String,
    pub ca_cert_dir: String,
    pub auth_clients: i32,
    pub protocols: String,
    pub ciphers: String,
    pub ciphersuites: String,
    pub prefer_server_ciphers: bool,
    pub session_caching: bool,
    pub session_cache_size: usize,
    pub session_cache_timeout: u64,
    pub replication: bool,
    pub cluster: bool,
}

fn cfg_str(cfg: &Config, name: &str) -> String {
    cfg.get(name).unwrap_or_default()
}

fn cfg_bool(cfg: &Config, name: &str) -> bool {
    cfg.get(name).as_deref() == Some("yes")
}

fn cfg_num(cfg: &Config, name: &str, default: u64) -> u64 {
    cfg.get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl TlsSettings {
    pub fn from_config(cfg: &Config) -> TlsSettings {
        TlsSettings {
            cert_file: cfg_str(cfg, "tls-cert-file"),
            key_file: cfg_str(cfg, "tls-key-file"),
            key_file_pass: cfg_str(cfg, "tls-key-file-pass"),
            client_cert_file: cfg_str(cfg, "tls-client-cert-file"),
            client_key_file: cfg_str(cfg, "tls-client-key-file"),
            client_key_file_pass: cfg_str(cfg, "tls-client-key-file-pass"),
            ca_cert_file: cfg_str(cfg, "tls-ca-cert-file"),
            ca_cert_dir: cfg_str(cfg, "tls-ca-cert-dir"),
            auth_clients: match cfg.get("tls-auth-clients").as_deref() {
                Some("no") => 0,
                Some("optional") => 2,
                _ => 1,
            },
            protocols: cfg_str(cfg, "tls-protocols"),
            ciphers: cfg_str(cfg, "tls-ciphers"),
            ciphersuites: cfg_str(cfg, "tls-ciphersuites"),
            prefer_server_ciphers: cfg_bool(cfg, "tls-prefer-server-ciphers"),
            session_caching: cfg_bool(cfg, "tls-session-caching"),
            session_cache_size: cfg_num(cfg, "tls-session-cache-size", 20480) as usize,
            session_cache_timeout: cfg_num(cfg, "tls-session-cache-timeout", 300),
            replication: cfg_bool(cfg, "tls-replication"),
            cluster: cfg_bool(cfg, "tls-cluster"),
        }
    }

    pub fn auth_clients(&self) -> AuthClients {
        match self.auth_clients {
            0 => AuthClients::No,
            2 => AuthClients::Optional,
            _ => AuthClients::Yes,
        }
    }
}

/// `tls-auth-clients-user` from the configuration.
pub fn auth_user_field(cfg: &Config) -> AuthUserField {
    match cfg.get("tls-auth-clients-user").as_deref() {
        Some(v) if v.eq_ignore_ascii_case("CN") => AuthUserField::Cn,
        Some(v) if v.eq_ignore_ascii_case("URI") => AuthUserField::Uri,
        _ => AuthUserField::Off,
    }
}

/// Whether TLS is in use at all (upstream configures the context only then).
pub fn tls_wanted(cfg: &Config) -> bool {
    cfg.get("tls-port").is_some_and(|p| p != "0")
        || cfg_bool(cfg, "tls-replication")
        || cfg_bool(cfg, "tls-cluster")
}

/// The directives whose CONFIG SET rebuilds the context (upstream's applyTlsCfg).
pub const RELOADING_DIRECTIVES: &[&str] = &[
    "tls-cert-file",
    "tls-key-file",
    "tls-key-file-pass",
    "tls-client-cert-file",
    "tls-client-key-file",
    "tls-client-key-file-pass",
    "tls-dh-params-file",
    "tls-ca-cert-file",
    "tls-ca-cert-dir",
    "tls-protocols",
    "tls-ciphers",
    "tls-ciphersuites",
    "tls-prefer-server-ciphers",
    "tls-session-caching",
    "tls-session-cache-size",
    "tls-session-cache-timeout",
    "tls-replication",
    "tls-cluster",
    "tls-auth-clients",
];

/// `tls-port`.
pub fn tls_port(cfg: &Config) -> u16 {
    cfg_num(cfg, "tls-port", 0).min(65535) as u16
}

/// `max-new-tls-connections-per-cycle`.
pub fn max_new_conns_per_cycle(cfg: &Config) -> usize {
    cfg_num(cfg, "max-new-tls-connections-per-cycle", 1).clamp(1, 1000) as usize
}

/// The built context: what new connections use.
#[derive(Clone, Debug)]
pub struct TlsContext {
    pub server: Arc<ServerConfig>,
    /// For outgoing links (the replica's link to its primary); None without a CA.
    pub client: Option<Arc<ClientConfig>>,
    /// The material files as they were (stat taken before reading them), for
    /// `tls-auto-reload-interval`.
    stamp: FilesStamp,
    /// A changed set of files that failed to build: not retried until they change again.
    rejected: Option<FilesStamp>,
    /// When the auto reload looks at the files next (ms).
    next_check_ms: i64,
}

/// What identifies a version of each material file: (path, (mtime s, mtime ns, inode,
/// device, size)), None when it cannot be read. The metadata follows symlinks, so a
/// symlink swapped to a new target (a Kubernetes secret volume) counts as a change.
type FilesStamp = Vec<(String, Option<(i64, i64, u64, u64, u64)>)>;

fn file_stamp(path: &std::path::Path) -> Option<(i64, i64, u64, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.mtime(), m.mtime_nsec(), m.ino(), m.dev(), m.size()))
}

/// Stats every file the context is built from (the CA directory and its entries too).
fn files_stamp(s: &TlsSettings) -> FilesStamp {
    let mut out = Vec::new();
    for f in [
        &s.cert_file,
        &s.key_file,
        &s.client_cert_file,
        &s.client_key_file,
        &s.ca_cert_file,
    ] {
        if !f.is_empty() {
            out.push((f.clone(), file_stamp(std::path::Path::new(f))));
        }
    }
    if !s.ca_cert_dir.is_empty() {
        let dir = std::path::Path::new(&s.ca_cert_dir);
        out.push((s.ca_cert_dir.clone(), file_stamp(dir)));
        if let Ok(rd) = std::fs::read_dir(dir) {
            let mut ents: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            ents.sort();
            for p in ents {
                let st = file_stamp(&p);
                out.push((p.to_string_lossy().into_owned(), st));
            }
        }
    }
    out
}

/// `tls-auto-reload-interval` (seconds, 0 = off), called from serverCron: every
/// interval, when any material file changed since the context was built, the context is
/// rebuilt from the same directives; new connections (and the next replication link) use
/// it, existing connections keep theirs. A build that fails is logged once and the old
/// material stays until the files change again.
pub fn auto_reload_cron(srv: &mut crate::server::Server) {
    let interval = cfg_num(&srv.config, "tls-auto-reload-interval", 0);
    if interval == 0 {
        return;
    }
    let now = srv.mstime;
    let Some(ctx) = srv.tls.as_mut() else {
        return;
    };
    if now < ctx.next_check_ms {
        return;
    }
    ctx.next_check_ms = now.saturating_add((interval as i64).saturating_mul(1000));
    let settings = TlsSettings::from_config(&srv.config);
    let stamp = files_stamp(&settings);
    if stamp == ctx.stamp || ctx.rejected.as_ref() == Some(&stamp) {
        return;
    }
    match build(&settings) {
        Ok(mut fresh) => {
            log::info!("TLS materials changed on disk: reloaded (tls-auto-reload-interval)");
            fresh.next_check_ms = ctx.next_check_ms;
            srv.tls = Some(fresh);
        }
        Err(e) => {
            log::warn!(
                "Failed to reload TLS materials (tls-auto-reload-interval), keeping the current ones: {}",
                e
            );
            ctx.rejected = Some(stamp);
        }
    }
}

const PROTO_12: u8 = 1;
const PROTO_13: u8 = 2;

/// `tls-protocols`: a space separated list, case-insensitive. Empty means the default
/// "TLSv1.2 TLSv1.3".
pub fn parse_protocols(s: &str) -> Result<u8, String> {
    let mut p = 0;
    for tok in s.split(' ').filter(|t| !t.is_empty()) {
        if tok.eq_ignore_ascii_case("tlsv1.2") {
            p |= PROTO_12;
        } else if tok.eq_ignore_ascii_case("tlsv1.3") {
            p |= PROTO_13;
        } else if tok.eq_ignore_ascii_case("tlsv1") || tok.eq_ignore_ascii_case("tlsv1.1") {
            return Err(format!(
                "{} is not supported: it is an obsolete, weak protocol. Use 'TLSv1.2' and/or 'TLSv1.3' in tls-protocols.",
                tok
            ));
        } else {
            return Err("Invalid tls-protocols specified. Use a combination of 'TLSv1', 'TLSv1.1', 'TLSv1.2' and 'TLSv1.3'.".to_string());
        }
    }
    Ok(if p == 0 { PROTO_12 | PROTO_13 } else { p })
}

/// OpenSSL names of the TLS 1.2 suites rustls implements, in OpenSSL's default order.
fn tls12_suites() -> [(&'static str, SupportedCipherSuite); 6] {
    use ringp::cipher_suite::*;
    [
        (
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "ECDHE-RSA-AES256-GCM-SHA384",
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "ECDHE-RSA-CHACHA20-POLY1305",
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "ECDHE-RSA-AES128-GCM-SHA256",
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
    ]
}

/// IANA names of the TLS 1.3 suites, in OpenSSL's default order.
fn tls13_suites() -> [(&'static str, SupportedCipherSuite); 3] {
    use ringp::cipher_suite::*;
    [
        ("TLS_AES_256_GCM_SHA384", TLS13_AES_256_GCM_SHA384),
        (
            "TLS_CHACHA20_POLY1305_SHA256",
            TLS13_CHACHA20_POLY1305_SHA256,
        ),
        ("TLS_AES_128_GCM_SHA256", TLS13_AES_128_GCM_SHA256),
    ]
}

/// `tls-ciphers` (TLS 1.2, OpenSSL cipher list syntax: names separated by ':', ',' or
/// spaces). Empty means every supported suite.
fn parse_ciphers(s: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let all = tls12_suites();
    if s.trim().is_empty() {
        return Ok(all.iter().map(|(_, cs)| *cs).collect());
    }
    let mut out: Vec<SupportedCipherSuite> = Vec::new();
    let mut excluded: Vec<SupportedCipherSuite> = Vec::new();
    for tok in s.split([':', ',', ' ']).filter(|t| !t.is_empty()) {
        let (neg, name) = match tok.as_bytes()[0] {
            b'!' | b'-' => (true, &tok[1..]),
            b'+' => (false, &tok[1..]),
            _ => (false, tok),
        };
        if name.starts_with('@') {
            continue; // @STRENGTH, @SECLEVEL=n: ordering/level hints.
        }
        let group: Vec<SupportedCipherSuite> = if ["DEFAULT", "HIGH", "ALL", "ECDHE", "EECDH"]
            .iter()
            .any(|k| name.eq_ignore_ascii_case(k))
        {
            all.iter().map(|(_, cs)| *cs).collect()
        } else if let Some((_, cs)) = all.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            vec![*cs]
        } else if neg {
            // Excluding something we never offer (!aNULL, !MD5, !RC4...) is a no-op.
            Vec::new()
        } else {
            return Err(format!(
                "Unsupported TLS 1.2 cipher '{}' in tls-ciphers. Supported: {}",
                name,
                all.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(":")
            ));
        };
        for cs in group {
            if neg {
                excluded.push(cs);
                out.retain(|x| x.suite() != cs.suite());
            } else if !out.iter().any(|x| x.suite() == cs.suite())
                && !excluded.iter().any(|x| x.suite() == cs.suite())
            {
                out.push(cs);
            }
        }
    }
    if out.is_empty() {
        return Err(format!("Failed to configure ciphers: {}", s));
    }
    Ok(out)
}

/// `tls-ciphersuites` (TLS 1.3, names separated by ':'). Empty means all.
fn parse_ciphersuites(s: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let all = tls13_suites();
    if s.trim().is_empty() {
        return Ok(all.iter().map(|(_, cs)| *cs).collect());
    }
    let mut out: Vec<SupportedCipherSuite> = Vec::new();
    for name in s.split([':', ',', ' ']).filter(|t| !t.is_empty()) {
        let Some((_, cs)) = all.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
            return Err(format!(
                "Unsupported TLS 1.3 ciphersuite '{}' in tls-ciphersuites. Supported: {}",
                name,
                all.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(":")
            ));
        };
        if !out.iter().any(|x| x.suite() == cs.suite()) {
            out.push(*cs);
        }
    }
    Ok(out)
}

fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {}", path, e))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {}", path, e))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path));
    }
    Ok(certs)
}

/// Loads a private key, decrypting a PKCS#8 encrypted one with `pass` (the directive
/// named `pass_name` holds it).
fn load_key(path: &str, pass: &str, pass_name: &str) -> Result<PrivateKeyDer<'static>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {}", path, e))?;
    match keyfile::classify(path, &data)? {
        keyfile::KeyKind::Plain => {
            PrivateKeyDer::from_pem_slice(&data).map_err(|e| format!("{}: {}", path, e))
        }
        keyfile::KeyKind::LegacyEncrypted => Err(format!(
            "{}: legacy OpenSSL PEM encryption (Proc-Type: 4,ENCRYPTED) is not supported; \
             convert the key to encrypted PKCS#8, e.g. openssl pkcs8 -topk8 -v2 aes-256-cbc \
             -in {} -out <new file>",
            path, path
        )),
        keyfile::KeyKind::Pkcs8Encrypted(der) => {
            if pass.is_empty() {
                return Err(format!(
                    "{}: the key is encrypted and {} is not set",
                    path, pass_name
                ));
            }
            keyfile::decrypt_pkcs8(&der, pass.as_bytes()).map_err(|e| format!("{}: {}", path, e))
        }
    }
}

fn load_roots(s: &TlsSettings) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    if !s.ca_cert_file.is_empty() {
        for c in load_certs(&s.ca_cert_file)? {
            roots
                .add(c)
                .map_err(|e| format!("{}: {}", s.ca_cert_file, e))?;
        }
    }
    if !s.ca_cert_dir.is_empty() {
        let rd =
            std::fs::read_dir(&s.ca_cert_dir).map_err(|e| format!("{}: {}", s.ca_cert_dir, e))?;
        // Like OpenSSL's hashed directory lookup, unreadable or non-PEM files are skipped.
        for ent in rd.flatten() {
            let Ok(data) = std::fs::read(ent.path()) else {
                continue;
            };
            for c in CertificateDer::pem_slice_iter(&data).flatten() {
                let _ = roots.add(c);
            }
        }
    }
    Ok(roots)
}

/// Builds the context, as upstream's `tlsConfigure`. Errors carry the message upstream
/// logs.
pub fn build(s: &TlsSettings) -> Result<TlsContext, String> {
    // Before any file is read: a change racing with the reads shows up next time.
    let stamp = files_stamp(s);
    if s.cert_file.is_empty() {
        return Err("No tls-cert-file configured!".into());
    }
    if s.key_file.is_empty() {
        return Err("No tls-key-file configured!".into());
    }
    if (s.auth_clients() != AuthClients::No || s.cluster || s.replication)
        && s.ca_cert_file.is_empty()
        && s.ca_cert_dir.is_empty()
    {
        return Err("Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-cluster, tls-replication or tls-auth-clients are enabled!".into());
    }
    let protocols = parse_protocols(&s.protocols)?;
    let mut suites = Vec::new();
    if protocols & PROTO_13 != 0 {
        suites.extend(
            parse_ciphersuites(&s.ciphersuites)
                .map_err(|e| format!("Failed to configure ciphersuites: {}", e))?,
        );
    }
    if protocols & PROTO_12 != 0 {
        suites.extend(
            parse_ciphers(&s.ciphers).map_err(|e| format!("Failed to configure ciphers: {}", e))?,
        );
    }
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if protocols & PROTO_13 != 0 {
        versions.push(&rustls::version::TLS13);
    }
    if protocols & PROTO_12 != 0 {
        versions.push(&rustls::version::TLS12);
    }
    let provider = Arc::new(CryptoProvider {
        cipher_suites: suites,
        ..ringp::default_provider()
    });

    let chain =
        load_certs(&s.cert_file).map_err(|e| format!("Failed to load certificate: {}", e))?;
    let key = load_key(&s.key_file, &s.key_file_pass, "tls-key-file-pass")
        .map_err(|e| format!("Failed to load private key: {}", e))?;
    let roots = Arc::new(load_roots(s).map_err(|e| {
        format!(
            "Failed to configure CA certificate(s) file/directory: {}",
            e
        )
    })?);

    let verifier = match s.auth_clients() {
        AuthClients::No => WebPkiClientVerifier::no_client_auth(),
        mode => {
            let b = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
            let b = if mode == AuthClients::Optional {
                b.allow_unauthenticated()
            } else {
                b
            };
            b.build()
                .map_err(|e| format!("Failed to configure client verification: {}", e))?
        }
    };
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("Failed to configure protocols: {}", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| format!("Failed to load private key: {}: {}", s.key_file, e))?;
    server.ignore_client_order = s.prefer_server_ciphers;
    if s.session_caching {
        server.session_storage = Arc::new(SessionCache::new(
            s.session_cache_size,
            Duration::from_secs(s.session_cache_timeout),
        ));
    } else {
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
    }

    // The client side (replication, cluster bus): the client certificate if configured,
    // else the server's own, as upstream falls back to the server context.
    let (cchain, ckey) = if !s.client_cert_file.is_empty() && !s.client_key_file.is_empty() {
        (
            load_certs(&s.client_cert_file)
                .map_err(|e| format!("Failed to load certificate: {}", e))?,
            load_key(
                &s.client_key_file,
                &s.client_key_file_pass,
                "tls-client-key-file-pass",
            )
            .map_err(|e| format!("Failed to load private key: {}", e))?,
        )
    } else {
        (chain, key)
    };
    // Without a CA there is nothing to verify a primary against (tls-replication and
    // tls-cluster require one, checked above): no outgoing context then.
    let client = if roots.is_empty() {
        None
    } else {
        let server_verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| format!("Failed to configure server verification: {}", e))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| format!("Failed to configure protocols: {}", e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnlyVerifier(server_verifier)))
            .with_client_auth_cert(cchain, ckey)
            .map_err(|e| format!("Failed to load private key: {}", e))?;
        Some(Arc::new(client))
    };

    Ok(TlsContext {
        server: Arc::new(server),
        client,
        stamp,
        rejected: None,
        next_check_ms: 0,
    })
}

/// Verifies the peer's chain against the configured CAs but not its name, as upstream's
/// outgoing TLS links (OpenSSL with SSL_VERIFY_PEER and no host check): a replica may
/// name its primary by any address the certificate does not list.
#[derive(Debug)]
struct ChainOnlyVerifier(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError as CE;
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CE::NotValidForName | CE::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A server-side session cache bounded in size (oldest evicted first) whose entries
/// expire after `tls-session-cache-timeout` seconds, as OpenSSL's internal cache.
#[derive(Debug)]
pub struct SessionCache {
    inner: Mutex<SessionInner>,
    max: usize,
    ttl: Duration,
}

#[derive(Debug, Default)]
struct SessionInner {
    map: HashMap<Vec<u8>, (Vec<u8>, Instant)>,
    order: VecDeque<Vec<u8>>,
}

impl SessionCache {
    pub fn new(size: usize, ttl: Duration) -> SessionCache {
        // OpenSSL reads 0 as "no limit"; keep a bound anyway (each entry is small).
        let max = if size == 0 { 1 << 20 } else { size };
        SessionCache {
            inner: Mutex::new(SessionInner::default()),
            max,
            ttl,
        }
    }
}

impl StoresServerSessions for SessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let Ok(mut g) = self.inner.lock() else {
            return false;
        };
        if g.map.insert(key.clone(), (value, Instant::now())).is_none() {
            g.order.push_back(key);
        }
        while g.map.len() > self.max {
            match g.order.pop_front() {
                Some(k) => {
                    g.map.remove(&k);
                }
                None => break,
            }
        }
        // Keep the order queue from growing with keys already taken.
        if g.order.len() > 2 * self.max.min(g.map.len().max(16)) {
            let SessionInner { map, order } = &mut *g;
            order.retain(|k| map.contains_key(k));
        }
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let g = self.inner.lock().ok()?;
        let (v, t) = g.map.get(key)?;
        (t.elapsed() <= self.ttl).then(|| v.clone())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut g = self.inner.lock().ok()?;
        let (v, t) = g.map.remove(key)?;
        (t.elapsed() <= self.ttl).then_some(v)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------------------
// Client certificate fields for `tls-auth-clients-user` (a minimal DER reader).

/// One DER TLV: (tag, contents, rest).
fn der_next(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let l0 = *b.get(1)? as usize;
    let (len, hdr) = if l0 < 0x80 {
        (l0, 2)
    } else {
        let n = l0 & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    if end > b.len() {
        return None;
    }
    Some((tag, &b[hdr..end], &b[end..]))
}

/// The TBSCertificate fields: (subject, extensions contents if present).
fn tbs_fields(cert: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (_, certseq, _) = der_next(cert)?;
    let (_, tbs, _) = der_next(certseq)?;
    let mut rest = tbs;
    let (tag, _, r) = der_next(rest)?;
    if tag == 0xa0 {
        rest = r; // [0] version
    }
    let (_, _, r) = der_next(rest)?; // serial
    let (_, _, r) = der_next(r)?; // signature alg
    let (_, _, r) = der_next(r)?; // issuer
    let (_, _, r) = der_next(r)?; // validity
    let (_, subject, mut r) = der_next(r)?;
    let (_, _, r2) = der_next(r)?; // subjectPublicKeyInfo
    r = r2;
    let mut exts = None;
    while !r.is_empty() {
        let (tag, body, r2) = der_next(r)?;
        if tag == 0xa3 {
            exts = Some(der_next(body)?.1);
        }
        r = r2;
    }
    Some((subject, exts))
}

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// The subject's commonName.
pub fn cert_common_name(cert: &[u8]) -> Option<String> {
    let (subject, _) = tbs_fields(cert)?;
    let mut rdns = subject;
    while !rdns.is_empty() {
        let (_, set, r) = der_next(rdns)?;
        rdns = r;
        let mut atvs = set;
        while !atvs.is_empty() {
            let (_, atv, r2) = der_next(atvs)?;
            atvs = r2;
            let (_, oid, val) = der_next(atv)?;
            if oid == OID_CN {
                let (_, v, _) = der_next(val)?;
                return String::from_utf8(v.to_vec()).ok();
            }
        }
    }
    None
}

/// The subjectAltName URIs, in order.
pub fn cert_san_uris(cert: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Some((_, Some(exts))) = tbs_fields(cert) else {
        return out;
    };
    let mut r = exts;
    while let Some((_, ext, r2)) = der_next(r) {
        r = r2;
        let Some((_, oid, mut body)) = der_next(ext) else {
            break;
        };
        if oid != OID_SAN {
            continue;
        }
        // Optional critical BOOLEAN, then the OCTET STRING.
        if let Some((0x01, _, b2)) = der_next(body) {
            body = b2;
        }
        let Some((_, octets, _)) = der_next(body) else {
            break;
        };
        let Some((_, names, _)) = der_next(octets) else {
            break;
        };
        let mut n = names;
        while let Some((tag, v, n2)) = der_next(n) {
            n = n2;
            // uniformResourceIdentifier [6] IA5String; no NUL inside, as upstream.
            if tag == 0x86 && !v.is_empty() && !v.contains(&0) {
                if let Ok(s) = std::str::from_utf8(v) {
                    out.push(s.to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols() {
        assert_eq!(parse_protocols("").unwrap(), PROTO_12 | PROTO_13);
        assert_eq!(parse_protocols("TLSv1.2").unwrap(), PROTO_12);
        assert_eq!(
            parse_protocols("tlsv1.3 TLSv1.2").unwrap(),
            PROTO_12 | PROTO_13
        );
        assert!(parse_protocols("TLSv1.1 TLSv1.2")
            .unwrap_err()
            .contains("not supported"));
        assert!(parse_protocols("TLSv1").is_err());
        assert!(parse_protocols("SSLv3").unwrap_err().starts_with("Invalid"));
    }

    #[test]
    fn ciphers() {
        assert_eq!(parse_ciphers("").unwrap().len(), 6);
        assert_eq!(
            parse_ciphers("ECDHE-RSA-AES128-GCM-SHA256:!aNULL")
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            parse_ciphers("DEFAULT:!ECDHE-RSA-AES128-GCM-SHA256")
                .unwrap()
                .len(),
            5
        );
        assert!(parse_ciphers("RC4-MD5").unwrap_err().contains("RC4-MD5"));
        assert_eq!(
            parse_ciphersuites("TLS_AES_128_GCM_SHA256").unwrap().len(),
            1
        );
        assert!(parse_ciphersuites("TLS_AES_128_CCM_SHA256").is_err());
    }

    #[test]
    fn der_reader_is_total() {
        // Garbage never panics.
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 0x30) as u8).collect();
            let _ = cert_common_name(&junk);
            let _ = cert_san_uris(&junk);
        }
        assert!(der_next(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
    }

    #[test]
    fn session_cache_bounds() {
        let c = SessionCache::new(2, Duration::from_secs(60));
        for i in 0..10u8 {
            assert!(c.put(vec![i], vec![i]));
        }
        assert!(c.get(&[9]).is_some());
        assert!(c.get(&[0]).is_none());
        assert_eq!(c.take(&[8]), Some(vec![8]));
        assert!(c.get(&[8]).is_none());
    }
}
