//! The redirection decision of cluster mode (upstream's `getNodeByQuery` and
//! `clusterRedirectClient`, docs/cluster-plan.md 5.2): from the keys of a command (or of
//! the commands queued for EXEC), the client's ASKING/READONLY flags and a view of who owns
//! which slot, decide whether this node serves the command or which error it replies.
//!
//! [`get_node_by_query`] is pure: the slot table comes through [`SlotView`] and the
//! existence of keys through a closure, so every branch is unit-tested with fake tables.
//! `process_command` (step 7) calls it through [`crate::cluster::check_redirect`].

use super::slot::key_hash_slot;
use super::NodeId;

/// What the redirection logic needs to know about the cluster.
pub trait SlotView {
    /// This node.
    fn myself(&self) -> NodeId;
    /// My primary when I am a replica.
    fn my_primary(&self) -> Option<NodeId>;
    /// The node serving `slot` (a primary), None when the slot is unassigned.
    fn owner(&self, slot: u16) -> Option<NodeId>;
    /// The node `slot` is migrating to, when this node (or its primary) migrates it.
    fn migrating_to(&self, slot: u16) -> Option<NodeId>;
    /// The node `slot` is imported from, when this node imports it.
    fn importing_from(&self, slot: u16) -> Option<NodeId>;
    /// `cluster_state:ok` (coverage, majority: computed by the owner of the view).
    fn cluster_ok(&self) -> bool;
    /// The endpoint (per `cluster-preferred-endpoint-type`) and client port of a node,
    /// as MOVED and ASK print them.
    fn endpoint(&self, node: NodeId) -> (String, u16);
}

/// The command (or transaction) being checked.
#[derive(Clone, Copy, Debug, Default)]
pub struct Query<'a> {
    /// Every key of the command, or of every command queued for EXEC, in order.
    pub keys: &'a [&'a [u8]],
    /// The command is a write, or EXEC with a queued write.
    pub is_write: bool,
    /// The command is flagged CMD_ASKING (RESTORE-ASKING).
    pub cmd_asking: bool,
    /// MIGRATE.
    pub is_migrate: bool,
    /// Sharded pubsub (SPUBLISH, SSUBSCRIBE...): channels instead of keys.
    pub is_pubsubshard: bool,
    /// The client sent ASKING before this command.
    pub asking: bool,
    /// The client sent READONLY.
    pub readonly: bool,
    /// `cluster-allow-reads-when-down`.
    pub allow_reads_when_down: bool,
    /// `cluster-allow-pubsubshard-when-down`.
    pub allow_pubsubshard_when_down: bool,
}

/// The decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// Serve the command here.
    Local,
    /// `-MOVED <slot> <endpoint>:<port>`.
    Moved(u16, NodeId),
    /// `-ASK <slot> <endpoint>:<port>`.
    Ask(u16, NodeId),
    /// `-CROSSSLOT ...`.
    CrossSlot,
    /// `-TRYAGAIN ...`: a multi-key request on a slot being migrated or imported.
    Unstable,
    /// `-CLUSTERDOWN Hash slot not served`.
    DownUnbound,
    /// `-CLUSTERDOWN The cluster is down`.
    DownState,
    /// `-CLUSTERDOWN The cluster is down and only accepts read commands`.
    DownReadOnlyState,
}

pub const ERR_CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
pub const ERR_TRYAGAIN: &str = "TRYAGAIN Multiple keys request during rehashing of slot";
pub const ERR_DOWN_UNBOUND: &str = "CLUSTERDOWN Hash slot not served";
pub const ERR_DOWN_STATE: &str = "CLUSTERDOWN The cluster is down";
pub const ERR_DOWN_RO_STATE: &str =
    "CLUSTERDOWN The cluster is down and only accepts read commands";

impl Redirect {
    /// The error reply (without the leading `-`), None for [`Redirect::Local`].
    pub fn error_text(&self, view: &dyn SlotView) -> Option<String> {
        Some(match *self {
            Redirect::Local => return None,
            Redirect::Moved(slot, n) | Redirect::Ask(slot, n) => {
                let (ep, port) = view.endpoint(n);
                let word = if matches!(self, Redirect::Ask(..)) {
                    "ASK"
                } else {
                    "MOVED"
                };
                format!("{} {} {}:{}", word, slot, ep, port)
            }
            Redirect::CrossSlot => ERR_CROSSSLOT.to_string(),
            Redirect::Unstable => ERR_TRYAGAIN.to_string(),
            Redirect::DownUnbound => ERR_DOWN_UNBOUND.to_string(),
            Redirect::DownState => ERR_DOWN_STATE.to_string(),
            Redirect::DownReadOnlyState => ERR_DOWN_RO_STATE.to_string(),
        })
    }
}

/// Where the command is served, in upstream's order of checks: the slot of every key
/// (CROSSSLOT, then unassigned slot), the keys present while the slot migrates or imports, the
/// cluster state, MIGRATE, ASK/TRYAGAIN, ASKING on an importing slot, READONLY on a
/// replica, then MOVED. `key_exists` is asked only for slots being migrated or imported.
pub fn get_node_by_query(
    view: &dyn SlotView,
    q: &Query<'_>,
    key_exists: &mut dyn FnMut(&[u8]) -> bool,
) -> Redirect {
    let me = view.myself();
    // The slot of every key first: keys of different slots are CROSSSLOT even when the
    // first slot is unassigned [ref 9.1.2: `MGET a b` with only b's slot assigned].
    let mut first: Option<(&[u8], u16)> = None;
    let mut multiple_keys = false;
    for &key in q.keys {
        let slot = key_hash_slot(key);
        match first {
            None => first = Some((key, slot)),
            Some((k0, s0)) if k0 != key => {
                if s0 != slot {
                    return Redirect::CrossSlot;
                }
                multiple_keys = true;
            }
            Some(_) => {}
        }
    }
    // No key at all: served here.
    let Some((_, slot)) = first else {
        return Redirect::Local;
    };
    let Some(owner) = view.owner(slot) else {
        return Redirect::DownUnbound;
    };
    // Migrating: the slot is ours (or our primary's, for a replica serving READONLY
    // reads) and has a target; importing: it has a source. Then count the keys present.
    let mine = owner == me || (q.readonly && view.my_primary() == Some(owner));
    let migrating = mine && view.migrating_to(slot).is_some();
    let importing = !migrating && view.importing_from(slot).is_some();
    let (mut missing, mut existing) = (0usize, 0usize);
    if (migrating || importing) && !q.is_pubsubshard {
        for &key in q.keys {
            if key_exists(key) {
                existing += 1;
            } else {
                missing += 1;
            }
        }
    }
    if !view.cluster_ok() {
        if q.is_pubsubshard {
            if !q.allow_pubsubshard_when_down {
                return Redirect::DownState;
            }
        } else if !q.allow_reads_when_down {
            return Redirect::DownState;
        } else if q.is_write {
            return Redirect::DownReadOnlyState;
        }
    }
    if (migrating || importing) && q.is_migrate {
        return Redirect::Local;
    }
    if migrating && missing > 0 {
        if existing > 0 {
            return Redirect::Unstable;
        }
        if let Some(target) = view.migrating_to(slot) {
            return Redirect::Ask(slot, target);
        }
    }
    if importing && (q.asking || q.cmd_asking) {
        if multiple_keys && missing > 0 {
            return Redirect::Unstable;
        }
        return Redirect::Local;
    }
    if (q.readonly || q.is_pubsubshard) && !q.is_write && view.my_primary() == Some(owner) {
        return Redirect::Local;
    }
    if owner == me {
        Redirect::Local
    } else {
        Redirect::Moved(slot, owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    const ME: NodeId = NodeId(0);
    const OTHER: NodeId = NodeId(1);
    const THIRD: NodeId = NodeId(2);

    #[derive(Default)]
    struct Fake {
        primary: Option<NodeId>,
        owners: HashMap<u16, NodeId>,
        migrating: HashMap<u16, NodeId>,
        importing: HashMap<u16, NodeId>,
        down: bool,
    }

    impl SlotView for Fake {
        fn myself(&self) -> NodeId {
            ME
        }
        fn my_primary(&self) -> Option<NodeId> {
            self.primary
        }
        fn owner(&self, slot: u16) -> Option<NodeId> {
            self.owners.get(&slot).copied()
        }
        fn migrating_to(&self, slot: u16) -> Option<NodeId> {
            self.migrating.get(&slot).copied()
        }
        fn importing_from(&self, slot: u16) -> Option<NodeId> {
            self.importing.get(&slot).copied()
        }
        fn cluster_ok(&self) -> bool {
            !self.down
        }
        fn endpoint(&self, node: NodeId) -> (String, u16) {
            ("127.0.0.1".into(), 7000 + node.0 as u16)
        }
    }

    fn slot(k: &str) -> u16 {
        key_hash_slot(k.as_bytes())
    }

    fn run(view: &Fake, q: Query<'_>, present: &[&str]) -> Redirect {
        let present: HashSet<&[u8]> = present.iter().map(|k| k.as_bytes()).collect();
        get_node_by_query(view, &q, &mut |k| present.contains(k))
    }

    fn all_mine() -> Fake {
        let mut f = Fake::default();
        for s in 0..16384 {
            f.owners.insert(s, ME);
        }
        f
    }

    #[test]
    fn no_keys_and_local_keys() {
        let f = all_mine();
        assert_eq!(run(&f, Query::default(), &[]), Redirect::Local);
        let keys: [&[u8]; 2] = [b"{u}a", b"{u}b"];
        let q = Query {
            keys: &keys,
            ..Default::default()
        };
        assert_eq!(run(&f, q, &[]), Redirect::Local);
        // No key even when the cluster is down.
        let mut down = Fake {
            down: true,
            ..Default::default()
        };
        assert_eq!(run(&down, Query::default(), &[]), Redirect::Local);
        down.owners.insert(slot("a"), ME);
        let keys: [&[u8]; 1] = [b"a"];
        let q = Query {
            keys: &keys,
            ..Default::default()
        };
        assert_eq!(run(&down, q, &[]), Redirect::DownState);
    }

    #[test]
    fn crossslot_and_unbound() {
        let f = all_mine();
        let keys: [&[u8]; 2] = [b"a", b"b"];
        let q = Query {
            keys: &keys,
            ..Default::default()
        };
        assert_eq!(run(&f, q, &[]), Redirect::CrossSlot);
        // The same key twice is one key.
        let keys: [&[u8]; 2] = [b"a", b"a"];
        let q = Query {
            keys: &keys,
            ..Default::default()
        };
        assert_eq!(run(&f, q, &[]), Redirect::Local);
        let mut f = Fake::default();
        f.owners.insert(slot("a"), ME);
        // Unassigned first key, the second elsewhere: cross-slot comes first.
        let keys: [&[u8]; 2] = [b"b", b"a"];
        let q = Query {
            keys: &keys,
            ..Default::default()
        };
        assert_eq!(run(&f, q, &[]), Redirect::CrossSlot);
        let keys: [&[u8]; 2] = [b"b", b"b"];
        let q = Query {
            keys: &keys,
            ..Default::default()
        };
        assert_eq!(run(&f, q, &[]), Redirect::DownUnbound);
        // Assigned first key, second key elsewhere: cross-slot.
        let keys: [&[u8]; 2] = [b"a", b"b"];
        let q = Query {
            keys: &keys,
            ..Default::default()
        };
        assert_eq!(run(&f, q, &[]), Redirect::CrossSlot);
        assert_eq!(
            Redirect::DownUnbound.error_text(&f).unwrap(),
            "CLUSTERDOWN Hash slot not served"
        );
    }

    #[test]
    fn moved_and_down_states() {
        let mut f = Fake::default();
        f.owners.insert(slot("a"), OTHER);
        let keys: [&[u8]; 1] = [b"a"];
        let mut q = Query {
            keys: &keys,
            ..Default::default()
        };
        let r = run(&f, q, &[]);
        assert_eq!(r, Redirect::Moved(slot("a"), OTHER));
        assert_eq!(
            r.error_text(&f).unwrap(),
            format!("MOVED {} 127.0.0.1:7001", slot("a"))
        );
        f.down = true;
        assert_eq!(run(&f, q, &[]), Redirect::DownState);
        q.allow_reads_when_down = true;
        // Reads pass the down state (and then follow MOVED), writes do not.
        assert_eq!(run(&f, q, &[]), Redirect::Moved(slot("a"), OTHER));
        q.is_write = true;
        assert_eq!(run(&f, q, &[]), Redirect::DownReadOnlyState);
        assert_eq!(
            Redirect::DownReadOnlyState.error_text(&f).unwrap(),
            "CLUSTERDOWN The cluster is down and only accepts read commands"
        );
        // Sharded pubsub follows its own directive.
        let q = Query {
            keys: &keys,
            is_pubsubshard: true,
            ..Default::default()
        };
        assert_eq!(run(&f, q, &[]), Redirect::DownState);
        let q = Query {
            allow_pubsubshard_when_down: true,
            ..q
        };
        assert_eq!(run(&f, q, &[]), Redirect::Moved(slot("a"), OTHER));
    }

    #[test]
    fn migrating_slot_ask_and_tryagain() {
        let mut f = all_mine();
        let s = slot("{t}a");
        f.migrating.insert(s, OTHER);
        let keys: [&[u8]; 2] = [b"{t}a", b"{t}b"];
        let q = Query {
            keys: &keys,
            ..Default::default()
        };
        // All present: served here.
        assert_eq!(run(&f, q, &["{t}a", "{t}b"]), Redirect::Local);
        // Some missing: TRYAGAIN.
        let r = run(&f, q, &["{t}a"]);
        assert_eq!(r, Redirect::Unstable);
        assert_eq!(
            r.error_text(&f).unwrap(),
            "TRYAGAIN Multiple keys request during rehashing of slot"
        );
        // All missing: ASK the target.
        let r = run(&f, q, &[]);
        assert_eq!(r, Redirect::Ask(s, OTHER));
        assert_eq!(
            r.error_text(&f).unwrap(),
            format!("ASK {} 127.0.0.1:7001", s)
        );
        // MIGRATE itself is served here.
        let mq = Query {
            is_migrate: true,
            ..q
        };
        assert_eq!(run(&f, mq, &[]), Redirect::Local);
        // Sharded pubsub does not count keys.
        let pq = Query {
            is_pubsubshard: true,
            ..q
        };
        assert_eq!(run(&f, pq, &[]), Redirect::Local);
        // The cluster state comes before ASK.
        f.down = true;
        assert_eq!(run(&f, q, &[]), Redirect::DownState);
    }

    #[test]
    fn importing_slot_and_asking() {
        let mut f = Fake::default();
        let s = slot("{t}a");
        f.owners.insert(s, OTHER);
        f.importing.insert(s, OTHER);
        let keys: [&[u8]; 1] = [b"{t}a"];
        let q = Query {
            keys: &keys,
            ..Default::default()
        };
        // Without ASKING: MOVED to the owner.
        assert_eq!(run(&f, q, &[]), Redirect::Moved(s, OTHER));
        let aq = Query { asking: true, ..q };
        assert_eq!(run(&f, aq, &[]), Redirect::Local);
        let cq = Query {
            cmd_asking: true,
            ..q
        };
        assert_eq!(run(&f, cq, &[]), Redirect::Local);
        // Several keys, some missing: TRYAGAIN even with ASKING.
        let keys2: [&[u8]; 2] = [b"{t}a", b"{t}b"];
        let aq2 = Query {
            keys: &keys2,
            asking: true,
            ..Default::default()
        };
        assert_eq!(run(&f, aq2, &["{t}a"]), Redirect::Unstable);
        assert_eq!(run(&f, aq2, &["{t}a", "{t}b"]), Redirect::Local);
        // One distinct key repeated, missing: served (not "multiple keys").
        let keys3: [&[u8]; 2] = [b"{t}a", b"{t}a"];
        let aq3 = Query {
            keys: &keys3,
            asking: true,
            ..Default::default()
        };
        assert_eq!(run(&f, aq3, &[]), Redirect::Local);
        // MIGRATE on an importing slot is served here.
        let mq = Query {
            is_migrate: true,
            ..q
        };
        assert_eq!(run(&f, mq, &[]), Redirect::Local);
    }

    #[test]
    fn readonly_replica() {
        let mut f = Fake {
            primary: Some(OTHER),
            ..Default::default()
        };
        let a = slot("a");
        f.owners.insert(a, OTHER);
        f.owners.insert(slot("b"), THIRD);
        let keys: [&[u8]; 1] = [b"a"];
        let q = Query {
            keys: &keys,
            ..Default::default()
        };
        // READWRITE (default): MOVED to the primary.
        assert_eq!(run(&f, q, &[]), Redirect::Moved(a, OTHER));
        let ro = Query {
            readonly: true,
            ..q
        };
        assert_eq!(run(&f, ro, &[]), Redirect::Local);
        // Writes still move.
        let w = Query {
            is_write: true,
            ..ro
        };
        assert_eq!(run(&f, w, &[]), Redirect::Moved(a, OTHER));
        // A slot of another shard moves.
        let keys_b: [&[u8]; 1] = [b"b"];
        let other = Query {
            keys: &keys_b,
            readonly: true,
            ..Default::default()
        };
        assert_eq!(run(&f, other, &[]), Redirect::Moved(slot("b"), THIRD));
        // Sharded pubsub reads on a replica are served without READONLY.
        let p = Query {
            is_pubsubshard: true,
            ..q
        };
        assert_eq!(run(&f, p, &[]), Redirect::Local);
        // A READONLY replica whose primary migrates the slot sends ASK for missing keys.
        f.migrating.insert(a, THIRD);
        assert_eq!(run(&f, ro, &[]), Redirect::Ask(a, THIRD));
        assert_eq!(run(&f, ro, &["a"]), Redirect::Local);
    }
}
