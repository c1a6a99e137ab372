{{/* Names, labels and the controller's RBAC rules. */}}

{{- define "esox.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "esox.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "esox.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "esox.selectorLabels" -}}
app.kubernetes.io/name: {{ include "esox.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "esox.labels" -}}
helm.sh/chart: {{ include "esox.chart" . }}
{{ include "esox.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "esox.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "esox.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "esox.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/* Scoped mode needs a namespace to scope to. */}}
{{- define "esox.validate" -}}
{{- if and .Values.scopedRBAC (not .Values.scopedNamespace) }}
{{- fail "scopedRBAC=true needs scopedNamespace: the namespace the controller watches and is granted access to" }}
{{- end }}
{{- if and .Values.webhook.create .Values.webhook.certManager.enabled (not .Values.webhook.certManager.issuerRef.name) }}
{{- fail "webhook.certManager.enabled=true needs webhook.certManager.issuerRef.name" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElect) (not .Values.sharding.enabled) }}
{{- fail "replicaCount > 1 needs leaderElect=true (one replica works, the others stand by) or sharding.enabled=true (the replicas share the work): unelected replicas would all write the same Secrets" }}
{{- end }}

{{- if not (has .Values.webhook.certProvider (list "esox" "helm" "cert-manager")) }}
{{- fail (printf "webhook.certProvider must be esox, helm or cert-manager, not %q" (toString .Values.webhook.certProvider)) }}
{{- end }}
{{- end }}

{{/*
Who makes the webhook's serving certificate: esox (at run time), helm (genCA at install) or
cert-manager. webhook.certManager.enabled=true is the older spelling of cert-manager.
*/}}
{{- define "esox.webhookCerts" -}}
{{- if .Values.webhook.certManager.enabled }}cert-manager{{ else }}{{ .Values.webhook.certProvider }}{{ end }}
{{- end }}

{{/* The DNS names of the webhook Service, which its certificate must cover. */}}
{{- define "esox.webhookDNSNames" -}}
{{- $name := include "esox.webhookName" . }}
{{- $host := printf "%s.%s.svc" $name .Release.Namespace }}
{{- list $name (printf "%s.%s" $name .Release.Namespace) $host (printf "%s.cluster.local" $host) | join "," }}
{{- end }}

{{- define "esox.webhookName" -}}
{{- printf "%s-webhook" (include "esox.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The controller's permissions: exactly the API calls esox makes (engine/src/controller/,
engine/src/provider/aws/auth.rs, the kube-runtime event recorder). Called with
(dict "scoped" <bool> "Values" .Values): the scoped variant drops the cluster-scoped
resources, which a Role cannot grant and a namespaced controller does not use; a kind whose
process* value is false (its controller switched off) loses the rules only its controller
uses.
*/}}
{{- define "esox.controllerRules" -}}
{{- $css := and (not .scoped) .Values.processClusterStore }}
{{- $ces := and (not .scoped) .Values.processClusterExternalSecret }}
{{- $cps := and (not .scoped) .Values.processClusterPushSecret }}
# Watch ExternalSecrets and SecretStores{{ if $css }} and ClusterSecretStores{{ end }} (the controllers' informers) and
# read the store an ExternalSecret references.
- apiGroups: ["external-secrets.io"]
  resources: ["externalsecrets", "secretstores"{{ if $css }}, "clustersecretstores"{{ end }}]
  verbs: ["get", "list", "watch"]
# ESO's cleanup finalizer on ExternalSecrets (externalsecrets.external-secrets.io/
# externalsecret-cleanup): added and removed with a merge patch of metadata.finalizers, guarded
# by the resource version. esox never writes their spec.
- apiGroups: ["external-secrets.io"]
  resources: ["externalsecrets"]
  verbs: ["patch"]
# Record the Ready condition, refresh time and binding: a merge patch of /status.
- apiGroups: ["external-secrets.io"]
  resources: ["externalsecrets/status"{{ if .Values.processSecretStore }}, "secretstores/status"{{ end }}{{ if $css }}, "clustersecretstores/status"{{ end }}]
  verbs: ["patch"]
# Read the generator an ExternalSecret's dataFrom[].sourceRef.generatorRef names.
- apiGroups: ["generators.external-secrets.io"]
  resources: ["passwords", "uuids", "fakes", "stssessiontokens", "vaultdynamicsecrets"{{ if not .scoped }}, "clustergenerators"{{ end }}]
  verbs: ["get"]
# Read the user plugins templates and generatorRefs name{{ if .scoped }} (ClusterWasmPlugins are cluster-wide only){{ end }}; list/watch:
# a deleted or repinned plugin's compiled component is dropped from memory.
- apiGroups: ["plugins.esox.dev"]
  resources: ["wasmplugins"{{ if not .scoped }}, "clusterwasmplugins"{{ end }}]
  verbs: ["get", "list", "watch"]
{{- if .Values.processPushSecret }}
# PushSecrets: watch them; patch ESO's finalizer (pushsecret.externalsecrets.io/finalizer,
# only with deletionPolicy Delete; a merge patch guarded by the resource version) and status
# (syncedPushSecrets, conditions). esox never writes their spec.
- apiGroups: ["external-secrets.io"]
  resources: ["pushsecrets"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["external-secrets.io"]
  resources: ["pushsecrets/status"]
  verbs: ["patch"]
{{- end }}
# Secrets. list/watch: the metadata-only watch of managed Secrets that heals edits and
# deletions at once (label-selected, but RBAC cannot restrict by label), a PushSecret's
# selector.secret.selector and its opt-in source watch (by name). get: the target
# Secret before writing it, a PushSecret's source Secret, templateFrom Secrets, auth.secretRef keys, plugin components.
# create/update: creationPolicy Owner and Orphan. patch: server-side apply for Merge and
# CreateOrMerge. delete: deletionPolicy Delete when the provider has no data any more.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# templateFrom ConfigMaps and plugin components stored in ConfigMaps.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
# AWS auth.jwt (IRSA-style): read the ServiceAccount's eks.amazonaws.com/role-arn
# annotation ...
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get"]
# ... and request a short-lived token for it (TokenRequest) to exchange with STS
# AssumeRoleWithWebIdentity.
- apiGroups: [""]
  resources: ["serviceaccounts/token"]
  verbs: ["create"]
{{- if $css }}
# ClusterSecretStore spec.conditions[].namespaceSelector: the labels of the namespace an
# ExternalSecret is in.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get"]
{{- end }}
{{- if $ces }}
# ClusterExternalSecrets (cluster-wide mode only): watch them; patch their finalizer (ESO's
# clusterexternalsecret-cleanup, a merge patch guarded by the resource version) and status.
- apiGroups: ["external-secrets.io"]
  resources: ["clusterexternalsecrets"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["external-secrets.io"]
  resources: ["clusterexternalsecrets/status"]
  verbs: ["patch"]
# The ExternalSecrets carry ESO's controller owner reference with blockOwnerDeletion, which
# the OwnerReferencesPermissionEnforcement admission plugin allows only to who may update the
# owner's finalizers.
- apiGroups: ["external-secrets.io"]
  resources: ["clusterexternalsecrets/finalizers"]
  verbs: ["update"]
# ... create the ExternalSecret in each selected namespace, replace it when it drifts from the
# ClusterExternalSecret, delete it when its namespace is no longer selected or the
# ClusterExternalSecret goes.
- apiGroups: ["external-secrets.io"]
  resources: ["externalsecrets"]
  verbs: ["create", "update", "delete"]
{{- end }}
{{- if $cps }}
# ClusterPushSecrets (cluster-wide mode only): watch them and write their status; create,
# replace and delete the PushSecrets they stamp into the selected namespaces (owner reference
# with blockOwnerDeletion: update on clusterpushsecrets/finalizers).
- apiGroups: ["external-secrets.io"]
  resources: ["clusterpushsecrets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["external-secrets.io"]
  resources: ["clusterpushsecrets/status"]
  verbs: ["patch"]
- apiGroups: ["external-secrets.io"]
  resources: ["clusterpushsecrets/finalizers"]
  verbs: ["update"]
- apiGroups: ["external-secrets.io"]
  resources: ["pushsecrets"]
  verbs: [{{ if not .Values.processPushSecret }}"list", "watch", {{ end }}"create", "update", "delete"]
{{- end }}
{{- if or $ces $cps }}
# ... and the namespaces' labels (a metadata-only watch; esox puts no finalizer on namespaces).
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
# Events on ExternalSecrets and stores (events.k8s.io/v1): create, and patch to count a
# repeated event instead of creating another.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
