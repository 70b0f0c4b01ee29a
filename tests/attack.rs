//! Attacker-style tests against the real binary (issue 7, "Tests (as an attacker would try
//! them)"): while an attack runs, a second, well-behaved client keeps getting PING answered
//! quickly and the server's memory stays bounded.
//!
//! The tests run one at a time (a process-wide lock): they open hundreds of sockets and
//! measure latency, so running them side by side would skew both.

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Latency bound for the good client's PING while an attack runs.
const MAX_PING: Duration = Duration::from_millis(50);
/// No single PING may take longer than this. The 50 ms bound applies to the 99th
/// percentile: on a loaded 2-core machine the test process itself (which runs the
/// attackers' threads) is sometimes descheduled for longer than a server turn.
const MAX_PING_OUTLIER: Duration = Duration::from_millis(500);
/// Memory growth bound (bytes) during and after an attack.
const MAX_GROWTH: i64 = 64 * 1024 * 1024;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// valkey-rs, or the reference with `VALKEY_TEST_TARGET=reference` (to check the tests'
/// expectations against upstream).
fn start(extra: &[&str]) -> Server {
    if std::env::var("VALKEY_TEST_TARGET").is_ok_and(|v| v == "reference") {
        if let Some(bin) = require_reference() {
            return Server::reference(&bin, extra);
        }
    }
    Server::ours(extra)
}

/// The server's pid (INFO server `process_id`).
fn server_pid(c: &mut Conn) -> i64 {
    let r = c.call(&["INFO", "server"]);
    info_field(&r, "process_id").expect("process_id in INFO server")
}

/// VmRSS of `pid` in bytes (0 if unreadable).
fn rss(pid: i64) -> i64 {
    let s = std::fs::read_to_string(format!("/proc/{}/status", pid)).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn stat(c: &mut Conn, section: &str, field: &str) -> i64 {
    let r = c.call(&["INFO", section]);
    info_field(&r, field).unwrap_or_else(|| panic!("no {} in INFO {}", field, section))
}

/// What the good client saw while an attack ran.
struct Watch {
    pings: usize,
    max_ping: Duration,
    /// Every PING's round trip, in order.
    samples: Vec<Duration>,
    max_rss: i64,
    conn: Conn,
}

/// A well-behaved client pinging every 10 ms (and sampling the server's RSS) until stopped.
struct Watcher {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Watch>,
}

impl Watcher {
    fn start(mut conn: Conn, pid: i64) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut pings, mut max_ping, mut max_rss) = (0usize, Duration::ZERO, 0i64);
            let mut samples = Vec::new();
            loop {
                let t = Instant::now();
                let r = conn.call(&["PING"]);
                let d = t.elapsed();
                assert_eq!(escape(&r), "+PONG\\r\\n", "good client's PING");
                pings += 1;
                max_ping = max_ping.max(d);
                samples.push(d);
                max_rss = max_rss.max(rss(pid));
                if flag.load(Ordering::SeqCst) && pings >= 5 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Watch {
                pings,
                max_ping,
                samples,
                max_rss,
                conn,
            }
        });
        Watcher { stop, handle }
    }

    fn finish(self) -> Watch {
        self.stop.store(true, Ordering::SeqCst);
        match self.handle.join() {
            Ok(w) => w,
            Err(e) => std::panic::resume_unwind(e),
        }
    }
}

#[track_caller]
fn check_watch(what: &str, w: &Watch, rss_before: i64) {
    let mut sorted = w.samples.clone();
    sorted.sort();
    let p99 = sorted
        .get((sorted.len() * 99 / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default();
    eprintln!(
        "{}: {} pings, p99 {:?}, max {:?}; RSS before {} KB, peak {} KB (+{} KB)",
        what,
        w.pings,
        p99,
        w.max_ping,
        rss_before / 1024,
        w.max_rss / 1024,
        (w.max_rss - rss_before) / 1024
    );
    assert!(w.pings >= 5, "{}: only {} pings", what, w.pings);
    assert!(
        p99 < MAX_PING,
        "{}: good client's PING p99 {:?} (max {:?})",
        what,
        p99,
        w.max_ping
    );
    assert!(
        w.max_ping < MAX_PING_OUTLIER,
        "{}: good client's PING took {:?}",
        what,
        w.max_ping
    );
    assert!(
        w.max_rss - rss_before < MAX_GROWTH,
        "{}: RSS grew from {} to {}",
        what,
        rss_before,
        w.max_rss
    );
}

fn connected_clients(c: &mut Conn) -> i64 {
    stat(c, "clients", "connected_clients")
}

/// An unauthenticated client announcing a 1 GB multibulk / bulk: rejected with upstream's
/// errors and closed, without allocating by the announced size.
#[test]
fn unauthenticated_huge_headers() {
    let _g = serial();
    let s = start(&["--requirepass", "secret"]);
    let mut good = s.conn();
    assert_eq!(escape(&good.call(&["AUTH", "secret"])), "+OK\\r\\n");
    let pid = server_pid(&mut good);
    let before = rss(pid);
    let w = Watcher::start(good, pid);

    let cases: &[(&[u8], &str)] = &[
        (
            b"*1000000000\r\n",
            "-ERR Protocol error: unauthenticated multibulk length\r\n",
        ),
        (
            b"*1\r\n$1000000\r\n",
            "-ERR Protocol error: unauthenticated bulk length\r\n",
        ),
        (
            b"*2\r\n$4\r\nAUTH\r\n$16385\r\n",
            "-ERR Protocol error: unauthenticated bulk length\r\n",
        ),
        // Over proto-max-bulk-len: that check comes first, as upstream.
        (
            b"*1\r\n$1000000000\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
    ];
    let mut conns = Vec::new();
    for round in 0..10 {
        for (req, want) in cases {
            let mut c = s.conn();
            if round == 0 {
                // Trickled byte by byte.
                for b in req.iter() {
                    c.send_raw(&[*b]).expect("send");
                    std::thread::sleep(Duration::from_millis(2));
                }
            } else {
                c.send_raw(req).expect("send");
            }
            conns.push((c, *want));
        }
    }
    // A client that announced a small multibulk and trickles a huge inline-free body: bytes
    // follow the header slowly, never completing a bulk header.
    let mut trickler = s.conn();
    trickler.send_raw(b"*2\r\n$100").expect("send");
    for _ in 0..50 {
        trickler.send_raw(b"0").expect("send");
        std::thread::sleep(Duration::from_millis(5));
    }
    for (c, want) in conns.iter_mut() {
        let (got, closed) = c.read_until_close(Duration::from_secs(3));
        assert_eq!(escape(&got), escape(want.as_bytes()));
        assert!(closed, "connection left open after {:?}", want);
    }
    // A 70,000-byte inline AUTH sent in one write: over the 64 KB inline limit even
    // though its newline arrived with it.
    let mut inline = s.conn();
    let line = [&b"AUTH "[..], &[b'a'; 69_995][..], b"\r\n"].concat();
    inline.send_raw(&line).expect("send");
    let (got, closed) = inline.read_until_close(Duration::from_secs(3));
    assert_eq!(
        escape(&got),
        escape(b"-ERR Protocol error: too big inline request\r\n")
    );
    assert!(
        closed,
        "connection left open after a too big inline request"
    );
    // The trickled bulk length ($1000...0, 53 digits) overflows or exceeds the limits:
    // rejected and closed.
    trickler.send_raw(b"\r\n").expect("send");
    let (got, closed) = trickler.read_until_close(Duration::from_secs(3));
    assert!(
        String::from_utf8_lossy(&got).starts_with("-ERR Protocol error: "),
        "trickler got {}",
        escape(&got)
    );
    assert!(closed, "trickler left open");

    let mut w = w.finish();
    check_watch("unauthenticated huge headers", &w, before);
    assert_eq!(connected_clients(&mut w.conn), 1);
}

/// Slowloris: 200 connections trickling one byte every 100 ms for 2 s; with `timeout 1` the
/// half-open clients are closed once they go quiet.
#[test]
fn slowloris_trickle() {
    let _g = serial();
    let s = start(&["--timeout", "1"]);
    let mut good = s.conn();
    let pid = server_pid(&mut good);
    let before = rss(pid);
    let w = Watcher::start(good, pid);

    let req = encode_command(&["SET", "slowloris-key", "some value of a few bytes"]);
    let mut conns: Vec<Conn> = (0..200).map(|_| s.conn()).collect();
    let start = Instant::now();
    let mut pos = 0;
    while start.elapsed() < Duration::from_secs(2) {
        for c in conns.iter_mut() {
            c.send_raw(&req[pos..pos + 1]).expect("trickle");
        }
        pos += 1;
        assert!(pos < req.len(), "request complete too early");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut w = w.finish();
    check_watch("slowloris", &w, before);
    let during = connected_clients(&mut w.conn);
    eprintln!("slowloris: connected_clients while trickling: {}", during);
    assert!(
        during >= 150,
        "trickling clients closed too early: {}",
        during
    );
    // The key was never set: no request completed.
    assert_eq!(
        escape(&w.conn.call(&["EXISTS", "slowloris-key"])),
        ":0\\r\\n"
    );

    // Quiet now: `timeout 1` closes them (the good client keeps talking, so it stays).
    let t = Instant::now();
    let dropped = wait_for(Duration::from_secs(5), || {
        connected_clients(&mut w.conn) == 1
    });
    eprintln!(
        "slowloris: idle clients closed after {:?} (ok={})",
        t.elapsed(),
        dropped
    );
    assert!(dropped, "idle half-open clients were not closed by timeout");
    let list = w.conn.call(&["CLIENT", "LIST"]);
    assert_eq!(
        String::from_utf8_lossy(&list).matches("id=").count(),
        1,
        "CLIENT LIST: {}",
        escape_short(&list, 300)
    );
    for c in conns.iter_mut().take(20) {
        assert!(c.closed_within(Duration::from_secs(1)), "socket not closed");
    }
}

/// `maxclients 100` with 300 connections: the extra ones are refused with upstream's error
/// and closed, the good client goes on, and after they leave new clients get in.
#[test]
fn maxclients_flood() {
    let _g = serial();
    let s = start(&["--maxclients", "100"]);
    let mut good = s.conn();
    let pid = server_pid(&mut good);
    let before = rss(pid);
    let w = Watcher::start(good, pid);

    let mut conns: Vec<Conn> = (0..300).map(|_| s.conn()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let (mut refused, mut admitted) = (0, 0);
    for c in conns.iter_mut() {
        let (got, closed) = c.read_until_close(Duration::from_millis(5));
        if got.is_empty() && !closed {
            admitted += 1;
            continue;
        }
        assert_eq!(
            escape(&got),
            escape(b"-ERR max number of clients reached\r\n")
        );
        if !closed {
            assert!(c.closed_within(Duration::from_secs(2)), "refused but open");
        }
        refused += 1;
    }
    let mut w = w.finish();
    eprintln!("maxclients: admitted {}, refused {}", admitted, refused);
    check_watch("maxclients", &w, before);
    assert_eq!(admitted, 99, "the good client holds one of the 100 slots");
    assert_eq!(refused, 201);
    assert_eq!(connected_clients(&mut w.conn), 100);
    assert_eq!(stat(&mut w.conn, "stats", "rejected_connections"), 201);

    drop(conns);
    assert!(
        wait_for(Duration::from_secs(3), || connected_clients(&mut w.conn)
            == 1),
        "closed clients still counted"
    );
    let mut again: Vec<Conn> = (0..99).map(|_| s.conn()).collect();
    for c in again.iter_mut() {
        assert_eq!(escape(&c.call(&["PING"])), "+PONG\\r\\n");
    }
    let mut extra = s.conn();
    let (got, closed) = extra.read_until_close(Duration::from_secs(2));
    assert_eq!(
        escape(&got),
        escape(b"-ERR max number of clients reached\r\n")
    );
    assert!(closed);
}

/// A subscriber that never reads while 50 MB is published to its channel: the default
/// `client-output-buffer-limit pubsub 32mb 8mb 60` disconnects it; memory stays bounded.
///
/// valkey-rs only: the reference (9.1.2) does not disconnect here (checked with
/// `VALKEY_TEST_TARGET=reference`: all 500 messages delivered, used_memory +47 MB,
/// client_output_buffer_limit_disconnections 0; its reply lists seem to keep references to
/// the published 100 KB payloads and count far less than their size against the limit).
/// The issue asks for bounded memory, so we hold valkey-rs to the limit as written.
#[test]
fn pubsub_slow_subscriber() {
    let _g = serial();
    let s = Server::ours(&[]);
    let mut good = s.conn();
    let pid = server_pid(&mut good);
    let used_before = used_memory(&mut good);
    let before = rss(pid);
    let w = Watcher::start(good, pid);

    let mut sub = s.conn();
    sub.send(&["SUBSCRIBE", "flood"]).expect("subscribe");
    // Read the confirmation, then never read again.
    let conf = sub.read_reply().expect("subscribe reply");
    assert!(escape(&conf).contains("subscribe"), "{}", escape(&conf));

    let mut publisher = s.conn();
    let payload = vec![b'x'; 100 * 1024];
    let mut delivered_to_one = 0;
    let mut max_pub = Duration::ZERO;
    // 5 batches of 100 x 100 KB = 50 MB.
    for _ in 0..5 {
        let t = Instant::now();
        let mut batch = Vec::new();
        for _ in 0..100 {
            batch.extend_from_slice(&encode_command(&[
                b"PUBLISH".as_slice(),
                b"flood",
                &payload,
            ]));
        }
        publisher.send_raw(&batch).expect("publish");
        for _ in 0..100 {
            let r = publisher.read_reply().expect("publish reply");
            if r == b":1\r\n" {
                delivered_to_one += 1;
            } else {
                assert_eq!(escape(&r), ":0\\r\\n");
            }
        }
        max_pub = max_pub.max(t.elapsed());
    }
    let mut w = w.finish();
    let used_after = used_memory(&mut w.conn);
    let disconnections = stat(
        &mut w.conn,
        "stats",
        "client_output_buffer_limit_disconnections",
    );
    eprintln!(
        "pubsub: delivered {} of 500, slowest batch of 100 PUBLISH {:?}, \
         used_memory {} -> {}, limit disconnections {}",
        delivered_to_one, max_pub, used_before, used_after, disconnections
    );
    check_watch("pubsub slow subscriber", &w, before);
    assert!(delivered_to_one < 500, "subscriber was never disconnected");
    assert_eq!(disconnections, 1);
    assert!(used_after - used_before < MAX_GROWTH);
    assert_eq!(
        connected_clients(&mut w.conn),
        2,
        "good client and publisher"
    );
    let list = String::from_utf8_lossy(&w.conn.call(&["CLIENT", "LIST"])).into_owned();
    assert!(!list.contains("sub=1"), "subscriber still listed: {}", list);
    assert!(
        sub.closed_within(Duration::from_secs(5)),
        "subscriber socket not closed"
    );
    assert_eq!(escape(&publisher.call(&["PING"])), "+PONG\\r\\n");
}

/// Waits until INFO stats `field` reaches `n`; returns whether it did.
fn wait_stat(c: &mut Conn, field: &str, n: i64, limit: Duration) -> bool {
    wait_for(limit, || stat(c, "stats", field) >= n)
}

/// A normal client pipelining GETs of a 1 MB value and never reading, with
/// `client-output-buffer-limit normal 10mb 0 0` set at run time: closed at the hard limit
/// (its pending replies are dropped, not sent), counted in INFO, memory bounded.
#[test]
fn output_buffer_hard_limit_normal_client() {
    let _g = serial();
    let s = start(&[]);
    let mut good = s.conn();
    assert_eq!(
        escape(&good.call(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 10mb 0 0"
        ])),
        "+OK\\r\\n"
    );
    let big = vec![b'v'; 1024 * 1024];
    assert_eq!(
        escape(&good.call(&[b"SET".as_slice(), b"big", &big])),
        "+OK\\r\\n"
    );
    drop(big);
    let pid = server_pid(&mut good);
    let before = rss(pid);
    let w = Watcher::start(good, pid);

    // 500 GETs = 500 MB of replies if nothing stopped them.
    let mut hog = s.conn();
    let mut batch = Vec::new();
    for _ in 0..500 {
        batch.extend_from_slice(&encode_command(&["GET", "big"]));
    }
    hog.send_raw(&batch).expect("pipeline");
    std::thread::sleep(Duration::from_millis(500));
    let mut w = w.finish();
    check_watch("output buffer hard limit (normal)", &w, before);
    assert!(
        wait_stat(
            &mut w.conn,
            "client_output_buffer_limit_disconnections",
            1,
            Duration::from_secs(5)
        ),
        "the hog was not disconnected"
    );
    assert_eq!(
        stat(
            &mut w.conn,
            "stats",
            "client_output_buffer_limit_disconnections"
        ),
        1
    );
    assert!(
        wait_for(Duration::from_secs(3), || connected_clients(&mut w.conn)
            == 1),
        "the hog is still connected"
    );
    // What reached the socket before the close: far less than 500 replies.
    let (got, closed) = hog.read_until_close(Duration::from_secs(5));
    eprintln!(
        "obuf hard limit: the hog received {} KB before the close",
        got.len() / 1024
    );
    assert!(closed, "hog socket not closed");
    assert!(got.len() < 100 * 1024 * 1024, "hog got {} bytes", got.len());
    // The limit off again: a client reading its replies gets them all.
    assert_eq!(
        escape(&w.conn.call(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 0 0 0"
        ])),
        "+OK\\r\\n"
    );
    let mut reader = s.conn();
    let mut batch = Vec::new();
    for _ in 0..20 {
        batch.extend_from_slice(&encode_command(&["GET", "big"]));
    }
    reader.send_raw(&batch).expect("pipeline");
    for _ in 0..20 {
        let r = reader.read_reply().expect("reply");
        assert_eq!(r.len(), 1024 * 1024 + 12);
    }
}

/// The soft limit: over `normal 0 2mb 1` a client that does not read is closed once it
/// stayed over for more than a second (by cron: it sends nothing more), not at once.
#[test]
fn output_buffer_soft_limit_normal_client() {
    let _g = serial();
    let s = start(&[]);
    let mut good = s.conn();
    assert_eq!(
        escape(&good.call(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 0 2mb 1"
        ])),
        "+OK\\r\\n"
    );
    let big = vec![b'v'; 1024 * 1024];
    assert_eq!(
        escape(&good.call(&[b"SET".as_slice(), b"big", &big])),
        "+OK\\r\\n"
    );
    let mut hog = s.conn();
    let mut batch = Vec::new();
    for _ in 0..30 {
        batch.extend_from_slice(&encode_command(&["GET", "big"]));
    }
    let t = Instant::now();
    hog.send_raw(&batch).expect("pipeline");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        stat(
            &mut good,
            "stats",
            "client_output_buffer_limit_disconnections"
        ),
        0,
        "closed before the soft limit's seconds"
    );
    assert_eq!(connected_clients(&mut good), 2);
    assert!(
        wait_stat(
            &mut good,
            "client_output_buffer_limit_disconnections",
            1,
            Duration::from_secs(5)
        ),
        "the hog was not disconnected by the soft limit"
    );
    let after = t.elapsed();
    eprintln!("obuf soft limit: closed after {:?}", after);
    assert!(after >= Duration::from_secs(1), "closed after {:?}", after);
    assert!(hog.closed_within(Duration::from_secs(5)), "hog not closed");
}

/// `client-query-buffer-limit` (set at run time, 1 MB, its minimum): a client sending a
/// 2 MB argument is closed without a reply; queued MULTI arguments count too;
/// `proto-max-bulk-len` refuses a larger bulk header at once; INFO counts the query buffer
/// disconnections.
#[test]
fn query_buffer_limit_and_bulk_len() {
    let _g = serial();
    let s = start(&[]);
    let mut good = s.conn();
    assert_eq!(
        escape(&good.call(&["CONFIG", "SET", "client-query-buffer-limit", "1mb"])),
        "+OK\\r\\n"
    );
    let pid = server_pid(&mut good);
    let before = rss(pid);
    let w = Watcher::start(good, pid);

    // One 2 MB argument, sent in 64 KB pieces.
    let mut big = s.conn();
    big.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2097152\r\n")
        .expect("send");
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < 2 * 1024 * 1024 {
        if big.send_raw(&chunk).is_err() {
            break; // Closed under us: fine.
        }
        sent += chunk.len();
    }
    let _ = big.send_raw(b"\r\n");
    let (got, closed) = big.read_until_close(Duration::from_secs(5));
    assert!(closed, "client over the query buffer limit left open");
    assert_eq!(escape(&got), "", "no reply before the close");

    // MULTI: queued arguments are still input.
    let mut multi = s.conn();
    assert_eq!(escape(&multi.call(&["MULTI"])), "+OK\\r\\n");
    let val = vec![b'q'; 100 * 1024];
    let mut queued = 0;
    let mut closed = false;
    for i in 0..30 {
        match multi.cmd(&[b"SET".as_slice(), format!("m{i}").as_bytes(), &val]) {
            Ok(r) if r == b"+QUEUED\r\n" => queued += 1,
            _ => {
                closed = true;
                break;
            }
        }
    }
    if !closed {
        closed = multi.closed_within(Duration::from_secs(3));
    }
    eprintln!("query buffer limit: {queued} commands of 100 KB queued before the close");
    assert!(closed, "MULTI queue over the query buffer limit left open");
    assert!((8..=11).contains(&queued), "queued {queued}");

    let mut w = w.finish();
    check_watch("query buffer limit", &w, before);
    assert_eq!(
        stat(
            &mut w.conn,
            "stats",
            "client_query_buffer_limit_disconnections"
        ),
        2
    );
    assert_eq!(escape(&w.conn.call(&["EXISTS", "k", "m0"])), ":0\\r\\n");

    // proto-max-bulk-len at run time: a larger bulk header is refused before any body.
    assert_eq!(
        escape(&w.conn.call(&["CONFIG", "SET", "proto-max-bulk-len", "1mb"])),
        "+OK\\r\\n"
    );
    let mut c = s.conn();
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n")
        .expect("send");
    let (got, closed) = c.read_until_close(Duration::from_secs(3));
    assert_eq!(
        escape(&got),
        escape(b"-ERR Protocol error: invalid bulk length\r\n")
    );
    assert!(closed);
    let mut c = s.conn();
    let exact = vec![b'e'; 1024 * 1024];
    // Exactly the limit is allowed (the query buffer limit is 1 MB too: raise it).
    assert_eq!(
        escape(
            &w.conn
                .call(&["CONFIG", "SET", "client-query-buffer-limit", "4mb"])
        ),
        "+OK\\r\\n"
    );
    assert_eq!(
        escape(&c.call(&[b"SET".as_slice(), b"k", &exact])),
        "+OK\\r\\n"
    );
    assert_eq!(
        stat(
            &mut w.conn,
            "stats",
            "client_query_buffer_limit_disconnections"
        ),
        2
    );
}

/// One python3 process holding `n` connections from source address `src` (so that no
/// process needs more than ~n descriptors). It prints `connected` once all are open, then
/// on a line from stdin classifies them (admitted: nothing to read; refused: upstream's
/// error then EOF) and prints `admitted refused other`, then holds them until stdin closes.
const HOLDER_PY: &str = r#"
import socket, struct, sys, resource
port, n, src = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks = []
for i in range(n):
    s = socket.socket()
    # No TIME_WAIT left behind on exit (RST on close), and none that would block another
    # test's server binding 0.0.0.0 on one of these ports.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.bind((src, 0))
    s.connect(('127.0.0.1', port))
    socks.append(s)
print('connected', flush=True)
sys.stdin.readline()
adm = ref = oth = 0
sample = b''
for s in socks:
    s.setblocking(False)
    try:
        d = s.recv(100)
    except BlockingIOError:
        adm += 1
        continue
    except OSError:
        d = b''
    if d == b'-ERR max number of clients reached\r\n':
        ref += 1
    else:
        oth += 1
        sample = d
print(adm, ref, oth, repr(sample), flush=True)
sys.stdin.readline()
"#;

/// The hard descriptor limit of this process, after raising the soft limit to it.
fn raise_nofile() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 1024;
        }
        rl.rlim_cur = rl.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
    }
    rl.rlim_max
}

/// 20,000 connections against `maxclients 10000`, from two processes at once: 10,000 are
/// admitted (the good client holds one), the rest get upstream's error and are closed;
/// the good client stays under 50 ms and the server's RSS bounded. With a hard descriptor
/// limit too low for that, the test says so loudly and runs the largest count it can.
#[test]
fn maxclients_20000_connections() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let _g = serial();
    let hard = raise_nofile();
    let maxclients: u64 = 10_000.min(hard.saturating_sub(100));
    if maxclients < 10_000 {
        eprintln!(
            "\n*** WARNING: ulimit -Hn is {hard}: too low for 20,000 connections against \
             maxclients 10000. SCALED DOWN to maxclients {maxclients} with {} connections. ***\n",
            2 * maxclients
        );
    }
    assert!(
        maxclients >= 100,
        "ulimit -Hn {hard}: cannot test maxclients at all"
    );
    let per_child = maxclients;
    let mc = maxclients.to_string();
    let s = start(&["--maxclients", &mc]);
    let mut good = s.conn();
    let pid = server_pid(&mut good);
    assert_eq!(
        escape(&good.call(&["CONFIG", "GET", "maxclients"])),
        escape(format!("*2\r\n$10\r\nmaxclients\r\n${}\r\n{}\r\n", mc.len(), mc).as_bytes())
    );
    let before = rss(pid);
    let w = Watcher::start(good, pid);

    let t = Instant::now();
    // Fresh loopback source addresses each run: the ports of a previous run's admitted
    // connections sit in TIME_WAIT for a minute and would slow the binds down.
    let r = (std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let srcs: Vec<String> = (0..2u64)
        .map(|i| {
            format!(
                "127.{}.{}.{}",
                1 + (r >> 8) % 250,
                (r >> 20) % 256,
                1 + (r as u8 as u64 + i) % 250
            )
        })
        .collect();
    let mut children: Vec<_> = srcs
        .iter()
        .map(|src| {
            Command::new("python3")
                .args([
                    "-c",
                    HOLDER_PY,
                    &s.port.to_string(),
                    &per_child.to_string(),
                    src.as_str(),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3")
        })
        .collect();
    let mut outs: Vec<_> = children
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().expect("stdout")))
        .collect();
    for o in outs.iter_mut() {
        let mut line = String::new();
        o.read_line(&mut line).expect("holder output");
        assert_eq!(line.trim(), "connected", "holder failed");
    }
    let connect_time = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let (mut admitted, mut refused) = (0u64, 0u64);
    for (c, o) in children.iter_mut().zip(outs.iter_mut()) {
        writeln!(c.stdin.as_mut().expect("stdin")).expect("to holder");
        let mut line = String::new();
        o.read_line(&mut line).expect("holder counts");
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(f.len() >= 3, "holder said {line}");
        assert_eq!(f[2], "0", "unexpected replies: {line}");
        admitted += f[0].parse::<u64>().expect("count");
        refused += f[1].parse::<u64>().expect("count");
    }
    let mut w = w.finish();
    eprintln!(
        "maxclients {}: {} connections in {:?}: admitted {}, refused {}",
        maxclients,
        2 * per_child,
        connect_time,
        admitted,
        refused
    );
    check_watch("20000 connections", &w, before);
    assert_eq!(admitted, maxclients - 1, "the good client holds one slot");
    assert_eq!(refused, 2 * per_child - (maxclients - 1));
    assert_eq!(connected_clients(&mut w.conn) as u64, maxclients);
    assert_eq!(
        stat(&mut w.conn, "stats", "rejected_connections") as u64,
        refused
    );
    // The holders leave: every slot comes back.
    for c in children.iter_mut() {
        drop(c.stdin.take());
    }
    for mut c in children {
        let _ = c.wait();
    }
    assert!(
        wait_for(Duration::from_secs(10), || connected_clients(&mut w.conn)
            == 1),
        "closed clients still counted"
    );
    eprintln!(
        "20000 connections: RSS after they left {} KB",
        rss(pid) / 1024
    );
    assert_eq!(escape(&s.conn().call(&["PING"])), "+PONG\\r\\n");
}

/// CONFIG SET maxclients above what the open-files limit allows raises the limit (as
/// upstream's updateMaxclients), and the extra clients are admitted. The server's soft
/// limit is first lowered to 150 from outside (prlimit), below the new maxclients.
#[test]
fn maxclients_raised_at_run_time() {
    let _g = serial();
    let s = start(&["--maxclients", "100"]);
    let mut good = s.conn();
    let pid = server_pid(&mut good);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit with valid pointers on a process of ours.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut lim,
        )
    };
    assert_eq!(rc, 0, "prlimit get");
    if lim.rlim_max < 400 {
        eprintln!("*** ulimit -Hn {} too low for this test ***", lim.rlim_max);
        return;
    }
    let lowered = libc::rlimit {
        rlim_cur: 150,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &lowered,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit set");
    assert_eq!(
        escape(&good.call(&["CONFIG", "SET", "maxclients", "300"])),
        "+OK\\r\\n"
    );
    let mut conns = Vec::new();
    for _ in 0..250 {
        let mut c = s.conn();
        assert_eq!(escape(&c.call(&["PING"])), "+PONG\\r\\n");
        conns.push(c);
    }
    assert_eq!(connected_clients(&mut good), 251);
    // Lowering it again does not touch the limit: new clients past it are refused.
    assert_eq!(
        escape(&good.call(&["CONFIG", "SET", "maxclients", "251"])),
        "+OK\\r\\n"
    );
    let mut extra = s.conn();
    extra.send_raw(b"PING\r\n").expect("send");
    let (got, _) = extra.read_until_close(Duration::from_secs(3));
    assert_eq!(escape(&got), "-ERR max number of clients reached\\r\\n");
}
