"""Errors of the compliance workflows; the API maps them to 404, 409 and 422."""

from __future__ import annotations

from cloud_sync import errors


class ComplianceError(errors.WorkflowError):
    """Base of the compliance errors."""


class NotFound(ComplianceError, errors.NotFound):
    """No such driver, vehicle or report."""


class Conflict(ComplianceError, errors.Conflict):
    """The request contradicts stored state (a report already certified, a review before certification)."""


class Invalid(ComplianceError, errors.Invalid):
    """The request itself is wrong (an inspection item missing, a defect on an item marked ok)."""
