"""A company of many estates: one view over their archives (issue 30, P15).

company.yaml, in a folder of its own, names each estate's archive (a path, or
a file:// or ssh:// URL of its server repository) with a display name, and the
head-office staff. For each estate the company folder keeps a copy of the
estate's main under `.cache/<estate>/`: a partial clone holding commits, trees
and the files reports read (records, registers, archive.yaml, schemas), never
the attachments (sealed scans) nor any key. `company report` brings each copy
up to date, runs the estate's own report there (its caches, facts.py and
reports/cache.py, live in the copy: a warm run re-reads only what changed), one
estate per core at a time, and adds the estates' figures up. An estate whose
server still has the commit its copy kept figures for (completeness, stats) is
neither fetched nor read: its branch is read from the server's ref files (one
`git ls-remote` over ssh), so a run with nothing changed starts no process per
estate. Only clear parts are read; nothing here decrypts.

It sits above reports, as demo.py does: ops and reports never import it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archivectl import gitio
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.layout import HouseholdPath
from archivectl.staff import StaffMember

if TYPE_CHECKING:
    from archivectl.reports.render import Report

COMPANY_FILE = "company.yaml"
CACHE = ".cache"  # under the company folder: one copy per estate, and a .gitignore keeping it out of git
KINDS = ("completeness", "retention", "requests", "stats")
# What a copy checks out: everything but households/ (reports read records from git by blob id), and the
# records too once a report reads them from the work tree; never the attachments, whose blobs are never
# fetched either (a blob:none partial clone, given the records' blobs in one request).
NO_RECORDS = ("/*", "!/households/")
WITH_RECORDS = ("/*", "!/households/*/*/*/attachments/")
# A file:// estate is served by a local upload-pack, told to honour --filter and requests by blob id (both
# off by default in git); an ssh:// server decides for itself (a server that does not filter sends
# everything: slower, same answer).
LOCAL_UPLOAD_PACK = "git -c uploadpack.allowFilter=true -c uploadpack.allowAnySHA1InWant=true upload-pack"
HEAD_OFFICE = "head office"
# Reports whose figures the estate's commit decides (retention counts days to now): kept per commit in the copy,
# so a run where an estate did not change reads one small file for it. FIGURES_VERSION: what _figures returns.
SAME_FOR_ONE_COMMIT = ("completeness", "stats")
FIGURES_VERSION = 2


@dataclass(frozen=True)
class Estate:
    """One estate as company.yaml names it."""

    id: str
    name: str
    archive: str  # as written: a path (relative to the company folder) or a file:// / ssh:// URL
    branch: str = "main"


@dataclass(frozen=True)
class Company:
    """company.yaml: the company's name, its estates and its head-office staff."""

    root: Path
    name: str
    estates: tuple[Estate, ...]
    staff: tuple[StaffMember, ...]
    urls: tuple[str, ...] = ()  # what git fetches each estate from, checked (see _checked_source)

    def copy_of(self, estate: Estate) -> Path:
        """Where the estate's copy is kept."""
        return self.root / CACHE / estate.id


# ------------------------------------------------------------------ company.yaml


def find(explicit: str | None) -> Path:
    """The company folder named by --company, ARCHIVECTL_COMPANY, or the current directory."""
    given = explicit or os.environ.get("ARCHIVECTL_COMPANY") or "."
    folder = Path(given).expanduser()
    if not (folder / COMPANY_FILE).is_file():
        raise UsageError(
            _("no {file} in {folder} (use --company DIR or ARCHIVECTL_COMPANY)").format(
                file=COMPANY_FILE, folder=folder
            )
        )
    return folder.resolve()


def load(folder: Path) -> Company:
    """company.yaml of folder, checked against schemas/company.schema.json; UsageError naming the first problem."""
    from archivectl import schema, yamlio
    from archivectl.staff import key_id

    source = str(folder / COMPANY_FILE)
    signed = _signed_text(folder)
    data = yamlio.loads(signed, source) if signed is not None else yamlio.load_file(folder / COMPANY_FILE)
    problems = schema.error_messages(
        schema.validator_for(schema.load_json(schema.shipped_dir() / "company.schema.json")), data
    )
    if problems:
        raise UsageError(_("{source}: {problem}").format(source=source, problem=problems[0]))
    estates = tuple(Estate(e["id"], e["name"], e["archive"], e.get("branch", "main")) for e in data["estates"])
    for field in ("id", "name"):
        seen = [getattr(e, field) for e in estates]
        twice = sorted({v for v in seen if seen.count(v) > 1})
        if twice:
            raise UsageError(
                _("{source}: estate {field} {value} appears more than once").format(
                    source=source, field=field, value=twice[0]
                )
            )
    staff = tuple(
        StaffMember(s["id"], s["name"], s["role"], s["key"].strip(), active=s.get("active", True))
        for s in data.get("staff") or []
    )
    for member in staff:
        try:
            key_id(member.key)
        except UsageError as exc:
            raise UsageError(
                _("{source}: staff {id}: {problem}").format(source=source, id=member.id, problem=exc)
            ) from None
    ids = [m.id for m in staff]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise UsageError(_("{source}: staff id {id} appears more than once").format(source=source, id=twice[0]))
    return Company(folder, data["company"], estates, staff, tuple(_checked_source(folder, e) for e in estates))


def _signed_text(folder: Path) -> bytes | None:
    """company.yaml as committed, when the folder is a git repository of its own; else None (a plain folder).

    Its last commit must be signed by an active head-office member of the
    company.yaml before it (the first commit: of its own), so a copy of the folder
    that someone changed without a head-office key is refused, not read.
    """
    top = gitio.toplevel(folder)
    if top is None or top.resolve() != folder.resolve():
        return None
    from archivectl import sshsig, yamlio

    head = gitio.head(folder)
    committed = gitio.show_blob(folder, "HEAD", COMPANY_FILE) if head else None
    if committed is None:
        raise ArchiveError(
            _("{folder} is a git repository without a committed {file}").format(folder=folder, file=COMPANY_FILE)
        )
    parent = gitio.rev_parse(folder, "HEAD^")
    before = gitio.show_blob(folder, parent, COMPANY_FILE) if parent else committed
    try:
        listed = (yamlio.loads(before or b"", COMPANY_FILE) or {}).get("staff") or []
        allowed = [
            sshsig.AllowedSigner(str(m["id"]), str(m["key"]))
            for m in listed
            if isinstance(m, dict) and m.get("active", True) is True and "id" in m and "key" in m
        ]
    except (AttributeError, UsageError):
        allowed = []
    verdict = sshsig.check_commits(folder, [head], allowed)[head]  # type: ignore[list-item]
    if verdict.status != "G":
        raise ArchiveError(
            _(
                "{file}: the last commit of {folder} is not signed by head-office staff listed "
                "in it before (git log --show-signature -1)"
            ).format(file=COMPANY_FILE, folder=folder)
        )
    return committed


def _checked_source(folder: Path, estate: Estate) -> str:
    """The URL git fetches the estate from; UsageError for what is not a path or file:// / ssh:// URL,
    ArchiveError for a path (or file:// URL) with no archive there."""
    from urllib.parse import unquote, urlparse

    text = estate.archive
    if text.startswith("-") or "::" in text or "\n" in text:
        raise UsageError(
            _("{file}: estate {id}: archive must be a path or a file:// or ssh:// URL").format(
                file=COMPANY_FILE, id=estate.id
            )
        )
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme not in ("file", "ssh"):
            raise UsageError(
                _("{file}: estate {id}: archive must be a path or a file:// or ssh:// URL").format(
                    file=COMPANY_FILE, id=estate.id
                )
            )
        if scheme == "ssh":
            return text
        path = Path(unquote(urlparse(text).path))
    else:
        path = Path(text).expanduser()
        path = path if path.is_absolute() else folder / path
    if not path.is_dir() or not ((path / "archive.yaml").is_file() or _git_dir_layout(path) or gitio.is_bare(path)):
        raise ArchiveError(_("estate {id}: no archive at {path}").format(id=estate.id, path=path))
    return path.resolve().as_uri()


def _git_dir_layout(path: Path) -> bool:
    """path is laid out as a bare repository is (HEAD, objects/, refs/): told from its files, nothing started
    (a warm report of 200 estates would otherwise start one git per server repository just to check it)."""
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


# ------------------------------------------------------------------ the estates' copies


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One command at a time brings a copy up to date (two company reports at once take turns)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def bring_up_to_date(url: str, branch: str, copy: Path, records_in_work_tree: bool = False) -> str:
    """The estate's branch in copy (cloned the first time, fetched after), checked out; its commit.

    Reports read records from git, by blob id: their blobs are fetched in one
    request, and written to the work tree only for a report that reads them
    there (records_in_work_tree: retention's tombstones). A copy is made beside
    its place and renamed into it, so a half-made one is never used.
    """
    local = url.startswith("file://")
    with _locked(copy.parent / f"{copy.name}.lock"):
        _ignore_cache(copy.parent)
        if (copy / ".git").is_dir() and gitio.config_get(copy, "remote.origin.url") != url:
            shutil.rmtree(copy)  # company.yaml names another archive for this estate now: start again
        if not (copy / ".git").is_dir():
            fresh = copy.parent / f"{copy.name}.new"
            shutil.rmtree(fresh, ignore_errors=True)
            pack = ["--upload-pack", LOCAL_UPLOAD_PACK] if local else []
            gitio.run(None, "clone", "-q", "--filter=blob:none", "--no-checkout", "--single-branch",
                      "--branch", branch, *pack, url, str(fresh))  # fmt: skip
            if local:
                gitio.run(fresh, "config", "--local", "remote.origin.uploadpack", LOCAL_UPLOAD_PACK)
            gitio.run(fresh, "sparse-checkout", "set", "--no-cone", *NO_RECORDS)
            gitio.run(fresh, "checkout", "-q", branch)
            _fetch_blobs(fresh, [oid for oid, _path in gitio.ls_files_stage(fresh, HouseholdPath.records_glob())])
            os.rename(fresh, copy)
            commit, changed = gitio.head(copy), True
        else:
            gitio.run(copy, "fetch", "-q", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
            commit, ours = gitio.rev_parse(copy, f"refs/remotes/origin/{branch}"), gitio.head(copy)
            changed = commit != ours
            if commit is not None and changed:
                gitio.run(copy, "checkout", "-q", "--force", "-B", branch, commit)
                _fetch_blobs(copy, _new_records(copy, ours, commit))
        if commit is None:
            raise ArchiveError(_("branch {branch} has no commit").format(branch=branch))
        if records_in_work_tree and _sparse(copy) != list(WITH_RECORDS):
            gitio.run(copy, "sparse-checkout", "set", "--no-cone", *WITH_RECORDS)
            changed = True
        if changed:  # else the index is as the last run left it, and noted
            from archivectl.archive import Archive

            Archive(copy).remember_index_equals(commit)  # a checkout leaves the index equal to the commit
        return commit


def _sparse(copy: Path) -> list[str]:
    """The copy's sparse-checkout patterns."""
    try:
        return (copy / ".git" / "info" / "sparse-checkout").read_text().split()
    except OSError:
        return []


def _new_records(copy: Path, old: str | None, new: str) -> list[str]:
    """Blob ids of the record files new has and old had otherwise (added or changed)."""
    if old is None:
        return [oid for oid, _path in gitio.ls_files_stage(copy, HouseholdPath.records_glob())]
    text = gitio.run(copy, "diff-tree", "-r", "-z", "--no-renames", old, new, "--", "households/").stdout
    fields = text.decode("utf-8", "surrogateescape").split("\0")
    found = []
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        parts = meta.split()
        if len(parts) == 5 and parts[4] in ("A", "M") and path.endswith("/record.yaml"):
            found.append(parts[3])
    return found


def _fetch_blobs(copy: Path, oids: list[str]) -> None:
    """The blobs of oids, in one request (a partial clone only: a server that sent everything sent these too)."""
    if not oids or gitio.config_get(copy, "remote.origin.promisor") != "true":
        return
    gitio.run(copy, "-c", "fetch.negotiationAlgorithm=noop", "fetch", "-q", "--no-tags", "--no-write-fetch-head",
              "--stdin", "origin", input="".join(f"{oid}\n" for oid in oids).encode())  # fmt: skip


def _ignore_cache(cache: Path) -> None:
    ignore = cache / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def in_parallel(
    work: Callable[..., Any], jobs: list[tuple[Any, ...]], progress: Callable[[int, int], None] | None = None
) -> list[Any]:
    """work(*job) for each job, in order, one process per core at most (forked: nothing is imported again)."""
    workers = min(len(jobs), _cores())
    done: list[Any] = [None] * len(jobs)
    if workers < 2 or not hasattr(os, "fork"):
        for i, job in enumerate(jobs):
            done[i] = work(*job)
            if progress:
                progress(i + 1, len(jobs))
        return done
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # fork: the pool starts its workers before its own thread, so no thread is copied into them
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = {pool.submit(work, *job): i for i, job in enumerate(jobs)}
            for n, future in enumerate(as_completed(futures), 1):
                done[futures[future]] = future.result()
                if progress:
                    progress(n, len(jobs))
    except BrokenProcessPool:
        raise ArchiveError(_("a worker process ended without an answer (out of memory?); run again")) from None
    return done


# ------------------------------------------------------------------ reports


def _report_of(kind: str) -> Callable[..., Any] | None:
    """The estate's own report function of that kind, or None where this archivectl has none (requests)."""
    import importlib
    import importlib.util

    if importlib.util.find_spec(f"archivectl.reports.{kind}") is None:
        return None
    found = getattr(importlib.import_module(f"archivectl.reports.{kind}"), kind, None)
    return found if callable(found) else None


def estate_document(kind: str, url: str, branch: str, copy: str) -> tuple[bool, Any]:
    """(True, the figures of the estate's own `report KIND --format json`) or (False, the one-line problem).

    Run in a worker process: the answer is plain data (counts, no household rows).
    """
    try:
        from archivectl.archive import Archive
        from archivectl.facts import CACHE_VERSION, write_json
        from archivectl.reports.render import render

        # the others (retention: ops.lifecycle.candidates) read tombstoned records from the work tree
        commit = bring_up_to_date(url, branch, Path(copy), kind not in SAME_FOR_ONE_COMMIT)
        stored = kept_figures(kind, Path(copy), commit)
        if stored is not None:
            return True, stored
        report = _report_of(kind)(Archive(Path(copy)))  # type: ignore[misc]
        figures = _figures(kind, json.loads(render(report, "json")))
        if kind in SAME_FOR_ONE_COMMIT:
            write_json(
                _kept(Path(copy), kind), {"key": [FIGURES_VERSION, CACHE_VERSION, kind, commit], "figures": figures}
            )
        return True, figures
    except ArchiveError as exc:
        return False, str(exc)
    except OSError as exc:
        return False, exc.strerror or type(exc).__name__


def _figures(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    """What the company report adds up from one estate's report document (counts only: no household rows)."""
    if kind == "completeness":
        o = doc["overall"]
        return {
            "archive": doc.get("archive"),
            "row": {
                "households": o["households"],
                "complete": o["complete"],
                "incomplete": o["incomplete"],
                "invalid": len(doc.get("invalid") or []),
            },
            "missing": [[d["document"], d["label"], d["households"]] for d in doc.get("missing_by_type") or []],
        }
    if kind == "retention":
        tombstoned, lent = doc.get("tombstoned") or [], doc.get("lent") or []
        return {
            "archive": doc.get("archive"),
            "row": {
                "tombstoned": len(tombstoned),
                "eligible": sum(1 for t in tombstoned if t.get("eligible")),
                "moved_out": len(doc.get("moved_out") or []),
                "review_due": len(doc.get("review_due") or []),
                "lent": len(lent),
                "lent_overdue": sum(1 for x in lent if x.get("overdue")),
                "past_keeping": len(doc.get("past_keeping") or []),
                "holds": len(doc.get("holds") or []),
            },
        }
    if kind == "stats":
        counts = doc.get("counts") or []
        status = {c["value"]: c["households"] for c in counts if c.get("dimension") == "status"}
        activity = doc.get("activity") or []
        complete = doc.get("completeness") or {}
        return {
            "archive": doc.get("archive"),
            "row": {
                "households": doc.get("households", 0),
                "active": status.get("active", 0),
                "moved_out": status.get("moved-out", 0),
                "tombstoned": status.get("tombstoned", 0),
                "complete": complete.get("complete", 0),
                **{
                    k: sum(int(m.get(k) or 0) for m in activity)
                    for k in ("changes", "reveals", "opens", "exports", "approvals")
                },
            },
            "counts": [
                [c["dimension"], c["value"], c["households"]] for c in counts if c.get("dimension") != "building"
            ],
        }
    if kind == "requests":
        rows = doc.get("open") or []
        return {
            "archive": doc.get("archive"),
            "row": {
                "open": len(rows),
                "overdue": sum(1 for r in rows if r.get("overdue")),
                "due_soon": sum(1 for r in rows if r.get("due_soon")),
                "holds": len(doc.get("holds") or []),
            },
        }
    return {"archive": doc.get("archive"), "row": _counts_in(doc)}


def _counts_in(doc: dict[str, Any]) -> dict[str, int]:
    """A report of a kind this module does not know: its whole numbers, and how many items each list holds."""
    row: dict[str, int] = {}
    for key, value in doc.items():
        if key in ("report", "archive", "generated") or isinstance(value, bool):
            continue
        if isinstance(value, int):
            row[key] = value
        elif isinstance(value, list):
            row[key] = len(value)
        elif isinstance(value, dict):
            row.update({f"{key}_{k}": v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)})
    return row


def _ref_in(gitdir: Path, branch: str) -> str | None:
    """The commit refs/heads/<branch> names in gitdir, read from its ref files (loose, then packed-refs);
    None where that cannot be told this way (no such file, a symbolic ref, reftable): git is asked then."""
    if any(part in ("", ".", "..") for part in branch.split("/")) or (gitdir / "reftable").exists():
        return None
    ref = f"refs/heads/{branch}"
    try:
        loose = (gitdir / ref).read_bytes().decode("ascii", "replace").strip()
    except FileNotFoundError:
        loose = None
    except OSError:
        return None
    if loose is not None:
        return loose if _is_oid(loose) else None
    try:
        packed = (gitdir / "packed-refs").read_bytes().decode("utf-8", "replace")
    except OSError:
        return None
    for line in packed.splitlines():
        oid, _space, name = line.partition(" ")
        if name == ref and _is_oid(oid):
            return oid
    return None


def _is_oid(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def server_head(url: str, branch: str) -> str | None:
    """The commit the estate's server has on branch now, or None where only a fetch can tell (then the
    fetch also gives git's own refusal, a missing branch say).

    A local server (file:// URL or path) is read from its own ref files, nothing started; an ssh:// one
    is asked by one `git ls-remote` (an ArchiveError, git's first error line, when it cannot be reached).
    """
    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        path = Path(unquote(urlparse(url).path))
        gitdir = path / ".git" if (path / ".git").is_dir() else path
        return _ref_in(gitdir, branch) if (gitdir / "HEAD").is_file() else None
    ref = f"refs/heads/{branch}"
    text = gitio.run(None, "ls-remote", "-q", url, ref).stdout.decode("utf-8", "replace")
    for line in text.splitlines():  # the pattern also matches longer names ending in it: only ref itself counts
        oid, _tab, name = line.partition("\t")
        if name == ref and _is_oid(oid):
            return oid
    return None


def _kept(copy: Path, kind: str) -> Path:
    """Where a copy keeps the figures of kind for its commit (a copy's .git is a folder)."""
    return copy / ".git" / "archivectl" / "company" / f"{kind}.json"


def kept_figures(kind: str, copy: Path, commit: str | None) -> dict[str, Any] | None:
    """The figures a copy kept for the estate's commit (completeness, stats), or None: the estate is read."""
    from archivectl.facts import CACHE_VERSION, read_json

    if commit is None or kind not in SAME_FOR_ONE_COMMIT:
        return None
    stored = read_json(_kept(copy, kind))
    if isinstance(stored, dict) and stored.get("key") == [FIGURES_VERSION, CACHE_VERSION, kind, commit]:
        figures = stored.get("figures")
        return figures if isinstance(figures, dict) else None
    return None


def _unchanged(company: Company, kind: str) -> list[dict[str, Any] | None]:
    """Per estate, the figures kept for the commit its server has now, or None where it must be read.

    Every server is asked first (ssh ones at once, in threads: their time is the network's), so an
    estate whose server cannot answer is refused before any copy is touched.
    """
    if kind not in SAME_FOR_ONE_COMMIT:
        return [None] * len(company.estates)
    from concurrent.futures import ThreadPoolExecutor

    def head(estate: Estate, url: str) -> tuple[bool, str | None]:
        try:
            return True, server_head(url, estate.branch)
        except ArchiveError as exc:
            return False, str(exc)

    pairs = list(zip(company.estates, company.urls, strict=True))
    remote = sum(1 for _e, url in pairs if not url.startswith("file://"))
    if remote > 1:
        with ThreadPoolExecutor(min(remote, 16)) as pool:
            heads = list(pool.map(lambda pair: head(*pair), pairs))
    else:
        heads = [head(*pair) for pair in pairs]
    for estate, (ok, found) in zip(company.estates, heads, strict=True):
        if not ok:
            raise ArchiveError(_("estate {id}: {problem}").format(id=estate.id, problem=found))
    return [
        kept_figures(kind, company.copy_of(e), commit) for e, (_ok, commit) in zip(company.estates, heads, strict=True)
    ]


def report(company: Company, kind: str, progress: Callable[[int, int], None] | None = None) -> Report:
    """The company's report of kind: a row per estate (its own report's figures) and the totals.

    An estate whose server still has the commit its copy kept figures for is not fetched nor read again
    (completeness and stats); the others are brought up to date and read, one per core.
    """
    from archivectl.reports.render import Report, Section, document_head

    if kind not in KINDS:
        raise UsageError(_("unknown report {kind}; choose one of {kinds}").format(kind=kind, kinds=", ".join(KINDS)))
    if _report_of(kind) is None:
        raise ArchiveError(
            _("this archivectl has no {kind} report yet; company report {kind} needs it").format(kind=kind)
        )
    found: list[Any] = _unchanged(company, kind)
    todo = [i for i, figures in enumerate(found) if figures is None]
    pairs = list(zip(company.estates, company.urls, strict=True))
    jobs = [(kind, pairs[i][1], pairs[i][0].branch, str(company.copy_of(pairs[i][0]))) for i in todo]
    answers = in_parallel(estate_document, jobs, progress) if jobs else []
    for i, (ok, answer) in zip(todo, answers, strict=True):
        if not ok:
            raise ArchiveError(_("estate {id}: {problem}").format(id=company.estates[i].id, problem=answer))
        found[i] = answer
    rows = [{"estate": e.id, "name": e.name, **f["row"]} for e, f in zip(company.estates, found, strict=True)]
    columns = list(dict.fromkeys(c for r in rows for c in r))
    totals = {c: sum(r.get(c, 0) for r in rows) for c in columns if c not in ("estate", "name")}
    if kind in ("completeness", "stats"):
        for row in [*rows, totals]:
            base = row.get("households", 0) if kind == "completeness" else row.get("active", 0)
            row["rate"] = round(100 * row.get("complete", 0) / base, 1) if base else 100.0
        columns.append("rate")
    total_row = {"estate": _("(total)"), "name": company.name, **totals}
    document = {
        **document_head(f"company-{kind}", company.name),
        "company": company.name,
        "estates": rows,
        "totals": totals,
    }
    sections = [Section(_("By estate"), [*rows, total_row], columns)]
    summary = _("{n} estates; ").format(n=len(rows))
    if kind == "completeness":
        missing = _summed((m for f in found for m in f["missing"]), ("document", "label", "households"))
        missing.sort(key=lambda r: (-r["households"], r["document"]))
        document["missing_by_type"] = missing
        sections.append(
            Section(_("Missing documents by type, all estates"), missing, ["label", "document", "households"])
        )
        summary += _("{done} of {total} active households complete ({rate}%).").format(
            done=totals["complete"], total=totals["households"], rate=totals["rate"]
        )
    elif kind == "stats":
        counts = _summed((c for f in found for c in f["counts"]), ("dimension", "value", "households"))
        document["counts"] = counts
        sections.append(Section(_("Households by category, occupancy and status, all estates"), counts))
        summary += _("{total} households; {rate} of active ones complete.").format(  # as reports/stats.py says it
            total=totals["households"], rate=f"{totals['rate']}%"
        )
    elif kind == "requests":
        summary += _("{n} open requests: {late} overdue, {soon} due soon; {held} households under legal hold.").format(
            n=totals["open"], late=totals["overdue"], soon=totals["due_soon"], held=totals["holds"]
        )
    elif kind == "retention":
        summary += _("{t} tombstoned ({e} eligible for purge), {m} moved out, {r} due for review.").format(
            t=totals["tombstoned"], e=totals["eligible"], m=totals["moved_out"], r=totals["review_due"]
        )
    else:
        summary = summary.rstrip("; ") + "."
    return Report(
        name=f"company-{kind}",
        title=_("{kind} across estates — {company}").format(kind=kind.capitalize(), company=company.name),
        document=document,
        sections=sections,
        chart=[(r["estate"], r["rate"]) for r in rows] if kind == "completeness" else [],
        chart_title=_("Complete dossiers per estate (%)") if kind == "completeness" else "",
        summary=summary,
        act_on=any(totals.get(k) for k in ("incomplete", "invalid", "eligible", "past_keeping", "overdue")),
        csv_rows=sections[0],
    )


def _summed(items: Any, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of names from [key..., count] items, counts added up per key, in key order."""
    summed: dict[tuple[Any, ...], int] = {}
    for *key, count in items:
        summed[tuple(key)] = summed.get(tuple(key), 0) + int(count)
    return [dict(zip(names, (*key, count), strict=True)) for key, count in sorted(summed.items())]


# ------------------------------------------------------------------ staff


def staff_problems(company: Company, progress: Callable[[int, int], None] | None = None) -> list[str]:
    """One line per person whose key, role or active flag differs between the archives they appear in
    (and company.yaml's head office), and per key that appears under two staff ids."""
    jobs = [(url, e.branch, str(company.copy_of(e))) for e, url in zip(company.estates, company.urls, strict=True)]
    seen: list[tuple[str, StaffMember]] = [(HEAD_OFFICE, m) for m in company.staff]
    for estate, (ok, found) in zip(company.estates, in_parallel(estate_staff, jobs, progress), strict=True):
        if not ok:
            raise ArchiveError(_("estate {id}: {problem}").format(id=estate.id, problem=found))
        seen += [(estate.id, m) for m in found]
    return disagreements(seen)


def estate_staff(url: str, branch: str, copy: str) -> tuple[bool, Any]:
    """(True, the estate's staff as its main has them) or (False, the one-line problem); run in a worker."""
    from archivectl.archive import Archive

    try:
        bring_up_to_date(url, branch, Path(copy))
        return True, Archive(Path(copy)).staff.members
    except ArchiveError as exc:
        return False, str(exc)
    except OSError as exc:
        return False, exc.strerror or type(exc).__name__


def disagreements(seen: list[tuple[str, StaffMember]]) -> list[str]:
    """The problems staff_problems names, from (where, member) pairs: pure, for tests and other callers."""
    from archivectl.staff import fingerprint

    by_id: dict[str, list[tuple[str, StaffMember]]] = {}
    by_key: dict[str, list[tuple[str, StaffMember]]] = {}
    for where, member in seen:
        by_id.setdefault(member.id, []).append((where, member))
        by_key.setdefault(member.key_id, []).append((where, member))
    problems = []
    for staff_id, places in sorted(by_id.items()):
        for what, value_of in (
            (_("keys"), lambda m: fingerprint(m.key)),
            (_("roles"), lambda m: m.role),
            (_("active flags"), lambda m: _("active") if m.active else _("inactive")),
        ):
            different, detail = _grouped(places, value_of)
            if different > 1:
                problems.append(_("{id}: different {what}: {detail}").format(id=staff_id, what=what, detail=detail))
    for key, places in sorted(by_key.items()):
        different, detail = _grouped(places, lambda m: m.id)
        if different > 1:
            problems.append(
                _("one key ({fp}) under different staff ids: {detail}").format(fp=fingerprint(key), detail=detail)
            )
    return problems


def _grouped(places: list[tuple[str, StaffMember]], value_of: Callable[[StaffMember], str]) -> tuple[int, str]:
    """(how many different values, 'value in a, b; other in c')."""
    groups: dict[str, list[str]] = {}
    for where, member in places:
        groups.setdefault(value_of(member), []).append(where)
    text = "; ".join(_("{value} in {where}").format(value=v, where=", ".join(w)) for v, w in groups.items())
    return len(groups), text
