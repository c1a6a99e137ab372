//! PKCS#12 files made by the real `openssl` command: modern (PBES2/AES-256, SHA-256 MAC, the
//! OpenSSL 3 default) and legacy (3DES/RC2, SHA-1 MAC), with a three-level chain.

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl must be installed to run these tests");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// root → intermediate → leaf, each an EC key; returns the directory.
fn make_chain() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["root", "inter", "leaf"] {
        openssl(
            d,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &format!("{name}.key"),
            ],
        );
    }
    std::fs::write(d.join("ca.ext"), "basicConstraints=critical,CA:TRUE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n").unwrap();
    std::fs::write(d.join("leaf.ext"), "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\nsubjectAltName=DNS:app.example.com\n").unwrap();
    openssl(
        d,
        &[
            "req", "-x509", "-new", "-key", "root.key", "-subj", "/CN=Root", "-days", "30", "-out",
            "root.crt",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "inter.key",
            "-subj",
            "/CN=Intermediate",
            "-out",
            "inter.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "inter.csr",
            "-CA",
            "root.crt",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ca.ext",
            "-out",
            "inter.crt",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "leaf.key",
            "-subj",
            "/CN=app.example.com",
            "-out",
            "leaf.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "inter.crt",
            "-CAkey",
            "inter.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.crt",
        ],
    );
    // Put the chain in the file in the "wrong" order to prove we order it.
    let chain = [
        std::fs::read_to_string(d.join("root.crt")).unwrap(),
        std::fs::read_to_string(d.join("inter.crt")).unwrap(),
    ]
    .concat();
    std::fs::write(d.join("chain.crt"), chain).unwrap();
    dir
}

fn der_of(pem_text: &str) -> Vec<Vec<u8>> {
    esox_pem::pem::parse(pem_text)
        .unwrap()
        .iter()
        .map(|b| b.der.clone())
        .collect()
}

#[test]
fn modern_and_legacy_files_give_key_and_ordered_chain() {
    let dir = make_chain();
    let d = dir.path();
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    for (file, extra) in [("modern.p12", vec![]), ("legacy.p12", vec!["-legacy"])] {
        for pass in ["", "s3cret-pass"] {
            let mut args = vec![
                "pkcs12",
                "-export",
                "-inkey",
                "leaf.key",
                "-in",
                "leaf.crt",
                "-certfile",
                "chain.crt",
                "-out",
                file,
                "-passout",
            ];
            let passout = format!("pass:{pass}");
            args.push(&passout);
            args.extend(extra.iter().copied());
            openssl(d, &args);
            let p12 = std::fs::read(d.join(file)).unwrap();

            let key =
                esox_pem::pkcs12_key(&p12, pass).unwrap_or_else(|e| panic!("{file} {pass:?}: {e}"));
            assert!(
                key.starts_with("-----BEGIN PRIVATE KEY-----\n"),
                "{file}: PKCS#8 PEM"
            );
            // Same key as the one openssl started from (compare as PKCS#8).
            let out = Command::new("openssl")
                .current_dir(d)
                .args(["pkcs8", "-topk8", "-nocrypt", "-in", "leaf.key"])
                .output()
                .unwrap();
            assert_eq!(
                der_of(&key),
                der_of(&String::from_utf8(out.stdout).unwrap()),
                "{file}"
            );

            let chain = esox_pem::pkcs12_cert(&p12, pass).unwrap();
            let expected = [
                der_of(&read("leaf.crt")),
                der_of(&read("inter.crt")),
                der_of(&read("root.crt")),
            ]
            .concat();
            assert_eq!(
                der_of(&chain),
                expected,
                "{file}: leaf → intermediate → root"
            );

            let wrong = esox_pem::pkcs12_key(&p12, "not-the-password")
                .unwrap_err()
                .to_string();
            assert_eq!(wrong, "pkcs12: decryption password incorrect", "{file}");
        }
    }
}

#[test]
fn filter_cert_chain_picks_parts() {
    let dir = make_chain();
    let d = dir.path();
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    let bundle = [read("inter.crt"), read("root.crt"), read("leaf.crt")].concat();
    assert_eq!(
        der_of(&esox_pem::chain::filter("leaf", &bundle).unwrap()),
        der_of(&read("leaf.crt"))
    );
    assert_eq!(
        der_of(&esox_pem::chain::filter("intermediate", &bundle).unwrap()),
        der_of(&read("inter.crt"))
    );
    assert_eq!(
        der_of(&esox_pem::chain::filter("root", &bundle).unwrap()),
        der_of(&read("root.crt"))
    );
    assert!(esox_pem::chain::filter("branch", &bundle).is_err());
}

/// What `pemToPkcs12` writes, OpenSSL reads: the MAC verifies, both PBES2 parts decrypt, and
/// the key and certificates come back; and our decoder reads it back too.
#[test]
fn encoded_pkcs12_is_read_by_openssl() {
    let dir = make_chain();
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    let chain = format!("{}{}", read("leaf.crt"), read("inter.crt"));
    let certs = esox_pem::keys::certificates(&chain).unwrap();
    let key = esox_pem::keys::private_key_pkcs8(&read("leaf.key")).unwrap();
    let mut counter = 0u8;
    let mut rand = |b: &mut [u8]| {
        for x in b {
            counter = counter.wrapping_add(37);
            *x = counter;
        }
    };
    let cas = vec![certs[1].0.clone()];
    let pfx =
        esox_pem::pkcs12_encode::encode(&key, &certs[0].0, &cas, "pässword", &mut rand).unwrap();
    std::fs::write(dir.path().join("ours.p12"), &pfx).unwrap();
    let out = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "pkcs12",
            "-in",
            "ours.p12",
            "-passin",
            "pass:pässword",
            "-nodes",
            "-info",
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("MAC: sha256, Iteration 2048"), "{text}");
    assert!(text.contains("PBES2, PBKDF2, AES-256-CBC"), "{text}");
    assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2, "{text}");
    assert!(text.contains("BEGIN PRIVATE KEY"), "{text}");
    let back = esox_pem::pkcs12::decode(&pfx, "pässword").unwrap();
    assert_eq!(back.certs.len(), 2);
    assert_eq!(back.keys[0].as_slice(), key.as_slice());
    assert!(esox_pem::pkcs12::decode(&pfx, "wrong").is_err());
}
