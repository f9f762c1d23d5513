"""The wire contract between vehicle and cloud: the only edge module the cloud imports.

It depends on the standard library, ``cryptography``, ``edge_agent.errors`` and the ``wire_varint``
kernel of ``native/`` only (no MQTT, no SQLite, nothing of the edge runtime). ``model`` holds the
batch and ack types, ``codec`` the format registry (``v1`` is written today; ``kinds`` and ``values``
are its columnar and generic payload forms, ``columns`` a decoded body as columns), ``sign`` the
envelope, signature, chain hash and key files, ``golden`` the generator of the golden files that pin
the format.
"""

from edge_agent.wire.codec import FORMAT_VERSION, MAX_BODY_BYTES, decode_body, encode_body
from edge_agent.wire.columns import BatchColumns, DecodedBody
from edge_agent.wire.errors import REASONS, InvalidRecord, VerificationError, WireError
from edge_agent.wire.model import (
    ACK_VERSION,
    GENESIS_HASH,
    SCHEMA_VERSION,
    Ack,
    Batch,
    WireRecord,
    decode_ack,
    encode_ack,
)
from edge_agent.wire.sign import (
    batch_hash,
    generate_private_key,
    load_private_key,
    load_public_key,
    open_batch,
    open_columns,
    read_header,
    save_private_key,
    save_public_key,
    seal,
)

__all__ = [
    "ACK_VERSION",
    "FORMAT_VERSION",
    "GENESIS_HASH",
    "MAX_BODY_BYTES",
    "REASONS",
    "SCHEMA_VERSION",
    "Ack",
    "Batch",
    "BatchColumns",
    "DecodedBody",
    "InvalidRecord",
    "VerificationError",
    "WireError",
    "WireRecord",
    "batch_hash",
    "decode_ack",
    "decode_body",
    "encode_ack",
    "encode_body",
    "generate_private_key",
    "load_private_key",
    "load_public_key",
    "open_batch",
    "open_columns",
    "read_header",
    "save_private_key",
    "save_public_key",
    "seal",
]
