//! Cluster mode, the bus (issue 13, work item D of docs/cluster-plan.md): links, the
//! MEET handshake, PING/PONG gossip and epochs between valkey-rs nodes and reference
//! nodes. The harness is tests/common/cluster.rs.

mod common;

use std::time::Duration;

use common::cluster::{
    create_cluster, meet_all, slot_range, start_nodes, wait_converged, wait_ok, CNode, Impl, Opts,
};
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
    let mem = all[3].text(&["INFO", "memory"]);
    assert!(
        !mem.contains("mem_cluster_links:0\r\n") && mem.contains("mem_cluster_links:"),
        "{}",
        mem
    );
    let links = all[3].call(&["CLUSTER", "LINKS"]);
    assert!(
        links.starts_with(b"*6\r\n"),
        "{}",
        String::from_utf8_lossy(&links)
    );
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

/// Primaries that all start at configEpoch 0 end with distinct epochs (upstream's
/// collision rule: the smaller name takes currentEpoch + 1), seen the same by everyone.
#[test]
fn epoch_collision_gives_distinct_epochs() {
    let Some(bin) = require_reference() else {
        return;
    };
    let r = Impl::Reference(bin);
    let mut nodes = start_nodes(&[Impl::Ours, r, Impl::Ours], &Opts::default());
    let n = nodes.len();
    for (i, node) in nodes.iter_mut().enumerate() {
        let (a, b) = slot_range(i, n);
        node.add_slots(a, b);
    }
    meet_all(&mut nodes);
    wait_converged(&mut nodes, LIMIT).unwrap();
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let res = wait_ok(LIMIT, || {
        let mut views = Vec::new();
        for node in nodes.iter_mut() {
            let lines = node.nodes();
            let mut v: Vec<(String, u64)> = ids
                .iter()
                .map(|id| {
                    let e = lines
                        .iter()
                        .find(|l| &l.id == id)
                        .map_or(0, |l| l.config_epoch);
                    (id.clone(), e)
                })
                .collect();
            v.sort();
            views.push(v);
        }
        let epochs: std::collections::BTreeSet<u64> = views[0].iter().map(|x| x.1).collect();
        if epochs.len() != ids.len() {
            return Err(format!("epochs not distinct: {:?}", views[0]));
        }
        if views.iter().any(|v| v != &views[0]) {
            return Err(format!("views differ: {:?}", views));
        }
        Ok(())
    });
    res.unwrap();
    assert!(
        nodes[0].log().contains("configEpoch collision")
            || nodes[2].log().contains("configEpoch collision")
            || nodes[1].log().contains("configEpoch collision")
    );
}

/// A slot taken over with SETSLOT NODE + BUMPEPOCH reaches every node, both ways between
/// ours and the reference (clusterUpdateSlotsConfigWith on the PINGs, UPDATE to stale
/// claimers).
#[test]
fn slot_moves_propagate() {
    let Some(bin) = require_reference() else {
        return;
    };
    let r = Impl::Reference(bin);
    let mut nodes = start_nodes(&[Impl::Ours, r, Impl::Ours], &Opts::default());
    create_cluster(&mut nodes, LIMIT).unwrap();
    // Ours (node 0) takes slot 6000 from the reference (node 1), then the reference takes
    // slot 100 from ours.
    for (taker, slot) in [(0usize, 6000u16), (1, 100)] {
        let id = nodes[taker].id.clone();
        let s = slot.to_string();
        nodes[taker].ok(&["CLUSTER", "SETSLOT", &s, "NODE", &id]);
        let r = nodes[taker].text(&["CLUSTER", "BUMPEPOCH"]);
        assert!(r.starts_with("BUMPED"), "{}", r);
        let res = wait_ok(LIMIT, || {
            for node in nodes.iter_mut() {
                let owner = node
                    .nodes()
                    .into_iter()
                    .find(|l| l.slots.iter().any(|(a, b)| *a <= slot && slot <= *b));
                match owner {
                    Some(l) if l.id == id => {}
                    o => return Err(format!("{}: slot {} owned by {:?}", node.label(), slot, o)),
                }
            }
            Ok(())
        });
        res.unwrap();
    }
    wait_converged(&mut nodes, LIMIT).unwrap();
}

/// PUBLISH on one node reaches subscribers on the others (bus PUBLISH), both ways.
#[test]
fn publish_crosses_the_bus() {
    let Some(bin) = require_reference() else {
        return;
    };
    let r = Impl::Reference(bin);
    let mut nodes = start_nodes(&[Impl::Ours, r], &Opts::default());
    create_cluster(&mut nodes, LIMIT).unwrap();
    for (from, to) in [(0usize, 1usize), (1, 0)] {
        let mut sub = nodes[to].srv.conn();
        sub.call(&["SUBSCRIBE", "news"]);
        let msg = format!("hello from {}", nodes[from].label());
        nodes[from].call(&["PUBLISH", "news", &msg]);
        let got = sub.read_reply().expect("message");
        let want = format!(
            "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n${}\r\n{}\r\n",
            msg.len(),
            msg
        );
        assert_eq!(String::from_utf8_lossy(&got), want);
    }
}

/// CLUSTER FORGET: the forgotten node leaves the table, and the forgotten-node extension
/// makes the other nodes forget it too, both ways.
#[test]
fn forget_spreads() {
    let Some(bin) = require_reference() else {
        return;
    };
    let r = Impl::Reference(bin);
    let mut nodes = start_nodes(&[Impl::Ours, r.clone(), Impl::Ours, r], &Opts::default());
    create_cluster(&mut nodes, LIMIT).unwrap();
    // Ours forgets a reference node; then the reference forgets one of ours.
    for (victim, forgetter) in [(3usize, 0usize), (2, 1)] {
        let gone = nodes.remove(victim);
        let id = gone.id.clone();
        drop(gone);
        let forgetter = if forgetter > victim {
            forgetter - 1
        } else {
            forgetter
        };
        nodes[forgetter].ok(&["CLUSTER", "FORGET", &id]);
        let res = wait_ok(LIMIT, || {
            for node in nodes.iter_mut() {
                if node.node(&id).is_some() {
                    return Err(format!("{} still lists {}", node.label(), id));
                }
            }
            Ok(())
        });
        res.unwrap();
        // FORGET of a blacklisted id replies OK.
        nodes[forgetter].ok(&["CLUSTER", "FORGET", &id]);
    }
}

/// Our node's nodes.conf, written while it was part of a reference cluster, loads after a
/// restart on another port: the node comes back with its id, reconnects on its own (no
/// MEET), and the reference nodes take its new address.
#[test]
fn ours_restarts_from_nodes_conf() {
    let Some(bin) = require_reference() else {
        return;
    };
    let r = Impl::Reference(bin);
    let mut nodes = start_nodes(&[r.clone(), r, Impl::Ours], &Opts::default());
    create_cluster(&mut nodes, LIMIT).unwrap();
    nodes[2].ok(&["CLUSTER", "SAVECONFIG"]);
    let copy = std::env::temp_dir().join(format!(
        "valkey-rs-cluster-gossip-{}-nodes.conf",
        std::process::id()
    ));
    std::fs::copy(nodes[2].conf_path(), &copy).unwrap();
    let old_id = nodes[2].id.clone();
    drop(nodes.pop());
    let o = Opts {
        extra: vec![
            "--cluster-config-file".into(),
            copy.to_string_lossy().into_owned(),
        ],
        ..Opts::default()
    };
    nodes.push(CNode::start(&Impl::Ours, &o));
    assert_eq!(nodes[2].id, old_id);
    let res = wait_converged(&mut nodes, LIMIT);
    let _ = std::fs::remove_file(&copy);
    res.unwrap();
    let port = nodes[2].port();
    for n in nodes.iter_mut().take(2) {
        let l = n.node(&old_id).unwrap();
        assert_eq!(l.port, port, "{}: {}", n.label(), l.raw);
    }
}

/// A killed node is seen `fail?` then `fail` by ours and by the reference nodes, through
/// our pings (ping_sent) and the failure reports gossiped both ways; the survivors keep
/// seeing each other connected.
#[test]
fn killed_node_is_marked_failing() {
    let Some(bin) = require_reference() else {
        return;
    };
    let r = Impl::Reference(bin);
    let mut nodes = start_nodes(&[Impl::Ours, r.clone(), r, Impl::Ours], &Opts::default());
    create_cluster(&mut nodes, LIMIT).unwrap();
    let dead = nodes.remove(2);
    let dead_id = dead.id.clone();
    drop(dead);
    let res = wait_ok(LIMIT, || {
        for node in nodes.iter_mut() {
            match node.node(&dead_id) {
                Some(l) if l.has("fail") => {}
                o => return Err(format!("{}: {:?}", node.label(), o.map(|l| l.raw))),
            }
        }
        Ok(())
    });
    res.unwrap();
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    for node in nodes.iter_mut() {
        for id in &ids {
            let l = node.node(id).unwrap();
            assert!(
                l.connected() && !l.has("fail"),
                "{}: {}",
                node.label(),
                l.raw
            );
        }
        assert_eq!(node.info_field("cluster_state"), "fail", "{}", node.label());
    }
}

/// CLUSTER MEET's argument errors are the reference's.
#[test]
fn meet_errors_match_reference() {
    let Some(bin) = require_reference() else {
        return;
    };
    let mut r = CNode::start(&Impl::Reference(bin), &Opts::default());
    let mut o = CNode::start(&Impl::Ours, &Opts::default());
    for args in [
        "1.2.3 7000",
        "127.0.0.1 abc",
        "127.0.0.1 70000",
        "127.0.0.1 0",
        "127.0.0.1 -1",
        "127.0.0.1 65535",
        "127.0.0.1 7000 abc",
        "127.0.0.1 7000 70000",
        "127.0.0.1 7000 0",
        "127.0.0.1 7000 1 2",
        "127.0.0.1",
        "localhost 7000",
        "::1 7000",
        "127.0.0.1 7000 17000",
    ] {
        let mut argv = vec!["CLUSTER", "MEET"];
        argv.extend(args.split(' '));
        assert_eq!(
            String::from_utf8_lossy(&o.call(&argv)),
            String::from_utf8_lossy(&r.call(&argv)),
            "CLUSTER MEET {}",
            args
        );
    }
}

/// `cluster-announce-client-ipv4` and `cluster-announce-client-port` on a reference node
/// and on ours: each sends them in ping extensions 4 and 6 and the other shows them, for
/// clients connected over IPv4, in CLUSTER NODES, SLOTS and SHARDS instead of the bus
/// address and port (each node also shows its own); both nodes.conf files carry
/// `client-ipv4=` and `client-tcp-port=`, and ours reads them back after a restart.
#[test]
fn announced_client_ipv4_crosses_the_bus() {
    let Some(bin) = require_reference() else {
        return;
    };
    let announced = ["10.11.12.13", "10.21.22.23"];
    let ports = [7101u16, 7202];
    let imps = [Impl::Reference(bin), Impl::Ours];
    let mut nodes: Vec<CNode> = imps
        .iter()
        .zip(announced.iter().zip(ports))
        .map(|(imp, (a, p))| {
            let o = Opts {
                extra: vec![
                    "--cluster-announce-client-ipv4".into(),
                    a.to_string(),
                    "--cluster-announce-client-port".into(),
                    p.to_string(),
                ],
                ..Opts::default()
            };
            CNode::start(imp, &o)
        })
        .collect();
    create_cluster(&mut nodes, LIMIT).unwrap();
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    wait_ok(LIMIT, || {
        for v in nodes.iter_mut() {
            for ((id, a), p) in ids.iter().zip(announced).zip(ports) {
                match v.node(id) {
                    Some(l) if l.ip == a && l.port == p => {}
                    other => return Err(format!("{} sees {:?}", v.label(), other)),
                }
            }
        }
        Ok(())
    })
    .unwrap();
    for v in nodes.iter_mut() {
        for cmd in ["SLOTS", "SHARDS"] {
            let r = String::from_utf8_lossy(&v.call(&["CLUSTER", cmd])).into_owned();
            for (a, p) in announced.iter().zip(ports) {
                let what = format!("{} {}: {}", v.label(), cmd, r);
                assert!(r.contains(&format!("\r\n{}\r\n", a)), "{}", what);
                assert!(r.contains(&format!(":{}\r\n", p)), "{}", what);
            }
            assert!(!r.contains("127.0.0.1"), "{} {}: {}", v.label(), cmd, r);
        }
    }
    // nodes.conf: the bus address and port, the announced IP and port as aux fields.
    for (i, v) in nodes.iter_mut().enumerate() {
        v.ok(&["CLUSTER", "SAVECONFIG"]);
        let conf = std::fs::read_to_string(v.conf_path()).unwrap();
        for ((id, a), p) in ids.iter().zip(announced).zip(ports) {
            let line = conf.lines().find(|l| l.starts_with(id.as_str())).unwrap();
            let what = format!("{}: {}", i, line);
            assert!(line.contains(" 127.0.0.1:"), "{}", what);
            assert!(line.contains(&format!(",client-ipv4={}", a)), "{}", what);
            assert!(
                line.contains(&format!(",client-tcp-port={}", p)),
                "{}",
                what
            );
            assert!(!line.contains(&format!(":{}@", p)), "{}", what);
        }
    }
    let copy = std::env::temp_dir().join(format!(
        "valkey-rs-cluster-gossip-ipv4-{}-nodes.conf",
        std::process::id()
    ));
    std::fs::copy(nodes[1].conf_path(), &copy).unwrap();
    nodes.clear();
    let o = Opts {
        extra: vec![
            "--cluster-config-file".into(),
            copy.to_string_lossy().into_owned(),
        ],
        ..Opts::default()
    };
    let mut ours = CNode::start(&Impl::Ours, &o);
    let _ = std::fs::remove_file(&copy);
    let l = ours.node(&ids[0]).unwrap();
    assert_eq!(
        (l.ip.as_str(), l.port),
        (announced[0], ports[0]),
        "{}",
        l.raw
    );
    // Not announced any more: ours shows its bus address.
    let me = ours.node(&ids[1]).unwrap();
    assert_ne!(me.ip, announced[1], "{}", me.raw);
    assert_eq!(me.port, ours.port(), "{}", me.raw);
}
