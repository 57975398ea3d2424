{{/* Chart name, overridable. */}}
{{- define "bka.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name: <release>-<name>, or the release name when it already contains the name. */}}
{{- define "bka.fullname" -}}
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

{{- define "bka.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every gateway object. */}}
{{- define "bka.labels" -}}
helm.sh/chart: {{ include "bka.chart" . }}
{{ include "bka.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: buildkitd-autoscaler
{{- end }}

{{- define "bka.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bka.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{/* Labels of the example buildkitd objects. */}}
{{- define "bka.buildkitdLabels" -}}
helm.sh/chart: {{ include "bka.chart" . }}
{{ include "bka.buildkitdSelectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: buildkitd-autoscaler
{{- end }}

{{- define "bka.buildkitdSelectorLabels" -}}
app.kubernetes.io/name: buildkitd
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: buildkitd
{{- end }}

{{- define "bka.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bka.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Namespace of the buildkitd StatefulSet, its Service and the Role that reaches them. */}}
{{- define "bka.buildkitdNamespace" -}}
{{- default .Release.Namespace .Values.buildkitd.namespace }}
{{- end }}

{{- define "bka.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Seconds in a Go duration made of integer h, m, s and ms parts (rounded up), for
terminationGracePeriodSeconds. Fails on other forms so a typo cannot yield a grace period of 0.
*/}}
{{- define "bka.durationSeconds" -}}
{{- $d := toString . }}
{{- $re := "^(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?$" }}
{{- if or (eq $d "") (not (regexMatch $re $d)) }}
{{- fail (printf "gateway.shutdownGracePeriod / gateway.shutdownDelay %q: use integer h, m, s and ms parts, such as 30s or 1m30s" $d) }}
{{- end }}
{{- $h := regexReplaceAll $re $d "${1}" | default "0" | atoi }}
{{- $m := regexReplaceAll $re $d "${2}" | default "0" | atoi }}
{{- $s := regexReplaceAll $re $d "${3}" | default "0" | atoi }}
{{- $ms := regexReplaceAll $re $d "${4}" | default "0" | atoi }}
{{- add (mul $h 3600) (mul $m 60) $s (div (add $ms 999) 1000) }}
{{- end }}

{{/* terminationGracePeriodSeconds of the gateway: explicit, or shutdownDelay + shutdownGracePeriod + 10s; always longer. */}}
{{- define "bka.terminationGracePeriodSeconds" -}}
{{- $drain := add (include "bka.durationSeconds" .Values.gateway.shutdownGracePeriod | atoi) (include "bka.durationSeconds" .Values.gateway.shutdownDelay | atoi) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $drain 10 }}
{{- else }}
{{- $t := int .Values.terminationGracePeriodSeconds }}
{{- if le $t $drain }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than gateway.shutdownDelay + gateway.shutdownGracePeriod (%s + %s = %ds), or draining builds are killed" $t .Values.gateway.shutdownDelay .Values.gateway.shutdownGracePeriod $drain) }}
{{- end }}
{{- $t }}
{{- end }}
{{- end }}

{{/* Name of the leader Lease; the replicas' report Leases are <name>-<pod>. The gateway's own default. */}}
{{- define "bka.leaseName" -}}
{{- default (printf "%s-autoscaler" .Values.buildkitd.statefulSetName) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Gateway replicas; several only with leader election, or they would scale down under each other. */}}
{{- define "bka.replicaCount" -}}
{{- $replicas := int .Values.replicaCount }}
{{- if and (gt $replicas 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount %d needs leaderElection.enabled: gateways that do not share their activity scale buildkitd down under each other's builds" $replicas) }}
{{- end }}
{{- $replicas }}
{{- end }}

{{/* Most builders; refused where the gateway would exit 2 at start (a crash-looping pod). */}}
{{- define "bka.poolMaxReplicas" -}}
{{- $max := int .Values.pool.maxReplicas }}
{{- if gt (int .Values.pool.minReplicas) $max }}
{{- fail (printf "pool.minReplicas %d must not exceed pool.maxReplicas %d" (int .Values.pool.minReplicas) $max) }}
{{- end }}
{{- if and (gt $max 1) (eq .Values.gateway.backendDiscovery "dns") }}
{{- fail (printf "pool.maxReplicas %d needs gateway.backendDiscovery endpoints: dns discovery supports one builder only" $max) }}
{{- end }}
{{- $max }}
{{- end }}
