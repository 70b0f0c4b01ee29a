//! The command table and the one gate every command passes: [`process_command`].
//!
//! # Layout
//! Commands are data, as upstream's `src/commands/*.json`: each family module exports a
//! `COMMANDS: &[CommandDef]` slice with name, arity (negative means "at least"), flags, ACL
//! categories, key specs and subcommands, and the handlers beside them:
//!
//! | module           | family                                                        |
//! |------------------|---------------------------------------------------------------|
//! | `string.rs`      | GET, SET, INCR, APPEND, GETRANGE, LCS, ...                    |
//! | `keys.rs`        | DEL, EXISTS, EXPIRE, TTL, SCAN, KEYS, RENAME, COPY, OBJECT... |
//! | `connection.rs`  | PING, ECHO, SELECT, HELLO, AUTH, CLIENT, RESET, QUIT          |
//! | `server.rs`      | INFO, CONFIG, COMMAND, DEBUG, DBSIZE, FLUSH*, TIME, SHUTDOWN  |
//! | `transaction.rs` | MULTI, EXEC, DISCARD, WATCH, UNWATCH                          |
//!
//! [`CommandTable::new`] gathers them into one lookup table at startup.
//!
//! # The gate
//! [`process_command`] runs upstream's checks in upstream's order; every rejection is a
//! reply and the connection stays open. [`call`] runs the handler and accounts for it.
//! EXEC runs its queued commands through [`call`] too, after the same gate ran at queueing.

pub mod acl;
pub mod bitops;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod docs_data;
pub mod function;
pub mod geo;
pub mod hash;
pub mod hyperloglog;
pub mod keys;
pub mod list;
pub mod memory;
pub mod migrate;
pub mod pubsub;
pub mod replication;
pub mod scripting;
pub mod server;
pub mod set;
pub mod slowlog;
pub mod sort;
pub mod stream;
pub mod string;
pub mod transaction;
pub mod zset;

use std::collections::HashMap;

use crate::client::{flags as cflags, Client, QueuedCommand};
use crate::reply;
use crate::server::Server;

/// A command handler.
pub type CommandProc = fn(&mut Server, &mut Client);

/// Command flags, as upstream's `CMD_*` (names as COMMAND INFO prints them).
pub mod flags {
    pub const WRITE: u64 = 1 << 0;
    pub const READONLY: u64 = 1 << 1;
    pub const DENYOOM: u64 = 1 << 2;
    pub const MODULE: u64 = 1 << 3;
    pub const ADMIN: u64 = 1 << 4;
    pub const PUBSUB: u64 = 1 << 5;
    pub const NOSCRIPT: u64 = 1 << 6;
    pub const BLOCKING: u64 = 1 << 8;
    pub const LOADING: u64 = 1 << 9;
    pub const STALE: u64 = 1 << 10;
    pub const SKIP_MONITOR: u64 = 1 << 11;
    /// Upstream's CMD_SKIP_COMMANDLOG (formerly SKIP_SLOWLOG; COMMAND INFO prints the new
    /// name since Valkey 8.1).
    pub const SKIP_SLOWLOG: u64 = 1 << 12;
    pub const ASKING: u64 = 1 << 13;
    pub const FAST: u64 = 1 << 14;
    pub const NO_AUTH: u64 = 1 << 15;
    pub const MAY_REPLICATE: u64 = 1 << 16;
    // Upstream's vocabulary, kept so the table can state every flag; no command here
    // sets it yet.
    #[allow(dead_code)]
    pub const SENTINEL: u64 = 1 << 17;
    // Upstream's vocabulary, kept so the table can state every flag; no command here
    // sets it yet.
    #[allow(dead_code)]
    pub const ONLY_SENTINEL: u64 = 1 << 18;
    pub const NO_MANDATORY_KEYS: u64 = 1 << 19;
    pub const PROTECTED: u64 = 1 << 20;
    pub const NO_ASYNC_LOADING: u64 = 1 << 23;
    pub const NO_MULTI: u64 = 1 << 24;
    pub const MOVABLE_KEYS: u64 = 1 << 25;
    pub const ALLOW_BUSY: u64 = 1 << 26;
    // Upstream's vocabulary, kept so the table can state every flag; no command here
    // sets it yet.
    #[allow(dead_code)]
    pub const TOUCHES_ARBITRARY_KEYS: u64 = 1 << 28;

    /// Names in the order COMMAND INFO lists them.
    pub const NAMES: &[(u64, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (MODULE, "module"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_commandlog"),
        (ASKING, "asking"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (MOVABLE_KEYS, "movablekeys"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// ACL categories, as upstream's `ACL_CATEGORY_*`.
pub mod acl_cat {
    pub const KEYSPACE: u64 = 1 << 0;
    pub const READ: u64 = 1 << 1;
    pub const WRITE: u64 = 1 << 2;
    pub const SET: u64 = 1 << 3;
    pub const SORTEDSET: u64 = 1 << 4;
    pub const LIST: u64 = 1 << 5;
    pub const HASH: u64 = 1 << 6;
    pub const STRING: u64 = 1 << 7;
    pub const BITMAP: u64 = 1 << 8;
    pub const HYPERLOGLOG: u64 = 1 << 9;
    pub const GEO: u64 = 1 << 10;
    pub const STREAM: u64 = 1 << 11;
    pub const PUBSUB: u64 = 1 << 12;
    pub const ADMIN: u64 = 1 << 13;
    pub const FAST: u64 = 1 << 14;
    pub const SLOW: u64 = 1 << 15;
    pub const BLOCKING: u64 = 1 << 16;
    pub const DANGEROUS: u64 = 1 << 17;
    pub const CONNECTION: u64 = 1 << 18;
    pub const TRANSACTION: u64 = 1 << 19;
    pub const SCRIPTING: u64 = 1 << 20;

    pub const NAMES: &[(u64, &str)] = &[
        (KEYSPACE, "keyspace"),
        (READ, "read"),
        (WRITE, "write"),
        (SET, "set"),
        (SORTEDSET, "sortedset"),
        (LIST, "list"),
        (HASH, "hash"),
        (STRING, "string"),
        (BITMAP, "bitmap"),
        (HYPERLOGLOG, "hyperloglog"),
        (GEO, "geo"),
        (STREAM, "stream"),
        (PUBSUB, "pubsub"),
        (ADMIN, "admin"),
        (FAST, "fast"),
        (SLOW, "slow"),
        (BLOCKING, "blocking"),
        (DANGEROUS, "dangerous"),
        (CONNECTION, "connection"),
        (TRANSACTION, "transaction"),
        (SCRIPTING, "scripting"),
    ];
}

/// Key spec flags, as upstream's `CMD_KEY_*`.
pub mod key_flags {
    pub const RO: u32 = 1 << 0;
    pub const RW: u32 = 1 << 1;
    pub const OW: u32 = 1 << 2;
    pub const RM: u32 = 1 << 3;
    pub const ACCESS: u32 = 1 << 4;
    pub const UPDATE: u32 = 1 << 5;
    pub const INSERT: u32 = 1 << 6;
    pub const DELETE: u32 = 1 << 7;
    pub const NOT_KEY: u32 = 1 << 8;
    pub const INCOMPLETE: u32 = 1 << 9;
    pub const VARIABLE_FLAGS: u32 = 1 << 10;

    pub const NAMES: &[(u32, &str)] = &[
        (RO, "RO"),
        (RW, "RW"),
        (OW, "OW"),
        (RM, "RM"),
        (ACCESS, "access"),
        (UPDATE, "update"),
        (INSERT, "insert"),
        (DELETE, "delete"),
        (NOT_KEY, "not_key"),
        (INCOMPLETE, "incomplete"),
        (VARIABLE_FLAGS, "variable_flags"),
    ];
}

/// Where the search for keys begins.
#[derive(Clone, Copy, Debug)]
pub enum BeginSearch {
    /// At a fixed argument index.
    Index(i32),
    /// After a keyword, searching from `startfrom` (negative: from the end). COMMAND INFO
    /// and GETKEYS handle it; the first commands using it come with later families.
    #[allow(dead_code)]
    Keyword {
        keyword: &'static str,
        startfrom: i32,
    },
    /// Keys that can not be found from the arguments alone (SORT's BY/GET/STORE).
    Unknown,
}

/// How keys are found after the beginning.
#[derive(Clone, Copy, Debug)]
pub enum FindKeys {
    /// `lastkey` relative to the begin (-1: the last argument), every `step`; `limit` for
    /// dividing the remaining arguments.
    Range {
        lastkey: i32,
        keystep: i32,
        limit: i32,
    },
    /// The number of keys is at `keynumidx`, the first key at `firstkey`.
    Keynum {
        keynumidx: i32,
        firstkey: i32,
        keystep: i32,
    },
    /// See [`BeginSearch::Unknown`].
    Unknown,
}

/// A key specification, as upstream's `keySpec`.
#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    /// Free text shown as `notes` in COMMAND INFO (empty: none).
    pub notes: &'static str,
    pub flags: u32,
    pub begin: BeginSearch,
    pub find: FindKeys,
}

impl KeySpec {
    /// The common case: keys from index `first` to `last` (-1: the end) every `step`.
    pub const fn range(flags: u32, first: i32, lastkey: i32, step: i32) -> KeySpec {
        KeySpec {
            notes: "",
            flags,
            begin: BeginSearch::Index(first),
            find: FindKeys::Range {
                lastkey,
                keystep: step,
                limit: 0,
            },
        }
    }

    /// Keys counted by the argument at `keynumidx` (relative to `first`), the first key
    /// at `firstkey` (relative to `first`), every `keystep`.
    pub const fn keynum(
        flags: u32,
        first: i32,
        keynumidx: i32,
        firstkey: i32,
        keystep: i32,
    ) -> KeySpec {
        KeySpec {
            notes: "",
            flags,
            begin: BeginSearch::Index(first),
            find: FindKeys::Keynum {
                keynumidx,
                firstkey,
                keystep,
            },
        }
    }

    /// Adds the `notes` text.
    pub const fn notes(mut self, notes: &'static str) -> KeySpec {
        self.notes = notes;
        self
    }
}

/// One command, or one subcommand of a container command.
pub struct CommandDef {
    /// Lower-case name (for a subcommand, the part after `|`).
    pub name: &'static str,
    pub arity: i32,
    pub flags: u64,
    pub acl_categories: u64,
    pub key_specs: &'static [KeySpec],
    pub subcommands: &'static [CommandDef],
    pub proc_: CommandProc,
    /// COMMAND DOCS fields.
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    pub complexity: &'static str,
    /// Command tips (`nondeterministic_output`, `request_policy:...`).
    pub tips: &'static [&'static str],
}

impl CommandDef {
    /// A command with no key specs, subcommands, docs or tips; chain the builders below
    /// to add them. `const`, so tables stay static data.
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: u64,
        acl_categories: u64,
        proc_: CommandProc,
    ) -> CommandDef {
        CommandDef {
            name,
            arity,
            flags,
            acl_categories,
            key_specs: &[],
            subcommands: &[],
            proc_,
            group: "generic",
            since: "1.0.0",
            summary: "",
            complexity: "",
            tips: &[],
        }
    }

    pub const fn keys(mut self, key_specs: &'static [KeySpec]) -> CommandDef {
        self.key_specs = key_specs;
        self
    }

    pub const fn subs(mut self, subcommands: &'static [CommandDef]) -> CommandDef {
        self.subcommands = subcommands;
        self
    }

    pub const fn doc(
        mut self,
        group: &'static str,
        since: &'static str,
        summary: &'static str,
        complexity: &'static str,
    ) -> CommandDef {
        self.group = group;
        self.since = since;
        self.summary = summary;
        self.complexity = complexity;
        self
    }

    pub const fn tips(mut self, tips: &'static [&'static str]) -> CommandDef {
        self.tips = tips;
        self
    }
}

/// A handler for container commands called without a valid subcommand (never reached: the
/// gate answers first).
pub fn container_proc(_: &mut Server, c: &mut Client) {
    let sub = c.argv.get(1).cloned().unwrap_or_default();
    let name = String::from_utf8_lossy(&c.argv[0]).into_owned();
    c.reply
        .add_error(&reply::err_unknown_subcommand(&name, &sub));
}

/// Per-command statistics (INFO commandstats).
#[derive(Default, Clone, Debug)]
pub struct CmdStats {
    pub calls: u64,
    pub usec: u64,
    pub rejected_calls: u64,
    pub failed_calls: u64,
}

/// A command as registered at runtime: its definition, full name and statistics.
pub struct Command {
    pub def: &'static CommandDef,
    /// `get` or `client|list`.
    pub full_name: String,
    /// The same, for `Client::last_cmd` (the table lives as long as the process).
    pub full_name_static: &'static str,
    pub id: usize,
    pub parent: Option<usize>,
    /// Subcommand ids by lower-case name.
    pub subs: HashMap<Vec<u8>, usize>,
    /// Disabled by `rename-command <name> ""`: no name reaches it, and COMMAND, COMMAND
    /// COUNT and COMMAND LIST leave it out, as upstream.
    pub disabled: bool,
}

/// A cheap hasher for the command-name table: the keys are a fixed set of short names
/// chosen by us, not by clients, so flooding resistance is not needed and SipHash would
/// be most of the cost of a lookup.
#[derive(Default, Clone, Copy)]
pub struct NameHasherBuilder;

pub struct NameHasher(u64);

impl std::hash::BuildHasher for NameHasherBuilder {
    type Hasher = NameHasher;
    fn build_hasher(&self) -> NameHasher {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        // FNV-1a.
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// All commands, looked up by lower-case name.
pub struct CommandTable {
    pub commands: Vec<Command>,
    by_name: HashMap<Vec<u8>, usize, NameHasherBuilder>,
    pub stats: Vec<CmdStats>,
}

/// Every family's table.
pub fn all_families() -> [&'static [CommandDef]; 24] {
    [
        string::COMMANDS,
        config::COMMANDS,
        keys::COMMANDS,
        connection::COMMANDS,
        server::COMMANDS,
        transaction::COMMANDS,
        list::COMMANDS,
        hash::COMMANDS,
        set::COMMANDS,
        zset::COMMANDS,
        sort::COMMANDS,
        pubsub::COMMANDS,
        bitops::COMMANDS,
        hyperloglog::COMMANDS,
        geo::COMMANDS,
        stream::COMMANDS,
        acl::COMMANDS,
        slowlog::COMMANDS,
        replication::COMMANDS,
        memory::COMMANDS,
        scripting::COMMANDS,
        function::COMMANDS,
        cluster::COMMANDS,
        migrate::COMMANDS,
    ]
}

impl CommandTable {
    pub fn new() -> CommandTable {
        let mut t = CommandTable {
            commands: Vec::new(),
            by_name: HashMap::default(),
            stats: vec![],
        };
        for fam in all_families() {
            for def in fam {
                let id = t.push(def, def.name.to_string(), None);
                t.by_name.insert(def.name.as_bytes().to_vec(), id);
                for sub in def.subcommands {
                    let full = format!("{}|{}", def.name, sub.name);
                    let sid = t.push(sub, full, Some(id));
                    t.commands[id]
                        .subs
                        .insert(sub.name.as_bytes().to_vec(), sid);
                }
            }
        }
        t.stats = vec![CmdStats::default(); t.commands.len()];
        t
    }

    fn push(
        &mut self,
        def: &'static CommandDef,
        full_name: String,
        parent: Option<usize>,
    ) -> usize {
        let id = self.commands.len();
        let full_name_static: &'static str = Box::leak(full_name.clone().into_boxed_str());
        self.commands.push(Command {
            def,
            full_name,
            full_name_static,
            id,
            parent,
            subs: HashMap::new(),
            disabled: false,
        });
        id
    }

    /// Looks a top-level command up by name, case-insensitively, without allocating for
    /// names of ordinary length.
    #[inline]
    pub fn lookup_base(&self, name: &[u8]) -> Option<usize> {
        let mut buf = [0u8; 32];
        if name.len() <= buf.len() {
            for (d, s) in buf.iter_mut().zip(name) {
                *d = s.to_ascii_lowercase();
            }
            self.by_name.get(&buf[..name.len()]).copied()
        } else {
            None
        }
    }

    /// Looks a command up from argv, resolving a subcommand of a container command.
    /// Returns `Err(Some(parent))` for a container with an unknown subcommand and
    /// `Err(None)` for an unknown command.
    pub fn lookup(&self, argv: &[Vec<u8>]) -> Result<usize, Option<usize>> {
        let Some(id) = self.lookup_base(&argv[0]) else {
            return Err(None);
        };
        let cmd = &self.commands[id];
        if cmd.subs.is_empty() || argv.len() < 2 {
            return Ok(id);
        }
        match cmd.subs.get(&argv[1].to_ascii_lowercase()) {
            Some(&s) => Ok(s),
            None => Err(Some(id)),
        }
    }

    /// `rename-command old new` (already checked by the configuration loader): the
    /// command answers to `new` only, or to nothing when `new` is empty. As upstream, it
    /// keeps its flags, key specs, ACL identity and reported name (COMMAND INFO shows
    /// the original name). Returns false if `old` is not a command name.
    pub fn rename(&mut self, old: &str, new: &str) -> bool {
        let Some(id) = self.by_name.remove(old.to_ascii_lowercase().as_bytes()) else {
            return false;
        };
        if new.is_empty() {
            self.commands[id].disabled = true;
        } else {
            self.by_name
                .insert(new.to_ascii_lowercase().into_bytes(), id);
        }
        true
    }

    /// Whether the command (or its container) was disabled by `rename-command`.
    pub fn is_disabled(&self, id: usize) -> bool {
        let cmd = &self.commands[id];
        cmd.disabled || cmd.parent.is_some_and(|p| self.commands[p].disabled)
    }

    /// Looks a command up by its full name (`client|list`).
    pub fn lookup_full(&self, name: &[u8]) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        match lower.iter().position(|&b| b == b'|') {
            None => self.by_name.get(&lower).copied(),
            Some(p) => {
                let id = *self.by_name.get(&lower[..p])?;
                self.commands[id].subs.get(&lower[p + 1..]).copied()
            }
        }
    }

    /// Top-level command ids.
    pub fn top_level(&self) -> impl Iterator<Item = &Command> {
        self.commands
            .iter()
            .filter(|c| c.parent.is_none() && !c.disabled)
    }
}

impl Default for CommandTable {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether the arity check fails.
#[inline]
pub(crate) fn arity_mismatch(arity: i32, argc: usize) -> bool {
    (arity > 0 && argc as i32 != arity) || (argc as i32) < -arity
}

/// Formats `unknown command` as upstream: the name and up to 128 bytes of each argument.
fn err_unknown_command(argv: &[Vec<u8>]) -> String {
    let mut args = String::new();
    for a in argv.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push('\'');
        args.push_str(&reply::sanitize(a, room));
        args.push_str("' ");
    }
    format!(
        "ERR unknown command '{}', with args beginning with: {}",
        reply::sanitize(&argv[0], 128),
        args
    )
}

/// Rejects the command with an error: counts it as rejected and, inside MULTI, makes
/// EXEC fail (upstream's `rejectCommand` + `flagTransaction`).
fn reject(srv: &mut Server, c: &mut Client, cmd: Option<usize>, err: &str) {
    if let Some(id) = cmd {
        srv.commands.stats[id].rejected_calls += 1;
    }
    if c.has_flag(cflags::MULTI) {
        c.flags |= cflags::DIRTY_EXEC;
    }
    // A refused EXEC (arity, NOAUTH, NOPERM...) ends the transaction, as upstream's
    // execCommandAbort: the error is reported inside EXECABORT, with its code for a
    // shared error (NOAUTH, NOPERM) and without the generic `ERR ` of a formatted one.
    if cmd.is_some_and(|id| srv.commands.commands[id].def.name == "exec") {
        crate::commands::transaction::discard_transaction(srv, c);
        let why = err.strip_prefix('-').unwrap_or(err);
        let why = why.strip_prefix("ERR ").unwrap_or(why);
        let e = format!("EXECABORT Transaction discarded because of: {}", why);
        c.reply.add_error(&e);
    } else {
        c.reply.add_error(err);
    }
    srv.stats.note_error(&c.reply);
}

/// The gate: every command from every source passes here, with upstream's checks in
/// upstream's order. Returns false if the client must be closed now.
pub fn process_command(srv: &mut Server, c: &mut Client) -> bool {
    // ASKING covers the next command only (the whole transaction inside MULTI), as
    // upstream's resetClient.
    let asking_before = c.flags & cflags::ASKING != 0
        && !c
            .argv
            .first()
            .is_some_and(|a| a.eq_ignore_ascii_case(b"asking"));
    let r = process_command_gate(srv, c);
    if asking_before && c.flags & cflags::MULTI == 0 {
        c.flags &= !cflags::ASKING;
    }
    // CLIENT CACHING applies to the next command only (upstream's resetClient).
    if c.flags & cflags::TRACKING_CACHING != 0 {
        crate::tracking::reset_caching_after_command(srv, c);
    }
    r
}

/// [`process_command`] without the per-command state reset.
fn process_command_gate(srv: &mut Server, c: &mut Client) -> bool {
    if c.argv.is_empty() {
        return true;
    }
    // 0. A command of a script (server.call): upstream's scriptCall checks instead.
    if c.flags & cflags::SCRIPT != 0 {
        return crate::scripting::run::gate(srv, c);
    }
    // 1. Lookup.
    let found = srv.commands.lookup(&c.argv);

    // 2. Authentication, before telling the client anything about the command: as in
    //    Valkey 9, an unauthenticated client gets NOAUTH even for an unknown command or a
    //    wrong arity, so it learns nothing about the command table.
    if !srv.client_is_authenticated(c) {
        let no_auth =
            matches!(found, Ok(id) if srv.commands.commands[id].def.flags & flags::NO_AUTH != 0);
        if !no_auth {
            reject(srv, c, found.ok(), reply::ERR_NOAUTH);
            return true;
        }
    }

    // 3. Unknown command or subcommand, and arity.
    let id = match found {
        Ok(id) => id,
        Err(None) => {
            let e = err_unknown_command(&c.argv);
            reject(srv, c, None, &e);
            return true;
        }
        Err(Some(parent)) => {
            let name = srv.commands.commands[parent].def.name;
            let e = reply::err_unknown_subcommand(name, &c.argv[1]);
            reject(srv, c, None, &e);
            return true;
        }
    };
    let def = srv.commands.commands[id].def;
    if arity_mismatch(def.arity, c.argv.len()) {
        let full = srv.commands.commands[id].full_name.clone();
        let e = reply::err_arity(&full);
        reject(srv, c, Some(id), &e);
        return true;
    }
    c.last_cmd = srv.commands.commands[id].full_name_static;
    // The flags the checks below use: an EVAL of a script with a shebang takes
    // write/denyoom/stale from the script's flags (upstream's evalGetCommandFlags).
    let cmd_flags = if def.flags & flags::NOSCRIPT != 0 && scripting::is_eval(def.name) {
        scripting::eval_command_flags(srv, &c.argv, def.flags)
    } else {
        def.flags
    };

    // 4. Protected commands (DEBUG, MODULE) behind their enable-* directive.
    if def.flags & flags::PROTECTED != 0 {
        let (mode, opt) = if def.name == "module" {
            (srv.config.enable_module_command, "enable-module-command")
        } else {
            (srv.config.enable_debug_command, "enable-debug-command")
        };
        let local = c.has_flag(cflags::UNIX_SOCKET)
            || c.addr.starts_with("127.")
            || c.addr.starts_with("[::1]");
        let allowed = match mode {
            crate::config::EnableMode::Yes => true,
            crate::config::EnableMode::Local => local,
            crate::config::EnableMode::No => false,
        };
        if !allowed {
            let e = format!(
                "ERR {} command not allowed. If the {} option is set to \"local\", you can run \
                 it from a local connection, otherwise you need to set this option in the \
                 configuration file, and then restart the server.",
                def.name.to_ascii_uppercase(),
                opt
            );
            reject(srv, c, Some(id), &e);
            return true;
        }
    }

    // 5. Commands that can not run inside MULTI.
    if c.has_flag(cflags::MULTI) && def.flags & flags::NO_MULTI != 0 {
        let e = format!(
            "ERR Command '{}' not allowed inside a transaction",
            srv.commands.commands[id].full_name
        );
        reject(srv, c, Some(id), &e);
        return true;
    }

    // 5b. RESP2 subscriber mode: only the (un)subscribe commands, PING, QUIT and RESET.
    if c.has_flag(cflags::PUBSUB)
        && c.reply.resp == 2
        && !matches!(
            srv.commands.commands[id].full_name.as_str(),
            "ping"
                | "subscribe"
                | "ssubscribe"
                | "unsubscribe"
                | "sunsubscribe"
                | "psubscribe"
                | "punsubscribe"
                | "quit"
                | "reset"
        )
    {
        let e = format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / \
             RESET are allowed in this context",
            srv.commands.commands[id].full_name
        );
        reject(srv, c, Some(id), &e);
        return true;
    }

    // 6. ACL: command and subcommand, keys, channels and databases (src/aclsrv.rs); a
    //    user allowed everything costs one comparison.
    let argv = std::mem::take(&mut c.argv);
    let denied = crate::aclsrv::check(srv, c, id, &argv);
    c.argv = argv;
    if let Some(d) = denied {
        let ctx = if c.has_flag(cflags::MULTI) {
            ::acl::LogContext::Multi
        } else {
            ::acl::LogContext::Toplevel
        };
        crate::aclsrv::log_denial(srv, c, id, &c.argv, d, ctx);
        let e = crate::aclsrv::deny_message(srv, &c.user, id, d);
        reject(srv, c, Some(id), &e);
        return true;
    }
    // 7. Cluster redirection (src/cluster/redirect.rs): MOVED, ASK, CROSSSLOT, TRYAGAIN,
    //    CLUSTERDOWN. Not for our primary's stream nor while loading the AOF. A refused
    //    EXEC discards the transaction and replies the plain error, as upstream.
    if srv.config.cluster_enabled && !c.has_flag(cflags::PRIMARY) && !srv.rdb.loading {
        if let Some(e) = crate::cluster::check_redirect(srv, c, id) {
            srv.commands.stats[id].rejected_calls += 1;
            if def.name == "exec" {
                crate::commands::transaction::discard_transaction(srv, c);
            } else if c.has_flag(cflags::MULTI) {
                c.flags |= cflags::DIRTY_EXEC;
            }
            c.reply.add_error(&e);
            srv.stats.note_error(&c.reply);
            return true;
        }
    }
    // 8. maxmemory: evict (a bounded slice), and refuse commands that would use more
    //    memory when nothing can be evicted (src/evict.rs). Not while serving a replica
    //    (REPLCONF ACK): it is out of the client table then, so the DELs of the evictions
    //    would miss its stream; its commands never use memory, the next command or the
    //    eviction time event evicts instead.
    if srv.config.maxmemory != 0 && !c.has_flag(cflags::REPLICA) {
        let is_exec = def.name == "exec";
        let denyoom = cmd_flags & flags::DENYOOM != 0
            || (is_exec
                && c.mstate
                    .iter()
                    .any(|q| srv.commands.commands[q.id].def.flags & flags::DENYOOM != 0));
        // Invalidations of keys this client tracked and eviction removed go before
        // its reply, as upstream flushes them right after performEvictions.
        let oom = crate::evict::oom_check(srv, denyoom);
        crate::tracking::handle_pending(srv, c);
        if oom {
            reject(srv, c, Some(id), crate::evict::ERR_OOM);
            return true;
        }
    }
    // 8a. Client-side caching: keep the key table within tracking-table-max-keys.
    if srv.tracking.tracking_clients() != 0 {
        crate::tracking::limit_used_slots(srv);
        crate::tracking::handle_pending(srv, c);
    }
    // 8b. Writes (and PING) are refused while the last background save failed
    //     (`stop-writes-on-bgsave-error`), as upstream's writeCommandsDeniedByDiskError.
    let mut disk_err = if crate::rdb::writes_denied(srv) {
        Some(crate::rdb::ERR_MISCONF.to_string())
    } else {
        crate::aof::write_error(srv)
    };
    // 8c. Not enough good replicas (`min-replicas-to-write`): writes only, not PING.
    let deny_ping = disk_err.is_some();
    if disk_err.is_none() {
        disk_err = crate::replication::primary::min_replicas_error(srv).map(str::to_string);
    }
    if let Some(disk_err) = disk_err {
        let writes = |q: &crate::client::QueuedCommand| {
            srv.commands.commands[q.id].def.flags & flags::WRITE != 0
        };
        let is_exec = def.name == "exec";
        let is_write = cmd_flags & flags::WRITE != 0 || (is_exec && c.mstate.iter().any(writes));
        if is_write || (deny_ping && def.name == "ping") {
            if is_exec {
                // EXEC itself is refused: the transaction is discarded.
                srv.commands.stats[id].rejected_calls += 1;
                crate::commands::transaction::discard_transaction(srv, c);
                let e = format!("EXECABORT Transaction discarded because of: {}", disk_err);
                c.reply.add_error(&e);
                srv.stats.note_error(&c.reply);
            } else {
                reject(srv, c, Some(id), &disk_err);
            }
            return true;
        }
    }
    // 9. Replica: writes from normal clients are refused with `replica-read-only`, and
    //    with `replica-serve-stale-data no` only commands flagged STALE run while the
    //    link with the primary is down.
    if crate::replication::replica::is_replica(srv) && !c.has_flag(cflags::PRIMARY) {
        let writes = |q: &crate::client::QueuedCommand| {
            srv.commands.commands[q.id].def.flags & flags::WRITE != 0
        };
        let is_exec = def.name == "exec";
        let is_write = cmd_flags & flags::WRITE != 0 || (is_exec && c.mstate.iter().any(writes));
        if is_write && srv.config.get("replica-read-only").as_deref() == Some("yes") {
            reject(
                srv,
                c,
                Some(id),
                "READONLY You can't write against a read only replica.",
            );
            return true;
        }
        let stale = |q: &crate::client::QueuedCommand| {
            srv.commands.commands[q.id].def.flags & flags::STALE == 0
        };
        let deny_stale = cmd_flags & flags::STALE == 0 || (is_exec && c.mstate.iter().any(stale));
        if deny_stale
            && !crate::replication::replica::link_up(srv)
            && srv.config.get("replica-serve-stale-data").as_deref() == Some("no")
        {
            reject(
                srv,
                c,
                Some(id),
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            );
            return true;
        }
    }

    // 9a. Loading, then a busy script (upstream's place): only commands flagged
    //     `loading` / `allow-busy` run for clients served meanwhile (src/busy.rs).
    if let Some(e) = crate::busy::refusal(srv, c, id) {
        reject(srv, c, Some(id), e);
        return true;
    }

    // 9b. A replica or monitor connection may not touch the keyspace; then CLIENT PAUSE
    //     postpones the commands it covers (src/pause.rs).
    if c.has_flag(cflags::REPLICA | cflags::MONITOR) {
        let touches = |cid: usize| {
            srv.commands.commands[cid].def.flags
                & (flags::WRITE | flags::READONLY | flags::MAY_REPLICATE)
                != 0
        };
        if touches(id) || (def.name == "exec" && c.mstate.iter().any(|q| touches(q.id))) {
            reject(
                srv,
                c,
                Some(id),
                "ERR Replica can't interact with the keyspace",
            );
            return true;
        }
    }
    if srv.pause.any() && crate::pause::must_postpone(srv, c, id) {
        crate::pause::postpone(srv, c);
        return true;
    }

    // 10. MULTI queueing: everything but the transaction control commands is queued.
    if c.has_flag(cflags::MULTI)
        && !matches!(
            def.name,
            "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
        )
    {
        let argv = std::mem::take(&mut c.argv);
        c.mstate_argv_len_sum = c
            .mstate_argv_len_sum
            .saturating_add(argv.iter().map(|a| a.len()).sum());
        c.mstate.push(QueuedCommand { id, argv });
        c.reply.add_status("QUEUED");
        return true;
    }

    // 11. The call.
    call(srv, c, id);
    true
}

/// Runs the handler of command `id` on the client's argv and accounts for it (INFO
/// commandstats, errorstats), as upstream's `call()`.
pub fn call(srv: &mut Server, c: &mut Client, id: usize) {
    let def = srv.commands.commands[id].def;
    let errors_before = c.reply.errors;
    let reply_before = c.reply.buf.len();
    // The large-request log needs the arguments as they came: handlers may move them
    // into the keyspace. Only a command that will be logged pays for a copy.
    let logged_argv = large_request_argv(srv, c, def.flags);
    let start = crate::util::monotonic_ticks();
    let prev_current = srv.current_client.replace(c.slot);
    let prev_no_touch = srv.current_client_no_touch;
    srv.current_client_no_touch = c.has_flag(cflags::NO_TOUCH) && def.name != "touch";
    let dirty_before = srv.dirty;
    let offset_before = srv.repl.master_repl_offset;
    // Handlers may move arguments into the keyspace (SET takes its value buffer), so a
    // write's argv is copied first when it may have to be propagated.
    let mut saved_argv = (def.flags & flags::WRITE != 0
        && crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL))
    .then(|| c.argv.clone());
    // MONITOR gets the arguments as they came (handlers may move them), after the call.
    let monitor_argv = (!srv.monitors.is_empty()
        && def.flags & (flags::ADMIN | flags::SKIP_MONITOR) == 0
        && !c.has_flag(cflags::REEXECUTING))
    .then(|| c.argv.clone());
    let prev_tracking_id = std::mem::replace(&mut srv.tracking.current_id, c.id);
    srv.propagation.nesting += 1;
    (def.proc_)(srv, c);
    srv.propagation.nesting -= 1;
    // Client-side caching: remember the keys a read-only command fetched for a client
    // tracking in default mode (upstream's call()).
    if def.flags & flags::READONLY != 0
        && c.flags & (cflags::TRACKING | cflags::TRACKING_BCAST) == cflags::TRACKING
    {
        crate::tracking::remember_keys(srv, c, def);
    }
    srv.tracking.current_id = prev_tracking_id;
    if let Some(argv) = monitor_argv {
        crate::monitor::feed(srv, c, &argv);
    }
    let usec = crate::util::ticks_to_us(crate::util::monotonic_ticks().wrapping_sub(start));
    // A command that blocked is accounted for when it runs again, times out or is
    // unblocked (as upstream, which skips the stats of a blocked call). The logs come
    // before propagation, which moves the saved arguments away.
    let blocked = c.has_flag(cflags::BLOCKED);
    // A blocked command's time adds up over its runs (upstream's c->duration).
    let usec = match c.bstate.as_deref_mut() {
        Some(bs) if blocked => {
            bs.duration_us = bs.duration_us.saturating_add(usec);
            usec
        }
        Some(bs) => usec.saturating_add(std::mem::take(&mut bs.duration_us)),
        None => usec,
    };
    if !blocked {
        let st = &mut srv.commands.stats[id];
        st.calls += 1;
        st.usec += usec;
        if srv.config.latency_tracking {
            srv.latency.commands.record(id, usec);
        }
        if c.reply.errors != errors_before {
            st.failed_calls += 1;
            srv.stats.note_error(&c.reply);
        }
        c.commands_processed += 1;
        srv.stats.numcommands += 1;
        let reply_bytes = c.reply.buf.len().saturating_sub(reply_before);
        log_command(
            srv,
            c,
            def.flags,
            usec,
            reply_bytes,
            logged_argv,
            saved_argv.as_deref(),
        );
    }
    // Propagate the effect of a write (upstream's call: dirty, or forced), unless the
    // command asked not to; the queue is flushed when the execution unit ends.
    // Only an increase counts: SAVE and DEBUG LOADAOF reset the counter to 0 (upstream
    // clamps a negative difference to 0), and must not propagate themselves.
    let dirty = srv.dirty > dirty_before;
    let rewritten = c.propagate_argv.take();
    // EXEC is never propagated itself: its commands were, and the unit is wrapped in
    // MULTI/EXEC when it has several operations.
    if (dirty || c.has_flag(cflags::FORCE_PROP))
        && !c.has_flag(cflags::PREVENT_PROP | cflags::BLOCKED)
        && crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL)
        && def.name != "exec"
    {
        let argv = rewritten
            .or_else(|| saved_argv.take())
            .unwrap_or_else(|| c.argv.clone());
        crate::propagate::also_propagate(srv, c.db, argv, crate::propagate::PROPAGATE_ALL);
    }
    c.flags &= !(cflags::PREVENT_PROP | cflags::FORCE_PROP);
    if srv.propagation.nesting == 0 && !srv.propagation.ops.is_empty() {
        // Upstream's CMD_TOUCHES_ARBITRARY_KEYS (hidden from COMMAND INFO): the keys
        // these expire on the way are not wrapped in MULTI/EXEC.
        let arbitrary = matches!(def.name, "scan" | "keys" | "randomkey");
        crate::propagate::propagate_pending_as(srv, !arbitrary);
    }
    if srv.propagation.nesting == 0 && srv.repl.master_repl_offset != offset_before {
        // The stream offset after the client's last command that fed the stream, for
        // WAIT (upstream's call(): only when the offset moved).
        c.woff = srv.repl.master_repl_offset;
    }
    // Messages published to the client itself follow its reply (after the whole EXEC).
    if !srv.pubsub.self_msgs.is_empty() && !c.has_flag(cflags::IN_EXEC) {
        crate::pubsub::flush_self(srv, c);
    }
    // Then the invalidations of keys the command modified that the client itself (or a
    // client redirecting to it) tracked, as upstream's pending push messages.
    if !c.has_flag(cflags::IN_EXEC) {
        crate::tracking::handle_pending(srv, c);
    }
    srv.current_client = prev_current;
    srv.current_client_no_touch = prev_no_touch;
    if srv.current_client_add_flags != 0 {
        c.flags |= srv.current_client_add_flags;
        srv.current_client_add_flags = 0;
    }
}

/// The truncated argv and size of a request the large-request log will keep, taken
/// before the handler runs; `None` (no allocation) for every other command.
#[inline]
fn large_request_argv(srv: &Server, c: &Client, cmd_flags: u64) -> Option<(i64, Vec<Vec<u8>>)> {
    let threshold = srv.config.commandlog_request_larger_than;
    if threshold < 0 || srv.config.commandlog_large_request_max_len == 0 {
        return None;
    }
    if cmd_flags & flags::SKIP_SLOWLOG != 0 {
        return None;
    }
    // Cheap bound first: payload plus at most 25 bytes of framing per argument.
    let payload: usize = c.argv.iter().map(|a| a.len()).sum();
    let bound = payload.saturating_add(c.argv.len().saturating_add(1).saturating_mul(25));
    if (bound as u64) < threshold as u64 {
        return None;
    }
    let size = crate::commandlog::request_bytes(&c.argv);
    (size >= threshold).then(|| (size, crate::commandlog::truncate_argv(&c.argv)))
}

/// The command logs and the latency monitor after a command ran (upstream's
/// commandlogPushCurrentCommand and latencyAddSampleIfNeeded in call()).
#[inline]
fn log_command(
    srv: &mut Server,
    c: &Client,
    cmd_flags: u64,
    usec: u64,
    reply_bytes: usize,
    logged_argv: Option<(i64, Vec<Vec<u8>>)>,
    saved_argv: Option<&[Vec<u8>]>,
) {
    let lat_threshold = srv.config.latency_monitor_threshold;
    if lat_threshold > 0 {
        let ms = usec / 1000;
        if ms >= lat_threshold as u64 {
            let event = if cmd_flags & flags::FAST != 0 {
                "fast-command"
            } else {
                "command"
            };
            let now = crate::util::mstime() / 1000;
            srv.latency.add_sample(event, ms, now);
        }
    }
    push_command_logs(
        srv,
        c,
        cmd_flags,
        usec,
        reply_bytes,
        logged_argv,
        saved_argv,
    );
}

/// A blocked command that ends without running again (timeout, CLIENT UNBLOCK) goes
/// into the command logs with its total time, as upstream's updateStatsOnUnblock.
pub(crate) fn log_unblocked(
    srv: &mut Server,
    c: &Client,
    id: usize,
    usec: u64,
    reply_bytes: usize,
) {
    let cmd_flags = srv.commands.commands[id].def.flags;
    let logged_argv = large_request_argv(srv, c, cmd_flags);
    push_command_logs(srv, c, cmd_flags, usec, reply_bytes, logged_argv, None);
}

/// The slow, large-request and large-reply logs (upstream's commandlogPushCurrentCommand).
#[inline]
fn push_command_logs(
    srv: &mut Server,
    c: &Client,
    cmd_flags: u64,
    usec: u64,
    reply_bytes: usize,
    logged_argv: Option<(i64, Vec<Vec<u8>>)>,
    saved_argv: Option<&[Vec<u8>]>,
) {
    use crate::commandlog::{Limits, LARGE_REPLY, LARGE_REQUEST, SLOW};
    if cmd_flags & flags::SKIP_SLOWLOG != 0 {
        return;
    }
    let cfg = &srv.config;
    let slow = Limits {
        threshold: cfg.slowlog_log_slower_than,
        max_len: cfg.slowlog_max_len,
    };
    let req = Limits {
        threshold: cfg.commandlog_request_larger_than,
        max_len: cfg.commandlog_large_request_max_len,
    };
    let rep = Limits {
        threshold: cfg.commandlog_reply_larger_than,
        max_len: cfg.commandlog_large_reply_max_len,
    };
    let usec = i64::try_from(usec).unwrap_or(i64::MAX);
    let reply_bytes = i64::try_from(reply_bytes).unwrap_or(i64::MAX);
    // Nothing to log and no log over its length: the common case stops here.
    let trim =
        |l: &Limits, kind: usize| l.threshold >= 0 && (srv.commandlog.len(kind) as u64) > l.max_len;
    if !slow.hits(usec)
        && logged_argv.is_none()
        && !rep.hits(reply_bytes)
        && !trim(&slow, SLOW)
        && !trim(&req, LARGE_REQUEST)
        && !trim(&rep, LARGE_REPLY)
    {
        return;
    }
    let now = crate::util::mstime() / 1000;
    let (req_size, pre) = match logged_argv {
        Some((size, argv)) => (size, Some(argv)),
        None => (0, None),
    };
    // The arguments as they came: the copy taken before the call if any.
    let source: &[Vec<u8>] = saved_argv.unwrap_or(&c.argv);
    let mut argv_for = || {
        pre.clone()
            .unwrap_or_else(|| crate::commandlog::truncate_argv(source))
    };
    let logs = &mut srv.commandlog;
    logs.push_if_needed(SLOW, slow, usec, c, &mut argv_for, now);
    logs.push_if_needed(LARGE_REQUEST, req, req_size, c, &mut argv_for, now);
    logs.push_if_needed(LARGE_REPLY, rep, reply_bytes, c, &mut argv_for, now);
}
