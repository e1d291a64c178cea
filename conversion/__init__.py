"""The repository's conversion tools (not shipped in the wheel; they import the library).

* `python -m conversion convert|export ...`: the library's `swiftformer` command from a clone;
* `official_model`: the official PyTorch model (transformers' port with the current release's
  attention), which the tests, the benchmarks and conversion checks compare against.

The conversion and export code itself is the library's: `keras_swiftformer.convert`
(`convert_checkpoint`, `fetch_weights`), `keras_swiftformer.weights` (reading and porting
checkpoints) and `keras_swiftformer.export` (`export_tflite`, `export_onnx`, `verify`).
"""
