//! Resharding with `redis-cli --cluster reshard` (issue 13, item F of
//! docs/cluster-plan.md): slots and their keys move between nodes with CLUSTER SETSLOT
//! IMPORTING/MIGRATING/NODE, GETKEYSINSLOT and MIGRATE ... KEYS (RESTORE-ASKING on the
//! target), in a mixed cluster (a reference node to valkey-rs and valkey-rs to a reference
//! node) and under a client workload (the issue's test 3: valkey-py's ValkeyCluster while
//! 1000 slots move between valkey-rs primaries). Afterwards `redis-cli --cluster check` is
//! green and every key reads back with its value (and its TTL). The harness is
//! tests/common/cluster.rs.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{
    cli_create, create_cluster, key_slot, redis_cli, slot_owners, start_nodes, CNode, Impl, Opts,
};
use common::{escape, require_reference, Conn};

const LIMIT: Duration = Duration::from_secs(30);

/// The commands that create key `i` (several types; every 4th key with a TTL), and the
/// command that reads it back.
fn key_cmds(i: usize) -> (String, Vec<Vec<String>>, Vec<String>) {
    let key = format!("key:{i}");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let val = format!("value-{i}");
    let (mut cmds, read) = match i % 5 {
        0 => (
            vec![s(&["RPUSH", &key, "a", &val, "c"])],
            s(&["LRANGE", &key, "0", "-1"]),
        ),
        1 => (
            vec![s(&["HSET", &key, "f", &val, "g", "2"])],
            s(&["HGET", &key, "f"]),
        ),
        2 => (
            vec![s(&["ZADD", &key, "1.5", &val])],
            s(&["ZRANGE", &key, "0", "-1", "WITHSCORES"]),
        ),
        _ => (vec![s(&["SET", &key, &val])], s(&["GET", &key])),
    };
    if i.is_multiple_of(4) {
        cmds.push(s(&["PEXPIRE", &key, "100000000"]));
    }
    (key, cmds, read)
}

/// Loads `n` keys into the cluster, each to the node that owns its slot (as `nodes[0]`'s
/// CLUSTER NODES says), pipelined per node.
fn load_keys(nodes: &mut [CNode], n: usize) {
    let count = nodes.len();
    let owner_of = slot_owners(nodes);
    let mut conns: Vec<Conn> = nodes.iter().map(|x| x.srv.conn()).collect();
    let mut pending = vec![0usize; count];
    for i in 0..n {
        let (key, cmds, _) = key_cmds(i);
        let owner = owner_of[key_slot(key.as_bytes()) as usize];
        assert!(owner < count, "no owner for {key}");
        for c in cmds {
            conns[owner].send(&c).unwrap();
            pending[owner] += 1;
        }
        if pending[owner] >= 200 {
            for _ in 0..pending[owner] {
                let r = conns[owner].read_reply().unwrap();
                assert!(!r.starts_with(b"-"), "{}", escape(&r));
            }
            pending[owner] = 0;
        }
    }
    for (c, p) in conns.iter_mut().zip(pending) {
        for _ in 0..p {
            let r = c.read_reply().unwrap();
            assert!(!r.starts_with(b"-"), "{}", escape(&r));
        }
    }
}

/// Sends `argv` to the node owning its key, following MOVED (and ASK) redirections from
/// the first node; `conns` keeps a connection per port.
fn cluster_call(nodes: &[CNode], conns: &mut HashMap<u16, Conn>, argv: &[String]) -> Vec<u8> {
    let mut port = nodes[0].port();
    let mut asking = false;
    for _ in 0..5 {
        let c = conns.entry(port).or_insert_with(|| Conn::connect(port));
        if asking {
            assert_eq!(c.call(&["ASKING"]), b"+OK\r\n");
        }
        let r = c.call(argv);
        let text = String::from_utf8_lossy(&r).to_string();
        let redirect = text
            .strip_prefix("-MOVED ")
            .map(|t| (t, false))
            .or_else(|| text.strip_prefix("-ASK ").map(|t| (t, true)));
        match redirect {
            Some((t, ask)) => {
                let addr = t.split_whitespace().nth(1).expect("address");
                port = addr.rsplit(':').next().unwrap().parse().expect("port");
                asking = ask;
            }
            None => return r,
        }
    }
    panic!("too many redirections for {:?}", argv);
}

/// Every key's read-back reply and whether it has a TTL.
fn read_all(nodes: &[CNode], n: usize) -> Vec<(Vec<u8>, bool)> {
    let mut conns = HashMap::new();
    (0..n)
        .map(|i| {
            let (key, _, read) = key_cmds(i);
            let v = cluster_call(nodes, &mut conns, &read);
            let ttl = cluster_call(nodes, &mut conns, &["PTTL".to_string(), key]);
            (v, !ttl.starts_with(b":-"))
        })
        .collect()
}

/// `redis-cli --cluster check` through `node`: exit 0, all agree, all slots covered, no
/// open slot.
fn check_green(node: &CNode) {
    let addr = format!("127.0.0.1:{}", node.port());
    let (ok, out) = redis_cli(&["--cluster", "check", &addr]);
    assert!(ok, "--cluster check failed:\n{out}");
    assert!(
        out.contains("[OK] All nodes agree about slots configuration."),
        "{out}"
    );
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    assert!(
        !out.contains("[WARNING]") && !out.contains("[ERR]"),
        "{out}"
    );
}

fn reshard(via: &CNode, from: &str, to: &str, slots: usize) -> String {
    let addr = format!("127.0.0.1:{}", via.port());
    let n = slots.to_string();
    let (ok, out) = redis_cli(&[
        "--cluster",
        "reshard",
        &addr,
        "--cluster-from",
        from,
        "--cluster-to",
        to,
        "--cluster-slots",
        &n,
        "--cluster-yes",
    ]);
    assert!(ok, "reshard {from} -> {to} failed:\n{out}");
    out
}

/// Slots counted from `node`'s own CLUSTER NODES line.
fn my_slots(node: &mut CNode) -> usize {
    let id = node.id.clone();
    node.node(&id).map(|l| l.slot_count()).unwrap_or(0)
}

/// Three primaries `imps`; slots move 0 -> 2 and then 2 -> 1 with their keys.
fn reshard_scenario(imps: &[Impl]) {
    let mut nodes = start_nodes(imps, &Opts::default());
    create_cluster(&mut nodes, LIMIT).unwrap();
    const N: usize = 3000;
    load_keys(&mut nodes, N);
    let before = read_all(&nodes, N);
    assert!(before
        .iter()
        .all(|(v, _)| !v.starts_with(b"-") && v != b"$-1\r\n"));
    check_green(&nodes[0]);

    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let s0 = my_slots(&mut nodes[0]);
    reshard(&nodes[0], &ids[0], &ids[2], 300);
    assert_eq!(my_slots(&mut nodes[0]), s0 - 300, "{}", nodes[0].label());
    check_green(&nodes[0]);
    let s2 = my_slots(&mut nodes[2]);
    reshard(&nodes[1], &ids[2], &ids[1], 200);
    assert_eq!(my_slots(&mut nodes[2]), s2 - 200, "{}", nodes[2].label());
    check_green(&nodes[1]);

    // No key lost, none changed, TTLs kept; the keys are where the slots are.
    let after = read_all(&nodes, N);
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_eq!(escape(&a.0), escape(&b.0), "key:{i}");
        assert_eq!(a.1, b.1, "key:{i} TTL");
    }
    let total: i64 = nodes
        .iter_mut()
        .map(|n| {
            let r = n.text(&["DBSIZE"]);
            r.trim_start_matches(':').trim().parse::<i64>().unwrap()
        })
        .sum();
    assert_eq!(total, N as i64);
    for n in nodes.iter_mut() {
        let slots_keys = n.text(&["CLUSTER", "COUNTKEYSINSLOT", "0"]);
        assert!(!slots_keys.starts_with('-'), "{}", slots_keys);
    }
}

/// The test's own check: the same scenario on reference nodes only.
#[test]
fn reshard_reference_only() {
    let Some(bin) = require_reference() else {
        return;
    };
    let r = Impl::Reference(bin);
    reshard_scenario(&[r.clone(), r.clone(), r]);
}

/// A mixed cluster: slots move from a reference node to valkey-rs, then from valkey-rs to
/// the other reference node.
#[test]
fn reshard_mixed_reference_and_ours() {
    let Some(bin) = require_reference() else {
        return;
    };
    let r = Impl::Reference(bin);
    reshard_scenario(&[r.clone(), r, Impl::Ours]);
}

/// The workload of the issue's test 3, run by valkey-py's ValkeyCluster in a thread:
/// SET of new keys, GET of earlier ones, INCR of counters, MSET/MGET of hash-tagged pairs,
/// each acknowledged result recorded. It runs until the file `stop` appears, then checks
/// that every acknowledged key reads back and prints a JSON summary.
const WORKLOAD_PY: &str = r#"
import json, os, random, sys, threading, time
from valkey.cluster import ValkeyCluster
port, stop_path = int(sys.argv[1]), sys.argv[2]
rc = ValkeyCluster(host="127.0.0.1", port=port, socket_timeout=10)
acked, counters, pairs = {}, {}, {}
stats = {"ops": 0, "errors": 0, "gets_wrong": 0, "first_error": None}
def work():
    i = 0
    while not os.path.exists(stop_path):
        i += 1
        try:
            k = "wk:%d" % i
            rc.set(k, "v%d" % i); acked[k] = "v%d" % i
            if acked:
                g = random.choice(list(acked)[-500:])
                v = rc.get(g)
                if v is None or v.decode() != acked[g]:
                    stats["gets_wrong"] += 1
            c = "ctr:%d" % (i % 50)
            counters.setdefault(c, [0, 0])
            counters[c][1] += 1
            rc.incr(c); counters[c][0] += 1
            t = "{tag%d}" % (i % 300)
            rc.mset({t + ":a": str(i), t + ":b": str(i)}); pairs[t] = str(i)
            a, b = rc.mget(t + ":a", t + ":b")
            if a is None or b is None:
                stats["gets_wrong"] += 1
            stats["ops"] += 6
        except Exception as e:
            stats["errors"] += 1
            if stats["first_error"] is None:
                stats["first_error"] = repr(e)
        if i == 20:
            print("ready", flush=True)
th = threading.Thread(target=work); th.start(); th.join()
missing = [k for k, v in acked.items() if (rc.get(k) or b"").decode() != v]
bad_ctr = []
for c, (ok, tried) in counters.items():
    v = int(rc.get(c) or 0)
    if not ok <= v <= tried:
        bad_ctr.append((c, ok, v, tried))
bad_pairs = []
for t, v in pairs.items():
    a, b = rc.mget(t + ":a", t + ":b")
    if a is None or b is None or a.decode() != b.decode() or int(a) < int(v):
        bad_pairs.append((t, v, a, b))
print(json.dumps({"acked": len(acked), "missing": missing[:20], "n_missing": len(missing),
                  "bad_counters": bad_ctr, "bad_pairs": bad_pairs[:20], **stats}), flush=True)
"#;

fn python_has_valkey() -> bool {
    Command::new("python3")
        .args(["-c", "import valkey.cluster"])
        .status()
        .is_ok_and(|s| s.success())
}

/// The issue's test 3: valkey-rs primaries made by `redis-cli --cluster create`, the
/// ValkeyCluster workload running while `redis-cli --cluster reshard --cluster-slots 1000`
/// moves slots (and the keys loaded before) between two of them; every acknowledged write
/// reads back, the check is green, no key is lost. Three primaries with a replica each
/// (`--cluster-replicas 1`); the replicas end with their primary's DBSIZE.
#[test]
fn issue_test3_reshard_under_load() {
    if !python_has_valkey() {
        panic!("valkey-py is needed (pip install valkey)");
    }
    // VALKEY_TEST_TARGET=reference runs it on reference nodes (to check the test).
    let imp = match std::env::var("VALKEY_TEST_TARGET").as_deref() {
        Ok("reference") => Impl::Reference(require_reference().expect("reference")),
        _ => Impl::Ours,
    };
    let mut nodes = start_nodes(&vec![imp; 6], &Opts::default());
    let out = cli_create(&nodes, &["--cluster-replicas", "1"]);
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    common::cluster::wait_converged(&mut nodes, LIMIT).unwrap();
    let slots: usize = nodes.iter_mut().map(my_slots).sum();
    assert_eq!(slots, 16384);
    // Three primaries with one replica each, the replicas in sync.
    let mut primaries = Vec::new();
    let mut replicas = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        let id = n.id.clone();
        let line = n.node(&id).expect("own line");
        if line.is_primary() {
            primaries.push(i);
        } else {
            let p = line.primary.clone().expect("a replica's primary");
            replicas.push((i, p));
        }
    }
    assert_eq!((primaries.len(), replicas.len()), (3, 3));
    let index_of = |nodes: &[CNode], id: &str| nodes.iter().position(|n| n.id == id).unwrap();
    let pairs: Vec<(usize, usize)> = replicas
        .iter()
        .map(|(r, p)| (*r, index_of(&nodes, p)))
        .collect();
    for &(r, _) in &pairs {
        common::cluster::wait_ok(LIMIT, || {
            let info = nodes[r].text(&["INFO", "replication"]);
            match info.contains("master_link_status:up") {
                true => Ok(()),
                false => Err(info),
            }
        })
        .unwrap();
    }
    const N: usize = 6000;
    load_keys(&mut nodes, N);
    let before = read_all(&nodes, N);

    let dir = nodes[0].srv.dir.clone();
    let stop = dir.join("stop-workload");
    let mut py = Command::new("python3")
        .args([
            "-c",
            WORKLOAD_PY,
            &nodes[0].port().to_string(),
            stop.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(py.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
    assert_eq!(first, "ready", "workload did not start");

    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let t0 = Instant::now();
    let (from, to) = (primaries[0], primaries[1]);
    let s0 = my_slots(&mut nodes[from]);
    reshard(&nodes[from], &ids[from], &ids[to], 1000);
    let took = t0.elapsed();
    // Let the workload run a little on the new layout, then stop it.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&stop, b"").unwrap();
    let summary = lines.next().and_then(|l| l.ok()).unwrap_or_default();
    let status = py.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = py.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "workload failed: {summary}\n{err}");
    eprintln!("reshard of 1000 slots took {took:?}; workload: {summary}");
    let v: HashMap<String, serde_like::Value> = serde_like::parse(&summary);
    assert_eq!(v["n_missing"].num(), 0, "{summary}");
    assert_eq!(v["bad_counters"].raw, "[]", "{summary}");
    assert_eq!(v["bad_pairs"].raw, "[]", "{summary}");
    assert_eq!(v["gets_wrong"].num(), 0, "{summary}");
    assert!(v["acked"].num() > 20, "{summary}");

    assert_eq!(my_slots(&mut nodes[from]), s0 - 1000);
    check_green(&nodes[0]);
    let after = read_all(&nodes, N);
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_eq!(escape(&a.0), escape(&b.0), "key:{i}");
        assert_eq!(a.1, b.1, "key:{i} TTL");
    }
    // The replicas followed: the DELs of the source and the RESTOREs of the target
    // reached them.
    for &(r, p) in &pairs {
        let want = nodes[p].text(&["DBSIZE"]);
        common::cluster::wait_ok(LIMIT, || {
            let got = nodes[r].text(&["DBSIZE"]);
            match got == want {
                true => Ok(()),
                false => Err(format!("replica {got}, primary {want}")),
            }
        })
        .unwrap();
    }
}

/// Just enough JSON for the workload's one-line summary: top-level keys with their raw
/// value text.
mod serde_like {
    use std::collections::HashMap;

    pub struct Value {
        pub raw: String,
    }

    impl Value {
        pub fn num(&self) -> i64 {
            self.raw.trim().parse().unwrap_or(-1)
        }
    }

    pub fn parse(s: &str) -> HashMap<String, Value> {
        let s = s.trim();
        let body = s
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or_else(|| panic!("not a JSON object: {s}"));
        let mut out = HashMap::new();
        let (mut depth, mut in_str, mut start) = (0i32, false, 0usize);
        let bytes = body.as_bytes();
        let mut parts = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if in_str {
                if c == b'\\' {
                    i += 1;
                } else if c == b'"' {
                    in_str = false;
                }
            } else {
                match c {
                    b'"' => in_str = true,
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => depth -= 1,
                    b',' if depth == 0 => {
                        parts.push(&body[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        parts.push(&body[start..]);
        for p in parts {
            if let Some((k, v)) = p.split_once(':') {
                let k = k.trim().trim_matches('"').to_string();
                out.insert(
                    k,
                    Value {
                        raw: v.trim().to_string(),
                    },
                );
            }
        }
        out
    }
}
