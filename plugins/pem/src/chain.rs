//! Certificate chains: ordering leaf → intermediates → root, and picking parts of a chain
//! (ESO's `filterCertChain`).

use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};

use crate::Error;

const OID_AKI: &str = "2.5.29.35";
const OID_SKI: &str = "2.5.29.14";

struct Cert {
    der: Vec<u8>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    aki: Option<Vec<u8>>,
    ski: Option<Vec<u8>>,
}

fn parse(der: &[u8]) -> Result<Cert, Error> {
    let c = Certificate::from_der(der)
        .map_err(|_| Error::Certificate("could not parse an X.509 certificate".into()))?;
    let tbs = &c.tbs_certificate;
    let name = |n: &x509_cert::name::Name| n.to_der().unwrap_or_default();
    let mut aki = None;
    let mut ski = None;
    for ext in tbs.extensions.iter().flatten() {
        let oid = ext.extn_id.to_string();
        if oid == OID_AKI {
            aki = AuthorityKeyIdentifier::from_der(ext.extn_value.as_bytes())
                .ok()
                .and_then(|a| a.key_identifier)
                .map(|k| k.as_bytes().to_vec());
        } else if oid == OID_SKI {
            ski = SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes())
                .ok()
                .map(|k| k.0.as_bytes().to_vec());
        }
    }
    Ok(Cert {
        der: der.to_vec(),
        subject: name(&tbs.subject),
        issuer: name(&tbs.issuer),
        aki,
        ski,
    })
}

impl Cert {
    /// Go's `isRootCertificate` as ESO uses it: no authority key id, or one equal to the
    /// subject key id (self-signed).
    fn is_root(&self) -> bool {
        self.aki.is_none() || self.aki == self.ski
    }

    fn issued(&self, child: &Cert) -> bool {
        if let (Some(aki), Some(ski)) = (&child.aki, &self.ski) {
            return aki == ski;
        }
        child.issuer == self.subject
    }
}

/// Orders DER certificates leaf first, each followed by its issuer. Returns `None` when the
/// set is not one chain (several leaves, or disjoint certificates), as ESO then keeps the
/// file order.
pub fn order(certs: &[Vec<u8>]) -> Result<Option<Vec<Vec<u8>>>, Error> {
    let parsed: Vec<Cert> = certs.iter().map(|c| parse(c)).collect::<Result<_, _>>()?;
    if parsed.len() <= 1 {
        return Ok(Some(certs.to_vec()));
    }
    // A leaf issued nobody else in the set.
    let leaves: Vec<usize> = (0..parsed.len())
        .filter(|&i| {
            !(0..parsed.len()).any(|j| {
                j != i && parsed[i].issued(&parsed[j]) && !parsed[j].is_root_of(&parsed[i])
            })
        })
        .collect();
    if leaves.len() != 1 {
        return Ok(None);
    }
    let mut used = vec![false; parsed.len()];
    let mut out = Vec::with_capacity(parsed.len());
    let mut current = leaves[0];
    loop {
        used[current] = true;
        out.push(parsed[current].der.clone());
        if parsed[current].is_root() && parsed[current].subject == parsed[current].issuer {
            break;
        }
        match (0..parsed.len()).find(|&j| !used[j] && parsed[j].issued(&parsed[current])) {
            Some(next) => current = next,
            None => break,
        }
    }
    if out.len() != parsed.len() {
        return Ok(None);
    }
    Ok(Some(out))
}

impl Cert {
    /// Guards the leaf search against a root "issuing" itself through a cross-signed twin.
    fn is_root_of(&self, other: &Cert) -> bool {
        self.der == other.der
    }
}

/// ESO's `filterCertChain`: `leaf`, `intermediate` or `root` of a PEM chain, as PEM ("" when
/// the chain has no such part).
pub fn filter(cert_type: &str, input: &str) -> Result<String, Error> {
    let ders: Vec<Vec<u8>> = crate::pem::parse(input)?
        .iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der.clone())
        .collect();
    if ders.is_empty() {
        return Err(Error::Certificate(
            "no certificate found in the input".into(),
        ));
    }
    let ordered = order(&ders)?
        .ok_or_else(|| Error::Certificate("the certificates do not form a single chain".into()))?;
    let parsed: Vec<Cert> = ordered.iter().map(|c| parse(c)).collect::<Result<_, _>>()?;
    let enc = |c: &Cert| crate::pem::encode("CERTIFICATE", &c.der);
    Ok(match cert_type {
        "leaf" => {
            let c = &parsed[0];
            if c.aki.is_some() && c.aki != c.ski {
                enc(c)
            } else {
                String::new()
            }
        }
        "intermediate" => parsed
            .iter()
            .skip(1)
            .take_while(|c| !c.is_root())
            .map(enc)
            .collect(),
        "root" => parsed
            .last()
            .filter(|c| c.is_root())
            .map(enc)
            .unwrap_or_default(),
        other => {
            return Err(Error::Certificate(format!(
                "unknown certificate type {other:?}: expected leaf, intermediate or root"
            )));
        }
    })
}

/// Orders a PKCS#12's certificates as `pkcs12cert` returns them: the ordered chain as PEM,
/// or the file order when they are not one chain (ESO does the same).
pub fn chain_pem(certs: &[Vec<u8>]) -> Result<String, Error> {
    let ordered = order(certs)?.unwrap_or_else(|| certs.to_vec());
    Ok(ordered
        .iter()
        .map(|c| crate::pem::encode("CERTIFICATE", c))
        .collect())
}
