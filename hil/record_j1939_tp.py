"""Record the J1939 transport-protocol captures: ``python -m hil.record_j1939_tp OUTDIR``.

Writes three candump logs (the committed copies live in ``tests/data/sim/``):

* ``j1939_dm1_multipacket.log``: the engine (0x00) broadcasting a 3-DTC DM1 over BAM every second
  and its VIN over BAM on request, while the brakes (0x0B) broadcast a 2-DTC DM1 over BAM whose
  packets interleave with the engine's, and the transmission (0x03) sends ETC1, a single-frame DM1
  and its software identification over BAM;
* ``j1939_rts_cts.log``: a telematics unit (0xF9) requesting DM2 and the VIN from the engine, which
  answers both over RTS/CTS; the DM2 transfer includes a CTS asking for packet 2 again;
* ``j1939_tp_faults.log``: a BAM that stops half-way (timeout), a BAM with a lost packet (out of
  sequence), an RTS/CTS transfer the receiver aborts, a TP.DT nobody announced (orphan), a TP.CM
  cut to 5 bytes (short frame) and a BAM announcing 8 bytes (bad announce), each followed by good
  traffic so a test can see the agent carry on.

Everything is generated from fixed inputs on a fixed epoch, so the same command always writes the
same bytes (a test regenerates the files and compares).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path

from edge_agent.decoding.j1939.tp import CM_ABORT, CM_BAM, PGN_TP_CM, PGN_TP_DT
from edge_agent.model import J1939Dtc, Lamps, LampState, RawFrame
from firmware_profiles import load_profile
from hil.j1939_frames import PGN_DM2, bam_frames, can_id, dm1_frames, encode_dm, rts_cts_frames
from hil.record_truck import write_candump
from hil.truck_ecu import PGN_REQUEST, PGN_VI, TruckEcu, TruckState

#: A fixed epoch (2025-11-24) so that replays of these captures are reproducible.
DEFAULT_START = 1_764_010_800.0
ENGINE, TRANSMISSION, BRAKES, CLUSTER, BODY, TELEMATICS = 0x00, 0x03, 0x0B, 0x17, 0x21, 0xF9
VIN = "1XKYDP9X0MJ000001"
#: SAE J1939-71 ETC1 (electronic transmission controller 1) and SOFT (software identification).
PGN_ETC1 = 61442
PGN_SOFT = 65242
ETC1_PERIOD_S = 0.01

ENGINE_DTCS = (J1939Dtc(110, 0, 3), J1939Dtc(3226, 2, 1), J1939Dtc(520201, 14, 7))
ENGINE_LAMPS = Lamps(protect=LampState.OFF, amber_warning=LampState.ON, red_stop=LampState.OFF, mil=LampState.OFF)
BRAKE_DTCS = (J1939Dtc(1045, 7, 2), J1939Dtc(789, 5, 1))
BRAKE_LAMPS = Lamps(LampState.OFF, LampState.ON, LampState.OFF, LampState.OFF)
TRANSMISSION_DTCS = (J1939Dtc(191, 2, 4),)
DM2_DTCS = (J1939Dtc(100, 1, 12), J1939Dtc(102, 3, 2), J1939Dtc(5246, 0, 1), J1939Dtc(4364, 18, 9))
FAULT_DTCS = (J1939Dtc(1045, 7, 2), J1939Dtc(789, 5, 1), J1939Dtc(1069, 9, 3), J1939Dtc(563, 31, 1))
RUNNING = {"engine_speed": 1350.0, "wheel_speed": 72.0, "coolant_temp": 96.0, "fuel_rate": 31.5}


def _engine(duration_s: float, start: float, state: TruckState, requests: dict[float, int]) -> list[RawFrame]:
    ecu = TruckEcu(load_profile("heavy_truck_j1939"), ENGINE, vin=VIN)
    return list(ecu.run(lambda _t: state, start, duration_s, requests))


def _request(ts: float, pgn: int, destination: int = ENGINE) -> RawFrame:
    """A J1939-21 request (PGN 59904) from the telematics unit: 3 data bytes, the requested PGN."""
    return RawFrame(ts, can_id(6, PGN_REQUEST, TELEMATICS, destination), pgn.to_bytes(3, "little"), True, "can0")


def _every(start: float, period: float, until: float, make: Callable[[float], Iterable[RawFrame]]) -> list[RawFrame]:
    out: list[RawFrame] = []
    n = 0
    while (t := round(n * period, 6)) < until:
        out.extend(make(round(start + t, 6)))
        n += 1
    return out


def _sorted(frames: list[RawFrame]) -> list[RawFrame]:
    return sorted(frames, key=lambda f: f.timestamp)  # stable: same-time frames keep their order


def dm1_multipacket(start: float = DEFAULT_START, duration_s: float = 4.0) -> list[RawFrame]:
    state = TruckState(True, dict(RUNNING), ENGINE_LAMPS, ENGINE_DTCS)
    frames = _engine(duration_s, start, state, {2.2: PGN_VI})
    frames.append(_request(start + 2.2, PGN_VI))
    etc1 = bytes.fromhex("C07D7D0000FFFFFF")
    frames += _every(start + 0.004, ETC1_PERIOD_S, duration_s,
                     lambda ts: [RawFrame(ts, can_id(3, PGN_ETC1, TRANSMISSION), etc1, True, "can0")])
    # The brakes start 20 ms after the engine, so the two BAMs' packets alternate on the bus.
    frames += _every(start + 0.52, 1.0, duration_s - 0.6,
                     lambda ts: dm1_frames(ts, BRAKES, BRAKE_LAMPS, BRAKE_DTCS))
    frames += _every(start + 0.7, 1.0, duration_s - 0.7,
                     lambda ts: dm1_frames(ts, TRANSMISSION, Lamps(LampState.OFF, LampState.OFF, LampState.OFF,
                                                                   LampState.OFF), TRANSMISSION_DTCS))
    frames += bam_frames(start + 1.2, TRANSMISSION, PGN_SOFT, b"ETC7*TX-4.2.1*2025-09-30*", priority=6)
    return _sorted(frames)


def rts_cts(start: float = DEFAULT_START, duration_s: float = 3.0) -> list[RawFrame]:
    state = TruckState(True, dict(RUNNING))
    frames = _engine(duration_s, start, state, {})
    frames.append(_request(start + 1.0, PGN_DM2))
    frames += rts_cts_frames(start + 1.01, ENGINE, TELEMATICS, PGN_DM2, encode_dm(ENGINE_LAMPS, DM2_DTCS),
                             packets_per_cts=2, retransmit=2)
    frames.append(_request(start + 2.0, PGN_VI))
    frames += rts_cts_frames(start + 2.01, ENGINE, TELEMATICS, PGN_VI, (VIN + "*").encode("ascii"),
                             packets_per_cts=1)
    return _sorted(frames)


def tp_faults(start: float = DEFAULT_START, duration_s: float = 8.0) -> list[RawFrame]:
    state = TruckState(True, dict(RUNNING))
    frames = _engine(duration_s, start, state, {7.0: PGN_VI})
    frames.append(_request(start + 7.0, PGN_VI))
    dm1 = encode_dm(BRAKE_LAMPS, FAULT_DTCS)  # 18 bytes: 3 packets
    # 1. The brakes' BAM stops after its first packet: T1 (750 ms) expires -> j1939_tp_timeout.
    frames += bam_frames(start + 1.0, BRAKES, 65226, dm1)[:2]
    # ... and the next one arrives whole.
    frames += bam_frames(start + 2.5, BRAKES, 65226, dm1)
    # 2. The cluster's SOFT BAM loses packet 2: packet 3 is out of sequence -> j1939_tp_sequence.
    soft = bam_frames(start + 3.5, CLUSTER, PGN_SOFT, b"IC-9*CL-1.0.7*2024-02-11*")
    frames += [soft[0], soft[1], soft[3]]
    # 3. DM2 to the telematics unit over RTS/CTS; after the first block the receiver sends
    #    Conn_Abort, reason 2 "system resources needed for another task" -> j1939_tp_abort.
    dm2 = rts_cts_frames(start + 4.5, ENGINE, TELEMATICS, PGN_DM2, encode_dm(ENGINE_LAMPS, DM2_DTCS),
                         packets_per_cts=2)
    frames += dm2[:4]  # RTS, CTS, DT 1, DT 2
    abort = bytes((CM_ABORT, 2, 0xFF, 0xFF, 0xFF)) + PGN_DM2.to_bytes(3, "little")
    frames.append(RawFrame(round(dm2[3].timestamp + 0.01, 6), can_id(7, PGN_TP_CM, TELEMATICS, ENGINE), abort,
                           True, "can0"))
    # 4. A TP.DT from the body controller that no TP.CM announced -> j1939_tp_orphan_data.
    frames.append(RawFrame(start + 5.5, can_id(7, PGN_TP_DT, BODY), bytes.fromhex("0241424344454647"), True, "can0"))
    # 5. A BAM TP.CM cut to 5 bytes (DLC 5) -> can_short_frame.
    frames.append(RawFrame(start + 6.0, can_id(7, PGN_TP_CM, BODY), bytes((CM_BAM, 20, 0, 3, 0xFF)), True, "can0"))
    # 6. A BAM announcing 8 bytes in 2 packets (TP starts at 9 bytes) -> j1939_tp_bad_announce.
    bad = bytes((CM_BAM, 8, 0, 2, 0xFF)) + PGN_SOFT.to_bytes(3, "little")
    frames.append(RawFrame(start + 6.5, can_id(7, PGN_TP_CM, BODY), bad, True, "can0"))
    return _sorted(frames)


CAPTURES: dict[str, Callable[[], list[RawFrame]]] = {
    "j1939_dm1_multipacket.log": dm1_multipacket,
    "j1939_rts_cts.log": rts_cts,
    "j1939_tp_faults.log": tp_faults,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path, help="folder to write the captures to (created if absent)")
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    for name, build in CAPTURES.items():
        path = args.outdir / name
        n = write_candump(iter(build()), path)
        print(f"{path}: {n} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
