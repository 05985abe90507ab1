"""A remote's proxy_url, proxy_username and proxy_password: every request of a sync goes through
the proxy with the credentials; without them the proxy's 407 fails the sync, naming it."""

from __future__ import annotations


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_a_sync_goes_through_the_remotes_proxy_with_its_credentials(cli, seed_index, forward_proxy):
    _ok(cli("repository", "create", "--name", "foo"))
    _ok(
        cli(
            "remote", "create", "--name", "behind", "--url", seed_index.url, "--proxy-url", forward_proxy.url,
            "--includes", '["shelf-reader"]', "--policy", "immediate",
        )
    )  # fmt: skip
    refused = cli("repository", "sync", "--name", "foo", "--remote", "behind")
    assert refused.exit_code != 0 and "407" in refused.stderr, refused.stderr
    assert forward_proxy.refused and not forward_proxy.seen
    shown = _ok(
        cli(
            "remote", "update", "--name", "behind",
            "--proxy-username", forward_proxy.username, "--proxy-password", forward_proxy.password,
        )
    )  # fmt: skip
    assert forward_proxy.password not in str(shown), "the password is stored, never printed"
    synced = _ok(cli("repository", "sync", "--name", "foo", "--remote", "behind"))
    assert synced["number"] == 1 and synced["report"]["downloaded_files"] == 2
    assert f"{seed_index.url}shelf-reader/" in forward_proxy.seen
    assert sum("/files/" in url for url in forward_proxy.seen) == 2, forward_proxy.seen
