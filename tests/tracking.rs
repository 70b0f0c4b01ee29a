//! Client-side caching (CLIENT TRACKING) with real connections: RESP3 invalidation
//! pushes, RESP2 through REDIRECT to a `__redis__:invalidate` subscriber, BCAST with
//! prefixes, OPTIN/OPTOUT with CLIENT CACHING, NOLOOP, flush and expiry and eviction
//! invalidations, broken redirections, TRACKINGINFO/GETREDIR, the error texts, INFO
//! fields and `tracking-table-max-keys`.
//!
//! Every scenario runs on valkey-rs and on the reference when installed, and the raw
//! bytes each connection received (replies and pushes, in order) must be equal. Client
//! ids differ between servers, so the ids a scenario learns are replaced by names in
//! the transcripts. "Nothing was pushed" is checked with a PING: its +PONG must be the
//! next thing the connection reads.

mod common;

use std::time::Duration;

use common::{client_id, encode_command, escape, info_field, servers, Conn, Server, Transcript};

/// A scenario's recorder: the transcript and the client ids to hide.
#[derive(Default)]
struct Rec {
    t: Transcript,
    ids: Vec<(String, String)>,
}

impl Rec {
    /// Hides the learned ids where replies carry them: TRACKINGINFO's `redirect`, the
    /// `tracking-redir-broken` push, CLIENT GETREDIR (a reply that is just the id). Only
    /// there: small ids would collide with other integers.
    fn norm(&self, mut b: Vec<u8>, getredir: bool) -> Vec<u8> {
        for (id, name) in &self.ids {
            for ctx in ["redirect\r\n:", "tracking-redir-broken\r\n:"] {
                let from = format!("{ctx}{id}\r\n").into_bytes();
                let to = format!("{ctx}{name}\r\n").into_bytes();
                b = replace_all(&b, &from, &to);
            }
            if getredir && b == format!(":{id}\r\n").as_bytes() {
                b = format!(":{name}\r\n").into_bytes();
            }
        }
        b
    }

    /// Sends a command and records its reply.
    fn step(&mut self, c: &mut Conn, argv: &[&str]) -> Vec<u8> {
        let r = c.call(argv);
        let getredir = argv.len() == 2 && argv[1].eq_ignore_ascii_case("getredir");
        let n = self.norm(r.clone(), getredir);
        self.t.push((argv.join(" "), n));
        r
    }

    /// Records the next `n` things `c` reads (pushes, pipelined replies).
    fn recv(&mut self, c: &mut Conn, n: usize, label: &str) {
        for _ in 0..n {
            let r = c.read_reply().unwrap_or_else(|e| panic!("{label}: {e}"));
            let r = self.norm(r, false);
            self.t.push((label.to_string(), r));
        }
    }

    /// Sends a pipeline and records `n` replies/pushes.
    fn pipe(&mut self, c: &mut Conn, cmds: &[&[&str]], n: usize) {
        let mut req = Vec::new();
        for a in cmds {
            req.extend_from_slice(&encode_command(a));
        }
        c.send_raw(&req).unwrap();
        let label = cmds
            .iter()
            .map(|a| a.join(" "))
            .collect::<Vec<_>>()
            .join("; ");
        self.recv(c, n, &label);
    }

    /// Asserts the last recorded bytes (checks that hold without the reference too).
    #[track_caller]
    fn expect_last(&self, want: &[u8]) {
        let (label, got) = self.t.last().expect("a recorded step");
        assert_eq!(escape(got), escape(want), "{label}");
    }

    /// Records that nothing is pending on `c`: the next read is PING's reply.
    fn quiet(&mut self, c: &mut Conn, label: &str) {
        let r = c.call(&["PING"]);
        self.t.push((format!("quiet: {label}"), r));
    }

    /// The connection's id, hidden as `name` in what follows.
    fn id(&mut self, c: &mut Conn, name: &str) -> String {
        let id = client_id(c);
        self.ids.push((id.clone(), name.to_string()));
        id
    }

    /// Records an INFO field's value.
    fn info(&mut self, c: &mut Conn, field: &str) {
        let r = c.call(&["INFO", "everything"]);
        let v = info_field(&r, field).unwrap_or_else(|| panic!("no {field} in INFO"));
        self.t
            .push((format!("INFO {field}"), v.to_string().into_bytes()));
    }
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// A RESP3 connection (HELLO 3; its reply is not compared: it names the server).
fn resp3(s: &Server) -> Conn {
    let mut c = s.conn();
    c.call(&["HELLO", "3"]);
    c
}

/// Runs `f` on every server with a fresh [`Rec`] and asserts the transcripts are equal.
fn compare(extra: &[&str], f: impl Fn(&Server, &mut Rec)) {
    common::compare_transcripts(extra, |s| {
        let mut rec = Rec::default();
        f(s, &mut rec);
        rec.t
    })
}

/// Waits until the server dropped client `id` (CLIENT LIST ID no longer lists it).
fn wait_gone(w: &mut Conn, id: &str) {
    let gone = common::wait_for(Duration::from_secs(5), || {
        let r = w.call(&["CLIENT", "LIST", "ID", id]);
        !String::from_utf8_lossy(&r).contains("id=")
    });
    assert!(gone, "client {id} still connected");
}

const PUSH_K: &[u8] = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n";

#[test]
fn resp3_default_mode_invalidates_once_per_read() {
    compare(&[], |s, r| {
        let mut a = resp3(s);
        let mut w = s.conn();
        r.step(&mut a, &["CLIENT", "TRACKING", "ON"]);
        r.step(&mut a, &["CLIENT", "TRACKINGINFO"]);
        r.step(&mut a, &["CLIENT", "GETREDIR"]);
        r.step(&mut a, &["GET", "k"]);
        r.step(&mut w, &["SET", "k", "1"]);
        let got = a.read_reply().unwrap();
        assert_eq!(escape(&got), escape(PUSH_K), "{}", s.kind.name());
        r.t.push(("push".into(), got));
        // Forgotten after one invalidation: the next write sends nothing.
        r.step(&mut w, &["SET", "k", "2"]);
        r.quiet(&mut a, "second write, no read in between");
        // The client's own write: the push follows its reply.
        r.step(&mut a, &["GET", "k"]);
        r.pipe(
            &mut a,
            &[&["SET", "k", "3"], &["GET", "k"], &["MGET", "k", "x"]],
            4,
        );
        r.step(&mut w, &["MSET", "k", "1", "x", "2", "y", "3"]);
        r.recv(&mut a, 2, "MSET pushes");
        r.quiet(&mut a, "y never read");
        // In a transaction, after the whole EXEC reply.
        r.step(&mut a, &["GET", "k"]);
        r.pipe(
            &mut a,
            &[&["MULTI"], &["SET", "k", "5"], &["GET", "k"], &["EXEC"]],
            5,
        );
        // Reads of several keys, then a DEL of two of them.
        r.step(&mut w, &["MSET", "a", "1", "b", "1", "c", "1"]);
        r.step(&mut w, &["HSET", "h", "f", "v"]);
        r.step(&mut a, &["MGET", "a", "b", "c"]);
        r.step(&mut a, &["HGET", "h", "f"]);
        r.step(&mut w, &["DEL", "a", "c", "h"]);
        r.recv(&mut a, 3, "DEL pushes");
        r.info(&mut w, "tracking_clients");
        r.info(&mut w, "tracking_total_keys");
        r.info(&mut w, "tracking_total_items");
        r.step(&mut a, &["CLIENT", "TRACKING", "OFF"]);
        r.step(&mut w, &["SET", "b", "1"]);
        r.quiet(&mut a, "tracking off");
        r.step(&mut a, &["CLIENT", "TRACKINGINFO"]);
        r.step(&mut a, &["CLIENT", "GETREDIR"]);
        r.info(&mut w, "tracking_clients");
    });
}

#[test]
fn flush_sends_null_invalidation() {
    compare(&[], |s, r| {
        let mut a = resp3(s);
        let mut b = s.conn();
        let mut w = s.conn();
        r.step(&mut a, &["CLIENT", "TRACKING", "ON"]);
        r.step(&mut b, &["CLIENT", "TRACKING", "ON"]);
        // Every tracking client hears about a flush, whatever it read.
        r.step(&mut w, &["FLUSHALL"]);
        r.recv(&mut a, 1, "flushall push");
        r.expect_last(b">2\r\n$10\r\ninvalidate\r\n_\r\n");
        r.step(&mut a, &["GET", "k"]);
        r.step(&mut a, &["FLUSHALL"]);
        r.recv(&mut a, 1, "own flushall push");
        r.step(&mut w, &["SELECT", "3"]);
        r.step(&mut w, &["FLUSHDB"]);
        r.recv(&mut a, 1, "flushdb of another db");
        r.info(&mut w, "tracking_total_keys");
        // The table was emptied: a write to k sends nothing.
        r.step(&mut w, &["SELECT", "0"]);
        r.step(&mut w, &["SET", "k", "1"]);
        r.quiet(&mut a, "table emptied by the flush");
        r.quiet(&mut b, "RESP2 without redirection");
    });
}

#[test]
fn resp2_redirect_to_invalidate_subscriber() {
    compare(&[], |s, r| {
        let mut sub = s.conn();
        let mut a = s.conn();
        let mut w = s.conn();
        let sid = r.id(&mut sub, "SUB");
        r.step(&mut sub, &["SUBSCRIBE", "__redis__:invalidate"]);
        r.step(&mut a, &["CLIENT", "TRACKING", "ON", "REDIRECT", &sid]);
        r.step(&mut a, &["CLIENT", "GETREDIR"]);
        r.step(&mut a, &["CLIENT", "TRACKINGINFO"]);
        r.step(&mut a, &["GET", "k"]);
        r.step(&mut w, &["SET", "k", "1"]);
        r.recv(&mut sub, 1, "message");
        r.expect_last(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n");
        // The tracking client's own write goes to the subscriber too.
        r.step(&mut a, &["GET", "k"]);
        r.step(&mut a, &["SET", "k", "2"]);
        r.recv(&mut sub, 1, "message after own write");
        r.step(&mut w, &["FLUSHALL"]);
        r.recv(&mut sub, 1, "flush message");
        r.expect_last(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n");
        r.quiet(&mut a, "RESP2 tracking client");
        // A RESP3 tracking client redirecting to the RESP2 subscriber: the null of a flush
        // is in the tracking client's protocol.
        let mut b = resp3(s);
        r.step(&mut b, &["CLIENT", "TRACKING", "ON", "REDIRECT", &sid]);
        r.step(&mut b, &["FLUSHDB"]);
        r.recv(&mut sub, 2, "flush messages for a and b");
        r.quiet(&mut b, "redirected");
        // A redirection to a RESP2 client that is not subscribed delivers nothing.
        let mut plain = s.conn();
        let pid = r.id(&mut plain, "PLAIN");
        let mut c = s.conn();
        r.step(&mut c, &["CLIENT", "TRACKING", "ON", "REDIRECT", &pid]);
        r.step(&mut c, &["GET", "q"]);
        r.step(&mut w, &["SET", "q", "1"]);
        r.quiet(&mut plain, "not a subscriber");
        // A RESP3 target gets a push.
        let mut t3 = resp3(s);
        let tid = r.id(&mut t3, "T3");
        r.step(&mut c, &["CLIENT", "TRACKING", "ON", "REDIRECT", &tid]);
        r.step(&mut c, &["GET", "q"]);
        r.step(&mut w, &["SET", "q", "2"]);
        r.recv(&mut t3, 1, "push to RESP3 target");
    });
}

#[test]
fn redirect_client_gone() {
    compare(&[], |s, r| {
        let mut a = resp3(s);
        let mut w = s.conn();
        let mut t = s.conn();
        let tid = r.id(&mut t, "T");
        r.step(&mut a, &["CLIENT", "TRACKING", "ON", "REDIRECT", &tid]);
        r.step(&mut a, &["GET", "k"]);
        t.shutdown();
        drop(t);
        wait_gone(&mut w, &tid);
        r.step(&mut w, &["SET", "k", "1"]);
        r.recv(&mut a, 1, "redir broken");
        r.expect_last(b">2\r\n$21\r\ntracking-redir-broken\r\n:T\r\n");
        r.step(&mut a, &["CLIENT", "TRACKINGINFO"]);
        r.step(&mut a, &["CLIENT", "GETREDIR"]);
        // Each invalidation meets the broken redirection again, after the reply for an
        // own write.
        r.step(&mut a, &["GET", "k"]);
        r.pipe(&mut a, &[&["SET", "k", "2"]], 2);
        r.pipe(&mut a, &[&["FLUSHALL"]], 2);
        // A RESP2 client is only flagged.
        let mut b = s.conn();
        let mut u = s.conn();
        let uid = r.id(&mut u, "U");
        r.step(&mut b, &["CLIENT", "TRACKING", "ON", "REDIRECT", &uid]);
        r.step(&mut b, &["GET", "z"]);
        u.shutdown();
        drop(u);
        wait_gone(&mut w, &uid);
        r.step(&mut w, &["SET", "z", "1"]);
        r.quiet(&mut b, "RESP2 broken redirect");
        r.step(&mut b, &["CLIENT", "TRACKINGINFO"]);
        let bid = r.id(&mut b, "B");
        let list = w.call(&["CLIENT", "LIST", "ID", &bid]);
        let text = String::from_utf8_lossy(&list).into_owned();
        let flags = text
            .split(' ')
            .find(|f| f.starts_with("flags="))
            .unwrap_or("")
            .to_string();
        r.t.push(("CLIENT LIST flags".into(), flags.into_bytes()));
        // Turning tracking on again clears the flag.
        r.step(&mut b, &["CLIENT", "TRACKING", "ON"]);
        r.step(&mut b, &["CLIENT", "TRACKINGINFO"]);
    });
}

#[test]
fn bcast_with_prefixes() {
    compare(&[], |s, r| {
        let mut a = resp3(s);
        let mut w = s.conn();
        r.step(
            &mut a,
            &[
                "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:", "PREFIX", "obj:",
            ],
        );
        r.step(&mut a, &["CLIENT", "TRACKINGINFO"]);
        r.info(&mut w, "tracking_total_prefixes");
        // The keys of one event loop turn go out together, sorted, one message per
        // prefix.
        r.pipe(
            &mut w,
            &[
                &["SET", "user:2", "1"],
                &["SET", "user:1", "1"],
                &["SET", "other", "1"],
                &["SET", "obj:9", "1"],
                &["SET", "user:2", "2"],
            ],
            5,
        );
        r.recv(&mut a, 2, "bcast pushes");
        r.expect_last(b">2\r\n$10\r\ninvalidate\r\n*2\r\n$6\r\nuser:1\r\n$6\r\nuser:2\r\n");
        r.quiet(&mut a, "after bcast");
        // Without reading anything, and for its own writes too (no NOLOOP).
        r.step(&mut a, &["SET", "user:5", "x"]);
        r.recv(&mut a, 1, "own write");
        r.expect_last(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\nuser:5\r\n");
        // Prefix rules.
        r.step(
            &mut a,
            &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "use"],
        );
        r.expect_last(
            b"-ERR Prefix 'use' overlaps with an existing prefix 'user:'. Prefixes for a \
              single client must not overlap.\r\n",
        );
        r.step(
            &mut a,
            &[
                "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "zz", "PREFIX", "zzz",
            ],
        );
        r.step(
            &mut a,
            &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "zz"],
        );
        r.step(&mut a, &["CLIENT", "TRACKING", "ON"]);
        r.step(&mut a, &["CLIENT", "TRACKING", "ON", "BCAST", "NOLOOP"]);
        r.step(&mut a, &["CLIENT", "TRACKINGINFO"]);
        r.info(&mut w, "tracking_total_prefixes");
        // NOLOOP: its own writes are left out; a key under two prefixes comes twice.
        r.step(&mut a, &["SET", "user:1", "x"]);
        r.quiet(&mut a, "noloop own write");
        r.step(&mut w, &["SET", "user:2", "x"]);
        r.recv(&mut a, 2, "two prefixes match");
        r.step(&mut a, &["CLIENT", "TRACKING", "OFF"]);
        r.info(&mut w, "tracking_total_prefixes");
        r.step(&mut a, &["CLIENT", "TRACKING", "ON", "BCAST"]);
        r.step(&mut a, &["CLIENT", "TRACKINGINFO"]);
        r.step(&mut w, &["SET", "abc", "1"]);
        r.recv(&mut a, 1, "empty prefix");
        // Expired keys are broadcast too.
        r.step(&mut w, &["SET", "e", "1"]);
        r.recv(&mut a, 1, "set e");
        r.step(&mut w, &["PEXPIRE", "e", "1"]);
        r.recv(&mut a, 1, "pexpire e");
        // Lazily or actively expired, whichever comes first: one message.
        std::thread::sleep(Duration::from_millis(20));
        w.call(&["GET", "e"]);
        r.recv(&mut a, 1, "expired e");
    });
}

#[test]
fn optin_and_optout() {
    compare(&[], |s, r| {
        let mut a = resp3(s);
        let mut w = s.conn();
        r.step(&mut a, &["CLIENT", "TRACKING", "ON", "OPTIN"]);
        r.step(&mut a, &["GET", "k1"]);
        r.step(&mut a, &["CLIENT", "CACHING", "YES"]);
        r.step(&mut a, &["CLIENT", "TRACKINGINFO"]);
        r.step(&mut a, &["GET", "k2"]);
        // CACHING survives other CLIENT subcommands, not other commands.
        r.step(&mut a, &["CLIENT", "CACHING", "YES"]);
        a.call(&["CLIENT", "ID"]);
        r.step(&mut a, &["GET", "k3"]);
        r.step(&mut a, &["CLIENT", "CACHING", "YES"]);
        r.step(&mut a, &["PING"]);
        r.step(&mut a, &["GET", "k4"]);
        // ...and lasts for a whole transaction.
        r.pipe(
            &mut a,
            &[
                &["CLIENT", "CACHING", "YES"],
                &["MULTI"],
                &["GET", "k5"],
                &["GET", "k6"],
                &["EXEC"],
                &["GET", "k7"],
            ],
            6,
        );
        r.step(
            &mut w,
            &["MSET", "k1", "1", "k2", "1", "k3", "1", "k4", "1"],
        );
        r.recv(&mut a, 2, "optin pushes k2 k3");
        r.step(&mut w, &["MSET", "k5", "1", "k6", "1", "k7", "1"]);
        r.recv(&mut a, 2, "optin pushes k5 k6");
        r.quiet(&mut a, "k1 k4 k7 not tracked");
        r.step(&mut a, &["CLIENT", "TRACKING", "OFF"]);
        r.step(&mut a, &["CLIENT", "TRACKING", "ON", "OPTOUT"]);
        r.step(&mut a, &["GET", "k1"]);
        r.step(&mut a, &["CLIENT", "CACHING", "NO"]);
        r.step(&mut a, &["CLIENT", "TRACKINGINFO"]);
        r.expect_last(
            b"%3\r\n$5\r\nflags\r\n~3\r\n$2\r\non\r\n$6\r\noptout\r\n$10\r\ncaching-no\r\n\
              $8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*0\r\n",
        );
        r.step(&mut a, &["GET", "k2"]);
        r.step(&mut w, &["MSET", "k1", "2", "k2", "2"]);
        r.recv(&mut a, 1, "optout push k1");
        r.quiet(&mut a, "k2 not tracked");
        // Mode switches and CACHING errors.
        r.step(&mut a, &["CLIENT", "TRACKING", "ON", "OPTIN"]);
        r.step(&mut a, &["CLIENT", "TRACKING", "ON", "BCAST"]);
        r.step(&mut a, &["CLIENT", "CACHING", "YES"]);
        r.step(&mut a, &["CLIENT", "CACHING", "maybe"]);
        r.step(&mut a, &["CLIENT", "TRACKING", "ON"]);
        r.step(&mut a, &["CLIENT", "CACHING", "NO"]);
        r.step(&mut a, &["CLIENT", "TRACKING", "OFF"]);
        r.step(&mut a, &["CLIENT", "CACHING", "YES"]);
    });
}

#[test]
fn noloop_default_mode() {
    compare(&[], |s, r| {
        let mut a = resp3(s);
        let mut w = s.conn();
        r.step(&mut a, &["CLIENT", "TRACKING", "ON", "NOLOOP"]);
        r.step(&mut a, &["CLIENT", "TRACKINGINFO"]);
        r.step(&mut a, &["MGET", "k1", "k2"]);
        r.step(&mut a, &["SET", "k1", "x"]);
        r.quiet(&mut a, "own write");
        r.step(&mut w, &["SET", "k2", "x"]);
        r.recv(&mut a, 1, "other's write");
        // The own write still forgot the key: another client's write sends nothing.
        r.step(&mut w, &["SET", "k1", "y"]);
        r.quiet(&mut a, "k1 forgotten");
        r.info(&mut w, "tracking_total_keys");
    });
}

#[test]
fn expiry_invalidates() {
    // The key is read in the same request batch that sets it, so it can not have expired
    // yet, and is given far more than its TTL before the next access.
    let ttl_wait = Duration::from_millis(700);
    compare(&[], |s, r| {
        let mut a = resp3(s);
        let mut w = s.conn();
        r.step(&mut a, &["CLIENT", "TRACKING", "ON"]);
        r.step(&mut w, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
        // Expired on another client's access.
        r.pipe(
            &mut a,
            &[&["SET", "e1", "1", "PX", "100"], &["GET", "e1"]],
            2,
        );
        std::thread::sleep(ttl_wait);
        r.step(&mut w, &["GET", "e1"]);
        r.recv(&mut a, 1, "lazy expiry by another client");
        // Expired on the tracking client's own access: after its reply, and the key is
        // tracked again by that read.
        r.pipe(
            &mut a,
            &[&["SET", "e2", "1", "PX", "100"], &["GET", "e2"]],
            2,
        );
        std::thread::sleep(ttl_wait);
        r.pipe(&mut a, &[&["GET", "e2"], &["PING"]], 3);
        r.info(&mut w, "tracking_total_keys");
        // Active expiry.
        r.step(&mut w, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
        r.pipe(
            &mut a,
            &[&["SET", "e3", "1", "PX", "100"], &["GET", "e3"]],
            2,
        );
        r.recv(&mut a, 1, "active expiry");
        r.info(&mut w, "tracking_total_keys");
    });
}

#[test]
fn eviction_invalidates() {
    compare(&["--maxmemory-policy", "allkeys-lru"], |s, r| {
        let mut a = resp3(s);
        let mut w = s.conn();
        r.step(&mut a, &["CLIENT", "TRACKING", "ON"]);
        r.step(&mut w, &["SET", "k", "v"]);
        r.step(&mut a, &["GET", "k"]);
        // A limit far below the dataset: every key goes, and the tracking client hears.
        w.call(&["CONFIG", "SET", "maxmemory", "1"]);
        w.call(&["SET", "x", "1"]);
        r.recv(&mut a, 1, "evicted");
        w.call(&["CONFIG", "SET", "maxmemory", "0"]);
        r.step(&mut w, &["EXISTS", "k"]);
    });
}

#[test]
fn table_max_keys_evicts_tracked_keys() {
    for s in servers(&[]) {
        let name = s.kind.name();
        let mut a = resp3(&s);
        let mut w = s.conn();
        w.call(&["CONFIG", "SET", "tracking-table-max-keys", "2"]);
        a.call(&["CLIENT", "TRACKING", "ON"]);
        a.call(&["MGET", "k1", "k2", "k3", "k4", "k5"]);
        // Before the next command the table shrinks to the limit: three random keys are
        // invalidated, before that command's reply.
        a.send(&["PING"]).unwrap();
        let mut keys = Vec::new();
        for _ in 0..3 {
            let p = a.read_reply().unwrap();
            let text = String::from_utf8_lossy(&p).into_owned();
            assert!(
                text.starts_with(">2\r\n$10\r\ninvalidate\r\n*1\r\n"),
                "{name}: {text:?}"
            );
            keys.push(text.rsplit("\r\n").nth(1).unwrap().to_string());
        }
        assert_eq!(a.read_reply().unwrap(), b"+PONG\r\n", "{name}");
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 3, "{name}: {keys:?}");
        assert!(keys.iter().all(|k| k.len() == 2 && k.starts_with('k')));
        let info = w.call(&["INFO", "stats"]);
        assert_eq!(info_field(&info, "tracking_total_keys"), Some(2), "{name}");
        assert_eq!(info_field(&info, "tracking_total_items"), Some(2), "{name}");
    }
}

#[test]
fn tracking_info_and_errors() {
    compare(&[], |s, r| {
        let mut a = s.conn();
        let mut other = s.conn();
        let oid = r.id(&mut other, "OTHER");
        r.step(&mut a, &["CLIENT", "TRACKINGINFO"]);
        r.step(&mut a, &["CLIENT", "GETREDIR"]);
        for args in [
            &["ON", "PREFIX", "x"][..],
            &["ON", "OPTIN", "OPTOUT"],
            &["ON", "BCAST", "OPTIN"],
            &["ON", "BCAST", "OPTOUT"],
            &["ON", "REDIRECT", "999999"],
            &["ON", "REDIRECT", "abc"],
            &["ON", "REDIRECT", "0"],
            &["ON", "REDIRECT", "-3"],
            &["ON", "REDIRECT", &oid, "REDIRECT", &oid],
            &["ON", "FOO"],
            &["MAYBE"],
            &["ON", "PREFIX"],
            &["ON", "REDIRECT"],
            &["OFF", "FOO"],
            &["ON", "BCAST", "PREFIX", "a", "PREFIX", "ab"],
            &["ON", "BCAST", "PREFIX", "ab", "PREFIX", "a"],
            &["ON", "BCAST", "PREFIX", "a", "PREFIX", "b", "PREFIX", "a"],
            &["ON", "BCAST", "PREFIX", "a", "PREFIX", "b", "PREFIX", "bc"],
            &["on", "bcast", "prefix", "p:", "noloop", "redirect", &oid],
        ] {
            let mut argv = vec!["CLIENT", "TRACKING"];
            argv.extend_from_slice(args);
            r.step(&mut a, &argv);
        }
        r.step(&mut a, &["CLIENT", "TRACKINGINFO"]);
        r.step(&mut a, &["CLIENT", "GETREDIR"]);
        r.step(&mut a, &["CLIENT", "TRACKING", "OFF"]);
        r.step(&mut a, &["CLIENT", "CACHING", "YES"]);
        r.step(&mut a, &["CLIENT", "CACHING"]);
        r.step(&mut a, &["CLIENT", "CACHING", "YES", "x"]);
        r.step(&mut a, &["CLIENT", "TRACKING"]);
        r.step(&mut a, &["CLIENT", "GETREDIR", "x"]);
        r.step(&mut a, &["CLIENT", "TRACKINGINFO", "x"]);
        // RESP3 forms: a map and a set.
        r.step(
            &mut a,
            &[
                "CLIENT", "TRACKING", "ON", "OPTOUT", "NOLOOP", "REDIRECT", &oid,
            ],
        );
        r.step(&mut a, &["CLIENT", "CACHING", "NO"]);
        a.call(&["HELLO", "3"]);
        r.step(&mut a, &["CLIENT", "TRACKINGINFO"]);
        r.step(&mut a, &["CLIENT", "GETREDIR"]);
        r.expect_last(b":OTHER\r\n");
        r.info(&mut other, "tracking_clients");
        // RESET turns tracking off.
        r.step(&mut a, &["RESET"]);
        r.step(&mut a, &["CLIENT", "TRACKINGINFO"]);
        r.info(&mut other, "tracking_clients");
        // So does closing the connection.
        r.step(&mut a, &["CLIENT", "TRACKING", "ON"]);
        r.info(&mut other, "tracking_clients");
        a.shutdown();
        drop(a);
        assert!(common::wait_for(Duration::from_secs(5), || {
            info_field(&other.call(&["INFO", "clients"]), "tracking_clients") == Some(0)
        }));
        r.step(
            &mut other,
            &["COMMAND", "INFO", "client|tracking", "client|caching"],
        );
        r.step(
            &mut other,
            &["COMMAND", "INFO", "client|trackinginfo", "client|getredir"],
        );
    });
}
