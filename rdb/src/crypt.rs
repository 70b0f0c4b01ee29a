//! Encryption at rest of RDB and AOF files (issue 14): a streaming, chunked,
//! authenticated format shared by the server (snapshots, AOF base and incremental
//! files) and the check tools. The format is described in docs/encryption.md.
//!
//! ```text
//! header (plaintext, authenticated as part of every chunk's AD)
//!   0  8  magic "VKRS-ENC" (neither REDIS nor VALKEY: upstream refuses the file)
//!   8  1  format version (2; 1 is still read: no identity)
//!   9  1  algorithm (1 = AES-256-GCM)
//!  10  1  kind (1 = snapshot: must end with a final chunk; 2 = append log)
//!  11  1  role (version 2): 1 RDB file, 2 AOF base, 3 AOF incr (version 1: 0)
//!  12  4  largest plaintext of a chunk, u32 LE (65536)
//!  16  8  key fingerprint (the first 8 bytes of HMAC-SHA256(key, "valkey-rs key fingerprint v1"))
//!  24 24  random salt
//! version 2 only, the file's identity:
//!  48  8  sequence number, u64 LE (the manifest's `seq`; 0 for an RDB file)
//!  56  1  name length n (1..=255)
//!  57  n  the file's name (as the manifest records it; `dbfilename` for an RDB file)
//! chunks, one after the other
//!   4 bytes LE word: bits 0..=29 plaintext length n, bit 30 commit, bit 31 final
//!   n bytes ciphertext, 16 bytes GCM tag
//! ```
//!
//! The file key and a nonce base come from HKDF-SHA256(salt, key, info); chunk `i`'s
//! nonce is the base with `i` (big endian) XORed into its last 8 bytes. The associated
//! data of chunk `i` is the whole header (identity included), `i` as u64 BE and the
//! chunk's 4-byte word: a chunk moved, swapped, dropped, copied from another file or
//! altered (flags and length included) fails authentication, and so does a header
//! whose identity was edited; a file renamed or swapped with another authenticates but
//! names another identity than the one it is loaded as ([`identity_mismatch`]). A
//! snapshot ends with exactly one chunk flagged final; an append log's batches end with
//! a chunk flagged commit (a crash can tear the last batch: that is a truncated AOF).

use std::io::{self, Write};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

/// The file magic.
pub const MAGIC: &[u8; 8] = b"VKRS-ENC";
/// Length of the fixed part of the header (all of it in format version 1).
pub const FIXED_HEADER_LEN: usize = 48;
/// Longest header: the fixed part, the sequence number, a 255-byte name.
pub const MAX_HEADER_LEN: usize = FIXED_HEADER_LEN + 8 + 1 + 255;
/// Largest plaintext of one chunk written.
pub const CHUNK: usize = 64 * 1024;
/// Largest chunk size a reader accepts in a header.
const CHUNK_LIMIT: u32 = 1 << 20;
/// The version written: 2 (the file's identity in the header).
const VERSION: u8 = 2;
const VERSION_1: u8 = 1;
const ALG_AES_256_GCM: u8 = 1;
const TAG_LEN: usize = 16;
const FLAG_FINAL: u32 = 1 << 31;
const FLAG_COMMIT: u32 = 1 << 30;
const LEN_MASK: u32 = (1 << 30) - 1;
const HKDF_INFO: &[u8] = b"valkey-rs persistence encryption v1";
const FP_INFO: &[u8] = b"valkey-rs key fingerprint v1";

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An RDB file or an AOF base: written once, ends with a final chunk.
    Snapshot = 1,
    /// An AOF incremental file: batches appended, no final chunk.
    Log = 2,
}

/// The role a file was written for (format version 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The snapshot file (`dbfilename`).
    Rdb = 1,
    /// The AOF base named by the manifest.
    AofBase = 2,
    /// An AOF incremental file named by the manifest.
    AofIncr = 3,
}

impl Role {
    /// The file kind a role is written as.
    pub fn kind(self) -> Kind {
        match self {
            Role::Rdb | Role::AofBase => Kind::Snapshot,
            Role::AofIncr => Kind::Log,
        }
    }

    fn from_byte(b: u8) -> Option<Role> {
        match b {
            1 => Some(Role::Rdb),
            2 => Some(Role::AofBase),
            3 => Some(Role::AofIncr),
            _ => None,
        }
    }
}

/// What a file is: its role, its sequence number in the manifest (0 for an RDB file)
/// and its name as the manifest records it (`dbfilename` for an RDB file). Written in
/// the header and authenticated with every chunk: a file renamed or swapped with
/// another is refused by a reader that knows the identity it expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub role: Role,
    pub seq: u64,
    pub name: String,
}

impl Identity {
    /// The RDB file named `name` (`dbfilename`).
    pub fn rdb(name: &str) -> Identity {
        Identity {
            role: Role::Rdb,
            seq: 0,
            name: name.to_string(),
        }
    }

    /// An AOF file of the manifest: its base or an incremental file.
    pub fn aof(base: bool, seq: u64, name: &str) -> Identity {
        Identity {
            role: if base { Role::AofBase } else { Role::AofIncr },
            seq,
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.role {
            Role::Rdb => write!(f, "the RDB file {}", self.name),
            Role::AofBase => write!(f, "the base file {} (seq {})", self.name, self.seq),
            Role::AofIncr => write!(f, "the incr file {} (seq {})", self.name, self.seq),
        }
    }
}

/// When a file's identity is not the one it is loaded as: the reason, e.g. "was
/// written as the incr file a.2.incr.aof (seq 2) but the manifest names it as the incr
/// file a.3.incr.aof (seq 3): a renamed or swapped file". `by` names who expects `want`.
pub fn identity_mismatch(found: &Identity, want: &Identity, by: &str) -> Option<String> {
    (found != want).then(|| {
        format!("was written as {found} but {by} names it as {want}: a renamed or swapped file")
    })
}

/// A 256-bit key and its public fingerprint.
#[derive(Clone)]
pub struct Key {
    bytes: [u8; 32],
    fp: [u8; 8],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.fingerprint())
    }
}

impl Key {
    /// A key from its 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Key {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes);
        let tag = ring::hmac::sign(&k, FP_INFO);
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&tag.as_ref()[..8]);
        Key { bytes, fp }
    }

    /// Parses a key file's content: exactly 32 raw bytes, or 64 hex digits (surrounding
    /// whitespace allowed).
    pub fn parse(content: &[u8]) -> Result<Key, String> {
        if content.len() == 32 {
            let mut b = [0u8; 32];
            b.copy_from_slice(content);
            return Ok(Key::new(b));
        }
        let t = content.trim_ascii();
        if t.len() == 64 && t.iter().all(u8::is_ascii_hexdigit) {
            let mut b = [0u8; 32];
            for (i, pair) in t.chunks(2).enumerate() {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                b[i] = hex(pair[0]) << 4 | hex(pair[1]);
            }
            return Ok(Key::new(b));
        }
        Err(format!(
            "it must hold a 256-bit key: 32 raw bytes or 64 hex digits (it holds {} bytes)",
            content.len()
        ))
    }

    /// The fingerprint: 16 hex digits, safe to show.
    pub fn fingerprint(&self) -> String {
        hex(&self.fp)
    }

    fn fp_bytes(&self) -> [u8; 8] {
        self.fp
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads a key file: it must be owner-only (no group or other permission bits) and
/// hold a key ([`Key::parse`]). The error names the file.
pub fn load_key_file(path: &str) -> Result<Key, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("can't open key file {path}: {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "key file {path} is accessible by group or others (mode {mode:04o}): it must be \
             owner-only (chmod 600 {path})"
        ));
    }
    if !meta.is_file() {
        return Err(format!("key file {path} is not a regular file"));
    }
    let content = std::fs::read(path).map_err(|e| format!("can't read key file {path}: {e}"))?;
    Key::parse(&content).map_err(|e| format!("key file {path}: {e}"))
}

/// Whether `buf` starts like an encrypted file.
pub fn is_encrypted(buf: &[u8]) -> bool {
    buf.starts_with(MAGIC)
}

/// The length of the complete header `buf` starts with, when the fixed part is
/// there: 48 for format version 1, 57 + the name length for version 2 (the length may
/// exceed `buf.len()`: a torn header).
fn header_len(buf: &[u8]) -> Option<usize> {
    match buf.get(8).copied() {
        Some(VERSION) => Some(match buf.get(FIXED_HEADER_LEN + 8) {
            Some(&n) => FIXED_HEADER_LEN + 9 + n as usize,
            None => FIXED_HEADER_LEN + 9,
        }),
        Some(_) => Some(FIXED_HEADER_LEN),
        None => None,
    }
}

/// Whether `buf` is the beginning of an encrypted file's header and nothing more (a
/// file torn while its header was written).
pub fn is_partial_header(buf: &[u8]) -> bool {
    if buf.is_empty() {
        return false;
    }
    if buf.len() < MAGIC.len() {
        return MAGIC.starts_with(buf);
    }
    buf.starts_with(MAGIC) && header_len(buf).is_none_or(|n| buf.len() < n)
}

/// The key fingerprint an encrypted file's header names (16 hex digits).
pub fn file_fingerprint(buf: &[u8]) -> Option<String> {
    buf.get(16..24).filter(|_| is_encrypted(buf)).map(hex)
}

struct HkdfLen(usize);

impl ring::hkdf::KeyType for HkdfLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// The AEAD key and nonce base of one file, and its header (the prefix of every
/// chunk's associated data).
struct FileKey {
    aead: LessSafeKey,
    nonce_base: [u8; 12],
    header: Vec<u8>,
}

impl FileKey {
    fn derive(key: &Key, header: &[u8]) -> FileKey {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &header[24..48]);
        let prk = salt.extract(&key.bytes);
        let mut okm = [0u8; 44];
        // 44 bytes is far below HKDF-SHA256's limit of 255 * 32: expand cannot fail.
        if let Ok(o) = prk.expand(&[HKDF_INFO], HkdfLen(44)) {
            let _ = o.fill(&mut okm);
        }
        let mut nonce_base = [0u8; 12];
        nonce_base.copy_from_slice(&okm[32..]);
        // A 32-byte key is always a valid AES-256 key.
        let unbound = UnboundKey::new(&AES_256_GCM, &okm[..32]).unwrap_or_else(|_| {
            unreachable!("AES-256 key length");
        });
        FileKey {
            aead: LessSafeKey::new(unbound),
            nonce_base,
            header: header.to_vec(),
        }
    }

    fn nonce(&self, index: u64) -> Nonce {
        let mut n = self.nonce_base;
        for (i, b) in index.to_be_bytes().iter().enumerate() {
            n[4 + i] ^= b;
        }
        Nonce::assume_unique_for_key(n)
    }

    /// Chunk `index`'s associated data, built in `buf`: the header, the index (u64
    /// BE), the chunk's word (u32 LE).
    fn aad<'a>(&self, buf: &'a mut [u8; MAX_HEADER_LEN + 12], index: u64, word: u32) -> &'a [u8] {
        let h = self.header.len();
        buf[..h].copy_from_slice(&self.header);
        buf[h..h + 8].copy_from_slice(&index.to_be_bytes());
        buf[h + 8..h + 12].copy_from_slice(&word.to_le_bytes());
        &buf[..h + 12]
    }
}

/// Encrypts chunks of one file, in order. Every chunk index is used once: a file is
/// never resumed after it was read back (a cut file's indexes would be reused).
pub struct Sealer {
    fk: FileKey,
    next: u64,
    fp: String,
    identity: Identity,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Sealer({}, key {}, next chunk {})",
            self.identity, self.fp, self.next
        )
    }
}

impl Sealer {
    /// A new file written as `id` (its kind follows the role): a random salt. Returns
    /// the sealer and the header to write first. A name of 0 or more than 255 bytes
    /// is refused (a file name has 1 to 255).
    pub fn new(key: &Key, id: &Identity) -> io::Result<(Sealer, Vec<u8>)> {
        use ring::rand::SecureRandom;
        let name = id.name.as_bytes();
        if name.is_empty() || name.len() > 255 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "an encrypted file needs a name of 1 to 255 bytes, not {} bytes",
                    name.len()
                ),
            ));
        }
        let mut h = vec![0u8; FIXED_HEADER_LEN + 9 + name.len()];
        h[..8].copy_from_slice(MAGIC);
        h[8] = VERSION;
        h[9] = ALG_AES_256_GCM;
        h[10] = id.role.kind() as u8;
        h[11] = id.role as u8;
        h[12..16].copy_from_slice(&(CHUNK as u32).to_le_bytes());
        h[16..24].copy_from_slice(&key.fp_bytes());
        ring::rand::SystemRandom::new()
            .fill(&mut h[24..48])
            .map_err(|_| io::Error::other("no random bytes for the file salt"))?;
        h[48..56].copy_from_slice(&id.seq.to_le_bytes());
        h[56] = name.len() as u8;
        h[57..].copy_from_slice(name);
        let sealer = Sealer {
            fk: FileKey::derive(key, &h),
            next: 0,
            fp: key.fingerprint(),
            identity: id.clone(),
        };
        Ok((sealer, h))
    }

    /// The fingerprint of the key this file is written with.
    pub fn fingerprint(&self) -> &str {
        &self.fp
    }

    /// The identity the file is written as.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The word of a chunk of `n` plaintext bytes.
    fn word(n: usize, final_: bool, commit: bool) -> u32 {
        let mut word = n as u32 & LEN_MASK;
        if final_ {
            word |= FLAG_FINAL;
        }
        if commit {
            word |= FLAG_COMMIT;
        }
        word
    }

    /// Encrypts `data` in place as chunk `index` with `word`; returns its tag.
    fn seal_chunk(&self, index: u64, word: u32, data: &mut [u8]) -> ring::aead::Tag {
        let mut ab = [0u8; MAX_HEADER_LEN + 12];
        let aad = self.fk.aad(&mut ab, index, word);
        // Sealing fails only past GCM's message size limit, far above a chunk.
        match self
            .fk
            .aead
            .seal_in_place_separate_tag(self.fk.nonce(index), Aad::from(aad), data)
        {
            Ok(tag) => tag,
            Err(_) => unreachable!("chunk within the GCM limit"),
        }
    }

    /// Appends one chunk holding `plain` (at most [`CHUNK`] bytes) to `out`.
    fn seal_one(&mut self, plain: &[u8], final_: bool, commit: bool, out: &mut Vec<u8>) {
        let word = Self::word(plain.len(), final_, commit);
        let index = self.next;
        self.next += 1;
        out.extend_from_slice(&word.to_le_bytes());
        let start = out.len();
        out.extend_from_slice(plain);
        let tag = self.seal_chunk(index, word, &mut out[start..]);
        out.extend_from_slice(tag.as_ref());
    }

    /// Encrypts `plain` as one batch of an append log (chunks of at most [`CHUNK`]
    /// bytes, the last flagged commit), appended to `out`.
    pub fn seal_batch(&mut self, plain: &[u8], out: &mut Vec<u8>) {
        out.reserve(plain.len() + (plain.len() / CHUNK + 1) * (4 + TAG_LEN));
        let mut rest = plain;
        loop {
            let n = rest.len().min(CHUNK);
            let last = n == rest.len();
            self.seal_one(&rest[..n], false, last, out);
            rest = &rest[n..];
            if last {
                break;
            }
        }
    }

    /// [`Sealer::seal_batch`] of `buf[from..]` in place, with no second buffer: `buf`
    /// grows by 20 bytes per chunk (within its capacity when it has room) and each
    /// chunk's plaintext moves up once to its place, the last chunk first (so no chunk
    /// is overwritten before it moved), and is encrypted there.
    pub fn seal_batch_in_place(&mut self, buf: &mut Vec<u8>, from: usize) {
        let plain_len = buf.len().saturating_sub(from);
        let n_chunks = plain_len.div_ceil(CHUNK).max(1);
        buf.resize(from + plain_len + n_chunks * (4 + TAG_LEN), 0);
        let first = self.next;
        self.next += n_chunks as u64;
        for k in (0..n_chunks).rev() {
            let src = from + k * CHUNK;
            let n = (plain_len - k * CHUNK).min(CHUNK);
            let out = from + k * (CHUNK + 4 + TAG_LEN);
            // out + 4 > src for every k: a move up, within the chunk's own span and
            // the room freed above it.
            buf.copy_within(src..src + n, out + 4);
            let word = Self::word(n, false, k + 1 == n_chunks);
            buf[out..out + 4].copy_from_slice(&word.to_le_bytes());
            let tag = self.seal_chunk(first + k as u64, word, &mut buf[out + 4..out + 4 + n]);
            buf[out + 4 + n..out + 4 + n + TAG_LEN].copy_from_slice(tag.as_ref());
        }
    }
}

/// A writer encrypting a snapshot: chunks of [`CHUNK`] bytes as data comes, the final
/// chunk at [`EncWriter::finish`]. `flush` writes no chunk (only whole chunks go out).
pub struct EncWriter<W: Write> {
    out: W,
    sealer: Sealer,
    plain: Vec<u8>,
    sealed: Vec<u8>,
}

impl<W: Write> EncWriter<W> {
    /// Writes the header of a new snapshot written as `id` (an RDB file or an AOF
    /// base) to `out`.
    pub fn new(mut out: W, key: &Key, id: &Identity) -> io::Result<EncWriter<W>> {
        if id.role.kind() != Kind::Snapshot {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a snapshot is an RDB file or an AOF base",
            ));
        }
        let (sealer, header) = Sealer::new(key, id)?;
        out.write_all(&header)?;
        Ok(EncWriter {
            out,
            sealer,
            plain: Vec::with_capacity(CHUNK),
            sealed: Vec::with_capacity(CHUNK + 4 + TAG_LEN),
        })
    }

    fn emit(&mut self, n: usize, final_: bool) -> io::Result<()> {
        self.sealed.clear();
        self.sealer
            .seal_one(&self.plain[..n], final_, final_, &mut self.sealed);
        self.plain.drain(..n);
        self.out.write_all(&self.sealed)
    }

    /// Writes the last (final) chunk and returns the inner writer, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        while self.plain.len() > CHUNK {
            self.emit(CHUNK, false)?;
        }
        let n = self.plain.len();
        self.emit(n, true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for EncWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            // Whole chunks straight from the caller's buffer when nothing is pending.
            if self.plain.is_empty() && rest.len() > CHUNK {
                self.sealed.clear();
                self.sealer
                    .seal_one(&rest[..CHUNK], false, false, &mut self.sealed);
                self.out.write_all(&self.sealed)?;
                rest = &rest[CHUNK..];
                continue;
            }
            let take = (CHUNK - self.plain.len()).min(rest.len());
            self.plain.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            // Keep a full chunk pending until more data shows it is not the last.
            if self.plain.len() == CHUNK && !rest.is_empty() {
                self.emit(CHUNK, false)?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Why a file could not be decrypted: the byte offset in the encrypted file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptError {
    pub offset: u64,
    pub reason: String,
}

impl std::fmt::Display for CryptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.reason)
    }
}

fn err(offset: u64, reason: impl Into<String>) -> CryptError {
    CryptError {
        offset,
        reason: reason.into(),
    }
}

/// A decrypted file.
#[derive(Debug)]
pub struct Decrypted {
    /// The plaintext: a snapshot's whole content; an append log's committed batches.
    pub plain: Vec<u8>,
    pub kind: Kind,
    /// What the file was written as (authenticated); `None` for format version 1,
    /// which carries no identity.
    pub identity: Option<Identity>,
    /// Length of the header.
    pub header_len: usize,
    /// Fingerprint of the key that opened the file.
    pub fingerprint: String,
    /// Chunks up to the end of the last committed batch (append log).
    pub chunks: u64,
    /// File length up to the end of the last committed batch.
    pub committed_len: u64,
    /// An append log whose end is torn (an incomplete chunk, or chunks of a batch
    /// without its commit chunk): the offset where the torn part starts.
    pub torn_at: Option<u64>,
}

/// Decrypts a whole file held in memory with the first of `keys` whose fingerprint
/// matches the header. A snapshot must end with one final chunk and nothing after it;
/// an append log may end torn ([`Decrypted::torn_at`]). Any chunk that fails
/// authentication, a wrong key, a bad header are errors naming the offset. The
/// identity is authenticated with the chunks, not compared: see [`identity_mismatch`].
pub fn decrypt(buf: &[u8], keys: &[&Key]) -> Result<Decrypted, CryptError> {
    decrypt_vec(buf.to_vec(), keys)
}

/// Parses the identity part of a version 2 header (complete in `h`).
fn parse_identity(h: &[u8], kind: Kind) -> Result<Identity, CryptError> {
    let role = Role::from_byte(h[11]).ok_or_else(|| err(11, format!("unknown role {}", h[11])))?;
    if role.kind() != kind {
        return Err(err(
            11,
            format!("role {} does not match the file kind {}", h[11], h[10]),
        ));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&h[48..56]);
    let name_bytes = &h[57..];
    if name_bytes.is_empty() {
        return Err(err(56, "empty file name"));
    }
    let name = String::from_utf8(name_bytes.to_vec())
        .map_err(|_| err(57, "the file name is not UTF-8"))?;
    Ok(Identity {
        role,
        seq: u64::from_le_bytes(seq),
        name,
    })
}

/// [`decrypt`] in place: each chunk is opened where it lies and its plaintext moved
/// down, so no second buffer of the file's size is allocated.
pub fn decrypt_vec(mut buf: Vec<u8>, keys: &[&Key]) -> Result<Decrypted, CryptError> {
    let total = buf.len();
    let Some(h) = buf.get(..FIXED_HEADER_LEN) else {
        return Err(err(
            buf.len() as u64,
            format!(
                "truncated header ({} of {FIXED_HEADER_LEN} bytes)",
                buf.len()
            ),
        ));
    };
    if !is_encrypted(h) {
        return Err(err(0, "not an encrypted file (bad magic)"));
    }
    if h[8] != VERSION && h[8] != VERSION_1 {
        return Err(err(8, format!("unknown format version {}", h[8])));
    }
    if h[9] != ALG_AES_256_GCM {
        return Err(err(9, format!("unknown algorithm {}", h[9])));
    }
    let kind = match h[10] {
        1 => Kind::Snapshot,
        2 => Kind::Log,
        k => return Err(err(10, format!("unknown file kind {k}"))),
    };
    let chunk_max = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if chunk_max == 0 || chunk_max > CHUNK_LIMIT {
        return Err(err(12, format!("bad chunk size {chunk_max}")));
    }
    let hlen = header_len(&buf).unwrap_or(FIXED_HEADER_LEN);
    if hlen > total {
        return Err(err(
            total as u64,
            format!("truncated header ({total} of {hlen} bytes)"),
        ));
    }
    let identity = if buf[8] == VERSION {
        Some(parse_identity(&buf[..hlen], kind)?)
    } else if buf[11] != 0 {
        return Err(err(
            11,
            format!("reserved byte {} in a version 1 header", buf[11]),
        ));
    } else {
        None
    };
    let fp = hex(&buf[16..24]);
    let Some(key) = keys.iter().find(|k| k.fingerprint() == fp) else {
        let have: Vec<String> = keys.iter().map(|k| k.fingerprint()).collect();
        return Err(err(
            16,
            if have.is_empty() {
                format!("the file is encrypted (key fingerprint {fp}) and no key is configured")
            } else {
                format!(
                    "wrong key: the file was encrypted with key fingerprint {fp}, the \
                     configured keys have {}",
                    have.join(", ")
                )
            },
        ));
    };
    let fk = FileKey::derive(key, &buf[..hlen]);
    // Plaintext end: always at or before the chunk being read.
    let mut wpos = 0usize;
    let mut pos = hlen;
    let mut index = 0u64;
    let mut committed = (0usize, 0u64, hlen as u64);
    let mut sealed = false;
    let mut torn_at = None;
    let mut ab = [0u8; MAX_HEADER_LEN + 12];
    while pos < total {
        let at = pos as u64;
        if sealed {
            return Err(err(at, "data after the final chunk"));
        }
        let Some(w) = buf.get(pos..pos + 4) else {
            torn_at = Some(at);
            break;
        };
        let word = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let n = (word & LEN_MASK) as usize;
        if n as u32 > chunk_max {
            return Err(err(
                at,
                format!("chunk {index} announces {n} bytes, more than the chunk size {chunk_max}"),
            ));
        }
        let end = pos + 4 + n + TAG_LEN;
        if end > total {
            torn_at = Some(at);
            break;
        }
        let aad = fk.aad(&mut ab, index, word);
        if fk
            .aead
            .open_in_place(fk.nonce(index), Aad::from(aad), &mut buf[pos + 4..end])
            .is_err()
        {
            return Err(err(
                at,
                format!(
                    "chunk {index} failed authentication (wrong key, altered, reordered or \
                     spliced data)"
                ),
            ));
        }
        buf.copy_within(pos + 4..pos + 4 + n, wpos);
        wpos += n;
        pos = end;
        index += 1;
        if word & FLAG_FINAL != 0 {
            if kind == Kind::Log {
                return Err(err(at, "final chunk in an append log"));
            }
            sealed = true;
        }
        if word & FLAG_COMMIT != 0 {
            committed = (wpos, index, pos as u64);
        }
    }
    if kind == Kind::Snapshot {
        if let Some(at) = torn_at {
            return Err(err(at, "truncated file: incomplete chunk"));
        }
        if !sealed {
            return Err(err(total as u64, "truncated file: no final chunk"));
        }
    } else if torn_at.is_none() && committed.2 != total as u64 {
        torn_at = Some(committed.2);
    }
    buf.truncate(committed.0);
    Ok(Decrypted {
        plain: buf,
        kind,
        identity,
        header_len: hlen,
        fingerprint: fp,
        chunks: committed.1,
        committed_len: committed.2,
        torn_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        Key::new([b; 32])
    }

    fn rdb_id() -> Identity {
        Identity::rdb("dump.rdb")
    }

    fn snapshot(k: &Key, data: &[u8]) -> Vec<u8> {
        let mut w = EncWriter::new(Vec::new(), k, &rdb_id()).unwrap();
        // Uneven pieces, as FileWriter hands them.
        for piece in data.chunks(70_001) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    fn chunk_offsets(buf: &[u8]) -> Vec<usize> {
        let mut v = Vec::new();
        let mut pos = header_len(buf).unwrap();
        while pos < buf.len() {
            v.push(pos);
            let w = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap());
            pos += 4 + (w & LEN_MASK) as usize + TAG_LEN;
        }
        v
    }

    #[test]
    fn round_trip_and_tamper() {
        let k = key(7);
        for len in [0usize, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let f = snapshot(&k, &data);
            assert!(is_encrypted(&f));
            let d = decrypt(&f, &[&k]).unwrap();
            assert_eq!(d.plain, data, "len {len}");
            assert_eq!(d.kind, Kind::Snapshot);
            assert_eq!(d.identity, Some(rdb_id()));
            assert_eq!(d.header_len, FIXED_HEADER_LEN + 9 + 8);
            // Wrong key.
            assert!(decrypt(&f, &[&key(8)])
                .unwrap_err()
                .reason
                .contains("wrong key"));
            // Old key found among several.
            assert_eq!(decrypt(&f, &[&key(8), &k]).unwrap().plain, data);
            // Every truncation fails.
            let hl = d.header_len;
            for cut in [0, 10, FIXED_HEADER_LEN, hl - 1, hl, hl + 3, f.len() - 1] {
                assert!(decrypt(&f[..cut], &[&k]).is_err(), "cut {cut}");
            }
            let offs = chunk_offsets(&f);
            // Cut at each chunk boundary.
            for &o in &offs[1..] {
                let e = decrypt(&f[..o], &[&k]).unwrap_err();
                assert!(e.reason.contains("no final chunk"), "{e}");
            }
            // A flipped bit anywhere, the identity included.
            for i in (0..f.len())
                .step_by(997)
                .chain([f.len() - 1, 20, 30, 11, 50, 56, 60])
            {
                let mut b = f.clone();
                b[i] ^= 0x10;
                assert!(decrypt(&b, &[&k]).is_err(), "flip {i}");
            }
            // Appended copy of the last chunk.
            let mut b = f.clone();
            b.extend_from_slice(&f[*offs.last().unwrap()..]);
            assert!(decrypt(&b, &[&k])
                .unwrap_err()
                .reason
                .contains("after the final"));
            // Swapped pair of chunks (same length).
            if offs.len() >= 3 {
                let (a, b2, c) = (offs[0], offs[1], offs[2]);
                let mut s = f[..a].to_vec();
                s.extend_from_slice(&f[b2..c]);
                s.extend_from_slice(&f[a..b2]);
                s.extend_from_slice(&f[c..]);
                let e = decrypt(&s, &[&k]).unwrap_err();
                assert_eq!(e.offset, a as u64);
            }
        }
    }

    #[test]
    fn identity_is_bound() {
        let k = key(3);
        let id = |seq: u64, name: &str| Identity::aof(false, seq, name);
        let (mut s, h) = Sealer::new(&k, &id(2, "appendonly.aof.2.incr.aof")).unwrap();
        let mut f = h.clone();
        s.seal_batch(b"*1\r\n$4\r\nPING\r\n", &mut f);
        let d = decrypt(&f, &[&k]).unwrap();
        let found = d.identity.unwrap();
        assert_eq!(found, id(2, "appendonly.aof.2.incr.aof"));
        assert!(identity_mismatch(&found, &id(2, "appendonly.aof.2.incr.aof"), "x").is_none());
        let m =
            identity_mismatch(&found, &id(3, "appendonly.aof.3.incr.aof"), "the manifest").unwrap();
        assert!(
            m.contains("incr file appendonly.aof.2.incr.aof (seq 2)")
                && m.contains("the manifest names it as the incr file appendonly.aof.3.incr.aof"),
            "{m}"
        );
        assert!(identity_mismatch(&found, &Identity::aof(true, 2, &found.name), "m").is_some());
        // Editing the name (same length) or the seq in the header: chunk 0 fails.
        for at in [48usize, 57 + 16] {
            let mut b = f.clone();
            b[at] ^= 1;
            let e = decrypt(&b, &[&k]).unwrap_err();
            assert!(e.reason.contains("chunk 0 failed"), "{e}");
        }
        // A role that does not fit the kind, an unknown role.
        let mut b = f.clone();
        b[11] = Role::AofBase as u8;
        assert!(decrypt(&b, &[&k]).unwrap_err().reason.contains("role"));
        b[11] = 9;
        assert!(decrypt(&b, &[&k]).unwrap_err().reason.contains("role"));
        // Names of 0 or 256 bytes are refused; 255 is fine.
        assert!(Sealer::new(&k, &id(1, "")).is_err());
        assert!(Sealer::new(&k, &id(1, &"n".repeat(256))).is_err());
        let (_, h) = Sealer::new(&k, &id(1, &"n".repeat(255))).unwrap();
        assert_eq!(h.len(), MAX_HEADER_LEN);
        // An incr file cannot be written as a snapshot.
        assert!(EncWriter::new(Vec::new(), &k, &id(1, "a")).is_err());
        // Partial headers, up to the last byte of the name.
        for cut in [1, 7, 8, 47, 48, 56, 57, h.len() - 1] {
            assert!(is_partial_header(&h[..cut]), "cut {cut}");
        }
        assert!(!is_partial_header(&h));
        assert!(!is_partial_header(b"REDIS0011"));
    }

    #[test]
    fn version_1_files_still_open() {
        // A version 1 file as the first format wrote it: a 48-byte header, no identity.
        let k = key(4);
        let mut h = vec![0u8; FIXED_HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8] = VERSION_1;
        h[9] = ALG_AES_256_GCM;
        h[10] = Kind::Log as u8;
        h[12..16].copy_from_slice(&(CHUNK as u32).to_le_bytes());
        h[16..24].copy_from_slice(&k.fp_bytes());
        h[24..48].copy_from_slice(&[9u8; 24]);
        let mut s = Sealer {
            fk: FileKey::derive(&k, &h),
            next: 0,
            fp: k.fingerprint(),
            identity: Identity::aof(false, 1, "x"),
        };
        let mut f = h.clone();
        s.seal_batch(b"hello", &mut f);
        let d = decrypt(&f, &[&k]).unwrap();
        assert_eq!(d.plain, b"hello");
        assert_eq!(d.identity, None);
        assert_eq!(d.header_len, FIXED_HEADER_LEN);
        // Relabelled as version 2: the header no longer authenticates.
        let mut b = f.clone();
        b[8] = VERSION;
        assert!(decrypt(&b, &[&k]).is_err());
    }

    #[test]
    fn in_place_batches_match_appended_batches() {
        let k = key(5);
        let (s0, h) = Sealer::new(&k, &Identity::aof(false, 7, "a.7.incr.aof")).unwrap();
        let twin = || Sealer {
            fk: FileKey::derive(&k, &h),
            next: 0,
            fp: s0.fingerprint().to_string(),
            identity: s0.identity().clone(),
        };
        let (mut a, mut b) = (twin(), twin());
        let mut fa = h.clone();
        let mut fb = h.clone();
        for len in [
            1usize,
            100,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK,
            3 * CHUNK + 77,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
            a.seal_batch(&data, &mut fa);
            // A prefix already in the buffer (sealed bytes of a short write) stays.
            let from = fb.len();
            fb.extend_from_slice(&data);
            b.seal_batch_in_place(&mut fb, from);
            assert_eq!(fa, fb, "len {len}");
        }
        let d = decrypt(&fb, &[&k]).unwrap();
        assert!(d.torn_at.is_none());
    }

    #[test]
    fn log_batches_and_torn_end() {
        let k = key(1);
        let (mut s, h) = Sealer::new(&k, &Identity::aof(false, 1, "a.1.incr.aof")).unwrap();
        let hl = h.len();
        let mut f = h;
        s.seal_batch(b"*1\r\n$4\r\nPING\r\n", &mut f);
        let big = vec![b'x'; CHUNK * 2 + 5];
        s.seal_batch(&big, &mut f);
        let good = f.len();
        s.seal_batch(b"more", &mut f);
        let d = decrypt(&f, &[&k]).unwrap();
        assert_eq!(d.plain.len(), 14 + big.len() + 4);
        assert!(d.plain.ends_with(b"xmore"));
        assert_eq!(d.chunks, 5);
        assert!(d.torn_at.is_none());
        // A torn last batch: partial chunk.
        let d = decrypt(&f[..f.len() - 3], &[&k]).unwrap();
        assert_eq!(d.torn_at, Some(good as u64));
        assert_eq!(d.committed_len, good as u64);
        // A batch missing its commit chunk.
        let d = decrypt(&f[..hl + 4 + 14 + 16 + 4 + CHUNK + 16], &[&k]).unwrap();
        assert_eq!(d.plain.len(), 14);
        assert!(d.torn_at.is_some());
        // The header alone: an empty log.
        let d = decrypt(&f[..hl], &[&k]).unwrap();
        assert!(d.plain.is_empty() && d.torn_at.is_none());
    }

    #[test]
    fn key_parsing() {
        let hexkey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
        let a = Key::parse(hexkey.as_bytes()).unwrap();
        let mut raw = [0u8; 32];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = ((i % 16) * 0x11) as u8;
        }
        let b = Key::parse(&raw).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
        assert!(Key::parse(b"short").is_err());
        assert!(Key::parse(&[b'z'; 64]).is_err());
    }
}
