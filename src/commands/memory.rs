//! MEMORY DOCTOR | HELP | MALLOC-STATS | PURGE | STATS | USAGE (upstream's
//! `memoryCommand` in object.c); the figures come from src/memory.rs.

use super::{acl_cat as cat, flags as f, key_flags as k, CommandDef, KeySpec};
use crate::client::Client;
use crate::memory;
use crate::reply;
use crate::server::Server;
use crate::util::eq_ic;

const TIPS_SPECIAL: &[&str] = &[
    "nondeterministic_output",
    "request_policy:all_shards",
    "response_policy:special",
];

pub static COMMANDS: &[CommandDef] =
    &[
        CommandDef::new("memory", -2, 0, cat::SLOW, super::container_proc)
            .doc(
                "server",
                "4.0.0",
                "A container for memory diagnostics commands.",
                "Depends on subcommand.",
            )
            .subs(&[
                CommandDef::new("doctor", 2, 0, cat::SLOW, memory_doctor_command)
                    .doc(
                        "server",
                        "4.0.0",
                        "Outputs a memory problems report.",
                        "O(1)",
                    )
                    .tips(TIPS_SPECIAL),
                CommandDef::new(
                    "help",
                    2,
                    f::LOADING | f::STALE,
                    cat::SLOW,
                    memory_help_command,
                )
                .doc(
                    "server",
                    "4.0.0",
                    "Returns helpful text about the different subcommands.",
                    "O(1)",
                ),
                CommandDef::new(
                    "malloc-stats",
                    2,
                    f::LOADING,
                    cat::SLOW,
                    memory_malloc_stats_command,
                )
                .doc(
                    "server",
                    "4.0.0",
                    "Returns the allocator statistics.",
                    "Depends on how much memory is allocated, could be slow",
                )
                .tips(TIPS_SPECIAL),
                CommandDef::new("purge", 2, f::LOADING, cat::SLOW, memory_purge_command)
                    .doc(
                        "server",
                        "4.0.0",
                        "Asks the allocator to release memory.",
                        "Depends on how much memory is allocated, could be slow",
                    )
                    .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
                CommandDef::new("stats", 2, 0, cat::SLOW, memory_stats_command)
                    .doc(
                        "server",
                        "4.0.0",
                        "Returns details about memory usage.",
                        "O(1)",
                    )
                    .tips(TIPS_SPECIAL),
                CommandDef::new(
                    "usage",
                    -3,
                    f::READONLY,
                    cat::READ | cat::SLOW,
                    memory_usage_command,
                )
                .keys(&[KeySpec::range(k::RO, 2, 0, 1)])
                .doc(
                    "server",
                    "4.0.0",
                    "Estimates the memory usage of a key.",
                    "O(N) where N is the number of samples.",
                ),
            ]),
    ];

fn memory_help_command(_: &mut Server, c: &mut Client) {
    c.reply.add_help(
        "MEMORY",
        &[
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    );
}

fn memory_usage_command(srv: &mut Server, c: &mut Client) {
    let mut samples = memory::OBJ_COMPUTE_SIZE_DEF_SAMPLES;
    let mut j = 3;
    while j < c.argv.len() {
        if eq_ic(&c.argv[j], "samples") && j + 1 < c.argv.len() {
            let Some(n) = crate::util::parse_i64_strict(&c.argv[j + 1]) else {
                c.reply.add_error(reply::ERR_NOT_INTEGER);
                return;
            };
            if n < 0 {
                c.reply.add_error(reply::ERR_SYNTAX);
                return;
            }
            samples = if n == 0 { u64::MAX } else { n as u64 };
            j += 2;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
    }
    // As upstream's dbFind: a plain lookup, no expiry, no LRU or stats update.
    let kv = &srv.dbs[c.db].kv;
    let key = &c.argv[2];
    match (kv.entry_memory(key), kv.get(key)) {
        (Some(entry), Some(v)) => {
            let n = memory::object_size(entry, v, samples);
            c.reply.add_long(n as i64);
        }
        _ => c.reply.add_null(),
    }
}

fn memory_stats_command(srv: &mut Server, c: &mut Client) {
    let mh = memory::overhead(srv);
    let cron = srv.mem.cron;
    let r = &mut c.reply;
    r.add_map_len(34 + mh.db.len());
    let long = |r: &mut reply::ReplyBuf, k: &str, v: i64| {
        r.add_bulk(k.as_bytes());
        r.add_long(v);
    };
    long(r, "peak.allocated", mh.peak_allocated as i64);
    long(r, "total.allocated", mh.total_allocated as i64);
    long(r, "startup.allocated", mh.startup_allocated as i64);
    long(r, "replication.backlog", mh.repl_backlog as i64);
    // Replicas have no shared replication buffer here: their output buffers are theirs.
    long(r, "replicas.repl.buffer", 0);
    long(r, "clients.slaves", mh.clients_replicas as i64);
    long(r, "clients.normal", mh.clients_normal as i64);
    long(r, "cluster.links", mh.cluster_links as i64);
    long(r, "cluster.slot_import", 0);
    long(r, "cluster.slot_export", 0);
    long(r, "aof.buffer", mh.aof_buffer as i64);
    long(r, "lua.caches", mh.lua_caches as i64);
    long(r, "functions.caches", mh.functions_caches as i64);
    for d in &mh.db {
        r.add_bulk(format!("db.{}", d.dbid).as_bytes());
        r.add_map_len(2);
        long(r, "overhead.hashtable.main", d.overhead_ht_main as i64);
        long(
            r,
            "overhead.hashtable.expires",
            d.overhead_ht_expires as i64,
        );
    }
    long(
        r,
        "overhead.db.hashtable.lut",
        mh.overhead_db_hashtable_lut as i64,
    );
    long(
        r,
        "overhead.db.hashtable.rehashing",
        mh.overhead_db_hashtable_rehashing as i64,
    );
    long(r, "overhead.total", mh.overhead_total as i64);
    long(
        r,
        "db.dict.rehashing.count",
        mh.db_dict_rehashing_count as i64,
    );
    long(r, "keys.count", mh.total_keys as i64);
    long(r, "keys.bytes-per-key", mh.bytes_per_key as i64);
    long(r, "dataset.bytes", mh.dataset as i64);
    let double = |r: &mut reply::ReplyBuf, k: &str, v: f32| {
        r.add_bulk(k.as_bytes());
        r.add_double(v as f64);
    };
    double(r, "dataset.percentage", mh.dataset_perc);
    double(r, "peak.percentage", mh.peak_perc);
    long(r, "allocator.allocated", cron.allocator_allocated as i64);
    long(r, "allocator.active", cron.allocator_active as i64);
    long(r, "allocator.resident", cron.allocator_resident as i64);
    long(r, "allocator.muzzy", cron.allocator_muzzy as i64);
    double(r, "allocator-fragmentation.ratio", mh.allocator_frag);
    long(r, "allocator-fragmentation.bytes", mh.allocator_frag_bytes);
    double(r, "allocator-rss.ratio", mh.allocator_rss);
    long(r, "allocator-rss.bytes", mh.allocator_rss_bytes);
    double(r, "rss-overhead.ratio", mh.rss_extra);
    long(r, "rss-overhead.bytes", mh.rss_extra_bytes);
    // The total RSS overhead, fragmentation included, under its historical name.
    double(r, "fragmentation", mh.total_frag);
    long(r, "fragmentation.bytes", mh.total_frag_bytes);
}

fn memory_malloc_stats_command(_: &mut Server, c: &mut Client) {
    match crate::zmalloc::malloc_stats() {
        Some(text) => c.reply.add_verbatim(text.as_bytes(), "txt"),
        None => c
            .reply
            .add_bulk(b"Stats not supported for the current allocator"),
    }
}

fn memory_doctor_command(srv: &mut Server, c: &mut Client) {
    let report = memory::doctor_report(srv);
    c.reply.add_verbatim(report.as_bytes(), "txt");
}

fn memory_purge_command(_: &mut Server, c: &mut Client) {
    if crate::zmalloc::purge() {
        c.reply.add_ok();
    } else {
        c.reply.add_error("ERR Error purging dirty pages");
    }
}
