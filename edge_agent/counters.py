"""Counters for everything the agent reads, decodes, stores or drops.

Every counter name is documented in ``COUNTER_DOCS`` (a drop nobody can explain is a drop nobody
trusts). Decode errors are counted per reason under ``decode_errors``; the reason strings are
documented in ``DECODE_ERROR_DOCS``, and an undocumented reason is still counted (under its own
name) so that a new failure mode is never silently lost.
"""

from __future__ import annotations

import threading
from collections import Counter

COUNTER_DOCS: dict[str, str] = {
    "frames": "CAN frames read from any CAN source (bus or replay).",
    "frames_decoded": "CAN frames that produced at least one sample, diagnostic or reassembled packet.",
    "frames_ignored": "CAN frames with no signal in the profile (not an error).",
    "lines": "Text lines read from GNSS sources.",
    "sentences": "NMEA sentences that passed checksum and parsing.",
    "sentences_ignored": "Valid NMEA sentences of a type we do not use (GSV, TXT, ...).",
    "fixes": "Fixes assembled from receiver epochs and passed to the pipeline.",
    "fixes_rejected": "Fixes assembled but marked invalid (no fix, quality 0, status V).",
    "samples": "Decoded samples produced by decoding.",
    "signals_not_available": "Mapped signals whose raw value was J1939 'not available' (0xFF..); no sample.",
    "signals_error_indicator": "Mapped signals whose raw value was J1939 'error' (0xFE..); no sample.",
    "samples_stored": "Samples kept by the sampling gate (rate or deadband) and appended to the outbox.",
    "events": "Detection events (idle, fault, geofence, trip, meter) appended to the outbox.",
    "records_appended": "Records appended to the outbox.",
    "outbox_errors": "Outbox writes that failed even after eviction (a disk that stays full); retried next flush.",
    "status_write_errors": "Times the status file could not be written (a full disk); the agent goes on.",
    "records_dropped": "Records evicted by the outbox quota or a full disk (see drop reports).",
    "serial_reopens": "Times a serial source was reopened after an error or unplug.",
    "serial_garbage_bytes": "Bytes discarded from serial input that were not part of a printable line.",
    "baud_mismatch": "Times a serial port's input looked like a wrong baud rate (mostly unprintable).",
    "serial_long_lines": "Serial input lines longer than the source's max_line; discarded.",
    "replay_garbage_lines": "Capture-file lines holding non-ASCII bytes (replaced with U+FFFD, then decoded as usual).",
    "source_errors": "Transient errors reading a source (the source retries).",
    "obd_response_pending": "OBD 0x7F ..78 'response pending' answers (the real answer follows within P2*).",
    "obd_requests": "OBD-II requests sent by the poller (discovery, PIDs, DTCs, VIN, ignition probes).",
    "obd_request_timeouts": "OBD-II requests nobody answered within P2 (or P2* after 'response pending').",
    "obd_flow_controls": "ISO-TP flow-control frames the poller sent to let a responder continue.",
    "can_error_frames": "CAN error frames seen on a bus or in a capture; skipped (the bus state tells more).",
    "can_remote_frames": "CAN remote (RTR) frames seen on a bus or in a capture; skipped (they carry no data).",
    "geofence_fixes_ignored": "Fixes the geofence detector skipped: invalid, no position, or below its quality bar.",
    "batches_sent": "Batches sealed and handed to MQTT (QoS 1) by the uplink.",
    "batches_committed": "Batches the cloud acked committed or duplicate; their rows left the outbox.",
    "batches_rejected": "Batches the cloud acked rejected (reason in the log); rows kept, sending paused.",
    "puback_failures": "PUBACKs with an MQTT v5 failure reason code (>= 0x80, e.g. 0x87 not authorised); rows kept.",
    "ack_timeouts": "Batches with no cloud ack within uplink.ack_timeout_s; the same batch was sent again.",
    "batches_resent": "Batches published again unchanged (ack timeout, PUBACK failure, a passing or trust refusal).",
    "batches_abandoned": "Batches whose rows went out under a later seq, named to the cloud in a signed notice.",
    "mqtt_reconnects": "MQTT connections made after the first one (each follows a lost connection).",
    "mqtt_connect_failures": "MQTT connection attempts that failed (refused, timed out, CONNACK refusal); retried.",
    "records_uplinked": "Records deleted from the outbox because the cloud acked their batch.",
    "batches_split": "Sealed batches over the packet limit that were halved and sealed again.",
    "acks_unmatched": "Cloud acks for no batch awaiting one (an earlier boot epoch, a timed-out or repeated batch).",
    "publish_refused": "Batches paho refused because its queue (uplink.max_queued) was full; sent again later.",
    "uplink_outbox_errors": "Outbox errors met by the uplink's tick (retried on the next tick).",
    "uplink_events_dropped": "MQTT events dropped on a full uplink event queue (rows wait for their ack timeout).",
    "acks_hash_mismatch": "Cloud acks whose batch_hash is not that of the batch sent under their (epoch, seq); "
                          "ignored.",
    "acks_without_hash": "Cloud acks without a batch_hash (version 1, from an older cloud); ignored, rows resent.",
    "rejects_not_trusted": "Batches refused as unknown device, revoked, bad signature or bad key; rows kept, "
                           "backing off.",
    "batches_narrowed": "Batches refused for their content whose rows were sent again in halves to find the bad ones.",
    "batches_quarantined": "Batches refused for their content whose rows were moved to the outbox quarantine.",
    "records_quarantined": "Outbox rows moved to the quarantine (refused by the cloud for their content; reported).",
    # Signed config pushes (edge_agent.config_push.receiver): each rejection is also logged with its reason.
    "config_received": "Messages received on the device's config topic (fleet/v1/<device>/config).",
    "config_applied": "Pushed configs verified, loaded and now running (saved as current.cfg).",
    "config_already_applied": "The running config delivered again (the retained message after a reconnect); ignored.",
    "config_superseded": "Config messages replaced by a newer one before the daemon handled them.",
    "config_rejected": "Pushed configs refused, any reason (one config_rejected_<reason> counter per reason).",
    "config_rejected_oversized": "Refused: larger than wire.config.MAX_CONFIG_BYTES.",
    "config_rejected_bad_magic": "Refused: not a sealed config (wrong magic).",
    "config_rejected_truncated": "Refused: too short to hold magic, version and signature.",
    "config_rejected_unknown_version": "Refused: a config format version this agent cannot read.",
    "config_rejected_bad_signature": "Refused: signature does not verify with the pinned fleet key (forged/tampered).",
    "config_rejected_malformed": "Refused: validly signed but its body is not the config schema (a cloud bug).",
    "config_rejected_other_device": "Refused: signed for another device.",
    "config_rejected_rollback": "Refused: older than the running config's version.",
    "config_rejected_not_newer": "Refused: same version as the running config but different content.",
    "config_rejected_expired": "Refused: its expires_at is past (device wall clock).",
    "config_rejected_invalid_content": "Refused: its profile, thresholds or geofences do not load; the last good runs.",
    "config_rejected_apply_failed": "Refused: the outbox could not be flushed before a pipeline restart; retried on "
                                    "the next delivery.",
    "config_fallbacks": "Stored configs unusable at start (no longer verify or load); the previous one was taken.",
    "config_persist_errors": "Applied configs that could not be saved (a restart would run the previous one).",
    "config_report_errors": "config_status records the outbox could not store.",
}

DECODE_ERROR_DOCS: dict[str, str] = {
    "can_short_frame": "A frame shorter than its message's DBC length.",
    "can_standard_id_in_j1939": "An 11-bit frame on a J1939 profile that is not OBD traffic.",
    "j1939_tp_timeout": "A transport-protocol session timed out before all packets arrived.",
    "j1939_tp_sequence": "A TP.DT packet out of sequence; the session is aborted.",
    "j1939_tp_bad_announce": "A TP.CM BAM/RTS with impossible size or packet count.",
    "j1939_tp_abort": "A TP.CM_Abort ended a session we were reassembling.",
    "j1939_tp_overflow": "A new session was refused because the session table was full.",
    "j1939_tp_orphan_data": "A TP.DT packet with no open session.",
    "j1939_dm_malformed": "A DM1/DM2 payload of impossible length.",
    "obd_isotp": "An ISO-TP frame that could not be placed (bad PCI, sequence, length).",
    "obd_negative_response": "A 0x7F negative response from an OBD responder.",
    "obd_malformed": "An OBD response whose content does not match its service.",
    "obd_isotp_timeout": "An ISO-TP multi-frame response whose next frame came after N_Cr (1 s); dropped.",
    "obd_isotp_overflow": "An ISO-TP first frame refused because the session table was full.",
    "can_log_malformed": "A capture line (candump .log) or record that could not be parsed; skipped.",
    "nmea_checksum": "An NMEA sentence whose checksum is wrong.",
    "nmea_checksum_missing": "An NMEA sentence without a checksum.",
    "nmea_parse": "An NMEA sentence with a valid checksum that pynmea2 cannot parse.",
    "nmea_not_sentence": "A line that is not an NMEA sentence (no leading $ or !).",
    "nmea_field": "A sentence whose fields are out of range (latitude over 90, bad time).",
    "j1939_vin_malformed": "A J1939 VI (PGN 65260) payload with no VIN or non-printable bytes.",
    "outbox_bad_record": "A record the outbox cannot store (payload not JSON, timestamp not finite, no kind); skipped.",
    "uplink_invalid_record": "An outbox row the wire cannot carry (time or kind out of the wire's range); removed.",
    "uplink_record_too_large": "An outbox row that alone exceeds the packet limit once sealed; removed.",
    "uplink_bad_ack": "A message on the ack topic that is not a valid Ack document; ignored.",
}


class Counters:
    """Thread-safe named counters with a separate table of decode errors by reason."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Counter[str] = Counter()
        self._decode_errors: Counter[str] = Counter()

    def inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] += n

    def decode_error(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self._decode_errors[reason] += n

    def get(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    def decode_errors(self) -> dict[str, int]:
        with self._lock:
            return dict(self._decode_errors)

    def snapshot(self) -> dict[str, object]:
        """All counters as a JSON-friendly dict, with ``decode_errors`` as a nested dict."""
        with self._lock:
            out: dict[str, object] = dict(self._values)
            out["decode_errors"] = dict(self._decode_errors)
            return out
