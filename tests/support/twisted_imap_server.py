# mypy: disable-error-code="no-untyped-call,arg-type,list-item,assignment,misc,no-any-return"
# (zope.interface and the untyped parts of Twisted defeat mypy here; the types are still given)
"""A small IMAP4 server on Twisted's ``twisted.mail.imap4.IMAP4Server`` (run as a script).

    python twisted_imap_server.py HOST PLAIN_PORT TLS_PORT CERT KEY USER PASSWORD_FILE

PLAIN_PORT offers STARTTLS (and, as Twisted does, LOGINDISABLED until TLS); TLS_PORT is
implicit TLS. One user, checked by an in-memory credentials checker, with one account
whose mailboxes live in memory for the life of the process (APPEND works, so the fixture
fills INBOX through IMAP like for the other servers). Everything protocol-side is
Twisted's own: this file only supplies the mailbox storage that Twisted leaves abstract.
"""

from __future__ import annotations

import io
import sys
from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet import protocol, reactor, ssl
from twisted.mail import imap4
from zope.interface import implementer


@implementer(imap4.IMessage)
class Message:
    def __init__(self, body: bytes, flags: list[str], uid: int) -> None:
        self.body, self.flags, self.uid = body, flags, uid

    def getUID(self) -> int:
        return self.uid

    def getFlags(self) -> list[str]:
        return self.flags

    def getInternalDate(self) -> str:
        return "Thu, 01 Jan 2026 00:00:00 +0000"

    def getHeaders(self, negate: bool, *names: str) -> dict[str, str]:
        head = self.body.split(b"\r\n\r\n", 1)[0].decode()
        headers = dict(line.split(": ", 1) for line in head.split("\r\n") if ": " in line)
        wanted = {n.lower() for n in names}
        return {k: v for k, v in headers.items() if (k.lower() in wanted) != negate or not names}

    def getBodyFile(self) -> io.BytesIO:
        return io.BytesIO(self.body.split(b"\r\n\r\n", 1)[-1])

    def getSize(self) -> int:
        return len(self.body)

    def isMultipart(self) -> bool:
        return False

    def getSubPart(self, part: int) -> None:
        raise IndexError(part)


@implementer(imap4.IMailbox, imap4.IMailboxInfo)
class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.listeners: list[Any] = []
        self.next_uid = 1

    def getFlags(self) -> list[str]:
        return ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]

    def getHierarchicalDelimiter(self) -> str:
        return "/"

    def getUIDValidity(self) -> int:
        return 42

    def getUIDNext(self) -> int:
        return self.next_uid

    def getUID(self, message: int) -> int:
        return self.messages[message - 1].uid

    def getMessageCount(self) -> int:
        return len(self.messages)

    def getRecentCount(self) -> int:
        return 0

    def getUnseenCount(self) -> int:
        return sum("\\Seen" not in m.flags for m in self.messages)

    def isWriteable(self) -> bool:
        return True

    def destroy(self) -> None:
        self.messages = []

    def requestStatus(self, names: list[str]) -> dict[str, int]:
        return imap4.statusRequestHelper(self, names)

    def addListener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def removeListener(self, listener: Any) -> None:
        self.listeners.remove(listener)

    def addMessage(self, message: Any, flags: Any = (), date: Any = None) -> Any:
        body = message.read() if hasattr(message, "read") else message
        flag_list = [f.decode() if isinstance(f, bytes) else f for f in flags]
        self.messages.append(Message(body, flag_list, self.next_uid))
        self.next_uid += 1
        from twisted.internet.defer import succeed

        return succeed(None)

    def expunge(self) -> list[int]:
        return []

    def fetch(self, messages: Any, uid: bool) -> list[tuple[int, Message]]:
        numbered = list(enumerate(self.messages, 1))
        if not numbered:
            return []
        last = numbered[-1][1].uid if uid else len(numbered)
        messages.last = last
        return [(n, m) for n, m in numbered if (m.uid if uid else n) in messages]

    def store(self, messages: Any, flags: Any, mode: int, uid: bool) -> dict[int, list[str]]:
        return {}


class Account(imap4.MemoryAccount):
    def _emptyMailbox(self, name: str, id: int) -> Mailbox:
        return Mailbox()


@implementer(IRealm)
class Realm:
    def __init__(self, user: str) -> None:
        self.account = Account(user)
        self.account.addMailbox("INBOX")

    def requestAvatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> Any:
        if imap4.IAccount not in interfaces:
            raise NotImplementedError(interfaces)
        return imap4.IAccount, self.account, lambda: None


class Factory(protocol.ServerFactory):
    def __init__(self, portal: Portal, context: ssl.DefaultOpenSSLContextFactory) -> None:
        self.portal, self.context = portal, context

    def buildProtocol(self, addr: Any) -> imap4.IMAP4Server:
        server = imap4.IMAP4Server(contextFactory=self.context)
        server.portal = self.portal
        server.factory = self
        return server


def main(argv: list[str]) -> None:
    host, plain, tls, cert, key, user, password_file = argv
    with open(password_file, "rb") as handle:
        password = handle.readline().rstrip(b"\r\n")
    checker = InMemoryUsernamePasswordDatabaseDontUse()
    checker.addUser(user.encode(), password)  # IMAP hands Twisted the user name as bytes
    portal = Portal(Realm(user), [checker])
    context = ssl.DefaultOpenSSLContextFactory(key, cert)
    factory = Factory(portal, context)
    reactor.listenTCP(int(plain), factory, interface=host)
    reactor.listenSSL(int(tls), factory, context, interface=host)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
