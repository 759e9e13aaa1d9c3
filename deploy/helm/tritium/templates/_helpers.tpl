{{/* The chart's name, at most 63 characters (a DNS label). */}}
{{- define "tritium.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object names: the release's name, suffixed with the chart's unless it already holds it. */}}
{{- define "tritium.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tritium.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tritium.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tritium.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tritium.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* A ConfigMap key for a repository path: keys allow [-._a-zA-Z0-9] only. */}}
{{- define "tritium.configMapKey" -}}
{{- . | replace "/" "__" -}}
{{- end -}}

{{- define "tritium.repositoryFlag" -}}
{{- if eq .Values.modelRepository.type "none" -}}
{{- required "modelRepository.url is required with modelRepository.type none" .Values.modelRepository.url -}}
{{- else -}}
{{- default .Values.modelRepository.mountPath .Values.modelRepository.url -}}
{{- end -}}
{{- end -}}
