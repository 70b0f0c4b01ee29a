//! DEBUG helpers (upstream's `debug.c`): the dataset digest of DEBUG DIGEST and
//! DEBUG DIGEST-VALUE.
//!
//! The digest is built from SHA-1 in two ways, as upstream does:
//! - *xor*: `d ^= sha1(data)`, order independent (set members, hash fields, keys);
//! - *mix*: `d = sha1(d ^ sha1(data))`, order dependent (list elements, strings).
//!
//! A key's digest is `mix(key)`, then `mix(type as big-endian u32)`, then the value:
//! strings and list elements are mixed in order; set members are xored; a sorted set
//! member contributes `mix(member), mix(fpconv score)` on a fresh 20-byte block whose
//! SHA-1 is then xored in; a hash field likewise with `mix(field), mix(value)`; a stream
//! mixes every entry's `ms.seq` ID and then each field and value (consumer groups
//! are not part of the digest). A key with a TTL xors in `"!!expire!!"`. The dataset
//! digest xors in the SHA-1 of every key digest of a database after mixing the database index (as a
//! big-endian u32) into the running result; an empty dataset is 20 zero bytes.

use crate::object::ValueRef;
use crate::server::Server;

/// Size of a SHA-1 digest.
pub const DIGEST_LEN: usize = 20;

/// A SHA-1 hasher (FIPS 180-4).
pub struct Sha1 {
    h: [u32; 5],
    buf: [u8; 64],
    buf_len: usize,
    total: u64,
}

impl Default for Sha1 {
    fn default() -> Self {
        Sha1::new()
    }
}

impl Sha1 {
    pub fn new() -> Sha1 {
        Sha1 {
            h: [
                0x6745_2301,
                0xEFCD_AB89,
                0x98BA_DCFE,
                0x1032_5476,
                0xC3D2_E1F0,
            ],
            buf: [0; 64],
            buf_len: 0,
            total: 0,
        }
    }

    fn block(h: &mut [u32; 5], block: &[u8; 64]) {
        let mut w = [0u32; 80];
        for (i, c) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = *h;
        for (i, &wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.buf_len > 0 {
            let take = (64 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 64 {
                return;
            }
            let b = self.buf;
            Sha1::block(&mut self.h, &b);
            self.buf_len = 0;
        }
        let mut chunks = data.chunks_exact(64);
        for c in &mut chunks {
            let mut b = [0u8; 64];
            b.copy_from_slice(c);
            Sha1::block(&mut self.h, &b);
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    pub fn finish(mut self) -> [u8; DIGEST_LEN] {
        let bits = self.total.wrapping_mul(8);
        self.update(&[0x80]);
        while self.buf_len != 56 {
            self.update(&[0]);
        }
        self.update(&bits.to_be_bytes());
        let mut out = [0u8; DIGEST_LEN];
        for (o, h) in out.chunks_exact_mut(4).zip(self.h.iter()) {
            o.copy_from_slice(&h.to_be_bytes());
        }
        out
    }
}

/// SHA-1 of `data`.
pub fn sha1(data: &[u8]) -> [u8; DIGEST_LEN] {
    let mut s = Sha1::new();
    s.update(data);
    s.finish()
}

/// `digest ^= sha1(data)` (upstream's `xorDigest`).
pub fn xor_digest(digest: &mut [u8; DIGEST_LEN], data: &[u8]) {
    let h = sha1(data);
    for (d, x) in digest.iter_mut().zip(h.iter()) {
        *d ^= x;
    }
}

/// `digest = sha1(digest ^ sha1(data))` (upstream's `mixDigest`).
pub fn mix_digest(digest: &mut [u8; DIGEST_LEN], data: &[u8]) {
    xor_digest(digest, data);
    *digest = sha1(&digest[..]);
}

fn mix_i64(digest: &mut [u8; DIGEST_LEN], n: i64) {
    let mut buf = crate::reply::itoa_buf();
    mix_digest(digest, crate::reply::fmt_i64(&mut buf, n));
}

fn xor_i64(digest: &mut [u8; DIGEST_LEN], n: i64) {
    let mut buf = crate::reply::itoa_buf();
    xor_digest(digest, crate::reply::fmt_i64(&mut buf, n));
}

/// The `OBJ_*` type code upstream mixes in.
fn type_code(v: ValueRef<'_>) -> u32 {
    match v {
        ValueRef::Int(_) | ValueRef::Str(_) => 0,
        ValueRef::List(_) => 1,
        ValueRef::Set(_) => 2,
        ValueRef::ZSet(_) => 3,
        ValueRef::Hash(_) => 4,
        ValueRef::Stream(_) => 6,
    }
}

/// Mixes the digest of a value (and its TTL flag) into `digest` (upstream's
/// `xorObjectDigest`). `now` decides which hash fields are expired.
pub fn xor_object_digest(
    digest: &mut [u8; DIGEST_LEN],
    v: ValueRef<'_>,
    has_expire: bool,
    now: i64,
) {
    mix_digest(digest, &type_code(v).to_be_bytes());
    match v {
        ValueRef::Int(n) => mix_i64(digest, n),
        ValueRef::Str(s) => mix_digest(digest, s),
        ValueRef::List(l) => l.for_each_from(0, false, |e| {
            match e {
                crate::types::list::Elem::Int(n) => mix_i64(digest, n),
                crate::types::list::Elem::Str(s) => mix_digest(digest, s),
            }
            true
        }),
        ValueRef::Set(s) => {
            for m in s.iter() {
                match m {
                    crate::types::set::Member::Int(n) => xor_i64(digest, n),
                    crate::types::set::Member::Str(b) => xor_digest(digest, b),
                }
            }
        }
        ValueRef::ZSet(z) => {
            let mut sbuf = [0u8; crate::fpconv::D2STRING_MAX];
            for (m, score) in z.iter_from(0, false) {
                let mut ele = [0u8; DIGEST_LEN];
                crate::types::zset::with_bytes(m, |b| mix_digest(&mut ele, b));
                let n = crate::fpconv::dtoa(score, &mut sbuf);
                mix_digest(&mut ele, &sbuf[..n]);
                xor_digest(digest, &ele);
            }
        }
        ValueRef::Hash(h) => h.for_each(now, |f, val| {
            let mut ele = [0u8; DIGEST_LEN];
            f.with_bytes(|b| mix_digest(&mut ele, b));
            val.with_bytes(|b| mix_digest(&mut ele, b));
            xor_digest(digest, &ele);
        }),
        ValueRef::Stream(st) => {
            use crate::types::stream::StreamId;
            let mut idbuf = Vec::with_capacity(42);
            st.range(StreamId::MIN, StreamId::MAX, false, |id, view| {
                use std::io::Write;
                idbuf.clear();
                let _ = write!(idbuf, "{}.{}", id.ms, id.seq);
                mix_digest(digest, &idbuf);
                for i in 0..view.len() {
                    let (f, val) = view.pair(i);
                    crate::types::zset::with_bytes(f, |b| mix_digest(digest, b));
                    crate::types::zset::with_bytes(val, |b| mix_digest(digest, b));
                }
                true
            });
        }
    }
    if has_expire {
        xor_digest(digest, b"!!expire!!");
    }
}

/// The digest of the whole dataset (DEBUG DIGEST).
pub fn dataset_digest(srv: &Server) -> [u8; DIGEST_LEN] {
    let mut fin = [0u8; DIGEST_LEN];
    let now = srv.mstime;
    for (j, db) in srv.dbs.iter().enumerate() {
        if db.kv.is_empty() {
            continue;
        }
        mix_digest(&mut fin, &(j as u32).to_be_bytes());
        db.kv.for_each(&mut |key, v, exp| {
            let mut d = [0u8; DIGEST_LEN];
            mix_digest(&mut d, key);
            xor_object_digest(&mut d, v, exp.is_some(), now);
            xor_digest(&mut fin, &d);
        });
    }
    fin
}

/// The digest of one key's value, zeros for a missing key (DEBUG DIGEST-VALUE).
/// Logically expired keys still count, as upstream (no lookup, no lazy expiry).
pub fn value_digest(srv: &Server, db: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    let mut d = [0u8; DIGEST_LEN];
    let Some(kv) = srv.dbs.get(db).map(|d| &d.kv) else {
        return d;
    };
    if let Some(v) = kv.get(key) {
        xor_object_digest(&mut d, v, kv.get_expire(key).is_some(), srv.mstime);
    }
    d
}

/// Lower-case hex of a digest, as bytes.
pub fn hex_bytes(d: &[u8; DIGEST_LEN]) -> [u8; 2 * DIGEST_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 2 * DIGEST_LEN];
    for (o, &b) in out.chunks_exact_mut(2).zip(d) {
        o[0] = HEX[(b >> 4) as usize];
        o[1] = HEX[(b & 15) as usize];
    }
    out
}

/// Lower-case hex of a digest.
pub fn hex(d: &[u8; DIGEST_LEN]) -> String {
    // Hex digits are ASCII.
    String::from_utf8_lossy(&hex_bytes(d)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(data: &[u8]) -> String {
        hex(&sha1(data))
    }

    #[test]
    fn sha1_fips_vectors() {
        assert_eq!(h(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(h(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            h(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            h(b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "a49b2446a02c645bf419f995b67091253a04a259"
        );
        let mut s = Sha1::new();
        let chunk = [b'a'; 1000];
        for _ in 0..1000 {
            s.update(&chunk);
        }
        assert_eq!(hex(&s.finish()), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    }

    #[test]
    fn sha1_split_updates() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let whole = sha1(&data);
        for cut in [0, 1, 55, 56, 63, 64, 65, 128, 299] {
            let mut s = Sha1::new();
            s.update(&data[..cut]);
            s.update(&data[cut..]);
            assert_eq!(s.finish(), whole, "cut {cut}");
        }
    }

    #[test]
    fn mix_is_order_dependent_xor_is_not() {
        let mut a = [0u8; DIGEST_LEN];
        let mut b = [0u8; DIGEST_LEN];
        xor_digest(&mut a, b"x");
        xor_digest(&mut a, b"y");
        xor_digest(&mut b, b"y");
        xor_digest(&mut b, b"x");
        assert_eq!(a, b);
        let mut a = [0u8; DIGEST_LEN];
        let mut b = [0u8; DIGEST_LEN];
        mix_digest(&mut a, b"x");
        mix_digest(&mut a, b"y");
        mix_digest(&mut b, b"y");
        mix_digest(&mut b, b"x");
        assert_ne!(a, b);
    }
}
