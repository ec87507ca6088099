"""Rows the HTTP benchmark measures in slices are combined into one (bench/wrk.py): the rate over all the
slices, percentiles the median of the slices', errors summed."""

import pytest

from bench.wrk import WrkResult, combined


def _slice(requests: int, seconds: float, p99: float, errors: int = 0) -> WrkResult:
    return WrkResult(
        requests=requests,
        seconds=seconds,
        per_second=requests / seconds,
        p50_ms=p99 / 4,
        p90_ms=p99 / 2,
        p99_ms=p99,
        max_ms=p99 * 2,
        socket_errors=errors,
        status_errors=0,
        connections=10,
    )


def test_slices_combine_into_the_rate_of_the_whole_run() -> None:
    row = combined([_slice(1000, 1.0, 8.0), _slice(1000, 4.0, 4.0, errors=1), _slice(1000, 5.0, 6.0)])
    assert row.requests == 3000 and row.seconds == pytest.approx(10.0)
    assert row.per_second == pytest.approx(300.0)  # the whole run's, not the mean of the slices' rates
    assert row.p99_ms == 6.0 and row.p50_ms == 1.5
    assert row.max_ms == 16.0
    assert row.errors == 1 and row.connections == 10


def test_no_slices_is_an_error() -> None:
    with pytest.raises(ValueError):
        combined([])
