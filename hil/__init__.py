"""Hardware-in-the-loop: ECU and GNSS simulators and scenarios that drive a real agent process.

The simulators grow here; the capture recorders used by the test suite live in ``hil.record``.
"""
