{{/* Standard names and labels. */}}
{{- define "oomwatch.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oomwatch.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
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

{{- define "oomwatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
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
