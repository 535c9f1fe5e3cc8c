"""End to end in a real headless Chromium: start the app, search by example and by an uploaded photo.

Needs Debian's chromium and chromium-driver (`make test` installs them when it runs as root);
set ASSETS2VEC_SKIP_BROWSER=1 to skip it on a machine without them.
"""

from __future__ import annotations

import os

import pytest
from PIL import Image

from assets2vec.catalog.build import build_catalog
from assets2vec.configs import preset
from assets2vec.train import fit
from catalog_app.browser import browser_available, chromium, running_app, screenshot, wait_for_images, wait_for_text
from render_core.dataset import RenderedDataset

pytestmark = pytest.mark.skipif(os.environ.get("ASSETS2VEC_SKIP_BROWSER") == "1", reason="ASSETS2VEC_SKIP_BROWSER=1")


def test_stopping_the_app_command_stops_the_server(small_catalog):
    import urllib.request

    with running_app(small_catalog) as url:  # `assets2vec app`, terminated on exit
        assert urllib.request.urlopen(url + "/_stcore/health", timeout=5).read() == b"ok"
    with pytest.raises(OSError):  # nothing left listening (the server was once orphaned here)
        urllib.request.urlopen(url + "/_stcore/health", timeout=5)


def test_search_by_example_and_by_upload_in_chromium(small_dataset, tmp_path):
    from selenium.webdriver.common.by import By

    assert browser_available(), "chromium and chromedriver are needed: apt-get install chromium chromium-driver"
    cfg = preset("tiny")
    cfg.steps = 40
    fit(small_dataset, tmp_path / "run", cfg, progress=False, log=lambda m: None)
    build_catalog(tmp_path / "run", tmp_path / "cat", progress=False, log=lambda m: None)
    ds = RenderedDataset(small_dataset)
    photo = tmp_path / "photo.png"
    Image.fromarray(ds.load(ds.asset_ids[1]).rgb[2]).save(photo)
    shots = tmp_path / "shots"
    with running_app(tmp_path / "cat") as url, chromium() as driver:
        driver.get(url + "/")
        wait_for_text(driver, "8 of 8 assets")
        screenshot(driver, shots / "browse.png")
        driver.get(url + "/search")
        wait_for_text(driver, "nearest to")
        assert wait_for_images(driver, 6) >= 6  # thumbnails are served, not just referenced
        body = driver.find_element(By.TAG_NAME, "body").text
        assert f"6 nearest to {ds.asset_ids[0]} in joint space" in body and "1. " in body
        screenshot(driver, shots / "search_example.png")
        driver.find_element(By.XPATH, "//*[text()='By image']").click()
        wait_for_text(driver, "A photo of one object")
        driver.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(photo))
        wait_for_text(driver, "fitted render over the photo", timeout=180)
        wait_for_images(driver, 8)  # photo + overlay + 6 results
        assert "Silhouette IoU" in driver.find_element(By.TAG_NAME, "body").text
        screenshot(driver, shots / "search_image.png")
    assert all((shots / f).stat().st_size > 10_000 for f in ("browse.png", "search_example.png", "search_image.png"))
