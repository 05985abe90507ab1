"""A private index (a company index): the remote's username / password, or an Authorization
header in ``headers``, reach every request of a sync; without them the 401 fails the sync."""

from __future__ import annotations

import pytest


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json()


@pytest.mark.parametrize("way", ["basic", "header"])
def test_a_sync_of_a_private_index_sends_the_remotes_credentials(cli, private_index, way):
    gate = private_index
    _ok(cli("repository", "create", "--name", "foo"))
    remote = ("remote", "create", "--name", "corp", "--url", gate.url, "--includes", '["shelf-reader"]')
    _ok(cli(*remote, "--policy", "immediate"))
    refused = cli("repository", "sync", "--name", "foo", "--remote", "corp")
    assert refused.exit_code != 0 and "401" in refused.stderr, refused.stderr
    if way == "basic":
        given = ("--username", gate.username, "--password", gate.password)
    else:
        given = ("--headers", f'[{{"Authorization": "Bearer {gate.token}"}}]')
    _ok(cli("remote", "update", "--name", "corp", *given))
    before = len(gate.seen)
    synced = _ok(cli("repository", "sync", "--name", "foo", "--remote", "corp"))
    assert synced["number"] == 1 and synced["report"]["downloaded_files"] == 2
    requests = gate.seen[before:]
    assert sum(path.startswith("/files/") for path, _ in requests) == 2, "the files came from the gate too"
    assert all(auth is not None for _, auth in requests), requests
