"""Errors of the compliance workflows; the API maps them to 404, 409 and 422."""

from __future__ import annotations

from edge_agent.errors import FleetError


class ComplianceError(FleetError):
    """Base of the compliance errors."""


class NotFound(ComplianceError):
    """No such driver, vehicle or report."""


class Conflict(ComplianceError):
    """The request contradicts stored state (a report already certified, a review before certification)."""


class Invalid(ComplianceError):
    """The request itself is wrong (an inspection item missing, a defect on an item marked ok)."""
