r"""Trains LBAM's generator and critic with WGAN-GP: python -m lbam_tf.train.

  python -m lbam_tf.train --data_dir out/data --model_dir runs/lbam
  python -m lbam_tf.train --preset cpu_small --data_dir out/data \
      --model_dir runs/small --train_steps 300 --vgg_weights none

The command line of `lbam_tf.training.loop.train`: the flags (defaults from
`train_config.TrainConfig`) over a preset (`train_config.PRESETS`) make the
run's config. What a model_dir holds, resuming, SIGTERM, NaN stops and
multi-worker runs: see `lbam_tf.training.loop`. Exit status: 0 done, 1 refused
before starting or stopped at a NaN / Inf (the last good checkpoint kept),
143 stopped by SIGTERM after saving.
"""

import dataclasses
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import app, flags, logging  # noqa: E402

from lbam_tf import cli  # noqa: E402
from lbam_tf.training import config as train_config  # noqa: E402

FLAGS = flags.FLAGS
_DEFAULT = cli.defaults(train_config.TrainConfig)


def define_flags():
  """Declares the command line; only when run as a program, so that importing
  this module cannot clash with other modules' flags. Defaults are
  TrainConfig's, so the command line and a config built in code agree."""
  flags.DEFINE_string("data_dir", None,
                      "output_dir of `python -m pipeline.preprocess` "
                      "(TFRecords).")
  flags.DEFINE_string("model_dir", None,
                      "Where checkpoints, config.json, TensorBoard logs and "
                      "generator.weights.h5 go; an existing one is resumed.")
  flags.DEFINE_enum("preset", _DEFAULT["preset"], list(train_config.PRESETS),
                    "Bundle of defaults: 'paper' (256 crops, batch 48), "
                    "'cpu_small' (128 crops, batch 4, one device, frequent "
                    "logs) or 'cpu_fast' (cpu_small's shape with "
                    "neutral_attention starting weights, an L1 warm-up and "
                    "a higher generator rate: learns within minutes on a "
                    "CPU). Flags given explicitly win over the preset.")
  flags.DEFINE_integer("crop_size", _DEFAULT["crop_size"],
                       "Training crop side, a multiple of 128, at most the "
                       "data_dir's stored crop size.")
  flags.DEFINE_integer("batch_size", _DEFAULT["batch_size"],
                       "Global batch: split evenly over the replicas.")
  flags.DEFINE_integer("train_steps", _DEFAULT["train_steps"],
                       "Generator updates to train in total (a resumed run "
                       "counts the restored ones). 0: use --epochs.")
  flags.DEFINE_float("epochs", _DEFAULT["epochs"],
                     "Passes over the train split (from manifest.json's "
                     "count), used when --train_steps is 0.")
  flags.DEFINE_float("max_minutes", _DEFAULT["max_minutes"],
                     "Wall-clock budget of the run, start-up included: at "
                     "the first step end past it, save a checkpoint and "
                     "generator.weights.h5 and stop. 0: no budget. Give a "
                     "large --train_steps to train for this long.")
  flags.DEFINE_integer("warmup_steps", _DEFAULT["warmup_steps"],
                       "First steps that train the generator on the L1 hole "
                       "and valid terms alone (no critic, no VGG; Iizuka et "
                       "al. 2017), before the full loss.")
  flags.DEFINE_string("initialization", _DEFAULT["initialization"],
                      "Generator starting weights: 'reference' (the authors' "
                      "N(0, 0.02); the fresh generator outputs flat grey) or "
                      "'neutral_attention' (attention maps start at their "
                      "peak on known pixels, He-scaled feature filters).")
  flags.DEFINE_float("generator_lr", _DEFAULT["generator_lr"],
                     "Generator Adam learning rate.")
  flags.DEFINE_float("generator_beta1", _DEFAULT["generator_beta1"],
                     "Generator Adam beta_1.")
  flags.DEFINE_float("generator_beta2", _DEFAULT["generator_beta2"],
                     "Generator Adam beta_2.")
  flags.DEFINE_float("critic_lr", _DEFAULT["critic_lr"],
                     "Critic Adam learning rate.")
  flags.DEFINE_float("critic_beta1", _DEFAULT["critic_beta1"],
                     "Critic Adam beta_1.")
  flags.DEFINE_float("critic_beta2", _DEFAULT["critic_beta2"],
                     "Critic Adam beta_2.")
  flags.DEFINE_integer("critic_steps", _DEFAULT["critic_steps"],
                       "Critic updates per generator update (reference: 1).")
  flags.DEFINE_enum("loss_preset", _DEFAULT["loss_preset"],
                    list(train_config.LOSS_PRESETS),
                    "Loss weights: 'reference' (authors' code: hole 6, "
                    "valid 1, perceptual 0.01 L1, style 120, adversarial "
                    "0.1) or 'paper' (eq. 18: L1 1, perceptual 0.05 squared "
                    "L2, style 120, adversarial 0.1). The *_weight flags "
                    "override single terms.")
  flags.DEFINE_float("hole_weight", _DEFAULT["hole_weight"],
                     "L1 weight on hole pixels.")
  flags.DEFINE_float("valid_weight", _DEFAULT["valid_weight"],
                     "L1 weight on known pixels.")
  flags.DEFINE_float("perceptual_weight", _DEFAULT["perceptual_weight"],
                     "VGG pool1-3 feature weight.")
  flags.DEFINE_float("style_weight", _DEFAULT["style_weight"],
                     "Gram-matrix style weight.")
  flags.DEFINE_float("adversarial_weight", _DEFAULT["adversarial_weight"],
                     "Generator -E[D(fake)] weight.")
  flags.DEFINE_float("gradient_penalty_weight",
                     _DEFAULT["gradient_penalty_weight"], 
                     "WGAN-GP lambda (paper: 10).")
  flags.DEFINE_enum("perceptual_norm", _DEFAULT["perceptual_norm"],
                    ["l1", "l2"], 
                    "Perceptual distance: l1 (reference) or l2 (eq. 15).")
  flags.DEFINE_string("variant", _DEFAULT["variant"],
                      "Generator layout: head (released) or original_bn.")
  flags.DEFINE_string("ablation", _DEFAULT["ablation"],
                      "Paper Table 2 ablation: none, unlearned, forward_only, "
                      "sigmoid, leaky_relu, relu, mask3x3.")
  flags.DEFINE_string("critic_normalization", _DEFAULT["critic_normalization"],
                      "Critic normalisation: layer (suits the gradient "
                      "penalty) or batch (the reference's BatchNorm).")
  flags.DEFINE_string("vgg_weights", _DEFAULT["vgg_weights"],
                      "VGG16 for the perceptual and style losses: 'imagenet' "
                      "(Keras download), a local Keras VGG16 .h5 file, or "
                      "'none' (random VGG: smoke runs only).")
  flags.DEFINE_integer("seed", _DEFAULT["seed"],
                       "Seeds weights, data order and the GP.")
  flags.DEFINE_bool("jit_compile", _DEFAULT["jit_compile"],
                    "XLA-compile the train step.")
  flags.DEFINE_enum("strategy", _DEFAULT["strategy"],
                    list(train_config.STRATEGIES), 
                    "mirrored: all local GPUs, else the CPU (split by "
                    "--cpu_replicas); multi_worker: the cluster in the "
                    "TF_CONFIG environment variable, each worker's GPUs (else "
                    "its CPU), --model_dir on storage every worker reads; "
                    "one_device: the first GPU, else the CPU.")
  flags.DEFINE_integer("cpu_replicas", _DEFAULT["cpu_replicas"],
                       "Split the CPU into this many logical devices for the "
                       "mirrored strategy (exercises it without GPUs).")
  flags.DEFINE_bool("mixed_precision", _DEFAULT["mixed_precision"],
                    "mixed_float16 on GPU, mixed_bfloat16 on CPU.")
  flags.DEFINE_integer("checkpoint_every", _DEFAULT["checkpoint_every"],
                       "Steps between checkpoints.")
  flags.DEFINE_integer("max_to_keep", _DEFAULT["max_to_keep"],
                       "Checkpoints kept in model_dir.")
  flags.DEFINE_integer("log_every", _DEFAULT["log_every"],
                       "Steps per Keras epoch: losses are averaged over it, "
                       "shown by the progress bar and written to TensorBoard.")
  flags.DEFINE_integer("image_every", _DEFAULT["image_every"],
                       "Steps between TensorBoard images and attention maps.")
  flags.DEFINE_integer("val_every", _DEFAULT["val_every"],
                       "Steps between validation runs.")
  flags.DEFINE_integer("val_steps", _DEFAULT["val_steps"],
                       "Validation batches (val split, test masks); 0: none.")


def config_from_flags():
  """The preset's config with every flag given on the command line."""
  given = {field.name: FLAGS[field.name].value
           for field in dataclasses.fields(train_config.TrainConfig)
           if FLAGS[field.name].present}
  return train_config.PRESETS[FLAGS.preset](**given)


def main(argv):
  del argv
  config = config_from_flags()
  try:
    config.check()
  except ValueError as error:
    raise app.UsageError(str(error)) from None
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
  define_flags()
  app.run(main)
