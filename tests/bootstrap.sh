# The one bootstrap of tests/run and benchmarks/run: Debian packages without their
# services (never started, not enabled at boot), and the project's venv.
# Usage: . tests/bootstrap.sh; install_packages WHO "pkg ..."; make_venv 'SPEC'

missing_packages() {
    local pkg
    for pkg in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || printf '%s ' "$pkg"
    done
}

# Services that Debian's packages enable at boot; the tests start their own instances.
SERVICES="dovecot icinga2 nagios-nrpe-server nagios4 monit"

install_packages() {  # WHO PACKAGES
    local who=$1
    PACKAGES=$2
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "$who: not root (or no apt-get): real-server tests skip unless $PACKAGES is installed"
        return 0
    fi
    local missing
    missing=$(missing_packages)
    [ -n "$missing" ] || return 0
    echo "$who: installing $missing"
    # Never let a package start its system service (it would take port 143/993).
    local made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=yes
    fi
    export DEBIAN_FRONTEND=noninteractive
    local log
    log=$(mktemp)
    # shellcheck disable=SC2086
    if ! { apt-get update -q -o DPkg::Lock::Timeout=300 \
           && apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 $missing
         } >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "$who: installing $missing failed (full log: $log)" >&2
        exit 1
    fi
    rm -f "$log"
    if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
    local svc
    for svc in $SERVICES; do  # installed for the tests only: not enabled at boot
        systemctl disable --no-reload "$svc" >/dev/null 2>&1 || true
        update-rc.d "$svc" disable >/dev/null 2>&1 || true
    done
}

make_venv() {  # PIP-SPEC: build .venv (or $VENV) with $PYTHON and install the project
    PYTHON=${PYTHON:-python3}
    VENV=${VENV:-.venv}
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$1"
}
