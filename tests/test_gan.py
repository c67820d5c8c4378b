"""The WGAN-GP step's finite-loss check.

That N replicas take the same step as one device, and that the minimised
totals are the weighted sums of the logged terms, is checked through the
command line in test_distributed_training.py; step and optimizer counts
(critic_steps 2) in test_train.py.
"""

import pytest

from lbam_tf.training import gan


def test_check_finite_names_the_term_and_step():
  with pytest.raises(FloatingPointError, match=r"'style' is nan at step 41"):
    gan.check_finite({"hole": 0.1, "style": float("nan")}, step=41)
