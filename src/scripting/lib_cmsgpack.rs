//! See [`crate::scripting`] for the layout. (Skeleton: not built yet.)

use mlua::Lua;

/// Creates this library's global table (or functions) in `lua`. The caller
/// marks the tables read-only afterwards.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let _ = lua;
    Ok(())
}
