"""``jimu demo``: a living CRM in one command (SQLite, built-in apps with sample data, three users).
"""
from __future__ import annotations

import secrets

from runtime import users


def install_demo(url: str) -> dict[str, str | None]:
    """Create the demo users and apps (idempotent); answers the passwords of new users."""
    from web.app import build_services
    svc = build_services(url, "Asia/Shanghai")
    passwords: dict[str, str | None] = {}
    with svc.engine.begin() as conn:
        for name, role in (("admin", "admin"), ("manager", "builder"), ("agent", "user")):
            if users.find_user(conn, name) is None:
                pw = secrets.token_urlsafe(9)
                users.create_user(conn, name, pw, role)
                passwords[name] = pw
            else:
                passwords[name] = None
    from web.demo_content import install_content
    install_content(svc)
    return passwords


def run_demo(url: str, *, host: str = "127.0.0.1", port: int = 5000) -> int:
    passwords = install_demo(url)
    print("Jimu demo — 积木演示")
    for name, pw in passwords.items():
        print(f"  {name:8} " + (f"password: {pw}" if pw else "(exists; password unchanged)"))
    from web.server import serve
    return serve(url, host=host, port=port, workers=1, scheduler=True)
