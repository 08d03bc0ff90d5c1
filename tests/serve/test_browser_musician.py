"""The page for musicians and DJs, in headless Chromium: downloads in a chosen format, the mix
exported from the mixer's settings, NI Stems; keyboard use, labels, a 390 px phone, mixer
settings kept across a reload without fetching the stems again, undo for remove, messages of
refused files, and a server that stops."""
from __future__ import annotations

import io
import json
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from convsep.models.modelfile import read_model_file  # noqa: E402
from tests.serve.test_app import free_port, song, start_public_server, start_server, stop_server  # noqa: E402
from tests.serve.test_browser import CHROMIUM, DRIVER, wait_for  # noqa: E402

pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None, reason="no headless browser")


@pytest.fixture()
def browser(tmp_path):
    import os

    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1100,860", "--mute-audio"):
        options.add_argument(arg)
    (tmp_path / "downloads").mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads"),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def css(root, selector):
    return root.find_element(By.CSS_SELECTOR, selector)


def test_musician_page(browser, tmp_path):
    audio = song(4.0, seed=5)
    path = tmp_path / "practice.wav"
    sf.write(path, audio, 44100, subtype="FLOAT")
    (tmp_path / "notes.txt").write_text("not a song")
    (tmp_path / "empty.mp3").write_bytes(b"")
    port = free_port()
    proc = start_server(port)
    base = f"http://127.0.0.1:{port}"
    try:
        browser.get(base + "/")
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#model option"), 30, "the model list")
        # keyboard: the drop zone and "choose files" open the file chooser
        browser.execute_script("window.chosen = 0; HTMLInputElement.prototype.click = function () { window.chosen++; };")
        css(browser, "#drop").send_keys(Keys.ENTER)
        css(browser, "#choose").send_keys(Keys.SPACE)
        assert browser.execute_script("return window.chosen") == 2
        browser.execute_script("delete HTMLInputElement.prototype.click")
        # refused files: one line each, the name once, kept across drops
        css(browser, "#file-input").send_keys(f"{tmp_path / 'notes.txt'}\n{tmp_path / 'empty.mp3'}")
        items = wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#drop-message li")) == 2
                         and browser.find_elements(By.CSS_SELECTOR, "#drop-message li"), 30, "two messages")
        texts = [i.text for i in items]
        assert texts[0].startswith("notes.txt: not an audio file") and texts[0].count("notes.txt") == 1, texts
        assert texts[1] == "empty.mp3: the file is empty", texts

        css(browser, "#file-input").send_keys(str(path))
        card = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".job[data-ready=true]"), 180, "the stems")[0]
        assert len(browser.find_elements(By.CSS_SELECTOR, "#drop-message li")) == 2     # not overwritten
        assert css(card, "[data-stem=vocals] .mute").get_attribute("aria-label") == "mute vocals"
        assert css(card, "[data-stem=bass] .volume").get_attribute("aria-label") == "volume of bass"
        # Space plays and pauses when no control has focus
        browser.execute_script("document.activeElement.blur()")
        ActionChains(browser).send_keys(Keys.SPACE).perform()
        wait_for(lambda: card.get_attribute("data-playing") == "true", 20, "Space to play")
        ActionChains(browser).send_keys(Keys.SPACE).perform()
        wait_for(lambda: card.get_attribute("data-playing") == "false", 20, "Space to pause")

        # the mixer's settings, a format, and the mix exported from them
        css(card, "[data-stem=drums] .mute").click()
        browser.execute_script("const v = arguments[0]; v.value = '0.5'; v.dispatchEvent(new Event('input'))",
                               css(card, "[data-stem=bass] .volume"))
        browser.execute_script("const s = arguments[0]; s.value = 'flac'; s.dispatchEvent(new Event('change'))",
                               css(card, ".format"))
        assert css(card, ".zip").get_attribute("href").endswith("?format=flac")
        links = [a.get_attribute("href") for a in card.find_elements(By.CSS_SELECTOR, ".stem .download")]
        assert all(link.endswith("format=flac") for link in links)
        stems = {a.find_element(By.XPATH, "..").get_attribute("data-stem"):
                 sf.read(io.BytesIO(urllib.request.urlopen(a.get_attribute("href"), timeout=30).read()),
                         dtype="int16", always_2d=True)[0].astype(float)
                 for a in card.find_elements(By.CSS_SELECTOR, ".stem .download")}
        css(card, ".mix").click()
        target = tmp_path / "downloads" / "practice - mix.flac"
        wait_for(lambda: target.exists() and target.stat().st_size > 0, 60, "the mix download")
        time.sleep(0.5)
        mix = sf.read(str(target), dtype="int16", always_2d=True)[0]
        expected = stems["vocals"] + 0.5 * stems["bass"] + stems["other"]
        assert mix.shape == audio.shape and np.abs(mix - expected).max() <= 1
        assert css(card, ".stem-mp4").get_attribute("href").endswith("/stem.mp4")

        # a reload keeps the settings and does not fetch the stems until the player opens
        browser.refresh()
        card = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".job"), 30, "the job after reload")[0]
        opener = wait_for(lambda: card.find_elements(By.CSS_SELECTOR, ".open"), 30, "the open button")[0]
        fetched = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('/stems/'))")
        assert fetched == []
        opener.click()
        wait_for(lambda: card.get_attribute("data-ready") == "true", 60, "the player")
        assert css(card, "[data-stem=drums] .mute").get_attribute("aria-pressed") == "true"
        assert css(card, "[data-stem=bass] .volume").get_attribute("value") == "0.5"
        assert css(card, ".format").get_attribute("value") == "flac"

        # a phone's width: nothing sticks out, the waveforms are wide
        browser.set_window_size(390, 844)
        time.sleep(0.3)
        width = browser.execute_script("return document.documentElement.clientWidth")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        assert css(card, "[data-stem=vocals] .wave").size["width"] > 250
        buttons = card.find_elements(By.CSS_SELECTOR, "button, a.button, select")
        assert all(b.rect["x"] + b.rect["width"] <= width + 1 for b in buttons if b.is_displayed())
        browser.set_window_size(1100, 860)

        # remove can be undone; without undo the song goes after a few seconds
        job_id = card.get_attribute("data-id")
        css(card, ".delete").click()
        assert css(card, ".removed").is_displayed()
        css(card, ".undo").click()
        time.sleep(7)
        assert urllib.request.urlopen(f"{base}/api/jobs/{job_id}", timeout=10).status == 200
        css(card, ".delete").click()
        wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, f".job[data-id='{job_id}']"), 20, "removal")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/api/jobs/{job_id}", timeout=10)
        violations = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
        assert violations == [], violations                  # the page lives within its own CSP
    finally:
        stop_server(proc)
    # the server stopped: the page says so, and an upload says what to do
    banner = wait_for(lambda: [e for e in browser.find_elements(By.ID, "server-status") if e.is_displayed()],
                      20, "the server's absence")[0]
    assert "convsep serve" in banner.text
    css(browser, "#file-input").send_keys(str(path))
    wait_for(lambda: any("not answering" in li.text for li in browser.find_elements(By.CSS_SELECTOR, "#drop-message li")),
             20, "the upload's message")
    assert "Failed to fetch" not in css(browser, "#drop-message").text


def test_page_with_the_token_beyond_localhost(browser):
    port = free_port()
    proc, _, token = start_public_server(port)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(base), 60, "the server")
        browser.get(f"{base}/")
        assert "token" in browser.find_element(By.TAG_NAME, "body").text        # 401 without it
        browser.get(f"{base}/?token={token}")
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#model option"), 30, "the model list")
        assert "token" not in browser.current_url                          # kept in a cookie instead
        assert browser.execute_script("return document.cookie") == ""      # which scripts cannot read
    finally:
        stop_server(proc)


def _answers(base: str) -> bool:
    try:
        urllib.request.urlopen(f"{base}/api/info", timeout=5)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def test_model_menu_and_spectrogram(browser, tmp_path):
    path = tmp_path / "song.wav"
    sf.write(path, song(3.0, seed=7), 44100, subtype="FLOAT")
    port = free_port()
    proc = start_server(port)
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        options = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#model option"), 30, "the model list")
        labels = {o.get_attribute("value"): o.text for o in options}
        card = read_model_file("default")["metadata"]
        quality, speed = card["scores"]["real_validation_mean"], card["speed"]["seconds_per_minute_of_stereo"]
        assert labels["default"] == f"default \u2014 {quality:.2f} dB, {speed:.2f} s per minute", labels
        assert labels["synthetic"].startswith("synthetic \u2014 ") and "s per minute" in labels["synthetic"]
        assert "realtime" not in labels
        assert css(browser, "#model").get_attribute("value") == "default"
        browser.execute_script("const s = arguments[0]; s.value = 'synthetic'; s.dispatchEvent(new Event('change'))",
                               css(browser, "#model"))
        css(browser, "#file-input").send_keys(str(path))
        card = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".job[data-ready=true]"), 180, "the stems")[0]
        job = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/jobs", timeout=30).read())["jobs"][0]
        assert job["model"] == "synthetic"
        pixels = "const c = arguments[0], d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;" \
                 "const seen = new Set(); let opaque = 0;" \
                 "for (let i = 0; i < d.length; i += 4) { if (d[i + 3]) opaque++; seen.add(d[i] << 16 | d[i + 1] << 8 | d[i + 2]); }" \
                 "return [opaque / (d.length / 4), seen.size];"
        view = css(card, ".view")
        assert view.text == "Spectrogram" and card.get_attribute("data-view") == "waveform"
        view.click()
        wait_for(lambda: card.get_attribute("data-view") == "spectrogram", 10, "the spectrogram view")
        assert view.get_attribute("aria-pressed") == "true" and view.text == "Waveform"
        for stem in ("vocals", "drums", "bass", "other"):
            opaque, colours = browser.execute_script(pixels, css(card, f"[data-stem={stem}] .wave"))
            assert opaque == 1.0 and colours > 20, (stem, opaque, colours)      # a full image, not one colour
        view.click()
        wait_for(lambda: card.get_attribute("data-view") == "waveform", 10, "the waveform view")
        opaque, _ = browser.execute_script(pixels, css(card, "[data-stem=vocals] .wave"))
        assert opaque < 1.0          # the waveform again, with its transparent background
        # the view is kept across a reload, like the mixer's settings
        view.click()
        browser.refresh()
        card = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".job"), 30, "the card")[0]
        wait_for(lambda: card.find_elements(By.CSS_SELECTOR, ".open"), 30, "the open button")[0].click()
        wait_for(lambda: card.get_attribute("data-ready") == "true", 60, "the player")
        assert card.get_attribute("data-view") == "spectrogram"
    finally:
        stop_server(proc)
