//! Memory introspection and client eviction: upstream's `getMemoryOverheadData`,
//! `objectComputeSize`, `getMemoryDoctorReport` (object.c), the memory part of
//! `serverCron` (`cronUpdateMemoryStats`), INFO memory, and the client memory tracking and
//! eviction of networking.c (`getClientMemoryUsage`, `updateClientMemUsageAndBucket`,
//! `evictClients`).
//!
//! # Layout
//!
//! - [`MemState`] lives in `Server::mem`: the startup memory, the allocator statistics
//!   sampled by cron, and the memory of the clients summed per client type (kept up to
//!   date incrementally, so INFO and eviction never walk every client).
//! - [`overhead`] is `getMemoryOverheadData`: what of `used_memory` is not the dataset.
//! - [`info_memory`] writes INFO's memory section in upstream's field order.
//! - [`object_size`] is MEMORY USAGE: the bytes the allocator reports for the key's
//!   table entry and everything the value owns.
//! - Client eviction (`maxmemory-clients`): [`update_client_mem_usage`] after a client is
//!   served, [`evict_clients`] in before-sleep and after each read.

use std::fmt::Write;

use log::{info, warn};

use crate::client::{flags as cflags, Client};
use crate::object::ValueRef;
use crate::server::{EventLoop, Server};
use crate::zmalloc;

/// Upstream's client types, the index of [`MemState::clients_type_memory`].
pub const CLIENT_TYPE_NORMAL: usize = 0;
pub const CLIENT_TYPE_REPLICA: usize = 1;
pub const CLIENT_TYPE_PUBSUB: usize = 2;
pub const CLIENT_TYPE_PRIMARY: usize = 3;

/// Client eviction groups clients in buckets of powers of two of their memory, from
/// 32 KB (2^15, everything smaller shares the first bucket) to 8 GB (2^33), as upstream's
/// `CLIENT_MEM_USAGE_BUCKET_MIN_LOG` / `MAX_LOG`; the biggest bucket is evicted first.
const CLIENT_MEM_USAGE_BUCKET_MIN_LOG: u32 = 15;
const CLIENT_MEM_USAGE_BUCKET_MAX_LOG: u32 = 33;

/// The floor of the client eviction limit, so a tiny `maxmemory-clients` can not make the
/// server unreachable (upstream's 128 KB).
const CLIENT_EVICTION_LIMIT_MIN_BYTES: usize = 128 * 1024;

/// Allocator statistics sampled by cron (upstream's `cron_malloc_stats`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CronMallocStats {
    pub zmalloc_used: usize,
    pub process_rss: usize,
    pub allocator_allocated: usize,
    pub allocator_active: usize,
    pub allocator_resident: usize,
    pub allocator_muzzy: usize,
    pub allocator_frag_smallbins_bytes: usize,
}

/// The server's memory bookkeeping (`Server::mem`).
#[derive(Debug, Default)]
pub struct MemState {
    /// `used_memory` once the server was initialised, before loading data
    /// (`used_memory_startup`).
    pub initial_memory_usage: usize,
    pub cron: CronMallocStats,
    /// Unix ms of the last allocator sampling.
    last_sample_ms: i64,
    /// Memory of the connected clients by client type (upstream's
    /// `stat_clients_type_memory`), from each client's last update.
    pub clients_type_memory: [usize; 4],
    /// Clients closed by client eviction (`evicted_clients`).
    pub stat_evicted_clients: u64,
}

/// Upstream's `getClientType` (MONITOR clients count as normal here).
pub fn client_type(c: &Client) -> usize {
    if c.has_flag(cflags::PRIMARY) {
        CLIENT_TYPE_PRIMARY
    } else if c.has_flag(cflags::REPLICA) {
        CLIENT_TYPE_REPLICA
    } else if c.has_flag(cflags::PUBSUB) {
        CLIENT_TYPE_PUBSUB
    } else {
        CLIENT_TYPE_NORMAL
    }
}

/// The memory a client holds (upstream's `getClientMemoryUsage`): output buffer, query
/// buffer, the client structure, the arguments of the command being run and of the
/// commands queued by MULTI, and the bookkeeping of WATCHed keys and subscriptions.
/// Returns (total, output buffer part). O(1): arguments are counted by their summed
/// lengths, as upstream.
pub fn client_memory_usage(c: &Client) -> (usize, usize) {
    let obuf = zmalloc::vec_usable(&c.reply.buf);
    let mut mem = obuf;
    mem += zmalloc::vec_usable(&c.query_buf);
    mem += std::mem::size_of::<Client>();
    mem += c.argv_len_sum + c.argv.len() * std::mem::size_of::<Vec<u8>>();
    mem += c.mstate_argv_len_sum
        + c.mstate.capacity() * std::mem::size_of::<crate::client::QueuedCommand>();
    mem += c.watched_keys.capacity() * std::mem::size_of::<(usize, Vec<u8>)>();
    if let Some(p) = &c.pubsub {
        let n = p.channels.len() + p.patterns.len() + p.shard_channels.len();
        mem += n * std::mem::size_of::<Vec<u8>>();
    }
    (mem, obuf)
}

/// Refreshes the client's entry in the per-type totals (upstream's
/// `updateClientMemoryUsage`); called whenever a client goes back to the client table.
#[inline]
pub fn update_client_mem_usage(mem: &mut MemState, c: &mut Client) {
    let (now, _) = client_memory_usage(c);
    let t = client_type(c);
    let old = &mut mem.clients_type_memory[c.last_memory_type as usize];
    *old = old.saturating_sub(c.last_memory_usage);
    mem.clients_type_memory[t] += now;
    c.last_memory_usage = now;
    c.last_memory_type = t as u8;
}

/// Removes a client being freed from the per-type totals.
pub fn remove_client_mem_usage(mem: &mut MemState, c: &mut Client) {
    let old = &mut mem.clients_type_memory[c.last_memory_type as usize];
    *old = old.saturating_sub(c.last_memory_usage);
    c.last_memory_usage = 0;
}

/// The client eviction limit in bytes, 0 when client eviction is off (upstream's
/// `getClientEvictionLimit`): `maxmemory-clients` in bytes, or as a percentage of
/// `maxmemory` (stored negative), never below 128 KB.
pub fn client_eviction_limit(srv: &Server) -> usize {
    let mc = srv.config.maxmemory_clients;
    let limit = if mc < 0 && srv.config.maxmemory > 0 {
        let b = srv.config.maxmemory as f64 * (-(mc as f64)) / 100.0;
        if b >= usize::MAX as f64 {
            usize::MAX
        } else {
            b as usize
        }
    } else if mc > 0 {
        mc as usize
    } else {
        return 0;
    };
    limit.max(CLIENT_EVICTION_LIMIT_MIN_BYTES)
}

/// Whether a client may be evicted (upstream's `clientEvictionAllowed`): normal and
/// Pub/Sub clients without CLIENT NO-EVICT; never a replica or our primary.
pub fn client_eviction_allowed(c: &Client) -> bool {
    if c.has_flag(cflags::NO_EVICT) {
        return false;
    }
    matches!(client_type(c), CLIENT_TYPE_NORMAL | CLIENT_TYPE_PUBSUB)
}

/// The bucket of a client of `mem` bytes (upstream's `getMemUsageBucket`).
fn mem_usage_bucket(mem: usize) -> u32 {
    let bits = usize::BITS - mem.leading_zeros();
    bits.clamp(
        CLIENT_MEM_USAGE_BUCKET_MIN_LOG,
        CLIENT_MEM_USAGE_BUCKET_MAX_LOG,
    ) - CLIENT_MEM_USAGE_BUCKET_MIN_LOG
}

/// Memory of the clients that client eviction counts: normal and Pub/Sub.
fn evictable_clients_memory(srv: &Server) -> usize {
    srv.mem.clients_type_memory[CLIENT_TYPE_NORMAL]
        + srv.mem.clients_type_memory[CLIENT_TYPE_PUBSUB]
}

/// Upstream's `evictClients`: while the clients use more than the limit, frees the
/// evictable clients of the biggest bucket first. `current` is the client being served
/// (out of the client table); the return value says whether it must be closed too (the
/// caller frees it: it is not in the table).
pub fn evict_clients(el: &mut EventLoop, srv: &mut Server, current: Option<&mut Client>) -> bool {
    let limit = client_eviction_limit(srv);
    if limit == 0 || evictable_clients_memory(srv) < limit {
        return false;
    }
    // (bucket, slot or None for the current client): the biggest buckets first, each
    // bucket in table order, as upstream walks its bucket lists.
    let mut cands: Vec<(u32, Option<usize>)> = Vec::new();
    if let Some(c) = current.as_deref() {
        if client_eviction_allowed(c) {
            cands.push((mem_usage_bucket(c.last_memory_usage), None));
        }
    }
    for (slot, o) in srv.clients.iter() {
        if let Some(c) = o.as_deref() {
            if client_eviction_allowed(c) && !c.has_flag(cflags::CLOSE_ASAP) {
                cands.push((mem_usage_bucket(c.last_memory_usage), Some(slot)));
            }
        }
    }
    cands.sort_by_key(|c| std::cmp::Reverse(c.0));
    let mut evict_current = false;
    let mut current = current;
    for (_, who) in cands {
        if evictable_clients_memory(srv) < limit {
            break;
        }
        match who {
            None => {
                if let Some(c) = current.as_deref_mut() {
                    let line = crate::commands::connection::client_info_line(srv, c, false);
                    info!("Evicting client: {}", line);
                    remove_client_mem_usage(&mut srv.mem, c);
                    srv.mem.stat_evicted_clients += 1;
                    evict_current = true;
                }
            }
            Some(slot) => {
                if let Some(mut c) = crate::networking::take_client(srv, slot) {
                    let line = crate::commands::connection::client_info_line(srv, &c, false);
                    info!("Evicting client: {}", line);
                    remove_client_mem_usage(&mut srv.mem, &mut c);
                    srv.mem.stat_evicted_clients += 1;
                    crate::networking::free_client(el, srv, c);
                }
            }
        }
    }
    if evictable_clients_memory(srv) >= limit {
        warn!("Over client maxmemory after evicting all evictable clients");
    }
    evict_current
}

/// The memory part of serverCron (upstream's `cronUpdateMemoryStats`): the peak, and
/// every 100 ms a sample of RSS and of the allocator's statistics. With libc malloc the
/// allocator reports nothing and upstream's substitutes apply: resident = active = RSS,
/// allocated = `used_memory`.
pub fn cron_update_memory_stats(srv: &mut Server) {
    let used = zmalloc::used_memory();
    if used > srv.stat_peak_memory {
        srv.stat_peak_memory = used;
    }
    if srv.mem.last_sample_ms != 0 && srv.mstime - srv.mem.last_sample_ms < 100 {
        return;
    }
    srv.mem.last_sample_ms = srv.mstime;
    let ai = zmalloc::allocator_info();
    let mut s = CronMallocStats {
        zmalloc_used: used,
        process_rss: zmalloc::rss(),
        allocator_allocated: ai.allocated,
        allocator_active: ai.active,
        allocator_resident: ai.resident,
        allocator_muzzy: ai.muzzy,
        allocator_frag_smallbins_bytes: ai.frag_smallbins_bytes,
    };
    if s.allocator_resident == 0 {
        // No Lua here: the whole RSS is the allocator's.
        s.allocator_resident = s.process_rss;
    }
    if s.allocator_active == 0 {
        s.allocator_active = s.allocator_resident;
    }
    if s.allocator_allocated == 0 {
        s.allocator_allocated = s.zmalloc_used;
    }
    srv.mem.cron = s;
}

/// One database's overhead (MEMORY STATS `db.N`).
pub struct DbOverhead {
    pub dbid: usize,
    pub overhead_ht_main: usize,
    pub overhead_ht_expires: usize,
}

/// Upstream's `struct serverMemOverhead`.
pub struct MemOverhead {
    pub peak_allocated: usize,
    pub total_allocated: usize,
    pub startup_allocated: usize,
    pub repl_backlog: usize,
    pub clients_replicas: usize,
    pub clients_normal: usize,
    pub cluster_links: usize,
    pub aof_buffer: usize,
    pub lua_caches: usize,
    pub functions_caches: usize,
    pub overhead_total: usize,
    pub dataset: usize,
    pub total_keys: usize,
    pub bytes_per_key: usize,
    pub dataset_perc: f32,
    pub peak_perc: f32,
    pub total_frag: f32,
    pub total_frag_bytes: i64,
    pub allocator_frag: f32,
    pub allocator_frag_bytes: i64,
    pub allocator_rss: f32,
    pub allocator_rss_bytes: i64,
    pub rss_extra: f32,
    pub rss_extra_bytes: i64,
    pub overhead_db_hashtable_lut: usize,
    pub overhead_db_hashtable_rehashing: usize,
    pub db_dict_rehashing_count: usize,
    pub db: Vec<DbOverhead>,
}

/// Bytes of a table entry that are neither key nor value: the chain link and the
/// metadata word (src/kvstore.rs, "Layout"); the counterpart of upstream's
/// `sizeof(robj)` per key in the main table's overhead.
const ENTRY_HEADER_BYTES: usize = 12;
/// The expire block of an entry with a TTL (time and TTL index position).
const ENTRY_EXPIRE_BYTES: usize = 16;

/// a / b in single precision, as upstream's `float` fields (MEMORY STATS prints them
/// through a double, so the digits show the float's rounding).
fn ratio(a: usize, b: usize) -> f32 {
    if b == 0 {
        0.0
    } else {
        a as f32 / b as f32
    }
}

/// The replication backlog's bytes: what its buffer has allocated (it grows with the
/// history up to `repl-backlog-size`).
fn repl_backlog_bytes(srv: &Server) -> usize {
    srv.repl
        .primary
        .backlog
        .as_ref()
        .map_or(0, |b| b.allocated())
}

/// The AOF buffer, counted while AOF is on (upstream's `aof.buffer`).
fn aof_buffer_bytes(srv: &Server) -> usize {
    if matches!(srv.aof.state, crate::aof::AofState::Off) {
        0
    } else {
        zmalloc::vec_usable(&srv.aof.buf)
    }
}

/// Upstream's `getMemoryOverheadData`.
pub fn overhead(srv: &Server) -> MemOverhead {
    let used = zmalloc::used_memory();
    let cron = &srv.mem.cron;
    let ptr = std::mem::size_of::<*mut u8>();
    let mut total = srv.mem.initial_memory_usage;
    let repl_backlog = repl_backlog_bytes(srv);
    total += repl_backlog;
    // The replicas' entries of the per-type totals are refreshed only when a replica is
    // served, while its output buffer grows with every write: take them live (there are
    // few replicas), as eviction does.
    let mut clients_replicas = srv.mem.clients_type_memory[CLIENT_TYPE_REPLICA];
    for &(slot, id) in &srv.repl.primary.replicas {
        if let Some(Some(c)) = srv.clients.get(slot) {
            if c.id == id && c.last_memory_type as usize == CLIENT_TYPE_REPLICA {
                clients_replicas =
                    clients_replicas.saturating_sub(c.last_memory_usage) + client_memory_usage(c).0;
            }
        }
    }
    total += clients_replicas;
    let clients_normal = srv.mem.clients_type_memory[CLIENT_TYPE_NORMAL]
        + srv.mem.clients_type_memory[CLIENT_TYPE_PUBSUB]
        + srv.mem.clients_type_memory[CLIENT_TYPE_PRIMARY];
    total += clients_normal;
    let aof_buffer = aof_buffer_bytes(srv);
    total += aof_buffer;
    let mut db = Vec::new();
    let (mut lut, mut rehashing, mut rehashing_count, mut total_keys) = (0, 0, 0, 0);
    for d in &srv.dbs {
        let (b0, b1) = d.kv.buckets();
        if b0 + b1 == 0 && d.kv.is_empty() {
            continue;
        }
        let keys = d.kv.len();
        let expires = d.kv.expires_len();
        total_keys += keys;
        let buckets_bytes = (b0 + b1) * ptr;
        // overhead_bytes() is the bucket arrays plus the TTL index.
        let ttl_index = d.kv.overhead_bytes().saturating_sub(buckets_bytes);
        let main = buckets_bytes + keys * ENTRY_HEADER_BYTES;
        let exp = ttl_index + expires * ENTRY_EXPIRE_BYTES;
        total += main + exp;
        lut += buckets_bytes;
        if d.kv.is_rehashing() {
            rehashing += b0 * ptr;
            rehashing_count += 1;
        }
        db.push(DbOverhead {
            dbid: d.id,
            overhead_ht_main: main,
            overhead_ht_expires: exp,
        });
    }
    let dataset = used.saturating_sub(total);
    let net = if used > srv.mem.initial_memory_usage {
        used - srv.mem.initial_memory_usage
    } else {
        1
    };
    let peak = srv.stat_peak_memory.max(1);
    MemOverhead {
        peak_allocated: srv.stat_peak_memory,
        total_allocated: used,
        startup_allocated: srv.mem.initial_memory_usage,
        repl_backlog,
        clients_replicas,
        clients_normal,
        cluster_links: 0,
        aof_buffer,
        lua_caches: 0,
        functions_caches: 0,
        overhead_total: total,
        dataset,
        total_keys,
        bytes_per_key: dataset.checked_div(total_keys).unwrap_or(0),
        dataset_perc: dataset as f32 * 100.0 / net as f32,
        peak_perc: used as f32 * 100.0 / peak as f32,
        total_frag: ratio(cron.process_rss, cron.zmalloc_used),
        total_frag_bytes: cron.process_rss as i64 - cron.zmalloc_used as i64,
        allocator_frag: ratio(
            cron.allocator_frag_smallbins_bytes,
            cron.allocator_allocated,
        ) + 1.0,
        allocator_frag_bytes: cron.allocator_frag_smallbins_bytes as i64,
        allocator_rss: ratio(cron.allocator_resident, cron.allocator_active),
        allocator_rss_bytes: cron.allocator_resident as i64 - cron.allocator_active as i64,
        rss_extra: ratio(cron.process_rss, cron.allocator_resident),
        rss_extra_bytes: cron.process_rss as i64 - cron.allocator_resident as i64,
        overhead_db_hashtable_lut: lut,
        overhead_db_hashtable_rehashing: rehashing,
        db_dict_rehashing_count: rehashing_count,
        db,
    }
}

/// Memory that eviction does not count against `maxmemory` (upstream's
/// `freeMemoryGetNotCountedMemory`): the replicas' output buffers and the AOF buffer,
/// which would otherwise make eviction feed on itself (evicting produces DELs that
/// grow these buffers). The figure eviction uses, read live.
pub fn not_counted_for_evict(srv: &Server) -> usize {
    crate::evict::not_counted_memory(srv)
}

/// Human-readable bytes, as upstream's `bytesToHuman`.
pub fn bytes_to_human(n: u64) -> String {
    let d = n as f64;
    let k = 1024f64;
    if n < 1024 {
        format!("{}B", n)
    } else if d < k * k {
        format!("{:.2}K", d / k)
    } else if d < k.powi(3) {
        format!("{:.2}M", d / k.powi(2))
    } else if d < k.powi(4) {
        format!("{:.2}G", d / k.powi(3))
    } else if d < k.powi(5) {
        format!("{:.2}T", d / k.powi(4))
    } else {
        format!("{:.2}P", d / k.powi(5))
    }
}

/// INFO's memory section, in upstream's field order.
pub fn info_memory(srv: &Server, s: &mut String) {
    let mh = overhead(srv);
    let cron = &srv.mem.cron;
    let used = mh.total_allocated as u64;
    let peak = mh.peak_allocated as u64;
    let sys = zmalloc::total_system_memory() as u64;
    let maxmemory = srv.config.maxmemory;
    let policy = if srv.config.maxmemory_policy.is_empty() {
        "noeviction"
    } else {
        srv.config.maxmemory_policy.as_str()
    };
    let _ = write!(
        s,
        "used_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{}\r\n\
         used_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\n\
         used_memory_peak_perc:{:.2}%\r\nused_memory_overhead:{}\r\nused_memory_startup:{}\r\n\
         used_memory_dataset:{}\r\nused_memory_dataset_perc:{:.2}%\r\n\
         allocator_allocated:{}\r\nallocator_active:{}\r\nallocator_resident:{}\r\n\
         allocator_muzzy:{}\r\ntotal_system_memory:{sys}\r\ntotal_system_memory_human:{}\r\n",
        bytes_to_human(used),
        cron.process_rss,
        bytes_to_human(cron.process_rss as u64),
        bytes_to_human(peak),
        mh.peak_perc,
        mh.overhead_total,
        mh.startup_allocated,
        mh.dataset,
        mh.dataset_perc,
        cron.allocator_allocated,
        cron.allocator_active,
        cron.allocator_resident,
        cron.allocator_muzzy,
        bytes_to_human(sys),
    );
    // Scripting: the EVAL and function Lua heaps, the script cache and the libraries
    // (src/scripting/).
    let vm_eval = srv.scripting.eval_vm_memory();
    let scripts_eval = srv.scripting.cache.memory();
    let vm_fn = srv.scripting.func_vm_memory();
    let funcs = srv.scripting.libs.memory();
    let _ = write!(
        s,
        "used_memory_lua:{vm_eval}\r\nused_memory_vm_eval:{vm_eval}\r\nused_memory_lua_human:{}\r\n\
         used_memory_scripts_eval:{scripts_eval}\r\nnumber_of_cached_scripts:{}\r\nnumber_of_functions:{}\r\n\
         number_of_libraries:{}\r\nused_memory_vm_functions:{vm_fn}\r\nused_memory_vm_total:{}\r\n\
         used_memory_vm_total_human:{}\r\nused_memory_functions:{funcs}\r\nused_memory_scripts:{}\r\n\
         used_memory_scripts_human:{}\r\n",
        bytes_to_human(vm_eval as u64),
        srv.scripting.cache.len(),
        srv.scripting.libs.functions_count(),
        srv.scripting.libs.libs.len(),
        vm_eval + vm_fn,
        bytes_to_human((vm_eval + vm_fn) as u64),
        scripts_eval + funcs,
        bytes_to_human((scripts_eval + funcs) as u64),
    );
    let _ = write!(
        s,
        "maxmemory:{maxmemory}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{policy}\r\n\
         allocator_frag_ratio:{:.2}\r\nallocator_frag_bytes:{}\r\nallocator_rss_ratio:{:.2}\r\n\
         allocator_rss_bytes:{}\r\nrss_overhead_ratio:{:.2}\r\nrss_overhead_bytes:{}\r\n\
         mem_fragmentation_ratio:{:.2}\r\nmem_fragmentation_bytes:{}\r\n\
         mem_not_counted_for_evict:{}\r\nmem_replication_backlog:{}\r\n\
         mem_total_replication_buffers:{}\r\nmem_replicas_repl_buffer:0\r\n\
         mem_clients_slaves:{}\r\nmem_clients_normal:{}\r\nmem_cluster_links:{}\r\n\
         mem_cluster_slot_import:0\r\nmem_cluster_slot_export:0\r\nmem_aof_buffer:{}\r\n\
         mem_allocator:{}\r\nmem_overhead_db_hashtable_rehashing:{}\r\n\
         active_defrag_running:0\r\nlazyfree_pending_objects:{}\r\nlazyfreed_objects:{}\r\n",
        bytes_to_human(maxmemory),
        mh.allocator_frag,
        mh.allocator_frag_bytes,
        mh.allocator_rss,
        mh.allocator_rss_bytes,
        mh.rss_extra,
        mh.rss_extra_bytes,
        mh.total_frag,
        mh.total_frag_bytes,
        not_counted_for_evict(srv),
        mh.repl_backlog,
        mh.repl_backlog + mh.clients_replicas,
        mh.clients_replicas,
        mh.clients_normal,
        crate::cluster::link::memory(srv),
        mh.aof_buffer,
        zmalloc::MALLOC_LIB,
        mh.overhead_db_hashtable_rehashing,
        crate::lazyfree::pending_objects(),
        crate::lazyfree::freed_objects(),
    );
}

/// MEMORY USAGE's default number of sampled elements (`OBJ_COMPUTE_SIZE_DEF_SAMPLES`).
pub const OBJ_COMPUTE_SIZE_DEF_SAMPLES: u64 = 5;

/// MEMORY USAGE (upstream's `objectComputeSize`): the bytes the allocator reports for the
/// key's table entry (key, metadata and, for short strings, the value itself), plus the
/// box and contents of a value stored out of line. The collection types keep their
/// byte counts up to date as they change (hash tables count their nodes as they are
/// added), so the figure is exact rather than extrapolated from `samples` elements; only
/// quicklists are walked, and then at most `samples` nodes are measured and the rest
/// extrapolated, as upstream.
pub fn object_size(entry_bytes: usize, v: ValueRef<'_>, samples: u64) -> usize {
    let contents = match v {
        ValueRef::Int(_) => 0,
        ValueRef::Str(_) => 0,
        ValueRef::List(l) => l.mem_usage_sampled(samples as usize),
        ValueRef::Hash(h) => h.mem_usage(),
        ValueRef::Set(s) => s.mem_usage(),
        ValueRef::ZSet(z) => z.mem_usage(),
        ValueRef::Stream(s) => s.mem_usage(),
    };
    entry_bytes + contents
}

/// MEMORY DOCTOR's report (upstream's `getMemoryDoctorReport`, same conditions and
/// texts; there are no scripts here, so never the "many scripts" one).
pub fn doctor_report(srv: &Server) -> String {
    let mh = overhead(srv);
    let mut empty = false;
    let mut big_peak = false;
    let mut high_frag = false;
    let mut high_alloc_frag = false;
    let mut high_alloc_rss = false;
    let mut high_proc_rss = false;
    let mut big_client_buf = false;
    let mut big_replica_buf = false;
    let mut reports = 0;
    const MB10: i64 = 10 << 20;
    if mh.total_allocated < 5 * 1024 * 1024 {
        empty = true;
        reports += 1;
    } else {
        if mh.peak_allocated as f32 / mh.total_allocated as f32 > 1.5 {
            big_peak = true;
            reports += 1;
        }
        if mh.total_frag > 1.4 && mh.total_frag_bytes > MB10 {
            high_frag = true;
            reports += 1;
        }
        if mh.allocator_frag > 1.1 && mh.allocator_frag_bytes > MB10 {
            high_alloc_frag = true;
            reports += 1;
        }
        if mh.allocator_rss > 1.1 && mh.allocator_rss_bytes > MB10 {
            high_alloc_rss = true;
            reports += 1;
        }
        if mh.rss_extra > 1.1 && mh.rss_extra_bytes > MB10 {
            high_proc_rss = true;
            reports += 1;
        }
        let replicas = srv.repl.primary.replicas.len();
        let clients = srv.connected_clients().saturating_sub(replicas).max(1);
        if mh.clients_normal / clients > 1024 * 200 {
            big_client_buf = true;
            reports += 1;
        }
        if replicas > 0 && mh.clients_replicas > 1024 * 1024 * 10 {
            big_replica_buf = true;
            reports += 1;
        }
    }
    if reports == 0 {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account for \
                what occurs on this base.\n"
            .to_string();
    }
    if empty {
        return "Hi Sam, this instance is empty or is using very little memory, my issues \
                detector can't be used in these conditions. Please, leave for your mission on \
                Earth and fill it with some data. The new Sam and I will be back to our \
                programming as soon as I finished rebooting.\n"
            .to_string();
    }
    let mut s =
        String::from("Sam, I detected a few issues in this Valkey instance memory implants:\n\n");
    if big_peak {
        s.push_str(
            " * Peak memory: In the past this instance used more than 150% the memory that is \
             currently using. The allocator is normally not able to release memory after a \
             peak, so you can expect to see a big fragmentation ratio, however this is \
             actually harmless and is only due to the memory peak, and if the Valkey instance \
             Resident Set Size (RSS) is currently bigger than expected, the memory will be \
             used as soon as you fill the Valkey instance with more data. If the memory peak \
             was only occasional and you want to try to reclaim memory, please try the MEMORY \
             PURGE command, otherwise the only other option is to shutdown and restart the \
             instance.\n\n",
        );
    }
    if high_frag {
        let _ = write!(
            s,
            " * High total RSS: This instance has a memory fragmentation and RSS overhead \
             greater than 1.4 (this means that the Resident Set Size of the Valkey process is \
             much larger than the sum of the logical allocations Valkey performed). This \
             problem is usually due either to a large peak memory (check if there is a peak \
             memory entry above in the report) or may result from a workload that causes the \
             allocator to fragment memory a lot. If the problem is a large peak memory, then \
             there is no issue. Otherwise, make sure you are using the Jemalloc allocator and \
             not the default libc malloc. Note: The currently used allocator is \"{}\".\n\n",
            zmalloc::MALLOC_LIB
        );
    }
    if high_alloc_frag {
        s.push_str(
            " * High allocator fragmentation: This instance has an allocator external \
             fragmentation greater than 1.1. This problem is usually due either to a large \
             peak memory (check if there is a peak memory entry above in the report) or may \
             result from a workload that causes the allocator to fragment memory a lot. You \
             can try enabling 'activedefrag' config option.\n\n",
        );
    }
    if high_alloc_rss {
        s.push_str(
            " * High allocator RSS overhead: This instance has an RSS memory overhead is \
             greater than 1.1 (this means that the Resident Set Size of the allocator is much \
             larger than the sum what the allocator actually holds). This problem is usually \
             due to a large peak memory (check if there is a peak memory entry above in the \
             report), you can try the MEMORY PURGE command to reclaim it.\n\n",
        );
    }
    if high_proc_rss {
        s.push_str(
            " * High process RSS overhead: This instance has non-allocator RSS memory overhead \
             is greater than 1.1 (this means that the Resident Set Size of the Valkey process \
             is much larger than the RSS the allocator holds). This problem may be due to Lua \
             scripts or Modules.\n\n",
        );
    }
    if big_replica_buf {
        s.push_str(
            " * Big replica buffers: The replica output buffers in this instance are greater \
             than 10MB for each replica (on average). This likely means that there is some \
             replica instance that is struggling receiving data, either because it is too \
             slow or because of networking issues. As a result, data piles on the primary \
             output buffers. Please try to identify what replica is not receiving data \
             correctly and why. You can use the INFO output in order to check the replicas \
             delays and the CLIENT LIST command to check the output buffers of each \
             replica.\n\n",
        );
    }
    if big_client_buf {
        s.push_str(
            " * Big client buffers: The clients output buffers in this instance are greater \
             than 200K per client (on average). This may result from different causes, like \
             Pub/Sub clients subscribed to channels bot not receiving data fast enough, so \
             that data piles on the Valkey instance output buffer, or clients sending \
             commands with large replies or very large sequences of commands in the same \
             pipeline. Please use the CLIENT LIST command in order to investigate the issue \
             if it causes problems in your instance, or to understand better why certain \
             clients are using a big amount of memory.\n\n",
        );
    }
    s.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_as_upstream() {
        assert_eq!(mem_usage_bucket(0), 0);
        assert_eq!(mem_usage_bucket(1000), 0);
        assert_eq!(mem_usage_bucket(32 * 1024 - 1), 0);
        assert_eq!(mem_usage_bucket(32 * 1024), 1);
        assert_eq!(mem_usage_bucket(1 << 20), 6);
        assert_eq!(mem_usage_bucket(usize::MAX), 18);
    }

    #[test]
    fn human_bytes() {
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(1024), "1.00K");
        assert_eq!(bytes_to_human(1536 * 1024), "1.50M");
    }
}
