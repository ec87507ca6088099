"""Read a pyinstrument session saved by ``bench.wrapper`` and say where a server's time went.

Every greenlet shows up as a thread of its own in the session; the figures here add them all up. Time in
gevent's hub loop is the process waiting for the network (idle); the rest is "busy", and each cost centre
is given as a share of it:

- by function, self time (time in that function's own code, C calls it makes included);
- by package, self time (site-packages by distribution folder, this repository by top-level folder,
  the standard library as "stdlib"; C functions count under the package that called them, as
  "C code called from ...");
- this repository's functions by inclusive time (their callees included, each call counted once even
  when the function recurses): where our own code spends it.
"""

import sysconfig
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import REPO

OWN_PACKAGES = ("authserver", "idp", "sigmai", "nextauth_core", "mobilesdk")
STDLIB = str(Path(sysconfig.get_paths()["stdlib"]).resolve())


@dataclass
class CostCentre:
    name: str
    where: str
    seconds: float


@dataclass
class ProfileSummary:
    title: str
    workload: str
    wall_seconds: float
    idle_seconds: float
    samples: int
    by_function: list[CostCentre] = field(default_factory=list)
    by_package: list[CostCentre] = field(default_factory=list)
    own_inclusive: list[CostCentre] = field(default_factory=list)
    note: str = ""

    @property
    def busy_seconds(self) -> float:
        return max(self.wall_seconds - self.idle_seconds, 1e-9)


def _package(file_path: str | None) -> str:
    if not file_path or file_path.startswith("<"):
        return "built-in"
    if "site-packages/" in file_path:
        return file_path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    path = Path(file_path)
    try:
        return path.resolve().relative_to(REPO).parts[0].removesuffix(".py")
    except ValueError:
        pass
    if str(path.resolve()).startswith(STDLIB):
        return "stdlib"
    return "other"


def _where(frame: object) -> str:
    path = getattr(frame, "file_path", None) or ""
    short = getattr(frame, "file_path_short", None) or path
    return f"{short}:{getattr(frame, 'line_no', '')}"


def _is_idle(frame: object) -> bool:
    path = getattr(frame, "file_path", None) or ""
    return path.endswith("gevent/hub.py") and getattr(frame, "function", "") == "run"


def summarize(path: Path, *, title: str, workload: str, top: int = 15) -> ProfileSummary:
    from pyinstrument.session import Session

    session = Session.load(str(path))
    root = session.root_frame()
    wall = root.time if root is not None else 0.0
    self_by_function: dict[tuple[str, str], float] = defaultdict(float)
    self_by_package: dict[str, float] = defaultdict(float)
    own: dict[tuple[str, str], float] = defaultdict(float)
    idle = 0.0

    def walk(frame: object, own_on_stack: frozenset, caller: str) -> None:
        nonlocal idle
        package = caller
        if not getattr(frame, "is_synthetic", False) and getattr(frame, "file_path", None) != "<thread>":
            key = (str(getattr(frame, "function", "?")), _where(frame))
            seconds = float(getattr(frame, "total_self_time", 0.0))
            package = _package(getattr(frame, "file_path", None))
            if package == "built-in":  # C code: count it where it was called from
                package = f"C code called from {caller}"
            if _is_idle(frame):
                idle += seconds
            elif seconds:
                self_by_function[key] += seconds
                self_by_package[package] += seconds
            if package in OWN_PACKAGES and key not in own_on_stack:
                own[key] += float(getattr(frame, "time", 0.0))
                own_on_stack = own_on_stack | {key}
            if package.startswith("C code called from "):
                package = caller
        for child in getattr(frame, "children", []):
            walk(child, own_on_stack, package)

    if root is not None:
        walk(root, frozenset(), "?")

    def ranked(table: dict, limit: int) -> list[CostCentre]:
        rows = sorted(table.items(), key=lambda item: item[1], reverse=True)[:limit]
        return [
            CostCentre(
                name if isinstance(name, str) else name[0], "" if isinstance(name, str) else name[1], s
            )
            for name, s in rows
        ]

    return ProfileSummary(
        title=title,
        workload=workload,
        wall_seconds=wall,
        idle_seconds=idle,
        samples=session.sample_count,
        by_function=ranked(self_by_function, top),
        by_package=ranked(self_by_package, 12),
        own_inclusive=ranked(own, 10),
    )


def markdown(summary: ProfileSummary) -> str:
    busy = summary.busy_seconds

    def share(seconds: float) -> str:
        return f"{100 * seconds / busy:.1f}%"

    lines = [
        f"### {summary.title}",
        "",
        f"Workload: {summary.workload}. Profiled {summary.wall_seconds:.1f} s of wall time "
        f"({summary.samples:,} samples): busy {busy:.1f} s, "
        f"waiting in gevent's hub {summary.idle_seconds:.1f} s. "
        "Shares below are of the busy time.",
    ]
    if summary.note:
        lines += ["", summary.note]
    lines += ["", "| top functions (self time) | where | s | share |", "|---|---|---:|---:|"]
    lines += [
        f"| `{c.name}` | `{c.where}` | {c.seconds:.2f} | {share(c.seconds)} |" for c in summary.by_function
    ]
    lines += ["", "| by package (self time) | s | share |", "|---|---:|---:|"]
    lines += [f"| {c.name} | {c.seconds:.2f} | {share(c.seconds)} |" for c in summary.by_package]
    if summary.own_inclusive:
        lines += ["", "| our code, inclusive (callees included) | where | s | share |", "|---|---|---:|---:|"]
        lines += [
            f"| `{c.name}` | `{c.where}` | {c.seconds:.2f} | {share(c.seconds)} |"
            for c in summary.own_inclusive
        ]
    return "\n".join(lines) + "\n"


def safely(profile: Callable[[], "ProfileSummary | None"], notes: list[str]) -> "ProfileSummary | None":
    """Run a profiling pass; a failure becomes a note on the page instead of ending the run."""
    try:
        found = profile()
    except Exception as exc:
        notes.append(f"No profile: {type(exc).__name__}: {str(exc)[-300:]}")
        return None
    if found is None:
        notes.append("No profile: the profiled server saved no session.")
    return found


def top_line(summary: ProfileSummary, count: int = 3) -> str:
    """One sentence for the summary page."""
    busy = summary.busy_seconds
    packages = ", ".join(f"{c.name} {100 * c.seconds / busy:.0f}%" for c in summary.by_package[: count + 1])
    functions = ", ".join(f"`{c.name}` {100 * c.seconds / busy:.0f}%" for c in summary.by_function[:count])
    return f"{summary.title}: by package {packages}; top functions {functions}"
