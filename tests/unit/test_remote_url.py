"""The remote URL check: credentials and inner spaces are refused at the wire, never on a stored row."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from mirrorflow.flows.remote_spec import EXTRA_FILTERS, RemoteFields


@pytest.mark.parametrize(
    ("url", "said"),
    [
        pytest.param(
            "https://alice:s3cret@h.example/simple/", "'https://<hidden>@h.example/simple/'", id="user-pass"
        ),
        pytest.param("https://tok@h.example/", "'https://<hidden>@h.example/'", id="token-only"),
        pytest.param("https://h.example/a b/", "%20", id="inner-space"),
    ],
)
def test_a_new_remote_url_with_credentials_or_a_space_is_refused_without_echoing_the_secret(url, said):
    with pytest.raises(ValidationError) as caught:
        RemoteFields.model_validate({"url": url})
    message = str(caught.value.errors()[0]["msg"])
    assert said in message
    assert "s3cret" not in message


def test_a_stored_remote_with_credentials_in_its_url_still_loads():
    # A row as the catalog holds it: Pulp's fields as columns, mirrorflow's own in ``extra_filters``.
    data = RemoteFields.model_validate({"url": "https://h.example/simple/"}).model_dump()
    columns = {name: value for name, value in data.items() if name not in EXTRA_FILTERS}
    row = SimpleNamespace(**columns, extra_filters={name: data[name] for name in EXTRA_FILTERS})
    row.url = "https://alice:s3cret@h.example/simple/"
    assert RemoteFields.from_row(row).url == "https://alice:s3cret@h.example/simple/"
