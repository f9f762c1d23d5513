from array import array

OK: int
SHORT: int
WIDE: int
MAX_BYTES: int

def uvarints(data: bytes, pos: int, n: int) -> tuple[int, array, int]: ...
def svarints(data: bytes, pos: int, n: int) -> tuple[int, array, int]: ...
def deltas(data: bytes, pos: int, n: int, order: int) -> tuple[int, array, int]: ...
