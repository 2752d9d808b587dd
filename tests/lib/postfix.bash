# tests/lib/postfix.bash - run the built Postfix (build/root) as an
# unprivileged instance on the host, as the random UID in group 0.
#
# pf_instance DIR         make DIR/etc (conf/ defaults + paths into the
#                         staged tree), DIR/spool, DIR/data, DIR/maillog
# pf_conf DIR NAME=VALUE.. postconf -e in that instance
# pf_start DIR [WRAPPER..] start it (postfix start); WRAPPER (e.g. strace)
#                         runs under the random UID in front of postfix
# pf_stop DIR             postfix stop, and wait for the master to exit
# pf_postfix DIR ARGS..   run a Postfix command (postfix, postqueue, ...)
#                         of the staged tree as the random UID, for DIR
# pf_log DIR              the instance's maillog
# pf_wait_log DIR T RE    wait up to T seconds for RE in the maillog
# pf_queue_count DIR      messages in the queue (postqueue -j)

pf_instance() {
	local dir=$1
	mkdir -p "$dir/etc/tls" "$dir/spool" "$dir/data"
	cp "$TOP/conf/main.cf" "$TOP/conf/master.cf" "$TOP/conf/aliases" \
		"$dir/etc/"
	: >"$dir/maillog"
	"$ROOT/usr/sbin/postconf" -c "$dir/etc" -e \
		"queue_directory = $dir/spool" \
		"data_directory = $dir/data" \
		"command_directory = $ROOT/usr/sbin" \
		"daemon_directory = $ROOT/usr/libexec/postfix" \
		"shlib_directory = $ROOT/usr/lib/postfix" \
		"meta_directory = $ROOT/etc/postfix" \
		"sendmail_path = $ROOT/usr/sbin/sendmail" \
		"mailq_path = $ROOT/usr/bin/mailq" \
		"newaliases_path = $ROOT/usr/bin/newaliases" \
		"alias_maps = texthash:$dir/etc/aliases" \
		"tls_certificate_directory = $dir/etc/tls" \
		"maillog_file = $dir/maillog" \
		"maillog_file_prefixes = $dir" \
		"inet_interfaces = 127.0.0.1" \
		"myhostname = mx.example.test" \
		"smtpd_peername_lookup = no" \
		"smtp_dns_support_level = disabled" \
		"default_transport = error:5.3.0 test instances relay nowhere"
	# Test traffic stays on loopback: no name lookups (a peer name lookup
	# or an MX lookup for a test domain would query the real DNS), and mail
	# for other domains is refused unless a suite sets relayhost and
	# default_transport to a loopback peer.
	# The queue and data directories belong to the random UID (group 0,
	# g=u), as OpenShift hands over volumes; configuration stays root's.
	chown -R "$RUN_UID:0" "$dir/spool" "$dir/data" "$dir/maillog"
	chmod -R g=u "$dir/spool" "$dir/data"
	chmod 755 "$dir"
}

pf_conf() {
	local dir=$1
	shift
	"$ROOT/usr/sbin/postconf" -c "$dir/etc" -e "$@"
}

pf_postfix() {
	local dir=$1 cmd=$2
	shift 2
	MAIL_CONFIG=$dir/etc as_run_uid "$ROOT/usr/sbin/$cmd" "$@"
}

pf_master_pid() {
	sed -n '1s/ //gp' "$1/spool/pid/master.pid" 2>/dev/null
}

pf_running() {
	local pid
	pid=$(pf_master_pid "$1")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

pf_start() {
	local dir=$1 starter deadline
	shift
	# In the background, so that a wrapper that outlives "postfix start"
	# (strace -f follows the master until it exits) does not block.
	MAIL_CONFIG=$dir/etc as_run_uid "$@" "$ROOT/usr/sbin/postfix" start \
		>"$dir/start.out" 2>&1 &
	starter=$!
	deadline=$(($(date +%s) + 30))
	until pf_running "$dir"; do
		if ! kill -0 "$starter" 2>/dev/null; then
			wait "$starter" && continue
			fail "postfix start failed: $(cat "$dir/start.out")"
			return 1
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			fail "timed out waiting for the master of $dir"
			return 1
		fi
		sleep 0.1
	done
}

pf_stop() {
	local dir=$1 pid
	pid=$(pf_master_pid "$dir")
	pf_postfix "$dir" postfix stop >/dev/null 2>&1 || true
	[ -z "$pid" ] || wait_until 30 "the master of $dir to exit" \
		eval "! kill -0 $pid"
}

pf_log() {
	cat "$1/maillog"
}

pf_wait_log() {
	local dir=$1 timeout=$2 re=$3
	wait_until "$timeout" "'$re' in $dir/maillog" grep -qE "$re" "$dir/maillog"
}

pf_queue_count() {
	pf_postfix "$1" postqueue -j | grep -c '"queue_id"' || true
}
