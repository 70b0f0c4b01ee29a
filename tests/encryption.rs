//! Encryption at rest (issue 14, docs/encryption.md) with the real binary: every type
//! round-trips through encrypted RDB and AOF files across restarts; a wrong key, a
//! flipped bit in any chunk, a swapped pair of chunks, a truncated file and an appended
//! chunk are refused with the file and offset in the log and the server not starting;
//! SIGKILL with `appendfsync always` loses nothing acknowledged; upstream's
//! valkey-server refuses an encrypted file without crashing; key file permissions;
//! key rotation; the check tools with `--key-file`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::dataset::{compare_readbacks, info_str, masked, readback};
use common::proc::{Proc, TempDir, BIN};
use common::{require_reference, wait_for, Conn};

const MAGIC: &[u8] = b"VKRS-ENC";
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

/// Offsets of the chunks of an encrypted file.
fn chunks(b: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut pos = HEADER;
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
        // Appending to the reopened incr file continues its chunk sequence.
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
    torn.extend_from_slice(&good[HEADER..HEADER + 9]);
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
