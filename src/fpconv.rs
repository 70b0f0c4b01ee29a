//! Double to text as upstream's `d2string` (util.c) prints it: `nan`, `inf`, `-0`,
//! exact integers in [-2^62, 2^62] as integers, everything else through the Grisu2
//! conversion upstream vendors as `fpconv_dtoa` (night-shift's C port of
//! Loitsch's algorithm). Grisu2 does not always find the shortest round-trip digits
//! (1e23 prints as `99999999999999990000000`), so Rust's own formatting cannot
//! stand in: this module reproduces the same digit generation, rounding step and
//! layout, arithmetic included (truncating / wrapping exactly where the C code's
//! unsigned 64-bit arithmetic does).

/// Room for any output of [`dtoa`] / [`d2string`]: the longest is a negative plain
/// integer of 17 digits and 7 zeros (25 bytes; upstream's callers pass 128-byte
/// buffers, not the 24 of `fpconv_dtoa`'s prototype).
pub const D2STRING_MAX: usize = 32;

const FRAC_MASK: u64 = (1 << 52) - 1;
const EXP_MASK: u64 = 0x7ff << 52;
const HIDDEN_BIT: u64 = 1 << 52;
const SIGN_MASK: u64 = 1 << 63;
/// Exponent bias of the integer significand (1023 + 52).
const EXP_BIAS: i32 = 1075;

/// Grisu's window for the scaled exponent: the product's binary exponent must
/// land in [ALPHA, GAMMA].
const ALPHA: i32 = -60;
const GAMMA: i32 = -32;
/// Decimal exponent of the first cached power, and the decimal step between
/// cached powers.
const FIRST_POW10: i32 = -348;
const POW10_STEP: i32 = 8;

/// 10^(FIRST_POW10 + POW10_STEP * i) as a 64-bit significand (top bit set,
/// rounded to nearest) and binary exponent: value = f * 2^e. Generated with exact
/// rational arithmetic (87 entries, 10^-348 .. 10^340).
const CACHED_POW10: [(u64, i32); 87] = [
    (0xfa8fd5a0081c0288, -1220),
    (0xbaaee17fa23ebf76, -1193),
    (0x8b16fb203055ac76, -1166),
    (0xcf42894a5dce35ea, -1140),
    (0x9a6bb0aa55653b2d, -1113),
    (0xe61acf033d1a45df, -1087),
    (0xab70fe17c79ac6ca, -1060),
    (0xff77b1fcbebcdc4f, -1034),
    (0xbe5691ef416bd60c, -1007),
    (0x8dd01fad907ffc3c, -980),
    (0xd3515c2831559a83, -954),
    (0x9d71ac8fada6c9b5, -927),
    (0xea9c227723ee8bcb, -901),
    (0xaecc49914078536d, -874),
    (0x823c12795db6ce57, -847),
    (0xc21094364dfb5637, -821),
    (0x9096ea6f3848984f, -794),
    (0xd77485cb25823ac7, -768),
    (0xa086cfcd97bf97f4, -741),
    (0xef340a98172aace5, -715),
    (0xb23867fb2a35b28e, -688),
    (0x84c8d4dfd2c63f3b, -661),
    (0xc5dd44271ad3cdba, -635),
    (0x936b9fcebb25c996, -608),
    (0xdbac6c247d62a584, -582),
    (0xa3ab66580d5fdaf6, -555),
    (0xf3e2f893dec3f126, -529),
    (0xb5b5ada8aaff80b8, -502),
    (0x87625f056c7c4a8b, -475),
    (0xc9bcff6034c13053, -449),
    (0x964e858c91ba2655, -422),
    (0xdff9772470297ebd, -396),
    (0xa6dfbd9fb8e5b88f, -369),
    (0xf8a95fcf88747d94, -343),
    (0xb94470938fa89bcf, -316),
    (0x8a08f0f8bf0f156b, -289),
    (0xcdb02555653131b6, -263),
    (0x993fe2c6d07b7fac, -236),
    (0xe45c10c42a2b3b06, -210),
    (0xaa242499697392d3, -183),
    (0xfd87b5f28300ca0e, -157),
    (0xbce5086492111aeb, -130),
    (0x8cbccc096f5088cc, -103),
    (0xd1b71758e219652c, -77),
    (0x9c40000000000000, -50),
    (0xe8d4a51000000000, -24),
    (0xad78ebc5ac620000, 3),
    (0x813f3978f8940984, 30),
    (0xc097ce7bc90715b3, 56),
    (0x8f7e32ce7bea5c70, 83),
    (0xd5d238a4abe98068, 109),
    (0x9f4f2726179a2245, 136),
    (0xed63a231d4c4fb27, 162),
    (0xb0de65388cc8ada8, 189),
    (0x83c7088e1aab65db, 216),
    (0xc45d1df942711d9a, 242),
    (0x924d692ca61be758, 269),
    (0xda01ee641a708dea, 295),
    (0xa26da3999aef774a, 322),
    (0xf209787bb47d6b85, 348),
    (0xb454e4a179dd1877, 375),
    (0x865b86925b9bc5c2, 402),
    (0xc83553c5c8965d3d, 428),
    (0x952ab45cfa97a0b3, 455),
    (0xde469fbd99a05fe3, 481),
    (0xa59bc234db398c25, 508),
    (0xf6c69a72a3989f5c, 534),
    (0xb7dcbf5354e9bece, 561),
    (0x88fcf317f22241e2, 588),
    (0xcc20ce9bd35c78a5, 614),
    (0x98165af37b2153df, 641),
    (0xe2a0b5dc971f303a, 667),
    (0xa8d9d1535ce3b396, 694),
    (0xfb9b7cd9a4a7443c, 720),
    (0xbb764c4ca7a44410, 747),
    (0x8bab8eefb6409c1a, 774),
    (0xd01fef10a657842c, 800),
    (0x9b10a4e5e9913129, 827),
    (0xe7109bfba19c0c9d, 853),
    (0xac2820d9623bf429, 880),
    (0x80444b5e7aa7cf85, 907),
    (0xbf21e44003acdd2d, 933),
    (0x8e679c2f5e44ff8f, 960),
    (0xd433179d9c8cb841, 986),
    (0x9e19db92b4e31ba9, 1013),
    (0xeb96bf6ebadf77d9, 1039),
    (0xaf87023b9bf0ee6b, 1066),
];

/// 10^19 .. 10^0, indexed by 19 - power.
const TENS: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 19;
    while i > 0 {
        t[i - 1] = t[i] * 10;
        i -= 1;
    }
    t
};

/// A "do-it-yourself" float: `f * 2^e`.
#[derive(Clone, Copy)]
struct Diy {
    f: u64,
    e: i32,
}

/// Significand and exponent of a finite non-zero double (sign ignored).
fn decompose(d: f64) -> Diy {
    let bits = d.to_bits();
    let biased = ((bits & EXP_MASK) >> 52) as i32;
    let f = bits & FRAC_MASK;
    if biased != 0 {
        Diy {
            f: f | HIDDEN_BIT,
            e: biased - EXP_BIAS,
        }
    } else {
        Diy { f, e: 1 - EXP_BIAS }
    }
}

/// Shifts the significand so that bit 63 is set (the input is non-zero).
fn normalize(mut x: Diy) -> Diy {
    while x.f & HIDDEN_BIT == 0 {
        x.f <<= 1;
        x.e -= 1;
    }
    x.f <<= 11;
    x.e -= 11;
    x
}

/// The two half-way points to the neighbouring doubles, both normalized to the
/// upper one's exponent: (lower, upper).
fn boundaries(x: Diy) -> (Diy, Diy) {
    let mut hi = Diy {
        f: (x.f << 1) + 1,
        e: x.e - 1,
    };
    while hi.f & (HIDDEN_BIT << 1) == 0 {
        hi.f <<= 1;
        hi.e -= 1;
    }
    hi.f <<= 10;
    hi.e -= 10;
    // At a power of two the gap below is half the gap above.
    let shift = if x.f == HIDDEN_BIT { 2 } else { 1 };
    let lo_e = x.e - shift;
    let lo_f = ((x.f << shift) - 1) << ((lo_e - hi.e) as u32 & 63);
    (Diy { f: lo_f, e: hi.e }, hi)
}

/// 64x64 -> upper 64 bits product, rounded on bit 63 of the low half the way
/// the reference splits it in 32-bit limbs.
fn mul(a: Diy, b: Diy) -> Diy {
    const LO: u64 = 0xffff_ffff;
    let (ah, al) = (a.f >> 32, a.f & LO);
    let (bh, bl) = (b.f >> 32, b.f & LO);
    let hl = ah * bl;
    let lh = al * bh;
    let ll = al * bl;
    let hh = ah * bh;
    let mid = (hl & LO) + (lh & LO) + (ll >> 32) + (1 << 31);
    Diy {
        f: hh
            .wrapping_add(hl >> 32)
            .wrapping_add(lh >> 32)
            .wrapping_add(mid >> 32),
        e: a.e + b.e + 64,
    }
}

/// The cached power c (and its decimal exponent k) such that an upper boundary
/// with binary exponent `e` times c has its exponent in [ALPHA, GAMMA].
fn cached_pow10(e: i32) -> (Diy, i32) {
    const LOG10_2: f64 = 0.30102999566398114;
    // The estimate truncates toward zero, as a C double-to-int conversion.
    let approx = (f64::from(-(e + 87)) * LOG10_2) as i32;
    let mut idx = (approx - FIRST_POW10) / POW10_STEP;
    loop {
        let i = idx.clamp(0, CACHED_POW10.len() as i32 - 1);
        let (f, pe) = CACHED_POW10[i as usize];
        let cur = e + pe + 64;
        if cur < ALPHA && idx < CACHED_POW10.len() as i32 - 1 {
            idx += 1;
        } else if cur > GAMMA && idx > 0 {
            idx -= 1;
        } else {
            return (Diy { f, e: pe }, FIRST_POW10 + i * POW10_STEP);
        }
    }
}

/// Weeding: while the last digit can be lowered and the result stays inside the
/// unsafe interval and gets closer to the scaled value, lower it.
fn weed(digits: &mut [u8], delta: u64, mut rest: u64, ten_kappa: u64, wdist: u64) {
    let Some(last) = digits.last_mut() else {
        return;
    };
    while rest < wdist
        && delta - rest >= ten_kappa
        && (rest.wrapping_add(ten_kappa) < wdist
            || wdist - rest > rest.wrapping_add(ten_kappa).wrapping_sub(wdist))
    {
        *last = last.wrapping_sub(1);
        rest = rest.wrapping_add(ten_kappa);
    }
}

/// Grisu2 digit generation: the digits of the scaled upper boundary, cut as soon
/// as the remainder fits in the boundaries' distance. Returns the digit count;
/// `k` receives the decimal exponent of the last digit.
fn gen_digits(w: Diy, hi: Diy, lo: Diy, out: &mut [u8; 24], k: &mut i32) -> usize {
    let wdist = hi.f.wrapping_sub(w.f);
    let mut delta = hi.f.wrapping_sub(lo.f);
    let shift = (-hi.e) as u32 & 63;
    let one = 1u64 << shift;
    let mut p1 = hi.f >> shift;
    let mut p2 = hi.f & (one - 1);
    let mut n = 0usize;
    let mut kappa = 10;
    // Integral part: divisors 10^9 .. 10^0.
    for &div in &TENS[10..] {
        let digit = p1 / div;
        if (digit != 0 || n > 0) && n < out.len() {
            out[n] = b'0' + digit as u8;
            n += 1;
        }
        p1 -= digit * div;
        kappa -= 1;
        let rest = (p1 << shift).wrapping_add(p2);
        if rest <= delta {
            *k += kappa;
            weed(&mut out[..n], delta, rest, div << shift, wdist);
            return n;
        }
    }
    // Fractional part: one digit per multiplication by ten.
    let mut unit = 18usize;
    loop {
        p2 = p2.wrapping_mul(10);
        delta = delta.wrapping_mul(10);
        kappa -= 1;
        let digit = p2 >> shift;
        if (digit != 0 || n > 0) && n < out.len() {
            out[n] = b'0' + digit as u8;
            n += 1;
        }
        p2 &= one - 1;
        if p2 < delta {
            *k += kappa;
            weed(
                &mut out[..n],
                delta,
                p2,
                one,
                wdist.wrapping_mul(TENS[unit]),
            );
            return n;
        }
        unit = unit.saturating_sub(1);
    }
}

/// Digits and decimal exponent of a finite non-zero double (sign ignored).
fn grisu2(d: f64, digits: &mut [u8; 24]) -> (usize, i32) {
    let v = decompose(d);
    let (mut lo, mut hi) = boundaries(v);
    let w = normalize(v);
    let (c, ck) = cached_pow10(hi.e);
    let w = mul(w, c);
    hi = mul(hi, c);
    lo = mul(lo, c);
    lo.f = lo.f.wrapping_add(1);
    hi.f = hi.f.wrapping_sub(1);
    let mut k = -ck;
    let n = gen_digits(w, hi, lo, digits, &mut k);
    (n, k)
}

/// A tiny cursor over the output buffer (bounds checked, never panics: the
/// layouts below need at most 25 bytes).
struct Out<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Out<'_> {
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }
    fn extend(&mut self, s: &[u8]) {
        for &b in s {
            self.push(b);
        }
    }
    fn zeros(&mut self, n: usize) {
        for _ in 0..n {
            self.push(b'0');
        }
    }
}

/// Lays the digits out: plain integer, plain decimal, or `d.ddde±x`.
fn layout(digits: &[u8], k: i32, neg: bool, o: &mut Out) {
    let nd = digits.len() as i32;
    let mut exp = (k + nd - 1).abs();
    if k >= 0 && exp < nd + 7 {
        o.extend(digits);
        o.zeros(k as usize);
        return;
    }
    if k < 0 && (k > -7 || exp < 4) {
        let int_len = nd + k;
        if int_len <= 0 {
            o.extend(b"0.");
            o.zeros((-int_len) as usize);
            o.extend(digits);
        } else {
            let (a, b) = digits.split_at(int_len as usize);
            o.extend(a);
            o.push(b'.');
            o.extend(b);
        }
        return;
    }
    let nd = nd.min(18 - neg as i32).max(1);
    let digits = &digits[..(nd as usize).min(digits.len())];
    if let Some((&first, rest)) = digits.split_first() {
        o.push(first);
        if !rest.is_empty() {
            o.push(b'.');
            o.extend(rest);
        }
    }
    o.push(b'e');
    o.push(if k + nd - 1 < 0 { b'-' } else { b'+' });
    let hundreds = exp / 100;
    if exp > 99 {
        o.push(b'0' + hundreds as u8);
        exp -= hundreds * 100;
    }
    if exp > 9 {
        let tens = exp / 10;
        o.push(b'0' + tens as u8);
        exp -= tens * 10;
    } else if hundreds > 0 {
        o.push(b'0');
    }
    o.push(b'0' + (exp % 10) as u8);
}

/// `fpconv_dtoa`: writes `d` into `out` and returns the length. Zero is `0`
/// (`-0` with the sign bit), non-finite values `inf`/`nan` with the sign bit's `-`.
pub fn dtoa(d: f64, out: &mut [u8; D2STRING_MAX]) -> usize {
    let bits = d.to_bits();
    let neg = bits & SIGN_MASK != 0;
    let mut o = Out { buf: out, len: 0 };
    if neg {
        o.push(b'-');
    }
    if d == 0.0 {
        o.push(b'0');
    } else if bits & EXP_MASK == EXP_MASK {
        o.extend(if bits & FRAC_MASK != 0 {
            b"nan"
        } else {
            b"inf"
        });
    } else {
        let mut digits = [0u8; 24];
        let (n, k) = grisu2(d, &mut digits);
        layout(&digits[..n], k, neg, &mut o);
    }
    o.len
}

/// Upstream's `d2string`: `nan`, `inf`/`-inf`, `0`/`-0`, integers when the value
/// is integral and within [-2^62, 2^62], else [`dtoa`]. Returns the length.
pub fn d2string(d: f64, out: &mut [u8; D2STRING_MAX]) -> usize {
    const LIM: f64 = (i64::MAX / 2) as f64;
    let text: &[u8] = if d.is_nan() {
        b"nan"
    } else if d.is_infinite() {
        if d > 0.0 {
            b"inf"
        } else {
            b"-inf"
        }
    } else if d == 0.0 {
        if d.is_sign_negative() {
            b"-0"
        } else {
            b"0"
        }
    } else if (-LIM..=LIM).contains(&d) && (d as i64) as f64 == d {
        return write_i64(d as i64, out);
    } else {
        return dtoa(d, out);
    };
    out[..text.len()].copy_from_slice(text);
    text.len()
}

fn write_i64(v: i64, out: &mut [u8; D2STRING_MAX]) -> usize {
    let mut tmp = crate::reply::itoa_buf();
    let text = crate::reply::fmt_i64(&mut tmp, v);
    out[..text.len()].copy_from_slice(text);
    text.len()
}

/// [`d2string`] into a new `String`.
pub fn d2string_owned(d: f64) -> String {
    let mut b = [0u8; D2STRING_MAX];
    let n = d2string(d, &mut b);
    // Only ASCII digits, signs, '.', 'e', "nan", "inf" are ever written.
    b[..n].iter().map(|&c| c as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(d: f64) -> String {
        d2string_owned(d)
    }

    #[test]
    fn table_spot_checks() {
        // Entry 44 is 10^4 = 0x9c40 * 2^48 * 2^-50, exact.
        assert_eq!(CACHED_POW10[44], (0x9c40 << 48, -50));
        assert_eq!(CACHED_POW10[0].0, 18054884314459144840);
        assert_eq!(CACHED_POW10[86], (12648080533535911531, 1066));
        assert_eq!(TENS[0], 10_000_000_000_000_000_000);
        assert_eq!(TENS[19], 1);
    }

    #[test]
    fn reference_examples() {
        for (input, want) in [
            ("1e23", "99999999999999990000000"),
            ("5e22", "49999999999999996000000"),
            ("4.3e216", "4.2999999999999997e+216"),
            ("-1321030431031664.2", "-1321030431031664.2"),
            ("-30349554.566517722", "-3.0349554566517722e+7"),
            ("1.5", "1.5"),
            ("0.1", "0.1"),
            ("-0.0", "-0"),
            ("0.0", "0"),
            ("nan", "nan"),
            ("inf", "inf"),
            ("-inf", "-inf"),
            ("4611686018427387904.0", "4611686018427387904"),
            ("-4611686018427387904.0", "-4611686018427387904"),
            ("9223372036854775808.0", "9223372036854776000"),
            ("1e100", "1e+100"),
            ("5e-324", "5e-324"),
            ("-1.1783348420979686e23", "-117833484209796860000000"),
            ("0.000001", "0.000001"),
            ("1.234e-6", "1.234e-6"),
            ("1e-7", "1e-7"),
            ("1e21", "1e+21"),
            ("123.456", "123.456"),
            ("0.30000000000000004", "0.30000000000000004"),
        ] {
            let d: f64 = input.parse().unwrap();
            assert_eq!(s(d), want, "{input}");
        }
    }

    #[test]
    fn round_trips_and_bounded() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = f64::from_bits(x);
            if !d.is_finite() {
                continue;
            }
            let t = s(d);
            assert!(t.len() <= 25, "{t}");
            let back: f64 = t.parse().unwrap();
            assert_eq!(back.to_bits(), d.to_bits(), "{t}");
        }
    }
}
