"""The cloud workflows' error classes, in the product's one exception tree (``edge_agent.errors``).

Each workflow (``maintenance``, ``compliance``) subclasses these in its own ``errors`` module;
``cloud_sync.api.workflow.run`` answers them as HTTP: ``NotFound`` 404, ``Conflict`` 409 (the request
clashes with stored state), any other ``WorkflowError`` (``Invalid``) 422.
"""

from __future__ import annotations

from edge_agent.errors import FleetError


class WorkflowError(FleetError):
    """A workflow request that cannot be carried out; the message says why."""


class NotFound(WorkflowError):
    """The request names something that does not exist."""


class Conflict(WorkflowError):
    """The request contradicts stored state."""


class Invalid(WorkflowError):
    """The request itself is malformed."""
