{{- /*
Rollout restarts (docs/rollout-restarts.md): the controller reads and patches the workloads an
ExternalSecret's `restart.esox.io/targets` annotation names. Appended to the controller's
(Cluster)Role by rbac.yaml, so scoped mode gets them in its Role.
*/}}
{{- define "esox.rolloutRules" -}}
{{- with .Values.rolloutRestart }}
{{- if .enabled }}
# Rollout restarts: get the named workload (its pod template's restart annotation, whether it
# is paused), patch its pod-template annotation (a strategic-merge patch) when the Secret's
# data changed.{{ if .reloaderCompat }} list/watch: --reloader-compat's metadata-only watch of the
# workloads carrying Reloader's annotations.{{ end }}
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "patch"{{ if .reloaderCompat }}, "list", "watch"{{ end }}]
{{- if .argoRollouts }}
# Argo Rollouts named as `rollout/<name>`: a merge patch of spec.restartAt.
- apiGroups: ["argoproj.io"]
  resources: ["rollouts"]
  verbs: ["get", "patch"]
{{- end }}
{{- end }}
{{- end }}
{{- end }}
