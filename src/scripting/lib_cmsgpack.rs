//! The `cmsgpack` library (lua-cmsgpack 0.4.0 as upstream ships it in
//! `deps/lua/src/lua_cmsgpack.c`), written in Rust from its documented and
//! observed behaviour: `pack(...)`, `unpack(s)`, `unpack_one(s [, offset])`,
//! `unpack_limit(s, limit [, offset])`.
//!
//! Encoding (what upstream emits):
//! - a number equal to its `int64_t` conversion (and not infinite) is an integer:
//!   positive fixint, uint8/16/32/64, negative fixint, int8/16/32/64 (smallest
//!   form); any other number is a float 32 when `(double)(float)d == d` (so also
//!   the infinities), else a float 64 (NaN);
//! - strings: fixstr, str8, str16, str32 (never bin);
//! - a table whose keys are exactly the integers 1..n (in C `int` range) is an
//!   array (fixarray, array16, array32; the empty table is `0x90`), any other a
//!   map (fixmap, map16, map32) in `next` order; tables nested 16 deep are
//!   encoded as nil (so a cycle ends);
//! - booleans, and nil for every other type.
//!
//! Decoding accepts the same types plus nothing else (`bin`, `ext`, `0xc1` are
//! `Bad data format in input.`). Integers come back as Lua numbers converted the
//! way upstream's C does (a uint64 above 2^63 wraps negative). Nothing is
//! allocated from an announced length: a string is read only when the bytes are
//! there, tables grow as elements arrive. The nesting limit is Lua's C stack
//! (`lua_checkstack`, 8000 slots), used exactly as upstream uses it (the index or
//! key stays on the stack while an element is decoded), so the same input fails
//! at the same depth with the same `stack overflow (...)` message.

use std::os::raw::c_int;

use mlua::ffi::{self, lua_State};
use mlua::Lua;

use super::lib_bit::{
    c_functions, call, check_integer, check_lstring, double_to_i32, double_to_i64, function_table,
    opt_integer, push_bytes, LibError, LibResult,
};

/// Tables nested this deep are encoded as nil.
const MAX_NESTING: i32 = 16;

const TOO_MANY_VALUES: &str =
    "too many return values at once; use unpack_one or unpack_limit instead.";

fn stack_overflow(what: &str) -> LibError {
    LibError::Msg(format!("stack overflow ({what})"))
}

// ----- encoding -----

fn encode_bytes(buf: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 32 {
        buf.push(0xa0 | len as u8);
    } else if len <= 0xff {
        buf.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        buf.push(0xda);
        buf.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        // str32 holds the low 32 bits of the length, as upstream writes it.
        buf.push(0xdb);
        buf.extend_from_slice(&(len as u32).to_be_bytes());
    }
    buf.extend_from_slice(s);
}

fn encode_double(buf: &mut Vec<u8>, d: f64) {
    let f = d as f32;
    if d == f as f64 {
        buf.push(0xca);
        buf.extend_from_slice(&f.to_be_bytes());
    } else {
        buf.push(0xcb);
        buf.extend_from_slice(&d.to_be_bytes());
    }
}

fn encode_int(buf: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            buf.push(n as u8);
        } else if n <= 0xff {
            buf.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            buf.push(0xcd);
            buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            buf.push(0xce);
            buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            buf.push(0xcf);
            buf.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        buf.push(n as i8 as u8);
    } else if n >= -128 {
        buf.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        buf.push(0xd1);
        buf.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        buf.push(0xd2);
        buf.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        buf.push(0xd3);
        buf.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_header(buf: &mut Vec<u8>, n: u64, fix: u8, b16: u8, b32: u8) {
    if n <= 15 {
        buf.push(fix | n as u8);
    } else if n <= 0xffff {
        buf.push(b16);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(b32);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Whether the table at the top has exactly the keys 1..n (C `int` integers).
unsafe fn table_is_an_array(l: *mut lua_State) -> Result<bool, LibError> {
    unsafe {
        let top = ffi::lua_gettop(l);
        if ffi::lua_checkstack(l, 2) == 0 {
            return Err(stack_overflow("in function table_is_an_array"));
        }
        let (mut count, mut max) = (0i32, 0i32);
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            ffi::lua_settop(l, -2);
            let n = ffi::lua_tonumber(l, -1);
            if ffi::lua_type(l, -1) != ffi::LUA_TNUMBER
                || n <= 0.0
                || n.is_infinite()
                || double_to_i32(n) as f64 != n
            {
                ffi::lua_settop(l, top);
                return Ok(false);
            }
            max = max.max(n as i32);
            count = count.wrapping_add(1);
        }
        ffi::lua_settop(l, top);
        Ok(max == count)
    }
}

/// Encodes the value at the top of the stack and pops it.
unsafe fn encode_value(l: *mut lua_State, buf: &mut Vec<u8>, level: i32) -> Result<(), LibError> {
    unsafe {
        let mut t = ffi::lua_type(l, -1);
        if t == ffi::LUA_TTABLE && level == MAX_NESTING {
            t = ffi::LUA_TNIL;
        }
        match t {
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let p = ffi::lua_tolstring(l, -1, &mut len);
                encode_bytes(buf, std::slice::from_raw_parts(p as *const u8, len));
            }
            ffi::LUA_TBOOLEAN => buf.push(if ffi::lua_toboolean(l, -1) != 0 {
                0xc3
            } else {
                0xc2
            }),
            ffi::LUA_TNUMBER => {
                let n = ffi::lua_tonumber(l, -1);
                if !n.is_infinite() && double_to_i64(n) as f64 == n {
                    encode_int(buf, double_to_i64(n));
                } else {
                    encode_double(buf, n);
                }
            }
            ffi::LUA_TTABLE => {
                if table_is_an_array(l)? {
                    let len = ffi::lua_objlen(l, -1);
                    encode_header(buf, len as u64, 0x90, 0xdc, 0xdd);
                    if ffi::lua_checkstack(l, 1) == 0 {
                        return Err(stack_overflow("in function mp_encode_lua_table_as_array"));
                    }
                    for j in 1..=len {
                        // Every key 1..len is present, so a raw read is what
                        // upstream's lua_gettable finds.
                        ffi::lua_rawgeti_(l, -1, j as c_int);
                        encode_value(l, buf, level + 1)?;
                    }
                } else {
                    if ffi::lua_checkstack(l, 3) == 0 {
                        return Err(stack_overflow("in function mp_encode_lua_table_as_map"));
                    }
                    let mut len: u64 = 0;
                    ffi::lua_pushnil(l);
                    while ffi::lua_next(l, -2) != 0 {
                        ffi::lua_settop(l, -2);
                        len += 1;
                    }
                    encode_header(buf, len, 0x80, 0xde, 0xdf);
                    ffi::lua_pushnil(l);
                    while ffi::lua_next(l, -2) != 0 {
                        ffi::lua_pushvalue(l, -2);
                        encode_value(l, buf, level + 1)?;
                        encode_value(l, buf, level + 1)?;
                    }
                }
            }
            _ => buf.push(0xc0),
        }
        ffi::lua_settop(l, -2);
        Ok(())
    }
}

/// `cmsgpack.pack(...)`: the concatenated encodings of all arguments.
unsafe fn pack(l: *mut lua_State) -> LibResult {
    unsafe {
        let nargs = ffi::lua_gettop(l);
        if nargs == 0 {
            return Err(LibError::Arg(0, "MessagePack pack needs input.".into()));
        }
        if ffi::lua_checkstack(l, nargs) == 0 {
            return Err(LibError::Arg(
                0,
                "Too many arguments for MessagePack pack.".into(),
            ));
        }
        let mut buf = Vec::new();
        for i in 1..=nargs {
            if ffi::lua_checkstack(l, 1) == 0 {
                return Err(stack_overflow("in function mp_check"));
            }
            ffi::lua_pushvalue(l, i);
            encode_value(l, &mut buf, 0)?;
            // Upstream leaves one string per encoded argument on the stack; keep
            // the same stack height so the stack checks agree.
            ffi::lua_pushnil(l);
        }
        ffi::lua_settop(l, nargs);
        push_bytes(l, &buf);
        Ok(1)
    }
}

// ----- decoding -----

enum DecodeError {
    Eof,
    BadFormat,
    Lib(LibError),
}

struct Cursor<'a> {
    s: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.s.len() < n {
            Err(DecodeError::Eof)
        } else {
            Ok(())
        }
    }

    fn consume(&mut self, n: usize) {
        self.s = &self.s[n..];
    }

    fn be(&self, from: usize, n: usize) -> u64 {
        self.s[from..from + n]
            .iter()
            .fold(0u64, |a, &b| (a << 8) | b as u64)
    }
}

unsafe fn decode_array(l: *mut lua_State, c: &mut Cursor, len: u64) -> Result<(), DecodeError> {
    unsafe {
        ffi::lua_createtable(l, 0, 0);
        if ffi::lua_checkstack(l, 1) == 0 {
            return Err(DecodeError::Lib(stack_overflow(
                "in function mp_decode_to_lua_array",
            )));
        }
        let mut index: i32 = 1;
        for _ in 0..len {
            ffi::lua_pushnumber(l, index as f64);
            index = index.wrapping_add(1);
            decode_value(l, c)?;
            ffi::lua_rawset(l, -3);
        }
        Ok(())
    }
}

unsafe fn decode_map(l: *mut lua_State, c: &mut Cursor, len: u64) -> Result<(), DecodeError> {
    unsafe {
        ffi::lua_createtable(l, 0, 0);
        for _ in 0..len {
            decode_value(l, c)?;
            decode_value(l, c)?;
            // lua_settable raises these from inside the C function, so without a
            // position.
            match ffi::lua_type(l, -2) {
                ffi::LUA_TNIL => {
                    return Err(DecodeError::Lib(LibError::Raw("table index is nil".into())));
                }
                ffi::LUA_TNUMBER if ffi::lua_tonumber(l, -2).is_nan() => {
                    return Err(DecodeError::Lib(LibError::Raw("table index is NaN".into())));
                }
                _ => {}
            }
            ffi::lua_rawset(l, -3);
        }
        Ok(())
    }
}

/// Decodes one value onto the stack.
unsafe fn decode_value(l: *mut lua_State, c: &mut Cursor) -> Result<(), DecodeError> {
    unsafe {
        c.need(1)?;
        if ffi::lua_checkstack(l, 1) == 0 {
            return Err(DecodeError::Lib(stack_overflow(TOO_MANY_VALUES)));
        }
        let b0 = c.s[0];
        match b0 {
            0xcc => {
                c.need(2)?;
                ffi::lua_pushnumber(l, c.s[1] as f64);
                c.consume(2);
            }
            0xd0 => {
                c.need(2)?;
                ffi::lua_pushnumber(l, c.s[1] as i8 as f64);
                c.consume(2);
            }
            0xcd => {
                c.need(3)?;
                ffi::lua_pushnumber(l, c.be(1, 2) as f64);
                c.consume(3);
            }
            0xd1 => {
                c.need(3)?;
                ffi::lua_pushnumber(l, c.be(1, 2) as u16 as i16 as f64);
                c.consume(3);
            }
            0xce => {
                c.need(5)?;
                ffi::lua_pushnumber(l, c.be(1, 4) as f64);
                c.consume(5);
            }
            0xd2 => {
                c.need(5)?;
                ffi::lua_pushnumber(l, c.be(1, 4) as u32 as i32 as f64);
                c.consume(5);
            }
            0xcf | 0xd3 => {
                // Upstream pushes uint64 through lua_pushinteger (int64), so
                // values above 2^63 wrap negative; int64 is signed anyway.
                c.need(9)?;
                ffi::lua_pushnumber(l, c.be(1, 8) as i64 as f64);
                c.consume(9);
            }
            0xc0 => {
                ffi::lua_pushnil(l);
                c.consume(1);
            }
            0xc3 | 0xc2 => {
                ffi::lua_pushboolean(l, (b0 == 0xc3) as c_int);
                c.consume(1);
            }
            0xca => {
                c.need(5)?;
                ffi::lua_pushnumber(l, f32::from_bits(c.be(1, 4) as u32) as f64);
                c.consume(5);
            }
            0xcb => {
                c.need(9)?;
                ffi::lua_pushnumber(l, f64::from_bits(c.be(1, 8)));
                c.consume(9);
            }
            0xd9..=0xdb => {
                let hdr = match b0 {
                    0xd9 => 2,
                    0xda => 3,
                    _ => 5,
                };
                c.need(hdr)?;
                let len = c.be(1, hdr - 1) as usize;
                c.consume(hdr);
                c.need(len)?;
                push_bytes(l, &c.s[..len]);
                c.consume(len);
            }
            0xdc..=0xdf => {
                let hdr = if b0 == 0xdc || b0 == 0xde { 3 } else { 5 };
                c.need(hdr)?;
                let len = c.be(1, hdr - 1);
                c.consume(hdr);
                if b0 == 0xdc || b0 == 0xdd {
                    decode_array(l, c, len)?;
                } else {
                    decode_map(l, c, len)?;
                }
            }
            _ if b0 & 0x80 == 0 => {
                ffi::lua_pushnumber(l, b0 as f64);
                c.consume(1);
            }
            _ if b0 & 0xe0 == 0xe0 => {
                ffi::lua_pushnumber(l, b0 as i8 as f64);
                c.consume(1);
            }
            _ if b0 & 0xe0 == 0xa0 => {
                let len = (b0 & 0x1f) as usize;
                c.need(1 + len)?;
                push_bytes(l, &c.s[1..1 + len]);
                c.consume(1 + len);
            }
            _ if b0 & 0xf0 == 0x90 => {
                c.consume(1);
                decode_array(l, c, (b0 & 0xf) as u64)?;
            }
            _ if b0 & 0xf0 == 0x80 => {
                c.consume(1);
                decode_map(l, c, (b0 & 0xf) as u64)?;
            }
            _ => return Err(DecodeError::BadFormat),
        }
        Ok(())
    }
}

/// Decodes up to `limit` values from `offset` (both 0: everything, no offset
/// returned); otherwise the next offset (-1 at the end) comes first.
unsafe fn unpack_full(l: *mut lua_State, limit: i64, offset: i64) -> LibResult {
    unsafe {
        let s = check_lstring(l, 1)?;
        let len = s.len();
        let decode_all = limit == 0 && offset == 0;
        if offset < 0 || limit < 0 {
            return Err(LibError::Msg(format!(
                "Invalid request to unpack with offset of {} and limit of {}.",
                offset as i32, len as i32
            )));
        } else if offset as u64 > len as u64 {
            return Err(LibError::Msg(format!(
                "Start offset {} greater than input length {}.",
                offset as i32, len as i32
            )));
        }
        let limit = if decode_all { i32::MAX as i64 } else { limit };
        let mut c = Cursor {
            s: &s[offset as usize..],
        };
        let mut cnt: i64 = 0;
        while !c.s.is_empty() && cnt < limit {
            match decode_value(l, &mut c) {
                Ok(()) => {}
                Err(DecodeError::Eof) => {
                    return Err(LibError::Msg("Missing bytes in input.".into()))
                }
                Err(DecodeError::BadFormat) => {
                    return Err(LibError::Msg("Bad data format in input.".into()));
                }
                Err(DecodeError::Lib(e)) => return Err(e),
            }
            cnt += 1;
        }
        if !decode_all {
            if ffi::lua_checkstack(l, 1) == 0 {
                return Err(stack_overflow("in function mp_unpack_full"));
            }
            let next = if c.s.is_empty() {
                -1
            } else {
                (len - c.s.len()) as i64
            };
            ffi::lua_pushinteger(l, next as ffi::lua_Integer);
            ffi::lua_insert(l, 2);
            cnt += 1;
        }
        Ok(cnt as c_int)
    }
}

unsafe fn unpack(l: *mut lua_State) -> LibResult {
    unsafe { unpack_full(l, 0, 0) }
}

/// Keeps only the first argument, as upstream's `lua_pop(L, lua_gettop(L)-1)`
/// (with no argument at all the stack stays empty).
unsafe fn keep_first_arg(l: *mut lua_State) {
    unsafe {
        let top = ffi::lua_gettop(l);
        ffi::lua_settop(l, -(top - 1) - 1);
    }
}

unsafe fn unpack_one(l: *mut lua_State) -> LibResult {
    unsafe {
        let offset = opt_integer(l, 2, 0)?;
        keep_first_arg(l);
        unpack_full(l, 1, offset)
    }
}

unsafe fn unpack_limit(l: *mut lua_State) -> LibResult {
    unsafe {
        let limit = check_integer(l, 2)?;
        let offset = opt_integer(l, 3, 0)?;
        keep_first_arg(l);
        unpack_full(l, limit, offset)
    }
}

c_functions! {
    c_pack => pack, c_unpack => unpack, c_unpack_one => unpack_one, c_unpack_limit => unpack_limit,
}

/// Creates the global `cmsgpack` table. The caller marks the tables read-only
/// afterwards.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let t = function_table(
        lua,
        &[
            ("pack", c_pack),
            ("unpack", c_unpack),
            ("unpack_one", c_unpack_one),
            ("unpack_limit", c_unpack_limit),
        ],
    )?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Redis Ltd.")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    lua.globals().raw_set("cmsgpack", t)
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

    const HEX: &str = "local function hex(s) return (s:gsub('.', function(c) \
                       return string.format('%02x', c:byte()) end)) end ";

    // Expected values: the same expressions through EVAL on the reference
    // (valkey 9.1.2), e.g. EVAL "<HEX> return hex(cmsgpack.pack(1.5, ...))" 0.
    #[test]
    fn pack_encodings() {
        let lua = state(install);
        let cases = [
            (
                "1.5, 0.1, -1, -33, 128, 65536, 2^32, -2^31-1, 2^63, -2^63, 1/0, 0/0, true, false, nil, 'ab'",
                "ca3fc00000cb3fb999999999999affd0dfcc80ce00010000cf0000000100000000\
                 d3ffffffff7fffffffca5f000000d38000000000000000ca7f800000cbfff8000000000000\
                 c3c2c0a26162",
            ),
            (
                "{}, {1,2}, {a=1}, {[1]=1,[3]=3}, {[2^31]=1}, string.rep('x', 40)",
                "9092010281a16101820101030381ce8000000001d928\
                 78787878787878787878787878787878787878787878787878787878787878787878787878787878",
            ),
            ("1e-300, -0", "cb01a56e1fc2f8f35900"),
            ("string.rep('y', 300)", ""),
        ];
        for (args, want) in cases {
            let got = ok(&lua, &format!("{HEX} return hex(cmsgpack.pack({args}))"));
            if want.is_empty() {
                assert!(got.starts_with("da012c79"), "{args}: {got}");
            } else {
                assert_eq!(got, want, "{args}");
            }
        }
        assert_eq!(
            ok(
                &lua,
                &format!("{HEX} local t={{}} t[1]=t return hex(cmsgpack.pack(t))")
            ),
            "91919191919191919191919191919191c0"
        );
    }

    #[test]
    fn unpack_forms() {
        let lua = state(install);
        assert_eq!(
            ok(&lua, "return cmsgpack.unpack_one(cmsgpack.pack(1,2))"),
            "1|1"
        );
        assert_eq!(
            ok(&lua, "return cmsgpack.unpack_one(cmsgpack.pack(1,2), 1)"),
            "-1|2"
        );
        assert_eq!(
            ok(
                &lua,
                "return cmsgpack.unpack_limit(cmsgpack.pack(1,2,3), 2)"
            ),
            "2|1|2"
        );
        assert_eq!(
            ok(
                &lua,
                "return cmsgpack.unpack_limit(cmsgpack.pack(1,2,3), 0, 1)"
            ),
            "1"
        );
        assert_eq!(ok(&lua, "return cmsgpack.unpack(12)"), "49|50");
        assert_eq!(ok(&lua, "return select('#', cmsgpack.unpack(''))"), "0");
        assert_eq!(
            ok(&lua, "return string.format('%.17g', cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255'))"),
            "-1"
        );
        assert_eq!(
            ok(
                &lua,
                "return string.format('%.17g', cmsgpack.unpack('\\211\\128\\0\\0\\0\\0\\0\\0\\1'))"
            ),
            "-9.2233720368547758e+18"
        );
        // Round trip of nested tables and every scalar type.
        assert_eq!(
            ok(
                &lua,
                "local t = cmsgpack.unpack(cmsgpack.pack({1, {a={true,false}}, 'x', 2.5, -70000, 2^40}))\n\
                 return t[1], t[2].a[1], t[2].a[2], t[3], t[4], t[5], t[6]"
            ),
            "1|true|false|x|2.5|-70000|1099511627776"
        );
        assert_eq!(
            ok(&lua, "return cmsgpack._VERSION .. '|' .. cmsgpack._COPYRIGHT .. '|' .. cmsgpack._DESCRIPTION .. '|' .. cmsgpack._NAME"),
            "lua-cmsgpack 0.4.0|Copyright (C) 2012, Redis Ltd.|MessagePack C implementation for Lua|cmsgpack"
        );
    }

    #[test]
    fn errors_and_hostile_input() {
        let lua = state(install);
        let p = "user_script:1: ";
        let cases = [
            ("cmsgpack.pack()", "bad argument #0 to 'pack' (MessagePack pack needs input.)"),
            ("cmsgpack.unpack('\\196')", "Bad data format in input."),
            ("cmsgpack.unpack('\\196\\1a')", "Bad data format in input."),
            (
                "cmsgpack.unpack_limit(cmsgpack.pack(1,2,3), -1)",
                "Invalid request to unpack with offset of 0 and limit of 3.",
            ),
            ("cmsgpack.unpack_one(cmsgpack.pack(1,2,3), 10)", "Start offset 10 greater than input length 3."),
            ("cmsgpack.unpack_one('\\205\\1')", "Missing bytes in input."),
            // Lengths announcing gigabytes: no allocation, just missing bytes.
            ("cmsgpack.unpack('\\221\\255\\255\\255\\255')", "Missing bytes in input."),
            ("cmsgpack.unpack('\\219\\255\\255\\255\\255')", "Missing bytes in input."),
            ("cmsgpack.unpack('\\223\\255\\255\\255\\255')", "Missing bytes in input."),
            ("cmsgpack.unpack()", "bad argument #1 to 'unpack' (string expected, got no value)"),
            ("cmsgpack.unpack_one()", "bad argument #1 to 'unpack_one' (string expected, got no value)"),
            ("cmsgpack.unpack_limit('a')", "bad argument #2 to 'unpack_limit' (number expected, got no value)"),
            (
                "#cmsgpack.unpack(string.rep('\\145',5000)..'\\1')",
                "stack overflow (in function mp_decode_to_lua_array)",
            ),
            (
                "#cmsgpack.unpack(string.rep('\\129\\1',5000)..'\\1')",
                "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
            ),
            (
                "select('#', cmsgpack.unpack(string.rep('\\1',8000)))",
                "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
            ),
        ];
        for (expr, want) in cases {
            assert_eq!(
                err(&lua, &format!("return {expr}")),
                format!("{p}{want}"),
                "{expr}"
            );
        }
        assert_eq!(
            err(&lua, "return cmsgpack.unpack('\\129\\192\\1')"),
            "table index is nil"
        );
    }
}
