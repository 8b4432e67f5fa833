"""Server-rendered, accessible SVG charts of report results.

Owns the chart kinds (bar, stacked_bar, line, pie, donut, funnel, number, table), each a small
class registered by name, and ``render_chart``. Every chart is a standalone ``<svg role="img">``
with a ``<title>``, a ``<desc>`` that reads out the data, visible text labels and a ``<title>``
tooltip per mark; every user string goes through ``svg.esc``. Nothing is loaded from anywhere
(system fonts only). Reading results as series and the SVG primitives live in ``svg.py``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from engines.errors import ValidationFailed

from .svg import (
    PALETTE,
    axis,
    clip,
    display,
    document,
    esc,
    fmt,
    measures,
    series_model,
    summary,
    text,
    text_width,
)

WIDTH, HEIGHT = 640, 360
NO_DATA = "No data / 暂无数据"


class Chart:
    name: ClassVar[str]
    noun: ClassVar[str]

    def render(self, result: dict, width: int, height: int) -> tuple[str, list[str]]:
        """(description, SVG elements) for ``result``."""
        raise NotImplementedError


def _legend(names: list[str], x: float, y: float, max_w: float) -> list[str]:
    out, cx = [], x
    for i, name in enumerate(names[:12]):
        label = clip(name, 120, 11)
        w = 18 + text_width(label, 11) + 12
        if cx + w > x + max_w:
            break
        out.append(f'<rect x="{cx:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        out.append(text(cx + 14, y, label, size=11))
        cx += w
    return out


class _Axes(Chart):
    """Shared layout of the charts with a value axis: plot box, ticks, category labels."""
    stacked: ClassVar[bool] = False
    left, right, top, bottom = 64, 16, 56, 70

    def render(self, result, width, height):
        cats, series = series_model(result)
        if not cats or not series:
            return NO_DATA, [text(width / 2, height / 2, NO_DATA, anchor="middle", fill="#777")]
        pw, ph = width - self.left - self.right, height - self.top - self.bottom
        if self.stacked:
            top = max((sum(max(v[i], 0) for _, v in series) for i in range(len(cats))), default=0)
        else:
            top = max((max(v) for _, v in series), default=0)
        low = min(0.0, min(min(v) for _, v in series))
        vmin, vmax, tick = axis(low, top)
        span = vmax - vmin

        def y(v: float) -> float:
            return self.top + ph - (v - vmin) / span * ph

        body = []
        for i in range(round(span / tick) + 1):
            v = vmin + tick * i
            body.append(f'<line x1="{self.left}" x2="{self.left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                        f'stroke="#e5e5e5"/>')
            body.append(text(self.left - 6, y(v) + 4, fmt(round(v, 9)), size=11, anchor="end", fill="#666"))
        step = pw / len(cats)
        rotate = len(cats) > 6
        for i, cat in enumerate(cats):
            cx = self.left + step * (i + 0.5)
            label = clip(cat, 90 if rotate else max(step - 4, 24), 11)
            body.append(text(cx, self.top + ph + 16, label, size=11, anchor="end" if rotate else "middle",
                             rotate=-35 if rotate else None))
        body += self.marks(cats, series, y, step, vmin)
        if len(series) > 1:
            body += _legend([n for n, _ in series], self.left, 42, pw)
        body.append(f'<line x1="{self.left}" x2="{self.left + pw}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#999"/>')
        return f"{self.noun}: {summary(cats, series)}", body

    def marks(self, cats, series, y, step, vmin) -> list[str]:
        raise NotImplementedError


def _tip(cat: str, name: str, value: float, multi: bool) -> str:
    return f"<title>{esc(cat)}{' · ' + esc(name) if multi else ''}: {esc(fmt(value))}</title>"


class BarChart(_Axes):
    name, noun = "bar", "Bar chart / 柱状图"

    def marks(self, cats, series, y, step, vmin):
        out, n = [], len(series)
        bw = step * 0.8 / n
        show_values = len(cats) * n <= 24
        for s, (name, values) in enumerate(series):
            for i, v in enumerate(values):
                x = self.left + step * i + step * 0.1 + bw * s
                y0, y1 = sorted((y(0), y(v)))
                out.append(f'<rect x="{x:.1f}" y="{y0:.1f}" width="{bw:.1f}" height="{max(y1 - y0, 0):.1f}" '
                           f'fill="{PALETTE[s % len(PALETTE)]}">{_tip(cats[i], name, v, n > 1)}</rect>')
                if show_values:
                    out.append(text(x + bw / 2, y0 - 4, fmt(v), size=10, anchor="middle", fill="#444"))
        return out


class StackedBarChart(_Axes):
    name, noun, stacked = "stacked_bar", "Stacked bar chart / 堆叠柱状图", True

    def marks(self, cats, series, y, step, vmin):
        out = []
        for i, cat in enumerate(cats):
            base = 0.0
            x = self.left + step * i + step * 0.15
            for s, (name, values) in enumerate(series):
                v = max(values[i], 0.0)
                if v == 0:
                    continue
                out.append(f'<rect x="{x:.1f}" y="{y(base + v):.1f}" width="{step * 0.7:.1f}" '
                           f'height="{y(base) - y(base + v):.1f}" fill="{PALETTE[s % len(PALETTE)]}">'
                           f'{_tip(cat, name, v, True)}</rect>')
                base += v
            out.append(text(x + step * 0.35, y(base) - 4, fmt(base), size=10, anchor="middle", fill="#444"))
        return out


class LineChart(_Axes):
    name, noun = "line", "Line chart / 折线图"

    def marks(self, cats, series, y, step, vmin):
        out = []
        for s, (name, values) in enumerate(series):
            color = PALETTE[s % len(PALETTE)]
            points = [(self.left + step * (i + 0.5), y(v)) for i, v in enumerate(values)]
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                       f'points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in points)}"/>')
            for i, (px, py) in enumerate(points):
                out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{color}">'
                           f'{_tip(cats[i], name, values[i], len(series) > 1)}</circle>')
        return out


class PieChart(Chart):
    name, noun = "pie", "Pie chart / 饼图"
    hole: ClassVar[float] = 0.0

    def render(self, result, width, height):
        cats, series = series_model(result, first_only=True)
        values = [max(v, 0.0) for v in series[0][1]] if series else []
        total = sum(values)
        if not cats or total <= 0:
            return NO_DATA, [text(width / 2, height / 2, NO_DATA, anchor="middle", fill="#777")]
        r = min(width * 0.5, height - 60) / 2 - 8
        cx, cy = 24 + r, 40 + (height - 40) / 2
        body, angle = [], -math.pi / 2
        for i, (cat, v) in enumerate(zip(cats, values, strict=True)):
            if v <= 0:
                continue
            share = v / total
            color = PALETTE[i % len(PALETTE)]
            tip = f"<title>{esc(cat)}: {esc(fmt(v))} ({share:.1%})</title>"
            if share >= 0.9999:
                body.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" fill="{color}">{tip}</circle>')
            else:
                end = angle + share * 2 * math.pi
                x0, y0 = cx + r * math.cos(angle), cy + r * math.sin(angle)
                x1, y1 = cx + r * math.cos(end), cy + r * math.sin(end)
                large = 1 if share > 0.5 else 0
                body.append(f'<path d="M{cx:.1f},{cy:.1f} L{x0:.2f},{y0:.2f} A{r:.1f},{r:.1f} 0 {large} 1 '
                            f'{x1:.2f},{y1:.2f} Z" fill="{color}" stroke="#fff">{tip}</path>')
                angle = end
        if self.hole:
            body.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r * self.hole:.1f}" fill="#fff"/>')
            body.append(text(cx, cy + 5, fmt(total), size=16, anchor="middle", weight="600"))
        lx = cx + r + 28
        for i, (cat, v) in enumerate(list(zip(cats, values, strict=True))[:14]):
            ly = 60 + i * 20
            body.append(f'<rect x="{lx:.1f}" y="{ly - 10:.1f}" width="11" height="11" fill="{PALETTE[i % len(PALETTE)]}"/>')
            body.append(text(lx + 16, ly, f"{clip(cat, width - lx - 120, 12)}  {fmt(v)} ({v / total:.1%})"))
        return f"{self.noun}: {summary(cats, series[:1])}", body


class DonutChart(PieChart):
    name, noun, hole = "donut", "Donut chart / 环形图", 0.58


class FunnelChart(Chart):
    name, noun = "funnel", "Funnel chart / 漏斗图"

    def render(self, result, width, height):
        cats, series = series_model(result, first_only=True)
        rows = result.get("rows") or []
        if not cats or not series:
            return NO_DATA, [text(width / 2, height / 2, NO_DATA, anchor="middle", fill="#777")]
        values = series[0][1]
        top, avail = 44, height - 56
        bh = min(avail / len(cats), 46)
        vmax = max(values) or 1.0
        body, lines = [], []
        for i, (cat, v) in enumerate(zip(cats, values, strict=True)):
            w = max((width * 0.55) * v / vmax, 2)
            x, y = (width * 0.62 - w) / 2 + 8, top + i * bh
            conv = rows[i].get("conversion") if i < len(rows) else None
            note = f" ({fmt(conv)}%)" if conv is not None else ""
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{bh - 6:.1f}" rx="3" '
                        f'fill="{PALETTE[i % len(PALETTE)]}"><title>{esc(cat)}: {esc(fmt(v))}{esc(note)}</title></rect>')
            body.append(text(width * 0.62 + 16, y + bh / 2, f"{clip(cat, width * 0.25, 12)}  {fmt(v)}{note}"))
            lines.append(f"{cat}: {fmt(v)}{note}")
        return f"{self.noun}: " + "; ".join(lines), body


class NumberCard(Chart):
    name, noun = "number", "Number / 指标卡"

    def render(self, result, width, height):
        rows = result.get("rows") or []
        cols = measures(result)
        if not rows or not cols:
            return NO_DATA, [text(width / 2, height / 2, NO_DATA, anchor="middle", fill="#777")]
        main = cols[0]
        value = rows[0].get(main["key"])
        unit = "%" if main.get("type") == "percent" and value is not None else ""
        shown = fmt(value) + unit
        body = [text(width / 2, height / 2 + 8, shown, size=min(56, int(width / max(len(shown), 4))),
                     anchor="middle", weight="700", fill="#222"),
                text(width / 2, height / 2 + 40, clip(str(main.get("label", "")), width - 40, 13), size=13,
                     anchor="middle", fill="#666")]
        desc = f"{main.get('label')}: {shown}"
        change = rows[0].get("change")
        if isinstance(change, int | float):
            arrow = "▲" if change > 0 else "▼" if change < 0 else "■"
            color = "#2e7d32" if change > 0 else "#c62828" if change < 0 else "#666"
            pct = rows[0].get("change_pct")
            extra = f"{arrow} {fmt(abs(change))}" + (f" ({fmt(pct)}%)" if pct is not None else "")
            extra += f" vs {fmt(rows[0].get('previous'))}{unit}"
            body.append(text(width / 2, height / 2 + 64, extra, size=13, anchor="middle", fill=color))
            desc += f"; change {extra} / 较上期"
        return desc, body


class TableChart(Chart):
    name, noun = "table", "Table / 表格"
    max_rows: ClassVar[int] = 30

    def render(self, result, width, height):
        cols = (result.get("columns") or [])[:8]
        rows = (result.get("rows") or [])[: self.max_rows]
        if not cols:
            return NO_DATA, [text(width / 2, height / 2, NO_DATA, anchor="middle", fill="#777")]
        cw = (width - 24) / len(cols)
        body = [f'<rect x="12" y="34" width="{width - 24}" height="22" fill="#f2f2f2"/>']
        for j, c in enumerate(cols):
            body.append(text(16 + j * cw, 50, clip(str(c.get("label", c["key"])), cw - 8, 12), weight="600"))
        for i, r in enumerate(rows):
            y = 74 + i * 20
            for j, c in enumerate(cols):
                cell = display(c, r.get(c["key"])) if c.get("role") == "dimension" else fmt(r.get(c["key"]))
                body.append(text(16 + j * cw, y, clip(cell, cw - 8, 12)))
        more = len(result.get("rows") or []) - len(rows)
        if more > 0:
            body.append(text(16, 74 + len(rows) * 20, f"… {more} more rows / 另有 {more} 行", fill="#777"))
        desc = f"{self.noun}: {len(result.get('rows') or [])} rows / 行; " + ", ".join(
            str(c.get("label", c["key"])) for c in cols)
        return desc, body


CHART_KINDS: Mapping[str, Chart] = MappingProxyType({c.name: c() for c in (
    BarChart, StackedBarChart, LineChart, PieChart, DonutChart, FunnelChart, NumberCard, TableChart)})


def svg_height(kind: str, result: dict) -> int:
    if kind == "table":
        return max(120, 90 + 20 * min(len(result.get("rows") or []), TableChart.max_rows + 1))
    if kind == "number":
        return 200
    return HEIGHT


def render_chart(kind: str, result: dict, title: str, *, width: int = WIDTH, height: int | None = None) -> str:
    """One standalone SVG document of ``result`` drawn as ``kind`` (a name of ``CHART_KINDS``)."""
    chart = CHART_KINDS.get(kind)
    if chart is None:
        msg = f"unknown chart `{kind}`, use one of {', '.join(CHART_KINDS)} / 未知的图表类型 `{kind}`"
        raise ValidationFailed(msg, {"chart": [msg]})
    height = height or svg_height(kind, result)
    desc, body = chart.render(result, width, height)
    return document(kind, title, desc, body, width, height, result)
