//! Arbitrary bytes through the managed-fields strip the controller's client applies to every
//! answer about its own kinds (`esox::managed_fields`). It must never panic; its output must
//! not depend on where the body was split into chunks; and for any JSON document serde_json
//! reads, the output is that document without `metadata.managedFields`.
#![no_main]

use esox::managed_fields::{Stripper, strip, strip_value};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|input: &[u8]| {
    let Some((&at, doc)) = input.split_first() else {
        return;
    };
    let whole = strip(doc);
    let at = usize::from(at).min(doc.len());
    let mut split = Vec::new();
    let mut s = Stripper::new();
    s.push(&doc[..at], &mut split);
    s.push(&doc[at..], &mut split);
    assert_eq!(whole, split, "the output depends on the chunking");
    if let Ok(mut want) = serde_json::from_slice::<Value>(doc) {
        strip_value(&mut want);
        let got: Value = serde_json::from_slice(&whole).expect("stripped JSON is JSON");
        assert_eq!(got, want);
    }
});
