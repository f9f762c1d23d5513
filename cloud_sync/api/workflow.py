"""Calling into a workflow module (maintenance, compliance) from a route: its errors as HTTP answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import HTTPException, status

from cloud_sync.api.schemas import Message
from cloud_sync.errors import Conflict, NotFound, WorkflowError

T = TypeVar("T")

#: The answers ``run`` can give, for the routes' OpenAPI ``responses``.
ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Message}, 403: {"model": Message}, 404: {"model": Message},
    409: {"model": Message, "description": "conflicts with stored state"},
    422: {"model": Message, "description": "invalid request"},
}


def run(fn: Callable[[], T]) -> T:
    """``fn()``, with ``NotFound`` as 404, ``Conflict`` as 409 and any other ``WorkflowError`` as 422."""
    try:
        return fn()
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except WorkflowError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
