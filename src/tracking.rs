//! Client-side caching: key tracking and invalidation messages (upstream's `tracking.c`).
//!
//! A client turns tracking on with `CLIENT TRACKING ON`. In the default mode every key a
//! read-only command of the client fetched is remembered in the *tracking table* (key
//! name -> ids of the clients that may cache it; names only, for every database). When a
//! key is modified ([`crate::db::signal_modified_key`]), expires or is evicted, every
//! client remembered for it gets one invalidation message and the key leaves the table:
//! the client hears about the key again only after it reads it again.
//!
//! In broadcasting mode (`BCAST [PREFIX p ...]`) nothing is remembered per client: the
//! *prefix table* maps each prefix to the keys modified in this event loop turn and to
//! the clients subscribed to the prefix; [`broadcast_invalidation_messages`] sends one
//! array of keys per prefix and client in before-sleep.
//!
//! ## Messages
//! - RESP3 client: a push `>2 invalidate <keys>`; `<keys>` is an array of key names, or
//!   a null (in the null form of the *tracking* client's protocol) after FLUSHALL/FLUSHDB.
//! - `REDIRECT <id>`: the message goes to client `<id>` instead: as a push when that
//!   client speaks RESP3, as a Pub/Sub `message` on `__redis__:invalidate` when it is a
//!   RESP2 client in subscriber mode, not at all otherwise. When `<id>` is gone the
//!   tracking client is flagged `broken_redirect` and, in RESP3, gets
//!   `>2 tracking-redir-broken <id>` instead.
//! - A RESP2 client without redirection gets nothing (RESP2 has no out-of-band data).
//!
//! ## The client running a command
//! The client whose command runs is out of the client table (`networking::take_client`),
//! so a message for it, or for a client redirecting to it, is queued in
//! [`Tracking::pending`] and appended by [`handle_pending`] after its reply (after the
//! whole EXEC in a transaction, after its Pub/Sub messages to itself), which is where
//! upstream's `tracking_pending_keys` and pending push messages put it. Entries for a
//! client that was out of the table for another reason are delivered in before-sleep.
//!
//! ## Layout
//! - [`Tracking`]: the tables and counters, a field of `Server`.
//! - Per client: the `TRACKING*` bits of `Client::flags`, `Client::tracking_redirect`,
//!   `Client::tracking_prefixes`.
//! - Clients are found by id through [`Tracking::slots`] (id -> slab slot), filled when a
//!   client turns tracking on or is named by a REDIRECT, emptied when it is freed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::client::{flags as cflags, Client};
use crate::commands::CommandDef;
use crate::server::Server;

/// The Pub/Sub channel of invalidations for RESP2 clients reached through REDIRECT.
pub const TRACKING_CHANNEL: &[u8] = b"__redis__:invalidate";

/// Every tracking option bit, cleared by [`disable_tracking`].
const ALL_TRACKING_FLAGS: u64 = cflags::TRACKING
    | cflags::TRACKING_BROKEN_REDIR
    | cflags::TRACKING_BCAST
    | cflags::TRACKING_OPTIN
    | cflags::TRACKING_OPTOUT
    | cflags::TRACKING_CACHING
    | cflags::TRACKING_NOLOOP;

/// Keys tracked for clients in default mode, with O(1) random picks for
/// `tracking-table-max-keys` (upstream uses a radix tree and a random walk).
#[derive(Default)]
struct KeyTable {
    /// Dense entries: (key, sorted client ids).
    entries: Vec<(Vec<u8>, Vec<u64>)>,
    /// Key -> position in `entries`.
    index: HashMap<Vec<u8>, usize>,
}

impl KeyTable {
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds `id` to the clients of `key`; true if it was not there yet.
    fn insert(&mut self, key: &[u8], id: u64) -> bool {
        let pos = match self.index.get(key) {
            Some(&p) => p,
            None => {
                self.entries.push((key.to_vec(), Vec::new()));
                self.index.insert(key.to_vec(), self.entries.len() - 1);
                self.entries.len() - 1
            }
        };
        let ids = &mut self.entries[pos].1;
        match ids.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                ids.insert(at, id);
                true
            }
        }
    }

    /// Removes `key`, returning its client ids.
    fn remove(&mut self, key: &[u8]) -> Option<Vec<u64>> {
        let pos = self.index.remove(key)?;
        let (_, ids) = self.entries.swap_remove(pos);
        if pos < self.entries.len() {
            let moved = self.entries[pos].0.clone();
            self.index.insert(moved, pos);
        }
        Some(ids)
    }

    fn random_key(&self) -> Option<Vec<u8>> {
        if self.entries.is_empty() {
            return None;
        }
        let i = (crate::util::random_u64() % self.entries.len() as u64) as usize;
        Some(self.entries[i].0.clone())
    }

    fn clear(&mut self) {
        self.entries = Vec::new();
        self.index = HashMap::new();
    }
}

/// One BCAST prefix (upstream's `bcastState`).
#[derive(Default)]
struct Bcast {
    /// Keys modified in this loop turn -> id of the client that modified each last
    /// (0 when no client did: expiry, eviction), for NOLOOP.
    keys: BTreeMap<Vec<u8>, u64>,
    /// Ids of the clients subscribed to the prefix.
    clients: BTreeSet<u64>,
}

/// A message for a client that is out of the client table.
enum Pending {
    /// `key` changed and `to` was tracking it (default mode).
    Key { to: u64, key: Vec<u8> },
    /// The databases were flushed while `to` was tracking.
    Flush { to: u64 },
    /// `to` is the redirection target of a tracking client: the keys part of an
    /// invalidation (already encoded).
    Redirected { to: u64, keys: Vec<u8> },
}

impl Pending {
    fn to(&self) -> u64 {
        match self {
            Pending::Key { to, .. } | Pending::Flush { to } | Pending::Redirected { to, .. } => *to,
        }
    }
}

/// Server-wide tracking state.
#[derive(Default)]
pub struct Tracking {
    table: KeyTable,
    /// Client ids stored across the whole table (INFO `tracking_total_items`).
    total_items: u64,
    prefixes: BTreeMap<Vec<u8>, Bcast>,
    /// Slab slot of each client that tracks or is named by a REDIRECT, by id.
    slots: HashMap<u64, usize>,
    /// Ids of the clients with tracking on (INFO `tracking_clients`).
    clients: BTreeSet<u64>,
    pending: Vec<Pending>,
    /// The id of the client whose command is running (0 outside commands): the
    /// modifier of a key for BCAST NOLOOP.
    pub current_id: u64,
    /// Consecutive runs of [`limit_used_slots`] that stayed over the limit.
    limit_timeout_counter: u32,
}

impl Tracking {
    /// Whether a modified key may concern anyone: false until a client reads a key with
    /// tracking on or subscribes to a prefix (the cheap test on every write).
    #[inline]
    pub fn active(&self) -> bool {
        self.table.len() != 0 || !self.prefixes.is_empty()
    }

    /// INFO `tracking_clients`.
    pub fn tracking_clients(&self) -> usize {
        self.clients.len()
    }

    /// INFO `tracking_total_keys`.
    pub fn total_keys(&self) -> usize {
        self.table.len()
    }

    /// INFO `tracking_total_items`.
    pub fn total_items(&self) -> u64 {
        self.total_items
    }

    /// INFO `tracking_total_prefixes`.
    pub fn total_prefixes(&self) -> usize {
        self.prefixes.len()
    }
}

// ---------------------------------------------------------------------------------------
// Encoding

fn push_header(buf: &mut Vec<u8>) {
    buf.extend_from_slice(b">2\r\n$10\r\ninvalidate\r\n");
}

fn message_header(buf: &mut Vec<u8>) {
    buf.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n$20\r\n");
    buf.extend_from_slice(TRACKING_CHANNEL);
    buf.extend_from_slice(b"\r\n");
}

/// The keys part of a default-mode invalidation: an array of one key.
fn one_key_array(key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + 16);
    v.extend_from_slice(b"*1\r\n$");
    v.extend_from_slice(key.len().to_string().as_bytes());
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(key);
    v.extend_from_slice(b"\r\n");
    v
}

/// The null sent after a flush, in the protocol of the tracking client (also when the
/// message is redirected to a client speaking the other one, as upstream).
fn null_for(resp: u8) -> &'static [u8] {
    if resp >= 3 {
        b"_\r\n"
    } else {
        b"$-1\r\n"
    }
}

/// Appends the message for a redirection target: a push in RESP3, a Pub/Sub message for
/// a RESP2 subscriber, nothing otherwise.
fn add_redirected(c: &mut Client, keys: &[u8]) -> bool {
    if c.reply.resp >= 3 {
        push_header(&mut c.reply.buf);
    } else if c.has_flag(cflags::PUBSUB) {
        message_header(&mut c.reply.buf);
    } else {
        return false;
    }
    c.reply.buf.extend_from_slice(keys);
    true
}

fn add_redir_broken(c: &mut Client, redir: u64) {
    let buf = &mut c.reply.buf;
    buf.extend_from_slice(b">2\r\n$21\r\ntracking-redir-broken\r\n:");
    buf.extend_from_slice(redir.to_string().as_bytes());
    buf.extend_from_slice(b"\r\n");
}

// ---------------------------------------------------------------------------------------
// Finding clients

/// Where a client of a given id is.
enum Found {
    /// In the client table at this slot.
    Table(usize),
    /// Taken out of the table (running a command).
    Out,
    /// Gone.
    Gone,
}

fn find(srv: &Server, id: u64) -> Found {
    let Some(&slot) = srv.tracking.slots.get(&id) else {
        return Found::Gone;
    };
    match srv.clients.get(slot) {
        Some(Some(c)) if c.id == id => Found::Table(slot),
        Some(None) => Found::Out,
        _ => Found::Gone,
    }
}

/// The slot of the live client `id`, registering it for later lookups (a full scan of
/// the client table, only when a REDIRECT names a client not known yet).
fn lookup_and_register(srv: &mut Server, c: &Client, id: u64) -> bool {
    if id == c.id {
        srv.tracking.slots.insert(id, c.slot);
        return true;
    }
    if let Found::Table(_) = find(srv, id) {
        return true;
    }
    let slot = srv
        .clients
        .iter()
        .find(|(_, o)| o.as_deref().is_some_and(|t| t.id == id))
        .map(|(slot, _)| slot);
    match slot {
        Some(s) => {
            srv.tracking.slots.insert(id, s);
            true
        }
        None => false,
    }
}

/// Schedules the flush of client `slot` after a message was appended and closes it
/// (asynchronously) when it went over its output buffer limit.
fn after_append(srv: &mut Server, slot: usize) {
    let over = {
        let Some(Some(c)) = srv.clients.get_mut(slot) else {
            return;
        };
        if !c.pending_write {
            c.pending_write = true;
            srv.clients_pending_write.push(slot);
        }
        if c.reply.pending() <= crate::networking::PROTO_REPLY_CHUNK_BYTES {
            c.obuf_soft_limit_reached_time = 0;
            false
        } else {
            let lim = srv.config.client_obuf_limits[crate::networking::obuf_limit_class(c)];
            crate::networking::obuf_limit_reached(c, lim, srv.unixtime)
        }
    };
    if over {
        crate::networking::close_client_on_obuf_limit_slot(srv, slot);
    }
}

// ---------------------------------------------------------------------------------------
// Sending (upstream's sendTrackingMessage)

/// Delivers the keys part `keys` of an invalidation to the redirection target `redir` of
/// a tracking client; returns false when the target is gone.
fn send_redirected(srv: &mut Server, redir: u64, keys: &[u8]) -> bool {
    match find(srv, redir) {
        Found::Table(slot) => {
            let added = match srv.clients.get_mut(slot) {
                Some(Some(t)) => add_redirected(t, keys),
                _ => false,
            };
            if added {
                after_append(srv, slot);
            }
            true
        }
        Found::Out => {
            srv.tracking.pending.push(Pending::Redirected {
                to: redir,
                keys: keys.to_vec(),
            });
            true
        }
        Found::Gone => false,
    }
}

/// Sends an invalidation with the keys part `keys` for the tracking client in `slot`.
fn send_tracking_message(srv: &mut Server, slot: usize, keys: &[u8]) {
    let (redir, resp) = match srv.clients.get(slot) {
        Some(Some(c)) => (c.tracking_redirect, c.reply.resp),
        _ => return,
    };
    if redir != 0 {
        if send_redirected(srv, redir, keys) {
            return;
        }
        if let Some(Some(c)) = srv.clients.get_mut(slot) {
            c.flags |= cflags::TRACKING_BROKEN_REDIR;
            if resp < 3 {
                return;
            }
            add_redir_broken(c, redir);
        }
        after_append(srv, slot);
        return;
    }
    if resp < 3 {
        return;
    }
    if let Some(Some(c)) = srv.clients.get_mut(slot) {
        push_header(&mut c.reply.buf);
        c.reply.buf.extend_from_slice(keys);
    }
    after_append(srv, slot);
}

/// [`send_tracking_message`] for the client in hand (out of the table).
fn send_tracking_message_to(srv: &mut Server, c: &mut Client, keys: &[u8]) {
    let redir = c.tracking_redirect;
    if redir != 0 {
        if redir == c.id {
            add_redirected(c, keys);
            return;
        }
        if send_redirected(srv, redir, keys) {
            return;
        }
        c.flags |= cflags::TRACKING_BROKEN_REDIR;
        if c.reply.resp >= 3 {
            add_redir_broken(c, redir);
        }
        return;
    }
    if c.reply.resp >= 3 {
        push_header(&mut c.reply.buf);
        c.reply.buf.extend_from_slice(keys);
    }
}

/// Appends the messages queued for `c` while it was out of the table (its own keys
/// modified by its command, a flush, redirected invalidations), after its reply.
/// Called at the end of a top-level command and where upstream flushes
/// `tracking_pending_keys` in processCommand.
#[inline]
pub fn handle_pending(srv: &mut Server, c: &mut Client) {
    if !srv.tracking.pending.is_empty() {
        handle_pending_slow(srv, c);
    }
}

fn handle_pending_slow(srv: &mut Server, c: &mut Client) {
    let all = std::mem::take(&mut srv.tracking.pending);
    let mut rest = Vec::new();
    for p in all {
        if p.to() != c.id {
            rest.push(p);
            continue;
        }
        match p {
            Pending::Key { key, .. } => {
                // The checks upstream makes when it queues the key.
                if !c.has_flag(cflags::TRACKING)
                    || c.has_flag(cflags::TRACKING_BCAST | cflags::TRACKING_NOLOOP)
                {
                    continue;
                }
                send_tracking_message_to(srv, c, &one_key_array(&key));
            }
            Pending::Flush { .. } => {
                let null = null_for(c.reply.resp);
                send_tracking_message_to(srv, c, null);
            }
            Pending::Redirected { keys, .. } => {
                add_redirected(c, &keys);
            }
        }
    }
    // Messages queued meanwhile (for a client out of the table) stay queued.
    rest.append(&mut srv.tracking.pending);
    srv.tracking.pending = rest;
}

/// before-sleep: delivers messages still queued for clients that are back in the table.
fn deliver_leftovers(srv: &mut Server) {
    if srv.tracking.pending.is_empty() {
        return;
    }
    let ids: BTreeSet<u64> = srv.tracking.pending.iter().map(Pending::to).collect();
    for id in ids {
        match find(srv, id) {
            Found::Table(slot) => {
                if let Some(mut c) = crate::networking::take_client(srv, slot) {
                    handle_pending(srv, &mut c);
                    if c.has_pending_replies() && !c.pending_write {
                        c.pending_write = true;
                        srv.clients_pending_write.push(slot);
                    }
                    crate::networking::put_client(srv, c);
                }
            }
            // Nothing runs in before-sleep: a client still out of the table will not be
            // served by this queue; drop rather than keep its entries forever.
            Found::Gone | Found::Out => srv.tracking.pending.retain(|p| p.to() != id),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Enabling and disabling

/// CLIENT TRACKING ON: sets the mode and options (`options` holds TRACKING_BCAST,
/// _OPTIN, _OPTOUT, _NOLOOP bits) and subscribes a BCAST client to its prefixes (the
/// empty prefix when none is given). The caller validated the combination.
pub fn enable_tracking(
    srv: &mut Server,
    c: &mut Client,
    redirect: u64,
    options: u64,
    prefixes: &[Vec<u8>],
) {
    if !c.has_flag(cflags::TRACKING) {
        srv.tracking.clients.insert(c.id);
    }
    srv.tracking.slots.insert(c.id, c.slot);
    c.flags |= cflags::TRACKING;
    c.flags &= !(cflags::TRACKING_BROKEN_REDIR
        | cflags::TRACKING_BCAST
        | cflags::TRACKING_OPTIN
        | cflags::TRACKING_OPTOUT
        | cflags::TRACKING_NOLOOP);
    c.tracking_redirect = redirect;
    if options & cflags::TRACKING_BCAST != 0 {
        c.flags |= cflags::TRACKING_BCAST;
        if prefixes.is_empty() {
            enable_bcast_prefix(srv, c, b"");
        }
        for p in prefixes {
            enable_bcast_prefix(srv, c, p);
        }
    }
    c.flags |=
        options & (cflags::TRACKING_OPTIN | cflags::TRACKING_OPTOUT | cflags::TRACKING_NOLOOP);
}

fn enable_bcast_prefix(srv: &mut Server, c: &mut Client, prefix: &[u8]) {
    let bs = srv.tracking.prefixes.entry(prefix.to_vec()).or_default();
    if bs.clients.insert(c.id) {
        c.tracking_prefixes.insert(prefix.to_vec());
    }
}

/// CLIENT TRACKING OFF, RESET, and a client being freed: leaves the prefixes and clears
/// the flags. The client's id stays in the key table until those keys are invalidated
/// (upstream removes it lazily too).
pub fn disable_tracking(srv: &mut Server, c: &mut Client) {
    if c.has_flag(cflags::TRACKING_BCAST) {
        for p in std::mem::take(&mut c.tracking_prefixes) {
            if let Some(bs) = srv.tracking.prefixes.get_mut(&p) {
                bs.clients.remove(&c.id);
                if bs.clients.is_empty() {
                    srv.tracking.prefixes.remove(&p);
                }
            }
        }
    }
    if c.has_flag(cflags::TRACKING) {
        srv.tracking.clients.remove(&c.id);
        c.flags &= !ALL_TRACKING_FLAGS;
    }
}

/// A client is freed: tracking off, and its id no longer resolves (a client redirecting
/// to it now finds the redirection broken).
pub fn free_client(srv: &mut Server, c: &mut Client) {
    disable_tracking(srv, c);
    srv.tracking.slots.remove(&c.id);
    srv.tracking.pending.retain(|p| p.to() != c.id);
}

/// Whether two prefixes would both match some key: one is a prefix of the other.
fn prefixes_overlap(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// A prefix as upstream's `%s` prints it: up to its first NUL byte.
fn cstr(p: &[u8]) -> String {
    let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

/// Checks that the new `prefixes` overlap neither the client's prefixes nor each other
/// (upstream's checkPrefixCollisionsOrReply); the error text on a collision.
pub fn check_prefix_collisions(c: &Client, prefixes: &[Vec<u8>]) -> Result<(), String> {
    for (i, p) in prefixes.iter().enumerate() {
        if let Some(e) = c.tracking_prefixes.iter().find(|e| prefixes_overlap(e, p)) {
            return Err(format!(
                "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a \
                 single client must not overlap.",
                cstr(p),
                cstr(e)
            ));
        }
        for q in &prefixes[i + 1..] {
            if prefixes_overlap(p, q) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes \
                     for a single client must not overlap.",
                    cstr(p),
                    cstr(q)
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Remembering and invalidating

/// After a read-only command of a tracking client in default mode: remembers the keys
/// it fetched (upstream's trackingRememberKeys), unless OPTIN without CACHING YES or
/// OPTOUT with CACHING NO.
pub fn remember_keys(srv: &mut Server, c: &Client, def: &CommandDef) {
    let optin = c.has_flag(cflags::TRACKING_OPTIN);
    let optout = c.has_flag(cflags::TRACKING_OPTOUT);
    let caching = c.has_flag(cflags::TRACKING_CACHING);
    if (optin && !caching) || (optout && caching) {
        return;
    }
    // Shard channels are keys for cluster routing only.
    if def.flags & crate::commands::flags::PUBSUB != 0 {
        return;
    }
    let Some(keys) = crate::commands::server::get_keys(def, &c.argv) else {
        return;
    };
    for k in keys {
        if let Some(key) = c.argv.get(k.pos) {
            if srv.tracking.table.insert(key, c.id) {
                srv.tracking.total_items += 1;
            }
        }
    }
}

/// `key` was modified by a command (or expired, was evicted): records it for the BCAST
/// prefixes it matches when `bcast`, and sends one invalidation to every client that
/// read it in default mode, forgetting the key (upstream's trackingInvalidateKey).
/// `modifier` is the id of the client whose command modified the key, 0 for none.
pub fn invalidate_key(srv: &mut Server, key: &[u8], bcast: bool, modifier: u64) {
    if bcast && !srv.tracking.prefixes.is_empty() {
        for (p, bs) in srv.tracking.prefixes.iter_mut() {
            if key.starts_with(p) {
                bs.keys.insert(key.to_vec(), modifier);
            }
        }
    }
    let Some(ids) = srv.tracking.table.remove(key) else {
        return;
    };
    srv.tracking.total_items -= ids.len() as u64;
    let mut keys: Option<Vec<u8>> = None;
    for id in ids {
        match find(srv, id) {
            Found::Table(slot) => {
                let Some(Some(t)) = srv.clients.get(slot) else {
                    continue;
                };
                // A client that switched to BCAST gets no leftover default-mode message.
                if !t.has_flag(cflags::TRACKING) || t.has_flag(cflags::TRACKING_BCAST) {
                    continue;
                }
                let keys = keys.get_or_insert_with(|| one_key_array(key));
                send_tracking_message(srv, slot, keys);
            }
            // The running client: after its reply (NOLOOP and the mode are checked then).
            Found::Out => srv.tracking.pending.push(Pending::Key {
                to: id,
                key: key.to_vec(),
            }),
            Found::Gone => {}
        }
    }
}

/// FLUSHALL / FLUSHDB (any database): every tracking client gets a null invalidation
/// ("everything"), and the key table is emptied (upstream's
/// trackingInvalidateKeysOnFlush).
pub fn invalidate_keys_on_flush(srv: &mut Server) {
    let ids: Vec<u64> = srv.tracking.clients.iter().copied().collect();
    for id in ids {
        match find(srv, id) {
            Found::Table(slot) => {
                let resp = match srv.clients.get(slot) {
                    Some(Some(t)) if t.has_flag(cflags::TRACKING) => t.reply.resp,
                    _ => continue,
                };
                send_tracking_message(srv, slot, null_for(resp));
            }
            Found::Out => srv.tracking.pending.push(Pending::Flush { to: id }),
            Found::Gone => {}
        }
    }
    srv.tracking.table.clear();
    srv.tracking.total_items = 0;
}

/// Keeps the key table within `tracking-table-max-keys`: invalidates random keys (as if
/// modified, without BCAST) with an effort that grows while the table stays over the
/// limit (upstream's trackingLimitUsedSlots). Run before each command and from cron.
pub fn limit_used_slots(srv: &mut Server) {
    let max_keys = srv.config.tracking_table_max_keys;
    if max_keys == 0 {
        return;
    }
    if srv.tracking.table.len() <= max_keys {
        srv.tracking.limit_timeout_counter = 0;
        return;
    }
    let mut effort = 100 * (srv.tracking.limit_timeout_counter as u64 + 1);
    while effort > 0 {
        effort -= 1;
        let Some(key) = srv.tracking.table.random_key() else {
            break;
        };
        invalidate_key(srv, &key, false, 0);
        if srv.tracking.table.len() <= max_keys {
            srv.tracking.limit_timeout_counter = 0;
            return;
        }
    }
    srv.tracking.limit_timeout_counter += 1;
}

/// The array of the keys of `keys`, leaving out those last modified by `noloop` (a
/// NOLOOP client); None when nothing is left.
fn build_broadcast_reply(keys: &BTreeMap<Vec<u8>, u64>, noloop: Option<u64>) -> Option<Vec<u8>> {
    let count = match noloop {
        None => keys.len(),
        Some(id) => keys.values().filter(|&&m| m != id).count(),
    };
    if noloop.is_some() && count == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(count * 16 + 8);
    out.push(b'*');
    out.extend_from_slice(count.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, &m) in keys {
        if noloop == Some(m) {
            continue;
        }
        out.push(b'$');
        out.extend_from_slice(k.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(k);
        out.extend_from_slice(b"\r\n");
    }
    Some(out)
}

/// before-sleep: sends each BCAST client the keys modified in this turn under each of
/// its prefixes, one message per prefix (upstream's
/// trackingBroadcastInvalidationMessages).
pub fn broadcast_invalidation_messages(srv: &mut Server) {
    if srv.tracking.prefixes.is_empty() || srv.tracking.clients.is_empty() {
        return;
    }
    let mut prefixes = std::mem::take(&mut srv.tracking.prefixes);
    for bs in prefixes.values_mut() {
        if bs.keys.is_empty() {
            continue;
        }
        let mut common: Option<Vec<u8>> = None;
        for &id in &bs.clients {
            let Found::Table(slot) = find(srv, id) else {
                continue;
            };
            let noloop = matches!(srv.clients.get(slot),
                Some(Some(t)) if t.has_flag(cflags::TRACKING_NOLOOP));
            if noloop {
                if let Some(adhoc) = build_broadcast_reply(&bs.keys, Some(id)) {
                    send_tracking_message(srv, slot, &adhoc);
                }
            } else {
                let proto = common.get_or_insert_with(|| {
                    build_broadcast_reply(&bs.keys, None).unwrap_or_default()
                });
                send_tracking_message(srv, slot, proto);
            }
        }
        bs.keys.clear();
    }
    // Prefixes subscribed meanwhile (none: nothing runs commands here) are kept.
    let added = std::mem::replace(&mut srv.tracking.prefixes, prefixes);
    srv.tracking.prefixes.extend(added);
}

/// before-sleep work: BCAST messages, then messages left for clients that were out of
/// the table.
pub fn before_sleep(srv: &mut Server) {
    broadcast_invalidation_messages(srv);
    deliver_leftovers(srv);
}

/// serverCron: keeps the table within its limit even when idle (after CONFIG SET).
pub fn cron(srv: &mut Server) {
    if !srv.tracking.clients.is_empty() {
        limit_used_slots(srv);
    }
}

// ---------------------------------------------------------------------------------------
// CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO

/// Whether `CLIENT CACHING` given before this command still applies after it: the flag
/// lasts for one command (or a whole transaction) and survives CLIENT subcommands, as
/// upstream's resetClient.
pub fn reset_caching_after_command(srv: &Server, c: &mut Client) {
    if !c.has_flag(cflags::TRACKING_CACHING) || c.has_flag(cflags::MULTI | cflags::BLOCKED) {
        return;
    }
    let is_client = c
        .argv
        .first()
        .is_some_and(|a| crate::util::eq_ic(a, "client"))
        && srv.commands.lookup(&c.argv).is_ok();
    if !is_client {
        c.flags &= !cflags::TRACKING_CACHING;
    }
}

/// CLIENT TRACKING (ON|OFF) [REDIRECT id] [BCAST] [PREFIX p]... [OPTIN] [OPTOUT] [NOLOOP]
pub fn client_tracking_command(srv: &mut Server, c: &mut Client) {
    use crate::util::eq_ic;
    let mut redir: i64 = 0;
    let mut options: u64 = 0;
    let mut prefixes: Vec<Vec<u8>> = Vec::new();
    let argc = c.argv.len();
    let mut j = 3;
    while j < argc {
        let more = j + 1 < argc;
        let opt = &c.argv[j];
        if eq_ic(opt, "redirect") && more {
            j += 1;
            if redir != 0 {
                c.reply
                    .add_error("ERR A client can only redirect to a single other client");
                return;
            }
            let Some(id) = crate::util::parse_i64_strict(&c.argv[j]) else {
                c.reply.add_error(crate::reply::ERR_NOT_INTEGER);
                return;
            };
            redir = id;
            // The target must exist now (it may go away later: broken redirection).
            if id <= 0 || !lookup_and_register(srv, c, id as u64) {
                c.reply
                    .add_error("ERR The client ID you want redirect to does not exist");
                return;
            }
        } else if eq_ic(opt, "bcast") {
            options |= cflags::TRACKING_BCAST;
        } else if eq_ic(opt, "optin") {
            options |= cflags::TRACKING_OPTIN;
        } else if eq_ic(opt, "optout") {
            options |= cflags::TRACKING_OPTOUT;
        } else if eq_ic(opt, "noloop") {
            options |= cflags::TRACKING_NOLOOP;
        } else if eq_ic(opt, "prefix") && more {
            j += 1;
            prefixes.push(c.argv[j].clone());
        } else {
            c.reply.add_error(crate::reply::ERR_SYNTAX);
            return;
        }
        j += 1;
    }
    if eq_ic(&c.argv[2], "on") {
        let bcast = options & cflags::TRACKING_BCAST != 0;
        if !bcast && !prefixes.is_empty() {
            c.reply
                .add_error("ERR PREFIX option requires BCAST mode to be enabled");
            return;
        }
        if c.has_flag(cflags::TRACKING) && c.has_flag(cflags::TRACKING_BCAST) != bcast {
            c.reply.add_error(
                "ERR You can't switch BCAST mode on/off before disabling tracking for this \
                 client, and then re-enabling it with a different mode.",
            );
            return;
        }
        let inout = options & (cflags::TRACKING_OPTIN | cflags::TRACKING_OPTOUT);
        if bcast && inout != 0 {
            c.reply
                .add_error("ERR OPTIN and OPTOUT are not compatible with BCAST");
            return;
        }
        if inout == cflags::TRACKING_OPTIN | cflags::TRACKING_OPTOUT {
            c.reply
                .add_error("ERR You can't specify both OPTIN mode and OPTOUT mode");
            return;
        }
        if (options & cflags::TRACKING_OPTIN != 0 && c.has_flag(cflags::TRACKING_OPTOUT))
            || (options & cflags::TRACKING_OPTOUT != 0 && c.has_flag(cflags::TRACKING_OPTIN))
        {
            c.reply.add_error(
                "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this \
                 client, and then re-enabling it with a different mode.",
            );
            return;
        }
        if bcast {
            if let Err(e) = check_prefix_collisions(c, &prefixes) {
                c.reply.add_error(&e);
                return;
            }
        }
        enable_tracking(srv, c, redir as u64, options, &prefixes);
    } else if eq_ic(&c.argv[2], "off") {
        disable_tracking(srv, c);
    } else {
        c.reply.add_error(crate::reply::ERR_SYNTAX);
        return;
    }
    c.reply.add_ok();
}

/// CLIENT CACHING (YES|NO)
pub fn client_caching_command(_srv: &mut Server, c: &mut Client) {
    if !c.has_flag(cflags::TRACKING) {
        c.reply.add_error(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with \
             OPTIN or OPTOUT mode enabled",
        );
        return;
    }
    let opt = &c.argv[2];
    if crate::util::eq_ic(opt, "yes") {
        if !c.has_flag(cflags::TRACKING_OPTIN) {
            c.reply.add_error(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            );
            return;
        }
    } else if crate::util::eq_ic(opt, "no") {
        if !c.has_flag(cflags::TRACKING_OPTOUT) {
            c.reply.add_error(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            );
            return;
        }
    } else {
        c.reply.add_error(crate::reply::ERR_SYNTAX);
        return;
    }
    c.flags |= cflags::TRACKING_CACHING;
    c.reply.add_ok();
}

/// The redirection shown by CLIENT GETREDIR, TRACKINGINFO and CLIENT LIST `redir=`:
/// -1 when tracking is off, 0 without redirection.
pub fn redirection(c: &Client) -> i64 {
    if c.has_flag(cflags::TRACKING) {
        c.tracking_redirect as i64
    } else {
        -1
    }
}

/// CLIENT GETREDIR
pub fn client_getredir_command(_srv: &mut Server, c: &mut Client) {
    let r = redirection(c);
    c.reply.add_long(r);
}

/// CLIENT TRACKINGINFO: a map of `flags` (a set), `redirect` and `prefixes`.
pub fn client_trackinginfo_command(_srv: &mut Server, c: &mut Client) {
    let mut flags: Vec<&str> = vec![if c.has_flag(cflags::TRACKING) {
        "on"
    } else {
        "off"
    }];
    if c.has_flag(cflags::TRACKING_BCAST) {
        flags.push("bcast");
    }
    if c.has_flag(cflags::TRACKING_OPTIN) {
        flags.push("optin");
        if c.has_flag(cflags::TRACKING_CACHING) {
            flags.push("caching-yes");
        }
    }
    if c.has_flag(cflags::TRACKING_OPTOUT) {
        flags.push("optout");
        if c.has_flag(cflags::TRACKING_CACHING) {
            flags.push("caching-no");
        }
    }
    if c.has_flag(cflags::TRACKING_NOLOOP) {
        flags.push("noloop");
    }
    if c.has_flag(cflags::TRACKING_BROKEN_REDIR) {
        flags.push("broken_redirect");
    }
    let redir = redirection(c);
    let prefixes: Vec<Vec<u8>> = c.tracking_prefixes.iter().cloned().collect();
    let r = &mut c.reply;
    r.add_map_len(3);
    r.add_bulk(b"flags");
    r.add_set_len(flags.len());
    for f in flags {
        r.add_bulk(f.as_bytes());
    }
    r.add_bulk(b"redirect");
    r.add_long(redir);
    r.add_bulk(b"prefixes");
    r.add_array_len(prefixes.len());
    for p in &prefixes {
        r.add_bulk(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_table_insert_remove_keeps_index() {
        let mut t = KeyTable::default();
        assert!(t.insert(b"a", 2));
        assert!(t.insert(b"a", 1));
        assert!(!t.insert(b"a", 2));
        assert!(t.insert(b"b", 1));
        assert!(t.insert(b"c", 3));
        assert_eq!(t.remove(b"a"), Some(vec![1, 2]));
        assert_eq!(t.len(), 2);
        // The entry moved into the hole is still found.
        assert_eq!(t.remove(b"c"), Some(vec![3]));
        assert_eq!(t.remove(b"b"), Some(vec![1]));
        assert_eq!(t.remove(b"b"), None);
        assert!(t.random_key().is_none());
    }

    #[test]
    fn broadcast_reply_noloop() {
        let mut keys = BTreeMap::new();
        keys.insert(b"k2".to_vec(), 7);
        keys.insert(b"k1".to_vec(), 0);
        assert_eq!(
            build_broadcast_reply(&keys, None).unwrap(),
            b"*2\r\n$2\r\nk1\r\n$2\r\nk2\r\n"
        );
        assert_eq!(
            build_broadcast_reply(&keys, Some(7)).unwrap(),
            b"*1\r\n$2\r\nk1\r\n"
        );
        keys.remove(&b"k1"[..]);
        assert!(build_broadcast_reply(&keys, Some(7)).is_none());
    }

    #[test]
    fn prefix_overlap() {
        assert!(prefixes_overlap(b"ab", b"a"));
        assert!(prefixes_overlap(b"", b"x"));
        assert!(!prefixes_overlap(b"ab", b"ac"));
        assert_eq!(cstr(b"a\0b"), "a");
    }
}
