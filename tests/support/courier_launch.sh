# Start Courier-IMAP for the tests, inside the private mount namespace that
# tests/support/courier.py made with `unshare -m --propagation private` (so every mount
# below vanishes with the last process, and the machine's own /usr, /etc, /run are never
# changed). Run by sh, in the foreground; the fixture ends it by its session.
#
#   courier_launch.sh TREES ROOT MAILUID PLAIN_PORT TLS_PORT PREAUTH_PORT
#
# Courier's paths are compiled in (/etc/courier, /run/courier/authdaemon, the authlib
# modules in /usr/lib/courier-authlib), and its packages are only unpacked in TREES, so:
#   /usr  = the unpacked packages' usr/ over the real /usr (read-only overlay)
#   /etc  = ROOT/etc (authdaemonrc, userdb, and passwd/group with the `courier` user that
#           STARTTLS drops privileges to) over the real /etc (read-only overlay)
#   /run  = an empty tmpfs for authdaemond's socket
# The three listeners are started as the package's own /usr/lib/courier/imapd{,-ssl}
# scripts do (couriertcpd + imaplogin + imapd, couriertls for implicit TLS), with the
# package's /etc/courier/imapd and imapd-ssl settings and our overrides:
#   PLAIN_PORT   plain, STARTTLS advertised (IMAP_STARTTLS=YES)
#   TLS_PORT     implicit TLS (IMAP_TLS=1, no STARTTLS)
#   PREAUTH_PORT implicit TLS straight into imapd as MAILUID, without imaplogin: Courier
#                then greets "* PREAUTH", as it does when run over ssh or from inetd.
set -eu
TREES=$1 ROOT=$2 MAILUID=$3 PLAIN=$4 TLS=$5 PREAUTH=$6

lower=""
for tree in courier-imap courier-base courier-authlib courier-authdaemon courier-authlib-userdb; do
    lower="$lower$TREES/$tree/usr:"
done
mount -t overlay overlay -o "lowerdir=${lower}/usr" /usr
mount -t overlay overlay -o "lowerdir=$ROOT/etc:/etc" /etc
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/courier/authdaemon

/usr/lib/courier/courier-authlib/authdaemond &
i=0
while [ ! -S /run/courier/authdaemon/socket ]; do  # the fixture's deadline bounds this too
    i=$((i + 1))
    if [ "$i" -gt 500 ]; then echo "courier_launch: no authdaemond socket" >&2; exit 1; fi
    sleep 0.01
done

serve() {  # serve PORT STARTTLS(YES|NO) TLS(0|1) PROGRAM...
    port=$1 starttls=$2 tls=$3
    shift 3
    set +u -a
    . "$TREES/courier-imap/etc/courier/imapd"
    . "$TREES/courier-imap/etc/courier/imapd-ssl"
    TLS_CERTFILE=$ROOT/pki/imap.test.pem
    TLS_CACHEFILE=
    TLS_DHPARAMS=
    IMAP_STARTTLS=$starttls
    IMAP_TLS=$tls
    HOME=$ROOT/home/probe
    set +a
    exec /usr/sbin/couriertcpd -address=127.0.0.1 -nodnslookup -noidentlookup \
        -maxprocs=20 -maxperip=20 "$port" "$@"
}

( serve "$PLAIN" YES 0 /usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir ) &
( serve "$TLS" NO 1 /usr/bin/couriertls -server -tcpd \
    /usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir ) &
( serve "$PREAUTH" NO 1 /usr/bin/couriertls -server -tcpd \
    /usr/bin/setpriv --reuid "$MAILUID" --regid "$MAILUID" --clear-groups \
    /bin/sh -c 'cd "$HOME" && exec /usr/bin/imapd Maildir' ) &
wait
