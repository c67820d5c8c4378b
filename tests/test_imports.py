"""No import cycles among the project's modules (issue 13).

The graph is built from the source with `ast`, imports inside functions
included: a cycle hidden in a function still means two modules that each
need the other.
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
  # convert and model_io as they were before issue 13.
  sources = {
      "lbam_tf.model_io": "from lbam_tf import convert\n",
      "lbam_tf.convert": ("def main(argv):\n"
                          "  from lbam_tf import model_io\n"),
      "lbam_tf.data": "import tensorflow as tf\n",
  }
  assert find_cycle(import_graph(sources)) == [
      "lbam_tf.convert", "lbam_tf.model_io", "lbam_tf.convert"]


@pytest.mark.parametrize("light", ["serving.client", "lbam_tf.cli",
                                   "lbam_tf.signatures"])
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
ENTRY_POINTS["lbam_tf.train"] = ("lbam_tf.train_config", "TrainConfig",
                                 "lbam_tf.training", "train")
ENTRY_POINTS["lbam_tf.evaluate"] = ("lbam_tf.evaluation.config", "EvalConfig",
                                    "lbam_tf.evaluation.runner", "run")


def _top_level(module):
  tree = ast.parse(_sources()[module])
  return tree, {node.name: node for node in tree.body
                if isinstance(node, (ast.ClassDef, ast.FunctionDef))}


@pytest.mark.parametrize("module", sorted(ENTRY_POINTS))
def test_entry_points_follow_one_convention(module):
  """A Config dataclass with check(), a library function taking it,
  define_flags called only when run as a program, and a main that uses both;
  no function but define_flags defines flags."""
  config_module, config_name, library_module, function = ENTRY_POINTS[module]
  _, configs = _top_level(config_module)
  assert config_name in configs, config_module
  assert "check" in {node.name for node in configs[config_name].body
                     if isinstance(node, ast.FunctionDef)}
  assert function in _top_level(library_module)[1], library_module
  tree, top = _top_level(module)
  assert {"define_flags", "main"} <= set(top), module
  names = {node.id if isinstance(node, ast.Name) else node.attr
           for node in ast.walk(top["main"])
           if isinstance(node, (ast.Name, ast.Attribute))}
  assert function in names or "run_flags" in names, f"{module}.main"
  for node in tree.body:
    if isinstance(node, ast.Expr):  # a call at import time
      assert "define_flags" not in ast.unparse(node), module
  for name, node in top.items():
    calls = {ast.unparse(call.func) for call in ast.walk(node)
             if isinstance(call, ast.Call)}
    if name != "define_flags":
      assert not any(call.startswith("flags.DEFINE") for call in calls), (
          f"{module}.{name} defines flags")
