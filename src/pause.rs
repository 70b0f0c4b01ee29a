//! CLIENT PAUSE / UNPAUSE, as upstream's pauseActions for the `client_pause` purpose.
//!
//! While a pause is in effect the gate (`commands::process_command`) postpones the
//! commands it covers: every command (ALL), or writes and commands that may replicate
//! (WRITE: flagged `write` or `may_replicate`, or an EXEC with such a command queued).
//! A postponed client keeps its command in argv, stops reading its input and is flagged
//! [`cflags::POSTPONED`] (shown as `b` in CLIENT LIST, not counted in `blocked_clients`);
//! when the pause ends (timeout or CLIENT UNPAUSE) before-sleep runs the command again
//! through the gate, then the rest of its input. Replicas and monitors are not held.
//! Both modes also stop keys from expiring (a read sees an expired key as missing but
//! leaves it in place, the active cycle does not run), as upstream's PAUSE_ACTION_EXPIRE,
//! and stop eviction (nothing is evicted and nothing is refused for memory), as
//! PAUSE_ACTION_EVICT. The primary keeps pinging its replicas during a pause (measured on
//! the reference: the offset moves), so nothing is held there.

use crate::client::{flags as cflags, Client};
use crate::server::Server;

#[derive(Debug, Default)]
pub struct Pause {
    /// End of the pause (unix ms); 0: not paused.
    pub end_ms: i64,
    /// ALL (true) or WRITE.
    pub all: bool,
    /// Postponed clients (slot, id), in arrival order.
    pub postponed: Vec<(usize, u64)>,
    /// Writes held while a shutdown waits for its replicas to catch up (upstream's
    /// PAUSE_DURING_SHUTDOWN purpose, a WRITE pause without an end); set and cleared by
    /// src/ops.rs.
    pub shutdown: bool,
    /// End (unix ms) of the write pause of a primary in a cluster manual failover
    /// (upstream's PAUSE_DURING_FAILOVER purpose); 0: none. Set and cleared by
    /// src/cluster/failover.rs.
    pub failover_end_ms: i64,
}

impl Pause {
    /// Whether a CLIENT PAUSE is in effect.
    pub fn client_active(&self, now_ms: i64) -> bool {
        self.end_ms != 0 && now_ms < self.end_ms
    }

    /// Whether any pause (CLIENT PAUSE or shutdown) is in effect.
    pub fn active(&self, now_ms: i64) -> bool {
        self.shutdown || self.client_active(now_ms) || self.failover_active(now_ms)
    }

    /// Whether a manual failover holds writes.
    pub fn failover_active(&self, now_ms: i64) -> bool {
        self.failover_end_ms != 0 && now_ms < self.failover_end_ms
    }

    /// The gate's cheap first check: a pause may be in effect.
    #[inline]
    pub fn any(&self) -> bool {
        self.end_ms != 0 || self.shutdown || self.failover_end_ms != 0
    }
}

/// Whether key expiry and eviction are paused now (both pause kinds include them).
pub fn expire_paused(srv: &Server) -> bool {
    srv.pause.active(srv.mstime)
}

/// The gate's check: whether command `id` from `c` must wait for the end of the pause.
pub fn must_postpone(srv: &Server, c: &Client, id: usize) -> bool {
    if !srv.pause.active(srv.mstime)
        || c.has_flag(cflags::REPLICA | cflags::MONITOR | cflags::PRIMARY)
    {
        return false;
    }
    if srv.pause.all && srv.pause.client_active(srv.mstime) {
        return true;
    }
    use crate::commands::flags as f;
    let covered =
        |cid: usize| srv.commands.commands[cid].def.flags & (f::WRITE | f::MAY_REPLICATE) != 0;
    covered(id)
        || (srv.commands.commands[id].def.name == "exec" && c.mstate.iter().any(|q| covered(q.id)))
}

/// Postpones the running command of `c` (upstream's blockPostponeClient).
pub fn postpone(srv: &mut Server, c: &mut Client) {
    c.flags |= cflags::POSTPONED;
    srv.pause.postponed.push((c.slot, c.id));
}

/// Forgets a client that goes away.
pub fn forget(srv: &mut Server, c: &mut Client) {
    if c.has_flag(cflags::POSTPONED) {
        c.flags &= !cflags::POSTPONED;
        srv.pause
            .postponed
            .retain(|&(s, id)| !(s == c.slot && id == c.id));
    }
}

/// Before-sleep: once the pause is over, runs the postponed commands again and schedules
/// the rest of those clients' input.
pub fn before_sleep(srv: &mut Server) {
    if srv.pause.end_ms != 0 && srv.mstime >= srv.pause.end_ms {
        srv.pause.end_ms = 0;
    }
    if srv.pause.failover_end_ms != 0 && srv.mstime >= srv.pause.failover_end_ms {
        srv.pause.failover_end_ms = 0;
    }
    if srv.pause.any() || srv.pause.postponed.is_empty() {
        return;
    }
    let list = std::mem::take(&mut srv.pause.postponed);
    for (slot, id) in list {
        let Some(mut c) = crate::networking::take_client(srv, slot) else {
            continue;
        };
        if c.id != id || !c.has_flag(cflags::POSTPONED) {
            crate::networking::put_client(srv, c);
            continue;
        }
        c.flags &= !cflags::POSTPONED;
        crate::commands::process_command(srv, &mut c);
        if !c.has_flag(cflags::BLOCKED | cflags::POSTPONED) {
            crate::networking::reset_client(&mut c);
            if !c.has_flag(cflags::UNBLOCKED) {
                c.flags |= cflags::UNBLOCKED;
                srv.blocked.unblocked.push((c.slot, c.id));
            }
        }
        if c.has_pending_replies() && !c.pending_write {
            c.pending_write = true;
            srv.clients_pending_write.push(c.slot);
        }
        crate::networking::put_client(srv, c);
    }
}

/// CLIENT PAUSE timeout [WRITE|ALL].
pub fn client_pause_command(srv: &mut Server, c: &mut Client) {
    let t = std::str::from_utf8(&c.argv[2])
        .ok()
        .and_then(|s| s.parse::<i64>().ok());
    let Some(ms) = t else {
        c.reply
            .add_error("ERR timeout is not an integer or out of range");
        return;
    };
    if ms < 0 {
        c.reply.add_error("ERR timeout is negative");
        return;
    }
    let mut all = true;
    if c.argv.len() >= 4 {
        if crate::util::eq_ic(&c.argv[3], "write") {
            all = false;
        } else if !crate::util::eq_ic(&c.argv[3], "all") {
            c.reply
                .add_error("ERR CLIENT PAUSE mode must be WRITE or ALL");
            return;
        }
    }
    let now = crate::util::mstime();
    let end = now.saturating_add(ms);
    let p = &mut srv.pause;
    // An ALL pause in effect is not weakened to WRITE; the later end wins.
    p.all = all || (p.all && p.client_active(now));
    p.end_ms = if p.client_active(now) {
        p.end_ms.max(end)
    } else {
        end
    };
    if p.end_ms <= now {
        // A zero timeout: paused until the next before-sleep.
        p.end_ms = now;
    }
    c.reply.add_ok();
}

/// CLIENT UNPAUSE.
pub fn client_unpause_command(srv: &mut Server, c: &mut Client) {
    srv.pause.end_ms = 0;
    c.reply.add_ok();
}

/// INFO clients `paused_reason`, `paused_actions`, `paused_timeout_milliseconds`.
pub fn info_fields(srv: &Server) -> (&'static str, &'static str, i64) {
    let now = crate::util::mstime();
    if srv.pause.client_active(now) {
        let all = srv.pause.all;
        (
            "client_pause",
            if all { "all" } else { "write" },
            srv.pause.end_ms - now,
        )
    } else if srv.pause.shutdown {
        let left = (srv.ops.shutdown_mstime - now).max(0);
        ("shutdown_in_progress", "write", left)
    } else if srv.pause.failover_active(now) {
        (
            "failover_in_progress",
            "write",
            srv.pause.failover_end_ms - now,
        )
    } else {
        ("none", "none", 0)
    }
}
