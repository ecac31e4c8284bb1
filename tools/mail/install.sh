#!/usr/bin/env bash
# Install the Debian packages the real-server tests need: Dovecot (IMAP + LMTP) and openssl,
# and with --browser also headless Chromium + chromedriver.
#
# Idempotent and quiet: when everything is present it only runs dpkg-query (a few ms) and prints
# nothing. Otherwise it installs with a temporary policy-rc.d so the package postinst cannot start
# the *system* Dovecot on 0.0.0.0:143/993 (reference pitfall P1), runs `apt-get update` only when the
# package lists are empty or an install attempt failed, and serialises concurrent runs (several
# worktrees may run `make test` at once) with flock.
#
# Usage: bash tools/mail/install.sh [--browser] [--quiet|--verbose]
# Exit status: 0 when everything is installed, non-zero (with the reason on stderr) otherwise.
set -euo pipefail

want_browser=0
verbose=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    --verbose|-v) verbose=1 ;;
    --quiet|-q) verbose=0 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$arg' (expected --browser, --verbose)" >&2; exit 2 ;;
  esac
done

packages=(dovecot-imapd dovecot-lmtpd openssl)
# the emoji font makes the 👍/👎 buttons render in screenshots (looks only; no test depends on it)
[ "$want_browser" = 1 ] && packages+=(chromium chromium-driver fonts-noto-color-emoji)

missing_packages() {
  local p status
  for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || printf '%s\n' "$p"
  done
}

missing=$(missing_packages)
[ -z "$missing" ] && exit 0   # the fast path: nothing to do, say nothing

log() { echo "install.sh: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "missing packages: $(echo $missing); installing them needs root."
  log "fix: sudo bash $0 $*"
  exit 1
fi
command -v apt-get >/dev/null || { log "apt-get not found: this script supports Debian/Ubuntu only"; exit 1; }

# One installer at a time on this machine; the others wait here, then find the work done.
lock=/run/lock/digest-mailtest-install.lock
[ -d /run/lock ] || lock=/tmp/digest-mailtest-install.lock
exec 9>"$lock"
flock -w 900 9 || { log "timed out after 900 s waiting for another install.sh ($lock)"; exit 1; }
missing=$(missing_packages)
[ -z "$missing" ] && exit 0

start=$(date +%s.%N)
log "installing: $(echo $missing)"

# P1: keep maintainer scripts from starting services. Only remove the guard if we created it.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  created_policy=1
fi
apt_log=$(mktemp /tmp/mailtest-apt.XXXXXX)
cleanup() {
  [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  rm -f "$apt_log"
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold)

run_apt() {   # run apt quietly, keeping its output for the error message
  if [ "$verbose" = 1 ]; then "$@" 2>&1 | tee -a "$apt_log"; return "${PIPESTATUS[0]}"; fi
  "$@" >>"$apt_log" 2>&1
}

lists_empty() { ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; }

if lists_empty; then
  log "apt package lists are empty: apt-get update"
  run_apt apt-get update -q -o DPkg::Lock::Timeout=600 || { log "apt-get update failed:"; tail -20 "$apt_log" >&2; exit 1; }
fi
# shellcheck disable=SC2086  # $missing is a newline-separated list of package names
if ! run_apt apt-get install "${apt_opts[@]}" $missing; then
  # Stale lists give 404s or "Unable to locate package": refresh once and retry.
  log "install failed; running apt-get update and retrying"
  run_apt apt-get update -q -o DPkg::Lock::Timeout=600 || true
  if ! run_apt apt-get install "${apt_opts[@]}" $missing; then
    log "apt-get install $(echo $missing) failed. Last lines of apt's output:"
    tail -25 "$apt_log" >&2
    exit 1
  fi
fi

# P1 on systemd hosts: policy-rc.d is not consulted by systemctl enable at boot; make sure the
# system Dovecot neither runs now nor starts at boot (the tests run their own instance).
if echo "$missing" | grep -q dovecot; then
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
  fi
  if [ -s /run/dovecot/master.pid ] && kill -0 "$(cat /run/dovecot/master.pid)" 2>/dev/null; then
    /usr/sbin/dovecot stop >/dev/null 2>&1 || true
  fi
fi

still=$(missing_packages)
if [ -n "$still" ]; then
  log "apt reported success but these are still not installed: $(echo $still)"
  exit 1
fi
log "done in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}') s"
