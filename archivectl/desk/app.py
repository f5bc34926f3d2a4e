"""The desk's pages: clerk (new household and its scans), approver (what awaits me), butler (find, reveal, open).

Each page calls the operation the CLI's command calls, and shows its result or
its refusal (the ArchiveError's own one line). Security, in one place
(`_guard` and `_headers`): the Host must be 127.0.0.1:PORT (DNS rebinding);
the one-time token in the printed address is exchanged for an HttpOnly,
SameSite=Strict session cookie, and any other request without that session is
refused (403); every POST must come from the page's own Origin and carry the
session's CSRF token; every response is `no-store`, framed by no one, and
under a Content-Security-Policy that allows no inline script.
"""

from __future__ import annotations

import hmac
import io
import os
import secrets
import shutil
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Request, abort, jsonify, redirect, render_template, request, send_file

from archivectl import crypto, screen
from archivectl.archive import Archive
from archivectl.errors import ArchiveError
from archivectl.i18n import _, ngettext

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SCAN_ROWS = 3  # rows of the clerk's scan picker: files (several at once), their document type and date
MAX_HANDED = 100  # pages' state kept for their next request (forms shown, refusals, results)
MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # one form's scans, held in memory (never on a disk) until encrypted

# attach reads a scan from a path: a memory file reached through /proc is one without a disk (Linux).
IN_MEMORY_FILES = hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir()

# Shown visibly, never acted on: C0/C1 controls (terminal escapes), bidi overrides and isolates, zero widths.


def inert(value: Any) -> str:
    """A clear value as text that does nothing (screen.inert: controls, bidi marks as escapes); HTML-escaped after."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return screen.inert(value)


@dataclass
class DeskState:
    """The secrets of one desk run: the one-time token, the session it becomes, the CSRF token, the port."""

    root: Path
    identity: str | None
    token: str | None = field(default_factory=lambda: secrets.token_urlsafe(32))
    session: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # what a POST leaves for the page it redirects to, taken once (post/redirect/get: the browser's
    # session history then holds a GET address, never a form body with personal data in it)
    handed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def hand(self, what: dict[str, Any]) -> str:
        key = secrets.token_urlsafe(16)
        with self.lock:
            self.handed[key] = what
            while len(self.handed) > MAX_HANDED:  # forms shown and never sent: the oldest go first
                self.handed.pop(next(iter(self.handed)))
        return key

    def take(self, key: str | None) -> dict[str, Any] | None:
        return self.handed.pop(key, None) if key else None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cookie(self) -> str:
        return f"desk_{self.port}"  # one per port: two desks in one browser keep their own sessions

    def archive(self) -> Archive:
        """The archive as it is now (a new object per request: nothing cached across writes)."""
        return Archive(self.root)


class _MemoryRequest(Request):
    """Uploaded scans go to anonymous memory (memfd), never to a temporary file on a disk (P9)."""

    max_content_length = MAX_UPLOAD_BYTES

    def _get_file_stream(self, *args: Any, **kwargs: Any) -> Any:
        if not IN_MEMORY_FILES:
            return io.BytesIO()  # held in memory; the page then refuses to attach it (see _scans_of)
        return os.fdopen(os.memfd_create("desk-scan", os.MFD_CLOEXEC), "w+b")


def _same(given: str | None, expected: str | None) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(str(given), str(expected))


def create_app(state: DeskState) -> Flask:
    """The desk's Flask application over state (its port is set once the server has bound it)."""
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.request_class = _MemoryRequest
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(_, ngettext, newstyle=True)  # type: ignore[attr-defined]
    app.jinja_env.filters["inert"] = inert
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES

    @app.before_request
    def _guard() -> Any:
        if request.host != f"127.0.0.1:{state.port}":
            abort(403, _("this desk answers only at 127.0.0.1:{port}").format(port=state.port))
        token = request.args.get("token")
        if token is not None:
            with state.lock:  # one time only, even for two requests at once
                valid = request.method == "GET" and request.path == "/" and _same(token, state.token)
                if valid:
                    state.token = None
            if not valid:
                abort(403, _("this address's token is not valid (it works once): run `archivectl desk` again"))
            response = redirect("/", code=303)
            response.set_cookie(state.cookie, state.session, httponly=True, samesite="Strict", path="/")
            return response
        if not _same(request.cookies.get(state.cookie), state.session):
            abort(403, _("no desk session: open the address `archivectl desk` printed"))
        if request.method not in ("GET", "HEAD"):
            if request.headers.get("Origin") != state.origin:
                abort(403, _("refused: the request did not come from this desk's page"))
            if not _same(request.form.get("csrf") or request.headers.get("X-CSRF-Token"), state.csrf):
                abort(403, _("refused: the form's CSRF token is wrong; reload the page"))
        return None

    @app.after_request
    def _headers(response: Any) -> Any:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"  # no-referrer would make Chromium send Origin: null
        response.headers["Cache-Control"] = "no-store"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        return response

    @app.teardown_request
    def _forget(exc: BaseException | None) -> None:
        crypto.forget_keys()  # a concurrent request's keys too: it opens the rest with pyrage

    @app.errorhandler(403)
    def _forbidden(exc: Any) -> Any:
        return render_template("refused.html", message=exc.description), 403

    @app.errorhandler(413)
    def _too_large(exc: Any) -> Any:
        message = _("the scans are larger than {mb} MB together; attach them in parts").format(
            mb=MAX_UPLOAD_BYTES // (1024 * 1024)
        )
        return render_template("refused.html", message=message), 413

    @app.errorhandler(Exception)
    def _failed(exc: Exception) -> Any:
        if getattr(exc, "code", None) and hasattr(exc, "get_response"):  # an HTTP error (404, 405): as it is
            return exc
        # The message may hold anything; the page and the log get the kind of failure only (and the path
        # without its query string: an archive number at most).
        sys.stderr.write(f"desk: internal error ({type(exc).__name__}) on {request.method} {request.path}\n")
        return render_template(
            "refused.html", message=_("internal error ({kind})").format(kind=type(exc).__name__)
        ), 500

    @app.context_processor
    def _common() -> dict[str, Any]:
        from archivectl.i18n import language

        return {"csrf": state.csrf, "me": _me(state), "lang": "zh-CN" if language() == "zh_CN" else "en"}

    # ------------------------------------------------------------------ home

    @app.get("/")
    def home() -> Any:
        return render_template("home.html")

    # ------------------------------------------------------------------ clerk: a new household and its scans

    @app.get("/add")
    def add_form() -> Any:
        again = state.take(request.args.get("again"))
        if again is None:
            return _add_page(state, {})
        return _add_page(state, again["values"], again["refusal"]), again["status"]

    @app.get("/added/<key>")
    def added(key: str) -> Any:
        result = state.take(key)
        if result is None:
            return redirect("/add", code=303)
        return render_template("added.html", **result)

    @app.post("/add")
    def add_submit() -> Any:
        from archivectl.desk import form as desk_form
        from archivectl.ops import access, households
        from archivectl.ops.common import Approval

        archive = state.archive()
        all_groups = desk_form.groups(archive.household_schema)
        approval = Approval(request.form.get("reason") or None, request.form.get("approver") or None)
        given = households.RecordInput(sets=desk_form.set_pairs(request.form, all_groups))
        scans = _scans_of(request)
        if scans and not IN_MEMORY_FILES:
            problem = _("this system cannot hold a scan in memory for attach; attach scans with `archivectl attach`")
            key = state.hand({"values": _kept(request.form), "refusal": problem, "status": 422})
            return redirect(f"/add?again={key}", code=303)
        try:
            number = households.add(archive, given, approval, bool(request.form.get("also_active")))
        except ArchiveError as exc:
            key = state.hand({"values": _kept(request.form), "refusal": str(exc), "status": _status(exc)})
            return redirect(f"/add?again={key}", code=303)
        done = [_("added {number}, awaiting approval by {approver}").format(number=number, approver=approval.approver)]
        refusal = None
        with _scan_files(scans) as files:
            for path, doc_type, date in files:
                try:
                    name = access.attach(state.archive(), number, path, doc_type, date, approval)
                except ArchiveError as exc:
                    refusal = _("{number} was added, but a scan was not attached: {problem}").format(
                        number=number, problem=exc
                    )
                    break
                done.append(_("attached {name} to {number}").format(name=name, number=number))
        return redirect(f"/added/{state.hand({'number': number, 'done': done, 'refusal': refusal})}", code=303)

    @app.post("/check")
    def check() -> Any:
        """A field checked as typed, by the same functions the schema's formats use (idcheck)."""
        from archivectl import idcheck

        kind, value = request.form.get("kind", ""), request.form.get("value", "")
        problem = None
        if kind == "id":
            problem = idcheck.resident_id_problem(value.strip())
        elif kind == "phone":
            problem = idcheck.phone_problem(value.strip())
        return jsonify({"problem": problem})

    # ------------------------------------------------------------------ clerk: edit an existing household

    @app.get("/household/<archive_no>/edit")
    def edit_form(archive_no: str) -> Any:
        handed = state.take(request.args.get("again")) or {}
        try:
            page = _edit_page(state, archive_no, handed)
        except ArchiveError as exc:
            return refused_on_household(archive_no, exc)
        return page, handed.get("status", 200)

    @app.post("/household/<archive_no>/edit/fill")
    def edit_fill(archive_no: str) -> Any:
        """A reader's sealed values into the form: a reveal like any other, registered first (P8)."""
        from archivectl.ops import reading

        try:
            plain = reading.reveal(state.archive(), archive_no, request.form.get("reason") or None, state.identity)
        except ArchiveError as exc:
            key = state.hand({"refusal": str(exc), "status": _status(exc)})
        else:
            notice = _("revealed {number}; the look-up is registered (P8)").format(number=archive_no)
            key = state.hand({"filled": plain, "notice": notice})
        return redirect(f"/household/{urllib.parse.quote(archive_no, safe='')}/edit?again={key}", code=303)

    @app.post("/household/<archive_no>/edit")
    def edit_submit(archive_no: str) -> Any:
        from archivectl.desk import form as desk_form
        from archivectl.ops import households
        from archivectl.ops.common import Approval

        shown = state.take(request.form.get("form"))
        here = f"/household/{urllib.parse.quote(archive_no, safe='')}"
        archive = state.archive()
        if shown is None or shown["number"] != archive_no:
            refusal = _("this form was sent already or is out of date; nothing was written: open the edit page again")
            return redirect(f"{here}/edit?again={state.hand({'refusal': refusal, 'status': 409})}", code=303)
        if _version(archive, archive_no) != shown["version"]:
            refusal = _("{number} changed since the form was shown; nothing was written: look at it again").format(
                number=archive_no
            )
            return redirect(f"{here}/edit?again={state.hand({'refusal': refusal, 'status': 409})}", code=303)
        all_groups = desk_form.groups(archive.household_schema, shown["rows"])
        sets, unsets = desk_form.edit_changes(request.form, all_groups, shown["values"])
        given = households.RecordInput(sets=sets, unsets=unsets)
        approval = Approval(request.form.get("reason") or None, request.form.get("approver") or None)
        try:
            commit = households.edit(archive, archive_no, given, approval, state.identity)
        except ArchiveError as exc:
            again = {**shown, "typed": _kept(request.form), "refusal": str(exc), "status": _status(exc)}
            return redirect(f"{here}/edit?again={state.hand(again)}", code=303)
        notice = _("edited {archive_no} in commit {commit}").format(archive_no=archive_no, commit=commit[:12])
        return redirect(f"{here}?done={state.hand({'notice': notice})}", code=303)

    # ------------------------------------------------------------------ approver: what awaits me

    @app.get("/approve")
    def approve_page() -> Any:
        return _approve_page(state)

    @app.post("/approve")
    def approve_submit() -> Any:
        from archivectl.ops import approvals

        head = request.form.get("head", "")
        commits = request.form.get("commits", "").split(",")

        def confirm(plan: approvals.ApprovalPlan) -> bool:
            if plan.head != head or [c["commit"] for c in plan.commits] != commits:
                raise ArchiveError(
                    _("what awaits you changed since the page was shown; nothing was written: look again")
                )
            return True

        try:
            plan, commit = approvals.approve(
                state.archive(), None, request.form.get("reason") or None, confirm, False, state.identity
            )
        except ArchiveError as exc:
            return _approve_page(state, str(exc)), _status(exc)
        notice = _("approved {count} change(s) in commit {commit}").format(count=len(plan.commits), commit=commit[:12])
        return _approve_page(state, notice=notice)

    # ------------------------------------------------------------------ butler: find, reveal, open

    @app.get("/find")
    def find() -> Any:
        from archivectl.ops import reading

        wanted = {k: request.args.get(k, "").strip() for k in ("building", "floor", "unit", "archive_no")}
        if wanted["archive_no"]:
            return redirect(f"/household/{urllib.parse.quote(wanted['archive_no'], safe='')}", code=303)
        rows, refusal = None, None
        if wanted["building"]:
            try:
                rows = reading.list_households(state.archive(), wanted["building"])
            except ArchiveError as exc:
                refusal = str(exc)
            for key in ("floor", "unit"):
                if rows is not None and wanted[key]:
                    rows = [r for r in rows if str(r.get(key)) == wanted[key]]
        return render_template("find.html", wanted=wanted, rows=rows, refusal=refusal)

    @app.get("/household/<archive_no>")
    def household(archive_no: str) -> Any:
        from archivectl.ops import reading

        done = state.take(request.args.get("done")) or {}
        try:
            record = reading.show(state.archive(), archive_no, state.identity)
        except ArchiveError as exc:
            return render_template("household.html", number=archive_no, refusal=str(exc)), _status(exc)
        view = _record_view(record, revealed=False)
        return render_template("household.html", number=archive_no, notice=done.get("notice"), **view)

    def refused_on_household(archive_no: str, exc: ArchiveError) -> Any:
        """The household's page, masked as it can be, with the refusal in the command's words."""
        from archivectl.ops import reading

        try:
            shown = _record_view(reading.show(state.archive(), archive_no, state.identity), revealed=False)
        except ArchiveError:
            shown = {}
        return render_template("household.html", number=archive_no, refusal=str(exc), **shown), _status(exc)

    @app.post("/household/<archive_no>/reveal")
    def reveal(archive_no: str) -> Any:
        from archivectl.ops import reading

        try:
            record = reading.reveal(state.archive(), archive_no, request.form.get("reason") or None, state.identity)
        except ArchiveError as exc:
            return refused_on_household(archive_no, exc)
        notice = _("revealed {number}; the look-up is registered (P8)").format(number=archive_no)
        return render_template("household.html", number=archive_no, notice=notice, **_record_view(record, True))

    @app.post("/household/<archive_no>/open")
    def open_scan(archive_no: str) -> Any:
        from archivectl.ops import access

        sink = io.BytesIO()  # the scan in clear stays in memory and goes to the browser only
        try:
            entry = access.open_document(
                state.archive(),
                archive_no,
                request.form.get("doc", ""),
                request.form.get("reason") or None,
                sink,
                state.identity,
            )
        except ArchiveError as exc:
            return refused_on_household(archive_no, exc)
        sink.seek(0)
        name = f"{archive_no}-{Path(str(entry['file'])).name.removesuffix('.age')}"
        return send_file(sink, mimetype="application/octet-stream", as_attachment=True, download_name=name, max_age=0)

    return app


# ---------------------------------------------------------------------- helpers


def _kept(form: Any) -> dict[str, str]:
    """What the clerk typed, to show again with a refusal (the CSRF token comes from the page anew)."""
    return {k: v for k, v in form.items() if k != "csrf"}


def _status(exc: ArchiveError) -> int:
    return 422 if exc.exit_code == 2 else 409


def _me(state: DeskState) -> dict[str, Any]:
    from archivectl.identity import actor_of

    try:
        member = actor_of(state.archive()).member
    except ArchiveError as exc:
        return {"id": None, "problem": str(exc)}
    return {"id": member.id, "role": member.role, "name": member.name}


def _approvers(archive: Archive) -> list[Any]:
    """The staff who may approve the acting person's change (policy.approval_problem decides)."""
    from archivectl import policy
    from archivectl.identity import actor_of

    try:
        actor = actor_of(archive).member
    except ArchiveError:
        return []
    staff = archive.staff
    rules = archive.settings.rules
    return [m for m in staff.active() if policy.approval_problem(actor, m.id, staff, rules) is None]


def _add_page(state: DeskState, values: Any, refusal: str | None = None) -> Any:
    from archivectl import gitio
    from archivectl.desk import form as desk_form
    from archivectl.ops.access import document_types

    archive = state.archive()
    return render_template(
        "add.html",
        on_main=gitio.current_branch(archive.root) == archive.settings.main,
        groups=desk_form.groups(archive.household_schema),
        values=values,
        approvers=_approvers(archive),
        doc_types=document_types(archive),
        scan_rows=range(SCAN_ROWS),
        refusal=refusal,
    )


def _version(archive: Archive, archive_no: str) -> str:
    """The household's stored record as it is now, by its hash: an edit applies to what its form showed."""
    import hashlib

    return hashlib.sha256((archive.root / archive.locate(archive_no)).read_bytes()).hexdigest()


def _edit_page(state: DeskState, archive_no: str, handed: dict[str, Any]) -> Any:
    """The household's form, prefilled: clear values, and a reader's sealed ones once revealed into it.

    What the form showed is kept on the server (never in the page) under a one-time key, so that the
    answers are compared with it: only what was changed is sent to edit.
    """
    from archivectl import records
    from archivectl.desk import form as desk_form
    from archivectl.identity import actor_of
    from archivectl.layout import check_archive_no
    from archivectl.ops.common import load_stored, readers
    from archivectl.ops.households import COMMAND_FIELDS

    check_archive_no(archive_no)
    archive = state.archive()
    if "number" in handed:  # a refusal: the form as it was shown, with what was typed
        shown = {k: handed[k] for k in ("number", "version", "rows", "values", "revealed")}
    else:
        stored = load_stored(archive, archive.locate(archive_no))
        revealed = "filled" in handed
        record = handed["filled"] if revealed else {k: v for k, v in stored.items() if k not in records.STORED_ONLY}
        rows = desk_form.rows_for(record)
        values = desk_form.values_of(record, desk_form.groups(archive.household_schema, rows))
        shown = {
            "number": archive_no,
            "version": _version(archive, archive_no),
            "rows": rows,
            "values": values,
            "revealed": revealed,
        }
    building = str((shown["values"]).get("building", ""))
    try:
        reader = actor_of(archive).member in readers(archive, building)
    except ArchiveError:
        reader = False
    return render_template(
        "edit.html",
        number=archive_no,
        form_key=state.hand(shown),
        groups=desk_form.groups(archive.household_schema, shown["rows"]),
        values={**shown["values"], **handed.get("typed", {})},
        revealed=shown["revealed"],
        reader=reader,
        fixed=set(COMMAND_FIELDS),
        approvers=_approvers(archive),
        refusal=handed.get("refusal"),
        notice=handed.get("notice"),
    )


def _approve_page(state: DeskState, refusal: str | None = None, notice: str | None = None) -> Any:
    from archivectl.ops import approvals

    archive = state.archive()
    plan, problem = None, None
    try:
        plan = approvals.plan(archive, None, False, state.identity)
    except ArchiveError as exc:
        problem = str(exc)
    from archivectl import gitio

    me = _me(state).get("id")
    elsewhere: list[dict[str, Any]] = []
    try:
        here = gitio.current_branch(archive.root)
        this_branch = {here, f"origin/{here}"} if here else set()  # its upstream may lag behind an approval
        elsewhere = [
            {**r, "threshold": threshold(r)}
            for r in approvals.pending(archive, None, every_branch=True)
            if r["awaiting"] == me and r.get("branch") not in this_branch
        ]
    except ArchiveError:
        pass
    changes, story_problem = _stories(archive, plan)
    return render_template(
        "approve.html",
        plan=plan,
        changes=changes,
        story_problem=story_problem,
        problem=problem,
        elsewhere=elsewhere,
        refusal=refusal,
        notice=notice,
    )


def _stories(archive: Archive, plan: Any) -> tuple[list[dict[str, Any]], str | None]:
    """Each change awaiting the approver with review's story of it (no personal data) and its threshold.

    review tells the range the plan was read from; a change it does not tell (it cannot: a range of
    main's whole history) is shown with its threshold alone, and review's refusal in its own words.
    """
    if plan is None:
        return [], None
    from archivectl.ops import review

    told: dict[str, dict[str, Any]] = {}
    problem = None
    try:
        story = review.review(archive, None if plan.range == "HEAD" else plan.range)
        told = {c["commit"]: c for c in story["changes"]}
    except ArchiveError as exc:
        problem = str(exc)
    if problem is not None:
        problem = _("review cannot tell this range: {problem}").format(problem=problem)
    return [
        {"row": row, "threshold": threshold(row), "story": story_lines(told.get(row["commit"]))} for row in plan.commits
    ], problem


def story_lines(change: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One change of review's story as a page shows it: per household its place and what changed, then the rest.

    The words are review's own messages (its Markdown, as a page's list); every value in them is review's,
    already without personal data.
    """
    if change is None:
        return []
    told = []
    for h in change["households"]:
        lines = []
        if h["sealed"]:
            lines.append(_("sealed fields changed: {paths}").format(paths=", ".join(h["sealed"])))
        if h["sealed_note"]:
            lines.append(_("sealed fields: {note}").format(note=h["sealed_note"]))
        lines += [f"{c['field']}: {c['old']} → {c['new']}" for c in h["clear"]]
        lines += [_("document added: {doc}").format(doc=d) for d in h["documents"]]
        place = _("{no} (building {building}, floor {floor}, unit {unit})").format(
            no=h["archive_no"], building=h["building"], floor=h["floor"], unit=h["unit"]
        )
        told.append({"place": f"{place}: {h['what']}", "lines": lines})
    rest = [_("register entry: {entry}").format(entry=e) for e in change["registers"]]
    rest += [_("file: {path}").format(path=f) for f in change["other_files"]]
    rest += [_("finding: {text}").format(text=f) for f in change["findings"]]
    return told + [{"place": line, "lines": []} for line in rest]


def threshold(row: dict[str, Any]) -> str:
    """How far a pending change is (a pending_row): "1 of 2 approvals: mgr02; awaiting 1 more by a manager or gm"."""
    signed_count, _sep, needed = str(row.get("approvals") or "0/1").partition("/")
    have, need = int(signed_count), int(needed or 1)
    text = ngettext("{have} of {need} approval", "{have} of {need} approvals", need).format(have=have, need=need)
    if row.get("signed"):
        text += ": " + inert(row["signed"])
    named = inert(row.get("awaiting") or "")
    roles = f" {_('or')} ".join(inert(r) for r in str(row.get("more_from") or "").split(", ") if r)
    more = need - have - (1 if named else 0)
    if named and roles and more > 0:
        waiting = _("awaiting {who} and {n} more by a {roles}").format(who=named, n=more, roles=roles)
    elif named:
        waiting = _("awaiting {who}").format(who=named)
    elif roles and more > 0:
        waiting = _("awaiting {n} more by a {roles}").format(n=more, roles=roles)
    else:
        return text
    return f"{text}; {waiting}"


def _record_view(record: dict, revealed: bool) -> dict[str, Any]:
    from archivectl.render import flatten

    rows = [r for r in flatten(record) if not str(r["field"]).startswith("documents")]
    return {"rows": rows, "documents": record.get("documents") or [], "revealed": revealed}


@dataclass
class _Scan:
    stream: Any
    suffix: str
    doc_type: str
    date: str | None


def _scans_of(req: Request) -> list[_Scan]:
    """The scans picked in each row, with that row's document type and date."""
    scans = []
    for i in range(SCAN_ROWS):
        for upload in req.files.getlist(f"scan_{i}"):
            if not upload.filename:
                continue
            scans.append(
                _Scan(
                    upload.stream,
                    Path(upload.filename).suffix,
                    req.form.get(f"scan_type_{i}", ""),
                    req.form.get(f"scan_date_{i}") or None,
                )
            )
    return scans


@contextmanager
def _scan_files(scans: list[_Scan]) -> Iterator[list[tuple[Path, str, str | None]]]:
    """Each scan as a path attach can read: a link named scan-N.<ext> to its memory file (nothing in clear on disk).

    attach reads the file's name for its extension (kept in the attachment's name) and streams its bytes.
    """
    folder = Path(tempfile.mkdtemp(prefix="archivectl-desk-"))
    try:
        paths = []
        for n, scan in enumerate(scans, start=1):
            fileno = scan.stream.fileno()
            link = folder / f"scan-{n}{scan.suffix}"
            os.symlink(f"/proc/{os.getpid()}/fd/{fileno}", link)
            paths.append((link, scan.doc_type, scan.date))
        yield paths
    finally:
        shutil.rmtree(folder, ignore_errors=True)
