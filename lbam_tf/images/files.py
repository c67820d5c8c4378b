"""Pairs image files with their masks and output paths, for batch inference.

`python -m lbam_tf.inpaint` and `python -m serving.client` take the same
`--image`, `--mask`, `--output` arguments, each a file or a folder; this module
declares those options (`FileOptions`), turns their values into a list of jobs
and reports the outcome.
It does not import TensorFlow, so the REST client starts in a fraction of a
second.

Example:

    jobs, problems = image_files.plan("photos/", "masks/", "filled/")
"""

import dataclasses
import os

from tqdm import tqdm

from lbam_tf import cli

#: File name endings listed as images. Readers decide what they can decode
#: (inpaint: tf.io.decode_image; evaluate: lbam_tf.images.decode with Pillow).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".jxl")


@dataclasses.dataclass
class FileOptions:
  """--image, --mask and --output, alike in every batch command line: the
  first fields of `lbam_tf.inpaint.Config` and `serving.client.Config`."""
  image: str | None = cli.option(
      None, "An image file, or a folder of images.", required=True)
  mask: str | None = cli.option(
      None, "A mask file (used for every image when --image is a folder), "
      "or a folder with one mask per image, matched by file name stem.",
      required=True)
  output: str | None = cli.option(
      None, "The output PNG for one image, or a folder (created) receiving "
      "<stem>.png per image.", required=True)


@dataclasses.dataclass(frozen=True)
class Job:
  """One image to inpaint: where its mask is and where the result goes."""
  image: str
  mask: str
  output: str


def list_images(folder):
  """Image files directly inside `folder` (not recursive), sorted by name."""
  names = sorted(os.listdir(folder))
  return [os.path.join(folder, name) for name in names
          if name.lower().endswith(IMAGE_EXTENSIONS)
          and os.path.isfile(os.path.join(folder, name))]


def stem(path):
  """A file's name without folder and extension: how images meet their masks."""
  return os.path.splitext(os.path.basename(path))[0]


def plan(image, mask, output):
  """Matches images to masks and output paths.

  Args:
    image: an image file, or a folder of images.
    mask: a mask file, or a folder holding one mask per image with the same
      file name stem (`photo.jpg` pairs with `photo.png`). A single mask file
      with an image folder is used for every image.
    output: the output PNG file for a single image, or a folder (created) that
      receives `<stem>.png` per image.

  Returns:
    (jobs, problems): a list of `Job`, and a list of (image path, message) for
    images that cannot be processed (no mask found, or two images that would
    write the same output), so that a folder run can report them and go on.

  Raises:
    ValueError: if the arguments do not describe a valid combination.
  """
  if not os.path.exists(image):
    raise ValueError(f"--image {image} does not exist: give an image file "
                     "or a folder of images")
  if not os.path.exists(mask):
    raise ValueError(f"--mask {mask} does not exist: give a mask file or a "
                     "folder of masks")

  if os.path.isfile(image):
    if not os.path.isfile(mask):
      raise ValueError(
          f"--image {image} is a file but --mask {mask} is a folder: give the "
          "mask file for this image")
    if os.path.isdir(output):
      output = os.path.join(output, stem(image) + ".png")
    return [Job(image, mask, output)], []

  if os.path.isfile(output):
    raise ValueError(
        f"--image {image} is a folder but --output {output} is a file: give an "
        "output folder")
  masks = {}
  if os.path.isdir(mask):
    for path in list_images(mask):
      masks.setdefault(stem(path), path)

  jobs, problems, outputs = [], [], {}
  for path in list_images(image):
    name = stem(path)
    mask_path = masks.get(name) if os.path.isdir(mask) else mask
    out_path = os.path.join(output, name + ".png")
    if mask_path is None:
      problems.append((path, f"no mask named {name}.* in {mask}"))
    elif out_path in outputs:
      problems.append((path, f"{outputs[out_path]} already writes {out_path}: "
                             "rename one of the two images"))
    else:
      outputs[out_path] = path
      jobs.append(Job(path, mask_path, out_path))
  if not jobs and not problems:
    raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {image}")
  return jobs, problems


def report(written, failures):
  """Prints each failure and the counts.

  Returns:
    The exit status: 1 if any image failed, else 0.
  """
  for path, message in failures:
    print(f"FAILED {path}: {message}")
  print(f"{len(written)} image(s) written, {len(failures)} failed")
  return 1 if failures else 0


def batches(items, batch_size):
  """Splits `items` into lists of at most `batch_size`."""
  if batch_size < 1:
    raise ValueError(f"batch size {batch_size} must be at least 1")
  return [items[i:i + batch_size] for i in range(0, len(items), batch_size)]


def _read(path):
  with open(path, "rb") as f:
    return f.read()


def run_jobs(send, jobs, batch_size=4, errors=(), describe=str,
             progress=True):
  """Runs `jobs` through `send` in batches and writes each result file.

  A batch that fails with one of `errors` is retried job by job, so one bad
  file costs only its own result; other exceptions propagate.

  Args:
    send: function (list of image file bytes, list of mask file bytes) ->
      list of result file bytes (PNG), one per image.
    jobs: `Job`s, e.g. from `plan`.
    batch_size: jobs per `send` call.
    errors: exception types that mean the input was bad.
    describe: exception -> message for the failure list.
    progress: show a progress bar.

  Returns:
    (written, failures): output paths written, and (image path, message) for
    each job that failed.
  """
  written, failures = [], []

  def attempt(batch):
    results = send([image for _, image, _ in batch],
                   [mask for _, _, mask in batch])
    for (job, _, _), result in zip(batch, results):
      os.makedirs(os.path.dirname(os.path.abspath(job.output)), exist_ok=True)
      with open(job.output, "wb") as f:
        f.write(result)
      written.append(job.output)

  with tqdm(total=len(jobs), unit="image", disable=not progress) as bar:
    for chunk in batches(jobs, batch_size):
      batch = []
      for job in chunk:
        try:
          batch.append((job, _read(job.image), _read(job.mask)))
        except OSError as error:
          failures.append((job.image, f"cannot read: {error}"))
      try:
        if batch:
          attempt(batch)
      except errors:
        for item in batch:
          try:
            attempt([item])
          except errors as error:
            failures.append((item[0].image, describe(error)))
      bar.update(len(chunk))
  return written, failures
