//! Differential test of double formatting (`d2string` / `fpconv_dtoa`, upstream's Grisu2):
//! many doubles are stored as sorted-set scores and read back from valkey-rs and from the
//! reference server; every reply must be byte-identical.
//!
//! Per value: `ZADD lp <d> m<i>` (a listpack zset: the score is stored as text there),
//! `ZADD sl <d> m<i>` (a skiplist zset, forced by 129 padding members), `ZINCRBY inc <d> m`
//! (a running sum, so results that were never typed in get formatted too), then `ZSCORE`
//! on both keys over a RESP2 and a RESP3 connection; per batch `ZRANGE ... WITHSCORES` on
//! both keys and both protocols. Everything is pipelined.
//!
//! Values: random bit patterns (finite), random decimal strings (1-17 digits, exponents
//! -320..308, some out of range on purpose: the errors are compared too), powers of ten
//! and of two, neighbours of short decimals, near-halfway decimal strings, subnormals,
//! integers and their neighbours around 2^53, 2^62, 2^63, 2^64, layout boundaries, zeros.
//!
//! Environment: `DOUBLES_N=n` values (default 20000), `DOUBLES_SEED=n`.

mod common;

use common::{encode_command, escape, escape_short, Conn, Rng, Server};

/// The double `n` ulps away from `d` (towards +inf for n > 0), staying finite.
fn step(d: f64, n: i64) -> f64 {
    let mut x = d;
    for _ in 0..n.unsigned_abs() {
        x = if n > 0 { x.next_up() } else { x.next_down() };
    }
    if x.is_finite() {
        x
    } else {
        d
    }
}

/// A finite double from random bits, optionally forced subnormal.
fn random_bits(r: &mut Rng, subnormal: bool) -> f64 {
    loop {
        let mut b = r.next();
        if subnormal {
            b &= !(0x7ff << 52);
        }
        let d = f64::from_bits(b);
        if d.is_finite() {
            return d;
        }
    }
}

fn random_digits(r: &mut Rng, n: usize) -> String {
    let mut s = String::with_capacity(n);
    for i in 0..n {
        let lo = if i == 0 { 1 } else { 0 };
        s.push(char::from(b'0' + r.range(lo, 9) as u8));
    }
    s
}

/// One score argument (as sent on the wire).
fn gen_value(r: &mut Rng, i: usize) -> String {
    let sign = if r.below(2) == 0 { "" } else { "-" };
    match r.below(16) {
        // Random bit patterns, sent as the shortest round-trip text or 17 digits.
        0..=3 => {
            let d = random_bits(r, false);
            if r.below(2) == 0 {
                format!("{d:e}")
            } else {
                format!("{d:.16e}")
            }
        }
        // Random decimal strings: 1-17 digits, exponent -320..308.
        4..=6 => {
            let nd = r.range(1, 17) as usize;
            let digits = random_digits(r, nd);
            let e = r.range(-320, 308);
            if r.below(2) == 0 {
                format!("{sign}{digits}e{e}")
            } else {
                format!("{sign}{}.{}e{}", &digits[..1], &digits[1..], e)
            }
        }
        // Few digits at exponents around the layout boundaries (plain vs scientific).
        7 => {
            let nd = r.range(1, 17) as usize;
            let digits = random_digits(r, nd);
            let e = r.range(-30, 30);
            format!("{sign}{digits}e{e}")
        }
        // Powers of ten and of two, and their neighbours.
        8 => {
            let base = if r.below(2) == 0 {
                format!("1e{}", r.range(-323, 308))
                    .parse::<f64>()
                    .unwrap_or(1.0)
            } else {
                2f64.powi(r.range(-1074, 1023) as i32)
            };
            let d = step(base, r.range(-2, 2));
            format!("{sign}{d:e}")
        }
        // Neighbours of short decimals (where Grisu2 picks non-shortest digits).
        9 => {
            let nd = r.range(1, 6) as usize;
            let digits = random_digits(r, nd);
            let e = r.range(-320, 308);
            let base: f64 = format!("{digits}e{e}").parse().unwrap_or(1.0);
            let d = step(base, r.range(-3, 3));
            format!("{sign}{d:e}")
        }
        // Near-halfway decimal strings: 17 significant digits then 5, 4999.., 5000..1.
        10 => {
            let sub = r.below(8) == 0;
            let d = random_bits(r, sub).abs();
            let s = format!("{d:.16e}");
            let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
            let tail = ["5", "49999999", "50000001", "5000000000000000000001"][r.below(4) as usize];
            format!("{sign}{mant}{tail}e{exp}")
        }
        // Subnormals and the normal/subnormal boundary.
        11 => {
            let d = match r.below(4) {
                0 => f64::MIN_POSITIVE,
                1 => f64::from_bits(1),
                2 => f64::from_bits((1 << 52) - 1),
                _ => random_bits(r, true).abs(),
            };
            let d = step(d, r.range(-2, 2));
            format!("{sign}{d:e}")
        }
        // Integers and neighbours around 2^53, 2^62, 2^63, 2^64 (the integer fast path).
        12 | 13 => {
            let p = [53, 62, 63, 64, 52, 61][r.below(6) as usize];
            let d = step(2f64.powi(p), r.range(-40, 40));
            if r.below(2) == 0 {
                format!("{sign}{d:e}")
            } else {
                format!("{sign}{d}")
            }
        }
        // Decimal fractions with few digits (the common case) and integers.
        14 => {
            let int = r.range(0, 1 << 40);
            let frac = r.range(0, 999_999);
            if r.below(3) == 0 {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{frac}")
            }
        }
        // Zeros and a few fixed values.
        _ => {
            const FIXED: &[&str] = &[
                "0",
                "-0",
                "0.0",
                "-0.0",
                "+0",
                "1e23",
                "5e22",
                "4.3e216",
                "-1321030431031664.2",
                "-30349554.566517722",
                "1.7976931348623157e308",
                "-1.7976931348623157e308",
                "2.2250738585072014e-308",
                "4.9406564584124654e-324",
                "0.1",
                "0.000001",
                "0.0000001",
                "1e21",
                "1e22",
                "123456789012345678",
                "9007199254740993",
                "4611686018427387904",
                "4611686018427387905",
                "4611686018427388416",
                "-4611686018427387904",
                "-4611686018427388416",
                "9223372036854775807",
                "9223372036854775808",
                "18446744073709551616",
            ];
            FIXED[i % FIXED.len()].to_string()
        }
    }
}

/// Both servers' connections: RESP2 and RESP3.
struct Side {
    srv: Server,
    r2: Conn,
    r3: Conn,
}

impl Side {
    fn new(srv: Server) -> Side {
        let mut r2 = srv.conn();
        let mut r3 = srv.conn();
        let hello = r3.call(&["HELLO", "3"]);
        assert!(hello.starts_with(b"%"), "HELLO 3: {}", escape(&hello));
        r2.call(&["FLUSHALL"]);
        Side { srv, r2, r3 }
    }

    /// Sends the pipelined requests and reads `n2` + `n3` replies.
    fn run(&mut self, req2: &[u8], n2: usize, req3: &[u8], n3: usize) -> Vec<Vec<u8>> {
        let name = self.srv.kind.name();
        self.r2.send_raw(req2).expect("send");
        let mut out = Vec::with_capacity(n2 + n3);
        for _ in 0..n2 {
            out.push(
                self.r2
                    .read_reply()
                    .unwrap_or_else(|e| panic!("{name}: {e}")),
            );
        }
        self.r3.send_raw(req3).expect("send");
        for _ in 0..n3 {
            out.push(
                self.r3
                    .read_reply()
                    .unwrap_or_else(|e| panic!("{name}: {e}")),
            );
        }
        out
    }
}

#[test]
fn doubles_match_reference() {
    let Some(bin) = common::require_reference() else {
        return;
    };
    let n: usize = std::env::var("DOUBLES_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("DOUBLES_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x005e_edd0_b1e5);
    let mut rng = Rng(seed | 1);
    let mut ours = Side::new(Server::ours(&[]));
    let mut refr = Side::new(Server::reference(&bin, &[]));

    // 129 padding members make `sl` a skiplist from the start.
    let mut pad: Vec<String> = vec!["ZADD".into(), "sl".into()];
    for p in 0..129 {
        pad.push("0".into());
        pad.push(format!("pad{p}"));
    }
    const BATCH: usize = 100;
    let mut mismatches = Vec::new();
    let mut compared = 0usize;
    let mut done = 0usize;
    let mut encodings_checked = false;
    while done < n {
        let count = BATCH.min(n - done);
        let values: Vec<String> = (0..count).map(|i| gen_value(&mut rng, done + i)).collect();
        // What each reply is, for the report.
        let mut what: Vec<String> = Vec::new();
        let mut req2 = Vec::new();
        let mut push2 = |argv: &[&str], what: &mut Vec<String>, tag: String| {
            req2.extend_from_slice(&encode_command(argv));
            what.push(tag);
        };
        push2(&["DEL", "lp", "sl", "inc"], &mut what, "DEL".into());
        let pad_ref: Vec<&str> = pad.iter().map(|s| s.as_str()).collect();
        push2(&pad_ref, &mut what, "pad".into());
        let members: Vec<String> = (0..count).map(|i| format!("m{i}")).collect();
        for (v, m) in values.iter().zip(&members) {
            push2(&["ZADD", "lp", v, m], &mut what, format!("ZADD lp {v}"));
            push2(&["ZADD", "sl", v, m], &mut what, format!("ZADD sl {v}"));
            push2(
                &["ZINCRBY", "inc", v, "m"],
                &mut what,
                format!("ZINCRBY {v}"),
            );
            push2(
                &["ZSCORE", "lp", m],
                &mut what,
                format!("ZSCORE lp ({v}) RESP2"),
            );
            push2(
                &["ZSCORE", "sl", m],
                &mut what,
                format!("ZSCORE sl ({v}) RESP2"),
            );
        }
        push2(
            &["ZRANGE", "lp", "0", "-1", "WITHSCORES"],
            &mut what,
            "ZRANGE lp RESP2".into(),
        );
        push2(
            &["ZRANGE", "sl", "0", "-1", "WITHSCORES"],
            &mut what,
            "ZRANGE sl RESP2".into(),
        );
        let n2 = what.len();
        let mut req3 = Vec::new();
        for (v, m) in values.iter().zip(&members) {
            req3.extend_from_slice(&encode_command(&["ZSCORE", "lp", m.as_str()]));
            what.push(format!("ZSCORE lp ({v}) RESP3"));
            req3.extend_from_slice(&encode_command(&["ZSCORE", "sl", m.as_str()]));
            what.push(format!("ZSCORE sl ({v}) RESP3"));
        }
        req3.extend_from_slice(&encode_command(&["ZRANGE", "lp", "0", "-1", "WITHSCORES"]));
        what.push("ZRANGE lp RESP3".into());
        req3.extend_from_slice(&encode_command(&["ZRANGE", "sl", "0", "-1", "WITHSCORES"]));
        what.push("ZRANGE sl RESP3".into());
        let n3 = what.len() - n2;

        let a = ours.run(&req2, n2, &req3, n3);
        let b = refr.run(&req2, n2, &req3, n3);
        for ((x, y), w) in a.iter().zip(&b).zip(&what) {
            compared += 1;
            if x != y {
                mismatches.push(format!(
                    "{w}: valkey-rs {} reference {}",
                    escape_short(x, 400),
                    escape_short(y, 400)
                ));
            }
        }
        if !encodings_checked {
            // The two keys really have the two encodings.
            for (k, want) in [("lp", "listpack"), ("sl", "skiplist")] {
                for side in [&mut ours, &mut refr] {
                    let enc = side.r2.call(&["OBJECT", "ENCODING", k]);
                    let want = format!("${}\r\n{}\r\n", want.len(), want);
                    assert_eq!(
                        escape(&enc),
                        escape(want.as_bytes()),
                        "{}",
                        side.srv.kind.name()
                    );
                }
            }
            encodings_checked = true;
        }
        done += count;
    }
    eprintln!(
        "doubles: {n} values, {compared} replies compared, {} mismatches",
        mismatches.len()
    );
    for m in mismatches.iter().take(30) {
        eprintln!("  {m}");
    }
    assert!(mismatches.is_empty(), "{} mismatches", mismatches.len());
}
