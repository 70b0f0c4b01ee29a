//! HyperLogLog: Valkey's exact string representation (see upstream `hyperloglog.c`, the
//! spec), so that an HLL written by upstream works here and vice versa.
//!
//! Layout: a 16-byte header (`HYLL`, an encoding byte, 3 unused bytes, the cached
//! cardinality as 8 little-endian bytes whose top bit flags it stale), then either the
//! dense registers (16384 six-bit counters packed from the low bits up, 12288 bytes) or
//! the sparse run-length opcodes:
//! - ZERO  `00xxxxxx`: 1..=64 zero registers,
//! - XZERO `01xxxxxx yyyyyyyy`: 1..=16384 zero registers (14-bit length, minus one),
//! - VAL   `1vvvvvxx`: 1..=4 registers holding 1..=32.
//!
//! Everything here works on byte slices a client may have crafted (SET of any string
//! starting with the right header): every access is bounds-checked and every walk over
//! the sparse opcodes stops at 16384 registers, answering "corrupted" instead.

/// Header size.
pub const HDR: usize = 16;
/// log2 of the number of registers.
pub const P: u32 = 14;
/// Hash bits left for the run of zeros.
pub const Q: usize = 64 - P as usize;
pub const REGISTERS: usize = 1 << P;
/// Bytes of the dense registers.
pub const DENSE_REGS: usize = (REGISTERS * 6).div_ceil(8);
/// Total length of a dense HLL string.
pub const DENSE_SIZE: usize = HDR + DENSE_REGS;
pub const ENC_DENSE: u8 = 0;
pub const ENC_SPARSE: u8 = 1;
const REG_MAX: u8 = 63;
const SPARSE_VAL_MAX: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
const SEED: u64 = 0xadc8_3b19;

/// The sparse/dense data is corrupted (the caller replies `INVALIDOBJ`).
#[derive(Debug, PartialEq, Eq)]
pub struct Corrupt;

/// MurmurHash64A (the endian-neutral variant upstream uses).
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for ch in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(ch);
        let mut k = u64::from_le_bytes(w);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element maps to and the length of its `0..01` pattern (1..=Q+1).
#[inline]
pub fn pat_len(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1u64 << Q);
    (index, 1 + rest.trailing_zeros() as u8)
}

// ---- header --------------------------------------------------------------------------

/// Upstream's `isHLLObjectOrReply` test on a string: header present, magic, a known
/// encoding, and the exact length when dense.
pub fn is_hll(s: &[u8]) -> bool {
    s.len() >= HDR
        && &s[..4] == b"HYLL"
        && s[4] <= ENC_SPARSE
        && (s[4] != ENC_DENSE || s.len() == DENSE_SIZE)
}

/// The cached cardinality, when valid.
pub fn cached_card(s: &[u8]) -> Option<u64> {
    let c: [u8; 8] = s.get(8..16)?.try_into().ok()?;
    if c[7] & 0x80 != 0 {
        None
    } else {
        Some(u64::from_le_bytes(c))
    }
}

pub fn set_cached_card(s: &mut [u8], card: u64) {
    if let Some(c) = s.get_mut(8..16) {
        c.copy_from_slice(&card.to_le_bytes());
    }
}

pub fn invalidate_cache(s: &mut [u8]) {
    if let Some(b) = s.get_mut(15) {
        *b |= 0x80;
    }
}

/// A new, empty HLL: sparse, a single XZERO covering all registers, cache valid (0).
pub fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR + 2);
    v.extend_from_slice(b"HYLL");
    v.push(ENC_SPARSE);
    v.extend_from_slice(&[0u8; 11]);
    push_xzero(&mut v, REGISTERS);
    v
}

// ---- dense ---------------------------------------------------------------------------

/// Register `i` of packed dense registers (a missing trailing byte reads as zero, like
/// upstream's implicit sds terminator).
#[inline]
pub fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * 6 / 8;
    let fb = (i * 6) & 7;
    let b0 = regs.get(byte).copied().unwrap_or(0) as u32;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u32;
    (((b0 >> fb) | (b1 << (8 - fb))) & REG_MAX as u32) as u8
}

/// Sets register `i` of packed dense registers to `v` (0..=63).
#[inline]
pub fn dense_put(regs: &mut [u8], i: usize, v: u8) {
    let byte = i * 6 / 8;
    let fb = (i * 6) & 7;
    let v = (v & REG_MAX) as u32;
    if let Some(b) = regs.get_mut(byte) {
        *b = ((*b as u32 & !((REG_MAX as u32) << fb)) | (v << fb)) as u8;
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        *b = ((*b as u32 & !((REG_MAX as u32) >> (8 - fb))) | (v >> (8 - fb))) as u8;
    }
}

/// Raises register `i` to `count` if it is lower; true if it changed.
#[inline]
pub fn dense_set(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_put(regs, i, count);
        true
    } else {
        false
    }
}

fn dense_histo(regs: &[u8], histo: &mut [u32; 64]) {
    for g in regs.chunks_exact(3) {
        let w = g[0] as u32 | (g[1] as u32) << 8 | (g[2] as u32) << 16;
        histo[(w & 63) as usize] += 1;
        histo[((w >> 6) & 63) as usize] += 1;
        histo[((w >> 12) & 63) as usize] += 1;
        histo[((w >> 18) & 63) as usize] += 1;
    }
}

/// Packs one-byte-per-register values into dense registers.
pub fn dense_compress(regs: &mut [u8], raw: &[u8; REGISTERS]) {
    for (g, r) in regs.chunks_exact_mut(3).zip(raw.chunks_exact(4)) {
        let w = (r[0] & 63) as u32
            | ((r[1] & 63) as u32) << 6
            | ((r[2] & 63) as u32) << 12
            | ((r[3] & 63) as u32) << 18;
        g[0] = w as u8;
        g[1] = (w >> 8) as u8;
        g[2] = (w >> 16) as u8;
    }
}

// ---- sparse --------------------------------------------------------------------------

/// One decoded sparse opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A run of zeros (ZERO or XZERO; `bytes` tells which).
    Zero {
        len: usize,
        bytes: usize,
    },
    Val {
        val: u8,
        len: usize,
    },
}

/// Decodes the opcode at `p` (an XZERO cut by the end reads its second byte as 0, as
/// upstream does with the sds terminator).
#[inline]
fn op_at(s: &[u8], p: usize) -> Op {
    let b = s[p];
    if b & 0xc0 == 0 {
        Op::Zero {
            len: (b & 0x3f) as usize + 1,
            bytes: 1,
        }
    } else if b & 0x80 != 0 {
        Op::Val {
            val: ((b >> 2) & 0x1f) + 1,
            len: (b & 3) as usize + 1,
        }
    } else {
        let lo = s.get(p + 1).copied().unwrap_or(0) as usize;
        Op::Zero {
            len: ((((b & 0x3f) as usize) << 8) | lo) + 1,
            bytes: 2,
        }
    }
}

impl Op {
    #[inline]
    fn span(self) -> usize {
        match self {
            Op::Zero { len, .. } | Op::Val { len, .. } => len,
        }
    }
    #[inline]
    fn bytes(self) -> usize {
        match self {
            Op::Zero { bytes, .. } => bytes,
            Op::Val { .. } => 1,
        }
    }
}

#[inline]
fn val_byte(val: u8, len: usize) -> u8 {
    0x80 | ((val - 1) << 2) | (len as u8 - 1)
}

fn push_zero_run(v: &mut Vec<u8>, len: usize) {
    if len > SPARSE_ZERO_MAX_LEN {
        push_xzero(v, len);
    } else {
        v.push((len - 1) as u8);
    }
}

fn push_xzero(v: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    v.push(0x40 | (l >> 8) as u8);
    v.push(l as u8);
}

/// Walks the sparse opcodes of `s` (a whole HLL string), calling `f(first_register, val,
/// len)` for every VAL run; fails if the runs do not cover exactly 16384 registers.
fn sparse_walk(s: &[u8], mut f: impl FnMut(usize, u8, usize)) -> Result<(), Corrupt> {
    let mut idx = 0usize;
    let mut p = HDR;
    while p < s.len() {
        let op = op_at(s, p);
        let len = op.span();
        if idx + len > REGISTERS {
            return Err(Corrupt);
        }
        if let Op::Val { val, len } = op {
            f(idx, val, len);
        }
        idx += len;
        p += op.bytes();
    }
    if idx == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// Converts a sparse HLL to dense in place (a dense one is left alone).
pub fn to_dense(s: &mut Vec<u8>) -> Result<(), Corrupt> {
    if s.get(4) != Some(&ENC_SPARSE) {
        return Ok(());
    }
    let mut d = vec![0u8; DENSE_SIZE];
    d[..HDR].copy_from_slice(&s[..HDR]);
    d[4] = ENC_DENSE;
    let regs = &mut d[HDR..];
    sparse_walk(s, |first, val, len| {
        for i in first..first + len {
            dense_put(regs, i, val);
        }
    })?;
    *s = d;
    Ok(())
}

/// Raises register `index` to `count` in a sparse HLL, promoting it to dense when the
/// value does not fit a VAL opcode or the string would outgrow `max_bytes`. Ok(true) if
/// a register changed.
pub fn sparse_set(
    s: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: usize,
) -> Result<bool, Corrupt> {
    if count > SPARSE_VAL_MAX {
        return promote(s, index, count);
    }
    // Step 1: find the opcode covering `index`.
    let end = s.len();
    let mut p = HDR;
    let mut first = 0usize;
    let mut prev: Option<usize> = None;
    let mut op = None;
    while p < end {
        let o = op_at(s, p);
        op = Some(o);
        if index < first + o.span() {
            break;
        }
        prev = Some(p);
        p += o.bytes();
        first += o.span();
    }
    let op = match op {
        Some(o) if p < end => o,
        _ => return Err(Corrupt),
    };
    let span = op.span();
    // Step 2: the trivial in-place updates.
    let mut seq = [0u8; 5];
    let mut n = 0usize;
    match op {
        Op::Val { val, len } => {
            if val >= count {
                return Ok(false);
            }
            if len == 1 {
                s[p] = val_byte(count, 1);
                merge_adjacent(s, prev);
                return Ok(true);
            }
            // Split a VAL run.
            let last = first + span - 1;
            if index != first {
                seq[n] = val_byte(val, index - first);
                n += 1;
            }
            seq[n] = val_byte(count, 1);
            n += 1;
            if index != last {
                seq[n] = val_byte(val, last - index);
                n += 1;
            }
        }
        Op::Zero { len, bytes } => {
            if bytes == 1 && len == 1 {
                s[p] = val_byte(count, 1);
                merge_adjacent(s, prev);
                return Ok(true);
            }
            let last = first + span - 1;
            let mut tmp = Vec::with_capacity(5);
            if index != first {
                push_zero_run(&mut tmp, index - first);
            }
            tmp.push(val_byte(count, 1));
            if index != last {
                push_zero_run(&mut tmp, last - index);
            }
            n = tmp.len().min(5);
            seq[..n].copy_from_slice(&tmp[..n]);
        }
    }
    // Step 3: replace the old opcode by the new sequence.
    let oldlen = op.bytes();
    let newlen = (end + n).saturating_sub(oldlen);
    if n > oldlen && newlen > max_bytes {
        return promote(s, index, count);
    }
    let tail_from = (p + oldlen).min(end);
    s.splice(p..tail_from, seq[..n].iter().copied());
    // A truncated XZERO at the very end: upstream's length arithmetic drops what
    // overflows the new length.
    s.truncate(newlen);
    // Step 4: merge adjacent equal VAL runs.
    merge_adjacent(s, prev);
    Ok(true)
}

/// Step 4 of an update: scans up to 5 opcodes from `prev` merging adjacent VAL opcodes
/// of the same value; then marks the cached cardinality stale.
fn merge_adjacent(s: &mut Vec<u8>, prev: Option<usize>) {
    let mut p = prev.unwrap_or(HDR);
    let mut scan = 5;
    while p < s.len() && scan > 0 {
        scan -= 1;
        let b = s[p];
        if b & 0xc0 == 0x40 {
            p += 2;
            continue;
        }
        if b & 0xc0 == 0 {
            p += 1;
            continue;
        }
        if let Some(&b2) = s.get(p + 1) {
            if b2 & 0x80 != 0 {
                let (v1, l1) = (((b >> 2) & 0x1f) + 1, (b & 3) as usize + 1);
                let (v2, l2) = (((b2 >> 2) & 0x1f) + 1, (b2 & 3) as usize + 1);
                if v1 == v2 && l1 + l2 <= SPARSE_VAL_MAX_LEN {
                    s[p + 1] = val_byte(v1, l1 + l2);
                    s.remove(p);
                    continue;
                }
            }
        }
        p += 1;
    }
    invalidate_cache(s);
}

fn promote(s: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(s)?;
    dense_set(&mut s[HDR..], index, count);
    Ok(true)
}

/// Adds an element; Ok(true) if a register changed.
pub fn add(s: &mut Vec<u8>, ele: &[u8], max_bytes: usize) -> Result<bool, Corrupt> {
    let (index, count) = pat_len(ele);
    set_register(s, index, count, max_bytes)
}

/// Raises register `index` to `count` whatever the encoding.
pub fn set_register(
    s: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: usize,
) -> Result<bool, Corrupt> {
    match s.get(4) {
        Some(&ENC_DENSE) if s.len() == DENSE_SIZE => Ok(dense_set(&mut s[HDR..], index, count)),
        Some(&ENC_SPARSE) => sparse_set(s, index, count, max_bytes),
        _ => Err(Corrupt),
    }
}

// ---- counting ------------------------------------------------------------------------

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let zp = z;
        z += x * y;
        y += y;
        if zp == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let zp = z;
        y *= 0.5;
        z -= (1.0 - x).powf(2.0) * y;
        if zp == z {
            return z / 3.0;
        }
    }
}

/// Ertl's improved estimator over a register histogram (as upstream's `hllCount`).
fn estimate(histo: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    // Upstream rounds with llroundl (i64::MIN when out of range, e.g. the infinity of a
    // crafted HLL whose registers are all 63), stores it in a double, then casts that to
    // u64 (negative doubles wrap as on x86-64).
    let e = (ALPHA_INF * m * m / z).round();
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    let r = if (-TWO63..TWO63).contains(&e) {
        e as i64
    } else {
        i64::MIN
    };
    let d = r as f64;
    if d < 0.0 {
        d as i64 as u64
    } else {
        d as u64
    }
}

/// The estimated cardinality of a valid-header HLL string (ignoring the cache).
pub fn count(s: &[u8]) -> Result<u64, Corrupt> {
    let mut histo = [0u32; 64];
    match s.get(4) {
        Some(&ENC_DENSE) => dense_histo(s.get(HDR..).ok_or(Corrupt)?, &mut histo),
        Some(&ENC_SPARSE) => {
            let mut vals = 0u32;
            sparse_walk(s, |_, val, len| {
                histo[val as usize] += len as u32;
                vals += len as u32;
            })?;
            histo[0] = REGISTERS as u32 - vals;
        }
        _ => return Err(Corrupt),
    }
    Ok(estimate(&histo))
}

/// The estimated cardinality of one-byte-per-register values (PFCOUNT of several keys).
pub fn count_raw(raw: &[u8; REGISTERS]) -> u64 {
    let mut histo = [0u32; 64];
    for &r in raw.iter() {
        histo[(r & 63) as usize] += 1;
    }
    estimate(&histo)
}

/// `max[i] = max(max[i], register i of s)`.
pub fn merge_into(max: &mut [u8; REGISTERS], s: &[u8]) -> Result<(), Corrupt> {
    match s.get(4) {
        Some(&ENC_DENSE) => {
            let regs = s.get(HDR..).ok_or(Corrupt)?;
            for (g, m) in regs.chunks_exact(3).zip(max.chunks_exact_mut(4)) {
                let w = g[0] as u32 | (g[1] as u32) << 8 | (g[2] as u32) << 16;
                for (k, mk) in m.iter_mut().enumerate() {
                    let r = ((w >> (6 * k)) & 63) as u8;
                    if r > *mk {
                        *mk = r;
                    }
                }
            }
            Ok(())
        }
        Some(&ENC_SPARSE) => sparse_walk(s, |first, val, len| {
            for m in &mut max[first..first + len] {
                if val > *m {
                    *m = val;
                }
            }
        }),
        _ => Err(Corrupt),
    }
}

/// PFDEBUG DECODE: the sparse opcodes as text (`z:N`, `Z:N`, `v:VAL,LEN`).
pub fn decode(s: &[u8]) -> String {
    let mut out = String::new();
    let mut p = HDR;
    while p < s.len() {
        let op = op_at(s, p);
        if !out.is_empty() {
            out.push(' ');
        }
        match op {
            Op::Zero { len, bytes: 1 } => out.push_str(&format!("z:{len}")),
            Op::Zero { len, .. } => out.push_str(&format!("Z:{len}")),
            Op::Val { val, len } => out.push_str(&format!("v:{val},{len}")),
        }
        p += op.bytes();
    }
    out
}

/// PFSELFTEST: register access and estimator error checks, as upstream's. Err carries
/// the reply error text.
pub fn selftest(max_bytes: usize, mut rand: impl FnMut() -> u64) -> Result<(), String> {
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..4].copy_from_slice(b"HYLL");
    let mut bytes = vec![0u8; REGISTERS];
    for _ in 0..1000 {
        for (i, b) in bytes.iter_mut().enumerate() {
            let r = (rand() & 63) as u8;
            *b = r;
            dense_put(&mut dense[HDR..], i, r);
        }
        for (i, &b) in bytes.iter().enumerate() {
            let v = dense_get(&dense[HDR..], i);
            if v != b {
                return Err(format!("TESTFAILED Register {i} should be {b} but is {v}"));
            }
        }
    }
    for b in &mut dense[HDR..] {
        *b = 0;
    }
    let mut sparse = new_sparse();
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let mut checkpoint: u64 = 1;
    let seed = rand();
    for j in 1..=10_000_000u64 {
        let ele = (j ^ seed).to_le_bytes();
        let (index, cnt) = pat_len(&ele);
        dense_set(&mut dense[HDR..], index, cnt);
        let _ = set_register(&mut sparse, index, cnt, max_bytes);
        if j != checkpoint {
            continue;
        }
        if (j as usize) < max_bytes / 2 && sparse[4] != ENC_SPARSE {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        let cd = count(&dense).unwrap_or(0);
        if cd != count(&sparse).unwrap_or(u64::MAX) {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        let abserr = (checkpoint as i64 - cd as i64).unsigned_abs();
        let mut maxerr = (relerr * 6.0 * checkpoint as f64).ceil() as u64;
        if j == 10 {
            maxerr = 1;
        }
        if abserr > maxerr {
            return Err(format!(
                "TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"
            ));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs_of(s: &[u8]) -> Vec<u8> {
        let mut raw = [0u8; REGISTERS];
        merge_into(&mut raw, s).unwrap();
        raw.to_vec()
    }

    #[test]
    fn empty_hll() {
        let s = new_sparse();
        assert_eq!(s.len(), 18);
        assert!(is_hll(&s));
        assert_eq!(decode(&s), "Z:16384");
        assert_eq!(count(&s), Ok(0));
        assert_eq!(cached_card(&s), Some(0));
    }

    #[test]
    fn dense_registers_roundtrip() {
        let mut r = vec![0u8; DENSE_REGS];
        for i in 0..REGISTERS {
            dense_put(&mut r, i, (i * 7 % 64) as u8);
        }
        for i in 0..REGISTERS {
            assert_eq!(dense_get(&r, i), (i * 7 % 64) as u8);
        }
        let mut raw = [0u8; REGISTERS];
        for (i, x) in raw.iter_mut().enumerate() {
            *x = (i * 7 % 64) as u8;
        }
        let mut r2 = vec![0u8; DENSE_REGS];
        dense_compress(&mut r2, &raw);
        assert_eq!(r, r2);
    }

    #[test]
    fn sparse_and_dense_agree() {
        let mut sp = new_sparse();
        let mut de = new_sparse();
        to_dense(&mut de).unwrap();
        for i in 0..5000u32 {
            let e = format!("ele:{i}");
            add(&mut sp, e.as_bytes(), 1 << 20).unwrap();
            add(&mut de, e.as_bytes(), 1 << 20).unwrap();
            if i % 500 == 0 {
                assert_eq!(regs_of(&sp), regs_of(&de));
                assert_eq!(count(&sp), count(&de));
            }
        }
        let mut sp2 = sp.clone();
        to_dense(&mut sp2).unwrap();
        assert_eq!(&sp2[HDR..], &de[HDR..]);
    }

    #[test]
    fn promotion_at_max_bytes() {
        let mut s = new_sparse();
        let mut i = 0;
        while s[4] == ENC_SPARSE {
            add(&mut s, format!("{i}").as_bytes(), 3000).unwrap();
            assert!(s.len() <= 3000 || s[4] == ENC_DENSE);
            i += 1;
        }
        assert_eq!(s.len(), DENSE_SIZE);
    }

    #[test]
    fn corrupted_sparse_is_rejected() {
        // XZERO 16384 twice: overflows the register count.
        let mut s = new_sparse();
        s.extend_from_slice(&[0x7f, 0xff]);
        assert_eq!(count(&s), Err(Corrupt));
        let mut raw = [0u8; REGISTERS];
        assert_eq!(merge_into(&mut raw, &s), Err(Corrupt));
        assert_eq!(to_dense(&mut s.clone()), Err(Corrupt));
        // Truncated: not enough registers.
        let mut t = new_sparse();
        t.pop();
        assert_eq!(count(&t), Err(Corrupt));
        let _ = add(&mut t, b"a", 3000);
        // Only header.
        let mut h = new_sparse();
        h.truncate(HDR);
        assert_eq!(add(&mut h, b"a", 3000), Err(Corrupt));
    }

    #[test]
    fn murmur_known() {
        // Same value as upstream for an empty input with the HLL seed is stable.
        assert_eq!(murmur64a(b"", SEED), murmur64a(b"", SEED));
        assert_ne!(murmur64a(b"a", SEED), murmur64a(b"b", SEED));
    }
}
