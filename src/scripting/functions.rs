//! The function libraries (upstream's `functions.c` and `lua/function_lua.c`): the
//! registry name -> library (code, functions with flags and description, engine
//! "LUA"), and FUNCTION LOAD on the function Lua state ([`super::vm::VmKind::Function`]).
//!
//! `server.register_function` is Lua code installed in the function state (see
//! [`REGISTER_SRC`]); it only works while a library loads and leaves what it got in a
//! registry table that [`load`] reads back.

use std::collections::{BTreeMap, HashMap};
use std::os::raw::c_int;
use std::time::{Duration, Instant};

use mlua::ffi::{self, lua_State};
use mlua::{Function, Table, Value};

use super::run::sflags;
use super::vm::LuaVm;

/// The load-time limit of a library's top-level code (upstream's LOAD_TIMEOUT_MS).
pub const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

/// The registry key of the table `server.register_function` fills.
pub const PENDING_KEY: &str = "__server__fn__pending";
/// The registry key of the reduced `server` table a library sees while it loads.
pub const LOAD_TABLE_KEY: &str = "__server__fn__loadtable";

/// `server.register_function`, in Lua: validates its arguments (upstream's texts)
/// and appends `{name, callback, flags, description}` to the pending list. Errors are
/// raised at level 0 (no position), so the loader prefixes them with `ERR `.
pub const REGISTER_SRC: &str = r#"
local pending = ...
local valid = {['no-writes']=true, ['allow-oom']=true, ['allow-stale']=true,
  ['no-cluster']=true, ['allow-cross-slot-keys']=true}
local function check_name(n)
  if type(n) ~= 'string' or #n == 0 or string.find(n, '[^%w_]') then
    error('\1Function names can only contain letters, numbers, or underscores(_) and must be at least one character long', 0)
  end
end
return function(...)
  if not pending.active then
    error('server.register_function can only be called on FUNCTION LOAD command', 0)
  end
  local n = select('#', ...)
  local a, b = ...
  local name, cb, flags, desc
  if n == 1 then
    if type(a) ~= 'table' then
      error('calling server.register_function with a single argument is only applicable to Lua table (representing named arguments).', 0)
    end
    for k, v in pairs(a) do
      if k == 'function_name' then
        if type(v) ~= 'string' then error('function_name argument given to server.register_function must be a string', 0) end
        name = v
      elseif k == 'callback' then
        if type(v) ~= 'function' then error('callback argument given to server.register_function must be a function', 0) end
        cb = v
      elseif k == 'flags' then
        if type(v) ~= 'table' then error('flags argument to server.register_function must be a table representing function flags', 0) end
        flags = v
      elseif k == 'description' then
        if type(v) ~= 'string' then error('description argument given to server.register_function must be a string', 0) end
        desc = v
      else
        error('unknown argument given to server.register_function', 0)
      end
    end
    if name == nil then error('server.register_function must get a function name argument', 0) end
    if cb == nil then error('server.register_function must get a callback argument', 0) end
  elseif n == 2 then
    if type(a) ~= 'string' then error('first argument to server.register_function must be a string', 0) end
    if type(b) ~= 'function' then error('second argument to server.register_function must be a function', 0) end
    name, cb = a, b
  else
    error('wrong number of arguments to server.register_function', 0)
  end
  check_name(name)
  local fl = {}
  if flags then
    for _, f in ipairs(flags) do
      if type(f) ~= 'string' or not valid[f] then error('unknown flag given', 0) end
      fl[#fl + 1] = f
    end
  end
  if pending.names[name] then error('\1Function already exists in the library', 0) end
  pending.names[name] = true
  pending.list[#pending.list + 1] = {name, cb, fl, desc}
end
"#;

/// One registered function.
pub struct FunctionInfo {
    pub name: String,
    pub func: super::LuaFn,
    /// The script flags ([`sflags`]).
    pub flags: u64,
    /// The flag names, in definition order (FUNCTION LIST).
    pub flag_names: Vec<String>,
    pub desc: Option<Vec<u8>>,
}

/// One library.
pub struct Library {
    pub name: String,
    pub code: Vec<u8>,
    pub functions: Vec<FunctionInfo>,
}

/// The libraries, and function name -> library name.
#[derive(Default)]
pub struct Registry {
    pub libs: BTreeMap<String, Library>,
    pub funcs: HashMap<String, String>,
}

impl Registry {
    pub fn function(&self, name: &[u8]) -> Option<&FunctionInfo> {
        let name = std::str::from_utf8(name).ok()?;
        let lib = self.funcs.get(name)?;
        self.libs
            .get(lib)?
            .functions
            .iter()
            .find(|f| f.name == name)
    }

    pub fn functions_count(&self) -> usize {
        self.funcs.len()
    }

    /// Removes a library and its functions.
    pub fn remove(&mut self, name: &str) -> Option<Library> {
        let lib = self.libs.remove(name)?;
        for f in &lib.functions {
            self.funcs.remove(&f.name);
        }
        Some(lib)
    }

    /// Adds a library whose functions do not clash (checked by the caller).
    pub fn insert(&mut self, lib: Library) {
        for f in &lib.functions {
            self.funcs.insert(f.name.clone(), lib.name.clone());
        }
        self.libs.insert(lib.name.clone(), lib);
    }

    /// The code sizes plus a rough per-function overhead (used_memory_functions).
    pub fn memory(&self) -> usize {
        self.libs
            .values()
            .map(|l| l.code.len() + l.name.len() + 64 + l.functions.len() * 96)
            .sum()
    }
}

/// Parses the metadata line (`#!lua name=<lib>`): the library name and the offset of
/// the line's newline (the body keeps it so line numbers count the shebang).
pub fn parse_metadata(code: &[u8]) -> Result<(String, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let Some(nl) = code.iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid library metadata".into());
    };
    let line = String::from_utf8_lossy(&code[2..nl]).into_owned();
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or("");
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{}' not found", engine));
    }
    let mut name = None;
    for p in parts {
        match p.strip_prefix("name=") {
            Some(_) if name.is_some() => {
                return Err(
                    "ERR Invalid metadata value, name argument was given multiple times".into(),
                )
            }
            Some(n) => name = Some(n.to_string()),
            None => return Err(format!("ERR Invalid metadata value given: {}", p)),
        }
    }
    let Some(name) = name else {
        return Err("ERR Library name was not given".into());
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    Ok((name, nl))
}

thread_local! {
    static LOAD_DEADLINE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

unsafe extern "C-unwind" fn load_hook(l: *mut lua_State, _ar: *mut ffi::lua_Debug) {
    let late = LOAD_DEADLINE.with(|d| d.get().is_some_and(|t| Instant::now() > t));
    if late {
        ffi::lua_pushstring(l, c"FUNCTION LOAD timeout".as_ptr());
        ffi::lua_error(l);
    }
}

/// Compiles and runs a library's code in the function state (upstream's
/// functionsCreateWithLibraryCtx up to the registry checks): the library, or the
/// error reply text.
pub fn compile_library(vm: &LuaVm, code: &[u8]) -> Result<Library, String> {
    let (name, nl) = parse_metadata(code)?;
    let body = &code[nl..];
    let chunk = vm
        .compile(body)
        .map_err(|e| format!("ERR Error compiling function: {}", e))?;
    let chunk: Function = vm
        .lua
        .registry_value(&chunk)
        .map_err(|e| format!("ERR {}", e))?;
    let pending: Table = vm
        .lua
        .named_registry_value(PENDING_KEY)
        .map_err(|e| format!("ERR {}", e))?;
    let list = vm.lua.create_table().map_err(|e| format!("ERR {}", e))?;
    let _ = pending.raw_set("list", list.clone());
    let names = vm.lua.create_table().map_err(|e| format!("ERR {}", e))?;
    let _ = pending.raw_set("names", names);
    let _ = pending.raw_set("active", true);
    // While loading, `server` / `redis` are the reduced table.
    let g = vm.lua.globals();
    let full: Value = g.raw_get("server").map_err(|e| format!("ERR {}", e))?;
    let reduced: Table = vm
        .lua
        .named_registry_value(LOAD_TABLE_KEY)
        .map_err(|e| format!("ERR {}", e))?;
    let swap = |v: Value| {
        let _ = super::ffi::with_writable(&vm.lua, &g, || {
            g.raw_set("server", v.clone())?;
            g.raw_set("redis", v)
        });
    };
    swap(Value::Table(reduced));
    LOAD_DEADLINE.with(|d| d.set(Some(Instant::now() + LOAD_TIMEOUT)));
    let mut err: Option<String> = None;
    // SAFETY: raw stack work on the state; nothing Rust-owned crosses the pcall.
    let r = unsafe {
        vm.lua.exec_raw::<()>(&chunk, |l| {
            ffi::lua_sethook(l, Some(load_hook), ffi::LUA_MASKCOUNT, 100000);
            let status: c_int = ffi::lua_pcall(l, 0, 0, 0);
            ffi::lua_sethook(l, None, 0, 0);
            if status != 0 {
                let msg = super::api::to_bytes(l, -1)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_else(|| "unknown error".into());
                err = Some(msg);
                ffi::lua_pop(l, 1);
            }
        })
    };
    LOAD_DEADLINE.with(|d| d.set(None));
    swap(full);
    let _ = pending.raw_set("active", false);
    let _ = pending.raw_set("list", Value::Nil);
    let _ = pending.raw_set("names", Value::Nil);
    if let Err(e) = r {
        return Err(format!("ERR Error registering functions: ERR {}", e));
    }
    if let Some(e) = err {
        // Errors of the registration itself are not wrapped (marked with \x01).
        if let Some(raw) = e.strip_prefix('\u{1}') {
            return Err(format!("ERR {}", raw));
        }
        return Err(format!("ERR Error registering functions: ERR {}", e));
    }
    let mut functions = Vec::new();
    for entry in list.sequence_values::<Table>() {
        let entry = entry.map_err(|e| format!("ERR {}", e))?;
        let fname: String = entry.raw_get(1).map_err(|e| format!("ERR {}", e))?;
        let func: Function = entry.raw_get(2).map_err(|e| format!("ERR {}", e))?;
        let func = vm
            .lua
            .create_registry_value(func)
            .map_err(|e| format!("ERR {}", e))?;
        let func = std::rc::Rc::new(func);
        let fl: Table = entry.raw_get(3).map_err(|e| format!("ERR {}", e))?;
        let desc: Option<mlua::String> = entry.raw_get(4).ok();
        let mut flags = 0u64;
        let mut flag_names = Vec::new();
        for f in fl.sequence_values::<String>().flatten() {
            if let Some((b, _)) = sflags::NAMES.iter().find(|(_, n)| *n == f) {
                flags |= b;
            }
            flag_names.push(f);
        }
        functions.push(FunctionInfo {
            name: fname,
            func,
            flags,
            flag_names,
            desc: desc.map(|d| d.as_bytes().to_vec()),
        });
    }
    if functions.is_empty() {
        return Err("ERR No functions registered".into());
    }
    Ok(Library {
        name,
        code: code.to_vec(),
        functions,
    })
}

/// Adds a compiled library to the registry (LOAD / RESTORE / RDB load): the checks of
/// upstream's libraryJoin. `quoted` selects LOAD's `Library 'x' already exists`
/// (RESTORE says it without quotes).
pub fn add_library(
    reg: &mut Registry,
    lib: Library,
    replace: bool,
    quoted: bool,
) -> Result<String, String> {
    if reg.libs.contains_key(&lib.name) && !replace {
        return Err(if quoted {
            format!("ERR Library '{}' already exists", lib.name)
        } else {
            format!("ERR Library {} already exists", lib.name)
        });
    }
    for f in &lib.functions {
        if let Some(owner) = reg.funcs.get(&f.name) {
            if *owner != lib.name {
                return Err(format!("ERR Function {} already exists", f.name));
            }
        }
    }
    reg.remove(&lib.name);
    let name = lib.name.clone();
    reg.insert(lib);
    Ok(name)
}

/// Installs `server.register_function` in a function state (before its globals are
/// locked).
pub fn install_register(lua: &mlua::Lua, server: &Table) -> mlua::Result<()> {
    let pending = lua.create_table()?;
    pending.raw_set("active", false)?;
    let reg: Function = lua
        .load(REGISTER_SRC)
        .set_name("=register_function")
        .set_mode(mlua::ChunkMode::Text)
        .call(pending.clone())?;
    server.raw_set("register_function", reg.clone())?;
    lua.set_named_registry_value(PENDING_KEY, pending)?;
    // The load-time table: register_function, log and the constants; any other name
    // raises the nonexistent-global error.
    let lt = lua.create_table()?;
    lt.raw_set("register_function", reg)?;
    for pair in server.clone().pairs::<String, Value>() {
        let (k, v) = pair?;
        if k == "log" || !matches!(v, Value::Function(_)) {
            lt.raw_set(k, v)?;
        }
    }
    let mt = lua.create_table()?;
    // SAFETY: raw C functions that raise with luaL_error and hold no Rust values.
    let idx = unsafe { lua.create_c_function(super::api::protected_table_error)? };
    mt.raw_set("__index", idx)?;
    lt.set_metatable(Some(mt));
    super::ffi::set_readonly(lua, &lt, true)?;
    lua.set_named_registry_value(LOAD_TABLE_KEY, lt)?;
    Ok(())
}
