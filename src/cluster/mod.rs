//! Cluster mode (issue 13): Valkey's cluster bus, the node table and nodes.conf,
//! key slots and redirections, failover. The research behind it is
//! docs/cluster-plan.md; the bus layout is docs/cluster-bus.md.
//!
//! | file | upstream | what |
//! |---|---|---|
//! | [`bus`] | `cluster_legacy.h` | the bus wire codec: header, gossip, extensions, every message type; validation of every field |
//! | [`slot`] | `cluster.c` `keyHashSlot`, `crc16.c` | CRC16 (XMODEM), the key slot with hash tags, the 16384-bit slot bitmap |
//! | [`redirect`] | `cluster.c` `getNodeByQuery`, `clusterRedirectClient` | MOVED / ASK / CROSSSLOT / TRYAGAIN / CLUSTERDOWN, called from `process_command` |
//! | [`node`] | `cluster_legacy.c` `clusterNode`, `clusterGenNodeDescription` | the node table (myself and the other nodes by slab index), slot owners, migrating/importing, the node line of CLUSTER NODES and nodes.conf |
//! | [`link`] | `clusterLink`, `clusterAcceptHandler` | bus listener and connections, framing, send queues |
//! | [`gossip`] | `clusterProcessPacket`, `clusterCron` | handshake, PING/PONG/MEET, gossip, failure detection, epochs, UPDATE, FAIL |
//! | [`failover`] | `clusterHandleReplicaFailover` | replicas, elections and votes, manual failover |
//! | [`config_file`] | `cluster_legacy.c` `clusterLoadConfig`, `clusterSaveConfig`, `clusterLockConfig` | nodes.conf: parse, atomic save, flock |
//!
//! The commands are in src/commands/cluster.rs.
//!
//! [`ClusterState`] holds the node table, loaded from nodes.conf at start-up. Other nodes
//! are known only from nodes.conf until the bus exists (work item D); MOVED and ASK use
//! their addresses through [`SlotView`].

// Skeleton: the modules are filled in by parallel work; remove this once every
// module is used by the server.
#![allow(dead_code)]

pub mod bus;
pub mod config_file;
pub mod failover;
pub mod gossip;
pub mod link;
pub mod node;
pub mod redirect;
pub mod slot;

use crate::client::{flags as cflags, Client};
use crate::commands::flags as cmdf;
use crate::server::Server;
use node::{nflags, NodeTable};
use redirect::{Query, SlotView};

/// A node of the node table (an index, not a pointer). `NodeId(0)` is this node until the
/// table exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(pub u32);

/// This node.
pub const MYSELF: NodeId = NodeId(0);

/// The cluster state owned by the server (`srv.cluster`, only in cluster mode).
pub struct ClusterState {
    /// Myself and the other nodes, the slot owners and slot states.
    pub nodes: NodeTable,
    /// Failure reports, elections, manual failover (item E, src/cluster/failover.rs).
    pub failover: failover::FailoverState,
    /// The path of nodes.conf (`cluster-config-file`, relative to `dir`).
    pub config_file: std::path::PathBuf,
    /// The locked nodes.conf, kept open for the life of the process.
    lock: Option<std::fs::File>,
    /// Start-up time (ms): the state stays `fail` for `CLUSTER_WRITABLE_DELAY` after it.
    start_ms: i64,
    /// The last computed state and size (upstream's `clusterUpdateState` keeps them while
    /// the writable delay runs).
    cached: std::cell::Cell<(bool, usize)>,
    /// When `cached` was last recomputed for [`ClusterState::state_ok`] (ms; 0: stale),
    /// and with which `cluster-require-full-coverage`.
    state_at_ms: std::cell::Cell<(i64, bool)>,
    /// The bus: listeners, links, message counters, the FORGET blacklist (item D).
    pub bus: link::Bus,
}

/// Upstream's `CLUSTER_WRITABLE_DELAY` (ms).
const WRITABLE_DELAY: i64 = 2000;
/// How long [`ClusterState::state_ok`] reuses the computed state: upstream recomputes it in
/// `clusterCron` (every 100 ms) and in beforeSleep after a change, and every command reads
/// the stored value. Recomputing per command (16384 slots) cost most of the CPU of a GET.
const STATE_REFRESH_MS: i64 = 100;

impl Default for ClusterState {
    fn default() -> Self {
        ClusterState::new()
    }
}

impl ClusterState {
    pub fn new() -> ClusterState {
        ClusterState {
            nodes: NodeTable::new_fresh(),
            failover: Default::default(),
            config_file: "nodes.conf".into(),
            lock: None,
            start_ms: crate::util::mstime(),
            cached: std::cell::Cell::new((false, 0)),
            state_at_ms: std::cell::Cell::new((0, false)),
            bus: link::Bus::default(),
        }
    }

    /// `cluster_state:ok` (upstream's `clusterUpdateState`, computed on demand): with
    /// `cluster-require-full-coverage`, every slot assigned to a node not failing; and a
    /// majority of the primaries serving slots reachable.
    /// The per-command path: the state computed at most [`STATE_REFRESH_MS`] ago, or
    /// since the last save of nodes.conf (every change of the table saves it).
    pub fn state_ok(&self, require_full_coverage: bool) -> bool {
        let now = crate::util::mstime();
        let (at, full) = self.state_at_ms.get();
        if (0..STATE_REFRESH_MS).contains(&(now - at)) && full == require_full_coverage {
            return self.cached.get().0;
        }
        let ok = self.update_state(require_full_coverage).0;
        self.state_at_ms.set((now, require_full_coverage));
        ok
    }

    /// `(cluster_state ok, cluster_size)`, recomputed unless this primary is still in its
    /// writable delay with the state `fail`, as upstream's `clusterUpdateState`.
    pub fn update_state(&self, require_full_coverage: bool) -> (bool, usize) {
        let (ok, size) = self.cached.get();
        if !ok
            && self.nodes.myself().is_primary()
            && crate::util::mstime() - self.start_ms < WRITABLE_DELAY
        {
            return (ok, size);
        }
        let v = (self.compute_ok(require_full_coverage), self.size());
        self.cached.set(v);
        v
    }

    fn compute_ok(&self, require_full_coverage: bool) -> bool {
        let t = &self.nodes;
        if require_full_coverage {
            for o in &t.owner {
                match o.and_then(|id| t.get(id)) {
                    Some(n) if n.flags & nflags::FAIL == 0 => {}
                    _ => return false,
                }
            }
        }
        let mut size = 0;
        let mut reachable = 0;
        for (_, n) in t.iter() {
            if n.is_primary() && n.slots.count() > 0 {
                size += 1;
                if n.flags & (nflags::FAIL | nflags::PFAIL) == 0 {
                    reachable += 1;
                }
            }
        }
        reachable > size / 2
    }

    /// The number of primaries serving at least one slot.
    fn size(&self) -> usize {
        self.nodes
            .iter()
            .filter(|(_, n)| n.is_primary() && n.slots.count() > 0)
            .count()
    }

    /// Saves nodes.conf now (atomically, fsynced).
    pub fn save_config(&self) -> std::io::Result<()> {
        self.state_at_ms.set((0, false));
        config_file::save(&self.config_file, &self.nodes.config_text())
    }

    /// Saves nodes.conf after a change; a failure is fatal, as upstream's
    /// `clusterSaveConfigOrDie`.
    pub fn save_config_or_die(&self) {
        self.save_config_or_die_with(true);
    }

    /// [`ClusterState::save_config_or_die`], fsynced or not.
    pub fn save_config_or_die_with(&self, fsync: bool) {
        self.state_at_ms.set((0, false));
        let r = config_file::save_with(&self.config_file, &self.nodes.config_text(), fsync);
        if let Err(e) = r {
            log::warn!(
                "Fatal: can't update cluster config file. ({})",
                config_file::strerror(&e)
            );
            std::process::exit(1);
        }
    }
}

/// Start-up in cluster mode (upstream's `clusterInit`): lock nodes.conf, load it, or
/// create a new node and save it at once. Myself's ports come from the configuration.
pub fn init_at_startup(srv: &mut Server) -> Result<(), String> {
    let path: std::path::PathBuf = srv
        .config
        .get("cluster-config-file")
        .unwrap_or_else(|| "nodes.conf".into())
        .into();
    let lock = config_file::lock(&path)?;
    let text = std::fs::read(&path).map_err(|e| {
        format!(
            "Unrecoverable error: can't open the cluster config file {}: {}",
            path.display(),
            config_file::strerror(&e)
        )
    })?;
    let text = String::from_utf8_lossy(&text);
    let port = srv.config.port;
    let cport: u16 = srv
        .config
        .get("cluster-port")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p != 0)
        .unwrap_or(port.wrapping_add(10000));
    let hostname = srv
        .config
        .get("cluster-announce-hostname")
        .unwrap_or_default();
    let nodename = srv
        .config
        .get("cluster-announce-human-nodename")
        .unwrap_or_default();
    let ipv4 = srv
        .config
        .get("cluster-announce-client-ipv4")
        .unwrap_or_default();
    let ipv6 = srv
        .config
        .get("cluster-announce-client-ipv6")
        .unwrap_or_default();
    let client_port =
        |k: &str| -> u16 { srv.config.get(k).and_then(|p| p.parse().ok()).unwrap_or(0) };
    let zone = srv.config.get("availability-zone").unwrap_or_default();
    let client_tcp = client_port("cluster-announce-client-port");
    let client_tls = client_port("cluster-announce-client-tls-port");
    let st = srv.cluster.get_or_insert_with(Default::default);
    st.start_ms = crate::util::mstime();
    st.config_file = path;
    st.lock = Some(lock);
    let fresh = match config_file::parse(&text)? {
        Some(t) => {
            st.nodes = t;
            log::info!(
                "Node configuration loaded, I'm {}",
                &st.nodes.myself().name[..]
            );
            false
        }
        None => {
            log::info!(
                "No cluster configuration found, I'm {}",
                st.nodes.myself().name
            );
            true
        }
    };
    let me = st.nodes.myself_mut();
    me.tcp_port = port;
    me.cport = cport;
    me.hostname = hostname;
    me.human_nodename = nodename;
    me.client_ipv4 = ipv4;
    me.client_ipv6 = ipv6;
    me.client_tcp_port = client_tcp;
    me.client_tls_port = client_tls;
    me.availability_zone = zone;
    if fresh {
        st.save_config()
            .map_err(|e| format!("Fatal: can't update cluster config file. ({})", e))?;
    }
    Ok(())
}

/// The cluster cron time event (every 100 ms, upstream's `clusterCron`).
pub fn cron_event(el: &mut crate::server::EventLoop, srv: &mut Server, _id: u64) -> i64 {
    gossip::cron(el, srv);
    100
}

/// Cluster work at before-sleep (upstream's `clusterBeforeSleep`).
pub fn before_sleep(el: &mut crate::server::EventLoop, srv: &mut Server) {
    if srv.cluster.is_some() {
        gossip::before_sleep(el, srv);
        remove_channels_in_dropped_slots(srv, None);
    }
}

/// Binds the bus listener and registers it, and the cron (from main, after the client
/// listeners).
pub fn start_bus(el: &mut crate::server::EventLoop, srv: &mut Server) -> Result<(), String> {
    if srv.cluster.is_none() {
        return Ok(());
    }
    link::listen(srv)?;
    link::install_listeners(el, srv).map_err(|e| e.to_string())?;
    el.create_time_event(100, cron_event);
    Ok(())
}

/// The slot view of the node table.
struct TableView<'a> {
    st: &'a ClusterState,
    ok: bool,
    /// The client is connected over IPv6 (announced client IPs).
    v6: bool,
    /// For `cluster-preferred-endpoint-type` (read only when a redirect names a node).
    cfg: &'a crate::config::Config,
}

/// `cluster-preferred-endpoint-type`: 0 ip, 1 hostname, 2 unknown-endpoint.
pub fn endpoint_type(cfg: &crate::config::Config) -> u8 {
    match cfg.get("cluster-preferred-endpoint-type").as_deref() {
        Some("hostname") => 1,
        Some("unknown-endpoint") => 2,
        _ => 0,
    }
}

/// Upstream's `clusterNodePreferredEndpoint`: the node's client IP, its hostname (`?`
/// when it has none), or "" (unknown-endpoint).
pub fn preferred_endpoint(n: &node::Node, ty: u8, v6: bool) -> String {
    match ty {
        1 if n.hostname.is_empty() => "?".to_string(),
        1 => n.hostname.clone(),
        2 => String::new(),
        _ => n.client_ip(v6).to_string(),
    }
}

impl SlotView for TableView<'_> {
    fn myself(&self) -> NodeId {
        MYSELF
    }
    fn my_primary(&self) -> Option<NodeId> {
        let me = self.st.nodes.myself();
        me.replicaof.filter(|_| me.is_replica())
    }
    fn owner(&self, slot: u16) -> Option<NodeId> {
        self.st.nodes.owner.get(slot as usize).copied().flatten()
    }
    fn migrating_to(&self, slot: u16) -> Option<NodeId> {
        self.st.nodes.migrating.get(&slot).copied()
    }
    fn importing_from(&self, slot: u16) -> Option<NodeId> {
        self.st.nodes.importing.get(&slot).copied()
    }
    fn cluster_ok(&self) -> bool {
        self.ok
    }
    fn endpoint(&self, node: NodeId) -> (String, u16) {
        match self.st.nodes.get(node) {
            Some(n) => (
                preferred_endpoint(n, endpoint_type(self.cfg), self.v6),
                n.client_port(),
            ),
            None => (String::new(), 0),
        }
    }
}

/// Step 7 of `process_command` (upstream's processCommand around `getNodeByQuery`): the
/// error to reply when command `id` (with the client's argv, or the queued commands for
/// EXEC) must not run on this node. Called only in cluster mode.
pub fn check_redirect(srv: &Server, c: &Client, id: usize) -> Option<String> {
    let st = srv.cluster.as_deref()?;
    let cmds = &srv.commands.commands;
    let def = cmds[id].def;
    let is_exec = def.name == "exec";
    if is_exec {
        if !c.has_flag(cflags::MULTI) {
            return None;
        }
    } else if def.key_specs.is_empty() && def.flags & cmdf::MOVABLE_KEYS == 0 {
        return None;
    }
    // An EVAL/FCALL of a script with flags is a write or not by those flags (upstream's
    // getCommandFlags).
    let mut flags =
        if def.flags & cmdf::NOSCRIPT != 0 && crate::commands::scripting::is_eval(def.name) {
            crate::commands::scripting::eval_command_flags(srv, &c.argv, def.flags)
        } else {
            def.flags
        };
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut refs = Vec::new();
    if is_exec {
        for q in &c.mstate {
            let d = cmds[q.id].def;
            refs.clear();
            if crate::commands::server::get_keys_into(d, &q.argv, &mut refs).is_some() {
                keys.extend(refs.iter().map(|k| q.argv[k.pos].as_slice()));
            }
            flags |= d.flags & (cmdf::WRITE | cmdf::PUBSUB);
        }
    } else {
        // A spec that does not fit the arguments: the command reports the error.
        crate::commands::server::get_keys_into(def, &c.argv, &mut refs)?;
        keys.extend(refs.iter().map(|k| c.argv[k.pos].as_slice()));
    }
    let view = TableView {
        st,
        ok: st.state_ok(srv.config.cluster_require_full_coverage),
        v6: c.addr.matches(':').count() > 1,
        cfg: &srv.config,
    };
    let q = Query {
        keys: &keys,
        is_write: flags & cmdf::WRITE != 0,
        cmd_asking: def.flags & cmdf::ASKING != 0,
        is_migrate: def.name == "migrate",
        is_pubsubshard: flags & cmdf::PUBSUB != 0,
        asking: c.has_flag(cflags::ASKING),
        readonly: c.has_flag(cflags::READONLY),
        allow_reads_when_down: srv.config.cluster_allow_reads_when_down,
        allow_pubsubshard_when_down: srv.config.cluster_allow_pubsubshard_when_down,
    };
    let db = c.db;
    let mut exists =
        |k: &[u8]| srv.dbs[db].kv.get(k).is_some() && !crate::db::key_is_expired(srv, db, k);
    redirect::get_node_by_query(&view, &q, &mut exists).error_text(&view)
}

/// The redirection decision for a command run by a script (server.call, upstream's
/// `scriptVerifyClusterState`): the keys of `c.argv` (command `id`), with the calling
/// client's READONLY and ASKING flags. Returns the decision and the slot of the keys
/// (`None` for a command without keys). Called only in cluster mode.
pub fn script_redirect(
    srv: &Server,
    c: &Client,
    id: usize,
    readonly: bool,
    asking: bool,
) -> (redirect::Redirect, Option<u16>) {
    let Some(st) = srv.cluster.as_deref() else {
        return (redirect::Redirect::Local, None);
    };
    let def = srv.commands.commands[id].def;
    let mut refs = Vec::new();
    if crate::commands::server::get_keys_into(def, &c.argv, &mut refs).is_none() {
        return (redirect::Redirect::Local, None);
    }
    let keys: Vec<&[u8]> = refs.iter().map(|k| c.argv[k.pos].as_slice()).collect();
    let slot = keys.first().map(|k| slot::key_hash_slot(k));
    let view = TableView {
        st,
        ok: st.state_ok(srv.config.cluster_require_full_coverage),
        v6: c.addr.matches(':').count() > 1,
        cfg: &srv.config,
    };
    let q = Query {
        keys: &keys,
        is_write: def.flags & cmdf::WRITE != 0,
        cmd_asking: def.flags & cmdf::ASKING != 0,
        is_migrate: def.name == "migrate",
        is_pubsubshard: def.flags & cmdf::PUBSUB != 0,
        asking,
        readonly,
        allow_reads_when_down: srv.config.cluster_allow_reads_when_down,
        allow_pubsubshard_when_down: srv.config.cluster_allow_pubsubshard_when_down,
    };
    let db = c.db;
    let mut exists =
        |k: &[u8]| srv.dbs[db].kv.get(k).is_some() && !crate::db::key_is_expired(srv, db, k);
    (redirect::get_node_by_query(&view, &q, &mut exists), slot)
}

/// Upstream's `clusterRedirectBlockedClientIfNeeded`: the error for a client blocked on
/// keys (lists, sorted sets, streams; not WAIT) that this node no longer serves.
/// `CLUSTERDOWN The cluster is down` when the cluster state is `fail` (even with
/// `cluster-allow-reads-when-down`: only a write could unblock it), `CLUSTERDOWN Hash
/// slot not served` for an unassigned slot, `MOVED` when another node owns the slot and
/// this one does not import it. A READONLY client blocked in a read command (XREAD) on a
/// replica of the slot's owner stays. None: the client stays blocked.
pub fn blocked_client_redirect(srv: &Server, c: &Client) -> Option<String> {
    let st = srv.cluster.as_deref()?;
    if !c.has_flag(cflags::BLOCKED) {
        return None;
    }
    // Blocked on keys: WAIT and the pause leave no keys.
    let (key, _) = c.bstate.as_deref()?.keys.first()?;
    if !st.state_ok(srv.config.cluster_require_full_coverage) {
        return Some(redirect::ERR_DOWN_STATE.to_string());
    }
    let slot = slot::key_hash_slot(key);
    let t = &st.nodes;
    let mut node = t.owner[slot as usize];
    let me = t.myself();
    if c.has_flag(cflags::READONLY) && me.is_replica() && me.replicaof == node {
        let write = srv.commands.lookup(&c.argv).map_or(true, |id| {
            srv.commands.commands[id].def.flags & cmdf::WRITE != 0
        });
        if !write {
            node = Some(MYSELF);
        }
    }
    if node == Some(MYSELF) || t.importing.contains_key(&slot) {
        return None;
    }
    let Some(n) = node else {
        return Some(redirect::ERR_DOWN_UNBOUND.to_string());
    };
    let view = TableView {
        st,
        ok: true,
        v6: c.addr.matches(':').count() > 1,
        cfg: &srv.config,
    };
    redirect::Redirect::Moved(slot, n).error_text(&view)
}

/// Redirects (with [`blocked_client_redirect`]'s error) and unblocks the blocked clients in
/// `slots` whose keys this node no longer serves: upstream's `clientsCronHandleTimeout`
/// part for cluster mode, called by the clients cron for the clients it visits.
pub fn redirect_blocked_clients(srv: &mut Server, slots: &[usize]) {
    if srv.cluster.is_none() {
        return;
    }
    for &slot in slots {
        let err = match srv.clients.get(slot) {
            Some(Some(c)) => blocked_client_redirect(srv, c),
            _ => None,
        };
        let Some(err) = err else {
            continue;
        };
        if let Some(mut c) = crate::networking::take_client(srv, slot) {
            crate::blocked::unblock_client_on_error(srv, &mut c, &err);
            crate::networking::put_client(srv, c);
        }
    }
}

/// Upstream's `pubsubShardUnsubscribeAllChannelsInSlot` for every slot the node table
/// unassigned since the last call (`clusterDelSlot` calls `removeChannelsInSlot`): each
/// subscriber of a shard channel of those slots is unsubscribed from it and gets a
/// `sunsubscribe` message. `cur` is the client whose command is running (out of the
/// client table), if any. Called after the cluster commands that drop slots and at
/// before-sleep (slots lost to gossip, UPDATE, failover).
pub fn remove_channels_in_dropped_slots(srv: &mut Server, cur: Option<&mut Client>) {
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    if st.nodes.dropped_slots.is_empty() {
        return;
    }
    let mut dropped = slot::SlotBitmap::default();
    for s in st.nodes.dropped_slots.drain(..) {
        dropped.set(s);
    }
    remove_shard_channels_where(srv, cur, |s| dropped.test(s));
}

/// Upstream's `removeAllNotOwnedShardChannelSubscriptions`, when this node becomes a
/// replica of another primary: the shard channels of every slot its new primary does not
/// own go.
pub fn remove_not_owned_shard_channels(srv: &mut Server) {
    let Some(st) = srv.cluster.as_deref() else {
        return;
    };
    let me = st.nodes.myself();
    let primary = if me.is_primary() {
        Some(MYSELF)
    } else {
        me.replicaof
    };
    let owner = st.nodes.owner.clone();
    remove_shard_channels_where(srv, None, |s| owner[s as usize] != primary);
}

/// Unsubscribes (with a `sunsubscribe` message each) every subscriber of the shard
/// channels whose slot satisfies `gone`.
fn remove_shard_channels_where(
    srv: &mut Server,
    mut cur: Option<&mut Client>,
    gone: impl Fn(u16) -> bool,
) {
    if srv.pubsub.shard_channels.is_empty() {
        return;
    }
    let chans: Vec<(Vec<u8>, Vec<usize>)> = srv
        .pubsub
        .shard_channels
        .iter()
        .filter(|(ch, _)| gone(slot::key_hash_slot(ch)))
        .map(|(ch, set)| (ch.clone(), set.iter().copied().collect()))
        .collect();
    for (ch, subs) in chans {
        for slot in subs {
            match cur.as_deref_mut() {
                Some(c) if c.slot == slot => {
                    crate::pubsub::unsubscribe_channel(
                        srv,
                        c,
                        &ch,
                        crate::pubsub::Kind::Shard,
                        true,
                    );
                    crate::pubsub::unmark_if_idle(srv, c);
                }
                _ => {
                    let Some(mut c) = crate::networking::take_client(srv, slot) else {
                        continue;
                    };
                    crate::pubsub::unsubscribe_channel(
                        srv,
                        &mut c,
                        &ch,
                        crate::pubsub::Kind::Shard,
                        true,
                    );
                    crate::pubsub::unmark_if_idle(srv, &mut c);
                    if c.has_pending_replies() && !c.pending_write {
                        c.pending_write = true;
                        srv.clients_pending_write.push(c.slot);
                    }
                    crate::networking::put_client(srv, c);
                }
            }
        }
    }
}
