from array import array

def build_grid(bbox: array, params: array, dims: array) -> tuple[array, array]: ...
def query(
    lats: array, lons: array,
    params: array, dims: array, cell_first: array, cell_fences: array,
    bbox: array, kind: array, ring_first: array, vert_first: array, xs: array, ys: array, circle: array,
    margin_m: float,
) -> tuple[array, array, array, array, array]: ...
