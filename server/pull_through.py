"""Pull-through caching: a project the repository does not have is looked up on its pull-through remote.

On a request for such a project (latest-version routes only; a pinned version never changes), the
remote's page is fetched, its files filtered with the remote's own includes, excludes and filters
(``mirrorflow.tasks.filters``), and the kept files are recorded as packages plus rows of
``pull_through_packages`` (no repository version is created). The page is then served from those
rows; it is fetched again from the remote once ``ttl`` seconds have passed, adding new files.
When the remote is unreachable, the cached files are served as they are.
Files are fetched through on first request (the remote's ``immediate`` acts as ``on_demand`` here),
or proxied when its policy is ``streamed``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from packaging.utils import NormalizedName

from mirrorflow.server.upstream import ServeError, UpstreamRemote, Upstreams
from mirrorflow.storage.provenance import record_urls
from mirrorflow.storage.records import NewPackage, RepositoryState, ServedFile
from mirrorflow.storage.serving import ServingCatalog
from mirrorflow.tasks.blocklist import Blocklist
from mirrorflow.tasks.distributions import ProjectPage
from mirrorflow.tasks.fetch import package_record
from mirrorflow.tasks.filters import filter_project, wanted_projects
from mirrorflow.tasks.index_client import IndexClientError, ProjectNotFound
from mirrorflow.tasks.simple import InvalidPage

__all__ = ["pull_through_files"]

log = logging.getLogger("mirrorflow.server")


def pull_through_files(
    serving: ServingCatalog,
    upstreams: Upstreams,
    repository: RepositoryState,
    project: NormalizedName,
    *,
    ttl: timedelta,
) -> list[ServedFile]:
    """Return the project's files from the pull-through cache, refreshing it from the remote when stale.

    Returns [] when neither the cache nor the remote has the project (or the remote's filters
    leave nothing). Raises ``ServeError`` (502) when the remote fails and nothing is cached.
    """
    cached, fetched = serving.pull_through_files(repository.id, project)
    now = datetime.now(UTC)
    if fetched is not None and now - fetched < ttl:
        return cached
    remote = upstreams.remote(repository.pull_through_remote)
    if remote is None or not wanted_projects([project], remote.spec):
        return cached
    try:
        page = remote.index.get_project(project)
    except ProjectNotFound:
        return cached
    except (IndexClientError, InvalidPage) as exc:
        log.warning("pull-through of %r from %r failed: %s", project, remote.name, exc)
        if cached:
            return cached
        raise ServeError(502, f"{project}: the pull-through remote {remote.name!r} failed: {exc}") from exc
    packages = _packages(page, remote, now, Blocklist.parse(repository.blocklist))
    serving.record_pull_through(repository.id, remote.name, project, packages)
    kept = {package.sha256 for package in packages}
    record_urls(
        serving.catalog,
        repository.id,
        {f.sha256: f.provenance for f in page.files if f.provenance and f.sha256 in kept},
    )
    log.info("pull-through: %d file(s) of %r recorded from %r", len(packages), project, remote.name)
    return serving.pull_through_files(repository.id, project)[0]


def _packages(
    page: ProjectPage, remote: UpstreamRemote, now: datetime, blocklist: Blocklist
) -> list[NewPackage]:
    # The sync's own rules, refusals included: recorded now and fetched on request, a file needs a sha256.
    selection = filter_project(
        page.name,
        page.files,
        remote.spec,
        now=now,
        max_file_bytes=None,
        require_sha256=True,
        blocklist=blocklist,
    )
    if selection.skipped:
        log.info("pull-through of %r skipped %s", page.name, selection.counts())
    return [package_record(page, c, c.file.sha256, c.file.size) for c in selection.kept if c.file.sha256]
