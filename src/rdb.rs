//! RDB persistence (upstream's `rdb.c`): saving the keyspace to a snapshot
//! (SAVE, BGSAVE by a forked child, save points, shutdown), loading it at
//! start-up and by DEBUG RELOAD. The file format itself is the `rdb` crate;
//! values are encoded by [`value`].

pub mod value;
