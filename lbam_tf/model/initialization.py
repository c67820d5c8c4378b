"""Starting weights for a generator trained from scratch.

Under the reference's N(0, 0.02) a mask filter answers about 0 and g_A(0) is
0.02, so each encoder block scales its signal by 0.02 and a fresh generator
fills every hole with a flat 0.5. "neutral_attention" starts each mask filter
where g_A peaks (forward: on known patches; reverse: on missing ones), with
+-10 % noise, and the feature filters He-normal for their LeakyReLU(0.2);
`dc7` and g_A's scalars stay the reference's. The exact rules, the diagnosis
and the A/B runs: BUILD_NOTES.md, "Training that learns".
"""

import numpy as np

from lbam_tf.model import layers

#: Starting-weight schemes for `apply`. "reference": the authors' N(0, 0.02),
#: what `build_generator` creates. "neutral_attention": see the module text.
SCHEMES = ("reference", "neutral_attention")

_MASK_NOISE = 0.1


def _he_normal(rng, shape, fan_in):
  gain = np.sqrt(2.0 / (1.0 + layers.LEAKY_SLOPE**2))
  return rng.normal(0.0, gain / np.sqrt(fan_in), shape).astype(np.float32)


def _mask_filter(rng, shape, response, input_value):
  """A filter whose response to `input_value` everywhere is `response`."""
  height, width, channels, _ = shape
  value = response / (height * width * channels * input_value)
  noise = rng.uniform(1 - _MASK_NOISE, 1 + _MASK_NOISE, shape)
  return (value * noise).astype(np.float32)


def apply(generator, scheme, seed=0):
  """Overwrites `generator`'s weights with the starting weights of `scheme`.

  Args:
    generator: a model from `lbam_tf.model.generator.build_generator`.
    scheme: one of SCHEMES; "reference" leaves the weights as built.
    seed: seeds the random parts.

  Raises:
    ValueError: for an unknown scheme.
  """
  if scheme not in SCHEMES:
    raise ValueError(f"initialization {scheme!r} is not one of {SCHEMES}")
  if scheme == "reference":
    return
  rng = np.random.default_rng(seed)
  # What a forward mask filter sees on a fully known patch: the mask itself
  # (1) for ec1, g_M of the previous block's response after it.
  known_input = 1.0
  for layer in generator.layers:
    if isinstance(layer, layers.ForwardAttention):
      shape = tuple(layer.kernel.shape)
      layer.kernel.assign(_he_normal(rng, shape, np.prod(shape[:3])))
      if layer.attention == "gaussian":
        mu = layer.g_a.initial["mu"]
        layer.mask_kernel.assign(_mask_filter(
            rng, tuple(layer.mask_kernel.shape), mu, known_input))
        known_input = mu**layer.g_m.alpha
    elif isinstance(layer, layers.ReverseAttention):
      if layer.attention == "gaussian":
        layer.mask_kernel.assign(_mask_filter(
            rng, tuple(layer.mask_kernel.shape), layer.g_a.initial["mu"], 1.0))
    elif isinstance(layer, layers.DecoderBlock):
      shape = tuple(layer.kernel.shape)
      layer.kernel.assign(_he_normal(rng, shape, 4 * shape[3]))
