"""Whether a sync in which some projects failed may still commit a version (``failure_policy``).

- ``all_or_nothing``: any failed project fails the sync; no version (Pulp's rule).
- ``partial``: the version commits with every project that succeeded; each failed project keeps
  exactly its previous content and is retried first by the next sync. More than
  ``max_failed_percent`` of the projects asked for failing still fails the sync: an upstream outage
  is a failure, not an empty or stale version.
- ``auto`` (the default): ``partial`` for a whole-index remote (no includes), where one project's
  persistent error must not hold back hundreds of thousands of others; ``all_or_nothing`` for a remote
  with includes, whose few projects are each wanted.

Quarantined files (bytes that failed their digest twice) are not failed projects: the rest of their
project commits under either rule.

Pure: imports only the standard library.
"""

from __future__ import annotations

import enum

__all__ = ["DEFAULT_MAX_FAILED_PERCENT", "FailurePolicy", "commits_despite_failures"]

#: The share of a sync's projects (percent) that may fail under ``partial`` before the sync fails.
DEFAULT_MAX_FAILED_PERCENT = 5.0


class FailurePolicy(enum.StrEnum):
    """The remote's rule for a sync in which some projects failed."""

    AUTO = "auto"
    PARTIAL = "partial"
    ALL_OR_NOTHING = "all_or_nothing"


def commits_despite_failures(
    policy: FailurePolicy, *, whole_index: bool, failed: int, asked: int, max_failed_percent: float
) -> bool:
    """Return True when the sync commits a version without its ``failed`` projects.

    ``asked`` is the number of projects the sync covers: those it fetched (or tried to) and those
    it left unchanged (an incremental sync).

    >>> commits_despite_failures(FailurePolicy.AUTO, whole_index=True, failed=2, asked=1000, max_failed_percent=5)
    True
    >>> commits_despite_failures(FailurePolicy.AUTO, whole_index=False, failed=1, asked=1000, max_failed_percent=5)
    False
    >>> commits_despite_failures(FailurePolicy.PARTIAL, whole_index=True, failed=60, asked=1000, max_failed_percent=5)
    False
    >>> commits_despite_failures(FailurePolicy.PARTIAL, whole_index=False, failed=0, asked=0, max_failed_percent=0)
    True
    """
    if failed == 0:
        return True
    if policy is FailurePolicy.AUTO:
        policy = FailurePolicy.PARTIAL if whole_index else FailurePolicy.ALL_OR_NOTHING
    if policy is FailurePolicy.ALL_OR_NOTHING or asked <= 0:
        return False
    return 100.0 * failed / asked <= max_failed_percent
