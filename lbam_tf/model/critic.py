"""The LBAM critic: the reference's two-column discriminator as a WGAN critic.

The reference's `DiscriminatorDoubleColumn` (docs/reference.md#critic), with
its 22,316,417 trainable parameters, changed in three ways so that it is a
WGAN-GP critic at any crop that is a multiple of 128: a linear score (no
sigmoid), the concatenated map average-pooled to 4x4 before the score
convolution (the identity at 256x256), and layer normalisation by default
(`normalization="batch"` gives the reference's BatchNorm). Why each:
BUILD_NOTES.md, "Model and conversion".
"""

import keras
import tensorflow as tf

from lbam_tf.model import layers

#: Normalisations after convs 2..6 of each column: "layer" (default, suits the
#: gradient penalty) or "batch" (the reference's BatchNorm).
NORMALIZATIONS = ("layer", "batch")

COLUMN_FILTERS = (64, 128, 256, 512, 512, 512)

#: Spatial size of the map the score convolution reads (the reference's 256
#: crop after six stride-2 convolutions).
SCORE_GRID = 4


def _pooling_matrix(size, grid, dtype):
  """[grid, size] averaging weights of PyTorch's adaptive average pooling.

  Cell i averages input rows floor(i * size / grid) .. ceil((i + 1) * size /
  grid) - 1; a size smaller than the grid repeats rows.
  """
  cells = tf.range(grid)
  start = cells * size // grid
  end = ((cells + 1) * size + grid - 1) // grid
  rows = tf.range(size)
  inside = tf.logical_and(rows[None, :] >= start[:, None],
                          rows[None, :] < end[:, None])
  return tf.cast(inside, dtype) / tf.cast(end - start, dtype)[:, None]


@keras.saving.register_keras_serializable(package="lbam_tf")
class AdaptiveAveragePooling(keras.layers.Layer):
  """Average-pools [B, H, W, C] to [B, grid, grid, C] for any run-time H, W.

  Keras' own `AdaptiveAveragePooling2D` needs static spatial sizes; the critic
  takes images of any multiple of 128, so this one builds its averaging
  matrices from the run-time shape. Differentiable twice, as the gradient
  penalty needs.

  Args:
    grid: output height and width.
    **kwargs: standard `keras.layers.Layer` arguments.

  Call arguments:
    inputs: [B, H, W, C].

  Returns:
    [B, grid, grid, C]; the identity when H = W = grid.

  Example:

  >>> AdaptiveAveragePooling(4)(np.ones((1, 8, 8, 2), "float32"))  # [1,4,4,2]
  """

  def __init__(self, grid=SCORE_GRID, **kwargs):
    super().__init__(**kwargs)
    layers.check_positive_int("AdaptiveAveragePooling", "grid", grid)
    self.grid = grid

  def call(self, inputs):
    shape = tf.shape(inputs)
    rows = _pooling_matrix(shape[1], self.grid, inputs.dtype)
    cols = _pooling_matrix(shape[2], self.grid, inputs.dtype)
    return tf.einsum("ih,bhwc,jw->bijc", rows, inputs, cols)

  def compute_output_shape(self, input_shape):
    return (input_shape[0], self.grid, self.grid, input_shape[-1])

  def get_config(self):
    return {**super().get_config(), "grid": self.grid}


def _column(inputs, prefix, normalization):
  """Six conv / norm / LeakyReLU stages, as one reference column."""
  x = inputs
  for k, filters in enumerate(COLUMN_FILTERS, start=1):
    # "same" pads 1 on each side for a 4x4 stride-2 kernel on even sizes,
    # PyTorch's padding=1; every stage's input is even for multiples of 128.
    x = keras.layers.Conv2D(
        filters, 4, strides=2, padding="same", name=f"{prefix}_conv{k}",
        kernel_initializer=layers.normal_init())(x)
    if k > 1:
      if normalization == "batch":
        x = layers.reference_batch_norm(f"{prefix}_norm{k}")(x)
      else:
        x = keras.layers.GroupNormalization(
            groups=1, epsilon=1e-5, name=f"{prefix}_norm{k}")(x)
    x = keras.layers.LeakyReLU(layers.LEAKY_SLOPE, name=f"{prefix}_act{k}")(x)
  return x


def build_critic(name="lbam_critic", normalization="layer"):
  """Builds the two-column WGAN critic as a functional Keras model.

  Args:
    name: the model's name.
    normalization: one of NORMALIZATIONS.

  Returns:
    A `keras.Model` taking `{"image": [B, H, W, 3], "mask": [B, H, W, 1]}`
    (the real or generated image, unmasked, in [0, 1]; mask 1 = known, 0 =
    hole; H and W multiples of 128) and returning float32 scores [B], linear
    (higher = more real), float32 also under a mixed-precision policy. The
    global column's layers are "global_*", the local column's "local_*".

  Example:

  >>> critic = build_critic()
  >>> scores = critic({"image": x, "mask": m}, training=True)  # [B]
  """
  if normalization not in NORMALIZATIONS:
    raise ValueError(
        f"critic normalization {normalization!r} is not one of "
        f"{NORMALIZATIONS}: 'layer' suits the WGAN gradient penalty")
  image = keras.Input((None, None, 3), name="image")
  mask = keras.Input((None, None, 1), name="mask")
  checked_image, checked_mask = layers.InputSizeCheck(name="size_check")(
      [image, mask])

  known = _column(checked_image * checked_mask, "global", normalization)
  hole = _column(checked_image * (1.0 - checked_mask), "local", normalization)
  features = keras.layers.Concatenate(name="concat")([known, hole])
  # The score runs in float32 also under a mixed-precision policy.
  pooled = AdaptiveAveragePooling(SCORE_GRID, name="pool", dtype="float32")(
      features)
  score = keras.layers.Conv2D(
      1, SCORE_GRID, padding="valid", name="score", dtype="float32",
      kernel_initializer=layers.normal_init())(pooled)
  scores = keras.layers.Reshape((), name="scores", dtype="float32")(score)
  return keras.Model({"image": image, "mask": mask}, scores, name=name)
