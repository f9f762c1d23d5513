"""SAE J1939 decoding: mapped signals (``decoder``), the transport protocol (``tp``), DM1/DM2 and the VIN (``dm``)."""
