"""The command-line convention every entry point follows.

Each entry point has a `Config` dataclass holding every option with its
default and a `check()` that raises ValueError naming the bad value and the
remedy; a library function taking the Config; `define_flags()`, called only
under `if __name__ == "__main__"`, whose defaults are `defaults(Config)`; and
a `main(argv)` that only turns the flags into a Config (`from_flags`), checks
it and calls the library function. Importing an entry point therefore
defines no flags, so modules with flags of the same names can be imported
together (tests, benchmarks, `lbam_tf.evaluate`).

No TensorFlow here: `serving.client` stays light.
"""

import dataclasses

from absl import app
from absl import flags


def defaults(config_class):
  """{field name: default} of a Config dataclass, for `flags.DEFINE_*`."""
  return {field.name: field.default
          for field in dataclasses.fields(config_class)}


def from_flags(config_class, argv=None):
  """The Config of the parsed flags, checked.

  Args:
    config_class: a dataclass whose fields are flags of the same names and
      with a `check()` method.
    argv: main's argv; extra positional arguments are refused.

  Raises:
    app.UsageError: positional arguments, or `check()` refused a value; absl
      prints it with the flags' help.
  """
  if argv is not None and len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  config = config_class(**{field.name: flags.FLAGS[field.name].value
                           for field in dataclasses.fields(config_class)})
  try:
    config.check()
  except ValueError as error:
    raise app.UsageError(str(error)) from None
  return config


def run_flags(config_class, run, argv=None):
  """The whole of an entry point's `main`: `run(from_flags(...))`.

  Args:
    config_class: the entry point's Config.
    run: its library function, taking the Config.
    argv: main's argv, to refuse positional arguments; None ignores them.

  Returns:
    The exit status for `app.run`: `run`'s return value, or None (0) when
    that is a line of text, which is printed.
  """
  result = run(from_flags(config_class, argv))
  if isinstance(result, str):
    print(result)
    return None
  return result
