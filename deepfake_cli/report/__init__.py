"""Scan output: machine-readable sinks (JSON, JSONL, CSV) and the rich table for people."""

from deepfake_cli.report.table import ScanProgress, render_table
from deepfake_cli.report.writers import (
    CSV_COLUMNS,
    FORMATS,
    ResultSink,
    completed_paths,
    open_sink,
    read_results,
)

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "ResultSink",
    "ScanProgress",
    "completed_paths",
    "open_sink",
    "read_results",
    "render_table",
]
