"""OBD-II on CAN (ISO 15765-4): ISO-TP reassembly, SAE J1979 service decoding, DTCs and the poller.

``ObdDecoder`` (decoder.py) is the passive side the pipeline uses on every frame; ``ObdPoller``
(poller.py) is the active side that asks the vehicle for data. Both speak our own dataclasses.
"""
