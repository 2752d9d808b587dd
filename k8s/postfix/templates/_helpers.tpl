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
{{- if $v.drain.enabled -}}
{{- $_ := set $s "handoff_in_port" $v.drain.port -}}
{{- end -}}
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
{{- $listeners := $ports -}}
{{- if .Values.drain.enabled -}}
{{- $listeners = append $listeners (int .Values.drain.port) -}}
{{- end -}}
{{- if .Values.metrics.enabled -}}
{{- $listeners = append $listeners (int .Values.metrics.port) -}}
{{- end -}}
{{- if ne (len ($listeners | uniq)) (len $listeners) -}}
{{- fail "postfix.containerPorts, drain.port and metrics.port: every listener needs its own port" -}}
{{- end -}}
{{- if eq .Values.topology "split" -}}
{{- $b := int .Values.split.bridge.port -}}
{{- range $port := $listeners -}}
{{- if and (ge $port $b) (le $port (add $b 9)) -}}
{{- fail (printf "split.bridge.port: the bridge uses ports %d-%d, which must not hold the listener port %d" $b (add $b 9) $port) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $fullname := include "postfix.fullname" . -}}
{{- range $i := until (int .Values.queue.replicas) -}}
{{- if has (printf "spool-%s-queue-%d" $fullname $i) $.Values.drain.orphanClaims -}}
{{- fail (printf "drain.orphanClaims: spool-%s-queue-%d is the queue of a running replica (queue.replicas is %d); only claims of removed replicas are orphans" $fullname $i (int $.Values.queue.replicas)) -}}
{{- end -}}
{{- end -}}
{{- $g := .Values.queue.terminationGracePeriodSeconds -}}
{{- if and .Values.drain.enabled (not (kindIs "invalid" $g)) -}}
{{- if lt (int $g) (int (include "postfix.drainGraceMin" .)) -}}
{{- fail (printf "queue.terminationGracePeriodSeconds is %d, but a drain needs drain.timeout + drain.handoffTimeout + 30 = %s seconds: raise it, leave it null (computed), or lower the drain timeouts" (int $g) (include "postfix.drainGraceMin" .)) -}}
{{- end -}}
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

{{/*
Drain (docs/kubernetes.md "Scaling down and rolling updates").
The least grace period that lets a drain finish: both timeouts plus 30
seconds for starting and stopping.
*/}}
{{- define "postfix.drainGraceMin" -}}
{{- add (int .Values.drain.timeout) (int .Values.drain.handoffTimeout) 30 -}}
{{- end -}}

{{/* terminationGracePeriodSeconds of the queue pods: the value, or computed. */}}
{{- define "postfix.queueGracePeriod" -}}
{{- $fullname := include "postfix.fullname" . -}}
{{- range $i := until (int .Values.queue.replicas) -}}
{{- if has (printf "spool-%s-queue-%d" $fullname $i) $.Values.drain.orphanClaims -}}
{{- fail (printf "drain.orphanClaims: spool-%s-queue-%d is the queue of a running replica (queue.replicas is %d); only claims of removed replicas are orphans" $fullname $i (int $.Values.queue.replicas)) -}}
{{- end -}}
{{- end -}}
{{- $g := .Values.queue.terminationGracePeriodSeconds -}}
{{- if not (kindIs "invalid" $g) -}}
{{- int $g -}}
{{- else if .Values.drain.enabled -}}
{{- include "postfix.drainGraceMin" . -}}
{{- else -}}
60
{{- end -}}
{{- end -}}

{{/*
POSTFIX_DRAIN_PEERS: the hand-off listener of every pod the StatefulSet
can have (max(drain.maxReplicas, queue.replicas)), by its stable name
under the headless Service.
*/}}
{{- define "postfix.drainPeers" -}}
{{- $fullname := include "postfix.fullname" . -}}
{{- $n := max (int .Values.drain.maxReplicas) (int .Values.queue.replicas) -}}
{{- $peers := list -}}
{{- range $i := until (int $n) -}}
{{- $peers = append $peers (printf "%s-queue-%d.%s-queue.%s.svc.%s:%d" $fullname $i $fullname $.Release.Namespace $.Values.clusterDomain (int $.Values.drain.port)) -}}
{{- end -}}
{{- join "," $peers -}}
{{- end -}}

{{/* The drain's environment (image settings, upper-case: not main.cf). */}}
{{- define "postfix.drainEnv" -}}
- name: POSTFIX_DRAIN_PEERS
  value: {{ include "postfix.drainPeers" . | quote }}
- name: POSTFIX_DRAIN_TIMEOUT
  value: {{ int .Values.drain.timeout | toString | quote }}
- name: POSTFIX_DRAIN_HANDOFF_TIMEOUT
  value: {{ int .Values.drain.handoffTimeout | toString | quote }}
- name: POSTFIX_DRAIN_HOLD
  value: {{ .Values.drain.hold | quote }}
{{- end -}}

{{/* The metrics listener's environment. */}}
{{- define "postfix.metricsEnv" -}}
- name: POSTFIX_METRICS_PORT
  value: {{ int .Values.metrics.port | toString | quote }}
{{- end -}}

{{/*
The Secret whose certificates the peers show each other on a hand-off:
drain.tls.existingSecret, else the split topology's bridge server Secret
(mutual TLS), else none.
*/}}
{{- define "postfix.drainTlsSecret" -}}
{{- if .Values.drain.tls.existingSecret -}}
{{- .Values.drain.tls.existingSecret -}}
{{- else if and (eq .Values.topology "split") (eq .Values.split.bridge.tls.mode "mutual") -}}
{{- include "postfix.bridgeSecret" (dict "ctx" . "side" "server") -}}
{{- end -}}
{{- end -}}

{{/* The preStop hook of the container that drains. */}}
{{- define "postfix.drainLifecycle" -}}
lifecycle:
  preStop:
    exec:
      command: ["postfix-drain"]
{{- end -}}

{{/*
The preStop hook of the split topology's delivery container: it must
outlive the drain of the queue container (its smtp and lmtp agents
deliver and hand off the queue), so it waits while mail is pending in
the shared queue, at most both drain timeouts (then the kubelet stops
it). Only sh, find and date of the image.
*/}}
{{- define "postfix.drainWaitLifecycle" -}}
{{- $max := add (int .Values.drain.timeout) (int .Values.drain.handoffTimeout) 10 -}}
lifecycle:
  preStop:
    exec:
      command:
        - sh
        - -c
        - >-
          end=$(($(date +%s) + {{ $max }})); sleep 5;
          while [ "$(date +%s)" -lt "$end" ] &&
          [ -n "$(find /var/spool/postfix/maildrop /var/spool/postfix/incoming
          /var/spool/postfix/active /var/spool/postfix/deferred -type f 2>/dev/null | head -n 1)" ];
          do sleep 2; done
{{- end -}}

{{/* The hand-off TLS mount and volume (when there is a Secret). */}}
{{- define "postfix.drainTlsMount" -}}
{{- if and .Values.drain.enabled (include "postfix.drainTlsSecret" .) }}
- name: handoff-tls
  mountPath: /etc/postfix/bridge-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "postfix.drainTlsVolume" -}}
{{- with include "postfix.drainTlsSecret" . }}
{{- if $.Values.drain.enabled }}
- name: handoff-tls
  secret:
    secretName: {{ . }}
    defaultMode: 288  # 0440: owner and group (the pod runs in group 0) read
{{- end }}
{{- end }}
{{- end -}}

{{/* The ports of the drain and metrics listeners on a container. */}}
{{- define "postfix.extraPorts" -}}
{{- if and .drain .ctx.Values.drain.enabled }}
- name: handoff
  containerPort: {{ .ctx.Values.drain.port }}
  protocol: TCP
{{- end }}
{{- if .ctx.Values.metrics.enabled }}
- name: metrics
  containerPort: {{ .ctx.Values.metrics.port }}
  protocol: TCP
{{- end }}
{{- end -}}

{{/* PromQL label matchers of this release's Postfix pods. */}}
{{- define "postfix.metricsSelector" -}}
{{- printf "namespace=%q, pod=~%q" .Release.Namespace (printf "%s-(queue|edge)-.*" (include "postfix.fullname" .)) -}}
{{- end -}}

{{/*
The NetworkPolicy ingress rule of the metrics port: from
metrics.networkPolicy.from, or from every pod of the namespace.
*/}}
{{- define "postfix.metricsIngress" -}}
{{- if .Values.metrics.enabled -}}
# Prometheus scrapes the metrics port.
- ports:
    - port: metrics
      protocol: TCP
  from:
    {{- with .Values.metrics.networkPolicy.from }}
    {{- toYaml . | nindent 4 }}
    {{- else }}
    - podSelector: {}
    {{- end }}
{{- end -}}
{{- end -}}
