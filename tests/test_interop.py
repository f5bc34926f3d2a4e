"""Nothing is locked into archivectl: the reference age CLI opens what it writes."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import OWNER_PHONE, World

from archivectl import yamlio

pytestmark = pytest.mark.skipif(shutil.which("age") is None, reason="reference age CLI missing: apt-get install age")


def test_reference_age_opens_record_key_then_sealed_block(world: World, tmp_path):
    number = world.add()
    butler_key = world.people["but01"].key
    record_key = tmp_path / "k"
    subprocess.run(["age", "-d", "-i", str(butler_key), "-o", str(record_key), str(world.key_file(number))], check=True)
    record = yamlio.load_file(world.root / f"households/B03/1203/{number}/record.yaml")
    sealed_file = tmp_path / "sealed.age"
    sealed_file.write_text(record["sealed"])
    plain = subprocess.run(
        ["age", "-d", "-i", str(record_key), str(sealed_file)], check=True, capture_output=True
    ).stdout
    assert yamlio.loads(plain)["customers"][0]["phone"] == OWNER_PHONE


def test_reference_age_refuses_another_buildings_butler(world: World):  # P7
    number = world.add()
    result = subprocess.run(
        ["age", "-d", "-i", str(world.people["but02"].key), str(world.key_file(number))], capture_output=True
    )
    assert result.returncode != 0
    assert result.stdout == b""
