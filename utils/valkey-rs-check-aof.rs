//! `valkey-rs-check-aof [--fix|--truncate-to-timestamp <ts>] <file.manifest|file.aof|file.rdb>`:
//! checks an append-only file set as upstream's valkey-check-aof does, with its
//! messages and exit codes (0 valid or fixed, 1 otherwise). A manifest is checked
//! file by file (base, then incrementals, in order); only the last file may be
//! truncated (`--fix` asks "Continue? [y/N]: " first). An RDB base or preamble is
//! validated with the `rdb` crate. The stream checks are `aof::check`.
//!
//! `--key-file <file>` (twice for a new and an old key) opens encrypted files
//! (docs/encryption.md): each is decrypted and authenticated whole; a chunk failing
//! authentication is an error with its offset, and so is a file written as another
//! file than the manifest names (renamed or swapped); a torn last batch of the last
//! file is a truncated AOF (`--fix` cuts it back to the last complete batch).
//! `--truncate-to-timestamp` re-encrypts what it keeps into a new file (a new salt, the
//! same key and identity), renamed over the old one: a `#TS:` annotation need not be at
//! a batch boundary, and re-sealing a cut batch under its old chunk indexes would
//! reuse GCM nonces.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::exit;

use aof::check::{check_stream, Options, Outcome};
use aof::manifest::{Manifest, MANIFEST_MAX_LINE};
use rdb::crypt::{Decrypted, Identity, Kind};
use rdb::file::{Loader, VersionCheck};
use rdb::object::Limits;

const CHECK_OK: i32 = 0;
const CHECK_EMPTY: i32 = 1;
const CHECK_TRUNCATED: i32 = 2;
const CHECK_TIMESTAMP_TRUNCATED: i32 = 3;

/// `strerror`-like text of an I/O error (without Rust's " (os error N)").
fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(p) => s[..p].to_string(),
        None => s,
    }
}

fn die(lines: &[String]) -> ! {
    for l in lines {
        println!("{l}");
    }
    exit(1)
}

fn read_file(path: &str, aborting: bool) -> Vec<u8> {
    match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let tail = if aborting { ", aborting..." } else { "" };
            die(&[format!("Cannot open file {path}: {}{tail}", strerror(&e))])
        }
    }
}

fn is_manifest(buf: &[u8]) -> bool {
    let mut rest = buf;
    let mut found = false;
    while !rest.is_empty() {
        let lim = rest.len().min(MANIFEST_MAX_LINE);
        let n = rest[..lim]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(lim, |p| p + 1);
        let line = &rest[..n];
        rest = &rest[n..];
        if line.first() == Some(&b'#') {
            continue;
        } else if line.starts_with(b"file") {
            found = true;
        } else {
            break;
        }
    }
    found
}

fn is_rdb(buf: &[u8]) -> bool {
    buf.len() >= 8 && aof::has_rdb_preamble(buf)
}

fn truncate(path: &str, len: u64) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(len)
}

/// Validates the RDB part; returns where the AOF tail starts.
fn check_rdb_preamble(buf: &[u8], path: &str) -> usize {
    println!("[offset 0] Checking RDB file {path}");
    let lim = Limits {
        max_string: u64::MAX,
        deep: true,
    };
    let res = Loader::new(buf, VersionCheck::Relaxed, lim).and_then(|mut l| {
        while l.next_record()?.is_some() {}
        Ok(l.offset())
    });
    match res {
        Ok(end) => {
            println!("[offset {end}] \\o/ RDB looks OK! \\o/");
            println!("RDB preamble is OK, proceeding with AOF tail...");
            usize::try_from(end).unwrap_or(buf.len()).min(buf.len())
        }
        Err(e) => {
            println!("--- RDB ERROR DETECTED ---");
            match e {
                rdb::Error::Corrupt { offset, reason } => println!("[offset {offset}] {reason}"),
                other => println!("{other}"),
            }
            die(&["RDB preamble of AOF file is not sane, aborting.".into()])
        }
    }
}

struct Ctx {
    fix: bool,
    to_timestamp: i64,
    keys: Vec<rdb::crypt::Key>,
}

/// Decrypts an encrypted file; dies with the offset on failure.
fn decrypt(ctx: &Ctx, name: &str, buf: &[u8]) -> rdb::crypt::Decrypted {
    let refs: Vec<&rdb::crypt::Key> = ctx.keys.iter().collect();
    match rdb::crypt::decrypt(buf, &refs) {
        Ok(d) => d,
        Err(e) => die(&[format!(
            "AOF {name} is not valid: encrypted file, offset {}: {}",
            e.offset, e.reason
        )]),
    }
}

/// Whether a file (decrypted when encrypted) starts with an RDB preamble.
fn file_is_rdb(ctx: &Ctx, name: &str, path: &str) -> bool {
    let buf = read_file(path, false);
    if rdb::crypt::is_encrypted(&buf) {
        is_rdb(&decrypt(ctx, name, &buf).plain)
    } else {
        is_rdb(&buf)
    }
}

/// `want`: the identity the manifest gives the file (None for a file checked alone).
fn check_single(
    ctx: &Ctx,
    name: &str,
    path: &str,
    last_file: bool,
    preamble: bool,
    want: Option<&Identity>,
) -> i32 {
    let buf = read_file(path, true);
    let size = buf.len() as u64;
    if size == 0 {
        return CHECK_EMPTY;
    }
    if rdb::crypt::is_encrypted(&buf) {
        return check_encrypted(ctx, name, path, last_file, &buf, want);
    }
    let start = if preamble {
        check_rdb_preamble(&buf, path)
    } else {
        0
    };
    let opt = Options {
        to_timestamp: ctx.to_timestamp,
        last_file,
        path,
    };
    let (pos, line) = match check_stream(&buf, start, &opt) {
        Outcome::Abort(lines) => die(&lines),
        Outcome::TruncateAtTimestamp { offset } => {
            if truncate(path, offset).is_err() {
                die(&[format!(
                    "Failed to truncate AOF {path} to timestamp {}",
                    ctx.to_timestamp
                )]);
            }
            return CHECK_TIMESTAMP_TRUNCATED;
        }
        Outcome::Analyzed {
            ok_up_to,
            line,
            error,
            format_error,
        } => {
            if format_error {
                println!("AOF {name} format error");
            }
            if let Some(e) = error {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&e);
                let _ = out.write_all(b"\n");
            }
            (ok_up_to, line)
        }
    };
    finish_check(ctx, name, path, last_file, size, pos, line)
}

/// An encrypted file: decrypted whole, its identity compared with the manifest's
/// entry, its plaintext checked as a plain file's; only a torn last batch can be fixed
/// (cut at a batch boundary, never inside a chunk). `--truncate-to-timestamp`
/// re-encrypts the part kept ([`reseal`]).
fn check_encrypted(
    ctx: &Ctx,
    name: &str,
    path: &str,
    last_file: bool,
    buf: &[u8],
    want: Option<&Identity>,
) -> i32 {
    let d = decrypt(ctx, name, buf);
    println!(
        "AOF {name} is encrypted (key fingerprint {}), {} bytes decrypted",
        d.fingerprint,
        d.plain.len()
    );
    match (&d.identity, want) {
        (Some(found), Some(want)) => {
            if let Some(why) = rdb::crypt::identity_mismatch(found, want, "the manifest") {
                die(&[format!("AOF {name} is not valid: encrypted file, it {why}")]);
            }
        }
        (Some(found), None) => {
            println!("AOF {name} was written as {found}");
            let base = Path::new(path).file_name().map(|n| n.to_string_lossy());
            if base.as_deref() != Some(found.name.as_str()) {
                println!(
                    "Warning: AOF {name} is not named {}: valkey-rs-server loads it only \
                     under that name, in that role",
                    found.name
                );
            }
        }
        (None, _) => println!(
            "Warning: AOF {name} has no identity (encryption format 1): a renamed or \
             swapped copy would load as well"
        ),
    }
    let start = if is_rdb(&d.plain) {
        check_rdb_preamble(&d.plain, name)
    } else {
        0
    };
    let opt = Options {
        to_timestamp: ctx.to_timestamp,
        last_file,
        path,
    };
    match check_stream(&d.plain, start, &opt) {
        Outcome::Abort(lines) => die(&lines),
        Outcome::TruncateAtTimestamp { offset } => {
            let id = d.identity.clone().or_else(|| want.cloned());
            let keep = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(d.plain.len());
            match id.map(|id| reseal(ctx, path, &d, &id, keep)) {
                Some(Ok(())) => {
                    println!(
                        "AOF {name} is encrypted: its first {keep} decrypted bytes were \
                         encrypted again into a new file (new salt, same key and identity)"
                    );
                    return CHECK_TIMESTAMP_TRUNCATED;
                }
                Some(Err(e)) => die(&[format!(
                    "Failed to truncate AOF {path} to timestamp {}: {}",
                    ctx.to_timestamp,
                    strerror(&e)
                )]),
                None => die(&[format!(
                    "Failed to truncate AOF {path} to timestamp {}: an encrypted file of \
                     format 1 checked alone has no identity to write it with (check the \
                     manifest instead)",
                    ctx.to_timestamp
                )]),
            }
        }
        Outcome::Analyzed { ok_up_to, .. } if ok_up_to < d.plain.len() as u64 => die(&[format!(
            "AOF {name} is not valid: its decrypted content is damaged at offset {ok_up_to} \
             (inside an encrypted chunk, it can't be fixed)"
        )]),
        _ => {}
    }
    let size = buf.len() as u64;
    let pos = d.torn_at.map_or(size, |_| d.committed_len);
    finish_check(ctx, name, path, last_file, size, pos, 0)
}

/// Replaces the encrypted file at `path` by a new one holding the first `keep` bytes of
/// its plaintext, written as `id` with the key that opened it: a temp file in the same
/// directory (0600), fsynced, renamed over `path`, the directory fsynced.
fn reseal(ctx: &Ctx, path: &str, d: &Decrypted, id: &Identity, keep: usize) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(key) = ctx.keys.iter().find(|k| k.fingerprint() == d.fingerprint) else {
        return Err(std::io::Error::other(
            "the key that opened the file is gone",
        ));
    };
    let plain = &d.plain[..keep];
    let out = match id.role.kind() {
        Kind::Snapshot => {
            let mut w = rdb::crypt::EncWriter::new(Vec::new(), key, id)?;
            w.write_all(plain)?;
            w.finish()?
        }
        Kind::Log => {
            let (mut s, mut out) = rdb::crypt::Sealer::new(key, id)?;
            if !plain.is_empty() {
                s.seal_batch(plain, &mut out);
            }
            out
        }
    };
    let p = Path::new(path);
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let tmp = dir.join(format!("temp-check-aof-{}.tmp", std::process::id()));
    let res = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&out)?;
            f.sync_all()
        })
        .and_then(|_| std::fs::rename(&tmp, p))
        .and_then(|_| std::fs::File::open(&dir)?.sync_all());
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

fn finish_check(
    ctx: &Ctx,
    name: &str,
    path: &str,
    last_file: bool,
    size: u64,
    pos: u64,
    line: i64,
) -> i32 {
    let diff = size.saturating_sub(pos);
    if diff == 0 && ctx.to_timestamp != 0 {
        println!(
            "Truncate nothing in AOF {name} to timestamp {}",
            ctx.to_timestamp
        );
        return CHECK_OK;
    }
    println!(
        "AOF analyzed: filename={name}, size={size}, ok_up_to={pos}, ok_up_to_line={line}, diff={diff}"
    );
    if diff > 0 {
        if !ctx.fix {
            die(&[format!(
                "AOF {name} is not valid. Use the --fix option to try fixing it."
            )]);
        }
        if !last_file {
            die(&[format!(
                "Failed to truncate AOF {name} because it is not the last file"
            )]);
        }
        println!(
            "This will shrink the AOF {name} from {size} bytes, with {diff} bytes, to {pos} bytes"
        );
        print!("Continue? [y/N]: ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let got = std::io::stdin().lock().read_line(&mut answer).unwrap_or(0);
        if got == 0 || !answer.starts_with(['y', 'Y']) {
            die(&["Aborting...".into()]);
        }
        if truncate(path, pos).is_err() {
            die(&[format!("Failed to truncate AOF {name}")]);
        }
        return CHECK_TRUNCATED;
    }
    CHECK_OK
}

fn print_style(ctx: &Ctx, ret: i32, name: &str, kind: &str) {
    match ret {
        CHECK_OK => println!("{kind} {name} is valid"),
        CHECK_EMPTY => println!("{kind} {name} is empty"),
        CHECK_TIMESTAMP_TRUNCATED => println!(
            "Successfully truncated AOF {name} to timestamp {}",
            ctx.to_timestamp
        ),
        CHECK_TRUNCATED => println!("Successfully truncated AOF {name}"),
        _ => {}
    }
}

fn check_multi_part(ctx: &Ctx, dir: &Path, manifest_path: &str, text: &[u8]) {
    println!("Start checking Multi Part AOF");
    let am = match Manifest::parse_detailed(text) {
        Ok(m) => m,
        Err(e) => {
            println!("\n*** FATAL AOF MANIFEST FILE ERROR ***\n");
            if let Some((n, l)) = &e.line {
                println!("Reading the manifest file, at line {n}\n");
                println!(">>> '{}'\n", String::from_utf8_lossy(l));
            }
            die(&[format!("{}\n", e.msg)]);
        }
    };
    let _ = manifest_path;
    let total = am.base_and_incr_count();
    let mut num = 0usize;
    let path_of = |n: &str| dir.join(n).to_string_lossy().into_owned();
    if let Some(b) = &am.base {
        num += 1;
        let p = path_of(&b.name);
        let preamble = file_is_rdb(ctx, &b.name, &p);
        println!(
            "Start to check BASE AOF ({} format).",
            if preamble { "RDB" } else { "RESP" }
        );
        let want = Identity::aof(true, b.seq, &b.name);
        let ret = check_single(ctx, &b.name, &p, num == total, preamble, Some(&want));
        print_style(ctx, ret, &b.name, "BASE AOF");
    }
    if !am.incrs.is_empty() {
        println!("Start to check INCR files.");
        for i in &am.incrs {
            num += 1;
            let p = path_of(&i.name);
            let want = Identity::aof(false, i.seq, &i.name);
            let ret = check_single(ctx, &i.name, &p, num == total, false, Some(&want));
            print_style(ctx, ret, &i.name, "INCR AOF");
        }
    }
    println!("All AOF files and manifest are valid");
}

fn usage(argv0: &str) -> ! {
    die(&[format!(
        "Usage: {argv0} [--key-file <key-file>]... [--fix|--truncate-to-timestamp $timestamp] <file.manifest|file.aof>"
    )])
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let mut keys = Vec::new();
    while let Some(i) = args.iter().position(|a| a == "--key-file") {
        let Some(path) = args.get(i + 1).cloned() else {
            die(&["--key-file needs a file name".into()]);
        };
        match rdb::crypt::load_key_file(&path) {
            Ok(k) => keys.push(k),
            Err(e) => die(&[e]),
        }
        args.drain(i..i + 2);
    }
    let argv0 = args
        .first()
        .map(String::as_str)
        .unwrap_or("valkey-rs-check-aof");
    let mut ctx = Ctx {
        fix: false,
        to_timestamp: 0,
        keys,
    };
    let filepath = match args.len() {
        2 => {
            if args[1] == "-v" || args[1] == "--version" {
                println!("valkey-rs-check-aof {}", env!("CARGO_PKG_VERSION"));
                exit(0);
            }
            args[1].clone()
        }
        3 if args[1] == "--fix" => {
            ctx.fix = true;
            args[2].clone()
        }
        4 if args[1] == "--truncate-to-timestamp" => {
            let t = args[2].trim_start();
            match t.parse::<i64>() {
                Ok(v) if !t.is_empty() => ctx.to_timestamp = v,
                _ => die(&["Invalid timestamp, aborting...".into()]),
            }
            args[3].clone()
        }
        _ => usage(argv0),
    };
    let dir = match Path::new(&filepath).parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let head = read_file(&filepath, false);
    if !head.is_empty() && is_manifest(&head) {
        check_multi_part(&ctx, &dir, &filepath, &head);
    } else {
        let preamble = if rdb::crypt::is_encrypted(&head) {
            file_is_rdb(&ctx, &filepath, &filepath)
        } else {
            is_rdb(&head)
        };
        drop(head);
        println!("Start checking Old-Style AOF");
        let ret = check_single(&ctx, &filepath, &filepath, true, preamble, None);
        print_style(&ctx, ret, &filepath, "AOF");
    }
    exit(0)
}
