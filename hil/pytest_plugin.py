"""Pytest fixtures for HIL scenarios, so test engineers can write their own.

Use them from a ``conftest.py``: ``pytest_plugins = ["hil.pytest_plugin"]`` in the root conftest,
or ``from hil.pytest_plugin import hil_rig, run_scenario  # noqa: F401`` in any other. Then::

    def test_my_depot(run_scenario):
        result = run_scenario("tests/data/hil/my_depot.toml")   # or a bundled name, or a Scenario
        assert result.passed, result.as_dict()

    def test_my_rig(hil_rig):
        rig = hil_rig("van_obd", can_interface="socketcan", can_channel="vcan0")  # skips without vcan0
        result = rig.run()

Each call gets its own directory under ``tmp_path`` (agent.toml, agent.log, data/outbox.db stay there
for the failure report). A scenario that cannot run here (``RigSkip``: no such CAN interface) skips
the test with the rig's reason instead of failing it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hil.can_link import RigSkip
from hil.rig import HilRig, RunResult
from hil.scenario import Scenario, load_scenario, resolve_scenario

ScenarioRef = str | Path | Scenario
RigFactory = Callable[..., HilRig]


def _load(ref: ScenarioRef) -> Scenario:
    if isinstance(ref, Scenario):
        return ref
    return load_scenario(resolve_scenario(str(ref)))


@pytest.fixture
def hil_rig(tmp_path: Path) -> Iterator[RigFactory]:
    """A factory ``hil_rig(scenario, **HilRig options) -> HilRig`` in a fresh directory per call."""
    counter = itertools.count()

    def make(ref: ScenarioRef, **options: object) -> HilRig:
        scenario = _load(ref)
        workdir = tmp_path / f"hil-{next(counter)}-{scenario.name}"
        return HilRig(scenario, workdir, **options)  # type: ignore[arg-type]

    yield make


@pytest.fixture
def run_scenario(hil_rig: RigFactory) -> Callable[..., RunResult]:
    """``run_scenario(scenario, **HilRig options) -> RunResult``; skips when the rig cannot run here."""

    def run(ref: ScenarioRef, **options: object) -> RunResult:
        rig = hil_rig(ref, **options)
        try:
            return rig.run()
        except RigSkip as exc:
            pytest.skip(str(exc))

    return run
