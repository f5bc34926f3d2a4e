"""A reader's story of many households, told half in a forked process, is the story one process tells (issue 30).

approve (and review --open) opens every record an import writes: two age decryptions and a parse each.
From ops/review.PARALLEL_FROM households in a commit, part are opened in a forked child (forked.in_child),
which sends back only what the reader is shown: approve and review --open fork it before they judge the
range when the reader's identity loads without a passphrase to ask (the later households:
review.opening_ahead), else once it is judged (half). Here, on a real import above that
threshold: the same lines and story every way, the same refusal of a sealed block re-sealed behind its
old fingerprints in the child's part, nothing in clear; and the sealed YAML read the quick way
(records.read_sealed) is what the strict loader reads.
"""

from __future__ import annotations

import contextlib
import json

import pytest
from conftest import OWNER_PHONE, RECORD, SECRETS, World, acting_as

from archivectl import crypto, forked, records, yamlio
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.ops import approvals
from archivectl.ops import review as review_ops
from archivectl.ops.common import open_key
from archivectl.schema import mask_value

FORGED_PHONE = "13900009999"
PARALLEL_FROM = review_ops.PARALLEL_FROM


def _acting_as(monkeypatch, world: World, who: str) -> None:
    acting_as(monkeypatch, world.people[who])
    monkeypatch.chdir(world.root)


def _import_many(world: World) -> list[str]:
    """clk01 imports PARALLEL_FROM + 20 households (each unit its own), awaiting mgr01; their numbers."""
    rows = [
        RECORD.replace('unit: "1203"', f'unit: "{2000 + i}"').replace("floor: 12", f"floor: {20 + i // 100}")
        for i in range(PARALLEL_FROM + 20)
    ]
    (world.tmp / "rows.yaml").write_text("---\n".join(rows))
    world.ok("clk01", "import", str(world.tmp / "rows.yaml"), "--reason", "digitising paper dossiers", "-a", "mgr01")
    return [n.strip() for n in world.trailers()["Archive-No"].split(",")]


@contextlib.contextmanager
def _nothing_ahead(*args):
    yield None


def _plan(monkeypatch, world: World, how: str) -> approvals.ApprovalPlan:
    """approve's plan told by how: "ahead" (a child forked before the judge opens the later households),
    "split" (a child forked once judged opens half), or "one" (this process alone)."""
    monkeypatch.setattr(review_ops, "PARALLEL_FROM", PARALLEL_FROM if how != "one" else 10**9)
    monkeypatch.setattr(approvals, "opening_ahead", review_ops.opening_ahead if how == "ahead" else _nothing_ahead)
    return approvals.plan(Archive.find(str(world.root)), None)


def _answers_watched(monkeypatch) -> list:
    """What each forked child answered (None: it failed, and the parent told its part itself)."""
    answers = []
    real = forked.in_child

    @contextlib.contextmanager
    def watched(work, **kw):
        with real(work, **kw) as theirs:
            yield theirs
        answers.append(theirs())

    monkeypatch.setattr(forked, "in_child", watched)
    return answers


def test_the_story_told_by_two_processes_is_the_one_process_story(world: World, monkeypatch):  # P9, P12
    numbers = _import_many(world)
    _acting_as(monkeypatch, world, "mgr01")
    answers = _answers_watched(monkeypatch)
    ahead, split, one = (_plan(monkeypatch, world, how) for how in ("ahead", "split", "one"))
    assert ahead.lines == split.lines == one.lines and ahead.story == split.story == one.story
    [[commit, count, opened, out_of_reach, rows]], split_answer = answers
    assert (commit, count, out_of_reach) == (one.commits[0]["commit"], len(numbers), None)
    assert opened == len(rows) == int(len(numbers) * review_ops.AHEAD_SHARE)
    assert len(split_answer) == len(numbers) // 2 + 1  # half the households, and the count
    assert len(ahead.story["changes"][0]["households"]) == len(numbers)
    last = ahead.story["changes"][0]["households"][-1]  # told by the child
    assert last["archive_no"] == numbers[-1]
    assert {"field": "customers.0.phone", "old": "-", "new": "138****5678"} in last["sealed_values"]
    assert ahead.story["changes"][0]["unchecked"] == [] and ahead.story["changes"][0]["findings"] == []
    told = "\n".join(ahead.lines)
    for secret in SECRETS:
        assert secret not in told
    monkeypatch.undo()
    # review --open tells the same, by the CLI
    story = json.loads(world.ok("mgr01", "review", "main~1..main", "--open", "--format", "json"))
    assert story["changes"] == ahead.story["changes"]


def test_a_sealed_block_behind_old_fingerprints_in_the_childs_half_is_refused_as_by_one_process(
    world: World, monkeypatch
):  # P12
    numbers = _import_many(world)
    forged = numbers[-1]  # the child's half
    archive = Archive.find(str(world.root))
    relpath = archive.locate(forged)
    stored = records.load_stored((world.root / relpath).read_bytes(), relpath)
    key = open_key(archive, stored, crypto.load_identity(world.people["but01"].key))  # a reader of B03
    _, sealed = records.open_record(stored, key)
    sealed["customers"][0]["phone"] = FORGED_PHONE
    (world.root / relpath).write_text(
        records.dump({**stored, "sealed": crypto.seal(records.padded(yamlio.dumps(sealed)), key.to_public())})
    )
    world.git("add", relpath)
    signing = world.people["clk01"].key
    world.git("-c", f"user.signingkey={signing}", "-c", "gpg.format=ssh",
              "commit", "-q", "--amend", "--no-verify", "-S", "--no-edit", who="clk01")  # fmt: skip

    _acting_as(monkeypatch, world, "mgr01")
    refusals = []
    for processes in (2, 1):
        with pytest.raises(ArchiveError) as refused:
            _plan(monkeypatch, world, processes)
        refusals.append(str(refused.value))
    assert (
        refusals[0]
        == refusals[1]
        == (f"{forged}: sealed fields customers.0.phone differ from their fingerprints; nothing was signed")
    )
    # someone it does not await is refused once judged, the child forked before the judge stopped unasked
    _acting_as(monkeypatch, world, "gm01")
    for how in ("ahead", "one"):
        with pytest.raises(ArchiveError, match="nothing in HEAD awaits gm01; it awaits mgr01"):
            _plan(monkeypatch, world, how)
    monkeypatch.undo()
    before = world.snapshot()
    result = world.cli("mgr01", "approve", "--yes", "--reason", "looks fine")
    assert result.exit_code == 1 and refusals[0] in result.stderr
    assert FORGED_PHONE not in result.stdout + result.stderr and OWNER_PHONE not in result.stderr
    assert world.snapshot() == before


@pytest.mark.parametrize(
    "sealed",
    [
        {"customers": [{"role": "owner", "name": "王测试", "phone": "13800005678", "id_number": "110101198005170000"}]},
        {"handover_date": "2024-03-01", "notes": "yes", "n": 12, "f": 1.5, "t": True, "z": None, "e": [], "m": {}},
        {"a": "x: y", "b": "#hash", "c": "- dash", "d": "'q'", "e": "a b", "f": "0x1F", "g": "on", "h": "~"},
        {"nested": [{"deep": [{"deeper": ["a", "b"]}]}], "unicode": "需要无障碍通道", "tabbed": "a\tb"},
        {"multi": "line one\nline two", "after": "x"},  # a block scalar: the strict loader reads it
    ],
)
def test_read_sealed_reads_what_the_strict_loader_reads(sealed: dict):
    block = records.padded(yamlio.dumps(sealed))
    assert records.read_sealed(block) == yamlio.loads(block, "sealed block") == sealed


@pytest.mark.parametrize(
    "text",
    [
        b"a: 1\n",  # sealed before padding
        b"a: 1\n# padding x \n",  # not the padding line
        b"a: 1\n# padding  \n# padding \n",
        b"a: 1\n  # padding \n",
        b"a: 1\n# padding",  # no newline at the end
        b"a: 1\na: 2\n# padding \n",  # a duplicate key: refused
        b"a: [1\n# padding \n",  # not YAML
        b"- 1\n- 2\n# padding \n",  # not a mapping
        b"a: &x 1\nb: *x\n# padding \n",  # an alias: refused
        b"\xff: 1\n# padding \n",  # not UTF-8
        b"a: b\n# pad\n# padding \n",
        b"a:\n  b: c\n    d\n# padding \n",
        b"a: 'it''s'\nb: \"q\"\n# padding    \n",
    ],
)
def test_read_sealed_answers_or_refuses_as_the_strict_loader(text: bytes):
    try:
        strict = yamlio.loads(text, "sealed block")
    except UsageError as exc:
        with pytest.raises(UsageError) as quick:
            records.read_sealed(text)
        assert str(quick.value) == str(exc)
    else:
        assert records.read_sealed(text) == strict


def _mask_walked(schema, value, node, sensitive=False, how="text"):
    """schema.mask as it walked the schema for every value before its rules were kept per place."""
    node = schema.resolve(node)
    sensitive = sensitive or bool(node.get("x-sensitive"))
    how = node.get("x-mask", how)
    if isinstance(value, dict):
        return {k: _mask_walked(schema, v, schema.child(node, k), sensitive) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_walked(schema, v, schema.resolve(node.get("items", {})), sensitive, how) for v in value]
    return mask_value(value, how) if sensitive else value


def test_masks_kept_per_place_mask_as_the_schema_walk(world: World):
    schema = Archive.find(str(world.root)).household_schema
    record = yamlio.loads(RECORD)
    odd = [
        record,
        {**record, "customers": [None, 3, ["a"], {"name": "王测试", "unknown": {"deep": ["x"]}}], 7: "seven"},
        {"vehicles": {"plate": "京A12345"}, "emergency_contacts": "not a list"},
        {},
        [record],
        "text",
    ]
    for value in odd * 2:  # the second time by the rules kept
        assert repr(schema.mask(value)) == repr(_mask_walked(schema, value, schema.doc))
