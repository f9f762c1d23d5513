"""Staff roles, and the two capabilities that cut across routes: seeing location history, and fleet-wide scope.

A user has exactly one role and either a set of depots or all depots (``None``). Roles are data, not code
paths: which routes a role may call is declared in ``cloud_sync.api.access.ACCESS``.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # users, tokens, devices, everything; always fleet-wide
    FLEET_MANAGER = "fleet_manager"  # vehicles, installer tokens, positions of their depots
    DISPATCHER = "dispatcher"  # live positions and events of their depots
    TECHNICIAN = "technician"  # faults, work orders, data health: never location history
    COMPLIANCE_OFFICER = "compliance_officer"  # DVIR, driving hours, events
    INSTALLER = "installer"  # registers devices in their depot, checks data health after fitting
    AUDITOR = "auditor"  # reads and verifies the audit trail
    EXECUTIVE = "executive"  # read-only overview: vehicle list without positions, KPIs


ALL_ROLES: frozenset[Role] = frozenset(Role)
#: Roles that may see where a vehicle (hence its driver) is or was. Location history of employees is personal
#: data (GDPR Art. 4(1)); every such read is written to the audit trail by ``cloud_sync.api.access``.
SEES_LOCATION: frozenset[Role] = frozenset({Role.ADMIN, Role.FLEET_MANAGER, Role.DISPATCHER})
#: Roles that are always fleet-wide, whatever depots their user row names.
FLEET_WIDE: frozenset[Role] = frozenset({Role.ADMIN, Role.AUDITOR})


def parse_role(text: str) -> Role:
    """The role named ``text``; ``ValueError`` listing the valid names otherwise."""
    try:
        return Role(text)
    except ValueError:
        raise ValueError(f"unknown role {text!r}; one of {', '.join(sorted(ALL_ROLES))}") from None
