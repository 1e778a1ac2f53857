"""Evaluation results: one record per evaluation in a per-workspace SQLite store.

Workspace layout: ``<ws>/results.sqlite`` (the store), ``<ws>/runs/`` (one folder per run), ``<ws>/data/``.
"""

from saip_bench.results.record import EvalRecord, utc_now_iso
from saip_bench.results.store import (
    RESULTS_FILE,
    SCHEMA_VERSION,
    WORKSPACE_ENV,
    ResultsStore,
    default_workspace,
    open_workspace_store,
    workspace_db_path,
)

__all__ = [
    "RESULTS_FILE",
    "SCHEMA_VERSION",
    "WORKSPACE_ENV",
    "EvalRecord",
    "ResultsStore",
    "default_workspace",
    "open_workspace_store",
    "utc_now_iso",
    "workspace_db_path",
]
