//! The controller image: the repository's `Dockerfile`, built by `scripts/image.sh`, run as the
//! Helm chart's pod would run it, against the local apiserver.
//!
//! The Docker daemon comes from `scripts/docker.sh` (a running one at `$DOCKER_HOST`, else a
//! dockerd it starts); the test skips, printing `SKIPPED: <reason>`, only when no daemon can be
//! had (or helm cannot be built, as the chart tests do). The image's base is the local
//! stand-in for distroless/static that `scripts/image.sh` makes, because no registry is
//! reachable here (see the Dockerfile).
//!
//! The chart is installed in scoped mode into the test's namespace, and the container gets
//! what the kubelet would give the chart's Deployment: the container's args and env, its
//! securityContext (read-only root, uid/gid 65532 with fsGroup, no capabilities, no privilege
//! escalation, the runtime's default seccomp profile), its memory limit, a writable volume at
//! the plugin cache's mountPath only, and the in-cluster configuration (a TokenRequest token for
//! the chart's ServiceAccount, the CA and namespace at
//! `/var/run/secrets/kubernetes.io/serviceaccount`, `KUBERNETES_SERVICE_HOST`/`PORT`). There is
//! no pod network: the container shares the host's (`--network host`), where the stack listens.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use esox_tests::{TestEnv, helm_bin, helm_ok, repo_root, secret_strings, stack_env, wait_for};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

/// Runs a project script; its stdout (trimmed) when it succeeds.
fn script(name: &str, envs: &[(&str, &str)]) -> Result<String, String> {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts").join(name))
        .envs(envs.iter().copied())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run scripts/{name}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("scripts/{name} exited with {}", out.status))
    }
}

/// `docker` against the daemon at `host`.
fn docker(host: &str, args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .output()
        .expect("docker runs")
}

fn docker_ok(host: &str, args: &[&str]) -> String {
    esox_tests::stdout_ok(Command::new("docker").args(args).env("DOCKER_HOST", host))
        .trim()
        .to_string()
}

/// The container, removed (with its logs) when the test ends, pass or fail.
struct Container {
    host: String,
    name: String,
}

impl Container {
    fn logs(&self) -> String {
        let out = docker(&self.host, &["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The container's process id on this host (the daemon is local: scripts/docker.sh).
    fn pid(&self) -> u32 {
        docker_ok(&self.host, &["inspect", "-f", "{{.State.Pid}}", &self.name])
            .parse()
            .expect("a pid")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&self.host, &["rm", "-f", &self.name]);
    }
}

/// The status line of `GET path` on `addr`.
async fn get(addr: &str, path: &str) -> String {
    esox_tests::http_get(addr, path)
        .await
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The one line of `/proc/<pid>/status` starting with `key:`, its value.
fn proc_status(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The mount options of the mount at `target` in the process's mount namespace.
fn mount_options(pid: u32, target: &str) -> Vec<String> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    // Fields: id parent major:minor root mount-point options ...; the last mount at a path wins.
    let line = info
        .lines()
        .rfind(|l| l.split_whitespace().nth(4) == Some(target))
        .unwrap_or_else(|| panic!("nothing mounted at {target}:\n{info}"));
    line.split_whitespace()
        .nth(5)
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect()
}

/// Kubernetes memory quantity (`512Mi`) as docker's `--memory` (`512m`).
fn docker_memory(q: &str) -> String {
    for (suffix, unit) in [("Ki", "k"), ("Mi", "m"), ("Gi", "g")] {
        if let Some(n) = q.strip_suffix(suffix) {
            return format!("{n}{unit}");
        }
    }
    panic!("unexpected memory quantity {q}");
}

#[tokio::test]
async fn image_runs_under_the_charts_pod_security_context() {
    let host = match script("docker.sh", &[]) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("SKIPPED: no Docker daemon could be made to run ({e}; see its output above)");
            return;
        }
    };
    let helm = match helm_bin() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("SKIPPED: helm is unavailable ({e})");
            return;
        }
    };
    let start = Instant::now();
    let image = script("image.sh", &[("DOCKER_HOST", &host)])
        .unwrap_or_else(|e| panic!("building the image failed: {e}"));
    eprintln!("image {image} built in {:?}", start.elapsed());

    // The image itself: distroless's nonroot user, the binary as entrypoint, `controller` by
    // default.
    let config: Value = serde_json::from_str(&docker_ok(
        &host,
        &["image", "inspect", "-f", "{{json .Config}}", &image],
    ))
    .unwrap();
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Entrypoint"], json!(["/usr/local/bin/esox"]));
    assert_eq!(config["Cmd"], json!(["controller"]));

    // The chart, scoped to the test's namespace, pointing at the image just built.
    let env = TestEnv::without_controller("image").await;
    let ns = env.ns.clone();
    let stack = stack_env().unwrap();
    let (repository, tag) = image.rsplit_once(':').expect("image is repository:tag");
    let chart = repo_root().join("deploy/charts/esox");
    helm_ok(
        &helm,
        &[
            "install",
            &ns,
            &chart.to_string_lossy(),
            "-n",
            &ns,
            "--kubeconfig",
            &stack["KUBECONFIG"],
            "--set",
            &format!(
                "installCRDs=false,scopedNamespace={ns},scopedRBAC=true,image.repository={repository},image.tag={tag}"
            ),
        ],
    );
    let manifest = helm_ok(
        &helm,
        &[
            "get",
            "manifest",
            &ns,
            "-n",
            &ns,
            "--kubeconfig",
            &stack["KUBECONFIG"],
        ],
    );
    let docs: Vec<Value> = esox::offline::documents(&manifest).expect("helm printed YAML");
    let deploy = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    let pod = &deploy["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["image"], image.as_str());

    // The pod's security context, as docker flags. Every field the chart sets is translated
    // (or asserted to be what docker does by default), so a chart change shows up here.
    let psc = &pod["securityContext"];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc["capabilities"].get("add").is_none());
    assert_eq!(sc["runAsNonRoot"], true);
    // RuntimeDefault: docker's default seccomp profile, which a run without
    // `--security-opt seccomp=...` gets.
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    let user = format!("{}:{}", sc["runAsUser"], sc["runAsGroup"]);
    assert_eq!(user, "65532:65532");
    let fs_group = psc["fsGroup"].to_string();
    let memory = docker_memory(c["resources"]["limits"]["memory"].as_str().unwrap());
    let cache_mount = c["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert_eq!(
        pod["volumes"][0]["name"], c["volumeMounts"][0]["name"],
        "the plugin cache volume"
    );
    assert!(pod["volumes"][0]["emptyDir"].is_object());
    // An emptyDir: writable by fsGroup, executable (kubelet does not mount it noexec).
    let tmpfs =
        format!("{cache_mount}:rw,exec,nosuid,nodev,size=256m,uid=0,gid={fs_group},mode=2777");

    // The container's args, with the metrics address moved to a free loopback port (the
    // host's network is shared; the chart's 0.0.0.0:8080 could be taken).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .map(|a| {
            if a.starts_with("--metrics-addr=") {
                format!("--metrics-addr={addr}")
            } else {
                a
            }
        })
        .collect();
    assert!(args.contains(&format!("--namespace={ns}")), "{args:?}");
    assert!(
        args.contains(&format!("--plugin-cache-dir={cache_mount}")),
        "{args:?}"
    );
    // The container's env: literal values as they are, the downward API's fields resolved.
    let container_name = format!("esox-image-test-{ns}");
    let mut envs: Vec<String> = Vec::new();
    for e in c["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.name") => container_name.clone(),
            Some("metadata.namespace") => ns.clone(),
            Some(other) => panic!("unexpected fieldRef {other}"),
            None => e["value"].as_str().unwrap().to_string(),
        };
        envs.push(format!("{name}={value}"));
    }

    // The in-cluster configuration the kubelet projects: a token for the chart's
    // ServiceAccount, the cluster CA, the namespace; the apiserver's address in the env.
    let sa_name = pod["serviceAccountName"].as_str().unwrap();
    let token = Api::<ServiceAccount>::namespaced(env.client.clone(), &ns)
        .create_subresource::<TokenRequest, TokenRequest>(
            "token",
            sa_name,
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    audiences: vec![],
                    expiration_seconds: Some(3600),
                    bound_object_ref: None,
                },
                ..Default::default()
            },
        )
        .await
        .expect("TokenRequest for the chart's ServiceAccount")
        .status
        .expect("a token")
        .token;
    // Private to root on the host (the tempdir is 0700); the mounted directory and files are
    // readable by the container's user, as a projected volume's 0644 files are.
    let dir = tempfile::tempdir().unwrap();
    let sa_dir = dir.path().join("serviceaccount");
    std::fs::create_dir(&sa_dir).unwrap();
    std::fs::write(sa_dir.join("token"), &token).unwrap();
    std::fs::copy(
        Path::new(&stack["ESOX_STACK_DIR"]).join("pki/ca.crt"),
        sa_dir.join("ca.crt"),
    )
    .unwrap();
    std::fs::write(sa_dir.join("namespace"), &ns).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        mode(&sa_dir, 0o755);
        for f in ["token", "ca.crt", "namespace"] {
            mode(&sa_dir.join(f), 0o644);
        }
    }
    let apiserver = stack["ESOX_APISERVER_URL"]
        .strip_prefix("https://")
        .unwrap()
        .to_string();
    let (api_host, api_port) = apiserver.rsplit_once(':').unwrap();

    env.apply(
        r#"
apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata: {name: fake}
spec:
  provider:
    fake:
      data: [{key: api-key, value: '{"api_token_value":"tok-image-7"}'}]
---
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {name: api-key-sync}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: fake, kind: SecretStore}
  target: {name: api-credentials, creationPolicy: Owner}
  data:
  - secretKey: API_TOKEN
    remoteRef: {key: api-key, property: api_token_value}
---
apiVersion: generators.external-secrets.io/v1alpha1
kind: Password
metadata: {name: db-password}
spec: {length: 24}
---
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {name: generated}
spec:
  refreshInterval: 1h
  target: {name: generated}
  dataFrom:
  - sourceRef:
      generatorRef: {apiVersion: generators.external-secrets.io/v1alpha1, kind: Password, name: db-password}
"#,
    )
    .await
    .unwrap();

    let sa_mount = format!(
        "{}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
        sa_dir.display()
    );
    let mut run: Vec<String> = [
        "run",
        "--detach",
        "--name",
        &container_name,
        "--read-only",
        "--user",
        &user,
        "--group-add",
        &fs_group,
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--memory",
        &memory,
        "--network",
        "host",
        "--tmpfs",
        &tmpfs,
        "--volume",
        &sa_mount,
        "--env",
        &format!("KUBERNETES_SERVICE_HOST={api_host}"),
        "--env",
        &format!("KUBERNETES_SERVICE_PORT={api_port}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for e in &envs {
        run.push("--env".into());
        run.push(e.clone());
    }
    run.push(image.clone());
    run.extend(args);
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    // The guard first: a run that fails half-way may still leave a created container.
    let container = Container {
        host: host.clone(),
        name: container_name.clone(),
    };
    docker_ok(&host, &run);

    // What a user checks: the probes answer, the ExternalSecrets sync, the metrics count them.
    wait_for(Duration::from_secs(90), "esox /readyz 200", || async {
        get(&addr, "/readyz").await.contains("200").then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; container log:\n{}", container.logs()));
    assert!(get(&addr, "/healthz").await.contains("200"));
    let secret = env
        .wait_value("api-credentials", "API_TOKEN", "tok-image-7")
        .await;
    assert_eq!(secret_strings(&secret).len(), 1);
    env.wait_ready("api-key-sync", "True", "SecretSynced").await;
    // The Password generator is a Wasm plugin: compiled by Cranelift inside the container, under
    // its seccomp profile and memory limit, and cached on the writable volume.
    let generated = wait_for(Duration::from_secs(60), "generated password", || async {
        let s = env.secrets().get_opt("generated").await.ok()??;
        secret_strings(&s).get("password").cloned()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; container log:\n{}", container.logs()));
    assert_eq!(generated.chars().count(), 24);
    let metrics = wait_for(Duration::from_secs(30), "sync metrics", || async {
        let m = esox_tests::http_get(&addr, "/metrics").await;
        m.lines()
            .any(|l| {
                l.starts_with("externalsecret_sync_calls_total{")
                    && l.contains("name=\"api-key-sync\"")
            })
            .then_some(m)
    })
    .await
    .unwrap();
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");

    // The running process, seen from the host: uid/gid 65532 (and fsGroup), no capabilities,
    // no_new_privs, a seccomp filter, a read-only root and a writable plugin cache.
    let pid = container.pid();
    assert_eq!(proc_status(pid, "Uid"), "65532 65532 65532 65532");
    assert_eq!(proc_status(pid, "Gid"), "65532 65532 65532 65532");
    assert_eq!(proc_status(pid, "Groups"), "65532");
    assert_eq!(proc_status(pid, "CapEff"), "0000000000000000");
    assert_eq!(proc_status(pid, "CapPrm"), "0000000000000000");
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    assert_eq!(proc_status(pid, "Seccomp"), "2", "seccomp filter mode");
    let root = mount_options(pid, "/");
    assert!(root.contains(&"ro".to_string()), "root mounted {root:?}");
    let cache = mount_options(pid, cache_mount);
    assert!(cache.contains(&"rw".to_string()), "cache mounted {cache:?}");
    assert_eq!(
        docker_ok(
            &host,
            &[
                "inspect",
                "-f",
                "{{.HostConfig.ReadonlyRootfs}}",
                &container_name
            ]
        ),
        "true"
    );

    let log = container.logs();
    assert!(
        !log.contains("could not store the compiled plugin"),
        "the plugin cache is not writable:\n{log}"
    );
    assert!(
        !log.contains("forbidden"),
        "RBAC denials in the container log:\n{log}"
    );
    for value in ["tok-image-7", generated.as_str(), token.as_str()] {
        assert!(
            !log.contains(value),
            "a secret value is in the container log"
        );
    }
    // Still running: nothing made it exit (a read-only path it needed, a seccomp kill).
    assert_eq!(
        docker_ok(
            &host,
            &["inspect", "-f", "{{.State.Running}}", &container_name]
        ),
        "true"
    );
}
