//! CONFIG GET, SET, RESETSTAT, REWRITE, HELP: the command side of `config.rs`.

use super::{acl_cat as cat, flags as f, CommandDef};
use crate::client::Client;
use crate::config::{self, dflags, Directive, EnableMode};
use crate::server::Server;

pub static COMMANDS: &[CommandDef] =
    &[
        CommandDef::new("config", -2, 0, cat::SLOW, super::container_proc)
            .doc(
                "server",
                "2.0.0",
                "A container for server configuration commands.",
                "Depends on subcommand.",
            )
            .subs(&[
                CommandDef::new(
                    "get",
                    -3,
                    f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE,
                    cat::ADMIN | cat::SLOW | cat::DANGEROUS,
                    config_get_command,
                )
                .doc(
                    "server",
                    "2.0.0",
                    "Returns the effective values of configuration parameters.",
                    "O(N) when N is the number of configuration parameters provided",
                ),
                CommandDef::new(
                    "set",
                    -4,
                    f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE,
                    cat::ADMIN | cat::SLOW | cat::DANGEROUS,
                    config_set_command,
                )
                .doc(
                    "server",
                    "2.0.0",
                    "Sets configuration parameters in-flight.",
                    "O(N) when N is the number of configuration parameters provided",
                )
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
                CommandDef::new(
                    "resetstat",
                    2,
                    f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE,
                    cat::ADMIN | cat::SLOW | cat::DANGEROUS,
                    config_resetstat_command,
                )
                .doc("server", "2.0.0", "Resets the server's statistics.", "O(1)")
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
                CommandDef::new(
                    "rewrite",
                    2,
                    f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE,
                    cat::ADMIN | cat::SLOW | cat::DANGEROUS,
                    config_rewrite_command,
                )
                .doc(
                    "server",
                    "2.8.0",
                    "Persists the effective configuration to file.",
                    "O(1)",
                )
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
                CommandDef::new(
                    "help",
                    2,
                    f::LOADING | f::STALE,
                    cat::SLOW,
                    config_help_command,
                )
                .doc(
                    "server",
                    "5.0.0",
                    "Returns helpful text about the different subcommands.",
                    "O(1)",
                ),
            ]),
    ];

/// What CONFIG GET shows instead of a non-empty secret.
pub const REDACTED: &str = "(redacted)";

/// The value CONFIG GET shows for `d`. Beyond upstream (which shows them in clear), the
/// SENSITIVE directives (requirepass, masterauth, TLS key passphrases) are replaced by
/// [`REDACTED`] unless `show_secrets` (see [`may_see_secrets`]); an empty (unset) secret
/// shows as empty, which only tells what ACL GETUSER tells already.
fn shown_value(srv: &Server, d: &Directive, show_secrets: bool) -> String {
    let v = srv.config.get_directive(d);
    if d.flags & dflags::SENSITIVE != 0 && !show_secrets && !v.is_empty() {
        return REDACTED.to_string();
    }
    v
}

/// Whether CONFIG GET shows secrets in clear to this caller: only with
/// `config-get-secrets yes`, and only to a user that may run both CONFIG SET and
/// ACL SETUSER (an administrator who could replace those secrets anyway).
fn may_see_secrets(srv: &mut Server, c: &mut Client) -> bool {
    srv.config.config_get_secrets
        && crate::aclsrv::may_run(srv, c, "config|set")
        && crate::aclsrv::may_run(srv, c, "acl|setuser")
}

/// CONFIG GET pattern [pattern ...]: exact names (and aliases) are looked up directly;
/// patterns match every non-hidden name and alias. Each name appears once.
fn config_get_command(srv: &mut Server, c: &mut Client) {
    let show_secrets = may_see_secrets(srv, c);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for arg in c.argv.iter().skip(2) {
        let pat = String::from_utf8_lossy(arg).into_owned();
        if !pat.contains(['[', '*', '?']) {
            if seen.contains(&pat) {
                continue;
            }
            if let Some((d, _)) = config::lookup(&pat) {
                seen.insert(pat.clone());
                out.push((pat, shown_value(srv, d, show_secrets)));
            }
            continue;
        }
        for d in config::TABLE {
            if d.flags & dflags::HIDDEN != 0 {
                continue;
            }
            for name in std::iter::once(d.name).chain(d.alias) {
                if seen.contains(name) {
                    continue;
                }
                if acl::glob::string_match(pat.as_bytes(), name.as_bytes(), true) {
                    seen.insert(name.to_string());
                    out.push((name.to_string(), shown_value(srv, d, show_secrets)));
                }
            }
        }
    }
    c.reply.add_map_len(out.len());
    for (k, v) in out {
        c.reply.add_bulk(k.as_bytes());
        c.reply.add_bulk(v.as_bytes());
    }
}

/// Whether protected directives (dir, dbfilename) may be set by this client.
fn protected_allowed(srv: &Server, c: &Client) -> bool {
    match srv.config.enable_protected_configs {
        EnableMode::Yes => true,
        EnableMode::Local => {
            c.has_flag(crate::client::flags::UNIX_SOCKET)
                || c.addr.starts_with("127.")
                || c.addr.starts_with("[::1]")
        }
        EnableMode::No => false,
    }
}

/// The arguments a CONFIG SET value stands for: multi-argument directives split on
/// single spaces, as upstream's performInterfaceSet.
fn set_args(d: &Directive, v: &str) -> Vec<String> {
    if d.flags & dflags::MULTI_ARG != 0 {
        if v.is_empty() {
            return Vec::new();
        }
        v.split(' ').map(String::from).collect()
    } else {
        vec![v.to_string()]
    }
}

/// CONFIG SET name value [name value ...]: all or nothing. Every name is checked first
/// (unknown, immutable, protected, duplicate), then the values are set on a copy of the
/// configuration that replaces the live one only if every value and every runtime effect
/// succeeded.
fn config_set_command(srv: &mut Server, c: &mut Client) {
    if !c.argv.len().is_multiple_of(2) {
        c.reply.add_error(crate::reply::ERR_SYNTAX);
        return;
    }
    let mut pairs: Vec<(&'static Directive, String, String)> = Vec::new();
    let mut unknown: Option<String> = None;
    let mut err: Option<(String, &str)> = None;
    let mut secret_args: Vec<usize> = Vec::new();
    for (i, kv) in c.argv[2..].chunks(2).enumerate() {
        let name = String::from_utf8_lossy(&kv[0]).into_owned();
        let Some((d, is_alias)) = config::lookup(&name) else {
            if unknown.is_none() && err.is_none() {
                unknown = Some(name);
            }
            continue;
        };
        if d.flags & dflags::SENSITIVE != 0 {
            secret_args.push(3 + 2 * i);
        }
        if unknown.is_some() || err.is_some() {
            continue;
        }
        if d.flags & dflags::IMMUTABLE != 0 {
            err = Some((name, "can't set immutable config"));
            continue;
        }
        if d.flags & dflags::PROTECTED != 0 && !protected_allowed(srv, c) {
            err = Some((name, "can't set protected config"));
            continue;
        }
        if pairs.iter().any(|(p, _, _)| std::ptr::eq(*p, d)) {
            err = Some((name, "duplicate parameter"));
            continue;
        }
        // Errors name the directive as registered: the alias when the alias was used.
        let shown = if is_alias {
            d.alias.unwrap_or(d.name)
        } else {
            d.name
        };
        pairs.push((
            d,
            shown.to_string(),
            String::from_utf8_lossy(&kv[1]).into_owned(),
        ));
    }
    // As upstream's redactClientCommandArgument: the value of a secret is dropped from
    // the argument vector now, so nothing that shows argv later (command logs, MONITOR,
    // client errors) can see it.
    for i in secret_args {
        if let Some(a) = c.argv.get_mut(i) {
            *a = REDACTED.as_bytes().to_vec();
        }
    }
    if let Some(name) = unknown {
        c.reply.add_error(&format!(
            "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
            crate::reply::sanitize(name.as_bytes(), 128)
        ));
        return;
    }
    if let Some((name, why)) = err {
        c.reply.add_error(&format!(
            "ERR CONFIG SET failed (possibly related to argument '{}') - {}",
            crate::reply::sanitize(name.as_bytes(), 128),
            why
        ));
        return;
    }
    let mut new = srv.config.clone();
    let old_cwd = std::env::current_dir().ok();
    for (d, shown, v) in &pairs {
        if let Err(e) = new.set_directive(d, &set_args(d, v), false) {
            if let Some(cwd) = &old_cwd {
                let _ = std::env::set_current_dir(cwd);
            }
            c.reply.add_error(&format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - {}",
                shown, e
            ));
            return;
        }
    }
    // Runtime effects that can fail.
    let mut tls_new: Option<crate::tls::TlsContext> = None;
    let mut crypt_new: Option<crate::rdb::crypt::Keys> = None;
    for (d, shown, _) in &pairs {
        let maxclients_err;
        let crypt_err;
        let fail = match d.name {
            "maxclients" if new.maxclients > srv.config.maxclients => {
                match crate::networking::fds_for_maxclients(new.maxclients) {
                    Ok(()) => None,
                    Err(most) => {
                        maxclients_err = format!(
                            "The operating system is not able to handle the specified number of clients, try with {}",
                            most
                        );
                        Some(maxclients_err.as_str())
                    }
                }
            }
            "port" if new.port != srv.config.port => {
                Some("Unable to listen on this port. Check server logs.")
            }
            "bind" if new.bind != srv.config.bind => Some("Failed to bind to specified addresses."),
            "tls-port" if new.get("tls-port") != srv.config.get("tls-port") => {
                crate::networking::change_tls_port(srv, &new).err()
            }
            // As upstream's applyTlsCfg: the context is rebuilt from the new values
            // (once for all tls-* pairs); a failure keeps the old one in force.
            n if crate::tls::RELOADING_DIRECTIVES.contains(&n)
                && tls_new.is_none()
                && crate::tls::tls_wanted(&new) =>
            {
                match crate::tls::build(&crate::tls::TlsSettings::from_config(&new)) {
                    Ok(ctx) => {
                        tls_new = Some(ctx);
                        None
                    }
                    Err(e) => {
                        log::warn!("{}", e);
                        Some("Unable to update TLS configuration. Check server logs.")
                    }
                }
            }
            // Both key files are read and checked now; the keys apply to the next file
            // written (src/rdb/crypt.rs).
            "persistence-encryption-key-file" | "persistence-encryption-old-key-file" => {
                match crate::rdb::crypt::keys_from_config(&new) {
                    Ok(k) => {
                        crypt_new = Some(k);
                        None
                    }
                    Err(e) => {
                        log::warn!("{}", e);
                        crypt_err = e;
                        Some(crypt_err.as_str())
                    }
                }
            }
            "appendonly"
                if new.appendonly
                    && srv.aof.state == crate::aof::AofState::Off
                    && !crate::aof::start_append_only(
                        srv,
                        c.has_flag(crate::client::flags::IN_EXEC),
                    ) =>
            {
                Some("Unable to turn on AOF. Check server logs.")
            }
            "appendonly" if !new.appendonly && srv.aof.state != crate::aof::AofState::Off => {
                crate::aof::stop_append_only(srv);
                None
            }
            _ => None,
        };
        if let Some(e) = fail {
            // A tls-port bound for this call is dropped with the rest.
            srv.pending_tls_listeners = None;
            if let Some(cwd) = &old_cwd {
                let _ = std::env::set_current_dir(cwd);
            }
            log::warn!(
                "Failed applying new configuration. Possibly related to new {} setting. Restoring previous settings.",
                shown
            );
            c.reply.add_error(&format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - {}",
                shown, e
            ));
            return;
        }
    }
    let maxmemory_changed = new.maxmemory != srv.config.maxmemory;
    srv.config = new;
    if let Some(ctx) = tls_new {
        srv.tls = Some(ctx);
    }
    if let Some(k) = crypt_new {
        crate::rdb::crypt::install(k);
    }
    apply_runtime(srv);
    if maxmemory_changed && srv.config.maxmemory != 0 {
        let used = crate::zmalloc::used_memory()
            .saturating_sub(crate::evict::not_counted_memory(srv)) as u64;
        if srv.config.maxmemory < used {
            log::warn!(
                "WARNING: the new maxmemory value set via CONFIG SET ({}) is smaller than the current memory usage ({}). This will result in key eviction and/or the inability to accept new write commands depending on the maxmemory-policy.",
                srv.config.maxmemory,
                used
            );
        }
        // Evict down to the new limit in slices, one per loop turn.
        crate::evict::start_eviction_time_proc(srv);
    }
    c.reply.add_ok();
}

/// Applies configuration values that are cached outside `srv.config`.
pub fn apply_runtime(srv: &mut Server) {
    srv.config.hz = srv.config.hz.clamp(1, 500);
    srv.hz = srv.config.hz;
    config::set_log_verbosity(&srv.config.loglevel);
    crate::aof::apply_config(srv);
    crate::aclsrv::sync_requirepass(srv);
    crate::replication::primary::apply_config(srv);
    crate::evict::apply_config(srv);
    crate::ops::apply_config(srv);
}

/// Resets INFO stats and per-command stats, as upstream's CONFIG RESETSTAT.
pub fn reset_stats(srv: &mut Server) {
    srv.stats = crate::server::Stats::default();
    srv.latency.commands.clear();
    for s in srv.commands.stats.iter_mut() {
        *s = super::CmdStats::default();
    }
    srv.stat_peak_memory = crate::zmalloc::used_memory();
    srv.mem.stat_evicted_clients = 0;
    srv.scripting.cache.evicted = 0;
}

fn config_resetstat_command(srv: &mut Server, c: &mut Client) {
    reset_stats(srv);
    c.reply.add_ok();
}

fn config_rewrite_command(srv: &mut Server, c: &mut Client) {
    let Some(path) = srv.config_file.clone() else {
        c.reply
            .add_error("ERR The server is running without a config file");
        return;
    };
    let users = crate::aclsrv::config_user_lines(srv);
    match config::rewrite_config(&srv.config, &path, Some(&users)) {
        Ok(()) => {
            log::info!("CONFIG REWRITE executed with success.");
            c.reply.add_ok();
        }
        Err(e) => {
            let s = e.to_string();
            let s = s.split(" (os error").next().unwrap_or("").to_string();
            log::warn!("CONFIG REWRITE failed: {}", s);
            c.reply
                .add_error(&format!("ERR Rewriting config file: {}", s));
        }
    }
}

fn config_help_command(_: &mut Server, c: &mut Client) {
    c.reply.add_help(
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    );
}
