"""The frozen VGG16 feature extractor behind the perceptual and style losses.

The paper (eqs. 15, 16) compares VGG16 pool1, pool2 and pool3 features. The
reference feeds [0, 1] images to its VGG unnormalised; Keras' ImageNet weights
were trained on "caffe" inputs (BGR, 0..255, ImageNet mean subtracted), so the
extractor converts [0, 1] RGB to that before the first convolution. Without
this the pretrained filters see inputs 255 times too small and the features
are close to their biases.

The features are then divided by 255 (`FEATURE_SCALE`): the ReLU network is
close to linear in its input's scale, so this brings them back to the
magnitudes of the reference's [0, 1]-input features, for which its loss
weights (perceptual 0.01, style 120) were tuned. Without it the style term,
quadratic in the features, would be ~255^2 times larger and swamp the L1.

Example:

  extractor = vgg.build_feature_extractor("imagenet")   # or a .h5 path, "none"
  pool1, pool2, pool3 = extractor(images)              # images [B, H, W, 3]
"""

import os

import keras
from keras import ops

#: VGG16 layers the losses compare (paper: pool-1, pool-2, pool-3).
FEATURE_LAYERS = ("block1_pool", "block2_pool", "block3_pool")

#: ImageNet channel means in BGR order, as Keras' vgg16.preprocess_input
#: subtracts them ("caffe" mode).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

#: Multiplies the returned features (see the module docstring).
FEATURE_SCALE = 1.0 / 255.0

#: The Keras file to pass as --vgg_weights when offline.
IMAGENET_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


def caffe_preprocess(images):
  """[0, 1] RGB -> Keras' ImageNet VGG16 input: BGR, 0..255, mean removed."""
  bgr = ops.flip(images, axis=-1) * 255.0
  return bgr - ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=bgr.dtype)


def build_feature_extractor(weights="imagenet", name="vgg16_features"):
  """Builds a frozen VGG16 returning pool1, pool2 and pool3 features.

  Args:
    weights: "imagenet" (Keras download, or Keras' cache ~/.keras/models), the
      path of a Keras VGG16 weights file (`.h5`, with or without the top), or
      "none" for random weights (only for smoke runs: the perceptual and style
      terms then measure nothing meaningful).
    name: the model's name.

  Returns:
    A frozen `keras.Model` mapping [B, H, W, 3] RGB in [0, 1] (any H, W) to a
    list of three float tensors, the pool1..pool3 maps times FEATURE_SCALE.

  Raises:
    ValueError: the weights file does not exist.
    RuntimeError: "imagenet" was asked for and the download failed.
  """
  if weights == "none":
    keras_weights = None
  elif weights == "imagenet":
    keras_weights = "imagenet"
  else:
    if not os.path.isfile(weights):
      raise ValueError(
          f"--vgg_weights {weights!r} is not a file: pass 'imagenet', the path "
          f"of Keras' {IMAGENET_FILE}, or 'none' for a random VGG")
    keras_weights = weights
  try:
    vgg = keras.applications.VGG16(include_top=False, weights=keras_weights,
                                   input_shape=(None, None, 3))
  except Exception as error:  # Keras raises a bare Exception on fetch failure.
    if keras_weights != "imagenet":
      raise
    raise RuntimeError(
        f"could not download the VGG16 ImageNet weights ({error}). Offline, "
        f"copy {IMAGENET_FILE} from a machine that has it (~/.keras/models/) "
        f"and pass --vgg_weights /path/to/{IMAGENET_FILE}; or pass "
        f"--vgg_weights none to train with a random VGG (perceptual and style "
        f"terms then carry no ImageNet knowledge)") from error

  images = keras.Input((None, None, 3), name="rgb_01")
  features = []
  x = caffe_preprocess(images)
  for layer in vgg.layers[1:]:
    x = layer(x)
    if layer.name in FEATURE_LAYERS:
      features.append(x * FEATURE_SCALE)
    if layer.name == FEATURE_LAYERS[-1]:
      break
  extractor = keras.Model(images, features, name=name)
  extractor.trainable = False
  return extractor
