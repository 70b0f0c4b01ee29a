//! Running a script (upstream's `script.c`): the run context, the checks before a
//! run (`scriptPrepareForRun`), the gate of every `server.call` (`scriptCall`), the
//! instruction hook (slow-script detection, SCRIPT KILL) and the call into Lua.
//!
//! # The server pointer
//! `server.call` and the hook are C functions called by Lua while the EVAL handler
//! is inside the Lua call, and they need the server. As upstream keeps its run
//! context in the Lua registry, the running script's server is kept here in a
//! thread-local raw pointer, set by [`run_script`] just before the Lua call and
//! cleared right after it. While it is set, the handler does not touch its own
//! `&mut Server` (it is inside the Lua call), so the pointer is the only path to
//! the server; the Lua state itself was taken out of the server for the run, and the
//! calling client is outside the server (taken out of the client table while
//! served). Everything is on the main thread.

use std::cell::Cell;
use std::os::raw::c_int;
use std::time::Instant;

use log::{debug, info, warn};
use mlua::ffi::{self, lua_State};

use crate::client::{flags as cflags, Client};
use crate::commands::flags as f;
use crate::server::Server;

thread_local! {
    static SERVER: Cell<*mut Server> = const { Cell::new(std::ptr::null_mut()) };
}

/// Run flags (upstream's SCRIPT_* run flags).
pub mod rflags {
    pub const READ_ONLY: u32 = 1 << 0;
    pub const ALLOW_OOM: u32 = 1 << 1;
    pub const WRITE_DIRTY: u32 = 1 << 2;
    pub const KILLED: u32 = 1 << 3;
    pub const TIMEDOUT: u32 = 1 << 4;
    pub const ALLOW_STALE: u32 = 1 << 5;
    pub const ALLOW_CROSS_SLOT: u32 = 1 << 6;
    /// The server was over maxmemory when the script started (pre_command_oom_state).
    pub const OOM_AT_START: u32 = 1 << 7;
    pub const EVAL_MODE: u32 = 1 << 8;
}

/// Shebang flags (upstream's SCRIPT_FLAG_*).
pub mod sflags {
    pub const NO_WRITES: u64 = 1 << 0;
    pub const ALLOW_OOM: u64 = 1 << 1;
    pub const ALLOW_STALE: u64 = 1 << 2;
    pub const NO_CLUSTER: u64 = 1 << 3;
    pub const ALLOW_CROSS_SLOT: u64 = 1 << 4;
    /// No shebang: EVAL compatibility mode.
    pub const EVAL_COMPAT: u64 = 1 << 5;

    pub const NAMES: &[(u64, &str)] = &[
        (NO_WRITES, "no-writes"),
        (ALLOW_OOM, "allow-oom"),
        (ALLOW_STALE, "allow-stale"),
        (NO_CLUSTER, "no-cluster"),
        (ALLOW_CROSS_SLOT, "allow-cross-slot-keys"),
    ];
}

/// The running script.
pub struct RunCtx {
    /// The caller's client id and whether it is our primary (or the AOF).
    pub caller_id: u64,
    pub caller_is_primary: bool,
    /// The caller's user, for ACL checks.
    pub user: String,
    pub flags: u32,
    /// server.set_repl targets (PROPAGATE_AOF | PROPAGATE_REPL).
    pub repl: u8,
    /// The script client's protocol (server.setresp).
    pub resp: u8,
    pub start: Instant,
    /// The sha (or function name) for the slow-script log.
    pub name: String,
    /// Error replies of the script not counted in the error statistics.
    pub uncounted_errors: u32,
    /// The caller's READONLY and ASKING flags, for the cluster checks of its commands.
    pub caller_readonly: bool,
    pub caller_asking: bool,
    /// The slot the script works on in cluster mode: its declared keys' slot, else the
    /// slot of the first command with keys (upstream's `run_ctx->slot`).
    pub slot: Option<u16>,
}

/// Runs `f` with the running script's server; `None` when no script runs.
fn with_server<R>(f: impl FnOnce(&mut Server) -> R) -> Option<R> {
    let p = SERVER.with(|s| s.get());
    if p.is_null() {
        return None;
    }
    // SAFETY: see the module comment: set only during the Lua call of run_script,
    // where it is the only live path to the server.
    Some(f(unsafe { &mut *p }))
}

/// A script replied an error already counted when its command failed: the script's
/// command is counted as failed without counting the error again.
pub fn note_uncounted_error() {
    with_server(|srv| {
        if let Some(r) = srv.scripting.run.as_mut() {
            r.uncounted_errors += 1;
        }
    });
}

/// server.set_repl.
pub fn set_repl(flags: u8) {
    with_server(|srv| {
        if let Some(r) = srv.scripting.run.as_mut() {
            r.repl = flags;
        }
    });
}

/// server.setresp.
pub fn set_resp(resp: u8) {
    with_server(|srv| {
        if let Some(r) = srv.scripting.run.as_mut() {
            r.resp = resp;
        }
    });
}

/// server.log at upstream's level (0 debug .. 3 warning).
pub fn log(level: u8, msg: &[u8]) {
    let m = String::from_utf8_lossy(msg);
    match level {
        0 | 1 => debug!("{}", m),
        2 => info!("{}", m),
        _ => warn!("{}", m),
    }
}

/// server.acl_check_cmd: `None` for an unknown command, else whether the caller's
/// user may run it.
pub fn acl_check(argv: &[Vec<u8>]) -> Option<bool> {
    with_server(|srv| {
        let id = match srv.commands.lookup(argv) {
            Ok(id) if !srv.commands.is_disabled(id) => id,
            _ => return None,
        };
        let mut sc = srv.scripting.client.take()?;
        let d = crate::aclsrv::check(srv, &mut sc, id, argv);
        srv.scripting.client = Some(sc);
        Some(d.is_none())
    })
    .flatten()
}

/// server.call: runs `argv` through [`crate::commands::process_command`] on the
/// script client and returns its reply bytes and the script's protocol.
pub fn script_call(argv: Vec<Vec<u8>>) -> Option<(Vec<u8>, u8)> {
    with_server(|srv| {
        let resp = srv.scripting.run.as_ref()?.resp;
        let mut sc = srv.scripting.client.take()?;
        sc.argv = argv;
        sc.reply.resp = resp;
        crate::commands::process_command(srv, &mut sc);
        let out = std::mem::take(&mut sc.reply.buf);
        sc.reply.sent = 0;
        sc.argv.clear();
        srv.scripting.client = Some(sc);
        Some((out, resp))
    })
    .flatten()
}

/// The script client's part of the command gate (upstream's `scriptCall` checks, in
/// its order), called by `process_command` for the script client. Errors are written
/// as the reply, which server.call raises and server.pcall returns.
pub fn gate(srv: &mut Server, c: &mut Client) -> bool {
    let id = match srv.commands.lookup(&c.argv) {
        Ok(id) if !srv.commands.is_disabled(id) => id,
        // A container with an unknown subcommand runs as the container, which
        // answers `unknown subcommand` (upstream's lookup gives the container).
        Err(Some(parent)) if !srv.commands.is_disabled(parent) => parent,
        _ => {
            return reject(srv, c, None, "ERR Unknown command called from script");
        }
    };
    let def = srv.commands.commands[id].def;
    if crate::commands::arity_mismatch(def.arity, c.argv.len()) {
        return reject(
            srv,
            c,
            Some(id),
            "ERR Wrong number of args calling command from script",
        );
    }
    c.last_cmd = srv.commands.commands[id].full_name_static;
    if def.flags & f::NOSCRIPT != 0 {
        return reject(
            srv,
            c,
            Some(id),
            "ERR This Valkey command is not allowed from script",
        );
    }
    let (rflags, caller_is_primary) = srv
        .scripting
        .run
        .as_ref()
        .map_or((0, false), |r| (r.flags, r.caller_is_primary));
    // The order of the checks below is valkey 9.1.2's, measured on the reference (it
    // differs from the scriptCall of earlier versions): OOM, ACL, cluster, read-only
    // script, stale replica, then the other write checks.
    let write = def.flags & f::WRITE != 0;
    // OOM: only before the first write, and only if the server was out of memory
    // when the script started.
    if srv.config.maxmemory != 0
        && rflags & (rflags::WRITE_DIRTY | rflags::ALLOW_OOM) == 0
        && rflags & rflags::OOM_AT_START != 0
        && def.flags & f::DENYOOM != 0
    {
        return reject(srv, c, Some(id), crate::evict::ERR_OOM);
    }
    // ACL, with the caller's user; the ACL LOG entry has context `lua`.
    let argv = std::mem::take(&mut c.argv);
    let denied = crate::aclsrv::check(srv, c, id, &argv);
    c.argv = argv;
    if let Some(d) = denied {
        crate::aclsrv::log_denial(srv, c, id, &c.argv, d, ::acl::LogContext::Lua);
        let m = crate::aclsrv::deny_message(srv, &c.user, id, d);
        let m = m.strip_prefix("NOPERM ").unwrap_or(&m);
        let e = format!("ERR ACL failure in script: {}", m);
        // Counted as NOPERM in the error statistics (valkey 9.1.2, measured).
        c.reply.add_error(&e);
        c.reply.last_error_code = Some("NOPERM".into());
        srv.stats.note_error(&c.reply);
        srv.commands.stats[id].rejected_calls += 1;
        return true;
    }
    // Cluster: the keys must be served here and, unless the script allows cross-slot
    // keys, hash to the script's slot. Not for our primary's stream nor the AOF.
    if srv.config.cluster_enabled && !caller_is_primary {
        if let Some(e) = cluster_check(srv, c, id) {
            return reject(srv, c, Some(id), &e);
        }
    }
    // A read-only script (no-writes, *_RO) runs no write nor may-replicate command.
    if rflags & rflags::READ_ONLY != 0 && (write || may_replicate(def)) {
        return reject(
            srv,
            c,
            Some(id),
            "ERR Write commands are not allowed from read-only scripts.",
        );
    }
    // allow-stale: only scripts with the flag get here on a stale replica.
    let replica = crate::replication::replica::is_replica(srv);
    if replica
        && !crate::replication::replica::link_up(srv)
        && srv.config.get("replica-serve-stale-data").as_deref() == Some("no")
        && def.flags & f::STALE == 0
    {
        return reject(
            srv,
            c,
            Some(id),
            "ERR Can not execute the command on a stale replica",
        );
    }
    // The server-state checks of a write, until the script has written (it can not be
    // stopped half-way then).
    if write && rflags & rflags::WRITE_DIRTY == 0 {
        if replica
            && !caller_is_primary
            && srv.config.get("replica-read-only").as_deref() == Some("yes")
        {
            return reject(
                srv,
                c,
                Some(id),
                "READONLY You can't write against a read only replica.",
            );
        }
        let disk = if crate::rdb::writes_denied(srv) {
            Some(crate::rdb::ERR_MISCONF.to_string())
        } else {
            crate::aof::write_error(srv)
        };
        if let Some(e) = disk {
            return reject(srv, c, Some(id), &e);
        }
        if let Some(e) = crate::replication::primary::min_replicas_error(srv) {
            return reject(srv, c, Some(id), e);
        }
    }
    if write {
        if let Some(r) = srv.scripting.run.as_mut() {
            r.flags |= rflags::WRITE_DIRTY;
        }
    }
    // The call, its propagation limited to the set_repl targets.
    let before = srv.propagation.ops.len();
    crate::commands::call(srv, c, id);
    let repl = srv.scripting.run.as_ref().map_or(3, |r| r.repl);
    if repl != crate::propagate::PROPAGATE_ALL && srv.propagation.ops.len() > before {
        let mut tail = srv.propagation.ops.split_off(before);
        for op in tail.iter_mut() {
            op.target &= repl;
        }
        tail.retain(|op| op.target != 0);
        srv.propagation.ops.extend(tail);
    }
    true
}

/// Upstream's CMD_MAY_REPLICATE commands (PUBLISH, SPUBLISH, PFCOUNT: they may
/// propagate without being writes). Our command table does not carry the flag on them
/// (COMMAND INFO does not show it), so the names are listed here.
fn may_replicate(def: &crate::commands::CommandDef) -> bool {
    def.flags & f::MAY_REPLICATE != 0 || matches!(def.name, "publish" | "spublish" | "pfcount")
}

/// The cluster checks of a script's command (upstream's scriptVerifyClusterState, with
/// the texts of valkey 9.1.2, measured): the error to raise, if any.
fn cluster_check(srv: &mut Server, c: &Client, id: usize) -> Option<String> {
    use crate::cluster::redirect::Redirect;
    let (readonly, asking, rflags) = srv.scripting.run.as_ref().map_or((false, false, 0), |r| {
        (r.caller_readonly, r.caller_asking, r.flags)
    });
    let (decision, slot) = crate::cluster::script_redirect(srv, c, id, readonly, asking);
    let name = &srv.commands.commands[id].full_name;
    match decision {
        Redirect::Local => {}
        Redirect::DownState => {
            return Some(format!(
                "ERR Can not execute a command '{}' while the cluster is down",
                name
            ))
        }
        Redirect::DownReadOnlyState => {
            return Some(format!(
                "ERR Can not execute a write command '{}' while the cluster is down and \
                 readonly",
                name
            ))
        }
        // MOVED, ASK, CROSSSLOT, TRYAGAIN, unbound slot: one text.
        _ => return Some("ERR Attempted to access a non local key in a cluster node".into()),
    }
    let slot = slot?;
    if rflags & rflags::ALLOW_CROSS_SLOT != 0 {
        return None;
    }
    let r = srv.scripting.run.as_mut()?;
    match r.slot {
        None => r.slot = Some(slot),
        Some(s) if s != slot => {
            return Some(
                "ERR Script attempted to access keys that do not hash to the same slot".into(),
            )
        }
        Some(_) => {}
    }
    None
}

/// A command of a script refused by the gate: the error is the reply (raised by
/// server.call), counted in the error statistics and as a rejected call here, as
/// upstream's scriptCall (the script's own error reply is then not counted again).
fn reject(srv: &mut Server, c: &mut Client, id: Option<usize>, msg: &str) -> bool {
    c.reply.add_error(msg);
    srv.stats.note_error(&c.reply);
    if let Some(id) = id {
        srv.commands.stats[id].rejected_calls += 1;
    }
    true
}

/// The errors of `scriptPrepareForRun`, in its order; returns the run flags.
pub fn prepare(srv: &mut Server, c: &Client, script_flags: u64, ro: bool) -> Result<u32, String> {
    use sflags as s;
    let replica = crate::replication::replica::is_replica(srv);
    let stale = replica
        && !crate::replication::replica::link_up(srv)
        && srv.config.get("replica-serve-stale-data").as_deref() == Some("no");
    let obey = c.has_flag(cflags::PRIMARY);
    let mut flags = rflags::EVAL_MODE;
    if script_flags & s::EVAL_COMPAT == 0 {
        if script_flags & s::NO_CLUSTER != 0 && srv.config.cluster_enabled {
            return Err("ERR Can not run script on cluster, 'no-cluster' flag is set.".into());
        }
        if stale && script_flags & s::ALLOW_STALE == 0 {
            return Err(
                "MASTERDOWN Link with MASTER is down, replica-serve-stale-data is set \
                        to 'no' and 'allow-stale' flag is not set on the script."
                    .into(),
            );
        }
        if script_flags & s::NO_WRITES == 0 {
            if replica && !obey && srv.config.get("replica-read-only").as_deref() == Some("yes") {
                return Err(
                    "READONLY Can not run script with write flag on readonly replica".into(),
                );
            }
            if !obey {
                if crate::rdb::writes_denied(srv) {
                    return Err(
                        "MISCONF Valkey is configured to save RDB snapshots, but it's \
                                currently unable to persist to disk. Writable scripts are \
                                blocked. Use 'no-writes' flag for read only scripts."
                            .into(),
                    );
                }
                if let Some(e) = crate::aof::write_error(srv) {
                    let e = e.trim_end_matches('.');
                    return Err(format!(
                        "{}. Writable scripts are blocked. Use 'no-writes' flag for read only \
                         scripts.",
                        e
                    ));
                }
            }
            if ro {
                return Err(
                    "ERR Can not execute a script with write flag using *_ro command.".into(),
                );
            }
            if !obey {
                if let Some(e) = crate::replication::primary::min_replicas_error(srv) {
                    return Err(e.to_string());
                }
            }
        }
        let oom = srv.config.maxmemory != 0
            && !obey
            && crate::evict::perform_evictions(srv) == crate::evict::EvictResult::Fail;
        if oom {
            flags |= rflags::OOM_AT_START;
        }
        if script_flags & (s::ALLOW_OOM | s::NO_WRITES) == 0 && oom {
            return Err(
                "OOM allow-oom flag is not set on the script, can not run it when used \
                        memory > 'maxmemory'"
                    .into(),
            );
        }
        if script_flags & s::NO_WRITES != 0 {
            flags |= rflags::READ_ONLY;
        }
        if script_flags & s::ALLOW_OOM != 0 {
            flags |= rflags::ALLOW_OOM;
        }
        if script_flags & s::ALLOW_STALE != 0 {
            flags |= rflags::ALLOW_STALE;
        }
        if script_flags & s::ALLOW_CROSS_SLOT != 0 {
            flags |= rflags::ALLOW_CROSS_SLOT;
        }
    } else {
        if stale {
            return Err(
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                    .into(),
            );
        }
        flags |= rflags::ALLOW_CROSS_SLOT;
        if srv.config.maxmemory != 0
            && !obey
            && crate::evict::perform_evictions(srv) == crate::evict::EvictResult::Fail
        {
            flags |= rflags::OOM_AT_START;
        }
    }
    if ro {
        flags |= rflags::READ_ONLY;
    }
    Ok(flags)
}

/// The calls into src/busy.rs (re-entrant event processing while a script runs past
/// busy-reply-threshold), in one place.
mod busy {
    use crate::busy::BusyKind;
    use crate::server::Server;

    /// The script passed the threshold: other clients now get -BUSY.
    pub fn enter(srv: &mut Server) {
        // The function state is out of its slot while a function runs.
        let kind = if srv.scripting.func_vm.is_none() {
            BusyKind::Function
        } else {
            BusyKind::Eval
        };
        crate::busy::enter(srv, kind);
    }
    /// Serve the event loop once from the hook (SCRIPT KILL arrives this way).
    pub fn process_events(srv: &mut Server) {
        crate::busy::process_events_while_blocked(srv);
    }
    /// The script ended.
    pub fn leave(srv: &mut Server) {
        crate::busy::leave(srv);
    }
}

/// What the hook decides.
enum Interrupt {
    Continue,
    Kill,
}

/// Called by the hook every 100000 instructions (upstream's scriptInterrupt).
fn interrupt() -> Interrupt {
    with_server(|srv| {
        let threshold = srv.config.busy_reply_threshold;
        let Some(r) = srv.scripting.run.as_mut() else {
            return Interrupt::Continue;
        };
        if r.flags & rflags::KILLED != 0 {
            return Interrupt::Kill;
        }
        let elapsed = r.start.elapsed().as_millis() as i64;
        if r.flags & rflags::TIMEDOUT == 0 {
            if threshold <= 0 || elapsed < threshold {
                return Interrupt::Continue;
            }
            r.flags |= rflags::TIMEDOUT;
            warn!(
                "Slow script detected: still in execution after {} milliseconds. You can try \
                 killing the script using the SCRIPT KILL command. Script name is: {}.",
                elapsed, r.name
            );
            busy::enter(srv);
        }
        busy::process_events(srv);
        match srv.scripting.run.as_ref() {
            Some(r) if r.flags & rflags::KILLED != 0 => Interrupt::Kill,
            _ => Interrupt::Continue,
        }
    })
    .unwrap_or(Interrupt::Continue)
}

/// The instruction hook. On kill it switches to every line so a `pcall` loop can not
/// swallow the kill, and raises the kill error.
unsafe extern "C-unwind" fn hook(l: *mut lua_State, _ar: *mut ffi::lua_Debug) {
    if let Interrupt::Kill = interrupt() {
        ffi::lua_sethook(l, Some(hook), ffi::LUA_MASKLINE, 0);
        let is_fn = with_server(|srv| srv.scripting.func_vm.is_none()).unwrap_or(false);
        if is_fn {
            super::api::push_error(l, b"Script killed by user with FUNCTION KILL.");
        } else {
            super::api::push_error(l, b"Script killed by user with SCRIPT KILL.");
        }
        ffi::lua_error(l);
    }
}

/// SCRIPT KILL (upstream's scriptKill for eval).
pub fn kill(srv: &mut Server) -> Result<(), &'static str> {
    let Some(r) = srv.scripting.run.as_mut() else {
        return Err("NOTBUSY No scripts in execution right now.");
    };
    if r.caller_is_primary {
        return Err(
            "UNKILLABLE The busy script was sent by a master instance in the context of \
                    replication and cannot be killed.",
        );
    }
    if r.flags & rflags::WRITE_DIRTY != 0 {
        return Err(
            "UNKILLABLE Sorry the script already executed write commands against the \
                    dataset. You can either wait the script termination or kill the server in a \
                    hard way using the SHUTDOWN NOSAVE command.",
        );
    }
    r.flags |= rflags::KILLED;
    Ok(())
}

/// The script client, built once (a connectionless client: a unix socket pair end
/// it never reads or writes).
fn script_client(srv: &mut Server) -> Option<Box<Client>> {
    if let Some(c) = srv.scripting.client.take() {
        return Some(c);
    }
    let (a, _b) = mio::net::UnixStream::pair().ok()?;
    let id = srv.next_client_id;
    srv.next_client_id += 1;
    let mut c = Client::new(
        id,
        usize::MAX - 1,
        crate::client::Conn::Unix(a),
        "lua".into(),
        String::new(),
        srv.mstime,
    );
    c.flags = cflags::DENY_BLOCKING | cflags::SCRIPT;
    c.authenticated = true;
    Some(Box::new(c))
}

/// Runs a compiled script for client `c` and writes its reply (upstream's
/// luaCallFunction). `flags` are the run flags from [`prepare`].
#[allow(clippy::too_many_arguments)]
pub fn run_script(
    srv: &mut Server,
    c: &mut Client,
    name: &str,
    func: &mlua::Function,
    keys: &[Vec<u8>],
    args: &[Vec<u8>],
    flags: u32,
    kind: super::vm::VmKind,
) {
    let is_fn = kind == super::vm::VmKind::Function;
    fn slot(srv: &mut Server, is_fn: bool) -> &mut Option<super::vm::LuaVm> {
        if is_fn {
            &mut srv.scripting.func_vm
        } else {
            &mut srv.scripting.eval
        }
    }
    let Some(vm) = slot(srv, is_fn).take() else {
        c.reply.add_error("ERR scripting engine not initialized");
        return;
    };
    let Some(mut sc) = script_client(srv) else {
        *slot(srv, is_fn) = Some(vm);
        c.reply.add_error("ERR can not create the script client");
        return;
    };
    if sc.user != c.user {
        sc.user = c.user.clone();
        // Recompute the user's permissions at the next check (an ACL change bumps the
        // generation anyway, so the same user keeps its cached state).
        sc.acl_gen = u64::MAX;
    }
    sc.db = c.db;
    sc.reply.resp = 2;
    sc.flags = cflags::DENY_BLOCKING | cflags::SCRIPT | (c.flags & cflags::PRIMARY);
    srv.scripting.client = Some(sc);
    srv.scripting.run = Some(RunCtx {
        caller_id: c.id,
        caller_is_primary: c.has_flag(cflags::PRIMARY) || c.slot == usize::MAX,
        user: c.user.clone(),
        flags,
        repl: crate::propagate::PROPAGATE_ALL,
        resp: 2,
        start: Instant::now(),
        name: name.to_string(),
        uncounted_errors: 0,
        caller_readonly: c.has_flag(cflags::READONLY),
        caller_asking: c.has_flag(cflags::ASKING),
        slot: keys.first().map(|k| crate::cluster::slot::key_hash_slot(k)),
    });
    let _ = vm
        .lua
        .set_memory_limit(super::vm::memory_bound(srv.config.maxmemory));
    let fname = format!("f_{}", name);
    let errors_before = c.reply.errors;
    SERVER.with(|s| s.set(srv as *mut Server));
    // SAFETY: the closure works on the raw stack of the state; the hook and the C
    // functions reach the server through SERVER (module comment).
    let res = unsafe {
        vm.lua.exec_raw::<()>(func, |l| {
            if is_fn {
                call_function(l, c, &fname, Some((keys, args)));
            } else {
                set_keys_argv(l, keys, args);
                call_function(l, c, &fname, None);
            }
        })
    };
    SERVER.with(|s| s.set(std::ptr::null_mut()));
    if let Err(e) = res {
        c.reply.add_error(&format!(
            "ERR Error running script (call to {}): {}",
            fname, e
        ));
    }
    let run = srv.scripting.run.take();
    if let Some(r) = &run {
        if r.uncounted_errors > 0 && c.reply.errors == errors_before {
            // Failed, without counting the error again (upstream's afterErrorReply with
            // ERR_REPLY_FLAG_NO_STATS_UPDATE).
            if let Some(id) = srv.commands.lookup_base(c.last_cmd.as_bytes()) {
                srv.commands.stats[id].failed_calls += 1;
            }
        }
    }
    if run.is_some_and(|r| r.flags & rflags::TIMEDOUT != 0) {
        busy::leave(srv);
    }
    // A GC step every 50 runs (upstream's LUA_GC_CYCLE_PERIOD), and a full one after
    // the heap hit its bound.
    srv.scripting.gc_count += 1;
    if srv.scripting.gc_count >= 50 {
        srv.scripting.gc_count = 0;
        let _ = vm.lua.gc_step();
    }
    if is_fn {
        srv.scripting.func_vm = Some(vm);
    } else {
        srv.scripting.eval_vm_memory = vm.used_memory() / 1024 * 1024;
        srv.scripting.eval = Some(vm);
    }
}

extern "C" {
    /// vendor/lua-src (lua-patch, see src/scripting/ffi.rs): sets or clears the
    /// read-only flag of the table at `idx`.
    fn lua_enablereadonlytable(l: *mut lua_State, idx: c_int, enabled: c_int);
}

/// Sets the globals KEYS and ARGV on the raw stack (the global lock is opened for the
/// two, as upstream's luaCallFunction). If an allocation fails half-way the error
/// leaves this function and the script does not run; every run closes the lock again
/// before its script starts.
unsafe fn set_keys_argv(l: *mut lua_State, keys: &[Vec<u8>], args: &[Vec<u8>]) {
    lua_enablereadonlytable(l, ffi::LUA_GLOBALSINDEX, 0);
    for (name, items) in [(c"KEYS", keys), (c"ARGV", args)] {
        ffi::lua_createtable(l, items.len().min(1 << 20) as c_int, 0);
        for (i, a) in items.iter().enumerate() {
            super::api::push_bytes(l, a);
            ffi::lua_rawseti(l, -2, (i + 1) as _);
        }
        // Raw: `_G`'s __newindex refuses new globals.
        ffi::lua_pushstring(l, name.as_ptr());
        ffi::lua_insert(l, -2);
        ffi::lua_rawset(l, ffi::LUA_GLOBALSINDEX);
    }
    lua_enablereadonlytable(l, ffi::LUA_GLOBALSINDEX, 1);
}

/// The `(keys, args)` of a function call.
type FnArgs<'a> = (&'a [Vec<u8>], &'a [Vec<u8>]);

/// The Lua side of a run: error handler and function on the stack, the hook, the
/// protected call, and the conversion of the result into `c`'s reply.
unsafe fn call_function(l: *mut lua_State, c: &mut Client, fname: &str, fargs: Option<FnArgs>) {
    // Stack: function.
    ffi::lua_getfield(
        l,
        ffi::LUA_REGISTRYINDEX,
        c"__server__err__handler".as_ptr(),
    );
    ffi::lua_insert(l, -2);
    let errfunc = ffi::lua_gettop(l) - 1;
    let mut nargs = 0;
    if let Some((keys, args)) = fargs {
        // A function gets (keys, args) as arguments.
        for items in [keys, args] {
            ffi::lua_createtable(l, items.len().min(1 << 20) as c_int, 0);
            for (i, a) in items.iter().enumerate() {
                super::api::push_bytes(l, a);
                ffi::lua_rawseti(l, -2, (i + 1) as _);
            }
        }
        nargs = 2;
    }
    ffi::lua_sethook(l, Some(hook), ffi::LUA_MASKCOUNT, 100000);
    let status: c_int = ffi::lua_pcall(l, nargs, 1, errfunc);
    ffi::lua_sethook(l, None, 0, 0);
    let script_resp =
        with_server(|srv| srv.scripting.run.as_ref().map_or(2, |r| r.resp)).unwrap_or(2);
    if status != 0 {
        if ffi::lua_type(l, -1) == ffi::LUA_TTABLE {
            let (text, counted) = super::convert::error_table_text(l);
            super::convert::add_error_raw(&mut c.reply, &text, counted);
        } else {
            let msg = super::api::to_bytes(l, -1).unwrap_or(b"").to_vec();
            c.reply.add_error(&format!(
                "ERR Error running script (call to {}): {}",
                fname,
                String::from_utf8_lossy(&msg)
            ));
            if status == ffi::LUA_ERRMEM {
                // Make room again.
                ffi::lua_gc(l, ffi::LUA_GCCOLLECT, 0);
            }
        }
        ffi::lua_pop(l, 1);
    } else {
        super::convert::lua_to_reply(l, &mut c.reply, script_resp, 0);
    }
    ffi::lua_pop(l, 1); // the error handler
}
