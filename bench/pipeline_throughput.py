r"""Throughput of the data pipeline: the Beam job with 1 and 2 workers, and the reader.

Measures images/s and masks/s of `pipeline.preprocess` on the
multi-processing DirectRunner for each --workers count (with --runner dask,
also on Beam's DaskRunner against a local dask.distributed cluster), whole
jobs and without their start-up, and the scaling between the counts; then
images/s of `lbam_tf.data.records.make_dataset` (training mode) against the
images/s one training step consumes (a generator forward + backward here, or
--train_step_seconds): the reader must outrun training by at least 10x.
Images are the sample photos copied --copies times under distinct names.
README.md ("Throughput") and BUILD_NOTES.md have the figures.

  python -m bench.pipeline_throughput            # full run (minutes; quiet machine)
  python -m bench.pipeline_throughput --quick    # smoke run
  python -m bench.pipeline_throughput --runner dask --quick
"""

import dataclasses
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
import tqdm  # noqa: E402

from lbam_tf import cli  # noqa: E402



@dataclasses.dataclass(frozen=True)
class Config:
  """What to time; the flags of the same names."""
  images: str = cli.option("examples/images/*.jpg",
                           "Glob of source photos to copy.")
  copies: int = cli.option(
      40, "Copies of each source photo (distinct keys, so distinct crops).")
  num_masks: int = cli.option(3000, "Masks the mask-only job draws.")
  crop_size: int = cli.option(
      256, "Crop and mask size of the job, the reader and the train step.")
  crops_per_image: int = cli.option(4, "Crops per source image in the job.")
  workers: tuple = cli.option(
      ("1", "2"), "Worker counts to time: DirectRunner worker processes "
      "(multi_processing), and Dask worker processes.")
  runner: str = cli.option(
      "direct", "direct: the DirectRunner only; dask: also Beam's DaskRunner "
      "on a local dask.distributed cluster.", choices=("direct", "dask"))
  dask_partitions: int = cli.option(
      8, "--dask_npartitions of the Dask jobs: bags per Create, the unit of "
      "parallel work on Dask.")
  batch_size: int = cli.option(
      8, "Batch size of the reader and of the timed train step.")
  reader_batches: int = cli.option(
      50, "Batches the reader is timed over (after warm-up).")
  train_step_seconds: float | None = cli.option(
      None, "Seconds per training step to compare against, e.g. from a "
      "train log; unset: time a generator forward+backward here.")
  train_steps: int = cli.option(
      3, "Generator steps timed (after one warm-up step).")
  quick: bool = cli.option(
      False, "Smoke run: 2 copies, 60 masks, 128 crops, batch 2, 10 reader "
      "batches, 1 train step.")


def _copy_images(pattern, copies, folder):
  import glob
  sources = sorted(glob.glob(pattern))
  if not sources:
    raise app.UsageError(f"--images {pattern!r} matches no files")
  for copy in range(copies):
    for path in sources:
      stem, ext = os.path.splitext(os.path.basename(path))
      shutil.copy(path, os.path.join(folder, f"{stem}_{copy:04d}{ext}"))
  return len(sources) * copies


def _time_job(config, args):
  from pipeline import preprocess
  start = time.perf_counter()
  result = preprocess.run(config, args)
  seconds = time.perf_counter() - start
  if hasattr(result, "client"):  # the DaskRunner's connection
    result.client.close()
  return seconds


def _direct_args(workers):
  return [f"--direct_num_workers={workers}",
          "--direct_running_mode=multi_processing"]


def _start_dask(workers):
  """A local cluster of `workers` single-thread worker processes; seconds."""
  from distributed import LocalCluster
  # The workers unpickle the job's DoFns: they import pipeline and lbam_tf.
  os.environ["PYTHONPATH"] = os.path.dirname(
      os.path.dirname(os.path.abspath(__file__)))
  start = time.perf_counter()
  cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                         processes=True, host="127.0.0.1",
                         dashboard_address=None)
  return cluster, time.perf_counter() - start


def _dask_args(cluster, partitions):
  return ["--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
          f"--dask_client_address={cluster.scheduler_address}",
          f"--dask_npartitions={partitions}"]


def _time_runner(name, args, root, folder, num_images, num_masks, crop, load,
                 crops_per_image, warm_up=False):
  """(images/s, masks/s, both without the start-up) of one runner setting.

  warm_up: run the six-mask job once first, untimed in the rates (a Dask
  worker imports the job's modules on its first task, once per cluster)."""
  from pipeline import preprocess
  tag = name.split(" worker")[0].replace(" ", "_")
  image_config = preprocess.Config(
      output_dir=os.path.join(root, f"images_{tag}"),
      input_pattern=os.path.join(folder, "*"), load_size=load, crop_size=crop,
      crops_per_image=crops_per_image, num_masks=0, num_shards=4)
  mask_config = preprocess.Config(
      output_dir=os.path.join(root, f"masks_{tag}"), crop_size=crop,
      load_size=load, num_masks=num_masks, num_shards=4)
  # A six-mask job: start-up and teardown (worker processes, imports).
  empty_config = preprocess.Config(
      output_dir=os.path.join(root, f"empty_{tag}"), crop_size=crop,
      load_size=load, num_masks=6, mask_test_fraction=0.5, num_shards=4)
  if warm_up:
    print(f"{name}: first job (worker imports) "
          f"{_time_job(empty_config, args):.1f} s")
  overhead = _time_job(empty_config, args)
  image_seconds = _time_job(image_config, args)
  mask_seconds = _time_job(mask_config, args)
  rates = (num_images / image_seconds, num_masks / mask_seconds,
           _rate(num_images, image_seconds - overhead),
           _rate(num_masks, mask_seconds - overhead))
  print(f"{name}, {crop}px: {rates[0]:.1f} images/s ({num_images} images x "
        f"{crops_per_image} crops in {image_seconds:.1f} s), "
        f"{rates[1]:.1f} masks/s ({num_masks} masks in {mask_seconds:.1f} s); "
        f"without the {overhead:.1f} s job start-up: {_text(rates[2])} "
        f"images/s, {_text(rates[3])} masks/s")
  return rates


def _rate(count, seconds):
  """count / seconds; None where the job took no longer than its start-up
  (too little work, or a busy machine): no figure rather than a wild one."""
  return count / seconds if seconds > 0 else None


def _text(value, digits=1):
  return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(a, b):
  return None if a is None or b is None else a / b


def _print_scaling(label, first, last, rates):
  scale = [_text(_ratio(rates[last][i], rates[first][i]), 2) for i in range(4)]
  print(f"{label} scaling {first} -> {last} workers: images x{scale[0]}, "
        f"masks x{scale[1]} (wall); without start-up: images x{scale[2]}, "
        f"masks x{scale[3]}")


def _time_reader(data_dir, crop_size, batch_size, batches):
  from lbam_tf.data import records
  dataset = records.make_dataset(data_dir, "train", batch_size=batch_size,
                                 crop_size=crop_size, seed=0)
  iterator = iter(dataset)
  for _ in range(3):  # warm-up: graph tracing, file opening, prefetch fill
    next(iterator)
  start = time.perf_counter()
  for _ in tqdm.trange(batches, desc="reader", leave=False):
    next(iterator)
  return batches * batch_size / (time.perf_counter() - start)


def _time_train_step(crop_size, batch_size, steps):
  import tensorflow as tf
  from lbam_tf.model import generator as generator_lib
  model = generator_lib.build_generator()
  optimizer = tf.keras.optimizers.Adam(1e-4)
  images = tf.random.uniform([batch_size, crop_size, crop_size, 3])
  masks = tf.cast(tf.random.uniform([batch_size, crop_size, crop_size, 1]) > 0.3,
                  tf.float32)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      output = model({"image": images * masks, "mask": masks}, training=True)
      loss = tf.reduce_mean(tf.abs(output - images))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  step()
  start = time.perf_counter()
  for _ in tqdm.trange(steps, desc="train step", leave=False):
    step().numpy()
  return (time.perf_counter() - start) / steps


def main(argv):
  del argv
  config = cli.from_flags(Config)
  if config.quick:
    copies, num_masks, crop, batch, batches, steps = 2, 60, 128, 2, 10, 1
  else:
    copies, num_masks, crop = config.copies, config.num_masks, config.crop_size
    batch, batches, steps = config.batch_size, config.reader_batches, config.train_steps
  workers = [int(w) for w in config.workers]
  root = tempfile.mkdtemp(prefix="pipeline_bench_")
  try:
    folder = os.path.join(root, "images")
    os.makedirs(folder)
    num_images = _copy_images(config.images, copies, folder)
    load = max(crop, int(round(crop * 350 / 256)))

    rates = {}
    for count in workers:
      rates[count] = _time_runner(
          f"direct {count} worker(s)", _direct_args(count), root, folder,
          num_images, num_masks, crop, load, config.crops_per_image)
    first, last = workers[0], workers[-1]
    if first != last:
      _print_scaling("DirectRunner", first, last, rates)
    if config.runner == "dask":
      dask_rates = {}
      for count in workers:
        cluster, seconds = _start_dask(count)
        try:
          print(f"dask cluster of {count} worker(s) started in {seconds:.1f} s")
          dask_rates[count] = _time_runner(
              f"dask {count} worker(s)",
              _dask_args(cluster, config.dask_partitions), root, folder,
              num_images, num_masks, crop, load, config.crops_per_image,
              warm_up=True)
        finally:
          cluster.close()
      if first != last:
        _print_scaling("DaskRunner", first, last, dask_rates)
      for count in workers:
        ratio = [_text(_ratio(dask_rates[count][i], rates[count][i]), 2)
                 for i in range(4)]
        print(f"dask / direct at {count} worker(s): images x{ratio[0]}, "
              f"masks x{ratio[1]} (wall); without start-up: images "
              f"x{ratio[2]}, masks x{ratio[3]}")

    # The reader over the first run's images plus a mask set.
    data_dir = os.path.join(root, f"images_direct_{first}")
    os.replace(os.path.join(root, f"masks_direct_{first}", "masks"),
               os.path.join(data_dir, "masks"))
    reader_rate = _time_reader(data_dir, crop, batch, batches)
    print(f"reader: {reader_rate:.1f} images/s (batch {batch}, {crop}px, training mode)")
    if config.train_step_seconds:
      step_seconds, origin = config.train_step_seconds, "--train_step_seconds"
    else:
      step_seconds = _time_train_step(crop, batch, steps)
      origin = "generator forward+backward measured here"
    train_rate = batch / step_seconds
    print(f"training consumes {train_rate:.2f} images/s ({step_seconds:.3f} s/step, "
          f"batch {batch}; {origin})")
    ratio = reader_rate / train_rate
    verdict = "meets" if ratio >= 10 else "MISSES"
    print(f"reader / training = {ratio:.1f}x ({verdict} the >= 10x requirement)")
  finally:
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
  cli.define_flags(Config)
  app.run(main)
