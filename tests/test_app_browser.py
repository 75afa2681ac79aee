"""`stylemix app` end to end in a real headless browser (Debian's chromium + chromedriver, which .ci/run
installs): the page opens ready to play, a weight slider moved with the keyboard changes the preview image,
all-zero weights show a message in the page, and the page loads nothing from another site.
Skipped, with the reason, where selenium, chromium or its driver is missing."""
from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from stylemix.inference.api import Stylizer  # noqa: E402
from stylemix.inference.app.server import AppConfig, create_app  # noqa: E402
from stylemix.inference.app.serving import listen  # noqa: E402

pytestmark = pytest.mark.slow  # a real browser against a live server

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT = 120  # s: the first preview loads the photo and the styles on a busy 2-core machine
# The preview's pixels, read back in the page (same-origin blob: URL, so the canvas is readable).
PIXELS = """
const img = document.getElementById('preview');
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const ctx = c.getContext('2d');
ctx.drawImage(img, 0, 0);
return Array.from(ctx.getImageData(0, 0, c.width, c.height).data);
"""


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    app = create_app(Stylizer.from_pretrained(tiny_model_dir, dtype="fp32"),
                     config=AppConfig(upload_dir=tmp_path_factory.mktemp("uploads"), preview_size=64, max_size=96))
    srv, sock, url = listen(app, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the server did not start"
    yield url
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()
    app.state.blender.close()


@pytest.fixture(scope="module")
def browser():
    binary = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip(f"no headless browser: needs chromium ({'found' if binary else 'missing'}) and chromedriver "
                    f"({'found' if driver_path else 'missing'}); .ci/run installs Debian's chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    except WebDriverException as e:
        pytest.skip(f"chromium did not start: {e.msg}")
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def _preview_seq(driver) -> int:
    img = driver.find_element(By.ID, "preview")
    loaded = driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
    return int(img.get_attribute("data-seq") or 0) if loaded else 0


def _wait_for_preview_after(driver, seq: int) -> int:
    WebDriverWait(driver, TIMEOUT).until(lambda d: _preview_seq(d) > seq and not d.execute_script(
        "return document.getElementById('preview').classList.contains('busy')"))
    return _preview_seq(driver)


def test_moving_a_weight_slider_changes_the_preview(server, browser):
    browser.get(server)
    WebDriverWait(browser, TIMEOUT).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    # ready to play: a bundled photo and two built-in styles preselected, their preview shown
    assert browser.find_element(By.ID, "photo").get_attribute("value") == "bundled:astronaut"
    sliders = browser.find_elements(By.CSS_SELECTOR, ".style-row input[type=range].weight")
    assert [s.get_attribute("value") for s in sliders] == ["60", "40"]
    first = _wait_for_preview_after(browser, 0)
    before = np.array(browser.execute_script(PIXELS), dtype=np.int16)
    assert before.size == 64 * 64 * 4

    sliders[0].send_keys(Keys.HOME)  # a person's keyboard on the focused slider: weight 0.6 -> 0
    assert sliders[0].get_attribute("value") == "0"
    assert browser.find_elements(By.CSS_SELECTOR, ".style-row .weight-value")[0].text == "0.00"
    second = _wait_for_preview_after(browser, first)
    after = np.array(browser.execute_script(PIXELS), dtype=np.int16)
    assert after.shape == before.shape and np.abs(after - before).mean() > 1.0, "the preview did not change"
    assert not browser.find_element(By.ID, "message").is_displayed()

    sliders[1].send_keys(Keys.HOME)  # both weights 0: a message in the page, the preview kept
    WebDriverWait(browser, TIMEOUT).until(lambda d: d.find_element(By.ID, "message").is_displayed())
    assert "all style weights are zero" in browser.find_element(By.ID, "message").text
    assert _preview_seq(browser) == second
    sliders[1].send_keys(Keys.END)  # and the server keeps serving
    _wait_for_preview_after(browser, second)
    WebDriverWait(browser, TIMEOUT).until(lambda d: not d.find_element(By.ID, "message").is_displayed())

    origin = server.rstrip("/")
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(u.startswith((origin, "blob:", "data:")) for u in loaded), loaded
