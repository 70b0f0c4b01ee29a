//! The command logs (Valkey 8.1+ COMMANDLOG; SLOWLOG is the slow log under its old
//! name): the latest commands that ran longer than `commandlog-execution-slower-than`
//! microseconds, or whose request or reply was larger than
//! `commandlog-request-larger-than` / `commandlog-reply-larger-than` bytes.
//!
//! [`CommandLogs::record`] is called by `call()` after every command; it only compares
//! numbers against the thresholds and allocates nothing unless an entry is logged.

use std::collections::VecDeque;

use crate::client::Client;

/// The three logs, in upstream's order.
pub const SLOW: usize = 0;
pub const LARGE_REQUEST: usize = 1;
pub const LARGE_REPLY: usize = 2;

/// At most this many arguments are kept; the last one then counts the rest.
pub const ENTRY_MAX_ARGC: usize = 32;
/// Longer arguments are cut here, with a note of the bytes left out.
pub const ENTRY_MAX_STRING: usize = 128;

/// One logged command.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: i64,
    /// Unix time in seconds.
    pub time: i64,
    /// Microseconds for the slow log, bytes for the large logs.
    pub value: i64,
    pub argv: Vec<Vec<u8>>,
    pub peer: String,
    pub name: Vec<u8>,
}

/// One log: newest entry first.
#[derive(Debug, Default)]
pub struct Log {
    pub entries: VecDeque<Entry>,
    pub next_id: i64,
}

/// The thresholds and lengths of one log, copied from the config.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Negative: the log is off.
    pub threshold: i64,
    pub max_len: u64,
}

impl Limits {
    /// Whether a command with this value would be logged.
    #[inline]
    pub fn hits(&self, value: i64) -> bool {
        self.threshold >= 0 && self.max_len > 0 && value >= self.threshold
    }
}

#[derive(Debug, Default)]
pub struct CommandLogs {
    pub logs: [Log; 3],
}

/// Whether argument `j` of `argv` is a secret upstream redacts (its
/// `redactClientCommandArgument` in AUTH, HELLO, MIGRATE and sensitive CONFIG SET values):
/// shown as `(redacted)` in the command logs and to MONITOR (src/monitor.rs).
pub fn redacted(argv: &[Vec<u8>], j: usize) -> bool {
    let Some(name) = argv.first() else {
        return false;
    };
    if name.eq_ignore_ascii_case(b"auth") {
        return j >= 1;
    }
    if name.eq_ignore_ascii_case(b"hello") {
        // HELLO [protover [AUTH username password] [SETNAME clientname]]
        let mut i = 2;
        while i < argv.len() {
            if argv[i].eq_ignore_ascii_case(b"auth") && i + 2 < argv.len() {
                if j == i + 1 || j == i + 2 {
                    return true;
                }
                i += 3;
            } else {
                i += 2;
            }
        }
        return false;
    }
    if name.eq_ignore_ascii_case(b"migrate") {
        // MIGRATE host port key db timeout [COPY] [REPLACE] [AUTH pw | AUTH2 user pw] [KEYS ...]
        let mut i = 6;
        while i < argv.len() {
            if argv[i].eq_ignore_ascii_case(b"keys") {
                return false;
            }
            if argv[i].eq_ignore_ascii_case(b"auth") {
                if j == i + 1 {
                    return true;
                }
                i += 2;
            } else if argv[i].eq_ignore_ascii_case(b"auth2") {
                if j == i + 1 || j == i + 2 {
                    return true;
                }
                i += 3;
            } else {
                i += 1;
            }
        }
        return false;
    }
    if name.eq_ignore_ascii_case(b"config")
        && argv.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"set"))
        && j >= 3
        && j % 2 == 1
    {
        let key = &argv[j - 1];
        return key.eq_ignore_ascii_case(b"requirepass") || key.eq_ignore_ascii_case(b"masterauth");
    }
    false
}

/// The argument vector as an entry keeps it: at most [`ENTRY_MAX_ARGC`] arguments of at
/// most [`ENTRY_MAX_STRING`] bytes each.
pub fn truncate_argv(argv: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let argc = argv.len();
    let kept = argc.min(ENTRY_MAX_ARGC);
    let mut out = Vec::with_capacity(kept);
    for (j, a) in argv.iter().take(kept).enumerate() {
        if kept != argc && j == kept - 1 {
            out.push(format!("... ({} more arguments)", argc - kept + 1).into_bytes());
        } else if redacted(argv, j) {
            out.push(b"(redacted)".to_vec());
        } else if a.len() > ENTRY_MAX_STRING {
            let mut s = a[..ENTRY_MAX_STRING].to_vec();
            s.extend_from_slice(
                format!("... ({} more bytes)", a.len() - ENTRY_MAX_STRING).as_bytes(),
            );
            out.push(s);
        } else {
            out.push(a.clone());
        }
    }
    out
}

impl CommandLogs {
    /// Adds an entry to log `kind` if `value` reaches its threshold, then trims the log
    /// to its length (upstream trims only when a command is checked against it).
    /// `argv` is the truncated vector, built lazily.
    pub fn push_if_needed(
        &mut self,
        kind: usize,
        limits: Limits,
        value: i64,
        c: &Client,
        argv: &mut dyn FnMut() -> Vec<Vec<u8>>,
        now_secs: i64,
    ) {
        if limits.threshold < 0 || limits.max_len == 0 {
            return;
        }
        let Some(log) = self.logs.get_mut(kind) else {
            return;
        };
        if value >= limits.threshold {
            let id = log.next_id;
            log.next_id = log.next_id.wrapping_add(1);
            log.entries.push_front(Entry {
                id,
                time: now_secs,
                value,
                argv: argv(),
                peer: c.addr.clone(),
                name: c.name.clone().unwrap_or_default(),
            });
        }
        let max = usize::try_from(limits.max_len).unwrap_or(usize::MAX);
        while log.entries.len() > max {
            log.entries.pop_back();
        }
    }

    pub fn reset(&mut self, kind: usize) {
        if let Some(l) = self.logs.get_mut(kind) {
            l.entries.clear();
        }
    }

    pub fn len(&self, kind: usize) -> usize {
        self.logs.get(kind).map_or(0, |l| l.entries.len())
    }
}

/// The size of a command as a RESP multibulk request (what upstream counts as the
/// command's input bytes).
#[inline]
pub fn request_bytes(argv: &[Vec<u8>]) -> i64 {
    fn digits(mut n: usize) -> usize {
        let mut d = 1;
        while n >= 10 {
            n /= 10;
            d += 1;
        }
        d
    }
    let mut total = 3 + digits(argv.len());
    for a in argv {
        total = total.saturating_add(5 + digits(a.len()) + a.len());
    }
    i64::try_from(total).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_rules() {
        let argv: Vec<Vec<u8>> = (0..40).map(|i| format!("a{}", i).into_bytes()).collect();
        let t = truncate_argv(&argv);
        assert_eq!(t.len(), 32);
        assert_eq!(t[30], b"a30");
        assert_eq!(t[31], b"... (9 more arguments)");
        let argv = vec![b"set".to_vec(), vec![b'x'; 200]];
        let t = truncate_argv(&argv);
        assert_eq!(t[1].len(), 128 + "... (72 more bytes)".len());
        assert!(t[1].ends_with(b"... (72 more bytes)"));
        let argv: Vec<Vec<u8>> = (0..32).map(|i| format!("a{}", i).into_bytes()).collect();
        assert_eq!(truncate_argv(&argv), argv);
    }

    #[test]
    fn redaction() {
        let argv = vec![b"AUTH".to_vec(), b"u".to_vec(), b"p".to_vec()];
        assert_eq!(truncate_argv(&argv)[1], b"(redacted)");
        let argv: Vec<Vec<u8>> = ["hello", "3", "auth", "u", "p", "setname", "n"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let t = truncate_argv(&argv);
        assert_eq!(t[3], b"(redacted)");
        assert_eq!(t[4], b"(redacted)");
        assert_eq!(t[6], b"n");
    }

    #[test]
    fn request_size() {
        let argv = vec![b"get".to_vec(), b"k".to_vec()];
        assert_eq!(
            request_bytes(&argv),
            b"*2\r\n$3\r\nget\r\n$1\r\nk\r\n".len() as i64
        );
    }
}
