"""Fault identity and lamp severity from the payloads the edge sends (pure: no store)."""

from __future__ import annotations

from cloud_sync.maintenance.faults import MAX_SPN, identity, severity
from tests.cloud_sync.maintenance.vehicle import AMBER, LAMPS_OFF, RED, dtc


def test_j1939_identity_is_source_spn_fmi_and_the_lamps_give_severity():
    ident = identity("dtc_appeared", dtc(110, 16, AMBER, 0.0))
    assert ident is not None and ident.key == "j1939:j1939:0x00:spn110:fmi16" and (ident.spn, ident.fmi) == (110, 16)
    assert identity("dtc_cleared", dtc(110, 16, LAMPS_OFF, 0.0, source="j1939:0x03")).key.startswith("j1939:j1939:0x03")
    assert severity(dtc(110, 16, AMBER, 0.0)) == "amber_warning"
    assert severity(dtc(110, 16, RED, 0.0)) == "red_stop"
    assert severity(dtc(110, 16, {**LAMPS_OFF, "mil": "on"}, 0.0)) == "mil"
    assert severity(dtc(110, 16, {**LAMPS_OFF, "red_stop": "not_available"}, 0.0)) == "none"


def test_obd2_identity_ignores_the_list_the_code_is_in_and_a_permanent_code_had_the_mil():
    pending = {"protocol": "obd2", "source": "7E8", "code": "P0301", "status": "pending"}
    permanent = {**pending, "status": "permanent"}
    assert identity("dtc_appeared", pending).key == identity("dtc_appeared", permanent).key == "obd2:7E8:P0301"
    assert (severity(pending), severity(permanent)) == ("none", "mil")


def test_threshold_faults_are_identified_by_name():
    payload = {"fault": "coolant_over_temp", "signal": "coolant_temp", "value": 112.0, "unit": "degC",
               "threshold": 105.0, "source": "j1939:0x00", "since": 1.0}
    ident = identity("fault_raised", payload)
    assert ident is not None and (ident.key, ident.protocol, ident.fault) == (
        "threshold:coolant_over_temp", "threshold", "coolant_over_temp")


def test_payloads_that_name_no_fault_have_no_identity():
    assert identity("dtc_appeared", {"protocol": "j1939", "source": "j1939:0x00", "spn": MAX_SPN + 1, "fmi": 1}) is None
    assert identity("dtc_appeared", {"protocol": "j1939", "source": "j1939:0x00", "spn": 100, "fmi": 32}) is None
    assert identity("dtc_appeared", {"protocol": "j1939", "spn": 100, "fmi": 1}) is None  # no source
    assert identity("dtc_appeared", {"protocol": "can", "source": "x", "code": "P0001"}) is None
    assert identity("dtc_appeared", {"protocol": "j1939", "source": "j1939:0x00", "spn": True, "fmi": 1}) is None
    assert identity("fault_raised", {"signal": "coolant_temp"}) is None
    assert identity("dtc_appeared", ["not", "a", "dict"]) is None
