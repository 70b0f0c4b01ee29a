//! RESP <-> Lua (upstream's `script_lua.c` `redisProtocolToLuaType_*` and
//! `luaReplyToServerReply`); the tables are in docs/scripting-plan.md 2.3.
//!
//! Both directions work on the raw Lua stack and keep no owned Rust value alive
//! across a call that may raise.

use std::os::raw::c_int;

use mlua::ffi::{self, lua_State};

use super::api::{push_bytes, push_err_table_raw, to_bytes};
use crate::reply::ReplyBuf;

/// Deepest nesting converted (a reply built by the server is never deeper than the
/// data it holds; a Lua value may be cyclic).
const MAX_DEPTH: u32 = 1000;

/// 2^63, the bound of an i64 as a double.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// A RESP reading cursor over a reply the server produced.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// The line after the type byte, without CRLF.
    fn line(&mut self) -> &'a [u8] {
        let start = self.pos;
        let rest = &self.b[start..];
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or(rest.len());
        self.pos = (start + end + 2).min(self.b.len());
        &rest[..end]
    }

    fn int(&mut self) -> i64 {
        let l = self.line();
        std::str::from_utf8(l)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn bulk(&mut self, len: usize) -> &'a [u8] {
        let start = self.pos.min(self.b.len());
        let end = (start + len).min(self.b.len());
        self.pos = (end + 2).min(self.b.len());
        &self.b[start..end]
    }
}

/// Pushes the Lua value of the reply `buf` (one RESP value); false when the Lua stack
/// can not grow.
pub unsafe fn push_reply(l: *mut lua_State, buf: &[u8]) -> bool {
    let mut c = Cursor { b: buf, pos: 0 };
    if buf.is_empty() {
        ffi::lua_pushnil(l);
        return true;
    }
    push_value(l, &mut c, 0)
}

unsafe fn set_field(l: *mut lua_State, k: &[u8]) {
    // table at -2, value at -1
    push_bytes(l, k);
    ffi::lua_insert(l, -2);
    ffi::lua_rawset(l, -3);
}

unsafe fn push_value(l: *mut lua_State, c: &mut Cursor, depth: u32) -> bool {
    if depth > MAX_DEPTH || ffi::lua_checkstack(l, 4) == 0 {
        return false;
    }
    if c.pos >= c.b.len() {
        ffi::lua_pushnil(l);
        return true;
    }
    let t = c.b[c.pos];
    c.pos += 1;
    match t {
        b':' => ffi::lua_pushnumber(l, c.int() as f64),
        b'$' => {
            let n = c.int();
            if n < 0 {
                ffi::lua_pushboolean(l, 0);
            } else {
                let s = c.bulk(n as usize);
                push_bytes(l, s);
            }
        }
        b'+' => {
            let s = c.line();
            ffi::lua_createtable(l, 0, 1);
            push_bytes(l, s);
            set_field(l, b"ok");
        }
        b'-' => {
            let s = c.line();
            let mut e = Vec::with_capacity(s.len() + 1);
            e.push(b'-');
            e.extend_from_slice(s);
            let text = super::api::error_text(&e);
            drop(e);
            push_err_table_raw(l, &text);
            // Counted when the command failed: not again when the script replies it.
            push_bytes(l, b"ignore_error_stats_update");
            ffi::lua_pushboolean(l, 1);
            ffi::lua_rawset(l, -3);
        }
        b'*' | b'~' | b'>' => {
            let n = c.int();
            if n < 0 {
                ffi::lua_pushboolean(l, 0);
                return true;
            }
            if t == b'~' {
                ffi::lua_createtable(l, 0, 1);
                ffi::lua_createtable(l, 0, n.min(1024) as c_int);
                for _ in 0..n {
                    if !push_value(l, c, depth + 1) {
                        return false;
                    }
                    ffi::lua_pushboolean(l, 1);
                    ffi::lua_rawset(l, -3);
                }
                set_field(l, b"set");
            } else {
                ffi::lua_createtable(l, n.min(1024) as c_int, 0);
                for j in 0..n {
                    if !push_value(l, c, depth + 1) {
                        return false;
                    }
                    ffi::lua_rawseti(l, -2, (j + 1) as _);
                }
            }
        }
        b'%' => {
            let n = c.int();
            ffi::lua_createtable(l, 0, 1);
            ffi::lua_createtable(l, 0, n.clamp(0, 1024) as c_int);
            for _ in 0..n {
                if !push_value(l, c, depth + 1) || !push_value(l, c, depth + 1) {
                    return false;
                }
                ffi::lua_rawset(l, -3);
            }
            set_field(l, b"map");
        }
        b'|' => {
            // Attributes are not exposed: parse them away, then the value.
            let n = c.int();
            for _ in 0..n.max(0) * 2 {
                if !push_value(l, c, depth + 1) {
                    return false;
                }
                ffi::lua_pop(l, 1);
            }
            return push_value(l, c, depth);
        }
        b'_' => {
            c.line();
            ffi::lua_pushnil(l);
        }
        b'#' => {
            let s = c.line();
            ffi::lua_pushboolean(l, (s == b"t") as c_int);
        }
        b',' => {
            let s = c.line();
            let d = match s {
                b"inf" => f64::INFINITY,
                b"-inf" => f64::NEG_INFINITY,
                b"nan" | b"-nan" => f64::NAN,
                _ => std::str::from_utf8(s)
                    .ok()
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0.0),
            };
            ffi::lua_createtable(l, 0, 1);
            ffi::lua_pushnumber(l, d);
            set_field(l, b"double");
        }
        b'(' => {
            let s = c.line();
            ffi::lua_createtable(l, 0, 1);
            push_bytes(l, s);
            set_field(l, b"big_number");
        }
        b'=' => {
            let n = c.int();
            let s = c.bulk(n.max(0) as usize);
            let (fmt, body) = if s.len() >= 4 {
                (&s[..3], &s[4..])
            } else {
                (&b"txt"[..], s)
            };
            ffi::lua_createtable(l, 0, 1);
            ffi::lua_createtable(l, 0, 2);
            push_bytes(l, fmt);
            set_field(l, b"format");
            push_bytes(l, body);
            set_field(l, b"string");
            set_field(l, b"verbatim_string");
        }
        _ => ffi::lua_pushnil(l),
    }
    true
}

/// Gets field `k` of the table at `idx` (raw) onto the stack and returns its type.
unsafe fn raw_field(l: *mut lua_State, idx: c_int, k: &[u8]) -> c_int {
    push_bytes(l, k);
    ffi::lua_rawget(l, if idx < 0 { idx - 1 } else { idx });
    ffi::lua_type(l, -1)
}

/// `s` with CR and LF replaced by spaces.
fn no_crlf(s: &[u8]) -> Vec<u8> {
    s.iter()
        .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
        .collect()
}

/// Writes an error reply `-<text>` as is (upstream's `-%s` custom error), with CR/LF
/// replaced by spaces. `counted`: false for an error already counted in the error
/// statistics when the command inside the script failed (the table's
/// `ignore_error_stats_update`); the script is then only counted as failed.
pub fn add_error_raw(r: &mut ReplyBuf, text: &[u8], counted: bool) {
    if counted {
        r.errors += 1;
        let code = text.split(|&b| b == b' ').next().unwrap_or(b"ERR");
        r.last_error_code = Some(String::from_utf8_lossy(code).into_owned());
    } else {
        super::run::note_uncounted_error();
    }
    if r.silenced {
        return;
    }
    r.buf.push(b'-');
    r.buf.extend_from_slice(&no_crlf(text));
    r.buf.extend_from_slice(b"\r\n");
}

/// The error text of the error table at the top of the stack: `err`, plus
/// ` script: on <source>:<line>.` when the error handler added them; and whether the
/// error still has to be counted in the error statistics.
pub unsafe fn error_table_text(l: *mut lua_State) -> (Vec<u8>, bool) {
    let ignore = raw_field(l, -1, b"ignore_error_stats_update") == ffi::LUA_TBOOLEAN
        && ffi::lua_toboolean(l, -1) != 0;
    ffi::lua_pop(l, 1);
    let mut out = Vec::new();
    if raw_field(l, -1, b"err") == ffi::LUA_TSTRING {
        out.extend_from_slice(to_bytes(l, -1).unwrap_or(b""));
    } else {
        out.extend_from_slice(b"ERR unknown error");
    }
    ffi::lua_pop(l, 1);
    let st = raw_field(l, -1, b"source");
    let source = (st == ffi::LUA_TSTRING).then(|| to_bytes(l, -1).unwrap_or(b"").to_vec());
    ffi::lua_pop(l, 1);
    let lt = raw_field(l, -1, b"line");
    let line = (lt == ffi::LUA_TNUMBER).then(|| ffi::lua_tonumber(l, -1) as i64);
    ffi::lua_pop(l, 1);
    if let (Some(s), Some(n)) = (source, line) {
        out.extend_from_slice(b" script: on ");
        out.extend_from_slice(&s);
        out.extend_from_slice(format!(":{n}.").as_bytes());
    }
    (out, !ignore)
}

/// Converts the value at the top of the stack into a reply for the caller and pops
/// it (luaReplyToServerReply). `script_resp` is the script client's protocol
/// (server.setresp), which decides how booleans are sent.
pub unsafe fn lua_to_reply(l: *mut lua_State, r: &mut ReplyBuf, script_resp: u8, depth: u32) {
    if depth > MAX_DEPTH || ffi::lua_checkstack(l, 4) == 0 {
        r.add_error("reached lua stack limit");
        ffi::lua_pop(l, 1);
        return;
    }
    match ffi::lua_type(l, -1) {
        ffi::LUA_TSTRING => r.add_bulk(to_bytes(l, -1).unwrap_or(b"")),
        ffi::LUA_TBOOLEAN => {
            let b = ffi::lua_toboolean(l, -1) != 0;
            if script_resp == 2 {
                if b {
                    r.add_long(1);
                } else {
                    r.add_null();
                }
            } else {
                r.add_bool(b);
            }
        }
        ffi::LUA_TNUMBER => {
            // C's (long long) cast on x86-64: NaN and out-of-range values give
            // INT64_MIN, as upstream replies them.
            let n = ffi::lua_tonumber(l, -1);
            let v = if n.is_nan() || !(-TWO_63..TWO_63).contains(&n) {
                i64::MIN
            } else {
                n as i64
            };
            r.add_long(v);
        }
        ffi::LUA_TTABLE => {
            if raw_field(l, -1, b"err") == ffi::LUA_TSTRING {
                ffi::lua_pop(l, 1);
                let (text, counted) = error_table_text(l);
                add_error_raw(r, &text, counted);
                ffi::lua_pop(l, 1);
                return;
            }
            ffi::lua_pop(l, 1);
            if raw_field(l, -1, b"ok") == ffi::LUA_TSTRING {
                let s = no_crlf(to_bytes(l, -1).unwrap_or(b""));
                r.add_raw(b"+");
                r.add_raw(&s);
                r.add_raw(b"\r\n");
                ffi::lua_pop(l, 2);
                return;
            }
            ffi::lua_pop(l, 1);
            if raw_field(l, -1, b"double") == ffi::LUA_TNUMBER {
                r.add_double(ffi::lua_tonumber(l, -1));
                ffi::lua_pop(l, 2);
                return;
            }
            ffi::lua_pop(l, 1);
            if raw_field(l, -1, b"big_number") == ffi::LUA_TSTRING {
                let s = no_crlf(to_bytes(l, -1).unwrap_or(b""));
                if r.resp >= 3 {
                    r.add_raw(b"(");
                    r.add_raw(&s);
                    r.add_raw(b"\r\n");
                } else {
                    r.add_bulk(&s);
                }
                ffi::lua_pop(l, 2);
                return;
            }
            ffi::lua_pop(l, 1);
            if raw_field(l, -1, b"verbatim_string") == ffi::LUA_TTABLE {
                if raw_field(l, -1, b"format") == ffi::LUA_TSTRING {
                    if raw_field(l, -2, b"string") == ffi::LUA_TSTRING {
                        let fmt =
                            String::from_utf8_lossy(to_bytes(l, -2).unwrap_or(b"")).into_owned();
                        r.add_verbatim(to_bytes(l, -1).unwrap_or(b""), &fmt);
                        ffi::lua_pop(l, 4);
                        return;
                    }
                    ffi::lua_pop(l, 1);
                }
                ffi::lua_pop(l, 1);
            }
            ffi::lua_pop(l, 1);
            if raw_field(l, -1, b"map") == ffi::LUA_TTABLE {
                let mut n = 0usize;
                ffi::lua_pushnil(l);
                while ffi::lua_next(l, -2) != 0 {
                    n += 1;
                    ffi::lua_pop(l, 1);
                }
                r.add_map_len(n);
                ffi::lua_pushnil(l);
                while ffi::lua_next(l, -2) != 0 {
                    ffi::lua_pushvalue(l, -2);
                    lua_to_reply(l, r, script_resp, depth + 1);
                    lua_to_reply(l, r, script_resp, depth + 1);
                }
                ffi::lua_pop(l, 2);
                return;
            }
            ffi::lua_pop(l, 1);
            if raw_field(l, -1, b"set") == ffi::LUA_TTABLE {
                let mut n = 0usize;
                ffi::lua_pushnil(l);
                while ffi::lua_next(l, -2) != 0 {
                    n += 1;
                    ffi::lua_pop(l, 1);
                }
                r.add_set_len(n);
                ffi::lua_pushnil(l);
                while ffi::lua_next(l, -2) != 0 {
                    ffi::lua_pop(l, 1);
                    ffi::lua_pushvalue(l, -1);
                    lua_to_reply(l, r, script_resp, depth + 1);
                }
                ffi::lua_pop(l, 2);
                return;
            }
            ffi::lua_pop(l, 1);
            // An array, up to the first nil.
            let mut n = 0usize;
            loop {
                ffi::lua_rawgeti(l, -1, (n + 1) as _);
                let nil = ffi::lua_type(l, -1) == ffi::LUA_TNIL;
                ffi::lua_pop(l, 1);
                if nil {
                    break;
                }
                n += 1;
            }
            r.add_array_len(n);
            for j in 1..=n {
                ffi::lua_rawgeti(l, -1, j as _);
                lua_to_reply(l, r, script_resp, depth + 1);
            }
        }
        _ => r.add_null(),
    }
    ffi::lua_pop(l, 1);
}
