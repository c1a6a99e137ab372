//! PKCS#12 encoding in go-pkcs12's `Modern` layout, which ESO's `pemToPkcs12`,
//! `fullPemToPkcs12` and `pemTruststoreToPKCS12` write: certificates in a PBES2-encrypted
//! SafeContents, the key in a PBES2-shrouded key bag, PBKDF2-HMAC-SHA256 and AES-256-CBC
//! with 2048 iterations and 16-byte salts, and an HMAC-SHA256 MAC. Java keytool and OpenSSL 3
//! read these files. Salts and IVs come from the caller (the host's CSPRNG through WASI).

use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use hmac::{Mac, SimpleHmac};
use sha2::Sha256;
use yasna::models::ObjectIdentifier;
use yasna::{DERWriter, Tag};
use zeroize::Zeroizing;

use crate::Error;
use crate::pkcs12::{bmp_string, pkcs12_kdf};

const ITERATIONS: u32 = 2048;
const SALT_LEN: usize = 16;

const DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 1];
const ENCRYPTED_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 6];
const CERT_BAG: &[u64] = &[1, 2, 840, 113_549, 1, 12, 10, 1, 3];
const SHROUDED_KEY_BAG: &[u64] = &[1, 2, 840, 113_549, 1, 12, 10, 1, 2];
const X509_CERT: &[u64] = &[1, 2, 840, 113_549, 1, 9, 22, 1];
const LOCAL_KEY_ID: &[u64] = &[1, 2, 840, 113_549, 1, 9, 21];
const FRIENDLY_NAME: &[u64] = &[1, 2, 840, 113_549, 1, 9, 20];
const JAVA_TRUSTED_USAGE: &[u64] = &[2, 16, 840, 1, 113_894, 746_875, 1, 1];
const ANY_EXTENDED_KEY_USAGE: &[u64] = &[2, 5, 29, 37, 0];
const PBES2: &[u64] = &[1, 2, 840, 113_549, 1, 5, 13];
const PBKDF2: &[u64] = &[1, 2, 840, 113_549, 1, 5, 12];
const HMAC_SHA256: &[u64] = &[1, 2, 840, 113_549, 2, 9];
const AES256_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 42];
const SHA256_OID: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];

fn oid(a: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(a)
}

/// Random bytes for salts and IVs.
pub type Random<'a> = &'a mut dyn FnMut(&mut [u8]);

fn random_vec(rand: &mut dyn FnMut(&mut [u8]), n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand(&mut v);
    v
}

/// A bag attribute: OID and a SET holding one DER value.
struct Attribute {
    id: &'static [u64],
    value: Vec<u8>,
}

fn write_attributes(w: DERWriter<'_>, attrs: &[Attribute]) {
    w.write_set(|w| {
        for a in attrs {
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(a.id));
                w.next().write_set(|w| w.next().write_der(&a.value));
            });
        }
    });
}

fn safe_bag(w: DERWriter<'_>, id: &[u64], value: &[u8], attrs: &[Attribute]) {
    w.write_sequence(|w| {
        w.next().write_oid(&oid(id));
        w.next()
            .write_tagged(Tag::context(0), |w| w.write_der(value));
        if !attrs.is_empty() {
            write_attributes(w.next(), attrs);
        }
    });
}

fn cert_bag_value(cert: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_oid(&oid(X509_CERT));
            w.next()
                .write_tagged(Tag::context(0), |w| w.write_bytes(cert));
        })
    })
}

/// PBES2 parameters and the ciphertext of `plain` under `password` (UTF-8, as PBES2 wants).
fn pbes2_encrypt(
    plain: &[u8],
    password: &[u8],
    rand: &mut dyn FnMut(&mut [u8]),
) -> (Vec<u8>, Vec<u8>) {
    let salt = random_vec(rand, SALT_LEN);
    let iv = random_vec(rand, 16);
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(password, &salt, ITERATIONS, &mut *key);
    let ct = cbc::Encryptor::<aes::Aes256>::new_from_slices(&*key, &iv)
        .expect("AES-256 key and IV sizes")
        .encrypt_padded_vec_mut::<Pkcs7>(plain);
    let alg = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_oid(&oid(PBES2));
            w.next().write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(PBKDF2));
                    w.next().write_sequence(|w| {
                        w.next().write_bytes(&salt);
                        w.next().write_u32(ITERATIONS);
                        // Go writes the PRF identifier with NULL parameters.
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&oid(HMAC_SHA256));
                            w.next().write_null();
                        });
                    });
                });
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(AES256_CBC));
                    w.next().write_bytes(&iv);
                });
            });
        })
    });
    (alg, ct)
}

/// A ContentInfo holding SafeContents: encrypted (certificates) or plain (the shrouded key).
fn safe_contents(bags: &[u8], encrypt: Option<(&[u8], Random<'_>)>) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| match encrypt {
            None => {
                w.next().write_oid(&oid(DATA));
                w.next()
                    .write_tagged(Tag::context(0), |w| w.write_bytes(bags));
            }
            Some((password, rand)) => {
                let (alg, ct) = pbes2_encrypt(bags, password, rand);
                w.next().write_oid(&oid(ENCRYPTED_DATA));
                w.next().write_tagged(Tag::context(0), |w| {
                    w.write_sequence(|w| {
                        w.next().write_u8(0);
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&oid(DATA));
                            w.next().write_der(&alg);
                            w.next()
                                .write_tagged_implicit(Tag::context(0), |w| w.write_bytes(&ct));
                        });
                    })
                });
            }
        })
    })
}

fn pfx(contents: &[Vec<u8>], password: &str, rand: &mut dyn FnMut(&mut [u8])) -> Vec<u8> {
    let auth_safe = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for c in contents {
                w.next().write_der(c);
            }
        })
    });
    let salt = random_vec(rand, SALT_LEN);
    let bmp = Zeroizing::new(bmp_string(password));
    let key = pkcs12_kdf::<Sha256>(&bmp, &salt, u64::from(ITERATIONS), 3, 32);
    let mut mac = <SimpleHmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&key)
        .expect("HMAC takes any key length");
    mac.update(&auth_safe);
    let digest = mac.finalize().into_bytes();
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(3);
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(DATA));
                w.next()
                    .write_tagged(Tag::context(0), |w| w.write_bytes(&auth_safe));
            });
            w.next().write_sequence(|w| {
                w.next().write_sequence(|w| {
                    // Go writes the MAC's digest identifier without parameters.
                    w.next()
                        .write_sequence(|w| w.next().write_oid(&oid(SHA256_OID)));
                    w.next().write_bytes(&digest);
                });
                w.next().write_bytes(&salt);
                w.next().write_u32(ITERATIONS);
            });
        })
    })
}

/// A key (PKCS#8 DER) with its certificate and CA certificates (DER), as go-pkcs12's
/// `Modern.Encode` writes them.
pub fn encode(
    key_pkcs8: &[u8],
    cert: &[u8],
    ca_certs: &[Vec<u8>],
    password: &str,
    rand: Random<'_>,
) -> Result<Vec<u8>, Error> {
    use sha1::Digest as _;
    let fingerprint = sha1::Sha1::digest(cert);
    let local_key_id = || Attribute {
        id: LOCAL_KEY_ID,
        value: yasna::construct_der(|w| w.write_bytes(&fingerprint)),
    };
    let cert_bags = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            safe_bag(w.next(), CERT_BAG, &cert_bag_value(cert), &[local_key_id()]);
            for ca in ca_certs {
                safe_bag(w.next(), CERT_BAG, &cert_bag_value(ca), &[]);
            }
        })
    });
    let (alg, ct) = pbes2_encrypt(key_pkcs8, password.as_bytes(), rand);
    let shrouded = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&alg);
            w.next().write_bytes(&ct);
        })
    });
    let key_bags = yasna::construct_der(|w| {
        w.write_sequence(|w| safe_bag(w.next(), SHROUDED_KEY_BAG, &shrouded, &[local_key_id()]))
    });
    let contents = vec![
        safe_contents(&cert_bags, Some((password.as_bytes(), &mut *rand))),
        safe_contents(&key_bags, None),
    ];
    Ok(pfx(&contents, password, rand))
}

/// A trust store: certificates marked trusted for any purpose (Java's attribute), each named
/// by its subject, as go-pkcs12's `Modern.EncodeTrustStore` writes them.
pub fn encode_trust_store(
    certs: &[(Vec<u8>, String)],
    password: &str,
    rand: Random<'_>,
) -> Result<Vec<u8>, Error> {
    let bags = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for (der, name) in certs {
                let mut attrs = vec![Attribute {
                    id: JAVA_TRUSTED_USAGE,
                    value: yasna::construct_der(|w| w.write_oid(&oid(ANY_EXTENDED_KEY_USAGE))),
                }];
                if !name.is_empty() {
                    attrs.push(Attribute {
                        id: FRIENDLY_NAME,
                        value: yasna::construct_der(|w| w.write_bmp_string(name)),
                    });
                }
                safe_bag(w.next(), CERT_BAG, &cert_bag_value(der), &attrs);
            }
        })
    });
    let contents = vec![safe_contents(
        &bags,
        Some((password.as_bytes(), &mut *rand)),
    )];
    Ok(pfx(&contents, password, rand))
}
