"""Fleet edge agent: acquire, decode, detect, persist and send vehicle data."""

__version__ = "0.1.0"
