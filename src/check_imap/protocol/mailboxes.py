"""The mailbox commands (STATUS, EXAMINE, GETQUOTAROOT) and what their untagged data say."""

from __future__ import annotations

from .imapstr import astring_parts, encode_mailbox, paren_pairs, quota_triples, read_astring
from .reader import Response, decode, number
from .records import MailboxStatus, Plan, ProtocolError

MAX_QUOTA_RESOURCES = 100
"""Quota resources kept per mailbox (RFC 9208 defines six)."""

Work = list[tuple[str, MailboxStatus]]


def plan_mailboxes(plan: Plan, caps: tuple[str, ...]) -> Work:
    work: Work = []
    for name in plan.mailboxes:
        box = MailboxStatus(name)
        # STATUS before EXAMINE: RFC 3501 discourages STATUS on the selected mailbox.
        work += [("STATUS", box), ("EXAMINE", box)]
        if plan.quota and "QUOTA" in caps:
            work.append(("GETQUOTAROOT", box))
    return work


def arguments(command: str, box: MailboxStatus) -> tuple[list[bytes], ...]:
    mailbox = astring_parts(encode_mailbox(box.name))
    return (mailbox, [b"(MESSAGES RECENT UNSEEN)"]) if command == "STATUS" else (mailbox,)


def take_untagged(resp: Response, command: str, box: MailboxStatus) -> bool:
    """Keep what ``resp`` says of ``box``; False if it answers nothing we asked.

    Numbers are parsed at once and only the values are kept, so a chatty server
    costs no memory. A malformed number is a ProtocolError naming the response.
    """
    try:
        if command == "STATUS" and resp.kind == "STATUS":
            pairs = paren_pairs(decode(resp.raw))
            box.messages = pairs.get("MESSAGES", box.messages)
            box.recent = pairs.get("RECENT", box.recent)
            box.unseen = pairs.get("UNSEEN", box.unseen)
        elif command == "EXAMINE" and resp.text.upper().startswith("EXISTS"):
            box.exists = number(resp.kind, "EXISTS")
        elif command == "GETQUOTAROOT" and resp.kind == "QUOTAROOT":
            box.quota_root = read_astring(read_astring(resp.text)[1])[0] or None
        elif command == "GETQUOTAROOT" and resp.kind == "QUOTA":
            box.quota = box.quota if box.quota is not None else {}
            if len(box.quota) < MAX_QUOTA_RESOURCES:
                box.quota.update(quota_triples(decode(resp.raw)))
        else:
            return False
    except ProtocolError as exc:
        name = "EXISTS" if command == "EXAMINE" else resp.kind[:20]  # "* n EXISTS": n is no name
        raise ProtocolError(f"{exc} (the {name} response to {command})") from None
    return True


def finish(command: str, box: MailboxStatus, reply: Response) -> None:
    """The tagged reply: a refusal is recorded, never fatal to the session."""
    if command == "GETQUOTAROOT":
        if reply.kind == "OK":
            box.quota = box.quota if box.quota is not None else {}  # {}: no limits set
        else:
            box.quota, box.quota_root, box.quota_error = None, None, reply.said()
    elif reply.kind != "OK" and box.error is None:
        box.error = f"{command} {reply.said()}"
