"""What the benchmark pages hold against their goals: a ratio of two HTTP rows is the median of the ratios of
their slices taken in the same turn (bench/forward_auth.py); server CPU per login is the median of its slices
(bench/qr_login.py)."""

import pytest

from bench.forward_auth import TRAEFIK_NOAUTH, TRAEFIK_PLUGIN, Row, _ratios
from bench.qr_login import CpuSlices
from bench.wrk import WrkResult, combined

PLUGIN_RATIO = "Traefik with the nextAuth plugin : Traefik without auth"


def _slice(per_second: float) -> WrkResult:
    return WrkResult(
        requests=int(per_second),
        seconds=1.0,
        per_second=per_second,
        p50_ms=1.0,
        p90_ms=2.0,
        p99_ms=3.0,
        max_ms=4.0,
        socket_errors=0,
        status_errors=0,
        connections=50,
    )


def _row(target: str, rates: list[float]) -> Row:
    pieces = [_slice(rate) for rate in rates]
    return Row(target, 50, combined(pieces), slices=rates)


def test_a_ratio_is_the_median_of_the_ratios_of_slices_taken_in_turn() -> None:
    # The machine ran at half speed during the third turn: both rows' slices show it.
    rows = [_row(TRAEFIK_NOAUTH, [1000, 1000, 500]), _row(TRAEFIK_PLUGIN, [800, 900, 200])]
    ((_, value, basis),) = [found for found in _ratios(rows, []) if found[0] == PLUGIN_RATIO]
    assert value == pytest.approx(0.8)  # 0.8, 0.9 and 0.4; over the whole run it would be 0.76
    assert basis == "50 connections (slices: 0.80, 0.90, 0.40)"


def test_rows_without_paired_slices_are_compared_over_the_whole_run() -> None:
    # A row that lost a slice (its target failed in a turn) has no partner for every slice.
    rows = [_row(TRAEFIK_NOAUTH, [1000, 1000, 500]), _row(TRAEFIK_PLUGIN, [800, 900])]
    ((_, value, basis),) = [found for found in _ratios(rows, []) if found[0] == PLUGIN_RATIO]
    assert value == pytest.approx((1700 / 2) / (2500 / 3))  # each row's rate over all its slices
    assert basis == "50 connections"


def test_server_cpu_per_login_is_the_median_of_its_slices() -> None:
    found = CpuSlices("SQLite", server_ms=[4.2, 6.9, 4.4, 4.6, 4.3], phone_ms=[3.0] * 5, errors=0)
    assert found.server_median == pytest.approx(4.4)
