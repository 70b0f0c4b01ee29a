//! Blocking commands (BLPOP, BRPOP, BLMOVE, BLMPOP, BZPOPMIN) with several connections:
//! FIFO service, re-execution when a key gets data, timeouts, MULTI/EXEC, CLIENT UNBLOCK,
//! disconnects and pipelined input behind a blocked command. Every scenario runs on
//! valkey-rs and on the reference when installed, with the same expected bytes.

mod common;

use std::time::{Duration, Instant};

use common::{assert_silent, client_id, expect, info_field, servers, wait_blocked, Conn};

const OK: &[u8] = b"+OK\r\n";
const QUEUED: &[u8] = b"+QUEUED\r\n";
const NULL_ARRAY: &[u8] = b"*-1\r\n";

/// Whether the server knows `cmd` (the zset family lands separately).
fn has_command(c: &mut Conn, cmd: &str) -> bool {
    c.call(&["COMMAND", "INFO", cmd]) != b"*1\r\n$-1\r\n"
}

#[test]
fn blpop_is_served_by_a_push() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut c1 = s.conn();
        c1.send(&["BLPOP", "k", "0"]).unwrap();
        wait_blocked(&s, &mut admin, 1);
        let list = admin.call(&["CLIENT", "LIST"]);
        assert!(
            String::from_utf8_lossy(&list).contains("flags=b "),
            "{}: no b flag in {}",
            s.kind.name(),
            String::from_utf8_lossy(&list)
        );
        let info = admin.call(&["INFO", "clients"]);
        assert_eq!(info_field(&info, "total_blocking_keys"), Some(1));
        assert_eq!(info_field(&info, "clients_in_timeout_table"), Some(0));
        assert_silent(&s, &mut c1);
        expect(&s, &admin.call(&["RPUSH", "k", "a", "b"]), b":2\r\n");
        expect(
            &s,
            &c1.read_reply().unwrap(),
            b"*2\r\n$1\r\nk\r\n$1\r\na\r\n",
        );
        expect(
            &s,
            &admin.call(&["LRANGE", "k", "0", "-1"]),
            b"*1\r\n$1\r\nb\r\n",
        );
        wait_blocked(&s, &mut admin, 0);
        let info = admin.call(&["INFO", "clients"]);
        assert_eq!(info_field(&info, "total_blocking_keys"), Some(0));
        // Data already there: no blocking at all.
        expect(
            &s,
            &c1.call(&["BLPOP", "k", "0"]),
            b"*2\r\n$1\r\nk\r\n$1\r\nb\r\n",
        );
    }
}

#[test]
fn brpop_on_several_keys_serves_the_key_that_got_data() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut c1 = s.conn();
        c1.send(&["BRPOP", "k1", "k2", "k1", "0"]).unwrap();
        wait_blocked(&s, &mut admin, 1);
        // A key listed twice is waited on once.
        let info = admin.call(&["INFO", "clients"]);
        assert_eq!(info_field(&info, "total_blocking_keys"), Some(2));
        expect(&s, &admin.call(&["LPUSH", "k2", "x", "y"]), b":2\r\n");
        expect(
            &s,
            &c1.read_reply().unwrap(),
            b"*2\r\n$2\r\nk2\r\n$1\r\nx\r\n",
        );
        wait_blocked(&s, &mut admin, 0);
        let info = admin.call(&["INFO", "clients"]);
        assert_eq!(info_field(&info, "total_blocking_keys"), Some(0));
    }
}

#[test]
fn timeouts_reply_null() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let t = Instant::now();
        expect(&s, &c.call(&["BLPOP", "nokey", "0.1"]), NULL_ARRAY);
        let el = t.elapsed();
        assert!(
            el >= Duration::from_millis(95) && el < Duration::from_millis(500),
            "{}: 0.1 s timeout took {:?}",
            s.kind.name(),
            el
        );
        expect(&s, &c.call(&["BRPOP", "a", "b", "0.05"]), NULL_ARRAY);
        expect(
            &s,
            &c.call(&["BLMOVE", "a", "b", "LEFT", "RIGHT", "0.05"]),
            NULL_ARRAY,
        );
        expect(
            &s,
            &c.call(&["BLMPOP", "0.05", "1", "a", "LEFT"]),
            NULL_ARRAY,
        );
        // RESP3: a null.
        let hello = c.call(&["HELLO", "3"]);
        assert!(hello.starts_with(b"%"));
        expect(&s, &c.call(&["BLPOP", "nokey", "0.05"]), b"_\r\n");
        expect(
            &s,
            &c.call(&["BLMOVE", "a", "b", "LEFT", "RIGHT", "0.05"]),
            b"_\r\n",
        );
        // The timed-out calls are counted in commandstats.
        let stats = c.call(&["INFO", "commandstats"]);
        let text = String::from_utf8_lossy(&stats);
        assert!(
            text.contains("cmdstat_blpop:calls=2,"),
            "{}: {}",
            s.kind.name(),
            text
        );
    }
}

#[test]
fn timeout_argument_errors() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let cases: &[(&str, &[u8])] = &[
            ("-1", b"-ERR timeout is negative\r\n"),
            ("-0.5", b"-ERR timeout is negative\r\n"),
            ("abc", b"-ERR timeout is not a float or out of range\r\n"),
            ("1x", b"-ERR timeout is not a float or out of range\r\n"),
            ("", b"-ERR timeout is not a float or out of range\r\n"),
            ("nan", b"-ERR timeout is not a float or out of range\r\n"),
            ("inf", b"-ERR timeout is out of range\r\n"),
            ("1e300", b"-ERR timeout is out of range\r\n"),
            ("9223372036854775", b"-ERR timeout is out of range\r\n"),
        ];
        for (arg, want) in cases {
            expect(&s, &c.call(&["BLPOP", "k", arg]), want);
            expect(
                &s,
                &c.call(&["BLMOVE", "a", "b", "LEFT", "LEFT", arg]),
                want,
            );
        }
        // "0.0001" rounds up to 1 ms (it is not "forever").
        expect(&s, &c.call(&["BLPOP", "k", "0.0001"]), NULL_ARRAY);
        expect(&s, &c.call(&["BLPOP", "k", "1e-2"]), NULL_ARRAY);
    }
}

#[test]
fn clients_are_served_first_come_first_served() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut cs: Vec<Conn> = (0..3).map(|_| s.conn()).collect();
        for (i, c) in cs.iter_mut().enumerate() {
            c.send(&["BLPOP", "q", "0"]).unwrap();
            wait_blocked(&s, &mut admin, i as i64 + 1);
        }
        expect(&s, &admin.call(&["RPUSH", "q", "a", "b"]), b":2\r\n");
        expect(
            &s,
            &cs[0].read_reply().unwrap(),
            b"*2\r\n$1\r\nq\r\n$1\r\na\r\n",
        );
        expect(
            &s,
            &cs[1].read_reply().unwrap(),
            b"*2\r\n$1\r\nq\r\n$1\r\nb\r\n",
        );
        assert_silent(&s, &mut cs[2]);
        expect(&s, &admin.call(&["RPUSH", "q", "c"]), b":1\r\n");
        expect(
            &s,
            &cs[2].read_reply().unwrap(),
            b"*2\r\n$1\r\nq\r\n$1\r\nc\r\n",
        );
        expect(&s, &admin.call(&["EXISTS", "q"]), b":0\r\n");
    }
}

#[test]
fn blmove_chain_serves_a_client_blocked_on_the_destination() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut on_b = s.conn();
        let mut mover = s.conn();
        on_b.send(&["BLPOP", "b", "0"]).unwrap();
        wait_blocked(&s, &mut admin, 1);
        mover
            .send(&["BLMOVE", "a", "b", "RIGHT", "LEFT", "0"])
            .unwrap();
        wait_blocked(&s, &mut admin, 2);
        expect(&s, &admin.call(&["RPUSH", "a", "x"]), b":1\r\n");
        expect(&s, &mover.read_reply().unwrap(), b"$1\r\nx\r\n");
        expect(
            &s,
            &on_b.read_reply().unwrap(),
            b"*2\r\n$1\r\nb\r\n$1\r\nx\r\n",
        );
        expect(&s, &admin.call(&["EXISTS", "a", "b"]), b":0\r\n");
        wait_blocked(&s, &mut admin, 0);
    }
}

#[test]
fn blmpop_with_count() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut c1 = s.conn();
        c1.send(&["BLMPOP", "0", "2", "k1", "k2", "RIGHT", "COUNT", "2"])
            .unwrap();
        wait_blocked(&s, &mut admin, 1);
        expect(&s, &admin.call(&["RPUSH", "k2", "a", "b", "c"]), b":3\r\n");
        expect(
            &s,
            &c1.read_reply().unwrap(),
            b"*2\r\n$2\r\nk2\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n",
        );
    }
}

#[test]
fn bzpopmin_is_served_by_zadd() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        if !has_command(&mut admin, "bzpopmin") {
            eprintln!("{}: no BZPOPMIN yet, skipped", s.kind.name());
            continue;
        }
        let mut c1 = s.conn();
        c1.send(&["BZPOPMIN", "z", "0"]).unwrap();
        wait_blocked(&s, &mut admin, 1);
        // A list pushed on the key is the wrong type: the client stays blocked.
        expect(&s, &admin.call(&["RPUSH", "z", "x"]), b":1\r\n");
        assert_silent(&s, &mut c1);
        expect(&s, &admin.call(&["DEL", "z"]), b":1\r\n");
        expect(
            &s,
            &admin.call(&["ZADD", "z", "2", "b", "1", "a"]),
            b":2\r\n",
        );
        expect(
            &s,
            &c1.read_reply().unwrap(),
            b"*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n",
        );
        expect(&s, &c1.call(&["BZPOPMIN", "nokey", "0.01"]), NULL_ARRAY);
    }
}

#[test]
fn blocking_inside_multi_replies_as_timeout() {
    for s in servers(&[]) {
        let mut c = s.conn();
        expect(&s, &c.call(&["MULTI"]), OK);
        expect(&s, &c.call(&["BLPOP", "k", "0"]), QUEUED);
        expect(
            &s,
            &c.call(&["BLMOVE", "a", "b", "LEFT", "LEFT", "0"]),
            QUEUED,
        );
        expect(&s, &c.call(&["RPUSH", "k", "v"]), QUEUED);
        expect(&s, &c.call(&["BLPOP", "k", "0"]), QUEUED);
        expect(
            &s,
            &c.call(&["EXEC"]),
            b"*4\r\n*-1\r\n$-1\r\n:1\r\n*2\r\n$1\r\nk\r\n$1\r\nv\r\n",
        );
    }
}

#[test]
fn pushes_inside_exec_are_served_after_exec() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut c1 = s.conn();
        let mut tx = s.conn();
        c1.send(&["BLPOP", "k", "0"]).unwrap();
        wait_blocked(&s, &mut admin, 1);
        // Pushed and popped again inside the transaction: nothing left for the waiter.
        expect(&s, &tx.call(&["MULTI"]), OK);
        expect(&s, &tx.call(&["RPUSH", "k", "a"]), QUEUED);
        expect(&s, &tx.call(&["LPOP", "k"]), QUEUED);
        expect(&s, &tx.call(&["EXEC"]), b"*2\r\n:1\r\n$1\r\na\r\n");
        assert_silent(&s, &mut c1);
        // Two pushes: the waiter is served once EXEC is over, with the first element.
        expect(&s, &tx.call(&["MULTI"]), OK);
        expect(&s, &tx.call(&["RPUSH", "k", "a"]), QUEUED);
        expect(&s, &tx.call(&["RPUSH", "k", "b"]), QUEUED);
        expect(&s, &tx.call(&["LLEN", "k"]), QUEUED);
        expect(&s, &tx.call(&["EXEC"]), b"*3\r\n:1\r\n:2\r\n:2\r\n");
        expect(
            &s,
            &c1.read_reply().unwrap(),
            b"*2\r\n$1\r\nk\r\n$1\r\na\r\n",
        );
        expect(
            &s,
            &admin.call(&["LRANGE", "k", "0", "-1"]),
            b"*1\r\n$1\r\nb\r\n",
        );
    }
}

#[test]
fn client_unblock() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut c1 = s.conn();
        let id = client_id(&mut c1);
        expect(&s, &admin.call(&["CLIENT", "UNBLOCK", &id]), b":0\r\n");
        expect(
            &s,
            &admin.call(&["CLIENT", "UNBLOCK", &id, "FOO"]),
            b"-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n",
        );
        expect(
            &s,
            &admin.call(&["CLIENT", "UNBLOCK", "x"]),
            b"-ERR value is not an integer or out of range\r\n",
        );
        c1.send(&["BLPOP", "k", "0"]).unwrap();
        wait_blocked(&s, &mut admin, 1);
        expect(&s, &admin.call(&["CLIENT", "UNBLOCK", &id]), b":1\r\n");
        expect(&s, &c1.read_reply().unwrap(), NULL_ARRAY);
        wait_blocked(&s, &mut admin, 0);
        c1.send(&["BLMOVE", "a", "b", "LEFT", "LEFT", "100"])
            .unwrap();
        wait_blocked(&s, &mut admin, 1);
        let info = admin.call(&["INFO", "clients"]);
        assert_eq!(info_field(&info, "clients_in_timeout_table"), Some(1));
        expect(
            &s,
            &admin.call(&["CLIENT", "UNBLOCK", &id, "error"]),
            b":1\r\n",
        );
        expect(
            &s,
            &c1.read_reply().unwrap(),
            b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n",
        );
        let info = admin.call(&["INFO", "clients"]);
        assert_eq!(info_field(&info, "clients_in_timeout_table"), Some(0));
        assert_eq!(info_field(&info, "blocked_clients"), Some(0));
        // The connection works normally afterwards, and the key was not consumed.
        expect(&s, &admin.call(&["RPUSH", "k", "v"]), b":1\r\n");
        expect(&s, &c1.call(&["LLEN", "k"]), b":1\r\n");
        let errs = admin.call(&["INFO", "errorstats"]);
        assert!(String::from_utf8_lossy(&errs).contains("errorstat_UNBLOCKED:count=1"));
    }
}

#[test]
fn disconnected_and_killed_clients_leave_the_queue() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut gone = s.conn();
        gone.send(&["BLPOP", "k", "0"]).unwrap();
        wait_blocked(&s, &mut admin, 1);
        gone.shutdown();
        drop(gone);
        wait_blocked(&s, &mut admin, 0);
        let mut killed = s.conn();
        let id = client_id(&mut killed);
        killed.send(&["BLPOP", "k", "0"]).unwrap();
        wait_blocked(&s, &mut admin, 1);
        let mut waiter = s.conn();
        waiter.send(&["BLPOP", "k", "0"]).unwrap();
        wait_blocked(&s, &mut admin, 2);
        expect(&s, &admin.call(&["CLIENT", "KILL", "ID", &id]), b":1\r\n");
        wait_blocked(&s, &mut admin, 1);
        expect(&s, &admin.call(&["RPUSH", "k", "a", "b"]), b":2\r\n");
        expect(
            &s,
            &waiter.read_reply().unwrap(),
            b"*2\r\n$1\r\nk\r\n$1\r\na\r\n",
        );
        assert!(killed.closed_within(Duration::from_secs(2)));
        expect(
            &s,
            &admin.call(&["LRANGE", "k", "0", "-1"]),
            b"*1\r\n$1\r\nb\r\n",
        );
        let info = admin.call(&["INFO", "clients"]);
        assert_eq!(info_field(&info, "total_blocking_keys"), Some(0));
    }
}

#[test]
fn key_of_another_type_keeps_the_client_blocked() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut c1 = s.conn();
        c1.send(&["BLPOP", "k", "0"]).unwrap();
        wait_blocked(&s, &mut admin, 1);
        expect(&s, &admin.call(&["SET", "k", "str"]), OK);
        assert_silent(&s, &mut c1);
        // A transaction that makes k a list, then a string again: still blocked.
        expect(&s, &admin.call(&["MULTI"]), OK);
        expect(&s, &admin.call(&["DEL", "k"]), QUEUED);
        expect(&s, &admin.call(&["RPUSH", "k", "x"]), QUEUED);
        expect(&s, &admin.call(&["SET", "k", "str"]), QUEUED);
        expect(&s, &admin.call(&["EXEC"]), b"*3\r\n:1\r\n:1\r\n+OK\r\n");
        assert_silent(&s, &mut c1);
        expect(&s, &admin.call(&["DEL", "k"]), b":1\r\n");
        expect(&s, &admin.call(&["RPUSH", "k", "y"]), b":1\r\n");
        expect(
            &s,
            &c1.read_reply().unwrap(),
            b"*2\r\n$1\r\nk\r\n$1\r\ny\r\n",
        );
    }
}

#[test]
fn blmove_to_a_wrong_type_destination_fails_when_served() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut c1 = s.conn();
        expect(&s, &admin.call(&["SET", "dst", "str"]), OK);
        c1.send(&["BLMOVE", "src", "dst", "LEFT", "LEFT", "0"])
            .unwrap();
        wait_blocked(&s, &mut admin, 1);
        expect(&s, &admin.call(&["RPUSH", "src", "v"]), b":1\r\n");
        expect(
            &s,
            &c1.read_reply().unwrap(),
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        );
        expect(&s, &admin.call(&["LLEN", "src"]), b":1\r\n");
    }
}

#[test]
fn pipelined_commands_wait_behind_a_blocked_command() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut c1 = s.conn();
        let mut req = common::encode_command(&["BLPOP", "k", "0"]);
        req.extend_from_slice(&common::encode_command(&["PING"]));
        req.extend_from_slice(&common::encode_command(&["RPUSH", "k2", "z"]));
        req.extend_from_slice(&common::encode_command(&["BLPOP", "k", "0"]));
        req.extend_from_slice(&common::encode_command(&["ECHO", "end"]));
        c1.send_raw(&req).unwrap();
        wait_blocked(&s, &mut admin, 1);
        assert_silent(&s, &mut c1);
        expect(&s, &admin.call(&["EXISTS", "k2"]), b":0\r\n");
        expect(&s, &admin.call(&["RPUSH", "k", "a"]), b":1\r\n");
        expect(
            &s,
            &c1.read_reply().unwrap(),
            b"*2\r\n$1\r\nk\r\n$1\r\na\r\n",
        );
        expect(&s, &c1.read_reply().unwrap(), b"+PONG\r\n");
        expect(&s, &c1.read_reply().unwrap(), b":1\r\n");
        // Blocked again by the second BLPOP; ECHO waits.
        wait_blocked(&s, &mut admin, 1);
        assert_silent(&s, &mut c1);
        // Input sent while blocked is buffered too.
        c1.send(&["PING", "late"]).unwrap();
        assert_silent(&s, &mut c1);
        expect(&s, &admin.call(&["LPUSH", "k", "b"]), b":1\r\n");
        expect(
            &s,
            &c1.read_reply().unwrap(),
            b"*2\r\n$1\r\nk\r\n$1\r\nb\r\n",
        );
        expect(&s, &c1.read_reply().unwrap(), b"$3\r\nend\r\n");
        expect(&s, &c1.read_reply().unwrap(), b"$4\r\nlate\r\n");
    }
}

#[test]
fn pipelined_pushes_serve_between_commands() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut c1 = s.conn();
        let mut pusher = s.conn();
        c1.send(&["BLPOP", "k", "0"]).unwrap();
        wait_blocked(&s, &mut admin, 1);
        // Two pushes in one pipeline: the waiter is served right after the first.
        let mut req = common::encode_command(&["LPUSH", "k", "a"]);
        req.extend_from_slice(&common::encode_command(&["LPUSH", "k", "b"]));
        pusher.send_raw(&req).unwrap();
        expect(&s, &pusher.read_reply().unwrap(), b":1\r\n");
        expect(&s, &pusher.read_reply().unwrap(), b":1\r\n");
        expect(
            &s,
            &c1.read_reply().unwrap(),
            b"*2\r\n$1\r\nk\r\n$1\r\na\r\n",
        );
        expect(
            &s,
            &admin.call(&["LRANGE", "k", "0", "-1"]),
            b"*1\r\n$1\r\nb\r\n",
        );
    }
}

#[test]
fn blocked_clients_in_other_dbs_and_idle_timeout() {
    for s in servers(&["--timeout", "1"]) {
        let mut admin = s.conn();
        let mut c1 = s.conn();
        expect(&s, &c1.call(&["SELECT", "3"]), OK);
        c1.send(&["BLPOP", "k", "0"]).unwrap();
        wait_blocked(&s, &mut admin, 1);
        expect(&s, &admin.call(&["RPUSH", "k", "db0"]), b":1\r\n");
        // Blocked clients are not closed by the idle timeout (the idle admin is).
        std::thread::sleep(Duration::from_millis(2200));
        assert_silent(&s, &mut c1);
        let mut admin = s.conn();
        expect(&s, &admin.call(&["SELECT", "3"]), OK);
        expect(&s, &admin.call(&["RPUSH", "k", "db3"]), b":1\r\n");
        expect(
            &s,
            &c1.read_reply().unwrap(),
            b"*2\r\n$1\r\nk\r\n$3\r\ndb3\r\n",
        );
    }
}

#[test]
fn swapdb_serves_clients_whose_key_arrives() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut c1 = s.conn();
        expect(&s, &c1.call(&["SELECT", "1"]), OK);
        c1.send(&["BLPOP", "k", "0"]).unwrap();
        wait_blocked(&s, &mut admin, 1);
        expect(&s, &admin.call(&["RPUSH", "k", "v"]), b":1\r\n");
        expect(&s, &admin.call(&["SWAPDB", "0", "1"]), OK);
        expect(
            &s,
            &c1.read_reply().unwrap(),
            b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n",
        );
        wait_blocked(&s, &mut admin, 0);
    }
}
