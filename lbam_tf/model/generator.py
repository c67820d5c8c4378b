"""The LBAM generator: a functional U-Net with bidirectional attention maps.

Layer names follow the reference PyTorch modules (github.com/Vious/LBAM_Pytorch;
docs/reference.md#checkpoint-names), so that converting a checkpoint is a
table lookup: `REFERENCE_LAYERS` below maps the module names,
`lbam_tf.weights.reference_names._WEIGHT_NAMES` the weight names, and Keras
weight paths are `<layer>/<weight>`. Layouts and why: BUILD_NOTES.md, "Model
and conversion".
"""

import keras
from keras import ops

from lbam_tf.model import layers

#: Generator layouts. "head": the released checkpoint's (no BatchNorm, output
#: (tanh + 1) / 2). "original_bn": the reference's older layout (BatchNorm in
#: ec2..ec7 and dc1..dc6, output |tanh|).
VARIANTS = ("head", "original_bn")

#: The paper's Table 2 ablations. "none": the full model. "unlearned": fixed
#: 1/16 mask filters with PConv's eqs. 4-5. "forward_only": no reverse branch,
#: all-one reverse maps. "sigmoid" / "leaky_relu" / "relu": replace g_A.
#: "mask3x3": 3x3 mask filters.
ABLATIONS = ("none", "unlearned", "forward_only", "sigmoid", "leaky_relu",
             "relu", "mask3x3")

ENCODER_FILTERS = (64, 128, 256, 512, 512, 512, 512)
REVERSE_FILTERS = (64, 128, 256, 512, 512, 512)
DECODER_FILTERS = (512, 512, 512, 256, 128, 64)

#: Reference module name -> Keras layer name.
REFERENCE_LAYERS = {
    **{f"ec{k}": f"ec{k}" for k in range(1, 8)},
    **{f"reverseConv{k}": f"reverse_conv{k}" for k in range(1, 7)},
    **{f"dc{k}": f"dc{k}" for k in range(1, 8)},
}


def check_variant(variant, ablation="none"):
  """Raises ValueError unless `variant` and `ablation` are known names."""
  if variant not in VARIANTS:
    raise ValueError(
        f"generator variant {variant!r} is not one of {VARIANTS}: 'head' is "
        f"the released checkpoint's layout")
  if ablation not in ABLATIONS:
    raise ValueError(
        f"generator ablation {ablation!r} is not one of {ABLATIONS}: 'none' is "
        f"the full model")


def _branch_options(ablation):
  """ForwardAttention / ReverseAttention arguments for an ablation."""
  attention = {"unlearned": "pconv", "sigmoid": "sigmoid",
               "leaky_relu": "leaky_relu", "relu": "relu"}.get(ablation,
                                                              "gaussian")
  return {"attention": attention,
          "mask_kernel_size": 3 if ablation == "mask3x3" else 4}


def build_generator(variant="head", ablation="none", name="lbam_generator"):
  """Builds the LBAM generator as a functional Keras model.

  Args:
    variant: one of VARIANTS.
    ablation: one of ABLATIONS.
    name: the model's name.

  Returns:
    A `keras.Model` taking `{"image": [B, H, W, 3], "mask": [B, H, W, 1]}`
    (image in [0, 1], mask 1 = known, 0 = hole; H and W any multiples of 128)
    and returning the raw generated image [B, H, W, 3] float32 in [0, 1], not
    composited with the known pixels.

  Example:

  >>> generator = build_generator()
  >>> out = generator({"image": x, "mask": m}, training=False)
  """
  check_variant(variant, ablation)
  batch_norm = variant == "original_bn"
  options = _branch_options(ablation)

  image = keras.Input((None, None, 3), name="image")
  mask = keras.Input((None, None, 1), name="mask")
  checked_image, checked_mask = layers.InputSizeCheck(name="size_check")(
      [image, mask])

  # The reference's input: concat(image * M, M) for the features, M repeated
  # to 3 channels for the first mask convolution, 1 - M for the reverse branch.
  features = ops.concatenate([checked_image * checked_mask, checked_mask],
                             axis=-1)
  masks = ops.repeat(checked_mask, 3, axis=-1)
  reverse_masks = 1.0 - masks

  skips, forward_maps = [], []
  for k, filters in enumerate(ENCODER_FILTERS, start=1):
    features, masks, skip, forward_map = layers.ForwardAttention(
        filters, batch_norm=batch_norm and k > 1, name=f"ec{k}",
        **options)([features, masks])
    skips.append(skip)
    forward_maps.append(forward_map)

  reverse_maps = []
  if ablation != "forward_only":
    for k, filters in enumerate(REVERSE_FILTERS, start=1):
      reverse_map, reverse_masks = layers.ReverseAttention(
          filters, name=f"reverse_conv{k}", **options)(reverse_masks)
      reverse_maps.append(reverse_map)

  # dc1 pairs with ec6 and reverse_conv6, ..., dc6 with ec1 and reverse_conv1.
  for k, filters in enumerate(DECODER_FILTERS, start=1):
    level = 6 - k
    block_inputs = [skips[level], features, forward_maps[level]]
    if reverse_maps:
      block_inputs.append(reverse_maps[level])
    features = layers.DecoderBlock(
        filters, batch_norm=batch_norm, name=f"dc{k}")(block_inputs)

  logits = layers.TransposedConvOutput(3, name="dc7")(features)
  # The output head runs in float32 also under a mixed-precision policy.
  tanh = ops.tanh(ops.cast(logits, "float32"))
  output = ops.abs(tanh) if batch_norm else (tanh + 1.0) / 2.0
  return keras.Model({"image": image, "mask": mask}, output, name=name)


def attention_maps_model(generator):
  """A model returning every attention map of `generator` (paper's Fig. 8).

  Args:
    generator: a model from `build_generator` (or loaded from one).

  Returns:
    A `keras.Model` with the generator's inputs returning a dict of float32
    maps: "forward_1".."forward_7" (g_A of ec1..ec7, [B, H/2^K, W/2^K, C]; the
    7th is computed but not used by the decoder) and "reverse_1".."reverse_6"
    (g_A of reverse_conv1..6; absent for the "forward_only" ablation). It
    shares the generator's weights.
  """
  maps = {}
  for k in range(1, len(ENCODER_FILTERS) + 1):
    maps[f"forward_{k}"] = generator.get_layer(f"ec{k}").output[3]
  layer_names = {layer.name for layer in generator.layers}
  for k in range(1, len(REVERSE_FILTERS) + 1):
    if f"reverse_conv{k}" in layer_names:
      maps[f"reverse_{k}"] = generator.get_layer(f"reverse_conv{k}").output[0]
  maps = {key: ops.cast(value, "float32") for key, value in maps.items()}
  return keras.Model(generator.input, maps, name=f"{generator.name}_maps")
