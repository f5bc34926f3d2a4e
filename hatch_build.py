"""Build hook: compile the gettext catalogs (archivectl/locale/*/LC_MESSAGES/*.po -> .mo).

The .mo files are made at every build, editable installs included
(`pip install -e .`), and are not committed: the .po is the source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CompileCatalogs(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        root = Path(self.root)
        for po in sorted((root / "archivectl" / "locale").glob("*/LC_MESSAGES/*.po")):
            with po.open("rb") as source:
                catalog = read_po(source, locale=po.parent.parent.name)
            mo = po.with_suffix(".mo")
            with mo.open("wb") as target:
                write_mo(target, catalog)
            # git-ignored, so named explicitly for the wheel
            build_data["artifacts"].append(mo.relative_to(root).as_posix())
