//! The `cjson` library (Lua CJSON 2.1.0 as upstream ships it in
//! `deps/lua/src/lua_cjson.c`), written in Rust from its documented and observed
//! behaviour: `encode`, `decode`, the configuration functions
//! (`encode_sparse_array`, `encode_max_depth`, `decode_max_depth`,
//! `encode_number_precision`, `encode_keep_buffer`, `encode_invalid_numbers`,
//! `decode_invalid_numbers`), `new` (an independent module table with its own
//! configuration), `null` (a NULL light userdata), `_NAME`, `_VERSION`.
//!
//! The configuration lives in a userdata that every function of one module table
//! holds as its upvalue, so it persists across scripts in a Lua state as
//! upstream's does (a `SCRIPT FLUSH` that recreates the state resets it).
//!
//! Encoding: numbers with `%.<precision>g` (14 by default) through the C
//! library's `snprintf`, as upstream; strings escaped with `\"`, `\\`, `\/`,
//! `\b\f\n\r\t`, `\u00XX` for the other control characters and `\u007f`; a table
//! is an array when all its keys are positive integers and it is not
//! "excessively sparse" (`encode_sparse_array`), else an object with string or
//! number keys. Decoding: upstream's tokenizer, with the input read as the C
//! string it is (a NUL byte ends it), numbers through the C library's `strtod`
//! (so `1e400` is inf, and hex/inf/nan are accepted while
//! `decode_invalid_numbers` is on), errors `Expected <what> but found <token> at
//! character <n>`.
//!
//! Limits: nesting is bounded by `encode_max_depth` / `decode_max_depth` (1000)
//! and by Lua's C stack (`lua_checkstack`, used as upstream does, so a deeper
//! setting fails at the same depth: 7998 for a self-referencing array); output
//! and temporary buffers grow with what is written (checked `Vec` growth), never
//! from an announced size (the CVE-2022-24834 class).

use std::os::raw::{c_char, c_int};

use mlua::ffi::{self, lua_State};
use mlua::Lua;

use super::lib_bit::{
    c_functions, call, check_integer, check_lstring, double_to_i32, push_bytes, LibError, LibResult,
};

/// Per-module configuration, upstream's defaults. Plain data in a Lua userdata.
#[repr(C)]
#[derive(Clone, Copy)]
struct Config {
    encode_sparse_convert: i32,
    encode_sparse_ratio: i32,
    encode_sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    encode_invalid_numbers: i32,
    decode_invalid_numbers: i32,
    encode_keep_buffer: i32,
    encode_number_precision: i32,
}

const DEFAULT_CONFIG: Config = Config {
    encode_sparse_convert: 0,
    encode_sparse_ratio: 2,
    encode_sparse_safe: 10,
    encode_max_depth: 1000,
    decode_max_depth: 1000,
    encode_invalid_numbers: 0,
    decode_invalid_numbers: 1,
    encode_keep_buffer: 1,
    encode_number_precision: 14,
};

unsafe fn fetch_config(l: *mut lua_State) -> Result<*mut Config, LibError> {
    let cfg = unsafe { ffi::lua_touserdata(l, ffi::lua_upvalueindex(1)) } as *mut Config;
    if cfg.is_null() {
        return Err(LibError::Msg(
            "BUG: Unable to fetch CJSON configuration".into(),
        ));
    }
    Ok(cfg)
}

// ----- configuration functions -----

/// At most `args` arguments; missing ones become nil.
unsafe fn arg_init(l: *mut lua_State, args: c_int) -> Result<*mut Config, LibError> {
    unsafe {
        if ffi::lua_gettop(l) > args {
            return Err(LibError::Arg(args + 1, "found too many arguments".into()));
        }
        while ffi::lua_gettop(l) < args {
            ffi::lua_pushnil(l);
        }
        fetch_config(l)
    }
}

/// Sets `*setting` from argument `idx` unless nil (range checked; the error
/// names argument 1 whatever `idx` is, as upstream), pushes the value.
unsafe fn integer_option(
    l: *mut lua_State,
    idx: c_int,
    setting: *mut i32,
    min: i32,
    max: i32,
) -> Result<(), LibError> {
    unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TNIL {
            let value = check_integer(l, idx)? as i32;
            if !(min <= value && value <= max) {
                return Err(LibError::Arg(
                    1,
                    format!("expected integer between {min} and {max}"),
                ));
            }
            *setting = value;
        }
        ffi::lua_pushinteger(l, *setting as ffi::lua_Integer);
        Ok(())
    }
}

const BOOL_OPTIONS: &[&str] = &["off", "on"];

/// `luaL_checkoption` without a default.
unsafe fn check_option(l: *mut lua_State, idx: c_int, options: &[&str]) -> Result<i32, LibError> {
    unsafe {
        let name = check_lstring(l, idx)?;
        let name = name.split(|&b| b == 0).next().unwrap_or(&[]);
        match options.iter().position(|o| o.as_bytes() == name) {
            Some(i) => Ok(i as i32),
            None => Err(LibError::Arg(
                idx,
                format!("invalid option '{}'", String::from_utf8_lossy(name)),
            )),
        }
    }
}

/// A boolean or one of `options` (default: off/on); pushes the value back as a
/// boolean when it is 0 or `bool_true`, else as its option name.
unsafe fn enum_option(
    l: *mut lua_State,
    idx: c_int,
    setting: *mut i32,
    options: Option<&[&str]>,
    bool_true: i32,
) -> Result<(), LibError> {
    unsafe {
        let (options, bool_true) = match options {
            Some(o) => (o, bool_true),
            None => (BOOL_OPTIONS, 1),
        };
        if ffi::lua_type(l, idx) != ffi::LUA_TNIL {
            if bool_true != 0 && ffi::lua_type(l, idx) == ffi::LUA_TBOOLEAN {
                *setting = ffi::lua_toboolean(l, idx) * bool_true;
            } else {
                *setting = check_option(l, idx, options)?;
            }
        }
        if bool_true != 0 && (*setting == 0 || *setting == bool_true) {
            ffi::lua_pushboolean(l, *setting);
        } else {
            let name = options.get(*setting as usize).copied().unwrap_or("");
            push_bytes(l, name.as_bytes());
        }
        Ok(())
    }
}

unsafe fn cfg_encode_sparse_array(l: *mut lua_State) -> LibResult {
    unsafe {
        let cfg = arg_init(l, 3)?;
        enum_option(l, 1, &raw mut (*cfg).encode_sparse_convert, None, 1)?;
        integer_option(l, 2, &raw mut (*cfg).encode_sparse_ratio, 0, i32::MAX)?;
        integer_option(l, 3, &raw mut (*cfg).encode_sparse_safe, 0, i32::MAX)?;
        Ok(3)
    }
}

unsafe fn cfg_encode_max_depth(l: *mut lua_State) -> LibResult {
    unsafe {
        let cfg = arg_init(l, 1)?;
        integer_option(l, 1, &raw mut (*cfg).encode_max_depth, 1, i32::MAX)?;
        Ok(1)
    }
}

unsafe fn cfg_decode_max_depth(l: *mut lua_State) -> LibResult {
    unsafe {
        let cfg = arg_init(l, 1)?;
        integer_option(l, 1, &raw mut (*cfg).decode_max_depth, 1, i32::MAX)?;
        Ok(1)
    }
}

unsafe fn cfg_encode_number_precision(l: *mut lua_State) -> LibResult {
    unsafe {
        let cfg = arg_init(l, 1)?;
        integer_option(l, 1, &raw mut (*cfg).encode_number_precision, 1, 14)?;
        Ok(1)
    }
}

/// Accepted and reported; this implementation always builds a fresh buffer, so
/// the setting changes nothing else.
unsafe fn cfg_encode_keep_buffer(l: *mut lua_State) -> LibResult {
    unsafe {
        let cfg = arg_init(l, 1)?;
        enum_option(l, 1, &raw mut (*cfg).encode_keep_buffer, None, 1)?;
        Ok(1)
    }
}

unsafe fn cfg_encode_invalid_numbers(l: *mut lua_State) -> LibResult {
    unsafe {
        let cfg = arg_init(l, 1)?;
        enum_option(
            l,
            1,
            &raw mut (*cfg).encode_invalid_numbers,
            Some(&["off", "on", "null"]),
            1,
        )?;
        Ok(1)
    }
}

unsafe fn cfg_decode_invalid_numbers(l: *mut lua_State) -> LibResult {
    unsafe {
        let cfg = arg_init(l, 1)?;
        enum_option(l, 1, &raw mut (*cfg).decode_invalid_numbers, None, 1)?;
        Ok(1)
    }
}

// ----- encoding -----

/// `Cannot serialise <type of the value at idx>: <reason>`.
unsafe fn encode_exception(l: *mut lua_State, idx: c_int, reason: &str) -> LibError {
    let tname = unsafe { std::ffi::CStr::from_ptr(ffi::lua_typename(l, ffi::lua_type(l, idx))) };
    LibError::Msg(format!(
        "Cannot serialise {}: {reason}",
        tname.to_string_lossy()
    ))
}

fn append_string(buf: &mut Vec<u8>, s: &[u8]) {
    buf.reserve(s.len().saturating_add(2));
    buf.push(b'"');
    for &c in s {
        match c {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'/' => buf.extend_from_slice(b"\\/"),
            0x08 => buf.extend_from_slice(b"\\b"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            0x0c => buf.extend_from_slice(b"\\f"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            0..=0x1f | 0x7f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[(c >> 4) as usize]);
                buf.push(HEX[(c & 15) as usize]);
            }
            _ => buf.push(c),
        }
    }
    buf.push(b'"');
}

/// `%.<precision>g` through the C library, as upstream's fpconv does in the C
/// locale.
fn format_number(buf: &mut Vec<u8>, num: f64, precision: i32) {
    let mut tmp = [0u8; 32];
    // SAFETY: the buffer and its size are given; the format takes an int and a
    // double.
    let n = unsafe {
        libc::snprintf(
            tmp.as_mut_ptr() as *mut c_char,
            tmp.len(),
            c"%.*g".as_ptr(),
            precision as c_int,
            num,
        )
    };
    let n = (n.max(0) as usize).min(tmp.len() - 1);
    buf.extend_from_slice(&tmp[..n]);
}

unsafe fn append_number(
    l: *mut lua_State,
    cfg: &Config,
    buf: &mut Vec<u8>,
    idx: c_int,
) -> Result<(), LibError> {
    let num = unsafe { ffi::lua_tonumber(l, idx) };
    match cfg.encode_invalid_numbers {
        0 => {
            if num.is_infinite() || num.is_nan() {
                return Err(unsafe { encode_exception(l, idx, "must not be NaN or Inf") });
            }
        }
        1 => {
            if num.is_nan() {
                buf.extend_from_slice(b"nan");
                return Ok(());
            }
        }
        _ => {
            if num.is_infinite() || num.is_nan() {
                buf.extend_from_slice(b"null");
                return Ok(());
            }
        }
    }
    format_number(buf, num, cfg.encode_number_precision);
    Ok(())
}

/// The array length of the table at the top, or -1 for an object (or a sparse
/// array converted to an object). Integer keys go through C `int` as upstream.
unsafe fn array_length(l: *mut lua_State, cfg: &Config) -> Result<i32, LibError> {
    unsafe {
        let mut max: i32 = 0;
        let mut items: i32 = 0;
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            if ffi::lua_type(l, -2) == ffi::LUA_TNUMBER {
                let k = ffi::lua_tonumber(l, -2);
                if k != 0.0 && k.floor() == k && k >= 1.0 {
                    if k > max as f64 {
                        max = double_to_i32(k);
                    }
                    items = items.wrapping_add(1);
                    ffi::lua_settop(l, -2);
                    continue;
                }
            }
            ffi::lua_settop(l, -3);
            return Ok(-1);
        }
        if cfg.encode_sparse_ratio > 0
            && max > items.wrapping_mul(cfg.encode_sparse_ratio)
            && max > cfg.encode_sparse_safe
        {
            if cfg.encode_sparse_convert == 0 {
                return Err(encode_exception(l, -1, "excessively sparse array"));
            }
            return Ok(-1);
        }
        Ok(max)
    }
}

/// Appends the value at the top of the stack (left there).
unsafe fn append_data(
    l: *mut lua_State,
    cfg: &Config,
    depth: i32,
    buf: &mut Vec<u8>,
) -> Result<(), LibError> {
    unsafe {
        match ffi::lua_type(l, -1) {
            ffi::LUA_TSTRING => {
                let s = check_lstring(l, -1)?;
                append_string(buf, s);
            }
            ffi::LUA_TNUMBER => append_number(l, cfg, buf, -1)?,
            ffi::LUA_TBOOLEAN => {
                if ffi::lua_toboolean(l, -1) != 0 {
                    buf.extend_from_slice(b"true");
                } else {
                    buf.extend_from_slice(b"false");
                }
            }
            ffi::LUA_TTABLE => {
                let depth = depth.saturating_add(1);
                if !(depth <= cfg.encode_max_depth && ffi::lua_checkstack(l, 3) != 0) {
                    return Err(LibError::Msg(format!(
                        "Cannot serialise, excessive nesting ({depth})"
                    )));
                }
                let len = array_length(l, cfg)?;
                if len > 0 {
                    buf.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            buf.push(b',');
                        }
                        ffi::lua_rawgeti_(l, -1, i);
                        append_data(l, cfg, depth, buf)?;
                        ffi::lua_settop(l, -2);
                    }
                    buf.push(b']');
                } else {
                    buf.push(b'{');
                    let mut comma = false;
                    ffi::lua_pushnil(l);
                    while ffi::lua_next(l, -2) != 0 {
                        if comma {
                            buf.push(b',');
                        }
                        comma = true;
                        match ffi::lua_type(l, -2) {
                            ffi::LUA_TNUMBER => {
                                buf.push(b'"');
                                append_number(l, cfg, buf, -2)?;
                                buf.extend_from_slice(b"\":");
                            }
                            ffi::LUA_TSTRING => {
                                append_string(buf, check_lstring(l, -2)?);
                                buf.push(b':');
                            }
                            _ => {
                                return Err(encode_exception(
                                    l,
                                    -2,
                                    "table key must be a number or string",
                                ));
                            }
                        }
                        append_data(l, cfg, depth, buf)?;
                        ffi::lua_settop(l, -2);
                    }
                    buf.push(b'}');
                }
            }
            ffi::LUA_TNIL => buf.extend_from_slice(b"null"),
            ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(l, -1).is_null() => {
                buf.extend_from_slice(b"null")
            }
            _ => return Err(encode_exception(l, -1, "type not supported")),
        }
        Ok(())
    }
}

unsafe fn encode(l: *mut lua_State) -> LibResult {
    unsafe {
        let cfg = *fetch_config(l)?;
        if ffi::lua_gettop(l) != 1 {
            return Err(LibError::Arg(1, "expected 1 argument".into()));
        }
        let mut buf = Vec::new();
        append_data(l, &cfg, 0, &mut buf)?;
        push_bytes(l, &buf);
        Ok(1)
    }
}

// ----- decoding -----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    String,
    Number,
    Boolean,
    Null,
    Colon,
    Comma,
    End,
    Whitespace,
    Error,
    Unknown,
}

impl Tok {
    fn name(self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::String => "T_STRING",
            Tok::Number => "T_NUMBER",
            Tok::Boolean => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Whitespace => "T_WHITESPACE",
            Tok::Error => "T_ERROR",
            Tok::Unknown => "T_UNKNOWN",
        }
    }
}

fn ch2token(c: u8) -> Tok {
    match c {
        b'{' => Tok::ObjBegin,
        b'}' => Tok::ObjEnd,
        b'[' => Tok::ArrBegin,
        b']' => Tok::ArrEnd,
        b',' => Tok::Comma,
        b':' => Tok::Colon,
        0 => Tok::End,
        b' ' | b'\t' | b'\n' | b'\r' => Tok::Whitespace,
        b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'"' | b'+' | b'-' | b'0'..=b'9' => Tok::Unknown,
        _ => Tok::Error,
    }
}

fn escape2char(c: u8) -> u8 {
    match c {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 0x08,
        b't' => b'\t',
        b'n' => b'\n',
        b'f' => 0x0c,
        b'r' => b'\r',
        b'u' => b'u',
        _ => 0,
    }
}

struct Token {
    ty: Tok,
    /// 0-based offset of the token (of the error position for `Tok::Error`).
    index: usize,
    err: &'static str,
    number: f64,
    boolean: bool,
}

struct Parser<'a> {
    data: &'a [u8],
    ptr: usize,
    cfg: Config,
    depth: i32,
    /// The current string token's bytes.
    tmp: Vec<u8>,
}

impl Parser<'_> {
    /// The byte at `i`, 0 past the end (the C string's terminator).
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn starts_with(&self, s: &[u8]) -> bool {
        s.iter()
            .enumerate()
            .all(|(k, &c)| self.at(self.ptr + k) == c)
    }

    fn set_error(&self, token: &mut Token, msg: &'static str) {
        token.ty = Tok::Error;
        token.index = self.ptr;
        token.err = msg;
    }

    fn hex4(&self, from: usize) -> Option<u32> {
        let mut v = 0u32;
        for k in 0..4 {
            let d = (self.at(from + k) as char).to_digit(16)?;
            v = (v << 4) | d;
        }
        Some(v)
    }

    /// `\uXXXX` (or a surrogate pair) at `ptr`, appended as UTF-8.
    fn unicode_escape(&mut self) -> bool {
        let Some(mut cp) = self.hex4(self.ptr + 2) else {
            return false;
        };
        let mut escape_len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 {
                return false;
            }
            if self.at(self.ptr + 6) != b'\\' || self.at(self.ptr + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.ptr + 8) else {
                return false;
            };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            escape_len = 12;
        }
        if cp <= 0x7F {
            self.tmp.push(cp as u8);
        } else if cp <= 0x7FF {
            self.tmp
                .extend_from_slice(&[(cp >> 6) as u8 | 0xC0, (cp & 0x3F) as u8 | 0x80]);
        } else if cp <= 0xFFFF {
            self.tmp.extend_from_slice(&[
                (cp >> 12) as u8 | 0xE0,
                ((cp >> 6) & 0x3F) as u8 | 0x80,
                (cp & 0x3F) as u8 | 0x80,
            ]);
        } else {
            self.tmp.extend_from_slice(&[
                (cp >> 18) as u8 | 0xF0,
                ((cp >> 12) & 0x3F) as u8 | 0x80,
                ((cp >> 6) & 0x3F) as u8 | 0x80,
                (cp & 0x3F) as u8 | 0x80,
            ]);
        }
        self.ptr += escape_len;
        true
    }

    fn string_token(&mut self, token: &mut Token) {
        self.ptr += 1;
        self.tmp.clear();
        loop {
            let mut ch = self.at(self.ptr);
            if ch == b'"' {
                break;
            }
            if ch == 0 {
                self.set_error(token, "unexpected end of string");
                return;
            }
            if ch == b'\\' {
                ch = escape2char(self.at(self.ptr + 1));
                if ch == b'u' {
                    if self.unicode_escape() {
                        continue;
                    }
                    self.set_error(token, "invalid unicode escape code");
                    return;
                }
                if ch == 0 {
                    self.set_error(token, "invalid escape code");
                    return;
                }
                self.ptr += 1;
            }
            self.tmp.push(ch);
            self.ptr += 1;
        }
        self.ptr += 1;
        token.ty = Tok::String;
    }

    /// Numbers strict JSON forbids: a leading `+`, hex, leading zeros, inf, nan.
    fn is_invalid_number(&self) -> bool {
        let mut p = self.ptr;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        if self.at(p) == b'0' {
            let ch2 = self.at(p + 1);
            return (ch2 | 0x20) == b'x' || ch2.is_ascii_digit();
        } else if (self.at(p) as i8) <= b'9' as i8 {
            return false;
        }
        let word = |w: &[u8]| (0..3).all(|k| self.at(p + k).eq_ignore_ascii_case(&w[k]));
        word(b"inf") || word(b"nan")
    }

    /// strtod at `ptr`. Only the run of bytes strtod can consume is copied (with
    /// a terminator), so the result is the same as on the whole C string.
    fn number_token(&mut self, token: &mut Token) {
        let run = self.data[self.ptr.min(self.data.len())..]
            .iter()
            .take_while(|&&c| c.is_ascii_alphanumeric() || b"+-._()".contains(&c))
            .count();
        let mut small = [0u8; 64];
        let mut big = Vec::new();
        let bytes: &mut [u8] = if run < small.len() {
            &mut small[..run + 1]
        } else {
            big.resize(run + 1, 0);
            &mut big[..]
        };
        bytes[..run].copy_from_slice(&self.data[self.ptr..self.ptr + run]);
        bytes[run] = 0;
        let start = bytes.as_ptr() as *const c_char;
        let mut end: *mut c_char = std::ptr::null_mut();
        // SAFETY: `bytes` is NUL-terminated and outlives the call.
        let value = unsafe { libc::strtod(start, &mut end) };
        let consumed = (end as usize).wrapping_sub(start as usize).min(run);
        token.ty = Tok::Number;
        token.number = value;
        if consumed == 0 {
            self.set_error(token, "invalid number");
        } else {
            self.ptr += consumed;
        }
    }

    fn next_token(&mut self) -> Token {
        let mut token = Token {
            ty: Tok::End,
            index: 0,
            err: "",
            number: 0.0,
            boolean: false,
        };
        let mut ch;
        loop {
            ch = self.at(self.ptr);
            token.ty = ch2token(ch);
            if token.ty != Tok::Whitespace {
                break;
            }
            self.ptr += 1;
        }
        token.index = self.ptr;
        match token.ty {
            Tok::Error => {
                self.set_error(&mut token, "invalid token");
                return token;
            }
            Tok::End => return token,
            Tok::Unknown => {}
            _ => {
                self.ptr += 1;
                return token;
            }
        }
        if ch == b'"' {
            self.string_token(&mut token);
        } else if ch == b'-' || ch.is_ascii_digit() {
            if self.cfg.decode_invalid_numbers == 0 && self.is_invalid_number() {
                self.set_error(&mut token, "invalid number");
            } else {
                self.number_token(&mut token);
            }
        } else if self.starts_with(b"true") {
            token.ty = Tok::Boolean;
            token.boolean = true;
            self.ptr += 4;
        } else if self.starts_with(b"false") {
            token.ty = Tok::Boolean;
            token.boolean = false;
            self.ptr += 5;
        } else if self.starts_with(b"null") {
            token.ty = Tok::Null;
            self.ptr += 4;
        } else if self.cfg.decode_invalid_numbers != 0 && self.is_invalid_number() {
            self.number_token(&mut token);
        } else {
            self.set_error(&mut token, "invalid token");
        }
        token
    }

    fn parse_error(&self, expected: &str, token: &Token) -> LibError {
        let found = if token.ty == Tok::Error {
            token.err
        } else {
            token.ty.name()
        };
        LibError::Msg(format!(
            "Expected {expected} but found {found} at character {}",
            token.index + 1
        ))
    }

    /// One level deeper: within `decode_max_depth` and with `slots` free on
    /// Lua's stack, as upstream checks.
    unsafe fn descend(&mut self, l: *mut lua_State, slots: c_int) -> Result<(), LibError> {
        self.depth = self.depth.saturating_add(1);
        if self.depth <= self.cfg.decode_max_depth && unsafe { ffi::lua_checkstack(l, slots) } != 0
        {
            return Ok(());
        }
        Err(LibError::Msg(format!(
            "Found too many nested data structures ({}) at character {}",
            self.depth, self.ptr
        )))
    }

    unsafe fn object(&mut self, l: *mut lua_State) -> Result<(), LibError> {
        unsafe {
            self.descend(l, 3)?;
            ffi::lua_createtable(l, 0, 0);
            let mut token = self.next_token();
            if token.ty == Tok::ObjEnd {
                self.depth -= 1;
                return Ok(());
            }
            loop {
                if token.ty != Tok::String {
                    return Err(self.parse_error("object key string", &token));
                }
                push_bytes(l, &self.tmp);
                token = self.next_token();
                if token.ty != Tok::Colon {
                    return Err(self.parse_error("colon", &token));
                }
                token = self.next_token();
                self.value(l, &token)?;
                ffi::lua_rawset(l, -3);
                token = self.next_token();
                if token.ty == Tok::ObjEnd {
                    self.depth -= 1;
                    return Ok(());
                }
                if token.ty != Tok::Comma {
                    return Err(self.parse_error("comma or object end", &token));
                }
                token = self.next_token();
            }
        }
    }

    unsafe fn array(&mut self, l: *mut lua_State) -> Result<(), LibError> {
        unsafe {
            self.descend(l, 2)?;
            ffi::lua_createtable(l, 0, 0);
            let mut token = self.next_token();
            if token.ty == Tok::ArrEnd {
                self.depth -= 1;
                return Ok(());
            }
            let mut i: c_int = 1;
            loop {
                self.value(l, &token)?;
                ffi::lua_rawseti_(l, -2, i);
                token = self.next_token();
                if token.ty == Tok::ArrEnd {
                    self.depth -= 1;
                    return Ok(());
                }
                if token.ty != Tok::Comma {
                    return Err(self.parse_error("comma or array end", &token));
                }
                token = self.next_token();
                i = i.wrapping_add(1);
            }
        }
    }

    unsafe fn value(&mut self, l: *mut lua_State, token: &Token) -> Result<(), LibError> {
        unsafe {
            match token.ty {
                Tok::String => push_bytes(l, &self.tmp),
                Tok::Number => ffi::lua_pushnumber(l, token.number),
                Tok::Boolean => ffi::lua_pushboolean(l, token.boolean as c_int),
                Tok::ObjBegin => self.object(l)?,
                Tok::ArrBegin => self.array(l)?,
                Tok::Null => ffi::lua_pushlightuserdata(l, std::ptr::null_mut()),
                _ => return Err(self.parse_error("value", token)),
            }
            Ok(())
        }
    }
}

unsafe fn decode(l: *mut lua_State) -> LibResult {
    unsafe {
        if ffi::lua_gettop(l) != 1 {
            return Err(LibError::Arg(1, "expected 1 argument".into()));
        }
        let cfg = *fetch_config(l)?;
        let data = check_lstring(l, 1)?;
        if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
            return Err(LibError::Msg(
                "JSON parser does not support UTF-16 or UTF-32".into(),
            ));
        }
        let mut p = Parser {
            data,
            ptr: 0,
            cfg,
            depth: 0,
            tmp: Vec::new(),
        };
        let token = p.next_token();
        p.value(l, &token)?;
        let token = p.next_token();
        if token.ty != Tok::End {
            return Err(p.parse_error("the end", &token));
        }
        Ok(1)
    }
}

// ----- module tables -----

c_functions! {
    c_encode => encode, c_decode => decode,
    c_encode_sparse_array => cfg_encode_sparse_array,
    c_encode_max_depth => cfg_encode_max_depth,
    c_decode_max_depth => cfg_decode_max_depth,
    c_encode_number_precision => cfg_encode_number_precision,
    c_encode_keep_buffer => cfg_encode_keep_buffer,
    c_encode_invalid_numbers => cfg_encode_invalid_numbers,
    c_decode_invalid_numbers => cfg_decode_invalid_numbers,
    c_new => new_module_fn,
}

/// Pushes a new module table with a fresh configuration. Raises only on an
/// allocation failure.
unsafe fn push_module(l: *mut lua_State) {
    const FUNCS: &[(&std::ffi::CStr, ffi::lua_CFunction)] = &[
        (c"encode", c_encode),
        (c"decode", c_decode),
        (c"encode_sparse_array", c_encode_sparse_array),
        (c"encode_max_depth", c_encode_max_depth),
        (c"decode_max_depth", c_decode_max_depth),
        (c"encode_number_precision", c_encode_number_precision),
        (c"encode_keep_buffer", c_encode_keep_buffer),
        (c"encode_invalid_numbers", c_encode_invalid_numbers),
        (c"decode_invalid_numbers", c_decode_invalid_numbers),
        (c"new", c_new),
    ];
    unsafe {
        ffi::lua_createtable(l, 0, 13);
        let cfg = ffi::lua_newuserdata(l, std::mem::size_of::<Config>()) as *mut Config;
        cfg.write(DEFAULT_CONFIG);
        for (name, f) in FUNCS {
            ffi::lua_pushvalue(l, -1);
            ffi::lua_pushcclosure(l, *f, 1);
            ffi::lua_setfield(l, -3, name.as_ptr());
        }
        ffi::lua_settop(l, -2);
        ffi::lua_pushlightuserdata(l, std::ptr::null_mut());
        ffi::lua_setfield(l, -2, c"null".as_ptr());
        push_bytes(l, b"cjson");
        ffi::lua_setfield(l, -2, c"_NAME".as_ptr());
        push_bytes(l, b"2.1.0");
        ffi::lua_setfield(l, -2, c"_VERSION".as_ptr());
    }
}

/// `cjson.new()`.
unsafe fn new_module_fn(l: *mut lua_State) -> LibResult {
    unsafe {
        if ffi::lua_checkstack(l, 4) == 0 {
            return Err(LibError::Msg("stack overflow".into()));
        }
        push_module(l);
    }
    Ok(1)
}

/// Creates the global `cjson` table. The caller marks the tables read-only
/// afterwards.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    // SAFETY: push_module only pushes (one table) and sets fields of it.
    let t: mlua::Table = unsafe { lua.exec_raw((), |l| push_module(l))? };
    lua.globals().raw_set("cjson", t)
}

#[cfg(test)]
mod tests {
    use super::super::lib_bit::testutil::{run, state};
    use super::*;

    fn ok(lua: &Lua, code: &str) -> String {
        run(lua, code).unwrap_or_else(|e| panic!("{code}: {e}"))
    }

    fn err(lua: &Lua, code: &str) -> String {
        run(lua, code).expect_err(code)
    }

    /// Runs `f` on a thread with a large stack: the deep-nesting cases recurse
    /// up to 8000 levels, deeper than a test thread's default 2 MiB allows (the
    /// server's main thread has 8 MiB).
    fn big_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    // Expected values: EVAL "return cjson.encode(<value>)" 0 on the reference
    // (valkey 9.1.2) with the default configuration.
    #[test]
    fn encode_values() {
        let lua = state(install);
        let cases = [
            ("{1,2,3,nil,5}", "[1,2,3,null,5]"),
            ("1e100", "1e+100"),
            ("'a/b\"\\1'", "\"a\\/b\\\"\\u0001\""),
            ("{}", "{}"),
            ("-0", "-0"),
            ("1e-300", "1e-300"),
            ("0.1", "0.1"),
            ("1/3", "0.33333333333333"),
            ("123456789012345678", "1.2345678901235e+17"),
            ("{a={b={true,false}}}", "{\"a\":{\"b\":[true,false]}}"),
            ("{[1]=1,[2]=2,[4]=4}", "[1,2,null,4]"),
            ("{[2.5]=1}", "{\"2.5\":1}"),
            ("{[2^31]=1}", "{\"2147483648\":1}"),
            ("cjson.null", "null"),
            (
                "'\\127\\8\\12\\n\\r\\t\\\\'",
                "\"\\u007f\\b\\f\\n\\r\\t\\\\\"",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(ok(&lua, &format!("return cjson.encode({v})")), want, "{v}");
        }
    }

    #[test]
    fn encode_errors() {
        let lua = state(install);
        let p = "user_script:1: ";
        let cases = [
            (
                "{[1]=1,[20]=2}",
                "Cannot serialise table: excessively sparse array",
            ),
            ("{a=1/0}", "Cannot serialise number: must not be NaN or Inf"),
            (
                "{[1/0]=1}",
                "Cannot serialise number: must not be NaN or Inf",
            ),
            (
                "function() end",
                "Cannot serialise function: type not supported",
            ),
            (
                "{[true]=1}",
                "Cannot serialise boolean: table key must be a number or string",
            ),
            (
                "coroutine.create(function() end)",
                "Cannot serialise thread: type not supported",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(
                err(&lua, &format!("return cjson.encode({v})")),
                format!("{p}{want}"),
                "{v}"
            );
        }
        assert_eq!(
            err(&lua, "local t={} t[1]=t return cjson.encode(t)"),
            format!("{p}Cannot serialise, excessive nesting (1001)")
        );
        assert_eq!(
            err(&lua, "return cjson.encode()"),
            format!("{p}bad argument #1 to 'encode' (expected 1 argument)")
        );
        assert_eq!(
            err(&lua, "return cjson.encode(1, 2)"),
            format!("{p}bad argument #1 to 'encode' (expected 1 argument)")
        );
    }

    #[test]
    fn decode_values() {
        let lua = state(install);
        let cases = [
            ("'[1,2,3]'", "local t = v return t[1] + t[2] + t[3]", "6"),
            ("'1e400'", "return v", "inf"),
            (
                "'{\"a\":[1,{\"b\":null}]}'",
                "return v.a[2].b == cjson.null",
                "true",
            ),
            ("'\"\\\\u00e9\\\\ud83d\\\\ude00\\\\n\"'", "return #v", "7"),
            ("'  \"x\"  '", "return v", "x"),
            ("'0x10'", "return v", "16"),
            ("'-Infinity'", "return v", "-inf"),
            ("'[1]\\0garbage'", "return v[1]", "1"),
            ("123", "return v", "123"),
            ("'[]'", "return next(v) == nil", "true"),
            ("'{\"a\":1,\"a\":2}'", "return v.a", "2"),
            ("'true'", "return v", "true"),
        ];
        for (input, check, want) in cases {
            let code = format!("local v = cjson.decode({input}) {check}");
            assert_eq!(ok(&lua, &code), want, "{input}");
        }
    }

    #[test]
    fn decode_errors() {
        let lua = state(install);
        let p = "user_script:1: ";
        let cases = [
            (
                "'{'",
                "Expected object key string but found T_END at character 2",
            ),
            (
                "'[1,2'",
                "Expected comma or array end but found T_END at character 5",
            ),
            (
                "'nul'",
                "Expected value but found invalid token at character 1",
            ),
            (
                "'[1] x'",
                "Expected the end but found invalid token at character 5",
            ),
            (
                "'{\"a\" 1}'",
                "Expected colon but found T_NUMBER at character 6",
            ),
            (
                "'{\"a\":1 ]'",
                "Expected comma or object end but found T_ARR_END at character 8",
            ),
            (
                "'\"abc'",
                "Expected value but found unexpected end of string at character 5",
            ),
            (
                "'\"a\\\\qb\"'",
                "Expected value but found invalid escape code at character 3",
            ),
            (
                "'\"\\\\ud800x\"'",
                "Expected value but found invalid unicode escape code at character 2",
            ),
            (
                "'-'",
                "Expected value but found invalid number at character 1",
            ),
            ("']'", "Expected value but found T_ARR_END at character 1"),
            ("'\\0a'", "JSON parser does not support UTF-16 or UTF-32"),
            ("''", "Expected value but found T_END at character 1"),
            (
                "string.rep('[', 2000)",
                "Found too many nested data structures (1001) at character 1001",
            ),
            (
                "nil",
                "bad argument #1 to 'decode' (string expected, got nil)",
            ),
            (
                "{}",
                "bad argument #1 to 'decode' (string expected, got table)",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                err(&lua, &format!("return cjson.decode({input})")),
                format!("{p}{want}"),
                "{input}"
            );
        }
        assert_eq!(
            err(&lua, "return cjson.decode()"),
            format!("{p}bad argument #1 to 'decode' (expected 1 argument)")
        );
    }

    #[test]
    fn configuration() {
        let lua = state(install);
        let p = "user_script:1: ";
        assert_eq!(ok(&lua, "return cjson.encode_sparse_array()"), "false|2|10");
        assert_eq!(ok(&lua, "return cjson.encode_max_depth()"), "1000");
        assert_eq!(ok(&lua, "return cjson.decode_max_depth()"), "1000");
        assert_eq!(ok(&lua, "return cjson.encode_number_precision()"), "14");
        assert_eq!(ok(&lua, "return cjson.encode_keep_buffer()"), "true");
        assert_eq!(ok(&lua, "return cjson.encode_invalid_numbers()"), "false");
        assert_eq!(ok(&lua, "return cjson.decode_invalid_numbers()"), "true");
        assert_eq!(
            err(&lua, "return cjson.encode_sparse_array(1)"),
            format!("{p}bad argument #1 to 'encode_sparse_array' (invalid option '1')")
        );
        assert_eq!(
            err(&lua, "return cjson.encode_sparse_array(true, -1)"),
            format!("{p}bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)")
        );
        assert_eq!(
            err(&lua, "return cjson.encode_sparse_array(true, 1, 2, 3)"),
            format!("{p}bad argument #4 to 'encode_sparse_array' (found too many arguments)")
        );
        assert_eq!(
            err(&lua, "return cjson.encode_number_precision(15)"),
            format!("{p}bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)")
        );
        assert_eq!(
            err(&lua, "return cjson.encode_max_depth({})"),
            format!("{p}bad argument #1 to 'encode_max_depth' (number expected, got table)")
        );
        // The first argument took effect before the second failed.
        assert_eq!(ok(&lua, "return cjson.encode_sparse_array()"), "true|2|10");
        assert_eq!(
            ok(&lua, "return cjson.encode({[1]=1,[20]=2})"),
            "{\"1\":1,\"20\":2}"
        );
        assert_eq!(
            ok(&lua, "return cjson.encode_sparse_array('off', 0)"),
            "false|0|10"
        );
        assert_eq!(ok(&lua, "return cjson.encode({[1]=1,[20]=2})").len(), 95);
        assert_eq!(ok(&lua, "return cjson.encode_number_precision(3)"), "3");
        assert_eq!(ok(&lua, "return cjson.encode(1/3)"), "0.333");
        assert_eq!(
            ok(&lua, "return cjson.encode_invalid_numbers('null')"),
            "null"
        );
        assert_eq!(ok(&lua, "return cjson.encode({1/0, 0/0})"), "[null,null]");
        assert_eq!(
            ok(&lua, "return cjson.encode_invalid_numbers(true)"),
            "true"
        );
        assert_eq!(
            ok(&lua, "return cjson.encode({1/0, -1/0, 0/0})"),
            "[inf,-inf,nan]"
        );
        assert_eq!(
            ok(&lua, "return cjson.decode_invalid_numbers(false)"),
            "false"
        );
        assert_eq!(
            err(&lua, "return cjson.decode('0x10')"),
            format!("{p}Expected value but found invalid number at character 1")
        );
        assert_eq!(
            err(&lua, "return cjson.decode('+1')"),
            format!("{p}Expected value but found invalid token at character 1")
        );
        // new(): a separate configuration with the defaults.
        assert_eq!(
            ok(
                &lua,
                "local c = cjson.new() return c.encode(1/3), c.encode_number_precision()"
            ),
            "0.33333333333333|14"
        );
        assert_eq!(
            ok(&lua, "return cjson._NAME, cjson._VERSION, cjson.null"),
            "cjson|2.1.0|userdata: (nil)"
        );
    }

    #[test]
    fn deep_nesting_limits() {
        big_stack(|| {
            let lua = state(install);
            let p = "user_script:1: ";
            // Expected values: EVAL on the reference after encode_max_depth(100000)
            // / decode_max_depth(100000).
            assert_eq!(ok(&lua, "return cjson.encode_max_depth(100000)"), "100000");
            assert_eq!(
                err(&lua, "local t={} t[1]=t return cjson.encode(t)"),
                format!("{p}Cannot serialise, excessive nesting (7998)")
            );
            assert_eq!(ok(&lua, "return cjson.decode_max_depth(100000)"), "100000");
            assert_eq!(
                err(&lua, "return cjson.decode(string.rep('[',10000))"),
                format!("{p}Found too many nested data structures (7999) at character 7999")
            );
            assert_eq!(
                err(&lua, "return cjson.decode(string.rep('{\"a\":',10000))"),
                format!("{p}Found too many nested data structures (4000) at character 19996")
            );
        });
    }
}
