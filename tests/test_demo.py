"""The Gradio demo (`examples/demo/app.py`) in a real headless browser: Debian's chromium driven by Selenium.

The app runs in its own process on a tiny model saved here; the test uploads a generated clip and reads the top
emotion and the timeline plot from the page, then uploads a broken file and reads the message shown for it.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from media import make_video
from saved_model import save_tiny_model

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "examples" / "demo" / "app.py"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 240  # the app's first start imports gradio and torch; on 2 busy cores that can take a minute


if CHROMIUM is None or CHROMEDRIVER is None:  # `make test` installs both; a bare `pytest` without them cannot run this
    pytest.skip("Debian chromium and chromium-driver are missing (`make test` installs them)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(model: Path, tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """Run the demo on `model` in its own process and wait until it serves its page."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO),
           "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}  # fmt: skip
    log = open(tmp_path / "app.log", "w")
    process = subprocess.Popen(
        [sys.executable, str(APP), "--model", str(model), "--port", str(port)], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the demo exited: {(tmp_path / 'app.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(1)
    process.kill()
    raise AssertionError(f"the demo did not start in {WAIT_S} s: {(tmp_path / 'app.log').read_text()[-3000:]}")


def browser(width: int = 1280, height: int = 1100):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))


def upload(driver, url: str, video: Path):
    """Open the page and upload `video` into the video component (a new video runs the analysis)."""
    driver.get(url)
    wait = WebDriverWait(driver, WAIT_S)
    field = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#video input[type=file]"))
    field.send_keys(str(video))
    return wait


def status_text(driver) -> str:
    return driver.find_element(By.ID, "status").text.strip()


def top_emotion(driver) -> str:
    """The heading of the Label component: its top class."""
    return driver.find_element(By.CSS_SELECTOR, "#emotions h2").text.strip()


def timeline_image_size(driver) -> tuple[int, int]:
    """Natural size of the loaded timeline image, (0, 0) while none is shown."""
    images = driver.find_elements(By.CSS_SELECTOR, "#timeline img")
    if not images:
        return 0, 0
    return tuple(driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight];", images[0]))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("demo")
    model = save_tiny_model(tmp_path / "model")
    # where `make demo` leaves its held-out clips: the page offers them as demo clips
    clips = model / "data" / "videos" / "test" / "Fear"
    clips.mkdir(parents=True)
    make_video(clips / "test_00000.mp4", num_frames=40, fps=20)
    process, url = start_app(model, tmp_path)
    driver = browser()
    yield driver, url, model, tmp_path
    driver.quit()
    process.terminate()
    process.wait(timeout=30)


def test_upload_shows_the_top_emotion_and_the_timeline_plot(served):
    import json

    driver, url, model, tmp_path = served
    clip = make_video(tmp_path / "upload.mp4", num_frames=48, fps=24, tone_start_s=1.0)
    wait = upload(driver, url, clip)
    wait.until(lambda d: timeline_image_size(d)[0] > 0 and "polarity" in status_text(d))
    labels = set(json.loads((model / "config.json").read_text())["id2label"].values())
    assert top_emotion(driver) in labels
    assert top_emotion(driver) in status_text(driver)
    width, height = timeline_image_size(driver)
    assert width >= 600 and height >= 400
    screenshot = tmp_path / "page.png"
    assert driver.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
    assert "Traceback" not in driver.page_source


def test_picking_a_demo_clip_analyses_it(served):
    driver, url, _, _ = served
    driver.get(url)
    wait = WebDriverWait(driver, WAIT_S)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "button.gallery-item"))[0].click()
    wait.until(lambda d: timeline_image_size(d)[0] > 0 and "polarity" in status_text(d))
    assert top_emotion(driver) in status_text(driver)


def test_an_unreadable_file_gets_a_clear_message_in_the_page(served):
    driver, url, _, tmp_path = served
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    wait = upload(driver, url, broken)
    wait.until(lambda d: "Could not read" in status_text(d) or "rror" in d.find_element(By.TAG_NAME, "body").text)
    message = status_text(driver)
    assert "Could not read" in message and "broken.mp4" in message, message
    assert "Traceback" not in driver.page_source
    assert timeline_image_size(driver) == (0, 0)


def test_a_missing_model_is_explained_with_the_command_that_makes_it(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("avcanet_demo_app", APP)
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    app.DEFAULT_MODEL = tmp_path / "outputs" / "avcanet-demo"  # as on a fresh clone, before `make demo`
    assert "make demo" in app.missing_model_message(str(app.DEFAULT_MODEL))
    missing = tmp_path / "no-model-here"
    demo = app.build_demo(str(missing))
    shown = " ".join(str(getattr(block, "value", "")) for block in demo.blocks.values())
    assert f"No AV-CANet model at `{missing}`" in shown and "--model" in shown
    assert "No AV-CANet model" in capsys.readouterr().err
    assert app.missing_model_message("org/avcanet-emotions") is None  # a Hub id is left to pipeline()
