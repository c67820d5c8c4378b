"""Hole masks drawn with numpy and OpenCV: uint8 HxW, 255 = hole, 0 = known.

Two families (DeepFill v2-style strokes, NVIDIA-style irregular blobs), each
drawn at a requested hole ratio so that every bin of the paper's Table 1 gets
equal counts. Functions take a `numpy.random.Generator` (one seed, one mask on
any machine) and import no TensorFlow, so Beam workers and the demo need only
numpy and OpenCV. How and why: BUILD_NOTES.md, "Data pipeline".

Example:

    rng = seeding.seeded_rng(0, "demo", 0)
    hole = masks.random_mask(rng, (256, 256), hole_range=(0.1, 0.2))
"""

import math

import cv2
import numpy as np

#: Hole-ratio bins (lower, upper], as in the PConv test set and LBAM Table 1.
HOLE_RATIO_BINS = ((0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5),
                   (0.5, 0.6))

#: The hole ratios every generated mask falls in (training and test alike).
FULL_RANGE = (HOLE_RATIO_BINS[0][0], HOLE_RATIO_BINS[-1][1])

#: Mask families, the names stored in the `source` feature of generated masks.
KINDS = ("random_shape", "irregular")

HOLE = 255

# Redraws before giving up on a hole range; each draw lands in range with high
# probability, so reaching this means the range is too narrow for the size.
_MAX_ATTEMPTS = 100


def hole_ratio(mask):
  """Fraction of hole pixels in one mask picture: uint8 [H, W], 255 = hole.

  The convention of the masks drawn here and stored in the TFRecords (values
  >= 128 count as hole). A model mask (float, 1 = known) is turned into this
  form by `lbam_tf.images.ops.hole_image_from_known_mask` first.
  """
  return float(np.mean(np.asarray(mask) >= 128))


def bin_label(index):
  """'(0.01,0.1]' style label of bin `index`, as used in manifests and reports."""
  lower, upper = HOLE_RATIO_BINS[index]
  return f"({lower:g},{upper:g}]"


def ratio_bin(ratio):
  """Index of the (lower, upper] bin holding `ratio`, or None outside all bins."""
  for index, (lower, upper) in enumerate(HOLE_RATIO_BINS):
    if lower < ratio <= upper:
      return index
  return None


def ratio_label(ratio):
  """The bin label of a hole ratio, or 'outside' for a ratio in no bin."""
  index = ratio_bin(ratio)
  return "outside" if index is None else bin_label(index)


def ratio_histogram(ratios):
  """Counts per bin label, plus 'outside' for ratios in no bin."""
  counts = {bin_label(i): 0 for i in range(len(HOLE_RATIO_BINS))}
  counts["outside"] = 0
  for ratio in ratios:
    counts[ratio_label(ratio)] += 1
  return counts


def _in_range(ratio, hole_range):
  return hole_range[0] < ratio <= hole_range[1]


def _check_size(size):
  height, width = size
  if height < 8 or width < 8:
    raise ValueError(f"mask size {height}x{width} is too small: use at least 8x8")
  return int(height), int(width)


def _brush_stroke(rng, mask, scale):
  """Draws one DeepFill v2 stroke: a polyline with a filled disk at each vertex."""
  height, width = mask.shape
  radius = math.sqrt(height ** 2 + width ** 2) / 8
  num_vertices = int(rng.integers(4, 12))
  brush = max(1, int(round(rng.uniform(12, 40) * scale)))
  mean_angle = 2 * math.pi / 5
  spread = 2 * math.pi / 15
  x, y = rng.uniform(0, width), rng.uniform(0, height)
  points = [(x, y)]
  for step in range(num_vertices - 1):
    angle = mean_angle + rng.uniform(-spread, spread)
    # Turning to alternate sides keeps strokes winding rather than spiralling.
    if step % 2 == 0:
      angle = 2 * math.pi - angle
    length = float(np.clip(rng.normal(radius, radius / 2), 0, 2 * radius))
    x = float(np.clip(x + length * math.cos(angle), 0, width - 1))
    y = float(np.clip(y + length * math.sin(angle), 0, height - 1))
    points.append((x, y))
  pts = np.round(np.array(points)).astype(np.int32)
  cv2.polylines(mask, [pts], False, HOLE, brush, lineType=cv2.LINE_8)
  for px, py in pts:
    cv2.circle(mask, (int(px), int(py)), brush // 2, HOLE, -1)


def _box(rng, mask, scale):
  """Draws one axis-aligned box, sides 30-150 px at 512 px (LaMa 'medium')."""
  height, width = mask.shape
  box_h = max(2, int(rng.uniform(30, 150) * scale))
  box_w = max(2, int(rng.uniform(30, 150) * scale))
  top = int(rng.integers(0, max(1, height - box_h)))
  left = int(rng.integers(0, max(1, width - box_w)))
  mask[top:top + box_h, left:left + box_w] = HOLE


def random_shape_mask(rng, size, hole_range=FULL_RANGE):
  """Brush strokes and boxes until the hole ratio reaches a target in `hole_range`.

  The target is uniform in `hole_range`; a stroke that would overshoot the
  range is discarded and another drawn, so the result lies in (lower, upper].

  Args:
    rng: numpy Generator.
    size: (height, width).
    hole_range: (lower, upper] hole ratio the mask must fall in.

  Returns:
    uint8 [height, width], 255 = hole.
  """
  height, width = _check_size(size)
  scale = math.sqrt(height * width) / 256
  for _ in range(_MAX_ATTEMPTS):
    target = rng.uniform(*hole_range)
    mask = np.zeros((height, width), np.uint8)
    for _ in range(_MAX_ATTEMPTS):
      candidate = mask.copy()
      if rng.uniform() < 0.15:
        _box(rng, candidate, scale * 0.5)
      else:
        _brush_stroke(rng, candidate, scale)
      ratio = hole_ratio(candidate)
      if ratio > hole_range[1]:
        continue
      mask = candidate
      if ratio >= target and _in_range(ratio, hole_range):
        return mask
  raise ValueError(
      f"could not draw a {height}x{width} random-shape mask with hole ratio in "
      f"{hole_range}: widen the range or use a larger size")


def _disk(diameter):
  return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (diameter, diameter))


def irregular_mask(rng, size, hole_range=FULL_RANGE):
  """An occlusion-like blob mask with a hole ratio uniform in `hole_range`.

  A smooth random field stands in for the NVIDIA set's optical-flow occlusion
  maps; grey-level dilation of the field by a disk equals dilating every one of
  its threshold sets by that disk, so after the set's recipe (dilate 9-49 px at
  512 px, rotate, translate, crop) the threshold is chosen last, at the
  quantile that gives the target ratio exactly.

  Args:
    rng: numpy Generator.
    size: (height, width).
    hole_range: (lower, upper] hole ratio the mask must fall in.

  Returns:
    uint8 [height, width], 255 = hole.
  """
  height, width = _check_size(size)
  side = int(math.ceil(1.5 * max(height, width)))
  cells = int(rng.integers(3, 9))
  field = rng.uniform(size=(cells, cells)).astype(np.float32)
  field = cv2.resize(field, (side, side), interpolation=cv2.INTER_CUBIC)
  # Fine detail on the blob edges, as occlusion boundaries are not smooth.
  detail = rng.uniform(size=(cells * 4, cells * 4)).astype(np.float32)
  field += 0.15 * cv2.resize(detail, (side, side), interpolation=cv2.INTER_CUBIC)
  diameter = max(3, int(round(rng.uniform(9, 49) * max(height, width) / 512)))
  field = cv2.dilate(field, _disk(diameter))
  angle = rng.uniform(0, 360)
  shift = rng.uniform(-0.25, 0.25, size=2) * (side - max(height, width))
  rotation = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
  rotation[:, 2] += shift
  field = cv2.warpAffine(field, rotation, (side, side), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
  top, left = (side - height) // 2, (side - width) // 2
  field = field[top:top + height, left:left + width]

  pixels = height * width
  lowest = math.floor(hole_range[0] * pixels) + 1
  highest = math.floor(hole_range[1] * pixels)
  if lowest > highest:
    raise ValueError(
        f"hole range {hole_range} holds no whole pixel count at {height}x{width}: "
        "widen the range or use a larger size")
  holes = int(np.clip(round(rng.uniform(*hole_range) * pixels), lowest, highest))
  # A stable sort on the flipped field breaks ties between equal values the
  # same way everywhere.
  order = np.argsort(-field.ravel(), kind="stable")
  mask = np.zeros(pixels, np.uint8)
  mask[order[:holes]] = HOLE
  return mask.reshape(height, width)


_GENERATORS = {"random_shape": random_shape_mask, "irregular": irregular_mask}


def generate(kind, rng, size, hole_range=FULL_RANGE):
  """Draws one mask of family `kind` (one of KINDS)."""
  if kind not in _GENERATORS:
    raise ValueError(f"mask kind {kind!r} is not one of {KINDS}")
  return _GENERATORS[kind](rng, size, hole_range)


def random_mask(rng, size, hole_range=FULL_RANGE, random_shape_fraction=0.6):
  """A mask of either family (random-shape with `random_shape_fraction`)."""
  kind = KINDS[0] if rng.uniform() < random_shape_fraction else KINDS[1]
  return generate(kind, rng, size, hole_range)


def stratified_bins(count):
  """Bin index for each of `count` test masks, equal counts per bin.

  Raises:
    ValueError: if `count` is not a multiple of the number of bins.
  """
  bins = len(HOLE_RATIO_BINS)
  if count % bins:
    raise ValueError(
        f"a stratified set of {count} masks cannot have equal counts in {bins} "
        f"bins: use a multiple of {bins}")
  return [i % bins for i in range(count)]


def plan(num_masks, test_fraction=0.2, random_shape_fraction=0.6):
  """Which masks the Beam job draws: (split, kind, index, hole_range) tuples.

  Each family gets `random_shape_fraction` (or the rest) of `num_masks`; of
  each family, a multiple of the bin count close to `test_fraction` goes to the
  stratified test split, the rest to training with ratios over FULL_RANGE.
  `index` counts within (split, kind) and seeds the mask.
  """
  if num_masks < 0:
    raise ValueError(f"--num_masks {num_masks} must be >= 0")
  if not 0 <= test_fraction < 1:
    raise ValueError(f"mask test fraction {test_fraction} must be in [0, 1)")
  if not 0 <= random_shape_fraction <= 1:
    raise ValueError(
        f"--random_shape_fraction {random_shape_fraction} must be in [0, 1]")
  bins = len(HOLE_RATIO_BINS)
  random_shape = int(round(num_masks * random_shape_fraction))
  specs = []
  for kind, total in zip(KINDS, (random_shape, num_masks - random_shape)):
    test = int(round(total * test_fraction / bins)) * bins
    test = min(test, total // bins * bins)
    specs += [("test", kind, i, HOLE_RATIO_BINS[b])
              for i, b in enumerate(stratified_bins(test))]
    specs += [("train", kind, i, FULL_RANGE) for i in range(total - test)]
  return specs
