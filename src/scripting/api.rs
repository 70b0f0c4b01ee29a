//! The `server` table (aliased `redis`) and the pcall wrapper, as upstream's
//! `script_lua.c`: call, pcall, error_reply, status_reply, sha1hex, log, setresp,
//! set_repl, replicate_commands, breakpoint, debug, acl_check_cmd, the REPL_* and
//! LOG_* constants and the version fields.
//!
//! The functions that raise `{err=...}` tables are raw C functions (`lua_CFunction`):
//! the work is done by an inner Rust function that returns with every Rust value
//! dropped, and only then is `lua_error` called (a longjmp must not skip a Drop).
//! Errors are pushed as upstream's luaPushErrorBuff: `-CODE msg` keeps its code, any
//! other text gets `ERR `.

use std::os::raw::{c_char, c_int};

use mlua::ffi::{self, lua_State};
use mlua::{Lua, Table};

use super::vm::VmKind;

/// Pushes a byte string.
#[inline]
pub unsafe fn push_bytes(l: *mut lua_State, b: &[u8]) {
    ffi::lua_pushlstring(l, b.as_ptr() as *const c_char, b.len());
}

/// The bytes of the string (or number, converted in place) at `idx`.
#[inline]
pub unsafe fn to_bytes<'a>(l: *mut lua_State, idx: c_int) -> Option<&'a [u8]> {
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, idx, &mut len);
    if p.is_null() {
        None
    } else {
        Some(std::slice::from_raw_parts(p as *const u8, len))
    }
}

/// The text of an error table from an error string, as luaPushErrorBuff: `-CODE msg`
/// gives `CODE msg`, `-msg` (no space) and any other text `ERR msg`; CR/LF at
/// either end are trimmed from the message.
pub fn error_text(buf: &[u8]) -> Vec<u8> {
    let (code, msg): (&[u8], &[u8]) = if let Some(rest) = buf.strip_prefix(b"-") {
        match rest.iter().position(|&b| b == b' ') {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (b"ERR", rest),
        }
    } else {
        (b"ERR", buf)
    };
    let trim = |b: &u8| *b == b'\r' || *b == b'\n';
    let start = msg.iter().position(|b| !trim(b)).unwrap_or(msg.len());
    let end = msg.iter().rposition(|b| !trim(b)).map_or(start, |e| e + 1);
    let mut out = Vec::with_capacity(code.len() + 1 + end - start);
    out.extend_from_slice(code);
    out.push(b' ');
    out.extend_from_slice(&msg[start..end]);
    out
}

/// Pushes `{err=<text>}` with `text` used as is.
pub unsafe fn push_err_table_raw(l: *mut lua_State, text: &[u8]) {
    ffi::lua_createtable(l, 0, 1);
    push_bytes(l, b"err");
    push_bytes(l, text);
    ffi::lua_rawset(l, -3);
}

/// Pushes the error table of an error string (luaPushErrorBuff).
pub unsafe fn push_error(l: *mut lua_State, msg: &[u8]) {
    let t = error_text(msg);
    push_err_table_raw(l, &t);
}

/// Formats a Lua number as a command argument: an integer when it is one, else the
/// shortest round-trip form (upstream's double2ll / fpconv_dtoa).
pub fn number_arg(n: f64) -> Vec<u8> {
    if n.fract() == 0.0 && (-9.223_372_036_854_775e18..9.223_372_036_854_775e18).contains(&n) {
        (n as i64).to_string().into_bytes()
    } else {
        let mut buf = [0u8; crate::fpconv::D2STRING_MAX];
        let len = crate::fpconv::dtoa(n, &mut buf);
        buf[..len].to_vec()
    }
}

/// The arguments of server.call / acl_check_cmd as argv (luaArgsToServerArgv); on
/// error the error table is pushed and `None` returned. The arguments are popped.
unsafe fn args_to_argv(l: *mut lua_State) -> Option<Vec<Vec<u8>>> {
    let argc = ffi::lua_gettop(l);
    if argc == 0 {
        push_error(l, b"Please specify at least one argument for this call");
        return None;
    }
    let mut argv = Vec::with_capacity(argc as usize);
    for j in 1..=argc {
        if ffi::lua_type(l, j) == ffi::LUA_TNUMBER {
            argv.push(number_arg(ffi::lua_tonumber(l, j)));
        } else {
            match to_bytes(l, j) {
                Some(b) => argv.push(b.to_vec()),
                None => break,
            }
        }
    }
    ffi::lua_settop(l, 0);
    if argv.len() != argc as usize {
        drop(argv);
        push_error(l, b"Command arguments must be strings or integers");
        return None;
    }
    Some(argv)
}

/// server.call / server.pcall: returns whether the error table on the stack must be
/// raised.
unsafe fn generic_call(l: *mut lua_State, raise: bool) -> bool {
    let Some(argv) = args_to_argv(l) else {
        return raise;
    };
    let Some((reply, _resp)) = super::run::script_call(argv) else {
        push_error(l, b"server.call() can only be used while a script runs");
        return raise;
    };
    let is_err = reply.first() == Some(&b'-');
    if !super::convert::push_reply(l, &reply) {
        ffi::lua_settop(l, 0);
        push_error(l, b"reached lua stack limit");
        return raise;
    }
    raise && is_err
}

pub unsafe extern "C-unwind" fn server_call(l: *mut lua_State) -> c_int {
    if generic_call(l, true) {
        ffi::lua_error(l);
    }
    1
}

pub unsafe extern "C-unwind" fn server_pcall(l: *mut lua_State) -> c_int {
    generic_call(l, false);
    1
}

/// The global `pcall`: a caught error that is a table with a string `err` becomes
/// that string (luaRedisPcall).
pub unsafe extern "C-unwind" fn pcall_wrap(l: *mut lua_State) -> c_int {
    ffi::luaL_checkany(l, 1);
    let argc = ffi::lua_gettop(l);
    ffi::lua_pushboolean(l, 1);
    ffi::lua_insert(l, 1);
    if ffi::lua_pcall(l, argc - 1, ffi::LUA_MULTRET, 0) != 0 {
        ffi::lua_remove(l, 1);
        if ffi::lua_type(l, -1) == ffi::LUA_TTABLE {
            ffi::lua_getfield(l, -1, c"err".as_ptr());
            if ffi::lua_isstring(l, -1) != 0 {
                ffi::lua_replace(l, -2);
            } else {
                ffi::lua_pop(l, 1);
            }
        }
        ffi::lua_pushboolean(l, 0);
        ffi::lua_insert(l, 1);
    }
    ffi::lua_gettop(l)
}

unsafe extern "C-unwind" fn sha1hex(l: *mut lua_State) -> c_int {
    if ffi::lua_gettop(l) != 1 {
        push_error(l, b"wrong number of arguments");
        ffi::lua_error(l);
    }
    let hex = sha1_hex(to_bytes(l, 1).unwrap_or(b""));
    push_bytes(l, &hex);
    1
}

/// The lower-case hex sha1 of `data`.
pub fn sha1_hex(data: &[u8]) -> [u8; 40] {
    crate::debug::hex_bytes(&crate::debug::sha1(data))
}

unsafe extern "C-unwind" fn error_reply(l: *mut lua_State) -> c_int {
    if ffi::lua_gettop(l) != 1 || ffi::lua_type(l, -1) != ffi::LUA_TSTRING {
        push_error(l, b"wrong number or type of arguments");
        return 1;
    }
    let s = to_bytes(l, -1).unwrap_or(b"");
    let t = if s.first() == Some(&b'-') {
        error_text(s)
    } else {
        let mut b = Vec::with_capacity(s.len() + 1);
        b.push(b'-');
        b.extend_from_slice(s);
        error_text(&b)
    };
    push_err_table_raw(l, &t);
    1
}

unsafe extern "C-unwind" fn status_reply(l: *mut lua_State) -> c_int {
    if ffi::lua_gettop(l) != 1 || ffi::lua_type(l, -1) != ffi::LUA_TSTRING {
        push_error(l, b"wrong number or type of arguments");
        return 1;
    }
    ffi::lua_createtable(l, 0, 1);
    push_bytes(l, b"ok");
    ffi::lua_pushvalue(l, -3);
    ffi::lua_rawset(l, -3);
    1
}

unsafe extern "C-unwind" fn set_repl(l: *mut lua_State) -> c_int {
    if ffi::lua_gettop(l) != 1 {
        push_error(l, b"server.set_repl() requires one argument.");
        ffi::lua_error(l);
    }
    let flags = ffi::lua_tonumber(l, -1) as i64;
    if flags & !3 != 0 {
        push_error(
            l,
            b"Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
        );
        ffi::lua_error(l);
    }
    super::run::set_repl(flags as u8);
    0
}

unsafe extern "C-unwind" fn setresp(l: *mut lua_State) -> c_int {
    let argc = ffi::lua_gettop(l);
    if argc != 1 {
        push_error(l, b"server.setresp() requires one argument.");
        ffi::lua_error(l);
    }
    let resp = ffi::lua_tonumber(l, -argc) as i64;
    if resp != 2 && resp != 3 {
        push_error(l, b"RESP version must be 2 or 3.");
        ffi::lua_error(l);
    }
    super::run::set_resp(resp as u8);
    0
}

/// Inner part of server.log: returns the error to raise, if any.
unsafe fn log_inner(l: *mut lua_State) -> Option<&'static [u8]> {
    let argc = ffi::lua_gettop(l);
    if argc < 2 {
        return Some(b"server.log() requires two arguments or more.");
    }
    if ffi::lua_isnumber(l, -argc) == 0 {
        return Some(b"First argument must be a number (log level).");
    }
    let level = ffi::lua_tonumber(l, -argc) as i64;
    if !(0..=3).contains(&level) {
        return Some(b"Invalid log level.");
    }
    let mut msg = Vec::new();
    for j in 1..argc {
        if let Some(s) = to_bytes(l, -argc + j) {
            if j != 1 {
                msg.push(b' ');
            }
            msg.extend_from_slice(s);
        }
    }
    super::run::log(level as u8, &msg);
    None
}

unsafe extern "C-unwind" fn log(l: *mut lua_State) -> c_int {
    if let Some(e) = log_inner(l) {
        push_error(l, e);
        ffi::lua_error(l);
    }
    0
}

/// Inner part of acl_check_cmd: true when the error table on the stack is raised.
unsafe fn acl_check_inner(l: *mut lua_State) -> bool {
    let Some(argv) = args_to_argv(l) else {
        return true;
    };
    match super::run::acl_check(&argv) {
        Some(ok) => {
            ffi::lua_pushboolean(l, ok as c_int);
            false
        }
        None => {
            drop(argv);
            push_error(l, b"Invalid command passed to server.acl_check_cmd()");
            true
        }
    }
}

unsafe extern "C-unwind" fn acl_check_cmd(l: *mut lua_State) -> c_int {
    if acl_check_inner(l) {
        ffi::lua_error(l);
    }
    1
}

unsafe extern "C-unwind" fn breakpoint(l: *mut lua_State) -> c_int {
    ffi::lua_pushboolean(l, 0);
    1
}

unsafe extern "C-unwind" fn debug_noop(_l: *mut lua_State) -> c_int {
    0
}

unsafe extern "C-unwind" fn replicate_commands(l: *mut lua_State) -> c_int {
    ffi::lua_pushboolean(l, 1);
    1
}

/// `__index` of a locked table: reading a missing global is an error.
pub unsafe extern "C-unwind" fn protected_table_error(l: *mut lua_State) -> c_int {
    if ffi::lua_gettop(l) != 2 {
        ffi::luaL_error(
            l,
            c"Wrong number of arguments to luaProtectedTableError".as_ptr(),
        );
    }
    if ffi::lua_isstring(l, -1) == 0 {
        ffi::luaL_error(
            l,
            c"Second argument to luaProtectedTableError must be a string or number".as_ptr(),
        );
    }
    let name = ffi::lua_tolstring(l, -1, std::ptr::null_mut());
    ffi::luaL_error(
        l,
        c"Script attempted to access nonexistent global variable '%s'".as_ptr(),
        name,
    );
    0
}

/// `__newindex` of `_G`: adding a global is refused with the read-only text (the
/// read-only VM patch gives the same error for existing keys).
pub unsafe extern "C-unwind" fn readonly_table_error(l: *mut lua_State) -> c_int {
    ffi::luaL_error(l, c"Attempt to modify a readonly table".as_ptr());
    0
}

/// A version `a.b.c` as 0x00aabbcc.
fn version_num(v: &str) -> i64 {
    let mut n = 0i64;
    for p in v.split('.').take(3) {
        n = (n << 8) | p.parse::<i64>().unwrap_or(0);
    }
    n
}

/// Installs the pcall wrapper and the `server` table (aliased `redis`).
pub fn install(lua: &Lua, kind: VmKind) -> mlua::Result<()> {
    let g = lua.globals();
    let t: Table = lua.create_table()?;
    // SAFETY: each function follows the rule of the module comment.
    unsafe {
        g.raw_set("pcall", lua.create_c_function(pcall_wrap)?)?;
        t.raw_set("call", lua.create_c_function(server_call)?)?;
        t.raw_set("pcall", lua.create_c_function(server_pcall)?)?;
        t.raw_set("sha1hex", lua.create_c_function(sha1hex)?)?;
        t.raw_set("error_reply", lua.create_c_function(error_reply)?)?;
        t.raw_set("status_reply", lua.create_c_function(status_reply)?)?;
        t.raw_set("set_repl", lua.create_c_function(set_repl)?)?;
        t.raw_set("setresp", lua.create_c_function(setresp)?)?;
        t.raw_set("log", lua.create_c_function(log)?)?;
        t.raw_set("acl_check_cmd", lua.create_c_function(acl_check_cmd)?)?;
        if kind == VmKind::Eval {
            t.raw_set("breakpoint", lua.create_c_function(breakpoint)?)?;
            t.raw_set("debug", lua.create_c_function(debug_noop)?)?;
            t.raw_set(
                "replicate_commands",
                lua.create_c_function(replicate_commands)?,
            )?;
        }
    }
    for (k, v) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        t.raw_set(k, v)?;
    }
    let ver = crate::commands::server::VALKEY_VERSION;
    t.raw_set("REDIS_VERSION", "7.2.4")?;
    t.raw_set("REDIS_VERSION_NUM", version_num("7.2.4"))?;
    t.raw_set("SERVER_NAME", "valkey")?;
    t.raw_set("VALKEY_VERSION", ver)?;
    t.raw_set("VALKEY_VERSION_NUM", version_num(ver))?;
    g.raw_set("server", t.clone())?;
    g.raw_set("redis", t)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts() {
        assert_eq!(error_text(b"-WRONGTYPE Operation"), b"WRONGTYPE Operation");
        assert_eq!(error_text(b"-x"), b"ERR x");
        assert_eq!(error_text(b"boom\r\n"), b"ERR boom");
        assert_eq!(version_num("7.2.4"), 459268);
        assert_eq!(number_arg(3.0), b"3");
        assert_eq!(number_arg(1.5), b"1.5");
    }
}
