"""Starting weights for a generator trained from scratch.

The reference initialises every convolution with N(0, 0.02). Under it the
attention maps start far from their working point: a mask filter of N(0, 0.02)
answers about 0 on a fully known patch, g_A(0) with mu = 2 is
1.1 * exp(-4) = 0.02, so each of the seven encoder blocks multiplies its
signal by about 0.02 and the fresh generator outputs a flat 0.5 in every hole
(BUILD_NOTES.md, "Training that learns"). Learning has to climb out of that
before it can use the context.

"neutral_attention" starts where the paper's maps mean something:
- a forward mask filter answers mu on a fully known patch, so g_A starts at
  its peak a there and falls towards g_A(0) over holes; the filter's input on
  a known patch is 1 for ec1 and g_M(mu) = mu^0.8 for the blocks after it;
- a reverse mask filter answers its mu on a fully missing patch (its input is
  1 - M, and g_M(1) = 1 at every level);
- each mask filter gets +-10 % uniform noise, so its output channels differ;
- feature filters are He-normal for the LeakyReLU(0.2) that follows them, with
  the fan-in each output pixel really sees (16 C_in for the stride-2
  convolutions, 4 C_in for the stride-2 transposed ones).
`dc7` keeps PyTorch's default, as in the reference. g_A's scalars keep the
paper's starting values.
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
