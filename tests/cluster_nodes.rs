//! Cluster mode, the node table (issue 13, work item C of docs/cluster-plan.md): nodes.conf,
//! the CLUSTER text outputs (NODES, SLOTS, SHARDS, INFO, MYID...) and the local slot and
//! epoch commands (SETSLOT, BUMPEPOCH, SET-CONFIG-EPOCH, FLUSHSLOTS, RESET, FORGET),
//! compared with the reference after the same command sequences.
//!
//! Node names, shard ids and ports necessarily differ between the two servers: they are
//! replaced by placeholders before comparing. Other nodes come from a nodes.conf written
//! by the test (there is no bus yet), loaded by both servers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{escape, free_port, require_reference, wait_for, Conn, Server};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory of this test (removed by [`Dir`]'s drop).
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let d = std::env::temp_dir().join(format!(
            "valkey-rs-cluster-nodes-{}-{}",
            std::process::id(),
            n
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create dir");
        Dir(d)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One node under test, with what differs between ours and the reference.
struct Node {
    srv: Server,
    c: Conn,
    cport: u16,
    conf: PathBuf,
}

impl Node {
    fn start(bin: Option<&Path>, conf: &Path) -> Node {
        let cport = free_port();
        let cp = cport.to_string();
        let cf = conf.to_string_lossy().into_owned();
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            &cp,
            "--cluster-config-file",
            &cf,
        ];
        let srv = match bin {
            Some(b) => Server::reference(b, &args),
            None => Server::ours(&args),
        };
        let c = srv.conn();
        Node {
            srv,
            c,
            cport,
            conf: conf.to_path_buf(),
        }
    }

    fn call(&mut self, argv: &[&str]) -> Vec<u8> {
        self.c.call(argv)
    }

    fn bulk(&mut self, argv: &[&str]) -> String {
        let r = self.call(argv);
        let s = String::from_utf8_lossy(&r).into_owned();
        let body = s.split_once("\r\n").map(|x| x.1).unwrap_or("");
        body.strip_suffix("\r\n").unwrap_or(body).to_string()
    }

    fn myid(&mut self) -> String {
        self.bulk(&["CLUSTER", "MYID"])
    }

    fn shardid(&mut self) -> String {
        self.bulk(&["CLUSTER", "MYSHARDID"])
    }

    /// `text` with this node's name, shard id and ports replaced by placeholders.
    fn norm(&mut self, text: &[u8]) -> String {
        let id = self.myid();
        let sid = self.shardid();
        let s = escape(text);
        s.replace(&id, "<MYID>")
            .replace(&sid, "<SHARDID>")
            .replace(&format!("@{}", self.cport), "@<CPORT>")
            .replace(&self.srv.port.to_string(), "<PORT>")
    }

    fn conf_text(&self) -> String {
        std::fs::read_to_string(&self.conf).expect("read nodes.conf")
    }
}

/// Sends `argv` to both, compares the normalized replies, returns ours.
#[track_caller]
fn same(o: &mut Node, r: &mut Node, argv: &[&str]) -> Vec<u8> {
    let want = r.call(argv);
    let got = o.call(argv);
    let (nw, ng) = (r.norm(&want), o.norm(&got));
    assert_eq!(ng, nw, "reply to {:?} differs from the reference", argv);
    got
}

/// Sends `argv` with `{id}` replaced by each node's own name.
#[track_caller]
fn same_self(o: &mut Node, r: &mut Node, argv: &[&str]) {
    let (oid, rid) = (o.myid(), r.myid());
    let a_o: Vec<String> = argv.iter().map(|a| a.replace("{id}", &oid)).collect();
    let a_r: Vec<String> = argv.iter().map(|a| a.replace("{id}", &rid)).collect();
    let a_o: Vec<&str> = a_o.iter().map(|s| s.as_str()).collect();
    let a_r: Vec<&str> = a_r.iter().map(|s| s.as_str()).collect();
    let want = r.call(&a_r);
    let got = o.call(&a_o);
    assert_eq!(
        o.norm(&got),
        r.norm(&want),
        "reply to {:?} differs from the reference",
        argv
    );
}

fn wait_state(n: &mut Node, want: &str) {
    let line = format!("cluster_state:{}", want);
    let ok = wait_for(Duration::from_secs(10), || {
        String::from_utf8_lossy(&n.call(&["CLUSTER", "INFO"])).contains(&line)
    });
    let info = n.call(&["CLUSTER", "INFO"]);
    let nodes = n.call(&["CLUSTER", "NODES"]);
    assert!(
        ok,
        "{:?} never reached {}: {} {}",
        n.srv.kind.name(),
        line,
        escape(&info),
        escape(&nodes)
    );
}

/// nodes.conf lines, sorted (the reference writes them in hash-table order), with the
/// `vars` line last.
fn conf_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("vars"))
        .map(String::from)
        .collect();
    v.sort();
    v.extend(
        text.lines()
            .filter(|l| l.starts_with("vars"))
            .map(String::from),
    );
    v
}

#[test]
fn one_node_outputs_errors_and_epochs() {
    let Some(bin) = require_reference() else {
        return;
    };
    let (od, rd) = (Dir::new(), Dir::new());
    let mut o = Node::start(None, &od.file("nodes.conf"));
    let mut r = Node::start(Some(&bin), &rd.file("nodes.conf"));
    // Both keep `cluster_state:fail` and `cluster_size:0` for 2 s after start-up.
    same(&mut o, &mut r, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    same(&mut o, &mut r, &["CLUSTER", "INFO"]);
    std::thread::sleep(Duration::from_millis(2100));
    same(&mut o, &mut r, &["CLUSTER", "DELSLOTSRANGE", "0", "16383"]);
    // A fresh node: its file, its outputs.
    let (oc, rc) = (o.conf_text(), r.conf_text());
    assert_eq!(o.norm(oc.as_bytes()), r.norm(rc.as_bytes()));
    for argv in [
        &["CLUSTER", "INFO"][..],
        &["CLUSTER", "NODES"],
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "SHARDS"],
        &["CLUSTER", "LINKS"],
        &["CLUSTER", "MYID"],
        &["CLUSTER", "MYSHARDID"],
        &["CLUSTER", "HELP"],
        &["CLUSTER", "COUNT-FAILURE-REPORTS", "nosuch"],
        &["CLUSTER", "REPLICAS", "nosuch"],
        &["CLUSTER", "SLAVES", "nosuch"],
        &["CLUSTER", "FORGET", "nosuch"],
        &["CLUSTER", "SETSLOT", "1", "NODE", "nosuch"],
        &["CLUSTER", "SETSLOT", "1", "foo"],
        &["CLUSTER", "SETSLOT", "1", "node"],
        &["CLUSTER", "SETSLOT", "x", "importing", "nosuch"],
        &["CLUSTER", "SETSLOT", "1", "migrating", "nosuch"],
        &["CLUSTER", "SETSLOT", "1", "importing", "nosuch"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "x"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "-1"],
        &["CLUSTER", "RESET", "foo"],
        &["CLUSTER", "RESET", "hard", "x"],
        &["CLUSTER", "INFO", "x"],
        &["CLUSTER", "MYID", "x"],
        &["CLUSTER", "LINKS", "x"],
        &["CLUSTER", "SAVECONFIG", "x"],
        &["CLUSTER", "BUMPEPOCH", "x"],
        &["CLUSTER", "COUNT-FAILURE-REPORTS"],
        &["CLUSTER", "SETSLOT", "1"],
    ] {
        same(&mut o, &mut r, argv);
    }
    for argv in [
        &["CLUSTER", "REPLICAS", "{id}"][..],
        &["CLUSTER", "COUNT-FAILURE-REPORTS", "{id}"],
        &["CLUSTER", "FORGET", "{id}"],
    ] {
        same_self(&mut o, &mut r, argv);
    }
    // Half of the slots.
    same(&mut o, &mut r, &["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]);
    same(&mut o, &mut r, &["CLUSTER", "ADDSLOTS", "9000", "9002"]);
    for argv in [
        &["CLUSTER", "INFO"][..],
        &["CLUSTER", "NODES"],
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "SHARDS"],
    ] {
        same(&mut o, &mut r, argv);
    }
    for argv in [
        &["CLUSTER", "SETSLOT", "1", "importing", "{id}"][..],
        &["CLUSTER", "SETSLOT", "9500", "migrating", "{id}"],
        &["CLUSTER", "SETSLOT", "9500", "importing", "{id}"],
        &["CLUSTER", "SETSLOT", "10", "migrating", "{id}"],
        &["CLUSTER", "SETSLOT", "9600", "node", "{id}"],
        &["CLUSTER", "SETSLOT", "10", "stable", "timeout"],
        &["CLUSTER", "SETSLOT", "10", "stable", "timeout", "x"],
        &["CLUSTER", "SETSLOT", "10", "stable", "timeout", "5"],
        &["CLUSTER", "SETSLOT", "10", "stable", "extra"],
    ] {
        same_self(&mut o, &mut r, argv);
    }
    same(&mut o, &mut r, &["CLUSTER", "NODES"]);
    // Epochs.
    for argv in [
        &["CLUSTER", "SET-CONFIG-EPOCH", "5"][..],
        &["CLUSTER", "SET-CONFIG-EPOCH", "6"],
        &["CLUSTER", "BUMPEPOCH"],
        &["CLUSTER", "INFO"],
        &["CLUSTER", "NODES"],
    ] {
        same(&mut o, &mut r, argv);
    }
    // Every slot: the state turns ok.
    same(
        &mut o,
        &mut r,
        &["CLUSTER", "DELSLOTS", "9000", "9002", "9600"],
    );
    same(
        &mut o,
        &mut r,
        &["CLUSTER", "ADDSLOTSRANGE", "8192", "16383"],
    );
    wait_state(&mut r, "ok");
    // Keys (the state is ok now): FLUSHSLOTS and RESET refuse.
    for argv in [
        &["CLUSTER", "KEYSLOT", "{06S}foo"][..],
        &["SET", "{06S}foo", "bar"],
        &["CLUSTER", "FLUSHSLOTS"],
        &["CLUSTER", "RESET"],
        &["DEL", "{06S}foo"],
    ] {
        same(&mut o, &mut r, argv);
    }
    for argv in [
        &["CLUSTER", "INFO"][..],
        &["CLUSTER", "NODES"],
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "SHARDS"],
        &["HELLO", "3"],
        &["CLUSTER", "INFO"],
        &["CLUSTER", "NODES"],
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "SHARDS"],
        &["HELLO", "2"],
        &["CLUSTER", "SAVECONFIG"],
    ] {
        if argv[0] == "HELLO" {
            o.call(argv);
            r.call(argv);
            continue;
        }
        same(&mut o, &mut r, argv);
    }
    let (oc, rc) = (o.conf_text(), r.conf_text());
    assert_eq!(o.norm(oc.as_bytes()), r.norm(rc.as_bytes()));
    // FLUSHSLOTS, then RESET HARD: a new name, epochs back to 0.
    same(&mut o, &mut r, &["CLUSTER", "FLUSHSLOTS"]);
    same(&mut o, &mut r, &["CLUSTER", "NODES"]);
    same(&mut o, &mut r, &["CLUSTER", "ADDSLOTS", "7"]);
    let before = o.myid();
    same(&mut o, &mut r, &["CLUSTER", "RESET", "HARD"]);
    assert_ne!(o.myid(), before, "RESET HARD keeps the name");
    for argv in [&["CLUSTER", "INFO"][..], &["CLUSTER", "NODES"]] {
        same(&mut o, &mut r, argv);
    }
    let (oc, rc) = (o.conf_text(), r.conf_text());
    assert_eq!(o.norm(oc.as_bytes()), r.norm(rc.as_bytes()));
}

/// A nodes.conf with myself (`me`), a second primary and a replica of it.
fn three_node_conf(me: &str, other: &str, replica: &str, oport: u16) -> String {
    format!(
        "{me} 127.0.0.1:7000@17000,,tls-port=0,shard-id={s1} myself,master - 0 0 3 connected 0-8000\n\
         {other} 127.0.0.1:{oport}@{ocport},,tls-port=0,shard-id={s2} master - 0 0 4 disconnected 8001-16383\n\
         {replica} 127.0.0.1:{rport}@{rcport},,tls-port=0,shard-id={s2} slave {other} 0 0 4 disconnected\n\
         vars currentEpoch 4 lastVoteEpoch 0\n",
        s1 = "1".repeat(40),
        s2 = "2".repeat(40),
        ocport = oport as u32 + 1,
        rport = oport as u32 + 2,
        rcport = oport as u32 + 3,
    )
}

/// NODES without the ping/pong columns (the reference may try to reach the fake nodes),
/// lines sorted.
fn nodes_view(n: &mut Node) -> Vec<String> {
    let text = n.bulk(&["CLUSTER", "NODES"]);
    let norm = n.norm(text.as_bytes());
    let mut v: Vec<String> = norm
        .split("\\n")
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut w: Vec<&str> = l.split(' ').collect();
            if w.len() > 5 {
                w[4] = "<P>";
                w[5] = "<P>";
            }
            w.join(" ")
        })
        .collect();
    v.sort();
    v
}

fn conf_view(n: &mut Node) -> Vec<String> {
    let t = n.conf_text();
    let norm = n.norm(t.as_bytes());
    conf_lines(&norm.replace("\\n", "\n"))
        .into_iter()
        .map(|l| {
            let mut w: Vec<&str> = l.split(' ').collect();
            if w.len() > 5 && w[0] != "vars" {
                w[4] = "<P>";
                w[5] = "<P>";
            }
            w.join(" ")
        })
        .collect()
}

#[test]
fn nodes_conf_other_nodes_setslot_and_round_trip() {
    let Some(bin) = require_reference() else {
        return;
    };
    let me = "a".repeat(40);
    let other = "b".repeat(40);
    let replica = "c".repeat(40);
    let oport = free_port();
    let text = three_node_conf(&me, &other, &replica, oport);
    let (od, rd) = (Dir::new(), Dir::new());
    std::fs::write(od.file("nodes.conf"), &text).unwrap();
    std::fs::write(rd.file("nodes.conf"), &text).unwrap();
    let mut o = Node::start(None, &od.file("nodes.conf"));
    let mut r = Node::start(Some(&bin), &rd.file("nodes.conf"));
    assert_eq!(o.myid(), me);
    assert_eq!(nodes_view(&mut o), nodes_view(&mut r));
    for argv in [
        &["CLUSTER", "SLOTS"][..],
        &["CLUSTER", "REPLICAS", &replica],
        &["CLUSTER", "COUNT-FAILURE-REPORTS", &other],
        &["CLUSTER", "SET-CONFIG-EPOCH", "9"],
        &["CLUSTER", "SETSLOT", "100", "migrating", &replica],
        &["CLUSTER", "SETSLOT", "100", "migrating", &other],
        &["CLUSTER", "SETSLOT", "9000", "importing", &other],
        &["CLUSTER", "SETSLOT", "9001", "migrating", &other],
        &["CLUSTER", "SETSLOT", "101", "importing", &other],
        &["CLUSTER", "SETSLOT", "9002", "node", &replica],
        &["SET", "{06S}x", "1"],
        &["CLUSTER", "KEYSLOT", "{06S}x"],
    ] {
        same(&mut o, &mut r, argv);
    }
    assert_eq!(nodes_view(&mut o), nodes_view(&mut r));
    // Slot 0 holds a key ({06S} hashes to 0): it cannot be given away.
    for argv in [
        &["CLUSTER", "SETSLOT", "0", "node", &other][..],
        &["DEL", "{06S}x"],
        &["CLUSTER", "SETSLOT", "0", "node", &other],
        &["CLUSTER", "SETSLOT", "9003", "node", &me],
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "SAVECONFIG"],
    ] {
        same(&mut o, &mut r, argv);
    }
    assert_eq!(nodes_view(&mut o), nodes_view(&mut r));
    assert_eq!(conf_view(&mut o), conf_view(&mut r));
    // Round trips: ours' file on the reference, the reference's file on ours; both
    // restarted keep their identity and tables.
    let (od2, rd2) = (Dir::new(), Dir::new());
    std::fs::copy(&o.conf, rd2.file("nodes.conf")).unwrap();
    std::fs::copy(&r.conf, od2.file("nodes.conf")).unwrap();
    let mut o2 = Node::start(None, &od2.file("nodes.conf"));
    let mut r2 = Node::start(Some(&bin), &rd2.file("nodes.conf"));
    assert_eq!(o2.myid(), me);
    assert_eq!(r2.myid(), me);
    let want = nodes_view(&mut o);
    assert_eq!(nodes_view(&mut r2), want, "the reference on our nodes.conf");
    assert_eq!(
        nodes_view(&mut o2),
        want,
        "ours on the reference's nodes.conf"
    );
    for argv in [&["CLUSTER", "SLOTS"][..], &["CLUSTER", "MYSHARDID"]] {
        same(&mut o2, &mut r2, argv);
    }
    // FORGET a known node, then the errors of SET-CONFIG-EPOCH with other nodes known.
    for argv in [
        &["CLUSTER", "FORGET", &replica][..],
        &["CLUSTER", "SET-CONFIG-EPOCH", "1"],
        &["CLUSTER", "RESET", "SOFT"],
        &["CLUSTER", "NODES"],
    ] {
        same(&mut o2, &mut r2, argv);
    }
    // Restart keeps the identity and the epochs (ours, same file).
    let conf = o.conf.clone();
    drop(o);
    let mut o3 = Node::start(None, &conf);
    assert_eq!(o3.myid(), me);
    assert_eq!(nodes_view(&mut o3), want);
}

/// A corrupt nodes.conf stops the start with upstream's message.
#[test]
fn corrupt_nodes_conf() {
    let Some(bin) = require_reference() else {
        return;
    };
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_valkey-rs-server"));
    // The reference panics with the message (a crash report); ours logs it and exits 1.
    let name = "a".repeat(40);
    let unknown_aux = format!(
        "{} 127.0.0.1:7000@17000,,foo=bar myself,master - 0 0 0 connected 0-100",
        name
    );
    let even_vars = format!(
        "{} 127.0.0.1:7000@17000,,tls-port=0 myself,master - 0 0 0 connected 0-100\nvars currentEpoch",
        name
    );
    for (text, line) in [
        (unknown_aux.clone(), unknown_aux.as_str()),
        (even_vars.clone(), "vars currentEpoch"),
    ] {
        for b in [&ours, &bin] {
            let d = Dir::new();
            std::fs::write(d.file("nodes.conf"), format!("{}\n", text)).unwrap();
            let out = Command::new(b)
                .args([
                    "--port",
                    &free_port().to_string(),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &free_port().to_string(),
                    "--dir",
                    &d.0.to_string_lossy(),
                    "--save",
                    "",
                ])
                .stdin(Stdio::null())
                .output()
                .expect("run");
            assert!(!out.status.success(), "started on a corrupt nodes.conf");
            let log = String::from_utf8_lossy(&out.stdout).into_owned();
            let want = format!(
                "Unrecoverable error: corrupted cluster config file \"{}",
                line
            );
            assert!(
                log.contains(&want),
                "{} log without {:?}:\n{}",
                b.display(),
                want,
                log
            );
        }
    }
}
