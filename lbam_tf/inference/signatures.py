"""The names of the exported SavedModel's signatures, shared by the export,
the in-process module, the clients, the local server and the benchmarks.

No TensorFlow here: `serving.client` imports it and stays light.
"""

#: Encoded images and masks in, PNGs out (`InpaintModule.serve_bytes`); TF
#: Serving's default, the one clients call.
SERVING_SIGNATURE = "serving_default"
#: float32 images and masks in, composited images out
#: (`InpaintModule.inpaint_tensor`); used by `lbam_tf.evaluate`.
TENSOR_SIGNATURE = "inpaint_tensor"
