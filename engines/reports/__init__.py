"""The report engine: report specs compiled to one aggregate SQL query each, charts and exports.

Public API:

- ``validate_report(app, spec) -> [{"location", "message"[, "position"]}]`` — save-time checks.
- ``run_report(conn, app, spec, tables, *, tz, now, where=None, params=None)`` —
  ``{"columns": [{"key", "label", "type", "role", ...}], "rows": [...], "totals": {...}}``.
- ``drilldown_filter(app, spec, cell_row, column=None) -> str`` — the records behind a row.
- ``run_dashboard(conn, app, key, tables, *, tz, now, where_for, filters=None)``.
- ``render_chart(kind, result, title) -> str`` — accessible SVG.
- ``rows_to_csv(columns, rows) -> Iterator[bytes]``, ``rows_to_xlsx(columns, rows) -> bytes``.

``tables`` is the caller's table provider (``table(entity)``, ``column(entity, field)``); queries
run only on the connection passed in. Numbers in rows are JSON-friendly: counts and integral
sums are ``int``, other numbers ``float`` (exact decimals become floats; averages and ratios are
rounded to 4 places, percentages to 2); dates and buckets are ISO dates (``"2026-01-01"``, the
first day of the bucket in the app's time zone), datetimes ISO 8601 in the app's time zone.
This package owns reports; it imports no web, builder or runtime code.
"""
from .charts import CHART_KINDS, render_chart
from .dashboards import run_dashboard
from .exports import rows_to_csv, rows_to_xlsx
from .runner import drilldown_filter, run_report
from .spec import AGGS, BUCKETS, CHARTS, KINDS, MAX_LIMIT
from .validation import validate_report

__all__ = ["AGGS", "BUCKETS", "CHARTS", "CHART_KINDS", "KINDS", "MAX_LIMIT", "drilldown_filter",
           "render_chart", "rows_to_csv", "rows_to_xlsx", "run_dashboard", "run_report", "validate_report"]
