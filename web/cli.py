"""The ``jimu`` command line: init, serve, demo, scheduler, users, tokens, packs and imports.

Exit codes: 0 ok, 1 user error (a message on stderr, no traceback), 2 usage.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError

from engines.errors import JimuError


class UserError(Exception):
    pass


def _db_url(args) -> str:
    url = getattr(args, "db", None) or os.environ.get("JIMU_DATABASE_URL")
    return url or f"sqlite:///{Path.cwd() / 'jimu.db'}"


def _services(args):
    from web.app import build_services
    return build_services(_db_url(args), os.environ.get("JIMU_TIMEZONE", "Asia/Shanghai"))


def _read_password(path: str | None, prompt: str) -> str:
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UserError(f"cannot read the password file: {exc.strerror}") from exc
    if not sys.stdin.isatty():
        raise UserError("no password given: pass --password-file (stdin is not a terminal)")
    first = getpass.getpass(prompt)
    if first != getpass.getpass("Again / 再输一次: "):
        raise UserError("the passwords differ / 两次密码不一致")
    return first


def cmd_init(args) -> int:
    from runtime import users
    svc = _services(args)
    with svc.engine.begin() as conn:
        if users.find_user(conn, args.admin) is not None:
            print(f"The store exists; user {args.admin!r} exists already.")
            return 0
        password = _read_password(args.admin_password_file, f"Password for {args.admin} / 管理员密码: ")
        users.create_user(conn, args.admin, password, "admin")
    print(f"Created the metadata store and admin user {args.admin!r}.")
    return 0


def cmd_user_add(args) -> int:
    from runtime import users
    if args.team and not users.KEY_RE.match(args.team):
        raise UserError(f"--team takes a team key (lowercase letters, digits, _), not {args.team!r} / 团队键格式无效")
    svc = _services(args)
    password = _read_password(args.password_file, f"Password for {args.name}: ")
    teams = [args.team] if args.team else []
    with svc.engine.begin() as conn:
        if args.team:
            import sqlalchemy as sa

            from runtime.system_tables import teams as teams_table
            if conn.execute(sa.select(teams_table.c.key).where(teams_table.c.key == args.team)).first() is None:
                conn.execute(teams_table.insert().values(key=args.team, label=args.team))
        user = users.create_user(conn, args.name, password, args.role, teams=teams)
    print(f"Created user {user['name']} (id {user['id']}, role {user['role']}).")
    return 0


def cmd_token_create(args) -> int:
    from runtime import users
    svc = _services(args)
    with svc.engine.begin() as conn:
        row = users.find_user(conn, args.user)
        if row is None:
            raise UserError(f"no user named {args.user!r}")
        out = users.create_token(conn, row.id, args.name, args.scope)
    print(f"API token for {args.user} (shown once, keep it safe):")
    print(out["token"])
    return 0


def cmd_serve(args) -> int:
    from web.server import serve
    return serve(_db_url(args), host=args.host, port=args.port, workers=args.workers,
                 scheduler=not args.no_scheduler)


def cmd_scheduler(args) -> int:
    from web.server import run_scheduler
    return run_scheduler(_db_url(args))


def cmd_demo(args) -> int:
    from web.demo import run_demo
    return run_demo(args.db or f"sqlite:///{Path.cwd() / 'jimu-demo.db'}", port=args.port, host=args.host)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, not {text!r}")
    return port


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jimu", description="Jimu 积木: build your own CRM without code")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("init", help="create the metadata store and an admin user")
    s.add_argument("--db")
    s.add_argument("--admin", default="admin")
    s.add_argument("--admin-password-file")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("serve", help="run the web app")
    s.add_argument("--db")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=_port, default=5000)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--no-scheduler", action="store_true")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("scheduler", help="run only the timer sweeper and periodic jobs")
    s.add_argument("--db")
    s.set_defaults(func=cmd_scheduler)

    s = sub.add_parser("demo", help="install the built-in packs with sample data and serve them")
    s.add_argument("--db")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=_port, default=5000)
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("user", help="users")
    usub = s.add_subparsers(dest="user_command", required=True)
    u = usub.add_parser("add", help="add a user")
    u.add_argument("name")
    u.add_argument("--role", required=True, choices=["admin", "builder", "user"])
    u.add_argument("--team")
    u.add_argument("--password-file")
    u.add_argument("--db")
    u.set_defaults(func=cmd_user_add)

    s = sub.add_parser("token", help="API tokens")
    tsub = s.add_subparsers(dest="token_command", required=True)
    t = tsub.add_parser("create", help="create an API token (printed once, on the last line)")
    t.add_argument("--user", required=True)
    t.add_argument("--name", default="cli")
    t.add_argument("--scope", default="write", choices=["read", "write"])
    t.add_argument("--db")
    t.set_defaults(func=cmd_token_create)

    try:
        from web.cli_data import add_data_commands
        add_data_commands(sub)
    except ImportError:
        pass
    __import__("web.cli_packs", fromlist=["add_pack_commands"]).add_pack_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except (UserError, JimuError) as exc:
        message = exc.message if isinstance(exc, JimuError) else str(exc)
        print(f"jimu: {message}", file=sys.stderr)
        details = getattr(exc, "details", None)
        if isinstance(details, list):
            for d in details[:50]:
                print(f"  {d.get('location', '')}: {d.get('message', '')}", file=sys.stderr)
        elif isinstance(details, dict):
            for k, v in list(details.items())[:50]:
                print(f"  {k}: {v}", file=sys.stderr)
        return 1
    except OSError as exc:   # a file or folder named on the command line that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"jimu: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except (ArgumentError, OperationalError, InterfaceError) as exc:   # a database URL that does not open
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(f"jimu: cannot use the database: {reason} / 无法打开数据库", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
