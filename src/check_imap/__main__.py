"""``python -m check_imap``: the same as the ``check_imap`` command."""

from check_imap.cli import main

main()
