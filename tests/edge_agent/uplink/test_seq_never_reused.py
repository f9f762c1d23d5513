"""A refused publish must not free its sequence number (an ack names only epoch and seq).

The transport here is a scripted stand-in for paho at the process boundary; the real MQTT transport
is tested against Mosquitto in test_uplink.py and test_reliability.py.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.model import Priority, Record
from edge_agent.outbox import Outbox
from edge_agent.uplink import UplinkSettings
from edge_agent.uplink.transport import AckMessage, Event
from edge_agent.uplink.uplink import Uplink
from edge_agent.wire import Ack, encode_ack, read_header

DEVICE = "truck-seq"


class ScriptedTransport:
    """Refuses the first publish (as paho does with a full queue), accepts the rest."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.refused: list[bytes] = []
        self.events: list[Event] = []

    @property
    def connected(self) -> bool:
        return True

    def start(self) -> None:
        pass

    def publish(self, topic: str, payload: bytes) -> int | None:
        if not self.refused:
            self.refused.append(payload)
            return None
        self.sent.append(payload)
        return len(self.sent)

    def poll(self) -> list[Event]:
        out, self.events = self.events, []
        return out

    def close(self) -> None:
        pass


def test_a_refused_batch_number_is_never_given_to_other_rows(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        transport = ScriptedTransport()
        settings = UplinkSettings(host="127.0.0.1", linger_s=0.0, max_batch_records=10, backlog_report_s=0.0)
        uplink = Uplink(outbox, transport, Ed25519PrivateKey.generate(), DEVICE, settings)
        outbox.append([Record("position", Priority.PERIODIC, float(i), {"n": i}) for i in range(30)])
        uplink.tick(0.0)
        uplink.tick(0.1)
        refused = read_header(transport.refused[0])[0]
        numbers = [read_header(b)[0].seq for b in transport.sent]
        assert refused.seq not in numbers
        # An ack that names the refused number but not its bytes (no hash) deletes nothing.
        depth = outbox.depth()
        transport.events.append(AckMessage(encode_ack(Ack(DEVICE, refused.boot_epoch, refused.seq, "committed"))))
        uplink.tick(0.2)
        assert outbox.depth() == depth
        assert uplink.counters.get("acks_without_hash") == 1
        # After the pause the very same bytes go again under their own number (the cloud's chain stays whole).
        uplink.tick(0.2 + settings.reject_backoff_s)
        assert transport.sent.count(transport.refused[0]) == 1
