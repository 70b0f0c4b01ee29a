//! Streams with several connections: XREAD BLOCK served in order, `$` resolved when the
//! client blocks, timeouts, MULTI, and the shape of auto-generated (`*`) IDs. Every
//! scenario runs on valkey-rs and on the reference when installed, with the same bytes.

mod common;

use std::time::{Duration, Instant};

use common::{assert_silent, expect, servers, wait_blocked, Server};

const NULL_ARRAY: &[u8] = b"*-1\r\n";

fn entry_reply(key: &str, id: &str, f: &str, v: &str) -> Vec<u8> {
    format!(
        "*1\r\n*2\r\n${}\r\n{}\r\n*1\r\n*2\r\n${}\r\n{}\r\n*2\r\n${}\r\n{}\r\n${}\r\n{}\r\n",
        key.len(),
        key,
        id.len(),
        id,
        f.len(),
        f,
        v.len(),
        v
    )
    .into_bytes()
}

#[test]
fn xread_block_serves_every_waiter_with_dollar_resolved_at_block_time() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        expect(
            &s,
            &admin.call(&["XADD", "s", "1-1", "a", "1"]),
            b"$3\r\n1-1\r\n",
        );
        let mut c1 = s.conn();
        let mut c2 = s.conn();
        c1.send(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"])
            .unwrap();
        wait_blocked(&s, &mut admin, 1);
        c2.send(&["XREAD", "BLOCK", "0", "STREAMS", "other", "s", "$", "$"])
            .unwrap();
        wait_blocked(&s, &mut admin, 2);
        assert_silent(&s, &mut c1);
        expect(
            &s,
            &admin.call(&["XADD", "s", "2-1", "b", "2"]),
            b"$3\r\n2-1\r\n",
        );
        // Both readers get the new entry only (not 1-1).
        expect(
            &s,
            &c1.read_reply().unwrap(),
            &entry_reply("s", "2-1", "b", "2"),
        );
        expect(
            &s,
            &c2.read_reply().unwrap(),
            &entry_reply("s", "2-1", "b", "2"),
        );
        wait_blocked(&s, &mut admin, 0);
        // An explicit ID below the top is served at once.
        expect(
            &s,
            &c1.call(&["XREAD", "BLOCK", "0", "COUNT", "1", "STREAMS", "s", "1-1"]),
            &entry_reply("s", "2-1", "b", "2"),
        );
    }
}

#[test]
fn xread_block_on_a_missing_key_wakes_on_creation_and_times_out() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut c1 = s.conn();
        c1.send(&["XREAD", "BLOCK", "0", "STREAMS", "new", "$"])
            .unwrap();
        wait_blocked(&s, &mut admin, 1);
        expect(
            &s,
            &admin.call(&["XADD", "new", "5-5", "f", "v"]),
            b"$3\r\n5-5\r\n",
        );
        expect(
            &s,
            &c1.read_reply().unwrap(),
            &entry_reply("new", "5-5", "f", "v"),
        );
        wait_blocked(&s, &mut admin, 0);

        // A timeout replies with a null array.
        let t0 = Instant::now();
        expect(
            &s,
            &c1.call(&["XREAD", "BLOCK", "100", "STREAMS", "new", "$"]),
            NULL_ARRAY,
        );
        assert!(
            t0.elapsed() >= Duration::from_millis(90),
            "{}",
            s.kind.name()
        );

        // Writes that add nothing newer keep the client blocked.
        c1.send(&["XREAD", "BLOCK", "0", "STREAMS", "new", "9-0"])
            .unwrap();
        wait_blocked(&s, &mut admin, 1);
        expect(
            &s,
            &admin.call(&["XADD", "new", "6-0", "f", "v"]),
            b"$3\r\n6-0\r\n",
        );
        assert_silent(&s, &mut c1);
        expect(
            &s,
            &admin.call(&["XADD", "new", "9-1", "f", "w"]),
            b"$3\r\n9-1\r\n",
        );
        expect(
            &s,
            &c1.read_reply().unwrap(),
            &entry_reply("new", "9-1", "f", "w"),
        );

        // Inside MULTI, BLOCK behaves as a timeout.
        expect(&s, &admin.call(&["MULTI"]), b"+OK\r\n");
        expect(
            &s,
            &admin.call(&["XREAD", "BLOCK", "0", "STREAMS", "new", "$"]),
            b"+QUEUED\r\n",
        );
        expect(&s, &admin.call(&["EXEC"]), b"*1\r\n*-1\r\n");
    }
}

#[test]
fn xadd_auto_ids_have_the_right_shape() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let r = c.call(&["XADD", "a", "*", "f", "v"]);
        let text = String::from_utf8_lossy(&r).into_owned();
        let id = text
            .trim_end()
            .rsplit('\n')
            .next()
            .unwrap_or("")
            .to_string();
        let (ms, seq) = id.split_once('-').expect("ms-seq");
        let ms: u64 = ms.parse().unwrap();
        assert_eq!(seq, "0", "{}", s.kind.name());
        let r2 = c.call(&["XADD", "a", &format!("{ms}-*"), "f", "v"]);
        expect(
            &s,
            &r2,
            format!("${}\r\n{}-1\r\n", ms.to_string().len() + 2, ms).as_bytes(),
        );
        // `*` after a future ID increments its sequence.
        let fut = ms + 10_000_000;
        c.call(&["XADD", "a", &format!("{fut}-5"), "f", "v"]);
        let r3 = c.call(&["XADD", "a", "*", "f", "v"]);
        let want = format!("{fut}-6");
        expect(
            &s,
            &r3,
            format!("${}\r\n{}\r\n", want.len(), want).as_bytes(),
        );
        expect(&s, &c.call(&["XLEN", "a"]), b":4\r\n");
        expect(&s, &c.call(&["TYPE", "a"]), b"+stream\r\n");
        expect(
            &s,
            &c.call(&["OBJECT", "ENCODING", "a"]),
            b"$6\r\nstream\r\n",
        );
    }
}

/// Runs `f` on every server and checks that all of them produced the same transcript.
fn same_everywhere(f: impl Fn(&Server) -> Vec<Vec<u8>>) {
    let mut first: Option<(String, Vec<Vec<u8>>)> = None;
    let all = servers(&[]);
    if common::reference_binary().is_some() && std::env::var("VALKEY_TEST_TARGET").is_err() {
        assert_eq!(all.len(), 2, "both servers must run to compare");
    }
    for s in all {
        let got = f(&s);
        match &first {
            None => first = Some((s.kind.name().to_string(), got)),
            Some((name, want)) => {
                for (i, (a, b)) in want.iter().zip(got.iter()).enumerate() {
                    assert_eq!(
                        String::from_utf8_lossy(a),
                        String::from_utf8_lossy(b),
                        "step {i}: {name} vs {}",
                        s.kind.name()
                    );
                }
                assert_eq!(want.len(), got.len());
            }
        }
    }
}

#[test]
fn xreadgroup_block_serves_consumers_in_order_and_fails_when_the_group_goes() {
    same_everywhere(|s| {
        let mut out = Vec::new();
        let mut admin = s.conn();
        out.push(admin.call(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]));
        let mut c1 = s.conn();
        let mut c2 = s.conn();
        c1.send(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ])
        .unwrap();
        wait_blocked(s, &mut admin, 1);
        c2.send(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "bob",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ])
        .unwrap();
        wait_blocked(s, &mut admin, 2);
        out.push(admin.call(&["XADD", "s", "1-1", "f", "v"]));
        // The first waiter takes the entry; the second stays blocked.
        out.push(c1.read_reply().unwrap());
        wait_blocked(s, &mut admin, 1);
        assert_silent(s, &mut c2);
        out.push(admin.call(&["XADD", "s", "1-2", "f", "w"]));
        out.push(c2.read_reply().unwrap());
        out.push(admin.call(&["XPENDING", "s", "g"]));
        // Destroying the group wakes a blocked reader with an error.
        c1.send(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ])
        .unwrap();
        wait_blocked(s, &mut admin, 1);
        out.push(admin.call(&["XGROUP", "DESTROY", "s", "g"]));
        out.push(c1.read_reply().unwrap());
        // Deleting the key does too.
        out.push(admin.call(&["XGROUP", "CREATE", "s", "g", "$"]));
        c1.send(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ])
        .unwrap();
        wait_blocked(s, &mut admin, 1);
        out.push(admin.call(&["DEL", "s"]));
        out.push(c1.read_reply().unwrap());
        // A timeout replies with a null array.
        out.push(admin.call(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]));
        out.push(c1.call(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "BLOCK",
            "50",
            "STREAMS",
            "s",
            ">",
        ]));
        out
    });
}

/// Random XADD/XDEL/XTRIM/XADD-with-trim on small nodes, checked after every write with
/// XRANGE/XREVRANGE (random bounds, COUNT) and XINFO STREAM, byte for byte across servers.
#[test]
fn random_stream_operations_match_the_reference() {
    same_everywhere(|s| {
        let mut rng = common::Rng(0x5eed_5eed);
        let mut c = s.conn();
        let mut out = Vec::new();
        out.push(c.call(&["CONFIG", "SET", "stream-node-max-entries", "4"]));
        out.push(c.call(&["XGROUP", "CREATE", "s", "g", "0", "MKSTREAM"]));
        let mut ms: u64 = 1;
        for step in 0..3000 {
            if rng.chance(25) {
                let cons = ["alice", "bob"][rng.below(2) as usize];
                let n = (1 + rng.below(5)).to_string();
                let a = format!("{}-{}", rng.below(ms + 1), rng.below(3));
                let r = match rng.below(7) {
                    0 => c.call(&[
                        "XREADGROUP",
                        "GROUP",
                        "g",
                        cons,
                        "COUNT",
                        &n,
                        "STREAMS",
                        "s",
                        ">",
                    ]),
                    1 => c.call(&["XACK", "s", "g", &a]),
                    2 => c.call(&[
                        "XAUTOCLAIM",
                        "s",
                        "g",
                        cons,
                        "0",
                        "0",
                        "COUNT",
                        &n,
                        "JUSTID",
                    ]),
                    3 => c.call(&["XCLAIM", "s", "g", cons, "0", &a, "JUSTID"]),
                    4 => c.call(&["XPENDING", "s", "g"]),
                    5 => c.call(&["XGROUP", "SETID", "s", "g", &a]),
                    _ => c.call(&["XINFO", "GROUPS", "s"]),
                };
                out.push(r);
            }
            let op = rng.below(100);
            if op < 60 {
                ms += rng.below(3);
                let seq = rng.below(3);
                let id = format!("{ms}-{seq}");
                let nf = 1 + rng.below(3);
                let mut argv = vec!["XADD".to_string(), "s".to_string()];
                if rng.chance(10) {
                    argv.push("MAXLEN".into());
                    argv.push(if rng.chance(50) { "~" } else { "=" }.into());
                    argv.push(rng.below(30).to_string());
                }
                argv.push(id);
                for f in 0..nf {
                    let field = if rng.chance(70) {
                        format!("f{f}")
                    } else {
                        format!("g{f}")
                    };
                    argv.push(field);
                    argv.push(rng.below(1000).to_string());
                }
                out.push(c.call(&argv));
            } else if op < 80 {
                let a = rng.below(ms + 1);
                let id = format!("{a}-{}", rng.below(3));
                out.push(c.call(&["XDEL", "s", &id]));
            } else if op < 85 {
                let n = rng.below(40).to_string();
                let approx = if rng.chance(50) { "~" } else { "=" };
                out.push(c.call(&["XTRIM", "s", "MAXLEN", approx, &n]));
            } else if op < 90 {
                let id = format!("{}-0", rng.below(ms + 1));
                let approx = if rng.chance(50) { "~" } else { "=" };
                out.push(c.call(&["XTRIM", "s", "MINID", approx, &id]));
            } else {
                out.push(c.call(&["XINFO", "STREAM", "s"]));
            }
            let a = rng.below(ms + 2);
            let b = a + rng.below(ms + 2);
            let count = (1 + rng.below(20)).to_string();
            let (a, b) = (a.to_string(), b.to_string());
            out.push(c.call(&["XRANGE", "s", &a, &b, "COUNT", &count]));
            out.push(c.call(&["XREVRANGE", "s", &b, &a]));
            if step % 50 == 0 {
                out.push(c.call(&["XRANGE", "s", "-", "+"]));
                out.push(c.call(&["XLEN", "s"]));
            }
        }
        out.push(c.call(&["CONFIG", "SET", "stream-node-max-entries", "100"]));
        out
    });
}
