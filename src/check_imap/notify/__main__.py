import sys

from check_imap.notify.cli import main

sys.exit(main())
