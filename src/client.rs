//! A connected client: its socket, query buffer, parsed argv, reply buffer and state
//! (selected db, protocol, MULTI, WATCH, name), as `client` in upstream's `server.h`.

use std::io::{self, Write};
use std::os::unix::io::{AsRawFd, RawFd};

use crate::reply::ReplyBuf;

/// The transport of a client, as upstream's connection types: plain TCP, unix socket,
/// or TLS over TCP (src/connection.rs). The plain variants read and write the socket
/// directly; matching the enum is the only cost they pay for TLS existing.
pub enum Conn {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
    Tls(Box<crate::connection::TlsStream>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conn::Tcp(s) => f.debug_tuple("Tcp").field(s).finish(),
            Conn::Unix(s) => f.debug_tuple("Unix").field(s).finish(),
            Conn::Tls(s) => f.debug_tuple("Tls").field(s).finish(),
        }
    }
}

impl Conn {
    pub fn fd(&self) -> RawFd {
        match self {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Unix(s) => s.as_raw_fd(),
            Conn::Tls(s) => s.sock.as_raw_fd(),
        }
    }

    #[inline]
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    /// Reads into the spare capacity of `buf` (the caller reserves it).
    #[inline]
    pub fn read_into(&mut self, fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Conn::Tls(s) => s.read_into(buf),
            _ => crate::connection::read_into_spare(fd, buf),
        }
    }

    /// Whether a read of `n` bytes into `spare` bytes of room left the socket drained:
    /// a short read for a plain socket; for TLS a short socket read with no plaintext
    /// left in rustls (a short plaintext read proves nothing there).
    #[inline]
    pub fn drained_after(&self, n: usize, spare: usize) -> bool {
        match self {
            Conn::Tls(s) => s.drained(),
            _ => n < spare,
        }
    }

    /// Encrypted records wait for the socket (TLS only).
    #[inline]
    pub fn wants_write(&self) -> bool {
        match self {
            Conn::Tls(s) => s.wants_write(),
            _ => false,
        }
    }

    /// Sends what TLS has queued; plain sockets have nothing queued.
    #[inline]
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tls(s) => s.flush(),
            _ => Ok(()),
        }
    }
}

/// Client flags (a subset of upstream's CLIENT_* bits that this server uses).
pub mod flags {
    /// A replica of this server (upstream's CLIENT_REPLICA): gets the replication stream.
    pub const REPLICA: u64 = 1 << 0;
    /// Our primary's link (upstream's CLIENT_PRIMARY): its commands are the stream.
    pub const PRIMARY: u64 = 1 << 1;
    /// A MONITOR client (src/monitor.rs).
    pub const MONITOR: u64 = 1 << 2;
    /// Its command waits for the end of a CLIENT PAUSE (src/pause.rs).
    pub const POSTPONED: u64 = 1 << 53;
    /// Inside MULTI: commands are queued.
    pub const MULTI: u64 = 1 << 3;
    /// Cluster: ASKING was sent; the next command may touch an importing slot. Reset
    /// after that command (after EXEC inside MULTI).
    pub const ASKING: u64 = 1 << 9;
    /// Cluster: READONLY was sent; reads are served on a replica of the slot's primary.
    pub const READONLY: u64 = 1 << 17;
    /// Blocked by a blocking command (BLPOP...): input is buffered, not run.
    pub const BLOCKED: u64 = 1 << 4;
    /// A watched key was touched: EXEC will fail.
    pub const DIRTY_CAS: u64 = 1 << 5;
    /// Close after the pending replies are written.
    pub const CLOSE_AFTER_REPLY: u64 = 1 << 6;
    /// A command queued in MULTI failed: EXEC will abort.
    pub const DIRTY_EXEC: u64 = 1 << 12;
    /// In the queue of unblocked clients whose pending input is processed in before-sleep.
    pub const UNBLOCKED: u64 = 1 << 7;
    /// Close as soon as possible, dropping pending output.
    pub const CLOSE_ASAP: u64 = 1 << 10;
    /// CLIENT REPLY SKIP: drop the reply of the next command.
    pub const REPLY_SKIP_NEXT: u64 = 1 << 22;
    /// CLIENT REPLY SKIP in effect for the current command.
    pub const REPLY_SKIP: u64 = 1 << 23;
    /// CLIENT REPLY OFF.
    pub const REPLY_OFF: u64 = 1 << 24;
    /// Connected through the unix socket.
    pub const UNIX_SOCKET: u64 = 1 << 11;
    /// CLIENT NO-EVICT on.
    pub const NO_EVICT: u64 = 1 << 43;
    /// CLIENT NO-TOUCH on.
    pub const NO_TOUCH: u64 = 1 << 45;
    /// The blocked command is kept in argv to run again when a key is ready.
    pub const PENDING_COMMAND: u64 = 1 << 30;
    /// Blocking commands reply as on timeout instead of blocking (scripts).
    #[allow(dead_code)]
    pub const DENY_BLOCKING: u64 = 1 << 41;
    /// The command runs again after the client was unblocked on a key.
    pub const REEXECUTING: u64 = 1 << 51;
    /// CLUSTER SETSLOT runs again after the replicas acknowledged it (upstream's
    /// `replication_done`).
    pub const REPLICATION_DONE: u64 = 1 << 54;
    /// The client scripts run their commands through (upstream's CLIENT_SCRIPT): the
    /// gate hands it to `scripting::run::gate`.
    pub const SCRIPT: u64 = 1 << 8;
    /// Subscribed to at least one channel, pattern or shard channel.
    pub const PUBSUB: u64 = 1 << 18;
    /// The client is executing EXEC (commands run inside a transaction).
    pub const IN_EXEC: u64 = 1 << 50;
    /// The running command must not be propagated (upstream's CLIENT_PREVENT_PROP).
    pub const PREVENT_PROP: u64 = 1 << 19;
    /// Propagate the running command even if it did not make the dataset dirty
    /// (upstream's forceCommandPropagation).
    pub const FORCE_PROP: u64 = 1 << 20;
    /// CLIENT TRACKING on (upstream's CLIENT_TRACKING): see src/tracking.rs.
    pub const TRACKING: u64 = 1 << 31;
    /// The client a tracking client redirects to is gone.
    pub const TRACKING_BROKEN_REDIR: u64 = 1 << 32;
    /// Tracking in broadcasting mode (BCAST).
    pub const TRACKING_BCAST: u64 = 1 << 33;
    /// Tracking only keys read right after CLIENT CACHING YES.
    pub const TRACKING_OPTIN: u64 = 1 << 34;
    /// Tracking all keys but those read right after CLIENT CACHING NO.
    pub const TRACKING_OPTOUT: u64 = 1 << 35;
    /// CLIENT CACHING YES/NO given for the next command (or transaction).
    pub const TRACKING_CACHING: u64 = 1 << 36;
    /// No invalidation for keys the client modified itself.
    pub const TRACKING_NOLOOP: u64 = 1 << 37;
}

/// The request type being parsed, as `reqtype`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReqType {
    None,
    Inline,
    Multibulk,
}

/// What a blocked client waits for (upstream's `blockingState`); kept allocated after the
/// first block, as the timeout must survive a re-execution that blocks again.
#[derive(Debug)]
pub struct BlockState {
    pub btype: crate::blocked::BlockType,
    /// Absolute unix ms, 0 = forever.
    pub timeout: i64,
    /// The db of the keys.
    pub db: usize,
    /// The keys waited on, with the sequence number of the client in each key's queue.
    pub keys: Vec<(Vec<u8>, u64)>,
    pub unblock_on_nokey: bool,
    /// Time spent in the command's runs so far (upstream's c->duration).
    pub duration_us: u64,
}

/// A command queued by MULTI.
pub struct QueuedCommand {
    /// Index in the command table.
    pub id: usize,
    pub argv: Vec<Vec<u8>>,
}

pub struct Client {
    /// Unique, monotonically increasing id (CLIENT ID).
    pub id: u64,
    /// The slab key (also the mio token / client_data).
    pub slot: usize,
    pub conn: Conn,
    pub fd: RawFd,
    /// "ip:port" of the peer, or the unix socket path.
    pub addr: String,
    pub laddr: String,
    pub name: Option<Vec<u8>>,
    pub lib_name: Option<Vec<u8>>,
    pub lib_ver: Option<Vec<u8>>,
    pub db: usize,
    pub flags: u64,
    /// Bytes read and not yet parsed.
    pub query_buf: Vec<u8>,
    /// Parse position inside `query_buf`.
    pub qb_pos: usize,
    pub req_type: ReqType,
    /// Multibulk elements still expected for the command being parsed (0 when none).
    pub multibulk_len: i64,
    /// Length of the bulk being read, or -1.
    pub bulk_len: i64,
    /// Arguments of the command being run.
    pub argv: Vec<Vec<u8>>,
    /// What the running command propagates instead of `argv`, when its effect must be
    /// written differently (SET EX -> SET PXAT, EXPIRE -> PEXPIREAT, SPOP -> SREM...):
    /// upstream's rewriteClientCommandVector, without losing the original argv.
    pub propagate_argv: Option<Vec<Vec<u8>>>,
    /// Cleared argument buffers kept for reuse by the parser, so a steady stream of
    /// commands allocates nothing per argument.
    pub argv_pool: Vec<Vec<u8>>,
    /// Total bytes of `argv`, for the client-query-buffer accounting.
    pub argv_len_sum: usize,
    pub reply: ReplyBuf,
    /// Unix time (ms) of creation and of the last interaction.
    pub ctime_ms: i64,
    pub last_interaction_ms: i64,
    /// The last command run, for CLIENT LIST `cmd=`.
    pub last_cmd: &'static str,
    pub authenticated: bool,
    pub user: String,
    /// The ACL generation `acl_all` was computed at (see `crate::aclsrv`).
    pub acl_gen: u64,
    /// The user allows every command, key, channel and db: the gate skips the check.
    pub acl_all: bool,
    /// MULTI queue.
    pub mstate: Vec<QueuedCommand>,
    /// Total bytes of the arguments of the commands in `mstate`, counted with the query
    /// buffer against `client-query-buffer-limit` (upstream's `argv_len_sums`).
    pub mstate_argv_len_sum: usize,
    /// Keys this client WATCHes: (db, key).
    pub watched_keys: Vec<(usize, Vec<u8>)>,
    /// Total bytes read and written, for INFO and CLIENT LIST.
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub commands_processed: u64,
    /// Whether the WRITABLE handler is installed.
    pub write_handler_installed: bool,
    /// Whether the client is in the server's pending-write list.
    pub pending_write: bool,
    /// Peak of the query buffer since the last cron check.
    pub query_buf_peak: usize,
    /// Blocking state, allocated the first time the client blocks.
    pub bstate: Option<Box<BlockState>>,
    /// Pub/Sub subscriptions, allocated on the first subscription.
    pub pubsub: Option<Box<crate::pubsub::ClientPubSub>>,
    /// Unix time (s) the output buffer went over the soft limit, 0 when under it.
    pub obuf_soft_limit_reached_time: i64,
    /// Replication state of a replica's connection (REPLCONF options, sync state, ACKs),
    /// allocated by its first REPLCONF/SYNC/PSYNC (src/replication/primary.rs).
    pub repl: Option<Box<crate::replication::primary::ReplicaLink>>,
    /// The replication offset after this client's last command (upstream's `woff`):
    /// WAIT waits for replicas to acknowledge it.
    pub woff: i64,
    /// The primary client: bytes of `query_buf` already applied and counted in the
    /// replication offset (the rest is a command or a transaction in progress).
    pub repl_applied: usize,
    /// This client's memory at its last update and the client type it was counted
    /// under, in `Server::mem` (src/memory.rs, client eviction).
    pub last_memory_usage: usize,
    pub last_memory_type: u8,
    /// CLIENT TRACKING REDIRECT: the id invalidations go to (0: this client).
    pub tracking_redirect: u64,
    /// CLIENT TRACKING BCAST prefixes, sorted (upstream's client_tracking_prefixes).
    pub tracking_prefixes: std::collections::BTreeSet<Vec<u8>>,
}

impl Client {
    pub fn new(id: u64, slot: usize, conn: Conn, addr: String, laddr: String, now_ms: i64) -> Self {
        let fd = conn.fd();
        let unix = matches!(conn, Conn::Unix(_));
        Client {
            id,
            slot,
            conn,
            fd,
            addr,
            laddr,
            name: None,
            lib_name: None,
            lib_ver: None,
            db: 0,
            flags: if unix { flags::UNIX_SOCKET } else { 0 },
            query_buf: Vec::new(),
            qb_pos: 0,
            req_type: ReqType::None,
            multibulk_len: 0,
            bulk_len: -1,
            argv: Vec::new(),
            propagate_argv: None,
            argv_pool: Vec::new(),
            argv_len_sum: 0,
            reply: ReplyBuf::new(),
            ctime_ms: now_ms,
            last_interaction_ms: now_ms,
            last_cmd: "NULL",
            authenticated: false,
            user: "default".into(),
            acl_gen: 0,
            acl_all: false,
            mstate: Vec::new(),
            mstate_argv_len_sum: 0,
            watched_keys: Vec::new(),
            net_input_bytes: 0,
            net_output_bytes: 0,
            commands_processed: 0,
            write_handler_installed: false,
            pending_write: false,
            query_buf_peak: 0,
            bstate: None,
            pubsub: None,
            obuf_soft_limit_reached_time: 0,
            repl: None,
            woff: 0,
            repl_applied: 0,
            last_memory_usage: 0,
            last_memory_type: 0,
            tracking_redirect: 0,
            tracking_prefixes: std::collections::BTreeSet::new(),
        }
    }

    #[inline]
    pub fn has_flag(&self, f: u64) -> bool {
        self.flags & f != 0
    }

    /// Whether output is waiting to be written.
    pub fn has_pending_replies(&self) -> bool {
        self.reply.pending() > 0
    }

    /// The client class of CLIENT KILL TYPE / client-output-buffer-limit (upstream's
    /// `getClientType`): "primary", "replica", "pubsub" or "normal".
    pub fn class_name(&self) -> &'static str {
        if self.has_flag(flags::PRIMARY) {
            "primary"
        } else if self.has_flag(flags::REPLICA) {
            "replica"
        } else if self.has_flag(flags::PUBSUB) {
            "pubsub"
        } else {
            "normal"
        }
    }

    /// The value of `flags=` in CLIENT LIST.
    pub fn flags_string(&self) -> String {
        let mut s = String::new();
        if self.has_flag(flags::MONITOR) {
            s.push('O');
        } else if self.has_flag(flags::REPLICA) {
            s.push('S');
        }
        if self.has_flag(flags::PRIMARY) {
            s.push('M');
        }
        if self.has_flag(flags::PUBSUB) {
            s.push('P');
        }
        if self.has_flag(flags::MULTI) {
            s.push('x');
        }
        if self.has_flag(flags::BLOCKED | flags::POSTPONED) {
            s.push('b');
        }
        if self.has_flag(flags::TRACKING) {
            s.push('t');
        }
        if self.has_flag(flags::TRACKING_BROKEN_REDIR) {
            s.push('R');
        }
        if self.has_flag(flags::TRACKING_BCAST) {
            s.push('B');
        }
        if self.has_flag(flags::DIRTY_CAS) {
            s.push('d');
        }
        if self.has_flag(flags::CLOSE_AFTER_REPLY) {
            s.push('c');
        }
        if self.has_flag(flags::UNBLOCKED) {
            s.push('u');
        }
        if self.has_flag(flags::CLOSE_ASAP) {
            s.push('A');
        }
        if self.has_flag(flags::UNIX_SOCKET) {
            s.push('U');
        }
        if self.has_flag(flags::NO_EVICT) {
            s.push('e');
        }
        if self.has_flag(flags::NO_TOUCH) {
            s.push('T');
        }
        if s.is_empty() {
            s.push('N');
        }
        s
    }
}
