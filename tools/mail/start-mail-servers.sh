#!/usr/bin/env bash
# Start a loopback Dovecot (IMAP, IMAPS, LMTP) and the smtp_to_lmtp.py SMTP relay for tests.
#
# Everything lives in $MAILTEST_DIR (config, cert, users, Maildirs, logs, pids) and listens on
# 127.0.0.1 only. Idempotent: a previous instance in the same dir is stopped first; if the start
# fails, whatever was started is stopped again. On success it writes $MAILTEST_DIR/env (shell
# exports for the tests) and prints where it is.
#
# Environment knobs (defaults in brackets):
#   MAILTEST_DIR          work dir; keep it short, unix sockets live under it [/tmp/mailtest]
#   MAILTEST_PYTHON       a python that imports aiosmtpd [python3]
#   MAILTEST_USERS        "addr:password addr:password ..." [digest@, alice@, bob@example.test]
#   MAILTEST_IMAP_PORT MAILTEST_IMAPS_PORT MAILTEST_LMTP_PORT MAILTEST_SMTP_PORT MAILTEST_SMTPS_PORT
#                         [1143 1993 1024 1025 1465]
#   MAILTEST_MAIL_UID     uid (and gid) owning the Maildirs when run as root [5000]
#   MAILTEST_KEEP_MAIL=1  keep existing Maildirs in $MAILTEST_DIR [wipe them]
#   MAILTEST_INSTALL=no   do not run install.sh (fail if dovecot is missing)
#   MAILTEST_SMTP_ARGS    extra smtp_to_lmtp.py options, e.g. "--auth-required"
# Exit status: 0 ok, 1 failure, 3 a port is busy (callers picking ports may retry with others).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
t0=$(date +%s%N)

D=${MAILTEST_DIR:-/tmp/mailtest}
PY=${MAILTEST_PYTHON:-python3}
USERS=${MAILTEST_USERS:-"digest@example.test:digest-pw alice@example.test:alice-pw bob@example.test:bob-pw"}
IMAP_PORT=${MAILTEST_IMAP_PORT:-1143}
IMAPS_PORT=${MAILTEST_IMAPS_PORT:-1993}
LMTP_PORT=${MAILTEST_LMTP_PORT:-1024}
SMTP_PORT=${MAILTEST_SMTP_PORT:-1025}
SMTPS_PORT=${MAILTEST_SMTPS_PORT:-1465}
HOST=127.0.0.1
DOVECOT=${MAILTEST_DOVECOT:-/usr/sbin/dovecot}

die() { echo "start-mail-servers: $*" >&2; exit "${2:-1}"; }

case "$D" in /*) ;; *) die "MAILTEST_DIR must be an absolute path (got '$D')" ;; esac
D=${D%/}
# P19: Dovecot's unix sockets (base_dir/...) must fit in 107 bytes.
[ ${#D} -le 80 ] || die "MAILTEST_DIR is ${#D} chars; unix socket paths under it would be too long. Use a short dir such as /tmp/mt-XXXX"
[ ${#D} -le 60 ] || echo "start-mail-servers: warning: MAILTEST_DIR is ${#D} chars; keep it under 60" >&2

if [ "${MAILTEST_INSTALL:-yes}" != no ]; then
  bash "$here/install.sh" || die "installing dovecot failed (see above)"
fi
[ -x "$DOVECOT" ] || die "$DOVECOT not found: run 'sudo bash $here/install.sh'"
"$PY" -c 'import aiosmtpd' 2>/dev/null ||
  die "MAILTEST_PYTHON=$PY cannot import aiosmtpd: set MAILTEST_PYTHON to the project venv's python (pip install aiosmtpd)"

# A previous instance in this dir (even a crashed one) is stopped first.
if [ -e "$D/run/master.pid" ] || [ -e "$D/pids/smtp.pid" ]; then
  bash "$here/stop-mail-servers.sh" "$D" >/dev/null
fi

# Refuse busy ports (exit 3), checked by binding exactly as the servers will.
busy=$("$PY" - "$HOST" "$IMAP_PORT" "$IMAPS_PORT" "$LMTP_PORT" "$SMTP_PORT" "$SMTPS_PORT" <<'EOF'
import socket, sys
host, ports = sys.argv[1], sys.argv[2:]
if len(set(ports)) != len(ports):
    print("duplicate ports: " + " ".join(ports))
for p in ports:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, int(p)))
    except OSError as exc:
        print(f"{host}:{p} ({exc.strerror})")
    finally:
        s.close()
EOF
)
[ -z "$busy" ] || die "port(s) in use: $(echo $busy). Choose others with MAILTEST_*_PORT." 3

started_dovecot=0 started_smtp=0
on_error() {
  local rc=$?
  trap - EXIT
  if [ $rc -ne 0 ]; then
    { [ $started_dovecot = 1 ] || [ $started_smtp = 1 ]; } && bash "$here/stop-mail-servers.sh" "$D" >/dev/null 2>&1
    for f in "$D/log/dovecot.log" "$D/log/dovecot.stderr" "$D/log/smtp.stderr"; do
      [ -s "$f" ] && { echo "--- last lines of $f:" >&2; tail -15 "$f" >&2; }
    done
  fi
  exit $rc
}
trap on_error EXIT

if [ "$(id -u)" = 0 ]; then MUID=${MAILTEST_MAIL_UID:-5000}; MGID=$MUID; else MUID=$(id -u); MGID=$(id -g); fi

mkdir -p "$D"/{etc,tls,run,state,log,pids,mail}
# P3: Dovecot's unprivileged processes (uid $MUID, dovenull) must traverse the dir (mktemp makes 0700)
chmod 755 "$D" "$D/etc" "$D/tls"
if [ "${MAILTEST_KEEP_MAIL:-0}" != 1 ]; then
  rm -rf "${D:?}/mail" "$D/state" "$D/faults.json" "$D/log/smtp.log"
  mkdir -p "$D/mail" "$D/state"
fi
chown "$MUID:$MGID" "$D/mail"
: >>"$D/log/smtp.log"

if [ ! -s "$D/tls/cert.pem" ] || [ ! -s "$D/tls/key.pem" ]; then
  openssl req -x509 -nodes -days 3650 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    -keyout "$D/tls/key.pem" -out "$D/tls/cert.pem" >/dev/null 2>&1 || die "openssl could not make a certificate"
  chmod 600 "$D/tls/key.pem"
fi

# passwd-file shared by Dovecot (passdb + userdb) and the SMTP relay (AUTH, RCPT checks).
# Dovecot reads one file per user (users.d/<address>): its passwd-file driver re-checks a file at
# most once per second, so a user appended to a shared file right after a lookup stays unknown for
# up to 1 s; a new file is read at once. etc/users holds all lines (the relay reads that one).
users_file="$D/etc/users"
rm -rf "$D/etc/users.d"
mkdir -p "$D/etc/users.d"
: >"$users_file.new"
for u in $USERS; do
  addr=${u%%:*} pw=${u#*:}
  [ "$addr" != "$u" ] && [ -n "$pw" ] || die "MAILTEST_USERS entry '$u' must look like addr:password"
  case "$addr" in */*|.*) die "MAILTEST_USERS: bad address '$addr'" ;; esac
  line=$(printf '%s:{PLAIN}%s:%s:%s::%s/mail/%s::' "$addr" "$pw" "$MUID" "$MGID" "$D" "$addr")
  echo "$line" >>"$users_file.new"
  echo "$line" >"$D/etc/users.d/${addr,,}"
done
mv "$users_file.new" "$users_file"
# The auth process runs as the unprivileged 'dovecot' user; these are throwaway test passwords.
chmod 755 "$D/etc/users.d"
chmod 644 "$users_file" "$D"/etc/users.d/*

if [ "$(id -u)" = 0 ]; then
  login_chroot="" anvil_chroot="" internal="# (started as root: internal services run as the packaged dovecot/dovenull users)"
else
  login_chroot="  chroot ="
  anvil_chroot="  chroot ="
  internal="default_internal_user = $(id -un)
default_internal_group = $(id -gn)
default_login_user = $(id -un)"
fi

cat >"$D/etc/dovecot.conf" <<EOF
# Standalone Dovecot 2.3 for tests -- generated by tools/mail/start-mail-servers.sh
protocols = imap lmtp
listen = $HOST
base_dir = $D/run
state_dir = $D/state
instance_name = mailtest-$(basename "$D")
hostname = localhost
log_path = $D/log/dovecot.log

ssl = yes
ssl_cert = <$D/tls/cert.pem
ssl_key = <$D/tls/key.pem

# tests log in over plain IMAP too; loopback counts as secured anyway
disable_plaintext_auth = no
auth_mechanisms = plain login
# keep negative tests fast: no 2 s sleep on a wrong password (see also anvil below)
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN $D/etc/users.d/%Lu
}
userdb {
  driver = passwd-file
  args = $D/etc/users.d/%Lu
}
first_valid_uid = 1

mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
}
protocol imap {
  # default 10 per user+IP is easy to hit with parallel tests
  mail_max_userip_connections = 100
}

service imap-login {
$login_chroot
  inet_listener imap {
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = $IMAPS_PORT
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    port = $LMTP_PORT
  }
}
# no "auth penalty" (a 2-15 s delay of the NEXT login from 127.0.0.1 after a failure);
# login_trusted_networks does not lift it in 2.3.19: no listener = disabled
service anvil {
$anvil_chroot
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
$internal
EOF

rm -f "$D/run/master.pid"
# P5: the daemonised master keeps the stdio it was started with; never hand it our pipes.
"$DOVECOT" -c "$D/etc/dovecot.conf" </dev/null >>"$D/log/dovecot.stderr" 2>&1 || die "dovecot failed to start"
started_dovecot=1

# setsid: the relay belongs to no terminal or test runner process group; stop-mail-servers.sh ends it.
# shellcheck disable=SC2086  # MAILTEST_SMTP_ARGS is a list of options
setsid "$PY" "$here/smtp_to_lmtp.py" --host "$HOST" --port "$SMTP_PORT" --tls-port "$SMTPS_PORT" \
  --users "$users_file" --cert "$D/tls/cert.pem" --key "$D/tls/key.pem" \
  --lmtp-host "$HOST" --lmtp-port "$LMTP_PORT" --pidfile "$D/pids/smtp.pid" \
  --faults "$D/faults.json" --log "$D/log/smtp.log" ${MAILTEST_SMTP_ARGS:-} \
  </dev/null >>"$D/log/smtp.stderr" 2>&1 &
started_smtp=1

# P4: a TCP connect is not readiness; wait for the greetings (and a TLS handshake on SMTPS).
"$PY" - "$HOST" "$IMAP_PORT" "$LMTP_PORT" "$SMTP_PORT" "$SMTPS_PORT" "$D/tls/cert.pem" <<'EOF' ||
import socket, ssl, sys, time
host, imap, lmtp, smtp, smtps, ca = sys.argv[1:]
deadline = time.monotonic() + 15

def greeting(port, prefix, tls=False):
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=2) as s:
                if tls:
                    s = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname="localhost")
                if s.recv(200).startswith(prefix):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"start-mail-servers: no {prefix.decode()!r} greeting on {host}:{port} after 15 s")
        time.sleep(0.02)

greeting(imap, b"* OK")
greeting(lmtp, b"220")
greeting(smtp, b"220")
greeting(smtps, b"220", tls=True)
EOF
  die "servers did not come up"

user_list=""
for u in $USERS; do user_list="$user_list ${u%%:*}"; done
cat >"$D/env.new" <<EOF
# written by tools/mail/start-mail-servers.sh; source it to reach these servers
export MAILTEST_DIR='$D'
export MAILTEST_HOST='$HOST'
export MAILTEST_IMAP_PORT=$IMAP_PORT
export MAILTEST_IMAPS_PORT=$IMAPS_PORT
export MAILTEST_LMTP_PORT=$LMTP_PORT
export MAILTEST_SMTP_PORT=$SMTP_PORT
export MAILTEST_SMTPS_PORT=$SMTPS_PORT
export MAILTEST_CA_CERT='$D/tls/cert.pem'
export MAILTEST_CONF='$D/etc/dovecot.conf'
export MAILTEST_USERS_FILE='$users_file'
export MAILTEST_USERS='$USERS'
export MAILTEST_FAULTS='$D/faults.json'
export MAILTEST_SMTP_LOG='$D/log/smtp.log'
export MAILTEST_PYTHON='$PY'
EOF
mv "$D/env.new" "$D/env"
trap - EXIT

ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "mail servers up in ${ms} ms: IMAP $HOST:$IMAP_PORT (IMAPS $IMAPS_PORT), SMTP $SMTP_PORT (SMTPS $SMTPS_PORT), LMTP $LMTP_PORT, users:$user_list"
echo "  source $D/env    # MAILTEST_* variables; stop with: MAILTEST_DIR=$D bash $here/stop-mail-servers.sh [--purge]"
