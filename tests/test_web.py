"""The inpainting page in headless Chromium, against the local server and
through serving.web's proxy, as a user drives it: open a photo, paint with the
mouse, press Inpaint, read the result.

A 12-megapixel photo goes through an export with the default limits and the
default high-resolution strategy (crop), the page showing its progress.

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
import time
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
from selenium.webdriver.support.ui import Select  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

MAX_PIXELS = conftest.EXPORT_MAX_PIXELS
HEIGHT, WIDTH = 96, 160
BRUSH = 16
#: A 12-megapixel photo, 4:3 as a camera takes it.
HD_HEIGHT, HD_WIDTH = 3000, 4000


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


@pytest.fixture(scope="module")
def hd_server_port(default_export, tmp_path_factory):
  """The local server on conftest's export with the InpaintModule's default
  limits (a 24-megapixel photo) and strategy."""
  folder = tmp_path_factory.mktemp("hd_server")
  with open(folder / "server.log", "w") as log, \
      processes.subprocess_server(default_export, log) as port:
    yield port


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


def _result(driver):
  """The result's PNG as the page holds it (an object URL), decoded."""
  data = driver.execute_async_script("""
      const done = arguments[arguments.length - 1];
      fetch(document.getElementById("result").src)
          .then((response) => response.blob())
          .then((blob) => {
            const reader = new FileReader();
            reader.onload = () => done(reader.result);
            reader.readAsDataURL(blob);
          }, (error) => done("error: " + error));""")
  return _decode_data_url(data)


def _record_requests(driver):
  """Makes the page keep the inputs of each :predict instance, minus the
  image bytes, in window.sentInstances."""
  driver.execute_script("""
      window.sentInstances = [];
      const fetch = window.fetch;
      window.fetch = (url, init) => {
        if (init && init.body) {
          for (const instance of JSON.parse(init.body).instances) {
            delete instance.image_bytes;
            delete instance.mask_bytes;
            window.sentInstances.push(instance);
          }
        }
        return fetch(url, init);
      };""")


def _sent(driver):
  return driver.execute_script("return window.sentInstances;")


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
  result = _result(browser)
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


def _camera_photo(tmp_path):
  """A 12-megapixel JPEG of smooth waves and fine stripes (a PNG of it is
  ~10 MB, well inside the server's 64 MiB request); returns its path."""
  y, x = np.mgrid[0:HD_HEIGHT, 0:HD_WIDTH].astype(np.float32)
  image = np.stack([128 + 60 * np.sin(x / 97 + c) + 40 * np.cos(y / 61 - 2 * c)
                    + 8 * np.sin((x + y) / 7 + c) for c in range(3)], -1)
  path = tmp_path / "camera.jpg"
  Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
      path, quality=92)
  return str(path)


def _stroke_shown(driver, points):
  """Drags the mouse through `points`, fractions (x, y) of the mask as shown
  (a large photo is shown scaled down to the page's width)."""
  mask = driver.find_element(By.ID, "mask")
  width, height = mask.size["width"], mask.size["height"]
  offsets = [(round((x - 0.5) * width), round((y - 0.5) * height))
             for x, y in points]
  (x, y), rest = offsets[0], offsets[1:]
  actions = ActionChains(driver).move_to_element_with_offset(
      mask, x, y).click_and_hold()
  for (x1, y1), (x0, y0) in zip(rest, offsets):
    actions = actions.move_by_offset(x1 - x0, y1 - y0)
  actions.release().perform()


def _page_state(driver):
  return driver.execute_script("""
      const $ = (id) => document.getElementById(id);
      return {status: $("status").textContent,
              working: !$("working").classList.contains("hidden"),
              indeterminate: !$("progress").hasAttribute("value"),
              elapsed: $("elapsed").textContent,
              inpaint_disabled: $("inpaint").disabled,
              strategy_disabled: $("hd_strategy").disabled};""")


def test_12_megapixel_photo_with_the_default_crop_strategy(
    browser, hd_server_port, tmp_path):
  # Each script below moves or encodes a 12-megapixel PNG: beside other
  # work that can take longer than WebDriver's default 30 s.
  browser.set_script_timeout(180)
  _open(browser, f"http://127.0.0.1:{hd_server_port}/", _camera_photo(tmp_path))
  assert f"width {HD_WIDTH}, height {HD_HEIGHT}" in _status(browser)
  strategy = browser.find_element(By.ID, "hd_strategy")
  assert strategy.get_attribute("value") == "crop"
  assert [o.get_attribute("value") for o in
          strategy.find_elements(By.TAG_NAME, "option")] == [
              "crop", "resize", "original"]
  _record_requests(browser)
  # Two short strokes in opposite corners: two crops, each far smaller than
  # the photo.
  _set_brush(browser, 12)
  _stroke_shown(browser, [(0.15, 0.2), (0.25, 0.22), (0.3, 0.3)])
  _stroke_shown(browser, [(0.75, 0.7), (0.85, 0.75)])
  hole = _painted(browser)
  assert hole.shape == (HD_HEIGHT, HD_WIDTH)
  assert 0 < hole.sum() < 0.05 * hole.size
  sent = _decode_data_url(browser.execute_script(
      "return document.getElementById('photo').toDataURL('image/png');"))[
          ..., :3]

  started = time.monotonic()
  browser.find_element(By.ID, "inpaint").click()
  states = []
  while time.monotonic() - started < 600:
    state = _page_state(browser)
    states.append(state)
    if any(word in state["status"] for word in ("Done", "refused", "failed")):
      break
    time.sleep(0.2)
  seconds = time.monotonic() - started
  print(f"12 MP crop inpaint: {seconds:.1f} s in the browser")
  assert "Done" in _status(browser), _status(browser)
  assert f"width {HD_WIDTH}, height {HD_HEIGHT}, strategy crop" in \
      _status(browser)
  # While it waited: the bar, a status line, the buttons off, the seconds.
  waiting = [s for s in states[:-1] if s["working"]]
  assert waiting, states[:3]
  assert all(s["indeterminate"] and s["inpaint_disabled"]
             and s["strategy_disabled"] and s["status"].startswith(
                 f"Inpainting {HD_HEIGHT}x{HD_WIDTH}") for s in waiting)
  assert any("waiting for the server" in s["status"] for s in waiting)
  assert int(waiting[-1]["elapsed"].split()[0]) >= 1, waiting[-1]
  # And after it: all cleared.
  done = _page_state(browser)
  assert not done["working"] and not done["inpaint_disabled"]
  assert _sent(browser) == [{"mask_polarity": "white", "hd_strategy": "crop"}]

  result = _result(browser)
  assert result.shape == (HD_HEIGHT, HD_WIDTH, 3)
  # A patch far from both strokes (the bottom-left and top-right corners),
  # then every known pixel: bit-exact.
  far = (slice(2400, 3000), slice(0, 800)), (slice(0, 400), slice(3200, 4000))
  for rows, columns in far:
    assert not hole[rows, columns].any()
    np.testing.assert_array_equal(result[rows, columns], sent[rows, columns])
  np.testing.assert_array_equal(result[~hole], sent[~hole])
  assert (result[hole] != sent[hole]).any()


def test_strategy_inputs_are_sent_and_checked(browser, page_url, tmp_path):
  image, path = _photo(tmp_path)
  _open(browser, page_url, path)
  _record_requests(browser)
  _set_brush(browser, BRUSH)
  _stroke(browser, [(40, 48), (120, 48)])
  hole = _painted(browser)
  margin = browser.find_element(By.ID, "crop_margin")
  limit = browser.find_element(By.ID, "resize_limit")
  margin.send_keys("-3")
  browser.find_element(By.ID, "inpaint").click()
  status = browser.find_element(By.ID, "status")
  assert "Crop margin \"-3\" is not a whole number" in status.text
  assert "error" in status.get_attribute("class")
  assert _sent(browser) == []

  # resize: the margin is crop's alone, so it is off and not sent.
  Select(
      browser.find_element(By.ID, "hd_strategy")).select_by_value("resize")
  assert not margin.is_enabled() and limit.is_enabled()
  limit.send_keys("64")
  browser.find_element(By.ID, "inpaint").click()
  WebDriverWait(browser, 180).until(lambda d: any(
      word in _status(d) for word in ("Done", "refused", "failed")))
  assert "strategy resize" in _status(browser), _status(browser)
  assert _sent(browser) == [{"mask_polarity": "white", "hd_strategy": "resize",
                             "resize_limit": 64}]
  result = _result(browser)
  assert result.shape == image.shape
  np.testing.assert_array_equal(result[~hole], image[~hole])

  Select(
      browser.find_element(By.ID, "hd_strategy")).select_by_value("original")
  assert not margin.is_enabled() and not limit.is_enabled()
