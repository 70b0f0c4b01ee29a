//! The Lua state (upstream's `engine_lua.c` `initializeLuaState`, `script_lua.c`):
//! the libraries, the sandbox (locked globals, read-only tables, no bytecode, no
//! file access) and compiling scripts.
//!
//! Build order (docs/scripting-plan.md 2.1): libraries; `os` cut to `clock`; the
//! extra libraries (cjson, struct, cmsgpack, bit) and the random generator (bytecode
//! is refused by the patched parser, docs/lua-patches.md); the pcall wrapper; the `server` table aliased as `redis`; the error handler (which
//! keeps `debug` and then removes it); the EVAL-only members; `_G` locked (error
//! metatable, read-only recursively, the metatables of the basic types).
//!
//! A second kind ([`VmKind::Function`]) is reserved for FUNCTION/FCALL: it differs in
//! the chunk name (`@user_function`), the server table (`register_function` at load
//! time) and in having no KEYS/ARGV globals.

use mlua::{ChunkMode, Function, Lua, LuaOptions, StdLib, Table, Value};

use super::{api, ffi};

/// Which scripts a state runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VmKind {
    Eval,
    Function,
}

/// Hard ceiling of a Lua heap: a script allocating without bound fails with a Lua
/// `not enough memory` error (catchable by pcall) instead of taking the server down.
/// With `maxmemory` set the bound is `maxmemory`, at least [`LUA_MEMORY_FLOOR`].
pub const LUA_MEMORY_CEILING: usize = 1 << 30;
/// The smallest bound (a state with its libraries uses ~100 KB).
pub const LUA_MEMORY_FLOOR: usize = 32 << 20;

/// The memory bound of a Lua heap for the given `maxmemory` (0: none).
pub fn memory_bound(maxmemory: u64) -> usize {
    if maxmemory == 0 {
        LUA_MEMORY_CEILING
    } else {
        (maxmemory.min(LUA_MEMORY_CEILING as u64) as usize).max(LUA_MEMORY_FLOOR)
    }
}

pub struct LuaVm {
    pub lua: Lua,
    pub kind: VmKind,
}

/// The registry key of the error handler.
pub const ERR_HANDLER_KEY: &str = "__server__err__handler";

/// The error handler (upstream's `__server__err__handler`): a non-table error becomes
/// `{err='ERR <msg>'}`, and the table gets the source and line of the frame that
/// raised it (level 2, or 3 when level 2 is a C function such as `server.call`).
/// It keeps `debug` in an upvalue; `debug` is removed from the globals afterwards.
const ERR_HANDLER_SRC: &str = r#"
local dbg = debug
return function(err)
  local i = dbg.getinfo(2, 'nSl')
  if i and i.what == 'C' then
    i = dbg.getinfo(3, 'nSl')
  end
  if type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  if i then
    err['source'] = i.source
    err['line'] = i.currentline
  end
  return err
end
"#;

impl LuaVm {
    /// Builds a state as upstream's `initializeLuaState` (+ the EVAL extras for
    /// [`VmKind::Eval`]).
    pub fn new(kind: VmKind) -> mlua::Result<LuaVm> {
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::OS | StdLib::DEBUG;
        // SAFETY: the debug library is needed by the error handler only; it is
        // removed from the globals before any script runs.
        let lua = unsafe { Lua::unsafe_new_with(libs, LuaOptions::default()) };
        let g = lua.globals();
        // Base library members upstream does not expose.
        for name in [
            "loadfile", "dofile", "print", "setfenv", "getfenv", "newproxy", "module", "require",
            "package",
        ] {
            g.raw_set(name, Value::Nil)?;
        }
        // `os` is cut down to `clock`.
        let os: Table = g.get("os")?;
        let clock: Function = os.get("clock")?;
        let os2 = lua.create_table()?;
        os2.set("clock", clock)?;
        g.set("os", os2)?;
        // The extra libraries (src/scripting/lib_*.rs) and math.random.
        super::lib_cjson::install(&lua)?;
        super::lib_struct::install(&lua)?;
        super::lib_cmsgpack::install(&lua)?;
        super::lib_bit::install(&lua)?;
        super::rand::install(&lua)?;
        // The pcall wrapper and the server table.
        api::install(&lua, kind)?;
        if kind == VmKind::Function {
            let server: Table = g.get("server")?;
            super::functions::install_register(&lua, &server)?;
        }
        // The error handler, then `debug` goes away.
        let handler: Function = lua
            .load(ERR_HANDLER_SRC)
            .set_name("=err_handler")
            .set_mode(ChunkMode::Text)
            .call(())?;
        lua.set_named_registry_value(ERR_HANDLER_KEY, handler.clone())?;
        if kind == VmKind::Eval {
            g.raw_set("__server__err__handler", handler.clone())?;
            g.raw_set("__redis__err__handler", handler)?;
        }
        g.raw_set("debug", Value::Nil)?;
        // Lock the globals: reading a missing name is an error, and so is adding one.
        let mt = lua.create_table()?;
        // SAFETY: raw C functions that raise with luaL_error and hold no Rust values.
        let idx = unsafe { lua.create_c_function(api::protected_table_error)? };
        let newidx = unsafe { lua.create_c_function(api::readonly_table_error)? };
        mt.raw_set("__index", idx)?;
        mt.raw_set("__newindex", newidx)?;
        g.set_metatable(Some(mt));
        ffi::protect_recursively(&lua, &g)?;
        ffi::protect_basic_type_metatables(&lua)?;
        let vm = LuaVm { lua, kind };
        vm.lua.gc_collect()?;
        Ok(vm)
    }

    /// The chunk name of this kind's scripts.
    pub fn chunk_name(&self) -> &'static str {
        match self.kind {
            VmKind::Eval => "@user_script",
            VmKind::Function => "@user_function",
        }
    }

    /// Compiles a script body (its shebang line already blanked) into a function.
    /// The error is the text after `Error compiling script (new function): `.
    pub fn compile(&self, body: &[u8]) -> Result<super::LuaFn, String> {
        match self
            .lua
            .load(body)
            .set_name(self.chunk_name())
            .set_mode(ChunkMode::Text)
            .into_function()
            .and_then(|f| self.lua.create_registry_value(f))
        {
            Ok(f) => Ok(std::rc::Rc::new(f)),
            Err(mlua::Error::SyntaxError { message, .. }) => Err(message),
            Err(mlua::Error::MemoryError(m)) => Err(m),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Bytes in use by the Lua heap.
    pub fn used_memory(&self) -> usize {
        self.lua.used_memory()
    }
}
