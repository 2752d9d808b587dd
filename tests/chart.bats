#!/usr/bin/env bats
# The Helm chart k8s/postfix (issue 7): helm lint, helm template for every
# value set, every rendered object validated against the Kubernetes schemas
# (kubernetes-models) with unknown fields rejected, every pod spec checked
# against Pod Security "restricted", unit assertions that each value reaches
# its manifest, the values schema, the committed plain manifests, and
# `podman kube play` of the rendered pod as a random UID delivering a mail
# over LMTP to a real Dovecot on loopback. Ports 20300-20399.

PORT_BASE=20300
SMTP=$((PORT_BASE + 0))
SUBMISSION=$((PORT_BASE + 1))
SMTPS=$((PORT_BASE + 2))
HANDOFF=$((PORT_BASE + 3))
METRICS=$((PORT_BASE + 4))
LMTP=$((PORT_BASE + 20))
IMAP=$((PORT_BASE + 21))
AUTH=$((PORT_BASE + 22))
DOMAIN=mx.example.test

load lib/common
load lib/dovecot
load lib/chart

# The value sets: the defaults and k8s/postfix/ci/*-values.yaml.
VALUE_SETS="defaults openshift secrets proxy dovecot split monitoring"
STS=StatefulSet/postfix-queue

setup_file() {
	suite_workdir chart
	mkdir -p "$WORK/render" "$WORK/kube"
	chart_install_tools
	local set
	for set in $VALUE_SETS; do
		if [ "$set" = defaults ]; then
			chart_render "$WORK/render/$set.yaml"
		else
			chart_render "$WORK/render/$set.yaml" \
				-f "$CHART/ci/$set-values.yaml"
		fi
	done
	# The kube play pod runs as a random UID without a passwd entry, as
	# OpenShift assigns one.
	KUBE_UID=$((1000730000 + RANDOM % 10000))
	while getent passwd "$KUBE_UID" >/dev/null; do
		KUBE_UID=$((KUBE_UID + 1))
	done
	export KUBE_UID
	# The split topology with its defaults otherwise.
	chart_render "$WORK/render/split-defaults.yaml" --set topology=split
	CHART_RELEASE=pftest chart_render "$WORK/render/kube-play.yaml" \
		-f "$TOP/tests/chart-values/kube-play.yaml" \
		--set "podSecurityContext.runAsUser=$KUBE_UID"
}

teardown_file() {
	kube_down "$WORK/kube"
	dv_stop "$WORK/dovecot" || true
	suite_cleanup
}

# --- lint, schemas, restricted ----------------------------------------------

@test "helm lint --strict passes with the defaults and every ci value set" {
	run "$HELM" lint --strict "$CHART"
	echo "$output"
	[ "$status" -eq 0 ]
	for f in "$CHART"/ci/*-values.yaml; do
		run "$HELM" lint --strict "$CHART" -f "$f"
		echo "$output"
		[ "$status" -eq 0 ]
	done
	[ "$(find "$CHART/ci" -name "*-values.yaml" | wc -l)" -ge 4 ]
}

@test "the defaults render exactly the documented objects" {
	run kq "$WORK/render/defaults.yaml" --list
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | sort | tr '\n' ' ')" = "ConfigMap/postfix-config NetworkPolicy/postfix-queue PodDisruptionBudget/postfix-queue Service/postfix-queue Service/postfix-smtp ServiceAccount/postfix StatefulSet/postfix-queue " ]
	# docs/kubernetes.md lists the same objects.
	for o in $output; do
		grep -qF "$o" "$TOP/docs/kubernetes.md"
	done
}

@test "every rendered object of every value set passes the Kubernetes schemas, no unknown field" {
	for set in $VALUE_SETS kube-play; do
		run "$K8S_TOOLS/validate" "$WORK/render/$set.yaml"
		echo "== $set"
		echo "$output"
		[ "$status" -eq 0 ]
		echo "$output" | grep -q "^ok $STS\$\|^ok StatefulSet/pftest-postfix-queue\$"
	done
}

@test "the validator rejects a misspelled field and a wrong type" {
	sed 's/automountServiceAccountToken:/automountServiceAcountToken:/' \
		"$WORK/render/defaults.yaml" >"$WORK/typo.yaml"
	run "$K8S_TOOLS/validate" "$WORK/typo.yaml"
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q 'automountServiceAcountToken: unknown field'
	sed 's/containerPort: 2525/containerPort: "2525"/' \
		"$WORK/render/defaults.yaml" >"$WORK/type.yaml"
	run "$K8S_TOOLS/validate" "$WORK/type.yaml"
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q 'containerPort: must be integer'
}

@test "every pod spec of every value set passes Pod Security restricted" {
	for set in $VALUE_SETS kube-play; do
		run "$K8S_TOOLS/restricted-check" "$WORK/render/$set.yaml"
		echo "== $set"
		echo "$output"
		[ "$status" -eq 0 ]
		echo "$output" | grep -q 'queue (spec.template.spec): restricted$'
	done
	run "$K8S_TOOLS/restricted-check" "$WORK/render/dovecot.yaml"
	echo "$output" | grep -q '^ok Deployment/postfix-dovecot .*: restricted$'
}

@test "the restricted check catches root, privilege escalation, hostPath and added capabilities" {
	sed -e 's/allowPrivilegeEscalation: false/allowPrivilegeEscalation: true/' \
		-e 's/runAsUser: 10001/runAsUser: 0/' \
		-e 's/^\(        - name: data\)$/\1\n          hostPath: {path: \/tmp}/' \
		-e 's/^\(              drop:\)$/              add: [SYS_ADMIN]\n\1/' \
		"$WORK/render/defaults.yaml" >"$WORK/bad.yaml"
	run "$K8S_TOOLS/restricted-check" "$WORK/bad.yaml"
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q 'allowPrivilegeEscalation: containers\[postfix\]'
	echo "$output" | grep -q 'runAsUser: pod: 0'
	echo "$output" | grep -q 'hostPath volumes: data'
	echo "$output" | grep -q 'capabilities: containers\[postfix\]: adds SYS_ADMIN'
}

@test "the committed plain manifests k8s/rendered are what the chart renders" {
	run "$K8S_TOOLS/render" --check
	echo "$output"
	[ "$status" -eq 0 ]
	diff <(sed -n '4,$p' "$TOP/k8s/rendered/postfix.yaml") "$WORK/render/defaults.yaml"
	diff <(sed -n '4,$p' "$TOP/k8s/rendered/postfix-split.yaml") "$WORK/render/split-defaults.yaml"
}

# --- the values schema -------------------------------------------------------

@test "the values schema rejects a misspelled key, a wrong type and a privileged container" {
	chart_fails --set queue.replica=2
	echo "$output" | grep -q "additional properties 'replica' not allowed"
	chart_fails --set-string queue.replicas=two
	echo "$output" | grep -q "/queue/replicas': got string, want integer"
	chart_fails --set tls.existingSecert=x
	echo "$output" | grep -q "additional properties 'existingSecert' not allowed"
	chart_fails --set containerSecurityContext.privileged=true
	chart_fails --set containerSecurityContext.allowPrivilegeEscalation=true
	chart_fails --set postfix.containerPorts.smtp=25
	chart_fails --set service.externalTrafficPolicy=local
	chart_fails --set-json 'queue.extraVolumes=[{"name":"h","hostPath":{"path":"/"}}]'
}

@test "every value is documented in values.yaml and the schema names the same keys" {
	run "$K8S_TOOLS/check-values-doc"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "values the schema cannot express fail with a clear message" {
	chart_fails --set tls.enabled=true
	echo "$output" | grep -q 'tls.enabled needs tls.existingSecret'
	chart_fails --set mysql.enabled=true
	echo "$output" | grep -q 'mysql.enabled needs mysql.existingSecret'
	chart_fails --set sasl.type=cyrus
	chart_fails --set postfix.containerPorts.smtps=2525
}

# --- values reach their manifests --------------------------------------------

@test "queue.replicas reaches the StatefulSet; one replica and a spool claim by default" {
	[ "$(kq "$WORK/render/defaults.yaml" $STS 'o.spec.replicas')" = 1 ]
	[ "$(kq "$WORK/render/defaults.yaml" $STS 'o.spec.volumeClaimTemplates[0].metadata.name')" = spool ]
	[ "$(kq "$WORK/render/defaults.yaml" $STS 'o.spec.volumeClaimTemplates[0].spec.resources.requests.storage')" = 2Gi ]
	[ "$(kq "$WORK/render/defaults.yaml" $STS 'o.spec.template.spec.containers[0].volumeMounts.find(m => m.name == "spool").mountPath')" = /var/spool/postfix ]
	[ "$(kq "$WORK/render/dovecot.yaml" $STS 'o.spec.replicas')" = 2 ]
	[ "$(kq "$WORK/render/dovecot.yaml" $STS 'o.spec.volumeClaimTemplates[0].spec.storageClassName')" = fast ]
	chart_render "$WORK/r.yaml" --set queue.persistence.enabled=false
	kq_absent "$WORK/r.yaml" $STS 'o.spec.volumeClaimTemplates'
	[ "$(kq "$WORK/r.yaml" $STS 'JSON.stringify(o.spec.template.spec.volumes.find(v => v.name == "spool").emptyDir)')" = '{}' ]
}

@test "Service ports 25/587/465 target the named container ports 2525/2587/2465" {
	local f=$WORK/render/defaults.yaml
	[ "$(kq "$f" Service/postfix-smtp 'o.spec.ports.map(p => p.name + ":" + p.port + ">" + p.targetPort).join(" ")')" = "smtp:25>smtp submission:587>submission smtps:465>smtps" ]
	[ "$(kq "$f" $STS 'o.spec.template.spec.containers[0].ports.map(p => p.name + "=" + p.containerPort).join(" ")')" = "smtp=2525 submission=2587 smtps=2465 handoff=2526 metrics=9154" ]
	[ "$(kq "$f" Service/postfix-smtp 'o.spec.selector["app.kubernetes.io/component"]')" = queue ]
	[ "$(kq "$f" $STS 'o.spec.template.metadata.labels["app.kubernetes.io/component"]')" = queue ]
	# containerPorts move the listeners: container ports and main.cf agree.
	f=$WORK/render/kube-play.yaml
	[ "$(kq "$f" StatefulSet/pftest-postfix-queue 'o.spec.template.spec.containers[0].ports.map(p => p.containerPort).join(" ")')" = "$SMTP $SUBMISSION $SMTPS $HANDOFF $METRICS" ]
	[ "$(kq "$f" ConfigMap/pftest-postfix-config 'o.data.POSTFIX_handoff_in_port')" = "$HANDOFF" ]
	[ "$(kq "$f" ConfigMap/pftest-postfix-config 'o.data.POSTFIX_smtp_in_port')" = "$SMTP" ]
	[ "$(kq "$f" ConfigMap/pftest-postfix-config 'o.data.POSTFIX_submission_in_port')" = "$SUBMISSION" ]
	[ "$(kq "$f" ConfigMap/pftest-postfix-config 'o.data.POSTFIX_smtps_in_port')" = "$SMTPS" ]
	chart_render "$WORK/r.yaml" --set service.ports.submission.enabled=false --set service.ports.smtp.port=2525
	[ "$(kq "$WORK/r.yaml" Service/postfix-smtp 'o.spec.ports.map(p => p.name + ":" + p.port).join(" ")')" = "smtp:2525 smtps:465" ]
}

@test "externalTrafficPolicy Local and the service type reach the Service" {
	local f=$WORK/render/proxy.yaml
	[ "$(kq "$f" Service/postfix-smtp 'o.spec.type')" = LoadBalancer ]
	[ "$(kq "$f" Service/postfix-smtp 'o.spec.externalTrafficPolicy')" = Local ]
	[ "$(kq "$f" Service/postfix-smtp 'o.spec.ports.find(p => p.name == "smtps").nodePort')" = 30465 ]
	[ "$(kq "$f" Service/postfix-smtp 'o.metadata.annotations["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"]')" = '*' ]
	# A ClusterIP Service has no externalTrafficPolicy (the API rejects it).
	kq_absent "$WORK/render/defaults.yaml" Service/postfix-smtp 'o.spec.externalTrafficPolicy'
}

@test "proxyProtocol.enabled reaches Postfix as smtpd_upstream_proxy_protocol = haproxy" {
	[ "$(kq "$WORK/render/proxy.yaml" ConfigMap/postfix-config 'o.data.POSTFIX_smtpd_upstream_proxy_protocol')" = haproxy ]
	kq_absent "$WORK/render/defaults.yaml" ConfigMap/postfix-config 'o.data.POSTFIX_smtpd_upstream_proxy_protocol'
	# ...and the pod takes the ConfigMap as its environment.
	[ "$(kq "$WORK/render/proxy.yaml" $STS 'o.spec.template.spec.containers[0].envFrom[0].configMapRef.name')" = postfix-config ]
}

@test "TLS, SASL and MariaDB come from the named Secrets, never from a ConfigMap" {
	local f=$WORK/render/secrets.yaml vol
	vol() { kq "$f" $STS "o.spec.template.spec.volumes.find(v => v.name == '$1').secret.secretName"; }
	mnt() { kq "$f" $STS "o.spec.template.spec.containers[0].volumeMounts.find(m => m.name == '$1').mountPath"; }
	[ "$(vol tls)" = mx-example-org-tls ]
	[ "$(mnt tls)" = /etc/postfix/tls ]
	[ "$(vol sasl)" = postfix-sasldb ]
	[ "$(mnt sasl)" = /etc/postfix/sasl ]
	[ "$(vol mysql)" = postfix-mysql-tables ]
	[ "$(mnt mysql)" = /etc/postfix/mysql ]
	# The TLS Secret is mounted whole (no subPath), so renewals reach the pod.
	kq_absent "$f" $STS 'o.spec.template.spec.containers[0].volumeMounts.find(m => m.name == "tls").subPath'
	[ "$(kq "$f" ConfigMap/postfix-config 'o.data.POSTFIX_virtual_mailbox_maps')" = mysql:/etc/postfix/mysql/virtual_mailbox_maps.cf ]
	[ "$(kq "$f" ConfigMap/postfix-config 'o.data.POSTFIX_smtpd_sasl_type')" = cyrus ]
	[ "$(kq "$f" ConfigMap/postfix-config 'o.data.POSTFIX_cyrus_sasl_config_path')" = /etc/postfix/sasl ]
	# No Secret object is rendered, and no ConfigMap holds a credential.
	[ "$(grep -c '^kind: Secret' "$f")" -eq 0 ]
	kq "$f" ConfigMap/postfix-config 'JSON.stringify(o.data)' >"$WORK/cm.json"
	run grep -Eiq 'password|passwd' "$WORK/cm.json"
	[ "$status" -eq 1 ]
	# Without the values, nothing of it is mounted.
	kq_absent "$WORK/render/defaults.yaml" $STS 'o.spec.template.spec.volumes.find(v => v.secret)'
}

@test "the chart's Dovecot becomes the LMTP destination and the SASL path" {
	local f=$WORK/render/dovecot.yaml
	[ "$(kq "$f" ConfigMap/postfix-config 'o.data.POSTFIX_mailbox_lmtp_destination')" = inet:postfix-dovecot:24 ]
	[ "$(kq "$f" ConfigMap/postfix-config 'o.data.POSTFIX_smtpd_sasl_path')" = inet:postfix-dovecot:12345 ]
	[ "$(kq "$f" Service/postfix-dovecot 'o.spec.ports.map(p => p.port + ">" + p.targetPort).join(" ")')" = "24>lmtp 143>imap 12345>auth" ]
	[ "$(kq "$f" Deployment/postfix-dovecot 'o.spec.template.spec.securityContext.runAsUser')" = 1000 ]
	[ "$(kq "$f" ConfigMap/postfix-config 'o.data.POSTFIX_message_size_limit')" = 52428800 ]
	[ "$(kq "$f" ConfigMap/postfix-config 'o.data.POSTFIX_smtpd_helo_required')" = yes ]
	# A complete master.cf is mounted over the image's.
	[ "$(kq "$f" $STS 'o.spec.template.spec.containers[0].volumeMounts.find(m => m.mountPath == "/etc/postfix/master.cf").subPath')" = master.cf ]
	kq "$f" ConfigMap/postfix-config-files 'o.data["master.cf"]' | grep -q '^smtp-in   inet'
	[ "$(kq "$WORK/render/defaults.yaml" ConfigMap/postfix-config 'o.data.POSTFIX_mailbox_lmtp_destination')" = inet:dovecot:24 ]
}

@test "openshift: true leaves runAsUser, runAsGroup and fsGroup unset in every pod" {
	local psc='o.spec.template.spec.securityContext'
	[ "$(kq "$WORK/render/defaults.yaml" $STS "$psc.runAsUser")" = 10001 ]
	[ "$(kq "$WORK/render/defaults.yaml" $STS "$psc.runAsGroup")" = 0 ]
	[ "$(kq "$WORK/render/defaults.yaml" $STS "$psc.fsGroup")" = 0 ]
	[ "$(kq "$WORK/render/openshift.yaml" $STS "Object.keys($psc).sort().join(' ')")" = "fsGroupChangePolicy runAsNonRoot seccompProfile" ]
	chart_render "$WORK/r.yaml" --set openshift=true --set dovecot.enabled=true
	[ "$(kq "$WORK/r.yaml" Deployment/postfix-dovecot "Object.keys($psc).sort().join(' ')")" = "fsGroupChangePolicy runAsNonRoot seccompProfile" ]
	[ "$(kq "$WORK/render/kube-play.yaml" StatefulSet/pftest-postfix-queue "$psc.runAsUser")" = "$KUBE_UID" ]
}

@test "the security defaults: restricted contexts, read-only root, no service account token" {
	local f=$WORK/render/defaults.yaml c='o.spec.template.spec.containers[0].securityContext'
	[ "$(kq "$f" $STS "$c.readOnlyRootFilesystem")" = true ]
	[ "$(kq "$f" $STS "$c.allowPrivilegeEscalation")" = false ]
	[ "$(kq "$f" $STS "$c.capabilities.drop.join()")" = ALL ]
	[ "$(kq "$f" $STS 'o.spec.template.spec.securityContext.seccompProfile.type')" = RuntimeDefault ]
	[ "$(kq "$f" $STS 'o.spec.template.spec.securityContext.runAsNonRoot')" = true ]
	[ "$(kq "$f" $STS 'o.spec.template.spec.automountServiceAccountToken')" = false ]
	[ "$(kq "$f" ServiceAccount/postfix 'o.automountServiceAccountToken')" = false ]
	[ "$(kq "$f" $STS 'o.spec.template.spec.serviceAccountName')" = postfix ]
	# No POSTFIX_SMTP_SERVICE_HOST & co. from the Service postfix-smtp: the
	# entrypoint would take POSTFIX_* variables for main.cf settings.
	[ "$(kq "$f" $STS 'o.spec.template.spec.enableServiceLinks')" = false ]
	# Writable paths are volumes: /run and /tmp emptyDirs.
	[ "$(kq "$f" $STS 'o.spec.template.spec.containers[0].volumeMounts.map(m => m.mountPath).sort().join(" ")')" = "/run /tmp /var/lib/postfix /var/spool/postfix" ]
}

@test "probes run the image's postfix-health; resources are set" {
	local f=$WORK/render/defaults.yaml c='o.spec.template.spec.containers[0]'
	[ "$(kq "$f" $STS "$c.livenessProbe.exec.command.join(' ')")" = "postfix-health live" ]
	[ "$(kq "$f" $STS "$c.readinessProbe.exec.command.join(' ')")" = "postfix-health ready" ]
	[ "$(kq "$f" $STS "$c.startupProbe.exec.command.join(' ')")" = "postfix-health live" ]
	[ "$(kq "$f" $STS "$c.resources.limits.memory")" = 512Mi ]
	chart_render "$WORK/r.yaml" --set probes.readiness.enabled=false --set queue.resources.limits.memory=1Gi
	kq_absent "$WORK/r.yaml" $STS "$c.readinessProbe"
	[ "$(kq "$WORK/r.yaml" $STS "$c.resources.limits.memory")" = 1Gi ]
	[ "$(kq "$f" $STS "$c.env.find(e => e.name == 'POSTFIX_ROLE').value")" = single ]
}

@test "PodDisruptionBudget and NetworkPolicy select the queue pods" {
	local f=$WORK/render/defaults.yaml sel='JSON.stringify(o.spec.selector.matchLabels)'
	[ "$(kq "$f" PodDisruptionBudget/postfix-queue 'o.spec.maxUnavailable')" = 1 ]
	[ "$(kq "$f" PodDisruptionBudget/postfix-queue "$sel")" = "$(kq "$f" $STS "$sel")" ]
	[ "$(kq "$f" NetworkPolicy/postfix-queue 'JSON.stringify(o.spec.podSelector.matchLabels)')" = "$(kq "$f" $STS "$sel")" ]
	[ "$(kq "$f" NetworkPolicy/postfix-queue 'o.spec.ingress[0].ports.map(p => p.port).join(" ")')" = "smtp submission smtps" ]
	kq "$f" NetworkPolicy/postfix-queue 'o.spec.egress[0].ports.map(p => p.port + "/" + p.protocol).join(" ")' | grep -q '53/UDP.*25/TCP'
	chart_render "$WORK/r.yaml" --set queue.podDisruptionBudget.enabled=false --set networkPolicy.enabled=false
	kq_absent "$WORK/r.yaml" PodDisruptionBudget/postfix-queue 'o'
	kq_absent "$WORK/r.yaml" NetworkPolicy/postfix-queue 'o'
}

@test "a configuration change changes checksum/config (rolls the pod); other changes do not" {
	local a='o.spec.template.metadata.annotations["checksum/config"]' base
	base=$(kq "$WORK/render/defaults.yaml" $STS "$a")
	[ -n "$base" ]
	chart_render "$WORK/r.yaml" --set postfix.config.message_size_limit=1000
	[ "$(kq "$WORK/r.yaml" $STS "$a")" != "$base" ]
	chart_render "$WORK/r.yaml" --set postfix.hostname=mx.other.test
	[ "$(kq "$WORK/r.yaml" $STS "$a")" != "$base" ]
	chart_render "$WORK/r.yaml" --set postfix.masterCf=x
	[ "$(kq "$WORK/r.yaml" $STS "$a")" != "$base" ]
	chart_render "$WORK/r.yaml" --set queue.replicas=3
	[ "$(kq "$WORK/r.yaml" $STS "$a")" = "$base" ]
}

@test "every object is named <fullname>-<component> and labelled with its component" {
	local f
	for f in "$WORK/render/dovecot.yaml" "$WORK/render/monitoring.yaml" "$WORK/render/split.yaml"; do
		run kq "$f" --list
		echo "$output"
		for o in $output; do
			name=${o#*/}
			comp=$(kq "$f" "$o" 'o.metadata.labels["app.kubernetes.io/component"]')
			[ -n "$comp" ]
			case $name in
			postfix) [ "$o" = ServiceAccount/postfix ] ;;
			*) [ "$name" = "postfix-$comp" ] || [ "${name#postfix-"$comp"-}" != "$name" ] ;;
			esac
		done
	done
}

@test "NOTES.txt tells how to send a first mail with swaks and how to read the logs" {
	run "$HELM" install --dry-run=client postfix "$CHART" --namespace mail
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q 'kubectl -n mail port-forward service/postfix-smtp 2525:25'
	echo "$output" | grep -q 'swaks --server 127.0.0.1:2525'
	echo "$output" | grep -q 'kubectl -n mail logs -f postfix-queue-0'
}

# --- the split topology (docs/split.md) --------------------------------------

EDGE=Deployment/postfix-edge

# ctr FILE WORKLOAD NAME EXPR - EXPR of the container NAME (as "c").
ctr() {
	kq "$1" "$2" "(c => $4)(o.spec.template.spec.containers.find(c => c.name == '$3'))"
}

@test "split: the defaults render the edge Deployment, the bridge Service and policies, no more" {
	local f=$WORK/render/split-defaults.yaml
	run kq "$f" --list
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | sort | tr '\n' ' ')" = "ConfigMap/postfix-config Deployment/postfix-edge NetworkPolicy/postfix-edge NetworkPolicy/postfix-queue PodDisruptionBudget/postfix-edge PodDisruptionBudget/postfix-queue Service/postfix-bridge Service/postfix-edge-metrics Service/postfix-queue Service/postfix-smtp ServiceAccount/postfix StatefulSet/postfix-queue " ]
	# docs/split.md lists them (the metrics Service: docs/kubernetes.md).
	for o in $output; do
		grep -qF "$o" "$TOP/docs/split.md" || grep -qF "$o" "$TOP/docs/kubernetes.md"
	done
	for set in split-defaults split; do
		run "$K8S_TOOLS/validate" "$WORK/render/$set.yaml"
		echo "$output"
		[ "$status" -eq 0 ]
		run "$K8S_TOOLS/restricted-check" "$WORK/render/$set.yaml"
		echo "$output"
		[ "$status" -eq 0 ]
		echo "$output" | grep -q '^ok Deployment/postfix-edge (spec.template.spec): restricted$'
		echo "$output" | grep -q '^ok StatefulSet/postfix-queue (spec.template.spec): restricted$'
	done
	# The single topology's objects keep their names and shape.
	[ "$(kq "$WORK/render/defaults.yaml" $STS 'o.spec.template.spec.containers.map(c => c.name).join(" ")')" = postfix ]
	kq_absent "$WORK/render/defaults.yaml" $EDGE 'o'
	kq_absent "$WORK/render/defaults.yaml" Service/postfix-bridge 'o'
}

@test "split: the queue pod runs queue, delivery and bridge (and log), each with its role and its own pid/ and data" {
	local f=$WORK/render/split-defaults.yaml m
	[ "$(kq "$f" $STS 'o.spec.template.spec.containers.map(c => c.name).join(" ")')" = "queue delivery bridge" ]
	for c in queue:queue delivery:delivery bridge:bridge-queue; do
		[ "$(ctr "$f" $STS "${c%%:*}" 'c.env.find(e => e.name == "POSTFIX_ROLE").value')" = "${c#*:}" ]
	done
	m='c.volumeMounts.map(m => m.name + "=" + m.mountPath).join(" ")'
	[ "$(ctr "$f" $STS queue "$m")" = "spool=/var/spool/postfix private=/var/spool/postfix/private public=/var/spool/postfix/public pid-queue=/var/spool/postfix/pid data=/var/lib/postfix run=/run tmp=/tmp handoff-tls=/etc/postfix/bridge-tls" ]
	[ "$(ctr "$f" $STS delivery "$m")" = "spool=/var/spool/postfix private=/var/spool/postfix/private public=/var/spool/postfix/public pid-delivery=/var/spool/postfix/pid data-delivery=/var/lib/postfix run-delivery=/run tmp=/tmp handoff-tls=/etc/postfix/bridge-tls" ]
	[ "$(ctr "$f" $STS bridge "$m")" = "private=/var/spool/postfix/private public=/var/spool/postfix/public run-bridge=/run tmp=/tmp bridge-tls=/etc/postfix/bridge-tls" ]
	# Sockets on emptyDirs, the queue on the claim.
	for v in private public pid-queue pid-delivery; do
		[ "$(kq "$f" $STS "JSON.stringify(o.spec.template.spec.volumes.find(v => v.name == '$v').emptyDir)")" = '{}' ]
	done
	[ "$(kq "$f" $STS 'o.spec.volumeClaimTemplates.map(t => t.metadata.name).join(" ")')" = spool ]
	[ "$(kq "$f" $STS 'o.spec.template.spec.volumes.find(v => v.name == "bridge-tls").secret.secretName')" = postfix-bridge-tls ]
	# Only the queue and the edge have a readiness probe; every container
	# has the liveness probe.
	[ "$(kq "$f" $STS 'o.spec.template.spec.containers.filter(c => c.readinessProbe).map(c => c.name).join(" ")')" = queue ]
	[ "$(kq "$f" $STS 'o.spec.template.spec.containers.filter(c => c.livenessProbe).length')" = 3 ]
	# Shared log: the log container, POSTFIX_LOG=shared everywhere, a claim.
	f=$WORK/render/split.yaml
	[ "$(kq "$f" $STS 'o.spec.template.spec.containers.map(c => c.name).join(" ")')" = "queue delivery log bridge" ]
	[ "$(kq "$f" $STS 'o.spec.template.spec.containers.map(c => c.env.find(e => e.name == "POSTFIX_LOG").value).join(" ")')" = "shared shared shared shared" ]
	[ "$(ctr "$f" $STS log "$m")" = "log-spool=/var/spool/postfix public=/var/spool/postfix/public data-log=/var/lib/postfix log=/var/log/postfix run-log=/run tmp=/tmp" ]
	[ "$(kq "$f" $STS 'o.spec.volumeClaimTemplates.map(t => t.metadata.name + ":" + t.spec.resources.requests.storage).join(" ")')" = "spool:2Gi log:5Gi" ]
	[ "$(kq "$f" $EDGE 'o.spec.template.spec.containers.map(c => c.env.find(e => e.name == "POSTFIX_LOG").value).join(" ")')" = "shared shared" ]
}

@test "split: the edge Deployment runs smtpd and its bridge, with no access to the queue; replicas or an HPA" {
	local f=$WORK/render/split-defaults.yaml m='c.volumeMounts.map(m => m.name + "=" + m.mountPath).join(" ")'
	[ "$(kq "$f" $EDGE 'o.spec.replicas')" = 2 ]
	[ "$(kq "$f" $EDGE 'o.spec.template.spec.containers.map(c => c.name).join(" ")')" = "edge bridge" ]
	[ "$(ctr "$f" $EDGE edge 'c.env.find(e => e.name == "POSTFIX_ROLE").value')" = edge ]
	[ "$(ctr "$f" $EDGE bridge 'c.env.find(e => e.name == "POSTFIX_ROLE").value')" = bridge-edge ]
	[ "$(ctr "$f" $EDGE bridge 'c.env.find(e => e.name == "POSTFIX_BRIDGE_PEER").value')" = postfix-bridge.mail.svc ]
	[ "$(ctr "$f" $EDGE edge 'c.ports.map(p => p.name + "=" + p.containerPort).join(" ")')" = "smtp=2525 submission=2587 smtps=2465 metrics=9154" ]
	[ "$(ctr "$f" $EDGE edge 'c.readinessProbe.exec.command.join(" ")')" = "postfix-health ready" ]
	# Its own empty queue directory: an emptyDir, never the claim.
	[ "$(ctr "$f" $EDGE edge "$m")" = "spool=/var/spool/postfix private=/var/spool/postfix/private public=/var/spool/postfix/public data=/var/lib/postfix run=/run tmp=/tmp" ]
	[ "$(kq "$f" $EDGE 'o.spec.template.spec.volumes.find(v => v.name == "spool").emptyDir.sizeLimit')" = 64Mi ]
	kq_absent "$f" $EDGE 'o.spec.template.spec.volumes.find(v => v.persistentVolumeClaim)'
	[ "$(kq "$f" $EDGE 'o.spec.template.spec.automountServiceAccountToken')" = false ]
	[ "$(kq "$f" $EDGE 'o.spec.template.spec.securityContext.runAsUser')" = 10001 ]
	[ "$(kq "$f" $EDGE 'o.spec.template.metadata.annotations["checksum/config"]')" = "$(kq "$f" $STS 'o.spec.template.metadata.annotations["checksum/config"]')" ]
	# The ci set: an HPA instead of replicas, the client Secret, TLS on the edge.
	f=$WORK/render/split.yaml
	kq_absent "$f" $EDGE 'o.spec.replicas'
	[ "$(kq "$f" HorizontalPodAutoscaler/postfix-edge 'o.spec.minReplicas + "-" + o.spec.maxReplicas + "@" + o.spec.metrics[0].resource.target.averageUtilization')" = "3-12@60" ]
	[ "$(kq "$f" HorizontalPodAutoscaler/postfix-edge 'o.spec.scaleTargetRef.name')" = postfix-edge ]
	[ "$(kq "$f" $EDGE 'o.spec.template.spec.volumes.find(v => v.name == "bridge-tls").secret.secretName')" = postfix-bridge-client ]
	[ "$(kq "$f" $STS 'o.spec.template.spec.volumes.find(v => v.name == "bridge-tls").secret.secretName')" = postfix-bridge-server ]
	[ "$(ctr "$f" $EDGE edge 'c.volumeMounts.find(m => m.name == "tls").mountPath')" = /etc/postfix/tls ]
	[ "$(ctr "$f" $EDGE bridge 'c.env.find(e => e.name == "POSTFIX_BRIDGE_TLS_NAME").value')" = postfix-bridge.mail ]
	kq_absent "$WORK/render/split-defaults.yaml" HorizontalPodAutoscaler/postfix-edge 'o'
	# openshift: true leaves the UIDs to the SCC in the edge pods too.
	chart_render "$WORK/r.yaml" --set topology=split --set openshift=true
	[ "$(kq "$WORK/r.yaml" $EDGE "Object.keys(o.spec.template.spec.securityContext).sort().join(' ')")" = "fsGroupChangePolicy runAsNonRoot seccompProfile" ]
}

@test "split: the bridge Service and the NetworkPolicies admit only the edge pods to the bridge ports" {
	local f=$WORK/render/split-defaults.yaml
	[ "$(kq "$f" Service/postfix-bridge 'o.spec.ports.map(p => p.name + ":" + p.port + ">" + p.targetPort + "/" + p.protocol).join(" ")')" = "br-cleanup:10030>br-cleanup/TCP br-anvil:10031>br-anvil/TCP br-tlsmgr:10032>br-tlsmgr/TCP br-verify:10033>br-verify/TCP br-flush:10034>br-flush/TCP" ]
	[ "$(ctr "$f" $STS bridge 'c.ports.map(p => p.name + "=" + p.containerPort).join(" ")')" = "br-cleanup=10030 br-anvil=10031 br-tlsmgr=10032 br-verify=10033 br-flush=10034" ]
	[ "$(kq "$f" Service/postfix-bridge 'o.spec.selector["app.kubernetes.io/component"]')" = queue ]
	[ "$(kq "$f" Service/postfix-smtp 'o.spec.selector["app.kubernetes.io/component"]')" = edge ]
	# The queue pods: in only from edge pods, only on the bridge ports.
	[ "$(kq "$f" NetworkPolicy/postfix-queue 'o.spec.ingress.length')" = 3 ]
	[ "$(kq "$f" NetworkPolicy/postfix-queue 'o.spec.ingress[0].ports.map(p => p.port).join(" ")')" = "br-cleanup br-anvil br-tlsmgr br-verify br-flush" ]
	[ "$(kq "$f" NetworkPolicy/postfix-queue 'JSON.stringify(o.spec.ingress[0].from)')" = '[{"podSelector":{"matchLabels":{"app.kubernetes.io/name":"postfix","app.kubernetes.io/instance":"postfix","app.kubernetes.io/component":"edge"}}}]' ]
	# The edge pods: mail ports in; out to the queue pods' bridge ports.
	[ "$(kq "$f" NetworkPolicy/postfix-edge 'o.spec.ingress[0].ports.map(p => p.port).join(" ")')" = "smtp submission smtps" ]
	[ "$(kq "$f" NetworkPolicy/postfix-edge 'o.spec.egress[0].ports.map(p => p.port).join(" ")')" = "10030 10031 10032 10033 10034" ]
	[ "$(kq "$f" NetworkPolicy/postfix-edge 'o.spec.egress[0].to[0].podSelector.matchLabels["app.kubernetes.io/component"]')" = queue ]
	[ "$(kq "$f" NetworkPolicy/postfix-edge 'JSON.stringify(o.spec.podSelector.matchLabels)')" = "$(kq "$f" $EDGE 'JSON.stringify(o.spec.selector.matchLabels)')" ]
	[ "$(kq "$f" PodDisruptionBudget/postfix-edge 'JSON.stringify(o.spec.selector.matchLabels)')" = "$(kq "$f" $EDGE 'JSON.stringify(o.spec.selector.matchLabels)')" ]
	# A shared log adds the postlog port; without TLS it is UDP, and no
	# bridge Secret is mounted.
	chart_render "$WORK/r.yaml" --set topology=split --set split.log.shared=true --set split.bridge.tls.mode=none
	[ "$(kq "$WORK/r.yaml" Service/postfix-bridge 'o.spec.ports.find(p => p.name == "br-postlog").port + "/" + o.spec.ports.find(p => p.name == "br-postlog").protocol')" = 10039/UDP ]
	kq_absent "$WORK/r.yaml" $STS 'o.spec.template.spec.volumes.find(v => v.name == "bridge-tls")'
	kq_absent "$WORK/r.yaml" $EDGE 'o.spec.template.spec.volumes.find(v => v.name == "bridge-tls")'
	[ "$(ctr "$WORK/r.yaml" $EDGE bridge 'c.env.find(e => e.name == "POSTFIX_BRIDGE_TLS").value')" = none ]
	# The chart's Dovecot admits the edges (SASL) in the split topology.
	chart_render "$WORK/r.yaml" --set topology=split --set dovecot.enabled=true
	[ "$(kq "$WORK/r.yaml" NetworkPolicy/postfix-dovecot 'o.spec.ingress[0].from.map(p => p.podSelector.matchLabels["app.kubernetes.io/component"]).join(" ")')" = "queue edge" ]
}

@test "split: the schema and the checks reject bad split values" {
	chart_fails --set topology=spilt
	chart_fails --set edge.replica=3
	echo "$output" | grep -q "additional properties 'replica' not allowed"
	chart_fails --set topology=split --set-json 'split.bridge.services=["anvil"]'
	chart_fails --set topology=split --set-json 'split.bridge.services=["cleanup","smtpd"]'
	chart_fails --set topology=split --set split.bridge.tls.mode=optional
	chart_fails --set topology=split --set split.bridge.port=2520
	echo "$output" | grep -q 'must not hold the mail port 2525'
	chart_fails --set topology=split --set edge.autoscaling.enabled=true --set edge.autoscaling.minReplicas=5 --set edge.autoscaling.maxReplicas=2
	echo "$output" | grep -q 'minReplicas must not exceed maxReplicas'
	chart_fails --set topology=split --set split.log.file=/tmp/maillog
}

@test "split: NOTES.txt tells how to make the bridge Secret, wait for both workloads and read the shared log" {
	run "$HELM" install --dry-run=client postfix "$CHART" --namespace mail --set topology=split --set split.log.shared=true
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q 'kubectl -n mail create secret generic postfix-bridge-tls'
	echo "$output" | grep -q 'kubectl -n mail rollout status deployment/postfix-edge'
	echo "$output" | grep -q 'kubectl -n mail port-forward service/postfix-smtp 2525:25'
	echo "$output" | grep -q 'kubectl -n mail exec postfix-queue-0 -c log -- tail -f /var/log/postfix/maillog'
}

# --- drain and metrics (issue 9) ----------------------------------------------

# env FILE WORKLOAD CONTAINER NAME - the value of an env variable.
envv() {
	ctr "$1" "$2" "$3" "c.env.find(e => e.name == '$4').value"
}

@test "drain: the queue container's preStop runs postfix-drain with POSTFIX_DRAIN_* and every possible peer" {
	local f=$WORK/render/defaults.yaml
	[ "$(ctr "$f" $STS postfix 'c.lifecycle.preStop.exec.command.join(" ")')" = postfix-drain ]
	[ "$(ctr "$f" $STS postfix 'c.env.map(e => e.name).join(" ")')" = "POSTFIX_ROLE POSTFIX_DRAIN_PEERS POSTFIX_DRAIN_TIMEOUT POSTFIX_DRAIN_HANDOFF_TIMEOUT POSTFIX_DRAIN_HOLD POSTFIX_METRICS_PORT" ]
	[ "$(envv "$f" $STS postfix POSTFIX_DRAIN_PEERS)" = postfix-queue-0.postfix-queue.mail.svc.cluster.local:2526 ]
	[ "$(envv "$f" $STS postfix POSTFIX_DRAIN_TIMEOUT)" = 60 ]
	[ "$(envv "$f" $STS postfix POSTFIX_DRAIN_HANDOFF_TIMEOUT)" = 60 ]
	[ "$(envv "$f" $STS postfix POSTFIX_DRAIN_HOLD)" = keep ]
	# The hand-off listener: main.cf handoff_in_port, container port
	# handoff, on the headless Service that names the peers.
	[ "$(kq "$f" ConfigMap/postfix-config 'o.data.POSTFIX_handoff_in_port')" = 2526 ]
	[ "$(ctr "$f" $STS postfix 'c.ports.find(p => p.name == "handoff").containerPort')" = 2526 ]
	[ "$(kq "$f" Service/postfix-queue 'o.spec.ports.map(p => p.name + ":" + p.port + ">" + p.targetPort).join(" ")')" = "smtp:2525>smtp handoff:2526>handoff metrics:9154>metrics" ]
	[ "$(kq "$f" Service/postfix-queue 'o.spec.clusterIP + " " + o.spec.publishNotReadyAddresses')" = "None true" ]
	[ "$(kq "$f" $STS 'o.spec.serviceName')" = postfix-queue ]
	# Three replicas: three peers, in ordinal order.
	chart_render "$WORK/r.yaml" --set queue.replicas=3
	[ "$(envv "$WORK/r.yaml" $STS postfix POSTFIX_DRAIN_PEERS)" = "postfix-queue-0.postfix-queue.mail.svc.cluster.local:2526,postfix-queue-1.postfix-queue.mail.svc.cluster.local:2526,postfix-queue-2.postfix-queue.mail.svc.cluster.local:2526" ]
	# maxReplicas lists more (scaling then keeps the pod template); the
	# values reach the environment.
	chart_render "$WORK/r.yaml" --set queue.replicas=2 --set drain.maxReplicas=4 \
		--set clusterDomain=k8s.example --set drain.port=3526 --set drain.timeout=90 \
		--set drain.handoffTimeout=45 --set drain.hold=release
	[ "$(envv "$WORK/r.yaml" $STS postfix POSTFIX_DRAIN_PEERS | tr ',' '\n' | wc -l)" = 4 ]
	envv "$WORK/r.yaml" $STS postfix POSTFIX_DRAIN_PEERS | tr ',' '\n' | sed -n 4p | grep -qx 'postfix-queue-3.postfix-queue.mail.svc.k8s.example:3526'
	[ "$(envv "$WORK/r.yaml" $STS postfix POSTFIX_DRAIN_TIMEOUT)" = 90 ]
	[ "$(envv "$WORK/r.yaml" $STS postfix POSTFIX_DRAIN_HANDOFF_TIMEOUT)" = 45 ]
	[ "$(envv "$WORK/r.yaml" $STS postfix POSTFIX_DRAIN_HOLD)" = release ]
	[ "$(kq "$WORK/r.yaml" ConfigMap/postfix-config 'o.data.POSTFIX_handoff_in_port')" = 3526 ]
	# maxReplicas below replicas still lists every replica.
	chart_render "$WORK/r.yaml" --set queue.replicas=3 --set drain.maxReplicas=1
	[ "$(envv "$WORK/r.yaml" $STS postfix POSTFIX_DRAIN_PEERS | tr ',' '\n' | wc -l)" = 3 ]
	# Scaling within maxReplicas does not change the pod template.
	chart_render "$WORK/a.yaml" --set queue.replicas=2 --set drain.maxReplicas=5
	chart_render "$WORK/b.yaml" --set queue.replicas=4 --set drain.maxReplicas=5
	[ "$(kq "$WORK/a.yaml" $STS 'JSON.stringify(o.spec.template)')" = "$(kq "$WORK/b.yaml" $STS 'JSON.stringify(o.spec.template)')" ]
}

@test "drain: terminationGracePeriodSeconds is at least both timeouts plus 30 seconds" {
	[ "$(kq "$WORK/render/defaults.yaml" $STS 'o.spec.template.spec.terminationGracePeriodSeconds')" = 150 ]
	chart_render "$WORK/r.yaml" --set drain.timeout=300 --set drain.handoffTimeout=120
	[ "$(kq "$WORK/r.yaml" $STS 'o.spec.template.spec.terminationGracePeriodSeconds')" = 450 ]
	chart_render "$WORK/r.yaml" --set queue.terminationGracePeriodSeconds=600
	[ "$(kq "$WORK/r.yaml" $STS 'o.spec.template.spec.terminationGracePeriodSeconds')" = 600 ]
	chart_render "$WORK/r.yaml" --set queue.terminationGracePeriodSeconds=150
	[ "$(kq "$WORK/r.yaml" $STS 'o.spec.template.spec.terminationGracePeriodSeconds')" = 150 ]
	chart_fails --set queue.terminationGracePeriodSeconds=149
	echo "$output" | grep -q 'queue.terminationGracePeriodSeconds is 149, but a drain needs drain.timeout + drain.handoffTimeout + 30 = 150 seconds'
	chart_fails --set queue.terminationGracePeriodSeconds=100 --set drain.timeout=80 --set drain.handoffTimeout=0
	echo "$output" | grep -q '= 110 seconds'
	# Without the drain: 60, or any value.
	chart_render "$WORK/r.yaml" --set drain.enabled=false
	[ "$(kq "$WORK/r.yaml" $STS 'o.spec.template.spec.terminationGracePeriodSeconds')" = 60 ]
	chart_render "$WORK/r.yaml" --set drain.enabled=false --set queue.terminationGracePeriodSeconds=20
	[ "$(kq "$WORK/r.yaml" $STS 'o.spec.template.spec.terminationGracePeriodSeconds')" = 20 ]
	# The split topology's queue pod too.
	[ "$(kq "$WORK/render/split-defaults.yaml" $STS 'o.spec.template.spec.terminationGracePeriodSeconds')" = 150 ]
}

@test "drain: updateStrategy, podManagementPolicy, PDB and probes replace the queue pods one by one" {
	local f=$WORK/render/defaults.yaml
	[ "$(kq "$f" $STS 'o.spec.updateStrategy.type')" = RollingUpdate ]
	kq_absent "$f" $STS 'o.spec.updateStrategy.rollingUpdate'
	[ "$(kq "$f" $STS 'o.spec.podManagementPolicy')" = OrderedReady ]
	[ "$(kq "$f" PodDisruptionBudget/postfix-queue 'o.spec.maxUnavailable')" = 1 ]
	# The next pod is drained only when the new one is ready; the drain
	# turns readiness off, not liveness.
	[ "$(ctr "$f" $STS postfix 'c.readinessProbe.exec.command.join(" ")')" = "postfix-health ready" ]
	[ "$(ctr "$f" $STS postfix 'c.livenessProbe.exec.command.join(" ")')" = "postfix-health live" ]
	# docs/kubernetes.md gives the reasoning.
	grep -q 'OrderedReady' "$TOP/docs/kubernetes.md"
	grep -q 'postfix-drain' "$TOP/docs/kubernetes.md"
}

@test "drain: split topology: the queue container drains, the delivery container outlives it, hand-off certificates" {
	local f=$WORK/render/split-defaults.yaml
	[ "$(ctr "$f" $STS queue 'c.lifecycle.preStop.exec.command.join(" ")')" = postfix-drain ]
	[ "$(envv "$f" $STS queue POSTFIX_DRAIN_PEERS)" = postfix-queue-0.postfix-queue.mail.svc.cluster.local:2526 ]
	[ "$(envv "$f" $STS queue POSTFIX_METRICS_PORT)" = 9154 ]
	[ "$(ctr "$f" $STS queue 'c.ports.map(p => p.name + "=" + p.containerPort).join(" ")')" = "handoff=2526 metrics=9154" ]
	# The delivery container waits while mail is pending, at most both
	# timeouts (+10 s); nobody else drains or has the drain's settings.
	ctr "$f" $STS delivery 'c.lifecycle.preStop.exec.command.join(" ")' | grep -q '^sh -c end=$(($(date +%s) + 130)); .*find /var/spool/postfix/maildrop /var/spool/postfix/incoming /var/spool/postfix/active /var/spool/postfix/deferred -type f'
	kq_absent "$f" $STS 'o.spec.template.spec.containers.find(c => c.name == "bridge").lifecycle'
	[ "$(kq "$f" $STS 'o.spec.template.spec.containers.filter(c => c.env.some(e => e.name.startsWith("POSTFIX_DRAIN_"))).map(c => c.name).join(" ")')" = queue ]
	kq_absent "$f" $EDGE 'o.spec.template.spec.containers.find(c => c.lifecycle)'
	[ "$(envv "$f" $EDGE edge POSTFIX_METRICS_PORT)" = 9154 ]
	kq_absent "$f" $EDGE 'o.spec.template.spec.containers.find(c => c.env.some(e => e.name.startsWith("POSTFIX_DRAIN_")))'
	[ "$(kq "$f" Service/postfix-queue 'o.spec.ports.map(p => p.name).join(" ")')" = "br-cleanup handoff metrics" ]
	# The peers show each other the bridge's server certificate.
	[ "$(kq "$f" $STS 'o.spec.template.spec.volumes.find(v => v.name == "handoff-tls").secret.secretName')" = postfix-bridge-tls ]
	[ "$(kq "$WORK/render/split.yaml" $STS 'o.spec.template.spec.volumes.find(v => v.name == "handoff-tls").secret.secretName')" = postfix-bridge-server ]
	chart_render "$WORK/r.yaml" --set topology=split --set split.bridge.tls.mode=none
	kq_absent "$WORK/r.yaml" $STS 'o.spec.template.spec.volumes.find(v => v.name == "handoff-tls")'
	# The single topology: no certificates unless drain.tls.existingSecret.
	kq_absent "$WORK/render/defaults.yaml" $STS 'o.spec.template.spec.volumes.find(v => v.name == "handoff-tls")'
	chart_render "$WORK/r.yaml" --set drain.tls.existingSecret=handoff-certs
	[ "$(kq "$WORK/r.yaml" $STS 'o.spec.template.spec.volumes.find(v => v.name == "handoff-tls").secret.secretName')" = handoff-certs ]
	[ "$(ctr "$WORK/r.yaml" $STS postfix 'c.volumeMounts.find(m => m.name == "handoff-tls").mountPath')" = /etc/postfix/bridge-tls ]
}

@test "drain: a Job per orphan claim runs postfix-drain --orphan on that claim, like the queue pods" {
	local j=Job/postfix-drain-spool-postfix-queue-2 c='o.spec.template.spec.containers[0]'
	chart_render "$WORK/orphan.yaml" --set queue.replicas=2 \
		--set-json 'drain.orphanClaims=["spool-postfix-queue-2","spool-postfix-queue-3"]'
	[ "$(kq "$WORK/orphan.yaml" --list | grep '^Job/' | tr '\n' ' ')" = "Job/postfix-drain-spool-postfix-queue-2 Job/postfix-drain-spool-postfix-queue-3 " ]
	[ "$(kq "$WORK/orphan.yaml" $j "$c.args.join(' ')")" = "postfix-drain --orphan" ]
	kq_absent "$WORK/orphan.yaml" $j "$c.command"
	[ "$(kq "$WORK/orphan.yaml" $j 'o.spec.template.spec.volumes.find(v => v.name == "spool").persistentVolumeClaim.claimName')" = spool-postfix-queue-2 ]
	[ "$(kq "$WORK/orphan.yaml" Job/postfix-drain-spool-postfix-queue-3 'o.spec.template.spec.volumes.find(v => v.name == "spool").persistentVolumeClaim.claimName')" = spool-postfix-queue-3 ]
	[ "$(kq "$WORK/orphan.yaml" $j "$c.volumeMounts.find(m => m.name == 'spool').mountPath")" = /var/spool/postfix ]
	[ "$(kq "$WORK/orphan.yaml" $j 'o.spec.template.spec.restartPolicy')" = Never ]
	[ "$(kq "$WORK/orphan.yaml" $j 'o.spec.backoffLimit')" = 3 ]
	[ "$(kq "$WORK/orphan.yaml" $j 'o.metadata.labels["app.kubernetes.io/component"]')" = drain ]
	# The same security contexts, environment, configuration and peers as
	# the queue pods.
	for e in 'o.spec.template.spec.securityContext' "$c.securityContext" "$c.envFrom" "$c.image" \
		"$c.env.find(e => e.name == 'POSTFIX_DRAIN_PEERS')" "$c.env.find(e => e.name == 'POSTFIX_DRAIN_TIMEOUT')" \
		"$c.env.find(e => e.name == 'POSTFIX_DRAIN_HOLD')" 'o.spec.template.spec.automountServiceAccountToken'; do
		[ "$(kq "$WORK/orphan.yaml" $j "JSON.stringify($e)")" = "$(kq "$WORK/orphan.yaml" $STS "JSON.stringify($e)")" ]
	done
	[ "$(kq "$WORK/orphan.yaml" $j "$c.env.find(e => e.name == 'POSTFIX_ROLE').value")" = single ]
	run "$K8S_TOOLS/validate" "$WORK/orphan.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	run "$K8S_TOOLS/restricted-check" "$WORK/orphan.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q "^ok $j (spec.template.spec): restricted$"
	# The split topology: the same Job, with the hand-off certificates.
	chart_render "$WORK/r.yaml" --set topology=split --set-json 'drain.orphanClaims=["spool-postfix-queue-1"]'
	[ "$(kq "$WORK/r.yaml" Job/postfix-drain-spool-postfix-queue-1 'o.spec.template.spec.volumes.find(v => v.name == "handoff-tls").secret.secretName')" = postfix-bridge-tls ]
	# The ci value set: five possible peers, the certificates, 90+120+30 s.
	f=$WORK/render/monitoring.yaml
	[ "$(envv "$f" $STS postfix POSTFIX_DRAIN_PEERS | tr ',' '\n' | wc -l)" = 5 ]
	[ "$(kq "$f" $STS 'o.spec.template.spec.terminationGracePeriodSeconds')" = 240 ]
	[ "$(kq "$f" Job/postfix-drain-spool-postfix-queue-5 'o.spec.template.spec.volumes.find(v => v.name == "handoff-tls").secret.secretName')" = postfix-handoff-tls ]
	[ "$(kq "$f" Job/postfix-drain-spool-postfix-queue-5 "$c.volumeMounts.find(m => m.name == 'handoff-tls').mountPath")" = /etc/postfix/bridge-tls ]
	# A running replica's claim is no orphan; none without the drain.
	chart_fails --set queue.replicas=2 --set-json 'drain.orphanClaims=["spool-postfix-queue-1"]'
	echo "$output" | grep -q 'spool-postfix-queue-1 is the queue of a running replica'
	chart_render "$WORK/r.yaml" --set drain.enabled=false --set-json 'drain.orphanClaims=["spool-postfix-queue-2"]'
	[ -z "$(kq "$WORK/r.yaml" --list | grep '^Job/')" ]
	[ -z "$(kq "$WORK/render/defaults.yaml" --list | grep '^Job/')" ]
}

@test "drain.enabled=false removes the hook, the environment, the hand-off port and its policy rules" {
	local f=$WORK/r.yaml
	chart_render "$f" --set drain.enabled=false
	kq_absent "$f" $STS 'o.spec.template.spec.containers[0].lifecycle'
	[ "$(ctr "$f" $STS postfix 'c.env.map(e => e.name).join(" ")')" = "POSTFIX_ROLE POSTFIX_METRICS_PORT" ]
	kq_absent "$f" $STS 'o.spec.template.spec.containers[0].ports.find(p => p.name == "handoff")'
	[ "$(kq "$f" Service/postfix-queue 'o.spec.ports.map(p => p.name).join(" ")')" = "smtp metrics" ]
	kq_absent "$f" ConfigMap/postfix-config 'o.data.POSTFIX_handoff_in_port'
	kq_absent "$f" NetworkPolicy/postfix-queue 'o.spec.ingress.find(r => r.ports.some(p => p.port == "handoff"))'
	kq_absent "$f" NetworkPolicy/postfix-queue 'o.spec.egress.find(r => r.to)'
	chart_render "$f" --set topology=split --set drain.enabled=false --set metrics.enabled=false
	[ "$(kq "$f" $STS 'o.spec.template.spec.containers.filter(c => c.lifecycle).length')" = 0 ]
	kq_absent "$f" $STS 'o.spec.template.spec.volumes.find(v => v.name == "handoff-tls")'
	kq_absent "$f" $STS 'o.spec.template.spec.containers.find(c => c.ports && c.ports.some(p => p.name == "handoff"))'
	[ "$(kq "$f" Service/postfix-queue 'o.spec.ports.map(p => p.name).join(" ")')" = br-cleanup ]
	[ "$(kq "$f" NetworkPolicy/postfix-queue 'o.spec.ingress.length')" = 1 ]
	run "$K8S_TOOLS/validate" "$f"
	[ "$status" -eq 0 ]
}

@test "metrics: POSTFIX_METRICS_PORT and the port metrics on the queue and edge pods and their Services" {
	local f=$WORK/render/defaults.yaml
	[ "$(envv "$f" $STS postfix POSTFIX_METRICS_PORT)" = 9154 ]
	[ "$(ctr "$f" $STS postfix 'c.ports.find(p => p.name == "metrics").containerPort')" = 9154 ]
	f=$WORK/render/split-defaults.yaml
	[ "$(kq "$f" Service/postfix-edge-metrics 'o.spec.ports.map(p => p.name + ":" + p.port + ">" + p.targetPort).join(" ")')" = "metrics:9154>metrics" ]
	[ "$(kq "$f" Service/postfix-edge-metrics 'o.spec.clusterIP + " " + o.spec.selector["app.kubernetes.io/component"]')" = "None edge" ]
	[ "$(kq "$f" $STS 'o.spec.template.spec.containers.filter(c => c.env.some(e => e.name == "POSTFIX_METRICS_PORT")).map(c => c.name).join(" ")')" = queue ]
	chart_render "$WORK/r.yaml" --set metrics.port=9200 --set topology=split
	[ "$(envv "$WORK/r.yaml" $EDGE edge POSTFIX_METRICS_PORT)" = 9200 ]
	[ "$(ctr "$WORK/r.yaml" $STS queue 'c.ports.find(p => p.name == "metrics").containerPort')" = 9200 ]
	# Off: no variable, port, Service or rule.
	chart_render "$WORK/r.yaml" --set metrics.enabled=false --set topology=split
	kq_absent "$WORK/r.yaml" Service/postfix-edge-metrics 'o'
	kq_absent "$WORK/r.yaml" $EDGE 'o.spec.template.spec.containers.find(c => c.env.some(e => e.name == "POSTFIX_METRICS_PORT"))'
	kq_absent "$WORK/r.yaml" $STS 'o.spec.template.spec.containers.find(c => c.env.some(e => e.name == "POSTFIX_METRICS_PORT"))'
	kq_absent "$WORK/r.yaml" NetworkPolicy/postfix-edge 'o.spec.ingress.find(r => r.ports.some(p => p.port == "metrics"))'
	[ "$(kq "$WORK/r.yaml" Service/postfix-queue 'o.spec.ports.map(p => p.name).join(" ")')" = "br-cleanup handoff" ]
	# The listeners need their own ports.
	chart_fails --set metrics.port=2526
	echo "$output" | grep -q 'every listener needs its own port'
	chart_fails --set drain.port=2525
	chart_fails --set topology=split --set metrics.port=10031
	echo "$output" | grep -q 'must not hold the listener port 10031'
}

@test "NetworkPolicy: the hand-off port only from the queue pods and drain Jobs, metrics from the namespace or metrics.networkPolicy.from" {
	local f=$WORK/render/defaults.yaml np=NetworkPolicy/postfix-queue
	local sel='{"app.kubernetes.io/name":"postfix","app.kubernetes.io/instance":"postfix","app.kubernetes.io/component":'
	[ "$(kq "$f" $np 'o.spec.ingress.map(r => r.ports.map(p => p.port).join(",")).join(" ")')" = "smtp,submission,smtps handoff metrics" ]
	[ "$(kq "$f" $np 'JSON.stringify(o.spec.ingress.find(r => r.ports[0].port == "handoff").from.map(p => p.podSelector.matchLabels))')" = "[${sel}\"queue\"},${sel}\"drain\"}]" ]
	[ "$(kq "$f" $np 'JSON.stringify(o.spec.ingress.find(r => r.ports[0].port == "metrics").from)')" = '[{"podSelector":{}}]' ]
	# Out: the peers' hand-off port, to the queue pods only.
	[ "$(kq "$f" $np 'JSON.stringify(o.spec.egress.find(r => r.to).ports)')" = '[{"port":2526,"protocol":"TCP"}]' ]
	[ "$(kq "$f" $np 'JSON.stringify(o.spec.egress.find(r => r.to).to[0].podSelector.matchLabels)')" = "${sel}\"queue\"}" ]
	# The drain Job's pods carry the label the rule admits.
	chart_render "$WORK/r.yaml" --set-json 'drain.orphanClaims=["spool-postfix-queue-1"]'
	[ "$(kq "$WORK/r.yaml" Job/postfix-drain-spool-postfix-queue-1 'JSON.stringify(o.spec.template.metadata.labels)')" = "$(kq "$WORK/r.yaml" Job/postfix-drain-spool-postfix-queue-1 'JSON.stringify(o.metadata.labels)')" ]
	kq "$WORK/r.yaml" Job/postfix-drain-spool-postfix-queue-1 'o.spec.template.metadata.labels["app.kubernetes.io/component"]' | grep -qx drain
	# A Prometheus elsewhere.
	chart_render "$WORK/r.yaml" --set topology=split \
		--set-json 'metrics.networkPolicy.from=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}},"podSelector":{"matchLabels":{"app.kubernetes.io/name":"prometheus"}}}]'
	for p in NetworkPolicy/postfix-queue NetworkPolicy/postfix-edge; do
		[ "$(kq "$WORK/r.yaml" $p 'o.spec.ingress.find(r => r.ports[0].port == "metrics").from[0].namespaceSelector.matchLabels["kubernetes.io/metadata.name"]')" = monitoring ]
	done
	run "$K8S_TOOLS/validate" "$WORK/r.yaml"
	[ "$status" -eq 0 ]
}

@test "ServiceMonitor and PrometheusRule: only when enabled, valid, alerting on the image's metrics" {
	local f=$WORK/monitor.yaml pr=PrometheusRule/postfix-metrics expr
	[ -z "$(kq "$WORK/render/defaults.yaml" --list | grep 'ServiceMonitor\|PrometheusRule')" ]
	[ -z "$(kq "$WORK/render/split-defaults.yaml" --list | grep 'ServiceMonitor\|PrometheusRule')" ]
	chart_render "$f" --set topology=split --set metrics.serviceMonitor.enabled=true \
		--set metrics.serviceMonitor.labels.release=kube-prometheus --set metrics.serviceMonitor.interval=15s \
		--set metrics.prometheusRule.enabled=true --set metrics.prometheusRule.labels.release=kube-prometheus \
		--set metrics.prometheusRule.deferredMaxAgeSeconds=3600
	run "$K8S_TOOLS/validate" "$f"
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -qx 'ok ServiceMonitor/postfix-metrics'
	echo "$output" | grep -qx "ok $pr"
	[ "$(kq "$f" ServiceMonitor/postfix-metrics 'o.apiVersion')" = monitoring.coreos.com/v1 ]
	[ "$(kq "$f" ServiceMonitor/postfix-metrics 'o.metadata.labels.release')" = kube-prometheus ]
	[ "$(kq "$f" ServiceMonitor/postfix-metrics 'o.spec.endpoints.map(e => e.port + " " + e.path + " " + e.interval).join()')" = "metrics /metrics 15s" ]
	# It selects exactly the Services with a metrics port.
	[ "$(kq "$f" ServiceMonitor/postfix-metrics 'o.spec.selector.matchExpressions[0].values.join(" ")')" = "queue edge" ]
	for s in Service/postfix-queue Service/postfix-edge-metrics; do
		kq "$f" $s 'o.spec.ports.map(p => p.name).join(" ")' | grep -qw metrics
		[ "$(kq "$f" $s 'o.metadata.labels["app.kubernetes.io/instance"]')" = postfix ]
	done
	[ "$(kq "$f" $pr 'o.metadata.labels.release')" = kube-prometheus ]
	[ "$(kq "$f" $pr 'o.spec.groups[0].rules.map(r => r.alert).join(" ")')" = "PostfixQueueGrowing PostfixDeferredTooOld PostfixNoDeliveries PostfixDown" ]
	expr() { kq "$f" $pr "o.spec.groups[0].rules.find(r => r.alert == '$1').expr"; }
	expr PostfixQueueGrowing | grep -q 'sum by (namespace, pod) (postfix_queue_messages{queue=~"active|deferred|incoming", namespace="mail", pod=~"postfix-(queue|edge)-.*"}) > 100'
	expr PostfixQueueGrowing | grep -q 'deriv(postfix_queue_messages{queue=~"active|deferred|incoming", .*}\[30m\])) > 0'
	expr PostfixDeferredTooOld | grep -q 'postfix_queue_oldest_message_age_seconds{queue="deferred", .*}) > 3600$'
	expr PostfixNoDeliveries | grep -q 'postfix_queue_messages{queue=~"active|deferred", .*}) > 0'
	expr PostfixNoDeliveries | grep -q 'increase(postfix_deliveries_total{status="sent", .*}\[1h\])) == 0'
	expr PostfixNoDeliveries | grep -q 'unless on (namespace, pod) postfix_draining{.*} == 1$'
	expr PostfixDown | grep -q '^postfix_up{namespace="mail", pod=~"postfix-(queue|edge)-.*"} == 0 or absent(postfix_up{.*})$'
	# PromQL-shaped: balanced brackets, only the image's metric names.
	for a in PostfixQueueGrowing PostfixDeferredTooOld PostfixNoDeliveries PostfixDown; do
		expr "$a" | python3 -c '
import re, sys
e = sys.stdin.read()
depth = []
pairs = {")": "(", "]": "[", "}": "{"}
for ch in re.sub(r"\"[^\"]*\"", "", e):
    if ch in "([{": depth.append(ch)
    elif ch in ")]}":
        assert depth and depth.pop() == pairs[ch], e
assert not depth, e
names = set(re.findall(r"\b(postfix_[a-z_]+)\{", e))
known = {"postfix_up", "postfix_queue_messages", "postfix_queue_bytes", "postfix_queue_oldest_message_age_seconds",
         "postfix_deliveries_total", "postfix_deliveries_by_transport_total", "postfix_smtpd_connections_total",
         "postfix_smtpd_rejects_total", "postfix_log_lines_total", "postfix_draining"}
assert names and names <= known, names
'
	done
	[ "$(kq "$f" $pr 'o.spec.groups[0].rules.map(r => r.labels.severity).join(" ")')" = "warning warning warning critical" ]
	kq "$f" $pr 'o.spec.groups[0].rules[0].annotations.description' | grep -qF '{{ $labels.pod }}'
	# promtool, where there is one, parses them.
	if command -v promtool >/dev/null; then
		kq "$f" $pr 'JSON.stringify(o.spec)' >"$WORK/rules.json"
		promtool check rules "$WORK/rules.json"
	fi
	# metrics.enabled=false takes them along.
	chart_render "$WORK/r.yaml" --set metrics.enabled=false --set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true
	[ -z "$(kq "$WORK/r.yaml" --list | grep 'ServiceMonitor\|PrometheusRule')" ]
}

@test "the values schema rejects unknown keys and wrong types of the drain and metrics values" {
	chart_fails --set-string drain.timeout=soon
	echo "$output" | grep -q "/drain/timeout': got string, want integer"
	chart_fails --set drain.timout=60
	echo "$output" | grep -q "additional properties 'timout' not allowed"
	chart_fails --set-string drain.enabled=yes
	echo "$output" | grep -q "/drain/enabled': got string, want boolean"
	chart_fails --set drain.hold=drop
	chart_fails --set drain.port=526
	chart_fails --set-string drain.orphanClaims=spool-postfix-queue-1
	chart_fails --set-json 'drain.orphanClaims=["Spool_1"]'
	chart_fails --set-string queue.terminationGracePeriodSeconds=long
	chart_fails --set-string metrics.port=9154x
	chart_fails --set metrics.serviceMonitor.interval=30
	chart_fails --set metrics.serviceMonitor.enable=true
	echo "$output" | grep -q "additional properties 'enable' not allowed"
	chart_fails --set-string metrics.prometheusRule.queueGrowingThreshold=many
	chart_fails --set-json 'metrics.networkPolicy.from=[{"pods":{}}]'
	chart_fails --set clusterDomain=Cluster_Local
}

@test "NOTES.txt tells about the metrics and the drain" {
	run "$HELM" install --dry-run=client postfix "$CHART" --namespace mail --set queue.replicas=2
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q 'kubectl -n mail port-forward pod/postfix-queue-0 9154:metrics'
	echo "$output" | grep -q 'preStop "postfix-drain"'
	echo "$output" | grep -q 'drain.orphanClaims'
	echo "$output" | grep -q 'WARNING: no hand-off certificates'
	run "$HELM" install --dry-run=client postfix "$CHART" --namespace mail --set drain.enabled=false
	echo "$output" | grep -q 'drain.enabled is false'
}

# --- podman kube play of the rendered pod --------------------------------------

POD=pftest-postfix-queue-0
CTR=pftest-postfix-queue-0-postfix
VOLUME=spool-pftest-postfix-queue-0

# proxy_send PORT CLIENT_IP RCPT - one SMTP transaction that starts with a
# PROXY v1 header claiming CLIENT_IP (only the header names that address;
# the connection goes to 127.0.0.1). Prints the last reply.
proxy_send() {
	timeout 30 python3 - "$@" <<'PY'
import socket, sys
port, client, rcpt = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.sendall(f"PROXY TCP4 {client} 127.0.0.1 40000 {port}\r\n".encode())
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline().decode()
        if not line or line[3:4] != "-":
            return line.strip()
def cmd(c, want):
    s.sendall((c + "\r\n").encode())
    r = reply()
    if not r.startswith(want):
        print(r); sys.exit(1)
    return r
r = reply()
if not r.startswith("220"):
    print(r); sys.exit(1)
cmd("EHLO client.test", "250")
cmd("MAIL FROM:<sender@client.test>", "250")
cmd(f"RCPT TO:<{rcpt}>", "250")
cmd("DATA", "354")
s.sendall(b"Subject: via-proxy\r\nX-Test-Token: proxy-token-1\r\n\r\nbehind a proxy\r\n.\r\n")
r = reply()
print(r)
cmd("QUIT", "221")
sys.exit(0 if r.startswith("250") else 1)
PY
}

ensure_image() {
	kpodman image exists "$IMAGE" && return 0
	[ -f "$TOP/container/Containerfile" ] || fail "no image $IMAGE and no container/Containerfile to build it"
	(cd "$TOP" && make image) >"$WORK/image-build.log" 2>&1 ||
		fail "make image failed: $(tail -n 30 "$WORK/image-build.log")"
}

@test "podman kube play runs the rendered pod as the random UID, listening on the values' ports" {
	ensure_image
	# Leftovers of an interrupted run (fixed names: the pod and its volume).
	kpodman pod rm -f "$POD" >/dev/null 2>&1 || true
	kpodman volume rm -f "$VOLUME" pftest-tls >/dev/null 2>&1 || true
	ports_free "$SMTP" "$SUBMISSION" "$SMTPS" "$LMTP" "$IMAP" "$AUTH"
	dv_start "$WORK/dovecot" "$LMTP" "$IMAP" "$AUTH" \
		"alice@$DOMAIN:alicepw" "bob@$DOMAIN:bobpw"
	make_cert "$WORK/tls" "$DOMAIN"
	kube_tls_secret pftest-tls "$WORK/tls" >"$WORK/tls-secret.yaml"
	kube_play "$WORK/kube" "$WORK/render/kube-play.yaml" "$WORK/tls-secret.yaml"
	cat "$WORK/kube/podify.err"
	grep -q 'dropped Service/pftest-postfix-smtp' "$WORK/kube/podify.err"
	kube_wait_port 120 "$CTR" "$SMTP"
	kube_wait_port 30 "$CTR" "$SUBMISSION"
	kube_wait_port 30 "$CTR" "$SMTPS"
	run smtp_banner "$SMTP"
	echo "$output"
	[[ "$output" == "220 $DOMAIN "* ]]
	# Every process of the container: the random UID, group 0.
	kpodman exec "$CTR" sh -c 'for p in /proc/[0-9]*; do
		[ -r "$p/status" ] || continue
		printf "%s %s %s\n" "$(awk "/^Uid:/ {print \$2}" "$p/status")" \
			"$(awk "/^Gid:/ {print \$2}" "$p/status")" "$(cat "$p/comm")"
	done' >"$WORK/procs.out"
	cat "$WORK/procs.out"
	grep -q ' master$' "$WORK/procs.out"
	grep -q ' qmgr$' "$WORK/procs.out"
	[ -z "$(awk -v u="$KUBE_UID" '$1 != u || $2 != 0' "$WORK/procs.out")" ]
}

@test "a message to the pod's SMTP port is delivered over LMTP to Dovecot and read back over IMAP" {
	kube_running "$CTR"
	run mailtool send --port "$SMTP" --to "alice@$DOMAIN" \
		--subject kube-play --body "body-from-the-pod-4711"
	echo "$output"
	[ "$status" -eq 0 ]
	token=${output#250 }
	wait_until 60 "delivery to alice over LMTP" \
		eval "mailtool imap --port $IMAP --user alice@$DOMAIN --password alicepw --tokens | grep -q $token"
	run mailtool imap --port "$IMAP" --user "alice@$DOMAIN" --password alicepw
	echo "$output" | grep -q 'body-from-the-pod-4711'
	echo "$output" | grep -q '^Subject: kube-play'
	kpodman logs "$CTR" 2>&1 | grep -q "to=<alice@$DOMAIN>, relay=127.0.0.1\[127.0.0.1\]:$LMTP.*status=sent"
}

@test "the TLS Secret and the SASL settings reach the pod: STARTTLS, SMTPS, AUTH" {
	run mailtool ehlo --port "$SMTP"
	echo "$output"
	echo "$output" | grep -qx STARTTLS
	run mailtool send --port "$SMTP" --starttls --to "bob@$DOMAIN" --subject over-starttls
	echo "$output"
	[ "$status" -eq 0 ]
	run mailtool ehlo --port "$SMTPS" --ssl
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^AUTH .*PLAIN'
	# Submission: TLS and AUTH (Dovecot's) before anything is accepted.
	run mailtool send --port "$SUBMISSION" --to "bob@$DOMAIN"
	[ "$status" -ne 0 ]
	run mailtool send --port "$SUBMISSION" --starttls --auth "alice@$DOMAIN:alicepw" \
		--to "bob@$DOMAIN" --subject via-submission
	echo "$output"
	[ "$status" -eq 0 ]
	run mailtool send --port "$SMTPS" --ssl --auth "alice@$DOMAIN:alicepw" \
		--to "bob@$DOMAIN" --subject via-smtps
	echo "$output"
	[ "$status" -eq 0 ]
	token=${output#250 }
	wait_until 60 "the SMTPS mail at bob" \
		eval "mailtool imap --port $IMAP --user bob@$DOMAIN --password bobpw --tokens | grep -q $token"
}

@test "the pod's probes pass, its root file system is read-only, its config came from the ConfigMap" {
	kpodman exec "$CTR" postfix-health live
	kpodman exec "$CTR" postfix-health ready
	run kpodman exec "$CTR" sh -c ': >/etc/postfix/probe'
	[ "$status" -ne 0 ]
	run kpodman exec "$CTR" sh -c ': >/usr/probe'
	[ "$status" -ne 0 ]
	[ "$(kpodman exec "$CTR" postconf -h myhostname)" = "$DOMAIN" ]
	[ "$(kpodman exec "$CTR" postconf -h mailbox_lmtp_destination)" = "inet:127.0.0.1:$LMTP" ]
	[ "$(kpodman exec "$CTR" postconf -h smtp_in_port)" = "$SMTP" ]
	[ "$(kpodman exec "$CTR" id -u)" = "$KUBE_UID" ]
}

@test "the queue is on the claim's volume: a deferred mail survives the pod and is delivered later" {
	dv_stop "$WORK/dovecot"
	wait_until 30 "Dovecot LMTP to close" port_closed "$LMTP"
	run mailtool send --port "$SMTP" --to "bob@$DOMAIN" --subject survives
	echo "$output"
	[ "$status" -eq 0 ]
	token=${output#250 }
	wait_until 60 "the deferral" \
		eval "kpodman logs $CTR 2>&1 | grep -q 'to=<bob@$DOMAIN>.*status=deferred'"
	kpodman kube down "$WORK/kube/pod.yaml" >/dev/null
	kpodman volume exists "$VOLUME"
	dv_start "$WORK/dovecot" "$LMTP" "$IMAP" "$AUTH" \
		"alice@$DOMAIN:alicepw" "bob@$DOMAIN:bobpw"
	# The same pod again, now with the PROXY protocol on (next test).
	CHART_RELEASE=pftest chart_render "$WORK/render/kube-play-proxy.yaml" \
		-f "$TOP/tests/chart-values/kube-play.yaml" \
		--set "podSecurityContext.runAsUser=$KUBE_UID" \
		--set proxyProtocol.enabled=true
	kube_play "$WORK/kube" "$WORK/render/kube-play-proxy.yaml" "$WORK/tls-secret.yaml"
	kube_wait_port 120 "$CTR" "$SMTP"
	kpodman exec "$CTR" postqueue -f
	wait_until 60 "the deferred mail at bob" \
		eval "mailtool imap --port $IMAP --user bob@$DOMAIN --password bobpw --tokens | grep -q $token"
}

@test "proxyProtocol.enabled: smtpd takes the client address from the PROXY header" {
	kube_running "$CTR"
	[ "$(kpodman exec "$CTR" postconf -h smtpd_upstream_proxy_protocol)" = haproxy ]
	run proxy_send "$SMTP" 192.0.2.44 "alice@$DOMAIN"
	echo "$output"
	[ "$status" -eq 0 ]
	kpodman logs "$CTR" 2>&1 | grep -q 'connect from unknown\[192\.0\.2\.44\]'
	wait_until 60 "the proxied mail at alice" \
		eval "mailtool imap --port $IMAP --user alice@$DOMAIN --password alicepw --tokens | grep -q proxy-token-1"
	# A client without the header gets no service.
	run mailtool send --port "$SMTP" --to "alice@$DOMAIN" --timeout 8
	echo "$output"
	[ "$status" -ne 0 ]
}

@test "proxyProtocol.enabled: the readiness probe still passes (postfix-health sends a PROXY header)" {
	kube_running "$CTR"
	kpodman exec "$CTR" postfix-health ready
}
