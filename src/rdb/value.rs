//! Values to and from their RDB encoding (upstream's `rdbSaveObject` /
#![allow(dead_code)] // skeleton: the helpers filling it in remove this
//! `rdbLoadObject`): the server's types on one side, the `rdb` crate's
//! primitives and [`rdb::object::Object`] on the other. Shared by snapshots
//! (`src/rdb.rs`) and DUMP/RESTORE.

use rdb::encoding::{Reader, Writer};
use rdb::object::{Limits, Object};

use crate::config::Config;
use crate::object::{Value, ValueRef};

/// The object type byte a value is saved as (upstream's `rdbSaveObjectType`).
pub fn object_type(v: ValueRef) -> u8 {
    let _ = v;
    todo!("rdb::value::object_type")
}

/// Appends the encoding of `v` (without the type byte) to `w`; `compress` is
/// `rdbcompression` (LZF for strings over 20 bytes).
pub fn write_value(w: &mut Writer, v: ValueRef, compress: bool) {
    let _ = (w, v, compress);
    todo!("rdb::value::write_value")
}

/// Turns a decoded object into a value, converting encodings by the config's
/// thresholds as upstream does on load (e.g. a listpack hash over
/// `hash-max-listpack-entries` becomes a hashtable). Errors are the reason the
/// object is invalid (duplicate members, bad listpack, empty collection...).
pub fn from_object(o: Object, cfg: &Config) -> Result<Value, String> {
    let _ = (o, cfg);
    todo!("rdb::value::from_object")
}

/// Decodes a value of type `typ` from `r` and converts it (read_object + from_object).
pub fn read_value(r: &mut Reader, typ: u8, cfg: &Config, lim: &Limits) -> rdb::Result<Value> {
    let start = r.offset();
    let o = rdb::object::read_object(r, typ, lim)?;
    from_object(o, cfg).map_err(|reason| rdb::Error::corrupt(start, reason))
}
