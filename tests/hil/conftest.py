"""HIL fixtures (``hil_rig``, ``run_scenario``) for the tests in this folder; see hil/pytest_plugin.py."""

from hil.pytest_plugin import hil_rig, run_scenario

__all__ = ["hil_rig", "run_scenario"]
