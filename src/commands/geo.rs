//! GEO commands, as upstream's `geo.c`: geo sets are sorted sets whose scores are 52-bit
//! geohashes (see [`crate::geohash`]).

use super::{
    acl_cat as cat, flags as f, key_flags as k, BeginSearch, CommandDef, FindKeys, KeySpec,
};
use crate::client::Client;
use crate::db;
use crate::geohash::{self, Shape, ShapeKind};
use crate::notify::{notify_keyspace_event, NOTIFY_GENERIC, NOTIFY_ZSET};
use crate::object::{Value, ValueRef};
use crate::reply::{self, ReplyBuf as Reply};
use crate::server::Server;
use crate::types::zset::{with_bytes, AddFlags, ScoreRange, ZSet};
use crate::util::parse_i64_strict;

const fn store_spec(kw: &'static str, from: i32) -> KeySpec {
    KeySpec {
        notes: "",
        flags: k::OW | k::UPDATE | k::VARIABLE_FLAGS,
        begin: BeginSearch::Keyword {
            keyword: kw,
            startfrom: from,
        },
        find: FindKeys::Range {
            lastkey: 0,
            keystep: 1,
            limit: 0,
        },
    }
}

const RADIUS_COMPLEXITY: &str = "O(N+log(M)) where N is the number of elements inside the bounding box of the circular area delimited by center and radius and M is the number of items inside the index.";
const SEARCH_COMPLEXITY: &str = "O(N+log(M)) where N is the number of elements in the grid-aligned bounding box area around the shape provided as the filter and M is the number of items inside the shape";

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new("geoadd", -5, f::WRITE | f::DENYOOM, cat::WRITE | cat::GEO | cat::SLOW, geoadd_command)
        .keys(&[KeySpec::range(k::RW | k::UPDATE, 1, 0, 1)])
        .doc("geo", "3.2.0", "Adds one or more members to a geospatial index. The key is created if it doesn't exist.", "O(log(N)) for each item added, where N is the number of elements in the sorted set."),
    CommandDef::new("geodist", -4, f::READONLY, cat::READ | cat::GEO | cat::SLOW, geodist_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("geo", "3.2.0", "Returns the distance between two members of a geospatial index.", "O(1)"),
    CommandDef::new("geohash", -2, f::READONLY, cat::READ | cat::GEO | cat::SLOW, geohash_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("geo", "3.2.0", "Returns members from a geospatial index as geohash strings.", "O(1) for each member requested."),
    CommandDef::new("geopos", -2, f::READONLY, cat::READ | cat::GEO | cat::SLOW, geopos_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("geo", "3.2.0", "Returns the longitude and latitude of members from a geospatial index.", "O(1) for each member requested."),
    CommandDef::new("georadius", -6, f::WRITE | f::DENYOOM | f::MOVABLE_KEYS, cat::WRITE | cat::GEO | cat::SLOW, georadius_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1), store_spec("STORE", 6), store_spec("STOREDIST", 6)])
        .doc("geo", "3.2.0", "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result.", RADIUS_COMPLEXITY),
    CommandDef::new("georadius_ro", -6, f::READONLY, cat::READ | cat::GEO | cat::SLOW, georadius_ro_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("geo", "3.2.10", "Returns members from a geospatial index that are within a distance from a coordinate.", RADIUS_COMPLEXITY),
    CommandDef::new("georadiusbymember", -5, f::WRITE | f::DENYOOM | f::MOVABLE_KEYS, cat::WRITE | cat::GEO | cat::SLOW, georadiusbymember_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1), store_spec("STORE", 5), store_spec("STOREDIST", 5)])
        .doc("geo", "3.2.0", "Queries a geospatial index for members within a distance from a member, optionally stores the result.", RADIUS_COMPLEXITY),
    CommandDef::new("georadiusbymember_ro", -5, f::READONLY, cat::READ | cat::GEO | cat::SLOW, georadiusbymember_ro_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("geo", "3.2.10", "Returns members from a geospatial index that are within a distance from a member.", RADIUS_COMPLEXITY),
    CommandDef::new("geosearch", -7, f::READONLY, cat::READ | cat::GEO | cat::SLOW, geosearch_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("geo", "6.2.0", "Queries a geospatial index for members inside an area of a box, circle, or a polygon.", SEARCH_COMPLEXITY),
    CommandDef::new("geosearchstore", -8, f::WRITE | f::DENYOOM, cat::WRITE | cat::GEO | cat::SLOW, geosearchstore_command)
        .keys(&[KeySpec::range(k::OW | k::UPDATE, 1, 0, 1), KeySpec::range(k::RO | k::ACCESS, 2, 0, 1)])
        .doc("geo", "6.2.0", "Queries a geospatial index for members inside an area of a box, a circle, or a polygon, optionally stores the result.", SEARCH_COMPLEXITY),
];

// ---------------------------------------------------------------------------------------
// Argument helpers

/// `strcasecmp` on a C string: the argument ends at its first NUL byte.
#[inline]
fn kw(arg: &[u8], word: &str) -> bool {
    let a = &arg[..arg.iter().position(|&b| b == 0).unwrap_or(arg.len())];
    a.eq_ignore_ascii_case(word.as_bytes())
}

/// `getDoubleFromObjectOrReply` with an optional custom message.
fn double_or_reply(r: &mut Reply, arg: &[u8], msg: Option<&str>) -> Option<f64> {
    let v = super::zset::parse_double(arg);
    if v.is_none() {
        r.add_error(msg.unwrap_or(reply::ERR_NOT_FLOAT));
    }
    v
}

/// `extractLongLatOrReply`: longitude then latitude, within the geohash limits.
fn lonlat_or_reply(r: &mut Reply, args: &[Vec<u8>]) -> Option<[f64; 2]> {
    let lon = double_or_reply(r, args.first()?, None)?;
    let lat = double_or_reply(r, args.get(1)?, None)?;
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&lon)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat)
    {
        r.add_error(&format!(
            "ERR invalid longitude,latitude pair {:.6},{:.6}",
            lon, lat
        ));
        return None;
    }
    Some([lon, lat])
}

/// `extractUnitOrReply`: meters per unit.
fn unit_or_reply(r: &mut Reply, arg: &[u8]) -> Option<f64> {
    if kw(arg, "m") {
        Some(1.0)
    } else if kw(arg, "km") {
        Some(1000.0)
    } else if kw(arg, "ft") {
        Some(0.3048)
    } else if kw(arg, "mi") {
        Some(1609.34)
    } else {
        r.add_error("ERR unsupported unit provided. please use M, KM, FT, MI");
        None
    }
}

/// `extractDistanceOrReply`: (radius, meters per unit).
fn distance_or_reply(r: &mut Reply, args: &[Vec<u8>]) -> Option<(f64, f64)> {
    let d = double_or_reply(r, args.first()?, Some("ERR need numeric radius"))?;
    if d < 0.0 {
        r.add_error("ERR radius cannot be negative");
        return None;
    }
    let conv = unit_or_reply(r, args.get(1)?)?;
    Some((d, conv))
}

/// `extractBoxOrReply`: (width, height, meters per unit).
fn box_or_reply(r: &mut Reply, args: &[Vec<u8>]) -> Option<(f64, f64, f64)> {
    let w = double_or_reply(r, args.first()?, Some("ERR need numeric width"))?;
    let h = double_or_reply(r, args.get(1)?, Some("ERR need numeric height"))?;
    if h < 0.0 || w < 0.0 {
        r.add_error("ERR height or width cannot be negative");
        return None;
    }
    let conv = unit_or_reply(r, args.get(2)?)?;
    Some((w, h, conv))
}

/// A coordinate as `addReplyHumanLongDouble` prints it (the double widened to long
/// double, `%.17Lf` with trailing zeros removed): a bulk string in RESP2, a double in
/// RESP3.
fn add_coord(r: &mut Reply, v: f64) {
    let s = human_double(v);
    if r.resp == 2 {
        r.add_bulk(s.as_bytes());
    } else {
        let mut b = Vec::with_capacity(s.len() + 3);
        b.push(b',');
        b.extend_from_slice(s.as_bytes());
        b.extend_from_slice(b"\r\n");
        r.add_raw(&b);
    }
}

/// `ld2string(.., LD_STR_HUMAN)` of a finite double.
fn human_double(v: f64) -> String {
    let bits = v.to_bits();
    let neg = bits >> 63 == 1;
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1u64 << 52) - 1);
    let ld = if exp == 0 && frac == 0 {
        crate::ld::Ld { neg, m: 0, e: 0 }
    } else {
        let (mant, e) = if exp == 0 {
            (frac, -1074i64)
        } else {
            (frac | (1u64 << 52), exp - 1075)
        };
        let z = mant.leading_zeros() as i64;
        crate::ld::Ld {
            neg,
            m: mant << z,
            e: e - z,
        }
    };
    ld.format_human()
}

// ---------------------------------------------------------------------------------------
// GEOADD, GEOHASH, GEOPOS, GEODIST

fn geoadd_command(srv: &mut Server, c: &mut Client) {
    let argc = c.argv.len();
    let (mut nx, mut xx) = (false, false);
    let mut longidx = 2;
    while longidx < argc {
        let o = &c.argv[longidx];
        if kw(o, "nx") {
            nx = true;
        } else if kw(o, "xx") {
            xx = true;
        } else if !kw(o, "ch") {
            break;
        }
        longidx += 1;
    }
    if !(argc - longidx).is_multiple_of(3) || (xx && nx) {
        c.reply.add_error(reply::ERR_SYNTAX);
        return;
    }
    let elements = (argc - longidx) / 3;
    let mut argv: Vec<Vec<u8>> = Vec::with_capacity(longidx + elements * 2);
    argv.push(b"ZADD".to_vec());
    argv.extend(c.argv[1..longidx].iter().cloned());
    for i in 0..elements {
        let base = longidx + i * 3;
        let Some(xy) = lonlat_or_reply(&mut c.reply, &c.argv[base..base + 2]) else {
            return;
        };
        let bits = geohash::encode_wgs84(xy[0], xy[1], geohash::STEP_MAX)
            .map(geohash::align52)
            .unwrap_or(0);
        argv.push(bits.to_string().into_bytes());
        argv.push(std::mem::take(&mut c.argv[base + 2]));
    }
    // Propagated as the ZADD it is (call() would otherwise use the GEOADD it saved).
    if crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL) {
        c.propagate_argv = Some(argv.clone());
    }
    c.argv = argv;
    super::zset::zadd_command(srv, c);
}

/// The zset at `key` for a read command: Err(()) after replying WRONGTYPE.
fn lookup_zset<'a>(
    srv: &'a mut Server,
    db: usize,
    key: &[u8],
    r: &mut Reply,
) -> Result<Option<&'a ZSet>, ()> {
    match db::lookup_key_read(srv, db, key) {
        None => Ok(None),
        Some(ValueRef::ZSet(z)) => Ok(Some(z)),
        Some(_) => {
            r.add_error(reply::ERR_WRONGTYPE);
            Err(())
        }
    }
}

fn geohash_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let Ok(z) = lookup_zset(srv, db, &c.argv[1], &mut c.reply) else {
        return;
    };
    c.reply.add_array_len(c.argv.len() - 2);
    for m in &c.argv[2..] {
        match z
            .and_then(|z| z.score(m))
            .and_then(geohash::standard_hash_string)
        {
            Some(s) => c.reply.add_bulk(&s),
            None => c.reply.add_null(),
        }
    }
}

fn geopos_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let Ok(z) = lookup_zset(srv, db, &c.argv[1], &mut c.reply) else {
        return;
    };
    c.reply.add_array_len(c.argv.len() - 2);
    for m in &c.argv[2..] {
        match z.and_then(|z| z.score(m)).and_then(geohash::decode_score) {
            Some([lon, lat]) => {
                c.reply.add_array_len(2);
                add_coord(&mut c.reply, lon);
                add_coord(&mut c.reply, lat);
            }
            None => c.reply.add_null_array(),
        }
    }
}

fn geodist_command(srv: &mut Server, c: &mut Client) {
    let mut to_meter = 1.0;
    if c.argv.len() == 5 {
        match unit_or_reply(&mut c.reply, &c.argv[4]) {
            Some(u) => to_meter = u,
            None => return,
        }
    } else if c.argv.len() > 5 {
        c.reply.add_error(reply::ERR_SYNTAX);
        return;
    }
    let db = c.db;
    let Ok(z) = lookup_zset(srv, db, &c.argv[1], &mut c.reply) else {
        return;
    };
    let Some(z) = z else {
        c.reply.add_null();
        return;
    };
    let (Some(s1), Some(s2)) = (z.score(&c.argv[2]), z.score(&c.argv[3])) else {
        c.reply.add_null();
        return;
    };
    match (geohash::decode_score(s1), geohash::decode_score(s2)) {
        (Some(a), Some(b)) => {
            let d = geohash::distance(a[0], a[1], b[0], b[1]) / to_meter;
            c.reply.add_bulk(geohash::fmt_distance(d).as_bytes());
        }
        _ => c.reply.add_null(),
    }
}

// ---------------------------------------------------------------------------------------
// GEORADIUS family and GEOSEARCH[STORE]

const RADIUS_COORDS: u32 = 1 << 0;
const RADIUS_MEMBER: u32 = 1 << 1;
const RADIUS_NOSTORE: u32 = 1 << 2;
const GEOSEARCH: u32 = 1 << 3;
const GEOSEARCHSTORE: u32 = 1 << 4;

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    None,
    Asc,
    Desc,
}

struct Point {
    lon: f64,
    lat: f64,
    dist: f64,
    score: f64,
    member: Vec<u8>,
}

/// What the parsing and search phase decided.
struct Plan {
    points: Vec<Point>,
    found_key: bool,
    store: Option<Vec<u8>>,
    storedist: bool,
    conversion: f64,
    withdist: bool,
    withhash: bool,
    withcoord: bool,
    count: i64,
    sort: Sort,
}

/// `geoGetPointsInRange`: appends the points of the score range [min, max) inside the
/// shape; stops once `limit` points (0: no limit) are collected.
fn points_in_range(
    z: &ZSet,
    min: f64,
    max: f64,
    shape: &Shape,
    out: &mut Vec<Point>,
    limit: usize,
) {
    let range = ScoreRange {
        min,
        max,
        minex: false,
        maxex: true,
    };
    let Some(start) = z.range_start(&range, 0, false) else {
        return;
    };
    for (m, score) in z.iter_from(start, false) {
        if score >= max {
            break;
        }
        if let Some([lon, lat]) = geohash::decode_score(score) {
            if let Some(dist) = geohash::within(shape, lon, lat) {
                out.push(Point {
                    lon,
                    lat,
                    dist,
                    score,
                    member: with_bytes(m, |b| b.to_vec()),
                });
            }
        }
        if !out.is_empty() && limit != 0 && out.len() >= limit {
            break;
        }
    }
}

/// `membersOfAllNeighbors`.
fn search(z: &ZSet, shape: &Shape, limit: usize) -> Vec<Point> {
    let cells = geohash::search_cells(shape);
    let mut out = Vec::new();
    let mut last = 0usize;
    for (i, cell) in cells.iter().enumerate() {
        if cell.bits == 0 && cell.step == 0 {
            continue;
        }
        if last != 0 && *cell == cells[last] {
            continue;
        }
        if !out.is_empty() && limit != 0 && out.len() >= limit {
            break;
        }
        let (min, max) = geohash::cell_scores(*cell);
        points_in_range(z, min, max, shape, &mut out, limit);
        last = i;
    }
    out
}

/// `sort_gp_asc` / `sort_gp_desc`, with C's int result.
#[inline]
fn cmp_dist(a: &Point, b: &Point, desc: bool) -> i32 {
    let r = if a.dist > b.dist {
        1
    } else if a.dist == b.dist {
        0
    } else {
        -1
    };
    if desc {
        -r
    } else {
        r
    }
}

/// glibc's `qsort` (a top-down merge sort, stable) with a C-style comparator.
fn merge_sort(v: &mut Vec<Point>, desc: bool) {
    fn msort(b: &mut [usize], tmp: &mut [usize], v: &[Point], desc: bool) {
        let n = b.len();
        if n <= 1 {
            return;
        }
        let n1 = n / 2;
        msort(&mut b[..n1], tmp, v, desc);
        msort(&mut b[n1..], tmp, v, desc);
        let (mut i, mut j, mut k) = (0usize, n1, 0usize);
        while i < n1 && j < n {
            if cmp_dist(&v[b[i]], &v[b[j]], desc) <= 0 {
                tmp[k] = b[i];
                i += 1;
            } else {
                tmp[k] = b[j];
                j += 1;
            }
            k += 1;
        }
        while i < n1 {
            tmp[k] = b[i];
            i += 1;
            k += 1;
        }
        while j < n {
            tmp[k] = b[j];
            j += 1;
            k += 1;
        }
        b.copy_from_slice(&tmp[..n]);
    }
    let n = v.len();
    let mut idx: Vec<usize> = (0..n).collect();
    let mut tmp = vec![0usize; n];
    msort(&mut idx, &mut tmp, v, desc);
    let mut old: Vec<Option<Point>> = v.drain(..).map(Some).collect();
    for i in idx {
        if let Some(p) = old.get_mut(i).and_then(|x| x.take()) {
            v.push(p);
        }
    }
}

/// Upstream's `pqsort` (NetBSD's qsort, skipping partitions outside [lrange, rrange]).
fn pqsort(v: &mut [Point], desc: bool, lrange: usize, rrange: usize) {
    fn med3(v: &[Point], a: usize, b: usize, c: usize, desc: bool) -> usize {
        let cmp = |x: usize, y: usize| cmp_dist(&v[x], &v[y], desc);
        if cmp(a, b) < 0 {
            if cmp(b, c) < 0 {
                b
            } else if cmp(a, c) < 0 {
                c
            } else {
                a
            }
        } else if cmp(b, c) > 0 {
            b
        } else if cmp(a, c) < 0 {
            a
        } else {
            c
        }
    }
    fn vecswap(v: &mut [Point], a: usize, b: usize, n: usize) {
        for k in 0..n {
            v.swap(a + k, b + k);
        }
    }
    fn outside(base: usize, cnt: usize, l: usize, r: usize) -> bool {
        let last = base + cnt - 1;
        (l < base && r < base) || (l > last && r > last)
    }
    fn rec(v: &mut [Point], mut a: usize, mut n: usize, desc: bool, l: usize, rr: usize) {
        loop {
            if n < 7 {
                for pm in a + 1..a + n {
                    let mut pl = pm;
                    while pl > a && cmp_dist(&v[pl - 1], &v[pl], desc) > 0 {
                        v.swap(pl, pl - 1);
                        pl -= 1;
                    }
                }
                return;
            }
            let mut pm = a + n / 2;
            if n > 7 {
                let mut pl = a;
                let mut pn = a + n - 1;
                if n > 40 {
                    let d = n / 8;
                    pl = med3(v, pl, pl + d, pl + 2 * d, desc);
                    pm = med3(v, pm - d, pm, pm + d, desc);
                    pn = med3(v, pn - 2 * d, pn - d, pn, desc);
                }
                pm = med3(v, pl, pm, pn, desc);
            }
            v.swap(a, pm);
            let (mut pa, mut pb) = (a + 1, a + 1);
            let (mut pc, mut pd) = (a + n - 1, a + n - 1);
            loop {
                while pb <= pc {
                    let r = cmp_dist(&v[pb], &v[a], desc);
                    if r > 0 {
                        break;
                    }
                    if r == 0 {
                        v.swap(pa, pb);
                        pa += 1;
                    }
                    pb += 1;
                }
                while pb <= pc {
                    let r = cmp_dist(&v[pc], &v[a], desc);
                    if r < 0 {
                        break;
                    }
                    if r == 0 {
                        v.swap(pc, pd);
                        pd -= 1;
                    }
                    pc -= 1;
                }
                if pb > pc {
                    break;
                }
                v.swap(pb, pc);
                pb += 1;
                pc -= 1;
            }
            let pn = a + n;
            let r = (pa - a).min(pb - pa);
            vecswap(v, a, pb - r, r);
            let r = (pd - pc).min(pn - pd - 1);
            vecswap(v, pb, pn - r, r);
            let r = pb - pa;
            if r > 1 && !outside(a, r, l, rr) {
                rec(v, a, r, desc, l, rr);
            }
            let r = pd - pc;
            if r > 1 {
                a = pn - r;
                n = r;
                if !outside(a, n, l, rr) {
                    continue;
                }
            }
            return;
        }
    }
    let n = v.len();
    rec(v, 0, n, desc, lrange, rrange);
}

/// The position of a member used as a search center.
fn member_xy_or_reply(r: &mut Reply, z: &ZSet, member: &[u8]) -> Option<[f64; 2]> {
    let Some(score) = z.score(member) else {
        let m = &member[..member.iter().position(|&b| b == 0).unwrap_or(member.len())];
        r.add_error(&format!(
            "ERR member {} does not exist",
            String::from_utf8_lossy(m)
        ));
        return None;
    };
    let xy = geohash::decode_score(score);
    if xy.is_none() {
        r.add_error("ERR could not decode requested zset member");
    }
    xy
}

/// Parses the arguments and runs the search (`georadiusGeneric` up to the reply).
/// None when an error was replied.
fn plan(z: Option<&ZSet>, argv: &[Vec<u8>], r: &mut Reply, flags: u32) -> Option<Plan> {
    let argc = argv.len();
    let mut shape = Shape {
        xy: [0.0, 0.0],
        conversion: 1.0,
        kind: ShapeKind::Circle { radius: 0.0 },
    };
    let mut store: Option<Vec<u8>> = None;
    let mut storedist = false;
    let base_args;
    if flags & RADIUS_COORDS != 0 {
        base_args = 6;
        shape.xy = lonlat_or_reply(r, &argv[2..])?;
        let (rad, conv) = distance_or_reply(r, &argv[base_args - 2..])?;
        shape.kind = ShapeKind::Circle { radius: rad };
        shape.conversion = conv;
    } else if flags & RADIUS_MEMBER != 0 {
        base_args = 5;
        if let Some(z) = z {
            shape.xy = member_xy_or_reply(r, z, &argv[2])?;
            let (rad, conv) = distance_or_reply(r, &argv[base_args - 2..])?;
            shape.kind = ShapeKind::Circle { radius: rad };
            shape.conversion = conv;
        }
    } else if flags & GEOSEARCH != 0 {
        if flags & GEOSEARCHSTORE != 0 {
            base_args = 3;
            store = Some(argv[1].clone());
        } else {
            base_args = 2;
        }
    } else {
        r.add_error("ERR Unknown georadius search type");
        return None;
    }

    let (mut withdist, mut withhash, mut withcoord) = (false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut bypolygon = false;
    let mut sort = Sort::None;
    let mut any = false;
    let mut count: i64 = 0;
    if argc > base_args {
        let remaining = argc - base_args;
        let mut i = 0;
        while i < remaining {
            let arg = &argv[base_args + i];
            let search = flags & GEOSEARCH != 0;
            let can_store = flags & RADIUS_NOSTORE == 0 && !search;
            if kw(arg, "withdist") {
                withdist = true;
            } else if kw(arg, "withhash") {
                withhash = true;
            } else if kw(arg, "withcoord") {
                withcoord = true;
            } else if kw(arg, "any") {
                any = true;
            } else if kw(arg, "asc") {
                sort = Sort::Asc;
            } else if kw(arg, "desc") {
                sort = Sort::Desc;
            } else if kw(arg, "count") && i + 1 < remaining {
                let Some(n) = parse_i64_strict(&argv[base_args + i + 1]) else {
                    r.add_error(reply::ERR_NOT_INTEGER);
                    return None;
                };
                if n <= 0 {
                    r.add_error("ERR COUNT must be > 0");
                    return None;
                }
                count = n;
                i += 1;
            } else if kw(arg, "store") && i + 1 < remaining && can_store {
                store = Some(argv[base_args + i + 1].clone());
                storedist = false;
                i += 1;
            } else if kw(arg, "storedist") && i + 1 < remaining && can_store {
                store = Some(argv[base_args + i + 1].clone());
                storedist = true;
                i += 1;
            } else if kw(arg, "storedist") && search && flags & GEOSEARCHSTORE != 0 {
                storedist = true;
            } else if kw(arg, "frommember") && i + 1 < remaining && search && !fromloc && !bypolygon
            {
                if let Some(z) = z {
                    shape.xy = member_xy_or_reply(r, z, &argv[base_args + i + 1])?;
                }
                frommember = true;
                i += 1;
            } else if kw(arg, "fromlonlat")
                && i + 2 < remaining
                && search
                && !frommember
                && !bypolygon
            {
                shape.xy = lonlat_or_reply(r, &argv[base_args + i + 1..])?;
                fromloc = true;
                i += 2;
            } else if kw(arg, "byradius") && i + 2 < remaining && search && !bybox && !bypolygon {
                let (rad, conv) = distance_or_reply(r, &argv[base_args + i + 1..])?;
                shape.kind = ShapeKind::Circle { radius: rad };
                shape.conversion = conv;
                byradius = true;
                i += 2;
            } else if kw(arg, "bybox") && i + 3 < remaining && search && !byradius && !bypolygon {
                let (w, h, conv) = box_or_reply(r, &argv[base_args + i + 1..])?;
                shape.kind = ShapeKind::Box {
                    width: w,
                    height: h,
                };
                shape.conversion = conv;
                bybox = true;
                i += 3;
            } else if kw(arg, "bypolygon")
                && i + 2 < remaining
                && search
                && !byradius
                && !bybox
                && !frommember
                && !fromloc
            {
                let nv =
                    parse_i64_strict(&argv[base_args + i + 1]).and_then(|v| i32::try_from(v).ok());
                let Some(nv) = nv else {
                    r.add_error("ERR invalid number of vertices");
                    return None;
                };
                let possible = (remaining - i - 2) / 2;
                if nv < 3 || possible < nv as usize {
                    r.add_error("ERR GEOSEARCH BYPOLYGON must have at least 3 vertices");
                    return None;
                }
                let nv = nv as usize;
                let mut vertices = Vec::with_capacity(nv);
                for j in 0..nv {
                    let at = base_args + i + 2 + j * 2;
                    vertices.push(lonlat_or_reply(r, &argv[at..])?);
                }
                let (_, centroid) = geohash::polygon_bounds(&vertices);
                shape.xy = centroid;
                shape.conversion = 1.0;
                shape.kind = ShapeKind::Polygon { vertices };
                bypolygon = true;
                i += 1 + nv * 2;
            } else {
                r.add_error(reply::ERR_SYNTAX);
                return None;
            }
            i += 1;
        }
    }

    if store.is_some() && (withdist || withhash || withcoord) {
        r.add_error(if flags & GEOSEARCHSTORE != 0 {
            "ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        } else {
            "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        });
        return None;
    }
    let name = || String::from_utf8_lossy(&argv[0]).into_owned();
    if flags & GEOSEARCH != 0 && !(frommember || fromloc) && !bypolygon {
        r.add_error(&format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {}",
            name()
        ));
        return None;
    }
    if flags & GEOSEARCH != 0 && !(byradius || bybox || bypolygon) {
        r.add_error(&format!(
            "ERR exactly one of BYRADIUS, BYBOX and BYPOLYGON can be specified for {}",
            name()
        ));
        return None;
    }
    if any && count == 0 {
        r.add_error("ERR the ANY argument requires COUNT argument");
        return None;
    }
    let mut p = Plan {
        points: Vec::new(),
        found_key: z.is_some(),
        store,
        storedist,
        conversion: shape.conversion,
        withdist,
        withhash,
        withcoord,
        count,
        sort,
    };
    let Some(z) = z else {
        return Some(p);
    };
    if count != 0 && sort == Sort::None && !any {
        p.sort = Sort::Asc;
    }
    let limit = if any {
        usize::try_from(count).unwrap_or(usize::MAX)
    } else {
        0
    };
    p.points = search(z, &shape, limit);
    Some(p)
}

fn georadius_generic(srv: &mut Server, c: &mut Client, src: usize, flags: u32) {
    let db = c.db;
    let plan = {
        let Ok(z) = lookup_zset(srv, db, &c.argv[src], &mut c.reply) else {
            return;
        };
        match plan(z, &c.argv, &mut c.reply, flags) {
            Some(p) => p,
            None => return,
        }
    };
    let Plan {
        mut points,
        found_key,
        store,
        storedist,
        conversion,
        withdist,
        withhash,
        withcoord,
        count,
        sort,
    } = plan;

    if !found_key {
        match store {
            Some(dst) => {
                if db::db_delete(srv, db, &dst) {
                    db::signal_modified_key(srv, db, &dst);
                    notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &dst, db);
                    srv.dirty += 1;
                }
                c.reply.add_long(0);
            }
            None => c.reply.add_array_len(0),
        }
        return;
    }
    if points.is_empty() && store.is_none() {
        c.reply.add_array_len(0);
        return;
    }
    let total = points.len();
    let returned = if count == 0 || (total as i64) < count {
        total
    } else {
        count as usize
    };
    if sort != Sort::None {
        let desc = sort == Sort::Desc;
        if returned == total {
            merge_sort(&mut points, desc);
        } else {
            pqsort(&mut points, desc, 0, returned - 1);
        }
    }
    points.truncate(returned);

    let Some(dst) = store else {
        let opts = withdist as usize + withhash as usize + withcoord as usize;
        c.reply.add_array_len(returned);
        for p in &points {
            if opts > 0 {
                c.reply.add_array_len(opts + 1);
            }
            c.reply.add_bulk(&p.member);
            if withdist {
                c.reply
                    .add_bulk(geohash::fmt_distance(p.dist / conversion).as_bytes());
            }
            if withhash {
                c.reply.add_long(geohash::c_double_to_i64(p.score));
            }
            if withcoord {
                c.reply.add_array_len(2);
                add_coord(&mut c.reply, p.lon);
                add_coord(&mut c.reply, p.lat);
            }
        }
        return;
    };

    if returned > 0 {
        let (me, mv) = (
            srv.config.zset_max_listpack_entries,
            srv.config.zset_max_listpack_value,
        );
        let maxelelen = points.iter().map(|p| p.member.len()).max().unwrap_or(0);
        let mut z = ZSet::create(returned, maxelelen, me, mv);
        for p in &points {
            let score = if storedist {
                p.dist / conversion
            } else {
                p.score
            };
            z.add(score, &p.member, AddFlags::default(), me, mv);
        }
        db::set_key(srv, db, &dst, Value::ZSet(z), false);
        let ev = if flags & GEOSEARCH != 0 {
            "geosearchstore"
        } else {
            "georadiusstore"
        };
        notify_keyspace_event(srv, NOTIFY_ZSET, ev, &dst, db);
        srv.dirty += returned as u64;
    } else if db::db_delete(srv, db, &dst) {
        db::signal_modified_key(srv, db, &dst);
        notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &dst, db);
        srv.dirty += 1;
    }
    c.reply.add_long(returned as i64);
}

fn georadius_command(srv: &mut Server, c: &mut Client) {
    georadius_generic(srv, c, 1, RADIUS_COORDS);
}

fn georadiusbymember_command(srv: &mut Server, c: &mut Client) {
    georadius_generic(srv, c, 1, RADIUS_MEMBER);
}

fn georadius_ro_command(srv: &mut Server, c: &mut Client) {
    georadius_generic(srv, c, 1, RADIUS_COORDS | RADIUS_NOSTORE);
}

fn georadiusbymember_ro_command(srv: &mut Server, c: &mut Client) {
    georadius_generic(srv, c, 1, RADIUS_MEMBER | RADIUS_NOSTORE);
}

fn geosearch_command(srv: &mut Server, c: &mut Client) {
    georadius_generic(srv, c, 1, GEOSEARCH);
}

fn geosearchstore_command(srv: &mut Server, c: &mut Client) {
    georadius_generic(srv, c, 2, GEOSEARCH | GEOSEARCHSTORE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_coords() {
        assert_eq!(human_double(0.0), "0");
        assert_eq!(human_double(13.361389338970184), "13.36138933897018433");
        assert_eq!(human_double(-0.5), "-0.5");
        assert_eq!(format!("{:.6}", 0.0078125), "0.007812");
    }
}
