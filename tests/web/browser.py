"""Headless Chromium for dagq-web's browser tests and benchmark: Debian's
chromium and chromium-driver driven by Selenium (installed into tests/.venv
by tests/web/setup.sh), started with a fresh profile and no network
features of its own."""
import os
import shutil
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")


class Browser:
    def __init__(self, width=1400, height=900):
        self.profile = tempfile.mkdtemp(prefix="dagq-chromium.")
        o = webdriver.ChromeOptions()
        o.binary_location = CHROMIUM
        for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--user-data-dir=" + self.profile,
                  "--window-size=%d,%d" % (width, height)):
            o.add_argument(a)
        self.d = webdriver.Chrome(service=Service(executable_path=DRIVER), options=o)
        self.d.set_page_load_timeout(30)

    def close(self):
        try:
            self.d.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def wait(self, what, fn, timeout=30):
        """Polls fn() until it returns something true; returns it."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                v = fn()
                if v:
                    return v
            except Exception as e:  # the page is changing under us
                last = e
            time.sleep(0.2)
        raise AssertionError("waited %ss for %s (last error: %s)" % (timeout, what, last))

    def css(self, sel):
        return self.d.find_elements(By.CSS_SELECTOR, sel)

    def one(self, sel, timeout=30):
        return self.wait(sel, lambda: (self.css(sel) or [None])[0], timeout)

    def login(self, url, token):
        self.d.get(url)
        self.d.execute_script("sessionStorage.clear()")
        self.d.get("about:blank")
        self.d.get(url + "#/")
        self.one("#token").send_keys(token)
        self.one("#login-btn").click()
        self.one("#dags tbody tr")

    def shot(self, path):
        self.d.save_screenshot(path)
