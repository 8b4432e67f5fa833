"""Reading and writing the YAML of template packs, safely and predictably.

Owns the YAML dialect of ``pack.yaml``: plain data only (``yaml.SafeLoader``: a ``!!python/...``
tag is an error), no duplicate keys in a mapping, no aliases (so a "billion laughs" document
cannot blow up whoever walks the result), and the scalar rules of YAML 1.2's core schema rather
than YAML 1.1's: only ``true``/``false`` are booleans (so a rule's ``on: [create]`` keeps its
``on`` key and an option value ``no`` stays a string), dates and times stay strings (the app
metadata must be JSON), and ``13:30`` is not a base-60 number. The dumper writes what this loader
reads back unchanged, and what any YAML 1.1 reader reads the same way.

It does not know what a pack contains: ``templates_library.loader`` validates the document.
"""
from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode

# NUL (no PostgreSQL text holds it) and half of a UTF-16 pair ("\ud800": no encoder takes it)
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


class PackYamlError(ValueError):
    """A YAML document a pack may not carry; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line


class _PackLoader(yaml.SafeLoader):
    # A fresh table of implicit resolvers: the YAML 1.2 core schema, each pattern a strict subset
    # of YAML 1.1's, so that whatever ``yaml.safe_dump`` leaves unquoted reads back as the same
    # type here.
    yaml_implicit_resolvers: dict = {}

    def compose_node(self, parent, index):
        if self.check_event(AliasEvent):
            event = self.peek_event()
            raise PackYamlError(
                f"YAML aliases (*{event.anchor}) are not allowed in a pack: write the value out / "
                f"模板包中不允许使用 YAML 别名，请直接写出取值", _line(event.start_mark))
        return super().compose_node(parent, index)

    def construct_scalar(self, node):
        value = super().construct_scalar(node)
        if isinstance(value, str) and _NOT_TEXT.search(value):
            raise PackYamlError("NUL or a lone UTF-16 surrogate (\\0, \\ud800-\\udfff) is not text / "
                                "含有 NUL 或无效的 Unicode 代理字符", _line(node.start_mark))
        return value

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, MappingNode):
            raise ConstructorError(None, None, f"expected a mapping node, but found {node.id}",
                                   node.start_mark)
        mapping: dict[Any, Any] = {}
        lines: dict[Any, int | None] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = _line(key_node.start_mark)
            try:
                hash(key)
            except TypeError:
                raise PackYamlError("a mapping key must be a plain value / 映射的键必须是简单值",
                                    line) from None
            if key in mapping:
                raise PackYamlError(
                    f"duplicate key {key!r} (line {line}, first at line {lines[key]}) / "
                    f"重复的键 {key!r}", line)
            lines[key] = line
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


# Only the JSON-shaped types: an explicit !!timestamp, !!binary, !!set or !!omap (and of course
# !!python/...) finds no constructor and is refused.
_PackLoader.yaml_constructors = {
    tag: constructor for tag, constructor in yaml.SafeLoader.yaml_constructors.items()
    if tag is None or tag.rsplit(":", 1)[-1] in {"null", "bool", "int", "float", "str", "seq", "map"}
}
_PackLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_PackLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
_PackLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+][0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))
_PackLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])


class _PackDumper(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


def _line(mark) -> int | None:
    return mark.line + 1 if mark is not None else None


def load_yaml(text: str) -> Any:
    """Parse one YAML document of a pack; raise ``PackYamlError`` naming the problem and line."""
    loader = _PackLoader(text)
    try:
        return loader.get_single_data()
    except PackYamlError:
        raise
    except ConstructorError as exc:
        tag = getattr(exc, "problem", "") or ""
        hint = ""
        if "!!python" in tag or "tag:yaml.org,2002:python" in tag:
            hint = " (YAML tags that build Python objects are refused / 不允许构造 Python 对象的 YAML 标签)"
        raise PackYamlError(f"YAML not allowed in a pack: {tag}{hint}", _line(exc.problem_mark)) from exc
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or exc.context or "syntax error"
        raise PackYamlError(f"invalid YAML: {problem} / YAML 语法错误", _line(exc.problem_mark)) from exc
    except yaml.YAMLError as exc:
        raise PackYamlError(f"invalid YAML: {exc} / YAML 语法错误") from exc
    except RecursionError:
        raise PackYamlError("YAML nested too deeply / YAML 嵌套层级过深") from None
    except ValueError as exc:   # e.g. an integer of more digits than Python converts
        raise PackYamlError(f"invalid YAML value: {exc} / YAML 取值无效") from None
    finally:
        loader.dispose()


def dump_yaml(data: Any) -> str:
    """Block-style YAML, keys in the given order, 中文 as is, no anchors or aliases."""
    return yaml.dump(data, Dumper=_PackDumper, allow_unicode=True, sort_keys=False,
                     default_flow_style=False, width=100)
