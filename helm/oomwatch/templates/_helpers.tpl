{{/* Standard names and labels. */}}
{{- define "oomwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oomwatch.fullname" -}}
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

{{- define "oomwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oomwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "oomwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "oomwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "oomwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "oomwatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* [registry/]repository:tag, and @digest when given (the digest is what runs). */}}
{{- define "oomwatch.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" .Values.image.registry $repo -}}
{{- end -}}
{{- $ref := printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- if .Values.image.digest -}}
{{- $ref = printf "%s@%s" $ref .Values.image.digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* The container's security context: the source's defaults, then the user's values over them. */}}
{{- define "oomwatch.securityContext" -}}
{{- /* root in every mode: the state directory is a root-owned hostPath, and the
       node's /proc and log need it; the image's own user (10001) is for other uses */}}
{{- $base := dict "readOnlyRootFilesystem" true "runAsUser" 0 -}}
{{- if eq .Values.source "kmsg" -}}
{{- $_ := set $base "privileged" true -}}
{{- else -}}
{{- $_ := set $base "privileged" false -}}
{{- $_ := set $base "allowPrivilegeEscalation" false -}}
{{- $_ := set $base "capabilities" (dict "drop" (list "ALL")) -}}
{{- end -}}
{{- toYaml (mergeOverwrite $base (deepCopy .Values.securityContext)) -}}
{{- end -}}

{{/* The keys of the credentials Secret, whichever way it is given. */}}
{{- define "oomwatch.credentialKeys" -}}
{{- if .Values.credentials.existingSecret -}}
{{- join "," .Values.credentials.keys -}}
{{- else -}}
{{- join "," (keys .Values.credentials.values | sortAlpha) -}}
{{- end -}}
{{- end -}}

{{- define "oomwatch.secretName" -}}
{{- default (include "oomwatch.fullname" .) .Values.credentials.existingSecret -}}
{{- end -}}
