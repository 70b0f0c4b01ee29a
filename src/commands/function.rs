//! FUNCTION and FCALL / FCALL_RO (upstream's `functions.c`). The registry and the
//! loader are src/scripting/functions.rs; runs go through the same path as EVAL
//! (src/scripting/run.rs). docs/scripting.md says what is built.

use super::{acl_cat as cat, container_proc, flags as f, key_flags as k, CommandDef, KeySpec};
use crate::client::{flags as cflags, Client};
use crate::scripting::functions;
use crate::scripting::vm::{LuaVm, VmKind};
use crate::server::Server;

const FCALL_FLAGS: u64 = f::NOSCRIPT | f::SKIP_MONITOR | f::NO_MANDATORY_KEYS | f::STALE;
const CATS: u64 = cat::SLOW | cat::SCRIPTING;

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new("fcall", -3, FCALL_FLAGS, CATS, fcall_command)
        .keys(&[
            KeySpec::keynum(k::RW | k::ACCESS | k::UPDATE, 2, 0, 1, 1).notes(
                "We cannot tell how the keys will be used so we assume the worst, RW and UPDATE",
            ),
        ])
        .doc(
            "scripting",
            "7.0.0",
            "Invokes a function.",
            "Depends on the function that is executed.",
        ),
    CommandDef::new(
        "fcall_ro",
        -3,
        FCALL_FLAGS | f::READONLY,
        CATS,
        fcall_ro_command,
    )
    .keys(&[KeySpec::keynum(k::RO | k::ACCESS, 2, 0, 1, 1)
        .notes("We cannot tell how the keys will be used so we assume the worst, RO and ACCESS")])
    .doc(
        "scripting",
        "7.0.0",
        "Invokes a read-only function.",
        "Depends on the function that is executed.",
    ),
    CommandDef::new("function", -2, 0, cat::SLOW, container_proc)
        .doc(
            "scripting",
            "7.0.0",
            "A container for function commands.",
            "Depends on subcommand.",
        )
        .subs(&[
            CommandDef::new("delete", 3, f::NOSCRIPT | f::WRITE, CATS, function_command)
                .doc(
                    "scripting",
                    "7.0.0",
                    "Deletes a library and its functions.",
                    "O(1)",
                )
                .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
            CommandDef::new("dump", 2, f::NOSCRIPT, CATS, function_command).doc(
                "scripting",
                "7.0.0",
                "Dumps all libraries into a serialized binary payload.",
                "O(N) where N is the number of functions",
            ),
            CommandDef::new("flush", -2, f::NOSCRIPT | f::WRITE, CATS, function_command)
                .doc(
                    "scripting",
                    "7.0.0",
                    "Deletes all libraries and functions.",
                    "O(N) where N is the number of functions deleted",
                )
                .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
            CommandDef::new("help", 2, f::LOADING | f::STALE, CATS, function_command).doc(
                "scripting",
                "7.0.0",
                "Returns helpful text about the different subcommands.",
                "O(1)",
            ),
            CommandDef::new(
                "kill",
                2,
                f::NOSCRIPT | f::ALLOW_BUSY,
                CATS,
                function_command,
            )
            .doc(
                "scripting",
                "7.0.0",
                "Terminates a function during execution.",
                "O(1)",
            )
            .tips(&["request_policy:all_shards", "response_policy:one_succeeded"]),
            CommandDef::new("list", -2, f::NOSCRIPT, CATS, function_command)
                .doc(
                    "scripting",
                    "7.0.0",
                    "Returns information about all libraries.",
                    "O(N) where N is the number of functions",
                )
                .tips(&["nondeterministic_output_order"]),
            CommandDef::new(
                "load",
                -3,
                f::NOSCRIPT | f::WRITE | f::DENYOOM,
                CATS,
                function_command,
            )
            .doc(
                "scripting",
                "7.0.0",
                "Creates a library.",
                "O(1) (considering compilation time is redundant)",
            )
            .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
            CommandDef::new(
                "restore",
                -3,
                f::NOSCRIPT | f::WRITE | f::DENYOOM,
                CATS,
                function_command,
            )
            .doc(
                "scripting",
                "7.0.0",
                "Restores all libraries from a payload.",
                "O(N) where N is the number of functions on the payload",
            )
            .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
            CommandDef::new(
                "stats",
                2,
                f::NOSCRIPT | f::ALLOW_BUSY,
                CATS,
                function_command,
            )
            .doc(
                "scripting",
                "7.0.0",
                "Returns information about a function during execution.",
                "O(1)",
            )
            .tips(&[
                "nondeterministic_output",
                "request_policy:all_shards",
                "response_policy:special",
            ]),
        ]),
];

/// The function state, built on first use.
fn func_vm(srv: &mut Server) -> Result<&LuaVm, String> {
    if srv.scripting.func_vm.is_none() {
        let vm = LuaVm::new(VmKind::Function).map_err(|e| format!("ERR {}", e))?;
        srv.scripting.func_vm = Some(vm);
    }
    Ok(srv.scripting.func_vm.as_ref().expect("just built"))
}

/// FUNCTION LOAD / RESTORE / RDB load: compiles `code` and adds the library.
pub fn load_library(
    srv: &mut Server,
    code: &[u8],
    replace: bool,
    quoted: bool,
) -> Result<String, String> {
    let vm = func_vm(srv)?;
    let lib = functions::compile_library(vm, code)?;
    functions::add_library(&mut srv.scripting.libs, lib, replace, quoted)
}

fn fcall_command(srv: &mut Server, c: &mut Client) {
    fcall_generic(srv, c, false);
}

fn fcall_ro_command(srv: &mut Server, c: &mut Client) {
    fcall_generic(srv, c, true);
}

/// FCALL / FCALL_RO (upstream's fcallCommandGeneric).
fn fcall_generic(srv: &mut Server, c: &mut Client, ro: bool) {
    c.flags |= cflags::PREVENT_PROP;
    let Some(nk) = super::scripting::numkeys_arg(c, "ERR Bad number of keys provided") else {
        return;
    };
    let Some((func, fl, name)) = srv
        .scripting
        .libs
        .function(&c.argv[1])
        .map(|fi| (fi.func.clone(), fi.flags, fi.name.clone()))
    else {
        c.reply.add_error("ERR Function not found");
        return;
    };
    if !srv.monitors.is_empty() {
        let argv = c.argv.clone();
        crate::monitor::feed(srv, c, &argv);
    }
    let run_flags = match crate::scripting::run::prepare(srv, c, fl, ro) {
        Ok(x) => x,
        Err(e) => {
            c.reply.add_error(&e);
            return;
        }
    };
    super::scripting::run_with_argv(srv, c, &name, &func, nk, run_flags, VmKind::Function);
}

fn function_command(srv: &mut Server, c: &mut Client) {
    let sub = c.argv[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"help" => c.reply.add_help(
            "FUNCTION",
            &[
                "LOAD [REPLACE] <FUNCTION CODE>",
                "    Create a new library with the given library name and code.",
                "DELETE <LIBRARY NAME>",
                "    Delete the given library.",
                "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
                "    Return general information on all the libraries:",
                "    * Library name",
                "    * The engine used to run the Library",
                "    * Functions list",
                "    * Library code (if WITHCODE is given)",
                "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
                "STATS",
                "    Return information about the current function running:",
                "    * Function name",
                "    * Command used to run the function",
                "    * Duration in MS that the function is running",
                "    If no function is running, return nil",
                "    In addition, returns a list of available engines.",
                "KILL",
                "    Kill the current running function.",
                "FLUSH [ASYNC|SYNC]",
                "    Delete all the libraries.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the libraries.",
                "    * SYNC: Synchronously flush the libraries.",
                "DUMP",
                "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
                "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
                "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
                "    control how to handle existing libraries (default APPEND):",
                "    * FLUSH: delete all existing libraries.",
                "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
                "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
                "      libraries with the new libraries (notice that even on this option there is a chance of failure",
                "      in case of functions name collision with another library).",
            ],
        ),
        b"load" => {
            let mut replace = false;
            let mut i = 2;
            while i < c.argv.len() - 1 {
                if c.argv[i].eq_ignore_ascii_case(b"replace") {
                    replace = true;
                    i += 1;
                } else {
                    let e = format!(
                        "ERR Unknown option given: {}",
                        String::from_utf8_lossy(&c.argv[i])
                    );
                    c.reply.add_error(&e);
                    return;
                }
            }
            if i != c.argv.len() - 1 {
                c.reply.add_error("ERR Function code is missing");
                return;
            }
            let code = std::mem::take(&mut c.argv[i]);
            let r = load_library(srv, &code, replace, true);
            c.argv[i] = code;
            match r {
                Ok(name) => {
                    srv.dirty += 1;
                    c.reply.add_bulk(name.as_bytes());
                }
                Err(e) => c.reply.add_error(&e),
            }
        }
        b"delete" => {
            let name = String::from_utf8_lossy(&c.argv[2]).into_owned();
            if srv.scripting.libs.remove(&name).is_some() {
                srv.dirty += 1;
                c.reply.add_ok();
            } else {
                c.reply.add_error("ERR Library not found");
            }
        }
        b"flush" => {
            if c.argv.len() > 3 {
                let e = format!(
                    "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
                    String::from_utf8_lossy(&c.argv[1])
                );
                c.reply.add_error(&e);
                return;
            }
            let Some(lazy) = super::server::flush_mode(
                srv,
                c,
                2,
                "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
            ) else {
                return;
            };
            srv.scripting.flush_functions(lazy);
            srv.dirty += 1;
            c.reply.add_ok();
        }
        b"list" => function_list(srv, c),
        b"stats" => function_stats(srv, c),
        b"kill" => {
            let is_fn = srv.scripting.run.is_some() && srv.scripting.func_vm.is_none();
            if srv.scripting.run.is_some() && !is_fn {
                c.reply.add_error(crate::busy::ERR_BUSY_EVAL);
                return;
            }
            match crate::scripting::run::kill(srv) {
                Ok(()) => c.reply.add_ok(),
                Err(e) => c.reply.add_error(e),
            }
        }
        b"dump" => {
            let payload = dump_payload(srv);
            c.reply.add_bulk(&payload);
        }
        b"restore" => function_restore(srv, c),
        _ => {
            let e = crate::reply::err_unknown_subcommand("function", &c.argv[1]);
            c.reply.add_error(&e);
        }
    }
}

/// FUNCTION LIST [LIBRARYNAME pat] [WITHCODE].
fn function_list(srv: &mut Server, c: &mut Client) {
    let mut pattern: Option<Vec<u8>> = None;
    let mut withcode = false;
    let mut i = 2;
    while i < c.argv.len() {
        let a = &c.argv[i];
        if a.eq_ignore_ascii_case(b"withcode") && !withcode {
            withcode = true;
            i += 1;
        } else if a.eq_ignore_ascii_case(b"libraryname") && pattern.is_none() {
            if i + 1 >= c.argv.len() {
                c.reply.add_error("ERR library name argument was not given");
                return;
            }
            pattern = Some(c.argv[i + 1].clone());
            i += 2;
        } else {
            let e = format!("ERR Unknown argument {}", String::from_utf8_lossy(a));
            c.reply.add_error(&e);
            return;
        }
    }
    let pat = pattern.map(|p| acl::glob::Pattern::new(&p, false));
    let libs: Vec<&functions::Library> = srv
        .scripting
        .libs
        .libs
        .values()
        .filter(|l| pat.as_ref().is_none_or(|p| p.matches(l.name.as_bytes())))
        .collect();
    let r = &mut c.reply;
    r.add_array_len(libs.len());
    for l in libs {
        r.add_map_len(if withcode { 4 } else { 3 });
        r.add_bulk(b"library_name");
        r.add_bulk(l.name.as_bytes());
        r.add_bulk(b"engine");
        r.add_bulk(b"LUA");
        r.add_bulk(b"functions");
        r.add_array_len(l.functions.len());
        for fi in &l.functions {
            r.add_map_len(3);
            r.add_bulk(b"name");
            r.add_bulk(fi.name.as_bytes());
            r.add_bulk(b"description");
            match &fi.desc {
                Some(d) => r.add_bulk(d),
                None => r.add_null(),
            }
            r.add_bulk(b"flags");
            r.add_set_len(fi.flag_names.len());
            for n in &fi.flag_names {
                r.add_status(n);
            }
        }
        if withcode {
            r.add_bulk(b"library_code");
            r.add_bulk(&l.code);
        }
    }
}

/// FUNCTION STATS.
fn function_stats(srv: &mut Server, c: &mut Client) {
    let running = srv
        .scripting
        .run
        .as_ref()
        .filter(|_| srv.scripting.func_vm.is_none());
    let r = &mut c.reply;
    r.add_map_len(2);
    r.add_bulk(b"running_script");
    match running {
        None => r.add_null(),
        Some(run) => {
            r.add_map_len(3);
            r.add_bulk(b"name");
            r.add_bulk(run.name.as_bytes());
            r.add_bulk(b"command");
            r.add_array_len(0);
            r.add_bulk(b"duration_ms");
            r.add_long(run.start.elapsed().as_millis() as i64);
        }
    }
    r.add_bulk(b"engines");
    r.add_map_len(1);
    r.add_bulk(b"LUA");
    r.add_map_len(2);
    r.add_bulk(b"libraries_count");
    r.add_long(srv.scripting.libs.libs.len() as i64);
    r.add_bulk(b"functions_count");
    r.add_long(srv.scripting.libs.functions_count() as i64);
}

/// FUNCTION DUMP's payload: per library 0xF5 and its code as an RDB string, then the
/// RDB version (2 bytes, little-endian) and the CRC64 of everything before it.
pub fn dump_payload(srv: &Server) -> Vec<u8> {
    let mut w = ::rdb::encoding::Writer::new();
    for lib in srv.scripting.libs.libs.values() {
        w.u8(::rdb::OPCODE_FUNCTION2);
        w.string(&lib.code, false);
    }
    let mut out = w.into_inner();
    out.extend_from_slice(&(::rdb::RDB_VERSION as u16).to_le_bytes());
    let crc = ::rdb::crc64::crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE] (upstream's functionRestoreCommand):
/// every library is compiled first; nothing changes on an error.
fn function_restore(srv: &mut Server, c: &mut Client) {
    #[derive(PartialEq)]
    enum Policy {
        Flush,
        Append,
        Replace,
    }
    if c.argv.len() > 4 {
        let e = format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
            String::from_utf8_lossy(&c.argv[1])
        );
        c.reply.add_error(&e);
        return;
    }
    let policy = match c.argv.get(3) {
        None => Policy::Append,
        Some(a) if a.eq_ignore_ascii_case(b"flush") => Policy::Flush,
        Some(a) if a.eq_ignore_ascii_case(b"append") => Policy::Append,
        Some(a) if a.eq_ignore_ascii_case(b"replace") => Policy::Replace,
        Some(_) => {
            c.reply.add_error(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            );
            return;
        }
    };
    let data = std::mem::take(&mut c.argv[2]);
    let r = restore_payload(
        srv,
        &data,
        policy == Policy::Flush,
        policy == Policy::Replace,
    );
    c.argv[2] = data;
    match r {
        Ok(()) => {
            srv.dirty += 1;
            c.reply.add_ok();
        }
        Err(e) => c.reply.add_error(&e),
    }
}

fn restore_payload(
    srv: &mut Server,
    data: &[u8],
    flush: bool,
    replace: bool,
) -> Result<(), String> {
    const BAD: &str = "ERR DUMP payload version or checksum are wrong";
    if data.len() < 10 {
        return Err(BAD.into());
    }
    let n = data.len();
    let ver = u16::from_le_bytes([data[n - 10], data[n - 9]]) as u32;
    let crc = u64::from_le_bytes(data[n - 8..].try_into().map_err(|_| BAD.to_string())?);
    if ver > ::rdb::RDB_VERSION || ::rdb::crc64::crc64(&data[..n - 8]) != crc {
        return Err(BAD.into());
    }
    let mut codes = Vec::new();
    let mut rd = ::rdb::encoding::Reader::new(&data[..n - 10]);
    while !rd.is_empty() {
        let op = rd
            .u8()
            .map_err(|_| "ERR payload is corrupted".to_string())?;
        if op != ::rdb::OPCODE_FUNCTION2 {
            return Err("ERR given type is not a function".into());
        }
        let code = rd
            .string(data.len() as u64)
            .map_err(|_| "ERR payload is corrupted".to_string())?;
        codes.push(code.into_owned());
    }
    let mut libs = Vec::new();
    for code in &codes {
        let vm = func_vm(srv)?;
        libs.push(functions::compile_library(vm, code)?);
    }
    // The checks of upstream's libraryJoin, before anything changes.
    let reg = &srv.scripting.libs;
    let mut names = std::collections::HashSet::new();
    for lib in &libs {
        if !flush && !replace && reg.libs.contains_key(&lib.name) {
            return Err(format!("ERR Library {} already exists", lib.name));
        }
        for f in &lib.functions {
            if !names.insert(f.name.clone()) {
                return Err(format!("ERR Function {} already exists", f.name));
            }
            if flush {
                continue;
            }
            if let Some(owner) = reg.funcs.get(&f.name) {
                let replaced = replace && libs.iter().any(|l| l.name == *owner);
                if *owner != lib.name && !replaced {
                    return Err(format!("ERR Function {} already exists", f.name));
                }
            }
        }
    }
    if flush {
        srv.scripting.libs = functions::Registry::default();
    }
    for lib in libs {
        srv.scripting.libs.remove(&lib.name);
        srv.scripting.libs.insert(lib);
    }
    Ok(())
}
