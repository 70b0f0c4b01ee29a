//! Scripts in cluster mode (issue 12): the cluster checks of every `server.call`
//! (upstream's scriptVerifyClusterState) and of EVAL/FCALL themselves, compared byte for
//! byte with the reference on one-node clusters.
//!
//! Each server serves half of the slots (ADDSLOTSRANGE 0 8191): `b` (3300) and `c` (7365)
//! are served here, `a` (15495) is not. With `cluster-require-full-coverage yes` (the
//! default) the cluster is down; after setting it to `no` the reference turns
//! `cluster_state:ok` from its cron, so the scenarios wait for it.
//!
//! `two_nodes_moved` joins two nodes over the bus for the MOVED case.
//! `migrating_importing_replica` covers a MIGRATING/IMPORTING slot (ASK and TRYAGAIN
//! before a script runs and inside it, ASKING then EVAL/FCALL) and READONLY callers of
//! EVAL_RO/FCALL_RO on a replica (CLUSTER REPLICATE), reads and writes.
//!
//! Valkey 9.1.2 keeps a script client broken after a command of a script touches keys
//! of two slots (`redis.call('mget','b','c')`): every later `server.call` of any script
//! on that node fails with `Attempted to access a non local key in a cluster node`, even
//! PING. We do not copy that; the case runs last, once, on each server.

mod common;

use std::time::Duration;

use common::cluster::{one_node_pair, wait_cluster_state};
use common::{escape, require_reference, same, wait_for, Conn, Server};

/// Ours and the reference as one-node clusters, each serving slots 0-8191.
fn pair() -> Option<(Server, Server)> {
    let (o, r) = one_node_pair(&[])?;
    for s in [&o, &r] {
        assert_eq!(
            s.conn().call(&["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]),
            b"+OK\r\n"
        );
    }
    Some((o, r))
}

#[track_caller]
fn all_same(o: &mut Conn, r: &mut Conn, lines: &[&[&str]]) {
    for argv in lines {
        same(o, r, argv);
    }
}

/// A library whose functions touch the keys they are given and others.
const LIB: &str = "#!lua name=cl\n\
    server.register_function('getk', function(k, a) return server.call('get', k[1]) end)\n\
    server.register_function('setk', function(k, a) return server.call('set', k[1], a[1]) end)\n\
    server.register_function{function_name='rgetk', callback=function(k, a) \
        return server.call('get', k[1]) end, flags={'no-writes'}}\n\
    server.register_function('two', function(k, a) \
        server.call('set', 'b', 1) return server.call('set', 'c', 1) end)\n\
    server.register_function{function_name='twox', callback=function(k, a) \
        server.call('set', 'b', 1) return server.call('set', 'c', 1) end, \
        flags={'allow-cross-slot-keys'}}\n\
    server.register_function('geta', function(k, a) return server.pcall('get', 'a') end)";

#[test]
fn cluster_down() {
    let Some((ours, reference)) = pair() else {
        return;
    };
    let (mut o, mut r) = (ours.conn(), reference.conn());
    same(&mut o, &mut r, &["FUNCTION", "LOAD", LIB]);
    all_same(
        &mut o,
        &mut r,
        &[
            // Down: every keyed command of a script is refused, keyless ones run.
            &["EVAL", "return server.call('get', 'b')", "0"],
            &["EVAL", "return server.call('set', 'b', 1)", "0"],
            &["EVAL", "return server.call('object', 'encoding', 'b')", "0"],
            &["EVAL", "return server.pcall('get', 'b')", "0"],
            &["EVAL", "return server.call('ping')", "0"],
            &["EVAL", "return server.call('dbsize')", "0"],
            &["EVAL", "#!lua\nreturn server.call('get', 'b')", "0"],
            &["EVAL", "return 1", "1", "b"],
            &["FCALL", "getk", "1", "b"],
            &["FCALL", "geta", "0"],
            // Reads allowed while down: writes of a script get their own text, and an
            // EVAL/FCALL that may write (by its flags) is refused before it runs.
            &["CONFIG", "SET", "cluster-allow-reads-when-down", "yes"],
            &["EVAL", "return server.call('get', 'b')", "0"],
            &["EVAL", "return server.call('set', 'b', 1)", "0"],
            &["EVAL", "return server.call('incr', 'b')", "1", "b"],
            &["EVAL", "#!lua\nreturn 1", "1", "b"],
            &["EVAL", "#!lua\nreturn 1", "0"],
            &[
                "EVAL",
                "#!lua flags=no-writes\nreturn server.call('get', KEYS[1])",
                "1",
                "b",
            ],
            // The cluster check comes before the read-only-script check (9.1.2).
            &[
                "EVAL",
                "#!lua flags=no-writes\nreturn server.call('set', KEYS[1], 1)",
                "1",
                "b",
            ],
            &["EVAL_RO", "return server.call('get', KEYS[1])", "1", "b"],
            &["EVAL_RO", "return server.call('set', KEYS[1], 1)", "1", "b"],
            &["FCALL", "getk", "1", "b"],
            &["FCALL", "setk", "1", "b", "1"],
            &["FCALL", "rgetk", "1", "b"],
            &["FCALL_RO", "rgetk", "1", "b"],
            &["CONFIG", "SET", "cluster-allow-reads-when-down", "no"],
            &["INFO", "errorstats"],
        ],
    );
}

#[test]
fn keys_and_slots() {
    let Some((ours, reference)) = pair() else {
        return;
    };
    let (mut o, mut r) = (ours.conn(), reference.conn());
    same(
        &mut o,
        &mut r,
        &["CONFIG", "SET", "cluster-require-full-coverage", "no"],
    );
    wait_cluster_state(&reference, "ok");
    same(&mut o, &mut r, &["FUNCTION", "LOAD", LIB]);
    let checks: &[&[&str]] = &[
        &["CLUSTER", "KEYSLOT", "a"],
        &["CLUSTER", "KEYSLOT", "b"],
        &["CLUSTER", "KEYSLOT", "c"],
        // Keys served here.
        &["EVAL", "return server.call('set', 'b', 'v')", "0"],
        &["EVAL", "return server.call('get', KEYS[1])", "1", "b"],
        &["EVAL", "return {server.call('incr', 'n{b}'), server.call('get', 'b')}", "0"],
        // A slot nobody serves: refused inside the script, and before it runs when
        // declared.
        &["EVAL", "return server.call('get', 'a')", "0"],
        &["EVAL", "return server.pcall('get', 'a')", "0"],
        &["EVAL", "local ok, e = pcall(server.call, 'get', 'a') return e", "0"],
        &["EVAL", "#!lua\nreturn server.call('set', 'a', 1)", "0"],
        &["EVAL", "return 1", "1", "a"],
        &["EVAL", "return 1", "2", "b", "c"],
        &["EVAL", "return 1", "2", "b", "{b}x"],
        &["FCALL", "getk", "1", "a"],
        &["FCALL", "geta", "0"],
        // Compatibility mode (no shebang): keys of several slots across calls.
        &["EVAL", "server.call('set', 'b', 1) return server.call('set', 'c', 2)", "0"],
        &["EVAL", "return server.call('get', 'c')", "1", "b"],
        // With a shebang: every key in one slot, the declared keys' one first.
        &["EVAL", "#!lua\nserver.call('set', 'b', 1) return server.call('set', '{b}x', 2)", "0"],
        &["EVAL", "#!lua\nserver.call('set', 'b', 1) return server.call('set', 'c', 2)", "0"],
        &["EVAL", "#!lua\nreturn server.call('get', 'c')", "1", "b"],
        &["EVAL", "#!lua\nreturn server.call('get', '{b}z')", "1", "b"],
        &["EVAL", "#!lua\nreturn server.pcall('get', 'c')", "1", "b"],
        &["EVAL", "#!lua\nserver.call('ping') return server.call('get', 'c')", "1", "b"],
        &["EVAL", "#!lua flags=allow-cross-slot-keys\nreturn server.call('get', 'c')", "1", "b"],
        &[
            "EVAL",
            "#!lua flags=allow-cross-slot-keys\nserver.call('set', 'b', 1) return server.call('set', 'c', 2)",
            "0",
        ],
        // A refused call keeps the script's slot (the error is catchable).
        &[
            "EVAL",
            "#!lua\nlocal e = server.pcall('get', 'c') return {e, server.call('get', 'b')}",
            "1",
            "b",
        ],
        // Functions: no cross-slot keys unless flagged.
        &["FCALL", "two", "0"],
        &["FCALL", "twox", "0"],
        &["FCALL", "getk", "1", "c"],
        &["FCALL_RO", "rgetk", "1", "c"],
        &["GET", "b"],
        &["GET", "c"],
    ];
    all_same(&mut o, &mut r, checks);
    // The order of the checks: OOM, then ACL, then cluster, then read-only scripts.
    let lines: &[&[&str]] = &[
        &["ACL", "SETUSER", "u", "on", "nopass", "~b", "+@all"],
        &["ACL", "SETUSER", "w", "on", "nopass", "~*", "+@all", "-set"],
        &["AUTH", "u", "x"],
        &["EVAL", "return server.call('get', 'a')", "0"],
        &["EVAL", "return server.call('get', 'c')", "0"],
        &["AUTH", "w", "x"],
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn server.call('set', 'b', 1)",
            "0",
        ],
        &["EVAL", "return server.call('set', 'a', 1)", "0"],
        &["AUTH", "default", "x"],
        &["CONFIG", "SET", "maxmemory", "1"],
        &["EVAL", "return server.call('set', 'a', 1)", "0"],
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn server.call('set', 'b', 1)",
            "0",
        ],
        &[
            "EVAL",
            "#!lua flags=allow-oom\nreturn server.call('set', 'a', 1)",
            "0",
        ],
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn server.call('publish', 'b', 'x')",
            "0",
        ],
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn server.call('pfcount', 'b')",
            "0",
        ],
        &["CONFIG", "SET", "maxmemory", "0"],
        &["INFO", "errorstats"],
        &["ACL", "LOG"],
    ];
    for argv in lines {
        if argv[0] == "ACL" && argv[1] == "LOG" {
            // Entries carry times and client ids: compare their count and reasons.
            let (a, b) = (o.call(argv), r.call(argv));
            assert_eq!(a[..4], b[..4], "ACL LOG length");
            continue;
        }
        same(&mut o, &mut r, argv);
    }
    // Last (see the module comment): one command with keys of two slots.
    same(
        &mut o,
        &mut r,
        &["EVAL", "return server.call('mget', 'b', 'c')", "0"],
    );
    // Ours keeps working after it.
    assert_eq!(
        o.call(&["EVAL", "return server.call('get', 'b')", "0"]),
        b"$1\r\n1\r\n"
    );
}

/// Two primaries joined over the bus (node 0: slots 0-8191, node 1: the rest), ours and
/// the reference: keys of the other node inside scripts (the MOVED case: one text),
/// declared keys of the other node (MOVED before the script runs, port normalised).
#[test]
fn two_nodes_moved() {
    use common::cluster::{create_cluster, CNode, Impl, Opts};
    let Some(bin) = require_reference() else {
        return;
    };
    let lines: &[&[&str]] = &[
        &["EVAL", "return server.call('get', 'a')", "0"],
        &["EVAL", "return server.pcall('set', 'a', 1)", "0"],
        &["EVAL", "return server.call('get', 'b')", "0"],
        &["EVAL", "return 1", "1", "a"],
        &[
            "EVAL",
            "#!lua\nserver.call('set', 'b', 1) return server.call('get', 'a')",
            "0",
        ],
        &[
            "EVAL",
            "#!lua flags=allow-cross-slot-keys\nreturn server.call('get', 'a')",
            "0",
        ],
        &["READONLY"],
        &["EVAL_RO", "return server.call('get', 'a')", "0"],
        &["GET", "b"],
    ];
    let mut got = Vec::new();
    for imp in [Impl::Ours, Impl::Reference(bin)] {
        let mut nodes = vec![
            CNode::start(&imp, &Opts::default()),
            CNode::start(&imp, &Opts::default()),
        ];
        create_cluster(&mut nodes, Duration::from_secs(30)).expect("cluster up");
        let other = nodes[1].port().to_string();
        let mut out = Vec::new();
        for argv in lines {
            let r = escape(&nodes[0].call(argv));
            out.push(r.replace(&other, "<port>"));
        }
        got.push(out);
    }
    assert_eq!(got[0], got[1], "ours, reference");
    assert!(got[0][0].contains("non local key") && got[0][3].contains("MOVED"));
}

/// Three nodes, ours and the reference: primaries n0 (slots 0-8191) and n1 (the rest),
/// and n2, a replica of n0 (CLUSTER REPLICATE). Slot 3300 (`b`) is MIGRATING on n0 to n1
/// and IMPORTING on n1 from n0; `b` exists on n0, `{b}z` and `{b}w` do not. Scenarios:
/// a missing key of the migrating slot inside scripts and declared (ASK), several keys
/// with some missing (TRYAGAIN), ASKING then EVAL/FCALL on the importing node, and
/// EVAL_RO/FCALL_RO from a READONLY client on the replica (reads and writes). Replies are
/// compared byte for byte with ports normalised.
#[test]
fn migrating_importing_replica() {
    use common::cluster::{create_cluster, wait_converged, CNode, Impl, Opts};
    let Some(bin) = require_reference() else {
        return;
    };
    const MLIB: &str = "#!lua name=mg\n\
        server.register_function('mgetk', function(k, a) return server.call('mget', unpack(k)) end)\n\
        server.register_function{function_name='rsetk', callback=function(k, a) \
            return server.call('set', k[1], 1) end, flags={'no-writes'}}";
    // (node index, argv)
    let lines: &[(usize, &[&str])] = &[
        // n0, MIGRATING: present and missing keys inside scripts.
        (0, &["EVAL", "return server.call('get', 'b')", "0"]),
        (0, &["EVAL", "return server.call('get', '{b}z')", "0"]),
        (0, &["EVAL", "return server.pcall('get', '{b}z')", "0"]),
        (0, &["EVAL", "return server.call('set', '{b}z', 1)", "0"]),
        (
            0,
            &["EVAL", "#!lua\nreturn server.call('get', '{b}z')", "0"],
        ),
        (0, &["EVAL", "return server.call('get', KEYS[1])", "1", "b"]),
        (
            0,
            &["EVAL", "return server.call('get', KEYS[1])", "1", "{b}z"],
        ),
        (0, &["FCALL", "getk", "1", "b"]),
        (0, &["FCALL", "getk", "1", "{b}z"]),
        (0, &["FCALL", "geta", "0"]),
        // Several keys, some missing (TRYAGAIN), all missing (ASK).
        (0, &["EVAL", "return server.call('mget', 'b', '{b}z')", "0"]),
        (
            0,
            &["EVAL", "return server.pcall('mget', '{b}w', '{b}z')", "0"],
        ),
        (0, &["EVAL", "return 1", "2", "b", "{b}z"]),
        (0, &["EVAL", "return 1", "2", "{b}w", "{b}z"]),
        (0, &["FCALL", "mgetk", "2", "b", "{b}z"]),
        (0, &["MGET", "b", "{b}z"]),
        (0, &["EVAL", "return server.call('get', 'b')", "0"]),
        // n1, IMPORTING: without ASKING (MOVED), then ASKING before each script.
        (1, &["EVAL", "return server.call('get', '{b}z')", "0"]),
        (1, &["EVAL", "return 1", "1", "{b}z"]),
        (1, &["ASKING"]),
        (
            1,
            &["EVAL", "return server.call('get', KEYS[1])", "1", "{b}z"],
        ),
        (1, &["ASKING"]),
        (1, &["EVAL", "return server.call('get', '{b}z')", "0"]),
        (1, &["ASKING"]),
        (
            1,
            &[
                "EVAL",
                "return server.call('set', KEYS[1], 'i')",
                "1",
                "{b}z",
            ],
        ),
        (1, &["GET", "{b}z"]),
        (1, &["ASKING"]),
        (1, &["GET", "{b}z"]),
        (1, &["ASKING"]),
        (
            1,
            &[
                "EVAL",
                "return server.call('mget', KEYS[1], KEYS[2])",
                "2",
                "{b}z",
                "{b}w",
            ],
        ),
        (1, &["ASKING"]),
        (
            1,
            &[
                "EVAL",
                "return server.call('mget', KEYS[1], KEYS[2])",
                "2",
                "{b}w",
                "{b}v",
            ],
        ),
        (1, &["ASKING"]),
        (1, &["FCALL", "getk", "1", "{b}z"]),
        (1, &["ASKING"]),
        (1, &["EVAL", "return server.call('get', KEYS[1])", "1", "b"]),
        (
            1,
            &["EVAL", "return server.call('get', KEYS[1])", "1", "{b}z"],
        ),
        // n2, replica of n0: without READONLY, then with it.
        (
            2,
            &["EVAL_RO", "return server.call('get', KEYS[1])", "1", "c"],
        ),
        (2, &["EVAL_RO", "return server.call('get', 'c')", "0"]),
        (2, &["FCALL_RO", "rgetk", "1", "c"]),
        (2, &["READONLY"]),
        (
            2,
            &["EVAL_RO", "return server.call('get', KEYS[1])", "1", "c"],
        ),
        (2, &["EVAL_RO", "return server.call('get', 'c')", "0"]),
        (2, &["EVAL_RO", "return server.call('get', 'b')", "0"]),
        (2, &["EVAL_RO", "return server.call('get', 'a')", "0"]),
        (
            2,
            &[
                "EVAL_RO",
                "return server.call('mget', KEYS[1], 'b')",
                "1",
                "b",
            ],
        ),
        (2, &["FCALL_RO", "rgetk", "1", "c"]),
        (2, &["FCALL_RO", "rgetk", "1", "a"]),
        (
            2,
            &[
                "EVAL",
                "#!lua flags=no-writes\nreturn server.call('get', KEYS[1])",
                "1",
                "c",
            ],
        ),
        (2, &["EVAL", "return server.call('get', KEYS[1])", "1", "c"]),
        // Writes there.
        (
            2,
            &["EVAL_RO", "return server.call('set', KEYS[1], 1)", "1", "c"],
        ),
        (2, &["EVAL_RO", "return server.pcall('set', 'c', 1)", "0"]),
        (
            2,
            &["EVAL", "return server.call('set', KEYS[1], 1)", "1", "c"],
        ),
        (2, &["EVAL", "return server.call('set', 'c', 1)", "0"]),
        (
            2,
            &["EVAL", "#!lua\nreturn server.call('set', 'c', 1)", "0"],
        ),
        (2, &["FCALL_RO", "rsetk", "1", "c"]),
        (2, &["FCALL", "setk", "1", "c", "1"]),
        (2, &["GET", "c"]),
        (2, &["READWRITE"]),
        (2, &["EVAL_RO", "return server.call('get', 'c')", "0"]),
        (0, &["EVAL", "return server.call('get', 'b')", "0"]),
        (0, &["INFO", "errorstats"]),
        (1, &["INFO", "errorstats"]),
        (2, &["INFO", "errorstats"]),
    ];
    let mut got = Vec::new();
    for imp in [Impl::Ours, Impl::Reference(bin)] {
        let mut nodes = vec![
            CNode::start(&imp, &Opts::default()),
            CNode::start(&imp, &Opts::default()),
        ];
        create_cluster(&mut nodes, Duration::from_secs(20)).expect("cluster up");
        let mut n2 = CNode::start(&imp, &Opts::default());
        n2.meet(&nodes[0]);
        nodes.push(n2);
        wait_converged(&mut nodes, Duration::from_secs(20)).expect("replica joined");
        let p0 = nodes[0].id.clone();
        let p1 = nodes[1].id.clone();
        nodes[2].ok(&["CLUSTER", "REPLICATE", &p0]);
        nodes[0].ok(&["SET", "b", "v"]);
        nodes[0].ok(&["SET", "c", "w"]);
        for node in nodes.iter_mut().take(2) {
            let r = node.call(&["FUNCTION", "LOAD", MLIB]);
            assert_eq!(r, b"$2\r\nmg\r\n");
            let r = node.call(&["FUNCTION", "LOAD", LIB]);
            assert_eq!(r, b"$2\r\ncl\r\n");
        }
        let ok = wait_for(Duration::from_secs(20), || {
            common::repl::link_up(&mut nodes[2].c) && nodes[2].call(&["DBSIZE"]) == b":2\r\n"
        });
        assert!(ok, "{}: replica never synced", nodes[2].label());
        nodes[0].ok(&["CLUSTER", "SETSLOT", "3300", "MIGRATING", &p1]);
        nodes[1].ok(&["CLUSTER", "SETSLOT", "3300", "IMPORTING", &p0]);
        let ports: Vec<String> = nodes.iter().map(|n| n.port().to_string()).collect();
        let mut out = Vec::new();
        for (i, argv) in lines {
            let mut r = escape(&nodes[*i].call(argv));
            for (j, p) in ports.iter().enumerate() {
                r = r.replace(p.as_str(), &format!("<p{}>", j));
            }
            out.push(format!("n{} {:?} -> {}", i, argv, r));
        }
        got.push(out);
    }
    for (o, r) in got[0].iter().zip(&got[1]) {
        eprintln!("reference: {}", r);
        if o != r {
            eprintln!("     ours: {}", o);
        }
    }
    assert_eq!(got[0], got[1], "ours, reference");
    // The scenario reached the states it is about.
    let all = got[0].join("\n");
    for want in [
        "-ASK 3300",
        "-TRYAGAIN",
        "n1 [\"FCALL\", \"getk\", \"1\", \"{b}z\"] -> $1\\r\\ni",
        "-READONLY",
    ] {
        assert!(all.contains(want), "no {:?} in:\n{}", want, all);
    }
}
