//! Pub/Sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, the sharded
//! SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH and PUBSUB introspection (upstream's `pubsub.c`).
//! The state and delivery live in `src/pubsub.rs`.

use super::{acl_cat as cat, flags as f, key_flags as k, CommandDef, KeySpec};
use crate::client::{flags as cflags, Client};
use crate::pubsub::{self as ps, Kind};
use crate::server::Server;
use crate::util::eq_ic;

const SUB_FLAGS: u64 = f::PUBSUB | f::NOSCRIPT | f::LOADING | f::STALE;
const PUB_FLAGS: u64 = f::PUBSUB | f::LOADING | f::STALE | f::FAST;
const INTRO_FLAGS: u64 = f::PUBSUB | f::LOADING | f::STALE;
const CAT_SLOW: u64 = cat::PUBSUB | cat::SLOW;
const CAT_FAST: u64 = cat::PUBSUB | cat::FAST;

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new("subscribe", -2, SUB_FLAGS, CAT_SLOW, subscribe_command).doc(
        "pubsub",
        "2.0.0",
        "Listens for messages published to channels.",
        "O(N) where N is the number of channels to subscribe to.",
    ),
    CommandDef::new("unsubscribe", -1, SUB_FLAGS, CAT_SLOW, unsubscribe_command).doc(
        "pubsub",
        "2.0.0",
        "Stops listening to messages posted to channels.",
        "O(N) where N is the number of channels to unsubscribe.",
    ),
    CommandDef::new("psubscribe", -2, SUB_FLAGS, CAT_SLOW, psubscribe_command).doc(
        "pubsub",
        "2.0.0",
        "Listens for messages published to channels that match one or more patterns.",
        "O(N) where N is the number of patterns to subscribe to.",
    ),
    CommandDef::new(
        "punsubscribe",
        -1,
        SUB_FLAGS,
        CAT_SLOW,
        punsubscribe_command,
    )
    .doc(
        "pubsub",
        "2.0.0",
        "Stops listening to messages published to channels that match one or more patterns.",
        "O(N) where N is the number of patterns to unsubscribe.",
    ),
    CommandDef::new("publish", 3, PUB_FLAGS, CAT_FAST, publish_command).doc(
        "pubsub",
        "2.0.0",
        "Posts a message to a channel.",
        "O(N+M) where N is the number of clients subscribed to the receiving channel and M is \
         the total number of subscribed patterns (by any client).",
    ),
    CommandDef::new("ssubscribe", -2, SUB_FLAGS, CAT_SLOW, ssubscribe_command)
        .keys(&[KeySpec::range(k::NOT_KEY, 1, -1, 1)])
        .doc(
            "pubsub",
            "7.0.0",
            "Listens for messages published to shard channels.",
            "O(N) where N is the number of shard channels to subscribe to.",
        ),
    CommandDef::new(
        "sunsubscribe",
        -1,
        SUB_FLAGS,
        CAT_SLOW,
        sunsubscribe_command,
    )
    .keys(&[KeySpec::range(k::NOT_KEY, 1, -1, 1)])
    .doc(
        "pubsub",
        "7.0.0",
        "Stops listening to messages posted to shard channels.",
        "O(N) where N is the number of shard channels to unsubscribe.",
    ),
    CommandDef::new("spublish", 3, PUB_FLAGS, CAT_FAST, spublish_command)
        .keys(&[KeySpec::range(k::NOT_KEY, 1, 0, 1)])
        .doc(
            "pubsub",
            "7.0.0",
            "Posts a message to a shard channel.",
            "O(N) where N is the number of clients subscribed to the receiving shard channel.",
        ),
    CommandDef::new("pubsub", -2, 0, cat::SLOW, super::container_proc)
        .doc(
            "pubsub",
            "2.8.0",
            "A container for Pub/Sub commands.",
            "Depends on subcommand.",
        )
        .subs(&[
            CommandDef::new("channels", -2, INTRO_FLAGS, CAT_SLOW, pubsub_command).doc(
                "pubsub",
                "2.8.0",
                "Returns the active channels.",
                "O(N) where N is the number of active channels, and assuming constant time \
                 pattern matching (relatively short channels and patterns)",
            ),
            CommandDef::new("help", 2, f::LOADING | f::STALE, cat::SLOW, pubsub_command).doc(
                "pubsub",
                "6.2.0",
                "Returns helpful text about the different subcommands.",
                "O(1)",
            ),
            CommandDef::new("numpat", 2, INTRO_FLAGS, CAT_SLOW, pubsub_command).doc(
                "pubsub",
                "2.8.0",
                "Returns a count of unique pattern subscriptions.",
                "O(1)",
            ),
            CommandDef::new("numsub", -2, INTRO_FLAGS, CAT_SLOW, pubsub_command).doc(
                "pubsub",
                "2.8.0",
                "Returns a count of subscribers to channels.",
                "O(N) for the NUMSUB subcommand, where N is the number of requested channels",
            ),
            CommandDef::new("shardchannels", -2, INTRO_FLAGS, CAT_SLOW, pubsub_command).doc(
                "pubsub",
                "7.0.0",
                "Returns the active shard channels.",
                "O(N) where N is the number of active shard channels, and assuming constant \
                 time pattern matching (relatively short shard channels).",
            ),
            CommandDef::new("shardnumsub", -2, INTRO_FLAGS, CAT_SLOW, pubsub_command).doc(
                "pubsub",
                "7.0.0",
                "Returns the count of subscribers of shard channels.",
                "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested \
                 shard channels",
            ),
        ]),
];

/// A client that expects one reply per command can not subscribe (scripts; MULTI is
/// allowed for SUBSCRIBE and PSUBSCRIBE for backward compatibility, as upstream).
fn deny(c: &mut Client, name: &str, multi_ok: bool) -> bool {
    if c.has_flag(cflags::DENY_BLOCKING) && !(multi_ok && c.has_flag(cflags::MULTI)) {
        c.reply.add_error(&format!(
            "ERR {name} isn't allowed for a DENY BLOCKING client"
        ));
        return true;
    }
    false
}

fn subscribe_command(srv: &mut Server, c: &mut Client) {
    if deny(c, "SUBSCRIBE", true) {
        return;
    }
    let argv = std::mem::take(&mut c.argv);
    for ch in &argv[1..] {
        ps::subscribe_channel(srv, c, ch, Kind::Global);
    }
    c.argv = argv;
    ps::mark(srv, c);
}

fn ssubscribe_command(srv: &mut Server, c: &mut Client) {
    if deny(c, "SSUBSCRIBE", false) {
        return;
    }
    let argv = std::mem::take(&mut c.argv);
    for ch in &argv[1..] {
        ps::subscribe_channel(srv, c, ch, Kind::Shard);
    }
    c.argv = argv;
    ps::mark(srv, c);
}

fn psubscribe_command(srv: &mut Server, c: &mut Client) {
    if deny(c, "PSUBSCRIBE", true) {
        return;
    }
    let argv = std::mem::take(&mut c.argv);
    for p in &argv[1..] {
        ps::subscribe_pattern(srv, c, p);
    }
    c.argv = argv;
    ps::mark(srv, c);
}

fn unsubscribe_generic(srv: &mut Server, c: &mut Client, kind: Kind) {
    let argv = std::mem::take(&mut c.argv);
    if argv.len() == 1 {
        ps::unsubscribe_all_channels(srv, c, kind, true);
    } else {
        for ch in &argv[1..] {
            ps::unsubscribe_channel(srv, c, ch, kind, true);
        }
    }
    c.argv = argv;
    ps::unmark_if_idle(srv, c);
}

fn unsubscribe_command(srv: &mut Server, c: &mut Client) {
    unsubscribe_generic(srv, c, Kind::Global);
}

fn sunsubscribe_command(srv: &mut Server, c: &mut Client) {
    unsubscribe_generic(srv, c, Kind::Shard);
}

fn punsubscribe_command(srv: &mut Server, c: &mut Client) {
    let argv = std::mem::take(&mut c.argv);
    if argv.len() == 1 {
        ps::unsubscribe_all_patterns(srv, c, true);
    } else {
        for p in &argv[1..] {
            ps::unsubscribe_pattern(srv, c, p, true);
        }
    }
    c.argv = argv;
    ps::unmark_if_idle(srv, c);
}

fn publish_command(srv: &mut Server, c: &mut Client) {
    let n = ps::publish(srv, &c.argv[1], &c.argv[2], Kind::Global);
    c.reply.add_long(n as i64);
    if srv.cluster.is_some() {
        crate::cluster::gossip::propagate_publish(srv, &c.argv[1], &c.argv[2], false);
    } else {
        propagate_to_replicas(srv, c);
    }
}

fn spublish_command(srv: &mut Server, c: &mut Client) {
    let n = ps::publish(srv, &c.argv[1], &c.argv[2], Kind::Shard);
    c.reply.add_long(n as i64);
    if srv.cluster.is_some() {
        crate::cluster::gossip::propagate_publish(srv, &c.argv[1], &c.argv[2], true);
    } else {
        propagate_to_replicas(srv, c);
    }
}

/// A message is propagated to replicas only, never to the AOF (upstream's
/// `forceCommandPropagation(c, PROPAGATE_REPL)` outside cluster mode).
fn propagate_to_replicas(srv: &mut Server, c: &Client) {
    use crate::propagate::{also_propagate, should_propagate, PROPAGATE_REPL};
    if should_propagate(srv, PROPAGATE_REPL) {
        also_propagate(srv, c.db, c.argv.clone(), PROPAGATE_REPL);
    }
}

const HELP: &[&str] = &[
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
];

fn pubsub_command(srv: &mut Server, c: &mut Client) {
    let argc = c.argv.len();
    let sub = &c.argv[1];
    if argc == 2 && eq_ic(sub, "help") {
        c.reply.add_help("pubsub", HELP);
    } else if (eq_ic(sub, "channels") || eq_ic(sub, "shardchannels")) && argc <= 3 {
        let kind = if eq_ic(sub, "channels") {
            Kind::Global
        } else {
            Kind::Shard
        };
        let list = ps::channel_list(srv, c.argv.get(2).map(|v| v.as_slice()), kind);
        c.reply.add_array_len(list.len());
        for ch in &list {
            c.reply.add_bulk(ch);
        }
    } else if eq_ic(sub, "numsub") || eq_ic(sub, "shardnumsub") {
        let map = if eq_ic(sub, "numsub") {
            &srv.pubsub.channels
        } else {
            &srv.pubsub.shard_channels
        };
        let Client { argv, reply, .. } = c;
        reply.add_array_len((argc - 2) * 2);
        for ch in &argv[2..] {
            reply.add_bulk(ch);
            reply.add_long(map.get(ch).map_or(0, |s| s.len()) as i64);
        }
    } else if eq_ic(sub, "numpat") && argc == 2 {
        c.reply.add_long(srv.pubsub.patterns.len() as i64);
    } else {
        let e = format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            crate::reply::sanitize(sub, 128)
        );
        c.reply.add_error(&e);
    }
}
