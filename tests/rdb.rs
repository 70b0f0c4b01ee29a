//! RDB persistence against the reference (issue 5): files written by upstream load on
//! valkey-rs and the reverse, with the same dataset on both sides (DEBUG DIGEST when both
//! servers have it, and a full per-key readback so a mismatch names the key); truncated
//! and corrupted files are refused without a panic; BGSAVE does not stall clients and
//! snapshots the fork instant; LFU/LRU metadata survive a restart.
//!
//! Fixtures are generated at test time by the reference (`require_reference`), in temp
//! directories. `RDB_FUZZ_FULL=1` (`make rdb-fuzz`) runs every truncation point and 2000
//! single-byte corruptions instead of deterministic samples.

mod common;

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::dataset::*;
use common::proc::{children_of, TempDir};
use common::{
    escape, escape_short, free_port, require_reference, targets, wait_for, Conn, Rng, Server,
    Target,
};

const OK: &[u8] = b"+OK\r\n";
/// 2100-01-01T00:00:00Z in ms: expiry times far enough in the future to be stable.
const FAR_MS: i64 = 4_102_444_800_000;

// ---------------------------------------------------------------------------------------
// Small helpers: temp dirs, RESP parsing, INFO, pipelining.
// ---------------------------------------------------------------------------------------

fn save(s: &Server, c: &mut Conn) {
    let r = c.call(&["SAVE"]);
    assert_eq!(escape(&r), escape(OK), "{}: SAVE", s.kind.name());
}

/// Copies `src`'s `dump.rdb` into a new temp dir.
fn copy_dump(src: &Path, tag: &str) -> TempDir {
    let d = TempDir::new(tag);
    std::fs::copy(src.join("dump.rdb"), d.file("dump.rdb"))
        .unwrap_or_else(|e| panic!("copy {}/dump.rdb: {}", src.display(), e));
    d
}

/// Starts a server of `t`'s kind with its data dir `dir` (the later `--dir` wins).
fn start_on(t: &Target, dir: &TempDir, extra: &[&str]) -> Server {
    let d = dir.dir_arg();
    let mut args: Vec<&str> = vec!["--dir", &d];
    args.extend_from_slice(extra);
    let s = t.start(&args);
    // Started means answering; loaded means PONG rather than -LOADING.
    let mut c = s.conn();
    let loaded = wait_for(Duration::from_secs(60), || {
        c.call(&["PING"]) == b"+PONG\r\n"
    });
    assert!(loaded, "{}: still loading after 60 s", s.kind.name());
    s
}

/// valkey-rs, or the reference playing its part when `VALKEY_TEST_TARGET=reference`
/// (to check the tests themselves against upstream).
fn ours() -> Target {
    if std::env::var("VALKEY_TEST_TARGET").is_ok_and(|t| t == "reference") {
        if let Some(bin) = common::reference_binary() {
            return Target::Reference(bin);
        }
    }
    Target::Ours
}

// ---------------------------------------------------------------------------------------
// The dataset: every type and encoding, small and large, TTLs, several DBs.
// ---------------------------------------------------------------------------------------

fn rand_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next() as u8).collect()
}

/// Issues the same commands to any server; the result covers every type and encoding.
fn build_dataset(c: &mut Conn) {
    let mut rng = Rng(0x5eed_0005);
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    let far = FAR_MS.to_string();
    let far2 = (FAR_MS + 123_456).to_string();

    // Strings: int, embstr, raw; > 20 bytes compressible and incompressible; binary.
    for (k, val) in [
        ("str:int", b"12345".to_vec()),
        ("str:neg", b"-7".to_vec()),
        ("str:i64max", b"9223372036854775807".to_vec()),
        ("str:i64min", b"-9223372036854775808".to_vec()),
        ("str:lead0", b"0123".to_vec()),
        ("str:empty", Vec::new()),
        ("str:embstr", b"hello world".to_vec()),
        ("str:21", compressible(21, "a")),
        ("str:raw-lzf", compressible(300, "b")),
        ("str:raw-rand", rand_bytes(&mut rng, 300)),
        ("str:big-lzf", compressible(100_000, "c")),
        ("str:big-rand", rand_bytes(&mut rng, 20_000)),
        ("str:bin", b"\x00\x01\r\n\xff".to_vec()),
    ] {
        cmds.push(vec![b"SET".to_vec(), k.as_bytes().to_vec(), val]);
    }
    cmds.push(v(&[b"SET", b"str:appended", b"abc"]));
    cmds.push(v(&[b"APPEND", b"str:appended", b"def"]));
    cmds.push(v(&[b"SET", b"str:ttl", b"v"]));
    cmds.push(v(&[b"PEXPIREAT", b"str:ttl", far.as_bytes()]));

    // Lists: listpack, quicklist, plain nodes (elements over 8KB with fill -2), compressed.
    cmds.push(v(&[
        b"RPUSH",
        b"list:lp",
        b"a",
        b"b",
        b"1",
        b"-3",
        b"",
        b"12345678901",
    ]));
    for chunk in 0..10 {
        let mut cmd = v(&[b"RPUSH", b"list:ql"]);
        for i in 0..100 {
            let n = chunk * 100 + i;
            if n % 7 == 0 {
                cmd.push(n.to_string().into_bytes());
            } else {
                cmd.push(format!("element-{}-{}", n, "x".repeat(n % 40)).into_bytes());
            }
        }
        cmds.push(cmd);
    }
    cmds.push(v(&[b"RPUSH", b"list:plain", b"small1"]));
    cmds.push(vec![
        b"RPUSH".to_vec(),
        b"list:plain".to_vec(),
        compressible(10_000, "p"),
    ]);
    cmds.push(v(&[b"RPUSH", b"list:plain", b"small2"]));
    cmds.push(vec![
        b"RPUSH".to_vec(),
        b"list:plain".to_vec(),
        rand_bytes(&mut rng, 9_000),
    ]);
    cmds.push(v(&[b"LPUSH", b"list:plain", b"head"]));
    cmds.push(v(&[b"CONFIG", b"SET", b"list-compress-depth", b"1"]));
    for chunk in 0..20 {
        let mut cmd = v(&[b"RPUSH", b"list:compressed"]);
        for i in 0..100 {
            cmd.push(format!("compressible-element-{:06}", chunk * 100 + i).into_bytes());
        }
        cmds.push(cmd);
    }
    cmds.push(v(&[b"CONFIG", b"SET", b"list-compress-depth", b"0"]));
    cmds.push(v(&[b"RPUSH", b"list:ttl", b"x", b"y"]));
    cmds.push(v(&[b"PEXPIREAT", b"list:ttl", far2.as_bytes()]));

    // Sets: intset, listpack, hashtable (by count, by member length, ints over 512).
    cmds.push(v(&[
        b"SADD",
        b"set:intset",
        b"1",
        b"2",
        b"3",
        b"-5",
        b"100000",
        b"9223372036854775807",
    ]));
    cmds.push(v(&[b"SADD", b"set:lp", b"a", b"b", b"c", b"1"]));
    let mut cmd = v(&[b"SADD", b"set:ht"]);
    for i in 0..300 {
        cmd.push(format!("member:{}", i).into_bytes());
    }
    cmds.push(cmd);
    let mut cmd = v(&[b"SADD", b"set:ht-int"]);
    for i in 0..600 {
        cmd.push((i * 3 - 100).to_string().into_bytes());
    }
    cmds.push(cmd);
    cmds.push(vec![
        b"SADD".to_vec(),
        b"set:ht-long".to_vec(),
        b"a".to_vec(),
        compressible(100, "s"),
    ]);

    // Sorted sets: listpack, skiplist (by count and by member length); special scores.
    cmds.push(v(&[
        b"ZADD", b"zset:lp", b"1.5", b"a", b"-inf", b"b", b"inf", b"c", b"0", b"d", b"3", b"e",
        b"-0.25", b"f",
    ]));
    let mut cmd = v(&[b"ZADD", b"zset:sl"]);
    for i in 0..300 {
        let score = (rng.next() % 2_000_000) as f64 / 7.0 - 100_000.0;
        cmd.push(format!("{}", score).into_bytes());
        cmd.push(format!("zm:{}", i).into_bytes());
    }
    cmds.push(cmd);
    cmds.push(vec![
        b"ZADD".to_vec(),
        b"zset:sl-long".to_vec(),
        b"1".to_vec(),
        compressible(100, "z"),
        b"2".to_vec(),
        b"short".to_vec(),
    ]);

    // Hashes: listpack, hashtable (count, value length), field TTLs.
    cmds.push(v(&[
        b"HSET", b"hash:lp", b"f1", b"v1", b"f2", b"2", b"f3", b"", b"n", b"-17",
    ]));
    let mut cmd = v(&[b"HSET", b"hash:ht"]);
    for i in 0..600 {
        cmd.push(format!("field:{}", i).into_bytes());
        cmd.push(format!("value:{}", i * 7).into_bytes());
    }
    cmds.push(cmd);
    cmds.push(vec![
        b"HSET".to_vec(),
        b"hash:ht-long".to_vec(),
        b"f".to_vec(),
        compressible(100, "h"),
    ]);
    cmds.push(v(&[
        b"HSET",
        b"hash:ttl",
        b"a",
        b"1",
        b"b",
        b"2",
        b"c",
        b"3",
        b"d",
        b"4",
    ]));
    cmds.push(v(&[
        b"HPEXPIREAT",
        b"hash:ttl",
        far.as_bytes(),
        b"FIELDS",
        b"2",
        b"a",
        b"c",
    ]));
    let mut cmd = v(&[b"HSET", b"hash:ttl-big"]);
    for i in 0..700 {
        cmd.push(format!("tf:{}", i).into_bytes());
        cmd.push(format!("tv:{}", i).into_bytes());
    }
    cmds.push(cmd);
    let mut cmd = vec![
        b"HPEXPIREAT".to_vec(),
        b"hash:ttl-big".to_vec(),
        far2.as_bytes().to_vec(),
        b"FIELDS".to_vec(),
        b"100".to_vec(),
    ];
    for i in 0..100 {
        cmd.push(format!("tf:{}", i * 5).into_bytes());
    }
    cmds.push(cmd);
    cmds.push(v(&[b"PEXPIREAT", b"hash:ttl-big", far.as_bytes()]));

    // Streams: entries with differing fields, deletions, groups, consumers, PEL.
    for (id, fields) in [
        ("1-1", &[&b"name"[..], b"a", b"val", b"1"][..]),
        ("1-2", &[b"name", b"b", b"val", b"2"]),
        ("2-0", &[b"other", b"x"]),
        ("3-0", &[b"name", b"c", b"val", b"3"]),
        ("4-0", &[b"name", b"d", b"val", b"4"]),
    ] {
        let mut cmd = v(&[b"XADD", b"stream:g", id.as_bytes()]);
        cmd.extend(fields.iter().map(|f| f.to_vec()));
        cmds.push(cmd);
    }
    cmds.push(v(&[b"XDEL", b"stream:g", b"1-2"]));
    cmds.push(v(&[b"XGROUP", b"CREATE", b"stream:g", b"g1", b"0"]));
    cmds.push(v(&[b"XGROUP", b"CREATE", b"stream:g", b"g2", b"$"]));
    cmds.push(v(&[
        b"XREADGROUP",
        b"GROUP",
        b"g1",
        b"alice",
        b"COUNT",
        b"2",
        b"STREAMS",
        b"stream:g",
        b">",
    ]));
    cmds.push(v(&[
        b"XREADGROUP",
        b"GROUP",
        b"g1",
        b"bob",
        b"COUNT",
        b"1",
        b"STREAMS",
        b"stream:g",
        b">",
    ]));
    cmds.push(v(&[b"XACK", b"stream:g", b"g1", b"1-1"]));
    cmds.push(v(&[
        b"XGROUP",
        b"CREATECONSUMER",
        b"stream:g",
        b"g2",
        b"carol",
    ]));
    cmds.push(v(&[
        b"XCLAIM",
        b"stream:g",
        b"g1",
        b"carol",
        b"0",
        b"3-0",
        b"TIME",
        b"1700000000000",
    ]));
    for i in 1..=2000u32 {
        cmds.push(vec![
            b"XADD".to_vec(),
            b"stream:big".to_vec(),
            format!("{}-{}", 1000 + i / 3, i % 3).into_bytes(),
            b"f1".to_vec(),
            b"v".to_vec(),
            b"f2".to_vec(),
            i.to_string().into_bytes(),
        ]);
    }
    cmds.push(v(&[b"XGROUP", b"CREATE", b"stream:big", b"grp", b"1500-0"]));
    cmds.push(v(&[b"XADD", b"stream:empty", b"5-5", b"a", b"b"]));
    cmds.push(v(&[b"XDEL", b"stream:empty", b"5-5"]));
    for i in 1..=50u32 {
        cmds.push(vec![
            b"XADD".to_vec(),
            b"stream:trim".to_vec(),
            b"MAXLEN".to_vec(),
            b"10".to_vec(),
            format!("{}-1", i).into_bytes(),
            b"k".to_vec(),
            i.to_string().into_bytes(),
        ]);
    }
    cmds.push(v(&[b"PEXPIREAT", b"stream:trim", far.as_bytes()]));
    pipeline(c, &cmds);

    // Other databases.
    let mut cmds: Vec<Vec<Vec<u8>>> = vec![
        v(&[b"SELECT", b"1"]),
        v(&[b"SET", b"db1:str", b"one"]),
        v(&[b"RPUSH", b"db1:list", b"1", b"2", b"3"]),
        v(&[b"PEXPIREAT", b"db1:list", far.as_bytes()]),
        v(&[b"SELECT", b"9"]),
    ];
    for i in 0..50 {
        cmds.push(vec![
            b"SET".to_vec(),
            format!("db9:{}", i).into_bytes(),
            i.to_string().into_bytes(),
        ]);
    }
    cmds.push(v(&[b"SADD", b"db9:set", b"x"]));
    cmds.push(v(&[b"SELECT", b"15"]));
    cmds.push(v(&[b"HSET", b"db15:hash", b"k", b"v"]));
    cmds.push(v(&[b"SELECT", b"0"]));
    pipeline(c, &cmds);
}

/// A small dataset (~1-2 KB file): a few keys of each type, for truncations/corruptions.
fn build_small_dataset(c: &mut Conn) {
    let far = FAR_MS.to_string();
    let cmds = vec![
        v(&[b"SET", b"s:int", b"42"]),
        v(&[b"SET", b"s:str", b"hello"]),
        vec![b"SET".to_vec(), b"s:lzf".to_vec(), compressible(200, "q")],
        v(&[b"PEXPIREAT", b"s:str", far.as_bytes()]),
        v(&[b"RPUSH", b"l", b"a", b"b", b"c", b"100"]),
        v(&[b"SADD", b"si", b"1", b"2", b"3"]),
        v(&[b"SADD", b"sl", b"a", b"b"]),
        v(&[b"ZADD", b"z", b"1", b"a", b"2.5", b"b"]),
        v(&[b"HSET", b"h", b"f", b"v", b"g", b"w"]),
        v(&[b"HSET", b"he", b"a", b"1", b"b", b"2"]),
        v(&[b"HPEXPIREAT", b"he", far.as_bytes(), b"FIELDS", b"1", b"a"]),
        v(&[b"XADD", b"x", b"1-1", b"f", b"v"]),
        v(&[b"XADD", b"x", b"2-1", b"f", b"w", b"g", b"z"]),
        v(&[b"XGROUP", b"CREATE", b"x", b"g", b"0"]),
        v(&[
            b"XREADGROUP",
            b"GROUP",
            b"g",
            b"c",
            b"COUNT",
            b"1",
            b"STREAMS",
            b"x",
            b">",
        ]),
        v(&[b"SELECT", b"3"]),
        v(&[b"SET", b"db3", b"x"]),
        v(&[b"SELECT", b"0"]),
    ];
    let mut cmds = cmds;
    let mut sl = v(&[b"ZADD", b"zs"]);
    for i in 0..130 {
        sl.push(i.to_string().into_bytes());
        sl.push(format!("m{}", i).into_bytes());
    }
    cmds.push(sl);
    pipeline(c, &cmds);
}

// ---------------------------------------------------------------------------------------
// Readback: the whole dataset as (db, key, aspect) -> reply bytes.
// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// RDB file helpers: strip the header and aux fields for byte comparisons.
// ---------------------------------------------------------------------------------------

/// Skips one RDB string (length-prefixed, integer-encoded or LZF) at `pos`.
fn skip_rdb_string(b: &[u8], pos: &mut usize) -> Option<()> {
    let first = *b.get(*pos)?;
    *pos += 1;
    let read_len = |pos: &mut usize| -> Option<usize> {
        let f = *b.get(*pos)?;
        *pos += 1;
        match f >> 6 {
            0 => Some((f & 0x3f) as usize),
            1 => {
                let n = (((f & 0x3f) as usize) << 8) | *b.get(*pos)? as usize;
                *pos += 1;
                Some(n)
            }
            2 if f == 0x80 => {
                let s = b.get(*pos..*pos + 4)?;
                *pos += 4;
                Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
            }
            2 if f == 0x81 => {
                let s = b.get(*pos..*pos + 8)?;
                *pos += 8;
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                usize::try_from(u64::from_be_bytes(a)).ok()
            }
            _ => None,
        }
    };
    match first >> 6 {
        3 => match first & 0x3f {
            0 => *pos += 1,
            1 => *pos += 2,
            2 => *pos += 4,
            3 => {
                let clen = read_len(pos)?;
                let _ulen = read_len(pos)?;
                *pos += clen;
            }
            _ => return None,
        },
        _ => {
            *pos -= 1;
            let n = read_len(pos)?;
            *pos += n;
        }
    }
    (*pos <= b.len()).then_some(())
}

/// The file without its 9-byte header, aux fields and 8-byte CRC footer.
fn strip_aux(b: &[u8]) -> Option<Vec<u8>> {
    let mut pos = 9;
    while *b.get(pos)? == 0xfa {
        pos += 1;
        skip_rdb_string(b, &mut pos)?;
        skip_rdb_string(b, &mut pos)?;
    }
    let end = b.len().checked_sub(8)?;
    (pos <= end).then(|| b[pos..end].to_vec())
}

// ---------------------------------------------------------------------------------------
// 1. Interop: upstream's files on valkey-rs and the reverse.
// ---------------------------------------------------------------------------------------

fn ref_to_ours(compression: &str) {
    let Some(refbin) = require_reference() else {
        return;
    };
    let rt = Target::Reference(refbin.clone());
    let src = Server::reference(&refbin, &["--rdbcompression", compression]);
    let mut sc = src.conn();
    build_dataset(&mut sc);
    let src_digest = digest(&mut sc).expect("reference DEBUG DIGEST");
    save(&src, &mut sc);
    let size = std::fs::metadata(src.dir.join("dump.rdb")).map(|m| m.len());
    eprintln!(
        "reference dump.rdb (rdbcompression {}): {:?} bytes",
        compression, size
    );

    let for_ref = copy_dump(&src.dir, "ref-on-ref");
    let for_ours = copy_dump(&src.dir, "ref-on-ours");
    let loaded_ref = start_on(&rt, &for_ref, &[]);
    let ours = start_on(&ours(), &for_ours, &[]);
    let mut rc = loaded_ref.conn();
    let mut oc = ours.conn();
    let want = readback(&mut rc);
    let got = readback(&mut oc);
    assert!(
        want.len() > 100,
        "the reference loaded too little: {}",
        want.len()
    );
    compare_readbacks(
        &format!("reference file (rdbcompression {}) loaded", compression),
        "reference",
        &exact(&want),
        "valkey-rs",
        &exact(&got),
    );
    compare_readbacks(
        &format!(
            "DUMP payloads after loading (rdbcompression {})",
            compression
        ),
        "reference",
        &exact(&dumps(&mut rc)),
        "valkey-rs",
        &exact(&dumps(&mut oc)),
    );
    assert_eq!(
        digest(&mut rc).as_deref().map(escape),
        Some(escape(&src_digest)),
        "the reference's digest changed over its own save/load"
    );
    match digest(&mut oc) {
        Some(d) => assert_eq!(escape(&d), escape(&src_digest), "valkey-rs DEBUG DIGEST"),
        None => eprintln!("valkey-rs has no DEBUG DIGEST yet: compared by readback only"),
    }
}

fn ours_to_ref(compression: &str) {
    let Some(refbin) = require_reference() else {
        return;
    };
    let rt = Target::Reference(refbin.clone());
    let src_ours = ours().start(&["--rdbcompression", compression]);
    let src_ref = Server::reference(&refbin, &["--rdbcompression", compression]);
    let mut oc = src_ours.conn();
    let mut rc = src_ref.conn();
    build_dataset(&mut oc);
    build_dataset(&mut rc);
    let ref_digest = digest(&mut rc).expect("reference DEBUG DIGEST");
    let ours_digest = digest(&mut oc);
    save(&src_ours, &mut oc);
    save(&src_ref, &mut rc);
    let ours_bytes = std::fs::read(src_ours.dir.join("dump.rdb")).expect("our dump.rdb");
    let ref_bytes = std::fs::read(src_ref.dir.join("dump.rdb")).expect("reference dump.rdb");
    eprintln!(
        "rdbcompression {}: valkey-rs dump.rdb {} bytes, reference {} bytes; equal after aux: {}",
        compression,
        ours_bytes.len(),
        ref_bytes.len(),
        strip_aux(&ours_bytes).is_some() && strip_aux(&ours_bytes) == strip_aux(&ref_bytes)
    );
    assert!(
        ours_bytes.starts_with(b"VALKEY080"),
        "valkey-rs dump.rdb header: {}",
        escape_short(&ours_bytes, 16)
    );

    // The reference loads our file and sees the dataset it builds itself.
    let ours_file = copy_dump(&src_ours.dir, "ours-on-ref");
    let ref_file = copy_dump(&src_ref.dir, "ref-baseline");
    let ours_file2 = copy_dump(&src_ours.dir, "ours-on-ours");
    let a = start_on(&rt, &ours_file, &[]);
    let b = start_on(&rt, &ref_file, &[]);
    let mut ac = a.conn();
    let mut bc = b.conn();
    let got = readback(&mut ac);
    let want = readback(&mut bc);
    assert!(
        want.len() > 100,
        "the reference loaded too little: {}",
        want.len()
    );
    compare_readbacks(
        &format!(
            "valkey-rs file (rdbcompression {}) loaded by the reference",
            compression
        ),
        "reference file",
        &masked(&want),
        "valkey-rs file",
        &masked(&got),
    );
    let da = digest(&mut ac).expect("reference DEBUG DIGEST");
    assert_eq!(
        escape(&da),
        escape(&ref_digest),
        "reference digest of our file"
    );
    if let Some(d) = ours_digest {
        assert_eq!(
            escape(&d),
            escape(&ref_digest),
            "valkey-rs DEBUG DIGEST of the build"
        );
    }
    // valkey-rs loads its own file exactly as the reference loads it.
    let o = start_on(&ours(), &ours_file2, &[]);
    let mut ocn = o.conn();
    let own = readback(&mut ocn);
    compare_readbacks(
        "valkey-rs file loaded by both",
        "reference",
        &exact(&got),
        "valkey-rs",
        &exact(&own),
    );
    compare_readbacks(
        "DUMP payloads after both loaded the valkey-rs file",
        "reference",
        &exact(&dumps(&mut ac)),
        "valkey-rs",
        &exact(&dumps(&mut ocn)),
    );
}

#[test]
fn reference_file_loads_on_ours_lzf() {
    ref_to_ours("yes");
}

#[test]
fn reference_file_loads_on_ours_no_lzf() {
    ref_to_ours("no");
}

#[test]
fn our_file_loads_on_reference_lzf() {
    ours_to_ref("yes");
}

#[test]
fn our_file_loads_on_reference_no_lzf() {
    ours_to_ref("no");
}

/// A dataset of compact/ordered encodings, one key per database (so key order inside a
/// database cannot differ): after the aux fields the two files must be byte-identical.
#[test]
fn compact_dataset_files_are_byte_identical() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let far = FAR_MS.to_string();
    let lz = compressible(200, "k");
    let rnd = rand_bytes(&mut Rng(77), 100);
    let mut ql = v(&[b"RPUSH", b"k"]);
    for i in 0..600 {
        ql.push(format!("e{}", i).into_bytes());
    }
    let mut sl = v(&[b"ZADD", b"k"]);
    for i in 0..200 {
        sl.push(format!("{}.5", i * 3).into_bytes());
        sl.push(format!("m{}", i).into_bytes());
    }
    let per_db: Vec<Vec<Vec<Vec<u8>>>> = vec![
        vec![v(&[b"SET", b"k", b"12345"])],
        vec![v(&[b"SET", b"k", b"hello"])],
        vec![vec![b"SET".to_vec(), b"k".to_vec(), lz.clone()]],
        vec![vec![b"SET".to_vec(), b"k".to_vec(), rnd.clone()]],
        vec![v(&[b"RPUSH", b"k", b"a", b"1", b"bb", b"-2"])],
        vec![v(&[b"SADD", b"k", b"5", b"1", b"3"])],
        vec![v(&[b"SADD", b"k", b"x", b"y"])],
        vec![v(&[b"ZADD", b"k", b"1", b"a", b"2.5", b"b"])],
        vec![v(&[b"HSET", b"k", b"f", b"v", b"g", b"1"])],
        vec![
            v(&[b"XADD", b"k", b"1-1", b"f", b"v"]),
            v(&[b"XADD", b"k", b"2-2", b"f", b"w", b"g", b"x"]),
            v(&[b"XDEL", b"k", b"1-1"]),
        ],
        vec![
            v(&[b"SET", b"k", b"ttl"]),
            v(&[b"PEXPIREAT", b"k", far.as_bytes()]),
        ],
        vec![ql.clone()],
        vec![sl.clone()],
        // An LZF match that runs to the end of a 29-byte string (liblzf's unrolled loop).
        vec![v(&[b"SET", b"k", b"value:20:xxxxxxxxxxxxxxxxxxxx"])],
    ];
    for compression in ["yes", "no"] {
        let mut files = Vec::new();
        for t in [Target::Reference(refbin.clone()), ours()] {
            let s = t.start(&["--rdbcompression", compression]);
            let mut c = s.conn();
            for (db, cmds) in per_db.iter().enumerate() {
                ok_call(&mut c, "select", &[b"SELECT", db.to_string().as_bytes()]);
                pipeline(&mut c, cmds);
            }
            save(&s, &mut c);
            files.push(std::fs::read(s.dir.join("dump.rdb")).expect("dump.rdb"));
        }
        let r = strip_aux(&files[0]).expect("reference file parses");
        let o = strip_aux(&files[1]).unwrap_or_else(|| {
            panic!(
                "valkey-rs file has no parsable header/aux: {}",
                escape_short(&files[1], 120)
            )
        });
        assert_eq!(&files[0][..9], &files[1][..9], "headers differ");
        if r != o {
            let at = r
                .iter()
                .zip(&o)
                .position(|(a, b)| a != b)
                .unwrap_or(r.len().min(o.len()));
            panic!(
                "rdbcompression {}: files differ after the aux fields at body offset {} \
                 (lengths {} vs {}):\n reference: {}\n valkey-rs: {}",
                compression,
                at,
                r.len(),
                o.len(),
                escape_short(&r[at.saturating_sub(16)..], 120),
                escape_short(&o[at.saturating_sub(16)..], 120)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. Truncated and corrupted files.
// ---------------------------------------------------------------------------------------

/// What happened when a server was started on a data dir.
struct StartOutcome {
    /// The exit status if it exited within the limit (None: it was still running).
    exit: Option<ExitStatus>,
    log: String,
    took: Duration,
}

/// Starts `bin` on `dir` and waits up to `limit` for it to exit; kills it if it runs on.
fn start_expecting_exit(bin: &Path, dir: &Path, limit: Duration) -> StartOutcome {
    let log_path = dir.join("server.log");
    let port = free_port().to_string();
    let d = dir.to_string_lossy().into_owned();
    let t0 = Instant::now();
    let mut child = common::spawn_logged(
        Command::new(bin).args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            &d,
        ]),
        dir,
        &log_path,
        false,
    )
    .unwrap_or_else(|e| panic!("spawn {}: {}", bin.display(), e));
    let mut exit = None;
    let mut last_ping = t0;
    while t0.elapsed() < limit {
        if let Ok(Some(st)) = child.try_wait() {
            exit = Some(st);
            break;
        }
        // Serving PING (not -LOADING) means it started with whatever it loaded.
        if last_ping.elapsed() >= Duration::from_millis(50) {
            last_ping = Instant::now();
            if let Ok(mut c) = Conn::try_connect(port.parse().unwrap_or(0)) {
                if matches!(c.cmd(&["PING"]), Ok(r) if r == b"+PONG\r\n") {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = t0.elapsed();
    // Kill it if it runs on; reap it either way.
    let _ = child.kill();
    let _ = child.wait();
    StartOutcome {
        exit,
        log: std::fs::read_to_string(&log_path).unwrap_or_default(),
        took,
    }
}

fn ours_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_valkey-rs-server"))
}

/// valkey-rs must refuse `bytes` as dump.rdb: exit non-zero within a few seconds, no
/// panic, a log line naming the file and an offset.
fn check_refused(what: &str, bytes: &[u8]) -> Result<Duration, String> {
    let d = TempDir::new("bad");
    std::fs::write(d.file("dump.rdb"), bytes).expect("write dump.rdb");
    let out = start_expecting_exit(ours_bin(), d.path(), Duration::from_secs(5));
    let tail = |log: &str| {
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(6)..].join("\n")
    };
    if out.log.contains("panicked") {
        return Err(format!("{}: valkey-rs panicked:\n{}", what, tail(&out.log)));
    }
    match out.exit {
        None => Err(format!(
            "{}: valkey-rs was serving (or running) after {:?}; it must refuse the file",
            what, out.took
        )),
        Some(st) if st.success() => Err(format!("{}: valkey-rs exited with status 0", what)),
        Some(st) if st.code().is_none() => Err(format!(
            "{}: valkey-rs was killed by a signal ({:?}):\n{}",
            what,
            st,
            tail(&out.log)
        )),
        Some(_) if !out.log.contains("dump.rdb") || !names_offset(&out.log) => Err(format!(
            "{}: the log does not name the file and an offset:\n{}",
            what,
            tail(&out.log)
        )),
        Some(_) => Ok(out.took),
    }
}

/// The small reference-written file for the truncation/corruption tests.
fn small_reference_file(refbin: &Path) -> Vec<u8> {
    let s = Server::reference(refbin, &[]);
    let mut c = s.conn();
    build_small_dataset(&mut c);
    save(&s, &mut c);
    std::fs::read(s.dir.join("dump.rdb")).expect("read reference dump.rdb")
}

#[test]
fn small_reference_file_loads() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let bytes = small_reference_file(&refbin);
    let d1 = TempDir::new("small-ref");
    let d2 = TempDir::new("small-ours");
    std::fs::write(d1.file("dump.rdb"), &bytes).expect("write");
    std::fs::write(d2.file("dump.rdb"), &bytes).expect("write");
    let r = start_on(&Target::Reference(refbin), &d1, &[]);
    let o = start_on(&ours(), &d2, &[]);
    compare_readbacks(
        "small reference file",
        "reference",
        &exact(&readback(&mut r.conn())),
        "valkey-rs",
        &exact(&readback(&mut o.conn())),
    );
}

#[test]
fn truncated_files_are_refused() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let bytes = small_reference_file(&refbin);
    let n = bytes.len();
    assert!((300..4000).contains(&n), "small file is {} bytes", n);
    let full = std::env::var("RDB_FUZZ_FULL").is_ok_and(|x| x == "1");
    // Every point of the header/aux region and the footer, then a deterministic sample of
    // about 700 more (a refused start takes ~6 ms; all of them with `make rdb-fuzz`).
    let step = if full { 1 } else { n.div_ceil(700).max(1) };
    let mut points: Vec<usize> = (0..n)
        .filter(|&i| full || i < 96 || i + 16 >= n || i % step == 0)
        .collect();
    points.dedup();
    // The reference itself refuses a sample of them (checks the expectation).
    for &cut in points.iter().step_by(25) {
        let d = TempDir::new("trunc-ref");
        std::fs::write(d.file("dump.rdb"), &bytes[..cut]).expect("write");
        let out = start_expecting_exit(&refbin, d.path(), Duration::from_secs(5));
        assert!(
            matches!(out.exit, Some(st) if !st.success()),
            "the reference did not refuse the file cut at {}",
            cut
        );
    }
    let t0 = Instant::now();
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    for &cut in &points {
        match check_refused(&format!("cut at {} of {}", cut, n), &bytes[..cut]) {
            Ok(took) => slowest = slowest.max(took),
            Err(e) => failures.push(e),
        }
        if failures.len() >= 5 {
            break;
        }
    }
    eprintln!(
        "{} truncation points of a {}-byte file in {:?} (slowest start {:?})",
        points.len(),
        n,
        t0.elapsed(),
        slowest
    );
    assert!(
        failures.is_empty(),
        "{} failures (first ones):\n{}",
        failures.len(),
        failures.join("\n---\n")
    );
}

#[test]
fn corrupted_files_are_refused() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let bytes = small_reference_file(&refbin);
    let n = bytes.len();
    let mut rng = Rng(0xc0ff_ee05);
    let mut cases: Vec<(usize, u8)> = Vec::new();
    // The magic, the version digits, the first opcode; the EOF and the CRC footer.
    for pos in [0, 5, 6, 7, 8, 9, n - 9, n - 8, n - 1] {
        cases.push((pos, 0x01));
    }
    let count = if std::env::var("RDB_FUZZ_FULL").is_ok_and(|x| x == "1") {
        2000
    } else {
        60
    };
    for _ in 0..count {
        let pos = rng.below(n as u64) as usize;
        let x = (rng.below(255) + 1) as u8;
        cases.push((pos, x));
    }
    let mut failures = Vec::new();
    let mut ref_accepts = 0;
    for (pos, x) in cases {
        let mut b = bytes.clone();
        b[pos] ^= x;
        let what = format!("byte {} of {} xor {:#04x}", pos, n, x);
        let d = TempDir::new("corrupt-ref");
        std::fs::write(d.file("dump.rdb"), &b).expect("write");
        let r = start_expecting_exit(&refbin, d.path(), Duration::from_secs(5));
        if matches!(r.exit, Some(st) if !st.success()) {
            if let Err(e) = check_refused(&what, &b) {
                failures.push(e);
                if failures.len() >= 5 {
                    break;
                }
            }
        } else {
            // Upstream accepted it (it never should with a checksum): only no panic.
            ref_accepts += 1;
            let d2 = TempDir::new("corrupt-ours");
            std::fs::write(d2.file("dump.rdb"), &b).expect("write");
            let o = start_expecting_exit(ours_bin(), d2.path(), Duration::from_secs(2));
            if o.log.contains("panicked") {
                failures.push(format!("{}: valkey-rs panicked", what));
            }
        }
    }
    eprintln!("corruptions the reference accepted: {}", ref_accepts);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n---\n")
    );
}

/// The check tool `valkey-rs-check-rdb`: "RDB looks OK" and exit 0 on a good file; on a
/// truncated one a non-zero exit naming an offset.
#[test]
fn check_tool_accepts_good_and_names_offset_of_truncated() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let tool = env!("CARGO_BIN_EXE_valkey-rs-check-rdb");
    let bytes = small_reference_file(&refbin);
    let d = TempDir::new("check");
    std::fs::write(d.file("dump.rdb"), &bytes).expect("write");
    let out = Command::new(tool)
        .arg(d.file("dump.rdb"))
        .output()
        .expect("run tool");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "good file: {:?}\n{}",
        out.status,
        text
    );
    assert!(text.contains("RDB looks OK"), "good file output:\n{}", text);
    // The full dataset (every type and encoding) written by the reference.
    let src = Server::reference(&refbin, &[]);
    let mut sc = src.conn();
    build_dataset(&mut sc);
    save(&src, &mut sc);
    let out = Command::new(tool)
        .arg(src.dir.join("dump.rdb"))
        .output()
        .expect("run tool");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "full dataset: {:?}\n{}",
        out.status,
        text
    );
    assert!(
        text.contains("RDB looks OK"),
        "full dataset output:\n{}",
        text
    );
    // A wrong CRC footer.
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    std::fs::write(d.file("dump.rdb"), &bad).expect("write");
    let out = Command::new(tool)
        .arg(d.file("dump.rdb"))
        .output()
        .expect("run tool");
    assert!(
        !out.status.success(),
        "a wrong checksum passed the check tool"
    );
    for cut in [5, 20, bytes.len() / 2, bytes.len() - 3] {
        std::fs::write(d.file("dump.rdb"), &bytes[..cut]).expect("write");
        let out = Command::new(tool)
            .arg(d.file("dump.rdb"))
            .output()
            .expect("run tool");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "cut at {}: exit 0\n{}", cut, text);
        assert!(
            names_offset(&text),
            "cut at {}: no offset named:\n{}",
            cut,
            text
        );
        assert!(
            !text.contains("panicked"),
            "cut at {}: panic\n{}",
            cut,
            text
        );
    }
}

// ---------------------------------------------------------------------------------------
// 3. BGSAVE: no stall under a write load; the snapshot is the fork instant.
// ---------------------------------------------------------------------------------------

fn wait_bgsave_done(s: &Server, c: &mut Conn) {
    let done = wait_for(Duration::from_secs(30), || {
        info_int(c, "persistence", "rdb_bgsave_in_progress") == Some(0)
    });
    assert!(done, "{}: BGSAVE did not finish", s.kind.name());
    assert_eq!(
        info_str(c, "persistence", "rdb_last_bgsave_status").as_deref(),
        Some("ok"),
        "{}: rdb_last_bgsave_status",
        s.kind.name()
    );
}

#[test]
fn bgsave_does_not_stall_writers() {
    const KEYS: &str = "100000";
    const BOUND: Duration = Duration::from_millis(50);
    for s in common::servers(&[]) {
        let mut c = s.conn();
        let r = c.call(&["DEBUG", "POPULATE", KEYS, "key", "20"]);
        assert_eq!(escape(&r), escape(OK), "{}: DEBUG POPULATE", s.kind.name());
        let stop = Arc::new(AtomicBool::new(false));
        let measuring = Arc::new(AtomicBool::new(false));
        let port = s.port;
        let (stop2, measuring2) = (stop.clone(), measuring.clone());
        let writer = std::thread::spawn(move || {
            let mut w = Conn::connect(port);
            let mut max = Duration::ZERO;
            let mut n = 0u64;
            let mut i = 0u64;
            while !stop2.load(Ordering::SeqCst) {
                i += 1;
                let key = format!("w:{}", i % 1000);
                let t = Instant::now();
                let r = if i.is_multiple_of(2) {
                    w.call(&["SET", key.as_str(), "value"])
                } else {
                    w.call(&["INCR", "counter"])
                };
                let el = t.elapsed();
                assert!(!r.starts_with(b"-"), "writer got {}", escape(&r));
                if measuring2.load(Ordering::SeqCst) {
                    max = max.max(el);
                    n += 1;
                }
            }
            (max, n)
        });
        std::thread::sleep(Duration::from_millis(100));
        measuring.store(true, Ordering::SeqCst);
        let t = Instant::now();
        let r = c.call(&["BGSAVE"]);
        let bgsave_call = t.elapsed();
        assert_eq!(
            escape(&r),
            escape(b"+Background saving started\r\n"),
            "{}: BGSAVE",
            s.kind.name()
        );
        wait_bgsave_done(&s, &mut c);
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::SeqCst);
        let (max, n) = writer.join().expect("writer thread");
        let fork_usec = info_int(&mut c, "stats", "latest_fork_usec");
        eprintln!(
            "{}: BGSAVE of {} keys: max write latency {:?} over {} requests, BGSAVE call {:?}, \
             latest_fork_usec {:?}",
            s.kind.name(),
            KEYS,
            max,
            n,
            bgsave_call,
            fork_usec
        );
        assert!(n > 0, "{}: no writes measured", s.kind.name());
        assert!(
            max < BOUND,
            "{}: a write stalled {:?} during BGSAVE (bound {:?})",
            s.kind.name(),
            max,
            BOUND
        );
        assert!(
            std::fs::metadata(s.dir.join("dump.rdb")).is_ok(),
            "{}: no dump.rdb after BGSAVE",
            s.kind.name()
        );
    }
}

#[test]
fn bgsave_snapshot_is_the_fork_instant() {
    for t in targets() {
        let s = t.start(&[]);
        let name = s.kind.name();
        let mut c = s.conn();
        let r = c.call(&["DEBUG", "POPULATE", "1000", "key", "10"]);
        assert_eq!(escape(&r), escape(OK), "{}: DEBUG POPULATE", name);
        let before_key2 = c.call(&["GET", "key:2"]);
        // ~1 s of child time: the writes below land while the child runs.
        ok_call(
            &mut c,
            name,
            &[b"CONFIG", b"SET", b"rdb-key-save-delay", b"1000"],
        );
        let r = c.call(&["BGSAVE"]);
        assert_eq!(
            escape(&r),
            escape(b"+Background saving started\r\n"),
            "{}: BGSAVE",
            name
        );
        ok_call(&mut c, name, &[b"SET", b"after", b"x"]);
        ok_call(&mut c, name, &[b"DEL", b"key:1"]);
        ok_call(&mut c, name, &[b"SET", b"key:2", b"changed"]);
        assert_eq!(
            info_int(&mut c, "persistence", "rdb_bgsave_in_progress"),
            Some(1),
            "{}: the child finished too early for the test to mean anything",
            name
        );
        wait_bgsave_done(&s, &mut c);
        let d = copy_dump(&s.dir, "fork-instant");
        drop(s);
        let l = start_on(&t, &d, &[]);
        let mut lc = l.conn();
        assert_eq!(
            escape(&lc.call(&["DBSIZE"])),
            ":1000\\r\\n",
            "{}: DBSIZE",
            name
        );
        assert_eq!(
            escape(&lc.call(&["EXISTS", "after"])),
            ":0\\r\\n",
            "{}: key written after the fork",
            name
        );
        assert_eq!(
            escape(&lc.call(&["EXISTS", "key:1"])),
            ":1\\r\\n",
            "{}: key deleted after the fork",
            name
        );
        assert_eq!(
            escape(&lc.call(&["GET", "key:2"])),
            escape(&before_key2),
            "{}: key changed after the fork",
            name
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. LFU/LRU metadata across save/load, both ways between the servers.
// ---------------------------------------------------------------------------------------

fn int_reply(r: &[u8]) -> i64 {
    match parse_resp(r) {
        Resp::Int(n) => n,
        o => panic!("not an integer: {:?}", o),
    }
}

/// Ignored: valkey-rs tracks no LFU counters yet (OBJECT FREQ always replies "An LFU
/// maxmemory policy is not selected"; maxmemory and eviction are issue 10). Passes with
/// VALKEY_TEST_TARGET=reference.
#[test]
#[ignore = "LFU tracking is issue 10: OBJECT FREQ is not implemented in valkey-rs yet"]
fn lfu_counters_survive_save_and_load() {
    let all = targets();
    let lfu = ["--maxmemory-policy", "allkeys-lfu", "--lfu-decay-time", "0"];
    for writer in &all {
        let w = writer.start(&lfu);
        let mut c = w.conn();
        let wname = w.kind.name();
        for k in ["hot", "warm", "cold"] {
            ok_call(&mut c, wname, &[b"SET", k.as_bytes(), b"v"]);
        }
        for _ in 0..2000 {
            c.send(&["GET", "hot"]).expect("send");
        }
        for _ in 0..2000 {
            c.read_reply().expect("reply");
        }
        for _ in 0..20 {
            ok_call(&mut c, wname, &[b"GET", b"warm"]);
        }
        let freqs: Vec<i64> = ["hot", "warm", "cold"]
            .iter()
            .map(|k| int_reply(&c.call(&["OBJECT", "FREQ", k])))
            .collect();
        assert!(freqs[0] > freqs[2], "{}: LFU counters {:?}", wname, freqs);
        save(&w, &mut c);
        for reader in &all {
            let d = copy_dump(&w.dir, "lfu");
            let r = start_on(reader, &d, &lfu);
            let mut rc = r.conn();
            let got: Vec<i64> = ["hot", "warm", "cold"]
                .iter()
                .map(|k| int_reply(&rc.call(&["OBJECT", "FREQ", k])))
                .collect();
            assert_eq!(
                got,
                freqs,
                "OBJECT FREQ after {} wrote and {} loaded",
                wname,
                r.kind.name()
            );
        }
    }
}

#[test]
fn lru_idle_times_survive_save_and_load() {
    let all = targets();
    let lru = ["--maxmemory-policy", "allkeys-lru"];
    for writer in &all {
        let w = writer.start(&lru);
        let mut c = w.conn();
        let wname = w.kind.name();
        ok_call(&mut c, wname, &[b"SET", b"src", b"v"]);
        let payload = match parse_resp(&c.call(&["DUMP", "src"])) {
            Resp::Bulk(Some(p)) => p,
            o => panic!("{}: DUMP {:?}", wname, o),
        };
        ok_call(
            &mut c,
            wname,
            &[b"RESTORE", b"old", b"0", &payload, b"IDLETIME", b"5000"],
        );
        ok_call(&mut c, wname, &[b"SET", b"fresh", b"v"]);
        let old = int_reply(&c.call(&["OBJECT", "IDLETIME", "old"]));
        assert!((5000..5010).contains(&old), "{}: IDLETIME {}", wname, old);
        save(&w, &mut c);
        for reader in &all {
            let d = copy_dump(&w.dir, "lru");
            let r = start_on(reader, &d, &lru);
            let mut rc = r.conn();
            let rname = r.kind.name();
            let old = int_reply(&rc.call(&["OBJECT", "IDLETIME", "old"]));
            let fresh = int_reply(&rc.call(&["OBJECT", "IDLETIME", "fresh"]));
            assert!(
                (5000..5015).contains(&old),
                "IDLETIME of 'old' after {} wrote and {} loaded: {}",
                wname,
                rname,
                old
            );
            assert!(
                (0..15).contains(&fresh),
                "IDLETIME of 'fresh' after {} wrote and {} loaded: {}",
                wname,
                rname,
                fresh
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 5. A child killed mid-write leaves the previous dump.rdb intact; INFO reports it.
// ---------------------------------------------------------------------------------------

#[test]
fn killed_child_leaves_previous_dump_intact() {
    for t in targets() {
        let s = t.start(&[]);
        let name = s.kind.name();
        let mut c = s.conn();
        let r = c.call(&["DEBUG", "POPULATE", "1000", "key", "10"]);
        assert_eq!(escape(&r), escape(OK), "{}: DEBUG POPULATE", name);
        save(&s, &mut c);
        let before = std::fs::read(s.dir.join("dump.rdb")).expect("dump.rdb after SAVE");
        ok_call(&mut c, name, &[b"SET", b"new", b"x"]);
        ok_call(
            &mut c,
            name,
            &[b"CONFIG", b"SET", b"rdb-key-save-delay", b"100000"],
        );
        let r = c.call(&["BGSAVE"]);
        assert_eq!(
            escape(&r),
            escape(b"+Background saving started\r\n"),
            "{}: BGSAVE",
            name
        );
        let server_pid = info_int(&mut c, "server", "process_id").expect("process_id");
        let mut kids = Vec::new();
        assert!(
            wait_for(Duration::from_secs(5), || {
                kids = children_of(server_pid);
                !kids.is_empty()
            }),
            "{}: no child process of pid {} during BGSAVE",
            name,
            server_pid
        );
        for k in &kids {
            let st = Command::new("kill")
                .args(["-9", &k.to_string()])
                .status()
                .expect("run kill");
            assert!(st.success(), "kill -9 {}", k);
        }
        let done = wait_for(Duration::from_secs(10), || {
            info_int(&mut c, "persistence", "rdb_bgsave_in_progress") == Some(0)
        });
        assert!(done, "{}: the killed BGSAVE is still in progress", name);
        assert_eq!(
            info_str(&mut c, "persistence", "rdb_last_bgsave_status").as_deref(),
            Some("err"),
            "{}: rdb_last_bgsave_status after the child was killed",
            name
        );
        let after = std::fs::read(s.dir.join("dump.rdb")).expect("dump.rdb after the kill");
        assert!(after == before, "{}: dump.rdb changed", name);
        let temps: Vec<String> = std::fs::read_dir(&s.dir)
            .expect("read dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("temp-"))
            .collect();
        assert!(temps.is_empty(), "{}: temp files left: {:?}", name, temps);
        // stop-writes-on-bgsave-error (default yes) with save points: writes are refused,
        // reads served.
        ok_call(&mut c, name, &[b"CONFIG", b"SET", b"save", b"3600 1"]);
        let r = c.call(&["SET", "k2", "v"]);
        assert!(
            r.starts_with(b"-MISCONF "),
            "{}: a write after the failed BGSAVE: {}",
            name,
            escape(&r)
        );
        assert_eq!(
            escape(&c.call(&["GET", "new"])),
            "$1\\r\\nx\\r\\n",
            "{}: GET",
            name
        );
        // The file still loads as the dataset of the SAVE.
        let d = copy_dump(&s.dir, "killed-child");
        drop(s);
        let l = start_on(&t, &d, &[]);
        let mut lc = l.conn();
        assert_eq!(
            escape(&lc.call(&["DBSIZE"])),
            ":1000\\r\\n",
            "{}: DBSIZE",
            name
        );
        assert_eq!(
            escape(&lc.call(&["EXISTS", "new"])),
            ":0\\r\\n",
            "{}: new",
            name
        );
    }
}

// ---------------------------------------------------------------------------------------
// 6. Expired keys and fields in a file are not loaded; rdbchecksum no both ways.
// ---------------------------------------------------------------------------------------

#[test]
fn expired_keys_and_fields_are_dropped_at_load() {
    let all = targets();
    for writer in &all {
        let w = writer.start(&[]);
        let wname = w.kind.name();
        let mut c = w.conn();
        ok_call(&mut c, wname, &[b"DEBUG", b"SET-ACTIVE-EXPIRE", b"0"]);
        ok_call(&mut c, wname, &[b"SET", b"live", b"1"]);
        ok_call(&mut c, wname, &[b"SET", b"gone", b"1", b"PX", b"30"]);
        ok_call(&mut c, wname, &[b"RPUSH", b"gone-list", b"a", b"b"]);
        ok_call(&mut c, wname, &[b"PEXPIRE", b"gone-list", b"30"]);
        ok_call(&mut c, wname, &[b"HSET", b"h", b"a", b"1", b"b", b"2"]);
        ok_call(
            &mut c,
            wname,
            &[b"HPEXPIRE", b"h", b"30", b"FIELDS", b"1", b"a"],
        );
        ok_call(&mut c, wname, &[b"HSET", b"h-all", b"x", b"1"]);
        ok_call(
            &mut c,
            wname,
            &[b"HPEXPIRE", b"h-all", b"30", b"FIELDS", b"1", b"x"],
        );
        std::thread::sleep(Duration::from_millis(100));
        save(&w, &mut c);
        for reader in &all {
            let d = copy_dump(&w.dir, "expired");
            let r = start_on(reader, &d, &[]);
            let rname = r.kind.name();
            let mut rc = r.conn();
            let what = format!("{} wrote, {} loaded", wname, rname);
            assert_eq!(
                escape(&rc.call(&["DBSIZE"])),
                ":2\\r\\n",
                "{}: DBSIZE",
                what
            );
            for k in ["gone", "gone-list", "h-all"] {
                assert_eq!(
                    escape(&rc.call(&["EXISTS", k])),
                    ":0\\r\\n",
                    "{}: {}",
                    what,
                    k
                );
            }
            assert_eq!(
                escape(&rc.call(&["HGETALL", "h"])),
                "*2\\r\\n$1\\r\\nb\\r\\n$1\\r\\n2\\r\\n",
                "{}: HGETALL h",
                what
            );
            assert_eq!(
                escape(&rc.call(&["GET", "live"])),
                "$1\\r\\n1\\r\\n",
                "{}",
                what
            );
        }
    }
}

#[test]
fn files_without_checksum_load_both_ways() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let rt = Target::Reference(refbin);
    let mut readbacks = Vec::new();
    for (writer, reader) in [(&rt, &ours()), (&ours(), &rt)] {
        let w = writer.start(&["--rdbchecksum", "no"]);
        let mut c = w.conn();
        build_small_dataset(&mut c);
        save(&w, &mut c);
        let bytes = std::fs::read(w.dir.join("dump.rdb")).expect("dump.rdb");
        assert!(
            bytes.ends_with(&[0u8; 8]),
            "{}: rdbchecksum no must write a zero CRC: {}",
            w.kind.name(),
            escape_short(&bytes[bytes.len().saturating_sub(8)..], 40)
        );
        let d = copy_dump(&w.dir, "nocrc");
        let r = start_on(reader, &d, &[]);
        readbacks.push((
            format!("{} wrote, {} loaded", w.kind.name(), r.kind.name()),
            masked(&readback(&mut r.conn())),
        ));
    }
    assert!(
        readbacks[0].1.len() > 20,
        "too little loaded: {:?}",
        readbacks[0].1
    );
    compare_readbacks(
        "rdbchecksum no",
        &readbacks[0].0,
        &readbacks[0].1,
        &readbacks[1].0,
        &readbacks[1].1,
    );
}

// ---------------------------------------------------------------------------------------
// 7. LZF output byte-identical to the reference's (strings over 20 bytes, via DUMP).
// ---------------------------------------------------------------------------------------

/// Strings whose LZF match reaches (or nearly reaches) the end of the input: upstream's
/// liblzf compares 16 bytes unrolled when more than 16 remain, which can extend a match
/// past `in_end - ip - 2`. The DUMP payloads (and so the RDB files) must be the same bytes.
#[test]
fn lzf_strings_dump_identically() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let r = Server::reference(&refbin, &[]);
    let o = ours().start(&[]);
    let mut rc = r.conn();
    let mut oc = o.conn();
    let mut rng = Rng(0x1f2f_0007);
    let mut values: Vec<Vec<u8>> = Vec::new();
    for prefix in 1..12usize {
        for run in 12..44usize {
            let mut val: Vec<u8> = (0..prefix).map(|i| b'a' + (i as u8 % 26)).collect();
            val.extend(std::iter::repeat_n(b'x', run));
            values.push(val.clone());
            val.extend_from_slice(b"tail");
            values.push(val);
        }
    }
    for _ in 0..200 {
        let len = rng.range(21, 120) as usize;
        let alphabet = rng.range(1, 4) as u8;
        values.push(
            (0..len)
                .map(|_| b'a' + rng.below(alphabet as u64) as u8)
                .collect(),
        );
    }
    let mut diffs = Vec::new();
    for val in &values {
        let set: Vec<&[u8]> = vec![b"SET", b"k", val];
        ok_call(&mut rc, "reference", &set);
        ok_call(&mut oc, "valkey-rs", &set);
        let want = rc.call(&["DUMP", "k"]);
        let got = oc.call(&["DUMP", "k"]);
        if want != got {
            diffs.push(format!(
                "{:?} ({} bytes):\n  reference {}\n  valkey-rs {}",
                String::from_utf8_lossy(val),
                val.len(),
                escape(&want),
                escape(&got)
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} DUMP payloads differ, e.g.:\n{}",
        diffs.len(),
        values.len(),
        diffs[..diffs.len().min(5)].join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 8. Scale: 100,000 mixed keys and four 100,000-element collections, both ways, compared
//    by DEBUG DIGEST and DBSIZE (the per-key readback would be too slow here).
// ---------------------------------------------------------------------------------------

fn build_large_dataset(c: &mut Conn) {
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    for i in 0..100_000u32 {
        let k = format!("{}:{}", ["s", "l", "h", "S", "z"][(i % 5) as usize], i).into_bytes();
        let n = i.to_string().into_bytes();
        cmds.push(match i % 5 {
            0 => vec![b"SET".to_vec(), k, format!("value-{}", i).into_bytes()],
            1 => vec![b"RPUSH".to_vec(), k, n.clone(), b"x".to_vec()],
            2 => vec![b"HSET".to_vec(), k, b"f".to_vec(), n],
            3 => vec![b"SADD".to_vec(), k, n, b"m".to_vec()],
            _ => vec![b"ZADD".to_vec(), k, n.clone(), n],
        });
        if i % 1000 == 0 {
            cmds.push(vec![
                b"PEXPIREAT".to_vec(),
                format!("s:{}", i).into_bytes(),
                FAR_MS.to_string().into_bytes(),
            ]);
        }
    }
    for chunk in 0..1000u32 {
        let ids = chunk * 100..chunk * 100 + 100;
        let mut l = v(&[b"RPUSH", b"big:list"]);
        let mut h = v(&[b"HSET", b"big:hash"]);
        let mut st = v(&[b"SADD", b"big:set"]);
        let mut z = v(&[b"ZADD", b"big:zset"]);
        for j in ids {
            let m = format!("member-{:08}", j).into_bytes();
            l.push(m.clone());
            h.push(m.clone());
            h.push(j.to_string().into_bytes());
            st.push(m.clone());
            z.push(format!("{}", j as f64 / 3.0).into_bytes());
            z.push(m);
        }
        cmds.extend([l, h, st, z]);
    }
    pipeline(c, &cmds);
}

#[test]
fn large_dataset_digests_match_both_ways() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let rt = Target::Reference(refbin);
    for (writer, reader) in [(&rt, &ours()), (&ours(), &rt)] {
        let w = writer.start(&[]);
        let mut c = w.conn();
        build_large_dataset(&mut c);
        let want = digest(&mut c).expect("writer DEBUG DIGEST");
        let size = c.call(&["DBSIZE"]);
        save(&w, &mut c);
        let d = copy_dump(&w.dir, "large");
        let r = start_on(reader, &d, &[]);
        let mut rc = r.conn();
        let what = format!("{} wrote, {} loaded", w.kind.name(), r.kind.name());
        assert_eq!(
            escape(&rc.call(&["DBSIZE"])),
            escape(&size),
            "{}: DBSIZE",
            what
        );
        assert_eq!(
            digest(&mut rc).as_deref().map(escape),
            Some(escape(&want)),
            "{}: DEBUG DIGEST",
            what
        );
        for k in ["big:list", "big:hash", "big:set", "big:zset"] {
            assert_eq!(
                escape(&rc.call(&["DEBUG", "DIGEST-VALUE", k])),
                escape(&c.call(&["DEBUG", "DIGEST-VALUE", k])),
                "{}: DEBUG DIGEST-VALUE {}",
                what,
                k
            );
            assert_eq!(
                escape(&rc.call(&["OBJECT", "ENCODING", k])),
                escape(&c.call(&["OBJECT", "ENCODING", k])),
                "{}: OBJECT ENCODING {}",
                what,
                k
            );
        }
    }
}

/// Function libraries in a reference snapshot survive a pass through valkey-rs (kept as
/// source until scripting lands): the reference loads our file and lists the library.
#[test]
fn function_libraries_survive_a_round_trip() {
    let Some(refbin) = require_reference() else {
        return;
    };
    let theirs = Target::Reference(refbin);
    let lib = "#!lua name=keptlib\nserver.register_function('kept', function() return 7 end)";
    let src = TempDir::new("fn-src");
    let s = start_on(&theirs, &src, &[]);
    let mut c = s.conn();
    assert_eq!(c.call(&["FUNCTION", "LOAD", lib]), b"$7\r\nkeptlib\r\n");
    c.call(&["SET", "k", "v"]);
    save(&s, &mut c);
    drop(c);
    drop(s);

    let mid = copy_dump(src.path(), "fn-mid");
    let s = start_on(&ours(), &mid, &[]);
    let mut c = s.conn();
    assert_eq!(c.call(&["GET", "k"]), b"$1\r\nv\r\n");
    save(&s, &mut c);
    drop(c);
    drop(s);

    let back = copy_dump(mid.path(), "fn-back");
    let s = start_on(&theirs, &back, &[]);
    let mut c = s.conn();
    assert_eq!(c.call(&["FCALL", "kept", "0"]), b":7\r\n");
    assert_eq!(c.call(&["GET", "k"]), b"$1\r\nv\r\n");
}
