//! The server state and its periodic work: `Server` is upstream's `struct valkeyServer`,
//! `server_cron` is `serverCron`, `before_sleep` is `beforeSleep`.
//!
//! One thread owns a `Server` and runs every command; the event loop hands it to each
//! handler by `&mut`, so nothing else can touch the keyspace.

use std::collections::HashMap;

use slab::Slab;

use crate::client::{flags as cflags, Client};
use crate::commands::CommandTable;
use crate::config::Config;
use crate::db::Db;
use crate::networking::Listener;
use crate::reply::ReplyBuf;
use crate::util;

pub type EventLoop = ae::EventLoop<Server>;

/// Server-wide counters for INFO stats.
#[derive(Default, Debug)]
pub struct Stats {
    pub numcommands: u64,
    pub numconnections: u64,
    pub rejected_conn: u64,
    pub expiredkeys: u64,
    /// Hash fields deleted by field expiration (`expired_fields`).
    pub expired_fields: u64,
    pub expired_stale_perc: f64,
    pub expired_time_cap_reached_count: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    /// Bytes read from our primary (link and primary client) and written to replicas
    /// (INFO `total_net_repl_input_bytes` / `total_net_repl_output_bytes`); as upstream
    /// they are not part of `net_input_bytes` / `net_output_bytes`.
    pub net_repl_input_bytes: u64,
    pub net_repl_output_bytes: u64,
    pub total_error_replies: u64,
    /// errorstat_<CODE>:count=N.
    pub errors: HashMap<String, u64>,
    pub client_qbuf_limit_disconnections: u64,
    pub client_outbuf_limit_disconnections: u64,
    pub unexpected_error_replies: u64,
    pub total_reads_processed: u64,
    pub total_writes_processed: u64,
    /// Keys evicted for maxmemory (`evicted_keys`).
    pub evictedkeys: u64,
    /// Time spent over maxmemory, in us, and since when we are now (src/evict.rs).
    pub total_eviction_exceeded_us: u64,
    pub eviction_exceeded_since: Option<std::time::Instant>,
    /// Rates sampled every 100 ms (upstream's `inst_metric`): network input and output
    /// bytes (replication included), replication input and output bytes, commands.
    pub inst: [InstMetric; 5],
}

/// One instantaneous metric: the last 16 per-second rates, sampled every 100 ms
/// (upstream's `trackInstantaneousMetric` / `getInstantaneousMetric`).
#[derive(Default, Debug, Clone, Copy)]
pub struct InstMetric {
    samples: [u64; 16],
    idx: usize,
    last_value: u64,
    last_ms: i64,
}

impl InstMetric {
    /// Records `value` (a running total) at `now_ms`.
    pub fn track(&mut self, value: u64, now_ms: i64) {
        if self.last_ms > 0 && now_ms > self.last_ms {
            let rate =
                value.saturating_sub(self.last_value) * 1000 / (now_ms - self.last_ms) as u64;
            self.samples[self.idx] = rate;
            self.idx = (self.idx + 1) % self.samples.len();
        }
        self.last_value = value;
        self.last_ms = now_ms;
    }

    /// The mean of the samples, per second.
    pub fn get(&self) -> u64 {
        self.samples.iter().sum::<u64>() / self.samples.len() as u64
    }
}

impl Stats {
    /// Records an error reply that was just added to `r`, for INFO errorstats.
    pub fn note_error(&mut self, r: &ReplyBuf) {
        self.total_error_replies += 1;
        if let Some(code) = &r.last_error_code {
            // Upstream caps the number of distinct error codes it tracks at 128.
            if self.errors.len() < 128 || self.errors.contains_key(code) {
                *self.errors.entry(code.clone()).or_insert(0) += 1;
            }
        }
    }
}

pub struct Server {
    pub config: Config,
    pub config_file: Option<String>,
    pub executable: String,
    pub dbs: Vec<Db>,
    /// Connected clients, keyed by slab slot; `None` while the client is being served
    /// (taken out so handlers can borrow it and the server separately).
    pub clients: Slab<Option<Box<Client>>>,
    pub listeners: Vec<Listener>,
    /// The TLS context new TLS connections use (None while TLS is not configured).
    pub tls: Option<crate::tls::TlsContext>,
    /// New `tls-port` listeners bound by CONFIG SET, swapped in at before-sleep (the
    /// event loop is not reachable from a command).
    pub pending_tls_listeners: Option<Vec<mio::net::TcpListener>>,
    pub commands: CommandTable,
    pub stats: Stats,
    pub next_client_id: u64,
    /// Slots of clients with output to flush in before-sleep.
    pub clients_pending_write: Vec<usize>,
    /// Slots of clients to free in before-sleep (closed asynchronously).
    pub clients_to_close: Vec<(usize, u64)>,
    /// MONITOR clients' slots (src/monitor.rs).
    pub monitors: Vec<usize>,
    /// CLIENT PAUSE state (src/pause.rs).
    pub pause: crate::pause::Pause,
    /// An accept failed (EMFILE...): cron retries instead of the loop spinning.
    pub accept_retry: bool,
    /// Next client table slot clients_cron visits (it covers every client once a second).
    pub clients_cron_cursor: usize,
    /// WATCHed keys: (db, key) -> client slots.
    pub watched_keys: HashMap<(usize, Vec<u8>), Vec<usize>>,
    /// Changes since the last save (`rdb_changes_since_last_save`).
    pub dirty: u64,
    pub start_time_ms: i64,
    pub run_id: String,
    /// The cached clocks, updated before each command batch and in cron.
    pub mstime: i64,
    pub unixtime: i64,
    /// serverCron iterations.
    pub cronloops: u64,
    /// Current effective hz (dynamic-hz may raise it).
    pub hz: u32,
    /// Active expire cycle state.
    pub active_expire_enabled: bool,
    pub active_expire_db: usize,
    /// The last active expire cycle stopped on its time limit.
    pub expire_timelimit_exit: bool,
    /// When the last fast expire cycle started (unix us).
    pub expire_last_fast_cycle_us: i64,
    pub shutdown_asap: bool,
    /// Supervision, pid file, shutdown progress (src/ops.rs).
    pub ops: crate::ops::OpsState,
    pub lruclock: u32,
    /// The slot of the client whose command is running (it is taken out of `clients`).
    pub current_client: Option<usize>,
    /// The running client asked CLIENT NO-TOUCH: reads do not update the LRU clock.
    pub current_client_no_touch: bool,
    /// Flags to add to the current client when its command returns (DIRTY_CAS when it
    /// touched a key it WATCHes itself).
    pub current_client_add_flags: u64,
    /// Blocking operations (loading, busy scripts) and serving clients meanwhile
    /// (src/busy.rs).
    pub busy: crate::busy::Busy,
    /// Peak of `used_memory`.
    pub stat_peak_memory: usize,
    /// Startup memory, sampled allocator statistics, client memory (src/memory.rs).
    pub mem: crate::memory::MemState,
    /// Clients blocked on keys, ready keys, blocked-client timeouts (src/blocked.rs).
    pub blocked: crate::blocked::Blocked,
    /// The slow, large-request and large-reply logs (src/commandlog.rs).
    pub commandlog: crate::commandlog::CommandLogs,
    /// The latency monitor's event series (src/latency.rs).
    pub latency: crate::latency::Latency,
    /// Writes queued for the AOF / replicas by the running execution unit (src/propagate.rs).
    pub propagation: crate::propagate::Propagation,
    /// The append-only file (src/aof.rs).
    pub aof: crate::aof::Aof,
    /// Channels, shard channels and patterns with their subscribers (src/pubsub.rs).
    pub pubsub: crate::pubsub::PubSub,
    /// Client-side caching: tracked keys, BCAST prefixes (src/tracking.rs).
    pub tracking: crate::tracking::Tracking,
    /// RDB persistence state: the BGSAVE child, last save, stats (src/rdb.rs).
    pub rdb: crate::rdb::Persist,
    /// Replication: IDs, offsets, backlog, replicas, the link to a primary
    /// (src/replication.rs).
    pub repl: crate::replication::Repl,
    /// Users, ACL LOG and the cached state of the gate (src/aclsrv.rs).
    pub acl: crate::aclsrv::AclState,
    /// AUTH brute-force throttling (src/authguard.rs).
    pub authguard: crate::authguard::AuthGuard,
    /// The audit log (src/audit.rs).
    pub audit: crate::audit::Audit,
    /// maxmemory: the eviction pool and the cached policy (src/evict.rs).
    pub evict: crate::evict::EvictState,
    /// Lua scripting: the EVAL state, the script cache, the running script (src/scripting/).
    pub scripting: crate::scripting::Scripting,
    /// Cluster mode (`cluster-enabled yes`): the slot table (src/cluster/mod.rs).
    pub cluster: Option<Box<crate::cluster::ClusterState>>,
    /// Cached connections to MIGRATE targets (src/commands/migrate.rs).
    pub migrate_sockets: crate::commands::migrate::SocketCache,
}

impl Server {
    pub fn new(config: Config) -> Server {
        let now = util::mstime();
        // Cluster mode: `cluster-databases` databases, each keeping a per-slot key index.
        let ndbs = if config.cluster_enabled {
            crate::kvstore::enable_slot_index();
            config
                .get("cluster-databases")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1)
        } else {
            config.databases
        };
        let cluster = config
            .cluster_enabled
            .then(|| Box::new(crate::cluster::ClusterState::new()));
        let dbs = (0..ndbs).map(Db::new).collect();
        let hz = config.hz;
        let commands = CommandTable::new();
        let acl = crate::aclsrv::AclState::new(&commands, &config);
        let evict = crate::evict::EvictState::new(&config);
        Server {
            config,
            config_file: None,
            executable: std::env::args().next().unwrap_or_default(),
            dbs,
            clients: Slab::new(),
            listeners: Vec::new(),
            tls: None,
            pending_tls_listeners: None,
            commands,
            stats: Stats::default(),
            next_client_id: 1,
            clients_pending_write: Vec::new(),
            clients_to_close: Vec::new(),
            monitors: Vec::new(),
            pause: Default::default(),
            accept_retry: false,
            clients_cron_cursor: 0,
            watched_keys: HashMap::new(),
            dirty: 0,
            start_time_ms: now,
            run_id: util::random_hex40(),
            mstime: now,
            unixtime: now / 1000,
            cronloops: 0,
            hz,
            active_expire_enabled: true,
            active_expire_db: 0,
            expire_timelimit_exit: false,
            expire_last_fast_cycle_us: 0,
            shutdown_asap: false,
            ops: Default::default(),
            lruclock: lru_clock(now),
            stat_peak_memory: 0,
            mem: Default::default(),
            current_client: None,
            current_client_add_flags: 0,
            current_client_no_touch: false,
            busy: Default::default(),
            blocked: crate::blocked::Blocked::default(),
            commandlog: crate::commandlog::CommandLogs::default(),
            latency: crate::latency::Latency::default(),
            propagation: crate::propagate::Propagation::default(),
            aof: crate::aof::Aof::default(),
            pubsub: crate::pubsub::PubSub::default(),
            tracking: crate::tracking::Tracking::default(),
            rdb: crate::rdb::Persist::new(now / 1000),
            repl: crate::replication::Repl::new(),
            acl,
            authguard: Default::default(),
            audit: Default::default(),
            evict,
            scripting: crate::scripting::Scripting::new(),
            cluster,
            migrate_sockets: Default::default(),
        }
    }

    /// Refreshes the cached clocks.
    #[inline]
    pub fn update_cached_time(&mut self) {
        self.mstime = util::mstime();
        self.unixtime = self.mstime / 1000;
    }

    /// Whether `c` may run commands that need authentication. Until ACLs land (issue 7)
    /// a client is authenticated unless `requirepass` is set and it has not passed AUTH.
    pub fn client_is_authenticated(&self, c: &Client) -> bool {
        c.authenticated || self.acl.default_open
    }

    /// Marks every client watching `key` in `db` as dirty (upstream's `touchWatchedKey`).
    /// Every write to a key must call this, through `db::signal_modified_key`.
    pub fn touch_watched_key(&mut self, db: usize, key: &[u8]) {
        if self.watched_keys.is_empty() {
            return;
        }
        if let Some(slots) = self.watched_keys.get(&(db, key.to_vec())) {
            for &s in slots {
                if Some(s) == self.current_client {
                    self.current_client_add_flags |= cflags::DIRTY_CAS;
                } else if let Some(Some(c)) = self.clients.get_mut(s) {
                    c.flags |= cflags::DIRTY_CAS;
                }
            }
        }
    }

    /// Marks every client watching any key of `db` (or every db when None) as dirty:
    /// FLUSHDB, FLUSHALL, SWAPDB.
    pub fn touch_all_watched_keys_in_db(&mut self, db: Option<usize>) {
        let slots: Vec<usize> = self
            .watched_keys
            .iter()
            .filter(|((d, _), _)| db.is_none_or(|x| x == *d))
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        for s in slots {
            if Some(s) == self.current_client {
                self.current_client_add_flags |= cflags::DIRTY_CAS;
            } else if let Some(Some(c)) = self.clients.get_mut(s) {
                c.flags |= cflags::DIRTY_CAS;
            }
        }
    }

    /// Number of connected clients (including one currently taken out to run).
    pub fn connected_clients(&self) -> usize {
        self.clients.len()
    }
}

/// LRU clock resolution in ms, as `LRU_CLOCK_RESOLUTION`.
pub const LRU_CLOCK_RESOLUTION: i64 = 1000;
/// The LRU clock wraps at 24 bits.
pub const LRU_CLOCK_MAX: u32 = (1 << 24) - 1;

pub fn lru_clock(now_ms: i64) -> u32 {
    ((now_ms / LRU_CLOCK_RESOLUTION) as u32) & LRU_CLOCK_MAX
}

/// Idle ms of an object with the given LRU clock, as `estimateObjectIdleTime`.
pub fn estimate_idle_time_ms(now_lru: u32, obj_lru: u32) -> u64 {
    if now_lru >= obj_lru {
        (now_lru - obj_lru) as u64 * LRU_CLOCK_RESOLUTION as u64
    } else {
        (now_lru as u64 + (LRU_CLOCK_MAX - obj_lru) as u64) * LRU_CLOCK_RESOLUTION as u64
    }
}

/// `serverCron`: runs `hz` times per second.
pub fn server_cron(el: &mut EventLoop, srv: &mut Server, _id: u64) -> i64 {
    srv.update_cached_time();
    srv.lruclock = lru_clock(srv.mstime);
    srv.cronloops += 1;

    // Dynamic hz: raise the frequency with the number of clients, as upstream.
    srv.hz = srv.config.hz.clamp(1, 500);
    if srv.config.dynamic_hz {
        let mut clients = srv.connected_clients();
        while clients / (srv.hz as usize * 200) > 0 && srv.hz < 500 {
            srv.hz = (srv.hz * 2).min(500);
            clients /= 2;
        }
    }

    // An accept failed on a resource limit: try the listeners again once per cron tick
    // rather than spinning (CVE-2025-48367).
    if srv.accept_retry {
        srv.accept_retry = false;
        for l in &srv.listeners {
            el.set_pending(l.fd(), ae::READABLE);
        }
    }
    crate::networking::clients_cron(srv);
    crate::db::databases_cron(srv);

    crate::memory::cron_update_memory_stats(srv);

    // Instantaneous network rates, every 100 ms (upstream's run_with_period(100)).
    let period = (100 * srv.hz as u64 / 1000).max(1);
    if srv.cronloops.is_multiple_of(period) {
        let st = &mut srv.stats;
        let now = srv.mstime;
        let values = [
            st.net_input_bytes + st.net_repl_input_bytes,
            st.net_output_bytes + st.net_repl_output_bytes,
            st.net_repl_input_bytes,
            st.net_repl_output_bytes,
            st.numcommands,
        ];
        for (m, v) in st.inst.iter_mut().zip(values) {
            m.track(v, now);
        }
    }

    crate::rdb::cron(srv);
    crate::aof::cron(srv);
    // replicationCron, once per second.
    if srv.cronloops.is_multiple_of((srv.hz as u64).max(1)) {
        crate::replication::cron(el, srv);
        crate::commands::migrate::close_timed_out_sockets(srv);
    }
    crate::tls::auto_reload_cron(srv);
    crate::tracking::cron(srv);

    1000 / srv.hz as i64
}

/// `beforeSleep`: flushes client output, frees clients closed asynchronously, runs the
/// fast active expire cycle.
pub fn before_sleep(el: &mut EventLoop, srv: &mut Server) {
    if crate::busy::serving(srv) {
        // Serving clients while blocked (src/busy.rs): only the flushing part, as
        // upstream's beforeSleep when ProcessingEventsWhileBlocked. The AOF buffer is
        // written first unless a load is running (nothing is fed then).
        if !srv.rdb.loading {
            crate::aof::before_sleep(srv);
        }
        // Replies written count as work done (upstream's events_processed_while_blocked):
        // another nested turn then reads what the client sends next.
        let pending = srv.clients_pending_write.len();
        crate::networking::handle_clients_with_pending_writes(el, srv);
        let written = pending.saturating_sub(srv.clients_pending_write.len());
        srv.busy.events_processed_while_blocked += written as u64;
        crate::networking::free_clients_in_async_free_queue(el, srv);
        return;
    }
    if std::mem::take(&mut srv.busy.resume_primary) {
        crate::replication::replica::run_buffered_stream(el, srv);
    }
    // CONFIG SET maxclients raised the limit: the loop watches that many descriptors.
    let setsize = srv.config.maxclients.saturating_add(128);
    if el.setsize() < setsize {
        el.resize_setsize(setsize);
    }
    crate::db::active_expire_cycle(srv, crate::db::ExpireCycle::Fast);
    crate::evict::before_sleep(el, srv);
    crate::replication::before_sleep(el, srv);
    crate::pause::before_sleep(srv);
    crate::blocked::blocked_before_sleep(el, srv);
    // BCAST invalidations of the keys modified in this turn (upstream's place: after
    // the blocked clients, before the AOF write).
    crate::tracking::before_sleep(srv);
    // The AOF is written (and with `appendfsync always` fsynced) before any reply of
    // this turn leaves.
    crate::aof::before_sleep(srv);
    crate::cluster::before_sleep(el, srv);
    crate::networking::handle_clients_with_pending_writes(el, srv);
    // Clients over `maxmemory-clients` go before key eviction would (src/memory.rs).
    crate::memory::evict_clients(el, srv, None);
    crate::networking::free_clients_in_async_free_queue(el, srv);
    if srv.pending_tls_listeners.is_some() {
        crate::networking::swap_tls_listeners(el, srv);
    }
    if srv.ops.exit_now {
        // SHUTDOWN finished the shutdown: leave the loop right away.
        el.stop();
    }
}
