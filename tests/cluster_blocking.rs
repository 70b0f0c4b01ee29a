//! Cluster mode: clients blocked on keys and shard-channel subscribers when their slot
//! goes away (upstream's `clusterRedirectBlockedClientIfNeeded` and
//! `removeChannelsInSlot`), and CLUSTER SETSLOT replicated to the shard's replicas before
//! it applies (Valkey 8.0). Each scenario runs on reference nodes and on ours and the
//! transcripts (ports replaced by node names) must be equal.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{create_cluster, wait_ok, CNode, Impl, Opts};
use common::{escape, require_reference, Conn};

const LIMIT: Duration = Duration::from_secs(20);
/// How long a redirect may take: the clients cron visits every client within a second
/// (hz 10, all clients per tick when there are few).
const REPLY_WAIT: Duration = Duration::from_secs(3);

/// A key of slot 5061 (`bar`), in the first half of the slots.
const SLOT_A: &str = "5061";
/// A key of slot 12182 (`foo`), in the second half.
const SLOT_B: &str = "12182";

/// A reply with the node addresses replaced by names.
fn norm(r: &[u8], names: &[(u16, &str)]) -> String {
    let mut s = escape(r);
    for (port, name) in names {
        s = s.replace(&format!("127.0.0.1:{}", port), name);
    }
    s
}

/// Waits for one reply on `c` (at most [`REPLY_WAIT`]).
fn reply_of(c: &mut Conn) -> Vec<u8> {
    c.set_read_timeout(REPLY_WAIT);
    let r = c.read_reply().unwrap_or_else(|e| {
        b"(no reply: "
            .iter()
            .copied()
            .chain(e.to_string().into_bytes())
            .chain(*b")")
            .collect()
    });
    c.set_read_timeout(Duration::from_secs(5));
    r
}

/// Everything `c` receives within `d`.
fn drain(c: &mut Conn, d: Duration) -> Vec<u8> {
    let (got, _) = c.read_until_close(d);
    c.set_read_timeout(Duration::from_secs(5));
    got
}

/// Waits until `node` reports `n` blocked clients.
fn wait_blocked(node: &mut CNode, n: usize) {
    let want = format!("blocked_clients:{}", n);
    wait_ok(Duration::from_secs(5), || {
        let info = node.text(&["INFO", "clients"]);
        if info.lines().any(|l| l.trim() == want) {
            Ok(())
        } else {
            Err(info)
        }
    })
    .unwrap_or_else(|e| panic!("{}: want {}: {}", node.label(), want, e));
}

/// The fields of `INFO commandstats`/`errorstats` lines for `names` that do not depend on
/// timing (calls, rejected and failed calls; error counts).
fn stats(node: &mut CNode, names: &[&str]) -> Vec<String> {
    let text = node.text(&["INFO", "commandstats"]) + &node.text(&["INFO", "errorstats"]);
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, fields)) = line.trim().split_once(':') else {
            continue;
        };
        if !names.contains(&name) {
            continue;
        }
        let kept: Vec<&str> = fields
            .split(',')
            .filter(|f| {
                f.starts_with("calls=")
                    || f.starts_with("rejected_calls=")
                    || f.starts_with("failed_calls=")
                    || f.starts_with("count=")
            })
            .collect();
        out.push(format!("{}:{}", name, kept.join(",")));
    }
    out.sort();
    out
}

/// Starts a two-primary cluster of `imp` (node 0: slots 0-8191, node 1: the rest).
fn two_primaries(imp: &Impl) -> Vec<CNode> {
    let mut nodes = vec![
        CNode::start(imp, &Opts::default()),
        CNode::start(imp, &Opts::default()),
    ];
    create_cluster(&mut nodes, LIMIT).unwrap_or_else(|e| panic!("{}", e));
    nodes
}

/// Waits until `node` says `cluster_state:<want>`.
fn wait_state(node: &mut CNode, want: &str) {
    wait_ok(LIMIT, || {
        let s = node.info_field("cluster_state");
        if s == want {
            Ok(())
        } else {
            Err(s)
        }
    })
    .unwrap_or_else(|e| panic!("{}: cluster_state {} (want {})", node.label(), e, want));
}

/// Node A (slots 0-8191) has clients blocked in BLPOP, BZPOPMIN, XREAD and BLMOVE on keys
/// of slot 5061 and one in WAIT; the slot is given to B; then a blocked client on a slot A
/// imports; then the cluster goes down (full coverage lost), an unassigned slot without
/// full coverage, and a blocked read with `cluster-allow-reads-when-down`.
fn redirect_scenario(imp: &Impl) -> Vec<String> {
    let mut nodes = two_primaries(imp);
    let (pa, pb) = (nodes[0].port(), nodes[1].port());
    let names = [(pa, "A"), (pb, "B")];
    let (ida, idb) = (nodes[0].id.clone(), nodes[1].id.clone());
    let mut t = Vec::new();
    assert_eq!(nodes[0].call(&["CLUSTER", "KEYSLOT", "bar"]), b":5061\r\n");
    assert_eq!(nodes[0].call(&["CLUSTER", "KEYSLOT", "foo"]), b":12182\r\n");
    let a = &mut nodes[0];
    let mut cl: Vec<Conn> = (0..5).map(|_| a.srv.conn()).collect();
    let cmds: [&[&str]; 5] = [
        &["BLPOP", "bar", "0"],
        &["BZPOPMIN", "{bar}z", "0"],
        &["XREAD", "BLOCK", "0", "STREAMS", "{bar}s", "$"],
        &["BLMOVE", "{bar}a", "{bar}b", "LEFT", "RIGHT", "0"],
        &["WAIT", "1", "0"],
    ];
    for (c, cmd) in cl.iter_mut().zip(cmds) {
        c.send(cmd).unwrap();
    }
    wait_blocked(a, 5);
    t.push(format!(
        "setslot node B: {}",
        norm(
            &a.call(&["CLUSTER", "SETSLOT", SLOT_A, "NODE", &idb]),
            &names
        )
    ));
    for (i, c) in cl.iter_mut().take(4).enumerate() {
        t.push(format!("{} -> {}", cmds[i][0], norm(&reply_of(c), &names)));
        t.push(format!("  then PING -> {}", escape(&c.call(&["PING"]))));
    }
    t.push(format!(
        "WAIT still blocked: {:?}",
        escape(&drain(&mut cl[4], Duration::from_millis(300)))
    ));
    t.extend(stats(
        a,
        &[
            "cmdstat_blpop",
            "cmdstat_bzpopmin",
            "cmdstat_xread",
            "cmdstat_blmove",
            "errorstat_MOVED",
        ],
    ));
    // A client blocked (with ASKING) on a slot A imports stays; STABLE ends the import.
    t.push(format!(
        "setslot back: {}",
        norm(
            &a.call(&["CLUSTER", "SETSLOT", SLOT_A, "NODE", &ida]),
            &names
        )
    ));
    t.push(format!(
        "importing: {}",
        norm(
            &a.call(&["CLUSTER", "SETSLOT", SLOT_B, "IMPORTING", &idb]),
            &names
        )
    ));
    t.push(format!("asking: {}", escape(&cl[0].call(&["ASKING"]))));
    cl[0].send(&["BLPOP", "foo", "0"]).unwrap();
    wait_blocked(a, 2);
    t.push(format!(
        "importing slot, still blocked: {:?}",
        escape(&drain(&mut cl[0], Duration::from_millis(1200)))
    ));
    t.push(format!(
        "stable: {}",
        norm(&a.call(&["CLUSTER", "SETSLOT", SLOT_B, "STABLE"]), &names)
    ));
    t.push(format!(
        "BLPOP foo -> {}",
        norm(&reply_of(&mut cl[0]), &names)
    ));
    // The cluster goes down (slot 100 unassigned, full coverage required).
    cl[0].send(&["BLPOP", "bar", "0"]).unwrap();
    wait_blocked(a, 2);
    t.push(format!(
        "delslots 100: {}",
        escape(&a.call(&["CLUSTER", "DELSLOTS", "100"]))
    ));
    t.push(format!(
        "BLPOP bar (down) -> {}",
        norm(&reply_of(&mut cl[0]), &names)
    ));
    t.push(format!(
        "WAIT still blocked: {:?}",
        escape(&drain(&mut cl[4], Duration::from_millis(300)))
    ));
    t.push(format!(
        "addslots 100: {}",
        escape(&a.call(&["CLUSTER", "ADDSLOTS", "100"]))
    ));
    wait_state(a, "ok");
    // Reads allowed while down: a blocked XREAD still gets CLUSTERDOWN.
    a.ok(&["CONFIG", "SET", "cluster-allow-reads-when-down", "yes"]);
    cl[2]
        .send(&["XREAD", "BLOCK", "0", "STREAMS", "{bar}s", "$"])
        .unwrap();
    wait_blocked(a, 2);
    t.push(format!(
        "delslots 100: {}",
        escape(&a.call(&["CLUSTER", "DELSLOTS", "100"]))
    ));
    t.push(format!(
        "XREAD (down, reads allowed) -> {}",
        norm(&reply_of(&mut cl[2]), &names)
    ));
    t.push(format!(
        "addslots 100: {}",
        escape(&a.call(&["CLUSTER", "ADDSLOTS", "100"]))
    ));
    a.ok(&["CONFIG", "SET", "cluster-allow-reads-when-down", "no"]);
    wait_state(a, "ok");
    // Without full coverage: the slot of the key is unassigned.
    a.ok(&["CONFIG", "SET", "cluster-require-full-coverage", "no"]);
    cl[0].send(&["BLPOP", "bar", "0"]).unwrap();
    wait_blocked(a, 2);
    t.push(format!(
        "delslots {}: {}",
        SLOT_A,
        escape(&a.call(&["CLUSTER", "DELSLOTS", SLOT_A]))
    ));
    t.push(format!(
        "BLPOP bar (unassigned) -> {}",
        norm(&reply_of(&mut cl[0]), &names)
    ));
    t.push(format!(
        "WAIT still blocked: {:?}",
        escape(&drain(&mut cl[4], Duration::from_millis(300)))
    ));
    t.extend(stats(
        a,
        &[
            "cmdstat_blpop",
            "cmdstat_xread",
            "errorstat_CLUSTERDOWN",
            "errorstat_MOVED",
        ],
    ));
    t
}

#[test]
fn blocked_clients_redirected_when_slot_goes() {
    let Some(bin) = require_reference() else {
        return;
    };
    let want = redirect_scenario(&Impl::Reference(bin));
    let got = redirect_scenario(&Impl::Ours);
    eprintln!("reference:\n{}", want.join("\n"));
    assert_eq!(
        got,
        want,
        "\nours:\n{}\nreference:\n{}",
        got.join("\n"),
        want.join("\n")
    );
}

/// Shard-channel subscribers on A (RESP2 and RESP3) when A gives slot 5061 to B, loses it
/// to DELSLOTS, and when A's RESP3 client itself runs the DELSLOTS.
fn sunsubscribe_scenario(imp: &Impl) -> Vec<String> {
    let mut nodes = two_primaries(imp);
    let (pa, pb) = (nodes[0].port(), nodes[1].port());
    let names = [(pa, "A"), (pb, "B")];
    let idb = nodes[1].id.clone();
    let ida = nodes[0].id.clone();
    let mut t = Vec::new();
    let a = &mut nodes[0];
    let mut s2 = a.srv.conn();
    let mut s3 = a.srv.conn();
    t.push(format!(
        "hello 3: {}",
        s3.call(&["HELLO", "3"]).starts_with(b"%")
    ));
    t.push(format!("s2: {}", escape(&s2.call(&["SSUBSCRIBE", "bar"]))));
    t.push(format!(
        "s2: {}",
        escape(&s2.call(&["SSUBSCRIBE", "{bar}x"]))
    ));
    t.push(format!("s2: {}", escape(&s2.call(&["SSUBSCRIBE", "zap"]))));
    t.push(format!("s2: {}", escape(&s2.call(&["SUBSCRIBE", "plain"]))));
    t.push(format!(
        "s3: {}",
        escape(&s3.call(&["SSUBSCRIBE", "{bar}y"]))
    ));
    t.push(format!(
        "setslot node B: {}",
        norm(
            &a.call(&["CLUSTER", "SETSLOT", SLOT_A, "NODE", &idb]),
            &names
        )
    ));
    // Two channels of the slot: their order is the hash table's; sort the messages.
    // The counts depend on that order too: the channels and the counts, each sorted.
    let m2 = split_pushes(&drain(&mut s2, Duration::from_millis(500)));
    let mut chans: Vec<String> = m2
        .iter()
        .map(|m| m.rsplit_once(':').map_or("", |x| x.0).to_string())
        .collect();
    let mut counts: Vec<String> = m2
        .iter()
        .map(|m| m.rsplit(':').next().unwrap_or("").to_string())
        .collect();
    chans.sort();
    counts.sort();
    t.push(format!("s2 got: {:?} counts {:?}", chans, counts));
    t.push(format!(
        "s3 got: {:?}",
        split_pushes(&drain(&mut s3, Duration::from_millis(300)))
    ));
    t.push(format!("s2 ping: {}", escape(&s2.call(&["PING"]))));
    t.push(format!(
        "pubsub shardchannels: {}",
        escape(&a.call(&["PUBSUB", "SHARDCHANNELS"]))
    ));
    t.push(format!(
        "setslot back: {}",
        norm(
            &a.call(&["CLUSTER", "SETSLOT", SLOT_A, "NODE", &ida]),
            &names
        )
    ));
    // The subscriber runs the DELSLOTS itself (RESP3): the push comes before +OK.
    t.push(format!("s3: {}", escape(&s3.call(&["SSUBSCRIBE", "bar"]))));
    t.push(format!("s3: {}", escape(&s3.call(&["SSUBSCRIBE", "zap"]))));
    s3.send(&["CLUSTER", "DELSLOTS", SLOT_A]).unwrap();
    t.push(format!(
        "s3 delslots: {:?}",
        split_pushes(&drain(&mut s3, Duration::from_millis(500)))
    ));
    t.push(format!("s3: {}", escape(&s3.call(&["SSUBSCRIBE", "zap"]))));
    t
}

/// Splits a stream of RESP2/RESP3 pushes or replies into escaped items.
fn split_pushes(b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = b;
    while !rest.is_empty() {
        let n = resp_len(rest).unwrap_or(rest.len());
        out.push(escape(&rest[..n]));
        rest = &rest[n..];
    }
    out
}

/// The length of the first complete RESP2/RESP3 value of `b`.
fn resp_len(b: &[u8]) -> Option<usize> {
    let eol = b.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&b[1..eol]).ok()?;
    let after = eol + 2;
    match b[0] {
        b'$' | b'=' | b'!' => {
            let n: i64 = head.parse().ok()?;
            Some(if n < 0 { after } else { after + n as usize + 2 })
        }
        b'*' | b'>' | b'~' | b'%' | b'|' => {
            let n: i64 = head.parse().ok()?;
            let items = if b[0] == b'%' || b[0] == b'|' {
                2 * n
            } else {
                n
            };
            let mut pos = after;
            for _ in 0..items.max(0) {
                pos += resp_len(&b[pos..])?;
            }
            Some(pos)
        }
        _ => Some(after),
    }
}

#[test]
fn shard_subscribers_leave_with_the_slot() {
    let Some(bin) = require_reference() else {
        return;
    };
    let want = sunsubscribe_scenario(&Impl::Reference(bin));
    let got = sunsubscribe_scenario(&Impl::Ours);
    eprintln!("reference:\n{}", want.join("\n"));
    assert_eq!(
        got,
        want,
        "\nours:\n{}\nreference:\n{}",
        got.join("\n"),
        want.join("\n")
    );
}

/// A primary A with a replica R, and B: clients blocked on A and on R and shard
/// subscribers on both when R takes over with a manual CLUSTER FAILOVER.
fn failover_scenario(imp: &Impl) -> Vec<String> {
    let mut nodes = two_primaries(imp);
    let mut r = CNode::start(imp, &Opts::default());
    r.meet(&nodes[0]);
    let (pa, pb, pr) = (nodes[0].port(), nodes[1].port(), r.port());
    let names = [(pa, "A"), (pb, "B"), (pr, "R")];
    let ida = nodes[0].id.clone();
    let rid = r.id.clone();
    wait_ok(LIMIT, || match r.node(&ida) {
        Some(l) if l.connected() && !l.has("handshake") => Ok(()),
        other => Err(format!("{:?}", other)),
    })
    .unwrap();
    r.ok(&["CLUSTER", "REPLICATE", &ida]);
    wait_ok(LIMIT, || {
        for n in nodes.iter_mut() {
            match n.node(&rid) {
                Some(l) if l.has("slave") => {}
                other => return Err(format!("{}: {:?}", n.label(), other)),
            }
        }
        if r.text(&["INFO", "replication"])
            .contains("master_link_status:up")
        {
            Ok(())
        } else {
            Err("link down".into())
        }
    })
    .unwrap_or_else(|e| panic!("{}\n{}", e, r.log()));
    let mut t = Vec::new();
    // On A: a BLPOP, an XREAD, a READONLY XREAD; a shard subscriber. On R: a READONLY
    // XREAD and a shard subscriber.
    let a = &mut nodes[0];
    let mut on_a: Vec<Conn> = (0..4).map(|_| a.srv.conn()).collect();
    let mut on_r: Vec<Conn> = (0..2).map(|_| r.srv.conn()).collect();
    t.push(format!(
        "a2 readonly: {}",
        escape(&on_a[2].call(&["READONLY"]))
    ));
    t.push(format!(
        "r0 readonly: {}",
        escape(&on_r[0].call(&["READONLY"]))
    ));
    t.push(format!(
        "a3: {}",
        escape(&on_a[3].call(&["SSUBSCRIBE", "bar"]))
    ));
    t.push(format!(
        "r1: {}",
        escape(&on_r[1].call(&["SSUBSCRIBE", "bar"]))
    ));
    on_a[0].send(&["BLPOP", "bar", "0"]).unwrap();
    on_a[1]
        .send(&["XREAD", "BLOCK", "0", "STREAMS", "{bar}s", "$"])
        .unwrap();
    on_a[2]
        .send(&["XREAD", "BLOCK", "0", "STREAMS", "{bar}s", "$"])
        .unwrap();
    on_r[0]
        .send(&["XREAD", "BLOCK", "0", "STREAMS", "{bar}s", "$"])
        .unwrap();
    wait_blocked(a, 3);
    wait_blocked(&mut r, 1);
    r.ok(&["CLUSTER", "FAILOVER"]);
    wait_ok(LIMIT, || {
        let role_r = r.text(&["INFO", "replication"]);
        let role_a = nodes[0].text(&["INFO", "replication"]);
        if role_r.contains("role:master") && role_a.contains("role:slave") {
            Ok(())
        } else {
            Err("failover not done".into())
        }
    })
    .unwrap_or_else(|e| panic!("{}\n{}", e, r.log()));
    t.push(format!(
        "A BLPOP -> {}",
        norm(&reply_of(&mut on_a[0]), &names)
    ));
    t.push(format!(
        "A XREAD -> {}",
        norm(&reply_of(&mut on_a[1]), &names)
    ));
    t.push(format!(
        "A READONLY XREAD still blocked: {:?}",
        escape(&drain(&mut on_a[2], Duration::from_millis(1200)))
    ));
    t.push(format!(
        "R READONLY XREAD still blocked: {:?}",
        escape(&drain(&mut on_r[0], Duration::from_millis(300)))
    ));
    t.push(format!(
        "A subscriber: {:?}",
        split_pushes(&drain(&mut on_a[3], Duration::from_millis(300)))
    ));
    t.push(format!(
        "R subscriber: {:?}",
        split_pushes(&drain(&mut on_r[1], Duration::from_millis(300)))
    ));
    // A write on the new primary serves both blocked reads (A's through replication).
    let id = r.text(&["XADD", "{bar}s", "1-1", "f", "v"]);
    t.push(format!("xadd: {}", id));
    t.push(format!("R XREAD -> {}", escape(&reply_of(&mut on_r[0]))));
    t.push(format!(
        "A READONLY XREAD -> {}",
        escape(&reply_of(&mut on_a[2]))
    ));
    t.extend(stats(
        &mut nodes[0],
        &["cmdstat_blpop", "cmdstat_xread", "errorstat_MOVED"],
    ));
    t
}

#[test]
fn blocked_clients_follow_failover() {
    let Some(bin) = require_reference() else {
        return;
    };
    let want = failover_scenario(&Impl::Reference(bin));
    let got = failover_scenario(&Impl::Ours);
    eprintln!("reference:\n{}", want.join("\n"));
    assert_eq!(
        got,
        want,
        "\nours:\n{}\nreference:\n{}",
        got.join("\n"),
        want.join("\n")
    );
}

/// CLUSTER SETSLOT on a primary with a replica: the replica shows the change as soon as
/// the primary replied; the TIMEOUT errors; a replica that does not answer in time gives
/// `-NOREPLICAS` and the primary keeps its state (the replica applies it when it wakes).
fn setslot_scenario(imp: &Impl) -> (Vec<String>, Duration) {
    let mut nodes = two_primaries(imp);
    let mut r = CNode::start(imp, &Opts::default());
    r.meet(&nodes[0]);
    let (pa, pb, pr) = (nodes[0].port(), nodes[1].port(), r.port());
    let names = [(pa, "A"), (pb, "B"), (pr, "R")];
    let (ida, idb) = (nodes[0].id.clone(), nodes[1].id.clone());
    wait_ok(LIMIT, || match r.node(&ida) {
        Some(l) if l.connected() && !l.has("handshake") => Ok(()),
        other => Err(format!("{:?}", other)),
    })
    .unwrap();
    r.ok(&["CLUSTER", "REPLICATE", &ida]);
    wait_ok(LIMIT, || {
        match nodes[0].node(&r.id) {
            Some(l) if l.has("slave") => {}
            other => return Err(format!("{:?}", other)),
        }
        if r.text(&["INFO", "replication"])
            .contains("master_link_status:up")
            && nodes[0]
                .text(&["INFO", "replication"])
                .contains("state=online")
        {
            Ok(())
        } else {
            Err("link down".into())
        }
    })
    .unwrap_or_else(|e| panic!("{}\n{}", e, r.log()));
    let mut t = Vec::new();
    let myself_states = |n: &mut CNode| -> String {
        let lines = n.nodes();
        let me = lines.iter().find(|l| l.myself()).unwrap();
        let states: Vec<&str> = me.raw.split(' ').filter(|s| s.starts_with('[')).collect();
        format!("{:?}", states)
            .replace(&idb, "B")
            .replace(&ida, "A")
    };
    let a = &mut nodes[0];
    for args in [
        vec!["TIMEOUT"],
        vec!["TIMEOUT", "-1"],
        vec!["TIMEOUT", "abc"],
        vec!["TIMEOUT", "1.5"],
        vec!["TIMEOUT", "9223372036854775807"],
    ] {
        let mut argv = vec!["CLUSTER", "SETSLOT", SLOT_A, "MIGRATING", &idb];
        argv.extend(args.iter().copied());
        t.push(format!("{:?}: {}", args, escape(&a.call(&argv))));
    }
    t.push(format!(
        "replica setslot: {}",
        escape(&r.call(&["CLUSTER", "SETSLOT", SLOT_A, "STABLE"]))
    ));
    let start = Instant::now();
    t.push(format!(
        "migrating: {}",
        escape(&a.call(&["CLUSTER", "SETSLOT", SLOT_A, "MIGRATING", &idb]))
    ));
    let took = start.elapsed();
    t.push(format!("replica states at once: {}", myself_states(&mut r)));
    t.push(format!("primary states: {}", myself_states(a)));
    t.push(format!(
        "stable: {}",
        escape(&a.call(&["CLUSTER", "SETSLOT", SLOT_A, "STABLE", "TIMEOUT", "0"]))
    ));
    t.push(format!("replica states at once: {}", myself_states(&mut r)));
    t.push(format!(
        "node B: {}",
        escape(&a.call(&["CLUSTER", "SETSLOT", SLOT_A, "NODE", &idb]))
    ));
    let owner = |n: &mut CNode| -> String {
        let lines = n.nodes();
        let who = lines
            .iter()
            .find(|l| l.slots.iter().any(|&(lo, hi)| (lo..=hi).contains(&5061)));
        who.map(|l| l.id.replace(&idb, "B").replace(&ida, "A"))
            .unwrap_or_else(|| "none".into())
    };
    t.push(format!("owner on replica at once: {}", owner(&mut r)));
    t.push(format!("owner on primary: {}", owner(a)));
    t.push(format!(
        "node A: {}",
        escape(&a.call(&["CLUSTER", "SETSLOT", SLOT_A, "NODE", &ida]))
    ));
    t.push(format!("owner on replica at once: {}", owner(&mut r)));
    // The replica sleeps: the primary gives up after the timeout.
    let mut sleeper = r.srv.conn();
    sleeper.send(&["DEBUG", "SLEEP", "1.5"]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    t.push(format!(
        "migrating while the replica sleeps: {}",
        norm(
            &a.call(&[
                "CLUSTER",
                "SETSLOT",
                SLOT_A,
                "MIGRATING",
                &idb,
                "TIMEOUT",
                "300"
            ]),
            &names
        )
    ));
    let waited = start.elapsed();
    t.push(format!(
        "waited about the timeout: {}",
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(1300)
    ));
    t.push(format!("primary states: {}", myself_states(a)));
    t.push(format!("sleep: {}", escape(&sleeper.read_reply().unwrap())));
    wait_ok(LIMIT, || {
        let s = myself_states(&mut r);
        if s.contains("->-") {
            Ok(())
        } else {
            Err(s)
        }
    })
    .unwrap_or_else(|e| panic!("replica never applied the SETSLOT: {}", e));
    t.push(format!("replica states later: {}", myself_states(&mut r)));
    // CLIENT UNBLOCK on SETSLOTs and a WAIT waiting for the (sleeping) replica.
    let mut x = a.srv.conn();
    let mut y = a.srv.conn();
    let mut w = a.srv.conn();
    let ids: Vec<String> = [&mut x, &mut y, &mut w]
        .into_iter()
        .map(common::client_id)
        .collect();
    sleeper.send(&["DEBUG", "SLEEP", "1.5"]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    x.send(&["CLUSTER", "SETSLOT", SLOT_A, "STABLE", "TIMEOUT", "0"])
        .unwrap();
    y.send(&["CLUSTER", "SETSLOT", SLOT_A, "STABLE", "TIMEOUT", "0"])
        .unwrap();
    w.send(&["WAIT", "2", "0"]).unwrap();
    wait_blocked(a, 3);
    t.push(format!(
        "unblock x: {}",
        escape(&a.call(&["CLIENT", "UNBLOCK", &ids[0]]))
    ));
    t.push(format!("x -> {}", escape(&reply_of(&mut x))));
    t.push(format!(
        "unblock y error: {}",
        escape(&a.call(&["CLIENT", "UNBLOCK", &ids[1], "ERROR"]))
    ));
    t.push(format!("y -> {}", escape(&reply_of(&mut y))));
    t.push(format!(
        "unblock w: {}",
        escape(&a.call(&["CLIENT", "UNBLOCK", &ids[2]]))
    ));
    t.push(format!("w -> {}", escape(&reply_of(&mut w))));
    t.push(format!("x then PING: {}", escape(&x.call(&["PING"]))));
    t.push(format!("sleep: {}", escape(&sleeper.read_reply().unwrap())));
    t.push(format!("primary states: {}", myself_states(a)));
    t.extend(stats(
        a,
        &[
            "cmdstat_cluster|setslot",
            "cmdstat_wait",
            "errorstat_NOREPLICAS",
            "errorstat_UNBLOCKED",
        ],
    ));
    // Inside MULTI/EXEC the client can not wait: the reference fails an assertion and
    // exits; ours sends the command to the replica and applies it at once.
    if matches!(imp, Impl::Ours) {
        let mut m = a.srv.conn();
        m.send_raw(&common::encode_command(&["MULTI"])).unwrap();
        for argv in [
            vec!["CLUSTER", "SETSLOT", "6000", "MIGRATING", &idb],
            vec!["PING"],
        ] {
            m.send_raw(&common::encode_command(&argv)).unwrap();
        }
        m.send_raw(&common::encode_command(&["EXEC"])).unwrap();
        let replies: Vec<String> = (0..4).map(|_| escape(&reply_of(&mut m))).collect();
        assert_eq!(
            replies,
            [
                "+OK\\r\\n",
                "+QUEUED\\r\\n",
                "+QUEUED\\r\\n",
                "*2\\r\\n+OK\\r\\n+PONG\\r\\n"
            ]
        );
        assert!(
            myself_states(a).contains("6000->-B"),
            "{}",
            myself_states(a)
        );
        wait_ok(LIMIT, || {
            let s = myself_states(&mut r);
            if s.contains("6000->-B") {
                Ok(())
            } else {
                Err(s)
            }
        })
        .unwrap_or_else(|e| panic!("replica never got the SETSLOT of the EXEC: {}", e));
    }
    (t, took)
}

#[test]
fn setslot_waits_for_replicas() {
    let Some(bin) = require_reference() else {
        return;
    };
    let (want, ref_took) = setslot_scenario(&Impl::Reference(bin));
    let (got, our_took) = setslot_scenario(&Impl::Ours);
    eprintln!(
        "SETSLOT MIGRATING with one replica: reference {:?}, ours {:?}",
        ref_took, our_took
    );
    eprintln!("reference:\n{}", want.join("\n"));
    assert_eq!(
        got,
        want,
        "\nours:\n{}\nreference:\n{}",
        got.join("\n"),
        want.join("\n")
    );
}

/// A primary owning one slot gives it away with SETSLOT NODE: with
/// `cluster-allow-replica-migration yes` (the default) it becomes a replica of the new
/// owner at once, with `no` it stays an empty primary; the log says which.
fn last_slot_scenario(imp: &Impl, allow: &str) -> Vec<String> {
    let o = Opts {
        extra: vec!["--cluster-allow-replica-migration".into(), allow.into()],
        ..Opts::default()
    };
    let mut nodes = vec![CNode::start(imp, &o), CNode::start(imp, &o)];
    nodes[0].ok(&["CLUSTER", "ADDSLOTS", "0"]);
    nodes[0].ok(&["CLUSTER", "SET-CONFIG-EPOCH", "1"]);
    nodes[1].ok(&["CLUSTER", "ADDSLOTSRANGE", "1", "16383"]);
    nodes[1].ok(&["CLUSTER", "SET-CONFIG-EPOCH", "2"]);
    common::cluster::meet_all(&mut nodes);
    common::cluster::wait_converged(&mut nodes, LIMIT).unwrap_or_else(|e| panic!("{}", e));
    let (ida, idb) = (nodes[0].id.clone(), nodes[1].id.clone());
    let mut t = Vec::new();
    let a = &mut nodes[0];
    t.push(format!(
        "setslot 0 node B: {}",
        escape(&a.call(&["CLUSTER", "SETSLOT", "0", "NODE", &idb]))
    ));
    let me = a.nodes().into_iter().find(|l| l.myself()).unwrap();
    t.push(format!(
        "A at once: {} primary {}",
        me.flags.join(","),
        me.primary
            .as_deref()
            .unwrap_or("-")
            .replace(&idb, "B")
            .replace(&ida, "A")
    ));
    let log = a.log();
    t.push(format!(
        "log: lost my last slot {}, empty primary {}",
        log.contains(
            "Lost my last slot during slot migration. Reconfiguring myself as a replica of"
        ),
        log.contains("I am now an empty primary.")
    ));
    if allow == "yes" {
        wait_ok(LIMIT, || {
            let r = a.text(&["INFO", "replication"]);
            if r.contains("master_link_status:up") {
                Ok(())
            } else {
                Err(r)
            }
        })
        .unwrap_or_else(|e| panic!("{}: {}\n{}", a.label(), e, a.log()));
        t.push("A replicates B".into());
    }
    t
}

#[test]
fn setslot_last_slot_makes_a_replica() {
    let Some(bin) = require_reference() else {
        return;
    };
    for allow in ["yes", "no"] {
        let want = last_slot_scenario(&Impl::Reference(bin.clone()), allow);
        let got = last_slot_scenario(&Impl::Ours, allow);
        eprintln!("reference ({}):\n{}", allow, want.join("\n"));
        assert_eq!(
            got,
            want,
            "\nours:\n{}\nreference:\n{}",
            got.join("\n"),
            want.join("\n")
        );
    }
}

/// `availability-zone` (9.1): node A has one; B sees it in CLUSTER SHARDS, CLUSTER SLOTS
/// and its nodes.conf (gossiped with ping extension 9); A shows it in INFO and HELLO;
/// CONFIG SET to "" clears it everywhere.
fn zone_scenario(imp_a: &Impl, imp_b: &Impl) -> Vec<String> {
    let oa = Opts {
        extra: vec!["--availability-zone".into(), "az-one".into()],
        ..Opts::default()
    };
    let mut nodes = vec![
        CNode::start(imp_a, &oa),
        CNode::start(imp_b, &Opts::default()),
    ];
    create_cluster(&mut nodes, LIMIT).unwrap_or_else(|e| panic!("{}", e));
    let (pa, pb) = (nodes[0].port(), nodes[1].port());
    let (ida, idb) = (nodes[0].id.clone(), nodes[1].id.clone());
    let names = |s: String| -> String {
        s.replace(&ida, "A")
            .replace(&idb, "B")
            .replace(&format!(":{}\\r", pa), ":PA\\r")
            .replace(&format!(":{}\\r", pb), ":PB\\r")
    };
    let mut t = Vec::new();
    // B learns the zone from A's pings.
    let b_sees = |b: &mut CNode, want: bool| {
        wait_ok(LIMIT, || {
            let r = escape(&b.call(&["CLUSTER", "SLOTS"]));
            if r.contains("az-one") == want {
                Ok(())
            } else {
                Err(r)
            }
        })
        .unwrap_or_else(|e| panic!("{}: {}", b.label(), e));
    };
    b_sees(&mut nodes[1], true);
    let b = &mut nodes[1];
    t.push(format!(
        "B slots: {}",
        names(escape(&b.call(&["CLUSTER", "SLOTS"])))
    ));
    b.c.call(&["HELLO", "3"]);
    t.push(format!(
        "B slots resp3: {}",
        names(escape(&b.call(&["CLUSTER", "SLOTS"])))
    ));
    // SHARDS: the node maps of A (the shard id and offsets vary).
    let shards = String::from_utf8_lossy(&b.call(&["CLUSTER", "SHARDS"])).into_owned();
    t.push(format!(
        "B shards: zone of A listed after health: {}, once: {}",
        shards.contains(
            "$6\r\nhealth\r\n$6\r\nonline\r\n$17\r\navailability-zone\r\n$6\r\naz-one\r\n"
        ),
        shards.matches("availability-zone").count() == 1
    ));
    b.ok(&["CLUSTER", "SAVECONFIG"]);
    let conf = std::fs::read_to_string(b.conf_path()).unwrap();
    let line = conf
        .lines()
        .find(|l| l.starts_with(&ida))
        .unwrap_or("")
        .to_string();
    let aux = line
        .split(' ')
        .nth(1)
        .and_then(|a| a.split_once(','))
        .map(|(_, aux)| aux.split(",shard-id=").next().unwrap_or("").to_string())
        .unwrap_or_default();
    t.push(format!("B nodes.conf aux of A: {}", aux));
    let a = &mut nodes[0];
    let info = a.text(&["INFO", "server"]);
    t.push(format!(
        "A info: {:?}",
        info.lines()
            .find(|l| l.starts_with("availability_zone"))
            .map(|l| l.trim().to_string())
    ));
    let hello = escape(&a.call(&["HELLO", "3"]));
    t.push(format!(
        "A hello: cluster mode {}, zone last {}",
        hello.contains("$4\\r\\nmode\\r\\n$7\\r\\ncluster"),
        hello.ends_with("$17\\r\\navailability_zone\\r\\n$6\\r\\naz-one\\r\\n")
    ));
    a.ok(&["CONFIG", "SET", "availability-zone", ""]);
    b_sees(&mut nodes[1], false);
    let b = &mut nodes[1];
    b.ok(&["CLUSTER", "SAVECONFIG"]);
    let conf = std::fs::read_to_string(b.conf_path()).unwrap();
    t.push(format!(
        "B nodes.conf after clear: zone {}",
        conf.contains("availability-zone")
    ));
    let a = &mut nodes[0];
    let hello = escape(&a.call(&["HELLO", "2"]));
    t.push(format!(
        "A hello after clear: zone {}",
        hello.contains("availability_zone")
    ));
    t
}

#[test]
fn availability_zone_crosses_the_bus() {
    let Some(bin) = require_reference() else {
        return;
    };
    let r = Impl::Reference(bin);
    let want = zone_scenario(&r, &r);
    eprintln!("reference:\n{}", want.join("\n"));
    for (a, b) in [(&Impl::Ours, &r), (&r, &Impl::Ours)] {
        let got = zone_scenario(a, b);
        assert_eq!(
            got,
            want,
            "\nours:\n{}\nreference:\n{}",
            got.join("\n"),
            want.join("\n")
        );
    }
}

/// `cluster-preferred-endpoint-type` ip / hostname / unknown-endpoint: the endpoint of
/// MOVED, of CLUSTER SLOTS (first element and metadata, RESP2 and RESP3) and of CLUSTER
/// SHARDS, for a node with a hostname (A) and one without (B).
fn endpoint_scenario(imp: &Impl) -> Vec<String> {
    let oa = Opts {
        extra: vec!["--cluster-announce-hostname".into(), "host-a".into()],
        ..Opts::default()
    };
    let mut nodes = vec![CNode::start(imp, &oa), CNode::start(imp, &Opts::default())];
    create_cluster(&mut nodes, LIMIT).unwrap_or_else(|e| panic!("{}", e));
    let (pa, pb) = (nodes[0].port(), nodes[1].port());
    let (ida, idb) = (nodes[0].id.clone(), nodes[1].id.clone());
    let norm = |s: String| -> String {
        s.replace(&ida, "A")
            .replace(&idb, "B")
            .replace(&pa.to_string(), "PA")
            .replace(&pb.to_string(), "PB")
    };
    let mut t = Vec::new();
    // B has A's hostname from its pings.
    wait_ok(LIMIT, || {
        let r = escape(&nodes[1].call(&["CLUSTER", "SLOTS"]));
        if r.contains("host-a") {
            Ok(())
        } else {
            Err(r)
        }
    })
    .unwrap();
    for ty in ["ip", "hostname", "unknown-endpoint"] {
        for n in nodes.iter_mut() {
            n.ok(&["CONFIG", "SET", "cluster-preferred-endpoint-type", ty]);
        }
        let (left, right) = nodes.split_at_mut(1);
        let (a, b) = (&mut left[0], &mut right[0]);
        t.push(format!(
            "{} MOVED from B: {}",
            ty,
            norm(escape(&b.call(&["GET", "bar"])))
        ));
        t.push(format!(
            "{} MOVED from A: {}",
            ty,
            norm(escape(&a.call(&["GET", "foo"])))
        ));
        t.push(format!(
            "{} slots: {}",
            ty,
            norm(escape(&b.call(&["CLUSTER", "SLOTS"])))
        ));
        let mut c3 = b.srv.conn();
        c3.call(&["HELLO", "3"]);
        t.push(format!(
            "{} slots resp3: {}",
            ty,
            norm(escape(&c3.call(&["CLUSTER", "SLOTS"])))
        ));
        let shards = escape(&b.call(&["CLUSTER", "SHARDS"]));
        let mut eps: Vec<String> = shards
            .split("$8\\r\\nendpoint\\r\\n")
            .skip(1)
            .map(|rest| rest.split("\\r\\n$").take(2).collect::<Vec<_>>().join("|"))
            .collect();
        eps.sort();
        t.push(format!("{} shards endpoints: {:?}", ty, eps));
    }
    t
}

#[test]
fn preferred_endpoint_type() {
    let Some(bin) = require_reference() else {
        return;
    };
    let want = endpoint_scenario(&Impl::Reference(bin));
    eprintln!("reference:\n{}", want.join("\n"));
    let got = endpoint_scenario(&Impl::Ours);
    assert_eq!(
        got,
        want,
        "\nours:\n{}\nreference:\n{}",
        got.join("\n"),
        want.join("\n")
    );
}

/// A primary with a replica gives its last slot away: the replica gets the SETSLOT first,
/// loses its shard's last slot and follows the new owner; the primary's reply and both
/// roles afterwards.
fn last_slot_with_replica_scenario(imp: &Impl) -> Vec<String> {
    let o = Opts::default();
    let mut nodes = vec![CNode::start(imp, &o), CNode::start(imp, &o)];
    nodes[0].ok(&["CLUSTER", "ADDSLOTS", "0"]);
    nodes[0].ok(&["CLUSTER", "SET-CONFIG-EPOCH", "1"]);
    nodes[1].ok(&["CLUSTER", "ADDSLOTSRANGE", "1", "16383"]);
    nodes[1].ok(&["CLUSTER", "SET-CONFIG-EPOCH", "2"]);
    common::cluster::meet_all(&mut nodes);
    common::cluster::wait_converged(&mut nodes, LIMIT).unwrap_or_else(|e| panic!("{}", e));
    let mut r = CNode::start(imp, &o);
    r.meet(&nodes[0]);
    let (ida, idb) = (nodes[0].id.clone(), nodes[1].id.clone());
    wait_ok(LIMIT, || match r.node(&ida) {
        Some(l) if l.connected() && !l.has("handshake") => Ok(()),
        other => Err(format!("{:?}", other)),
    })
    .unwrap();
    r.ok(&["CLUSTER", "REPLICATE", &ida]);
    wait_ok(LIMIT, || {
        if nodes[0]
            .text(&["INFO", "replication"])
            .contains("state=online")
        {
            Ok(())
        } else {
            Err("replica not online".into())
        }
    })
    .unwrap_or_else(|e| panic!("{}\n{}", e, r.log()));
    let mut t = Vec::new();
    let start = Instant::now();
    let reply = escape(&nodes[0].call(&["CLUSTER", "SETSLOT", "0", "NODE", &idb]));
    t.push(format!("setslot 0 node B: {}", reply));
    t.push(format!(
        "took over 1.5 s: {}",
        start.elapsed() > Duration::from_millis(1500)
    ));
    let roles = |n: &mut CNode| -> String {
        let me = n.nodes().into_iter().find(|l| l.myself()).unwrap();
        format!(
            "{} primary {}",
            me.flags.join(","),
            me.primary
                .as_deref()
                .unwrap_or("-")
                .replace(&idb, "B")
                .replace(&ida, "A")
        )
    };
    t.push(format!("A: {}", roles(&mut nodes[0])));
    wait_ok(LIMIT, || {
        let s = roles(&mut r);
        if s.contains("primary B") {
            Ok(())
        } else {
            Err(s)
        }
    })
    .unwrap_or_else(|e| panic!("replica: {}\n{}", e, r.log()));
    t.push(format!("R: {}", roles(&mut r)));
    t
}

#[test]
fn setslot_last_slot_with_a_replica() {
    let Some(bin) = require_reference() else {
        return;
    };
    let want = last_slot_with_replica_scenario(&Impl::Reference(bin));
    eprintln!("reference:\n{}", want.join("\n"));
    let got = last_slot_with_replica_scenario(&Impl::Ours);
    assert_eq!(
        got,
        want,
        "\nours:\n{}\nreference:\n{}",
        got.join("\n"),
        want.join("\n")
    );
}
