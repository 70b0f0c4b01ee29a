//! Lazy freeing (upstream's `lazyfree.c` and its bio thread): values that take long to
//! free — big collections, whole databases emptied by FLUSHALL — are handed to a
//! background thread instead of being dropped on the event loop.
//!
//! Which deletions are lazy follows upstream's `lazyfree-lazy-*` directives (all `yes` by
//! default in Valkey 9): UNLINK and `FLUSHALL ASYNC` always, DEL with
//! `lazyfree-lazy-user-del`, FLUSHALL/FLUSHDB without argument with
//! `lazyfree-lazy-user-flush`, deletions done by commands (emptied or overwritten keys)
//! with `lazyfree-lazy-server-del`. A value whose freeing effort (its number of
//! allocations, roughly its element count) is at most [`LAZYFREE_THRESHOLD`] is freed
//! synchronously anyway, as upstream: sending it would cost more than dropping it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

use crate::kvstore::KvStore;
use crate::object::Value;

/// Upstream's `LAZYFREE_THRESHOLD`.
pub const LAZYFREE_THRESHOLD: usize = 64;

/// Objects queued and not freed yet (`lazyfree_pending_objects` in INFO memory).
static PENDING: AtomicU64 = AtomicU64::new(0);
/// Objects freed by the thread since startup (`lazyfreed_objects` in INFO stats).
static FREED: AtomicU64 = AtomicU64::new(0);

enum Job {
    Value(Value),
    Db(KvStore),
    /// Anything else that is slow to drop, counted as `n` objects (a Lua state with
    /// its scripts: src/scripting/mod.rs).
    Other(Box<dyn std::any::Any + Send>, u64),
}

fn queue() -> &'static Mutex<Sender<Job>> {
    static TX: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let consolidator = consolidator::start();
        std::thread::Builder::new()
            .name("bio_lazy_free".into())
            .spawn(move || {
                lower_thread_priority();
                for job in rx {
                    let busy = consolidator.as_ref().map(consolidator::Busy::new);
                    let n = match job {
                        Job::Value(v) => {
                            drop(v);
                            1
                        }
                        Job::Db(kv) => {
                            let n = kv.len() as u64;
                            drop(kv);
                            n
                        }
                        Job::Other(b, n) => {
                            drop(b);
                            n
                        }
                    };
                    drop(busy);
                    PENDING.fetch_sub(n, Ordering::Relaxed);
                    FREED.fetch_add(n, Ordering::Relaxed);
                }
            })
            .expect("spawning the lazy free thread");
        Mutex::new(tx)
    })
}

/// Keeps glibc's fastbins of the main arena short while the freeing thread works.
///
/// The values freed here were allocated by the event loop, so their blocks belong to the
/// main arena: glibc puts a freed small block (up to 128 bytes, past the freeing thread's
/// small tcache) on that arena's *fastbins*, unmerged. Merging them (`malloc_consolidate`)
/// happens later, all at once, under the arena's lock, inside the next malloc of a large
/// block — typically one of the event loop's, which then walks millions of blocks (tens
/// of ms for a 10-million-member set; upstream's libc build stalls the same way).
///
/// A helper thread consolidates the main arena every [`consolidator::PERIOD`] while a job
/// runs, so each consolidation handles only the blocks freed since the previous one:
/// `mallopt` with a parameter glibc ignores (`M_KEEP`) takes the main arena's lock,
/// consolidates, and changes nothing else. The thread is started from the event loop's
/// thread so that it keeps its priority (it holds the arena's lock while it works: a
/// low-priority holder waiting for CPU would stall the event loop's mallocs). The jemalloc
/// build has no fastbins and skips this.
///
/// Not solved: the merged blocks wait in glibc's *unsorted* bin, which the event loop's
/// mallocs that find no exact fit sort into size bins (up to 10,000 blocks per malloc,
/// one cache miss each); that is most of what the event loop still spends on the freeing.
mod consolidator {
    use std::thread::Thread;
    #[cfg(not(feature = "jemalloc"))]
    use std::{
        sync::atomic::{AtomicBool, Ordering},
        sync::Arc,
        time::Duration,
    };

    /// Time between two consolidations while a job runs.
    #[cfg(not(feature = "jemalloc"))]
    pub const PERIOD: Duration = Duration::from_millis(1);

    pub struct Handle {
        thread: Thread,
        #[cfg(not(feature = "jemalloc"))]
        busy: Arc<AtomicBool>,
    }

    /// Consolidates the main arena's fastbins.
    #[cfg(not(feature = "jemalloc"))]
    fn consolidate() {
        // glibc's malloc.h: M_KEEP (4) is accepted and unused; mallopt consolidates the
        // main arena under its lock before looking at the parameter.
        const M_KEEP: libc::c_int = 4;
        // SAFETY: mallopt has no memory preconditions.
        unsafe {
            libc::mallopt(M_KEEP, 0);
        }
    }

    /// Starts the helper thread; call it on the event loop's thread. None with jemalloc
    /// or when it cannot start (frees then work as without it).
    #[cfg(not(feature = "jemalloc"))]
    pub fn start() -> Option<Handle> {
        let busy = Arc::new(AtomicBool::new(false));
        let b = busy.clone();
        let t = std::thread::Builder::new()
            .name("bio_lazy_consol".into())
            .spawn(move || loop {
                std::thread::park();
                // The last round comes after the job's end (within PERIOD).
                while b.load(Ordering::Acquire) {
                    std::thread::sleep(PERIOD);
                    consolidate();
                }
            })
            .ok()?;
        Some(Handle {
            thread: t.thread().clone(),
            busy,
        })
    }

    #[cfg(feature = "jemalloc")]
    pub fn start() -> Option<Handle> {
        None
    }

    /// Marks a job in progress: the helper works until this is dropped, and once more.
    #[cfg_attr(feature = "jemalloc", allow(dead_code))]
    pub struct Busy<'a>(&'a Handle);

    impl<'a> Busy<'a> {
        pub fn new(h: &'a Handle) -> Self {
            #[cfg(not(feature = "jemalloc"))]
            h.busy.store(true, Ordering::Release);
            h.thread.unpark();
            Busy(h)
        }
    }

    impl Drop for Busy<'_> {
        fn drop(&mut self) {
            #[cfg(not(feature = "jemalloc"))]
            self.0.busy.store(false, Ordering::Release);
        }
    }
}

/// Gives the freeing thread the lowest CPU priority (nice 19, for this thread only): on
/// a machine with fewer free cores than runnable threads, the event loop then keeps its
/// core while a huge value is freed, which is the point of freeing lazily.
fn lower_thread_priority() {
    // SAFETY: gettid and setpriority have no memory preconditions; on Linux
    // PRIO_PROCESS with a thread id applies to that thread only.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

fn send(job: Job, n: u64) {
    PENDING.fetch_add(n, Ordering::Relaxed);
    let tx = queue().lock().unwrap_or_else(|e| e.into_inner());
    if let Err(mpsc::SendError(job)) = tx.send(job) {
        // The thread is gone (it never exits while the process runs): free here.
        PENDING.fetch_sub(n, Ordering::Relaxed);
        drop(job);
    }
}

/// Upstream's `lazyfreeGetFreeEffort`: about the number of allocations freeing takes. A
/// compact encoding (listpack, intset) is one allocation whatever its length; a
/// quicklist is one per node; hash tables and skiplists one per element.
pub fn free_effort(v: &Value) -> usize {
    use crate::object::Encoding;
    match v {
        Value::Int(_) | Value::Str { .. } => 1,
        Value::List(l) if l.encoding() == Encoding::Quicklist => l.raw_node_count(),
        Value::Hash(h) if h.encoding() == Encoding::Hashtable => h.len(),
        Value::Set(s) if s.encoding() == Encoding::Hashtable => s.len(),
        Value::ZSet(z) if z.encoding() == Encoding::Skiplist => z.len(),
        Value::List(_) | Value::Hash(_) | Value::Set(_) | Value::ZSet(_) => 1,
        // Upstream: the radix tree nodes plus each group's PEL size.
        Value::Stream(s) => {
            s.node_count()
                + s.groups()
                    .map_or(0, |g| g.values().map(|cg| 1 + cg.pel.len()).sum())
        }
    }
}

/// Frees a deleted value: on the background thread when `lazy` and it is big.
pub fn free_value(v: Value, lazy: bool) {
    if lazy && free_effort(&v) > LAZYFREE_THRESHOLD {
        send(Job::Value(v), 1);
    }
}

/// Frees the whole table of an emptied database: on the background thread when `lazy`.
pub fn free_db(kv: KvStore, lazy: bool) {
    // As upstream's emptyDbAsync, an asynchronous flush always hands the table over.
    if lazy && !kv.is_empty() {
        let n = kv.len() as u64;
        send(Job::Db(kv), n);
    }
}

/// Frees `b` on the background thread, counting `n` objects in the lazyfree statistics
/// (upstream's lazyFreeLuaScripts / lazyFreeFunctionsCtx jobs).
pub fn free_other(b: Box<dyn std::any::Any + Send>, n: u64) {
    send(Job::Other(b, n), n);
}

/// `lazyfree_pending_objects`.
pub fn pending_objects() -> u64 {
    PENDING.load(Ordering::Relaxed)
}

/// `lazyfreed_objects`.
pub fn freed_objects() -> u64 {
    FREED.load(Ordering::Relaxed)
}
