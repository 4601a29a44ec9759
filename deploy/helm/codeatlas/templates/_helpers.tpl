{{- define "codeatlas.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "codeatlas.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "codeatlas.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "codeatlas.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "codeatlas.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "codeatlas.fullname" .)) -}}
{{- end -}}

{{/* Environment of every CodeAtlas container: the ConfigMap, then each secret key. */}}
{{- define "codeatlas.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "codeatlas.fullname" . }}-config
env:
  {{- range $key := list "DATABASE_URL" "REDIS_URL" "QDRANT_URL" "QDRANT_API_KEY" "SECRET_KEY" "LLM_API_KEY" "METRICS_TOKEN" }}
  - name: {{ $key }}
    valueFrom:
      secretKeyRef:
        name: {{ include "codeatlas.secretName" $ }}
        key: {{ $key }}
        optional: {{ has $key (list "QDRANT_API_KEY" "LLM_API_KEY" "METRICS_TOKEN") }}
  {{- end }}
{{- end -}}

{{- define "codeatlas.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ .Values.config.DATA_DIR }}
- name: uploads
  mountPath: {{ .Values.uploads.mountPath }}
{{- end -}}

{{- define "codeatlas.volumes" -}}
- name: tmp
  emptyDir: {}
- name: data
  emptyDir: {}
- name: uploads
  persistentVolumeClaim:
    claimName: {{ .Values.uploads.existingClaim | default (printf "%s-uploads" (include "codeatlas.fullname" .)) }}
{{- end -}}

{{- define "codeatlas.podSpecCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
automountServiceAccountToken: false
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
