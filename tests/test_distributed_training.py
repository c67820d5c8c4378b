"""`python -m lbam_tf.train` on two replicas takes the same steps as on one
device: `--strategy mirrored --cpu_replicas 2` in one process, and
`--strategy multi_worker` on two real worker processes over loopback
(TF_CONFIG with free 127.0.0.1 ports).

Two steps each (global batch 2, one example per replica) against the same
command on one device: the same losses, weights and Adam moments at every
step, and the one-device run's totals are the weighted sums of its logged
terms. Only the chief writes model_dir, and the other worker's temporary
folder is gone at exit. Then a resume of the cluster to step 4, where a
SIGTERM to the non-chief worker after step 3 stops both workers at the same
saved step (TF's PreemptionCheckpointHandler) instead of leaving the chief
waiting in a collective. Every process is killed at the end, also on failure.
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

from lbam_tf.training import losses
from serving import processes

import tiny_data

pytestmark = pytest.mark.heavy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 1200


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """Four train crops and four train masks."""
  return tiny_data.write(tmp_path_factory.mktemp("data"), {"train": 4},
                         {"train": 4})


class _Processes:
  """Training processes with their output in files; all killed on exit."""

  def __init__(self, folder):
    self.folder = folder
    self.started = []

  def __enter__(self):
    return self

  def start(self, name, arguments, **env):
    log_path = os.path.join(self.folder, f"{name}.log")
    environment = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2",
                       **env)
    with open(log_path, "w") as log:
      process = subprocess.Popen(
          [sys.executable, "-m", "lbam_tf.train", *arguments], cwd=ROOT,
          env=environment, stdout=log, stderr=subprocess.STDOUT,
          start_new_session=True)
    process.log_path = log_path
    self.started.append(process)
    return process

  def cluster(self, name, arguments, tmpdir):
    """Two workers; TMPDIR shows what their temporary folders leave."""
    addresses = [f"127.0.0.1:{port}" for port in processes.free_ports(2)]
    return [self.start(f"{name}{index}", arguments, TMPDIR=tmpdir,
                       TF_CONFIG=json.dumps({
                           "cluster": {"worker": addresses},
                           "task": {"type": "worker", "index": index}}))
            for index in range(2)]

  def __exit__(self, *exc):
    for process in self.started:
      if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _output(process):
  with open(process.log_path) as f:
    return f.read()


def _wait(process, timeout=TIMEOUT):
  try:
    return process.wait(timeout=timeout)
  except subprocess.TimeoutExpired:
    pytest.fail(f"{process.log_path} did not finish:\n"
                f"{_output(process)[-3000:]}")


def _command(data_dir, model_dir, strategy, steps, *extra):
  return ["--preset", "cpu_small", "--data_dir", data_dir,
          "--model_dir", model_dir, "--strategy", strategy,
          "--train_steps", str(steps), "--batch_size", "2",
          "--vgg_weights", "none", "--critic_steps", "1", "--log_every", "1",
          "--checkpoint_every", "1", "--max_to_keep", "10", "--val_steps", "0",
          "--image_every", "1000", "--seed", "3", *extra]


def _tree(folder):
  """Files under `folder`; TensorBoard event files counted, not named."""
  names = []
  for root, _, files in os.walk(folder):
    for name in files:
      path = os.path.relpath(os.path.join(root, name), folder)
      names.append(os.path.join(os.path.dirname(path), "events")
                   if name.startswith("events.out") else path)
  return sorted(names)


def _variables(model_dir, step):
  reader = tf.train.load_checkpoint(os.path.join(model_dir, f"ckpt-{step}"))
  return {key: reader.get_tensor(key)
          for key in reader.get_variable_to_shape_map()
          if key.endswith("VARIABLE_VALUE")}


def _losses(model_dir):
  """{(step, name): value} of the chief's TensorBoard loss scalars."""
  folder = os.path.join(model_dir, "train")
  values = {}
  for name in os.listdir(folder):
    for event in tf.compat.v1.train.summary_iterator(
        os.path.join(folder, name)):
      for value in event.summary.value:
        if value.tag.startswith("loss/"):
          values[(event.step, value.tag)] = float(
              tf.make_ndarray(value.tensor))
  return values


def _assert_same_step(ones, twos, step):
  """`_variables` of two runs at `step`: weights within 0.1 x learning rate but for float noise in at most 1 in
  100,000 (within one Adam step of lr per step there); Adam's moments (they pin
  the all-reduced gradient's scale, which Adam's steps hide) within 1e-3 of
  themselves, with a floor of 1e-6 of the optimizer's largest moment for
  tensors whose gradient is ~0 (float noise, even in sign)."""
  assert ones.keys() == twos.keys()
  scale = {}
  for key, value in ones.items():
    if "_optimizer/_variables/" in key:
      prefix = key.split("/")[0]
      scale[prefix] = max(scale.get(prefix, 0.0), float(np.max(np.abs(value))))
  checked = {"weights": 0, "moments": 0}
  for key, value in ones.items():
    # The checkpoint reaches most weights through the optimizers' references.
    if "_trainable_variables/" in key or key.startswith(("generator/",
                                                          "critic/")):
      rate = 1e-4 if key.startswith("generator") else 1e-5
      # Adam moves a weight by about lr per step. Where a gradient is near
      # Adam's epsilon, float noise in the all-reduce changes that move by a
      # fraction of lr (0.21 lr seen on 1 of 2M critic weights); a different
      # batch changes it for a large share of all weights.
      np.testing.assert_allclose(twos[key], value, rtol=0, atol=step * rate,
                                 err_msg=f"step {step} {key}")
      off = np.abs(twos[key] - value) > 0.1 * rate
      assert off.sum() <= max(1, 1e-5 * off.size), (
          f"step {step} {key}: {off.sum()} of {off.size} weights differ by "
          "more than 0.1 lr")
      checked["weights"] += 1
    elif "_optimizer/_variables/" in key:
      floor = 1e-6 * scale[key.split("/")[0]]
      np.testing.assert_allclose(
          twos[key], value, rtol=1e-3,
          atol=1e-3 * float(np.max(np.abs(value))) + floor,
          err_msg=f"step {step} {key}")
      checked["moments"] += 1
    else:
      np.testing.assert_array_equal(twos[key], value, err_msg=key)
  assert checked["weights"] > 100 and checked["moments"] > 200, checked


def _assert_same_losses(expected, actual):
  """The same `_losses` at every step, up to float noise."""
  assert {name for _, name in expected} >= {
      "loss/generator_loss", "loss/critic_loss", "loss/gradient_penalty"}
  assert actual.keys() == expected.keys()
  for key, value in expected.items():
    np.testing.assert_allclose(actual[key], value, rtol=1e-4, atol=1e-5,
                               err_msg=str(key))


def _assert_loss_assembly(logged, step):
  """The minimised totals are the weighted sums of the terms `_losses` read."""
  logs = {name.split("/", 1)[1]: value
          for (at, name), value in logged.items() if at == step}
  weights = losses.PRESETS["reference"]
  names = ("hole", "valid", "perceptual", "style", "adversarial")
  # Distinct weights and terms, so that swapping two weights shows.
  assert len({getattr(weights, name) for name in names}) == len(names)
  assert len({logs[name] for name in names}) == len(names), logs
  assert logs["gradient_penalty"] > 0
  sums = {"generator_loss": [getattr(weights, name) * logs[name]
                             for name in names],
          "critic_loss": [-logs["wasserstein"], weights.gradient_penalty
                          * logs["gradient_penalty"]]}
  # float32 sums: the tolerance scales with the terms (some are negative).
  wrong = {total: (logs[total], sum(terms)) for total, terms in sums.items()
           if abs(logs[total] - sum(terms)) > 1e-5 * sum(map(abs, terms))}
  assert not wrong, f"logged total vs weighted sum of its terms: {wrong}"


def _assert_both_networks_moved(first, second):
  """Between two steps' `_variables`: the generator's first and last
  convolutions and every critic kernel changed. (Deep g_A parameters can have
  exactly zero gradient near initialisation, where their maps underflow
  to 0.)"""
  kernels = [key for key in first
             if key.startswith("critic_optimizer/_trainable_variables/")
             and first[key].ndim == 4]
  generator_keys = [key for key in first if key.startswith(
      "generator_optimizer/_trainable_variables/")]
  assert len(kernels) > 5 and len(generator_keys) > 50
  # The generator's variables in model order: ec1's kernel (image and mask
  # in, 64 out) first, the output layer's (dc7: 3 out of 128) last.
  ordered = sorted(generator_keys, key=lambda k: int(k.split("/")[2]))
  ends = [ordered[0], ordered[-1]]
  assert [first[key].shape for key in ends] == [(4, 4, 4, 64), (4, 4, 3, 128)]
  unmoved = [key for key in kernels + ends
             if np.array_equal(first[key], second[key])]
  assert not unmoved, unmoved


def test_two_replicas_match_one_device_then_resume_and_stop(data_dir,
                                                             tmp_path):
  single, mirrored = str(tmp_path / "single"), str(tmp_path / "mirrored")
  cluster = str(tmp_path / "cluster")
  tmpdir = tmp_path / "worker_tmp"
  tmpdir.mkdir()
  with _Processes(str(tmp_path)) as processes:
    reference = processes.start(
        "single", _command(data_dir, single, "one_device", 2))
    local = processes.start(
        "mirrored", _command(data_dir, mirrored, "mirrored", 2,
                             "--cpu_replicas", "2"))
    workers = processes.cluster(
        "worker", _command(data_dir, cluster, "multi_worker", 2), str(tmpdir))
    for process in [*workers, local, reference]:
      assert _wait(process) == 0, _output(process)[-3000:]
    assert "(2 replicas, float32 compute)" in _output(local)

    # The reference's checkpoints (1.1 GB each) and logs, read once.
    reference = {step: _variables(single, step) for step in (1, 2)}
    reference_losses = _losses(single)
    _assert_loss_assembly(reference_losses, 2)
    _assert_both_networks_moved(reference[1], reference[2])
    for two in (mirrored, cluster):
      _assert_same_losses(reference_losses, _losses(two))
      for step in (1, 2):
        _assert_same_step(reference[step], _variables(two, step), step)
    # Only the chief wrote model_dir, and the other worker's folder is gone.
    assert _tree(cluster) == _tree(single) == _tree(mirrored)
    assert "generator.weights.h5" in _tree(cluster)
    assert _tree(str(tmpdir)) == []

    # Resume; SIGTERM to the non-chief once step 3 is saved.
    workers = processes.cluster(
        "resume", _command(data_dir, cluster, "multi_worker", 1000),
        str(tmpdir))
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(os.path.join(cluster, "ckpt-3.index")):
      assert time.monotonic() < deadline and workers[0].poll() is None, (
          _output(workers[0])[-3000:])
      time.sleep(0.5)
    workers[1].send_signal(signal.SIGTERM)
    codes = [_wait(process, timeout=300) for process in workers]
    assert codes == [128 + signal.SIGTERM] * 2, (
        codes, _output(workers[0])[-2000:], _output(workers[1])[-2000:])
  for process in workers:
    assert "resumed from" in _output(process) and "ckpt-2 at step 2" in (
        _output(process))
  saved = int(tf.train.latest_checkpoint(cluster).rsplit("-", 1)[1])
  assert saved >= 4
  for process in workers:
    assert f"every worker saved step {saved}," in _output(process)
  reader = tf.train.load_checkpoint(cluster)
  for key, count in (("step", saved), ("generator_optimizer/_iterations",
                                       saved),
                     ("critic_optimizer/_iterations", saved)):
    assert int(reader.get_tensor(f"{key}/.ATTRIBUTES/VARIABLE_VALUE")) == (
        count), key
  assert _tree(str(tmpdir)) == []
  assert not any("worker" in name for name in _tree(cluster))
