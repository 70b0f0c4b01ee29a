//! Valkey's ACL as pure logic: users, rules (upstream's `ACL SETUSER` grammar, Valkey
//! 9.1's `db=` rules included), selectors, the per-command permission check, rendering
//! (`ACL LIST`, `ACL GETUSER`), the aclfile format and the `ACL LOG` grouping.
//!
//! The crate knows nothing of the server. The server gives it its command table once:
//!
//! ```ignore
//! let table = acl::CommandTable::new(vec![
//!     acl::CommandSpec { id: 0, name: "get".into(), categories: READ | STRING | FAST,
//!                        parent: None, no_auth: false },
//!     acl::CommandSpec { id: 1, name: "client".into(), .. },
//!     acl::CommandSpec { id: 2, name: "client|kill".into(), parent: Some(1), .. },
//! ])?;
//! let mut acl = acl::Acl::new(std::sync::Arc::new(table));
//! ```
//!
//! Category bits are those of the server's `commands::acl_cat` (bit order of upstream's
//! category table, see [`CATEGORIES`]), so the server passes its bitmasks as they are.
//! Command ids must be below [`MAX_COMMAND_ID`]; subcommands have their own id and name
//! `parent|sub` (lowercase).
//!
//! # Server integration
//! - `ACL SETUSER name rule...`: [`validate_username`], then [`Acl::set_user`] (merges
//!   `(`...`)` arguments as upstream, applies all rules to a copy, commits only if all
//!   succeed). Its error's `Display` is upstream's reply text without the `ERR ` prefix.
//! - `ACL GETUSER`: [`Acl::get_user`] then [`User::getuser_info`]; `ACL LIST`:
//!   [`describe_user`] per user in [`Acl::users`] order; `ACL USERS`: the names.
//! - `ACL DELUSER`: [`Acl::del_user`] (refuses `default`); the server disconnects clients.
//! - AUTH / HELLO: [`Acl::check_credentials`]; `requirepass`: `set_user("default",
//!   [">pass"])` after `resetpass`, or `nopass` when empty.
//! - The gate: [`User::check_all_perm`] with a [`CheckRequest`] built from the command's
//!   key specs (flags as the server's `key_flags` bits), channels, and databases the
//!   command touches, each with its argv position. On denial, [`Denied`] gives the reason
//!   (upstream's priority DB < command < key < channel) and the argv position: the
//!   server builds `-NOPERM` (`No permissions to run the '<fullname>' command`,
//!   `No permissions to access a key`, `No permissions to access a channel`,
//!   `No permissions to access database`) and the ACL LOG entry ([`AclLog::add`]; the
//!   object is the command's full name for a command denial, else `argv[pos]`).
//! - `ACL SAVE`: [`Acl::to_file_text`] (write to a temp file, fsync, rename, mode 0600).
//!   `ACL LOAD` / startup: [`Acl::load_from_text`] returns a new user set, or upstream's
//!   accumulated error text (the reference's ACL LOAD reply without `ERR `); nothing changes on error.
//! - `ACL CAT [cat]`: [`CATEGORIES`], [`CommandTable::commands_in_category`].

pub mod glob;
pub mod sha256;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

/// Upstream's ACL categories in bit order: bit `i` of a category mask is `CATEGORIES[i]`.
pub const CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// The bit of a category name (case-insensitive), as upstream's
/// `ACLGetCommandCategoryFlagByName`.
pub fn category_flag(name: &[u8]) -> Option<u64> {
    CATEGORIES
        .iter()
        .position(|c| c.as_bytes().eq_ignore_ascii_case(name))
        .map(|i| 1u64 << i)
}

/// Key spec flags, same bits as the server's `commands::key_flags` (upstream's
/// `CMD_KEY_*`). Only ACCESS / INSERT / DELETE / UPDATE decide the permission needed.
pub mod key_flags {
    pub const RO: u32 = 1 << 0;
    pub const RW: u32 = 1 << 1;
    pub const OW: u32 = 1 << 2;
    pub const RM: u32 = 1 << 3;
    pub const ACCESS: u32 = 1 << 4;
    pub const UPDATE: u32 = 1 << 5;
    pub const INSERT: u32 = 1 << 6;
    pub const DELETE: u32 = 1 << 7;
}

/// Command bitmap size, as upstream's `USER_COMMAND_BITS_COUNT`.
const COMMAND_BITS: usize = 1024;
/// Ids must be below this: the last bit is reserved for "future commands" (`+@all`).
pub const MAX_COMMAND_ID: usize = COMMAND_BITS - 1;
const WORDS: usize = COMMAND_BITS / 64;

/// Largest database id a `db=` rule accepts.
pub const MAX_DB_ID: i64 = i32::MAX as i64;

/// One command of the server's table, given once at construction.
#[derive(Clone, Debug)]
pub struct CommandSpec {
    pub id: usize,
    /// Full name, lowercase: `get`, `client|kill`.
    pub name: String,
    /// ACL category bitmask (bit `i` = `CATEGORIES[i]`).
    pub categories: u64,
    /// The container command's id for a subcommand.
    pub parent: Option<usize>,
    /// Upstream's CMD_NO_AUTH (AUTH, HELLO...): never denied by command rules.
    pub no_auth: bool,
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    categories: u64,
    children: Vec<usize>,
    is_sub: bool,
    no_auth: bool,
}

/// The server's command table as the ACL sees it.
#[derive(Debug)]
pub struct CommandTable {
    entries: Vec<Option<Entry>>,
    by_name: HashMap<String, usize>,
    /// Top-level command ids, in the order given.
    top: Vec<usize>,
}

impl CommandTable {
    /// Build the table; errors on an id out of range, a duplicate id or name, or a
    /// subcommand whose parent is missing.
    pub fn new(specs: Vec<CommandSpec>) -> Result<CommandTable, String> {
        let mut entries: Vec<Option<Entry>> = Vec::new();
        let mut by_name = HashMap::new();
        let mut top = Vec::new();
        for s in &specs {
            if s.id >= MAX_COMMAND_ID {
                return Err(format!("command id {} out of range", s.id));
            }
            if entries.len() <= s.id {
                entries.resize(s.id + 1, None);
            }
            if entries[s.id].is_some() {
                return Err(format!("duplicate command id {}", s.id));
            }
            let name = s.name.to_ascii_lowercase();
            if by_name.insert(name.clone(), s.id).is_some() {
                return Err(format!("duplicate command name {name}"));
            }
            entries[s.id] = Some(Entry {
                name,
                categories: s.categories,
                children: Vec::new(),
                is_sub: s.parent.is_some(),
                no_auth: s.no_auth,
            });
            if s.parent.is_none() {
                top.push(s.id);
            }
        }
        for s in &specs {
            if let Some(p) = s.parent {
                match entries.get_mut(p).and_then(|e| e.as_mut()) {
                    Some(e) if !e.is_sub => e.children.push(s.id),
                    _ => return Err(format!("bad parent for {}", s.name)),
                }
            }
        }
        Ok(CommandTable {
            entries,
            by_name,
            top,
        })
    }

    fn entry(&self, id: usize) -> Option<&Entry> {
        self.entries.get(id).and_then(|e| e.as_ref())
    }

    /// Full name of a command id.
    pub fn name(&self, id: usize) -> Option<&str> {
        self.entry(id).map(|e| e.name.as_str())
    }

    /// Look up `cmd` or `cmd|sub` (case-insensitive), as upstream's ACLLookupCommand.
    pub fn lookup(&self, name: &[u8]) -> Option<usize> {
        if name.iter().filter(|&&b| b == b'|').count() > 1 {
            return None;
        }
        let s = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
        self.by_name.get(&s).copied()
    }

    /// `ACL CAT <category>`: full names of the commands and subcommands in it.
    pub fn commands_in_category(&self, flag: u64) -> Vec<&str> {
        let mut out = Vec::new();
        for &id in &self.top {
            let Some(e) = self.entry(id) else { continue };
            if e.categories & flag != 0 {
                out.push(e.name.as_str());
            }
            for &c in &e.children {
                if let Some(ce) = self.entry(c) {
                    if ce.categories & flag != 0 {
                        out.push(ce.name.as_str());
                    }
                }
            }
        }
        out
    }
}

/// Why a rule was rejected (upstream's errno cases of ACLSetUser).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleError {
    Syntax,
    UnknownCommand,
    KeyAfterStar,
    ChannelAfterStar,
    NoSuchPassword,
    BadHash,
    FirstArgOfSubcommand,
    DbOutOfRange,
}

impl RuleError {
    /// Upstream's text (ACLSetUserStringError).
    pub fn message(self) -> &'static str {
        match self {
            RuleError::Syntax => "Syntax error",
            RuleError::UnknownCommand => "Unknown command or category name in ACL",
            RuleError::KeyAfterStar => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            RuleError::ChannelAfterStar => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            RuleError::NoSuchPassword => "The password you are trying to remove from the user does not exist",
            RuleError::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            RuleError::FirstArgOfSubcommand => "Allowing first-arg of a subcommand is not supported",
            RuleError::DbOutOfRange => "The provided database ID is out of range",
        }
    }
}

/// An `ACL SETUSER` failure; `Display` is upstream's reply text without `ERR `.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetUserError {
    /// A rule failed: the (merged) modifier and the reason.
    Rule { op: Vec<u8>, err: RuleError },
    /// A `(` argument without its closing `)`.
    UnmatchedParen { op: Vec<u8> },
}

impl fmt::Display for SetUserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetUserError::Rule { op, err } => write!(
                f,
                "Error in ACL SETUSER modifier '{}': {}",
                String::from_utf8_lossy(op),
                err.message()
            ),
            SetUserError::UnmatchedParen { op } => write!(
                f,
                "Unmatched parenthesis in acl selector starting at '{}'.",
                String::from_utf8_lossy(op)
            ),
        }
    }
}

/// Upstream's ACLStringHasSpaces: whitespace or NUL.
fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0))
}

/// `ACL SETUSER` refuses names with spaces or NUL ("Usernames can't contain spaces or
/// null characters").
pub fn validate_username(name: &[u8]) -> bool {
    !has_spaces(name)
}

/// A key pattern with its read/write permissions.
#[derive(Clone, Debug)]
pub struct KeyPattern {
    pub pattern: Vec<u8>,
    pub read: bool,
    pub write: bool,
    compiled: glob::Pattern,
}

impl PartialEq for KeyPattern {
    fn eq(&self, o: &Self) -> bool {
        self.pattern == o.pattern && self.read == o.read && self.write == o.write
    }
}

impl KeyPattern {
    fn render(&self, out: &mut Vec<u8>) {
        match (self.read, self.write) {
            (true, false) => out.extend_from_slice(b"%R~"),
            (false, true) => out.extend_from_slice(b"%W~"),
            _ => out.push(b'~'),
        }
        out.extend_from_slice(&self.pattern);
    }
}

#[derive(Clone, Debug)]
struct ChannelPattern {
    pattern: Vec<u8>,
    compiled: glob::Pattern,
}

impl PartialEq for ChannelPattern {
    fn eq(&self, o: &Self) -> bool {
        self.pattern == o.pattern
    }
}

/// One set of permissions: the root selector, or a `(...)` one.
#[derive(Clone, Debug, PartialEq)]
pub struct Selector {
    root: bool,
    all_keys: bool,
    all_channels: bool,
    all_commands: bool,
    all_dbs: bool,
    allowed: [u64; WORDS],
    /// Allowed first arguments of otherwise denied commands (`+select|0`), lowercase.
    firstargs: Vec<(usize, Vec<Vec<u8>>)>,
    patterns: Vec<KeyPattern>,
    channels: Vec<ChannelPattern>,
    dbs: Vec<u32>,
    /// Command rules since the last `+@all`/`-@all`, in order: (allow, lowercase body).
    rules: Vec<(bool, String)>,
}

fn bit(id: usize) -> Option<(usize, u64)> {
    (id < COMMAND_BITS).then(|| (id / 64, 1u64 << (id % 64)))
}

impl Selector {
    fn new(root: bool, all_channels: bool) -> Selector {
        Selector {
            root,
            all_keys: false,
            all_channels,
            all_commands: false,
            all_dbs: true,
            allowed: [0; WORDS],
            firstargs: Vec::new(),
            patterns: Vec::new(),
            channels: Vec::new(),
            dbs: Vec::new(),
            rules: Vec::new(),
        }
    }

    fn get_bit(&self, id: usize) -> bool {
        bit(id).is_some_and(|(w, b)| self.allowed[w] & b != 0)
    }

    fn set_bit(&mut self, id: usize, v: bool) {
        if let Some((w, b)) = bit(id) {
            if v {
                self.allowed[w] |= b;
            } else {
                self.allowed[w] &= !b;
                self.all_commands = false;
            }
        }
    }

    fn future_commands(&self) -> bool {
        self.get_bit(COMMAND_BITS - 1)
    }

    fn change_perm(&mut self, t: &CommandTable, id: usize, allow: bool) {
        self.set_bit(id, allow);
        self.firstargs.retain(|(i, _)| *i != id);
        if let Some(e) = t.entry(id) {
            for &c in &e.children {
                self.set_bit(c, allow);
            }
        }
    }

    fn update_rules(&mut self, body: &str, allow: bool) {
        let body = body.to_ascii_lowercase();
        self.rules.retain(|(_, r)| {
            !(r == &body
                || (r.len() > body.len()
                    && r.starts_with(&body)
                    && r.as_bytes()[body.len()] == b'|'))
        });
        self.rules.push((allow, body));
    }

    fn set_category(&mut self, t: &CommandTable, flag: u64, allow: bool) {
        for &id in &t.top {
            let Some(e) = t.entry(id) else { continue };
            if e.categories & flag != 0 {
                self.change_perm(t, id, allow);
            }
            for &c in &e.children {
                if t.entry(c).is_some_and(|ce| ce.categories & flag != 0) {
                    self.change_perm(t, c, allow);
                }
            }
        }
    }

    /// Apply one selector rule (upstream's ACLSetSelector plus 9.1's db rules).
    fn apply(&mut self, t: &CommandTable, op: &[u8]) -> Result<(), RuleError> {
        let eq = |s: &str| op.eq_ignore_ascii_case(s.as_bytes());
        if eq("allkeys") || op == b"~*" {
            self.all_keys = true;
            self.patterns.clear();
        } else if eq("resetkeys") {
            self.all_keys = false;
            self.patterns.clear();
        } else if eq("allchannels") || op == b"&*" {
            self.all_channels = true;
            self.channels.clear();
        } else if eq("resetchannels") {
            self.all_channels = false;
            self.channels.clear();
        } else if eq("allcommands") || eq("+@all") {
            self.allowed = [u64::MAX; WORDS];
            self.all_commands = true;
            self.rules.clear();
            self.firstargs.clear();
        } else if eq("nocommands") || eq("-@all") {
            self.allowed = [0; WORDS];
            self.all_commands = false;
            self.rules.clear();
            self.firstargs.clear();
        } else if eq("alldbs") {
            self.all_dbs = true;
            self.dbs.clear();
        } else if eq("resetdbs") {
            self.all_dbs = false;
            self.dbs.clear();
        } else if op.len() >= 3 && op[..3].eq_ignore_ascii_case(b"db=") {
            let dbs = parse_db_list(&op[3..])?;
            self.all_dbs = false;
            self.dbs = dbs;
        } else if op.first() == Some(&b'~') || op.first() == Some(&b'%') {
            if self.all_keys {
                return Err(RuleError::KeyAfterStar);
            }
            let (mut read, mut write) = (false, false);
            let mut off = 1;
            if op[0] == b'%' {
                let mut ok = true;
                while off < op.len() {
                    let c = op[off];
                    if c.eq_ignore_ascii_case(&b'r') && !read {
                        read = true;
                    } else if c.eq_ignore_ascii_case(&b'w') && !write {
                        write = true;
                    } else if c == b'~' {
                        off += 1;
                        break;
                    } else {
                        ok = false;
                        break;
                    }
                    off += 1;
                }
                if !(read || write) || !ok {
                    return Err(RuleError::Syntax);
                }
            } else {
                read = true;
                write = true;
            }
            let pat = op.get(off..).unwrap_or(&[]);
            if has_spaces(pat) {
                return Err(RuleError::Syntax);
            }
            if let Some(p) = self.patterns.iter_mut().find(|p| p.pattern == pat) {
                p.read |= read;
                p.write |= write;
            } else {
                self.patterns.push(KeyPattern {
                    pattern: pat.to_vec(),
                    read,
                    write,
                    compiled: glob::Pattern::new(pat, false),
                });
            }
            self.all_keys = false;
        } else if op.first() == Some(&b'&') {
            if self.all_channels {
                return Err(RuleError::ChannelAfterStar);
            }
            let pat = &op[1..];
            if has_spaces(pat) {
                return Err(RuleError::Syntax);
            }
            if !self.channels.iter().any(|c| c.pattern == pat) {
                self.channels.push(ChannelPattern {
                    pattern: pat.to_vec(),
                    compiled: glob::Pattern::new(pat, false),
                });
            }
            self.all_channels = false;
        } else if op.first() == Some(&b'+') && op.get(1) != Some(&b'@') {
            let name = &op[1..];
            match name.iter().rposition(|&b| b == b'|') {
                None => {
                    let id = t.lookup(name).ok_or(RuleError::UnknownCommand)?;
                    self.change_perm(t, id, true);
                    let full = t.name(id).unwrap_or_default().to_string();
                    self.update_rules(&full, true);
                }
                Some(bar) => {
                    let (head, sub) = (&name[..bar], &name[bar + 1..]);
                    let id = t.lookup(head).ok_or(RuleError::UnknownCommand)?;
                    let e = t.entry(id).ok_or(RuleError::UnknownCommand)?;
                    if e.is_sub {
                        return Err(RuleError::FirstArgOfSubcommand);
                    }
                    if sub.is_empty() {
                        return Err(RuleError::Syntax);
                    }
                    if !e.children.is_empty() {
                        let sid = t.lookup(name).ok_or(RuleError::UnknownCommand)?;
                        self.change_perm(t, sid, true);
                    } else {
                        let sub = sub.to_ascii_lowercase();
                        match self.firstargs.iter_mut().find(|(i, _)| *i == id) {
                            Some((_, v)) => {
                                if !v.contains(&sub) {
                                    v.push(sub)
                                }
                            }
                            None => self.firstargs.push((id, vec![sub])),
                        }
                    }
                    let body = String::from_utf8_lossy(name).into_owned();
                    self.update_rules(&body, true);
                }
            }
        } else if op.first() == Some(&b'-') && op.get(1) != Some(&b'@') {
            let id = t.lookup(&op[1..]).ok_or(RuleError::UnknownCommand)?;
            self.change_perm(t, id, false);
            let full = t.name(id).unwrap_or_default().to_string();
            self.update_rules(&full, false);
        } else if (op.first() == Some(&b'+') || op.first() == Some(&b'-'))
            && op.get(1) == Some(&b'@')
        {
            let allow = op[0] == b'+';
            let flag = category_flag(&op[2..]).ok_or(RuleError::UnknownCommand)?;
            let body = String::from_utf8_lossy(&op[1..]).into_owned();
            self.update_rules(&body, allow);
            self.set_category(t, flag, allow);
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    /// The command rules as upstream's ACLDescribeSelectorCommandRules.
    pub fn describe_commands(&self) -> String {
        let mut s = String::from(if self.future_commands() {
            "+@all"
        } else {
            "-@all"
        });
        for (allow, body) in &self.rules {
            s.push(' ');
            s.push(if *allow { '+' } else { '-' });
            s.push_str(body);
        }
        s
    }

    /// Key patterns as GETUSER's `keys` field (`~*` for allkeys).
    pub fn describe_keys(&self) -> Vec<u8> {
        if self.all_keys {
            return b"~*".to_vec();
        }
        let mut out = Vec::new();
        for (i, p) in self.patterns.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            p.render(&mut out);
        }
        out
    }

    /// Channel patterns as GETUSER's `channels` field (`&*` for allchannels).
    pub fn describe_channels(&self) -> Vec<u8> {
        if self.all_channels {
            return b"&*".to_vec();
        }
        let mut out = Vec::new();
        for (i, c) in self.channels.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.push(b'&');
            out.extend_from_slice(&c.pattern);
        }
        out
    }

    /// Databases as GETUSER's `databases` field: `alldbs`, `resetdbs` or `db=0,1`.
    pub fn describe_dbs(&self) -> String {
        if self.all_dbs {
            "alldbs".to_string()
        } else if self.dbs.is_empty() {
            "resetdbs".to_string()
        } else {
            let v: Vec<String> = self.dbs.iter().map(|d| d.to_string()).collect();
            format!("db={}", v.join(","))
        }
    }

    /// The selector as in ACL LIST (ACLDescribeSelector).
    fn describe(&self, out: &mut Vec<u8>) {
        if self.all_keys {
            out.extend_from_slice(b"~* ");
        } else {
            for p in &self.patterns {
                p.render(out);
                out.push(b' ');
            }
        }
        if self.all_channels {
            out.extend_from_slice(b"&* ");
        } else {
            out.extend_from_slice(b"resetchannels ");
            for c in &self.channels {
                out.push(b'&');
                out.extend_from_slice(&c.pattern);
                out.push(b' ');
            }
        }
        if !self.all_dbs {
            out.extend_from_slice(self.describe_dbs().as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(self.describe_commands().as_bytes());
    }

    fn check_key(&self, key: &[u8], flags: u32) -> bool {
        if self.all_keys {
            return true;
        }
        let need_read = flags & key_flags::ACCESS != 0;
        let need_write = flags & (key_flags::INSERT | key_flags::DELETE | key_flags::UPDATE) != 0;
        self.patterns
            .iter()
            .any(|p| (!need_read || p.read) && (!need_write || p.write) && p.compiled.matches(key))
    }

    fn check_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        if self.all_channels {
            return true;
        }
        self.channels.iter().any(|c| {
            if is_pattern {
                c.pattern == channel
            } else {
                c.compiled.matches(channel)
            }
        })
    }

    fn check_db(&self, db: i64) -> bool {
        self.all_dbs
            || ((0..=MAX_DB_ID).contains(&db) && self.dbs.binary_search(&(db as u32)).is_ok())
    }

    /// Whether the selector grants `flags` access to every key (`allkeys`, or a `*`
    /// pattern with at least those rights), as upstream's
    /// ACLSelectorHasUnrestrictedKeyAccess.
    fn has_unrestricted_key_access(&self, flags: u32) -> bool {
        if self.all_keys {
            return true;
        }
        let need_read = flags & key_flags::ACCESS != 0;
        let need_write = flags & (key_flags::INSERT | key_flags::DELETE | key_flags::UPDATE) != 0;
        self.patterns
            .iter()
            .any(|p| (!need_read || p.read) && (!need_write || p.write) && p.pattern == b"*")
    }

    /// ACLSelectorCheckCmd: database, command, keys, channels.
    fn check(&self, t: &CommandTable, req: &CheckRequest) -> Result<(), Denied> {
        for d in req.dbs {
            if !self.check_db(d.db) {
                return Err(Denied {
                    reason: DenyReason::Db,
                    pos: d.pos,
                });
            }
        }
        let no_auth = t.entry(req.cmd_id).is_some_and(|e| e.no_auth);
        if !self.all_commands && !no_auth && !self.get_bit(req.cmd_id) {
            let ok = match (
                req.first_arg,
                self.firstargs.iter().find(|(i, _)| *i == req.cmd_id),
            ) {
                (Some(a), Some((_, v))) => v.iter().any(|s| s.eq_ignore_ascii_case(a)),
                _ => false,
            };
            if !ok {
                return Err(Denied {
                    reason: DenyReason::Cmd,
                    pos: 0,
                });
            }
        }
        for k in req.keys {
            if !self.check_key(k.key, k.flags) {
                return Err(Denied {
                    reason: DenyReason::Key,
                    pos: k.pos,
                });
            }
        }
        for c in req.channels {
            if !self.check_channel(c.channel, c.is_pattern) {
                return Err(Denied {
                    reason: DenyReason::Channel,
                    pos: c.pos,
                });
            }
        }
        Ok(())
    }
}

/// Parse the list of a `db=` rule: ids 0..=INT_MAX separated by commas, kept sorted
/// and unique (upstream keeps them in an intset).
fn parse_db_list(s: &[u8]) -> Result<Vec<u32>, RuleError> {
    if s.is_empty() {
        return Err(RuleError::Syntax);
    }
    let mut out: Vec<u32> = Vec::new();
    for part in s.split(|&b| b == b',') {
        let (neg, digits) = match part.first() {
            Some(b'-') => (true, &part[1..]),
            Some(b'+') => (false, &part[1..]),
            _ => (false, part),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(RuleError::Syntax);
        }
        let mut v: i64 = 0;
        for &d in digits {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add((d - b'0') as i64))
                .ok_or(RuleError::DbOutOfRange)?;
        }
        if (neg && v != 0) || v > MAX_DB_ID {
            return Err(RuleError::DbOutOfRange);
        }
        let v = v as u32;
        if let Err(i) = out.binary_search(&v) {
            out.insert(i, v);
        }
    }
    Ok(out)
}

/// Why a command was refused, in upstream's priority order (a higher one is reported
/// when several selectors fail).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DenyReason {
    Db,
    Cmd,
    Key,
    Channel,
}

impl DenyReason {
    /// The ACL LOG `reason` field.
    pub fn log_name(self) -> &'static str {
        match self {
            DenyReason::Db => "database",
            DenyReason::Cmd => "command",
            DenyReason::Key => "key",
            DenyReason::Channel => "channel",
        }
    }
}

/// A refusal: the reason and the argv position of the offending argument (0 for the
/// command itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denied {
    pub reason: DenyReason,
    pub pos: usize,
}

/// A key of the command with its key-spec flags (server's `key_flags` bits) and argv
/// position.
#[derive(Clone, Copy, Debug)]
pub struct CheckKey<'a> {
    pub key: &'a [u8],
    pub flags: u32,
    pub pos: usize,
}

/// A channel of a pub/sub command; `is_pattern` for PSUBSCRIBE/PUNSUBSCRIBE patterns,
/// which must equal an allowed pattern literally.
#[derive(Clone, Copy, Debug)]
pub struct CheckChannel<'a> {
    pub channel: &'a [u8],
    pub is_pattern: bool,
    pub pos: usize,
}

/// A database the command touches (the client's, or an argument's as for SELECT, MOVE,
/// SWAPDB, COPY DB; every configured db for FLUSHALL) and the argv position reported.
#[derive(Clone, Copy, Debug)]
pub struct CheckDb {
    pub db: i64,
    pub pos: usize,
}

/// What one command execution needs.
#[derive(Clone, Copy, Debug)]
pub struct CheckRequest<'a> {
    pub cmd_id: usize,
    /// argv[1], for `+cmd|firstarg` rules.
    pub first_arg: Option<&'a [u8]>,
    pub keys: &'a [CheckKey<'a>],
    pub channels: &'a [CheckChannel<'a>],
    pub dbs: &'a [CheckDb],
}

/// A user: flags, password digests, the root selector and extra selectors.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    name: Vec<u8>,
    enabled: bool,
    nopass: bool,
    skip_sanitize: bool,
    passwords: Vec<[u8; 32]>,
    /// `selectors[0]` is the root selector.
    selectors: Vec<Selector>,
}

/// `ACL GETUSER` fields of one selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorInfo {
    pub commands: String,
    pub keys: Vec<u8>,
    pub channels: Vec<u8>,
    pub databases: String,
}

/// `ACL GETUSER` reply data: flags, passwords (hex digests), the root selector's fields,
/// then the extra selectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetUserInfo {
    pub flags: Vec<&'static str>,
    pub passwords: Vec<String>,
    pub root: SelectorInfo,
    pub selectors: Vec<SelectorInfo>,
}

impl User {
    /// A new user as upstream's ACLCreateUser: off, no passwords, no permissions.
    fn new(name: &[u8], all_channels: bool) -> User {
        User {
            name: name.to_vec(),
            enabled: false,
            nopass: false,
            skip_sanitize: false,
            passwords: Vec::new(),
            selectors: vec![Selector::new(true, all_channels)],
        }
    }

    pub fn name(&self) -> &[u8] {
        &self.name
    }
    pub fn enabled(&self) -> bool {
        self.enabled
    }
    pub fn nopass(&self) -> bool {
        self.nopass
    }
    /// `skip-sanitize-payload`: RESTORE payloads are not deep-sanitized for this user.
    pub fn skip_sanitize_payload(&self) -> bool {
        self.skip_sanitize
    }

    fn root(&mut self) -> &mut Selector {
        &mut self.selectors[0]
    }

    /// Apply one (already merged) rule, as upstream's ACLSetUser.
    fn apply(&mut self, t: &CommandTable, op: &[u8], all_channels: bool) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        let eq = |s: &str| op.eq_ignore_ascii_case(s.as_bytes());
        if eq("on") {
            self.enabled = true;
        } else if eq("off") {
            self.enabled = false;
        } else if eq("skip-sanitize-payload") {
            self.skip_sanitize = true;
        } else if eq("sanitize-payload") {
            self.skip_sanitize = false;
        } else if eq("nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if eq("resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if op[0] == b'>' || op[0] == b'#' {
            let d = if op[0] == b'>' {
                sha256::sha256(&op[1..])
            } else {
                sha256::from_hex(&op[1..]).ok_or(RuleError::BadHash)?
            };
            if !self.passwords.contains(&d) {
                self.passwords.push(d);
            }
            self.nopass = false;
        } else if op[0] == b'<' || op[0] == b'!' {
            let d = if op[0] == b'<' {
                sha256::sha256(&op[1..])
            } else {
                sha256::from_hex(&op[1..]).ok_or(RuleError::BadHash)?
            };
            let i = self
                .passwords
                .iter()
                .position(|p| *p == d)
                .ok_or(RuleError::NoSuchPassword)?;
            self.passwords.remove(i);
        } else if op[0] == b'(' && op.last() == Some(&b')') {
            let inner = &op[1..op.len() - 1];
            let args = split_args(inner).ok_or(RuleError::Syntax)?;
            let mut s = Selector::new(false, all_channels);
            for a in &args {
                s.apply(t, a)?;
            }
            self.selectors.push(s);
        } else if eq("clearselectors") {
            self.selectors.truncate(1);
        } else if eq("reset") {
            self.nopass = false;
            self.passwords.clear();
            self.enabled = false;
            self.skip_sanitize = false;
            self.selectors.truncate(1);
            let r = self.root();
            r.all_keys = false;
            r.patterns.clear();
            r.all_channels = all_channels;
            r.channels.clear();
            r.all_dbs = true;
            r.dbs.clear();
            r.apply(t, b"-@all")?;
        } else {
            self.root().apply(t, op)?;
        }
        Ok(())
    }

    /// Whether `password` is one of the user's (constant time per stored digest).
    pub fn check_password(&self, password: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let d = sha256::sha256(password);
        let mut ok = false;
        for p in &self.passwords {
            ok |= sha256::ct_eq(p, &d);
        }
        ok
    }

    /// The permission check of every command (ACLCheckAllUserCommandPerm): allowed if
    /// any selector allows it; otherwise the highest-priority reason (then the highest
    /// argv position). No allocation.
    pub fn check_all_perm(&self, t: &CommandTable, req: &CheckRequest) -> Result<(), Denied> {
        let mut worst = Denied {
            reason: DenyReason::Db,
            pos: 0,
        };
        for s in &self.selectors {
            match s.check(t, req) {
                Ok(()) => return Ok(()),
                Err(d) => {
                    if d.reason > worst.reason || (d.reason == worst.reason && d.pos > worst.pos) {
                        worst = d;
                    }
                }
            }
        }
        Err(worst)
    }

    /// Whether one selector both allows the command and grants `flags` access to every
    /// key (SORT's BY/GET patterns read keys not named in the command), as upstream's
    /// ACLUserCheckCmdWithUnrestrictedKeyAccess.
    pub fn check_cmd_with_unrestricted_key_access(
        &self,
        t: &CommandTable,
        req: &CheckRequest,
        flags: u32,
    ) -> bool {
        self.selectors
            .iter()
            .any(|s| s.check(t, req).is_ok() && s.has_unrestricted_key_access(flags))
    }

    /// Whether some selector allows `channel` (used to drop subscribers after a rule
    /// change, as upstream's ACLKillPubsubClientsIfNeeded).
    pub fn can_access_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.selectors
            .iter()
            .any(|s| s.check_channel(channel, is_pattern))
    }

    /// Whether moving from `self` to `new` may revoke a channel: false when a selector of
    /// `new` allows all channels, or when every channel pattern of `self` is also one of
    /// `new`'s (upstream's early exits before scanning the subscribers).
    pub fn channels_may_shrink(&self, new: &User) -> bool {
        if new.selectors.iter().any(|s| s.all_channels) {
            return false;
        }
        if self.selectors.iter().any(|s| s.all_channels) {
            return true;
        }
        !self.selectors.iter().flat_map(|s| &s.channels).all(|c| {
            new.selectors
                .iter()
                .any(|s| s.channels.iter().any(|n| n.pattern == c.pattern))
        })
    }

    /// Whether some selector allows `key` with the given key-spec flags.
    pub fn can_access_key(&self, key: &[u8], flags: u32) -> bool {
        self.selectors.iter().any(|s| s.check_key(key, flags))
    }

    /// The rules part of an ACL LIST line (ACLDescribeUser).
    pub fn describe_rules(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(if self.enabled { b"on " } else { b"off " });
        if self.nopass {
            out.extend_from_slice(b"nopass ");
        }
        for p in &self.passwords {
            out.push(b'#');
            out.extend_from_slice(sha256::to_hex(p).as_bytes());
            out.push(b' ');
        }
        for s in &self.selectors {
            if s.root {
                s.describe(&mut out);
            } else {
                out.extend_from_slice(b" (");
                s.describe(&mut out);
                out.push(b')');
            }
        }
        out
    }

    fn selector_info(s: &Selector) -> SelectorInfo {
        SelectorInfo {
            commands: s.describe_commands(),
            keys: s.describe_keys(),
            channels: s.describe_channels(),
            databases: s.describe_dbs(),
        }
    }

    /// `ACL GETUSER` data.
    pub fn getuser_info(&self) -> GetUserInfo {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        GetUserInfo {
            flags,
            passwords: self.passwords.iter().map(sha256::to_hex).collect(),
            root: Self::selector_info(&self.selectors[0]),
            selectors: self.selectors[1..]
                .iter()
                .map(Self::selector_info)
                .collect(),
        }
    }
}

/// The ACL LIST line of a user: `user <name> <rules>`.
pub fn describe_user(u: &User) -> String {
    let mut out = b"user ".to_vec();
    out.extend_from_slice(&u.name);
    out.push(b' ');
    out.extend_from_slice(&u.describe_rules());
    String::from_utf8_lossy(&out).into_owned()
}

/// Join `(`... `)` arguments split by spaces into one (upstream's
/// ACLMergeSelectorArguments). Err holds the argument that opened the unclosed one.
pub fn merge_selector_args(args: &[&[u8]]) -> Result<Vec<Vec<u8>>, Vec<u8>> {
    let mut out = Vec::with_capacity(args.len().min(1024));
    let mut open: Option<(Vec<u8>, &[u8])> = None;
    for &a in args {
        if let Some((buf, _)) = open.as_mut() {
            buf.push(b' ');
            buf.extend_from_slice(a);
            if a.last() == Some(&b')') {
                if let Some((buf, _)) = open.take() {
                    out.push(buf);
                }
            }
        } else if a.first() == Some(&b'(') && a.last() != Some(&b')') {
            open = Some((a.to_vec(), a));
        } else {
            out.push(a.to_vec());
        }
    }
    match open {
        Some((_, start)) => Err(start.to_vec()),
        None => Ok(out),
    }
}

/// Upstream's sdssplitargs: spaces separate, `"..."` with `\n \r \t \b \a \\ \" \xHH`
/// escapes, `'...'` with `\'`. None on unbalanced quotes or a quote not followed by a
/// space.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    let hex = |c: u8| (c as char).to_digit(16).map(|v| v as u8);
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && hex(line[i + 2]).is_some()
                    && hex(line[i + 3]).is_some()
                {
                    cur.push((hex(line[i + 2])? << 4) | hex(line[i + 3])?);
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

/// Result of [`Acl::check_credentials`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    NoSuchUser,
    Disabled,
    WrongPassword,
}

/// The user set.
#[derive(Clone, Debug)]
pub struct Acl {
    table: Arc<CommandTable>,
    users: BTreeMap<Vec<u8>, User>,
    /// `acl-pubsub-default allchannels`: new users and selectors start with `&*`.
    pub pubsub_default_all: bool,
}

impl Acl {
    /// A user set holding only `default` as upstream creates it (on nopass ~* &* +@all).
    pub fn new(table: Arc<CommandTable>) -> Acl {
        let mut acl = Acl {
            table,
            users: BTreeMap::new(),
            pubsub_default_all: false,
        };
        acl.users.insert(b"default".to_vec(), acl.default_user());
        acl
    }

    fn default_user(&self) -> User {
        let mut u = User::new(b"default", self.pubsub_default_all);
        for r in ["+@all", "~*", "&*", "on", "nopass"] {
            // These rules cannot fail.
            let _ = u.apply(&self.table, r.as_bytes(), self.pubsub_default_all);
        }
        u
    }

    pub fn table(&self) -> &CommandTable {
        &self.table
    }

    pub fn get_user(&self, name: &[u8]) -> Option<&User> {
        self.users.get(name)
    }

    /// Users in name order (ACL LIST / ACL USERS / ACL SAVE order).
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// ACL SETUSER: create the user if missing and apply all rules, or change nothing.
    pub fn set_user(&mut self, name: &[u8], rules: &[&[u8]]) -> Result<(), SetUserError> {
        let merged =
            merge_selector_args(rules).map_err(|op| SetUserError::UnmatchedParen { op })?;
        let mut u = match self.users.get(name) {
            Some(u) => u.clone(),
            None => User::new(name, self.pubsub_default_all),
        };
        for op in &merged {
            u.apply(&self.table, op, self.pubsub_default_all)
                .map_err(|err| SetUserError::Rule {
                    op: op.clone(),
                    err,
                })?;
        }
        self.users.insert(name.to_vec(), u);
        Ok(())
    }

    /// ACL DELUSER of one user; false if missing or `default`.
    pub fn del_user(&mut self, name: &[u8]) -> bool {
        name != b"default" && self.users.remove(name).is_some()
    }

    /// AUTH: the user exists, is on, and the password matches (or nopass).
    pub fn check_credentials(&self, name: &[u8], password: &[u8]) -> Result<&User, AuthError> {
        let u = self.users.get(name).ok_or(AuthError::NoSuchUser)?;
        if !u.enabled {
            return Err(AuthError::Disabled);
        }
        if u.check_password(password) {
            Ok(u)
        } else {
            Err(AuthError::WrongPassword)
        }
    }

    /// The aclfile text (ACL SAVE): one `user <name> <rules>` line per user.
    pub fn to_file_text(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for u in self.users.values() {
            out.extend_from_slice(describe_user(u).as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// The check of a config-file `user` line's rules (upstream's
    /// ACLAppendUserForLoading): applied to a fresh user, unknown commands and
    /// categories pass (they are reported when the users are loaded). On error, the
    /// index upstream reports (of the offending merged rule, or of the `(` argument left
    /// open) and the message.
    pub fn check_config_rules(&self, rules: &[&[u8]]) -> Result<(), (usize, &'static str)> {
        let mut open: Option<usize> = None;
        for (i, a) in rules.iter().enumerate() {
            if open.is_some() {
                if a.last() == Some(&b')') {
                    open = None;
                }
            } else if a.first() == Some(&b'(') && a.last() != Some(&b')') {
                open = Some(i);
            }
        }
        if let Some(i) = open {
            return Err((i, "Wrong format"));
        }
        let merged = merge_selector_args(rules).map_err(|_| (0, "Wrong format"))?;
        let mut u = User::new(b"", self.pubsub_default_all);
        for (j, op) in merged.iter().enumerate() {
            match u.apply(&self.table, op, self.pubsub_default_all) {
                Ok(()) | Err(RuleError::UnknownCommand) => {}
                Err(e) => return Err((j, e.message())),
            }
        }
        Ok(())
    }

    /// Parse a whole aclfile (ACL LOAD / startup) into a new user set; `default` is
    /// created as new if the file lacks it. All-or-nothing: the error is upstream's
    /// accumulated text (as the reference's ACL LOAD
    /// reply without `ERR `).
    pub fn load_from_text(&self, path: &str, text: &[u8]) -> Result<Acl, String> {
        let mut acl = Acl {
            table: self.table.clone(),
            users: BTreeMap::new(),
            pubsub_default_all: self.pubsub_default_all,
        };
        let mut errors = String::new();
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            let ln = i + 1;
            let line = trim(raw);
            if line.is_empty() {
                continue;
            }
            // As upstream, a line is split on single spaces (no quoting: a quote is
            // part of its rule; two spaces make an empty rule, a no-op).
            let argv: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            let name = match argv.get(1) {
                Some(n) if argv[0] == b"user" => *n,
                _ => {
                    errors.push_str(&format!(
                        "{path}:{ln} should start with user keyword followed by the username. "
                    ));
                    continue;
                }
            };
            if has_spaces(name) {
                // The leading quote is upstream's.
                errors.push_str(&format!(
                    "'{path}:{ln}: username '{}' contains invalid characters. ",
                    String::from_utf8_lossy(name)
                ));
                continue;
            }
            if acl.users.contains_key(name) {
                errors.push_str(&format!(
                    "WARNING: Duplicate user '{}' found on line {ln}. ",
                    String::from_utf8_lossy(name)
                ));
                continue;
            }
            // The user exists from here on (a later line naming it is a duplicate),
            // whatever its rules give.
            let mut u = User::new(name, acl.pubsub_default_all);
            match merge_selector_args(&argv[2..]) {
                Err(_) => errors.push_str(&format!(
                    "{path}:{ln}: Unmatched parenthesis in selector definition."
                )),
                Ok(ops) => {
                    // Every rule is tried: each unknown command or category is
                    // reported, other errors only the first of the line.
                    let mut other_error = false;
                    for op in &ops {
                        let op = trim_rule(op);
                        match u.apply(&acl.table, op, acl.pubsub_default_all) {
                            Ok(()) => {}
                            Err(RuleError::UnknownCommand) => errors.push_str(&format!(
                                "{path}:{ln}: Error in applying operation '{}': {}. ",
                                String::from_utf8_lossy(op),
                                RuleError::UnknownCommand.message()
                            )),
                            Err(e) if !other_error => {
                                other_error = true;
                                errors.push_str(&format!("{path}:{ln}: {}. ", e.message()));
                            }
                            Err(_) => {}
                        }
                    }
                }
            }
            acl.users.insert(name.to_vec(), u);
        }
        if !errors.is_empty() {
            errors.push_str(
                "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
            );
            return Err(errors);
        }
        if !acl.users.contains_key(b"default".as_slice()) {
            let d = acl.default_user();
            acl.users.insert(b"default".to_vec(), d);
        }
        Ok(acl)
    }
}

/// A rule of an aclfile line without surrounding tabs and line ends (upstream trims
/// each one of "\t\r\n").
fn trim_rule(s: &[u8]) -> &[u8] {
    let ws = |c: &u8| matches!(c, b'\t' | b'\r' | b'\n');
    let start = s.iter().position(|c| !ws(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !ws(c)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or(&[])
}

fn trim(s: &[u8]) -> &[u8] {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let start = s.iter().position(|c| !ws(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !ws(c)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or(&[])
}

pub mod log;
pub use log::{AclLog, LogContext, LogEntry, LogReason};

#[cfg(test)]
mod tests;
