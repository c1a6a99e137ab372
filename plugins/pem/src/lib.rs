//! PEM, PKCS#12 and certificate-chain helpers shared by the built-in plugins.
//!
//! This crate is guest code: it is compiled into the template and PKCS#12 plugins and runs
//! only inside the Wasm sandbox, never in the controller. Errors describe what is wrong with
//! the input's structure and never contain key material.

pub mod chain;
pub mod keys;
pub mod pem;
pub mod pkcs12;
pub mod pkcs12_encode;

/// What went wrong, fit for an ExternalSecret status (no secret data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Malformed PEM.
    Pem(String),
    /// A PKCS#12 file that cannot be read (wrong password, unsupported algorithm, …).
    Pkcs12(String),
    /// A certificate that cannot be parsed or used.
    Certificate(String),
    /// A key that cannot be read or converted (Go's message where ESO has one).
    Key(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Pem(m) => write!(f, "pem: {m}"),
            Error::Pkcs12(m) => write!(f, "pkcs12: {m}"),
            Error::Certificate(m) => write!(f, "x509: {m}"),
            Error::Key(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// ESO's `pkcs12keyPass`: the first private key as PKCS#8 PEM.
pub fn pkcs12_key(der: &[u8], password: &str) -> Result<String, Error> {
    let p = pkcs12::decode(der, password)?;
    let key = p
        .keys
        .first()
        .ok_or_else(|| Error::Pkcs12("the file holds no private key".into()))?;
    Ok(pem::encode("PRIVATE KEY", key))
}

/// ESO's `pkcs12certPass`: the certificates as PEM, leaf → intermediates → root.
pub fn pkcs12_cert(der: &[u8], password: &str) -> Result<String, Error> {
    let p = pkcs12::decode(der, password)?;
    if p.certs.is_empty() {
        return Err(Error::Pkcs12("the file holds no certificate".into()));
    }
    chain::chain_pem(&p.certs)
}
