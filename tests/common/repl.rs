//! Helpers the replication tests share: INFO fields, pipelined loads, attaching a
//! replica, and the size knobs read from the environment.

use std::time::Duration;

use super::{encode_command, info_field, Conn, Server, READ_TIMEOUT};

/// A numeric knob from the environment (e.g. `REPL_TEST_KEYS`), or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An `INFO all` field as text ("" when absent).
pub fn info_str(c: &mut Conn, field: &str) -> String {
    let r = c.call(&["INFO", "all"]);
    let text = String::from_utf8_lossy(&r).into_owned();
    let prefix = format!("{field}:");
    text.split("\r\n")
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_default()
}

/// An `INFO all` field as a number (-1 when absent).
pub fn info_num(c: &mut Conn, field: &str) -> i64 {
    let r = c.call(&["INFO", "all"]);
    info_field(&r, field).unwrap_or(-1)
}

/// An argument vector from string slices.
pub fn v(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Sends `cmds` in pipelined batches of 200 and reads every reply; with `check`, an
/// error reply fails the test.
pub fn pipeline_checked(c: &mut Conn, cmds: &[Vec<String>], check: bool) {
    for chunk in cmds.chunks(200) {
        let mut out = Vec::new();
        for cmd in chunk {
            out.extend_from_slice(&encode_command(cmd));
        }
        c.send_raw(&out).expect("send");
        for cmd in chunk {
            let r = c.read_reply().expect("reply");
            if check {
                assert!(
                    !r.starts_with(b"-"),
                    "{cmd:?} -> {}",
                    String::from_utf8_lossy(&r)
                );
            }
        }
    }
}

/// [`pipeline_checked`] without the error check (loads that may hit WRONGTYPE).
pub fn pipeline(c: &mut Conn, cmds: &[Vec<String>]) {
    pipeline_checked(c, cmds, false)
}

/// `REPLICAOF 127.0.0.1 <primary's port>`, which must answer +OK.
pub fn attach(r: &mut Conn, primary: &Server) {
    let port = primary.port.to_string();
    assert_eq!(r.call(&["REPLICAOF", "127.0.0.1", &port]), b"+OK\r\n");
}

/// Whether INFO replication says the link to the primary is up.
pub fn link_up(r: &mut Conn) -> bool {
    String::from_utf8_lossy(&r.call(&["INFO", "replication"])).contains("master_link_status:up")
}

/// DEBUG DIGEST with a long timeout (a big dataset takes a while to digest).
pub fn digest(c: &mut Conn) -> Vec<u8> {
    c.set_read_timeout(Duration::from_secs(300));
    let d = c.call(&["DEBUG", "DIGEST"]);
    c.set_read_timeout(READ_TIMEOUT);
    d
}
