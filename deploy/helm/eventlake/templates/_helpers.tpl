{{/* Names ---------------------------------------------------------------------------------------- */}}
{{- define "eventlake.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "eventlake.fullname" -}}
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

{{/* "<fullname>-<component>", for a dict with keys root and component */}}
{{- define "eventlake.componentName" -}}
{{- printf "%s-%s" (include "eventlake.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "eventlake.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "eventlake.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels: call with (dict "root" $ "component" "registry") ----------------------------------------- */}}
{{- define "eventlake.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eventlake.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "eventlake.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "eventlake.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: eventlake
{{- end -}}

{{/* Images ---------------------------------------------------------------------------------------- */}}
{{- define "eventlake.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "eventlake.image" -}}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.repository (include "eventlake.tag" .) -}}
{{- end -}}

{{- define "eventlake.sparkImage" -}}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.sparkRepository (include "eventlake.tag" .) -}}
{{- end -}}

{{- define "eventlake.minioImage" -}}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.minioRepository (include "eventlake.tag" .) -}}
{{- end -}}

{{/* Endpoints: external managed services or the bundled ones -------------------------------------- */}}
{{- define "eventlake.kafkaBootstrap" -}}
{{- if .Values.kafka.external -}}
{{- required "kafka.bootstrap is required when kafka.external is true" .Values.kafka.bootstrap -}}
{{- else -}}
{{- printf "%s:9092" (include "eventlake.componentName" (dict "root" . "component" "kafka")) -}}
{{- end -}}
{{- end -}}

{{- define "eventlake.s3Endpoint" -}}
{{- if .Values.s3.external -}}
{{- .Values.s3.endpoint -}}
{{- else -}}
{{- printf "http://%s:9000" (include "eventlake.componentName" (dict "root" . "component" "minio")) -}}
{{- end -}}
{{- end -}}

{{- define "eventlake.lakeUri" -}}
{{- default (printf "s3://%s/lake" .Values.s3.bucket) .Values.lake.uri -}}
{{- end -}}

{{- define "eventlake.checkpointDir" -}}
{{- default (printf "s3a://%s/checkpoints" .Values.s3.bucket) .Values.lake.checkpointDir -}}
{{- end -}}

{{- define "eventlake.registryUrl" -}}
{{- printf "http://%s:%v" (include "eventlake.componentName" (dict "root" . "component" "registry")) .Values.registry.port -}}
{{- end -}}

{{/* The environment of every eventlake container: the ConfigMap + the credentials from the Secret.
     POSTGRES_PASSWORD (not an EVENTLAKE_ variable) is defined first so that the bundled server's
     URL can be composed from it with Kubernetes' $(VAR) expansion. */}}
{{- define "eventlake.env" -}}
{{- $secret := required "secrets.existingSecret is required: create the Secret first (docs/deploy.md)" .Values.secrets.existingSecret -}}
envFrom:
  - configMapRef:
      name: {{ include "eventlake.fullname" . }}
env:
{{- if .Values.postgres.external }}
  - name: EVENTLAKE_POSTGRES_URL
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: {{ .Values.secrets.keys.postgresUrl }}}
{{- else }}
  - name: POSTGRES_PASSWORD
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: {{ .Values.secrets.keys.postgresPassword }}}
  - name: EVENTLAKE_POSTGRES_URL
    value: {{ printf "postgresql://%s:$(POSTGRES_PASSWORD)@%s:5432/%s" .Values.postgres.bundled.user (include "eventlake.componentName" (dict "root" . "component" "postgresql")) .Values.postgres.bundled.database | quote }}
{{- end }}
  - name: EVENTLAKE_REGISTRY_AUTH_TOKEN
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: {{ .Values.secrets.keys.registryAuthToken }}}
{{- if or (not .Values.s3.external) .Values.s3.credentialsFromSecret }}
  - name: EVENTLAKE_S3_ACCESS_KEY_ID
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: {{ .Values.secrets.keys.s3AccessKeyId }}}
  - name: EVENTLAKE_S3_SECRET_ACCESS_KEY
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: {{ .Values.secrets.keys.s3SecretAccessKey }}}
{{- end }}
  - name: EVENTLAKE_SLACK_WEBHOOK_URL
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: {{ .Values.secrets.keys.slackWebhookUrl }}, optional: true}
{{- if .Values.config.smtp.host }}
  - name: EVENTLAKE_SMTP_PASSWORD
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: {{ .Values.secrets.keys.smtpPassword }}, optional: true}
{{- end }}
{{- end -}}

{{/* Probes on the services' /health endpoints; call with the container port name */}}
{{- define "eventlake.probes" -}}
startupProbe:
  httpGet: {path: /health/live, port: {{ . }}}
  periodSeconds: 5
  failureThreshold: 24
livenessProbe:
  httpGet: {path: /health/live, port: {{ . }}}
  periodSeconds: 15
  timeoutSeconds: 5
  failureThreshold: 4
readinessProbe:
  httpGet: {path: /health/ready, port: {{ . }}}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}

{{/* Pod-level settings shared by every eventlake workload */}}
{{- define "eventlake.podSpec" -}}
serviceAccountName: {{ include "eventlake.serviceAccountName" . }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
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
