"""Running Jimu: the web app under gunicorn (one or several workers) and the scheduler.

The scheduler runs in the gunicorn master (``jimu serve``) or alone (``jimu scheduler``); timers
live in the database, so several scheduler processes can share them safely.
"""
from __future__ import annotations

import os
import signal
import threading

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):
    def __init__(self, url: str, options: dict):
        self.url = url
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        os.environ["JIMU_DATABASE_URL"] = self.url
        from web.app import create_app
        return create_app({"JIMU_DATABASE_URL": self.url})


def _secret_key() -> None:
    # Several workers must share one signing key for sessions to survive across them.
    if not os.environ.get("JIMU_SECRET_KEY"):
        import secrets
        os.environ["JIMU_SECRET_KEY"] = secrets.token_hex(32)


def serve(url: str, *, host: str = "127.0.0.1", port: int = 5000, workers: int = 1, scheduler: bool = True) -> int:
    _secret_key()
    os.environ["JIMU_DATABASE_URL"] = url
    options = {"bind": f"{host}:{port}", "workers": max(1, workers), "worker_class": "gthread",
               "threads": 4, "timeout": 120, "accesslog": None, "errorlog": "-", "loglevel": "warning"}
    if scheduler:
        def when_ready(_server):
            start_scheduler_thread(url)
        options["when_ready"] = when_ready
    print(f"Jimu serving on http://{host}:{port}/", flush=True)
    _Gunicorn(url, options).run()
    return 0


def start_scheduler_thread(url: str):
    try:
        from runtime.scheduler import Scheduler
    except ImportError:
        return None
    sched = Scheduler.for_url(url)
    thread = threading.Thread(target=sched.run_forever, name="jimu-scheduler", daemon=True)
    thread.start()
    return sched


def run_scheduler(url: str) -> int:
    try:
        from runtime.scheduler import Scheduler
    except ImportError:
        print("The scheduler is not available in this build.")
        return 1
    sched = Scheduler.for_url(url)
    signal.signal(signal.SIGTERM, lambda *_: sched.stop())
    print("Jimu scheduler running; Ctrl-C to stop.", flush=True)
    try:
        sched.run_forever()
    except KeyboardInterrupt:
        sched.stop()
    return 0
