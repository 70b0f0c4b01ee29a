//! `math.random` / `math.randomseed` as upstream replaces them (script_lua.c
//! `server_math_random`, rand.c): one lrand48-compatible generator for the whole
//! process, never reseeded per script, so a script's random sequence depends
//! only on what ran before it since the start (plan 0.2).
//!
//! The generator is the 48-bit linear congruence of lrand48: `x = (a*x + c) mod
//! 2^48` with `a = 0x5DEECE66D`, `c = 0xB`, starting at `0x1234ABCD330E`; a draw
//! is the top 31 bits (`x >> 17`). `math.random()` is `(v % 0x7fffffff) /
//! 0x7fffffff`; `randomseed(n)` sets `x = n << 16 | 0x330E` (srand48).
//!
//! The state is thread-local: the server runs every script on its main thread,
//! so this is the process-wide generator there, and each test thread gets its
//! own fresh one.

use std::cell::Cell;
use std::os::raw::c_int;

use mlua::ffi::{self, lua_State};
use mlua::Lua;

use super::lib_bit::{c_functions, call, check_integer, LibError, LibResult};

const RAND48_MULT: u64 = 0x5_DEEC_E66D;
const RAND48_ADD: u64 = 0xB;
const RAND48_MASK: u64 = (1 << 48) - 1;
/// Upstream's initial state (rand.c X0/X1/X2 = 0x330E, 0xABCD, 0x1234).
const RAND48_INIT: u64 = 0x1234_ABCD_330E;
/// `REDIS_LRAND48_MAX` (INT32_MAX).
const LRAND48_MAX: u32 = 0x7fff_ffff;

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(RAND48_INIT) };
}

/// One lrand48 draw: a value in `0..2^31`.
pub fn lrand48() -> u32 {
    STATE.with(|s| {
        let x = s.get().wrapping_mul(RAND48_MULT).wrapping_add(RAND48_ADD) & RAND48_MASK;
        s.set(x);
        (x >> 17) as u32
    })
}

/// srand48: the seed's 32 bits become the high part of the state.
pub fn srand48(seed: i32) {
    STATE.with(|s| s.set(((seed as u32 as u64) << 16) | 0x330E));
}

/// `luaL_checkint`: the integer conversion truncated to C `int`.
unsafe fn check_int(l: *mut lua_State, idx: c_int) -> Result<i32, LibError> {
    unsafe { check_integer(l, idx).map(|v| v as i32) }
}

/// `math.random([m [, n]])`. The number is drawn before the arguments are
/// checked, as upstream does, so a failing call still advances the sequence.
unsafe fn random(l: *mut lua_State) -> LibResult {
    let r = (lrand48() % LRAND48_MAX) as f64 / LRAND48_MAX as f64;
    unsafe {
        match ffi::lua_gettop(l) {
            0 => ffi::lua_pushnumber(l, r),
            1 => {
                let u = check_int(l, 1)?;
                if u < 1 {
                    return Err(LibError::Arg(1, "interval is empty".into()));
                }
                ffi::lua_pushnumber(l, (r * u as f64).floor() + 1.0);
            }
            2 => {
                let lo = check_int(l, 1)?;
                let up = check_int(l, 2)?;
                if lo > up {
                    return Err(LibError::Arg(2, "interval is empty".into()));
                }
                // C int arithmetic: wraps for the full 32-bit range.
                let span = up.wrapping_sub(lo).wrapping_add(1);
                ffi::lua_pushnumber(l, (r * span as f64).floor() + lo as f64);
            }
            _ => return Err(LibError::Msg("wrong number of arguments".into())),
        }
    }
    Ok(1)
}

/// `math.randomseed(n)`.
unsafe fn randomseed(l: *mut lua_State) -> LibResult {
    let seed = unsafe { check_int(l, 1)? };
    srand48(seed);
    Ok(0)
}

c_functions! { c_random => random, c_randomseed => randomseed }

/// Replaces `math.random` and `math.randomseed` in the existing `math` table.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let math: mlua::Table = lua.globals().raw_get("math")?;
    // SAFETY: both follow lib_bit's C function protocol.
    unsafe {
        math.raw_set("random", lua.create_c_function(c_random)?)?;
        math.raw_set("randomseed", lua.create_c_function(c_randomseed)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::lib_bit::testutil::{run, state};
    use super::*;

    // Expected values: on a freshly started reference (valkey 9.1.2),
    // EVAL "return {tostring(math.random()), tostring(math.random()), math.random(100)}" 0
    // gives 0.39646477363839, 0.84048536971234, 36; then
    // EVAL "math.randomseed(7) return {tostring(math.random()), math.random(5,10)}" 0
    // gives 0.26644419658298, 9.
    #[test]
    fn sequence_from_start_and_seed() {
        let lua = state(install);
        assert_eq!(
            run(
                &lua,
                "return math.random(), math.random(), math.random(100)"
            )
            .unwrap(),
            "0.39646477363839|0.84048536971234|36"
        );
        assert_eq!(
            run(
                &lua,
                "math.randomseed(7) return math.random(), math.random(5,10)"
            )
            .unwrap(),
            "0.26644419658298|9"
        );
        // A second state shares the generator (one per thread = per process in the server).
        let other = state(install);
        srand48(7);
        let a = run(&other, "return math.random()").unwrap();
        assert_eq!(a, "0.26644419658298");
        assert_eq!(
            run(&lua, "return math.random(-2147483648, 2147483647)").unwrap(),
            "-2147483648"
        );
    }

    #[test]
    fn errors() {
        let lua = state(install);
        assert_eq!(
            run(&lua, "return math.random(1,2,3)").unwrap_err(),
            "user_script:1: wrong number of arguments"
        );
        assert_eq!(
            run(&lua, "return math.random(0)").unwrap_err(),
            "user_script:1: bad argument #1 to 'random' (interval is empty)"
        );
        assert_eq!(
            run(&lua, "return math.random(3,2)").unwrap_err(),
            "user_script:1: bad argument #2 to 'random' (interval is empty)"
        );
        assert_eq!(
            run(&lua, "return math.random('x')").unwrap_err(),
            "user_script:1: bad argument #1 to 'random' (number expected, got string)"
        );
        assert_eq!(
            run(&lua, "return math.randomseed()").unwrap_err(),
            "user_script:1: bad argument #1 to 'randomseed' (number expected, got no value)"
        );
        // 2^31+5 truncates to a negative C int.
        assert_eq!(
            run(&lua, "return math.random(2^31+5)").unwrap_err(),
            "user_script:1: bad argument #1 to 'random' (interval is empty)"
        );
    }
}
