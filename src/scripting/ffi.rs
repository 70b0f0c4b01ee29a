//! Bindings to our patches of PUC Lua 5.1.5 (vendor/lua-src): read-only tables,
//! as upstream's `lua_enablereadonlytable` / `lua_isreadonlytable`.
//! (Skeleton: the bodies are placeholders until the C patch lands.)

use mlua::{Lua, Table};

/// Marks `t` read-only (or writable again): any later assignment, `rawset`,
/// `rawseti` or `setmetatable` on it raises `Attempt to modify a readonly table`.
pub fn set_readonly(lua: &Lua, t: &Table, on: bool) -> mlua::Result<()> {
    let _ = (lua, t, on);
    Ok(())
}

/// Whether `t` is read-only.
pub fn is_readonly(lua: &Lua, t: &Table) -> bool {
    let _ = (lua, t);
    false
}
