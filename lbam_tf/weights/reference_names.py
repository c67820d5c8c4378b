"""The authors' PyTorch checkpoint names to our Keras weights, and back.

The reference parameter names (docs/reference.md#checkpoint-names) differ
from ours only by module names (`REFERENCE_LAYERS` in
`lbam_tf.model.generator`) and by the weight names within a module
(`_WEIGHT_NAMES` below, one table). Kernels are PyTorch's (out, in, kh, kw)
for convolutions and (in, out, kh, kw) for transposed convolutions; both
become Keras layouts by the same transpose (2, 3, 1, 0), with no spatial
flip, because TF's conv2d and conv2d_transpose correlate with the kernel
exactly as PyTorch's do.

This is the library; `lbam_tf.weights.model_io` loads `.pth`/`.npz` files
with it and `python -m lbam_tf.convert` (the command line) writes converted
weights. It imports neither.

Example:

    generator = reference_names.generator_from_torch_state_dict(
        reference_names.load_state_dict_file("LBAM_G_500.pth"))  # no PyTorch
"""

import collections
import os
import re

import numpy as np

from lbam_tf.model import generator as generator_lib
from lbam_tf.model import layers
from lbam_tf.weights import torch_checkpoint

#: PyTorch's kernel layout to Keras's, for convolutions and transposed
#: convolutions alike; `_TO_REFERENCE` is its inverse.
_TO_KERAS = (2, 3, 1, 0)
_TO_REFERENCE = (3, 2, 0, 1)

_GAUSSIAN = {"g_a/a": "activationFuncG_A.a", "g_a/mu": "activationFuncG_A.mu",
             "g_a/gamma_l": "activationFuncG_A.sigma1",
             "g_a/gamma_r": "activationFuncG_A.sigma2"}
_BATCH_NORM = {"bn/gamma": "bn.weight", "bn/beta": "bn.bias",
               "bn/moving_mean": "bn.running_mean",
               "bn/moving_variance": "bn.running_var"}

#: Layer class -> {Keras weight path within the layer: reference name within
#: the module}.
_WEIGHT_NAMES = {
    layers.ForwardAttention: {
        "kernel": "conv.conv.weight", "mask_kernel": "conv.maskConv.weight",
        **{k: "conv." + v for k, v in _GAUSSIAN.items()}, **_BATCH_NORM},
    layers.ReverseAttention: {
        "mask_kernel": "reverseMaskConv.weight", **_GAUSSIAN},
    layers.DecoderBlock: {"kernel": "conv.weight", **_BATCH_NORM},
    layers.TransposedConvOutput: {"kernel": "weight"},
}

#: PyTorch's BatchNorm counter: in every BatchNorm state dict since PyTorch
#: 0.4.1, meaningless here (momentum is fixed), so accepted and ignored.
_BATCH_COUNTER = "bn.num_batches_tracked"

_BATCH_NORM_KEY = re.compile(r"^(ec|dc)\d+\.bn\.")


def generator_options(generator):
  """The `build_generator` arguments a generator was built with.

  Args:
    generator: a model from `lbam_tf.model.generator.build_generator` (or loaded
      from a `.keras` file of one).

  Returns:
    {"variant": one of VARIANTS, "ablation": one of ABLATIONS}.
  """
  ec1 = generator.get_layer("ec1")
  variant = ("original_bn" if generator.get_layer("ec2").batch_norm
             else "head")
  if "reverse_conv1" not in {layer.name for layer in generator.layers}:
    ablation = "forward_only"
  elif ec1.attention == "pconv":
    ablation = "unlearned"
  elif ec1.attention != "gaussian":
    ablation = ec1.attention
  elif ec1.mask_kernel_size == 3:
    ablation = "mask3x3"
  else:
    ablation = "none"
  return {"variant": variant, "ablation": ablation}


def _reference_table(generator):
  """[(reference name, Keras variable)] in the reference's module order."""
  present = {layer.name for layer in generator.layers}
  table = []
  for module, layer_name in generator_lib.REFERENCE_LAYERS.items():
    if layer_name not in present:
      continue
    layer = generator.get_layer(layer_name)
    names = _WEIGHT_NAMES[type(layer)]
    for variable in layer.weights:
      # The path within the layer, whatever name scope built the model.
      within = variable.path.partition(f"{layer_name}/")[2]
      if within not in names:
        raise ValueError(
            f"weight {variable.path} of layer {layer_name} has no reference "
            f"name; update _WEIGHT_NAMES in {__name__}")
      table.append((f"{module}.{names[within]}", variable))
  return table


def _reference_shape(variable):
  shape = tuple(variable.shape)
  if len(shape) == 4:
    return tuple(shape[i] for i in _TO_REFERENCE)
  return shape


def _batch_counter(name):
  """The reference name of the counter of the BatchNorm `name` belongs to."""
  return name.rpartition("bn.")[0] + _BATCH_COUNTER


def _batch_counters(table):
  """Reference names of the BatchNorm counters that go with `table`."""
  return [_batch_counter(name) for name, _ in table
          if name.endswith(".bn.weight")]


def _strip_data_parallel(state_dict):
  # nn.DataParallel saves every name with a "module." prefix.
  if state_dict and all(key.startswith("module.") for key in state_dict):
    return {key[len("module."):]: value for key, value in state_dict.items()}
  return dict(state_dict)


def _detect_variant(keys):
  return ("original_bn" if any(_BATCH_NORM_KEY.match(k) for k in keys)
          else "head")


def detect_options(state_dict):
  """Infers `build_generator`'s variant and ablation from reference names.

  BatchNorm parameters mean "original_bn". The Table 2 ablations that change
  the parameters are recognised too: no mask convolutions ("unlearned"), no
  reverseConv modules ("forward_only"), 3x3 mask kernels ("mask3x3"). The g_A
  replacements ("sigmoid", "leaky_relu", "relu") look identical and must be
  named.

  Args:
    state_dict: mapping of reference parameter names to arrays.

  Returns:
    {"variant": ..., "ablation": ...}.

  Raises:
    ValueError: the state dict has mask convolutions but no g_A parameters.
  """
  state_dict = _strip_data_parallel(state_dict)
  keys = list(state_dict)
  mask_kernel = state_dict.get("ec1.conv.maskConv.weight")
  # Checked first: fixed mask filters leave the reverse branch without
  # parameters too.
  if not any(k.endswith(("maskConv.weight", "MaskConv.weight"))
             for k in keys):
    ablation = "unlearned"
  elif not any(k.startswith("reverseConv") for k in keys):
    ablation = "forward_only"
  elif not any(".activationFuncG_A." in k for k in keys):
    raise ValueError(
        "the state dict has mask convolutions but no activationFuncG_A "
        "parameters: either it is a g_A ablation (pass ablation='sigmoid', "
        "'leaky_relu' or 'relu') or its g_A parameters are missing")
  elif mask_kernel is not None and np.shape(mask_kernel)[-1] == 3:
    ablation = "mask3x3"
  else:
    ablation = "none"
  return {"variant": _detect_variant(keys), "ablation": ablation}


def _describe_problems(unknown, missing, misshaped, options):
  lines = [f"the state dict does not fit the LBAM generator "
           f"(variant={options['variant']!r} from its keys, "
           f"ablation={options['ablation']!r}):"]
  if unknown:
    lines.append(f"  {len(unknown)} unknown keys: " + ", ".join(unknown))
  if missing:
    lines.append(f"  {len(missing)} missing keys: " + ", ".join(
        f"{name} {list(shape)}" for name, shape in missing))
  if misshaped:
    lines.append(f"  {len(misshaped)} mis-shaped keys: " + ", ".join(
        f"{name} has {list(got)}, expected {list(want)}"
        for name, got, want in misshaped))
  lines.append(
      "  Names and shapes must be those of the reference generator "
      "(github.com/Vious/LBAM_Pytorch; conv weights (out, in, kh, kw), "
      "transposed conv weights (in, out, kh, kw)): pass the generator's "
      "state dict, not the discriminator's or a whole training checkpoint.")
  return "\n".join(lines)


def generator_from_torch_state_dict(state_dict, ablation=None):
  """Builds a generator holding the weights of a reference state dict.

  g_A parameters are copied as stored, also outside their clamp ranges: the
  model clamps at use, as the reference does. BatchNorm running statistics
  become the moving statistics; `num_batches_tracked` is ignored.

  Args:
    state_dict: mapping of reference parameter names
      (docs/reference.md#checkpoint-names; an `nn.DataParallel` "module."
      prefix is accepted) to numpy arrays (or anything `np.asarray` takes)
      in PyTorch layouts.
    ablation: one of `generator.ABLATIONS` to override detection; needed only
      for the "sigmoid", "leaky_relu" and "relu" ablations.

  Returns:
    A `keras.Model` from `build_generator`, variant and ablation detected
    from the keys and shapes (see `detect_options`).

  Raises:
    ValueError: unknown, missing or mis-shaped keys, all named in one message
      with the expected shapes.
  """
  state_dict = _strip_data_parallel(state_dict)
  if ablation is None:
    options = detect_options(state_dict)
  else:
    options = {"variant": _detect_variant(state_dict), "ablation": ablation}
  generator = generator_lib.build_generator(**options)
  table = _reference_table(generator)
  expected = {name: _reference_shape(variable) for name, variable in table}
  counters = set(_batch_counters(table))

  unknown = sorted(set(state_dict) - set(expected) - counters)
  missing = [(name, shape) for name, shape in expected.items()
             if name not in state_dict]
  misshaped = []
  for name, shape in expected.items():
    if name in state_dict and np.shape(state_dict[name]) != shape:
      misshaped.append((name, np.shape(state_dict[name]), shape))
  if unknown or missing or misshaped:
    raise ValueError(_describe_problems(unknown, missing, misshaped, options))

  for name, variable in table:
    value = np.asarray(state_dict[name], dtype=np.float32)
    if value.ndim == 4:
      value = value.transpose(_TO_KERAS)
    variable.assign(value)
  return generator


def generator_to_torch_state_dict(generator):
  """The reference state dict of a generator (inverse of the import).

  Args:
    generator: a model from `build_generator`, any variant or ablation.

  Returns:
    An OrderedDict of reference names to float32 numpy arrays in PyTorch
    layouts, in the reference's module order, with `num_batches_tracked`
    (int64 0) for each BatchNorm, so that PyTorch's strict
    `load_state_dict` accepts it.
  """
  table = _reference_table(generator)
  state_dict = collections.OrderedDict()
  for name, variable in table:
    value = np.asarray(variable.numpy(), dtype=np.float32)
    if value.ndim == 4:
      value = value.transpose(_TO_REFERENCE)
    state_dict[name] = np.array(value, order="C")
    if name.endswith(".bn.running_var"):
      # After running_var, where PyTorch's state_dict() has it.
      state_dict[_batch_counter(name)] = np.array(0, np.int64)
  return state_dict


def load_state_dict_file(path):
  """Reads a reference state dict from `.pth` (without PyTorch) or `.npz`.

  A `.pth` is read by `lbam_tf.weights.torch_checkpoint`, which unpickles only
  tensors and dicts and refuses anything that could run code. A checkpoint
  that wraps the state dict in a dict (e.g. {"epoch": 3, "state_dict": {...}})
  is unwrapped when exactly one of its values is a dict.

  Args:
    path: a `.pth`/`.pt` file written by `torch.save`, or an `.npz` of the
      same tensors under the same names.

  Returns:
    dict of reference names to numpy arrays.

  Raises:
    ValueError: another extension, or a file that holds no state dict.
  """
  path = os.fspath(path)
  if path.endswith(".npz"):
    with np.load(path, allow_pickle=False) as archive:
      return {name: archive[name] for name in archive.files}
  if not path.endswith((".pth", ".pt")):
    raise ValueError(
        f"{path}: expected a .pth/.pt file written by torch.save or an .npz "
        "of reference-named arrays")
  loaded = torch_checkpoint.read_pth(path)
  if not isinstance(loaded, dict):
    raise ValueError(
        f"{path} holds a {type(loaded).__name__}, not a state dict: save "
        "model.state_dict() with torch.save")
  if not all(isinstance(v, np.ndarray) for v in loaded.values()):
    nested = [k for k, v in loaded.items() if isinstance(v, dict)]
    if len(nested) != 1:
      raise ValueError(
          f"{path} holds a dict with keys {sorted(map(str, loaded))}, not a "
          "state dict of tensors: save the generator's model.state_dict() "
          "alone with torch.save")
    loaded = loaded[nested[0]]
  return dict(loaded)
