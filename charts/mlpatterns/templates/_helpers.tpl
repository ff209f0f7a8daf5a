{{/* The release's full name, at most 63 characters. */}}
{{- define "mlpatterns.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "mlpatterns.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlpatterns
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component. */}}
{{- define "mlpatterns.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mlpatterns.serviceAccountName" -}}
{{- default (include "mlpatterns.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "mlpatterns.storageSecret" -}}
{{- if .Values.operator.storageSecret -}}
{{- .Values.operator.storageSecret -}}
{{- else if .Values.minio.enabled -}}
{{- printf "%s-storage" (include "mlpatterns.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The Secret with the chart's Redis password (key redis-password). */}}
{{- define "mlpatterns.redisSecret" -}}
{{- default (printf "%s-redis" (include "mlpatterns.fullname" .)) .Values.redis.existingSecret -}}
{{- end -}}

{{/* A random password kept across upgrades: the existing Secret's key, else new.
     Call with (dict "root" . "secret" NAME "key" KEY). */}}
{{- define "mlpatterns.keptPassword" -}}
{{- $old := lookup "v1" "Secret" .root.Release.Namespace .secret -}}
{{- if and $old (index $old.data .key) -}}
{{- index $old.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}

{{- define "mlpatterns.redisUrl" -}}
{{- if .Values.operator.redisUrl -}}
{{- .Values.operator.redisUrl -}}
{{- else if .Values.redis.enabled -}}
{{- printf "redis://%s-redis.%s.svc:6379/0" (include "mlpatterns.fullname" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* The security context of every container: non-root, read-only, no capabilities. */}}
{{- define "mlpatterns.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "mlpatterns.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* An image reference: repository@digest when a digest is given, else
     repository:tag, the chart's appVersion when the tag is empty.
     Call with (dict "image" IMAGE-VALUES "root" $). */}}
{{- define "mlpatterns.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* A component's pod metadata: the chart's labels, its component, and the
     component's podLabels and podAnnotations.
     Call with (dict "root" $ "component" NAME "values" COMPONENT-VALUES). */}}
{{- define "mlpatterns.podMetadata" -}}
labels:
  {{- include "mlpatterns.labels" .root | nindent 2 }}
  app.kubernetes.io/component: {{ .component }}
  {{- with .values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A pod spec's pull secrets and scheduling (nodeSelector, tolerations, affinity)
     from a component's values. Call with (dict "root" $ "values" COMPONENT-VALUES). */}}
{{- define "mlpatterns.podPlacement" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
