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
    common::ours_and_reference(CONFIG)
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

// ---------------------------------------------------------------------------------------
// DUMP / RESTORE
// ---------------------------------------------------------------------------------------

/// CRC-64/Jones (reflected, as the RDB footer).
fn crc64(data: &[u8]) -> u64 {
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5;
    let mut crc = 0u64;
    for &b in data {
        crc ^= b as u64;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// A payload around `body` (type byte + value) with RDB version `ver` and a valid CRC.
fn payload(body: &[u8], ver: u16) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&ver.to_le_bytes());
    let crc = crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

/// Sends the same commands to both servers and asserts equal replies.
#[track_caller]
fn same(a: &mut Conn, b: &mut Conn, cmd: &[&[u8]]) -> Vec<u8> {
    common::same(a, b, cmd)
}

#[test]
fn crc64_check_value() {
    assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
}

#[test]
fn restore_errors_match_reference() {
    let Some((ours, reference)) = pair() else {
        return;
    };
    let mut a = ours.conn();
    let mut b = reference.conn();
    // A string "v" payload as the reference writes it.
    let good = payload(b"\x00\x01v", 80);
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 1;
    let bad_type = payload(b"\x08\x01v", 80);
    let opcode_type = payload(b"\xfe\x01v", 80);
    let cases: Vec<Vec<Vec<u8>>> = vec![
        vec![b"k".to_vec(), b"0".to_vec(), b"".to_vec()],
        vec![b"k".to_vec(), b"0".to_vec(), b"123456789".to_vec()],
        vec![b"k".to_vec(), b"0".to_vec(), bad_crc.clone()],
        vec![b"k".to_vec(), b"0".to_vec(), payload(b"\x00\x01v", 81)],
        vec![b"k".to_vec(), b"0".to_vec(), payload(b"\x00\x01v", 0)],
        vec![b"k".to_vec(), b"0".to_vec(), payload(b"\x00\x01v", 12)],
        vec![b"k".to_vec(), b"0".to_vec(), payload(b"\x00\x01v", 79)],
        vec![b"k".to_vec(), b"0".to_vec(), payload(b"\x00\x01v", 0x150)],
        vec![b"k".to_vec(), b"0".to_vec(), bad_type],
        vec![b"k".to_vec(), b"0".to_vec(), opcode_type],
        vec![b"k".to_vec(), b"0".to_vec(), payload(b"", 80)],
        vec![b"k".to_vec(), b"-1".to_vec(), good.clone()],
        vec![b"k".to_vec(), b"abc".to_vec(), good.clone()],
        vec![b"k".to_vec(), b"-1".to_vec(), bad_crc.clone()],
    ];
    for args in &cases {
        let mut cmd: Vec<&[u8]> = vec![b"RESTORE"];
        cmd.extend(args.iter().map(|x| x.as_slice()));
        same(&mut a, &mut b, &cmd);
    }
    // options
    let opts: &[&[&[u8]]] = &[
        &[b"REPLACE", b"FOO"],
        &[b"IDLETIME"],
        &[b"IDLETIME", b"-1"],
        &[b"IDLETIME", b"x"],
        &[b"FREQ", b"256"],
        &[b"FREQ", b"-1"],
        &[b"FREQ", b"1.5"],
        &[b"FREQ", b"1", b"IDLETIME", b"1"],
        &[b"IDLETIME", b"1", b"FREQ", b"1"],
        &[b"ABSTTL", b"ABSTTL", b"REPLACE", b"IDLETIME"],
    ];
    for o in opts {
        let mut cmd: Vec<&[u8]> = vec![b"RESTORE", b"k", b"0", &bad_crc];
        cmd.extend_from_slice(o);
        same(&mut a, &mut b, &cmd);
    }
    // BUSYKEY comes before the TTL and payload checks; an expired key is not busy.
    same(&mut a, &mut b, &[b"SET", b"busy", b"1"]);
    same(&mut a, &mut b, &[b"RESTORE", b"busy", b"-5", b"junk"]);
    same(
        &mut a,
        &mut b,
        &[b"RESTORE", b"busy", b"0", b"junk", b"REPLACE"],
    );
    same(
        &mut a,
        &mut b,
        &[b"RESTORE", b"busy", b"x", b"junk", b"REPLACE"],
    );
    same(&mut a, &mut b, &[b"EXISTS", b"busy"]);
    same(&mut a, &mut b, &[b"DUMP", b"nokey"]);
    same(&mut a, &mut b, &[b"DUMP"]);
    same(&mut a, &mut b, &[b"RESTORE", b"k", b"0"]);
}

#[test]
fn dump_restore_command_info_matches_reference() {
    let Some((ours, reference)) = pair() else {
        return;
    };
    let mut a = ours.conn();
    let mut b = reference.conn();
    same(&mut a, &mut b, &[b"COMMAND", b"INFO", b"DUMP", b"RESTORE"]);
}

/// Keys whose DUMP bytes depend only on the value (no hash-table iteration order, no
/// delivery times), so both servers must write the same bytes.
fn deterministic_dump(key: &[u8], encoding: &[u8]) -> bool {
    !encoding.windows(9).any(|w| w == b"hashtable") && key != b"st:1" && key != b"st:big"
}

fn bulk(reply: &[u8]) -> Vec<u8> {
    // "$<n>\r\n<bytes>\r\n"
    let nl = reply.iter().position(|&b| b == b'\n').expect("bulk header");
    reply[nl + 1..reply.len() - 2].to_vec()
}

#[test]
// With the value helper's write_value merged (tried at 7d1a7a3), every key matches with
// rdbcompression no; with yes, the 31-byte quicklist nodes of l:ql are LZF-compressed
// by us and left raw by the reference.
fn dump_bytes_match_reference() {
    let Some((ours, reference)) = pair() else {
        return;
    };
    let cmds = dataset_commands();
    let keys = keys_of(&cmds);
    let mut a = ours.conn();
    let mut b = reference.conn();
    build(&mut a, &cmds);
    build(&mut b, &cmds);
    for compression in ["no", "yes"] {
        same(
            &mut a,
            &mut b,
            &[b"CONFIG", b"SET", b"rdbcompression", compression.as_bytes()],
        );
        let mut bad = Vec::new();
        for k in &keys {
            let pa = a.call(&[b"DUMP".as_slice(), k]);
            let pb = b.call(&[b"DUMP".as_slice(), k]);
            assert!(
                pa.starts_with(b"$") && pb.starts_with(b"$"),
                "{}",
                escape(k)
            );
            let enc = b.call(&[b"OBJECT".as_slice(), b"ENCODING", k]);
            let differs = if deterministic_dump(k, &enc) {
                pa != pb
            } else {
                pa.len() != pb.len()
            };
            if differs {
                bad.push(String::from_utf8_lossy(k).into_owned());
            }
        }
        assert!(
            bad.is_empty(),
            "rdbcompression {compression}: DUMP differs for {bad:?}"
        );
    }
}

#[test]
fn dump_restore_roundtrip_both_ways() {
    let Some((ours, reference)) = pair() else {
        return;
    };
    let cmds = dataset_commands();
    let keys = keys_of(&cmds);
    let mut a = ours.conn();
    let mut b = reference.conn();
    build(&mut a, &cmds);
    build(&mut b, &cmds);
    for k in &keys {
        let pa = a.call(&[b"DUMP".as_slice(), k]);
        let pb = b.call(&[b"DUMP".as_slice(), k]);
        assert!(
            pa.starts_with(b"$") && pb.starts_with(b"$"),
            "{}",
            escape(k)
        );
        let enc = b.call(&[b"OBJECT".as_slice(), b"ENCODING", k]);
        if deterministic_dump(k, &enc) {
            assert_eq!(escape(&pa), escape(&pb), "DUMP bytes of {}", escape(k));
        }
        for (prefix, p) in [(b"r:".as_slice(), bulk(&pb)), (b"o:".as_slice(), bulk(&pa))] {
            let nk = [prefix, k.as_slice()].concat();
            for c in [&mut a, &mut b] {
                let r = c.call(&[b"RESTORE".as_slice(), &nk, b"0", &p]);
                assert_eq!(escape(&r), "+OK\\r\\n", "RESTORE {}", escape(&nk));
            }
            same(&mut a, &mut b, &[b"OBJECT", b"ENCODING", &nk]);
            same(&mut a, &mut b, &[b"DEBUG", b"DIGEST-VALUE", &nk]);
        }
    }
    same(&mut a, &mut b, &[b"DEBUG", b"DIGEST"]);
}

#[test]
fn restore_ttl_replace_idletime() {
    let Some((ours, reference)) = pair() else {
        return;
    };
    let mut a = ours.conn();
    let mut b = reference.conn();
    let good = payload(b"\x00\x01v", 80);
    same(&mut a, &mut b, &[b"RESTORE", b"k", b"0", &good]);
    same(&mut a, &mut b, &[b"GET", b"k"]);
    same(&mut a, &mut b, &[b"TTL", b"k"]);
    same(&mut a, &mut b, &[b"RESTORE", b"k", b"0", &good]);
    same(
        &mut a,
        &mut b,
        &[b"RESTORE", b"k", b"100000", &good, b"REPLACE"],
    );
    same(&mut a, &mut b, &[b"TTL", b"k"]);
    // an absolute TTL in the past: OK, and REPLACE deletes the old key
    same(
        &mut a,
        &mut b,
        &[b"RESTORE", b"k", b"1", &good, b"REPLACE", b"ABSTTL"],
    );
    same(&mut a, &mut b, &[b"EXISTS", b"k"]);
    same(&mut a, &mut b, &[b"RESTORE", b"k", b"1", &good, b"ABSTTL"]);
    same(&mut a, &mut b, &[b"EXISTS", b"k"]);
    same(
        &mut a,
        &mut b,
        &[b"RESTORE", b"k", b"0", &good, b"IDLETIME", b"1000"],
    );
    same(&mut a, &mut b, &[b"OBJECT", b"IDLETIME", b"k"]);
    same(
        &mut a,
        &mut b,
        &[b"RESTORE", b"f", b"0", &good, b"FREQ", b"100"],
    );
    same(&mut a, &mut b, &[b"GET", b"f"]);
    // trailing bytes between the value and the footer
    same(
        &mut a,
        &mut b,
        &[b"RESTORE", b"t", b"0", &payload(b"\x00\x01vXYZ", 80)],
    );
    // truncated value
    same(
        &mut a,
        &mut b,
        &[b"RESTORE", b"t2", b"0", &payload(b"\x00\x05v", 80)],
    );
    // every truncation of a real payload of each kind
    for cmd in [
        &[b"RPUSH".as_slice(), b"src", b"a", b"b", b"1"][..],
        &[b"HSET", b"src", b"f", b"v"],
        &[b"ZADD", b"src", b"1.5", b"m"],
        &[b"SADD", b"src", b"1", b"2"],
        &[b"XADD", b"src", b"1-1", b"f", b"v"],
    ] {
        same(&mut a, &mut b, &[b"DEL", b"src"]);
        same(&mut a, &mut b, cmd);
        let p = bulk(&b.call(&["DUMP", "src"]));
        let body = &p[..p.len() - 10];
        for cut in 0..body.len() {
            same(
                &mut a,
                &mut b,
                &[
                    b"RESTORE",
                    b"cut",
                    b"0",
                    &payload(&body[..cut], 80),
                    b"REPLACE",
                ],
            );
        }
    }
}

/// A listpack of short strings (each under 64 bytes).
fn listpack(entries: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for e in entries {
        let start = body.len();
        body.push(0x80 | e.len() as u8);
        body.extend_from_slice(e);
        let n = (body.len() - start) as u8;
        body.push(n);
    }
    let total = 6 + body.len() + 1;
    let mut lp = (total as u32).to_le_bytes().to_vec();
    lp.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    lp.extend_from_slice(&body);
    lp.push(0xff);
    lp
}

/// An RDB string of fewer than 64 bytes.
fn rdb_str(b: &[u8]) -> Vec<u8> {
    let mut v = vec![b.len() as u8];
    v.extend_from_slice(b);
    v
}

#[test]
fn crafted_payloads_rejected_like_reference() {
    let Some((ours, reference)) = pair() else {
        return;
    };
    let mut a = ours.conn();
    let mut b = reference.conn();
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    // listpack set with a duplicate member; listpack hash with a duplicate field; zset
    // listpack with an odd count; listpack total-bytes header lying
    bodies.push([&[20u8][..], &rdb_str(&listpack(&[b"a", b"a"]))].concat());
    bodies.push([&[16u8][..], &rdb_str(&listpack(&[b"f", b"1", b"f", b"2"]))].concat());
    bodies.push([&[17u8][..], &rdb_str(&listpack(&[b"m", b"1", b"n"]))].concat());
    let mut lying = listpack(&[b"a", b"b"]);
    lying[0] = lying[0].wrapping_add(3);
    bodies.push([&[20u8][..], &rdb_str(&lying)].concat());
    let mut count = listpack(&[b"a", b"b"]);
    count[4] = 7;
    bodies.push([&[20u8][..], &rdb_str(&count)].concat());
    // intsets: length larger than the blob, bad encoding, unsorted, duplicates
    let intset = |enc: u32, vals: &[i16], len: u32| {
        let mut v = enc.to_le_bytes().to_vec();
        v.extend_from_slice(&len.to_le_bytes());
        for x in vals {
            v.extend_from_slice(&x.to_le_bytes());
        }
        [&[11u8][..], &rdb_str(&v)].concat()
    };
    bodies.push(intset(2, &[1, 2], 5));
    bodies.push(intset(3, &[1, 2], 2));
    bodies.push(intset(2, &[2, 1], 2));
    bodies.push(intset(2, &[1, 1], 2));
    bodies.push(intset(2, &[], 0));
    // CVE-2026-25243 class: a zipmap whose first field length uses the 5-byte form for
    // a small length (the validator and the iterator disagree on the entry size).
    let mut zm = vec![2u8, 254, 3, 0, 0, 0];
    zm.extend_from_slice(b"abc");
    zm.extend_from_slice(&[1, 0, b'x', 3]);
    zm.extend_from_slice(b"def");
    zm.extend_from_slice(&[1, 0, b'y', 0xff]);
    bodies.push([&[9u8][..], &rdb_str(&zm)].concat());
    // empty collections
    bodies.push([&[20u8][..], &rdb_str(&listpack(&[]))].concat());
    bodies.push(vec![2u8, 0]);
    for body in &bodies {
        let p = payload(body, 80);
        same(&mut a, &mut b, &[b"RESTORE", b"bad", b"0", &p, b"REPLACE"]);
        same(&mut a, &mut b, &[b"EXISTS", b"bad"]);
    }

    // Streams (CVE-2026-63639 class and the consumer PEL checks): take the reference's
    // payload of a stream with one group, two consumers owning 1-1 and 2-1, then make
    // bob's PEL point at alice's entry (a shared NACK) or at an ID outside the group PEL.
    same(&mut a, &mut b, &[b"XADD", b"s", b"1-1", b"f", b"v"]);
    same(&mut a, &mut b, &[b"XADD", b"s", b"2-1", b"f", b"w"]);
    same(&mut a, &mut b, &[b"XGROUP", b"CREATE", b"s", b"g", b"0"]);
    b.call(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "alice",
        "COUNT",
        "1",
        "STREAMS",
        "s",
        ">",
    ]);
    b.call(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "bob",
        "COUNT",
        "1",
        "STREAMS",
        "s",
        ">",
    ]);
    let p = bulk(&b.call(&["DUMP", "s"]));
    let body = &p[..p.len() - 10];
    let id = |ms: u64, seq: u64| [ms.to_be_bytes(), seq.to_be_bytes()].concat();
    let pos = body
        .windows(16)
        .rposition(|w| w == id(2, 1).as_slice())
        .expect("bob's PEL entry");
    for replacement in [id(1, 1), id(9, 9), id(2, 1)] {
        let mut m = body.to_vec();
        m[pos..pos + 16].copy_from_slice(&replacement);
        let p = payload(&m, 80);
        same(&mut a, &mut b, &[b"RESTORE", b"s2", b"0", &p, b"REPLACE"]);
        same(&mut a, &mut b, &[b"XINFO", b"GROUPS", b"s2"]);
    }
    assert_eq!(escape(&a.call(&["PING"])), "+PONG\\r\\n");
}

/// DEBUG is a protected command: refused unless `enable-debug-command` allows it, with
/// the reference's reply (`local` allows loopback connections).
#[test]
fn debug_is_protected_by_default() {
    let mut servers = vec![Server::ours(&["--enable-debug-command", "no"])];
    if let Some(bin) = require_reference() {
        servers.push(Server::reference(&bin, &["--enable-debug-command", "no"]));
    }
    let mut replies = vec![];
    for s in &servers {
        let mut c = s.conn();
        let r = c.call(&["DEBUG", "DIGEST"]);
        assert!(
            r.starts_with(b"-ERR DEBUG command not allowed."),
            "{}",
            escape(&r)
        );
        replies.push(r);
    }
    if replies.len() == 2 {
        assert_eq!(replies[0], replies[1]);
    }
    let s = Server::ours(&["--enable-debug-command", "local"]);
    let mut c = s.conn();
    assert!(c.call(&["DEBUG", "DIGEST"]).starts_with(b"+"));
}
