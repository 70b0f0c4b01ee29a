//! `list-compress-depth`: the quicklist fields of DEBUG OBJECT (node count, fill, the
//! compression flag and the uncompressed size) after list operations must equal the
//! reference's, and compression must show in used_memory. The reply bytes of the same
//! operations are covered by `tests/diff/list_compress.txt`.

mod common;

use common::{servers, used_memory, Conn, Server};

/// DEBUG OBJECT's fields from ` ql_nodes` on (the rest holds addresses and clocks).
fn ql_fields(c: &mut Conn, key: &str) -> String {
    let mut argv = vec!["DEBUG", "OBJECT"];
    argv.extend(key.split(' '));
    let r = c.call(&argv);
    let s = String::from_utf8_lossy(&r).into_owned();
    match s.find(" ql_nodes") {
        Some(i) => s[i..].trim_end().to_string(),
        None => s,
    }
}

fn push_many(c: &mut Conn, key: &str, cmd: &str, n: usize, tag: &str) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut argv = vec![cmd.to_string(), key.to_string()];
        argv.extend(chunk.iter().map(|i| format!("{tag}-element-{i:06}")));
        c.call(&argv);
    }
}

/// Runs the scenario on one server; returns the DEBUG OBJECT fields along the way.
fn scenario(s: &Server) -> Vec<String> {
    let mut c = s.conn();
    let mut out = vec![];
    c.call(&["CONFIG", "SET", "list-compress-depth", "0"]);
    push_many(&mut c, "before", "RPUSH", 3000, "b");
    c.call(&["CONFIG", "SET", "list-compress-depth", "1"]);
    push_many(&mut c, "before", "RPUSH", 1000, "b");
    out.push(ql_fields(&mut c, "before"));
    push_many(&mut c, "d1", "RPUSH", 3000, "x");
    push_many(&mut c, "d1", "LPUSH", 2000, "y");
    out.push(ql_fields(&mut c, "d1"));
    out.push(ql_fields(&mut c, "d1 fast"));
    c.call(&["LSET", "d1", "2500", "changed"]);
    c.call(&["LINSERT", "d1", "BEFORE", "x-element-001000", "ins"]);
    c.call(&[
        "LINSERT",
        "d1",
        "AFTER",
        "x-element-001500",
        &"p".repeat(9000),
    ]);
    c.call(&["LREM", "d1", "0", "x-element-000010"]);
    c.call(&["LTRIM", "d1", "100", "-100"]);
    out.push(ql_fields(&mut c, "d1"));
    c.call(&["LPOP", "d1", "1000"]);
    c.call(&["RPOP", "d1", "1000"]);
    out.push(ql_fields(&mut c, "d1"));
    c.call(&["CONFIG", "SET", "list-compress-depth", "2"]);
    c.call(&["CONFIG", "SET", "list-max-listpack-size", "5"]);
    push_many(&mut c, "d2", "RPUSH", 1000, "z");
    c.call(&["LINSERT", "d2", "AFTER", "z-element-000500", "mid"]);
    out.push(ql_fields(&mut c, "d2"));
    c.call(&["CONFIG", "SET", "list-compress-depth", "0"]);
    c.call(&["CONFIG", "SET", "list-max-listpack-size", "-2"]);
    out
}

#[test]
fn debug_object_fields_match_reference() {
    let mut results = vec![];
    for s in servers(&[]) {
        let r = scenario(&s);
        results.push((s.kind.name(), r));
    }
    let (name, ours) = &results[0];
    assert_eq!(*name, "valkey-rs");
    assert!(ours[0].contains("ql_compressed:0"), "{}", ours[0]);
    assert!(ours[1].contains("ql_compressed:1"), "{}", ours[1]);
    assert!(!ours[2].contains("ql_uncompressed_size"), "{}", ours[2]);
    if let Some((_, theirs)) = results.get(1) {
        assert_eq!(ours, theirs);
    }
}

#[test]
fn compression_saves_memory() {
    let s = Server::ours(&[]);
    let mut c = s.conn();
    // The compressor's hash table (256 KiB, allocated once per thread) is not
    // part of what this measures: compress something first.
    c.call(&["CONFIG", "SET", "list-compress-depth", "1"]);
    push_many(&mut c, "warm-up", "RPUSH", 2000, "w");
    c.call(&["CONFIG", "SET", "list-compress-depth", "0"]);
    let m0 = used_memory(&mut c);
    push_many(&mut c, "plain", "RPUSH", 20000, "m");
    let m1 = used_memory(&mut c);
    c.call(&["CONFIG", "SET", "list-compress-depth", "1"]);
    push_many(&mut c, "lzf", "RPUSH", 20000, "m");
    let m2 = used_memory(&mut c);
    let (raw, lzf) = (m1 - m0, m2 - m1);
    assert!(lzf * 2 < raw, "uncompressed {raw} bytes, compressed {lzf}");
    let a = c.call(&["LRANGE", "plain", "0", "-1"]);
    let b = c.call(&["LRANGE", "lzf", "0", "-1"]);
    assert_eq!(a, b);
}
