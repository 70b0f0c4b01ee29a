//! The audit log (beyond upstream; see docs/security.md): with `audit-log-file <path>` set,
//! one JSON object per line for every authentication success or failure and every ACL
//! denial, appended (O_APPEND) to a file created with mode 0600. Lines are written with
//! one plain `write` each (no fsync); a failing write is dropped (and logged once) rather
//! than stalling the event loop.
//!
//! Fields: `ts` (unix ms), `event` (`auth-ok`, `auth-fail`, `auth-throttled`, `acl-deny`),
//! `user`, `addr` (client address), `id` (client id), `cmd` (command name as sent, lower
//! case), `reason` (`wrong-password`, `no-such-user`, `user-disabled`, `locked-out`,
//! `command`, `key`, `channel`, `db`) and for ACL denials `object` (the denied command,
//! key or channel). Strings are JSON-escaped byte-wise: printable ASCII as is, `"` and `\`
//! backslashed, any other byte as `\u00XX`; each is cut to 256 bytes.

use std::fs::File;
use std::io::Write as _;

use crate::client::Client;
use crate::server::Server;

/// The open audit file and the path it was opened for.
#[derive(Debug, Default)]
pub struct Audit {
    file: Option<File>,
    path: String,
    /// The open failed for `path`: do not retry on every event.
    failed: bool,
}

const MAX_FIELD: usize = 256;

fn push_json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s.iter().take(MAX_FIELD) {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(b),
            _ => {
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
    }
    out.push(b'"');
}

/// Formats one audit line (with its newline).
#[allow(clippy::too_many_arguments)]
pub fn format_line(
    ts: i64,
    event: &str,
    user: &[u8],
    addr: &str,
    id: u64,
    cmd: &[u8],
    reason: &str,
    object: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    let _ = write!(out, "{{\"ts\":{},\"event\":\"{}\",\"user\":", ts, event);
    push_json_str(&mut out, user);
    out.extend_from_slice(b",\"addr\":");
    push_json_str(&mut out, addr.as_bytes());
    let _ = write!(out, ",\"id\":{},\"cmd\":", id);
    let cmd = cmd.to_ascii_lowercase();
    push_json_str(&mut out, &cmd);
    out.extend_from_slice(b",\"reason\":");
    push_json_str(&mut out, reason.as_bytes());
    if let Some(o) = object {
        out.extend_from_slice(b",\"object\":");
        push_json_str(&mut out, o);
    }
    out.extend_from_slice(b"}\n");
    out
}

fn open(path: &str) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

impl Audit {
    fn write(&mut self, path: &str, line: &[u8]) {
        if self.path != path {
            self.path = path.to_owned();
            self.file = None;
            self.failed = false;
        }
        if self.file.is_none() && !self.failed {
            match open(path) {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    log::warn!("Can't open the audit log file {}: {}", path, e);
                    self.failed = true;
                }
            }
        }
        if let Some(f) = &mut self.file {
            if let Err(e) = f.write_all(line) {
                log::warn!("Can't write to the audit log file {}: {}", path, e);
                self.file = None;
                self.failed = true;
            }
        }
    }
}

/// Records an event for client `c` when the audit log is on.
pub fn event(
    srv: &mut Server,
    c: &Client,
    event: &str,
    user: &[u8],
    reason: &str,
    object: Option<&[u8]>,
) {
    if srv.config.audit_log_file.is_empty() {
        return;
    }
    let cmd: &[u8] = c.argv.first().map_or(&[], |a| a.as_slice());
    let line = format_line(srv.mstime, event, user, &c.addr, c.id, cmd, reason, object);
    let path = std::mem::take(&mut srv.config.audit_log_file);
    srv.audit.write(&path, &line);
    srv.config.audit_log_file = path;
}

/// Records an ACL denial of client `c` (the hook in `aclsrv::log_denial`).
pub fn acl_denial(srv: &mut Server, c: &Client, reason: acl::DenyReason, object: &[u8]) {
    if srv.config.audit_log_file.is_empty() {
        return;
    }
    let reason = match reason {
        acl::DenyReason::Cmd => "command",
        acl::DenyReason::Key => "key",
        acl::DenyReason::Channel => "channel",
        acl::DenyReason::Db => "db",
    };
    let user = c.user.clone();
    event(srv, c, "acl-deny", user.as_bytes(), reason, Some(object));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let l = format_line(
            5,
            "acl-deny",
            b"a\"b\\\n\xff",
            "1.2.3.4:5",
            7,
            b"GET",
            "key",
            Some(b"k"),
        );
        assert_eq!(
            String::from_utf8(l).unwrap(),
            "{\"ts\":5,\"event\":\"acl-deny\",\"user\":\"a\\\"b\\\\\\u000a\\u00ff\",\
             \"addr\":\"1.2.3.4:5\",\"id\":7,\"cmd\":\"get\",\"reason\":\"key\",\
             \"object\":\"k\"}\n"
        );
    }
}
