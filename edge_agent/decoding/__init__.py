"""Decode: raw CAN frames and NMEA lines into samples, diagnostics and fixes."""
