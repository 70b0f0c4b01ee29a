//! Intset format checks (upstream `intset.c`, intsetValidateIntegrity).
//!
//! ```text
//! <encoding: u32 LE, 2|4|8 bytes per value> <length: u32 LE> <values, LE, ascending>
//! ```

use crate::{Error, Result};

/// Header size.
pub const HDR: usize = 8;

/// Validates an intset: a known encoding, a size that matches the length, not
/// empty, and with `deep` strictly ascending values. Returns the length.
pub fn validate(is: &[u8], deep: bool) -> Result<usize> {
    let Some(hdr) = is.get(..HDR) else {
        return Err(Error::corrupt(0, "intset shorter than its header"));
    };
    let enc = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    if !matches!(enc, 2 | 4 | 8) {
        return Err(Error::corrupt(0, format!("intset encoding {enc} invalid")));
    }
    let n = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as u64;
    if n * enc as u64 + HDR as u64 != is.len() as u64 {
        return Err(Error::corrupt(
            4,
            format!("intset of {n} values does not fit {} bytes", is.len()),
        ));
    }
    if n == 0 {
        return Err(Error::corrupt(4, "empty intset"));
    }
    if deep {
        let mut prev: Option<i64> = None;
        for (i, c) in is[HDR..].chunks_exact(enc as usize).enumerate() {
            let v = value(c);
            if prev.is_some_and(|p| v <= p) {
                return Err(Error::corrupt(
                    (HDR + i * enc as usize) as u64,
                    "intset values not strictly ascending",
                ));
            }
            prev = Some(v);
        }
    }
    Ok(n as usize)
}

/// One value of `enc` (2, 4 or 8) little-endian bytes.
fn value(c: &[u8]) -> i64 {
    match *c {
        [a, b] => i16::from_le_bytes([a, b]) as i64,
        [a, b, c, d] => i32::from_le_bytes([a, b, c, d]) as i64,
        [a, b, c, d, e, f, g, h] => i64::from_le_bytes([a, b, c, d, e, f, g, h]),
        _ => 0,
    }
}

/// The values of a validated intset.
pub fn values(is: &[u8]) -> impl Iterator<Item = i64> + '_ {
    let enc = is.first().copied().unwrap_or(2).max(1) as usize;
    is.get(HDR..).unwrap_or(&[]).chunks_exact(enc).map(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        assert!(validate(&[], true).is_err());
        assert!(validate(&[2, 0, 0, 0, 0, 0, 0, 0], true).is_err());
        assert!(validate(&[3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0], true).is_err());
        assert_eq!(validate(&[2, 0, 0, 0, 1, 0, 0, 0, 1, 0], true).unwrap(), 1);
        assert!(validate(&[2, 0, 0, 0, 2, 0, 0, 0, 1, 0], true).is_err());
        assert!(validate(&[2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 1, 0], true).is_err());
        assert!(validate(&[2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 1, 0], false).is_ok());
        assert!(validate(&[2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 2, 0], true).is_ok());
        assert!(validate(&[2, 0, 0, 0, 255, 255, 255, 255, 1, 0], true).is_err());
        let v: Vec<i64> =
            values(&[4, 0, 0, 0, 2, 0, 0, 0, 255, 255, 255, 255, 1, 0, 0, 0]).collect();
        assert_eq!(v, [-1, 1]);
    }
}
