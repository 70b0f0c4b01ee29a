//! The append-only file, server side (upstream's `aof.c`): feeding propagated writes,
//! writing and fsyncing them by `appendfsync`, the multi-part directory (manifest, base,
//! incrementals), loading at start-up, BGREWRITEAOF by a forked child. The file
//! formats are the `aof` crate.

use crate::server::Server;

/// `aof_state`: off, on, or waiting for the first rewrite to finish after
/// `CONFIG SET appendonly yes`.
#[allow(dead_code)] // skeleton: the aof-server helper uses them
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AofState {
    #[default]
    Off,
    On,
    WaitRewrite,
}

/// The AOF state of the server.
#[derive(Debug, Default)]
pub struct Aof {
    pub state: AofState,
    /// The db the last fed command applied to (a SELECT is written when it changes).
    pub selected_db: Option<usize>,
    /// Commands fed since the last write to the file (`aof_buf`).
    pub buf: Vec<u8>,
}

/// Whether writes are fed to the AOF.
#[inline]
pub fn enabled(srv: &Server) -> bool {
    srv.aof.state != AofState::Off
}

/// Appends a propagated command to the AOF buffer in RESP, preceded by a SELECT when
/// the db changes (upstream's `feedAppendOnlyFile`).
pub fn feed(srv: &mut Server, dbid: usize, argv: &[Vec<u8>]) {
    let aof = &mut srv.aof;
    if aof.selected_db != Some(dbid) {
        let db = dbid.to_string();
        append_command(&mut aof.buf, &[b"SELECT", db.as_bytes()]);
        aof.selected_db = Some(dbid);
    }
    append_command(&mut aof.buf, argv);
}

/// `*<n>\r\n` then `$<len>\r\n<arg>\r\n` per argument.
pub fn append_command<A: AsRef<[u8]>>(buf: &mut Vec<u8>, argv: &[A]) {
    buf.push(b'*');
    buf.extend_from_slice(argv.len().to_string().as_bytes());
    buf.extend_from_slice(b"\r\n");
    for a in argv {
        let a = a.as_ref();
        buf.push(b'$');
        buf.extend_from_slice(a.len().to_string().as_bytes());
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
}
