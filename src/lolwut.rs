//! LOLWUT, as upstream's lolwut.c: `LOLWUT [VERSION v] [args...]`.
//!
//! Version 9 (the default, this server's major version) draws a Julia set in ASCII, as
//! upstream's lolwut9.c: `LOLWUT [columns rows] [real imaginary]`, 80x40 and random
//! constants by default. Versions without art answer the plain version line, as upstream
//! does for them. Not done: the art of versions 5 (Schotter) and 6 (Plaguemon), which
//! also answer the plain line here.

use crate::client::Client;
use crate::server::Server;
use crate::util::{eq_ic, parse_i64_strict};

const ASCII: &[u8] = b" .:-=+*%#&@";

fn julia_iterations(mut x: f32, mut y: f32, r: f32, i: f32, max_iter: usize) -> usize {
    for n in 0..max_iter {
        let xn = x * x - y * y + r;
        let yn = 2.0 * x * y + i;
        x = xn;
        y = yn;
        if x * x + y * y > 4.0 {
            return n;
        }
    }
    max_iter - 1
}

fn random_unit() -> f32 {
    (crate::util::random_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
}

/// LOLWUT 9; `args` are the arguments after the command name (and VERSION v).
fn lolwut9(c: &mut Client, args: &[Vec<u8>]) {
    let argc = args.len() + 1;
    if argc == 2 || argc == 4 || argc > 5 {
        c.reply
            .add_error("ERR Syntax error. Use: LOLWUT [columns rows] [real imaginary]");
        return;
    }
    let mut cols: i64 = 80;
    let mut rows: i64 = 40;
    if argc > 1 {
        match parse_i64_strict(&args[0]) {
            Some(v) => cols = v,
            None => return c.reply.add_error(crate::reply::ERR_NOT_INTEGER),
        }
    }
    if argc > 2 {
        match parse_i64_strict(&args[1]) {
            Some(v) => rows = v,
            None => return c.reply.add_error(crate::reply::ERR_NOT_INTEGER),
        }
    }
    let cols = cols.clamp(1, 160) as usize;
    let rows = rows.clamp(1, 80) as usize;
    let (jr, ji) = if argc == 5 {
        let r = crate::util::parse_f64(&args[2]);
        let i = crate::util::parse_f64(&args[3]);
        match (r, i) {
            (Some(r), Some(i)) => (r as f32, i as f32),
            _ => return c.reply.add_error("ERR value is not a valid float"),
        }
    } else {
        (random_unit(), random_unit())
    };
    let mut out = Vec::with_capacity((cols + 1) * rows + 128);
    for i in 0..rows {
        for j in 0..cols {
            let x = -2.0f32 + 4.0f32 * (j as f32 + 0.5) / cols as f32;
            let y = 2.0f32 - 4.0f32 * (i as f32 + 0.5) / rows as f32;
            let n = julia_iterations(x, y, jr, ji, ASCII.len());
            out.push(ASCII[n % (ASCII.len() + 1)]);
        }
        out.push(b'\n');
    }
    out.extend_from_slice(
        format!(
            "Ascii representation of Julia set with constant {:.2} + {:.2}i\n",
            jr, ji
        )
        .as_bytes(),
    );
    out.extend_from_slice(
        format!(
            "Don't forget to have fun! Valkey ver. {}\n",
            crate::commands::server::VALKEY_VERSION
        )
        .as_bytes(),
    );
    c.reply.add_verbatim(&out, "txt");
}

/// LOLWUT [VERSION v] [...].
pub fn lolwut_command(_srv: &mut Server, c: &mut Client) {
    let mut version = crate::commands::server::VALKEY_VERSION
        .split('.')
        .next()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(9);
    let mut first = 1;
    if c.argv.len() >= 3 && eq_ic(&c.argv[1], "version") {
        match parse_i64_strict(&c.argv[2]) {
            Some(v) => version = v,
            None => return c.reply.add_error(crate::reply::ERR_NOT_INTEGER),
        }
        first = 3;
    }
    let args = c.argv[first..].to_vec();
    if version == 9 {
        lolwut9(c, &args);
    } else {
        let line = format!("Valkey ver.{}\n", crate::commands::server::VALKEY_VERSION);
        c.reply.add_verbatim(line.as_bytes(), "txt");
    }
}
