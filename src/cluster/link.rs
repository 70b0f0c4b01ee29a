//! Cluster bus links (upstream's `clusterLink`, `clusterAcceptHandler`,
//! `clusterConnectHandler`): the listener on `cluster-port` (port + 10000 by default),
//! inbound and outbound connections registered on the event loop, framing of the
//! `RCmb` messages, send queues. Work item D of docs/cluster-plan.md.
//!
//! Links live in a slab of [`Bus`] (in the cluster state); a node refers to its outbound
//! link (`Node::link`) and its inbound link (`Node::inbound_link`) by slab key, and the
//! slab key is the `client_data` of the link's file events. Sending only queues bytes and
//! tries one non-blocking write (code without the event loop can send); what the socket
//! does not take waits for a writable event, registered at before-sleep. Freeing a link
//! detaches it at once and parks the socket until before-sleep or the cron deregisters
//! its events, so a descriptor number is never reused while the loop still watches it.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use log::{debug, warn};
use slab::Slab;

use super::bus;
use super::NodeId;
use crate::server::{EventLoop, Server};

/// Accepts per listener event (upstream's `MAX_CLUSTER_ACCEPTS_PER_CALL`).
const MAX_ACCEPTS_PER_CALL: usize = 1000;

/// One bus connection.
pub struct Link {
    pub sock: mio::net::TcpStream,
    pub fd: RawFd,
    /// The node it belongs to (an inbound link has none until a known sender speaks).
    pub node: Option<NodeId>,
    /// Accepted (the peer connected to us), or outbound.
    pub inbound: bool,
    /// Creation time (ms).
    pub ctime: i64,
    /// Received bytes not processed yet (grows with what arrives, never from totlen).
    pub rcvbuf: Vec<u8>,
    /// Queued output and how much of it is written.
    pub sndbuf: Vec<u8>,
    pub sndpos: usize,
    /// An outbound connect still in progress.
    pub connecting: bool,
    /// WRITABLE is registered.
    pub want_write: bool,
    /// The peer address.
    pub peer: Option<SocketAddr>,
}

impl Link {
    pub fn pending(&self) -> usize {
        self.sndbuf.len() - self.sndpos
    }
    pub fn peer_ip(&self) -> String {
        self.peer.map(|a| a.ip().to_string()).unwrap_or_default()
    }
    pub fn peer_text(&self) -> String {
        self.peer.map(|a| a.to_string()).unwrap_or_default()
    }
}

/// Per-type message counters (`cluster_stats_messages_*`), and byte counters.
#[derive(Default, Clone)]
pub struct Stats {
    pub sent: [u64; bus::TYPE_COUNT as usize],
    pub received: [u64; bus::TYPE_COUNT as usize],
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub pubsub_bytes_sent: u64,
    pub pubsub_bytes_received: u64,
    pub module_bytes_sent: u64,
    pub module_bytes_received: u64,
    pub buffer_limit_exceeded: u64,
}

/// The bus: listeners, links, counters, the FORGET blacklist and cron state.
#[derive(Default)]
pub struct Bus {
    pub listeners: Vec<mio::net::TcpListener>,
    pub links: Slab<Link>,
    /// Links freed since the last before-sleep/cron: their events are deleted there.
    pub closing: Vec<Link>,
    /// Links with output the socket did not take (WRITABLE to register).
    pub want_write: Vec<usize>,
    pub stats: Stats,
    /// Forgotten node name -> expiry (ms).
    pub blacklist: HashMap<String, i64>,
    /// Cron iterations.
    pub iteration: u64,
    /// Deferred work for before-sleep (upstream's todo flags).
    pub todo_save: bool,
    pub todo_fsync: bool,
    /// Slots whose owner stopped claiming them (`owner_not_claiming_slot`).
    pub not_claiming: super::slot::SlotBitmap,
}

/// Binds the bus listener on every `bind` address, port = myself's cport.
pub fn listen(srv: &mut Server) -> Result<(), String> {
    let Some(st) = srv.cluster.as_deref_mut() else {
        return Ok(());
    };
    let cport = st.nodes.myself().cport;
    for b in &srv.config.bind {
        let (optional, addr) = match b.strip_prefix('-') {
            Some(a) => (true, a),
            None => (false, b.as_str()),
        };
        let addr = if addr == "*" { "0.0.0.0" } else { addr };
        let sa = if addr.contains(':') {
            format!("[{}]:{}", addr, cport)
        } else {
            format!("{}:{}", addr, cport)
        };
        let r = std::net::TcpListener::bind(&sa).and_then(|l| {
            l.set_nonblocking(true)?;
            Ok(mio::net::TcpListener::from_std(l))
        });
        match r {
            Ok(l) => st.bus.listeners.push(l),
            Err(e) if optional => warn!(
                "Failed listening on port {} (cluster), continuing: {}",
                cport, e
            ),
            Err(e) => {
                return Err(format!(
                    "Failed listening on port {} (cluster), aborting: {}",
                    cport, e
                ))
            }
        }
    }
    Ok(())
}

/// Registers the listeners on the loop.
pub fn install_listeners(el: &mut EventLoop, srv: &mut Server) -> std::io::Result<()> {
    let Some(st) = srv.cluster.as_deref() else {
        return Ok(());
    };
    for (i, l) in st.bus.listeners.iter().enumerate() {
        el.create_file_event(l.as_raw_fd(), ae::READABLE, accept_handler, i)?;
    }
    Ok(())
}

fn accept_handler(el: &mut EventLoop, srv: &mut Server, _fd: RawFd, idx: usize, _: u32) {
    let nt = super::gossip::node_timeout(srv);
    let now = crate::util::mstime();
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    for _ in 0..MAX_ACCEPTS_PER_CALL {
        let Some(l) = st.bus.listeners.get(idx) else {
            return;
        };
        let (sock, addr) = match l.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!("Error accepting cluster node: {}", e);
                return;
            }
        };
        let _ = sock.set_nodelay(true);
        let _ = crate::networking::set_keepalive(sock.as_raw_fd(), (nt / 1000 * 2).max(1) as u32);
        let fd = sock.as_raw_fd();
        if fd as usize >= el.setsize() {
            continue;
        }
        debug!("Accepting cluster node connection from {}", addr);
        let key = st.bus.links.insert(Link {
            sock,
            fd,
            node: None,
            inbound: true,
            ctime: now,
            rcvbuf: Vec::new(),
            sndbuf: Vec::new(),
            sndpos: 0,
            connecting: false,
            want_write: false,
            peer: Some(addr),
        });
        if el
            .create_file_event(fd, ae::READABLE, link_handler, key)
            .is_err()
        {
            st.bus.links.remove(key);
        }
    }
    el.set_pending(_fd, ae::READABLE);
}

/// Starts a non-blocking connect to `node`'s bus port; the link is the node's outbound
/// link. The PING (or MEET) is queued at once and leaves when the connect completes.
pub fn connect(el: &mut EventLoop, srv: &mut Server, node: NodeId) -> bool {
    let now = crate::util::mstime();
    let Some(st) = srv.cluster.as_deref_mut() else {
        return false;
    };
    let Some(n) = st.nodes.get(node) else {
        return false;
    };
    let addr: Option<SocketAddr> =
        n.ip.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, n.cport));
    let Some(addr) = addr else {
        return false;
    };
    let sock = match mio::net::TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => {
            debug!(
                "Unable to connect to Cluster Node [{}]:{} -> {}",
                n.ip, n.cport, e
            );
            return false;
        }
    };
    let _ = sock.set_nodelay(true);
    let fd = sock.as_raw_fd();
    if fd as usize >= el.setsize() {
        return false;
    }
    let key = st.bus.links.insert(Link {
        sock,
        fd,
        node: Some(node),
        inbound: false,
        ctime: now,
        rcvbuf: Vec::new(),
        sndbuf: Vec::new(),
        sndpos: 0,
        connecting: true,
        want_write: true,
        peer: Some(addr),
    });
    if el
        .create_file_event(fd, ae::READABLE | ae::WRITABLE, link_handler, key)
        .is_err()
    {
        st.bus.links.remove(key);
        return false;
    }
    if let Some(n) = st.nodes.get_mut(node) {
        n.link = Some(key);
        n.connected = true;
    }
    true
}

/// Detaches link `key` from its node and parks it for closing.
pub fn free_link(srv: &mut Server, key: usize) {
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let Some(l) = st.bus.links.try_remove(key) else {
        return;
    };
    if let Some(n) = l.node.and_then(|id| st.nodes.get_mut(id)) {
        if n.link == Some(key) {
            n.link = None;
            n.connected = false;
        }
        if n.inbound_link == Some(key) {
            n.inbound_link = None;
            n.inbound_freed = crate::util::mstime();
        }
    }
    st.bus.closing.push(l);
}

/// Binds an inbound link to `node` (upstream's `setClusterNodeToInboundClusterLink`): a
/// previous inbound link of the node is freed.
pub fn set_inbound(srv: &mut Server, node: NodeId, key: usize) {
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let old = st.nodes.get(node).and_then(|n| n.inbound_link);
    if old == Some(key) {
        return;
    }
    if let Some(old) = old {
        debug!(
            "Replacing an existing inbound link (created at {}) of node {}",
            st.bus.links.get(old).map(|l| l.ctime).unwrap_or(0),
            st.nodes.get(node).map(|n| n.name.as_str()).unwrap_or("")
        );
        free_link(srv, old);
    }
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    if let Some(n) = st.nodes.get_mut(node) {
        n.inbound_link = Some(key);
    }
    if let Some(l) = st.bus.links.get_mut(key) {
        l.node = Some(node);
    }
}

/// Queues `bytes` on link `key` and writes what the socket takes now.
pub fn queue(srv: &mut Server, key: usize, bytes: &[u8]) {
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let limit: u64 = srv
        .config
        .get("cluster-link-sendbuf-limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let Some(l) = st.bus.links.get_mut(key) else {
        return;
    };
    if l.sndpos > 0 && l.sndpos == l.sndbuf.len() {
        l.sndbuf.clear();
        l.sndpos = 0;
    }
    l.sndbuf.extend_from_slice(bytes);
    st.bus.stats.bytes_sent += bytes.len() as u64;
    let res = if l.connecting { Ok(()) } else { flush(l) };
    if res.is_err() {
        free_link(srv, key);
        return;
    }
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let Some(l) = st.bus.links.get_mut(key) else {
        return;
    };
    if limit > 0 && l.pending() as u64 > limit {
        st.bus.stats.buffer_limit_exceeded += 1;
        warn!(
            "Freeing cluster link({}) due to exceeding send buffer memory limit.",
            l.peer_text()
        );
        free_link(srv, key);
        return;
    }
    if l.pending() > 0 && !l.want_write {
        st.bus.want_write.push(key);
    }
}

/// Writes queued output until the socket stops taking it; Err on an I/O error.
fn flush(l: &mut Link) -> std::io::Result<()> {
    while l.sndpos < l.sndbuf.len() {
        match l.sock.write(&l.sndbuf[l.sndpos..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => l.sndpos += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if l.sndpos == l.sndbuf.len() {
        l.sndbuf.clear();
        l.sndpos = 0;
        if l.sndbuf.capacity() > 64 * 1024 {
            l.sndbuf.shrink_to(4096);
        }
    }
    Ok(())
}

/// before-sleep and cron: deregisters the events of freed links (then closes them) and
/// registers WRITABLE on links with output left.
pub fn upkeep(el: &mut EventLoop, srv: &mut Server) {
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    for l in st.bus.closing.drain(..) {
        el.delete_file_event(l.fd, ae::READABLE | ae::WRITABLE);
        drop(l);
    }
    for key in std::mem::take(&mut st.bus.want_write) {
        if let Some(l) = st.bus.links.get_mut(key) {
            if l.pending() > 0 && !l.want_write {
                l.want_write = true;
                let _ = el.create_file_event(l.fd, ae::WRITABLE, link_handler, key);
            }
        }
    }
}

/// Readable/writable on a link.
fn link_handler(el: &mut EventLoop, srv: &mut Server, fd: RawFd, key: usize, mask: u32) {
    srv.update_cached_time();
    let Some((connecting, want_write)) = srv
        .cluster
        .as_deref()
        .and_then(|st| st.bus.links.get(key))
        .filter(|l| l.fd == fd)
        .map(|l| (l.connecting, l.want_write))
    else {
        return;
    };
    // The loop calls one handler once per turn even when both events are ready (ae's
    // rule): a readable edge (or an error) on a connecting link or one with output left
    // also gets the writable work.
    if (mask & ae::WRITABLE != 0 || connecting || want_write) && !write_ready(el, srv, fd, key) {
        return;
    }
    if mask & ae::READABLE != 0 {
        read_ready(srv, key);
    }
    upkeep(el, srv);
}

/// Returns false when the link was freed.
fn write_ready(el: &mut EventLoop, srv: &mut Server, fd: RawFd, key: usize) -> bool {
    let Some(st) = srv.cluster.as_deref_mut() else {
        return false;
    };
    let Some(l) = st.bus.links.get_mut(key) else {
        return false;
    };
    if l.connecting {
        let err = l.sock.take_error().ok().flatten();
        let connected = err.is_none() && l.sock.peer_addr().is_ok();
        if !connected {
            if err.is_none() {
                // Not finished yet (spurious edge).
                return true;
            }
            let name = l
                .node
                .and_then(|id| st.nodes.get(id))
                .map(|n| n.name.clone())
                .unwrap_or_default();
            debug!(
                "Connection with Node {} at {} failed: {}",
                name,
                l.peer_text(),
                err.map(|e| e.to_string()).unwrap_or_default()
            );
            free_link(srv, key);
            return false;
        }
        l.connecting = false;
    }
    if flush(l).is_err() {
        free_link(srv, key);
        return false;
    }
    if l.pending() == 0 && l.want_write {
        l.want_write = false;
        el.delete_file_event(fd, ae::WRITABLE);
    }
    true
}

/// Reads what is there and processes every complete message.
fn read_ready(srv: &mut Server, key: usize) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let Some(st) = srv.cluster.as_deref_mut() else {
            return;
        };
        let Some(l) = st.bus.links.get_mut(key) else {
            return;
        };
        if l.connecting {
            return;
        }
        let n = match l.sock.read(&mut buf) {
            Ok(0) => {
                debug!("I/O error reading from node link: connection closed");
                free_link(srv, key);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                debug!("I/O error reading from node link: {}", e);
                free_link(srv, key);
                return;
            }
        };
        l.rcvbuf.extend_from_slice(&buf[..n]);
        st.bus.stats.bytes_received += n as u64;
        if !process_buffer(srv, key) {
            return;
        }
    }
}

/// Processes the complete messages in the link's buffer; false when the link is gone.
fn process_buffer(srv: &mut Server, key: usize) -> bool {
    loop {
        let Some(st) = srv.cluster.as_deref_mut() else {
            return false;
        };
        let Some(l) = st.bus.links.get_mut(key) else {
            return false;
        };
        let frame = match bus::split_frame(&l.rcvbuf) {
            Ok(Some((frame, _))) => frame.len(),
            Ok(None) => return true,
            Err(e) => {
                warn!("{} from {}", e, l.peer_text());
                free_link(srv, key);
                return false;
            }
        };
        let bytes: Vec<u8> = l.rcvbuf.drain(..frame).collect();
        if l.rcvbuf.is_empty() && l.rcvbuf.capacity() > 64 * 1024 {
            l.rcvbuf = Vec::new();
        }
        super::gossip::process_frame(srv, key, &bytes);
        if srv
            .cluster
            .as_deref()
            .is_none_or(|st| st.bus.links.get(key).is_none())
        {
            return false;
        }
    }
}

/// The socket's local IP (for learning myself's address from a MEET).
pub fn local_ip(srv: &Server, key: usize) -> Option<String> {
    let st = srv.cluster.as_deref()?;
    let l = st.bus.links.get(key)?;
    l.sock.local_addr().ok().map(|a| a.ip().to_string())
}

/// The links of all nodes for CLUSTER LINKS, as (direction, node name, ctime, events,
/// allocated, used).
pub fn describe(srv: &Server) -> Vec<(&'static str, String, i64, &'static str, usize, usize)> {
    let mut out = Vec::new();
    let Some(st) = srv.cluster.as_deref() else {
        return out;
    };
    for (id, n) in st.nodes.iter() {
        if id == super::MYSELF {
            continue;
        }
        for (dir, k) in [("to", n.link), ("from", n.inbound_link)] {
            if let Some(l) = k.and_then(|k| st.bus.links.get(k)) {
                let ev = if l.want_write { "rw" } else { "r" };
                out.push((
                    dir,
                    n.name.clone(),
                    l.ctime,
                    ev,
                    l.sndbuf.capacity(),
                    l.pending(),
                ));
            }
        }
    }
    out
}

/// Bytes held by the links (INFO `mem_cluster_links`).
pub fn memory(srv: &Server) -> usize {
    srv.cluster.as_deref().map_or(0, |st| {
        st.bus
            .links
            .iter()
            .map(|(_, l)| std::mem::size_of::<Link>() + l.sndbuf.capacity() + l.rcvbuf.capacity())
            .sum()
    })
}

/// The number of links (INFO `cluster_connections`).
pub fn count(srv: &Server) -> usize {
    srv.cluster.as_deref().map_or(0, |st| st.bus.links.len())
}
