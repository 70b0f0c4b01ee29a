//! Connection commands: PING, ECHO, SELECT, QUIT, RESET, AUTH, HELLO and CLIENT.

use super::{acl_cat as cat, flags as f, CommandDef};
use crate::client::{flags as cflags, Client};
use crate::reply;
use crate::server::Server;
use crate::util::eq_ic;

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "ping",
        -1,
        f::FAST,
        cat::FAST | cat::CONNECTION,
        ping_command,
    )
    .doc(
        "connection",
        "1.0.0",
        "Returns the server's liveliness response.",
        "O(1)",
    )
    .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    CommandDef::new(
        "echo",
        2,
        f::LOADING | f::STALE | f::FAST,
        cat::FAST | cat::CONNECTION,
        echo_command,
    )
    .doc("connection", "1.0.0", "Returns the given string.", "O(1)"),
    CommandDef::new(
        "select",
        2,
        f::LOADING | f::STALE | f::FAST | f::ALLOW_BUSY,
        cat::FAST | cat::CONNECTION,
        select_command,
    )
    .doc(
        "connection",
        "1.0.0",
        "Changes the selected database.",
        "O(1)",
    ),
    CommandDef::new(
        "quit",
        -1,
        f::NOSCRIPT | f::LOADING | f::STALE | f::FAST | f::NO_AUTH | f::ALLOW_BUSY,
        cat::FAST | cat::CONNECTION,
        quit_command,
    )
    .doc("connection", "1.0.0", "Closes the connection.", "O(1)"),
    CommandDef::new(
        "reset",
        1,
        f::NOSCRIPT | f::LOADING | f::STALE | f::FAST | f::NO_AUTH | f::ALLOW_BUSY,
        cat::FAST | cat::CONNECTION,
        reset_command,
    )
    .doc("connection", "6.2.0", "Resets the connection.", "O(1)"),
    CommandDef::new(
        "auth",
        -2,
        f::NOSCRIPT | f::LOADING | f::STALE | f::FAST | f::NO_AUTH | f::ALLOW_BUSY,
        cat::FAST | cat::CONNECTION,
        auth_command,
    )
    .doc(
        "connection",
        "1.0.0",
        "Authenticates the connection.",
        "O(N) where N is the number of passwords defined for the user",
    ),
    CommandDef::new(
        "hello",
        -1,
        f::NOSCRIPT | f::LOADING | f::STALE | f::FAST | f::NO_AUTH | f::ALLOW_BUSY,
        cat::FAST | cat::CONNECTION,
        hello_command,
    )
    .doc("connection", "6.0.0", "Handshakes with the server.", "O(1)"),
    CommandDef::new("client", -2, 0, cat::SLOW, super::container_proc)
        .doc(
            "connection",
            "2.4.0",
            "A container for client connection commands.",
            "Depends on subcommand.",
        )
        .subs(CLIENT_SUBCOMMANDS),
];

static CLIENT_SUBCOMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "caching",
        3,
        f::NOSCRIPT | f::LOADING | f::STALE | f::ALLOW_BUSY,
        cat::SLOW | cat::CONNECTION,
        crate::tracking::client_caching_command,
    )
    .doc(
        "connection",
        "6.0.0",
        "Instructs the server whether to track the keys in the next request.",
        "O(1)",
    ),
    CommandDef::new(
        "capa",
        -3,
        f::NOSCRIPT | f::LOADING | f::STALE | f::ALLOW_BUSY,
        cat::SLOW | cat::CONNECTION,
        client_capa_command,
    )
    .doc(
        "connection",
        "8.0.0",
        "A client claims its capability.",
        "O(1)",
    ),
    CommandDef::new(
        "getname",
        2,
        f::NOSCRIPT | f::LOADING | f::STALE | f::ALLOW_BUSY,
        cat::SLOW | cat::CONNECTION,
        client_getname_command,
    )
    .doc(
        "connection",
        "2.6.9",
        "Returns the name of the connection.",
        "O(1)",
    ),
    CommandDef::new(
        "getredir",
        2,
        f::NOSCRIPT | f::LOADING | f::STALE | f::ALLOW_BUSY,
        cat::SLOW | cat::CONNECTION,
        crate::tracking::client_getredir_command,
    )
    .doc(
        "connection",
        "6.0.0",
        "Returns the client ID to which the connection's tracking notifications are redirected.",
        "O(1)",
    ),
    CommandDef::new(
        "help",
        2,
        f::LOADING | f::STALE,
        cat::SLOW | cat::CONNECTION,
        client_help_command,
    )
    .doc(
        "connection",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        "O(1)",
    ),
    CommandDef::new(
        "id",
        2,
        f::NOSCRIPT | f::LOADING | f::STALE | f::ALLOW_BUSY,
        cat::SLOW | cat::CONNECTION,
        client_id_command,
    )
    .doc(
        "connection",
        "5.0.0",
        "Returns the unique client ID of the connection.",
        "O(1)",
    ),
    CommandDef::new(
        "info",
        2,
        f::NOSCRIPT | f::LOADING | f::STALE,
        cat::SLOW | cat::CONNECTION,
        client_info_command,
    )
    .doc(
        "connection",
        "6.2.0",
        "Returns information about the connection.",
        "O(1)",
    )
    .tips(&["nondeterministic_output"]),
    CommandDef::new(
        "kill",
        -3,
        f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE,
        cat::ADMIN | cat::SLOW | cat::DANGEROUS | cat::CONNECTION,
        client_kill_command,
    )
    .doc(
        "connection",
        "2.4.0",
        "Terminates open connections.",
        "O(N) where N is the number of client connections",
    ),
    CommandDef::new(
        "list",
        -2,
        f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE,
        cat::ADMIN | cat::SLOW | cat::DANGEROUS | cat::CONNECTION,
        client_list_command,
    )
    .doc(
        "connection",
        "2.4.0",
        "Lists open connections.",
        "O(N) where N is the number of client connections",
    )
    .tips(&["nondeterministic_output"]),
    CommandDef::new(
        "no-evict",
        3,
        f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE | f::ALLOW_BUSY,
        cat::ADMIN | cat::SLOW | cat::DANGEROUS | cat::CONNECTION,
        client_no_evict_command,
    )
    .doc(
        "connection",
        "7.0.0",
        "Sets the client eviction mode of the connection.",
        "O(1)",
    ),
    CommandDef::new(
        "no-touch",
        3,
        f::NOSCRIPT | f::LOADING | f::STALE | f::ALLOW_BUSY,
        cat::SLOW | cat::CONNECTION,
        client_no_touch_command,
    )
    .doc(
        "connection",
        "7.2.0",
        "Controls whether commands sent by the client affect the LRU/LFU of accessed keys.",
        "O(1)",
    ),
    CommandDef::new(
        "reply",
        3,
        f::NOSCRIPT | f::LOADING | f::STALE | f::NO_MULTI | f::ALLOW_BUSY,
        cat::SLOW | cat::CONNECTION,
        client_reply_command,
    )
    .doc(
        "connection",
        "3.2.0",
        "Instructs the server whether to reply to commands.",
        "O(1)",
    ),
    CommandDef::new(
        "setinfo",
        4,
        f::NOSCRIPT | f::LOADING | f::STALE | f::ALLOW_BUSY,
        cat::SLOW | cat::CONNECTION,
        client_setinfo_command,
    )
    .doc(
        "connection",
        "7.2.0",
        "Sets information specific to the client or connection.",
        "O(1)",
    )
    .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
    CommandDef::new(
        "setname",
        3,
        f::NOSCRIPT | f::LOADING | f::STALE | f::ALLOW_BUSY,
        cat::SLOW | cat::CONNECTION,
        client_setname_command,
    )
    .doc("connection", "2.6.9", "Sets the connection name.", "O(1)")
    .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
    CommandDef::new(
        "tracking",
        -3,
        f::NOSCRIPT | f::LOADING | f::STALE,
        cat::SLOW | cat::CONNECTION,
        crate::tracking::client_tracking_command,
    )
    .doc(
        "connection",
        "6.0.0",
        "Controls server-assisted client-side caching for the connection.",
        "O(1). Some options may introduce additional complexity.",
    ),
    CommandDef::new(
        "trackinginfo",
        2,
        f::NOSCRIPT | f::LOADING | f::STALE,
        cat::SLOW | cat::CONNECTION,
        crate::tracking::client_trackinginfo_command,
    )
    .doc(
        "connection",
        "6.2.0",
        "Returns information about server-assisted client-side caching for the connection.",
        "O(1)",
    ),
    CommandDef::new(
        "unblock",
        -3,
        f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE,
        cat::ADMIN | cat::SLOW | cat::DANGEROUS | cat::CONNECTION,
        client_unblock_command,
    )
    .doc(
        "connection",
        "5.0.0",
        "Unblocks a client blocked by a blocking command from a different connection.",
        "O(log N) where N is the number of client connections",
    ),
    CommandDef::new(
        "pause",
        -3,
        f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE,
        cat::ADMIN | cat::SLOW | cat::DANGEROUS | cat::CONNECTION,
        crate::pause::client_pause_command,
    )
    .doc(
        "connection",
        "3.0.0",
        "Suspends commands processing.",
        "O(1)",
    ),
    CommandDef::new(
        "unpause",
        2,
        f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE,
        cat::ADMIN | cat::SLOW | cat::DANGEROUS | cat::CONNECTION,
        crate::pause::client_unpause_command,
    )
    .doc(
        "connection",
        "6.2.0",
        "Resumes processing commands from paused clients.",
        "O(N) Where N is the number of paused clients",
    ),
];
const CLIENT_HELP: &[&str] = &[
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "CAPA <option> [options...]",
    "    The client claims its some capability options. Options are:",
    "    * REDIRECT",
    "      The client can handle redirection during primary and replica failover in standalone mode.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address.",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to the specified local address.",
    "    * TYPE (NORMAL|PRIMARY|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id> [<client-id>...]",
    "      Kill connections by client IDs.",
    "    * MAXAGE <maxage>",
    "      Kill connections older than the specified age.",
    "    * FLAGS <flags>",
    "      Kill connections that include the specified flags.",
    "    * NAME <client-name>",
    "      Kill connections with the specified name.",
    "    * IDLE <idle>",
    "      Kill connections with idle time greater than or equal to <idle> seconds.",
    "    * LIB-NAME <library-name>",
    "      Kill connections with the specified library name.",
    "    * LIB-VER <library-version>",
    "      Kill connections with the specified library version.",
    "    * DB <db-id>",
    "      Kill connections currently operating on the specified database ID.",
    "    * CAPA <capa>",
    "      Kill connections currently with the specified capa.",
    "    * IP <ip>",
    "      Kill connections made from the specified ip.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|PRIMARY|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "    * USER <username>",
    "      Return clients authenticated by <username>.",
    "    * ADDR <ip:port>",
    "      Return clients connected from the specified address.",
    "    * LADDR <ip:port>",
    "      Return clients connected to the specified local address.",
    "    * ID <client-id> [<client-id>...]",
    "      Return clients with the specified IDs.",
    "    * SKIPME (YES|NO)",
    "      Exclude the current client from the list (default: no).",
    "    * MAXAGE <maxage>",
    "      List connections older than the specified age.",
    "    * FLAGS <flags>",
    "      Return clients with the specified flags.",
    "    * NAME <client-name>",
    "      Return clients with the specified name.",
    "    * IDLE <idle>",
    "      Return clients with idle time greater than or equal to <idle> seconds.",
    "    * LIB-NAME <lib-name>",
    "      Return clients with the specified lib name.",
    "    * LIB-VER <lib-version>",
    "      Return clients with the specified lib version.",
    "    * DB <db-id>",
    "      Return clients currently operating on the specified database ID.",
    "    * CAPA <capa>",
    "      Return connections currently with the specified capa.",
    "    * IP <ip>",
    "      Return connections made from the specified ip.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "NO-TOUCH (ON|OFF)",
    "    Will not touch LRU/LFU stats when this mode is on.",
    "IMPORT-SOURCE (ON|OFF)",
    "    Mark this connection as an import source if import-mode is enabled.",
    "    Sync tools can set their connections into 'import-source' state to visit",
    "    expired keys.",
];

/// The error for a client name (or lib name / version) with forbidden bytes.
const ERR_CLIENT_NAME: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";

/// Whether `s` is a valid client name / lib attribute: printable ASCII without spaces.
fn valid_name(s: &[u8]) -> bool {
    s.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn ping_command(_srv: &mut Server, c: &mut Client) {
    if c.argv.len() > 2 {
        c.reply.add_error_arity("ping");
        return;
    }
    let Client { argv, reply, .. } = c;
    if c.flags & cflags::PUBSUB != 0 && reply.resp == 2 {
        reply.add_array_len(2);
        reply.add_bulk(b"pong");
        reply.add_bulk(argv.get(1).map_or(&b""[..], |a| a.as_slice()));
        return;
    }
    match argv.get(1) {
        None => reply.add_status("PONG"),
        Some(a) => reply.add_bulk(a),
    }
}

fn echo_command(_srv: &mut Server, c: &mut Client) {
    let Client { argv, reply, .. } = c;
    reply.add_bulk(&argv[1]);
}

fn select_command(srv: &mut Server, c: &mut Client) {
    let Some(id) = crate::util::parse_i64_strict(&c.argv[1]) else {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
        return;
    };
    if id < 0 || id as u64 >= srv.dbs.len() as u64 {
        c.reply.add_error(reply::ERR_DB_INDEX);
        return;
    }
    c.db = id as usize;
    c.reply.add_ok();
}

fn quit_command(_srv: &mut Server, c: &mut Client) {
    c.reply.add_ok();
    c.flags |= cflags::CLOSE_AFTER_REPLY;
}

/// RESET: back to the state of a fresh connection, as upstream's
/// `clearClientConnectionState` (the lib name and version survive).
fn reset_command(srv: &mut Server, c: &mut Client) {
    if c.has_flag(cflags::MULTI) {
        super::transaction::discard_transaction(srv, c);
    } else {
        super::transaction::unwatch_all_keys(srv, c);
        c.watched_keys.clear();
        c.flags &= !cflags::DIRTY_CAS;
    }
    crate::pubsub::free_client_pubsub(srv, c);
    crate::monitor::stop(srv, c);
    crate::tracking::disable_tracking(srv, c);
    c.db = 0;
    c.reply.resp = 2;
    c.authenticated = false;
    c.user = "default".into();
    c.acl_gen = 0;
    c.name = None;
    c.flags &= !(cflags::REPLY_OFF
        | cflags::REPLY_SKIP_NEXT
        | cflags::REPLY_SKIP
        | cflags::NO_TOUCH
        | cflags::NO_EVICT
        | cflags::ASKING
        | cflags::READONLY);
    c.reply.silenced = false;
    c.reply.add_status("RESET");
}

/// Authenticates `c` or replies WRONGPASS; returns whether it succeeded. Attempts from a
/// source IP locked out by brute-force throttling (src/authguard.rs) are refused without
/// checking the password; every outcome goes to the audit log (src/audit.rs).
fn authenticate(srv: &mut Server, c: &mut Client, user: &[u8], pass: &[u8]) -> bool {
    use crate::authguard::{source_ip, Limits};
    let ip = source_ip(&c.addr, c.has_flag(cflags::UNIX_SOCKET));
    let cfg = &srv.config;
    let limits = Limits {
        threshold: cfg.auth_failure_threshold,
        window_ms: cfg.auth_failure_window.saturating_mul(1000),
        max_lockout_ms: cfg.auth_lockout_max.saturating_mul(1000),
        exempt_loopback: cfg.auth_failure_exempt_loopback,
    };
    let now = srv.mstime;
    if srv.authguard.is_locked(ip, now, &limits) {
        crate::aclsrv::log_auth_failure(srv, c, user);
        crate::audit::event(srv, c, "auth-throttled", user, "locked-out", None);
        c.reply
            .add_error("WRONGPASS too many failed authentication attempts, try again later");
        return false;
    }
    if crate::aclsrv::authenticate(srv, c, user, pass) {
        srv.authguard.success(ip);
        crate::audit::event(srv, c, "auth-ok", user, "ok", None);
        true
    } else {
        let reason = match srv.acl.acl.get_user(user) {
            None => "no-such-user",
            Some(u) if !u.enabled() => "user-disabled",
            Some(_) => "wrong-password",
        };
        if srv.authguard.failure(ip, now, &limits) {
            log::warn!(
                "Too many failed authentication attempts from {}: locked out",
                ip
            );
        }
        crate::audit::event(srv, c, "auth-fail", user, reason, None);
        c.reply
            .add_error("WRONGPASS invalid username-password pair or user is disabled.");
        false
    }
}

fn auth_command(srv: &mut Server, c: &mut Client) {
    if c.argv.len() > 3 {
        c.reply.add_error(reply::ERR_SYNTAX);
        return;
    }
    let (user, pass) = if c.argv.len() == 2 {
        if srv.acl.acl.get_user(b"default").is_none_or(|u| u.nopass()) {
            c.reply.add_error(
                "ERR AUTH <password> called without any password configured for the default \
                 user. Are you sure your configuration is correct?",
            );
            return;
        }
        (b"default".to_vec(), c.argv[1].clone())
    } else {
        (c.argv[1].clone(), c.argv[2].clone())
    };
    if authenticate(srv, c, &user, &pass) {
        c.reply.add_ok();
    }
}

fn hello_command(srv: &mut Server, c: &mut Client) {
    let mut ver = c.reply.resp as i64;
    if c.argv.len() >= 2 {
        let Some(v) = crate::util::parse_i64_strict(&c.argv[1]) else {
            c.reply
                .add_error("ERR Protocol version is not an integer or out of range");
            return;
        };
        if !(2..=3).contains(&v) {
            c.reply.add_error("NOPROTO unsupported protocol version");
            return;
        }
        ver = v;
    }
    let mut auth: Option<(Vec<u8>, Vec<u8>)> = None;
    let mut name: Option<Vec<u8>> = None;
    let mut j = 2;
    while j < c.argv.len() {
        let more = c.argv.len() - 1 - j;
        let opt = &c.argv[j];
        if eq_ic(opt, "auth") && more >= 2 {
            auth = Some((c.argv[j + 1].clone(), c.argv[j + 2].clone()));
            j += 3;
        } else if eq_ic(opt, "setname") && more >= 1 {
            let n = &c.argv[j + 1];
            if !valid_name(n) {
                c.reply.add_error(ERR_CLIENT_NAME);
                return;
            }
            name = Some(n.clone());
            j += 2;
        } else {
            let e = format!(
                "ERR Syntax error in HELLO option '{}'",
                reply::sanitize(opt, 128)
            );
            c.reply.add_error(&e);
            return;
        }
    }
    if let Some((u, p)) = auth {
        if !authenticate(srv, c, &u, &p) {
            return;
        }
    }
    if !srv.client_is_authenticated(c) {
        c.reply.add_error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time",
        );
        return;
    }
    if let Some(n) = name {
        c.name = if n.is_empty() { None } else { Some(n) };
    }
    c.reply.resp = ver as u8;
    let zone = srv.config.get("availability-zone").unwrap_or_default();
    let mode: &[u8] = if srv.config.cluster_enabled {
        b"cluster"
    } else {
        b"standalone"
    };
    let role: &[u8] = if crate::replication::replica::is_replica(srv) {
        b"replica"
    } else {
        b"master"
    };
    let r = &mut c.reply;
    r.add_map_len(if zone.is_empty() { 7 } else { 8 });
    r.add_bulk(b"server");
    r.add_bulk(b"valkey");
    r.add_bulk(b"version");
    r.add_bulk(super::server::VALKEY_VERSION.as_bytes());
    r.add_bulk(b"proto");
    r.add_long(ver);
    r.add_bulk(b"id");
    r.add_long(c.id as i64);
    r.add_bulk(b"mode");
    r.add_bulk(mode);
    r.add_bulk(b"role");
    r.add_bulk(role);
    r.add_bulk(b"modules");
    r.add_array_len(0);
    if !zone.is_empty() {
        r.add_bulk(b"availability_zone");
        r.add_bulk(zone.as_bytes());
    }
}

// ---------------------------------------------------------------------------------------
// CLIENT
// ---------------------------------------------------------------------------------------

fn client_help_command(_srv: &mut Server, c: &mut Client) {
    c.reply.add_help("client", CLIENT_HELP);
}

fn client_id_command(_srv: &mut Server, c: &mut Client) {
    c.reply.add_long(c.id as i64);
}

fn client_capa_command(_srv: &mut Server, c: &mut Client) {
    c.reply.add_ok();
}

/// CLIENT UNBLOCK <id> [TIMEOUT|ERROR]: ends another client's blocking command as if it
/// timed out, or with an -UNBLOCKED error.
fn client_unblock_command(srv: &mut Server, c: &mut Client) {
    let mut error = false;
    // As upstream, the reason is only looked at when it is the last argument.
    if c.argv.len() == 4 {
        if eq_ic(&c.argv[3], "timeout") {
            error = false;
        } else if eq_ic(&c.argv[3], "error") {
            error = true;
        } else {
            c.reply
                .add_error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
            return;
        }
    }
    let Some(id) = crate::util::parse_i64_strict(&c.argv[2]) else {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
        return;
    };
    let slot = srv
        .clients
        .iter()
        .find(|(_, o)| {
            o.as_deref()
                .is_some_and(|t| t.id as i64 == id && t.has_flag(cflags::BLOCKED))
        })
        .map(|(slot, _)| slot);
    let Some(mut target) = slot.and_then(|s| crate::networking::take_client(srv, s)) else {
        c.reply.add_long(0);
        return;
    };
    if error {
        crate::blocked::unblock_client_on_error(
            srv,
            &mut target,
            "UNBLOCKED client unblocked via CLIENT UNBLOCK",
        );
    } else {
        crate::blocked::unblock_client_on_timeout(srv, &mut target);
    }
    crate::networking::put_client(srv, target);
    c.reply.add_long(1);
}

fn client_getname_command(_srv: &mut Server, c: &mut Client) {
    match &c.name {
        Some(n) => {
            let n = n.clone();
            c.reply.add_bulk(&n);
        }
        None => c.reply.add_null(),
    }
}

fn client_setname_command(_srv: &mut Server, c: &mut Client) {
    let n = &c.argv[2];
    if !valid_name(n) {
        c.reply.add_error(ERR_CLIENT_NAME);
        return;
    }
    c.name = if n.is_empty() { None } else { Some(n.clone()) };
    c.reply.add_ok();
}

fn client_setinfo_command(_srv: &mut Server, c: &mut Client) {
    let attr = &c.argv[2];
    let is_name = eq_ic(attr, "lib-name");
    if !is_name && !eq_ic(attr, "lib-ver") {
        let e = format!("ERR Unrecognized option '{}'", reply::sanitize(attr, 128));
        c.reply.add_error(&e);
        return;
    }
    let v = &c.argv[3];
    if !valid_name(v) {
        let e = format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            reply::sanitize(attr, 128)
        );
        c.reply.add_error(&e);
        return;
    }
    let v = if v.is_empty() { None } else { Some(v.clone()) };
    if is_name {
        c.lib_name = v;
    } else {
        c.lib_ver = v;
    }
    c.reply.add_ok();
}

/// Parses ON|OFF for NO-EVICT / NO-TOUCH and sets or clears `flag`.
fn client_on_off_flag(c: &mut Client, flag: u64) {
    if eq_ic(&c.argv[2], "on") {
        c.flags |= flag;
    } else if eq_ic(&c.argv[2], "off") {
        c.flags &= !flag;
    } else {
        c.reply.add_error(reply::ERR_SYNTAX);
        return;
    }
    c.reply.add_ok();
}

fn client_no_evict_command(_srv: &mut Server, c: &mut Client) {
    client_on_off_flag(c, cflags::NO_EVICT);
}

fn client_no_touch_command(_srv: &mut Server, c: &mut Client) {
    client_on_off_flag(c, cflags::NO_TOUCH);
}

fn client_reply_command(_srv: &mut Server, c: &mut Client) {
    let mode = &c.argv[2];
    if eq_ic(mode, "on") {
        c.flags &= !(cflags::REPLY_OFF | cflags::REPLY_SKIP | cflags::REPLY_SKIP_NEXT);
        c.reply.silenced = false;
        c.reply.add_ok();
    } else if eq_ic(mode, "off") {
        c.flags |= cflags::REPLY_OFF;
        c.reply.silenced = true;
    } else if eq_ic(mode, "skip") {
        if !c.has_flag(cflags::REPLY_OFF) {
            c.flags |= cflags::REPLY_SKIP_NEXT;
        }
    } else {
        c.reply.add_error(reply::ERR_SYNTAX);
    }
}

/// One line of CLIENT LIST / CLIENT INFO for `cl` (`cur` is the client running the
/// command, whose query buffer holds the command itself).
pub fn client_info_line(srv: &Server, cl: &Client, cur: bool) -> String {
    use std::fmt::Write;
    let now = srv.mstime;
    let age = (now - cl.ctime_ms).max(0) / 1000;
    let idle = (now - cl.last_interaction_ms).max(0) / 1000;
    let qbuf = if cur {
        0
    } else {
        cl.query_buf.len().saturating_sub(cl.qb_pos)
    };
    let qbuf_free = cl.query_buf.capacity().saturating_sub(cl.query_buf.len());
    let argv_mem: usize = cl.argv.iter().map(|a| a.len()).sum();
    let multi_mem: usize = cl
        .mstate
        .iter()
        .map(|q| q.argv.iter().map(|a| a.len()).sum::<usize>())
        .sum();
    let rbs = cl.reply.buf.capacity();
    let obl = cl.reply.pending();
    let tot_mem = crate::memory::client_memory_usage(cl).0;
    let multi: i64 = if cl.has_flag(cflags::MULTI) {
        cl.mstate.len() as i64
    } else {
        -1
    };
    let events = if cl.write_handler_installed {
        "rw"
    } else {
        "r"
    };
    let lossy = |o: &Option<Vec<u8>>| {
        o.as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} capa= db={} sub={} \
         psub={} ssub={} multi={} watch={} qbuf={} qbuf-free={} argv-mem={} multi-mem={} \
         rbs={} rbp={} obl={} oll=0 omem=0 tot-mem={} events={} cmd={} user={} redir={} \
         resp={} lib-name={} lib-ver={} tot-net-in={} tot-net-out={} tot-cmds={}",
        cl.id,
        cl.addr,
        cl.laddr,
        cl.fd,
        lossy(&cl.name),
        age,
        idle,
        cl.flags_string(),
        cl.db,
        cl.pubsub.as_ref().map_or(0, |p| p.channels.len()),
        cl.pubsub.as_ref().map_or(0, |p| p.patterns.len()),
        cl.pubsub.as_ref().map_or(0, |p| p.shard_channels.len()),
        multi,
        cl.watched_keys.len(),
        qbuf,
        qbuf_free,
        argv_mem,
        multi_mem,
        rbs,
        rbs,
        obl,
        tot_mem,
        events,
        cl.last_cmd,
        cl.user,
        crate::tracking::redirection(cl),
        cl.reply.resp,
        lossy(&cl.lib_name),
        lossy(&cl.lib_ver),
        cl.net_input_bytes,
        cl.net_output_bytes,
        cl.commands_processed
    );
    s
}

fn client_info_command(srv: &mut Server, c: &mut Client) {
    let mut line = client_info_line(srv, c, true);
    line.push('\n');
    c.reply.add_verbatim(line.as_bytes(), "txt");
}

/// A CLIENT LIST / CLIENT KILL filter.
#[derive(Default)]
struct Filter {
    ids: Vec<u64>,
    ctype: Option<&'static str>,
    user: Option<Vec<u8>>,
    addr: Option<Vec<u8>>,
    laddr: Option<Vec<u8>>,
    name: Option<Vec<u8>>,
    lib_name: Option<Vec<u8>>,
    lib_ver: Option<Vec<u8>>,
    ip: Option<Vec<u8>>,
    db: Option<i64>,
    idle: Option<i64>,
    skipme: bool,
    maxage: Option<i64>,
}

impl Filter {
    fn matches(&self, srv: &Server, cl: &Client, is_me: bool) -> bool {
        let now = srv.mstime;
        if self.skipme && is_me {
            return false;
        }
        if !self.ids.is_empty() && !self.ids.contains(&cl.id) {
            return false;
        }
        if let Some(t) = self.ctype {
            if t != cl.class_name() {
                return false;
            }
        }
        if let Some(u) = &self.user {
            if u.as_slice() != cl.user.as_bytes() {
                return false;
            }
        }
        if let Some(a) = &self.addr {
            if a.as_slice() != cl.addr.as_bytes() {
                return false;
            }
        }
        if let Some(a) = &self.laddr {
            if a.as_slice() != cl.laddr.as_bytes() {
                return false;
            }
        }
        if let Some(ip) = &self.ip {
            let host = cl.addr.rsplit_once(':').map(|(h, _)| h).unwrap_or("");
            if ip.as_slice() != host.as_bytes() {
                return false;
            }
        }
        if let Some(n) = &self.name {
            if cl.name.as_deref().unwrap_or(b"") != n.as_slice() {
                return false;
            }
        }
        if let Some(n) = &self.lib_name {
            if cl.lib_name.as_deref().unwrap_or(b"") != n.as_slice() {
                return false;
            }
        }
        if let Some(n) = &self.lib_ver {
            if cl.lib_ver.as_deref().unwrap_or(b"") != n.as_slice() {
                return false;
            }
        }
        if let Some(db) = self.db {
            if cl.db as i64 != db {
                return false;
            }
        }
        if let Some(idle) = self.idle {
            if (now - cl.last_interaction_ms) / 1000 < idle {
                return false;
            }
        }
        if let Some(maxage) = self.maxage {
            if (now - cl.ctime_ms) / 1000 < maxage {
                return false;
            }
        }
        true
    }
}

/// Parses filters from `argv[from..]`; `kill` selects CLIENT KILL's defaults (SKIPME yes).
fn parse_filter(srv: &Server, argv: &[Vec<u8>], from: usize, kill: bool) -> Result<Filter, String> {
    let mut flt = Filter {
        skipme: kill,
        ..Default::default()
    };
    let mut i = from;
    while i < argv.len() {
        let opt = &argv[i];
        if i + 1 >= argv.len() {
            return Err(reply::ERR_SYNTAX.into());
        }
        let val = &argv[i + 1];
        i += 2;
        if eq_ic(opt, "id") {
            // One or more ids, until the next non-integer.
            let mut j = i - 1;
            loop {
                let Some(id) = crate::util::parse_i64_strict(&argv[j]) else {
                    if j == i - 1 {
                        return Err(reply::ERR_SYNTAX.into());
                    }
                    break;
                };
                if id <= 0 {
                    return Err("ERR client-id should be greater than 0".into());
                }
                flt.ids.push(id as u64);
                j += 1;
                if j >= argv.len() {
                    break;
                }
            }
            i = j;
        } else if eq_ic(opt, "type") {
            let t = if eq_ic(val, "normal") {
                "normal"
            } else if eq_ic(val, "master") || eq_ic(val, "primary") {
                "primary"
            } else if eq_ic(val, "slave") || eq_ic(val, "replica") {
                "replica"
            } else if eq_ic(val, "pubsub") {
                "pubsub"
            } else {
                return Err(format!(
                    "ERR Unknown client type '{}'",
                    reply::sanitize(val, 128)
                ));
            };
            flt.ctype = Some(t);
        } else if eq_ic(opt, "user") {
            if val.as_slice() != b"default" {
                return Err(format!("ERR No such user '{}'", reply::sanitize(val, 128)));
            }
            flt.user = Some(val.clone());
        } else if eq_ic(opt, "addr") {
            flt.addr = Some(val.clone());
        } else if eq_ic(opt, "laddr") {
            flt.laddr = Some(val.clone());
        } else if eq_ic(opt, "ip") {
            flt.ip = Some(val.clone());
        } else if eq_ic(opt, "name") {
            flt.name = Some(val.clone());
        } else if eq_ic(opt, "lib-name") {
            flt.lib_name = Some(val.clone());
        } else if eq_ic(opt, "lib-ver") {
            flt.lib_ver = Some(val.clone());
        } else if eq_ic(opt, "db") {
            let Some(db) = crate::util::parse_i64_strict(val) else {
                return Err("ERR DB is not an integer or out of range".into());
            };
            flt.db = Some(db);
        } else if eq_ic(opt, "idle") {
            let Some(v) = crate::util::parse_i64_strict(val) else {
                return Err("ERR idle is not an integer or out of range".into());
            };
            if v <= 0 {
                return Err("ERR idle should be greater than 0".into());
            }
            flt.idle = Some(v);
        } else if eq_ic(opt, "skipme") {
            if eq_ic(val, "yes") {
                flt.skipme = true;
            } else if eq_ic(val, "no") {
                flt.skipme = false;
            } else {
                return Err(reply::ERR_SYNTAX.into());
            }
        } else if eq_ic(opt, "maxage") {
            let Some(v) = crate::util::parse_i64_strict(val) else {
                return Err("ERR maxage is not an integer or out of range".into());
            };
            if v <= 0 {
                return Err("ERR maxage should be greater than 0".into());
            }
            flt.maxage = Some(v);
        } else {
            return Err(reply::ERR_SYNTAX.into());
        }
    }
    let _ = srv;
    Ok(flt)
}

/// Every client (the running one included, as `c`), in connection order.
fn all_clients<'a>(srv: &'a Server, c: &'a Client) -> Vec<&'a Client> {
    let mut v: Vec<&Client> = srv
        .clients
        .iter()
        .filter_map(|(_, o)| o.as_deref())
        .filter(|cl| cl.id != c.id)
        .collect();
    v.push(c);
    v.sort_by_key(|cl| cl.id);
    v
}

fn client_list_command(srv: &mut Server, c: &mut Client) {
    let flt = match parse_filter(srv, &c.argv, 2, false) {
        Ok(f) => f,
        Err(e) => {
            c.reply.add_error(&e);
            return;
        }
    };
    let mut out = String::new();
    for cl in all_clients(srv, c) {
        let me = cl.id == c.id;
        if flt.matches(srv, cl, me) {
            out.push_str(&client_info_line(srv, cl, me));
            out.push('\n');
        }
    }
    c.reply.add_verbatim(out.as_bytes(), "txt");
}

fn client_kill_command(srv: &mut Server, c: &mut Client) {
    if c.argv.len() == 3 {
        // Old form: CLIENT KILL addr.
        let addr = c.argv[2].clone();
        if c.addr.as_bytes() == addr.as_slice() {
            c.flags |= cflags::CLOSE_AFTER_REPLY;
            c.reply.add_ok();
            return;
        }
        let target = srv
            .clients
            .iter()
            .filter_map(|(slot, o)| o.as_deref().map(|cl| (slot, cl)))
            .find(|(_, cl)| cl.addr.as_bytes() == addr.as_slice())
            .map(|(slot, cl)| (slot, cl.id));
        match target {
            Some((slot, id)) => {
                crate::networking::free_client_async(srv, slot, id);
                c.reply.add_ok();
            }
            None => c.reply.add_error("ERR No such client"),
        }
        return;
    }
    if c.argv.len() % 2 == 1 && !c.argv.iter().skip(2).any(|a| eq_ic(a, "id")) {
        // Options come in pairs (ID takes a list, checked while parsing).
        c.reply.add_error(reply::ERR_SYNTAX);
        return;
    }
    let flt = match parse_filter(srv, &c.argv, 2, true) {
        Ok(f) => f,
        Err(e) => {
            c.reply.add_error(&e);
            return;
        }
    };
    let mut victims = Vec::new();
    for (slot, o) in srv.clients.iter() {
        if let Some(cl) = o.as_deref() {
            if flt.matches(srv, cl, false) {
                victims.push((slot, cl.id));
            }
        }
    }
    let kill_me = flt.matches(srv, c, true);
    let mut killed = victims.len() as i64;
    for (slot, id) in victims {
        crate::networking::free_client_async(srv, slot, id);
    }
    if kill_me {
        c.flags |= cflags::CLOSE_AFTER_REPLY;
        killed += 1;
    }
    c.reply.add_long(killed);
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn client_names() {
        assert!(valid_name(b"abc-1"));
        assert!(valid_name(b""));
        assert!(!valid_name(b"a b"));
        assert!(!valid_name(b"a\n"));
        assert!(!valid_name(&[0xff]));
    }
}
