"""Shared test fixtures.

Each support module keeps the fixtures of one real component; they are imported here so that
every test module sees them:

- ``support_index``: fixture indexes (real tiny wheels and sdists) served over loopback HTTP;
- ``support_s3``: a moto S3 server on a loopback port, driven by the real minio client;
- ``support_catalog``: SQLite and PostgreSQL catalogs;
- ``support_server``: the index server's request log;
- ``support_prefect``: one Prefect test harness per session, a mirrorflow environment and CLI per test;
- ``support_tls``: the seed index behind an HTTPS front offering HTTP/2, with a test CA;
- ``support_proxy``: a forwarding HTTP proxy and a private index, both asking for credentials;
- ``support_peers``: third-party index servers (pypiserver, devpi, bandersnatch, proxpi) and
  ``mirrorflow serve``, each serving the seed catalog's files.
"""

from support_catalog import *  # noqa: F403
from support_index import *  # noqa: F403
from support_peers import *  # noqa: F403
from support_prefect import *  # noqa: F403
from support_proxy import *  # noqa: F403
from support_s3 import *  # noqa: F403
from support_server import *  # noqa: F403
from support_tls import *  # noqa: F403
