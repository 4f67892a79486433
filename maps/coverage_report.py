"""``report.html``: the coverage report as one file (see :mod:`maps.report`, which builds it).

Kept as the name the API route and the CLI import.
"""

from maps.report import MAP_GAPS, borough_bars, coverage_chart, render_report, report_page

__all__ = ["MAP_GAPS", "borough_bars", "coverage_chart", "render_report", "report_page"]
