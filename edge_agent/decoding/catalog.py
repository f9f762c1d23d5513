"""The signal catalog: the profile's signal map compiled once against its DBC.

cantools parses the DBC; at start we turn each mapped signal into a fixed bit layout (start, length,
scale, offset, special-value limits) so that per-frame work is a few integer operations rather than
a general decode. Tests check every layout against ``cantools``' own ``decode`` on random payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from edge_agent.errors import ProfileError
from firmware_profiles import Profile


@dataclass(frozen=True, slots=True)
class FieldLayout:
    """One mapped signal's place in its message (Intel byte order, as J1939 uses throughout)."""

    signal: str
    unit: str
    start: int
    length: int
    signed: bool
    scale: float
    offset: float
    #: raw values at or above this are "not available"/"error"/reserved (None: no such range)
    missing_from: int | None
    #: for discrete fields, the raw value meaning "error" (counted apart from "not available")
    error_value: int | None

    @property
    def mask(self) -> int:
        return (1 << self.length) - 1

    @property
    def bytes_needed(self) -> int:
        return (self.start + self.length + 7) // 8


@dataclass(frozen=True, slots=True)
class MessageLayout:
    """A DBC message with at least one mapped signal."""

    name: str
    pgn: int
    fields: tuple[FieldLayout, ...]


def special_value_limits(length: int) -> tuple[int | None, int | None]:
    """J1939-71 5.1.4 ranges for a parameter ``length`` bits long: (missing_from, error_value).

    Measured values of 8+ bits are valid up to 0xFA.. in the top byte; 0xFB..-0xFD.. are reserved,
    0xFE.. is "error" and 0xFF.. "not available", so all of 0xFB.. upwards is missing. Discrete
    values of 2-7 bits use all-ones for "not available" and all-ones-minus-one for "error".
    """
    if length >= 8:
        return 0xFB << (length - 8), (0xFE << (length - 8))
    if length >= 2:
        return (1 << length) - 2, (1 << length) - 2
    return None, None


def pgn_of(frame_id: int) -> int:
    """The PGN of a 29-bit identifier (J1939-21 5.1.2; PDU1 drops the destination byte)."""
    pf = (frame_id >> 16) & 0xFF
    dp_edp = (frame_id >> 24) & 0x3
    if pf < 240:
        return (dp_edp << 16) | (pf << 8)
    return (dp_edp << 16) | (pf << 8) | ((frame_id >> 8) & 0xFF)


class SignalCatalog:
    """Immutable map PGN -> message layout for a J1939 profile."""

    def __init__(self, messages: Mapping[int, MessageLayout]) -> None:
        self.by_pgn: Mapping[int, MessageLayout] = MappingProxyType(dict(messages))

    @classmethod
    def from_profile(cls, profile: Profile) -> SignalCatalog:
        grouped: dict[str, list[FieldLayout]] = {}
        for spec in profile.signals.values():
            message = profile.database.get_message_by_name(spec.message)
            sig = message.get_signal_by_name(spec.dbc_signal)
            if sig.byte_order != "little_endian":
                raise ProfileError(
                    f"{profile.name}: {spec.message}.{spec.dbc_signal} is big-endian; J1939 profiles "
                    "use Intel byte order"
                )
            if spec.j1939_special_values and not sig.is_signed:
                missing_from, error_value = special_value_limits(sig.length)
            else:
                missing_from, error_value = None, None
            grouped.setdefault(spec.message, []).append(
                FieldLayout(
                    signal=spec.name,
                    unit=spec.unit or (sig.unit or ""),
                    start=sig.start,
                    length=sig.length,
                    signed=sig.is_signed,
                    scale=float(sig.scale),
                    offset=float(sig.offset),
                    missing_from=missing_from,
                    error_value=error_value,
                )
            )
        by_pgn: dict[int, MessageLayout] = {}
        for msg_name, fields in grouped.items():
            message = profile.database.get_message_by_name(msg_name)
            if not message.is_extended_frame:
                raise ProfileError(f"{profile.name}: J1939 message {msg_name} must have a 29-bit id")
            pgn = pgn_of(message.frame_id)
            if pgn in by_pgn:
                other = by_pgn[pgn].name
                raise ProfileError(f"{profile.name}: messages {other} and {msg_name} share PGN {pgn}")
            by_pgn[pgn] = MessageLayout(name=msg_name, pgn=pgn, fields=tuple(fields))
        return cls(by_pgn)


def extract(layout: MessageLayout, data: bytes) -> tuple[list[tuple[FieldLayout, float]], int, int, int]:
    """Decode ``data`` with ``layout``.

    Returns (values, not_available, errors, short): the fields with a valid value, how many were
    "not available", how many carried the "error" indicator, and how many the frame was too short for.
    """
    word = int.from_bytes(data, "little")
    have = len(data)
    values: list[tuple[FieldLayout, float]] = []
    not_available = errors = short = 0
    for f in layout.fields:
        if f.bytes_needed > have:
            short += 1
            continue
        raw = (word >> f.start) & f.mask
        if f.missing_from is not None and raw >= f.missing_from:
            if raw == f.error_value or (f.length >= 8 and raw >> (f.length - 8) == 0xFE):
                errors += 1
            else:
                not_available += 1
            continue
        if f.signed and raw >> (f.length - 1):
            raw -= 1 << f.length
        values.append((f, raw * f.scale + f.offset))
    return values, not_available, errors, short
