//! The append-only file, server side (upstream's `aof.c`): feeding propagated writes,
//! writing and fsyncing them by `appendfsync`, the multi-part directory (manifest, base,
//! incrementals), loading at start-up, BGREWRITEAOF by a forked child. The file
//! formats are the `aof` crate.
//!
//! # Writing
//! [`feed`] appends each propagated command (RESP, a SELECT when the db changes, a
//! `#TS:` annotation when the second changes with `aof-timestamp-enabled`) to `buf`.
//! [`before_sleep`] writes `buf` with write(2) before any reply of the loop turn leaves
//! (so an acknowledged write is in the file), then fsyncs by policy: `always` right
//! there (one fdatasync for all the writes of the turn), `everysec` by the background
//! thread of [`Bio`] at most once a second (the loop never waits for it; a write is
//! postponed up to 2 s while an fsync is still running, as upstream), `no` never.
//!
//! # Files
//! All in `appenddirname` (0700), files 0600: the manifest `<appendfilename>.manifest`
//! (always replaced by temp file + fsync + rename + directory fsync), one base
//! (`.base.rdb` with `aof-use-rdb-preamble yes`), the incrementals `.incr.aof`.
//!
//! # Rewrite
//! [`rewrite_background`] opens the next incremental file and persists a manifest
//! naming it first, then forks (through `rdb::fork_child`, sharing the one child slot
//! with BGSAVE) a child writing the new base to `temp-rewriteaof-bg-<pid>.aof`. When
//! cron reaps it, [`background_rewrite_done`] renames the base into the directory,
//! marks the old base and incrementals as history, persists the manifest, and only then
//! deletes the history files. A failure leaves the previous manifest in force.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use log::{info, warn};

use ::aof::manifest::{self, AofInfo, Manifest};

use crate::server::Server;

/// `aof_state`: off, on, or waiting for the first rewrite to finish after
/// `CONFIG SET appendonly yes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AofState {
    #[default]
    Off,
    On,
    WaitRewrite,
}

/// `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    Always,
    #[default]
    Everysec,
    No,
}

/// The AOF state of the server.
#[derive(Debug, Default)]
pub struct Aof {
    pub state: AofState,
    /// The db the last fed command applied to (a SELECT is written when it changes).
    pub selected_db: Option<usize>,
    /// Commands fed since the last write to the file (`aof_buf`).
    pub buf: Vec<u8>,
    /// The incremental file being appended to (`aof_fd`).
    fd: Option<Arc<File>>,
    /// The manifest in force (as on disk).
    pub manifest: Manifest,
    /// `aof_current_size`, `aof_rewrite_base_size`.
    pub current_size: u64,
    pub rewrite_base_size: u64,
    /// Size of the current incremental file, and how much of it is known fsynced.
    last_incr_size: u64,
    last_incr_fsync_offset: u64,
    /// ms time of the last fsync (or of handing one to the background thread).
    last_fsync_ms: i64,
    /// When a write started being postponed because an fsync was still running.
    flush_postponed_start: i64,
    /// `aof_delayed_fsync`.
    pub delayed_fsync: u64,
    /// The last write failed (with this errno text): writes are refused (MISCONF).
    last_write_err: Option<String>,
    last_write_error_log: i64,
    last_write_retry_ms: i64,
    pub rewrite_scheduled: bool,
    /// Unix time the running rewrite started, or -1.
    pub rewrite_time_start: i64,
    pub rewrite_time_last: i64,
    pub lastbgrewrite_ok: bool,
    pub stat_rewrites: u64,
    pub consecutive_failures: u64,
    pub last_cow_size: u64,
    /// The second of the last `#TS:` annotation.
    cur_timestamp: i64,
    /// Rewrite limiting after repeated failures (`aofRewriteLimited`).
    limit_next_delay_min: i64,
    limit_next_time: i64,
    /// Cached configuration (refreshed by [`apply_config`]).
    pub fsync: FsyncPolicy,
    timestamp_enabled: bool,
    no_fsync_on_rewrite: bool,
    rewrite_incremental_fsync: bool,
    use_rdb_preamble: bool,
    load_truncated: bool,
    rewrite_perc: i64,
    rewrite_min_size: u64,
    disable_auto_gc: bool,
    bio: Bio,
    /// Encryption of the open incremental file (issue 14): its sealer, and how many
    /// bytes at the start of `buf` are already sealed chunks (sealed at write time, kept
    /// as ciphertext across a short write so no chunk index is ever reused).
    enc: Option<crate::rdb::crypt::Sealer>,
    enc_upto: usize,
    /// The identity the running rewrite's base is encrypted as (its name and seq
    /// predicted at fork; the base is renamed to exactly that), when a key was set.
    /// With the `aof-use-rdb-preamble` value at fork, which its name follows.
    rewrite_base_id: Option<(crate::rdb::crypt::Identity, bool)>,
}

/// Whether writes are fed to the AOF.
#[inline]
pub fn enabled(srv: &Server) -> bool {
    srv.aof.state != AofState::Off
}

// ---------------------------------------------------------------------------------------
// The background thread (upstream's bio.c, AOF jobs)
// ---------------------------------------------------------------------------------------

enum Job {
    /// fdatasync the file (`BIO_AOF_FSYNC`).
    Fsync(Arc<File>),
    /// fsync then close a file replaced by a new incremental (`BIO_CLOSE_AOF`).
    Close(Arc<File>),
    /// Unlink a file (`bg_unlink` of history and temp files).
    Unlink(PathBuf),
}

/// One worker thread for AOF fsyncs, closes and unlinks, fed by a channel: the event
/// loop only ever sends.
#[derive(Default)]
struct Bio {
    tx: Option<mpsc::Sender<Job>>,
    /// Fsync jobs submitted and not finished (`bioPendingJobsOfType(BIO_AOF_FSYNC)`).
    pending_fsync: Arc<AtomicU64>,
    /// The last background fsync failed (`aof_bio_fsync_status`), with its errno text.
    fsync_failed: Arc<AtomicBool>,
    fsync_err: Arc<Mutex<String>>,
}

impl std::fmt::Debug for Bio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bio")
            .field("pending_fsync", &self.pending_fsync.load(Ordering::Relaxed))
            .finish()
    }
}

impl Bio {
    fn submit(&mut self, job: Job) {
        if self.tx.is_none() {
            let (tx, rx) = mpsc::channel::<Job>();
            let pending = self.pending_fsync.clone();
            let failed = self.fsync_failed.clone();
            let err = self.fsync_err.clone();
            let spawned = std::thread::Builder::new()
                .name("bio_aof".into())
                .spawn(move || bio_worker(rx, pending, failed, err));
            if spawned.is_err() {
                // No thread: do the job here rather than lose it.
                run_job_inline(job, &self.fsync_failed, &self.fsync_err);
                return;
            }
            self.tx = Some(tx);
        }
        let is_fsync = matches!(job, Job::Fsync(_));
        if is_fsync {
            self.pending_fsync.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(tx) = &self.tx {
            if let Err(mpsc::SendError(job)) = tx.send(job) {
                if is_fsync {
                    self.pending_fsync.fetch_sub(1, Ordering::SeqCst);
                }
                run_job_inline(job, &self.fsync_failed, &self.fsync_err);
            }
        }
    }

    fn pending(&self) -> u64 {
        self.pending_fsync.load(Ordering::SeqCst)
    }
}

fn fsync_result(r: io::Result<()>, failed: &AtomicBool, err: &Mutex<String>) {
    match r {
        Err(e) if !matches!(e.raw_os_error(), Some(libc::EBADF) | Some(libc::EINVAL)) => {
            let text = crate::rdb::os_err(&e);
            warn!("Fail to fsync the AOF file: {}", text);
            if let Ok(mut g) = err.lock() {
                *g = text;
            }
            failed.store(true, Ordering::SeqCst);
        }
        _ => failed.store(false, Ordering::SeqCst),
    }
}

fn run_job_inline(job: Job, failed: &AtomicBool, err: &Mutex<String>) {
    match job {
        Job::Fsync(f) | Job::Close(f) => fsync_result(f.sync_data(), failed, err),
        Job::Unlink(p) => {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn bio_worker(
    rx: mpsc::Receiver<Job>,
    pending: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    err: Arc<Mutex<String>>,
) {
    while let Ok(job) = rx.recv() {
        let is_fsync = matches!(job, Job::Fsync(_));
        run_job_inline(job, &failed, &err);
        if is_fsync {
            pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// Start-up initialisation, before loading: the configuration, `appendonly`.
pub fn init(srv: &mut Server) {
    apply_config(srv);
    let a = &mut srv.aof;
    a.rewrite_time_start = -1;
    a.rewrite_time_last = -1;
    a.lastbgrewrite_ok = true;
    a.state = if srv.config.appendonly {
        AofState::On
    } else {
        AofState::Off
    };
}

/// Copies the AOF directives into the cached fields (at start-up and after CONFIG SET).
pub fn apply_config(srv: &mut Server) {
    let cfg = &srv.config;
    let yes = |n: &str| cfg.get(n).as_deref() == Some("yes");
    let num = |n: &str| cfg.get(n).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let a = &mut srv.aof;
    a.fsync = match cfg.appendfsync.as_str() {
        "always" => FsyncPolicy::Always,
        "no" => FsyncPolicy::No,
        _ => FsyncPolicy::Everysec,
    };
    a.timestamp_enabled = yes("aof-timestamp-enabled");
    a.no_fsync_on_rewrite = yes("no-appendfsync-on-rewrite");
    a.use_rdb_preamble = yes("aof-use-rdb-preamble");
    a.rewrite_incremental_fsync = yes("aof-rewrite-incremental-fsync");
    a.load_truncated = yes("aof-load-truncated");
    a.disable_auto_gc = yes("aof-disable-auto-gc");
    a.rewrite_perc = num("auto-aof-rewrite-percentage");
    a.rewrite_min_size = num("auto-aof-rewrite-min-size").max(0) as u64;
}

fn dir(srv: &Server) -> PathBuf {
    PathBuf::from(&srv.config.appenddirname)
}

fn path_in_dir(srv: &Server, name: &str) -> PathBuf {
    dir(srv).join(name)
}

// ---------------------------------------------------------------------------------------
// Feeding
// ---------------------------------------------------------------------------------------

/// Appends a propagated command to the AOF buffer in RESP, preceded by a `#TS:`
/// annotation (with `aof-timestamp-enabled`, when the second changed) and by a SELECT
/// when the db changes (upstream's `feedAppendOnlyFile`). While waiting for the first
/// rewrite, commands are kept only once the rewrite child runs (the ones before are in
/// the base it writes).
pub fn feed(srv: &mut Server, dbid: usize, argv: &[Vec<u8>]) {
    feed_in(srv, Some(dbid), argv);
}

/// [`feed`] of a command that applies to no database (MULTI, EXEC: upstream's dbid -1):
/// no SELECT is written before it.
pub fn feed_no_db(srv: &mut Server, argv: &[Vec<u8>]) {
    feed_in(srv, None, argv);
}

fn feed_in(srv: &mut Server, dbid: Option<usize>, argv: &[Vec<u8>]) {
    let keep = srv.aof.state == AofState::On
        || (srv.aof.state == AofState::WaitRewrite
            && crate::rdb::has_active_child(srv)
            && srv.rdb.child_type == crate::rdb::ChildType::Aof);
    let unixtime = srv.unixtime;
    let aof = &mut srv.aof;
    if aof.timestamp_enabled && aof.cur_timestamp < unixtime {
        aof.cur_timestamp = unixtime;
        if keep {
            aof.buf
                .extend_from_slice(format!("#TS:{}\r\n", unixtime).as_bytes());
        }
    }
    if let Some(dbid) = dbid.filter(|&d| aof.selected_db != Some(d)) {
        aof.selected_db = Some(dbid);
        if keep {
            let db = dbid.to_string();
            append_command(&mut aof.buf, &[b"SELECT", db.as_bytes()]);
        }
    }
    if keep {
        append_command(&mut aof.buf, argv);
    }
}

/// `*<n>\r\n` then `$<len>\r\n<arg>\r\n` per argument.
pub fn append_command<A: AsRef<[u8]>>(buf: &mut Vec<u8>, argv: &[A]) {
    let mut num = crate::reply::itoa_buf();
    buf.push(b'*');
    buf.extend_from_slice(crate::reply::fmt_i64(&mut num, argv.len() as i64));
    buf.extend_from_slice(b"\r\n");
    for a in argv {
        let a = a.as_ref();
        buf.push(b'$');
        buf.extend_from_slice(crate::reply::fmt_i64(&mut num, a.len() as i64));
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
}

// ---------------------------------------------------------------------------------------
// Writing and fsync
// ---------------------------------------------------------------------------------------

/// write(2) the whole buffer, retrying short writes and EINTR (`aofWrite`): returns the
/// bytes written and the error that stopped it, if any.
fn write_all(f: &File, mut buf: &[u8]) -> (usize, Option<io::Error>) {
    let mut total = 0usize;
    let mut w = f;
    while !buf.is_empty() {
        match w.write(buf) {
            Ok(0) => return (total, Some(io::Error::from_raw_os_error(libc::ENOSPC))),
            Ok(n) => {
                total += n;
                buf = &buf[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return (total, Some(e)),
        }
    }
    (total, None)
}

/// With an encrypted incremental file, seals what `buf` holds past `enc_upto` as one
/// batch (chunks of at most 64 KiB, the last flagged commit) in place of the plaintext,
/// in `buf` itself (no second buffer).
fn seal_pending(a: &mut Aof) {
    let Some(sealer) = a.enc.as_mut() else {
        return;
    };
    if a.enc_upto >= a.buf.len() {
        return;
    }
    sealer.seal_batch_in_place(&mut a.buf, a.enc_upto);
    a.enc_upto = a.buf.len();
}

/// The identity of the incremental file the manifest `am` names last: its seq and name.
fn incr_identity(am: &Manifest) -> Option<crate::rdb::crypt::Identity> {
    am.incrs
        .last()
        .map(|i| crate::rdb::crypt::Identity::aof(false, i.seq, &i.name))
}

/// Starts a new incremental file `f`, named in the manifest as `id` says: with
/// encryption on, its header (binding it to `id`) is written now and a sealer kept for
/// its batches. Returns the bytes written.
fn start_incr_file(a: &mut Aof, f: &File, id: &crate::rdb::crypt::Identity) -> io::Result<u64> {
    a.enc = None;
    a.enc_upto = 0;
    let Some(key) = crate::rdb::crypt::current() else {
        return Ok(0);
    };
    let (sealer, header) = crate::rdb::crypt::Sealer::new(&key, id)?;
    let mut w = f;
    w.write_all(&header)?;
    // Commands fed before the switch belong to the new file: they are sealed at write.
    a.enc = Some(sealer);
    Ok(header.len() as u64)
}

/// Whether an fsync handed to the background thread is still running.
fn fsync_in_progress(srv: &Server) -> bool {
    srv.aof.bio.pending() != 0
}

/// Writes the buffer to the incremental file and fsyncs by policy (upstream's
/// `flushAppendOnlyFile`). With `everysec` and no `force`, a write is postponed (up
/// to 2 s) while a background fsync still runs.
pub fn flush(srv: &mut Server, force: bool) {
    let Some(fd) = srv.aof.fd.clone() else {
        return;
    };
    let now = srv.mstime;
    let mut sync_in_progress = false;
    if srv.aof.buf.is_empty() {
        let a = &srv.aof;
        let unsynced = a.last_incr_fsync_offset != a.last_incr_size;
        let go = match a.fsync {
            FsyncPolicy::Everysec => {
                unsynced && now - a.last_fsync_ms >= 1000 && !fsync_in_progress(srv)
            }
            FsyncPolicy::Always => unsynced,
            FsyncPolicy::No => false,
        };
        if !go {
            return;
        }
    } else {
        if srv.aof.fsync == FsyncPolicy::Everysec {
            sync_in_progress = fsync_in_progress(srv);
        }
        if srv.aof.fsync == FsyncPolicy::Everysec && !force && sync_in_progress {
            let a = &mut srv.aof;
            if a.flush_postponed_start == 0 {
                a.flush_postponed_start = now;
                return;
            } else if now - a.flush_postponed_start < 2000 {
                return;
            }
            a.delayed_fsync += 1;
            info!(
                "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF \
                 buffer without waiting for fsync to complete, this may slow down the server."
            );
        }
        seal_pending(&mut srv.aof);
        let (written, err) = write_all(&fd, &srv.aof.buf);
        let unixtime = srv.unixtime;
        let a = &mut srv.aof;
        a.flush_postponed_start = 0;
        if written != a.buf.len() {
            let can_log = unixtime - a.last_write_error_log > 30;
            if can_log {
                a.last_write_error_log = unixtime;
            }
            let mut kept = written;
            let errtext;
            if written == 0 {
                let e = err.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EIO));
                errtext = crate::rdb::os_err(&e);
                if can_log {
                    warn!("Error writing to the AOF file: {}", errtext);
                }
            } else {
                if can_log {
                    warn!(
                        "Short write while writing to the AOF file: (nwritten={}, expected={})",
                        written,
                        a.buf.len()
                    );
                }
                match fd.set_len(a.last_incr_size) {
                    Ok(()) => kept = 0,
                    // A torn chunk can't be completed by later writes of other data,
                    // but the same sealed bytes are written again from where they
                    // stopped (`kept` leaves them in `buf`): the file stays valid.
                    Err(e) => {
                        if can_log {
                            warn!(
                                "Could not remove short write from the append-only file. The \
                                 server may refuse to load the AOF the next time it starts.  \
                                 ftruncate: {}",
                                crate::rdb::os_err(&e)
                            );
                        }
                    }
                }
                errtext = crate::rdb::os_err(&io::Error::from_raw_os_error(libc::ENOSPC));
            }
            if a.fsync == FsyncPolicy::Always {
                warn!(
                    "Can't recover from AOF write error when the AOF fsync policy is 'always'. \
                     Exiting..."
                );
                std::process::exit(1);
            }
            a.last_write_err = Some(errtext);
            if kept > 0 {
                a.current_size += kept as u64;
                a.last_incr_size += kept as u64;
                a.buf.drain(..kept);
                a.enc_upto = a.enc_upto.saturating_sub(kept);
            }
            return;
        }
        if a.last_write_err.take().is_some() {
            info!("AOF write error looks solved. The server can write again.");
        }
        a.current_size += written as u64;
        a.last_incr_size += written as u64;
        a.enc_upto = 0;
        if a.buf.capacity() < 4000 {
            a.buf.clear();
        } else {
            a.buf = Vec::new();
        }
    }
    // try_fsync:
    if srv.aof.no_fsync_on_rewrite && crate::rdb::has_active_child(srv) {
        return;
    }
    match srv.aof.fsync {
        FsyncPolicy::Always => {
            if let Err(e) = fd.sync_data() {
                warn!(
                    "Can't persist AOF for fsync error when the AOF fsync policy is 'always': \
                     {}. Exiting...",
                    crate::rdb::os_err(&e)
                );
                std::process::exit(1);
            }
            let a = &mut srv.aof;
            a.last_incr_fsync_offset = a.last_incr_size;
            a.last_fsync_ms = now;
        }
        FsyncPolicy::Everysec if now - srv.aof.last_fsync_ms >= 1000 => {
            if !sync_in_progress {
                srv.aof.bio.submit(Job::Fsync(fd));
                srv.aof.last_incr_fsync_offset = srv.aof.last_incr_size;
            }
            srv.aof.last_fsync_ms = now;
        }
        _ => {}
    }
}

/// The AOF part of beforeSleep: runs before client replies are written.
pub fn before_sleep(srv: &mut Server) {
    if srv.aof.state != AofState::Off {
        flush(srv, false);
    }
}

/// The write error refusing write commands (`-MISCONF Errors writing to the AOF
/// file: ...`), when the last write or background fsync failed.
pub fn write_error(srv: &Server) -> Option<String> {
    if srv.aof.state == AofState::Off {
        return None;
    }
    let err = if let Some(e) = &srv.aof.last_write_err {
        e.clone()
    } else if srv.aof.bio.fsync_failed.load(Ordering::SeqCst) {
        srv.aof
            .bio
            .fsync_err
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    } else {
        return None;
    };
    Some(format!("MISCONF Errors writing to the AOF file: {}", err))
}

// ---------------------------------------------------------------------------------------
// The directory and the manifest
// ---------------------------------------------------------------------------------------

/// Creates `appenddirname` (0700) if missing (`dirCreateIfMissing`); a failure is
/// logged here, the caller decides what it means.
fn dir_create_if_missing(srv: &Server) -> io::Result<()> {
    let d = dir(srv);
    let res = match std::fs::DirBuilder::new().mode(0o700).create(&d) {
        Ok(()) => std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = &res {
        warn!(
            "Can't open or create append-only dir {}: {}",
            srv.config.appenddirname,
            crate::rdb::os_err(e)
        );
    }
    res
}

/// Opens a file for writing, created 0600 whatever the umask.
fn open_0600(path: &Path, append: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).mode(0o600);
    if append {
        o.append(true);
    } else {
        o.truncate(true);
    }
    let f = o.open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Writes the manifest: temp file, fsync, rename, directory fsync
/// (`writeAofManifestFile`). Errors are logged.
fn persist_manifest(srv: &Server, am: &Manifest) -> bool {
    let name = manifest::manifest_name(&srv.config.appendfilename);
    let tmp_name = manifest::temp_manifest_name(&srv.config.appendfilename);
    let path = path_in_dir(srv, &name);
    let tmp = path_in_dir(srv, &tmp_name);
    let mut f = match open_0600(&tmp, false) {
        Ok(f) => f,
        Err(e) => {
            warn!(
                "Can't open the AOF manifest file {}: {}",
                tmp_name,
                crate::rdb::os_err(&e)
            );
            return false;
        }
    };
    if let Err(e) = f.write_all(&am.to_bytes()) {
        warn!(
            "Error trying to write the temporary AOF manifest file {}: {}",
            tmp_name,
            crate::rdb::os_err(&e)
        );
        return false;
    }
    if let Err(e) = f.sync_data() {
        warn!(
            "Fail to fsync the temp AOF file {}: {}.",
            tmp_name,
            crate::rdb::os_err(&e)
        );
        return false;
    }
    drop(f);
    if let Err(e) = std::fs::rename(&tmp, &path) {
        warn!(
            "Error trying to rename the temporary AOF manifest file {} into {}: {}",
            tmp_name,
            name,
            crate::rdb::os_err(&e)
        );
        return false;
    }
    if let Err(e) = File::open(dir(srv)).and_then(|d| d.sync_all()) {
        warn!(
            "Fail to fsync AOF directory {}: {}.",
            path.display(),
            crate::rdb::os_err(&e)
        );
        return false;
    }
    true
}

/// Deletes the history files in the background and persists the manifest without
/// them (`aofDelHistoryFiles`).
pub fn del_history_files(srv: &mut Server) {
    if srv.aof.disable_auto_gc || srv.aof.manifest.history.is_empty() {
        return;
    }
    let hist = srv.aof.manifest.take_history();
    for h in hist {
        info!("Removing the history file {} in the background", h.name);
        let p = path_in_dir(srv, &h.name);
        srv.aof.bio.submit(Job::Unlink(p));
    }
    let am = srv.aof.manifest.clone();
    persist_manifest(srv, &am);
}

/// Removes the temp files of a rewrite child (`aofRemoveTempFile`).
pub fn remove_temp_files(pid: i32) {
    let pid = pid as u32;
    let _ = std::fs::remove_file(manifest::temp_rewrite_bg_name(pid));
    let _ = std::fs::remove_file(manifest::temp_rewrite_name(pid));
}

fn file_size(srv: &Server, name: &str) -> io::Result<u64> {
    std::fs::metadata(path_in_dir(srv, name)).map(|m| m.len())
}

/// Reads the manifest at start-up (`aofLoadManifestFromDisk`): none is fine (a fresh
/// start or an upgrade), an unreadable or invalid one ends the process.
pub fn load_manifest_from_disk(srv: &mut Server) {
    srv.aof.manifest = Manifest::default();
    if !dir(srv).is_dir() {
        return;
    }
    let path = path_in_dir(srv, &manifest::manifest_name(&srv.config.appendfilename));
    if !path.exists() {
        return;
    }
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) => {
            warn!(
                "Fatal error: can't open the AOF manifest file {} for reading: {}",
                path.display(),
                crate::rdb::os_err(&e)
            );
            std::process::exit(1);
        }
    };
    match Manifest::parse_detailed(&text) {
        Ok(m) => srv.aof.manifest = m,
        Err(e) => {
            warn!("\n*** FATAL AOF MANIFEST FILE ERROR ***\n");
            if let Some((n, line)) = &e.line {
                warn!("Reading the manifest file, at line {}\n", n);
                warn!(">>> '{}'\n", String::from_utf8_lossy(line));
            }
            warn!("{}\n", e.msg);
            std::process::exit(1);
        }
    }
}

/// After loading at start-up with `appendonly yes` (`aofOpenIfNeededOnServerStart`):
/// create a base when there are no AOF files, open (or create) the last incremental
/// for appending, persist the manifest. Any failure ends the process.
pub fn open_on_server_start(srv: &mut Server) {
    if srv.aof.state != AofState::On {
        return;
    }
    if dir_create_if_missing(srv).is_err() {
        std::process::exit(1);
    }
    let filename = srv.config.appendfilename.clone();
    let had_incr = !srv.aof.manifest.incrs.is_empty();
    let mut am = srv.aof.manifest.clone();
    let mut dirty = false;
    if am.base.is_none() && !had_incr {
        let preamble = srv.aof.use_rdb_preamble;
        let base = am.new_base_mark_prev_history(&filename, preamble);
        let path = path_in_dir(srv, &base);
        let id = crate::rdb::crypt::Identity::aof(true, am.curr_base_seq, &base);
        if !rewrite_append_only_file(srv, &path, &id) {
            std::process::exit(1);
        }
        info!("Creating AOF base file {} on server start", base);
        dirty = true;
    }
    // An incremental file is appended to only when it is empty, or plaintext with
    // encryption off. An encrypted file is never resumed: its next chunk indexes may
    // already have been used for a torn batch (or a batch cut away), and a chunk index
    // sealed twice with different data would reuse a GCM nonce (docs/encryption.md).
    let appendable = |srv: &Server, name: &str| -> bool {
        let path = path_in_dir(srv, name);
        let mut head = [0u8; 8];
        let n = File::open(&path)
            .and_then(|mut f| f.read(&mut head))
            .unwrap_or(0);
        if n == 0 {
            return true;
        }
        crate::rdb::crypt::current().is_none() && !::rdb::crypt::is_encrypted(&head[..n])
    };
    let (name, fresh) = match am.incrs.last() {
        Some(i) if appendable(srv, &i.name) => (i.name.clone(), false),
        Some(i) => {
            info!(
                "AOF incr file {} is encrypted or encryption is on: starting a new incr file",
                i.name
            );
            dirty = true;
            (am.new_incr(&filename), true)
        }
        None => {
            dirty = true;
            (am.new_incr(&filename), true)
        }
    };
    // A new encrypted file starts empty: a leftover under its name (not in the manifest,
    // e.g. after the manifest was restored from a backup) is dropped, not appended to.
    let opened = open_0600(&path_in_dir(srv, &name), true).and_then(|f| {
        if fresh && crate::rdb::crypt::current().is_some() {
            f.set_len(0)?;
        }
        Ok(f)
    });
    let f = match opened {
        Ok(f) => f,
        Err(e) => {
            warn!(
                "Can't open the append-only file {}: {}",
                name,
                crate::rdb::os_err(&e)
            );
            std::process::exit(1);
        }
    };
    if dirty && !persist_manifest(srv, &am) {
        std::process::exit(1);
    }
    srv.aof.manifest = am;
    let mut size = file_size(srv, &name).unwrap_or(0);
    if size == 0 {
        let id = incr_identity(&srv.aof.manifest)
            .unwrap_or_else(|| crate::rdb::crypt::Identity::aof(false, 0, &name));
        match start_incr_file(&mut srv.aof, &f, &id) {
            Ok(n) => size = n,
            Err(e) => {
                warn!(
                    "Can't write the encryption header of the append-only file {}: {}",
                    name,
                    crate::rdb::os_err(&e)
                );
                std::process::exit(1);
            }
        }
    }
    let a = &mut srv.aof;
    a.fd = Some(Arc::new(f));
    a.last_incr_size = size;
    a.last_incr_fsync_offset = size;
    if had_incr {
        info!("Opening AOF incr file {} on server start", name);
    } else {
        info!("Creating AOF incr file {} on server start", name);
    }
}

// ---------------------------------------------------------------------------------------
// Rewrite
// ---------------------------------------------------------------------------------------

/// `aof-rewrite-incremental-fsync`: fsync every 4 MB written (`REDIS_AUTOSYNC_BYTES`),
/// so the final fsync does not flush a huge file at once.
const AUTOSYNC_BYTES: usize = 4 * 1024 * 1024;

/// A file that fdatasyncs itself every `every` bytes written (0: never), as rio's
/// auto-sync.
struct AutoSync {
    f: File,
    pending: usize,
    every: usize,
}

impl Write for AutoSync {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.f.write(buf)?;
        if self.every > 0 {
            self.pending += n;
            if self.pending >= self.every {
                self.pending = 0;
                self.f.sync_data()?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.f.flush()
    }
}

/// Writes the whole dataset as a base file to `path` (upstream's
/// `rewriteAppendOnlyFile`): `temp-rewriteaof-<pid>.aof` in the working directory,
/// fsynced, renamed to `path`. With `aof-use-rdb-preamble yes` it is an RDB with
/// `aof-base` 1; otherwise commands. Encrypted (when a key is set) as the base `id`:
/// the name and seq the manifest will give it.
fn rewrite_append_only_file(srv: &Server, path: &Path, id: &crate::rdb::crypt::Identity) -> bool {
    let tmp = manifest::temp_rewrite_name(std::process::id());
    let file = match open_0600(Path::new(&tmp), false) {
        Ok(f) => f,
        Err(e) => {
            warn!(
                "Opening the temp file for AOF rewrite in rewriteAppendOnlyFile(): {}",
                crate::rdb::os_err(&e)
            );
            return false;
        }
    };
    let file = AutoSync {
        f: file,
        pending: 0,
        every: if srv.aof.rewrite_incremental_fsync {
            AUTOSYNC_BYTES
        } else {
            0
        },
    };
    let res = crate::rdb::crypt::MaybeEnc::new(file, id)
        .and_then(|file| {
            if srv.aof.use_rdb_preamble {
                crate::rdb::rdb_save_to_flags(srv, file, true)
            } else {
                rewrite_commands(srv, file)
            }
        })
        .and_then(|f| f.finish())
        .and_then(|f| f.f.sync_all());
    if let Err(e) = res {
        warn!(
            "Write error writing append only file on disk: {}",
            crate::rdb::os_err(&e)
        );
        let _ = std::fs::remove_file(&tmp);
        return false;
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        warn!(
            "Error moving temp append only file on the final destination: {}",
            crate::rdb::os_err(&e)
        );
        let _ = std::fs::remove_file(&tmp);
        return false;
    }
    true
}

/// Receives one item (its bulk strings) of a variadic rewrite command.
type EmitItem<'a> = dyn FnMut(&[&[u8]]) + 'a;

/// Items per variadic command of a rewrite (`AOF_REWRITE_ITEMS_PER_CMD`).
const ITEMS_PER_CMD: usize = 64;

fn put_count(out: &mut Vec<u8>, n: usize) {
    let mut b = crate::reply::itoa_buf();
    out.push(b'*');
    out.extend_from_slice(crate::reply::fmt_i64(&mut b, n as i64));
    out.extend_from_slice(b"\r\n");
}

fn put_bulk(out: &mut Vec<u8>, s: &[u8]) {
    let mut b = crate::reply::itoa_buf();
    out.push(b'$');
    out.extend_from_slice(crate::reply::fmt_i64(&mut b, s.len() as i64));
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}

fn put_bulk_i64(out: &mut Vec<u8>, n: i64) {
    let mut b = crate::reply::itoa_buf();
    put_bulk(out, crate::reply::fmt_i64(&mut b, n));
}

fn put_id(out: &mut Vec<u8>, id: crate::types::stream::StreamId) {
    put_bulk(out, format!("{}-{}", id.ms, id.seq).as_bytes());
}

/// Emits `items` as commands `<cmd> <key> item...` of at most [`ITEMS_PER_CMD`] items
/// (`width` bulk strings each), as upstream's rewrite{List,Set,SortedSet,Hash}Object.
fn put_variadic(
    out: &mut Vec<u8>,
    cmd: &[u8],
    key: &[u8],
    total: usize,
    width: usize,
    each: &mut dyn FnMut(&mut EmitItem<'_>),
) {
    let mut left = total;
    let mut in_cmd = 0usize;
    each(&mut |item: &[&[u8]]| {
        if in_cmd == 0 {
            let n = left.min(ITEMS_PER_CMD);
            put_count(out, 2 + n * width);
            put_bulk(out, cmd);
            put_bulk(out, key);
        }
        for part in item {
            put_bulk(out, part);
        }
        in_cmd += 1;
        if in_cmd == ITEMS_PER_CMD {
            in_cmd = 0;
        }
        left = left.saturating_sub(1);
    });
}

/// The commands rebuilding one key (upstream's rewrite*Object).
fn rewrite_key(out: &mut Vec<u8>, key: &[u8], v: crate::object::ValueRef<'_>) {
    use crate::object::ValueRef;
    let mut num = crate::reply::itoa_buf();
    match v {
        ValueRef::Int(n) => {
            put_count(out, 3);
            put_bulk(out, b"SET");
            put_bulk(out, key);
            put_bulk_i64(out, n);
        }
        ValueRef::Str(s) => {
            put_count(out, 3);
            put_bulk(out, b"SET");
            put_bulk(out, key);
            put_bulk(out, s);
        }
        ValueRef::List(l) => {
            put_variadic(out, b"RPUSH", key, l.len(), 1, &mut |emit| {
                if l.is_empty() {
                    return;
                }
                l.for_each_from(0, false, |e| {
                    match e {
                        crate::types::list::Elem::Int(n) => {
                            emit(&[crate::reply::fmt_i64(&mut num, n)])
                        }
                        crate::types::list::Elem::Str(s) => emit(&[s]),
                    }
                    true
                });
            });
        }
        ValueRef::Set(set) => {
            put_variadic(out, b"SADD", key, set.len(), 1, &mut |emit| {
                for m in set.iter() {
                    match m {
                        crate::types::set::Member::Str(b) => emit(&[b]),
                        crate::types::set::Member::Int(n) => {
                            emit(&[crate::reply::fmt_i64(&mut num, n)])
                        }
                    }
                }
            });
        }
        ValueRef::ZSet(z) => {
            let mut m = Vec::new();
            put_variadic(out, b"ZADD", key, z.len(), 2, &mut |emit| {
                for (e, score) in z.iter_from(0, false) {
                    m.clear();
                    e.write_to(&mut m);
                    let sc = crate::reply::fmt_double_g17(score);
                    emit(&[sc.as_bytes(), &m]);
                }
            });
        }
        ValueRef::Hash(h) => {
            // As Valkey 9: each field with a TTL as `HSETEX key PXAT <ms> FIELDS 1 f v`,
            // then the others by HMSET.
            let mut plain: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            if h.listpack().is_some() {
                h.for_each(i64::MIN, |f, v| plain.push((f.to_vec(), v.to_vec())));
            } else {
                h.for_each_raw(|f, v, exp| {
                    if exp != crate::types::hash::EXPIRY_NONE {
                        put_count(out, 8);
                        put_bulk(out, b"HSETEX");
                        put_bulk(out, key);
                        put_bulk(out, b"PXAT");
                        put_bulk_i64(out, exp);
                        put_bulk(out, b"FIELDS");
                        put_bulk(out, b"1");
                        put_bulk(out, f);
                        put_bulk(out, v);
                    } else {
                        plain.push((f.to_vec(), v.to_vec()));
                    }
                });
            }
            put_variadic(out, b"HMSET", key, plain.len(), 2, &mut |emit| {
                for (f, v) in &plain {
                    emit(&[f, v]);
                }
            });
        }
        ValueRef::Stream(s) => rewrite_stream(out, key, s),
    }
}

fn rewrite_stream(out: &mut Vec<u8>, key: &[u8], s: &crate::types::stream::Stream) {
    use crate::types::stream::StreamId;
    if !s.is_empty() {
        let mut f = Vec::new();
        let mut v = Vec::new();
        s.range(StreamId::MIN, StreamId::MAX, false, |id, entry| {
            put_count(out, 3 + entry.len() * 2);
            put_bulk(out, b"XADD");
            put_bulk(out, key);
            put_id(out, id);
            for i in 0..entry.len() {
                let (fe, ve) = entry.pair(i);
                f.clear();
                v.clear();
                fe.write_to(&mut f);
                ve.write_to(&mut v);
                put_bulk(out, &f);
                put_bulk(out, &v);
            }
            true
        });
    } else {
        // The XADD MAXLEN 0 trick creates the empty stream.
        put_count(out, 7);
        for a in [&b"XADD"[..], key, b"MAXLEN", b"0", b"0-1", b"x", b"y"] {
            put_bulk(out, a);
        }
    }
    put_count(out, 7);
    put_bulk(out, b"XSETID");
    put_bulk(out, key);
    put_id(out, s.last_id());
    put_bulk(out, b"ENTRIESADDED");
    put_bulk_i64(out, s.entries_added() as i64);
    put_bulk(out, b"MAXDELETEDID");
    put_id(out, s.max_deleted_entry_id());
    let Some(groups) = s.groups() else {
        return;
    };
    for (name, g) in groups {
        put_count(out, 7);
        for a in [&b"XGROUP"[..], b"CREATE", key, name] {
            put_bulk(out, a);
        }
        put_id(out, g.last_id);
        put_bulk(out, b"ENTRIESREAD");
        put_bulk_i64(out, g.entries_read);
        for (cname, c) in &g.consumers {
            if c.pel.is_empty() {
                put_count(out, 5);
                for a in [&b"XGROUP"[..], b"CREATECONSUMER", key, name, cname] {
                    put_bulk(out, a);
                }
                continue;
            }
            for id in &c.pel {
                let Some(pe) = g.pel.get(id) else {
                    continue;
                };
                put_count(out, 12);
                for a in [&b"XCLAIM"[..], key, name, cname, b"0"] {
                    put_bulk(out, a);
                }
                put_id(out, *id);
                put_bulk(out, b"TIME");
                put_bulk_i64(out, pe.delivery_time);
                put_bulk(out, b"RETRYCOUNT");
                put_bulk_i64(out, pe.delivery_count as i64);
                put_bulk(out, b"JUSTID");
                put_bulk(out, b"FORCE");
            }
        }
    }
}

/// The dataset as commands (`rewriteAppendOnlyFileRio`), for
/// `aof-use-rdb-preamble no`: per db a SELECT, per key the commands rebuilding it and
/// a PEXPIREAT when it has a TTL; the function libraries first, as FUNCTION LOAD.
fn rewrite_commands<W: Write>(srv: &Server, file: W) -> io::Result<W> {
    let mut w = io::BufWriter::with_capacity(64 * 1024, file);
    if srv.aof.timestamp_enabled {
        write!(w, "#TS:{}\r\n", crate::util::mstime() / 1000)?;
    }
    let delay = srv.config.rdb_key_save_delay;
    let mut out = Vec::with_capacity(64 * 1024);
    let mut err: Option<io::Error> = None;
    // The function libraries first, one FUNCTION LOAD each.
    for lib in srv.scripting.libs.libs.values() {
        append_command(&mut out, &[b"FUNCTION".as_slice(), b"LOAD", &lib.code]);
    }
    for db in &srv.dbs {
        if db.kv.is_empty() {
            continue;
        }
        let dbid = db.id.to_string();
        append_command(&mut out, &[b"SELECT", dbid.as_bytes()]);
        db.kv.for_each_meta(&mut |key, v, expire, _| {
            if err.is_some() {
                return;
            }
            rewrite_key(&mut out, key, v);
            if let Some(t) = expire {
                put_count(&mut out, 3);
                put_bulk(&mut out, b"PEXPIREAT");
                put_bulk(&mut out, key);
                put_bulk_i64(&mut out, t);
            }
            if out.len() >= 64 * 1024 {
                if let Err(e) = w.write_all(&out) {
                    err = Some(e);
                }
                out.clear();
            }
            if delay > 0 {
                std::thread::sleep(std::time::Duration::from_micros(delay as u64));
            }
        });
        if let Some(e) = err.take() {
            return Err(e);
        }
    }
    w.write_all(&out)?;
    w.flush()?;
    w.into_inner().map_err(|e| e.into_error())
}

/// Opens the next incremental file for the rewrite about to start
/// (`openNewIncrAofForAppend`): with the AOF on, a new `.incr.aof` named in a manifest
/// persisted first; while waiting for the first rewrite, a temp incremental file.
fn open_new_incr_for_append(srv: &mut Server) -> bool {
    if srv.aof.state == AofState::Off {
        return true;
    }
    let filename = srv.config.appendfilename.clone();
    // The identity the file gets in the manifest: while waiting for the first rewrite,
    // the name its temp file is renamed to when the rewrite is done.
    let mut named = srv.aof.manifest.clone();
    let final_name = named.new_incr(&filename);
    let id = crate::rdb::crypt::Identity::aof(false, named.curr_incr_seq, &final_name);
    let (name, temp_am) = if srv.aof.state == AofState::WaitRewrite {
        (manifest::temp_incr_name(&filename), None)
    } else {
        (final_name, Some(named))
    };
    let f = match open_0600(&path_in_dir(srv, &name), false) {
        Ok(f) => f,
        Err(e) => {
            warn!(
                "Can't open the append-only file {}: {}",
                name,
                crate::rdb::os_err(&e)
            );
            return false;
        }
    };
    if let Some(am) = &temp_am {
        if !persist_manifest(srv, am) {
            return false;
        }
    }
    info!("Creating AOF incr file {} on background rewrite", name);
    // Chunks already sealed for the old file go there; if they can't, they are dropped:
    // the base about to be forked holds their commands.
    if srv.aof.enc_upto > 0 {
        flush(srv, true);
        let a = &mut srv.aof;
        if a.enc_upto > 0 {
            a.buf.drain(..a.enc_upto.min(a.buf.len()));
            a.enc_upto = 0;
        }
    }
    if let Some(old) = srv.aof.fd.take() {
        srv.aof.bio.submit(Job::Close(old));
        srv.aof.last_fsync_ms = srv.mstime;
    }
    let head = match start_incr_file(&mut srv.aof, &f, &id) {
        Ok(n) => n,
        Err(e) => {
            warn!(
                "Can't write the encryption header of the append-only file {}: {}",
                name,
                crate::rdb::os_err(&e)
            );
            return false;
        }
    };
    let a = &mut srv.aof;
    a.fd = Some(Arc::new(f));
    a.last_incr_size = head;
    a.last_incr_fsync_offset = 0;
    a.current_size += head;
    if let Some(am) = temp_am {
        a.manifest = am;
    }
    true
}

/// After repeated failures, automatic rewrites wait 1, 2, 4... up to 60 minutes
/// (`aofRewriteLimited`).
fn rewrite_limited(srv: &mut Server) -> bool {
    let a = &mut srv.aof;
    if a.consecutive_failures < 3 {
        a.limit_next_delay_min = 0;
        a.limit_next_time = 0;
        return false;
    }
    if a.limit_next_time != 0 {
        if srv.unixtime < a.limit_next_time {
            return true;
        }
        a.limit_next_time = 0;
        return false;
    }
    a.limit_next_delay_min = if a.limit_next_delay_min == 0 {
        1
    } else {
        (a.limit_next_delay_min * 2).min(60)
    };
    a.limit_next_time = srv.unixtime + a.limit_next_delay_min * 60;
    warn!(
        "Background AOF rewrite has repeatedly failed and triggered the limit, will retry in \
         {} minutes",
        a.limit_next_delay_min
    );
    true
}

/// Starts a rewrite by a forked child (`rewriteAppendOnlyFileBackground`).
pub fn rewrite_background(srv: &mut Server) -> bool {
    if crate::rdb::has_active_child(srv) {
        return false;
    }
    if dir_create_if_missing(srv).is_err() {
        srv.aof.lastbgrewrite_ok = false;
        return false;
    }
    srv.aof.selected_db = None;
    flush(srv, true);
    if !open_new_incr_for_append(srv) {
        srv.aof.lastbgrewrite_ok = false;
        return false;
    }
    srv.aof.stat_rewrites += 1;
    // The name and seq the new base will have (its identity when encrypted).
    let mut named = srv.aof.manifest.clone();
    let base =
        named.new_base_mark_prev_history(&srv.config.appendfilename, srv.aof.use_rdb_preamble);
    let id = crate::rdb::crypt::Identity::aof(true, named.curr_base_seq, &base);
    srv.aof.rewrite_base_id =
        crate::rdb::crypt::current().map(|_| (id.clone(), srv.aof.use_rdb_preamble));
    let work = move |srv: &mut Server| {
        let tmp = manifest::temp_rewrite_bg_name(std::process::id());
        if rewrite_append_only_file(srv, Path::new(&tmp), &id) {
            info!("Successfully created the temporary AOF base file {}", tmp);
            true
        } else {
            false
        }
    };
    match crate::rdb::fork_child(
        srv,
        crate::rdb::ChildType::Aof,
        c"valkey-aof-rewrite",
        "AOF rewrite",
        &work,
    ) {
        Ok(pid) => {
            info!(
                "Background append only file rewriting started by pid {}",
                pid
            );
            srv.aof.rewrite_scheduled = false;
            srv.aof.rewrite_time_start = crate::util::mstime() / 1000;
            true
        }
        Err(e) => {
            srv.aof.lastbgrewrite_ok = false;
            warn!(
                "Can't rewrite append only file in background: fork: {}",
                e.desc()
            );
            false
        }
    }
}

/// Handles the end of the rewrite child (`backgroundRewriteDoneHandler`).
pub fn background_rewrite_done(srv: &mut Server, code: i32, signal: i32, pid: i32) {
    if signal == 0 && code == 0 {
        info!("Background AOF rewrite terminated with success");
        rewrite_done_ok(srv, pid);
    } else if signal == 0 {
        srv.aof.lastbgrewrite_ok = false;
        srv.aof.consecutive_failures += 1;
        warn!("Background AOF rewrite terminated with error");
    } else {
        if signal != libc::SIGUSR1 {
            srv.aof.lastbgrewrite_ok = false;
            srv.aof.consecutive_failures += 1;
        }
        warn!("Background AOF rewrite terminated by signal {}", signal);
    }
    // cleanup:
    remove_temp_files(pid);
    if srv.aof.state == AofState::WaitRewrite {
        srv.aof.buf = Vec::new();
        let name = manifest::temp_incr_name(&srv.config.appendfilename);
        info!("Removing the temp incr aof file {} in the background", name);
        let p = path_in_dir(srv, &name);
        srv.aof.bio.submit(Job::Unlink(p));
    }
    let now = crate::util::mstime() / 1000;
    srv.aof.rewrite_time_last = now - srv.aof.rewrite_time_start;
    srv.aof.rewrite_time_start = -1;
    if srv.aof.state == AofState::WaitRewrite {
        srv.aof.rewrite_scheduled = true;
    }
}

fn rewrite_failed(srv: &mut Server) {
    srv.aof.lastbgrewrite_ok = false;
    srv.aof.consecutive_failures += 1;
}

fn rewrite_done_ok(srv: &mut Server, pid: i32) {
    let tmpfile = manifest::temp_rewrite_bg_name(pid as u32);
    let filename = srv.config.appendfilename.clone();
    let mut am = srv.aof.manifest.clone();
    // An encrypted base is named as its header says: the name chosen at fork (it
    // differs from upstream's choice only if aof-use-rdb-preamble changed meanwhile).
    let bound = srv.aof.rewrite_base_id.take();
    let preamble = match &bound {
        Some((_, p)) => *p,
        None => srv.aof.use_rdb_preamble,
    };
    let base = am.new_base_mark_prev_history(&filename, preamble);
    if let Some((id, _)) = bound.filter(|(id, _)| id.name != base || id.seq != am.curr_base_seq) {
        warn!(
            "The encrypted AOF base of the rewrite was written as {} but would be named {}",
            id, base
        );
        rewrite_failed(srv);
        return;
    }
    let base_path = path_in_dir(srv, &base);
    if let Err(e) = std::fs::rename(&tmpfile, &base_path) {
        warn!(
            "Error trying to rename the temporary AOF base file {} into {}: {}",
            tmpfile,
            base_path.display(),
            crate::rdb::os_err(&e)
        );
        rewrite_failed(srv);
        return;
    }
    info!(
        "Successfully renamed the temporary AOF base file {} into {}",
        tmpfile, base
    );
    let mut new_incr_path = None;
    if srv.aof.state == AofState::WaitRewrite {
        let tmp_incr = manifest::temp_incr_name(&filename);
        let tmp_path = path_in_dir(srv, &tmp_incr);
        let incr = am.new_incr(&filename);
        let incr_path = path_in_dir(srv, &incr);
        if let Some(s) = &srv.aof.enc {
            let want = crate::rdb::crypt::Identity::aof(false, am.curr_incr_seq, &incr);
            if *s.identity() != want {
                warn!(
                    "The temporary AOF incr file {} is encrypted as {} but would be named {}",
                    tmp_incr,
                    s.identity(),
                    want
                );
                srv.aof.bio.submit(Job::Unlink(base_path));
                rewrite_failed(srv);
                return;
            }
        }
        if let Err(e) = std::fs::rename(&tmp_path, &incr_path) {
            warn!(
                "Error trying to rename the temporary AOF incr file {} into {}: {}",
                tmp_path.display(),
                incr_path.display(),
                crate::rdb::os_err(&e)
            );
            srv.aof.bio.submit(Job::Unlink(base_path));
            rewrite_failed(srv);
            return;
        }
        info!(
            "Successfully renamed the temporary AOF incr file {} into {}",
            tmp_incr, incr
        );
        new_incr_path = Some(incr_path);
    }
    am.mark_rewritten_incrs_as_history(srv.aof.fd.is_some());
    if !persist_manifest(srv, &am) {
        srv.aof.bio.submit(Job::Unlink(base_path));
        if let Some(p) = new_incr_path {
            srv.aof.bio.submit(Job::Unlink(p));
        }
        rewrite_failed(srv);
        return;
    }
    srv.aof.manifest = am;
    if srv.aof.state != AofState::Off {
        let base_size = file_size(srv, &base).unwrap_or(0);
        srv.aof.current_size = base_size + srv.aof.last_incr_size;
        srv.aof.rewrite_base_size = srv.aof.current_size;
    }
    del_history_files(srv);
    srv.aof.lastbgrewrite_ok = true;
    srv.aof.consecutive_failures = 0;
    info!("Background AOF rewrite finished successfully");
    if srv.aof.state == AofState::WaitRewrite {
        srv.aof.state = AofState::On;
    }
}

/// The AOF part of serverCron: automatic rewrite on growth, postponed flushes, retrying
/// a failed write once a second, a scheduled rewrite.
pub fn cron(srv: &mut Server) {
    let child = crate::rdb::has_active_child(srv);
    if !child && srv.aof.state == AofState::On {
        let a = &srv.aof;
        if a.rewrite_perc > 0 && a.current_size > a.rewrite_min_size {
            let base = if a.rewrite_base_size > 0 {
                a.rewrite_base_size
            } else {
                1
            };
            let growth = (a.current_size as i128 * 100 / base as i128) - 100;
            if growth >= a.rewrite_perc as i128 && !rewrite_limited(srv) {
                info!("Starting automatic rewriting of AOF on {}% growth", growth);
                rewrite_background(srv);
            }
        }
    }
    if srv.aof.state != AofState::Off && srv.aof.flush_postponed_start != 0 {
        flush(srv, false);
    }
    if srv.aof.state != AofState::Off
        && srv.aof.last_write_err.is_some()
        && srv.mstime - srv.aof.last_write_retry_ms >= 1000
    {
        srv.aof.last_write_retry_ms = srv.mstime;
        flush(srv, false);
    }
    if !crate::rdb::has_active_child(srv) && srv.aof.rewrite_scheduled && !rewrite_limited(srv) {
        rewrite_background(srv);
    }
}

// ---------------------------------------------------------------------------------------
// BGREWRITEAOF, CONFIG SET appendonly, shutdown
// ---------------------------------------------------------------------------------------

/// BGREWRITEAOF.
pub fn bgrewriteaof_command(srv: &mut Server, c: &mut crate::client::Client) {
    let aof_child =
        crate::rdb::has_active_child(srv) && srv.rdb.child_type == crate::rdb::ChildType::Aof;
    if aof_child {
        c.reply
            .add_error("ERR Background append only file rewriting already in progress");
    } else if crate::rdb::has_active_child(srv) || c.has_flag(crate::client::flags::IN_EXEC) {
        srv.aof.rewrite_scheduled = true;
        srv.aof.consecutive_failures = 0;
        c.reply
            .add_status("Background append only file rewriting scheduled");
    } else if rewrite_background(srv) {
        c.reply
            .add_status("Background append only file rewriting started");
    } else {
        c.reply.add_error(
            "ERR Can't execute an AOF background rewriting. Please check the server logs \
             for more information.",
        );
    }
}

/// Kills a running rewrite child and waits for it (`killAppendOnlyChild`).
fn kill_append_only_child(srv: &mut Server) {
    if !(crate::rdb::has_active_child(srv) && srv.rdb.child_type == crate::rdb::ChildType::Aof) {
        return;
    }
    if let Some(pid) = srv.rdb.child_pid {
        info!("Killing running AOF rewrite child: {}", pid);
    }
    crate::rdb::kill_child_and_wait(srv);
    srv.aof.rewrite_time_start = -1;
}

/// `CONFIG SET appendonly yes` (`startAppendOnly`): a rewrite starts now (or is
/// scheduled), and the AOF is on once it completes.
pub fn start_append_only(srv: &mut Server, in_exec: bool) -> bool {
    srv.aof.state = AofState::WaitRewrite;
    let child = crate::rdb::has_active_child(srv);
    let aof_child = child && srv.rdb.child_type == crate::rdb::ChildType::Aof;
    if child && !aof_child {
        srv.aof.rewrite_scheduled = true;
        info!(
            "AOF was enabled but there is already another background operation. An AOF \
             background was scheduled to start when possible."
        );
    } else if in_exec {
        srv.aof.rewrite_scheduled = true;
        info!(
            "AOF was enabled during a transaction. An AOF background was scheduled to start \
             when possible."
        );
    } else {
        if aof_child {
            info!(
                "AOF was enabled but there is already an AOF rewriting in background. \
                 Stopping background AOF and starting a rewrite now."
            );
            kill_append_only_child(srv);
        }
        if !rewrite_background(srv) {
            srv.aof.state = AofState::Off;
            warn!(
                "The server needs to enable the AOF but can't trigger a background AOF \
                 rewrite operation. Check the above logs for more info about the error."
            );
            return false;
        }
    }
    srv.aof.last_fsync_ms = srv.mstime;
    if srv.aof.bio.fsync_failed.swap(false, Ordering::SeqCst) {
        warn!("AOF reopen, just ignore the AOF fsync error in bio job");
    }
    if srv.aof.last_write_err.take().is_some() {
        warn!("AOF reopen, just ignore the last error.");
    }
    true
}

/// `CONFIG SET appendonly no` (`stopAppendOnly`).
pub fn stop_append_only(srv: &mut Server) {
    flush(srv, true);
    if let Some(fd) = srv.aof.fd.take() {
        match fd.sync_data() {
            Ok(()) => srv.aof.last_fsync_ms = srv.mstime,
            Err(e) => warn!("Fail to fsync the AOF file: {}", crate::rdb::os_err(&e)),
        }
    }
    let a = &mut srv.aof;
    a.selected_db = None;
    a.state = AofState::Off;
    a.rewrite_scheduled = false;
    a.last_incr_size = 0;
    a.last_incr_fsync_offset = 0;
    a.enc = None;
    a.enc_upto = 0;
    kill_append_only_child(srv);
    srv.aof.buf = Vec::new();
}

/// The AOF part of shutdown (`finishShutdown`): kill a rewrite child (refused while the
/// first one runs unless `force`), then write and fsync what is buffered.
pub fn prepare_shutdown(srv: &mut Server, force: bool) -> bool {
    if srv.aof.state == AofState::Off {
        return true;
    }
    if crate::rdb::has_active_child(srv) && srv.rdb.child_type == crate::rdb::ChildType::Aof {
        if srv.aof.state == AofState::WaitRewrite {
            if force {
                warn!("Writing initial AOF. Exit anyway.");
            } else {
                warn!("Writing initial AOF, can't exit.");
                return false;
            }
        }
        warn!("There is a child rewriting the AOF. Killing it!");
        kill_append_only_child(srv);
    }
    info!("Calling fsync() on the AOF file.");
    flush(srv, true);
    if let Some(fd) = &srv.aof.fd {
        if let Err(e) = fd.sync_data() {
            warn!("Fail to fsync the AOF file: {}.", crate::rdb::os_err(&e));
        }
    }
    true
}

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

/// Outcome of loading one file (upstream's AOF_OK, AOF_TRUNCATED, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoadStatus {
    Ok,
    Truncated,
    NotExist,
    Empty,
    OpenErr,
    Failed,
}

/// A client without a connection to replay commands through (`createAOFClient`): it
/// never blocks, is authenticated, and its replies are dropped.
fn fake_client(srv: &mut Server) -> Option<crate::client::Client> {
    let (a, _b) = match mio::net::UnixStream::pair() {
        Ok(p) => p,
        Err(e) => {
            warn!(
                "Can't create the AOF loading client: {}",
                crate::rdb::os_err(&e)
            );
            return None;
        }
    };
    let id = srv.next_client_id;
    srv.next_client_id += 1;
    let mut c = crate::client::Client::new(
        id,
        usize::MAX,
        crate::client::Conn::Unix(a),
        String::new(),
        String::new(),
        srv.mstime,
    );
    c.flags |= crate::client::flags::DENY_BLOCKING;
    c.authenticated = true;
    Some(c)
}

/// Replays one file of the AOF (`loadSingleAppendOnlyFile`): an RDB part first if the
/// file starts with one, then the commands.
fn load_single(srv: &mut Server, f: &AofInfo, is_base: bool) -> LoadStatus {
    let name = f.name.as_str();
    let path = path_in_dir(srv, name);
    let buf = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            warn!(
                "The append log file {} doesn't exist: {}",
                name,
                crate::rdb::os_err(&e)
            );
            return LoadStatus::NotExist;
        }
        Err(e) => {
            warn!(
                "Fatal error: can't open the append log file {} for reading: {}",
                name,
                crate::rdb::os_err(&e)
            );
            return LoadStatus::OpenErr;
        }
    };
    if buf.is_empty() {
        return LoadStatus::Empty;
    }
    let mut torn = false;
    let encrypted = crate::rdb::crypt::is_encrypted(&buf) || ::rdb::crypt::is_partial_header(&buf);
    let buf = if encrypted {
        let want = crate::rdb::crypt::Identity::aof(is_base, f.seq, name);
        match decrypt_aof(srv, &want, &path, buf) {
            Ok((plain, t)) => {
                torn = t;
                plain
            }
            Err(status) => return status,
        }
    } else {
        buf
    };
    let old_state = srv.aof.state;
    srv.aof.state = AofState::Off;
    // An encrypted file is cut only at batch boundaries (above): its committed
    // plaintext ending inside a command is corruption, not a torn write.
    let res = replay(srv, name, (!encrypted).then_some(&*path), &buf);
    srv.aof.state = old_state;
    if torn && res == LoadStatus::Ok {
        return LoadStatus::Truncated;
    }
    res
}

/// Decrypts an encrypted AOF file read whole (src/rdb/crypt.rs): a chunk failing
/// authentication, a wrong key, a truncated base, a file written as another file than
/// the manifest entry `want` (renamed or swapped) fail the load; a torn last batch of
/// an incremental file is a truncated AOF (`aof-load-truncated` cuts the file back to
/// its last committed batch). Returns the plaintext and whether the file was torn.
fn decrypt_aof(
    srv: &mut Server,
    want: &crate::rdb::crypt::Identity,
    path: &Path,
    buf: Vec<u8>,
) -> Result<(Vec<u8>, bool), LoadStatus> {
    let name = want.name.as_str();
    // A crash while the header of a new incremental file was being written. A base is
    // renamed into place only once complete: a torn header there is damage, not a crash.
    if ::rdb::crypt::is_partial_header(&buf) {
        if !srv.aof.load_truncated || want.role == ::rdb::crypt::Role::AofBase {
            warn!(
                "The encrypted AOF file {} ends inside its header (offset {})",
                name,
                buf.len()
            );
            return Err(LoadStatus::Failed);
        }
        warn!(
            "!!! Truncating the AOF {} at offset 0 (a torn encryption header) !!!",
            name
        );
        if let Err(e) = OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(0))
        {
            warn!(
                "Error truncating the AOF file {}: {}",
                name,
                crate::rdb::os_err(&e)
            );
            return Err(LoadStatus::Failed);
        }
        return Ok((Vec::new(), true));
    }
    let d = match crate::rdb::crypt::decrypt_file(buf, name) {
        Ok(d) => d,
        Err(e) => {
            warn!("{}", e);
            warn!(
                "AOF loading aborted: the encrypted file {} is not valid",
                name
            );
            return Err(LoadStatus::Failed);
        }
    };
    // The file must be the one the manifest names (its identity, authenticated with
    // its chunks); a format 1 file has none: its kind must match its role.
    if let Err(e) = crate::rdb::crypt::check_identity(&d, name, want, "the manifest") {
        warn!("{}", e);
        warn!(
            "AOF loading aborted: the encrypted file {} is not the file the manifest names",
            name
        );
        return Err(LoadStatus::Failed);
    }
    let is_base = want.role == ::rdb::crypt::Role::AofBase;
    if d.kind != want.role.kind() {
        warn!(
            "AOF loading aborted: the encrypted file {} is a {:?} file (offset 10) but the \
             manifest names it as {}",
            name,
            d.kind,
            if is_base { "the base" } else { "an incr file" }
        );
        return Err(LoadStatus::Failed);
    }
    let Some(at) = d.torn_at else {
        return Ok((d.plain, false));
    };
    if !srv.aof.load_truncated {
        warn!(
            "The encrypted AOF file {} ends with a torn batch at offset {}; its last complete \
             batch ends at offset {}",
            name, at, d.committed_len
        );
        warn!(
            "Unexpected end of file reading the append only file {}. You can: 1) Make a \
             backup of your AOF file, then use ./valkey-rs-check-aof --fix --key-file <file> \
             <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' \
             configuration option to yes and restart the server.",
            name
        );
        return Err(LoadStatus::Failed);
    }
    warn!(
        "!!! Warning: short read while loading the AOF file {}!!!",
        name
    );
    warn!(
        "!!! Truncating the AOF {} at offset {} (a torn encrypted batch at offset {}) !!!",
        name, d.committed_len, at
    );
    if let Err(e) = OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(d.committed_len))
    {
        warn!(
            "Error truncating the AOF file {}: {}",
            name,
            crate::rdb::os_err(&e)
        );
        return Err(LoadStatus::Failed);
    }
    warn!(
        "AOF {} loaded anyway because aof-load-truncated is enabled",
        name
    );
    Ok((d.plain, true))
}

fn replay(srv: &mut Server, name: &str, path: Option<&Path>, buf: &[u8]) -> LoadStatus {
    let mut start = 0u64;
    if buf.starts_with(b"REDIS") || buf.starts_with(b"VALKEY") {
        let old_style = name == srv.config.appendfilename;
        if old_style {
            info!("Reading RDB preamble from AOF file...");
        } else {
            info!("Reading RDB base file on AOF loading...");
        }
        match crate::rdb::load_rdb_prefix(srv, buf) {
            Ok(end) => {
                start = end;
                if old_style {
                    info!("Reading the remaining AOF tail...");
                }
            }
            Err((offset, reason)) => {
                warn!(
                    "Internal error in RDB reading file {} at offset {}: {}",
                    name, offset, reason
                );
                if old_style {
                    warn!(
                        "Error reading the RDB preamble of the AOF file {}, AOF loading aborted",
                        name
                    );
                } else {
                    warn!(
                        "Error reading the RDB base file {}, AOF loading aborted",
                        name
                    );
                }
                return LoadStatus::Failed;
            }
        }
    }
    let Some(mut fake) = fake_client(srv) else {
        return LoadStatus::Failed;
    };
    let tail = buf.get(start as usize..).unwrap_or(&[]);
    let mut reader = ::aof::reader::CommandReader::new(tail, start);
    let mut valid_up_to = start;
    let mut valid_before_multi = start;
    let mut cut_at: Option<u64> = None;
    let mut items = 0u32;
    let mut reported = start;
    let truncated = loop {
        items = items.wrapping_add(1);
        if items.is_multiple_of(1024) {
            crate::ops::shutdown_while_loading(srv);
            // Progress, and clients served every 1024 commands (src/busy.rs), as
            // upstream's loadSingleAppendOnlyFile.
            let off = reader.offset();
            crate::busy::loading_incr(srv, off.saturating_sub(reported));
            reported = off.max(reported);
            crate::busy::process_events_while_blocked(srv);
        }
        match reader.next_item() {
            Ok(None) => {
                if fake.has_flag(crate::client::flags::MULTI) {
                    warn!(
                        "Revert incomplete MULTI/EXEC transaction in AOF file {}",
                        name
                    );
                    valid_up_to = valid_before_multi;
                    break true;
                }
                break false;
            }
            Ok(Some(::aof::reader::Item::Annotation(_))) => {}
            Ok(Some(::aof::reader::Item::Command(args))) => {
                let argv: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
                if srv.commands.lookup(&argv).is_err() {
                    warn!(
                        "Unknown command '{}' reading the append only file {}",
                        String::from_utf8_lossy(argv.first().map(|a| &a[..]).unwrap_or(b"")),
                        name
                    );
                    return LoadStatus::Failed;
                }
                if argv.first().is_some_and(|a| crate::util::eq_ic(a, "multi")) {
                    valid_before_multi = valid_up_to;
                }
                fake.argv = argv;
                crate::commands::process_command(srv, &mut fake);
                fake.argv.clear();
                fake.reply.buf.clear();
                fake.reply.sent = 0;
                valid_up_to = reader.offset();
            }
            Err(::aof::Error::Truncated { offset }) => {
                cut_at = Some(offset);
                break true;
            }
            Err(::aof::Error::Corrupt { offset, reason }) => {
                warn!(
                    "Bad file format reading the append only file {}: make a backup of your \
                     AOF file, then use ./valkey-check-aof --fix <filename.manifest>",
                    name
                );
                warn!("AOF {} is invalid at offset {}: {}", name, offset, reason);
                return LoadStatus::Failed;
            }
        }
    };
    if !truncated {
        return LoadStatus::Ok;
    }
    if let (true, Some(path)) = (srv.aof.load_truncated, path) {
        warn!(
            "!!! Warning: short read while loading the AOF file {}!!!",
            name
        );
        warn!(
            "!!! Truncating the AOF {} at offset {} !!!",
            name, valid_up_to
        );
        match OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(valid_up_to))
        {
            Err(e) => warn!(
                "Error truncating the AOF file {}: {}",
                name,
                crate::rdb::os_err(&e)
            ),
            Ok(()) => {
                warn!(
                    "AOF {} loaded anyway because aof-load-truncated is enabled",
                    name
                );
                return LoadStatus::Truncated;
            }
        }
    }
    // Upstream names no offset here; ours does, for the operator.
    match cut_at {
        Some(off) => warn!(
            "AOF {} ends inside the command starting at offset {}; the last complete command \
             ends at offset {}",
            name, off, valid_up_to
        ),
        None => warn!(
            "AOF {} ends inside a MULTI/EXEC block; the last complete command before it ends \
             at offset {}",
            name, valid_up_to
        ),
    }
    warn!(
        "Unexpected end of file reading the append only file {}. You can: 1) Make a backup \
         of your AOF file, then use ./valkey-check-aof --fix <filename.manifest>. 2) \
         Alternatively you can set the 'aof-load-truncated' configuration option to yes and \
         restart the server.",
        name
    );
    LoadStatus::Failed
}

/// Moves an old single-file AOF into the directory with a manifest naming it as the
/// base (`aofUpgradePrepare`).
fn upgrade_prepare(srv: &mut Server) {
    if dir_create_if_missing(srv).is_err() {
        std::process::exit(1);
    }
    let filename = srv.config.appendfilename.clone();
    let mut am = srv.aof.manifest.clone();
    am.upgrade_from_single_file(&filename);
    if !persist_manifest(srv, &am) {
        std::process::exit(1);
    }
    srv.aof.manifest = am;
    if let Err(e) = std::fs::rename(&filename, path_in_dir(srv, &filename)) {
        warn!(
            "Error trying to move the old AOF file {} into dir {}: {}",
            filename,
            srv.config.appenddirname,
            crate::rdb::os_err(&e)
        );
        std::process::exit(1);
    }
    info!(
        "Successfully migrated an old-style AOF file ({}) into the AOF directory ({}).",
        filename, srv.config.appenddirname
    );
}

/// Loads the files of the manifest (`loadAppendOnlyFiles`).
fn load_append_only_files(srv: &mut Server) -> LoadStatus {
    let filename = srv.config.appendfilename.clone();
    if Path::new(&filename).is_file() {
        let am = &srv.aof.manifest;
        let upgrade = !dir(srv).is_dir()
            || (am.base.is_none() && am.incrs.is_empty())
            || (am.incrs.is_empty()
                && am.base.as_ref().is_some_and(|b| b.name == filename)
                && !path_in_dir(srv, &filename).exists());
        if upgrade {
            upgrade_prepare(srv);
        }
    }
    let am = srv.aof.manifest.clone();
    if am.base.is_none() && am.incrs.is_empty() {
        return LoadStatus::NotExist;
    }
    let files: Vec<(&AofInfo, bool)> = am
        .base
        .iter()
        .map(|b| (b, true))
        .chain(am.incrs.iter().map(|i| (i, false)))
        .collect();
    let mut total = 0u64;
    for (f, _) in &files {
        match file_size(srv, &f.name) {
            Ok(n) => total += n,
            Err(e) => {
                warn!(
                    "Unable to obtain the AOF file {} length. stat: {}",
                    f.name,
                    crate::rdb::os_err(&e)
                );
                return if e.kind() == io::ErrorKind::NotFound {
                    LoadStatus::Failed
                } else {
                    LoadStatus::OpenErr
                };
            }
        }
    }
    if total == 0 {
        return LoadStatus::Empty;
    }
    crate::busy::start_loading(srv, total);
    let n = files.len();
    let mut base_size = 0;
    let mut ret = LoadStatus::Ok;
    for (k, (f, is_base)) in files.iter().enumerate() {
        let last = k + 1 == n;
        if *is_base {
            base_size = file_size(srv, &f.name).unwrap_or(0);
        }
        let start = std::time::Instant::now();
        ret = load_single(srv, f, *is_base);
        if ret == LoadStatus::Ok || (ret == LoadStatus::Truncated && last) {
            info!(
                "DB loaded from {} file {}: {:.3} seconds",
                if *is_base { "base" } else { "incr" },
                f.name,
                start.elapsed().as_secs_f64()
            );
        }
        if ret == LoadStatus::Empty {
            ret = LoadStatus::Ok;
        }
        if ret == LoadStatus::Truncated && !last {
            ret = LoadStatus::Failed;
            warn!("Fatal error: the truncated file is not the last file");
        }
        if matches!(ret, LoadStatus::OpenErr | LoadStatus::Failed) {
            break;
        }
    }
    crate::busy::stop_loading(srv);
    if matches!(ret, LoadStatus::Ok | LoadStatus::Truncated) {
        // Truncation may have shortened the last file.
        srv.aof.current_size = files
            .iter()
            .map(|(f, _)| file_size(srv, &f.name).unwrap_or(0))
            .sum();
        srv.aof.rewrite_base_size = base_size;
    }
    ret
}

/// DEBUG LOADAOF: write what is buffered, empty the dataset, load the AOF again.
/// Anything but a clean (or empty) load ends the process, as upstream.
pub fn debug_loadaof(srv: &mut Server, c: &mut crate::client::Client) {
    if srv.aof.state == AofState::On {
        flush(srv, true);
    }
    crate::db::empty_data(srv, None, false);
    load_manifest_from_disk(srv);
    del_history_files(srv);
    match load_append_only_files(srv) {
        LoadStatus::Ok | LoadStatus::Empty => {}
        _ => std::process::exit(1),
    }
    srv.dirty = 0;
    info!("Append Only File loaded by DEBUG LOADAOF");
    c.reply.add_ok();
}

/// Loads the dataset at start-up (upstream's `loadDataFromDisk`): the AOF when
/// `appendonly yes` (dump.rdb is then ignored), the RDB otherwise; then, with the AOF
/// on, opens it for appending and deletes history files.
pub fn load_data_from_disk(srv: &mut Server) {
    init(srv);
    load_manifest_from_disk(srv);
    if srv.aof.state == AofState::On {
        let start = std::time::Instant::now();
        match load_append_only_files(srv) {
            LoadStatus::Failed | LoadStatus::OpenErr => std::process::exit(1),
            LoadStatus::NotExist => {}
            _ => info!(
                "DB loaded from append only file: {:.3} seconds",
                start.elapsed().as_secs_f64()
            ),
        }
    } else {
        crate::rdb::load_data_from_disk(srv);
    }
    open_on_server_start(srv);
    del_history_files(srv);
}

// ---------------------------------------------------------------------------------------
// INFO
// ---------------------------------------------------------------------------------------

/// The aof_* lines of INFO persistence that follow `rdb_last_load_keys_loaded`, up to
/// `module_fork_last_cow_size`.
pub fn info_fields(srv: &Server, s: &mut String) {
    use std::fmt::Write as _;
    let a = &srv.aof;
    let aof_child =
        crate::rdb::has_active_child(srv) && srv.rdb.child_type == crate::rdb::ChildType::Aof;
    let cur = if a.rewrite_time_start == -1 {
        -1
    } else {
        crate::util::mstime() / 1000 - a.rewrite_time_start
    };
    let write_ok = a.last_write_err.is_none() && !a.bio.fsync_failed.load(Ordering::SeqCst);
    let _ = write!(
        s,
        "aof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\n\
         aof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{}\r\n\
         aof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\n\
         aof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\n\
         aof_last_cow_size:{}\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        (a.state != AofState::Off) as u8,
        aof_child as u8,
        a.rewrite_scheduled as u8,
        a.rewrite_time_last,
        cur,
        if a.lastbgrewrite_ok { "ok" } else { "err" },
        a.stat_rewrites,
        a.consecutive_failures,
        if write_ok { "ok" } else { "err" },
        a.last_cow_size,
    );
}

/// The aof_* lines printed when `appendonly` is yes.
pub fn info_enabled_fields(srv: &Server, s: &mut String) {
    use std::fmt::Write as _;
    if !srv.config.appendonly {
        return;
    }
    let a = &srv.aof;
    let _ = write!(
        s,
        "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:{}\r\n\
         aof_buffer_length:{}\r\naof_pending_bio_fsync:{}\r\naof_delayed_fsync:{}\r\n",
        a.current_size,
        a.rewrite_base_size,
        a.rewrite_scheduled as u8,
        a.buf.len(),
        a.bio.pending(),
        a.delayed_fsync,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_encoding() {
        let mut b = Vec::new();
        append_command(&mut b, &[&b"SET"[..], b"k", b""]);
        assert_eq!(b, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }
}
