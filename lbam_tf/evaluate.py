r"""The paper's Table 1 for any model, with PatchMatch, Telea and Navier-Stokes
beside it.

Pairs test images with masks deterministically (the seed shuffles both, the
i-th image gets a mask of bin i mod 6, so every hole-ratio bin gets the same
share), inpaints every pair with the model(s) and the classical baselines in
the same run, and reports per-bin PSNR, SSIM and mean L1 (%) of the composited
8-bit output at the crop size (definitions in `lbam_tf.evaluation.metrics` and README.md).

Writes to --output_dir: results.md (the table, the model, the data and the
flags), results.json (the table plus per-pair metrics), results.csv (one row
per method and bin), grid_bin<k>.png (input, mask, ours, Telea, PatchMatch,
ground truth for a few pairs of each bin) and psnr_per_bin.png. FID only when an
InceptionV3 weights file is given; LPIPS is not built. Neither is faked.

The work is done by the package `lbam_tf.evaluation` (`EvalConfig`,
`run(config)`); this module is its command line only.

Example:

  python -m lbam_tf.evaluate --model runs/cpu_small --data_dir data/samples \
      --output_dir eval/cpu_small
  python -m lbam_tf.evaluate --ablation runs/full,runs/sigmoid \
      --image_dir photos/ --mask_dir nvidia_masks/ --mask_polarity black
"""

import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from lbam_tf.evaluation import baselines  # noqa: E402
from lbam_tf.evaluation import config as config_lib  # noqa: E402
from lbam_tf.evaluation import runner  # noqa: E402
from lbam_tf.images import polarity as polarity_rule

_DEFAULT = {
    field.name: field.default
    for field in dataclasses.fields(config_lib.EvalConfig)
}


def define_flags():
  """Declares the command line; only when run as a program, so that importing
  this module cannot clash with other modules' flags.

  Defaults are EvalConfig's, so the command line and a config built in code
  agree."""
  flags.DEFINE_string(
      "model", _DEFAULT["model"],
      "What to evaluate: a SavedModel directory with an `inpaint_tensor` "
      "signature (serving.export), a training model_dir, or a .weights.h5 / "
      ".keras / .pth / .npz file. Give this or --ablation.")
  flags.DEFINE_list(
      "ablation", _DEFAULT["ablation"],
      "Comma-separated model directories (or any --model kinds) evaluated "
      "side by side on the same pairs, one column each: the paper's Table 2. "
      "Replaces --model.")
  flags.DEFINE_string(
      "data_dir", _DEFAULT["data_dir"],
      "Output folder of `python -m pipeline.preprocess`: its test images and "
      "test masks are read. Give this or --image_dir with --mask_dir.")
  flags.DEFINE_enum(
      "split", _DEFAULT["split"], list(config_lib.SPLITS),
      "With --data_dir: the image split. Masks always come from the test "
      "masks.")
  flags.DEFINE_string(
      "image_dir", _DEFAULT["image_dir"],
      "A folder of ground-truth images (png, jpg, ...) instead of --data_dir.")
  flags.DEFINE_string(
      "mask_dir", _DEFAULT["mask_dir"],
      "A folder of mask images, paired with --image_dir images by the seed "
      "(not by name); masks outside the bins (0.01, 0.6] are dropped.")
  flags.DEFINE_enum(
      "mask_polarity", _DEFAULT["mask_polarity"], list(polarity_rule.POLARITIES),
      "Which colour marks holes in --mask_dir files: white (the reference "
      "code's and the pipeline's masks) or black (NVIDIA's irregular mask "
      "zip).")
  flags.DEFINE_string(
      "output_dir", _DEFAULT["output_dir"],
      "Folder (created) for results.md/.json/.csv and the PNGs.")
  flags.DEFINE_integer(
      "num_images", _DEFAULT["num_images"],
      "How many images to evaluate (0 = all). On 2 CPU cores the generator "
      "takes about 0.5 s per 256x256 image.")
  flags.DEFINE_integer(
      "seed", _DEFAULT["seed"],
      "Seed of the image-mask pairing: the same seed gives the same table.")
  flags.DEFINE_integer(
      "crop_size", _DEFAULT["crop_size"],
      "Images are resized (shorter side) and centre-cropped to this square "
      "size, masks resized to it (nearest); metrics are computed at this "
      "size. The paper uses 256.")
  flags.DEFINE_integer(
      "batch_size", _DEFAULT["batch_size"],
      "Pairs per generator call; lower it if memory runs out.")
  flags.DEFINE_integer("num_examples", _DEFAULT["num_examples"],
                       "Rows per bin in the grid PNGs.")
  flags.DEFINE_list(
      "baselines", list(_DEFAULT["baselines"]),
      "Classical methods scored beside the model(s), from "
      f"{list(baselines.METHODS)}. PatchMatch takes seconds per 256x256 image "
      "on a CPU; leave it out for quick runs.")
  flags.DEFINE_integer(
      "baseline_radius", _DEFAULT["baseline_radius"],
      "Neighbourhood radius in pixels for Telea and Navier-Stokes.")
  flags.DEFINE_string(
      "inception_weights", _DEFAULT["inception_weights"],
      "A Keras InceptionV3 weights file without the top (e.g. "
      "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5) to also "
      "report FID over all pairs. Without it FID is skipped (it cannot be "
      "downloaded here).")


FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(
        f"unexpected arguments {argv[1:]}: every input is a --flag")
  config = config_lib.EvalConfig(
      **{
          field.name: FLAGS[field.name].value
          for field in dataclasses.fields(config_lib.EvalConfig)
      })
  try:
    config.check()
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  runner.run(config)
  with open(os.path.join(config.output_dir, "results.md")) as f:
    sys.stdout.write(f.read())


if __name__ == "__main__":
  define_flags()
  app.run(main)
