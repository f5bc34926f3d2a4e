"""sync: bring look-ups registered on branches to main, so the register is complete (P8).

A reveal, open or review is registered in a signed commit on whatever branch
the reader is on: a proposal under review, or a clone that is never merged.
`archivectl sync` copies the look-up entries this person made on their branches
that main does not hold yet onto main, in one signed commit per kind of look-up
(same files, byte for byte, so the branches still merge without a conflict),
and pushes it. Look-ups need no approval, so the server's hook takes it.
"""

from __future__ import annotations

from typing import Any

from archivectl import gitio
from archivectl.archive import Archive, commit_message
from archivectl.errors import ArchiveError
from archivectl.i18n import _
from archivectl.identity import actor_of
from archivectl.ops.common import Approval, trailers

LOOKUP_ACTIONS = ("reveal", "open", "view", "find")  # find: issue 27
BROUGHT_REASON = "look-ups registered on branches, brought to main so the register is complete"


def sync(archive: Archive, push: bool = True) -> dict[str, Any]:
    """Copy this person's look-up entries from every local branch to main (and push); what was brought."""
    actor = actor_of(archive)
    main = archive.settings.main
    remote = gitio.run(archive.root, "remote", check=False).stdout.decode().split()
    if push and "origin" in remote:
        gitio.run(archive.root, "fetch", "-q", "origin", main)
    upstream = f"refs/remotes/origin/{main}" if gitio.rev_parse(archive.root, f"refs/remotes/origin/{main}") else None
    base = upstream or f"refs/heads/{main}"
    tip = gitio.rev_parse(archive.root, base)
    if tip is None:
        raise ArchiveError(_("no {main} here to bring look-ups to").format(main=main))
    on_main = set(gitio.tree_paths(archive.root, tip, "registers/access"))
    found: dict[str, dict[str, str]] = {a: {} for a in LOOKUP_ACTIONS}
    numbers: dict[str, set[str]] = {a: set() for a in LOOKUP_ACTIONS}
    for entry in gitio.log(
        archive.root, "--branches", "--not", tip, "-E", f"--grep=^Action: ({'|'.join(LOOKUP_ACTIONS)})$"
    ):
        action = entry.trailers.get("Action")
        if action not in LOOKUP_ACTIONS or entry.trailers.get("Acted-by") != actor.member.id:
            continue
        for line in gitio.out(archive.root, "diff-tree", "-r", "--no-commit-id", "--diff-filter=A", "--raw",
                              "--no-abbrev", entry.commit, "--", "registers/access").splitlines():  # fmt: skip
            parts = line.split()
            path, blob = parts[-1], parts[3]
            if path not in on_main and f"-{action}-{actor.member.id}-" in path:
                found[action][path] = blob
                numbers[action].update(n.strip() for n in entry.trailers.get("Archive-No", "").split(",") if n.strip())
    who = gitio.Identity(actor.member.name, f"{actor.member.id}@staff.archivectl")
    brought, parent = 0, tip
    for action in LOOKUP_ACTIONS:
        if not found[action]:
            continue
        message = commit_message(
            f"register {len(found[action])} {action} look-ups made on branches",
            trailers(action, Approval(BROUGHT_REASON), actor, ", ".join(sorted(numbers[action]))),
        )
        parent = gitio.signed_commit_on(archive.root, parent, found[action], message, actor.signing_key, who)
        brought += len(found[action])
    if brought == 0:
        return {"brought": 0, "commit": None, "pushed": False}
    pushed = False
    if push and upstream:
        result = gitio.run(archive.root, "push", "-q", "origin", f"{parent}:refs/heads/{main}", check=False)
        if result.returncode != 0:
            why = (result.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
            raise ArchiveError(
                _("push to {main} refused ({why}); run archivectl sync again").format(main=main, why=why)
            )
        gitio.run(archive.root, "fetch", "-q", "origin", main)
        pushed = True
    elif not upstream:
        if gitio.current_branch(archive.root) == main:
            raise ArchiveError(
                _("switch off {main} first: sync moves {main} to bring the look-ups there").format(main=main)
            )
        gitio.run(archive.root, "update-ref", f"refs/heads/{main}", parent, tip)
    return {"brought": brought, "commit": parent, "pushed": pushed}
