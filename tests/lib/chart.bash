# tests/lib/chart.bash - render the Helm chart (k8s/postfix) and query the
# result, and run a rendered pod with podman kube play.
#
# chart_install_tools       k8s/tools/install (Helm, kubernetes-models)
# chart_render OUT ARGS..   helm template (release $CHART_RELEASE, namespace
#                           mail) with ARGS (-f/--set), into OUT
# chart_fails ARGS..        helm template must fail; its error in $output
# kq FILE KIND/NAME EXPR    a value of a rendered object (k8s/tools/query)
# kq_absent FILE KIND/NAME EXPR   that object or value does not exist
# kube_play DIR RENDERED [EXTRA..]
#                           podify RENDERED and the EXTRA manifests (Secrets)
#                           into DIR/pod.yaml, podman kube play it with
#                           --network host
# kube_tls_secret NAME DIR  a kubernetes.io/tls Secret of DIR/tls.crt, .key
# kube_down DIR             podman kube down, remove the named volumes that
#                           its claims and configMap volumes became
# kube_ctr POD              the name of POD's first (Postfix) container
# kube_running CTR          CTR is running
# kube_wait_port T CTR PORT wait for 127.0.0.1:PORT, fail early (with the
#                           container's log) when CTR stopped

HELM=${HELM:-$BUILD/tools/bin/helm}
CHART=$TOP/k8s/postfix
K8S_TOOLS=$TOP/k8s/tools
CHART_RELEASE=${CHART_RELEASE:-postfix}
IMAGE=${IMAGE:-localhost/postfix-unpriv:latest}
export HELM CHART K8S_TOOLS CHART_RELEASE IMAGE

chart_install_tools() {
	"$K8S_TOOLS/install" >&2
}

chart_render() {
	local out=$1
	shift
	"$HELM" template "$CHART_RELEASE" "$CHART" --namespace mail "$@" >"$out"
}

chart_fails() {
	run "$HELM" template "$CHART_RELEASE" "$CHART" --namespace mail "$@"
	echo "$output"
	[ "$status" -ne 0 ]
}

kq() {
	"$K8S_TOOLS/query" "$@"
}

# kq_absent FILE KIND/NAME EXPR - the object or the value does not exist
# (query exits 3). A bare "! kq" would not fail a BATS test.
kq_absent() {
	local s=0
	kq "$@" >/dev/null 2>&1 || s=$?
	[ "$s" -eq 3 ]
}

# podman with the project's settings (runc, ulimits): container/containers.conf.
kpodman() {
	CONTAINERS_CONF=${CONTAINERS_CONF:-$TOP/container/containers.conf} podman "$@"
}

kube_play() {
	local dir=$1 rendered=$2
	shift 2
	# podify turns the Secrets (EXTRA) into ConfigMaps for podman.
	"$K8S_TOOLS/podify" --host-network "$rendered" "$@" >"$dir/pod.yaml" 2>"$dir/podify.err"
	kpodman kube play --network host "$dir/pod.yaml" >"$dir/play.out" 2>&1 ||
		fail "podman kube play failed: $(cat "$dir/play.out")"
}

kube_tls_secret() {
	printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n' "$1"
	printf 'type: kubernetes.io/tls\ndata:\n'
	printf '  tls.crt: %s\n' "$(base64 -w0 "$2/tls.crt")"
	printf '  tls.key: %s\n' "$(base64 -w0 "$2/tls.key")"
}

kube_down() {
	local dir=$1 v
	[ -f "$dir/pod.yaml" ] || return 0
	kpodman kube down "$dir/pod.yaml" >/dev/null 2>&1 || true
	# Claims become named volumes, and so do configMap volumes (named
	# after the ConfigMap); kube down keeps both.
	{
		sed -n 's/^ *claimName: *//p' "$dir/pod.yaml"
		awk '/^ *configMap:$/ { c = 1; next }
			c && /^ *name: / { print $2; c = 0 }' "$dir/pod.yaml"
	} | while read -r v; do
		kpodman volume rm -f "$v" >/dev/null 2>&1 || true
	done
}

kube_ctr() {
	# podman kube play names containers POD-CONTAINER.
	echo "$1-postfix"
}

kube_running() {
	[ "$(kpodman container inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]
}

kube_wait_port() {
	local timeout=$1 ctr=$2 port=$3 deadline
	deadline=$(($(date +%s) + timeout))
	until port_open "$port"; do
		if ! kube_running "$ctr"; then
			fail "container $ctr stopped: $(kpodman logs "$ctr" 2>&1 | tail -n 30)"
			return 1
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			fail "timed out after ${timeout}s waiting for port $port of $ctr: $(kpodman logs "$ctr" 2>&1 | tail -n 30)"
			return 1
		fi
		sleep 0.2
	done
}
