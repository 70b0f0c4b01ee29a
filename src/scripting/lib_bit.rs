//! The `bit` library (LuaBitOp 1.0.2 semantics, upstream's `deps/lua/src/lua_bit.c`),
//! written in Rust from its documented behaviour: 32-bit operations on Lua 5.1
//! doubles. Every result is a signed 32-bit value returned as a number.
//!
//! Also home of the raw-C-function plumbing shared by the `lib_*` modules
//! ([`call`], [`LibError`], the `check_*` argument readers): see "Errors" below.
//!
//! # Why raw C functions
//! The libraries are `lua_CFunction`s built on the Lua C API (`mlua::ffi`), not
//! `Lua::create_function` closures, for two reasons:
//! - mlua converts a Lua number whose magnitude is below `f64::EPSILON` (and
//!   `-0`) to `Value::Integer(0)`; `struct.pack('d', 1e-300)` or
//!   `cjson.encode(-0)` would be wrong. Reading the stack with `lua_tonumber`
//!   is exact.
//! - An `Err` from an mlua callback reaches Lua as a userdata, not a string,
//!   and without the `user_script:1: ` position prefix.
//!
//! # Errors
//! A body returns `Result<c_int, LibError>`. [`call`] runs it (catching panics),
//! and only after it has returned, with every Rust value dropped, raises the
//! error as upstream's C does: [`LibError::Arg`] through `luaL_argerror` (`bad
//! argument #n to 'name' (msg)`, the name found by Lua's debug info exactly as for
//! upstream's C function), [`LibError::Msg`] as `luaL_error` (position of the
//! calling Lua line + message), [`LibError::Raw`] as a bare `lua_error`. The
//! `longjmp` of `lua_error` therefore never skips a Rust destructor. The Lua API
//! calls made inside a body are the non-raising ones, except pushes and table
//! stores, which can only raise on an allocation failure (then a Rust buffer of
//! that call leaks; nothing is freed twice).

use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::ffi::{self, lua_State};
use mlua::Lua;

/// An error raised by a library function, in upstream's form.
pub(crate) enum LibError {
    /// `luaL_argerror(L, n, msg)`.
    Arg(c_int, String),
    /// `luaL_error(L, "%s", msg)`: the caller's position is prepended.
    Msg(String),
    /// `lua_error` with the message as is (errors the VM raises without position).
    Raw(String),
}

pub(crate) type LibResult = Result<c_int, LibError>;

/// Runs `body` and turns its outcome into the C function's return or a Lua error.
///
/// # Safety
/// `l` is the state the C function was called with.
pub(crate) unsafe fn call(
    l: *mut lua_State,
    body: unsafe fn(*mut lua_State) -> LibResult,
) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { body(l) }));
    let err = match outcome {
        Ok(Ok(n)) => return n,
        Ok(Err(e)) => e,
        Err(_) => LibError::Msg("internal error in a scripting library".to_string()),
    };
    unsafe { raise(l, err) }
}

/// Raises `err`; never returns. The message is copied onto the Lua stack and the
/// Rust string dropped before the `longjmp`.
unsafe fn raise(l: *mut lua_State, err: LibError) -> c_int {
    let (kind, msg) = match err {
        LibError::Arg(n, m) => (Some(n), (m, true)),
        LibError::Msg(m) => (None, (m, true)),
        LibError::Raw(m) => (None, (m, false)),
    };
    let (msg, with_where) = msg;
    unsafe {
        ffi::lua_pushlstring_(l, msg.as_ptr() as *const c_char, msg.len());
        drop(msg);
        match kind {
            Some(n) => ffi::luaL_argerror(l, n, ffi::lua_tolstring(l, -1, std::ptr::null_mut())),
            None if with_where => {
                ffi::luaL_where(l, 1);
                ffi::lua_insert(l, -2);
                ffi::lua_concat(l, 2);
                ffi::lua_error(l)
            }
            None => ffi::lua_error(l),
        }
    }
}

/// Lua's type name of argument `idx`, `no value` past the top (`luaL_typename`
/// as used by `luaL_typerror`).
pub(crate) unsafe fn arg_type_name(l: *mut lua_State, idx: c_int) -> String {
    unsafe {
        let t = ffi::lua_type(l, idx);
        if t == ffi::LUA_TNONE {
            return "no value".to_string();
        }
        let p = ffi::lua_typename(l, t);
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// `luaL_typerror`.
pub(crate) unsafe fn type_error(l: *mut lua_State, idx: c_int, expected: &str) -> LibError {
    let got = unsafe { arg_type_name(l, idx) };
    LibError::Arg(idx, format!("{expected} expected, got {got}"))
}

/// `luaL_checknumber`.
pub(crate) unsafe fn check_number(l: *mut lua_State, idx: c_int) -> Result<f64, LibError> {
    unsafe {
        let d = ffi::lua_tonumber(l, idx);
        if d == 0.0 && ffi::lua_isnumber(l, idx) == 0 {
            return Err(type_error(l, idx, "number"));
        }
        Ok(d)
    }
}

/// `luaL_checkinteger`: the number converted as the C cast does on x86-64.
pub(crate) unsafe fn check_integer(l: *mut lua_State, idx: c_int) -> Result<i64, LibError> {
    unsafe {
        let d = double_to_i64(ffi::lua_tonumber(l, idx));
        if d == 0 && ffi::lua_isnumber(l, idx) == 0 {
            return Err(type_error(l, idx, "number"));
        }
        Ok(d)
    }
}

/// `luaL_optinteger`.
pub(crate) unsafe fn opt_integer(l: *mut lua_State, idx: c_int, def: i64) -> Result<i64, LibError> {
    unsafe {
        if ffi::lua_type(l, idx) <= ffi::LUA_TNIL {
            Ok(def)
        } else {
            check_integer(l, idx)
        }
    }
}

/// `luaL_checklstring`: a string, or a number converted in place. The slice
/// stays valid while the value is on the stack (the caller does not pop it).
pub(crate) unsafe fn check_lstring<'a>(
    l: *mut lua_State,
    idx: c_int,
) -> Result<&'a [u8], LibError> {
    unsafe {
        let mut len = 0usize;
        let p = ffi::lua_tolstring(l, idx, &mut len);
        if p.is_null() {
            return Err(type_error(l, idx, "string"));
        }
        Ok(std::slice::from_raw_parts(p as *const u8, len))
    }
}

/// Pushes a byte string.
pub(crate) unsafe fn push_bytes(l: *mut lua_State, s: &[u8]) {
    unsafe { ffi::lua_pushlstring_(l, s.as_ptr() as *const c_char, s.len()) }
}

/// The C cast `(int64_t)d` on x86-64 (`cvttsd2si`): NaN and out-of-range give
/// `INT64_MIN`.
pub(crate) fn double_to_i64(d: f64) -> i64 {
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d) {
        i64::MIN
    } else {
        d as i64
    }
}

/// The C cast `(int)d` on x86-64: NaN and out-of-range give `INT_MIN`.
pub(crate) fn double_to_i32(d: f64) -> i32 {
    if d.is_nan() || d >= 2_147_483_648.0 || d <= -2_147_483_649.0 {
        i32::MIN
    } else {
        d as i32
    }
}

/// The C cast `(uint64_t)d` as gcc compiles it on x86-64: below 2^63 (and NaN)
/// through the signed conversion, above by subtracting 2^63 first.
pub(crate) fn double_to_u64(d: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if d >= TWO63 {
        (double_to_i64(d - TWO63) as u64) ^ (1u64 << 63)
    } else {
        double_to_i64(d) as u64
    }
}

/// Creates a table of C functions.
pub(crate) fn function_table(
    lua: &Lua,
    funcs: &[(&str, ffi::lua_CFunction)],
) -> mlua::Result<mlua::Table> {
    let t = lua.create_table()?;
    for (name, f) in funcs {
        // SAFETY: every function here follows the protocol described at the top of
        // this module.
        let func = unsafe { lua.create_c_function(*f)? };
        t.raw_set(*name, func)?;
    }
    Ok(t)
}

// ----- the bit library -----

/// LuaBitOp's argument conversion: the number plus 2^52+2^51, whose low 32
/// mantissa bits are then the value modulo 2^32 (rounded to nearest even). A
/// zero result from a non-number is a type error (Lua 5.1 variant: no
/// `luaL_checknumber`, so numeric strings pass).
unsafe fn barg(l: *mut lua_State, idx: c_int) -> Result<u32, LibError> {
    unsafe {
        let n = ffi::lua_tonumber(l, idx);
        let b = (n + 6_755_399_441_055_744.0).to_bits() as u32;
        if b == 0 && ffi::lua_isnumber(l, idx) == 0 {
            return Err(type_error(l, idx, "number"));
        }
        Ok(b)
    }
}

unsafe fn bret(l: *mut lua_State, b: u32) -> LibResult {
    unsafe { ffi::lua_pushnumber(l, b as i32 as f64) };
    Ok(1)
}

unsafe fn tobit(l: *mut lua_State) -> LibResult {
    unsafe { bret(l, barg(l, 1)?) }
}

unsafe fn bnot(l: *mut lua_State) -> LibResult {
    unsafe { bret(l, !barg(l, 1)?) }
}

/// band/bor/bxor: the first argument, then the others from the last down (the
/// order decides which bad argument is reported).
unsafe fn fold(l: *mut lua_State, op: fn(u32, u32) -> u32) -> LibResult {
    unsafe {
        let mut b = barg(l, 1)?;
        let mut i = ffi::lua_gettop(l);
        while i > 1 {
            b = op(b, barg(l, i)?);
            i -= 1;
        }
        bret(l, b)
    }
}

unsafe fn band(l: *mut lua_State) -> LibResult {
    unsafe { fold(l, |a, b| a & b) }
}
unsafe fn bor(l: *mut lua_State) -> LibResult {
    unsafe { fold(l, |a, b| a | b) }
}
unsafe fn bxor(l: *mut lua_State) -> LibResult {
    unsafe { fold(l, |a, b| a ^ b) }
}

unsafe fn shift(l: *mut lua_State, op: fn(u32, u32) -> u32) -> LibResult {
    unsafe {
        let b = barg(l, 1)?;
        let n = barg(l, 2)? & 31;
        bret(l, op(b, n))
    }
}

unsafe fn lshift(l: *mut lua_State) -> LibResult {
    unsafe { shift(l, |b, n| b << n) }
}
unsafe fn rshift(l: *mut lua_State) -> LibResult {
    unsafe { shift(l, |b, n| b >> n) }
}
unsafe fn arshift(l: *mut lua_State) -> LibResult {
    unsafe { shift(l, |b, n| ((b as i32) >> n) as u32) }
}
unsafe fn rol(l: *mut lua_State) -> LibResult {
    unsafe { shift(l, |b, n| b.rotate_left(n)) }
}
unsafe fn ror(l: *mut lua_State) -> LibResult {
    unsafe { shift(l, |b, n| b.rotate_right(n)) }
}

unsafe fn bswap(l: *mut lua_State) -> LibResult {
    unsafe { bret(l, barg(l, 1)?.swap_bytes()) }
}

/// `tohex(x [, n])`: `n` digits (default 8, at most 8), uppercase when `n` is
/// negative. `n = INT32_MIN` is taken as `-(INT32_MAX)` (CVE-2024-31449: no
/// overflow on negation).
unsafe fn tohex(l: *mut lua_State) -> LibResult {
    unsafe {
        let mut b = barg(l, 1)?;
        let mut n: i32 = if ffi::lua_type(l, 2) == ffi::LUA_TNONE {
            8
        } else {
            barg(l, 2)? as i32
        };
        if n == i32::MIN {
            n = i32::MIN + 1;
        }
        let digits: &[u8; 16] = if n < 0 {
            n = -n;
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let n = n.min(8) as usize;
        let mut buf = [0u8; 8];
        for i in (0..n).rev() {
            buf[i] = digits[(b & 15) as usize];
            b >>= 4;
        }
        push_bytes(l, &buf[..n]);
        Ok(1)
    }
}

macro_rules! c_functions {
    ($($cname:ident => $body:ident),* $(,)?) => {
        $(
            unsafe extern "C-unwind" fn $cname(l: *mut lua_State) -> c_int {
                unsafe { call(l, $body) }
            }
        )*
    };
}
pub(crate) use c_functions;

c_functions! {
    c_tobit => tobit, c_bnot => bnot, c_band => band, c_bor => bor, c_bxor => bxor,
    c_lshift => lshift, c_rshift => rshift, c_arshift => arshift, c_rol => rol,
    c_ror => ror, c_bswap => bswap, c_tohex => tohex,
}

/// Creates the global `bit` table. The caller marks the tables read-only
/// afterwards.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let t = function_table(
        lua,
        &[
            ("tobit", c_tobit),
            ("bnot", c_bnot),
            ("band", c_band),
            ("bor", c_bor),
            ("bxor", c_bxor),
            ("lshift", c_lshift),
            ("rshift", c_rshift),
            ("arshift", c_arshift),
            ("rol", c_rol),
            ("ror", c_ror),
            ("bswap", c_bswap),
            ("tohex", c_tohex),
        ],
    )?;
    lua.globals().raw_set("bit", t)
}

/// Test support shared by the `lib_*` unit tests: a bare state with one library
/// installed, and a runner that returns either the values (as `tostring`, joined
/// by `|`) or the error message, as EVAL would show them (minus the suffix).
#[cfg(test)]
pub(crate) mod testutil {
    use mlua::Lua;

    pub fn state(install: fn(&Lua) -> mlua::Result<()>) -> Lua {
        let lua = Lua::new();
        install(&lua).unwrap();
        lua
    }

    /// Runs `code` as the chunk `@user_script` (as EVAL names it) and returns
    /// `Ok("v1|v2")` (values through Lua's `tostring`) or `Err(message)`.
    pub fn run(lua: &Lua, code: &str) -> Result<String, String> {
        let f = lua
            .load(code)
            .set_name("@user_script")
            .into_function()
            .map_err(|e| e.to_string())?;
        // pcall and tostring in Lua: the values never pass through mlua's number
        // conversion (which turns tiny numbers and -0 into integer 0).
        let runner: mlua::Function = lua
            .load(
                "local f = ... \
                 local function pack(...) return select('#', ...), {...} end \
                 local n, r = pack(pcall(f)) \
                 local out = {} \
                 for i = 2, n do out[#out + 1] = tostring(r[i]) end \
                 return r[1], table.concat(out, '|')",
            )
            .into_function()
            .unwrap();
        let (ok, text): (bool, String) = runner.call(f).map_err(|e| e.to_string())?;
        if ok {
            Ok(text)
        } else {
            Err(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{run, state};
    use super::*;

    fn ok(lua: &Lua, code: &str) -> String {
        run(lua, code).unwrap_or_else(|e| panic!("{code}: {e}"))
    }

    fn err(lua: &Lua, code: &str) -> String {
        run(lua, code).expect_err(code)
    }

    // Expected values: EVAL "return <expr>" 0 on the reference (valkey 9.1.2).
    #[test]
    fn operations() {
        let lua = state(install);
        assert_eq!(ok(&lua, "return bit.tobit(2^32+5)"), "5");
        assert_eq!(ok(&lua, "return bit.tobit('0x10')"), "16");
        assert_eq!(ok(&lua, "return bit.tobit(2^31)"), "-2147483648");
        assert_eq!(ok(&lua, "return bit.tobit(0/0)"), "0");
        assert_eq!(ok(&lua, "return bit.tobit(1e300)"), "-2013235812");
        assert_eq!(ok(&lua, "return bit.tobit(-0.5)"), "0");
        assert_eq!(ok(&lua, "return bit.tobit(1.5)"), "2");
        assert_eq!(ok(&lua, "return bit.tobit(2.5)"), "2");
        assert_eq!(ok(&lua, "return bit.bnot(0)"), "-1");
        assert_eq!(ok(&lua, "return bit.band(0xff, 0x0f, 0x3)"), "3");
        assert_eq!(ok(&lua, "return bit.bor(1)"), "1");
        assert_eq!(ok(&lua, "return bit.bor(1, 2, 4)"), "7");
        assert_eq!(ok(&lua, "return bit.bxor(7, 2)"), "5");
        assert_eq!(ok(&lua, "return bit.rol(1, 32)"), "1");
        assert_eq!(ok(&lua, "return bit.ror(1, 1)"), "-2147483648");
        assert_eq!(ok(&lua, "return bit.arshift(-256, 4)"), "-16");
        assert_eq!(ok(&lua, "return bit.rshift(-256, 4)"), "268435440");
        assert_eq!(ok(&lua, "return bit.lshift(1, 31)"), "-2147483648");
        assert_eq!(ok(&lua, "return bit.lshift(1, 33)"), "2");
        assert_eq!(ok(&lua, "return bit.bswap(0x12345678)"), "2018915346");
    }

    #[test]
    fn tohex() {
        let lua = state(install);
        // CVE-2024-31449: INT32_MIN digits must not overflow.
        assert_eq!(ok(&lua, "return bit.tohex(65535, -2147483648)"), "0000FFFF");
        assert_eq!(ok(&lua, "return bit.tohex(-1, 2147483647)"), "ffffffff");
        assert_eq!(ok(&lua, "return bit.tohex(255, -3)"), "0FF");
        assert_eq!(ok(&lua, "return bit.tohex(255, 0)"), "");
        assert_eq!(ok(&lua, "return bit.tohex(255)"), "000000ff");
    }

    #[test]
    fn errors() {
        let lua = state(install);
        assert_eq!(
            err(&lua, "return bit.tohex(255, nil)"),
            "user_script:1: bad argument #2 to 'tohex' (number expected, got nil)"
        );
        assert_eq!(
            err(&lua, "return bit.band(1, {})"),
            "user_script:1: bad argument #2 to 'band' (number expected, got table)"
        );
        assert_eq!(
            err(&lua, "return bit.band(1, {}, {})"),
            "user_script:1: bad argument #3 to 'band' (number expected, got table)"
        );
        assert_eq!(
            err(&lua, "return bit.band()"),
            "user_script:1: bad argument #1 to 'band' (number expected, got no value)"
        );
        assert_eq!(
            err(&lua, "return bit.tohex(1, 'a')"),
            "user_script:1: bad argument #2 to 'tohex' (number expected, got string)"
        );
        // The error is a plain string (pcall sees a string, as upstream).
        assert_eq!(
            ok(&lua, "local ok, e = pcall(bit.tobit) return type(e)"),
            "string"
        );
    }
}

/// Random inputs to every decoder and format parser of the libraries: each call
/// either returns or raises a Lua error; none panics (which `call` would turn
/// into `internal error in a scripting library`) or crashes.
#[cfg(test)]
mod fuzz {
    use super::testutil::state;

    fn install_all(lua: &mlua::Lua) -> mlua::Result<()> {
        super::install(lua)?;
        super::super::lib_cjson::install(lua)?;
        super::super::lib_cmsgpack::install(lua)?;
        super::super::lib_struct::install(lua)?;
        super::super::rand::install(lua)
    }

    #[test]
    fn random_inputs_never_panic() {
        let lua = state(install_all);
        let check: mlua::Function = lua
            .load(
                "local f, n, a, b, c = ... \
                 local ok, e \
                 if n == 1 then ok, e = pcall(f, a) \
                 elseif n == 2 then ok, e = pcall(f, a, c) \
                 else ok, e = pcall(f, a, b, c) end \
                 return ok or not tostring(e):find('internal error', 1, true), ok",
            )
            .into_function()
            .unwrap();
        let globals = lua.globals();
        let get = |lib: &str, f: &str| -> mlua::Function {
            globals.get::<mlua::Table>(lib).unwrap().get(f).unwrap()
        };
        // (function, number of arguments: 1 = the input, 2 = input and offset,
        // 3 = format, data, offset).
        let targets = [
            (get("cjson", "decode"), 1),
            (get("cmsgpack", "unpack"), 1),
            (get("cmsgpack", "unpack_one"), 2),
            (get("cmsgpack", "unpack_limit"), 3),
            (get("struct", "unpack"), 3),
            (get("struct", "pack"), 3),
            (get("struct", "size"), 1),
        ];
        let json_alphabet = b"{}[]:,\"\\u0123456789abcdefABCDEF.eE+-xtrufalsniINfy \t\n\0\x7f\xff";
        let fmt_alphabet = b"<>!=xbBhHlLTiIfdcs 0123456789";
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let (mut values, mut errors) = (0u32, 0u32);
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20_000 {
            let len = (next() % 40) as usize;
            let alphabet: &[u8] = match round % 3 {
                0 => json_alphabet,
                1 => fmt_alphabet,
                _ => &[],
            };
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if alphabet.is_empty() {
                        r as u8
                    } else {
                        alphabet[(r % alphabet.len() as u64) as usize]
                    }
                })
                .collect();
            let other: Vec<u8> = (0..(next() % 24)).map(|_| next() as u8).collect();
            let s = lua.create_string(&bytes).unwrap();
            let d = lua.create_string(&other).unwrap();
            let (f, n) = &targets[round % targets.len()];
            let offset = (next() % 50) as i64 - 5;
            let (sane, ok): (bool, bool) = check.call((f, *n, s, d, offset)).unwrap();
            assert!(sane, "round {round}: {bytes:?} / {other:?}");
            if ok {
                values += 1;
            } else {
                errors += 1;
            }
        }
        // Both outcomes are exercised.
        assert!(
            values > 1000 && errors > 1000,
            "values {values}, errors {errors}"
        );
    }
}
