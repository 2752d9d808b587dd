{{/*
Helpers of the split topology (docs/split.md): the edge Deployment, the
queue pod's role containers, the bridge Service.
*/}}

{{/* Port offsets of the bridged services (conf/roles/bridge in the image). */}}
{{- define "postfix.bridgeOffsets" -}}
cleanup: 0
anvil: 1
tlsmgr: 2
verify: 3
flush: 4
rewrite: 5
proxymap: 6
proxywrite: 7
scache: 8
postlog: 9
{{- end -}}

{{/*
The bridge's ports as a list of {name, service, port, protocol}: every
bridged service, plus postlog with a shared log (UDP without TLS: the log
datagrams then go as UDP datagrams).
*/}}
{{- define "postfix.bridgePorts" -}}
{{- $b := .Values.split.bridge -}}
{{- $off := include "postfix.bridgeOffsets" . | fromYaml -}}
{{- $svcs := $b.services -}}
{{- if .Values.split.log.shared -}}
{{- $svcs = append $svcs "postlog" -}}
{{- end -}}
{{- $out := list -}}
{{- range $s := $svcs -}}
{{- $proto := "TCP" -}}
{{- if and (eq $s "postlog") (eq $b.tls.mode "none") -}}
{{- $proto = "UDP" -}}
{{- end -}}
{{- $out = append $out (dict "name" (printf "br-%s" $s) "service" $s "port" (add (int $b.port) (index $off $s)) "protocol" $proto) -}}
{{- end -}}
{{- toYaml (dict "ports" $out) -}}
{{- end -}}

{{/* The Secret of a bridge side: (dict "ctx" $ "side" "server"|"client"). */}}
{{- define "postfix.bridgeSecret" -}}
{{- $t := .ctx.Values.split.bridge.tls -}}
{{- $server := $t.serverSecret | default (printf "%s-bridge-tls" (include "postfix.fullname" .ctx)) -}}
{{- if eq .side "client" -}}
{{- $t.clientSecret | default $server -}}
{{- else -}}
{{- $server -}}
{{- end -}}
{{- end -}}

{{/*
The environment of a split container: (dict "ctx" $ "role" ROLE). The
container settings of the role, then postfix.extraEnv for the Postfix
roles.
*/}}
{{- define "postfix.splitEnv" -}}
{{- $v := .ctx.Values -}}
{{- $b := $v.split.bridge -}}
- name: POSTFIX_ROLE
  value: {{ .role | quote }}
- name: POSTFIX_LOG
  value: {{ ternary "shared" "stdout" $v.split.log.shared | quote }}
{{- if eq .role "log" }}
- name: POSTFIX_LOG_FILE
  value: {{ $v.split.log.file | quote }}
{{- end }}
- name: POSTFIX_BRIDGE_PORT
  value: {{ $b.port | quote }}
- name: POSTFIX_BRIDGE_SERVICES
  value: {{ join " " $b.services | quote }}
{{- if hasPrefix "bridge-" .role }}
- name: POSTFIX_BRIDGE_TLS
  value: {{ $b.tls.mode | quote }}
- name: POSTFIX_BRIDGE_TIMEOUT
  value: {{ $b.connectTimeout | quote }}
{{- end }}
{{- if eq .role "bridge-queue" }}
- name: POSTFIX_BRIDGE_LISTEN
  value: {{ $b.listen | quote }}
{{- end }}
{{- if eq .role "bridge-edge" }}
- name: POSTFIX_BRIDGE_PEER
  value: {{ $b.peer | default (printf "%s-bridge.%s.svc" (include "postfix.fullname" .ctx) .ctx.Release.Namespace) | quote }}
- name: POSTFIX_BRIDGE_TLS_NAME
  value: {{ $b.tls.serverName | quote }}
{{- end }}
{{- if and $v.metrics.enabled (has .role (list "queue" "edge")) }}
{{ include "postfix.metricsEnv" .ctx }}
{{- if and (eq .role "queue") $v.split.log.shared }}
{{- /* The queue's metrics count the shared log (every role's lines). */}}
- name: POSTFIX_METRICS_LOG
  value: /var/log/postfix/maillog
{{- end }}
{{- end }}
{{- if and $v.drain.enabled (eq .role "queue") }}
{{ include "postfix.drainEnv" .ctx }}
{{- end }}
{{- if not (hasPrefix "bridge-" .role) }}
{{- with $v.postfix.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Exec probes of a container: (dict "ctx" $ "ready" BOOL "startup" BOOL).
Liveness is always "postfix-health live"; readiness "postfix-health
ready" when asked for.
*/}}
{{- define "postfix.splitProbes" -}}
{{- $p := .ctx.Values.probes -}}
{{- if and .startup $p.startup.enabled }}
startupProbe:
  exec:
    command: ["postfix-health", "live"]
  periodSeconds: {{ $p.startup.periodSeconds }}
  timeoutSeconds: {{ $p.startup.timeoutSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
{{- end }}
{{- if $p.liveness.enabled }}
livenessProbe:
  exec:
    command: ["postfix-health", "live"]
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
{{- end }}
{{- if and .ready $p.readiness.enabled }}
readinessProbe:
  exec:
    command: ["postfix-health", "ready"]
  periodSeconds: {{ $p.readiness.periodSeconds }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
{{- end }}
{{- end -}}

{{/*
Mounts of the configuration files and Secrets: (dict "ctx" $ "tls" BOOL
"sasl" BOOL "mysql" BOOL).
*/}}
{{- define "postfix.configMounts" -}}
{{- $v := .ctx.Values -}}
{{- if $v.postfix.mainCf }}
- name: files
  mountPath: /etc/postfix/main.cf
  subPath: main.cf
  readOnly: true
{{- end }}
{{- if $v.postfix.masterCf }}
- name: files
  mountPath: /etc/postfix/master.cf
  subPath: master.cf
  readOnly: true
{{- end }}
{{- if and .tls $v.tls.enabled }}
- name: tls
  mountPath: /etc/postfix/tls
  readOnly: true
{{- end }}
{{- if and .sasl (eq $v.sasl.type "cyrus") }}
- name: sasl
  mountPath: /etc/postfix/sasl
  readOnly: true
{{- end }}
{{- if and .mysql $v.mysql.enabled }}
- name: mysql
  mountPath: /etc/postfix/mysql
  readOnly: true
{{- end }}
{{- end -}}

{{/* The volumes of postfix.configMounts: (dict "ctx" $ "tls" ... ). */}}
{{- define "postfix.configVolumes" -}}
{{- $v := .ctx.Values -}}
{{- if or $v.postfix.mainCf $v.postfix.masterCf }}
- name: files
  configMap:
    name: {{ include "postfix.fullname" .ctx }}-config-files
{{- end }}
{{- if and .tls $v.tls.enabled }}
# Not a subPath: a renewed certificate reaches the pod.
- name: tls
  secret:
    secretName: {{ $v.tls.existingSecret }}
    defaultMode: 288  # 0440: owner and group (the pod runs in group 0) read
{{- end }}
{{- if and .sasl (eq $v.sasl.type "cyrus") }}
- name: sasl
  secret:
    secretName: {{ $v.sasl.cyrus.existingSecret }}
    defaultMode: 288  # 0440: owner and group (the pod runs in group 0) read
{{- end }}
{{- if and .mysql $v.mysql.enabled }}
- name: mysql
  secret:
    secretName: {{ $v.mysql.existingSecret }}
    defaultMode: 288  # 0440: owner and group (the pod runs in group 0) read
{{- end }}
{{- end -}}

{{/* The common part of every container: (dict "ctx" $ "name" NAME). */}}
{{- define "postfix.splitContainerHead" -}}
- name: {{ .name }}
  image: {{ include "postfix.image" .ctx }}
  imagePullPolicy: {{ .ctx.Values.image.pullPolicy }}
  securityContext:
    {{- include "postfix.containerSecurityContext" .ctx | nindent 4 }}
  envFrom:
    - configMapRef:
        name: {{ include "postfix.fullname" .ctx }}-config
{{- end -}}

{{/*
The containers of the queue pod in the split topology: queue, delivery,
log (with a shared log) and bridge-queue. Sockets on the emptyDirs
"private" and "public", shared by all; the queue on "spool", shared by
queue and delivery; each master its own pid/ and data directory.
*/}}
{{- define "postfix.splitQueueContainers" -}}
{{- $v := .Values -}}
{{ include "postfix.splitContainerHead" (dict "ctx" $ "name" "queue") }}
  env:
    {{- include "postfix.splitEnv" (dict "ctx" $ "role" "queue") | nindent 4 }}
  {{- with (include "postfix.extraPorts" (dict "ctx" $ "drain" true) | trim) }}
  ports:
    {{- . | nindent 4 }}
  {{- end }}
  {{- if $v.drain.enabled }}
  # Stop taking mail, deliver, hand the rest to a peer (drain.*).
  {{- include "postfix.drainLifecycle" . | nindent 2 }}
  {{- end }}
  {{- with (include "postfix.splitProbes" (dict "ctx" $ "ready" true "startup" true) | trim) }}{{ . | nindent 2 }}{{ end }}
  resources:
    {{- toYaml $v.queue.resources | nindent 4 }}
  volumeMounts:
    - name: spool
      mountPath: /var/spool/postfix
    - name: private
      mountPath: /var/spool/postfix/private
    - name: public
      mountPath: /var/spool/postfix/public
    - name: pid-queue
      mountPath: /var/spool/postfix/pid
    - name: data
      mountPath: /var/lib/postfix
    - name: run
      mountPath: /run
    - name: tmp
      mountPath: /tmp
    {{- if and $v.metrics.enabled $v.split.log.shared }}
    - name: log
      mountPath: /var/log/postfix
      readOnly: true
    {{- end }}
    {{- with (include "postfix.configMounts" (dict "ctx" $ "mysql" true) | trim) }}{{ . | nindent 4 }}{{ end }}
    {{- with (include "postfix.drainTlsMount" $ | trim) }}{{ . | nindent 4 }}{{ end }}
    {{- with $v.queue.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{ include "postfix.splitContainerHead" (dict "ctx" $ "name" "delivery") }}
  env:
    {{- include "postfix.splitEnv" (dict "ctx" $ "role" "delivery") | nindent 4 }}
  {{- if $v.drain.enabled }}
  # Deliver (and hand off) for the queue container's drain.
  {{- include "postfix.drainWaitLifecycle" $ | nindent 2 }}
  {{- end }}
  {{- with (include "postfix.splitProbes" (dict "ctx" $ "ready" false "startup" true) | trim) }}{{ . | nindent 2 }}{{ end }}
  resources:
    {{- toYaml $v.split.delivery.resources | nindent 4 }}
  volumeMounts:
    - name: spool
      mountPath: /var/spool/postfix
    - name: private
      mountPath: /var/spool/postfix/private
    - name: public
      mountPath: /var/spool/postfix/public
    - name: pid-delivery
      mountPath: /var/spool/postfix/pid
    - name: data-delivery
      mountPath: /var/lib/postfix
    - name: run-delivery
      mountPath: /run
    - name: tmp
      mountPath: /tmp
    {{- with (include "postfix.configMounts" (dict "ctx" $ "mysql" true) | trim) }}{{ . | nindent 4 }}{{ end }}
    {{- /* Its smtp agents run the handoff transport: the same certificates. */}}
    {{- with (include "postfix.drainTlsMount" $ | trim) }}{{ . | nindent 4 }}{{ end }}
{{- if $v.split.log.shared }}
{{ include "postfix.splitContainerHead" (dict "ctx" $ "name" "log") }}
  env:
    {{- include "postfix.splitEnv" (dict "ctx" $ "role" "log") | nindent 4 }}
  {{- with (include "postfix.splitProbes" (dict "ctx" $ "ready" true "startup" true) | trim) }}{{ . | nindent 2 }}{{ end }}
  resources:
    {{- toYaml $v.split.log.resources | nindent 4 }}
  volumeMounts:
    - name: log-spool
      mountPath: /var/spool/postfix
    - name: public
      mountPath: /var/spool/postfix/public
    - name: data-log
      mountPath: /var/lib/postfix
    - name: log
      mountPath: /var/log/postfix
    - name: run-log
      mountPath: /run
    - name: tmp
      mountPath: /tmp
    {{- with (include "postfix.configMounts" (dict "ctx" $) | trim) }}{{ . | nindent 4 }}{{ end }}
{{- end }}
{{ include "postfix.splitContainerHead" (dict "ctx" $ "name" "bridge") }}
  env:
    {{- include "postfix.splitEnv" (dict "ctx" $ "role" "bridge-queue") | nindent 4 }}
  ports:
    {{- range (include "postfix.bridgePorts" $ | fromYaml).ports }}
    - name: {{ .name }}
      containerPort: {{ .port }}
      protocol: {{ .protocol }}
    {{- end }}
  {{- with (include "postfix.splitProbes" (dict "ctx" $ "ready" false "startup" false) | trim) }}{{ . | nindent 2 }}{{ end }}
  resources:
    {{- toYaml $v.split.bridge.resources | nindent 4 }}
  volumeMounts:
    - name: private
      mountPath: /var/spool/postfix/private
    - name: public
      mountPath: /var/spool/postfix/public
    - name: run-bridge
      mountPath: /run
    - name: tmp
      mountPath: /tmp
    {{- if eq $v.split.bridge.tls.mode "mutual" }}
    - name: bridge-tls
      mountPath: /etc/postfix/bridge-tls
      readOnly: true
    {{- end }}
    {{- with (include "postfix.configMounts" (dict "ctx" $) | trim) }}{{ . | nindent 4 }}{{ end }}
{{- end -}}

{{/* The queue pod's volumes in the split topology (besides spool and files). */}}
{{- define "postfix.splitQueueVolumes" -}}
{{- $v := .Values -}}
# The sockets of every role (private/, public/): emptyDirs, never on the
# claim (some storage cannot hold UNIX sockets).
- name: private
  emptyDir: {}
- name: public
  emptyDir: {}
# One pid/ and one data directory per master(8).
- name: pid-queue
  emptyDir: {}
- name: pid-delivery
  emptyDir: {}
- name: data-delivery
  emptyDir: {}
- name: run-delivery
  emptyDir:
    medium: Memory
    sizeLimit: 64Mi
- name: run-bridge
  emptyDir:
    medium: Memory
    sizeLimit: 64Mi
{{- if $v.split.log.shared }}
- name: log-spool
  emptyDir: {}
- name: data-log
  emptyDir: {}
- name: run-log
  emptyDir:
    medium: Memory
    sizeLimit: 64Mi
{{- if not $v.split.log.persistence.enabled }}
- name: log
  emptyDir:
    sizeLimit: {{ $v.split.log.persistence.size }}
{{- end }}
{{- end }}
{{- if eq $v.split.bridge.tls.mode "mutual" }}
- name: bridge-tls
  secret:
    secretName: {{ include "postfix.bridgeSecret" (dict "ctx" $ "side" "server") }}
    defaultMode: 288  # 0440: owner and group (the pod runs in group 0) read
{{- end }}
{{- end -}}
