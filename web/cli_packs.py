"""``jimu pack …``: list, plan, import, export and uninstall template packs from the command line.

A PATH is a pack folder, its ``pack.yaml``, a ``.zip``, or the name of a built-in pack. The work is
``templates_library.install``'s; this module parses arguments and prints.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from runtime.context import SYSTEM, Context


def _resolve(path: str) -> Path:
    from templates_library.install import builtin_pack_path
    from web.cli import UserError
    p = Path(path)
    if p.exists():
        return p
    builtin = builtin_pack_path(path) if "/" not in path and "\\" not in path else None
    if builtin is not None:
        return builtin
    raise UserError(f"no pack at {path!r} (a folder, a .zip or a built-in pack name) / 找不到模板包 {path!r}")


def _load(args, svc):
    from templates_library.loader import load_pack
    return load_pack(_resolve(args.path), now=datetime.now(ZoneInfo(svc.timezone)))


def _print_plan(plan: dict, out=None) -> None:
    out = out or sys.stdout
    pk = plan["pack"]
    installed = plan.get("installed")
    print(f"Pack {pk['name']} {pk['version']} → app {plan['app']}: {plan['action']}"
          + (f" (installed: {installed['name']} {installed['version']})" if installed else ""), file=out)
    for title, items in (("created", plan["created"]), ("changed", plan["changed"]),
                         ("conflicts (local kept)", plan["conflicts"]), ("retired (data kept)", plan["retired"])):
        if items:
            print(f"  {title}: {len(items)}", file=out)
            for item in items[:40]:
                print(f"    - {_describe(item)}", file=out)
    if plan["migrations"]:
        print(f"  migrations: {len(plan['migrations'])}", file=out)
        for step in plan["migrations"]:
            print(f"    - {step}", file=out)
    if plan.get("teams"):
        print(f"  teams used: {', '.join(plan['teams'])}", file=out)
    if plan.get("sample_data"):
        counts = ", ".join(f"{e} {n}" for e, n in plan["sample_data"].items())
        print(f"  sample data: {counts}", file=out)
    for e in plan["errors"]:
        print(f"  ERROR {e['location']}: {e['message']}", file=out)


def _describe(item: dict) -> str:
    if "location" in item:
        text = item["location"]
        if item.get("message"):
            text += f": {item['message']}"
        elif item.get("change"):
            text += f" ({item['change']})"
        return text
    if "kind" in item and "key" in item:
        return f"{item['kind']} {item['key']}"
    return json.dumps(item, ensure_ascii=False)


def _pack_list(args, svc) -> int:
    from builder import store
    from templates_library.loader import list_builtin_packs, load_pack
    print("Built-in packs / 内置模板包:")
    for folder in list_builtin_packs():
        pack = load_pack(folder)
        print(f"  {pack.name:24} {pack.version:10} {pack.title}")
    with svc.engine.connect() as conn:
        apps = store.list_apps(conn)
    print("Installed apps / 已安装应用:")
    if not apps:
        print("  (none / 无)")
    for a in apps:
        origin = f"pack {a['pack']['name']} {a['pack']['version']}" if a["pack"] else "built by hand"
        print(f"  {a['app']:24} revision {a['published_revision']:<4} {origin:36} {a['label']}")
    return 0


def _pack_plan(args, svc) -> int:
    from templates_library.install import plan_pack
    pack = _load(args, svc)
    with svc.engine.connect() as conn:
        plan = plan_pack(conn, pack)
    _print_plan(plan)
    return 1 if plan["errors"] or plan["action"] == "conflict" else 0


def _pack_import(args, svc) -> int:
    from templates_library.install import import_pack
    pack = _load(args, svc)
    with svc.engine.begin() as conn:
        out = import_pack(Context(conn, SYSTEM), svc, pack, with_sample_data=args.with_sample_data)
    verb = "Installed" if out["action"] == "install" else "Upgraded"
    print(f"{verb} {pack.name} {pack.version} as app {out['app']} (revision {out['revision']}).")
    for c in out["conflicts"]:
        print(f"  conflict, local kept: {c['location']}")
    if out["teams_created"]:
        print(f"  created empty teams (add members for routing): {', '.join(out['teams_created'])}")
    if out["sample_data"]:
        print("  sample data: " + ", ".join(f"{e} {n}" for e, n in out["sample_data"].items()))
    if out.get("sample_data_skipped"):
        print(f"  {out['sample_data_skipped']}")
    return 0


def _pack_export(args, svc) -> int:
    from templates_library.archive import full_export, write_full_export
    from templates_library.export import export_app
    from templates_library.loader import dump_pack
    with svc.engine.connect() as conn:
        if args.with_data:
            full = full_export(conn, args.app, default_tz=svc.timezone)
            pack = full.pack
        else:
            pack = export_app(conn, args.app, default_tz=svc.timezone)
    out = write_full_export(full, args.output) if args.with_data else dump_pack(pack, args.output)
    print(f"Exported app {args.app} as pack {pack.name} {pack.version} to {out}.")
    return 0


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "-"


def _print_uninstall_plan(plan: dict) -> None:
    pk = plan["pack"]
    print(f"Uninstall app {plan['app']} ({plan['label']})" + (f", pack {pk['name']} {pk['version']}" if pk else "")
          + " — plan / 卸载计划:")
    print(f"  export to / 导出到: {plan['export']['target']}")
    print(f"  records / 记录: {_counts(plan['records'])}")
    print(f"  tables dropped / 删除的表: {len(plan['tables'])}")
    for t in plan["tables"]:
        print(f"    - {t['table']} ({t['entity']}{', retired' if t['retired'] else ''}): {t['rows']} rows")
    meta = plan["metadata"]
    print(f"  metadata / 元数据: {meta['revisions']} revisions and the draft"
          + (" (with unpublished changes: kept in archive/draft.yaml)" if meta["draft_unpublished"] else ""))
    print(f"  also removed / 一并删除: {_counts({k: v for k, v in plan['rows'].items() if k != 'tables'})}")
    kept = plan["kept"]
    print(f"  kept / 保留: {kept['audit_entries']} audit entries, {kept['outbox_delivered']} delivered messages")
    recomputed = plan["export"]["recomputed_on_import"]
    if recomputed:
        print("  set again by a re-import (old values in archive/) / 重新导入时重新计算: "
              + "; ".join(f"{e}: {', '.join(fs)}" for e, fs in recomputed.items()))
    for e in plan["errors"]:
        print(f"  ERROR {e['location']}: {e['message']}")


def _pack_uninstall(args, svc) -> int:
    from templates_library.uninstall import plan_uninstall, uninstall_app
    target = Path(args.export)
    if not args.yes:
        with svc.engine.connect() as conn:
            plan = plan_uninstall(Context(conn, SYSTEM), args.app, target)
        _print_uninstall_plan(plan)
        print("Nothing was changed: add --yes to export and uninstall / 未做任何更改；加 --yes 执行导出并卸载")
        return 1 if plan["errors"] else 0
    with svc.engine.begin() as conn:
        out = uninstall_app(Context(conn, SYSTEM), svc.catalog, args.app, target, default_tz=svc.timezone)
    export = out["export"]
    print(f"Exported app {args.app} to {export['path']} and verified it / 已导出并校验: "
          f"{_counts(export['records'])}")
    print(f"Uninstalled app {args.app} / 已卸载: {_counts(out['removed'])}; the audit log keeps its history / "
          f"审计日志保留")
    for gap in export["archive_only"]:
        print(f"  only in archive/ / 仅存于 archive/: {json.dumps(gap, ensure_ascii=False)}")
    print(f"Install it again with / 重新安装: jimu pack import {export['path']} --with-sample-data")
    return 0


def _with_services(command):
    def run(args) -> int:
        from web.cli import _services
        svc = _services(args)
        try:
            return command(args, svc)
        finally:
            svc.engine.dispose()
    run.__name__ = command.__name__
    return run


cmd_pack_list = _with_services(_pack_list)
cmd_pack_plan = _with_services(_pack_plan)
cmd_pack_import = _with_services(_pack_import)
cmd_pack_export = _with_services(_pack_export)
cmd_pack_uninstall = _with_services(_pack_uninstall)


def add_pack_commands(sub) -> None:
    s = sub.add_parser("pack", help="template packs: list, plan, import, export, uninstall")
    psub = s.add_subparsers(dest="pack_command", required=True)

    p = psub.add_parser("list", help="built-in packs and installed apps with their versions")
    p.add_argument("--db")
    p.set_defaults(func=cmd_pack_list)

    p = psub.add_parser("plan", help="what importing a pack would do (writes nothing)")
    p.add_argument("path", help="a pack folder, a .zip, or a built-in pack name")
    p.add_argument("--db")
    p.set_defaults(func=cmd_pack_plan)

    p = psub.add_parser("import", help="install a pack, or upgrade the app installed from it")
    p.add_argument("path", help="a pack folder, a .zip, or a built-in pack name")
    p.add_argument("--with-sample-data", action="store_true", help="also create the pack's sample records")
    p.add_argument("--db")
    p.set_defaults(func=cmd_pack_import)

    p = psub.add_parser("export", help="write an app's latest published revision as a pack")
    p.add_argument("app")
    p.add_argument("-o", "--output", required=True, help="a folder, or a file ending in .zip")
    p.add_argument("--with-data", action="store_true", help="include the records as sample data (and archive/)")
    p.add_argument("--db")
    p.set_defaults(func=cmd_pack_export)

    p = psub.add_parser("uninstall", help="export an app with all its records, then remove it (admins)")
    p.add_argument("app")
    p.add_argument("--export", required=True, help="a new or empty folder, or a file ending in .zip")
    p.add_argument("--yes", action="store_true", help="do it; without --yes only the plan is printed")
    p.add_argument("--db")
    p.set_defaults(func=cmd_pack_uninstall)
