//! Pub/Sub state and delivery (upstream's `pubsub.c`): the server-side maps from channels,
//! shard channels and patterns to subscribed clients, the per-client subscription sets,
//! the message encodings; the output-buffer limit check is the shared one of networking.rs.
//!
//! Clients are referred to by their slab slot; a client leaves every map before its slot
//! is released ([`free_client_pubsub`]), so a slot in a map is always the subscriber.
//! The client running a command is out of the slab: messages for it are queued in
//! [`PubSub::self_msgs`] and appended to its reply by [`flush_self`] after the handler,
//! so they follow the reply of the command, as upstream's output shows.

use std::collections::{HashMap, HashSet};

use crate::client::{flags as cflags, Client};
use crate::server::Server;

/// Which family a channel belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Global,
    Shard,
}

/// A message for the client whose command is running.
pub enum SelfMsg {
    /// `message`/`smessage`: (kind, channel, message).
    Msg(Kind, Vec<u8>, Vec<u8>),
    /// `pmessage`: (pattern, channel, message).
    PMsg(Vec<u8>, Vec<u8>, Vec<u8>),
}

/// Server-wide Pub/Sub state.
#[derive(Default)]
pub struct PubSub {
    pub channels: HashMap<Vec<u8>, HashSet<usize>>,
    pub shard_channels: HashMap<Vec<u8>, HashSet<usize>>,
    pub patterns: HashMap<Vec<u8>, HashSet<usize>>,
    /// Clients with at least one subscription (INFO `pubsub_clients`).
    pub clients: usize,
    pub self_msgs: Vec<SelfMsg>,
}

/// A client's subscriptions, allocated on its first subscription.
#[derive(Default, Debug)]
pub struct ClientPubSub {
    pub channels: HashSet<Vec<u8>>,
    pub patterns: HashSet<Vec<u8>>,
    pub shard_channels: HashSet<Vec<u8>>,
}

/// (channels + patterns, shard channels) of a client.
pub fn client_counts(c: &Client) -> (usize, usize) {
    match &c.pubsub {
        Some(p) => (p.channels.len() + p.patterns.len(), p.shard_channels.len()),
        None => (0, 0),
    }
}

fn push_len(buf: &mut Vec<u8>, resp: u8, n: usize) {
    buf.push(if resp >= 3 { b'>' } else { b'*' });
    buf.extend_from_slice(n.to_string().as_bytes());
    buf.extend_from_slice(b"\r\n");
}

fn bulk(buf: &mut Vec<u8>, b: &[u8]) {
    buf.push(b'$');
    buf.extend_from_slice(b.len().to_string().as_bytes());
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(b);
    buf.extend_from_slice(b"\r\n");
}

fn long(buf: &mut Vec<u8>, n: usize) {
    buf.push(b':');
    buf.extend_from_slice(n.to_string().as_bytes());
    buf.extend_from_slice(b"\r\n");
}

/// Appends `message`/`smessage` (pushes bypass CLIENT REPLY OFF, as upstream).
fn add_message(c: &mut Client, kind: Kind, chan: &[u8], msg: &[u8]) {
    let resp = c.reply.resp;
    let buf = &mut c.reply.buf;
    push_len(buf, resp, 3);
    bulk(
        buf,
        if kind == Kind::Shard {
            b"smessage"
        } else {
            b"message"
        },
    );
    bulk(buf, chan);
    bulk(buf, msg);
}

fn add_pmessage(c: &mut Client, pat: &[u8], chan: &[u8], msg: &[u8]) {
    let resp = c.reply.resp;
    let buf = &mut c.reply.buf;
    push_len(buf, resp, 4);
    bulk(buf, b"pmessage");
    bulk(buf, pat);
    bulk(buf, chan);
    bulk(buf, msg);
}

/// A (un)subscribe confirmation; `name` None for a mass unsubscribe with nothing to do.
fn add_confirm(c: &mut Client, what: &[u8], name: Option<&[u8]>, count: usize) {
    let resp = c.reply.resp;
    let buf = &mut c.reply.buf;
    push_len(buf, resp, 3);
    bulk(buf, what);
    match name {
        Some(n) => bulk(buf, n),
        None if resp >= 3 => buf.extend_from_slice(b"_\r\n"),
        None => buf.extend_from_slice(b"$-1\r\n"),
    }
    long(buf, count);
}

pub fn mark(srv: &mut Server, c: &mut Client) {
    if !c.has_flag(cflags::PUBSUB) {
        c.flags |= cflags::PUBSUB;
        srv.pubsub.clients += 1;
    }
}

pub fn unmark_if_idle(srv: &mut Server, c: &mut Client) {
    let (a, b) = client_counts(c);
    if a + b == 0 && c.has_flag(cflags::PUBSUB) {
        c.flags &= !cflags::PUBSUB;
        srv.pubsub.clients = srv.pubsub.clients.saturating_sub(1);
    }
}

fn server_map(srv: &mut Server, kind: Kind) -> &mut HashMap<Vec<u8>, HashSet<usize>> {
    match kind {
        Kind::Global => &mut srv.pubsub.channels,
        Kind::Shard => &mut srv.pubsub.shard_channels,
    }
}

fn client_set(p: &mut ClientPubSub, kind: Kind) -> &mut HashSet<Vec<u8>> {
    match kind {
        Kind::Global => &mut p.channels,
        Kind::Shard => &mut p.shard_channels,
    }
}

fn count_for(c: &Client, kind: Kind) -> usize {
    let (a, b) = client_counts(c);
    if kind == Kind::Shard {
        b
    } else {
        a
    }
}

pub fn subscribe_channel(srv: &mut Server, c: &mut Client, chan: &[u8], kind: Kind) {
    let p = c.pubsub.get_or_insert_with(Default::default);
    if client_set(p, kind).insert(chan.to_vec()) {
        server_map(srv, kind)
            .entry(chan.to_vec())
            .or_default()
            .insert(c.slot);
    }
    let what: &[u8] = if kind == Kind::Shard {
        b"ssubscribe"
    } else {
        b"subscribe"
    };
    let n = count_for(c, kind);
    add_confirm(c, what, Some(chan), n);
}

/// Removes one channel subscription; `notify` adds the confirmation.
pub fn unsubscribe_channel(
    srv: &mut Server,
    c: &mut Client,
    chan: &[u8],
    kind: Kind,
    notify: bool,
) -> bool {
    let slot = c.slot;
    let removed = c
        .pubsub
        .as_mut()
        .is_some_and(|p| client_set(p, kind).remove(chan));
    if removed {
        let map = server_map(srv, kind);
        if let Some(set) = map.get_mut(chan) {
            set.remove(&slot);
            if set.is_empty() {
                map.remove(chan);
            }
        }
    }
    if notify {
        let what: &[u8] = if kind == Kind::Shard {
            b"sunsubscribe"
        } else {
            b"unsubscribe"
        };
        let n = count_for(c, kind);
        add_confirm(c, what, Some(chan), n);
    }
    removed
}

pub fn subscribe_pattern(srv: &mut Server, c: &mut Client, pat: &[u8]) {
    let p = c.pubsub.get_or_insert_with(Default::default);
    if p.patterns.insert(pat.to_vec()) {
        srv.pubsub
            .patterns
            .entry(pat.to_vec())
            .or_default()
            .insert(c.slot);
    }
    let n = count_for(c, Kind::Global);
    add_confirm(c, b"psubscribe", Some(pat), n);
}

pub fn unsubscribe_pattern(srv: &mut Server, c: &mut Client, pat: &[u8], notify: bool) -> bool {
    let slot = c.slot;
    let removed = c.pubsub.as_mut().is_some_and(|p| p.patterns.remove(pat));
    if removed {
        if let Some(set) = srv.pubsub.patterns.get_mut(pat) {
            set.remove(&slot);
            if set.is_empty() {
                srv.pubsub.patterns.remove(pat);
            }
        }
    }
    if notify {
        let n = count_for(c, Kind::Global);
        add_confirm(c, b"punsubscribe", Some(pat), n);
    }
    removed
}

/// Unsubscribes from every channel of `kind`; with `notify`, a confirmation per channel
/// (or one with a null channel when there was none).
pub fn unsubscribe_all_channels(srv: &mut Server, c: &mut Client, kind: Kind, notify: bool) {
    let list: Vec<Vec<u8>> = match &mut c.pubsub {
        Some(p) => client_set(p, kind).iter().cloned().collect(),
        None => Vec::new(),
    };
    let mut count = 0;
    for ch in &list {
        if unsubscribe_channel(srv, c, ch, kind, notify) {
            count += 1;
        }
    }
    if notify && count == 0 {
        let what: &[u8] = if kind == Kind::Shard {
            b"sunsubscribe"
        } else {
            b"unsubscribe"
        };
        let n = count_for(c, kind);
        add_confirm(c, what, None, n);
    }
}

pub fn unsubscribe_all_patterns(srv: &mut Server, c: &mut Client, notify: bool) {
    let list: Vec<Vec<u8>> = match &c.pubsub {
        Some(p) => p.patterns.iter().cloned().collect(),
        None => Vec::new(),
    };
    let mut count = 0;
    for pat in &list {
        if unsubscribe_pattern(srv, c, pat, notify) {
            count += 1;
        }
    }
    if notify && count == 0 {
        let n = count_for(c, Kind::Global);
        add_confirm(c, b"punsubscribe", None, n);
    }
}

/// Drops every subscription of `c` silently (disconnect, RESET).
pub fn free_client_pubsub(srv: &mut Server, c: &mut Client) {
    if c.pubsub.is_none() {
        return;
    }
    unsubscribe_all_channels(srv, c, Kind::Global, false);
    unsubscribe_all_channels(srv, c, Kind::Shard, false);
    unsubscribe_all_patterns(srv, c, false);
    unmark_if_idle(srv, c);
    c.pubsub = None;
}

/// Publishes `msg` on `chan`; returns the number of receivers.
///
/// Each message is encoded once (RESP2 form; RESP3 differs only in its first byte) and
/// copied to every subscriber's reply buffer.
pub fn publish(srv: &mut Server, chan: &[u8], msg: &[u8], kind: Kind) -> usize {
    let Server {
        pubsub,
        clients,
        clients_pending_write,
        config,
        current_client,
        unixtime,
        ..
    } = srv;
    let limits = config.client_obuf_limits;
    let mut over: Vec<usize> = Vec::new();
    let mut receivers = 0;
    let map = match kind {
        Kind::Global => &pubsub.channels,
        Kind::Shard => &pubsub.shard_channels,
    };
    if let Some(set) = map.get(chan) {
        let mut enc = Vec::with_capacity(40 + chan.len() + msg.len());
        push_len(&mut enc, 2, 3);
        bulk(
            &mut enc,
            if kind == Kind::Shard {
                b"smessage"
            } else {
                b"message"
            },
        );
        bulk(&mut enc, chan);
        bulk(&mut enc, msg);
        for &slot in set {
            receivers += 1;
            if Some(slot) == *current_client {
                pubsub
                    .self_msgs
                    .push(SelfMsg::Msg(kind, chan.to_vec(), msg.to_vec()));
            } else if append_encoded(
                clients,
                clients_pending_write,
                slot,
                &enc,
                &limits,
                *unixtime,
            ) {
                over.push(slot);
            }
        }
    }
    if kind == Kind::Global && !pubsub.patterns.is_empty() {
        let mut enc = Vec::new();
        for (pat, set) in &pubsub.patterns {
            if !acl::glob::string_match(pat, chan, false) {
                continue;
            }
            enc.clear();
            push_len(&mut enc, 2, 4);
            bulk(&mut enc, b"pmessage");
            bulk(&mut enc, pat);
            bulk(&mut enc, chan);
            bulk(&mut enc, msg);
            for &slot in set {
                receivers += 1;
                if Some(slot) == *current_client {
                    pubsub
                        .self_msgs
                        .push(SelfMsg::PMsg(pat.clone(), chan.to_vec(), msg.to_vec()));
                } else if append_encoded(
                    clients,
                    clients_pending_write,
                    slot,
                    &enc,
                    &limits,
                    *unixtime,
                ) {
                    over.push(slot);
                }
            }
        }
    }
    for slot in over {
        crate::networking::close_client_on_obuf_limit_slot(srv, slot);
    }
    receivers
}

/// Appends an encoded push (`*`-form) to the subscriber in `slot` and schedules its
/// flush. Returns true when the client went over its output buffer limit.
fn append_encoded(
    clients: &mut slab::Slab<Option<Box<Client>>>,
    pending: &mut Vec<usize>,
    slot: usize,
    enc: &[u8],
    limits: &[crate::config::ObufLimit; 3],
    unixtime: i64,
) -> bool {
    let Some(Some(c)) = clients.get_mut(slot) else {
        return false;
    };
    if c.has_flag(cflags::CLOSE_ASAP) {
        return false;
    }
    if c.reply.resp >= 3 {
        c.reply.buf.push(b'>');
        c.reply.buf.extend_from_slice(&enc[1..]);
    } else {
        c.reply.buf.extend_from_slice(enc);
    }
    if !c.pending_write {
        c.pending_write = true;
        pending.push(slot);
    }
    // The shared output buffer limit check (networking.rs), inline: the client is in the
    // table, not taken out; the caller closes the ones over their limit.
    if c.reply.pending() <= crate::networking::PROTO_REPLY_CHUNK_BYTES {
        c.obuf_soft_limit_reached_time = 0;
        return false;
    }
    let lim = limits[crate::networking::obuf_limit_class(c)];
    crate::networking::obuf_limit_reached(c, lim, unixtime)
}

/// Appends the messages published to the running client after its command's reply.
pub fn flush_self(srv: &mut Server, c: &mut Client) {
    let msgs = std::mem::take(&mut srv.pubsub.self_msgs);
    for m in &msgs {
        match m {
            SelfMsg::Msg(k, ch, msg) => add_message(c, *k, ch, msg),
            SelfMsg::PMsg(p, ch, msg) => add_pmessage(c, p, ch, msg),
        }
    }
    let mut msgs = msgs;
    msgs.clear();
    if srv.pubsub.self_msgs.is_empty() {
        srv.pubsub.self_msgs = msgs;
    }
}

/// Channel names of `kind` matching `pat` (all when None).
pub fn channel_list(srv: &Server, pat: Option<&[u8]>, kind: Kind) -> Vec<Vec<u8>> {
    let map = match kind {
        Kind::Global => &srv.pubsub.channels,
        Kind::Shard => &srv.pubsub.shard_channels,
    };
    map.keys()
        .filter(|ch| pat.is_none_or(|p| acl::glob::string_match(p, ch, false)))
        .cloned()
        .collect()
}
