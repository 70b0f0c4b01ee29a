//! CRC-64/Jones, the checksum of RDB files and DUMP payloads.
//!
//! Parameters (as upstream `crc64.c`): polynomial `0xad93d23594c935a9`, input
//! and output reflected, initial value 0, no final xor. The check value of
//! `"123456789"` is `0xe9c6d914c4b8d9ca`. This is *not* CRC-64/XZ (which the
//! `crc64fast` crate computes).
//!
//! Because the initial value is 0 and there is no final xor, the running CRC is
//! the state itself: `update(update(0, a), b) == update(0, a ++ b)`.
//!
//! The implementation is table driven, "slice-by-8": eight 256-entry tables
//! let the inner loop consume eight input bytes per step.

/// The Jones polynomial, bit-reversed for the LSB-first (reflected) algorithm.
const POLY_REFLECTED: u64 = 0xad93d23594c935a9u64.reverse_bits();

const fn make_tables() -> [[u64; 256]; 8] {
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

static TABLES: [[u64; 256]; 8] = make_tables();

/// Continues a CRC-64/Jones computation: `crc` is the value over the bytes
/// seen so far (0 to start).
pub fn update(mut crc: u64, data: &[u8]) -> u64 {
    let t = &TABLES;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = crc ^ u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        crc = t[7][(v & 0xff) as usize]
            ^ t[6][((v >> 8) & 0xff) as usize]
            ^ t[5][((v >> 16) & 0xff) as usize]
            ^ t[4][((v >> 24) & 0xff) as usize]
            ^ t[3][((v >> 32) & 0xff) as usize]
            ^ t[2][((v >> 40) & 0xff) as usize]
            ^ t[1][((v >> 48) & 0xff) as usize]
            ^ t[0][(v >> 56) as usize];
    }
    for &b in chunks.remainder() {
        crc = t[0][((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// CRC-64/Jones of `data` in one call.
pub fn crc64(data: &[u8]) -> u64 {
    update(0, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-at-a-time reference, independent of the tables.
    fn bitwise(data: &[u8]) -> u64 {
        let mut crc = 0u64;
        for &b in data {
            crc ^= b as u64;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLY_REFLECTED
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    #[test]
    fn check_value() {
        assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
        assert_eq!(crc64(b""), 0);
    }

    #[test]
    fn matches_bitwise_reference_for_all_lengths() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 31 + 7) as u8).collect();
        for n in 0..data.len() {
            assert_eq!(crc64(&data[..n]), bitwise(&data[..n]), "length {n}");
        }
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i ^ (i >> 3)) as u8).collect();
        let whole = crc64(&data);
        for split in [0, 1, 3, 7, 8, 9, 15, 16, 17, 500, 999, 1000] {
            let (a, b) = data.split_at(split);
            assert_eq!(update(update(0, a), b), whole, "split at {split}");
        }
        // Byte by byte.
        let mut crc = 0;
        for b in data.chunks(1) {
            crc = update(crc, b);
        }
        assert_eq!(crc, whole);
    }

    #[test]
    fn upstream_dump_payload_footer() {
        // `DUMP k` from Valkey 9.1.2 for SET k <"abcdefghij" x 10>: type 0,
        // LZF string, RDB version 80 (LE u16), CRC-64 footer (LE u64).
        let payload: &[u8] =
            b"\x00\xc3\x12@d\nabcdefghija\xe0N\t\x01ijP\x00\x1b\xaf\xe0\xbb\x81|\x98\x92";
        let (body, footer) = payload.split_at(payload.len() - 8);
        assert_eq!(crc64(body), u64::from_le_bytes(footer.try_into().unwrap()));
        // An integer-encoded string: SET n -123456.
        let payload: &[u8] = b"\x00\xc2\xc0\x1d\xfe\xffP\x00.\x9c\xab\x0f5\xef3\x06";
        let (body, footer) = payload.split_at(payload.len() - 8);
        assert_eq!(crc64(body), u64::from_le_bytes(footer.try_into().unwrap()));
    }
}
