//! The `struct` library (Roberto Ierusalimschy's struct 0.2 as upstream ships it in
//! `deps/lua/src/lua_struct.c`, with upstream's overflow fixes), written in Rust
//! from its documented and observed behaviour: `struct.pack(fmt, ...)`,
//! `struct.unpack(fmt, data [, pos])`, `struct.size(fmt)`.
//!
//! Format: `>` big endian, `<` little endian (the default is native, little on
//! x86-64), `![n]` alignment (a power of 2, default 8), ` ` ignored, `x` a zero
//! byte, `b/B` `h/H` `l/L` `T` (1, 2, 8, 8 bytes), `i[n]/I[n]` n-byte integers (1
//! to 32, default 4), `f`, `d`, `c[n]` n chars (`c0`: pack the whole string,
//! unpack with the previous number as length), `s` a zero-terminated string. The
//! format ends at its first NUL byte, as the C string it was.
//!
//! Limits (CVE-2020-14147 class): numbers in the format are checked against
//! `INT_MAX` (`integral size overflow`), integer sizes against 32, and every read
//! against the data length with `size <= len && pos <= len - size`; nothing is
//! sized by a number from the format beyond what the data or the arguments hold.
//! The integer conversions reproduce the x86-64 C casts of upstream (including
//! the 9..32-byte integers and their sign mask), see [`super::lib_bit`].

use std::os::raw::c_int;

use mlua::ffi::{self, lua_State};
use mlua::Lua;

use super::lib_bit::{
    c_functions, call, check_lstring, check_number, double_to_i64, double_to_u64, function_table,
    opt_integer, push_bytes, LibError, LibResult,
};

/// The largest `i`/`I` size.
const MAXINTSIZE: i32 = 32;
/// `!` without a number: the platform's largest alignment (double, x86-64).
const MAXALIGN: i32 = 8;
/// Sizes on x86-64 Linux.
const SIZE_SHORT: usize = 2;
const SIZE_LONG: usize = 8;
const SIZE_INT: i32 = 4;

struct Header {
    little: bool,
    align: usize,
}

impl Header {
    fn new() -> Header {
        Header {
            little: cfg!(target_endian = "little"),
            align: 1,
        }
    }
}

/// A cursor over the format, which ends at the first NUL.
struct Fmt<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Fmt<'_> {
    fn peek(&self) -> u8 {
        self.s.get(self.pos).copied().unwrap_or(0)
    }

    fn next(&mut self) -> Option<u8> {
        match self.peek() {
            0 => None,
            c => {
                self.pos += 1;
                Some(c)
            }
        }
    }

    /// The decimal number at the cursor, or `df` if none; `INT_MAX` at most.
    fn getnum(&mut self, df: i32) -> Result<i32, LibError> {
        if !self.peek().is_ascii_digit() {
            return Ok(df);
        }
        let mut a: i32 = 0;
        while self.peek().is_ascii_digit() {
            let d = (self.peek() - b'0') as i32;
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return Err(LibError::Msg("integral size overflow".into()));
            }
            a = a * 10 + d;
            self.pos += 1;
        }
        Ok(a)
    }
}

/// The size an option takes (0 for the control options and unknown letters).
fn optsize(opt: u8, fmt: &mut Fmt) -> Result<usize, LibError> {
    Ok(match opt {
        b'B' | b'b' => 1,
        b'H' | b'h' => SIZE_SHORT,
        b'L' | b'l' | b'T' => SIZE_LONG,
        b'f' => 4,
        b'd' => 8,
        b'x' => 1,
        b'c' => fmt.getnum(1)? as usize,
        b'i' | b'I' => {
            let sz = fmt.getnum(SIZE_INT)?;
            if sz > MAXINTSIZE {
                return Err(LibError::Msg(format!(
                    "integral size {sz} is larger than limit of {MAXINTSIZE}"
                )));
            }
            sz as usize
        }
        _ => 0,
    })
}

/// Padding before an element of `size` at offset `len`, as a C `int` (upstream
/// converts the `size_t` result to int; the value is always below 32 here).
fn gettoalign(len: usize, h: &Header, opt: u8, size: usize) -> i32 {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size.wrapping_sub(len & size.wrapping_sub(1)) & size.wrapping_sub(1)) as i32
}

fn controloptions(opt: u8, fmt: &mut Fmt, h: &mut Header) -> Result<(), LibError> {
    match opt {
        b' ' => {}
        b'>' => h.little = false,
        b'<' => h.little = true,
        b'!' => {
            let a = fmt.getnum(MAXALIGN)?;
            if a <= 0 || a & (a - 1) != 0 {
                return Err(LibError::Msg(format!("alignment {a} is not a power of 2")));
            }
            h.align = a as usize;
        }
        _ => {
            return Err(LibError::Arg(
                1,
                format!("invalid format option '{}'", opt as char),
            ));
        }
    }
    Ok(())
}

/// Writes the low `size` bytes of the number converted as upstream's C does
/// (`(long long)n` when negative, `(unsigned long long)n` otherwise); bytes past
/// the 8th are zero.
fn putinteger(out: &mut Vec<u8>, n: f64, little: bool, size: usize) {
    let mut value: u64 = if n < 0.0 {
        double_to_i64(n) as u64
    } else {
        double_to_u64(n)
    };
    let start = out.len();
    for _ in 0..size {
        out.push(value as u8);
        value >>= 8;
    }
    if !little {
        out[start..].reverse();
    }
}

/// Reads a `size`-byte integer. Bytes beyond 8 shift out of the 64-bit
/// accumulator; the sign mask is `~0 << (size*8-1)` with the shift count taken
/// modulo 64 as x86-64 does (so a 9-byte `i` sign-extends from bit 7).
fn getinteger(data: &[u8], little: bool, signed: bool, size: usize) -> f64 {
    let mut l: u64 = 0;
    for i in 0..size {
        let b = if little { data[size - 1 - i] } else { data[i] };
        l = (l << 8) | b as u64;
    }
    if !signed {
        return l as f64;
    }
    let shift = (size.wrapping_mul(8).wrapping_sub(1) & 63) as u32;
    let mask = !0u64 << shift;
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn native_bytes<const N: usize>(mut b: [u8; N], little: bool) -> [u8; N] {
    if little != cfg!(target_endian = "little") {
        b.reverse();
    }
    b
}

/// `struct.pack(fmt, ...)`.
unsafe fn pack(l: *mut lua_State) -> LibResult {
    unsafe {
        let mut fmt = Fmt {
            s: check_lstring(l, 1)?,
            pos: 0,
        };
        // Upstream pushes a nil to separate the arguments from its string buffer,
        // so a missing first value reads as nil ("got nil", not "got no value").
        ffi::lua_pushnil(l);
        let mut h = Header::new();
        let mut arg: c_int = 2;
        let mut out: Vec<u8> = Vec::new();
        let mut totalsize: usize = 0;
        while let Some(opt) = fmt.next() {
            let mut size = optsize(opt, &mut fmt)?;
            let toalign = gettoalign(totalsize, &h, opt, size);
            totalsize = totalsize.wrapping_add(toalign as isize as usize);
            out.resize(out.len() + toalign.max(0) as usize, 0);
            match opt {
                b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                    let n = check_number(l, arg)?;
                    arg += 1;
                    putinteger(&mut out, n, h.little, size);
                }
                b'x' => out.push(0),
                b'f' => {
                    let f = check_number(l, arg)? as f32;
                    arg += 1;
                    out.extend_from_slice(&native_bytes(f.to_ne_bytes(), h.little));
                }
                b'd' => {
                    let d = check_number(l, arg)?;
                    arg += 1;
                    out.extend_from_slice(&native_bytes(d.to_ne_bytes(), h.little));
                }
                b'c' | b's' => {
                    let s = check_lstring(l, arg)?;
                    arg += 1;
                    if size == 0 {
                        size = s.len();
                    }
                    if s.len() < size {
                        return Err(LibError::Arg(arg, "string too short".into()));
                    }
                    out.extend_from_slice(&s[..size]);
                    if opt == b's' {
                        out.push(0);
                        size += 1;
                    }
                }
                _ => controloptions(opt, &mut fmt, &mut h)?,
            }
            totalsize = totalsize.wrapping_add(size);
        }
        push_bytes(l, &out);
        Ok(1)
    }
}

/// `struct.unpack(fmt, data [, pos])`: the values, then the position after them.
unsafe fn unpack(l: *mut lua_State) -> LibResult {
    unsafe {
        let mut fmt = Fmt {
            s: check_lstring(l, 1)?,
            pos: 0,
        };
        let data = check_lstring(l, 2)?;
        let ld = data.len();
        let start = opt_integer(l, 3, 1)?.wrapping_sub(1);
        if start < 0 {
            return Err(LibError::Arg(3, "offset must be 1 or greater".into()));
        }
        let mut pos = start as usize;
        let mut h = Header::new();
        let mut n: usize = 0;
        let too_short = || LibError::Arg(2, "data string too short".into());
        while let Some(opt) = fmt.next() {
            let mut size = optsize(opt, &mut fmt)?;
            pos = pos.wrapping_add(gettoalign(pos, &h, opt, size) as isize as usize);
            if !(size <= ld && pos <= ld - size) {
                return Err(too_short());
            }
            if ffi::lua_checkstack(l, 2) == 0 {
                return Err(LibError::Msg("stack overflow (too many results)".into()));
            }
            match opt {
                b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                    let v = getinteger(
                        &data[pos..pos + size],
                        h.little,
                        opt.is_ascii_lowercase(),
                        size,
                    );
                    ffi::lua_pushnumber(l, v);
                    n += 1;
                }
                b'x' => {}
                b'f' => {
                    let mut b = [0u8; 4];
                    b.copy_from_slice(&data[pos..pos + 4]);
                    ffi::lua_pushnumber(l, f32::from_ne_bytes(native_bytes(b, h.little)) as f64);
                    n += 1;
                }
                b'd' => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&data[pos..pos + 8]);
                    ffi::lua_pushnumber(l, f64::from_ne_bytes(native_bytes(b, h.little)));
                    n += 1;
                }
                b'c' => {
                    if size == 0 {
                        if n == 0 || ffi::lua_isnumber(l, -1) == 0 {
                            return Err(LibError::Msg("format 'c0' needs a previous size".into()));
                        }
                        size = double_to_u64(ffi::lua_tonumber(l, -1)) as usize;
                        ffi::lua_settop(l, -2);
                        n -= 1;
                        if !(size <= ld && pos <= ld - size) {
                            return Err(too_short());
                        }
                    }
                    push_bytes(l, &data[pos..pos + size]);
                    n += 1;
                }
                b's' => {
                    let Some(end) = data[pos..].iter().position(|&b| b == 0) else {
                        return Err(LibError::Msg("unfinished string in data".into()));
                    };
                    push_bytes(l, &data[pos..pos + end]);
                    size = end + 1;
                    n += 1;
                }
                _ => controloptions(opt, &mut fmt, &mut h)?,
            }
            pos = pos.wrapping_add(size);
        }
        ffi::lua_pushinteger(l, (pos as i64).wrapping_add(1) as ffi::lua_Integer);
        Ok(n as c_int + 1)
    }
}

/// `struct.size(fmt)`: the packed size; `s` and `c0` have none.
unsafe fn size(l: *mut lua_State) -> LibResult {
    unsafe {
        let mut fmt = Fmt {
            s: check_lstring(l, 1)?,
            pos: 0,
        };
        let mut h = Header::new();
        let mut pos: usize = 0;
        while let Some(opt) = fmt.next() {
            let size = optsize(opt, &mut fmt)?;
            pos = pos.wrapping_add(gettoalign(pos, &h, opt, size) as isize as usize);
            if opt == b's' {
                return Err(LibError::Arg(1, "option 's' has no fixed size".into()));
            } else if opt == b'c' && size == 0 {
                return Err(LibError::Arg(1, "option 'c0' has no fixed size".into()));
            }
            if !opt.is_ascii_alphanumeric() {
                controloptions(opt, &mut fmt, &mut h)?;
            }
            pos = pos.wrapping_add(size);
        }
        ffi::lua_pushinteger(l, pos as ffi::lua_Integer);
        Ok(1)
    }
}

c_functions! { c_pack => pack, c_unpack => unpack, c_size => size }

/// Creates the global `struct` table. The caller marks the tables read-only
/// afterwards.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let t = function_table(
        lua,
        &[("pack", c_pack), ("unpack", c_unpack), ("size", c_size)],
    )?;
    lua.globals().raw_set("struct", t)
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

    const BYTES: &str = "local function b(s) return table.concat({s:byte(1,-1)}, ',') end ";

    // Expected values: EVAL "return {<expr>}" 0 on the reference (valkey 9.1.2);
    // the byte lists are the reference's `{s:byte(1,-1)}` replies.
    #[test]
    fn pack_bytes() {
        let lua = state(install);
        let cases = [
            (
                "struct.pack('<i9', -1)",
                "255,255,255,255,255,255,255,255,0",
            ),
            ("struct.pack('<I8', 1e300)", "0,0,0,0,0,0,0,0"),
            ("struct.pack('<I8', 2^63)", "0,0,0,0,0,0,0,128"),
            ("struct.pack('<I8', 2^64)", "0,0,0,0,0,0,0,0"),
            ("struct.pack('<I8', -0.5)", "0,0,0,0,0,0,0,0"),
            (
                "struct.pack('>!4bi>d', 1, 2, 3.5)",
                "1,0,0,0,0,0,0,2,64,12,0,0,0,0,0,0",
            ),
            ("struct.pack('<f', 1.5)", "0,0,192,63"),
            ("struct.pack('<I', -1)", "255,255,255,255"),
            ("struct.pack('<i', 2^40+3)", "3,0,0,0"),
            ("struct.pack('<i', 1e300)", "0,0,0,0"),
            ("struct.pack('<i', 0/0)", "0,0,0,0"),
            ("struct.pack('s', 'ab\\0c')", "97,98,0,99,0"),
            ("struct.pack('!4 b i', 1, 2)", "1,0,0,0,2,0,0,0"),
            ("struct.pack('!2bi', 1, 2)", "1,0,2,0,0,0"),
            ("struct.pack('x', 1, 2)", "0"),
            ("struct.pack('i0', 5)", ""),
            ("struct.pack('c0', 'abc')", "97,98,99"),
        ];
        for (expr, want) in cases {
            assert_eq!(
                ok(&lua, &format!("{BYTES} return b({expr})")),
                want,
                "{expr}"
            );
        }
        assert_eq!(ok(&lua, "return #struct.pack('T', 5)"), "8");
    }

    #[test]
    fn unpack_values() {
        let lua = state(install);
        let cases = [
            ("struct.unpack('<i9', string.rep('\\255',9))", "-1|10"),
            (
                "struct.unpack('<i9', '\\0\\0\\0\\0\\0\\0\\0\\128\\1')",
                "-128|10",
            ),
            (
                "struct.unpack('>i9', '\\1\\0\\0\\0\\0\\0\\0\\0\\1')",
                "1|10",
            ),
            (
                "struct.unpack('<I16', string.rep('\\255',16))",
                "1.844674407371e+19|17",
            ),
            ("struct.unpack('Bc0', '\\2abc')", "ab|4"),
            ("struct.unpack('c1c0', '3abcdefg')", "abc|5"),
            (
                "struct.unpack('>!4bxd', struct.pack('>!4bxd', 1, 2.5))",
                "1|2.5|13",
            ),
            ("struct.unpack('b', '\\200', 1.9)", "-56|2"),
            ("struct.unpack('x', 'a')", "2"),
            ("struct.unpack('xb', 'ab')", "98|3"),
            ("struct.unpack('', '')", "1"),
            ("struct.unpack('', 'a', 10)", "10"),
            ("struct.unpack('i0', 'ab')", "0|1"),
            ("struct.unpack('<h', '\\255\\255')", "-1|3"),
            ("struct.unpack('s', 'ab\\0c')", "ab|4"),
            ("struct.unpack('<f', struct.pack('<f', 1.5))", "1.5|5"),
            ("struct.unpack('<d', struct.pack('<d', 1e-300))", "1e-300|9"),
            (
                "string.format('%.17g', struct.unpack('<I8', string.rep('\\255',8)))",
                "1.8446744073709552e+19",
            ),
        ];
        for (expr, want) in cases {
            assert_eq!(ok(&lua, &format!("return {expr}")), want, "{expr}");
        }
    }

    #[test]
    fn sizes() {
        let lua = state(install);
        assert_eq!(ok(&lua, "return struct.size('i4d')"), "12");
        assert_eq!(ok(&lua, "return struct.size('!bxi')"), "8");
        assert_eq!(ok(&lua, "return struct.size('c')"), "1");
        assert_eq!(ok(&lua, "return struct.size('!')"), "0");
        assert_eq!(ok(&lua, "return struct.size('!16d')"), "8");
        assert_eq!(ok(&lua, "return struct.size('y')"), "0");
        assert_eq!(ok(&lua, "return struct.size('i0')"), "0");
        assert_eq!(
            ok(
                &lua,
                "return struct.size('c2147483647c2147483647c2147483647')"
            ),
            "6442450941"
        );
    }

    #[test]
    fn errors() {
        let lua = state(install);
        let p = "user_script:1: ";
        let cases = [
            (
                "struct.unpack('>I2','a')",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.unpack('<i33', 'a')",
                "integral size 33 is larger than limit of 32",
            ),
            ("struct.pack('i2147483648', 1)", "integral size overflow"),
            (
                "struct.pack('c2147483647', 'a')",
                "bad argument #3 to 'pack' (string too short)",
            ),
            (
                "struct.unpack('c2147483647', 'a')",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            ("struct.pack('!3i', 1)", "alignment 3 is not a power of 2"),
            ("struct.size('!0bi')", "alignment 0 is not a power of 2"),
            ("struct.size('!17d')", "alignment 17 is not a power of 2"),
            (
                "struct.pack('y', 1)",
                "bad argument #1 to 'pack' (invalid format option 'y')",
            ),
            (
                "struct.pack(1, 1)",
                "bad argument #1 to 'pack' (invalid format option '1')",
            ),
            (
                "struct.size('=')",
                "bad argument #1 to 'size' (invalid format option '=')",
            ),
            (
                "struct.size('s')",
                "bad argument #1 to 'size' (option 's' has no fixed size)",
            ),
            (
                "struct.size('c0')",
                "bad argument #1 to 'size' (option 'c0' has no fixed size)",
            ),
            (
                "struct.unpack('c0', 'abc')",
                "format 'c0' needs a previous size",
            ),
            (
                "struct.unpack('c1c0', 'a5bcdefg')",
                "format 'c0' needs a previous size",
            ),
            ("struct.unpack('s', 'abc')", "unfinished string in data"),
            (
                "struct.unpack('i', 'abcd', 0)",
                "bad argument #3 to 'unpack' (offset must be 1 or greater)",
            ),
            (
                "struct.unpack('i', 'abcd', 5)",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.unpack('b', 'a', 2^53)",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.unpack('b', 'a', -2^63)",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.unpack('x', '')",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.pack('c3', 'ab')",
                "bad argument #3 to 'pack' (string too short)",
            ),
            (
                "struct.pack('c2', {})",
                "bad argument #2 to 'pack' (string expected, got table)",
            ),
            (
                "struct.pack('i', 'x')",
                "bad argument #2 to 'pack' (number expected, got string)",
            ),
            (
                "struct.pack('i')",
                "bad argument #2 to 'pack' (number expected, got nil)",
            ),
            (
                "struct.pack('iii', 1)",
                "bad argument #3 to 'pack' (number expected, got nil)",
            ),
            (
                "struct.unpack('i', 'abcd', 'x')",
                "bad argument #3 to 'unpack' (number expected, got string)",
            ),
            (
                "struct.unpack('i')",
                "bad argument #2 to 'unpack' (string expected, got no value)",
            ),
            (
                "struct.unpack(nil, 'a')",
                "bad argument #1 to 'unpack' (string expected, got nil)",
            ),
            (
                "struct.unpack(string.rep('b', 9000), string.rep('a', 9000))",
                "stack overflow (too many results)",
            ),
        ];
        for (expr, want) in cases {
            assert_eq!(
                err(&lua, &format!("return {expr}")),
                format!("{p}{want}"),
                "{expr}"
            );
        }
    }
}
