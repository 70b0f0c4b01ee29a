//! Serving clients while the main thread is blocked: loading a dataset (start-up, DEBUG
//! RELOAD, a replica's full sync) or running a long script. Upstream's
//! `processEventsWhileBlocked`, `blockingOperationStarts/Ends`, `whileBlockedCron` (in
//! `server.c`), `startLoading`/`stopLoading` and `rdbLoadProgressCallback` (`rdb.c`).
//!
//! # What it does
//! - [`enter`] / [`leave`] bracket a blocking operation of a [`BusyKind`]. While one is
//!   entered, commands that other clients send while the loop is re-entered are refused
//!   by `commands::process_command` at upstream's place in the gate: `-LOADING` for
//!   commands without the `loading` flag (EXEC: if a queued command lacks it),
//!   `-BUSY ... SCRIPT KILL ...` / `... FUNCTION KILL ...` for commands without
//!   `allow-busy`. Clients outside the client table (the AOF loading client, a script's
//!   own calls) are never refused: only commands reached through
//!   [`process_events_while_blocked`] are ([`serving`]).
//! - [`process_events_while_blocked`] runs up to four non-blocking turns of the event
//!   loop (file events, the reduced before-sleep of `server::before_sleep`), stopping
//!   early when a turn does nothing, then the few periodic jobs of upstream's
//!   `whileBlockedCron` (not `serverCron`): the cron loop counter, memory statistics
//!   while loading, a shutdown signal while loading.
//! - Loading: [`start_loading`] / [`stop_loading`] keep the INFO persistence progress
//!   fields (`loading_start_time`, `loading_total_bytes`, `loading_rdb_used_mem`,
//!   `loading_loaded_bytes`, `loading_loaded_perc`, `loading_eta_seconds`), and
//!   [`loading_progress`] (called by the loaders with the bytes consumed) processes events
//!   every `loading-process-events-interval-bytes` (2 MB by default). [`key_loaded`]
//!   applies the hidden test knob `key-load-delay` (microseconds per key; a negative
//!   value -N sleeps 1 us with probability 1/N, as upstream's `debugDelay`).
//!
//! # For scripts (EVAL / FCALL)
//! From the instruction hook, once the script has run `busy-reply-threshold` ms: call
//! [`enter`]`(srv, BusyKind::Eval)` (or `Function`) once, then
//! [`process_events_while_blocked`]`(srv)` at every hook (upstream: every 100000
//! instructions), checking afterwards whether SCRIPT KILL / FUNCTION KILL asked to stop;
//! [`leave`]`(srv)` when the script ends, whatever the outcome. SHUTDOWN without NOSAVE
//! answers the BUSY error meanwhile ([`script_busy`], [`busy_error`]); SCRIPT KILL,
//! FUNCTION KILL and FUNCTION STATS must carry the `allow_busy` flag to run. The primary's
//! stream waits until [`leave`] (applied in the next before-sleep). `DEBUG RS-BUSY`
//! ([`debug_busy`]) follows this pattern.
//!
//! # The running client is protected
//! The client whose command blocks is out of the slab while its command runs
//! (`networking::take_client`), so nothing served meanwhile can read from, write to or
//! free it: its handlers find the slot empty. Because readiness is edge-triggered, a
//! handler that finds its client in service records the event ([`defer_event`]) and it
//! is re-armed with `set_pending` when the blocked period ends, so its input is read
//! afterwards. before-sleep keeps such a client in the pending-write and close queues
//! instead of dropping it. The running command is never re-entered: the nested turns only
//! reach other descriptors, and commands that could block again (DEBUG, EVAL...) are
//! refused while busy.
//!
//! # Re-entering the loop (the one `unsafe`)
//! A command handler gets `(&mut Server, &mut Client)`, not the loop that called it. The
//! loop is reached through a pointer the server keeps while a handler that holds the
//! `&mut EventLoop` runs code that may block: [`with_loop`] takes that `&mut EventLoop`,
//! stores it as a raw pointer in `srv.busy`, runs the closure with the server only, and
//! restores the previous pointer. [`process_events_while_blocked`] turns the pointer back
//! into a `&mut EventLoop` for its duration. Invariants (see the SAFETY comment):
//! 1. the pointer is only stored by [`with_loop`], from a live `&mut EventLoop` that is
//!    moved into it, so that caller can not touch the loop until the closure returns; it
//!    is removed (the previous value restored) before [`with_loop`] returns, so it never
//!    outlives the borrow it came from;
//! 2. it is only dereferenced by [`process_events_while_blocked`], which runs inside such a
//!    closure (deeper on the same thread's stack), never twice at once (`in_events`), and
//!    drops the reference before returning;
//! 3. the loop tolerates being re-entered from one of its handlers
//!    (`ae::EventLoop::process_events`, "Re-entrance"): it keeps no borrow of its own
//!    state across a handler call.
//!
//! So the reference made from the pointer is, in effect, a reborrow of the handler's
//! `&mut EventLoop` passed down the stack beside the server, used while the handler is
//! suspended. Without a registered loop (unit tests) [`process_events_while_blocked`]
//! only runs the cron part.

use std::os::unix::io::RawFd;
use std::ptr::NonNull;

use crate::server::{EventLoop, Server};

/// What blocks the main thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusyKind {
    /// Loading a dataset: `-LOADING` unless the command is flagged `loading`.
    Loading,
    /// A script run by EVAL past `busy-reply-threshold`: `-BUSY` unless `allow-busy`.
    Eval,
    /// A function run by FCALL past `busy-reply-threshold`.
    Function,
}

pub const ERR_LOADING: &str = "LOADING Valkey is loading the dataset in memory";
pub const ERR_BUSY_EVAL: &str =
    "BUSY Valkey is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
pub const ERR_BUSY_FUNCTION: &str =
    "BUSY Valkey is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// Event loop turns per call, as upstream (enough to accept a connection, read its
/// command and write the reply).
const ITERATIONS: usize = 4;

/// The state of blocking operations, `srv.busy`.
#[derive(Default)]
pub struct Busy {
    /// The loop of the handler below on the stack (see the module doc).
    el: Option<NonNull<EventLoop>>,
    /// The operations entered, innermost last.
    kinds: Vec<BusyKind>,
    /// Nesting of [`process_events_while_blocked`] (0 or 1).
    in_events: u32,
    /// Upstream's `blocked_last_cron`: where `whileBlockedCron` caught up to (ms).
    blocked_last_cron: i64,
    /// Events of protected clients seen while serving others, re-armed afterwards.
    deferred: Vec<(RawFd, u32)>,
    /// A busy script ended: the primary client's buffered stream is to be applied
    /// (`server::before_sleep`).
    pub resume_primary: bool,
    /// Events processed by the nested turns (upstream's
    /// `events_processed_while_blocked`).
    pub events_processed_while_blocked: u64,
    /// Loading progress (INFO persistence).
    pub loading_start_time: i64,
    pub loading_total_bytes: u64,
    pub loading_loaded_bytes: u64,
    pub loading_rdb_used_mem: u64,
    /// `loading_loaded_bytes` when events were last processed.
    loading_events_at: u64,
    /// `loading-process-events-interval-bytes` and `key-load-delay`, read when the load
    /// starts.
    events_interval: u64,
    key_load_delay: i64,
}

/// Runs `f` with the loop registered for [`process_events_while_blocked`] (`el` stays
/// borrowed by this call, so the caller can not use it meanwhile), then re-arms the
/// events deferred for clients that were in service.
pub fn with_loop<R>(el: &mut EventLoop, srv: &mut Server, f: impl FnOnce(&mut Server) -> R) -> R {
    let prev = srv.busy.el.replace(NonNull::from(&mut *el));
    let r = f(srv);
    // The pointer made from `el` is gone before `el` is used again.
    srv.busy.el = prev;
    if srv.busy.in_events == 0 {
        for (fd, mask) in std::mem::take(&mut srv.busy.deferred) {
            el.set_pending(fd, mask);
        }
    }
    r
}

/// Starts a blocking operation (`blockingOperationStarts`; for `Loading` also the
/// `loading` flag).
pub fn enter(srv: &mut Server, kind: BusyKind) {
    if srv.busy.kinds.is_empty() {
        srv.update_cached_time();
        srv.busy.blocked_last_cron = srv.mstime;
    }
    srv.busy.kinds.push(kind);
    if kind == BusyKind::Loading {
        srv.rdb.loading = true;
    }
}

/// Ends the innermost blocking operation.
pub fn leave(srv: &mut Server) {
    let was_script = script_busy(srv);
    if srv.busy.kinds.pop() == Some(BusyKind::Loading)
        && !srv.busy.kinds.contains(&BusyKind::Loading)
    {
        srv.rdb.loading = false;
    }
    if was_script && !script_busy(srv) {
        // The primary's stream waited (networking::process_input_buffer): applied in
        // the next before-sleep.
        srv.busy.resume_primary = true;
    }
    if srv.busy.kinds.is_empty() {
        srv.busy.blocked_last_cron = 0;
        srv.update_cached_time();
    }
}

/// The innermost blocking operation, if any.
pub fn kind(srv: &Server) -> Option<BusyKind> {
    srv.busy.kinds.last().copied()
}

/// Whether a script is past its busy threshold (upstream's
/// `isInsideYieldingLongCommand`).
pub fn script_busy(srv: &Server) -> bool {
    matches!(kind(srv), Some(BusyKind::Eval | BusyKind::Function))
}

/// Whether the commands being processed come from [`process_events_while_blocked`]
/// (the only ones the LOADING and BUSY checks refuse).
pub fn serving(srv: &Server) -> bool {
    srv.busy.in_events > 0
}

/// The refusal for command `id` of `c` while blocked, at upstream's place in
/// `processCommand` (after the stale-data check): LOADING first, then BUSY.
pub fn refusal(srv: &Server, c: &crate::client::Client, id: usize) -> Option<&'static str> {
    use crate::commands::flags;
    if !serving(srv) {
        return None;
    }
    let cmds = &srv.commands.commands;
    let def = cmds[id].def;
    if srv.rdb.loading {
        let is_exec = def.name == "exec";
        let deny = def.flags & flags::LOADING == 0
            || (is_exec
                && c.mstate
                    .iter()
                    .any(|q| cmds[q.id].def.flags & flags::LOADING == 0));
        if deny {
            return Some(ERR_LOADING);
        }
    }
    if script_busy(srv) && def.flags & flags::ALLOW_BUSY == 0 {
        return Some(busy_error(srv));
    }
    None
}

/// The BUSY error of the running script kind.
pub fn busy_error(srv: &Server) -> &'static str {
    match srv
        .busy
        .kinds
        .iter()
        .rev()
        .find(|k| **k != BusyKind::Loading)
    {
        Some(BusyKind::Function) => ERR_BUSY_FUNCTION,
        _ => ERR_BUSY_EVAL,
    }
}

/// A handler found its client in service (out of the slab): its event is re-armed when
/// the blocked period ends (edge-triggered readiness would not report it again).
pub fn defer_event(srv: &mut Server, fd: RawFd, mask: u32) {
    if !srv.busy.deferred.contains(&(fd, mask)) {
        srv.busy.deferred.push((fd, mask));
    }
}

/// Serves other clients from inside a long operation (upstream's
/// `processEventsWhileBlocked`). Callable from a command handler or a loader; does
/// nothing but the cron part without a registered loop, and nothing when already
/// inside (a command served here can not re-enter).
pub fn process_events_while_blocked(srv: &mut Server) {
    if srv.busy.in_events > 0 {
        return;
    }
    srv.busy.in_events += 1;
    srv.update_cached_time();
    // The command running below keeps its per-command state.
    let saved_current = srv.current_client.take();
    let saved_add_flags = std::mem::take(&mut srv.current_client_add_flags);
    let saved_no_touch = srv.current_client_no_touch;
    let saved_applying = srv.repl.replica.applying;
    srv.repl.replica.applying = false;
    if let Some(p) = srv.busy.el {
        // SAFETY: `p` was stored by `with_loop` from a `&mut EventLoop` that is moved
        // into it and whose owner (a handler frame below us on this thread's stack) is
        // suspended inside `with_loop`'s closure until we return; `with_loop` removes
        // the pointer before it returns, so it is live here (invariants 1 and 2 of the
        // module doc). `in_events` makes this the only reference made from it; it is
        // dropped at the end of this block. The loop supports being re-entered from its
        // handler (invariant 3).
        let el: &mut EventLoop = unsafe { &mut *p.as_ptr() };
        for _ in 0..ITERATIONS {
            // Before-sleep adds the replies it wrote to the counter too.
            let before = srv.busy.events_processed_while_blocked;
            let n = el.process_events(
                srv,
                ae::FILE_EVENTS | ae::DONT_WAIT | ae::CALL_BEFORE_SLEEP | ae::CALL_AFTER_SLEEP,
            );
            srv.busy.events_processed_while_blocked += n as u64;
            if srv.busy.events_processed_while_blocked == before {
                break;
            }
        }
        for (fd, mask) in std::mem::take(&mut srv.busy.deferred) {
            el.set_pending(fd, mask);
        }
    }
    srv.current_client = saved_current;
    srv.current_client_add_flags = saved_add_flags;
    srv.current_client_no_touch = saved_no_touch;
    srv.repl.replica.applying = saved_applying;
    while_blocked_cron(srv);
    srv.busy.in_events -= 1;
    if srv.ops.exit_now {
        // SHUTDOWN (flagged loading and allow-busy) completed the shutdown: nothing
        // would stop the loop from here.
        std::process::exit(0);
    }
}

/// The periodic jobs upstream runs while blocked (`whileBlockedCron`).
fn while_blocked_cron(srv: &mut Server) {
    if srv.busy.blocked_last_cron == 0 || srv.busy.blocked_last_cron >= srv.mstime {
        return;
    }
    let start = std::time::Instant::now();
    let hz_ms = (1000 / srv.hz.max(1)) as i64;
    while srv.busy.blocked_last_cron < srv.mstime {
        srv.busy.blocked_last_cron += hz_ms;
        srv.cronloops += 1;
    }
    if srv.rdb.loading {
        crate::memory::cron_update_memory_stats(srv);
    }
    let ms = start.elapsed().as_millis() as u64;
    let threshold = srv.config.latency_monitor_threshold;
    if threshold > 0 && ms >= threshold as u64 {
        let now = srv.unixtime;
        srv.latency.add_sample("while-blocked-cron", ms, now);
    }
    // A shutdown signal while loading exits here, without saving.
    if srv.rdb.loading {
        crate::ops::shutdown_while_loading(srv);
    }
}

/// Starts loading `total_bytes` (upstream's `startLoading`). A load inside a load (the
/// RDB base of an AOF) keeps the outer progress.
pub fn start_loading(srv: &mut Server, total_bytes: u64) {
    let nested = srv.rdb.loading;
    enter(srv, BusyKind::Loading);
    if nested {
        return;
    }
    let b = &mut srv.busy;
    b.loading_start_time = crate::util::mstime() / 1000;
    b.loading_total_bytes = total_bytes;
    b.loading_loaded_bytes = 0;
    b.loading_rdb_used_mem = 0;
    b.loading_events_at = 0;
    b.events_interval = srv
        .config
        .get("loading-process-events-interval-bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(2 * 1024 * 1024u64)
        .max(1);
    b.key_load_delay = srv
        .config
        .get("key-load-delay")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
}

/// Ends a load started by [`start_loading`].
pub fn stop_loading(srv: &mut Server) {
    leave(srv);
}

/// `delta` more bytes were loaded: serve clients every
/// `loading-process-events-interval-bytes` (upstream's `rdbLoadProgressCallback`).
pub fn loading_progress(srv: &mut Server, delta: u64) {
    let b = &mut srv.busy;
    b.loading_loaded_bytes = b.loading_loaded_bytes.saturating_add(delta);
    if b.loading_loaded_bytes - b.loading_events_at.min(b.loading_loaded_bytes) >= b.events_interval
    {
        b.loading_events_at = b.loading_loaded_bytes;
        process_events_while_blocked(srv);
    }
}

/// Counts `delta` loaded bytes without processing events (the AOF loader processes
/// events every 1024 commands instead, as upstream).
pub fn loading_incr(srv: &mut Server, delta: u64) {
    let b = &mut srv.busy;
    b.loading_loaded_bytes = b.loading_loaded_bytes.saturating_add(delta);
}

/// A key was loaded: the `key-load-delay` test knob (upstream's `debugDelay`).
pub fn key_loaded(srv: &Server) {
    let d = srv.busy.key_load_delay;
    if d == 0 {
        return;
    }
    let us = if d < 0 {
        u64::from(crate::util::random_u64().is_multiple_of(d.unsigned_abs()))
    } else {
        d as u64
    };
    if us > 0 {
        std::thread::sleep(std::time::Duration::from_micros(us));
    }
}

/// The loading fields of INFO persistence, last in the section (after the
/// `aof_enabled` ones), only while loading, as upstream.
pub fn info_loading_fields(srv: &Server, s: &mut String) {
    use std::fmt::Write as _;
    if !srv.rdb.loading {
        return;
    }
    let b = &srv.busy;
    let (perc, remaining) = if b.loading_total_bytes > 0 {
        (
            b.loading_loaded_bytes as f64 * 100.0 / b.loading_total_bytes as f64,
            b.loading_total_bytes.saturating_sub(b.loading_loaded_bytes),
        )
    } else {
        (0.0, 1)
    };
    let elapsed = (crate::util::mstime() / 1000 - b.loading_start_time).max(0) as u64;
    // A fake one second until there is something to extrapolate from (as upstream).
    let eta = if elapsed == 0 {
        1
    } else {
        elapsed.saturating_mul(remaining) / (b.loading_loaded_bytes + 1)
    };
    let _ = write!(
        s,
        "loading_start_time:{}\r\nloading_total_bytes:{}\r\nloading_rdb_used_mem:{}\r\n\
         loading_loaded_bytes:{}\r\nloading_loaded_perc:{:.2}\r\nloading_eta_seconds:{}\r\n",
        b.loading_start_time,
        b.loading_total_bytes,
        b.loading_rdb_used_mem,
        b.loading_loaded_bytes,
        perc,
        eta
    );
}

/// `DEBUG RS-BUSY <ms> [EVAL|FUNCTION]` (ours, for tests; upstream has no such
/// subcommand): spins for `ms` milliseconds like a script that never yields, and once
/// `busy-reply-threshold` has passed behaves as a busy script does: other clients get
/// -BUSY (or run `allow-busy` commands) while it calls
/// [`process_events_while_blocked`] about every millisecond.
pub fn debug_busy(srv: &mut Server, c: &mut crate::client::Client) {
    let ms = c
        .argv
        .get(2)
        .and_then(|a| crate::util::parse_i64_strict(a))
        .filter(|v| *v >= 0);
    let Some(ms) = ms else {
        c.reply
            .add_error("ERR value is not an integer or out of range");
        return;
    };
    let kind = match c.argv.get(3) {
        None => BusyKind::Eval,
        Some(a) if crate::util::eq_ic(a, "eval") => BusyKind::Eval,
        Some(a) if crate::util::eq_ic(a, "function") => BusyKind::Function,
        Some(_) => {
            c.reply.add_error(crate::reply::ERR_SYNTAX);
            return;
        }
    };
    let start = std::time::Instant::now();
    let total = std::time::Duration::from_millis(ms as u64);
    let threshold = std::time::Duration::from_millis(srv.config.busy_reply_threshold.max(0) as u64);
    let mut entered = false;
    while start.elapsed() < total {
        // About a millisecond of "script" between hooks.
        let slice = std::time::Instant::now();
        while slice.elapsed() < std::time::Duration::from_millis(1) {
            std::hint::spin_loop();
        }
        if start.elapsed() >= threshold {
            if !entered {
                log::warn!(
                    "Slow script detected: still in execution after {} milliseconds. You can \
                     try killing the script using the SCRIPT KILL command. Script name is: \
                     DEBUG RS-BUSY.",
                    start.elapsed().as_millis()
                );
                enter(srv, kind);
                entered = true;
            }
            process_events_while_blocked(srv);
        }
    }
    if entered {
        leave(srv);
    }
    c.reply.add_ok();
}
