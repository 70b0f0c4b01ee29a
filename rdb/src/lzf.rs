//! LZF compression in liblzf's format, producing the same bytes as the liblzf
//! build upstream Valkey ships (`lzf_c.c` 3.6 with `HLOG 16`, `VERY_FAST`), so
//! compressed RDB strings and quicklist nodes are byte-identical to upstream's.
//!
//! ```text
//! 000LLLLL <L+1 bytes>          literal run of 1..=32 bytes
//! LLLooooo oooooooo             back reference of L+2 bytes (L 1..=6), offset o+1
//! 111ooooo LLLLLLLL oooooooo    back reference of L+9 bytes, offset o+1
//! ```
//!
//! Upstream keeps its hash table uninitialised on the stack (`INIT_HTAB 0`), so
//! a stale slot can in rare cases pick a different (equally valid) match; this
//! implementation behaves as if the table were zeroed on every call (matching
//! upstream whenever stale slots do not matter), without paying for clearing
//! 256 KiB per call: slots carry a generation base and entries written by
//! earlier calls are ignored.

use std::cell::RefCell;

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// The hash table: input positions offset by `base`; a slot below `base` was
/// written by an earlier call and counts as empty.
struct Table {
    slots: Box<[u32]>,
    base: u32,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table {
        slots: vec![0u32; HSIZE].into_boxed_slice(),
        base: 1,
    });
}

#[inline(always)]
fn idx(h: u32) -> usize {
    ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// Compresses `input`, appending at most `max_out` bytes to `out`. Returns the
/// compressed length, or `None` (with `out` unchanged) when the result would not
/// fit in `max_out` bytes, as `lzf_compress` returning 0.
pub fn compress(input: &[u8], out: &mut Vec<u8>, max_out: usize) -> Option<usize> {
    let in_len = input.len();
    if in_len == 0 || max_out == 0 || in_len >= (u32::MAX / 2) as usize {
        return None;
    }
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let start = out.len();
        // Slack so the run-start placeholder past the limit never indexes out of
        // bounds; the limit checks below are upstream's.
        out.resize(start + max_out + 4, 0);
        let n = compress_into(&mut t, input, &mut out[start..], max_out);
        out.truncate(start + n.unwrap_or(0));
        n
    })
}

fn compress_into(t: &mut Table, input: &[u8], o: &mut [u8], out_end: usize) -> Option<usize> {
    let in_len = input.len();
    // Positions of this call are stored as base + pos; older entries are < base.
    if (t.base as u64) + (in_len as u64) + 1 >= u32::MAX as u64 {
        t.slots.fill(0);
        t.base = 1;
    }
    let base = t.base;
    t.base += in_len as u32 + 1;
    let slots = &mut t.slots;

    let mut ip = 0usize;
    let mut op = 1usize; // start run
    let mut lit = 0usize;
    let mut hval: u32 = if in_len >= 2 {
        ((input[0] as u32) << 8) | input[1] as u32
    } else {
        0
    };
    while ip + 2 < in_len {
        hval = (hval << 8) | input[ip + 2] as u32;
        let slot = &mut slots[idx(hval)];
        let prev = *slot;
        *slot = base + ip as u32;
        let found = if prev >= base {
            let r = (prev - base) as usize;
            let off = ip - r - 1;
            if off < MAX_OFF
                && r > 0
                && input[r + 2] == input[ip + 2]
                && input[r] == input[ip]
                && input[r + 1] == input[ip + 1]
            {
                Some((r, off))
            } else {
                None
            }
        } else {
            None
        };
        if let Some((r, off)) = found {
            let mut len = 2usize;
            let maxlen = (in_len - ip - len).min(MAX_REF);
            if op + 3 + 1 >= out_end && op - usize::from(lit == 0) + 3 + 1 >= out_end {
                return None;
            }
            o[op - lit - 1] = (lit as u8).wrapping_sub(1); // stop run
            op -= usize::from(lit == 0); // undo run if length is zero
                                         // The third byte is known to match (upstream 9.1.2's do-while), so a
                                         // match is at least 3 bytes even when fewer are left to compare.
            len += 1;
            while len < maxlen && input[r + len] == input[ip + len] {
                len += 1;
            }
            len -= 2; // now #octets - 1
            ip += 1;
            if len < 7 {
                o[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                o[op] = ((off >> 8) + (7 << 5)) as u8;
                o[op + 1] = (len - 7) as u8;
                op += 2;
            }
            o[op] = off as u8;
            op += 2; // and start a run
            lit = 0;
            ip += len + 1;
            if ip + 2 >= in_len {
                break;
            }
            ip -= 2;
            hval = ((input[ip] as u32) << 8) | input[ip + 1] as u32;
            hval = (hval << 8) | input[ip + 2] as u32;
            slots[idx(hval)] = base + ip as u32;
            ip += 1;
            hval = (hval << 8) | input[ip + 2] as u32;
            slots[idx(hval)] = base + ip as u32;
            ip += 1;
        } else {
            if op >= out_end {
                return None;
            }
            lit += 1;
            o[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                o[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
        }
    }
    if op + 3 > out_end {
        return None;
    }
    while ip < in_len {
        lit += 1;
        o[op] = input[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            o[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    o[op - lit - 1] = (lit as u8).wrapping_sub(1); // end run
    op -= usize::from(lit == 0);
    Some(op)
}

/// Decompresses `input`, which must expand to exactly `out_len` bytes (the
/// length stored beside it). `None` when the data is corrupt: a literal or a
/// back reference running past either buffer, a reference before the start,
/// or a different total length. Allocates `out_len` bytes only after the
/// caller has bounded it.
pub fn decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(out_len);
    let mut ip = 0usize;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 1 << 5 {
            let n = ctrl + 1;
            if out.len() + n > out_len {
                return None;
            }
            let lits = input.get(ip..ip + n)?;
            out.extend_from_slice(lits);
            ip += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(ip)? as usize;
                ip += 1;
            }
            len += 2;
            let back = ((ctrl & 0x1f) << 8) + *input.get(ip)? as usize + 1;
            ip += 1;
            if out.len() + len > out_len || back > out.len() {
                return None;
            }
            let from = out.len() - back;
            if back >= len {
                out.extend_from_within(from..from + len);
            } else {
                // Overlapping copy: bytes repeat with period `back`.
                for i in 0..len {
                    let b = out[from + i];
                    out.push(b);
                }
            }
        }
    }
    (out.len() == out_len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let n = compress(data, &mut out, data.len())?;
        assert_eq!(n, out.len());
        assert_eq!(decompress(&out, data.len()).as_deref(), Some(data));
        Some(out)
    }

    /// Bytes produced by upstream 9.1.2 (`DUMP` of the string, LZF blob part).
    #[test]
    fn same_bytes_as_upstream() {
        // DUMP of "aaaa...a" (100 bytes) on the reference: 00 c3 09 40 64 <9 bytes>.
        let a100 = vec![b'a'; 100];
        let mut out = Vec::new();
        compress(&a100, &mut out, 96).unwrap();
        assert_eq!(out, [0x01, 0x61, 0x61, 0xe0, 0x57, 0x00, 0x01, 0x61, 0x61]);
    }

    #[test]
    fn roundtrips() {
        let mut seed = 12345u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for len in [1usize, 2, 3, 4, 20, 21, 33, 100, 1000, 70000] {
            let text: Vec<u8> = (0..len).map(|i| b"abcab"[i % 5]).collect();
            if len > 8 {
                assert!(roundtrip(&text).is_some(), "len {len}");
            }
            let mixed: Vec<u8> = (0..len).map(|_| b'a' + (rnd() % 4) as u8).collect();
            let _ = roundtrip(&mixed);
            let noise: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            let _ = roundtrip(&noise);
        }
        // Incompressible input does not fit in its own length.
        let noise: Vec<u8> = (0..1000).map(|_| rnd() as u8).collect();
        let mut out = vec![7u8];
        assert_eq!(compress(&noise, &mut out, noise.len() - 4), None);
        assert_eq!(out, [7u8]);
    }

    #[test]
    fn corrupt_input_is_refused() {
        let mut out = Vec::new();
        let data = b"hello hello hello hello hello hello".to_vec();
        compress(&data, &mut out, data.len()).unwrap();
        for cut in 0..out.len() {
            assert_eq!(decompress(&out[..cut], data.len()), None);
        }
        assert_eq!(decompress(&out, data.len() - 1), None);
        assert_eq!(decompress(&out, data.len() + 1), None);
        // A back reference before the start.
        assert_eq!(decompress(&[0x20, 0x05], 3), None);
    }
}

#[cfg(test)]
mod upstream_cases {
    /// Compares with DUMP payloads of the reference for the strings in
    /// `tests/fixtures/lzf_cases.txt` (`<hex string> <hex DUMP payload>` lines).
    #[test]
    fn dump_payloads_match() {
        let text = include_str!("../tests/fixtures/lzf_cases.txt");
        let mut checked = 0;
        for line in text.lines() {
            let mut parts = line.split(' ');
            let hex = |s: &str| -> Vec<u8> {
                (0..s.len() / 2)
                    .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
                    .collect()
            };
            let value = hex(parts.next().unwrap());
            let dump = hex(parts.next().unwrap());
            let mut w = crate::encoding::Writer::new();
            w.u8(crate::TYPE_STRING);
            w.string(&value, true);
            assert_eq!(
                &w.buf[..],
                &dump[..dump.len() - 10],
                "value of {} bytes",
                value.len()
            );
            checked += 1;
        }
        assert!(checked > 100);
    }
}
