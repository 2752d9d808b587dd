-- schema.sql - the one mail database that Postfix (mysql: tables) and
-- Dovecot (SQL passdb/userdb) both read, in the style of the usual
-- Postfix + Dovecot + MariaDB ("MUM") setups.
--
-- Load it into an empty database:
--     mariadb mail < conf/sql/schema.sql
-- Then give each reader its own account with SELECT only (see
-- docs/mailpaths.md):
--     CREATE USER 'postfix'@'%' IDENTIFIED BY '...';
--     GRANT SELECT ON mail.* TO 'postfix'@'%';
--     CREATE USER 'dovecot'@'%' IDENTIFIED BY '...';
--     GRANT SELECT ON mail.* TO 'dovecot'@'%';
--
-- Readers:
--   domains  Postfix virtual_mailbox_domains (conf/mysql/virtual_mailbox_domains.cf)
--   users    Postfix virtual_mailbox_maps (conf/mysql/virtual_mailbox_maps.cf),
--            Dovecot passdb and userdb (conf/dovecot/dovecot-sql.conf.ext)
--   aliases  Postfix virtual_alias_maps (conf/mysql/virtual_alias_maps.cf);
--            one row per destination, so an alias with two destinations is
--            two rows and Postfix joins them ("a@x, b@x").
--
-- Addresses are stored in lower case; the default collation compares
-- without regard to case anyway. Rows with active = 0 do not exist for
-- either reader. No statement here drops or overwrites data.

CREATE TABLE IF NOT EXISTS domains (
    domain      VARCHAR(255) NOT NULL,
    active      TINYINT(1)   NOT NULL DEFAULT 1,
    created     TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (domain)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS users (
    -- The full address is the login name (Dovecot %u) and the Postfix key.
    email       VARCHAR(255) NOT NULL,
    domain      VARCHAR(255) NOT NULL,
    -- A Dovecot password hash with its scheme prefix, for example
    -- "{SHA512-CRYPT}$6$..." (doveadm pw -s SHA512-CRYPT, or
    -- "{SHA512-CRYPT}" followed by the output of openssl passwd -6).
    password    VARCHAR(255) NOT NULL,
    -- Quota in bytes; 0 means none. Returned to Dovecot as quota_rule.
    quota_bytes BIGINT UNSIGNED NOT NULL DEFAULT 0,
    active      TINYINT(1)   NOT NULL DEFAULT 1,
    created     TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (email),
    KEY users_domain (domain),
    CONSTRAINT users_domain_fk FOREIGN KEY (domain)
        REFERENCES domains (domain) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS aliases (
    id          INT UNSIGNED NOT NULL AUTO_INCREMENT,
    -- The address mail is sent to (user@domain, in a domain of "domains").
    source      VARCHAR(255) NOT NULL,
    -- One address it is delivered to (local or remote).
    destination VARCHAR(255) NOT NULL,
    domain      VARCHAR(255) NOT NULL,
    active      TINYINT(1)   NOT NULL DEFAULT 1,
    created     TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id),
    UNIQUE KEY aliases_source_destination (source, destination),
    KEY aliases_domain (domain),
    CONSTRAINT aliases_domain_fk FOREIGN KEY (domain)
        REFERENCES domains (domain) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
