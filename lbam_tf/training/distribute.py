"""Where training runs: the tf.distribute strategy and what a cluster needs.

One device, all local GPUs (or CPU replicas), or a cluster from TF_CONFIG
(MultiWorkerMirroredStrategy): which worker is the chief, the scratch folders
of the others, TF's preemption handler, and the training loop for the cluster,
where Keras 3's `fit` cannot run (BUILD_NOTES.md, "Multi-worker").
"""

import os
import tempfile

from absl import logging
import tensorflow as tf


def make_strategy(name, cpu_replicas=1):
  """The strategy called `name` (see `train_config.STRATEGIES`).

  Raises ValueError when the process is too far along for it: collective ops
  and CPU replicas can only be configured before TensorFlow initialises its
  devices, so such runs need a fresh process (the command line is one).
  """
  if name == "multi_worker":
    # Before anything initialises TF's context (listing devices does).
    if not os.environ.get("TF_CONFIG"):
      raise ValueError(
          "--strategy multi_worker needs TF_CONFIG, e.g. '{\"cluster\": "
          "{\"worker\": [\"host1:port\", \"host2:port\"]}, \"task\": "
          "{\"type\": \"worker\", \"index\": 0}}' on the first worker "
          "(see the README)")
    try:
      return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
      raise ValueError(f"--strategy multi_worker: {error}; start training in "
                       "a fresh process (python -m lbam_tf.train)") from None
  if cpu_replicas > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
    except RuntimeError as error:
      raise ValueError(f"--cpu_replicas {cpu_replicas}: {error}; start "
                       "training in a fresh process (python -m "
                       "lbam_tf.train)") from None
  gpus = tf.config.list_logical_devices("GPU")
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if gpus:
    return tf.distribute.MirroredStrategy()
  cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
  return tf.distribute.MirroredStrategy(cpus)


def is_cluster(strategy):
  return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy):
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  return (resolver.task_type == "chief"
          or (resolver.task_type == "worker" and resolver.task_id == 0
              and "chief" not in resolver.cluster_spec().as_dict()))


def worker_scratch(strategy):
  """A new temporary folder of this cluster task (the caller removes it).

  Non-chief workers write their checkpoints there: every worker must save
  (saving runs collectives), only the chief's count."""
  resolver = strategy.cluster_resolver
  return tempfile.mkdtemp(prefix=f"lbam_{resolver.task_type}"
                          f"{resolver.task_id}_")


def preemption_handler(strategy, save, stop, scratch):
  """TF's PreemptionCheckpointHandler: after a SIGTERM to any worker, every
  worker calls `save()` at the same step, then `stop()` (which raises).

  Training restores from model_dir on every worker, so the handler gets an
  empty Checkpoint in `scratch`: its run counter then starts at 0 on every
  worker (restored from model_dir on the chief only, it would make the
  workers pick different steps to save at)."""
  return tf.distribute.experimental.PreemptionCheckpointHandler(
      strategy.cluster_resolver, tf.train.Checkpoint(),
      checkpoint_dir=os.path.join(scratch, "preemption"),
      termination_config=tf.distribute.experimental.TerminationConfig(
          exit_fn=stop, save_fn=save))


def shard_by_data(dataset):
  """Every worker reads all files and keeps its replicas' slices of each
  global batch: the same batches as on one device (BUILD_NOTES.md)."""
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  return dataset.with_options(options)


def fit_on_cluster(model, dataset, strategy, monitor, steps_per_epoch):
  """`model.fit`'s loop for MultiWorkerMirroredStrategy, whose logs Keras 3's
  fit cannot reduce (keras-team/keras#20585): the same train_step, the same
  callback, an "epoch" of `steps_per_epoch` steps, the same batches (every
  iterator of the training dataset yields the same stream: lbam_tf.data.records)."""

  @tf.function(jit_compile=model.jit_compile)
  def train_step(batch):
    return strategy.run(model.train_step, args=(batch,))

  batches = iter(strategy.experimental_distribute_dataset(dataset))
  model.stop_training = False
  monitor.set_model(model)
  monitor.on_train_begin()
  while not model.stop_training:
    for tracker in model.metrics:
      tracker.reset_state()
    for _ in range(steps_per_epoch):
      # train_step all-reduces what it logs: every replica holds the same.
      logs = {name: float(strategy.experimental_local_results(value)[0])
              for name, value in train_step(next(batches)).items()}
      monitor.on_train_batch_end(None, logs)
      if model.stop_training:
        break
    monitor.on_epoch_end(None, logs)
    if monitor.chief:
      logging.info("step %d: %s", int(model.step.numpy()), " ".join(
          f"{name} {value:.4g}" for name, value in logs.items()))
