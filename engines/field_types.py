"""The field-type registry: one small class per field type of the metadata language.

Each type says how it is stored (SQL column type), how a wire value is coerced and checked, how a
stored value goes back on the wire, its JSON Schema fragment (for OpenAPI and the UI), its form
widget hint and its type in the expression language. Built-ins register through ``register`` the
same way an extension would. Record pipelines, DDL and HTTP live elsewhere.
"""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import sqlalchemy as sa

from .column_types import ExactDecimal, JSONList, UTCDateTime
from .model import Field

EMAIL_RE = re.compile(r"^[^@\s<>\"']{1,64}@[A-Za-z0-9\u00a1-\uffff](?:[A-Za-z0-9\u00a1-\uffff-]{0,62}\.)+[A-Za-z\u00a1-\uffff]{2,63}$")
PHONE_RE = re.compile(r"^\+?[0-9 ()\-]+$")
URL_RE = re.compile(r"^https?://[^\s<>\"']+$", re.IGNORECASE)
MAX_TEXT = 100_000
DATETIME_MIN = datetime(1, 1, 2, tzinfo=UTC)
DATETIME_MAX = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)


class FieldValueError(ValueError):
    """A wire value that does not fit its field; the message is shown to the user."""


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value or value.isspace()
    return isinstance(value, list) and not value


# per scale (0..18): the quantum Decimal("0.01") and the exclusive bound of the 18-digit column
_QUANTA = tuple(Decimal(1).scaleb(-s) for s in range(19))
_LIMITS = tuple(Decimal(10) ** (18 - s) for s in range(19))


def _quantum(scale: int) -> tuple[Decimal, Decimal]:
    if 0 <= scale <= 18:
        return _QUANTA[scale], _LIMITS[scale]
    return Decimal(1).scaleb(-scale), Decimal(10) ** (18 - scale)


class FieldType:
    name: ClassVar[str]
    expr_type: ClassVar[str] = "text"
    widget: ClassVar[str] = "text"
    computed: ClassVar[bool] = False   # value written by the engine, never by users
    has_column: ClassVar[bool] = True
    label: ClassVar[tuple[str, str]] = ("", "")   # (English, 中文)

    def column_type(self, f: Field) -> sa.types.TypeEngine:
        return sa.String(255)

    def coerce(self, value: Any, f: Field) -> Any:
        """Wire value -> Python value (None for blank); raises FieldValueError."""
        if _blank(value):
            return None
        return self._coerce(value, f)

    def _coerce(self, value: Any, f: Field) -> Any:
        return value

    def to_wire(self, value: Any, f: Field, tz: tzinfo) -> Any:
        return value

    def json_schema(self, f: Field) -> dict:
        return {"type": ["string", "null"]}

    def convertible_from(self, other: str) -> bool:
        """Whether a column of type ``other`` may be retyped to this one (values are checked)."""
        return other == self.name


class _TextBase(FieldType):
    default_max = 255

    def coerce(self, value, f):
        if value.__class__ is str:     # the common case, without the generic blank test
            return None if not value or value.isspace() else self._coerce(value, f)
        return super().coerce(value, f)

    def column_type(self, f):
        return sa.String(max(f.max_length or self.default_max, 1))

    def _coerce(self, value, f):
        if not isinstance(value, str):
            raise FieldValueError("must be text / 必须是文本")
        text = value
        limit = f.max_length or self.default_max
        if len(text) > limit:
            raise FieldValueError(f"must be at most {limit} characters / 最多 {limit} 个字符")
        if "\x00" in text:
            raise FieldValueError("must not contain NUL characters / 不能包含空字符")
        return self._check(text.strip() if self.strip else text, f)

    strip = False

    def _check(self, text, f):
        return text

    def json_schema(self, f):
        return {"type": ["string", "null"], "maxLength": f.max_length or self.default_max}

    def convertible_from(self, other):
        return other in TEXTUAL


class TextType(_TextBase):
    name, widget, label = "text", "text", ("Text", "单行文本")


class TextareaType(_TextBase):
    name, widget, label = "textarea", "textarea", ("Long text", "多行文本")
    default_max = MAX_TEXT

    def column_type(self, f):
        return sa.Text()


class EmailType(_TextBase):
    name, widget, label, strip = "email", "email", ("Email", "邮箱"), True

    def _check(self, text, f):
        if not EMAIL_RE.match(text):
            raise FieldValueError("must be an email address / 必须是有效的邮箱地址")
        return text


class PhoneType(_TextBase):
    name, widget, label, strip = "phone", "tel", ("Phone", "电话"), True
    default_max = 40

    def _check(self, text, f):
        digits = sum(ch.isdigit() for ch in text)
        if not PHONE_RE.match(text) or not 5 <= digits <= 20 or "+" in text[1:]:
            raise FieldValueError("must be a phone number: optional +, then 5–20 digits / 必须是电话号码")
        return text


class UrlType(_TextBase):
    name, widget, label, strip = "url", "url", ("URL", "网址"), True
    default_max = 2000

    def _check(self, text, f):
        if not URL_RE.match(text):
            raise FieldValueError("must be an http(s) URL / 必须是 http(s) 网址")
        return text


class SelectType(FieldType):
    name, widget, label = "select", "select", ("Select", "单选")

    def _coerce(self, value, f):
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise FieldValueError("must be one of the options / 必须是选项之一")
        value = str(value)
        if value not in f.option_set:
            raise FieldValueError(f"must be one of {', '.join(f.option_values)} / 必须是选项之一")
        return value

    def json_schema(self, f):
        return {"type": ["string", "null"], "enum": [*f.option_values, None]}

    def convertible_from(self, other):
        return other in TEXTUAL


class MultiselectType(FieldType):
    name, widget, expr_type, label = "multiselect", "multiselect", "list", ("Multi-select", "多选")

    def column_type(self, f):
        return JSONList()

    def coerce(self, value, f):
        if value is None or value == []:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise FieldValueError("must be a list of options / 必须是选项列表")
        bad = [v for v in value if v not in f.option_set]
        if bad and f.options:
            raise FieldValueError(f"unknown option(s) {', '.join(bad)} / 未知选项")
        seen: list[str] = []
        for v in value:
            if v not in seen:
                seen.append(v)
        return seen

    def json_schema(self, f):
        items = {"type": "string"}
        if f.options:
            items["enum"] = f.option_values
        return {"type": ["array", "null"], "items": items}


class NumberType(FieldType):
    name, widget, expr_type, label = "number", "number", "number", ("Number", "数字")

    def column_type(self, f):
        return sa.Float(53)

    def _coerce(self, value, f):
        if isinstance(value, bool):
            raise FieldValueError("must be a number / 必须是数字")
        try:
            num = float(value) if isinstance(value, (str, Decimal)) else value
        except ValueError:
            raise FieldValueError("must be a number / 必须是数字") from None
        if not isinstance(num, (int, float)) or num != num or num in (float("inf"), float("-inf")):
            raise FieldValueError("must be a number / 必须是数字")
        if abs(num) > 1e15:
            raise FieldValueError("is too large / 数值过大")
        _check_range(num, f)
        return int(num) if isinstance(num, float) and num.is_integer() and abs(num) < 2**53 else num

    def to_wire(self, value, f, tz):
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value

    def json_schema(self, f):
        return {"type": ["number", "null"]}

    def convertible_from(self, other):
        return other in NUMERIC or other in TEXTUAL


def _check_range(num, f: Field):
    if f.min is not None and num < f.min:
        raise FieldValueError(f"must be at least {f.min} / 不能小于 {f.min}")
    if f.max is not None and num > f.max:
        raise FieldValueError(f"must be at most {f.max} / 不能大于 {f.max}")


class DecimalType(FieldType):
    name, widget, expr_type, label = "decimal", "decimal", "number", ("Decimal", "小数")

    def column_type(self, f):
        return ExactDecimal(f.scale)

    def _coerce(self, value, f):
        if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
            raise FieldValueError("must be a number / 必须是数字")
        try:
            dec = Decimal(str(value).strip().replace(",", "")) if isinstance(value, str) else Decimal(str(value))
        except InvalidOperation:
            raise FieldValueError("must be a number / 必须是数字") from None
        quantum, limit = _quantum(f.scale)
        if not dec.is_finite() or abs(dec) >= limit:
            raise FieldValueError("is out of range / 数值超出范围")
        _check_range(dec, f)
        return dec.quantize(quantum)

    def to_wire(self, value, f, tz):
        if value is None:
            return None
        quantum = _quantum(f.scale)[0]
        return str((value if isinstance(value, Decimal) else Decimal(value)).quantize(quantum))

    def json_schema(self, f):
        return {"type": ["string", "number", "null"], "description": f"exact, {f.scale} decimals"}

    def convertible_from(self, other):
        return other in NUMERIC or other in TEXTUAL


class CurrencyType(DecimalType):
    name, widget, label = "currency", "currency", ("Currency", "金额")


class PercentType(DecimalType):
    name, widget, label = "percent", "percent", ("Percent", "百分比")


class RatingType(FieldType):
    name, widget, expr_type, label = "rating", "rating", "number", ("Rating", "评分")

    def column_type(self, f):
        return sa.Integer()

    def _coerce(self, value, f):
        if isinstance(value, bool):
            raise FieldValueError("must be a whole number / 必须是整数")
        try:
            num = int(value) if isinstance(value, str) else value
        except ValueError:
            raise FieldValueError("must be a whole number / 必须是整数") from None
        if isinstance(num, float) and num.is_integer():
            num = int(num)
        if not isinstance(num, int):
            raise FieldValueError("must be a whole number / 必须是整数")
        top = int(f.max if f.max is not None else 5)
        low = int(f.min if f.min is not None else 0)
        if not low <= num <= top:
            raise FieldValueError(f"must be between {low} and {top} / 必须在 {low} 到 {top} 之间")
        return num

    def json_schema(self, f):
        return {"type": ["integer", "null"], "minimum": int(f.min or 0), "maximum": int(f.max or 5)}

    def convertible_from(self, other):
        return other in ("rating", "number")


class BooleanType(FieldType):
    name, widget, expr_type, label = "boolean", "checkbox", "bool", ("Yes/No", "是/否")
    TRUE = {"true", "1", "yes", "y", "是", "on"}
    FALSE = {"false", "0", "no", "n", "否", "off"}

    def column_type(self, f):
        return sa.Boolean()

    def coerce(self, value, f):
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in self.TRUE:
            return True
        if isinstance(value, str) and value.strip().lower() in self.FALSE:
            return False
        raise FieldValueError("must be true or false / 必须是 true 或 false")

    def json_schema(self, f):
        return {"type": ["boolean", "null"]}


class DateType(FieldType):
    name, widget, expr_type, label = "date", "date", "date", ("Date", "日期")

    def column_type(self, f):
        return sa.Date()

    def _coerce(self, value, f):
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if not isinstance(value, str):
            raise FieldValueError("must be a date YYYY-MM-DD / 日期格式必须为 YYYY-MM-DD")
        text = value.strip().replace("/", "-")
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise FieldValueError("must be a date YYYY-MM-DD / 日期格式必须为 YYYY-MM-DD") from None

    def to_wire(self, value, f, tz):
        return None if value is None else value.isoformat()

    def json_schema(self, f):
        return {"type": ["string", "null"], "format": "date"}

    def convertible_from(self, other):
        return other in ("date", "datetime", "text")


class DatetimeType(FieldType):
    name, widget, expr_type, label = "datetime", "datetime", "datetime", ("Date and time", "日期时间")

    def column_type(self, f):
        return UTCDateTime()

    def _coerce(self, value, f):
        if isinstance(value, datetime):
            dt = value
        elif isinstance(value, str):
            try:
                dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise FieldValueError("must be an ISO 8601 date and time / 必须是 ISO 8601 日期时间") from None
        else:
            raise FieldValueError("must be an ISO 8601 date and time / 必须是 ISO 8601 日期时间")
        if dt.tzinfo is None:
            # The records service attaches the app's time zone to naive values before this.
            dt = dt.replace(tzinfo=UTC)
        try:
            dt = dt.astimezone(UTC)
        except OverflowError:
            dt = None
        # within a day of the calendar's ends, some time zone's wall clock would fall off it
        if dt is None or not DATETIME_MIN <= dt <= DATETIME_MAX:
            raise FieldValueError("must lie between 0001-01-02 and 9999-12-30 / 日期时间须在 0001-01-02 至 9999-12-30 之间")
        return dt

    def to_wire(self, value, f, tz):
        return None if value is None else value.astimezone(tz).isoformat()

    def json_schema(self, f):
        return {"type": ["string", "null"], "format": "date-time"}

    def convertible_from(self, other):
        return other in ("date", "datetime", "text")


class _IdRef(FieldType):
    expr_type = "number"

    def column_type(self, f):
        return sa.Integer()

    def _coerce(self, value, f):
        if isinstance(value, bool):
            raise FieldValueError("must be a record id / 必须是记录编号")
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or value <= 0 or value > 2**62:
            raise FieldValueError("must be a record id / 必须是记录编号")
        return value

    def json_schema(self, f):
        return {"type": ["integer", "null"]}


class LookupType(_IdRef):
    name, widget, label = "lookup", "lookup", ("Link to record", "关联记录")


class UserType(_IdRef):
    name, widget, label = "user", "user", ("User", "用户")


class FormulaType(FieldType):
    expr_type = "any"

    name, widget, label, computed = "formula", "readonly", ("Formula", "公式"), True

    def column_type(self, f):
        return _result_column(f.result_type or "number", f)

    def coerce(self, value, f):
        return value

    def to_wire(self, value, f, tz):
        if isinstance(value, Decimal):
            return float(value)
        if isinstance(value, datetime):
            return value.astimezone(tz).isoformat()
        if isinstance(value, date):
            return value.isoformat()
        return value

    def json_schema(self, f):
        return {"readOnly": True}


class RollupType(FormulaType):
    name, label = "rollup", ("Roll-up", "汇总")

    def column_type(self, f):
        return sa.Float(53)


def _result_column(result_type: str, f: Field) -> sa.types.TypeEngine:
    return {"number": sa.Float(53), "text": sa.Text(), "bool": sa.Boolean(), "date": sa.Date(),
            "datetime": UTCDateTime(), "list": JSONList()}.get(result_type, sa.Text())


class AutonumberType(FieldType):
    name, widget, label, computed = "autonumber", "readonly", ("Auto number", "自动编号"), True

    def column_type(self, f):
        return sa.String(64)

    def coerce(self, value, f):
        return value

    def json_schema(self, f):
        return {"type": ["string", "null"], "readOnly": True}


class SubtableType(FieldType):
    name, widget, expr_type, has_column, label = "subtable", "subtable", "list", False, ("Sub-table", "子表")

    def coerce(self, value, f):
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise FieldValueError("must be a list of row objects / 必须是行对象列表")
        if len(value) > 1000:
            raise FieldValueError("has more than 1000 rows / 子表最多 1000 行")
        return value

    def json_schema(self, f):
        return {"type": ["array", "null"], "items": {"type": "object"}}


TEXTUAL = {"text", "textarea", "email", "phone", "url", "select"}
NUMERIC = {"number", "decimal", "currency", "percent", "rating"}

REGISTRY: dict[str, FieldType] = {}


def register(cls: type[FieldType]) -> type[FieldType]:
    REGISTRY[cls.name] = cls()
    return cls


for _cls in (TextType, TextareaType, EmailType, PhoneType, UrlType, SelectType, MultiselectType,
             NumberType, DecimalType, CurrencyType, PercentType, RatingType, BooleanType, DateType,
             DatetimeType, LookupType, UserType, FormulaType, RollupType, AutonumberType, SubtableType):
    register(_cls)


def field_type(name: str) -> FieldType:
    return REGISTRY[name]


def expr_type_of(f: Field) -> str:
    if f.type == "formula":
        return f.result_type or "number"
    if f.type == "rollup":
        return "number"
    return REGISTRY[f.type].expr_type


SYSTEM_EXPR_TYPES = {"id": "number", "created_at": "datetime", "updated_at": "datetime",
                     "created_by": "number", "updated_by": "number", "owner": "number",
                     "_version": "number"}
