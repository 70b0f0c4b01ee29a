//! The replica side of replication (upstream's `replication.c`: replicaofCommand,
//! connectWithPrimary, syncWithPrimary, readSyncBulkPayload, replicationCron's replica
//! part).
//!
//! The link to the primary is a state machine driven by the event loop:
//! `Connect` (cron opens a non-blocking connection) -> `Connecting` (writable: the connect
//! finished; with `tls-replication` the TLS handshake then advances on each readable or
//! writable edge) -> `ReceivePing` (PING sent) -> `ReceiveHandshake` (AUTH and the REPLCONFs
//! pipelined, their replies read in order) -> `ReceivePsync` (PSYNC sent) -> either
//! `Transfer` (+FULLRESYNC: the RDB payload, `$<len>` or `$EOF:<mark>`) or straight to
//! `Connected` (+CONTINUE). In `Connected` the link's socket belongs to the primary client
//! (flag PRIMARY), whose commands run through `process_command` like any client's and
//! advance the offset by their bytes once fully applied ([`command_processed`]).
//!
//! Every failure closes the link and leaves the state at `Connect`: cron retries once per
//! second. A transfer or load that fails keeps the previous dataset: the payload is loaded
//! into a fresh set of databases which replaces the old one only on success.

use std::io::ErrorKind;
use std::os::unix::io::RawFd;

use log::{info, warn};

use crate::client::{flags as cflags, Client, Conn};
use crate::server::{EventLoop, Server};

/// The version announced with `REPLCONF version`: the primary sends us RDB 80
/// (VALKEY080), the newest format the loader reads.
pub const ANNOUNCED_VERSION: &str = "9.1.2";

/// Longest handshake reply line accepted from the primary.
const MAX_LINE: usize = 64 * 1024;

/// Where the link to the primary stands (upstream's `REPL_STATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkState {
    /// Not a replica.
    #[default]
    None,
    /// A replica without a link: cron connects.
    Connect,
    /// Non-blocking connect in progress.
    Connecting,
    /// PING sent, waiting for its reply.
    ReceivePing,
    /// AUTH / REPLCONFs sent, reading their replies in order.
    ReceiveHandshake,
    /// PSYNC sent.
    ReceivePsync,
    /// Receiving the RDB payload of a full sync.
    Transfer,
    /// The primary client runs the stream.
    Connected,
}

/// A reply expected during the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Auth,
    Replconf(&'static str),
}

/// The primary we can partially resync with (upstream's cached primary): its replication
/// ID, the offset applied, and the db its stream had selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub replid: String,
    pub offset: i64,
    pub db: usize,
}

/// What a replica keeps about its primary and the link to it.
#[derive(Debug, Default)]
pub struct ReplicaState {
    pub host: Option<String>,
    pub port: u16,
    pub state: LinkState,
    /// The link, plain TCP or TLS (`tls-replication`), read and written through the
    /// connection abstraction (src/connection.rs).
    link: Option<Conn>,
    /// Links dropped by a command handler (no event loop at hand): cron unregisters and
    /// closes them.
    closing: Vec<Conn>,
    /// Bytes read on the link and not yet consumed (handshake replies, the payload).
    buf: Vec<u8>,
    expect: std::collections::VecDeque<Expect>,
    /// The payload's announced length, or the EOF mark of a diskless primary.
    transfer_size: Option<usize>,
    eof_mark: Option<[u8; 40]>,
    /// The ID and offset given by +FULLRESYNC.
    psync_replid: String,
    psync_offset: i64,
    /// When the current handshake or transfer step began, and the last byte read (ms).
    step_start_ms: i64,
    last_io_ms: i64,
    /// The primary client: (slot, id).
    pub primary: Option<(usize, u64)>,
    pub cached: Option<Cached>,
    /// Unix seconds the link went down, 0 when it never was up.
    pub down_since: i64,
    /// Full syncs and partial resyncs accepted by our primaries.
    pub stat_full_syncs: u64,
    pub stat_partial_syncs: u64,
    /// A command of our primary is running: keys never expire for it (src/db.rs).
    pub applying: bool,
    /// REPLICAOF just set a primary: connect in before-sleep rather than at the next
    /// cron tick (upstream connects from the command).
    connect_now: bool,
}

/// Whether this server is a replica (REPLICAOF host port in force).
pub fn is_replica(srv: &Server) -> bool {
    srv.repl.replica.host.is_some()
}

/// Whether the link with the primary is up (for `replica-serve-stale-data`).
pub fn link_up(srv: &Server) -> bool {
    srv.repl.replica.state == LinkState::Connected
}

fn state_name(s: LinkState) -> &'static str {
    match s {
        LinkState::None => "none",
        LinkState::Connect => "connect",
        LinkState::Connecting => "connecting",
        LinkState::ReceivePing | LinkState::ReceiveHandshake | LinkState::ReceivePsync => {
            "handshake"
        }
        LinkState::Transfer => "sync",
        LinkState::Connected => "connected",
    }
}

fn primary_client(srv: &Server) -> Option<&Client> {
    let (slot, id) = srv.repl.replica.primary?;
    match srv.clients.get(slot) {
        Some(Some(c)) if c.id == id => Some(c),
        _ => None,
    }
}

/// When the primary client last sent anything (ms), while the link is up (the cluster
/// election's data age).
pub fn last_interaction_ms(srv: &Server) -> Option<i64> {
    primary_client(srv).map(|c| c.last_interaction_ms)
}

/// The offset read from the link (applied + buffered), and the offset applied.
fn offsets(srv: &Server) -> (i64, i64) {
    let applied = srv.repl.master_repl_offset;
    match primary_client(srv) {
        Some(c) => {
            let unapplied = c.query_buf.len().saturating_sub(c.repl_applied) as i64;
            (applied + unapplied, applied)
        }
        None => (applied, applied),
    }
}

/// The replica's fields of INFO replication (`role:slave` and the master_* fields).
pub fn info_fields(srv: &Server, s: &mut String) {
    use std::fmt::Write as _;
    let rs = &srv.repl.replica;
    let now_ms = srv.mstime;
    let last_io = match (rs.state, primary_client(srv)) {
        (LinkState::Connected, Some(c)) => (now_ms - c.last_interaction_ms) / 1000,
        _ => -1,
    };
    let (read_off, off) = offsets(srv);
    let _ = write!(
        s,
        "role:slave\r\nmaster_host:{}\r\nmaster_port:{}\r\nmaster_link_status:{}\r\n\
         master_last_io_seconds_ago:{}\r\nmaster_sync_in_progress:{}\r\n\
         slave_read_repl_offset:{}\r\nslave_repl_offset:{}\r\n\
         replicas_repl_buffer_size:0\r\nreplicas_repl_buffer_peak:0\r\n",
        rs.host.as_deref().unwrap_or(""),
        rs.port,
        if rs.state == LinkState::Connected {
            "up"
        } else {
            "down"
        },
        last_io,
        (rs.state == LinkState::Transfer) as i32,
        read_off,
        off
    );
    if rs.state == LinkState::Transfer {
        let read = rs.buf.len() as i64;
        let total = rs.transfer_size.map(|n| n as i64).unwrap_or(-1);
        let (left, perc) = if total > 0 {
            (total - read, read as f64 * 100.0 / total as f64)
        } else {
            (0, 0.0)
        };
        let _ = write!(
            s,
            "master_sync_total_bytes:{}\r\nmaster_sync_read_bytes:{}\r\n\
             master_sync_left_bytes:{}\r\nmaster_sync_perc:{:.2}\r\n\
             master_sync_last_io_seconds_ago:{}\r\n",
            total,
            read,
            left,
            perc,
            (now_ms - rs.last_io_ms) / 1000
        );
    }
    if rs.state != LinkState::Connected {
        let since = if rs.down_since > 0 {
            srv.unixtime - rs.down_since
        } else {
            -1
        };
        let _ = write!(s, "master_link_down_since_seconds:{}\r\n", since);
    }
    let _ = write!(
        s,
        "slave_priority:{}\r\nslave_read_only:{}\r\nreplica_announced:{}\r\n",
        srv.config.get("replica-priority").unwrap_or_default(),
        (srv.config.get("replica-read-only").as_deref() == Some("yes")) as i32,
        (srv.config.get("replica-announced").as_deref() != Some("no")) as i32,
    );
}

/// ROLE for a replica: `["slave", host, port, state, offset]`.
pub fn role_reply(srv: &Server, c: &mut Client) {
    let rs = &srv.repl.replica;
    c.reply.add_array_len(5);
    c.reply.add_bulk(b"slave");
    c.reply
        .add_bulk(rs.host.as_deref().unwrap_or("").as_bytes());
    c.reply.add_long(rs.port as i64);
    c.reply.add_bulk(state_name(rs.state).as_bytes());
    let off = if primary_client(srv).is_some() {
        srv.repl.master_repl_offset
    } else {
        -1
    };
    c.reply.add_long(off);
}

/// A one-line description of a client for the log, as upstream's `catClientInfoString`
/// with the name and user redacted.
fn client_desc(c: &Client) -> String {
    format!(
        "id={} addr={} laddr={} fd={} name=*redacted* user=*redacted* lib-name= lib-ver=",
        c.id, c.addr, c.laddr, c.fd
    )
}

/// REPLICAOF / SLAVEOF host port | NO ONE.
pub fn replicaof_command(srv: &mut Server, c: &mut Client) {
    if srv.config.cluster_enabled {
        c.reply
            .add_error("ERR REPLICAOF not allowed in cluster mode.");
        return;
    }
    if crate::util::eq_ic(&c.argv[1], "no") && crate::util::eq_ic(&c.argv[2], "one") {
        if is_replica(srv) {
            unset_primary(srv);
            info!(
                "PRIMARY MODE enabled (user request from '{}')",
                client_desc(c)
            );
        }
        c.reply.add_ok();
        return;
    }
    let port = match crate::util::parse_i64_strict(&c.argv[2]) {
        Some(p) if (0..=65535).contains(&p) => p as u16,
        _ => {
            c.reply.add_error("ERR Invalid master port");
            return;
        }
    };
    let host = String::from_utf8_lossy(&c.argv[1]).into_owned();
    if let Some(h) = &srv.repl.replica.host {
        if h.eq_ignore_ascii_case(&host) && srv.repl.replica.port == port {
            info!(
                "REPLICAOF would result into synchronization with the primary we are already \
                 connected with. No operation performed."
            );
            c.reply
                .add_status("OK Already connected to specified master");
            return;
        }
    }
    set_primary(srv, host, port);
    info!(
        "REPLICAOF {}:{} enabled (user request from '{}')",
        srv.repl.replica.host.as_deref().unwrap_or(""),
        port,
        client_desc(c)
    );
    c.reply.add_ok();
}

/// Upstream's `replicationSetPrimary`: follow `host:port`. The current primary (if any)
/// is dropped and cached, so the new one may continue its stream; a former primary
/// caches itself.
pub fn set_primary(srv: &mut Server, host: String, port: u16) {
    let was_primary = !is_replica(srv);
    let was_connected = srv.repl.replica.primary.is_some();
    drop_primary_client(srv, true);
    disconnect_blocked_clients(srv);
    cancel_handshake(srv);
    if was_primary {
        info!(
            "Before turning into a replica, using my own primary parameters to synthesize a \
             cached primary: I may be able to synchronize with the new primary with just a \
             partial transfer."
        );
        srv.repl.replica.cached = Some(Cached {
            replid: srv.repl.replid.clone(),
            offset: srv.repl.master_repl_offset,
            db: 0,
        });
    }
    srv.config.replicaof = Some((host.clone(), port));
    set_log_role(b'S');
    // The replica class of oom-score-adj-values (upstream's setOOMScoreAdj(-1)).
    crate::ops::apply_config(srv);
    let rs = &mut srv.repl.replica;
    rs.host = Some(host);
    rs.port = port;
    rs.state = LinkState::Connect;
    rs.connect_now = true;
    // The link was up until now: it is down from here (a replica that never had a link
    // shows -1, as upstream).
    if was_connected {
        rs.down_since = srv.unixtime;
    }
}

/// Upstream's `replicationUnsetPrimary`: REPLICAOF NO ONE. The history continues under
/// a new ID; the old one stays valid (replid2) up to our offset, so our own replicas and
/// the old primary can follow with a partial resync.
pub fn unset_primary(srv: &mut Server) {
    drop_primary_client(srv, false);
    cancel_handshake(srv);
    srv.repl.replica.cached = None;
    crate::replication::shift_replication_id(srv);
    // Our replicas must learn the new ID: they reconnect and continue (PSYNC2).
    crate::replication::primary::disconnect_replicas(srv);
    // The backlog lives on; its time to live counts from the promotion.
    srv.repl.primary.no_replicas_since = srv.unixtime;
    // The next command fed to our replicas selects its db again.
    srv.repl.stream_db = -1;
    srv.config.replicaof = None;
    set_log_role(b'M');
    crate::ops::apply_config(srv);
    let rs = &mut srv.repl.replica;
    rs.host = None;
    rs.port = 0;
    rs.state = LinkState::None;
    rs.down_since = 0;
    info!(
        "Setting secondary replication ID to {}, valid up to offset: {}. New replication ID \
         is {}",
        srv.repl.replid2, srv.repl.second_replid_offset, srv.repl.replid
    );
}

/// Upstream's `disconnectAllBlockedClients`: clients blocked on keys would wait for
/// writes that only the new primary can make; they get an error instead. In cluster mode
/// only the clients whose slot this node no longer serves are redirected (`MOVED`), the
/// others stay blocked (upstream's `clusterRedirectBlockedClientIfNeeded`).
fn disconnect_blocked_clients(srv: &mut Server) {
    if srv.cluster.is_some() {
        let slots: Vec<usize> = srv.clients.iter().map(|(slot, _)| slot).collect();
        crate::cluster::redirect_blocked_clients(srv, &slots);
        return;
    }
    let slots: Vec<usize> = srv
        .clients
        .iter()
        .filter_map(|(slot, c)| match c {
            Some(c) if c.has_flag(cflags::BLOCKED) => Some(slot),
            _ => None,
        })
        .collect();
    for slot in slots {
        if let Some(mut c) = crate::networking::take_client(srv, slot) {
            crate::blocked::unblock_client_on_error(
                srv,
                &mut c,
                "UNBLOCKED force unblock from blocking operation, instance state changed \
                 (master -> replica?)",
            );
            crate::networking::put_client(srv, c);
        }
    }
}

/// The role character of log lines: `S` on a replica, `M` on a primary.
fn set_log_role(r: u8) {
    crate::config::LOG_ROLE.store(r, std::sync::atomic::Ordering::Relaxed);
}

/// Frees the primary client asynchronously (a command handler has no event loop).
fn drop_primary_client(srv: &mut Server, cache: bool) {
    let Some((slot, id)) = srv.repl.replica.primary else {
        return;
    };
    if cache {
        cache_primary(srv);
    }
    srv.repl.replica.primary = None;
    if let Some(Some(c)) = srv.clients.get_mut(slot) {
        if c.id == id {
            c.flags |= cflags::CLOSE_ASAP;
        }
    } else if srv.current_client == Some(slot) {
        // The primary's own command (a replicated CLUSTER SETSLOT taking this shard's
        // last slot): it stops reading its stream once the command returns.
        srv.current_client_add_flags |= cflags::CLOSE_ASAP;
    }
    crate::networking::free_client_async(srv, slot, id);
}

/// Remembers the primary's ID, our applied offset and its stream's db.
fn cache_primary(srv: &mut Server) {
    let db = primary_client(srv).map(|c| c.db).unwrap_or(0);
    srv.repl.replica.cached = Some(Cached {
        replid: srv.repl.replid.clone(),
        offset: srv.repl.master_repl_offset,
        db,
    });
    info!("Caching the disconnected primary state.");
}

/// Drops a handshake or transfer in progress (the socket is closed by cron).
fn cancel_handshake(srv: &mut Server) {
    let rs = &mut srv.repl.replica;
    if let Some(l) = rs.link.take() {
        rs.closing.push(l);
    }
    reset_link_state(rs);
    if rs.state != LinkState::None {
        rs.state = LinkState::Connect;
    }
}

fn reset_link_state(rs: &mut ReplicaState) {
    rs.buf = Vec::new();
    rs.expect.clear();
    rs.transfer_size = None;
    rs.eof_mark = None;
}

/// Called by `free_client` for a client with the PRIMARY flag: the link is lost, the
/// primary is cached for a partial resync and cron reconnects.
pub fn primary_client_freed(srv: &mut Server, c: &Client) {
    let rs = &srv.repl.replica;
    if rs.primary != Some((c.slot, c.id)) {
        return;
    }
    info!("Connection with primary lost.");
    let db = c.db;
    srv.repl.replica.primary = None;
    srv.repl.replica.cached = Some(Cached {
        replid: srv.repl.replid.clone(),
        offset: srv.repl.master_repl_offset,
        db,
    });
    info!("Caching the disconnected primary state.");
    let rs = &mut srv.repl.replica;
    if rs.state == LinkState::Connected {
        rs.state = LinkState::Connect;
    }
    rs.down_since = srv.unixtime;
}

/// Applied-offset accounting for the primary client, after each command it ran
/// (upstream's `commandProcessed` for the primary): outside a transaction the bytes of
/// the commands just applied advance the offset and are proxied to our own replicas.
pub fn command_processed(srv: &mut Server, c: &mut Client) {
    if c.has_flag(cflags::MULTI) {
        return;
    }
    let end = c.qb_pos.min(c.query_buf.len());
    if end <= c.repl_applied {
        return;
    }
    let applied = end - c.repl_applied;
    let before = srv.repl.master_repl_offset;
    crate::replication::primary::feed_raw(srv, &c.query_buf[c.repl_applied..end]);
    srv.repl.master_repl_offset = before + applied as i64;
    c.repl_applied = end;
}

fn ack_bytes(offset: i64) -> Vec<u8> {
    let off = offset.to_string();
    format!(
        "*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n${}\r\n{}\r\n",
        off.len(),
        off
    )
    .into_bytes()
}

/// `REPLCONF GETACK`, sent by our primary: answers with `REPLCONF ACK <offset>` on the
/// link. Called by the REPLCONF handler (src/replication/primary.rs).
pub fn replconf_getack(srv: &mut Server, c: &mut Client) {
    if !c.has_flag(cflags::PRIMARY) {
        return;
    }
    // The primary client's replies are dropped; the ACK bypasses that.
    let b = ack_bytes(srv.repl.master_repl_offset);
    c.reply.buf.extend_from_slice(&b);
}

/// Queues `REPLCONF ACK <offset>` to the primary.
fn send_ack(srv: &mut Server) {
    let Some((slot, id)) = srv.repl.replica.primary else {
        return;
    };
    let b = ack_bytes(srv.repl.master_repl_offset);
    if let Some(Some(c)) = srv.clients.get_mut(slot) {
        if c.id != id {
            return;
        }
        c.reply.buf.extend_from_slice(&b);
        if !c.pending_write {
            c.pending_write = true;
            srv.clients_pending_write.push(slot);
        }
    }
}

fn repl_timeout_ms(srv: &Server) -> i64 {
    srv.config
        .get("repl-timeout")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(60)
        .max(1)
        * 1000
}

/// The replica's part of replicationCron.
pub fn cron(el: &mut EventLoop, srv: &mut Server) {
    for l in std::mem::take(&mut srv.repl.replica.closing) {
        el.delete_file_event(l.fd(), ae::READABLE | ae::WRITABLE);
        drop(l);
    }
    if !is_replica(srv) {
        return;
    }
    let now = srv.mstime;
    let timeout = repl_timeout_ms(srv);
    let st = srv.repl.replica.state;
    match st {
        LinkState::Connecting
        | LinkState::ReceivePing
        | LinkState::ReceiveHandshake
        | LinkState::ReceivePsync => {
            if now - srv.repl.replica.step_start_ms > timeout {
                warn!("Timeout connecting to the PRIMARY...");
                fail_link(el, srv);
            }
        }
        LinkState::Transfer => {
            if now - srv.repl.replica.last_io_ms > timeout {
                warn!(
                    "Timeout receiving bulk data from PRIMARY... If the problem persists try \
                     to set the 'repl-timeout' parameter in valkey.conf to a larger value."
                );
                fail_link(el, srv);
            }
        }
        LinkState::Connected => {
            let idle = primary_client(srv).map(|c| now - c.last_interaction_ms);
            if idle.is_some_and(|i| i > timeout) {
                warn!("PRIMARY timeout: no data nor PING received...");
                drop_primary_client(srv, true);
                let rs = &mut srv.repl.replica;
                rs.state = LinkState::Connect;
                rs.down_since = srv.unixtime;
            } else {
                send_ack(srv);
            }
        }
        LinkState::None => {}
        LinkState::Connect => {}
    }
    if srv.repl.replica.state == LinkState::Connect {
        connect_to_primary(el, srv);
    }
}

/// before-sleep: the connection REPLICAOF asked for, without waiting for cron.
pub fn before_sleep(el: &mut EventLoop, srv: &mut Server) {
    if !srv.repl.replica.connect_now {
        return;
    }
    srv.repl.replica.connect_now = false;
    for l in std::mem::take(&mut srv.repl.replica.closing) {
        el.delete_file_event(l.fd(), ae::READABLE | ae::WRITABLE);
        drop(l);
    }
    if is_replica(srv) && srv.repl.replica.state == LinkState::Connect {
        connect_to_primary(el, srv);
    }
}

/// Closes the link after a failed step; cron connects again.
fn fail_link(el: &mut EventLoop, srv: &mut Server) {
    let rs = &mut srv.repl.replica;
    if let Some(l) = rs.link.take() {
        el.delete_file_event(l.fd(), ae::READABLE | ae::WRITABLE);
        drop(l);
    }
    reset_link_state(rs);
    if rs.state != LinkState::None {
        rs.state = LinkState::Connect;
    }
}

/// Upstream's `connectWithPrimary`: a non-blocking connect; the writable event tells it
/// finished.
fn connect_to_primary(el: &mut EventLoop, srv: &mut Server) {
    let Some(host) = srv.repl.replica.host.clone() else {
        return;
    };
    let port = srv.repl.replica.port;
    info!("Connecting to PRIMARY {}:{}", host, port);
    use std::net::ToSocketAddrs;
    let addr = match (host.as_str(), port).to_socket_addrs() {
        Ok(mut a) => a.next(),
        Err(e) => {
            warn!("Unable to connect to PRIMARY: {}", e);
            return;
        }
    };
    let Some(addr) = addr else {
        warn!("Unable to connect to PRIMARY: no address for {}", host);
        return;
    };
    let stream = match mio::net::TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => {
            warn!("Unable to connect to PRIMARY: {}", e);
            return;
        }
    };
    let conn = if srv.config.get("tls-replication").as_deref() == Some("yes") {
        // The outgoing context (tls-client-cert-file/key-file, else the server's pair).
        let Some(cfg) = srv.tls.as_ref().and_then(|t| t.client.clone()) else {
            warn!("Unable to connect to PRIMARY: TLS is not configured for replication");
            return;
        };
        // The name only feeds SNI: the certificate's chain is verified, not its name
        // (src/tls.rs ChainOnlyVerifier), as upstream.
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .or_else(|_| rustls::pki_types::ServerName::try_from("localhost".to_string()));
        let tls = name
            .map_err(std::io::Error::other)
            .and_then(|n| crate::connection::TlsStream::connect(stream, cfg, n));
        match tls {
            Ok(t) => Conn::Tls(Box::new(t)),
            Err(e) => {
                warn!("Unable to connect to PRIMARY: {}", e);
                return;
            }
        }
    } else {
        Conn::Tcp(stream)
    };
    let fd = conn.fd();
    if let Err(e) = el.create_file_event(fd, ae::WRITABLE | ae::READABLE, link_handler, 0) {
        warn!("Unable to connect to PRIMARY: {}", e);
        return;
    }
    let rs = &mut srv.repl.replica;
    rs.link = Some(conn);
    reset_link_state(rs);
    rs.state = LinkState::Connecting;
    rs.step_start_ms = srv.mstime;
    rs.last_io_ms = srv.mstime;
    info!("PRIMARY <-> REPLICA sync started");
}

/// Writes a handshake command on the link (a few bytes on a fresh socket: the kernel
/// buffer takes them at once; TLS records the socket did not take yet go out with the
/// next write or writable edge).
fn send_cmd(srv: &mut Server, args: &[&[u8]]) -> bool {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    let Some(l) = srv.repl.replica.link.as_mut() else {
        return false;
    };
    let mut off = 0;
    while off < out.len() {
        match l.write(&out[off..]) {
            Ok(0) => return false,
            Ok(n) => off += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!("Failed to send a command to the PRIMARY: {}", e);
                return false;
            }
        }
    }
    true
}

/// The TCP socket under the link.
fn tcp_socket(conn: &Conn) -> Option<&mio::net::TcpStream> {
    match conn {
        Conn::Tcp(s) => Some(s),
        Conn::Tls(t) => Some(&t.sock),
        Conn::Unix(_) => None,
    }
}

/// Takes one `\r\n`- (or `\n`-) terminated line from the link buffer.
fn take_line(rs: &mut ReplicaState) -> Option<Vec<u8>> {
    let nl = rs.buf.iter().position(|&b| b == b'\n')?;
    let mut line: Vec<u8> = rs.buf.drain(..=nl).collect();
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Some(line)
}

/// The event handler of the link during the handshake and the transfer.
fn link_handler(el: &mut EventLoop, srv: &mut Server, fd: RawFd, _: usize, mask: u32) {
    let ours = srv.repl.replica.link.as_ref().is_some_and(|l| l.fd() == fd);
    if !ours {
        return;
    }
    srv.update_cached_time();
    if srv.repl.replica.state == LinkState::Connecting {
        if mask & ae::WRITABLE == 0 && mask & ae::READABLE == 0 {
            return;
        }
        let l = srv.repl.replica.link.as_ref().and_then(tcp_socket);
        let err = match l.map(|l| (l.take_error(), l.peer_addr())) {
            Some((Ok(None), Ok(_))) => None,
            Some((Ok(Some(e)), _)) | Some((Err(e), _)) | Some((_, Err(e))) => Some(e),
            None => return,
        };
        if let Some(e) = err {
            if e.kind() == ErrorKind::NotConnected {
                return; // Still connecting.
            }
            warn!("Error condition on socket for SYNC: {}", e);
            fail_link(el, srv);
            return;
        }
        // A TLS link finishes its handshake first (upstream's connTLSConnect calls the
        // connect handler only then); each edge advances it.
        let mut tls = false;
        if let Some(Conn::Tls(t)) = srv.repl.replica.link.as_mut() {
            tls = true;
            match t.handshake() {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    warn!("Failed to connect to PRIMARY: TLS handshake: {}", e);
                    fail_link(el, srv);
                    return;
                }
            }
        }
        if !tls {
            // A TLS link keeps the writable event: records the socket did not take go
            // out on the next edge.
            el.delete_file_event(fd, ae::WRITABLE);
        }
        info!("Non blocking connect for SYNC fired the event.");
        if !send_cmd(srv, &[b"PING"]) {
            fail_link(el, srv);
            return;
        }
        srv.repl.replica.state = LinkState::ReceivePing;
        srv.repl.replica.step_start_ms = srv.mstime;
        return;
    }
    if mask & ae::WRITABLE != 0 {
        if let Some(l) = srv.repl.replica.link.as_mut() {
            if let Err(e) = l.flush() {
                if e.kind() != ErrorKind::WouldBlock {
                    warn!("Failed to send a command to the PRIMARY: {}", e);
                    fail_link(el, srv);
                    return;
                }
            }
        }
    }
    if mask & ae::READABLE == 0 {
        return;
    }
    // Read all that is there (edge-triggered readiness): straight into the link buffer,
    // decrypted first on a TLS link.
    let mut eof = false;
    {
        let rs = &mut srv.repl.replica;
        let Some(l) = rs.link.as_mut() else { return };
        loop {
            rs.buf.reserve(16 * 1024);
            match l.read_into(fd, &mut rs.buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    rs.last_io_ms = srv.mstime;
                    srv.stats.net_repl_input_bytes += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("Error reading from the PRIMARY: {}", e);
                    eof = true;
                    break;
                }
            }
        }
    }
    if !process_link(el, srv) {
        fail_link(el, srv);
        return;
    }
    if eof && srv.repl.replica.link.is_some() {
        match srv.repl.replica.state {
            LinkState::Transfer => warn!("I/O error trying to sync with PRIMARY: connection lost"),
            _ => warn!("Primary closed the connection during the handshake"),
        }
        fail_link(el, srv);
    }
}

/// Runs the state machine over the buffered bytes. Returns false on a failure (the link
/// is then closed).
fn process_link(el: &mut EventLoop, srv: &mut Server) -> bool {
    loop {
        let state = srv.repl.replica.state;
        match state {
            LinkState::ReceivePing => {
                let Some(line) = take_line(&mut srv.repl.replica) else {
                    return srv.repl.replica.buf.len() <= MAX_LINE;
                };
                if line.first() == Some(&b'-')
                    && !line.starts_with(b"-NOAUTH")
                    && !line.starts_with(b"-NOPERM")
                    && !line.starts_with(b"-ERR operation not permitted")
                {
                    warn!(
                        "Error reply to PING from primary: '{}'",
                        String::from_utf8_lossy(&line)
                    );
                    return false;
                }
                info!("Primary replied to PING, replication can continue...");
                if !send_handshake(srv) {
                    return false;
                }
            }
            LinkState::ReceiveHandshake => {
                let Some(line) = take_line(&mut srv.repl.replica) else {
                    return srv.repl.replica.buf.len() <= MAX_LINE;
                };
                let Some(exp) = srv.repl.replica.expect.pop_front() else {
                    return false;
                };
                if line.first() == Some(&b'-') {
                    match exp {
                        Expect::Auth => {
                            warn!(
                                "Unable to AUTH to PRIMARY: {}",
                                String::from_utf8_lossy(&line)
                            );
                            return false;
                        }
                        Expect::Replconf(what) => info!(
                            "(Non critical) Primary does not understand REPLCONF {}: {}",
                            what,
                            String::from_utf8_lossy(&line)
                        ),
                    }
                }
                if srv.repl.replica.expect.is_empty() && !send_psync(srv) {
                    return false;
                }
            }
            LinkState::ReceivePsync => {
                let Some(line) = take_line(&mut srv.repl.replica) else {
                    return srv.repl.replica.buf.len() <= MAX_LINE;
                };
                if line.is_empty() {
                    continue; // A keep-alive newline while the primary prepares.
                }
                if !psync_reply(el, srv, &line) {
                    return false;
                }
            }
            LinkState::Transfer => return transfer(el, srv),
            _ => return true,
        }
    }
}

fn send_handshake(srv: &mut Server) -> bool {
    let user = srv.config.get("primaryuser").unwrap_or_default();
    let pass = srv.config.masterauth.clone();
    let mut expect = std::collections::VecDeque::new();
    if let Some(pass) = pass {
        let ok = if user.is_empty() {
            send_cmd(srv, &[b"AUTH", &pass])
        } else {
            send_cmd(srv, &[b"AUTH", user.as_bytes(), &pass])
        };
        if !ok {
            return false;
        }
        expect.push_back(Expect::Auth);
    }
    let port = srv
        .config
        .get("replica-announce-port")
        .and_then(|p| p.parse::<u32>().ok())
        .filter(|&p| p != 0)
        .unwrap_or_else(|| {
            // Over TLS the replica is reachable on its TLS port, as upstream.
            let tls_port = crate::tls::tls_port(&srv.config) as u32;
            if tls_port != 0 && srv.config.get("tls-replication").as_deref() == Some("yes") {
                tls_port
            } else {
                srv.config.port as u32
            }
        })
        .to_string();
    if !send_cmd(srv, &[b"REPLCONF", b"listening-port", port.as_bytes()]) {
        return false;
    }
    expect.push_back(Expect::Replconf("listening-port"));
    let ip = srv.config.get("replica-announce-ip").unwrap_or_default();
    if !ip.is_empty() {
        if !send_cmd(srv, &[b"REPLCONF", b"ip-address", ip.as_bytes()]) {
            return false;
        }
        expect.push_back(Expect::Replconf("ip-address"));
    }
    if !send_cmd(srv, &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"]) {
        return false;
    }
    expect.push_back(Expect::Replconf("capa"));
    if !send_cmd(
        srv,
        &[b"REPLCONF", b"version", ANNOUNCED_VERSION.as_bytes()],
    ) {
        return false;
    }
    expect.push_back(Expect::Replconf("version"));
    // A cluster replica tells its primary its node name (upstream sends it with the
    // other REPLCONFs, cluster mode only).
    let myid = srv
        .cluster
        .as_deref()
        .map(|st| st.nodes.myself().name.clone());
    if let Some(id) = myid {
        if !send_cmd(srv, &[b"REPLCONF", b"set-cluster-node-id", id.as_bytes()]) {
            return false;
        }
        expect.push_back(Expect::Replconf("set-cluster-node-id"));
    }
    let rs = &mut srv.repl.replica;
    rs.expect = expect;
    rs.state = LinkState::ReceiveHandshake;
    rs.step_start_ms = srv.mstime;
    true
}

fn send_psync(srv: &mut Server) -> bool {
    let (id, off) = match &srv.repl.replica.cached {
        Some(c) => {
            let off = (c.offset + 1).to_string();
            info!(
                "Trying a partial resynchronization (request {}:{}).",
                c.replid, off
            );
            (c.replid.clone(), off)
        }
        None => {
            info!("Partial resynchronization not possible (no cached primary)");
            ("?".to_string(), "-1".to_string())
        }
    };
    if !send_cmd(srv, &[b"PSYNC", id.as_bytes(), off.as_bytes()]) {
        return false;
    }
    srv.repl.replica.state = LinkState::ReceivePsync;
    srv.repl.replica.step_start_ms = srv.mstime;
    true
}

fn psync_reply(el: &mut EventLoop, srv: &mut Server, line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line).into_owned();
    if let Some(rest) = text.strip_prefix("+FULLRESYNC") {
        let mut it = rest.split_ascii_whitespace();
        let id = it.next().filter(|i| i.len() == 40);
        let off = it.next().and_then(|o| o.parse::<i64>().ok());
        let (Some(id), Some(off)) = (id, off) else {
            warn!("Primary replied with wrong +FULLRESYNC syntax.");
            return false;
        };
        info!("Full resync from primary: {}:{}", id, off);
        let rs = &mut srv.repl.replica;
        // The cached primary can no longer be continued (as upstream, even if the
        // transfer fails: the next attempt asks for a full sync).
        if rs.cached.take().is_some() {
            info!("Discarding previously cached primary state.");
        }
        rs.psync_replid = id.to_string();
        rs.psync_offset = off;
        rs.state = LinkState::Transfer;
        rs.transfer_size = None;
        rs.eof_mark = None;
        rs.step_start_ms = srv.mstime;
        rs.last_io_ms = srv.mstime;
        rs.stat_full_syncs += 1;
        return true;
    }
    if let Some(rest) = text.strip_prefix("+CONTINUE") {
        let Some(cached) = srv.repl.replica.cached.clone() else {
            warn!("Primary replied +CONTINUE but there is no cached primary");
            return false;
        };
        info!("Successful partial resynchronization with primary.");
        let new_id = rest.trim();
        srv.repl.replid = cached.replid.clone();
        srv.repl.master_repl_offset = cached.offset;
        if new_id.len() == 40 && new_id != cached.replid {
            // The primary changed history (a failover): the old ID stays valid up to
            // here, as PSYNC2 wants.
            srv.repl.replid2 = cached.replid.clone();
            srv.repl.second_replid_offset = cached.offset + 1;
            srv.repl.replid = new_id.to_string();
            info!("Primary replication ID changed to {}", new_id);
            // Our sub-replicas must learn the new ID: they reconnect and continue.
            crate::replication::primary::disconnect_replicas(srv);
        }
        srv.repl.replica.cached = None;
        srv.repl.replica.stat_partial_syncs += 1;
        info!("PRIMARY <-> REPLICA sync: Primary accepted a Partial Resynchronization.");
        let rest = std::mem::take(&mut srv.repl.replica.buf);
        if !create_primary_client(el, srv, rest, cached.db) {
            return false;
        }
        // A replica restarted from its RDB has no backlog yet.
        crate::replication::primary::ensure_backlog(srv);
        run_buffered_stream(el, srv);
        return true;
    }
    if text.starts_with("-NOMASTERLINK") || text.starts_with("-LOADING") {
        info!(
            "Primary is currently unable to PSYNC but should be in the future: {}",
            text
        );
        return false;
    }
    warn!("Unexpected reply to PSYNC from primary: {}", text);
    false
}

/// Receives the payload of a full sync; loads it when complete.
fn transfer(el: &mut EventLoop, srv: &mut Server) -> bool {
    let rs = &mut srv.repl.replica;
    if rs.transfer_size.is_none() && rs.eof_mark.is_none() {
        // Keep-alive newlines may precede the header.
        let skip = rs.buf.iter().take_while(|&&b| b == b'\n').count();
        rs.buf.drain(..skip);
        let Some(line) = take_line(rs) else {
            return rs.buf.len() <= MAX_LINE;
        };
        if line.first() == Some(&b'-') {
            warn!(
                "PRIMARY aborted replication with an error: {}",
                String::from_utf8_lossy(&line)
            );
            return false;
        }
        if line.first() != Some(&b'$') {
            warn!(
                "Bad protocol from PRIMARY, the first byte is not '$' (we received '{}'), are \
                 you sure the host and port are right?",
                String::from_utf8_lossy(&line)
            );
            return false;
        }
        if line.len() == 5 + 40 && line.starts_with(b"$EOF:") {
            let mut mark = [0u8; 40];
            mark.copy_from_slice(&line[5..]);
            rs.eof_mark = Some(mark);
            info!(
                "PRIMARY <-> REPLICA sync: receiving streamed RDB from primary with EOF to memory"
            );
        } else {
            match crate::util::parse_i64_strict(&line[1..]) {
                Some(n) if n >= 0 => {
                    rs.transfer_size = Some(n as usize);
                    info!(
                        "PRIMARY <-> REPLICA sync: receiving {} bytes from primary to memory",
                        n
                    );
                }
                _ => {
                    warn!("Bad payload length from PRIMARY");
                    return false;
                }
            }
        }
    }
    let (payload, rest) = if let Some(mark) = rs.eof_mark {
        if rs.buf.len() < 40 || rs.buf[rs.buf.len() - 40..] != mark {
            return true;
        }
        let mut p = std::mem::take(&mut rs.buf);
        p.truncate(p.len() - 40);
        (p, Vec::new())
    } else {
        let n = rs.transfer_size.unwrap_or(0);
        if rs.buf.len() < n {
            return true;
        }
        let mut p = std::mem::take(&mut rs.buf);
        let rest = p.split_off(n);
        (p, rest)
    };
    info!("PRIMARY <-> REPLICA sync: Done reading RDB payload");
    // A new dataset: our sub-replicas cannot continue their history from us (upstream's
    // replicationAttachToNewPrimary).
    crate::replication::primary::disconnect_replicas(srv);
    crate::replication::primary::free_backlog(srv);
    srv.rdb.loaded_repl = None;
    // The link is not read while the payload loads (other clients are served meanwhile,
    // src/busy.rs): what the primary sends next waits in the socket until the primary
    // client takes the descriptor over.
    if let Some(fd) = srv.repl.replica.link.as_ref().map(|l| l.fd()) {
        el.delete_file_event(fd, ae::READABLE);
    }
    if !crate::busy::with_loop(el, srv, |srv| load_payload(srv, &payload)) {
        return false;
    }
    // The stream continues in the database the snapshot recorded (a chained primary
    // proxies its own primary's stream, which need not start with SELECT).
    let db = srv
        .rdb
        .loaded_repl
        .take()
        .map(|(db, _, _)| db.max(0) as usize)
        .unwrap_or(0);
    srv.repl.replid = std::mem::take(&mut srv.repl.replica.psync_replid);
    srv.repl.master_repl_offset = srv.repl.replica.psync_offset;
    crate::replication::clear_replication_id2(srv);
    srv.repl.replica.cached = None;
    if !create_primary_client(el, srv, rest, db) {
        return false;
    }
    crate::replication::primary::ensure_backlog(srv);
    info!("PRIMARY <-> REPLICA sync: Finished with success");
    // The first ACK at once: a diskless primary waits for it to put us online.
    send_ack(srv);
    run_buffered_stream(el, srv);
    true
}

/// Runs the stream that arrived together with the PSYNC reply or the payload (the
/// primary client starts with it in its query buffer): no readable event would announce
/// those bytes, and a primary that goes quiet would leave them unapplied.
pub fn run_buffered_stream(el: &mut EventLoop, srv: &mut Server) {
    let Some((slot, id)) = srv.repl.replica.primary else {
        return;
    };
    let Some(mut c) = crate::networking::take_client(srv, slot) else {
        return;
    };
    if c.id != id || c.query_buf.is_empty() {
        crate::networking::put_client(srv, c);
        return;
    }
    c.last_interaction_ms = srv.mstime;
    match crate::busy::with_loop(el, srv, |srv| crate::networking::run_client_input(srv, c)) {
        crate::networking::Input::Keep(mut c) => {
            if c.has_pending_replies() && !c.pending_write {
                c.pending_write = true;
                srv.clients_pending_write.push(c.slot);
            }
            crate::networking::put_client(srv, c);
        }
        crate::networking::Input::Close(c) => crate::networking::free_client(el, srv, c),
        crate::networking::Input::Gone => {}
    }
}

/// Loads a full sync's RDB into a fresh set of databases, swapped in only on success.
/// With `repl-diskless-load disabled` the payload is also saved as the dump file first
/// (temp file, then renamed), as upstream does.
fn load_payload(srv: &mut Server, payload: &[u8]) -> bool {
    let mode = srv
        .config
        .get("repl-diskless-load")
        .unwrap_or_else(|| "disabled".into());
    if mode == "disabled" {
        let tmp = format!("temp-{}.{}.rdb", srv.unixtime, std::process::id());
        // Encrypted at rest like any snapshot when a key is set (src/rdb/crypt.rs).
        let res = crate::rdb::crypt::write_snapshot_file(&tmp, &srv.config.dbfilename, payload)
            .and_then(|_| std::fs::rename(&tmp, &srv.config.dbfilename));
        if let Err(e) = res {
            warn!(
                "Failed trying to save the PRIMARY synchronization DB on disk: {}",
                e
            );
            let _ = std::fs::remove_file(&tmp);
            return false;
        }
    }
    info!("PRIMARY <-> REPLICA sync: Loading DB in memory");
    let fresh: Vec<crate::db::Db> = (0..srv.dbs.len()).map(crate::db::Db::new).collect();
    let old = std::mem::replace(&mut srv.dbs, fresh);
    // The primary's function libraries replace ours, as its keys do.
    let old_functions = srv.scripting.take_functions();
    match crate::rdb::load_replication_payload(srv, payload) {
        Ok(()) => {
            drop(old_functions);
            srv.touch_all_watched_keys_in_db(None);
            // The old dataset goes on the lazy free thread with `replica-lazy-flush`.
            let lazy = srv.config.get("replica-lazy-flush").as_deref() == Some("yes");
            for mut d in old {
                crate::lazyfree::free_db(std::mem::take(&mut d.kv), lazy);
            }
            true
        }
        Err(e) => {
            srv.dbs = old;
            srv.scripting.restore_functions(old_functions);
            warn!(
                "Failed trying to load the PRIMARY synchronization DB from {}: {}",
                if mode == "disabled" { "disk" } else { "socket" },
                e
            );
            false
        }
    }
}

/// Turns the link into the primary client (upstream's `replicationCreatePrimaryClient`):
/// authenticated, exempt from ACLs, replies dropped except REPLCONF ACK. `rest` is what
/// the primary already sent of its stream.
fn create_primary_client(el: &mut EventLoop, srv: &mut Server, rest: Vec<u8>, db: usize) -> bool {
    let Some(conn) = srv.repl.replica.link.take() else {
        return false;
    };
    let fd = conn.fd();
    let Some(stream) = tcp_socket(&conn) else {
        return false;
    };
    let laddr = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let addr = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let id = srv.next_client_id;
    srv.next_client_id += 1;
    let entry = srv.clients.vacant_entry();
    let slot = entry.key();
    let mut c = Client::new(id, slot, conn, addr, laddr, srv.mstime);
    c.flags |= cflags::PRIMARY;
    c.authenticated = true;
    c.acl_all = true;
    c.user = "(superuser)".into();
    c.reply.silenced = true;
    c.db = db.min(srv.dbs.len().saturating_sub(1));
    let pending = !rest.is_empty();
    c.query_buf = rest;
    entry.insert(Some(Box::new(c)));
    el.delete_file_event(fd, ae::WRITABLE);
    if let Err(e) = el.create_file_event(
        fd,
        ae::READABLE,
        crate::networking::read_query_from_client,
        slot,
    ) {
        warn!("Error creating the primary client: {}", e);
        srv.clients.remove(slot);
        el.delete_file_event(fd, ae::READABLE);
        return false;
    }
    if pending {
        el.set_pending(fd, ae::READABLE);
    }
    let rs = &mut srv.repl.replica;
    reset_link_state(rs);
    rs.primary = Some((slot, id));
    rs.state = LinkState::Connected;
    rs.down_since = 0;
    info!("PRIMARY <-> REPLICA sync: primary link established");
    true
}

/// What an RDB saved now records about replication (repl-stream-db, repl-id,
/// repl-offset), for a replica with a primary or a cached one (upstream's
/// `rdbPopulateSaveInfo`).
pub fn save_info(srv: &Server) -> Option<(i64, String, i64)> {
    if !is_replica(srv) {
        return None;
    }
    if let Some(c) = primary_client(srv) {
        return Some((
            c.db as i64,
            srv.repl.replid.clone(),
            srv.repl.master_repl_offset,
        ));
    }
    srv.repl
        .replica
        .cached
        .as_ref()
        .map(|c| (c.db as i64, c.replid.clone(), c.offset))
}

/// At start-up: the `replicaof` directive makes us a replica; the replication ID and
/// offset an RDB recorded become the cached primary, so the first PSYNC may continue
/// the stream.
pub fn startup(srv: &mut Server) {
    let Some((host, port)) = srv.config.replicaof.clone() else {
        return;
    };
    set_log_role(b'S');
    let rs = &mut srv.repl.replica;
    rs.host = Some(host);
    rs.port = port;
    rs.state = LinkState::Connect;
    if let Some((db, id, off)) = srv.rdb.loaded_repl.take() {
        if id.len() == 40 && off >= 0 {
            srv.repl.replid = id.clone();
            srv.repl.master_repl_offset = off;
            srv.repl.replica.cached = Some(Cached {
                replid: id,
                offset: off,
                db: db.max(0) as usize,
            });
            info!("Using the replication ID and offset of the RDB to try a partial resync");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_encoding() {
        assert_eq!(
            ack_bytes(1234),
            b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$4\r\n1234\r\n".to_vec()
        );
    }

    #[test]
    fn lines() {
        let mut rs = ReplicaState {
            buf: b"+PONG\r\n\n+OK".to_vec(),
            ..Default::default()
        };
        assert_eq!(take_line(&mut rs).unwrap(), b"+PONG");
        assert_eq!(take_line(&mut rs).unwrap(), b"");
        assert!(take_line(&mut rs).is_none());
    }
}
