//! Byte-exact protocol tests on raw sockets: error texts, inline commands, pipelining,
//! big values, protocol errors (reply then close), and regressions for published CVEs.
//!
//! Most scenarios run against valkey-rs and, when it is installed, against the upstream
//! reference too: the expectations are upstream's bytes, so they are checked on both.
//! Scenarios where upstream behaves differently on purpose (valkey-rs never sizes a buffer
//! by an announced length) run on valkey-rs only.

mod common;

use std::time::{Duration, Instant};

use common::{encode_command, escape, expect, servers, used_memory, Conn, Server};

const MB: i64 = 1024 * 1024;
const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";

/// Sends raw bytes (write errors ignored: the server may close first) and expects exactly
/// `want`, then the connection closed.
#[track_caller]
fn expect_error_and_close(srv: &Server, req: &[u8], want: &[u8]) {
    let mut c = srv.conn();
    let _ = c.send_raw(req);
    let (got, closed) = c.read_until_close(Duration::from_secs(3));
    expect(srv, &got, want);
    assert!(
        closed,
        "{}: connection not closed after {}",
        srv.kind.name(),
        escape(want)
    );
    // The server survived (PONG, or NOAUTH with requirepass).
    let r = srv.conn().call(&["PING"]);
    assert!(
        r == b"+PONG\r\n" || r == NOAUTH,
        "{}: PING after the error: {}",
        srv.kind.name(),
        escape(&r)
    );
}

#[test]
fn unknown_command_and_arity_texts() {
    for s in servers(&[]) {
        let mut c = s.conn();
        expect(
            &s,
            &c.call(&["FOO", "a", "b c"]),
            b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b c' \r\n",
        );
        expect(
            &s,
            &c.call(&["foo"]),
            b"-ERR unknown command 'foo', with args beginning with: \r\n",
        );
        expect(
            &s,
            &c.call(&["GET"]),
            b"-ERR wrong number of arguments for 'get' command\r\n",
        );
        expect(
            &s,
            &c.call(&["set", "k"]),
            b"-ERR wrong number of arguments for 'set' command\r\n",
        );
        // The connection is still usable.
        expect(&s, &c.call(&["PING"]), b"+PONG\r\n");
    }
}

#[test]
fn unknown_command_long_arguments_like_reference() {
    let Some(bin) = common::require_reference() else {
        return;
    };
    let ours = Server::ours(&[]);
    let theirs = Server::reference(&bin, &[]);
    let long = "x".repeat(300);
    let nl = "a\r\nb";
    let cases: Vec<Vec<&str>> = vec![
        vec![&long],
        vec!["FOO", &long, "second"],
        vec![
            "FOO", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", &long,
        ],
        vec!["FOO", nl],
    ];
    for argv in cases {
        let a = ours.conn().call(&argv);
        let b = theirs.conn().call(&argv);
        assert_eq!(
            escape(&a),
            escape(&b),
            "reply to {}",
            common::show_argv(&argv)
        );
    }
}

#[test]
fn inline_commands() {
    for s in servers(&[]) {
        let mut c = s.conn();
        c.send_raw(b"PING\r\n").unwrap();
        expect(&s, &c.read_reply().unwrap(), b"+PONG\r\n");
        // Bare \n, quoting, escapes, blank lines in between.
        c.send_raw(b"\r\n\nSET k \"a b\\x41\\n\"\nGET 'k'\r\n")
            .unwrap();
        expect(&s, &c.read_reply().unwrap(), b"+OK\r\n");
        expect(&s, &c.read_reply().unwrap(), b"$5\r\na bA\n\r\n");
        c.send_raw(b"ECHO \"\"\r\n").unwrap();
        expect(&s, &c.read_reply().unwrap(), b"$0\r\n\r\n");
        // Valkey 9: quoted parts join the text around them into one argument.
        c.send_raw(b"ECHO a\"b c\"d\r\nECHO 'x'\"y\"z\r\n").unwrap();
        expect(&s, &c.read_reply().unwrap(), b"$5\r\nab cd\r\n");
        expect(&s, &c.read_reply().unwrap(), b"$3\r\nxyz\r\n");
        // Inline and multibulk mixed in one write.
        let mut req = b"PING x\r\n".to_vec();
        req.extend_from_slice(&encode_command(&["ECHO", "y"]));
        req.extend_from_slice(b"PING\n");
        c.send_raw(&req).unwrap();
        expect(&s, &c.read_reply().unwrap(), b"$1\r\nx\r\n");
        expect(&s, &c.read_reply().unwrap(), b"$1\r\ny\r\n");
        expect(&s, &c.read_reply().unwrap(), b"+PONG\r\n");
    }
}

#[test]
fn request_split_across_writes() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let req = encode_command(&["ECHO", "hello world"]);
        for b in req.chunks(1) {
            c.send_raw(b).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        expect(&s, &c.read_reply().unwrap(), b"$11\r\nhello world\r\n");
    }
}

#[test]
fn pipeline_1000_commands_in_one_write() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let mut req = Vec::new();
        for i in 0..500 {
            req.extend_from_slice(&encode_command(&[
                "SET",
                &format!("k{}", i),
                &format!("v{}", i),
            ]));
            req.extend_from_slice(&encode_command(&["GET", &format!("k{}", i)]));
        }
        c.send_raw(&req).unwrap();
        for i in 0..500 {
            expect(&s, &c.read_reply().unwrap(), b"+OK\r\n");
            let v = format!("v{}", i);
            let want = format!("${}\r\n{}\r\n", v.len(), v);
            expect(&s, &c.read_reply().unwrap(), want.as_bytes());
        }
        expect(&s, &c.call(&["DBSIZE"]), b":500\r\n");
    }
}

#[test]
fn one_megabyte_value() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let v: Vec<u8> = (0..MB as usize).map(|i| (i % 251) as u8).collect();
        expect(&s, &c.call(&[b"SET".as_slice(), b"big", &v]), b"+OK\r\n");
        let mut want = format!("${}\r\n", v.len()).into_bytes();
        want.extend_from_slice(&v);
        want.extend_from_slice(b"\r\n");
        let got = c.call(&["GET", "big"]);
        assert!(got == want, "{}: 1MB GET differs", s.kind.name());
    }
}

#[test]
fn protocol_errors_reply_then_close() {
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"*abc\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*3000000000\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\nx\r\n",
            b"-ERR Protocol error: expected '$', got 'x'\r\n",
        ),
        (
            b"*1\r\n$abc\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        // 2 GB is above proto-max-bulk-len (512MB).
        (
            b"*1\r\n$2147483647\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"\"abc\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"SET 'a\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"ECHO it's\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for s in servers(&[]) {
        for (req, want) in cases {
            expect_error_and_close(&s, req, want);
        }
        // An inline request longer than 64KB without a newline.
        let big = vec![b'x'; 70 * 1024];
        expect_error_and_close(&s, &big, b"-ERR Protocol error: too big inline request\r\n");
    }
}

#[test]
fn valid_commands_before_a_protocol_error_are_answered() {
    for s in servers(&[]) {
        let mut req = encode_command(&["SET", "a", "1"]);
        req.extend_from_slice(b"PING\r\n*1\r\nx\r\n");
        expect_error_and_close(
            &s,
            &req,
            b"+OK\r\n+PONG\r\n-ERR Protocol error: expected '$', got 'x'\r\n",
        );
    }
}

#[test]
fn quit_replies_ok_then_closes() {
    for s in servers(&[]) {
        let mut c = s.conn();
        c.send(&["QUIT"]).unwrap();
        let (got, closed) = c.read_until_close(Duration::from_secs(3));
        expect(&s, &got, b"+OK\r\n");
        assert!(closed, "{}: QUIT did not close", s.kind.name());
    }
}

#[test]
fn idle_timeout_closes_client() {
    for s in servers(&["--timeout", "1"]) {
        let mut c = s.conn();
        expect(&s, &c.call(&["PING"]), b"+PONG\r\n");
        let start = Instant::now();
        let (got, closed) = c.read_until_close(Duration::from_secs(5));
        assert!(
            got.is_empty(),
            "{}: unexpected {}",
            s.kind.name(),
            escape(&got)
        );
        assert!(closed, "{}: idle client not closed", s.kind.name());
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(3500),
            "{}: idle client closed after {:?}",
            s.kind.name(),
            took
        );
    }
}

/// An authenticated connection to a server started with `--requirepass pw`.
fn authed(s: &Server) -> Conn {
    let mut c = s.conn();
    expect(s, &c.call(&["AUTH", "pw"]), b"+OK\r\n");
    c
}

/// CVE-2021-32675: before AUTH, a client can not make the server allocate by announcing a
/// large multibulk count or bulk length.
#[test]
fn cve_2021_32675_unauthenticated_limits() {
    for s in servers(&["--requirepass", "pw"]) {
        let mut admin = authed(&s);
        let before = used_memory(&mut admin);
        expect_error_and_close(
            &s,
            b"*1000000\r\n",
            b"-ERR Protocol error: unauthenticated multibulk length\r\n",
        );
        expect_error_and_close(
            &s,
            b"*1\r\n$100000000\r\n",
            b"-ERR Protocol error: unauthenticated bulk length\r\n",
        );
        // Commands from an unauthenticated client are refused, even unknown ones.
        let mut c = s.conn();
        expect(&s, &c.call(&["GET", "k"]), NOAUTH);
        expect(&s, &c.call(&["NOSUCHCOMMAND"]), NOAUTH);
        let after = used_memory(&mut admin);
        assert!(
            after - before < 4 * MB,
            "{}: used_memory grew from {} to {}",
            s.kind.name(),
            before,
            after
        );
    }
}

/// An authenticated client announcing a huge bulk and sending only a few bytes must not
/// make valkey-rs reserve the announced size (upstream reserves it; valkey-rs grows buffers
/// only with bytes received).
#[test]
fn announced_bulk_is_not_preallocated() {
    let s = Server::ours(&[]);
    let mut admin = s.conn();
    let before = used_memory(&mut admin);
    let mut c = s.conn();
    c.send_raw(b"*1\r\n$500000000\r\nabcdef").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let during = used_memory(&mut admin);
    assert!(
        during - before < 16 * MB,
        "used_memory grew from {} to {} after announcing a 500MB bulk",
        before,
        during
    );
    // Still waiting for the bulk: nothing to read, connection open.
    let (got, closed) = c.read_until_close(Duration::from_millis(200));
    assert!(
        got.is_empty() && !closed,
        "got {} closed={}",
        escape(&got),
        closed
    );
}

/// CVE-2025-21605: an unauthenticated client that pipelines requests without reading the
/// (NOAUTH) replies must not grow the server's memory without bound.
#[test]
fn cve_2025_21605_unauthenticated_output_is_bounded() {
    for s in servers(&["--requirepass", "pw"]) {
        let mut admin = authed(&s);
        let before = used_memory(&mut admin);
        let c = s.conn();
        let mut stream = c.stream().try_clone().unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let chunk = b"PING\r\n".repeat(10_000);
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            for _ in 0..40 {
                // 400k requests, ~14MB of NOAUTH replies if all were kept.
                if stream.write_all(&chunk).is_err() {
                    return;
                }
            }
        });
        let _ = writer.join();
        std::thread::sleep(Duration::from_millis(300));
        let after = used_memory(&mut admin);
        assert!(
            after - before < 4 * MB,
            "{}: used_memory grew from {} to {} with an unauthenticated non-reading client",
            s.kind.name(),
            before,
            after
        );
        expect(&s, &admin.call(&["PING"]), b"+PONG\r\n");
        drop(c);
    }
}

/// CVE-2026-27623: empty requests before authentication must not crash the server.
#[test]
fn cve_2026_27623_empty_requests_before_auth() {
    for s in servers(&["--requirepass", "pw"]) {
        for req in [
            b"*0\r\n".as_slice(),
            b"*-1\r\n",
            b"\r\n",
            b"*1\r\n$0\r\n\r\n",
            b"*0\r\n*-1\r\n\r\n\n*1\r\n$0\r\n\r\n",
        ] {
            let mut c = s.conn();
            c.send_raw(req).unwrap();
            c.send_raw(b"PING\r\n").unwrap();
            let mut replies = Vec::new();
            // `*1 $0` is a command (an empty name): NOAUTH, then PING's NOAUTH.
            if req.ends_with(b"$0\r\n\r\n") {
                replies.extend_from_slice(&c.read_reply().unwrap());
            }
            replies.extend_from_slice(&c.read_reply().unwrap());
            let want = if req.ends_with(b"$0\r\n\r\n") {
                NOAUTH.repeat(2)
            } else {
                NOAUTH.to_vec()
            };
            expect(&s, &replies, &want);
            assert!(
                s.conn().cmd(&["PING"]).is_ok(),
                "{}: server died",
                s.kind.name()
            );
        }
        expect(&s, &authed(&s).call(&["PING"]), b"+PONG\r\n");
    }
    // Authenticated, the empty command name is an unknown command.
    for s in servers(&[]) {
        let mut c = s.conn();
        c.send_raw(b"*0\r\n*-1\r\n\r\n*1\r\n$0\r\n\r\nPING\r\n")
            .unwrap();
        expect(
            &s,
            &c.read_reply().unwrap(),
            b"-ERR unknown command '', with args beginning with: \r\n",
        );
        expect(&s, &c.read_reply().unwrap(), b"+PONG\r\n");
    }
}

/// CVE-2025-48367 (accept errors must not spin or kill the server): connections beyond
/// maxclients are refused with an error and the server stays responsive.
#[test]
fn cve_2025_48367_maxclients() {
    for s in servers(&["--maxclients", "10"]) {
        // Let the readiness probe's connection go away.
        std::thread::sleep(Duration::from_millis(200));
        let mut conns = Vec::new();
        let (mut ok, mut refused) = (0, 0);
        for _ in 0..25 {
            let Ok(mut c) = Conn::try_connect(s.port) else {
                refused += 1;
                continue;
            };
            match c.cmd(&["PING"]) {
                Ok(r) if r == b"+PONG\r\n" => {
                    ok += 1;
                    conns.push(c);
                }
                Ok(r) => {
                    expect(&s, &r, b"-ERR max number of clients reached\r\n");
                    refused += 1;
                    assert!(c.closed_within(Duration::from_secs(2)));
                }
                Err(_) => refused += 1,
            }
        }
        assert_eq!(
            (ok, refused),
            (10, 15),
            "{}: accepted/refused",
            s.kind.name()
        );
        drop(conns);
        let back = common::wait_for(Duration::from_secs(3), || {
            Conn::try_connect(s.port)
                .ok()
                .and_then(|mut c| c.cmd(&["PING"]).ok())
                .is_some_and(|r| r == b"+PONG\r\n")
        });
        assert!(back, "{}: not responsive after clients left", s.kind.name());
    }
}

const STRING_TOO_LONG: &[u8] = b"-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n";

/// CVE-2022-35977: SETRANGE and APPEND can not build strings past proto-max-bulk-len (nor
/// overflow the offset arithmetic).
#[test]
fn cve_2022_35977_setrange_offsets() {
    for s in servers(&[]) {
        let mut c = s.conn();
        expect(
            &s,
            &c.call(&["SETRANGE", "k", "4294967295", "x"]),
            STRING_TOO_LONG,
        );
        expect(
            &s,
            &c.call(&["SETRANGE", "k", "536870911", "xx"]),
            STRING_TOO_LONG,
        );
        expect(
            &s,
            &c.call(&["SETRANGE", "k", "9223372036854775807", "x"]),
            STRING_TOO_LONG,
        );
        expect(
            &s,
            &c.call(&["SETRANGE", "k", "-1", "x"]),
            b"-ERR offset is out of range\r\n",
        );
        expect(&s, &c.call(&["EXISTS", "k"]), b":0\r\n");
        // An empty value at a huge offset creates nothing.
        expect(&s, &c.call(&["SETRANGE", "k", "536870912", ""]), b":0\r\n");
        expect(&s, &c.call(&["EXISTS", "k"]), b":0\r\n");
    }
}

#[test]
fn cve_2022_35977_append_past_proto_max_bulk_len() {
    for t in common::targets() {
        let start = |extra: &[&str]| t.start(extra);
        let s = start(&[]);
        let mut c = s.conn();
        // Prefer CONFIG SET; fall back to the directive at startup.
        let r = c.call(&["CONFIG", "SET", "proto-max-bulk-len", "1048576"]);
        let (s, mut c) = if r == b"+OK\r\n" {
            (s, c)
        } else {
            let s2 = start(&["--proto-max-bulk-len", "1048576"]);
            let c2 = s2.conn();
            (s2, c2)
        };
        let v = vec![b'a'; MB as usize];
        expect(&s, &c.call(&[b"SET".as_slice(), b"k", &v]), b"+OK\r\n");
        expect(&s, &c.call(&["APPEND", "k", "x"]), STRING_TOO_LONG);
        expect(
            &s,
            &c.call(&["SETRANGE", "k", "1048576", "x"]),
            STRING_TOO_LONG,
        );
        expect(
            &s,
            &c.call(&["SETRANGE", "k", "1048575", "b"]),
            b":1048576\r\n",
        );
        expect(&s, &c.call(&["STRLEN", "k"]), b":1048576\r\n");
    }
}

/// CVE-2022-36021 / CVE-2024-31228: pathological glob patterns have bounded cost.
#[test]
fn cve_2022_36021_keys_pattern_cost_is_bounded() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let key = "a".repeat(20_000);
        expect(&s, &c.call(&["SET", &key, "v"]), b"+OK\r\n");
        let start = Instant::now();
        let r = c.call(&["KEYS", "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b"]);
        expect(&s, &r, b"*0\r\n");
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "{}: KEYS took {:?}",
            s.kind.name(),
            took
        );

        let pattern = "a*".repeat(512 * 1024);
        let start = Instant::now();
        let r = c.call(&["KEYS", &pattern]);
        let took = start.elapsed();
        assert!(
            r.starts_with(b"*"),
            "{}: {}",
            s.kind.name(),
            common::escape_short(&r, 200)
        );
        assert!(
            took < Duration::from_secs(2),
            "{}: 1MB pattern took {:?}",
            s.kind.name(),
            took
        );
        expect(&s, &c.call(&["PING"]), b"+PONG\r\n");
    }
}
