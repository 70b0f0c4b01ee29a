//! Encrypted private keys (`tls-key-file-pass`, `tls-client-key-file-pass`): PKCS#8
//! `ENCRYPTED PRIVATE KEY` PEM with PBES2 (PBKDF2 with HMAC-SHA1/SHA-224/SHA-256/SHA-384/
//! SHA-512, AES-128/192/256-CBC), what `openssl genpkey -aes-256-cbc` and `openssl pkcs8
//! -topk8 -v2 aes-256-cbc` write. PBKDF2 and HMAC come from *ring*; ring has no raw AES,
//! so AES-CBC decryption is here (FIPS-197, decryption only, used once per key load: a
//! few hundred bytes, speed irrelevant). Legacy OpenSSL `Proc-Type: 4,ENCRYPTED` keys
//! (an MD5-based KDF) are refused with a hint to convert them.

use std::num::NonZeroU32;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::der_next;

/// Upper bound on the PBKDF2 iteration count a file may ask for (OpenSSL writes 2048;
/// a hostile file must not stall the server for minutes).
const MAX_ITERATIONS: u32 = 10_000_000;

const PEM_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const PEM_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// What kind of key a PEM file holds, as far as encryption goes.
pub enum KeyKind {
    /// Not encrypted: parse it as usual.
    Plain,
    /// PKCS#8 EncryptedPrivateKeyInfo, the DER.
    Pkcs8Encrypted(Vec<u8>),
    /// OpenSSL's legacy PEM encryption.
    LegacyEncrypted,
}

pub fn classify(path: &str, data: &[u8]) -> Result<KeyKind, String> {
    let text = String::from_utf8_lossy(data);
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Ok(KeyKind::LegacyEncrypted);
    }
    let Some(start) = text.find(PEM_BEGIN) else {
        return Ok(KeyKind::Plain);
    };
    let body = &text[start + PEM_BEGIN.len()..];
    let Some(end) = body.find(PEM_END) else {
        return Err(format!(
            "{}: unterminated ENCRYPTED PRIVATE KEY block",
            path
        ));
    };
    let der = base64_decode(&body[..end])
        .ok_or_else(|| format!("{}: bad base64 in the ENCRYPTED PRIVATE KEY block", path))?;
    Ok(KeyKind::Pkcs8Encrypted(der))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    let mut pad = 0;
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        if pad > 0 {
            return None; // data after padding
        }
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if pad > 2 {
        return None;
    }
    Some(out)
}

// OIDs (DER contents).
const OID_PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
const OID_PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
const OID_HMAC_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07];
const OID_HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
const OID_HMAC_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0a];
const OID_HMAC_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0b];
const OID_AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
const OID_AES192_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

const TAG_SEQ: u8 = 0x30;
const TAG_OID: u8 = 0x06;
const TAG_OCTETS: u8 = 0x04;
const TAG_INT: u8 = 0x02;

fn expect<'a>(b: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    match der_next(b) {
        Some((t, body, rest)) if t == tag => Ok((body, rest)),
        _ => Err(format!("malformed encrypted key ({})", what)),
    }
}

fn der_uint(b: &[u8]) -> Option<u32> {
    let b = match b {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => b,
    };
    if b.is_empty() || b.len() > 4 || b[0] & 0x80 != 0 {
        return None;
    }
    Some(b.iter().fold(0u32, |a, &x| (a << 8) | x as u32))
}

/// Decrypts a PKCS#8 EncryptedPrivateKeyInfo with `pass`. Errors name what failed; a
/// wrong password shows as bad padding or a decrypted blob that is not a key.
pub fn decrypt_pkcs8(der: &[u8], pass: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    let (epki, _) = expect(der, TAG_SEQ, "EncryptedPrivateKeyInfo")?;
    let (alg, rest) = expect(epki, TAG_SEQ, "encryptionAlgorithm")?;
    let (data, _) = expect(rest, TAG_OCTETS, "encryptedData")?;
    let (oid, params) = expect(alg, TAG_OID, "algorithm")?;
    if oid != OID_PBES2 {
        return Err(
            "unsupported key encryption (only PKCS#8 v2 / PBES2 is supported: convert with \
             openssl pkcs8 -topk8 -v2 aes-256-cbc)"
                .into(),
        );
    }
    let (pbes2, _) = expect(params, TAG_SEQ, "PBES2-params")?;
    let (kdf, rest) = expect(pbes2, TAG_SEQ, "keyDerivationFunc")?;
    let (enc, _) = expect(rest, TAG_SEQ, "encryptionScheme")?;
    let (kdf_oid, kdf_params) = expect(kdf, TAG_OID, "KDF")?;
    if kdf_oid != OID_PBKDF2 {
        return Err("unsupported key derivation (only PBKDF2 is supported)".into());
    }
    let (kp, _) = expect(kdf_params, TAG_SEQ, "PBKDF2-params")?;
    let (salt, rest) = expect(kp, TAG_OCTETS, "salt")?;
    let (iter, mut rest) = expect(rest, TAG_INT, "iterationCount")?;
    let iterations = der_uint(iter)
        .filter(|&n| (1..=MAX_ITERATIONS).contains(&n))
        .and_then(NonZeroU32::new)
        .ok_or("unsupported PBKDF2 iteration count")?;
    let mut key_len = None;
    let mut prf = &ring::pbkdf2::PBKDF2_HMAC_SHA1;
    while !rest.is_empty() {
        let (tag, body, r) = der_next(rest).ok_or("malformed encrypted key (PBKDF2-params)")?;
        rest = r;
        match tag {
            TAG_INT => key_len = Some(der_uint(body).ok_or("bad PBKDF2 key length")? as usize),
            TAG_SEQ => {
                let (p, _) = expect(body, TAG_OID, "PRF")?;
                prf = match p {
                    x if x == OID_HMAC_SHA1 => &ring::pbkdf2::PBKDF2_HMAC_SHA1,
                    x if x == OID_HMAC_SHA256 => &ring::pbkdf2::PBKDF2_HMAC_SHA256,
                    x if x == OID_HMAC_SHA384 => &ring::pbkdf2::PBKDF2_HMAC_SHA384,
                    x if x == OID_HMAC_SHA512 => &ring::pbkdf2::PBKDF2_HMAC_SHA512,
                    _ => return Err("unsupported PBKDF2 PRF (HMAC-SHA1/256/384/512 only)".into()),
                };
            }
            _ => return Err("malformed encrypted key (PBKDF2-params)".into()),
        }
    }
    let (enc_oid, enc_params) = expect(enc, TAG_OID, "cipher")?;
    let klen = match enc_oid {
        x if x == OID_AES128_CBC => 16,
        x if x == OID_AES192_CBC => 24,
        x if x == OID_AES256_CBC => 32,
        _ => return Err("unsupported key cipher (AES-128/192/256-CBC only)".into()),
    };
    if key_len.is_some_and(|k| k != klen) {
        return Err("PBKDF2 key length does not match the cipher".into());
    }
    let (iv, _) = expect(enc_params, TAG_OCTETS, "IV")?;
    if iv.len() != 16 || data.is_empty() || data.len() % 16 != 0 {
        return Err("malformed encrypted key (IV or data length)".into());
    }
    let mut key = [0u8; 32];
    ring::pbkdf2::derive(*prf, iterations, salt, pass, &mut key[..klen]);
    let aes = Aes::new(&key[..klen]);
    let mut out = data.to_vec();
    let mut prev = [0u8; 16];
    prev.copy_from_slice(iv);
    for block in out.chunks_exact_mut(16) {
        let mut ct = [0u8; 16];
        ct.copy_from_slice(block);
        let mut b = ct;
        aes.decrypt_block(&mut b);
        for i in 0..16 {
            block[i] = b[i] ^ prev[i];
        }
        prev = ct;
    }
    key.fill(0);
    // PKCS#7 padding, then exactly one DER SEQUENCE: anything else is a wrong password.
    let wrong = || "wrong password (tls-key-file-pass) or corrupt key".to_string();
    let pad = *out.last().ok_or_else(wrong)? as usize;
    if pad == 0 || pad > 16 || out[out.len() - pad..].iter().any(|&b| b as usize != pad) {
        out.fill(0);
        return Err(wrong());
    }
    out.truncate(out.len() - pad);
    match der_next(&out) {
        Some((TAG_SEQ, _, [])) => Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(out))),
        _ => {
            out.fill(0);
            Err(wrong())
        }
    }
}

// ---------------------------------------------------------------------------------------
// AES (FIPS-197), decryption only.

struct Aes {
    /// Round keys, 16 bytes each, Nr + 1 of them.
    rk: Vec<[u8; 16]>,
    inv_sbox: [u8; 256],
}

fn xtime(x: u8) -> u8 {
    (x << 1) ^ if x & 0x80 != 0 { 0x1b } else { 0 }
}

fn gmul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        a = xtime(a);
        b >>= 1;
    }
    p
}

/// The S-box, computed: the multiplicative inverse in GF(2^8) then the affine map.
fn sbox() -> [u8; 256] {
    let mut s = [0u8; 256];
    for (x, out) in s.iter_mut().enumerate() {
        // x^254 is the inverse (0 maps to 0).
        let mut inv = 1u8;
        let mut base = x as u8;
        let mut e = 254u32;
        while e > 0 {
            if e & 1 != 0 {
                inv = gmul(inv, base);
            }
            base = gmul(base, base);
            e >>= 1;
        }
        if x == 0 {
            inv = 0;
        }
        let b = inv;
        *out = b ^ b.rotate_left(1) ^ b.rotate_left(2) ^ b.rotate_left(3) ^ b.rotate_left(4) ^ 0x63;
    }
    s
}

impl Aes {
    fn new(key: &[u8]) -> Aes {
        let s = sbox();
        let mut inv_sbox = [0u8; 256];
        for (i, &v) in s.iter().enumerate() {
            inv_sbox[v as usize] = i as u8;
        }
        let nk = key.len() / 4;
        let nr = nk + 6;
        let total = 4 * (nr + 1);
        let mut w: Vec<[u8; 4]> = key
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect();
        let mut rcon = 1u8;
        for i in nk..total {
            let mut t = w[i - 1];
            if i % nk == 0 {
                t = [
                    s[t[1] as usize],
                    s[t[2] as usize],
                    s[t[3] as usize],
                    s[t[0] as usize],
                ];
                t[0] ^= rcon;
                rcon = xtime(rcon);
            } else if nk > 6 && i % nk == 4 {
                t = [
                    s[t[0] as usize],
                    s[t[1] as usize],
                    s[t[2] as usize],
                    s[t[3] as usize],
                ];
            }
            let p = w[i - nk];
            w.push([p[0] ^ t[0], p[1] ^ t[1], p[2] ^ t[2], p[3] ^ t[3]]);
        }
        let rk = w
            .chunks_exact(4)
            .map(|c| {
                let mut k = [0u8; 16];
                for (j, word) in c.iter().enumerate() {
                    k[4 * j..4 * j + 4].copy_from_slice(word);
                }
                k
            })
            .collect();
        Aes { rk, inv_sbox }
    }

    /// The inverse cipher on one block (state in column-major order, as the bytes).
    fn decrypt_block(&self, st: &mut [u8; 16]) {
        let nr = self.rk.len() - 1;
        xor(st, &self.rk[nr]);
        for round in (0..nr).rev() {
            // InvShiftRows: row r rotates right by r.
            let old = *st;
            for c in 0..4 {
                for r in 0..4 {
                    st[4 * ((c + r) % 4) + r] = old[4 * c + r];
                }
            }
            for b in st.iter_mut() {
                *b = self.inv_sbox[*b as usize];
            }
            xor(st, &self.rk[round]);
            if round > 0 {
                for c in 0..4 {
                    let a = [st[4 * c], st[4 * c + 1], st[4 * c + 2], st[4 * c + 3]];
                    for r in 0..4 {
                        st[4 * c + r] = gmul(a[r], 14)
                            ^ gmul(a[(r + 1) % 4], 11)
                            ^ gmul(a[(r + 2) % 4], 13)
                            ^ gmul(a[(r + 3) % 4], 9);
                    }
                }
            }
        }
    }
}

fn xor(st: &mut [u8; 16], k: &[u8; 16]) {
    for i in 0..16 {
        st[i] ^= k[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn fips197_vectors() {
        // FIPS-197 appendix C: plaintext 00112233..ff under keys 000102..; the
        // ciphertexts decrypt back.
        let pt = hex("00112233445566778899aabbccddeeff");
        for (key, ct) in [
            (
                "000102030405060708090a0b0c0d0e0f",
                "69c4e0d86a7b0430d8cdb78070b4c55a",
            ),
            (
                "000102030405060708090a0b0c0d0e0f1011121314151617",
                "dda97ca4864cdfe06eaf70a0ec0d7191",
            ),
            (
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "8ea2b7ca516745bfeafc49904b496089",
            ),
        ] {
            let aes = Aes::new(&hex(key));
            let mut b = [0u8; 16];
            b.copy_from_slice(&hex(ct));
            aes.decrypt_block(&mut b);
            assert_eq!(b.to_vec(), pt, "key {}", key);
        }
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVs\nbG8h").unwrap(), b"hello!");
        assert!(base64_decode("aGV*").is_none());
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..80 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 53 + 0x30) as u8).collect();
            assert!(decrypt_pkcs8(&junk, b"x").is_err());
        }
    }
}
