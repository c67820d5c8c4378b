"""The Beam job on Beam's DaskRunner against a real dask.distributed cluster.

A scheduler and two worker processes start on loopback (free ports, found
through a scheduler file), the job runs as a user runs it (the command line,
--runner=...DaskRunner --dask_client_address=...), and its files are compared
byte for byte with a DirectRunner run of the same flags. Every process of the
cluster is stopped at the end, also when the test fails.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import job_outputs
from pipeline import preprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "images", "*.jpg")))
WORKERS = 2
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"


def _start(arguments, log_path, env):
  """A process in its own group, so that stopping it stops its children."""
  with open(log_path, "w") as log:
    return subprocess.Popen([sys.executable, "-m", *arguments], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(process):
  if process.poll() is None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
      process.wait(timeout=20)
    except subprocess.TimeoutExpired:
      os.killpg(process.pid, signal.SIGKILL)
      process.wait(timeout=20)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
  """{"address", "client"} of a scheduler with two single-thread workers."""
  from distributed import Client
  folder = tmp_path_factory.mktemp("dask")
  scheduler_file = str(folder / "scheduler.json")
  # Workers unpickle the job's DoFns, so they import pipeline and lbam_tf.
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  processes = [_start(
      ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
       "--no-dashboard", "--scheduler-file", scheduler_file],
      folder / "scheduler.log", env)]
  client = None
  try:
    deadline = time.monotonic() + 60
    while not os.path.exists(scheduler_file):
      assert processes[0].poll() is None and time.monotonic() < deadline, (
          (folder / "scheduler.log").read_text()[-2000:])
      time.sleep(0.2)
    for index in range(WORKERS):
      processes.append(_start(
          ["distributed.cli.dask_worker", "--scheduler-file", scheduler_file,
           "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"],
          folder / f"worker{index}.log", env))
    client = Client(scheduler_file=scheduler_file, timeout=60)
    client.wait_for_workers(WORKERS, timeout=90)
    with open(scheduler_file) as f:
      address = json.load(f)["address"]
    yield {"address": address, "client": client}
  finally:
    if client is not None:
      client.close()
    for process in reversed(processes):
      _stop(process)


def _inputs(folder):
  """The sample photos and two files the job must reject."""
  for path in SAMPLES:
    shutil.copy(path, folder)
  open(os.path.join(folder, "empty.jpg"), "wb").close()
  with open(os.path.join(folder, "notes.png"), "w") as f:
    f.write("this is not an image\n")


def test_dask_runner_writes_the_direct_runners_bytes(cluster, tmp_path):
  folder = tmp_path / "in"
  folder.mkdir()
  _inputs(str(folder))
  flags = {"input_pattern": str(folder / "*"), "load_size": 96,
           "crop_size": 64, "crops_per_image": 2, "seed": 5,
           "val_fraction": 0.25, "test_fraction": 0.25, "num_shards": 2,
           "num_masks": 300, "mask_test_fraction": 0.2}
  on_dask = str(tmp_path / "dask")
  command = [sys.executable, "-m", "pipeline.preprocess",
             f"--output_dir={on_dask}",
             *(f"--{name}={value}" for name, value in flags.items()),
             f"--runner={DASK_RUNNER}",
             f"--dask_client_address={cluster['address']}",
             "--dask_npartitions=4"]
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  ran = subprocess.run(command, cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
  assert ran.returncode == 0, ran.stderr[-3000:]
  assert "reports no Beam counters" in ran.stdout

  on_direct = str(tmp_path / "direct")
  preprocess.run(preprocess.Config(output_dir=on_direct, **flags))
  names = job_outputs.assert_same_outputs(on_dask, on_direct)
  assert sum(name.startswith("images/") for name in names) == 6
  assert sum(name.startswith("masks/") for name in names) == 4
  with open(os.path.join(on_dask, "manifest.json")) as f:
    manifest = json.load(f)
  assert manifest["input_files"] == len(SAMPLES) + 2
  assert sum(manifest["counts"]["images"].values()) == 2 * len(SAMPLES)
  assert sum(manifest["counts"]["masks"].values()) == 300
  assert manifest["rejected"]["by_reason"]["zero_byte"] == 1
  assert manifest["rejected"]["by_reason"]["not_an_image"] == 1
  with open(os.path.join(on_dask, "rejected.jsonl")) as f:
    assert sorted(os.path.basename(json.loads(line)["path"])
                  for line in f) == ["empty.jpg", "notes.png"]
  # The work ran on the cluster: both worker processes executed tasks.
  executed = cluster["client"].run(
      lambda dask_worker: dask_worker.state.executed_count)
  assert len(executed) == WORKERS and all(executed.values()), executed
