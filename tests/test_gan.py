"""The WGAN-GP train_step: N replicas take the same step as one device.

Step and optimizer counts (critic_steps 2) are checked through real runs in
test_train.py.

The distribution test needs two logical CPU devices, which TF allows only
before it initialises its devices; the pytest process (and every xdist worker)
has already done that, so the comparison runs this file as a script in a
fresh subprocess and compares what it saves here.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.heavy

CROP, BATCH = 128, 2


def _batch():
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(BATCH, CROP, CROP, 3)).astype(np.float32)
  masks = np.ones((BATCH, CROP, CROP, 1), np.float32)
  masks[0, 32:96, 40:90] = 0.0
  masks[1, 10:60, 64:120] = 0.0
  return images, masks


def _build_gan():
  """Models, optimizers and slots; call inside the strategy's scope."""
  from lbam_tf import critic, gan, generator, losses, vgg
  model = gan.LbamGan(generator.build_generator(), critic.build_critic(),
                      vgg.build_feature_extractor("none"),
                      losses.PRESETS["reference"], global_batch_size=BATCH,
                      seed=7)
  model.compile(gan.make_optimizer(1e-4, 0.5, 0.9),
                gan.make_optimizer(1e-5, 0.0, 0.9))
  model.build_optimizers()
  return model


def _dataset():
  import tensorflow as tf
  images, masks = _batch()
  return tf.data.Dataset.from_tensor_slices(
      {"image": images, "mask": masks}).batch(BATCH)


def _one_step(model):
  """One fit step of `model`; returns its logs, weights and Adam slots."""
  history = model.fit(_dataset(), epochs=1, steps_per_epoch=1, verbose=0)
  logs = {k: v[-1] for k, v in history.history.items()}
  return logs, _named(model.generator), _named(model.critic), {
      **_named(model.generator_optimizer, "g_opt:"),
      **_named(model.critic_optimizer, "c_opt:")}


def _named(holder, prefix=""):
  """{path: value}; an optimizer's paths lose their numbered name prefix."""
  if hasattr(holder, "weights"):
    return {w.path.replace("/", ":"): w.numpy() for w in holder.weights}
  return {prefix + w.path.split("/", 1)[-1]: w.numpy()
          for w in holder.variables}


def _compare_strategies(output_path):
  """Script mode: one step one_device and mirrored (2 CPU replicas) from the
  same weights, saved."""
  import tensorflow as tf
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  import keras
  keras.utils.set_random_seed(0)
  with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
    one = _build_gan()
  parts = ("generator", "critic", "feature_extractor")
  initial = [getattr(one, part).get_weights() for part in parts]
  results = {}
  for part, network in (("g", one.generator), ("c", one.critic)):
    results.update({f"initial/{part}/{k}": w
                    for k, w in _named(network).items()})
  mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  assert mirrored.num_replicas_in_sync == 2
  with mirrored.scope():
    two = _build_gan()
    for part, values in zip(parts, initial):
      getattr(two, part).set_weights(values)
  for tag, model in (("one", one), ("mirrored", two)):
    logs, g_weights, c_weights, slots = _one_step(model)
    results.update({f"{tag}/slot/{k}": w for k, w in slots.items()})
    results.update({f"{tag}/log/{k}": v for k, v in logs.items()})
    results.update({f"{tag}/g/{k}": w for k, w in g_weights.items()})
    results.update({f"{tag}/c/{k}": w for k, w in c_weights.items()})
  np.savez(output_path, **results)


def test_mirrored_two_replicas_match_one_device(tmp_path):
  output = tmp_path / "results.npz"
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow",
             PYTHONPATH=root)
  completed = subprocess.run(
      [sys.executable, os.path.abspath(__file__), str(output)], cwd=root,
      env=env, capture_output=True, text=True, timeout=600)
  assert completed.returncode == 0, completed.stderr[-3000:]
  results = np.load(output)
  log_names = [k.split("/", 2)[2] for k in results if k.startswith("one/log/")]
  assert {"generator_loss", "critic_loss", "gradient_penalty",
          "wasserstein"} <= set(log_names)
  for name in log_names:
    np.testing.assert_allclose(results[f"mirrored/log/{name}"],
                               results[f"one/log/{name}"], rtol=1e-4,
                               atol=1e-5, err_msg=name)
  _check_loss_assembly({name: float(results[f"one/log/{name}"])
                        for name in log_names})
  # Adam's first moments are (1 - beta_1) * gradient: they pin the all-reduced
  # gradient's scale, which Adam's first step (about +-lr) would hide.
  slots = [k.split("/", 2)[2] for k in results if k.startswith("one/slot/")]
  assert any("momentum" in k for k in slots), slots
  for key in slots:
    one = results[f"one/slot/{key}"]
    # The floor absorbs denormal noise in slots whose gradient is ~0.
    np.testing.assert_allclose(
        results[f"mirrored/slot/{key}"], one, rtol=1e-3,
        atol=1e-3 * float(np.max(np.abs(one))) + 1e-20, err_msg=key)
  moved = set()
  for part, learning_rate in (("g", 1e-4), ("c", 1e-5)):
    keys = [k.split("/", 2)[2] for k in results if k.startswith(f"one/{part}/")]
    for key in keys:
      one = results[f"one/{part}/{key}"]
      mirrored = results[f"mirrored/{part}/{key}"]
      # Adam's first step moves a weight by ~lr; where a gradient is near
      # Adam's epsilon, float noise changes the move by a fraction of lr
      # (up to 0.14 lr on 2 of the critic's 4M conv6 weights, AVX2 CPU).
      np.testing.assert_allclose(mirrored, one, rtol=0,
                                 atol=0.2 * learning_rate,
                                 err_msg=f"{part} weight {key}")
      if np.any(one != results[f"initial/{part}/{key}"]):
        moved.add(key)
  # Both networks took a step: the generator's first and last convolutions
  # and every critic kernel. (Deep g_A parameters can have exactly zero
  # gradient at initialisation, where their maps underflow to 0.)
  critic_kernels = {k.split("/", 2)[2] for k in results
                    if k.startswith("one/c/") and k.endswith(":kernel")}
  assert {"ec1:kernel", "dc7:kernel"} | critic_kernels <= moved


def _check_loss_assembly(logs):
  """The minimised totals are the weighted sums of the logged terms."""
  from lbam_tf import losses
  weights = losses.PRESETS["reference"]
  names = ("hole", "valid", "perceptual", "style", "adversarial")
  # Distinct weights and terms, so that swapping two weights shows.
  assert len({getattr(weights, name) for name in names}) == len(names)
  assert len({logs[name] for name in names}) == len(names)
  assert logs["gradient_penalty"] > 0
  sums = {"generator_loss": [getattr(weights, name) * logs[name]
                             for name in names],
          "critic_loss": [-logs["wasserstein"], weights.gradient_penalty
                          * logs["gradient_penalty"]]}
  # float32 sums: the tolerance scales with the terms (some are negative).
  wrong = {total: (logs[total], sum(terms)) for total, terms in sums.items()
           if abs(logs[total] - sum(terms)) > 1e-5 * sum(map(abs, terms))}
  assert not wrong, f"logged total vs weighted sum of its terms: {wrong}"


def test_check_finite_names_the_term_and_step():
  from lbam_tf import gan
  with pytest.raises(FloatingPointError, match=r"'style' is nan at step 41"):
    gan.check_finite({"hole": 0.1, "style": float("nan")}, step=41)


if __name__ == "__main__":
  _compare_strategies(sys.argv[1])
