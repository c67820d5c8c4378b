"""An independent PyTorch port of the authors' LBAM generator and discriminator.

Written from the facts in docs/reference.md about the authors' code
(github.com/Vious/LBAM_Pytorch), not copied from it. Module and attribute
names are chosen so that `state_dict()` has exactly the reference
checkpoint's keys (docs/reference.md#checkpoint-names): that is
what lets a real `.pth` load here with `load_state_dict(strict=True)`, and it
makes this port the yardstick for the Keras model: same weights, same outputs.

Used by the parity tests and by `bench/generator_latency.py`; torch is a test
dependency only.

Example:

    generator = torch_reference.Generator(variant="head").eval()
    output = generator(image, mask)  # NCHW, image in [0, 1], mask 1 = known
"""

import numpy as np
import torch
from torch import nn

VARIANTS = ("head", "original_bn")

_ENCODER_CHANNELS = (4, 64, 128, 256, 512, 512, 512, 512)
_MASK_CHANNELS = (3, 64, 128, 256, 512, 512, 512, 512)
_REVERSE_CHANNELS = (3, 64, 128, 256, 512, 512, 512)
# (in, out) of the transposed convs dc1..dc6; dc7 maps 128 -> 3.
_DECODER_CHANNELS = ((512, 512), (1024, 512), (1024, 512), (1024, 256),
                     (512, 128), (256, 64))
_FORWARD_GAUSS_INIT = (1.1, 2.0, 1.0, 1.0)
_REVERSE_GAUSS_INIT = (1.1, 1.0, 0.5, 0.5)
_MASK_ALPHA = 0.8
_LEAKY_SLOPE = 0.2


def _down_conv(in_channels, out_channels, bias=False):
  return nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)


def _up_conv(in_channels, out_channels):
  return nn.ConvTranspose2d(
      in_channels, out_channels, 4, stride=2, padding=1, bias=False)


class GaussActivation(nn.Module):
  """g_A (paper eq. 9) with the reference's clamp of its four scalars at use.

  The reference clamps the stored parameters in place; clamping a copy gives
  the same outputs and leaves `state_dict()` as loaded, which the round-trip
  tests rely on.
  """

  def __init__(self, a, mu, sigma1, sigma2):
    super().__init__()
    self.a = nn.Parameter(torch.tensor(a, dtype=torch.float32))
    self.mu = nn.Parameter(torch.tensor(mu, dtype=torch.float32))
    self.sigma1 = nn.Parameter(torch.tensor(sigma1, dtype=torch.float32))
    self.sigma2 = nn.Parameter(torch.tensor(sigma2, dtype=torch.float32))

  def forward(self, x):
    a = self.a.clamp(1.01, 6.0)
    mu = self.mu.clamp(0.1, 3.0)
    sigma1 = self.sigma1.clamp(0.5, 2.0)
    sigma2 = self.sigma2.clamp(0.5, 2.0)
    squared = (x - mu) ** 2
    left = a * torch.exp(-sigma1 * squared)
    right = 1.0 + (a - 1.0) * torch.exp(-sigma2 * squared)
    return torch.where(x < mu, left, right)


def mask_update(x):
  """g_M (paper eq. 8): relu(x) ** 0.8."""
  return torch.relu(x) ** _MASK_ALPHA


class ForwardAttentionLayer(nn.Module):
  """Feature conv, learnable mask conv, g_A and g_M (eqs. 6, 10, 11)."""

  def __init__(self, in_channels, mask_channels, out_channels):
    super().__init__()
    self.conv = _down_conv(in_channels, out_channels)
    self.maskConv = _down_conv(mask_channels, out_channels)  # pylint: disable=invalid-name
    self.activationFuncG_A = GaussActivation(*_FORWARD_GAUSS_INIT)  # pylint: disable=invalid-name

  def forward(self, features, mask):
    conv_features = self.conv(features)
    mask_features = self.maskConv(mask)
    attention = self.activationFuncG_A(mask_features)
    return (conv_features * attention, mask_update(mask_features),
            conv_features, attention)


class ForwardAttention(nn.Module):
  """Encoder block ecK: attention layer, optional BatchNorm, LeakyReLU(0.2)."""

  def __init__(self, in_channels, mask_channels, out_channels, batch_norm):
    super().__init__()
    self.conv = ForwardAttentionLayer(in_channels, mask_channels, out_channels)
    self.bn = nn.BatchNorm2d(out_channels) if batch_norm else None

  def forward(self, features, mask):
    out, next_mask, skip, attention = self.conv(features, mask)
    if self.bn is not None:
      out = self.bn(out)
    return nn.functional.leaky_relu(out, _LEAKY_SLOPE), next_mask, skip, attention


class ReverseMaskConv(nn.Module):
  """Reverse mask branch reverseConvK: conv of the reverse mask, g_A, g_M."""

  def __init__(self, in_channels, out_channels):
    super().__init__()
    self.reverseMaskConv = _down_conv(in_channels, out_channels)  # pylint: disable=invalid-name
    self.activationFuncG_A = GaussActivation(*_REVERSE_GAUSS_INIT)  # pylint: disable=invalid-name

  def forward(self, reverse_mask):
    mask_features = self.reverseMaskConv(reverse_mask)
    return self.activationFuncG_A(mask_features), mask_update(mask_features)


class ReverseAttention(nn.Module):
  """Decoder block dcK (eq. 12): concat(skip, deconv) * concat(fwd, rev)."""

  def __init__(self, in_channels, out_channels, batch_norm):
    super().__init__()
    self.conv = _up_conv(in_channels, out_channels)
    self.bn = nn.BatchNorm2d(2 * out_channels) if batch_norm else None

  def forward(self, encoder_skip, decoder_features, attention):
    out = torch.cat([encoder_skip, self.conv(decoder_features)], dim=1)
    out = out * attention
    if self.bn is not None:
      out = self.bn(out)
    return nn.functional.leaky_relu(out, _LEAKY_SLOPE)


class Generator(nn.Module):
  """The LBAM U-Net: seven encoder blocks, six reverse branches, seven decoders.

  Args:
    variant: "head" (released checkpoint: no BatchNorm, output (tanh + 1) / 2)
      or "original_bn" (BatchNorm in ec2..ec7 and dc1..dc6, output |tanh|).

  Call arguments:
    image: float [B, 3, H, W] in [0, 1]; H, W multiples of 128.
    mask: float [B, 1, H, W] or [B, 3, H, W], 1 = known, 0 = hole.

  Returns:
    float [B, 3, H, W], not composited.
  """

  def __init__(self, variant="head"):
    super().__init__()
    if variant not in VARIANTS:
      raise ValueError(f"variant {variant!r} is not one of {VARIANTS}")
    self.variant = variant
    batch_norm = variant == "original_bn"
    for k in range(1, 8):
      self.add_module(f"ec{k}", ForwardAttention(
          _ENCODER_CHANNELS[k - 1], _MASK_CHANNELS[k - 1], _ENCODER_CHANNELS[k],
          batch_norm=batch_norm and k > 1))
    for k in range(1, 7):
      self.add_module(f"reverseConv{k}", ReverseMaskConv(
          _REVERSE_CHANNELS[k - 1], _REVERSE_CHANNELS[k]))
    for k, (in_channels, out_channels) in enumerate(_DECODER_CHANNELS, 1):
      self.add_module(f"dc{k}", ReverseAttention(
          in_channels, out_channels, batch_norm=batch_norm))
    self.dc7 = _up_conv(128, 3)
    # The reference draws every conv weight from N(0, 0.02) except dc7's.
    for module in self.modules():
      if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module is not self.dc7:
        nn.init.normal_(module.weight, 0.0, 0.02)

  def forward(self, image, mask):
    known = mask[:, :1].expand(-1, 3, -1, -1)
    features = torch.cat([image * known, known[:, :1]], dim=1)
    mask_in = known
    skips, forward_maps = [], []
    for k in range(1, 8):
      features, mask_in, skip, attention = getattr(self, f"ec{k}")(
          features, mask_in)
      skips.append(skip)
      forward_maps.append(attention)

    reverse_in = 1.0 - known
    reverse_maps = []
    for k in range(1, 7):
      attention, reverse_in = getattr(self, f"reverseConv{k}")(reverse_in)
      reverse_maps.append(attention)

    # dcK pairs with ec(7-K) and reverseConv(7-K): dc1 with ec6, dc6 with ec1.
    for k in range(1, 7):
      level = 6 - k
      attention = torch.cat([forward_maps[level], reverse_maps[level]], dim=1)
      features = getattr(self, f"dc{k}")(skips[level], features, attention)
    out = torch.tanh(self.dc7(features))
    return torch.abs(out) if self.variant == "original_bn" else (out + 1.0) / 2.0


def random_state_dict(module, seed=0):
  """Random weights under `module.state_dict()`'s names, as numpy arrays.

  Scaled like a trained model rather than like the N(0, 0.02) initialisation,
  whose activations shrink towards zero layer by layer: kernels get variance
  0.75^2 / fan_in, so outputs neither vanish nor saturate tanh (and neither
  library meets denormals). g_A scalars are drawn across and beyond their
  clamp ranges, so loaded values outside the ranges are exercised; BatchNorm
  gets non-trivial running statistics.

  Args:
    module: a `Generator` or `Discriminator` (only names and shapes are read).
    seed: numpy random seed.

  Returns:
    dict of name -> numpy array (float32; int64 for num_batches_tracked).
  """
  rng = np.random.default_rng(seed)
  weights = {}
  for name, tensor in module.state_dict().items():
    shape = tuple(tensor.shape)
    leaf = name.rsplit(".", 1)[1]
    if len(shape) == 4:
      # Conv (out, in, kh, kw): fan-in in * kh * kw; transposed conv (in, out,
      # kh, kw) with stride 2: each output sums in * kh * kw / 4 taps.
      transposed = name.startswith("dc")
      fan_in = shape[0] * 4 if transposed else shape[1] * shape[2] * shape[3]
      value = rng.normal(0.0, 0.75 / np.sqrt(fan_in), shape)
    elif leaf == "num_batches_tracked":
      weights[name] = np.array(rng.integers(0, 1000), np.int64)
      continue
    elif leaf == "a":
      value = rng.uniform(0.0, 7.0)  # clamp range [1.01, 6]
    elif leaf == "mu":
      value = rng.uniform(-1.0, 4.0)  # [0.1, 3]
    elif leaf in ("sigma1", "sigma2"):
      value = rng.uniform(-0.5, 3.0)  # [0.5, 2]
    elif leaf == "running_var":
      value = rng.uniform(0.5, 2.0, shape)
    elif leaf == "weight":  # BatchNorm scale
      value = rng.uniform(0.5, 1.5, shape)
    else:  # biases, BatchNorm running means
      value = rng.normal(0.0, 0.1, shape)
    weights[name] = np.asarray(value, np.float32)
  return weights


def load_numpy_state_dict(module, weights):
  """Loads a dict of numpy arrays into `module` (strict) and returns it."""
  module.load_state_dict(
      {name: torch.from_numpy(np.asarray(value))
       for name, value in weights.items()}, strict=True)
  return module


def nhwc_output(model, image, mask):
  """`model(image, mask)` on NHWC numpy arrays, the Keras layout, to NHWC."""
  with torch.no_grad():
    out = model(torch.from_numpy(image.transpose(0, 3, 1, 2)),
                torch.from_numpy(mask.transpose(0, 3, 1, 2)))
  return out.numpy().transpose(0, 2, 3, 1)


def _critic_column():
  layers = [_down_conv(3, 64, bias=True), nn.LeakyReLU(_LEAKY_SLOPE)]
  for in_channels, out_channels in ((64, 128), (128, 256), (256, 512),
                                    (512, 512), (512, 512)):
    layers += [_down_conv(in_channels, out_channels, bias=True),
               nn.BatchNorm2d(out_channels), nn.LeakyReLU(_LEAKY_SLOPE)]
  return nn.Sequential(*layers)


class Discriminator(nn.Module):
  """DiscriminatorDoubleColumn: a global column on x*M, a local one on x*(1-M).

  Returns the reference's sigmoid score map ([B, 1, 1, 1] at 256x256); kept
  only for its parameter names and shapes (the conversion's error tests), since
  our critic is a WGAN one.
  """

  def __init__(self):
    super().__init__()
    self.globalConv = _critic_column()  # pylint: disable=invalid-name
    self.localConv = _critic_column()  # pylint: disable=invalid-name
    self.fusionLayer = nn.Sequential(nn.Conv2d(1024, 1, 4), nn.Sigmoid())  # pylint: disable=invalid-name

  def forward(self, image, mask):
    global_features = self.globalConv(image * mask)
    local_features = self.localConv(image * (1.0 - mask))
    return self.fusionLayer(torch.cat([global_features, local_features], 1))
