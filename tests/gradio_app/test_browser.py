"""The web app in a real browser (Debian's headless Chromium through Selenium), as a visitor uses
it: a missing style is explained in the page, then two images uploaded, a preset picked, Run
pressed, and the finished picture appears at the size asked for. Saves a screenshot
(to $IMPASTO_SCREENSHOTS too, when set).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from impasto.presets import list_presets, load_preset
from tests.conftest import CAT, STARRY, require_program
from tests.gradio_app.conftest import MAX_STEPS

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)


@pytest.fixture
def browser(tmp_path):
    chromium = require_program("chromium")
    chromedriver = require_program("chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The few things a visitor does on the impasto page."""

    def __init__(self, driver, url: str):
        self.driver = driver
        driver.get(url)
        self.wait(30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#impasto-run"))

    def wait(self, seconds: float) -> WebDriverWait:
        return WebDriverWait(self.driver, seconds, poll_frequency=0.2)

    def find(self, css: str):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def shown(self, elem_id: str) -> bool:
        """Whether the component is on the page and visible (Gradio leaves hidden ones out)."""
        found = self.driver.find_elements(By.CSS_SELECTOR, f"#{elem_id}")
        return bool(found) and found[0].is_displayed()

    def paint(self, n: int) -> None:
        """A brush stroke across the middle of style n's region (its tab opened first)."""
        tab = f"#impasto-region-tab-{n}-button"
        self.wait(30).until(lambda d: d.find_elements(By.CSS_SELECTOR, tab))  # rendered on opening
        self.find(tab).click()
        editor = f"#impasto-region-{n}"
        self.wait(30).until(
            lambda d: [
                c for c in d.find_elements(By.CSS_SELECTOR, f"{editor} canvas") if c.is_displayed()
            ]
        )
        canvas = [
            c
            for c in self.driver.find_elements(By.CSS_SELECTOR, f"{editor} canvas")
            if c.is_displayed()
        ][0]
        chain = ActionChains(self.driver).move_to_element(canvas).click_and_hold()
        chain.move_by_offset(25, 0).move_by_offset(25, 4).release().perform()

    def upload(self, elem_id: str, path: Path) -> None:
        field = f"#{elem_id} input[type=file]"
        self.wait(30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, field)
        )  # e.g. in an accordion
        self.find(field).send_keys(str(path))
        self.wait(30).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#{elem_id} img"))

    def pick_preset(self, name: str) -> None:
        box = self.find("#impasto-preset input")
        box.click()
        option = f"#impasto-preset li[role=option][aria-label='{name}']"
        self.wait(10).until(lambda d: d.find_elements(By.CSS_SELECTOR, option))
        self.find(option).click()
        self.wait(10).until(lambda d: box.get_attribute("value") == name)

    def set_number(self, elem_id: str, value: int) -> None:
        box = self.find(f"#{elem_id} input[type=number]")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(str(value), Keys.TAB)
        self.wait(10).until(lambda d: box.get_attribute("value") == str(value))

    def run(self) -> None:
        self.find("#impasto-run").click()

    def shows(self, message: str, seconds: float = 30) -> bool:
        """Whether this text appears anywhere on the page within the time (a refusal of Run's
        check is shown at the photo, not in a toast)."""
        try:
            self.wait(seconds).until(
                lambda d: message in (d.find_element(By.TAG_NAME, "body").text or "")
            )
        except TimeoutException:
            return False
        return True

    def finished_picture_size(self, seconds: float = 240) -> tuple[int, int]:
        """Wait for the download button (shown only with the finished picture) and return the
        natural size of the picture on the page."""
        try:
            self.wait(seconds).until(lambda d: self.find("#impasto-download").is_displayed())
        except TimeoutException:
            pytest.fail(f"no result; the page said: {self.find('#impasto-status').text!r}")
        img = self.find("#impasto-result img")
        self.wait(30).until(
            lambda d: (
                d.execute_script("return arguments[0].complete", img)
                and img.get_attribute("src").endswith(".png")
            )
        )
        return tuple(
            self.driver.execute_script(
                "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img
            )
        )


def save_screenshot(driver, tmp_path: Path) -> Path:
    shot = tmp_path / "gradio-app.png"
    assert driver.save_screenshot(str(shot)), "the browser could not take a screenshot"
    if os.environ.get("IMPASTO_SCREENSHOTS"):
        folder = Path(os.environ["IMPASTO_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, folder / shot.name)
    return shot


def test_a_visitor_paints_the_cat_in_the_browser(served, browser, tmp_path):
    page = Page(browser, served.url)
    page.upload("impasto-content", CAT)
    page.run()
    assert page.shows("Add at least one style image")

    page.upload("impasto-style-1", STARRY)
    other = next((p for p in list_presets() if p.name != "classic" and not p.error), None)
    if other is not None:  # picking a preset shows what it is and resets size and steps to its own
        page.pick_preset(other.name)
        recipe = load_preset(other.name)
        page.wait(10).until(lambda d: other.description in page.find("#impasto-preset-info").text)
        steps = page.find("#impasto-steps input[type=number]")
        page.wait(10).until(
            lambda d: steps.get_attribute("value") == str(min(recipe.total_steps, MAX_STEPS))
        )
    page.pick_preset("classic")
    page.set_number("impasto-size", 96)
    page.set_number("impasto-steps", 5)
    page.run()
    assert page.finished_picture_size() == (96, 64)
    assert page.find("#impasto-status").text.startswith("Done: 96×64")
    shot = save_screenshot(browser, tmp_path)
    assert shot.stat().st_size > 10_000


def test_two_tabs_at_once_both_get_their_pictures(served, browser):
    tabs = []
    for size in (96, 80):
        if tabs:
            browser.switch_to.new_window("tab")
        page = Page(browser, served.url)
        page.upload("impasto-content", CAT)
        page.upload("impasto-style-1", STARRY)
        page.set_number("impasto-size", size)
        page.set_number("impasto-steps", 20)
        tabs.append((browser.current_window_handle, page, size))
    for handle, page, _ in tabs:
        browser.switch_to.window(handle)
        page.run()
    for handle, page, size in tabs:
        browser.switch_to.window(handle)
        assert page.finished_picture_size() == (size, size * 2 // 3)


def test_clicking_the_example_fills_in_the_photo_and_the_style(served, browser):
    page = Page(browser, served.url)
    assert not browser.find_elements(By.CSS_SELECTOR, "#impasto-content img")
    page.find("table tbody tr").click()  # the examples table's only row
    for elem_id in ("impasto-content", "impasto-style-1"):
        page.wait(30).until(lambda d, e=elem_id: d.find_elements(By.CSS_SELECTOR, f"#{e} img"))
    sources = [
        page.find(f"#{e} img").get_attribute("src") for e in ("impasto-content", "impasto-style-1")
    ]
    assert sources[0].endswith("content.jpg") and sources[1].endswith("style.png")


TIME_TEXT = re.compile(r"\b\d+:\d\d\b|\bleft\b|\b\d+ ?(s|sec|seconds?|min|minutes?|h|hours?)\b")


def box(driver, element) -> dict:
    return driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", element)


def test_a_first_time_visitor_sees_a_clear_page(served, browser, tmp_path):
    """Run and Cancel the same size, Cancel enabled only while a job runs, no time said before
    Run, the blend weights only with two styles, the preset's sample captioned and not an upload
    box, and the picture filling its box."""
    page = Page(browser, served.url)
    run, cancel = page.find("#impasto-run"), page.find("#impasto-cancel")
    run_box, cancel_box = box(browser, run), box(browser, cancel)
    assert (run_box["width"], run_box["height"]) == (cancel_box["width"], cancel_box["height"])
    assert run.is_enabled() and not cancel.is_enabled()
    body = page.find("body").text
    assert not TIME_TEXT.search(body), TIME_TEXT.search(body)
    sample = page.find("#impasto-preset-sample")
    parts = sample.find_elements(By.CSS_SELECTOR, "input[type=file], label")
    assert not [e for e in parts if e.is_displayed()]  # no upload box, no label
    assert "Sample: this preset" in page.find("#impasto-sample-caption").text

    page.upload("impasto-content", CAT)
    page.upload("impasto-style-1", STARRY)
    assert not page.shown("impasto-weight-1")  # one style: nothing to blend
    browser.find_element(By.XPATH, "//*[normalize-space(text())='Blend more styles']").click()
    page.upload("impasto-style-2", STARRY)
    page.wait(10).until(lambda d: page.shown("impasto-weight-1"))
    assert page.shown("impasto-weight-2")

    page.set_number("impasto-size", 64)
    page.set_number("impasto-steps", 60)
    page.run()
    page.wait(60).until(lambda d: cancel.is_enabled())  # while the job runs
    page.finished_picture_size()
    page.wait(10).until(lambda d: not cancel.is_enabled())  # and off again after it
    img = page.find("#impasto-result img")
    frame = box(browser, page.find("#impasto-result"))
    shown = browser.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]", img
    )
    # A 64×43 picture, drawn to fill its box (contained: one side fills it).
    assert shown[0] >= 0.9 * frame["width"] or shown[1] >= 0.75 * frame["height"], (shown, frame)
    save_screenshot(browser, tmp_path)


def test_a_visitor_paints_where_each_style_goes(served, browser):
    """A brush stroke over the photo becomes the style's mask in the job the page builds; a
    region painted for a style that has no image is explained in the page, and the same job
    with that style's image added runs (the engine honours masks elsewhere: this tests the
    page's wiring)."""
    page = Page(browser, served.url)
    page.upload("impasto-content", CAT)
    page.upload("impasto-style-1", STARRY)
    page.find("#impasto-regions").click()  # the accordion
    page.paint(1)
    page.paint(2)
    page.set_number("impasto-size", 64)
    page.set_number("impasto-steps", 2)
    before = served.engine.calls
    page.run()
    assert page.shows("Mask 2 is for style 2, which has no image")
    assert served.engine.calls == before

    browser.find_element(By.XPATH, "//*[normalize-space(text())='Blend more styles']").click()
    page.upload("impasto-style-2", STARRY)
    page.run()
    assert page.finished_picture_size() == (64, 43)
    masks = served.engine.last.masks
    assert [m is not None for m in masks] == [True, True]
    for mask in masks:
        low, high = mask.image.getextrema()
        assert (low, high) == (0, 255)  # a stroke: painted here, not there
        assert mask.image.size == Image.open(CAT).size  # the photo's shape
