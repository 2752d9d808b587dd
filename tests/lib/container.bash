# tests/lib/container.bash - run the image (container/Containerfile) with
# podman as the container suite needs it.
#
# ct_image                 build the image with "make image" if it is missing
# ct_run NAME UID [OPT...] [-- CMD...]
#                          start container NAME detached, as UID:0 ("" for
#                          the image's default user), under OpenShift's
#                          restricted rules: --cap-drop=ALL --read-only
#                          --security-opt no-new-privileges, --network host,
#                          writable only: volumes NAME-queue and NAME-data
#                          (or those given with CT_VOLUMES=OTHER), tmpfs
#                          /run and /tmp; OPT are more podman options
#                          (-e POSTFIX_...=..., -v ...)
# ct_oneshot UID [OPT...] -- CMD...
#                          the same restrictions, in the foreground, --rm
# ct_env PORT_BASE [1]     the -e options every MTA of the suite gets:
#                          loopback only, no DNS, no relaying, smtp-in/
#                          submission-in/smtps-in on PORT_BASE+0/1/2 (with
#                          1: smtp-in only, for a master.cf without the others)
# ct_running NAME          the container is running
# ct_wait NAME T WHAT CMD.. poll CMD until it succeeds; fail after T
#                          seconds or at once when NAME stopped running,
#                          with the end of its log
# ct_banner PORT           the SMTP greeting on 127.0.0.1:PORT
# ct_cleanup               remove every container and volume of the suite
#
# Containers and volumes carry the label pfu-test=container.

CT_IMAGE=${IMAGE:-localhost/postfix-unpriv:latest}
CONTAINERS_CONF=${CONTAINERS_CONF:-$TOP/container/containers.conf}
export CT_IMAGE CONTAINERS_CONF
CT_LABEL=pfu-test=container
DOMAIN=${DOMAIN:-mx.example.test}

ct_image() {
	podman image exists "$CT_IMAGE" && return 0
	make -C "$TOP" image IMAGE="$CT_IMAGE" >"$WORK/image-build.log" 2>&1 ||
		fail "make image failed: $(tail -n 20 "$WORK/image-build.log")"
}

# ct_random_uid - an arbitrary UID as OpenShift assigns them (no passwd
# entry anywhere), different on every call.
ct_random_uid() {
	echo $((1000000000 + (RANDOM << 15 | RANDOM) % 900000000))
}

ct_volume() {
	podman volume exists "$1" ||
		podman volume create --label "$CT_LABEL" "$1" >/dev/null
}

ct_env() {
	local base=$1 listeners=${2:-3}
	printf '%s\n' -e "POSTFIX_smtp_in_port=$base"
	[ "$listeners" -lt 3 ] ||
		printf '%s\n' -e "POSTFIX_submission_in_port=$((base + 1))" \
			-e "POSTFIX_smtps_in_port=$((base + 2))"
	printf '%s\n' -e "POSTFIX_myhostname=$DOMAIN" \
		-e "POSTFIX_inet_interfaces=127.0.0.1" \
		-e "POSTFIX_smtpd_peername_lookup=no" \
		-e "POSTFIX_smtp_dns_support_level=disabled" \
		-e "POSTFIX_default_transport=error:5.3.0 test containers relay nowhere" \
		-e "POSTFIX_relay_transport=error:5.3.0 test containers relay nowhere"
}

# ct_restricted UID - the podman options of OpenShift's restricted SCC.
ct_restricted() {
	local uid=$1
	[ -z "$uid" ] || printf '%s\n' --user "$uid:0"
	# --passwd=false: podman would add the UID to /etc/passwd; OpenShift
	# does not.
	printf '%s\n' --cap-drop=ALL --read-only --passwd=false \
		--security-opt no-new-privileges --network host \
		--tmpfs /run --tmpfs /tmp
}

ct_run() {
	local name=$1 uid=$2 vols=${CT_VOLUMES:-$1} opts=() cmd=() restricted
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		opts+=("$1")
		shift
	done
	[ $# -eq 0 ] || {
		shift
		cmd=("$@")
	}
	ct_volume "$vols-queue"
	ct_volume "$vols-data"
	mapfile -t restricted < <(ct_restricted "$uid")
	# No systemd here: the HEALTHCHECK runs only on "podman healthcheck run".
	podman run -d --name "$name" --label "$CT_LABEL" \
		--health-interval=disable "${restricted[@]}" \
		-v "$vols-queue:/var/spool/postfix" -v "$vols-data:/var/lib/postfix" \
		"${opts[@]}" "$CT_IMAGE" "${cmd[@]}" >"$WORK/$name.run" 2>&1 ||
		fail "podman run $name failed: $(cat "$WORK/$name.run")"
}

ct_oneshot() {
	local uid=$1 opts=() restricted
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		opts+=("$1")
		shift
	done
	shift
	mapfile -t restricted < <(ct_restricted "$uid")
	podman run --rm --label "$CT_LABEL" --no-healthcheck \
		"${restricted[@]}" "${opts[@]}" "$CT_IMAGE" "$@"
}

ct_running() {
	podman_running "$1"
}

ct_wait() {
	podman_wait "$@"
}

ct_banner() {
	smtp_banner "$1"
}

ct_has_banner() {
	ct_banner "$1" | grep -q '^220 '
}

# ct_wait_ready NAME PORT - the MTA of NAME greets on PORT.
ct_wait_ready() {
	ct_wait "$1" 60 "the 220 greeting of $1 on port $2" ct_has_banner "$2"
}

# ct_logs_grep NAME RE - the container's log (stdout and stderr) matches.
ct_logs_grep() {
	podman logs "$1" 2>&1 | grep -qE "$2"
}

ct_wait_log() {
	ct_wait "$1" "$2" "'$3' in the log of $1" ct_logs_grep "$1" "$3"
}

ct_cleanup() {
	local ids
	mapfile -t ids < <(podman ps -aq --filter "label=$CT_LABEL")
	[ "${#ids[@]}" -eq 0 ] || podman rm -f -v -t 0 "${ids[@]}" >/dev/null 2>&1 || true
	mapfile -t ids < <(podman volume ls -q --filter "label=$CT_LABEL")
	[ "${#ids[@]}" -eq 0 ] || podman volume rm -f "${ids[@]}" >/dev/null 2>&1 || true
}

# tls_fingerprint PORT - SHA-256 fingerprint of the certificate that a new
# STARTTLS connection to 127.0.0.1:PORT is given.
tls_fingerprint() {
	timeout 10 openssl s_client -connect "127.0.0.1:$1" -starttls smtp \
		-servername "$DOMAIN" </dev/null 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256 2>/dev/null |
		sed 's/.*=//'
}

cert_fingerprint() {
	openssl x509 -noout -fingerprint -sha256 -in "$1" | sed 's/.*=//'
}

# k8s_tls_secret DIR VERSION - lay out a certificate as the kubelet writes
# a Secret volume: DIR/..VERSION/tls.{crt,key}, DIR/..data -> ..VERSION,
# DIR/tls.crt -> ..data/tls.crt; a later VERSION replaces ..data with one
# atomic rename, as the kubelet does when cert-manager renews the Secret.
k8s_tls_secret() {
	local dir=$1 version=$2
	mkdir -p "$dir"
	make_cert "$dir/..$version" "$DOMAIN"
	chmod 755 "$dir/..$version"
	chgrp 0 "$dir/..$version/tls.key"
	ln -sfn "..$version" "$dir/..data.tmp"
	mv -T "$dir/..data.tmp" "$dir/..data"
	ln -sfn ..data/tls.crt "$dir/tls.crt"
	ln -sfn ..data/tls.key "$dir/tls.key"
}
