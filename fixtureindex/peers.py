"""How the third-party index servers are configured against a fixture index: one place for the
interop tests (``tests/support_peers.py``) and the benchmarks (``benchmarks/warm_sync.py``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["bandersnatch_config"]


def bandersnatch_config(mirror: Path, master: str, *, global_timeout: int = 120) -> str:
    """A bandersnatch config mirroring the index at ``master`` (its root URL, no ``/simple/``) into ``mirror``.

    The PEP 691 listing (with serials) instead of XML-RPC; each project from the legacy JSON API;
    stop on the first error. ``global_timeout``: seconds the whole run may take.
    """
    return f"""[mirror]
directory = {mirror}
master = {master}
allow-non-https = true
; the PEP 691 listing (with serials) instead of XML-RPC; each project from the legacy JSON API
api-method = simple
simple-format = ALL
release-files = true
json = false
hash-index = false
workers = 3
timeout = 10
global-timeout = {global_timeout}
stop-on-error = true
"""
