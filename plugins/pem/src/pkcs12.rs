//! PKCS#12 (`.p12`/`.pfx`) decoding: the private key and the certificates, with or without a
//! password.
//!
//! The `p12` crate parses the container and decrypts the legacy algorithms (3DES/RC2 with
//! SHA-1), but OpenSSL 3 and Java 17 write PBES2 (PBKDF2 + AES-CBC) with a SHA-256 MAC by
//! default, which it does not decrypt. ESO (through go-pkcs12) reads both, so we walk the
//! container ourselves with `p12`'s types and decrypt PBES2 and verify SHA-2 MACs here.
//! The MAC is checked first: it is what tells a wrong password apart from a corrupt file.

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use hmac::{Mac, SimpleHmac};
use p12::{AlgorithmIdentifier, ContentInfo, PFX, SafeBag, SafeBagKind};
use sha2::{Digest, Sha256, Sha384, Sha512};
use yasna::models::ObjectIdentifier;
use zeroize::Zeroizing;

use crate::Error;

const OID_PBES2: &[u64] = &[1, 2, 840, 113_549, 1, 5, 13];
const OID_PBKDF2: &[u64] = &[1, 2, 840, 113_549, 1, 5, 12];
const OID_HMAC_SHA1: &[u64] = &[1, 2, 840, 113_549, 2, 7];
const OID_HMAC_SHA256: &[u64] = &[1, 2, 840, 113_549, 2, 9];
const OID_HMAC_SHA384: &[u64] = &[1, 2, 840, 113_549, 2, 10];
const OID_HMAC_SHA512: &[u64] = &[1, 2, 840, 113_549, 2, 11];
const OID_AES128_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 2];
const OID_AES192_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 22];
const OID_AES256_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 42];
const OID_SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const OID_SHA384: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 2];
const OID_SHA512: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 3];
const OID_KEY_BAG: &[u64] = &[1, 2, 840, 113_549, 1, 12, 10, 1, 1];

/// PBKDF2 iteration counts beyond this are refused: a hostile file could otherwise pin the
/// plugin until its deadline. OpenSSL writes 2048, Java 10000; go-pkcs12's Modern 2048.
const MAX_ITERATIONS: u64 = 10_000_000;

/// What a PKCS#12 file holds.
pub struct Pkcs12 {
    /// Private keys as PKCS#8 `PrivateKeyInfo` DER, in file order.
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    /// Certificates as DER, in file order.
    pub certs: Vec<Vec<u8>>,
}

/// Decodes a PKCS#12 file with `password` ("" for none).
pub fn decode(der: &[u8], password: &str) -> Result<Pkcs12, Error> {
    let pfx = PFX::parse(der).map_err(|_| Error::Pkcs12("input is not a PKCS#12 file".into()))?;
    let bmp = Zeroizing::new(bmp_string(password));
    verify_mac(&pfx, password, &bmp)?;
    let auth_safe = match &pfx.auth_safe {
        ContentInfo::Data(d) => d.clone(),
        _ => {
            return Err(Error::Pkcs12(
                "public-key integrity mode (signed PKCS#12) is not supported".into(),
            ));
        }
    };
    let contents = yasna::parse_der(&auth_safe, |r| r.collect_sequence_of(ContentInfo::parse))
        .map_err(|_| Error::Pkcs12("malformed authenticated safe".into()))?;
    let mut out = Pkcs12 {
        keys: Vec::new(),
        certs: Vec::new(),
    };
    for content in &contents {
        let plain = match content {
            ContentInfo::Data(d) => Zeroizing::new(d.clone()),
            ContentInfo::EncryptedData(e) => decrypt(
                &e.encrypted_content_info.content_encryption_algorithm,
                &e.encrypted_content_info.encrypted_content,
                password,
                &bmp,
            )?,
            ContentInfo::OtherContext(_) => continue,
        };
        let bags = yasna::parse_der(&plain, |r| r.collect_sequence_of(SafeBag::parse))
            .map_err(|_| Error::Pkcs12("malformed safe contents".into()))?;
        for bag in bags {
            match &bag.bag {
                SafeBagKind::Pkcs8ShroudedKeyBag(k) => {
                    out.keys.push(decrypt(
                        &k.encryption_algorithm,
                        &k.encrypted_data,
                        password,
                        &bmp,
                    )?);
                }
                SafeBagKind::CertBag(_) => {
                    if let Some(c) = bag.bag.get_x509_cert() {
                        out.certs.push(c);
                    }
                }
                SafeBagKind::OtherBagKind(o) if oid_is(&o.bag_id, OID_KEY_BAG) => {
                    out.keys.push(Zeroizing::new(o.bag_value.clone()));
                }
                SafeBagKind::OtherBagKind(_) => {}
            }
        }
    }
    Ok(out)
}

/// The password as PKCS#12's KDF wants it: UTF-16BE with a terminating NUL.
pub(crate) fn bmp_string(s: &str) -> Vec<u8> {
    let mut out: Vec<u8> = s.encode_utf16().flat_map(u16::to_be_bytes).collect();
    out.extend([0, 0]);
    out
}

fn oid_is(oid: &ObjectIdentifier, want: &[u64]) -> bool {
    oid.components().as_slice() == want
}

fn wrong_password() -> Error {
    Error::Pkcs12("decryption password incorrect".into())
}

fn verify_mac(pfx: &PFX, password: &str, bmp: &[u8]) -> Result<(), Error> {
    let Some(mac) = &pfx.mac_data else {
        return Ok(());
    };
    let ContentInfo::Data(data) = &pfx.auth_safe else {
        return Ok(());
    };
    if mac.iterations as u64 > MAX_ITERATIONS {
        return Err(Error::Pkcs12("MAC iteration count is too high".into()));
    }
    let ok = match &mac.mac.digest_algorithm {
        AlgorithmIdentifier::Sha1 => pfx.verify_mac(password),
        AlgorithmIdentifier::OtherAlg(o) if oid_is(&o.algorithm_type, OID_SHA256) => {
            mac_ok::<Sha256>(bmp, &mac.salt, mac.iterations.into(), data, &mac.mac.digest)
        }
        AlgorithmIdentifier::OtherAlg(o) if oid_is(&o.algorithm_type, OID_SHA384) => {
            mac_ok::<Sha384>(bmp, &mac.salt, mac.iterations.into(), data, &mac.mac.digest)
        }
        AlgorithmIdentifier::OtherAlg(o) if oid_is(&o.algorithm_type, OID_SHA512) => {
            mac_ok::<Sha512>(bmp, &mac.salt, mac.iterations.into(), data, &mac.mac.digest)
        }
        _ => return Err(Error::Pkcs12("unsupported MAC algorithm".into())),
    };
    if ok { Ok(()) } else { Err(wrong_password()) }
}

fn mac_ok<D>(bmp: &[u8], salt: &[u8], iterations: u64, data: &[u8], expected: &[u8]) -> bool
where
    D: Digest + hmac::digest::core_api::BlockSizeUser + Clone,
{
    let size = <D as Digest>::output_size();
    let key = pkcs12_kdf::<D>(bmp, salt, iterations, 3, size);
    let Ok(mut m) = <SimpleHmac<D> as hmac::digest::KeyInit>::new_from_slice(&key) else {
        return false;
    };
    m.update(data);
    m.verify_slice(expected).is_ok()
}

/// RFC 7292 appendix B.2 key derivation, generic over the hash (the MAC of SHA-2 files).
pub(crate) fn pkcs12_kdf<D>(
    bmp: &[u8],
    salt: &[u8],
    iterations: u64,
    id: u8,
    size: usize,
) -> Zeroizing<Vec<u8>>
where
    D: Digest + hmac::digest::core_api::BlockSizeUser,
{
    let u = <D as Digest>::output_size();
    let v = <D as hmac::digest::core_api::BlockSizeUser>::block_size();
    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let len = v * src.len().div_ceil(v);
        src.iter().copied().cycle().take(len).collect()
    };
    let d = vec![id; v];
    let mut i = Zeroizing::new([fill(salt), fill(bmp)].concat());
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    while out.len() < size {
        let mut a = D::new().chain_update(&d).chain_update(&*i).finalize();
        for _ in 1..iterations {
            a = D::digest(&a);
        }
        let take = u.min(size - out.len());
        out.extend_from_slice(&a[..take]);
        if out.len() >= size {
            break;
        }
        let b: Vec<u8> = a.iter().copied().cycle().take(v).collect();
        for chunk in i.chunks_mut(v) {
            // chunk = (chunk + b + 1) mod 2^(8v), big-endian.
            let mut carry = 1u16;
            for k in (0..v).rev() {
                let sum = chunk[k] as u16 + b[k] as u16 + carry;
                chunk[k] = sum as u8;
                carry = sum >> 8;
            }
        }
    }
    out
}

fn decrypt(
    alg: &AlgorithmIdentifier,
    data: &[u8],
    password: &str,
    bmp: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    match alg {
        AlgorithmIdentifier::OtherAlg(o) if oid_is(&o.algorithm_type, OID_PBES2) => {
            let params = o
                .params
                .as_deref()
                .ok_or_else(|| Error::Pkcs12("PBES2 without parameters".into()))?;
            pbes2_decrypt(params, data, password.as_bytes())
        }
        AlgorithmIdentifier::OtherAlg(_) | AlgorithmIdentifier::Sha1 => {
            Err(Error::Pkcs12("unsupported encryption algorithm".into()))
        }
        legacy => {
            if let AlgorithmIdentifier::PbeWithSHAAnd3KeyTripleDESCBC(p)
            | AlgorithmIdentifier::PbewithSHAAnd40BitRC2CBC(p) = legacy
                && p.iterations > MAX_ITERATIONS
            {
                return Err(Error::Pkcs12(
                    "encryption iteration count is too high".into(),
                ));
            }
            legacy
                .decrypt_pbe(data, bmp)
                .map(Zeroizing::new)
                .ok_or_else(wrong_password)
        }
    }
}

struct Pbes2 {
    salt: Vec<u8>,
    iterations: u64,
    prf: Vec<u64>,
    cipher: Vec<u64>,
    iv: Vec<u8>,
}

fn parse_pbes2(params: &[u8]) -> Result<Pbes2, yasna::ASN1Error> {
    yasna::parse_der(params, |r| {
        r.read_sequence(|r| {
            let (salt, iterations, prf) = r.next().read_sequence(|r| {
                let oid = r.next().read_oid()?;
                if oid.components().as_slice() != OID_PBKDF2 {
                    return Err(yasna::ASN1Error::new(yasna::ASN1ErrorKind::Invalid));
                }
                r.next().read_sequence(|r| {
                    let salt = r.next().read_bytes()?;
                    let iterations = r.next().read_u64()?;
                    let _key_len = r.read_optional(|r| r.read_u64())?;
                    let prf = r
                        .read_optional(|r| {
                            r.read_sequence(|r| {
                                let oid = r.next().read_oid()?;
                                r.read_optional(|r| r.read_null())?;
                                Ok(oid.components().clone())
                            })
                        })?
                        .unwrap_or_else(|| OID_HMAC_SHA1.to_vec());
                    Ok((salt, iterations, prf))
                })
            })?;
            let (cipher, iv) = r.next().read_sequence(|r| {
                let oid = r.next().read_oid()?;
                let iv = r.next().read_bytes()?;
                Ok((oid.components().clone(), iv))
            })?;
            Ok(Pbes2 {
                salt,
                iterations,
                prf,
                cipher,
                iv,
            })
        })
    })
}

fn pbes2_decrypt(params: &[u8], data: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    let p =
        parse_pbes2(params).map_err(|_| Error::Pkcs12("unsupported PBES2 parameters".into()))?;
    if p.iterations > MAX_ITERATIONS || p.iterations == 0 {
        return Err(Error::Pkcs12("PBKDF2 iteration count out of range".into()));
    }
    let key_len = match p.cipher.as_slice() {
        OID_AES128_CBC => 16,
        OID_AES192_CBC => 24,
        OID_AES256_CBC => 32,
        _ => {
            return Err(Error::Pkcs12(
                "unsupported PBES2 cipher (AES-CBC expected)".into(),
            ));
        }
    };
    let mut key = Zeroizing::new(vec![0u8; key_len]);
    let rounds = p.iterations as u32;
    match p.prf.as_slice() {
        OID_HMAC_SHA1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, &p.salt, rounds, &mut key),
        OID_HMAC_SHA256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, &p.salt, rounds, &mut key),
        OID_HMAC_SHA384 => pbkdf2::pbkdf2_hmac::<Sha384>(password, &p.salt, rounds, &mut key),
        OID_HMAC_SHA512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, &p.salt, rounds, &mut key),
        _ => return Err(Error::Pkcs12("unsupported PBKDF2 hash".into())),
    }
    if p.iv.len() != 16 {
        return Err(Error::Pkcs12("PBES2 IV must be 16 bytes".into()));
    }
    let plain = match key_len {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &p.iv)
            .map_err(|_| wrong_password())?
            .decrypt_padded_vec_mut::<Pkcs7>(data),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, &p.iv)
            .map_err(|_| wrong_password())?
            .decrypt_padded_vec_mut::<Pkcs7>(data),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &p.iv)
            .map_err(|_| wrong_password())?
            .decrypt_padded_vec_mut::<Pkcs7>(data),
    };
    plain.map(Zeroizing::new).map_err(|_| wrong_password())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmp_password_is_utf16_with_terminator() {
        assert_eq!(bmp_string("ab"), vec![0, b'a', 0, b'b', 0, 0]);
        assert_eq!(bmp_string(""), vec![0, 0]);
    }

    #[test]
    fn garbage_is_not_a_pkcs12_file() {
        let err = decode(b"definitely not der", "").err().unwrap().to_string();
        assert!(err.contains("not a PKCS#12"), "{err}");
    }
}
