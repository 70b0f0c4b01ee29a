//! The server's encryption keys (issue 14; the format is `rdb::crypt`,
//! docs/encryption.md): `persistence-encryption-key-file` encrypts every snapshot and
//! AOF file written from now on; `persistence-encryption-old-key-file` is a second key
//! files may still be read with (rotation). Both are read, checked (owner-only) and
//! installed at start-up and by CONFIG SET; a forked child inherits them.

use std::sync::{Arc, Mutex};

pub use ::rdb::crypt::{is_encrypted, EncWriter, Identity, Key, Sealer};

use crate::config::Config;

/// The keys in force.
#[derive(Debug, Default, Clone)]
pub struct Keys {
    pub current: Option<Arc<Key>>,
    pub old: Option<Arc<Key>>,
}

static KEYS: Mutex<Option<Keys>> = Mutex::new(None);

fn read_one(cfg: &Config, name: &str) -> Result<Option<Arc<Key>>, String> {
    let path = cfg.get(name).unwrap_or_default();
    if path.is_empty() {
        return Ok(None);
    }
    ::rdb::crypt::load_key_file(&path)
        .map(|k| Some(Arc::new(k)))
        .map_err(|e| format!("{name}: {e}"))
}

/// Reads both key files named by `cfg`.
pub fn keys_from_config(cfg: &Config) -> Result<Keys, String> {
    Ok(Keys {
        current: read_one(cfg, "persistence-encryption-key-file")?,
        old: read_one(cfg, "persistence-encryption-old-key-file")?,
    })
}

/// Installs keys read by [`keys_from_config`].
pub fn install(k: Keys) {
    if let Ok(mut g) = KEYS.lock() {
        *g = Some(k);
    }
}

fn keys() -> Keys {
    KEYS.lock().ok().and_then(|g| g.clone()).unwrap_or_default()
}

/// The key new files are written with, when encryption is on.
pub fn current() -> Option<Arc<Key>> {
    keys().current
}

/// Decrypts a file read whole with the current or the old key; errors name the file
/// and the offset in it.
pub fn decrypt_file(buf: Vec<u8>, name: &str) -> Result<::rdb::crypt::Decrypted, String> {
    let k = keys();
    let list: Vec<&Key> = k.current.iter().chain(k.old.iter()).map(|a| &**a).collect();
    ::rdb::crypt::decrypt_vec(buf, &list).map_err(|e| {
        format!(
            "Can't decrypt the encrypted file {} at offset {}: {}",
            name, e.offset, e.reason
        )
    })
}

/// The identity an RDB file at `path` is loaded (and written) as: its file name
/// (`dbfilename`).
pub fn rdb_identity(path: &str) -> Identity {
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string());
    Identity::rdb(&name)
}

/// Checks that a decrypted file is the one expected (`want`, as `by` names it): a file
/// renamed or swapped with another authenticates but was written as another identity.
/// A format 1 file has no identity: it loads, with a warning.
pub fn check_identity(
    d: &::rdb::crypt::Decrypted,
    file: &str,
    want: &Identity,
    by: &str,
) -> Result<(), String> {
    match &d.identity {
        Some(found) => match ::rdb::crypt::identity_mismatch(found, want, by) {
            Some(why) => Err(format!(
                "Can't load the encrypted file {file} (header offset 11): it {why}"
            )),
            None => Ok(()),
        },
        None => {
            log::warn!(
                "The encrypted file {} has no identity (format version 1): a renamed or \
                 swapped copy would load as well; the next save or rewrite replaces it",
                file
            );
            Ok(())
        }
    }
}

/// INFO persistence: whether encryption is on and the key fingerprints (never a key).
/// Only when a key is configured: otherwise INFO lists exactly upstream's fields.
pub fn info_fields(s: &mut String) {
    let k = keys();
    if k.current.is_none() && k.old.is_none() {
        return;
    }
    let fp = |k: &Option<Arc<Key>>| k.as_ref().map(|k| k.fingerprint()).unwrap_or_default();
    s.push_str(&format!(
        "persistence_encryption:{}\r\npersistence_encryption_key_fingerprint:{}\r\n\
         persistence_encryption_old_key_fingerprint:{}\r\n",
        if k.current.is_some() { "on" } else { "off" },
        fp(&k.current),
        fp(&k.old),
    ));
}

/// A file written plainly, or through the streaming cipher when
/// `persistence-encryption-key-file` is set: the RDB file, an AOF base, the replica's
/// copy of a full sync.
pub enum MaybeEnc<W: std::io::Write> {
    Plain(W),
    Enc(Box<EncWriter<W>>),
}

impl<W: std::io::Write> MaybeEnc<W> {
    /// Starts a snapshot file on `out`, to be named as `id` says (writes the header,
    /// which binds the file to `id`, when encrypting).
    pub fn new(out: W, id: &Identity) -> std::io::Result<MaybeEnc<W>> {
        Ok(match current() {
            Some(key) => MaybeEnc::Enc(Box::new(EncWriter::new(out, &key, id)?)),
            None => MaybeEnc::Plain(out),
        })
    }

    /// Ends the file (the final chunk when encrypting) and returns `out`.
    pub fn finish(self) -> std::io::Result<W> {
        match self {
            MaybeEnc::Plain(mut w) => {
                w.flush()?;
                Ok(w)
            }
            MaybeEnc::Enc(e) => e.finish(),
        }
    }
}

impl<W: std::io::Write> std::io::Write for MaybeEnc<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            MaybeEnc::Plain(w) => w.write(buf),
            MaybeEnc::Enc(e) => e.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            MaybeEnc::Plain(w) => w.write_all(buf),
            MaybeEnc::Enc(e) => e.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            MaybeEnc::Plain(w) => w.flush(),
            MaybeEnc::Enc(e) => e.flush(),
        }
    }
}

/// Opens a snapshot to send as it is stored in plaintext (a disk-based full sync: the
/// replication stream stays plaintext, `tls-replication` protects it): an encrypted file
/// is decrypted into an anonymous memory file (memfd), never to disk. Returns the file
/// positioned at 0 and its plaintext size.
pub fn open_plain_snapshot(path: &str) -> std::io::Result<(std::fs::File, u64)> {
    use std::io::{Read, Seek, Write};
    use std::os::fd::FromRawFd;
    let mut f = std::fs::File::open(path)?;
    let mut magic = [0u8; 8];
    let n = f.read(&mut magic)?;
    if !is_encrypted(&magic[..n]) {
        f.rewind()?;
        let size = f.metadata()?.len();
        return Ok((f, size));
    }
    f.rewind()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let d = decrypt_file(buf, path).map_err(std::io::Error::other)?;
    check_identity(&d, path, &rdb_identity(path), "dbfilename").map_err(std::io::Error::other)?;
    // SAFETY: memfd_create with a static NUL-terminated name; a non-negative result is
    // a fresh descriptor owned by the File built from it.
    let fd = unsafe { libc::memfd_create(c"valkey-rs-sync".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: see above.
    let mut m = unsafe { std::fs::File::from_raw_fd(fd) };
    m.write_all(&d.plain)?;
    m.rewind()?;
    Ok((m, d.plain.len() as u64))
}

/// Writes a snapshot received from a primary to `path` (created 0600), encrypted when
/// a key is set, as the RDB file `name` (it is renamed to it).
pub fn write_snapshot_file(path: &str, name: &str, payload: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let mut w = MaybeEnc::new(f, &rdb_identity(name))?;
    w.write_all(payload)?;
    w.finish()?;
    Ok(())
}
