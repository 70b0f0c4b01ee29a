//! DEBUG DIGEST / DEBUG DIGEST-VALUE against the reference: the same commands build
//! the same dataset on both servers (every type and encoding), the digests must match
//! byte for byte. Also DUMP/RESTORE across the two servers.

mod common;

use common::{escape, require_reference, split_args, Conn, Server};

/// Commands building a dataset with every type and encoding (deterministic: explicit
/// stream IDs, relative TTLs only change absolute times, which the digest ignores).
fn dataset_commands() -> Vec<Vec<Vec<u8>>> {
    let mut v: Vec<String> = vec![
        // strings: int, embstr, raw
        "SET s:int 12345".into(),
        "SET s:neg -9223372036854775808".into(),
        "SET s:emb hello".into(),
        "SET s:raw aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        "SET s:appended x".into(),
        "APPEND s:appended yz".into(),
        "SET s:empty \"\"".into(),
        "SET s:ttl v EX 1000".into(),
        "SET s:pttl 42 PX 100000".into(),
        // lists
        "RPUSH l:lp a b 1 2 -3 ccc".into(),
        "LPUSH l:lp z".into(),
        "RPUSH l:ttl x y".into(),
        "EXPIRE l:ttl 5000".into(),
        // hashes
        "HSET h:lp f1 v1 f2 2 3 v3".into(),
        "HSET h:ttl a b".into(),
        "PEXPIRE h:ttl 900000".into(),
        // sets
        "SADD set:int 1 2 3 -5 100000".into(),
        "SADD set:lp a b c 1".into(),
        // zsets
        "ZADD z:lp 1 a 2.5 b -0.1 c 1e300 d 3 100 -inf ninf inf pinf".into(),
        "ZADD z:lp2 0 x 1.0000000000000002 y 0.1 z 123456789012 w".into(),
        // streams
        "XADD st:1 1-1 f v g 1".into(),
        "XADD st:1 1-2 f w g 2".into(),
        "XADD st:1 5-0 other 12345 long aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        "XADD st:1 7-3 f x".into(),
        "XDEL st:1 1-2".into(),
        "XGROUP CREATE st:1 g1 0".into(),
        "XGROUP CREATE st:1 g2 $".into(),
        "XREADGROUP GROUP g1 alice COUNT 2 STREAMS st:1 >".into(),
        "XGROUP CREATECONSUMER st:1 g1 bob".into(),
        "XADD st:empty 3-3 a b".into(),
        "XDEL st:empty 3-3".into(),
        "XADD st:ttl 9-9 a b".into(),
        "EXPIRE st:ttl 100000".into(),
    ];
    // quicklist lists (plain and compressed)
    let mut big = String::from("RPUSH l:ql");
    for i in 0..300 {
        big.push_str(&format!(" elem-{i} {i}"));
    }
    v.push(big);
    let mut huge = String::from("RPUSH l:qlbig");
    for i in 0..5 {
        huge.push_str(&format!(" {}", "x".repeat(70 + i)));
    }
    v.push(huge);
    // hashtable hash (by count and by value size) and one with field TTLs
    let mut h = String::from("HSET h:ht");
    for i in 0..200 {
        h.push_str(&format!(" field{i} val{i}"));
    }
    v.push(h);
    v.push(format!("HSET h:long f {}", "v".repeat(100)));
    v.push("HSET h:fttl a 1 b 2 c 3".into());
    v.push("HEXPIRE h:fttl 100000 FIELDS 2 a b".into());
    // hashtable sets: many ints, long strings
    let mut s = String::from("SADD set:ht");
    for i in 0..700 {
        s.push_str(&format!(" {i}"));
    }
    v.push(s);
    let mut s = String::from("SADD set:htstr");
    for i in 0..200 {
        s.push_str(&format!(" member{i}"));
    }
    v.push(s);
    // skiplist zset
    let mut z = String::from("ZADD z:sl");
    for i in 0..200 {
        z.push_str(&format!(" {}.{} m{}", i / 3, i % 7, i));
    }
    v.push(z);
    v.push(format!("ZADD z:long 1 {}", "m".repeat(80)));
    // stream with many entries (several nodes)
    for i in 1..=250 {
        v.push(format!("XADD st:big {i}-0 k{} v{i} n {i}", i % 5));
    }
    v.push("XTRIM st:big MINID 10".into());
    v.push("XGROUP CREATE st:big grp 0".into());
    v.push("XREADGROUP GROUP grp c1 COUNT 10 STREAMS st:big >".into());
    v.push("XREADGROUP GROUP grp c2 COUNT 5 STREAMS st:big >".into());
    v.push("XACK st:big grp 12-0".into());
    v.into_iter()
        .map(|l| split_args(l.as_bytes()).expect("bad test command"))
        .collect()
}

/// Config making small quicklist nodes with compression, applied to both servers.
const CONFIG: &[&str] = &[
    "--list-max-listpack-size",
    "4",
    "--list-compress-depth",
    "1",
];

fn keys_of(cmds: &[Vec<Vec<u8>>]) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for c in cmds {
        if c.len() > 1 && !c[0].eq_ignore_ascii_case(b"XREADGROUP") {
            let k = if c[0].eq_ignore_ascii_case(b"XGROUP") {
                c[2].clone()
            } else {
                c[1].clone()
            };
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    keys
}

fn build(c: &mut Conn, cmds: &[Vec<Vec<u8>>]) {
    for cmd in cmds {
        let r = c.call(cmd);
        assert!(
            !r.starts_with(b"-"),
            "{:?}: {}",
            String::from_utf8_lossy(&cmd.concat()),
            escape(&r)
        );
    }
}

fn pair() -> Option<(Server, Server)> {
    let bin = require_reference()?;
    Some((Server::ours(CONFIG), Server::reference(&bin, CONFIG)))
}

#[test]
fn digest_empty_is_zeros() {
    let Some((ours, reference)) = pair() else {
        return;
    };
    for s in [&ours, &reference] {
        let mut c = s.conn();
        assert_eq!(
            escape(&c.call(&["DEBUG", "DIGEST"])),
            escape(format!("+{}\r\n", "0".repeat(40)).as_bytes())
        );
        assert_eq!(
            escape(&c.call(&["DEBUG", "DIGEST-VALUE", "nokey"])),
            escape(format!("*1\r\n+{}\r\n", "0".repeat(40)).as_bytes())
        );
        assert_eq!(escape(&c.call(&["DEBUG", "DIGEST-VALUE"])), "*0\\r\\n");
    }
}

#[test]
fn digest_matches_reference_for_every_type() {
    let Some((ours, reference)) = pair() else {
        return;
    };
    let cmds = dataset_commands();
    let keys = keys_of(&cmds);
    let mut a = ours.conn();
    let mut b = reference.conn();
    build(&mut a, &cmds);
    build(&mut b, &cmds);
    // the same data in another database changes the digest
    for c in [&mut a, &mut b] {
        c.call(&["SELECT", "3"]);
        c.call(&["RPUSH", "l:lp", "a", "b"]);
        c.call(&["SET", "s:int", "7"]);
        c.call(&["SELECT", "0"]);
    }
    for k in &keys {
        let enc_a = a.call(&[b"OBJECT".as_slice(), b"ENCODING", k]);
        let enc_b = b.call(&[b"OBJECT".as_slice(), b"ENCODING", k]);
        assert_eq!(escape(&enc_a), escape(&enc_b), "encoding of {}", escape(k));
        let da = a.call(&[b"DEBUG".as_slice(), b"DIGEST-VALUE", k]);
        let db = b.call(&[b"DEBUG".as_slice(), b"DIGEST-VALUE", k]);
        assert_eq!(escape(&da), escape(&db), "DIGEST-VALUE of {}", escape(k));
    }
    let mut multi: Vec<&[u8]> = vec![b"DEBUG", b"DIGEST-VALUE"];
    multi.extend(keys.iter().map(|k| k.as_slice()));
    multi.push(b"missing");
    assert_eq!(escape(&a.call(&multi)), escape(&b.call(&multi)));
    let da = a.call(&["DEBUG", "DIGEST"]);
    let db = b.call(&["DEBUG", "DIGEST"]);
    assert_eq!(escape(&da), escape(&db), "DEBUG DIGEST");
    assert_ne!(escape(&da), format!("+{}\\r\\n", "0".repeat(40)));
    // order matters for lists, not for sets
    for c in [&mut a, &mut b] {
        c.call(&["RPUSH", "o1", "a", "b"]);
        c.call(&["RPUSH", "o2", "b", "a"]);
        c.call(&["SADD", "u1", "a", "b"]);
        c.call(&["SADD", "u2", "b", "a"]);
        let r = c.call(&["DEBUG", "DIGEST-VALUE", "o1", "o2", "u1", "u2"]);
        let parts: Vec<&[u8]> = r.split(|&x| x == b'\n').collect();
        assert_ne!(parts[1], parts[2]);
        assert_eq!(parts[3], parts[4]);
    }
}
