"""End to end in a real browser: ``convsep serve`` started as a process, the page opened in
headless Chromium (the system's chromium and chromedriver, driven by Selenium; nothing is
downloaded), a generated song uploaded, the stems played, muted and soloed, and the stems
the page links to downloaded and checked to add up to the song.

Set CONVSEP_SCREENSHOT=path.png to keep a screenshot of the finished page.
"""
from __future__ import annotations

import io
import os
import shutil
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf

from convsep.models.registry import load_demo

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.webdriver.common.by import By  # noqa: E402

from tests.serve.test_app import free_port, start_server, stop_server  # noqa: E402

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no headless browser: install Debian's chromium and chromium-driver (scripts/setup.sh does as root)")

SECONDS = 6.0


@pytest.fixture()
def browser():
    os.environ.setdefault("SE_OFFLINE", "true")          # Selenium Manager must not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1100,860",
                "--hide-scrollbars", "--mute-audio"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(condition, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_page_separates_plays_and_downloads(browser, tmp_path):
    _, references = load_demo()                  # a song of the synthetic corpus
    audio = references.sum(0)[:, :int(SECONDS * 44100)].numpy().T
    path = tmp_path / "generated song.wav"
    sf.write(path, audio, 44100, subtype="FLOAT")

    port = free_port()
    proc = start_server(port)
    base = f"http://127.0.0.1:{port}"
    try:
        browser.get(base + "/")
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#model option"), 30, "the model list")
        browser.find_element(By.ID, "file-input").send_keys(str(path))
        card = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".job[data-ready=true]"),
                        what="the stems in the page")[0]
        assert card.find_element(By.CSS_SELECTOR, ".name").text == "generated song.wav"
        assert card.find_element(By.CSS_SELECTOR, ".error").text == ""
        rows = card.find_elements(By.CSS_SELECTOR, ".stem")
        assert [r.get_attribute("data-stem") for r in rows] == ["vocals", "drums", "bass", "other"]

        card.find_element(By.CSS_SELECTOR, ".play").click()
        wait_for(lambda: float(card.get_attribute("data-position") or 0) > 0.5, 60, "playback to advance")
        assert card.get_attribute("data-playing") == "true"
        card.find_element(By.CSS_SELECTOR, "[data-stem=vocals] .solo").click()
        card.find_element(By.CSS_SELECTOR, "[data-stem=drums] .solo").click()
        card.find_element(By.CSS_SELECTOR, "[data-stem=drums] .mute").click()
        silent = {r.get_attribute("data-stem") for r in card.find_elements(By.CSS_SELECTOR, ".stem.silent")}
        assert silent == {"drums", "bass", "other"}
        card.find_element(By.CSS_SELECTOR, ".play").click()               # pause
        assert card.get_attribute("data-playing") == "false"
        if os.environ.get("CONVSEP_SCREENSHOT"):
            browser.execute_script("window.scrollTo(0, 0)")
            browser.save_screenshot(os.environ["CONVSEP_SCREENSHOT"])

        links = [a.get_attribute("href") for a in card.find_elements(By.CSS_SELECTOR, ".stem .download")]
        assert len(links) == 4 and all(link.startswith(base) for link in links)
        stems = [sf.read(io.BytesIO(urllib.request.urlopen(link, timeout=30).read()), dtype="float32")[0]
                 for link in links]
        assert all(s.shape == audio.shape for s in stems)
        assert np.abs(sum(stems) - audio).max() < 4 * 2 ** -15 + 1e-4
        zipped = urllib.request.urlopen(card.find_element(By.CSS_SELECTOR, ".zip").get_attribute("href"), timeout=30)
        assert zipped.headers["content-type"] == "application/zip"

        browser.refresh()                                                   # jobs survive a reload
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".job .open"), 60, "the job after reload")[0].click()
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".job[data-ready=true]"), 60, "the job after reload")

        bad = tmp_path / "broken.mp3"
        bad.write_bytes(b"not really an mp3" * 50)
        browser.find_element(By.ID, "file-input").send_keys(str(bad))
        error = wait_for(lambda: [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".job .error") if e.text],
                         60, "the error of a bad file")
        assert "broken.mp3" in error[0]
    finally:
        stop_server(proc)
