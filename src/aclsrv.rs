//! The server side of ACLs: the user set (`acl` crate) built over the command table,
//! authentication, the per-command permission check of the gate, the ACL LOG, the
//! `requirepass` compatibility and the aclfile.
//!
//! The gate's cost for a user allowed everything (the default user: `+@all ~* &*` and
//! every db) is one integer comparison: each client caches whether its user is
//! unrestricted, keyed by [`AclState::gen`], which every change of the user set bumps.

use std::sync::Arc;

use acl::{CheckChannel, CheckDb, CheckKey, CheckRequest, Denied, DenyReason, LogContext};

use crate::client::{flags as cflags, Client};
use crate::commands::server::KeyRef;
use crate::commands::{acl_cat, key_flags, CommandTable};
use crate::config::Config;
use crate::server::Server;

pub struct AclState {
    pub acl: acl::Acl,
    pub log: acl::AclLog,
    /// Bumped on every change of the user set (clients recompute their cache).
    pub gen: u64,
    /// The default user is on and nopass: new connections need no AUTH.
    pub default_open: bool,
    /// The `requirepass` value last applied to the default user.
    applied_requirepass: Option<Vec<u8>>,
    /// Scratch space for the keys of the checked command.
    keybuf: Vec<KeyRef>,
}

/// The ACL view of the server's command table.
pub fn build_table(cmds: &CommandTable) -> acl::CommandTable {
    let specs = cmds
        .commands
        .iter()
        .map(|c| acl::CommandSpec {
            id: c.id,
            name: c.full_name.clone(),
            categories: c.def.acl_categories,
            parent: c.parent,
            no_auth: c.def.flags & crate::commands::flags::NO_AUTH != 0,
        })
        .collect();
    // The table is ours and static: an error here is a programming error caught by the
    // unit test below; fall back to an empty table rather than panicking.
    acl::CommandTable::new(specs).unwrap_or_else(|e| {
        log::error!("ACL command table: {}", e);
        acl::CommandTable::new(Vec::new()).unwrap_or_else(|_| unreachable!())
    })
}

impl AclState {
    pub fn new(cmds: &CommandTable, config: &Config) -> AclState {
        let mut st = AclState {
            acl: acl::Acl::new(Arc::new(build_table(cmds))),
            log: acl::AclLog::new(),
            gen: 1,
            default_open: true,
            applied_requirepass: None,
            keybuf: Vec::new(),
        };
        st.acl.pubsub_default_all = pubsub_default_all(config);
        st.apply_requirepass(config.requirepass.clone());
        st.changed();
        st
    }

    /// Sets the default user's password from `requirepass` (empty: nopass), as
    /// upstream's `ACLUpdateDefaultUserPassword`.
    fn apply_requirepass(&mut self, pass: Option<Vec<u8>>) {
        let mut rule = Vec::new();
        match &pass {
            Some(p) => {
                rule.push(b'>');
                rule.extend_from_slice(p);
            }
            None => rule.extend_from_slice(b"nopass"),
        }
        let _ = self
            .acl
            .set_user(b"default", &[b"resetpass".as_slice(), rule.as_slice()]);
        self.applied_requirepass = pass;
    }

    /// Call after any change of the user set.
    pub fn changed(&mut self) {
        self.gen = self.gen.wrapping_add(1).max(1);
        self.default_open = self
            .acl
            .get_user(b"default")
            .is_some_and(|u| u.nopass() && u.enabled());
    }
}

/// CONFIG SET requirepass: applies a changed value to the default user. Also applies
/// `acl-pubsub-default` (called after every CONFIG SET).
pub fn sync_requirepass(srv: &mut Server) {
    if srv.config.requirepass != srv.acl.applied_requirepass {
        let p = srv.config.requirepass.clone();
        srv.acl.apply_requirepass(p);
        srv.acl.changed();
    }
    srv.acl.acl.pubsub_default_all = pubsub_default_all(&srv.config);
}

/// `acl-pubsub-default allchannels`: the channel rights new users, new selectors and
/// `reset` start with (upstream's `server.acl_pubsub_default`).
fn pubsub_default_all(config: &Config) -> bool {
    config
        .get("acl-pubsub-default")
        .is_some_and(|v| v.eq_ignore_ascii_case("allchannels"))
}

/// Whether a user allows everything (so the gate can skip the check).
fn unrestricted(u: &acl::User) -> bool {
    let i = u.getuser_info();
    i.root.commands == "+@all"
        && i.root.keys == b"~*"
        && i.root.channels == b"&*"
        && i.root.databases == "alldbs"
}

/// The client's user, looked up by name.
pub fn client_user<'a>(srv: &'a Server, c: &Client) -> Option<&'a acl::User> {
    srv.acl.acl.get_user(c.user.as_bytes())
}

/// Authenticates `c` as `user` or records the failure (ACL LOG) and returns false.
pub fn authenticate(srv: &mut Server, c: &mut Client, user: &[u8], pass: &[u8]) -> bool {
    match srv.acl.acl.check_credentials(user, pass) {
        Ok(_) => {
            c.authenticated = true;
            c.user = String::from_utf8_lossy(user).into_owned();
            c.acl_gen = 0;
            true
        }
        Err(_) => {
            log_auth_failure(srv, c, user);
            false
        }
    }
}

/// Adds the ACL LOG entry of a failed (or throttled) authentication as `user`.
pub fn log_auth_failure(srv: &mut Server, c: &Client, user: &[u8]) {
    let info = crate::commands::connection::client_info_line(srv, c, true).into_bytes();
    let max = srv.config.acllog_max_len as usize;
    let ctx = if c.has_flag(cflags::MULTI) {
        LogContext::Multi
    } else {
        LogContext::Toplevel
    };
    // The object is the command name as the client sent it (AUTH, hello...).
    let object = c.argv.first().cloned().unwrap_or_default();
    srv.acl.log.add(
        acl::LogReason::Auth,
        ctx,
        &object,
        user,
        info,
        srv.mstime,
        max,
    );
}

/// The gate's ACL check of command `id` with arguments `argv` for client `c`. On denial
/// returns the error reply (without the leading `-`) after adding the ACL LOG entry.
#[inline]
pub fn check(srv: &mut Server, c: &mut Client, id: usize, argv: &[Vec<u8>]) -> Option<Denied> {
    // A replica's primary client has no user: its stream is exempt, as upstream.
    if c.has_flag(crate::client::flags::PRIMARY) {
        return None;
    }
    if c.acl_gen != srv.acl.gen {
        c.acl_gen = srv.acl.gen;
        c.acl_all = client_user(srv, c).is_some_and(unrestricted);
    }
    if c.acl_all {
        return None;
    }
    check_slow(srv, c.db, &c.user, id, argv)
}

/// Whether the client's user may run the command or subcommand `full_name`
/// (`config|set`) with no further arguments (its command rules and databases; no keys
/// are named). Not logged. A renamed-away command is looked up by its original name.
pub fn may_run(srv: &mut Server, c: &mut Client, full_name: &str) -> bool {
    let Some(id) = srv
        .commands
        .commands
        .iter()
        .position(|x| x.full_name == full_name)
    else {
        return false;
    };
    let argv: Vec<Vec<u8>> = full_name
        .split('|')
        .map(|p| p.as_bytes().to_vec())
        .collect();
    check(srv, c, id, &argv).is_none()
}

/// The full check, for users with restrictions.
pub fn check_slow(
    srv: &mut Server,
    cur_db: usize,
    user: &str,
    id: usize,
    argv: &[Vec<u8>],
) -> Option<Denied> {
    with_request(srv, cur_db, user, id, argv, |u, t, req| {
        u.check_all_perm(t, req).err()
    })
    .unwrap_or(Some(Denied {
        reason: DenyReason::Cmd,
        pos: 0,
    }))
}

/// SORT's rule for BY/GET patterns: whether the client's user may run command `id`
/// with `argv` through a selector that also grants read access to every key. A user
/// allowed everything passes at once.
pub fn full_key_read_access(srv: &mut Server, c: &Client, id: usize, argv: &[Vec<u8>]) -> bool {
    if c.acl_gen == srv.acl.gen && c.acl_all {
        return true;
    }
    with_request(srv, c.db, &c.user, id, argv, |u, t, req| {
        u.check_cmd_with_unrestricted_key_access(t, req, acl::key_flags::ACCESS)
    })
    .unwrap_or(false)
}

/// Builds the check request of command `id` with `argv` (keys, channels, databases)
/// and runs `f` on it with the user; None if the user does not exist.
fn with_request<R>(
    srv: &mut Server,
    cur_db: usize,
    user: &str,
    id: usize,
    argv: &[Vec<u8>],
    f: impl FnOnce(&acl::User, &acl::CommandTable, &CheckRequest) -> R,
) -> Option<R> {
    let u = srv.acl.acl.get_user(user.as_bytes())?;
    let cmd = &srv.commands.commands[id];
    let def = cmd.def;
    let top = match cmd.parent {
        Some(p) => srv.commands.commands[p].def.name,
        None => def.name,
    };
    // Keys, from the key specs (channels of SSUBSCRIBE/SPUBLISH are not keys).
    let mut keyrefs = std::mem::take(&mut srv.acl.keybuf);
    keyrefs.clear();
    if def
        .key_specs
        .iter()
        .any(|k| k.flags & key_flags::NOT_KEY == 0)
    {
        crate::commands::server::get_keys_into(def, argv, &mut keyrefs);
    }
    let key_iter = keyrefs
        .iter()
        .filter(|k| k.flags & key_flags::NOT_KEY == 0)
        .filter_map(|k| {
            // Variable flags (SET, BITFIELD): the key is only read with a GET argument,
            // as upstream's setGetKeys / bitfieldGetKeys.
            let mut flags = k.flags;
            if flags & key_flags::VARIABLE_FLAGS != 0
                && !argv.iter().skip(2).any(|a| crate::util::eq_ic(a, "get"))
            {
                flags &= !key_flags::ACCESS;
            }
            argv.get(k.pos).map(|key| CheckKey {
                key,
                flags,
                pos: k.pos,
            })
        });
    // Common commands have few keys: a stack buffer, a Vec only beyond it.
    let mut key_stack = [CheckKey {
        key: &[],
        flags: 0,
        pos: 0,
    }; 8];
    let mut key_heap: Vec<CheckKey> = Vec::new();
    let mut nkeys = 0;
    for k in key_iter {
        if nkeys < key_stack.len() {
            key_stack[nkeys] = k;
        } else {
            if key_heap.is_empty() {
                key_heap.extend_from_slice(&key_stack);
            }
            key_heap.push(k);
        }
        nkeys += 1;
    }
    let keys: &[CheckKey] = if key_heap.is_empty() {
        &key_stack[..nkeys]
    } else {
        &key_heap
    };
    // Pub/sub channels (unsubscribing is never denied, as upstream).
    let mut channels: Vec<CheckChannel> = Vec::new();
    match top {
        "publish" | "spublish" => {
            if let Some(ch) = argv.get(1) {
                channels.push(CheckChannel {
                    channel: ch,
                    is_pattern: false,
                    pos: 1,
                });
            }
        }
        "subscribe" | "ssubscribe" | "psubscribe" => {
            let is_pattern = top == "psubscribe";
            for (pos, ch) in argv.iter().enumerate().skip(1) {
                channels.push(CheckChannel {
                    channel: ch,
                    is_pattern,
                    pos,
                });
            }
        }
        _ => {}
    }
    // Databases.
    let parse_db = |pos: usize| -> Option<CheckDb> {
        let v = crate::util::parse_i64_strict(argv.get(pos)?)?;
        Some(CheckDb { db: v, pos })
    };
    let current = CheckDb {
        db: cur_db as i64,
        pos: 0,
    };
    let mut dbs = DbList {
        stack: [current; 2],
        n: 0,
        heap: Vec::new(),
    };
    match top {
        "select" => dbs.push(parse_db(1)),
        "swapdb" => {
            dbs.push(parse_db(1));
            dbs.push(parse_db(2));
        }
        "flushall" => {
            for d in 0..srv.dbs.len() {
                dbs.push(Some(CheckDb {
                    db: d as i64,
                    pos: 0,
                }));
            }
        }
        "move" => {
            dbs.push(Some(current));
            dbs.push(parse_db(2));
        }
        "copy" => {
            dbs.push(Some(current));
            let mut i = 3;
            while i + 1 < argv.len() {
                if crate::util::eq_ic(&argv[i], "db") {
                    dbs.push(parse_db(i + 1));
                    break;
                }
                i += 1;
            }
        }
        _ => {
            if !keys.is_empty() || def.acl_categories & acl_cat::KEYSPACE != 0 {
                dbs.push(Some(current));
            }
        }
    }
    let req = CheckRequest {
        cmd_id: id,
        first_arg: if cmd.parent.is_none() {
            argv.get(1).map(|a| a.as_slice())
        } else {
            argv.get(2).map(|a| a.as_slice())
        },
        keys,
        channels: &channels,
        dbs: dbs.as_slice(),
    };
    let r = f(u, srv.acl.acl.table(), &req);
    drop(key_heap);
    srv.acl.keybuf = keyrefs;
    Some(r)
}

/// The databases a command touches: two on the stack (all but FLUSHALL).
struct DbList {
    stack: [CheckDb; 2],
    n: usize,
    heap: Vec<CheckDb>,
}

impl DbList {
    fn push(&mut self, d: Option<CheckDb>) {
        let Some(d) = d else { return };
        if self.heap.is_empty() && self.n < self.stack.len() {
            self.stack[self.n] = d;
            self.n += 1;
        } else {
            if self.heap.is_empty() {
                self.heap.extend_from_slice(&self.stack[..self.n]);
            }
            self.heap.push(d);
        }
    }

    fn as_slice(&self) -> &[CheckDb] {
        if self.heap.is_empty() {
            &self.stack[..self.n]
        } else {
            &self.heap
        }
    }
}

/// The `-NOPERM` text of a denial (without `-`), as upstream's `getAclErrorMessage`.
pub fn deny_message(srv: &Server, user: &str, id: usize, d: Denied) -> String {
    match d.reason {
        DenyReason::Cmd => format!(
            "NOPERM User {} has no permissions to run the '{}' command",
            user, srv.commands.commands[id].full_name
        ),
        DenyReason::Key => "NOPERM No permissions to access a key".into(),
        DenyReason::Channel => "NOPERM No permissions to access a channel".into(),
        DenyReason::Db => "NOPERM No permissions to access database".into(),
    }
}

/// Adds the ACL LOG entry of a denial.
pub fn log_denial(
    srv: &mut Server,
    c: &Client,
    id: usize,
    argv: &[Vec<u8>],
    d: Denied,
    ctx: LogContext,
) {
    let info = crate::commands::connection::client_info_line(srv, c, true).into_bytes();
    let object: &[u8] = if d.reason == DenyReason::Cmd || d.pos == 0 {
        srv.commands.commands[id].full_name_static.as_bytes()
    } else {
        argv.get(d.pos).map_or(&[], |a| a.as_slice())
    };
    crate::audit::acl_denial(srv, c, d.reason, object);
    let max = srv.config.acllog_max_len as usize;
    srv.acl.log.add(
        acl::LogReason::from_deny(d.reason),
        ctx,
        object,
        c.user.as_bytes(),
        info,
        srv.mstime,
        max,
    );
}

/// Closes the clients authenticated as `user` (deleted, or its rules reloaded away);
/// the running client `cur`, if one of them, is closed after its reply.
pub fn kill_clients_of_user(srv: &mut Server, cur: Option<&mut Client>, user: &[u8]) {
    let victims: Vec<(usize, u64)> = srv
        .clients
        .iter()
        .filter_map(|(slot, c)| c.as_ref().map(|c| (slot, c)))
        .filter(|(_, c)| c.authenticated && c.user.as_bytes() == user)
        .map(|(slot, c)| (slot, c.id))
        .collect();
    for (slot, id) in victims {
        crate::networking::free_client_async(srv, slot, id);
    }
    if let Some(c) = cur {
        if c.authenticated && c.user.as_bytes() == user {
            c.flags |= cflags::CLOSE_AFTER_REPLY;
        }
    }
}

/// Whether a subscription of `c` (pattern, channel or shard channel) is denied to `u`.
fn subscriptions_denied(c: &Client, u: &acl::User) -> bool {
    let Some(p) = &c.pubsub else { return false };
    p.patterns.iter().any(|x| !u.can_access_channel(x, true))
        || p.channels.iter().any(|x| !u.can_access_channel(x, false))
        || p.shard_channels
            .iter()
            .any(|x| !u.can_access_channel(x, false))
}

/// After the user `old` (its rules before the change) was replaced by the user of the
/// same name in the current set: closes the clients of that user subscribed to a
/// channel, pattern or shard channel it may no longer access, as upstream's
/// ACLKillPubsubClientsIfNeeded. The running client `cur` is closed after its reply.
pub fn kill_revoked_subscribers(srv: &mut Server, cur: Option<&mut Client>, old: &acl::User) {
    let Some(new) = srv.acl.acl.get_user(old.name()) else {
        return;
    };
    if !old.channels_may_shrink(new) {
        return;
    }
    let victims: Vec<(usize, u64)> = srv
        .clients
        .iter()
        .filter_map(|(slot, c)| c.as_ref().map(|c| (slot, c)))
        .filter(|(_, c)| c.user.as_bytes() == old.name() && subscriptions_denied(c, new))
        .map(|(slot, c)| (slot, c.id))
        .collect();
    let close_cur = cur
        .as_ref()
        .is_some_and(|c| c.user.as_bytes() == old.name() && subscriptions_denied(c, new));
    for (slot, id) in victims {
        crate::networking::free_client_async(srv, slot, id);
    }
    if let (true, Some(c)) = (close_cur, cur) {
        c.flags |= cflags::CLOSE_AFTER_REPLY;
    }
}

/// EXEC's re-check of a queued command (rules may have changed since it was queued):
/// on denial, the entry is logged and the command's reply is this error.
pub fn exec_recheck(srv: &mut Server, c: &mut Client, id: usize) -> Option<String> {
    let argv = std::mem::take(&mut c.argv);
    let denied = check(srv, c, id, &argv);
    c.argv = argv;
    let d = denied?;
    log_denial(srv, c, id, &c.argv, d, LogContext::Multi);
    let why = match d.reason {
        DenyReason::Cmd => "no permission to execute the command or subcommand",
        DenyReason::Key => "no permission to touch the specified keys",
        DenyReason::Channel => "no permission to access one of the channels used as arguments",
        DenyReason::Db => "no permission",
    };
    Some(format!(
        "NOPERM ACLs rules changed between the moment the transaction was accumulated and \
         the EXEC call. This command is no longer allowed for the following reason: {}",
        why
    ))
}

/// ACL SAVE: writes the users to `aclfile` atomically (temp file, fsync, rename), 0600.
pub fn save_file(srv: &Server) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = srv.config.aclfile.clone();
    let tmp = format!("{}.tmp-{}", path, std::process::id());
    let text = srv.acl.acl.to_file_text();
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        Ok(())
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("Failed saving ACL file '{}': {}", path, e)
    })
}

/// The `user` lines CONFIG REWRITE writes: every user (ACL LIST form) without an aclfile,
/// none with one (upstream's rewriteConfigUserOption).
pub fn config_user_lines(srv: &Server) -> Vec<String> {
    if !srv.config.aclfile.is_empty() {
        return Vec::new();
    }
    srv.acl.acl.users().map(acl::describe_user).collect()
}

/// Reads and parses `aclfile` into a new user set (nothing changes on error).
fn read_file(srv: &Server) -> Result<acl::Acl, String> {
    let path = srv.config.aclfile.clone();
    let text = std::fs::read(&path).map_err(|e| {
        format!(
            "Error loading ACLs, opening file '{}': {}",
            path,
            io_error_text(&e)
        )
    })?;
    srv.acl.acl.load_from_text(&path, &text)
}

/// ACL LOAD: replaces the users all-or-nothing. As upstream, the clients of a user no
/// longer in the file are disconnected, and so are the subscribers of a kept user whose
/// channel rights no longer cover their subscriptions; other clients stay.
pub fn load_file(srv: &mut Server, mut cur: Option<&mut Client>) -> Result<(), String> {
    let new = read_file(srv)?;
    let old = std::mem::replace(&mut srv.acl.acl, new);
    for u in old.users() {
        if srv.acl.acl.get_user(u.name()).is_none() {
            kill_clients_of_user(srv, cur.as_deref_mut(), u.name());
        } else if srv.pubsub.clients > 0 {
            kill_revoked_subscribers(srv, cur.as_deref_mut(), u);
        }
    }
    srv.acl.changed();
    Ok(())
}

/// The check of a config-file `user` line (`argv[0]` is `user`) at parse time, as
/// upstream's ACLAppendUserForLoading: a user may be defined once; the rules must apply
/// to a fresh user (unknown commands and categories are reported at load). The error
/// is the text of the fatal config error; as upstream, it quotes `argv[i]` where `i`
/// indexes the rules (so it often names `user`, the username or another rule).
pub fn check_config_user(earlier: &[Vec<String>], argv: &[String]) -> Result<(), String> {
    let Some(name) = argv.get(1) else {
        return Ok(());
    };
    if earlier.iter().any(|u| u.first() == Some(name)) {
        return Err(format!(
            "Error in user declaration '{}': Duplicate user found. A user can only be \
             defined once in config files",
            name
        ));
    }
    thread_local! {
        static CHECKER: acl::Acl =
            acl::Acl::new(Arc::new(build_table(&CommandTable::new())));
    }
    let rules: Vec<&[u8]> = argv[2..].iter().map(|r| r.as_bytes()).collect();
    CHECKER
        .with(|a| a.check_config_rules(&rules))
        .map_err(|(i, msg)| {
            format!(
                "Error in user declaration '{}': {}",
                argv.get(i).map_or("", |s| s.as_str()),
                msg
            )
        })
}

/// `strerror`-like text of an I/O error (without Rust's " (os error N)").
fn io_error_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Start-up: `user` directives of the config file, or the aclfile (not both), as
/// upstream's ACLLoadUsersAtStartup. A configured user starts from scratch (`default`
/// is reset first); the lines were checked when the config was parsed
/// ([`check_config_user`]), so only unknown commands or categories fail here.
pub fn load_at_startup(srv: &mut Server, users: &[Vec<String>]) -> Result<(), String> {
    if !users.is_empty() && !srv.config.aclfile.is_empty() {
        return Err(
            "Configuring Valkey with users defined in valkey.conf and at the same \
                    setting an ACL file path is invalid. This setup is very likely to lead to \
                    configuration errors and security holes, please define either an ACL file \
                    or declare users directly in your valkey.conf, but not both."
                .into(),
        );
    }
    const CRITICAL: &str = "Critical error while loading ACLs. Exiting.";
    for u in users {
        let Some((name, rules)) = u.split_first() else {
            continue;
        };
        if !acl::validate_username(name.as_bytes()) {
            log::error!("Spaces not allowed in ACL usernames");
            return Err(CRITICAL.into());
        }
        let mut all: Vec<&[u8]> = Vec::with_capacity(rules.len() + 1);
        if srv.acl.acl.get_user(name.as_bytes()).is_some() {
            all.push(b"reset");
        }
        all.extend(rules.iter().map(|r| r.as_bytes()));
        match srv.acl.acl.set_user(name.as_bytes(), &all) {
            Ok(()) => {}
            Err(acl::SetUserError::Rule { op, err }) => {
                log::error!(
                    "Error loading ACL rule '{}' for the user named '{}': {}",
                    String::from_utf8_lossy(&op),
                    name,
                    err.message()
                );
                return Err(CRITICAL.into());
            }
            Err(e) => {
                log::error!("Error in user declaration '{}': {}", name, e);
                return Err(CRITICAL.into());
            }
        }
        if srv
            .acl
            .acl
            .get_user(name.as_bytes())
            .is_some_and(|u| !u.enabled())
        {
            log::info!(
                "The user '{}' is disabled (there is no 'on' modifier in the user \
                 description). Make sure this is not a configuration error.",
                name
            );
        }
    }
    if !srv.config.aclfile.is_empty() {
        let new = read_file(srv)
            .map_err(|e| format!("Aborting Valkey startup because of ACL errors: {}", e))?;
        srv.acl.acl = new;
    }
    srv.acl.changed();
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_builds() {
        let cmds = crate::commands::CommandTable::new();
        let specs = cmds.commands.len();
        let t = super::build_table(&cmds);
        assert!(specs > 200);
        assert!(t.lookup(b"get").is_some());
        assert!(t.lookup(b"client|kill").is_some());
    }
}
