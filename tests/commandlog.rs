//! COMMANDLOG, SLOWLOG and LATENCY through the real binary, on ours and on the reference
//! when installed: entries of the slow, large-request and large-reply logs (value,
//! arguments, client address and name), argument truncation, log length trimming,
//! commands that skip the log, and the latency monitor's `command` event.

mod common;

use common::{expect, servers, Conn, Server};

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

/// Upstream's reply for one command's histogram, RESP2 or RESP3.
fn histogram_reply(resp3: bool, name: &str, calls: i64, buckets: &[(i64, i64)]) -> Vec<u8> {
    let map = |n: usize| {
        if resp3 {
            format!("%{}\r\n", n)
        } else {
            format!("*{}\r\n", n * 2)
        }
    };
    let mut s = map(1);
    s += &format!("${}\r\n{}\r\n", name.len(), name);
    s += &map(2);
    s += &format!("$5\r\ncalls\r\n:{}\r\n$14\r\nhistogram_usec\r\n", calls);
    s += &map(buckets.len());
    for (b, n) in buckets {
        s += &format!(":{}\r\n:{}\r\n", b, n);
    }
    s.into_bytes()
}

/// The names in a LATENCY HISTOGRAM reply (RESP2).
fn histogram_names(r: &R) -> Vec<Vec<u8>> {
    r.arr()
        .iter()
        .step_by(2)
        .map(|n| n.bytes().to_vec())
        .collect()
}

#[test]
fn latency_histogram_per_command() {
    each(|s, c| {
        ok(c, &["CONFIG", "RESETSTAT"]);
        // 45 ms lands in the bucket reported as 67633 us (2^26 ns, upper end of its
        // slot) with a wide margin either side (33816..67633 us).
        ok(c, &["DEBUG", "SLEEP", "0.045"]);
        ok(c, &["DEBUG", "SLEEP", "0.045"]);
        let want = histogram_reply(false, "debug", 2, &[(67633, 2)]);
        expect(s, &c.call(&["LATENCY", "HISTOGRAM", "debug"]), &want);
        // Unknown names are skipped, case does not matter.
        expect(
            s,
            &c.call(&["LATENCY", "HISTOGRAM", "nosuch", "DEBUG"]),
            &want,
        );
        expect(s, &c.call(&["LATENCY", "HISTOGRAM", "nosuch"]), b"*0\r\n");
        // A command without calls has no histogram.
        expect(s, &c.call(&["LATENCY", "HISTOGRAM", "lpush"]), b"*0\r\n");
        // Subcommands by full name, and a container stands for its subcommands.
        ok(c, &["CONFIG", "GET", "maxmemory"]);
        let r = call(c, &[b"LATENCY", b"HISTOGRAM", b"config|get"]);
        assert_eq!(histogram_names(&r), vec![b"config|get".to_vec()]);
        let mut names = histogram_names(&call(c, &[b"LATENCY", b"HISTOGRAM", b"config"]));
        names.sort();
        assert_eq!(
            names,
            vec![b"config|get".to_vec(), b"config|resetstat".to_vec()],
            "{}",
            s.kind.name()
        );
        // All commands with data.
        let names = histogram_names(&call(c, &[b"LATENCY", b"HISTOGRAM"]));
        for n in [
            "debug",
            "config|get",
            "config|resetstat",
            "latency|histogram",
        ] {
            assert!(names.contains(&n.as_bytes().to_vec()), "{}: {:?}", n, names);
        }
        // RESP3 maps.
        c.call(&["HELLO", "3"]);
        let want3 = histogram_reply(true, "debug", 2, &[(67633, 2)]);
        expect(s, &c.call(&["LATENCY", "HISTOGRAM", "debug"]), &want3);
        c.call(&["HELLO", "2"]);
        // latency-tracking no: nothing more is recorded, INFO shows an empty section.
        ok(c, &["CONFIG", "SET", "latency-tracking", "no"]);
        ok(c, &["DEBUG", "SLEEP", "0"]);
        expect(s, &c.call(&["LATENCY", "HISTOGRAM", "debug"]), &want);
        let info = call(c, &[b"INFO", b"latencystats"]);
        assert_eq!(info.bytes(), b"# Latencystats\r\n", "{}", s.kind.name());
    });
}

#[test]
fn info_latencystats_percentiles() {
    each(|s, c| {
        ok(c, &["CONFIG", "RESETSTAT"]);
        ok(c, &["DEBUG", "SLEEP", "0.045"]);
        let info = call(c, &[b"INFO", b"latencystats"]);
        let text = String::from_utf8(info.bytes().to_vec()).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("latency_percentiles_usec_debug:"))
            .unwrap_or_else(|| panic!("{}: {}", s.kind.name(), text));
        let fields: Vec<&str> = line.split(':').nth(1).unwrap().split(',').collect();
        let keys: Vec<&str> = fields
            .iter()
            .map(|f| f.split('=').next().unwrap())
            .collect();
        assert_eq!(keys, vec!["p50", "p99", "p99.9"]);
        for f in &fields {
            let v = f.split('=').nth(1).unwrap();
            assert_eq!(v.split('.').nth(1).map(str::len), Some(3), "{}", line);
            let v: f64 = v.parse().unwrap();
            assert!((40_000.0..70_000.0).contains(&v), "{}", line);
        }
        // Subcommands keep their full name.
        assert!(text.contains("latency_percentiles_usec_config|resetstat:p50="));
        ok(
            c,
            &[
                "CONFIG",
                "SET",
                "latency-tracking-info-percentiles",
                "0 12.5 100",
            ],
        );
        let r = call(
            c,
            &[b"CONFIG", b"GET", b"latency-tracking-info-percentiles"],
        );
        assert_eq!(r.arr()[1].bytes(), b"0 12.5 100");
        let info = call(c, &[b"INFO", b"latencystats"]);
        let text = String::from_utf8(info.bytes().to_vec()).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("latency_percentiles_usec_debug:"))
            .unwrap();
        let keys: Vec<&str> = line
            .split(':')
            .nth(1)
            .unwrap()
            .split(',')
            .map(|f| f.split('=').next().unwrap())
            .collect();
        assert_eq!(keys, vec!["p0", "p12.5", "p100"], "{}", s.kind.name());
        ok(
            c,
            &["CONFIG", "SET", "latency-tracking-info-percentiles", ""],
        );
        let info = call(c, &[b"INFO", b"latencystats"]);
        let text = String::from_utf8(info.bytes().to_vec()).unwrap();
        assert!(
            text.contains("latency_percentiles_usec_debug:\r\n"),
            "{}",
            text
        );
    });
}

#[test]
fn latency_graph_draws_a_sparkline() {
    each(|s, c| {
        ok(c, &["CONFIG", "SET", "latency-monitor-threshold", "10"]);
        ok(c, &["DEBUG", "SLEEP", "0.02"]);
        let g = call(c, &[b"LATENCY", b"GRAPH", b"command"]);
        let text = String::from_utf8(g.bytes().to_vec()).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        let high = call(c, &[b"LATENCY", b"LATEST"]).arr()[0].arr()[2].int();
        assert_eq!(
            lines[0],
            format!(
                "command - high {h} ms, low {h} ms (all time high {h} ms)",
                h = high
            ),
            "{}",
            s.kind.name()
        );
        assert_eq!(lines[1], "-".repeat(80));
        // One sample: the lowest level, a blank row, then its age written downwards.
        assert_eq!(&lines[2..7], &[" ", " ", " ", "_", " "], "{:?}", lines);
        assert!(["0", "1"].contains(&lines[7]), "{:?}", lines);
        assert_eq!(&lines[8..], &["s", ""], "{:?}", lines);
        let e = call(c, &[b"LATENCY", b"GRAPH", b"nosuch"]);
        assert_eq!(
            e,
            R::Err(b"ERR No samples available for event 'nosuch'".to_vec())
        );
    });
}

/// A blocking command that times out is accounted for when it ends, as upstream's
/// updateStatsOnUnblock: command stats, latency histogram and the slow log.
#[test]
fn blocked_command_is_logged_when_it_times_out() {
    each(|s, c| {
        ok(c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
        ok(c, &["SLOWLOG", "RESET"]);
        assert_eq!(call(c, &[b"BLPOP", b"nokey", b"0.1"]), R::Nil);
        let e = get(c, "slow");
        let entry = e
            .iter()
            .find(|e| argv_of(e).first().map(|a| a.as_slice()) == Some(b"BLPOP"))
            .unwrap_or_else(|| panic!("{}: no BLPOP entry in {:?}", s.kind.name(), e));
        assert_eq!(
            argv_of(entry),
            vec![b"BLPOP".to_vec(), b"nokey".to_vec(), b"0.1".to_vec()]
        );
        let r = call(c, &[b"LATENCY", b"HISTOGRAM", b"blpop"]);
        assert_eq!(histogram_names(&r), vec![b"blpop".to_vec()]);
        assert_eq!(r.arr()[1].arr()[1].int(), 1, "{}", s.kind.name());
        // Unblocked by CLIENT UNBLOCK: logged too.
        ok(c, &["SLOWLOG", "RESET"]);
        let id = call(c, &[b"CLIENT", b"ID"]).int().to_string();
        c.send(&["BLPOP", "nokey", "0"]).unwrap();
        let mut admin = s.conn();
        common::wait_blocked(s, &mut admin, 1);
        assert_eq!(
            call(&mut admin, &[b"CLIENT", b"UNBLOCK", id.as_bytes()]),
            R::Int(1)
        );
        let raw = c.read_reply().unwrap();
        assert_eq!(raw, b"*-1\r\n");
        let names: Vec<Vec<u8>> = get(&mut admin, "slow")
            .iter()
            .map(|e| argv_of(e)[0].clone())
            .collect();
        assert!(
            names.contains(&b"BLPOP".to_vec()),
            "{}: {:?}",
            s.kind.name(),
            names
        );
    });
}
