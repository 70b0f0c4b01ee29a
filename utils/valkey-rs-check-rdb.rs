//! `valkey-rs-check-rdb <file>`: validates an RDB file and prints, in
//! substance, what upstream's valkey-check-rdb prints: the aux fields, the
//! databases, the checksum verdict, key counts (total, with expire, already
//! expired, per type) and on failure the first error with its offset.
//! Exits 1 on error. Uses only the `rdb` crate.
//!
//! `--key-file <file>` (twice for a new and an old key) opens an encrypted file
//! (docs/encryption.md): it is decrypted and authenticated whole first; a failure is
//! reported with its offset in the encrypted file.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use rdb::file::{Loader, Record, VersionCheck};
use rdb::object::Limits;

/// Upstream's names of the object types (rdb_type_string), by type byte.
fn type_name(t: u8) -> &'static str {
    match t {
        0 => "string",
        1 => "list-linked",
        2 => "set-hashtable",
        3 => "zset-v1",
        4 => "hash-hashtable",
        5 => "zset-v2",
        6 | 7 => "module-value",
        9 => "hash-zipmap",
        10 => "list-ziplist",
        11 => "set-intset",
        12 => "zset-ziplist",
        13 => "hash-ziplist",
        14 => "quicklist",
        15 => "stream",
        16 => "hash-listpack",
        17 => "zset-listpack",
        18 => "quicklist-v2",
        19 => "stream-v2",
        20 => "set-listpack",
        21 => "stream-v3",
        22 => "hash-2",
        23 => "path-hash",
        _ => "unknown",
    }
}

#[derive(Default)]
struct Stats {
    keys: u64,
    expires: u64,
    already_expired: u64,
    functions: u64,
    by_type: Vec<u64>,
}

impl Stats {
    fn show(&self) {
        println!("[info] {} keys read", self.keys);
        println!("[info] {} expires", self.expires);
        println!("[info] {} already expired", self.already_expired);
        println!("[info] {} functions", self.functions);
        for (t, &n) in self.by_type.iter().enumerate() {
            if n > 0 {
                println!("[info] {} keys of type {} ({})", n, t, type_name(t as u8));
            }
        }
    }
}

fn fail(offset: u64, reason: &str, stats: &Stats) -> ExitCode {
    println!("--- RDB ERROR DETECTED ---");
    println!("[offset {offset}] {reason}");
    stats.show();
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    let mut keys = Vec::new();
    while let Some(i) = args.iter().position(|a| a == "--key-file") {
        let Some(path) = args.get(i + 1).cloned() else {
            eprintln!("--key-file needs a file name");
            return ExitCode::from(1);
        };
        match rdb::crypt::load_key_file(&path) {
            Ok(k) => keys.push(k),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        }
        args.drain(i..i + 2);
    }
    if args.len() != 2 {
        eprintln!(
            "Usage: {} [--key-file <key-file>]... <rdb-file-name>",
            args.first()
                .map(String::as_str)
                .unwrap_or("valkey-rs-check-rdb")
        );
        return ExitCode::from(1);
    }
    let path = &args[1];
    let mut stats = Stats {
        by_type: vec![0; 256],
        ..Stats::default()
    };
    println!("[offset 0] Checking RDB file {path}");
    let buf = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            println!("Cannot open file: '{path}': {e}");
            return ExitCode::from(1);
        }
    };
    let buf = if rdb::crypt::is_encrypted(&buf) {
        let refs: Vec<&rdb::crypt::Key> = keys.iter().collect();
        match rdb::crypt::decrypt(&buf, &refs) {
            Ok(d) => {
                println!(
                    "[info] encrypted file (key fingerprint {}), {} bytes decrypted",
                    d.fingerprint,
                    d.plain.len()
                );
                let base = std::path::Path::new(path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned());
                match &d.identity {
                    Some(id) => {
                        println!("[info] written as {id}");
                        if id.role != rdb::crypt::Role::Rdb || base.as_deref() != Some(&id.name) {
                            println!(
                                "[warning] valkey-rs-server loads this file only as {id} \
                                 (a renamed or swapped file is refused)"
                            );
                        }
                    }
                    None => println!(
                        "[warning] no identity (encryption format 1): a renamed or swapped \
                         copy would load as well"
                    ),
                }
                d.plain
            }
            Err(e) => {
                return fail(
                    e.offset,
                    &format!(
                        "encrypted file: {} (offset in the encrypted file)",
                        e.reason
                    ),
                    &stats,
                )
            }
        }
    } else {
        buf
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let lim = Limits {
        max_string: u64::MAX,
        deep: true,
    };
    let mut l = match Loader::new(&buf, VersionCheck::Relaxed, lim) {
        Ok(l) => l,
        Err(rdb::Error::Corrupt { offset, reason }) => return fail(offset, &reason, &stats),
        Err(e) => return fail(0, &e.to_string(), &stats),
    };
    if rdb::is_foreign_version(l.version()) {
        println!("[offset 9] Foreign RDB version {} detected", l.version());
    }
    loop {
        match l.next_record() {
            Ok(None) => break,
            Ok(Some(rec)) => match rec {
                Record::Aux(k, v) => println!(
                    "[offset {}] AUX FIELD {} = '{}'",
                    l.offset(),
                    String::from_utf8_lossy(&k),
                    String::from_utf8_lossy(&v)
                ),
                Record::SelectDb(db) => println!("[offset {}] Selecting DB ID {db}", l.offset()),
                Record::ResizeDb(..) => {}
                Record::Function(_) => stats.functions += 1,
                Record::Key(k) => {
                    stats.keys += 1;
                    stats.by_type[k.typ as usize] += 1;
                    if let Some(ms) = k.expire_ms {
                        stats.expires += 1;
                        if ms < now_ms {
                            stats.already_expired += 1;
                        }
                    }
                }
            },
            Err(rdb::Error::Corrupt { offset, reason }) => return fail(offset, &reason, &stats),
            Err(e) => return fail(l.offset(), &e.to_string(), &stats),
        }
    }
    if l.version() >= 5 {
        let end = l.offset() as usize;
        let footer = end
            .checked_sub(8)
            .and_then(|s| buf.get(s..end))
            .unwrap_or(&[]);
        if footer.iter().all(|&b| b == 0) {
            println!("RDB file was saved with checksum disabled: no check performed.");
        } else {
            println!("[offset {end}] Checksum OK");
        }
    }
    println!("[offset {}] \\o/ RDB looks OK! \\o/", l.offset());
    stats.show();
    ExitCode::SUCCESS
}
