"""`archivectl desk`: the page on 127.0.0.1, driven in a real headless Chromium (P7, P8, P9, P12).

A clerk and a manager each run their own desk (their own HOME, key, clone and
process) against the office's bare server; the clerk proposes a household with
two scans through the page, the manager sees it awaiting them, reveals it (one
register entry), approves it; everything verifies and every commit is signed by
its own person's key. Screenshots of each step are kept under the test's tmp dir
and copied to bench/out/desk/ (gitignored) for people to look at.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from conftest import OWNER_ID, OWNER_NAME, OWNER_PHONE, World, as_built, assert_unchanged
from test_office import Desk, open_office

DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HOSTILE = "<script>alert('x')</script>evil"  # markup in clear text; escapes and bidi overrides are refused
OUT = Path(__file__).resolve().parent.parent / "bench" / "out" / "desk"


def need_browser() -> None:
    if shutil.which("chromium") is None or not Path(DRIVER).exists():
        pytest.skip("chromium or its driver missing: apt-get install chromium chromium-driver")
    pytest.importorskip("selenium", reason="selenium missing: pip install -e '.[test]'")


@pytest.fixture
def office(world: World, tmp_path: Path) -> dict[str, Desk]:
    """test_office's office: the gm's archive on a bare server, a clone per person."""
    server = tmp_path / "server.git"
    as_built(world, "office", lambda: open_office(world, server))
    return {who: Desk(world, who, server) for who in ("clk01", "but01", "mgr01", "mgr02")}


class Running:
    """One person's `archivectl desk` process and the address it printed."""

    def __init__(self, env: dict[str, str], archive: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "archivectl", "--archive", str(archive), "desk", "--no-browser"],
            env=env,
            cwd=archive,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        match = re.fullmatch(r"(http://127\.0\.0\.1:(\d+)/\?token=([\w-]+))\n", line)
        assert match, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.url, self.port, self.token = match[1], int(match[2]), match[3]

    def stop(self) -> tuple[int, str, str]:
        """Ctrl-C, as the person does: the desk stops and says so."""
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err

    def request(self, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response, data


def desk_env(desk: Desk) -> dict[str, str]:
    (desk.home / "tmp").mkdir(exist_ok=True)
    return {**desk.env(), "TMPDIR": str(desk.home / "tmp")}


def browser(download_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600", "--lang=en"):
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={download_dir.parent / 'chromium-profile'}")
    options.binary_location = shutil.which("chromium")
    return webdriver.Chrome(service=Service(DRIVER), options=options)


class Shots:
    """Screenshots of each step, under the test's tmp dir and copied to bench/out/desk/."""

    def __init__(self, tmp: Path):
        self.dir = tmp / "screenshots"
        self.dir.mkdir()
        self.n = 0

    def take(self, driver, name: str, height: int = 4000) -> Path:
        """The page from its top, down to height pixels (README's picture: the part that matters, small)."""
        self.n += 1
        path = self.dir / f"{self.n:02d}-{name}.png"
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], height), "scale": 1}
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
        path.write_bytes(base64.b64decode(shot["data"]))  # the whole page, not only the window
        OUT.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, OUT / path.name)
        return path


def go(driver, locator: tuple[str, str], expect: str) -> None:
    """Click what leads to another page and wait until that page, with the element expected, has loaded."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element("tag name", "html")
    driver.find_element(*locator).click()
    # Asked while the old page is being torn down, Chromium can answer "Node with given id does not belong
    # to the document" instead of a stale element: ask again (a page that never goes still times out).
    WebDriverWait(driver, 60, ignored_exceptions=[WebDriverException]).until(ec.staleness_of(old))
    WebDriverWait(driver, 60).until(ec.presence_of_element_located(("id", expect)))


def set_value(driver, element_id: str, value: str) -> None:
    """Set an input as a person's typing would leave it (date inputs and control characters included)."""
    element = driver.find_element("id", element_id)
    driver.execute_script(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
        element,
        value,
    )


def drop(driver, zone_id: str, path: Path) -> None:
    """Drop a file from the desktop on an element, as a person drags it there (the page's own drop handler runs).

    WebDriver cannot drag from outside the browser: the file is read by a file input of its own, outside
    the form, and handed to the element in a real drop event's DataTransfer.
    """
    source = driver.execute_script(
        "var i = document.createElement('input'); i.type = 'file'; i.id = 'test-drag-source';"
        "document.body.appendChild(i); return i;"
    )
    source.send_keys(str(path))
    driver.execute_script(
        "var src = arguments[0], zone = document.getElementById(arguments[1]), dt = new DataTransfer();"
        "Array.prototype.forEach.call(src.files, function (f) { dt.items.add(f); });"
        "zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));"
        "zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));"
        "src.remove();",
        source,
        zone_id,
    )


def choose(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_value(value)


def text_of(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def access_entries(desk: Desk) -> list[str]:
    found = desk.git("ls-files", "registers/access").stdout.split()
    return sorted(found)


SCAN_TEXT = "of the owner's ID card (fictitious)"
TYPED = [OWNER_NAME, OWNER_PHONE, OWNER_ID, "13900001111", "测试市测试路1号", SCAN_TEXT]


def clear_secrets_under(root: Path) -> list[str]:
    """Files under root holding a typed personal value in clear (UTF-8 or UTF-16, as browsers store text)."""
    needles = [n.encode(enc) for n in TYPED for enc in ("utf-8", "utf-16-le")]
    return [str(p) for p in root.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]


def signers(desk: Desk, range_spec: str) -> list[tuple[str, str, str]]:
    """(status, key fingerprint, Acted-by) of each commit in the range, oldest first."""
    text = desk.git("log", "--reverse", "--format=%G?|%GF|%(trailers:key=Acted-by,valueonly,separator=)", range_spec)
    return [tuple(line.split("|")) for line in text.stdout.splitlines() if line]


def fingerprint(desk: Desk) -> str:
    pub = desk.world.people[desk.who].pub
    listed = subprocess.run(["ssh-keygen", "-lf", "-"], input=pub, capture_output=True, text=True, check=True)
    return listed.stdout.split()[1]


# ---------------------------------------------------------------------------------------------- the story


def test_clerk_adds_with_two_scans_manager_reveals_and_approves_in_the_browser(office, tmp_path):  # P7 P8 P9 P12
    need_browser()
    from selenium.common.exceptions import NoAlertPresentException

    clerk, manager = office["clk01"], office["mgr01"]
    shots = Shots(tmp_path)
    paper = tmp_path / "paper"  # the scanned paper forms, beside the HOMEs
    paper.mkdir()
    front, back = paper / "id-front.pdf", paper / "id-back.pdf"
    front.write_bytes(f"%PDF-1.4 front {SCAN_TEXT}\n".encode() * 12_000)  # past werkzeug's 500 KB in-memory limit
    back.write_bytes(f"%PDF-1.4 back {SCAN_TEXT}\n".encode() * 12_000)

    # --- the clerk, on their machine: a proposal branch, their desk, their browser
    clerk.git("switch", "-q", "-c", "b03-desk")
    base = clerk.git("rev-parse", "HEAD").stdout.strip()
    clerk_desk = Running(desk_env(clerk), clerk.clone)
    driver = browser(clerk.home / "downloads")
    try:
        driver.get(clerk_desk.url)
        assert driver.current_url == f"http://127.0.0.1:{clerk_desk.port}/"  # the token is gone from the address
        assert text_of(driver, "who") == "clk01 (clerk)"
        go(driver, ("id", "nav-add"), "submit-add")
        assert driver.find_elements("id", "on-main") == []  # on a proposal branch: no warning
        assert "*" in driver.find_element("xpath", "//label[.//input[@name='building']]").text  # required, marked
        for field, value in {
            "f-building": "B03",
            "f-floor": "12",
            "f-unit": "1203",
            "f-customers.0.name": OWNER_NAME,
            "f-customers.0.birth_date": "1980-05-17",
            "f-customers.0.mailing_address": "测试市测试路1号",
            "f-customers.0.hobbies": "围棋, 书法",
            "f-emergency_contacts.0.name": "李测试",
            "f-emergency_contacts.0.phone": "13900001111",
            "f-repairs.0.date": "2024-06-01",
            "f-repairs.0.summary": HOSTILE,  # hostile clear text, to be shown inert
            "reason": "new owner at hand-over",
        }.items():
            set_value(driver, field, value)
        for field, value in {
            "f-category": "handed-over",
            "f-occupancy": "owner-occupied",
            "f-customers.0.role": "owner",
            "f-customers.0.id_type": "resident-id",
            "scan-type-0": "owner-id-copy",
        }.items():
            choose(driver, field, value)
        # the ID number and the phone are checked as typed, by the server's own check
        phone = driver.find_element("id", "f-customers.0.phone")
        phone.send_keys("1234")
        id_number = driver.find_element("id", "f-customers.0.id_number")
        id_number.send_keys(OWNER_ID[:-1] + "9")
        phone.click()
        problem = driver.find_element("id", "p-customers.0.id_number")
        _wait(lambda: problem.text == "check digit is wrong")
        _wait(lambda: "is not a mobile" in text_of(driver, "p-customers.0.phone"))
        shots.take(driver, "clerk-form-checked-as-typed")
        set_value(driver, "f-customers.0.phone", OWNER_PHONE)
        set_value(driver, "f-customers.0.id_number", OWNER_ID)
        _wait(lambda: problem.text == "")

        # a refusal is the CLI's, in its words, and writes nothing
        driver.find_element("id", "scan-0").send_keys(f"{front}\n{back}")
        go(driver, ("id", "submit-add"), "refusal")
        assert text_of(driver, "refusal") == "--approver is required: name the manager who approved this change"
        assert clerk.git("rev-parse", "HEAD").stdout.strip() == base
        assert [o.get_attribute("value") for o in driver.find_elements("css selector", "#approver option")] == [
            "",
            "gm01",
            "mgr01",
            "mgr02",
        ]  # the staff who may approve a clerk's change
        shots.take(driver, "clerk-refused-no-approver")

        choose(driver, "approver", "mgr01")
        driver.find_element("id", "scan-0").send_keys(str(front))  # files are picked again after a refusal
        drop(driver, "drop-0", back)  # ... or dropped on the row: they join the picked ones
        assert text_of(driver, "drop-hint-0") == "id-front.pdf, id-back.pdf"
        go(driver, ("id", "submit-add"), "done")
        done = text_of(driver, "done").splitlines()
        number = re.search(r"HO-\d{4}-\d{5}", done[0])[0]
        today = clerk.git("log", "-1", "--format=%cs").stdout.strip()
        assert done == [
            f"added {number}, awaiting approval by mgr01",
            f"attached attachments/owner-id-copy-{today}-1.pdf.age to {number}",
            f"attached attachments/owner-id-copy-{today}-2.pdf.age to {number}",
        ]
        shots.take(driver, "clerk-proposed")
    finally:
        (tmp_path / "clerk-last.html").write_text(driver.page_source)
        driver.quit()
        code, out, err = clerk_desk.stop()
    assert code == 0 and "desk stopped" in err
    assert "GET" not in err and "POST" not in err and clerk_desk.token not in err  # no request log
    assert OWNER_NAME not in out + err
    # nothing typed is left in clear on the clerk's disk: no temporary file, no browser history or cache (P9)
    assert clear_secrets_under(clerk.home) == []  # the scans included: held in memory until encrypted
    assert list((clerk.home / "tmp").iterdir()) == []

    # the same commits the CLI's add and attach make, each signed by the clerk's own key
    log = clerk.git("log", "--reverse", "--format=%s|%(trailers:key=Action,valueonly,separator=)", f"{base}..HEAD")
    assert log.stdout.splitlines() == [
        f"add {number} (B03/1203)|add",
        f"attach owner-id-copy v1 to {number}|attach",
        f"attach owner-id-copy v2 to {number}|attach",
    ]
    assert {s for s in signers(clerk, f"{base}..HEAD")} == {("G", fingerprint(clerk), "clk01")}
    assert clerk.git("push", "-q", "-u", "origin", "b03-desk", check=False).returncode == 0
    shown = json.loads(clerk.ok("show", number, "--format", "json"))
    assert shown["repairs"][0]["summary"] == HOSTILE and shown["customers"] == "(sealed)"  # a clerk reads no one

    # --- the manager, on their machine: fetch the branch, their own desk and browser
    manager.git("fetch", "-q")
    manager.git("switch", "-q", "b03-desk")
    registered = access_entries(manager)
    manager_desk = Running(desk_env(manager), manager.clone)
    driver = browser(manager.home / "downloads")
    try:
        driver.get(manager_desk.url)
        go(driver, ("id", "nav-approve"), "range")
        assert text_of(driver, "range") == "3 changes in origin/main..HEAD await your approval:"
        plan = text_of(driver, "plan")
        assert f"{number} (building B03, floor 12, unit 1203): added" in plan
        assert "customers.0.phone: - -> 138****5678" in plan  # masked
        assert "repairs.0.summary: - -> <script>alert('x')</script>evil" in plan  # inert
        assert OWNER_PHONE not in driver.page_source and OWNER_NAME not in driver.page_source
        # each change told as review tells it (no personal data), with how far its approvals are
        assert [text_of(driver, f"threshold-{i}") for i in (1, 2, 3)] == ["0 of 1 approval; awaiting mgr01"] * 3
        story = text_of(driver, "story-1")
        assert f"{number} (building B03, floor 12, unit 1203): added" in story
        assert "sealed fields changed: customers" in story
        assert "repairs.0.summary: - → <script>alert('x')</script>evil" in story  # inert
        assert "document added: owner-id-copy" in text_of(driver, "story-2")
        shots.take(driver, "manager-awaiting")
        shots.take(driver, "manager-awaiting-top", height=820)  # docs/desk-approver.png is made from this one
        assert access_entries(manager) == registered  # looking at the queue registers nothing

        go(driver, ("css selector", "a.household-link"), "reveal-button")
        assert OWNER_NAME not in driver.page_source
        set_value(driver, "reveal-reason", "checking the hand-over form before approval")
        go(driver, ("id", "reveal-button"), "notice")
        assert text_of(driver, "notice") == f"revealed {number}; the look-up is registered (P8)"
        record = text_of(driver, "record")
        assert OWNER_NAME in record and OWNER_PHONE in record and OWNER_ID in record
        # hostile clear text is shown, inert: no script ran, no escape or bidi override acts
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text
        assert "<script>alert('x')</script>evil" in record
        assert driver.find_elements("css selector", "#record script") == []
        shots.take(driver, "manager-revealed")
        assert len(access_entries(manager)) == len(registered) + 1  # one register entry
        reveal = manager.git("log", "-1", "--format=%(trailers:key=Action,valueonly,separator=)").stdout.strip()
        assert reveal == "reveal"

        # a scan opened from the page: registered, sent as an attachment, never cached
        token = driver.find_element("name", "csrf").get_attribute("value")
        cookie = next(c for c in driver.get_cookies() if c["name"] == f"desk_{manager_desk.port}")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        body = urllib.parse.urlencode(
            {"csrf": token, "doc": f"attachments/owner-id-copy-{today}-2.pdf.age", "reason": "compare the ID"}
        ).encode()
        response, data = manager_desk.request(
            "POST",
            f"/household/{number}/open",
            {
                "Cookie": f"{cookie['name']}={cookie['value']}",
                "Origin": f"http://127.0.0.1:{manager_desk.port}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            body,
        )
        assert response.status == 200 and data == back.read_bytes()
        assert response.getheader("Content-Disposition").startswith("attachment;")
        assert response.getheader("Cache-Control") == "no-store"
        assert len(access_entries(manager)) == len(registered) + 2

        go(driver, ("id", "nav-approve"), "approve-button")
        set_value(driver, "approve-reason", "matches the hand-over form")
        go(driver, ("id", "approve-button"), "notice")
        assert re.fullmatch(r"approved 3 change\(s\) in commit [0-9a-f]{12}", text_of(driver, "notice"))
        assert "nothing in origin/main..HEAD awaits approval" in text_of(driver, "nothing")
        assert driver.find_elements("id", "elsewhere") == []  # not this branch's own upstream, still unapproved
        shots.take(driver, "manager-approved")
    finally:
        driver.quit()
        code, _, err = manager_desk.stop()
    assert code == 0 and OWNER_NAME not in err
    assert clear_secrets_under(manager.home) == []  # what was revealed is not in the browser's cache (no-store)

    # the commits verify, each signed by its own person's key
    result = manager.cli("verify", "--range", "origin/main..HEAD", "--format", "json")
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["findings"] == []
    assert signers(manager, "origin/main..HEAD") == [
        ("G", fingerprint(clerk), "clk01"),
        ("G", fingerprint(clerk), "clk01"),
        ("G", fingerprint(clerk), "clk01"),
        ("G", fingerprint(manager), "mgr01"),
        ("G", fingerprint(manager), "mgr01"),
        ("G", fingerprint(manager), "mgr01"),
    ]
    approval = manager.git("log", "-1", "--format=%(trailers:key=Approves,valueonly)").stdout.split()
    assert approval == manager.git("rev-list", "--reverse", f"{base}..HEAD~3").stdout.split()
    assert manager.git("push", "-q", "origin", "b03-desk", check=False).returncode == 0
    for shot in sorted(shots.dir.iterdir()):
        assert shot.stat().st_size > 10_000  # a page, not a blank


def _wait(condition, seconds: float = 60) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(None, seconds, poll_frequency=0.1).until(lambda _: condition())


# ---------------------------------------------------------------------------------------------- security


@pytest.fixture
def running(world: World, household: str):
    """gm01's desk on the test archive (a household in it); stopped after the test."""
    env = {**_world_env(world, "gm01")}
    desk = Running(env, world.root)
    yield desk
    if desk.proc.poll() is None:
        desk.stop()


def _world_env(world: World, who: str) -> dict[str, str]:
    from conftest import process_env

    return {**process_env(world.people[who]), "ARCHIVECTL_KEYSTORE": str(world.keys)}


def _session(desk: Running) -> str:
    response, _ = desk.request("GET", f"/?token={desk.token}")
    assert response.status == 303 and response.getheader("Location") == "/"
    cookie = response.getheader("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    return cookie.split(";")[0]


def test_without_the_token_or_session_every_request_is_refused(running):
    for path in ("/", "/find?building=B03", "/approve", "/static/desk.js", f"/?token={running.token}x"):
        response, data = running.request("GET", path)
        assert response.status == 403, path
        assert response.getheader("Cache-Control") == "no-store"
    cookie = _session(running)
    again, _ = running.request("GET", f"/?token={running.token}")
    assert again.status == 403  # the token works once
    response, data = running.request("GET", "/find?building=B03", {"Cookie": cookie})
    assert response.status == 200 and b"HO-" in data
    assert response.getheader("Cache-Control") == "no-store"
    assert response.getheader("X-Frame-Options") == "DENY"
    csp = response.getheader("Content-Security-Policy")
    assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert b"<script>" not in data and b'<script src="/static/desk.js">' in data  # no inline script
    forged, _ = running.request("GET", "/find", {"Cookie": cookie.replace("=", "=x", 1)})
    assert forged.status == 403


def test_another_host_name_is_refused_dns_rebinding(running):
    cookie = _session(running)
    for host in (f"localhost:{running.port}", f"evil.example:{running.port}", "127.0.0.1"):
        response, _ = running.request("GET", "/find", {"Cookie": cookie, "Host": host})
        assert response.status == 403, host


def test_a_post_from_another_origin_or_with_a_wrong_csrf_token_is_refused(world, running, household):  # P8
    cookie = _session(running)
    _, page = running.request("GET", f"/household/{household}", {"Cookie": cookie})
    csrf = re.search(rb'name="csrf" value="([^"]+)"', page)[1].decode()
    before = world.snapshot()
    own = f"http://127.0.0.1:{running.port}"
    form = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    for headers, token in (
        ({"Origin": "http://evil.example"}, csrf),
        ({"Origin": f"http://localhost:{running.port}"}, csrf),
        ({}, csrf),  # no Origin at all
        ({"Origin": own}, "wrong"),
        ({"Origin": own}, ""),
    ):
        body = urllib.parse.urlencode({"csrf": token, "reason": "audit"}).encode()
        response, data = running.request("POST", f"/household/{household}/reveal", {**form, **headers}, body)
        assert response.status == 403, headers
        assert OWNER_NAME.encode() not in data
    assert_unchanged(world, before)
    # the same request from the page itself goes through (and is registered)
    body = urllib.parse.urlencode({"csrf": csrf, "reason": "audit"}).encode()
    response, data = running.request("POST", f"/household/{household}/reveal", {**form, "Origin": own}, body)
    assert response.status == 200 and OWNER_NAME.encode() in data
    assert world.trailers()["Action"] == "reveal"


def test_a_refusal_is_the_cli_s_in_the_same_words(world, running, household):  # P8
    cookie = _session(running)
    _, page = running.request("GET", f"/household/{household}", {"Cookie": cookie})
    csrf = re.search(rb'name="csrf" value="([^"]+)"', page)[1].decode()
    before = world.snapshot()
    body = urllib.parse.urlencode({"csrf": csrf, "reason": ""}).encode()
    headers = {
        "Cookie": cookie,
        "Origin": f"http://127.0.0.1:{running.port}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    response, data = running.request("POST", f"/household/{household}/reveal", headers, body)
    cli = world.cli("gm01", "show", household, "--reveal")
    assert response.status == 422 and cli.exit_code == 2
    refusal = re.search(rb'id="refusal">([^<]*)<', data)[1].decode()
    assert f"archivectl: error: {refusal}" == cli.stderr.strip()
    assert_unchanged(world, before)


def test_the_desk_listens_on_127_0_0_1_only_and_stops_with_ctrl_c(running):
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == running.port:
                listening.append(local)
    assert listening == [f"0100007F:{running.port:04X}"]  # 127.0.0.1, and no IPv6 socket
    for address in _other_addresses():
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(5)
            s.connect((address, running.port))
    code, _, err = running.stop()
    assert code == 0 and "desk stopped" in err
    with socket.socket() as s, pytest.raises(OSError):
        s.connect(("127.0.0.1", running.port))


def _other_addresses() -> list[str]:
    found = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return [a for a in found if ":" not in a and not a.startswith("127.")]


def _page_session(desk: Running, path: str) -> tuple[str, str, bytes]:
    """A session cookie, the CSRF token of the page at path, and the page."""
    cookie = _session(desk)
    _, page = desk.request("GET", path, {"Cookie": cookie})
    return cookie, re.search(rb'name="csrf" value="([^"]+)"', page)[1].decode(), page


def test_the_butler_finds_by_unit_or_number_masked(world, running, household):  # P7 P8
    cookie = _session(running)
    response, page = running.request("GET", "/find?building=B03&floor=12&unit=1203", {"Cookie": cookie})
    assert response.status == 200 and f'href="/household/{household}"'.encode() in page
    response, page = running.request("GET", "/find?building=B03&floor=13", {"Cookie": cookie})
    assert b'id="none-found"' in page
    response, _ = running.request("GET", f"/find?archive_no={household}", {"Cookie": cookie})
    assert response.status == 303 and response.getheader("Location") == f"/household/{household}"
    response, _ = running.request("GET", "/find?archive_no=%2F%2Fevil.example%3Fx", {"Cookie": cookie})
    assert response.getheader("Location") == "/household/%2F%2Fevil.example%3Fx"  # never off this page
    response, page = running.request("GET", "/household/HO-2026-1", {"Cookie": cookie})
    refusal = re.search(rb'id="refusal">([^<]*)<', page)[1].decode()
    cli = world.cli("gm01", "show", "HO-2026-1")
    assert response.status == 422 and cli.exit_code == 2 and cli.stderr.strip() == f"archivectl: error: {refusal}"
    response, page = running.request("GET", f"/household/{household}", {"Cookie": cookie})
    text = page.decode()
    assert "138****5678" in text and "欧***" in text  # masked by default
    assert OWNER_NAME not in text and OWNER_PHONE not in text and OWNER_ID not in text


def test_a_reader_of_another_building_is_refused_in_the_cli_s_words(world, household):  # P7
    desk = Running(_world_env(world, "but02"), world.root)  # but02 reads B05 only
    try:
        cookie, csrf, page = _page_session(desk, f"/household/{household}")
        assert OWNER_NAME not in page.decode() and b"(sealed)" in page
        before = world.snapshot()
        body = urllib.parse.urlencode({"csrf": csrf, "reason": "curious"}).encode()
        headers = {
            "Cookie": cookie,
            "Origin": f"http://127.0.0.1:{desk.port}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        response, data = desk.request("POST", f"/household/{household}/reveal", headers, body)
        cli = world.cli("but02", "show", household, "--reveal", "--reason", "curious")
        assert response.status == 409 and cli.exit_code == 1
        refusal = re.search(rb'id="refusal">([^<]*)<', data)[1].decode()
        assert refusal == "but02 (butler) is not a reader of building B03; ask the general manager for a grant"
        assert f"archivectl: error: {refusal}" == cli.stderr.strip()
        assert OWNER_NAME.encode() not in data
        assert_unchanged(world, before)
    finally:
        desk.stop()


def _post(desk: Running, path: str, cookie: str, fields: dict[str, str]):
    headers = {
        "Cookie": cookie,
        "Origin": f"http://127.0.0.1:{desk.port}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return desk.request("POST", path, headers, urllib.parse.urlencode(fields).encode())


def _hidden(page: bytes, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"'.encode(), page)[1].decode()


def test_the_approver_page_refuses_in_approve_s_words_and_signs_only_what_it_showed(office):  # P12, four-eyes
    from test_office import propose_household

    propose_household(office["clk01"])
    other, manager = office["mgr02"], office["mgr01"]
    manager.git("fetch", "-q")
    running = Running(desk_env(manager), manager.clone)  # still on main: the proposal is shown where it waits
    try:
        _, page = running.request("GET", "/approve", {"Cookie": _session(running)})
        table = re.search(rb'<table id="elsewhere">.*?</table>', page, re.S)[0].decode()
        assert "origin/b03-new-owner" in table and "clk01" in table and 'name="head"' not in page.decode()
        assert "<td>0 of 1 approval; awaiting mgr01</td>" in table
    finally:
        running.stop()
    for desk in (other, manager):
        desk.git("fetch", "-q")
        desk.git("switch", "-q", "b03-new-owner")

    running = Running(desk_env(other), other.clone)
    try:
        _, page = running.request("GET", "/approve", {"Cookie": _session(running)})
        shown = re.search(rb'id="nothing">([^<]*)<', page)[1].decode()
        cli = other.cli("approve", "--yes", "--reason", "looks fine")
        assert shown == "nothing in origin/main..HEAD awaits mgr02; it awaits mgr01"
        assert cli.stderr.strip() == f"archivectl: error: {shown}"
    finally:
        running.stop()

    running = Running(desk_env(manager), manager.clone)
    try:
        before = manager.snapshot()
        cookie, csrf, page = _page_session(running, "/approve")
        shown = {"csrf": csrf, "head": _hidden(page, "head"), "commits": _hidden(page, "commits")}
        response, data = _post(running, "/approve", cookie, {**shown, "reason": ""})
        assert response.status == 422
        assert re.search(rb'id="refusal">([^<]*)<', data)[1] == b"--reason is required: say why this change is made"
        # the page signs only what it showed: another HEAD (the branch moved) is refused, nothing written
        response, data = _post(running, "/approve", cookie, {**shown, "head": "0" * 40, "reason": "checked"})
        assert response.status == 409
        assert b"what awaits you changed since the page was shown; nothing was written" in data
        assert manager.snapshot() == before
        response, data = _post(running, "/approve", cookie, {**shown, "reason": "checked"})
        assert response.status == 200 and b"approved 1 change(s) in commit" in data
    finally:
        running.stop()
    assert manager.verify()[0] == 0


def test_the_desk_opens_the_printed_address_in_the_default_browser(world, tmp_path):
    opened = tmp_path / "opened"
    fake = tmp_path / "browser.sh"
    fake.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
    fake.chmod(0o755)
    env = {**_world_env(world, "gm01"), "BROWSER": str(fake)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "archivectl", "--archive", str(world.root), "desk"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        printed = proc.stdout.readline().strip()
        _wait_for(opened.exists)
        assert opened.read_text() == printed
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def _wait_for(condition, tries: int = 300) -> None:
    import time

    for _ in range(tries):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_a_second_active_household_is_refused_in_add_s_words_and_the_form_kept(world, running, household):  # P1
    cookie, csrf, page = _page_session(running, "/add")
    assert b'id="on-main"' in page  # a proposal belongs on a branch: the clerk is told before typing
    fields = {
        "building": "B03",
        "floor": "12",
        "unit": "1203",
        "category": "handed-over",
        "occupancy": "rented",
        "reason": "new tenant",
        "approver": "mgr01",
    }
    before = world.snapshot()
    response, _ = _post(running, "/add", cookie, {"csrf": csrf, **fields})
    where = response.getheader("Location")
    assert response.status == 303 and where.startswith("/add?again=")
    response, page = running.request("GET", where, {"Cookie": cookie})
    cli = world.cli("gm01", "add", *[f"--{k}={v}" for k, v in fields.items()])
    refusal = re.search(rb'id="refusal">([^<]*)<', page)[1].decode()
    assert response.status == 409 and cli.exit_code == 1
    assert refusal.startswith(f"{household} is already the active household of B03/1203: move it out first (P1)")
    assert f"archivectl: error: {refusal}" == cli.stderr.strip()
    assert b'<option value="rented" selected>' in page and b'value="new tenant"' in page  # the form as it was
    assert_unchanged(world, before)
    again, page = running.request("GET", where, {"Cookie": cookie})
    assert again.status == 200 and b'id="refusal"' not in page  # taken once: a reload shows an empty form


def test_escapes_and_bidi_overrides_are_refused_in_add_s_words_and_shown_inert(world, running):  # P12
    cookie, csrf, _ = _page_session(running, "/add")
    fields = {
        "building": "B03",
        "floor": "12",
        "unit": "1209",
        "category": "handed-over",
        "occupancy": "vacant",
        "repairs.0.date": "2024-06-01",
        "repairs.0.summary": "roof\x1b[2J\u202eevil",
        "reason": "new owner",
        "approver": "mgr01",
    }
    before = world.snapshot()
    response, _ = _post(running, "/add", cookie, {"csrf": csrf, **fields})
    response, page = running.request("GET", response.getheader("Location"), {"Cookie": cookie})
    refusal = re.search(rb'id="refusal">([^<]*)<', page)[1].decode()
    assert response.status == 422  # bad input, as add's exit 2
    assert "repairs.0.summary: holds a control character (\\x1b)" in refusal
    assert "\x1b" not in refusal and "\u202e" not in refusal  # the refusal is inert (the clerk's field keeps
    assert_unchanged(world, before)  # what they typed, to correct it: only their own screen sees it)


def test_an_uploaded_scan_is_held_in_anonymous_memory_never_in_a_file_on_disk(tmp_path):  # P9
    pytest.importorskip("flask", reason="the desk's extra: pip install -e '.[desk]'")
    import io

    from archivectl.desk.app import IN_MEMORY_FILES, DeskState, create_app

    if not IN_MEMORY_FILES:
        pytest.skip("no memfd on this system: the page refuses scans there (tested by its message)")
    app = create_app(DeskState(root=tmp_path, identity=None))
    big = b"%PDF-1.4 scan\n" * 100_000  # 1.4 MB: werkzeug alone would spool it to a temporary file
    data = {"scan_0": (io.BytesIO(big), "id.pdf")}
    with app.test_request_context("/add", method="POST", data=data, content_type="multipart/form-data"):
        from flask import request

        stream = request.files["scan_0"].stream
        assert os.readlink(f"/proc/self/fd/{stream.fileno()}").startswith("/memfd:desk-scan")
        assert Path(f"/proc/self/fd/{stream.fileno()}").read_bytes() == big


def test_the_approver_page_tells_review_s_story_and_how_many_approvals_are_still_needed(world, household):  # P12
    settings = world.root / "archive.yaml"
    settings.write_text(settings.read_text() + "approvals:\n  edit: 2\n")
    world.ok("mgr01", "configure", "archive.yaml", "--reason", "two approvers for every edit", "--approver", "gm01")
    world.approve("gm01")
    world.git("switch", "-q", "-c", "b03-permit")
    world.ok(
        "clk01", "edit", household, "--set", "renovation.permit_no=ZX-2024-099", "--reason", "permit renewed",
        "--approver", "mgr01",
    )  # fmt: skip
    world.approve("mgr01")  # one of the two
    desk = Running(_world_env(world, "mgr02"), world.root)
    try:
        _, page = desk.request("GET", "/approve", {"Cookie": _session(desk)})
    finally:
        desk.stop()
    text = page.decode()
    threshold = re.search(r'id="threshold-1">([^<]*)<', text)[1]
    assert threshold == "1 of 2 approvals: mgr01; awaiting 1 more by a manager or gm"
    story = re.search(r'<ul class="story" id="story-1">(.*?)</ul>\s*</li>', text, re.S)[1]
    assert f"{household} (building B03, floor 12, unit 1203): changed" in story
    assert "renovation.permit_no: ZX-2024-031 → ZX-2024-099" in story  # review's words, clear values only
    assert OWNER_NAME not in text and OWNER_PHONE not in text  # nothing personal, masked or not
    assert "138****5678" not in story


@pytest.mark.parametrize("how", ["locale", "archive.yaml"])
def test_the_page_reads_chinese_under_a_chinese_locale_or_archive_language(world, household, how):
    env = {k: v for k, v in _world_env(world, "clk01").items() if k not in ("ARCHIVECTL_LANG", "LANGUAGE", "LC_ALL")}
    if how == "locale":
        env["LANG"] = "zh_CN.UTF-8"
    else:
        env["LANG"] = "C.UTF-8"
        text = (world.root / "archive.yaml").read_text()
        (world.root / "archive.yaml").write_text(text + "language: zh_CN\n")
        world.git("commit", "-q", "--no-verify", "--no-gpg-sign", "-am", "language")
    desk = Running(env, world.root)
    try:
        cookie = _session(desk)
        _, page = desk.request("GET", "/add", {"Cookie": cookie})
        _, found = desk.request("GET", "/find?building=B03", {"Cookie": cookie})
    finally:
        code, _, _ = desk.stop()
    assert code == 0
    text = page.decode()
    assert '<html lang="zh-CN">' in text
    assert "<h1>新增一户</h1>" in text and "文员：新增一户" in text  # the templates' strings, through the catalog
    assert re.search(r'<span class="name">楼层 <abbr title="[^"]+">\*</abbr></span>\s*<input name="floor"', text)
    assert '<span class="title">入伙日期</span>' in text  # the schema's own title for a field
    assert '<span class="name">角色' in text and '<option value="owner">' in text  # labels; the values stay
    assert "楼栋" in found.decode()


# ---------------------------------------------------------------------------------------------- edit


def _edit_form(desk: Running, cookie: str, number: str, where: str | None = None) -> tuple[bytes, dict[str, str]]:
    """The edit page (at where, else the household's own) and the values its inputs hold, by name."""
    response, page = desk.request("GET", where or f"/household/{number}/edit", {"Cookie": cookie})
    assert response.status in (200, 409, 422), page[:300]
    inputs = {}
    for tag in re.findall(rb"<input [^>]*>", page):
        name, value = re.search(rb'name="([^"]+)"', tag), re.search(rb'value="([^"]*)"', tag)
        if name and b" disabled" not in tag:
            inputs[name[1].decode()] = value[1].decode() if value else ""
    for name, attributes, options in re.findall(rb'<select name="([^"]+)"([^>]*)>(.*?)</select>', page, re.S):
        if b"disabled" not in attributes:  # as a browser sends the form: a disabled input not at all
            chosen = re.search(rb'<option value="([^"]*)" selected>', options)
            inputs[name.decode()] = chosen[1].decode() if chosen else ""
    return page, inputs


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_a_reader_edits_with_the_sealed_values_revealed_into_the_form_and_it_is_edit_s_commit(
    world, household
):  # P8 P12
    desk = Running(_world_env(world, "mgr01"), world.root)
    try:
        cookie = _session(desk)
        page, inputs = _edit_form(desk, cookie, household)
        text = page.decode()
        assert inputs["floor"] == "12" and inputs["renovation.permit_no"] == "ZX-2024-031"  # clear values, as they are
        assert 'name="building"' in text and "building" not in inputs  # shown, changed by no edit
        assert OWNER_NAME not in text and OWNER_PHONE not in text and 'placeholder="(sealed)"' in text
        assert "customers.0.phone" not in inputs  # sealed until revealed into the form
        registered = len(world.git("ls-files", "registers/access").split())

        csrf = _hidden(page, "csrf")
        response, _ = _post(desk, f"/household/{household}/edit/fill", cookie, {"csrf": csrf, "reason": "owner called"})
        assert response.status == 303
        page, inputs = _edit_form(desk, cookie, household, response.getheader("Location"))
        assert len(world.git("ls-files", "registers/access").split()) == registered + 1  # one register entry (P8)
        assert world.trailers()["Action"] == "reveal"
        assert _unescape(inputs["customers.0.name"]) == OWNER_NAME and inputs["customers.0.phone"] == OWNER_PHONE
        assert _unescape(inputs["customers.0.hobbies"]) == "围棋" and "customers.1.name" in inputs  # one more row
        assert b"revealed " in page and b"the look-up is registered (P8)" in page

        before = world.git("rev-parse", "HEAD").strip()
        answers = {
            **inputs,
            "customers.0.phone": "13811112222",
            "customers.0.hobbies": "围棋, 书法",
            "renovation.permit_no": "",  # emptied: removed
            "reason": "owner's new number",
            "approver": "gm01",
        }
        response, _ = _post(desk, f"/household/{household}/edit", cookie, answers)
        assert response.status == 303 and response.getheader("Location").startswith(f"/household/{household}?done=")
        _, shown = desk.request("GET", response.getheader("Location"), {"Cookie": cookie})
        commit = world.git("rev-parse", "HEAD").strip()
        assert f'id="notice">edited {household} in commit {commit[:12]}<'.encode() in shown  # edit's own words
    finally:
        desk.stop()
    assert world.git("rev-list", f"{before}..HEAD").split() == [commit]
    assert world.git("log", "-1", "--format=%s").strip() == f"edit {household}: customers, renovation"
    assert world.trailers() | {"Reason": "owner's new number"} == {
        **world.trailers(),
        "Action": "edit",
        "Acted-by": "mgr01",
        "Approved-by": "gm01",
        "Archive-No": household,
    }
    assert world.signature_status() == "G"
    record = json.loads(world.ok("gm01", "show", household, "--reveal", "--reason", "check", "--format", "json"))
    owner = record["customers"][0]
    assert owner["phone"] == "13811112222" and owner["hobbies"] == ["围棋", "书法"] and owner["name"] == OWNER_NAME
    assert owner["id_number"] == OWNER_ID and record["special_requests"] == "需要无障碍通道"  # the rest as it was
    assert "permit_no" not in record["renovation"] and record["renovation"]["started"] == "2024-03-15"
    assert OWNER_PHONE.encode() not in world.all_git_objects()  # sealed, as edit seals it (P9)


def test_edit_refuses_in_edit_s_words_and_writes_nothing(world, household):  # P7 P12
    desk = Running(_world_env(world, "clk01"), world.root)  # a clerk reads no one
    try:
        cookie = _session(desk)
        page, inputs = _edit_form(desk, cookie, household)
        assert b'id="fill-form"' not in page and b'id="sealed-hint"' in page and OWNER_NAME.encode() not in page
        before = world.snapshot()
        # the sealed values asked for all the same (past the page): reveal's refusal, in its words
        response, _ = _post(desk, f"/household/{household}/edit/fill", cookie, {"csrf": inputs["csrf"], "reason": "x"})
        response, page = desk.request("GET", response.getheader("Location"), {"Cookie": cookie})
        refusal = _unescape(re.search(rb'id="refusal">([^<]*)<', page)[1].decode())
        cli = world.cli("clk01", "show", household, "--reveal", "--reason", "x")
        assert cli.exit_code == 1 and response.status == 409 and cli.stderr.strip() == f"archivectl: error: {refusal}"
        assert OWNER_NAME.encode() not in page
        cases = [
            ({}, ["edit", household]),  # nothing changed
            ({"floor": "13"}, ["edit", household, "--set", "floor=13"]),  # no approver
            ({"customers.0.phone": "13811112222"}, ["edit", household, "--set", "customers.0.phone=13811112222"]),
            ({"building": "B05"}, ["edit", household, "--set", "building=B05"]),  # sent past a disabled input
        ]
        for changed, argv in cases:
            page, inputs = _edit_form(desk, cookie, household)
            answers = {**inputs, **changed, "reason": "new number"}
            approval = ["--reason", "new number"]
            if changed and "floor" not in changed:
                answers["approver"] = "mgr01"
                approval += ["--approver", "mgr01"]
            response, _ = _post(desk, f"/household/{household}/edit", cookie, answers)
            response, page = desk.request("GET", response.getheader("Location"), {"Cookie": cookie})
            refusal = _unescape(re.search(rb'id="refusal">([^<]*)<', page)[1].decode())
            cli = world.cli("clk01", *argv, *approval)
            assert cli.exit_code != 0 and cli.stderr.strip() == f"archivectl: error: {refusal}", changed
            assert response.status == (422 if cli.exit_code == 2 else 409)
            if changed:
                assert (
                    _unescape(re.search(rb'name="reason" id="reason" value="([^"]*)"', page)[1].decode())
                    == "new number"
                )
        assert_unchanged(world, before)

        # a form sent twice, or after the household changed, writes nothing
        page, inputs = _edit_form(desk, cookie, household)
        world.ok("clk01", "edit", household, "--set", "floor=14", "--reason", "moved", "--approver", "mgr01")
        before = world.snapshot()
        answers = {**inputs, "renovation.permit_no": "ZX-1", "reason": "permit", "approver": "mgr01"}
        response, _ = _post(desk, f"/household/{household}/edit", cookie, answers)
        _, page = desk.request("GET", response.getheader("Location"), {"Cookie": cookie})
        assert f"{household} changed since the form was shown; nothing was written".encode() in page
        response, _ = _post(desk, f"/household/{household}/edit", cookie, answers)
        _, page = desk.request("GET", response.getheader("Location"), {"Cookie": cookie})
        assert b"this form was sent already or is out of date; nothing was written" in page
        assert_unchanged(world, before)
    finally:
        desk.stop()


def test_a_manager_edits_a_household_in_the_browser(world, household, tmp_path):  # P8 P12
    need_browser()
    shots = Shots(tmp_path)
    desk = Running(_world_env(world, "mgr01"), world.root)
    driver = browser(tmp_path / "downloads")
    try:
        driver.get(desk.url)
        driver.get(f"http://127.0.0.1:{desk.port}/household/{household}")
        go(driver, ("id", "edit-link"), "submit-edit")
        assert driver.find_element("id", "f-floor").get_attribute("value") == "12"
        assert not driver.find_element("id", "f-building").is_enabled()  # changed by no edit
        assert driver.find_element("id", "f-customers.0.phone").get_attribute("placeholder") == "(sealed)"
        shots.take(driver, "edit-sealed")
        set_value(driver, "fill-reason", "owner called with a new number")
        go(driver, ("id", "fill-button"), "notice")
        assert driver.find_element("id", "f-customers.0.name").get_attribute("value") == OWNER_NAME
        phone = driver.find_element("id", "f-customers.0.phone")
        phone.clear()
        phone.send_keys("1381111222")  # one digit short: checked as typed
        driver.find_element("id", "f-floor").click()
        _wait(lambda: "is not a mobile" in text_of(driver, "p-customers.0.phone"))
        phone.send_keys("2")
        driver.find_element("id", "f-floor").click()
        _wait(lambda: text_of(driver, "p-customers.0.phone") == "")
        set_value(driver, "reason", "owner's new number")
        choose(driver, "approver", "gm01")
        shots.take(driver, "edit-revealed-and-changed")
        go(driver, ("id", "submit-edit"), "notice")
        commit = world.git("rev-parse", "HEAD").strip()
        assert text_of(driver, "notice") == f"edited {household} in commit {commit[:12]}"
        assert OWNER_NAME not in driver.page_source  # back to the masked household
        shots.take(driver, "edit-done")
    finally:
        driver.quit()
        desk.stop()
    assert clear_secrets_under(tmp_path / "chromium-profile") == []  # what the form showed is not kept (P9)
    assert world.trailers()["Action"] == "edit" and world.signature_status() == "G"
    record = json.loads(world.ok("gm01", "show", household, "--reveal", "--reason", "check", "--format", "json"))
    assert record["customers"][0]["phone"] == "13811112222"


def test_the_edit_form_sends_only_what_was_changed_as_edit_s_set_and_unset(world):  # P12
    pytest.importorskip("flask", reason="the desk's extra: pip install -e '.[desk]'")
    from archivectl.archive import Archive
    from archivectl.desk import form

    record = {
        "building": "B03",
        "floor": 12,
        "customers": [
            {"role": "owner", "name": "甲", "hobbies": ["围棋", "书法", "茶"]},
            {"role": "tenant", "name": "乙"},
        ],
        "vehicles": [{"parking_space": "P2-045"}],  # its plate sealed: not on a page that shows no sealed value
        "repairs": [{"date": "2024-06-01", "summary": "roof", "settled": True}],
    }
    groups = form.groups(Archive(world.root).household_schema, form.rows_for(record))
    shown = form.values_of(record, groups)
    assert shown["customers.0.hobbies"] == "围棋, 书法, 茶" and shown["repairs.0.settled"] == "true"
    every = {f.path: "" for g in groups for f in g.fields}  # a browser sends every input it does not disable
    answers = {**every, **shown}
    del answers["vehicles.0.plate"]  # sealed, not shown: disabled
    assert form.edit_changes(answers, groups, shown) == ([], [])  # nothing changed, nothing sent
    answers.update(
        {
            "floor": "13",
            "customers.0.hobbies": "围棋，书法",  # a Chinese comma, one item fewer
            "customers.1.role": "",  # every value of an entry emptied: the entry goes
            "customers.1.name": "",
            "customers.2.role": "resident",  # the empty row filled: a new entry
            "customers.2.name": "丙",
            "repairs.0.settled": "",
            "vehicles.0.parking_space": "",  # emptied, but its sealed plate is not on the page: the entry stays
        }
    )
    answers.pop("building")  # a disabled input is not sent: it changes nothing
    sets, unsets = form.edit_changes(answers, groups, shown)
    assert sets == [
        "floor=13",
        "customers.0.hobbies.0=围棋",
        "customers.0.hobbies.1=书法",
        "customers.2.role=resident",
        "customers.2.name=丙",
    ]
    assert unsets == ["customers.1", "customers.0.hobbies.2", "repairs.0.settled", "vehicles.0.parking_space"]


def test_thresholds_are_told_from_the_judge_s_pending_rows():  # P12, archive.yaml approvals:
    pytest.importorskip("flask", reason="the desk's extra: pip install -e '.[desk]'")
    from archivectl.desk.app import threshold

    def row(approvals: str, awaiting: str, signed: str, more_from: str) -> dict:
        return {"approvals": approvals, "awaiting": awaiting, "signed": signed, "more_from": more_from}

    assert threshold(row("0/1", "mgr01", "", "")) == "0 of 1 approval; awaiting mgr01"
    assert threshold(row("0/2", "mgr02", "", "manager, gm")) == (
        "0 of 2 approvals; awaiting mgr02 and 1 more by a manager or gm"
    )
    assert threshold(row("1/2", "", "mgr02", "manager, gm")) == (
        "1 of 2 approvals: mgr02; awaiting 1 more by a manager or gm"
    )
    assert threshold(row("1/2", "", "mgr\u202e02", "manager, gm")).startswith("1 of 2 approvals: mgr\\u202e02;")
