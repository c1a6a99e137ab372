//! sprig's crypto functions (sprig's `crypto.go`) that make sense in a template: `adler32sum`,
//! bcrypt, AES-CBC and `derivePassword` (the key and certificate generators are left out, see
//! `KEYS` in the table).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::funcs::{FnError, FnResult, call_err, i_arg, random_bytes, s_arg, t_arg};
use crate::value::Value;

pub(super) fn adler32(b: &[u8]) -> u32 {
    let (mut a, mut s) = (1u32, 0u32);
    for &x in b {
        a = (a + u32::from(x)) % 65521;
        s = (s + a) % 65521;
    }
    (s << 16) | a
}

pub(super) fn bcrypt_hash(pw: &[u8]) -> Result<String, FnError> {
    let salt: [u8; 16] = random_bytes(16)?.try_into().expect("16 bytes");
    // bcrypt reads at most 72 bytes, as Go's does; Go refuses longer passwords.
    if pw.len() > 72 {
        return Err(call_err("bcrypt: password length exceeds 72 bytes"));
    }
    bcrypt::hash_with_salt(pw, 10, salt)
        .map(|h| h.format_for_version(bcrypt::Version::TwoA))
        .map_err(|e| call_err(format!("bcrypt: {e}")))
}

pub(super) fn aes_key(pw: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    let n = pw.len().min(32);
    key[..n].copy_from_slice(&pw[..n]);
    key
}

pub(super) fn encrypt_aes(a: Vec<Value>) -> FnResult {
    use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
    let (pw, plain) = (s_arg(&a[0])?, s_arg(&a[1])?);
    let iv: [u8; 16] = random_bytes(16)?.try_into().expect("16 bytes");
    let ct = cbc::Encryptor::<aes::Aes256>::new(&aes_key(&pw).into(), &iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(&plain);
    Ok(Value::str(STANDARD.encode([iv.as_slice(), &ct].concat())))
}

pub(super) fn decrypt_aes(a: Vec<Value>) -> FnResult {
    use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
    let (pw, enc) = (s_arg(&a[0])?, s_arg(&a[1])?);
    let raw = STANDARD
        .decode(&*enc)
        .map_err(|_| call_err("illegal base64 data"))?;
    if raw.len() < 16 || raw.len() % 16 != 0 {
        return Err(call_err("ciphertext too short"));
    }
    let (iv, ct) = raw.split_at(16);
    let iv: [u8; 16] = iv.try_into().expect("16 bytes");
    let plain = cbc::Decryptor::<aes::Aes256>::new(&aes_key(&pw).into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ct)
        .map_err(|_| call_err("invalid padding"))?;
    Ok(Value::str(plain))
}

/// sprig's derivePassword: the Master Password algorithm (scrypt N=32768 r=8 p=2 over the
/// user, HMAC-SHA256 over the site and counter, a character template picked by the seed).
pub(super) fn derive_password(a: Vec<Value>) -> FnResult {
    use hmac::Mac;
    const SEED: &[u8] = b"com.lyndir.masterpassword";
    let counter = i_arg(&a[0])? as u32;
    let (kind, password, user, site) = (t_arg(&a[1])?, s_arg(&a[2])?, s_arg(&a[3])?, s_arg(&a[4])?);
    let templates: &[&str] = match kind.as_str() {
        "maximum" => &["anoxxxxxxxxxxxxxxxxx", "axxxxxxxxxxxxxxxxxno"],
        "long" => &[
            "CvcvnoCvcvCvcv",
            "CvcvCvcvnoCvcv",
            "CvcvCvcvCvcvno",
            "CvccnoCvcvCvcv",
            "CvccCvcvnoCvcv",
            "CvccCvcvCvcvno",
            "CvcvnoCvccCvcv",
            "CvcvCvccnoCvcv",
            "CvcvCvccCvcvno",
            "CvcvnoCvcvCvcc",
            "CvcvCvcvnoCvcc",
            "CvcvCvcvCvccno",
            "CvccnoCvccCvcv",
            "CvccCvccnoCvcv",
            "CvccCvccCvcvno",
            "CvcvnoCvccCvcc",
            "CvcvCvccnoCvcc",
            "CvcvCvccCvccno",
            "CvccnoCvcvCvcc",
            "CvccCvcvnoCvcc",
            "CvccCvcvCvccno",
        ],
        "medium" => &["CvcnoCvc", "CvcCvcno"],
        "short" => &["Cvcn"],
        "basic" => &["aaanaaan", "aannaaan", "aaannaaa"],
        "pin" => &["nnnn"],
        other => return Ok(Value::str(format!("cannot find password template {other}"))),
    };
    let mut salt = SEED.to_vec();
    salt.extend_from_slice(&(user.len() as u32).to_be_bytes());
    salt.extend_from_slice(&user);
    let mut key = zeroize_vec(64);
    let params = scrypt::Params::new(15, 8, 2, 64).expect("valid scrypt parameters");
    scrypt::scrypt(&password, &salt, &params, &mut key)
        .map_err(|e| call_err(format!("failed to derive password: {e}")))?;
    let mut msg = SEED.to_vec();
    msg.extend_from_slice(&(site.len() as u32).to_be_bytes());
    msg.extend_from_slice(&site);
    msg.extend_from_slice(&counter.to_be_bytes());
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(&key)
        .expect("HMAC takes any key length");
    mac.update(&msg);
    let seed = mac.finalize().into_bytes();
    let template = templates[seed[0] as usize % templates.len()];
    let chars = |c: u8| -> &'static str {
        match c {
            b'V' => "AEIOU",
            b'C' => "BCDFGHJKLMNPQRSTVWXYZ",
            b'v' => "aeiou",
            b'c' => "bcdfghjklmnpqrstvwxyz",
            b'A' => "AEIOUBCDFGHJKLMNPQRSTVWXYZ",
            b'a' => "AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz",
            b'n' => "0123456789",
            b'o' => "@&%?,=[]_:-+*$#!'^~;()/.",
            _ => "AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz0123456789!@#$%^&*()",
        }
    };
    let out: String = template
        .bytes()
        .enumerate()
        .map(|(i, c)| {
            let set = chars(c).as_bytes();
            set[seed[i + 1] as usize % set.len()] as char
        })
        .collect();
    Ok(Value::str(out))
}

/// A buffer for key material, wiped when dropped.
pub(super) fn zeroize_vec(n: usize) -> zeroize::Zeroizing<Vec<u8>> {
    zeroize::Zeroizing::new(vec![0u8; n])
}
