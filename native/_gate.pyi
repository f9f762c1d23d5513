from array import array

def admit(
    ts: array, field: array, source: array, values: array, table: array, n_sources: int,
    slot_spec: array, limit: array, band: array, on_change: array, state: array,
) -> array: ...
