from array import array

def parse_lines(
    buf: bytes, pos: int, end: int, max_frames: int, channels: bytes,
) -> tuple[array, array, array, bytes, array, int, int]: ...
