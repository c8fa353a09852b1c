"""Classifies one CIFAR image with an exported model in ONNX Runtime.

    python3 examples/python/classify.py model.onnx image.u8

Needs onnxruntime and numpy (pip install onnxruntime numpy).
"""
import json
import sys

import numpy as np
import onnxruntime as ort


def main(model_path, image_path):
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    # The metadata holds the class names and the normalisation.
    meta = session.get_modelmeta().custom_metadata_map
    classes = json.loads(meta["classes"])
    mean = np.array(meta["normalization_mean"].strip("[]").split(), dtype=np.float32)
    std = np.array(meta["normalization_std"].strip("[]").split(), dtype=np.float32)

    # 3072 bytes, channel by channel (CHW), as CIFAR stores an image.
    img = np.fromfile(image_path, dtype=np.uint8)
    if img.size != 3072:
        sys.exit(f"{image_path}: want a 3072-byte CIFAR image")
    x = img.reshape(1, 3, 32, 32).astype(np.float32) / 255
    if "raw" not in meta["input_layout"]:
        x = (x - mean.reshape(1, 3, 1, 1)) / std.reshape(1, 3, 1, 1)

    logits = session.run(["logits"], {"input": x})[0][0]
    best = int(np.argmax(logits))
    print(f"{classes[best]} (class {best}, logit {logits[best]:.4f})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: classify.py model.onnx image.u8")
    main(*sys.argv[1:])
