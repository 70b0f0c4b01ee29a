//! Operations, as upstream's `server.c` process code: supervision (systemd through
//! `$NOTIFY_SOCKET`, upstart through SIGSTOP), daemonizing, the pid file, the OOM score,
//! the process title, the startup system checks, and the shutdown sequence shared by
//! SIGTERM/SIGINT and SHUTDOWN (`prepareForShutdown`, `isReadyToShutdown`,
//! `finishShutdown`, `abortShutdown`). See docs/operations.md.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use log::{debug, info, warn};

use crate::server::Server;

/// Shutdown flags (the bits of `shutdown-on-sigint` / `shutdown-on-sigterm`).
pub const SHUTDOWN_SAVE: u32 = 1;
pub const SHUTDOWN_NOSAVE: u32 = 2;
pub const SHUTDOWN_NOW: u32 = 4;
pub const SHUTDOWN_FORCE: u32 = 8;

/// The pid file written when daemonized without `pidfile` (upstream's
/// CONFIG_DEFAULT_PID_FILE).
pub const DEFAULT_PID_FILE: &str = "/var/run/valkey.pid";

/// OOM score classes (`oom-score-adj-values` positions).
pub const OOM_PRIMARY: usize = 0;
pub const OOM_REPLICA: usize = 1;
pub const OOM_BGCHILD: usize = 2;

/// For the signal handler: a shutdown is requested or in progress (a second SIGINT then
/// exits at once). Set by the handler, cleared when a shutdown is aborted or fails.
pub static SHUTDOWN_PENDING: AtomicBool = AtomicBool::new(false);

/// Process-level state kept by the server.
#[derive(Debug, Default)]
pub struct OpsState {
    /// systemd supervision is active: READY/STATUS/STOPPING go to `$NOTIFY_SOCKET`.
    pub systemd: bool,
    /// The pid file this process wrote (removed at exit).
    pub pidfile: Option<String>,
    /// A shutdown waits for replicas until this time (ms); 0 = no shutdown initiated.
    pub shutdown_mstime: i64,
    pub shutdown_flags: u32,
    /// The signal that asked for the shutdown (SIGINT/SIGTERM), 0 for none.
    pub last_sig: i32,
    /// SHUTDOWN callers waiting for replicas (slot, client id): they get the error if
    /// the shutdown fails or is aborted.
    pub waiters: Vec<(usize, u64)>,
    /// The shutdown is done: leave the event loop.
    pub exit_now: bool,
    /// The OOM settings last applied (oom-score-adj, its values, replica or not).
    oom_applied: Option<(String, String, bool)>,
}

/// Applies `oom-score-adj` at startup and after a CONFIG SET that changed it (or the
/// role), as upstream does on those events.
pub fn apply_config(srv: &mut Server) {
    let key = (
        srv.config.get("oom-score-adj").unwrap_or_default(),
        srv.config.get("oom-score-adj-values").unwrap_or_default(),
        srv.config.replicaof.is_some(),
    );
    if srv.ops.oom_applied.as_ref() != Some(&key) {
        set_oom_score_adj(&srv.config, None);
        srv.ops.oom_applied = Some(key);
    }
}

// ---------------------------------------------------------------------------------------
// Supervision
// ---------------------------------------------------------------------------------------

/// Sends one notification to the service manager through `$NOTIFY_SOCKET` (a unix
/// datagram socket; a name starting with '@' is in the abstract namespace), as
/// `sd_notify(0, msg)`: > 0 sent, 0 no socket, < 0 an error (negative errno).
pub fn sd_notify(msg: &str) -> i32 {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return 0;
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let addr = match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
        Some(b'/') => SocketAddr::from_pathname(std::path::Path::new(&path)),
        _ => return -libc::EAFNOSUPPORT,
    };
    let addr = match addr {
        Ok(a) => a,
        Err(e) => return -e.raw_os_error().unwrap_or(libc::EINVAL),
    };
    let sent = UnixDatagram::unbound().and_then(|s| s.send_to_addr(msg.as_bytes(), &addr));
    match sent {
        Ok(_) => 1,
        Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
    }
}

/// `serverCommunicateSystemd`: notifies, logging a failure.
pub fn communicate_systemd(msg: &str) -> i32 {
    let ret = sd_notify(msg);
    if ret == 0 {
        warn!("systemd supervision error: NOTIFY_SOCKET not found!");
    } else if ret < 0 {
        warn!("systemd supervision error: sd_notify: {}", ret);
    }
    ret
}

/// Notifies systemd when supervised by it.
pub fn notify(srv: &Server, msg: &str) {
    if srv.ops.systemd {
        communicate_systemd(msg);
    }
}

/// `serverIsSupervised`: resolves `auto`, sets up upstart (SIGSTOP) or systemd
/// supervision. Returns whether the process is supervised and whether by systemd.
pub fn is_supervised(mode: &str) -> (bool, bool) {
    let mut mode = mode;
    if mode == "auto" {
        if std::env::var_os("UPSTART_JOB").is_some() {
            debug!("Upstart supervision detected.");
            mode = "upstart";
        } else if std::env::var_os("NOTIFY_SOCKET").is_some() {
            debug!("Systemd supervision detected.");
            mode = "systemd";
        }
    }
    match mode {
        "upstart" => {
            if std::env::var_os("UPSTART_JOB").is_none() {
                warn!("upstart supervision requested, but UPSTART_JOB not found!");
                return (false, false);
            }
            info!("supervised by upstart, will stop to signal readiness.");
            // SAFETY: raise has no memory effects; upstart resumes us with SIGCONT.
            unsafe {
                libc::raise(libc::SIGSTOP);
            }
            // Single-threaded here (before the server starts its threads).
            std::env::remove_var("UPSTART_JOB");
            (true, false)
        }
        "systemd" => {
            if communicate_systemd("STATUS=Valkey is loading...\n") <= 0 {
                return (false, false);
            }
            info!(
                "Supervised by systemd. Please make sure you set appropriate values for \
                 TimeoutStartSec and TimeoutStopSec in your service unit."
            );
            (true, true)
        }
        _ => (false, false),
    }
}

// ---------------------------------------------------------------------------------------
// Daemon, pid file
// ---------------------------------------------------------------------------------------

/// Detaches from the terminal: fork (the parent waits for the daemon to report it is
/// up, then exits 0; 1 if the daemon died first), setsid, fork again (the daemon can
/// never reacquire a terminal), stdio to /dev/null. Returns the pipe end on which the
/// daemon reports readiness with [`daemon_ready`]. Must run before any thread exists.
pub fn daemonize() -> OwnedFd {
    use nix::unistd::{fork, setsid, ForkResult};
    let (r, w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Can't daemonize: pipe: {}", e.desc());
            std::process::exit(1);
        }
    };
    // SAFETY: single-threaded at this point; the child only continues startup.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            drop(w);
            let mut f = std::fs::File::from(r);
            let mut b = [0u8; 1];
            let up = matches!(f.read(&mut b), Ok(1));
            let _ = nix::sys::wait::waitpid(child, None);
            std::process::exit(if up { 0 } else { 1 });
        }
        Ok(ForkResult::Child) => {}
        Err(e) => {
            eprintln!("Can't daemonize: fork: {}", e.desc());
            std::process::exit(1);
        }
    }
    drop(r);
    let _ = setsid();
    // SAFETY: as above; the intermediate process exits at once without cleanup.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => unsafe { libc::_exit(0) },
        Ok(ForkResult::Child) => {}
        Err(_) => unsafe { libc::_exit(1) },
    }
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let fd = null.as_raw_fd();
        // SAFETY: dup2 onto the standard descriptors, which we own.
        unsafe {
            libc::dup2(fd, 0);
            libc::dup2(fd, 1);
            libc::dup2(fd, 2);
        }
    }
    w
}

/// Tells the waiting parent of [`daemonize`] that the daemon is up.
pub fn daemon_ready(w: OwnedFd) {
    let mut f = std::fs::File::from(w);
    let _ = f.write_all(b"1");
}

/// `createPidFile`: best effort, a warning when it can not be written.
pub fn create_pid_file(path: &str) {
    match std::fs::write(path, format!("{}\n", std::process::id())) {
        Ok(()) => {}
        Err(e) => warn!("Failed to write PID file: {}", crate::rdb::os_err(&e)),
    }
}

/// The exit code of a child stopped by SIGUSR1 (SERVER_CHILD_NOERROR_RETVAL).
pub const CHILD_NOERROR_RETVAL: i32 = 255;

/// The log file for messages written from signal handlers (NUL-terminated; empty =
/// stdout), and whether stdout logging is off (daemonized).
static HANDLER_LOG: std::sync::OnceLock<(std::ffi::CString, bool)> = std::sync::OnceLock::new();

/// Records where [`log_from_handler`] writes (call once logging is configured).
pub fn init_handler_log(logfile: &str, daemonized: bool) {
    let path = std::ffi::CString::new(logfile).unwrap_or_default();
    let _ = HANDLER_LOG.set((path, daemonized));
}

/// Appends the decimal form of `v` to `buf` at `*n` (async-signal-safe).
fn push_num(buf: &mut [u8], n: &mut usize, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &b in &tmp[i..] {
        if *n < buf.len() {
            buf[*n] = b;
            *n += 1;
        }
    }
}

/// `serverLogRawFromHandler`: `<pid>:signal-handler (<unix time>) <msg>` with only
/// async-signal-safe calls (open, write, close, getpid, time).
pub fn log_from_handler(msg: &str) {
    let Some((path, daemonized)) = HANDLER_LOG.get() else {
        return;
    };
    let to_stdout = path.as_bytes().is_empty();
    if to_stdout && *daemonized {
        return;
    }
    let mut buf = [0u8; 256];
    let mut n = 0;
    // SAFETY: getpid, time, open, write and close are async-signal-safe; the buffers
    // are on the stack.
    unsafe {
        push_num(&mut buf, &mut n, libc::getpid() as u64);
        for &b in b":signal-handler (".iter() {
            buf[n] = b;
            n += 1;
        }
        push_num(&mut buf, &mut n, libc::time(std::ptr::null_mut()) as u64);
        for &b in b") ".iter().chain(msg.as_bytes()).chain(b"\n") {
            if n < buf.len() {
                buf[n] = b;
                n += 1;
            }
        }
        let fd = if to_stdout {
            1
        } else {
            libc::open(
                path.as_ptr(),
                libc::O_APPEND | libc::O_CREAT | libc::O_WRONLY,
                0o644,
            )
        };
        if fd < 0 {
            return;
        }
        libc::write(fd, buf.as_ptr() as *const libc::c_void, n);
        if !to_stdout {
            libc::close(fd);
        }
    }
}

extern "C" fn on_child_sigusr1(_: libc::c_int) {
    log_from_handler("Received SIGUSR1 in child, exiting now.");
    // SAFETY: leaving the child at once, as exitFromChild.
    unsafe { libc::_exit(CHILD_NOERROR_RETVAL) }
}

/// `setupChildSignalHandlers`: SIGUSR1 stops a forked child (BGSAVE, AOF rewrite)
/// without the parent counting an error.
pub fn setup_child_signal_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_child_sigusr1),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only makes async-signal-safe calls.
    unsafe {
        let _ = sigaction(Signal::SIGUSR1, &act);
    }
}

// ---------------------------------------------------------------------------------------
// OOM score, process title
// ---------------------------------------------------------------------------------------

/// The process's own oom_score_adj before the server first changed it.
static OOM_BASE: AtomicI64 = AtomicI64::new(0);
static OOM_ADJUSTED: AtomicBool = AtomicBool::new(false);

/// `setOOMScoreAdj`: writes /proc/self/oom_score_adj for a process class
/// (`OOM_PRIMARY`, `OOM_REPLICA`, `OOM_BGCHILD`), or the primary/replica class by role
/// when `class` is None. `oom-score-adj no` restores the original value if the server
/// had changed it. Returns false (and logs) when the file can not be written.
pub fn set_oom_score_adj(cfg: &crate::config::Config, class: Option<usize>) -> bool {
    let class = class.unwrap_or(if cfg.replicaof.is_some() {
        OOM_REPLICA
    } else {
        OOM_PRIMARY
    });
    let mode = cfg.get("oom-score-adj").unwrap_or_default();
    let val = if mode == "no" {
        if !OOM_ADJUSTED.swap(false, Ordering::Relaxed) {
            return true;
        }
        OOM_BASE.load(Ordering::Relaxed)
    } else {
        if !OOM_ADJUSTED.swap(true, Ordering::Relaxed) {
            let base = std::fs::read_to_string("/proc/self/oom_score_adj")
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .unwrap_or(0);
            OOM_BASE.store(base, Ordering::Relaxed);
        }
        let values: Vec<i64> = cfg
            .get("oom-score-adj-values")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        let mut v = values.get(class).copied().unwrap_or(0);
        if mode != "absolute" {
            v += OOM_BASE.load(Ordering::Relaxed);
        }
        v.clamp(-1000, 1000)
    };
    let res = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/oom_score_adj")
        .and_then(|mut f| f.write_all(format!("{}\n", val).as_bytes()));
    if let Err(e) = res {
        warn!("Unable to write oom_score_adj: {}", crate::rdb::os_err(&e));
        if e.raw_os_error() == Some(libc::EACCES) {
            warn!("Insufficient permissions to set oom_score_adj. (Ignoring, as set by process)");
        }
        return false;
    }
    true
}

/// Expands `proc-title-template` (upstream's variables: title, listen-addr,
/// server-mode, config-file, port, tls-port, unixsocket). None for an unknown variable
/// or an unbalanced brace.
pub fn expand_proc_title(srv: &Server, template: &str, title: &str) -> Option<String> {
    let cfg = &srv.config;
    let tls_port: u16 = cfg
        .get("tls-port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let unixsocket = cfg.unixsocket.clone().unwrap_or_default();
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        out.push_str(&rest[..open]);
        if rest[open..].starts_with("{{") || rest[open..].starts_with("}}") {
            out.push_str(&rest[open..open + 1]);
            rest = &rest[open + 2..];
            continue;
        }
        if rest.as_bytes()[open] == b'}' {
            return None;
        }
        let close = rest[open..].find('}')? + open;
        let var = &rest[open + 1..close];
        let val = match var {
            "title" => title.to_string(),
            "listen-addr" => {
                if cfg.port != 0 || tls_port != 0 {
                    let addr = cfg.bind.first().map(String::as_str).unwrap_or("*");
                    let port = if cfg.port != 0 { cfg.port } else { tls_port };
                    format!("{}:{}", addr, port)
                } else {
                    format!("unixsocket:{}", unixsocket)
                }
            }
            "server-mode" => {
                if cfg.cluster_enabled {
                    "[cluster]".to_string()
                } else {
                    String::new()
                }
            }
            "config-file" => srv.config_file.clone().unwrap_or_else(|| "-".into()),
            "port" => cfg.port.to_string(),
            "tls-port" => tls_port.to_string(),
            "unixsocket" => unixsocket.clone(),
            _ => return None,
        };
        out.push_str(&val);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out.trim_matches(' ').to_string())
}

/// `serverSetProcTitle`: the title from `proc-title-template` replaces the command
/// line shown by ps (written over the original argv area, truncated to its size; the
/// environment is left alone). Does nothing when the area can not be found.
pub fn set_proc_title(srv: &Server, title: &str) {
    let template = srv
        .config
        .get("proc-title-template")
        .unwrap_or_else(|| "{title} {listen-addr} {server-mode}".into());
    let Some(t) = expand_proc_title(srv, &template, title) else {
        return;
    };
    // /proc/self/stat fields 48 and 49 (after the parenthesized comm): arg_start,
    // arg_end.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return;
    };
    let fields: Vec<&str> = after.split(' ').collect();
    // `after` starts at field 3.
    let (Some(start), Some(end)) = (
        fields.get(47 - 2).and_then(|v| v.parse::<usize>().ok()),
        fields.get(48 - 2).and_then(|v| v.parse::<usize>().ok()),
    ) else {
        return;
    };
    if end <= start + 1 || end - start > 1 << 20 {
        return;
    }
    let len = end - start;
    let bytes = t.as_bytes();
    let n = bytes.len().min(len - 1);
    // SAFETY: [arg_start, arg_end) is this process's argv string area (mapped, writable
    // stack memory the kernel reports for /proc/<pid>/cmdline); the program copied its
    // arguments before this is called and nothing else reads them.
    unsafe {
        let p = start as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, n);
        std::ptr::write_bytes(p.add(n), 0, len - n);
    }
}

// ---------------------------------------------------------------------------------------
// Startup checks
// ---------------------------------------------------------------------------------------

fn read_first_line(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.lines().next().unwrap_or("").trim().to_string())
}

/// `linuxMemoryWarnings`: overcommit_memory must be 1; THP `always` is turned off for
/// this process (`disable-thp yes`) or warned about.
pub fn linux_memory_warnings(cfg: &crate::config::Config) {
    if let Some(v) = read_first_line("/proc/sys/vm/overcommit_memory") {
        if v.parse::<i64>().unwrap_or(0) != 1 {
            let jemalloc = if cfg!(feature = "jemalloc") {
                "Being disabled, it can also cause failures without low memory condition, \
                 see https://github.com/jemalloc/jemalloc/issues/1328. "
            } else {
                ""
            };
            warn!(
                "WARNING Memory overcommit must be enabled! Without it, a background save or \
                 replication may fail under low memory condition. {}To fix this issue add \
                 'vm.overcommit_memory = 1' to /etc/sysctl.conf and then reboot or run the \
                 command 'sysctl vm.overcommit_memory=1' for this to take effect.",
                jemalloc
            );
        }
    }
    if let Some(v) = read_first_line("/sys/kernel/mm/transparent_hugepage/enabled") {
        if v.contains("[always]") {
            let disabled = cfg.get("disable-thp").as_deref() == Some("yes")
                // SAFETY: prctl with integer arguments.
                && unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } == 0;
            if !disabled {
                warn!(
                    "WARNING You have Transparent Huge Pages (THP) support enabled in your \
                     kernel. This will create latency and memory usage issues with Valkey. To \
                     fix this issue run the command 'echo madvise > \
                     /sys/kernel/mm/transparent_hugepage/enabled' as root, and add it to your \
                     /etc/rc.local in order to retain the setting after a reboot. Valkey must \
                     be restarted after THP is disabled (set to 'madvise' or 'never')."
                );
            }
        }
    }
}

/// `checkTcpBacklogSettings`.
pub fn check_tcp_backlog(cfg: &crate::config::Config) {
    if let Some(v) = read_first_line("/proc/sys/net/core/somaxconn") {
        if let Ok(somaxconn) = v.parse::<i64>() {
            if somaxconn < cfg.tcp_backlog as i64 {
                warn!(
                    "WARNING: The TCP backlog setting of {} cannot be enforced because \
                     /proc/sys/net/core/somaxconn is set to the lower value of {}.",
                    cfg.tcp_backlog, somaxconn
                );
            }
        }
    }
}

/// The "Ready to accept connections <type>" lines, one per listener type.
pub fn ready_lines(srv: &Server) -> Vec<&'static str> {
    use crate::networking::Listener;
    let has = |f: &dyn Fn(&Listener) -> bool| srv.listeners.iter().any(f);
    let mut v = Vec::new();
    if has(&|l| matches!(l, Listener::Tcp(_))) {
        v.push("tcp");
    }
    if has(&|l| matches!(l, Listener::Unix(..))) {
        v.push("unix");
    }
    if has(&|l| matches!(l, Listener::Tls(_))) {
        v.push("tls");
    }
    v
}

// ---------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------

/// Parses `shutdown-on-sig*` words into flags.
pub fn parse_flags(words: &str) -> u32 {
    words
        .split_whitespace()
        .map(|w| match w {
            "save" => SHUTDOWN_SAVE,
            "nosave" => SHUTDOWN_NOSAVE,
            "now" => SHUTDOWN_NOW,
            "force" => SHUTDOWN_FORCE,
            _ => 0,
        })
        .fold(0, |a, b| a | b)
}

/// Who asked for the shutdown, for the log (`catClientInfoShortString`): the name and
/// user are redacted under `hide-user-data-from-log`.
pub fn client_short_info(srv: &Server, c: &crate::client::Client) -> String {
    let hide = srv.config.get("hide-user-data-from-log").as_deref() == Some("yes");
    let text =
        |b: &Option<Vec<u8>>| String::from_utf8_lossy(b.as_deref().unwrap_or(b"")).into_owned();
    let (name, user) = if hide {
        ("*redacted*".to_string(), "*redacted*".to_string())
    } else {
        (text(&c.name), c.user.clone())
    };
    format!(
        "id={} addr={} laddr={} fd={} name={} user={} lib-name={} lib-ver={}",
        c.id,
        c.addr,
        c.laddr,
        c.fd,
        name,
        user,
        text(&c.lib_name),
        text(&c.lib_ver)
    )
}

/// Outcome of [`prepare_for_shutdown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Everything is done: leave the loop and exit 0.
    Done,
    /// Waiting for lagging replicas (until `shutdown-timeout`).
    Waiting,
    /// Failed (logged); the server keeps running.
    Failed,
}

pub fn is_shutdown_initiated(srv: &Server) -> bool {
    srv.ops.shutdown_mstime != 0
}

/// `prepareForShutdown`: `who` is the SHUTDOWN caller's description (None for a
/// signal). Unless NOW, lagging replicas get `shutdown-timeout` seconds to catch up.
pub fn prepare_for_shutdown(srv: &mut Server, who: Option<String>, mut flags: u32) -> Shutdown {
    if is_shutdown_initiated(srv) {
        return Shutdown::Failed;
    }
    if srv.rdb.loading {
        flags = (flags & !SHUTDOWN_SAVE) | SHUTDOWN_NOSAVE;
    }
    srv.ops.shutdown_flags = flags;
    match who {
        Some(c) => info!("User requested shutdown... (user request from '{}')", c),
        None => info!("User requested shutdown..."),
    }
    notify(srv, "STOPPING=1\n");
    if flags & SHUTDOWN_NOW == 0 && srv.config.shutdown_timeout != 0 && !is_ready_to_shutdown(srv) {
        srv.ops.shutdown_mstime = crate::util::mstime() + srv.config.shutdown_timeout as i64 * 1000;
        crate::replication::primary::feed(
            srv,
            None,
            &[b"REPLCONF".to_vec(), b"GETACK".to_vec(), b"*".to_vec()],
        );
        // Writes wait while the replicas catch up (upstream's pause during shutdown);
        // an aborted or failed shutdown lets them run.
        srv.pause.shutdown = true;
        info!("Waiting for replicas before shutting down.");
        return Shutdown::Waiting;
    }
    if finish_shutdown(srv) {
        Shutdown::Done
    } else {
        Shutdown::Failed
    }
}

/// Each replica's acknowledged offset (None for a replica not online yet).
fn replica_offsets(srv: &Server) -> Vec<(String, Option<i64>, i64)> {
    let mut v = Vec::new();
    for &(slot, id) in &srv.repl.primary.replicas {
        if let Some(Some(c)) = srv.clients.get(slot) {
            if c.id != id {
                continue;
            }
            let Some(r) = c.repl.as_ref() else { continue };
            let online = r.state == crate::replication::primary::SyncState::Online;
            let lag = if online {
                (crate::util::mstime() - r.ack_time_ms) / 1000
            } else {
                0
            };
            let ip = c
                .addr
                .rsplit_once(':')
                .map_or(c.addr.as_str(), |(ip, _)| ip);
            let name = format!("{}:{}", ip, r.listening_port);
            v.push((name, online.then_some(r.ack_off), lag));
        }
    }
    v
}

/// `isReadyToShutdown`: every replica acknowledged the whole stream.
pub fn is_ready_to_shutdown(srv: &Server) -> bool {
    let off = srv.repl.master_repl_offset;
    replica_offsets(srv).iter().all(|(_, a, _)| *a == Some(off))
}

/// Ends a shutdown that can not complete (`cancelShutdown`): waiting SHUTDOWN callers
/// get the error.
fn cancel_shutdown(srv: &mut Server) {
    srv.shutdown_asap = false;
    SHUTDOWN_PENDING.store(false, Ordering::SeqCst);
    srv.ops.shutdown_flags = 0;
    srv.ops.shutdown_mstime = 0;
    srv.ops.last_sig = 0;
    srv.pause.shutdown = false;
    for (slot, id) in std::mem::take(&mut srv.ops.waiters) {
        let Some(mut c) = crate::networking::take_client(srv, slot) else {
            continue;
        };
        if c.id == id && c.has_flag(crate::client::flags::BLOCKED) {
            c.reply
                .add_error("ERR Errors trying to SHUTDOWN. Check logs.");
            crate::blocked::unblock_client(srv, &mut c, true);
            if !c.pending_write {
                c.pending_write = true;
                srv.clients_pending_write.push(slot);
            }
        }
        crate::networking::put_client(srv, c);
    }
}

/// `abortShutdown` (SHUTDOWN ABORT): false when no shutdown is initiated or requested.
pub fn abort_shutdown(srv: &mut Server) -> bool {
    if is_shutdown_initiated(srv) {
        cancel_shutdown(srv);
    } else if srv.shutdown_asap {
        srv.shutdown_asap = false;
        SHUTDOWN_PENDING.store(false, Ordering::SeqCst);
    } else {
        return false;
    }
    info!("Shutdown manually aborted.");
    true
}

/// `finishShutdown`: kill children, fsync the AOF, the final save, remove the pid file
/// and the unix socket. False when a save failed without FORCE (the server goes on).
pub fn finish_shutdown(srv: &mut Server) -> bool {
    let flags = srv.ops.shutdown_flags;
    let (save, nosave, force) = (
        flags & SHUTDOWN_SAVE != 0,
        flags & SHUTDOWN_NOSAVE != 0,
        flags & SHUTDOWN_FORCE != 0,
    );
    let off = srv.repl.master_repl_offset;
    let replicas = replica_offsets(srv);
    let mut lagging = 0;
    for (name, ack, lag) in &replicas {
        if *ack != Some(off) {
            lagging += 1;
            info!(
                "Lagging replica {} reported offset {} behind master, lag={}, state={}.",
                name,
                off - ack.unwrap_or(0),
                lag,
                if ack.is_some() {
                    "online"
                } else {
                    "wait_bgsave"
                }
            );
        }
    }
    if !replicas.is_empty() {
        info!(
            "{} of {} replicas are in sync when shutting down.",
            replicas.len() - lagging,
            replicas.len()
        );
    }
    if !crate::aof::prepare_shutdown(srv, force) {
        notify(srv, "STATUS=Writing initial AOF, can't exit.\n");
        warn!("Errors trying to shut down the server. Check the logs for more information.");
        cancel_shutdown(srv);
        return false;
    }
    if (!srv.config.save.is_empty() && !nosave) || save {
        notify(srv, "STATUS=Saving the final RDB snapshot\n");
    }
    if !crate::rdb::finish_shutdown(srv, nosave, save, force) {
        notify(srv, "STATUS=Error trying to save the DB, can't exit.\n");
        cancel_shutdown(srv);
        return false;
    }
    if let Some(p) = srv.ops.pidfile.take() {
        info!("Removing the pid file.");
        let _ = std::fs::remove_file(p);
    }
    flush_replicas_output(srv);
    for l in &srv.listeners {
        if let crate::networking::Listener::Unix(_, path) = l {
            info!("Removing the unix socket file.");
            if let Err(e) = std::fs::remove_file(path) {
                warn!(
                    "Error removing the unix socket file: {}",
                    crate::rdb::os_err(&e)
                );
            }
        }
    }
    warn!("valkey-rs is now ready to exit, bye bye...");
    true
}

/// A shutdown signal while the dataset loads (checked every 1024 records, as upstream's
/// `whileBlockedCron`): exit without saving the half-loaded data; a second SIGINT exits
/// with 1.
pub fn shutdown_while_loading(srv: &mut Server) {
    if crate::SHUTDOWN_INSIST.load(Ordering::SeqCst) {
        warn!("You insist... exiting now.");
        std::process::exit(1);
    }
    if !crate::SHUTDOWN_SIGNALLED.swap(false, Ordering::SeqCst) {
        return;
    }
    warn!("Received shutdown signal during loading, scheduling shutdown.");
    if prepare_for_shutdown(srv, None, SHUTDOWN_NOSAVE | SHUTDOWN_NOW) == Shutdown::Done {
        std::process::exit(0);
    }
    warn!(
        "SIGTERM received but errors trying to shut down the server, check the logs for more \
         information"
    );
    srv.shutdown_asap = false;
    SHUTDOWN_PENDING.store(false, Ordering::SeqCst);
}

/// `flushReplicasOutputBuffers`: a best-effort write of what streaming replicas have
/// pending, so they get the last of the stream before the sockets close.
fn flush_replicas_output(srv: &mut Server) {
    for (slot, id) in srv.repl.primary.replicas.clone() {
        let Some(mut c) = crate::networking::take_client(srv, slot) else {
            continue;
        };
        if c.id == id && !crate::replication::primary::output_held(&c) {
            let _ = crate::networking::write_to_client(srv, &mut c);
        }
        crate::networking::put_client(srv, c);
    }
}

/// The shutdown part of the cron (run every 10 ms): start a shutdown a signal asked
/// for, or finish one that waits for replicas. True when the loop must stop.
pub fn shutdown_cron(srv: &mut Server) -> bool {
    if srv.ops.exit_now {
        return true;
    }
    if srv.shutdown_asap && !is_shutdown_initiated(srv) {
        let opt = match srv.ops.last_sig {
            libc::SIGINT => Some("shutdown-on-sigint"),
            libc::SIGTERM => Some("shutdown-on-sigterm"),
            _ => None,
        };
        let flags = opt
            .and_then(|o| srv.config.get(o))
            .map(|w| parse_flags(&w))
            .unwrap_or(0);
        match prepare_for_shutdown(srv, None, flags) {
            Shutdown::Done => return true,
            Shutdown::Waiting => {}
            Shutdown::Failed => {
                srv.shutdown_asap = false;
                SHUTDOWN_PENDING.store(false, Ordering::SeqCst);
            }
        }
    } else if is_shutdown_initiated(srv)
        && (crate::util::mstime() >= srv.ops.shutdown_mstime || is_ready_to_shutdown(srv))
    {
        return finish_shutdown(srv);
    }
    false
}
