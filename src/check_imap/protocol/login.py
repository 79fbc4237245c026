"""How to log in: AUTHENTICATE PLAIN where offered (SASL, RFC 4616), else LOGIN."""

from __future__ import annotations

from .imapstr import astring_parts
from .records import Credentials

MECHANISM = "AUTHENTICATE PLAIN"


class LoginCommand:
    """The command to send; ``pending`` goes after the server's ``+`` continuation."""

    __slots__ = ("args", "mechanism", "name", "pending", "shown")

    def __init__(
        self,
        name: str,
        args: tuple[list[bytes], ...],
        shown: str,
        mechanism: str,
        pending: tuple[bytes, ...] = (),
    ) -> None:
        self.name = name
        self.args = args
        self.shown = shown  # the transcript's line: never the secret
        self.mechanism = mechanism
        self.pending = pending


def login_command(creds: Credentials, caps: tuple[str, ...]) -> LoginCommand | None:
    """None when the server offers no way to log in (LOGINDISABLED, no AUTH=PLAIN)."""
    if "AUTH=PLAIN" in caps:
        import base64  # only a login needs it

        token = base64.b64encode(
            b"\0" + creds.user.encode("utf-8") + b"\0" + creds.password.encode("utf-8")
        )
        if "SASL-IR" in caps:  # RFC 4959: the token rides on the command line
            args = ([b"PLAIN"], [token])
            return LoginCommand("AUTHENTICATE", args, "PLAIN [credentials redacted]", MECHANISM)
        return LoginCommand("AUTHENTICATE", ([b"PLAIN"],), "PLAIN", MECHANISM, (token + b"\r\n",))
    if "LOGINDISABLED" in caps:
        return None
    user = '"' + "".join(ch if ch.isprintable() else "?" for ch in creds.user)[:64] + '"'
    args = (astring_parts(creds.user), astring_parts(creds.password))
    return LoginCommand("LOGIN", args, f"{user} [password redacted]", "LOGIN")
