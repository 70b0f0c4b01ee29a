//! Valkey's append-only file formats (upstream `aof.c`, Valkey 7+ multi-part AOF):
//! the manifest, the names of base/incremental files, and the reader of the RESP
//! command stream an AOF holds. See `docs/aof.md`.
//!
//! The server side (feeding, fsync policies, rewrite, loading into the keyspace) is
//! `src/aof.rs` of the server; the check tool is `utils/valkey-rs-check-aof.rs`.

pub mod check;
pub mod manifest;
pub mod reader;

/// Errors of parsing a manifest or a command stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input ends inside a command; `offset` is just after the last complete
    /// command (a file cut by a crash: recoverable with `aof-load-truncated yes` by
    /// truncating the file there).
    Truncated { offset: u64 },
    /// The input is invalid at `offset`.
    Corrupt { offset: u64, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// True when a file starts like an RDB file (`REDIS0` or `VALKEY`, upstream's test in
/// loadSingleAppendOnlyFile): a base in RDB format or an old RDB-preamble AOF.
pub fn has_rdb_preamble(head: &[u8]) -> bool {
    head.starts_with(b"REDIS0") || head.starts_with(b"VALKEY")
}
