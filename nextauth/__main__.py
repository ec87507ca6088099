"""``python -m nextauth``: the same as the ``nextauth`` command."""

import sys

from nextauth.cli import main

sys.exit(main())
