"""The web pages in a real browser: headless Chromium (Debian's chromium and chromium-driver) through Selenium.

Every response the server sends is recorded by an ASGI middleware around the app (status, headers, body), and
every response the browser received is read from Chrome's performance log (URL, status, headers); the study's
blinding is checked on both. Skipped, with one reason, where no browser is installed."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image
from serving import live_server, train_tiny_runs

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
MISSING = [what for what, found in (("chromium", BROWSER), ("chromedriver (chromium-driver)", DRIVER),
                                     ("selenium", importlib.util.find_spec("selenium")),
                                     ("starlette", importlib.util.find_spec("starlette"))) if not found]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"no headless browser to drive: {', '.join(MISSING)} not "
                                "installed (apt-get install chromium chromium-driver; pip install 'unpaired[dev]')")

if not MISSING:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait



class Recorder:
    """ASGI middleware keeping every response the app sends: [path, status, headers, body]."""

    def __init__(self, app) -> None:
        self.app = app
        self.responses: list[dict] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = {"path": scope["path"], "status": None, "headers": [], "body": b""}
        self.responses.append(record)

        async def recording_send(message):
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
                record["headers"] = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"]]
            elif message["type"] == "http.response.body":
                record["body"] += message.get("body", b"")
            await send(message)

        await self.app(scope, receive, recording_send)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1200,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def click_and_wait(driver, by: str, what: str) -> None:
    """Click a submit button and wait until the answer replaced the page and finished loading.

    The old page is told apart by a mark set on its window, not by an element handle: Chromium answers a handle
    into a replaced page sometimes as stale and sometimes with an inspector error, and a script run mid-navigation
    can fail too, so every WebDriver error while waiting only means "not yet"."""
    driver.execute_script("window.unpairedOldPage = true")
    driver.find_element(by, what).click()
    WebDriverWait(driver, 60, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return !window.unpairedOldPage && document.readyState === 'complete'"))


class NetworkLog:
    """The responses the browser received (from Chrome's performance log) since this log was made."""

    def __init__(self, driver) -> None:
        self.driver = driver
        self.responses: list[dict] = []
        driver.get_log("performance")  # forget what came before

    def update(self) -> list[dict]:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            # a redirect's response comes with the request it leads to; every other one on its own
            response = (message["params"].get("redirectResponse") if message["method"] == "Network.requestWillBeSent"
                        else message["params"]["response"] if message["method"] == "Network.responseReceived"
                        else None)
            if response:
                self.responses.append({"url": response["url"], "status": response["status"],
                                       "headers": response["headers"]})
        return self.responses

    def status(self, path_end: str) -> int:
        """The status of the last response received whose URL ends with ``path_end``."""
        return [r for r in self.update() if r["url"].endswith(path_end)][-1]["status"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return train_tiny_runs(tmp_path_factory.mktemp("browser"))


def test_translate_in_the_browser_and_refusals(browser, runs, tmp_path):
    from unpaired.serve.translate_app import TranslateApp, load_models

    picture = tmp_path / "photo.png"
    Image.new("RGB", (40, 32), (30, 120, 200)).save(picture)
    app = TranslateApp(load_models([runs["unit"], runs["munit"]], device="cpu"))
    network = NetworkLog(browser)
    with live_server(app.app) as url:
        browser.get(f"{url}/")
        browser.find_element(By.NAME, "image").send_keys(str(picture))
        Select(browser.find_element(By.NAME, "model")).select_by_value("1")
        Select(browser.find_element(By.NAME, "style")).select_by_value("random")
        browser.find_element(By.NAME, "seed").send_keys("5")
        click_and_wait(browser, By.CSS_SELECTOR, "button[type=submit]")
        images = browser.find_elements(By.CSS_SELECTOR, "#result img")
        assert [i.get_attribute("alt") for i in images] == ["input", "translation a2b"]
        assert all(i.get_property("naturalWidth") == 20 for i in images)  # decoded by the browser: 16 px side
        download = browser.find_element(By.CSS_SELECTOR, "#result a[download]")
        assert download.get_attribute("href").startswith("data:image/png;base64,")
        assert "style seed 5" in browser.page_source and network.status("/translate") == 200

        def refused(path: Path) -> str:
            browser.get(f"{url}/")
            browser.find_element(By.NAME, "image").send_keys(str(path))
            click_and_wait(browser, By.CSS_SELECTOR, "button[type=submit]")
            return browser.find_element(By.CSS_SELECTOR, ".error").text

        text_file = tmp_path / "notes.png"  # an image's name, not an image's content
        text_file.write_text("these are my notes, not a picture\n")
        assert "Refused: the image: not an image this server reads" in refused(text_file)
        assert network.status("/translate") == 415
        bomb = tmp_path / "bomb.png"
        Image.new("L", (6000, 6000)).save(bomb)
        assert "36,000,000 pixels is over the limit of 25,000,000 pixels" in refused(bomb)
        assert network.status("/translate") == 413

        # a path typed into the form instead of a file: refused, and never opened
        opened = []
        sys.addaudithook(lambda event, args: opened.append(args[0]) if event == "open" and args
                         and "photo.png" in str(args[0]) else None)
        browser.get(f"{url}/")
        field = browser.find_element(By.NAME, "image")
        browser.execute_script("arguments[0].type = 'text'; arguments[0].value = arguments[1];", field, str(picture))
        click_and_wait(browser, By.CSS_SELECTOR, "button[type=submit]")
        assert "no file was uploaded" in browser.find_element(By.CSS_SELECTOR, ".error").text
        assert opened == []


def test_blinded_study_in_the_browser(browser, runs, tmp_path):
    from unpaired.serve.study import Study, VoteStore, create_study
    from unpaired.serve.study_app import StudyApp

    created = create_study([runs["unit"], runs["cyclegan"], runs["munit"]], runs["unit"].parent / "data" / "testA",
                           "Which looks more like domain B?", tmp_path / "study", seed=0, raters=2, device="cpu",
                           progress=False)
    study: Study = created.study
    recorder = Recorder(StudyApp(study).app)
    rater = created.raters[0]
    network = NetworkLog(browser)
    with live_server(recorder) as url:
        browser.get(f"{url}/r/{rater}")
        assert "Pair 1 of 9" in browser.page_source
        images = browser.find_elements(By.CSS_SELECTOR, "img.shown")
        assert [i.get_attribute("alt") for i in images] == ["input", "A", "B"]
        assert all(i.get_property("naturalWidth") > 0 for i in images)
        first = browser.current_window_handle
        browser.switch_to.new_window("tab")  # the same rater in a second tab, on the same pair
        browser.get(f"{url}/r/{rater}")
        second = browser.current_window_handle
        browser.switch_to.window(first)
        click_and_wait(browser, By.XPATH, "//button[text()='A']")
        assert "Pair 2 of 9" in browser.page_source
        browser.switch_to.window(second)
        click_and_wait(browser, By.XPATH, "//button[text()='B']")
        assert "already voted on this pair; your first vote stands" in browser.page_source
        assert network.status("/vote") == 409
        browser.close()
        browser.switch_to.window(first)
        for k in range(2, 10):  # the other eight pairs
            assert f"Pair {k} of 9" in browser.page_source
            click_and_wait(browser, By.XPATH, f"//button[text()='{'AB'[k % 2]}']")
        assert "You have judged all 9 pairs" in browser.page_source

        browser.get(f"{url}/results")
        browser.find_element(By.NAME, "key").send_keys("not-the-key")
        click_and_wait(browser, By.CSS_SELECTOR, "button[type=submit]")
        assert "Wrong key" in browser.page_source and network.status("/results") == 403
        seen = list(network.update())
        blinded = list(recorder.responses)

        browser.find_element(By.NAME, "key").send_keys(created.key)
        click_and_wait(browser, By.CSS_SELECTOR, "button[type=submit]")
        assert network.status("/results") == 200
        assert all(run["label"] in browser.page_source for run in study.runs)  # the key shows who is who

    assert len(VoteStore(study.folder / "votes.sqlite").votes()) == 9

    # nothing the browser got before the key names a run: not in a page, a header, an image or its URL
    secrets = {run["method"] for run in study.runs} | {Path(run["path"]).name for run in study.runs}
    secrets |= {run["path"] for run in study.runs} | {run["label"] for run in study.runs} | {"left_run", "step"}
    secrets |= {Path(pair[side]["image"]).stem for pair in study.pairs for side in ("input", "left", "right")}
    assert len(seen) >= 30 and {r["status"] for r in seen} >= {200, 303, 409, 403}
    served_paths = {r["path"] for r in blinded}
    for response in seen:  # what the browser received, from its own log
        assert response["url"].split(url, 1)[1].split("?")[0] in served_paths  # the recorder saw it too
        text = (response["url"] + json.dumps(response["headers"])).lower()
        assert not [s for s in secrets if s.lower() in text], response["url"]
    assert sum(dict(r["headers"]).get("content-type") == "image/png" for r in blinded) >= 27  # 9 pairs x 3
    for response in blinded:  # what the server sent, bodies included
        text = (response["path"] + json.dumps(response["headers"]) + response["body"].decode("latin-1")).lower()
        assert not [s for s in secrets if s.lower() in text], response["path"]
