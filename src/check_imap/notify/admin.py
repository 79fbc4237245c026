"""notify_on_change status, forget and flush."""

from __future__ import annotations

from check_imap.notify import UsageError, engine, policy
from check_imap.notify.args import PROG, positive_duration, retries_arg
from check_imap.notify.cli import EXIT_FAILED, EXIT_OK, clock, printable, read_now, warn, with_store
from check_imap.notify.store import Store
from check_imap.notify.usage import parser_class, typed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def status_rows(store: Store, now: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    outbox = engine.pending(store, now)
    by_key = {str(e["key"]): e for e in outbox}
    counts = store.suppressed_counts()
    rows: list[dict[str, Any]] = []
    for key, ks in store.all_keys():
        if ks is None:
            rows.append({"key": key, "state": None, "damaged": True})
            continue
        waiting = ks.observed != ks.confirmed
        entry = by_key.get(key)
        rows.append(
            {
                "key": key,
                "state": ks.confirmed,
                "since": engine.iso(ks.since) or None,
                "confirmed": not waiting,
                "pending_state": ks.observed if waiting else None,
                "pending_count": ks.streak if waiting else 0,
                "last_notified": engine.iso(ks.last_notified) or None,
                "notified_state": ks.notified,
                "suppressed": counts.get(key, 0),
                "flapping": ks.flapping,
                "failed_sends": entry["attempts"] if entry else 0,
                "outbox": entry,
            }
        )
    return rows, outbox


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("KEY", "STATE", "SINCE", "CONFIRMED", "LAST NOTIFIED", "SUPPRESSED", "OUTBOX")
    lines = [head]
    for row in rows:
        if row.get("damaged"):
            lines.append((printable(row["key"]), "-", "-", "damaged row", "-", "-", "-"))
            continue
        confirmed = "confirmed"
        if not row["confirmed"]:
            confirmed = f"pending {row['pending_state']} ({row['pending_count']}x)"
        if row["flapping"]:
            confirmed += ", flapping"
        last = row["last_notified"] or "-"
        if row["notified_state"] and row["last_notified"]:
            last += f" ({row['notified_state']})"
        box = "-"
        entry = row["outbox"]
        if entry:
            box = f"{entry['type']} {entry['state']}: "
            if entry["sending"]:
                box += "sending"
            else:
                box += f"{entry['attempts']} failed, next {entry['next_try']}"
        lines.append(
            (printable(row["key"]), row["state"] or "-", row["since"] or "-", confirmed,
             last, str(row["suppressed"]), printable(box))
        )  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines
    )


def admin(argv: list[str]) -> int:
    action = argv[0]
    parser = parser_class()(prog=f"{PROG} {action}")
    if action == "forget":
        parser.add_argument("key", metavar="KEY")
    elif action == "status":
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    else:
        parser.add_argument("--retries", type=typed(retries_arg), default=2, metavar="N")
        parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--state-file", metavar="PATH")
    parser.add_argument("--lock-timeout", type=typed(positive_duration), default=10.0)
    args = parser.parse_args(argv[1:])
    now = read_now()

    def status(store: Store) -> int:
        rows, outbox = status_rows(store, now)
        if args.json:
            import json

            summary = store.suppressed_summary()[0]
            print(json.dumps({"keys": rows, "suppressed": summary, "outbox": outbox}))
        else:
            print(_table(rows))
        return EXIT_OK

    def forget(store: Store) -> int:
        store.begin()
        try:
            found = store.forget(args.key)
            store.commit()
        except BaseException:
            store.rollback()
            raise
        if not found:
            raise UsageError(f"no such key: {printable(args.key)}")
        print(f"forgot {printable(args.key)}")
        return EXIT_OK

    def flush(store: Store) -> int:
        from check_imap.notify.children import arm_signals

        arm_signals()
        ctx = engine.Context(store, clock(), warn, policy.Options(), args.retries, args.verbose)
        return EXIT_FAILED if engine.flush(ctx, 100, 3600.0) else EXIT_OK

    actions = {"status": status, "forget": forget, "flush": flush}
    return with_store(args.state_file, args.lock_timeout, actions[action], action != "status")
