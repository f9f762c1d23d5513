"""The acquire -> decode -> persist path shared by the daemon and ``fleet-agent replay``.

``Pipeline`` owns the decoders for one profile, the sampling gate and a small record buffer in
front of the outbox. J1939 values travel as columns (``SampleColumns``) from the decode kernel
through the gate kernel and into the detectors; only what the gate keeps becomes a record.
Samples are stored at the profile's rate or on change beyond a deadband; fixes
at most ``POSITION_RATE_HZ``; diagnostics (DM1/DM2, OBD DTC lists) and the VIN only when they change
for their source, so a DM1 repeated every second costs nothing until a lamp or a DTC changes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from edge_agent.counters import Counters
from edge_agent.decoding.catalog import SignalCatalog
from edge_agent.decoding.j1939.decoder import J1939Decoder
from edge_agent.decoding.nmea import NmeaDecoder
from edge_agent.decoding.obd.decoder import ObdDecoder
from edge_agent.detection import SILENCE_S, DetectionBatch, Detector
from edge_agent.model import (
    DiagnosticMessage,
    Event,
    Fix,
    ObdDtcReport,
    Priority,
    RawFrame,
    Record,
    Sample,
    SampleColumns,
    TimedLine,
    VehicleId,
)
from edge_agent.outbox import Outbox
from edge_agent.privacy import LOCATION_DETECTORS, PrivacyGate
from edge_agent.sampling import SampleGate
from firmware_profiles import Profile

#: Most positions stored per second; a 10 Hz receiver is thinned to this (config may lower it).
POSITION_RATE_HZ = 1.0
#: Records buffered before one outbox transaction. Bounds what a power cut can take (the daemon
#: also flushes at least once a second).
FLUSH_RECORDS = 2000
#: Outbox state key under which the detectors' state is committed with every flush.
DETECTOR_STATE_KEY = "detectors"
#: Outbox state key of the private-mode gate (committed with every flush, like the detectors').
PRIVACY_STATE_KEY = "privacy"
#: Private mode is re-evaluated at most this often (seconds of device time) on CAN-only input.
PRIVACY_TICK_S = 1.0


@dataclass(slots=True)
class Findings:
    """What a run has seen that a person asks about first: DTCs and VINs, latest per identity."""

    j1939_dtcs: dict[tuple[int, int, int], dict[str, object]] = field(default_factory=dict)
    obd_dtcs: dict[tuple[str, str, str], dict[str, object]] = field(default_factory=dict)
    vins: dict[str, str] = field(default_factory=dict)

    def dtc_list(self) -> list[dict[str, object]]:
        return [*self.j1939_dtcs.values(), *self.obd_dtcs.values()]


class Pipeline:
    """Decodes frames and lines for one vehicle profile and appends records to an outbox."""

    def __init__(
        self, profile: Profile, outbox: Outbox, counters: Counters, *, detectors: Mapping[str, Detector] | None = None,
        privacy: PrivacyGate | None = None,
    ) -> None:
        self.profile = profile
        self.detectors: dict[str, Detector] = dict(detectors or {})
        self.privacy = privacy
        self._privacy_checked = -math.inf
        self.counters = counters
        self.findings = Findings()
        self._outbox = outbox
        self._buffer: list[Record] = []
        self._gate = SampleGate({s.name: (s.rate_hz, s.deadband) for s in profile.signals.values()})
        # J1939 PGNs are decoded on J1939 profiles only; an OBD-II profile's DBC describes Mode 01.
        catalog = SignalCatalog.from_profile(profile) if profile.protocol == "j1939" else SignalCatalog({})
        self._j1939 = J1939Decoder(catalog, counters)
        self._obd = ObdDecoder(profile, counters) if profile.protocol == "obd2" else None
        self._obd_dtcs: list[ObdDtcReport] = []
        self._nmea = NmeaDecoder(counters)
        self._last_position_ts = float("-inf")
        self._last_diag: dict[tuple[str, str], object] = {}
        self._last_frame_ts = 0.0
        self._states_dirty = False

    # -- input -----------------------------------------------------------------------------------

    def on_frames(self, frames: Sequence[RawFrame]) -> None:
        if not frames:
            return
        # Sources count what they read ("frames", "lines"); the pipeline counts what it made of it.
        self._last_frame_ts = frames[-1].timestamp
        self._privacy_tick(self._last_frame_ts)
        if self._obd is not None:
            self._on_obd(frames)
            return
        batch = self._j1939.decode_batch(frames)
        columns: SampleColumns | None = batch.columns
        samples: list[Sample] = []
        if batch.extra:
            # Rare (reassembled messages carrying mapped signals): objects for all, in decode order.
            samples, columns = batch.samples, None
            self._on_samples(samples)
        elif columns is not None:
            self._on_columns(columns)
        for dm in batch.diagnostics:
            self._on_dm(dm)
        for vid in batch.vehicle_ids:
            self._on_vin(vid)
        if self.detectors:
            self._detect(DetectionBatch(samples=samples, diagnostics=batch.diagnostics, columns=columns))
        self._maybe_flush()

    def on_lines(self, lines: Iterable[TimedLine]) -> None:
        fixes: list[Fix] = []
        for line in lines:
            fixes.extend(self._nmea.feed(line))
        self._on_fixes(fixes)
        self._maybe_flush()

    def _on_fixes(self, fixes: list[Fix]) -> None:
        if self.privacy is None:
            for fix in fixes:
                self._on_fix(fix)
            if fixes and self.detectors:
                self._detect(DetectionBatch(fixes=fixes))
            return
        # Private fixes are never stored; detectors see them without a position (speed still counts).
        run: list[Fix] = []
        for fix in fixes:
            was = self.privacy.private
            self._privacy_tick(fix.timestamp, force=True)
            if self.privacy.private != was and run:
                self._detect_fixes(run, private=was)
                run = []
            if self.privacy.private:
                self.privacy.add_fix(fix)
                run.append(replace(fix, lat=math.nan, lon=math.nan))
            else:
                self._on_fix(fix)
                run.append(fix)
        if run:
            self._detect_fixes(run, private=self.privacy.private)

    def _detect_fixes(self, fixes: list[Fix], *, private: bool) -> None:
        if self.detectors:
            self._detect(DetectionBatch(fixes=fixes), skip=LOCATION_DETECTORS if private else frozenset())

    def _privacy_tick(self, timestamp: float, *, force: bool = False) -> None:
        if self.privacy is None or (not force and timestamp - self._privacy_checked < PRIVACY_TICK_S):
            return
        self._privacy_checked = timestamp
        events = self.privacy.update(timestamp)
        if events:
            self._states_dirty = True
            self.counters.inc("events", len(events))
            self._buffer.extend(e.to_record() for e in events)

    def set_private_switch(self, switch: bool | None) -> None:
        """The driver's switch changed (``fleet-agent private``); takes effect at the next input."""
        if self.privacy is not None and switch != self.privacy.switch:
            self.privacy.switch = switch
            self._privacy_checked = -math.inf

    @property
    def last_frame_ts(self) -> float:
        """Bus time of the last frame handed in (0.0 before the first)."""
        return self._last_frame_ts

    def tick_silence(self, bus_now: float, silence_s: float = SILENCE_S) -> None:
        """The running daemon's clock says no frame came until bus time ``bus_now`` (never on replay).

        After ``silence_s`` the detectors end what is running at its last sample (the ignition is off),
        instead of when the bus wakes again. Nothing before a first frame, nor for a shorter silence.
        """
        if self.detectors and self._last_frame_ts and bus_now - self._last_frame_ts > silence_s:
            self._detect(DetectionBatch(tick=bus_now))
            self._maybe_flush()

    def finish(self) -> None:
        """End of input: emit pending epochs, time out open sessions, and flush to the outbox."""
        self._on_fixes(self._nmea.flush())
        self._j1939.finish(self._last_frame_ts)
        if self._obd is not None:
            self._obd.finish(self._last_frame_ts)
        self.flush()

    # -- detection -------------------------------------------------------------------------------

    def _detect(self, batch: DetectionBatch, skip: frozenset[str] = frozenset()) -> None:
        self._states_dirty = True
        events: list[Event] = []
        for name, detector in self.detectors.items():
            if name not in skip:
                events.extend(detector.process(batch))
        if events and self.privacy is not None and self.privacy.private:
            events = self.privacy.scrub_events(events)
        if events:
            self.counters.inc("events", len(events))
            events.sort(key=lambda e: e.timestamp)
            self._buffer.extend(e.to_record() for e in events)

    def detector_states(self) -> dict[str, dict[str, object]]:
        """Every detector's state, to persist across restarts."""
        return {name: d.state() for name, d in self.detectors.items()}

    def restore_detector_states(self, states: Mapping[str, Mapping[str, object]]) -> None:
        for name, state in states.items():
            detector = self.detectors.get(name)
            if detector is not None:
                detector.restore(dict(state))

    def replace_detectors(self, detectors: Mapping[str, Detector]) -> None:
        """Swap in new detectors (new thresholds or geofences), carrying the old ones' state over."""
        states = self.detector_states()
        self.detectors = dict(detectors)
        self.restore_detector_states(states)

    def flush(self) -> None:
        """Commit buffered records, and the detectors' state with them in the same transaction.

        Committing both at once means a restart resumes detection exactly where the stored events
        left it: an idle period that was reported as started is not reported as started again.
        """
        if not self._buffer and not self._states_dirty:
            return
        state: dict[str, Mapping[str, object]] | None = (
            {DETECTOR_STATE_KEY: self.detector_states()} if self.detectors else None
        )
        if self.privacy is not None:
            state = {**(state or {}), PRIVACY_STATE_KEY: self.privacy.state()}
        if self._buffer:
            self._outbox.append(self._buffer, state=state)
        elif state is not None:
            self._outbox.append([], state=state)
        self._buffer = []
        self._states_dirty = False

    def restore_from_outbox(self) -> None:
        """Resume the detectors from the state the last flush committed (nothing if none)."""
        saved = self._outbox.get_state(DETECTOR_STATE_KEY)
        if saved:
            self.restore_detector_states({k: v for k, v in saved.items() if isinstance(v, dict)})
        privacy = self._outbox.get_state(PRIVACY_STATE_KEY) if self.privacy is not None else None
        if privacy and self.privacy is not None:
            self.privacy.restore(privacy)

    # -- routing ---------------------------------------------------------------------------------

    def _on_obd(self, frames: Sequence[RawFrame]) -> None:
        assert self._obd is not None
        decoded = 0
        samples: list[Sample] = []
        for frame in frames:
            results = self._obd.feed(frame)
            if results:
                decoded += 1
            for item in results:
                if isinstance(item, Sample):
                    samples.append(item)
                elif isinstance(item, ObdDtcReport):
                    self._on_obd_dtcs(item)
                    self._obd_dtcs.append(item)
                elif isinstance(item, VehicleId):
                    self._on_vin(item)
        self.counters.inc("frames_decoded", decoded)
        self.counters.inc("samples", len(samples))
        self._on_samples(samples)
        if self.detectors and (samples or self._obd_dtcs):
            self._detect(DetectionBatch(samples=samples, obd_dtcs=self._obd_dtcs))
        self._obd_dtcs = []
        self._maybe_flush()

    def _on_columns(self, cols: SampleColumns) -> None:
        kept = self._gate.admit_columns(cols)
        if not kept:
            return
        self.counters.inc("samples_stored", len(kept))
        ts, field, values, source = cols.timestamps, cols.field, cols.values, cols.source
        names, units, sources = cols.names, cols.units, cols.sources
        self._buffer.extend(
            Record(
                "sample",
                Priority.PERIODIC,
                ts[j],
                {"signal": names[field[j]], "value": values[j], "unit": units[field[j]], "source": sources[source[j]]},
            )
            for j in kept
        )

    def _on_samples(self, samples: Sequence[Sample]) -> None:
        kept = self._gate.admit_many(samples)
        if not kept:
            return
        self.counters.inc("samples_stored", len(kept))
        self._buffer.extend(
            Record(
                "sample",
                Priority.PERIODIC,
                s.timestamp,
                {"signal": s.signal, "value": s.value, "unit": s.unit, "source": s.source},
            )
            for s in kept
        )

    def _on_fix(self, fix: Fix) -> None:
        if not fix.valid:
            return
        if fix.timestamp - self._last_position_ts < 1.0 / POSITION_RATE_HZ and (
            fix.timestamp >= self._last_position_ts
        ):
            return
        self._last_position_ts = fix.timestamp
        payload: dict[str, object] = {"lat": fix.lat, "lon": fix.lon}
        for key in ("altitude_m", "speed_mps", "course_deg", "quality", "satellites", "hdop", "mode"):
            value = getattr(fix, key)
            if value is not None:
                payload[key] = value
        self._buffer.append(Record("position", Priority.PERIODIC, fix.timestamp, payload))

    def _changed(self, key: tuple[str, str], state: object) -> bool:
        if self._last_diag.get(key) == state:
            return False
        self._last_diag[key] = state
        return True

    def _on_dm(self, dm: DiagnosticMessage) -> None:
        source = f"j1939:0x{dm.source_address:02X}"
        lamps = {
            "mil": dm.lamps.mil.name.lower(),
            "red_stop": dm.lamps.red_stop.name.lower(),
            "amber_warning": dm.lamps.amber_warning.name.lower(),
            "protect": dm.lamps.protect.name.lower(),
        }
        dtcs = [{"spn": d.spn, "fmi": d.fmi, "oc": d.oc, "cm": d.cm} for d in dm.dtcs]
        if dm.kind == "DM1":
            for d in dm.dtcs:
                self.findings.j1939_dtcs[(dm.source_address, d.spn, d.fmi)] = {
                    "spn": d.spn, "fmi": d.fmi, "oc": d.oc, "source": source,
                }
        if not self._changed((dm.kind, source), (tuple(lamps.values()), dm.dtcs)):
            return
        payload: dict[str, object] = {
            "protocol": "j1939", "message": dm.kind, "source": source, "lamps": lamps, "dtcs": dtcs,
        }
        self._buffer.append(Record("dtc_status", Priority.FAULT, dm.timestamp, payload))

    def _on_obd_dtcs(self, report: ObdDtcReport) -> None:
        codes = sorted(d.code for d in report.dtcs)
        for code in codes:
            self.findings.obd_dtcs[(report.source, report.status, code)] = {
                "code": code, "status": report.status, "source": report.source,
            }
        if not self._changed((report.status, report.source), tuple(codes)):
            return
        payload: dict[str, object] = {
            "protocol": "obd2", "status": report.status, "source": report.source, "codes": codes,
        }
        self._buffer.append(Record("dtc_status", Priority.FAULT, report.timestamp, payload))

    def _on_vin(self, vid: VehicleId) -> None:
        self.findings.vins[vid.source] = vid.vin
        if self._changed(("vin", vid.source), vid.vin):
            payload: dict[str, object] = {"vin": vid.vin, "source": vid.source}
            self._buffer.append(Record("vehicle_id", Priority.EVENT, vid.timestamp, payload))

    def _maybe_flush(self) -> None:
        if len(self._buffer) >= FLUSH_RECORDS:
            self.flush()
