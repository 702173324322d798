"""The admin dashboard in a real browser: headless Chromium (Debian ``chromium`` + ``chromium-driver``) via Selenium.

Starts the Django live server, seeds synthetic data through the ORM, logs in
through the admin login form, checks that the SVG charts rendered with data
and saves a full-page screenshot to ``bench/results/dashboard.png`` (and to
pytest's tmp dir).  Nothing is downloaded: the driver and the browser are the
system ones, so Selenium Manager is never used.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.dashboard_seed import SEEDED_CHARTS, Seeded, seed_dashboard, seed_rescoring_jobs
from tests.factories import DEFAULT_PASSWORD, UserFactory

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = Path(__file__).resolve().parent.parent / "bench" / "results" / "dashboard.png"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)",
    ),
]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (requirements-dev.txt)")
    monkeypatch.setenv("SE_OFFLINE", "true")  # belt and braces: Selenium Manager must never download
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-extensions", "--disable-default-apps", "--mute-audio",
                "--hide-scrollbars", "--force-device-scale-factor=1", "--window-size=1440,1000",
                f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(arg)
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _login(driver: Any, base: str, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/admin/dashboard/")
    assert "/admin/login/" in driver.current_url and "next=/admin/dashboard/" in driver.current_url
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()


def _full_page_screenshot(driver: Any, *paths: Path, width: int = 1440) -> None:
    """The whole page (not just the viewport) through the DevTools protocol."""
    import base64

    height = int(driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)"))
    height = min(max(height, 600), 8000)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        data = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    png = base64.b64decode(data["data"])
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)


def _seed_rescoring_jobs(seeded: Seeded) -> None:
    """Two jobs for the progress bars: one finished (to the active model), one running to a newer one."""
    from emotion.models import ModelVersion

    version = seeded.version
    newer = ModelVersion.objects.create(
        name="ferplus-next", labels=version.labels, artifact_path=version.artifact_path, card=version.card
    )
    seed_rescoring_jobs(finished_to=version, running_to=newer)


def test_dashboard_in_headless_chromium(live_server, browser, transactional_db, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    _seed_rescoring_jobs(seed_dashboard())
    UserFactory(username="staffer", is_staff=True, is_superuser=True)
    base = live_server.url

    # Staff logs in through the admin login form and lands on the dashboard.
    _login(browser, base, "staffer", DEFAULT_PASSWORD)
    WebDriverWait(browser, 30).until(EC.presence_of_element_located((By.ID, "panel-analyses")))
    assert browser.current_url == f"{base}/admin/dashboard/"
    assert "FeedMood dashboard" in browser.find_element(By.TAG_NAME, "h1").text

    # The stylesheet was served (offline, from our static files) and applied.
    assert browser.execute_script("return getComputedStyle(document.querySelector('.fm-grid')).display") == "grid"

    # Every seeded chart rendered with data and a visible size.
    bars = browser.execute_script("return document.querySelectorAll('svg rect.bar').length")
    assert bars > 50
    assert browser.execute_script("return document.querySelectorAll('svg .no-data').length") == 0
    for chart_id in SEEDED_CHARTS:
        info = browser.execute_script(
            "const s = document.getElementById(arguments[0]); if (!s) return null;"
            "const r = s.getBoundingClientRect();"
            "return {cls: s.getAttribute('class'), w: r.width, h: r.height,"
            " marks: s.querySelectorAll('rect.bar, path.slice, circle.point').length};",
            chart_id,
        )
        assert info is not None, chart_id
        assert "no-data" not in info["cls"], chart_id
        assert info["w"] > 150 and info["h"] > 40, (chart_id, info)
        assert info["marks"] > 0, (chart_id, info)
    assert browser.execute_script("return document.querySelectorAll('#chart-emotions rect.suppressed').length") == 1
    assert browser.execute_script("return document.querySelectorAll('#chart-latency-processing path.line').length") >= 3
    assert browser.execute_script("return document.querySelectorAll('#panel-rescoring svg.chart-progress').length") >= 1
    text = browser.find_element(By.ID, "content-main").text
    assert "suppressed (< 5 users)" in text and "eager mode: no queue" in text

    _full_page_screenshot(browser, tmp_path / "dashboard.png", SCREENSHOT)

    # A narrow window reflows the cards into one column (responsive widths).
    browser.set_window_size(760, 1000)
    widths = browser.execute_script(
        "return [...document.querySelectorAll('.fm-card')].map(c => Math.round(c.getBoundingClientRect().width))"
    )
    assert len(set(widths)) == 1
    _full_page_screenshot(browser, tmp_path / "dashboard-narrow.png", width=760)

    # The admin's dark theme (prefers-color-scheme): text follows the theme's colours.
    browser.set_window_size(1440, 1000)
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    )
    browser.refresh()
    WebDriverWait(browser, 30).until(EC.presence_of_element_located((By.ID, "panel-analyses")))
    fill = browser.execute_script("return getComputedStyle(document.querySelector('#chart-policies .row-label')).fill")
    assert fill not in ("rgb(74, 85, 97)", "")  # not the light-theme default baked into the SVG
    _full_page_screenshot(browser, tmp_path / "dashboard-dark.png")


def test_non_staff_users_are_sent_to_the_login_page(live_server, browser, transactional_db) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    base = live_server.url
    UserFactory(username="regular")

    # Anonymous: redirected to the admin login page.
    browser.get(f"{base}/admin/dashboard/")
    assert browser.current_url == f"{base}/admin/login/?next=/admin/dashboard/"

    # A non-staff account cannot log in to the admin.
    _login(browser, base, "regular", DEFAULT_PASSWORD)
    note = WebDriverWait(browser, 30).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".errornote")))
    assert "/admin/login/" in browser.current_url
    assert "staff account" in note.text
    assert not browser.find_elements(By.ID, "panel-analyses")

    # A non-staff user with a valid session is redirected to the login page too.
    client = Client()
    client.force_login(UserFactory(username="regular2"))
    browser.delete_all_cookies()
    browser.add_cookie({"name": "sessionid", "value": client.cookies["sessionid"].value, "path": "/"})
    browser.get(f"{base}/admin/dashboard/")
    assert browser.current_url == f"{base}/admin/login/?next=/admin/dashboard/"
    assert not browser.find_elements(By.ID, "panel-analyses")
