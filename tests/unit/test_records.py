"""The package row's three records agree, and the page renderer loads no database code."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from mirrorflow.storage.records import NewPackage, PageFile, ServedFile

ROOT = Path(__file__).resolve().parents[2]


_SERVED = ("package_id", *NewPackage._fields, "artifact_sha256", "remote", "core_metadata_sha256")


def test_a_served_file_is_the_written_row_plus_where_its_bytes_are() -> None:
    fields = tuple(field.name for field in dataclasses.fields(ServedFile))
    assert fields == ("package_id", "package", "artifact_sha256", "remote", "core_metadata_sha256")
    row = tuple(range(len(_SERVED)))
    file = ServedFile.from_row(row)
    flat = (file.package_id, *file.package, file.artifact_sha256, file.remote, file.core_metadata_sha256)
    assert flat == row, "from_row reads the row in the serving query's order"


def test_a_page_file_is_named_and_ordered_as_the_served_file() -> None:
    served = list(_SERVED)
    assert list(PageFile._fields) == [name for name in served if name in PageFile._fields]
    assert set(PageFile._fields) <= set(served)


def test_rendering_a_page_loads_no_database_web_or_prefect_code() -> None:
    """``mirrorflow.server.pages`` is pure: importing it (and the records) loads only the stdlib and packaging."""
    code = (
        "import json, sys; import mirrorflow.server.pages, mirrorflow.storage.records; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = set(json.loads(result.stdout))
    assert "sqlalchemy" not in loaded
    assert loaded.isdisjoint({"sqlalchemy", "prefect", "httpx", "minio", "pydantic", "starlette", "alembic"})
