//! Scripting (issue 12): EVAL/EVALSHA/SCRIPT and FUNCTION/FCALL on an embedded,
//! sandboxed Lua 5.1, as upstream's `eval.c`, `script.c`, `script_lua.c`,
//! `functions.c` and `lua/*.c`. The research behind it is docs/scripting-plan.md;
//! what is built is docs/scripting.md.
//!
//! One Lua state per kind (EVAL, FUNCTION), owned by the main thread through
//! [`crate::server::Server`]; nothing here is touched by another thread.
//!
//! | file | upstream | what |
//! |---|---|---|
//! | [`vm`] | `engine_lua.c`, `script_lua.c` | the Lua state: libraries, sandbox (global lock, read-only tables), compile, call with the instruction hook and the memory limit |
//! | [`ffi`] | `deps/lua` patches | our patches to PUC Lua 5.1.5 (vendor/lua-src): read-only tables |
//! | [`api`] | `script_lua.c` | the `server` / `redis` table: call, pcall, error_reply, status_reply, sha1hex, log, setresp, set_repl, acl_check_cmd, ... |
//! | [`convert`] | `script_lua.c` | RESP replies to Lua values and Lua values to RESP replies |
//! | [`run`] | `script.c` | the run context: prepare_for_run, the per-call gates, interrupt, BUSY and KILL |
//! | [`cache`] | `eval.c` | the sha1 -> script cache, with the 500-entry LRU of EVAL-added scripts |
//! | [`lib_cjson`], [`lib_cmsgpack`], [`lib_struct`], [`lib_bit`] | `deps/lua/src/lua_*.c` | the extra libraries, written in Rust |
//! | [`rand`] | `script_lua.c` `server_math_random` | math.random / math.randomseed: one lrand48-compatible generator |
//!
//! The commands are in src/commands/scripting.rs (EVAL*, SCRIPT) and
//! src/commands/function.rs (FUNCTION, FCALL*).

// Skeleton: the modules are filled in by parallel work; remove this once every
// module is used by the server.
#![allow(dead_code)]

pub mod api;
pub mod cache;
pub mod convert;
pub mod ffi;
pub mod lib_bit;
pub mod lib_cjson;
pub mod lib_cmsgpack;
pub mod lib_struct;
pub mod rand;
pub mod run;
pub mod vm;
