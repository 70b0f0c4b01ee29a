//! MIGRATE and RESTORE-ASKING (upstream's `cluster.c` `migrateCommand`,
//! `restoreCommand`): moving keys to another node, as `redis-cli --cluster reshard` does.
//! Work item F of docs/cluster-plan.md.
//!
//! MIGRATE is synchronous, as upstream's: the server blocks while it connects to the
//! target, writes one RESTORE (RESTORE-ASKING in cluster mode) per key with the DUMP
//! payload, and reads one reply line per command, each step bounded by the command's
//! timeout. Connections to targets are cached per `host:port` (at most
//! [`MIGRATE_SOCKET_CACHE_ITEMS`], closed by the cron after
//! [`MIGRATE_SOCKET_CACHE_TTL_S`] seconds unused) with the db last selected on them, so a
//! reshard that sends thousands of MIGRATEs to one node connects once.
//!
//! Layout of what is sent on the socket for one MIGRATE:
//! ```text
//! [AUTH [user] password]      only with AUTH / AUTH2
//! [SELECT db]                 only when the cached connection's db differs
//! RESTORE[-ASKING] key ttl payload [REPLACE]     one per key still alive
//! ```
//! and the replies are read in the same order, one line each.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::server::KeyRef;
use super::{
    acl_cat as cat, flags as f, key_flags as k, BeginSearch, CommandDef, FindKeys, KeySpec,
};
use crate::client::Client;
use crate::db;
use crate::notify::{notify_keyspace_event, NOTIFY_GENERIC};
use crate::reply;
use crate::server::Server;
use crate::util::{eq_ic, parse_i64_strict};

/// At most this many cached connections; a new one beyond it closes a random one.
pub const MIGRATE_SOCKET_CACHE_ITEMS: usize = 64;
/// A cached connection unused for more than this many seconds is closed by the cron.
pub const MIGRATE_SOCKET_CACHE_TTL_S: i64 = 10;
/// Upstream reads each reply line into a 1024-byte buffer: a longer line is cut there
/// (the rest is read as the next line).
const REPLY_LINE_BYTES_MAX: usize = 1023;
/// Writes go out in chunks of this size, each bounded by the timeout.
const WRITE_CHUNK_BYTES: usize = 64 * 1024;

const RW_ACCESS_DELETE: u32 = k::RW | k::ACCESS | k::DELETE;

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "migrate",
        -6,
        f::WRITE | f::MOVABLE_KEYS,
        cat::KEYSPACE | cat::WRITE | cat::SLOW | cat::DANGEROUS,
        migrate_command,
    )
    .keys(&[
        KeySpec::range(RW_ACCESS_DELETE, 3, 0, 1),
        KeySpec {
            notes: "",
            flags: RW_ACCESS_DELETE | k::INCOMPLETE,
            begin: BeginSearch::Keyword {
                keyword: "KEYS",
                startfrom: -2,
            },
            find: FindKeys::Range {
                lastkey: -1,
                keystep: 1,
                limit: 0,
            },
        },
    ])
    .doc(
        "generic",
        "2.6.0",
        "Atomically transfers a key from one instance to another.",
        "This command actually executes a DUMP+DEL in the source instance, and a RESTORE in the target instance. See the pages of these commands for time complexity. Also an O(N) data transfer between the two instances is performed.",
    )
    .tips(&["nondeterministic_output"]),
    CommandDef::new(
        "restore-asking",
        -4,
        f::WRITE | f::DENYOOM | f::ASKING,
        cat::KEYSPACE | cat::WRITE | cat::SLOW | cat::DANGEROUS,
        super::keys::restore_command,
    )
    .keys(&[KeySpec::range(k::OW | k::UPDATE, 1, 0, 1)])
    .doc(
        "server",
        "3.0.0",
        "An internal command for migrating keys in a cluster.",
        "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1). However for sorted set values the complexity is O(N*M*log(N)) because inserting values into sorted sets is O(log(N)).",
    ),
];

// ---------------------------------------------------------------------------------------
// Keys of a MIGRATE (COMMAND GETKEYS, ACL, cluster redirection)
// ---------------------------------------------------------------------------------------

/// The keys of a MIGRATE, as upstream finds them: the key specs first, and when the
/// `KEYS` keyword spec (flagged incomplete) matches, upstream's `migrateGetKeys` instead
/// (it skips the arguments of AUTH and AUTH2, and gives no key at all when KEYS comes
/// with a non-empty key argument). Returns None when there is no key to report.
pub fn get_keys(def: &CommandDef, argv: &[Vec<u8>], keys: &mut Vec<KeyRef>) -> Option<()> {
    let argc = argv.len();
    if argc < 4 {
        return None;
    }
    let flags = def.key_specs.first().map_or(RW_ACCESS_DELETE, |s| s.flags);
    // The keyword spec searches from the second to last argument backwards.
    let keyword_found = (1..argc.saturating_sub(1))
        .rev()
        .any(|i| eq_ic(&argv[i], "keys"));
    if !keyword_found {
        keys.push(KeyRef { pos: 3, flags });
        return Some(());
    }
    let (mut first, mut num) = (3, 1);
    let mut i = 6;
    while i < argc {
        let a = &argv[i];
        if eq_ic(a, "keys") {
            if !argv[3].is_empty() {
                return None;
            }
            first = i + 1;
            num = argc - first;
            break;
        } else if eq_ic(a, "auth") {
            i += 1;
        } else if eq_ic(a, "auth2") {
            i += 2;
        }
        i += 1;
    }
    keys.extend((first..first + num).map(|pos| KeyRef { pos, flags }));
    Some(())
}

// ---------------------------------------------------------------------------------------
// The connection cache
// ---------------------------------------------------------------------------------------

/// One cached connection to a target (upstream's `migrateCachedSocket`).
struct CachedSocket {
    stream: TcpStream,
    /// Bytes read past the last reply line.
    rbuf: Vec<u8>,
    /// The db selected on the target by the last successful MIGRATE; -1: unknown.
    last_dbid: i64,
    last_use_time: i64,
}

/// Connections to MIGRATE targets by `host:port` as the command spelled them.
#[derive(Default)]
pub struct SocketCache {
    sockets: HashMap<Vec<u8>, CachedSocket>,
}

impl SocketCache {
    /// INFO `migrate_cached_sockets`.
    pub fn count(&self) -> usize {
        self.sockets.len()
    }
}

/// Closes the connections unused for more than [`MIGRATE_SOCKET_CACHE_TTL_S`]
/// (upstream's `migrateCloseTimedoutSockets`, once per second from the cron).
pub fn close_timed_out_sockets(srv: &mut Server) {
    let now = srv.unixtime;
    srv.migrate_sockets
        .sockets
        .retain(|_, cs| now - cs.last_use_time <= MIGRATE_SOCKET_CACHE_TTL_S);
}

fn cache_name(host: &[u8], port: &[u8]) -> Vec<u8> {
    let mut name = Vec::with_capacity(host.len() + 1 + port.len());
    name.extend_from_slice(host);
    name.push(b':');
    name.extend_from_slice(port);
    name
}

/// C's `atoi`: leading spaces, a sign, digits up to the first other byte; 0 if none.
fn atoi(s: &[u8]) -> i64 {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    while let Some(d) = s.get(i).filter(|b| b.is_ascii_digit()) {
        v = v.wrapping_mul(10).wrapping_add((d - b'0') as i64);
        i += 1;
    }
    if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

/// Why talking to the target failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SockErr {
    /// No connection within the timeout, or the address does not resolve: upstream's
    /// `connBlockingConnect` failing.
    Connect,
    /// The timeout ran out: never retried.
    Timeout,
    /// Anything else (refused, reset, closed): retried once on a new connection.
    Other,
}

fn sock_err(e: &std::io::Error) -> SockErr {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => SockErr::Timeout,
        _ => SockErr::Other,
    }
}

/// Connects to the target. A refused connection is not a connect failure for upstream
/// (its non-blocking connect only waits for writability), so it shows up as a write
/// error: the caller gets a socket that fails on first use.
fn connect(host: &[u8], port: &[u8], timeout_ms: i64) -> Result<Option<TcpStream>, SockErr> {
    let port = atoi(port);
    let host = String::from_utf8_lossy(host).into_owned();
    let Ok(port) = u16::try_from(port) else {
        return Err(SockErr::Connect);
    };
    let Ok(addrs) = (host.as_str(), port).to_socket_addrs() else {
        return Err(SockErr::Connect);
    };
    let timeout = Duration::from_millis(timeout_ms as u64);
    let mut refused = false;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(Some(s));
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => refused = true,
            Err(_) => {}
        }
    }
    if refused {
        Ok(None)
    } else {
        Err(SockErr::Connect)
    }
}

/// Reads one line (without its `\n`, and without the `\r` before it), at most
/// [`REPLY_LINE_BYTES_MAX`] bytes, as upstream's `syncReadLine`. An empty line counts as
/// an error, as there.
fn read_line(cs: &mut CachedSocket) -> Result<Vec<u8>, SockErr> {
    loop {
        let nl = cs.rbuf.iter().position(|&b| b == b'\n');
        let take = match nl {
            Some(p) if p <= REPLY_LINE_BYTES_MAX => Some((p, p + 1)),
            _ if cs.rbuf.len() >= REPLY_LINE_BYTES_MAX => {
                Some((REPLY_LINE_BYTES_MAX, REPLY_LINE_BYTES_MAX))
            }
            _ => None,
        };
        if let Some((end, consumed)) = take {
            let mut line: Vec<u8> = cs.rbuf.drain(..consumed).collect();
            line.truncate(end);
            if line.is_empty() {
                return Err(SockErr::Other);
            }
            if nl.is_some() && line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(line);
        }
        let mut chunk = [0u8; 1024];
        match cs.stream.read(&mut chunk) {
            Ok(0) => return Err(SockErr::Other),
            Ok(n) => cs.rbuf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(sock_err(&e)),
        }
    }
}

fn write_all(stream: &mut TcpStream, buf: &[u8]) -> Result<(), SockErr> {
    for chunk in buf.chunks(WRITE_CHUNK_BYTES) {
        stream.write_all(chunk).map_err(|e| sock_err(&e))?;
    }
    Ok(())
}

/// Appends one command in RESP to `out`.
fn push_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

// ---------------------------------------------------------------------------------------
// MIGRATE
// ---------------------------------------------------------------------------------------

/// The parsed options of a MIGRATE.
struct MigrateArgs {
    copy: bool,
    replace: bool,
    username: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
    first_key: usize,
    num_keys: usize,
}

/// Parses the options after the fifth argument; on error the reply is sent.
fn parse_options(c: &mut Client) -> Option<MigrateArgs> {
    let argc = c.argv.len();
    let mut a = MigrateArgs {
        copy: false,
        replace: false,
        username: None,
        password: None,
        first_key: 3,
        num_keys: 1,
    };
    let mut j = 6;
    while j < argc {
        let more = argc - 1 - j;
        let arg = &c.argv[j];
        if eq_ic(arg, "copy") {
            a.copy = true;
        } else if eq_ic(arg, "replace") {
            a.replace = true;
        } else if eq_ic(arg, "auth") {
            if more < 1 {
                c.reply.add_error(reply::ERR_SYNTAX);
                return None;
            }
            j += 1;
            a.password = Some(c.argv[j].clone());
        } else if eq_ic(arg, "auth2") {
            if more < 2 {
                c.reply.add_error(reply::ERR_SYNTAX);
                return None;
            }
            a.username = Some(c.argv[j + 1].clone());
            a.password = Some(c.argv[j + 2].clone());
            j += 2;
        } else if eq_ic(arg, "keys") {
            if !c.argv[3].is_empty() {
                c.reply.add_error(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                );
                return None;
            }
            a.first_key = j + 1;
            a.num_keys = argc - j - 1;
            break;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return None;
        }
        j += 1;
    }
    Some(a)
}

/// What one attempt at the transfer ended with.
enum Attempt {
    /// Done: the reply was sent.
    Done,
    /// A socket error; `retry` when nothing reached the target yet.
    SocketError { writing: bool, err: SockErr },
}

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
/// [AUTH password | AUTH2 username password] [KEYS key [key ...]]
fn migrate_command(srv: &mut Server, c: &mut Client) {
    let Some(opts) = parse_options(c) else {
        return;
    };
    let Some(mut timeout) = parse_i64_strict(&c.argv[5]) else {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
        return;
    };
    let Some(dbid) = parse_i64_strict(&c.argv[4]) else {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
        return;
    };
    if timeout <= 0 {
        timeout = 1000;
    }

    // The keys that are here. None at all: +NOKEY (often a key that just expired, so not
    // an error).
    let db = c.db;
    let mut keys: Vec<Vec<u8>> = Vec::with_capacity(opts.num_keys.min(1024));
    for j in 0..opts.num_keys {
        let key = &c.argv[opts.first_key + j];
        if db::lookup_key_read(srv, db, key).is_some() {
            keys.push(key.clone());
        }
    }
    if keys.is_empty() {
        c.reply.add_status("NOKEY");
        return;
    }

    let host = c.argv[1].clone();
    let port = c.argv[2].clone();
    let name = cache_name(&host, &port);
    let mut may_retry = true;
    loop {
        match migrate_attempt(srv, c, &opts, &keys, &name, &host, &port, dbid, timeout) {
            Attempt::Done => return,
            Attempt::SocketError { writing, err } => {
                // Closing the socket forces a new connection (and a SELECT) next time.
                srv.migrate_sockets.sockets.remove(&name);
                if err == SockErr::Connect {
                    c.reply
                        .add_error("IOERR error or timeout connecting to the client");
                    return;
                }
                if err != SockErr::Timeout && may_retry {
                    may_retry = false;
                    continue;
                }
                c.reply.add_error(if writing {
                    "IOERR error or timeout writing to target instance"
                } else {
                    "IOERR error or timeout reading to target instance"
                });
                return;
            }
        }
    }
}

/// One try: connect (or reuse), send everything, read the replies, delete what the target
/// acknowledged. A socket error before any key was acknowledged is returned for the caller
/// to retry; after that, the keys acknowledged are deleted and the error is final.
#[allow(clippy::too_many_arguments)]
fn migrate_attempt(
    srv: &mut Server,
    c: &mut Client,
    opts: &MigrateArgs,
    keys: &[Vec<u8>],
    name: &[u8],
    host: &[u8],
    port: &[u8],
    dbid: i64,
    timeout_ms: i64,
) -> Attempt {
    // Connect, or take the cached connection.
    if let Some(cs) = srv.migrate_sockets.sockets.get_mut(name) {
        cs.last_use_time = srv.unixtime;
    } else {
        let cache = &mut srv.migrate_sockets.sockets;
        if cache.len() >= MIGRATE_SOCKET_CACHE_ITEMS {
            // Too many: drop one at random (the hash order is arbitrary enough).
            if let Some(k) = cache.keys().next().cloned() {
                cache.remove(&k);
            }
        }
        let stream = match connect(host, port, timeout_ms) {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Attempt::SocketError {
                    writing: true,
                    err: SockErr::Other,
                }
            }
            Err(err) => return Attempt::SocketError { writing: true, err },
        };
        let t = Some(Duration::from_millis(timeout_ms as u64));
        let _ = stream.set_read_timeout(t);
        let _ = stream.set_write_timeout(t);
        cache.insert(
            name.to_vec(),
            CachedSocket {
                stream,
                rbuf: Vec::new(),
                last_dbid: -1,
                last_use_time: srv.unixtime,
            },
        );
    }

    // The commands: AUTH, SELECT, one RESTORE per key still alive.
    let mut cmd = Vec::new();
    if let Some(pw) = &opts.password {
        match &opts.username {
            Some(u) => push_command(&mut cmd, &[b"AUTH", u, pw]),
            None => push_command(&mut cmd, &[b"AUTH", pw]),
        }
    }
    let last_dbid = srv.migrate_sockets.sockets[name].last_dbid;
    let select = last_dbid != dbid;
    if select {
        push_command(&mut cmd, &[b"SELECT", dbid.to_string().as_bytes()]);
    }
    let restore: &[u8] = if srv.config.cluster_enabled {
        b"RESTORE-ASKING"
    } else {
        b"RESTORE"
    };
    let compress = srv.config.rdbcompression;
    let db = c.db;
    let now = srv.mstime;
    // Keys found by the lookup can expire while large values serialize: those are left.
    let mut sent: Vec<&[u8]> = Vec::with_capacity(keys.len());
    for key in keys {
        let kv = &srv.dbs[db].kv;
        let mut ttl = 0;
        if let Some(at) = kv.get_expire(key) {
            ttl = at - now;
            if ttl < 0 {
                continue;
            }
            ttl = ttl.max(1);
        }
        let Some(v) = kv.get(key) else {
            continue;
        };
        let payload = super::keys::create_dump_payload(v, compress);
        let ttl = ttl.to_string();
        let mut args: Vec<&[u8]> = vec![restore, key, ttl.as_bytes(), &payload];
        if opts.replace {
            args.push(b"REPLACE");
        }
        push_command(&mut cmd, &args);
        sent.push(key);
    }

    let cs = srv
        .migrate_sockets
        .sockets
        .get_mut(name)
        .expect("cached above");
    if let Err(err) = write_all(&mut cs.stream, &cmd) {
        return Attempt::SocketError { writing: true, err };
    }
    let read_err = |err| Attempt::SocketError {
        writing: false,
        err,
    };
    let auth_reply = match &opts.password {
        Some(_) => match read_line(cs) {
            Ok(l) => Some(l),
            Err(e) => return read_err(e),
        },
        None => None,
    };
    let select_reply = if select {
        match read_line(cs) {
            Ok(l) => Some(l),
            Err(e) => return read_err(e),
        }
    } else {
        None
    };

    let is_err = |l: &Option<Vec<u8>>| l.as_ref().is_some_and(|l| l.first() == Some(&b'-'));
    let mut error_from_target = false;
    let mut socket_error = None;
    let mut acked: Vec<&[u8]> = Vec::new();
    let mut replies = 0;
    for key in &sent {
        let cs = srv
            .migrate_sockets
            .sockets
            .get_mut(name)
            .expect("cached above");
        let line = match read_line(cs) {
            Ok(l) => l,
            Err(e) => {
                socket_error = Some(e);
                break;
            }
        };
        replies += 1;
        if is_err(&auth_reply) || is_err(&select_reply) || line.first() == Some(&b'-') {
            if !error_from_target {
                // The target's db is no longer known.
                cs.last_dbid = -1;
                let errline = if is_err(&auth_reply) {
                    auth_reply.as_deref().unwrap_or_default()
                } else if is_err(&select_reply) {
                    select_reply.as_deref().unwrap_or_default()
                } else {
                    &line
                };
                error_from_target = true;
                c.reply.add_error(&format!(
                    "ERR Target instance replied with error: {}",
                    String::from_utf8_lossy(&errline[1..])
                ));
            }
        } else if !opts.copy {
            // Acknowledged: the key leaves this node.
            db::db_delete(srv, db, key);
            notify_keyspace_event(srv, NOTIFY_GENERIC, "del", key, db);
            srv.dirty += 1;
            acked.push(key);
        }
    }

    // Nothing reached the target (no reply at all) and not a timeout: try once more on a
    // new connection.
    if let Some(err) = socket_error {
        if !error_from_target && replies == 0 && err != SockErr::Timeout {
            return read_err(err);
        }
    }

    // Propagated as a DEL of the keys the target acknowledged.
    if !acked.is_empty() {
        let mut argv = Vec::with_capacity(acked.len() + 1);
        argv.push(b"DEL".to_vec());
        argv.extend(acked.iter().map(|k| k.to_vec()));
        c.propagate_argv = Some(argv);
    }

    if socket_error.is_some() {
        // Final: no retry once keys may have moved (or after a timeout).
        srv.migrate_sockets.sockets.remove(name);
        if !error_from_target {
            c.reply
                .add_error("IOERR error or timeout reading to target instance");
        }
        return Attempt::Done;
    }
    if !error_from_target {
        if let Some(cs) = srv.migrate_sockets.sockets.get_mut(name) {
            cs.last_dbid = dbid;
        }
        c.reply.add_ok();
    }
    Attempt::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<Vec<u8>> {
        s.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    fn positions(s: &[&str]) -> Option<Vec<usize>> {
        let mut keys = Vec::new();
        get_keys(&COMMANDS[0], &argv(s), &mut keys)?;
        Some(keys.iter().map(|k| k.pos).collect())
    }

    #[test]
    fn keys_of_migrate() {
        assert_eq!(
            positions(&["migrate", "h", "1", "k", "0", "0"]),
            Some(vec![3])
        );
        let keys2 = ["migrate", "h", "1", "", "0", "0", "KEYS", "a", "b"];
        assert_eq!(positions(&keys2), Some(vec![7, 8]));
        let copy = ["migrate", "h", "1", "", "0", "0", "COPY", "KEYS", "a"];
        assert_eq!(positions(&copy), Some(vec![8]));
        // AUTH's argument named "keys" is a password, not the keyword.
        let auth = ["migrate", "h", "1", "x", "0", "0", "AUTH", "keys"];
        assert_eq!(positions(&auth), Some(vec![3]));
        let auth2 = [
            "migrate", "h", "1", "", "0", "0", "AUTH2", "keys", "keys", "KEYS", "a",
        ];
        assert_eq!(positions(&auth2), Some(vec![10]));
        // KEYS with a non-empty key: no keys at all.
        assert_eq!(
            positions(&["migrate", "h", "1", "x", "0", "0", "KEYS", "a"]),
            None
        );
        // KEYS as the last argument: the keyword spec does not see it.
        let last = ["migrate", "h", "1", "", "0", "0", "KEYS"];
        assert_eq!(positions(&last), Some(vec![3]));
    }

    #[test]
    fn atoi_as_c() {
        assert_eq!(atoi(b"6379"), 6379);
        assert_eq!(atoi(b" 12x"), 12);
        assert_eq!(atoi(b"-5"), -5);
        assert_eq!(atoi(b"abc"), 0);
        assert_eq!(atoi(b""), 0);
    }
}
