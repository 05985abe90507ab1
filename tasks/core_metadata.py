"""Read PEP 658 core metadata (``*.dist-info/METADATA``) out of a wheel's bytes.

Shared by the server (``mirrorflow.server.metadata``: serving ``<file>.metadata``) and ``repository verify
--repair`` (``mirrorflow.tasks.verify``: restoring a stored ``.metadata`` file), so both extract it the same
way. Standard library only; the bytes come in as chunks (from the artifact store) and are spooled
to a temporary file, so memory stays bounded by ``MAX_METADATA_BYTES``, not the wheel's size.

Errors::

    WheelMetadataError(ValueError)   the wheel is not a zip, or has no single .dist-info/METADATA;
                                     .filename, .reason

Errors raised while iterating the chunks (a store that cannot be read) propagate unchanged.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Iterable

from mirrorflow.storage.errors import MirrorflowError

__all__ = ["MAX_METADATA_BYTES", "WheelMetadataError", "metadata_from_wheel", "metadata_from_zip"]

#: Largest core metadata file served or stored; longer METADATA is cut to this length.
MAX_METADATA_BYTES = 16 * 1024 * 1024


class WheelMetadataError(MirrorflowError, ValueError):
    """The wheel ``filename`` does not give its core metadata, for ``reason``."""

    def __init__(self, filename: str, reason: str) -> None:
        super().__init__(f"{filename!r}: {reason}")
        self.filename = filename
        self.reason = reason


def metadata_from_wheel(chunks: Iterable[bytes], *, filename: str) -> bytes:
    """Return the ``<name>.dist-info/METADATA`` member of the wheel whose bytes are ``chunks``.

    At most ``MAX_METADATA_BYTES`` are returned. Raises ``WheelMetadataError`` when the bytes are
    not a zip file or hold no single top-level ``.dist-info/METADATA``.
    """
    with tempfile.TemporaryFile(prefix="mirrorflow-wheel-") as spool:
        for chunk in chunks:
            spool.write(chunk)
        spool.seek(0)
        try:
            with zipfile.ZipFile(spool) as wheel:
                return metadata_from_zip(wheel, filename=filename)
        except zipfile.BadZipFile as exc:
            raise WheelMetadataError(filename, f"the stored wheel is not a zip file ({exc})") from exc


def metadata_from_zip(wheel: zipfile.ZipFile, *, filename: str) -> bytes:
    """Return the ``<name>.dist-info/METADATA`` member of the open wheel ``wheel``, at most
    ``MAX_METADATA_BYTES`` of it; the wheel may be any seekable file (``mirrorflow.tasks.dist_metadata``
    opens one over HTTP range requests).

    Raises ``WheelMetadataError`` when it holds no single top-level ``.dist-info/METADATA``, and
    ``zipfile.BadZipFile`` when the member cannot be read.
    """
    names = [n for n in wheel.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
    if len(names) != 1:
        raise WheelMetadataError(filename, "no single .dist-info/METADATA in the wheel")
    with wheel.open(names[0]) as member, tempfile.SpooledTemporaryFile() as out:
        shutil.copyfileobj(member, out)
        out.seek(0)
        return out.read(MAX_METADATA_BYTES + 1)[:MAX_METADATA_BYTES]
