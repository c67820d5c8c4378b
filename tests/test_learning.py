"""Training learns: a short run on fixed crops beats a flat fill.

The real path end to end, in-process: crops of the sample photos and
generated masks written as TFRecords by `lbam_tf.data.records`'s writer, read back by
`records.make_dataset` (training mode), trained by `LbamGan.fit` under the fast
recipe's starting weights and warm-up. Judged on the same crops with the
masks as this test knows them (independently of the data path): the logged
hole loss must fall by a clear margin, and the composite must beat filling
each hole with the image's mean known colour. It fails when gradients stop
reaching the generator, or when a mask's polarity is flipped anywhere between
the files and the loss.
"""

import glob
import os

import cv2
import keras
import numpy as np
import pytest

from lbam_tf import seeding
from lbam_tf.data import masks
from lbam_tf.data import records
from lbam_tf.evaluation import metrics
from lbam_tf.images import ops as image_ops
from lbam_tf.model import critic
from lbam_tf.model import generator
from lbam_tf.model import initialization
from lbam_tf.model import vgg
from lbam_tf.training import gan
from lbam_tf.training import losses

pytestmark = pytest.mark.heavy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROP = 128
CROPS = 8
BATCH = 4
STEPS = 80
# At 1e-3 to the end, the PSNR of the last weights swung by 1-2 dB from one
# 10-step epoch to the next, and ended below the flat fill's + 0.25 dB in
# some runs (other data orders, batch 2 in the suite); the last COOL_STEPS at
# a tenth of the rate settle it (1.26 dB above in a run of the suite's data
# order).
COOL_STEPS = 20


def _crops():
  """CROPS fixed 128x128 crops of the sample photos, RGB uint8."""
  out = []
  for path in sorted(glob.glob(os.path.join(ROOT, "examples/images/*.jpg"))):
    image = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    image = cv2.resize(image, (2 * CROP, 2 * CROP),
                       interpolation=cv2.INTER_AREA)
    out += [image[:CROP, :CROP], image[CROP:, CROP:]]
  return out[:CROPS]


def _masks():
  """CROPS generated masks (255 = hole) with 15-35 % holes."""
  rng = seeding.seeded_rng(7, "learning-test")
  return [masks.random_mask(rng, (CROP, CROP), hole_range=(0.15, 0.35))
          for _ in range(CROPS)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("learning"))
  images, holes = _crops(), _masks()
  records.write_tfrecords(
      os.path.join(root, records.shard_name("images", "train", 0, 1)),
      [records.image_example(im, f"crop/{i}") for i, im in enumerate(images)])
  records.write_tfrecords(
      os.path.join(root, records.shard_name("masks", "train", 0, 1)),
      [records.mask_example(m, f"mask/{i}") for i, m in enumerate(holes)])
  dataset = records.make_dataset(root, "train", batch_size=BATCH,
                                 crop_size=CROP, training=True, seed=0)

  keras.utils.set_random_seed(0)
  model_generator = generator.build_generator()
  initialization.apply(model_generator, "neutral_attention", seed=0)
  model = gan.LbamGan(model_generator, critic.build_critic(),
                      vgg.build_feature_extractor("none"),
                      losses.PRESETS["reference"], global_batch_size=BATCH)
  rate = keras.optimizers.schedules.PiecewiseConstantDecay(
      [STEPS - COOL_STEPS], [1e-3, 1e-4])
  model.compile(gan.make_optimizer(rate, 0.5, 0.9),
                gan.make_optimizer(1e-5, 0.0, 0.9))
  model.build_optimizers()
  model.reconstruction_only = True
  history = model.fit(dataset, steps_per_epoch=10, epochs=STEPS // 10,
                      verbose=0)

  image = np.stack(images).astype(np.float32) / 255.0
  known = 1.0 - np.stack(holes)[..., None].astype(np.float32) / 255.0
  output = model_generator({"image": image, "mask": known}, training=False)
  composite = np.asarray(image_ops.composite(output, image, known))
  # The flat fill: each hole gets its image's mean known colour.
  mean_known = ((image * known).sum(axis=(1, 2), keepdims=True)
                / known.sum(axis=(1, 2), keepdims=True))
  flat = image * known + mean_known * (1.0 - known)
  return {"hole": history.history["hole"], "image": image, "known": known,
          "composite": composite, "flat": flat}


def test_hole_loss_falls(trained):
  first, last = trained["hole"][0], trained["hole"][-1]
  assert last < 0.7 * first, f"hole L1 {first:.4f} -> {last:.4f}"


def test_beats_a_flat_fill(trained):
  ours = float(np.mean(metrics.psnr(trained["composite"], trained["image"])))
  flat = float(np.mean(metrics.psnr(trained["flat"], trained["image"])))
  assert ours > flat + 0.25, f"PSNR ours {ours:.2f} dB, flat fill {flat:.2f} dB"


def test_holes_are_not_flat(trained):
  hole = trained["known"][..., 0] < 0.5
  values = trained["composite"][hole]
  assert values.std() > 0.05, f"hole pixels std {values.std():.4f}"
