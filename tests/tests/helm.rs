//! The Helm chart (`deploy/charts/esox`): lint, rendered objects, and installs into the real
//! apiserver whose ServiceAccount runs the `esox` binary with exactly the chart's RBAC.
//!
//! helm comes from `scripts/helm.sh` (`$ESOX_HELM`, which `scripts/test.sh` exports); the
//! tests skip, saying so, only when helm cannot be built. The install tests take
//! [`cluster_lock`]: the cluster-wide controller they run would otherwise also reconcile the
//! other install test's namespaces.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use esox_tests::manifests::{SEED_CREDS as CREDS, irsa_cluster_store};
use esox_tests::{
    Options, TestEnv, cluster_lock, esox_bin, helm_command, helm_ok, put_aws_secret, repo_root,
    secret_strings, service_account_kubeconfig, stack_env, wait_for,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{Value, json};

// --- helm --------------------------------------------------------------------------------------

/// The helm binary, built by `scripts/helm.sh` when `$ESOX_HELM` is unset; `None` (after
/// saying why) when it cannot be built.
fn helm_bin() -> Option<PathBuf> {
    static HELM: OnceLock<Option<PathBuf>> = OnceLock::new();
    HELM.get_or_init(|| {
        esox_tests::helm_bin()
            .inspect_err(|why| eprintln!("SKIPPED: no helm: {why}"))
            .ok()
    })
    .clone()
}

/// Returns from the test (a skip, announced by [`helm_bin`]) when helm is unavailable.
macro_rules! helm_or_skip {
    () => {
        match helm_bin() {
            Some(h) => h,
            None => return,
        }
    };
}

fn chart() -> String {
    repo_root()
        .join("deploy/charts/esox")
        .to_string_lossy()
        .into_owned()
}

fn helm(bin: &Path, args: &[&str]) -> std::process::Output {
    helm_command(bin, args).output().expect("helm runs")
}

/// A values file in a temporary directory (kept alive by the returned guard).
fn values_file(values: &Value) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("values.yaml");
    std::fs::write(&path, serde_yaml::to_string(values).unwrap()).unwrap();
    let p = path.to_string_lossy().into_owned();
    (dir, p)
}

/// `helm template` with a values file, parsed into objects.
fn render(bin: &Path, namespace: &str, values: &Value) -> Vec<Value> {
    let (_dir, file) = values_file(values);
    let text = helm_ok(
        bin,
        &["template", "esox", &chart(), "-n", namespace, "-f", &file],
    );
    parse(&text)
}

fn parse(text: &str) -> Vec<Value> {
    esox::offline::documents(text).expect("helm printed YAML")
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, got {found:#?}");
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn container(docs: &[Value]) -> &Value {
    &one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

fn args(docs: &[Value]) -> Vec<String> {
    strings(&container(docs)["args"])
}

/// RBAC rules as (apiGroups, resources, verbs) triples, sorted, for comparisons.
fn rules(role: &Value) -> Vec<(Vec<String>, Vec<String>, Vec<String>)> {
    let mut out: Vec<_> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                strings(&r["apiGroups"]),
                strings(&r["resources"]),
                strings(&r["verbs"]),
            )
        })
        .collect();
    out.sort();
    out
}

fn rule(
    groups: &[&str],
    resources: &[&str],
    verbs: &[&str],
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    (s(groups), s(resources), s(verbs))
}

/// What the controller does with the API, rule by rule (see engine/src/controller/ and
/// deploy/README.md); the cluster-wide variant adds the cluster-scoped resources.
fn controller_rules(cluster: bool) -> Vec<(Vec<String>, Vec<String>, Vec<String>)> {
    let mut stores = vec!["externalsecrets", "secretstores"];
    let mut status = vec!["externalsecrets/status", "secretstores/status"];
    let mut plugins = vec!["wasmplugins"];
    let mut generators = vec![
        "passwords",
        "uuids",
        "fakes",
        "stssessiontokens",
        "vaultdynamicsecrets",
    ];
    if cluster {
        stores.push("clustersecretstores");
        status.push("clustersecretstores/status");
        plugins.push("clusterwasmplugins");
        generators.push("clustergenerators");
    }
    let mut r = vec![
        rule(&["external-secrets.io"], &stores, &["get", "list", "watch"]),
        rule(&["external-secrets.io"], &status, &["patch"]),
        // ESO's cleanup finalizer.
        rule(&["external-secrets.io"], &["externalsecrets"], &["patch"]),
        rule(&["generators.external-secrets.io"], &generators, &["get"]),
        rule(&["plugins.esox.dev"], &plugins, &["get", "list", "watch"]),
        rule(
            &[""],
            &["secrets"],
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        rule(&[""], &["configmaps"], &["get"]),
        rule(&[""], &["serviceaccounts"], &["get"]),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
        // Rollout restarts (rolloutRestart.enabled, the default): named workloads only.
        rule(
            &["apps"],
            &["deployments", "statefulsets", "daemonsets"],
            &["get", "patch"],
        ),
        // PushSecrets (and ESO's finalizer on them).
        rule(
            &["external-secrets.io"],
            &["pushsecrets"],
            &["get", "list", "watch", "patch"],
        ),
        rule(
            &["external-secrets.io"],
            &["pushsecrets/status"],
            &["patch"],
        ),
    ];
    if cluster {
        r.push(rule(&[""], &["namespaces"], &["get"]));
        // ClusterExternalSecrets.
        r.push(rule(
            &["external-secrets.io"],
            &["clusterexternalsecrets"],
            &["get", "list", "watch", "patch"],
        ));
        r.push(rule(
            &["external-secrets.io"],
            &["clusterexternalsecrets/status"],
            &["patch"],
        ));
        r.push(rule(
            &["external-secrets.io"],
            &["clusterexternalsecrets/finalizers"],
            &["update"],
        ));
        r.push(rule(
            &["external-secrets.io"],
            &["externalsecrets"],
            &["create", "update", "delete"],
        ));
        r.push(rule(&[""], &["namespaces"], &["list", "watch"]));
        // ClusterPushSecrets, and the PushSecrets they stamp.
        r.push(rule(
            &["external-secrets.io"],
            &["clusterpushsecrets"],
            &["get", "list", "watch"],
        ));
        r.push(rule(
            &["external-secrets.io"],
            &["clusterpushsecrets/status"],
            &["patch"],
        ));
        r.push(rule(
            &["external-secrets.io"],
            &["clusterpushsecrets/finalizers"],
            &["update"],
        ));
        r.push(rule(
            &["external-secrets.io"],
            &["pushsecrets"],
            &["create", "update", "delete"],
        ));
    }
    r.sort();
    r
}

// --- chart files -------------------------------------------------------------------------------

#[test]
fn chart_crds_are_the_generated_crds() {
    let chart_copy =
        std::fs::read_to_string(repo_root().join("deploy/charts/esox/files/crds.yaml")).unwrap();
    assert!(
        chart_copy == esox::api::crd::to_yaml(),
        "deploy/charts/esox/files/crds.yaml is stale: regenerate it with \
         `cargo run -p esox -- crds | tee deploy/crds/external-secrets.yaml > deploy/charts/esox/files/crds.yaml`"
    );
}

// --- lint and template -------------------------------------------------------------------------

#[test]
fn lint_passes_for_default_scoped_and_webhook_values() {
    let bin = helm_or_skip!();
    let chart = chart();
    helm_ok(&bin, &["lint", "--strict", &chart]);
    helm_ok(
        &bin,
        &[
            "lint",
            "--strict",
            &chart,
            "--set",
            "scopedNamespace=tenant-a,scopedRBAC=true,leaderElect=true,replicaCount=2",
        ],
    );
    helm_ok(
        &bin,
        &[
            "lint",
            "--strict",
            &chart,
            "--set",
            "webhook.create=true,serviceMonitor.enabled=true,rbac.developerRole.create=true",
        ],
    );
    // Combinations that cannot work are refused with the reason, not rendered.
    for (set, reason) in [
        ("scopedRBAC=true", "scopedRBAC=true needs scopedNamespace"),
        ("replicaCount=2", "replicaCount > 1 needs leaderElect=true"),
        (
            "webhook.create=true,webhook.certManager.enabled=true",
            "needs webhook.certManager.issuerRef.name",
        ),
    ] {
        let out = helm(&bin, &["template", "x", &chart, "--set", set]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} rendered");
        assert!(err.contains(reason), "{set}: {err}");
    }
}

#[test]
fn default_values_render_a_hardened_cluster_wide_controller() {
    let bin = helm_or_skip!();
    let docs = render(&bin, "external-secrets", &json!({}));

    // The CRDs, unchanged from deploy/crds/, kept on uninstall.
    let file =
        std::fs::read_to_string(repo_root().join("deploy/crds/external-secrets.yaml")).unwrap();
    let expected = parse(&file);
    let crds = of_kind(&docs, "CustomResourceDefinition");
    assert_eq!(crds.len(), expected.len());
    for (got, want) in crds.iter().zip(&expected) {
        let name = &want["metadata"]["name"];
        assert_eq!(got["spec"], want["spec"], "{name} spec");
        // The generated metadata (name, labels) plus only the keep annotation.
        let mut metadata = got["metadata"].clone();
        let annotations = metadata.as_object_mut().unwrap().remove("annotations");
        assert_eq!(metadata, want["metadata"], "{name} metadata");
        assert_eq!(
            annotations,
            Some(json!({"helm.sh/resource-policy": "keep"})),
            "{name}"
        );
    }

    let deploy = one(&docs, "Deployment");
    assert_eq!(deploy["metadata"]["namespace"], "external-secrets");
    assert_eq!(deploy["spec"]["replicas"], 1);
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "esox");
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert_eq!(psc["runAsUser"], 65532);
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    // SIGTERM's grace for reconciles in flight ends before the kubelet's SIGKILL.
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    let c = container(&docs);
    assert_eq!(c["image"], "ghcr.io/esox-dev/esox:0.1.0");
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["runAsUser"], 65532);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(
        args(&docs),
        [
            "controller",
            "--metrics-addr=0.0.0.0:8080",
            "--concurrent=32",
            "--shutdown-grace=15s",
            "--log-format=json",
            "--plugin-cache-dir=/var/cache/esox",
        ]
    );
    // The plugin cache is a private emptyDir at the path the controller is given.
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/var/cache/esox");
    assert_eq!(c["volumeMounts"][0]["name"], "plugin-cache");
    assert_eq!(pod["volumes"][0]["name"], "plugin-cache");
    assert!(pod["volumes"][0]["emptyDir"].is_object());
    // Probes on the metrics port, at the paths engine/src/http.rs serves.
    assert_eq!(
        c["ports"][0],
        json!({"name": "metrics", "containerPort": 8080, "protocol": "TCP"})
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "metrics"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "metrics"})
    );

    // Cluster-wide RBAC: exactly the controller's calls, bound to its ServiceAccount.
    let sa = one(&docs, "ServiceAccount");
    assert_eq!(sa["metadata"]["name"], "esox");
    let cr = one(&docs, "ClusterRole");
    assert_eq!(rules(cr), controller_rules(true));
    let crb = one(&docs, "ClusterRoleBinding");
    assert_eq!(crb["roleRef"]["name"], cr["metadata"]["name"]);
    assert_eq!(
        crb["subjects"],
        json!([{"kind": "ServiceAccount", "name": "esox", "namespace": "external-secrets"}])
    );
    assert!(
        of_kind(&docs, "Role").is_empty(),
        "no lease Role without leaderElect"
    );
    assert!(!args(&docs).iter().any(|a| a.starts_with("--leader-elect")));

    let svc = one(&docs, "Service");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    for absent in [
        "ValidatingWebhookConfiguration",
        "ServiceMonitor",
        "Secret",
        "Certificate",
        "PodDisruptionBudget",
    ] {
        assert!(
            of_kind(&docs, absent).is_empty(),
            "{absent} rendered by default"
        );
    }
}

#[test]
fn scoped_values_render_a_role_in_that_namespace_only() {
    let bin = helm_or_skip!();
    let docs = render(
        &bin,
        "tenant-a-secrets",
        &json!({"scopedNamespace": "tenant-a", "scopedRBAC": true, "installCRDs": false,
                "leaderElect": true, "replicaCount": 2, "concurrent": 3}),
    );
    for kind in [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
    ] {
        assert!(
            of_kind(&docs, kind).is_empty(),
            "{kind} rendered in scoped mode"
        );
    }
    let a = args(&docs);
    assert!(a.contains(&"--namespace=tenant-a".to_string()), "{a:?}");
    assert!(a.contains(&"--leader-elect".to_string()), "{a:?}");
    assert!(a.contains(&"--concurrent=3".to_string()), "{a:?}");
    assert_eq!(one(&docs, "Deployment")["spec"]["replicas"], 2);

    let roles = of_kind(&docs, "Role");
    let controller = roles
        .iter()
        .find(|r| r["metadata"]["name"] == "esox-controller")
        .expect("controller Role");
    assert_eq!(controller["metadata"]["namespace"], "tenant-a");
    assert_eq!(rules(controller), controller_rules(false));
    // Leader election: the Lease in the release namespace, nothing else there.
    let lease = roles
        .iter()
        .find(|r| r["metadata"]["name"] == "esox-leader-election")
        .expect("leader-election Role");
    assert_eq!(lease["metadata"]["namespace"], "tenant-a-secrets");
    assert_eq!(
        rules(lease),
        vec![rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "create", "update"]
        )]
    );
    assert_eq!(roles.len(), 2);
    for rb in of_kind(&docs, "RoleBinding") {
        assert_eq!(
            rb["subjects"],
            json!([{"kind": "ServiceAccount", "name": "esox", "namespace": "tenant-a-secrets"}])
        );
        assert_eq!(rb["metadata"]["namespace"], rb_namespace(rb));
    }
}

#[test]
fn sharding_renders_shard_mode_and_its_lease_rights_cluster_wide_and_scoped() {
    let bin = helm_or_skip!();
    for scoped in [false, true] {
        let mut values = json!({"sharding": {"enabled": true}, "replicaCount": 3});
        if scoped {
            values["scopedNamespace"] = json!("tenant-a");
            values["scopedRBAC"] = json!(true);
            values["installCRDs"] = json!(false);
        }
        let docs = render(&bin, "esox-system", &values);
        let a = args(&docs);
        assert!(a.contains(&"--shard-mode".to_string()), "{a:?}");
        assert_eq!(one(&docs, "Deployment")["spec"]["replicas"], 3);
        let roles = of_kind(&docs, "Role");
        let lease = roles
            .iter()
            .find(|r| r["metadata"]["name"] == "esox-leader-election")
            .expect("the Lease Role");
        assert_eq!(lease["metadata"]["namespace"], "esox-system");
        // The members' Leases: watched by every replica, deleted when one leaves or expires.
        assert_eq!(
            rules(lease),
            vec![rule(
                &["coordination.k8s.io"],
                &["leases"],
                &["get", "list", "watch", "create", "update", "delete"]
            )],
            "scoped: {scoped}"
        );
    }
}

/// ESO's `process*` values: each one set false renders ESO's flag for it and drops the rules
/// only that controller uses; the rest of the ClusterRole is the default one.
#[test]
fn process_values_switch_controllers_off_and_drop_their_rules() {
    let bin = helm_or_skip!();
    let all = controller_rules(true);
    let without = |drop: &[(Vec<String>, Vec<String>, Vec<String>)]| {
        all.iter()
            .filter(|r| !drop.contains(r))
            .cloned()
            .collect::<Vec<_>>()
    };
    let ext = ["external-secrets.io"];
    let cases: Vec<(&str, &str, Vec<_>, Vec<_>)> = vec![
        (
            "processSecretStore",
            "--enable-secret-store-reconciler=false",
            vec![rule(
                &ext,
                &[
                    "externalsecrets/status",
                    "secretstores/status",
                    "clustersecretstores/status",
                ],
                &["patch"],
            )],
            vec![rule(
                &ext,
                &["externalsecrets/status", "clustersecretstores/status"],
                &["patch"],
            )],
        ),
        (
            "processClusterStore",
            "--enable-cluster-store-reconciler=false",
            vec![
                rule(
                    &ext,
                    &["externalsecrets", "secretstores", "clustersecretstores"],
                    &["get", "list", "watch"],
                ),
                rule(
                    &ext,
                    &[
                        "externalsecrets/status",
                        "secretstores/status",
                        "clustersecretstores/status",
                    ],
                    &["patch"],
                ),
                rule(&[""], &["namespaces"], &["get"]),
            ],
            vec![
                rule(
                    &ext,
                    &["externalsecrets", "secretstores"],
                    &["get", "list", "watch"],
                ),
                rule(
                    &ext,
                    &["externalsecrets/status", "secretstores/status"],
                    &["patch"],
                ),
            ],
        ),
        (
            "processClusterExternalSecret",
            "--enable-cluster-external-secret-reconciler=false",
            vec![
                rule(
                    &ext,
                    &["clusterexternalsecrets"],
                    &["get", "list", "watch", "patch"],
                ),
                rule(&ext, &["clusterexternalsecrets/status"], &["patch"]),
                rule(&ext, &["clusterexternalsecrets/finalizers"], &["update"]),
                rule(&ext, &["externalsecrets"], &["create", "update", "delete"]),
            ],
            vec![],
        ),
        (
            "processPushSecret",
            "--enable-push-secret-reconciler=false",
            vec![
                rule(&ext, &["pushsecrets"], &["get", "list", "watch", "patch"]),
                rule(&ext, &["pushsecrets/status"], &["patch"]),
                rule(&ext, &["pushsecrets"], &["create", "update", "delete"]),
            ],
            // ClusterPushSecrets still watch the PushSecrets they stamp.
            vec![rule(
                &ext,
                &["pushsecrets"],
                &["list", "watch", "create", "update", "delete"],
            )],
        ),
        (
            "processClusterPushSecret",
            "--enable-cluster-push-secret-reconciler=false",
            vec![
                rule(&ext, &["clusterpushsecrets"], &["get", "list", "watch"]),
                rule(&ext, &["clusterpushsecrets/status"], &["patch"]),
                rule(&ext, &["clusterpushsecrets/finalizers"], &["update"]),
                rule(&ext, &["pushsecrets"], &["create", "update", "delete"]),
            ],
            vec![],
        ),
    ];
    for (value, flag, dropped, added) in cases {
        let docs = render(&bin, "esox-system", &json!({ value: false }));
        let a = args(&docs);
        assert!(a.contains(&flag.to_string()), "{value}: {a:?}");
        assert_eq!(
            a.iter().filter(|a| a.starts_with("--enable-")).count(),
            1,
            "{value}: only its own switch: {a:?}"
        );
        let mut want = without(&dropped);
        want.extend(added);
        want.sort();
        assert_eq!(rules(one(&docs, "ClusterRole")), want, "{value}");
    }
    // Both kinds that watch namespaces off: no namespace rule at all; every switch off leaves
    // ExternalSecrets and the stores they read.
    let docs = render(
        &bin,
        "esox-system",
        &json!({
            "processSecretStore": false,
            "processClusterStore": false,
            "processClusterExternalSecret": false,
            "processPushSecret": false,
            "processClusterPushSecret": false,
        }),
    );
    let got = rules(one(&docs, "ClusterRole"));
    assert!(
        got.iter().all(|(_, resources, _)| {
            resources.iter().all(|r| {
                !r.contains("push") && !r.starts_with("cluster") && r != "namespaces"
                    || r == "clustergenerators"
                    || r == "clusterwasmplugins"
            })
        }),
        "{got:#?}"
    );
    assert!(got.contains(&rule(
        &ext,
        &["externalsecrets", "secretstores"],
        &["get", "list", "watch"]
    )));
    // Default values: no switch rendered (esox's defaults are ESO's: all on).
    let docs = render(&bin, "esox-system", &json!({}));
    assert!(
        args(&docs).iter().all(|a| !a.starts_with("--enable-")),
        "{:?}",
        args(&docs)
    );
}

/// A RoleBinding lives in the namespace of the Role it binds.
fn rb_namespace(rb: &Value) -> &'static str {
    if rb["roleRef"]["name"] == "esox-controller" {
        "tenant-a"
    } else {
        "tenant-a-secrets"
    }
}

#[test]
fn options_render_as_users_set_them() {
    let bin = helm_or_skip!();
    let docs = render(
        &bin,
        "external-secrets",
        &json!({
            "installCRDs": false,
            "fullnameOverride": "external-secrets",
            "image": {"repository": "registry.example/esox", "tag": "v9", "pullPolicy": "Always"},
            "imagePullSecrets": [{"name": "regcred"}],
            "serviceAccount": {"name": "external-secrets-sa", "annotations": {
                "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/esox"}},
            "extraArgs": {"store-requeue-interval": "1m", "no-plugin-cache": ""},
            "extraEnv": [{"name": "AWS_REGION", "value": "eu-west-1"}],
            "podAnnotations": {"a": "b"}, "podLabels": {"team": "platform"},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            "resources": {"limits": {"memory": "1Gi"}},
            "log": {"level": "debug", "format": "text"},
            "serviceMonitor": {"enabled": true, "additionalLabels": {"release": "prom"}},
            "podDisruptionBudget": {"enabled": true},
            "rbac": {"developerRole": {"create": true, "name": "eso-developer-role"}},
        }),
    );
    // The seeds' IRSA ServiceAccount.
    let sa = one(&docs, "ServiceAccount");
    assert_eq!(sa["metadata"]["name"], "external-secrets-sa");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/esox"
    );
    let deploy = one(&docs, "Deployment");
    let pod = &deploy["spec"]["template"];
    assert_eq!(pod["spec"]["serviceAccountName"], "external-secrets-sa");
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{"name": "regcred"}])
    );
    assert_eq!(pod["metadata"]["annotations"]["a"], "b");
    assert_eq!(pod["metadata"]["labels"]["team"], "platform");
    assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["spec"]["tolerations"][0]["key"], "dedicated");
    let c = container(&docs);
    assert_eq!(c["image"], "registry.example/esox:v9");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["resources"]["limits"]["memory"], "1Gi");
    let a = args(&docs);
    assert!(
        a.contains(&"--store-requeue-interval=1m".to_string()),
        "{a:?}"
    );
    assert!(a.contains(&"--no-plugin-cache".to_string()), "{a:?}");
    assert!(a.contains(&"--log-format=text".to_string()), "{a:?}");
    let env: BTreeMap<String, Value> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect();
    assert_eq!(env["AWS_REGION"]["value"], "eu-west-1");
    assert_eq!(env["RUST_LOG"]["value"], "debug,kube=warn");
    assert_eq!(
        env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );

    // The ServiceMonitor scrapes the metrics Service's port.
    let sm = one(&docs, "ServiceMonitor");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    let svc = one(&docs, "Service");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "ServiceMonitor selects the Service"
        );
    }
    assert_eq!(one(&docs, "PodDisruptionBudget")["spec"]["minAvailable"], 1);

    // The seeds' developer ClusterRole: manage ExternalSecrets, only read stores.
    let dev: Vec<_> = of_kind(&docs, "ClusterRole")
        .into_iter()
        .filter(|r| r["metadata"]["name"] == "eso-developer-role")
        .collect();
    assert_eq!(dev.len(), 1);
    let mut want = vec![
        rule(
            &["external-secrets.io"],
            &["externalsecrets"],
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        rule(
            &["external-secrets.io"],
            &["secretstores", "clustersecretstores"],
            &["get", "list", "watch"],
        ),
    ];
    want.sort();
    assert_eq!(rules(dev[0]), want);
}

/// `openssl` on PEM text; returns stdout.
fn openssl(args: &[&str], files: &[(&str, &[u8])]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in files {
        std::fs::write(dir.path().join(name), data).unwrap();
    }
    esox_tests::stdout_ok(Command::new("openssl").args(args).current_dir(dir.path()))
}

/// `crt` verifies against `ca` and names `dns` (checked by OpenSSL, as a client would).
fn assert_serves(ca: &[u8], crt: &[u8], dns: &str) {
    let verified = openssl(
        &["verify", "-CAfile", "ca.pem", "tls.pem"],
        &[("ca.pem", ca), ("tls.pem", crt)],
    );
    assert!(verified.contains("tls.pem: OK"), "{verified}");
    let san = openssl(
        &["x509", "-in", "tls.pem", "-noout", "-ext", "subjectAltName"],
        &[("tls.pem", crt)],
    );
    assert!(san.contains(&format!("DNS:{dns}")), "{san}");
}

fn b64(v: &Value) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
}

#[test]
fn webhook_renders_a_trusted_serving_certificate_or_a_cert_manager_certificate() {
    let bin = helm_or_skip!();
    let docs = render(
        &bin,
        "external-secrets",
        &json!({"installCRDs": false, "webhook": {"create": true, "failurePolicy": "Ignore",
                "certProvider": "helm"}}),
    );
    let c = container(&docs);
    assert!(args(&docs).contains(&"--webhook-port=9443".to_string()));
    assert!(
        c["ports"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "webhook", "containerPort": 9443, "protocol": "TCP"}))
    );
    let svc = of_kind(&docs, "Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == "esox-webhook")
        .expect("webhook Service");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "webhook");
    let vwc = one(&docs, "ValidatingWebhookConfiguration");
    let hooks = vwc["webhooks"].as_array().unwrap();
    let names: Vec<_> = hooks.iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "validate.externalsecret.external-secrets.io",
            "validate.secretstore.external-secrets.io",
            "validate.clustersecretstore.external-secrets.io",
            "validate.pushsecret.external-secrets.io",
            "validate.clusterpushsecret.external-secrets.io"
        ]
    );
    // ESO's paths and versions for its kinds; v1alpha1 (controller-runtime's path
    // convention) for the PushSecret kinds, which ESO's webhook does not validate.
    let route = |h: &serde_json::Value| {
        (
            h["clientConfig"]["service"]["path"]
                .as_str()
                .unwrap()
                .to_string(),
            h["rules"][0]["apiVersions"].clone(),
            h["rules"][0]["resources"].clone(),
        )
    };
    assert_eq!(
        route(&hooks[0]),
        (
            "/validate-external-secrets-io-v1-externalsecret".to_string(),
            json!(["v1", "v1beta1"]),
            json!(["externalsecrets"])
        )
    );
    assert_eq!(
        route(&hooks[4]),
        (
            "/validate-external-secrets-io-v1alpha1-clusterpushsecret".to_string(),
            json!(["v1alpha1"]),
            json!(["clusterpushsecrets"])
        )
    );
    assert_eq!(hooks[3]["rules"][0]["scope"], "Namespaced");
    let secret = one(&docs, "Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    // The apiserver trusts the certificate the pod serves: caBundle verifies it, for the
    // Service's DNS name.
    for h in hooks {
        assert_eq!(h["failurePolicy"], "Ignore");
        assert_eq!(h["sideEffects"], "None");
        assert_eq!(h["clientConfig"]["service"]["name"], "esox-webhook");
        assert_eq!(h["clientConfig"]["caBundle"], secret["data"]["ca.crt"]);
    }
    assert_serves(
        &b64(&secret["data"]["ca.crt"]),
        &b64(&secret["data"]["tls.crt"]),
        "esox-webhook.external-secrets.svc",
    );
    let mounted = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "webhook-certs")
        .expect("certificate mounted");
    assert_eq!(mounted["readOnly"], true);

    // cert-manager: a Certificate for the same Secret and CA injection, no chart-made key.
    let docs = render(
        &bin,
        "external-secrets",
        &json!({"installCRDs": false, "scopedNamespace": "tenant-a", "webhook": {"create": true,
                "certManager": {"enabled": true, "issuerRef": {"name": "ca-issuer", "kind": "ClusterIssuer"}}}}),
    );
    assert!(of_kind(&docs, "Secret").is_empty());
    let cert = one(&docs, "Certificate");
    assert_eq!(cert["spec"]["secretName"], "esox-webhook-tls");
    assert_eq!(cert["spec"]["issuerRef"]["kind"], "ClusterIssuer");
    assert!(
        strings(&cert["spec"]["dnsNames"])
            .contains(&"esox-webhook.external-secrets.svc".to_string())
    );
    let vwc = one(&docs, "ValidatingWebhookConfiguration");
    assert_eq!(
        vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "external-secrets/esox-webhook"
    );
    // Scoped: only the watched namespace's objects, and no cluster-scoped kinds' webhooks.
    let hooks = vwc["webhooks"].as_array().unwrap();
    let names: Vec<_> = hooks.iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "validate.externalsecret.external-secrets.io",
            "validate.secretstore.external-secrets.io",
            "validate.pushsecret.external-secrets.io"
        ]
    );
    for h in hooks {
        assert_eq!(
            h["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "tenant-a"
        );
        assert!(h["clientConfig"].get("caBundle").is_none());
    }
}

// --- install into the local apiserver ----------------------------------------------------------

/// `helm install` into the stack (the CRDs are already installed by the harness).
fn install(bin: &Path, release: &str, namespace: &str, values: &Value) -> Vec<Value> {
    let env = stack_env().unwrap();
    let (_dir, file) = values_file(values);
    helm_ok(
        bin,
        &[
            "install",
            release,
            &chart(),
            "-n",
            namespace,
            "--kubeconfig",
            &env["KUBECONFIG"],
            "-f",
            &file,
            "--set",
            "installCRDs=false",
        ],
    );
    let manifest = helm_ok(
        bin,
        &[
            "get",
            "manifest",
            release,
            "-n",
            namespace,
            "--kubeconfig",
            &env["KUBECONFIG"],
        ],
    );
    parse(&manifest)
}

async fn client_from(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// The `esox` binary run as the chart's Deployment runs it: the container's args (with the
/// metrics address moved to a free loopback port and the plugin cache to a private
/// directory), the chart's RUST_LOG, and the ServiceAccount's token. Killed on drop.
struct ChartController {
    child: std::process::Child,
    addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChartController {
    fn spawn(docs: &[Value], kubeconfig: &Path, dir: tempfile::TempDir) -> ChartController {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let cache = dir.path().join("plugin-cache");
        let webhook_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut args = args(docs);
        assert_eq!(args.remove(0), "controller");
        let args: Vec<String> = std::iter::once("controller".to_string())
            .chain(args.into_iter().map(|a| {
                if a.starts_with("--metrics-addr=") {
                    format!("--metrics-addr={addr}")
                } else if a.starts_with("--plugin-cache-dir=") {
                    format!("--plugin-cache-dir={}", cache.display())
                } else if a.starts_with("--webhook-port=") {
                    format!("--webhook-port={webhook_port}")
                } else {
                    a
                }
            }))
            .collect();
        let c = container(docs);
        let rust_log = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "RUST_LOG")
            .and_then(|e| e["value"].as_str())
            .expect("the chart sets RUST_LOG")
            .to_string();
        let env = stack_env().unwrap();
        let log = dir.path().join("esox.log");
        let mut cmd = Command::new(esox_bin());
        // The chart's literal environment (the webhook settings), and what the downward API
        // would give the pod.
        for e in c["env"].as_array().unwrap() {
            if let (Some(k), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
                cmd.env(k, v);
            }
        }
        let namespace = one(docs, "Deployment")["metadata"]["namespace"]
            .as_str()
            .unwrap()
            .to_string();
        cmd.args(&args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", rust_log)
            .env("POD_NAME", "esox-chart-test")
            .env("POD_NAMESPACE", namespace)
            .env("ESOX_WEBHOOK_HOST", "127.0.0.1")
            .env_remove("ESOX_NAMESPACE")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for k in ["AWS_ENDPOINT_URL", "AWS_REGION"] {
            if let Some(v) = env.get(k) {
                cmd.env(k, v);
            }
        }
        let child = cmd.spawn().expect("start esox");
        ChartController {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    /// The status line of `GET path` on the metrics/probe port.
    async fn get(&self, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(&self.addr).await else {
            return String::new();
        };
        let _ = s
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out.lines().next().unwrap_or_default().to_string()
    }

    async fn wait_ready(&self) {
        wait_for(Duration::from_secs(90), "esox /readyz 200", || async {
            self.get("/readyz").await.contains("200").then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", self.logs()));
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChartController {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// RBAC denials of this ServiceAccount in the controller's log (kube reports them as
/// `... is forbidden: User "system:serviceaccount:<ns>:<name>" cannot ...`).
fn denials(log: &str, namespace: &str, sa: &str) -> Vec<String> {
    let who = format!("system:serviceaccount:{namespace}:{sa}");
    log.lines()
        .filter(|l| l.contains("forbidden") && l.contains(&who))
        .map(str::to_string)
        .collect()
}

/// Whether a denial (a JSON log line) is about an object in a namespace other than `ours`. A
/// cluster-wide controller also reconciles what the namespaces of earlier tests hold (kept for
/// inspection): an Argo Rollout another test's ExternalSecret restarts is no business of this
/// release's RBAC.
fn in_another_namespace(denial: &str, ours: &str) -> bool {
    denial.contains("in the namespace \\\"")
        && !denial.contains(&format!("in the namespace \\\"{ours}\\\""))
}

fn status_code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn installed_chart_rbac_lets_esox_sync_cluster_wide() {
    let bin = helm_or_skip!();
    let _cluster = cluster_lock().await;
    let env = TestEnv::without_controller("helm-cluster").await;
    let ns = env.ns.clone();
    let release = ns.clone();
    // The seeds' install: IRSA-annotated ServiceAccount `external-secrets-sa`.
    let docs = install(
        &bin,
        &release,
        &ns,
        &json!({"serviceAccount": {"name": "external-secrets-sa", "annotations": {
            "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/esox-irsa"}}}),
    );
    let fullname = format!("{release}-esox");
    // What helm created is in the cluster.
    let deploy: Api<Deployment> = Api::namespaced(env.client.clone(), &ns);
    assert!(deploy.get_opt(&fullname).await.unwrap().is_some());
    let cr: Api<ClusterRole> = Api::all(env.client.clone());
    let live = cr.get(&format!("{fullname}-controller")).await.unwrap();
    assert_eq!(
        rules(&serde_json::to_value(&live).unwrap()),
        controller_rules(true)
    );
    let crb: Api<ClusterRoleBinding> = Api::all(env.client.clone());
    assert!(
        crb.get_opt(&format!("{fullname}-controller"))
            .await
            .unwrap()
            .is_some()
    );

    // The seeds' flows: a namespaced Fake store, the seeds' IRSA ClusterSecretStore (jwt auth
    // through the chart's own ServiceAccount, against moto), a Password generator.
    let css = format!("{ns}-aws");
    let key = format!("{ns}/production/db/credentials");
    put_aws_secret(&key, CREDS, &[]).await;
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata: {{name: fake}}
spec:
  provider:
    fake:
      data: [{{key: api-key, value: '{{"api_token_value":"tok-123"}}'}}]
---
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {{name: api-key-sync}}
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: fake, kind: SecretStore}}
  target: {{name: api-credentials, creationPolicy: Owner}}
  data:
  - secretKey: API_TOKEN
    remoteRef: {{key: api-key, property: api_token_value}}
---
{irsa}---
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {{name: db-credentials-es}}
spec:
  refreshInterval: "1h"
  secretStoreRef: {{name: {css}, kind: ClusterSecretStore}}
  target: {{name: db-credentials-native, creationPolicy: Owner}}
  dataFrom:
  - extract: {{key: {key}}}
---
apiVersion: generators.external-secrets.io/v1alpha1
kind: Password
metadata: {{name: db-password}}
spec: {{length: 24}}
---
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {{name: generated}}
spec:
  refreshInterval: 1h
  target: {{name: generated}}
  dataFrom:
  - sourceRef:
      generatorRef: {{apiVersion: generators.external-secrets.io/v1alpha1, kind: Password, name: db-password}}
"#,
        irsa = irsa_cluster_store(&css, &ns),
    ))
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig =
        service_account_kubeconfig(&env.client, &ns, "external-secrets-sa", dir.path()).await;
    let esox = ChartController::spawn(&docs, &kubeconfig, dir);
    esox.wait_ready().await;
    assert!(esox.get("/healthz").await.contains("200"));

    esox_tests::wait_secret_value(&env.client, &ns, "api-credentials", "API_TOKEN", "tok-123")
        .await;
    let db = esox_tests::wait_secret_value(
        &env.client,
        &ns,
        "db-credentials-native",
        "username",
        "admin",
    )
    .await;
    assert_eq!(secret_strings(&db)["password"], "superSecretPassword123");
    let generated = wait_for(Duration::from_secs(90), "generated password", || async {
        let s = env.secrets().get_opt("generated").await.ok()??;
        secret_strings(&s).get("password").cloned()
    })
    .await
    .unwrap();
    assert_eq!(generated.chars().count(), 24);
    // Status and events are written too (status patches, events.k8s.io).
    env.wait_ready("db-credentials-es", "True", "SecretSynced")
        .await;
    env.wait_store("fake", |s, _, _| s == "True").await;
    wait_for(
        Duration::from_secs(60),
        "ClusterSecretStore Ready",
        || async {
            let s = Api::<esox::api::ClusterSecretStore>::all(env.client.clone())
                .get(&css)
                .await
                .ok()?;
            s.status?
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        },
    )
    .await
    .unwrap();
    wait_for(Duration::from_secs(30), "a Created event", || async {
        env.events_for("api-key-sync")
            .await
            .iter()
            .any(|e| e.starts_with("Created"))
            .then_some(())
    })
    .await
    .unwrap();

    // A ClusterExternalSecret, with only the chart's RBAC: its ExternalSecret is created and
    // synced, its status written, and both go when it is deleted (finalizer patches included).
    let ces = format!("{ns}-ces");
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1
kind: ClusterExternalSecret
metadata: {{name: {ces}}}
spec:
  namespaces: [{ns}]
  externalSecretName: stamped
  externalSecretSpec:
    refreshInterval: 1h
    secretStoreRef: {{name: fake, kind: SecretStore}}
    target: {{name: stamped}}
    data:
    - secretKey: API_TOKEN
      remoteRef: {{key: api-key, property: api_token_value}}
"#
    ))
    .await
    .unwrap();
    esox_tests::wait_secret_value(&env.client, &ns, "stamped", "API_TOKEN", "tok-123").await;
    let ces_api: Api<esox::api::ClusterExternalSecret> = Api::all(env.client.clone());
    wait_for(
        Duration::from_secs(30),
        "ClusterExternalSecret Ready",
        || async {
            let status = ces_api.get(&ces).await.ok()?.status?;
            (status.provisioned_namespaces == [ns.clone()]
                && status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True"))
            .then_some(())
        },
    )
    .await
    .unwrap();
    ces_api.delete(&ces, &Default::default()).await.unwrap();
    wait_for(
        Duration::from_secs(30),
        "ClusterExternalSecret and its ExternalSecret gone",
        || async {
            (ces_api.get_opt(&ces).await.ok()?.is_none()
                && env
                    .external_secrets()
                    .get_opt("stamped")
                    .await
                    .ok()?
                    .is_none())
            .then_some(())
        },
    )
    .await
    .unwrap();

    let log = esox.logs();
    drop(esox);
    let mut denied = denials(&log, &ns, "external-secrets-sa");
    denied.retain(|d| !in_another_namespace(d, &ns));
    assert!(denied.is_empty(), "RBAC denials:\n{}", denied.join("\n"));
    for value in ["superSecretPassword123", "tok-123", &generated] {
        assert!(
            !log.contains(value),
            "a secret value is in the controller log"
        );
    }
}

#[tokio::test]
async fn installed_scoped_chart_confines_esox_to_its_namespace() {
    let bin = helm_or_skip!();
    let _cluster = cluster_lock().await;
    let no_controller = || Options {
        no_controller: true,
        ..Default::default()
    };
    // The release lives in one namespace, watches another, and a third is someone else's.
    let home = TestEnv::with("helm-scoped-home", no_controller()).await;
    let tenant = TestEnv::with("helm-scoped-tenant", no_controller()).await;
    let other = TestEnv::with("helm-scoped-other", no_controller()).await;
    let release = home.ns.clone();
    let docs = install(
        &bin,
        &release,
        &home.ns,
        &json!({"scopedNamespace": tenant.ns, "scopedRBAC": true}),
    );
    let fullname = format!("{release}-esox");
    let sa = fullname.clone();

    // No cluster-wide grant exists for this release; its Role is in the tenant namespace.
    let selector = ListParams::default().labels(&format!("app.kubernetes.io/instance={release}"));
    let crs = Api::<ClusterRole>::all(home.client.clone())
        .list(&selector)
        .await
        .unwrap();
    assert!(crs.items.is_empty(), "ClusterRoles: {:?}", crs.items);
    let crbs = Api::<ClusterRoleBinding>::all(home.client.clone())
        .list(&selector)
        .await
        .unwrap();
    assert!(crbs.items.is_empty());
    let roles: Api<Role> = Api::namespaced(home.client.clone(), &tenant.ns);
    assert!(
        roles
            .get_opt(&format!("{fullname}-controller"))
            .await
            .unwrap()
            .is_some()
    );
    let bindings: Api<RoleBinding> = Api::namespaced(home.client.clone(), &tenant.ns);
    assert!(
        bindings
            .get_opt(&format!("{fullname}-controller"))
            .await
            .unwrap()
            .is_some()
    );

    let store_and_es = |value: &str| {
        format!(
            "apiVersion: external-secrets.io/v1beta1\nkind: SecretStore\nmetadata: {{name: fake}}\nspec:\n  provider:\n    fake:\n      data: [{{key: production/db/credentials, value: '{value}'}}]\n---\napiVersion: external-secrets.io/v1beta1\nkind: ExternalSecret\nmetadata: {{name: db-credentials-es}}\nspec:\n  refreshInterval: 1h\n  secretStoreRef: {{name: fake, kind: SecretStore}}\n  target: {{name: db-credentials-native}}\n  dataFrom:\n  - extract: {{key: production/db/credentials}}\n"
        )
    };
    // Someone else's ExternalSecret exists before the controller starts.
    other
        .apply(&store_and_es(r#"{"password":"other-tenant-pw"}"#))
        .await
        .unwrap();
    tenant
        .apply(&store_and_es(r#"{"password":"tenant-pw"}"#))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = service_account_kubeconfig(&home.client, &home.ns, &sa, dir.path()).await;
    let esox = ChartController::spawn(&docs, &kubeconfig, dir);
    assert!(
        args(&docs).contains(&format!("--namespace={}", tenant.ns)),
        "{:?}",
        args(&docs)
    );
    esox.wait_ready().await;
    esox_tests::wait_secret_value(
        &tenant.client,
        &tenant.ns,
        "db-credentials-native",
        "password",
        "tenant-pw",
    )
    .await;
    tenant
        .wait_ready("db-credentials-es", "True", "SecretSynced")
        .await;

    // The other namespace's ExternalSecret was never touched.
    assert!(
        other
            .secrets()
            .get_opt("db-credentials-native")
            .await
            .unwrap()
            .is_none()
    );
    let es = other
        .external_secrets()
        .get("db-credentials-es")
        .await
        .unwrap();
    assert!(es.status.is_none(), "{:?}", es.status);

    // The ServiceAccount itself cannot reach Secrets outside the tenant namespace: not in
    // another namespace, not cluster-wide, not in its own release namespace (where helm
    // keeps its release Secrets), and it sees no cluster stores.
    let as_esox = client_from(&kubeconfig).await;
    let in_tenant: Api<Secret> = Api::namespaced(as_esox.clone(), &tenant.ns);
    assert!(in_tenant.get("db-credentials-native").await.is_ok());
    for ns in [&other.ns, &home.ns] {
        let api: Api<Secret> = Api::namespaced(as_esox.clone(), ns);
        assert_eq!(
            status_code(api.list(&Default::default()).await.unwrap_err()),
            403,
            "list secrets in {ns}"
        );
        let mut s = Secret::default();
        s.metadata.name = Some("planted".into());
        assert_eq!(
            status_code(api.create(&PostParams::default(), &s).await.unwrap_err()),
            403,
            "create a secret in {ns}"
        );
    }
    let all: Api<Secret> = Api::all(as_esox.clone());
    assert_eq!(
        status_code(all.list(&Default::default()).await.unwrap_err()),
        403
    );
    let css: Api<esox::api::ClusterSecretStore> = Api::all(as_esox.clone());
    assert_eq!(
        status_code(css.list(&Default::default()).await.unwrap_err()),
        403
    );

    // The same answer from the authorizer (what `kubectl auth can-i --as` asks).
    let user = format!("system:serviceaccount:{}:{sa}", home.ns);
    let can = |ns: String, verb: &'static str| {
        let user = user.clone();
        let client = home.client.clone();
        async move {
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user),
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(ns),
                        verb: Some(verb.into()),
                        resource: Some("secrets".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            Api::<SubjectAccessReview>::all(client)
                .create(&PostParams::default(), &review)
                .await
                .unwrap()
                .status
                .unwrap()
                .allowed
        }
    };
    assert!(can(tenant.ns.clone(), "update").await);
    assert!(!can(other.ns.clone(), "get").await);
    assert!(!can(other.ns.clone(), "update").await);
    assert!(!can(home.ns.clone(), "get").await);

    let log = esox.logs();
    drop(esox);
    let denied = denials(&log, &home.ns, &sa);
    assert!(denied.is_empty(), "RBAC denials:\n{}", denied.join("\n"));
    assert!(
        !log.contains("tenant-pw"),
        "a secret value is in the controller log"
    );
}

/// `webhook.certProvider: esox` (the default): no certificate in the chart, the controller is
/// told where to keep one, and RBAC grants exactly that Secret and that caBundle.
#[test]
fn webhook_certificate_by_esox_renders_its_settings_and_narrow_rbac() {
    let bin = helm_or_skip!();
    let docs = render(
        &bin,
        "external-secrets",
        &json!({"installCRDs": false, "webhook": {"create": true}}),
    );
    let c = container(&docs);
    let env: BTreeMap<String, String> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.into(), e["value"].as_str()?.into())))
        .collect();
    assert_eq!(env["ESOX_WEBHOOK_CERT_SECRET"], "esox-webhook-tls");
    assert_eq!(env["ESOX_WEBHOOK_CONFIG_NAME"], "esox-webhook");
    assert_eq!(
        env["ESOX_WEBHOOK_DNS_NAMES"],
        "esox-webhook,esox-webhook.external-secrets,esox-webhook.external-secrets.svc,esox-webhook.external-secrets.svc.cluster.local"
    );
    assert!(!env.contains_key("ESOX_WEBHOOK_CERT_DIR"));
    assert!(
        !c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "webhook-certs")
    );
    // The Secret is the release's (so uninstall removes it) but holds nothing until esox
    // fills it; the configuration has no caBundle for helm to reset.
    let secret = one(&docs, "Secret");
    assert_eq!(secret["metadata"]["name"], "esox-webhook-tls");
    assert!(secret.get("data").is_none(), "{secret}");
    let vwc = one(&docs, "ValidatingWebhookConfiguration");
    for h in vwc["webhooks"].as_array().unwrap() {
        assert!(h["clientConfig"].get("caBundle").is_none());
    }
    let role = of_kind(&docs, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "esox-webhook-certs")
        .expect("certificate Role");
    assert_eq!(role["metadata"]["namespace"], "external-secrets");
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["esox-webhook-tls"],
             "verbs": ["get", "list", "watch", "update"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}
        ])
    );
    let cr = of_kind(&docs, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "esox-webhook-ca-bundle")
        .expect("caBundle ClusterRole");
    assert_eq!(
        cr["rules"],
        json!([{"apiGroups": ["admissionregistration.k8s.io"],
                "resources": ["validatingwebhookconfigurations"], "resourceNames": ["esox-webhook"],
                "verbs": ["get", "list", "watch", "update"]}])
    );
    let out = helm(
        &bin,
        &[
            "template",
            "x",
            &chart(),
            "--set",
            "webhook.create=true,webhook.certProvider=vault",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("webhook.certProvider must be esox, helm or cert-manager"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Installed with the webhook, esox (as the chart's ServiceAccount, with only the chart's
/// RBAC) makes its certificate Secret and fills the caBundle, for the Service's names.
#[tokio::test]
async fn installed_chart_webhook_gets_its_certificate_from_esox() {
    let bin = helm_or_skip!();
    let no_controller = || Options {
        no_controller: true,
        ..Default::default()
    };
    let home = TestEnv::with("helm-webhook-home", no_controller()).await;
    let tenant = TestEnv::with("helm-webhook-tenant", no_controller()).await;
    let release = home.ns.clone();
    // Scoped, so the configuration (whose Service no pod backs here) covers only the tenant
    // namespace, and Ignore, so it can never block another test.
    let docs = install(
        &bin,
        &release,
        &home.ns,
        &json!({"scopedNamespace": tenant.ns, "scopedRBAC": true,
                "webhook": {"create": true, "failurePolicy": "Ignore"}}),
    );
    let fullname = format!("{release}-esox");
    let webhook = format!("{fullname}-webhook");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig =
        service_account_kubeconfig(&home.client, &home.ns, &fullname, dir.path()).await;
    // Another Secret in the release namespace, which the ServiceAccount must not read.
    home.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: unrelated}\nstringData: {a: b}\n")
        .await
        .unwrap();
    let esox = ChartController::spawn(&docs, &kubeconfig, dir);
    let configs: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(home.client.clone());
    let secrets = home.secrets();
    let (ca, crt) = wait_for(Duration::from_secs(60), "certificate and caBundle", || {
        let (configs, secrets, webhook) = (configs.clone(), secrets.clone(), webhook.clone());
        async move {
            let data = secrets.get(&format!("{webhook}-tls")).await.ok()?.data?;
            let ca = data.get("ca.crt")?.0.clone();
            let hooks = configs.get(&webhook).await.ok()?.webhooks?;
            hooks
                .iter()
                .all(|h| h.client_config.ca_bundle.as_ref().map(|b| &b.0) == Some(&ca))
                .then(|| {
                    (
                        ca,
                        data.get("tls.crt").map(|c| c.0.clone()).unwrap_or_default(),
                    )
                })
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", esox.logs()));
    assert_serves(&ca, &crt, &format!("{webhook}.{}.svc", home.ns));
    // Least privilege: that Secret only.
    let as_esox = client_from(&kubeconfig).await;
    let api: Api<Secret> = Api::namespaced(as_esox, &home.ns);
    assert_eq!(status_code(api.get("unrelated").await.unwrap_err()), 403);
    let log = esox.logs();
    drop(esox);
    let denied = denials(&log, &home.ns, &fullname);
    assert!(denied.is_empty(), "RBAC denials:\n{}", denied.join("\n"));
    assert!(
        !log.contains("PRIVATE KEY"),
        "a private key is in the controller log"
    );
    helm_ok(
        &bin,
        &[
            "uninstall",
            &release,
            "-n",
            &home.ns,
            "--kubeconfig",
            &stack_env().unwrap()["KUBECONFIG"],
        ],
    );
    assert!(
        secrets
            .get_opt(&format!("{webhook}-tls"))
            .await
            .unwrap()
            .is_none(),
        "uninstall removes the certificate Secret"
    );
}

/// Rollout restarts: `get`/`patch` on the named workload kinds by default; `list`/`watch` and
/// `--reloader-compat` only in the Reloader-compatible mode; Argo Rollouts on request; none of
/// it when disabled.
#[test]
fn rollout_restart_values() {
    let bin = helm_or_skip!();
    let apps = |verbs: &[&str]| {
        rule(
            &["apps"],
            &["deployments", "statefulsets", "daemonsets"],
            verbs,
        )
    };
    let docs = render(
        &bin,
        "external-secrets",
        &json!({"installCRDs": false, "rolloutRestart": {"reloaderCompat": true, "argoRollouts": true}}),
    );
    assert!(args(&docs).contains(&"--reloader-compat".to_string()));
    let r = rules(one(&docs, "ClusterRole"));
    assert!(
        r.contains(&apps(&["get", "patch", "list", "watch"])),
        "{r:?}"
    );
    assert!(r.contains(&rule(&["argoproj.io"], &["rollouts"], &["get", "patch"])));

    let docs = render(
        &bin,
        "external-secrets",
        &json!({"installCRDs": false, "rolloutRestart": {"enabled": false, "reloaderCompat": true}}),
    );
    assert!(!args(&docs).contains(&"--reloader-compat".to_string()));
    let r = rules(one(&docs, "ClusterRole"));
    assert!(!r.iter().any(|(g, _, _)| g == &["apps"]), "{r:?}");

    // Scoped: in the namespace's Role.
    let docs = render(
        &bin,
        "external-secrets",
        &json!({"installCRDs": false, "scopedNamespace": "tenant-a", "scopedRBAC": true}),
    );
    let r = rules(one(&docs, "Role"));
    assert!(r.contains(&apps(&["get", "patch"])), "{r:?}");
}
