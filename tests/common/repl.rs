//! Helpers the replication tests share: INFO fields, pipelined loads, attaching a
//! replica, and the size knobs read from the environment.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::{encode_command, info_field, wait_for, Conn, Server, READ_TIMEOUT};

/// A numeric knob from the environment (e.g. `REPL_TEST_KEYS`), or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The seeds to run: the one in the environment variable `name` (e.g. `FUZZ_SEED`), or
/// `default`.
pub fn env_seeds(name: &str, default: &[u64]) -> Vec<u64> {
    match std::env::var(name).ok().and_then(|v| v.parse().ok()) {
        Some(s) => vec![s],
        None => default.to_vec(),
    }
}

/// A fake primary for `c`: a listener on a free loopback port, `REPLICAOF` to it, and the
/// handshake answered ([`fake_primary_accept`], 10 s); the listener (for reconnections)
/// and the socket to write the sync on.
pub fn fake_primary_for(c: &mut Conn) -> (TcpListener, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let fport = l.local_addr().unwrap().port().to_string();
    c.call(&["REPLICAOF", "127.0.0.1", &fport]);
    let (_, w) = fake_primary_accept(&l, Duration::from_secs(10)).expect("handshake");
    (l, w)
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

/// One command (a RESP array of bulk strings) read by a fake primary from its replica.
pub fn read_command(r: &mut BufReader<TcpStream>) -> Option<Vec<String>> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let n: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    let mut out = Vec::new();
    for _ in 0..n {
        line.clear();
        r.read_line(&mut line).ok()?;
        let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
        let mut b = vec![0u8; len + 2];
        r.read_exact(&mut b).ok()?;
        b.truncate(len);
        out.push(String::from_utf8_lossy(&b).into_owned());
    }
    Some(out)
}

/// A fake primary: accepts a replica on `l` within `limit` and answers its handshake
/// (+PONG, +OK); returns the PSYNC arguments and the socket to write the rest on.
pub fn fake_primary_accept(l: &TcpListener, limit: Duration) -> Option<(Vec<String>, TcpStream)> {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + limit;
    let s = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => return None,
        }
    };
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        let cmd = read_command(&mut r)?;
        match cmd[0].to_ascii_uppercase().as_str() {
            "PING" => w.write_all(b"+PONG\r\n").unwrap(),
            "PSYNC" => return Some((cmd, w)),
            _ => w.write_all(b"+OK\r\n").unwrap(),
        }
    }
}

/// A fake primary's full sync: `+FULLRESYNC <id> <offset>` and an empty RDB sent with
/// an EOF mark (the diskless form).
pub fn eof_fullsync(id: &str, offset: u64) -> Vec<u8> {
    let mark = "m".repeat(40);
    let mut payload = format!("+FULLRESYNC {id} {offset}\r\n$EOF:{mark}\r\n").into_bytes();
    payload.extend_from_slice(b"REDIS0011\xff\0\0\0\0\0\0\0\0");
    payload.extend_from_slice(mark.as_bytes());
    payload
}

/// Waits until every replica's link is up and each applied all that `top` produced (the
/// primary's offset is read again after the replicas', so a PING in between is noticed).
pub fn wait_in_sync(top: &mut Conn, replicas: &mut [&mut Conn]) {
    let ok = wait_for(Duration::from_secs(30), || {
        let p1 = info_num(top, "master_repl_offset");
        let all = replicas.iter_mut().all(|r| {
            info_str(r, "master_link_status") == "up" && info_num(r, "slave_repl_offset") == p1
        });
        all && info_num(top, "master_repl_offset") == p1
    });
    let offs: Vec<i64> = replicas
        .iter_mut()
        .map(|r| info_num(r, "slave_repl_offset"))
        .collect();
    assert!(
        ok,
        "offsets never matched: primary {} replicas {:?}",
        info_num(top, "master_repl_offset"),
        offs
    );
}
