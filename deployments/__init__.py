# This folder installs as mirrorflow.<folder> (pyproject's package-dir). Imported under its bare
# folder name (python run from the repository root), its modules would load a second time beside the
# mirrorflow.* ones, with their own copies of every class, flow and setting.
if not __name__.startswith("mirrorflow."):
    raise ImportError(
        f"import mirrorflow.{__name__}, not {__name__}: the folder installs as mirrorflow.{__name__}"
    )
