"""`run_layer_test`: the contract every registered Keras layer must keep.

In the spirit of keras-hub's `TestCase.run_layer_test` (itself built on
Keras' own), written for pytest and this project's layers: given a layer
class, its init kwargs and input data, it checks that

- the eager output has `expected_output_shape` (when given);
- `compute_output_shape`, where the layer defines it, gives the eager output
  shapes for the static input shapes, and what tracing `call` gives for input
  shapes with unknown batch and spatial sizes (every axis but the last);
- a symbolic call (`keras.Input`, which goes through `compute_output_spec`)
  gives the eager shapes and dtypes, and for unknown sizes the traced ones;
- building creates the expected numbers of trainable and non-trainable
  weights (built eagerly and built from shapes alike);
- `get_config()` holds every `__init__` argument, with the values given;
  `from_config()` gives back an equal config; the layer serializes through
  Keras' registry to JSON and back to the same class and config; and a copy
  from its config, given the (perturbed) weights, computes the same outputs;
- under a `mixed_bfloat16` dtype policy it outputs
  `expected_mixed_output_dtype` (bfloat16 unless the layer documents
  otherwise), finite, symbolically too; every variable stays float32 and
  every sub-layer has the layer's policy.

A failure raises AssertionError naming the layer and the check.

Example:

    run_layer_test(layers.MaskUpdate, {"alpha": 0.5},
                   np.linspace(-1, 2, 24, dtype="float32").reshape(2, 4, 3),
                   expected_output_shape=(2, 4, 3))
"""

import inspect
import json

import keras
import numpy as np
import tensorflow as tf

MIXED_POLICY = "mixed_bfloat16"


def run_layer_test(layer_cls, init_kwargs, input_data, *, call_kwargs=None,
                   expected_output_shape=None,
                   expected_num_trainable_weights=0,
                   expected_num_non_trainable_weights=0,
                   run_mixed_precision_check=True,
                   expected_mixed_output_dtype="bfloat16"):
  """Runs every check above on `layer_cls(**init_kwargs)`.

  Args:
    layer_cls: the layer class.
    init_kwargs: dict of `__init__` arguments (no `dtype`: the mixed-precision
      check adds its own).
    input_data: the first call argument: a numpy array, or a list or dict of
      them as the layer's `call` takes. Every array's first axis is the batch
      and its last the channels.
    call_kwargs: other `call` arguments, e.g. `{"training": True}`.
    expected_output_shape: the eager output's shape: a tuple, or a list or
      dict of them as the outputs are nested; None to skip.
    expected_num_trainable_weights: len(layer.trainable_weights) once built.
    expected_num_non_trainable_weights: len(layer.non_trainable_weights).
    run_mixed_precision_check: whether to run the mixed_bfloat16 check.
    expected_mixed_output_dtype: every output's dtype under mixed_bfloat16.

  Returns:
    The eagerly called layer (float32 policy, its weights perturbed by the
    config check), for further checks.
  """
  call_kwargs = dict(call_kwargs or {})
  name = layer_cls.__name__
  assert "dtype" not in init_kwargs, (
      f"{name}: give init_kwargs without dtype; the mixed-precision check "
      "sets its own")

  layer = layer_cls(**init_kwargs)
  outputs = layer(input_data, **call_kwargs)
  eager_shapes = _shapes(outputs)
  if expected_output_shape is not None:
    _assert_equal(eager_shapes, _shapes(expected_output_shape),
                  f"{name}: eager output shape is not expected_output_shape")

  static_shapes = _shapes(input_data)
  dynamic_shapes = _map_shapes(_unknown_sizes, static_shapes)
  traced_shapes = _shapes(_trace_call(layer, input_data, call_kwargs))
  if _defines_compute_output_shape(layer_cls):
    _assert_equal(_shapes(layer.compute_output_shape(static_shapes)),
                  eager_shapes,
                  f"{name}: compute_output_shape disagrees with the eager "
                  f"call on input shapes {static_shapes}")
    _assert_equal(_shapes(layer.compute_output_shape(dynamic_shapes)),
                  traced_shapes,
                  f"{name}: compute_output_shape disagrees with the traced "
                  f"call on input shapes {dynamic_shapes}")

  symbolic_layer = layer_cls(**init_kwargs)
  symbolic = symbolic_layer(_keras_inputs(input_data, static_shapes),
                            **call_kwargs)
  _assert_equal(_shapes(symbolic), eager_shapes,
                f"{name}: symbolic (keras.Input) output shape disagrees with "
                "the eager call")
  _assert_equal(_dtypes(symbolic), _dtypes(outputs),
                f"{name}: symbolic output dtype disagrees with the eager call")
  dynamic = layer_cls(**init_kwargs)(
      _keras_inputs(input_data, dynamic_shapes), **call_kwargs)
  _assert_equal(_shapes(dynamic), traced_shapes,
                f"{name}: symbolic output shape for unknown sizes "
                f"{dynamic_shapes} disagrees with the traced call")

  for built, how in ((layer, "eagerly"), (symbolic_layer, "from shapes")):
    assert built.built, f"{name}: not built after a call {how}"
    counts = (len(built.trainable_weights), len(built.non_trainable_weights))
    expected = (expected_num_trainable_weights,
                expected_num_non_trainable_weights)
    assert counts == expected, (
        f"{name} built {how}: (trainable, non-trainable) weights {counts}, "
        f"expected {expected}: {[w.path for w in built.weights]}")

  _check_serialization(layer, init_kwargs, input_data, call_kwargs)

  if run_mixed_precision_check:
    _check_mixed_precision(layer_cls, init_kwargs, input_data, call_kwargs,
                           static_shapes, expected_mixed_output_dtype)
  return layer


def _check_serialization(layer, init_kwargs, input_data, call_kwargs):
  layer_cls = type(layer)
  name = layer_cls.__name__
  config = layer.get_config()
  missing = [arg for arg in _init_arguments(layer_cls) if arg not in config]
  assert not missing, (
      f"{name}.get_config() lacks __init__ arguments {missing}: {config}")
  for key, value in init_kwargs.items():
    assert key in config and config[key] == value, (
        f"{name}.get_config()[{key!r}] is {config.get(key, '<missing>')!r}, "
        f"the layer was made with {value!r}")

  clone = layer_cls.from_config(config)
  _assert_equal(clone.get_config(), config,
                f"{name}: from_config(get_config()) gives another config")

  registered = keras.saving.get_registered_name(layer_cls)
  assert keras.saving.get_registered_object(registered) is layer_cls, (
      f"{name} is not registered with keras.saving "
      "(register_keras_serializable)")
  text = json.dumps(keras.saving.serialize_keras_object(layer))
  revived = keras.saving.deserialize_keras_object(json.loads(text))
  assert type(revived) is layer_cls, (
      f"{name} deserialized from JSON as {type(revived).__name__}")
  _assert_equal(revived.get_config(), config,
                f"{name}: a JSON round trip gives another config")

  # Non-initial weights, so that outputs differ if any weight is dropped.
  rng = np.random.default_rng(7)
  for weight in layer.weights:
    weight.assign(np.asarray(weight) + rng.uniform(
        0.0, 0.1, weight.shape).astype(weight.dtype))
  clone(input_data, **call_kwargs)
  _assert_equal([tuple(w.shape) for w in clone.weights],
                [tuple(w.shape) for w in layer.weights],
                f"{name}: the copy from get_config() has other weights")
  clone.set_weights(layer.get_weights())
  expected = layer(input_data, **call_kwargs)
  actual = clone(input_data, **call_kwargs)
  for i, (want, got) in enumerate(zip(keras.tree.flatten(expected),
                                      keras.tree.flatten(actual))):
    np.testing.assert_array_equal(
        np.asarray(got), np.asarray(want),
        err_msg=f"{name}: output {i} of the copy from get_config() differs")


def _check_mixed_precision(layer_cls, init_kwargs, input_data, call_kwargs,
                           static_shapes, expected_dtype):
  name = layer_cls.__name__
  layer = layer_cls(**init_kwargs, dtype=MIXED_POLICY)
  outputs = layer(input_data, **call_kwargs)
  flat = keras.tree.flatten(outputs)
  dtypes = [keras.backend.standardize_dtype(t.dtype) for t in flat]
  assert dtypes == [expected_dtype] * len(flat), (
      f"{name} under {MIXED_POLICY}: output dtypes {dtypes}, expected "
      f"{expected_dtype}")
  for i, tensor in enumerate(flat):
    assert np.all(np.isfinite(np.asarray(tensor, np.float32))), (
        f"{name} under {MIXED_POLICY}: output {i} is not finite")
  variables = {w.path: keras.backend.standardize_dtype(w.dtype)
               for w in layer.weights}
  assert all(d == "float32" for d in variables.values()), (
      f"{name} under {MIXED_POLICY}: variables not float32: {variables}")
  # pylint: disable-next=protected-access
  policies = {sub.name: sub.dtype_policy.name
              for sub in layer._flatten_layers()}
  assert set(policies.values()) == {MIXED_POLICY}, (
      f"{name} under {MIXED_POLICY}: (sub-)layer policies {policies}")
  symbolic = layer_cls(**init_kwargs, dtype=MIXED_POLICY)(
      _keras_inputs(input_data, static_shapes), **call_kwargs)
  _assert_equal(_dtypes(symbolic), _dtypes(outputs),
                f"{name} under {MIXED_POLICY}: symbolic output dtype "
                "disagrees with the eager call")


def _init_arguments(layer_cls):
  """Named `__init__` parameters, as get_config must hold them."""
  parameters = inspect.signature(layer_cls.__init__).parameters.values()
  return [p.name for p in parameters if p.name != "self" and p.kind in (
      p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _defines_compute_output_shape(layer_cls):
  return (layer_cls.compute_output_shape
          is not keras.layers.Layer.compute_output_shape)


def _trace_call(layer, input_data, call_kwargs):
  """The outputs of tracing `layer` (its `call`) with every size unknown but
  the channels: tf.Tensors carrying TF's static shape inference."""
  specs = keras.tree.map_structure(
      lambda x: tf.TensorSpec(_unknown_sizes(np.shape(x)), x.dtype),
      input_data)
  traced = tf.function(lambda inputs: layer(inputs, **call_kwargs))
  return traced.get_concrete_function(specs).structured_outputs


def _keras_inputs(input_data, shapes):
  """keras.Input of `shapes` (nested as `input_data`), the data's dtypes."""
  if isinstance(input_data, dict):
    return {k: _keras_inputs(v, shapes[k]) for k, v in input_data.items()}
  if isinstance(input_data, (list, tuple)):
    return [_keras_inputs(v, s) for v, s in zip(input_data, shapes)]
  return keras.Input(batch_shape=shapes, dtype=str(input_data.dtype))


def _unknown_sizes(shape):
  return (None,) * (len(shape) - 1) + (int(shape[-1]),)


def _is_shape(value):
  return (isinstance(value, (tuple, list, tf.TensorShape)) and all(
      d is None or isinstance(d, (int, np.integer)) for d in value))


def _shapes(structure):
  """Shapes of tensors or arrays, or shape tuples, as tuples of ints and
  None, nested in lists (for tuples or lists) and dicts."""
  if hasattr(structure, "shape") and hasattr(structure, "dtype"):
    return _shapes(tuple(structure.shape))
  if _is_shape(structure):
    return tuple(None if d is None else int(d) for d in structure)
  if isinstance(structure, dict):
    return {k: _shapes(v) for k, v in structure.items()}
  if isinstance(structure, (list, tuple)):
    return [_shapes(v) for v in structure]
  raise TypeError(f"not a shape, tensor or nest of them: {structure!r}")


def _map_shapes(fn, shapes):
  if isinstance(shapes, dict):
    return {k: _map_shapes(fn, v) for k, v in shapes.items()}
  if isinstance(shapes, list):
    return [_map_shapes(fn, v) for v in shapes]
  return fn(shapes)


def _dtypes(structure):
  return [keras.backend.standardize_dtype(t.dtype)
          for t in keras.tree.flatten(structure)]


def _assert_equal(actual, expected, message):
  assert actual == expected, f"{message}: got {actual}, expected {expected}"
