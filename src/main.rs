//! `valkey-rs-server`: a Rust reimplementation of the Valkey server.
//!
//! # Layout
//! - `main.rs`: startup, as upstream's `main()` in `server.c`: configuration, logging,
//!   signals, listeners, then the event loop.
//! - `server.rs`: the server state, `serverCron` and `beforeSleep`.
//! - `networking.rs`: sockets, the RESP parser, reply flushing.
//! - `client.rs`, `reply.rs`: a connection's state and reply encoding.
//! - `commands/`: the command table, `process_command` (the gate) and one file per family.
//! - `db.rs` (lookups with lazy expiry, active expiry), `kvstore.rs` (the key table),
//!   `object.rs` (values and encodings).
//! - `config.rs`: directives, defaults, the config file parser, CONFIG GET/SET.
//! - `zmalloc.rs`: memory accounting; `util.rs`: number parsing, clocks, randomness.
//!
//! See `docs/architecture.md` for how a command flows from socket to reply.

mod aclsrv;
mod aof;
mod audit;
mod authguard;
mod blocked;
mod busy;
mod client;
mod cluster;
mod commandlog;
mod commands;
mod config;
mod connection;
mod db;
mod debug;
mod evict;
mod fpconv;
mod geohash;
mod hyperloglog;
mod kvstore;
mod latency;
mod lazyfree;
mod ld;
mod lolwut;
mod memory;
mod monitor;
mod networking;
mod notify;
mod object;
mod ops;
mod pause;
mod propagate;
mod pubsub;
mod rdb;
mod replication;
mod reply;
mod scripting;
mod server;
mod tls;
mod tracking;
mod types;
mod util;
mod zmalloc;

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use log::{error, info, warn};

#[global_allocator]
static GLOBAL: zmalloc::Counting = zmalloc::Counting;

/// Set by SIGTERM/SIGINT; the 10 ms signal timer turns it into `shutdown_asap`.
pub static SHUTDOWN_SIGNALLED: AtomicBool = AtomicBool::new(false);
/// Which of SIGTERM/SIGINT arrived last (for shutdown-on-sigterm / shutdown-on-sigint).
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);
use ops::SHUTDOWN_PENDING;
/// A second SIGINT while a shutdown is pending: exit at once (upstream's "You
/// insist...").
pub static SHUTDOWN_INSIST: AtomicBool = AtomicBool::new(false);

/// The SIGTERM/SIGINT handler: only sets flags (the loop acts on them).
extern "C" fn on_shutdown_signal(sig: libc::c_int) {
    if sig == libc::SIGINT && SHUTDOWN_PENDING.load(Ordering::SeqCst) {
        SHUTDOWN_INSIST.store(true, Ordering::SeqCst);
        return;
    }
    LAST_SIGNAL.store(sig, Ordering::SeqCst);
    SHUTDOWN_PENDING.store(true, Ordering::SeqCst);
    SHUTDOWN_SIGNALLED.store(true, Ordering::SeqCst);
}

fn setup_signal_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_shutdown_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler only stores to atomics, which is async-signal-safe.
    unsafe {
        let _ = sigaction(Signal::SIGTERM, &act);
        let _ = sigaction(Signal::SIGINT, &act);
        let _ = sigaction(Signal::SIGPIPE, &ign);
        let _ = sigaction(Signal::SIGHUP, &ign);
    }
}

/// A 10 ms time event: turns a shutdown signal into `shutdown_asap`, then runs the
/// shutdown (immediately, or once the replicas caught up: `ops::shutdown_cron`).
fn check_signals(el: &mut server::EventLoop, srv: &mut server::Server, _: u64) -> i64 {
    if SHUTDOWN_INSIST.load(Ordering::SeqCst) {
        warn!("You insist... exiting now.");
        let _ = std::fs::remove_file(format!("temp-{}.rdb", std::process::id()));
        std::process::exit(1);
    }
    if SHUTDOWN_SIGNALLED.swap(false, Ordering::SeqCst) {
        let sig = LAST_SIGNAL.load(Ordering::SeqCst);
        warn!(
            "Received {} scheduling shutdown...",
            if sig == libc::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            }
        );
        if !ops::is_shutdown_initiated(srv) {
            srv.ops.last_sig = sig;
            srv.shutdown_asap = true;
        }
    }
    if ops::shutdown_cron(srv) {
        el.stop();
        return ae::NOMORE;
    }
    10
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!("{}", commands::server::version_line());
        return;
    }
    let title = std::env::args().next().unwrap_or_default();
    let (cfg, cfg_file, extras) = match config::load_from_args_extras(&args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{}", msg);
            std::process::exit(1);
        }
    };
    config::init_logging(&cfg);
    ops::init_handler_log(&cfg.logfile, cfg.daemonize);
    setup_signal_handlers();
    ops::linux_memory_warnings(&cfg);
    // Supervision, then daemonizing, before any thread exists (upstream's order).
    let (supervised, systemd) = ops::is_supervised(&cfg.get("supervised").unwrap_or_default());
    let background = cfg.daemonize && !supervised;
    let daemon_pipe = background.then(ops::daemonize);
    info!("oO0OoO0OoO0Oo valkey-rs is starting oO0OoO0OoO0Oo");
    info!(
        "valkey-rs version={} ({}), bits=64, commit=00000000, modified=0, pid={}, just started",
        commands::server::VALKEY_VERSION,
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    if args.is_empty() {
        warn!(
            "Warning: no config file specified, using the default config. In order to \
             specify a config file use {} /path/to/valkey.conf",
            title
        );
    } else {
        info!("Configuration loaded");
    }
    // Calibrate the command timer before serving.
    let _ = util::ticks_to_us(0);
    let mut srv = server::Server::new(cfg);
    srv.config_file = cfg_file;
    srv.ops.systemd = systemd;
    for (old, new) in &extras.renames {
        srv.commands.rename(old, new);
    }
    if let Err(e) = networking::adjust_open_files_limit(&mut srv) {
        error!("{}", e);
        std::process::exit(1);
    }
    let setsize = srv.config.maxclients + 128;
    let mut el: server::EventLoop = match ae::EventLoop::new(setsize) {
        Ok(el) => el,
        Err(e) => {
            error!("Failed creating the event loop. Error message: '{}'", e);
            std::process::exit(1);
        }
    };
    if background || !srv.config.pidfile.is_empty() {
        let p = if srv.config.pidfile.is_empty() {
            ops::DEFAULT_PID_FILE.to_string()
        } else {
            srv.config.pidfile.clone()
        };
        ops::create_pid_file(&p);
        srv.ops.pidfile = Some(p);
    }
    if srv.config.get("set-proc-title").as_deref() == Some("yes") {
        ops::set_proc_title(&srv, &title);
    }
    let tls_port: u16 = srv
        .config
        .get("tls-port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    info!(
        "Running mode={}, port={}.",
        if srv.config.cluster_enabled {
            "cluster"
        } else {
            "standalone"
        },
        if srv.config.port != 0 {
            srv.config.port
        } else {
            tls_port
        }
    );
    ops::check_tcp_backlog(&srv.config);
    if srv.config.cluster_enabled {
        if let Err(e) = cluster::init_at_startup(&mut srv) {
            error!("{}", e);
            std::process::exit(1);
        }
    }
    if let Err(e) = aclsrv::load_at_startup(&mut srv, &extras.users) {
        error!("{}", e);
        std::process::exit(1);
    }
    if let Err(e) = networking::listen(&mut srv) {
        error!("{}", e);
        std::process::exit(1);
    }
    if let Err(e) = networking::install_listeners(&mut el, &mut srv) {
        error!("Unrecoverable error creating listener file events: {}", e);
        std::process::exit(1);
    }
    if let Err(e) = cluster::start_bus(&mut el, &mut srv) {
        error!("{}", e);
        std::process::exit(1);
    }
    // Daemonized: the waiting parent exits 0 now that the pid file is written and the
    // listeners are bound.
    if let Some(w) = daemon_pipe {
        ops::daemon_ready(w);
    }
    el.create_time_event(1, server::server_cron);
    el.create_time_event(10, check_signals);
    el.set_before_sleep_proc(Some(server::before_sleep));
    info!("Server initialized");
    // used_memory_startup: what the server holds before any data or client.
    srv.mem.initial_memory_usage = zmalloc::used_memory();
    // Load the dataset with the listeners open, as upstream: clients connecting meanwhile
    // are served between chunks (-LOADING but for `loading` commands, src/busy.rs). A
    // corrupt file exits here.
    busy::with_loop(&mut el, &mut srv, |srv| {
        aof::load_data_from_disk(srv);
        replication::replica::startup(srv);
    });
    for t in ops::ready_lines(&srv) {
        info!("Ready to accept connections {}", t);
    }
    if srv.ops.systemd {
        if srv.config.replicaof.is_none() {
            ops::communicate_systemd("STATUS=Ready to accept connections\n");
        } else {
            ops::communicate_systemd(
                "STATUS=Ready to accept connections in read-only mode. Waiting for MASTER <-> \
                 REPLICA sync\n",
            );
        }
        ops::communicate_systemd("READY=1\n");
    }
    if srv.config.maxmemory > 0 && srv.config.maxmemory < 1024 * 1024 {
        warn!(
            "WARNING: You specified a maxmemory value that is less than 1MB (current value is \
             {} bytes). Are you sure this is what you really want?",
            srv.config.maxmemory
        );
    }
    ops::apply_config(&mut srv);
    el.main(&mut srv);
}
