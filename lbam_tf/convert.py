"""Converts the authors' PyTorch checkpoint to Keras weights, and back.

Convert the released checkpoint once:

    python -m lbam_tf.convert --input LBAM_G_500.pth \
        --output pretrained/lbam.weights.h5

which writes `pretrained/config.json` (variant, ablation) beside it for
`lbam_tf.weights.model_io.load_generator`. `--to_reference` goes the other
way, from anything `load_generator` accepts to an `.npz` of reference names.

This module is the command line; the names, layouts and tables are
`lbam_tf.weights.reference_names`, which `model_io` uses too:

    generator = reference_names.generator_from_torch_state_dict(
        reference_names.load_state_dict_file("LBAM_G_500.pth"))  # no PyTorch
"""

import dataclasses
import os

import numpy as np
from absl import app

from lbam_tf import cli
from lbam_tf.model import generator as generator_lib
from lbam_tf.weights import model_io
from lbam_tf.weights import reference_names


@dataclasses.dataclass
class Config:
  """One conversion, as plain values (the flags, or a test's choice)."""
  input: str | None = cli.option(
      None, "Reference checkpoint to convert: a .pth written by torch.save "
      "(read without PyTorch) or an .npz of the same tensors, e.g. the "
      "authors' LBAM_G_500.pth. With --to_reference: any model "
      "lbam_tf.weights.model_io loads (a training model_dir, .weights.h5, "
      ".keras).", required=True)
  output: str | None = cli.option(
      None, "Where to write: a .weights.h5 file (a config.json with the "
      "detected variant and ablation is written beside it), or an .npz of "
      "reference names with --to_reference.", required=True)
  to_reference: bool = cli.option(
      False, "Convert the other way: Keras weights -> .npz of the "
      "reference's PyTorch names and layouts (load it in PyTorch with "
      "{k: torch.from_numpy(v) for k, v in np.load(path).items()}).")
  ablation: str | None = cli.option(
      None, "Override the ablation detected from the keys; needed only for "
      "the 'sigmoid', 'leaky_relu' and 'relu' ablations, whose weights look "
      "the same.", choices=generator_lib.ABLATIONS)

  def check(self):
    """Raises ValueError naming the bad value and what to do instead."""
    for name in ("input", "output"):
      if not getattr(self, name):
        raise ValueError(f"--{name} is required")
    if self.to_reference and not self.output.endswith(".npz"):
      raise ValueError(
          f"--output {self.output} must end in .npz with --to_reference")
    if not self.to_reference and not self.output.endswith(".weights.h5"):
      raise ValueError(
          f"--output {self.output} must end in .weights.h5 (Keras weights)")
    if self.ablation is not None and (
        self.ablation not in generator_lib.ABLATIONS):
      raise ValueError(
          f"--ablation {self.ablation!r} is not one of "
          f"{generator_lib.ABLATIONS}")


def run(config):
  """Converts `config.input` into `config.output`; returns what it wrote.

  Raises:
    ValueError: the input is not a checkpoint of the generator, or (to
      Keras) a config.json beside the output names another architecture.
  """
  if config.to_reference:
    generator = model_io.load_generator(config.input)
    np.savez(config.output,
             **reference_names.generator_to_torch_state_dict(generator))
    options = reference_names.generator_options(generator)
    return f"wrote {config.output} ({options})"
  generator = reference_names.generator_from_torch_state_dict(
      reference_names.load_state_dict_file(config.input),
      ablation=config.ablation)
  options = reference_names.generator_options(generator)
  directory = os.path.dirname(os.path.abspath(config.output))
  os.makedirs(directory, exist_ok=True)
  model_io.write_config(directory, options)
  generator.save_weights(config.output)
  return (f"wrote {config.output} and "
          f"{os.path.join(directory, model_io.CONFIG_NAME)} ({options})")


def main(argv):
  return cli.run_flags(Config, run, argv)


if __name__ == "__main__":
  cli.define_flags(Config)
  app.run(main)
