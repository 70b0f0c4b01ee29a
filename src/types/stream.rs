//! Streams (upstream's `t_stream.c` low level part and `stream.h`).
//!
//! Layout: an ordered map from a node's master ID to a listpack holding up to
//! `stream-node-max-entries` entries (or `stream-node-max-bytes` bytes), in upstream's
//! node format so a node can be dumped as is:
//!
//! - master entry: `count`, `deleted`, `num-fields`, the fields of the node's first
//!   entry, `0`;
//! - each entry: `flags`, `ms-diff`, `seq-diff` (from the master ID), then either the
//!   values alone (flag SAMEFIELDS: the fields are the master fields) or `num-fields`
//!   and field/value pairs, then `lp-count` (the number of elements of the entry before
//!   it, to walk backwards).
//!
//! Deleted entries are only flagged (tombstones); a node whose last live entry goes is
//! removed. Consumer groups are kept beside, created on demand.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::listpack::{Listpack, LpEntry};

const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;
/// Upstream's `STREAM_LISTPACK_MAX_SIZE`.
pub const LISTPACK_MAX_SIZE: usize = 1 << 30;
/// Upstream's `STREAM_LISTPACK_MAX_PRE_ALLOCATE`.
const MAX_PRE_ALLOCATE: usize = 4096;

/// A stream entry ID.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID, None at the maximum (upstream's `streamIncrID` failing).
    pub fn incr(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                None
            } else {
                Some(StreamId::new(self.ms + 1, 0))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq + 1))
        }
    }

    /// The previous ID, None at 0-0.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq == 0 {
            if self.ms == 0 {
                None
            } else {
                Some(StreamId::new(self.ms - 1, u64::MAX))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq - 1))
        }
    }

    pub fn is_zero(self) -> bool {
        self.ms == 0 && self.seq == 0
    }

    /// `<ms>-<seq>`.
    pub fn to_bytes(self) -> Vec<u8> {
        format!("{}-{}", self.ms, self.seq).into_bytes()
    }
}

/// A pending entry of a consumer group (upstream's `streamNACK`).
#[derive(Clone, Debug, PartialEq)]
pub struct PendingEntry {
    pub delivery_time: i64,
    pub delivery_count: u64,
    pub consumer: Vec<u8>,
}

/// A consumer of a group.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Consumer {
    pub seen_time: i64,
    pub active_time: i64,
    /// IDs of its pending entries (the entries themselves are in the group's PEL).
    pub pel: BTreeSet<StreamId>,
}

/// A consumer group (upstream's `streamCG`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ConsumerGroup {
    pub last_id: StreamId,
    /// Logical read counter, -1 when invalid (`SCG_INVALID_ENTRIES_READ`).
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, PendingEntry>,
    pub consumers: BTreeMap<Vec<u8>, Consumer>,
}

#[derive(Clone, Debug, PartialEq, Default)]
struct Inner {
    nodes: BTreeMap<StreamId, Listpack>,
    length: u64,
    last_id: StreamId,
    first_id: StreamId,
    max_deleted_entry_id: StreamId,
    entries_added: u64,
    groups: Option<BTreeMap<Vec<u8>, ConsumerGroup>>,
    /// Node count at the last compaction of `nodes` (see [`Stream::append`]).
    nodes_at_rebuild: usize,
}

/// A stream value. Boxed so that `Value` stays small.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Stream {
    s: Box<Inner>,
}

/// Why an append failed.
#[derive(Debug, PartialEq, Eq)]
pub enum AppendError {
    /// The ID is not greater than the top item (upstream's EDOM).
    IdTooSmall,
    /// The elements are too large (ERANGE).
    TooLarge,
}

/// How to trim (upstream's `streamAddTrimArgs` trim part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrimStrategy {
    None,
    MaxLen(u64),
    MinId(StreamId),
}

fn int_at(lp: &Listpack, pos: usize) -> i64 {
    match lp.get(pos) {
        LpEntry::Int(v) => v,
        LpEntry::Str(s) => crate::util::parse_i64_strict(s).unwrap_or(0),
    }
}

/// One decoded entry inside a node.
struct EntryPos {
    flags_pos: usize,
    flags: i64,
    id: StreamId,
    /// Position of the first field (non SAMEFIELDS) or first value (SAMEFIELDS).
    body: usize,
    nfields: usize,
    /// Position after the entry's lp-count (None at the end).
    next: Option<usize>,
}

/// The master entry of a node: its field positions and where the first entry starts.
struct Master {
    fields: Vec<usize>,
    first: Option<usize>,
}

fn read_master(lp: &Listpack) -> Master {
    let mut fields = Vec::new();
    let mut p = lp.first();
    // count, deleted
    p = p.and_then(|p| lp.next(p));
    p = p.and_then(|p| lp.next(p));
    let n = p.map_or(0, |p| int_at(lp, p)).max(0) as usize;
    p = p.and_then(|p| lp.next(p));
    for _ in 0..n {
        let Some(q) = p else { break };
        fields.push(q);
        p = lp.next(q);
    }
    // The zero terminator.
    let first = p.and_then(|p| lp.next(p));
    Master { fields, first }
}

fn read_entry(lp: &Listpack, master_id: StreamId, m: &Master, p: usize) -> EntryPos {
    let flags = int_at(lp, p);
    let mut q = lp.next(p);
    let msd = q.map_or(0, |q| int_at(lp, q));
    q = q.and_then(|q| lp.next(q));
    let seqd = q.map_or(0, |q| int_at(lp, q));
    q = q.and_then(|q| lp.next(q));
    let id = StreamId::new(
        master_id.ms.wrapping_add(msd as u64),
        master_id.seq.wrapping_add(seqd as u64),
    );
    let (nfields, skip) = if flags & FLAG_SAMEFIELDS != 0 {
        (m.fields.len(), m.fields.len())
    } else {
        let n = q.map_or(0, |q| int_at(lp, q)).max(0) as usize;
        q = q.and_then(|q| lp.next(q));
        (n, n.saturating_mul(2))
    };
    let body = q.unwrap_or(0);
    for _ in 0..skip {
        q = q.and_then(|q| lp.next(q));
    }
    // Skip lp-count.
    let next = q.and_then(|q| lp.next(q));
    EntryPos {
        flags_pos: p,
        flags,
        id,
        body,
        nfields,
        next,
    }
}

/// The field/value pairs of an entry, as listpack positions.
fn entry_pairs(lp: &Listpack, m: &Master, e: &EntryPos, out: &mut Vec<(usize, usize)>) {
    out.clear();
    let mut q = Some(e.body);
    if e.flags & FLAG_SAMEFIELDS != 0 {
        for &f in &m.fields {
            let Some(v) = q else { break };
            out.push((f, v));
            q = lp.next(v);
        }
    } else {
        for _ in 0..e.nfields {
            let Some(f) = q else { break };
            let Some(v) = lp.next(f) else { break };
            out.push((f, v));
            q = lp.next(v);
        }
    }
}

/// A view of one entry passed to range callbacks.
pub struct EntryView<'a> {
    lp: &'a Listpack,
    pairs: &'a [(usize, usize)],
}

impl<'a> EntryView<'a> {
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    #[allow(dead_code)] // Pairs `len` (clippy's len_without_is_empty).
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The i-th field and value.
    pub fn pair(&self, i: usize) -> (LpEntry<'a>, LpEntry<'a>) {
        let (f, v) = self.pairs[i];
        (self.lp.get(f), self.lp.get(v))
    }
}

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    /// Number of live entries.
    pub fn len(&self) -> u64 {
        self.s.length
    }

    pub fn is_empty(&self) -> bool {
        self.s.length == 0
    }

    pub fn encoding(&self) -> crate::object::Encoding {
        crate::object::Encoding::Stream
    }

    pub fn last_id(&self) -> StreamId {
        self.s.last_id
    }

    pub fn first_id(&self) -> StreamId {
        self.s.first_id
    }

    pub fn max_deleted_entry_id(&self) -> StreamId {
        self.s.max_deleted_entry_id
    }

    pub fn entries_added(&self) -> u64 {
        self.s.entries_added
    }

    /// Number of nodes (listpacks).
    pub fn node_count(&self) -> usize {
        self.s.nodes.len()
    }

    pub fn groups(&self) -> Option<&BTreeMap<Vec<u8>, ConsumerGroup>> {
        self.s.groups.as_ref()
    }

    pub fn groups_mut(&mut self) -> &mut BTreeMap<Vec<u8>, ConsumerGroup> {
        self.s.groups.get_or_insert_with(BTreeMap::new)
    }

    pub fn set_last_id(&mut self, id: StreamId) {
        self.s.last_id = id;
    }

    /// Sets the first ID (RDB loading of types that do not store it).
    pub fn set_first_id(&mut self, id: StreamId) {
        self.s.first_id = id;
    }

    pub fn set_entries_added(&mut self, n: u64) {
        self.s.entries_added = n;
    }

    pub fn set_max_deleted_entry_id(&mut self, id: StreamId) {
        self.s.max_deleted_entry_id = id;
    }

    /// The nodes as (master ID, listpack), in ID order (RDB).
    pub fn nodes(&self) -> impl Iterator<Item = (StreamId, &Listpack)> {
        self.s.nodes.iter().map(|(id, lp)| (*id, lp))
    }

    /// A stream from its saved parts (RDB loading): nodes keyed by master ID, the
    /// counters, and the consumer groups (None when the stream never had any).
    pub fn from_parts(
        nodes: BTreeMap<StreamId, Listpack>,
        length: u64,
        last_id: StreamId,
        first_id: StreamId,
        max_deleted_entry_id: StreamId,
        entries_added: u64,
        groups: Option<BTreeMap<Vec<u8>, ConsumerGroup>>,
    ) -> Stream {
        let nodes_at_rebuild = nodes.len();
        Stream {
            s: Box::new(Inner {
                nodes,
                length,
                last_id,
                first_id,
                max_deleted_entry_id,
                entries_added,
                groups,
                nodes_at_rebuild,
            }),
        }
    }

    /// Usable bytes of the allocations (MEMORY USAGE).
    pub fn mem_usage(&self) -> usize {
        // BTreeMap nodes hold up to 11 (key, value) pairs: about 40 bytes per pair with
        // the node overhead.
        let mut n = std::mem::size_of::<Inner>();
        for lp in self.s.nodes.values() {
            n += lp.mem_usage() + 48;
        }
        if let Some(g) = &self.s.groups {
            for (name, cg) in g {
                n += name.len() + 64 + cg.pel.len() * 80;
                for (cn, c) in &cg.consumers {
                    n += cn.len() + 64 + c.pel.len() * 24;
                }
            }
        }
        n
    }

    /// Appends an entry. `id`: None for an automatic ID at `now_ms`; Some((id,
    /// seq_given)) for an explicit one (`ms-*` when seq_given is false). `fields` holds
    /// field, value, field, value...
    #[allow(clippy::too_many_arguments)]
    pub fn append<T: AsRef<[u8]>>(
        &mut self,
        fields: &[T],
        id: Option<(StreamId, bool)>,
        now_ms: u64,
        node_max_bytes: usize,
        node_max_entries: i64,
    ) -> Result<StreamId, AppendError> {
        let s = &mut *self.s;
        let id = match id {
            Some((id, true)) => id,
            Some((id, false)) => {
                if s.last_id.ms == id.ms {
                    if s.last_id.seq == u64::MAX {
                        return Err(AppendError::IdTooSmall);
                    }
                    StreamId::new(id.ms, s.last_id.seq + 1)
                } else {
                    id
                }
            }
            None => {
                if now_ms > s.last_id.ms {
                    StreamId::new(now_ms, 0)
                } else {
                    // Wraps to 0-0 at the very end, failing the check below.
                    s.last_id.incr().unwrap_or(StreamId::MIN)
                }
            }
        };
        if id <= s.last_id {
            return Err(AppendError::IdTooSmall);
        }
        let totlen = fields
            .iter()
            .fold(0usize, |a, f| a.saturating_add(f.as_ref().len()));
        if totlen > LISTPACK_MAX_SIZE {
            return Err(AppendError::TooLarge);
        }
        let numfields = fields.len() / 2;
        let max_bytes = if node_max_bytes == 0 || node_max_bytes > LISTPACK_MAX_SIZE {
            LISTPACK_MAX_SIZE
        } else {
            node_max_bytes
        };
        // Can we append to the tail node?
        let mut tail = None;
        if let Some((&mid, lp)) = s.nodes.iter_mut().next_back() {
            let mut new_node = lp.total_bytes().saturating_add(totlen) >= max_bytes;
            if !new_node && node_max_entries != 0 {
                let p = lp.first();
                let count = p.map_or(0, |p| int_at(lp, p));
                let del = p.and_then(|p| lp.next(p)).map_or(0, |p| int_at(lp, p));
                if count.saturating_add(del) >= node_max_entries {
                    new_node = true;
                }
            }
            if new_node {
                lp.shrink_to_fit();
            } else {
                tail = Some(mid);
            }
        }
        let mut flags = 0;
        let master_id;
        let lp = match tail {
            None => {
                master_id = id;
                let mut lp = Listpack::new();
                let prealloc = if node_max_bytes > 0 && node_max_bytes < MAX_PRE_ALLOCATE {
                    node_max_bytes
                } else {
                    MAX_PRE_ALLOCATE
                };
                lp.reserve_total(prealloc);
                lp.append_int(1);
                lp.append_int(0);
                lp.append_int(numfields as i64);
                for f in fields.iter().step_by(2) {
                    lp.append(f.as_ref());
                }
                lp.append_int(0);
                flags |= FLAG_SAMEFIELDS;
                // Appending at the right end leaves B-tree nodes about half full: rebuild
                // the map (bulk building fills its nodes) whenever it grew by 1/8, which
                // costs a few moves per node added and saves ~0.35 bytes per entry.
                let n = s.nodes.len();
                if n >= 64 && n >= s.nodes_at_rebuild + s.nodes_at_rebuild / 8 {
                    s.nodes = std::mem::take(&mut s.nodes).into_iter().collect();
                    s.nodes_at_rebuild = n;
                }
                s.nodes.entry(id).or_insert(lp)
            }
            Some(mid) => {
                master_id = mid;
                let Some(lp) = s.nodes.get_mut(&mid) else {
                    return Err(AppendError::TooLarge);
                };
                if let Some(p) = lp.first() {
                    let count = int_at(lp, p);
                    lp.replace_int(p, count.saturating_add(1));
                }
                // Same fields as the master entry? (No allocation on this hot path.)
                let mut p = lp.first().and_then(|p| lp.next(p)).and_then(|p| lp.next(p));
                let nmaster = p.map_or(-1, |p| int_at(lp, p));
                let mut same = nmaster == numfields as i64;
                if same {
                    for f in fields.iter().step_by(2) {
                        p = p.and_then(|p| lp.next(p));
                        match p {
                            Some(q) if lp.get(q).eq_bytes(f.as_ref()) => {}
                            _ => {
                                same = false;
                                break;
                            }
                        }
                    }
                }
                if same {
                    flags |= FLAG_SAMEFIELDS;
                }
                lp
            }
        };
        if lp.total_bytes() > 0 {
            // Grow in steps, not per append.
            let need = lp.total_bytes() + totlen + 16 + numfields * 4;
            lp.reserve_total(need);
        }
        lp.append_int(flags);
        lp.append_int(id.ms.wrapping_sub(master_id.ms) as i64);
        lp.append_int(id.seq.wrapping_sub(master_id.seq) as i64);
        let same = flags & FLAG_SAMEFIELDS != 0;
        if !same {
            lp.append_int(numfields as i64);
        }
        for pair in fields.chunks_exact(2) {
            if !same {
                lp.append(pair[0].as_ref());
            }
            lp.append(pair[1].as_ref());
        }
        let mut lp_count = numfields as i64 + 3;
        if !same {
            lp_count += numfields as i64 + 1;
        }
        lp.append_int(lp_count);
        s.length += 1;
        s.entries_added += 1;
        s.last_id = id;
        if s.length == 1 {
            s.first_id = id;
        }
        Ok(id)
    }

    /// Calls `f` for the live entries with `start <= id <= end`, forward or reverse,
    /// until it returns false.
    pub fn range<F>(&self, start: StreamId, end: StreamId, rev: bool, mut f: F)
    where
        F: FnMut(StreamId, EntryView<'_>) -> bool,
    {
        if start > end {
            return;
        }
        let mut pairs = Vec::new();
        let nodes = &self.s.nodes;
        if !rev {
            let from = nodes
                .range(..=start)
                .next_back()
                .map(|(k, _)| *k)
                .unwrap_or(StreamId::MIN);
            for (&mid, lp) in nodes.range(from..) {
                if mid > end {
                    return;
                }
                let m = read_master(lp);
                let mut p = m.first;
                while let Some(q) = p {
                    let e = read_entry(lp, mid, &m, q);
                    p = e.next;
                    if e.flags & FLAG_DELETED != 0 || e.id < start {
                        continue;
                    }
                    if e.id > end {
                        return;
                    }
                    entry_pairs(lp, &m, &e, &mut pairs);
                    if !f(e.id, EntryView { lp, pairs: &pairs }) {
                        return;
                    }
                }
            }
        } else {
            let mut entries: Vec<EntryPos> = Vec::new();
            for (&mid, lp) in nodes.range(..=end).rev() {
                let m = read_master(lp);
                entries.clear();
                let mut p = m.first;
                while let Some(q) = p {
                    let e = read_entry(lp, mid, &m, q);
                    p = e.next;
                    entries.push(e);
                }
                for e in entries.iter().rev() {
                    if e.flags & FLAG_DELETED != 0 || e.id > end {
                        continue;
                    }
                    if e.id < start {
                        return;
                    }
                    entry_pairs(lp, &m, e, &mut pairs);
                    if !f(e.id, EntryView { lp, pairs: &pairs }) {
                        return;
                    }
                }
            }
        }
    }

    /// The first (or last) live entry ID, None when empty.
    pub fn edge_id(&self, first: bool) -> Option<StreamId> {
        let mut out = None;
        self.range(StreamId::MIN, StreamId::MAX, !first, |id, _| {
            out = Some(id);
            false
        });
        out
    }

    /// The first entry ID, tombstones included (upstream's `streamGetEdgeID` with
    /// skip_tombstones 0; what an approximate MINID trim is propagated with). None when
    /// empty.
    pub fn first_id_with_tombstones(&self) -> Option<StreamId> {
        let (&mid, lp) = self.s.nodes.iter().next()?;
        let m = read_master(lp);
        let q = m.first?;
        Some(read_entry(lp, mid, &m, q).id)
    }

    /// Whether a live entry has this ID.
    pub fn contains(&self, id: StreamId) -> bool {
        let mut found = false;
        self.range(id, id, false, |_, _| {
            found = true;
            false
        });
        found
    }

    /// Flags one entry as deleted (upstream's `streamDeleteItem`); false if absent.
    /// Does not update first_id / max_deleted_entry_id (see [`Stream::delete_ids`]).
    fn delete_one(&mut self, id: StreamId) -> bool {
        let s = &mut *self.s;
        let Some((&mid, lp)) = s.nodes.range_mut(..=id).next_back() else {
            return false;
        };
        let m = read_master(lp);
        let mut p = m.first;
        let mut target = None;
        while let Some(q) = p {
            let e = read_entry(lp, mid, &m, q);
            p = e.next;
            if e.id == id && e.flags & FLAG_DELETED == 0 {
                target = Some((e.flags_pos, e.flags));
                break;
            }
            if e.id > id {
                break;
            }
        }
        let Some((fpos, flags)) = target else {
            return false;
        };
        lp.replace_int(fpos, flags | FLAG_DELETED);
        let Some(p) = lp.first() else { return false };
        let count = int_at(lp, p);
        if count <= 1 {
            s.nodes.remove(&mid);
        } else {
            lp.replace_int(p, count - 1);
            if let Some(d) = lp.next(p) {
                let del = int_at(lp, d);
                lp.replace_int(d, del.saturating_add(1));
            }
        }
        s.length -= 1;
        true
    }

    /// XDEL: deletes the IDs, tracking the max deleted ID and the first ID. Returns how
    /// many were deleted.
    pub fn delete_ids(&mut self, ids: &[StreamId]) -> u64 {
        let mut deleted = 0;
        let mut first_entry = false;
        for &id in ids {
            if self.delete_one(id) {
                if id > self.s.max_deleted_entry_id {
                    self.s.max_deleted_entry_id = id;
                }
                if id == self.s.first_id {
                    first_entry = true;
                }
                deleted += 1;
            }
        }
        if deleted > 0 {
            if self.s.length == 0 {
                self.s.first_id = StreamId::MIN;
            } else if first_entry {
                self.s.first_id = self.edge_id(true).unwrap_or(StreamId::MAX);
            }
        }
        deleted
    }

    /// The number of nodes upstream's radix tree would have for the node keys (its
    /// `numnodes`, shown by XINFO STREAM): computed from the 16-byte big-endian keys as
    /// a compressed trie: one node per branching prefix, per maximal chain of
    /// single-child prefixes, and per key.
    #[allow(clippy::needless_range_loop)] // d indexes the byte column, not `keys`
    pub fn rax_node_count(&self) -> usize {
        let keys: Vec<[u8; 16]> = self
            .s
            .nodes
            .keys()
            .map(|id| {
                let mut k = [0u8; 16];
                k[..8].copy_from_slice(&id.ms.to_be_bytes());
                k[8..].copy_from_slice(&id.seq.to_be_bytes());
                k
            })
            .collect();
        if keys.is_empty() {
            return 1;
        }
        let mut count = keys.len();
        // Groups of keys sharing a prefix of length d, as index ranges; and whether the
        // group's parent was branching.
        let mut groups: Vec<(usize, usize, bool)> = vec![(0, keys.len(), true)];
        for d in 0..16 {
            let mut next = Vec::new();
            for &(a, b, parent_branching) in &groups {
                let mut starts = vec![a];
                for i in a + 1..b {
                    if keys[i][d] != keys[i - 1][d] {
                        starts.push(i);
                    }
                }
                let branching = starts.len() >= 2;
                if branching || parent_branching {
                    count += 1;
                }
                for (n, &st) in starts.iter().enumerate() {
                    let en = starts.get(n + 1).copied().unwrap_or(b);
                    next.push((st, en, branching));
                }
            }
            groups = next;
        }
        count
    }

    /// Whether `[start, end]` may hold a tombstone (upstream's
    /// `streamRangeHasTombstones`).
    pub fn range_has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        let m = self.s.max_deleted_entry_id;
        if self.s.length == 0 || m.is_zero() {
            return false;
        }
        start <= m && m <= end
    }

    /// The logical read counter of `id`, or -1 when it can not be known (upstream's
    /// `streamEstimateDistanceFromFirstEverEntry`).
    pub fn estimate_distance_from_first_ever_entry(&self, id: StreamId) -> i64 {
        let s = &*self.s;
        if s.entries_added == 0 {
            return 0;
        }
        if s.length == 0 && id <= s.last_id {
            return s.entries_added as i64;
        }
        if !id.is_zero() && id < s.max_deleted_entry_id {
            return -1;
        }
        if id == s.last_id {
            return s.entries_added as i64;
        } else if id > s.last_id {
            return -1;
        }
        if s.max_deleted_entry_id.is_zero() || s.max_deleted_entry_id < s.first_id {
            if id < s.first_id {
                return (s.entries_added - s.length) as i64;
            } else if id == s.first_id {
                return (s.entries_added - s.length + 1) as i64;
            }
        }
        -1
    }

    /// Trims from the head (upstream's `streamTrim`); `limit` 0 = no limit. Returns the
    /// number of entries removed.
    pub fn trim(&mut self, strategy: TrimStrategy, approx: bool, limit: i64) -> i64 {
        if strategy == TrimStrategy::None {
            return 0;
        }
        let s = &mut *self.s;
        let mut deleted: i64 = 0;
        loop {
            if let TrimStrategy::MaxLen(maxlen) = strategy {
                if s.length <= maxlen {
                    break;
                }
            }
            let Some((&mid, lp)) = s.nodes.iter_mut().next() else {
                break;
            };
            let p0 = lp.first().unwrap_or(0);
            let entries = int_at(lp, p0);
            if limit != 0 && deleted.saturating_add(entries) > limit {
                break;
            }
            let m = read_master(lp);
            let remove_node = match strategy {
                TrimStrategy::MaxLen(maxlen) => s.length.saturating_sub(entries as u64) >= maxlen,
                TrimStrategy::MinId(minid) => {
                    // The node's last entry (tombstones included).
                    let mut last = None;
                    let mut p = m.first;
                    while let Some(q) = p {
                        let e = read_entry(lp, mid, &m, q);
                        p = e.next;
                        last = Some(e.id);
                    }
                    last.unwrap_or(StreamId::MIN) < minid
                }
                TrimStrategy::None => false,
            };
            if remove_node {
                s.nodes.remove(&mid);
                s.length = s.length.saturating_sub(entries as u64);
                deleted += entries;
                continue;
            }
            if approx {
                break;
            }
            let mut from_lp = 0i64;
            let mut p = m.first;
            while let Some(q) = p {
                let e = read_entry(lp, mid, &m, q);
                let stop = match strategy {
                    TrimStrategy::MaxLen(maxlen) => s.length <= maxlen,
                    TrimStrategy::MinId(minid) => e.id >= minid,
                    TrimStrategy::None => true,
                };
                if stop {
                    break;
                }
                if e.flags & FLAG_DELETED == 0 {
                    // Same-size replacement: flags stay small ints, positions hold.
                    lp.replace_int(e.flags_pos, e.flags | FLAG_DELETED);
                    from_lp += 1;
                    s.length -= 1;
                }
                p = e.next;
            }
            deleted += from_lp;
            if let Some(p) = lp.first() {
                lp.replace_int(p, entries - from_lp);
                if let Some(d) = lp.next(p) {
                    let del = int_at(lp, d);
                    lp.replace_int(d, del.saturating_add(from_lp));
                }
            }
            break;
        }
        if s.length == 0 {
            s.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.s.first_id = self.edge_id(true).unwrap_or(StreamId::MAX);
        }
        deleted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(s: &mut Stream, ms: u64, seq: u64, f: &[&str]) -> Result<StreamId, AppendError> {
        s.append(f, Some((StreamId::new(ms, seq), true)), 0, 4096, 100)
    }

    fn ids(s: &Stream, rev: bool) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        s.range(StreamId::MIN, StreamId::MAX, rev, |id, _| {
            v.push((id.ms, id.seq));
            true
        });
        v
    }

    #[test]
    fn append_range_delete_trim() {
        let mut s = Stream::new();
        for i in 1..=250u64 {
            let f = if i % 3 == 0 { ["a", "1"] } else { ["f", "v"] };
            add(&mut s, i, i % 5, &f).unwrap();
        }
        assert_eq!(
            add(&mut s, 250, 0, &["f", "v"]),
            Err(AppendError::IdTooSmall)
        );
        assert_eq!(s.len(), 250);
        assert_eq!(s.node_count(), 3);
        let fw = ids(&s, false);
        let mut rv = ids(&s, true);
        rv.reverse();
        assert_eq!(fw, rv);
        assert_eq!(fw.len(), 250);
        let mut got = Vec::new();
        s.range(StreamId::new(3, 0), StreamId::new(3, 9), false, |id, e| {
            let (f, v) = e.pair(0);
            got.push((id, f.to_vec(), v.to_vec()));
            true
        });
        assert_eq!(
            got,
            vec![(StreamId::new(3, 3), b"a".to_vec(), b"1".to_vec())]
        );
        assert_eq!(s.delete_ids(&[StreamId::new(1, 1), StreamId::new(1, 1)]), 1);
        assert_eq!(s.first_id(), StreamId::new(2, 2));
        assert_eq!(s.trim(TrimStrategy::MaxLen(200), true, 0), 0);
        assert_eq!(s.trim(TrimStrategy::MaxLen(150), true, 0), 99);
        assert_eq!(s.len(), 150);
        assert_eq!(s.trim(TrimStrategy::MaxLen(140), false, 0), 10);
        assert_eq!(s.first_id(), StreamId::new(111, 1));
        assert_eq!(
            s.trim(TrimStrategy::MinId(StreamId::new(115, 0)), false, 0),
            4
        );
        assert_eq!(ids(&s, false).len(), 136);
    }
}
