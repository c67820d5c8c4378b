"""`python -m lbam_tf.train` as a user runs it: real subprocesses, tiny steps.

One model_dir goes through a run killed by SIGKILL, a resumed run stopped by
SIGTERM, and a resumed run that finishes; each stage checks what the contract
promises (config.json, checkpoints, TensorBoard, generator.weights.h5, the
step and the optimizers carried over).
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from lbam_tf import data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROP = 128


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """A tiny TFRecord data_dir written with lbam_tf.data's own writer."""
  root = tmp_path_factory.mktemp("data")
  rng = np.random.default_rng(0)
  ramp = np.linspace(0, 255, CROP)[None, :, None]

  def images(n):
    return [np.clip(ramp + rng.integers(0, 40, size=(CROP, CROP, 3)), 0,
                    255).astype(np.uint8) for _ in range(n)]

  def masks(n):
    out = []
    for _ in range(n):
      mask = np.zeros((CROP, CROP), np.uint8)
      y, x = rng.integers(0, CROP - 48, size=2)
      mask[y:y + 48, x:x + 48] = 255
      out.append(mask)
    return out

  for split, count in (("train", 4), ("val", 2)):
    records = [data.image_example(im, f"{split}/{i}")
               for i, im in enumerate(images(count))]
    data.write_tfrecords(str(root / data.shard_name("images", split, 0, 1)),
                         records)
  for split, count in (("train", 4), ("test", 2)):
    records = [data.mask_example(m, f"box/{split}/{i}")
               for i, m in enumerate(masks(count))]
    data.write_tfrecords(str(root / data.shard_name("masks", split, 0, 1)),
                         records)
  # The part of pipeline.preprocess's manifest that training reads.
  with open(root / "manifest.json", "w") as f:
    json.dump({"counts": {"images": {"train": 4, "val": 2, "test": 0},
                          "masks": {"train": 4, "test": 2}},
               "flags": {"crop_size": CROP}}, f)
  return str(root)


def _command(data_dir, model_dir, *extra):
  """A tiny run: summaries, validation and saves only when `extra` asks."""
  return [sys.executable, "-m", "lbam_tf.train", "--preset", "cpu_small",
          "--data_dir", data_dir, "--model_dir", model_dir, "--batch_size", "2",
          "--vgg_weights", "none", "--critic_steps", "2", "--log_every", "1",
          "--image_every", "1000", "--val_every", "1000", "--val_steps", "0",
          "--checkpoint_every", "1000", *extra]


class _Run:
  """A training subprocess with its output in a file; always stopped."""

  def __init__(self, command, log_path):
    self.log_path = log_path
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    self.log = open(log_path, "w")
    self.process = subprocess.Popen(command, cwd=ROOT, env=env,
                                    stdout=self.log, stderr=subprocess.STDOUT)

  def output(self):
    with open(self.log_path) as f:
      return f.read()

  def wait_for(self, condition, what, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      if condition():
        return
      if self.process.poll() is not None:
        break
      time.sleep(0.5)
    pytest.fail(f"{what} did not happen; output:\n{self.output()[-3000:]}")

  def wait(self, timeout=300):
    try:
      return self.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      pytest.fail(f"run did not finish:\n{self.output()[-3000:]}")

  def stop(self):
    if self.process.poll() is None:
      self.process.kill()
      self.process.wait(timeout=30)
    self.log.close()


def _latest_step(model_dir):
  path = tf.train.latest_checkpoint(model_dir)
  return None if path is None else int(path.rsplit("-", 1)[1])


def _read(model_dir, key):
  return tf.train.load_checkpoint(model_dir).get_tensor(
      f"{key}/.ATTRIBUTES/VARIABLE_VALUE")


def _tags(event_dir):
  tags = set()
  for name in os.listdir(event_dir):
    for event in tf.compat.v1.train.summary_iterator(
        os.path.join(event_dir, name)):
      tags.update(value.tag for value in event.summary.value)
  return tags


def _restored_optimizer_slots(model_dir):
  """Builds the run's objects in-process and restores the latest checkpoint."""
  from lbam_tf import critic, gan, generator
  g, c = generator.build_generator(), critic.build_critic()
  g_opt = gan.make_optimizer(1e-4, 0.5, 0.9)
  c_opt = gan.make_optimizer(1e-5, 0.0, 0.9)
  g_opt.build(g.trainable_variables)
  c_opt.build(c.trainable_variables)
  step = tf.Variable(0, dtype=tf.int64)
  checkpoint = tf.train.Checkpoint(step=step, generator=g, critic=c,
                                   generator_optimizer=g_opt,
                                   critic_optimizer=c_opt)
  checkpoint.restore(tf.train.latest_checkpoint(model_dir)).assert_consumed()
  return g_opt, c_opt


def test_kill_terminate_resume_finish(data_dir, tmp_path):
  model_dir = str(tmp_path / "run")

  # 1. SIGKILL after two checkpoints: the last one survives intact.
  # Images every step, so step 1's are written when checkpoint 2 appears;
  # validation once, at step 0.
  run = _Run(_command(data_dir, model_dir, "--train_steps", "1000",
                      "--checkpoint_every", "1", "--image_every", "1",
                      "--val_steps", "1"), tmp_path / "kill.log")
  try:
    run.wait_for(lambda: (_latest_step(model_dir) or 0) >= 2, "checkpoint 2")
    run.process.send_signal(signal.SIGKILL)
    run.wait()
  finally:
    run.stop()
  killed_at = _latest_step(model_dir)
  assert int(_read(model_dir, "step")) == killed_at
  with open(os.path.join(model_dir, "config.json")) as f:
    config = json.load(f)
  assert (config["variant"], config["ablation"], config["crop_size"]) == (
      "head", "none", CROP)
  train_tags = _tags(os.path.join(model_dir, "train"))
  for tag in ("loss/hole", "loss/valid", "loss/perceptual", "loss/style",
              "loss/adversarial", "loss/gradient_penalty", "loss/wasserstein",
              "loss/critic_loss", "loss/generator_loss",
              "learning_rate/generator", "learning_rate/critic", "input",
              "mask", "output", "composite", "ground_truth",
              "attention/forward_1", "attention/reverse_6"):
    assert tag in train_tags, (tag, sorted(train_tags))
  assert {"metrics/psnr", "metrics/ssim", "metrics/l1_percent"} <= _tags(
      os.path.join(model_dir, "val"))

  # 2. Resume, then SIGTERM before the next regular checkpoint: it saves anyway.
  run = _Run(_command(data_dir, model_dir, "--train_steps", "1000"),
             tmp_path / "term.log")
  try:
    run.wait_for(lambda: "resumed from" in run.output(), "resume")
    assert f"ckpt-{killed_at} at step {killed_at} " in run.output()
    run.process.send_signal(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGTERM, run.output()[-3000:]
  finally:
    run.stop()
  terminated_at = _latest_step(model_dir)
  assert terminated_at == killed_at + 1

  # 3. Resume and finish: step and optimizer counts carry on. The checkpoint
  # holds exactly the run's objects (assert_consumed) with non-zero Adam
  # moments, which a resume restores with the iteration counts checked below.
  for optimizer in _restored_optimizer_slots(model_dir):
    slots = [v for v in optimizer.variables
             if "momentum" in v.path or "velocity" in v.path]
    assert slots and any(np.any(v.numpy() != 0) for v in slots)
  final = terminated_at + 1
  run = _Run(_command(data_dir, model_dir, "--train_steps", str(final)),
             tmp_path / "finish.log")
  try:
    assert run.wait() == 0, run.output()[-3000:]
  finally:
    run.stop()
  assert _latest_step(model_dir) == final
  assert int(_read(model_dir, "step")) == final
  assert int(_read(model_dir, "generator_optimizer/_iterations")) == final
  assert int(_read(model_dir, "critic_optimizer/_iterations")) == 2 * final
  assert os.path.isfile(os.path.join(model_dir, "generator.weights.h5"))


def _finished(command, log_path):
  """Runs `command` to its end; returns (exit status, output)."""
  run = _Run(command, log_path)
  try:
    return run.wait(timeout=600), run.output()
  finally:
    run.stop()


def test_mixed_precision_replicas_epochs_and_refusals(data_dir, tmp_path):
  model_dir = str(tmp_path / "run")

  def command(directory, *extra):
    return _command(data_dir, directory, "--critic_steps", "1", *extra)

  # 1. --mixed_precision on the CPU: bfloat16 compute, float32 saves.
  status, output = _finished(
      command(model_dir, "--train_steps", "1", "--mixed_precision"),
      tmp_path / "mixed.log")
  assert status == 0, output[-3000:]
  assert "new run at step 0 of 1 (1 replicas, bfloat16 compute)" in output
  dtypes = tf.train.load_checkpoint(model_dir).get_variable_to_dtype_map()
  floats = {k: v for k, v in dtypes.items() if v.is_floating}
  # The networks' variables are saved through their optimizers' variable
  # lists (`<optimizer>/_trainable_variables/<i>`), beside Adam's slots.
  for owner in ("generator_optimizer/_trainable_variables/",
                "critic_optimizer/_trainable_variables/",
                "generator_optimizer/", "critic_optimizer/"):
    assert any(k.startswith(owner) for k in floats), (owner, sorted(dtypes))
  assert set(floats.values()) == {tf.float32}

  # 2. --cpu_replicas 2 makes two replicas, over which a batch of 3 does not
  # split: refused before anything is written.
  other_dir = str(tmp_path / "odd")
  status, output = _finished(
      command(other_dir, "--train_steps", "1", "--strategy", "mirrored",
              "--cpu_replicas", "2", "--batch_size", "3"),
      tmp_path / "odd.log")
  assert status == 1
  assert "--batch_size 3 does not split over 2 replicas" in output
  assert not os.path.exists(os.path.join(other_dir, "config.json"))

  # 3. Resuming with another --variant names both and the remedy.
  status, output = _finished(
      command(model_dir, "--train_steps", "2", "--variant", "original_bn"),
      tmp_path / "variant.log")
  assert status == 1
  assert "--variant 'original_bn' differs from 'head'" in output
  assert "use a new --model_dir" in output
  assert _latest_step(model_dir) == 1

  # 4. Resumed without --mixed_precision, --epochs 1.25 of the manifest's 4
  # train images at batch 2: ceil(2.5) = 3 steps in all; a new generator
  # rate wins over the one the checkpoint holds.
  status, output = _finished(
      command(model_dir, "--epochs", "1.25", "--generator_lr", "3e-4"),
      tmp_path / "f32.log")
  assert status == 0, output[-3000:]
  assert "at step 1 of 3 (1 replicas, float32 compute)" in output
  assert _latest_step(model_dir) == 3
  assert int(_read(model_dir, "generator_optimizer/_iterations")) == 3
  assert np.isclose(_read(model_dir, "generator_optimizer/_learning_rate"),
                    3e-4)

  # 5. A loss that overflows float32 (a hole weight of 1e39) stops the run
  # with status 1 at that step, naming it, and saves nothing from it.
  status, output = _finished(
      command(model_dir, "--train_steps", "10", "--hole_weight", "1e39",
              "--checkpoint_every", "1"), tmp_path / "inf.log")
  assert status == 1, output[-3000:]
  assert "loss term 'generator_loss' is inf at step 4" in output
  assert "the last good checkpoint is " in output
  assert _latest_step(model_dir) == 3
  assert not [name for name in os.listdir(model_dir)
              if name.startswith("ckpt-4")]
