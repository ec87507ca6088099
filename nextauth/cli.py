"""nextauth: run ns, sfs, mc (one per process in production, or all in one for a first look) and the IdP.

gevent must patch the standard library before anything else imports it, hence the first lines; the command
line itself is ``nextauth.commandline``.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from nextauth.commandline import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
