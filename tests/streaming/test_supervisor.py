"""The supervisor's restart policy (backoff, budget, window), on a clock the test moves; the restart of
real queries and of the serving path is proven by tests/chaos."""

from __future__ import annotations

from prometheus_client import REGISTRY

from eventlake.streaming.supervisor import RestartPolicy, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _restarts(component: str) -> float:
    return REGISTRY.get_sample_value("eventlake_pipeline_restarts_total", {"component": component}) or 0.0


def test_backoff_doubles_up_to_its_cap_and_each_restart_is_counted() -> None:
    clock = Clock()
    sup = Supervisor(RestartPolicy(max_restarts=10, window_s=600, backoff_s=1, max_backoff_s=4), clock)
    before = _restarts("q_backoff")
    waits = []
    for _ in range(4):
        assert sup.failed("q_backoff", "OperationalError: connection refused\nmore") is None
        assert sup.failed("q_backoff", "the same failure seen again") is None, "counted once while pending"
        start = clock.now
        while not sup.due("q_backoff"):
            clock.now += 0.5
        waits.append(clock.now - start)
        sup.restarted("q_backoff")
        assert not sup.pending("q_backoff")
    assert waits == [1, 2, 4, 4]
    assert _restarts("q_backoff") - before == 4
    assert sup.summary() == "q_backoff restarted 4x (last error: OperationalError: connection refused)"


def test_more_failures_than_the_budget_within_the_window_stop_the_pipeline() -> None:
    clock = Clock()
    sup = Supervisor(RestartPolicy(max_restarts=2, window_s=60, backoff_s=1, max_backoff_s=1), clock)
    for _ in range(2):
        assert sup.failed("serving", "boom") is None
        clock.now += 1
        sup.restarted("serving")
    why = sup.failed("serving", "boom again")
    assert why is not None and why.startswith("serving failed 3 times within 60 s") and why.endswith("boom again")


def test_failures_older_than_the_window_leave_the_budget() -> None:
    clock = Clock()
    sup = Supervisor(RestartPolicy(max_restarts=1, window_s=60, backoff_s=1, max_backoff_s=1), clock)
    assert sup.failed("q_window", "first") is None
    clock.now += 1
    sup.restarted("q_window")
    clock.now += 120  # a healthy stretch longer than the window
    assert sup.failed("q_window", "second") is None, "the first failure no longer counts"
    assert Supervisor(RestartPolicy(max_restarts=0)).failed("q_zero", "x") is not None, "0: the first stops"


def test_failures_during_an_outage_wait_it_out_and_do_not_count() -> None:
    """A dependency down: restarts every ``max_backoff_s`` for as long as it lasts, the budget untouched;
    with every dependency answering, the same failures use up the budget."""
    clock = Clock()
    sup = Supervisor(RestartPolicy(max_restarts=1, window_s=900, backoff_s=1, max_backoff_s=5), clock)
    for _ in range(50):  # 250 s of outage: 50 failures, each a failed restart
        assert sup.failed("q_outage", "restart failed: connection refused", ["postgres (no answer)"]) is None
        assert not sup.due("q_outage")
        clock.now += 5
        assert sup.due("q_outage"), "the outage's backoff is max_backoff_s"
        sup.retry_failed("q_outage")
    assert sup.failed("q_outage", "restart failed: still refused", ["postgres (no answer)"]) is None
    clock.now += 5
    sup.restarted("q_outage")
    assert sup.summary() == (
        "q_outage restarted 1x (last error: restart failed: still refused), 51 failure(s) during outages"
    )
    assert sup.failed("q_outage", "a bug", []) is None, "the first counted failure is within the budget"
    clock.now += 1
    sup.restarted("q_outage")
    why = sup.failed("q_outage", "the bug again", [])
    assert why is not None and why.startswith("q_outage failed 2 times within 900 s")
