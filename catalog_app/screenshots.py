"""Screenshots of the app's pages in headless Chromium: `python -m catalog_app.screenshots CATALOG OUT_DIR [PHOTO]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from catalog_app.browser import chromium, running_app, screenshot, wait_for_text

PAGES = [("", "assets", "browse"), ("asset", "Nearest neighbours", "asset"), ("map", "selected", "map"),
         ("mix", "Principal components", "mix"), ("tagging", "Labels", "tagging"), ("coverage", "Region 1", "coverage")]


def take(catalog: Path, out: Path, photo: Path | None = None) -> list[Path]:
    from selenium.webdriver.common.by import By

    shots = []
    with running_app(catalog) as url, chromium() as driver:
        for path, text, name in PAGES:
            driver.get(f"{url}/{path}")
            wait_for_text(driver, text)
            shots.append(screenshot(driver, out / f"app_{name}.png"))
        driver.get(f"{url}/search")
        wait_for_text(driver, "nearest to")
        shots.append(screenshot(driver, out / "app_search_example.png"))
        if photo is not None:
            driver.find_element(By.XPATH, "//*[text()='By image']").click()
            wait_for_text(driver, "A photo of the object")
            driver.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(photo.resolve()))
            wait_for_text(driver, "fitted render", timeout=180)
            shots.append(screenshot(driver, out / "app_search_image.png"))
        driver.get(f"{url}/scenes")
        wait_for_text(driver, "Generate scenes")
        driver.find_element(By.XPATH, "//button[.//*[text()='Generate scenes']]").click()
        wait_for_text(driver, "scenes in", timeout=180)
        shots.append(screenshot(driver, out / "app_scenes.png"))
    return shots


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("catalog", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("photo", type=Path, nargs="?")
    args = ap.parse_args()
    for p in take(args.catalog, args.out, args.photo):
        print(p)


if __name__ == "__main__":
    main()
