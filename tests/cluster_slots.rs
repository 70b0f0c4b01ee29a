//! Cluster mode, client side (issue 13, work item B of docs/cluster-plan.md): key slots,
//! per-slot key counts, the redirection errors and the cluster-mode rules of SELECT and
//! SWAPDB, compared byte for byte with the reference on a one-node cluster.
//!
//! Both servers start with `--cluster-enabled yes` and a `cluster-port` picked free (ours
//! does not open the bus yet). The node gets its slots with CLUSTER ADDSLOTSRANGE; the
//! reference turns `cluster_state:ok` a little later (its writable delay), so every
//! scenario waits for the reference's state before comparing. MOVED and ASK need other
//! nodes: they are covered by the unit tests of src/cluster/redirect.rs.

mod common;

use std::time::Duration;

use common::cluster::{one_node_pair, wait_cluster_state};
use common::{same, Conn, Server};

/// A one-node pair serving every slot (once the reference says `cluster_state:ok`), and
/// a connection to each.
fn full_pair() -> Option<(Server, Server, Conn, Conn)> {
    let (o, r) = one_node_pair(&[])?;
    let (mut oc, mut rc) = (o.conn(), r.conn());
    same(
        &mut oc,
        &mut rc,
        &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"],
    );
    wait_cluster_state(&r, "ok");
    Some((o, r, oc, rc))
}

/// The elements of a flat array of bulk strings, sorted (GETKEYSINSLOT's order is the
/// order of a hash table).
fn sorted_bulks(reply: &[u8]) -> Vec<Vec<u8>> {
    let mut lines = reply.split(|&b| b == b'\n').skip(1);
    let mut v = Vec::new();
    while let (Some(_len), Some(item)) = (lines.next(), lines.next()) {
        v.push(item.strip_suffix(b"\r").unwrap_or(item).to_vec());
    }
    v.sort();
    v
}

#[test]
fn key_slots_counts_and_errors() {
    let Some((_o, _r, mut oc, mut rc)) = full_pair() else {
        return;
    };

    // Key slots, with the hash-tag rules (docs/cluster-plan.md 5.1).
    for k in [
        "key:1", "{user}a", "a{}b", "{}x", "a{b}{c}", "{{a}}", "foo", "", "}{x}", "a{bc",
    ] {
        same(&mut oc, &mut rc, &["CLUSTER", "KEYSLOT", k]);
    }
    // Per-slot counts and keys.
    for k in ["foo", "{user}a", "{user}b", "{user}c", "key:1"] {
        same(&mut oc, &mut rc, &["SET", k, "v"]);
    }
    same(&mut oc, &mut rc, &["HSET", "{user}h", "f", "v"]);
    let user = String::from_utf8(rc.call(&["CLUSTER", "KEYSLOT", "{user}"])).unwrap();
    let user = user.trim_start_matches(':').trim_end().to_string();
    assert_eq!(
        same(&mut oc, &mut rc, &["CLUSTER", "COUNTKEYSINSLOT", &user]),
        b":4\r\n"
    );
    same(&mut oc, &mut rc, &["CLUSTER", "COUNTKEYSINSLOT", "12182"]);
    same(&mut oc, &mut rc, &["CLUSTER", "COUNTKEYSINSLOT", "0"]);
    same(
        &mut oc,
        &mut rc,
        &["CLUSTER", "GETKEYSINSLOT", "12182", "10"],
    );
    same(&mut oc, &mut rc, &["CLUSTER", "GETKEYSINSLOT", &user, "0"]);
    for n in ["2", "10"] {
        let want = rc.call(&["CLUSTER", "GETKEYSINSLOT", &user, n]);
        let got = oc.call(&["CLUSTER", "GETKEYSINSLOT", &user, n]);
        assert_eq!(got[..4], want[..4], "GETKEYSINSLOT {} count", n);
        if n == "10" {
            assert_eq!(sorted_bulks(&got), sorted_bulks(&want));
        }
    }
    same(&mut oc, &mut rc, &["DEL", "{user}a", "{user}b"]);
    same(&mut oc, &mut rc, &["CLUSTER", "COUNTKEYSINSLOT", &user]);
    same(&mut oc, &mut rc, &["RENAME", "{user}c", "{user}d"]);
    let want = rc.call(&["CLUSTER", "GETKEYSINSLOT", &user, "10"]);
    let got = oc.call(&["CLUSTER", "GETKEYSINSLOT", &user, "10"]);
    assert_eq!(sorted_bulks(&got), sorted_bulks(&want));
    assert_eq!(sorted_bulks(&got).len(), 2);
    // The index survives a reload (keys inserted by the RDB loader) and follows the
    // deletion of an expired key.
    same(&mut oc, &mut rc, &["DEBUG", "RELOAD"]);
    same(&mut oc, &mut rc, &["CLUSTER", "COUNTKEYSINSLOT", &user]);
    same(&mut oc, &mut rc, &["SET", "{user}e", "v", "PX", "1"]);
    same(&mut oc, &mut rc, &["CLUSTER", "COUNTKEYSINSLOT", &user]);
    std::thread::sleep(Duration::from_millis(20));
    same(&mut oc, &mut rc, &["GET", "{user}e"]);
    same(&mut oc, &mut rc, &["CLUSTER", "COUNTKEYSINSLOT", &user]);
    same(&mut oc, &mut rc, &["FLUSHALL"]);
    same(&mut oc, &mut rc, &["CLUSTER", "COUNTKEYSINSLOT", &user]);
    same(&mut oc, &mut rc, &["CLUSTER", "GETKEYSINSLOT", &user, "10"]);
    same(&mut oc, &mut rc, &["SET", "{user}f", "v"]);
    same(&mut oc, &mut rc, &["FLUSHALL", "ASYNC"]);
    same(&mut oc, &mut rc, &["CLUSTER", "COUNTKEYSINSLOT", &user]);
    same(&mut oc, &mut rc, &["SET", "{user}g", "v"]);
    same(&mut oc, &mut rc, &["CLUSTER", "GETKEYSINSLOT", &user, "10"]);

    // Argument errors (5.4).
    for argv in [
        &["CLUSTER"][..],
        &["CLUSTER", "FOO"],
        &["CLUSTER", "KEYSLOT"],
        &["CLUSTER", "KEYSLOT", "a", "b"],
        &["CLUSTER", "COUNTKEYSINSLOT", "x"],
        &["CLUSTER", "COUNTKEYSINSLOT", "-1"],
        &["CLUSTER", "COUNTKEYSINSLOT", "16384"],
        &["CLUSTER", "COUNTKEYSINSLOT", "1", "2"],
        &["CLUSTER", "GETKEYSINSLOT", "x", "1"],
        &["CLUSTER", "GETKEYSINSLOT", "1", "x"],
        &["CLUSTER", "GETKEYSINSLOT", "1", "-1"],
        &["CLUSTER", "GETKEYSINSLOT", "16384", "1"],
        &["CLUSTER", "GETKEYSINSLOT", "-1", "1"],
        &["CLUSTER", "GETKEYSINSLOT", "1"],
        &["CLUSTER", "ADDSLOTS", "x"],
        &["CLUSTER", "ADDSLOTS", "16384"],
        &["CLUSTER", "ADDSLOTS", "-1"],
        &["CLUSTER", "ADDSLOTS", "0"],
        &["CLUSTER", "ADDSLOTS", "1", "1"],
        &["CLUSTER", "ADDSLOTS"],
        &["CLUSTER", "ADDSLOTSRANGE", "1"],
        &["CLUSTER", "ADDSLOTSRANGE", "1", "2", "3"],
        &["CLUSTER", "ADDSLOTSRANGE", "5", "1"],
        &["CLUSTER", "ADDSLOTSRANGE", "0", "x"],
        &["CLUSTER", "DELSLOTS", "20", "20"],
        &["CLUSTER", "DELSLOTSRANGE", "9", "8"],
        &["ASKING", "x"],
        &["READONLY", "x"],
        &["READWRITE", "x"],
    ] {
        same(&mut oc, &mut rc, argv);
    }
    // DELSLOTS then ADDSLOTS (a slot given twice is refused before any change).
    same(&mut oc, &mut rc, &["CLUSTER", "DELSLOTS", "5", "6"]);
    same(&mut oc, &mut rc, &["CLUSTER", "DELSLOTS", "5"]);
    same(&mut oc, &mut rc, &["CLUSTER", "DELSLOTSRANGE", "4", "7"]);
    same(&mut oc, &mut rc, &["CLUSTER", "ADDSLOTS", "5", "7", "5"]);
    same(
        &mut oc,
        &mut rc,
        &["CLUSTER", "ADDSLOTSRANGE", "5", "6", "6", "6"],
    );
    same(&mut oc, &mut rc, &["CLUSTER", "ADDSLOTSRANGE", "5", "6"]);
    same(&mut oc, &mut rc, &["CLUSTER", "ADDSLOTS", "5"]);

    // The cluster-mode rules of databases.
    for argv in [
        &["SELECT", "1"][..],
        &["SELECT", "0"],
        &["SWAPDB", "0", "1"],
        &["SWAPDB", "x", "1"],
        &["SET", "a", "1"],
        &["MOVE", "a", "1"],
        &["COPY", "a", "{a}b", "DB", "1"],
        &["ASKING"],
        &["READONLY"],
        &["READWRITE"],
        &["INFO", "cluster"],
    ] {
        same(&mut oc, &mut rc, argv);
    }
    assert_eq!(server_mode(&mut oc), server_mode(&mut rc));
    assert_eq!(server_mode(&mut rc), "server_mode:cluster");
}

#[test]
fn crossslot_and_transactions() {
    let Some((_o, _r, mut oc, mut rc)) = full_pair() else {
        return;
    };
    for argv in [
        &["MSET", "a", "1", "b", "2"][..],
        &["MSET", "{x}a", "1", "{x}b", "2"],
        &["MGET", "a", "b"],
        &["MGET", "{x}a", "{x}b", "{x}c"],
        &["MGET", "a", "a"],
        &["DEL", "a", "b"],
        &["EXISTS", "{x}a", "a"],
        &["RENAME", "{x}a", "b"],
        &["SINTERSTORE", "{x}d", "{x}s", "{y}s"],
        &["ZUNIONSTORE", "{x}d", "2", "{x}s", "t"],
        &["ZUNIONSTORE", "{x}d", "x", "{x}s", "t"],
        &["BLPOP", "l1", "l2", "0"],
        &["LMPOP", "2", "l1", "l2", "LEFT"],
        &["SPUBLISH", "ch", "m"],
        &["PUBLISH", "ch", "m"],
        &["SSUBSCRIBE", "a", "b"],
        &["SUNSUBSCRIBE", "a", "b"],
        &["SUNSUBSCRIBE", "{x}a", "{x}b"],
        &["PING"],
        // MULTI/EXEC: the queued commands' slots must agree at EXEC.
        &["MULTI"],
        &["SET", "a", "1"],
        &["SET", "b", "2"],
        &["EXEC"],
        &["MULTI"],
        &["MSET", "a", "1", "b", "2"],
        &["SET", "{x}a", "1"],
        &["EXEC"],
        &["MULTI"],
        &["SET", "{x}a", "1"],
        &["GET", "{x}b"],
        &["PING"],
        &["EXEC"],
        &["MULTI"],
        &["PING"],
        &["EXEC"],
        &["INFO", "cluster"],
    ] {
        same(&mut oc, &mut rc, argv);
    }
    // The rejections are counted as upstream (errorstats and rejected_calls).
    same(&mut oc, &mut rc, &["INFO", "errorstats"]);
    let stat = |c: &mut Conn, cmd: &str| -> String {
        let info = String::from_utf8(c.call(&["INFO", "commandstats"])).unwrap();
        info.lines()
            .find(|l| l.starts_with(&format!("cmdstat_{}:", cmd)))
            .and_then(|l| l.split(',').find(|f| f.starts_with("rejected_calls=")))
            .unwrap_or_default()
            .to_string()
    };
    for cmd in ["mset", "mget", "exec", "set"] {
        assert_eq!(
            stat(&mut oc, cmd),
            stat(&mut rc, cmd),
            "{} rejected_calls",
            cmd
        );
    }
}

#[test]
fn clusterdown_texts() {
    let Some((o, r)) = one_node_pair(&[]) else {
        return;
    };
    let (mut oc, mut rc) = (o.conn(), r.conn());
    // No slot at all.
    same(&mut oc, &mut rc, &["GET", "b"]);
    same(&mut oc, &mut rc, &["PING"]);
    // Half of the slots: "a" (15495) is unassigned, "b" (3300) served here, and the
    // cluster is down (full coverage required).
    same(&mut oc, &mut rc, &["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]);
    for argv in [
        &["GET", "a"][..],
        &["GET", "b"],
        &["SET", "b", "1"],
        &["MGET", "b", "a"],
        &["MGET", "a", "b"],
        &["DBSIZE"],
        &["SPUBLISH", "b", "m"],
        &["MULTI"],
        &["GET", "b"],
        &["EXEC"],
        &["CONFIG", "SET", "cluster-allow-reads-when-down", "yes"],
        &["GET", "b"],
        &["SET", "b", "1"],
        &["GET", "a"],
        &["MULTI"],
        &["GET", "b"],
        &["SET", "b", "1"],
        &["EXEC"],
        &["CONFIG", "SET", "cluster-allow-reads-when-down", "no"],
        &["CONFIG", "SET", "cluster-allow-pubsubshard-when-down", "no"],
        &["SPUBLISH", "b", "m"],
        &["CONFIG", "SET", "cluster-require-full-coverage", "no"],
    ] {
        same(&mut oc, &mut rc, argv);
    }
    // Without full coverage the served half works (the reference updates its state
    // from its cron).
    wait_cluster_state(&r, "ok");
    for argv in [
        &["SET", "b", "1"][..],
        &["GET", "b"],
        &["GET", "a"],
        &["SPUBLISH", "b", "m"],
        &["CLUSTER", "DELSLOTSRANGE", "0", "8191"],
        &["GET", "b"],
        &["INFO", "errorstats"],
    ] {
        same(&mut oc, &mut rc, argv);
    }
}

#[test]
fn standalone_mode() {
    let Some((o, r)) = common::ours_and_reference(&[]) else {
        return;
    };
    let (mut oc, mut rc) = (o.conn(), r.conn());
    for argv in [
        &["CLUSTER", "KEYSLOT", "{user}a"][..],
        &["CLUSTER", "COUNTKEYSINSLOT", "1"],
        &["CLUSTER", "GETKEYSINSLOT", "1", "1"],
        &["CLUSTER", "ADDSLOTS", "1"],
        &["CLUSTER", "ADDSLOTSRANGE", "1", "2"],
        &["CLUSTER", "KEYSLOT"],
        &["ASKING"],
        &["READONLY"],
        &["READWRITE"],
        &["MSET", "a", "1", "b", "2"],
        &["SELECT", "1"],
        &["SWAPDB", "0", "1"],
        &["INFO", "cluster"],
        &["COMMAND", "INFO", "asking", "readonly", "readwrite"],
        &["COMMAND", "DOCS", "asking"],
        &["COMMAND", "DOCS", "readonly"],
    ] {
        same(&mut oc, &mut rc, argv);
    }
    assert_eq!(server_mode(&mut oc), "server_mode:standalone");
    assert_eq!(server_mode(&mut rc), "server_mode:standalone");
}

/// The `server_mode:` line of INFO server.
fn server_mode(c: &mut Conn) -> String {
    let info = String::from_utf8(c.call(&["INFO", "server"])).unwrap();
    let line = info.lines().find(|l| l.starts_with("server_mode:"));
    line.unwrap_or_default().to_string()
}

/// Scripts in cluster mode: a script declaring `no-cluster` is refused before it runs
/// (EVAL and FCALL), one without it runs.
#[test]
fn no_cluster_script_flag() {
    let Some((_ours, _reference, mut o, mut r)) = full_pair() else {
        return;
    };
    same(
        &mut o,
        &mut r,
        &["EVAL", "#!lua flags=no-cluster\nreturn 1", "0"],
    );
    same(
        &mut o,
        &mut r,
        &["EVAL", "#!lua flags=no-writes\nreturn 1", "0"],
    );
    same(&mut o, &mut r, &["EVAL", "return 2", "0"]);
    let lib = "#!lua name=nc\nserver.register_function{function_name='nc', \
               callback=function() return 1 end, flags={'no-cluster'}}";
    same(&mut o, &mut r, &["FUNCTION", "LOAD", lib]);
    same(&mut o, &mut r, &["FCALL", "nc", "0"]);
}
