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
mod client;
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
mod memory;
mod networking;
mod notify;
mod object;
mod propagate;
mod pubsub;
mod rdb;
mod replication;
mod reply;
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

/// Set by SIGTERM/SIGINT; serverCron turns it into a graceful shutdown.
pub static SHUTDOWN_SIGNALLED: AtomicBool = AtomicBool::new(false);
/// Which of SIGTERM/SIGINT arrived last (for shutdown-on-sigterm / shutdown-on-sigint).
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_shutdown_signal(sig: libc::c_int) {
    LAST_SIGNAL.store(sig, Ordering::SeqCst);
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
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let _ = sigaction(Signal::SIGTERM, &act);
        let _ = sigaction(Signal::SIGINT, &act);
        let _ = sigaction(Signal::SIGPIPE, &ign);
        let _ = sigaction(Signal::SIGHUP, &ign);
    }
}

/// A time event that turns a shutdown signal into `shutdown_asap`.
fn check_signals(_: &mut server::EventLoop, srv: &mut server::Server, _: u64) -> i64 {
    if SHUTDOWN_SIGNALLED.swap(false, Ordering::SeqCst) {
        let int = LAST_SIGNAL.load(Ordering::SeqCst) == libc::SIGINT;
        warn!(
            "Received {} scheduling shutdown...",
            if int { "SIGINT" } else { "SIGTERM" }
        );
        let opt = if int {
            "shutdown-on-sigint"
        } else {
            "shutdown-on-sigterm"
        };
        srv.rdb.signal_shutdown_flags = srv.config.get(opt).unwrap_or_default();
        srv.shutdown_asap = true;
    }
    10
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!("{}", commands::server::version_line());
        return;
    }
    let (cfg, cfg_file, extras) = match config::load_from_args_extras(&args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{}", msg);
            std::process::exit(1);
        }
    };
    config::init_logging(&cfg);
    setup_signal_handlers();
    // Calibrate the command timer before serving.
    let _ = util::ticks_to_us(0);
    let mut srv = server::Server::new(cfg);
    srv.config_file = cfg_file;
    for (old, new) in &extras.renames {
        srv.commands.rename(old, new);
    }
    if let Err(e) = aclsrv::load_at_startup(&mut srv, &extras.users) {
        error!("{}", e);
        std::process::exit(1);
    }
    info!("oO0OoO0OoO0Oo valkey-rs is starting oO0OoO0OoO0Oo");
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
    if let Err(e) = networking::listen(&mut srv) {
        error!("{}", e);
        std::process::exit(1);
    }
    if let Err(e) = networking::install_listeners(&mut el, &mut srv) {
        error!("Unrecoverable error creating listener file events: {}", e);
        std::process::exit(1);
    }
    el.create_time_event(1, server::server_cron);
    el.create_time_event(10, check_signals);
    el.set_before_sleep_proc(Some(server::before_sleep));
    info!("Server initialized");
    // used_memory_startup: what the server holds before any data or client.
    srv.mem.initial_memory_usage = zmalloc::used_memory();
    // Load the dataset before serving anyone, as upstream (a corrupt file exits here).
    aof::load_data_from_disk(&mut srv);
    replication::replica::startup(&mut srv);
    info!("Ready to accept connections tcp");
    el.main(&mut srv);
    info!("valkey-rs is now ready to exit, bye bye...");
}
