"""Errors of the maintenance workflows, in the product's one exception tree (``edge_agent.errors``).

The API maps them to HTTP answers: ``NotFound`` 404, ``Conflict`` 409 (the request clashes with what
is stored: a meter reading that goes backwards, a completed work order), ``Invalid`` 422.
"""

from __future__ import annotations

from cloud_sync import errors


class MaintenanceError(errors.WorkflowError):
    """A maintenance request that cannot be carried out; the message says why."""


class NotFound(MaintenanceError, errors.NotFound):
    """No such program, task, vehicle, reading, issue or work order."""


class Conflict(MaintenanceError, errors.Conflict):
    """The request contradicts stored state (reading goes backwards, work order already completed)."""


class Invalid(MaintenanceError, errors.Invalid):
    """The request itself is malformed (no trigger on a task, due-soon threshold beyond the interval)."""
