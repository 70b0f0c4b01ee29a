//! nodes.conf (`cluster-config-file`): upstream's `clusterLoadConfig`, `clusterSaveConfig`
//! and `clusterLockConfig` (docs/cluster-plan.md 3). The text is made by
//! [`NodeTable::config_text`]; this file writes it atomically (temp file, fsync, rename,
//! directory fsync), takes the lock at start-up and parses it back.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::node::{parse_flags, Node, NodeTable};
use super::slot::CLUSTER_SLOTS;
use super::{NodeId, MYSELF};

/// Opens (creating it) and locks the config file for the life of the process; the
/// returned file must be kept open.
pub fn lock(path: &Path) -> Result<File, String> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            format!(
                "Can't open {} in order to acquire a lock: {}",
                path.display(),
                strerror(&e)
            )
        })?;
    // SAFETY: flock on a file descriptor we own.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == -1 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(format!(
                "Sorry, the cluster configuration file {} is already used by a different \
                 Cluster node. Please make sure that different nodes use different cluster \
                 configuration files.",
                path.display()
            ));
        }
        return Err(format!(
            "Impossible to lock {}: {}",
            path.display(),
            strerror(&e)
        ));
    }
    Ok(f)
}

/// The text of an OS error as strerror gives it.
pub fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(p) => s[..p].to_string(),
        None => s,
    }
}

/// Writes `text` to `path` atomically: a temp file next to it, fsync, rename over the
/// file, fsync of the directory. Owner-only mode.
pub fn save(path: &Path, text: &str) -> std::io::Result<()> {
    save_with(path, text, true)
}

/// [`save`], with the two fsyncs only when `fsync` (upstream's `clusterSaveConfig(do_fsync)`:
/// CLUSTER SETSLOT saves without them).
pub fn save_with(path: &Path, text: &str, fsync: bool) -> std::io::Result<()> {
    let tmp = {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(
            ".tmp-{}-{}",
            std::process::id(),
            crate::util::mstime()
        ));
        std::path::PathBuf::from(s)
    };
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        if fsync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if !fsync {
            return Ok(());
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// The loader's fatal error (upstream's text; the caller logs it and exits 1).
fn corrupted(line: &str) -> String {
    format!(
        "Unrecoverable error: corrupted cluster config file \"{}\".",
        line
    )
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Characters allowed in an aux value (upstream's `isValidAuxChar`).
fn valid_aux(v: &str) -> bool {
    v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&()*+:;<>?@[]^{|}~-_.".contains(&b))
}

/// Parses a nodes.conf text. `Ok(None)` for an empty file (a new node).
pub fn parse(text: &str) -> Result<Option<NodeTable>, String> {
    struct Pending {
        node: Node,
        primary: Option<String>,
        myself: bool,
        migrating: Vec<(u16, String)>,
        importing: Vec<(u16, String)>,
    }
    let mut pend: Vec<Pending> = Vec::new();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut any = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        any = true;
        let w: Vec<&str> = line.split(' ').filter(|x| !x.is_empty()).collect();
        if w[0] == "vars" {
            if w.len().is_multiple_of(2) {
                return Err(corrupted(line));
            }
            for p in w[1..].chunks(2) {
                vars.push((p[0].to_string(), p[1].to_string()));
            }
            continue;
        }
        if w.len() < 8 {
            return Err(corrupted(line));
        }
        let mut n = Node {
            name: w[0].to_string(),
            ..Default::default()
        };
        if n.name.len() != 40 || !n.name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(corrupted(line));
        }
        // ip:port@cport[,hostname[,key=value...]]
        let mut parts = w[1].split(',');
        let addr = parts.next().unwrap_or("");
        if let Some(h) = parts.next() {
            if !valid_aux(h) {
                return Err(corrupted(line));
            }
            n.hostname = h.to_string();
        }
        for kv in parts {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(corrupted(line));
            };
            if !valid_aux(v) {
                return Err(corrupted(line));
            }
            match k {
                "shard-id" => {
                    if v.len() != 40 {
                        return Err(corrupted(line));
                    }
                    n.shard_id = v.to_string();
                }
                "nodename" => n.human_nodename = v.to_string(),
                "tls-port" => n.tls_port = parse_port(v).ok_or_else(|| corrupted(line))?,
                "tcp-port" => {
                    parse_port(v).ok_or_else(|| corrupted(line))?;
                }
                "client-tcp-port" => {
                    n.client_tcp_port = parse_port(v).ok_or_else(|| corrupted(line))?
                }
                "client-tls-port" => {
                    n.client_tls_port = parse_port(v).ok_or_else(|| corrupted(line))?
                }
                "client-ipv4" => n.client_ipv4 = v.to_string(),
                "client-ipv6" => n.client_ipv6 = v.to_string(),
                "availability-zone" => n.availability_zone = v.to_string(),
                _ => return Err(corrupted(line)),
            }
        }
        let Some((ip, ports)) = addr.rsplit_once(':') else {
            return Err(corrupted(line));
        };
        n.ip = ip.to_string();
        let (p, cp) = match ports.split_once('@') {
            Some((p, c)) => (p, Some(c)),
            None => (ports, None),
        };
        n.tcp_port = parse_port(p).ok_or_else(|| corrupted(line))?;
        n.cport = match cp {
            Some(c) => parse_port(c).ok_or_else(|| corrupted(line))?,
            None => n.tcp_port.wrapping_add(10000),
        };
        n.flags = parse_flags(w[2]);
        let myself = n.flags & super::node::nflags::MYSELF != 0;
        let primary = (w[3] != "-").then(|| w[3].to_string());
        let now = crate::util::mstime();
        let ps: i64 = w[4].parse().map_err(|_| corrupted(line))?;
        let pr: i64 = w[5].parse().map_err(|_| corrupted(line))?;
        n.ping_sent = if ps != 0 { now } else { 0 };
        n.pong_received = if pr != 0 { now } else { 0 };
        n.config_epoch = w[6].parse().map_err(|_| corrupted(line))?;
        n.connected = myself;
        let mut migrating = Vec::new();
        let mut importing = Vec::new();
        for r in &w[8..] {
            if let Some(inner) = r.strip_prefix('[') {
                let inner = inner.strip_suffix(']').ok_or_else(|| corrupted(line))?;
                let (slot, dir, peer) = if let Some((s, p)) = inner.split_once("->-") {
                    (s, true, p)
                } else if let Some((s, p)) = inner.split_once("-<-") {
                    (s, false, p)
                } else {
                    return Err(corrupted(line));
                };
                let slot: u16 = slot
                    .parse()
                    .ok()
                    .filter(|s| (*s as usize) < CLUSTER_SLOTS)
                    .ok_or_else(|| corrupted(line))?;
                if dir {
                    migrating.push((slot, peer.to_string()));
                } else {
                    importing.push((slot, peer.to_string()));
                }
                continue;
            }
            let (a, b) = match r.split_once('-') {
                Some((a, b)) => (a, b),
                None => (*r, *r),
            };
            let a: usize = a.parse().map_err(|_| corrupted(line))?;
            let b: usize = b.parse().map_err(|_| corrupted(line))?;
            if a > b || b >= CLUSTER_SLOTS {
                return Err(corrupted(line));
            }
            for s in a..=b {
                n.slots.set(s as u16);
            }
        }
        pend.push(Pending {
            node: n,
            primary,
            myself,
            migrating,
            importing,
        });
    }
    if !any {
        return Ok(None);
    }
    let Some(mi) = pend.iter().position(|p| p.myself) else {
        return Err(corrupted(""));
    };
    let me = pend.remove(mi);
    let mut t = NodeTable::with_myself(me.node.clone());
    let mut all = vec![(MYSELF, me)];
    for p in pend {
        let id = t.add(p.node.clone());
        all.push((id, p));
    }
    // Primaries (a primary not listed becomes a placeholder node), slots, slot states.
    for (id, p) in &all {
        if let Some(pn) = &p.primary {
            let pid = match t.by_name.get(pn) {
                Some(x) => *x,
                None => t.add(Node {
                    name: pn.clone(),
                    ..Default::default()
                }),
            };
            if let Some(n) = t.get_mut(*id) {
                n.replicaof = Some(pid);
            }
            if let Some(pnode) = t.get_mut(pid) {
                pnode.add_replica(*id);
            }
        }
        for s in 0..CLUSTER_SLOTS as u16 {
            if p.node.slots.test(s) {
                t.owner[s as usize] = Some(*id);
            }
        }
    }
    let lookup = |t: &mut NodeTable, name: &str| -> NodeId {
        match t.by_name.get(name) {
            Some(x) => *x,
            None => t.add(Node {
                name: name.to_string(),
                ..Default::default()
            }),
        }
    };
    let me = &all[0].1;
    for (s, name) in &me.migrating {
        let id = lookup(&mut t, name);
        t.migrating.insert(*s, id);
    }
    for (s, name) in &me.importing {
        let id = lookup(&mut t, name);
        t.importing.insert(*s, id);
    }
    // A replica's own configEpoch is not kept.
    let ids: Vec<NodeId> = t.iter().map(|(i, _)| i).collect();
    for id in ids {
        if let Some(n) = t.get_mut(id) {
            if n.is_replica() {
                n.config_epoch = 0;
            }
        }
    }
    for (k, v) in vars {
        match k.as_str() {
            "currentEpoch" => t.current_epoch = v.parse().unwrap_or(0),
            "lastVoteEpoch" => t.last_vote_epoch = v.parse().unwrap_or(0),
            _ => log::warn!("Skipping unknown cluster config variable '{}'", k),
        }
    }
    let max = t.iter().map(|(_, n)| n.config_epoch).max().unwrap_or(0);
    if t.current_epoch < max {
        t.current_epoch = max;
    }
    Ok(Some(t))
}
