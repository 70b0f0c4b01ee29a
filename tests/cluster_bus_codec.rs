//! The cluster bus codec (src/cluster/bus.rs, issue 13) against messages captured from a
//! Valkey 9.1.2 node (tests/data/cluster/*.bin, made by utils/cluster-probe/capture_fixtures.py;
//! facts.txt holds what that node reported: its CLUSTER MYID, ports, epochs, shard id), the
//! malformed inputs of docs/cluster-plan.md section 8, a seeded mutation fuzz loop
//! (`BUS_FUZZ_ITERS`, longer runs with `make fuzz-bus`), and a live exchange with a reference
//! node: our encoded MEET/PING/PONG are accepted and its PONGs decode.
//!
//! The codec is std only, so it is compiled straight into this test (no server build in test
//! mode needed).

#[allow(dead_code)]
#[path = "../src/cluster/bus.rs"]
mod bus;
mod common;

use bus::*;
use common::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const FIXTURES: [&str; 10] = [
    "meet",
    "ping",
    "pong",
    "ping_ext",
    "ping_paused",
    "publish",
    "publishshard",
    "update",
    "failover_auth_ack",
    "fail",
];

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/cluster")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(format!("{name}.bin"))).expect("fixture")
}

fn facts() -> HashMap<String, String> {
    std::fs::read_to_string(data_dir().join("facts.txt"))
        .expect("facts.txt")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn name(s: &str) -> Name {
    s.as_bytes().try_into().expect("40-byte name")
}

fn all_slots(bits: &SlotBits) -> bool {
    (0..CLUSTER_SLOTS).all(|s| slot_is_set(bits, s))
}

/// The header fields every message from reference node A carries.
fn check_from_a(m: &Message, f: &HashMap<String, String>) {
    let h = &m.header;
    assert_eq!(h.ver, 1);
    assert_eq!(h.sender, name(&f["a_id"]));
    assert_eq!(h.cport.to_string(), f["a_cport"]);
    // A announces client port 6390 (cluster-announce-client-port) but the header port is
    // the real one.
    assert_eq!(h.port.to_string(), f["a_port"]);
    assert_eq!(h.pport, 0);
    assert!(h.claims_primary());
    assert_eq!(
        h.flags & (NODE_PRIMARY | NODE_MYSELF),
        NODE_PRIMARY | NODE_MYSELF
    );
    assert_eq!(
        h.flags & NODE_EXTENSIONS_SUPPORTED,
        NODE_EXTENSIONS_SUPPORTED
    );
    assert_eq!(h.config_epoch.to_string(), f["a_my_epoch"]);
    assert!(all_slots(&h.myslots), "A serves every slot");
    assert_eq!(h.myip(), b"", "no cluster-announce-ip");
    assert_eq!(h.notused1, [0; 30]);
}

#[test]
fn fixtures_decode_with_the_reference_facts() {
    let f = facts();
    let a_id = name(&f["a_id"]);
    let c_id = name(&f["c_id"]);
    let fake = name(&f["fake_id"]);

    let meet = decode(&fixture("meet")).expect("meet");
    check_from_a(&meet, &f);
    let Body::Meet(p) = &meet.body else {
        panic!("not a MEET: {:?}", meet.body)
    };
    // No extensions in a MEET, but EXT_DATA set (docs/cluster-plan.md section 0, item 10).
    assert!(meet.header.has_ext_data());
    assert_eq!((meet.header.extensions, p.exts.len()), (0, 0));
    // The one gossip entry is C, the other node A knew then.
    assert_eq!(p.gossip.len(), 1);
    assert_eq!(p.gossip[0].nodename, c_id);
    assert_eq!(p.gossip[0].ip(), b"127.0.0.1");
    assert_eq!(p.gossip[0].flags & NODE_PRIMARY, NODE_PRIMARY);
    assert!(p.gossip_names_valid());

    for which in ["ping", "pong"] {
        let m = decode(&fixture(which)).expect(which);
        check_from_a(&m, &f);
        assert_eq!(
            m.msg_type(),
            if which == "ping" {
                TYPE_PING
            } else {
                TYPE_PONG
            }
        );
        let p = m.body.ping().expect("ping body");
        let types: Vec<u16> = p.exts.iter().map(Ext::ext_type).collect();
        // Upstream's order: hostname, human nodename, client ipv4, client ipv6, client tcp
        // port, client tls port, availability zone, (forgotten nodes), shard id last.
        assert_eq!(types, [0, 1, 4, 5, 6, 7, 8, 3], "{which}");
        let data: Vec<ExtData> = p.exts.iter().map(Ext::data).collect();
        assert_eq!(data[0], ExtData::Hostname(b"host-a.example"));
        assert_eq!(data[1], ExtData::HumanNodename(b"node-a"));
        assert_eq!(data[2], ExtData::ClientIpv4(b"10.0.0.1"));
        assert_eq!(data[3], ExtData::ClientIpv6(b"fd00::1"));
        assert_eq!(data[4], ExtData::ClientTcpPort(6390));
        assert_eq!(data[5], ExtData::ClientTlsPort(6391));
        assert_eq!(data[6], ExtData::AvailabilityZone(b"az-1"));
        assert_eq!(data[7], ExtData::ShardId(&name(&f["a_shard_id"])));
        // Lengths as upstream pads them: 8 + align8(strlen + 1).
        let lens: Vec<usize> = p.exts.iter().map(Ext::wire_len).collect();
        assert_eq!(lens, [24, 16, 24, 16, 16, 16, 16, 48]);
        assert_eq!(m.header.extensions, 8);
    }

    let pe = decode(&fixture("ping_ext")).expect("ping_ext");
    check_from_a(&pe, &f);
    assert_eq!(pe.header.current_epoch.to_string(), f["a_current_epoch"]);
    let p = pe.body.ping().expect("ping");
    let forgotten: Vec<_> = p
        .exts
        .iter()
        .filter_map(|e| match e.data() {
            ExtData::ForgottenNode { name, ttl } => Some((*name, ttl)),
            _ => None,
        })
        .collect();
    assert_eq!(forgotten.len(), 1);
    assert_eq!(forgotten[0].0, c_id, "C was forgotten");
    assert!(forgotten[0].1 <= 60, "ttl within cluster-blacklist-ttl");
    assert_eq!(p.exts[7].ext_type(), EXT_FORGOTTEN_NODE);
    assert_eq!(p.exts[8].ext_type(), EXT_SHARDID);

    // After our MFSTART (as A's replica), A PINGs us at once with PAUSED, and only then.
    let paused = decode(&fixture("ping_paused")).expect("ping_paused");
    check_from_a(&paused, &f);
    assert_eq!(
        paused.header.mflags,
        [MFLAG0_EXT_DATA | MFLAG0_PAUSED, 0, 0]
    );
    assert_eq!(paused.header.offset, 0, "no writes on A: offset 0");
    for other in ["meet", "ping", "pong", "ping_ext"] {
        let m = decode(&fixture(other)).unwrap();
        assert_eq!(m.header.mflags, [MFLAG0_EXT_DATA, 0, 0], "{other}");
    }

    let publish = decode(&fixture("publish")).expect("publish");
    check_from_a(&publish, &f);
    assert_eq!(
        publish.body,
        Body::Publish(Publish {
            channel: b"news".to_vec(),
            message: b"hello world".to_vec()
        })
    );
    let ps = decode(&fixture("publishshard")).expect("publishshard");
    assert_eq!(
        ps.body,
        Body::PublishShard(Publish {
            channel: b"shardchan".to_vec(),
            message: b"shard message".to_vec()
        })
    );

    let update = decode(&fixture("update")).expect("update");
    check_from_a(&update, &f);
    let Body::Update(u) = &update.body else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.nodename, a_id);
    assert_eq!(u.config_epoch.to_string(), f["a_my_epoch"]);
    assert!(all_slots(&u.slots));

    let ack = decode(&fixture("failover_auth_ack")).expect("ack");
    check_from_a(&ack, &f);
    assert_eq!(ack.body, Body::FailoverAuthAck);
    // The vote was for our request with currentEpoch 10: A took it over.
    assert_eq!(ack.header.current_epoch, 10);

    let fail = decode(&fixture("fail")).expect("fail");
    check_from_a(&fail, &f);
    assert_eq!(fail.body, Body::Fail(c_id));
    assert_ne!(fail.header.sender, fake);
}

#[test]
fn fixtures_reencode_byte_for_byte() {
    for f in FIXTURES {
        let raw = fixture(f);
        let m = decode(&raw).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(encode(&m), raw, "{f}");
        assert_eq!(encoded_len(&m), raw.len());
    }
}

fn sample_header(seed: u8) -> Header {
    let mut h = Header::new(*b"0123456789abcdef0123456789abcdef01234567");
    h.port = 7000 + seed as u16;
    h.cport = 17000 + seed as u16;
    h.pport = 7100;
    h.current_epoch = 42;
    h.config_epoch = 7;
    h.offset = 123_456_789_012;
    h.flags = NODE_PRIMARY | NODE_MYSELF | NODE_EXTENSIONS_SUPPORTED;
    h.state = 1;
    h.mflags = [MFLAG0_PAUSED, 0, 0];
    h.myip[..9].copy_from_slice(b"127.0.0.1");
    for s in (0..CLUSTER_SLOTS).step_by(3) {
        slot_set(&mut h.myslots, s);
    }
    h
}

fn sample_gossip(i: u8) -> Gossip {
    let mut ip = [0u8; IP_LEN];
    ip[..8].copy_from_slice(b"10.0.0.1");
    Gossip {
        nodename: [b'a' + (i % 6); NAME_LEN],
        ping_sent: 1_700_000_000 + i as u32,
        pong_received: 1_700_000_100,
        ip,
        port: 6379,
        cport: 16379,
        flags: NODE_REPLICA | NODE_PFAIL,
        pport: 0,
        notused1: 0,
    }
}

fn every_type() -> Vec<Message> {
    let ping = Ping {
        gossip: (0..3).map(sample_gossip).collect(),
        exts: vec![
            Ext::hostname(b"host.example"),
            Ext::human_nodename(b"node-1"),
            Ext::client_ipv4(b"10.1.2.3"),
            Ext::client_ipv6(b"fd00::7"),
            Ext::client_tcp_port(6390),
            Ext::client_tls_port(6391),
            Ext::availability_zone(b"az-2"),
            Ext::forgotten_node(&[b'f'; NAME_LEN], 27),
            Ext::unknown(77, b"xyz"),
            Ext::shard_id(&[b'5'; NAME_LEN]),
        ],
    };
    let mut slots = Box::new([0u8; SLOTS_BYTES]);
    slot_set(&mut slots, 16383);
    slot_set(&mut slots, 0);
    let bodies = vec![
        Body::Ping(ping.clone()),
        Body::Pong(ping.clone()),
        Body::Meet(Ping {
            gossip: vec![sample_gossip(1)],
            exts: vec![],
        }),
        Body::Fail([b'c'; NAME_LEN]),
        Body::Publish(Publish {
            channel: b"ch".to_vec(),
            message: b"a message".to_vec(),
        }),
        Body::PublishShard(Publish {
            channel: vec![],
            message: vec![0; 1000],
        }),
        Body::FailoverAuthRequest,
        Body::FailoverAuthAck,
        Body::Update(Update {
            config_epoch: 9,
            nodename: [b'd'; NAME_LEN],
            slots,
        }),
        Body::MfStart,
        Body::Module(Module {
            module_id: *b"modid-01",
            module_type: 3,
            payload: b"payload".to_vec(),
        }),
        Body::Unknown {
            msg_type: 99,
            data: b"whatever".to_vec(),
        },
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Message {
            header: sample_header(i as u8),
            body,
        })
        .collect()
}

#[test]
fn every_type_round_trips() {
    for m in every_type() {
        let bytes = encode(&m);
        assert_eq!(bytes.len(), encoded_len(&m));
        assert_eq!(&bytes[..4], b"RCmb");
        assert_eq!(
            u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize,
            bytes.len()
        );
        assert_eq!(u16::from_be_bytes([bytes[12], bytes[13]]), m.msg_type());
        let mut back = decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", m.msg_type()));
        // encode fills count/extensions/EXT_DATA from a ping body.
        if let Some(p) = m.body.ping() {
            assert_eq!(back.header.count as usize, p.gossip.len());
            assert_eq!(back.header.extensions as usize, p.exts.len());
            back.header.count = m.header.count;
            back.header.extensions = m.header.extensions;
            if p.exts.is_empty() {
                assert_eq!(back.header.mflags, m.header.mflags);
            } else {
                assert_ne!(back.header.mflags[0] & MFLAG0_EXT_DATA, 0);
                back.header.mflags = m.header.mflags;
            }
        }
        assert_eq!(back, m);
        assert_eq!(encode(&back), encode(&m));
    }
    // Exact sizes of the fixed-length types.
    let sizes: Vec<(u16, usize)> = every_type()
        .iter()
        .map(|m| (m.msg_type(), encoded_len(m)))
        .collect();
    for (t, want) in [(3, 2296), (5, 2256), (6, 2256), (7, 4352), (8, 2256)] {
        assert!(sizes.contains(&(t, want)), "type {t}: {sizes:?}");
    }
}

// ---- malformed input: docs/cluster-plan.md section 8 ----

fn set16(m: &mut [u8], at: usize, v: u16) {
    m[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn set32(m: &mut [u8], at: usize, v: u32) {
    m[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// A valid PING from an unknown node with no gossip and no extensions.
fn bare_ping() -> Vec<u8> {
    encode(&Message {
        header: Header::new([b'e'; NAME_LEN]),
        body: Body::Ping(Ping::default()),
    })
}

fn fix_totlen(m: &mut [u8]) {
    let n = m.len() as u32;
    set32(m, off::TOTLEN, n);
}

/// (what, bytes, expected error, closes the link)
fn malformed_cases() -> Vec<(&'static str, Vec<u8>, BusError, bool)> {
    let mut v = Vec::new();
    let mut m = bare_ping();
    m[0] = b'X';
    v.push(("signature not RCmb", m, BusError::BadSignature, true));
    let mut m = bare_ping();
    m.truncate(100);
    set32(&mut m, off::TOTLEN, 100);
    v.push(("totlen 100", m, BusError::BadLength { totlen: 100 }, true));
    let mut m = bare_ping();
    set16(&mut m, off::VER, 2);
    v.push(("ver = 2", m, BusError::BadVersion { ver: 2 }, false));
    let mut m = bare_ping();
    set16(&mut m, off::COUNT, 1000);
    v.push((
        "count 1000, totlen 2256",
        m,
        BusError::GossipCountExceeds {
            msg_type: 0,
            count: 1000,
            totlen: 2256,
        },
        false,
    ));
    let mut m = bare_ping();
    m[off::MFLAGS] |= MFLAG0_EXT_DATA;
    set16(&mut m, off::EXTENSIONS, 1);
    v.push((
        "EXT flag, extensions=1, no bytes",
        m,
        BusError::ExtExceeds {
            msg_type: 0,
            totlen: 2256,
        },
        false,
    ));
    // One 16-byte extension whose length field is then broken.
    let with_ext = |len: u32| {
        let mut m = bare_ping();
        m[off::MFLAGS] |= MFLAG0_EXT_DATA;
        set16(&mut m, off::EXTENSIONS, 1);
        let mut ext = vec![0u8; 16];
        set32(&mut ext, 0, len);
        set16(&mut ext, 4, 77);
        m.extend_from_slice(&ext);
        fix_totlen(&mut m);
        m
    };
    v.push((
        "ext length 7",
        with_ext(7),
        BusError::ExtPadding {
            msg_type: 0,
            len: 7,
        },
        false,
    ));
    for len in [4096, 65552, 0xFFFF_FFF8] {
        v.push((
            "ext length past totlen",
            with_ext(len),
            BusError::ExtExceeds {
                msg_type: 0,
                totlen: 2272,
            },
            false,
        ));
    }
    v.push((
        "ext length 0",
        with_ext(0),
        BusError::LengthMismatch {
            msg_type: 0,
            totlen: 2272,
            explen: 2256,
        },
        false,
    ));
    // Extensions whose lengths would wrap a u32 sum: the second one is past totlen.
    let mut m = with_ext(16);
    set16(&mut m, off::EXTENSIONS, 2);
    let mut ext = vec![0u8; 8];
    set32(&mut ext, 0, 0xFFFF_FFF0);
    m.extend_from_slice(&ext);
    fix_totlen(&mut m);
    v.push((
        "second ext wraps",
        m,
        BusError::ExtExceeds {
            msg_type: 0,
            totlen: 2280,
        },
        false,
    ));
    // A hostname with no NUL: upstream would read past it; we refuse.
    let mut m = with_ext(16);
    set16(&mut m, HEADER_LEN + 4, EXT_HOSTNAME);
    m[HEADER_LEN + 8..].fill(b'h');
    v.push((
        "hostname without NUL",
        m,
        BusError::ExtBadPayload {
            ext_type: 0,
            len: 16,
        },
        false,
    ));
    let mut m = with_ext(16);
    set16(&mut m, HEADER_LEN + 4, EXT_SHARDID);
    v.push((
        "short shard id",
        m,
        BusError::ExtBadPayload {
            ext_type: 3,
            len: 16,
        },
        false,
    ));
    let mut m = with_ext(16);
    set16(&mut m, HEADER_LEN + 4, EXT_FORGOTTEN_NODE);
    v.push((
        "short forgotten node",
        m,
        BusError::ExtBadPayload {
            ext_type: 2,
            len: 16,
        },
        false,
    ));
    // [ref] 9.1.2 reads no extension without EXT_DATA: 48 extension bytes are then a length
    // mismatch ("Received invalid ping packet of length 2304 but expected length 2256").
    let mut m = encode(&Message {
        header: Header::new([b'e'; NAME_LEN]),
        body: Body::Ping(Ping {
            gossip: vec![],
            exts: vec![Ext::shard_id(&[b'5'; NAME_LEN])],
        }),
    });
    m[off::MFLAGS] &= !MFLAG0_EXT_DATA;
    v.push((
        "extension bytes without EXT_DATA",
        m,
        BusError::LengthMismatch {
            msg_type: 0,
            totlen: 2304,
            explen: 2256,
        },
        false,
    ));
    let mut m = bare_ping();
    set16(&mut m, off::TYPE, TYPE_FAIL);
    v.push((
        "FAIL with no body",
        m,
        BusError::LengthMismatch {
            msg_type: 3,
            totlen: 2256,
            explen: 2296,
        },
        false,
    ));
    let mut m = bare_ping();
    set16(&mut m, off::TYPE, TYPE_PUBLISH);
    m.extend_from_slice(&[
        0xFF, 0xFF, 0xFF, 0xF0, 0, 0, 0, 0, b'x', b'y', b'z', 0, 0, 0, 0, 0,
    ]);
    fix_totlen(&mut m);
    v.push((
        "PUBLISH channel_len 0xFFFFFFF0",
        m,
        BusError::PublishExceeds {
            msg_type: 4,
            totlen: 2272,
        },
        false,
    ));
    let mut m = bare_ping();
    set16(&mut m, off::TYPE, TYPE_PUBLISH);
    m.extend_from_slice(&[0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, b'c']);
    fix_totlen(&mut m);
    v.push((
        "PUBLISH message_len past totlen",
        m,
        BusError::PublishMessageExceeds {
            msg_type: 4,
            totlen: 2265,
        },
        false,
    ));
    let mut m = bare_ping();
    set16(&mut m, off::TYPE, TYPE_PUBLISH);
    v.push((
        "PUBLISH without lengths",
        m,
        BusError::PublishExceeds {
            msg_type: 4,
            totlen: 2256,
        },
        false,
    ));
    let mut m = bare_ping();
    set16(&mut m, off::TYPE, TYPE_PUBLISH);
    m.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, b'c', b'm', b'!']);
    fix_totlen(&mut m);
    v.push((
        "PUBLISH with a byte after the message",
        m,
        BusError::LengthMismatch {
            msg_type: 4,
            totlen: 2267,
            explen: 2266,
        },
        false,
    ));
    let mut m = bare_ping();
    set16(&mut m, off::TYPE, TYPE_MODULE);
    m.extend_from_slice(&[0; 4]);
    fix_totlen(&mut m);
    v.push((
        "MODULE without its fixed fields",
        m,
        BusError::ModuleExceeds { totlen: 2260 },
        false,
    ));
    let mut m = bare_ping();
    set16(&mut m, off::TYPE, TYPE_MODULE);
    m.extend_from_slice(&[0; 13]);
    m.extend_from_slice(b"xy");
    fix_totlen(&mut m);
    v.push((
        "MODULE with bytes after the payload",
        m,
        BusError::LengthMismatch {
            msg_type: 9,
            totlen: 2271,
            explen: 2269,
        },
        false,
    ));
    let mut m = bare_ping();
    set16(&mut m, off::TYPE, TYPE_MODULE);
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&[0x7F, 0, 0, 0, 1]);
    fix_totlen(&mut m);
    v.push((
        "MODULE len past totlen",
        m,
        BusError::ModuleExceeds { totlen: 2269 },
        false,
    ));
    let mut m = bare_ping();
    set16(&mut m, off::TYPE, TYPE_UPDATE);
    v.push((
        "UPDATE with no body",
        m,
        BusError::LengthMismatch {
            msg_type: 7,
            totlen: 2256,
            explen: 4352,
        },
        false,
    ));
    let mut m = bare_ping();
    set16(&mut m, off::TYPE, TYPE_MFSTART);
    m.extend_from_slice(&[0; 8]);
    fix_totlen(&mut m);
    v.push((
        "MFSTART with a body",
        m,
        BusError::LengthMismatch {
            msg_type: 8,
            totlen: 2264,
            explen: 2256,
        },
        false,
    ));
    // Light headers: 16 bytes of header, then a publish body.
    let mut m = b"RCmb".to_vec();
    m.extend_from_slice(&[0, 0, 0, 32, 0, 1, 0, 0, 0x80, 4, 0, 0]);
    m.extend_from_slice(&[
        0, 0, 0, 1, 0, 0, 0, 7, b'c', b'm', b'e', b's', b's', b'a', b'g', b'e',
    ]);
    v.push((
        "light PUBLISH (first message on the link)",
        m,
        BusError::LightPublish { msg_type: 4 },
        true,
    ));
    let mut m = bare_ping();
    set16(&mut m, off::TYPE, TYPE_LIGHT);
    v.push((
        "light PING",
        m,
        BusError::LightUnsupported { msg_type: 0 },
        false,
    ));
    let mut m = bare_ping();
    set32(&mut m, off::TOTLEN, 2264);
    v.push((
        "totlen 2264, 2256 sent",
        m,
        BusError::Truncated {
            have: 2256,
            need: 2264,
        },
        true,
    ));
    let mut m = bare_ping();
    set32(&mut m, off::TOTLEN, MAX_TOTLEN + 1);
    v.push((
        "totlen over the cap",
        m,
        BusError::TooLong {
            totlen: MAX_TOTLEN + 1,
        },
        true,
    ));
    v
}

#[test]
fn malformed_messages_are_refused_with_the_right_kind() {
    for (what, bytes, want, closes) in malformed_cases() {
        let got = decode(&bytes).expect_err(what);
        assert_eq!(got, want, "{what}");
        assert_eq!(
            got.closes_link(false),
            closes,
            "{what}: closes a fresh link"
        );
        // A node-bound link is only closed for framing errors.
        let framing = matches!(
            got,
            BusError::BadSignature
                | BusError::BadLength { .. }
                | BusError::TooLong { .. }
                | BusError::Truncated { .. }
                | BusError::TrailingBytes { .. }
        );
        assert_eq!(
            got.closes_link(true),
            framing,
            "{what}: closes a bound link"
        );
    }
    // Still fine: a valid PING from an unknown node, an unknown type and an unknown extension.
    assert!(decode(&bare_ping()).is_ok());
    let mut m = bare_ping();
    set16(&mut m, off::TYPE, 99);
    m.extend_from_slice(b"anything");
    fix_totlen(&mut m);
    assert!(matches!(
        decode(&m).unwrap().body,
        Body::Unknown { msg_type: 99, .. }
    ));
    // Extensions without EXT_DATA are not read (nor counted): totlen must be the gossip end.
    // [ref] 9.1.2 answers such a PING (extensions=1, no bytes, no flag) with a PONG, no log.
    let mut m = bare_ping();
    set16(&mut m, off::EXTENSIONS, 5);
    let d = decode(&m).expect("extensions count without EXT_DATA");
    assert!(d.body.ping().unwrap().exts.is_empty());
    assert_eq!(encode(&d), m);
}

#[test]
fn error_texts_match_upstream_logs() {
    let text = |e: BusError| e.to_string();
    assert_eq!(
        text(BusError::GossipCountExceeds {
            msg_type: 0,
            count: 1000,
            totlen: 2256
        }),
        "Received invalid ping packet with gossip count 1000 that exceeds total packet length (2256)"
    );
    assert_eq!(
        text(BusError::ExtExceeds {
            msg_type: 0,
            totlen: 2272
        }),
        "Received invalid ping packet with extension data that exceeds total packet length (2272)"
    );
    assert_eq!(
        text(BusError::ExtPadding {
            msg_type: 0,
            len: 7
        }),
        "Received a ping packet without proper padding (7 bytes)"
    );
    assert_eq!(
        text(BusError::LengthMismatch {
            msg_type: 3,
            totlen: 2256,
            explen: 2296
        }),
        "Received invalid fail packet of length 2256 but expected length 2296"
    );
    assert_eq!(
        text(BusError::PublishExceeds {
            msg_type: 4,
            totlen: 2272
        }),
        "Received invalid publish packet with channel length that exceeds total packet length (2272)"
    );
    assert_eq!(
        text(BusError::LightUnsupported { msg_type: 0 }),
        "Packet of type 'ping' (0) does not support light cluster header. Marking packet as invalid."
    );
    assert!(text(BusError::BadSignature).starts_with("Bad message length or signature"));
}

#[test]
fn framing_splits_a_stream() {
    let mut stream = Vec::new();
    for f in FIXTURES {
        stream.extend_from_slice(&fixture(f));
    }
    // Feed it in odd-sized pieces; every frame comes out whole and decodes.
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(997) {
        buf.extend_from_slice(piece);
        while let Some((frame, rest)) = split_frame(&buf).expect("framing") {
            frames.push(frame.to_vec());
            buf = rest.to_vec();
        }
    }
    assert!(buf.is_empty());
    assert_eq!(frames.len(), FIXTURES.len());
    for (f, frame) in FIXTURES.iter().zip(&frames) {
        assert_eq!(frame, &fixture(f));
    }
    // needed(): 14 bytes first, then totlen.
    let ping = fixture("ping");
    for n in 0..RCVBUF_MIN_READ_LEN {
        assert_eq!(needed(&ping[..n]), Ok(RCVBUF_MIN_READ_LEN));
    }
    assert_eq!(needed(&ping[..14]), Ok(ping.len()));
    let mut bad = ping[..14].to_vec();
    bad[3] = b'X';
    assert_eq!(needed(&bad), Err(BusError::BadSignature));
    let mut huge = ping[..14].to_vec();
    set32(&mut huge, off::TOTLEN, u32::MAX);
    assert_eq!(needed(&huge), Err(BusError::TooLong { totlen: u32::MAX }));
    let mut light = ping[..14].to_vec();
    set32(&mut light, off::TOTLEN, 16);
    set16(&mut light, off::TYPE, TYPE_LIGHT | TYPE_PUBLISH);
    assert_eq!(needed(&light), Ok(16));
    set32(&mut light, off::TOTLEN, 15);
    assert_eq!(needed(&light), Err(BusError::BadLength { totlen: 15 }));
    // Trailing bytes are the caller's framing bug.
    let mut two = ping.clone();
    two.push(0);
    assert!(decode(&two).unwrap_err().closes_link(true));
}

// ---- fuzz ----

/// One mutation of a valid message: byte flips, truncation, field overrides (counts and
/// lengths at 0, 1, max, just under and over totlen), extension chains, types, random bytes.
fn mutate(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    let interesting = |rng: &mut XorShift, len: usize| -> u32 {
        match rng.below(8) {
            0 => 0,
            1 => 1,
            2 => u32::MAX,
            3 => len as u32,
            4 => (len as u32).wrapping_sub(1),
            5 => (len as u32).wrapping_add(8),
            6 => 0xFFFF_FFF8,
            _ => rng.next() as u32,
        }
    };
    for _ in 0..1 + rng.below(4) {
        let len = m.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                m[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                m[i] = rng.next() as u8;
            }
            2 => m.truncate(rng.below(len + 1)),
            3 => {
                let v = interesting(rng, len) as u16;
                let at = [off::COUNT, off::EXTENSIONS, off::TYPE, off::VER][rng.below(4)];
                if at + 2 <= m.len() {
                    set16(&mut m, at, v);
                }
            }
            4 if m.len() > HEADER_LEN + 8 => {
                // An extension or publish length field somewhere in the body.
                let at = HEADER_LEN + rng.below(m.len() - HEADER_LEN - 4) / 8 * 8;
                let v = interesting(rng, len);
                let at = at.min(m.len() - 4);
                set32(&mut m, at, v);
            }
            5 => {
                if m.len() > off::MFLAGS {
                    m[off::MFLAGS] ^= MFLAG0_EXT_DATA;
                }
            }
            6 => {
                let n = rng.below(64);
                for _ in 0..n {
                    m.push(rng.next() as u8);
                }
            }
            7 => {
                if m.len() >= 8 {
                    let v = interesting(rng, len);
                    set32(&mut m, off::TOTLEN, v);
                }
            }
            8 => {
                let t = [0, 1, 2, 3, 4, 7, 9, 10, 11, 0x8000, 0x8004][rng.below(11)];
                if m.len() >= 14 {
                    set16(&mut m, off::TYPE, t);
                }
            }
            _ => {
                let n = rng.below(3000);
                m = (0..n).map(|_| rng.next() as u8).collect();
                if n >= 4 && rng.below(2) == 0 {
                    m[..4].copy_from_slice(b"RCmb");
                }
            }
        }
    }
    // Most of the time keep totlen honest so that the body checks get exercised.
    if rng.below(4) != 0 && m.len() >= 8 {
        fix_totlen(&mut m);
    }
    m
}

#[test]
fn fuzz_mutations_never_panic_and_ok_round_trips() {
    let iters: usize = std::env::var("BUS_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = std::env::var("BUS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x005e_edc1_u64);
    let mut seeds: Vec<Vec<u8>> = FIXTURES.iter().map(|f| fixture(f)).collect();
    seeds.extend(every_type().iter().map(encode));
    let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (mut ok, mut err) = (0usize, 0usize);
    for i in 0..iters {
        let base = &seeds[rng.below(seeds.len())];
        let m = mutate(&mut rng, base);
        match decode(&m) {
            Ok(msg) => {
                ok += 1;
                assert_eq!(
                    encode(&msg),
                    m,
                    "iteration {i} (seed {seed}): re-encode differs"
                );
            }
            Err(e) => {
                err += 1;
                let _ = e.to_string();
            }
        }
        // The framing helper agrees with decode on what it accepts.
        if let Ok(n) = needed(&m) {
            if m.len() >= RCVBUF_MIN_READ_LEN && n == m.len() {
                if let Err(e) = decode(&m) {
                    assert!(!matches!(
                        e,
                        BusError::Truncated { .. } | BusError::TrailingBytes { .. }
                    ));
                }
            }
        }
    }
    println!("bus fuzz: {iters} iterations, seed {seed}: {ok} decoded, {err} refused");
    assert!(ok > 0 && err > 0, "the mutations exercise both outcomes");
}

// ---- live: the reference accepts what we encode ----

/// A bus connection with its receive buffer (the reference may write several messages at once).
struct BusConn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl BusConn {
    fn new(s: TcpStream) -> BusConn {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        BusConn { s, buf: Vec::new() }
    }

    fn send(&mut self, m: &Message) {
        self.s
            .write_all(&encode(m))
            .expect("write to the reference bus");
    }

    fn read(&mut self) -> Message {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((frame, rest)) = split_frame(&self.buf).expect("reference framing") {
                let m = decode(frame).expect("message from the reference decodes");
                self.buf = rest.to_vec();
                return m;
            }
            let n = self
                .s
                .read(&mut chunk)
                .expect("read from the reference bus");
            assert!(n > 0, "the reference closed the bus link");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn cluster_nodes(c: &mut Conn) -> String {
    let r = c.call(&["CLUSTER", "NODES"]);
    String::from_utf8_lossy(&r).into_owned()
}

fn our_header(name: &Name, port: u16, cport: u16) -> Header {
    let mut h = Header::new(*name);
    h.port = port;
    h.cport = cport;
    h.flags = NODE_PRIMARY | NODE_EXTENSIONS_SUPPORTED;
    h
}

#[test]
fn reference_accepts_our_meet_and_ping() {
    let Some(bin) = require_reference() else {
        return;
    };
    let bus_port = free_port();
    let bus_port_s = bus_port.to_string();
    let srv = Server::reference(
        &bin,
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            &bus_port_s,
            "--cluster-node-timeout",
            "5000",
        ],
    );
    let mut admin = srv.conn();
    let ref_id = String::from_utf8_lossy(&admin.call(&["CLUSTER", "MYID"])).into_owned();
    let ref_id = ref_id.lines().nth(1).expect("bulk").to_string();
    let ref_name = name(&ref_id);

    let ours: Name = *b"ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";
    let shard: Name = [b'7'; NAME_LEN];
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let our_cport = listener.local_addr().unwrap().port();
    let our_port = free_port();

    // 1. Our MEET on a connection to its bus port: it answers PONG and creates a handshake
    //    node for our address.
    let mut out = BusConn::new(TcpStream::connect(("127.0.0.1", bus_port)).expect("connect bus"));
    let meet = Message {
        header: our_header(&ours, our_port, our_cport),
        body: Body::Meet(Ping {
            gossip: vec![],
            exts: vec![Ext::shard_id(&shard)],
        }),
    };
    out.send(&meet);
    let pong = out.read();
    assert_eq!(pong.msg_type(), TYPE_PONG);
    assert_eq!(pong.header.sender, ref_name);
    assert_eq!(pong.header.cport, bus_port);
    assert_eq!(pong.header.port, srv.port);
    let addr = format!("127.0.0.1:{our_port}@{our_cport}");
    let nodes = cluster_nodes(&mut admin);
    assert!(
        nodes.contains(&addr) && nodes.contains("handshake"),
        "{nodes}"
    );

    // 2. It connects to our bus port and MEETs the handshake node; our PONG with our real
    //    name completes the handshake.
    listener.set_nonblocking(false).unwrap();
    let (inb, _) = listener.accept().expect("the reference connects to us");
    let mut inb = BusConn::new(inb);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = inb.read();
        assert_eq!(m.header.sender, ref_name);
        if matches!(m.msg_type(), TYPE_MEET | TYPE_PING) {
            let reply = Message {
                header: our_header(&ours, our_port, our_cport),
                body: Body::Pong(Ping {
                    gossip: vec![],
                    exts: vec![Ext::shard_id(&shard)],
                }),
            };
            inb.send(&reply);
            break;
        }
        assert!(Instant::now() < deadline, "no MEET from the reference");
    }
    let ours_s = String::from_utf8_lossy(&ours).into_owned();
    assert!(
        wait_for(Duration::from_secs(10), || {
            let n = cluster_nodes(&mut admin);
            n.lines()
                .any(|l| l.starts_with(&ours_s) && l.contains(&addr) && !l.contains("handshake"))
        }),
        "{}",
        cluster_nodes(&mut admin)
    );

    // 3. A PING of ours with every extension, now from a known node: answered with a PONG
    //    that decodes, and the extensions are taken (hostname shows in CLUSTER NODES).
    let ping = Message {
        header: our_header(&ours, our_port, our_cport),
        body: Body::Ping(Ping {
            gossip: vec![],
            exts: vec![
                Ext::hostname(b"fake-host.example"),
                Ext::human_nodename(b"fake-node"),
                Ext::shard_id(&shard),
            ],
        }),
    };
    out.send(&ping);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = out.read();
        if m.msg_type() == TYPE_PONG {
            assert_eq!(m.header.sender, ref_name);
            // Our node is known now, and supports extensions: it gossips its shard id back.
            let p = m.body.ping().unwrap();
            assert!(p
                .exts
                .iter()
                .any(|e| matches!(e.data(), ExtData::ShardId(_))));
            break;
        }
        assert!(Instant::now() < deadline, "no PONG");
    }
    assert!(
        wait_for(Duration::from_secs(10), || cluster_nodes(&mut admin)
            .contains(&format!("{addr},fake-host.example"))),
        "{}",
        cluster_nodes(&mut admin)
    );
    // 4. Our PUBLISH reaches a subscriber of the reference (PUBLISH needs a known sender).
    let mut sub = srv.conn();
    sub.call(&["SUBSCRIBE", "bus-news"]);
    out.send(&Message {
        header: our_header(&ours, our_port, our_cport),
        body: Body::Publish(Publish {
            channel: b"bus-news".to_vec(),
            message: b"from the codec".to_vec(),
        }),
    });
    let got = sub.read_reply().expect("published message");
    assert_eq!(
        got,
        b"*3\r\n$7\r\nmessage\r\n$8\r\nbus-news\r\n$14\r\nfrom the codec\r\n"
    );
    // 5. Our UPDATE about ourselves (configEpoch 5, slots 0-10) is applied: the reference
    //    binds the slots to us. Then our FAIL about ourselves marks us failing there.
    let mut slots = Box::new([0u8; SLOTS_BYTES]);
    for s in 0..=10 {
        slot_set(&mut slots, s);
    }
    out.send(&Message {
        header: our_header(&ours, our_port, our_cport),
        body: Body::Update(Update {
            config_epoch: 5,
            nodename: ours,
            slots,
        }),
    });
    let our_line = |admin: &mut Conn| {
        cluster_nodes(admin)
            .lines()
            .find(|l| l.starts_with(&ours_s))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        wait_for(Duration::from_secs(10), || our_line(&mut admin)
            .ends_with(" 5 connected 0-10")),
        "{}",
        cluster_nodes(&mut admin)
    );
    out.send(&Message {
        header: our_header(&ours, our_port, our_cport),
        body: Body::Fail(ours),
    });
    assert!(
        wait_for(Duration::from_secs(10), || our_line(&mut admin)
            .contains(" master,fail ")),
        "{}",
        cluster_nodes(&mut admin)
    );
    assert!(srv
        .log()
        .contains(&format!("FAIL message received from {ours_s}")));
    // 6. As its replica (a PING claiming it as primary, with its shard id), our MFSTART
    //    starts a manual failover there: it PINGs us with mflags PAUSED.
    let ref_shard = String::from_utf8_lossy(&admin.call(&["CLUSTER", "MYSHARDID"])).into_owned();
    let ref_shard = name(ref_shard.lines().nth(1).expect("bulk"));
    let mut as_replica = our_header(&ours, our_port, our_cport);
    as_replica.flags = NODE_REPLICA | NODE_EXTENSIONS_SUPPORTED;
    as_replica.replicaof = ref_name;
    out.send(&Message {
        header: as_replica.clone(),
        body: Body::Ping(Ping {
            gossip: vec![],
            exts: vec![Ext::shard_id(&ref_shard)],
        }),
    });
    assert!(
        wait_for(Duration::from_secs(10), || our_line(&mut admin)
            .contains(&format!(" slave,fail {ref_id} "))),
        "{}",
        cluster_nodes(&mut admin)
    );
    out.send(&Message {
        header: as_replica,
        body: Body::MfStart,
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = inb.read();
        if m.header.mflags[0] & MFLAG0_PAUSED != 0 {
            assert_eq!(m.msg_type(), TYPE_PING);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no PAUSED PING after our MFSTART"
        );
    }
    assert!(srv
        .log()
        .contains(&format!("Manual failover requested by replica {ours_s}")));
    // The reference is healthy: its log has no complaint about our messages.
    let log = srv.log();
    assert!(!log.contains("Received invalid"), "{log}");
    assert!(!log.contains("Bad message length"), "{log}");
}

/// Whether `s` is closed by the peer within `limit` (EOF or reset), reading and dropping
/// anything it sends first.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// The codec's verdict on each malformed input is the reference's: the link is closed, or
/// the packet is dropped (no PONG for it), the link stays up and the next valid PING is
/// answered; and where upstream logs the failure, the log has our error's text.
#[test]
fn reference_agrees_with_the_malformed_verdicts() {
    let Some(bin) = require_reference() else {
        return;
    };
    let bus_port = free_port();
    let bus_port_s = bus_port.to_string();
    let srv = Server::reference(
        &bin,
        &["--cluster-enabled", "yes", "--cluster-port", &bus_port_s],
    );
    let mut logged = Vec::new();
    for (what, bytes, err, closes) in malformed_cases() {
        // Ours only: upstream has no cap, waits for the missing bytes, or reads past a short
        // extension instead of refusing it.
        if matches!(
            err,
            BusError::TooLong { .. } | BusError::Truncated { .. } | BusError::ExtBadPayload { .. }
        ) {
            continue;
        }
        let mut s = TcpStream::connect(("127.0.0.1", bus_port)).expect("connect bus");
        s.write_all(&bytes).unwrap();
        if closes {
            assert!(
                closed_within(&mut s, Duration::from_secs(5)),
                "{what}: link kept"
            );
            continue;
        }
        s.write_all(&bare_ping()).unwrap();
        let mut c = BusConn::new(s);
        let m = c.read();
        assert_eq!(m.msg_type(), TYPE_PONG, "{what}");
        // Exactly one PONG: the malformed packet got none.
        c.s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut extra = [0u8; 16];
        assert!(
            !matches!(c.s.read(&mut extra), Ok(n) if n > 0) && c.buf.is_empty(),
            "{what}: the malformed packet was answered"
        );
        if !matches!(err, BusError::BadVersion { .. }) {
            logged.push((what, err.to_string()));
        }
    }
    assert!(
        wait_for(Duration::from_secs(5), || {
            let log = srv.log();
            logged.iter().all(|(_, text)| log.contains(text.as_str()))
        }),
        "missing log lines: {:?}\nlog:\n{}",
        logged
            .iter()
            .filter(|(_, t)| !srv.log().contains(t.as_str()))
            .collect::<Vec<_>>(),
        srv.log()
    );
    let mut admin = srv.conn();
    assert_eq!(admin.call(&["PING"]), b"+PONG\r\n");
}
