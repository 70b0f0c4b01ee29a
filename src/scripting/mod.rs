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

// A few helpers are not used yet.
#![allow(dead_code)]

pub mod api;
pub mod cache;
pub mod convert;
pub mod ffi;
pub mod functions;
pub mod lib_bit;
pub mod lib_cjson;
pub mod lib_cmsgpack;
pub mod lib_struct;
pub mod rand;
pub mod run;
pub mod vm;

/// The scripting state of the server (`Server::scripting`): the EVAL Lua state, its
/// script cache, the client scripts run their commands through, and the running
/// script's context.
#[derive(Default)]
pub struct Scripting {
    /// The EVAL state; built on first use, `None` while a script runs (it is taken
    /// out so the script's calls can borrow the server) and after SCRIPT FLUSH.
    pub eval: Option<vm::LuaVm>,
    /// sha1 -> script (EVAL and SCRIPT LOAD).
    pub cache: cache::ScriptCache,
    /// The connectionless client of `server.call` (upstream's script client).
    pub client: Option<Box<crate::client::Client>>,
    /// The running script, if any.
    pub run: Option<run::RunCtx>,
    /// The Lua heap of the eval state as last measured (INFO while a script runs).
    pub eval_vm_memory: usize,
    /// The function state (FUNCTION LOAD / FCALL); `None` while a function runs.
    pub func_vm: Option<vm::LuaVm>,
    /// The function libraries.
    pub libs: functions::Registry,
    /// Scripts run since the last GC step (upstream's LUA_GC_CYCLE_PERIOD).
    pub gc_count: u32,
}

impl Scripting {
    /// The state at server start: the EVAL Lua state is built at once, as upstream
    /// (INFO shows its heap from the start).
    pub fn new() -> Scripting {
        Scripting {
            eval: vm::LuaVm::new(vm::VmKind::Eval).ok(),
            func_vm: vm::LuaVm::new(vm::VmKind::Function).ok(),
            ..Default::default()
        }
    }

    /// SCRIPT FLUSH: drops every script and starts a fresh EVAL state. With `lazy` and
    /// more than LAZYFREE_THRESHOLD scripts the old state is closed by the lazyfree
    /// thread, as upstream's freeLuaScriptsAsync.
    pub fn flush(&mut self, lazy: bool) {
        let evicted = self.cache.evicted;
        let cache = std::mem::take(&mut self.cache);
        self.cache.evicted = evicted;
        let n = cache.len();
        let vm = self.eval.take();
        self.eval = vm::LuaVm::new(vm::VmKind::Eval).ok();
        self.eval_vm_memory = 0;
        Orphan {
            cache: Some(cache),
            libs: None,
            vm,
        }
        .free(lazy, n);
    }

    /// FUNCTION FLUSH: drops every library and starts a fresh function state; lazily
    /// as [`Scripting::flush`], by the number of functions (upstream's
    /// freeFunctionsAsync).
    pub fn flush_functions(&mut self, lazy: bool) {
        let libs = std::mem::take(&mut self.libs);
        let n = libs.funcs.len();
        let vm = self.func_vm.take();
        self.func_vm = vm::LuaVm::new(vm::VmKind::Function).ok();
        Orphan {
            cache: None,
            libs: Some(libs),
            vm,
        }
        .free(lazy, n);
    }

    /// Takes every library and the function state out, leaving a fresh, empty state (a
    /// replica's full sync loads the primary's libraries into it): the pair goes back
    /// with [`Scripting::restore_functions`] if the load fails.
    pub fn take_functions(&mut self) -> (functions::Registry, Option<vm::LuaVm>) {
        let libs = std::mem::take(&mut self.libs);
        let vm = self.func_vm.take();
        self.func_vm = vm::LuaVm::new(vm::VmKind::Function).ok();
        (libs, vm)
    }

    /// Puts back what [`Scripting::take_functions`] took.
    pub fn restore_functions(&mut self, saved: (functions::Registry, Option<vm::LuaVm>)) {
        (self.libs, self.func_vm) = saved;
    }

    /// The Lua heap of the function state, in bytes.
    pub fn func_vm_memory(&self) -> usize {
        self.func_vm.as_ref().map_or(0, |vm| vm.used_memory())
    }

    /// The Lua heap of the eval state, in bytes, as upstream reports it (`lua_gc
    /// COUNT` in KB, times 1024).
    pub fn eval_vm_memory(&self) -> usize {
        match &self.eval {
            Some(vm) => vm.used_memory() / 1024 * 1024,
            None => self.eval_vm_memory,
        }
    }
}

/// A compiled script or function: a reference in its state's Lua registry.
///
/// Not an `mlua::Function`: mlua keeps every `Function` handle in one auxiliary Lua
/// stack of at most ~8000 slots and panics past it, so a server holding a handle per
/// cached script died at the 8000th SCRIPT LOAD. A registry reference has no such
/// bound; the handle exists only while the script runs. `Rc` because the commands take
/// it out of the cache before running it.
pub type LuaFn = std::rc::Rc<mlua::RegistryKey>;

/// A Lua state taken out of the server together with every value that refers to it
/// (the compiled scripts of the cache, the functions of the registry), to be dropped.
///
/// mlua's `Lua` is `!Send` without its `send` feature (which would put a lock around
/// every call into Lua and make the state an `Arc`: a cost on every EVALSHA for nothing,
/// since scripts only ever run on the main thread). Moving the whole group to another
/// thread is still sound: every handle to the state (`Lua`, and the `Function`s holding
/// reference-counted pointers to it) is in this value, so the non-atomic reference counts
/// are only ever touched by one thread at a time; mlua keeps no thread-local state; no
/// script is running (FLUSH is refused inside scripts and while one is busy), no hook is
/// set, and the only `__gc` handlers `lua_close` runs are mlua's own (scripts can not
/// create userdata: `newproxy` is removed). The Lua allocator is the process-wide
/// counting allocator, which is thread-safe.
struct Orphan {
    cache: Option<cache::ScriptCache>,
    libs: Option<functions::Registry>,
    vm: Option<vm::LuaVm>,
}

// SAFETY: see the type's comment.
unsafe impl Send for Orphan {}

impl Orphan {
    /// Drops the group: on the lazyfree thread when `lazy` and it holds more than
    /// LAZYFREE_THRESHOLD scripts or functions (`n`), else here.
    fn free(self, lazy: bool, n: usize) {
        if lazy && n > crate::lazyfree::LAZYFREE_THRESHOLD {
            crate::lazyfree::free_other(Box::new(self), n as u64);
        }
    }
}
