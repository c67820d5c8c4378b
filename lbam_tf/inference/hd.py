"""What the generator runs on for a photo of any size: the high-resolution
strategies, in the graph.

- `original`: the whole frame (padded to a multiple of 128).
- `resize`: the photo with its long side scaled to at most `resize_limit`;
  the fill is scaled back and only hole pixels are written.
- `crop` (the default): the holes grouped into boxes (connected hole regions,
  each box grown by `crop_margin`, overlapping boxes merged), each box scaled
  to a long side of at most `resize_limit`, run and scaled back, only its hole
  pixels written. A photo whose long side is at most `crop_trigger` runs
  whole, as `original`.

Known pixels are never written, so they come back bit-exact under every
strategy. Why and what it costs: BUILD_NOTES.md, "Serving".
"""

import dataclasses

import tensorflow as tf

from lbam_tf import cli
from lbam_tf.images import ops as image_ops

STRATEGIES = ("original", "resize", "crop")
DEFAULT_STRATEGY = "crop"
#: IOPaint's defaults for its crop and resize strategies.
DEFAULT_CROP_MARGIN = 128
DEFAULT_RESIZE_LIMIT = 1280
DEFAULT_CROP_TRIGGER = 800
#: Holes are grouped on a grid of CELL x CELL pixels: boxes are whole cells.
CELL = 16
#: More separate hole regions than this are one box (their bounding box,
#: scaled down like any box): the pairwise merge then stays small.
MAX_BOXES = 256


def check_options(hd_strategy, crop_margin, resize_limit, crop_trigger):
  """Raises ValueError naming a value no strategy can use, and the remedy."""
  if hd_strategy not in STRATEGIES:
    raise ValueError(f"hd_strategy {hd_strategy!r} is not one of "
                     f"{STRATEGIES}")
  if crop_margin < 0:
    raise ValueError(f"crop_margin {crop_margin} is negative: give the "
                     "pixels of context around each hole, 0 or more")
  for name, value in (("resize_limit", resize_limit),
                      ("crop_trigger", crop_trigger)):
    if value < 1:
      raise ValueError(f"{name} {value} is not positive: give a side in "
                       "pixels, at least 1")


@dataclasses.dataclass
class HdOptions:
  """--hd_strategy, --crop_margin, --resize_limit and --crop_trigger, alike in
  the export (its signatures' defaults) and the inpaint CLI (per call)."""
  hd_strategy: str | None = cli.option(
      None, "How a photo larger than the generator's sweet spot is run: crop "
      "(around the holes), resize (the whole photo scaled down) or original "
      "(the whole frame). Default: the export's own; crop for a new export "
      "or a model that is not an export.", choices=STRATEGIES)
  crop_margin: int | None = cli.option(
      None, "crop: pixels of context kept around each group of holes. "
      f"Default: the export's own, else {DEFAULT_CROP_MARGIN}.")
  resize_limit: int | None = cli.option(
      None, "resize and crop: the longest side the generator runs on; "
      "larger photos or crops are scaled down to it and the fill scaled "
      f"back. Default: the export's own, else {DEFAULT_RESIZE_LIMIT}.")
  crop_trigger: int | None = cli.option(
      None, "crop: photos whose long side is at most this run whole. "
      f"Default: the export's own, else {DEFAULT_CROP_TRIGGER}.")

  def hd_given(self):
    """{name: value} of the options given (not None)."""
    return {field.name: getattr(self, field.name)
            for field in dataclasses.fields(HdOptions)
            if getattr(self, field.name) is not None}

  def hd_resolved(self):
    """All four, the defaults filling what was not given."""
    return {"hd_strategy": DEFAULT_STRATEGY,
            "crop_margin": DEFAULT_CROP_MARGIN,
            "resize_limit": DEFAULT_RESIZE_LIMIT,
            "crop_trigger": DEFAULT_CROP_TRIGGER, **self.hd_given()}

  def check_hd(self):
    """Raises ValueError for a value no strategy can use, naming its flag."""
    check_flags(**self.hd_resolved())


def check_flags(**options):
  """`check_options` for command lines: the message names the flag."""
  try:
    check_options(**options)
  except ValueError as error:
    raise ValueError(f"--{error}") from None


def generator_size(height, width):
  """The padded (height, width) the generator runs on for that size."""
  return (image_ops.padded_size(height), image_ops.padded_size(width))


def scaled_size(height, width, limit):
  """(height, width) scaled so that the long side is at most `limit`."""
  long_side = tf.maximum(height, width)
  scale = tf.minimum(1.0, tf.cast(limit, tf.float32)
                     / tf.cast(long_side, tf.float32))

  def side(value):
    return tf.maximum(1, tf.cast(tf.round(tf.cast(value, tf.float32) * scale),
                                 tf.int32))

  return side(height), side(width)


def _label_regions(cells):
  """Connected regions (8-neighbour) of a bool grid: float labels, 0 outside.

  Each cell starts with its own label and takes its neighbours' largest until
  nothing changes; the grid is small (photo / CELL), so this is cheap.
  """
  shape = tf.shape(cells)
  inside = tf.cast(cells, tf.float32)
  labels = tf.reshape(tf.cast(tf.range(1, shape[0] * shape[1] + 1),
                              tf.float32), shape) * inside

  def spread(labels, _):
    grown = tf.nn.max_pool2d(labels[None, ..., None], 3, 1, "SAME")[0, ..., 0]
    grown = grown * inside
    return grown, tf.reduce_any(grown != labels)

  labels, _ = tf.while_loop(lambda _, changed: changed, spread,
                            [labels, tf.constant(True)])
  return labels


def _merge_overlapping(boxes):
  """Merges int32 [N, 4] (y0, x0, y1, x1) boxes that overlap, until none do."""

  def merge(boxes, _):
    y0, x0, y1, x1 = tf.unstack(boxes, axis=1)
    overlap = ((y0[:, None] < y1[None]) & (y0[None] < y1[:, None])
               & (x0[:, None] < x1[None]) & (x0[None] < x1[:, None]))
    reach = overlap

    def close(reach, _):
      # Boxes reached in two steps (N <= MAX_BOXES, so N^3 stays small).
      wider = tf.reduce_any(reach[:, :, None] & reach[None, :, :], axis=1)
      return wider, tf.reduce_any(wider != reach)

    reach, _ = tf.while_loop(lambda _, changed: changed, close,
                             [reach, tf.constant(True)])
    group = tf.argmax(tf.cast(reach, tf.int32), axis=1,
                      output_type=tf.int32)  # its first member
    _, group = tf.unique(group)
    count = tf.reduce_max(group) + 1
    merged = tf.stack([tf.math.unsorted_segment_min(y0, group, count),
                       tf.math.unsorted_segment_min(x0, group, count),
                       tf.math.unsorted_segment_max(y1, group, count),
                       tf.math.unsorted_segment_max(x1, group, count)], axis=1)
    return merged, tf.shape(merged)[0] < tf.shape(boxes)[0]

  boxes, _ = tf.while_loop(
      lambda _, changed: changed, merge, [boxes, tf.constant(True)],
      shape_invariants=[tf.TensorShape([None, 4]), tf.TensorShape([])])
  return boxes


def hole_boxes(known_mask, crop_margin):
  """int32 [N, 4] (y0, x0, y1, x1) boxes that hold every hole pixel.

  Args:
    known_mask: float32 [H, W, 1], 1 = known.
    crop_margin: pixels of context added on every side, clamped to the frame.

  Returns:
    Disjoint boxes (none without holes), [0, 4] when there is no hole.
  """
  height, width = tf.shape(known_mask)[0], tf.shape(known_mask)[1]
  hole = 1.0 - tf.cast(known_mask > 0.5, tf.float32)
  # Padded at the bottom and right, so that cell (r, c) is pixels
  # [r * CELL, (r + 1) * CELL) x [c * CELL, (c + 1) * CELL).
  hole = tf.pad(hole, [[0, -height % CELL], [0, -width % CELL], [0, 0]])
  cells = tf.nn.max_pool2d(hole[None], CELL, CELL, "VALID")[0, ..., 0] > 0.5
  labels = _label_regions(cells)
  where = tf.where(cells)
  rows, cols = tf.cast(where[:, 0], tf.int32), tf.cast(where[:, 1], tf.int32)
  distinct, region = tf.unique(tf.gather_nd(labels, where))
  count = tf.size(distinct)
  margin = tf.cast(crop_margin, tf.int32)

  def region_boxes():
    return tf.stack([
        tf.math.unsorted_segment_min(rows, region, count) * CELL - margin,
        tf.math.unsorted_segment_min(cols, region, count) * CELL - margin,
        (tf.math.unsorted_segment_max(rows, region, count) + 1) * CELL
        + margin,
        (tf.math.unsorted_segment_max(cols, region, count) + 1) * CELL
        + margin], axis=1)

  def one_box():
    return tf.stack([[tf.reduce_min(rows) * CELL - margin,
                      tf.reduce_min(cols) * CELL - margin,
                      (tf.reduce_max(rows) + 1) * CELL + margin,
                      (tf.reduce_max(cols) + 1) * CELL + margin]])

  boxes = tf.cond(count > MAX_BOXES, one_box, region_boxes)
  boxes = tf.clip_by_value(boxes, 0, tf.stack([height, width,
                                               height, width])[None])
  return tf.cond(count > 0, lambda: _merge_overlapping(boxes),
                 lambda: tf.zeros([0, 4], tf.int32))


def _whole_frame(known_mask):
  height, width = tf.shape(known_mask)[0], tf.shape(known_mask)[1]
  return tf.stack([[0, 0, height, width]])


def runs_whole(height, width, strategy, resize_limit, crop_trigger):
  """Whether the strategy runs this photo as `original` does."""
  long_side = tf.maximum(height, width)
  return tf.logical_or(
      strategy == "original",
      tf.logical_or(
          tf.logical_and(strategy == "resize", long_side <= resize_limit),
          tf.logical_and(strategy == "crop", long_side <= crop_trigger)))


def plan_boxes(known_mask, strategy, crop_margin, resize_limit, crop_trigger):
  """The boxes the strategy runs the generator on, int32 [N, 4], and each
  one's scaled (height, width), int32 [N, 2], before padding to 128."""
  height, width = tf.shape(known_mask)[0], tf.shape(known_mask)[1]
  whole = runs_whole(height, width, strategy, resize_limit, crop_trigger)
  boxes = tf.cond(
      tf.logical_or(whole, strategy == "resize"),
      lambda: _whole_frame(known_mask),
      lambda: hole_boxes(known_mask, crop_margin))
  limit = tf.where(whole, tf.maximum(height, width), resize_limit)
  sizes = tf.stack(scaled_size(boxes[:, 2] - boxes[:, 0],
                               boxes[:, 3] - boxes[:, 1], limit), axis=1)
  return boxes, sizes


@tf.function(input_signature=[
    tf.TensorSpec([None, None, 1], tf.float32),
    tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int32),
    tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)],
             autograph=False)
def plan(known_mask, strategy, crop_margin, resize_limit, crop_trigger):
  """(boxes int32 [N, 4], generator input sizes int32 [N, 2]) for a photo's
  mask: what `fill` runs, without running it (benchmarks, tests)."""
  boxes, sizes = plan_boxes(known_mask, strategy, crop_margin, resize_limit,
                            crop_trigger)
  return boxes, tf.stack(generator_size(sizes[:, 0], sizes[:, 1]), axis=1)


def _resized(image, size, method):
  """`image` [H, W, C] at `size`, untouched when it already is that size."""
  same = tf.reduce_all(tf.shape(image)[:2] == size)
  return tf.cond(same, lambda: image,
                 lambda: tf.image.resize(image, size, method=method,
                                         antialias=True))


def fill(inpaint, image, known_mask, boxes, sizes):
  """The photo with every box's holes filled by `inpaint`.

  Args:
    inpaint: (image [1, h, w, 3], mask [1, h, w, 1]) -> composited
      [1, h, w, 3], e.g. `InpaintModule._inpaint`.
    image: float32 [H, W, 3].
    known_mask: float32 [H, W, 1], 1 = known.
    boxes, sizes: from `plan_boxes`.

  Returns:
    float32 [H, W, 3]: `image` at known pixels, bit-exact; each box's holes
    from the generator run on that box at its size, scaled back (bicubic).
  """
  known = known_mask > 0.5

  def one_box(i, result):
    y0, x0, y1, x1 = tf.unstack(boxes[i])
    crop = image[y0:y1, x0:x1]
    crop_known = known[y0:y1, x0:x1]
    hole = 1.0 - tf.cast(crop_known, tf.float32)
    # Area downscaling: a small pixel touching any hole is a hole.
    small_hole = _resized(hole, sizes[i], "area")
    small_known = tf.cast(small_hole <= 0.0, tf.float32)
    small = _resized(crop, sizes[i], "area")
    filled = inpaint(small[None], small_known[None])[0]
    back = tf.clip_by_value(
        _resized(filled, tf.shape(crop)[:2], "bicubic"), 0.0, 1.0)
    region = tf.where(tf.broadcast_to(crop_known, tf.shape(crop)), crop, back)
    return i + 1, tf.raw_ops.TensorStridedSliceUpdate(
        input=result, begin=tf.stack([y0, x0, 0]), end=tf.stack([y1, x1, 3]),
        strides=[1, 1, 1], value=region)

  _, result = tf.while_loop(lambda i, _: i < tf.shape(boxes)[0], one_box,
                            [tf.constant(0), image])
  return result
