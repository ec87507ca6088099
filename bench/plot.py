"""One PNG of a full run (matplotlib, no display needed): each panel a benchmark, each measured rate next
to its ceiling or reference, and the machine and command in the title."""

import math
from pathlib import Path
from typing import Any

CEILING = "#9aa5b1"
OURS = "#1f6feb"
OTHER = "#d29922"


def _bar_labels(ax: Any, bars: Any, texts: list[str]) -> None:
    for bar, text in zip(bars, texts, strict=True):
        ax.annotate(
            text,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=7,
            xytext=(0, 2),
            textcoords="offset points",
        )


def write(path: Path, *, title: str, sigmai: Any, logins: Any, http: Any, oidc: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    figure.suptitle(title, fontsize=9)

    # sigmai: the server's handshakes/s against the primitive ceiling, per device key.
    ax = axes[0][0]
    if sigmai:
        names = [r.name for r in sigmai]
        x = range(len(names))
        measured = ax.bar([i - 0.2 for i in x], [r.server_per_second for r in sigmai], 0.4, color=OURS)
        ceiling = ax.bar([i + 0.2 for i in x], [r.ceiling_per_second for r in sigmai], 0.4, color=CEILING)
        _bar_labels(ax, measured, [f"{r.server_per_second:,.0f}" for r in sigmai])
        _bar_labels(ax, ceiling, [f"{r.ceiling_per_second:,.0f}" for r in sigmai])
        ax.set_xticks(list(x), [f"{n} device key" for n in names])
        ax.legend(
            [measured, ceiling],
            ["server share, measured", "primitive ceiling"],
            fontsize=8,
            loc="lower right",
        )
    ax.set_title("sigmai handshakes/s, one core", fontsize=10)
    ax.set_ylabel("handshakes/s")

    # logins: rate per phone count and backend.
    ax = axes[0][1]
    if logins:
        backends = list(dict.fromkeys(name for name, _ in logins))
        phones = sorted({row["phones"] for _, row in logins})
        width = 0.8 / max(1, len(backends))
        colors = [OURS, OTHER, CEILING]
        for b, backend in enumerate(backends):
            # Back-to-back rows only: the paced row has 10 phones too, at half of the peak.
            rows = {
                row["phones"]: row for name, row in logins if name == backend and not row.get("pace_seconds")
            }
            xs = [i + (b - (len(backends) - 1) / 2) * width for i in range(len(phones))]
            values = [rows[p]["per_second"] if p in rows else 0 for p in phones]
            bars = ax.bar(xs, values, width, color=colors[b % len(colors)], label=backend)
            _bar_labels(
                ax,
                bars,
                [
                    f"{rows[p]['per_second']:.0f}\np99 {rows[p]['p99_ms']:.0f} ms" if p in rows else ""
                    for p in phones
                ],
            )
        ax.set_xticks(range(len(phones)), [f"{p} phone{'s' if p > 1 else ''}" for p in phones])
        ax.legend(fontsize=8)
        ax.margins(y=0.2)
    ax.set_title("full QR logins/s (both sides on this machine)", fontsize=10)
    ax.set_ylabel("logins/s")

    # forward-auth and HTTP ceilings: the highest concurrency level measured.
    ax = axes[1][0]
    rows = [row for row in (http.rows if http else []) if row.result is not None]
    if rows:
        level = max(row.connections for row in rows)
        rows = [row for row in rows if row.connections == level]
        names = [row.target for row in rows]
        values = [row.result.per_second for row in rows]
        colors = [OURS if ("IdP" in name or "nextAuth" in name) else CEILING for name in names]
        bars = ax.barh(range(len(rows)), values, color=colors)
        ax.set_yticks(range(len(rows)), names, fontsize=7)
        ax.invert_yaxis()
        for bar, row in zip(bars, rows, strict=True):
            ax.annotate(
                f" {row.result.per_second:,.0f}/s, p99 {row.result.p99_ms:.1f} ms",
                (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                va="center",
                fontsize=7,
            )
        ax.set_title(f"forward-auth and its ceilings, wrk, {level} connections", fontsize=10)
        ax.margins(x=0.35)
    else:
        ax.set_title("forward-auth: not measured", fontsize=10)
    ax.set_xlabel("requests/s")

    # OIDC: requests/s per step and provider, log scale (they differ by orders of magnitude).
    ax = axes[1][1]
    measured = [m for m in (oidc.measured if oidc else []) if m.figures]
    if measured:
        steps = ["authorize", "token", "introspection"]
        providers = list(dict.fromkeys(m.provider for m in measured))
        width = 0.8 / len(providers)

        def color(provider: str) -> str:  # ours blue, the reference amber; lighter on all cores
            all_cores = "all cores" in provider
            if provider.startswith("ours"):
                return "#58a6ff" if all_cores else OURS
            return "#e3b341" if all_cores else OTHER

        for p, provider in enumerate(providers):
            by_step = {m.step: m.figures for m in measured if m.provider == provider}
            xs = [i + (p - (len(providers) - 1) / 2) * width for i in range(len(steps))]
            values = [by_step[s]["per_second"] if s in by_step else 0 for s in steps]
            bars = ax.bar(xs, values, width, color=color(provider), label=provider)
            _bar_labels(ax, bars, [f"{v:,.0f}" if v else "" for v in values])
        ax.set_xticks(range(len(steps)), steps)
        ax.set_yscale("log")
        top = max(m.figures["per_second"] for m in measured)
        ax.set_ylim(bottom=10, top=10 ** (math.log10(max(top, 10)) + 0.6))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:,.0f}"))
        ax.legend(fontsize=7, loc="upper left")
    ax.set_title("OIDC requests/s, ours against node oidc-provider", fontsize=10)
    ax.set_ylabel("requests/s (log)")

    figure.tight_layout(rect=(0, 0, 1, 0.95))
    figure.savefig(path, dpi=110)
    plt.close(figure)
