"""Make the docs' screenshot of the web app: python -m tests.gradio_app.make_screenshot [OUT]

Not a test (pytest does not collect it): it serves the app, paints the cat in the style of the
Starry Night at a size worth looking at, and saves the page as docs/img/web-app.png, at 2/3 of
its size and in 256 colours so that the repository stays small.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from impasto.gradio_app.app import build_app, close, launch
from tests.conftest import CAT, ROOT, STARRY
from tests.gradio_app.conftest import free_port
from tests.gradio_app.test_browser import CHROMIUM_FLAGS, Page

OUT = ROOT / "docs" / "img" / "web-app.png"


def main(out: Path = OUT, size: int = 384, steps: int = 150) -> Path:
    demo = build_app(max_size=1024)
    launch(demo, server_name="127.0.0.1", server_port=free_port())
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1300")
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='impasto-shot-')}")
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        page = Page(driver, demo.local_url)
        page.upload("impasto-content", CAT)
        page.upload("impasto-style-1", STARRY)
        page.pick_preset("classic")
        page.set_number("impasto-size", size)
        page.set_number("impasto-steps", steps)
        page.run()
        page.finished_picture_size(seconds=900)
        driver.execute_script("window.scrollTo(0, 0)")
        out.parent.mkdir(parents=True, exist_ok=True)
        shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
        small = shot.resize((shot.width * 2 // 3, shot.height * 2 // 3), Image.LANCZOS)
        small.quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)
    finally:
        driver.quit()
        close(demo)
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
