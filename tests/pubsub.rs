//! Pub/Sub with several real connections: SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE flows in
//! RESP2 and RESP3, subscriber-mode errors, keyspace notifications and a subscriber that
//! stops reading. Every scenario runs on valkey-rs and on the reference when installed;
//! the transcripts (raw bytes) must be equal.

mod common;

use std::time::Duration;

use common::{info_field, servers, step, used_memory, wait_for, Conn, Server, Transcript};

/// Runs `f` on every server; transcripts equal.
fn compare(f: impl Fn(&Server) -> Transcript) {
    common::compare_transcripts(&[], f)
}

/// Reads `n` replies/pushes from `c` into the transcript.
fn recv(t: &mut Transcript, c: &mut Conn, n: usize, label: &str) {
    for _ in 0..n {
        let r = c.read_reply().unwrap_or_else(|e| panic!("{label}: {e}"));
        t.push((label.to_string(), r));
    }
}

/// Sends a command whose reply is a series of pushes (SUBSCRIBE a b: one per channel).
fn multi(t: &mut Transcript, c: &mut Conn, argv: &[&str], n: usize) {
    c.send(argv).unwrap();
    recv(t, c, n, &argv.join(" "));
}

#[test]
fn subscribe_publish_unsubscribe_resp2() {
    compare(|s| {
        let mut t = Transcript::new();
        let mut sub = s.conn();
        let mut publ = s.conn();
        multi(&mut t, &mut sub, &["SUBSCRIBE", "a", "b", "a"], 3);
        step(&mut t, &mut sub, &["GET", "x"]);
        step(&mut t, &mut sub, &["CLIENT", "LIST"]);
        step(&mut t, &mut sub, &["PING"]);
        step(&mut t, &mut sub, &["PING", "hello"]);
        step(&mut t, &mut publ, &["PUBLISH", "a", "m1"]);
        recv(&mut t, &mut sub, 1, "msg");
        step(&mut t, &mut publ, &["PUBLISH", "c", "m2"]);
        step(&mut t, &mut publ, &["PUBSUB", "NUMSUB", "a", "b", "c"]);
        step(&mut t, &mut publ, &["PUBSUB", "CHANNELS", "a*"]);
        step(&mut t, &mut publ, &["PUBSUB", "NUMPAT"]);
        multi(&mut t, &mut sub, &["UNSUBSCRIBE", "a", "zz"], 2);
        multi(&mut t, &mut sub, &["UNSUBSCRIBE"], 1);
        multi(&mut t, &mut sub, &["UNSUBSCRIBE"], 1);
        step(&mut t, &mut sub, &["PING"]);
        step(&mut t, &mut publ, &["PUBSUB", "NUMSUB", "a", "b"]);
        let info = publ.call(&["INFO"]);
        for f in ["pubsub_clients", "pubsub_channels", "pubsub_patterns"] {
            t.push((f.into(), format!("{:?}", info_field(&info, f)).into_bytes()));
        }
        t
    });
}

/// CLIENT LIST without the fields that differ between runs (id, addr, ages, memory).
fn client_list_fields(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    let keep = ["flags", "sub", "psub", "ssub", "multi", "cmd", "resp"];
    text.split_whitespace()
        .filter(|f| keep.iter().any(|k| f.starts_with(&format!("{k}="))))
        .collect::<Vec<_>>()
        .join(" ")
        .into_bytes()
}

#[test]
fn patterns_and_client_list_fields() {
    compare(|s| {
        let mut t = Transcript::new();
        let mut sub = s.conn();
        let mut publ = s.conn();
        multi(&mut t, &mut sub, &["PSUBSCRIBE", "n*", "x?y"], 2);
        multi(&mut t, &mut sub, &["SUBSCRIBE", "news"], 1);
        multi(&mut t, &mut sub, &["SSUBSCRIBE", "sh"], 1);
        let cl = publ.call(&["CLIENT", "LIST", "TYPE", "pubsub"]);
        t.push(("client list".into(), client_list_fields(&cl)));
        step(&mut t, &mut publ, &["PUBLISH", "news", "hi"]);
        recv(&mut t, &mut sub, 2, "news+pattern");
        step(&mut t, &mut publ, &["PUBLISH", "xay", "p"]);
        recv(&mut t, &mut sub, 1, "pattern");
        step(&mut t, &mut publ, &["SPUBLISH", "sh", "s1"]);
        recv(&mut t, &mut sub, 1, "smessage");
        step(&mut t, &mut publ, &["PUBLISH", "sh", "not-shard"]);
        step(&mut t, &mut publ, &["SPUBLISH", "news", "not-global"]);
        step(&mut t, &mut publ, &["PUBSUB", "SHARDCHANNELS"]);
        step(&mut t, &mut publ, &["PUBSUB", "SHARDNUMSUB", "sh", "nope"]);
        step(&mut t, &mut publ, &["PUBSUB", "NUMPAT"]);
        multi(&mut t, &mut sub, &["PUNSUBSCRIBE", "x?y"], 1);
        multi(&mut t, &mut sub, &["SUNSUBSCRIBE"], 1);
        multi(&mut t, &mut sub, &["SUNSUBSCRIBE"], 1);
        multi(&mut t, &mut sub, &["PUNSUBSCRIBE"], 1);
        multi(&mut t, &mut sub, &["PUNSUBSCRIBE"], 1);
        step(&mut t, &mut sub, &["SET", "k", "v"]);
        multi(&mut t, &mut sub, &["UNSUBSCRIBE"], 1);
        step(&mut t, &mut sub, &["SET", "k", "v"]);
        let cl = publ.call(&["CLIENT", "LIST", "TYPE", "pubsub"]);
        t.push(("client list after".into(), client_list_fields(&cl)));
        t
    });
}

#[test]
fn resp3_pushes_mix_with_replies() {
    compare(|s| {
        let mut t = Transcript::new();
        let mut sub = s.conn();
        let mut publ = s.conn();
        sub.call(&["HELLO", "3"]);
        multi(&mut t, &mut sub, &["SUBSCRIBE", "a"], 1);
        step(&mut t, &mut sub, &["SET", "k", "v"]);
        step(&mut t, &mut sub, &["PING"]);
        step(&mut t, &mut publ, &["PUBLISH", "a", "m"]);
        recv(&mut t, &mut sub, 1, "push");
        step(&mut t, &mut sub, &["GET", "k"]);
        // Publishing to oneself: the reply, then the push.
        step(&mut t, &mut sub, &["PUBLISH", "a", "self"]);
        recv(&mut t, &mut sub, 1, "self push");
        // Inside MULTI/EXEC the pushes follow the whole EXEC reply.
        step(
            &mut t,
            &mut sub,
            &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
        );
        multi(&mut t, &mut sub, &["PSUBSCRIBE", "__keyspace@0__:*"], 1);
        step(&mut t, &mut sub, &["MULTI"]);
        step(&mut t, &mut sub, &["PUBLISH", "a", "in-exec"]);
        step(&mut t, &mut sub, &["SET", "k", "v2"]);
        step(&mut t, &mut sub, &["EXEC"]);
        recv(&mut t, &mut sub, 2, "pushes after exec");
        step(&mut t, &mut sub, &["DEL", "k"]);
        recv(&mut t, &mut sub, 1, "self keyspace push");
        step(
            &mut t,
            &mut sub,
            &["CONFIG", "SET", "notify-keyspace-events", ""],
        );
        multi(&mut t, &mut sub, &["UNSUBSCRIBE"], 1);
        multi(&mut t, &mut sub, &["UNSUBSCRIBE"], 1);
        multi(&mut t, &mut sub, &["PUNSUBSCRIBE"], 1);
        multi(&mut t, &mut sub, &["PUNSUBSCRIBE"], 1);
        // RESET leaves every subscription.
        multi(&mut t, &mut sub, &["SUBSCRIBE", "r"], 1);
        step(&mut t, &mut sub, &["RESET"]);
        step(&mut t, &mut publ, &["PUBSUB", "NUMSUB", "r"]);
        step(&mut t, &mut publ, &["PUBLISH", "r", "x"]);
        t
    });
}

#[test]
fn disconnect_cleans_up() {
    compare(|s| {
        let mut t = Transcript::new();
        let mut publ = s.conn();
        {
            let mut sub = s.conn();
            multi(&mut t, &mut sub, &["SUBSCRIBE", "gone"], 1);
            multi(&mut t, &mut sub, &["PSUBSCRIBE", "g*"], 1);
            sub.shutdown();
        }
        let ok = wait_for(Duration::from_secs(3), || {
            publ.call(&["PUBSUB", "NUMSUB", "gone"]) == b"*2\r\n$4\r\ngone\r\n:0\r\n"
        });
        assert!(
            ok,
            "{}: subscription survived the disconnect",
            s.kind.name()
        );
        step(&mut t, &mut publ, &["PUBSUB", "NUMPAT"]);
        step(&mut t, &mut publ, &["PUBLISH", "gone", "x"]);
        t
    });
}

/// Subscribes to every keyspace event, runs `cmds` on another connection and returns the
/// replies and the messages received.
fn keyspace_run(s: &Server, flags: &str, cmds: &[&[&str]]) -> Transcript {
    let mut t = Transcript::new();
    let mut sub = s.conn();
    let mut c = s.conn();
    step(
        &mut t,
        &mut c,
        &["CONFIG", "SET", "notify-keyspace-events", flags],
    );
    multi(&mut t, &mut sub, &["PSUBSCRIBE", "__key*__:*"], 1);
    for cmd in cmds {
        step(&mut t, &mut c, cmd);
    }
    // Everything published before the PING reply has arrived before it.
    sub.send(&["PING", "end"]).unwrap();
    loop {
        let r = sub.read_reply().expect("read");
        let end = r == b"*2\r\n$4\r\npong\r\n$3\r\nend\r\n";
        t.push(("event".into(), r));
        if end {
            break;
        }
    }
    t
}

const KS_CMDS: &[&[&str]] = &[
    &["SET", "k", "v"],
    &["SET", "k", "v2", "EX", "100"],
    &["SETEX", "k2", "100", "v"],
    &["SETNX", "k3", "v"],
    &["SETNX", "k3", "v"],
    &["MSET", "m1", "1", "m2", "2"],
    &["INCR", "m1"],
    &["INCRBY", "m1", "5"],
    &["DECR", "m1"],
    &["INCRBYFLOAT", "m1", "1.5"],
    &["APPEND", "m2", "x"],
    &["SETRANGE", "m2", "3", "yz"],
    &["GETSET", "m2", "w"],
    &["GETDEL", "m2"],
    &["GETEX", "k", "PERSIST"],
    &["GETEX", "k", "EX", "50"],
    &["EXPIRE", "k", "100"],
    &["PEXPIRE", "k", "100000"],
    &["PERSIST", "k"],
    &["EXPIRE", "k3", "0"],
    &["RENAME", "k", "kk"],
    &["RENAMENX", "kk", "k2"],
    &["MOVE", "kk", "1"],
    &["COPY", "k2", "k2copy"],
    &["COPY", "k2", "k2copy", "DB", "2"],
    &["DEL", "k2", "k2copy", "nokey"],
    &["UNLINK", "m1"],
    &["GET", "nokey"],
    &["SET", "r1", "a"],
    &["SET", "r2", "b", "EX", "100"],
    &["RENAME", "r1", "r2"],
    &["SET", "r2", "c", "KEEPTTL"],
    &["SET", "r2", "d", "GET"],
    &["SET", "r2", "e", "XX", "PXAT", "1"],
    &["SET", "r2", "e", "NX"],
    &["GETEX", "r2", "PXAT", "1"],
    &["MSETNX", "n1", "1", "n2", "2"],
    &["MSETNX", "n1", "1", "n3", "2"],
    &["LPUSH", "l", "a", "b"],
    &["HSET", "h", "f", "v"],
    &["SADD", "s", "m"],
    &["ZADD", "z", "1", "m"],
    &["COPY", "l", "l2"],
    &["RENAME", "h", "h2"],
    &["DEL", "l", "l2", "h2", "s", "z", "n1", "n2"],
    &["SET", "e", "1", "PX", "1"],
    &["DEBUG", "SLEEP", "0.01"],
    &["GET", "e"],
];

#[test]
fn keyspace_notifications_all_classes() {
    compare(|s| keyspace_run(s, "KEA", KS_CMDS));
}

#[test]
fn keyspace_notifications_flags() {
    compare(|s| {
        let mut t = keyspace_run(s, "Kg", KS_CMDS);
        t.extend(keyspace_run(s, "E$xmn", &[&["FLUSHALL"]]));
        t.extend(keyspace_run(s, "E$xmn", KS_CMDS));
        t.extend(keyspace_run(s, "", KS_CMDS));
        t
    });
}

/// A subscriber that never reads is disconnected by the pubsub hard limit
/// (client-output-buffer-limit pubsub 32mb 8mb 60), and memory stays bounded.
#[test]
fn slow_subscriber_is_disconnected() {
    for s in servers(&[]) {
        let mut publ = s.conn();
        let mut sub = s.conn();
        sub.call(&["SUBSCRIBE", "slow"]);
        let base = used_memory(&mut publ);
        let msg = "x".repeat(1024);
        let mut peak = 0;
        let mut gone = false;
        'outer: for _round in 0..200 {
            // Pipelined batches of PUBLISH, then their replies.
            let mut batch = Vec::new();
            for _ in 0..500 {
                batch.extend_from_slice(&common::encode_command(&["PUBLISH", "slow", &msg]));
            }
            publ.send_raw(&batch).unwrap();
            for _ in 0..500 {
                let r = publ.read_reply().unwrap();
                if r == b":0\r\n" {
                    gone = true;
                }
            }
            peak = peak.max(used_memory(&mut publ));
            if gone {
                break 'outer;
            }
        }
        assert!(
            gone,
            "{}: the slow subscriber was never dropped",
            s.kind.name()
        );
        let info = publ.call(&["INFO", "stats"]);
        assert_eq!(
            info_field(&info, "client_output_buffer_limit_disconnections"),
            Some(1),
            "{}",
            s.kind.name()
        );
        assert!(
            peak - base < 80 << 20,
            "{}: used_memory grew by {} bytes",
            s.kind.name(),
            peak - base
        );
        assert!(
            sub.closed_within(Duration::from_secs(5)),
            "{}: the slow subscriber's connection stayed open",
            s.kind.name()
        );
    }
}

/// The soft limit closes a subscriber that stays over it for longer than its seconds.
#[test]
fn soft_limit_after_seconds() {
    for s in servers(&[]) {
        let mut publ = s.conn();
        publ.call(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 0 100000 1",
        ]);
        let mut sub = s.conn();
        sub.call(&["SUBSCRIBE", "soft"]);
        let msg = "y".repeat(4096);
        let start = std::time::Instant::now();
        let mut gone = false;
        while start.elapsed() < Duration::from_secs(10) {
            let mut batch = Vec::new();
            for _ in 0..100 {
                batch.extend_from_slice(&common::encode_command(&["PUBLISH", "soft", &msg]));
            }
            publ.send_raw(&batch).unwrap();
            for _ in 0..100 {
                if publ.read_reply().unwrap() == b":0\r\n" {
                    gone = true;
                }
            }
            if gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(gone, "{}: soft limit never applied", s.kind.name());
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "{}: closed before the soft seconds",
            s.kind.name()
        );
    }
}
