r"""Trains LBAM's generator and critic with WGAN-GP: python -m lbam_tf.train.

  python -m lbam_tf.train --data_dir out/data --model_dir runs/lbam
  python -m lbam_tf.train --preset cpu_small --data_dir out/data \
      --model_dir runs/small --train_steps 300 --vgg_weights none

The command line of `lbam_tf.training.loop.train`: the flags (the fields of
`train_config.TrainConfig`, with their defaults and help) over a preset
(`train_config.PRESETS`) make the run's config. What a model_dir holds,
resuming, SIGTERM, NaN stops and multi-worker runs: see
`lbam_tf.training.loop`. Exit status: 0 done, 1 refused before starting or
stopped at a NaN / Inf (the last good checkpoint kept), 143 stopped by
SIGTERM after saving.
"""

import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import app, flags, logging  # noqa: E402

from lbam_tf import cli  # noqa: E402
from lbam_tf.training import config as train_config  # noqa: E402

FLAGS = flags.FLAGS


def main(argv):
  del argv
  # The preset's config with every flag given on the command line, checked.
  config = cli.from_flags(train_config.TrainConfig,
                          preset=train_config.PRESETS[FLAGS.preset])
  from lbam_tf.training import monitor  # after the flags: TF loads slowly
  from lbam_tf.training import loop  # after the flags: TF loads slowly
  try:
    loop.train(config)
  except ValueError as error:
    # Refused for this data, model_dir or machine (the flags parsed): the
    # message says what to do, the flags' help would bury it.
    logging.error("%s", error)
    sys.exit(1)
  except monitor.Terminated as stop:
    logging.warning("%s; rerun the same command to resume", stop)
    sys.exit(128 + signal.SIGTERM)
  except FloatingPointError as error:
    logging.error("%s", error)
    sys.exit(1)


if __name__ == "__main__":
  cli.define_flags(train_config.TrainConfig)
  app.run(main)
