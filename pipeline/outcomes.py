"""What each step of the Beam job yields: ("kept", value) or ("rejected", row).

Each DoFn has one output, and two plain FlatMaps (`SplitOutcomes`) take it
apart: Beam 2.77's DaskRunner merges a ParDo's tagged outputs (with_outputs)
into one collection. Rejected rows go to rejected.jsonl and to Beam counters.
"""

import logging

import apache_beam as beam
from apache_beam.metrics import Metrics

from lbam_tf.images import decode

NAMESPACE = "preprocess"


def kept(value):
  return "kept", value


def rejected(path, reason, detail, kind="image"):
  """Counts a rejection and tags its rejected.jsonl row."""
  Metrics.counter(NAMESPACE, f"rejected_{reason}").inc()
  return "rejected", {"path": path, "reason": reason, "detail": detail,
                      "kind": kind}


def _tagged(outcome, tag):
  if outcome[0] == tag:
    yield outcome[1]


class SplitOutcomes(beam.PTransform):
  """Outcomes -> (kept values, rejected rows)."""

  def expand(self, outcomes):
    return (outcomes | "Kept" >> beam.FlatMap(_tagged, "kept"),
            outcomes | "Rejected" >> beam.FlatMap(_tagged, "rejected"))


def outputs_or_rejection(path, kind, make):
  """make()'s list of outputs, or one rejected row if it raises anything.

  One bad element must neither stop the job nor leave half its outputs
  behind; an error this code did not foresee is also logged with its trace.
  """
  try:
    return make()
  except decode.Rejected as e:
    return [rejected(path, e.reason, e.detail, kind)]
  except Exception as e:  # noqa: BLE001 -- see the docstring
    logging.exception("rejected %s after an unexpected error", path)
    return [rejected(path, "unexpected_error", f"{type(e).__name__}: {e}",
                      kind)]
