"""`python -m lbam_tf.train` as a user runs it: real subprocesses, tiny steps.

One model_dir goes through a run killed by SIGKILL and a resumed run stopped
by SIGTERM; each stage checks what the contract promises (config.json,
checkpoints, TensorBoard, the step and the optimizers carried over). Then the
one refusal that only a fresh process can show (CPU replicas). Runs that
finish (exit 0, generator.weights.h5) are in test_distributed_training.py;
what runs in-process is in test_training.py.
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

import tiny_data

pytestmark = pytest.mark.heavy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROP = tiny_data.CROP


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tiny_data.write(tmp_path_factory.mktemp("data"))


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


def _tags(event_dir):
  tags = set()
  for name in os.listdir(event_dir):
    for event in tf.compat.v1.train.summary_iterator(
        os.path.join(event_dir, name)):
      tags.update(value.tag for value in event.summary.value)
  return tags


def _restored_optimizer_slots(model_dir):
  """Builds the run's objects in-process and restores the latest checkpoint."""
  from lbam_tf.model import critic
  from lbam_tf.model import generator
  from lbam_tf.training import gan
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


def test_kill_then_resume_and_terminate(data_dir, tmp_path):
  model_dir = str(tmp_path / "run")

  # 1. SIGKILL after two checkpoints: the last one survives intact.
  # Images every step, so step 1's are written when checkpoint 2 appears;
  # validation once, at step 0.
  run = _Run(_command(data_dir, model_dir, "--train_steps", "1000",
                      "--checkpoint_every", "1", "--image_every", "1",
                      "--val_steps", "1"), tmp_path / "kill.log")
  try:
    run.wait_for(lambda: (tiny_data.latest_step(model_dir) or 0) >= 2,
                 "checkpoint 2")
    run.process.send_signal(signal.SIGKILL)
    run.wait()
  finally:
    run.stop()
  killed_at = tiny_data.latest_step(model_dir)
  assert int(tiny_data.checkpointed(model_dir, "step")) == killed_at
  with open(os.path.join(model_dir, "config.json")) as f:
    config = json.load(f)
  # cpu_small's values, but where a flag was given.
  assert (config["variant"], config["ablation"], config["crop_size"],
          config["batch_size"], config["log_every"], config["preset"]) == (
      "head", "none", CROP, 2, 1, "cpu_small")
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
  terminated_at = tiny_data.latest_step(model_dir)
  assert terminated_at == killed_at + 1

  # The step and both optimizers' counts carried on from the killed run's
  # checkpoint (critic_steps 2). The checkpoint holds exactly the run's
  # objects (assert_consumed) with non-zero Adam moments.
  assert int(tiny_data.checkpointed(model_dir, "step")) == terminated_at
  iterations = {name: int(tiny_data.checkpointed(
      model_dir, f"{name}_optimizer/_iterations")) for name in ("generator",
                                                                "critic")}
  assert iterations == {"generator": terminated_at,
                        "critic": 2 * terminated_at}
  for optimizer in _restored_optimizer_slots(model_dir):
    slots = [v for v in optimizer.variables
             if "momentum" in v.path or "velocity" in v.path]
    assert slots and any(np.any(v.numpy() != 0) for v in slots)


def _finished(command, log_path):
  """Runs `command` to its end; returns (exit status, output)."""
  run = _Run(command, log_path)
  try:
    return run.wait(timeout=600), run.output()
  finally:
    run.stop()


def test_cpu_replicas_refuse_a_batch_that_does_not_split(data_dir, tmp_path):
  # Two CPU replicas exist only in a fresh process: the command line's case.
  model_dir = str(tmp_path / "odd")
  status, output = _finished(
      _command(data_dir, model_dir, "--train_steps", "1", "--strategy",
               "mirrored", "--cpu_replicas", "2", "--batch_size", "3"),
      tmp_path / "odd.log")
  assert status == 1
  assert "--batch_size 3 does not split over 2 replicas" in output
  assert not os.path.exists(os.path.join(model_dir, "config.json"))
