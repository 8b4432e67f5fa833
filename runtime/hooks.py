"""The engine hooks the records pipeline runs, in order: rules, then flows.

One place that decides which engines take part in a record write, so that the web layer, the
CLI, pack import and the scheduler all build the same pipeline.
"""
from __future__ import annotations

from .catalog import Catalog
from .records import RecordHooks


def default_hooks(catalog: Catalog) -> list[RecordHooks]:
    from .flows_runtime import FlowHook
    from .rules_hook import RulesHook

    hooks: list[RecordHooks] = [RulesHook(catalog), FlowHook(catalog)]
    return hooks
