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

# The services of Debian's daemon packages: the tests start their own instances, so
# what install_packages installs is recorded and never enabled at boot
# (tests/boot-services; tests/test_boot_services.py checks it). A daemon the machine
# had before is left as it was.
BOOT_RECORD=/var/lib/check_imap-tests/installed-services
BOOT_SERVICES="dovecot icinga2 nagios4 nagios-nrpe-server monit"

services_present() {  # the services of BOOT_SERVICES this machine has now
    local svc
    for svc in $BOOT_SERVICES; do
        if [ -e "/lib/systemd/system/$svc.service" ] || [ -e "/etc/init.d/$svc" ]; then
            printf '%s\n' "$svc"
        fi
    done
}

record_new_services() {  # record_new_services "services before the install"
    local svc
    mkdir -p "$(dirname "$BOOT_RECORD")"
    for svc in $(services_present); do
        case " $1 " in *" $svc "*) ;; *) printf '%s\n' "$svc" >> "$BOOT_RECORD" ;; esac
    done
}

install_packages() {  # WHO PACKAGES
    local who=$1
    PACKAGES=$2
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "$who: not root (or no apt-get): real-server tests skip unless $PACKAGES is installed"
        return 0
    fi
    local missing
    missing=$(missing_packages)
    if [ -n "$missing" ]; then
        echo "$who: installing $missing"
        local services_before
        services_before=$(services_present | tr '\n' ' ')
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
        record_new_services "$services_before"
    fi
    # What we installed is never started at boot (again on every run: an upgrade may
    # have re-enabled it).
    if [ -s "$BOOT_RECORD" ]; then
        # shellcheck disable=SC2046
        tests/boot-services disable $(sort -u "$BOOT_RECORD")
    fi
}

make_venv() {  # PIP-SPEC: build .venv (or $VENV) with $PYTHON and install the project
    # Debian's own python3 when it can make a venv: the tests and the benchmarks then run
    # on what Debian users run, and the nagios user can execute it (a pyenv under /root
    # it cannot). PYTHON=... overrides; elsewhere, python3.
    if [ -z "${PYTHON:-}" ] && /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        PYTHON=/usr/bin/python3
    fi
    PYTHON=${PYTHON:-python3}
    VENV=${VENV:-.venv}
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$1"
}
