"""``repository verify --provenance``: check each stored PEP 740 attestation against its file's digest.

Uses ``pypi-attestations`` (an optional dependency, imported only here and only when asked): each
provenance object stored for a file of the version is read as a ``Provenance``, and every attestation
of every bundle is verified against ``Distribution(name=<filename>, digest=<sha256>)`` with its
bundle's publisher as the identity (Sigstore's embedded trust root, ``offline=True``: no network).

Errors::

    MirrorflowError
     └── AttestationsUnavailable   pypi-attestations is not installed

Not exercised by the test suite: no real attestation can be built offline, and the package is not
installed where the suite runs (``docs/supply-chain.md`` says so).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.content import ContentWriter
from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.storage.models import Repository
from mirrorflow.storage.provenance import provenance_of

__all__ = ["AttestationsUnavailable", "ProvenanceReport", "require_attestations", "verify_provenance"]


class AttestationsUnavailable(MirrorflowError):
    def __init__(self) -> None:
        super().__init__(
            "provenance: pypi-attestations is not installed; install it (pip install pypi-attestations) "
            "to verify attestations"
        )


def require_attestations() -> None:
    """Raise ``AttestationsUnavailable`` unless ``pypi_attestations`` can be imported."""
    if importlib.util.find_spec("pypi_attestations") is None:
        raise AttestationsUnavailable()


@dataclass(slots=True)
class ProvenanceReport:
    """Files whose attestations all verified, files whose provenance is not fetched yet, and failures."""

    version: int | None
    verified: int = 0
    attestations: int = 0
    unfetched: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "verified_files": self.verified,
            "attestations": self.attestations,
            "unfetched": sorted(self.unfetched),
            "failed": dict(sorted(self.failed.items())),
        }


def verify_provenance(catalog: Catalog, repository: str, number: int | None) -> ProvenanceReport:
    """Verify the stored attestations of every file of ``repository`` version ``number`` (latest: None).

    Raises ``AttestationsUnavailable``, or ``NotFound`` for an unknown repository or version.
    """
    require_attestations()
    pa: Any = importlib.import_module("pypi_attestations")
    packages = ContentWriter(catalog).content_at(repository, number)
    with catalog.reading() as session:  # content_at raised NotFound for an unknown name
        repository_id = session.scalars(select(Repository.id).where(Repository.name == repository)).one()
    report = ProvenanceReport(version=number)
    for package in packages:
        stored = provenance_of(catalog, repository_id, package.sha256)
        if stored is None:
            continue
        if stored.body is None:
            report.unfetched.append(package.filename)
            continue
        try:
            provenance = pa.Provenance.model_validate_json(stored.body)
            dist = pa.Distribution(name=package.filename, digest=package.sha256)
            for bundle in provenance.attestation_bundles:
                for attestation in bundle.attestations:
                    attestation.verify(bundle.publisher, dist, offline=True)
                    report.attestations += 1
        except Exception as exc:  # the library's errors (validation, verification) are one file's failure
            report.failed[package.filename] = f"{type(exc).__name__}: {exc}"
            continue
        report.verified += 1
    return report
