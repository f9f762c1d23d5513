"""The signal catalog flattened into arrays for the ``j1939_decode`` kernel (built once at start)."""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from edge_agent.decoding.catalog import FieldLayout, SignalCatalog


@dataclass(frozen=True, slots=True)
class CatalogArrays:
    """Arrays in the layout ``native/j1939_decode_py.py`` documents; ``fields[i]`` names field i."""

    pgns: array
    first: array
    start: array
    length: array
    is_signed: array
    scale: array
    offset: array
    missing_from: array
    error_value: array
    fields: tuple[FieldLayout, ...]

    def kernel_args(self) -> tuple[array, ...]:
        return (self.pgns, self.first, self.start, self.length, self.is_signed, self.scale, self.offset,
                self.missing_from, self.error_value)


def compile_catalog(catalog: SignalCatalog) -> CatalogArrays:
    pgns, first = array("I"), array("I", [0])
    start, length, is_signed = array("H"), array("B"), array("B")
    scale, offset, missing_from, error_value = array("d"), array("d"), array("Q"), array("Q")
    fields: list[FieldLayout] = []
    for pgn in sorted(catalog.by_pgn):
        for f in catalog.by_pgn[pgn].fields:
            if f.start + f.length > 64:
                continue  # beyond one classic frame: decoded on the reassembled-message path only
            fields.append(f)
            start.append(f.start)
            length.append(f.length)
            is_signed.append(1 if f.signed else 0)
            scale.append(f.scale)
            offset.append(f.offset)
            missing_from.append(f.missing_from or 0)
            error_value.append(f.error_value or 0)
        pgns.append(pgn)
        first.append(len(fields))
    return CatalogArrays(pgns, first, start, length, is_signed, scale, offset, missing_from, error_value,
                         tuple(fields))
