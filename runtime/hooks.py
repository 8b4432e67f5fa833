"""The engine hooks the records pipeline runs, in order: flows, then rules.

Flows go first so that a new record's initial state and a transition's field actions (``set``,
``assign``) are in place before the rules compute, validate, score and assign on top of them.
One place decides which engines take part in a record write, so that the web layer, the CLI,
pack import and the scheduler all build the same pipeline.
"""
from __future__ import annotations

from .catalog import Catalog
from .records import RecordHooks


def default_hooks(catalog: Catalog) -> list[RecordHooks]:
    from .flows_runtime import FlowHook
    from .rules_hook import RulesHook

    hooks: list[RecordHooks] = [FlowHook(catalog), RulesHook(catalog)]
    return hooks
