"""The import graph: no cycles, and each sub-package imports only below it.

The graph is built from the source with `ast`, imports inside functions
included: a cycle or an upward import hidden in a function still ties two
rooms together.
"""

import ast
import os

import pytest

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("lbam_tf", "pipeline", "serving", "bench")


def _module_names(root):
  """{dotted name: path} of every module, subpackages included (package
  __init__ files hold no imports here)."""
  names = {}
  for package in PACKAGES:
    for folder, _, files in os.walk(os.path.join(root, package)):
      prefix = os.path.relpath(folder, root).replace(os.sep, ".")
      for name in sorted(files):
        if name.endswith(".py") and name != "__init__.py":
          names[f"{prefix}.{name[:-3]}"] = os.path.join(folder, name)
  return names


def imported_names(source, top_level_only=False):
  """Every module name an import statement of `source` names."""
  tree = ast.parse(source)
  nodes = ast.iter_child_nodes(tree) if top_level_only else ast.walk(tree)
  names = set()
  for node in nodes:
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names.add(node.module)
      # `from lbam_tf import model_io` names a module.
      names.update(f"{node.module}.{alias.name}" for alias in node.names)
  return names


def import_graph(sources, top_level_only=False):
  """{module: set of project modules it imports}, from {module: source}."""
  return {module: {name for name in imported_names(source, top_level_only)
                   if name in sources and name != module}
          for module, source in sources.items()}


def find_cycle(graph):
  """One cycle as a list of modules (first repeated last), or None."""
  state = {}

  def visit(module, path):
    state[module] = "open"
    path.append(module)
    for target in sorted(graph[module]):
      if state.get(target) == "open":
        return path[path.index(target):] + [target]
      if target not in state:
        found = visit(target, path)
        if found:
          return found
    path.pop()
    state[module] = "done"
    return None

  for module in sorted(graph):
    if module not in state:
      found = visit(module, [])
      if found:
        return found
  return None


def _sources():
  sources = {}
  for module, path in _module_names(_REPO).items():
    with open(path, encoding="utf-8") as f:
      sources[module] = f.read()
  return sources


def test_no_import_cycle():
  cycle = find_cycle(import_graph(_sources()))
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_cycle_in_a_function_is_found():
  # convert and model_io as they once were.
  sources = {
      "lbam_tf.weights.model_io": "from lbam_tf import convert\n",
      "lbam_tf.convert": ("def main(argv):\n"
                          "  from lbam_tf.weights import model_io\n"),
      "lbam_tf.data.records": "import tensorflow as tf\n",
  }
  assert find_cycle(import_graph(sources)) == [
      "lbam_tf.convert", "lbam_tf.weights.model_io", "lbam_tf.convert"]


#: Which rooms each room may import (besides itself). A room is a
#: sub-package of lbam_tf, a top-level module of lbam_tf, or a top-level
#: package. The entry points on top (lbam_tf.train, evaluate, inpaint,
#: convert) and bench/ may import any of lbam_tf.
_BASE = {"lbam_tf.cli", "lbam_tf.seeding"}
LAYERS = {
    "lbam_tf.cli": set(),
    "lbam_tf.seeding": set(),
    "lbam_tf.images": _BASE,
    "lbam_tf.data": _BASE | {"lbam_tf.images"},
    "lbam_tf.model": _BASE | {"lbam_tf.images"},
    "lbam_tf.weights": _BASE | {"lbam_tf.images", "lbam_tf.model"},
    "lbam_tf.inference": _BASE | {"lbam_tf.images", "lbam_tf.model",
                                  "lbam_tf.weights"},
    "lbam_tf.evaluation": _BASE | {"lbam_tf.images", "lbam_tf.data",
                                   "lbam_tf.model", "lbam_tf.weights",
                                   "lbam_tf.inference"},
    "lbam_tf.training": _BASE | {"lbam_tf.images", "lbam_tf.data",
                                 "lbam_tf.model", "lbam_tf.weights",
                                 "lbam_tf.evaluation"},
    # The Beam job imports no model code; serving imports no training code.
    "pipeline": _BASE | {"lbam_tf.images", "lbam_tf.data"},
    "serving": _BASE | {"lbam_tf.images", "lbam_tf.data", "lbam_tf.model",
                        "lbam_tf.weights", "lbam_tf.inference"},
}
_ROOMS = set(LAYERS)
_TOP = {"lbam_tf.train", "lbam_tf.evaluate", "lbam_tf.inpaint",
        "lbam_tf.convert"}
LAYERS.update({name: _ROOMS | _TOP for name in _TOP})
LAYERS["bench"] = _ROOMS | _TOP | {"pipeline", "serving"}


def room(module):
  """The room a dotted module name belongs to."""
  parts = module.split(".")
  if parts[0] != "lbam_tf":
    return parts[0]
  return ".".join(parts[:2])


def layering_violations(graph):
  """["a -> b", ...] for every import of a room its LAYERS entry omits."""
  found = []
  for module, targets in sorted(graph.items()):
    for target in sorted(targets):
      source_room, target_room = room(module), room(target)
      if source_room != target_room and (
          target_room not in LAYERS[source_room]):
        found.append(f"{module} -> {target}")
  return found


def test_every_module_has_a_room():
  assert {room(module) for module in _sources()} <= set(LAYERS), (
      sorted({room(module) for module in _sources()} - set(LAYERS)))


def test_each_room_imports_only_the_rooms_below_it():
  violations = layering_violations(import_graph(_sources()))
  assert not violations, "upward or sideways imports: " + ", ".join(
      violations)


def test_an_upward_import_in_a_function_is_found():
  sources = {
      "lbam_tf.images.resize": ("def crop(seed):\n"
                                "  from lbam_tf.data import masks\n"),
      "lbam_tf.data.masks": "from lbam_tf import seeding\n",
      "lbam_tf.seeding": "import numpy\n",
      "serving.export": "from lbam_tf.training import loop\n",
      "lbam_tf.training.loop": "",
  }
  assert layering_violations(import_graph(sources)) == [
      "lbam_tf.images.resize -> lbam_tf.data.masks",
      "serving.export -> lbam_tf.training.loop"]


@pytest.mark.parametrize("light", ["serving.client", "lbam_tf.cli",
                                   "lbam_tf.inference.signatures",
                                   "lbam_tf.images.polarity"])
def test_light_modules_import_no_tensorflow(light):
  """What these import when imported (optional imports in functions apart)
  holds no TensorFlow: the REST client starts in a fraction of a second."""
  sources = _sources()
  graph = import_graph(sources, top_level_only=True)
  seen, todo = set(), [light]
  while todo:
    module = todo.pop()
    if module not in seen:
      seen.add(module)
      todo.extend(graph[module])
  for module in sorted(seen):
    heavy = {name for name in imported_names(sources[module], True)
             if name.split(".")[0] in ("tensorflow", "keras")}
    assert not heavy, f"{light} imports {sorted(heavy)} via {module}"


#: Entry point -> (module, Config class, module, library function). The two
#: with a package of their own keep config and library beside it.
ENTRY_POINTS = {
    name: (name, "Config", name, "run") for name in (
        "lbam_tf.convert", "lbam_tf.inpaint", "pipeline.preprocess",
        "serving.export", "serving.client", "serving.local_server",
        "serving.web", "serving.demo")}
ENTRY_POINTS["lbam_tf.train"] = ("lbam_tf.training.config", "TrainConfig",
                                 "lbam_tf.training.loop", "train")
ENTRY_POINTS["lbam_tf.evaluate"] = ("lbam_tf.evaluation.config", "EvalConfig",
                                    "lbam_tf.evaluation.runner", "run")
#: The benchmarks: programs with a Config too; main is their library.
BENCHMARKS = ("bench.generator_latency", "bench.hd_inference",
              "bench.learning", "bench.pipeline_throughput", "bench.serving",
              "bench.train_step")
#: (module, class) of every dataclass whose fields are flags: the programs'
#: Configs and the options they share.
CONFIGS = sorted({(config_module, config_name) for config_module, config_name,
                  _, _ in ENTRY_POINTS.values()}
                 | {(module, "Config") for module in BENCHMARKS}
                 | {("lbam_tf.images.files", "FileOptions"),
                    ("lbam_tf.inference.hd", "HdOptions")})
_HELPERS = {"define_flags", "from_flags", "run_flags"}


def _top_level(module):
  tree = ast.parse(_sources()[module])
  return tree, {node.name: node for node in tree.body
                if isinstance(node, (ast.ClassDef, ast.FunctionDef))}


def _is_main_guard(node):
  return (isinstance(node, ast.If)
          and ast.unparse(node.test) == "__name__ == '__main__'")


def _cli_calls(node):
  """Names of the `cli.*` helpers that `node` calls."""
  return {call.func.attr for call in ast.walk(node)
          if isinstance(call, ast.Call)
          and isinstance(call.func, ast.Attribute)
          and ast.unparse(call.func.value) == "cli"
          and call.func.attr in _HELPERS}


def test_flags_are_defined_only_by_the_cli_helper():
  """No module but lbam_tf.cli calls flags.DEFINE_* or marks flags required:
  every flag is a Config field, declared by `cli.define_flags`."""
  found = []
  for module, source in sorted(_sources().items()):
    if module == "lbam_tf.cli":
      continue
    for node in ast.walk(ast.parse(source)):
      if isinstance(node, ast.Attribute) and (
          node.attr.startswith("DEFINE") or node.attr.startswith("mark_flag")
          or node.attr == "adopt_module_key_flags"):
        found.append(f"{module}: {ast.unparse(node)}")
  assert not found, found


@pytest.mark.parametrize("module", sorted(ENTRY_POINTS) + list(BENCHMARKS))
def test_programs_follow_one_convention(module):
  """A Config dataclass and, for entry points, its check() and a library
  function; `cli.define_flags` called only when run as a program (in the
  `__main__` block), the Config built from the flags only in main."""
  if module in ENTRY_POINTS:
    config_module, config_name, library_module, function = ENTRY_POINTS[module]
    _, configs = _top_level(config_module)
    assert config_name in configs, config_module
    assert "check" in {node.name for node in configs[config_name].body
                       if isinstance(node, ast.FunctionDef)}
    assert function in _top_level(library_module)[1], library_module
  else:
    function = None  # main is the benchmark
    assert "Config" in _top_level(module)[1], module
  tree, top = _top_level(module)
  assert "main" in top, module
  names = {node.id if isinstance(node, ast.Name) else node.attr
           for node in ast.walk(top["main"])
           if isinstance(node, (ast.Name, ast.Attribute))}
  assert function in names or function is None or "run_flags" in names, (
      f"{module}.main")
  assert _cli_calls(top["main"]) & {"from_flags", "run_flags"}, (
      f"{module}.main builds no Config from the flags")
  guards = [node for node in tree.body if _is_main_guard(node)]
  assert len(guards) == 1 and "define_flags" in _cli_calls(guards[0]), (
      f"{module}: cli.define_flags is not called under __main__")
  for node in tree.body:
    if node is guards[0]:
      continue
    calls = _cli_calls(node)
    if node is top["main"]:
      calls -= {"from_flags", "run_flags"}
    assert not calls, f"{module}: cli.{sorted(calls)} outside main/__main__"


def _help_argument(call):
  """The help expression of a `cli.option(...)` call, or None."""
  for keyword in call.keywords:
    if keyword.arg == "help":
      return keyword.value
  return call.args[1] if len(call.args) > 1 else None


@pytest.mark.parametrize("module,name", CONFIGS)
def test_every_config_field_carries_its_help(module, name):
  """Each field is `cli.option(default, help, ...)` with a non-empty help,
  and a Config's base classes are Configs checked here too."""
  _, top = _top_level(module)
  config = top[name]
  known = {config_name for _, config_name in CONFIGS}
  for base in config.bases:
    base_name = base.attr if isinstance(base, ast.Attribute) else base.id
    assert base_name in known, f"{module}.{name} extends {base_name}"
  fields = [node for node in config.body if isinstance(node, ast.AnnAssign)]
  assert fields, f"{module}.{name} has no fields"
  for field in fields:
    where = f"{module}.{name}.{ast.unparse(field.target)}"
    value = field.value
    assert (isinstance(value, ast.Call)
            and ast.unparse(value.func) == "cli.option"), (
                f"{where} is not cli.option(default, help)")
    text = _help_argument(value)
    assert text is not None, f"{where} has no help"
    assert not (isinstance(text, ast.Constant) and not str(text.value)
                .strip()), f"{where} has an empty help"
