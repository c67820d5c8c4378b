"""The command-line convention every entry point (and benchmark) follows.

Each has a `Config` dataclass whose fields are its options, written once:
`option(default, help, choices=..., required=...)` puts the flag's help on
the field. A `check()` raises ValueError naming the bad value and the
remedy; a library function takes the Config. `define_flags(Config)`, called
only under `if __name__ == "__main__"`, declares one absl flag per field
(the type from the annotation), and `main(argv)` only turns the parsed flags
back into a checked Config (`from_flags`, `run_flags`) and calls the library
function. Importing an entry point therefore defines no flags, so modules
with flags of the same names can be imported together (tests, benchmarks,
`lbam_tf.evaluate`). No module but this one calls `flags.DEFINE_*`.

No TensorFlow here: `serving.client` stays light.
"""

import dataclasses
import types
import typing

from absl import app
from absl import flags

# Flags declared here belong to the module calling `define_flags`: its
# --help lists them.
flags.disclaim_key_flags()


def option(default=dataclasses.MISSING, help="", *, choices=None,
           required=False, multi=False):  # pylint: disable=redefined-builtin
  """A Config field that carries its flag's help.

  Args:
    default: the field's default (and the flag's); left out, the field has
      none and the flag is required with default None.
    help: the flag's help text.
    choices: allowed values: an enum flag (for a str field), or a
      multi-enum one (with `multi`).
    required: the flag must be given (its default is None).
    multi: a list field declared as a repeatable flag (`--x a --x b`)
      instead of a comma-separated one.

  Returns:
    A `dataclasses.field` with this in its metadata.
  """
  metadata = {"help": help, "required": required or
              default is dataclasses.MISSING, "multi": multi}
  if choices is not None:
    metadata["choices"] = tuple(choices)
  return dataclasses.field(default=default, metadata=metadata)


def _default(field):
  if field.default is not dataclasses.MISSING:
    return field.default
  if field.default_factory is not dataclasses.MISSING:
    return field.default_factory()
  return None


def defaults(config_class):
  """{field name: default} of a Config dataclass (None where it has none)."""
  return {field.name: _default(field)
          for field in dataclasses.fields(config_class)}


def _kinds(hint):
  """The non-None types of an annotation, as classes (`tuple | None` ->
  {tuple})."""
  union = typing.get_origin(hint) in (typing.Union, types.UnionType)
  args = typing.get_args(hint) if union else ()
  return {typing.get_origin(kind) or kind for kind in (args or (hint,))
          if kind is not type(None)}


def define_flags(config_class, values=flags.FLAGS):
  """Declares one absl flag per field of `config_class`.

  The flag has the field's name, default and help (`option`); its type is
  the annotation's: bool, int, float, str (an enum with `choices`), or a
  tuple / list (a comma-separated list, or with `multi` a repeatable flag,
  an enum one with `choices`), each optionally `| None`. Fields with
  `required` (or no default) are marked required.

  Raises:
    TypeError: a field without help, or of another type.
  """
  hints = typing.get_type_hints(config_class)
  for field in dataclasses.fields(config_class):
    name, meta = field.name, field.metadata
    if not meta.get("help"):
      raise TypeError(f"{config_class.__name__}.{name} has no help: declare "
                      "it with cli.option(default, help)")
    kinds, default = _kinds(hints[name]), _default(field)
    choices = meta.get("choices")
    common = {"flag_values": values}
    if kinds == {bool}:
      flags.DEFINE_bool(name, default, meta["help"], **common)
    elif kinds == {int}:
      flags.DEFINE_integer(name, default, meta["help"], **common)
    elif kinds == {float}:
      flags.DEFINE_float(name, default, meta["help"], **common)
    elif kinds == {str} and choices:
      flags.DEFINE_enum(name, default, list(choices), meta["help"], **common)
    elif kinds == {str}:
      flags.DEFINE_string(name, default, meta["help"], **common)
    elif kinds and kinds <= {tuple, list}:
      listed = None if default is None else [str(x) for x in default]
      if meta.get("multi") and choices:
        flags.DEFINE_multi_enum(name, listed, list(choices), meta["help"],
                                **common)
      elif meta.get("multi"):
        flags.DEFINE_multi_string(name, listed, meta["help"], **common)
      else:
        flags.DEFINE_list(name, listed, meta["help"], **common)
    else:
      raise TypeError(f"{config_class.__name__}.{name}: no flag type for "
                      f"{hints[name]!r}")
    if meta.get("required"):
      flags.mark_flag_as_required(name, values)


def flag_values(config_class, given_only=False, values=flags.FLAGS):
  """{field name: parsed flag value} of a Config's flags.

  given_only: only the flags given on the command line.
  """
  return {field.name: values[field.name].value
          for field in dataclasses.fields(config_class)
          if not given_only or values[field.name].present}


def from_flags(config_class, argv=None, preset=None):
  """The Config of the parsed flags, checked.

  Args:
    config_class: a dataclass whose fields are flags of the same names
      (`define_flags`), usually with a `check()` method.
    argv: main's argv; extra positional arguments are refused.
    preset: a function of keyword overrides returning a Config (e.g.
      `lbam_tf.training.config.PRESETS[name]`): it gets only the flags given
      on the command line, which so win over its values.

  Raises:
    app.UsageError: positional arguments, or `check()` refused a value; absl
      prints it with the flags' help.
  """
  if argv is not None and len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if preset is None:
    config = config_class(**flag_values(config_class))
  else:
    config = preset(**flag_values(config_class, given_only=True))
  try:
    if hasattr(config, "check"):
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
