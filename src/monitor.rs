//! MONITOR: clients that receive a line for every command the server runs, as upstream's
//! `monitorCommand` and `replicationFeedMonitors`.
//!
//! The feed is called from `commands::call` after the handler ran (so the line shows the
//! database the command left the client in, and a transaction shows its commands before
//! the EXEC), with the arguments as they arrived: secrets of AUTH, HELLO AUTH and MIGRATE
//! AUTH/AUTH2 are replaced by `(redacted)`. Commands flagged `admin` or `skip_monitor`,
//! a blocked command running again, and commands refused by the gate are not shown.
//!
//! A monitor is flagged [`cflags::MONITOR`]; upstream also marks it as a replica, whose
//! consequences are reproduced where they show: `O` in CLIENT LIST flags, a second MONITOR
//! is ignored, keyspace commands are refused ("Replica can't interact with the keyspace"),
//! no idle timeout, and CLIENT PAUSE does not hold it.

use crate::client::{flags as cflags, Client};
use crate::server::Server;

/// MONITOR.
pub fn monitor_command(srv: &mut Server, c: &mut Client) {
    if c.has_flag(cflags::DENY_BLOCKING) || c.has_flag(cflags::IN_EXEC) {
        c.reply
            .add_error("ERR MONITOR isn't allowed for DENY BLOCKING client");
        return;
    }
    // Already a monitor or a replica: ignored, without a reply.
    if c.has_flag(cflags::MONITOR | cflags::REPLICA) {
        return;
    }
    c.flags |= cflags::MONITOR;
    srv.monitors.push(c.slot);
    c.reply.add_ok();
}

/// Takes `c` out of the monitor list (RESET, disconnection).
pub fn stop(srv: &mut Server, c: &mut Client) {
    if c.has_flag(cflags::MONITOR) {
        c.flags &= !cflags::MONITOR;
        srv.monitors.retain(|&s| s != c.slot);
    }
}

/// The line a monitor receives for `argv` run by `c` in database `db`.
pub fn format_line(srv: &Server, c: &Client, db: usize, argv: &[Vec<u8>]) -> Vec<u8> {
    use std::fmt::Write as _;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut s = String::with_capacity(64 + argv.iter().map(|a| a.len() + 3).sum::<usize>());
    let _ = write!(s, "+{}.{:06} ", now.as_secs(), now.subsec_micros());
    if c.has_flag(cflags::UNIX_SOCKET) {
        let sock = srv.config.unixsocket.as_deref().unwrap_or("");
        let _ = write!(s, "[{} unix:{}] ", db, sock);
    } else {
        let _ = write!(s, "[{} {}] ", db, c.addr);
    }
    for (j, a) in argv.iter().enumerate() {
        if j > 0 {
            s.push(' ');
        }
        if crate::commandlog::redacted(argv, j) {
            s.push_str("\"(redacted)\"");
        } else {
            s.push_str(&crate::config::repr(a));
        }
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// Sends the line for `argv` to every monitor; `c` (the client that ran the command, out
/// of the client table) gets it after its own reply when it is a monitor itself.
pub fn feed(srv: &mut Server, c: &mut Client, argv: &[Vec<u8>]) {
    if srv.monitors.is_empty() || argv.is_empty() {
        return;
    }
    let line = format_line(srv, c, c.db, argv);
    let slots = std::mem::take(&mut srv.monitors);
    let limits = srv.config.client_obuf_limits;
    let mut over = Vec::new();
    for &slot in &slots {
        if slot == c.slot {
            if c.has_flag(cflags::MONITOR) {
                c.reply.add_raw(&line);
            }
            continue;
        }
        let Some(Some(m)) = srv.clients.get_mut(slot) else {
            continue;
        };
        if m.has_flag(cflags::CLOSE_ASAP) {
            continue;
        }
        m.reply.add_raw(&line);
        if !m.pending_write {
            m.pending_write = true;
            srv.clients_pending_write.push(slot);
        }
        // The output buffer limit of its class (normal), as for any reply.
        if m.reply.pending() > crate::networking::PROTO_REPLY_CHUNK_BYTES {
            let lim = limits[crate::networking::obuf_limit_class(m)];
            if crate::networking::obuf_limit_reached(m, lim, srv.unixtime) {
                over.push(slot);
            }
        }
    }
    srv.monitors = slots;
    for slot in over {
        crate::networking::close_client_on_obuf_limit_slot(srv, slot);
    }
}
