"""A requirement given twice in includes or excludes is refused at the wire, never on a stored row."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from mirrorflow.flows.remote_spec import EXTRA_FILTERS, RemoteFields, describe_validation_error

URL = "https://index.example/simple/"


@pytest.mark.parametrize(
    ("field", "values", "said"),
    [
        pytest.param("includes", ["django", "django"], "includes: 'django' is given twice", id="same"),
        pytest.param(
            "excludes", ["Django>=4", "django >= 4"], "excludes: 'django >= 4' is given twice (as 'Django>=4')",
            id="same-requirement-spelled-otherwise",
        ),
    ],
)  # fmt: skip
def test_a_requirement_given_twice_is_one_line_naming_the_field_and_the_value(field, values, said):
    with pytest.raises(ValidationError) as caught:
        RemoteFields.model_validate({"url": URL, field: values})
    assert describe_validation_error(caught.value) == said


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(["django", "django>=4"], id="one-project-two-requirements"),
        pytest.param(["django[argon2]", "django"], id="extras-differ"),
    ],
)
def test_distinct_requirements_of_one_project_are_kept(values):
    assert RemoteFields.model_validate({"url": URL, "includes": values}).includes == values


def _row(**changes: object) -> SimpleNamespace:
    data = RemoteFields.model_validate({"url": URL}).model_dump() | changes
    columns = {name: value for name, value in data.items() if name not in EXTRA_FILTERS}
    return SimpleNamespace(**columns, extra_filters={name: data[name] for name in EXTRA_FILTERS})


def test_a_stored_remote_with_a_duplicate_still_loads_and_updates_another_field():
    row = _row(includes=["django", "django"])
    assert RemoteFields.from_row(row).includes == ["django", "django"]
    merged = RemoteFields.from_row(row).model_dump() | {"tls_validation": False}
    updated = RemoteFields.model_validate(merged, context={"given": frozenset({"tls_validation"})})
    assert updated.includes == ["django", "django"]
    with pytest.raises(ValidationError, match="given twice"):  # given anew, it is refused
        RemoteFields.model_validate(merged, context={"given": frozenset({"includes"})})
