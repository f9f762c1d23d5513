"""``fleet-cloud installer-token`` against a real SQLite store, and the duration parser."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from cloud_sync import cli
from cloud_sync.provisioning_cli import parse_ttl
from cloud_sync.store import make_engine
from cloud_sync.store.provisioning import get_token


def test_installer_token_command_creates_a_usable_hashed_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                               ) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    assert cli.main(["--database-url", url, "installer-token", "--depot", "depot-west", "--ttl", "1h",
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["depot"] == "depot-west" and abs(out["expires_at"] - (time.time() + 3600)) < 600
    engine = make_engine(url)
    with engine.connect() as conn:
        token = get_token(conn, out["token"])
    engine.dispose()
    assert token is not None and token.depot == "depot-west" and token.used_at is None
    assert cli.main(["--database-url", url, "installer-token", "--depot", "d", "--ttl", "30d"]) == 2  # too long
    assert "ttl" in capsys.readouterr().err


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172800),
                                          ("1.5h", 5400)])
def test_parse_ttl(text: str, seconds: float) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-1h", "1w", "h"])
def test_parse_ttl_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_ttl(text)
