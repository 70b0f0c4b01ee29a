//! The primary side of replication (upstream's `replication.c`: syncCommand,
//! replconfCommand, the backlog, replicationFeedReplicas, the full sync by a forked child,
//! waitCommand and the primary part of replicationCron).
//!
//! A replica is a client with the REPLICA flag and a [`ReplicaLink`]. Its output buffer
//! receives the replication stream; while its full sync runs the stream accumulates
//! there and is held back ([`output_held`]) until the RDB has been delivered. The RDB
//! never goes through the output buffer: it is written to the socket directly, from a
//! pipe fed by the forked child (diskless) or from the file a BGSAVE wrote (disk).

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

use log::{info, warn};

use crate::client::{flags as cflags, Client};
use crate::networking::{put_client, take_client};
use crate::server::{EventLoop, Server};
use crate::util::eq_ic;

use super::replica;

/// How far a replica got with its synchronization (upstream's `REPLICA_STATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// REPLCONF only: not a replica yet.
    None,
    /// Asked for a full sync; the child that makes the RDB has not started.
    WaitBgsaveStart,
    /// Got `+FULLRESYNC`; the RDB is being made (and, diskless, streamed).
    WaitBgsaveEnd,
    /// Disk sync: the RDB file is being sent.
    SendBulk,
    /// Synchronized: gets the stream.
    Online,
}

/// A replica's connection state (upstream's `client` replica fields).
#[derive(Debug)]
pub struct ReplicaLink {
    pub state: SyncState,
    /// REPLCONF listening-port / ip-address.
    pub listening_port: i64,
    pub announced_ip: Option<String>,
    /// REPLCONF capa eof / psync2.
    pub capa_eof: bool,
    pub capa_psync2: bool,
    /// The RDB version to send, from REPLCONF version (11 unless the replica runs 9.x).
    pub rdb_version: u32,
    /// Offset of the last REPLCONF ACK, and of its `fack` part.
    pub ack_off: i64,
    pub aof_off: i64,
    /// When the last ACK came (ms).
    pub ack_time_ms: i64,
    /// The offset the full sync started at (`+FULLRESYNC <replid> <offset>`).
    pub psync_initial_offset: i64,
    /// Old SYNC: no `+FULLRESYNC` line, no ACKs.
    pub pre_psync: bool,
    /// The output buffer (the stream) may be written to the socket.
    pub streaming: bool,
    /// Diskless sync done: streaming starts with the replica's first ACK (it has loaded
    /// the RDB by then).
    pub start_stream_on_ack: bool,
    /// This replica's full sync is diskless (EOF-marker form).
    pub socket_target: bool,
    /// Disk sync: the file being sent.
    bulk: Option<Box<BulkSend>>,
    /// Last progress of the RDB transfer (ms), for `repl-timeout`.
    pub rdb_io_ms: i64,
    /// REPLCONF SET-CLUSTER-NODE-ID: the replica's cluster node name (cluster mode).
    pub cluster_node_id: Option<String>,
    /// REPLCONF version as a number (`major << 16 | minor << 8 | patch`, 0 if unknown).
    pub version: i64,
}

impl ReplicaLink {
    fn new(now_ms: i64) -> ReplicaLink {
        ReplicaLink {
            state: SyncState::None,
            listening_port: 0,
            announced_ip: None,
            capa_eof: false,
            capa_psync2: false,
            rdb_version: 11,
            ack_off: 0,
            aof_off: 0,
            ack_time_ms: now_ms,
            psync_initial_offset: 0,
            pre_psync: false,
            streaming: false,
            start_stream_on_ack: false,
            socket_target: false,
            bulk: None,
            rdb_io_ms: now_ms,
            cluster_node_id: None,
            version: 0,
        }
    }
}

/// The RDB file being sent to one replica (disk sync).
#[derive(Debug)]
struct BulkSend {
    file: std::fs::File,
    preamble: Vec<u8>,
    pre_sent: usize,
    pos: u64,
    size: u64,
    chunk: Vec<u8>,
}

/// The replication backlog: a circular buffer of the last `repl-backlog-size` bytes of
/// the stream (upstream's `replBacklog`). Its first byte has offset
/// `master_repl_offset - histlen + 1`. The buffer grows with the history (by an eighth,
/// at least 16 KB, up to the size; large blocks grow by `mremap`, without copying) as
/// upstream's backlog grows block by block, so the memory it takes is what was written.
#[derive(Debug)]
pub struct Backlog {
    /// The history; a ring once it reaches `size` bytes.
    buf: Vec<u8>,
    size: usize,
    /// Where the next byte goes.
    idx: usize,
    /// Bytes of history held (at most `size`).
    histlen: usize,
}

impl Backlog {
    pub fn new(size: usize) -> Backlog {
        Backlog {
            buf: Vec::new(),
            size: size.max(1),
            idx: 0,
            histlen: 0,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn histlen(&self) -> usize {
        self.histlen
    }

    /// The bytes allocated for the history (`mem_replication_backlog`).
    pub fn allocated(&self) -> usize {
        crate::zmalloc::vec_usable(&self.buf)
    }

    /// Appends bytes, overwriting the oldest ones.
    pub fn append(&mut self, mut data: &[u8]) {
        let size = self.size;
        if data.len() > size {
            data = &data[data.len() - size..];
        }
        if self.buf.len() < size {
            // Still growing: the history is the whole buffer, `idx` its end.
            let take = (size - self.buf.len()).min(data.len());
            let need = self.buf.len() + take;
            if need > self.buf.capacity() {
                let step = (self.buf.capacity() / 8).max(16 * 1024);
                let want = need.max(self.buf.capacity() + step).min(size);
                self.buf.reserve_exact(want - self.buf.len());
            }
            self.buf.extend_from_slice(&data[..take]);
            self.histlen = self.buf.len();
            self.idx = self.buf.len() % size;
            data = &data[take..];
            if data.is_empty() {
                return;
            }
        }
        let n = data.len();
        let first = (size - self.idx).min(n);
        self.buf[self.idx..self.idx + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..]);
        self.idx = (self.idx + n) % size;
        self.histlen = (self.histlen + n).min(size);
    }

    /// Appends to `out` the history after skipping its first `skip` bytes.
    pub fn copy_from(&self, skip: usize, out: &mut Vec<u8>) {
        if skip >= self.histlen {
            return;
        }
        // While growing, the buffer holds exactly the history (idx == len).
        let size = self.buf.len();
        let start = (self.idx + size - self.histlen + skip) % size;
        let len = self.histlen - skip;
        let first = (size - start).min(len);
        out.extend_from_slice(&self.buf[start..start + first]);
        out.extend_from_slice(&self.buf[..len - first]);
    }

    /// A copy of the history in a buffer of `size` bytes (CONFIG SET repl-backlog-size).
    pub fn resized(&self, size: usize) -> Backlog {
        let mut hist = Vec::with_capacity(self.histlen);
        self.copy_from(0, &mut hist);
        let mut b = Backlog::new(size);
        b.append(&hist);
        b
    }
}

/// A diskless transfer: the child's pipe relayed to the replicas' sockets.
#[derive(Debug)]
struct PipeTransfer {
    fd: Option<OwnedFd>,
    /// The chunk read last and being written to every target.
    buf: Vec<u8>,
    /// (slot, client id, bytes of `buf` written).
    targets: Vec<(usize, u64, usize)>,
    /// Targets whose socket did not take the whole chunk yet.
    writing: usize,
    /// The pipe reached EOF: the child wrote everything.
    eof: bool,
    /// The child was reaped: Some(success).
    child_ok: Option<bool>,
}

/// A client blocked in WAIT.
#[derive(Debug)]
struct Waiter {
    slot: usize,
    id: u64,
    offset: i64,
    numreplicas: i64,
    /// Absolute ms, 0 = forever.
    deadline: i64,
    /// A CLUSTER SETSLOT waiting for its replicas: run again when acknowledged,
    /// `-NOREPLICAS` on timeout (instead of WAIT's count).
    setslot: bool,
}

/// What a primary keeps for its replicas.
#[derive(Debug, Default)]
pub struct PrimaryState {
    /// Replicas (slot, client id), in attach order.
    pub replicas: Vec<(usize, u64)>,
    pub backlog: Option<Backlog>,
    pub stat_sync_full: u64,
    pub stat_sync_partial_ok: u64,
    pub stat_sync_partial_err: u64,
    /// Unix time (s) since which no replica is connected (for `repl-backlog-ttl`).
    pub no_replicas_since: i64,
    cron_loops: u64,
    /// Encoding scratch for the stream, reused.
    scratch: Vec<u8>,
    waiters: Vec<Waiter>,
    /// Send `REPLCONF GETACK *` in before-sleep (a client WAITs).
    get_ack: bool,
    /// A replica waits for a full sync to start.
    start_pending: bool,
    pipe: Option<PipeTransfer>,
    /// The pid of the child making a diskless RDB.
    diskless_child: Option<i32>,
    /// A BGSAVE for replicas ended (success): handled in before-sleep.
    disk_done: Option<bool>,
    /// `min-replicas-to-write` / `min-replicas-max-lag`, cached for the write gate.
    pub min_replicas_to_write: i64,
    pub min_replicas_max_lag: i64,
    /// Online replicas whose last ACK is at most `min-replicas-max-lag` seconds old
    /// (upstream's `repl_good_replicas_count`).
    pub good_replicas: i64,
}

/// Refreshes the cached configuration (after CONFIG SET, and from cron).
pub fn apply_config(srv: &mut Server) {
    srv.repl.primary.min_replicas_to_write = cfg_i64(srv, "min-replicas-to-write", 0);
    srv.repl.primary.min_replicas_max_lag = cfg_i64(srv, "min-replicas-max-lag", 10);
    refresh_good_replicas(srv);
}

/// Upstream's `refreshGoodReplicasCount`; `extra` counts a replica out of the table
/// (the one whose ACK is being handled).
fn refresh_good_replicas(srv: &mut Server) {
    refresh_good_replicas_with(srv, 0);
}

fn refresh_good_replicas_with(srv: &mut Server, extra: i64) {
    let p = &srv.repl.primary;
    if p.min_replicas_to_write == 0 || p.min_replicas_max_lag == 0 {
        return;
    }
    let now = srv.mstime;
    let max_lag = p.min_replicas_max_lag;
    let mut good = extra;
    for &(slot, id) in &p.replicas {
        if let Some(Some(c)) = srv.clients.get(slot) {
            if c.id == id
                && c.repl.as_ref().is_some_and(|l| {
                    l.state == SyncState::Online && (now - l.ack_time_ms) / 1000 <= max_lag
                })
            {
                good += 1;
            }
        }
    }
    srv.repl.primary.good_replicas = good;
}

/// The error refusing a write when fewer than `min-replicas-to-write` replicas are
/// good (upstream's `checkGoodReplicasStatus`), or None.
#[inline]
pub fn min_replicas_error(srv: &Server) -> Option<&'static str> {
    let p = &srv.repl.primary;
    if p.min_replicas_to_write > 0
        && p.min_replicas_max_lag > 0
        && p.good_replicas < p.min_replicas_to_write
        && !replica::is_replica(srv)
    {
        Some("NOREPLICAS Not enough good replicas to write.")
    } else {
        None
    }
}

fn cfg_i64(srv: &Server, name: &str, default: i64) -> i64 {
    srv.config
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cfg_bool(srv: &Server, name: &str, default: bool) -> bool {
    match srv.config.get(name).as_deref() {
        Some("yes") => true,
        Some("no") => false,
        _ => default,
    }
}

/// The replica's name in logs: `ip:listening-port`, as upstream's `replicationGetReplicaName`.
fn replica_name(c: &Client) -> String {
    let ip = peer_ip(c);
    match &c.repl {
        Some(r) if r.announced_ip.is_some() || r.listening_port != 0 => format!(
            "{}:{}",
            r.announced_ip.as_deref().unwrap_or(ip),
            r.listening_port
        ),
        _ => c.addr.clone(),
    }
}

fn peer_ip(c: &Client) -> &str {
    match c.addr.rfind(':') {
        Some(i) => c.addr[..i].trim_start_matches('[').trim_end_matches(']'),
        None => &c.addr,
    }
}

/// Whether the client's output must not be written yet: a replica whose full sync is
/// still running (the stream it accumulates follows the RDB).
#[inline]
pub fn output_held(c: &Client) -> bool {
    c.repl.as_ref().is_some_and(|r| {
        !r.streaming && (r.state != SyncState::None || c.has_flag(cflags::REPLICA))
    })
}

/// Whether a backlog or a replica consumes the stream.
pub fn has_consumers(srv: &Server) -> bool {
    let p = &srv.repl.primary;
    p.backlog.is_some() || !p.replicas.is_empty()
}

/// Appends a RESP bulk string.
fn push_bulk(out: &mut Vec<u8>, arg: &[u8]) {
    let mut b = crate::reply::itoa_buf();
    out.push(b'$');
    out.extend_from_slice(crate::reply::fmt_i64(&mut b, arg.len() as i64));
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

fn push_multibulk(out: &mut Vec<u8>, argv: &[Vec<u8>]) {
    let mut b = crate::reply::itoa_buf();
    out.push(b'*');
    out.extend_from_slice(crate::reply::fmt_i64(&mut b, argv.len() as i64));
    out.extend_from_slice(b"\r\n");
    for a in argv {
        push_bulk(out, a);
    }
}

/// Feeds one operation to the backlog and the replicas (see
/// [`super::feed_replicas`]): a SELECT first when the stream is on another database,
/// then the command as a RESP multibulk, as upstream's `replicationFeedReplicas`.
pub fn feed(srv: &mut Server, dbid: Option<usize>, argv: &[Vec<u8>]) {
    if replica::is_replica(srv) {
        // A replica's stream is its primary's, proxied by feed_raw.
        return;
    }
    if !has_consumers(srv) {
        // As upstream: the offset still moves (by one per operation) so that it tracks
        // writes made with only the AOF on, and WAIT's GETACK.
        srv.repl.master_repl_offset += 1;
        return;
    }
    let mut out = std::mem::take(&mut srv.repl.primary.scratch);
    out.clear();
    if let Some(db) = dbid {
        if srv.repl.stream_db != db as i64 {
            let mut b = crate::reply::itoa_buf();
            out.extend_from_slice(b"*2\r\n$6\r\nSELECT\r\n");
            push_bulk(&mut out, crate::reply::fmt_i64(&mut b, db as i64));
            srv.repl.stream_db = db as i64;
        }
    }
    push_multibulk(&mut out, argv);
    feed_bytes(srv, &out);
    if out.capacity() <= 64 * 1024 {
        srv.repl.primary.scratch = out;
    }
}

/// Feeds bytes of a primary's stream as received, to the backlog and sub-replicas of a
/// replica (upstream's `replicationFeedStreamFromPrimaryStream`): a chained replica's
/// stream is its primary's, byte for byte, so offsets agree along the chain.
pub fn feed_raw(srv: &mut Server, bytes: &[u8]) {
    if !has_consumers(srv) {
        return;
    }
    feed_bytes(srv, bytes);
}

/// Appends stream bytes to the backlog and to every replica past WAIT_BGSAVE_START,
/// advancing `master_repl_offset` (upstream's `feedReplicationBuffer`).
fn feed_bytes(srv: &mut Server, bytes: &[u8]) {
    srv.repl.master_repl_offset += bytes.len() as i64;
    if let Some(b) = srv.repl.primary.backlog.as_mut() {
        b.append(bytes);
    }
    if srv.repl.primary.replicas.is_empty() {
        return;
    }
    let limit = srv.config.client_obuf_limits[1];
    let now_s = srv.unixtime;
    let Server {
        repl,
        clients,
        clients_pending_write,
        ..
    } = srv;
    let mut over: Vec<(usize, u64)> = Vec::new();
    for &(slot, id) in &repl.primary.replicas {
        let Some(Some(c)) = clients.get_mut(slot) else {
            continue;
        };
        if c.id != id {
            continue;
        }
        let Some(r) = c.repl.as_ref() else { continue };
        if r.state == SyncState::WaitBgsaveStart {
            continue;
        }
        let streaming = r.streaming;
        c.reply.buf.extend_from_slice(bytes);
        if streaming && !c.pending_write {
            c.pending_write = true;
            clients_pending_write.push(slot);
        }
        if crate::networking::obuf_limit_reached(c, limit, now_s) {
            over.push((slot, id));
        }
    }
    for (slot, _id) in over {
        crate::networking::close_client_on_obuf_limit_slot(srv, slot);
    }
}

/// The replication info a snapshot carries (`repl-stream-db`, `repl-id`,
/// `repl-offset`), for a primary with a backlog.
pub fn save_info(srv: &Server) -> Option<(i64, String, i64)> {
    srv.repl.primary.backlog.as_ref()?;
    Some((
        srv.repl.stream_db.max(0),
        srv.repl.replid.clone(),
        srv.repl.master_repl_offset,
    ))
}

fn create_backlog(srv: &mut Server) {
    let size = cfg_i64(srv, "repl-backlog-size", 1024 * 1024).max(16 * 1024) as usize;
    srv.repl.primary.backlog = Some(Backlog::new(size));
}

/// Creates the backlog when there is none, keeping the IDs (a replica's history is its
/// primary's: upstream creates it once a replica is synchronized, so a replica serves
/// partial resyncs to sub-replicas and, once promoted, to its former primary).
pub fn ensure_backlog(srv: &mut Server) {
    if srv.repl.primary.backlog.is_none() {
        create_backlog(srv);
    }
}

/// Frees the backlog (upstream's `freeReplicationBacklog`): a replica that loads a new
/// dataset from its primary can no longer continue its sub-replicas' history.
pub fn free_backlog(srv: &mut Server) {
    srv.repl.primary.backlog = None;
}

/// Upstream's `disconnectReplicas`: every replica is closed (without sending what its
/// output buffer holds) and leaves the list at once; they reconnect and PSYNC, which
/// tells them a new replication ID, or full sync when our history changed.
pub fn disconnect_replicas(srv: &mut Server) {
    let list = std::mem::take(&mut srv.repl.primary.replicas);
    if list.is_empty() {
        return;
    }
    for (slot, id) in list {
        if let Some(c) = live_client(&mut srv.clients, slot, id) {
            c.flags |= cflags::CLOSE_ASAP;
            c.reply.buf = Vec::new();
            c.reply.sent = 0;
            crate::networking::free_client_async(srv, slot, id);
        }
    }
    srv.repl.primary.no_replicas_since = srv.unixtime;
    refresh_good_replicas(srv);
}

/// Count of replicas that acknowledged `offset` (upstream's `replicationCountAcksByOffset`).
fn count_acks(srv: &Server, offset: i64) -> i64 {
    count_online_replicas(srv, |r| r.ack_off >= offset)
}

/// Count of the online replicas whose replication state passes `pred`.
fn count_online_replicas(srv: &Server, pred: impl Fn(&ReplicaLink) -> bool) -> i64 {
    let mut n = 0;
    for &(slot, id) in &srv.repl.primary.replicas {
        if let Some(Some(c)) = srv.clients.get(slot) {
            if c.id == id
                && c.repl
                    .as_ref()
                    .is_some_and(|r| r.state == SyncState::Online && pred(r))
            {
                n += 1;
            }
        }
    }
    n
}

// ---------------------------------------------------------------------------------------
// Commands

/// SYNC and PSYNC <replid> <offset> (upstream's `syncCommand`).
pub fn sync_command(srv: &mut Server, c: &mut Client) {
    if c.has_flag(cflags::REPLICA) {
        // Already a replica: ignore.
        return;
    }
    if replica::is_replica(srv) && !replica::link_up(srv) {
        // A replica serves sub-replicas only while it follows its primary.
        c.reply
            .add_error("NOMASTERLINK Can't SYNC while not connected with my master");
        return;
    }
    if c.reply.pending() > 0 {
        c.reply
            .add_error("ERR SYNC and PSYNC are invalid with pending output");
        return;
    }
    let now = srv.mstime;
    let psync = eq_ic(&c.argv[0], "psync");
    let mut psync_offset = -1i64;
    if psync {
        match crate::util::parse_i64_strict(&c.argv[2]) {
            Some(v) => psync_offset = v,
            None => {
                c.reply
                    .add_error("ERR value is not an integer or out of range");
                return;
            }
        }
    }
    c.repl
        .get_or_insert_with(|| Box::new(ReplicaLink::new(now)));
    let name = replica_name(c);
    info!("Replica {} asks for synchronization", name);
    if psync {
        let replid = c.argv[1].clone();
        if try_partial_resync(srv, c, &replid, psync_offset, &name) {
            srv.repl.primary.stat_sync_partial_ok += 1;
            return;
        }
        if replid.first() != Some(&b'?') {
            srv.repl.primary.stat_sync_partial_err += 1;
        }
    } else if let Some(r) = c.repl.as_mut() {
        // The old protocol: no +FULLRESYNC, no ACKs.
        r.pre_psync = true;
    }
    srv.repl.primary.stat_sync_full += 1;
    if let Some(r) = c.repl.as_mut() {
        r.state = SyncState::WaitBgsaveStart;
        r.streaming = false;
    }
    c.flags |= cflags::REPLICA;
    srv.repl.primary.replicas.push((c.slot, c.id));
    if srv.repl.primary.backlog.is_none() && replica::is_replica(srv) {
        // A replica's history is its primary's: keep the IDs.
        create_backlog(srv);
    } else if srv.repl.primary.backlog.is_none() {
        super::change_replication_id(srv);
        super::clear_replication_id2(srv);
        create_backlog(srv);
        info!(
            "Replication backlog created, my new replication IDs are '{}' and '{}'",
            srv.repl.replid, srv.repl.replid2
        );
    }
    let diskless = cfg_bool(srv, "repl-diskless-sync", true);
    let capa_eof = c.repl.as_ref().is_some_and(|r| r.capa_eof);
    if diskless && capa_eof && cfg_i64(srv, "repl-diskless-sync-delay", 5) > 0 {
        info!("Delay next BGSAVE for diskless SYNC");
    } else if crate::rdb::has_active_child(srv) {
        info!(
            "No BGSAVE in progress, but another BG operation is active. BGSAVE for \
             replication delayed"
        );
    }
    srv.repl.primary.start_pending = true;
}

/// Upstream's `primaryTryPartialResynchronization`: `+CONTINUE` and the backlog from
/// the replica's offset when its history is ours.
fn try_partial_resync(
    srv: &mut Server,
    c: &mut Client,
    replid: &[u8],
    offset: i64,
    name: &str,
) -> bool {
    let r = &srv.repl;
    let ours = replid == r.replid.as_bytes();
    let prev = replid == r.replid2.as_bytes() && offset <= r.second_replid_offset;
    if !ours && !prev {
        if replid.first() != Some(&b'?') {
            if replid != r.replid.as_bytes() && replid != r.replid2.as_bytes() {
                info!(
                    "Partial resynchronization not accepted: Replication ID mismatch \
                     (Replica asked for '{}', my replication IDs are '{}' and '{}')",
                    String::from_utf8_lossy(replid),
                    r.replid,
                    r.replid2
                );
            } else {
                info!(
                    "Partial resynchronization not accepted: Requested offset for second ID \
                     was {}, but I can reply up to {}",
                    offset, r.second_replid_offset
                );
            }
        } else {
            info!("Full resync requested by replica {}", name);
        }
        return false;
    }
    let Some(b) = r.primary.backlog.as_ref() else {
        info!(
            "Unable to partial resync with replica {} for lack of backlog (Replica request \
             was: {}).",
            name, offset
        );
        return false;
    };
    let first = r.master_repl_offset - b.histlen() as i64 + 1;
    if offset < first || offset > r.master_repl_offset + 1 {
        info!(
            "Unable to partial resync with replica {} for lack of backlog (Replica request \
             was: {}).",
            name, offset
        );
        if offset > r.master_repl_offset {
            warn!(
                "Warning: replica {} tried to PSYNC with an offset that is greater than the \
                 primary replication offset.",
                name
            );
        }
        return false;
    }
    let now = srv.mstime;
    let psync2 = c.repl.as_ref().is_some_and(|r| r.capa_psync2);
    // Written to the socket directly, as upstream (the output buffer is empty: PSYNC is
    // refused with pending output), so the replication byte counters hold the stream only.
    let line = if psync2 {
        format!("+CONTINUE {}\r\n", r.replid)
    } else {
        "+CONTINUE\r\n".to_string()
    };
    if c.conn.write(line.as_bytes()).ok() != Some(line.len()) {
        // The replica will retry; upstream frees it too.
        c.flags |= cflags::CLOSE_ASAP;
        crate::networking::free_client_async(srv, c.slot, c.id);
        return true;
    }
    let skip = (offset - first) as usize;
    let before = c.reply.buf.len();
    b.copy_from(skip, &mut c.reply.buf);
    let sent = c.reply.buf.len() - before;
    c.flags |= cflags::REPLICA;
    if let Some(l) = c.repl.as_mut() {
        l.state = SyncState::Online;
        l.streaming = true;
        l.ack_time_ms = now;
        l.start_stream_on_ack = false;
    }
    srv.repl.primary.replicas.push((c.slot, c.id));
    info!(
        "Partial resynchronization request from {} accepted. Sending {} bytes of backlog \
         starting from offset {}.",
        name, sent, offset
    );
    true
}

/// REPLCONF <option> <value> ... (upstream's `replconfCommand`).
pub fn replconf_command(srv: &mut Server, c: &mut Client) {
    if c.argv.len().is_multiple_of(2) {
        c.reply.add_error(crate::reply::ERR_SYNTAX);
        return;
    }
    let now = srv.mstime;
    let mut j = 1;
    while j + 1 < c.argv.len() {
        let opt = c.argv[j].clone();
        let val = c.argv[j + 1].clone();
        if eq_ic(&opt, "listening-port") {
            match crate::util::parse_i64_strict(&val) {
                Some(p) => link(c, now).listening_port = p,
                None => {
                    c.reply
                        .add_error("ERR value is not an integer or out of range");
                    return;
                }
            }
        } else if eq_ic(&opt, "ip-address") {
            if val.len() >= 46 {
                c.reply.add_error(&format!(
                    "ERR REPLCONF ip-address provided by replica instance is too long: {} bytes",
                    val.len()
                ));
                return;
            }
            link(c, now).announced_ip = Some(String::from_utf8_lossy(&val).into_owned());
        } else if eq_ic(&opt, "capa") {
            if eq_ic(&val, "eof") {
                link(c, now).capa_eof = true;
            } else if eq_ic(&val, "psync2") {
                link(c, now).capa_psync2 = true;
            }
            // Other capabilities (dual-channel...) are not implemented: ignored, as
            // upstream ignores unknown ones.
        } else if eq_ic(&opt, "ack") {
            // Sent by replicas, never answered.
            if !c.has_flag(cflags::REPLICA) {
                return;
            }
            let Some(off) = crate::util::parse_i64_strict(&val) else {
                return;
            };
            let mut fack = None;
            if j + 3 < c.argv.len() && eq_ic(&c.argv[j + 2], "fack") {
                fack = crate::util::parse_i64_strict(&c.argv[j + 3]);
            }
            let Some(l) = c.repl.as_mut() else { return };
            if off > l.ack_off {
                l.ack_off = off;
            }
            if let Some(f) = fack {
                if f > l.aof_off {
                    l.aof_off = f;
                }
            }
            l.ack_time_ms = now;
            if l.start_stream_on_ack && l.state == SyncState::Online {
                l.start_stream_on_ack = false;
                l.streaming = true;
                info!("Synchronization with replica {} succeeded", replica_name(c));
            }
            if c.repl
                .as_ref()
                .is_some_and(|l| l.state == SyncState::Online)
            {
                // The replica is out of the table while its command runs.
                refresh_good_replicas_with(srv, 1);
            }
            return;
        } else if eq_ic(&opt, "getack") {
            // From our primary: answered by the replica side.
            replica::replconf_getack(srv, c);
            return;
        } else if eq_ic(&opt, "version") {
            let v = String::from_utf8_lossy(&val);
            let major = v
                .split('.')
                .next()
                .and_then(|m| m.parse::<u32>().ok())
                .unwrap_or(0);
            link(c, now).rdb_version = if major >= 9 { ::rdb::RDB_VERSION } else { 11 };
            link(c, now).version = version_number(&v);
        } else if eq_ic(&opt, "set-cluster-node-id") {
            // A cluster replica names itself (it must be a node we know).
            let Some(st) = srv.cluster.as_deref() else {
                c.reply
                    .add_error("ERR This instance has cluster support disabled");
                return;
            };
            if st.nodes.lookup(&val).is_none() {
                c.reply.add_error(&format!(
                    "ERR Unknown node {}",
                    crate::reply::sanitize(&val, 128)
                ));
                return;
            }
            link(c, now).cluster_node_id = Some(String::from_utf8_lossy(&val).into_owned());
        } else if eq_ic(&opt, "rdb-only")
            || eq_ic(&opt, "rdb-filter-only")
            || eq_ic(&opt, "rdb-channel")
        {
            // Accepted and ignored (not implemented).
        } else {
            c.reply.add_error(&format!(
                "ERR Unrecognized REPLCONF option: {}",
                crate::reply::sanitize(&opt, 128)
            ));
            return;
        }
        j += 2;
    }
    c.reply.add_ok();
}

fn link(c: &mut Client, now: i64) -> &mut ReplicaLink {
    c.repl
        .get_or_insert_with(|| Box::new(ReplicaLink::new(now)))
}

/// "x.y.z" as `x << 16 | y << 8 | z` (upstream's `version2num`), 0 when malformed.
fn version_number(v: &str) -> i64 {
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() != 3 {
        return 0;
    }
    let mut n = 0i64;
    for p in parts {
        match p.parse::<u8>() {
            Ok(x) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                n = (n << 8) | x as i64
            }
            _ => return 0,
        }
    }
    n
}

/// WAIT numreplicas timeout (upstream's `waitCommand`).
pub fn wait_command(srv: &mut Server, c: &mut Client) {
    if replica::is_replica(srv) {
        c.reply.add_error(
            "ERR WAIT cannot be used with replica instances. Please also note that since \
             Redis 4.0 if a replica is configured to be writable (which is not the default) \
             writes to replicas are just local and are not propagated.",
        );
        return;
    }
    let Some(num) = crate::util::parse_i64_strict(&c.argv[1]) else {
        c.reply
            .add_error("ERR value is not an integer or out of range");
        return;
    };
    let timeout = match crate::util::parse_i64_strict(&c.argv[2]) {
        Some(t) if t < 0 => {
            c.reply.add_error("ERR timeout is negative");
            return;
        }
        Some(t) => t,
        None => {
            c.reply
                .add_error("ERR timeout is not an integer or out of range");
            return;
        }
    };
    // Every write this client made is in the stream up to its last command's offset.
    let offset = c.woff;
    let acks = count_acks(srv, offset);
    if acks >= num || c.has_flag(cflags::IN_EXEC | cflags::DENY_BLOCKING) {
        c.reply.add_long(acks);
        return;
    }
    let deadline = if timeout > 0 {
        srv.mstime.saturating_add(timeout)
    } else {
        0
    };
    push_waiter(srv, c, offset, num, deadline, false);
}

/// Blocks `c` until `num` replicas acknowledged `offset` or `deadline` passes (shared by
/// WAIT and CLUSTER SETSLOT): no key-blocking state, so the shared unblock path releases
/// nothing else.
fn push_waiter(
    srv: &mut Server,
    c: &mut Client,
    offset: i64,
    num: i64,
    deadline: i64,
    setslot: bool,
) {
    c.bstate = None;
    c.flags |= cflags::BLOCKED;
    srv.blocked.blocked_clients += 1;
    srv.repl.primary.waiters.push(Waiter {
        slot: c.slot,
        id: c.id,
        offset,
        numreplicas: num,
        deadline,
        setslot,
    });
    srv.repl.primary.get_ack = true;
}

/// Takes `c` out of the clients waiting for replicas (CLIENT UNBLOCK), with its reply as
/// on timeout (upstream's `replyToBlockedClientTimedOut`): WAIT's acknowledgement count,
/// CLUSTER SETSLOT's `-NOREPLICAS`. None when `c` does not wait for replicas.
pub fn take_waiter(srv: &mut Server, c: &Client) -> Option<Result<i64, &'static str>> {
    let p = &mut srv.repl.primary;
    let i = p
        .waiters
        .iter()
        .position(|w| w.slot == c.slot && w.id == c.id)?;
    let w = p.waiters.remove(i);
    if w.setslot {
        return Some(Err("NOREPLICAS Not enough good replicas to write."));
    }
    Some(Ok(count_acks(srv, w.offset)))
}

/// The online replicas running 8.0 or later (upstream: version > 7.2.255), which CLUSTER
/// SETSLOT waits for.
pub fn setslot_eligible_replicas(srv: &Server) -> i64 {
    count_online_replicas(srv, |r| r.version > 0x0702ff)
}

/// Blocks the running CLUSTER SETSLOT until `num` replicas acknowledged `offset` or
/// `deadline` (absolute ms, 0 = never) passes (upstream's `blockClientForReplicaAck` with
/// a pending command).
pub fn block_for_replica_ack(
    srv: &mut Server,
    c: &mut Client,
    offset: i64,
    num: i64,
    deadline: i64,
) {
    c.flags |= cflags::PENDING_COMMAND;
    push_waiter(srv, c, offset, num, deadline, true);
}

/// ROLE, the primary form: `master`, the offset, and each replica's ip, port and
/// acknowledged offset.
pub fn role_command(srv: &mut Server, c: &mut Client) {
    // The replica form belongs to src/replication/replica.rs.
    if super::replica::is_replica(srv) {
        super::replica::role_reply(srv, c);
        return;
    }
    let mut rows: Vec<(String, i64, i64)> = Vec::new();
    for &(slot, id) in &srv.repl.primary.replicas {
        if let Some(Some(r)) = srv.clients.get(slot) {
            if r.id != id {
                continue;
            }
            if let Some(l) = &r.repl {
                if l.state == SyncState::WaitBgsaveStart {
                    continue;
                }
                let ip = l
                    .announced_ip
                    .clone()
                    .unwrap_or_else(|| peer_ip(r).to_string());
                rows.push((ip, l.listening_port, l.ack_off));
            }
        }
    }
    c.reply.add_array_len(3);
    c.reply.add_bulk(b"master");
    c.reply.add_long(srv.repl.master_repl_offset);
    c.reply.add_array_len(rows.len());
    for (ip, port, off) in rows {
        c.reply.add_array_len(3);
        c.reply.add_bulk(ip.as_bytes());
        c.reply.add_bulk(port.to_string().as_bytes());
        c.reply.add_bulk(off.to_string().as_bytes());
    }
}

// ---------------------------------------------------------------------------------------
// Full sync

/// Starts the child for the replicas waiting for a full sync, when due (upstream's
/// `replicationStartPendingFork` + `startBgsaveForReplication`).
fn maybe_start_full_sync(el: &mut EventLoop, srv: &mut Server) {
    if crate::rdb::has_active_child(srv) || srv.repl.primary.pipe.is_some() {
        return;
    }
    let diskless = cfg_bool(srv, "repl-diskless-sync", true);
    let delay_ms = cfg_i64(srv, "repl-diskless-sync-delay", 5).saturating_mul(1000);
    let max_replicas = cfg_i64(srv, "repl-diskless-sync-max-replicas", 0);
    let now = srv.mstime;
    let mut waiting = 0i64;
    let mut all_eof = true;
    let mut oldest_wait = 0i64;
    let mut version = ::rdb::RDB_VERSION;
    for &(slot, id) in &srv.repl.primary.replicas {
        if let Some(Some(c)) = srv.clients.get(slot) {
            if c.id != id {
                continue;
            }
            if let Some(l) = &c.repl {
                if l.state == SyncState::WaitBgsaveStart {
                    waiting += 1;
                    all_eof &= l.capa_eof;
                    oldest_wait = oldest_wait.max(now - c.ctime_ms.max(l.ack_time_ms));
                    version = version.min(l.rdb_version);
                }
            }
        }
    }
    if waiting == 0 {
        srv.repl.primary.start_pending = false;
        return;
    }
    let socket_target = diskless && all_eof;
    if socket_target
        && delay_ms > 0
        && oldest_wait < delay_ms
        && !(max_replicas > 0 && waiting >= max_replicas)
    {
        return;
    }
    srv.repl.primary.start_pending = false;
    info!(
        "Starting BGSAVE for SYNC with target: {}",
        if socket_target {
            "replicas sockets using: normal sync"
        } else {
            "disk"
        }
    );
    // Every waiting replica gets +FULLRESYNC with the offset the snapshot matches; the
    // stream after it starts with a SELECT.
    let replid = srv.repl.replid.clone();
    let offset = srv.repl.master_repl_offset;
    srv.repl.stream_db = -1;
    let mut targets = Vec::new();
    let mut failed = Vec::new();
    let list = srv.repl.primary.replicas.clone();
    for (slot, id) in list {
        let Some(c) = live_client(&mut srv.clients, slot, id) else {
            continue;
        };
        let Some(l) = c.repl.as_mut() else { continue };
        if l.state != SyncState::WaitBgsaveStart {
            continue;
        }
        l.state = SyncState::WaitBgsaveEnd;
        l.psync_initial_offset = offset;
        l.socket_target = socket_target;
        l.rdb_io_ms = now;
        let pre = l.pre_psync;
        if !pre {
            let line = format!("+FULLRESYNC {} {}\r\n", replid, offset);
            if c.conn.write(line.as_bytes()).ok() != Some(line.len()) {
                failed.push((slot, id));
                continue;
            }
        }
        targets.push((slot, id, 0usize));
    }
    for (slot, id) in failed {
        crate::networking::free_client_async(srv, slot, id);
    }
    if targets.is_empty() {
        return;
    }
    let ok = if socket_target {
        start_diskless(el, srv, targets.clone(), version)
    } else {
        crate::rdb::bgsave_start(srv)
    };
    if !ok {
        warn!("BGSAVE for replication failed");
        for (slot, id, _) in targets {
            crate::networking::free_client_async(srv, slot, id);
        }
    }
}

/// Forks the child writing the RDB in the EOF-marker form into a pipe the parent relays
/// to the replicas (upstream's `rdbSaveToReplicasSockets`).
fn start_diskless(
    el: &mut EventLoop,
    srv: &mut Server,
    targets: Vec<(usize, u64, usize)>,
    version: u32,
) -> bool {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fresh descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        warn!(
            "Can't setup the pipe for the diskless transfer: {}",
            std::io::Error::last_os_error()
        );
        return false;
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(rd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(rd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    let mark = crate::util::random_hex40();
    let wfd = wr.as_raw_fd();
    let work = move |srv: &mut Server| -> bool {
        // SAFETY: the child owns its copy of the write end; it leaves with _exit, so the
        // File is never dropped twice.
        let f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(wfd) });
        let mut out: &std::fs::File = &f;
        let head = format!("$EOF:{}\r\n", mark);
        if out.write_all(head.as_bytes()).is_err() {
            return false;
        }
        if crate::rdb::rdb_save_to_version(srv, &*f, false, version).is_err() {
            return false;
        }
        out.write_all(mark.as_bytes()).is_ok()
    };
    let pid = match crate::rdb::fork_child(
        srv,
        crate::rdb::ChildType::Rdb,
        c"valkey-rdb-to-replicas",
        "RDB",
        &work,
    ) {
        Ok(pid) => pid,
        Err(e) => {
            warn!("Can't save in background: fork: {}", e.desc());
            return false;
        }
    };
    drop(wr);
    info!(
        "Background RDB transfer started by pid {} to pipe through parent process",
        pid
    );
    srv.rdb.save_time_start = srv.unixtime;
    let rfd = rd.as_raw_fd();
    srv.repl.primary.diskless_child = Some(pid);
    srv.repl.primary.pipe = Some(PipeTransfer {
        fd: Some(rd),
        buf: Vec::with_capacity(PIPE_CHUNK),
        targets,
        writing: 0,
        eof: false,
        child_ok: None,
    });
    if el
        .create_file_event(rfd, ae::READABLE, rdb_pipe_read, 0)
        .is_err()
    {
        warn!("Can't watch the pipe of the diskless transfer");
        crate::rdb::kill_child(srv);
    }
    true
}

const PIPE_CHUNK: usize = 64 * 1024;

/// Whether `pid` is the child of a diskless transfer.
pub fn child_is_diskless(srv: &Server, pid: i32) -> bool {
    srv.repl.primary.diskless_child == Some(pid)
}

/// The child of a replication BGSAVE ended (called when it is reaped; the replicas are
/// served in before-sleep, where the event loop is at hand).
pub fn bgsave_done(srv: &mut Server, ok: bool, diskless: bool) {
    if diskless {
        srv.repl.primary.diskless_child = None;
        srv.rdb.save_time_last = srv.unixtime - srv.rdb.save_time_start;
        srv.rdb.save_time_start = -1;
        if ok {
            info!("Background RDB transfer terminated with success");
        } else {
            warn!("Background transfer error");
        }
        if let Some(p) = srv.repl.primary.pipe.as_mut() {
            p.child_ok = Some(ok);
        }
    } else {
        srv.repl.primary.disk_done = Some(ok);
    }
}

/// Reads the child's pipe and writes each chunk to every target replica; while a
/// socket does not take a chunk the pipe is not read (upstream's `rdbPipeReadHandler`).
fn rdb_pipe_read(el: &mut EventLoop, srv: &mut Server, fd: RawFd, _: usize, _: u32) {
    for _ in 0..16 {
        let Some(p) = srv.repl.primary.pipe.as_mut() else {
            el.delete_file_event(fd, ae::READABLE);
            return;
        };
        if p.writing > 0 {
            el.delete_file_event(fd, ae::READABLE);
            return;
        }
        p.buf.clear();
        p.buf.reserve(PIPE_CHUNK);
        // SAFETY: reading into the spare capacity of a buffer we own.
        let n = unsafe {
            libc::read(
                fd,
                p.buf.as_mut_ptr() as *mut libc::c_void,
                p.buf.capacity(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::WouldBlock => return,
                std::io::ErrorKind::Interrupted => continue,
                _ => {
                    warn!(
                        "Diskless rdb transfer, read error sending DB to replicas: {}",
                        e
                    );
                    abort_pipe(el, srv);
                    return;
                }
            }
        }
        if n == 0 {
            let up = p.targets.len();
            info!(
                "Diskless rdb transfer, done reading from pipe, {} replicas still up.",
                up
            );
            el.delete_file_event(fd, ae::READABLE);
            p.eof = true;
            p.fd = None;
            return;
        }
        // SAFETY: the kernel wrote n bytes.
        unsafe { p.buf.set_len(n as usize) };
        let now = srv.mstime;
        let targets = std::mem::take(&mut p.targets);
        let mut kept = Vec::with_capacity(targets.len());
        let mut writing = 0;
        for (slot, id, _) in targets {
            let Some(mut c) = take_client(srv, slot) else {
                continue;
            };
            if c.id != id {
                put_client(srv, c);
                continue;
            }
            let buf = &srv.repl.primary.pipe.as_ref().map(|p| &p.buf);
            let Some(buf) = buf else {
                put_client(srv, c);
                return;
            };
            let w = match c.conn.write(buf) {
                Ok(w) => w,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                Err(e) => {
                    warn!(
                        "Diskless rdb transfer, write error sending DB to replica: {}",
                        e
                    );
                    let (s, i) = (c.slot, c.id);
                    put_client(srv, c);
                    crate::networking::free_client_async(srv, s, i);
                    continue;
                }
            };
            let len = buf.len();
            srv.stats.net_repl_output_bytes += w as u64;
            if let Some(l) = c.repl.as_mut() {
                l.rdb_io_ms = now;
            }
            // A TLS replica may have taken the whole chunk with records still queued
            // for its socket: it is not done with the chunk until they went out.
            if w < len || c.conn.wants_write() {
                if el
                    .create_file_event(c.fd, ae::WRITABLE, rdb_pipe_write, slot)
                    .is_err()
                {
                    let (s, i) = (c.slot, c.id);
                    put_client(srv, c);
                    crate::networking::free_client_async(srv, s, i);
                    continue;
                }
                writing += 1;
            }
            kept.push((slot, id, w));
            put_client(srv, c);
        }
        let Some(p) = srv.repl.primary.pipe.as_mut() else {
            return;
        };
        p.targets = kept;
        p.writing = writing;
        if p.targets.is_empty() {
            info!("Diskless rdb transfer, last replica dropped, killing fork child.");
            abort_pipe(el, srv);
            return;
        }
        if writing > 0 {
            el.delete_file_event(fd, ae::READABLE);
            return;
        }
    }
    // Fairness: come back next turn.
    el.set_pending(fd, ae::READABLE);
}

/// A replica's socket can take more of the current chunk (upstream's
/// `rdbPipeWriteHandler`).
fn rdb_pipe_write(el: &mut EventLoop, srv: &mut Server, fd: RawFd, slot: usize, _: u32) {
    let Some(mut c) = take_client(srv, slot) else {
        el.delete_file_event(fd, ae::WRITABLE);
        return;
    };
    let id = c.id;
    let now = srv.mstime;
    let Some(p) = srv.repl.primary.pipe.as_mut() else {
        el.delete_file_event(fd, ae::WRITABLE);
        put_client(srv, c);
        return;
    };
    let Some(t) = p.targets.iter_mut().find(|t| t.0 == slot && t.1 == id) else {
        el.delete_file_event(fd, ae::WRITABLE);
        put_client(srv, c);
        return;
    };
    if t.2 >= p.buf.len() && !c.conn.wants_write() {
        el.delete_file_event(fd, ae::WRITABLE);
        put_client(srv, c);
        return;
    }
    let mut res = Ok(0);
    let start = t.2;
    while t.2 < p.buf.len() {
        match c.conn.write(&p.buf[t.2..]) {
            Ok(0) => {
                res = Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "write zero",
                ));
                break;
            }
            Ok(w) => t.2 += w,
            Err(e) => {
                res = Err(e);
                break;
            }
        }
    }
    srv.stats.net_repl_output_bytes += (t.2 - start) as u64;
    if res.is_ok() && c.conn.wants_write() {
        // TLS records of the chunk still queued.
        res = c.conn.flush().map(|_| 0);
    }
    match res {
        Ok(_) => {
            if let Some(l) = c.repl.as_mut() {
                l.rdb_io_ms = now;
            }
            if t.2 >= p.buf.len() {
                el.delete_file_event(fd, ae::WRITABLE);
                p.writing = p.writing.saturating_sub(1);
                if p.writing == 0 {
                    resume_pipe(el, srv);
                }
            }
            put_client(srv, c);
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => put_client(srv, c),
        Err(e) => {
            warn!(
                "Diskless rdb transfer, write error sending DB to replica: {}",
                e
            );
            el.delete_file_event(fd, ae::WRITABLE);
            put_client(srv, c);
            crate::networking::free_client_async(srv, slot, id);
        }
    }
}

/// Reads the pipe again once every target took the chunk.
fn resume_pipe(el: &mut EventLoop, srv: &mut Server) {
    if let Some(p) = srv.repl.primary.pipe.as_ref() {
        if let Some(fd) = p.fd.as_ref().map(|f| f.as_raw_fd()) {
            if el
                .create_file_event(fd, ae::READABLE, rdb_pipe_read, 0)
                .is_ok()
            {
                el.set_pending(fd, ae::READABLE);
            }
        }
    }
}

/// Stops a diskless transfer: kills the child, closes the pipe; the replicas still
/// waiting are disconnected.
fn abort_pipe(el: &mut EventLoop, srv: &mut Server) {
    if let Some(p) = srv.repl.primary.pipe.take() {
        if let Some(fd) = &p.fd {
            el.delete_file_event(fd.as_raw_fd(), ae::READABLE);
        }
        for (slot, id, _) in p.targets {
            if let Some(Some(c)) = srv.clients.get(slot) {
                if c.id == id {
                    el.delete_file_event(c.fd, ae::WRITABLE);
                }
            }
            crate::networking::free_client_async(srv, slot, id);
        }
    }
    if srv.repl.primary.diskless_child.is_some() {
        crate::rdb::kill_child(srv);
    }
}

/// Finishes a diskless transfer once the pipe is drained to every replica and the
/// child has been reaped: the replicas go online and start streaming on their first
/// ACK (upstream's `updateReplicasWaitingBgsave` for a socket target).
fn finish_pipe(el: &mut EventLoop, srv: &mut Server) {
    let done = srv.repl.primary.pipe.as_ref().is_some_and(|p| {
        p.child_ok.is_some() && (p.eof || p.child_ok == Some(false)) && p.writing == 0
    });
    if !done {
        return;
    }
    let Some(p) = srv.repl.primary.pipe.take() else {
        return;
    };
    if let Some(fd) = &p.fd {
        el.delete_file_event(fd.as_raw_fd(), ae::READABLE);
    }
    let ok = p.child_ok == Some(true) && p.eof;
    let now = srv.mstime;
    for (slot, id, _) in p.targets {
        let Some(c) = live_client(&mut srv.clients, slot, id) else {
            continue;
        };
        if !ok {
            warn!("SYNC failed. BGSAVE child returned an error");
            crate::networking::free_client_async(srv, slot, id);
            continue;
        }
        let name = replica_name(c);
        if let Some(l) = c.repl.as_mut() {
            l.state = SyncState::Online;
            l.ack_time_ms = now;
            if l.pre_psync {
                l.streaming = true;
            } else {
                l.start_stream_on_ack = true;
            }
        }
        if c.repl.as_ref().is_some_and(|l| l.streaming) && !c.pending_write {
            c.pending_write = true;
            srv.clients_pending_write.push(slot);
        }
        info!(
            "Streamed RDB transfer with replica {} succeeded (socket). Waiting for REPLCONF \
             ACK from replica to enable streaming",
            name
        );
    }
}

/// A disk BGSAVE for replicas ended: the file goes to each replica waiting for it.
fn start_disk_transfers(el: &mut EventLoop, srv: &mut Server, ok: bool) {
    let list = srv.repl.primary.replicas.clone();
    let file = srv.config.dbfilename.clone();
    for (slot, id) in list {
        let Some(c) = live_client(&mut srv.clients, slot, id) else {
            continue;
        };
        let Some(l) = c.repl.as_mut() else { continue };
        if l.state != SyncState::WaitBgsaveEnd || l.socket_target {
            continue;
        }
        if !ok {
            warn!("SYNC failed. BGSAVE child returned an error");
            crate::networking::free_client_async(srv, slot, id);
            continue;
        }
        // Decrypted in memory when encrypted at rest (src/rdb/crypt.rs).
        let opened = crate::rdb::crypt::open_plain_snapshot(&file);
        let (f, size) = match opened {
            Ok(x) => x,
            Err(e) => {
                warn!("SYNC failed. Can't open/stat DB after BGSAVE: {}", e);
                crate::networking::free_client_async(srv, slot, id);
                continue;
            }
        };
        l.state = SyncState::SendBulk;
        l.rdb_io_ms = srv.mstime;
        l.bulk = Some(Box::new(BulkSend {
            file: f,
            preamble: format!("${}\r\n", size).into_bytes(),
            pre_sent: 0,
            pos: 0,
            size,
            chunk: Vec::new(),
        }));
        let fd = c.fd;
        if el
            .create_file_event(fd, ae::WRITABLE, send_bulk_to_replica, slot)
            .is_err()
        {
            crate::networking::free_client_async(srv, slot, id);
        }
    }
}

/// Writes the next part of the RDB file to a replica (upstream's `sendBulkToReplica`).
fn send_bulk_to_replica(el: &mut EventLoop, srv: &mut Server, fd: RawFd, slot: usize, _: u32) {
    let Some(mut c) = take_client(srv, slot) else {
        el.delete_file_event(fd, ae::WRITABLE);
        return;
    };
    let now = srv.mstime;
    // Readiness is edge-triggered: write until the socket is full (or a fair share was
    // written, then come back next turn).
    let mut r = Ok(Step::Progress);
    for _ in 0..16 {
        r = bulk_step(&mut c, now, &mut srv.stats.net_repl_output_bytes);
        if !matches!(r, Ok(Step::Progress)) {
            break;
        }
    }
    match r {
        Ok(Step::Progress) => {
            el.set_pending(fd, ae::WRITABLE);
            put_client(srv, c);
        }
        Ok(Step::Blocked) => put_client(srv, c),
        Ok(Step::Done) => {
            el.delete_file_event(fd, ae::WRITABLE);
            let name = replica_name(&c);
            if let Some(l) = c.repl.as_mut() {
                l.bulk = None;
                l.state = SyncState::Online;
                l.streaming = true;
                l.ack_time_ms = now;
            }
            info!("Synchronization with replica {} succeeded", name);
            if c.has_pending_replies() && !c.pending_write {
                c.pending_write = true;
                srv.clients_pending_write.push(slot);
            }
            put_client(srv, c);
        }
        Err(e) => {
            warn!("Write error sending DB to replica: {}", e);
            el.delete_file_event(fd, ae::WRITABLE);
            let id = c.id;
            put_client(srv, c);
            crate::networking::free_client_async(srv, slot, id);
        }
    }
}

/// What one write of a transfer achieved.
enum Step {
    /// Wrote something, more to write.
    Progress,
    /// The socket is full.
    Blocked,
    /// Everything went out.
    Done,
}

/// One write of the bulk transfer.
fn bulk_step(c: &mut Client, now: i64, sent: &mut u64) -> std::io::Result<Step> {
    let Some(l) = c.repl.as_mut() else {
        return Ok(Step::Done);
    };
    let Some(b) = l.bulk.as_mut() else {
        return Ok(Step::Done);
    };
    l.rdb_io_ms = now;
    if b.pre_sent < b.preamble.len() {
        match c.conn.write(&b.preamble[b.pre_sent..]) {
            Ok(n) => {
                b.pre_sent += n;
                *sent += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Step::Blocked),
            Err(e) => return Err(e),
        }
        return Ok(Step::Progress);
    }
    if b.pos >= b.size {
        return done_step(c);
    }
    let want = ((b.size - b.pos) as usize).min(PIPE_CHUNK);
    b.chunk.resize(want, 0);
    let n = b.file.read_at(&mut b.chunk, b.pos)?;
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "premature EOF",
        ));
    }
    match c.conn.write(&b.chunk[..n]) {
        Ok(w) => {
            b.pos += w as u64;
            *sent += w as u64;
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Step::Blocked),
        Err(e) => return Err(e),
    }
    if b.pos >= b.size {
        return done_step(c);
    }
    Ok(Step::Progress)
}

/// The whole file was written: done once a TLS replica's queued records went out too.
fn done_step(c: &mut Client) -> std::io::Result<Step> {
    match c.conn.flush() {
        Ok(()) => Ok(Step::Done),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(Step::Blocked),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------
// Client lifecycle, cron, before-sleep

/// A replica's connection is being freed: it leaves the replica list and any transfer.
pub fn on_free_client(el: &mut EventLoop, srv: &mut Server, c: &mut Client) {
    if c.repl.is_none() {
        return;
    }
    if c.has_flag(cflags::REPLICA) {
        info!("Connection with replica {} lost.", replica_name(c));
    }
    el.delete_file_event(c.fd, ae::WRITABLE);
    let (slot, id) = (c.slot, c.id);
    let p = &mut srv.repl.primary;
    let before = p.replicas.len();
    p.replicas.retain(|&(s, i)| !(s == slot && i == id));
    if before > 0 && p.replicas.is_empty() {
        p.no_replicas_since = srv.unixtime;
    }
    let mut resume = false;
    if let Some(pt) = p.pipe.as_mut() {
        if let Some(pos) = pt.targets.iter().position(|t| t.0 == slot && t.1 == id) {
            let t = pt.targets.remove(pos);
            if t.2 < pt.buf.len() && pt.writing > 0 && !pt.eof {
                pt.writing -= 1;
                resume = pt.writing == 0;
            } else if t.2 < pt.buf.len() && pt.writing > 0 {
                pt.writing -= 1;
            }
            if pt.targets.is_empty() && !pt.eof {
                info!("Diskless rdb transfer, last replica dropped, killing fork child.");
                abort_pipe(el, srv);
                return;
            }
        }
    }
    if resume {
        resume_pipe(el, srv);
    }
    refresh_good_replicas(srv);
}

/// The primary's part of replicationCron (once per second).
pub fn cron(_el: &mut EventLoop, srv: &mut Server) {
    // A replica's own replicas get its primary's stream (PINGs included): no PING of its
    // own, and its backlog belongs to the replica side.
    let is_replica = replica::is_replica(srv);
    let loops = srv.repl.primary.cron_loops;
    srv.repl.primary.cron_loops += 1;
    apply_config(srv);
    let now = srv.mstime;
    // Resize the backlog after CONFIG SET repl-backlog-size.
    let want = cfg_i64(srv, "repl-backlog-size", 1024 * 1024).max(16 * 1024) as usize;
    if let Some(b) = srv.repl.primary.backlog.as_mut() {
        if b.size() != want {
            *b = b.resized(want);
        }
    }
    // PING the replicas now and then, into the stream, so they can detect a dead link.
    let period = cfg_i64(srv, "repl-ping-replica-period", 10).max(1) as u64;
    // Not while a cluster manual failover holds writes: the replica waits for the offset
    // the pause froze (upstream skips the PING then too).
    if !is_replica
        && !srv.repl.primary.replicas.is_empty()
        && loops.is_multiple_of(period)
        && !srv.pause.failover_active(now)
    {
        feed(srv, None, &[b"PING".to_vec()]);
    }
    // Newlines to replicas waiting for their RDB (not while the diskless child streams
    // it), so they do not time out.
    let timeout_ms = cfg_i64(srv, "repl-timeout", 60).saturating_mul(1000);
    let mut drop = Vec::new();
    let list = srv.repl.primary.replicas.clone();
    for (slot, id) in list {
        let Some(c) = live_client(&mut srv.clients, slot, id) else {
            continue;
        };
        let name = replica_name(c);
        let Some(l) = c.repl.as_ref() else { continue };
        let presync = l.state == SyncState::WaitBgsaveStart
            || (l.state == SyncState::WaitBgsaveEnd && !l.socket_target);
        if presync {
            let _ = c.conn.write(b"\n");
        }
        if l.state == SyncState::Online && !l.pre_psync && now - l.ack_time_ms > timeout_ms {
            warn!("Disconnecting timedout replica (streaming sync): {}", name);
            drop.push((slot, id));
        } else if (l.state == SyncState::WaitBgsaveEnd && l.socket_target
            || l.state == SyncState::SendBulk)
            && now - l.rdb_io_ms > timeout_ms
        {
            warn!("Disconnecting timedout replica (full sync): {}", name);
            drop.push((slot, id));
        }
    }
    for (slot, id) in drop {
        crate::networking::free_client_async(srv, slot, id);
    }
    // Free the backlog after `repl-backlog-ttl` seconds without replicas; a new ID then,
    // since our history can no longer be continued.
    let ttl = cfg_i64(srv, "repl-backlog-ttl", 3600);
    let p = &srv.repl.primary;
    if ttl > 0
        && !is_replica
        && p.replicas.is_empty()
        && p.backlog.is_some()
        && srv.unixtime - p.no_replicas_since > ttl
    {
        super::change_replication_id(srv);
        super::clear_replication_id2(srv);
        srv.repl.primary.backlog = None;
        info!(
            "Replication backlog freed after {} seconds without connected replicas.",
            ttl
        );
    }
    if srv.repl.primary.start_pending {
        maybe_start_full_sync(_el, srv);
    }
}

/// Before-sleep work: finished full syncs, pending full syncs, `REPLCONF GETACK` for
/// WAIT, and the WAITing clients that are done.
pub fn before_sleep(el: &mut EventLoop, srv: &mut Server) {
    if let Some(ok) = srv.repl.primary.disk_done.take() {
        start_disk_transfers(el, srv, ok);
    }
    if srv.repl.primary.pipe.is_some() {
        finish_pipe(el, srv);
    }
    if srv.repl.primary.start_pending {
        maybe_start_full_sync(el, srv);
    }
    if srv.repl.primary.waiters.is_empty() {
        return;
    }
    if srv.repl.primary.get_ack {
        srv.repl.primary.get_ack = false;
        feed(
            srv,
            None,
            &[b"REPLCONF".to_vec(), b"GETACK".to_vec(), b"*".to_vec()],
        );
    }
    let now = crate::util::mstime();
    let waiters = std::mem::take(&mut srv.repl.primary.waiters);
    let mut kept = Vec::with_capacity(waiters.len());
    for w in waiters {
        let acks = count_acks(srv, w.offset);
        let timed_out = w.deadline != 0 && now >= w.deadline;
        if acks < w.numreplicas && !timed_out {
            kept.push(w);
            continue;
        }
        if w.setslot {
            let current = matches!(srv.clients.get(w.slot), Some(Some(c))
                if c.id == w.id && c.has_flag(cflags::BLOCKED));
            if !current {
                continue;
            }
            if acks >= w.numreplicas {
                if let Some(Some(c)) = srv.clients.get_mut(w.slot) {
                    c.flags |= cflags::REPLICATION_DONE;
                }
                crate::blocked::unblock_and_reexecute(srv, w.slot);
            } else if let Some(mut c) = take_client(srv, w.slot) {
                crate::blocked::unblock_client_on_timeout_error(
                    srv,
                    &mut c,
                    "NOREPLICAS Not enough good replicas to write.",
                );
                put_client(srv, c);
            }
            continue;
        }
        let Some(mut c) = take_client(srv, w.slot) else {
            continue;
        };
        if c.id == w.id && c.has_flag(cflags::BLOCKED) {
            c.reply.add_long(acks);
            crate::blocked::unblock_client(srv, &mut c, true);
            if c.has_pending_replies() && !c.pending_write {
                c.pending_write = true;
                srv.clients_pending_write.push(c.slot);
            }
        }
        put_client(srv, c);
    }
    kept.append(&mut srv.repl.primary.waiters);
    srv.repl.primary.waiters = kept;
}

/// The primary's fields of INFO replication (after `role:`).
pub fn info_fields(srv: &Server, s: &mut String) {
    use std::fmt::Write as _;
    let r = &srv.repl;
    if r.primary.min_replicas_to_write > 0 && r.primary.min_replicas_max_lag > 0 {
        let _ = write!(s, "min_slaves_good_slaves:{}\r\n", r.primary.good_replicas);
    }
    let _ = write!(s, "connected_slaves:{}\r\n", r.primary.replicas.len());
    let now = srv.mstime;
    let mut n = 0;
    for &(slot, id) in &r.primary.replicas {
        let Some(Some(c)) = srv.clients.get(slot) else {
            continue;
        };
        if c.id != id {
            continue;
        }
        let Some(l) = &c.repl else { continue };
        let state = match l.state {
            SyncState::WaitBgsaveStart | SyncState::WaitBgsaveEnd => "wait_bgsave",
            SyncState::SendBulk => "send_bulk",
            SyncState::Online => "online",
            SyncState::None => continue,
        };
        let lag = if l.state == SyncState::Online {
            (now - l.ack_time_ms) / 1000
        } else {
            0
        };
        let ip = l.announced_ip.as_deref().unwrap_or_else(|| peer_ip(c));
        let _ = write!(
            s,
            "slave{}:ip={},port={},state={},offset={},lag={},type=replica\r\n",
            n, ip, l.listening_port, state, l.ack_off, lag
        );
        n += 1;
    }
    let size = cfg_i64(srv, "repl-backlog-size", 1024 * 1024);
    let (active, first, hist) = match &r.primary.backlog {
        Some(b) => (
            1,
            r.master_repl_offset - b.histlen() as i64 + 1,
            b.histlen(),
        ),
        None => (0, 0, 0),
    };
    let _ = write!(
        s,
        "replicas_waiting_psync:0\r\n\
         master_failover_state:no-failover\r\nmaster_replid:{}\r\n\
         master_replid2:{}\r\nmaster_repl_offset:{}\r\nsecond_repl_offset:{}\r\n\
         repl_backlog_active:{}\r\nrepl_backlog_size:{}\r\n\
         repl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{}\r\n",
        r.replid,
        r.replid2,
        r.master_repl_offset,
        r.second_replid_offset,
        active,
        size,
        first,
        hist
    );
}

/// The client in `slot` if it is still the one with `id` (a replica list entry may
/// outlive its client, and the slot be reused).
fn live_client(
    clients: &mut slab::Slab<Option<Box<Client>>>,
    slot: usize,
    id: u64,
) -> Option<&mut Client> {
    match clients.get_mut(slot) {
        Some(Some(c)) if c.id == id => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_wraps_and_copies_the_tail() {
        let mut b = Backlog::new(8);
        b.append(b"abc");
        let mut out = Vec::new();
        b.copy_from(0, &mut out);
        assert_eq!(out, b"abc");
        b.append(b"defghij");
        assert_eq!(b.histlen(), 8);
        out.clear();
        b.copy_from(0, &mut out);
        assert_eq!(out, b"cdefghij");
        out.clear();
        b.copy_from(5, &mut out);
        assert_eq!(out, b"hij");
        b.append(b"0123456789xyz");
        out.clear();
        b.copy_from(0, &mut out);
        assert_eq!(out, b"56789xyz");
        let r = b.resized(4);
        out.clear();
        r.copy_from(0, &mut out);
        assert_eq!(out, b"9xyz");
    }

    /// The buffer grows with the history, not to the size at once, and wraps the same.
    #[test]
    fn backlog_grows_with_its_history() {
        let size = 1 << 20;
        let mut b = Backlog::new(size);
        assert_eq!(b.allocated(), 0);
        b.append(b"abc");
        assert!(
            b.allocated() >= 3 && b.allocated() < 64 * 1024,
            "{}",
            b.allocated()
        );
        let chunk: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut all = b"abc".to_vec();
        for _ in 0..15 {
            b.append(&chunk);
            all.extend_from_slice(&chunk);
            assert!(b.allocated() <= size + 4096);
            let mut out = Vec::new();
            b.copy_from(0, &mut out);
            assert_eq!(out.len(), b.histlen());
            assert!(out[..] == all[all.len() - out.len()..]);
        }
        assert_eq!(b.histlen(), size);
    }

    #[test]
    fn multibulk_encoding() {
        let mut out = Vec::new();
        push_multibulk(&mut out, &[b"SET".to_vec(), b"k".to_vec(), b"".to_vec()]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }
}
