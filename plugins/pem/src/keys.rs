//! JSON Web Keys to PEM (ESO's `jwkPublicKeyPem`/`jwkPrivateKeyPem`) and a certificate's
//! subject alternative names (`certSANs`).
//!
//! The DER is written the way Go's `x509.MarshalPKIXPublicKey` and
//! `x509.MarshalPKCS8PrivateKey` write it (RSA with a NULL parameter, EC private keys without
//! the redundant curve inside, Ed25519/X25519 as bare octets), so the PEM is byte for byte
//! what ESO produces. Key types Go cannot marshal fail with Go's error.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use x509_cert::der::Decode;
use yasna::Tag;
use yasna::models::ObjectIdentifier;

use crate::Error;

const RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
const EC: &[u64] = &[1, 2, 840, 10045, 2, 1];
const ED25519: &[u64] = &[1, 3, 101, 112];
const X25519: &[u64] = &[1, 3, 101, 110];

/// jwx says `invalid key type from JSON (KTY)`; the type is read from the key (possibly
/// secret text that is not a JWK at all), so it is not repeated.
const INVALID_KTY: &str = "invalid key type from JSON (kty is not RSA, EC, OKP or oct)";
const SUBJECT_ALT_NAME: x509_cert::der::asn1::ObjectIdentifier =
    x509_cert::der::asn1::ObjectIdentifier::new_unwrap("2.5.29.17");

fn oid(arcs: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(arcs)
}

/// A named curve: OID and field size in bytes.
fn curve(crv: &str) -> Result<(&'static [u64], usize), Error> {
    match crv {
        "P-256" => Ok((&[1, 2, 840, 10045, 3, 1, 7], 32)),
        "P-384" => Ok((&[1, 3, 132, 0, 34], 48)),
        "P-521" => Ok((&[1, 3, 132, 0, 35], 66)),
        // The curve name is read from the key: not repeated.
        _ => Err(Error::Key(
            "unsupported elliptic curve (crv is not P-256, P-384 or P-521)".into(),
        )),
    }
}

struct Jwk(serde_json::Map<String, serde_json::Value>);

impl Jwk {
    fn parse(json: &str) -> Result<Jwk, Error> {
        match serde_json::from_str::<serde_json::Value>(json) {
            Ok(serde_json::Value::Object(m)) => Ok(Jwk(m)),
            Ok(_) => Err(Error::Key("a JWK must be a JSON object".into())),
            Err(e) => Err(Error::Key(format!(
                "failed to unmarshal JSON into key hint: invalid JSON at line {} column {}",
                e.line(),
                e.column()
            ))),
        }
    }

    fn str(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.as_str())
    }

    /// A base64url member; `None` when absent.
    fn bytes(&self, k: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.str(k) {
            None => Ok(None),
            Some(s) => URL_SAFE_NO_PAD
                .decode(s.trim_end_matches('='))
                .map(Some)
                .map_err(|_| {
                    Error::Key(format!(
                        "failed to decode JWK member {k:?}: invalid base64url"
                    ))
                }),
        }
    }

    fn need(&self, k: &str) -> Result<Vec<u8>, Error> {
        self.bytes(k)?
            .ok_or_else(|| Error::Key(format!("required field {k} is missing")))
    }

    fn kty(&self) -> Result<&str, Error> {
        self.str("kty")
            .ok_or_else(|| Error::Key("invalid key type from JSON ()".into()))
    }

    fn is_private(&self) -> bool {
        self.0.contains_key("d")
    }
}

/// Big-endian unsigned integer bytes, zero-padded on the left to `len`.
fn pad(b: &[u8], len: usize) -> Vec<u8> {
    let b = strip(b);
    let mut v = vec![0u8; len.saturating_sub(b.len())];
    v.extend_from_slice(b);
    v
}

fn strip(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[i..]
}

fn uint(w: yasna::DERWriter<'_>, b: &[u8]) {
    let b = strip(b);
    if b.is_empty() {
        w.write_u8(0);
    } else {
        w.write_bigint_bytes(b, true);
    }
}

/// ESO's `jwkPublicKeyPem`: a public JWK as a PKIX `PUBLIC KEY`.
pub fn jwk_public_pem(json: &str) -> Result<String, Error> {
    let k = Jwk::parse(json)?;
    let kty = k.kty()?;
    if k.is_private() {
        // jwx hands Go the private key, and MarshalPKIXPublicKey refuses it.
        let t = match kty {
            "RSA" => "*rsa.PrivateKey",
            "EC" => "*ecdsa.PrivateKey",
            _ => "ed25519.PrivateKey",
        };
        return Err(Error::Key(format!(
            "x509: unsupported public key type: {t}"
        )));
    }
    let der = match kty {
        "RSA" => {
            let (n, e) = (k.need("n")?, k.need("e")?);
            let inner = yasna::construct_der(|w| {
                w.write_sequence(|w| {
                    uint(w.next(), &n);
                    uint(w.next(), &e);
                })
            });
            spki(RSA, None, &inner)
        }
        "EC" => {
            let (c, size) = curve(k.str("crv").unwrap_or(""))?;
            let point = [
                vec![4u8],
                pad(&k.need("x")?, size),
                pad(&k.need("y")?, size),
            ]
            .concat();
            spki(EC, Some(c), &point)
        }
        "OKP" => {
            let o = okp(k.str("crv").unwrap_or(""))?;
            spki(o, None, &k.need("x")?)
        }
        "oct" => {
            return Err(Error::Key(
                "x509: unsupported public key type: []uint8".into(),
            ));
        }
        _ => return Err(Error::Key(INVALID_KTY.into())),
    };
    Ok(crate::pem::encode("PUBLIC KEY", &der))
}

fn okp(crv: &str) -> Result<&'static [u64], Error> {
    match crv {
        "Ed25519" => Ok(ED25519),
        "X25519" => Ok(X25519),
        _ => Err(Error::Key(
            "unsupported OKP curve (crv is not Ed25519 or X25519)".into(),
        )),
    }
}

fn spki(alg: &[u64], param: Option<&[u64]>, key: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            algorithm(w.next(), alg, param);
            w.next().write_bitvec_bytes(key, key.len() * 8);
        })
    })
}

/// An AlgorithmIdentifier: RSA carries NULL, EC its curve, Ed25519/X25519 nothing.
fn algorithm(w: yasna::DERWriter<'_>, alg: &[u64], param: Option<&[u64]>) {
    w.write_sequence(|w| {
        w.next().write_oid(&oid(alg));
        if alg == RSA {
            w.next().write_null();
        } else if let Some(p) = param {
            w.next().write_oid(&oid(p));
        }
    })
}

/// ESO's `jwkPrivateKeyPem`: a private JWK as PKCS#8 `PRIVATE KEY`.
pub fn jwk_private_pem(json: &str) -> Result<String, Error> {
    let k = Jwk::parse(json)?;
    let kty = k.kty()?;
    if !k.is_private() && kty != "oct" {
        let t = match kty {
            "RSA" => "*rsa.PublicKey",
            "EC" => "*ecdsa.PublicKey",
            _ => "ed25519.PublicKey",
        };
        return Err(Error::Key(format!(
            "x509: unknown key type while marshaling PKCS#8: {t}"
        )));
    }
    let (alg, param, inner) = match kty {
        "RSA" => {
            let fields: Vec<Vec<u8>> = ["n", "e", "d", "p", "q", "dp", "dq", "qi"]
                .iter()
                .map(|f| k.need(f))
                .collect::<Result<_, _>>()?;
            let inner = yasna::construct_der(|w| {
                w.write_sequence(|w| {
                    w.next().write_u8(0);
                    for f in &fields {
                        uint(w.next(), f);
                    }
                })
            });
            (RSA, None, inner)
        }
        "EC" => {
            let (c, size) = curve(k.str("crv").unwrap_or(""))?;
            let d = pad(&k.need("d")?, size);
            let point = [
                vec![4u8],
                pad(&k.need("x")?, size),
                pad(&k.need("y")?, size),
            ]
            .concat();
            let inner = yasna::construct_der(|w| {
                w.write_sequence(|w| {
                    w.next().write_u8(1);
                    w.next().write_bytes(&d);
                    w.next().write_tagged(Tag::context(1), |w| {
                        w.write_bitvec_bytes(&point, point.len() * 8)
                    });
                })
            });
            (EC, Some(c), inner)
        }
        "OKP" => {
            let o = okp(k.str("crv").unwrap_or(""))?;
            let d = k.need("d")?;
            (o, None, yasna::construct_der(|w| w.write_bytes(&d)))
        }
        "oct" => {
            return Err(Error::Key(
                "x509: unknown key type while marshaling PKCS#8: []uint8".into(),
            ));
        }
        _ => return Err(Error::Key(INVALID_KTY.into())),
    };
    let der = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(0);
            algorithm(w.next(), alg, param);
            w.next().write_bytes(&inner);
        })
    });
    Ok(crate::pem::encode("PRIVATE KEY", &der))
}

/// ESO's `certSANs`: the first certificate's DNS names, IP addresses, e-mail addresses and
/// URIs, in that order.
pub fn cert_sans(input: &str) -> Result<Vec<String>, Error> {
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let start = input.find("-----BEGIN").unwrap_or(0);
    let blocks = crate::pem::parse(&input[start..])?;
    let block = blocks
        .first()
        .ok_or_else(|| Error::Pem("failed to decode PEM block".into()))?;
    let cert = x509_cert::Certificate::from_der(&block.der)
        .map_err(|e| Error::Certificate(format!("failed to parse certificate: {e}")))?;
    let (mut dns, mut ips, mut emails, mut uris) = (vec![], vec![], vec![], vec![]);
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id != SUBJECT_ALT_NAME {
            continue;
        }
        let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
            .map_err(|e| Error::Certificate(format!("failed to parse certificate: {e}")))?;
        for name in san.0 {
            match name {
                GeneralName::DnsName(s) => dns.push(s.to_string()),
                GeneralName::Rfc822Name(s) => emails.push(s.to_string()),
                GeneralName::UniformResourceIdentifier(s) => uris.push(s.to_string()),
                GeneralName::IpAddress(b) => ips.push(ip_string(b.as_bytes())),
                _ => {}
            }
        }
    }
    Ok([dns, ips, emails, uris].concat())
}

/// Go's `net.IP.String`: dotted IPv4, RFC 5952 IPv6.
fn ip_string(b: &[u8]) -> String {
    match b.len() {
        4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        16 => {
            let a: [u8; 16] = b.try_into().expect("16 bytes");
            let v6 = std::net::Ipv6Addr::from(a);
            match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => v6.to_string(),
            }
        }
        _ => format!(
            "?{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

/// The first private key in `pem_text` as PKCS#8 DER, from PKCS#1 (`RSA PRIVATE KEY`), SEC 1
/// (`EC PRIVATE KEY`) or PKCS#8, as Go's parsePrivateKey accepts them.
pub fn private_key_pkcs8(pem_text: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
    let start = pem_text.find("-----BEGIN").unwrap_or(0);
    let blocks = crate::pem::parse(&pem_text[start..])?;
    let block = blocks.first().ok_or_else(|| {
        Error::Key("failed to decode PEM block containing the private key".into())
    })?;
    let der = &block.der;
    // PKCS#8: SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING }.
    let pkcs8 = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            r.next().read_u8()?;
            r.next().read_sequence(|r| {
                r.next().read_oid()?;
                r.read_optional(|r| r.read_der())?;
                Ok(())
            })?;
            r.next().read_bytes()?;
            r.read_optional(|r| r.read_der())?;
            Ok(())
        })
    });
    if pkcs8.is_ok() {
        return Ok(zeroize::Zeroizing::new(der.to_vec()));
    }
    // PKCS#1 RSA: SEQUENCE { INTEGER version, n, e, d, p, q, dp, dq, qi }.
    let rsa = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            for _ in 0..9 {
                r.next().read_bigint_bytes()?;
            }
            r.read_optional(|r| r.read_der())?;
            Ok(())
        })
    });
    if rsa.is_ok() {
        return Ok(zeroize::Zeroizing::new(wrap_pkcs8(RSA, None, der)));
    }
    // SEC 1 EC: SEQUENCE { INTEGER 1, OCTET STRING d, [0] curve OID, [1] public key }.
    let curve_oid = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            r.next().read_u8()?;
            r.next().read_bytes()?;
            let c = r.next().read_tagged(Tag::context(0), |r| r.read_oid())?;
            r.read_optional(|r| r.read_der())?;
            Ok(c)
        })
    });
    match curve_oid {
        Ok(c) => {
            let arcs: Vec<u64> = c.components().to_vec();
            Ok(zeroize::Zeroizing::new(wrap_pkcs8(EC, Some(&arcs), der)))
        }
        Err(_) => Err(Error::Key("unable to parse private key type".into())),
    }
}

fn wrap_pkcs8(alg: &[u64], param: Option<&[u64]>, inner: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(0);
            algorithm(w.next(), alg, param);
            w.next().write_bytes(inner);
        })
    })
}

/// Every certificate in `pem_text` as DER, with its subject for trust-store names.
pub fn certificates(pem_text: &str) -> Result<Vec<(Vec<u8>, String)>, Error> {
    let start = pem_text.find("-----BEGIN").unwrap_or(0);
    let blocks = crate::pem::parse(&pem_text[start..])?;
    let mut out = Vec::new();
    for b in blocks {
        let cert = x509_cert::Certificate::from_der(&b.der)
            .map_err(|e| Error::Certificate(format!("malformed certificate: {e}")))?;
        out.push((b.der.clone(), cert.tbs_certificate.subject.to_string()));
    }
    if out.is_empty() {
        return Err(Error::Pem(
            "failed to decode PEM block containing a certificate".into(),
        ));
    }
    Ok(out)
}
