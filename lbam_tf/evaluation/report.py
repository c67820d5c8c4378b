"""The evaluation's outputs: results.md/.json/.csv, example grids, PSNR plot.

Exists so that every file a run writes is built in one place from one
results structure (the table, the per-pair scores, the examples, the models
and the data), drawn with OpenCV only (no matplotlib).
"""

import csv
import json
import os

import cv2
import numpy as np

from lbam_tf.data import masks as masks_lib
from lbam_tf.evaluation import baselines
from lbam_tf.evaluation import scoring

_METRIC_ROWS = (("psnr", "PSNR (dB)", "{:.2f}"), ("ssim", "SSIM", "{:.3f}"),
                ("l1_percent", "Mean L1 (%)", "{:.2f}"))


def _display(method):
  return baselines.DISPLAY_NAMES.get(method, method)


def markdown_table(table):
  """Rows metric x bin, a column per method: the paper's Table 1 layout."""
  methods = list(table)
  bin_labels = list(next(iter(table.values())))
  counts = table[methods[0]]
  lines = [
      "| Metric | Mask ratio | Images | " + " | ".join(map(_display, methods)) +
      " |", "|---|---|---:|" + "---:|" * len(methods)
  ]
  for name, title, fmt in _METRIC_ROWS:
    for label in bin_labels:
      cells = [
          fmt.format(table[m][label][name])
          if table[m][label][name] is not None else "–" for m in methods
      ]
      lines.append(f"| {title} | {label} | {counts[label]['count']} | " +
                   " | ".join(cells) + " |")
  return "\n".join(lines)


def ablation_table(table):
  """Rows method, columns bin, cells PSNR/SSIM: the paper's Table 2 layout."""
  bin_labels = [
      label for label in next(iter(table.values())) if label != scoring.ALL_BINS
  ]
  lines = [
      "| Method | " + " | ".join(bin_labels) + " |",
      "|---|" + "---:|" * len(bin_labels)
  ]
  for method, rows in table.items():
    cells = [
        f"{rows[b]['psnr']:.2f}/{rows[b]['ssim']:.3f}"
        if rows[b]["count"] else "–" for b in bin_labels
    ]
    lines.append(f"| {_display(method)} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _label_strip(width, text, height=24):
  # Light grey, so that white holes in the first row stand apart from it.
  strip = np.full((height, width, 3), 235, np.uint8)
  cv2.putText(strip, text, (4, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
              (0, 0, 0), 1, cv2.LINE_AA)
  return strip


def write_grid(path, rows, columns):
  """A row per example, a column per key in `columns`, labelled on top."""
  size = rows[0]["truth"].shape[1]
  header = np.concatenate([_label_strip(size, _display(c)) for c in columns],
                          axis=1)
  body = [np.concatenate([row[c] for c in columns], axis=1) for row in rows]
  grid = np.concatenate([header] + body, axis=0)
  cv2.imwrite(path, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


#: Line colours (BGR) of the PSNR plot, one per method in order.
_PLOT_COLOURS = ((180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214),
                 (189, 103, 148), (75, 86, 140), (194, 119, 227), (127, 127,
                                                                   127))


def write_psnr_plot(path, table, width=760, height=460):
  """PSNR per bin, a line per method, drawn with OpenCV (no matplotlib)."""
  bin_labels = [
      label for label in next(iter(table.values())) if label != scoring.ALL_BINS
  ]
  values = [[rows[b]["psnr"] for b in bin_labels] for rows in table.values()]
  present = [v for line in values for v in line if v is not None]
  low, high = (min(present), max(present)) if present else (0.0, 1.0)
  # Six whole-dB steps or more, with a margin of at least 1 dB at both ends.
  low = np.floor(low) - 1
  step = max(1.0, np.ceil((np.ceil(high) + 1 - low) / 6))
  ticks = low + step * np.arange(7)
  high = ticks[-1]
  left, right, top, bottom = 70, 200, 40, 60
  canvas = np.full((height, width, 3), 255, np.uint8)
  font = cv2.FONT_HERSHEY_SIMPLEX

  def x_of(i):
    return int(left + (i + 0.5) * (width - left - right) / len(bin_labels))

  def y_of(value):
    return int(top + (high - value) / (high - low) * (height - top - bottom))

  cv2.putText(canvas, "PSNR (dB) per hole-ratio bin", (left, 25), font, 0.6,
              (0, 0, 0), 1, cv2.LINE_AA)
  for tick in ticks:
    cv2.line(canvas, (left, y_of(tick)), (width - right, y_of(tick)),
             (225, 225, 225), 1)
    cv2.putText(canvas, f"{tick:g}", (12, y_of(tick) + 4), font, 0.4, (0, 0, 0),
                1, cv2.LINE_AA)
  cv2.rectangle(canvas, (left, top), (width - right, height - bottom),
                (0, 0, 0), 1)
  for i, label in enumerate(bin_labels):
    cv2.putText(canvas, label, (x_of(i) - 30, height - bottom + 20), font, 0.4,
                (0, 0, 0), 1, cv2.LINE_AA)
  cv2.putText(canvas, "hole ratio",
              (left + (width - left - right) // 2 - 35, height - 12), font,
              0.45, (0, 0, 0), 1, cv2.LINE_AA)
  for k, (method, line) in enumerate(zip(table, values)):
    colour = _PLOT_COLOURS[k % len(_PLOT_COLOURS)]
    points = [(x_of(i), y_of(v)) for i, v in enumerate(line) if v is not None]
    for a, b in zip(points, points[1:]):
      cv2.line(canvas, a, b, colour, 2, cv2.LINE_AA)
    for point in points:
      cv2.circle(canvas, point, 4, colour, -1, cv2.LINE_AA)
    legend_y = top + 10 + 22 * k
    cv2.line(canvas, (width - right + 12, legend_y),
             (width - right + 40, legend_y), colour, 2)
    cv2.putText(canvas,
                _display(method)[:18], (width - right + 46, legend_y + 5), font,
                0.45, (0, 0, 0), 1, cv2.LINE_AA)
  cv2.imwrite(path, canvas)


#: Columns of results.csv after the metrics: the run's resolution and
#: high-resolution options (eval_size 0: centre crops of crop_size).
_RUN_COLUMNS = ("eval_size", "crop_size", "hd_strategy", "crop_margin",
                "resize_limit", "crop_trigger")


def _scored_image(data):
  """What one score covers, for results.md."""
  if data.get("eval_size"):
    return (f"the whole photo, long side resized to at most "
            f"{data['eval_size']} px (never enlarged), with the model's "
            f"--hd_strategy {data['hd_strategy']}")
  return f"the {data['crop_size']}x{data['crop_size']} image"


def write_results(output_dir, table, pairs, scores, examples, models, data,
                  flag_values, seconds, fid, notes):
  """Writes results.md/.json/.csv, grid_bin<k>.png and psnr_per_bin.png."""
  os.makedirs(output_dir, exist_ok=True)
  methods = list(table)
  model_info = [{
      "label": m.label,
      "path": m.path,
      "kind": m.kind,
      **m.config
  } for m in models]
  per_pair = [{
      "image": p.image_key,
      "mask": p.mask_key,
      "size": list(p.image.shape[:2]),
      "hole_ratio": p.hole_ratio,
      "bin": masks_lib.bin_label(p.bin),
      "metrics": {
          m: {
              name: scores[m][name][i] for name in scores[m]
          } for m in methods
      }
  } for i, p in enumerate(pairs)]
  seconds_per_image = {m: seconds[m] / max(len(pairs), 1) for m in methods}
  with open(os.path.join(output_dir, "results.json"), "w") as f:
    json.dump(
        {
            "models": model_info,
            "data": data,
            "flags": flag_values,
            "methods": methods,
            "table": table,
            "fid": fid,
            "seconds_per_image": seconds_per_image,
            "notes": notes,
            "pairs": per_pair
        },
        f,
        indent=1)

  with open(os.path.join(output_dir, "results.csv"), "w", newline="") as f:
    writer = csv.writer(f)
    # The resolution and the strategy on every row, so that the files of
    # several runs concatenate into one comparison.
    writer.writerow(["method", "bin", "count", "psnr", "ssim", "l1_percent"]
                    + list(_RUN_COLUMNS))
    run_values = [data.get(name, 0) for name in _RUN_COLUMNS]
    for method, rows in table.items():
      for label, row in rows.items():
        writer.writerow([
            method, label, row["count"], row["psnr"], row["ssim"],
            row["l1_percent"]
        ] + run_values)

  command = "python -m lbam_tf.evaluate " + " ".join(
      f"--{name}={','.join(map(str, v)) if isinstance(v, list) else v}"
      for name, v in flag_values.items())
  lines = [
      "# Evaluation", "",
      "Per hole-ratio bin: PSNR, SSIM (Gaussian 11x11, sigma 1.5) and mean "
      "L1 (%) of the composited 8-bit output against the ground truth, over "
      f"all pixels of {_scored_image(data)}, data range 1 (see README.md, "
      "section evaluation). Means over the images of each bin.", "",
      markdown_table(table), ""
  ]
  if len(models) > 1:
    lines += [
        "PSNR/SSIM per bin (the layout of the paper's Table 2):", "",
        ablation_table(table), ""
    ]
  if fid is not None:
    lines += [
        f"FID over all {len(pairs)} pairs (composited outputs against the "
        "ground truth, InceptionV3 pool features):", "",
        "| | " + " | ".join(map(_display, methods)) + " |",
        "|---|" + "---:|" * len(methods),
        "| FID | " + " | ".join(f"{fid[m]:.2f}" for m in methods) + " |", ""
    ]
  lines += ["## Model", ""]
  lines += [
      f"- `{m['label']}`: {m['kind']} `{m['path']}`" +
      "".join(f", {k} `{m[k]}`"
              for k in ("variant", "ablation")
              if k in m) +
      (", exported without the high-resolution inputs (the whole frame)"
       if m.get("hd_inputs") is False else "")
      for m in model_info
  ]
  lines += ["", "## Data", ""]
  lines += [f"- {key}: `{value}`" for key, value in data.items()]
  lines += ["", "## Flags", "", f"`{command}`", "", "## Time", ""]
  lines += [
      f"- {_display(m)}: {seconds_per_image[m]:.3f} s per image"
      for m in methods
  ]
  lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
  with open(os.path.join(output_dir, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")

  columns = (["input", "mask"] + [m.label for m in models]
             + [m for m in ("telea", "patchmatch") if m in table] + ["truth"])
  for index, rows in sorted(examples.items()):
    if not rows:  # --num_examples 0
      continue
    write_grid(os.path.join(output_dir, f"grid_bin{index}.png"), rows, columns)
  write_psnr_plot(os.path.join(output_dir, "psnr_per_bin.png"), table)


def notes(pairs, data, table, first_label, fid, inception_weights):
  """The results' notes: what was not computed, and what limits the numbers.

  `data` is the results' data description (`pairs.read_inputs` /
  `read_photo_pairs`, completed by the runner).
  """
  lines = [
      "LPIPS: not computed (its network weights cannot be downloaded here "
      "and it is not part of this build); no number is given rather than a "
      "made-up one.",
      (f"FID from --inception_weights {inception_weights} over {len(pairs)} "
       "pairs: with fewer pairs than the 2048 feature dimensions it is biased "
       "upwards; compare methods within this run only." if fid else
       "FID: not computed; give --inception_weights (a Keras InceptionV3 "
       "no-top weights file) to add it. No number is given rather than a "
       "made-up one."),
  ]
  if "masks_available" in data:
    lines.append(
        f"{data['masks_outside_bins']} of {data['masks_available']} masks had "
        f"a hole ratio outside ({masks_lib.FULL_RANGE[0]}, "
        f"{masks_lib.FULL_RANGE[1]}] and were not used.")
  if data.get("eval_size"):
    lines.append(
        f"Whole photos, long side resized (area) to at most "
        f"{data['eval_size']} px, never enlarged; the model filled each with "
        f"--hd_strategy {data['hd_strategy']} (crop_margin "
        f"{data['crop_margin']}, resize_limit {data['resize_limit']}, "
        f"crop_trigger {data['crop_trigger']}), on average "
        f"{data['generator_pixels_per_photo']} generator pixels per photo. "
        "Run again with another --hd_strategy and the same seed to compare "
        "strategies on the same pairs.")
    if "masks" in data:
      lines.append(
          "Masks drawn for each photo at its size (lbam_tf.data.masks, brush "
          "widths and blob sizes scaled to it) with the hole ratio in its "
          "bin; the seed and the photo's name fix them.")
    if data.get("masks_stretched_outside_bins"):
      lines.append(
          f"{data['masks_stretched_outside_bins']} pairs were dropped: their "
          "mask, stretched to the photo, left the hole-ratio bins.")
  empty = [
      masks_lib.bin_label(b)
      for b in range(len(masks_lib.HOLE_RATIO_BINS))
      if not table[first_label][masks_lib.bin_label(b)]["count"]
  ]
  if empty:
    lines.append(f"No masks, hence no images, in bins {', '.join(empty)}.")
  if len(pairs) < 30 * (len(masks_lib.HOLE_RATIO_BINS)):
    lines.append(
        f"Only {len(pairs)} pairs (fewer than 30 per bin): per-bin means of "
        "so few images change with the seed; compare methods within this "
        "table, not across runs.")
  return lines
