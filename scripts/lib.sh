# Shared helpers for scripts/services and scripts/bootstrap. Source it; do not run it.
# shellcheck shell=bash

# shellcheck disable=SC2034 # used by the scripts that source this file
TELEMED_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export DEBIAN_FRONTEND=noninteractive

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "${0##*/}" "$*" >&2
    exit 1
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# True when every named Debian package is installed.
pkg_installed() {
    local status
    status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" || return 1
    [[ "$status" == "install ok installed" ]]
}

# Prints the packages of "$@" that are not installed, one per line.
missing_pkgs() {
    local p
    for p in "$@"; do
        pkg_installed "$p" || printf '%s\n' "$p"
    done
}

# Installs packages as root; apt-get update only runs because something is missing.
apt_install() {
    (($# > 0)) || return 0
    is_root || die "apt_install needs root"
    log "installing: $*"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@"
}

# True when sudo can run commands without asking for a password.
have_sudo() { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }

# Short stable name for a path, used to keep several instances apart.
path_hash() { printf '%s' "$1" | sha256sum | cut -c1-12; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds or time runs out.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
