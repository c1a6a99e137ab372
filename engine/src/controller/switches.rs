//! ESO's reconciler switches (`--enable-secret-store-reconciler`,
//! `--enable-cluster-store-reconciler`, `--enable-cluster-external-secret-reconciler`,
//! `--enable-push-secret-reconciler`, `--enable-cluster-push-secret-reconciler`) and its flood
//! gate (`--enable-flood-gate`): which of the controllers [`super::run_until`] starts.
//!
//! A controller switched off starts no watch of its kind, so esox needs no RBAC for it (the
//! chart drops those rules), and leaves its objects untouched for another controller: no
//! status, no finalizer, no event. The exception is SecretStores: ExternalSecrets and
//! PushSecrets read them from the SecretStore watch, so switching their reconciler off stops
//! only their validation (the Ready condition).

use crate::api::ExternalSecret;

/// Which controllers run (all of them by default, as in ESO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switches {
    /// Validate SecretStores (their Ready condition). They are watched either way.
    pub secret_store: bool,
    /// Watch and validate ClusterSecretStores, and sync the ExternalSecrets that read one.
    pub cluster_store: bool,
    /// Run ClusterExternalSecrets.
    pub cluster_external_secret: bool,
    /// Run PushSecrets.
    pub push_secret: bool,
    /// Run ClusterPushSecrets.
    pub cluster_push_secret: bool,
    /// ESO's flood gate: an ExternalSecret is not synced through a store whose Ready condition
    /// is False (see [`super::resolve::flood_gate`]).
    pub flood_gate: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            secret_store: true,
            cluster_store: true,
            cluster_external_secret: true,
            push_secret: true,
            cluster_push_secret: true,
            flood_gate: true,
        }
    }
}

impl Switches {
    /// Whether `es` is left to another controller: it reads a ClusterSecretStore and
    /// ClusterSecretStores are not processed here. ESO skips it the same way, silently, by its
    /// `spec.secretStoreRef` only; esox by any store it reads (`data[].sourceRef` too), since
    /// without the ClusterSecretStore watch it could not sync it anyway.
    pub fn leaves_alone(&self, es: &ExternalSecret) -> bool {
        !self.cluster_store
            && super::bulkhead::keys(es)
                .iter()
                .any(|k| k.starts_with("ClusterSecretStore/"))
    }

    /// The controllers switched off, by ESO's flag, for the start-up log line.
    pub fn disabled(&self) -> Vec<&'static str> {
        [
            (self.secret_store, "--enable-secret-store-reconciler"),
            (self.cluster_store, "--enable-cluster-store-reconciler"),
            (
                self.cluster_external_secret,
                "--enable-cluster-external-secret-reconciler",
            ),
            (self.push_secret, "--enable-push-secret-reconciler"),
            (
                self.cluster_push_secret,
                "--enable-cluster-push-secret-reconciler",
            ),
            (self.flood_gate, "--enable-flood-gate"),
        ]
        .into_iter()
        .filter(|(on, _)| !on)
        .map(|(_, flag)| flag)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(yaml: &str) -> ExternalSecret {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn an_external_secret_reading_a_cluster_store_is_left_alone_only_when_they_are_off() {
        let off = Switches {
            cluster_store: false,
            ..Default::default()
        };
        let cases = [
            (
                "top-level ClusterSecretStore",
                r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: a, namespace: n}
spec:
  secretStoreRef: {name: css, kind: ClusterSecretStore}
  data: [{secretKey: k, remoteRef: {key: k}}]
"#,
                true,
            ),
            (
                "a ClusterSecretStore in data[].sourceRef",
                r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: a, namespace: n}
spec:
  secretStoreRef: {name: ss}
  data:
  - {secretKey: k, remoteRef: {key: k}}
  - {secretKey: j, remoteRef: {key: j}, sourceRef: {storeRef: {name: css, kind: ClusterSecretStore}}}
"#,
                true,
            ),
            (
                "SecretStores only",
                r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: a, namespace: n}
spec:
  secretStoreRef: {name: ss, kind: SecretStore}
  data: [{secretKey: k, remoteRef: {key: k}}]
"#,
                false,
            ),
        ];
        for (what, yaml, left) in cases {
            let es = es(yaml);
            assert_eq!(off.leaves_alone(&es), left, "{what}");
            assert!(!Switches::default().leaves_alone(&es), "{what}, all on");
        }
    }

    #[test]
    fn disabled_names_eso_flags() {
        assert!(Switches::default().disabled().is_empty());
        let s = Switches {
            push_secret: false,
            cluster_external_secret: false,
            ..Default::default()
        };
        assert_eq!(
            s.disabled(),
            [
                "--enable-cluster-external-secret-reconciler",
                "--enable-push-secret-reconciler"
            ]
        );
    }
}
