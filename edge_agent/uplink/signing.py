"""``SigningKey``: the key the uplink seals batches with, switched at a batch boundary when the device rotates it.

``fleet-provision rotate-key`` (``provisioning.keys``) writes the new key to ``signing.key.next``, then takes
the rotation time ``issued_at``, has the cloud accept the rotation and finally renames ``.next`` over
``signing.key``. The cloud keeps accepting the old key for batches sealed (``created_at``) up to
``issued_at``. So before sealing each batch the uplink reads the clock first, then asks ``for_batch``:

- while ``signing.key.next`` exists a rotation is under way: no batch is sealed (``None``), because one
  sealed with the old key after ``issued_at`` would be refused, and the new key is not the cloud's yet.
  The clock was read before the check, so a batch sealed after a check that saw no ``.next`` carries a
  ``created_at`` before ``issued_at`` (taken after ``.next`` was written): the cloud accepts it with the
  retired key. The wait is bounded (``ROTATION_HOLD_S``): a rotation that cannot reach the cloud (it
  resumes later) leaves ``.next`` behind, and the cloud still holds the old key then, so sealing goes on.
- when ``signing.key`` changed on disk (inode, mtime or size) it is read again and, if it holds another
  key, becomes the key from this batch on (``generation`` counts the switches).

Watching the file, rather than a signal from ``rotate-key``, needs nothing from the tool: it works when the
tool runs as another user, when it is killed and resumed, when the agent is (re)starting at that moment,
and for a key put in place by hand. The cost is a ``stat`` per batch. Batches already sealed are never
signed again: rows of a batch the cloud refuses leave again in a new batch sealed with the current key.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edge_agent.counters import Counters
from edge_agent.wire import load_private_key

log = logging.getLogger(__name__)

#: Suffix of the key a rotation in progress has made (``provisioning.keys.NEXT_KEY``).
NEXT_SUFFIX = ".next"
#: Longest sealing waits for a rotation in progress (``.next`` present): a rotation against a reachable
#: cloud takes a second or two; one that cannot reach it leaves ``.next`` until it is re-run.
ROTATION_HOLD_S = 30.0


def fingerprint(key: Ed25519PrivateKey) -> str:
    """SHA-256 hex of the public key's DER SubjectPublicKeyInfo (``cloud_sync.enrollment.key_fingerprint``)."""
    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _file_id(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class SigningKey:
    """The current signing key; with a ``path``, re-read when the file changes (see the module docstring)."""

    def __init__(self, key: Ed25519PrivateKey, path: Path | None = None, counters: Counters | None = None,
                 hold_s: float = ROTATION_HOLD_S) -> None:
        self.key = key
        self.path = path
        self.counters = counters if counters is not None else Counters()
        self.hold_s = hold_s
        self.generation = 0
        self.fingerprint = fingerprint(key)
        self._file = _file_id(path) if path is not None else None
        self._hold_since: float | None = None
        self._hold_expired = False

    def for_batch(self, now: float) -> Ed25519PrivateKey | None:
        """The key to seal the next batch with, or None while a rotation is under way (``now``: monotonic s)."""
        if self.path is None:
            return self.key
        if self.path.with_name(self.path.name + NEXT_SUFFIX).exists():
            if self._hold_since is None:
                self._hold_since = now
                log.info("uplink: signing key rotation in progress (%s%s): sealing waits for it", self.path,
                         NEXT_SUFFIX)
            if now - self._hold_since < self.hold_s:
                return None
            if not self._hold_expired:
                self._hold_expired = True
                self.counters.inc("signing_rotation_hold_expired")
                log.warning("uplink: %s%s still there after %.0f s (rotate-key could not finish; re-run it): "
                            "sealing with the current key meanwhile", self.path, NEXT_SUFFIX, self.hold_s)
        else:
            self._hold_since, self._hold_expired = None, False
        self.refresh()
        return self.key

    def refresh(self) -> None:
        """Take the key on disk if the file changed (a rotation finished); cheap: one ``stat``."""
        if self.path is None:
            return
        current = _file_id(self.path)
        if current is not None and current != self._file:
            self._file = current
            self._reload()

    def _reload(self) -> None:
        assert self.path is not None
        try:
            key = load_private_key(self.path)
        except (OSError, ValueError) as exc:
            # Keep sealing with the key we hold (the cloud may still trust it); say why once per change.
            self.counters.inc("signing_key_unreadable")
            log.error("uplink: %s changed but cannot be read (%s); still signing with %s", self.path, exc,
                      self.fingerprint[:16])
            return
        fp = fingerprint(key)
        if fp == self.fingerprint:
            return
        log.warning("uplink: signing key changed on disk: now %s (was %s), from the next batch", fp[:16],
                    self.fingerprint[:16])
        self.key, self.fingerprint = key, fp
        self.generation += 1
        self.counters.inc("signing_key_switches")
