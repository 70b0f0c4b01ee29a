//! Reading a whole dataset back through the client protocol, for comparing two servers
//! that loaded the same file (tests/rdb.rs, tests/aof.rs): a small RESP2 parser, INFO
//! and pipelining helpers, and the per-key readback of every type.

use std::collections::BTreeMap;

use super::{encode_command, escape, escape_short, info_field, show_argv, Conn};

/// A parsed RESP2 reply (only what the readback needs).
#[derive(Clone, Debug, PartialEq)]
pub enum Resp {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

pub fn parse_resp(b: &[u8]) -> Resp {
    let mut pos = 0;
    let r = parse_at(b, &mut pos).unwrap_or_else(|| panic!("bad reply {}", escape_short(b, 200)));
    assert_eq!(pos, b.len(), "trailing bytes in {}", escape_short(b, 200));
    r
}

pub fn parse_at(b: &[u8], pos: &mut usize) -> Option<Resp> {
    let ty = *b.get(*pos)?;
    let rest = b.get(*pos + 1..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let line = rest[..end].to_vec();
    *pos += 1 + end + 2;
    let num = || std::str::from_utf8(&line).ok()?.parse::<i64>().ok();
    Some(match ty {
        b'+' => Resp::Simple(line),
        b'-' => Resp::Error(line),
        b':' => Resp::Int(num()?),
        b'$' => {
            let n = num()?;
            if n < 0 {
                Resp::Bulk(None)
            } else {
                let n = n as usize;
                let v = b.get(*pos..*pos + n)?.to_vec();
                *pos += n + 2;
                Resp::Bulk(Some(v))
            }
        }
        b'*' => {
            let n = num()?;
            if n < 0 {
                Resp::Array(None)
            } else {
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(parse_at(b, pos)?);
                }
                Resp::Array(Some(v))
            }
        }
        _ => return None,
    })
}

pub fn bulk_items(r: &Resp) -> Vec<Vec<u8>> {
    match r {
        Resp::Array(Some(v)) => v
            .iter()
            .map(|x| match x {
                Resp::Bulk(Some(b)) => b.clone(),
                o => panic!("not a bulk: {:?}", o),
            })
            .collect(),
        o => panic!("not an array: {:?}", o),
    }
}

pub fn info_str(c: &mut Conn, section: &str, field: &str) -> Option<String> {
    let r = c.call(&["INFO", section]);
    let text = String::from_utf8_lossy(&r).into_owned();
    let prefix = format!("{}:", field);
    text.split("\r\n")
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
}

pub fn info_int(c: &mut Conn, section: &str, field: &str) -> Option<i64> {
    info_field(&c.call(&["INFO", section]), field)
}

/// Sends all commands, then reads all replies; panics on an error reply.
pub fn pipeline(c: &mut Conn, cmds: &[Vec<Vec<u8>>]) {
    for chunk in cmds.chunks(500) {
        let mut buf = Vec::new();
        for cmd in chunk {
            buf.extend_from_slice(&encode_command(cmd));
        }
        c.send_raw(&buf).expect("send pipeline");
        for cmd in chunk {
            let r = c.read_reply().expect("read pipelined reply");
            assert!(
                !r.starts_with(b"-"),
                "{} -> {}",
                show_argv(cmd),
                escape_short(&r, 200)
            );
        }
    }
}

pub fn v(args: &[&[u8]]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.to_vec()).collect()
}

/// Runs `cmd` and asserts it is not an error reply.
#[track_caller]
pub fn ok_call(c: &mut Conn, name: &str, cmd: &[&[u8]]) -> Vec<u8> {
    let r = c.call(cmd);
    assert!(
        !r.starts_with(b"-"),
        "{}: {} -> {}",
        name,
        show_argv(cmd),
        escape_short(&r, 300)
    );
    r
}

pub fn digest(c: &mut Conn) -> Option<Vec<u8>> {
    let r = c.call(&["DEBUG", "DIGEST"]);
    (!r.starts_with(b"-")).then_some(r)
}

pub type Readback = BTreeMap<String, Vec<u8>>;

pub fn scan_keys(c: &mut Conn) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    let mut cursor = b"0".to_vec();
    loop {
        let r = parse_resp(&c.call(&[&b"SCAN"[..], &cursor, b"COUNT", b"1000"]));
        let Resp::Array(Some(parts)) = r else {
            panic!("SCAN reply {:?}", r)
        };
        let Resp::Bulk(Some(next)) = &parts[0] else {
            panic!("SCAN cursor {:?}", parts[0])
        };
        keys.extend(bulk_items(&parts[1]));
        if next == b"0" {
            break;
        }
        cursor = next.clone();
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Everything a client can observe of the dataset, per key and aspect.
pub fn readback(c: &mut Conn) -> Readback {
    let mut out = Readback::new();
    for db in 0..16 {
        ok_call(c, "readback", &[b"SELECT", db.to_string().as_bytes()]);
        for key in scan_keys(c) {
            let name = format!("db{} {}", db, escape_short(&key, 60));
            let mut put = |aspect: &str, val: Vec<u8>| {
                out.insert(format!("{} {}", name, aspect), val);
            };
            let ty = c.call(&[&b"TYPE"[..], &key]);
            put("TYPE", ty.clone());
            put("ENCODING", c.call(&[&b"OBJECT"[..], b"ENCODING", &key]));
            put("PEXPIRETIME", c.call(&[&b"PEXPIRETIME"[..], &key]));
            match &ty[..] {
                b"+string\r\n" => put("GET", c.call(&[&b"GET"[..], &key])),
                b"+list\r\n" => put("LRANGE", c.call(&[&b"LRANGE"[..], &key, b"0", b"-1"])),
                b"+set\r\n" => {
                    let mut m = bulk_items(&parse_resp(&c.call(&[&b"SMEMBERS"[..], &key])));
                    m.sort();
                    put("SMEMBERS(sorted)", m.join(&b"\n"[..]));
                }
                b"+zset\r\n" => put(
                    "ZRANGE",
                    c.call(&[&b"ZRANGE"[..], &key, b"0", b"-1", b"WITHSCORES"]),
                ),
                b"+hash\r\n" => {
                    let flat = bulk_items(&parse_resp(&c.call(&[&b"HGETALL"[..], &key])));
                    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = flat
                        .chunks(2)
                        .map(|p| (p[0].clone(), p[1].clone()))
                        .collect();
                    pairs.sort();
                    let mut text = Vec::new();
                    for (f, val) in &pairs {
                        text.extend_from_slice(f);
                        text.push(b'=');
                        text.extend_from_slice(val);
                        text.push(b'\n');
                    }
                    put("HGETALL(sorted)", text);
                    let mut cmd: Vec<Vec<u8>> = vec![
                        b"HPEXPIRETIME".to_vec(),
                        key.clone(),
                        b"FIELDS".to_vec(),
                        pairs.len().to_string().into_bytes(),
                    ];
                    cmd.extend(pairs.iter().map(|p| p.0.clone()));
                    if !pairs.is_empty() {
                        put("HPEXPIRETIME", c.call(&cmd));
                    }
                }
                b"+stream\r\n" => {
                    put("XRANGE", c.call(&[&b"XRANGE"[..], &key, b"-", b"+"]));
                    put(
                        "XINFO FULL",
                        c.call(&[&b"XINFO"[..], b"STREAM", &key, b"FULL", b"COUNT", b"0"]),
                    );
                }
                _ => put("UNKNOWN TYPE", ty.clone()),
            }
        }
    }
    ok_call(c, "readback", &[b"SELECT", b"0"]);
    out
}

/// DUMP payloads per key, except hash tables (their iteration order is the table's):
/// two servers that loaded the same file must serialize ordered encodings identically.
pub fn dumps(c: &mut Conn) -> Readback {
    let mut out = Readback::new();
    for db in 0..16 {
        ok_call(c, "dumps", &[b"SELECT", db.to_string().as_bytes()]);
        for key in scan_keys(c) {
            let enc = c.call(&[&b"OBJECT"[..], b"ENCODING", &key]);
            if enc == b"$9\r\nhashtable\r\n" {
                continue;
            }
            out.insert(
                format!("db{} {} DUMP", db, escape_short(&key, 60)),
                c.call(&[&b"DUMP"[..], &key]),
            );
        }
    }
    ok_call(c, "dumps", &[b"SELECT", b"0"]);
    out
}

/// XINFO STREAM FULL with the wall-clock parts (consumer seen/active times, PEL delivery
/// times) zeroed, for comparing two independently built datasets.
pub fn mask_times(r: &Resp) -> Resp {
    match r {
        Resp::Array(Some(items)) => {
            let mut items: Vec<Resp> = items.iter().map(mask_times).collect();
            // Maps are flat arrays: "seen-time" <int>, "active-time" <int>.
            for i in 0..items.len().saturating_sub(1) {
                if let Resp::Bulk(Some(k)) = &items[i] {
                    if (k == b"seen-time" || k == b"active-time")
                        && matches!(items[i + 1], Resp::Int(_))
                    {
                        items[i + 1] = Resp::Int(0);
                    }
                }
            }
            // PEL entries: [id, consumer, delivery-time, count] or [id, delivery-time, count].
            let is_id = |x: &Resp| match x {
                Resp::Bulk(Some(b)) => {
                    let s = String::from_utf8_lossy(b);
                    let mut p = s.splitn(2, '-');
                    matches!((p.next(), p.next()), (Some(a), Some(b))
                        if !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit())
                        && !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()))
                }
                _ => false,
            };
            if (items.len() == 3 || items.len() == 4) && is_id(&items[0]) {
                let t = items.len() - 2;
                if matches!(items[t], Resp::Int(_)) {
                    items[t] = Resp::Int(0);
                }
            }
            Resp::Array(Some(items))
        }
        o => o.clone(),
    }
}

pub fn masked(rb: &Readback) -> BTreeMap<String, String> {
    rb.iter()
        .map(|(k, val)| {
            let shown = if k.ends_with("XINFO FULL") && val.starts_with(b"*") {
                format!("{:?}", mask_times(&parse_resp(val)))
            } else {
                escape(val)
            };
            (k.clone(), shown)
        })
        .collect()
}

pub fn exact(rb: &Readback) -> BTreeMap<String, String> {
    rb.iter().map(|(k, val)| (k.clone(), escape(val))).collect()
}

/// Panics naming the keys whose aspects differ (up to 25 of them).
#[track_caller]
pub fn compare_readbacks(
    what: &str,
    want_name: &str,
    want: &BTreeMap<String, String>,
    got_name: &str,
    got: &BTreeMap<String, String>,
) {
    let mut diffs = Vec::new();
    for (k, wv) in want {
        match got.get(k) {
            None => diffs.push(format!("{}: missing on {}", k, got_name)),
            Some(gv) if gv != wv => diffs.push(format!(
                "{}:\n    {}: {}\n    {}: {}",
                k,
                want_name,
                short(wv),
                got_name,
                short(gv)
            )),
            _ => {}
        }
    }
    for k in got.keys() {
        if !want.contains_key(k) {
            diffs.push(format!("{}: only on {}", k, got_name));
        }
    }
    assert!(
        diffs.is_empty(),
        "{}: {} differences (of {} aspects):\n{}",
        what,
        diffs.len(),
        want.len(),
        diffs
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

pub fn short(s: &str) -> String {
    if s.len() <= 300 {
        s.to_string()
    } else {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} chars)", &s[..end], s.len())
    }
}

/// Bytes that compress well: `<tag>-0123456789-` repeated to `n` bytes.
pub fn compressible(n: usize, tag: &str) -> Vec<u8> {
    let pat = format!("{}-0123456789-", tag);
    pat.bytes().cycle().take(n).collect()
}

/// Whether `log` has "offset" followed by a number (e.g. "at offset 123").
pub fn names_offset(log: &str) -> bool {
    let l = log.to_ascii_lowercase();
    l.match_indices("offset").any(|(i, _)| {
        let rest = l[i + 6..].trim_start_matches([' ', ':', '=', '[']);
        rest.starts_with(|c: char| c.is_ascii_digit())
    })
}
