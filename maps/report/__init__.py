"""report.html, the coverage report a person reads, prints and passes on: one file that loads nothing.

``page`` assembles it (:func:`render_report` from plain values, :func:`report_page` for a
request), ``sections`` and ``lists`` write its parts (every figure in a sentence or a table
with its unit), ``charts`` its inline SVG and HTML charts, ``mapdata`` the JSON its map draws,
``inline`` what it carries (Leaflet, its own script and styles, its Content-Security-Policy)
and ``format`` the figures. The map's script and the styles, screen and print, are
``maps/static/coverage-report.js`` and ``.css``.
"""

from maps.report.charts import borough_bars, coverage_chart
from maps.report.mapdata import MAP_GAPS
from maps.report.page import render_report, report_page

__all__ = ["MAP_GAPS", "borough_bars", "coverage_chart", "render_report", "report_page"]
