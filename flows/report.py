"""The run report as Prefect artifacts: a table, a markdown summary, and a progress bar.

Artifacts are keyed by repository (``sync-<repository>``), so the Prefect UI shows each
repository's reports as one history. Called only from inside the sync flow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

__all__ = [
    "artifact_key",
    "closure_lines",
    "gone_line",
    "report_rows",
    "summary_markdown",
    "publish_failure",
    "publish_report",
    "publish_end",
    "end_progress",
    "SyncProgress",
]


def artifact_key(repository: str, suffix: str = "") -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) for ``repository``.

    >>> artifact_key("Foo_Bar.2", "progress")
    'sync-foo-bar-2-progress'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", repository.lower()).strip("-") or "repository"
    return f"sync-{slug}" + (f"-{suffix}" if suffix else "")


def report_rows(summary: Mapping[str, Any], counts: Mapping[str, int] | None) -> list[dict[str, str]]:
    """The report as ``metric / value`` rows: counts, bytes, files dropped per rule, failures.

    >>> report_rows({"projects": 2, "downloaded_bytes": 10}, {"added": 1})[:2]
    [{'metric': 'added', 'value': '1'}, {'metric': 'projects', 'value': '2'}]
    """
    rows = [{"metric": name, "value": str(value)} for name, value in (counts or {}).items()]
    for name in (
        "projects",
        "files_kept",
        "legacy_filenames",
        "resumed_files",
        "downloaded_files",
        "downloaded_bytes",
        "provenance_recorded",
        "provenance_fetched",
        "duration_s",
        "lock_wait_s",
    ):
        if name in summary:
            rows.append({"metric": name, "value": str(summary[name])})
    for rule, count in sorted((summary.get("skipped") or {}).items()):
        rows.append({"metric": f"dropped by {rule}", "value": str(count)})
    for name in summary.get("not_found") or []:
        rows.append({"metric": "not found upstream", "value": name})
    for name, status in sorted((summary.get("project_status") or {}).items()):
        rows.append({"metric": f"upstream status: {name}", "value": status})
    for filename, why in sorted((summary.get("provenance_failed") or {}).items()):
        rows.append({"metric": f"provenance not fetched: {filename}", "value": why})
    for filename, why in sorted((summary.get("advisories") or {}).items()):
        rows.append({"metric": f"kept out by advisory: {filename}", "value": why})
    for filename, why in sorted((summary.get("advisories_removed") or {}).items()):
        rows.append({"metric": f"removed by advisory: {filename}", "value": why})
    for name, change in sorted((summary.get("status_changes") or {}).items()):
        rows.append({"metric": f"status change: {name}", "value": change})
    for name in summary.get("withdrawn") or []:
        rows.append({"metric": "removed, quarantined upstream", "value": name})
    rows.extend(_gone_rows(summary.get("gone_upstream") or {}))
    for filename, why in sorted((summary.get("unverifiable") or {}).items()):
        rows.append({"metric": f"quarantined: {filename}", "value": why})
    for name, why in sorted((summary.get("failures") or {}).items()):
        rows.append({"metric": f"failed: {name}", "value": why})
    closure = summary.get("closure") or {}
    for item in closure.get("added") or []:
        rows.append({"metric": f"closure added: {item['project']}", "value": item["chain"]})
    for item in closure.get("unknown") or []:
        rows.append({"metric": f"dependencies unknown: {item['release']}", "value": item["reason"]})
    for item in closure.get("unsatisfied") or []:
        rows.append({"metric": "unsatisfied requirement", "value": f"{item['requirement']}: {item['why']}"})
    for item in closure.get("excluded") or []:
        rows.append({"metric": "excluded dependency (closure incomplete)", "value": item["requirement"]})
    return rows


def gone_line(gone: Mapping[str, Any]) -> str | None:
    """``"gone upstream: 3 projects, 12 files"``, or None when the upstream took nothing down.

    >>> gone_line({"projects": ["a"], "files": {"b": ["b-1.tar.gz", "b-2.tar.gz"]}})
    'gone upstream: 1 projects, 2 files'
    """
    projects, files = gone.get("projects") or [], gone.get("files") or {}
    count = sum(len(names) for names in files.values())
    return f"gone upstream: {len(projects)} projects, {count} files" if projects or count else None


def _gone_rows(gone: Mapping[str, Any]) -> list[dict[str, str]]:
    line = gone_line(gone)
    if line is None:
        return []
    rows = [{"metric": "gone upstream", "value": line.removeprefix("gone upstream: ")}]
    rows += [{"metric": "gone upstream: project", "value": name} for name in gone.get("projects") or []]
    for name, filenames in sorted((gone.get("files") or {}).items()):
        rows += [{"metric": f"gone upstream: file of {name}", "value": f} for f in filenames]
    return rows


def _events_markdown(summary: Mapping[str, Any]) -> str:
    """The supply-chain events of a sync: status changes, quarantine removals, takedowns."""
    lines = [
        f"- `{name}`: {change}" for name, change in sorted((summary.get("status_changes") or {}).items())
    ]
    lines += [f"- `{name}`: removed, quarantined upstream" for name in summary.get("withdrawn") or []]
    gone = summary.get("gone_upstream") or {}
    line = gone_line(gone)
    if line is not None:
        shown = ", ".join(
            f"`{n}`" for n in [*(gone.get("projects") or []), *sorted(gone.get("files") or {})][:10]
        )
        lines.append(f"- {line} ({shown})")
    return "\n## Upstream changes\n\n" + "\n".join(lines) + "\n" if lines else ""


def closure_lines(summary: Mapping[str, Any]) -> list[str]:
    """The dependency closure's part of a report (``mirrorflow.tasks.closure.ClosureReport``), as lines.

    >>> closure_lines({"closure": {"environments": "CPython 3.12 on linux", "added": [
    ...     {"project": "sqlparse", "chain": "sqlparse>=0.3.1 <- django 5.2"}]}})
    ['dependency closure (CPython 3.12 on linux): 1 project(s) added', 'added sqlparse: sqlparse>=0.3.1 <- django 5.2']
    """
    closure = summary.get("closure")
    if not closure:
        return []
    added = closure.get("added") or []
    lines = [f"dependency closure ({closure.get('environments')}): {len(added)} project(s) added"]
    lines += [f"added {item['project']}: {item['chain']}" for item in added]
    lines += [
        f"dependencies unknown: {i['release']} ({i['file']}): {i['reason']}"
        for i in closure.get("unknown") or []
    ]
    lines += [f"unsatisfied: {i['requirement']}: {i['why']}" for i in closure.get("unsatisfied") or []]
    lines += [
        f"excluded, closure incomplete: {i['requirement']} (exclude {i['exclude']!r})"
        for i in closure.get("excluded") or []
    ]
    lines += [f"invalid Requires-Dist in {i['release']}: {i['line']!r}" for i in closure.get("invalid") or []]
    return lines


def summary_markdown(
    repository: str,
    version: int | None,
    previous: int,
    summary: Mapping[str, Any],
    counts: Mapping[str, int] | None,
) -> str:
    """A short markdown summary naming the new version (or why there is none)."""
    failures = summary.get("failures") or {}
    if failures:
        head = f"# Sync of `{repository}` failed: no new version\n\n{len(failures)} project(s) failed:\n\n"
        return head + "\n".join(f"- `{name}`: {why}" for name, why in sorted(failures.items())) + "\n"
    if version is None:
        return (
            f"# `{repository}`: nothing changed\n\nThe repository stays at **version {previous}**.\n"
            + _events_markdown(summary)
            + _advisory_lines(summary)
            + _closure_markdown(summary)
        )
    c = counts or {}
    return (
        (
            f"# `{repository}` is now at version {version}\n\n"
            f"**Version {version}**: {c.get('added', 0)} added, {c.get('removed', 0)} removed, "
            f"{c.get('present', 0)} present; {summary.get('downloaded_bytes', 0)} bytes downloaded in "
            f"{summary.get('duration_s', 0)} s.\n\n"
            f"Show it with `mirrorflow repository version show --repository {repository} --version {version}`.\n"
        )
        + _events_markdown(summary)
        + _advisory_lines(summary)
        + _closure_markdown(summary)
    )


def _advisory_lines(summary: Mapping[str, Any]) -> str:
    """One line per file an advisory kept out or removed (docs/supply-chain.md); empty when none.

    >>> _advisory_lines({"advisories": {"x-2.0.tar.gz": "MAL-2024-1 names x 2.0"}})
    '\\nAdvisories:\\n\\n- kept out `x-2.0.tar.gz`: MAL-2024-1 names x 2.0\\n'
    """
    lines = [f"- kept out `{f}`: {why}" for f, why in sorted((summary.get("advisories") or {}).items())]
    lines += [
        f"- removed `{f}`: {why}" for f, why in sorted((summary.get("advisories_removed") or {}).items())
    ]
    if not lines:
        return ""
    return "\nAdvisories:\n\n" + "\n".join(lines) + "\n"


def _closure_markdown(summary: Mapping[str, Any]) -> str:
    lines = closure_lines(summary)
    if not lines:
        return ""
    return f"\n## Dependency closure\n\n{lines[0]}\n\n" + "".join(f"- {line}\n" for line in lines[1:])


def publish_report(
    repository: str,
    *,
    version: int | None,
    previous: int,
    summary: Mapping[str, Any],
    counts: Mapping[str, int] | None,
) -> None:
    """Create the run's table and markdown artifacts."""
    create_table_artifact(
        report_rows(summary, counts),
        key=artifact_key(repository),
        description=f"Sync report of repository {repository!r}",
    )
    create_markdown_artifact(
        summary_markdown(repository, version, previous, summary, counts),
        key=artifact_key(repository, "summary"),
        description=f"Sync summary of repository {repository!r}",
    )


def publish_failure(repository: str, error: BaseException) -> None:
    """Replace the repository's summary with what ended this run, naming the run (any failure)."""
    from prefect.runtime import flow_run

    what = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    create_markdown_artifact(
        f"# Sync of `{repository}` failed: no new version\n\n"
        f"Run `{flow_run.name}` ({flow_run.id}) ended with `{type(error).__name__}`:\n\n> {what}\n",
        key=artifact_key(repository, "summary"),
        description=f"Sync summary of repository {repository!r}",
    )


def publish_end(flow: Any, flow_run: Any, state: Any) -> None:
    """A flow-run state hook (crashed, cancelled): the summary says how the run ended, naming it.

    These runs end outside the flow's code (the runner killed its process, or the process died),
    so the hook runs where the runner is: no run context, the run is named explicitly.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    repository = str((flow_run.parameters or {}).get("repository") or "")
    ended = (state.name or state.type.value).lower()
    what = ((state.message or "").strip().splitlines() or [f"the run is {ended}"])[0]
    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(
                key=artifact_key(repository, "summary"),
                type="markdown",
                data=f"# Sync of `{repository}` {ended}: no new version\n\n"
                f"Run `{flow_run.name}` ({flow_run.id}) ended **{state.name}**:\n\n> {what}\n",
                description=f"Sync summary of repository {repository!r}",
                flow_run_id=flow_run.id,
            )
        )
        progress = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[artifact_key(repository, "progress")]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]),
            )
        )
        for artifact in progress:  # it keeps the figure the last finished batch left: say it is final
            client.update_artifact(
                artifact.id,
                ArtifactUpdate(
                    data=artifact.data,
                    description=f"Sync of {repository!r} {ended} at {artifact.data}% of its projects",
                ),
            )


#: The running sync's progress artifact, for ``end_progress`` (set by ``SyncProgress``).
_CURRENT: ContextVar[SyncProgress | None] = ContextVar("mirrorflow_sync_progress", default=None)


def end_progress(error: BaseException) -> None:
    """Leave the running sync's progress at its real figure, saying how it ended (no-op before it started)."""
    progress = _CURRENT.get()
    if progress is not None:
        progress.fail(error)


class SyncProgress:
    """A progress artifact advanced as batches finish (percent of projects done)."""

    def __init__(self, repository: str, total: int) -> None:
        self.repository, self.total, self.done = repository, total, 0
        self._id: UUID = create_progress_artifact(  # type: ignore[assignment]
            0.0,
            key=artifact_key(repository, "progress"),
            description=f"Sync of {repository!r}: projects done",
        )
        _CURRENT.set(self)

    def percent(self, done: int) -> float:
        """Percent of the projects, rounded: 100 only when every project is done.

        >>> progress = SyncProgress.__new__(SyncProgress); progress.total = 3
        >>> progress.percent(0), progress.percent(2), progress.percent(3)
        (0.0, 66.7, 100.0)
        """
        if self.total == 0:
            return 100.0
        return min(round(100.0 * done / self.total, 1), 100.0)

    def advance(self, count: int) -> None:
        self.done += count
        update_progress_artifact(self._id, self.percent(self.done))

    def fail(self, error: BaseException) -> None:
        """End at the share of projects that synced (failed ones are not done), saying why."""
        failed = len(getattr(error, "failures", None) or {})
        synced = max(self.done - failed, 0)
        update_progress_artifact(
            self._id,
            self.percent(synced),
            description=f"Sync of {self.repository!r} ended with {type(error).__name__}: {synced} of "
            f"{self.total} project(s) synced" + (f", {failed} failed" if failed else "") + "; no new version",
        )
        _CURRENT.set(None)
