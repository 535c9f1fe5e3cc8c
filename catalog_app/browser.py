"""Driving the real app in headless Chromium (Debian's chromium + chromedriver, via selenium).

Used by the end-to-end test and by `python -m catalog_app.screenshots`, which takes the
README's screenshots the same way.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def browser_available() -> bool:
    return bool(CHROMIUM and CHROMEDRIVER)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(catalog: str | os.PathLike, timeout: float = 90.0) -> Iterator[str]:
    """Start `assets2vec app CATALOG` on a free localhost port; yields its base URL."""
    import tempfile

    port = _free_port()
    # The server's output goes to a file: a pipe nobody reads fills up and blocks the server.
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-m", "assets2vec.cli.main", "app", str(catalog), "--headless", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass  # not listening yet: poll again until the deadline
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError(f"the app did not start: {log.read()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def chromium(width: int = 1400, height: int = 1000):
    """A headless Chromium driven by Debian's chromedriver (nothing is downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not browser_available():
        raise RuntimeError("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    opts.page_load_strategy = "eager"  # Streamlit keeps a websocket open; do not wait for "load"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver, text: str, timeout: float = 120.0) -> None:
    """Wait until `text` is visible on the page and Streamlit has finished running the script."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        body = d.find_element(By.TAG_NAME, "body").text
        running = d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        # While a script runs, the status widget offers "Stop" (and says "Running...").
        return text in body and not any(w in r.text for r in running for w in ("Running", "Stop"))

    # Streamlit re-renders while we look: a vanished element just means "look again".
    WebDriverWait(driver, timeout, poll_frequency=0.5, ignored_exceptions=(StaleElementReferenceException,)).until(ready)


def screenshot(driver, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    time.sleep(1.0)  # let images finish painting
    driver.save_screenshot(str(path))
    return path


def wait_for_images(driver, n: int, timeout: float = 30.0) -> int:
    """Wait until at least n images on the page have loaded (decoded with a width); returns how many."""
    from selenium.webdriver.support.ui import WebDriverWait

    count = "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length"
    WebDriverWait(driver, timeout, poll_frequency=0.5).until(lambda d: d.execute_script(count) >= n)
    return int(driver.execute_script(count))
