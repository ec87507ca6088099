"""nextauth: run ns, sfs, mc (one per process in production, or all in one for a first look) and the IdP.

gevent must patch the standard library before anything else imports it, hence the first lines; the command
line itself is ``nextauth.commandline``.
"""

from importlib import metadata
from typing import Any

from gevent import monkey

# gevent announces each module it patches to plugins found through entry points, scanning every installed
# package each time (a fifth of a second in all, at every start of a service or command): the installed
# packages do not change while it patches, so one scan per group serves them all.
_scan_entry_points = metadata.entry_points
_scanned: dict[str, metadata.EntryPoints] = {}


def _entry_points_once(**selection: str) -> Any:  # what entry_points() answers for that selection
    if set(selection) != {"group"}:  # not gevent's question: asked of the packages as they are
        return _scan_entry_points(**selection)
    group = selection["group"]
    if group not in _scanned:
        _scanned[group] = _scan_entry_points(group=group)
    return _scanned[group]


metadata.entry_points = _entry_points_once  # type: ignore[assignment]
try:
    monkey.patch_all()
finally:
    metadata.entry_points = _scan_entry_points

import sys  # noqa: E402

from nextauth.commandline import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
