"""Evaluation results: one record per evaluation, as a record file and in a per-workspace SQLite store.

Workspace layout: ``<ws>/results.sqlite`` (the store), ``<ws>/records/<dataset>/<uid>.json`` (one record
file per evaluation, what jobs write; ingested into the store), ``<ws>/runs/`` (one folder per run),
``<ws>/data/``.
"""

from saip_bench.results.files import (
    RECORDS_DIR,
    find_record,
    iter_record_files,
    read_record_file,
    write_record_file,
)
from saip_bench.results.record import EvalRecord, utc_now_iso
from saip_bench.results.store import (
    RESULTS_FILE,
    SCHEMA_VERSION,
    WORKSPACE_ENV,
    ResultsStore,
    default_workspace,
    open_workspace_store,
    workspace_db_path,
    workspace_records,
)

__all__ = [
    "RECORDS_DIR",
    "RESULTS_FILE",
    "SCHEMA_VERSION",
    "WORKSPACE_ENV",
    "EvalRecord",
    "ResultsStore",
    "default_workspace",
    "find_record",
    "iter_record_files",
    "open_workspace_store",
    "read_record_file",
    "utc_now_iso",
    "workspace_db_path",
    "workspace_records",
    "write_record_file",
]
