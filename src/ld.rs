//! x87 80-bit extended precision ("long double") emulation, for INCRBYFLOAT and
//! HINCRBYFLOAT (and `strtold` parsing of blocking timeouts): upstream
//! parses both operands with `strtold`, adds them in `long double` and prints the sum with
//! `%.17Lf` minus trailing zeros. Doing the same in f64 gives different digits (10.5 + 0.1
//! prints 10.59999999999999964 in f64 and 10.6 in extended precision), so the three steps
//! are emulated exactly here: correctly rounded decimal parsing into a 64-bit mantissa,
//! round-to-nearest-even addition, and exact decimal printing.

/// Largest binary exponent of a finite value: value < 2^MAX_EXP.
const MAX_EXP: i64 = 16384;
/// Smallest binary exponent of a (sub)normal value: value >= 2^MIN_EXP.
const MIN_EXP: i64 = -16445;

/// A finite extended-precision number: `(-1)^neg * m * 2^e`, `m` normalized (top bit set)
/// unless zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ld {
    pub neg: bool,
    pub m: u64,
    pub e: i64,
}

/// A parsed operand: finite, or infinite (accepted by strtold; the sum is then refused).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    Finite(Ld),
    Inf,
}

/// Little-endian base 2^32 big natural number, just what parsing and printing need.
#[derive(Clone, Debug)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }
    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }
    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }
    fn mul_add_small(&mut self, mul: u32, add: u32) {
        let mut carry = add as u64;
        for l in self.0.iter_mut() {
            let v = *l as u64 * mul as u64 + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }
    /// Divides in place, returns the remainder.
    fn div_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for l in self.0.iter_mut().rev() {
            let v = (rem << 32) | *l as u64;
            *l = (v / d as u64) as u32;
            rem = v % d as u64;
        }
        self.trim();
        rem as u32
    }
    fn bit_len(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(&top) => (self.0.len() as u64 - 1) * 32 + (32 - top.leading_zeros() as u64),
        }
    }
    fn bit(&self, i: u64) -> bool {
        let limb = (i / 32) as usize;
        self.0.get(limb).is_some_and(|l| (l >> (i % 32)) & 1 == 1)
    }
    /// Whether any bit below `i` is set.
    fn any_below(&self, i: u64) -> bool {
        let full = (i / 32) as usize;
        if self.0.iter().take(full).any(|&l| l != 0) {
            return true;
        }
        let rem = i % 32;
        rem != 0
            && self
                .0
                .get(full)
                .is_some_and(|l| l & ((1u32 << rem) - 1) != 0)
    }
    /// The 64 bits starting at bit `i`.
    fn bits64_from(&self, i: u64) -> u64 {
        let mut v = 0u64;
        for k in 0..64 {
            if self.bit(i + k) {
                v |= 1 << k;
            }
        }
        v
    }
    fn shl(&mut self, n: u64) {
        let limbs = (n / 32) as usize;
        let bits = (n % 32) as u32;
        if bits != 0 {
            let mut carry = 0u32;
            for l in self.0.iter_mut() {
                let v = *l;
                *l = (v << bits) | carry;
                carry = v >> (32 - bits);
            }
            if carry != 0 {
                self.0.push(carry);
            }
        }
        if limbs != 0 && !self.is_zero() {
            let mut v = vec![0u32; limbs];
            v.extend_from_slice(&self.0);
            self.0 = v;
        }
    }
    /// Keeps only bits below `n`.
    fn truncate_bits(&mut self, n: u64) {
        let full = (n / 32) as usize;
        let rem = (n % 32) as u32;
        if self.0.len() > full {
            if rem == 0 {
                self.0.truncate(full);
            } else {
                self.0.truncate(full + 1);
                self.0[full] &= (1u32 << rem) - 1;
            }
        }
        self.trim();
    }
    /// Compares with 2^n.
    fn cmp_pow2(&self, n: u64) -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        let bl = self.bit_len();
        if bl < n + 1 {
            Less
        } else if bl > n + 1 || self.any_below(n) {
            Greater
        } else {
            Equal
        }
    }
}

/// Rounds `x` (with `sticky` telling whether nonzero bits were already dropped below it)
/// to a normalized 64-bit mantissa; returns (m, exponent adjustment).
fn round_big(x: &Big, sticky: bool) -> (u64, i64) {
    let bl = x.bit_len();
    if bl <= 64 {
        // Exact (the caller guarantees sticky is false here, or accepts truncation).
        let v = x.bits64_from(0);
        let sh = 64 - bl;
        return (v << sh, -(sh as i64));
    }
    let shift = bl - 64;
    let mut m = x.bits64_from(shift);
    let guard = x.bit(shift - 1);
    let rest = sticky || x.any_below(shift - 1);
    let mut adj = shift as i64;
    if guard && (rest || m & 1 == 1) {
        let (v, of) = m.overflowing_add(1);
        if of {
            m = 1 << 63;
            adj += 1;
        } else {
            m = v;
        }
    }
    (m, adj)
}

/// `strtold` as upstream's `string2ld` uses it: the whole buffer must
/// be a number, no leading space, no NaN, no overflow, no underflow to zero.
pub fn parse(s: &[u8]) -> Option<Num> {
    if s.is_empty() || s.len() >= 5 * 1024 {
        return None;
    }
    if s[0].is_ascii_whitespace() || s[0] == 0x0b || s[0] == 0x0c {
        return None;
    }
    // An embedded NUL stops strtold before the end: refused, as upstream.
    // Leading whitespace was refused above; strtold would also accept it.
    let (neg, body) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    if lower == b"inf" || lower == b"infinity" {
        return Some(Num::Inf);
    }
    if lower.len() > 2 && lower.starts_with(b"0x") {
        return parse_hex(neg, &lower[2..]);
    }
    // Decimal: digits [. digits] [e [+-] digits]
    let mut i = 0;
    let mut n = Big(Vec::new());
    let mut digits = 0usize;
    let mut dexp: i64 = 0;
    let mut nonzero_seen = false;
    let mut sig_digits = 0usize;
    let mut dropped_nonzero = false;
    let b = body;
    let mut push = |d: u8, frac: bool, n: &mut Big, dexp: &mut i64| {
        if d != 0 {
            nonzero_seen = true;
        }
        if nonzero_seen {
            // Beyond ~5000 significant digits the tail only matters as a sticky bit.
            if sig_digits < 6000 {
                n.mul_add_small(10, d as u32);
                sig_digits += 1;
                if frac {
                    *dexp -= 1;
                }
            } else {
                if d != 0 {
                    dropped_nonzero = true;
                }
                if !frac {
                    *dexp += 1;
                }
            }
        } else if frac {
            *dexp -= 1;
        }
    };
    while i < b.len() && b[i].is_ascii_digit() {
        push(b[i] - b'0', false, &mut n, &mut dexp);
        digits += 1;
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            push(b[i] - b'0', true, &mut n, &mut dexp);
            digits += 1;
            i += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        if let Some((ev, j)) = parse_exponent(b, i + 1) {
            dexp += ev;
            i = j;
        }
    }
    if i != b.len() {
        return None;
    }
    if n.is_zero() {
        return Some(Num::Finite(Ld { neg, m: 0, e: 0 }));
    }
    let ndig = sig_digits as i64;
    // value = n * 10^dexp, n has ndig digits: 10^(ndig-1+dexp) <= value < 10^(ndig+dexp).
    if ndig + dexp > 4933 {
        return None; // overflow (ERANGE, HUGE_VALL)
    }
    if ndig + dexp < -4952 {
        return None; // underflow to zero (ERANGE)
    }
    let (m, e) = if dexp >= 0 {
        for _ in 0..dexp {
            n.mul_add_small(10, 0);
        }
        let (m, adj) = round_big(&n, dropped_nonzero);
        (m, adj)
    } else {
        let d = (-dexp) as u64;
        let k = (66 + 4 * d).saturating_sub(n.bit_len());
        n.shl(k);
        let mut sticky = dropped_nonzero;
        // Divide by 10^d, nine digits at a time.
        let mut left = d;
        while left > 0 {
            let step = left.min(9);
            let r = n.div_small(10u32.pow(step as u32));
            if r != 0 {
                sticky = true;
            }
            left -= step;
        }
        let (m, adj) = round_big(&n, sticky);
        (m, adj - k as i64)
    };
    finite(neg, m, e)
}

fn finite(neg: bool, m: u64, e: i64) -> Option<Num> {
    if e + 64 > MAX_EXP {
        return None;
    }
    if e + 64 <= MIN_EXP {
        return None;
    }
    Some(Num::Finite(Ld { neg, m, e }))
}

/// Hexadecimal floats (`0x1.8p3`), as strtold accepts them.
fn parse_hex(neg: bool, b: &[u8]) -> Option<Num> {
    let mut n = Big(Vec::new());
    let mut i = 0;
    let mut digits = 0;
    let mut bexp: i64 = 0;
    let mut sticky = false;
    let hexval = |c: u8| (c as char).to_digit(16);
    let mut push = |v: u32, frac: bool, n: &mut Big, bexp: &mut i64| {
        if n.bit_len() < 200 {
            n.mul_add_small(16, v);
            if frac {
                *bexp -= 4;
            }
        } else {
            if v != 0 {
                sticky = true;
            }
            if !frac {
                *bexp += 4;
            }
        }
    };
    while i < b.len() {
        let Some(v) = hexval(b[i]) else { break };
        push(v, false, &mut n, &mut bexp);
        digits += 1;
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() {
            let Some(v) = hexval(b[i]) else { break };
            push(v, true, &mut n, &mut bexp);
            digits += 1;
            i += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && b[i] == b'p' {
        if let Some((ev, j)) = parse_exponent(b, i + 1) {
            bexp += ev;
            i = j;
        }
    }
    if i != b.len() {
        return None;
    }
    if n.is_zero() {
        return Some(Num::Finite(Ld { neg, m: 0, e: 0 }));
    }
    let (m, adj) = round_big(&n, sticky);
    finite(neg, m, adj + bexp)
}

/// Reads the signed decimal exponent after `e`/`p` starting at `j`, as strtold: returns
/// its value (clamped to ±1e9, far past any finite long double) and the index after it,
/// or None when no digit follows (the marker is then not part of the number).
fn parse_exponent(b: &[u8], mut j: usize) -> Option<(i64, usize)> {
    let mut neg = false;
    if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
        neg = b[j] == b'-';
        j += 1;
    }
    let start = j;
    let mut ev: i64 = 0;
    while j < b.len() && b[j].is_ascii_digit() {
        ev = (ev * 10 + (b[j] - b'0') as i64).min(1_000_000_000);
        j += 1;
    }
    if j > start {
        Some((if neg { -ev } else { ev }, j))
    } else {
        None
    }
}

impl Ld {
    pub fn from_i64(v: i64) -> Ld {
        if v == 0 {
            return Ld {
                neg: false,
                m: 0,
                e: 0,
            };
        }
        let a = v.unsigned_abs();
        let lz = a.leading_zeros();
        Ld {
            neg: v < 0,
            m: a << lz,
            e: -(lz as i64),
        }
    }

    /// The correctly rounded sum, or None when it overflows.
    pub fn add(self, o: Ld) -> Option<Ld> {
        if self.m == 0 && o.m == 0 {
            // -0 + -0 = -0, otherwise +0.
            return Some(Ld {
                neg: self.neg && o.neg,
                m: 0,
                e: 0,
            });
        }
        if self.m == 0 {
            return Some(o);
        }
        if o.m == 0 {
            return Some(self);
        }
        let (a, b) = if self.e >= o.e { (self, o) } else { (o, self) };
        // Work in u128 with 62 guard bits; b's bits shifted out are jammed into bit 0.
        let base_e = a.e - 62;
        let av = (a.m as u128) << 62;
        let diff = (a.e - b.e) as u64;
        let bfull = (b.m as u128) << 62;
        let bv = if diff >= 127 {
            1 // nonzero and far below: only sticky
        } else {
            let sh = bfull >> diff;
            let lost = diff > 0 && bfull & ((1u128 << diff) - 1) != 0;
            sh | lost as u128
        };
        let (neg, r) = if a.neg == b.neg {
            (a.neg, av + bv)
        } else if av >= bv {
            (a.neg, av - bv)
        } else {
            (b.neg, bv - av)
        };
        if r == 0 {
            return Some(Ld {
                neg: false,
                m: 0,
                e: 0,
            });
        }
        let bl = 128 - r.leading_zeros() as i64;
        let (m, e) = if bl <= 64 {
            let sh = 64 - bl;
            ((r as u64) << sh, base_e - sh)
        } else {
            let shift = (bl - 64) as u32;
            let mut m = (r >> shift) as u64;
            let guard = (r >> (shift - 1)) & 1 == 1;
            let rest = r & ((1u128 << (shift - 1)) - 1) != 0;
            let mut e = base_e + shift as i64;
            if guard && (rest || m & 1 == 1) {
                let (v, of) = m.overflowing_add(1);
                if of {
                    m = 1 << 63;
                    e += 1;
                } else {
                    m = v;
                }
            }
            (m, e)
        };
        if e + 64 > MAX_EXP {
            return None;
        }
        Some(Ld { neg, m, e })
    }

    /// `%.17Lf`, then trailing zeros (and a trailing dot) removed, `-0` printed `0`:
    /// upstream's human-friendly long double format.
    pub fn format_human(&self) -> String {
        let mut int_part = Big::from_u64(self.m);
        let mut frac = Big(Vec::new());
        let mut fbits = 0u64;
        if self.e >= 0 {
            int_part.shl(self.e as u64);
        } else {
            fbits = (-self.e) as u64;
            frac = int_part.clone();
            frac.truncate_bits(fbits);
            // Integer part: m >> fbits.
            int_part = if fbits >= 64 {
                Big(Vec::new())
            } else {
                Big::from_u64(self.m >> fbits)
            };
        }
        let mut digits = [0u8; 17];
        for d in digits.iter_mut() {
            if fbits == 0 {
                break;
            }
            frac.mul_add_small(10, 0);
            let top = frac.bits64_from(fbits);
            *d = top as u8;
            frac.truncate_bits(fbits);
        }
        // Round half to even on the remainder.
        let round_up = if fbits == 0 {
            false
        } else {
            match frac.cmp_pow2(fbits - 1) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Equal => digits[16] % 2 == 1,
                std::cmp::Ordering::Less => false,
            }
        };
        let mut carry_int = false;
        if round_up {
            let mut k = 17;
            loop {
                if k == 0 {
                    carry_int = true;
                    break;
                }
                k -= 1;
                if digits[k] == 9 {
                    digits[k] = 0;
                } else {
                    digits[k] += 1;
                    break;
                }
            }
        }
        if carry_int {
            int_part.mul_add_small(1, 1);
        }
        // Integer part to decimal.
        let mut int_digits = Vec::new();
        if int_part.is_zero() {
            int_digits.push(b'0');
        } else {
            while !int_part.is_zero() {
                let r = int_part.div_small(1_000_000_000);
                let mut chunk = r;
                for _ in 0..9 {
                    int_digits.push(b'0' + (chunk % 10) as u8);
                    chunk /= 10;
                    if int_part.is_zero() && chunk == 0 {
                        break;
                    }
                }
            }
            while int_digits.len() > 1 && int_digits.last() == Some(&b'0') {
                int_digits.pop();
            }
            int_digits.reverse();
        }
        let mut out = String::new();
        if self.neg {
            out.push('-');
        }
        out.push_str(std::str::from_utf8(&int_digits).unwrap_or("0"));
        let mut last = 17;
        while last > 0 && digits[last - 1] == 0 {
            last -= 1;
        }
        if last > 0 {
            out.push('.');
            for d in &digits[..last] {
                out.push((b'0' + d) as char);
            }
        }
        if out == "-0" {
            out = "0".into();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fin(s: &str) -> Ld {
        match parse(s.as_bytes()) {
            Some(Num::Finite(l)) => l,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn sum(a: &str, b: &str) -> String {
        fin(a).add(fin(b)).unwrap().format_human()
    }

    #[test]
    fn formats_like_upstream() {
        assert_eq!(sum("10.5", "0.1"), "10.6");
        assert_eq!(sum("0", "1"), "1");
        assert_eq!(sum("3", "-3"), "0");
        assert_eq!(sum("-0", "-0"), "0");
        assert_eq!(sum("1.5", "1e3"), "1001.5");
        assert_eq!(sum("5.0e3", "2.0e2"), "5200");
        assert_eq!(sum("0.1", "0.2"), "0.3");
        assert_eq!(sum("1e-20", "0"), "0");
        assert_eq!(fin("1e20").format_human(), "100000000000000000000");
        assert_eq!(fin("0x10").format_human(), "16");
        assert_eq!(fin("0x1.8p1").format_human(), "3");
        assert_eq!(fin("-1.25").format_human(), "-1.25");
    }

    #[test]
    fn refuses_bad_input() {
        for s in [
            "", " 1", "1 ", "abc", "nan", "1e", ".", "1e99999", "1e-99999", "--1",
        ] {
            let r = parse(s.as_bytes());
            assert!(r.is_none(), "{s}: {r:?}");
        }
        assert_eq!(parse(b"inf"), Some(Num::Inf));
        assert!(matches!(parse(b"0e99999"), Some(Num::Finite(_))));
        assert!(parse(b"1\x00abc").is_none());
    }

    #[test]
    fn overflow_on_add() {
        let big = fin("1e4932");
        assert!(big.add(big).is_none());
    }
}
