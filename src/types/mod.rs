//! The data structures behind the collection types, one module per structure, as
//! upstream's `listpack.c`, `intset.c`, `dict.c`/`hashtable.c`, `quicklist.c`, and the
//! type-level code of `t_list.c`, `t_hash.c`, `t_set.c`, `t_zset.c` (encoding choice and
//! conversion). The commands that use them live in `src/commands/<type>.rs`.
//!
//! - [`listpack`]: Valkey's listpack byte format, the compact encoding of small lists,
//!   hashes, sets and sorted sets (and the nodes of a quicklist).
//! - [`intset`]: Valkey's intset byte format, the compact encoding of small integer sets.
//! - [`dict`]: a chained hash table with incremental rehashing and SCAN's guarantee, whose
//!   entries are single allocations (the hashtable encoding of hashes, sets and the member
//!   index of sorted sets).
//! - [`list`], [`hash`], [`set`], [`zset`]: the values themselves and their encodings.

pub mod dict;
pub mod hash;
pub mod intset;
pub mod list;
pub mod listpack;
pub mod set;
pub mod stream;
pub mod thin;
pub mod zset;
