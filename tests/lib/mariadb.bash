# tests/lib/mariadb.bash - a real MariaDB on loopback for the mail
# database (conf/sql/schema.sql), started by the test itself with its own
# data directory, running as the unprivileged $PEER_USER.
#
# md_start DIR PORT          fresh datadir DIR/data (mariadb-install-db),
#                            mariadbd on 127.0.0.1:PORT and DIR/sock
# md_restart DIR PORT        start it again on the existing datadir
# md_stop DIR                shut it down and wait for the process to exit
# md_running DIR             the server process is alive
# md_sql DIR [DB] < SQL      run SQL as the database root over DIR/sock
# md_query DIR DB SQL        one query, tab-separated rows, no headers
# md_create_maildb DIR DB PASSWORD
#                            database DB from conf/sql/schema.sql, and the
#                            readers postfix@127.0.0.1, dovecot@127.0.0.1
#                            (SELECT only) with PASSWORD
# md_add_domain DIR DB DOMAIN
# md_add_user DIR DB ADDRESS PASSWORD   (stored as {SHA512-CRYPT})
# md_add_alias DIR DB SOURCE DESTINATION
# md_postfix_maps OUTDIR PORT DB PASSWORD
#                            conf/mysql/*.cf with hosts and password set
#                            for this server, into OUTDIR
# md_dovecot_sql OUTFILE PORT DB PASSWORD
#                            conf/dovecot/dovecot-sql.conf.ext likewise

md_start() {
	local dir=$1 port=$2
	ensure_peer_user
	rm -rf "$dir"
	mkdir -p "$dir"
	chown "$PEER_USER:" "$dir"
	runuser -u "$PEER_USER" -- mariadb-install-db --no-defaults \
		--datadir="$dir/data" --auth-root-authentication-method=normal \
		--skip-test-db --skip-name-resolve >"$dir/install.log" 2>&1 ||
		fail "mariadb-install-db failed: $(tail -n 20 "$dir/install.log")" ||
		return 1
	md_restart "$dir" "$port"
}

md_restart() {
	local dir=$1 port=$2 pid
	# No my.cnf is read (--no-defaults): everything is on this line.
	runuser -u "$PEER_USER" -- /usr/sbin/mariadbd --no-defaults \
		--datadir="$dir/data" --socket="$dir/sock" --port="$port" \
		--bind-address=127.0.0.1 --skip-name-resolve \
		--pid-file="$dir/mariadbd.pid" --log-error="$dir/error.log" \
		--innodb-buffer-pool-size=32M --skip-log-bin \
		>>"$dir/stdout.log" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/pid"
	WATCH_PID=$pid wait_until 60 "MariaDB on $port" \
		md_alive "$dir" "$port" ||
		fail "MariaDB did not start: $(tail -n 20 "$dir/error.log")"
}

md_alive() {
	port_open "$2" && md_sql "$1" <<<'SELECT 1' >/dev/null
}

md_running() {
	local pid
	pid=$(cat "$1/pid" 2>/dev/null) || return 1
	kill -0 "$pid" 2>/dev/null
}

md_stop() {
	local dir=$1 pid
	pid=$(cat "$dir/pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null || return 0
	wait_until 60 "MariaDB to exit" eval "! kill -0 $pid"
}

md_sql() {
	local dir=$1
	shift
	mariadb --no-defaults --user=root --socket="$dir/sock" \
		--connect-timeout=5 "$@"
}

md_query() {
	md_sql "$1" --batch --skip-column-names "$2" -e "$3"
}

# md_quote STRING - STRING as an SQL string literal.
md_quote() {
	local s=${1//\\/\\\\}
	printf "'%s'" "${s//\'/\'\'}"
}

md_create_maildb() {
	local dir=$1 db=$2 password=$3 pw
	pw=$(md_quote "$password")
	{
		echo "CREATE DATABASE \`$db\` CHARACTER SET utf8mb4;"
		echo "USE \`$db\`;"
		cat "$TOP/conf/sql/schema.sql"
		echo "CREATE USER 'postfix'@'127.0.0.1' IDENTIFIED BY $pw;"
		echo "GRANT SELECT ON \`$db\`.* TO 'postfix'@'127.0.0.1';"
		echo "CREATE USER 'dovecot'@'127.0.0.1' IDENTIFIED BY $pw;"
		echo "GRANT SELECT ON \`$db\`.* TO 'dovecot'@'127.0.0.1';"
	} | md_sql "$dir"
}

md_add_domain() {
	md_sql "$1" "$2" <<<"INSERT INTO domains (domain) VALUES ($(md_quote "$3"));"
}

md_add_user() {
	local dir=$1 db=$2 addr=$3 hash
	hash="{SHA512-CRYPT}$(openssl passwd -6 -stdin <<<"$4")"
	md_sql "$dir" "$db" <<<"INSERT INTO users (email, domain, password)
		VALUES ($(md_quote "$addr"), $(md_quote "${addr#*@}"),
		$(md_quote "$hash"));"
}

md_add_alias() {
	local dir=$1 db=$2 src=$3 dst=$4
	md_sql "$dir" "$db" <<<"INSERT INTO aliases (source, destination, domain)
		VALUES ($(md_quote "$src"), $(md_quote "$dst"),
		$(md_quote "${src#*@}"));"
}

md_postfix_maps() {
	local out=$1 port=$2 db=$3 password=$4 f
	mkdir -p "$out"
	for f in "$TOP"/conf/mysql/*.cf; do
		sed -e "s|^hosts = .*|hosts = inet:127.0.0.1:$port|" \
			-e "s|^dbname = .*|dbname = $db|" \
			-e "s|^password = .*|password = $password|" \
			"$f" >"$out/${f##*/}"
	done
	# As a Secret volume gives them: readable by group 0, not by others.
	chgrp 0 "$out" "$out"/*.cf
	chmod 750 "$out"
	chmod 440 "$out"/*.cf
}

md_dovecot_sql() {
	local out=$1 port=$2 db=$3 password=$4
	sed -e "s|^connect = .*|connect = host=127.0.0.1 port=$port dbname=$db user=dovecot password=$password|" \
		"$TOP/conf/dovecot/dovecot-sql.conf.ext" >"$out"
}
