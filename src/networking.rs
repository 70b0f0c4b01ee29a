//! Sockets and the RESP request parser, as upstream's `networking.c` and `anet.c`.
//!
//! - Listeners accept until `WouldBlock` (at most [`MAX_ACCEPTS_PER_CALL`] per event).
//! - A readable client is read in [`PROTO_IOBUF_LEN`] chunks; every complete command in the
//!   query buffer is parsed and run before the next read, so a pipeline runs in one turn.
//! - Replies accumulate in the client's buffer and leave in before-sleep
//!   ([`handle_clients_with_pending_writes`]); WRITABLE interest is installed only while a
//!   write could not finish.
//!
//! The parser is hostile-input safe: counts and lengths are validated before anything is
//! sized by them, buffers grow only with bytes actually received, and unauthenticated
//! clients get the tighter limits upstream applies (CVE-2021-32675).

use std::io::{self, ErrorKind};
use std::os::unix::io::{AsRawFd, RawFd};

use log::{debug, warn};

use crate::client::{flags as cflags, Client, Conn, ReqType};
use crate::config::ObufLimit;
use crate::server::{EventLoop, Server};

/// Read chunk size, as `PROTO_IOBUF_LEN`.
pub const PROTO_IOBUF_LEN: usize = 16 * 1024;
/// Longest inline request or header line, as `PROTO_INLINE_MAX_SIZE`.
pub const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;
/// Accepts per readable event on a listener. Upstream's `MAX_ACCEPTS_PER_CALL` is 1000;
/// a connection flood then holds the loop for 1000 accepts (each a handful of syscalls)
/// before other clients are served: measured at 50-160 ms on a loaded 2-core machine
/// with 20,000 connections arriving. 100 per turn keeps the accept rate (the listener
/// stays pending and is served again next turn) while bounding that latency.
pub const MAX_ACCEPTS_PER_CALL: usize = 100;
/// Reads per readable event before yielding to other clients.
pub const MAX_READS_PER_EVENT: usize = 16;
/// Bytes written per client per event before yielding, as `NET_MAX_WRITES_PER_EVENT`.
pub const NET_MAX_WRITES_PER_EVENT: usize = 64 * 1024;
/// Before authentication, at most this many arguments per command.
pub const UNAUTH_MULTIBULK_MAX: i64 = 10;
/// Before authentication, at most this many bytes per argument.
pub const UNAUTH_BULK_MAX: i64 = 16384;
/// An unauthenticated client whose pending output exceeds this is disconnected
/// (CVE-2025-21605: a peer that never reads must not grow server memory).
pub const UNAUTH_OUTPUT_MAX: usize = 1024;
/// Output that fits in this many bytes never counts against `client-output-buffer-limit`:
/// upstream keeps it in the client's static reply buffer (`PROTO_REPLY_CHUNK_BYTES`), and
/// `closeClientOnOutputBufferLimitReached` ignores a client whose reply list is empty.
pub const PROTO_REPLY_CHUNK_BYTES: usize = 16 * 1024;
/// Before authentication the query buffer (plus queued MULTI arguments) may hold at most
/// this many bytes, whatever `client-query-buffer-limit` says (as upstream).
pub const UNAUTH_QUERY_BUF_MAX: usize = 1024 * 1024;
/// A drained reply buffer keeps up to this capacity; clients_cron trims the excess of an
/// idle client (a client sending pipelined batches with larger replies would otherwise
/// regrow its buffer, copying it, on every batch).
const REPLY_BUF_KEEP_BYTES: usize = 64 * 1024;
/// A drained reply buffer larger than this is trimmed at once.
const REPLY_BUF_TRIM_NOW_BYTES: usize = 1024 * 1024;

/// A listening socket.
pub enum Listener {
    Tcp(mio::net::TcpListener),
    Unix(mio::net::UnixListener, String),
    /// A `tls-port` listener: accepted sockets start a TLS handshake.
    Tls(mio::net::TcpListener),
}

impl Listener {
    pub fn fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l, _) => l.as_raw_fd(),
            Listener::Tls(l) => l.as_raw_fd(),
        }
    }
}

/// Binds every configured address; `-` before an address makes a failure to bind it
/// non-fatal, as upstream.
pub fn listen(srv: &mut Server) -> Result<(), String> {
    if srv.config.port != 0 {
        let port = srv.config.port;
        for l in bind_all(srv, port, "tcp")? {
            srv.listeners.push(Listener::Tcp(l));
        }
    }
    if crate::tls::tls_wanted(&srv.config) {
        // As upstream: TLS is configured at startup whenever tls-port, tls-replication or
        // tls-cluster asks for it, and a failure is fatal.
        let settings = crate::tls::TlsSettings::from_config(&srv.config);
        match crate::tls::build(&settings) {
            Ok(ctx) => srv.tls = Some(ctx),
            Err(e) => {
                warn!("{}", e);
                return Err("Failed to configure TLS. Check logs for more info.".into());
            }
        }
    }
    let tls_port = crate::tls::tls_port(&srv.config);
    if tls_port != 0 {
        for l in bind_all(srv, tls_port, "tls")? {
            srv.listeners.push(Listener::Tls(l));
        }
    }
    if let Some(path) = srv.config.unixsocket.clone() {
        let _ = std::fs::remove_file(&path);
        let l = mio::net::UnixListener::bind(&path)
            .map_err(|e| format!("Failed opening Unix socket: {}", e))?;
        let perm = srv.config.unixsocketperm;
        if perm != 0 {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(perm));
        }
        srv.listeners.push(Listener::Unix(l, path));
    }
    if srv.listeners.is_empty() {
        return Err("Configured to not listen anywhere, exiting.".into());
    }
    Ok(())
}

/// Binds `port` on every `bind` address; `-` before an address makes a failure to bind
/// it non-fatal, as upstream.
fn bind_all(srv: &Server, port: u16, kind: &str) -> Result<Vec<mio::net::TcpListener>, String> {
    let mut out = Vec::new();
    for b in &srv.config.bind {
        let (optional, addr) = match b.strip_prefix('-') {
            Some(a) => (true, a),
            None => (false, b.as_str()),
        };
        let addr = if addr == "*" { "0.0.0.0" } else { addr };
        let sockaddr = if addr.contains(':') {
            format!("[{}]:{}", addr, port)
        } else {
            format!("{}:{}", addr, port)
        };
        match bind_tcp(&sockaddr, srv.config.tcp_backlog) {
            Ok(l) => out.push(l),
            Err(e) => {
                if optional {
                    warn!(
                        "Failed listening on port {} ({}), continuing: {}",
                        port, kind, e
                    );
                } else {
                    return Err(format!(
                        "Failed listening on port {} ({}), aborting: {}",
                        port, kind, e
                    ));
                }
            }
        }
    }
    Ok(out)
}

fn bind_tcp(addr: &str, backlog: i32) -> io::Result<mio::net::TcpListener> {
    use nix::sys::socket::{
        bind, listen as nlisten, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag,
        SockType, SockaddrStorage,
    };
    use std::net::ToSocketAddrs;
    use std::os::fd::{FromRawFd, IntoRawFd};
    let sa = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "bad address"))?;
    let family = if sa.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(io::Error::from)?;
    if sa.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(io::Error::from)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(sa)).map_err(io::Error::from)?;
    nlisten(
        &fd,
        Backlog::new(backlog.max(1)).unwrap_or(Backlog::MAXCONN),
    )
    .map_err(io::Error::from)?;
    let std_l = unsafe { std::net::TcpListener::from_raw_fd(fd.into_raw_fd()) };
    Ok(mio::net::TcpListener::from_std(std_l))
}

/// CONFIG SET tls-port: configures TLS if it was not (upstream's applyTLSPort), then
/// binds the new port now so a failure is reported to the caller; the listeners are
/// swapped at before-sleep ([`swap_tls_listeners`]). Port 0 closes the TLS listeners.
pub fn change_tls_port(
    srv: &mut Server,
    new_cfg: &crate::config::Config,
) -> Result<(), &'static str> {
    let port = crate::tls::tls_port(new_cfg);
    if port != 0 && srv.tls.is_none() {
        match crate::tls::build(&crate::tls::TlsSettings::from_config(new_cfg)) {
            Ok(ctx) => srv.tls = Some(ctx),
            Err(e) => {
                warn!("{}", e);
                return Err("Unable to update TLS configuration. Check server logs.");
            }
        }
    }
    let fresh = if port == 0 {
        Vec::new()
    } else {
        match bind_all(srv, port, "tls") {
            Ok(v) if !v.is_empty() => v,
            Ok(_) => return Err("Unable to listen on this port. Check server logs."),
            Err(e) => {
                warn!("{}", e);
                return Err("Unable to listen on this port. Check server logs.");
            }
        }
    };
    srv.pending_tls_listeners = Some(fresh);
    Ok(())
}

/// before-sleep: replaces the TLS listeners with those CONFIG SET bound. Every listener
/// is re-registered, since a listener's index is its event's client data.
pub fn swap_tls_listeners(el: &mut EventLoop, srv: &mut Server) {
    let Some(fresh) = srv.pending_tls_listeners.take() else {
        return;
    };
    for l in &srv.listeners {
        el.delete_file_event(l.fd(), ae::READABLE);
    }
    srv.listeners.retain(|l| !matches!(l, Listener::Tls(_)));
    srv.listeners.extend(fresh.into_iter().map(Listener::Tls));
    if let Err(e) = install_listeners(el, srv) {
        warn!("Registering listeners: {}", e);
    }
}

/// Registers the listeners with the event loop.
pub fn install_listeners(el: &mut EventLoop, srv: &mut Server) -> io::Result<()> {
    for (i, l) in srv.listeners.iter().enumerate() {
        el.create_file_event(l.fd(), ae::READABLE, accept_handler, i)?;
    }
    Ok(())
}

/// Accepts new connections on listener `idx`.
pub fn accept_handler(el: &mut EventLoop, srv: &mut Server, _fd: RawFd, idx: usize, _: u32) {
    // Handshakes cost CPU: as upstream, TLS accepts are limited per event loop turn by
    // max-new-tls-connections-per-cycle.
    let max = match srv.listeners[idx] {
        Listener::Tls(_) => crate::tls::max_new_conns_per_cycle(&srv.config),
        _ => MAX_ACCEPTS_PER_CALL,
    };
    for _ in 0..max {
        let accepted = match &srv.listeners[idx] {
            Listener::Tls(l) => match l.accept() {
                Ok((s, a)) => {
                    let laddr = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
                    let Some(ctx) = &srv.tls else {
                        continue;
                    };
                    match crate::connection::TlsStream::accept(s, ctx.server.clone()) {
                        Ok(t) => Ok((Conn::Tls(Box::new(t)), a.to_string(), laddr)),
                        Err(e) => {
                            warn!("Error creating TLS connection: {}", e);
                            continue;
                        }
                    }
                }
                Err(e) => Err(e),
            },
            Listener::Tcp(l) => l.accept().map(|(s, a)| {
                let laddr = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
                (Conn::Tcp(s), a.to_string(), laddr)
            }),
            Listener::Unix(l, path) => {
                let path = path.clone();
                l.accept()
                    .map(|(s, _)| (Conn::Unix(s), format!("{}:0", path), path))
            }
        };
        match accepted {
            Ok((conn, addr, laddr)) => accept_common(el, srv, conn, addr, laddr),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                // EMFILE/ENFILE and friends: stop for this turn instead of spinning on the
                // same error (CVE-2025-48367); cron retries the accept.
                warn!("Accepting client connection: {}", e);
                srv.accept_retry = true;
                return;
            }
        }
    }
    // More may be waiting: come back next turn without waiting for a new edge.
    el.set_pending(srv.listeners[idx].fd(), ae::READABLE);
}

/// Upstream's reply to a non-loopback connection refused by protected mode.
pub const PROTECTED_MODE_ERR: &[u8] = b"-DENIED Running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers, you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting from the same host the server is running, however MAKE SURE it's not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Whether a peer address (`ip:port`, `[ip6]:port`) is a loopback address.
pub fn is_loopback_addr(addr: &str) -> bool {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(std::net::SocketAddr::V4(a)) => a.ip().is_loopback(),
        Ok(std::net::SocketAddr::V6(a)) => {
            a.ip().is_loopback() || a.ip().to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// Upstream's protected-mode decision for a new TCP connection: refused when protected
/// mode is on, the default user has no password (nopass) and the peer is not on the
/// loopback interface. Whether `bind` was configured does not matter (as in Valkey 7+).
/// Unix socket connections are always local and never reach this check.
pub fn protected_mode_denies(protected_mode: bool, default_nopass: bool, peer: &str) -> bool {
    protected_mode && default_nopass && !is_loopback_addr(peer)
}

fn accept_common(
    el: &mut EventLoop,
    srv: &mut Server,
    mut conn: Conn,
    addr: String,
    laddr: String,
) {
    let fd = conn.fd();
    if srv.clients.len() >= srv.config.maxclients || fd as usize >= el.setsize() {
        // Best effort: the socket is non-blocking and the error short.
        let _ = conn.write(b"-ERR max number of clients reached\r\n");
        srv.stats.rejected_conn += 1;
        return;
    }
    if let Conn::Tcp(_) | Conn::Tls(_) = &conn {
        let default_nopass = srv.acl.acl.get_user(b"default").is_some_and(|u| u.nopass());
        if protected_mode_denies(srv.config.protected_mode, default_nopass, &addr) {
            let _ = conn.write(PROTECTED_MODE_ERR);
            srv.stats.rejected_conn += 1;
            return;
        }
    }
    let tcp = match &conn {
        Conn::Tcp(s) => Some(s),
        Conn::Tls(t) => Some(&t.sock),
        Conn::Unix(_) => None,
    };
    if let Some(s) = tcp {
        let _ = s.set_nodelay(true);
        if srv.config.tcp_keepalive > 0 {
            let _ = set_keepalive(s.as_raw_fd(), srv.config.tcp_keepalive);
        }
    }
    let id = srv.next_client_id;
    srv.next_client_id += 1;
    let entry = srv.clients.vacant_entry();
    let slot = entry.key();
    let mut c = Client::new(id, slot, conn, addr, laddr, srv.mstime);
    // As upstream's clientSetDefaultAuth: a client that connects while the default user
    // needs no password stays authenticated if `requirepass` is set later.
    c.authenticated = srv.acl.default_open;
    entry.insert(Some(Box::new(c)));
    if let Err(e) = el.create_file_event(fd, ae::READABLE, read_query_from_client, slot) {
        warn!("Error registering fd event for the new client: {}", e);
        srv.clients.remove(slot);
        return;
    }
    srv.stats.numconnections += 1;
    debug!(
        "Accepted {}",
        srv.clients[slot]
            .as_ref()
            .map(|c| c.addr.as_str())
            .unwrap_or("")
    );
}

pub(crate) fn set_keepalive(fd: RawFd, interval: u32) -> nix::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    use std::os::fd::BorrowedFd;
    let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
    setsockopt(&bfd, sockopt::KeepAlive, &true)?;
    setsockopt(&bfd, sockopt::TcpKeepIdle, &interval)?;
    setsockopt(&bfd, sockopt::TcpKeepInterval, &(interval / 3).max(1))?;
    setsockopt(&bfd, sockopt::TcpKeepCount, &3)?;
    Ok(())
}

/// A TLS handshake just completed: with `tls-auth-clients-user`, the client
/// certificate's CN (or first SAN URI naming a user) authenticates the client as that
/// enabled ACL user, without AUTH (as upstream's tlsGetPeerUser).
#[cold]
fn tls_connected(srv: &mut Server, c: &mut Client) {
    let field = crate::tls::auth_user_field(&srv.config);
    if field == crate::tls::AuthUserField::Off {
        return;
    }
    let Conn::Tls(t) = &c.conn else {
        return;
    };
    // rustls only completes the handshake with a certificate the verifier accepted.
    let Some(leaf) = t.peer_certificates().and_then(|v| v.first()) else {
        return;
    };
    let candidates = match field {
        crate::tls::AuthUserField::Cn => crate::tls::cert_common_name(leaf).into_iter().collect(),
        crate::tls::AuthUserField::Uri => crate::tls::cert_san_uris(leaf),
        crate::tls::AuthUserField::Off => Vec::new(),
    };
    for name in candidates {
        if srv
            .acl
            .acl
            .get_user(name.as_bytes())
            .is_some_and(|u| u.enabled())
        {
            c.authenticated = true;
            c.user = name;
            c.acl_gen = 0;
            return;
        }
    }
    debug!("TLS: No matching user found for the client certificate");
}

/// Descriptors kept for the server's own use (listeners, files, pipes) beyond one per
/// client, as upstream's `CONFIG_MIN_RESERVED_FDS`.
pub const MIN_RESERVED_FDS: u64 = 32;

/// Upstream's `adjustOpenFilesLimit`: raises the soft `RLIMIT_NOFILE` to `maxclients` plus
/// [`MIN_RESERVED_FDS`]; when the hard limit does not allow it, takes the highest value
/// it can (stepping down by 16) and lowers `maxclients` to fit, with upstream's warnings.
/// Returns an error when not even the reserved descriptors are available.
pub fn adjust_open_files_limit(srv: &mut Server) -> Result<(), String> {
    use nix::sys::resource::{getrlimit, Resource};
    let want = (srv.config.maxclients as u64).saturating_add(MIN_RESERVED_FDS);
    let Ok((cur, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        warn!(
            "Unable to obtain the current NOFILE limit ({}), assuming 1024 and setting the max clients configuration accordingly.",
            io::Error::last_os_error()
        );
        srv.config.maxclients = (1024 - MIN_RESERVED_FDS) as usize;
        return Ok(());
    };
    if cur >= want {
        return Ok(());
    }
    let best = raise_nofile(want, cur, hard);
    if best >= want {
        log::info!(
            "Increased maximum number of open files to {} (it was originally set to {}).",
            want,
            cur
        );
        return Ok(());
    }
    let old_max = srv.config.maxclients;
    if best <= MIN_RESERVED_FDS {
        return Err(format!(
            "Your current 'ulimit -n' of {} is not enough for the server to start. Please increase your open file limit to at least {}. Exiting.",
            cur, want
        ));
    }
    srv.config.maxclients = (best - MIN_RESERVED_FDS) as usize;
    warn!(
        "You requested maxclients of {} requiring at least {} max file descriptors.",
        old_max, want
    );
    warn!(
        "Server can't set maximum open files to {} because of OS error: {}.",
        want,
        io::Error::last_os_error()
    );
    warn!(
        "Current maximum open files is {}. maxclients has been reduced to {} to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'.",
        best, srv.config.maxclients
    );
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` towards `want` (from `cur`, under `hard` unless the
/// process may raise that too), stepping down by 16 until the kernel accepts; returns
/// the limit in force.
fn raise_nofile(want: u64, cur: u64, hard: u64) -> u64 {
    use nix::sys::resource::{setrlimit, Resource};
    let mut best = want;
    while best > cur {
        if setrlimit(Resource::RLIMIT_NOFILE, best, hard.max(best)).is_ok()
            || setrlimit(Resource::RLIMIT_NOFILE, best, hard).is_ok()
        {
            break;
        }
        best = best.saturating_sub(16).max(cur);
    }
    best
}

/// CONFIG SET maxclients to a higher value (upstream's `updateMaxclients`): raises the
/// open-files limit for it; on failure returns the most clients the limit allows.
pub fn fds_for_maxclients(maxclients: usize) -> Result<(), usize> {
    use nix::sys::resource::{getrlimit, Resource};
    let want = (maxclients as u64).saturating_add(MIN_RESERVED_FDS);
    let Ok((cur, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Err(0);
    };
    if cur >= want {
        return Ok(());
    }
    let best = raise_nofile(want, cur, hard);
    if best >= want {
        Ok(())
    } else {
        Err(best.saturating_sub(MIN_RESERVED_FDS) as usize)
    }
}

/// Whether client `slot` is out of the table because its command is running (as
/// opposed to a free slot).
#[inline]
pub fn in_service(srv: &Server, slot: usize) -> bool {
    matches!(srv.clients.get(slot), Some(None))
}

/// Takes client `slot` out of the table for serving; put it back with [`put_client`].
#[inline]
pub fn take_client(srv: &mut Server, slot: usize) -> Option<Box<Client>> {
    srv.clients.get_mut(slot).and_then(|o| o.take())
}

#[inline]
pub fn put_client(srv: &mut Server, mut c: Box<Client>) {
    crate::memory::update_client_mem_usage(&mut srv.mem, &mut c);
    let slot = c.slot;
    srv.clients[slot] = Some(c);
}

/// The readable handler of a client.
pub fn read_query_from_client(
    el: &mut EventLoop,
    srv: &mut Server,
    fd: RawFd,
    slot: usize,
    mask: u32,
) {
    // Without a pending hang-up a short read means the socket is drained.
    let peer_closed = mask & ae::READ_CLOSED != 0;
    let Some(mut c) = take_client(srv, slot) else {
        if in_service(srv, slot) {
            // Its command is blocking (src/busy.rs): read once it returns.
            crate::busy::defer_event(srv, fd, ae::READABLE);
        }
        return;
    };
    srv.update_cached_time();
    let mut close = false;
    let mut reads = 0;
    loop {
        if c.has_flag(cflags::CLOSE_AFTER_REPLY | cflags::CLOSE_ASAP) {
            break;
        }
        if reads == MAX_READS_PER_EVENT {
            el.set_pending(fd, ae::READABLE);
            break;
        }
        reads += 1;
        let len = c.query_buf.len();
        c.query_buf.reserve(PROTO_IOBUF_LEN);
        let spare = c.query_buf.capacity() - len;
        let r = c.conn.read_into(c.fd, &mut c.query_buf);
        if let Conn::Tls(t) = &mut c.conn {
            if t.take_just_connected() {
                tls_connected(srv, &mut c);
            }
        }
        match r {
            Ok(0) => {
                close = true;
                break;
            }
            Ok(n) => {
                debug_assert_eq!(c.query_buf.len(), len + n);
                c.net_input_bytes += n as u64;
                if c.has_flag(cflags::PRIMARY) {
                    srv.stats.net_repl_input_bytes += n as u64;
                } else {
                    srv.stats.net_input_bytes += n as u64;
                }
                srv.stats.total_reads_processed += 1;
                c.last_interaction_ms = srv.mstime;
                if query_buffer_limit_reached(srv, &c) {
                    close = true;
                    break;
                }
                // A growing query buffer counts against maxmemory-clients before its
                // command runs (upstream evicts in processCommand).
                crate::memory::update_client_mem_usage(&mut srv.mem, &mut c);
                if crate::memory::evict_clients(el, srv, Some(&mut c)) {
                    close = true;
                    break;
                }
                c = match crate::busy::with_loop(el, srv, |srv| run_client_input(srv, c)) {
                    Input::Keep(c) => c,
                    Input::Close(c) => {
                        free_client(el, srv, c);
                        return;
                    }
                    Input::Gone => return,
                };
                let pending = c.query_buf.len() - c.qb_pos;
                if pending > c.query_buf_peak {
                    c.query_buf_peak = pending;
                }
                // A short read drained the socket: with edge-triggered readiness a new
                // edge comes when more data arrives, so skip the read that would only
                // return EAGAIN (one syscall less per request at pipeline depth 1).
                let drained = !peer_closed && c.conn.drained_after(n, spare);
                if drained {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                if matches!(c.conn, Conn::Tls(_)) && e.kind() == ErrorKind::InvalidData {
                    debug!(
                        "Error accepting a client connection: {} (addr={})",
                        e, c.addr
                    );
                } else {
                    debug!("Reading from client: {}", e);
                }
                close = true;
                break;
            }
        }
    }
    if close || c.has_flag(cflags::CLOSE_ASAP) {
        free_client(el, srv, c);
        return;
    }
    // TLS records waiting for the socket (a handshake flight) count as output too.
    if (c.has_pending_replies() || c.conn.wants_write()) && !c.pending_write {
        c.pending_write = true;
        srv.clients_pending_write.push(slot);
    }
    put_client(srv, c);
}

/// Upstream's query buffer check after a read, before the input is parsed: unparsed bytes
/// plus the arguments of commands queued by MULTI (not run yet, so still "query" in the
/// broad sense) over `client-query-buffer-limit`, or over 1 MB before authentication.
/// Logs and counts the disconnection; the caller closes the client without a reply.
fn query_buffer_limit_reached(srv: &mut Server, c: &Client) -> bool {
    // Our primary's stream is never cut (as upstream).
    if c.has_flag(cflags::PRIMARY) {
        return false;
    }
    // The arguments of a command being parsed left the buffer but are still input.
    let used = (c.query_buf.len() - c.qb_pos)
        .saturating_add(c.argv_len_sum)
        .saturating_add(c.mstate_argv_len_sum);
    if used <= srv.config.client_query_buffer_limit
        && (used <= UNAUTH_QUERY_BUF_MAX || srv.client_is_authenticated(c))
    {
        return false;
    }
    let info = crate::commands::connection::client_info_line(srv, c, false);
    let head = &c.query_buf[c.qb_pos..];
    let head = crate::reply::sanitize(&head[..head.len().min(64)], 64);
    warn!(
        "Closing client that reached max query buffer length: {} (qbuf initial bytes: {:?})",
        info, head
    );
    srv.stats.client_qbuf_limit_disconnections += 1;
    true
}

/// The output-buffer-limit class of a client, as upstream's `getClientType`: 0 normal,
/// 1 replica, 2 pubsub (a subscriber in RESP2 only: a RESP3 subscriber gets pushes among
/// ordinary replies and is limited as a normal client).
#[inline]
pub fn obuf_limit_class(c: &Client) -> usize {
    // A replica link (not MONITOR) is class 1; the primary link is limited as a normal
    // client.
    if c.has_flag(cflags::REPLICA) {
        1
    } else if c.reply.resp == 2 && c.has_flag(cflags::PUBSUB) {
        2
    } else {
        0
    }
}

/// Upstream's `checkClientOutputBufferLimits`: true when the pending output reaches the
/// class's hard limit, or has stayed at or over its soft limit for more than its seconds
/// (the soft-limit clock starts the first time it is seen over, and stops when under).
pub fn obuf_limit_reached(c: &mut Client, lim: ObufLimit, unixtime: i64) -> bool {
    let used = c.reply.pending() as u64;
    let hard = lim.hard > 0 && used >= lim.hard;
    let mut soft = lim.soft > 0 && used >= lim.soft;
    if soft {
        if c.obuf_soft_limit_reached_time == 0 {
            c.obuf_soft_limit_reached_time = unixtime;
            soft = false;
        } else if unixtime.saturating_sub(c.obuf_soft_limit_reached_time) <= lim.soft_seconds {
            soft = false;
        }
    } else {
        c.obuf_soft_limit_reached_time = 0;
    }
    soft || hard
}

/// The output buffer limit check for a client being served (out of the client table):
/// call after adding replies. Cheap when the output is small (one comparison). When a
/// limit is reached the client is closed as [`close_client_on_obuf_limit`] says and true
/// is returned; nothing more should be added to its output.
#[inline]
pub fn check_output_buffer_limits(srv: &mut Server, c: &mut Client) -> bool {
    if c.reply.pending() <= PROTO_REPLY_CHUNK_BYTES {
        c.obuf_soft_limit_reached_time = 0;
        return false;
    }
    check_output_buffer_limits_slow(srv, c)
}

#[cold]
fn check_output_buffer_limits_slow(srv: &mut Server, c: &mut Client) -> bool {
    if c.has_flag(cflags::CLOSE_ASAP) {
        return false;
    }
    let lim = srv.config.client_obuf_limits[obuf_limit_class(c)];
    if !obuf_limit_reached(c, lim, srv.unixtime) {
        return false;
    }
    close_client_on_obuf_limit(srv, c);
    true
}

/// As [`check_output_buffer_limits`] for the client in `slot` of the table (a subscriber
/// receiving a message, a client served in cron).
pub fn check_output_buffer_limits_slot(srv: &mut Server, slot: usize) -> bool {
    match srv.clients.get(slot) {
        Some(Some(c)) if c.reply.pending() > PROTO_REPLY_CHUNK_BYTES => {}
        _ => return false,
    }
    let Some(mut c) = take_client(srv, slot) else {
        return false;
    };
    let closed = check_output_buffer_limits_slow(srv, &mut c);
    put_client(srv, c);
    closed
}

/// [`close_client_on_obuf_limit`] for the client in `slot` of the table.
pub fn close_client_on_obuf_limit_slot(srv: &mut Server, slot: usize) {
    if let Some(mut c) = take_client(srv, slot) {
        close_client_on_obuf_limit(srv, &mut c);
        put_client(srv, c);
    }
}

/// Upstream's `closeClientOnOutputBufferLimitReached` with async free: the pending output
/// is dropped (it is never sent), the client is marked CLOSE_ASAP so nothing more runs or
/// is added, a warning is logged, INFO `client_output_buffer_limit_disconnections` counts
/// it, and it is freed in before-sleep.
pub fn close_client_on_obuf_limit(srv: &mut Server, c: &mut Client) {
    if c.has_flag(cflags::CLOSE_ASAP) {
        return;
    }
    let info = crate::commands::connection::client_info_line(srv, c, false);
    if c.has_flag(cflags::BLOCKED) {
        // It leaves the key queues now, so nothing is served to it meanwhile.
        crate::blocked::forget_client(srv, c);
    }
    c.flags |= cflags::CLOSE_ASAP;
    c.reply.buf = Vec::new();
    c.reply.sent = 0;
    srv.stats.client_outbuf_limit_disconnections += 1;
    warn!("Client {info} scheduled to be closed ASAP for overcoming of output buffer limits.");
    srv.clients_to_close.push((c.slot, c.id));
}

/// What became of a client after running its input.
pub enum Input {
    /// Still connected: put it back.
    Keep(Box<Client>),
    /// Must be freed now.
    Close(Box<Client>),
    /// Already gone from the table (freed while blocked clients were served).
    Gone,
}

/// Runs the client's buffered commands; after any command that made keys ready (a push to
/// a key clients block on, or EXEC of such pushes) the client goes back into the table
/// while the blocked clients are served, then its next command runs.
pub fn run_client_input(srv: &mut Server, mut c: Box<Client>) -> Input {
    loop {
        if !process_input_buffer(srv, &mut c) {
            return Input::Close(c);
        }
        if srv.blocked.ready_keys.is_empty() {
            return Input::Keep(c);
        }
        let (slot, id) = (c.slot, c.id);
        put_client(srv, c);
        crate::blocked::handle_clients_blocked_on_keys(srv);
        c = match take_client(srv, slot) {
            Some(c) if c.id == id => c,
            Some(other) => {
                put_client(srv, other);
                return Input::Gone;
            }
            None => return Input::Gone,
        };
    }
}

/// before-sleep: processes the pending input of clients just unblocked (upstream's
/// `processUnblockedClients`).
pub fn process_unblocked_clients(el: &mut EventLoop, srv: &mut Server) {
    srv.update_cached_time();
    loop {
        let list = crate::blocked::take_unblocked(srv);
        if list.is_empty() {
            break;
        }
        for (slot, id) in list {
            let Some(mut c) = take_client(srv, slot) else {
                continue;
            };
            if c.id != id {
                put_client(srv, c);
                continue;
            }
            c.flags &= !cflags::UNBLOCKED;
            if c.has_flag(cflags::BLOCKED) {
                put_client(srv, c);
                continue;
            }
            match crate::busy::with_loop(el, srv, |srv| run_client_input(srv, c)) {
                Input::Keep(mut c) => {
                    if c.has_pending_replies() && !c.pending_write {
                        c.pending_write = true;
                        srv.clients_pending_write.push(c.slot);
                    }
                    put_client(srv, c);
                }
                Input::Close(c) => free_client(el, srv, c),
                Input::Gone => {}
            }
        }
    }
}

/// Parses and runs every complete command in the query buffer, stopping early when the
/// client blocks or a command made keys ready. Returns false if the client must be
/// closed at once.
pub fn process_input_buffer(srv: &mut Server, c: &mut Client) -> bool {
    while c.qb_pos < c.query_buf.len() {
        if c.has_flag(
            cflags::CLOSE_AFTER_REPLY | cflags::CLOSE_ASAP | cflags::BLOCKED | cflags::POSTPONED,
        ) {
            break;
        }
        // The primary's stream accumulates while a script is busy (no -BUSY for it):
        // applied when the script ends, as upstream.
        if c.has_flag(cflags::PRIMARY) && crate::busy::script_busy(srv) {
            break;
        }
        if c.req_type == ReqType::None {
            c.req_type = if c.query_buf[c.qb_pos] == b'*' {
                ReqType::Multibulk
            } else {
                ReqType::Inline
            };
        }
        let complete = match c.req_type {
            ReqType::Inline => process_inline_buffer(srv, c),
            _ => process_multibulk_buffer(srv, c),
        };
        if !complete {
            break;
        }
        if c.argv.is_empty() {
            // An empty request (`*0`, `*-1`, a blank inline line): nothing to run.
            reset_client(c);
            continue;
        }
        let skip = c.has_flag(cflags::REPLY_SKIP_NEXT);
        if skip {
            c.flags &= !cflags::REPLY_SKIP_NEXT;
            c.flags |= cflags::REPLY_SKIP;
            c.reply.silenced = true;
        }
        let from_primary = c.has_flag(cflags::PRIMARY);
        srv.repl.replica.applying = from_primary;
        crate::commands::process_command(srv, c);
        if from_primary {
            srv.repl.replica.applying = false;
            crate::replication::replica::command_processed(srv, c);
        }
        if c.has_flag(cflags::REPLY_SKIP) {
            c.flags &= !cflags::REPLY_SKIP;
            c.reply.silenced = c.has_flag(cflags::REPLY_OFF);
        }
        if c.has_flag(cflags::BLOCKED | cflags::POSTPONED) {
            // The command stays in argv to run again when a key is ready (or the pause
            // ends); the rest of the input waits.
            break;
        }
        reset_client(c);
        if check_output_buffer_limits(srv, c) {
            break;
        }
        if !srv.client_is_authenticated(c) && c.reply.pending() > UNAUTH_OUTPUT_MAX {
            // An unauthenticated peer that does not read its replies.
            return false;
        }
        if !srv.blocked.ready_keys.is_empty() {
            // Serve the clients blocked on those keys before the next command.
            break;
        }
    }
    // Drop the consumed prefix once per batch (the primary client keeps the bytes of a
    // transaction not yet applied: they count in the offset at EXEC).
    let consumed = if c.has_flag(cflags::PRIMARY) {
        c.repl_applied.min(c.qb_pos)
    } else {
        c.qb_pos
    };
    if consumed > 0 {
        if consumed == c.query_buf.len() {
            c.query_buf.clear();
            if c.query_buf.capacity() > 4 * PROTO_IOBUF_LEN {
                c.query_buf.shrink_to(PROTO_IOBUF_LEN);
            }
        } else {
            c.query_buf.drain(..consumed);
        }
        c.qb_pos -= consumed;
        c.repl_applied = 0;
    }
    true
}

/// Arguments larger than this are not kept in the reuse pool.
const ARGV_POOL_ARG_BYTES_MAX: usize = 1024;
/// At most this many buffers are kept in the reuse pool.
const ARGV_POOL_LEN_MAX: usize = 16;

/// Clears the parsed command for the next one (`resetClient`).
pub fn reset_client(c: &mut Client) {
    while let Some(mut a) = c.argv.pop() {
        if c.argv_pool.len() < ARGV_POOL_LEN_MAX && a.capacity() <= ARGV_POOL_ARG_BYTES_MAX {
            a.clear();
            c.argv_pool.push(a);
        }
    }
    c.argv_len_sum = 0;
    c.req_type = ReqType::None;
    c.multibulk_len = 0;
    c.bulk_len = -1;
}

/// Replies with a protocol error and closes the client after the reply, as
/// `setProtocolError`.
fn set_protocol_error(c: &mut Client, msg: &str) {
    debug!("Protocol error ({}) from client: addr={}", msg, c.addr);
    // Nothing is ever replied to our primary (its link just closes).
    c.reply.silenced = c.has_flag(cflags::PRIMARY);
    c.reply.add_error(&format!("ERR Protocol error: {}", msg));
    c.flags |= if c.has_flag(cflags::PRIMARY) {
        cflags::CLOSE_ASAP
    } else {
        cflags::CLOSE_AFTER_REPLY
    };
    // Discard the rest of the input.
    c.qb_pos = c.query_buf.len();
    reset_client(c);
}

fn find_cr(buf: &[u8], from: usize) -> Option<usize> {
    buf[from..]
        .iter()
        .position(|&b| b == b'\r')
        .map(|p| p + from)
}

/// Parses one multibulk request; returns true when argv holds a complete command (or the
/// request was empty), false when more bytes are needed or a protocol error was set.
fn process_multibulk_buffer(srv: &Server, c: &mut Client) -> bool {
    let authed = srv.client_is_authenticated(c);
    if c.multibulk_len == 0 {
        let Some(cr) = find_cr(&c.query_buf, c.qb_pos) else {
            if c.query_buf.len() - c.qb_pos > PROTO_INLINE_MAX_SIZE {
                set_protocol_error(c, "too big mbulk count string");
            }
            return false;
        };
        if cr + 1 >= c.query_buf.len() {
            return false; // The \n has not arrived yet.
        }
        let n = crate::util::parse_i64_strict(&c.query_buf[c.qb_pos + 1..cr]);
        match n {
            Some(n) if n > i32::MAX as i64 => {
                set_protocol_error(c, "invalid multibulk length");
                return false;
            }
            Some(n) if !authed && n > UNAUTH_MULTIBULK_MAX => {
                set_protocol_error(c, "unauthenticated multibulk length");
                return false;
            }
            None => {
                set_protocol_error(c, "invalid multibulk length");
                return false;
            }
            Some(n) => {
                c.qb_pos = cr + 2;
                if n <= 0 {
                    return true; // Empty request.
                }
                c.multibulk_len = n;
                // Never size anything by an announced count: reserve a bounded amount.
                c.argv.reserve((n as usize).min(1024));
            }
        }
    }
    while c.multibulk_len > 0 {
        if c.bulk_len == -1 {
            let Some(cr) = find_cr(&c.query_buf, c.qb_pos) else {
                if c.query_buf.len() - c.qb_pos > PROTO_INLINE_MAX_SIZE {
                    set_protocol_error(c, "too big bulk count string");
                }
                return false;
            };
            if cr + 1 >= c.query_buf.len() {
                return false;
            }
            if c.query_buf[c.qb_pos] != b'$' {
                let got = c.query_buf[c.qb_pos] as char;
                set_protocol_error(c, &format!("expected '$', got '{}'", got));
                return false;
            }
            let n = crate::util::parse_i64_strict(&c.query_buf[c.qb_pos + 1..cr]);
            match n {
                Some(n) if n < 0 || n > srv.config.proto_max_bulk_len => {
                    set_protocol_error(c, "invalid bulk length");
                    return false;
                }
                Some(n) if !authed && n > UNAUTH_BULK_MAX => {
                    set_protocol_error(c, "unauthenticated bulk length");
                    return false;
                }
                None => {
                    set_protocol_error(c, "invalid bulk length");
                    return false;
                }
                Some(n) => {
                    c.qb_pos = cr + 2;
                    c.bulk_len = n;
                }
            }
        }
        let need = c.bulk_len as usize + 2;
        if c.query_buf.len() - c.qb_pos < need {
            return false;
        }
        let start = c.qb_pos;
        let bytes = &c.query_buf[start..start + c.bulk_len as usize];
        let arg = match c.argv_pool.pop() {
            Some(mut a) if bytes.len() <= ARGV_POOL_ARG_BYTES_MAX => {
                a.extend_from_slice(bytes);
                a
            }
            _ => bytes.to_vec(),
        };
        c.argv_len_sum += arg.len();
        c.argv.push(arg);
        c.qb_pos += need;
        c.bulk_len = -1;
        c.multibulk_len -= 1;
    }
    true
}

/// Parses one inline request (a line of space-separated, optionally quoted words).
fn process_inline_buffer(_srv: &Server, c: &mut Client) -> bool {
    let Some(nl) = c.query_buf[c.qb_pos..].iter().position(|&b| b == b'\n') else {
        if c.query_buf.len() - c.qb_pos > PROTO_INLINE_MAX_SIZE {
            set_protocol_error(c, "too big inline request");
        }
        return false;
    };
    // A line longer than the limit is refused even when it arrived whole: upstream reads
    // 16 KB at a time and so never sees its newline before passing the limit.
    let end = c.qb_pos + nl;
    let mut line_end = end;
    if line_end > c.qb_pos && c.query_buf[line_end - 1] == b'\r' {
        line_end -= 1;
    }
    if line_end - c.qb_pos > PROTO_INLINE_MAX_SIZE {
        set_protocol_error(c, "too big inline request");
        return false;
    }
    let line = c.query_buf[c.qb_pos..line_end].to_vec();
    c.qb_pos = end + 1;
    match split_args(&line) {
        Some(args) => {
            c.argv = args;
            true
        }
        None => {
            set_protocol_error(c, "unbalanced quotes in request");
            false
        }
    }
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// Splits a line into arguments as `sdssplitargs`: whitespace separates, "double quotes"
/// take C escapes (\n \r \t \b \a \\ \" \xHH), 'single quotes' take only \'. As in
/// Valkey 9, quoted parts join the text next to them (`"a"b` is `ab`). Returns None on
/// unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut inq = false;
        let mut insq = false;
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    cur.push(hex_val(line[i + 2]) * 16 + hex_val(line[i + 3]));
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                } else if line[i] == b'"' {
                    // Valkey 9 joins a quoted part with adjacent text, as a shell does.
                    inq = false;
                } else {
                    cur.push(line[i]);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    insq = false;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    o => cur.push(o),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

/// Writes as much of the client's pending output as the socket takes. Returns Err if the
/// connection failed.
pub fn write_to_client(srv: &mut Server, c: &mut Client) -> io::Result<()> {
    if crate::replication::primary::output_held(c) {
        // A replica's stream waits for its RDB.
        return Ok(());
    }
    let mut written = 0;
    while c.reply.pending() > 0 {
        let r = {
            let (conn, rb) = (&mut c.conn, &c.reply);
            conn.write(&rb.buf[rb.sent..])
        };
        match r {
            Ok(0) => return Err(io::Error::new(ErrorKind::WriteZero, "write zero")),
            Ok(n) => {
                c.reply.sent += n;
                written += n;
                c.net_output_bytes += n as u64;
                if c.has_flag(cflags::REPLICA) {
                    srv.stats.net_repl_output_bytes += n as u64;
                } else {
                    srv.stats.net_output_bytes += n as u64;
                }
                if written >= NET_MAX_WRITES_PER_EVENT {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    if c.reply.pending() == 0 && c.conn.wants_write() {
        match c.conn.flush() {
            Err(e) if e.kind() != ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
    }
    srv.stats.total_writes_processed += 1;
    if c.reply.pending() == 0 {
        c.reply.buf.clear();
        c.reply.sent = 0;
        if c.reply.buf.capacity() > REPLY_BUF_TRIM_NOW_BYTES {
            c.reply.buf.shrink_to(PROTO_IOBUF_LEN);
        }
    } else if c.reply.sent > REPLY_BUF_KEEP_BYTES {
        let sent = c.reply.sent;
        c.reply.buf.drain(..sent);
        c.reply.sent = 0;
    }
    // As upstream, writing to our primary (ACKs) is no sign of life from it: its
    // `repl-timeout` counts from what it sent us.
    if written > 0 && !c.has_flag(cflags::PRIMARY) {
        c.last_interaction_ms = srv.mstime;
    }
    Ok(())
}

/// The writable handler, installed only while output is pending.
pub fn send_reply_to_client(el: &mut EventLoop, srv: &mut Server, fd: RawFd, slot: usize, _: u32) {
    let Some(mut c) = take_client(srv, slot) else {
        if in_service(srv, slot) {
            crate::busy::defer_event(srv, fd, ae::WRITABLE);
        }
        return;
    };
    if write_to_client(srv, &mut c).is_err() {
        free_client(el, srv, c);
        return;
    }
    if c.reply.pending() == 0 && !c.conn.wants_write() {
        el.delete_file_event(fd, ae::WRITABLE);
        c.write_handler_installed = false;
        if c.has_flag(cflags::CLOSE_AFTER_REPLY) {
            free_client(el, srv, c);
            return;
        }
    }
    put_client(srv, c);
}

/// before-sleep: try to write every client's output directly; install the writable handler
/// only for those whose socket did not take it all.
pub fn handle_clients_with_pending_writes(el: &mut EventLoop, srv: &mut Server) {
    let pending = std::mem::take(&mut srv.clients_pending_write);
    let mut kept: Vec<usize> = Vec::new();
    for slot in pending.iter().copied() {
        let Some(mut c) = take_client(srv, slot) else {
            // Its command is blocking (src/busy.rs): written once it returns.
            if in_service(srv, slot) {
                kept.push(slot);
            }
            continue;
        };
        c.pending_write = false;
        // Replies added outside the client's own commands (served when unblocked,
        // pushes) meet the output buffer limit here.
        if check_output_buffer_limits(srv, &mut c) {
            put_client(srv, c);
            continue;
        }
        if c.write_handler_installed || crate::replication::primary::output_held(&c) {
            put_client(srv, c);
            continue;
        }
        if write_to_client(srv, &mut c).is_err() {
            free_client(el, srv, c);
            continue;
        }
        if c.reply.pending() > 0 || c.conn.wants_write() {
            if el
                .create_file_event(c.fd, ae::WRITABLE, send_reply_to_client, slot)
                .is_ok()
            {
                c.write_handler_installed = true;
            }
        } else if c.has_flag(cflags::CLOSE_AFTER_REPLY) {
            free_client(el, srv, c);
            continue;
        }
        put_client(srv, c);
    }
    // Reuse the allocation of the list.
    let mut pending = pending;
    pending.clear();
    if srv.clients_pending_write.is_empty() {
        srv.clients_pending_write = pending;
    }
    srv.clients_pending_write.extend(kept);
}

/// Schedules client `slot` (with id `id`) to be closed in before-sleep.
pub fn free_client_async(srv: &mut Server, slot: usize, id: u64) {
    // A blocked client leaves the queues now, so no push is served to it meanwhile.
    if let Some(Some(c)) = srv.clients.get_mut(slot) {
        if c.id == id && c.has_flag(cflags::BLOCKED) {
            if let Some(mut cl) = take_client(srv, slot) {
                crate::blocked::forget_client(srv, &mut cl);
                // Nothing more of its input runs before it is freed.
                cl.flags |= cflags::CLOSE_ASAP;
                put_client(srv, cl);
            }
        }
    }
    srv.clients_to_close.push((slot, id));
}

/// before-sleep: frees the clients scheduled by [`free_client_async`].
pub fn free_clients_in_async_free_queue(el: &mut EventLoop, srv: &mut Server) {
    if srv.clients_to_close.is_empty() {
        return;
    }
    let list = std::mem::take(&mut srv.clients_to_close);
    for (slot, id) in list {
        let matches = matches!(srv.clients.get(slot), Some(Some(c)) if c.id == id);
        if !matches {
            if in_service(srv, slot) {
                // Its command is blocking (src/busy.rs): closed once it returns.
                srv.clients_to_close.push((slot, id));
            }
            continue;
        }
        if let Some(mut c) = take_client(srv, slot) {
            // Flush what can be flushed (the reply to CLIENT KILL of oneself, QUIT).
            if c.has_flag(cflags::CLOSE_AFTER_REPLY) {
                let _ = write_to_client(srv, &mut c);
            }
            free_client(el, srv, c);
        }
    }
}

/// Closes the connection and releases everything the client holds.
pub fn free_client(el: &mut EventLoop, srv: &mut Server, mut c: Box<Client>) {
    crate::replication::primary::on_free_client(el, srv, &mut c);
    el.delete_file_event(c.fd, ae::READABLE | ae::WRITABLE);
    if let Conn::Tls(t) = &mut c.conn {
        t.close_notify();
    }
    crate::memory::remove_client_mem_usage(&mut srv.mem, &mut c);
    crate::blocked::forget_client(srv, &mut c);
    crate::monitor::stop(srv, &mut c);
    crate::pause::forget(srv, &mut c);
    crate::commands::transaction::unwatch_all_keys(srv, &c);
    crate::pubsub::free_client_pubsub(srv, &mut c);
    crate::tracking::free_client(srv, &mut c);
    if c.has_flag(cflags::PRIMARY) {
        crate::replication::replica::primary_client_freed(srv, &c);
    }
    if srv.clients.contains(c.slot) {
        srv.clients.remove(c.slot);
    }
    drop(c);
}

/// At least this many clients are visited per clients_cron call, as upstream's
/// `CLIENTS_CRON_MIN_ITERATIONS`.
const CLIENTS_CRON_MIN_ITERATIONS: usize = 5;

/// serverCron's client work: idle timeouts, buffer trimming, the soft output buffer limit.
/// As upstream's `clientsCron`, each call visits only `clients / hz` clients (at least 5),
/// so every client is seen about once a second and 10,000 idle clients do not cost a
/// full scan per tick.
pub fn clients_cron(srv: &mut Server) {
    let timeout_ms = srv.config.timeout as i64 * 1000;
    let now = srv.mstime;
    let numclients = srv.clients.len();
    if numclients == 0 {
        return;
    }
    let iterations = (numclients / srv.hz.max(1) as usize)
        .max(CLIENTS_CRON_MIN_ITERATIONS)
        .min(numclients);
    let cap = srv.clients.capacity().max(1);
    let mut slot = srv.clients_cron_cursor % cap;
    let (mut visited, mut scanned) = (0, 0);
    let mut to_close = Vec::new();
    let mut over = Vec::new();
    // Cluster mode: blocked clients whose slot went away (upstream's
    // clientsCronHandleTimeout → clusterRedirectBlockedClientIfNeeded).
    let cluster = srv.cluster.is_some();
    let mut blocked = Vec::new();
    while visited < iterations && scanned < cap {
        let here = slot;
        slot = (slot + 1) % cap;
        scanned += 1;
        let Some(Some(c)) = srv.clients.get_mut(here) else {
            continue;
        };
        visited += 1;
        if timeout_ms > 0
            && !c.has_flag(
                cflags::BLOCKED
                    | cflags::POSTPONED
                    | cflags::REPLICA
                    | cflags::MONITOR
                    | cflags::PRIMARY,
            )
            && now - c.last_interaction_ms > timeout_ms
        {
            debug!("Closing idle client");
            to_close.push((here, c.id));
            continue;
        }
        if cluster && c.has_flag(cflags::BLOCKED) {
            blocked.push(here);
        }
        if c.query_buf.is_empty() && c.query_buf.capacity() > PROTO_IOBUF_LEN * 2 {
            c.query_buf = Vec::new();
        }
        c.query_buf_peak = 0;
        if c.reply.pending() == 0 && c.reply.buf.capacity() > REPLY_BUF_KEEP_BYTES {
            c.reply.buf.clear();
            c.reply.sent = 0;
            c.reply.buf.shrink_to(PROTO_IOBUF_LEN);
        }
        // The soft output limit is a matter of time: a client staying over it without
        // receiving more output is closed here (as upstream's clientsCron).
        if c.reply.pending() > PROTO_REPLY_CHUNK_BYTES {
            over.push(here);
        }
    }
    srv.clients_cron_cursor = slot;
    for (slot, id) in to_close {
        free_client_async(srv, slot, id);
    }
    for slot in over {
        check_output_buffer_limits_slot(srv, slot);
    }
    if !blocked.is_empty() {
        crate::cluster::redirect_blocked_clients(srv, &blocked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_client() -> Client {
        let (a, _b) = mio::net::UnixStream::pair().expect("pair");
        Client::new(1, 0, Conn::Unix(a), "x".into(), "y".into(), 0)
    }

    #[test]
    fn obuf_limits_hard_soft_and_class() {
        let mut c = test_client();
        assert_eq!(obuf_limit_class(&c), 0);
        c.flags |= cflags::PUBSUB;
        assert_eq!(obuf_limit_class(&c), 2);
        c.reply.resp = 3;
        assert_eq!(
            obuf_limit_class(&c),
            0,
            "a RESP3 subscriber is a normal client"
        );
        c.reply.buf = vec![0; 1000];
        let off = ObufLimit::default();
        assert!(!obuf_limit_reached(&mut c, off, 100));
        let hard = ObufLimit {
            hard: 1000,
            soft: 0,
            soft_seconds: 0,
        };
        assert!(obuf_limit_reached(&mut c, hard, 100));
        c.reply.sent = 1;
        assert!(!obuf_limit_reached(&mut c, hard, 100), "999 < 1000");
        let soft = ObufLimit {
            hard: 0,
            soft: 500,
            soft_seconds: 2,
        };
        assert!(!obuf_limit_reached(&mut c, soft, 100), "first seen over");
        assert_eq!(c.obuf_soft_limit_reached_time, 100);
        assert!(
            !obuf_limit_reached(&mut c, soft, 102),
            "2 s is not more than 2 s"
        );
        assert!(obuf_limit_reached(&mut c, soft, 103));
        c.reply.sent = 900;
        assert!(
            !obuf_limit_reached(&mut c, soft, 104),
            "under: the clock stops"
        );
        assert_eq!(c.obuf_soft_limit_reached_time, 0);
    }

    #[test]
    fn protected_mode_decision() {
        for local in [
            "127.0.0.1:5000",
            "127.3.4.5:1",
            "[::1]:6379",
            "[::ffff:127.0.0.1]:9",
        ] {
            assert!(!protected_mode_denies(true, true, local), "{local}");
        }
        for remote in [
            "192.0.2.2:5000",
            "10.0.0.1:1",
            "[fd00::2]:6379",
            "0.0.0.0:1",
            "junk",
        ] {
            assert!(protected_mode_denies(true, true, remote), "{remote}");
            assert!(!protected_mode_denies(false, true, remote), "{remote}");
            assert!(!protected_mode_denies(true, false, remote), "{remote}");
        }
    }

    #[test]
    fn split_args_like_sdssplitargs() {
        assert_eq!(
            split_args(b"set a b").unwrap(),
            vec![b"set".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(split_args(b"  ").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(
            split_args(b"\"a\\x41\\n\" 'it\\'s'").unwrap(),
            vec![b"aA\n".to_vec(), b"it's".to_vec()]
        );
        assert!(split_args(b"\"abc").is_none());
        assert_eq!(split_args(b"\"abc\"x").unwrap(), vec![b"abcx".to_vec()]);
        assert_eq!(
            split_args(b"a\"b c\"d 'x'y").unwrap(),
            vec![b"ab cd".to_vec(), b"xy".to_vec()]
        );
        assert!(split_args(b"'abc").is_none());
    }
}
