//! Glob-style pattern matching, as upstream's `stringmatchlen` (KEYS, SCAN MATCH,
//! CONFIG GET, CLIENT KILL, ACL patterns), safe against pathological patterns.
//!
//! # Semantics (those of upstream, quirks included)
//! - `*` matches any sequence, `?` any one byte, `\x` the byte `x` (a lone trailing `\`
//!   is a literal backslash).
//! - `[...]` matches one byte of a set: `^` first negates it; `a-z` is a range whose ends
//!   may be given in either order and are compared as *signed* bytes (C `char`); `\x`
//!   inside a set is `x`, compared case-sensitively even in nocase mode. A set without
//!   its closing `]` runs to the end of the pattern; `[a-]` takes the `]` as the end of
//!   the range, so the set goes on.
//! - An empty string only matches the empty pattern (even `*` does not match it).
//! - Upstream recurses once per `*` and gives up (no match) past 1000 levels: a pattern
//!   with more than 1000 groups of stars that are followed by something never matches.
//!
//! # Cost
//! Upstream backtracks recursively. Here the pattern is compiled once into single-byte
//! tokens separated by stars; the part before the first star is matched at the start,
//! the part after the last one at the end, and each segment in between at its leftmost
//! occurrence (leftmost is always safe for glob segments). The cost is at most
//! O(pattern * string), with no recursion and no exponential case.

/// Upstream's recursion limit on nested stars (`nesting > 1000`).
const MAX_STAR_NESTING: usize = 1000;

/// One single-byte token of a compiled pattern.
#[derive(Clone, Copy, Debug)]
enum Tok {
    /// `?`.
    Any,
    /// A literal byte (compared case-insensitively in nocase mode).
    Lit(u8),
    /// A `[...]` set: an index into `Pattern::sets`.
    Set(u32),
}

/// A compiled glob pattern, to match many strings against one pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    /// Segments of single-byte tokens: segment 0 is before the first star, the last one
    /// after the last star; there are `segments.len() - 1` star groups.
    toks: Vec<Tok>,
    /// Start offsets of the segments in `toks` (plus a final end offset).
    seg_starts: Vec<usize>,
    /// 256-bit membership maps of the `[...]` sets.
    sets: Vec<[u64; 4]>,
    nocase: bool,
    /// The pattern was empty.
    empty: bool,
    /// Upstream would hit its recursion limit on any candidate match.
    too_deep: bool,
}

fn set_bit(map: &mut [u64; 4], b: u8) {
    map[(b >> 6) as usize] |= 1u64 << (b & 63);
}

fn has_bit(map: &[u64; 4], b: u8) -> bool {
    map[(b >> 6) as usize] & (1u64 << (b & 63)) != 0
}

/// Parses a `[...]` set starting right after the `[` at `p[i]`; returns the membership
/// map and the index just after the set (upstream's loop, step by step).
fn parse_set(p: &[u8], mut i: usize, nocase: bool) -> ([u64; 4], usize) {
    let mut map = [0u64; 4];
    let neg = p.get(i) == Some(&b'^');
    if neg {
        i += 1;
    }
    loop {
        let left = p.len() - i;
        if left >= 2 && p[i] == b'\\' {
            // An escaped byte, compared exactly.
            set_bit(&mut map, p[i + 1]);
            i += 2;
        } else if left == 0 {
            // Unterminated: the set ends with the pattern.
            break;
        } else if p[i] == b']' {
            i += 1;
            break;
        } else if left >= 3 && p[i + 1] == b'-' {
            // A range over signed bytes, ends in either order, lowered after ordering.
            let (mut lo, mut hi) = (p[i] as i8 as i32, p[i + 2] as i8 as i32);
            if lo > hi {
                std::mem::swap(&mut lo, &mut hi);
            }
            if nocase {
                lo = c_tolower(lo);
                hi = c_tolower(hi);
            }
            let m = signed_range_map(lo, hi, nocase);
            for (w, x) in map.iter_mut().zip(m) {
                *w |= x;
            }
            i += 3;
        } else {
            let c = p[i];
            if nocase {
                set_bit(&mut map, c.to_ascii_lowercase());
                set_bit(&mut map, c.to_ascii_uppercase());
            } else {
                set_bit(&mut map, c);
            }
            i += 1;
        }
    }
    if neg {
        for w in map.iter_mut() {
            *w = !*w;
        }
    }
    (map, i)
}

/// The bytes of an unsigned inclusive interval, as a membership map.
fn interval_map(lo: u32, hi: u32) -> [u64; 4] {
    let mut map = [0u64; 4];
    for (w, word) in map.iter_mut().enumerate() {
        let (base, top) = (w as u32 * 64, w as u32 * 64 + 63);
        let (a, b) = (lo.max(base), hi.min(top));
        if a <= b {
            let width = b - a + 1;
            let ones = if width == 64 {
                u64::MAX
            } else {
                (1u64 << width) - 1
            };
            *word |= ones << (a - base);
        }
    }
    map
}

/// The bytes `b` whose C value (signed `char`, lowered in nocase mode) lies in the
/// ordered signed range `lo..=hi` (already lowered in nocase mode).
fn signed_range_map(lo: i32, hi: i32, nocase: bool) -> [u64; 4] {
    let mut m = if hi < 0 {
        interval_map((lo + 256) as u32, (hi + 256) as u32)
    } else if lo >= 0 {
        interval_map(lo as u32, hi as u32)
    } else {
        let a = interval_map((lo + 256) as u32, 255);
        let b = interval_map(0, hi as u32);
        [a[0] | b[0], a[1] | b[1], a[2] | b[2], a[3] | b[3]]
    };
    if nocase {
        // Lowered values: upper-case letters are never the value of a byte; each
        // lower-case letter value is reached from both cases.
        const UPPER: u64 = ((1u64 << 26) - 1) << (b'A' - 64);
        const LOWER: u64 = ((1u64 << 26) - 1) << (b'a' - 64);
        let w = m[1];
        m[1] = (w & !UPPER) | ((w & LOWER) >> 32);
    }
    m
}

/// C's `tolower` in the C locale on a (possibly negative) `char` value.
fn c_tolower(c: i32) -> i32 {
    if (b'A' as i32..=b'Z' as i32).contains(&c) {
        c + 32
    } else {
        c
    }
}

impl Pattern {
    /// Compiles `pattern`. The cost is linear in the pattern length (ranges cost at most
    /// 256 steps each).
    pub fn new(pattern: &[u8], nocase: bool) -> Pattern {
        let mut toks = Vec::new();
        let mut seg_starts = vec![0];
        let mut sets = Vec::new();
        let mut i = 0;
        while i < pattern.len() {
            match pattern[i] {
                b'*' => {
                    while i < pattern.len() && pattern[i] == b'*' {
                        i += 1;
                    }
                    seg_starts.push(toks.len());
                }
                b'?' => {
                    toks.push(Tok::Any);
                    i += 1;
                }
                b'[' => {
                    let (map, next) = parse_set(pattern, i + 1, nocase);
                    let idx = sets.len() as u32;
                    sets.push(map);
                    toks.push(Tok::Set(idx));
                    i = next;
                }
                b'\\' if i + 1 < pattern.len() => {
                    toks.push(Tok::Lit(pattern[i + 1]));
                    i += 2;
                }
                c => {
                    toks.push(Tok::Lit(c));
                    i += 1;
                }
            }
        }
        seg_starts.push(toks.len());
        // Star groups followed by something: each costs upstream one recursion level.
        let stars = seg_starts.len() - 2;
        let last_empty = seg_starts[seg_starts.len() - 2] == toks.len();
        let inner_stars = if stars > 0 && last_empty {
            stars - 1
        } else {
            stars
        };
        Pattern {
            toks,
            seg_starts,
            sets,
            nocase,
            empty: pattern.is_empty(),
            too_deep: inner_stars > MAX_STAR_NESTING,
        }
    }

    #[inline]
    fn tok_matches(&self, t: Tok, c: u8) -> bool {
        match t {
            Tok::Any => true,
            Tok::Lit(l) => {
                if self.nocase {
                    l.eq_ignore_ascii_case(&c)
                } else {
                    l == c
                }
            }
            Tok::Set(i) => has_bit(&self.sets[i as usize], c),
        }
    }

    #[inline]
    fn seg(&self, n: usize) -> &[Tok] {
        &self.toks[self.seg_starts[n]..self.seg_starts[n + 1]]
    }

    fn seg_matches_at(&self, seg: &[Tok], s: &[u8]) -> bool {
        seg.iter().zip(s).all(|(&t, &c)| self.tok_matches(t, c))
    }

    /// Whether `s` matches.
    pub fn matches(&self, s: &[u8]) -> bool {
        if s.is_empty() {
            return self.empty;
        }
        if self.too_deep || s.len() < self.toks.len() {
            return false;
        }
        let nseg = self.seg_starts.len() - 1;
        let head = self.seg(0);
        if nseg == 1 {
            return s.len() == head.len() && self.seg_matches_at(head, s);
        }
        let tail = self.seg(nseg - 1);
        // Lengths fit: s.len() >= all tokens >= head + tail.
        if !self.seg_matches_at(head, s) {
            return false;
        }
        let end = s.len() - tail.len();
        if !self.seg_matches_at(tail, &s[end..]) {
            return false;
        }
        let mut pos = head.len();
        for n in 1..nseg - 1 {
            let seg = self.seg(n);
            // Leftmost occurrence of the segment within s[pos..end].
            let mut found = None;
            let mut at = pos;
            while at + seg.len() <= end {
                if self.seg_matches_at(seg, &s[at..]) {
                    found = Some(at);
                    break;
                }
                at += 1;
            }
            match found {
                Some(at) => pos = at + seg.len(),
                None => return false,
            }
        }
        true
    }
}

/// Whether `s` matches `pattern` (`*`, `?`, `[...]` with `^` and ranges, `\` escapes).
pub fn string_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    // Cheap exits before compiling: the empty string, and literal-only patterns.
    if s.is_empty() {
        return pattern.is_empty();
    }
    Pattern::new(pattern, nocase).matches(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        string_match(p.as_bytes(), s.as_bytes(), false)
    }

    fn mi(p: &str, s: &str) -> bool {
        string_match(p.as_bytes(), s.as_bytes(), true)
    }

    #[test]
    fn basics() {
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("*", ""));
        assert!(!m("**", ""));
        assert!(!m("?", ""));
        assert!(m("*", "a"));
        assert!(m("*", "anything"));
        assert!(m("a*", "a"));
        assert!(m("a**", "a"));
        assert!(m("a*b", "ab"));
        assert!(m("a*b", "axxb"));
        assert!(!m("a*b", "axxbc"));
        assert!(m("a*b*", "axxbc"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("*llo", "hello"));
        assert!(!m("*llo", "hell"));
        assert!(m("he*o", "heo"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*", "xxaxxcxxbxx"));
        assert!(m("*ab*ab", "abab"));
        assert!(!m("*ab*ab", "aba"));
        assert!(m("a*a", "aa"));
        assert!(!m("a*a", "a"));
    }

    #[test]
    fn sets() {
        assert!(m("h[ae]llo", "hello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("[\\]]", "]"));
        assert!(m("[\\-]", "-"));
        // Unterminated sets run to the end of the pattern.
        assert!(m("[abc", "b"));
        assert!(!m("[abc", "d"));
        assert!(!m("[", "["));
        assert!(!m("[", "a"));
        // "[^" is a negated empty set: any byte.
        assert!(m("[^", "x"));
        assert!(!m("[^", "xy"));
        // "[a-]" takes ']' as the range end and the set goes on.
        assert!(m("[a-]x", "x"));
        assert!(m("[a-]x", "^"));
        assert!(!m("[a-]x", "]x"));
        // A trailing backslash in a set is literal.
        assert!(m("[\\", "\\"));
        // Signed ranges: 0x01..0xff is -1..1 in C.
        assert!(string_match(b"[\x01-\xff]", b"\x00", false));
        assert!(!string_match(b"[\x01-\xff]", b"\x05", false));
        assert!(string_match(b"[\x80-\x7f]", b"\x05", false));
    }

    #[test]
    fn range_maps_match_byte_by_byte() {
        for lo in -128i32..128 {
            for hi in (lo..128).step_by(3) {
                for nocase in [false, true] {
                    let (l, h) = if nocase {
                        (c_tolower(lo), c_tolower(hi))
                    } else {
                        (lo, hi)
                    };
                    let m = signed_range_map(l, h, nocase);
                    for b in 0..=255u8 {
                        let mut c = b as i8 as i32;
                        if nocase {
                            c = c_tolower(c);
                        }
                        assert_eq!(has_bit(&m, b), c >= l && c <= h, "{lo} {hi} {nocase} {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn escapes() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a\\?", "a?"));
        assert!(!m("a\\?", "ab"));
        assert!(m("\\", "\\"));
        assert!(m("a\\", "a\\"));
        assert!(m("\\[a]", "[a]"));
    }

    #[test]
    fn nocase() {
        assert!(mi("HeLLo", "hello"));
        assert!(mi("h[A-C]llo", "hbllo"));
        assert!(mi("h[a-c]llo", "HBLLO"));
        assert!(mi("[x]", "X"));
        // Escapes inside a set stay case-sensitive.
        assert!(!mi("[\\x]", "X"));
        assert!(mi("\\x", "X"));
        // Ends are ordered before lowering: Z(90)..a(97) lowers to z..a: empty.
        assert!(!mi("[Z-a]", "z"));
        assert!(!mi("[Z-a]", "_"));
        assert!(m("[Z-a]", "_"));
        assert!(!m("hello", "HELLO"));
    }

    #[test]
    fn nesting_limit() {
        let s = "a".repeat(1100);
        let p1000 = "*a".repeat(1000);
        let p1001 = "*a".repeat(1001);
        assert!(m(&p1000, &s));
        assert!(m(&(p1000.clone() + "*"), &s));
        assert!(!m(&p1001, &s));
        assert!(!m(&(p1001 + "*"), &s));
    }

    #[test]
    fn pathological_is_fast() {
        let s = "a".repeat(100_000);
        let t = std::time::Instant::now();
        assert!(!m("*a*a*a*a*a*a*a*a*a*a*b", &s));
        assert!(!m(&("*a".repeat(500) + "b"), &s));
        assert!(!m("a*a*a*a*a*a*a*a*a*a*a*a*a*a*b*", &s));
        let big = "*".repeat(1 << 20);
        assert!(m(&big, &s));
        let big = "[".repeat(1 << 20);
        assert!(!m(&big, &s));
        let big = "?".repeat(1 << 20);
        assert!(!m(&big, "abc"));
        assert!(t.elapsed().as_secs() < 2, "took {:?}", t.elapsed());
    }

    /// A straight port of upstream's recursive algorithm, to cross-check on small inputs.
    fn reference(p: &[u8], s: &[u8], nocase: bool) -> bool {
        fn imp(p: &[u8], s: &[u8], nocase: bool, skip: &mut bool, nest: usize) -> bool {
            if nest > 1000 {
                return false;
            }
            let (mut p, mut s) = (p, s);
            let low = |c: u8| if nocase { c.to_ascii_lowercase() } else { c };
            while !p.is_empty() && !s.is_empty() {
                match p[0] {
                    b'*' => {
                        while p.len() > 1 && p[1] == b'*' {
                            p = &p[1..];
                        }
                        if p.len() == 1 {
                            return true;
                        }
                        while !s.is_empty() {
                            if imp(&p[1..], s, nocase, skip, nest + 1) {
                                return true;
                            }
                            if *skip {
                                return false;
                            }
                            s = &s[1..];
                        }
                        *skip = true;
                        return false;
                    }
                    b'?' => s = &s[1..],
                    b'[' => {
                        let (map, next) = parse_set(p, 1, nocase);
                        if !has_bit(&map, s[0]) {
                            return false;
                        }
                        s = &s[1..];
                        // parse_set returns the index after the set; mimic the
                        // pointer step below by stepping to one before it.
                        p = &p[next - 1..];
                    }
                    b'\\' if p.len() >= 2 => {
                        p = &p[1..];
                        if low(p[0]) != low(s[0]) {
                            return false;
                        }
                        s = &s[1..];
                    }
                    c => {
                        if low(c) != low(s[0]) {
                            return false;
                        }
                        s = &s[1..];
                    }
                }
                p = &p[1..];
                if s.is_empty() {
                    while !p.is_empty() && p[0] == b'*' {
                        p = &p[1..];
                    }
                    break;
                }
            }
            p.is_empty() && s.is_empty()
        }
        let mut skip = false;
        imp(p, s, nocase, &mut skip, 0)
    }

    #[test]
    fn random_cross_check() {
        let alphabet = b"ab*?[]^-\\Ac";
        let salpha = b"abcA]^-\\*";
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200_000 {
            let pl = (rnd() % 8) as usize;
            let sl = (rnd() % 7) as usize;
            let p: Vec<u8> = (0..pl)
                .map(|_| alphabet[(rnd() % alphabet.len() as u64) as usize])
                .collect();
            let s: Vec<u8> = (0..sl)
                .map(|_| salpha[(rnd() % salpha.len() as u64) as usize])
                .collect();
            for nocase in [false, true] {
                assert_eq!(
                    string_match(&p, &s, nocase),
                    reference(&p, &s, nocase),
                    "pattern {:?} string {:?} nocase {}",
                    String::from_utf8_lossy(&p),
                    String::from_utf8_lossy(&s),
                    nocase
                );
            }
        }
    }
}
