"""test.py's side: rebuilding a trained model (testing.py), choosing weights,
predictions on new data and export (TorchScript, ONNX, safetensors)."""
