"""The Python floor: what any Python program must pay for the same work, stdlib only.

usage: floor.py plain|tls|starttls HOST PORT [CAFILE]
       floor.py notify STATEFILE KEY

IMAP modes: connect, read the greeting, [STARTTLS], send ``a1 LOGOUT``, read up to the
tagged reply. TLS is verified against CAFILE (else the system store) for HOST, as
check_imap does by default. Exit 0 when the greeting is ``* OK`` and LOGOUT got BYE and
``a1 OK``, else 2.

notify: what a notify_on_change run that changes nothing cannot avoid: open the SQLite
state database, take its write lock (BEGIN IMMEDIATE), read the key's row, commit.
Exit 0 when the key is there, else 2.
"""

import sys


def imap(mode: str, host: str, port: int, cafile: "str | None") -> int:
    import socket

    sock = socket.create_connection((host, port), timeout=10)
    context = None
    if mode != "plain":
        import ssl

        context = ssl.create_default_context(cafile=cafile)
    if context is not None and mode == "tls":
        sock = context.wrap_socket(sock, server_hostname=host)
    f = sock.makefile("rb")
    greeting = f.readline()
    if context is not None and mode == "starttls":
        sock.sendall(b"a0 STARTTLS\r\n")
        if not f.readline().startswith(b"a0 OK"):
            return 2
        sock = context.wrap_socket(sock, server_hostname=host)
        f = sock.makefile("rb")
    sock.sendall(b"a1 LOGOUT\r\n")
    bye = ok = False
    for _ in range(100):  # bounded: a healthy server sends two lines
        line = f.readline()
        if not line:
            break
        bye = bye or line.startswith(b"* BYE")
        if line.startswith(b"a1 "):
            ok = line.startswith(b"a1 OK")
            break
    sock.close()
    return 0 if greeting.startswith(b"* OK") and bye and ok else 2


def notify(path: str, key: str) -> int:
    import sqlite3

    db = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT observed FROM keys WHERE key = ?", (key.encode(),)).fetchone()
        db.execute("COMMIT")
        return 0 if row is not None else 2
    finally:
        db.close()


def main() -> int:
    if sys.argv[1] == "notify":
        return notify(sys.argv[2], sys.argv[3])
    cafile = sys.argv[4] if len(sys.argv) > 4 else None
    return imap(sys.argv[1], sys.argv[2], int(sys.argv[3]), cafile)


if __name__ == "__main__":
    sys.exit(main())
