//! Processing of bus messages (upstream's `clusterProcessPacket`, `clusterSendPing`,
//! `clusterProcessGossipSection`, `clusterCron`): MEET and the handshake, PING/PONG and
//! gossip, epochs and their collisions, UPDATE, FAIL, PUBLISH. Work item D of
//! docs/cluster-plan.md. Failure detection (PFAIL/FAIL, failure reports) and failover are
//! item E's (src/cluster/failover.rs): this file calls its hooks where upstream does the
//! matching work.
//!
//! The interface item E sends through: [`header`], [`send`], [`broadcast`],
//! [`send_message`], [`broadcast_pong`].

use log::{debug, info, warn};

use super::bus::{self, Body, Ext, ExtData, Gossip, Header, Message, Name, Ping, Publish};
use super::link;
use super::node::{nflags, Node};
use super::slot::CLUSTER_SLOTS;
use super::{failover, ClusterState, NodeId, MYSELF};
use crate::server::{EventLoop, Server};

const EXT_SUPPORTED: u16 = bus::NODE_EXTENSIONS_SUPPORTED;
/// The bits of a node's flags that are the bus protocol's, not the node's state.
const PROTO_BITS: u16 = bus::NODE_EXTENSIONS_SUPPORTED
    | bus::NODE_LIGHT_HDR_PUBLISH_SUPPORTED
    | bus::NODE_LIGHT_HDR_MODULE_SUPPORTED
    | bus::NODE_MY_PRIMARY_FAIL;

fn cfg_i64(srv: &Server, name: &str, def: i64) -> i64 {
    srv.config
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(def)
}

/// `cluster-node-timeout` (ms).
pub fn node_timeout(srv: &Server) -> i64 {
    cfg_i64(srv, "cluster-node-timeout", 15000)
}

/// Upstream's handshake timeout: the node timeout, at least 1 s.
fn handshake_timeout(nt: i64) -> i64 {
    nt.max(1000)
}

/// A node that must be in the table (the sender of the message being processed) is not:
/// logged, and the rest of the work is dropped instead of panicking.
fn vanished(what: &str) {
    warn!("Cluster: the sender node is gone while {}; dropped", what);
}

fn st(srv: &mut Server) -> &mut ClusterState {
    srv.cluster.as_deref_mut().expect("cluster mode")
}

pub fn name_bytes(s: &str) -> Name {
    let mut n = [0u8; bus::NAME_LEN];
    let b = s.as_bytes();
    let k = b.len().min(bus::NAME_LEN);
    n[..k].copy_from_slice(&b[..k]);
    n
}

pub fn name_str(n: &[u8]) -> String {
    String::from_utf8_lossy(bus::cstr(n)).into_owned()
}

fn ip_field(s: &str) -> [u8; bus::IP_LEN] {
    let mut f = [0u8; bus::IP_LEN];
    let b = s.as_bytes();
    let k = b.len().min(bus::IP_LEN - 1);
    f[..k].copy_from_slice(&b[..k]);
    f
}

fn in_handshake(st: &ClusterState, id: NodeId) -> bool {
    st.nodes
        .get(id)
        .is_some_and(|n| n.flags & nflags::HANDSHAKE != 0)
}

fn node_name(st: &ClusterState, id: NodeId) -> String {
    st.nodes.get(id).map(|n| n.name.clone()).unwrap_or_default()
}

fn human(st: &ClusterState, id: NodeId) -> String {
    st.nodes
        .get(id)
        .map(|n| n.human_nodename.clone())
        .unwrap_or_default()
}

/// Deferred nodes.conf save (upstream's CLUSTER_TODO_SAVE_CONFIG), done at before-sleep.
fn todo_save(srv: &mut Server, fsync: bool) {
    let b = &mut st(srv).bus;
    b.todo_save = true;
    b.todo_fsync |= fsync;
}

/// A header of type-independent fields filled from myself's state (sender, epochs, slots
/// or the primary's, replicaof, ports, flags, state, offset).
pub fn header(srv: &Server) -> Header {
    let Some(st) = srv.cluster.as_deref() else {
        return Header::new([b'0'; bus::NAME_LEN]);
    };
    let t = &st.nodes;
    let me = t.myself();
    let mut h = Header::new(name_bytes(&me.name));
    let primary = if me.is_replica() {
        me.replicaof.and_then(|p| t.get(p))
    } else {
        None
    };
    h.myslots = primary.unwrap_or(me).slots.0;
    if let Some(p) = primary {
        h.replicaof = name_bytes(&p.name);
    }
    h.myip = ip_field(&srv.config.get("cluster-announce-ip").unwrap_or_default());
    let aport = cfg_i64(srv, "cluster-announce-port", 0);
    h.port = if aport > 0 { aport as u16 } else { me.tcp_port };
    let abport = cfg_i64(srv, "cluster-announce-bus-port", 0);
    h.cport = if abport > 0 { abport as u16 } else { me.cport };
    h.flags = (me.flags & !PROTO_BITS) | EXT_SUPPORTED;
    h.state = if st.state_ok(srv.config.cluster_require_full_coverage) {
        0
    } else {
        1
    };
    h.current_epoch = t.current_epoch;
    h.config_epoch = t.node_epoch(me);
    h.offset = failover::my_offset(srv).max(0) as u64;
    h.mflags[0] |= failover::header_mflags0(srv);
    h
}

/// Counts and queues an encoded message on link `key`.
fn queue_msg(srv: &mut Server, key: usize, msg: &Message) {
    let bytes = bus::encode(msg);
    count_sent(srv, msg, bytes.len());
    link::queue(srv, key, &bytes);
}

fn count_sent(srv: &mut Server, msg: &Message, len: usize) {
    let s = &mut st(srv).bus.stats;
    let ty = msg.msg_type() as usize;
    if ty < s.sent.len() {
        s.sent[ty] += 1;
    }
    match msg.body {
        Body::Publish(_) | Body::PublishShard(_) => s.pubsub_bytes_sent += len as u64,
        Body::Module(_) => s.module_bytes_sent += len as u64,
        _ => {}
    }
}

/// Queues `body` (with [`header`]) on the outbound link of `node`, if it has one.
pub fn send(srv: &mut Server, node: NodeId, body: Body) {
    let header = header(srv);
    send_message(srv, node, Message { header, body });
}

/// Queues `body` on the outbound link of every node that has one and is not in handshake.
pub fn broadcast(srv: &mut Server, body: Body) {
    let header = header(srv);
    broadcast_message(srv, &Message { header, body });
}

fn broadcast_message(srv: &mut Server, msg: &Message) {
    let keys: Vec<usize> = st(srv)
        .nodes
        .iter()
        .filter(|(id, n)| *id != MYSELF && n.flags & (nflags::HANDSHAKE | nflags::NOADDR) == 0)
        .filter_map(|(_, n)| n.link)
        .collect();
    if keys.is_empty() {
        return;
    }
    let bytes = bus::encode(msg);
    for k in keys {
        count_sent(srv, msg, bytes.len());
        link::queue(srv, k, &bytes);
    }
}

/// Queues a prebuilt message (custom header) on the outbound link of `node`.
pub fn send_message(srv: &mut Server, node: NodeId, msg: Message) {
    let Some(key) = st(srv).nodes.get(node).and_then(|n| n.link) else {
        return;
    };
    queue_msg(srv, key, &msg);
}

/// Which nodes a PONG broadcast reaches (upstream's `CLUSTER_BROADCAST_ALL` /
/// `CLUSTER_BROADCAST_LOCAL_REPLICAS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PongTarget {
    All,
    LocalReplicas,
}

/// Sends a PONG with full gossip and extensions to the target set (used after a failover to
/// announce the new configuration).
pub fn broadcast_pong(srv: &mut Server, target: PongTarget) {
    let t = &st(srv).nodes;
    let me = t.myself();
    let my_primary = if me.is_replica() {
        me.replicaof
    } else {
        Some(MYSELF)
    };
    let keys: Vec<usize> = t
        .iter()
        .filter(|(id, n)| *id != MYSELF && n.flags & (nflags::HANDSHAKE | nflags::NOADDR) == 0)
        .filter(|(id, n)| {
            target == PongTarget::All
                || (n.is_replica() && n.replicaof.is_some() && n.replicaof == my_primary && {
                    let _ = id;
                    true
                })
        })
        .filter_map(|(_, n)| n.link)
        .collect();
    for k in keys {
        send_ping(srv, k, bus::TYPE_PONG);
    }
}

/// One gossip entry about `n`.
fn gossip_entry(n: &Node) -> Gossip {
    Gossip {
        nodename: name_bytes(&n.name),
        ping_sent: (n.ping_sent / 1000) as u32,
        pong_received: (n.pong_received / 1000) as u32,
        ip: ip_field(&n.ip),
        port: n.tcp_port,
        cport: n.cport,
        flags: n.flags & !nflags::MYSELF,
        pport: 0,
        notused1: 0,
    }
}

/// Upstream's `clusterSendPing`: a PING, PONG or MEET on link `key`, with gossip about
/// some random nodes plus every PFAIL node, and the ping extensions when the receiver
/// takes them.
pub fn send_ping(srv: &mut Server, key: usize, ty: u16) {
    let now = crate::util::mstime();
    let mut header = header(srv);
    let st = st(srv);
    let Some(l) = st.bus.links.get(key) else {
        return;
    };
    let target = l.node;
    if let (Some(id), true) = (target, ty == bus::TYPE_PING) {
        if let Some(n) = st.nodes.get_mut(id) {
            n.ping_sent = now;
        }
    }
    let t = &st.nodes;
    let known = t.len();
    let fresh = known.saturating_sub(2);
    let wanted = (known / 10).max(3).min(fresh);
    let ids: Vec<NodeId> = t.iter().map(|(id, _)| id).collect();
    let mut picked: Vec<NodeId> = Vec::new();
    let mut tries = wanted * 3;
    while !ids.is_empty() && picked.len() < wanted && tries > 0 {
        tries -= 1;
        let id = ids[(crate::util::random_u64() % ids.len() as u64) as usize];
        let Some(n) = t.get(id) else { continue };
        if id == MYSELF
            || Some(id) == target
            || n.flags & nflags::PFAIL != 0
            || n.flags & (nflags::HANDSHAKE | nflags::NOADDR) != 0
            || (n.link.is_none() && n.slots.count() == 0)
            || picked.contains(&id)
        {
            continue;
        }
        picked.push(id);
    }
    for (id, n) in t.iter() {
        if n.flags & nflags::PFAIL != 0
            && n.flags & (nflags::HANDSHAKE | nflags::NOADDR) == 0
            && id != MYSELF
        {
            picked.push(id);
        }
    }
    let gossip: Vec<Gossip> = picked
        .iter()
        .filter_map(|id| t.get(*id))
        .map(gossip_entry)
        .collect();
    let with_ext = match target.and_then(|id| t.get(id)) {
        None => true,
        Some(n) => n.flags & EXT_SUPPORTED != 0,
    };
    let mut exts = Vec::new();
    if with_ext {
        let me = t.myself();
        if !me.hostname.is_empty() {
            exts.push(Ext::hostname(me.hostname.as_bytes()));
        }
        if !me.human_nodename.is_empty() {
            exts.push(Ext::human_nodename(me.human_nodename.as_bytes()));
        }
        if !me.client_ipv4.is_empty() {
            exts.push(Ext::client_ipv4(me.client_ipv4.as_bytes()));
        }
        if !me.client_ipv6.is_empty() {
            exts.push(Ext::client_ipv6(me.client_ipv6.as_bytes()));
        }
        if me.client_tcp_port != 0 {
            exts.push(Ext::client_tcp_port(me.client_tcp_port));
        }
        if me.client_tls_port != 0 {
            exts.push(Ext::client_tls_port(me.client_tls_port));
        }
        if !me.availability_zone.is_empty() {
            exts.push(Ext::availability_zone(me.availability_zone.as_bytes()));
        }
        let unix = now / 1000;
        for (name, exp) in &st.bus.blacklist {
            let ttl = exp / 1000 - unix;
            if ttl > 0 {
                exts.push(Ext::forgotten_node(&name_bytes(name), ttl as u64));
            }
        }
        exts.push(Ext::shard_id(&name_bytes(&me.shard_id)));
    }
    header.mflags[0] |= bus::MFLAG0_EXT_DATA;
    let p = Ping { gossip, exts };
    let body = match ty {
        bus::TYPE_PONG => Body::Pong(p),
        bus::TYPE_MEET => Body::Meet(p),
        _ => Body::Ping(p),
    };
    queue_msg(srv, key, &Message { header, body });
}

/// A frame read from link `key`: counted, validated, processed.
pub fn process_frame(srv: &mut Server, key: usize, bytes: &[u8]) {
    let ty = u16::from_be_bytes([bytes[12], bytes[13]]) & !bus::TYPE_LIGHT;
    let st = st(srv);
    if (ty as usize) < st.bus.stats.received.len() {
        st.bus.stats.received[ty as usize] += 1;
    }
    if ty == bus::TYPE_PUBLISH || ty == bus::TYPE_PUBLISHSHARD {
        st.bus.stats.pubsub_bytes_received += bytes.len() as u64;
    } else if ty == bus::TYPE_MODULE {
        st.bus.stats.module_bytes_received += bytes.len() as u64;
    }
    let Some(l) = st.bus.links.get(key) else {
        return;
    };
    let has_node = l.node.is_some_and(|n| !in_handshake(st, n));
    match bus::decode(bytes) {
        Ok(msg) => process_packet(srv, key, msg),
        Err(e) => {
            if let bus::BusError::BadVersion { .. } = e {
                debug!("{}", e);
            } else if e.closes_link(has_node) {
                warn!("{} (from {}); closing the link", e, l.peer_text());
            } else {
                warn!("{}", e);
            }
            if e.closes_link(has_node) {
                link::free_link(srv, key);
            }
        }
    }
}

/// Upstream's `clusterProcessPacket` for a valid message.
fn process_packet(srv: &mut Server, key: usize, msg: Message) {
    let now = crate::util::mstime();
    let ty = msg.msg_type();
    let h = &msg.header;
    let st = st(srv);
    let Some(l) = st.bus.links.get(key) else {
        return;
    };
    let (link_node, inbound) = (l.node, l.inbound);
    // The sender: the link's node, or a lookup of the name (binding an inbound link).
    let sender = match link_node {
        Some(n) if !in_handshake(st, n) => Some(n),
        _ => {
            let s = st.nodes.lookup(&h.sender).filter(|id| *id != MYSELF);
            if let (Some(s), None) = (s, link_node) {
                link::set_inbound(srv, s, key);
            }
            s
        }
    };
    let st = self::st(srv);
    let claims_primary = h.claims_primary();
    let was_replica = sender
        .and_then(|s| st.nodes.get(s))
        .is_some_and(|n| n.is_replica());
    let was_primary = sender
        .and_then(|s| st.nodes.get(s))
        .is_some_and(|n| n.is_primary());
    if let Some(n) = sender.and_then(|s| st.nodes.get_mut(s)) {
        if h.has_ext_data() {
            n.flags |= EXT_SUPPORTED;
        }
        n.data_received = now;
    }
    let claimed_ce = h.config_epoch;
    if let Some(s) = sender.filter(|s| !in_handshake(st, *s)) {
        if h.current_epoch > st.nodes.current_epoch {
            st.nodes.current_epoch = h.current_epoch;
            st.bus.todo_save = true;
        }
        let Some(n) = st.nodes.get_mut(s) else {
            vanished("processing a message from it");
            return;
        };
        if claims_primary && claimed_ce > n.config_epoch {
            n.config_epoch = claimed_ce;
            st.bus.todo_save = true;
            st.bus.todo_fsync = true;
        }
        n.repl_offset = h.offset as i64;
    }

    if ty == bus::TYPE_PING || ty == bus::TYPE_MEET {
        let announced = srv.config.get("cluster-announce-ip").unwrap_or_default();
        let my_ip_empty = self::st(srv).nodes.myself().ip.is_empty();
        if (ty == bus::TYPE_MEET || my_ip_empty) && announced.is_empty() {
            if let Some(ip) = link::local_ip(srv, key) {
                let me = self::st(srv).nodes.myself_mut();
                if me.ip != ip {
                    me.ip = ip;
                    info!("IP address for this node updated to {}", me.ip);
                    todo_save(srv, false);
                }
            }
        }
        if ty == bus::TYPE_MEET {
            match sender {
                None => {
                    if link_node.is_none() {
                        let st = self::st(srv);
                        let peer = st
                            .bus
                            .links
                            .get(key)
                            .map(|l| l.peer_ip())
                            .unwrap_or_default();
                        let ip = match h.myip() {
                            b"" => peer,
                            x => String::from_utf8_lossy(x).into_owned(),
                        };
                        let mut flags = nflags::HANDSHAKE;
                        if h.has_ext_data() {
                            flags |= EXT_SUPPORTED;
                        }
                        let id = st.nodes.add(Node {
                            name: crate::util::random_hex40(),
                            shard_id: crate::util::random_hex40(),
                            flags,
                            ip,
                            tcp_port: h.port,
                            cport: h.cport,
                            ctime: now,
                            inbound_freed: now,
                            ..Default::default()
                        });
                        link::set_inbound(srv, id, key);
                        todo_save(srv, false);
                    }
                    process_gossip(srv, None, &msg);
                }
                Some(s) => {
                    let hs = handshake_timeout(node_timeout(srv));
                    let st = self::st(srv);
                    let Some(n) = st.nodes.get(s) else {
                        vanished("processing a MEET from it");
                        return;
                    };
                    if let Some(out) = n.link.filter(|_| now - n.ctime > hs) {
                        if out != key {
                            info!(
                                "Freeing outbound link to node {} ({}) after receiving a MEET \
                                 packet from this known node",
                                n.name, n.human_nodename
                            );
                            link::free_link(srv, out);
                        }
                    }
                }
            }
        }
        send_ping(srv, key, bus::TYPE_PONG);
    }

    if matches!(ty, bus::TYPE_PING | bus::TYPE_PONG | bus::TYPE_MEET) {
        let st = self::st(srv);
        if let Some(n) = sender.and_then(|s| st.nodes.get_mut(s)) {
            if n.flags & nflags::MEET != 0 {
                n.flags &= !nflags::MEET;
                info!(
                    "Successfully completed handshake with {} ({})",
                    n.name, n.human_nodename
                );
            }
        }
        if !inbound {
            let Some(ln) = link_node else {
                return;
            };
            if in_handshake(st, ln) {
                if let Some(s) = sender {
                    debug!(
                        "Handshake: we already know node {} ({}), updating the address if needed.",
                        node_name(st, s),
                        human(st, s)
                    );
                    if update_address(srv, s, key, &msg.header) {
                        todo_save(srv, false);
                    }
                    del_node(srv, ln);
                    return;
                }
                rename_node(st, ln, &name_str(&h.sender));
                if let Some(n) = st.nodes.get_mut(ln) {
                    n.flags &= !nflags::HANDSHAKE;
                    n.flags |= h.flags & (nflags::PRIMARY | nflags::REPLICA);
                    debug!("Handshake with node {} completed.", n.name);
                }
                todo_save(srv, false);
            } else if st
                .nodes
                .get(ln)
                .is_some_and(|n| name_bytes(&n.name) != h.sender)
            {
                let n = st.nodes.get_mut(ln).expect("link node");
                info!(
                    "PONG contains mismatching sender ID. About node {} ({}) in shard {} added \
                     {} ms ago, having flags {}",
                    n.name,
                    n.human_nodename,
                    n.shard_id,
                    now - n.ctime,
                    n.flags
                );
                n.flags |= nflags::NOADDR;
                n.ip.clear();
                n.tcp_port = 0;
                n.tls_port = 0;
                n.cport = 0;
                let failed = n.flags & nflags::FAIL != 0;
                let name = name_bytes(&n.name);
                if !failed {
                    n.flags |= nflags::FAIL;
                }
                link::free_link(srv, key);
                if !failed {
                    broadcast(srv, Body::Fail(name));
                }
                todo_save(srv, false);
                return;
            }
        }
        let st = self::st(srv);
        if let Some(n) = sender.and_then(|s| st.nodes.get_mut(s)) {
            n.flags = (n.flags & !nflags::NOFAILOVER) | (h.flags & nflags::NOFAILOVER);
        }
        if let Some(s) = sender.filter(|s| ty == bus::TYPE_PING && !in_handshake(st, *s)) {
            if update_address(srv, s, key, &msg.header) {
                todo_save(srv, false);
            }
        }
        let st = self::st(srv);
        if !inbound && ty == bus::TYPE_PONG {
            if let Some(n) = link_node.and_then(|id| st.nodes.get_mut(id)) {
                n.pong_received = now;
                n.ping_sent = 0;
                if n.flags & nflags::PFAIL != 0 {
                    n.flags &= !nflags::PFAIL;
                    st.bus.todo_save = true;
                }
            }
        }
        if let Some(s) = sender {
            role_change(srv, s, &msg.header, claims_primary, was_primary);
            let st = self::st(srv);
            let differs = st
                .nodes
                .get(s)
                .is_some_and(|n| n.slots.0 != msg.header.myslots);
            if claims_primary && (was_replica || differs) {
                update_slots_config_with(srv, s, claimed_ce, &msg.header.myslots);
                send_update_if_stale(srv, s, claimed_ce, &msg.header.myslots);
            }
            let st = self::st(srv);
            let me = st.nodes.myself();
            let Some(sn) = st.nodes.get(s) else {
                vanished("checking its configEpoch");
                return;
            };
            if me.is_primary() && sn.is_primary() && claimed_ce == me.config_epoch {
                handle_epoch_collision(srv, s);
            }
            process_gossip(srv, Some(s), &msg);
            process_extensions(srv, s, &msg);
        }
    } else {
        match &msg.body {
            Body::Fail(name) => match sender {
                Some(s) => failover::on_fail(srv, s, name),
                None => info!(
                    "Ignoring FAIL message from unknown node {} about {}",
                    name_str(&h.sender),
                    name_str(name)
                ),
            },
            Body::Publish(p) | Body::PublishShard(p) => {
                if sender.is_none() {
                    return;
                }
                let kind = if ty == bus::TYPE_PUBLISH {
                    crate::pubsub::Kind::Global
                } else {
                    crate::pubsub::Kind::Shard
                };
                crate::pubsub::publish(srv, &p.channel, &p.message, kind);
            }
            Body::FailoverAuthRequest => {
                if let Some(s) = sender {
                    failover::on_auth_request(srv, s, &msg);
                }
            }
            Body::FailoverAuthAck => {
                if let Some(s) = sender {
                    failover::on_auth_ack(srv, s, &msg);
                }
            }
            Body::MfStart => {
                if let Some(s) = sender {
                    failover::on_mfstart(srv, s, &msg);
                }
            }
            Body::Update(u) => {
                let Some(_) = sender else {
                    return;
                };
                let st = self::st(srv);
                let Some(id) = st.nodes.lookup(&u.nodename) else {
                    return;
                };
                if st
                    .nodes
                    .get(id)
                    .is_none_or(|n| n.config_epoch >= u.config_epoch)
                {
                    return;
                }
                if st.nodes.get(id).is_some_and(|n| n.is_replica()) {
                    set_node_as_primary(st, id);
                }
                if let Some(n) = st.nodes.get_mut(id) {
                    n.config_epoch = u.config_epoch;
                }
                todo_save(srv, true);
                update_slots_config_with(srv, id, u.config_epoch, &u.slots);
            }
            Body::Module(_) => {}
            _ => warn!("Received unknown packet type: {}", ty),
        }
    }
    if let Some(s) = sender {
        if srv
            .cluster
            .as_deref()
            .is_some_and(|st| st.nodes.get(s).is_some())
        {
            failover::on_message(srv, s, &msg);
        }
    }
}

/// Upstream's `nodeUpdateAddressIfNeeded`: takes the address a node announces (or the
/// peer address of the link) unless the link is the node's own outbound link.
fn update_address(srv: &mut Server, id: NodeId, key: usize, h: &Header) -> bool {
    let st = st(srv);
    let Some(n) = st.nodes.get(id) else {
        return false;
    };
    if n.link == Some(key) || id == MYSELF {
        return false;
    }
    let ip = match h.myip() {
        b"" => st
            .bus
            .links
            .get(key)
            .map(|l| l.peer_ip())
            .unwrap_or_default(),
        x => String::from_utf8_lossy(x).into_owned(),
    };
    if n.tcp_port == h.port && n.cport == h.cport && n.ip == ip {
        return false;
    }
    let out = n.link;
    let n = st.nodes.get_mut(id).expect("node");
    n.ip = ip;
    n.tcp_port = h.port;
    n.cport = h.cport;
    n.flags &= !nflags::NOADDR;
    info!(
        "Address updated for node {} ({}), now {}:{}",
        n.name, n.human_nodename, n.ip, n.tcp_port
    );
    if let Some(out) = out {
        link::free_link(srv, out);
    }
    true
}

fn rename_node(st: &mut ClusterState, id: NodeId, new: &str) {
    let Some(n) = st.nodes.get_mut(id) else {
        return;
    };
    let old = std::mem::replace(&mut n.name, new.to_string());
    debug!("Renaming node {} into {}", old, new);
    st.nodes.by_name.remove(&old);
    st.nodes.by_name.insert(new.to_string(), id);
}

/// Removes a node (not myself) and frees its links (upstream's `clusterDelNode`).
pub fn del_node(srv: &mut Server, id: NodeId) {
    if id == MYSELF {
        return;
    }
    let st = st(srv);
    let Some(n) = st.nodes.get(id) else {
        return;
    };
    let links = [n.link, n.inbound_link];
    let name = n.name.clone();
    st.failover.forget(&name);
    for k in links.into_iter().flatten() {
        link::free_link(srv, k);
    }
    let st = self::st(srv);
    // Links of other nodes never point here, but unbound inbound links could.
    for (_, l) in st.bus.links.iter_mut() {
        if l.node == Some(id) {
            l.node = None;
        }
    }
    // Its failure reports and the reports it made go with it (clusterDelNode).
    if let Some(name) = st.nodes.get(id).map(|n| n.name.clone()) {
        st.failover.forget(&name);
    }
    st.nodes.remove(id);
    st.bus.todo_save = true;
}

fn set_node_as_primary(st: &mut ClusterState, id: NodeId) {
    let Some(n) = st.nodes.get(id) else {
        return;
    };
    if n.is_primary() {
        return;
    }
    let had_primary = n.replicaof.is_some();
    if let Some(p) = n.replicaof.and_then(|p| st.nodes.get_mut(p)) {
        p.remove_replica(id);
    }
    let n = st.nodes.get_mut(id).expect("node");
    if had_primary && id != MYSELF {
        n.flags |= nflags::MIGRATE_TO;
    }
    n.flags &= !nflags::REPLICA;
    n.flags |= nflags::PRIMARY;
    n.replicaof = None;
    st.bus.todo_save = true;
}

/// Role switches announced in a PING/PONG/MEET header (upstream's "Check for role switch").
fn role_change(srv: &mut Server, s: NodeId, h: &Header, claims_primary: bool, was_primary: bool) {
    let st = st(srv);
    if claims_primary {
        set_node_as_primary(st, s);
        return;
    }
    let claimed = st.nodes.lookup(&h.replicaof);
    if was_primary {
        let same = claimed.is_some_and(|c| same_shard(st, c, s));
        if let (Some(c), true) = (claimed, same) {
            let sce = st.nodes.get(s).map_or(0, |n| n.config_epoch);
            if sce > h.config_epoch {
                info!(
                    "Ignore stale message from {} in shard {}; gossip config epoch: {}, current \
                     config epoch: {}",
                    node_name(st, s),
                    st.nodes
                        .get(s)
                        .map(|n| n.shard_id.clone())
                        .unwrap_or_default(),
                    h.config_epoch,
                    sce
                );
            } else {
                set_node_as_primary(st, c);
                if let Some(cn) = st.nodes.get_mut(c) {
                    cn.config_epoch = h.config_epoch;
                }
            }
        } else {
            let slots: Vec<u16> = st
                .nodes
                .get(s)
                .map(|n| n.slots.ranges())
                .unwrap_or_default()
                .into_iter()
                .flat_map(|(a, b)| a..=b)
                .collect();
            for sl in &slots {
                st.nodes.del_slot(*sl);
            }
            info!(
                "Node {} is no longer primary of its shard; removed all {} slot(s) it used to own",
                node_name(st, s),
                slots.len()
            );
        }
        let Some(n) = st.nodes.get_mut(s) else {
            vanished("turning it into a replica");
            return;
        };
        n.flags &= !(nflags::PRIMARY | nflags::MIGRATE_TO);
        n.flags |= nflags::REPLICA;
        st.bus.todo_save = true;
    }
    let Some(c) = claimed else {
        return;
    };
    if c == s || st.nodes.get(s).and_then(|n| n.replicaof) == Some(c) {
        return;
    }
    if let Some(old) = st.nodes.get(s).and_then(|n| n.replicaof) {
        if let Some(p) = st.nodes.get_mut(old) {
            p.remove_replica(s);
        }
    }
    let shard = st
        .nodes
        .get(c)
        .map(|n| n.shard_id.clone())
        .unwrap_or_default();
    if let Some(p) = st.nodes.get_mut(c) {
        p.add_replica(s);
    }
    let cname = node_name(st, c);
    let Some(n) = st.nodes.get_mut(s) else {
        vanished("turning it into a replica");
        return;
    };
    n.replicaof = Some(c);
    info!(
        "Node {} ({}) is now a replica of node {} in shard {}",
        n.name, n.human_nodename, cname, shard
    );
    n.shard_id = shard;
    st.bus.todo_save = true;
}

fn same_shard(st: &ClusterState, a: NodeId, b: NodeId) -> bool {
    match (st.nodes.get(a), st.nodes.get(b)) {
        (Some(x), Some(y)) => x.shard_id == y.shard_id,
        _ => false,
    }
}

/// Upstream's `clusterUpdateSlotsConfigWith`: `sender` claims `slots` with `ce`.
fn update_slots_config_with(srv: &mut Server, sender: NodeId, ce: u64, slots: &bus::SlotBits) {
    if sender == MYSELF {
        info!("Discarding UPDATE message about myself.");
        return;
    }
    let Server {
        cluster,
        dbs,
        config,
        ..
    } = srv;
    let st = cluster.as_deref_mut().expect("cluster mode");
    let me_primary = st.nodes.myself().is_primary();
    let cur_primary = if me_primary {
        Some(MYSELF)
    } else {
        st.nodes.myself().replicaof
    };
    let same_as_me = same_shard(st, sender, MYSELF);
    let mut new_primary = None;
    let mut migrated_our = 0usize;
    let mut dirty: Vec<u16> = Vec::new();
    let mut changed = false;
    for j in 0..CLUSTER_SLOTS {
        let slot = j as u16;
        let owner = st.nodes.owner[j];
        if bus::slot_is_set(slots, j) {
            if owner == Some(sender) {
                st.bus.not_claiming.clear(slot);
                continue;
            }
            let unclaimed = owner.is_none() || st.bus.not_claiming.test(slot);
            let owner_ce = owner
                .and_then(|o| st.nodes.get(o))
                .map_or(0, |n| n.config_epoch);
            if !(unclaimed || owner_ce < ce) {
                continue;
            }
            if owner == Some(MYSELF) && dbs.iter().any(|db| db.kv.count_keys_in_slot(slot) > 0) {
                dirty.push(slot);
            }
            if owner.is_some() && owner == cur_primary {
                new_primary = Some(sender);
                migrated_our += 1;
            }
            if st.nodes.migrating.contains_key(&slot) && !same_as_me {
                st.nodes.migrating.remove(&slot);
            }
            if let Some(from) = st.nodes.importing.get(&slot).copied() {
                if from != sender {
                    if same_shard(st, sender, from) {
                        st.nodes.importing.insert(slot, sender);
                    } else {
                        st.nodes.importing.remove(&slot);
                    }
                }
            }
            st.nodes.del_slot(slot);
            st.nodes.add_slot(slot, sender);
            st.bus.not_claiming.clear(slot);
            changed = true;
        } else {
            if owner == Some(sender) {
                st.bus.not_claiming.set(slot);
            }
            if let Some(m) = st.nodes.migrating.get(&slot).copied() {
                let mn = st.nodes.get(m);
                if m != sender
                    && mn.is_some_and(|n| n.config_epoch < ce || n.is_replica())
                    && same_shard(st, m, sender)
                {
                    st.nodes.migrating.insert(slot, sender);
                    changed = true;
                }
            }
            if me_primary && st.nodes.importing.get(&slot) == Some(&sender) {
                st.nodes.importing.remove(&slot);
                if owner != Some(MYSELF) {
                    st.nodes.del_slot(slot);
                    st.nodes.add_slot(slot, MYSELF);
                    bump_epoch_without_consensus(st);
                }
                changed = true;
            }
        }
    }
    if changed {
        st.bus.todo_save = true;
        st.bus.todo_fsync = true;
    }
    let sender_slots = st.nodes.get(sender).map_or(0, |n| n.slots.count());
    let my_slots = st.nodes.myself().slots.count();
    if new_primary.is_none()
        && st.nodes.myself().replicaof != Some(sender)
        && sender_slots == 0
        && my_slots == 0
        && st.nodes.node_epoch(st.nodes.myself()) < ce
        && same_as_me
    {
        new_primary = Some(sender);
    }
    let cur_slots = cur_primary
        .and_then(|p| st.nodes.get(p))
        .map_or(0, |n| n.slots.count());
    let allow_migration = config.get("cluster-allow-replica-migration").as_deref() != Some("no");
    let mut del = false;
    let mut become_replica = false;
    if new_primary.is_some() && cur_slots == 0 {
        if allow_migration || same_as_me {
            info!(
                "Configuration change detected. Reconfiguring myself as a replica of node {} in \
                 shard {}",
                node_name(st, sender),
                st.nodes
                    .get(sender)
                    .map(|n| n.shard_id.clone())
                    .unwrap_or_default()
            );
            become_replica = true;
        } else if me_primary && sender_slots >= migrated_our && !same_as_me {
            info!(
                "My last slot was migrated to node {} in shard {}. I am now an empty primary.",
                node_name(st, sender),
                st.nodes
                    .get(sender)
                    .map(|n| n.shard_id.clone())
                    .unwrap_or_default()
            );
            del = true;
        }
    } else if !dirty.is_empty() {
        del = true;
    }
    if del {
        delete_dirty(srv, &dirty);
    }
    if become_replica {
        failover::set_primary(srv, sender, !same_as_me);
        todo_save(srv, true);
        broadcast_pong(srv, PongTarget::All);
    }
}

/// Deletes the keys of slots this node lost while still holding keys.
fn delete_dirty(srv: &mut Server, dirty: &[u16]) {
    for s in dirty {
        let name = st(srv).nodes.myself().name.clone();
        info!("Deleting keys in dirty slot {} on node {}", s, name);
        delete_keys_in_slot(srv, *s);
    }
}

fn delete_keys_in_slot(srv: &mut Server, slot: u16) {
    for db in 0..srv.dbs.len() {
        let mut keys = Vec::new();
        let kv = &srv.dbs[db].kv;
        kv.keys_in_slot(slot, usize::MAX, &mut |k| keys.push(k.to_vec()));
        for k in keys {
            crate::db::db_delete(srv, db, &k);
        }
    }
}

fn bump_epoch_without_consensus(st: &mut ClusterState) {
    if let Some(e) = st.nodes.bump_epoch_without_consensus() {
        st.bus.todo_save = true;
        st.bus.todo_fsync = true;
        info!("New configEpoch set to {}", e);
    }
}

/// After a sender claimed slots: if one of them is owned by a node with a greater
/// configEpoch, tell the sender with one UPDATE about that owner.
fn send_update_if_stale(srv: &mut Server, s: NodeId, ce: u64, slots: &bus::SlotBits) {
    let st = st(srv);
    for j in 0..CLUSTER_SLOTS {
        if !bus::slot_is_set(slots, j) {
            continue;
        }
        let Some(o) = st.nodes.owner[j] else {
            continue;
        };
        if o == s || st.bus.not_claiming.test(j as u16) {
            continue;
        }
        let Some(on) = st.nodes.get(o) else {
            continue;
        };
        if on.config_epoch > ce {
            debug!(
                "Node {} has old slots configuration, sending an UPDATE message about {}",
                node_name(st, s),
                on.name
            );
            let mut bits = on.slots.0;
            for (b, nc) in bits.iter_mut().zip(st.bus.not_claiming.0.iter()) {
                *b &= !nc;
            }
            let body = Body::Update(bus::Update {
                config_epoch: on.config_epoch,
                nodename: name_bytes(&on.name),
                slots: Box::new(bits),
            });
            send(srv, s, body);
            return;
        }
    }
}

/// Upstream's `clusterHandleConfigEpochCollision`: of two primaries with the same
/// configEpoch, the one with the smaller name takes a new one.
fn handle_epoch_collision(srv: &mut Server, s: NodeId) {
    let st = st(srv);
    let (Some(sn), me) = (st.nodes.get(s), st.nodes.myself()) else {
        return;
    };
    if sn.config_epoch != me.config_epoch || !sn.is_primary() || !me.is_primary() {
        return;
    }
    if sn.name.as_bytes() <= me.name.as_bytes() {
        return;
    }
    st.nodes.current_epoch += 1;
    let e = st.nodes.current_epoch;
    st.nodes.myself_mut().config_epoch = e;
    st.save_config_or_die();
    let Some(sn) = st.nodes.get(s) else {
        vanished("handling a configEpoch collision");
        return;
    };
    info!(
        "WARNING: configEpoch collision with node {} ({}). configEpoch set to {}",
        sn.name, sn.human_nodename, e
    );
}

/// Upstream's `clusterProcessGossipSection`.
fn process_gossip(srv: &mut Server, sender: Option<NodeId>, msg: &Message) {
    let Some(p) = msg.body.ping() else {
        return;
    };
    if p.gossip.is_empty() {
        return;
    }
    if !p.gossip_names_valid() {
        warn!("Received a gossip section with an invalid node name; section dropped");
        return;
    }
    let now = crate::util::mstime();
    for g in &p.gossip {
        let st = self::st(srv);
        match st.nodes.lookup(&g.nodename) {
            Some(id) => {
                if id == MYSELF {
                    continue;
                }
                if let Some(s) = sender {
                    failover::on_gossip_flags(srv, s, id, g.flags);
                }
                let reports = failover::count_failure_reports(srv, id);
                let st = self::st(srv);
                let Some(n) = st.nodes.get_mut(id) else {
                    continue;
                };
                let fail = nflags::PFAIL | nflags::FAIL;
                if g.flags & fail == 0 && n.ping_sent == 0 && reports == 0 {
                    let pr = g.pong_received as i64 * 1000;
                    if pr <= now + 500 && pr > n.pong_received {
                        n.pong_received = pr;
                    }
                }
                let gip = String::from_utf8_lossy(g.ip()).into_owned();
                if n.flags & fail != 0
                    && g.flags & (nflags::NOADDR | fail) == 0
                    && (n.ip != gip || n.tcp_port != g.port || n.cport != g.cport)
                {
                    n.ip = gip;
                    n.tcp_port = g.port;
                    n.cport = g.cport;
                    n.flags &= !nflags::NOADDR;
                    if let Some(k) = n.link {
                        link::free_link(srv, k);
                    }
                }
            }
            None => {
                let name = name_str(&g.nodename);
                if sender.is_none() || g.flags & nflags::NOADDR != 0 || blacklisted(st, &name, now)
                {
                    continue;
                }
                st.nodes.add(Node {
                    name,
                    shard_id: crate::util::random_hex40(),
                    flags: g.flags & !(nflags::MYSELF | nflags::HANDSHAKE | nflags::MEET),
                    ip: String::from_utf8_lossy(g.ip()).into_owned(),
                    tcp_port: g.port,
                    cport: g.cport,
                    ctime: now,
                    inbound_freed: now,
                    ..Default::default()
                });
                st.bus.todo_save = true;
            }
        }
    }
}

fn blacklisted(st: &mut ClusterState, name: &str, now: i64) -> bool {
    st.bus.blacklist.retain(|_, exp| *exp > now);
    st.bus.blacklist.contains_key(name)
}

/// Adds `name` to the FORGET blacklist for `ttl_ms`.
pub fn blacklist_add(srv: &mut Server, name: &str, ttl_ms: i64) {
    let now = crate::util::mstime();
    let st = st(srv);
    st.bus.blacklist.retain(|_, exp| *exp > now);
    st.bus.blacklist.insert(name.to_string(), now + ttl_ms);
}

/// Whether `name` is in the FORGET blacklist.
pub fn is_blacklisted(srv: &mut Server, name: &str) -> bool {
    let now = crate::util::mstime();
    blacklisted(st(srv), name, now)
}

/// Upstream's `clusterProcessPingExt`.
fn process_extensions(srv: &mut Server, s: NodeId, msg: &Message) {
    let Some(p) = msg.body.ping() else {
        return;
    };
    let now = crate::util::mstime();
    let mut hostname = None;
    let mut human_name = None;
    let mut ipv4 = None;
    let mut ipv6 = None;
    let mut tcp_port = 0;
    let mut tls_port = 0;
    let mut shard = None;
    let mut zone = None;
    let mut forget = Vec::new();
    for e in &p.exts {
        match e.data() {
            ExtData::Hostname(h) => hostname = Some(name_str(h)),
            ExtData::HumanNodename(h) => human_name = Some(name_str(h)),
            ExtData::ClientIpv4(h) => ipv4 = Some(name_str(h)),
            ExtData::ClientIpv6(h) => ipv6 = Some(name_str(h)),
            ExtData::ClientTcpPort(p) => tcp_port = p,
            ExtData::ClientTlsPort(p) => tls_port = p,
            ExtData::ShardId(id) => shard = Some(name_str(id)),
            ExtData::AvailabilityZone(z) => zone = Some(name_str(z)),
            ExtData::ForgottenNode { name, ttl } => forget.push((name_str(name), ttl)),
            ExtData::Unknown(t) => debug!("Received unknown extension type {}", t),
        }
    }
    for (name, ttl) in forget {
        let st = st(srv);
        let Some(id) = st.nodes.lookup(name.as_bytes()) else {
            continue;
        };
        let me = st.nodes.myself();
        if id == MYSELF || (me.is_replica() && me.replicaof == Some(id)) {
            continue;
        }
        info!(
            "Ignoring node {} (forgotten by {}) for {} seconds",
            name,
            node_name(st, s),
            ttl
        );
        st.bus
            .blacklist
            .insert(name.clone(), now + (ttl.min(1 << 40) as i64) * 1000);
        del_node(srv, id);
    }
    let st = st(srv);
    let Some(n) = st.nodes.get_mut(s) else {
        return;
    };
    let mut changed = false;
    let hn = hostname.unwrap_or_default();
    if n.hostname != hn {
        n.hostname = hn;
        changed = true;
    }
    let hu = human_name.unwrap_or_default();
    if n.human_nodename != hu {
        n.human_nodename = hu;
        changed = true;
    }
    let v4 = ipv4.unwrap_or_default();
    if n.client_ipv4 != v4 {
        n.client_ipv4 = v4;
        changed = true;
    }
    let v6 = ipv6.unwrap_or_default();
    if n.client_ipv6 != v6 {
        n.client_ipv6 = v6;
        changed = true;
    }
    if (n.client_tcp_port, n.client_tls_port) != (tcp_port, tls_port) {
        (n.client_tcp_port, n.client_tls_port) = (tcp_port, tls_port);
        changed = true;
    }
    // Absent: the node has none (any more).
    let az = zone.unwrap_or_default();
    if n.availability_zone != az {
        n.availability_zone = az;
        changed = true;
    }
    let primary = n.replicaof.filter(|_| n.is_replica());
    let shard = shard.or_else(|| {
        primary
            .and_then(|p| st.nodes.get(p))
            .map(|p| p.shard_id.clone())
    });
    if let Some(sh) = shard {
        let Some(n) = st.nodes.get_mut(s) else {
            vanished("reading its shard id extension");
            return;
        };
        if n.shard_id != sh {
            n.shard_id = sh.clone();
            changed = true;
            // A primary's replicas follow it.
            let reps = n.replicas.clone();
            for r in reps {
                if let Some(rn) = st.nodes.get_mut(r) {
                    rn.shard_id = sh.clone();
                }
            }
            // My primary moved: so do I.
            let me = st.nodes.myself();
            if me.is_replica() && me.replicaof == Some(s) {
                st.nodes.myself_mut().shard_id = sh;
            }
        }
    }
    if changed {
        st.bus.todo_save = true;
    }
}

/// CLUSTER MEET (upstream's `clusterStartHandshake`): a HANDSHAKE|MEET node with a random
/// name; the cron connects and sends the MEET. Err when the address is invalid; Ok when a
/// handshake with the same address is already under way.
pub fn start_handshake(srv: &mut Server, ip: &str, port: u16, cport: u16) -> Result<(), ()> {
    let addr: std::net::IpAddr = ip.parse().map_err(|_| ())?;
    if port == 0 || cport == 0 {
        return Err(());
    }
    let ip = addr.to_string();
    let now = crate::util::mstime();
    let st = st(srv);
    let busy = st.nodes.iter().any(|(_, n)| {
        n.flags & nflags::HANDSHAKE != 0 && n.ip == ip && n.tcp_port == port && n.cport == cport
    });
    if busy {
        return Ok(());
    }
    st.nodes.add(Node {
        name: crate::util::random_hex40(),
        shard_id: crate::util::random_hex40(),
        flags: nflags::HANDSHAKE | nflags::MEET,
        ip,
        tcp_port: port,
        cport,
        ctime: now,
        inbound_freed: now,
        ..Default::default()
    });
    Ok(())
}

/// The cluster cron, every 100 ms (upstream's `clusterCron`): handshake timeouts,
/// reconnects, MEETs for nodes that never connected back, PINGs, stuck links; then item
/// E's cron.
pub fn cron(el: &mut EventLoop, srv: &mut Server) {
    if srv.cluster.is_none() {
        return;
    }
    let now = crate::util::mstime();
    // Upstream's clusterUpdateMyselfAnnouncedIps: CONFIG SET of the client IPs applies
    // from the next message.
    let v4 = srv
        .config
        .get("cluster-announce-client-ipv4")
        .unwrap_or_default();
    let v6 = srv
        .config
        .get("cluster-announce-client-ipv6")
        .unwrap_or_default();
    let port = |srv: &Server, k: &str| -> u16 {
        srv.config.get(k).and_then(|p| p.parse().ok()).unwrap_or(0)
    };
    let tcp = port(srv, "cluster-announce-client-port");
    let tls = port(srv, "cluster-announce-client-tls-port");
    // Upstream's clusterUpdateMyselfAvailabilityZone: CONFIG SET availability-zone.
    let az = srv.config.get("availability-zone").unwrap_or_default();
    let me = st(srv).nodes.myself_mut();
    if me.availability_zone != az {
        me.availability_zone = az;
        st(srv).bus.todo_save = true;
    }
    let me = st(srv).nodes.myself_mut();
    if me.client_ipv4 != v4
        || me.client_ipv6 != v6
        || me.client_tcp_port != tcp
        || me.client_tls_port != tls
    {
        me.client_ipv4 = v4;
        me.client_ipv6 = v6;
        me.client_tcp_port = tcp;
        me.client_tls_port = tls;
        st(srv).bus.todo_save = true;
    }
    let nt = node_timeout(srv);
    let hs = handshake_timeout(nt);
    let iteration = {
        let b = &mut st(srv).bus;
        b.iteration += 1;
        b.iteration
    };
    let ids: Vec<NodeId> = st(srv)
        .nodes
        .iter()
        .map(|(id, _)| id)
        .filter(|id| *id != MYSELF)
        .collect();
    for &id in &ids {
        let st = st(srv);
        let Some(n) = st.nodes.get_mut(id) else {
            continue;
        };
        if n.ctime == 0 {
            n.ctime = now;
            n.inbound_freed = now;
        }
        if n.flags & nflags::NOADDR != 0 {
            continue;
        }
        if n.flags & nflags::HANDSHAKE != 0 && now - n.ctime > hs {
            info!("Clusterbus handshake timeout {}:{}", n.ip, n.cport);
            del_node(srv, id);
            continue;
        }
        let normal = n.flags
            & (nflags::HANDSHAKE | nflags::MEET | nflags::PFAIL | nflags::FAIL | nflags::NOADDR)
            == 0;
        if let (Some(out), None, true) = (n.link, n.inbound_link, normal) {
            if now - n.inbound_freed > hs {
                n.flags |= nflags::MEET;
                n.inbound_freed = now;
                info!(
                    "Sending MEET packet to node {} because there is no inbound link for it",
                    n.name
                );
                send_ping(srv, out, bus::TYPE_MEET);
            }
        }
        let st = self::st(srv);
        let Some(n) = st.nodes.get(id) else {
            continue;
        };
        if n.link.is_none() {
            let old_ping = n.ping_sent;
            let meet = n.flags & nflags::MEET != 0;
            if link::connect(el, srv, id) {
                let key = st_link(srv, id);
                if let Some(key) = key {
                    send_ping(srv, key, if meet { bus::TYPE_MEET } else { bus::TYPE_PING });
                }
                if old_ping != 0 {
                    if let Some(n) = self::st(srv).nodes.get_mut(id) {
                        n.ping_sent = old_ping;
                    }
                }
            } else if let Some(n) = self::st(srv).nodes.get_mut(id) {
                if n.ping_sent == 0 {
                    n.ping_sent = now;
                }
            }
        }
    }
    // About once a second: PING the node with the oldest PONG among five random ones.
    if iteration.is_multiple_of(10) {
        let st = st(srv);
        let cands: Vec<NodeId> = st
            .nodes
            .iter()
            .filter(|(id, n)| {
                *id != MYSELF
                    && n.link.is_some()
                    && n.ping_sent == 0
                    && n.flags & (nflags::HANDSHAKE | nflags::NOADDR) == 0
            })
            .map(|(id, _)| id)
            .collect();
        let mut best: Option<(NodeId, i64)> = None;
        if !cands.is_empty() {
            for _ in 0..5 {
                let id = cands[(crate::util::random_u64() % cands.len() as u64) as usize];
                let pr = st.nodes.get(id).map_or(0, |n| n.pong_received);
                if best.is_none_or(|(_, b)| pr < b) {
                    best = Some((id, pr));
                }
            }
        }
        if let Some(key) = best
            .and_then(|(id, _)| st.nodes.get(id))
            .and_then(|n| n.link)
        {
            send_ping(srv, key, bus::TYPE_PING);
        }
    }
    let interval = cfg_i64(srv, "cluster-ping-interval", 0);
    for &id in &ids {
        let st = st(srv);
        let Some(n) = st.nodes.get(id) else {
            continue;
        };
        if n.flags & (nflags::NOADDR | nflags::HANDSHAKE) != 0 {
            continue;
        }
        let Some(key) = n.link else {
            continue;
        };
        let lctime = st.bus.links.get(key).map_or(now, |l| l.ctime);
        if now - lctime > nt
            && n.ping_sent != 0
            && now - n.ping_sent > nt / 2
            && now - n.data_received > nt / 2
        {
            link::free_link(srv, key);
            continue;
        }
        let period = if interval > 0 { interval } else { nt / 2 };
        if n.ping_sent == 0 && now - n.pong_received > period {
            send_ping(srv, key, bus::TYPE_PING);
        }
    }
    failover::cron(srv);
    link::upkeep(el, srv);
}

fn st_link(srv: &mut Server, id: NodeId) -> Option<usize> {
    st(srv).nodes.get(id).and_then(|n| n.link)
}

/// before-sleep: item E's deferred work, the deferred nodes.conf save, then the link upkeep
/// (freed links closed, WRITABLE registered for output left).
pub fn before_sleep(el: &mut EventLoop, srv: &mut Server) {
    if srv.cluster.is_none() {
        return;
    }
    failover::before_sleep(srv);
    let st = st(srv);
    if std::mem::take(&mut st.bus.todo_save) {
        st.bus.todo_fsync = false;
        st.save_config_or_die();
    }
    link::upkeep(el, srv);
}

/// Propagates a PUBLISH (global: to every node) or SPUBLISH (to the nodes of my shard) on
/// the bus (upstream's `clusterPropagatePublish`).
pub fn propagate_publish(srv: &mut Server, channel: &[u8], message: &[u8], shard: bool) {
    let p = Publish {
        channel: channel.to_vec(),
        message: message.to_vec(),
    };
    if !shard {
        broadcast(srv, Body::Publish(p));
        return;
    }
    let st = st(srv);
    let me = st.nodes.myself();
    let primary = if me.is_replica() {
        me.replicaof
    } else {
        Some(MYSELF)
    };
    let Some(primary) = primary else {
        return;
    };
    let mut targets: Vec<NodeId> = st
        .nodes
        .get(primary)
        .map(|p| p.replicas.clone())
        .unwrap_or_default();
    targets.push(primary);
    targets.retain(|id| *id != MYSELF);
    let header = header(srv);
    let msg = Message {
        header,
        body: Body::PublishShard(p),
    };
    for id in targets {
        send_message(srv, id, msg.clone());
    }
}
