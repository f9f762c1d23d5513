"""``fleet-cloud`` governance commands as real subprocesses on a SQLite file: users, tokens, audit verify/export."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from cloud_sync.cli import main
from cloud_sync.governance.audit import audit_head, audit_log
from cloud_sync.main import create_app
from cloud_sync.settings import Settings
from cloud_sync.store import make_engine
from tests.cloud_sync.test_cli import cli as cli_process


class Ran:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys):
    """``fleet-cloud`` in this process (an interpreter start per command would cost seconds);
    each test also runs one command as a real process."""
    def run(*args: str) -> Ran:
        code = main(list(args))
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)
    return run


def test_users_and_tokens_from_the_command_line(tmp_path, cli):
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    made = cli("--database-url", db, "add-user", "--name", "dana", "--role", "dispatcher", "--depot", "north")
    assert made.returncode == 0 and "dispatcher (north)" in made.stdout
    bad = cli("--database-url", db, "add-user", "--name", "eve", "--role", "overlord")
    assert bad.returncode == 1 and "unknown role 'overlord'" in bad.stderr
    tok = cli("--database-url", db, "create-token", "--user", "dana", "--ttl", "1d", "--label", "laptop", "--json")
    assert tok.returncode == 0, tok.stderr
    token, token_id = json.loads(tok.stdout)["token"], json.loads(tok.stdout)["id"]
    listed = cli("--database-url", db, "list-tokens")
    assert token_id in listed.stdout and "laptop" in listed.stdout and token not in listed.stdout
    engine = make_engine(db)
    with TestClient(create_app(Settings(ca_dir=tmp_path / "ca"), engine)) as c:
        hdr = {"Authorization": f"Bearer {token}"}
        assert c.get("/v1/vehicles", headers=hdr).status_code == 200
        assert c.get("/v1/users", headers=hdr).status_code == 403  # a dispatcher is no admin
        assert cli("--database-url", db, "revoke-token", "--id", token_id).returncode == 0
        assert c.get("/v1/vehicles", headers=hdr).status_code == 401
    assert cli("--database-url", db, "revoke-token", "--id", token_id).returncode == 1
    verified = cli_process("--database-url", db, "audit", "verify", "--json")
    result = json.loads(verified.stdout)
    assert verified.returncode == 0 and result["ok"] and result["count"] >= 4  # add-user x2, create, revoke x2
    engine.dispose()


def test_audit_verify_names_the_first_broken_link_and_export_head_catches_truncation(tmp_path, cli):
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    heads = tmp_path / "heads.jsonl"
    for name in ("a1", "a2", "a3", "a4"):
        assert cli("--database-url", db, "add-user", "--name", name, "--role", "auditor").returncode == 0
    exported = cli("--database-url", db, "audit", "export-head", "--out", str(heads))
    assert exported.returncode == 0 and "entry 8" in exported.stdout  # each command: request + outcome
    assert json.loads(heads.read_text())["seq"] == 8
    engine = make_engine(db)
    with engine.begin() as conn:  # truncate the tail and rewind the head row: only the export remembers
        last = conn.execute(audit_log.select().where(audit_log.c.seq == 7)).one()
        conn.execute(delete(audit_log).where(audit_log.c.seq == 8))
        conn.execute(update(audit_head).values(seq=7, hash=last.hash))
    assert cli("--database-url", db, "audit", "verify").returncode == 0
    v = cli_process("--database-url", db, "audit", "verify", "--heads", str(heads))
    assert v.returncode == 1 and "BROKEN at entry 8" in v.stdout and "truncated" in v.stdout
    with engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(actor="mallory"))
    v = cli("--database-url", db, "audit", "verify")
    assert v.returncode == 1 and "BROKEN at entry 2" in v.stdout and "altered" in v.stdout
    refused = cli("--database-url", db, "audit", "export-head", "--out", str(heads))
    assert refused.returncode == 1 and "not exporting" in refused.stderr
    engine.dispose()


def test_retention_from_the_command_line(tmp_path, cli, monkeypatch):
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    shown = cli("--database-url", db, "retention", "show")
    assert shown.returncode == 0 and "working_time" in shown.stdout and "49 CFR 395.8(k)(1)" in shown.stdout
    refused = cli("--database-url", db, "retention", "run", "--days", "compliance_records=30")
    assert refused.returncode == 2 and "at least 92 days" in refused.stderr
    monkeypatch.setenv("FLEET_CLOUD_RETENTION_WORKING_TIME_DAYS", "100")
    assert cli("--database-url", db, "retention", "run").returncode == 2
    monkeypatch.delenv("FLEET_CLOUD_RETENTION_WORKING_TIME_DAYS")
    ran = cli("--database-url", db, "retention", "run", "--days", "live_dispatch=7", "--json")
    assert ran.returncode == 0 and json.loads(ran.stdout)["live_dispatch"]["days"] == 7


def test_subject_export_and_erase_from_the_command_line(tmp_path, cli):
    from sqlalchemy import insert

    from cloud_sync.compliance.tables import drivers
    from cloud_sync.governance import audit
    from cloud_sync.store import migrate

    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    engine = make_engine(db)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(insert(drivers).values(id="drv-1", name="Dana", created_at=0.0))
    out = tmp_path / "drv-1.json"
    assert cli("--database-url", db, "subject", "export", "--driver", "drv-1", "--out", str(out)).returncode == 0
    assert json.loads(out.read_text())["driver"]["name"] == "Dana"
    assert cli("--database-url", db, "subject", "export", "--driver", "nobody").returncode == 1
    erased = cli("--database-url", db, "subject", "erase", "--driver", "drv-1")
    assert erased.returncode == 0 and "erased driver drv-1" in erased.stdout
    with engine.connect() as conn:
        assert [(e.action, e.subject) for e in audit.page(conn)] == [("cli subject export", "drv-1"),
                                                                    ("erase driver", "drv-1")]
    engine.dispose()


def test_the_access_table_prints_one_line_per_route(tmp_path, cli):
    from cloud_sync.api.access import ACCESS

    shown = cli("--database-url", f"sqlite:///{tmp_path / 'none.db'}", "access")
    lines = shown.stdout.splitlines()
    assert shown.returncode == 0 and len(lines) == len(ACCESS) and not (tmp_path / "none.db").exists()
    assert any(line.startswith("GET /v1/vehicles/{device}/positions") and "personal: location" in line
               for line in lines)
