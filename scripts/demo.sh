#!/usr/bin/env bash
# The demo: start the local control plane, run esox against it, apply the seeds' manifests from
# examples/, and print what esox synced.
#   scripts/demo.sh        stores served by the Fake provider
#   scripts/demo.sh aws    the seeds' AWS stores (IRSA via TokenRequest + STS) against moto
#   scripts/demo.sh vault  the Fake stores, plus the seeds' Vault store (Kubernetes auth)
#                          against the stack's bao
#   scripts/demo.sh stop   stop esox and the control plane
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"
# The build directories the tests use too (so neither rebuilds the other's esox).
# shellcheck source=lib.sh
source "$here/lib.sh"
state=${ESOX_STACK_DIR:-$root/.stack}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

mode=${1:-fake}
case "$mode" in fake|aws|vault|stop) ;; *) echo "usage: $0 [fake|aws|vault|stop]" >&2; exit 2 ;; esac
if [ "$mode" = stop ]; then
  if [ -f "$state/esox.pid" ]; then kill "$(cat "$state/esox.pid")" 2>/dev/null || true; rm -f "$state/esox.pid"; fi
  bash "$here/stack.sh" down
  exit 0
fi

need_cargo
ensure_wasm_target
# esox builds while the control plane starts. On a fresh 2-core machine both are long builds
# (Rust and Go, of about the same CPU time: docs/first-run.md) with stretches that use one core
# or wait on downloads; side by side they keep both cores busy. Warm, the build is a no-op.
say "Building esox in the background"
build_log=$(mktemp)
cargo build -q -p esox >"$build_log" 2>&1 &
build_pid=$!
# If the control plane fails to start, do not leave the build running behind the error.
trap 'kill "$build_pid" 2>/dev/null || true' EXIT

say "Starting a local kube-apiserver + etcd (the first run builds kube-apiserver: several minutes)"
bash "$here/stack.sh" up
# shellcheck disable=SC1091
source "$state/env"
# scripts/stack.sh builds kubectl (and puts it on PATH in the env file) when there is none.
command -v kubectl >/dev/null || die "kubectl is missing and scripts/stack.sh could not provide it"

say "Waiting for the esox build"
if ! wait "$build_pid"; then
  cat "$build_log" >&2
  die "building esox failed (output above)"
fi
rm -f "$build_log"
esox="$CARGO_TARGET_DIR/debug/esox"

say "Installing the external-secrets.io CRDs (v1 stored, v1beta1 served)"
"$esox" crds | kubectl apply --server-side -f - >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null

say "Starting the esox controller (log: $state/esox.log)"
if [ -f "$state/esox.pid" ] && kill -0 "$(cat "$state/esox.pid")" 2>/dev/null; then
  kill "$(cat "$state/esox.pid")"; sleep 1
fi
"$esox" controller --metrics-addr 127.0.0.1:0 >"$state/esox.log" 2>&1 &
echo $! >"$state/esox.pid"

kubectl apply -f examples/namespaces.yaml >/dev/null
if [ "$mode" = aws ]; then
  say "Publishing the seeds' secrets to AWS Secrets Manager (moto at $AWS_ENDPOINT_URL)"
  "$esox_cache/moto-5.2.1/bin/python3" - examples/stores/aws-seed-data.json <<'PY'
import json, os, sys, boto3
sm = boto3.client("secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
for name, value in json.load(open(sys.argv[1])).items():
    try:
        sm.create_secret(Name=name, SecretString=value)
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=name, SecretString=value)
    print("  " + name)
PY
fi
stores=$mode
[ "$mode" = vault ] && stores=fake
say "Applying the seeds' stores (examples/stores/$stores.yaml) and ExternalSecrets"
kubectl apply -f "examples/stores/$stores.yaml" >/dev/null
kubectl apply -f examples/external-secrets/ >/dev/null
if [ "$mode" = vault ]; then
  say "Vault (bao at $ESOX_BAO_URL): role my-role for my-app/my-app-sa, the seeds' API key"
  export BAO_ADDR=$ESOX_BAO_URL BAO_TOKEN=$ESOX_BAO_TOKEN
  printf 'path "secret/data/production/*" { capabilities = ["read"] }\n' | "$ESOX_BAO_BIN" policy write my-app - >/dev/null
  "$ESOX_BAO_BIN" write auth/kubernetes/role/my-role bound_service_account_names=my-app-sa \
    bound_service_account_namespaces=my-app token_policies=my-app token_ttl=1h >/dev/null
  "$ESOX_BAO_BIN" kv put secret/production/api-key api_token_value=tok-from-vault >/dev/null
  sed "s|https://vault.example.com|$ESOX_BAO_URL|" examples/vault/vault-backend.yaml | kubectl apply -f - >/dev/null
  kubectl wait --for=condition=Ready externalsecret/api-key-vault -n my-app --timeout=60s >/dev/null || true
  say "The seeds' Vault store"
  kubectl get secretstore vault-backend -n my-app
  kubectl get secret api-credentials-vault -n my-app -o go-template='{{range $k, $v := .data}}{{printf "  %s = %s\n" $k ($v | base64decode)}}{{end}}'
fi
for ns in production-apps my-app dev-apps my-app-namespace; do
  kubectl wait --for=condition=Ready externalsecrets --all -n "$ns" --timeout=60s >/dev/null || true
done

say "ExternalSecrets"
for ns in production-apps my-app dev-apps my-app-namespace; do kubectl get externalsecrets -n "$ns"; echo; done
say "Stores"
kubectl get clustersecretstores

for ref in production-apps/db-credentials-native my-app/api-credentials dev-apps/dev-services my-app-namespace/app-db-config-secret; do
  ns=${ref%%/*}; name=${ref#*/}
  say "Secret $ref (decoded)"
  kubectl get secret "$name" -n "$ns" -o go-template='{{range $k, $v := .data}}{{printf "  %s = %s\n" $k ($v | base64decode)}}{{end}}'
  kubectl get secret "$name" -n "$ns" -o jsonpath='  labels: {.metadata.labels}{"\n"}  owner: {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}{"\n"}'
done

say "A rotation reaching a Deployment (docs/rollout-restarts.md)"
kubectl apply -f examples/rollout/nodejs-backend.yaml >/dev/null
kubectl annotate externalsecret db-credentials-es -n production-apps --overwrite \
  restart.esox.io/targets=deployment/nodejs-backend >/dev/null
replica_sets() { kubectl get rs -n production-apps -l app=nodejs-backend --no-headers 2>/dev/null | wc -l; }
for _ in $(seq 1 100); do [ "$(replica_sets)" -ge 1 ] && break; sleep 0.3; done
rotated='{"username":"admin","password":"rotatedPassword456","host":"rds-prod-01.aws.com","port":"5432"}'
if [ "$mode" = aws ]; then
  echo "  rotating production/db/credentials in AWS Secrets Manager (moto)"
  "$esox_cache/moto-5.2.1/bin/python3" - "$rotated" <<'PY'
import os, sys, boto3
sm = boto3.client("secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
sm.put_secret_value(SecretId="production/db/credentials", SecretString=sys.argv[1])
PY
else
  echo "  rotating production/db/credentials in the Fake store"
  sed "s/superSecretPassword123/rotatedPassword456/" "examples/stores/$stores.yaml" | kubectl apply -f - >/dev/null
fi
# ESO's force-sync: any annotation change.
kubectl annotate externalsecret db-credentials-es -n production-apps --overwrite force-sync="$(date +%s)" >/dev/null
for _ in $(seq 1 100); do [ "$(replica_sets)" -ge 2 ] && break; sleep 0.3; done
echo "  password now: $(kubectl get secret db-credentials-native -n production-apps -o go-template='{{.data.password | base64decode}}')"
kubectl rollout history deployment/nodejs-backend -n production-apps
kubectl get rs -n production-apps -l app=nodejs-backend \
  -o custom-columns='REPLICASET:.metadata.name,DESIRED:.spec.replicas,RESTARTED-FOR:.spec.template.metadata.annotations.secret\.restart\.esox\.io/db-credentials-native'
kubectl get events -n production-apps --field-selector reason=RolloutRestartTriggered

cat <<TXT

esox keeps running in the background (pid $(cat "$state/esox.pid")). Try:
  source $state/env
  kubectl delete secret db-credentials-native -n production-apps   # esox recreates it at once
  kubectl describe externalsecret db-credentials-es -n production-apps
Stop everything with: scripts/demo.sh stop
TXT
