r"""The paper's Table 1 for any model, with PatchMatch, Telea and Navier-Stokes
beside it: python -m lbam_tf.evaluate.

Pairs test images with masks deterministically (same seed, same pairs, every
hole-ratio bin the same share), inpaints every pair with the model(s) and the
classical baselines in the same run, and writes per-bin PSNR, SSIM and mean
L1 (%) to --output_dir (results.md/.json/.csv, grid and PSNR PNGs). FID only
with --inception_weights; LPIPS is not built; neither is faked. Pairing,
preparation, metrics and outputs: README.md, "Evaluation".

The work is done by the package `lbam_tf.evaluation` (`EvalConfig`,
`run(config)`); this module is its command line only.

  python -m lbam_tf.evaluate --model runs/cpu_small --data_dir data/samples \
      --output_dir eval/cpu_small
  python -m lbam_tf.evaluate --ablation runs/full,runs/sigmoid \
      --image_dir photos/ --mask_dir nvidia_masks/ --mask_polarity black

At high resolution (--eval_size N: whole photos, long side N; masks drawn at
each photo's size unless --mask_dir is given), once per --hd_strategy with
the same seed, so that the strategies are compared on the same pairs:

  python -m lbam_tf.evaluate --model runs/full --image_dir photos/ \
      --eval_size 2000 --hd_strategy crop --output_dir eval/hd_crop
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402

from lbam_tf import cli  # noqa: E402
from lbam_tf.evaluation import config as config_lib  # noqa: E402
from lbam_tf.evaluation import runner  # noqa: E402


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(
        f"unexpected arguments {argv[1:]}: every input is a --flag")
  config = cli.from_flags(config_lib.EvalConfig)
  runner.run(config)
  with open(os.path.join(config.output_dir, "results.md")) as f:
    sys.stdout.write(f.read())


if __name__ == "__main__":
  cli.define_flags(config_lib.EvalConfig)
  app.run(main)
