//! Encryption at rest (issue 14, docs/encryption.md) with the real binary: every type
//! round-trips through encrypted RDB and AOF files across restarts; a wrong key, a
//! flipped bit in any chunk, a swapped pair of chunks, a truncated file and an appended
//! chunk are refused with the file and offset in the log and the server not starting;
//! SIGKILL with `appendfsync always` loses nothing acknowledged; upstream's
//! valkey-server refuses an encrypted file without crashing; key file permissions;
//! key rotation; the check tools with `--key-file`; each file bound to its identity
//! (swapped, renamed, older files refused); `--truncate-to-timestamp` on encrypted files.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::dataset::{compare_readbacks, info_str, masked, readback};
use common::proc::{Proc, TempDir, BIN};
use common::{require_reference, wait_for, Conn};

const MAGIC: &[u8] = b"VKRS-ENC";
/// The fixed part of the header (format 2 adds the file's identity after it).
const HEADER: usize = 48;
const CANARY: &str = "plaintext-canary-7f3a";

/// Writes a key file (64 hex digits, or 32 raw bytes) with `mode`.
fn key_file(dir: &TempDir, name: &str, seed: u8, mode: u32, raw: bool) -> String {
    let bytes: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(seed))
        .collect();
    let content = if raw {
        bytes
    } else {
        let mut h: Vec<u8> = bytes
            .iter()
            .flat_map(|b| format!("{b:02x}").into_bytes())
            .collect();
        h.push(b'\n');
        h
    };
    let p = dir.file(name);
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p.to_string_lossy().into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn ok(c: &mut Conn, cmd: &[&str]) {
    let r = c.call(cmd);
    assert!(
        !r.starts_with(b"-"),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&r)
    );
}

/// Every type in several encodings, TTLs, field TTLs, a stream group, a function.
fn populate(c: &mut Conn) {
    ok(c, &["SET", "str", CANARY]);
    ok(c, &["SET", "int", "12345"]);
    ok(c, &["SET", "long", &"x".repeat(300)]);
    ok(c, &["SET", "ttl", "v", "EX", "100000"]);
    ok(c, &["RPUSH", "list", "a", "b", "1", "2"]);
    ok(c, &["HSET", "hash", "f1", "v1", "f2", "2"]);
    ok(c, &["HSET", "fhash", "a", "1", "b", "2", "c", "3"]);
    ok(c, &["HEXPIRE", "fhash", "100000", "FIELDS", "1", "a"]);
    ok(c, &["SADD", "intset", "1", "2", "3"]);
    ok(c, &["SADD", "set", "a", "b", "c"]);
    ok(c, &["ZADD", "zset", "1.5", "a", "2", "b"]);
    ok(c, &["XADD", "stream", "1-1", "f", "v"]);
    ok(c, &["XADD", "stream", "2-1", "g", "w"]);
    ok(c, &["XGROUP", "CREATE", "stream", "grp", "0"]);
    ok(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "grp",
            "alice",
            "COUNT",
            "1",
            "STREAMS",
            "stream",
            ">",
        ],
    );
    let mut big_list = vec!["RPUSH".to_string(), "biglist".into()];
    let mut big_set = vec!["SADD".to_string(), "bigset".into()];
    let mut big_zset = vec!["ZADD".to_string(), "bigzset".into()];
    let mut big_hash = vec!["HSET".to_string(), "bighash".into()];
    for i in 0..600 {
        big_list.push(format!("item-{i}-{}", "l".repeat(i % 50)));
        big_set.push(format!("member:{i}"));
        big_zset.push(format!("{}", i as f64 / 3.0));
        big_zset.push(format!("z{i}"));
        big_hash.push(format!("field{i}"));
        big_hash.push(format!("value{i}"));
    }
    for cmd in [&big_list, &big_set, &big_zset, &big_hash] {
        let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
        ok(c, &refs);
    }
    // Enough incompressible data for several 64 KiB chunks.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..40 {
        let v: String = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (b'a' + (x % 26) as u8) as char
            })
            .collect();
        ok(c, &["SET", &format!("blob:{i}"), &v]);
    }
    ok(
        c,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=enclib\nserver.register_function('encf', function() return 7 end)",
        ],
    );
    ok(c, &["SELECT", "3"]);
    ok(c, &["SET", "db3key", "three", "PX", "500000000"]);
    ok(c, &["SELECT", "0"]);
}

fn state(c: &mut Conn) -> (std::collections::BTreeMap<String, String>, Vec<u8>, Vec<u8>) {
    (
        masked(&readback(c)),
        c.call(&["DEBUG", "DIGEST"]),
        c.call(&["FCALL", "encf", "0"]),
    )
}

#[track_caller]
fn same_state(a: &(std::collections::BTreeMap<String, String>, Vec<u8>, Vec<u8>), c: &mut Conn) {
    let b = state(c);
    compare_readbacks("dataset", "before", &a.0, "after", &b.0);
    assert_eq!(a.1, b.1, "digest");
    assert_eq!(b.2, b":7\r\n");
}

/// Starts a server on `dir` with `args`, writes [`populate`]'s dataset, SAVEs, and returns
/// its [`state`].
fn populate_and_save(
    dir: &TempDir,
    args: &[&str],
) -> (std::collections::BTreeMap<String, String>, Vec<u8>, Vec<u8>) {
    let s = Proc::start(dir.path(), args);
    let mut c = s.conn();
    populate(&mut c);
    assert_eq!(c.call(&["SAVE"]), b"+OK\r\n");
    state(&mut c)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The encrypted file is owner-only, has the magic and holds no plaintext.
#[track_caller]
fn assert_encrypted(p: &Path) {
    let b = std::fs::read(p).unwrap();
    assert!(b.starts_with(MAGIC), "{} is not encrypted", p.display());
    assert_eq!(mode(p), 0o600, "{}", p.display());
    assert!(
        !contains(&b, CANARY.as_bytes()),
        "plaintext in {}",
        p.display()
    );
    assert!(!contains(&b, b"bigzset"), "plaintext in {}", p.display());
}

/// Length of an encrypted file's header: the fixed part, then (format 2) the seq, the
/// name length and the name.
fn header_len(b: &[u8]) -> usize {
    if b[8] == 2 {
        HEADER + 9 + b[HEADER + 8] as usize
    } else {
        HEADER
    }
}

/// Offsets of the chunks of an encrypted file.
fn chunks(b: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut pos = header_len(b);
    while pos + 4 <= b.len() {
        v.push(pos);
        let w = u32::from_le_bytes(b[pos..pos + 4].try_into().unwrap());
        pos += 4 + (w & ((1 << 30) - 1)) as usize + 16;
    }
    v
}

fn aof_files(dir: &TempDir) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.file("appendonlydir"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.to_string_lossy().ends_with(".manifest"))
        .collect();
    v.sort();
    v
}

fn find_aof(dir: &TempDir, suffix: &str) -> PathBuf {
    aof_files(dir)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no {suffix} file"))
}

/// The server must refuse to start; returns its log.
#[track_caller]
fn refused(dir: &TempDir, extra: &[&str]) -> String {
    match Proc::try_start(Path::new(BIN), dir.path(), extra, false) {
        Ok(p) => panic!("started on a bad file; log:\n{}", p.log_text()),
        Err(log) => log,
    }
}

#[test]
fn rdb_round_trip_every_type() {
    let dir = TempDir::new("enc-rdb");
    let key = key_file(&dir, "key", 1, 0o600, false);
    let args = ["--save", "", "--persistence-encryption-key-file", &key];
    let before = {
        let s = Proc::start(dir.path(), &args);
        let mut c = s.conn();
        populate(&mut c);
        let st = state(&mut c);
        assert_eq!(c.call(&["SAVE"]), b"+OK\r\n");
        assert_eq!(
            info_str(&mut c, "persistence", "persistence_encryption").as_deref(),
            Some("on")
        );
        let fp = info_str(
            &mut c,
            "persistence",
            "persistence_encryption_key_fingerprint",
        )
        .unwrap();
        assert_eq!(fp.len(), 16);
        let info = String::from_utf8_lossy(&c.call(&["INFO", "persistence"])).into_owned();
        let hexkey = std::fs::read_to_string(&key).unwrap();
        assert!(!info.contains(hexkey.trim()), "INFO shows the key");
        st
    };
    assert_encrypted(&dir.file("dump.rdb"));
    assert!(chunks(&std::fs::read(dir.file("dump.rdb")).unwrap()).len() >= 3);
    // Restart: everything back; DEBUG RELOAD; BGSAVE in the forked child; restart again.
    let s = Proc::start(dir.path(), &args);
    let mut c = s.conn();
    same_state(&before, &mut c);
    assert!(s.log_text().contains("Decrypted RDB file dump.rdb"));
    assert_eq!(c.call(&["DEBUG", "RELOAD"]), b"+OK\r\n");
    same_state(&before, &mut c);
    std::fs::remove_file(dir.file("dump.rdb")).unwrap();
    assert_eq!(c.call(&["BGSAVE"]), b"+Background saving started\r\n");
    assert!(wait_for(Duration::from_secs(10), || dir
        .file("dump.rdb")
        .exists()
        && c.call(&["INFO", "persistence"])
            .windows(26)
            .any(|w| w == b"rdb_bgsave_in_progress:0\r\n")));
    assert_encrypted(&dir.file("dump.rdb"));
    drop(s);
    let s = Proc::start(dir.path(), &args);
    same_state(&before, &mut s.conn());
    // The raw-key form of the same key opens the file too.
    drop(s);
    let raw = key_file(&dir, "key.raw", 1, 0o600, true);
    let s = Proc::start(
        dir.path(),
        &["--save", "", "--persistence-encryption-key-file", &raw],
    );
    same_state(&before, &mut s.conn());
    // Without the key the file is refused, naming it.
    drop(s);
    let log = refused(&dir, &["--save", ""]);
    assert!(
        log.contains("dump.rdb") && log.contains("no key is configured"),
        "{log}"
    );
}

#[test]
fn aof_round_trip_every_type() {
    for preamble in ["yes", "no"] {
        let dir = TempDir::new("enc-aof");
        let key = key_file(&dir, "key", 2, 0o600, false);
        let args = [
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--aof-use-rdb-preamble",
            preamble,
            "--persistence-encryption-key-file",
            &key,
        ];
        let (before, after_rewrite) = {
            let s = Proc::start(dir.path(), &args);
            let mut c = s.conn();
            populate(&mut c);
            let st = state(&mut c);
            for f in aof_files(&dir) {
                assert_encrypted(&f);
            }
            drop(s);
            let s = Proc::start(dir.path(), &args);
            let mut c = s.conn();
            same_state(&st, &mut c);
            // A rewrite: new base and incr, encrypted; more writes after it.
            assert_eq!(
                c.call(&["BGREWRITEAOF"]),
                b"+Background append only file rewriting started\r\n"
            );
            assert!(wait_for(Duration::from_secs(10), || {
                common::aof_rewrite_idle(&mut c)
            }));
            ok(&mut c, &["RPUSH", "list", "after-rewrite"]);
            ok(&mut c, &["INCRBY", "int", "5"]);
            (st, state(&mut c))
        };
        let _ = before;
        for f in aof_files(&dir) {
            assert_encrypted(&f);
        }
        let s = Proc::start(dir.path(), &args);
        let mut c = s.conn();
        same_state(&after_rewrite, &mut c);
        // Writes after a restart go to a new incr file (an encrypted one is never
        // resumed).
        ok(&mut c, &["SET", "reopened", "1"]);
        let st = state(&mut c);
        drop(s);
        let s = Proc::start(dir.path(), &args);
        same_state(&st, &mut s.conn());
        let manifest = std::fs::read(dir.file("appendonlydir/appendonly.aof.manifest")).unwrap();
        assert!(manifest.starts_with(b"file "), "manifest stays plaintext");
    }
}

/// Builds a file set with `make`, tampers with one file, expects a refusal naming it.
fn expect_refusal(dir: &TempDir, file: &Path, args: &[&str], tamper: &dyn Fn(&mut Vec<u8>)) {
    let good = std::fs::read(file).unwrap();
    let mut bad = good.clone();
    tamper(&mut bad);
    std::fs::write(file, &bad).unwrap();
    let log = refused(dir, args);
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let _line = log
        .lines()
        .find(|l| l.contains(&name) && l.contains("offset"))
        .unwrap_or_else(|| panic!("no line naming {name} and an offset:\n{log}"));
    assert!(!log.contains("Ready to accept"), "{log}");
    std::fs::write(file, &good).unwrap();
}

/// Tamper: a copy of the last chunk appended.
fn append_last_chunk(b: &mut Vec<u8>) {
    let c = chunks(b);
    let last = b[c[c.len() - 1]..].to_vec();
    b.extend_from_slice(&last);
}

fn swap_chunks(b: &mut Vec<u8>, i: usize) {
    let c = chunks(b);
    let (a, m, e) = (c[i], c[i + 1], c[i + 2]);
    let mut out = b[..a].to_vec();
    out.extend_from_slice(&b[m..e]);
    out.extend_from_slice(&b[a..m]);
    out.extend_from_slice(&b[e..]);
    *b = out;
}

#[test]
fn tampered_files_are_refused() {
    let dir = TempDir::new("enc-tamper");
    let key = key_file(&dir, "key", 3, 0o600, false);
    let other = key_file(&dir, "other", 4, 0o600, false);
    let args = ["--save", "", "--persistence-encryption-key-file", &key];
    populate_and_save(&dir, &args);
    let rdb = dir.file("dump.rdb");
    let n = chunks(&std::fs::read(&rdb).unwrap()).len();
    assert!(n >= 4, "{n} chunks");
    // Wrong key.
    let log = refused(
        &dir,
        &["--save", "", "--persistence-encryption-key-file", &other],
    );
    assert!(
        log.contains("dump.rdb") && log.contains("wrong key"),
        "{log}"
    );
    // A flipped bit in each chunk (its length word, its ciphertext, its tag) and in the
    // header.
    for k in 0..n {
        for delta in [2usize, 100, 17] {
            expect_refusal(&dir, &rdb, &args, &|b| {
                let c = chunks(b);
                let end = c.get(k + 1).copied().unwrap_or(b.len());
                let at = (c[k] + delta).min(end - 1);
                b[at] ^= 0x04;
            });
        }
    }
    expect_refusal(&dir, &rdb, &args, &|b| b[30] ^= 1);
    // A swapped pair of chunks.
    expect_refusal(&dir, &rdb, &args, &|b| swap_chunks(b, 0));
    expect_refusal(&dir, &rdb, &args, &|b| swap_chunks(b, 1));
    // Truncated: at a chunk boundary, inside a chunk, inside the header.
    expect_refusal(&dir, &rdb, &args, &|b| {
        let c = chunks(b);
        b.truncate(c[c.len() - 1]);
    });
    expect_refusal(&dir, &rdb, &args, &|b| b.truncate(b.len() - 5));
    expect_refusal(&dir, &rdb, &args, &|b| b.truncate(HEADER + 100));
    // An appended chunk: a copy of the last one, or the first one.
    expect_refusal(&dir, &rdb, &args, &append_last_chunk);
    expect_refusal(&dir, &rdb, &args, &|b| {
        let c = chunks(b);
        let first = b[c[0]..c[1]].to_vec();
        b.extend_from_slice(&first);
    });
    // The untouched file still loads.
    Proc::start(dir.path(), &args);
}

#[test]
fn tampered_aof_is_refused_and_torn_tail_is_truncated() {
    let dir = TempDir::new("enc-aof-tamper");
    let key = key_file(&dir, "key", 5, 0o600, false);
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--persistence-encryption-key-file",
        &key,
    ];
    let want = {
        let s = Proc::start(dir.path(), &args);
        let mut c = s.conn();
        populate(&mut c);
        state(&mut c)
    };
    let base = find_aof(&dir, ".base.rdb");
    let incr = find_aof(&dir, ".incr.aof");
    assert!(chunks(&std::fs::read(&incr).unwrap()).len() > 10);
    let strict: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--aof-load-truncated", "no"])
        .collect();
    for k in [0usize, 3, 7] {
        expect_refusal(&dir, &incr, &args, &|b| {
            let c = chunks(b);
            b[c[k] + 6] ^= 0x80;
        });
    }
    expect_refusal(&dir, &incr, &args, &|b| swap_chunks(b, 2));
    // A whole appended chunk (a copy) fails authentication even with
    // aof-load-truncated yes.
    expect_refusal(&dir, &incr, &args, &append_last_chunk);
    expect_refusal(&dir, &base, &args, &|b| b.truncate(b.len() - 1));
    // A base cut inside its header is damage (a base is renamed into place complete),
    // not a torn write: refused even with aof-load-truncated yes.
    {
        let good = std::fs::read(&base).unwrap();
        std::fs::write(&base, &good[..HEADER + 3]).unwrap();
        let log = refused(&dir, &args);
        assert!(log.contains("ends inside its header"), "{log}");
        assert_eq!(
            std::fs::read(&base).unwrap(),
            &good[..HEADER + 3],
            "base cut"
        );
        std::fs::write(&base, &good).unwrap();
    }
    // A valid file in the wrong role: the incr file's content as the base.
    let incr_bytes = std::fs::read(&incr).unwrap();
    let log = {
        let good = std::fs::read(&base).unwrap();
        std::fs::write(&base, &incr_bytes).unwrap();
        let log = refused(&dir, &args);
        std::fs::write(&base, &good).unwrap();
        log
    };
    assert!(log.contains("manifest names it as the base"), "{log}");
    expect_refusal(&dir, &base, &args, &|b| b[HEADER + 10] ^= 1);
    // A torn last batch: refused with aof-load-truncated no...
    let good = std::fs::read(&incr).unwrap();
    let mut torn = good.clone();
    torn.extend_from_slice(&good[chunks(&good)[5]..][..30]);
    std::fs::write(&incr, &torn).unwrap();
    let log = refused(&dir, &strict);
    assert!(log.contains("torn batch"), "{log}");
    // ...and cut back to the last complete batch with yes: nothing acknowledged lost.
    let s = Proc::start(dir.path(), &args);
    same_state(&want, &mut s.conn());
    assert!(
        s.log_text().contains("Truncating the AOF"),
        "{}",
        s.log_text()
    );
    assert_eq!(std::fs::read(&incr).unwrap(), good);
}

#[test]
fn sigkill_with_appendfsync_always_loses_nothing() {
    let dir = TempDir::new("enc-kill");
    let key = key_file(&dir, "key", 6, 0o600, false);
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--persistence-encryption-key-file",
        &key,
    ];
    let mut acked_total = 0i64;
    for round in 0..4u64 {
        let s = Proc::start(dir.path(), &args);
        let mut c = s.conn();
        let have: i64 = String::from_utf8_lossy(&c.call(&["GET", "counter"]))
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        assert!(
            have >= acked_total && have <= acked_total + 1,
            "round {round}: counter {have}, acknowledged {acked_total}"
        );
        let port = s.port;
        let writer = std::thread::spawn(move || {
            let mut c = Conn::connect(port);
            let mut last = 0i64;
            loop {
                let big = "v".repeat(70_000 * (last as usize % 3));
                match c.cmd(&["MSET", "blob", &big, "x", "y"]) {
                    Ok(r) if r == b"+OK\r\n" => {}
                    _ => return last,
                }
                match c.cmd(&["INCR", "counter"]) {
                    Ok(r) if r.starts_with(b":") => {
                        last = String::from_utf8_lossy(&r[1..]).trim().parse().unwrap();
                    }
                    _ => return last,
                }
            }
        });
        std::thread::sleep(Duration::from_millis(150 + 70 * round));
        s.sigkill();
        let last = writer.join().unwrap();
        assert!(last >= acked_total, "no progress in round {round}");
        acked_total = acked_total.max(last);
    }
    assert!(
        acked_total > 20,
        "too few writes acknowledged: {acked_total}"
    );
    let s = Proc::start(dir.path(), &args);
    let got: i64 = String::from_utf8_lossy(&s.conn().call(&["GET", "counter"]))
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    assert!(
        got >= acked_total,
        "lost acknowledged writes: {got} < {acked_total}"
    );
    for f in aof_files(&dir) {
        assert!(std::fs::read(&f).unwrap().starts_with(MAGIC));
    }
}

#[test]
fn reference_refuses_encrypted_files() {
    let Some(reference) = require_reference() else {
        return;
    };
    let dir = TempDir::new("enc-ref");
    let key = key_file(&dir, "key", 7, 0o600, false);
    populate_and_save(
        &dir,
        &[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--persistence-encryption-key-file",
            &key,
        ],
    );
    // The RDB: "Wrong signature", exit status 1, no crash.
    match Proc::try_start(&reference, dir.path(), &["--save", ""], false) {
        Ok(_) => panic!("the reference started on an encrypted dump.rdb"),
        Err(log) => {
            assert!(log.contains("Wrong signature"), "{log}");
            assert!(!log.contains("crashed"), "{log}");
        }
    }
    let st = Command::new(&reference)
        .args(["--port", "0", "--dir", &dir.dir_arg(), "--save", ""])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(1), "{st:?}");
    // The AOF directory: its base is refused as a bad file.
    std::fs::remove_file(dir.file("dump.rdb")).unwrap();
    match Proc::try_start(
        &reference,
        dir.path(),
        &["--save", "", "--appendonly", "yes"],
        false,
    ) {
        Ok(_) => panic!("the reference started on an encrypted AOF"),
        Err(log) => {
            assert!(log.contains("Bad file format"), "{log}");
            assert!(!log.contains("crashed"), "{log}");
        }
    }
}

#[test]
fn key_file_must_be_owner_only_and_a_256_bit_key() {
    let dir = TempDir::new("enc-perm");
    for m in [0o644, 0o640, 0o604, 0o660] {
        let key = key_file(&dir, &format!("key{m:o}"), 8, m, false);
        let log = refused(&dir, &["--persistence-encryption-key-file", &key]);
        assert!(log.contains(&key) && log.contains("owner-only"), "{log}");
    }
    let short = dir.file("short");
    std::fs::write(&short, b"abc").unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = refused(
        &dir,
        &["--persistence-encryption-key-file", short.to_str().unwrap()],
    );
    assert!(log.contains("256-bit key"), "{log}");
    let log = refused(
        &dir,
        &["--persistence-encryption-key-file", "/nonexistent/k"],
    );
    assert!(log.contains("/nonexistent/k"), "{log}");
    // CONFIG SET checks the same; a refused file changes nothing.
    let good = key_file(&dir, "good", 9, 0o400, false);
    let s = Proc::start(dir.path(), &["--persistence-encryption-key-file", &good]);
    let mut c = s.conn();
    let fp = info_str(
        &mut c,
        "persistence",
        "persistence_encryption_key_fingerprint",
    );
    let loose = key_file(&dir, "loose", 10, 0o644, false);
    let r = c.call(&["CONFIG", "SET", "persistence-encryption-key-file", &loose]);
    let text = String::from_utf8_lossy(&r).into_owned();
    assert!(
        text.starts_with("-ERR CONFIG SET failed (possibly related to argument 'persistence-encryption-key-file')")
            && text.contains("owner-only"),
        "{text}"
    );
    assert_eq!(
        info_str(
            &mut c,
            "persistence",
            "persistence_encryption_key_fingerprint"
        ),
        fp
    );
    assert_eq!(
        c.call(&["CONFIG", "GET", "persistence-encryption-key-file"]),
        format!(
            "*2\r\n$31\r\npersistence-encryption-key-file\r\n${}\r\n{}\r\n",
            good.len(),
            good
        )
        .into_bytes()
    );
    // Off: empty value, the fields gone (INFO as upstream's), files plaintext again.
    ok(
        &mut c,
        &["CONFIG", "SET", "persistence-encryption-key-file", ""],
    );
    assert_eq!(
        info_str(&mut c, "persistence", "persistence_encryption"),
        None
    );
    ok(&mut c, &["SET", "k", "v"]);
    assert_eq!(c.call(&["SAVE"]), b"+OK\r\n");
    assert!(std::fs::read(dir.file("dump.rdb"))
        .unwrap()
        .starts_with(b"VALKEY"));
}

#[test]
fn key_rotation() {
    let dir = TempDir::new("enc-rotate");
    let a = key_file(&dir, "a", 11, 0o600, false);
    let b = key_file(&dir, "b", 12, 0o600, false);
    // A plaintext dump first: turning encryption on still loads it.
    let want = populate_and_save(&dir, &["--save", ""]);
    let s = Proc::start(
        dir.path(),
        &["--save", "", "--persistence-encryption-key-file", &a],
    );
    let mut c = s.conn();
    same_state(&want, &mut c);
    assert_eq!(c.call(&["SAVE"]), b"+OK\r\n");
    assert_encrypted(&dir.file("dump.rdb"));
    let fp_a = info_str(
        &mut c,
        "persistence",
        "persistence_encryption_key_fingerprint",
    );
    // Rotate: the new key for new files, the old one for reading.
    ok(
        &mut c,
        &[
            "CONFIG",
            "SET",
            "persistence-encryption-key-file",
            &b,
            "persistence-encryption-old-key-file",
            &a,
        ],
    );
    let fp_b = info_str(
        &mut c,
        "persistence",
        "persistence_encryption_key_fingerprint",
    );
    assert_ne!(fp_a, fp_b);
    assert_eq!(
        info_str(
            &mut c,
            "persistence",
            "persistence_encryption_old_key_fingerprint"
        ),
        fp_a
    );
    drop(s);
    // The file under A loads with B + old A, not with B alone.
    let log = refused(
        &dir,
        &["--save", "", "--persistence-encryption-key-file", &b],
    );
    assert!(log.contains("wrong key"), "{log}");
    let s = Proc::start(
        dir.path(),
        &[
            "--save",
            "",
            "--persistence-encryption-key-file",
            &b,
            "--persistence-encryption-old-key-file",
            &a,
        ],
    );
    let mut c = s.conn();
    same_state(&want, &mut c);
    // BGSAVE rewrites it under B; B alone now suffices.
    assert_eq!(c.call(&["BGSAVE"]), b"+Background saving started\r\n");
    assert!(wait_for(Duration::from_secs(10), || {
        info_str(&mut c, "persistence", "rdb_bgsave_in_progress").as_deref() == Some("0")
    }));
    drop(s);
    let s = Proc::start(
        dir.path(),
        &["--save", "", "--persistence-encryption-key-file", &b],
    );
    same_state(&want, &mut s.conn());

    // The AOF: writes under A; rotation keeps the open incr under A until the rewrite.
    drop(s);
    let dir = TempDir::new("enc-rotate-aof");
    let a = key_file(&dir, "a", 11, 0o600, false);
    let b = key_file(&dir, "b", 12, 0o600, false);
    let aof = ["--appendonly", "yes", "--appendfsync", "always"];
    let with =
        |k: &[&str]| -> Vec<String> { aof.iter().chain(k.iter()).map(|s| s.to_string()).collect() };
    let run = |args: &[String]| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::start(dir.path(), &refs)
    };
    let s = run(&with(&["--persistence-encryption-key-file", &a]));
    let mut c = s.conn();
    populate(&mut c);
    ok(
        &mut c,
        &[
            "CONFIG",
            "SET",
            "persistence-encryption-key-file",
            &b,
            "persistence-encryption-old-key-file",
            &a,
        ],
    );
    ok(&mut c, &["SET", "after-rotation", "1"]);
    let mid = state(&mut c);
    drop(s);
    let s = run(&with(&[
        "--persistence-encryption-key-file",
        &b,
        "--persistence-encryption-old-key-file",
        &a,
    ]));
    let mut c = s.conn();
    same_state(&mid, &mut c);
    assert_eq!(
        c.call(&["BGREWRITEAOF"]),
        b"+Background append only file rewriting started\r\n"
    );
    assert!(wait_for(Duration::from_secs(10), || {
        info_str(&mut c, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
            && aof_files(&dir).len() == 2
    }));
    ok(&mut c, &["SET", "after-rewrite", "1"]);
    let end = state(&mut c);
    drop(s);
    let s = run(&with(&["--persistence-encryption-key-file", &b]));
    same_state(&end, &mut s.conn());
}

#[test]
fn check_tools_take_key_file() {
    let dir = TempDir::new("enc-tools");
    let key = key_file(&dir, "key", 13, 0o600, false);
    populate_and_save(
        &dir,
        &[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--persistence-encryption-key-file",
            &key,
        ],
    );
    let rdb_tool = env!("CARGO_BIN_EXE_valkey-rs-check-rdb");
    let aof_tool = env!("CARGO_BIN_EXE_valkey-rs-check-aof");
    let dump = dir.file("dump.rdb").to_string_lossy().into_owned();
    let run = |bin: &str, args: &[&str]| {
        let o = Command::new(bin).args(args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (code, out) = run(rdb_tool, &["--key-file", &key, &dump]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("RDB looks OK") && out.contains("encrypted file"),
        "{out}"
    );
    let (code, out) = run(rdb_tool, &[&dump]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no key is configured"), "{out}");
    let mut b = std::fs::read(&dump).unwrap();
    b[HEADER + 70_000] ^= 2;
    std::fs::write(&dump, &b).unwrap();
    let (code, out) = run(rdb_tool, &["--key-file", &key, &dump]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("failed authentication"), "{out}");
    let manifest = dir
        .file("appendonlydir/appendonly.aof.manifest")
        .to_string_lossy()
        .into_owned();
    let (code, out) = run(aof_tool, &["--key-file", &key, &manifest]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("All AOF files and manifest are valid"),
        "{out}"
    );
    // A torn tail: reported, then fixed back to the last complete batch.
    let incr = find_aof(&dir, ".incr.aof");
    let good = std::fs::read(&incr).unwrap();
    let mut torn = good.clone();
    let h = header_len(&good);
    torn.extend_from_slice(&good[h..h + 9]);
    std::fs::write(&incr, &torn).unwrap();
    let (code, out) = run(aof_tool, &["--key-file", &key, &manifest]);
    assert_eq!(code, Some(1), "{out}");
    let o = Command::new(aof_tool)
        .args(["--key-file", &key, "--fix", &manifest])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            use std::io::Write;
            ch.stdin.take().unwrap().write_all(b"y\n")?;
            ch.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(std::fs::read(&incr).unwrap(), good);
}

/// A disk-based full sync from a primary whose dump.rdb is encrypted: the reference, as
/// replica, gets a plaintext RDB it loads (the stream stays plaintext); a valkey-rs
/// replica with a key and `repl-diskless-load disabled` stores its copy encrypted.
#[test]
fn disk_sync_streams_plaintext_and_replica_copy_is_encrypted() {
    let Some(reference) = require_reference() else {
        return;
    };
    let keys = TempDir::new("enc-repl");
    let key = key_file(&keys, "key", 14, 0o600, false);
    let rkey = key_file(&keys, "rkey", 15, 0o600, false);
    let primary = common::Server::ours(&[
        "--repl-diskless-sync",
        "no",
        "--persistence-encryption-key-file",
        &key,
    ]);
    let mut p = primary.conn();
    populate(&mut p);
    let want = p.call(&["DEBUG", "DIGEST"]);
    let synced = |r: &mut Conn| {
        wait_for(Duration::from_secs(20), || {
            String::from_utf8_lossy(&r.call(&["INFO", "replication"]))
                .contains("master_link_status:up")
        })
    };
    let up = common::Server::reference(&reference, &[]);
    let mut r = up.conn();
    ok(
        &mut r,
        &["REPLICAOF", "127.0.0.1", &primary.port.to_string()],
    );
    assert!(
        synced(&mut r),
        "reference replica not synced:\n{}",
        up.log()
    );
    assert_eq!(r.call(&["DEBUG", "DIGEST"]), want);
    assert_encrypted(&primary.dir.join("dump.rdb"));
    let ours = common::Server::ours(&[
        "--repl-diskless-load",
        "disabled",
        "--persistence-encryption-key-file",
        &rkey,
    ]);
    let mut o = ours.conn();
    ok(
        &mut o,
        &["REPLICAOF", "127.0.0.1", &primary.port.to_string()],
    );
    assert!(synced(&mut o), "replica not synced:\n{}", ours.log());
    assert_eq!(o.call(&["DEBUG", "DIGEST"]), want);
    let copy = ours.dir.join("dump.rdb");
    assert_encrypted(&copy);
    // Encrypted with the replica's own key.
    let fp = info_str(
        &mut o,
        "persistence",
        "persistence_encryption_key_fingerprint",
    )
    .unwrap();
    let head = std::fs::read(&copy).unwrap();
    let hex: String = head[16..24].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, fp);
}

fn get(c: &mut Conn, key: &str) -> Vec<u8> {
    c.call(&["GET", key])
}

/// Swaps the contents of two files.
fn swap_files(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    std::fs::write(a, y).unwrap();
    std::fs::write(b, x).unwrap();
}

/// Each file is bound to its name, role and seq (its identity, in the authenticated
/// header): AOF files swapped, an older incr file under a newer one's name, names
/// swapped in the manifest, a base of an earlier rewrite in place of the current one, a
/// dump renamed to another `dbfilename`: all refused, naming the file and what it was
/// written as. After a restart, writes go to a new incr file: an encrypted one is never
/// resumed (its next chunk indexes may already have sealed a cut batch).
#[test]
fn renamed_or_swapped_files_are_refused() {
    let dir = TempDir::new("enc-bind");
    let key = key_file(&dir, "key", 21, 0o600, false);
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--persistence-encryption-key-file",
        &key,
    ];
    {
        let s = Proc::start(dir.path(), &args);
        let mut c = s.conn();
        ok(&mut c, &["SET", "first", "1"]);
        ok(&mut c, &["RPUSH", "list", "a"]);
    }
    let incr1 = find_aof(&dir, ".1.incr.aof");
    let incr1_bytes = std::fs::read(&incr1).unwrap();
    let digest = {
        let s = Proc::start(dir.path(), &args);
        let mut c = s.conn();
        ok(&mut c, &["SET", "second", "2"]);
        ok(&mut c, &["RPUSH", "list", "b"]);
        assert!(
            s.log_text().contains("starting a new incr file"),
            "{}",
            s.log_text()
        );
        c.call(&["DEBUG", "DIGEST"])
    };
    assert_eq!(
        std::fs::read(&incr1).unwrap(),
        incr1_bytes,
        "incr 1 resumed"
    );
    let incr2 = find_aof(&dir, ".2.incr.aof");
    let base1 = find_aof(&dir, ".1.base.rdb");
    let loads = |what: &str| {
        let s = Proc::start(dir.path(), &args);
        let mut c = s.conn();
        assert_eq!(c.call(&["DEBUG", "DIGEST"]), digest, "{what}");
        assert_eq!(get(&mut c, "second"), b"$1\r\n2\r\n", "{what}");
    };
    loads("untouched");
    // That restart started incr 3 (empty so far): incr 2 is no longer the last.
    let incr3 = find_aof(&dir, ".3.incr.aof");
    #[track_caller]
    fn refused_with(dir: &TempDir, args: &[&str], file: &str, needles: &[&str]) {
        let log = refused(dir, args);
        let line = log
            .lines()
            .find(|l| l.contains("Can't load the encrypted file") && l.contains(file))
            .unwrap_or_else(|| panic!("no refusal naming {file}:\n{log}"));
        for n in needles {
            assert!(line.contains(n), "{n:?} not in {line:?}");
        }
    }
    // Two incr files swapped.
    swap_files(&incr1, &incr2);
    refused_with(
        &dir,
        &args,
        "appendonly.aof.1.incr.aof",
        &[
            "written as the incr file appendonly.aof.2.incr.aof (seq 2)",
            "the manifest names it as the incr file appendonly.aof.1.incr.aof (seq 1)",
            "renamed or swapped",
        ],
    );
    swap_files(&incr1, &incr2);
    loads("swapped back");
    // An older incr file copied over a newer one (a replay of old writes).
    let good2 = std::fs::read(&incr2).unwrap();
    std::fs::copy(&incr1, &incr2).unwrap();
    refused_with(
        &dir,
        &args,
        "appendonly.aof.2.incr.aof",
        &["written as the incr file appendonly.aof.1.incr.aof (seq 1)"],
    );
    std::fs::write(&incr2, &good2).unwrap();
    // The base swapped with an incr file, both ways.
    swap_files(&base1, &incr3);
    refused_with(
        &dir,
        &args,
        "appendonly.aof.1.base.rdb",
        &["written as the incr file appendonly.aof.3.incr.aof (seq 3)"],
    );
    swap_files(&base1, &incr3);
    // The manifest edited: the two names swapped (the seqs stay in order).
    let mpath = dir.file("appendonlydir/appendonly.aof.manifest");
    let manifest = std::fs::read_to_string(&mpath).unwrap();
    let edited = manifest
        .replace("appendonly.aof.1.incr.aof", "@")
        .replace("appendonly.aof.2.incr.aof", "appendonly.aof.1.incr.aof")
        .replace('@', "appendonly.aof.2.incr.aof");
    assert_ne!(edited, manifest);
    std::fs::write(&mpath, &edited).unwrap();
    refused_with(
        &dir,
        &args,
        "appendonly.aof.2.incr.aof",
        &["(seq 2) but the manifest names it as the incr file appendonly.aof.2.incr.aof (seq 1)"],
    );
    std::fs::write(&mpath, &manifest).unwrap();
    loads("restored");

    // A rewrite: base 2. The base of the first generation in its place is refused.
    let old_base = std::fs::read(&base1).unwrap();
    {
        let s = Proc::start(dir.path(), &args);
        let mut c = s.conn();
        assert_eq!(
            c.call(&["BGREWRITEAOF"]),
            b"+Background append only file rewriting started\r\n"
        );
        assert!(wait_for(Duration::from_secs(10), || {
            info_str(&mut c, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
                && aof_files(&dir).len() == 2
        }));
    }
    let base2 = find_aof(&dir, ".2.base.rdb");
    let good_base = std::fs::read(&base2).unwrap();
    std::fs::write(&base2, &old_base).unwrap();
    refused_with(
        &dir,
        &args,
        "appendonly.aof.2.base.rdb",
        &[
            "written as the base file appendonly.aof.1.base.rdb (seq 1)",
            "the manifest names it as the base file appendonly.aof.2.base.rdb (seq 2)",
        ],
    );
    std::fs::write(&base2, &good_base).unwrap();
    loads("after the rewrite");

    // The snapshot is bound to dbfilename.
    let dir = TempDir::new("enc-bind-rdb");
    let key = key_file(&dir, "key", 22, 0o600, false);
    {
        let s = Proc::start(
            dir.path(),
            &["--save", "", "--persistence-encryption-key-file", &key],
        );
        let mut c = s.conn();
        ok(&mut c, &["SET", "k", "v"]);
        assert_eq!(c.call(&["SAVE"]), b"+OK\r\n");
    }
    std::fs::rename(dir.file("dump.rdb"), dir.file("other.rdb")).unwrap();
    let other = [
        "--save",
        "",
        "--dbfilename",
        "other.rdb",
        "--persistence-encryption-key-file",
        &key,
    ];
    refused_with(
        &dir,
        &other,
        "other.rdb",
        &["written as the RDB file dump.rdb but dbfilename names it as the RDB file other.rdb"],
    );
    // The check tool says so, and still validates the content.
    let o = Command::new(env!("CARGO_BIN_EXE_valkey-rs-check-rdb"))
        .args(["--key-file", &key, &dir.file("other.rdb").to_string_lossy()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("written as the RDB file dump.rdb") && out.contains("[warning]"),
        "{out}"
    );
    std::fs::rename(dir.file("other.rdb"), dir.file("dump.rdb")).unwrap();
    let s = Proc::start(
        dir.path(),
        &["--save", "", "--persistence-encryption-key-file", &key],
    );
    assert_eq!(get(&mut s.conn(), "k"), b"$1\r\nv\r\n");
}

/// Runs valkey-rs-check-aof; exit code and stdout.
fn check_aof(args: &[&str], stdin: &[u8]) -> (Option<i32>, String) {
    use std::io::Write;
    let o = Command::new(env!("CARGO_BIN_EXE_valkey-rs-check-aof"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            ch.stdin.take().unwrap().write_all(stdin)?;
            ch.wait_with_output()
        })
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// `valkey-rs-check-aof --truncate-to-timestamp` on encrypted files: what it keeps is
/// encrypted again (a new salt, the same key and identity) and loads; a `#TS:`
/// annotation inside a batch (not at a chunk boundary) is honoured exactly. `--fix` on
/// a torn encrypted file, then a restart: the fixed file is kept as it is and writes go
/// to a new incr file.
#[test]
fn check_aof_truncates_encrypted_files_to_a_timestamp() {
    // Written by the server: two seconds, two batches.
    let dir = TempDir::new("enc-ts");
    let key = key_file(&dir, "key", 23, 0o600, false);
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--aof-timestamp-enabled",
        "yes",
        "--persistence-encryption-key-file",
        &key,
    ];
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    };
    let t1 = {
        let s = Proc::start(dir.path(), &args);
        let mut c = s.conn();
        ok(&mut c, &["SET", "a", "1"]);
        let t1 = now().as_secs();
        while now().as_secs() <= t1 || now().subsec_millis() < 50 {
            std::thread::sleep(Duration::from_millis(20));
        }
        ok(&mut c, &["SET", "b", "2"]);
        t1
    };
    let manifest = dir
        .file("appendonlydir/appendonly.aof.manifest")
        .to_string_lossy()
        .into_owned();
    let incr = find_aof(&dir, ".1.incr.aof");
    let before = std::fs::read(&incr).unwrap();
    // Without the key: refused, nothing changed.
    let (code, out) = check_aof(
        &["--truncate-to-timestamp", &t1.to_string(), &manifest],
        b"",
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(std::fs::read(&incr).unwrap(), before);
    let (code, out) = check_aof(
        &[
            "--key-file",
            &key,
            "--truncate-to-timestamp",
            &t1.to_string(),
            &manifest,
        ],
        b"",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "Successfully truncated AOF appendonly.aof.1.incr.aof to timestamp {t1}"
        )),
        "{out}"
    );
    let after = std::fs::read(&incr).unwrap();
    assert_encrypted(&incr);
    assert!(after.len() < before.len());
    assert_eq!(after[16..24], before[16..24], "same key");
    assert_ne!(after[24..48], before[24..48], "a new salt");
    assert_eq!(
        after[..header_len(&after)][48..],
        before[..header_len(&before)][48..],
        "same identity"
    );
    let (code, out) = check_aof(&["--key-file", &key, &manifest], b"");
    assert_eq!(code, Some(0), "{out}");
    {
        let s = Proc::start(dir.path(), &args);
        let mut c = s.conn();
        assert_eq!(get(&mut c, "a"), b"$1\r\n1\r\n");
        assert_eq!(get(&mut c, "b"), b"$-1\r\n");
    }

    // A file whose annotation is inside a batch: built with the format's own sealer
    // under the name and seq the manifest gives the incr file.
    let dir = TempDir::new("enc-ts-mid");
    let key = key_file(&dir, "key", 24, 0o600, false);
    let args = [
        "--appendonly",
        "yes",
        "--persistence-encryption-key-file",
        &key,
    ];
    drop(Proc::start(dir.path(), &args));
    let incr = find_aof(&dir, ".1.incr.aof");
    let k = rdb::crypt::load_key_file(&key).unwrap();
    let id = rdb::crypt::Identity::aof(false, 1, "appendonly.aof.1.incr.aof");
    let (mut sealer, mut file) = rdb::crypt::Sealer::new(&k, &id).unwrap();
    let mut batch = b"#TS:1000\r\n".to_vec();
    batch.extend(common::encode_command(&["SET", "x", "1"]));
    batch.extend_from_slice(b"#TS:2000\r\n");
    batch.extend(common::encode_command(&["SET", "y", "2"]));
    sealer.seal_batch(&batch, &mut file);
    sealer.seal_batch(&common::encode_command(&["SET", "z", "3"]), &mut file);
    std::fs::write(&incr, &file).unwrap();
    let manifest = dir
        .file("appendonlydir/appendonly.aof.manifest")
        .to_string_lossy()
        .into_owned();
    {
        let s = Proc::start(dir.path(), &args);
        let mut c = s.conn();
        assert_eq!(get(&mut c, "z"), b"$1\r\n3\r\n", "the crafted file loads");
    }
    // (That start began incr 2: it is the last file now; drop it from the manifest.)
    let m = std::fs::read_to_string(&manifest).unwrap();
    let m1: String = m
        .lines()
        .filter(|l| !l.contains(".2.incr.aof"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&manifest, m1).unwrap();
    // Nothing before the first annotation: refused, unchanged.
    let (code, out) = check_aof(
        &[
            "--key-file",
            &key,
            "--truncate-to-timestamp",
            "999",
            &manifest,
        ],
        b"",
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("has nothing before timestamp 999"), "{out}");
    assert_eq!(std::fs::read(&incr).unwrap(), file);
    // A torn tail first: --truncate-to-timestamp reports it; --fix cuts it.
    let mut torn = file.clone();
    torn.extend_from_slice(&file[chunks(&file)[1]..][..10]);
    std::fs::write(&incr, &torn).unwrap();
    let (code, out) = check_aof(
        &[
            "--key-file",
            &key,
            "--truncate-to-timestamp",
            "5000",
            &manifest,
        ],
        b"",
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("Use the --fix option"), "{out}");
    let (code, out) = check_aof(&["--key-file", &key, "--fix", &manifest], b"y\n");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(std::fs::read(&incr).unwrap(), file);
    // Cut at 1500: inside the first batch.
    let (code, out) = check_aof(
        &[
            "--key-file",
            &key,
            "--truncate-to-timestamp",
            "1500",
            &manifest,
        ],
        b"",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("Successfully truncated AOF appendonly.aof.1.incr.aof to timestamp 1500"),
        "{out}"
    );
    let cut = std::fs::read(&incr).unwrap();
    let d = rdb::crypt::decrypt(&cut, &[&k]).unwrap();
    let mut want = b"#TS:1000\r\n".to_vec();
    want.extend(common::encode_command(&["SET", "x", "1"]));
    assert_eq!(d.plain, want);
    assert_eq!(d.identity.as_ref(), Some(&id));
    let s = Proc::start(dir.path(), &args);
    let mut c = s.conn();
    assert_eq!(get(&mut c, "x"), b"$1\r\n1\r\n");
    assert_eq!(get(&mut c, "y"), b"$-1\r\n");
    assert_eq!(get(&mut c, "z"), b"$-1\r\n");
    ok(&mut c, &["SET", "w", "4"]);
    drop(s);
    // The cut file was not appended to: the write went to a new incr file.
    assert_eq!(std::fs::read(&incr).unwrap(), cut);
    let s = Proc::start(dir.path(), &args);
    assert_eq!(get(&mut s.conn(), "w"), b"$1\r\n4\r\n");
}

/// `CONFIG SET appendonly yes` with a key: the rewrite's base and the temp incr file
/// are encrypted as the names they get when the rewrite is done, so they load.
#[test]
fn appendonly_turned_on_at_runtime_names_its_files_right() {
    let dir = TempDir::new("enc-aof-on");
    let key = key_file(&dir, "key", 25, 0o600, false);
    let digest = {
        let s = Proc::start(
            dir.path(),
            &["--save", "", "--persistence-encryption-key-file", &key],
        );
        let mut c = s.conn();
        ok(&mut c, &["SET", "before", "1"]);
        ok(&mut c, &["CONFIG", "SET", "appendonly", "yes"]);
        // Written while the rewrite runs (to the temp incr file) and after it.
        ok(&mut c, &["SET", "during", "2"]);
        assert!(wait_for(Duration::from_secs(10), || {
            info_str(&mut c, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
                && info_str(&mut c, "persistence", "aof_enabled").as_deref() == Some("1")
        }));
        ok(&mut c, &["SET", "after", "3"]);
        c.call(&["DEBUG", "DIGEST"])
    };
    for f in aof_files(&dir) {
        let b = std::fs::read(&f).unwrap();
        assert!(b.starts_with(MAGIC), "{}", f.display());
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(contains(&b[..header_len(&b)], name.as_bytes()), "{name}");
    }
    let s = Proc::start(
        dir.path(),
        &[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--persistence-encryption-key-file",
            &key,
        ],
    );
    let mut c = s.conn();
    assert_eq!(c.call(&["DEBUG", "DIGEST"]), digest);
    assert_eq!(get(&mut c, "after"), b"$1\r\n3\r\n");
}

/// A snapshot in format 1 (the first build's: a 48-byte header, no identity), encrypted
/// here independently of the server's code (ring directly, the layout of
/// docs/encryption.md): it still loads, with a warning; the next SAVE writes format 2.
#[test]
fn format_1_files_still_load() {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    struct Len(usize);
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let dir = TempDir::new("enc-v1");
    let key = key_file(&dir, "key", 26, 0o600, true);
    let raw: Vec<u8> = std::fs::read(&key).unwrap();
    {
        let s = Proc::start(dir.path(), &["--save", ""]);
        let mut c = s.conn();
        ok(&mut c, &["SET", "k", "v1-file"]);
        assert_eq!(c.call(&["SAVE"]), b"+OK\r\n");
    }
    let plain = std::fs::read(dir.file("dump.rdb")).unwrap();
    assert!(plain.starts_with(b"REDIS") || plain.starts_with(b"VALKEY"));
    let fp = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &raw),
        b"valkey-rs key fingerprint v1",
    );
    let mut h = Vec::new();
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&[1, 1, 1, 0]);
    h.extend_from_slice(&65536u32.to_le_bytes());
    h.extend_from_slice(&fp.as_ref()[..8]);
    h.extend_from_slice(&[0x5a; 24]);
    let mut okm = [0u8; 44];
    ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &h[24..48])
        .extract(&raw)
        .expand(&[b"valkey-rs persistence encryption v1"], Len(44))
        .unwrap()
        .fill(&mut okm)
        .unwrap();
    let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &okm[..32]).unwrap());
    // One chunk (the dump is far below 64 KiB), flagged final and commit, index 0.
    assert!(plain.len() < 65536);
    let word = plain.len() as u32 | 1 << 31 | 1 << 30;
    let mut aad = h.clone();
    aad.extend_from_slice(&0u64.to_be_bytes());
    aad.extend_from_slice(&word.to_le_bytes());
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&okm[32..]);
    let mut data = plain.clone();
    let tag = aead
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad[..]),
            &mut data,
        )
        .unwrap();
    let mut file = h.clone();
    file.extend_from_slice(&word.to_le_bytes());
    file.extend_from_slice(&data);
    file.extend_from_slice(tag.as_ref());
    std::fs::write(dir.file("dump.rdb"), &file).unwrap();
    let args = ["--save", "", "--persistence-encryption-key-file", &key];
    let s = Proc::start(dir.path(), &args);
    let mut c = s.conn();
    assert_eq!(get(&mut c, "k"), b"$7\r\nv1-file\r\n");
    assert!(
        s.log_text().contains("has no identity (format version 1)"),
        "{}",
        s.log_text()
    );
    assert_eq!(c.call(&["SAVE"]), b"+OK\r\n");
    let b = std::fs::read(dir.file("dump.rdb")).unwrap();
    assert_eq!(b[8], 2, "SAVE writes format 2");
    assert!(contains(&b[..header_len(&b)], b"dump.rdb"));
    // A format 1 file altered in its header (the reserved byte) is refused.
    let mut bad = file.clone();
    bad[11] = 3;
    std::fs::write(dir.file("dump.rdb"), &bad).unwrap();
    drop(s);
    let log = refused(&dir, &args);
    assert!(
        log.contains("dump.rdb") && log.contains("offset 11"),
        "{log}"
    );
}
