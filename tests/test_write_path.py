"""A household's write and look-up read nothing the size of the archive (#14), and stay right when
history moves under them: what they remember (the household list, the clean index) is checked
against HEAD and the index as they stand."""

from __future__ import annotations

import json

from conftest import RECORD, World, assert_refused


def status(world: World) -> str:
    return world.git("status", "--porcelain", "--untracked-files=all")


def test_each_write_leaves_index_and_work_tree_equal_to_head(world: World):
    first = world.add()
    world.ok("mgr01", "edit", first, "--set", "floor=7", "--reason", "floor corrected", "--approver", "gm01")
    second = world.try_add().stdout.strip()
    assert second != first
    assert status(world) == ""
    committed = world.git("ls-tree", "-r", "--full-tree", "HEAD").replace(" blob ", " ").replace("\t", " 0\t")
    assert world.git("ls-files", "--stage") == committed
    world.git("fsck", "--strict")


def test_a_household_undone_by_hand_is_not_found_and_its_number_is_not_reused(world: World):  # P3
    kept = world.try_add()
    kept_no = kept.stdout.strip()
    undone_no = world.try_add().stdout.strip()
    world.git("reset", "-q", "--hard", "HEAD~1")  # someone takes the last add back by hand
    assert_refused(world.cli("but01", "show", undone_no), 1, "no such household")
    assert json.loads(world.ok("but01", "show", kept_no, "--format", "json"))["archive_no"] == kept_no
    again = world.try_add()
    assert again.exit_code == 0, again
    assert again.stdout.strip() not in (kept_no, undone_no)


def test_a_household_brought_back_onto_head_is_found_again(world: World):
    first = world.try_add().stdout.strip()
    second_commit_no = world.try_add().stdout.strip()
    tip = world.git("rev-parse", "HEAD").strip()
    world.git("reset", "-q", "--hard", "HEAD~1")
    world.ok("but01", "show", first)  # read at the older commit
    world.git("merge", "-q", "--ff-only", tip)  # history moves forward again (a pull)
    shown = json.loads(world.ok("but01", "show", second_commit_no, "--format", "json"))
    assert shown["archive_no"] == second_commit_no
    world.ok("mgr01", "edit", second_commit_no, "--set", "floor=3", "--reason", "floor corrected", "-a", "gm01")
    assert status(world) == ""


def test_work_staged_by_hand_after_a_write_is_still_refused(world: World):
    world.add()
    (world.root / "notes.txt").write_text("a note\n")
    world.git("add", "notes.txt")
    assert_refused(world.try_add(), 1, "staged changes")
    world.git("rm", "-q", "--cached", "notes.txt")
    (world.root / "notes.txt").unlink()
    assert world.try_add().exit_code == 0
    assert status(world) == ""


def test_a_record_changed_by_hand_is_not_overwritten(world: World):
    number = world.add()
    record = next(world.root.glob(f"households/*/*/{number}/record.yaml"))
    record.write_text(record.read_text().replace("floor: ", "floor:  "))
    result = world.cli("mgr01", "edit", number, "--set", "floor=9", "--reason", "floor corrected", "-a", "gm01")
    assert_refused(result, 1, "uncommitted changes")


def test_an_archive_made_before_gets_the_split_index_on_its_next_write(world: World):
    world.git("config", "--unset", "core.splitIndex")
    world.git("update-index", "--no-split-index")
    world.add()
    assert world.git("config", "core.splitIndex").strip() == "true"
    assert status(world) == ""
    world.git("fsck", "--strict")


def cached_trees(world: World) -> set[str]:
    """Folder names in the index's cache-tree extension: per folder, name NUL count SP subtrees LF [id]."""
    data = (world.root / ".git" / "index").read_bytes()
    at = data.rfind(b"TREE", 0, len(data) - 20)
    if at < 0:
        return set()
    names, pos = set(), at + 8
    end = pos + int.from_bytes(data[at + 4 : at + 8], "big")
    while pos < end:
        nul = data.index(b"\0", pos)
        line_end = data.index(b"\n", nul)
        names.add(data[pos:nul].decode("utf-8"))
        count = int(data[nul + 1 : line_end].split()[0])
        pos = line_end + 1 + (20 if count >= 0 else 0)  # an invalidated folder (-1) has no tree id
    return names - {""}


def test_a_households_write_drops_the_cached_trees_every_later_write_would_reread(world: World):
    # git caches one tree per folder in the index: at 100,000 households that is 6.7 MB
    # which every update-index reads and rewrites. A household's write builds its
    # commit from its own paths, so it drops households/' cached trees; the index's
    # entries, and so what git says of the work tree, are unchanged.
    world.add()
    world.git("read-tree", "HEAD")  # what git's own checkout, reset or write-tree leave: every tree cached
    assert cached_trees(world) >= {"households", "B03", "1203"}
    number = world.add("clk01", "mgr01", RECORD, "--also-active")
    assert cached_trees(world) & {"households", "B03", "1203"} == set()
    assert status(world) == ""
    assert world.git("write-tree").strip() == world.git("rev-parse", "HEAD^{tree}").strip()
    counted = json.loads(world.ok("mgr01", "report", "completeness", "--format", "json"))
    assert number in json.dumps(counted)
    world.ok("mgr01", "edit", number, "--set", "floor=7", "--reason", "floor corrected", "--approver", "gm01")
    assert status(world) == ""
    world.git("fsck", "--strict")


def test_a_file_written_again_after_a_bulk_write_is_committed_as_last_written(world: World, monkeypatch):
    """write_many stages each file as it writes it; a later write() of the same file in the same change
    must be what the commit holds, not the staged first version (P6: what is signed is what was written)."""
    from conftest import person_env

    from archivectl.archive import Archive
    from archivectl.identity import actor_of

    for name, value in person_env(world.people["clk01"]).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    archive = Archive.find(str(world.root))
    relpath = "households/B03/1203/notes.txt"
    with archive.writing(actor_of(archive)) as tx:
        tx.expect_new([relpath])
        tx.write_many([(relpath, b"first\n")])
        tx.write(relpath, b"second\n")
        tx.commit("a note written twice", {"Action": "edit", "Reason": "test"})
    assert world.git("show", f"HEAD:{relpath}") == "second\n"
    assert status(world) == ""


def test_a_write_stores_the_very_tree_git_writes_from_the_index(world: World):
    # the trees along a write's paths are spliced by the write itself: in git's order, whatever the names
    first = world.add()
    for unit in ("12030", "1203-1", "0001", "9999", "1203A"):  # a folder sorts as if its name ended in "/"
        world.add("clk01", "mgr01", RECORD.replace('unit: "1203"', f'unit: "{unit}"'))
        assert world.git("write-tree").strip() == world.git("rev-parse", "HEAD^{tree}").strip(), unit
    world.ok("mgr01", "edit", first, "--set", "floor=7", "--reason", "floor corrected", "--approver", "gm01")
    assert world.git("write-tree").strip() == world.git("rev-parse", "HEAD^{tree}").strip()
    units = world.git("ls-tree", "--name-only", "HEAD", "households/B03/").split("\n")
    assert [u.rsplit("/", 1)[-1] for u in units if u] == ["0001", "1203-1", "1203", "12030", "1203A", "9999"]
    assert status(world) == ""
    world.git("fsck", "--strict")
