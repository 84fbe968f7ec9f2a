"""`cocoprep report`: one self-contained HTML page of what an output's records hold.

`gather` reads the shards (parallel, streaming), `build` adds the manifest, the
skip report and examples, `page` writes the HTML, `plots` draws with matplotlib
(the `report` extra).
"""

from cocoprep.report.build import REPORT_NAME, class_flags, report
from cocoprep.report.model import ReportProblems, ReportResult
from cocoprep.report.plots import MissingExtra

__all__ = ["REPORT_NAME", "MissingExtra", "ReportProblems", "ReportResult", "class_flags",
           "report"]
