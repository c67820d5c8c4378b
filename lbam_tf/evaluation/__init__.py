r"""The paper's Table 1 for any model, with PatchMatch, Telea and Navier-Stokes
beside it: the evaluation as a library.

`lbam_tf.evaluate` is its command line; code builds a `config.EvalConfig`
and calls `runner.run(config)`, which returns the results structure the
reports are written from. One concept per module:

  config   EvalConfig: every option with its default, and its check.
  pairs    reading image and mask folders (or a preprocessing output folder)
           and pairing images with masks, bin-balanced and seeded; whole
           photos and masks drawn or stretched to them (--eval_size).
  scoring  the methods (models and classical baselines), their per-pair
           metrics, the per-bin table and FID.
  report   results.md/.json/.csv, the example grids and the PSNR plot.
  runner   `run(config)`: the above in order.
"""
