{{/*
Names. Every object is "<fullname>-<component>"; fullname is the release
name, or "<release>-<chart>" when the release name does not hold the chart
name, cut to 63 characters minus room for the longest component suffix.
*/}}
{{- define "postfix.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "postfix.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "postfix.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; call with (dict "ctx" $ "component" "queue"). */}}
{{- define "postfix.labels" -}}
helm.sh/chart: {{ include "postfix.chart" .ctx }}
{{ include "postfix.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: {{ include "postfix.name" .ctx }}
{{- end -}}

{{- define "postfix.selectorLabels" -}}
app.kubernetes.io/name: {{ include "postfix.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "postfix.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "postfix.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "postfix.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
Pod securityContext: the values, less runAsUser/runAsGroup/fsGroup on
OpenShift (the SCC assigns them). Call with (dict "ctx" $ "runAsUser" UID)
to override the UID (the Dovecot pod).
*/}}
{{- define "postfix.podSecurityContext" -}}
{{- $sc := deepCopy .ctx.Values.podSecurityContext -}}
{{- if hasKey . "runAsUser" -}}
{{- $_ := set $sc "runAsUser" .runAsUser -}}
{{- $_ := set $sc "runAsGroup" .runAsUser -}}
{{- $_ := set $sc "fsGroup" .runAsUser -}}
{{- end -}}
{{- if .ctx.Values.openshift -}}
{{- $sc = omit $sc "runAsUser" "runAsGroup" "fsGroup" -}}
{{- end -}}
{{- toYaml $sc -}}
{{- end -}}

{{/* The LMTP destination: the chart's Dovecot when enabled, else the value. */}}
{{- define "postfix.lmtpDestination" -}}
{{- if .Values.dovecot.enabled -}}
{{- printf "inet:%s-dovecot:24" (include "postfix.fullname" .) -}}
{{- else -}}
{{- .Values.lmtp.destination -}}
{{- end -}}
{{- end -}}

{{/* A main.cf value as the entrypoint takes it: booleans become yes/no. */}}
{{- define "postfix.cfValue" -}}
{{- if kindIs "bool" . -}}
{{- ternary "yes" "no" . -}}
{{- else if kindIs "float64" . -}}
{{- int64 . -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/*
The POSTFIX_<parameter> settings of the ConfigMap <fullname>-config, as a
dict: first what the chart derives from its values, then postfix.config,
which wins.
*/}}
{{- define "postfix.mainCfSettings" -}}
{{- $v := .Values -}}
{{- $s := dict -}}
{{- $_ := set $s "myhostname" $v.postfix.hostname -}}
{{- $_ := set $s "smtp_in_port" $v.postfix.containerPorts.smtp -}}
{{- $_ := set $s "submission_in_port" $v.postfix.containerPorts.submission -}}
{{- $_ := set $s "smtps_in_port" $v.postfix.containerPorts.smtps -}}
{{- $lmtp := include "postfix.lmtpDestination" . -}}
{{- if $lmtp -}}
{{- $_ := set $s "mailbox_lmtp_destination" $lmtp -}}
{{- end -}}
{{- if $v.proxyProtocol.enabled -}}
{{- $_ := set $s "smtpd_upstream_proxy_protocol" "haproxy" -}}
{{- end -}}
{{- if eq $v.sasl.type "dovecot" -}}
{{- $_ := set $s "smtpd_sasl_type" "dovecot" -}}
{{- $path := $v.sasl.dovecot.path -}}
{{- if and (not $path) $v.dovecot.enabled -}}
{{- $path = printf "inet:%s-dovecot:12345" (include "postfix.fullname" .) -}}
{{- end -}}
{{- $_ := set $s "smtpd_sasl_path" $path -}}
{{- else if eq $v.sasl.type "cyrus" -}}
{{- $_ := set $s "smtpd_sasl_type" "cyrus" -}}
{{- $_ := set $s "smtpd_sasl_path" "smtpd" -}}
{{- $_ := set $s "cyrus_sasl_config_path" "/etc/postfix/sasl" -}}
{{- end -}}
{{- if $v.mysql.enabled -}}
{{- range $param, $file := $v.mysql.maps -}}
{{- $_ := set $s $param (printf "mysql:/etc/postfix/mysql/%s" $file) -}}
{{- end -}}
{{- if $v.mysql.virtualMailboxDomains -}}
{{- $_ := set $s "virtual_mailbox_domains" $v.mysql.virtualMailboxDomains -}}
{{- end -}}
{{- end -}}
{{- range $param, $value := $v.postfix.config -}}
{{- $_ := set $s $param $value -}}
{{- end -}}
{{- toYaml $s -}}
{{- end -}}

{{/* Fail early on values the schema cannot express. */}}
{{- define "postfix.validate" -}}
{{- if eq .Values.topology "split" -}}
{{- $b := .Values.split.bridge -}}
{{- $c := .Values.postfix.containerPorts -}}
{{- range $port := list $c.smtp $c.submission $c.smtps -}}
{{- if and (ge (int $port) (int $b.port)) (le (int $port) (add (int $b.port) 9)) -}}
{{- fail (printf "split.bridge.port: the bridge uses ports %d-%d, which must not hold the mail port %d" (int $b.port) (add (int $b.port) 9) (int $port)) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.edge.autoscaling.enabled (gt (int .Values.edge.autoscaling.minReplicas) (int .Values.edge.autoscaling.maxReplicas)) -}}
{{- fail "edge.autoscaling: minReplicas must not exceed maxReplicas" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) -}}
{{- fail "tls.enabled needs tls.existingSecret (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if and (eq .Values.sasl.type "cyrus") (not .Values.sasl.cyrus.existingSecret) -}}
{{- fail "sasl.type cyrus needs sasl.cyrus.existingSecret" -}}
{{- end -}}
{{- if and (eq .Values.sasl.type "dovecot") (not .Values.sasl.dovecot.path) (not .Values.dovecot.enabled) -}}
{{- fail "sasl.type dovecot needs sasl.dovecot.path (or dovecot.enabled)" -}}
{{- end -}}
{{- if and .Values.mysql.enabled (not .Values.mysql.existingSecret) -}}
{{- fail "mysql.enabled needs mysql.existingSecret (the table files hold the password)" -}}
{{- end -}}
{{- $p := .Values.postfix.containerPorts -}}
{{- $ports := list (int $p.smtp) (int $p.submission) (int $p.smtps) -}}
{{- if ne (len ($ports | uniq)) 3 -}}
{{- fail "postfix.containerPorts: smtp, submission and smtps need three different ports" -}}
{{- end -}}
{{- end -}}

{{/*
Container securityContext, key by key (the schema admits only these keys),
so that lists are indented like the rest of the manifest.
*/}}
{{- define "postfix.containerSecurityContext" -}}
{{- $c := .Values.containerSecurityContext -}}
allowPrivilegeEscalation: {{ $c.allowPrivilegeEscalation }}
{{- if hasKey $c "readOnlyRootFilesystem" }}
readOnlyRootFilesystem: {{ $c.readOnlyRootFilesystem }}
{{- end }}
{{- if hasKey $c "runAsNonRoot" }}
runAsNonRoot: {{ $c.runAsNonRoot }}
{{- end }}
capabilities:
  drop:
    {{- range $c.capabilities.drop }}
    - {{ . }}
    {{- end }}
  {{- with $c.capabilities.add }}
  add:
    {{- range . }}
    - {{ . }}
    {{- end }}
  {{- end }}
{{- with $c.seccompProfile }}
seccompProfile:
  type: {{ .type }}
  {{- with .localhostProfile }}
  localhostProfile: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}
