"""check_imap: a tolerant IMAP/IMAPS/STARTTLS monitoring plugin, and notify_on_change.

Nothing is imported here on purpose: every command starts as fast as Python allows.
"""

__version__ = "0.1.0"

PROG = "check_imap"
UNKNOWN = 3  # the plugin exit code of --help, --version and every usage error
