//! Time-based hash field expiration (Valkey 9): lazy (expired fields invisible to reads)
//! and active (fields reclaimed, the key deleted with its last field). Each scenario runs
//! on valkey-rs and on the reference when installed.

mod common;

use std::time::{Duration, Instant};

use common::{expect, servers, Conn, Server};

const OK: &[u8] = b"+OK\r\n";

/// Polls `cmd` until it replies `want` or the deadline passes.
fn poll(s: &Server, c: &mut Conn, cmd: &[&str], want: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = c.call(cmd);
        if got == want || Instant::now() > deadline {
            expect(s, &got, want);
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lazy_field_expiry_hides_fields() {
    for s in servers(&[]) {
        let mut c = s.conn();
        expect(&s, &c.call(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), OK);
        expect(&s, &c.call(&["HSET", "h", "a", "1", "b", "2"]), b":2\r\n");
        expect(
            &s,
            &c.call(&["HPEXPIRE", "h", "100", "FIELDS", "1", "a"]),
            b"*1\r\n:1\r\n",
        );
        expect(&s, &c.call(&["HGET", "h", "a"]), b"$1\r\n1\r\n");
        poll(&s, &mut c, &["HGET", "h", "a"], b"$-1\r\n");
        expect(&s, &c.call(&["HEXISTS", "h", "a"]), b":0\r\n");
        expect(
            &s,
            &c.call(&["HGETALL", "h"]),
            b"*2\r\n$1\r\nb\r\n$1\r\n2\r\n",
        );
        expect(&s, &c.call(&["HKEYS", "h"]), b"*1\r\n$1\r\nb\r\n");
        expect(&s, &c.call(&["HSTRLEN", "h", "a"]), b":0\r\n");
        expect(
            &s,
            &c.call(&["HTTL", "h", "FIELDS", "2", "a", "b"]),
            b"*2\r\n:-2\r\n:-1\r\n",
        );
        expect(&s, &c.call(&["HDEL", "h", "a"]), b":0\r\n");
        expect(
            &s,
            &c.call(&["HRANDFIELD", "h", "-3"]),
            b"*3\r\n$1\r\nb\r\n$1\r\nb\r\n$1\r\nb\r\n",
        );
        // Not reclaimed yet: upstream's HLEN still counts it.
        expect(&s, &c.call(&["HLEN", "h"]), b":2\r\n");
        // Overwriting an expired field creates it anew.
        expect(&s, &c.call(&["HSET", "h", "a", "3"]), b":1\r\n");
        expect(
            &s,
            &c.call(&["HTTL", "h", "FIELDS", "1", "a"]),
            b"*1\r\n:-1\r\n",
        );
        expect(&s, &c.call(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]), OK);
    }
}

#[test]
fn active_field_expiry_reclaims_and_deletes_key() {
    for s in servers(&[]) {
        let mut c = s.conn();
        expect(
            &s,
            &c.call(&["HSET", "h", "a", "1", "b", "2", "c", "3"]),
            b":3\r\n",
        );
        expect(
            &s,
            &c.call(&["HPEXPIRE", "h", "100", "FIELDS", "2", "a", "b"]),
            b"*2\r\n:1\r\n:1\r\n",
        );
        let info = c.call(&["INFO", "keyspace"]);
        assert!(
            String::from_utf8_lossy(&info).contains("keys_with_volatile_items=1"),
            "{}: {}",
            s.kind.name(),
            String::from_utf8_lossy(&info)
        );
        let before = common::info_field(&c.call(&["INFO", "stats"]), "expired_fields").unwrap();
        // Active expiry reclaims the fields: HLEN drops without any read of them.
        poll(&s, &mut c, &["HLEN", "h"], b":1\r\n");
        let after = common::info_field(&c.call(&["INFO", "stats"]), "expired_fields").unwrap();
        assert_eq!(after - before, 2, "{}: expired_fields", s.kind.name());
        expect(
            &s,
            &c.call(&["HGETALL", "h"]),
            b"*2\r\n$1\r\nc\r\n$1\r\n3\r\n",
        );
        expect(
            &s,
            &c.call(&["HSETEX", "h", "PX", "100", "FIELDS", "1", "c", "4"]),
            b":1\r\n",
        );
        // The last field goes: the key goes with it.
        poll(&s, &mut c, &["EXISTS", "h"], b":0\r\n");

        // Many keys with volatile fields.
        for i in 0..50 {
            let k = format!("k{i}");
            expect(
                &s,
                &c.call(&["HSETEX", &k, "PX", "100", "FIELDS", "2", "f", "v", "g", "w"]),
                b":1\r\n",
            );
        }
        poll(&s, &mut c, &["DBSIZE"], b":0\r\n");
    }
}
