//! ACL LOG: entries and upstream's grouping (a denial equal to one of the 10 newest
//! entries within 60 s updates it and moves it to the front instead of adding one).

use std::collections::VecDeque;

/// Entries older than this (ms since their last update) are not grouped.
pub const GROUPING_MAX_MS: i64 = 60_000;
/// How many of the newest entries are searched for a group.
const SCAN: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogReason {
    Command,
    Key,
    Channel,
    Auth,
    Database,
}

impl LogReason {
    pub fn name(self) -> &'static str {
        match self {
            LogReason::Command => "command",
            LogReason::Key => "key",
            LogReason::Channel => "channel",
            LogReason::Auth => "auth",
            LogReason::Database => "database",
        }
    }

    pub fn from_deny(d: crate::DenyReason) -> LogReason {
        match d {
            crate::DenyReason::Db => LogReason::Database,
            crate::DenyReason::Cmd => LogReason::Command,
            crate::DenyReason::Key => LogReason::Key,
            crate::DenyReason::Channel => LogReason::Channel,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogContext {
    Toplevel,
    Multi,
    Lua,
    Module,
}

impl LogContext {
    pub fn name(self) -> &'static str {
        match self {
            LogContext::Toplevel => "toplevel",
            LogContext::Multi => "multi",
            LogContext::Lua => "lua",
            LogContext::Module => "module",
        }
    }
}

/// One ACL LOG entry; the reply shows `age-seconds` as `(now - ctime_ms) / 1000.0`.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    pub count: u64,
    pub reason: LogReason,
    pub context: LogContext,
    pub object: Vec<u8>,
    pub username: Vec<u8>,
    /// Time of the last occurrence (ms).
    pub ctime_ms: i64,
    pub client_info: Vec<u8>,
    pub entry_id: u64,
    pub timestamp_created: i64,
    pub timestamp_last_updated: i64,
}

/// The log, newest first.
#[derive(Clone, Debug, Default)]
pub struct AclLog {
    entries: VecDeque<LogEntry>,
    next_id: u64,
}

impl AclLog {
    pub fn new() -> AclLog {
        AclLog::default()
    }

    /// Record a denial (ACL LOG grouping as upstream's addACLLogEntry), then trim to
    /// `max_len` (`acllog-max-len`).
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        reason: LogReason,
        context: LogContext,
        object: &[u8],
        username: &[u8],
        client_info: Vec<u8>,
        now_ms: i64,
        max_len: usize,
    ) {
        let found = self.entries.iter().take(SCAN).position(|e| {
            e.reason == reason
                && e.context == context
                && now_ms.saturating_sub(e.ctime_ms) <= GROUPING_MAX_MS
                && e.object == object
                && e.username == username
        });
        if let Some(i) = found {
            if let Some(mut e) = self.entries.remove(i) {
                e.client_info = client_info;
                e.ctime_ms = now_ms;
                e.timestamp_last_updated = now_ms;
                e.count = e.count.saturating_add(1);
                self.entries.push_front(e);
            }
        } else {
            self.entries.push_front(LogEntry {
                count: 1,
                reason,
                context,
                object: object.to_vec(),
                username: username.to_vec(),
                ctime_ms: now_ms,
                client_info,
                entry_id: self.next_id,
                timestamp_created: now_ms,
                timestamp_last_updated: now_ms,
            });
            self.next_id += 1;
        }
        self.entries.truncate(max_len);
    }

    /// Newest first.
    pub fn entries(&self) -> impl Iterator<Item = &LogEntry> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// ACL LOG RESET (entry ids keep counting, as upstream).
    pub fn reset(&mut self) {
        self.entries.clear();
    }

    /// Apply a lowered `acllog-max-len`.
    pub fn trim(&mut self, max_len: usize) {
        self.entries.truncate(max_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping() {
        let mut l = AclLog::new();
        let add = |l: &mut AclLog, obj: &[u8], t: i64| {
            l.add(
                LogReason::Key,
                LogContext::Toplevel,
                obj,
                b"u",
                b"ci".to_vec(),
                t,
                128,
            )
        };
        add(&mut l, b"k", 1000);
        add(&mut l, b"k", 2000);
        assert_eq!(l.len(), 1);
        let e = l.entries().next().unwrap();
        assert_eq!(
            (e.count, e.timestamp_created, e.timestamp_last_updated),
            (2, 1000, 2000)
        );
        add(&mut l, b"other", 3000);
        add(&mut l, b"k", 4000);
        assert_eq!(l.len(), 2);
        let e = l.entries().next().unwrap();
        assert_eq!(
            (e.object.as_slice(), e.count, e.entry_id),
            (&b"k"[..], 3, 0)
        );
        // Past 60 s since the last update: a new entry.
        add(&mut l, b"k", 4000 + GROUPING_MAX_MS + 1);
        assert_eq!(l.len(), 3);
        assert_eq!(l.entries().next().unwrap().entry_id, 2);
        l.add(
            LogReason::Auth,
            LogContext::Multi,
            b"AUTH",
            b"u",
            vec![],
            0,
            2,
        );
        assert_eq!(l.len(), 2);
        l.reset();
        assert!(l.is_empty());
    }
}
