from array import array

def decode_frames(
    ids: array, data: bytes, dlc: array,
    pgns: array, first: array, start: array, length: array, is_signed: array,
    scale: array, offset: array, missing_from: array, error_value: array,
    special: array,
) -> tuple[array, array, array, array, array]: ...
