//! Cluster bus message *processing* under hostile but well-framed input (issue 13, bus
//! hardening). tests/cluster_bus.rs and tests/cluster_bus_codec.rs cover malformed bytes and
//! the decoder; here every message decodes, but its fields lie: sender names that are the
//! receiver itself, its peers, unknown or random nodes; gossip about the receiver, the
//! sender, unknown nodes with any flags (PFAIL/FAIL/MYSELF/HANDSHAKE/NOADDR); ports 0 and
//! 65535; huge epochs and offsets; FAIL about the receiver or an unknown node; UPDATE for the
//! receiver's own name or with every slot; FAILOVER_AUTH_REQUEST/ACK and MFSTART from
//! unknown or replica senders; PUBLISH with empty or large channels; `replicaof` naming the
//! sender or the receiver; forgotten-node extensions naming the receiver.
//!
//! A cluster of ours (two primaries, a replica of the first) plus a fake node (a listener of
//! this test that answers the node's PINGs, joined with a MEET); the first primary (odd
//! seeds) or the replica (even seeds) receives the messages on new bus links, in batches. After each batch the process is alive, its log has no panic and it answers
//! PING on its client port. Seeds are fixed; `BUS_PROC_SEEDS` (number of seeds) and
//! `BUS_PROC_MSGS` (messages per seed) make longer runs (`make fuzz-bus-proc`).
//! `BUS_PROC_SEED` runs that one seed only (to replay a failure); `BUS_PROC_SHOW_LOG` prints
//! node 0's log at the end (to see which paths the messages reached).

#[allow(dead_code)]
#[path = "../src/cluster/bus.rs"]
mod bus;
mod common;

use bus::*;
use common::cluster::{create_cluster, CNode, Impl, Opts};
use common::repl::env_num;
use common::XorShift;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

fn hex_name(rng: &mut XorShift) -> Name {
    let mut n = [0u8; NAME_LEN];
    for c in n.iter_mut() {
        *c = b"0123456789abcdef"[rng.below(16)];
    }
    n
}

/// The names a message may use: the receiver, its peers, a few stable unknown nodes,
/// a fresh random one, rarely an invalid one.
struct Names {
    me: Name,
    peers: Vec<Name>,
    unknown: Vec<Name>,
}

impl Names {
    fn pick(&self, rng: &mut XorShift) -> Name {
        match rng.below(9) {
            0..=2 => self.me,
            3..=5 => self.peers[rng.below(self.peers.len())],
            // unknown[0] is the fake node that joined the cluster.
            6 | 7 => self.unknown[rng.below(self.unknown.len())],
            // An invalid name makes upstream drop a whole gossip section: rare.
            _ if !rng.chance(5) => hex_name(rng),
            _ => {
                let mut n = hex_name(rng);
                n[rng.below(NAME_LEN)] = [0u8, b'Z', b' ', 0xff][rng.below(4)];
                n
            }
        }
    }
}

fn epoch(rng: &mut XorShift) -> u64 {
    match rng.below(7) {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => u64::MAX - 1,
        4 => i64::MAX as u64,
        5 => rng.below(20) as u64,
        _ => rng.next(),
    }
}

fn port(rng: &mut XorShift) -> u16 {
    match rng.below(5) {
        0 => 0,
        1 => 65535,
        2 => 1,
        _ => rng.next() as u16,
    }
}

fn flags(rng: &mut XorShift) -> u16 {
    let all = [
        NODE_PRIMARY,
        NODE_REPLICA,
        NODE_PFAIL,
        NODE_FAIL,
        NODE_MYSELF,
        NODE_HANDSHAKE,
        NODE_NOADDR,
        NODE_MEET,
        NODE_MIGRATE_TO,
        NODE_NOFAILOVER,
        NODE_EXTENSIONS_SUPPORTED,
        NODE_MY_PRIMARY_FAIL,
    ];
    if rng.chance(8) {
        return rng.next() as u16;
    }
    let mut f = 0;
    for b in all {
        if rng.chance(3) {
            f |= b;
        }
    }
    f
}

fn slots(rng: &mut XorShift) -> SlotBits {
    let mut s = [0u8; SLOTS_BYTES];
    match rng.below(4) {
        0 => {}
        1 => s.fill(0xff),
        2 => {
            for _ in 0..rng.below(50) {
                slot_set(&mut s, rng.below(CLUSTER_SLOTS));
            }
        }
        _ => {
            let a = rng.below(CLUSTER_SLOTS);
            let b = (a + rng.below(CLUSTER_SLOTS)).min(CLUSTER_SLOTS);
            for i in a..b {
                slot_set(&mut s, i);
            }
        }
    }
    s
}

fn ip(rng: &mut XorShift) -> [u8; IP_LEN] {
    let mut ip = [0u8; IP_LEN];
    let s: &[u8] = match rng.below(5) {
        0 => b"",
        1 => b"127.0.0.1",
        2 => b"::1",
        3 => b"not an ip",
        _ => b"255.255.255.255",
    };
    ip[..s.len()].copy_from_slice(s);
    if rng.chance(10) {
        ip.fill(b'9');
    }
    ip
}

fn header(rng: &mut XorShift, names: &Names) -> Header {
    let mut h = Header::new(names.pick(rng));
    h.port = port(rng);
    h.cport = port(rng);
    h.pport = port(rng);
    h.current_epoch = epoch(rng);
    h.config_epoch = epoch(rng);
    h.offset = epoch(rng);
    h.flags = flags(rng);
    h.myslots = slots(rng);
    if rng.chance(2) {
        h.replicaof = names.pick(rng);
    }
    h.myip = ip(rng);
    h.state = rng.below(3) as u8;
    h.mflags = [rng.next() as u8 & !MFLAG0_EXT_DATA, 0, 0];
    h
}

fn gossip(rng: &mut XorShift, names: &Names, sender: &Name) -> Gossip {
    Gossip {
        nodename: if rng.chance(5) {
            *sender
        } else {
            names.pick(rng)
        },
        ping_sent: epoch(rng) as u32,
        pong_received: epoch(rng) as u32,
        ip: ip(rng),
        port: port(rng),
        cport: port(rng),
        flags: flags(rng),
        pport: port(rng),
        notused1: 0,
    }
}

fn string(rng: &mut XorShift) -> Vec<u8> {
    match rng.below(4) {
        0 => Vec::new(),
        1 => vec![b'x'; 1 + rng.below(300)],
        2 => vec![b'c'; 70_000],
        _ => (0..rng.below(20)).map(|_| rng.next() as u8).collect(),
    }
}

fn exts(rng: &mut XorShift, names: &Names) -> Vec<Ext> {
    let mut v = Vec::new();
    for _ in 0..rng.below(6) {
        v.push(match rng.below(11) {
            0 | 1 => Ext::forgotten_node(&names.pick(rng), epoch(rng)),
            2 => Ext::hostname(&string(rng)),
            3 => Ext::human_nodename(&string(rng)),
            4 => Ext::shard_id(&names.pick(rng)),
            5 => Ext::client_ipv4(&string(rng)),
            6 => Ext::client_ipv6(&string(rng)),
            7 => Ext::client_tcp_port(port(rng)),
            8 => Ext::client_tls_port(port(rng)),
            9 => Ext::availability_zone(&string(rng)),
            _ => Ext::unknown(rng.below(40) as u16, &string(rng)),
        });
    }
    v
}

fn message(rng: &mut XorShift, names: &Names) -> Message {
    let header = header(rng, names);
    let ping = |rng: &mut XorShift| Ping {
        gossip: (0..rng.below(6))
            .map(|_| gossip(rng, names, &header.sender))
            .collect(),
        exts: if rng.chance(2) {
            exts(rng, names)
        } else {
            Vec::new()
        },
    };
    let body = match rng.below(13) {
        0 | 1 => Body::Ping(ping(rng)),
        2 | 3 => Body::Pong(ping(rng)),
        4 => Body::Meet(ping(rng)),
        5 => Body::Fail(names.pick(rng)),
        6 => Body::Publish(Publish {
            channel: string(rng),
            message: string(rng),
        }),
        7 => Body::PublishShard(Publish {
            channel: string(rng),
            message: string(rng),
        }),
        8 => Body::FailoverAuthRequest,
        9 => Body::FailoverAuthAck,
        10 => Body::Update(Update {
            config_epoch: epoch(rng),
            nodename: names.pick(rng),
            slots: Box::new(slots(rng)),
        }),
        11 => Body::MfStart,
        _ => Body::Module(Module {
            module_id: *b"modid-01",
            module_type: rng.next() as u8,
            payload: string(rng),
        }),
    };
    Message { header, body }
}

/// A bus link to the node; a thread drains what the node writes back.
fn connect(cport: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", cport)).expect("connect to the bus port");
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = s.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
    });
    s
}

/// A fake node `name` behind a bus listener: it answers every PING/MEET the node sends
/// with a PONG, so after a MEET with this listener's port the node completes the handshake
/// and knows `name` as a connected primary; forged messages from it then come from a node
/// with its own outbound link.
fn fake_node(name: Name) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let cport = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                loop {
                    match split_frame(&buf) {
                        Ok(Some((frame, rest))) => {
                            if let Ok(m) = decode(frame) {
                                if matches!(m.body, Body::Ping(_) | Body::Meet(_)) {
                                    let mut h = Header::new(name);
                                    h.port = 1;
                                    h.cport = cport;
                                    h.flags = NODE_PRIMARY;
                                    let pong = Message {
                                        header: h,
                                        body: Body::Pong(Ping::default()),
                                    };
                                    if s.write_all(&encode(&pong)).is_err() {
                                        return;
                                    }
                                }
                            }
                            buf = rest.to_vec();
                            continue;
                        }
                        Ok(None) => {}
                        Err(_) => return,
                    }
                    match s.read(&mut chunk) {
                        Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
            });
        }
    });
    cport
}

fn check_alive(node: &mut CNode, what: &str) {
    let log = node.log();
    assert!(node.srv.alive(), "{what}: the node exited; log:\n{log}");
    assert!(
        !log.contains("panicked"),
        "{what}: panic in the node's log:\n{log}"
    );
    let mut c = node.srv.conn();
    assert_eq!(c.call(&["PING"]), b"+PONG\r\n".to_vec(), "{what}");
}

fn run_seed(seed: u64, msgs: usize) {
    let mut nodes: Vec<CNode> = (0..3)
        .map(|_| CNode::start(&Impl::Ours, &Opts::default()))
        .collect();
    // Two primaries and a replica of node 0. Odd seeds send to node 0 (a primary with a
    // replica), even seeds to node 2 (the replica).
    create_cluster(&mut nodes[..2], Duration::from_secs(30)).expect("cluster up");
    {
        let (first, rest) = nodes.split_first_mut().unwrap();
        rest[1].meet(first);
        let id0 = first.id.clone();
        let r = &mut rest[1];
        assert!(
            common::wait_for(Duration::from_secs(20), || r
                .node(&id0)
                .is_some_and(|n| n.connected() && !n.has("handshake"))),
            "the replica-to-be never met node 0"
        );
        r.ok(&["CLUSTER", "REPLICATE", &id0]);
    }
    let t = if seed % 2 == 1 { 0 } else { 2 };
    let id = |n: &CNode| -> Name { n.id.as_bytes().try_into().expect("40-byte id") };
    let names = Names {
        me: id(&nodes[t]),
        peers: (0..3).filter(|&i| i != t).map(|i| id(&nodes[i])).collect(),
        unknown: {
            let mut r = XorShift(seed ^ 0x5eed);
            (0..4).map(|_| hex_name(&mut r)).collect()
        },
    };
    let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let cport = nodes[t].cport;
    // The fake node joins first (MEET to its listener, the node connects and gets PONGs).
    let fake = names.unknown[0];
    let fake_cport = fake_node(fake);
    {
        let mut h = Header::new(hex_name(&mut rng));
        h.port = 1;
        h.cport = fake_cport;
        h.flags = NODE_PRIMARY;
        let meet = Message {
            header: h,
            body: Body::Meet(Ping::default()),
        };
        let mut s = connect(cport);
        s.write_all(&encode(&meet)).expect("send MEET");
        let fake_id = String::from_utf8_lossy(&fake).into_owned();
        let known = common::wait_for(Duration::from_secs(10), || {
            nodes[t]
                .node(&fake_id)
                .is_some_and(|n| n.connected() && !n.has("handshake"))
        });
        assert!(known, "seed {seed}: the fake node never joined");
    }
    let batch = 100;
    let mut link = connect(cport);
    let mut sent = 0;
    let mut reconnects = 1;
    while sent < msgs {
        for _ in 0..batch {
            let m = message(&mut rng, &names);
            // If the node closed the link, reconnect and go on.
            if link.write_all(&encode(&m)).is_err() {
                link = connect(cport);
                reconnects += 1;
            }
            sent += 1;
            // New links now and then: upstream binds an inbound link to the first known
            // sender on it and takes later messages on it as from that node.
            if rng.chance(20) {
                link = connect(cport);
                reconnects += 1;
            }
        }
        check_alive(
            &mut nodes[t],
            &format!("seed {seed}, after {sent} messages"),
        );
    }
    // Let the node read what is still in flight before the last checks.
    std::thread::sleep(Duration::from_millis(500));
    for (i, n) in nodes.iter_mut().enumerate() {
        check_alive(n, &format!("seed {seed}, end, node {i}"));
    }
    // The messages were read and processed, not dropped with the link: the node's
    // received counter (which also counts the peers' own PINGs and PONGs) covers most.
    let info = nodes[t].info();
    let received: u64 = info
        .get("cluster_stats_messages_received")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    eprintln!("seed {seed}: sent {sent}, node {t} received {received} ({reconnects} links)");
    if std::env::var_os("BUS_PROC_SHOW_LOG").is_some() {
        eprintln!("{}", nodes[t].log());
    }
    assert!(
        received >= sent as u64 / 2,
        "seed {seed}: only {received} of {sent} messages processed"
    );
}

#[test]
fn hostile_well_formed_messages_never_kill_the_node() {
    if let Ok(s) = std::env::var("BUS_PROC_SEED") {
        let seed = s.parse().expect("BUS_PROC_SEED is a number");
        run_seed(seed, env_num("BUS_PROC_MSGS", 3000) as usize);
        return;
    }
    let seeds = env_num("BUS_PROC_SEEDS", 5);
    let msgs = env_num("BUS_PROC_MSGS", 6000) as usize;
    for seed in 1..=seeds {
        run_seed(seed, msgs);
    }
}
