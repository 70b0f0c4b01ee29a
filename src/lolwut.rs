//! LOLWUT, as upstream's lolwut.c: `LOLWUT [VERSION v] [args...]`.
//!
//! Version 9 (the default, this server's major version) draws a Julia set in ASCII, as
//! upstream's lolwut9.c: `LOLWUT [columns rows] [real imaginary]`, 80x40 and random
//! constants by default. Version 5 draws Georg Nees' Schotter in braille characters
//! (`[columns] [squares-per-row] [squares-per-col]`, 66 8 12 by default; the first two
//! rows of squares are not randomised and come out as upstream's). Versions without art
//! answer the plain version line, as upstream does for them. Not done: the art of
//! version 6 (Plaguemon), which answers the plain line here.

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

/// A 1-bit canvas, as upstream's lwCanvas.
struct Canvas {
    width: i32,
    height: i32,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: i32, height: i32) -> Canvas {
        let (w, h) = (width.max(0), height.max(0));
        Canvas {
            width: w,
            height: h,
            pixels: vec![0; (w as usize) * (h as usize)],
        }
    }

    fn set(&mut self, x: i32, y: i32) {
        if x >= 0 && x < self.width && y >= 0 && y < self.height {
            self.pixels[(x + y * self.width) as usize] = 1;
        }
    }

    fn get(&self, x: i32, y: i32) -> bool {
        x >= 0
            && x < self.width
            && y >= 0
            && y < self.height
            && self.pixels[(x + y * self.width) as usize] != 0
    }

    /// Bresenham.
    fn line(&mut self, mut x1: i32, mut y1: i32, x2: i32, y2: i32) {
        let (dx, dy) = ((x2 - x1).abs(), (y2 - y1).abs());
        let (sx, sy) = (if x1 < x2 { 1 } else { -1 }, if y1 < y2 { 1 } else { -1 });
        let mut err = dx - dy;
        loop {
            self.set(x1, y1);
            if x1 == x2 && y1 == y2 {
                break;
            }
            let e2 = err * 2;
            if e2 > -dy {
                err -= dy;
                x1 += sx;
            }
            if e2 < dx {
                err += dx;
                y1 += sy;
            }
        }
    }

    /// A square centred on x,y, rotated by `angle`.
    fn square(&mut self, x: i32, y: i32, size: f32, angle: f32) {
        // Upstream's truncated constant, not SQRT_2: the rounding must come out the same.
        #[allow(clippy::approx_constant)]
        let size = ((size as f64 / 1.4142135623) as f32 as f64).round() as f32;
        let mut k = (std::f64::consts::PI / 4.0 + angle as f64) as f32;
        let (mut px, mut py) = ([0i32; 4], [0i32; 4]);
        for j in 0..4 {
            px[j] = ((k as f64).sin() * size as f64 + x as f64).round() as i32;
            py[j] = ((k as f64).cos() * size as f64 + y as f64).round() as i32;
            k = (k as f64 + std::f64::consts::PI / 2.0) as f32;
        }
        for j in 0..4 {
            self.line(px[j], py[j], px[(j + 1) % 4], py[(j + 1) % 4]);
        }
    }

    /// Braille characters, 2x4 pixels each.
    fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut y = 0;
        while y < self.height {
            let mut x = 0;
            while x < self.width {
                let bits = [
                    (x, y),
                    (x, y + 1),
                    (x, y + 2),
                    (x + 1, y),
                    (x + 1, y + 1),
                    (x + 1, y + 2),
                    (x, y + 3),
                    (x + 1, y + 3),
                ];
                let mut byte = 0u32;
                for (i, &(px, py)) in bits.iter().enumerate() {
                    if self.get(px, py) {
                        byte |= 1 << i;
                    }
                }
                let ch = char::from_u32(0x2800 + byte).unwrap_or(' ');
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                x += 2;
            }
            if y != self.height - 1 {
                out.push(b'\n');
            }
            y += 4;
        }
        out
    }
}

fn rand_unit() -> f32 {
    (crate::util::random_u64() >> 33) as f32 / (1u64 << 31) as f32
}

/// LOLWUT 5: Georg Nees' Schotter, `[columns] [squares-per-row] [squares-per-col]`.
fn lolwut5(c: &mut Client, args: &[Vec<u8>]) {
    let mut v = [66i64, 8, 12];
    for (i, a) in args.iter().take(3).enumerate() {
        match parse_i64_strict(a) {
            Some(n) => v[i] = n,
            None => return c.reply.add_error(crate::reply::ERR_NOT_INTEGER),
        }
    }
    let cols = v[0].clamp(1, 1000) as i32;
    let per_row = v[1].clamp(1, 200) as i32;
    let per_col = v[2].clamp(1, 200) as i32;
    let width = cols * 2;
    let padding = if width > 4 { 2 } else { 0 };
    let side = (width - padding * 2) as f32 / per_row as f32;
    let height = (side * per_col as f32 + (padding * 2) as f32) as i32;
    let mut canvas = Canvas::new(width, height);
    for y in 0..per_col {
        for x in 0..per_row {
            let mut sx = (x as f32 * side + side / 2.0 + padding as f32) as i32;
            let mut sy = (y as f32 * side + side / 2.0 + padding as f32) as i32;
            let mut angle = 0f32;
            if y > 1 {
                let mut r = [0f32; 3];
                for v in r.iter_mut() {
                    *v = rand_unit() / per_col as f32 * y as f32;
                }
                for v in r.iter_mut() {
                    if crate::util::random_u64() % 2 == 1 {
                        *v = -*v;
                    }
                }
                angle = r[0];
                sx = (sx as f32 + r[1] * side / 3.0) as i32;
                sy = (sy as f32 + r[2] * side / 3.0) as i32;
            }
            canvas.square(sx, sy, side, angle);
        }
    }
    let mut out = canvas.render();
    out.extend_from_slice(
        format!(
            "\nGeorg Nees - schotter, plotter on paper, 1968. Valkey ver. {}\n",
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
    } else if version == 5 {
        lolwut5(c, &args);
    } else {
        let line = format!("Valkey ver.{}\n", crate::commands::server::VALKEY_VERSION);
        c.reply.add_verbatim(line.as_bytes(), "txt");
    }
}
