//! Replicas and failover (upstream's `clusterSetPrimary`, `clusterHandleReplicaFailover`,
//! `clusterSendFailoverAuthIfNeeded`, manual failover, replica migration). Work item E of
//! docs/cluster-plan.md.
//!
//! Failure detection lives here too (PFAIL/FAIL, failure reports, FAIL messages): it is what
//! starts an election. Item D (src/cluster/gossip.rs) calls these hooks from its message
//! processing and its cron; item E fills the bodies.
//!
//! The per-node bookkeeping (failure reports, FAIL time, last vote, last data received,
//! orphaned time) is kept here, keyed by node name, so that the node table stays item C's.
//! The decisions that need no I/O (quorum, replica rank, the voting rules) are plain
//! functions over the node table, unit-tested below.

use std::collections::HashMap;

use log::{debug, info, warn};

use super::bus::{self, Body, Message, Name, Ping, SlotBits};
use super::gossip::{self, PongTarget};
use super::node::{nflags, Node, NodeTable};
use super::slot::CLUSTER_SLOTS;
use super::{NodeId, MYSELF};
use crate::server::Server;

/// Upstream's `CLUSTER_FAIL_REPORT_VALIDITY_MULT`: a failure report lives 2 node timeouts.
const FAIL_REPORT_VALIDITY_MULT: i64 = 2;
/// `CLUSTER_FAIL_UNDO_TIME_MULT`: a primary with slots loses FAIL after 2 node timeouts.
const FAIL_UNDO_TIME_MULT: i64 = 2;
/// `CLUSTER_MF_PAUSE_MULT`: the primary pauses writes for 2 manual failover timeouts.
const MF_PAUSE_MULT: i64 = 2;
/// `CLUSTER_OPERATION_TIMEOUT` (ms).
const OPERATION_TIMEOUT: i64 = 2000;
/// `CLUSTER_REPLICA_MIGRATION_DELAY` (ms).
const REPLICA_MIGRATION_DELAY: i64 = 5000;
/// `CLUSTER_CANT_FAILOVER_RELOG_PERIOD` (ms).
const CANT_FAILOVER_RELOG_PERIOD: i64 = 10_000;

/// What this node keeps about another node for failure detection and voting.
#[derive(Debug, Default, Clone)]
pub struct NodeFo {
    /// Primaries that reported the node as PFAIL/FAIL: (reporter name, time in ms).
    pub fail_reports: Vec<(String, i64)>,
    /// When it was flagged FAIL (ms).
    pub fail_time: i64,
    /// When this primary last voted for one of its replicas (ms).
    pub voted_time: i64,
    /// When any valid message from it last arrived (ms).
    pub data_received: i64,
    /// Since when it is an orphaned primary (ms), 0 when not.
    pub orphaned_time: i64,
}

/// Why an election cannot start (upstream's `CLUSTER_CANT_FAILOVER_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CantFailover {
    #[default]
    None,
    DataAge,
    WaitingDelay,
    Expired,
    WaitingVotes,
}

/// The failover state of this node (upstream's `failover_auth_*` and `mf_*` fields of
/// `clusterState`).
#[derive(Debug)]
pub struct FailoverState {
    per: HashMap<String, NodeFo>,
    /// When the election may start, or started (ms); 0: none.
    pub auth_time: i64,
    /// Votes received in the current election.
    pub auth_count: usize,
    /// The request was broadcast.
    pub auth_sent: bool,
    pub auth_rank: usize,
    pub failed_primary_rank: usize,
    /// The epoch of the current election.
    pub auth_epoch: u64,
    cant_reason: CantFailover,
    cant_logged_ms: i64,
    /// Manual failover: its end (ms), 0 when none.
    pub mf_end: i64,
    /// Replica side: the election may start.
    pub mf_can_start: bool,
    /// Primary side: the replica that asked (its name).
    pub mf_replica: Option<String>,
    /// Replica side: the primary's offset once it paused; -1 until known.
    pub mf_primary_offset: i64,
    /// Run the election step in before-sleep (upstream's CLUSTER_TODO_HANDLE_FAILOVER).
    todo_failover: bool,
    /// Run the manual failover step in before-sleep.
    todo_manual: bool,
}

impl Default for FailoverState {
    fn default() -> Self {
        FailoverState {
            per: HashMap::new(),
            auth_time: 0,
            auth_count: 0,
            auth_sent: false,
            auth_rank: 0,
            failed_primary_rank: 0,
            auth_epoch: 0,
            cant_reason: CantFailover::None,
            cant_logged_ms: 0,
            mf_end: 0,
            mf_can_start: false,
            mf_replica: None,
            mf_primary_offset: -1,
            todo_failover: false,
            todo_manual: false,
        }
    }
}

impl FailoverState {
    /// The bookkeeping of node `name` (created empty).
    pub fn node(&mut self, name: &str) -> &mut NodeFo {
        self.per.entry(name.to_string()).or_default()
    }

    /// The bookkeeping of node `name`, if any.
    pub fn get(&self, name: &str) -> Option<&NodeFo> {
        self.per.get(name)
    }

    /// Adds (or refreshes) the report of `reporter` about `node`; true when it is new.
    pub fn add_failure_report(&mut self, node: &str, reporter: &str, now: i64) -> bool {
        let r = &mut self.node(node).fail_reports;
        match r.iter_mut().find(|(n, _)| n == reporter) {
            Some(e) => {
                e.1 = now;
                false
            }
            None => {
                r.push((reporter.to_string(), now));
                true
            }
        }
    }

    /// Removes the report of `reporter` about `node`; true when there was one.
    pub fn del_failure_report(&mut self, node: &str, reporter: &str) -> bool {
        let Some(n) = self.per.get_mut(node) else {
            return false;
        };
        let before = n.fail_reports.len();
        n.fail_reports.retain(|(r, _)| r != reporter);
        n.fail_reports.len() != before
    }

    /// The reports about `node` still valid at `now` (older ones are dropped first).
    pub fn failure_reports(&mut self, node: &str, now: i64, node_timeout: i64) -> usize {
        let max_age = node_timeout * FAIL_REPORT_VALIDITY_MULT;
        match self.per.get_mut(node) {
            Some(n) => {
                n.fail_reports.retain(|(_, t)| now - *t <= max_age);
                n.fail_reports.len()
            }
            None => 0,
        }
    }

    /// Forgets a node that left the table (its reports and the reports it made).
    pub fn forget(&mut self, name: &str) {
        self.per.remove(name);
        for n in self.per.values_mut() {
            n.fail_reports.retain(|(r, _)| r != name);
        }
    }

    /// Upstream's `resetManualFailover` without the unpause (see [`reset_manual_failover`]).
    fn reset_mf(&mut self) {
        self.mf_end = 0;
        self.mf_can_start = false;
        self.mf_replica = None;
        self.mf_primary_offset = -1;
    }
}

/// `cluster-node-timeout` (ms).
pub fn node_timeout(srv: &Server) -> i64 {
    cfg_i64(srv, "cluster-node-timeout", 15000).max(1)
}

fn cfg_i64(srv: &Server, name: &str, def: i64) -> i64 {
    srv.config
        .get(name)
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(def)
}

fn cfg_bool(srv: &Server, name: &str, def: bool) -> bool {
    match srv.config.get(name).as_deref() {
        Some("yes") => true,
        Some("no") => false,
        _ => def,
    }
}

/// A primary serving at least one slot (upstream's `clusterNodeIsVotingPrimary`).
pub fn is_voting_primary(n: &Node) -> bool {
    n.is_primary() && n.slots.count() > 0
}

/// The number of primaries serving slots (upstream's `server.cluster->size`).
pub fn cluster_size(t: &NodeTable) -> usize {
    t.iter().filter(|(_, n)| is_voting_primary(n)).count()
}

/// The votes (or failure reports) a decision needs: a majority of the voting primaries.
pub fn quorum(size: usize) -> usize {
    size / 2 + 1
}

/// The offset this node gossips in the bus header (`offset`): the processed offset of a
/// replica, the replication offset of a primary (upstream's
/// `replicationGetReplicaOffset` / `primary_repl_offset`; both are ours
/// `master_repl_offset`, which stays 0 while no stream was ever produced).
pub fn my_offset(srv: &Server) -> i64 {
    srv.repl.master_repl_offset
}

/// The mflags[0] bits this node sets on every message it sends: PAUSED on a primary in a
/// manual failover (item D's `gossip::header` ORs them in).
pub fn header_mflags0(srv: &Server) -> u8 {
    match srv.cluster.as_deref() {
        Some(st) if st.nodes.myself().is_primary() && st.failover.mf_end != 0 => bus::MFLAG0_PAUSED,
        _ => 0,
    }
}

/// The rank of a replica among the replicas of its primary (upstream's
/// `clusterGetReplicaRank`): how many other replicas, NOFAILOVER ones excepted, have a
/// greater offset, or the same offset and a smaller name.
pub fn replica_rank(t: &NodeTable, my_offset: i64) -> usize {
    let me = t.myself();
    let Some(p) = me.replicaof.and_then(|p| t.get(p)) else {
        return 0;
    };
    p.replicas
        .iter()
        .filter(|r| **r != MYSELF)
        .filter_map(|r| t.get(*r))
        .filter(|r| r.flags & nflags::NOFAILOVER == 0)
        .filter(|r| r.repl_offset > my_offset || (r.repl_offset == my_offset && r.name < me.name))
        .count()
}

/// Upstream's `clusterGetFailedPrimaryRank`: how many other failed primaries with slots
/// and replicas have a smaller shard id than mine (so that the shards of a multi-primary
/// failure elect one after the other rather than splitting the votes).
pub fn failed_primary_rank(t: &NodeTable) -> usize {
    let me = t.myself();
    let my_primary = me.replicaof;
    t.iter()
        .filter(|(id, n)| {
            Some(*id) != my_primary
                && is_voting_primary(n)
                && n.flags & nflags::FAIL != 0
                && !n.replicas.is_empty()
                && n.shard_id < me.shard_id
        })
        .count()
}

/// A failover auth request as the voter sees it.
#[derive(Clone, Copy)]
pub struct AuthRequest<'a> {
    pub requester: NodeId,
    pub current_epoch: u64,
    pub config_epoch: u64,
    pub claimed: &'a SlotBits,
    pub force_ack: bool,
}

/// Upstream's `clusterSendFailoverAuthIfNeeded` decision: `Ok` to grant the vote, or the
/// text logged for a denial (`None`: silently ignored, this node does not vote).
/// `voted_time` is when this node last voted for a replica of the requester's primary.
pub fn vote_decision(
    t: &NodeTable,
    req: &AuthRequest<'_>,
    voted_time: i64,
    now: i64,
    node_timeout: i64,
) -> Result<(), Option<String>> {
    let me = t.myself();
    if me.is_replica() || me.slots.count() == 0 {
        return Err(None);
    }
    let Some(node) = t.get(req.requester) else {
        return Err(None);
    };
    let who = format!("{} ({})", node.name, node.human_nodename);
    if req.current_epoch < t.current_epoch {
        return Err(Some(format!(
            "Failover auth denied to {}: reqEpoch ({}) < curEpoch({})",
            who, req.current_epoch, t.current_epoch
        )));
    }
    if t.last_vote_epoch == t.current_epoch {
        return Err(Some(format!(
            "Failover auth denied to {}: already voted for epoch {}",
            who, t.current_epoch
        )));
    }
    let primary = node.replicaof.and_then(|p| t.get(p));
    if node.is_primary() {
        return Err(Some(format!(
            "Failover auth denied to {}: it is a primary node",
            who
        )));
    }
    let Some(primary) = primary else {
        return Err(Some(format!(
            "Failover auth denied to {}: I don't know its primary",
            who
        )));
    };
    if primary.flags & nflags::FAIL == 0 && !req.force_ack {
        return Err(Some(format!(
            "Failover auth denied to {}: its primary is up",
            who
        )));
    }
    if now - voted_time < node_timeout * 2 {
        return Err(Some(format!(
            "Failover auth denied to {}: can't vote for any replica of {} ({}) within {} milliseconds",
            who,
            primary.name,
            primary.human_nodename,
            node_timeout * 2 - (now - voted_time)
        )));
    }
    for s in 0..CLUSTER_SLOTS {
        if !bus::slot_is_set(req.claimed, s) {
            continue;
        }
        let Some(owner) = t.owner[s].and_then(|o| t.get(o)) else {
            continue;
        };
        if owner.config_epoch <= req.config_epoch {
            continue;
        }
        return Err(Some(format!(
            "Failover auth denied to {}: slot {} epoch ({}) > reqConfigEpoch ({})",
            who, s, owner.config_epoch, req.config_epoch
        )));
    }
    Ok(())
}

fn to_name(s: &str) -> Name {
    let mut n = [0u8; bus::NAME_LEN];
    let b = s.as_bytes();
    let l = b.len().min(bus::NAME_LEN);
    n[..l].copy_from_slice(&b[..l]);
    n
}

fn desc(n: &Node) -> String {
    format!("{} ({})", n.name, n.human_nodename)
}

/// A gossip entry from the known node `reporter` about the known node `node`, with the
/// flags the reporter sees (upstream's failure reports: only a primary's reports count).
pub fn on_gossip_flags(srv: &mut Server, reporter: NodeId, node: NodeId, flags: u16) {
    if node == MYSELF || reporter == node {
        return;
    }
    let now = crate::util::mstime();
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let (Some(r), Some(n)) = (st.nodes.get(reporter), st.nodes.get(node)) else {
        return;
    };
    if !r.is_primary() {
        return;
    }
    let (rname, nname) = (r.name.clone(), n.name.clone());
    if flags & (nflags::FAIL | nflags::PFAIL) != 0 {
        if st.failover.add_failure_report(&nname, &rname, now) {
            debug!("Node {} reported node {} as not reachable.", rname, nname);
        }
        mark_failing_if_needed(srv, node);
    } else if st.failover.del_failure_report(&nname, &rname) {
        debug!("Node {} reported node {} is back online.", rname, nname);
    }
}

/// Upstream's `markNodeAsFailingIfNeeded`: PFAIL here plus enough reports from voting
/// primaries (this node counting itself when it votes) make the node FAIL, and everybody
/// is told.
pub fn mark_failing_if_needed(srv: &mut Server, node: NodeId) {
    let now = crate::util::mstime();
    let timeout = node_timeout(srv);
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let Some(n) = st.nodes.get(node) else {
        return;
    };
    if n.flags & nflags::PFAIL == 0 || n.flags & nflags::FAIL != 0 {
        return;
    }
    let name = n.name.clone();
    let needed = quorum(cluster_size(&st.nodes));
    let mut failures = st.failover.failure_reports(&name, now, timeout);
    if is_voting_primary(st.nodes.myself()) {
        failures += 1;
    }
    if failures < needed {
        return;
    }
    info!(
        "Marking node {} as failing (quorum reached).",
        desc(st.nodes.get(node).expect("node"))
    );
    let n = st.nodes.get_mut(node).expect("node");
    n.flags &= !nflags::PFAIL;
    n.flags |= nflags::FAIL;
    st.failover.node(&name).fail_time = now;
    st.save_config_or_die();
    gossip::broadcast(srv, Body::Fail(to_name(&name)));
}

/// A FAIL message from the known node `sender` about the node named `failing`.
pub fn on_fail(srv: &mut Server, sender: NodeId, failing: &Name) {
    let now = crate::util::mstime();
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let Some(id) = st.nodes.lookup(bus::cstr(failing)) else {
        return;
    };
    let Some(n) = st.nodes.get(id) else { return };
    if n.flags & (nflags::FAIL | nflags::MYSELF) != 0 {
        return;
    }
    let about = desc(n);
    let from = st.nodes.get(sender).map(desc).unwrap_or_default();
    info!("FAIL message received from {} about {}", from, about);
    let name = n.name.clone();
    let n = st.nodes.get_mut(id).expect("node");
    n.flags |= nflags::FAIL;
    n.flags &= !nflags::PFAIL;
    st.failover.node(&name).fail_time = now;
    st.save_config_or_die();
}

/// A FAILOVER_AUTH_REQUEST from the known node `sender`.
pub fn on_auth_request(srv: &mut Server, sender: NodeId, msg: &Message) {
    let now = crate::util::mstime();
    let timeout = node_timeout(srv);
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    // The request's epoch raises ours first (item D does it for every header; again here
    // so that the vote never depends on the order of the hooks).
    if msg.header.current_epoch > st.nodes.current_epoch {
        st.nodes.current_epoch = msg.header.current_epoch;
    }
    let primary_name = st
        .nodes
        .get(sender)
        .and_then(|n| n.replicaof)
        .and_then(|p| st.nodes.get(p))
        .map(|p| p.name.clone());
    let voted_time = primary_name
        .as_deref()
        .and_then(|p| st.failover.get(p))
        .map(|f| f.voted_time)
        .unwrap_or(0);
    let req = AuthRequest {
        requester: sender,
        current_epoch: msg.header.current_epoch,
        config_epoch: msg.header.config_epoch,
        claimed: &msg.header.myslots,
        force_ack: msg.header.mflags[0] & bus::MFLAG0_FORCEACK != 0,
    };
    match vote_decision(&st.nodes, &req, voted_time, now, timeout) {
        Ok(()) => {
            st.nodes.last_vote_epoch = st.nodes.current_epoch;
            if let Some(p) = primary_name {
                st.failover.node(&p).voted_time = now;
            }
            st.save_config_or_die();
            let epoch = st.nodes.current_epoch;
            let who = st.nodes.get(sender).map(desc).unwrap_or_default();
            gossip::send(srv, sender, Body::FailoverAuthAck);
            info!("Failover auth granted to {} for epoch {}", who, epoch);
        }
        Err(Some(why)) => warn!("{}", why),
        Err(None) => {}
    }
}

/// A FAILOVER_AUTH_ACK from the known node `sender`.
pub fn on_auth_ack(srv: &mut Server, sender: NodeId, msg: &Message) {
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let Some(n) = st.nodes.get(sender) else {
        return;
    };
    if is_voting_primary(n) && msg.header.current_epoch >= st.failover.auth_epoch {
        st.failover.auth_count += 1;
        st.failover.todo_failover = true;
    }
}

/// An MFSTART from the known node `sender` (one of this primary's replicas).
pub fn on_mfstart(srv: &mut Server, sender: NodeId, msg: &Message) {
    let _ = msg;
    let now = crate::util::mstime();
    let mf_timeout = cfg_i64(srv, "cluster-manual-failover-timeout", 5000);
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let Some(n) = st.nodes.get(sender) else {
        return;
    };
    if n.replicaof != Some(MYSELF) || !st.nodes.myself().is_primary() {
        return;
    }
    let name = n.name.clone();
    let who = desc(n);
    reset_manual_failover(srv);
    let st = srv.cluster.as_deref_mut().expect("cluster");
    st.failover.mf_end = now + mf_timeout;
    st.failover.mf_replica = Some(name);
    srv.pause.failover_end_ms = now + mf_timeout * MF_PAUSE_MULT;
    info!("Manual failover requested by replica {}.", who);
    send_paused_ping(srv, sender);
}

/// A PING to `node` carrying this paused primary's frozen offset and the PAUSED flag.
fn send_paused_ping(srv: &mut Server, node: NodeId) {
    let mut header = gossip::header(srv);
    header.offset = my_offset(srv) as u64;
    header.mflags[0] |= bus::MFLAG0_PAUSED;
    gossip::send_message(
        srv,
        node,
        Message {
            header,
            body: Body::Ping(Ping::default()),
        },
    );
}

/// Upstream's `resetManualFailover`: the primary's pause ends too.
pub fn reset_manual_failover(srv: &mut Server) {
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    if st.failover.mf_end != 0 && srv.pause.failover_end_ms != 0 {
        srv.pause.failover_end_ms = 0;
    }
    st.failover.reset_mf();
}

/// Any valid message from the known node `sender` after its header was processed: the
/// replica side reads its primary's offset and the `PAUSED` mflag here during a manual
/// failover; a node that answers again may lose its FAIL flag
/// (`clearNodeFailureIfNeeded`).
pub fn on_message(srv: &mut Server, sender: NodeId, msg: &Message) {
    let now = crate::util::mstime();
    let timeout = node_timeout(srv);
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let Some(n) = st.nodes.get_mut(sender) else {
        return;
    };
    if n.flags & nflags::HANDSHAKE != 0 {
        return;
    }
    n.repl_offset = msg.header.offset as i64;
    let name = n.name.clone();
    let flags = n.flags;
    let fo = st.failover.node(&name);
    fo.data_received = now;
    let fail_time = fo.fail_time;
    if matches!(msg.body, Body::Pong(_)) {
        if flags & nflags::PFAIL != 0 {
            if let Some(n) = st.nodes.get_mut(sender) {
                n.flags &= !nflags::PFAIL;
            }
        } else if flags & nflags::FAIL != 0 {
            let Some(n) = st.nodes.get(sender) else {
                return;
            };
            let undo = n.is_replica() || n.slots.count() == 0;
            let late = n.is_primary() && now - fail_time > timeout * FAIL_UNDO_TIME_MULT;
            if undo {
                info!(
                    "Clear FAIL state for node {}:{} is reachable again.",
                    desc(n),
                    if n.is_replica() {
                        "replica"
                    } else {
                        "primary without slots"
                    }
                );
            } else if late {
                info!(
                    "Clear FAIL state for node {}: is reachable again and nobody is serving its slots after some time.",
                    desc(n)
                );
            }
            if undo || late {
                if let Some(n) = st.nodes.get_mut(sender) {
                    n.flags &= !nflags::FAIL;
                }
                st.save_config_or_die();
            }
        }
    }
    let me = st.nodes.myself();
    if st.failover.mf_end != 0
        && me.is_replica()
        && me.replicaof == Some(sender)
        && msg.header.mflags[0] & bus::MFLAG0_PAUSED != 0
        && st.failover.mf_primary_offset == -1
    {
        st.failover.mf_primary_offset = msg.header.offset as i64;
        st.failover.todo_manual = true;
        info!(
            "Received replication offset for paused primary manual failover: {}",
            st.failover.mf_primary_offset
        );
    }
}

/// Every 100 ms from the cluster cron, after the link upkeep: PFAIL marking on ping
/// timeouts, FAIL promotion, the replica's election and manual failover state, replica
/// migration, orphaned-primary checks.
pub fn cron(srv: &mut Server) {
    let now = crate::util::mstime();
    let timeout = node_timeout(srv);
    let replicating = crate::replication::replica::is_replica(srv);
    let nofailover = cfg_bool(srv, "cluster-replica-no-failover", false);
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    // Upstream's clusterUpdateMyselfFlags: `cluster-replica-no-failover` shows as the
    // NOFAILOVER flag of myself (gossiped, and in CLUSTER NODES).
    let me = st.nodes.myself_mut();
    let before = me.flags;
    if nofailover {
        me.flags |= nflags::NOFAILOVER;
    } else {
        me.flags &= !nflags::NOFAILOVER;
    }
    if me.flags != before {
        st.save_config_or_die();
    }
    // PFAIL: a ping pending and nothing received for longer than the node timeout.
    let mut newly_pfail = Vec::new();
    let mut orphaned = 0;
    let mut max_replicas = 0;
    let mut my_primary_replicas = 0;
    let me_replicaof = st.nodes.myself().replicaof;
    for (id, n) in st.nodes.iter() {
        if id == MYSELF || n.flags & (nflags::NOADDR | nflags::HANDSHAKE) != 0 {
            continue;
        }
        let fo = st.failover.get(&n.name);
        // Orphaned primaries and the replica counts, for replica migration.
        if st.nodes.myself().is_replica() && n.is_primary() && n.flags & nflags::FAIL == 0 {
            let ok = n
                .replicas
                .iter()
                .filter_map(|r| st.nodes.get(*r))
                .filter(|r| r.flags & nflags::FAIL == 0)
                .count();
            if ok == 0 && n.slots.count() > 0 && n.flags & nflags::MIGRATE_TO != 0 {
                orphaned += 1;
            }
            max_replicas = max_replicas.max(ok);
            if me_replicaof == Some(id) {
                my_primary_replicas = ok;
            }
        }
        if n.ping_sent == 0 {
            continue;
        }
        let data = fo
            .map(|f| f.data_received)
            .unwrap_or(0)
            .max(n.data_received);
        let delay = (now - n.ping_sent).min(now - data);
        if delay > timeout && n.flags & (nflags::PFAIL | nflags::FAIL) == 0 {
            newly_pfail.push(id);
        }
    }
    let voting = is_voting_primary(st.nodes.myself());
    for id in newly_pfail {
        let st = srv.cluster.as_deref_mut().expect("cluster");
        let n = st.nodes.get_mut(id).expect("node");
        n.flags |= nflags::PFAIL;
        let d = desc(n);
        if voting {
            mark_failing_if_needed(srv, id);
        } else {
            info!("NODE {} possibly failing.", d);
        }
    }
    // Orphaned times.
    let st = srv.cluster.as_deref_mut().expect("cluster");
    let orphans: Vec<(String, bool)> = st
        .nodes
        .iter()
        .filter(|(id, _)| *id != MYSELF)
        .map(|(_, n)| {
            let ok = n
                .replicas
                .iter()
                .filter_map(|r| st.nodes.get(*r))
                .any(|r| r.flags & nflags::FAIL == 0);
            (
                n.name.clone(),
                n.is_primary()
                    && n.slots.count() > 0
                    && !ok
                    && n.flags & nflags::MIGRATE_TO != 0
                    && n.flags & nflags::FAIL == 0,
            )
        })
        .collect();
    for (name, is_orphan) in orphans {
        let fo = st.failover.node(&name);
        if !is_orphan {
            fo.orphaned_time = 0;
        } else if fo.orphaned_time == 0 {
            fo.orphaned_time = now;
        }
    }
    // A replica without a replication link to its known primary starts one.
    let me = st.nodes.myself();
    if me.is_replica() && !replicating {
        if let Some(p) = me.replicaof.and_then(|p| st.nodes.get(p)) {
            if !p.ip.is_empty() && p.tcp_port != 0 {
                let (ip, port) = (p.ip.clone(), p.tcp_port);
                crate::replication::replica::set_primary(srv, ip, port);
            }
        }
    }
    manual_failover_check_timeout(srv, now);
    let st = srv.cluster.as_deref_mut().expect("cluster");
    if st.nodes.myself().is_replica() {
        handle_manual_failover(srv);
        handle_replica_failover(srv);
        if orphaned > 0
            && max_replicas >= 2
            && my_primary_replicas == max_replicas
            && cfg_bool(srv, "cluster-allow-replica-migration", true)
        {
            handle_replica_migration(srv, max_replicas);
        }
    } else if st.failover.mf_end != 0 {
        // The primary of a manual failover PINGs its replica every run.
        let target = st
            .failover
            .mf_replica
            .as_deref()
            .and_then(|n| st.nodes.lookup(n.as_bytes()));
        if let Some(id) = target {
            send_paused_ping(srv, id);
        }
    }
}

/// From before-sleep: deferred election steps and state updates.
pub fn before_sleep(srv: &mut Server) {
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let manual = std::mem::take(&mut st.failover.todo_manual);
    let fail = std::mem::take(&mut st.failover.todo_failover);
    if !st.nodes.myself().is_replica() {
        return;
    }
    if manual {
        handle_manual_failover(srv);
    }
    if manual || fail {
        handle_replica_failover(srv);
    }
}

/// Upstream's `manualFailoverCheckTimeout`.
fn manual_failover_check_timeout(srv: &mut Server, now: i64) {
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    if st.failover.mf_end != 0 && st.failover.mf_end < now {
        warn!("Manual failover timed out.");
        reset_manual_failover(srv);
    }
}

/// Upstream's `clusterHandleManualFailover` (replica side): the election may start once
/// this replica processed everything its paused primary produced.
fn handle_manual_failover(srv: &mut Server) {
    let off = my_offset(srv);
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let f = &mut st.failover;
    if f.mf_end == 0 || f.mf_can_start || f.mf_primary_offset == -1 {
        return;
    }
    if f.mf_primary_offset == off {
        f.mf_can_start = true;
        f.todo_failover = true;
        info!("All primary replication stream processed, manual failover can start.");
    } else {
        f.cant_reason = CantFailover::WaitingDelay;
    }
}

fn log_cant_failover(srv: &mut Server, reason: CantFailover, now: i64) {
    let timeout = node_timeout(srv);
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let nolog_fail_time = timeout + 5000;
    let f = &mut st.failover;
    if reason == f.cant_reason && now - f.cant_logged_ms < CANT_FAILOVER_RELOG_PERIOD {
        return;
    }
    f.cant_reason = reason;
    // Not while the primary only just failed: the election may still be on its way.
    let fail_time = st
        .nodes
        .myself()
        .replicaof
        .and_then(|p| st.nodes.get(p))
        .and_then(|p| st.failover.get(&p.name))
        .map(|f| f.fail_time)
        .unwrap_or(0);
    if fail_time != 0 && now - fail_time < nolog_fail_time {
        return;
    }
    st.failover.cant_logged_ms = now;
    let msg = match reason {
        CantFailover::DataAge => {
            "Disconnected from primary for longer than allowed. Please check the \
             'cluster-replica-validity-factor' configuration option."
        }
        CantFailover::WaitingDelay => "Waiting the delay before I can start a new failover.",
        CantFailover::Expired => "Failover attempt expired.",
        CantFailover::WaitingVotes => "Waiting for votes, but majority still not reached.",
        CantFailover::None => return,
    };
    info!("Currently unable to failover: {}", msg);
}

/// Upstream's `clusterHandleReplicaFailover`: wait the rank delay, ask for votes once, win
/// with a majority.
fn handle_replica_failover(srv: &mut Server) {
    let now = crate::util::mstime();
    let timeout = node_timeout(srv);
    let no_failover = cfg_bool(srv, "cluster-replica-no-failover", false);
    let validity = cfg_i64(srv, "cluster-replica-validity-factor", 10);
    let ping_period = cfg_i64(srv, "repl-ping-replica-period", 10);
    let data_age = {
        let rs = &srv.repl.replica;
        let last = if crate::replication::replica::link_up(srv) {
            crate::replication::replica::last_interaction_ms(srv).unwrap_or(now)
        } else {
            rs.down_since * 1000
        };
        let mut age = now - last;
        if age > timeout {
            age -= timeout;
        }
        age
    };
    let my_off = my_offset(srv);
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let t = &st.nodes;
    let me = t.myself();
    let f = &st.failover;
    let manual = f.mf_end != 0 && f.mf_can_start;
    let primary = me.replicaof.and_then(|p| t.get(p));
    let Some(primary) = primary.filter(|_| me.is_replica()) else {
        st.failover.cant_reason = CantFailover::None;
        return;
    };
    if (!manual && (primary.flags & nflags::FAIL == 0 || no_failover)) || primary.slots.count() == 0
    {
        st.failover.cant_reason = CantFailover::None;
        return;
    }
    let needed = quorum(cluster_size(t));
    let auth_age = now - f.auth_time;
    let auth_timeout = (timeout * 2).max(OPERATION_TIMEOUT);
    let auth_retry = auth_timeout * 2;
    if validity != 0 && data_age > ping_period * 1000 + timeout * validity && !manual {
        log_cant_failover(srv, CantFailover::DataAge, now);
        return;
    }
    if auth_age > auth_retry {
        let rank = replica_rank(t, my_off);
        let prank = failed_primary_rank(t);
        let f = &mut st.failover;
        f.auth_time = now + 500 + (crate::util::random_u64() % 500) as i64;
        f.auth_count = 0;
        f.auth_sent = false;
        f.auth_rank = rank;
        f.failed_primary_rank = prank;
        f.auth_time += rank as i64 * 1000 + prank as i64 * 500;
        if f.mf_end != 0 {
            f.auth_time = now;
            f.auth_rank = 0;
            f.failed_primary_rank = 0;
            f.todo_failover = true;
        }
        info!(
            "Start of election delayed for {} milliseconds (rank #{}, primary rank #{}, offset {}).",
            f.auth_time - now,
            f.auth_rank,
            f.failed_primary_rank,
            my_off
        );
        gossip::broadcast_pong(srv, PongTarget::LocalReplicas);
        return;
    }
    if !st.failover.auth_sent && st.failover.mf_end == 0 {
        let rank = replica_rank(&st.nodes, my_off);
        let f = &mut st.failover;
        if rank > f.auth_rank {
            let added = (rank - f.auth_rank) as i64 * 1000;
            f.auth_time += added;
            f.auth_rank = rank;
            info!(
                "Replica rank updated to #{}, added {} milliseconds of delay.",
                rank, added
            );
        }
    }
    if now < st.failover.auth_time {
        log_cant_failover(srv, CantFailover::WaitingDelay, now);
        return;
    }
    if auth_age > auth_timeout {
        log_cant_failover(srv, CantFailover::Expired, now);
        return;
    }
    if !st.failover.auth_sent {
        st.nodes.current_epoch += 1;
        st.failover.auth_epoch = st.nodes.current_epoch;
        info!(
            "Starting a failover election for epoch {}, node config epoch is {}",
            st.nodes.current_epoch,
            st.nodes.node_epoch(st.nodes.myself())
        );
        st.failover.auth_sent = true;
        st.save_config_or_die();
        request_failover_auth(srv);
        return;
    }
    if st.failover.auth_count >= needed {
        info!("Failover election won: I'm the new primary.");
        let epoch = st.failover.auth_epoch;
        let me = st.nodes.myself_mut();
        if me.config_epoch < epoch {
            me.config_epoch = epoch;
            info!("configEpoch set to {} after successful failover", epoch);
        }
        replace_my_primary(srv);
    } else {
        log_cant_failover(srv, CantFailover::WaitingVotes, now);
    }
}

/// Upstream's `clusterRequestFailoverAuth`: FAILOVER_AUTH_REQUEST to every node, with
/// FORCEACK during a manual failover.
fn request_failover_auth(srv: &mut Server) {
    let mut header = gossip::header(srv);
    let Some(st) = srv.cluster.as_deref() else {
        return;
    };
    if st.failover.mf_end != 0 {
        header.mflags[0] |= bus::MFLAG0_FORCEACK;
    }
    let targets: Vec<NodeId> = st
        .nodes
        .iter()
        .filter(|(id, n)| *id != MYSELF && n.flags & nflags::HANDSHAKE == 0)
        .map(|(id, _)| id)
        .collect();
    for id in targets {
        gossip::send_message(
            srv,
            id,
            Message {
                header: header.clone(),
                body: Body::FailoverAuthRequest,
            },
        );
    }
}

/// Upstream's `clusterSetNodeAsPrimary` for myself, then `clusterFailoverReplaceYourPrimary`:
/// take every slot of the old primary, stop replicating, save, and tell everybody.
pub fn replace_my_primary(srv: &mut Server) {
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let me = st.nodes.myself();
    let Some(old) = me.replicaof.filter(|_| me.is_replica()) else {
        return;
    };
    set_myself_primary(&mut st.nodes);
    let (old_desc, sid) = match st.nodes.get(old) {
        Some(o) => (
            format!("{} ({}:{})", o.name, o.ip, o.tcp_port),
            st.nodes.myself().shard_id.clone(),
        ),
        None => (String::new(), String::new()),
    };
    info!(
        "Setting myself to primary in shard {} after failover; my old primary is {}",
        sid, old_desc
    );
    let slots: Vec<u16> = match st.nodes.get(old) {
        Some(o) => (0..CLUSTER_SLOTS as u16)
            .filter(|s| o.slots.test(*s))
            .collect(),
        None => Vec::new(),
    };
    for s in slots {
        st.nodes.del_slot(s);
        st.nodes.add_slot(s, MYSELF);
    }
    crate::replication::replica::unset_primary(srv);
    let st = srv.cluster.as_deref_mut().expect("cluster");
    st.save_config_or_die();
    gossip::broadcast_pong(srv, PongTarget::All);
    reset_manual_failover(srv);
    let st = srv.cluster.as_deref_mut().expect("cluster");
    st.failover.auth_time = 0;
    st.failover.auth_sent = false;
}

/// Upstream's `clusterSetNodeAsPrimary(myself)`.
fn set_myself_primary(t: &mut NodeTable) {
    let me = t.myself();
    if me.is_primary() {
        return;
    }
    if let Some(p) = me.replicaof.and_then(|p| t.get_mut(p)) {
        p.remove_replica(MYSELF);
    }
    let me = t.myself_mut();
    me.flags &= !nflags::REPLICA;
    me.flags |= nflags::PRIMARY;
    me.replicaof = None;
}

/// Upstream's `clusterSetPrimary`: this node becomes a replica of `primary` (a primary of
/// the table, not myself; myself has no slots). With `full_sync` the replication starts
/// from scratch (CLUSTER REPLICATE); without, a PSYNC may continue our history (a
/// demoted primary following its successor).
pub fn set_primary(srv: &mut Server, primary: NodeId, full_sync: bool) {
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    if primary == MYSELF {
        return;
    }
    let Some(p) = st.nodes.get(primary) else {
        return;
    };
    let (ip, port, shard) = (p.ip.clone(), p.tcp_port, p.shard_id.clone());
    let t = &mut st.nodes;
    let me = t.myself();
    if me.is_primary() {
        let me = t.myself_mut();
        me.flags &= !(nflags::PRIMARY | nflags::MIGRATE_TO);
        me.flags |= nflags::REPLICA;
    } else if let Some(old) = me.replicaof.and_then(|o| t.get_mut(o)) {
        old.remove_replica(MYSELF);
    }
    t.migrating.clear();
    t.importing.clear();
    let me = t.myself_mut();
    me.replicaof = Some(primary);
    me.shard_id = shard;
    if let Some(p) = t.get_mut(primary) {
        p.add_replica(MYSELF);
    }
    if !ip.is_empty() && port != 0 {
        crate::replication::replica::set_primary(srv, ip, port);
        if full_sync {
            srv.repl.replica.cached = None;
        }
    }
    // Before the slots this node leaves go (upstream's clusterSetPrimary).
    crate::cluster::remove_not_owned_shard_channels(srv);
    reset_manual_failover(srv);
    let st = srv.cluster.as_deref_mut().expect("cluster");
    st.failover.auth_time = 0;
    st.failover.auth_sent = false;
    st.save_config_or_die();
}

/// A replica becomes a primary without slots and stops replicating (CLUSTER RESET on a
/// replica, CLUSTER REPLICATE NO ONE); the caller empties the data.
pub fn detach_replica(srv: &mut Server) {
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    if !st.nodes.myself().is_replica() {
        return;
    }
    set_myself_primary(&mut st.nodes);
    // A new shard of its own.
    st.nodes.myself_mut().shard_id = crate::util::random_hex40();
    if crate::replication::replica::is_replica(srv) {
        crate::replication::replica::unset_primary(srv);
    }
    reset_manual_failover(srv);
    let st = srv.cluster.as_deref_mut().expect("cluster");
    st.failover.auth_time = 0;
    st.failover.auth_sent = false;
    st.save_config_or_die();
}

/// Upstream's `clusterHandleReplicaMigration`: a replica of the primary with the most
/// working replicas (and the smallest name among them) moves to an orphaned primary.
fn handle_replica_migration(srv: &mut Server, max_replicas: usize) {
    let now = crate::util::mstime();
    let barrier = cfg_i64(srv, "cluster-migration-barrier", 1).max(0) as usize;
    let require = srv.config.cluster_require_full_coverage;
    let Some(st) = srv.cluster.as_deref() else {
        return;
    };
    if !st.state_ok(require) {
        return;
    }
    let t = &st.nodes;
    let me = t.myself();
    let Some(my_primary) = me.replicaof.and_then(|p| t.get(p)) else {
        return;
    };
    let ok_replicas = my_primary
        .replicas
        .iter()
        .filter_map(|r| t.get(*r))
        .filter(|r| r.flags & nflags::FAIL == 0)
        .count();
    if ok_replicas <= barrier {
        return;
    }
    let mut candidate = me.name.clone();
    let mut target = None;
    for (id, n) in t.iter() {
        if !n.is_primary() || n.flags & nflags::FAIL != 0 {
            continue;
        }
        if n.flags & nflags::NOFAILOVER != 0 {
            continue;
        }
        let ok: Vec<&Node> = n
            .replicas
            .iter()
            .filter_map(|r| t.get(*r))
            .filter(|r| r.flags & nflags::FAIL == 0)
            .collect();
        if ok.is_empty() && n.slots.count() > 0 && n.flags & nflags::MIGRATE_TO != 0 {
            target = Some(id);
        }
        if ok.len() == max_replicas {
            for r in ok {
                if r.name < candidate {
                    candidate = r.name.clone();
                }
            }
        }
    }
    let Some(target) = target else { return };
    if candidate != me.name {
        return;
    }
    let orphaned_since = t
        .get(target)
        .and_then(|n| st.failover.get(&n.name))
        .map(|f| f.orphaned_time)
        .unwrap_or(0);
    if orphaned_since == 0 || now - orphaned_since <= REPLICA_MIGRATION_DELAY {
        return;
    }
    let d = t.get(target).map(desc).unwrap_or_default();
    info!("Migrating to orphaned primary {}", d);
    set_primary(srv, target, true);
}

/// The count shown by CLUSTER COUNT-FAILURE-REPORTS (the valid reports).
pub fn count_failure_reports(srv: &mut Server, node: NodeId) -> usize {
    let now = crate::util::mstime();
    let timeout = node_timeout(srv);
    let Some(st) = srv.cluster.as_deref_mut() else {
        return 0;
    };
    let Some(name) = st.nodes.get(node).map(|n| n.name.clone()) else {
        return 0;
    };
    st.failover.failure_reports(&name, now, timeout)
}

/// CLUSTER FAILOVER [FORCE|TAKEOVER] after the argument checks: `Err` is the error reply.
pub fn manual_failover(
    srv: &mut Server,
    force: bool,
    takeover: bool,
    client: &str,
) -> Result<(), &'static str> {
    let now = crate::util::mstime();
    let mf_timeout = cfg_i64(srv, "cluster-manual-failover-timeout", 5000);
    let Some(st) = srv.cluster.as_deref_mut() else {
        return Err("ERR This instance has cluster support disabled");
    };
    let me = st.nodes.myself();
    if me.is_primary() {
        return Err("ERR You should send CLUSTER FAILOVER to a replica");
    }
    let Some(pid) = me.replicaof else {
        return Err("ERR I'm a replica but my master is unknown to me");
    };
    let Some(p) = st.nodes.get(pid) else {
        return Err("ERR I'm a replica but my master is unknown to me");
    };
    if !force && (p.flags & nflags::FAIL != 0 || !p.connected) {
        return Err("ERR Master is down or failed, please use CLUSTER FAILOVER FORCE");
    }
    reset_manual_failover(srv);
    let st = srv.cluster.as_deref_mut().expect("cluster");
    st.failover.mf_end = now + mf_timeout;
    if takeover {
        info!("Taking over the primary (user request from '{}').", client);
        bump_epoch_without_consensus(st);
        replace_my_primary(srv);
    } else if force {
        info!(
            "Forced failover user request accepted (user request from '{}').",
            client
        );
        st.failover.mf_can_start = true;
        st.failover.todo_failover = true;
    } else {
        info!(
            "Manual failover user request accepted (user request from '{}').",
            client
        );
        gossip::send(srv, pid, Body::MfStart);
    }
    Ok(())
}

/// Upstream's `clusterBumpConfigEpochWithoutConsensus`.
fn bump_epoch_without_consensus(st: &mut super::ClusterState) {
    if let Some(e) = st.nodes.bump_epoch_without_consensus() {
        st.save_config_or_die();
        info!("New configEpoch set to {}", e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: char, flags: u16) -> Node {
        Node {
            name: std::iter::repeat_n(name, 40).collect(),
            shard_id: std::iter::repeat_n(name, 40).collect(),
            flags,
            ..Default::default()
        }
    }

    /// myself (a replica of P1), P1 (slots 0-99, epoch 1), P2 (100-199, epoch 2), and a
    /// second replica R of P1.
    fn table() -> (NodeTable, NodeId, NodeId, NodeId) {
        let mut me = node('m', nflags::MYSELF | nflags::REPLICA);
        me.name = "5".repeat(40);
        let mut t = NodeTable::with_myself(me);
        let mut p1 = node('a', nflags::PRIMARY);
        p1.config_epoch = 1;
        let p1 = t.add(p1);
        let mut p2 = node('b', nflags::PRIMARY);
        p2.config_epoch = 2;
        let p2 = t.add(p2);
        let r = t.add(node('c', nflags::REPLICA));
        for s in 0..100 {
            t.add_slot(s, p1);
        }
        for s in 100..200 {
            t.add_slot(s, p2);
        }
        t.myself_mut().replicaof = Some(p1);
        t.get_mut(r).unwrap().replicaof = Some(p1);
        t.get_mut(p1).unwrap().replicas = vec![MYSELF, r];
        t.current_epoch = 2;
        (t, p1, p2, r)
    }

    #[test]
    fn reports_expire_and_count_once() {
        let mut f = FailoverState::default();
        assert!(f.add_failure_report("n", "a", 1000));
        assert!(!f.add_failure_report("n", "a", 1500));
        assert!(f.add_failure_report("n", "b", 1200));
        assert_eq!(f.failure_reports("n", 2000, 1000), 2);
        // a at 1500 and b at 1200; validity 2000 ms.
        assert_eq!(f.failure_reports("n", 3300, 1000), 1);
        assert!(f.del_failure_report("n", "a"));
        assert_eq!(f.failure_reports("n", 3300, 1000), 0);
        f.add_failure_report("n", "x", 0);
        f.forget("x");
        assert_eq!(f.failure_reports("n", 1, 1000), 0);
    }

    #[test]
    fn quorum_and_size() {
        let (t, ..) = table();
        assert_eq!(cluster_size(&t), 2);
        assert_eq!(quorum(2), 2);
        assert_eq!(quorum(3), 2);
        assert_eq!(quorum(4), 3);
    }

    #[test]
    fn rank_by_offset_then_name() {
        let (mut t, _, _, r) = table();
        t.get_mut(r).unwrap().repl_offset = 100;
        assert_eq!(replica_rank(&t, 200), 0);
        assert_eq!(replica_rank(&t, 50), 1);
        // Equal offsets: the smaller name ranks first ('5...' < 'c...').
        assert_eq!(replica_rank(&t, 100), 0);
        t.get_mut(r).unwrap().flags |= nflags::NOFAILOVER;
        assert_eq!(replica_rank(&t, 50), 0);
    }

    #[test]
    fn votes() {
        let (mut t, p1, p2, r) = table();
        // A replica never votes.
        let mut claimed = [0u8; bus::SLOTS_BYTES];
        for s in 0..100 {
            bus::slot_set(&mut claimed, s);
        }
        let req = AuthRequest {
            requester: r,
            current_epoch: 3,
            config_epoch: 1,
            claimed: &claimed,
            force_ack: false,
        };
        assert_eq!(vote_decision(&t, &req, 0, 100_000, 1000), Err(None));
        // Make myself a voting primary.
        {
            let me = t.myself_mut();
            me.flags = nflags::MYSELF | nflags::PRIMARY;
            me.replicaof = None;
        }
        t.get_mut(p1).unwrap().replicas = vec![r];
        for s in 200..300 {
            t.add_slot(s, MYSELF);
        }
        let deny = |res: Result<(), Option<String>>, what: &str| match res {
            Err(Some(s)) => assert!(s.contains(what), "{} lacks {}", s, what),
            other => panic!("{:?}", other),
        };
        deny(
            vote_decision(&t, &req, 0, 100_000, 1000),
            "its primary is up",
        );
        t.get_mut(p1).unwrap().flags |= nflags::FAIL;
        assert_eq!(vote_decision(&t, &req, 0, 100_000, 1000), Ok(()));
        // FORCEACK votes although the primary is up.
        t.get_mut(p1).unwrap().flags &= !nflags::FAIL;
        let forced = AuthRequest {
            force_ack: true,
            ..req
        };
        assert_eq!(vote_decision(&t, &forced, 0, 100_000, 1000), Ok(()));
        t.get_mut(p1).unwrap().flags |= nflags::FAIL;
        // Old epoch, one vote per epoch, two node timeouts between votes for a shard.
        let old = AuthRequest {
            current_epoch: 1,
            ..forced
        };
        deny(
            vote_decision(&t, &old, 0, 100_000, 1000),
            "reqEpoch (1) < curEpoch(2)",
        );
        t.last_vote_epoch = 2;
        deny(
            vote_decision(&t, &req, 0, 100_000, 1000),
            "already voted for epoch 2",
        );
        t.last_vote_epoch = 1;
        deny(
            vote_decision(&t, &req, 99_000, 100_000, 1000),
            "within 1000 milliseconds",
        );
        // A claimed slot whose owner has a greater epoch.
        bus::slot_set(&mut claimed, 150);
        let r2 = AuthRequest {
            requester: r,
            current_epoch: 3,
            config_epoch: 1,
            claimed: &claimed,
            force_ack: false,
        };
        deny(
            vote_decision(&t, &r2, 0, 100_000, 1000),
            "slot 150 epoch (2) > reqConfigEpoch (1)",
        );
        // A primary asking, or a replica of an unknown primary.
        let r3 = AuthRequest {
            requester: p2,
            ..r2
        };
        deny(
            vote_decision(&t, &r3, 0, 100_000, 1000),
            "it is a primary node",
        );
        t.get_mut(r).unwrap().replicaof = None;
        let r4 = AuthRequest {
            requester: r,
            current_epoch: 3,
            config_epoch: 1,
            claimed: &claimed,
            force_ack: false,
        };
        deny(
            vote_decision(&t, &r4, 0, 100_000, 1000),
            "I don't know its primary",
        );
    }

    #[test]
    fn failed_primary_rank_counts_smaller_shards() {
        let (mut t, p1, p2, r) = table();
        // p2 fails too, with a replica; its shard id 'b...' < mine ('a...' after REPLICATE
        // would be p1's; here myself has 'm...').
        t.get_mut(p2).unwrap().flags |= nflags::FAIL;
        t.get_mut(p2).unwrap().replicas = vec![r];
        assert_eq!(failed_primary_rank(&t), 1);
        t.myself_mut().shard_id = t.get(p1).unwrap().shard_id.clone();
        assert_eq!(failed_primary_rank(&t), 0);
    }
}
