"""The three-way merge behind a pack upgrade: keep the customer's changes, take the pack's.

``merge_apps(base, local, new)`` compares three versions of an app's metadata: ``base`` (the
pack's app as it was installed), ``local`` (the app's current draft, with the customer's changes)
and ``new`` (the app of the newer pack). What only the new version changed is taken; what only
the customer changed is kept; what both changed the same way is kept once; what both changed
differently is a **conflict**: the local value is kept and the conflict is reported, never
silently overwritten.

Items are matched by key: entities and their fields (and a subtable's fields) by ``key``, field
options by ``value``, the other spec kinds (forms, rules, flows, calendars, reports, dashboards)
by ``key`` and permissions by ``role`` + ``entity``; roles as a set. Inside an item the merge goes
property by property, so a changed label locally and a new option upstream both survive. Lists
that have no identity (a flow's transitions, a form's layout) are merged as one value.

Pure: no database, no I/O. Validating the merged app is the caller's job (``templates_library
.install``), as is storing it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "<missing>"})()

CONFLICT_BOTH = ("changed locally and in the new version differently: kept the local value / "
                 "本地与新版本对此项做了不同修改：保留本地修改")
CONFLICT_REMOVED_UPSTREAM = ("changed locally but removed in the new version: kept the local item / "
                             "本地修改过此项，但新版本删除了它：保留本地项")
CONFLICT_REMOVED_LOCALLY = ("removed locally but changed in the new version: kept it removed / "
                            "本地已删除此项，但新版本修改了它：保持删除")


@dataclass
class MergeResult:
    doc: dict
    created: list[dict] = field(default_factory=list)     # taken from the new version: added
    changed: list[dict] = field(default_factory=list)     # taken from the new version: changed
    removed: list[dict] = field(default_factory=list)     # taken from the new version: removed
    conflicts: list[dict] = field(default_factory=list)   # both changed: local kept


def _canon(value: Any) -> str:
    if value is MISSING:
        return "\x00missing"
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _same(a: Any, b: Any) -> bool:
    return _canon(a) == _canon(b)


def _strip_ids(value: Any) -> Any:
    """The store adds ``id`` to entities and fields; the pack's versions never carry one."""
    if isinstance(value, dict):
        return {k: _strip_ids(v) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        return [_strip_ids(v) for v in value]
    return value


def _identity(parent: str):
    """How the items of a list under property ``parent`` are matched, or None (atomic list)."""
    if parent in ("entities", "fields", "forms", "rules", "flows", "calendars", "reports", "dashboards"):
        return lambda item: item.get("key") if isinstance(item, dict) else MISSING
    if parent == "permissions":
        return lambda item: (f"{item.get('role')}:{item.get('entity')}" if isinstance(item, dict) else MISSING)
    if parent == "options":
        return lambda item: item.get("value") if isinstance(item, dict) else item
    if parent == "roles":
        return lambda item: item if isinstance(item, str) else MISSING
    return None


class _Merger:
    def __init__(self) -> None:
        self.out = MergeResult(doc={})

    # ------------------------------------------------------------------ records
    def _record(self, bucket: list, path: str, **kw) -> None:
        bucket.append({"location": path, **{k: v for k, v in kw.items() if v is not MISSING}})

    def conflict(self, path: str, base, local, new, message: str) -> None:
        self._record(self.out.conflicts, path, base=_strip_ids(base), local=_strip_ids(local),
                     new=new, message=message)

    # ------------------------------------------------------------------ merge
    def merge(self, base: Any, local: Any, new: Any, path: str, parent: str = "") -> Any:
        """The merged value (``MISSING`` when the property or item is absent)."""
        if _same(_strip_ids(local), new) or _same(base, new):
            return local
        # structured values: go down to the items and properties that actually differ
        if isinstance(local, dict) and isinstance(new, dict) and (base is MISSING or isinstance(base, dict)):
            return self._merge_dict(base if isinstance(base, dict) else {}, local, new, path)
        ident = _identity(parent)
        if (ident is not None and isinstance(local, list) and isinstance(new, list)
                and (base is MISSING or isinstance(base, list))):
            merged = self._merge_list(base if isinstance(base, list) else [], local, new, path, ident, parent)
            if merged is not MISSING:
                return merged
        if _same(base, _strip_ids(local)):
            if local is MISSING:
                self._record(self.out.created, path, value=new)
            elif new is MISSING:
                self._record(self.out.removed, path, value=base)
            else:
                self._record(self.out.changed, path, **{"from": base, "to": new})
            return _keep_ids(local, new)
        # both sides changed it, each its own way
        if new is MISSING:
            self.conflict(path, base, local, new, CONFLICT_REMOVED_UPSTREAM)
        elif local is MISSING:
            self.conflict(path, base, local, new, CONFLICT_REMOVED_LOCALLY)
        else:
            self.conflict(path, base, local, new, CONFLICT_BOTH)
        return local

    def _merge_dict(self, base: dict, local: dict, new: dict, path: str) -> dict:
        result: dict = {}
        keys = list(local) + [k for k in new if k not in local]
        for key in keys:
            if key == "id" and key in local:
                result[key] = local[key]
                continue
            value = self.merge(base.get(key, MISSING), local.get(key, MISSING), new.get(key, MISSING),
                               f"{path}.{key}" if path else str(key), parent=key)
            if value is not MISSING:
                result[key] = value
        return result

    def _merge_list(self, base: list, local: list, new: list, path: str, ident, parent: str) -> Any:
        maps = []
        for items in (base, local, new):
            keyed = {}
            for item in items:
                k = ident(item)
                if k is MISSING or k in keyed:
                    return MISSING          # no usable identity: merge the list as one value
                keyed[k] = item
            maps.append(keyed)
        B, L, N = maps
        scalar = parent in ("roles",) or not all(isinstance(x, dict) for x in [*base, *local, *new])
        result: list = []
        order: list = []
        for k, item in L.items():
            where = f"{path}[{k}]"
            b, n = B.get(k, MISSING), N.get(k, MISSING)
            if scalar:
                if b is not MISSING and n is MISSING:
                    self._record(self.out.removed, where, value=b)
                    continue
                result.append(item)
                order.append(k)
                continue
            merged = self.merge(b, item, n, where, parent=parent)
            if merged is not MISSING:
                result.append(merged)
                order.append(k)
        new_keys = list(N)
        for i, (k, item) in enumerate(N.items()):
            if k in L:
                continue
            where = f"{path}[{k}]"
            if k in B:
                if not _same(B[k], item):
                    self.conflict(where, B[k], MISSING, item, CONFLICT_REMOVED_LOCALLY)
                continue
            self._record(self.out.created, where, value=item)
            # after the nearest item that precedes it in the new version, else first
            pos = 0
            for prev in reversed(new_keys[:i]):
                if prev in order:
                    pos = order.index(prev) + 1
                    break
            result.insert(pos, item)
            order.insert(pos, k)
        return result


def _keep_ids(local: Any, new: Any) -> Any:
    """The new value, with the store's ids of the local entities and fields carried over by key."""
    if isinstance(local, dict) and isinstance(new, dict):
        out = {k: _keep_ids(local.get(k, MISSING), v) for k, v in new.items()}
        if "id" in local and "id" not in new:
            out = {"id": local["id"], **out}
        return out
    if isinstance(local, list) and isinstance(new, list):
        by_key = {x.get("key"): x for x in local if isinstance(x, dict) and "key" in x}
        return [_keep_ids(by_key.get(x.get("key"), MISSING), x) if isinstance(x, dict) else x for x in new]
    return new


def merge_apps(base: dict, local: dict, new: dict) -> MergeResult:
    """Three-way merge of app metadata; see the module docstring."""
    merger = _Merger()
    merger.out.doc = merger._merge_dict(base or {}, local, new, "")
    return merger.out
