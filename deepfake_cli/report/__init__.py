"""Scan output: machine-readable sinks (JSON, JSONL, CSV) and the rich table for people."""

# The progress bar lives in deepfake_cli.progress (extract-faces uses it too); kept importable here.
from deepfake_cli.progress import ScanProgress
from deepfake_cli.report.table import render_table
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
