"""The governance subcommands of ``fleet-cloud``: ``add-user``, ``disable-user``, ``create-token``,
``revoke-token``, ``list-tokens``, ``audit verify`` / ``audit export-head``, ``retention show`` / ``retention run``,
and ``subject export`` / ``subject erase``.

Like ``cloud_sync.provisioning_cli``, ``cloud_sync.cli`` registers these parsers and hands the parsed
arguments here. Administrative commands (these and ``cli.AUDITED_COMMANDS``) are appended to the audit trail
as ``cli:<login name>`` with role admin: whoever can run ``fleet-cloud`` against the database is an admin.

``audit export-head --out FILE --every 300`` is the periodic export of the chain head (run it under systemd or
cron, with FILE on storage the database's administrators cannot rewrite); ``audit verify --heads FILE`` then
detects a truncated or rewritten log as well as altered or deleted entries. Exit status: 0 intact, 1 broken.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud_sync.provisioning_cli import parse_ttl

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from cloud_sync.governance.audit import Entry

GOVERNANCE_COMMANDS = ("add-user", "disable-user", "create-token", "revoke-token", "list-tokens", "audit", "retention",
                       "subject", "access")
DEFAULT_TOKEN_TTL = "90d"
#: Argument names never copied into audit entries (secrets, key material).
SECRET_ARGS = frozenset({"token", "public_key", "password"})


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("add-user", help="create a staff user with a role (and depots)")
    user.add_argument("--name", required=True, help="user name (letters, digits, _.@-)")
    user.add_argument("--role", required=True, help="admin, fleet_manager, dispatcher, technician, "
                                                    "compliance_officer, installer, auditor or executive")
    user.add_argument("--depot", action="append", dest="depots",
                      help="a depot the user may see (repeat); none: every depot")
    disable = sub.add_parser("disable-user", help="refuse every token of a user from now on")
    disable.add_argument("--name", required=True)
    token = sub.add_parser("create-token", help="create an API token for a user (printed once, stored hashed)")
    token.add_argument("--user", required=True)
    token.add_argument("--ttl", type=parse_ttl, default=parse_ttl(DEFAULT_TOKEN_TTL),
                       help=f"lifetime, e.g. 12h, 30d (default {DEFAULT_TOKEN_TTL})")
    token.add_argument("--label", default="", help="what the token is for (shown by list-tokens)")
    token.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    revoke = sub.add_parser("revoke-token", help="refuse an API token from now on")
    revoke.add_argument("--id", required=True, help="token id (create-token and list-tokens show it)")
    listing = sub.add_parser("list-tokens", help="API tokens (ids, users, expiry; never the tokens)")
    listing.add_argument("--user")
    aud = sub.add_parser("audit", help="verify the audit trail, or export its head")
    aud_sub = aud.add_subparsers(dest="audit_command", required=True)
    verify = aud_sub.add_parser("verify", help="walk the hash chain; name the first broken link (exit 1)")
    verify.add_argument("--heads", type=Path, help="file of heads written by export-head: detects truncation")
    verify.add_argument("--json", action="store_true")
    export = aud_sub.add_parser("export-head", help="append the verified chain head to a file")
    export.add_argument("--out", required=True, type=Path, help="append-only file (one JSON line per export)")
    export.add_argument("--every", type=parse_ttl, help="keep exporting at this interval (e.g. 5m) until killed")
    keep = sub.add_parser("retention", help="apply the retention policy (cloud_sync.governance.retention)")
    keep_sub = keep.add_subparsers(dest="retention_command", required=True)
    keep_sub.add_parser("show", help="each purpose's period, default and regulatory minimum")
    apply = keep_sub.add_parser("run", help="delete or pseudonymise what is past its period; audited")
    apply.add_argument("--days", action="append", default=[], metavar="PURPOSE=N",
                       help="override a purpose's period (repeat); below its minimum is refused")
    apply.add_argument("--dry-run", action="store_true", help="count only, change nothing")
    apply.add_argument("--every", type=parse_ttl, help="keep running at this interval (e.g. 1d) until killed")
    apply.add_argument("--json", action="store_true")
    sub.add_parser("access", help="who may call every route (cloud_sync.api.access.ACCESS), one line each")
    subject = sub.add_parser("subject", help="a driver's data: export it (GDPR Art. 15/20) or erase it (Art. 17)")
    subject_sub = subject.add_subparsers(dest="subject_command", required=True)
    out = subject_sub.add_parser("export", help="everything held about a driver, as JSON")
    out.add_argument("--driver", required=True)
    out.add_argument("--out", type=Path, help="write here (default: standard output)")
    erase = subject_sub.add_parser("erase", help="erase or pseudonymise, keeping what the law requires; audited")
    erase.add_argument("--driver", required=True)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in some containers
        import os

        return f"cli:uid{os.getuid()}"


def audit_cli_action(engine: Engine, args: argparse.Namespace) -> Entry:
    """Append an administrative command to the audit trail (before it runs: a failed audit stops it)."""
    from cloud_sync.governance import audit

    detail: dict[str, Any] = {k: str(v) for k, v in sorted(vars(args).items())
                              if k not in SECRET_ARGS and k not in ("command", "verbose", "database_url")
                              and v is not None and not isinstance(v, bool)}
    subject = getattr(args, "name", None) or getattr(args, "user", None) or getattr(args, "id", None)
    with engine.begin() as conn:
        return audit.append(conn, _actor(), "admin", f"cli {args.command}", subject, detail)


def audit_cli_outcome(engine: Engine, entry: Entry, code: int) -> None:
    """The outcome of a command ``audit_cli_action`` recorded (its exit status)."""
    from cloud_sync.governance import audit

    outcome = "done" if code == 0 else f"exit {code}"
    with engine.begin() as conn:
        audit.append(conn, entry.actor, entry.role, f"{entry.action} -> {outcome}", entry.subject,
                     {"outcome": outcome, "request_entry": entry.seq})


def run_governance_command(args: argparse.Namespace, engine: Engine) -> int:
    from cloud_sync.governance.identity import IdentityError
    from cloud_sync.store import migrate

    if args.command == "access":  # the table is code: no database needed
        return _access()
    migrate(engine)
    if args.command == "audit":
        return _verify(args, engine) if args.audit_command == "verify" else _export(args, engine)
    if args.command == "retention":
        return _retention(args, engine)
    if args.command == "subject":
        return _subject(args, engine)
    if args.command == "list-tokens":
        return _list_tokens(args, engine)
    entry = audit_cli_action(engine, args)
    try:
        code = _admin(args, engine)
    except (IdentityError, ValueError) as exc:
        print(f"fleet-cloud: {exc}", file=sys.stderr)
        code = 1
    audit_cli_outcome(engine, entry, code)
    return code


def _admin(args: argparse.Namespace, engine: Engine) -> int:
    from cloud_sync.governance import identity

    with engine.begin() as conn:
        if args.command == "add-user":
            user = identity.add_user(conn, args.name, args.role, args.depots)
            where = "every depot" if user.depots is None else ", ".join(sorted(user.depots))
            print(f"user {user.name}: {user.role.value} ({where})")
            return 0
        if args.command == "disable-user":
            if not identity.disable_user(conn, args.name):
                raise identity.IdentityError(f"no enabled user {args.name!r}")
            print(f"disabled {args.name}")
            return 0
        if args.command == "revoke-token":
            if not identity.revoke_token(conn, args.id):
                raise identity.IdentityError(f"no live token {args.id!r}")
            print(f"revoked {args.id}")
            return 0
        token, info = identity.create_token(conn, args.user, args.ttl, args.label)
    if args.json:
        print(json.dumps({"token": token, "id": info.id, "user": info.user, "expires_at": info.expires_at}))
    else:
        print(f"token {info.id} for {info.user}, expires {_utc(info.expires_at)} (shown once):\n{token}")
    return 0


def _utc(t: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="seconds")


def _list_tokens(args: argparse.Namespace, engine: Engine) -> int:
    from cloud_sync.governance import identity

    with engine.connect() as conn:
        for t in identity.list_tokens(conn, args.user):
            state = f"revoked {_utc(t.revoked_at)}" if t.revoked_at is not None else f"expires {_utc(t.expires_at)}"
            print(f"{t.id}  {t.user:<24} {state}  {t.label}")
    return 0


def _verify(args: argparse.Namespace, engine: Engine) -> int:
    from cloud_sync.governance import audit

    try:
        heads = [] if args.heads is None else audit.read_exported(args.heads.read_text().splitlines())
    except (OSError, ValueError) as exc:
        print(f"fleet-cloud: {args.heads}: {exc}", file=sys.stderr)
        return 2
    with engine.connect() as conn:
        v = audit.verify(conn, heads)
    if args.json:
        print(json.dumps({"ok": v.ok, "count": v.count, "head_seq": v.head.seq, "head_hash": v.head.hash.hex(),
                          "broken_seq": v.broken_seq, "reason": v.reason}))
    elif v.ok:
        print(f"audit trail intact: {v.count} entries, head {v.head.hash.hex()}"
              + (f", passes through {len(heads)} exported head(s)" if heads else ""))
    else:
        print(f"audit trail BROKEN at entry {v.broken_seq}: {v.reason} ({v.count} entries verified before it)")
    return 0 if v.ok else 1


def _export(args: argparse.Namespace, engine: Engine) -> int:
    from cloud_sync.governance import audit

    while True:
        with engine.connect() as conn:
            v = audit.verify(conn)
        if not v.ok:  # never vouch for a broken chain
            print(f"fleet-cloud: not exporting: audit trail broken at entry {v.broken_seq}: {v.reason}",
                  file=sys.stderr)
            return 1
        with args.out.open("a", encoding="utf-8") as f:
            f.write(audit.export_line(v.head) + "\n")
            f.flush()
            import os

            os.fsync(f.fileno())
        print(f"exported head: entry {v.head.seq} {v.head.hash.hex()}")
        if args.every is None:
            return 0
        time.sleep(args.every)


def _policy(args: argparse.Namespace) -> Any:
    import os

    from cloud_sync.governance.retention import Policy

    overrides = {}
    for item in getattr(args, "days", []):
        name, _, value = item.partition("=")
        if not value.strip().isdigit():
            raise ValueError(f"--days {item!r}: expected PURPOSE=N (whole days)")
        overrides[name.strip()] = int(value)
    return Policy.from_env(os.environ, overrides)


def _retention(args: argparse.Namespace, engine: Engine) -> int:
    from cloud_sync.governance import retention
    from cloud_sync.settings import SettingsError

    try:
        policy = _policy(args)
    except (SettingsError, ValueError) as exc:
        print(f"fleet-cloud: {exc}", file=sys.stderr)
        return 2
    if args.retention_command == "show":
        for p in retention.PURPOSES.values():
            minimum = f"minimum {p.minimum_days} d ({p.basis})" if p.minimum_days else "no minimum"
            print(f"{p.name:<20} {policy.days[p.name]:>5} d   default {p.default_days} d, {minimum}")
        return 0
    while True:
        with engine.begin() as conn:
            report = retention.run(conn, policy, dry_run=args.dry_run)
        if args.json:
            print(json.dumps(report))
        else:
            for name, done in report.items():
                counts = ", ".join(f"{k} {v}" for k, v in done.items() if k not in ("days", "cutoff")) or "nothing"
                print(f"{name:<20} older than {_utc(done['cutoff'])}: {counts}"
                      + (" (dry run)" if args.dry_run else ""))
        if args.every is None:
            return 0
        time.sleep(args.every)


def _subject(args: argparse.Namespace, engine: Engine) -> int:
    from cloud_sync.governance import subjects
    from cloud_sync.store.engine import tag_non_finite

    try:
        if args.subject_command == "export":
            with engine.begin() as conn:  # the export is itself a read of personal data: audited
                data = subjects.export_driver(conn, args.driver)
                audit_cli_action_in(conn, args, args.driver)
            text = json.dumps(tag_non_finite(data), indent=1, allow_nan=False)
            if args.out is None:
                print(text)
            else:
                args.out.write_text(text + "\n")
                print(f"wrote {args.out}")
            return 0
        with engine.begin() as conn:
            done = subjects.erase_driver(conn, args.driver, _actor(), "admin")
    except subjects.UnknownSubject as exc:
        print(f"fleet-cloud: {exc}", file=sys.stderr)
        return 1
    print(f"erased driver {args.driver}: " + ", ".join(f"{k} {v}" for k, v in done.items()))
    return 0


def audit_cli_action_in(conn: Connection, args: argparse.Namespace, subject: str) -> None:
    from cloud_sync.governance import audit

    audit.append(conn, _actor(), "admin", f"cli {args.command} {args.subject_command}", subject, {})


def _access() -> int:
    from cloud_sync.api.access import ACCESS

    for key, rule in sorted(ACCESS.items(), key=lambda kv: (kv[0].split(" ", 1)[1], kv[0])):
        if rule.public:
            print(f"{key:<58} public: {rule.why}")
            continue
        notes = [n for n, on in (("depot-scoped", rule.depot_scoped), (f"personal: {rule.personal}", rule.personal))
                 if on]
        roles = ", ".join(sorted(r.value for r in rule.roles))
        print(f"{key:<58} {roles}" + (f"  [{'; '.join(notes)}]" if notes else ""))
    return 0

