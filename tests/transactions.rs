//! MULTI / EXEC / DISCARD / WATCH semantics, with several connections where the
//! single-connection differential file (`tests/diff/transactions.txt`) can not express
//! them. Each scenario runs on valkey-rs and on the reference when installed.

mod common;

use std::time::Duration;

use common::{expect, servers, Conn, Server};

const OK: &[u8] = b"+OK\r\n";
const QUEUED: &[u8] = b"+QUEUED\r\n";
const NULL_ARRAY: &[u8] = b"*-1\r\n";

/// WATCH k, MULTI, SET k in the transaction; returns the connection ready for EXEC.
fn watch_and_queue(s: &Server, c: &mut Conn, key: &str) {
    expect(s, &c.call(&["WATCH", key]), OK);
}

fn queue_set_and_exec(s: &Server, c: &mut Conn, key: &str) -> Vec<u8> {
    expect(s, &c.call(&["MULTI"]), OK);
    expect(s, &c.call(&["SET", key, "from-tx"]), QUEUED);
    c.call(&["EXEC"])
}

#[test]
fn queued_replies_and_exec() {
    for s in servers(&[]) {
        let mut c = s.conn();
        expect(&s, &c.call(&["MULTI"]), OK);
        expect(&s, &c.call(&["SET", "a", "1"]), QUEUED);
        expect(&s, &c.call(&["GET", "a"]), QUEUED);
        expect(&s, &c.call(&["DEL", "a", "b"]), QUEUED);
        expect(&s, &c.call(&["EXEC"]), b"*3\r\n+OK\r\n$1\r\n1\r\n:1\r\n");
        // Empty transaction.
        expect(&s, &c.call(&["MULTI"]), OK);
        expect(&s, &c.call(&["EXEC"]), b"*0\r\n");
    }
}

#[test]
fn runtime_errors_do_not_abort_exec() {
    for s in servers(&[]) {
        let mut c = s.conn();
        expect(&s, &c.call(&["MULTI"]), OK);
        expect(&s, &c.call(&["SELECT", "100"]), QUEUED);
        expect(&s, &c.call(&["SET", "a", "1"]), QUEUED);
        expect(
            &s,
            &c.call(&["EXEC"]),
            b"*2\r\n-ERR DB index is out of range\r\n+OK\r\n",
        );
    }
}

#[test]
fn execabort_after_queueing_errors() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let abort: &[u8] = b"-EXECABORT Transaction discarded because of previous errors.\r\n";
        // Unknown command.
        expect(&s, &c.call(&["MULTI"]), OK);
        expect(
            &s,
            &c.call(&["NOSUCH", "x"]),
            b"-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n",
        );
        expect(&s, &c.call(&["SET", "a", "1"]), QUEUED);
        expect(&s, &c.call(&["EXEC"]), abort);
        expect(&s, &c.call(&["GET", "a"]), b"$-1\r\n");
        // Wrong arity.
        expect(&s, &c.call(&["MULTI"]), OK);
        expect(
            &s,
            &c.call(&["GET"]),
            b"-ERR wrong number of arguments for 'get' command\r\n",
        );
        expect(&s, &c.call(&["EXEC"]), abort);
        // The client is out of MULTI after EXECABORT.
        expect(&s, &c.call(&["EXEC"]), b"-ERR EXEC without MULTI\r\n");
    }
}

#[test]
fn control_command_errors() {
    for s in servers(&[]) {
        let mut c = s.conn();
        expect(&s, &c.call(&["EXEC"]), b"-ERR EXEC without MULTI\r\n");
        expect(&s, &c.call(&["DISCARD"]), b"-ERR DISCARD without MULTI\r\n");
        expect(&s, &c.call(&["MULTI"]), OK);
        expect(
            &s,
            &c.call(&["MULTI"]),
            b"-ERR Command 'multi' not allowed inside a transaction\r\n",
        );
        expect(
            &s,
            &c.call(&["WATCH", "k"]),
            b"-ERR Command 'watch' not allowed inside a transaction\r\n",
        );
        expect(&s, &c.call(&["DISCARD"]), OK);
        expect(&s, &c.call(&["UNWATCH"]), OK);
        expect(&s, &c.call(&["PING"]), b"+PONG\r\n");
    }
}

#[test]
fn discard_drops_the_queue_and_watches() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let mut other = s.conn();
        expect(&s, &c.call(&["WATCH", "k"]), OK);
        expect(&s, &c.call(&["MULTI"]), OK);
        expect(&s, &c.call(&["SET", "a", "1"]), QUEUED);
        expect(&s, &c.call(&["DISCARD"]), OK);
        expect(&s, &c.call(&["GET", "a"]), b"$-1\r\n");
        // DISCARD unwatched k: a later write does not fail the next transaction.
        expect(&s, &other.call(&["SET", "k", "x"]), OK);
        expect(&s, &queue_set_and_exec(&s, &mut c, "k"), b"*1\r\n+OK\r\n");
    }
}

#[test]
fn watch_invalidated_by_another_client() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let mut other = s.conn();
        expect(&s, &c.call(&["SET", "k", "v0"]), OK);
        watch_and_queue(&s, &mut c, "k");
        expect(&s, &other.call(&["SET", "k", "v1"]), OK);
        expect(&s, &queue_set_and_exec(&s, &mut c, "k"), NULL_ARRAY);
        expect(&s, &c.call(&["GET", "k"]), b"$2\r\nv1\r\n");
        // EXEC unwatches: the next transaction runs.
        expect(&s, &queue_set_and_exec(&s, &mut c, "k"), b"*1\r\n+OK\r\n");
        // A write to another key does not invalidate.
        watch_and_queue(&s, &mut c, "k");
        expect(&s, &other.call(&["SET", "other", "x"]), OK);
        expect(&s, &queue_set_and_exec(&s, &mut c, "k"), b"*1\r\n+OK\r\n");
        // Deleting the key invalidates; so does creating a missing one.
        watch_and_queue(&s, &mut c, "k");
        expect(&s, &other.call(&["DEL", "k"]), b":1\r\n");
        expect(&s, &queue_set_and_exec(&s, &mut c, "k"), NULL_ARRAY);
        expect(&s, &c.call(&["GET", "k"]), b"$-1\r\n");
        watch_and_queue(&s, &mut c, "k");
        expect(&s, &other.call(&["SET", "k", "new"]), OK);
        expect(&s, &queue_set_and_exec(&s, &mut c, "k"), NULL_ARRAY);
    }
}

#[test]
fn watch_invalidated_by_own_write() {
    for s in servers(&[]) {
        let mut c = s.conn();
        watch_and_queue(&s, &mut c, "k");
        expect(&s, &c.call(&["SET", "k", "mine"]), OK);
        expect(&s, &queue_set_and_exec(&s, &mut c, "k"), NULL_ARRAY);
        expect(&s, &c.call(&["GET", "k"]), b"$4\r\nmine\r\n");
    }
}

#[test]
fn watch_in_another_db_is_separate() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let mut other = s.conn();
        watch_and_queue(&s, &mut c, "k");
        expect(&s, &other.call(&["SELECT", "1"]), OK);
        expect(&s, &other.call(&["SET", "k", "db1"]), OK);
        expect(&s, &queue_set_and_exec(&s, &mut c, "k"), b"*1\r\n+OK\r\n");
    }
}

#[test]
fn watch_invalidated_by_flushall() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let mut other = s.conn();
        expect(&s, &c.call(&["SET", "k", "v"]), OK);
        watch_and_queue(&s, &mut c, "k");
        expect(&s, &other.call(&["FLUSHALL"]), OK);
        expect(&s, &queue_set_and_exec(&s, &mut c, "k"), NULL_ARRAY);
    }
}

#[test]
fn watch_invalidated_by_expiry() {
    for s in servers(&[]) {
        let mut c = s.conn();
        expect(&s, &c.call(&["SET", "k", "v", "PX", "50"]), OK);
        watch_and_queue(&s, &mut c, "k");
        std::thread::sleep(Duration::from_millis(150));
        expect(&s, &queue_set_and_exec(&s, &mut c, "k"), NULL_ARRAY);

        // The same with PEXPIRE set after WATCH by another client.
        let mut other = s.conn();
        expect(&s, &c.call(&["SET", "k2", "v"]), OK);
        watch_and_queue(&s, &mut c, "k2");
        expect(&s, &other.call(&["PEXPIRE", "k2", "50"]), b":1\r\n");
        std::thread::sleep(Duration::from_millis(150));
        expect(&s, &queue_set_and_exec(&s, &mut c, "k2"), NULL_ARRAY);
    }
}

#[test]
fn unwatch_forgets_watched_keys() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let mut other = s.conn();
        expect(&s, &c.call(&["WATCH", "k", "k2"]), OK);
        expect(&s, &c.call(&["UNWATCH"]), OK);
        expect(&s, &other.call(&["SET", "k", "x"]), OK);
        expect(&s, &queue_set_and_exec(&s, &mut c, "k"), b"*1\r\n+OK\r\n");
    }
}

#[test]
fn watch_of_a_missing_key_that_stays_missing() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let mut other = s.conn();
        watch_and_queue(&s, &mut c, "nokey");
        // Deleting a missing key is not a modification.
        expect(&s, &other.call(&["DEL", "nokey"]), b":0\r\n");
        expect(&s, &queue_set_and_exec(&s, &mut c, "x"), b"*1\r\n+OK\r\n");
    }
}

#[test]
fn closing_a_watching_client_is_clean() {
    for s in servers(&[]) {
        for _ in 0..50 {
            let mut c = s.conn();
            expect(&s, &c.call(&["WATCH", "k", "k2"]), OK);
            expect(&s, &c.call(&["MULTI"]), OK);
            expect(&s, &c.call(&["SET", "k", "1"]), QUEUED);
            drop(c);
        }
        let mut c = s.conn();
        expect(&s, &c.call(&["SET", "k", "after"]), OK);
        expect(&s, &c.call(&["GET", "k"]), b"$5\r\nafter\r\n");
    }
}
