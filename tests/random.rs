//! Randomized differential test: a seeded stream of random commands on a few keys is sent
//! to valkey-rs and to the reference server; every reply must be identical (after putting
//! the replies whose order upstream leaves unspecified in a canonical order), and so must
//! a typed dump of the whole keyspace (sorted KEYS, TYPE, OBJECT ENCODING and the value
//! read back with the type's commands) taken every few hundred commands and at the end.
//!
//! Few keys and small member pools make the commands collide: wrong types, empty
//! collections being deleted, encodings converting back and forth (a second pass runs
//! with tiny `*-max-listpack-*` thresholds so conversions happen constantly).
//!
//! Environment: `RANDOM_SEED=n` runs only that seed, `RANDOM_OPS=n` commands per pass
//! (default 2500). `make soak` runs long seeds.

mod common;

use common::{escape_short, resp_items, show_argv, Conn, Rng, Server};

/// Every key the stream touches: a pair per type (so collections grow deep) and two
/// shared keys (so types collide: WRONGTYPE, overwrites, conversions by store commands).
const KEYS: &[&str] = &["l0", "l1", "h0", "h1", "s0", "s1", "z0", "z1", "k0", "k1"];

/// The sorted set lex-range commands use (see op 47 in [`gen`]); not in [`KEYS`] so that
/// no other command gives it a different score.
const LEX_KEY: &str = "zlex";

/// A key for a command of the family of `n` (see [`gen`]): mostly that type's own keys.
fn key_for(r: &mut Rng, n: u64) -> String {
    let own: &[&str] = match n {
        0..=13 => &["l0", "l1"],
        14..=25 => &["h0", "h1"],
        26..=36 => &["s0", "s1"],
        // Sorted-set algebra also takes sets.
        37..=51 | 53..=55 => &["z0", "z1"],
        52 => &["z0", "z1", "s0"],
        _ => KEYS,
    };
    if r.chance(85) {
        r.pick(own).to_string()
    } else {
        r.pick(KEYS).to_string()
    }
}

fn member(r: &mut Rng) -> String {
    match r.below(10) {
        0..=3 => r.range(-3, 12).to_string(),
        4..=7 => ["a", "b", "c", "d", "e", "f", "g", "h"][r.below(8) as usize].to_string(),
        8 => format!("m{}", r.below(40)),
        // Long enough to exceed the *-max-listpack-value thresholds (64 bytes).
        _ => format!("{}{}", "x".repeat(70), r.below(4)),
    }
}

fn score(r: &mut Rng) -> String {
    match r.below(8) {
        0 => "inf".into(),
        1 => "-inf".into(),
        2 => format!("{}.5", r.range(-5, 5)),
        _ => r.range(-5, 10).to_string(),
    }
}

fn idx(r: &mut Rng) -> String {
    r.range(-12, 12).to_string()
}

/// One random command as argv, plus whether its reply is an unordered collection.
fn gen(r: &mut Rng) -> (Vec<String>, Order) {
    let n = r.below(64);
    let k = key_for(r, n);
    let k2 = key_for(r, n);
    let m = member(r);
    let mut v: Vec<String>;
    let mut order = Order::Exact;
    macro_rules! a {
        ($($x:expr),*) => { v = vec![$($x.to_string()),*] };
    }
    match n {
        // Lists
        0 => {
            a!(r.pick(&["LPUSH", "RPUSH"]), k, m);
            for _ in 0..r.below(4) {
                v.push(member(r));
            }
        }
        1 => a!(r.pick(&["LPUSHX", "RPUSHX"]), k, m),
        2 => {
            a!(r.pick(&["LPOP", "RPOP"]), k);
            if r.chance(50) {
                v.push(r.range(0, 4).to_string());
            }
        }
        3 => a!("LRANGE", k, idx(r), idx(r)),
        4 => a!("LINDEX", k, idx(r)),
        5 => a!("LSET", k, idx(r), m),
        6 => a!("LINSERT", k, r.pick(&["BEFORE", "AFTER"]), member(r), m),
        7 => a!("LREM", k, r.range(-2, 2), m),
        8 => a!("LTRIM", k, idx(r), idx(r)),
        9 => {
            a!("LPOS", k, m);
            if r.chance(50) {
                v.extend(["RANK".into(), r.pick(&["1", "-1", "2", "-2"]).into()]);
            }
            if r.chance(50) {
                v.extend(["COUNT".into(), r.range(0, 3).to_string()]);
            }
        }
        10 => a!(
            "LMOVE",
            k,
            k2,
            r.pick(&["LEFT", "RIGHT"]),
            r.pick(&["LEFT", "RIGHT"])
        ),
        11 => a!("RPOPLPUSH", k, k2),
        12 => a!(
            "LMPOP",
            2,
            k,
            k2,
            r.pick(&["LEFT", "RIGHT"]),
            "COUNT",
            r.range(1, 3)
        ),
        13 => a!("LLEN", k),
        // Hashes
        14 | 15 => {
            a!("HSET", k, m, member(r));
            for _ in 0..r.below(3) {
                v.push(member(r));
                v.push(member(r));
            }
        }
        16 => a!("HSETNX", k, m, member(r)),
        17 => a!("HGET", k, m),
        18 => a!("HMGET", k, m, member(r)),
        19 => {
            a!("HGETALL", k);
            order = Order::Pairs;
        }
        20 => a!("HDEL", k, m, member(r)),
        21 => a!(r.pick(&["HLEN", "HSTRLEN", "HEXISTS"]), k),
        22 => {
            a!(r.pick(&["HKEYS", "HVALS"]), k);
            order = Order::Sorted;
        }
        23 => a!("HINCRBY", k, m, r.range(-5, 5)),
        24 => a!("HINCRBYFLOAT", k, m, format!("{}.25", r.range(-3, 3))),
        25 => a!("HSTRLEN", k, m),
        // Sets
        26 | 27 => {
            a!("SADD", k, m);
            for _ in 0..r.below(4) {
                v.push(member(r));
            }
        }
        28 => a!("SREM", k, m, member(r)),
        29 => {
            a!("SMEMBERS", k);
            order = Order::Sorted;
        }
        30 => a!("SISMEMBER", k, m),
        31 => a!("SMISMEMBER", k, m, member(r)),
        32 => a!("SCARD", k),
        33 => a!("SMOVE", k, k2, m),
        34 => {
            a!(r.pick(&["SINTER", "SUNION", "SDIFF"]), k, k2);
            order = Order::Sorted;
        }
        35 => a!(
            r.pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]),
            key_for(r, n),
            k,
            k2
        ),
        36 => a!("SINTERCARD", 2, k, k2, "LIMIT", r.range(0, 3)),
        // Sorted sets
        37 | 38 => {
            a!("ZADD", k);
            for o in ["NX", "XX", "GT", "LT", "CH"] {
                if r.chance(8) {
                    v.push(o.into());
                }
            }
            v.push(score(r));
            v.push(m);
            if r.chance(40) {
                v.push(score(r));
                v.push(member(r));
            }
        }
        39 => a!("ZINCRBY", k, score(r), m),
        40 => a!("ZREM", k, m, member(r)),
        41 => a!("ZCARD", k),
        42 => a!("ZSCORE", k, m),
        43 => a!("ZMSCORE", k, m, member(r)),
        44 => a!(r.pick(&["ZRANK", "ZREVRANK"]), k, m),
        45 => {
            a!("ZRANGE", k, idx(r), idx(r));
            if r.chance(50) {
                v.push("WITHSCORES".into());
            }
        }
        46 => a!(
            r.pick(&["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]),
            k,
            r.pick(&["-inf", "(1", "0", "3"]),
            r.pick(&["+inf", "(5", "5", "2"]),
            "WITHSCORES"
        ),
        // Lex ranges are only defined when all scores are equal (upstream leaves other
        // cases unspecified): they get a key of their own that only ZADD ... 0 writes.
        47 if r.chance(40) => a!("ZADD", LEX_KEY, 0, m),
        47 if r.chance(20) => a!(
            "ZREMRANGEBYLEX",
            LEX_KEY,
            r.pick(&["[c", "(a", "-"]),
            r.pick(&["[e", "(g"])
        ),
        47 => a!(
            r.pick(&["ZRANGEBYLEX", "ZREVRANGEBYLEX", "ZLEXCOUNT"]),
            LEX_KEY,
            r.pick(&["-", "[a", "(c", "+"]),
            r.pick(&["+", "[f", "(d", "-"])
        ),
        48 => a!(
            "ZCOUNT",
            k,
            r.pick(&["-inf", "(1", "0"]),
            r.pick(&["+inf", "(5", "5"])
        ),
        49 => {
            a!(r.pick(&["ZPOPMIN", "ZPOPMAX"]), k);
            if r.chance(50) {
                v.push(r.range(0, 3).to_string());
            }
        }
        50 => a!("ZREMRANGEBYRANK", k, idx(r), idx(r)),
        51 => a!(
            "ZREMRANGEBYSCORE",
            k,
            r.pick(&["-inf", "(1", "0"]),
            r.pick(&["+inf", "(5", "3"])
        ),
        52 => a!(
            r.pick(&["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"]),
            key_for(r, 40),
            2,
            k,
            k2
        ),
        53 => {
            a!(
                r.pick(&["ZUNION", "ZINTER", "ZDIFF"]),
                2,
                k,
                k2,
                "WITHSCORES"
            );
        }
        54 => a!(
            "ZMPOP",
            2,
            k,
            k2,
            r.pick(&["MIN", "MAX"]),
            "COUNT",
            r.range(1, 3)
        ),
        55 => a!("ZRANGESTORE", key_for(r, n), k, idx(r), idx(r)),
        // Keys and strings
        56 => a!("SET", k, m),
        57 => a!("DEL", k),
        58 => a!("EXISTS", k, k2),
        59 => a!("RENAME", k, k2),
        60 => a!("COPY", k, k2, "REPLACE"),
        61 => a!("TYPE", k),
        62 => {
            a!("SORT", k, "ALPHA");
            if r.chance(50) {
                v.extend([
                    "LIMIT".into(),
                    r.range(0, 2).to_string(),
                    r.range(1, 4).to_string(),
                ]);
            }
            if r.chance(30) {
                v.push("DESC".into());
            }
        }
        _ => a!("OBJECT", "ENCODING", k),
    }
    (v, order)
}

#[derive(Clone, Copy, PartialEq)]
enum Order {
    Exact,
    /// An array of elements in unspecified order.
    Sorted,
    /// A flat array (or RESP3 map) of field/value pairs in unspecified order.
    Pairs,
}

/// Puts an unordered reply in canonical order (elements, or pairs, sorted by bytes).
fn canonical(reply: &[u8], order: Order) -> Vec<u8> {
    if order == Order::Exact {
        return reply.to_vec();
    }
    let Some((head, mut items)) = resp_items(reply) else {
        return reply.to_vec();
    };
    let mut out = head.to_vec();
    if order == Order::Pairs {
        let mut pairs: Vec<Vec<u8>> = items.chunks(2).map(|c| c.concat()).collect();
        pairs.sort();
        out.extend(pairs.concat());
    } else {
        items.sort();
        out.extend(items.concat());
    }
    out
}

/// A typed dump of the keyspace: what both servers must agree on.
fn dump(c: &mut Conn) -> Vec<String> {
    let mut out = Vec::new();
    let keys = canonical(&c.call(&["KEYS", "*"]), Order::Sorted);
    out.push(format!("KEYS {}", escape_short(&keys, 200)));
    for k in KEYS.iter().chain([&LEX_KEY]) {
        let t = c.call(&["TYPE", k]);
        let enc = c.call(&["OBJECT", "ENCODING", k]);
        let (val, order) = match &t[..] {
            b"+string\r\n" => (c.call(&["GET", k]), Order::Exact),
            b"+list\r\n" => (c.call(&["LRANGE", k, "0", "-1"]), Order::Exact),
            b"+set\r\n" => (c.call(&["SMEMBERS", k]), Order::Sorted),
            b"+hash\r\n" => (c.call(&["HGETALL", k]), Order::Pairs),
            b"+zset\r\n" => (
                c.call(&["ZRANGE", k, "0", "-1", "WITHSCORES"]),
                Order::Exact,
            ),
            _ => (Vec::new(), Order::Exact),
        };
        out.push(format!(
            "{} {} {} {}",
            k,
            escape_short(&t, 40),
            escape_short(&enc, 40),
            escape_short(&canonical(&val, order), 2000)
        ));
    }
    out
}

fn run_pass(
    seed: u64,
    ops: usize,
    tiny: bool,
    ours: &Server,
    theirs: &Server,
) -> Result<(), String> {
    let mut a = ours.conn();
    let mut b = theirs.conn();
    let mut setup: Vec<Vec<&str>> = vec![vec!["FLUSHALL"]];
    if tiny {
        setup.push(vec![
            "CONFIG",
            "SET",
            "list-max-listpack-size",
            "4",
            "hash-max-listpack-entries",
            "4",
            "set-max-intset-entries",
            "4",
            "set-max-listpack-entries",
            "4",
            "zset-max-listpack-entries",
            "4",
        ]);
    } else {
        setup.push(vec![
            "CONFIG",
            "SET",
            "list-max-listpack-size",
            "-2",
            "hash-max-listpack-entries",
            "128",
            "set-max-intset-entries",
            "512",
            "set-max-listpack-entries",
            "128",
            "zset-max-listpack-entries",
            "128",
        ]);
    }
    for s in &setup {
        let (x, y) = (a.call(s), b.call(s));
        if x != y {
            return Err(format!(
                "setup {:?}: {} vs {}",
                s,
                escape_short(&x, 200),
                escape_short(&y, 200)
            ));
        }
    }
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut history: Vec<String> = Vec::new();
    for i in 0..ops {
        let (argv, order) = gen(&mut r);
        history.push(show_argv(&argv));
        let x = canonical(&a.call(&argv), order);
        let y = canonical(&b.call(&argv), order);
        if x != y {
            let tail = history[history.len().saturating_sub(15)..].join("\n    ");
            return Err(format!(
                "seed {} tiny={} op {}: {}\n  valkey-rs: {}\n  reference: {}\n  last commands:\n    {}",
                seed,
                tiny,
                i,
                show_argv(&argv),
                escape_short(&x, 400),
                escape_short(&y, 400),
                tail
            ));
        }
        if i % 250 == 249 || i + 1 == ops {
            let (da, db) = (dump(&mut a), dump(&mut b));
            if da != db {
                let tail = history[history.len().saturating_sub(15)..].join("\n    ");
                return Err(format!(
                    "seed {} tiny={} dump after op {} differs:\n  valkey-rs: {:#?}\n  reference: {:#?}\n  last commands:\n    {}",
                    seed, tiny, i, da, db, tail
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn random_commands_match_reference() {
    let Some(ref_bin) = common::require_reference() else {
        return;
    };
    let ops = common::repl::env_num("RANDOM_OPS", 2500) as usize;
    let seeds = common::repl::env_seeds("RANDOM_SEED", &[1, 2, 3]);
    let ours = Server::ours(&[]);
    let theirs = Server::reference(&ref_bin, &[]);
    let mut failures = Vec::new();
    for &seed in &seeds {
        for tiny in [false, true] {
            if let Err(e) = run_pass(seed, ops, tiny, &ours, &theirs) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn canonical_orders_sets_and_pairs() {
    let r = b"*3\r\n$1\r\nc\r\n$1\r\na\r\n:5\r\n";
    assert_eq!(
        canonical(r, Order::Sorted),
        b"*3\r\n$1\r\na\r\n$1\r\nc\r\n:5\r\n"
    );
    let p = b"*4\r\n$1\r\nz\r\n$1\r\n1\r\n$1\r\na\r\n$1\r\n2\r\n";
    assert_eq!(
        canonical(p, Order::Pairs),
        b"*4\r\n$1\r\na\r\n$1\r\n2\r\n$1\r\nz\r\n$1\r\n1\r\n"
    );
    assert_eq!(canonical(b"$-1\r\n", Order::Sorted), b"$-1\r\n");
}
