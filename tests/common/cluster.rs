//! Cluster test harness (issue 13): start nodes (ours or the reference) in cluster mode,
//! each with its own directory, a free client port and an explicit free `cluster-port`;
//! build a cluster without redis-cli (ADDSLOTSRANGE + SET-CONFIG-EPOCH + MEET) and poll
//! until it is up; parse CLUSTER NODES and CLUSTER INFO.
//!
//! ```ignore
//! let bin = require_reference().unwrap();
//! let mut nodes = vec![
//!     CNode::start(&Impl::Reference(bin.clone()), &Opts::default()),
//!     CNode::start(&Impl::Ours, &Opts::default()),
//! ];
//! create_cluster(&mut nodes, Duration::from_secs(20)).unwrap();
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{free_port, Conn, Kind, Server};

/// Which binary a node runs.
#[derive(Clone, Debug)]
pub enum Impl {
    Ours,
    Reference(PathBuf),
}

impl Impl {
    pub fn kind(&self) -> Kind {
        match self {
            Impl::Ours => Kind::Ours,
            Impl::Reference(_) => Kind::Reference,
        }
    }
}

/// Start options of one node.
#[derive(Clone, Debug)]
pub struct Opts {
    /// `cluster-node-timeout` (ms).
    pub node_timeout: u64,
    /// More directives (`["--loglevel", "verbose"]`).
    pub extra: Vec<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            node_timeout: 1500,
            extra: Vec::new(),
        }
    }
}

impl Opts {
    pub fn timeout(ms: u64) -> Opts {
        Opts {
            node_timeout: ms,
            ..Default::default()
        }
    }
}

/// One cluster node: the server process, its bus port and a client connection.
pub struct CNode {
    pub srv: Server,
    pub cport: u16,
    pub c: Conn,
    pub node_timeout: u64,
    /// The node id (CLUSTER MYID), read at start.
    pub id: String,
}

/// A free port `p` whose neighbour in the listing is not the same (so that a client port
/// and a bus port picked one after the other never collide).
fn free_port_not(avoid: &[u16]) -> u16 {
    loop {
        let p = free_port();
        if !avoid.contains(&p) {
            return p;
        }
    }
}

impl CNode {
    /// Starts a node with `cluster-enabled yes`, an explicit `cluster-port` and
    /// `cluster-node-timeout`. The node's nodes.conf is `nodes.conf` in its directory.
    pub fn start(imp: &Impl, o: &Opts) -> CNode {
        let cport = free_port_not(&[]);
        let cp = cport.to_string();
        let nt = o.node_timeout.to_string();
        let mut args: Vec<&str> = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            &cp,
            "--cluster-node-timeout",
            &nt,
        ];
        args.extend(o.extra.iter().map(|s| s.as_str()));
        let srv = imp.start(&args);
        let mut c = srv.conn();
        let id = bulk_text(&c.call(&["CLUSTER", "MYID"]));
        CNode {
            srv,
            cport,
            c,
            node_timeout: o.node_timeout,
            id,
        }
    }

    pub fn port(&self) -> u16 {
        self.srv.port
    }

    pub fn kind(&self) -> Kind {
        self.srv.kind
    }

    /// A short label for messages: `ours:port` / `reference:port`.
    pub fn label(&self) -> String {
        format!("{}:{}", self.srv.kind.name(), self.srv.port)
    }

    pub fn call(&mut self, argv: &[&str]) -> Vec<u8> {
        self.c.call(argv)
    }

    /// A reply as text (bulk strings unwrapped; status and errors with their prefix).
    pub fn text(&mut self, argv: &[&str]) -> String {
        let r = self.call(argv);
        bulk_text(&r)
    }

    /// Sends a command whose reply must be `+OK`.
    #[track_caller]
    pub fn ok(&mut self, argv: &[&str]) {
        let r = self.call(argv);
        assert_eq!(
            r,
            b"+OK\r\n",
            "{} {:?}: {}",
            self.label(),
            argv,
            String::from_utf8_lossy(&r)
        );
    }

    /// CLUSTER INFO as a map.
    pub fn info(&mut self) -> HashMap<String, String> {
        parse_info(&self.text(&["CLUSTER", "INFO"]))
    }

    /// One CLUSTER INFO field ("" when absent).
    pub fn info_field(&mut self, f: &str) -> String {
        self.info().remove(f).unwrap_or_default()
    }

    /// CLUSTER NODES, parsed.
    pub fn nodes(&mut self) -> Vec<NodeLine> {
        parse_nodes(&self.text(&["CLUSTER", "NODES"]))
    }

    /// The line of node `id` in this node's CLUSTER NODES.
    pub fn node(&mut self, id: &str) -> Option<NodeLine> {
        self.nodes().into_iter().find(|n| n.id == id)
    }

    /// `CLUSTER MEET 127.0.0.1 <port> <cport>` towards `other`.
    pub fn meet(&mut self, other: &CNode) {
        let p = other.port().to_string();
        let cp = other.cport.to_string();
        self.ok(&["CLUSTER", "MEET", "127.0.0.1", &p, &cp]);
    }

    /// `CLUSTER ADDSLOTSRANGE a b`.
    pub fn add_slots(&mut self, a: u16, b: u16) {
        let (a, b) = (a.to_string(), b.to_string());
        self.ok(&["CLUSTER", "ADDSLOTSRANGE", &a, &b]);
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        self.srv.log()
    }

    /// The node's nodes.conf (its default name in its directory).
    pub fn conf_path(&self) -> PathBuf {
        self.srv.dir.join("nodes.conf")
    }
}

/// Starts one node per entry of `imps` with the same options.
pub fn start_nodes(imps: &[Impl], o: &Opts) -> Vec<CNode> {
    imps.iter().map(|i| CNode::start(i, o)).collect()
}

/// The slot range of primary `i` of `n` when 16384 slots are split evenly (as
/// `redis-cli --cluster create` does, remainders to the first ones).
pub fn slot_range(i: usize, n: usize) -> (u16, u16) {
    let per = 16384 / n;
    let extra = 16384 % n;
    let start = i * per + i.min(extra);
    let len = per + usize::from(i < extra);
    (start as u16, (start + len - 1) as u16)
}

/// Makes a cluster of `nodes`, all primaries: node i gets slot range i of n and
/// configEpoch i+1, every node MEETs node 0, then waits (up to `limit`) for
/// [`wait_converged`].
pub fn create_cluster(nodes: &mut [CNode], limit: Duration) -> Result<(), String> {
    let n = nodes.len();
    for (i, node) in nodes.iter_mut().enumerate() {
        let (a, b) = slot_range(i, n);
        node.add_slots(a, b);
        let e = (i + 1).to_string();
        node.ok(&["CLUSTER", "SET-CONFIG-EPOCH", &e]);
    }
    meet_all(nodes);
    wait_converged(nodes, limit)
}

/// Every node but the first MEETs the first.
pub fn meet_all(nodes: &mut [CNode]) {
    let (first, rest) = nodes.split_first_mut().expect("at least one node");
    for node in rest {
        node.meet(first);
    }
}

/// Waits until every node says `cluster_state:ok`, knows all the others
/// (`cluster_known_nodes`), and lists each of them as connected and out of handshake.
pub fn wait_converged(nodes: &mut [CNode], limit: Duration) -> Result<(), String> {
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let deadline = Instant::now() + limit;
    loop {
        let mut why = None;
        for node in nodes.iter_mut() {
            if let Err(e) = node_sees_all(node, &ids) {
                why = Some(format!("{}: {}", node.label(), e));
                break;
            }
        }
        let Some(why) = why else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            let mut s = format!("cluster did not converge: {}\n", why);
            for node in nodes.iter_mut() {
                let txt = node.text(&["CLUSTER", "NODES"]);
                s.push_str(&format!("--- {} ({}):\n{}\n", node.label(), node.id, txt));
            }
            return Err(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ok when `node` is `cluster_state:ok` and sees every id in `ids` connected and not in
/// handshake; else the reason.
pub fn node_sees_all(node: &mut CNode, ids: &[String]) -> Result<(), String> {
    let info = node.info();
    let state = info.get("cluster_state").cloned().unwrap_or_default();
    if state != "ok" {
        return Err(format!("cluster_state:{}", state));
    }
    let known = info.get("cluster_known_nodes").cloned().unwrap_or_default();
    if known != ids.len().to_string() {
        return Err(format!("cluster_known_nodes:{}", known));
    }
    let lines = node.nodes();
    for id in ids {
        match lines.iter().find(|l| &l.id == id) {
            None => return Err(format!("{} not listed", id)),
            Some(l) if !l.connected() => return Err(format!("{} is {}", id, l.link)),
            Some(l) if l.has("handshake") || l.has("fail") || l.has("fail?") || l.has("noaddr") => {
                return Err(format!("{} has flags {}", id, l.flags.join(",")))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Polls `cond` every 50 ms until it returns Ok or `limit` passes; returns the last
/// reason on timeout.
pub fn wait_ok(
    limit: Duration,
    mut cond: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        match cond() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// One line of CLUSTER NODES (or nodes.conf: the aux fields stay in `addr_aux`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLine {
    pub id: String,
    /// The IP ("" when not known yet).
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    /// `,hostname` and the aux fields after `ip:port@cport` (without the first comma).
    pub addr_aux: String,
    pub flags: Vec<String>,
    /// The primary's id, None for `-`.
    pub primary: Option<String>,
    pub ping_sent: u64,
    pub pong_received: u64,
    pub config_epoch: u64,
    /// `connected` / `disconnected`.
    pub link: String,
    /// Slot ranges (a single slot is `(s, s)`); `[..]` migration entries are skipped.
    pub slots: Vec<(u16, u16)>,
    /// The raw line.
    pub raw: String,
}

impl NodeLine {
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
    pub fn connected(&self) -> bool {
        self.link == "connected"
    }
    pub fn is_primary(&self) -> bool {
        self.has("master")
    }
    pub fn myself(&self) -> bool {
        self.has("myself")
    }
    pub fn slot_count(&self) -> usize {
        self.slots
            .iter()
            .map(|(a, b)| (*b as usize) - (*a as usize) + 1)
            .sum()
    }
}

/// Parses one CLUSTER NODES / nodes.conf line; None for `vars` lines and malformed ones.
pub fn parse_node_line(line: &str) -> Option<NodeLine> {
    let w: Vec<&str> = line.split(' ').collect();
    if w.len() < 8 || w[0] == "vars" {
        return None;
    }
    let (addr, addr_aux) = match w[1].split_once(',') {
        Some((a, x)) => (a, x.to_string()),
        None => (w[1], String::new()),
    };
    let (ipport, cport) = addr.split_once('@')?;
    let (ip, port) = ipport.rsplit_once(':')?;
    let mut slots = Vec::new();
    for s in &w[8..] {
        if s.starts_with('[') {
            continue;
        }
        let r = match s.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => {
                let x = s.parse().ok()?;
                (x, x)
            }
        };
        slots.push(r);
    }
    Some(NodeLine {
        id: w[0].to_string(),
        ip: ip.to_string(),
        port: port.parse().ok()?,
        cport: cport.parse().ok()?,
        addr_aux,
        flags: w[2].split(',').map(str::to_string).collect(),
        primary: (w[3] != "-").then(|| w[3].to_string()),
        ping_sent: w[4].parse().ok()?,
        pong_received: w[5].parse().ok()?,
        config_epoch: w[6].parse().ok()?,
        link: w[7].to_string(),
        slots,
        raw: line.to_string(),
    })
}

/// Parses CLUSTER NODES text (or a nodes.conf file).
pub fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines().filter_map(parse_node_line).collect()
}

/// Parses CLUSTER INFO text (`key:value` lines).
pub fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim_end_matches('\r').split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The payload of a RESP2 bulk string, verbatim string or status reply, as text; an
/// error or anything else is returned whole.
pub fn bulk_text(r: &[u8]) -> String {
    let s = String::from_utf8_lossy(r).into_owned();
    match r.first() {
        Some(b'$') | Some(b'=') => {
            let body = s.split_once("\r\n").map(|x| x.1).unwrap_or("");
            let body = body.strip_suffix("\r\n").unwrap_or(body);
            if r[0] == b'=' {
                body.get(4..).unwrap_or("").to_string()
            } else {
                body.to_string()
            }
        }
        Some(b'+') => s.trim_end().trim_start_matches('+').to_string(),
        _ => s,
    }
}

/// Reads a nodes.conf file and parses it.
pub fn read_conf(path: &Path) -> Vec<NodeLine> {
    parse_nodes(&std::fs::read_to_string(path).unwrap_or_default())
}

impl Impl {
    /// Starts a plain [`Server`] of this implementation with `args`.
    pub fn start(&self, args: &[&str]) -> Server {
        match self {
            Impl::Ours => Server::ours(args),
            Impl::Reference(b) => Server::reference(b, args),
        }
    }
}

/// Ours and the reference as lone cluster nodes (`cluster-enabled yes`, a free
/// `cluster-port` each, no slots yet) started with `extra`; None when the reference is
/// missing and may be skipped.
pub fn one_node_pair(extra: &[&str]) -> Option<(Server, Server)> {
    let bin = super::require_reference()?;
    let start = |reference: bool| {
        let cport = free_port().to_string();
        let mut args = vec!["--cluster-enabled", "yes", "--cluster-port", &cport];
        args.extend_from_slice(extra);
        Server::either(reference, &bin, &args)
    };
    Some((start(false), start(true)))
}

/// Waits (10 s) until `s` reports `cluster_state:<want>` in CLUSTER INFO.
#[track_caller]
pub fn wait_cluster_state(s: &Server, want: &str) {
    let mut c = s.conn();
    let line = format!("cluster_state:{}", want);
    let ok = super::wait_for(Duration::from_secs(10), || {
        String::from_utf8_lossy(&c.call(&["CLUSTER", "INFO"])).contains(&line)
    });
    assert!(ok, "{} never reached {}", s.kind.name(), line);
}

/// The key's slot as a client computes it: CRC16/XMODEM of the hash tag (the part between
/// the first `{` and the next `}`, when not empty) or of the whole key, & 16383.
pub fn key_slot(key: &[u8]) -> u16 {
    let mut k = key;
    if let Some(s) = key.iter().position(|&b| b == b'{') {
        if let Some(e) = key[s + 1..].iter().position(|&b| b == b'}') {
            if e > 0 {
                k = &key[s + 1..s + 1 + e];
            }
        }
    }
    let mut crc: u16 = 0;
    for &b in k {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc & 16383
}

/// For each slot, the index in `nodes` of the node that serves it as `nodes[0]`'s CLUSTER
/// NODES says (`usize::MAX` when none does).
pub fn slot_owners(nodes: &mut [CNode]) -> Vec<usize> {
    let ids: Vec<String> = nodes.iter().map(|x| x.id.clone()).collect();
    let mut owner = vec![usize::MAX; 16384];
    for line in nodes[0].nodes() {
        let Some(idx) = ids.iter().position(|id| *id == line.id) else {
            continue;
        };
        for &(a, b) in &line.slots {
            for s in a..=b {
                owner[s as usize] = idx;
            }
        }
    }
    owner
}

/// Runs `redis-cli` with `args` (stdin closed): whether it exited 0, and stdout then
/// stderr.
pub fn redis_cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("redis-cli")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("redis-cli");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `redis-cli --cluster create` over `nodes` with the options `more` and `--cluster-yes`;
/// asserts that it exits 0 and returns its output.
#[track_caller]
pub fn cli_create(nodes: &[CNode], more: &[&str]) -> String {
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    let mut args = vec!["--cluster", "create"];
    args.extend(addrs.iter().map(|s| s.as_str()));
    args.extend_from_slice(more);
    args.push("--cluster-yes");
    let (ok, out) = redis_cli(&args);
    assert!(ok, "--cluster create failed:\n{out}");
    out
}
