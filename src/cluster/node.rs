//! The node table (upstream's `clusterNode` and the node dictionary of `clusterState`,
//! docs/cluster-plan.md 9.1): this node ("myself", always [`MYSELF`]) and every other node
//! known, by slab index; the owner of every slot; the slots this node migrates or imports.
//! No links and no gossip yet (work item D adds them on top of these fields).

use std::collections::{BTreeMap, HashMap};

use super::slot::{SlotBitmap, CLUSTER_SLOTS};
use super::{NodeId, MYSELF};

/// Node flags, as on the bus (docs/cluster-plan.md 1.2).
pub mod nflags {
    pub const PRIMARY: u16 = 1;
    pub const REPLICA: u16 = 2;
    pub const PFAIL: u16 = 4;
    pub const FAIL: u16 = 8;
    pub const MYSELF: u16 = 16;
    pub const HANDSHAKE: u16 = 32;
    pub const NOADDR: u16 = 64;
    pub const MEET: u16 = 128;
    pub const MIGRATE_TO: u16 = 256;
    pub const NOFAILOVER: u16 = 512;
}

/// The names of the flags in CLUSTER NODES and nodes.conf, in upstream's order.
const FLAG_NAMES: &[(u16, &str)] = &[
    (nflags::MYSELF, "myself"),
    (nflags::PRIMARY, "master"),
    (nflags::REPLICA, "slave"),
    (nflags::PFAIL, "fail?"),
    (nflags::FAIL, "fail"),
    (nflags::HANDSHAKE, "handshake"),
    (nflags::NOADDR, "noaddr"),
    (nflags::NOFAILOVER, "nofailover"),
];

/// The flags as text (`myself,master`; `noflags` when none).
pub fn flags_text(flags: u16) -> String {
    let v: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "noflags".to_string()
    } else {
        v.join(",")
    }
}

/// Parses a flag list of nodes.conf (`myself,master`); unknown names are ignored, as
/// upstream's loader does.
pub fn parse_flags(s: &str) -> u16 {
    let mut f = 0;
    for w in s.split(',') {
        match w {
            "myself" => f |= nflags::MYSELF,
            "master" => f |= nflags::PRIMARY,
            "slave" => f |= nflags::REPLICA,
            "fail?" => f |= nflags::PFAIL,
            "fail" => f |= nflags::FAIL,
            "handshake" => f |= nflags::HANDSHAKE,
            "noaddr" => f |= nflags::NOADDR,
            "nofailover" => f |= nflags::NOFAILOVER,
            _ => {}
        }
    }
    f
}

/// One node.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// 40 hex characters.
    pub name: String,
    /// 40 hex characters.
    pub shard_id: String,
    pub flags: u16,
    pub config_epoch: u64,
    /// The slots it serves (a primary).
    pub slots: SlotBitmap,
    /// Its primary, when a replica.
    pub replicaof: Option<NodeId>,
    /// Its replicas.
    pub replicas: Vec<NodeId>,
    pub ping_sent: i64,
    pub pong_received: i64,
    /// Empty while unknown (a fresh node does not know its own address until the bus
    /// tells it).
    pub ip: String,
    pub tcp_port: u16,
    pub tls_port: u16,
    pub cport: u16,
    pub hostname: String,
    pub human_nodename: String,
    /// `availability-zone` of the node (ping extension 9, `availability-zone=` in
    /// nodes.conf), "" when not set.
    pub availability_zone: String,
    /// The addresses announced for clients (`cluster-announce-client-ipv4/ipv6`, ping
    /// extensions 4 and 5; empty when not announced).
    pub client_ipv4: String,
    pub client_ipv6: String,
    /// The ports announced for clients (`cluster-announce-client-port/-tls-port`,
    /// extensions 6 and 7; 0 when not announced).
    pub client_tcp_port: u16,
    pub client_tls_port: u16,
    /// The gossiped replication offset.
    pub repl_offset: i64,
    /// A link is up (myself counts as connected).
    pub connected: bool,
    /// Bus state (item D, src/cluster/link.rs and gossip.rs): the outbound and inbound
    /// links (slab keys), when the node was created, when data last came from it, and when
    /// its inbound link was last freed (ms).
    pub link: Option<usize>,
    pub inbound_link: Option<usize>,
    pub ctime: i64,
    pub data_received: i64,
    pub inbound_freed: i64,
}

impl Node {
    /// Upstream's `clusterNodeIp` for a client: its announced client address of the
    /// client's family, else the bus-known IP.
    pub fn client_port(&self) -> u16 {
        // Upstream's `clusterNodeClientPort` without TLS (no `tls-cluster` here).
        if self.client_tcp_port != 0 {
            self.client_tcp_port
        } else {
            self.tcp_port
        }
    }

    pub fn client_ip(&self, v6: bool) -> &str {
        let a = if v6 {
            &self.client_ipv6
        } else {
            &self.client_ipv4
        };
        if a.is_empty() {
            &self.ip
        } else {
            a
        }
    }

    /// Upstream's `clusterNodeAddReplica`: a primary that has (had) a replica becomes a
    /// replica-migration target (`MIGRATE_TO`).
    pub fn add_replica(&mut self, id: NodeId) {
        if !self.replicas.contains(&id) {
            self.replicas.push(id);
        }
        self.flags |= nflags::MIGRATE_TO;
    }

    /// Upstream's `clusterNodeRemoveReplica`: the last replica gone clears `MIGRATE_TO`.
    pub fn remove_replica(&mut self, id: NodeId) {
        let before = self.replicas.len();
        self.replicas.retain(|r| *r != id);
        if before != self.replicas.len() && self.replicas.is_empty() {
            self.flags &= !nflags::MIGRATE_TO;
        }
    }

    pub fn is_primary(&self) -> bool {
        self.flags & nflags::PRIMARY != 0
    }
    pub fn is_replica(&self) -> bool {
        self.flags & nflags::REPLICA != 0
    }
}

/// The node table and the slot ownership of the cluster state.
pub struct NodeTable {
    /// The slab of nodes; index 0 is myself.
    pub nodes: Vec<Option<Node>>,
    /// Name -> node.
    pub by_name: HashMap<String, NodeId>,
    /// The owner of every slot.
    pub owner: Vec<Option<NodeId>>,
    /// Slots this node migrates (slot -> target).
    pub migrating: BTreeMap<u16, NodeId>,
    /// Slots this node imports (slot -> source).
    pub importing: BTreeMap<u16, NodeId>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
    /// Slots unassigned (or moved to another node) since the shard channels were last
    /// checked: their subscribers are unsubscribed (`clusterDelSlot` →
    /// `removeChannelsInSlot`) by [`crate::cluster::remove_channels_in_dropped_slots`].
    pub dropped_slots: Vec<u16>,
}

impl NodeTable {
    /// A table holding only a fresh myself: a random name and shard id, a primary.
    pub fn new_fresh() -> NodeTable {
        let me = Node {
            name: crate::util::random_hex40(),
            shard_id: crate::util::random_hex40(),
            flags: nflags::MYSELF | nflags::PRIMARY,
            connected: true,
            ..Default::default()
        };
        NodeTable::with_myself(me)
    }

    pub fn with_myself(me: Node) -> NodeTable {
        let mut by_name = HashMap::new();
        by_name.insert(me.name.clone(), MYSELF);
        NodeTable {
            nodes: vec![Some(me)],
            by_name,
            owner: vec![None; CLUSTER_SLOTS],
            migrating: BTreeMap::new(),
            importing: BTreeMap::new(),
            current_epoch: 0,
            last_vote_epoch: 0,
            dropped_slots: Vec::new(),
        }
    }

    pub fn myself(&self) -> &Node {
        self.nodes[MYSELF.0 as usize].as_ref().expect("myself")
    }
    pub fn myself_mut(&mut self) -> &mut Node {
        self.nodes[MYSELF.0 as usize].as_mut().expect("myself")
    }
    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.0 as usize).and_then(|n| n.as_ref())
    }
    pub fn get_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(id.0 as usize).and_then(|n| n.as_mut())
    }
    /// Looks a node up by name (exact, 40 characters).
    pub fn lookup(&self, name: &[u8]) -> Option<NodeId> {
        std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.by_name.get(n).copied())
    }

    /// The live nodes, myself first.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (NodeId(i as u32), n)))
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Adds a node (not myself); returns its id.
    pub fn add(&mut self, n: Node) -> NodeId {
        let name = n.name.clone();
        let id = match self.nodes.iter().skip(1).position(|s| s.is_none()) {
            Some(i) => {
                self.nodes[i + 1] = Some(n);
                NodeId(i as u32 + 1)
            }
            None => {
                self.nodes.push(Some(n));
                NodeId(self.nodes.len() as u32 - 1)
            }
        };
        self.by_name.insert(name, id);
        id
    }

    /// Removes a node (not myself): its slots become unassigned, its slot states and
    /// replica links go.
    pub fn remove(&mut self, id: NodeId) {
        if id == MYSELF {
            return;
        }
        for s in 0..CLUSTER_SLOTS {
            if self.owner[s] == Some(id) {
                self.owner[s] = None;
                self.dropped_slots.push(s as u16);
            }
        }
        self.migrating.retain(|_, n| *n != id);
        self.importing.retain(|_, n| *n != id);
        let Some(n) = self.nodes.get_mut(id.0 as usize).and_then(|n| n.take()) else {
            return;
        };
        self.by_name.remove(&n.name);
        if let Some(p) = n.replicaof.and_then(|p| self.get_mut(p)) {
            p.remove_replica(id);
        }
        for r in n.replicas {
            if let Some(r) = self.get_mut(r) {
                r.replicaof = None;
            }
        }
    }

    /// Gives slot `s` to `id` (taking it from its previous owner).
    pub fn add_slot(&mut self, s: u16, id: NodeId) {
        if let Some(prev) = self.owner[s as usize] {
            if prev != id {
                self.dropped_slots.push(s);
            }
            if let Some(p) = self.get_mut(prev) {
                p.slots.clear(s);
            }
        }
        self.owner[s as usize] = Some(id);
        if let Some(n) = self.get_mut(id) {
            n.slots.set(s);
        }
    }

    /// Unassigns slot `s`.
    pub fn del_slot(&mut self, s: u16) {
        if let Some(prev) = self.owner[s as usize].take() {
            self.dropped_slots.push(s);
            if let Some(p) = self.get_mut(prev) {
                p.slots.clear(s);
            }
        }
    }

    /// The number of assigned slots.
    pub fn slots_assigned(&self) -> usize {
        self.owner.iter().filter(|o| o.is_some()).count()
    }

    /// The configEpoch shown for a node: its own, or its primary's for a replica.
    pub fn node_epoch(&self, n: &Node) -> u64 {
        match n.replicaof.and_then(|p| self.get(p)) {
            Some(p) if n.is_replica() => p.config_epoch,
            _ => n.config_epoch,
        }
    }

    /// The largest configEpoch known.
    pub fn max_epoch(&self) -> u64 {
        self.iter()
            .map(|(_, n)| n.config_epoch)
            .max()
            .unwrap_or(0)
            .max(self.current_epoch)
    }

    /// Upstream's `clusterBumpConfigEpochWithoutConsensus` without the save: when this
    /// node's configEpoch is 0 or not the largest known, currentEpoch goes up by one and
    /// becomes this node's configEpoch. Returns the new epoch, None when nothing changed
    /// (the caller saves the config and logs as its upstream counterpart does).
    pub fn bump_epoch_without_consensus(&mut self) -> Option<u64> {
        let max = self.max_epoch();
        let mine = self.myself().config_epoch;
        if mine != 0 && mine == max {
            return None;
        }
        self.current_epoch += 1;
        let e = self.current_epoch;
        self.myself_mut().config_epoch = e;
        Some(e)
    }

    /// One node line (upstream's `clusterGenNodeDescription`): with `aux` the nodes.conf
    /// form (`,hostname` always, then the aux fields), without it the CLUSTER NODES form.
    /// No trailing newline.
    pub fn node_line(&self, id: NodeId, n: &Node, aux: bool, v6: bool) -> String {
        let mut s = String::with_capacity(160);
        s.push_str(&n.name);
        s.push(' ');
        s.push_str(if aux { &n.ip } else { n.client_ip(v6) });
        let port = if aux { n.tcp_port } else { n.client_port() };
        s.push_str(&format!(":{}@{}", port, n.cport));
        if aux {
            // Upstream writes its aux table backwards (shard-id last).
            s.push(',');
            s.push_str(&n.hostname);
            if !n.availability_zone.is_empty() {
                s.push_str(&format!(",availability-zone={}", n.availability_zone));
            }
            if n.client_tls_port != 0 {
                s.push_str(&format!(",client-tls-port={}", n.client_tls_port));
            }
            if n.client_tcp_port != 0 {
                s.push_str(&format!(",client-tcp-port={}", n.client_tcp_port));
            }
            if !n.client_ipv6.is_empty() {
                s.push_str(&format!(",client-ipv6={}", n.client_ipv6));
            }
            if !n.client_ipv4.is_empty() {
                s.push_str(&format!(",client-ipv4={}", n.client_ipv4));
            }
            s.push_str(&format!(",tls-port={}", n.tls_port));
            if !n.human_nodename.is_empty() {
                s.push_str(&format!(",nodename={}", n.human_nodename));
            }
            s.push_str(&format!(",shard-id={}", n.shard_id));
        } else if !n.hostname.is_empty() {
            s.push(',');
            s.push_str(&n.hostname);
        }
        s.push(' ');
        s.push_str(&flags_text(n.flags));
        s.push(' ');
        match n.replicaof.and_then(|p| self.get(p)) {
            Some(p) => s.push_str(&p.name),
            None => s.push('-'),
        }
        let (ps, pr) = if id == MYSELF {
            (0, 0)
        } else {
            (n.ping_sent, n.pong_received)
        };
        s.push_str(&format!(
            " {} {} {} {}",
            ps,
            pr,
            self.node_epoch(n),
            if n.connected || id == MYSELF {
                "connected"
            } else {
                "disconnected"
            }
        ));
        for (a, b) in n.slots.ranges() {
            if a == b {
                s.push_str(&format!(" {}", a));
            } else {
                s.push_str(&format!(" {}-{}", a, b));
            }
        }
        if id == MYSELF {
            for (slot, to) in &self.migrating {
                if let Some(t) = self.get(*to) {
                    s.push_str(&format!(" [{}->-{}]", slot, t.name));
                }
            }
            for (slot, from) in &self.importing {
                if let Some(f) = self.get(*from) {
                    s.push_str(&format!(" [{}-<-{}]", slot, f.name));
                }
            }
        }
        s
    }

    /// The whole nodes.conf text.
    pub fn config_text(&self) -> String {
        let mut s = String::new();
        for (id, n) in self.iter() {
            if n.flags & nflags::HANDSHAKE != 0 {
                continue;
            }
            s.push_str(&self.node_line(id, n, true, false));
            s.push('\n');
        }
        s.push_str(&format!(
            "vars currentEpoch {} lastVoteEpoch {}\n",
            self.current_epoch, self.last_vote_epoch
        ));
        s
    }

    /// The CLUSTER NODES text (every line ends with `\n`). Unlike nodes.conf, it lists
    /// the nodes in handshake, as upstream.
    /// `v6`: the asking client is connected over IPv6 (for the announced client IPs).
    pub fn nodes_text(&self, v6: bool) -> String {
        let mut s = String::new();
        for (id, n) in self.iter() {
            s.push_str(&self.node_line(id, n, false, v6));
            s.push('\n');
        }
        s
    }
}
