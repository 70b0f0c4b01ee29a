//! RDB persistence (upstream's `rdb.c`): saving the keyspace to a snapshot
//! (SAVE, BGSAVE by a forked child, save points, shutdown), loading it at
//! start-up and by DEBUG RELOAD. The file format itself is the `rdb` crate;
//! values are encoded by [`value`].
//!
//! # Processes
//! BGSAVE forks with `nix::unistd::fork`. The child writes `temp-<childpid>.rdb`
//! in `dir` (the working directory), fsyncs it, renames it over `dbfilename` and
//! fsyncs the directory (all in [`rdb_save`]), reports its copy-on-write size
//! through a pipe and leaves with `_exit` (no destructors, no event loop). The
//! parent never waits for it: serverCron reaps it with `waitpid(WNOHANG)`
//! ([`check_child_done`]). A child killed by a signal leaves `temp-<pid>.rdb`
//! behind, which the parent removes; `dump.rdb` is only ever replaced by a
//! complete, fsynced file.
//!
//! # Loading
//! [`load_data_from_disk`] runs from `main` after the listeners are open and
//! before the event loop's first turn, as upstream. Every load (start-up, DEBUG
//! RELOAD, a replica's full sync) is bracketed by `busy::start_loading` /
//! `stop_loading` (`loading:1` and the `loading_*` progress fields of INFO
//! persistence), and [`load_records`] reports the bytes consumed after each record:
//! every `loading-process-events-interval-bytes` (2 MB) clients are served
//! (`busy::process_events_while_blocked`), and commands without the `loading` flag
//! get `-LOADING Valkey is loading the dataset in memory` (src/busy.rs). The hidden
//! `key-load-delay` (µs per key) slows loading down for tests, as upstream.
//! A corrupt or truncated file stops the server with the file name and offset
//! in the log: it never runs with half a dataset.

pub mod crypt;
pub mod value;

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use log::{info, warn};

use ::rdb::file::{FileWriter, Loader, Record, VersionCheck};
use ::rdb::object::Limits;

use crate::object::Value;
use crate::server::Server;

/// Seconds to wait after a failed BGSAVE before a save point may try again
/// (`CONFIG_BGSAVE_RETRY_DELAY`).
pub const BGSAVE_RETRY_DELAY: i64 = 5;

/// The text of a write command refused after a failed background save
/// (`shared.bgsaveerr`).
pub const ERR_MISCONF: &str = "MISCONF Valkey is configured to save RDB snapshots, but it's \
currently unable to persist to disk. Commands that may modify the data set are disabled, \
because this instance is configured to report errors during writes if RDB snapshotting fails \
(stop-writes-on-bgsave-error option). Please check the Valkey logs for details about the RDB \
error.";

/// The kind of the forked child (upstream's `child_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildType {
    /// BGSAVE.
    Rdb,
    /// BGREWRITEAOF (src/aof.rs).
    Aof,
}

/// Persistence state of the server (upstream's rdb_* fields of `valkeyServer`).
#[derive(Debug)]
pub struct Persist {
    /// The child (BGSAVE or AOF rewrite), while it runs: one at a time.
    pub child_pid: Option<i32>,
    /// What the running child does (meaningful while `child_pid` is set).
    pub child_type: ChildType,
    /// Read end of the child info pipe.
    child_info: Option<OwnedFd>,
    /// `dirty` when the running BGSAVE forked.
    pub dirty_before_bgsave: u64,
    /// Unix time of the last successful save.
    pub lastsave: i64,
    /// Unix time of the last BGSAVE attempt.
    pub lastbgsave_try: i64,
    /// Whether the last background (or foreground) save succeeded.
    pub lastbgsave_ok: bool,
    /// BGSAVE SCHEDULE (or BGSAVE inside EXEC) asked for a save once no child runs.
    pub bgsave_scheduled: bool,
    /// Unix time the running BGSAVE started.
    pub save_time_start: i64,
    /// Seconds the last BGSAVE took, -1 before the first.
    pub save_time_last: i64,
    pub stat_rdb_saves: u64,
    /// Microseconds the last fork took.
    pub stat_fork_time_us: i64,
    pub stat_total_forks: u64,
    /// Copy-on-write bytes the last BGSAVE child reported.
    pub stat_rdb_cow_bytes: u64,
    /// What the running child last reported: copy-on-write bytes now and at peak,
    /// when (ms), keys saved so far; and the keys it has to save.
    pub current_cow_bytes: u64,
    pub current_cow_peak: u64,
    pub current_cow_updated_ms: i64,
    pub current_save_keys_processed: u64,
    pub current_save_keys_total: u64,
    pub loading: bool,
    pub last_load_keys_loaded: u64,
    pub last_load_keys_expired: u64,
    /// The aux fields repl-stream-db, repl-id and repl-offset of the last file loaded,
    /// when it had them (a replica restarting resumes its primary's stream).
    pub loaded_repl: Option<(i64, String, i64)>,
}

impl Persist {
    pub fn new(now_s: i64) -> Persist {
        Persist {
            child_pid: None,
            child_type: ChildType::Rdb,
            child_info: None,
            dirty_before_bgsave: 0,
            lastsave: now_s,
            lastbgsave_try: 0,
            lastbgsave_ok: true,
            bgsave_scheduled: false,
            save_time_start: -1,
            save_time_last: -1,
            stat_rdb_saves: 0,
            stat_fork_time_us: 0,
            stat_total_forks: 0,
            stat_rdb_cow_bytes: 0,
            current_cow_bytes: 0,
            current_cow_peak: 0,
            current_cow_updated_ms: 0,
            current_save_keys_processed: 0,
            current_save_keys_total: 0,
            loading: false,
            last_load_keys_loaded: 0,
            last_load_keys_expired: 0,
            loaded_repl: None,
        }
    }
}

/// The text of an errno, as `strerror` (without Rust's " (os error N)").
pub(crate) fn os_err(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(p) => s[..p].to_string(),
        None => s,
    }
}

fn cwd_text() -> String {
    std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether the eviction policy tracks LRU / LFU (`MAXMEMORY_FLAG_LRU` / `_LFU`).
fn policy_flags(policy: &str) -> (bool, bool) {
    (policy.ends_with("-lru"), policy.ends_with("-lfu"))
}

/// Minutes clock of the LFU data, 16 bits (`LFUGetTimeInMinutes`).
fn lfu_time_minutes(unixtime: i64) -> u32 {
    ((unixtime / 60) & 65535) as u32
}

/// The LFU counter after decay (`LFUDecrAndReturn`), from a key's 24-bit LFU data.
fn lfu_decr_and_return(data: u32, unixtime: i64, decay_time: i32) -> u8 {
    let ldt = (data >> 8) & 0xffff;
    let counter = data & 255;
    let now = lfu_time_minutes(unixtime);
    let elapsed = if now >= ldt {
        now - ldt
    } else {
        65535 - ldt + now
    };
    let periods = if decay_time > 0 {
        elapsed / decay_time as u32
    } else {
        0
    };
    counter.saturating_sub(periods) as u8
}

/// Sleeps `rdb-key-save-delay`: microseconds when positive, nanoseconds when
/// negative (upstream's `debugDelay`).
fn key_save_delay(delay: i64) {
    if delay > 0 {
        std::thread::sleep(std::time::Duration::from_micros(delay as u64));
    } else if delay < 0 {
        std::thread::sleep(std::time::Duration::from_nanos(delay.unsigned_abs()));
    }
}

/// Writes the whole dataset as an RDB file to `out` (upstream's `rdbSaveRio`):
/// header, aux fields, then each non-empty db. Returns `out` once flushed.
pub fn rdb_save_to<W: Write>(srv: &Server, out: W) -> io::Result<W> {
    rdb_save_to_flags(srv, out, false)
}

/// [`rdb_save_to`] for an AOF base file too: `aof_base` is the `aof-base` aux field
/// (upstream's `RDBFLAGS_AOF_PREAMBLE`).
pub fn rdb_save_to_flags<W: Write>(srv: &Server, out: W, aof_base: bool) -> io::Result<W> {
    rdb_save_to_version(srv, out, aof_base, ::rdb::RDB_VERSION)
}

/// [`rdb_save_to_flags`] in a given RDB version (a primary sends RDB 11 to replicas of
/// Valkey 8.x and older, see src/replication/primary.rs).
pub fn rdb_save_to_version<W: Write>(
    srv: &Server,
    out: W,
    aof_base: bool,
    version: u32,
) -> io::Result<W> {
    let cfg = &srv.config;
    let mut fw = FileWriter::new(out, version, cfg.rdbchecksum);
    fw.aux(
        b"valkey-ver",
        crate::commands::server::VALKEY_VERSION.as_bytes(),
    );
    fw.aux(b"redis-bits", b"64");
    let now_s = crate::util::mstime() / 1000;
    fw.aux(b"ctime", now_s.to_string().as_bytes());
    fw.aux(
        b"used-mem",
        crate::zmalloc::used_memory().to_string().as_bytes(),
    );
    // The replication aux fields (upstream's rdbPopulateSaveInfo): a replica loading this
    // file knows the stream's database, ID and offset the snapshot matches.
    // Not in an AOF preamble (upstream passes no save info there).
    let info = if aof_base {
        None
    } else {
        crate::replication::save_info(srv)
    };
    if let Some((stream_db, replid, offset)) = info {
        fw.aux(b"repl-stream-db", stream_db.to_string().as_bytes());
        fw.aux(b"repl-id", replid.as_bytes());
        fw.aux(b"repl-offset", offset.to_string().as_bytes());
    }
    fw.aux(b"aof-base", if aof_base { b"1" } else { b"0" });
    for lib in srv.scripting.libs.libs.values() {
        fw.function(&lib.code);
    }

    let (lru, lfu) = policy_flags(&cfg.maxmemory_policy);
    let compress = cfg.rdbcompression;
    let delay = cfg.rdb_key_save_delay;
    let decay = cfg.lfu_decay_time;
    let lruclock = crate::server::lru_clock(crate::util::mstime());
    let mut err: Option<io::Error> = None;
    let mut keys = 0u64;
    let mut last_sent = std::time::Instant::now();
    for db in &srv.dbs {
        if db.kv.is_empty() {
            continue;
        }
        fw.select_db(db.id as u64, db.kv.len() as u64, db.kv.expires_len() as u64);
        db.kv.for_each_meta(&mut |key, v, expire, meta| {
            if err.is_some() {
                return;
            }
            keys += 1;
            child_progress(keys, &mut last_sent);
            let idle = lru.then(|| crate::server::estimate_idle_time_ms(lruclock, meta) / 1000);
            let freq = lfu.then(|| lfu_decr_and_return(meta, now_s, decay));
            fw.key_prefix(value::object_type(v), key, expire, idle, freq);
            value::write_value(&mut fw.w, v, compress);
            if let Err(e) = fw.maybe_flush() {
                err = Some(e);
                return;
            }
            key_save_delay(delay);
        });
        if let Some(e) = err.take() {
            return Err(e);
        }
    }
    fw.finish()
}

/// Saves the dataset to `filename` in the working directory (upstream's
/// `rdbSave`): `temp-<pid>.rdb` created mode 0600, fsynced, renamed over
/// `filename`, then the directory fsynced. Errors are logged as upstream.
/// On success `dirty` is reset and `lastsave` updated.
pub fn rdb_save(srv: &mut Server, filename: &str) -> bool {
    srv.rdb.stat_rdb_saves += 1;
    let tmp = format!("temp-{}.rdb", std::process::id());
    let file = match OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
    {
        Ok(f) => f,
        Err(e) => {
            warn!(
                "Failed opening the temp RDB file {} (in server root dir {}) for saving: {}",
                tmp,
                cwd_text(),
                os_err(&e)
            );
            return false;
        }
    };
    // The umask may have taken bits away; never more than 0600 either way.
    let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
    let res = crypt::MaybeEnc::new(file, &crypt::rdb_identity(filename))
        .and_then(|f| rdb_save_to(srv, f))
        .and_then(|f| f.finish())
        .map_err(|e| ("rdbSaveRio", e))
        .and_then(|f| f.sync_all().map_err(|e| ("fsync", e)));
    if let Err((op, e)) = res {
        warn!(
            "Write error while saving DB to the disk({}): {}",
            op,
            os_err(&e)
        );
        let _ = std::fs::remove_file(&tmp);
        return false;
    }
    if let Err(e) = std::fs::rename(&tmp, filename) {
        warn!(
            "Error moving temp DB file {} on the final destination {} (in server root dir {}): {}",
            tmp,
            filename,
            cwd_text(),
            os_err(&e)
        );
        let _ = std::fs::remove_file(&tmp);
        return false;
    }
    if let Err(e) = fsync_dir_of(filename) {
        warn!("Failed to fsync directory while saving DB: {}", os_err(&e));
        return false;
    }
    info!("DB saved on disk");
    srv.dirty = 0;
    srv.rdb.lastsave = crate::util::mstime() / 1000;
    srv.rdb.lastbgsave_ok = true;
    true
}

/// fsyncs the directory holding `filename` (relative names: the working dir).
fn fsync_dir_of(filename: &str) -> io::Result<()> {
    let dir = match std::path::Path::new(filename).parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// Whether a child process (BGSAVE or AOF rewrite) is running (`hasActiveChildProcess`).
pub fn has_active_child(srv: &Server) -> bool {
    srv.rdb.child_pid.is_some()
}

/// Allows or forbids resizing the key tables and the collections' hash tables
/// (`updateDictResizePolicy`): no resize while a child shares our pages, so
/// copy-on-write stays small.
fn update_resize_policy(srv: &mut Server) {
    let allowed = srv.rdb.child_pid.is_none();
    crate::types::dict::RESIZE_ALLOWED.store(allowed, std::sync::atomic::Ordering::Relaxed);
    for db in srv.dbs.iter_mut() {
        db.kv.set_resize_allowed(allowed);
    }
}

/// Private_Dirty of this process in bytes (the child's copy-on-write size), from
/// `/proc/self/smaps_rollup` (or `smaps`).
fn private_dirty_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup")
        .or_else(|_| std::fs::read_to_string("/proc/self/smaps"))
        .unwrap_or_default();
    let mut kb: u64 = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Private_Dirty:") {
            let n = rest.trim().trim_end_matches("kB").trim();
            kb = kb.saturating_add(n.parse::<u64>().unwrap_or(0));
        }
    }
    kb.saturating_mul(1024)
}

/// Kinds of child info messages (`childInfoType`).
const INFO_PROGRESS: u64 = 1;
const INFO_COW_FINAL: u64 = 2;

/// The write end of the child info pipe, set in the BGSAVE child only.
static CHILD_INFO_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Sends one message (kind, keys saved, copy-on-write bytes) to the parent: 24
/// bytes, below PIPE_BUF, so the write is atomic.
fn send_child_info(kind: u64, keys: u64, cow: u64) {
    let fd = CHILD_INFO_FD.load(std::sync::atomic::Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let mut buf = [0u8; 24];
    buf[..8].copy_from_slice(&kind.to_le_bytes());
    buf[8..16].copy_from_slice(&keys.to_le_bytes());
    buf[16..].copy_from_slice(&cow.to_le_bytes());
    // SAFETY: writing our own buffer to the pipe descriptor this process owns.
    let _ = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
}

/// In the child, every 1024 keys: report progress at most once a second.
fn child_progress(keys: u64, last_sent: &mut std::time::Instant) {
    if CHILD_INFO_FD.load(std::sync::atomic::Ordering::Relaxed) < 0 || !keys.is_multiple_of(1024) {
        return;
    }
    if last_sent.elapsed() >= std::time::Duration::from_secs(1) {
        *last_sent = std::time::Instant::now();
        send_child_info(INFO_PROGRESS, keys, private_dirty_bytes());
    }
}

/// Reads what the child reported so far (non-blocking), as `receiveChildInfo`.
fn receive_child_info(srv: &mut Server) {
    let Some(fd) = &srv.rdb.child_info else {
        return;
    };
    let fd = fd.as_raw_fd();
    loop {
        let mut buf = [0u8; 24];
        // SAFETY: reading into our own buffer from a descriptor we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n != 24 {
            return;
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&buf[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let (kind, keys, cow) = (word(0), word(1), word(2));
        let p = &mut srv.rdb;
        if kind == INFO_COW_FINAL && p.child_type == ChildType::Aof {
            srv.aof.last_cow_size = cow;
        } else if kind == INFO_COW_FINAL {
            p.stat_rdb_cow_bytes = cow;
        } else {
            p.current_save_keys_processed = keys;
            p.current_cow_bytes = cow;
            p.current_cow_peak = p.current_cow_peak.max(cow);
            p.current_cow_updated_ms = crate::util::mstime();
        }
    }
}

/// Whether the running child (if any) is a BGSAVE (`child_type == CHILD_TYPE_RDB`).
pub fn rdb_child_running(srv: &Server) -> bool {
    srv.rdb.child_pid.is_some() && srv.rdb.child_type == ChildType::Rdb
}

/// Starts a background save (upstream's `rdbSaveBackground`). Returns false
/// (logged) when the fork fails or a child already runs.
pub fn bgsave_start(srv: &mut Server) -> bool {
    if has_active_child(srv) {
        return false;
    }
    srv.rdb.stat_rdb_saves += 1;
    srv.rdb.dirty_before_bgsave = srv.dirty;
    srv.rdb.lastbgsave_try = crate::util::mstime() / 1000;
    let work = |srv: &mut Server| {
        let name = srv.config.dbfilename.clone();
        rdb_save(srv, &name)
    };
    match fork_child(srv, ChildType::Rdb, c"valkey-rdb-bgsave", "RDB", &work) {
        Ok(pid) => {
            info!("Background saving started by pid {}", pid);
            srv.rdb.save_time_start = crate::util::mstime() / 1000;
            true
        }
        Err(e) => {
            srv.rdb.lastbgsave_ok = false;
            warn!("Can't save in background: fork: {}", e.desc());
            false
        }
    }
}

/// Forks a child that runs `work` on the dataset it shares copy-on-write, reports its
/// copy-on-write size (logged as "Fork CoW for <what>") and leaves with `_exit(0)` on
/// success, `_exit(1)` otherwise (upstream's `serverFork` + `exitFromChild`). In the
/// parent: the child slot, fork stats, the child info pipe, the resize policy.
pub fn fork_child(
    srv: &mut Server,
    kind: ChildType,
    title: &std::ffi::CStr,
    what: &str,
    work: &dyn Fn(&mut Server) -> bool,
) -> Result<i32, nix::errno::Errno> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    let piped = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } == 0;
    // SAFETY: on success both descriptors are fresh and owned by nobody else.
    let (rd, wr) = if piped {
        unsafe {
            (
                Some(OwnedFd::from_raw_fd(fds[0])),
                Some(OwnedFd::from_raw_fd(fds[1])),
            )
        }
    } else {
        (None, None)
    };
    let start = crate::util::ustime();
    // SAFETY: the child only writes its file (reading the dataset it shares
    // copy-on-write), writes to the pipe and leaves with `_exit`: it never
    // returns into the event loop nor runs destructors.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            run_child(srv, wr.as_ref().map(|f| f.as_raw_fd()), title, what, work);
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            srv.rdb.stat_fork_time_us = crate::util::ustime() - start;
            srv.rdb.stat_total_forks += 1;
            drop(wr);
            let pid = child.as_raw();
            srv.rdb.child_pid = Some(pid);
            srv.rdb.child_type = kind;
            srv.rdb.child_info = rd;
            srv.rdb.current_save_keys_total = srv.dbs.iter().map(|d| d.kv.len() as u64).sum();
            update_resize_policy(srv);
            Ok(pid)
        }
        Err(e) => Err(e),
    }
}

/// The child: run `work`, report the copy-on-write size, `_exit`.
fn run_child(
    srv: &mut Server,
    info_fd: Option<libc::c_int>,
    title: &std::ffi::CStr,
    what: &str,
    work: &dyn Fn(&mut Server) -> bool,
) -> ! {
    crate::config::LOG_ROLE.store(b'C', std::sync::atomic::Ordering::Relaxed);
    // SAFETY: restoring default dispositions in the single-threaded child; SIGUSR1
    // ends it with CHILD_NOERROR_RETVAL (the parent treats it as no error).
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::prctl(libc::PR_SET_NAME, title.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
    crate::ops::setup_child_signal_handlers();
    crate::ops::set_oom_score_adj(&srv.config, Some(crate::ops::OOM_BGCHILD));
    if let Some(fd) = info_fd {
        CHILD_INFO_FD.store(fd, std::sync::atomic::Ordering::Relaxed);
    }
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(srv))).unwrap_or(false);
    if ok {
        let cow = private_dirty_bytes();
        let mb = cow / (1024 * 1024);
        info!(
            "Fork CoW for {}: current {} MB, peak {} MB, average {} MB",
            what, mb, mb, mb
        );
        send_child_info(INFO_COW_FINAL, 0, cow);
    }
    // SAFETY: leaving the child without running destructors or atexit handlers.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}

/// Reaps a finished BGSAVE child (called from serverCron while one runs, as
/// `checkChildrenDone`): never blocks.
pub fn check_child_done(srv: &mut Server) {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let Some(pid) = srv.rdb.child_pid else {
        return;
    };
    let status = match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => return,
        Ok(s) => s,
        Err(nix::errno::Errno::EINTR) => return,
        Err(e) => {
            warn!(
                "waitpid() returned an error: {}. child_type: RDB, child_pid = {}",
                e.desc(),
                pid
            );
            WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 1)
        }
    };
    let (code, signal) = match status {
        // A child stopped with SIGUSR1 exits with CHILD_NOERROR_RETVAL: seen as
        // terminated by SIGUSR1, which is not an error (upstream's checkChildrenDone).
        WaitStatus::Exited(_, crate::ops::CHILD_NOERROR_RETVAL) => (1, libc::SIGUSR1),
        WaitStatus::Exited(_, code) => (code, 0),
        WaitStatus::Signaled(_, sig, _) => (0, sig as i32),
        // Stopped/continued: not finished.
        _ => return,
    };
    let now_s = crate::util::mstime() / 1000;
    if srv.rdb.child_type == ChildType::Rdb
        && crate::replication::primary::child_is_diskless(srv, pid)
    {
        // A diskless transfer to replicas: no file, no save stats (upstream's
        // backgroundSaveDoneHandlerSocket).
        srv.rdb.child_pid = None;
        srv.rdb.child_info = None;
        reset_child_state(srv);
        crate::replication::primary::bgsave_done(srv, signal == 0 && code == 0, true);
        return;
    }
    if srv.rdb.child_type == ChildType::Aof {
        if signal == 0 && code == 0 {
            receive_child_info(srv);
        }
        crate::aof::background_rewrite_done(srv, code, signal, pid);
    } else if signal == 0 && code == 0 {
        info!("Background saving terminated with success");
        srv.dirty = srv.dirty.saturating_sub(srv.rdb.dirty_before_bgsave);
        srv.rdb.lastsave = now_s;
        srv.rdb.lastbgsave_ok = true;
        receive_child_info(srv);
    } else if signal == 0 {
        warn!("Background saving error");
        srv.rdb.lastbgsave_ok = false;
    } else {
        warn!("Background saving terminated by signal {}", signal);
        let _ = std::fs::remove_file(format!("temp-{}.rdb", pid));
        // SIGUSR1 is how we stop a child without it counting as an error.
        if signal != libc::SIGUSR1 {
            srv.rdb.lastbgsave_ok = false;
        }
    }
    if srv.rdb.child_type == ChildType::Rdb {
        srv.rdb.save_time_last = now_s - srv.rdb.save_time_start;
        srv.rdb.save_time_start = -1;
    }
    let was_rdb = srv.rdb.child_type == ChildType::Rdb;
    srv.rdb.child_pid = None;
    srv.rdb.child_info = None;
    reset_child_state(srv);
    if was_rdb {
        // Replicas waiting for this snapshot get the file (upstream's
        // updateReplicasWaitingBgsave).
        crate::replication::primary::bgsave_done(srv, signal == 0 && code == 0, false);
    }
}

/// Clears what described the finished child (`resetChildState`).
fn reset_child_state(srv: &mut Server) {
    let p = &mut srv.rdb;
    p.current_cow_bytes = 0;
    p.current_cow_peak = 0;
    p.current_cow_updated_ms = 0;
    p.current_save_keys_processed = 0;
    p.current_save_keys_total = 0;
    update_resize_policy(srv);
}

/// Stops a running BGSAVE child with SIGUSR1 (`killRDBChild`): BGSAVE CANCEL,
/// FLUSHALL. Cron reaps it later (removing its temp file, without counting an error),
/// so the event loop never waits for it.
pub fn kill_child(srv: &mut Server) {
    if srv.rdb.child_type != ChildType::Rdb {
        return;
    }
    if let Some(pid) = srv.rdb.child_pid {
        let p = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGUSR1);
    }
}

/// Kills a running BGSAVE child at shutdown, waits for it (no zombie, no writer
/// left behind) and removes its temp file.
pub(crate) fn kill_child_and_wait(srv: &mut Server) {
    let Some(pid) = srv.rdb.child_pid.take() else {
        return;
    };
    let p = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGUSR1);
    let _ = nix::sys::wait::waitpid(p, None);
    if srv.rdb.child_type == ChildType::Aof {
        crate::aof::remove_temp_files(pid);
    } else {
        let _ = std::fs::remove_file(format!("temp-{}.rdb", pid));
        srv.rdb.save_time_start = -1;
    }
    srv.rdb.child_info = None;
    reset_child_state(srv);
}

/// The persistence part of serverCron: reap the child, or start a BGSAVE for a
/// save point that is due or one that was scheduled.
pub fn cron(srv: &mut Server) {
    if has_active_child(srv) {
        receive_child_info(srv);
        check_child_done(srv);
        return;
    }
    let now = srv.unixtime;
    let retry_ok = now - srv.rdb.lastbgsave_try > BGSAVE_RETRY_DELAY || srv.rdb.lastbgsave_ok;
    let due = srv.config.save.iter().copied().find(|&(secs, changes)| {
        srv.dirty >= changes.max(0) as u64 && now - srv.rdb.lastsave > secs && retry_ok
    });
    if let Some((secs, changes)) = due {
        info!("{} changes in {} seconds. Saving...", changes, secs);
        bgsave_start(srv);
        return;
    }
    if srv.rdb.bgsave_scheduled && retry_ok && bgsave_start(srv) {
        srv.rdb.bgsave_scheduled = false;
    }
}

/// Whether write commands are refused after a failed save
/// (`writeCommandsDeniedByDiskError`, RDB part).
pub fn writes_denied(srv: &Server) -> bool {
    srv.config.stop_writes_on_bgsave_error && !srv.config.save.is_empty() && !srv.rdb.lastbgsave_ok
}

/// The last work before exit (upstream's `finishShutdown`, persistence part):
/// kill a running child, then save when save points exist (or `save`) unless
/// `nosave`. Returns false when the save failed and `force` is not given.
pub fn finish_shutdown(srv: &mut Server, nosave: bool, save: bool, force: bool) -> bool {
    if rdb_child_running(srv) {
        warn!("There is a child saving an .rdb. Killing it!");
        kill_child_and_wait(srv);
    }
    if (!srv.config.save.is_empty() && !nosave) || save {
        info!("Saving the final RDB snapshot before exiting.");
        let name = srv.config.dbfilename.clone();
        if !rdb_save(srv, &name) {
            if force {
                warn!("Error trying to save the DB. Exit anyway.");
            } else {
                warn!("Error trying to save the DB, can't exit.");
                warn!(
                    "Errors trying to shut down the server. Check the logs for more information."
                );
                return false;
            }
        }
    }
    true
}

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

/// Why a load failed.
pub enum LoadError {
    /// The file could not be opened or read.
    Io(io::Error),
    /// The file is corrupt or truncated (already logged).
    Corrupt,
}

/// The version rule (`rdb-version-check`) and limits (`proto-max-bulk-len`,
/// `sanitize-dump-payload yes`) every snapshot load applies.
fn load_options(srv: &Server) -> (VersionCheck, Limits) {
    let check = match srv.config.get("rdb-version-check").as_deref() {
        Some("relaxed") => VersionCheck::Relaxed,
        _ => VersionCheck::Strict,
    };
    let lim = Limits {
        max_string: srv.config.proto_max_bulk_len.max(0) as u64,
        deep: matches!(
            srv.config.get("sanitize-dump-payload").as_deref(),
            Some("yes")
        ),
    };
    (check, lim)
}

/// Loads `filename` into the dbs (upstream's `rdbLoad`). With `merge` a key
/// already present is replaced; without it a duplicate key is corrupt data.
/// Corruption is logged with the file name and offset.
pub fn rdb_load(srv: &mut Server, filename: &str, merge: bool) -> Result<(), LoadError> {
    let raw = std::fs::read(filename).map_err(LoadError::Io)?;
    // An encrypted file is decrypted and authenticated whole before any key is loaded:
    // a wrong key or a damaged chunk never leaves half a dataset.
    let buf = if crypt::is_encrypted(&raw) {
        match crypt::decrypt_file(raw, filename).and_then(|d| {
            crypt::check_identity(&d, filename, &crypt::rdb_identity(filename), "dbfilename")
                .map(|_| d)
        }) {
            Ok(d) => {
                info!("Decrypted RDB file {} (key {})", filename, d.fingerprint);
                d.plain
            }
            Err(e) => {
                warn!("{}", e);
                return Err(LoadError::Corrupt);
            }
        }
    } else {
        raw
    };
    let (check, lim) = load_options(srv);
    crate::busy::start_loading(srv, buf.len() as u64);
    let res = load_records(srv, &buf, check, lim, merge, false);
    crate::busy::stop_loading(srv);
    match res {
        Ok((loaded, expired, empty, _)) => {
            srv.rdb.last_load_keys_loaded = loaded;
            srv.rdb.last_load_keys_expired = expired;
            if empty > 0 {
                info!(
                    "Done loading RDB, keys loaded: {}, keys expired: {}, all fields expired \
                     hashes: 0, empty keys skipped: {}.",
                    loaded, expired, empty
                );
            } else {
                info!(
                    "Done loading RDB, keys loaded: {}, keys expired: {}, all fields expired \
                     hashes: 0.",
                    loaded, expired
                );
            }
            Ok(())
        }
        Err(e) => {
            let (offset, reason) = match e {
                ::rdb::Error::Corrupt { offset, reason } => (offset, reason),
                ::rdb::Error::Io(e) => (0, os_err(&e)),
            };
            warn!("Short read or OOM loading DB. Unrecoverable error, aborting now.");
            warn!(
                "Internal error in RDB reading file {} at offset {}: {}",
                filename, offset, reason
            );
            Err(LoadError::Corrupt)
        }
    }
}

/// Loads the RDB at the start of `buf` (an AOF base file or the preamble of an old
/// AOF, upstream's `rdbLoadRio` with `RDBFLAGS_AOF_PREAMBLE`): returns the offset where
/// the RDB part ends, or the offset and reason of the corruption.
pub(crate) fn load_rdb_prefix(srv: &mut Server, buf: &[u8]) -> Result<u64, (u64, String)> {
    let check = match srv.config.get("rdb-version-check").as_deref() {
        Some("relaxed") => VersionCheck::Relaxed,
        _ => VersionCheck::Strict,
    };
    let lim = Limits {
        max_string: srv.config.proto_max_bulk_len.max(0) as u64,
        deep: false,
    };
    match load_records(srv, buf, check, lim, false, true) {
        Ok((loaded, expired, _, end)) => {
            srv.rdb.last_load_keys_loaded = loaded;
            srv.rdb.last_load_keys_expired = expired;
            info!(
                "Done loading RDB, keys loaded: {}, keys expired: {}, all fields expired \
                 hashes: 0.",
                loaded, expired
            );
            Ok(end)
        }
        Err(::rdb::Error::Corrupt { offset, reason }) => Err((offset, reason)),
        Err(::rdb::Error::Io(e)) => Err((0, os_err(&e))),
    }
}

/// Reads every record of `buf` into the dbs; returns (keys loaded, keys expired, empty
/// keys skipped, offset after the last record). An AOF base (`aof_preamble`) keeps keys
/// that expired while it sat on disk, as upstream (the commands after it may touch them).
fn load_records(
    srv: &mut Server,
    buf: &[u8],
    check: VersionCheck,
    lim: Limits,
    merge: bool,
    aof_preamble: bool,
) -> ::rdb::Result<(u64, u64, u64, u64)> {
    let mut loader = Loader::new(buf, check, lim)?;
    let now_ms = crate::util::mstime();
    let now_s = now_ms / 1000;
    let lruclock = crate::server::lru_clock(now_ms);
    let (_, lfu) = policy_flags(&srv.config.maxmemory_policy);
    let mut db = 0usize;
    let (mut loaded, mut expired, mut empty) = (0u64, 0u64, 0u64);
    let mut repl: (Option<i64>, Option<String>, Option<i64>) = (None, None, None);
    srv.rdb.loaded_repl = None;
    let mut records = 0u32;
    let mut reported = 0u64;
    while let Some(rec) = loader.next_record()? {
        records = records.wrapping_add(1);
        if records.is_multiple_of(1024) {
            crate::ops::shutdown_while_loading(srv);
        }
        // Progress, and clients served every loading-process-events-interval-bytes
        // (src/busy.rs; upstream's rdbLoadProgressCallback).
        let off = loader.offset();
        srv.rdb.last_load_keys_loaded = loaded;
        crate::busy::loading_progress(srv, off.saturating_sub(reported));
        reported = off.max(reported);
        match rec {
            Record::Aux(k, v) => {
                if &k[..] == b"used-mem" {
                    srv.busy.loading_rdb_used_mem =
                        crate::util::parse_i64_strict(&v).unwrap_or(0).max(0) as u64;
                }
                log_aux(&k, &v, now_s);
                repl_aux(&mut repl, &k, &v);
            }
            Record::SelectDb(n) => {
                if n >= srv.dbs.len() as u64 {
                    warn!(
                        "FATAL: Data file was created with a Valkey server configured to handle \
                         more than {} databases. Exiting",
                        srv.dbs.len()
                    );
                    return Err(::rdb::Error::corrupt(
                        loader.offset(),
                        format!("database {n} out of range"),
                    ));
                }
                db = n as usize;
            }
            Record::ResizeDb(size, _) => {
                // Pre-size the table (upstream's dictExpand on RESIZEDB), trusting the
                // hint only as far as the bytes left can hold keys (4 bytes at least each).
                let fits = (buf.len() as u64).saturating_sub(loader.offset()) / 4;
                srv.dbs[db].kv.expand(size.min(fits) as usize);
            }
            Record::Function(code) => {
                // Compiled at once; a bad library stops the load, as upstream.
                if let Err(e) = crate::commands::function::load_library(srv, &code, true, false) {
                    warn!("Failed loading library from the RDB: {}", e);
                    return Err(::rdb::Error::corrupt(
                        loader.offset(),
                        format!("bad function library: {e}"),
                    ));
                }
            }
            Record::Key(k) => {
                let offset = k.offset;
                let val = match value::from_object(k.value, &srv.config) {
                    Ok(v) => v,
                    // An empty collection is skipped, not fatal (as upstream).
                    Err(r) if r == value::EMPTY_KEY => {
                        if empty < 10 {
                            info!(
                                "rdbLoadObject skipping empty key: {}",
                                String::from_utf8_lossy(&k.key)
                            );
                        }
                        empty += 1;
                        continue;
                    }
                    Err(r) => return Err(::rdb::Error::corrupt(offset, r)),
                };
                // A primary drops keys that expired while the file sat on disk.
                if !aof_preamble && k.expire_ms.is_some_and(|t| t < now_ms) {
                    expired += 1;
                    continue;
                }
                let key: &[u8] = &k.key;
                let kv = &mut srv.dbs[db].kv;
                let lru = match (lfu, k.lfu_freq, k.lru_idle) {
                    (true, Some(f), _) => (lfu_time_minutes(now_s) << 8) | f as u32,
                    (false, _, Some(idle)) => {
                        let idle = idle.min(crate::server::LRU_CLOCK_MAX as u64) as i64;
                        let mut abs = lruclock as i64 - idle;
                        if abs < 0 {
                            abs += crate::server::LRU_CLOCK_MAX as i64;
                        }
                        abs as u32
                    }
                    // No FREQ under an LFU policy: a new key's counter.
                    (true, None, _) => (lfu_time_minutes(now_s) << 8) | crate::evict::LFU_INIT_VAL,
                    _ => lruclock,
                };
                let mut val = val;
                // Likewise fields whose TTL passed; a hash left without fields is not
                // loaded (upstream's "all fields expired hashes", counted as expired).
                if let Value::Hash(h) = &mut val {
                    if !aof_preamble && h.has_volatile() {
                        h.expire_fields(now_ms, usize::MAX, None);
                        if h.is_empty() {
                            expired += 1;
                            continue;
                        }
                    }
                }
                let volatile_hash = matches!(&val, Value::Hash(h) if h.has_volatile());
                // A string is embedded or not knowing whether the key has a TTL.
                val.settle_encoding(key.len(), k.expire_ms.is_some());
                // One probe: a key already there is replaced (MERGE) or is corrupt data.
                if kv.insert(key, val, false, lru) && !merge {
                    return Err(::rdb::Error::corrupt(
                        offset,
                        format!(
                            "Duplicate key '{}' found in RDB file",
                            String::from_utf8_lossy(key)
                        ),
                    ));
                }
                if let Some(t) = k.expire_ms {
                    kv.set_expire(key, t);
                }
                if volatile_hash && !srv.dbs[db].volatile_hashes.contains(key) {
                    srv.dbs[db].volatile_hashes.insert(key.to_vec());
                }
                loaded += 1;
                crate::busy::key_loaded(srv);
            }
        }
    }
    if let (db, Some(id), Some(off)) = repl {
        srv.rdb.loaded_repl = Some((db.unwrap_or(0), id, off));
    }
    Ok((loaded, expired, empty, loader.offset()))
}

/// Collects the replication aux fields (repl-stream-db, repl-id, repl-offset).
fn repl_aux(repl: &mut (Option<i64>, Option<String>, Option<i64>), k: &[u8], v: &[u8]) {
    match k {
        b"repl-stream-db" => repl.0 = crate::util::parse_i64_strict(v),
        b"repl-id" if v.len() == 40 && v.iter().all(u8::is_ascii_hexdigit) => {
            repl.1 = Some(String::from_utf8_lossy(v).into_owned())
        }
        b"repl-offset" => repl.2 = crate::util::parse_i64_strict(v),
        _ => {}
    }
}

/// Loads the RDB payload of a full sync into the dbs (the caller swapped in empty
/// ones). As on any replica, keys already expired are kept: the primary deletes them.
pub fn load_replication_payload(srv: &mut Server, buf: &[u8]) -> Result<(), String> {
    let (check, lim) = load_options(srv);
    crate::busy::start_loading(srv, buf.len() as u64);
    let res = load_records(srv, buf, check, lim, false, true);
    crate::busy::stop_loading(srv);
    match res {
        Ok((loaded, expired, _, _)) => {
            srv.rdb.last_load_keys_loaded = loaded;
            srv.rdb.last_load_keys_expired = expired;
            info!(
                "Done loading RDB, keys loaded: {}, keys expired: {}, all fields expired \
                 hashes: 0.",
                loaded, expired
            );
            Ok(())
        }
        Err(::rdb::Error::Corrupt { offset, reason }) => {
            Err(format!("corrupt RDB at offset {}: {}", offset, reason))
        }
        Err(::rdb::Error::Io(e)) => Err(os_err(&e)),
    }
}

/// Logs the aux fields upstream logs while loading.
fn log_aux(k: &[u8], v: &[u8], now_s: i64) {
    let text = String::from_utf8_lossy(v);
    match k {
        b"valkey-ver" => info!("Loading RDB produced by Valkey version {}", text),
        b"redis-ver" => info!("Loading RDB produced by Redis version {}", text),
        b"ctime" => {
            if let Some(t) = crate::util::parse_i64_strict(v) {
                let age = now_s - t;
                info!("RDB age {} seconds", age.max(0));
            }
        }
        b"used-mem" => {
            if let Some(m) = crate::util::parse_i64_strict(v) {
                info!(
                    "RDB memory usage when created {:.2} Mb",
                    m as f64 / (1024.0 * 1024.0)
                );
            }
        }
        _ => {}
    }
}

/// Loads `dbfilename` at start-up (upstream's `loadDataFromDisk`): a missing
/// file is an empty dataset; a corrupt one ends the process with status 1.
pub fn load_data_from_disk(srv: &mut Server) {
    let start = std::time::Instant::now();
    let name = srv.config.dbfilename.clone();
    match rdb_load(srv, &name, false) {
        Ok(()) => info!(
            "DB loaded from disk: {:.3} seconds",
            start.elapsed().as_secs_f64()
        ),
        Err(LoadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
        Err(LoadError::Io(e)) => {
            warn!(
                "Fatal error loading the DB, check server logs. Exiting. ({}: {})",
                name,
                os_err(&e)
            );
            std::process::exit(1);
        }
        Err(LoadError::Corrupt) => std::process::exit(1),
    }
}

// ---------------------------------------------------------------------------------------
// Commands: SAVE, BGSAVE (registered in commands/server.rs)
// ---------------------------------------------------------------------------------------

/// SAVE.
pub fn save_command(srv: &mut Server, c: &mut crate::client::Client) {
    if rdb_child_running(srv) {
        c.reply.add_error("ERR Background save already in progress");
        return;
    }
    let name = srv.config.dbfilename.clone();
    if rdb_save(srv, &name) {
        c.reply.add_ok();
    } else {
        c.reply.add_error("ERR");
    }
}

/// BGSAVE [SCHEDULE].
pub fn bgsave_command(srv: &mut Server, c: &mut crate::client::Client) {
    let (mut schedule, mut cancel) = (false, false);
    if c.argv.len() > 1 {
        if c.argv.len() == 2 && crate::util::eq_ic(&c.argv[1], "schedule") {
            schedule = true;
        } else if c.argv.len() == 2 && crate::util::eq_ic(&c.argv[1], "cancel") {
            cancel = true;
        } else {
            c.reply.add_error(crate::reply::ERR_SYNTAX);
            return;
        }
    }
    if cancel {
        if rdb_child_running(srv) {
            info!("Background saving will be aborted due to user request");
            if let Some(pid) = srv.rdb.child_pid {
                info!("Killing running RDB child: {}", pid);
            }
            kill_child(srv);
            c.reply.add_status("Background saving cancelled");
        } else if srv.rdb.bgsave_scheduled {
            srv.rdb.bgsave_scheduled = false;
            c.reply.add_status("Scheduled background saving cancelled");
        } else {
            c.reply
                .add_error("ERR Background saving is currently not in progress or scheduled");
        }
        return;
    }
    let in_exec = c.has_flag(crate::client::flags::IN_EXEC);
    if rdb_child_running(srv) {
        c.reply.add_error("ERR Background save already in progress");
    } else if has_active_child(srv) && !schedule {
        c.reply.add_error(
            "ERR Another child process is active (AOF?): can't BGSAVE right now. \
             Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.",
        );
    } else if has_active_child(srv) || in_exec {
        // Forking inside a transaction would snapshot half of it: run it later.
        if in_exec {
            info!("Background saving scheduled to run after transaction execution");
        }
        srv.rdb.bgsave_scheduled = true;
        c.reply.add_status("Background saving scheduled");
    } else if bgsave_start(srv) {
        c.reply.add_status("Background saving started");
    } else {
        c.reply.add_error("ERR");
    }
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE].
pub fn debug_reload(srv: &mut Server, c: &mut crate::client::Client) {
    let (mut merge, mut flush, mut save) = (false, true, true);
    for a in &c.argv[2..] {
        if crate::util::eq_ic(a, "merge") {
            merge = true;
        } else if crate::util::eq_ic(a, "noflush") {
            flush = false;
        } else if crate::util::eq_ic(a, "nosave") {
            save = false;
        } else {
            c.reply
                .add_error("ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.");
            return;
        }
    }
    let name = srv.config.dbfilename.clone();
    if save && !rdb_save(srv, &name) {
        c.reply.add_error("ERR");
        return;
    }
    if flush {
        crate::db::empty_data(srv, None, false);
    }
    match rdb_load(srv, &name, merge) {
        Ok(()) => {
            info!("DB reloaded by DEBUG RELOAD");
            c.reply.add_ok();
        }
        Err(LoadError::Io(_)) => {
            c.reply
                .add_error("ERR Error trying to load the RDB dump, check server logs.");
        }
        // Never keep running on half a dataset.
        Err(LoadError::Corrupt) => std::process::exit(1),
    }
}

/// The INFO persistence section.
pub fn info_persistence(srv: &Server, s: &mut String) {
    use std::fmt::Write as _;
    let p = &srv.rdb;
    let cur = if p.save_time_start >= 0 {
        srv.unixtime - p.save_time_start
    } else {
        -1
    };
    let cow_age = if p.current_cow_updated_ms > 0 {
        (crate::util::mstime() - p.current_cow_updated_ms).max(0) / 1000
    } else {
        0
    };
    let fork_perc = if p.child_pid.is_some() && p.current_save_keys_total > 0 {
        p.current_save_keys_processed as f64 * 100.0 / p.current_save_keys_total as f64
    } else {
        0.0
    };
    let _ = write!(
        s,
        "loading:{}\r\nasync_loading:0\r\ncurrent_cow_peak:{}\r\ncurrent_cow_size:{}\r\n\
         current_cow_size_age:{}\r\ncurrent_fork_perc:{:.2}\r\n\
         current_save_keys_processed:{}\r\ncurrent_save_keys_total:{}\r\n\
         rdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\n\
         rdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\n\
         rdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{}\r\nrdb_saves:{}\r\n\
         rdb_last_cow_size:{}\r\nrdb_last_load_keys_expired:{}\r\n\
         rdb_last_load_keys_loaded:{}\r\n",
        p.loading as u8,
        p.current_cow_peak,
        p.current_cow_bytes,
        cow_age,
        fork_perc,
        p.current_save_keys_processed,
        p.current_save_keys_total,
        srv.dirty,
        rdb_child_running(srv) as u8,
        p.lastsave,
        if p.lastbgsave_ok { "ok" } else { "err" },
        p.save_time_last,
        cur,
        p.stat_rdb_saves,
        p.stat_rdb_cow_bytes,
        p.last_load_keys_expired,
        p.last_load_keys_loaded,
    );
    crate::aof::info_fields(srv, s);
    s.push_str("slot_migration_fork_in_progress:0\r\n");
    crate::aof::info_enabled_fields(srv, s);
    crate::busy::info_loading_fields(srv, s);
    crypt::info_fields(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfu_decay() {
        let now = 600_000i64;
        let t = lfu_time_minutes(now);
        assert_eq!(lfu_decr_and_return((t << 8) | 10, now, 1), 10);
        // Three minutes later, decay time 1: three periods.
        assert_eq!(lfu_decr_and_return((t << 8) | 10, now + 180, 1), 7);
        assert_eq!(lfu_decr_and_return((t << 8) | 2, now + 180, 1), 0);
        assert_eq!(lfu_decr_and_return((t << 8) | 10, now + 180, 0), 10);
    }

    #[test]
    fn policies() {
        assert_eq!(policy_flags("allkeys-lru"), (true, false));
        assert_eq!(policy_flags("volatile-lfu"), (false, true));
        assert_eq!(policy_flags("noeviction"), (false, false));
    }

    #[test]
    fn misconf_text() {
        assert!(ERR_MISCONF.starts_with("MISCONF Valkey is configured"));
        assert!(ERR_MISCONF.ends_with("details about the RDB error."));
        assert!(!ERR_MISCONF.contains("  "));
    }
}
