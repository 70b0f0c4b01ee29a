//! COMMANDLOG, SLOWLOG and LATENCY through the real binary, on ours and on the reference
//! when installed: entries of the slow, large-request and large-reply logs (value,
//! arguments, client address and name), argument truncation, log length trimming,
//! commands that skip the log, and the latency monitor's `command` event.

mod common;

use common::{servers, Conn, Server};

/// A parsed RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
enum R {
    Str(Vec<u8>),
    Int(i64),
    Err(Vec<u8>),
    Nil,
    Arr(Vec<R>),
}

impl R {
    fn arr(&self) -> &[R] {
        match self {
            R::Arr(v) => v,
            other => panic!("not an array: {:?}", other),
        }
    }
    fn int(&self) -> i64 {
        match self {
            R::Int(n) => *n,
            other => panic!("not an integer: {:?}", other),
        }
    }
    fn bytes(&self) -> &[u8] {
        match self {
            R::Str(b) => b,
            other => panic!("not a string: {:?}", other),
        }
    }
}

fn parse(b: &[u8], pos: &mut usize) -> R {
    let end = *pos
        + b[*pos..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("crlf");
    let line = &b[*pos + 1..end];
    let kind = b[*pos];
    *pos = end + 2;
    let num = || std::str::from_utf8(line).unwrap().parse::<i64>().unwrap();
    match kind {
        b'+' => R::Str(line.to_vec()),
        b'-' => R::Err(line.to_vec()),
        b':' => R::Int(num()),
        b'$' => {
            let n = num();
            if n < 0 {
                return R::Nil;
            }
            let s = b[*pos..*pos + n as usize].to_vec();
            *pos += n as usize + 2;
            R::Str(s)
        }
        b'*' => {
            let n = num();
            if n < 0 {
                return R::Nil;
            }
            R::Arr((0..n).map(|_| parse(b, pos)).collect())
        }
        other => panic!("unexpected reply type {}", other as char),
    }
}

fn call(c: &mut Conn, argv: &[&[u8]]) -> R {
    let raw = c.call(argv);
    let mut pos = 0;
    parse(&raw, &mut pos)
}

fn ok(c: &mut Conn, argv: &[&str]) {
    let argv: Vec<&[u8]> = argv.iter().map(|s| s.as_bytes()).collect();
    let r = call(c, &argv);
    assert!(!matches!(r, R::Err(_)), "{:?} -> {:?}", argv, r);
}

fn get(c: &mut Conn, kind: &str) -> Vec<R> {
    call(c, &[b"COMMANDLOG", b"GET", b"-1", kind.as_bytes()])
        .arr()
        .to_vec()
}

/// The entry's argv as byte strings.
fn argv_of(e: &R) -> Vec<Vec<u8>> {
    e.arr()[3]
        .arr()
        .iter()
        .map(|a| a.bytes().to_vec())
        .collect()
}

fn each(f: impl Fn(&Server, &mut Conn)) {
    for s in servers(&["--enable-debug-command", "yes"]) {
        let mut c = s.conn();
        f(&s, &mut c);
    }
}

#[test]
fn slow_entry_has_duration_args_address_and_name() {
    each(|s, c| {
        ok(c, &["CONFIG", "SET", "slowlog-log-slower-than", "10000"]);
        ok(c, &["CLIENT", "SETNAME", "sleeper"]);
        ok(c, &["SLOWLOG", "RESET"]);
        ok(c, &["DEBUG", "SLEEP", "0.05"]);
        let e = get(c, "slow");
        assert_eq!(e.len(), 1, "{}", s.kind.name());
        let f = e[0].arr();
        assert_eq!(f.len(), 6);
        assert!(f[2].int() >= 50_000, "duration {}", f[2].int());
        assert!(f[1].int() > 1_600_000_000);
        assert_eq!(
            argv_of(&e[0]),
            vec![b"DEBUG".to_vec(), b"SLEEP".to_vec(), b"0.05".to_vec()]
        );
        let addr = String::from_utf8(f[4].bytes().to_vec()).unwrap();
        let port = c.stream().local_addr().unwrap().port();
        assert_eq!(addr, format!("127.0.0.1:{}", port));
        assert_eq!(f[5].bytes(), b"sleeper");
        // SLOWLOG is the same log.
        let sl = call(c, &[b"SLOWLOG", b"GET"]);
        assert_eq!(sl.arr().len(), 1);
        assert_eq!(sl.arr()[0], e[0]);
        assert_eq!(call(c, &[b"SLOWLOG", b"LEN"]).int(), 1);
        assert_eq!(call(c, &[b"COMMANDLOG", b"LEN", b"slow"]).int(), 1);
        ok(c, &["COMMANDLOG", "RESET", "slow"]);
        assert_eq!(call(c, &[b"SLOWLOG", b"LEN"]).int(), 0);
    });
}

#[test]
fn large_request_and_large_reply() {
    each(|s, c| {
        ok(
            c,
            &["CONFIG", "SET", "commandlog-request-larger-than", "50000"],
        );
        ok(
            c,
            &["CONFIG", "SET", "commandlog-reply-larger-than", "50000"],
        );
        let big = vec![b'v'; 100 * 1024];
        assert_eq!(call(c, &[b"SET", b"k", &big]), R::Str(b"OK".to_vec()));
        let e = get(c, "large-request");
        assert_eq!(e.len(), 1, "{}", s.kind.name());
        assert!(e[0].arr()[2].int() >= 100 * 1024);
        let a = argv_of(&e[0]);
        assert_eq!(a[0], b"SET");
        assert_eq!(a[1], b"k");
        let mut want = vec![b'v'; 128];
        want.extend_from_slice(format!("... ({} more bytes)", 100 * 1024 - 128).as_bytes());
        assert_eq!(a[2], want);
        // A small reply is not logged, a big one is.
        assert_eq!(get(c, "large-reply").len(), 0);
        let r = call(c, &[b"GET", b"k"]);
        assert_eq!(r.bytes().len(), 100 * 1024);
        let e = get(c, "large-reply");
        assert_eq!(e.len(), 1);
        assert!(e[0].arr()[2].int() >= 100 * 1024);
        assert_eq!(argv_of(&e[0]), vec![b"GET".to_vec(), b"k".to_vec()]);
        // Off with -1.
        ok(c, &["CONFIG", "SET", "commandlog-reply-larger-than", "-1"]);
        call(c, &[b"GET", b"k"]);
        assert_eq!(get(c, "large-reply").len(), 1);
    });
}

#[test]
fn argv_truncation_and_max_len() {
    each(|s, c| {
        ok(c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
        ok(c, &["CONFIG", "SET", "slowlog-max-len", "3"]);
        let mut argv: Vec<Vec<u8>> = vec![b"RPUSH".to_vec(), b"l".to_vec()];
        for i in 0..40 {
            argv.push(format!("e{}", i).into_bytes());
        }
        let refs: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
        assert_eq!(call(c, &refs), R::Int(40));
        let e = call(c, &[b"SLOWLOG", b"GET", b"1"]);
        let a = argv_of(&e.arr()[0]);
        assert_eq!(a.len(), 32, "{}", s.kind.name());
        assert_eq!(a[30], b"e28");
        assert_eq!(
            a[31],
            format!("... ({} more arguments)", 42 - 31).into_bytes()
        );
        // Exactly 32 arguments are kept as they are.
        let argv32: Vec<Vec<u8>> = std::iter::once(b"RPUSH".to_vec())
            .chain(std::iter::once(b"l".to_vec()))
            .chain((0..30).map(|i| format!("f{}", i).into_bytes()))
            .collect();
        let refs: Vec<&[u8]> = argv32.iter().map(|a| a.as_slice()).collect();
        call(c, &refs);
        let e = call(c, &[b"SLOWLOG", b"GET", b"1"]);
        assert_eq!(argv_of(&e.arr()[0]), argv32);
        // The log keeps slowlog-max-len entries, newest first with decreasing ids.
        for _ in 0..10 {
            ok(c, &["PING"]);
        }
        let all = call(c, &[b"SLOWLOG", b"GET", b"-1"]);
        assert_eq!(all.arr().len(), 3);
        let ids: Vec<i64> = all.arr().iter().map(|e| e.arr()[0].int()).collect();
        assert!(ids[0] > ids[1] && ids[1] > ids[2], "{:?}", ids);
        // EXEC is not logged (skip_commandlog), the commands it ran are.
        ok(c, &["CONFIG", "SET", "slowlog-max-len", "128"]);
        ok(c, &["SLOWLOG", "RESET"]);
        ok(c, &["MULTI"]);
        ok(c, &["SET", "a", "b"]);
        ok(c, &["EXEC"]);
        let names: Vec<Vec<u8>> = call(c, &[b"SLOWLOG", b"GET", b"-1"])
            .arr()
            .iter()
            .map(|e| argv_of(e)[0].to_ascii_lowercase())
            .collect();
        assert!(names.contains(&b"set".to_vec()), "{:?}", names);
        assert!(!names.contains(&b"exec".to_vec()), "{:?}", names);
    });
}

#[test]
fn latency_monitor_records_slow_commands() {
    each(|s, c| {
        // Off by default: nothing recorded.
        ok(c, &["DEBUG", "SLEEP", "0.02"]);
        assert_eq!(call(c, &[b"LATENCY", b"LATEST"]).arr().len(), 0);
        ok(c, &["CONFIG", "SET", "latency-monitor-threshold", "10"]);
        ok(c, &["DEBUG", "SLEEP", "0.05"]);
        let l = call(c, &[b"LATENCY", b"LATEST"]);
        assert_eq!(l.arr().len(), 1, "{}", s.kind.name());
        let f = l.arr()[0].arr();
        assert_eq!(f[0].bytes(), b"command");
        assert!(f[2].int() >= 50 && f[3].int() >= 50, "{:?}", f);
        let h = call(c, &[b"LATENCY", b"HISTORY", b"command"]);
        assert_eq!(h.arr().len(), 1);
        assert!(h.arr()[0].arr()[1].int() >= 50);
        assert_eq!(call(c, &[b"LATENCY", b"RESET", b"command"]).int(), 1);
        assert_eq!(call(c, &[b"LATENCY", b"LATEST"]).arr().len(), 0);
    });
}

/// With the AOF on, a write's arguments are copied for propagation before the handler
/// runs (SET moves its value into the keyspace): the slow log still shows them all.
#[test]
fn slow_entry_of_a_propagated_write_keeps_its_arguments() {
    for s in servers(&["--appendonly", "yes", "--slowlog-log-slower-than", "0"]) {
        let mut c = s.conn();
        ok(&mut c, &["SLOWLOG", "RESET"]);
        ok(&mut c, &["SET", "key", "the-value"]);
        let e = get(&mut c, "slow");
        let set = e
            .iter()
            .find(|e| argv_of(e).first().map(|a| a.as_slice()) == Some(b"SET"))
            .unwrap_or_else(|| panic!("{}: no SET entry in {:?}", s.kind.name(), e));
        assert_eq!(
            argv_of(set),
            vec![b"SET".to_vec(), b"key".to_vec(), b"the-value".to_vec()],
            "{}",
            s.kind.name()
        );
    }
}
