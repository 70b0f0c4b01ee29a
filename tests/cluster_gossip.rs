//! Cluster mode, the bus (issue 13, work item D of docs/cluster-plan.md): links, the
//! MEET handshake, PING/PONG gossip and epochs between valkey-rs nodes and reference
//! nodes. The harness is tests/common/cluster.rs.

mod common;

use std::time::Duration;

use common::cluster::{create_cluster, start_nodes, Impl, Opts};
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
