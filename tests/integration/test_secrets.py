"""Secrets: stored encrypted, opened only with the right key, never shown on any output channel."""

from __future__ import annotations

import json
import logging
import stat
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from mirrorflow.flows.remote_spec import RemoteFields
from mirrorflow.flows.runtime import reset_caches, secret_box_for
from mirrorflow.flows.settings import Settings
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.models import Remote
from mirrorflow.storage.schema import SECRET_FIELDS
from mirrorflow.storage.secrets import (
    InvalidSecretKey,
    NoSecretKey,
    SecretBox,
    WrongSecretKey,
    generate_key,
    load_or_create_key,
)

PLANTED = "s3cr3t-planted-XYZ"
#: One planted value per secret field, each containing PLANTED so one grep finds any of them.
SECRETS = {field: f"{PLANTED}-{field}" for field in SECRET_FIELDS} | {"password": PLANTED}
#: The client key must look like a PEM key to be accepted (flows.remote_spec), so it is planted inside one.
SECRETS["client_key"] = f"-----BEGIN PRIVATE KEY-----\n{PLANTED}-client_key\n-----END PRIVATE KEY-----\n"


def _raw_secrets(database_url: str) -> list[tuple[str | None, ...]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [
                tuple(row) for row in conn.execute(text(f"SELECT {', '.join(SECRET_FIELDS)} FROM remotes"))
            ]
    finally:
        engine.dispose()


def test_every_secret_field_is_a_remote_column_and_a_remote_field():
    """One list (``mirrorflow.storage.schema.SECRET_FIELDS``) serves the catalog's encryption and the CLI's hiding."""
    assert set(SECRET_FIELDS) <= {column.key for column in Remote.__table__.columns}
    assert set(SECRET_FIELDS) <= set(RemoteFields.model_fields)


def test_a_box_opens_what_it_sealed_and_only_that():
    box = SecretBox(generate_key())
    sealed = box.encrypt(PLANTED)
    assert PLANTED not in sealed and box.decrypt(sealed) == PLANTED
    assert box.encrypt(PLANTED) != sealed, "a fresh nonce each time: equal secrets do not look equal"
    with pytest.raises(WrongSecretKey, match=r"'password' cannot be decrypted .* MIRRORFLOW_SECRET_KEY"):
        SecretBox(generate_key()).decrypt(sealed, field="password")
    assert generate_key() not in repr(box)


@pytest.mark.parametrize("key", ["", "short", "x" * 44], ids=["empty", "short", "not-base64-of-32"])
def test_a_malformed_key_is_refused_naming_where_it_came_from(key):
    with pytest.raises(InvalidSecretKey, match="MIRRORFLOW_SECRET_KEY is not a valid key"):
        SecretBox(key, source="MIRRORFLOW_SECRET_KEY")


def test_the_embedded_key_file_is_made_once_and_private(tmp_path):
    path = tmp_path / "home" / "secret.key"
    key = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"], "no temporary file left behind"
    path.write_text("not a key\n")
    with pytest.raises(InvalidSecretKey, match="secret.key"):
        load_or_create_key(path)


def test_the_catalog_stores_ciphertext_and_reads_plaintext(catalog_url):
    box = SecretBox(generate_key())
    catalog = Catalog.from_url(catalog_url, secrets=box)
    try:
        created = catalog.create_remote("bar", url="https://index.example/simple/", **SECRETS)
        assert {f: getattr(created, f) for f in SECRETS} == SECRETS
        catalog.update_remote("bar", proxy_password=f"{PLANTED}-rotated")
        (row,) = _raw_secrets(catalog_url)
        assert all(value and PLANTED not in value for value in row), row
        read = catalog.get_remote("bar")
        assert read.proxy_password == f"{PLANTED}-rotated" and read.password == PLANTED
        assert [r.password for r in catalog.list_remotes()] == [PLANTED]
    finally:
        catalog.dispose()

    other = Catalog.from_url(catalog_url, secrets=SecretBox(generate_key()))
    keyless = Catalog.from_url(catalog_url)
    try:
        with pytest.raises(WrongSecretKey, match="'client_key'"):
            other.get_remote("bar")
        with pytest.raises(NoSecretKey, match="'client_key'"):
            keyless.get_remote("bar")
        with pytest.raises(NoSecretKey, match="'password'"):
            keyless.create_remote("plain", url="https://index.example/simple/", password="x")
        keyless.create_remote("open", url="https://index.example/simple/")  # no secret: no key needed
    finally:
        other.dispose()
        keyless.dispose()


def test_a_changed_secret_key_gives_one_clear_line(cli, monkeypatch):
    monkeypatch.setenv("MIRRORFLOW_SECRET_KEY", generate_key())
    reset_caches()
    assert cli("remote", "create", "--name", "bar", "--url", "https://index.example/simple/",
               "--password", PLANTED).exit_code == 0  # fmt: skip
    monkeypatch.setenv("MIRRORFLOW_SECRET_KEY", generate_key())
    reset_caches()
    shown = cli("remote", "show", "--name", "bar")
    assert shown.exit_code == 1 and shown.stdout == ""
    assert shown.stderr.startswith("Error: the stored secret 'password' cannot be decrypted")
    assert len(shown.stderr.strip().splitlines()) == 1 and PLANTED not in shown.stderr
    monkeypatch.setenv("MIRRORFLOW_SECRET_KEY", "not-a-key")
    reset_caches()
    bad = cli("remote", "show", "--name", "bar")
    assert bad.exit_code == 1 and "MIRRORFLOW_SECRET_KEY is not a valid key" in bad.stderr


def test_a_planted_secret_appears_on_no_output_channel(cli, mirrorflow_env, seed_index, caplog):
    """create / show / list / update / sync: stdout, stderr, logs, database rows and Prefect's records."""
    caplog.set_level(logging.DEBUG)
    started = datetime.now(UTC)  # the session's Prefect API also holds other tests' runs
    secret_options = [
        arg for field, value in SECRETS.items() for arg in (f"--{field.replace('_', '-')}", value)
    ]
    outputs = [
        cli("remote", "create", "--name", "bar", "--url", seed_index.url, "--includes", '["shelf-reader"]',
            "--policy", "immediate", *secret_options),
        cli("remote", "show", "--name", "bar"),
        cli("remote", "list"),
        cli("remote", "update", "--name", "bar", "--includes", '["shelf-reader", "mf-demo-lib"]'),
        cli("remote", "update", "--name", "bar", "--password", PLANTED),
        cli("repository", "create", "--name", "foo", "--remote", "bar"),
        cli("repository", "sync", "--name", "foo"),
        cli("repository", "version", "show", "--repository", "foo"),
        cli("content", "list", "--repository", "foo"),
    ]  # fmt: skip
    for result in outputs:
        assert result.exit_code == 0, result.stderr
        assert PLANTED not in result.stdout and PLANTED not in result.stderr
    shown = outputs[1].json()
    assert {f["name"]: f["is_set"] for f in shown["hidden_fields"]} == dict.fromkeys(SECRET_FIELDS, True)
    assert outputs[-1].json(), "the sync ran with the remote's credentials and stored files"

    assert caplog.records, "the sync logged at DEBUG"
    for record in caplog.records:
        assert PLANTED not in record.getMessage() and PLANTED not in repr(record.args), record

    rows = _raw_secrets(mirrorflow_env.database_url)
    assert rows and all(value and PLANTED not in value for row in rows for value in row)
    box = secret_box_for(Settings())
    assert box.decrypt(rows[0][SECRET_FIELDS.index("password")]) == PLANTED
    key_file = Settings().secret_key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, "the embedded default keeps its key private"

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_runs = [
            r
            for r in client.read_flow_runs()
            if r.parameters.get("repository") == "foo" and r.created and r.created >= started
        ]
        assert flow_runs, "the sync's flow run is recorded"
        for run in flow_runs:
            assert set(run.parameters) <= {"repository", "remote", "mirror", "lock_wait_s"}, run.parameters
            assert all(isinstance(v, str | bool | int | float | None) for v in run.parameters.values())
        recorded = [
            *flow_runs,
            *client.read_task_runs(),
            *client.read_logs(),
            *client.read_artifacts(),
        ]
        for item in recorded:
            assert PLANTED not in item.model_dump_json(), type(item).__name__


@pytest.mark.parametrize("field", SECRET_FIELDS)
def test_an_inline_remote_refuses_credentials_that_prefect_would_record(field):
    from mirrorflow.flows.params import InvalidParameters, validate_sync_parameters

    with pytest.raises(InvalidParameters, match=rf"remote\.{field}: credentials cannot be given inline"):
        validate_sync_parameters(
            repository="foo", remote={"url": "https://index.example/simple/", field: SECRETS[field]}
        )
    inline = validate_sync_parameters(repository="foo", remote={"url": "https://index.example/simple/"})
    assert inline.remote is not None and not isinstance(inline.remote, str)


def test_an_inline_remote_refuses_a_credential_header_and_takes_others():
    from mirrorflow.flows.params import InvalidParameters, validate_sync_parameters

    url = "https://index.example/simple/"
    secret = [{"X-Mirror": "eu"}, {"Authorization": f"Bearer {PLANTED}"}]
    with pytest.raises(
        InvalidParameters,
        match=r"remote\.headers: 'Authorization' carries credentials, which cannot be given inline",
    ):
        validate_sync_parameters(repository="foo", remote={"url": url, "headers": secret})
    plain = validate_sync_parameters(repository="foo", remote={"url": url, "headers": [{"X-Mirror": "eu"}]})
    assert plain.remote is not None and plain.remote.headers == [{"X-Mirror": "eu"}]


def test_a_credential_header_is_sent_but_never_printed(cli):
    headers = f'[{{"Authorization": "Bearer {PLANTED}"}}, {{"X-Mirror": "eu"}}]'
    created = cli(
        "remote", "create", "--name", "corp", "--url", "https://index.example/simple/", "--headers", headers
    )
    assert created.exit_code == 0, created.stderr
    assert created.json()["headers"] == [{"Authorization": "<hidden>"}, {"X-Mirror": "eu"}]
    for args in (("remote", "show", "--name", "corp"), ("remote", "list")):
        shown = cli(*args)
        assert shown.exit_code == 0 and PLANTED not in shown.stdout + shown.stderr
    from mirrorflow.flows.remote_spec import RemoteFields
    from mirrorflow.flows.runtime import catalog_for, http_spec_for
    from mirrorflow.flows.settings import Settings

    remote = RemoteFields.from_row(catalog_for(Settings()).get_remote("corp"))
    sent = dict(http_spec_for(remote, concurrency=1, max_page_bytes=1024).headers)
    assert sent["Authorization"] == f"Bearer {PLANTED}", "the stored value is what the requests carry"


def test_a_credential_header_is_stored_sealed_and_read_back_in_the_clear(catalog_url):
    box = SecretBox(generate_key())
    catalog = Catalog.from_url(catalog_url, secrets=box)
    headers = [{"Authorization": f"Bearer {PLANTED}"}, {"X-Mirror": "eu"}]
    try:
        catalog.create_remote("corp", url="https://index.example/simple/", headers=headers)
        assert catalog.get_remote("corp").headers == headers
        catalog.update_remote("corp", headers=[{"X-Api-Token": PLANTED}])
        assert catalog.get_remote("corp").headers == [{"X-Api-Token": PLANTED}]
        catalog.create_remote("older", url="https://index.example/simple/", headers=headers)
        with catalog.engine.begin() as conn:  # a row written before headers were sealed
            conn.execute(
                text("UPDATE remotes SET headers = :h WHERE name = 'older'"), {"h": json.dumps(headers)}
            )
        assert catalog.get_remote("older").headers == headers
    finally:
        catalog.dispose()
    engine = create_engine(catalog_url)
    try:
        with engine.connect() as conn:
            stored = dict(conn.execute(text("SELECT name, headers FROM remotes")).all())
    finally:
        engine.dispose()
    assert PLANTED not in json.dumps(stored["corp"]) and "X-Api-Token" in json.dumps(stored["corp"])
    keyless = Catalog.from_url(catalog_url)
    try:
        with pytest.raises(NoSecretKey, match="'headers'"):
            keyless.get_remote("corp")
    finally:
        keyless.dispose()


def test_secrets_doctests():
    import doctest

    import mirrorflow.storage.secrets

    assert doctest.testmod(mirrorflow.storage.secrets, raise_on_error=True).attempted > 0
