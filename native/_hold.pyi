from array import array

def hold(
    ts: array, field: array, values: array, local: array, n_local: int, step: float, state: array,
) -> tuple[array, array, array, array]: ...
