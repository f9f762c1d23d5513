from array import array

def find_runs(
    ts: array, cond: array, rate: array, state: array, min_duration: float, debounce: float, max_gap: float
) -> tuple[array, array, array, array, array, array, array, array, array]: ...
