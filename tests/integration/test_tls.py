"""An HTTPS upstream: HTTP/2 where it offers it, its CA given as the remote's ca_cert, and a
certificate nobody trusts refused at once (no retries), unless tls_validation is off."""

from __future__ import annotations

import ssl

import httpx
import pytest

from mirrorflow.tasks.clients import http_client_from
from mirrorflow.tasks.config import HttpSpec
from mirrorflow.tasks.index_client import IndexClient, UpstreamError, build_http_client


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_an_https_upstream_offering_http2_is_synced_over_http2_with_its_ca(cli, tls_index):
    _ok(cli("repository", "create", "--name", "foo"))
    remote = _ok(
        cli(
            "remote", "create", "--name", "tls", "--url", tls_index.url, "--ca-cert", tls_index.ca_pem,
            "--includes", '["shelf-reader"]', "--policy", "immediate",
        )
    )  # fmt: skip
    assert remote["ca_cert"].startswith("-----BEGIN CERTIFICATE-----")
    protocols, seen = dict(tls_index.protocols), len(tls_index.paths)
    synced = _ok(cli("repository", "sync", "--name", "foo", "--remote", "tls"))
    assert synced["number"] == 1 and synced["changed"] is True
    assert synced["report"]["downloaded_files"] == 2
    assert tls_index.protocols["h2"] > protocols.get("h2", 0), "the sync negotiated HTTP/2"
    assert tls_index.protocols["http/1.1"] == protocols.get("http/1.1", 0), "and never HTTP/1.1"
    asked = tls_index.paths[seen:]
    assert "/simple/shelf-reader/" in asked
    assert sum(path.startswith("/files/") for path in asked) == 2, "both files came over HTTP/2 streams"


def test_an_upstream_whose_certificate_is_not_trusted_fails_at_once_naming_the_fields(cli, tls_index):
    _ok(cli("repository", "create", "--name", "foo"))
    _ok(cli("remote", "create", "--name", "tls", "--url", tls_index.url, "--includes", '["shelf-reader"]'))
    connections = sum(tls_index.protocols.values())
    failed = cli("repository", "sync", "--name", "foo", "--remote", "tls")
    assert failed.exit_code != 0
    assert "TLS certificate not trusted" in failed.stderr and "ca_cert" in failed.stderr, failed.stderr
    assert _ok(cli("repository", "show", "--name", "foo"))["latest_version"] == 0
    _ok(cli("remote", "update", "--name", "tls", "--no-tls-validation"))
    assert _ok(cli("repository", "sync", "--name", "foo", "--remote", "tls"))["number"] == 1
    assert sum(tls_index.protocols.values()) > connections


def test_a_certificate_refusal_is_not_transient(tls_index):
    """Retrying cannot make a certificate trusted: an UpstreamError, not a TransientError."""
    with build_http_client() as http, pytest.raises(UpstreamError) as refused:
        IndexClient(tls_index.url, client=http).get_project("shelf-reader")
    assert refused.value.status is None and "tls_validation" in str(refused.value)
    assert isinstance(refused.value.__cause__, httpx.ConnectError)


def test_an_upstream_asking_for_a_client_certificate_gets_the_remotes(cli, mtls_index):
    """client_cert and client_key (PEM text, the key stored encrypted) are presented in the handshake."""
    _ok(cli("repository", "create", "--name", "foo"))
    _ok(
        cli(
            "remote", "create", "--name", "mtls", "--url", mtls_index.url, "--ca-cert", mtls_index.ca_pem,
            "--includes", '["shelf-reader"]',
        )
    )  # fmt: skip
    without = cli("repository", "sync", "--name", "foo", "--remote", "mtls")
    assert without.exit_code != 0, "no client certificate: the upstream hangs up"
    _ok(
        cli(
            "remote", "update", "--name", "mtls",
            "--client-cert", mtls_index.client_cert_pem, "--client-key", mtls_index.client_key_pem,
        )
    )  # fmt: skip
    assert _ok(cli("repository", "sync", "--name", "foo", "--remote", "mtls"))["number"] == 1


@pytest.fixture
def trust_loads(monkeypatch):
    """How many times a TLS context has loaded the system's CA certificates."""
    calls = []
    original = ssl.SSLContext.load_default_certs

    def counting(self, *args, **kwargs):
        calls.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", counting)
    return calls


def test_a_plain_http_upstream_loads_no_ca_certificates(seed_index, trust_loads):
    spec = HttpSpec(index_url=seed_index.url, concurrency=2, max_page_bytes=1 << 20)
    with http_client_from(spec) as client:
        assert client.get(seed_index.url + "shelf-reader/").status_code == 200
    assert trust_loads == [], "the system's CA store was loaded for an http:// upstream"


def test_the_system_trust_loads_on_the_first_tls_connection(tls_index, tmp_path, monkeypatch, trust_loads):
    """Without a ca_cert, the system store is trusted (SSL_CERT_FILE names it here), loaded once, on first use."""
    bundle = tmp_path / "system-ca.pem"
    bundle.write_text(tls_index.ca_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    spec = HttpSpec(index_url=tls_index.url, concurrency=2, max_page_bytes=1 << 20)
    with http_client_from(spec) as client:
        assert trust_loads == []
        assert client.get(tls_index.url + "shelf-reader/").status_code == 200
        assert client.get(tls_index.url + "scipy/").status_code == 200
    assert len(trust_loads) == 1
