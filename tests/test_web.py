"""The inpainting page in headless Chromium, against the local server and
through serving.web's proxy, as a user drives it: open a photo, paint with the
mouse, press Inpaint, read the result.

Chromium and its WebDriver come from the distribution's packages
(scripts/ensure_browser.sh, which scripts/test.sh runs); without them the
tests are skipped, except in CI, where they fail.
"""

import base64
import io
import json
import os
import shutil
import threading
import urllib.error
import urllib.request

import conftest
import numpy as np
from PIL import Image
import pytest
import samples

from serving import processes
from serving import web

webdriver = pytest.importorskip("selenium.webdriver")
# pylint: disable=g-import-not-at-top,wrong-import-position
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

MAX_PIXELS = conftest.EXPORT_MAX_PIXELS
HEIGHT, WIDTH = 96, 160
BRUSH = 16


def _browser_paths():
  found = shutil.which("chromium"), shutil.which("chromedriver")
  if None in found:
    message = ("chromium / chromedriver missing: run scripts/ensure_browser.sh "
               "(as root) or apt-get install chromium chromium-driver")
    if os.environ.get("CI"):
      pytest.fail(message)
    pytest.skip(message)
  return found


@pytest.fixture(scope="module")
def browser():
  chromium, chromedriver = _browser_paths()
  options = webdriver.ChromeOptions()
  options.binary_location = chromium
  for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                   "--disable-dev-shm-usage", "--no-proxy-server",
                   "--window-size=1200,900"):
    options.add_argument(argument)
  driver = webdriver.Chrome(
      options=options, service=webdriver.ChromeService(chromedriver))
  yield driver
  driver.quit()


@pytest.fixture(scope="module")
def server_port(varied_export, tmp_path_factory):
  """The local server on a free port, serving the shared export."""
  log_path = tmp_path_factory.mktemp("web") / "server.log"
  with open(log_path, "w") as log, \
      processes.subprocess_server(varied_export, log) as port:
    yield port


@pytest.fixture(scope="module")
def proxy_port(server_port):
  """serving.web in front of the local server, standing in for TF Serving."""
  proxy = web.ProxyServer(("127.0.0.1", 0),
                          f"http://127.0.0.1:{server_port}")
  thread = threading.Thread(target=proxy.serve_forever, daemon=True)
  thread.start()
  yield proxy.server_address[1]
  proxy.shutdown()
  proxy.server_close()


@pytest.fixture(params=["local_server", "proxy"])
def page_url(request):
  port = request.getfixturevalue(
      "server_port" if request.param == "local_server" else "proxy_port")
  return f"http://127.0.0.1:{port}/"


def _photo(tmp_path, height=HEIGHT, width=WIDTH, name="photo.png"):
  """Random noise: no generator paints it back, so a sent hole shows."""
  image = samples.noise(height, width)
  path = tmp_path / name
  Image.fromarray(image).save(path)
  return image, str(path)


def _decode_data_url(url):
  assert url.startswith("data:image/png;base64,"), url[:40]
  data = base64.b64decode(url.split(",", 1)[1])
  return np.asarray(Image.open(io.BytesIO(data)))


def _status(driver):
  return driver.find_element(By.ID, "status").text


def _open(driver, url, path):
  driver.get(url)
  WebDriverWait(driver, 60).until(
      lambda d: "AVAILABLE" in d.find_element(By.ID, "server").text)
  driver.find_element(By.ID, "file").send_keys(path)
  WebDriverWait(driver, 30).until(lambda d: "width" in _status(d))


def _set_brush(driver, size):
  driver.execute_script(
      "const b = document.getElementById('brush'); b.value = arguments[0];"
      "b.dispatchEvent(new Event('input'));", size)


def _stroke(driver, points):
  """Drags the mouse through `points` (x, y in image pixels) on the mask."""
  mask = driver.find_element(By.ID, "mask")
  # Selenium's offsets are from the element's centre; the canvas is shown at
  # its own size here (no zoom), so image pixels are CSS pixels.
  (x, y), rest = points[0], points[1:]
  actions = ActionChains(driver).move_to_element_with_offset(
      mask, x - WIDTH // 2, y - HEIGHT // 2).click_and_hold()
  for (x1, y1), (x0, y0) in zip(rest, points):
    actions = actions.move_by_offset(x1 - x0, y1 - y0)
  actions.release().perform()


def _painted(driver):
  """bool [H, W]: the pixels the page's brush layer covers at least half."""
  url = driver.execute_script(
      "return document.getElementById('mask').toDataURL('image/png');")
  return _decode_data_url(url)[..., 3] >= 128


def test_paint_inpaint_and_download(browser, page_url, tmp_path):
  image, path = _photo(tmp_path)
  _open(browser, page_url, path)
  _set_brush(browser, BRUSH)
  row = HEIGHT // 2
  _stroke(browser, [(30, row), (70, row), (110, row), (130, row - 20)])
  hole = _painted(browser)
  # The stroke went where the mouse did, with the slider's width.
  assert hole[row, 30:111].all()
  assert not hole[row + BRUSH, :].any() and not hole[:, 150:].any()

  browser.find_element(By.ID, "inpaint").click()
  WebDriverWait(browser, 180).until(lambda d: any(
      word in _status(d) for word in ("Done", "refused", "failed")))
  assert "Done" in _status(browser), _status(browser)
  assert browser.find_element(By.ID, "result").is_displayed()
  result_url = browser.find_element(By.ID, "result").get_attribute("src")
  result = _decode_data_url(result_url)
  assert result.shape == image.shape
  np.testing.assert_array_equal(result[~hole], image[~hole])
  # The hole was sent: the generator's fill is nothing like the noise.
  assert np.abs(result[hole].astype(int) - image[hole]).mean() > 20

  download = browser.find_element(By.ID, "download")
  assert download.is_displayed()
  assert download.get_attribute("href") == result_url
  assert download.get_attribute("download") == "photo-inpainted.png"


def test_brush_eraser_undo_clear(browser, server_port, tmp_path):
  _, path = _photo(tmp_path)
  _open(browser, f"http://127.0.0.1:{server_port}/", path)
  _set_brush(browser, BRUSH)
  _stroke(browser, [(20, 48), (140, 48)])
  painted = _painted(browser).sum()
  browser.find_element(By.ID, "eraser").click()
  _stroke(browser, [(60, 48), (100, 48)])
  erased = _painted(browser)
  assert 0 < erased.sum() < painted and not erased[48, 65:96].any()
  browser.find_element(By.ID, "undo").click()
  assert _painted(browser).sum() == painted
  browser.find_element(By.ID, "clear").click()
  assert _painted(browser).sum() == 0
  browser.find_element(By.ID, "undo").click()
  assert _painted(browser).sum() == painted


def test_photo_above_max_pixels_shows_the_servers_message(
    browser, server_port, tmp_path):
  _, path = _photo(tmp_path, 150, 120, "large.png")
  _open(browser, f"http://127.0.0.1:{server_port}/", path)
  _stroke(browser, [(60, 48), (100, 48)])
  browser.find_element(By.ID, "inpaint").click()
  WebDriverWait(browser, 60).until(lambda d: "refused" in _status(d))
  status = browser.find_element(By.ID, "status")
  assert "error" in status.get_attribute("class")
  assert "150x120 = 18000 pixels, above the limit of 16384" in status.text
  assert not browser.find_element(By.ID, "result").is_displayed()


def test_proxy_forwards_errors_and_reports_an_unreachable_server(
    proxy_port):
  def get(port, path):
    try:
      with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                  timeout=30) as response:
        return response.status, response.read()
    except urllib.error.HTTPError as error:
      return error.code, error.read()

  status, body = get(proxy_port, "/v1/models/other")
  assert status == 404 and b"Servable not found" in body
  status, body = get(proxy_port, "/static/inpaint.js")
  assert status == 200 and b":predict" in body
  assert get(proxy_port, "/static/../web.py")[0] == 404

  dead = web.ProxyServer(("127.0.0.1", 0), "http://127.0.0.1:9")
  thread = threading.Thread(target=dead.serve_forever, daemon=True)
  thread.start()
  try:
    status, body = get(dead.server_address[1], "/v1/models/lbam")
  finally:
    dead.shutdown()
    dead.server_close()
  assert status == 502
  assert "cannot reach TF Serving at http://127.0.0.1:9" in \
      json.loads(body)["error"]
