"""``ObdDecoder``: the passive OBD-II path from CAN frames to samples, DTC reports and VINs.

It listens to every frame: responder ids (0x7E8-0x7EF, 0x18DAF1xx) go through the ISO-TP
reassembler and then the service decoder; requests and flow control from a tester (ours or a
workshop's) and all other ids are ignored. It does not care who asked, so it decodes a replayed
capture exactly as it decodes the live bus while our poller is asking. Per-frame problems are counted
by reason (``obd_isotp``, ``obd_malformed``, ``obd_negative_response``, ...) and skipped.
"""

from __future__ import annotations

import logging
from collections import Counter

from edge_agent.counters import Counters
from edge_agent.decoding.obd.isotp import IsoTpReassembler, is_response_id
from edge_agent.decoding.obd.services import NRC_RESPONSE_PENDING, ServiceDecoder
from edge_agent.errors import DecodeError
from edge_agent.model import ObdDtcReport, RawFrame, Sample, VehicleId
from firmware_profiles import Profile

log = logging.getLogger(__name__)

ObdResult = Sample | ObdDtcReport | VehicleId


def source_name(arbitration_id: int, is_extended: bool) -> str:
    """The ``Sample.source`` for a responder: ``obd:0x7E8`` or ``obd:0x18DAF110``."""
    return f"obd:0x{arbitration_id:08X}" if is_extended else f"obd:0x{arbitration_id:03X}"


class ObdDecoder:
    """Stateful decoder for one OBD-II bus (ISO-TP sessions persist across frames)."""

    def __init__(self, profile: Profile, counters: Counters) -> None:
        self._services = ServiceDecoder(profile)
        self._isotp = IsoTpReassembler(counters)
        self._counters = counters
        #: responder source -> PIDs its bitmaps claim (what the vehicle says it can answer)
        self.supported: dict[str, set[int]] = {}
        #: (source, rejected service, NRC) -> how many; the detail behind obd_negative_response
        self.negative_responses: Counter[tuple[str, int, int]] = Counter()

    def feed(self, frame: RawFrame) -> list[ObdResult]:
        """Decode one frame; return what it completed (usually nothing or a few samples)."""
        if not is_response_id(frame.arbitration_id, frame.is_extended):
            return []
        message = self._isotp.feed(frame)
        if message is None:
            return []
        source = source_name(frame.arbitration_id, frame.is_extended)
        try:
            decoded = self._services.decode(message.payload, message.timestamp, source)
        except DecodeError as exc:
            self._counters.decode_error(exc.reason)
            log.debug("OBD frame 0x%X: %s", frame.arbitration_id, exc)
            return []
        if decoded.partial:
            self._counters.decode_error("obd_malformed")
            log.debug("OBD frame 0x%X: multi-PID response %s decoded in part", frame.arbitration_id,
                      message.payload.hex())
        if decoded.negative is not None:
            service, nrc = decoded.negative
            if nrc == NRC_RESPONSE_PENDING:
                self._counters.inc("obd_response_pending")
            else:
                self._counters.decode_error("obd_negative_response")
                self.negative_responses[(source, service, nrc)] += 1
                log.debug("OBD %s refused service 0x%02X with NRC 0x%02X", source, service, nrc)
        for base, pids in decoded.supported.items():
            known = self.supported.setdefault(source, set())
            # A fresh bitmap replaces what that range said before (an ECU may change its mind).
            known.difference_update(range(base + 1, base + 33))
            known.update(pids)
        return list(decoded.items)

    def finish(self, now: float) -> None:
        """End of stream: unfinished multi-frame responses time out (and are counted)."""
        self._isotp.expire(now + 3600.0)
