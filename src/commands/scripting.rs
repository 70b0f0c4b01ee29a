//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT (upstream's `eval.c`). The engine is
//! src/scripting/; docs/scripting.md says what is built.

use super::{acl_cat as cat, container_proc, flags as f, key_flags as k, CommandDef, KeySpec};
use crate::client::{flags as cflags, Client};
use crate::scripting::run::sflags;
use crate::scripting::vm::{LuaVm, VmKind};
use crate::server::Server;

const EVAL_FLAGS: u64 = f::NOSCRIPT | f::SKIP_MONITOR | f::NO_MANDATORY_KEYS | f::STALE;
const EVAL_RO_FLAGS: u64 =
    f::NOSCRIPT | f::SKIP_MONITOR | f::NO_MANDATORY_KEYS | f::STALE | f::READONLY;
const CATS: u64 = cat::SLOW | cat::SCRIPTING;
const NOTES_RO: &str =
    "We cannot tell how the keys will be used so we assume the worst, RO and ACCESS";
const NOTES: &str =
    "We cannot tell how the keys will be used so we assume the worst, RW and UPDATE";

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new("eval", -3, EVAL_FLAGS, CATS, eval_command)
        .keys(&[KeySpec::keynum(k::RW | k::ACCESS | k::UPDATE, 2, 0, 1, 1).notes(NOTES)])
        .doc(
            "scripting",
            "2.6.0",
            "Executes a server-side Lua script.",
            "Depends on the script that is executed.",
        ),
    CommandDef::new("evalsha", -3, EVAL_FLAGS, CATS, evalsha_command)
        .keys(&[KeySpec::keynum(k::RW | k::ACCESS | k::UPDATE, 2, 0, 1, 1)])
        .doc(
            "scripting",
            "2.6.0",
            "Executes a server-side Lua script by SHA1 digest.",
            "Depends on the script that is executed.",
        ),
    CommandDef::new("eval_ro", -3, EVAL_RO_FLAGS, CATS, eval_ro_command)
        .keys(&[KeySpec::keynum(k::RO | k::ACCESS, 2, 0, 1, 1).notes(NOTES_RO)])
        .doc(
            "scripting",
            "7.0.0",
            "Executes a read-only server-side Lua script.",
            "Depends on the script that is executed.",
        ),
    CommandDef::new("evalsha_ro", -3, EVAL_RO_FLAGS, CATS, evalsha_ro_command)
        .keys(&[KeySpec::keynum(k::RO | k::ACCESS, 2, 0, 1, 1)])
        .doc(
            "scripting",
            "7.0.0",
            "Executes a read-only server-side Lua script by SHA1 digest.",
            "Depends on the script that is executed.",
        ),
    CommandDef::new("script", -2, 0, cat::SLOW, container_proc)
        .doc(
            "scripting",
            "2.6.0",
            "A container for Lua scripts management commands.",
            "Depends on subcommand.",
        )
        .subs(&[
            CommandDef::new("debug", -3, f::NOSCRIPT, CATS, script_command).doc(
                "scripting",
                "3.2.0",
                "Sets the debug mode of server-side Lua scripts.",
                "O(1)",
            ),
            CommandDef::new("exists", -3, f::NOSCRIPT | f::STALE, CATS, script_command)
                .doc(
                    "scripting",
                    "2.6.0",
                    "Determines whether server-side Lua scripts exist in the script cache.",
                    "O(N) with N being the number of scripts to check (so checking a single script is an O(1) operation).",
                )
                .tips(&["request_policy:all_shards", "response_policy:agg_logical_and"]),
            CommandDef::new("flush", -2, f::NOSCRIPT | f::STALE, CATS, script_command)
                .doc(
                    "scripting",
                    "2.6.0",
                    "Removes all server-side Lua scripts from the script cache.",
                    "O(N) with N being the number of scripts in cache",
                )
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
            CommandDef::new("help", 2, f::LOADING | f::STALE, CATS, script_command).doc(
                "scripting",
                "5.0.0",
                "Returns helpful text about the different subcommands.",
                "O(1)",
            ),
            CommandDef::new("kill", 2, f::NOSCRIPT | f::ALLOW_BUSY, CATS, script_command)
                .doc(
                    "scripting",
                    "2.6.0",
                    "Terminates a server-side Lua script during execution.",
                    "O(1)",
                )
                .tips(&["request_policy:all_shards", "response_policy:one_succeeded"]),
            CommandDef::new("load", 3, f::NOSCRIPT | f::STALE, CATS, script_command)
                .doc(
                    "scripting",
                    "2.6.0",
                    "Loads a server-side Lua script to the script cache.",
                    "O(N) with N being the length in bytes of the script body.",
                )
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
            CommandDef::new("show", 3, f::NOSCRIPT | f::STALE, CATS, script_command).doc(
                "scripting",
                "8.0.0",
                "Show server-side Lua script in the script cache.",
                "O(1).",
            ),
        ]),
];

/// Whether a command name is one of the EVAL family (for the gate's
/// [`eval_command_flags`]).
#[inline]
pub fn is_eval(name: &str) -> bool {
    matches!(
        name,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
    )
}

/// Parses the shebang (upstream's evalExtractShebangFlags): `Ok(None)` without one
/// (compat mode), else the flags and the length of the shebang line (without its
/// newline, which stays in the body so line numbers count it).
pub fn parse_shebang(body: &[u8]) -> Result<Option<(u64, usize)>, String> {
    if !body.starts_with(b"#!") {
        return Ok(None);
    }
    let Some(nl) = body.iter().position(|&b| b == b'\n') else {
        return Err("Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&body[2..nl]).into_owned();
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or("");
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("Could not find scripting engine '{}'", engine));
    }
    let mut flags = 0u64;
    for opt in parts {
        let Some(list) = opt.strip_prefix("flags=") else {
            return Err(format!("Unknown lua shebang option: {}", opt));
        };
        for fl in list.split(',').filter(|x| !x.is_empty()) {
            match sflags::NAMES.iter().find(|(_, n)| *n == fl) {
                Some((b, _)) => flags |= b,
                None => return Err(format!("Unexpected flag in script shebang: {}", fl)),
            }
        }
    }
    Ok(Some((flags, nl)))
}

/// The command flags of an EVAL for the gate (upstream's evalGetCommandFlags and
/// scriptFlagsToCmdFlags): a script that declares flags gets `write`/`denyoom`/
/// `stale` from them instead of from the table; compat mode keeps the table's.
pub fn eval_command_flags(srv: &Server, argv: &[Vec<u8>], cmd_flags: u64) -> u64 {
    let Some(a1) = argv.get(1) else {
        return cmd_flags;
    };
    if argv[0].len() >= 5 && argv[0][..5].eq_ignore_ascii_case(b"fcall") {
        return match srv.scripting.libs.function(a1) {
            Some(fi) => script_flags_to_cmd(fi.flags, cmd_flags),
            None => cmd_flags,
        };
    }
    let evalsha = argv[0].len() >= 7 && argv[0][..7].eq_ignore_ascii_case(b"evalsha");
    let script_flags = if evalsha {
        match sha_key(a1).and_then(|s| srv.scripting.cache.get(&s)) {
            Some(s) => s.flags,
            None => return cmd_flags,
        }
    } else {
        let sha = crate::scripting::api::sha1_hex(a1);
        match srv.scripting.cache.get(&sha) {
            Some(s) => s.flags,
            None => match parse_shebang(a1) {
                Ok(Some((fl, _))) => fl,
                _ => return cmd_flags,
            },
        }
    };
    if script_flags & sflags::EVAL_COMPAT != 0 {
        return cmd_flags;
    }
    script_flags_to_cmd(script_flags, cmd_flags)
}

/// Upstream's scriptFlagsToCmdFlags.
fn script_flags_to_cmd(script_flags: u64, cmd_flags: u64) -> u64 {
    let mut fl = cmd_flags & !(f::WRITE | f::DENYOOM | f::STALE | f::MAY_REPLICATE);
    if script_flags & (sflags::ALLOW_OOM | sflags::NO_WRITES) == 0 {
        fl |= f::DENYOOM;
    }
    if script_flags & sflags::NO_WRITES == 0 {
        fl |= f::WRITE;
    }
    if script_flags & sflags::ALLOW_STALE != 0 {
        fl |= f::STALE;
    }
    fl
}

/// A 40-char sha argument, lower-cased.
fn sha_key(a: &[u8]) -> Option<[u8; 40]> {
    if a.len() != 40 {
        return None;
    }
    let mut k = [0u8; 40];
    for (d, s) in k.iter_mut().zip(a) {
        *d = s.to_ascii_lowercase();
    }
    Some(k)
}

/// The EVAL state, built on first use.
fn eval_vm(srv: &mut Server) -> Result<&LuaVm, String> {
    if srv.scripting.eval.is_none() {
        let vm = LuaVm::new(VmKind::Eval).map_err(|e| format!("ERR {}", e))?;
        srv.scripting.eval = Some(vm);
    }
    Ok(srv.scripting.eval.as_ref().expect("just built"))
}

/// Compiles and caches `body` (EVAL: evictable; SCRIPT LOAD: not); returns its sha.
fn create_script(srv: &mut Server, body: &[u8], evictable: bool) -> Result<[u8; 40], String> {
    let sha = crate::scripting::api::sha1_hex(body);
    if let Some(s) = srv.scripting.cache.get(&sha) {
        if !evictable && s.lru.is_some() {
            let func = s.func.clone();
            srv.scripting.cache.add(sha, body.to_vec(), func, 0, false);
        }
        return Ok(sha);
    }
    let (flags, code) = match parse_shebang(body).map_err(|e| format!("ERR {}", e))? {
        None => (sflags::EVAL_COMPAT, body.to_vec()),
        // The shebang line goes, its newline stays.
        Some((fl, nl)) => (fl, body[nl..].to_vec()),
    };
    let vm = eval_vm(srv)?;
    let func = vm
        .compile(&code)
        .map_err(|e| format!("ERR Error compiling script (new function): {}", e))?;
    srv.scripting
        .cache
        .add(sha, body.to_vec(), func, flags, evictable);
    Ok(sha)
}

fn eval_command(srv: &mut Server, c: &mut Client) {
    eval_generic(srv, c, false, false);
}

fn evalsha_command(srv: &mut Server, c: &mut Client) {
    eval_generic(srv, c, true, false);
}

fn eval_ro_command(srv: &mut Server, c: &mut Client) {
    eval_generic(srv, c, false, true);
}

fn evalsha_ro_command(srv: &mut Server, c: &mut Client) {
    eval_generic(srv, c, true, true);
}

/// EVAL / EVALSHA / *_RO (upstream's evalGenericCommand).
fn eval_generic(srv: &mut Server, c: &mut Client, evalsha: bool, ro: bool) {
    // The script's writes are propagated as they run; EVAL itself never is.
    c.flags |= cflags::PREVENT_PROP;
    let Some(nk) = numkeys_arg(c, "ERR value is not an integer or out of range") else {
        return;
    };
    let sha = if evalsha {
        match sha_key(&c.argv[1]) {
            Some(s) if srv.scripting.cache.contains(&s) => s,
            _ => {
                c.reply.add_error("NOSCRIPT No matching script.");
                return;
            }
        }
    } else {
        let body = std::mem::take(&mut c.argv[1]);
        let r = create_script(srv, &body, true);
        c.argv[1] = body;
        match r {
            Ok(s) => s,
            Err(e) => {
                c.reply.add_error(&e);
                return;
            }
        }
    };
    // MONITOR sees EVAL before the commands of the script.
    if !srv.monitors.is_empty() {
        let argv = c.argv.clone();
        crate::monitor::feed(srv, c, &argv);
    }
    let (func, script_flags) = {
        let s = srv.scripting.cache.get(&sha).expect("cached above");
        (s.func.clone(), s.flags)
    };
    let run_flags = match crate::scripting::run::prepare(srv, c, script_flags, ro) {
        Ok(fl) => fl,
        Err(e) => {
            c.reply.add_error(&e);
            return;
        }
    };
    let name = String::from_utf8_lossy(&sha).into_owned();
    run_with_argv(srv, c, &name, &func, nk, run_flags, VmKind::Eval);
    srv.scripting.cache.touch(&sha);
}

/// The numkeys argument (argv[2]) of EVAL and FCALL; on a bad one, the error reply
/// (`not_int` when it is not an integer) and None.
pub(super) fn numkeys_arg(c: &mut Client, not_int: &str) -> Option<usize> {
    let Some(numkeys) = crate::util::parse_i64_strict(&c.argv[2]) else {
        c.reply.add_error(not_int);
        return None;
    };
    if numkeys > (c.argv.len() - 3) as i64 {
        c.reply
            .add_error("ERR Number of keys can't be greater than number of args");
        return None;
    }
    if numkeys < 0 {
        c.reply.add_error("ERR Number of keys can't be negative");
        return None;
    }
    Some(numkeys as usize)
}

/// Runs `func` with the `nk` keys after argv[2] and the arguments after them.
pub(super) fn run_with_argv(
    srv: &mut Server,
    c: &mut Client,
    name: &str,
    func: &crate::scripting::LuaFn,
    nk: usize,
    run_flags: u32,
    kind: VmKind,
) {
    let argv = std::mem::take(&mut c.argv);
    crate::scripting::run::run_script(
        srv,
        c,
        name,
        func,
        &argv[3..3 + nk],
        &argv[3 + nk..],
        run_flags,
        kind,
    );
    c.argv = argv;
}

fn script_command(srv: &mut Server, c: &mut Client) {
    let sub = c.argv[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"help" => c.reply.add_help(
            "SCRIPT",
            &[
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
                "SHOW <sha1>",
                "    Show a script from the scripts cache.",
            ],
        ),
        b"flush" => {
            // ASYNC (or no mode and lazyfree-lazy-user-flush) closes the old state on the
            // lazyfree thread when it holds many scripts.
            let Some(lazy) = super::server::flush_mode(
                srv,
                c,
                2,
                "ERR SCRIPT FLUSH only support SYNC|ASYNC option",
            ) else {
                return;
            };
            srv.scripting.flush(lazy);
            c.reply.add_ok();
        }
        b"exists" => {
            let n = c.argv.len() - 2;
            c.reply.add_array_len(n);
            for j in 2..c.argv.len() {
                let found = sha_key(&c.argv[j]).is_some_and(|s| srv.scripting.cache.contains(&s));
                c.reply.add_long(found as i64);
            }
        }
        b"load" => {
            if c.argv.len() != 3 {
                c.reply.add_error_arity("script|load");
                return;
            }
            let body = std::mem::take(&mut c.argv[2]);
            let r = create_script(srv, &body, false);
            c.argv[2] = body;
            match r {
                Ok(sha) => c.reply.add_bulk(&sha),
                Err(e) => c.reply.add_error(&e),
            }
        }
        b"show" => match sha_key(&c.argv[2]).and_then(|s| srv.scripting.cache.get(&s)) {
            Some(s) => {
                let b = s.body.clone();
                c.reply.add_bulk(&b);
            }
            None => c.reply.add_error("NOSCRIPT No matching script."),
        },
        b"kill" if srv.scripting.run.is_some() && srv.scripting.func_vm.is_none() => c
            .reply
            .add_error(crate::busy::ERR_BUSY_FUNCTION),
        b"kill" => match crate::scripting::run::kill(srv) {
            Ok(()) => c.reply.add_ok(),
            Err(e) => c.reply.add_error(e),
        },
        b"debug" => {
            let a = &c.argv[2];
            if a.eq_ignore_ascii_case(b"no") {
                c.reply.add_ok();
            } else if a.eq_ignore_ascii_case(b"yes") || a.eq_ignore_ascii_case(b"sync") {
                // No Lua debugger: refused, as a server built without it.
                c.reply
                    .add_error("ERR SCRIPT DEBUG is not supported by this server (no Lua debugger)");
            } else {
                c.reply.add_error("ERR Use SCRIPT DEBUG YES/SYNC/NO");
            }
        }
        _ => {
            let e = crate::reply::err_unknown_subcommand("script", &c.argv[1]);
            c.reply.add_error(&e);
        }
    }
}
