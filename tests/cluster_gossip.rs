//! Cluster mode, the bus (issue 13, work item D of docs/cluster-plan.md): links, the
//! MEET handshake, PING/PONG gossip and epochs between valkey-rs nodes and reference
//! nodes. The harness is tests/common/cluster.rs.

mod common;

use std::time::Duration;

use common::cluster::{create_cluster, start_nodes, wait_converged, CNode, Impl, Opts};
use common::require_reference;

const LIMIT: Duration = Duration::from_secs(20);

/// The harness itself, on the reference only: three primaries reach `cluster_state:ok`
/// and see each other connected.
#[test]
fn reference_cluster_forms() {
    let Some(bin) = require_reference() else {
        return;
    };
    let r = Impl::Reference(bin);
    let mut nodes = start_nodes(&[r.clone(), r.clone(), r], &Opts::default());
    create_cluster(&mut nodes, LIMIT).unwrap();
    for n in nodes.iter_mut() {
        let lines = n.nodes();
        assert_eq!(lines.len(), 3, "{}", n.label());
        assert_eq!(lines.iter().map(|l| l.slot_count()).sum::<usize>(), 16384);
    }
}

/// Our node MEETs a running 3-node reference cluster: every reference node lists it as a
/// connected primary, it lists every reference node the way they list themselves, and its
/// nodes.conf loads again after a restart.
#[test]
fn ours_meets_reference_cluster() {
    let Some(bin) = require_reference() else {
        return;
    };
    let r = Impl::Reference(bin);
    let mut refs = start_nodes(&[r.clone(), r.clone(), r], &Opts::default());
    create_cluster(&mut refs, LIMIT).unwrap();
    let mut ours = CNode::start(&Impl::Ours, &Opts::default());
    ours.meet(&refs[0]);
    let mut all: Vec<CNode> = refs;
    all.push(ours);
    wait_converged(&mut all, LIMIT).unwrap();
    let our_id = all[3].id.clone();
    let (our_port, our_cport) = (all[3].port(), all[3].cport);
    for r in all.iter_mut().take(3) {
        let line = r.node(&our_id).unwrap();
        assert!(
            line.is_primary() && line.connected(),
            "{}: {}",
            r.label(),
            line.raw
        );
        assert_eq!((line.port, line.cport), (our_port, our_cport));
        assert_eq!(line.ip, "127.0.0.1");
    }
    // CLUSTER NODES agrees both ways: what we say about each reference node is what it
    // says about itself (address, role, epoch, slots).
    let mine = all[3].nodes();
    for r in all.iter_mut().take(3) {
        let id = r.id.clone();
        let theirs = r.node(&id).unwrap();
        let ours_view = mine.iter().find(|l| l.id == id).unwrap();
        assert_eq!(
            (ours_view.ip.as_str(), ours_view.port, ours_view.cport),
            (theirs.ip.as_str(), theirs.port, theirs.cport)
        );
        assert_eq!(ours_view.slots, theirs.slots, "{}", ours_view.raw);
        assert_eq!(ours_view.config_epoch, theirs.config_epoch);
        assert!(ours_view.is_primary() && ours_view.connected());
    }
    let me = mine.iter().find(|l| l.myself()).unwrap();
    assert_eq!(me.ip, "127.0.0.1", "{}", me.raw);
    let info = all[3].info();
    assert!(
        info["cluster_stats_messages_ping_sent"]
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert!(
        info["cluster_stats_messages_pong_received"]
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let links = all[3].text(&["INFO", "clients"]);
    assert!(links.contains("cluster_connections:6"), "{}", links);
    // The saved nodes.conf names all four nodes, and the reference parses it.
    all[3].ok(&["CLUSTER", "SAVECONFIG"]);
    let conf = common::cluster::read_conf(&all[3].conf_path());
    assert_eq!(conf.len(), 4, "{:?}", conf);
}

/// Three of ours form a cluster on their own (MEET, handshake, gossip of the third node)
/// and reach `cluster_state:ok`; the epochs set by SET-CONFIG-EPOCH travel.
#[test]
fn cluster_of_ours_forms() {
    let mut nodes = start_nodes(&[Impl::Ours, Impl::Ours, Impl::Ours], &Opts::default());
    create_cluster(&mut nodes, LIMIT).unwrap();
    for node in nodes.iter_mut() {
        let lines = node.nodes();
        assert_eq!(lines.len(), 3);
        for other in &lines {
            assert!(other.is_primary() && other.connected(), "{}", other.raw);
        }
        let total: usize = lines.iter().map(|l| l.slot_count()).sum();
        assert_eq!(total, 16384);
        let epochs: std::collections::BTreeSet<u64> =
            lines.iter().map(|l| l.config_epoch).collect();
        assert_eq!(epochs.into_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(node.info_field("cluster_current_epoch"), "3");
    }
}

/// A cluster mixing two of ours and two reference nodes reaches ok, everyone connected.
#[test]
fn mixed_cluster_forms() {
    let Some(bin) = require_reference() else {
        return;
    };
    let r = Impl::Reference(bin);
    let mut nodes = start_nodes(&[Impl::Ours, r.clone(), Impl::Ours, r], &Opts::default());
    create_cluster(&mut nodes, LIMIT).unwrap();
}
