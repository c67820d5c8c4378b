"""High-resolution inpainting: the original, resize and crop strategies
against each other and against OpenCV's Telea, in one run.

Photos of 1, 4, 12 and 24 MP (the reserved evaluation photos, enlarged:
`bash scripts/get_eval_photos.sh`) with 1, 3 and 10 brush strokes; each case
runs in a fresh child process under an address-space limit and reports the
seconds of one call, peak resident memory, the generator pixels
`lbam_tf.inference.hd.plan` runs, and PSNR / L1 over the hole pixels. The
printed header says how each figure is measured; BUILD_NOTES.md, "Serving",
has the results.

  .venv/bin/python bench/hd_inference.py            # the full run, ~25 min
  .venv/bin/python bench/hd_inference.py --quick    # 1 and 4 MP, 3 holes
"""

import dataclasses
import glob
import json
import math
import os
import resource
import subprocess
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [_REPO, os.path.join(_REPO, "tests")]

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from PIL import Image  # noqa: E402

from lbam_tf import cli  # noqa: E402

# TensorFlow (and so bench.timing and lbam_tf.inference) is imported inside
# functions: the Telea children would otherwise carry its ~0.5 GB in their
# peak RSS.

#: lbam_tf.inference.hd.STRATEGIES (checked at run time), then the baseline.
STRATEGIES = ("original", "resize", "crop")
METHODS = (*STRATEGIES, "telea")

#: Photo aspect ratio, width / height (6000 x 4000 at 24 MP).
ASPECT = 1.5
#: Stroke widths are drawn in [20, 60] px at 12 MP, this long side, and
#: scaled with the long side elsewhere.
REFERENCE_LONG_SIDE = 4240
STROKE_WIDTH_PX = (20, 60)
#: Stroke segment lengths, as fractions of the long side (~170-510 px at
#: 12 MP), and vertex counts.
SEGMENT_FRACTION = (0.02, 0.06)
VERTICES = (3, 7)
#: The warm-up photo (height, width): above the default crop trigger (800)
#: and below the default resize limit (1280).
WARMUP_SIZE = (640, 960)

DEFAULT_MODEL_DIR = os.path.join(_REPO, "out", "model")
DEFAULT_PHOTO_DIR = os.path.join(_REPO, "out", "eval_photos")
_RESULT = "RESULT "


@dataclasses.dataclass(frozen=True)
class Config:
  """What to measure; the flags of the same names."""
  quick: bool = cli.option(
      False, "Smoke run: 1 and 4 MP, 3 holes, the first photo only "
      "(overrides --megapixels, --holes and --photos).")
  megapixels: tuple = cli.option(
      ("1", "4", "12", "24"), "Photo sizes in megapixels (3:2 landscape, "
      "sides multiples of 8).")
  holes: tuple = cli.option(
      ("1", "3", "10"), "Brush holes per photo; the holes of a smaller "
      "count are the first of a larger one.")
  methods: tuple = cli.option(
      METHODS, "Strategies to run, and OpenCV's Telea beside them (repeat "
      "the flag for several).", choices=METHODS, multi=True)
  weights: str | None = cli.option(
      None, "Generator weights (anything lbam_tf.weights.model_io."
      "load_generator reads). Default: out/model if it exists (the main "
      "job's model_dir), else random weights scaled like a trained model's "
      "(then the PSNR means nothing).")
  photos: tuple = cli.option(
      (), "Photos to enlarge (default: every .jpg in out/eval_photos, from "
      "scripts/get_eval_photos.sh).")
  max_original_mp: float = cli.option(
      12.0, "Above this many megapixels 'original' is skipped with a note "
      "(its full-frame generator call needs memory in proportion).")
  child_memory_gb: float = cli.option(
      20.0, "Address-space limit of each child process (RLIMIT_AS), GB: a "
      "case needing more fails as 'out of memory' instead of exhausting the "
      "machine. TF maps about twice what it keeps resident.")
  child_rss_gb: float = cli.option(
      20.0, "A child resident above this many GB is stopped and reported "
      "'out of memory' (read every 0.2 s by this process).")
  min_available_gb: float = cli.option(
      2.0, "A child is stopped and reported 'out of memory' when the "
      "machine has less than this many GB available (MemAvailable), before "
      "the kernel's OOM killer picks a process, perhaps another user's.")
  threads: int = cli.option(
      2, "Threads for TF (intra- and inter-op) and OpenCV in each child.")
  telea_radius: int = cli.option(3, "cv2.inpaint radius of Telea, px.")
  crop_margin: int | None = cli.option(
      None, "InpaintModule crop_margin; default: the module's.")
  resize_limit: int | None = cli.option(
      None, "InpaintModule resize_limit; default: the module's.")
  crop_trigger: int | None = cli.option(
      None, "InpaintModule crop_trigger; default: the module's.")
  seed: int = cli.option(0, "Seed of the strokes.")
  case_timeout_s: int = cli.option(
      3600, "Seconds one child may run before it is stopped.")
  output_json: str | None = cli.option(None, "Also write the results here.")

  def check(self):
    """Raises ValueError naming the bad value and the remedy."""
    for value in self.megapixels:
      try:
        ok = float(value) > 0
      except ValueError:
        ok = False
      if not ok:
        raise ValueError(f"--megapixels {value} is not a positive number")
    for value in self.holes:
      if not value.isdigit() or int(value) < 1:
        raise ValueError(f"--holes {value} is not a whole number >= 1")
    if self.min_available_gb < 0:
      raise ValueError(f"--min_available_gb {self.min_available_gb} must be "
                       ">= 0")
    for name in ("child_memory_gb", "child_rss_gb"):
      if getattr(self, name) <= 0:
        raise ValueError(f"--{name} {getattr(self, name)} must be positive")
    if self.threads < 1:
      raise ValueError(f"--threads {self.threads} must be at least 1")
    if self.telea_radius < 1:
      raise ValueError(f"--telea_radius {self.telea_radius} must be >= 1")
    for path in self.photos:
      if not os.path.exists(path):
        raise ValueError(f"--photos {path} does not exist")


def photo_size(megapixels):
  """(height, width) of a 3:2 photo of `megapixels`, sides multiples of 8."""
  width = 8 * round(math.sqrt(megapixels * 1e6 * ASPECT) / 8)
  return 8 * round(width / ASPECT / 8), width


def padded_pixels(height, width, multiple=128):
  """Pixels of the frame padded to multiples of `multiple` ('original')."""
  return (-(-height // multiple) * multiple) * (-(-width // multiple)
                                                * multiple)


def enlarged_photo(path, size):
  """uint8 [H, W, 3]: the photo centre-cropped to 3:2, Lanczos-enlarged."""
  image = Image.open(path).convert("RGB")
  width, height = image.size
  if width / height > ASPECT:
    crop = round(height * ASPECT)
    box = ((width - crop) // 2, 0, (width - crop) // 2 + crop, height)
  else:
    crop = round(width / ASPECT)
    box = (0, (height - crop) // 2, width, (height - crop) // 2 + crop)
  return np.asarray(image.crop(box).resize((size[1], size[0]),
                                           Image.LANCZOS))


def stroke_mask(size, count, seed):
  """uint8 [H, W], 255 = hole: `count` brush strokes.

  Each stroke is a cv2 polyline (LINE_8) of 3-6 segments with a filled disk
  at each vertex: it starts uniformly in the middle 84% of the frame, each
  segment 2-6% of the long side long, turning by up to 60 degrees from the
  last; its width is uniform in 20-60 px at 12 MP (scaled with the long
  side: ~6-17 px at 1 MP, ~28-85 px at 24 MP). The geometry is drawn in
  fractions of the frame, so every size gets the same strokes, and stroke i
  never depends on `count`.
  """
  height, width = size
  long_side = max(height, width)
  scale = long_side / REFERENCE_LONG_SIDE
  rng = np.random.default_rng(seed)
  mask = np.zeros((height, width), np.uint8)
  for _ in range(count):
    brush = max(1, round(rng.uniform(*STROKE_WIDTH_PX) * scale))
    x, y = rng.uniform(0.08, 0.92) * width, rng.uniform(0.08, 0.92) * height
    angle = rng.uniform(0, 2 * math.pi)
    points = [(x, y)]
    for _ in range(int(rng.integers(*VERTICES)) - 1):
      angle += rng.uniform(-1, 1) * math.pi / 3
      length = rng.uniform(*SEGMENT_FRACTION) * long_side
      x = float(np.clip(x + length * math.cos(angle), 0, width - 1))
      y = float(np.clip(y + length * math.sin(angle), 0, height - 1))
      points.append((x, y))
    points = np.round(np.array(points)).astype(np.int32)
    cv2.polylines(mask, [points], False, 255, brush, lineType=cv2.LINE_8)
    for px, py in points:
      cv2.circle(mask, (int(px), int(py)), brush // 2, 255, -1)
  return mask


def hole_errors(output, truth, hole):
  """(PSNR dB, L1 % of 255) over the hole pixels of uint8 images."""
  error = output[hole].astype(np.float64) - truth[hole]
  mse = float(np.mean(error ** 2))
  psnr = 10 * math.log10(255.0 ** 2 / mse) if mse else float("inf")
  return psnr, float(100 * np.mean(np.abs(error)) / 255)


def _status_kb(field):
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1])
  return 0


def _reset_peak_rss():
  """Sets VmHWM to the current RSS; False where the kernel refuses."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False


def _hd_options(spec):
  return {name: spec[name] for name in ("crop_margin", "resize_limit",
                                        "crop_trigger")
          if spec.get(name) is not None}


def _model_runner(spec, size):
  """(warm-up function, function(photo, image, known) -> output, module)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from lbam_tf.inference import module as module_lib  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
  tf.config.threading.set_inter_op_parallelism_threads(spec["threads"])
  from bench.serving import load_weights  # pylint: disable=g-import-not-at-top
  generator = load_weights(spec["weights"])
  pixels = size[0] * size[1]
  limits = {"max_pixels": max(module_lib.DEFAULT_MAX_PIXELS, pixels),
            "max_request_pixels": max(module_lib.DEFAULT_MAX_REQUEST_PIXELS,
                                      pixels)}
  if spec["method"] == "original":
    # The old behaviour: one generator call on the whole padded frame.
    limits["max_generator_pixels"] = max(
        module_lib.DEFAULT_MAX_GENERATOR_PIXELS, padded_pixels(*size))
  module = module_lib.InpaintModule(generator, hd_strategy=spec["method"],
                                    **limits, **_hd_options(spec))

  def run(photo, image, known):
    del photo  # the model takes the float image, its holes zeroed
    return module.inpaint_tensor(tf.constant(image[None]),
                                 tf.constant(known[None]))["image"].numpy()[0]

  def warm_up():
    photo = enlarged_photo(spec["photos"][0], WARMUP_SIZE)
    known = (stroke_mask(WARMUP_SIZE, 3, spec["seed"]) == 0)
    known = known[..., None].astype(np.float32)
    run(photo, photo.astype(np.float32) / 255 * known, known)

  return warm_up, run, module


def _planned(spec, known):
  """(generator pixels, generator calls) of `known` [H, W, 1] per hd.plan."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from lbam_tf.inference import hd  # pylint: disable=g-import-not-at-top
  options = {"crop_margin": hd.DEFAULT_CROP_MARGIN,
             "resize_limit": hd.DEFAULT_RESIZE_LIMIT,
             "crop_trigger": hd.DEFAULT_CROP_TRIGGER, **_hd_options(spec)}
  _, sizes = hd.plan(tf.constant(known), spec["method"],
                     options["crop_margin"], options["resize_limit"],
                     options["crop_trigger"])
  sizes = np.asarray(sizes, np.int64).reshape(-1, 2)
  return int(np.sum(sizes[:, 0] * sizes[:, 1])), int(len(sizes))


def run_case(spec):
  """One case in this (child) process: the dict printed after RESULT."""
  limit = int(spec["memory_limit_bytes"])
  resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
  cv2.setNumThreads(spec["threads"])
  size = photo_size(spec["megapixels"])
  hole = stroke_mask(size, spec["holes"], spec["seed"]) > 0
  known = (~hole)[..., None].astype(np.float32)
  photos = [enlarged_photo(path, size) for path in spec["photos"]]
  method = spec["method"]
  result = {"method": method, "megapixels": spec["megapixels"],
            "holes": spec["holes"], "size": size,
            "hole_percent": float(100 * hole.mean())}
  try:
    if method == "telea":
      from lbam_tf.evaluation import baselines  # pylint: disable=g-import-not-at-top

      def run(photo, image, known):
        del image  # Telea takes the uint8 photo and zeroes its holes itself
        return baselines.inpaint_batch(photo[None], known[None], "telea",
                                       radius=spec["telea_radius"])[0]
    else:
      warm_up, run, _ = _model_runner(spec, size)
      warm_up()
    result["base_mb"] = _status_kb("VmRSS") / 1024
    result["peak_reset"] = _reset_peak_rss()
    seconds, psnrs, l1s = [], [], []
    for photo in photos:
      # The request: the photo as floats, its hole pixels zeroed.
      image = (photo.astype(np.float32) / 255) * known
      start = time.perf_counter()
      output = run(photo, image, known)
      seconds.append(time.perf_counter() - start)
      if output.dtype != np.uint8:  # as lbam_tf.images.ops.to_uint8
        output = np.round(np.clip(output, 0, 1) * 255).astype(np.uint8)
      psnr, l1 = hole_errors(output, photo, hole)
      psnrs.append(psnr)
      l1s.append(l1)
      del image, output
    result["peak_mb"] = _status_kb("VmHWM") / 1024
    result["vm_peak_mb"] = _status_kb("VmPeak") / 1024
    result.update(seconds=float(np.median(seconds)), seconds_each=seconds,
                  hole_psnr=float(np.mean(psnrs)), hole_l1=float(np.mean(l1s)),
                  status="ok")
    if method != "telea":
      result["generator_pixels"], result["generator_calls"] = _planned(
          spec, known)
  except Exception as error:  # pylint: disable=broad-except
    # At the address-space limit TF fails in several ways: MemoryError,
    # ResourceExhaustedError, oneDNN's "could not create a primitive", even
    # a SystemError. Near the limit, any failure counts as memory.
    name = type(error).__name__
    message = (str(error).strip().splitlines() or [""])[0][:300]
    vm_peak = _status_kb("VmPeak") * 1024
    result["vm_peak_mb"] = vm_peak / 2**20
    if (isinstance(error, MemoryError) or name == "ResourceExhaustedError"
        or any(sign in str(error) for sign in _OOM_SIGNS)
        or vm_peak > NEAR_LIMIT * limit):
      result.update(status="out of memory", error=(
          f"{name}: {message} (VmPeak {vm_peak / 1e9:.1f} GB, RLIMIT_AS "
          f"{limit / 1e9:g} GB)"))
    elif name == "InvalidArgumentError":
      result.update(status="refused", error=f"{name}: {message}")
    else:
      raise
  return result


def child_main(spec):
  print(_RESULT + json.dumps(run_case(spec)), flush=True)


_CHILD = ("import json, sys; sys.path.insert(0, {repo!r}); "
          "from bench import hd_inference; "
          "hd_inference.child_main(json.loads(sys.argv[1]))")

_OOM_SIGNS = ("ResourceExhausted", "OOM when", "bad_alloc", "Cannot allocate",
              "MemoryError", "out of memory", "Failed to allocate",
              "could not create a primitive")
#: A failure with the address space above this fraction of the limit is
#: counted as out of memory.
NEAR_LIMIT = 0.9
#: A child whose address space stays above this fraction of the limit, in
#: system calls more than in its own code, is stuck there.
STUCK_NEAR_LIMIT = 0.97
#: How often the parent reads the child's memory, and how long a child may
#: sit at its address-space limit (TF can spin there instead of failing).
_POLL_S = 0.2
_STUCK_S = 120


def _memory_kb(pid):
  """(VmRSS, VmSize in kB, user + system CPU ticks) of a process, or None
  once it is gone."""
  try:
    with open(f"/proc/{pid}/status") as f:
      fields = dict(line.split(":", 1) for line in f if ":" in line)
    with open(f"/proc/{pid}/stat") as f:
      ticks = f.read().rsplit(")", 1)[1].split()[11:13]
    return (int(fields["VmRSS"].split()[0]), int(fields["VmSize"].split()[0]),
            (int(ticks[0]), int(ticks[1])))
  except (OSError, KeyError, ValueError, IndexError):
    return None


def _available_bytes():
  """MemAvailable of the machine (/proc/meminfo), or None."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def _noise(line):
  """TF's start-up log lines, which say nothing about a failure."""
  return not line.strip() or "oneDNN custom operations" in line or (
      "absl::InitializeLog" in line)


def run_child(spec, timeout_s, rss_limit_bytes, min_available_bytes=0):
  """Runs one case in a fresh Python process: its result dict.

  The parent watches the child: above `rss_limit_bytes` resident, at its
  address-space limit for _STUCK_S, when the machine has less than
  `min_available_bytes` available (before the kernel's OOM killer picks a
  process, perhaps someone else's), or past `timeout_s` it is killed and the
  result says why.
  """
  base = {"method": spec["method"], "megapixels": spec["megapixels"],
          "holes": spec["holes"]}
  limit_kb = spec["memory_limit_bytes"] / 1024
  with open(os.devnull, "rb") as stdin:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(repo=_REPO), json.dumps(spec)],
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
  # Drained by threads, so that a chatty child never blocks on its pipes.
  chunks = {"stdout": [], "stderr": []}
  readers = [threading.Thread(target=lambda n=name, s=stream: chunks[n].append(
      s.read()), daemon=True)
             for name, stream in (("stdout", child.stdout),
                                  ("stderr", child.stderr))]
  for reader in readers:
    reader.start()
  start, at_limit_since, stopped, max_rss_kb = time.monotonic(), None, None, 0
  ticks = (0, 0)
  while child.poll() is None:
    memory = _memory_kb(child.pid)
    now = time.monotonic()
    if memory:
      rss_kb, size_kb, (user, system) = memory
      max_rss_kb = max(max_rss_kb, rss_kb)
      available = _available_bytes()
      if rss_kb * 1024 > rss_limit_bytes:
        stopped = (f"out of memory (stopped: resident {rss_kb / 2**20:.1f} "
                   f"GiB, above --child_rss_gb)")
      elif available is not None and available < min_available_bytes:
        stopped = (f"out of memory (stopped at {rss_kb / 2**20:.1f} GiB "
                   f"resident: the machine had {available / 2**30:.1f} GiB "
                   "available, below --min_available_gb)")
      elif size_kb > STUCK_NEAR_LIMIT * limit_kb:
        # Spinning at the limit: mostly system time (failed mappings).
        if at_limit_since is None:
          at_limit_since, ticks = now, (user, system)
        elif now - at_limit_since > _STUCK_S:
          if system - ticks[1] > user - ticks[0]:
            stopped = (f"out of memory (stopped: {_STUCK_S} s at the "
                       "address-space limit, spinning in the kernel)")
          at_limit_since = None
      else:
        at_limit_since = None
    if stopped is None and now - start > timeout_s:
      stopped = f"timed out after {timeout_s} s"
    if stopped:
      child.kill()
      break
    time.sleep(_POLL_S)
  child.wait()
  for reader in readers:
    reader.join()
  stdout, stderr = "".join(chunks["stdout"]), "".join(chunks["stderr"])
  if stopped:
    return {**base, "status": stopped, "max_rss_mb": max_rss_kb / 1024}
  for line in stdout.splitlines():
    if line.startswith(_RESULT):
      return json.loads(line[len(_RESULT):])
  tail = [line for line in stderr.splitlines() if not _noise(line)][-3:]
  if child.returncode == -9:
    status = (f"killed (SIGKILL at {max_rss_kb / 2**20:.1f} GiB resident: "
              "the kernel's OOM killer?)")
  elif any(sign in stderr for sign in _OOM_SIGNS):
    status = "out of memory"
  else:
    status = f"failed (exit {child.returncode})"
  return {**base, "status": status, "max_rss_mb": max_rss_kb / 1024,
          "error": " | ".join(tail)[-600:]}


def machine_lines(threads):
  """The CPU, its flags that matter here, the memory and the load."""
  from bench import timing  # pylint: disable=g-import-not-at-top
  model, flags = "unknown CPU", set()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name") and model == "unknown CPU":
          model = line.split(":", 1)[1].strip()
        elif line.startswith("flags") and not flags:
          flags = set(line.split(":", 1)[1].split())
  except OSError:
    pass
  vector = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni")
                    if f in flags) or "none"
  memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
  return [f"{model}; load average {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} CPUs; threads {threads}; {memory_gb:.1f} GiB "
          f"memory",
          f"CPU flags: {vector}; bfloat16: "
          f"{timing.cpu_bfloat16_flags() or 'none'} (float32 is run)"]


def _fmt(value, spec, missing="-"):
  return missing if value is None else format(value, spec)


def _ratio(a, b):
  return f"{a / b:.2f}x" if a is not None and b else "-"


def print_table(results):
  print(f"{'MP':>5} {'holes':>5} {'hole%':>6}  {'method':<9}"
        f"{'s':>8} {'1st s':>7} {'peak MB':>8} {'base MB':>8} {'AS GB':>6} {'gen Mpx':>8} "
        f"{'calls':>5} {'PSNR dB':>8} {'L1 %':>6}  status")
  last = None
  for r in results:
    key = (r["megapixels"], r["holes"])
    if last is not None and key != last:
      print()
    last = key
    gen = r.get("generator_pixels")
    print(f"{r['megapixels']:>5g} {r['holes']:>5} "
          f"{_fmt(r.get('hole_percent'), '.2f'):>6}  {r['method']:<9}"
          f"{_fmt(r.get('seconds'), '.2f'):>8} "
          f"{_fmt((r.get('seconds_each') or [None])[0], '.2f'):>7} "
          f"{_fmt(r.get('peak_mb'), '.0f'):>8} "
          f"{_fmt(r.get('base_mb'), '.0f'):>8} "
          f"{_fmt(r['vm_peak_mb'] * 2**20 / 1e9 if 'vm_peak_mb' in r else None, '.1f'):>6} "
          f"{_fmt(gen / 1e6 if gen else None, '.2f'):>8} "
          f"{_fmt(r.get('generator_calls'), 'd'):>5} "
          f"{_fmt(r.get('hole_psnr'), '.2f'):>8} "
          f"{_fmt(r.get('hole_l1'), '.2f'):>6}  {r['status']}")


def print_ratios(results):
  table = {(r["megapixels"], r["holes"], r["method"]): r for r in results
           if r["status"] == "ok"}
  print(f"\n{'MP':>5} {'holes':>5}   crop / original: {'time':>6} "
        f"{'peak':>6} {'gen px':>6}   crop / resize: {'time':>6} "
        f"{'peak':>6}   crop - Telea PSNR")
  for mp, holes in dict.fromkeys((r["megapixels"], r["holes"])
                                 for r in results):
    crop, original, resize, telea = (
        table.get((mp, holes, m), {}) for m in ("crop", "original", "resize",
                                                "telea"))
    gain = (f"{crop['hole_psnr'] - telea['hole_psnr']:+.2f} dB"
            if crop and telea else "-")
    print(f"{mp:>5g} {holes:>5}   {'':>16} "
          f"{_ratio(crop.get('seconds'), original.get('seconds')):>6} "
          f"{_ratio(crop.get('peak_mb'), original.get('peak_mb')):>6} "
          f"{_ratio(crop.get('generator_pixels'), original.get('generator_pixels')):>6}"
          f"   {'':>14} "
          f"{_ratio(crop.get('seconds'), resize.get('seconds')):>6} "
          f"{_ratio(crop.get('peak_mb'), resize.get('peak_mb')):>6}"
          f"   {gain}")


def main(argv):
  config = cli.from_flags(Config, argv)
  from lbam_tf.inference import hd  # pylint: disable=g-import-not-at-top
  if tuple(hd.STRATEGIES) != STRATEGIES:
    raise app.UsageError(f"hd.STRATEGIES is {hd.STRATEGIES}, this benchmark "
                         f"knows {STRATEGIES}: update it")
  megapixels = [float(m) for m in config.megapixels]
  holes = [int(h) for h in config.holes]
  photos = list(config.photos) or sorted(
      glob.glob(os.path.join(DEFAULT_PHOTO_DIR, "*.jpg")))
  if not photos:
    raise app.UsageError(f"no photos in {DEFAULT_PHOTO_DIR}: run `bash "
                         "scripts/get_eval_photos.sh` or pass --photos")
  if config.quick:
    megapixels, holes, photos = [1.0, 4.0], [3], photos[:1]
  weights = config.weights
  if weights is None and os.path.exists(DEFAULT_MODEL_DIR):
    weights = DEFAULT_MODEL_DIR

  for line in machine_lines(config.threads):
    print(line)
  if weights is None:
    print("weights: random, scaled like a trained model's: the PSNR and L1 "
          "columns mean nothing, only time and memory do")
  else:
    note = ""
    if os.path.isdir(weights):
      with open(os.path.join(weights, "config.json")) as f:
        trained = json.load(f)
      note = (f" (a model_dir: preset {trained.get('preset')}, "
              f"{trained.get('train_steps')} steps on "
              f"{trained.get('crop_size')} px crops)")
    print(f"weights: {weights}{note}; a weak model: compare the strategies "
          "with each other and with Telea, not with published figures")
  sizes = ", ".join(f"{m:g} MP = {photo_size(m)[1]}x{photo_size(m)[0]}"
                    for m in megapixels)
  print(f"photos: {', '.join(os.path.basename(p) for p in photos)} "
        f"(~0.3 MP, never trained on), centre-cropped to 3:2 and ENLARGED "
        f"with Lanczos to {sizes}; ground truth = the enlarged photo")
  print(f"holes: {', '.join(map(str, holes))} cv2 brush strokes (3-6 "
        f"segments of 2-6% of the long side, {STROKE_WIDTH_PX[0]}-"
        f"{STROKE_WIDTH_PX[1]} px wide at 12 MP, scaled with the long side), "
        f"seed {config.seed}; the same strokes at every size")
  print(f"per case: a fresh child process, RLIMIT_AS {config.child_memory_gb:g}"
        f" GB, stopped above {config.child_rss_gb:g} GB resident or below "
        f"{config.min_available_gb:g} GB available on the machine; s = median over the photos of one inpaint_tensor call (1st s: "
        "the first photo's, the first call at that size; traced first by a "
        f"{WARMUP_SIZE[1]}x{WARMUP_SIZE[0]} warm-up) or one Telea "
        f"(cv2.inpaint radius {config.telea_radius}); peak = VmHWM during the "
        "timed calls, base = RSS before them (MB = MiB), AS = VmPeak (address space, "
        "what RLIMIT_AS limits); gen Mpx and calls from "
        "hd.plan; PSNR / L1 % of 255 over the hole pixels of the 8-bit "
        "results, mean over the photos")
  print(f"hd defaults: crop_margin {hd.DEFAULT_CROP_MARGIN}, resize_limit "
        f"{hd.DEFAULT_RESIZE_LIMIT}, crop_trigger {hd.DEFAULT_CROP_TRIGGER} "
        "(overridden by the flags of those names); 'original' runs with "
        "max_generator_pixels raised to its padded frame (the old "
        "behaviour)", flush=True)

  cases = [(m, h, method) for m in megapixels for h in holes
           for method in config.methods]
  skipped = sorted({m for m, _, method in cases
                    if method == "original" and m > config.max_original_mp})
  cases = [c for c in cases
           if not (c[2] == "original" and c[0] > config.max_original_mp)]
  results = []
  for index, (mp, count, method) in enumerate(cases):
    print(f"[{index + 1}/{len(cases)}] {mp:g} MP, {count} holes, {method}",
          file=sys.stderr, flush=True)
    spec = {"method": method, "megapixels": mp, "holes": count,
            "photos": photos, "weights": weights, "threads": config.threads,
            "seed": config.seed, "telea_radius": config.telea_radius,
            "crop_margin": config.crop_margin,
            "resize_limit": config.resize_limit,
            "crop_trigger": config.crop_trigger,
            "memory_limit_bytes": int(config.child_memory_gb * 1e9)}
    result = run_child(spec, config.case_timeout_s,
                       int(config.child_rss_gb * 1e9),
                       int(config.min_available_gb * 1e9))
    results.append(result)
    if result.get("error"):
      print(f"  {mp:g} MP {count} holes {method}: {result['status']}: "
            f"{result['error']}", flush=True)

  print()
  print_table(results)
  print_ratios(results)
  for mp in skipped:
    # The full frame's memory grows with its pixels: the largest measured
    # 'original' scaled to this size is the estimate.
    measured = [r for r in results if r["method"] == "original"
                and r["status"] == "ok"]
    estimate = ""
    if measured:
      r = max(measured, key=lambda r: r["megapixels"])
      grow = padded_pixels(*photo_size(mp)) / padded_pixels(*r["size"])
      estimate = (f"; scaled from {r['megapixels']:g} MP it would need ~"
                  f"{(r['base_mb'] + grow * (r['peak_mb'] - r['base_mb'])) / 1024:.1f}"
                  f" GB and ~{grow * r['seconds']:.0f} s")
    print(f"note: 'original' skipped at {mp:g} MP (above --max_original_mp "
          f"{config.max_original_mp:g}){estimate}")
  if config.output_json:
    with open(config.output_json, "w") as f:
      json.dump({"photos": photos, "weights": weights, "results": results},
                f, indent=1)


if __name__ == "__main__":
  cli.define_flags(Config)
  app.run(main)
