//! LOLWUT, as upstream's lolwut.c: `LOLWUT [VERSION v] [args...]`.
//!
//! Version 9 (the default, this server's major version) draws a Julia set in ASCII, as
//! upstream's lolwut9.c: `LOLWUT [columns rows] [real imaginary]`, 80x40 and random
//! constants by default. Version 5 draws Georg Nees' Schotter in braille characters
//! (`[columns] [squares-per-row] [squares-per-col]`, 66 8 12 by default; the first two
//! rows of squares are not randomised and come out as upstream's). Version 6 draws a
//! Plaguemon skyline in terminal colours (`[columns] [rows]`, 80x20 by default, each
//! clamped to 1..=1000), drawing its random numbers from a generator that works as
//! glibc's `rand()`, so a given seed gives upstream's picture. The version is taken
//! modulo 2^32 as upstream does (`(unsigned int)ver`). Other versions answer the plain
//! version line, as upstream does for them.

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

/// The additive feedback generator behind glibc's `rand()`/`random()` (TYPE_3: degree
/// 31, separation 3), so a seed gives the same sequence as upstream's libc.
struct LibcRand {
    ring: [u32; 34],
    pos: usize,
}

impl LibcRand {
    fn new(seed: u32) -> LibcRand {
        let mut r = [0u32; 34];
        let mut word = if seed == 0 { 1 } else { seed as i32 as i64 };
        r[0] = word as u32;
        for slot in r.iter_mut().take(31).skip(1) {
            // 16807 * word mod (2^31 - 1), by Schrage's method as the libc does it.
            let (hi, lo) = (word / 127_773, word % 127_773);
            word = 16_807 * lo - 2_836 * hi;
            if word < 0 {
                word += 2_147_483_647;
            }
            *slot = word as u32;
        }
        for i in 31..34 {
            r[i] = r[i - 31];
        }
        let mut g = LibcRand { ring: r, pos: 34 };
        // The libc throws away the first 310 outputs.
        for _ in 0..310 {
            g.step();
        }
        g
    }

    fn step(&mut self) -> u32 {
        let i = self.pos;
        let v = self.ring[(i - 31) % 34].wrapping_add(self.ring[(i - 3) % 34]);
        self.ring[i % 34] = v;
        self.pos = 34 + (i + 1) % 34;
        v
    }

    /// One `rand()`: 0..=2^31-1.
    fn next(&mut self) -> i32 {
        (self.step() >> 1) as i32
    }
}

thread_local! {
    static LIBC_RAND: std::cell::RefCell<Option<LibcRand>> = const { std::cell::RefCell::new(None) };
}

/// LOLWUT 6's canvas: one colour (0 black .. 3 white) per character cell.
struct Skyline {
    width: i32,
    height: i32,
    pixels: Vec<u8>,
}

impl Skyline {
    fn draw(&mut self, x: i32, y: i32, color: i32) {
        if x >= 0 && x < self.width && y >= 0 && y < self.height {
            self.pixels[(x + y * self.width) as usize] = color as u8;
        }
    }

    fn get(&self, x: i32, y: i32) -> i32 {
        if x >= 0 && x < self.width && y >= 0 && y < self.height {
            self.pixels[(x + y * self.width) as usize] as i32
        } else {
            0
        }
    }

    /// One building standing on the bottom row; the roof is two cells narrower on each
    /// side; windows (two cells wide, one tall, every other row) get a random grey.
    fn building(
        &mut self,
        rng: &mut LibcRand,
        xoff: i32,
        width: i32,
        height: i32,
        windows: bool,
        color: i32,
    ) {
        let bottom = self.height - 1;
        let top = bottom - height + 1;
        let mut y = bottom;
        while y >= top {
            for x in xoff..xoff + width {
                let edge = x <= xoff + 1 || x >= xoff + width - 2;
                if y == top && edge {
                    continue;
                }
                let mut cell = color;
                if windows && !edge && y > top + 1 && y < bottom - 1 {
                    let (relx, rely) = (x - xoff - 1, y - top - 1);
                    if (relx / 2) % 2 != 0 && rely % 2 != 0 {
                        loop {
                            cell = 1 + rng.next() % 2;
                            if cell != color {
                                break;
                            }
                        }
                        if relx % 2 != 0 {
                            cell = self.get(x - 1, y);
                        }
                    }
                }
                self.draw(x, y, cell);
            }
            y -= 1;
        }
    }

    fn generate(&mut self, rng: &mut LibcRand) {
        let h = self.height;
        // Background first, the lighter grey behind the darker one, no windows.
        for color in [2, 1] {
            let mut offset = -10;
            while offset < self.width {
                offset += rng.next() % 8;
                let width = 10 + rng.next() % 9;
                let height = if color == 2 {
                    h / 2 + rng.next() % h / 2
                } else {
                    h / 2 + rng.next() % h / 3
                };
                self.building(rng, offset, width, height, false, color);
                offset += if color == 2 { width / 2 } else { width + 1 };
            }
        }
        // Then the black buildings in front, with windows.
        let mut offset = -10;
        while offset < self.width {
            offset += rng.next() % 8;
            let mut width = 5 + rng.next() % 14;
            if width % 4 != 0 {
                width += width % 3;
            }
            let height = h / 3 + rng.next() % h / 2;
            self.building(rng, offset, width, height, true, 0);
            offset += width + 5;
        }
    }

    /// Each cell a space with foreground and background set to one of the four greys.
    fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pixels.len() * 18);
        for y in 0..self.height {
            for x in 0..self.width {
                let sgr: &[u8] = match self.get(x, y) {
                    1 => b"0;90;100m",
                    2 => b"0;37;47m",
                    3 => b"0;97;107m",
                    _ => b"0;30;40m",
                };
                out.extend_from_slice(b"\x1b[");
                out.extend_from_slice(sgr);
                out.extend_from_slice(b" \x1b[0m");
            }
            if y != self.height - 1 {
                out.push(b'\n');
            }
        }
        out
    }
}

/// LOLWUT 6: a Plaguemon skyline, `[columns] [rows]`; further arguments are ignored.
fn lolwut6(c: &mut Client, args: &[Vec<u8>]) {
    let mut v = [80i64, 20];
    for (i, a) in args.iter().take(2).enumerate() {
        match parse_i64_strict(a) {
            Some(n) => v[i] = n,
            None => return c.reply.add_error(crate::reply::ERR_NOT_INTEGER),
        }
    }
    let (cols, rows) = (v[0].clamp(1, 1000) as i32, v[1].clamp(1, 1000) as i32);
    let mut sky = Skyline {
        width: cols,
        height: rows,
        pixels: vec![3; (cols * rows) as usize],
    };
    LIBC_RAND.with(|cell| {
        let mut slot = cell.borrow_mut();
        let rng = slot.get_or_insert_with(|| LibcRand::new(crate::util::random_u64() as u32));
        sky.generate(rng);
    });
    let mut out = sky.render();
    out.extend_from_slice(
        format!(
            "\nDedicated to the 8 bit game developers of past and present.\n\
             Original 8 bit image from Plaguemon by hikikomori. Valkey ver. {}\n",
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
    // Upstream prints the version with "%u": only the low 32 bits count.
    let version = version as u32;
    if version == 9 {
        lolwut9(c, &args);
    } else if version == 5 {
        lolwut5(c, &args);
    } else if version == 6 {
        lolwut6(c, &args);
    } else {
        let line = format!("Valkey ver.{}\n", crate::commands::server::VALKEY_VERSION);
        c.reply.add_verbatim(line.as_bytes(), "txt");
    }
}

#[cfg(test)]
mod tests {
    use super::LibcRand;

    /// The generator against this machine's glibc `rand()` for a few seeds, including
    /// 0 (taken as 1) and seeds that are negative as an `int`.
    #[test]
    fn libc_rand_matches_glibc() {
        for seed in [0u32, 1, 42, 123_456_789, 0x8000_0001, u32::MAX] {
            let mut ours = LibcRand::new(seed);
            // SAFETY: srand/rand only touch libc's own generator state; no other test
            // in this binary uses it.
            unsafe { libc::srand(seed) };
            for _ in 0..2000 {
                assert_eq!(ours.next(), unsafe { libc::rand() }, "seed {seed}");
            }
        }
    }
}
