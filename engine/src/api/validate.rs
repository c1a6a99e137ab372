//! ESO's admission rules for ExternalSecrets (its validating webhook's `validateExternalSecret`),
//! with ESO's messages. The controller applies them too, so a manifest the webhook would have
//! refused gets the same message on its status even where no webhook is installed.

use super::{CreationPolicy, DeletionPolicy, ExternalSecretDataFromRemoteRef, ExternalSecretSpec};

/// Every rule `spec` breaks, in ESO's order and words (empty when valid).
pub fn external_secret(spec: &ExternalSecretSpec) -> Vec<String> {
    let mut errs = Vec::new();
    let t = &spec.target;
    if t.deletion_policy == DeletionPolicy::Delete
        && matches!(
            t.creation_policy,
            CreationPolicy::Merge | CreationPolicy::None
        )
    {
        errs.push("deletionPolicy=Delete must not be used when the controller doesn't own the secret. Please set creationPolicy=Owner".to_string());
    }
    if t.deletion_policy == DeletionPolicy::Merge && t.creation_policy == CreationPolicy::None {
        errs.push("deletionPolicy=Merge must not be used with creationPolicy=None. There is no Secret to merge with".to_string());
    }
    if spec.data.is_empty() && spec.data_from.is_empty() {
        errs.push("either data or dataFrom should be specified".to_string());
    }
    for r in &spec.data_from {
        errs.extend(data_from(r));
    }
    if t.deletion_policy == DeletionPolicy::Retain {
        let mut seen = std::collections::HashSet::new();
        for d in &spec.data {
            if !seen.insert(d.secret_key.as_str()) {
                errs.push(format!("duplicate secretKey found: {}", d.secret_key));
            }
        }
    }
    errs
}

fn data_from(r: &ExternalSecretDataFromRemoteRef) -> Vec<String> {
    let mut errs = Vec::new();
    let generator = r
        .source_ref
        .as_ref()
        .is_some_and(|s| s.generator_ref.is_some());
    let set = [r.find.is_some(), r.extract.is_some(), generator]
        .iter()
        .filter(|b| **b)
        .count();
    if set > 1 {
        errs.push("extract, find, or generatorRef cannot be set at the same time".to_string());
    }
    if r.find.is_none() && r.extract.is_none() && r.source_ref.is_none() {
        errs.push("either extract, find, or sourceRef must be set to dataFrom".to_string());
    }
    if let Some(s) = &r.source_ref
        && s.generator_ref.is_none()
        && s.store_ref.is_none()
    {
        errs.push(
            "generatorRef or storeRef must be set when using sourceRef in dataFrom".to_string(),
        );
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ExternalSecretSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn eso_rules_and_messages() {
        let ok = spec("data: [{secretKey: a, remoteRef: {key: k}}]");
        assert!(external_secret(&ok).is_empty());
        let bad = spec(
            "target: {creationPolicy: Merge, deletionPolicy: Delete}\ndata: [{secretKey: a, remoteRef: {key: k}}, {secretKey: a, remoteRef: {key: j}}]",
        );
        assert_eq!(
            external_secret(&bad),
            [
                "deletionPolicy=Delete must not be used when the controller doesn't own the secret. Please set creationPolicy=Owner"
            ]
        );
        let dup = spec(
            "data: [{secretKey: a, remoteRef: {key: k}}, {secretKey: a, remoteRef: {key: j}}]",
        );
        assert_eq!(external_secret(&dup), ["duplicate secretKey found: a"]);
        let none = spec("target: {creationPolicy: None, deletionPolicy: Merge}");
        assert_eq!(
            external_secret(&none),
            [
                "deletionPolicy=Merge must not be used with creationPolicy=None. There is no Secret to merge with",
                "either data or dataFrom should be specified"
            ]
        );
        let from = spec(
            "dataFrom:\n- {extract: {key: a}, find: {name: {regexp: x}}}\n- {sourceRef: {}}\n- {}\n",
        );
        assert_eq!(
            external_secret(&from),
            [
                "extract, find, or generatorRef cannot be set at the same time",
                "generatorRef or storeRef must be set when using sourceRef in dataFrom",
                "either extract, find, or sourceRef must be set to dataFrom"
            ]
        );
    }
}
